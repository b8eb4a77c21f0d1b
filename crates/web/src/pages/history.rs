//! `/history`: the versions of the config kept, each with its diff against today's
//! file, and `POST /history/{n}/rollback`, itself a change that must be confirmed.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;

use crate::app::Shared;
use crate::routes::{Me, page, redirect};

/// `GET /history`.
pub(crate) async fn list(State(app): State<Shared>, me: Me) -> Response {
    page(
        StatusCode::OK,
        crate::history::list_page(&app.config(), me.pair()),
    )
}

fn not_found(me: &Me) -> Response {
    page(
        StatusCode::NOT_FOUND,
        crate::html::page("Not found", "", Some(me.pair()), None, html! {}),
    )
}

/// `GET /history/{n}`.
pub(crate) async fn show(State(app): State<Shared>, me: Me, Path(n): Path<String>) -> Response {
    let current = app.config_text().unwrap_or_default();
    match crate::history::show_page(&app.config(), me.pair(), &n, &current) {
        Some(body) => page(StatusCode::OK, body),
        None => not_found(&me),
    }
}

/// `POST /history/{n}/rollback`: version `n` becomes the config, to be confirmed.
pub(crate) async fn rollback(State(app): State<Shared>, me: Me, Path(n): Path<String>) -> Response {
    let config = app.config();
    let Some(text) = crate::history::version_text(&config, &n) else {
        return not_found(&me);
    };
    match app.save(&config, &text, "rollback", true).await {
        Ok(()) => redirect("/confirm"),
        Err(e) => page(
            StatusCode::OK,
            crate::html::page(
                "Config History",
                "/history",
                Some(me.pair()),
                Some((&e, false)),
                html! {},
            ),
        ),
    }
}
