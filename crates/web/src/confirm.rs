//! Saving the config, and confirm-or-revert. A save writes the file atomically (the old
//! text kept in the history) and asks the supervisor to apply it, through the reload
//! channel, whose answer says whether it was applied or refused and why. A risky change
//! (addresses, the security mode, port forwards, the admin pages' own port) must then be
//! kept from the new setup within `web.confirm_timeout`, or the previous text comes back
//! by itself.

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use officebox_config::Config;
use tokio::sync::oneshot;
use tracing::{info, warn};

use crate::Reloaded;
use crate::app::{App, Shared};
use crate::routes::{Me, page, redirect};

/// How long a save waits for the supervisor's answer.
const RELOAD_WAIT: Duration = Duration::from_secs(20);

/// A change waiting for confirmation.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    previous: String,
    deadline: Instant,
    what: String,
}

impl App {
    /// Writes `new` as the config (atomically, the old one kept in the history) and has
    /// officebox apply it. `risky`: the previous text comes back unless confirmed. `Err`
    /// says, for the page, why nothing changed: the file could not be written, or
    /// officebox refused it (then the previous text is put back).
    pub(crate) async fn save(
        &self,
        config: &Config,
        new: &str,
        what: &str,
        risky: bool,
    ) -> Result<(), String> {
        let path = self.context.config_path.clone();
        let previous = self.config_text().unwrap_or_default();
        write(config, &path, &previous, new, true).await?;
        info!(message = "web: config saved", %what, file = %path.display());
        let answer = self.reload().await;
        let unanswered = match answer {
            Ok(Reloaded::Applied) => None,
            Ok(Reloaded::Refused(why)) => {
                // The file must say what runs: the previous text goes back (not into the
                // history: the refused text never ran).
                warn!(message = "web: officebox refused the saved config; putting the previous one back", %what);
                let _ = write(config, &path, new, &previous, false).await;
                return Err(format!(
                    "Nothing was applied: officebox refused the new settings ({}).",
                    why.trim()
                ));
            }
            // The request may still be applied: the file keeps the new text, and a risky
            // change still comes back unless it is confirmed.
            Err(why) => {
                warn!(message = "web: no answer to the reload; the saved config stays", %what, %why);
                Some(why)
            }
        };
        if risky {
            *self.pending() = Some(Pending {
                previous,
                deadline: Instant::now() + config.web.confirm_timeout,
                what: what.to_string(),
            });
        }
        match unanswered {
            None => Ok(()),
            Some(why) => Err(format!(
                "The new settings are saved, but officebox did not say whether it applied them ({why})."
            )),
        }
    }

    /// Asks the supervisor to apply the file and waits for its answer (by then the new
    /// config is published, so the next page shows it).
    /// `Err`: no answer came (officebox is stopping, or took too long).
    async fn reload(&self) -> Result<Reloaded, String> {
        let (answer, answered) = oneshot::channel();
        if self.context.reload.send(answer).await.is_err() {
            return Err("officebox is stopping".into());
        }
        match tokio::time::timeout(RELOAD_WAIT, answered).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(_)) => Err("officebox is stopping".into()),
            Err(_) => Err("officebox did not answer in time".into()),
        }
    }
}

/// Writes `new` over the file, keeping `old` in the history when `keep` (blocking work,
/// off the async threads).
async fn write(
    config: &Config,
    path: &std::path::Path,
    old: &str,
    new: &str,
    keep: bool,
) -> Result<(), String> {
    let (dir, path, old, new) = (
        config.data_dir.clone(),
        path.to_path_buf(),
        old.to_string(),
        new.to_string(),
    );
    tokio::task::spawn_blocking(move || {
        if keep {
            crate::history::record(&dir, &old, &new)?;
        }
        officebox_store::write_atomic(&path, new.as_bytes(), 0o600).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// `GET /confirm`: the change waiting, and the button that keeps it.
pub(crate) async fn show(State(app): State<Shared>, me: Me) -> Response {
    page(StatusCode::OK, confirm_page(&app, &me))
}

/// `POST /confirm`: keeps the change, if it is still waiting.
pub(crate) async fn keep(State(app): State<Shared>, me: Me) -> Response {
    // Kept only before the deadline; after it the revert has the change.
    let kept = {
        let mut pending = app.pending();
        match pending.as_ref() {
            Some(p) if Instant::now() < p.deadline => pending.take(),
            _ => None,
        }
    };
    match kept {
        Some(p) => {
            info!(message = "web: change kept", what = %p.what, user = %me.user);
            redirect("/?saved=1")
        }
        // Too late (or kept already, from another page).
        None => page(StatusCode::OK, confirm_page(&app, &me)),
    }
}

fn confirm_page(app: &App, me: &Me) -> maud::Markup {
    let pending = app.pending().clone();
    let Some(p) = pending else {
        return crate::html::page(
            "Confirm",
            "",
            Some(me.pair()),
            None,
            html! {
                p {
                    "Nothing is waiting for confirmation: the change was kept already, or the \
                     time ran out and the previous settings are back. "
                    a href="/history" { "Config History" }
                    " shows every version."
                }
                p { a href="/" { "Home" } }
            },
        );
    };
    // Rounded up: the page must not say the time is up before it is.
    let left = p
        .deadline
        .saturating_duration_since(Instant::now())
        .as_millis()
        .div_ceil(1000);
    crate::html::page(
        "Keep these settings?",
        "",
        Some(me.pair()),
        None,
        html! {
            p id="confirm-note" {
                "The new " (p.what) " settings are applied. If you can read this page, the box \
                 still answers you: keep them. Otherwise they are undone in "
                strong id="countdown" { (left) }
                " seconds."
            }
            form method="post" action="/confirm" id="confirm" {
                (crate::html::csrf_field(&me.csrf))
                button type="submit" { "Keep these settings" }
            }
        },
    )
}

/// Undoes a risky change nobody confirmed in time.
pub(crate) async fn revert_if_unconfirmed(app: &App) {
    let expired = {
        let mut pending = app.pending();
        match pending.as_ref() {
            Some(p) if Instant::now() >= p.deadline => pending.take(),
            _ => None,
        }
    };
    let Some(p) = expired else { return };
    let config = app.config();
    warn!(message = "web: the change was not confirmed in time; putting the previous settings back", what = %p.what);
    let current = app.config_text().unwrap_or_default();
    if write(
        &config,
        &app.context.config_path,
        &current,
        &p.previous,
        true,
    )
    .await
    .is_err()
    {
        warn!(message = "web: could not put the previous settings back");
        return;
    }
    match app.reload().await {
        Ok(Reloaded::Applied) => {}
        Ok(Reloaded::Refused(why)) => {
            warn!(message = "web: officebox refused the previous settings", %why);
        }
        Err(why) => warn!(message = "web: no answer to the reload of the previous settings", %why),
    }
}
