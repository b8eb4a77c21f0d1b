//! `/login` and `/logout`. The login form carries a token that must match a cookie set
//! with it (so another site cannot post a login in the admin's browser); the password
//! check goes through the failed-login limiter ([`crate::session`]).

use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use tracing::{info, warn};

use crate::app::Shared;
use crate::forms::Form;
use crate::listen::Peer;
use crate::routes::{Me, cookie, page, redirect};
use crate::session::{self, Login};

/// What the login form sends.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct LoginForm {
    csrf: String,
    user: String,
    password: String,
}

/// The login form's token: the one its cookie already has (a page that loads twice, or
/// a second request like the favicon's, keeps it), or a new one.
fn token(headers: &HeaderMap) -> (Option<String>, String) {
    let cookie = cookie(headers, "officebox_login");
    let token = cookie
        .as_deref()
        .filter(|c| c.len() == 32 && c.bytes().all(|b| b.is_ascii_hexdigit()))
        .map_or_else(session::new_token, str::to_string);
    (cookie, token)
}

/// The login page with `status` and an error, setting the form's cookie.
fn form(status: StatusCode, error: Option<&str>, token: &str, https: bool) -> Response {
    let mut r = page(
        status,
        crate::html::page(
            "Log in",
            "",
            None,
            error.map(|e| (e, false)),
            html! {
                form method="post" action="/login" {
                    input type="hidden" name="csrf" value=(token);
                    div.field {
                        label for="user" { "User" }
                        input type="text" id="user" name="user" autocomplete="username";
                    }
                    div.field {
                        label for="password" { "Password" }
                        input type="password" id="password" name="password" autocomplete="current-password";
                    }
                    button type="submit" { "Log in" }
                }
            },
        ),
    );
    let secure = if https { "; Secure" } else { "" };
    let cookie = format!("officebox_login={token}; Path=/login; HttpOnly; SameSite=Strict{secure}");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(SET_COOKIE, v);
    }
    r
}

/// `GET /login`.
pub(crate) async fn show(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let (_, token) = token(&headers);
    form(StatusCode::OK, None, &token, app.config().web.https)
}

/// `POST /login`.
pub(crate) async fn submit(
    State(app): State<Shared>,
    headers: HeaderMap,
    Peer(peer): Peer,
    Form(f): Form<LoginForm>,
) -> Response {
    let config = app.config();
    let https = config.web.https;
    let (login_cookie, token) = token(&headers);
    let token_ok = matches!(
        (login_cookie.as_deref(), f.csrf.as_str()),
        (Some(c), f) if !c.is_empty() && session::same(c, f)
    );
    if !token_ok {
        warn!(message = "web: a login without the form's token was refused", %peer);
        return form(
            StatusCode::FORBIDDEN,
            Some("This form had expired; please log in again."),
            &token,
            https,
        );
    }
    let user = f.user.trim().to_ascii_lowercase();
    match app
        .sessions
        .login(&config, &user, &f.password, peer.ip())
        .await
    {
        Login::Ok { token } => {
            info!(message = "web: logged in", %user, %peer);
            let mut r = redirect("/");
            let secure = if https { "; Secure" } else { "" };
            let cookie =
                format!("officebox_session={token}; Path=/; HttpOnly; SameSite=Strict{secure}");
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                r.headers_mut().insert(SET_COOKIE, v);
            }
            r
        }
        Login::Wrong => {
            warn!(message = "web: failed login", %user, %peer);
            form(
                StatusCode::UNAUTHORIZED,
                Some("Wrong user or password."),
                &token,
                https,
            )
        }
        Login::Limited => form(
            StatusCode::TOO_MANY_REQUESTS,
            Some("Too many failed logins from this computer; wait ten minutes."),
            &token,
            https,
        ),
        Login::Busy => form(
            StatusCode::SERVICE_UNAVAILABLE,
            Some("The box is busy checking other logins; try again in a moment."),
            &token,
            https,
        ),
    }
}

/// `POST /logout`: ends the session and forgets its cookie.
pub(crate) async fn logout(State(app): State<Shared>, me: Me) -> Response {
    app.sessions.end(&me.token);
    let mut r = redirect("/login");
    r.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_static(
            "officebox_session=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict",
        ),
    );
    r
}
