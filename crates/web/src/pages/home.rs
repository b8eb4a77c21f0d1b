//! `GET /`: what runs, the WAN address, the mail waiting, the phones registered, and
//! the last problems logged.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use officebox_config::WanAddressing;
use officebox_config::derive::{wan_address, wan_in_use};

use crate::app::Shared;
use crate::routes::{Flash, Me, page};

pub(crate) async fn show(State(app): State<Shared>, me: Me, Flash(flash): Flash) -> Response {
    let config = app.config();
    let now = officebox_store::unix_now();
    let facts = app
        .store
        .with(move |db| {
            let wan = db.wan_address().ok().flatten();
            let queue = db.queue().map(|q| q.len()).unwrap_or(0);
            let phones = db.bindings(now).map(|b| b.len()).unwrap_or(0);
            Ok((wan, queue, phones))
        })
        .await;
    let (leased, queue, phones) = facts.unwrap_or((None, 0, 0));
    let wan =
        wan_address(&config, leased).map_or_else(|| "none yet".to_string(), |a| a.to_string());
    let wan_how = match config.network.wan.addressing {
        _ if !wan_in_use(config.security.mode) => "lan-only mode: the WAN is not used",
        WanAddressing::Dhcp { .. } => "leased from the ISP by DHCP",
        WanAddressing::Static { .. } => "static, as entered in Network Settings",
    };
    let up = app.started.elapsed().as_secs();
    let services = [
        ("DNS", config.dns.enabled),
        ("DHCP", config.dhcp.enabled),
        ("Mail", config.mail.enabled),
        ("Phones", config.phone.enabled),
        ("Time (NTP)", config.ntp.enabled),
    ];
    let body = html! {
        h2 { "Services" }
        table {
            @for (name, on) in services {
                tr { td { (name) } td { (if on { "running" } else { "off" }) } }
            }
        }
        h2 { "Internet" }
        p { "WAN address: " strong { (wan) } " (" (wan_how) ")." }
        h2 { "Status" }
        table {
            tr { td { "Up for" } td { (up / 3600) "h " (format!("{:02}", up % 3600 / 60)) "m" } }
            tr { td { "Mail waiting to go out" } td { (queue) } }
            tr { td { "Phones registered" } td { (phones) } }
        }
        h2 { "Recent problems" }
        (problems_table())
    };
    page(
        StatusCode::OK,
        crate::html::page("Home", "/", Some(me.pair()), flash, body),
    )
}

/// The last warnings and errors, newest first.
fn problems_table() -> Markup {
    let problems = crate::recent::problems();
    if problems.is_empty() {
        return html! { p id="problems" { "None since officebox started." } };
    }
    html! {
        div.wide {
            table id="problems" {
                tr { th { "When (UTC)" } th {} th { "What" } }
                @for p in &problems {
                    tr {
                        td { (officebox_store::date::http_date(p.at)) }
                        td { (if p.level == "ERROR" { "error" } else { "warning" }) }
                        td { (p.text) }
                    }
                }
            }
        }
    }
}
