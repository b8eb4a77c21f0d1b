//! Every URL of the admin pages, in one table ([`admin`]), and the checks each request
//! passes before its page: the office network only, a form of at most 64 KiB, and (for
//! every page but the login and the script) a session whose CSRF token a POST carries.
//! Every response gets the security headers.

use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::{CONTENT_TYPE, COOKIE, LOCATION};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use officebox_config::derive::{ClientZone, client_zone};
use tracing::warn;

use crate::app::Shared;
use crate::forms::Pairs;
use crate::listen::Peer;
use crate::pages::{
    backup, calls, greetings, history, home, lists, login, mail, me, settings, sites, users,
};
use crate::{confirm, forms, live, session};

/// The admin pages' router: the table of every route.
pub(crate) fn admin(app: Shared) -> Router {
    let mut pages = Router::new()
        .route("/", get(home::show))
        .route("/logout", post(login::logout))
        .route("/confirm", get(confirm::show).post(confirm::keep))
        .route("/live/{page}", get(live::fragment))
        .route("/calls", get(calls::show))
        .route("/calls.csv", get(calls::csv))
        .route("/backup/download", get(backup::download))
        .route("/history", get(history::list))
        .route("/history/{n}", get(history::show))
        .route("/history/{n}/rollback", post(history::rollback))
        .route("/users", get(users::list).post(users::add))
        .route("/users/{login}", get(users::show).post(users::edit))
        .route("/users/{login}/delete", post(users::delete))
        .route("/users/{login}/forwarding", post(users::set_forwarding))
        .route("/users/{login}/mail.mobileconfig", get(users::mobileconfig))
        .route("/users/{login}/vacation", post(me::set_for))
        .route("/me", get(me::show))
        .route("/me/vacation", post(me::set_own))
        .route("/me/mail.mobileconfig", get(me::mobileconfig))
        .route("/aliases", get(users::aliases).post(users::set_alias))
        .route("/devices/{name}", get(sites::show))
        .route("/devices/{name}/new-key", post(sites::new_key))
        .route("/mail/flush", post(mail::flush))
        .route("/mail/dkim/rotate", post(mail::rotate))
        .route("/mail/records", get(mail::records))
        .route("/mail/queue/{id}/delete", post(mail::delete))
        .route(
            "/attendants/{name}/greeting",
            post(greetings::upload)
                .layer(axum::extract::DefaultBodyLimit::max(greetings::MAX_UPLOAD)),
        )
        .route(
            "/attendants/{name}/greeting/delete",
            post(greetings::delete),
        )
        .route(
            "/music-on-hold",
            post(greetings::upload_music)
                .layer(axum::extract::DefaultBodyLimit::max(greetings::MAX_UPLOAD)),
        )
        .route("/music-on-hold/delete", post(greetings::delete_music))
        .route("/list/{list}/add", post(lists::add))
        .route("/list/{list}/{n}/delete", post(lists::delete))
        .route("/users/{login}/{list}/add", post(lists::add_own))
        .route("/users/{login}/{list}/{n}/delete", post(lists::delete_own));
    // The settings pages, from their table (crate::settings::PAGES).
    for page in crate::settings::PAGES {
        pages = pages.route(
            page.path,
            get(move |s: State<Shared>, me: Me, f: Flash| settings::show(s, me, f, page)).post(
                move |s: State<Shared>, me: Me, p: Pairs, h: HeaderMap| {
                    settings::save(s, me, p, h, page)
                },
            ),
        );
    }
    pages
        // An unknown page, or a page asked with a method it does not answer, is not found
        // (a short path like `/history/rollback` included: never a crash).
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .layer(from_fn_with_state(app.clone(), require_session))
        .route(crate::html::SCRIPT_PATH, get(script))
        .route("/login", get(login::show).post(login::submit))
        .layer(from_fn(forms::read))
        .layer(from_fn_with_state(app.clone(), office_only))
        .layer(from_fn(security_headers))
        .with_state(app)
}

/// Who is logged in (put in the request by [`require_session`]).
#[derive(Debug, Clone)]
pub(crate) struct Me {
    pub user: String,
    pub csrf: String,
    /// The session cookie's token.
    pub token: String,
}

impl Me {
    /// (user, CSRF token), as the page frame takes them.
    pub fn pair(&self) -> (&str, &str) {
        (&self.user, &self.csrf)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Me {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Me>()
            .cloned()
            .ok_or_else(|| redirect("/login"))
    }
}

/// The note a page shows after a redirect (`?saved=1`, `?reverted=1`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Flash(pub Option<(&'static str, bool)>);

impl<S: Send + Sync> FromRequestParts<S> for Flash {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let note = form_urlencoded::parse(query.as_bytes()).find_map(|(k, _)| match &*k {
            "saved" => Some(("Saved and applied.", true)),
            "reverted" => Some(("The previous settings are back.", true)),
            _ => None,
        });
        Ok(Flash(note))
    }
}

/// The request's peer, where the connection put it (none in a test that did not).
fn peer(req: &Request) -> Option<std::net::SocketAddr> {
    req.extensions().get::<Peer>().map(|p| p.0)
}

/// The admin pages are for the LAN: a request from the WAN side is refused even if it
/// got here.
async fn office_only(State(app): State<Shared>, req: Request, next: Next) -> Response {
    // Not from a remote device either: the admin pages are for the office itself.
    let office = peer(&req).is_some_and(|p| {
        matches!(
            client_zone(&app.config().network, p.ip()),
            ClientZone::Lan | ClientZone::Loopback
        )
    });
    if !office {
        return forbidden("The admin pages answer only on the office network.");
    }
    next.run(req).await
}

/// A 403 page saying `why`.
fn forbidden(why: &str) -> Response {
    page(
        StatusCode::FORBIDDEN,
        crate::html::page("Forbidden", "", None, None, html! { p { (why) } }),
    )
}

/// The value of cookie `name` among the request's cookies.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            c.trim()
                .strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('='))
                .map(str::to_string)
        })
}

/// The pages a user who is not an administrator may open: their own.
const OWN_PAGES: [&str; 4] = ["/me", "/me/vacation", "/me/mail.mobileconfig", "/logout"];

/// A session, and for a POST its CSRF token, or no page: the login page instead, or 403.
async fn require_session(
    State(app): State<Shared>,
    pairs: Pairs,
    mut req: Request,
    next: Next,
) -> Response {
    // The live tables' refresh is the page's doing, not the user's: it does not keep an
    // idle session alive.
    let by_page = req.method() == Method::GET && req.uri().path().starts_with("/live/");
    let token = cookie(req.headers(), "officebox_session");
    let session = token.as_deref().and_then(|t| {
        if by_page {
            app.sessions.peek(t)
        } else {
            app.sessions.get(t)
        }
    });
    let (Some(session), Some(token)) = (session, token) else {
        return redirect("/login");
    };
    // Who the user is now (the config may have changed since they logged in): an admin
    // sees every page; any other user only their own (`/me`); a user no longer there,
    // nothing.
    let admin = match app.config().users.iter().find(|u| u.login == session.user) {
        Some(u) => u.admin,
        None => {
            app.sessions.end(&token);
            return redirect("/login");
        }
    };
    if !admin && !OWN_PAGES.contains(&req.uri().path()) {
        return if req.method() == Method::GET {
            redirect("/me")
        } else {
            forbidden("Only the office's administrators may change this.")
        };
    }
    if req.method() == Method::POST
        && !session::same(pairs.get("csrf").unwrap_or(""), &session.csrf)
    {
        let path = req.uri().path().to_string();
        let from = peer(&req).map(|p| p.to_string()).unwrap_or_default();
        warn!(message = "web: a form without the right CSRF token was refused", peer = %from, %path);
        return forbidden("This form has expired; go back, reload the page and try again.");
    }
    req.extensions_mut().insert(Me {
        user: session.user,
        csrf: session.csrf,
        token,
    });
    next.run(req).await
}

/// Where there is no such page (or not for this method).
async fn not_found(me: Me) -> Response {
    not_found_page(&me)
}

/// 404: there is no such page.
pub(crate) fn not_found_page(me: &Me) -> Response {
    page(
        StatusCode::NOT_FOUND,
        crate::html::page(
            "Not found",
            "",
            Some(me.pair()),
            None,
            html! { p { "There is no such page." } },
        ),
    )
}

/// The security headers every response of the admin pages carries.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    for (k, v) in [
        (
            "content-security-policy",
            "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    h.entry("cache-control")
        .or_insert(HeaderValue::from_static("no-store"));
    h.entry(CONTENT_TYPE)
        .or_insert(HeaderValue::from_static("text/html; charset=utf-8"));
    r
}

/// A page with `status`.
pub(crate) fn page(status: StatusCode, body: Markup) -> Response {
    (
        status,
        [(CONTENT_TYPE, "text/html; charset=utf-8")],
        body.into_string(),
    )
        .into_response()
}

/// 303 See Other to `to`.
pub(crate) fn redirect(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}

/// The pages' script (see admin.js): public, like a stylesheet would be.
async fn script() -> Response {
    (
        [
            (CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (axum::http::header::CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("admin.js"),
    )
        .into_response()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tokio::sync::{mpsc, watch};
    use tower::ServiceExt;

    use super::*;
    use crate::{Reloaded, WebContext};

    /// The admin pages over the demo config in a temporary directory, with a supervisor
    /// stand-in that answers every reload with `answer`.
    struct Pages {
        router: Router,
        file: std::path::PathBuf,
        _dir: tempfile::TempDir,
        session: Option<String>,
        csrf: String,
    }

    const LAN: &str = "192.168.1.50:40000";

    impl Pages {
        fn new(answer: Reloaded) -> Pages {
            Pages::with(answer, "")
        }

        /// [`Pages::new`] with `extra` at the end of the demo config.
        fn with(answer: Reloaded, extra: &str) -> Pages {
            let dir = tempfile::tempdir().unwrap();
            let text = format!("{}{extra}", include_str!("../../../examples/demo.toml"));
            let text = text.as_str();
            let file = dir.path().join("officebox.toml");
            std::fs::write(&file, text).unwrap();
            let mut config = officebox_config::parse("demo.toml", text).unwrap();
            config.data_dir = dir.path().join("data");
            std::fs::create_dir_all(&config.data_dir).unwrap();
            let (_tx, rx) = watch::channel(Arc::new(config));
            let (reload, mut asked) = mpsc::channel::<crate::ReloadRequest>(4);
            tokio::spawn(async move {
                let _keep = _tx;
                while let Some(a) = asked.recv().await {
                    let _ = a.send(answer.clone());
                }
            });
            let context = WebContext {
                config_path: file.clone(),
                reload,
            };
            let app = Arc::new(crate::app::App::new(rx, context));
            Pages {
                router: admin(app),
                file,
                _dir: dir,
                session: None,
                csrf: String::new(),
            }
        }

        /// A request from `peer`, with the session cookie once logged in.
        async fn send(
            &self,
            method: &str,
            path: &str,
            form: &str,
            peer: &str,
            cookie: Option<&str>,
        ) -> (StatusCode, HeaderMap, String) {
            let mut req = Request::builder()
                .method(method)
                .uri(path)
                .header("content-type", "application/x-www-form-urlencoded");
            if let Some(c) = cookie {
                req = req.header("cookie", c);
            } else if let Some(s) = &self.session {
                req = req.header("cookie", format!("officebox_session={s}"));
            }
            let mut req = req.body(Body::from(form.to_string())).unwrap();
            req.extensions_mut()
                .insert(Peer(peer.parse::<SocketAddr>().unwrap()));
            let r = self.router.clone().oneshot(req).await.unwrap();
            let (parts, body) = r.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            (
                parts.status,
                parts.headers,
                String::from_utf8_lossy(&body).into_owned(),
            )
        }

        async fn get(&self, path: &str) -> (StatusCode, HeaderMap, String) {
            self.send("GET", path, "", LAN, None).await
        }

        /// A GET from the LAN whose answer is a file: its bytes as they came.
        async fn download(&self, path: &str) -> (StatusCode, HeaderMap, Vec<u8>) {
            let mut req = Request::builder().method("GET").uri(path);
            if let Some(s) = &self.session {
                req = req.header("cookie", format!("officebox_session={s}"));
            }
            let mut req = req.body(Body::empty()).unwrap();
            req.extensions_mut()
                .insert(Peer(LAN.parse::<SocketAddr>().unwrap()));
            let r = self.router.clone().oneshot(req).await.unwrap();
            let (parts, body) = r.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            (parts.status, parts.headers, body.to_vec())
        }

        /// A file upload: `file` in field `field` of a multipart form, from the LAN.
        async fn upload(&self, path: &str, field: &str, file: &[u8]) -> (StatusCode, String) {
            let boundary = "----officeboxtest";
            let mut body = format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"g.wav\"\r\n\
                 Content-Type: audio/wav\r\n\r\n"
            )
            .into_bytes();
            body.extend_from_slice(file);
            body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
            let mut req = Request::builder().method("POST").uri(path).header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            );
            if let Some(s) = &self.session {
                req = req.header("cookie", format!("officebox_session={s}"));
            }
            let mut req = req.body(Body::from(body)).unwrap();
            req.extensions_mut()
                .insert(Peer(LAN.parse::<SocketAddr>().unwrap()));
            let r = self.router.clone().oneshot(req).await.unwrap();
            let (parts, body) = r.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            (parts.status, String::from_utf8_lossy(&body).into_owned())
        }

        async fn post(&self, path: &str, form: &str) -> (StatusCode, HeaderMap, String) {
            self.send("POST", path, form, LAN, None).await
        }

        /// Logs in as the demo admin.
        async fn log_in(&mut self) {
            self.log_in_as("Admin", "demo-admin", "/users").await;
        }

        /// Logs in as `user` and takes the form token from `page`.
        async fn log_in_as(&mut self, user: &str, password: &str, page: &str) {
            let (_, h, _) = self.get("/login").await;
            let cookie = h["set-cookie"].to_str().unwrap().to_string();
            let token = cookie
                .strip_prefix("officebox_login=")
                .and_then(|c| c.split(';').next())
                .unwrap()
                .to_string();
            let (status, h, _) = self
                .send(
                    "POST",
                    "/login",
                    &format!("csrf={token}&user={user}&password={password}"),
                    LAN,
                    Some(&format!("officebox_login={token}")),
                )
                .await;
            assert_eq!(status, StatusCode::SEE_OTHER);
            let set = h["set-cookie"].to_str().unwrap();
            let session = set
                .strip_prefix("officebox_session=")
                .and_then(|c| c.split(';').next())
                .unwrap();
            self.session = Some(session.to_string());
            let (_, _, page) = self.get(page).await;
            self.csrf = page
                .split("name=\"csrf\" value=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap()
                .to_string();
        }
    }

    #[tokio::test]
    async fn a_user_who_is_not_an_admin_sees_only_their_own_page() {
        let mut p = Pages::new(Reloaded::Applied);
        p.log_in_as("alice", "demo-alice", "/me").await;
        for path in [
            "/",
            "/users",
            "/users/alice",
            "/network",
            "/mail",
            "/live/mail",
        ] {
            let (status, h, _) = p.get(path).await;
            assert_eq!(status, StatusCode::SEE_OTHER, "{path}");
            assert_eq!(h["location"], "/me", "{path}");
        }
        let token = format!("csrf={}", p.csrf);
        for path in [
            "/users/bob/vacation",
            "/mail/dkim/rotate",
            "/users",
            "/network",
        ] {
            let (status, _, _) = p.post(path, &token).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "POST {path}");
        }
        let (status, _, page) = p.get("/me").await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("alice@office.test") && page.contains("id=\"vacation\""));
        assert!(!page.contains("href=\"/users\""), "no admin menu: {page}");
        let (status, h, _) = p
            .post(
                "/me/vacation",
                &format!("{token}&on=true&subject=Away&body=Back+on+Monday&until="),
            )
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(h["location"], "/me?saved=1");
        let (_, _, page) = p.get("/me").await;
        assert!(page.contains("Back on Monday"), "{page}");
        let (status, h, _) = p.get("/me/mail.mobileconfig").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(h["content-type"], "application/x-apple-aspen-config");
        let (status, _, page) = p
            .post("/me/vacation", &format!("{token}&on=true&body="))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(page.contains("Write the message"), "{page}");
    }

    #[tokio::test]
    async fn before_logging_in_only_the_login_page_and_the_script_answer() {
        let p = Pages::new(Reloaded::Applied);
        for path in [
            "/",
            "/users",
            "/network",
            "/live/dhcp",
            "/calls",
            "/calls.csv",
            "/no/such/page",
        ] {
            let (status, h, _) = p.get(path).await;
            assert_eq!(status, StatusCode::SEE_OTHER, "{path}");
            assert_eq!(h["location"], "/login", "{path}");
        }
        let (status, h, body) = p.get("/officebox.js").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            h["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/javascript")
        );
        assert!(body.contains("data-live"));
        let (status, h, body) = p.get("/login").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(h["x-frame-options"], "DENY");
        assert!(body.contains("name=\"csrf\" value=\""));
        // From the WAN side nothing answers, the login page included.
        let (status, _, _) = p.send("GET", "/login", "", "198.51.100.7:4000", None).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_backup_page_downloads_a_whole_archive_of_the_box_and_only_on_the_lan() {
        let mut p = Pages::with(
            Reloaded::Applied,
            "\n[backup]\npassphrase = \"correct horse battery staple\"\n",
        );
        let (status, _, _) = p.download("/backup/download").await;
        assert_ne!(status, StatusCode::OK, "not without a login");
        p.log_in().await;
        let (status, _, page) = p.get("/backup").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            page.contains("Download a backup now") && page.contains("Encrypted"),
            "{page}"
        );
        assert!(page.contains("Nightly backups are off"), "{page}");
        let (status, h, archive) = p.download("/backup/download").await;
        assert_eq!(status, StatusCode::OK);
        let disposition = h["content-disposition"].to_str().unwrap();
        assert!(disposition.contains(".tar.gz.age"), "{disposition}");
        assert_eq!(h["content-length"], archive.len().to_string().as_str());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("download.tar.gz.age");
        std::fs::write(&file, &archive).unwrap();
        let un = officebox_store::backup::unpack(
            &file,
            &dir.path().join("unpacked"),
            Some("correct horse battery staple"),
            &|_| Ok(()),
        )
        .unwrap();
        assert_eq!(
            std::fs::read(&un.config).unwrap(),
            std::fs::read(&p.file).unwrap()
        );
        let (status, _, _) = p
            .send("GET", "/backup/download", "", "198.51.100.7:4000", None)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn the_route_table_answers_every_page_and_404_for_paths_without_a_resource() {
        let mut p = Pages::new(Reloaded::Applied);
        p.log_in().await;
        for path in [
            "/",
            "/users",
            "/users/alice",
            "/aliases",
            "/history",
            "/confirm",
            "/network",
            "/security",
            "/dhcp",
            "/dns",
            "/mail",
            "/phones",
            "/calls",
            "/calls?since=2026-01-01&disposition=busy&page=2",
            "/calls.csv",
            "/routing",
            "/system",
            "/backup",
            "/live/dhcp",
        ] {
            let (status, h, _) = p.get(path).await;
            assert_eq!(status, StatusCode::OK, "GET {path}");
            assert_eq!(h["cache-control"], "no-store", "{path}");
        }
        let (_, _, phones) = p.get("/phones").await;
        assert!(
            phones.contains("Feature codes") && phones.contains("*97"),
            "the Phones page lists what a phone can dial"
        );
        let (_, h, csv) = p.get("/calls.csv").await;
        assert_eq!(h["content-type"], "text/csv; charset=utf-8");
        assert!(csv.starts_with("start (UTC),from,"), "{csv}");
        for path in [
            "/users/nobody",
            "/history/7",
            "/live/network",
            "/nothing",
            "/users/",
        ] {
            assert_eq!(p.get(path).await.0, StatusCode::NOT_FOUND, "GET {path}");
        }
        let csrf = format!("csrf={}", p.csrf);
        for path in [
            "/history/rollback",
            "/users/delete",
            "/mail/queue/delete",
            "/users/nobody",
            "/history/1",
            "/list/nosuch/add",
            "/list/reservations/x/delete",
            "/list/pop3/add",
            "/users/alice/reservations/add",
        ] {
            let (status, _, body) = p.post(path, &csrf).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "POST {path}: {body}");
        }
        // A form without the session's token is refused before its page sees it.
        let (status, _, _) = p.post("/aliases", "alias=x&members=alice").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        // Deleting a message that is not queued deletes nothing, as before.
        let (status, h, _) = p.post("/mail/queue/42/delete", &csrf).await;
        assert_eq!(
            (status, &h["location"]),
            (
                StatusCode::SEE_OTHER,
                &HeaderValue::from_static("/mail?saved=1")
            )
        );
    }

    #[tokio::test]
    async fn a_saved_change_is_applied_and_a_refused_reload_is_shown_and_undone() {
        let mut p = Pages::new(Reloaded::Applied);
        p.log_in().await;
        let form = format!("csrf={}&alias=team&members=alice%2C+bob", p.csrf);
        let (status, h, _) = p.post("/aliases", &form).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(h["location"], "/aliases?saved=1");
        let text = std::fs::read_to_string(&p.file).unwrap();
        assert!(text.contains("team"), "{text}");

        let mut p = Pages::new(Reloaded::Refused("it is Sunday".into()));
        p.log_in().await;
        let before = std::fs::read_to_string(&p.file).unwrap();
        let form = format!("csrf={}&alias=team&members=alice", p.csrf);
        let (status, _, body) = p.post("/aliases", &form).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            body.contains("officebox refused the new settings (it is Sunday)"),
            "{body}"
        );
        assert_eq!(
            std::fs::read_to_string(&p.file).unwrap(),
            before,
            "the file says what runs"
        );
    }

    #[tokio::test]
    async fn the_phone_routing_page_adds_a_ring_group_and_refuses_an_empty_one() {
        let mut p = Pages::new(Reloaded::Applied);
        p.log_in().await;
        let (status, _, page) = p.get("/routing").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            page.contains("Ring groups") && page.contains("Routes out"),
            "{page}"
        );
        let form = format!(
            "csrf={}&ring_groups.name=sales&ring_groups.strategy=hunt&ring_groups.members=101%2C+102&ring_groups.ring_time=15s&ring_groups.no_answer=voicemail%3Aalice",
            p.csrf
        );
        let (status, _, body) = p.post("/list/ring_groups/add", &form).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
        let text = std::fs::read_to_string(&p.file).unwrap();
        assert!(
            text.contains("[[phone.ring_groups]]") && text.contains("strategy = \"hunt\""),
            "{text}"
        );
        // A trunk, then a route out over it; a route naming no such trunk is refused.
        let form = format!(
            "csrf={}&trunks.name=carrier&trunks.kind=ip&trunks.enabled=true&trunks.server=198.51.100.5&trunks.addresses=198.51.100.5",
            p.csrf
        );
        let (status, _, body) = p.post("/list/trunks/add", &form).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
        let route = |trunk: &str| {
            format!(
                "csrf={}&routes.name=out&routes.pattern=9.&routes.trunks={trunk}&routes.strip=1",
                p.csrf
            )
        };
        let (status, _, body) = p.post("/list/routes/add", &route("nowhere")).await;
        assert_ne!(status, StatusCode::SEE_OTHER);
        assert!(body.contains("no [[phone.trunks]] is called"), "{body}");
        let (status, _, body) = p.post("/list/routes/add", &route("carrier")).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
        let text = std::fs::read_to_string(&p.file).unwrap();
        assert!(
            text.contains("[[phone.trunks]]") && text.contains("[[phone.routes]]"),
            "{text}"
        );
        let form = format!(
            "csrf={}&ring_groups.name=support&ring_groups.members=&ring_groups.no_answer=hangup",
            p.csrf
        );
        let (status, _, body) = p.post("/list/ring_groups/add", &form).await;
        assert_ne!(status, StatusCode::SEE_OTHER);
        assert!(
            body.contains("a ring group with no members rings nobody"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn an_attendant_greeting_is_uploaded_converted_shown_and_deleted() {
        let mut p = Pages::with(
            Reloaded::Applied,
            "\n[[phone.attendants]]\nname = \"main\"\ngreeting = \"Hello\"\nno_input = \"hangup\"\ninvalid = \"hangup\"\n",
        );
        p.log_in().await;
        let (_, _, page) = p.get("/routing").await;
        assert!(
            page.contains("Attendant greetings") && page.contains("spoken: \u{201c}Hello\u{201d}"),
            "{page}"
        );
        // A second of a 16 kHz tone: kept as 8 kHz.
        let tone: Vec<i16> = (0..16000)
            .map(|i| ((i % 40) * 500 - 10000) as i16)
            .collect();
        let wav = officebox_store::wav::to_bytes(16000, &tone);
        let url = format!("/attendants/main/greeting?csrf={}", p.csrf);
        // Without the CSRF token, nothing happens.
        let (status, _) = p
            .upload("/attendants/main/greeting", "greeting", &wav)
            .await;
        assert_ne!(status, StatusCode::SEE_OTHER);
        let data = p.file.parent().unwrap().join("data");
        let kept = officebox_store::attendant_greeting_path(&data, "main");
        assert!(!kept.exists());
        let (status, body) = p.upload(&url, "greeting", &wav).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
        let samples = officebox_store::wav::read_wav(&std::fs::read(&kept).unwrap()).unwrap();
        assert_eq!(samples.len(), 8000);
        let (_, _, page) = p.get("/routing").await;
        assert!(page.contains("recorded, 0:01"), "{page}");
        // Not a WAV, no file, no such attendant: refused, saying why.
        let (status, body) = p.upload(&url, "greeting", b"ID3 an mp3, really").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("That is not a WAV file"), "{body}");
        let (status, body) = p.upload(&url, "other", &wav).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("Choose a WAV file"), "{body}");
        let nobody = format!("/attendants/night/greeting?csrf={}", p.csrf);
        let (status, body) = p.upload(&nobody, "greeting", &wav).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("no attendant called night"), "{body}");
        // Deleted: the text speaks again.
        let (status, _, _) = p
            .post(
                "/attendants/main/greeting/delete",
                &format!("csrf={}", p.csrf),
            )
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert!(!kept.exists());
    }

    #[tokio::test]
    async fn music_on_hold_is_uploaded_shown_and_deleted_and_the_setting_is_on_the_page() {
        let mut p = Pages::new(Reloaded::Applied);
        p.log_in().await;
        let (_, _, page) = p.get("/routing").await;
        assert!(
            page.contains("Music on hold") && page.contains("The built-in tune."),
            "{page}"
        );
        assert!(page.contains("name=\"phone.music_on_hold\""), "{page}");
        let wav = officebox_store::wav::to_bytes(8000, &[1000; 24_000]);
        let url = format!("/music-on-hold?csrf={}", p.csrf);
        let (status, _) = p.upload("/music-on-hold", "music", &wav).await;
        assert_ne!(status, StatusCode::SEE_OTHER, "no CSRF token, no upload");
        let (status, body) = p.upload(&url, "music", &wav).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
        let data = p.file.parent().unwrap().join("data");
        let kept = officebox_store::music_on_hold_path(&data);
        assert!(kept.exists());
        let (_, _, page) = p.get("/routing").await;
        assert!(page.contains("Uploaded, 0:03."), "{page}");
        let (status, body) = p.upload(&url, "music", b"RIFF, not really").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("That is not a WAV file"), "{body}");
        let (status, _, _) = p
            .post("/music-on-hold/delete", &format!("csrf={}", p.csrf))
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert!(!kept.exists());
    }

    #[tokio::test]
    async fn call_forwarding_is_set_on_the_users_page_and_a_target_nobody_can_reach_is_refused() {
        let mut p = Pages::new(Reloaded::Applied);
        p.log_in().await;
        let (_, _, page) = p.get("/users/alice").await;
        assert!(
            page.contains("Call forwarding") && page.contains("*72"),
            "{page}"
        );
        let form = |always: &str| {
            format!(
                "csrf={}&dnd=true&always={always}&busy=&no_answer=102",
                p.csrf
            )
        };
        // Her own extension, and a number no route of hers takes: refused.
        for bad in ["101", "0049301234"] {
            let (status, _, body) = p.post("/users/alice/forwarding", &form(bad)).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
            assert!(body.contains("Nothing was saved"), "{body}");
        }
        let (status, _, _) = p.post("/users/alice/forwarding", &form("102")).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let data = p.file.parent().unwrap().join("data");
        let db = officebox_store::Db::open(&officebox_store::state_db(&data)).unwrap();
        let rows = db.forwardings().unwrap();
        assert_eq!(rows.len(), 1);
        assert!(rows[0].dnd && rows[0].always.as_deref() == Some("102"));
        assert_eq!(rows[0].no_answer.as_deref(), Some("102"));
        let (_, _, page) = p.get("/users/alice").await;
        assert!(page.contains("value=\"102\""), "{page}");
        let (status, _, _) = p.post("/users/nobody/forwarding", &form("102")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn a_users_outside_call_limits_and_caller_id_are_set_on_their_page() {
        let mut p = Pages::new(Reloaded::Applied);
        p.log_in().await;
        let (_, _, page) = p.get("/users/alice").await;
        assert!(
            page.contains("Outside calls at once") && page.contains("name=\"caller_id\""),
            "{page}"
        );
        let form = |at_once: &str| {
            format!(
                "csrf={}&name=Alice+Example&extension=101&admin=false&caller_id=%2B4930123458\
                 &outside_calls_at_once={at_once}&outside_calls_per_day=20\
                 &outside_calls_from_remote_phones=false&outside_calls_from_remote_phones=true",
                p.csrf
            )
        };
        let (status, _, body) = p.post("/users/alice", &form("1")).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
        let text = std::fs::read_to_string(&p.file).unwrap();
        let alice = text
            .split("[[users]]")
            .find(|b| b.contains("login = \"alice\""))
            .unwrap();
        assert!(
            alice.contains("caller_id = \"+4930123458\"")
                && alice.contains("outside_calls_at_once = 1\n")
                && alice.contains("outside_calls_per_day = 20\n")
                && alice.contains("outside_calls_from_remote_phones = true"),
            "{alice}"
        );
        // Not a number: refused with the file's own check, nothing saved.
        let (status, _, body) = p.post("/users/alice", &form("lots")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(body.contains("outside_calls_at_once"), "{body}");
        assert_eq!(std::fs::read_to_string(&p.file).unwrap(), text);
    }
}
