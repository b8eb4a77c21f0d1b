//! The settings pages (`/network`, `/security`, `/dhcp`, ... from
//! [`crate::settings::PAGES`]): the page's live part, its settings, then its lists.
//! A save writes only valid configs; a refused one comes back with each error beside its
//! field, and a risky page's change is applied with confirm-or-revert.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use officebox_config::{Config, Diagnostic};
use tracing::info;

use crate::app::{App, Shared};
use crate::forms::{Pairs, value};
use crate::html::{Field, Kind, csrf_field};
use crate::pages::lists::{ListFailure, lists_html};
use crate::routes::{Flash, Me, page, redirect};
use crate::settings::{self, FieldKind, PageDef};

/// `GET` a settings page.
pub(crate) async fn show(
    State(app): State<Shared>,
    me: Me,
    Flash(flash): Flash,
    def: &'static PageDef,
) -> Response {
    let config = app.config();
    page(
        StatusCode::OK,
        render(&app, &config, def, &me, None, &[], flash, None).await,
    )
}

/// A settings page: its live state (the queue, the leases, ...), its settings, then its
/// lists. `submitted` and `diags` re-show a refused form; `failed` a refused row.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn render(
    app: &App,
    config: &Config,
    def: &PageDef,
    me: &Me,
    submitted: Option<&[(String, String)]>,
    diags: &[Diagnostic],
    flash: Option<(&str, bool)>,
    failed: Option<&ListFailure<'_>>,
) -> Markup {
    let text = app.config_text().unwrap_or_default();
    let doc: toml_edit::DocumentMut = text.parse().unwrap_or_default();
    let live = crate::live::state(app, config, def.path, &me.csrf).await;
    // A page's own part that is not refreshed live.
    let own = match def.path {
        "/backup" => Some(crate::pages::backup::panel(config).await),
        _ => None,
    };
    // Problems elsewhere in the file (a setting this page does not show).
    let elsewhere: Vec<&Diagnostic> = diags
        .iter()
        .filter(|d| {
            def.fields
                .iter()
                .all(|f| settings::errors_for(std::slice::from_ref(d), f).is_empty())
        })
        .collect();
    let body = html! {
        p { (def.intro) }
        @if let Some(live) = live {
            div id="live" data-live={ "/live" (def.path) } { (live) }
            h2 { "Settings" }
        }
        @if let Some(own) = own {
            (own)
            h2 { "Settings" }
        }
        form method="post" action=(def.path) id="settings" novalidate {
            (csrf_field(&me.csrf))
            @for fd in def.fields {
                (field(config, &doc, fd, submitted, diags))
            }
            @if !elsewhere.is_empty() {
                div.error role="alert" {
                    p { "Other problems in the config:" }
                    ul { (crate::html::problem_items(elsewhere)) }
                }
            }
            @if def.risky {
                p.help {
                    "These settings can cut this computer off the box: after saving, you have "
                    (app.config().web.confirm_timeout.as_secs())
                    " seconds to confirm, or the previous settings come back by themselves."
                }
            }
            button type="submit" { "Save" }
        }
        (lists_html(&doc, def.path, None, &me.csrf, failed))
        @if def.path == "/routing" {
            (crate::pages::greetings::section(config, &me.csrf))
            (crate::pages::greetings::music_section(config, &me.csrf))
        }
        @if def.path == "/phones" {
            (feature_codes(config))
        }
    };
    crate::html::page(def.title, def.path, Some(me.pair()), flash, body)
}

/// What a phone can dial besides extensions (`derive::feature_codes`).
fn feature_codes(config: &Config) -> Markup {
    html! {
        h2 { "Feature codes" }
        table {
            thead { tr { th { "Dial" } th { "What it does" } } }
            tbody {
                @for (code, what) in officebox_config::derive::feature_codes(config) {
                    tr { td { code { (code) } } td { (what) } }
                }
            }
        }
    }
}

/// One setting's field: what the form sent, else what the file says (a switch the file
/// leaves out shows what officebox does), with the running default as the hint.
fn field(
    config: &Config,
    doc: &toml_edit::DocumentMut,
    fd: &settings::FieldDef,
    submitted: Option<&[(String, String)]>,
    diags: &[Diagnostic],
) -> Markup {
    let in_file = settings::read(doc, fd);
    let default = settings::effective(config, fd).unwrap_or_default();
    let current = match submitted {
        Some(pairs) => value(pairs, fd.key).unwrap_or("").to_string(),
        // What the file leaves out shows as what applies: a switch its state, a choice
        // its default (not the first option, which saving would then write), a list with
        // a default its entries (saving an untouched page keeps them; emptying the field
        // is a choice the admin makes).
        None if in_file.is_empty() && shows_default(fd) => default.clone(),
        None => in_file,
    };
    let error = crate::html::field_errors(settings::errors_for(diags, fd));
    let kind = match fd.kind {
        FieldKind::Bool => Kind::Check,
        FieldKind::Select(o) => Kind::Select(o),
        _ => Kind::Text,
    };
    let hinted = matches!(fd.kind, FieldKind::Text | FieldKind::Int | FieldKind::List);
    maud::Render::render(&Field {
        name: fd.key,
        label: fd.label,
        help: fd.help,
        value: &current,
        placeholder: if hinted { &default } else { "" },
        error: error.as_deref(),
        kind,
    })
}

/// Whether a field the file leaves out shows the default as its value (not as a hint).
fn shows_default(fd: &settings::FieldDef) -> bool {
    match fd.kind {
        FieldKind::Bool | FieldKind::Select(_) => true,
        FieldKind::List => {
            matches!(fd.default, officebox_config::schema::Default::List(l) if !l.is_empty())
        }
        FieldKind::Text | FieldKind::Int => false,
    }
}

/// `POST` a settings page.
pub(crate) async fn save(
    State(app): State<Shared>,
    me: Me,
    Pairs(pairs): Pairs,
    headers: HeaderMap,
    def: &'static PageDef,
) -> Response {
    let failed = |status: StatusCode, why: &str| {
        page(
            status,
            crate::html::page(
                def.title,
                def.path,
                Some(me.pair()),
                Some((why, false)),
                html! {},
            ),
        )
    };
    let Some(text) = app.config_text() else {
        return failed(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The config file cannot be read.",
        );
    };
    let Ok(mut doc) = text.parse::<toml_edit::DocumentMut>() else {
        return failed(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The config file is not valid TOML.",
        );
    };
    for fd in def.fields {
        if let Some(v) = value(&pairs, fd.key) {
            settings::write(&mut doc, fd, v);
        }
    }
    settings::prune_empty_tables(&mut doc, def);
    let new = doc.to_string();
    if let Err(d) = officebox_config::parse(&app.config_name(), &new) {
        info!(
            message = "web: settings refused",
            page = def.path,
            problems = d.0.len()
        );
        let note = Some(("Nothing was saved: see the problems below.", false));
        let config = app.config();
        return page(
            StatusCode::UNPROCESSABLE_ENTITY,
            render(&app, &config, def, &me, Some(&pairs), &d.0, note, None).await,
        );
    }
    if new == text {
        return redirect(&format!("{}?saved=1", def.path));
    }
    let config = app.config();
    match app.save(&config, &new, def.title, def.risky).await {
        Ok(()) if def.risky => {
            let host = headers
                .get("host")
                .and_then(|h| h.to_str().ok())
                .unwrap_or("");
            let to = confirm_location(&config, &app.config(), host);
            if to.starts_with('/') {
                return redirect(&to);
            }
            // A form may not redirect to another origin (CSP form-action): a link does.
            let secs = app.config().web.confirm_timeout.as_secs();
            page(
                StatusCode::OK,
                crate::html::page(
                    "The admin pages have moved",
                    "",
                    Some(me.pair()),
                    None,
                    html! {
                        p {
                            "They answer at their new address now. Go there and keep the \
                             change within " (secs) " seconds, or the previous settings come \
                             back by themselves."
                        }
                        p { a href=(to) id="moved" { "Continue at " (to) } }
                    },
                ),
            )
        }
        Ok(()) => redirect(&format!("{}?saved=1", def.path)),
        Err(e) => page(
            StatusCode::INTERNAL_SERVER_ERROR,
            render(
                &app,
                &config,
                def,
                &me,
                Some(&pairs),
                &[],
                Some((&e, false)),
                None,
            )
            .await,
        ),
    }
}

/// Where to confirm a risky change: here, or where the admin pages moved to (another port,
/// or HTTPS switched on or off), on the host name the browser used.
pub(crate) fn confirm_location(before: &Config, after: &Config, host: &str) -> String {
    let (old, new) = (&before.web, &after.web);
    if old.admin_port == new.admin_port && old.https == new.https {
        return "/confirm".into();
    }
    let name = if host.starts_with('[') {
        host.split_inclusive(']').next().unwrap_or(host)
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    let scheme = if new.https { "https" } else { "http" };
    format!("{scheme}://{name}:{}/confirm", new.admin_port)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A setting the file leaves out shows what applies, so saving an untouched page
    /// keeps it: the services open in DMZ mode stay open, the mode stays the mode.
    #[test]
    fn what_the_file_leaves_out_shows_as_what_applies() {
        let text = "[network]\ndomain = \"example.com\"\nmanage = false\n[dns]\nuse_upstream = false\n\
                    [[users]]\nlogin = \"admin\"\npassword = \"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA\"\nadmin = true\n";
        let config = officebox_config::parse("t.toml", text).unwrap();
        let doc: toml_edit::DocumentMut = text.parse().unwrap();
        let security = settings::PAGES
            .iter()
            .find(|p| p.path == "/security")
            .unwrap();
        let html = |key: &str| {
            let fd = security.fields.iter().find(|f| f.key == key).unwrap();
            field(&config, &doc, fd, None, &[]).into_string()
        };
        assert!(html("security.wan_services").contains("value=\"smtp, www\""));
        assert!(html("security.mode").contains("<option value=\"firewall-nat\" selected>"));
    }
}
