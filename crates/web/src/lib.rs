//! officebox's admin pages: every setting on a page an office manager understands, saved
//! only when the whole config is valid (errors beside their fields), written atomically
//! with the last 20 versions kept, and risky changes (addresses, the security mode)
//! applied with confirm-or-revert.
//!
//! - [`html`]: escaping, the page frame, accessible fields.
//! - [`settings`]: the settings pages as data (config paths, labels, help).
//! - [`session`]: logins, sessions, CSRF tokens, the failed-login limit.
//! - [`history`]: config versions, diffs and rollback.
//!
//! Served over HTTP/1.1 (hyper) on the LAN only (`web.admin_port`); requests from the WAN
//! side are refused even if they arrive. Every response carries security headers; every
//! form that changes something carries the session's CSRF token.

pub mod history;
pub mod html;
pub mod lists;
pub mod people;
pub mod recent;
pub mod session;
pub mod settings;
pub mod site;

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, LOCATION, SET_COOKIE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use officebox_config::derive::{ClientZone, bind_addresses, client_zone};
use officebox_config::model::Service;
use officebox_config::{Config, Diagnostic};
use officebox_sockets::ConnLimits;
use officebox_sockets::tcp::Accepted;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::html::{Field, Kind, escape};
use crate::people::Change;
use crate::session::{Login, Sessions};
use crate::settings::{FieldKind, PageDef};

/// The config file officebox runs from (set by the binary before services start).
static CONFIG_PATH: OnceLock<PathBuf> = OnceLock::new();

/// Tells the web service which file to edit.
pub fn set_config_path(path: &Path) {
    let _ = CONFIG_PATH.set(path.to_path_buf());
}

/// The largest form accepted.
const MAX_BODY: usize = 64 * 1024;

type Body = Full<Bytes>;

/// The non-empty part of `path` between `prefix` and `suffix`, if it has both: the
/// resource a route like `/users/{login}/delete` names (`/users/delete` names none).
fn between<'p>(path: &'p str, prefix: &str, suffix: &str) -> Option<&'p str> {
    path.strip_prefix(prefix)?
        .strip_suffix(suffix)
        .filter(|middle| !middle.is_empty())
}

/// A change waiting for confirmation.
#[derive(Debug, Clone)]
struct Pending {
    previous: String,
    deadline: Instant,
    what: String,
}

/// What every request shares.
struct App {
    config: watch::Receiver<Arc<Config>>,
    sessions: Sessions,
    pending: Mutex<Option<Pending>>,
    started: Instant,
}

/// Runs the admin site until `shutdown`.
pub async fn serve(
    config_rx: watch::Receiver<Arc<Config>>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let config = Arc::clone(&config_rx.borrow());
    let app = Arc::new(App {
        config: config_rx.clone(),
        sessions: Sessions::new(config.web.session_timeout),
        pending: Mutex::new(None),
        started: Instant::now(),
    });
    let mut rx = config_rx.clone();
    let mut first = true;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let config = Arc::clone(&rx.borrow_and_update());
        let bound = binding(&config);
        let mut tasks = match bind(&app, &config_rx, &config).await {
            Ok(t) => t,
            Err(e) if first => return Err(e),
            // A change moved the pages somewhere they cannot be: until the next change
            // (a risky change comes back by itself) nothing listens.
            Err(error) => {
                error!(message = "web: cannot listen where the config says", %error);
                tokio::task::JoinSet::new()
            }
        };
        first = false;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => {
                    tasks.shutdown().await;
                    return Ok(());
                }
                _ = tick.tick() => revert_if_unconfirmed(&app).await,
                changed = rx.changed() => {
                    if changed.is_err() {
                        tasks.shutdown().await;
                        return Ok(());
                    }
                    let c = Arc::clone(&rx.borrow_and_update());
                    app.sessions.set_timeout(c.web.session_timeout);
                    if binding(&c) != bound {
                        info!(message = "web: the ports or HTTPS changed; listening anew");
                        break;
                    }
                }
            }
        }
        tasks.shutdown().await;
    }
}

/// What the listeners depend on; a change rebinds them.
fn binding(c: &Config) -> (Vec<std::net::IpAddr>, u16, bool, Vec<std::net::IpAddr>, u16) {
    (
        bind_addresses(c, Service::Admin),
        c.web.admin_port,
        c.web.https,
        bind_addresses(c, Service::Www),
        c.web.site_port,
    )
}

/// The admin pages' listeners (over TLS with `web.https`) and the sites'.
async fn bind(
    app: &Arc<App>,
    config_rx: &watch::Receiver<Arc<Config>>,
    config: &Arc<Config>,
) -> io::Result<tokio::task::JoinSet<()>> {
    let tls = if config.web.https {
        let c = Arc::clone(config);
        Some(
            tokio::task::spawn_blocking(move || officebox_secrets::tls::acceptor(&c))
                .await
                .map_err(io::Error::other)??,
        )
    } else {
        None
    };
    let mut listeners = Vec::new();
    for ip in bind_addresses(config, Service::Admin) {
        let addr = SocketAddr::new(ip, config.web.admin_port);
        let l = listen(addr).await.map_err(|e| {
            io::Error::new(e.kind(), format!("web: cannot listen on tcp {addr}: {e}"))
        })?;
        info!(message = "web: serving the admin pages", %addr, https = tls.is_some());
        listeners.push(l);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for l in listeners {
        tasks.spawn(accept(l, Arc::clone(app), tls.clone()));
    }
    site::start(config_rx, &mut tasks).await?;
    Ok(tasks)
}

/// A listener on `addr`, which may be the LAN address before the network service has put
/// it on the interface (they start together): see `officebox_sockets::tcp::listen`.
async fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    officebox_sockets::tcp::listen(addr).await
}

/// Connections the admin pages and the sites each serve at once (and from one address,
/// `officebox_sockets::limits::PER_ADDRESS`).
pub(crate) const MAX_CONNECTIONS: usize = 256;

async fn accept(listener: TcpListener, app: Arc<App>, tls: Option<tokio_rustls::TlsAcceptor>) {
    let limits = ConnLimits::new(officebox_sockets::limits::PER_ADDRESS, MAX_CONNECTIONS);
    loop {
        let (stream, peer, slot) = match officebox_sockets::tcp::accept(&listener, &limits).await {
            Accepted::Admitted(stream, peer, slot) => (stream, peer, slot),
            Accepted::Refused(_, peer, why) => {
                debug!(message = "web: connection refused", %peer, reason = %why);
                continue;
            }
        };
        let (app, tls) = (Arc::clone(&app), tls.clone());
        tokio::spawn(async move {
            let _slot = slot;
            match tls {
                None => serve_connection(stream, app, peer).await,
                Some(tls) => {
                    match tokio::time::timeout(Duration::from_secs(20), tls.accept(stream)).await {
                        Ok(Ok(stream)) => serve_connection(stream, app, peer).await,
                        Ok(Err(error)) => {
                            debug!(message = "web: TLS handshake failed", %peer, %error);
                        }
                        Err(_) => debug!(message = "web: TLS handshake timed out", %peer),
                    }
                }
            }
        });
    }
}

async fn serve_connection<S>(stream: S, app: Arc<App>, peer: SocketAddr)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    serve_http1(stream, peer, "web: connection ended", move |req| {
        let app = Arc::clone(&app);
        async move { app.handle(req, peer).await }
    })
    .await;
}

/// Serves one HTTP/1.1 connection (admin pages or sites) with `handle`, under the same
/// rules for both: a request's headers must arrive within 20 s.
pub(crate) async fn serve_http1<S, F, Fut, B>(
    stream: S,
    peer: SocketAddr,
    ended: &'static str,
    handle: F,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<Incoming>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let svc = service_fn(move |req| {
        let response = handle(req);
        async move { Ok::<_, Infallible>(response.await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(20))
        .serve_connection(TokioIo::new(stream), svc);
    if let Err(error) = conn.await {
        debug!(message = ended, %peer, %error);
    }
}

/// A response with the security headers every page carries.
fn respond(status: StatusCode, body: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    for (k, v) in [
        ("content-type", "text/html; charset=utf-8"),
        (
            "content-security-policy",
            "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
        ("cache-control", "no-store"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    r
}

fn redirect(to: &str) -> Response<Body> {
    let mut r = respond(StatusCode::SEE_OTHER, String::new());
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}

/// `application/x-www-form-urlencoded` pairs.
pub fn form(body: &[u8]) -> Vec<(String, String)> {
    let decode = |s: &str| -> String {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => {
                    match u8::from_str_radix(
                        std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"),
                        16,
                    ) {
                        Ok(v) => {
                            out.push(v);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// The last value of `name` in a form (a checkbox sends a hidden "false" first).
fn value<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The value of cookie `name` among the request's `name=value` pairs.
fn cookie_value(cookies: &[String], name: &str) -> Option<String> {
    cookies.iter().find_map(|c| {
        c.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('='))
            .map(str::to_string)
    })
}

use officebox_store::unix_now as now_unix;

impl App {
    fn config(&self) -> Arc<Config> {
        Arc::clone(&self.config.borrow())
    }

    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let config = self.config();
        // The admin pages are for the LAN; a request from the WAN side is refused even if
        // it got here.
        if client_zone(&config.network, peer.ip()) == ClientZone::Wan {
            return respond(
                StatusCode::FORBIDDEN,
                html::page(
                    "Forbidden",
                    "",
                    None,
                    None,
                    "<p>The admin pages answer only on the office network.</p>",
                ),
            );
        }
        let method = req.method().clone();
        let host = req
            .headers()
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_string();
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let req_cookies: Vec<String> = req
            .headers()
            .get_all("cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .map(|c| c.trim().to_string())
            .collect();
        let cookie = cookie_value(&req_cookies, "officebox_session");
        let body = if method == Method::POST {
            match Limited::new(req.into_body(), MAX_BODY).collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => {
                    return respond(StatusCode::PAYLOAD_TOO_LARGE, "form too large".into());
                }
            }
        } else {
            Bytes::new()
        };
        let pairs = form(&body);
        if method == Method::GET && path == html::SCRIPT_PATH {
            return script();
        }
        if path == "/login" {
            let login_cookie = cookie_value(&req_cookies, "officebox_login");
            return self
                .login(&method, &pairs, peer, &config, login_cookie.as_deref())
                .await;
        }
        // The live tables' refresh is the page's doing, not the user's: it does not
        // keep an idle session alive.
        let by_page = method == Method::GET && path.starts_with("/live/");
        let session = cookie.as_deref().and_then(|t| {
            if by_page {
                self.sessions.peek(t)
            } else {
                self.sessions.get(t)
            }
        });
        let Some(session) = session else {
            return redirect("/login");
        };
        if method == Method::POST
            && !session::same(value(&pairs, "csrf").unwrap_or(""), &session.csrf)
        {
            warn!(message = "web: a form without the right CSRF token was refused", %peer, %path);
            return respond(
                StatusCode::FORBIDDEN,
                html::page(
                    "Forbidden",
                    "",
                    None,
                    None,
                    "<p>This form has expired; go back, reload the page and try again.</p>",
                ),
            );
        }
        let me = (session.user.as_str(), session.csrf.as_str());
        let flash = query
            .strip_prefix("saved=")
            .map(|_| ("Saved and applied.", true))
            .or_else(|| {
                query
                    .strip_prefix("reverted=")
                    .map(|_| ("The previous settings are back.", true))
            });
        if method == Method::POST
            && let Some((def, owner, op)) = list_route(&path)
        {
            return self
                .list_change(&config, me, def, owner.as_deref(), op, &pairs)
                .await;
        }
        match (method.clone(), path.as_str()) {
            (Method::POST, "/logout") => {
                if let Some(t) = cookie {
                    self.sessions.end(&t);
                }
                let mut r = redirect("/login");
                r.headers_mut().insert(
                    SET_COOKIE,
                    HeaderValue::from_static(
                        "officebox_session=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict",
                    ),
                );
                r
            }
            (Method::GET, "/") => respond(StatusCode::OK, self.home(&config, me, flash).await),
            (Method::GET, "/confirm") => respond(StatusCode::OK, self.confirm_page(me)),
            (Method::POST, "/confirm") => {
                // Kept only before the deadline; after it the revert has the change.
                let kept = {
                    let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
                    match pending.as_ref() {
                        Some(p) if Instant::now() < p.deadline => pending.take(),
                        _ => None,
                    }
                };
                match kept {
                    Some(p) => {
                        info!(message = "web: change kept", what = %p.what, user = %me.0);
                        redirect("/?saved=1")
                    }
                    // Too late (or kept already, from another page).
                    None => respond(StatusCode::OK, self.confirm_page(me)),
                }
            }
            (Method::GET, p) if p.starts_with("/live/") => {
                let page = &p["/live".len()..];
                match live_state(&config, page, me.1).await {
                    Some(fragment) => respond(StatusCode::OK, fragment),
                    None => respond(StatusCode::NOT_FOUND, String::new()),
                }
            }
            (Method::GET, "/history") => respond(StatusCode::OK, history::list_page(&config, me)),
            (Method::GET, p) if p.starts_with("/history/") => {
                match history::show_page(&config, me, &p["/history/".len()..]) {
                    Some(body) => respond(StatusCode::OK, body),
                    None => respond(
                        StatusCode::NOT_FOUND,
                        html::page("Not found", "", Some(me), None, ""),
                    ),
                }
            }
            (Method::POST, p) if between(p, "/history/", "/rollback").is_some() => {
                let n = between(p, "/history/", "/rollback").unwrap_or_default();
                match history::version_text(&config, n) {
                    Some(text) => match self.save(&config, &text, "rollback", true).await {
                        Ok(()) => redirect("/confirm"),
                        Err(e) => respond(
                            StatusCode::OK,
                            html::page(
                                "Config History",
                                "/history",
                                Some(me),
                                Some((&e, false)),
                                "",
                            ),
                        ),
                    },
                    None => respond(
                        StatusCode::NOT_FOUND,
                        html::page("Not found", "", Some(me), None, ""),
                    ),
                }
            }
            (Method::GET, "/users") => respond(
                StatusCode::OK,
                self.users(&config, me, &[], None, flash).await,
            ),
            (Method::POST, "/users") => {
                let change = Change::AddUser {
                    login: value(&pairs, "login")
                        .unwrap_or("")
                        .trim()
                        .to_ascii_lowercase(),
                    name: value(&pairs, "name").unwrap_or("").to_string(),
                    extension: value(&pairs, "extension").unwrap_or("").to_string(),
                    password: value(&pairs, "password").unwrap_or("").to_string(),
                    admin: value(&pairs, "admin") == Some("true"),
                };
                self.change(me, change, "/users").await
            }
            (Method::GET, "/aliases") => respond(
                StatusCode::OK,
                people::aliases_page(&config, me, &[], None, flash),
            ),
            (Method::POST, "/aliases") => {
                let change = Change::SetAlias {
                    name: value(&pairs, "alias")
                        .unwrap_or("")
                        .trim()
                        .to_ascii_lowercase(),
                    members: value(&pairs, "members")
                        .unwrap_or("")
                        .split(',')
                        .map(|m| m.trim().to_ascii_lowercase())
                        .filter(|m| !m.is_empty())
                        .collect(),
                };
                self.change(me, change, "/aliases").await
            }
            (Method::POST, p) if between(p, "/users/", "/delete").is_some() => {
                let login = between(p, "/users/", "/delete")
                    .unwrap_or_default()
                    .to_string();
                self.change(me, Change::DeleteUser(login), "/users").await
            }
            (Method::GET, p) if p.starts_with("/users/") => {
                match self.user_page(&config, me, &p["/users/".len()..], flash, None) {
                    Some(b) => respond(StatusCode::OK, b),
                    None => respond(
                        StatusCode::NOT_FOUND,
                        html::page("Not found", "", Some(me), None, ""),
                    ),
                }
            }
            (Method::POST, p)
                if p.strip_prefix("/users/")
                    .is_some_and(|login| config.users.iter().any(|u| u.login == login)) =>
            {
                let change = Change::EditUser {
                    login: p["/users/".len()..].to_string(),
                    name: value(&pairs, "name").unwrap_or("").to_string(),
                    extension: value(&pairs, "extension").unwrap_or("").to_string(),
                    admin: value(&pairs, "admin") == Some("true"),
                    password: value(&pairs, "password").unwrap_or("").to_string(),
                    pin: value(&pairs, "pin").unwrap_or("").to_string(),
                };
                self.change(me, change, "/users").await
            }
            (Method::POST, "/mail/flush") => {
                let dir = config.data_dir.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    officebox_store::Db::open(&officebox_store::state_db(&dir))
                        .and_then(|db| db.flush_queue(now_unix()))
                })
                .await;
                info!(message = "web: mail queue flushed", user = %me.0);
                redirect("/mail?saved=1")
            }
            (Method::POST, p) if between(p, "/mail/queue/", "/delete").is_some() => {
                let id: i64 = between(p, "/mail/queue/", "/delete")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(-1);
                let dir = config.data_dir.clone();
                let _ = tokio::task::spawn_blocking(
                    move || -> Result<(), officebox_store::StoreError> {
                        let db = officebox_store::Db::open(&officebox_store::state_db(&dir))?;
                        if let Some(m) = db.queue()?.into_iter().find(|m| m.id == id) {
                            // The queue's paths are as officebox wrote them (from its own
                            // working directory, which is ours).
                            let _ = std::fs::remove_file(&m.path);
                            db.remove_message(id)?;
                        }
                        Ok(())
                    },
                )
                .await;
                info!(message = "web: queued message deleted", id, user = %me.0);
                redirect("/mail?saved=1")
            }
            (m, p) => match settings::page(p) {
                Some(page) if m == Method::GET => respond(
                    StatusCode::OK,
                    self.settings_page(&config, page, me, None, &[], flash, None)
                        .await,
                ),
                Some(page) if m == Method::POST => {
                    self.save_settings(page, me, &pairs, &host).await
                }
                _ => respond(
                    StatusCode::NOT_FOUND,
                    html::page(
                        "Not found",
                        "",
                        Some(me),
                        None,
                        "<p>There is no such page.</p>",
                    ),
                ),
            },
        }
    }

    /// The login form carries a token that must match a cookie set with it (so another
    /// site cannot post a login in the admin's browser).
    async fn login(
        &self,
        method: &Method,
        pairs: &[(String, String)],
        peer: SocketAddr,
        config: &Config,
        login_cookie: Option<&str>,
    ) -> Response<Body> {
        let secure = if config.web.https { "; Secure" } else { "" };
        // A page that loads twice (or a second request, like the favicon's) keeps the
        // token the form already carries.
        let token = login_cookie
            .filter(|c| c.len() == 32 && c.bytes().all(|b| b.is_ascii_hexdigit()))
            .map_or_else(session::new_token, str::to_string);
        let form = |status: StatusCode, error: Option<&str>| {
            let mut r = respond(
                status,
                html::page(
                    "Log in",
                    "",
                    None,
                    error.map(|e| (e, false)),
                    &format!(
                        "<form method=\"post\" action=\"/login\">\
                         <input type=\"hidden\" name=\"csrf\" value=\"{token}\">\
                         <div class=\"field\"><label for=\"user\">User</label>\
                         <input type=\"text\" id=\"user\" name=\"user\" autocomplete=\"username\"></div>\
                         <div class=\"field\"><label for=\"password\">Password</label>\
                         <input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\"></div>\
                         <button type=\"submit\">Log in</button></form>"
                    ),
                ),
            );
            let cookie =
                format!("officebox_login={token}; Path=/login; HttpOnly; SameSite=Strict{secure}");
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                r.headers_mut().insert(SET_COOKIE, v);
            }
            r
        };
        if *method != Method::POST {
            return form(StatusCode::OK, None);
        }
        let token_ok = matches!(
            (login_cookie, value(pairs, "csrf")),
            (Some(c), Some(f)) if !c.is_empty() && session::same(c, f)
        );
        if !token_ok {
            warn!(message = "web: a login without the form's token was refused", %peer);
            return form(
                StatusCode::FORBIDDEN,
                Some("This form had expired; please log in again."),
            );
        }
        let user = value(pairs, "user")
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let password = value(pairs, "password").unwrap_or("").to_string();
        match self
            .sessions
            .login(config, &user, &password, peer.ip())
            .await
        {
            Login::Ok { token } => {
                info!(message = "web: logged in", %user, %peer);
                let mut r = redirect("/");
                let cookie = format!(
                    "officebox_session={token}; Path=/; HttpOnly; SameSite=Strict{}",
                    if config.web.https { "; Secure" } else { "" }
                );
                if let Ok(v) = HeaderValue::from_str(&cookie) {
                    r.headers_mut().insert(SET_COOKIE, v);
                }
                r
            }
            Login::Wrong => {
                warn!(message = "web: failed login", %user, %peer);
                form(StatusCode::UNAUTHORIZED, Some("Wrong user or password."))
            }
            Login::Limited => form(
                StatusCode::TOO_MANY_REQUESTS,
                Some("Too many failed logins from this computer; wait ten minutes."),
            ),
            Login::Busy => form(
                StatusCode::SERVICE_UNAVAILABLE,
                Some("The box is busy checking other logins; try again in a moment."),
            ),
        }
    }

    async fn home(&self, config: &Config, me: (&str, &str), flash: Option<(&str, bool)>) -> String {
        let data_dir = config.data_dir.clone();
        let facts = tokio::task::spawn_blocking(move || {
            let db = officebox_store::Db::open(&officebox_store::state_db(&data_dir)).ok()?;
            let wan = db.wan_address().ok().flatten();
            let queue = db.queue().map(|q| q.len()).unwrap_or(0);
            let phones = db.bindings(now_unix()).map(|b| b.len()).unwrap_or(0);
            Some((wan, queue, phones))
        })
        .await
        .ok()
        .flatten();
        let (leased, queue, phones) = facts.unwrap_or((None, 0, 0));
        let wan = officebox_config::derive::wan_address(config, leased).map(|a| a.to_string());
        let wan_how = match config.network.wan.addressing {
            _ if !officebox_config::derive::wan_in_use(config.security.mode) => {
                "lan-only mode: the WAN is not used"
            }
            officebox_config::WanAddressing::Dhcp { .. } => "leased from the ISP by DHCP",
            officebox_config::WanAddressing::Static { .. } => {
                "static, as entered in Network Settings"
            }
        };
        let up = self.started.elapsed().as_secs();
        let services = [
            ("DNS", config.dns.enabled),
            ("DHCP", config.dhcp.enabled),
            ("Mail", config.mail.enabled),
            ("Phones", config.phone.enabled),
            ("Time (NTP)", config.ntp.enabled),
        ];
        let mut rows = String::new();
        for (name, on) in services {
            rows.push_str(&format!(
                "<tr><td>{name}</td><td>{}</td></tr>",
                if on { "running" } else { "off" }
            ));
        }
        let body = format!(
            "<h2>Services</h2><table>{rows}</table>\
             <h2>Internet</h2><p>WAN address: <strong>{}</strong> ({wan_how}).</p>\
             <h2>Status</h2><table>\
             <tr><td>Up for</td><td>{}h {:02}m</td></tr>\
             <tr><td>Mail waiting to go out</td><td>{queue}</td></tr>\
             <tr><td>Phones registered</td><td>{phones}</td></tr></table>\
             <h2>Recent problems</h2>{}",
            escape(&wan.unwrap_or_else(|| "none yet".into())),
            up / 3600,
            up % 3600 / 60,
            problems_table()
        );
        html::page("Home", "/", Some(me), flash, &body)
    }

    /// A settings page: its live state (the queue, the leases, ...), its settings, then
    /// its lists. `submitted` and `diags` re-show a refused form; `failed` a refused row.
    #[allow(clippy::too_many_arguments)]
    async fn settings_page(
        &self,
        config: &Config,
        page: &PageDef,
        me: (&str, &str),
        submitted: Option<&[(String, String)]>,
        diags: &[Diagnostic],
        flash: Option<(&str, bool)>,
        failed: Option<&ListFailure<'_>>,
    ) -> String {
        let text = config_text().unwrap_or_default();
        let doc: toml_edit::DocumentMut = text.parse().unwrap_or_default();
        let live = match live_state(config, page.path, me.1).await {
            Some(live) => format!(
                "<div id=\"live\" data-live=\"/live{}\">{live}</div><h2>Settings</h2>",
                page.path
            ),
            None => String::new(),
        };
        let mut body = format!(
            "<p>{}</p>{live}<form method=\"post\" action=\"{}\" id=\"settings\" novalidate>\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">",
            escape(page.intro),
            page.path,
            escape(me.1)
        );
        for fd in page.fields {
            let in_file = settings::read(&doc, fd);
            let default = settings::effective(config, fd.key).unwrap_or_default();
            let current = match submitted {
                Some(pairs) => value(pairs, fd.key).unwrap_or("").to_string(),
                // A switch left out of the file shows what officebox does.
                None if in_file.is_empty() && matches!(fd.kind, FieldKind::Bool) => default.clone(),
                None => in_file,
            };
            let error = html::field_errors(settings::errors_for(diags, fd));
            let kind = match fd.kind {
                FieldKind::Bool => Kind::Check,
                FieldKind::Select(o) => Kind::Select(o),
                _ => Kind::Text,
            };
            body.push_str(
                &Field {
                    name: fd.key,
                    label: fd.label,
                    help: fd.help,
                    value: &current,
                    placeholder: if matches!(
                        fd.kind,
                        FieldKind::Text | FieldKind::Int | FieldKind::List
                    ) {
                        &default
                    } else {
                        ""
                    },
                    error: error.as_deref(),
                    kind,
                }
                .render(),
            );
        }
        // Problems elsewhere in the file (a setting this page does not show).
        let elsewhere: Vec<&Diagnostic> = diags
            .iter()
            .filter(|d| {
                page.fields
                    .iter()
                    .all(|f| settings::errors_for(std::slice::from_ref(d), f).is_empty())
            })
            .collect();
        if !elsewhere.is_empty() {
            body.push_str(&format!(
                "<div class=\"error\" role=\"alert\"><p>Other problems in the config:</p><ul>{}</ul></div>",
                html::problem_items(elsewhere)
            ));
        }
        if page.risky {
            body.push_str(&format!(
                "<p class=\"help\">These settings can cut this computer off the box: after saving, you have {} seconds to confirm, or the previous settings come back by themselves.</p>",
                self.config().web.confirm_timeout.as_secs()
            ));
        }
        body.push_str("<button type=\"submit\">Save</button></form>");
        body.push_str(&lists_html(&doc, page.path, None, me.1, failed));
        html::page(page.title, page.path, Some(me), flash, &body)
    }

    async fn save_settings(
        &self,
        page: &'static PageDef,
        me: (&str, &str),
        pairs: &[(String, String)],
        host: &str,
    ) -> Response<Body> {
        let Some(text) = config_text() else {
            return respond(
                StatusCode::INTERNAL_SERVER_ERROR,
                html::page(
                    page.title,
                    page.path,
                    Some(me),
                    Some(("The config file cannot be read.", false)),
                    "",
                ),
            );
        };
        let Ok(mut doc) = text.parse::<toml_edit::DocumentMut>() else {
            return respond(
                StatusCode::INTERNAL_SERVER_ERROR,
                html::page(
                    page.title,
                    page.path,
                    Some(me),
                    Some(("The config file is not valid TOML.", false)),
                    "",
                ),
            );
        };
        for fd in page.fields {
            if let Some(v) = value(pairs, fd.key) {
                settings::write(&mut doc, fd, v);
            }
        }
        settings::prune_empty_tables(&mut doc, page);
        let new = doc.to_string();
        let path = config_path_display();
        if let Err(d) = officebox_config::parse(&path, &new) {
            info!(
                message = "web: settings refused",
                page = page.path,
                problems = d.0.len()
            );
            return respond(
                StatusCode::UNPROCESSABLE_ENTITY,
                self.settings_page(
                    &self.config(),
                    page,
                    me,
                    Some(pairs),
                    &d.0,
                    Some(("Nothing was saved: see the problems below.", false)),
                    None,
                )
                .await,
            );
        }
        if new == text {
            return redirect(&format!("{}?saved=1", page.path));
        }
        let config = self.config();
        match self.save(&config, &new, page.title, page.risky).await {
            Ok(()) if page.risky => {
                let to = confirm_location(&config, &self.config(), host);
                if to.starts_with('/') {
                    return redirect(&to);
                }
                // A form may not redirect to another origin (CSP form-action): a link does.
                respond(
                    StatusCode::OK,
                    html::page(
                        "The admin pages have moved",
                        "",
                        Some(me),
                        None,
                        &format!(
                            "<p>They answer at their new address now. Go there and keep the \
                             change within {secs} seconds, or the previous settings come back by \
                             themselves.</p><p><a href=\"{to}\" id=\"moved\">Continue at {to}</a></p>",
                            to = escape(&to),
                            secs = self.config().web.confirm_timeout.as_secs()
                        ),
                    ),
                )
            }
            Ok(()) => redirect(&format!("{}?saved=1", page.path)),
            Err(e) => respond(
                StatusCode::INTERNAL_SERVER_ERROR,
                self.settings_page(&config, page, me, Some(pairs), &[], Some((&e, false)), None)
                    .await,
            ),
        }
    }

    /// Writes `new` as the config (atomically, the old one kept in the history), and has
    /// officebox reload it. `risky`: the previous text comes back unless confirmed.
    async fn save(
        &self,
        config: &Config,
        new: &str,
        what: &str,
        risky: bool,
    ) -> Result<(), String> {
        let Some(path) = CONFIG_PATH.get().cloned() else {
            return Err("officebox did not say which file it runs from".into());
        };
        let previous = config_text().unwrap_or_default();
        let keep = previous.clone();
        let (dir, new_text) = (config.data_dir.clone(), new.to_string());
        let write_path = path.clone();
        let r = tokio::task::spawn_blocking(move || {
            history::record(&dir, &previous, &new_text)?;
            officebox_store::write_atomic(&write_path, new_text.as_bytes(), 0o600)
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?;
        r?;
        if risky {
            *self.pending.lock().unwrap_or_else(PoisonError::into_inner) = Some(Pending {
                previous: keep,
                deadline: Instant::now() + config.web.confirm_timeout,
                what: what.to_string(),
            });
        }
        info!(message = "web: config saved", %what, file = %path.display());
        // Wait for the reload to reach the services (and this page's next render), so
        // what the browser sees next is the new config.
        let mut rx = self.config.clone();
        rx.borrow_and_update();
        reload();
        let _ = tokio::time::timeout(Duration::from_secs(3), rx.changed()).await;
        Ok(())
    }

    async fn users(
        &self,
        config: &Config,
        me: (&str, &str),
        diags: &[Diagnostic],
        error: Option<&str>,
        flash: Option<(&str, bool)>,
    ) -> String {
        let data_dir = config.data_dir.clone();
        let fetch = tokio::task::spawn_blocking(move || {
            officebox_store::Db::open(&officebox_store::state_db(&data_dir))
                .and_then(|db| db.fetch_statuses())
                .map(|v| {
                    v.into_iter()
                        .map(|s| (s.account, s.last_error, s.fetched))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
        .await
        .unwrap_or_default();
        people::users_page(config, me, &fetch, diags, error, flash)
    }

    /// A change from a list page: applied to the config text, validated whole, saved.
    async fn change(&self, me: (&str, &str), change: Change, back: &'static str) -> Response<Body> {
        let config = self.config();
        let Some(text) = config_text() else {
            return respond(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the config file cannot be read".into(),
            );
        };
        let applied = tokio::task::spawn_blocking({
            let text = text.clone();
            move || people::apply(&text, &change)
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        let refuse = |diags: &[Diagnostic], error: Option<&str>| -> String {
            match back {
                "/aliases" => people::aliases_page(
                    &config,
                    me,
                    diags,
                    error,
                    Some(("Nothing was saved.", false)),
                ),
                _ => people::users_page(
                    &config,
                    me,
                    &[],
                    diags,
                    error,
                    Some(("Nothing was saved.", false)),
                ),
            }
        };
        let new = match applied {
            Ok(n) => n,
            Err(e) => return respond(StatusCode::UNPROCESSABLE_ENTITY, refuse(&[], Some(&e))),
        };
        if let Err(d) = officebox_config::parse(&config_path_display(), &new) {
            return respond(StatusCode::UNPROCESSABLE_ENTITY, refuse(&d.0, None));
        }
        match self
            .save(&config, &new, back.trim_start_matches('/'), false)
            .await
        {
            Ok(()) => redirect(&format!("{back}?saved=1")),
            Err(e) => respond(StatusCode::INTERNAL_SERVER_ERROR, refuse(&[], Some(&e))),
        }
    }

    /// One user's page, with their external mailboxes.
    fn user_page(
        &self,
        config: &Config,
        me: (&str, &str),
        login: &str,
        flash: Option<(&str, bool)>,
        failed: Option<&ListFailure<'_>>,
    ) -> Option<String> {
        let doc: toml_edit::DocumentMut = config_text().unwrap_or_default().parse().ok()?;
        let extra = lists_html(&doc, "/users", Some(login), me.1, failed);
        people::user_page(config, me, login, flash, &extra)
    }

    /// Adds or removes a row of a list; validated whole, saved, and (for a risky list)
    /// applied with confirm-or-revert.
    async fn list_change(
        &self,
        config: &Config,
        me: (&str, &str),
        def: &'static lists::ListDef,
        owner: Option<&str>,
        op: ListOp,
        pairs: &[(String, String)],
    ) -> Response<Body> {
        let back = owner.map_or_else(|| def.page.to_string(), |o| format!("/users/{o}"));
        let row = lists::unprefixed(def, pairs);
        // The page again, with the row as it was submitted and why it was refused.
        let failure_page =
            async |status: StatusCode, diags: &[Diagnostic], path: String, flash: &str| {
                let failure = ListFailure {
                    def,
                    pairs: &row,
                    diags,
                    path,
                };
                let html = match owner {
                    Some(o) => self.user_page(config, me, o, Some((flash, false)), Some(&failure)),
                    None => match settings::page(def.page) {
                        Some(page) => Some(
                            self.settings_page(
                                config,
                                page,
                                me,
                                None,
                                &[],
                                Some((flash, false)),
                                Some(&failure),
                            )
                            .await,
                        ),
                        None => None,
                    },
                };
                match html {
                    Some(h) => respond(status, h),
                    None => respond(
                        StatusCode::NOT_FOUND,
                        html::page("Not found", "", Some(me), None, ""),
                    ),
                }
            };
        let Some(text) = config_text() else {
            return respond(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the config file cannot be read".into(),
            );
        };
        let changed = match op {
            ListOp::Add => lists::add(&text, def, owner, &row).map(|(t, i)| (t, Some(i))),
            ListOp::Delete(n) => lists::remove(&text, def, owner, n).map(|t| (t, None)),
        };
        let (new, index) = match changed {
            Ok(c) => c,
            Err(e) => {
                return failure_page(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &[],
                    String::new(),
                    &format!("Nothing was saved: {e}."),
                )
                .await;
            }
        };
        if let Err(d) = officebox_config::parse(&config_path_display(), &new) {
            info!(
                message = "web: list change refused",
                list = def.id,
                problems = d.0.len()
            );
            let path = index
                .and_then(|i| lists::row_path(&new, def, owner, i))
                .unwrap_or_default();
            return failure_page(
                StatusCode::UNPROCESSABLE_ENTITY,
                &d.0,
                path,
                "Nothing was saved: see the problems below.",
            )
            .await;
        }
        match self.save(config, &new, def.heading, def.risky).await {
            Ok(()) if def.risky => redirect("/confirm"),
            Ok(()) => redirect(&format!("{back}?saved=1")),
            Err(e) => failure_page(StatusCode::INTERNAL_SERVER_ERROR, &[], String::new(), &e).await,
        }
    }

    fn confirm_page(&self, me: (&str, &str)) -> String {
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some(p) = pending else {
            return html::page(
                "Confirm",
                "",
                Some(me),
                None,
                "<p>Nothing is waiting for confirmation: the change was kept already, or the \
                 time ran out and the previous settings are back. \
                 <a href=\"/history\">Config History</a> shows every version.</p>\
                 <p><a href=\"/\">Home</a></p>",
            );
        };
        // Rounded up: the page must not say the time is up before it is.
        let left = p
            .deadline
            .saturating_duration_since(Instant::now())
            .as_millis()
            .div_ceil(1000);
        let body = format!(
            "<p id=\"confirm-note\">The new {} settings are applied. If you can read this page, the box still \
             answers you: keep them. Otherwise they are undone in <strong id=\"countdown\">{left}</strong> seconds.</p>\
             <form method=\"post\" action=\"/confirm\" id=\"confirm\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <button type=\"submit\">Keep these settings</button></form>",
            escape(&p.what),
            escape(me.1)
        );
        html::page("Keep these settings?", "", Some(me), None, &body)
    }
}

/// The live part of the Mail, Phones, DHCP and DNS pages (the queue; registrations and
/// calls; the leases; the zone as served), also served alone at `/live/<page>` for the
/// pages' script to refresh. `None` for a page without one.
async fn live_state(config: &Config, path: &str, csrf: &str) -> Option<String> {
    if !matches!(path, "/mail" | "/phones" | "/dhcp" | "/dns") {
        return None;
    }
    let (dir, path, csrf) = (config.data_dir.clone(), path.to_string(), csrf.to_string());
    // Reserved in the config, though the lease may predate the reservation.
    let reserved: Vec<(String, std::net::Ipv4Addr)> = config
        .dhcp
        .reservations
        .iter()
        .map(|r| (r.mac.to_string(), r.address))
        .collect();
    tokio::task::spawn_blocking(move || -> Option<String> {
        let db = officebox_store::Db::open(&officebox_store::state_db(&dir)).ok()?;
        let now = now_unix();
        let mut out = String::new();
        match path.as_str() {
            "/mail" => {
                let queue = db.queue().ok()?;
                out.push_str("<h2>Waiting to go out</h2>");
                if queue.is_empty() {
                    out.push_str("<p>Nothing: every message has gone.</p>");
                } else {
                    out.push_str("<table><tr><th>#</th><th>From</th><th>To</th><th></th></tr>");
                    for m in &queue {
                        let to: Vec<String> = m
                            .recipients
                            .iter()
                            .map(|r| {
                                format!(
                                    "{} ({}, {} tries{})",
                                    r.address,
                                    r.state.as_str(),
                                    r.attempts,
                                    r.last_error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
                                )
                            })
                            .collect();
                        out.push_str(&format!(
                            "<tr><td>{}</td><td>{}</td><td>{}</td><td><form method=\"post\" action=\"/mail/queue/{}/delete\">\
                             <input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\">Delete</button></form></td></tr>",
                            m.id,
                            escape(if m.sender.is_empty() { "(a delivery notice)" } else { &m.sender }),
                            escape(&to.join("; ")),
                            m.id,
                            escape(&csrf)
                        ));
                    }
                    out.push_str(&format!(
                        "</table><form method=\"post\" action=\"/mail/flush\" id=\"flush\">\
                         <input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\">Retry now</button></form>",
                        escape(&csrf)
                    ));
                }
            }
            "/phones" => {
                out.push_str("<h2>Registered phones</h2>");
                let regs = db.bindings(now).ok()?;
                if regs.is_empty() {
                    out.push_str("<p>No phone is registered.</p>");
                } else {
                    out.push_str("<table><tr><th>User</th><th>Phone</th><th>From</th><th>Expires in</th></tr>");
                    for b in regs {
                        out.push_str(&format!(
                            "<tr><td>{}</td><td>{}</td><td>{} ({})</td><td>{}s</td></tr>",
                            escape(&b.login),
                            escape(&b.user_agent),
                            escape(&b.source),
                            escape(&b.transport),
                            b.expires_at - now
                        ));
                    }
                    out.push_str("</table>");
                }
                out.push_str("<h2>Calls now</h2>");
                let calls = db.calls().ok()?;
                if calls.is_empty() {
                    out.push_str("<p>No call in progress.</p>");
                } else {
                    out.push_str("<table><tr><th>From</th><th>To</th><th>State</th></tr>");
                    for c in calls {
                        out.push_str(&format!(
                            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                            escape(&c.caller),
                            escape(&c.callee),
                            escape(&c.state)
                        ));
                    }
                    out.push_str("</table>");
                }
            }
            "/dhcp" => {
                let mut leases = db.leases().ok()?;
                for l in &mut leases {
                    l.reserved |= reserved
                        .iter()
                        .any(|(mac, address)| mac.eq_ignore_ascii_case(&l.mac) && *address == l.address);
                }
                out.push_str(&lease_table(&leases, now, &csrf));
            }
            "/dns" => {
                out.push_str(&zone_table(&db.served_zone().ok()?));
            }
            _ => {}
        }
        Some(out)
    })
    .await
    .ok()
    .flatten()
    .or_else(|| Some("<p>The live state cannot be read just now.</p>".into()))
}

/// The pages' script (see admin.js): public, like a stylesheet would be.
fn script() -> Response<Body> {
    let mut r = respond(StatusCode::OK, include_str!("admin.js").to_string());
    let h = r.headers_mut();
    h.insert(
        "content-type",
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    h.insert("cache-control", HeaderValue::from_static("max-age=300"));
    r
}

/// Where to confirm a risky change: here, or where the admin pages moved to (another port,
/// or HTTPS switched on or off), on the host name the browser used.
fn confirm_location(before: &Config, after: &Config, host: &str) -> String {
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

/// A list row that was refused: what was submitted, and why (errors under `path`, the
/// row's path as validation names it).
pub(crate) struct ListFailure<'a> {
    def: &'static lists::ListDef,
    pairs: &'a [(String, String)],
    diags: &'a [Diagnostic],
    path: String,
}

/// What a list form asks for.
#[derive(Debug, Clone, Copy)]
enum ListOp {
    Add,
    Delete(usize),
}

/// `/list/{id}/add`, `/list/{id}/{n}/delete`, and for a user's own lists
/// `/users/{login}/{id}/add` and `/users/{login}/{id}/{n}/delete`.
fn list_route(path: &str) -> Option<(&'static lists::ListDef, Option<String>, ListOp)> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (id, owner, op) = match parts.as_slice() {
        ["list", id, "add"] => (*id, None, ListOp::Add),
        ["list", id, n, "delete"] => (*id, None, ListOp::Delete(n.parse().ok()?)),
        ["users", login, id, "add"] => (*id, Some(*login), ListOp::Add),
        ["users", login, id, n, "delete"] => (*id, Some(*login), ListOp::Delete(n.parse().ok()?)),
        _ => return None,
    };
    let def = lists::list(id)?;
    (def.per_user == owner.is_some()).then(|| (def, owner.map(str::to_string), op))
}

/// The lists of a page (or of one user's page), each with its add form.
fn lists_html(
    doc: &toml_edit::DocumentMut,
    page: &str,
    owner: Option<&str>,
    csrf: &str,
    failed: Option<&ListFailure<'_>>,
) -> String {
    lists::on_page(page)
        .filter(|def| def.per_user == owner.is_some())
        .map(|def| {
            let f = failed
                .filter(|f| f.def.id == def.id)
                .map(|f| lists::Refused {
                    pairs: f.pairs,
                    diags: f.diags,
                    path: &f.path,
                });
            lists::render(doc, def, owner, csrf, f)
        })
        .collect()
}

/// The last warnings and errors, newest first.
fn problems_table() -> String {
    let problems = recent::problems();
    if problems.is_empty() {
        return "<p id=\"problems\">None since officebox started.</p>".into();
    }
    let mut out = String::from(
        "<div class=\"wide\"><table id=\"problems\"><tr><th>When (UTC)</th><th></th><th>What</th></tr>",
    );
    for p in problems {
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&officebox_store::date::http_date(p.at)),
            if p.level == "ERROR" {
                "error"
            } else {
                "warning"
            },
            escape(&p.text)
        ));
    }
    out.push_str("</table></div>");
    out
}

/// The DHCP leases, live, each with a button that turns it into a reservation.
fn lease_table(leases: &[officebox_store::Lease], now: i64, csrf: &str) -> String {
    let mut out = String::from("<h2 id=\"leases\">Addresses lent now</h2>");
    let live: Vec<&officebox_store::Lease> = leases
        .iter()
        .filter(|l| {
            l.state == officebox_store::LeaseState::Bound && (l.reserved || l.expires_at > now)
        })
        .collect();
    if live.is_empty() {
        out.push_str("<p>No device holds an address.</p>");
        return out;
    }
    out.push_str(
        "<div class=\"wide\"><table id=\"lease-table\"><tr><th>Address</th><th>Device</th>\
         <th>Name</th><th>Until</th><th></th></tr>",
    );
    for l in live {
        let host = l.hostname.as_deref().map(host_label).unwrap_or_default();
        let until = if l.reserved {
            "reserved".to_string()
        } else {
            let left = l.expires_at - now;
            format!("{}h {:02}m", left / 3600, left % 3600 / 60)
        };
        let action = if l.reserved {
            String::new()
        } else {
            format!(
                "<form method=\"post\" action=\"/list/reservations/add\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                 <input type=\"hidden\" name=\"reservations.mac\" value=\"{}\">\
                 <input type=\"hidden\" name=\"reservations.address\" value=\"{}\">\
                 <input type=\"hidden\" name=\"reservations.hostname\" value=\"{}\">\
                 <button type=\"submit\">Make this a reservation</button></form>",
                escape(csrf),
                escape(&l.mac),
                l.address,
                escape(&host)
            )
        };
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{until}</td><td>{action}</td></tr>",
            l.address,
            escape(&l.mac),
            escape(l.hostname.as_deref().unwrap_or("")),
        ));
    }
    out.push_str("</table></div>");
    out
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
fn zone_table(served: &[officebox_store::ServedRecord]) -> String {
    let mut out = String::from("<h2 id=\"zone\">Names served now</h2>");
    if served.is_empty() {
        out.push_str("<p>The DNS server has not published its names yet (is it on?).</p>");
        return out;
    }
    out.push_str(
        "<div class=\"wide\"><table id=\"zone-table\"><tr><th>Name</th><th>Type</th>\
         <th>Value</th><th>From</th></tr>",
    );
    for r in served {
        let (source, name, rtype, value) = (&r.source, &r.name, &r.rtype, &r.value);
        let from = match source.as_str() {
            "zone" => "the zone itself",
            "built-in" => "built-in",
            "static" => "static record",
            "reservation" => "DHCP reservation",
            "dhcp" => "DHCP client",
            other => other,
        };
        out.push_str(&format!(
            "<tr class=\"from-{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&source.replace(' ', "-")),
            escape(name),
            escape(rtype),
            escape(value),
            escape(from)
        ));
    }
    out.push_str("</table></div>");
    out
}

/// Undoes a risky change nobody confirmed in time.
async fn revert_if_unconfirmed(app: &App) {
    let expired = {
        let mut pending = app.pending.lock().unwrap_or_else(PoisonError::into_inner);
        match pending.as_ref() {
            Some(p) if Instant::now() >= p.deadline => pending.take(),
            _ => None,
        }
    };
    let Some(p) = expired else { return };
    let config = app.config();
    warn!(message = "web: the change was not confirmed in time; putting the previous settings back", what = %p.what);
    let Some(path) = CONFIG_PATH.get().cloned() else {
        return;
    };
    let (dir, previous) = (config.data_dir.clone(), p.previous.clone());
    let current = config_text().unwrap_or_default();
    let r = tokio::task::spawn_blocking(move || {
        history::record(&dir, &current, &previous)?;
        officebox_store::write_atomic(&path, previous.as_bytes(), 0o600).map_err(|e| e.to_string())
    })
    .await;
    if matches!(r, Ok(Ok(()))) {
        reload();
    } else {
        warn!(message = "web: could not put the previous settings back");
    }
}

fn config_text() -> Option<String> {
    std::fs::read_to_string(CONFIG_PATH.get()?).ok()
}

fn config_path_display() -> String {
    CONFIG_PATH
        .get()
        .map_or_else(|| "officebox.toml".into(), |p| p.display().to_string())
}

/// Asks officebox to reload its config (the supervisor handles SIGHUP).
fn reload() {
    if let Err(error) =
        nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGHUP)
    {
        warn!(message = "web: could not ask for a reload", %error);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_plus_percent_and_odd_input() {
        let f = form(b"a=1+2&b=%3Cx%3E&c=%zz&d&e=%4");
        assert_eq!(f[0], ("a".into(), "1 2".into()));
        assert_eq!(f[1], ("b".into(), "<x>".into()));
        assert_eq!(f[2], ("c".into(), "%zz".into()));
        assert_eq!(f[3], ("d".into(), String::new()));
        assert_eq!(f[4], ("e".into(), "%4".into()));
        assert_eq!(value(&form(b"x=false&x=true"), "x"), Some("true"));
    }

    #[test]
    fn a_route_names_its_resource_between_prefix_and_suffix() {
        assert_eq!(
            between("/users/alice/delete", "/users/", "/delete"),
            Some("alice")
        );
        // Shorter than prefix and suffix together: no resource, no slicing past the end.
        assert_eq!(between("/users/delete", "/users/", "/delete"), None);
        assert_eq!(between("/history/rollback", "/history/", "/rollback"), None);
        assert_eq!(
            between("/mail/queue/delete", "/mail/queue/", "/delete"),
            None
        );
        assert_eq!(
            between("/mail/queue//delete", "/mail/queue/", "/delete"),
            None
        );
    }
}
