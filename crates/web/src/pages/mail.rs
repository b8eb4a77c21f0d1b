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
        p { a href="/mail/records" { "The DNS records mail needs, checked against the Internet's DNS" } }
    }
}

/// `GET /mail/records`: every record mail needs, beside what the Internet's DNS answers
/// (`crate::records`).
pub(crate) async fn records(State(app): State<Shared>, me: Me) -> Response {
    use officebox_config::derive::{needed_mail_records, wan_address};
    use officebox_config::model::Service;
    let config = app.config();
    let read = app
        .store
        .with(|db| Ok((db.dkim_keys()?, db.wan_address()?)))
        .await;
    let (keys, leased) = read.unwrap_or_default();
    let wan = wan_address(&config, leased);
    let dkim: Vec<(String, String)> = keys
        .iter()
        .filter(|k| k.retired.is_none())
        .map(|k| (k.selector.clone(), dkim::txt_record(k)))
        .collect();
    let needed = needed_mail_records(&config, wan, &dkim);
    let checked = crate::records::check(&config, needed).await;
    let domain = &config.network.domain;
    let hosted_here = config.dns.enabled && config.security.wan_services.contains(&Service::Dns);
    let wrong = checked.iter().filter(|c| c.problem.is_some()).count();
    let body = html! {
        @if hosted_here {
            p { "This box answers for " (domain) " itself and publishes every one of these. "
                "Below is what the Internet's DNS (the box's upstream servers) says." }
        } @else {
            p { "The zone of " (domain) " is hosted elsewhere (at the domain's registrar or "
                "DNS provider): put these records there. The PTR record is set by the ISP "
                "that gave the WAN address." }
        }
        @if wan.is_none() {
            p.flash.bad { "The box has no WAN address yet: the records naming it are left out." }
        }
        p #records-summary { (checked.len() - wrong) " of " (checked.len()) " as they should be." }
        table id="mail-records" {
            tr { th { "Name" } th { "Type" } th { "Should be" } th { "For" } th { "The Internet's DNS" } }
            @for c in &checked {
                tr data-status=(if c.problem.is_some() { "wrong" } else { "ok" }) {
                    td { code { (c.needed.name) } }
                    td { (c.needed.rtype) }
                    td { code { (c.needed.value) } }
                    td { (c.needed.why) }
                    td {
                        @match &c.problem {
                            None => "right",
                            Some(p) => strong { (p) },
                        }
                    }
                }
            }
        }
    };
    crate::routes::page(
        axum::http::StatusCode::OK,
        crate::html::page("DNS records for mail", "/mail", Some(me.pair()), None, body),
    )
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
