//! The Sites page's live part (each site and remote device: where it is, its last
//! handshake, the bytes carried; this office's pairing text and its QR code), and a
//! remote device's own page (its WireGuard configuration as text and as a QR code for
//! the WireGuard apps, and a new key).
//!
//! A device's configuration carries its private key: it is shown on its own page only
//! (admins, the LAN), never in a list, and kept sealed under the box's key
//! (`officebox_secrets::wireguard`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, PreEscaped, html};
use officebox_config::Config;
use officebox_store::SiteStatus;
use tracing::{info, warn};

use crate::app::Shared;
use crate::html::csrf_field;
use crate::routes::{Flash, Me, page, redirect};

/// A QR code of `text` as inline SVG (black on white, with its quiet zone), or a note
/// when the text is too long for one.
pub(crate) fn qr(text: &str, label: &str) -> Markup {
    match qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::L) {
        Ok(code) => {
            let svg = code
                .render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(280, 280)
                .dark_color(qrcode::render::svg::Color("#000000"))
                .light_color(qrcode::render::svg::Color("#ffffff"))
                .build();
            // The renderer's own markup (numbers and fixed words only), not the text's.
            html! { figure.qr role="img" aria-label=(label) { (PreEscaped(svg)) } }
        }
        Err(_) => html! { p.help { "Too long for a QR code: copy the text instead." } },
    }
}

/// The box's key pair (made now if it has none), read off the async threads.
async fn box_key(config: &Config) -> Option<officebox_secrets::wireguard::KeyPair> {
    let dir = config.data_dir.clone();
    tokio::task::spawn_blocking(move || officebox_secrets::wireguard::load_or_make(&dir))
        .await
        .ok()?
        .map_err(|error| warn!(message = "web: the box's WireGuard key cannot be read", %error))
        .ok()
}

/// The live part: each site's and device's state, then this office's pairing text.
pub(crate) async fn live(
    config: &Config,
    rows: &[SiteStatus],
    wan: Option<std::net::Ipv4Addr>,
    now: i64,
) -> Markup {
    let handshake = |at: Option<i64>| match at {
        None => "never".to_string(),
        Some(at) if now - at < 180 => format!("up: {}s ago", (now - at).max(0)),
        Some(at) => format!("quiet: {}s ago", (now - at).max(0)),
    };
    let row = |name: &str| rows.iter().find(|r| r.site == name);
    let bytes = |r: Option<&SiteStatus>| r.map_or((0, 0), |r| (r.sent, r.received));
    let today = officebox_config::dialplan::LocalTime::now(config.phone.timezone.as_deref()).date;
    let key = box_key(config).await;
    let wan = wan.filter(|_| officebox_config::derive::vpn_wan_port(config).is_some());
    html! {
        @if !config.vpn.enabled {
            p { "The tunnels are off: turn them on below to join the other offices and devices." }
        }
        @if !config.vpn.sites.is_empty() {
            table {
                caption { "Other offices" }
                thead { tr { th { "Site" } th { "Its box at" } th { "Last handshake" } th { "Sent" } th { "Received" } th { "Its networks" } th { "Its box answers" } } }
                tbody {
                    @for s in &config.vpn.sites {
                        @let r = row(&s.name);
                        @let (sent, received) = bytes(r);
                        tr {
                            td { (s.name) @if !s.enabled { " (off)" } }
                            td { (r.and_then(|r| r.endpoint.clone()).or_else(|| s.endpoint.as_ref().map(|(h, p)| format!("{h}:{p}"))).unwrap_or_else(|| "-".into())) }
                            td { (handshake(r.and_then(|r| r.handshake_at))) }
                            td { (sent) " B" }
                            td { (received) " B" }
                            td { (s.subnets.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")) }
                            td { (r.and_then(|r| r.services.clone()).unwrap_or_else(|| "-".into())) }
                        }
                    }
                }
            }
        }
        @if !config.vpn.peers.is_empty() {
            table {
                caption { "Devices working from elsewhere" }
                thead { tr { th { "Device" } th { "User" } th { "From" } th { "Last handshake" } th { "Sent" } th { "Received" } } }
                tbody {
                    @for p in &config.vpn.peers {
                        @let r = row(&p.name);
                        @let (sent, received) = bytes(r);
                        tr {
                            td {
                                a href={ "/devices/" (p.name) } { (p.name) }
                                @if !p.enabled { " (off)" } @else if !p.active(today) { " (expired)" }
                            }
                            td { a href={ "/users/" (p.user) } { (p.user) } }
                            td { (r.and_then(|r| r.endpoint.clone()).unwrap_or_else(|| "-".into())) }
                            td { (handshake(r.and_then(|r| r.handshake_at))) }
                            td { (sent) " B" }
                            td { (received) " B" }
                        }
                    }
                }
            }
        }
        @if let Some(key) = key {
            h2 { "This office's pairing text" }
            p { "Give this to the other office's admin (their Sites page, Add site), as text or as the QR code." }
            @let text = officebox_config::derive::pairing_text(config, &key.public_text(), wan);
            pre id="pairing" { (text) }
            (qr(&text, "The pairing text as a QR code"))
        }
    }
}

/// `GET /devices/{name}`: the device's WireGuard configuration, as text and QR code.
pub(crate) async fn show(
    State(app): State<Shared>,
    me: Me,
    Path(name): Path<String>,
    Flash(flash): Flash,
) -> Response {
    let config = app.config();
    let Some(peer) = config.vpn.peers.iter().find(|p| p.name == name).cloned() else {
        return crate::routes::not_found_page(&me);
    };
    let wan = app.store.with(|db| db.wan_address()).await.flatten();
    let wan = officebox_config::derive::wan_address(&config, wan);
    let for_text = std::sync::Arc::clone(&config);
    let device = peer.clone();
    let text = tokio::task::spawn_blocking(move || {
        let key = officebox_secrets::wireguard::load_or_make(&for_text.data_dir)?;
        officebox_secrets::wireguard::client_config(&for_text, &device, &key, wan)
    })
    .await
    .ok()
    .and_then(|r| {
        r.map_err(|error| warn!(message = "web: a device's configuration cannot be made", %error))
            .ok()
    });
    let body = html! {
        p {
            "The WireGuard configuration of " strong { (peer.name) } ", "
            a href={ "/users/" (peer.user) } { (peer.user) } "'s device. In the WireGuard app: add a tunnel, scan the QR code (or import the text as a file). "
            "It holds the device's private key: show it only to its user."
        }
        @if !config.vpn.enabled {
            p.error role="alert" { "The tunnels are off (Sites page): the device cannot connect until they are on." }
        }
        @match &text {
            Some(t) => {
                pre id="device-config" { (t) }
                @if peer.public_key.is_none() {
                    (qr(t, "The device's configuration as a QR code"))
                }
            }
            None => p.error role="alert" { "The configuration cannot be made just now (the box's keys cannot be read)." },
        }
        @if peer.public_key.is_none() {
            h2 { "A new key" }
            p { "If the device is lost, or the configuration was seen by someone else: the old configuration stops working at once, and this page shows the new one." }
            form method="post" action={ "/devices/" (peer.name) "/new-key" } {
                (csrf_field(&me.csrf))
                button type="submit" { "Make a new key" }
            }
        }
    };
    page(
        StatusCode::OK,
        crate::html::page(
            &format!("Device {}", peer.name),
            "/sites",
            Some(me.pair()),
            flash,
            body,
        ),
    )
}

/// `POST /devices/{name}/new-key`: replaces the device's key (the tunnel lets the old
/// one go within seconds).
pub(crate) async fn new_key(
    State(app): State<Shared>,
    me: Me,
    Path(name): Path<String>,
) -> Response {
    let config = app.config();
    let Some(peer) = config
        .vpn
        .peers
        .iter()
        .find(|p| p.name == name && p.public_key.is_none())
    else {
        return crate::routes::not_found_page(&me);
    };
    let (dir, device) = (config.data_dir.clone(), peer.name.clone());
    let made = tokio::task::spawn_blocking(move || {
        let key = officebox_secrets::wireguard::load_or_make(&dir)?;
        officebox_secrets::wireguard::new_device_key(&dir, &device, &key)
    })
    .await;
    match made {
        Ok(Ok(_)) => {
            info!(message = "web: a device was given a new key", device = %name, user = %me.user);
            redirect(&format!("/devices/{name}?saved=1"))
        }
        _ => {
            warn!(message = "web: a device's new key could not be made", device = %name);
            redirect(&format!("/devices/{name}"))
        }
    }
}

/// The devices of user `login`, for their page: each links to its configuration, and a
/// form adds one, its address and key the box's choosing.
pub(crate) fn of_user(config: &Config, login: &str, csrf: &str) -> Markup {
    let mine: Vec<_> = config
        .vpn
        .peers
        .iter()
        .filter(|p| p.user == login)
        .collect();
    html! {
        h2 { "Devices working from elsewhere" }
        @if !mine.is_empty() {
            ul {
                @for p in mine {
                    li {
                        a href={ "/devices/" (p.name) } { (p.name) }
                        " (" (p.address) ", "
                        (if p.full_tunnel { "full tunnel" } else { "office networks only" })
                        @if let Some((y, m, d)) = p.expires { ", until " (format!("{y:04}-{m:02}-{d:02}")) }
                        @if !p.enabled { ", off" }
                        "): its configuration and QR code"
                    }
                }
            }
        }
        @if !config.vpn.enabled {
            p { "The office's tunnels are off (the Sites page turns them on): a device added here works once they are on." }
        }
        form.new-device method="post" action="/list/remote_devices/add" {
            (csrf_field(csrf))
            input type="hidden" name="remote_devices.user" value=(login);
            input type="hidden" name="remote_devices.enabled" value="true";
            label {
                "A new device (a laptop, a phone) "
                input type="text" name="remote_devices.name" required
                    placeholder={ (login) "-laptop" };
            }
            button type="submit" { "Add a device" }
            p.help { "It may reach the whole office network through the office's tunnel; the Sites page changes that. Its configuration and QR code come next." }
        }
    }
}
