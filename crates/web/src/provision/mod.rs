//! The phones' provisioning server: what a desk phone fetches when it starts, told the
//! address by DHCP (options 66, 150, 43) or by the plug-and-play answer.
//!
//! Two listeners, both on the LAN (a request from the WAN side is refused anyway; a
//! remote device through the tunnel is served as the LAN is, a softphone at home):
//! plain HTTP (`phone.provisioning_port`) serves only what is secret-free (the makes'
//! common files, the company phonebook); HTTPS (`phone.provisioning_tls_port`, the box's
//! certificate) serves an assigned phone its own file too, with its extension and the
//! SIP password made for that phone. A MAC address is easy to guess, so the own file is
//! given only
//!
//! - under the phone's one-time token (`/t/<token>/...`, in the address DHCP and
//!   plug-and-play give that MAC while the token is unused; the first own file served
//!   uses it up), or
//! - to HTTP Basic credentials of that phone (its MAC, and a password made from its
//!   secret, which the own file sets in the phone for its later fetches).
//!
//! A MAC nobody assigned gets 404, an assigned one over plain HTTP 403, and wrong
//! credentials 401, counted towards the phones' failed-login limit. The phones' secrets
//! are in the state database (`phone_devices`): made here for every assigned MAC when
//! the config is applied, replaced by "set up again" on the Phones page.

mod files;
mod template;

pub(crate) use template::xml_escaped;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use officebox_config::Config;
use officebox_config::derive::{ClientZone, client_zone};
use officebox_config::model::Device;
use officebox_secrets::login::{Limiter, PHONE};
use officebox_secrets::provision as secrets;
use officebox_store::ProvisionedPhone;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::app::Store;
use crate::listen::Peer;

pub(crate) use files::Asked;

/// What both listeners share.
#[derive(Debug)]
pub(crate) struct Provisioning {
    config: watch::Receiver<Arc<Config>>,
    store: Store,
    /// Wrong credentials, per address (the phones' limit).
    limiter: Arc<Limiter>,
}

impl Provisioning {
    pub(crate) fn new(config: watch::Receiver<Arc<Config>>, store: Store) -> Arc<Provisioning> {
        Arc::new(Provisioning {
            config,
            store,
            limiter: Limiter::new(PHONE),
        })
    }

    /// Gives every assigned phone its secret and token (once), and forgets the phones
    /// no longer assigned.
    pub(crate) async fn assign(&self, config: &Config) {
        let macs: Vec<String> = config.phone.devices.iter().map(Device::name).collect();
        let made = self
            .store
            .with(move |db| {
                for mac in &macs {
                    db.ensure_phone(mac, secrets::fresh)?;
                }
                db.forget_phones_but(&macs)
            })
            .await;
        if made.is_none() {
            warn!(message = "provisioning: cannot keep the phones' secrets");
        }
    }
}

/// The router of one listener: `secure` for HTTPS.
pub(crate) fn router(p: Arc<Provisioning>, secure: bool) -> Router {
    Router::new()
        .route("/{file}", get(plain))
        .route("/t/{token}/{file}", get(with_token))
        .fallback(|| async { not_found() })
        .with_state((p, secure))
}

type St = State<(Arc<Provisioning>, bool)>;

async fn plain(
    State((p, secure)): St,
    Path(file): Path<String>,
    peer: Peer,
    headers: HeaderMap,
) -> Response {
    serve(&p, secure, None, &file, peer.0, &headers).await
}

async fn with_token(
    State((p, secure)): St,
    Path((token, file)): Path<(String, String)>,
    peer: Peer,
    headers: HeaderMap,
) -> Response {
    serve(&p, secure, Some(token), &file, peer.0, &headers).await
}

/// One request for `file`, maybe under a one-time `token`.
async fn serve(
    p: &Provisioning,
    secure: bool,
    token: Option<String>,
    file: &str,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Response {
    let config = Arc::clone(&p.config.borrow());
    if client_zone(&config.network, peer.ip()) == ClientZone::Wan {
        return status(
            StatusCode::FORBIDDEN,
            "phones are set up from the office network only",
        );
    }
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    // Under a token, the phone is the token's (the files it names need not say).
    let by_token = match (&token, secure) {
        (Some(t), true) => {
            let t = t.clone();
            p.store
                .with(move |db| db.phone_by_token(&t))
                .await
                .flatten()
        }
        (Some(_), false) => return status(StatusCode::FORBIDDEN, "tokens are for HTTPS"),
        (None, _) => None,
    };
    if token.is_some() && by_token.is_none() {
        info!(message = "provisioning: an unknown or used token", %peer, file);
        return not_found();
    }
    let token_device = by_token
        .as_ref()
        .and_then(|row| config.phone.devices.iter().find(|d| d.name() == row.mac));
    match files::asked(file, &config, token_device) {
        Asked::Nothing => not_found(),
        Asked::Public(body) => body,
        Asked::Own(device) => {
            own(
                p,
                &config,
                secure,
                device,
                by_token.as_ref(),
                peer,
                headers,
                &agent,
            )
            .await
        }
        Asked::Unassigned(mac) => {
            info!(message = "provisioning: a phone nobody assigned asked for its file", %mac, %peer, user_agent = %agent);
            not_found()
        }
    }
}

/// An assigned phone's own file: over HTTPS, under its token or to its credentials.
#[allow(clippy::too_many_arguments)]
async fn own(
    p: &Provisioning,
    config: &Config,
    secure: bool,
    device: &Device,
    by_token: Option<&ProvisionedPhone>,
    peer: SocketAddr,
    headers: &HeaderMap,
    agent: &str,
) -> Response {
    if !secure {
        return status(
            StatusCode::FORBIDDEN,
            "a phone's own file is served over HTTPS only",
        );
    }
    let mac = device.name();
    let row = match by_token {
        Some(row) if row.mac == mac => {
            let (m, t) = (mac.clone(), row.token.clone().unwrap_or_default());
            if p.store.with(move |db| db.use_phone_token(&m, &t)).await != Some(true) {
                return not_found();
            }
            info!(message = "provisioning: a phone used its one-time token", %mac, %peer);
            row.clone()
        }
        Some(_) => return not_found(),
        None => {
            let m = mac.clone();
            let Some(Some(row)) = p.store.with(move |db| db.provisioned_phone(&m)).await else {
                return status(StatusCode::SERVICE_UNAVAILABLE, "try again shortly");
            };
            if let Some(r) = check_basic(p, peer.ip(), headers, &mac, &row.secret) {
                return r;
            }
            row
        }
    };
    let (m, from, a) = (mac.clone(), peer.ip().to_string(), agent.to_string());
    let _ = p
        .store
        .with(move |db| db.phone_fetched(&m, &from, &a))
        .await;
    info!(message = "provisioning: a phone fetched its own file", %mac, user = %device.user, %peer, user_agent = %agent);
    files::own_file(config, device, &row.secret)
}

/// The phone's HTTP Basic credentials, checked under the failed-login limit: `None` when
/// they are right, else the answer (401, or 429 for an address locked out).
fn check_basic(
    p: &Provisioning,
    ip: IpAddr,
    headers: &HeaderMap,
    mac: &str,
    secret: &str,
) -> Option<Response> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok());
    let Some(given) = given else {
        return Some(challenge());
    };
    let Ok(attempt) = p.limiter.begin_now(ip) else {
        return Some(status(
            StatusCode::TOO_MANY_REQUESTS,
            "too many wrong passwords from this address; wait a few minutes",
        ));
    };
    let (user, password) = given.split_once(':').unwrap_or((given.as_str(), ""));
    let right = user.eq_ignore_ascii_case(mac)
        && constant_time_eq(
            password.as_bytes(),
            secrets::http_password(secret).as_bytes(),
        );
    if right {
        attempt.succeeded();
        None
    } else {
        attempt.failed();
        info!(message = "provisioning: wrong credentials", %mac, %ip);
        Some(challenge())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn challenge() -> Response {
    let mut r = status(StatusCode::UNAUTHORIZED, "this phone's credentials, please");
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"officebox phones\""),
    );
    r
}

fn not_found() -> Response {
    status(StatusCode::NOT_FOUND, "no such file")
}

fn status(code: StatusCode, why: &'static str) -> Response {
    let mut r = (code, format!("{why}\n")).into_response();
    no_store(&mut r);
    r
}

/// Nothing a phone fetches is kept by a cache on the way.
fn no_store(r: &mut Response) {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}
