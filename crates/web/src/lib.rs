//! officebox's admin pages: every setting on a page an office manager understands, saved
//! only when the whole config is valid (errors beside their fields), written atomically
//! with the last 20 versions kept, and risky changes (addresses, the security mode)
//! applied with confirm-or-revert. Also the www site and the corp intranet ([`site`]).
//!
//! Where things are:
//! - [`listen`]: binding, accepting (per-address connection limits), TLS, HTTP/1.1.
//! - [`routes`]: every URL of the admin pages in one table, and the checks every request
//!   passes first (office network only, the form's size, the session and its CSRF token).
//! - [`confirm`]: saving the config, the reload the supervisor answers, confirm-or-revert.
//! - [`live`]: the live tables (mail queue, phones, leases, the zone as served).
//! - [`pages`]: one module per page (home, login, settings, users and aliases, lists,
//!   history, mail queue actions).
//! - [`html`]: the page frame and accessible fields; [`settings`] and [`lists`]: the
//!   settings pages and the lists inside them as data; [`people`]: the users' and
//!   aliases' pages; [`history`]: config versions, diffs and rollback; [`session`]:
//!   logins, sessions, CSRF tokens, the failed-login limit.
//!
//! Pages are maud templates, which escape every value they are given unless it is
//! marked `PreEscaped`. Served over HTTP/1.1 (hyper, axum's router) on the LAN only
//! (`web.admin_port`); requests from the WAN side are refused even if they arrive. Every
//! response carries security headers; every form that changes something carries the
//! session's CSRF token.

#![cfg_attr(not(test), warn(clippy::string_slice, clippy::indexing_slicing))]

mod app;
mod confirm;
mod forms;
pub mod history;
pub mod html;
mod listen;
pub mod lists;
mod live;
pub mod mailsetup;
mod pages;
pub mod people;
mod provision;
pub mod recent;
pub mod records;
mod routes;
pub mod session;
pub mod settings;
pub mod site;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use officebox_config::Config;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

pub use forms::form;

/// What the supervisor hands the web service: the file it edits and a way to ask for
/// that file to be applied.
#[derive(Debug, Clone)]
pub struct WebContext {
    /// The config file officebox runs from (absolute).
    pub config_path: PathBuf,
    /// Asks the supervisor to reload the file, as SIGHUP does; the answer comes back on
    /// the oneshot sent with the request.
    pub reload: mpsc::Sender<ReloadRequest>,
}

/// A reload request: where the supervisor sends its answer.
pub type ReloadRequest = oneshot::Sender<Reloaded>;

/// What a reload came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reloaded {
    /// The new config runs.
    Applied,
    /// The file was refused (why, in words); the running config is unchanged.
    Refused(String),
}

/// Runs the admin pages and the sites until `shutdown`.
pub async fn serve(
    config_rx: watch::Receiver<Arc<Config>>,
    context: WebContext,
    shutdown: CancellationToken,
) -> io::Result<()> {
    listen::serve(config_rx, context, shutdown).await
}
