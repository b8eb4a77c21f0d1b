//! A user's own page (`/me`): any user may log in with their mail password and set their
//! out-of-office reply there, and fetch the profile that sets up Mail on an Apple
//! device; nothing else of the admin pages opens to them (`routes::require_session`).
//! The out-of-office form is the same on the admin's Users page
//! (`POST /users/{login}/vacation`).

use axum::extract::{Path, State};
use axum::response::Response;
use maud::{Markup, html};
use officebox_store::Vacation;
use serde::Deserialize;
use tracing::info;

use crate::app::Shared;
use crate::forms::{Form, checked};
use crate::routes::{Me, not_found_page, page, redirect};

/// The longest subject and message kept.
const MAX_SUBJECT: usize = 200;
const MAX_BODY: usize = 4000;

/// The out-of-office form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct VacationForm {
    on: String,
    subject: String,
    body: String,
    until: String,
}

/// The form for `login`'s reply, posting to `action`.
pub(crate) fn vacation_form(action: &str, v: Option<&Vacation>, csrf: &str) -> Markup {
    let until = v
        .and_then(|v| v.until)
        .map(|t| {
            officebox_store::date::datetime(t)
                .chars()
                .take(10)
                .collect::<String>()
        })
        .unwrap_or_default();
    html! {
        h2 { "Out of office" }
        p.help {
            "While this is on, people who write get this reply, each once every "
            (officebox_store::VACATION_EVERY / 86_400) " days; lists, robots and other automatic "
            "mail never do."
        }
        form method="post" action=(action) id="vacation" {
            (crate::html::csrf_field(csrf))
            label { input type="checkbox" name="on" value="true" checked[v.is_some()]; " Reply while I am away" }
            label { "Subject " input type="text" name="subject" maxlength=(MAX_SUBJECT)
                placeholder="Out of office" value=(v.map_or("", |v| v.subject.as_str())); }
            label { "Message " textarea name="body" rows="5" maxlength=(MAX_BODY) {
                (v.map_or("", |v| v.body.as_str())) } }
            label { "Until (last day, empty: until turned off) "
                input type="date" name="until" value=(until); }
            button type="submit" { "Save out of office" }
        }
    }
}

/// Reads the form: the reply to keep (`None`: off), or what is wrong with it.
fn read(login: &str, f: VacationForm) -> Result<Option<Vacation>, String> {
    if !checked(&f.on) {
        return Ok(None);
    }
    let subject = f.subject.trim().to_string();
    let body = f.body.trim().to_string();
    if subject.chars().count() > MAX_SUBJECT || body.chars().count() > MAX_BODY {
        return Err(format!(
            "The subject is at most {MAX_SUBJECT} characters and the message {MAX_BODY}."
        ));
    }
    if body.is_empty() {
        return Err("Write the message people get while you are away.".into());
    }
    let until = match f.until.trim() {
        "" => None,
        day => Some(
            officebox_store::date::parse_day(day)
                .ok_or_else(|| format!("{day} is not a day (YYYY-MM-DD)"))?
                + 86_399,
        ),
    };
    Ok(Some(Vacation {
        login: login.to_string(),
        subject,
        body,
        until,
    }))
}

/// Saves `login`'s reply from the form; the note to show.
pub(crate) async fn save(app: &Shared, who: &str, login: &str, f: VacationForm) -> Option<String> {
    let v = match read(login, f) {
        Ok(v) => v,
        Err(why) => return Some(why),
    };
    let l = login.to_string();
    let on = v.is_some();
    let saved = app
        .store
        .with(move |db| db.set_vacation(&l, v.as_ref()))
        .await;
    if saved.is_none() {
        return Some("The reply cannot be saved just now.".into());
    }
    info!(message = "web: out-of-office reply saved", user = %login, on, by = %who);
    None
}

/// `GET /me`.
pub(crate) async fn show(State(app): State<Shared>, me: Me) -> Response {
    own_page(&app, &me, None).await
}

async fn own_page(app: &Shared, me: &Me, note: Option<(&str, bool)>) -> Response {
    let config = app.config();
    let login = me.user.clone();
    let v = app
        .store
        .with(move |db| db.vacation(&login))
        .await
        .flatten();
    let address = format!("{}@{}", me.user, config.network.domain);
    let body = html! {
        p { "Your mail: " strong { (address) } "." }
        (vacation_form("/me/vacation", v.as_ref(), &me.csrf))
        @if config.mail.enabled {
            h2 { "Mail on a phone or tablet" }
            p.help {
                "Mail apps set themselves up from your address and password. On an iPhone, "
                "iPad or Mac, open this profile there:"
            }
            p { a href="/me/mail.mobileconfig" download { (me.user) "-mail.mobileconfig" } }
        }
    };
    page(
        if note.is_some_and(|(_, ok)| !ok) {
            axum::http::StatusCode::UNPROCESSABLE_ENTITY
        } else {
            axum::http::StatusCode::OK
        },
        crate::html::own_page("Your settings", me.pair(), note, body),
    )
}

/// `POST /me/vacation`.
pub(crate) async fn set_own(
    State(app): State<Shared>,
    me: Me,
    Form(f): Form<VacationForm>,
) -> Response {
    match save(&app, &me.user, &me.user.clone(), f).await {
        None => redirect("/me?saved=1"),
        Some(why) => own_page(&app, &me, Some((&why, false))).await,
    }
}

/// `POST /users/{login}/vacation` (the admin, for anyone).
pub(crate) async fn set_for(
    State(app): State<Shared>,
    me: Me,
    Path(login): Path<String>,
    Form(f): Form<VacationForm>,
) -> Response {
    if !app.config().users.iter().any(|u| u.login == login) {
        return not_found_page(&me);
    }
    match save(&app, &me.user, &login, f).await {
        None => redirect(&format!("/users/{login}?saved=1")),
        Some(why) => page(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            crate::html::page(
                "Out of office not saved",
                "/users",
                Some(me.pair()),
                Some((&why, false)),
                html! { p { a href={ "/users/" (login) } { "Back to " (login) } } },
            ),
        ),
    }
}

/// `GET /me/mail.mobileconfig`.
pub(crate) async fn mobileconfig(State(app): State<Shared>, me: Me) -> Response {
    crate::pages::users::profile_response(&app, &me, &me.user)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn form(on: &str, subject: &str, body: &str, until: &str) -> VacationForm {
        VacationForm {
            on: on.into(),
            subject: subject.into(),
            body: body.into(),
            until: until.into(),
        }
    }

    #[test]
    fn the_form_is_read_with_limits() {
        assert_eq!(read("a", form("", "x", "y", "")).unwrap(), None);
        let v = read("a", form("true", " Away ", "Back soon", "2026-12-24"))
            .unwrap()
            .unwrap();
        assert_eq!(v.subject, "Away");
        assert_eq!(
            v.until,
            Some(officebox_store::date::parse_day("2026-12-24").unwrap() + 86_399)
        );
        assert!(read("a", form("true", "x", "", "")).is_err());
        assert!(read("a", form("true", "x", "y", "24.12.2026")).is_err());
        assert!(read("a", form("true", &"s".repeat(201), "y", "")).is_err());
    }
}
