//! The one error type of this crate.
//!
//! Every variant names the file or directory it is about, so a message in the log is
//! enough to find the problem without a backtrace.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the state database or the mailstore.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A filesystem operation failed (`op` says which, e.g. "create directory").
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What we were doing, in words: "create directory", "fsync", ...
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// SQLite reported an error while doing `op` on the database at `path`.
    #[error("state database {}: {op}: {source}", path.display())]
    Sqlite {
        /// What we were doing, in words: "open", "read leases", ...
        op: &'static str,
        /// The database file (`:memory:` for an in-memory database).
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },

    /// A schema migration failed; the database stays at the previous version.
    #[error(
        "state database {}: migration {version} ({name}) failed, the database stays at version {}: {source}",
        path.display(),
        version - 1
    )]
    Migration {
        /// The database file.
        path: PathBuf,
        /// The version the migration would have brought the database to.
        version: u32,
        /// The migration's short name.
        name: &'static str,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },

    /// The database was written by a newer officebox than this one.
    #[error(
        "state database {} is at schema version {found} but this officebox knows only up to {known}; \
         refusing to open it (was it written by a newer officebox?)",
        path.display()
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// The `user_version` found in the file.
        found: u32,
        /// The newest migration this binary knows.
        known: u32,
    },

    /// A row in the database holds a value this code cannot understand.
    #[error("state database {}: {what}", path.display())]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What is wrong, e.g. "lease address \"x\" is not an IPv4 address".
        what: String,
    },

    /// A maildir file name that is not a plain name inside its folder.
    #[error("maildir {}: {name:?} is not a valid message name", root.display())]
    InvalidName {
        /// The maildir's root directory.
        root: PathBuf,
        /// The offending name.
        name: String,
    },
}

impl StoreError {
    /// A fault that is ours (a write failed): what we were doing, where, and why.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StoreError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
