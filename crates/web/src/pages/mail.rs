//! The Mail page's queue buttons: `POST /mail/flush` (retry every waiting recipient now)
//! and `POST /mail/queue/{id}/delete`, both through the store's queue methods.

use axum::extract::{Path, State};
use axum::response::Response;
use tracing::info;

use crate::app::Shared;
use crate::routes::{Me, redirect};

/// `POST /mail/flush`.
pub(crate) async fn flush(State(app): State<Shared>, me: Me) -> Response {
    let now = officebox_store::unix_now();
    let _ = app.store.with(move |db| db.flush_queue(now)).await;
    info!(message = "web: mail queue flushed", user = %me.user);
    redirect("/mail?saved=1")
}

/// `POST /mail/queue/{id}/delete`: the message and its file (an id that names nothing
/// deletes nothing).
pub(crate) async fn delete(State(app): State<Shared>, me: Me, Path(id): Path<String>) -> Response {
    if let Ok(id) = id.parse::<i64>() {
        let _ = app.store.with(move |db| db.delete_queued(id)).await;
        info!(message = "web: queued message deleted", id, user = %me.user);
    }
    redirect("/mail?saved=1")
}
