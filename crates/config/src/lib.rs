//! officebox's config model: one TOML file, read into a typed, validated [`Config`].
//!
//! - [`load`] / [`parse`] read a file and report every problem at once, each with its
//!   file, line and column, the setting's path, what is wrong and what would be right.
//! - [`derive`] computes the settings the appliance derives from others (DHCP options per
//!   security mode, built-in DNS names, which ports face the WAN): one place per rule.
//! - [`schema`] names every setting once: path, kind, default, label and help; the
//!   loader, the template and the admin pages all read it.
//! - [`template`] writes the commented default file, and [`edit`] changes users in a file
//!   while keeping its comments and layout.
//!
//! This crate does no I/O beyond reading the file in [`load`]: no sockets, no tasks.

pub mod derive;
mod diag;
pub mod dialplan;
pub mod edit;
mod load;
pub mod model;
mod read;
pub mod schema;
pub mod template;
pub mod values;

pub use diag::{Diagnostic, Diagnostics};
pub use load::{LoadError, load, parse, parse_login, reverse_zone};
pub use model::*;
