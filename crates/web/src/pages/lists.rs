//! The lists inside pages (port forwards, reservations, DNS records, a user's external
//! mailboxes): `POST /list/{list}/add`, `/list/{list}/{n}/delete`, and for a user's own
//! lists `/users/{login}/{list}/add` and `/users/{login}/{list}/{n}/delete`. A change is
//! validated whole, saved, and for a risky list applied with confirm-or-revert; a refused
//! row comes back with its errors beside its fields.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use officebox_config::Diagnostic;
use tracing::info;

use crate::app::{App, Shared};
use crate::forms::Pairs;
use crate::lists::{self, ListDef};
use crate::routes::{Me, not_found_page, page, redirect};

/// A list row that was refused: what was submitted, and why (errors under `path`, the
/// row's path as validation names it).
#[derive(Debug)]
pub(crate) struct ListFailure<'a> {
    def: &'static ListDef,
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

/// The list `id` if it is a list of the office (`owner: false`) or of a user.
fn find(id: &str, per_user: bool) -> Option<&'static ListDef> {
    lists::list(id).filter(|def| def.per_user == per_user)
}

/// `POST /list/{list}/add`.
pub(crate) async fn add(
    State(app): State<Shared>,
    me: Me,
    Path(list): Path<String>,
    Pairs(pairs): Pairs,
) -> Response {
    match find(&list, false) {
        Some(def) => change(&app, &me, def, None, ListOp::Add, &pairs).await,
        None => not_found_page(&me),
    }
}

/// `POST /list/{list}/{n}/delete`.
pub(crate) async fn delete(
    State(app): State<Shared>,
    me: Me,
    Path((list, n)): Path<(String, String)>,
) -> Response {
    match (find(&list, false), n.parse()) {
        (Some(def), Ok(n)) => change(&app, &me, def, None, ListOp::Delete(n), &[]).await,
        _ => not_found_page(&me),
    }
}

/// `POST /users/{login}/{list}/add`.
pub(crate) async fn add_own(
    State(app): State<Shared>,
    me: Me,
    Path((login, list)): Path<(String, String)>,
    Pairs(pairs): Pairs,
) -> Response {
    match find(&list, true) {
        Some(def) => change(&app, &me, def, Some(&login), ListOp::Add, &pairs).await,
        None => not_found_page(&me),
    }
}

/// `POST /users/{login}/{list}/{n}/delete`.
pub(crate) async fn delete_own(
    State(app): State<Shared>,
    me: Me,
    Path((login, list, n)): Path<(String, String, String)>,
) -> Response {
    match (find(&list, true), n.parse()) {
        (Some(def), Ok(n)) => change(&app, &me, def, Some(&login), ListOp::Delete(n), &[]).await,
        _ => not_found_page(&me),
    }
}

/// Adds or removes a row of a list; validated whole, saved, and (for a risky list)
/// applied with confirm-or-revert.
async fn change(
    app: &App,
    me: &Me,
    def: &'static ListDef,
    owner: Option<&str>,
    op: ListOp,
    pairs: &[(String, String)],
) -> Response {
    let config = app.config();
    let back = owner.map_or_else(|| def.page.to_string(), |o| format!("/users/{o}"));
    let mut row = lists::unprefixed(def, pairs);
    // A new device left without a tunnel address gets the next free one.
    if matches!(op, ListOp::Add)
        && def.array == "vpn.peers"
        && crate::forms::value(&row, "address").is_none_or(|a| a.trim().is_empty())
        && let Some(free) = officebox_config::derive::free_device_address(&config.vpn)
    {
        row.retain(|(k, _)| k != "address");
        row.push(("address".to_string(), free.to_string()));
    }
    // The page again, with the row as it was submitted and why it was refused.
    let failure_page =
        async |status: StatusCode, diags: &[Diagnostic], path: String, flash: &str| {
            let failure = ListFailure {
                def,
                pairs: &row,
                diags,
                path,
            };
            let flash = Some((flash, false));
            let html = match owner {
                Some(o) => crate::pages::users::user_page(
                    app,
                    &config,
                    me,
                    o,
                    flash,
                    Some(&failure),
                    &crate::pages::users::Extras::default(),
                ),
                None => match crate::settings::page(def.page) {
                    Some(p) => Some(
                        crate::pages::settings::render(
                            app,
                            &config,
                            p,
                            me,
                            None,
                            &[],
                            flash,
                            Some(&failure),
                        )
                        .await,
                    ),
                    None => None,
                },
            };
            match html {
                Some(h) => page(status, h),
                None => page(
                    StatusCode::NOT_FOUND,
                    crate::html::page("Not found", "", Some(me.pair()), None, html! {}),
                ),
            }
        };
    let Some(text) = app.config_text() else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the config file cannot be read",
        )
            .into_response();
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
    if let Err(d) = officebox_config::parse(&app.config_name(), &new) {
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
    // A new device's configuration and QR code are what the admin wants next.
    let device = (matches!(op, ListOp::Add) && def.array == "vpn.peers")
        .then(|| crate::forms::value(&row, "name"))
        .flatten()
        .map(str::to_string);
    match app.save(&config, &new, def.heading, def.risky).await {
        Ok(()) if def.risky => redirect("/confirm"),
        Ok(()) => match device {
            Some(name) => redirect(&format!("/devices/{name}?saved=1")),
            None => redirect(&format!("{back}?saved=1")),
        },
        Err(e) => failure_page(StatusCode::INTERNAL_SERVER_ERROR, &[], String::new(), &e).await,
    }
}

/// The lists of a page (or of one user's page), each with its add form.
pub(crate) fn lists_html(
    doc: &toml_edit::DocumentMut,
    page: &str,
    owner: Option<&str>,
    csrf: &str,
    failed: Option<&ListFailure<'_>>,
) -> Markup {
    html! {
        @for def in lists::on_page(page).filter(|def| def.per_user == owner.is_some()) {
            @let refused = failed
                .filter(|f| f.def.id == def.id)
                .map(|f| lists::Refused { pairs: f.pairs, diags: f.diags, path: &f.path });
            (lists::render(doc, def, owner, csrf, refused))
        }
    }
}
