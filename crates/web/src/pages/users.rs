//! The Users pages (`/users`, `/users/{login}`, `/users/{login}/delete`) and Message
//! Aliases (`/aliases`). Each change is an edit of the config text
//! ([`crate::people::apply`]), validated whole before it is saved.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use officebox_config::derive::{
    DND_CODE, FORWARD_ALWAYS_CODE, FORWARD_BUSY_CODE, FORWARD_NO_ANSWER_CODE, FORWARD_OFF_CODE,
    forward_reachable,
};
use officebox_config::{Config, Diagnostic};
use officebox_store::{Forwarding, Vacation};
use serde::Deserialize;

use crate::app::{App, Shared};
use crate::forms::{Form, checked};
use crate::pages::lists::{ListFailure, lists_html};
use crate::people::{self, Change};
use crate::routes::{Flash, Me, not_found_page, page, redirect};

/// The form that adds a user.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct NewUser {
    login: String,
    name: String,
    extension: String,
    password: String,
    admin: String,
}

/// The form that edits a user.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct EditUser {
    name: String,
    extension: String,
    password: String,
    pin: String,
    admin: String,
    caller_id: String,
    outside_calls_at_once: String,
    outside_calls_per_day: String,
    outside_calls_from_remote_phones: String,
    fax: String,
}

/// The form that sets an alias.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Alias {
    alias: String,
    members: String,
}

/// `GET /users`.
pub(crate) async fn list(State(app): State<Shared>, me: Me, Flash(flash): Flash) -> Response {
    let config = app.config();
    page(
        StatusCode::OK,
        users_page(&app, &config, &me, &[], None, flash).await,
    )
}

/// The Users page, with each external mailbox's last fetch.
async fn users_page(
    app: &App,
    config: &Config,
    me: &Me,
    diags: &[Diagnostic],
    error: Option<&str>,
    flash: Option<(&str, bool)>,
) -> Markup {
    let fetch = app
        .store
        .with(|db| {
            Ok(db
                .fetch_statuses()?
                .into_iter()
                .map(|s| (s.account, s.last_error, s.fetched))
                .collect::<Vec<_>>())
        })
        .await
        .unwrap_or_default();
    people::users_page(config, me.pair(), &fetch, diags, error, flash)
}

/// `POST /users`: adds a user.
pub(crate) async fn add(State(app): State<Shared>, me: Me, Form(f): Form<NewUser>) -> Response {
    let change = Change::AddUser {
        login: f.login.trim().to_ascii_lowercase(),
        name: f.name,
        extension: f.extension,
        password: f.password,
        admin: checked(&f.admin),
    };
    apply(&app, &me, change, Back::Users).await
}

/// `GET /users/{login}`.
pub(crate) async fn show(
    State(app): State<Shared>,
    me: Me,
    Path(login): Path<String>,
    Flash(flash): Flash,
) -> Response {
    let config = app.config();
    let who = login.clone();
    let forwarding = app
        .store
        .with(move |db| {
            Ok(db
                .forwardings()?
                .into_iter()
                .find(|f| f.login == who)
                .unwrap_or_default())
        })
        .await;
    let mailbox = officebox_store::mailbox_path(&config.data_dir, &login);
    let used = tokio::task::spawn_blocking(move || officebox_store::Maildir::usage(&mailbox).ok())
        .await
        .ok()
        .flatten();
    let who = login.clone();
    let vacation = app.store.with(move |db| db.vacation(&who)).await.flatten();
    let extras = Extras {
        forwarding,
        used,
        vacation,
    };
    match user_page(&app, &config, &me, &login, flash, None, &extras) {
        Some(b) => page(StatusCode::OK, b),
        None => page(
            StatusCode::NOT_FOUND,
            crate::html::page("Not found", "", Some(me.pair()), None, html! {}),
        ),
    }
}

/// What a user's page shows from the state database and the disk, when it was read.
#[derive(Debug, Default)]
pub(crate) struct Extras {
    pub forwarding: Option<Forwarding>,
    /// The bytes of mail they keep.
    pub used: Option<u64>,
    pub vacation: Option<Vacation>,
}

/// One user's page, with their own lists (`failed`: a refused row of one) and `extras`.
pub(crate) fn user_page(
    app: &App,
    config: &Config,
    me: &Me,
    login: &str,
    flash: Option<(&str, bool)>,
    failed: Option<&ListFailure<'_>>,
    extras: &Extras,
) -> Option<Markup> {
    let (forwarding, used) = (extras.forwarding.as_ref(), extras.used);
    let doc: toml_edit::DocumentMut = app.config_text().unwrap_or_default().parse().ok()?;
    let lists = lists_html(&doc, "/users", Some(login), &me.csrf, failed);
    let extra = html! {
        @if config.mail.enabled {
            (mail_setup(config, login, used))
            (crate::pages::me::vacation_form(&format!("/users/{login}/vacation"), extras.vacation.as_ref(), &me.csrf))
        }
        @if let Some(f) = forwarding {
            (forwarding_form(login, f, &me.csrf))
        }
        (crate::pages::sites::of_user(config, login, &me.csrf))
        (lists)
    };
    people::user_page(config, me.pair(), login, flash, extra)
}

/// How the user's mail programs find their settings, and the profile for Apple's.
fn mail_setup(config: &Config, login: &str, used: Option<u64>) -> Markup {
    let address = format!("{login}@{}", config.network.domain);
    let mb = |b: u64| format!("{:.1} MB", b as f64 / f64::from(1 << 20));
    let quota = officebox_config::derive::quota_of(config, login);
    html! {
        @match (used, quota) {
            (Some(u), Some(q)) => p #mailbox-size { "Mailbox: " (mb(u)) " of " (mb(q)) " (" (u.saturating_mul(100) / q) "%)." },
            (Some(u), None) => p #mailbox-size { "Mailbox: " (mb(u)) ", no size limit." },
            _ => {},
        }
        h2 { "Mail on a PC, phone or tablet" }
        p.help {
            "Thunderbird, Outlook and most mail apps set themselves up from the address "
            strong { (address) } " and the password alone (the box publishes the settings "
            "in its DNS and web site). For an iPhone, iPad or Mac, open this profile on it:"
        }
        p { a href={ "/users/" (login) "/mail.mobileconfig" } download { (login) "-mail.mobileconfig" } }
    }
}

/// The user's Apple configuration profile ([`crate::mailsetup::mobileconfig`]).
pub(crate) async fn mobileconfig(
    State(app): State<Shared>,
    me: Me,
    Path(login): Path<String>,
) -> Response {
    profile_response(&app, &me, &login)
}

/// `login`'s profile as a download, or not found.
pub(crate) fn profile_response(app: &App, me: &Me, login: &str) -> Response {
    use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
    let config = app.config();
    let profile = config
        .users
        .iter()
        .find(|u| u.login == login)
        .and_then(|u| crate::mailsetup::mobileconfig(&config, u));
    match profile {
        Some(text) => (
            StatusCode::OK,
            [
                (CONTENT_TYPE, "application/x-apple-aspen-config".to_string()),
                (
                    CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{login}-mail.mobileconfig\""),
                ),
            ],
            text,
        )
            .into_response(),
        None => not_found_page(me),
    }
}

/// The form for a user's call forwarding and do-not-disturb (kept in the state
/// database, as the phone's feature codes set them).
fn forwarding_form(login: &str, f: &Forwarding, csrf: &str) -> Markup {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    html! {
        h2 { "Call forwarding" }
        p.help {
            "Also set from the phone: " (FORWARD_ALWAYS_CODE) ", " (FORWARD_BUSY_CODE) " or "
            (FORWARD_NO_ANSWER_CODE) " and the number, " (FORWARD_OFF_CODE) " for off, "
            (DND_CODE) " for do not disturb. An outside number is called as this user's "
            "outside call (their routes and limits)."
        }
        form method="post" action={ "/users/" (login) "/forwarding" } {
            (crate::html::csrf_field(csrf))
            label { input type="checkbox" name="dnd" value="true" checked[f.dnd];
                " Do not disturb (callers go to voicemail)" }
            label { "Forward every call to " input type="text" name="always" value=(text(&f.always)); }
            label { "When busy, to " input type="text" name="busy" value=(text(&f.busy)); }
            label { "When not answered, to " input type="text" name="no_answer" value=(text(&f.no_answer)); }
            button type="submit" { "Save forwarding" }
        }
    }
}

/// The call forwarding form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ForwardingForm {
    dnd: String,
    always: String,
    busy: String,
    no_answer: String,
}

/// `POST /users/{login}/forwarding`: each target must be reachable by that user (another
/// extension, or a number their routes take); kept in the state database, where the
/// phone system reads it within a second.
pub(crate) async fn set_forwarding(
    State(app): State<Shared>,
    me: Me,
    Path(login): Path<String>,
    Form(f): Form<ForwardingForm>,
) -> Response {
    let config = app.config();
    let Some(user) = config.users.iter().find(|u| u.login == login) else {
        return not_found_page(&me);
    };
    let mut wrong = Vec::new();
    let mut target = |what: &str, v: String| {
        let v: String = v.chars().filter(|c| !c.is_whitespace()).collect();
        if v.is_empty() {
            return None;
        }
        if !forward_reachable(&config, user, &v) {
            wrong.push(format!(
                "{what}: {v} is not an extension or a number this user may call"
            ));
        }
        Some(v)
    };
    let forwarding = Forwarding {
        login: login.clone(),
        dnd: checked(&f.dnd),
        always: target("Forward every call", f.always),
        busy: target("When busy", f.busy),
        no_answer: target("When not answered", f.no_answer),
    };
    if !wrong.is_empty() {
        let note = wrong.join("; ") + ". Nothing was saved.";
        let body = user_page(
            &app,
            &config,
            &me,
            &login,
            Some((&note, false)),
            None,
            &Extras {
                forwarding: Some(forwarding),
                ..Extras::default()
            },
        );
        return page(StatusCode::UNPROCESSABLE_ENTITY, body.unwrap_or_default());
    }
    let saved = app
        .store
        .with(move |db| db.set_forwarding(&forwarding))
        .await;
    if saved.is_none() {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the state database cannot be written",
        )
            .into_response();
    }
    tracing::info!(message = "web: call forwarding set", %login, user = %me.user);
    redirect(&format!("/users/{login}?saved=1"))
}

/// `POST /users/{login}`: edits a user (404 for no such user).
pub(crate) async fn edit(
    State(app): State<Shared>,
    me: Me,
    Path(login): Path<String>,
    Form(f): Form<EditUser>,
) -> Response {
    if !app.config().users.iter().any(|u| u.login == login) {
        return not_found_page(&me);
    }
    let change = Change::EditUser {
        login,
        name: f.name,
        extension: f.extension,
        admin: checked(&f.admin),
        password: f.password,
        pin: f.pin,
        caller_id: f.caller_id,
        at_once: f.outside_calls_at_once,
        per_day: f.outside_calls_per_day,
        from_remote: checked(&f.outside_calls_from_remote_phones),
        fax: checked(&f.fax),
    };
    apply(&app, &me, change, Back::Users).await
}

/// `POST /users/{login}/delete`.
pub(crate) async fn delete(
    State(app): State<Shared>,
    me: Me,
    Path(login): Path<String>,
) -> Response {
    apply(&app, &me, Change::DeleteUser(login), Back::Users).await
}

/// `GET /aliases`.
pub(crate) async fn aliases(State(app): State<Shared>, me: Me, Flash(flash): Flash) -> Response {
    let config = app.config();
    page(
        StatusCode::OK,
        people::aliases_page(&config, me.pair(), &[], None, flash),
    )
}

/// `POST /aliases`: adds, changes or (with no members) removes an alias.
pub(crate) async fn set_alias(State(app): State<Shared>, me: Me, Form(f): Form<Alias>) -> Response {
    let change = Change::SetAlias {
        name: f.alias.trim().to_ascii_lowercase(),
        members: f
            .members
            .split(',')
            .map(|m| m.trim().to_ascii_lowercase())
            .filter(|m| !m.is_empty())
            .collect(),
    };
    apply(&app, &me, change, Back::Aliases).await
}

/// The page a change returns to.
#[derive(Debug, Clone, Copy)]
enum Back {
    Users,
    Aliases,
}

impl Back {
    fn path(self) -> &'static str {
        match self {
            Back::Users => "/users",
            Back::Aliases => "/aliases",
        }
    }
}

/// A change from the Users or Aliases page: applied to the config text, validated
/// whole, saved; refused, the page comes back saying why.
async fn apply(app: &App, me: &Me, change: Change, back: Back) -> Response {
    let config = app.config();
    let Some(text) = app.config_text() else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the config file cannot be read",
        )
            .into_response();
    };
    let applied = tokio::task::spawn_blocking({
        let text = text.clone();
        move || people::apply(&text, &change)
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    let refuse = async |status: StatusCode, diags: &[Diagnostic], error: Option<&str>| {
        let note = Some(("Nothing was saved.", false));
        let body = match back {
            Back::Aliases => people::aliases_page(&config, me.pair(), diags, error, note),
            Back::Users => people::users_page(&config, me.pair(), &[], diags, error, note),
        };
        page(status, body)
    };
    let new = match applied {
        Ok(n) => n,
        Err(e) => return refuse(StatusCode::UNPROCESSABLE_ENTITY, &[], Some(&e)).await,
    };
    if let Err(d) = officebox_config::parse(&app.config_name(), &new) {
        return refuse(StatusCode::UNPROCESSABLE_ENTITY, &d.0, None).await;
    }
    let what = back.path().trim_start_matches('/');
    match app.save(&config, &new, what, false).await {
        Ok(()) => redirect(&format!("{}?saved=1", back.path())),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &[], Some(&e)).await,
    }
}
