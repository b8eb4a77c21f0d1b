//! The live part of the Mail, Phones, DHCP and DNS pages: the mail queue, registrations,
//! calls and the trunks' states, the leases, the zone as served. Each is read from the state database when
//! the page is shown, and served alone at `/live/<page>` for the pages' script to
//! refresh.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use officebox_config::Config;
use officebox_store::{
    Lease, LeaseState, Queued, ServedRecord, SipBinding, SipCall, TrunkState, TrunkStatus,
};

use crate::app::{App, Shared};
use crate::html::csrf_field;
use crate::routes::{Me, page};

/// The pages that have a live part.
const LIVE: &[&str] = &["/mail", "/phones", "/dhcp", "/dns", "/sites"];

/// `GET /live/{page}`: the live part of `page` alone.
pub(crate) async fn fragment(
    State(app): State<Shared>,
    Path(name): Path<String>,
    me: Me,
) -> Response {
    let config = app.config();
    match state(&app, &config, &format!("/{name}"), &me.csrf).await {
        Some(fragment) => page(StatusCode::OK, fragment),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// What the state database says now, read in one go.
enum Facts {
    Queue(Vec<Queued>, Vec<officebox_store::DkimKey>),
    Phones(
        Vec<SipBinding>,
        Vec<SipCall>,
        Vec<TrunkStatus>,
        Vec<officebox_store::ProvisionedPhone>,
        Vec<officebox_store::FaxEntry>,
    ),
    Leases(Vec<Lease>),
    Zone(Vec<ServedRecord>),
    Sites(Vec<officebox_store::SiteStatus>, Option<std::net::Ipv4Addr>),
}

/// The live part of the page at `path`; `None` for a page without one.
pub(crate) async fn state(app: &App, config: &Config, path: &str, csrf: &str) -> Option<Markup> {
    if !LIVE.contains(&path) {
        return None;
    }
    let now = officebox_store::unix_now();
    let which = path.to_string();
    let facts = app
        .store
        .with(move |db| {
            Ok(match which.as_str() {
                "/mail" => Facts::Queue(db.queue()?, db.dkim_keys()?),
                "/phones" => Facts::Phones(
                    db.bindings(now)?,
                    db.calls()?,
                    db.trunk_statuses()?,
                    db.provisioned_phones()?,
                    db.faxes(20)?,
                ),
                "/dhcp" => Facts::Leases(db.leases()?),
                "/sites" => Facts::Sites(db.site_statuses()?, db.wan_address()?),
                _ => Facts::Zone(db.served_zone()?),
            })
        })
        .await;
    Some(match facts {
        None => html! { p { "The live state cannot be read just now." } },
        Some(Facts::Queue(queue, keys)) => html! {
            (queue_table(&queue, csrf))
            (crate::pages::mail::signing(config, &keys, now, csrf))
        },
        Some(Facts::Phones(regs, calls, trunks, desk, faxes)) => html! {
            (phones_tables(&regs, &calls, now))
            (desk_phones(config, &desk, now))
            (trunks_table(config, &trunks, now))
            (fax_table(config, &faxes))
        },
        Some(Facts::Leases(mut leases)) => {
            // Reserved in the config, though the lease may predate the reservation.
            for l in &mut leases {
                l.reserved |= config.dhcp.reservations.iter().any(|r| {
                    r.mac.to_string().eq_ignore_ascii_case(&l.mac) && r.address == l.address
                });
            }
            lease_table(&leases, now, csrf)
        }
        Some(Facts::Zone(served)) => zone_table(&served),
        Some(Facts::Sites(rows, leased)) => {
            let wan = officebox_config::derive::wan_address(config, leased);
            crate::pages::sites::live(config, &rows, wan, now).await
        }
    })
}

/// The latest fax calls (when the box has fax machines, or had faxes): from whom, to
/// whom, pages, and the T.30 outcome.
fn fax_table(config: &Config, faxes: &[officebox_store::FaxEntry]) -> Markup {
    if faxes.is_empty() && config.phone.dial_plan.faxes.is_empty() {
        return html! {};
    }
    html! {
        h2 { "Faxes" }
        @if faxes.is_empty() {
            p { "No fax has come in or gone out yet." }
        } @else {
            table id="fax-log" {
                tr { th { "When" } th { "From" } th { "To" } th { "Pages" } th { "Outcome" } }
                @for f in faxes {
                    tr {
                        td { (officebox_store::date::datetime(f.at)) }
                        td {
                            (f.caller)
                            @if !f.station.is_empty() { " (" (f.station) ")" }
                        }
                        td {
                            (f.number)
                            // A fax received: whose mailbox it went to.
                            @if !f.outgoing { " (" (f.login) ")" }
                        }
                        td {
                            (f.pages)
                            @if f.complete < f.pages { ", " (f.complete) " whole" }
                        }
                        td {
                            @match f.code {
                                Some(0) if f.outgoing => "sent",
                                Some(0) => "received",
                                Some(c) => { "failed: " (f.reason) " (T.30 " (c) ")" },
                                None => { "cut off: " (f.reason) },
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The mail waiting to go out, each message with a Delete button, and Retry now.
fn queue_table(queue: &[Queued], csrf: &str) -> Markup {
    html! {
        h2 { "Waiting to go out" }
        @if queue.is_empty() {
            p { "Nothing: every message has gone." }
        } @else {
            table {
                tr { th { "#" } th { "From" } th { "To" } th {} }
                @for m in queue {
                    tr {
                        td { (m.id) }
                        td { (if m.sender.is_empty() { "(a delivery notice)" } else { &m.sender }) }
                        td { (recipients(m)) }
                        td {
                            form method="post" action={ "/mail/queue/" (m.id) "/delete" } {
                                (csrf_field(csrf))
                                button type="submit" { "Delete" }
                            }
                        }
                    }
                }
            }
            form method="post" action="/mail/flush" id="flush" {
                (csrf_field(csrf))
                button type="submit" { "Retry now" }
            }
        }
    }
}

/// `b@y (pending, 2 tries: 421 busy); c@y (...)`.
fn recipients(m: &Queued) -> String {
    m.recipients
        .iter()
        .map(|r| {
            format!(
                "{} ({}, {} tries{})",
                r.address,
                r.state.as_str(),
                r.attempts,
                r.last_error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The registered phones and the calls in progress.
/// The assigned desk phones and how far each got in setting itself up.
fn desk_phones(config: &Config, desk: &[officebox_store::ProvisionedPhone], now: i64) -> Markup {
    let urls = officebox_config::derive::provisioning_urls(config);
    html! {
        @if !config.phone.devices.is_empty() {
            h2 { "Desk phones" }
            table {
                tr { th { "Phone" } th { "User" } th { "Set up" } }
                @for d in &config.phone.devices {
                    @let row = desk.iter().find(|r| r.mac == d.name());
                    tr {
                        td { (d.mac) " (" (d.vendor.name()) ")" }
                        td { (d.user) }
                        td {
                            @match row {
                                Some(r) if r.fetched_at.is_some() => {
                                    "fetched its file " (now - r.fetched_at.unwrap_or(now)) "s ago from "
                                    (r.fetched_from.as_deref().unwrap_or("?")) " ("
                                    (r.user_agent.as_deref().unwrap_or("")) ")"
                                }
                                Some(r) => @if let (Some(t), Some(u)) = (&r.token, &urls) {
                                    "waiting; DHCP gives it its own address. Or set in the phone: "
                                    code { (officebox_config::derive::token_url_at(&u.https, t)) }
                                } @else { "waiting" },
                                None => "waiting",
                            }
                        }
                    }
                }
            }
        }
    }
}

fn phones_tables(regs: &[SipBinding], calls: &[SipCall], now: i64) -> Markup {
    html! {
        h2 { "Registered phones" }
        @if regs.is_empty() {
            p { "No phone is registered." }
        } @else {
            table {
                tr { th { "User" } th { "Phone" } th { "From" } th { "Expires in" } }
                @for b in regs {
                    tr {
                        td { (b.login) }
                        td { (b.user_agent) }
                        td { (b.source) " (" (b.transport) ")" }
                        td { (b.expires_at - now) "s" }
                    }
                }
            }
        }
        h2 { "Calls now" }
        @if calls.is_empty() {
            p { "No call in progress." }
        } @else {
            table {
                tr { th { "From" } th { "To" } th { "State" } }
                @for c in calls {
                    tr { td { (c.caller) } td { (c.callee) } td { (c.state) } }
                }
            }
        }
        p { a href="/calls" { "The call log" } ": every call, with filters and CSV." }
    }
}

/// The lines to providers in the config, each with its state as the phone service last
/// saw it (read-only; they are set in the config file for now).
fn trunks_table(config: &Config, rows: &[TrunkStatus], now: i64) -> Markup {
    let trunks = &config.phone.trunks;
    let within = |at: Option<i64>| at.map_or(String::new(), |t| format!("{}s", (t - now).max(0)));
    html! {
        h2 { "Lines to providers (trunks)" }
        @if trunks.is_empty() {
            p { "No trunk is set up: the phones can call each other only." }
        } @else {
            table id="trunk-table" {
                tr { th { "Name" } th { "Kind" } th { "Provider" } th { "State" } th { "Detail" } }
                @for t in trunks {
                    @let row = rows.iter().find(|r| r.name == t.name);
                    tr {
                        td { (t.name) }
                        td { (t.kind.name()) }
                        td { (t.server) }
                        @match row {
                            _ if !config.phone.enabled => { td { "disabled" } td { "the phone system is off" } }
                            _ if !t.enabled => { td { "disabled" } td {} }
                            None => { td { "unknown" } td { "not started yet" } }
                            Some(r) => {
                                td { (r.state.as_str()) }
                                td {
                                    @match r.state {
                                        TrunkState::Registered => {
                                            "as " (r.detail) " for " (within(r.registered_until)) " more"
                                        }
                                        TrunkState::Failing => {
                                            @if let Some(code) = r.last_code { (code) " " }
                                            (r.last_reason.as_deref().unwrap_or("failed"))
                                            "; next try in " (within(r.next_try_at))
                                        }
                                        _ => { (r.detail) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The DHCP leases, live, each with a button that turns it into a reservation.
fn lease_table(leases: &[Lease], now: i64, csrf: &str) -> Markup {
    let live: Vec<&Lease> = leases
        .iter()
        .filter(|l| l.state == LeaseState::Bound && (l.reserved || l.expires_at > now))
        .collect();
    html! {
        h2 id="leases" { "Addresses lent now" }
        @if live.is_empty() {
            p { "No device holds an address." }
        } @else {
            div.wide {
                table id="lease-table" {
                    tr { th { "Address" } th { "Device" } th { "Name" } th { "Until" } th {} }
                    @for l in live {
                        tr {
                            td { (l.address) }
                            td { (l.mac) }
                            td { (l.hostname.as_deref().unwrap_or("")) }
                            td {
                                @if l.reserved {
                                    "reserved"
                                } @else {
                                    @let left = l.expires_at - now;
                                    (left / 3600) "h " (format!("{:02}", left % 3600 / 60)) "m"
                                }
                            }
                            td {
                                @if !l.reserved {
                                    form method="post" action="/list/reservations/add" {
                                        (csrf_field(csrf))
                                        input type="hidden" name="reservations.mac" value=(l.mac);
                                        input type="hidden" name="reservations.address" value=(l.address);
                                        input type="hidden" name="reservations.hostname"
                                            value=(l.hostname.as_deref().map(host_label).unwrap_or_default());
                                        button type="submit" { "Make this a reservation" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A DHCP client's host name as a DNS label (`Laptop 7` -> `laptop-7`).
fn host_label(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').chars().take(63).collect()
}

/// The zone as the DNS server serves it (it keeps a listing in the state database).
fn zone_table(served: &[ServedRecord]) -> Markup {
    html! {
        h2 id="zone" { "Names served now" }
        @if served.is_empty() {
            p { "The DNS server has not published its names yet (is it on?)." }
        } @else {
            div.wide {
                table id="zone-table" {
                    tr { th { "Name" } th { "Type" } th { "Value" } th { "From" } }
                    @for r in served {
                        tr class={ "from-" (r.source.replace(' ', "-")) } {
                            td { (r.name) }
                            td { (r.rtype) }
                            td { (r.value) }
                            td { (from(&r.source)) }
                        }
                    }
                }
            }
        }
    }
}

/// Where a served name comes from, in words.
fn from(source: &str) -> &str {
    match source {
        "zone" => "the zone itself",
        "built-in" => "built-in",
        "static" => "static record",
        "reservation" => "DHCP reservation",
        "dhcp" => "DHCP client",
        other => other,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn trunks_show_their_state_and_the_providers_words_as_text() {
        const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA";
        let text = format!(
            "[network]\ndomain = \"example.com\"\nmanage = false\n[dns]\nuse_upstream = false\n\
             [[users]]\nlogin = \"admin\"\npassword = \"{HASH}\"\nadmin = true\n\
             [[phone.trunks]]\nname = \"main\"\nserver = \"203.0.113.5\"\nusername = \"u\"\npassword = \"p\"\n\
             [[phone.trunks]]\nname = \"new\"\nserver = \"203.0.113.6\"\nusername = \"u\"\npassword = \"p\"\n"
        );
        let config = officebox_config::parse("t.toml", &text).unwrap();
        let row = TrunkStatus {
            name: "main".into(),
            kind: "register".into(),
            server: "203.0.113.5".into(),
            state: TrunkState::Failing,
            registered_until: None,
            last_code: Some(403),
            last_reason: Some("<b>Forbidden</b>".into()),
            next_try_at: Some(700),
            detail: String::new(),
            updated_at: 100,
        };
        let html = trunks_table(&config, &[row], 100).into_string();
        assert!(html.contains("<td>failing</td>"), "{html}");
        assert!(
            html.contains("403 &lt;b&gt;Forbidden&lt;/b&gt;; next try in 600s"),
            "{html}"
        );
        assert!(
            html.contains("<td>unknown</td>"),
            "the trunk not yet seen: {html}"
        );
    }

    #[test]
    fn host_names_become_dns_labels() {
        assert_eq!(host_label("Laptop 7"), "laptop-7");
        assert_eq!(host_label("--My  PC!"), "my-pc");
    }

    #[test]
    fn a_lease_from_a_hostile_client_is_shown_as_text() {
        let lease = Lease {
            mac: "52:54:00:00:00:01".into(),
            address: "192.168.1.50".parse().unwrap(),
            hostname: Some("<script>x</script>".into()),
            expires_at: 100 + 3600 + 61,
            state: LeaseState::Bound,
            reserved: false,
            client_id: Vec::new(),
        };
        let html = lease_table(&[lease], 100, "tok\"en").into_string();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;x&lt;/script&gt;"), "{html}");
        assert!(html.contains("1h 01m"), "{html}");
        assert!(
            html.contains("name=\"reservations.hostname\" value=\"script-x-script\""),
            "{html}"
        );
        assert!(html.contains("value=\"tok&quot;en\""), "{html}");
    }
}
