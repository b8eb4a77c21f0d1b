//! The Mail page's buttons: `POST /mail/flush` (retry every waiting recipient now) and
//! `POST /mail/queue/{id}/delete`, both through the store's queue methods, and
//! `POST /mail/dkim/rotate` (new signing keys); and its signing section.

use axum::extract::{Path, State};
use axum::response::Response;
use maud::{Markup, html};
use officebox_config::Config;
use officebox_secrets::dkim;
use officebox_store::DkimKey;
use tracing::{info, warn};

use crate::app::Shared;
use crate::routes::{Me, redirect};

/// The signing keys: which sign now, which are retired and until when they stay in the
/// zone, and the button that makes new ones.
pub(crate) fn signing(config: &Config, keys: &[DkimKey], now: i64, csrf: &str) -> Markup {
    if !config.mail.enabled {
        return html! {};
    }
    let domain = &config.network.domain;
    html! {
        h2 { "Signing (DKIM)" }
        p.help {
            "Every message from @" (domain) " to other domains is signed with each key "
            "that signs now; the zone publishes the keys, so receivers can check that the "
            "mail is the office's. New keys take over at once; the old ones stay in the "
            "zone for " (dkim::KEEP_PUBLISHED / 86_400) " days for mail already on its way."
        }
        @if keys.is_empty() {
            p { "No keys yet: they are made when the mail service starts." }
        } @else {
            table id="dkim-keys" {
                tr { th { "Selector" } th { "Kind" } th { "Made" } th { "State" } }
                @for k in keys.iter().filter(|k| dkim::published(k, now)) {
                    tr {
                        td { code { (k.selector) "._domainkey." (domain) } }
                        td { (k.algorithm) }
                        td { (officebox_store::date::datetime(k.created)) }
                        td {
                            @match k.retired {
                                None => "signing",
                                Some(r) => {
                                    "retired; in the zone until "
                                    (officebox_store::date::datetime(r + dkim::KEEP_PUBLISHED))
                                },
                            }
                        }
                    }
                }
            }
        }
        form method="post" action="/mail/dkim/rotate" {
            (crate::html::csrf_field(csrf))
            button type="submit" { "Make new keys" }
        }
    }
}

/// `POST /mail/dkim/rotate`: a new pair signs from now on.
pub(crate) async fn rotate(State(app): State<Shared>, me: Me) -> Response {
    let now = officebox_store::unix_now();
    match app.store.with(move |db| Ok(dkim::rotate(db, now))).await {
        Some(Ok(selectors)) => {
            info!(message = "web: new DKIM keys", ?selectors, user = %me.user);
            redirect("/mail?saved=1")
        }
        Some(Err(error)) => {
            warn!(message = "web: could not make new DKIM keys", %error);
            redirect("/mail")
        }
        None => redirect("/mail"),
    }
}

/// `POST /mail/flush`.
pub(crate) async fn flush(State(app): State<Shared>, me: Me) -> Response {
    let now = officebox_store::unix_now();
    let _ = app.store.with(move |db| db.flush_queue(now)).await;
    info!(message = "web: mail queue flushed", user = %me.user);
    redirect("/mail?saved=1")
}

/// `POST /mail/queue/{id}/delete`: the message and its file (an id that names nothing
/// deletes nothing).
pub(crate) async fn delete(State(app): State<Shared>, me: Me, Path(id): Path<String>) -> Response {
    if let Ok(id) = id.parse::<i64>() {
        let _ = app.store.with(move |db| db.delete_queued(id)).await;
        info!(message = "web: queued message deleted", id, user = %me.user);
    }
    redirect("/mail?saved=1")
}
