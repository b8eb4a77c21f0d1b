//! officebox's durable state: the SQLite state database and the Maildir mailstore.
//!
//! Service crates keep everything that must survive a restart here, and meet each
//! other here (DHCP writes [`Lease`]s that DNS reads; voicemail delivers into the
//! same [`Maildir`] that POP3 serves). This crate has no tasks and no sockets; its
//! calls block on disk I/O, so async callers run them on a blocking thread.
//!
//! # Invariants: what is on disk when a function returns
//!
//! The project promises that `kill -9` at any moment loses nothing acknowledged and
//! leaves no half-written message or lease. Concretely:
//!
//! - [`Db::open`] returns only once the schema is at [`known_schema_version`]. Each
//!   migration commits together with its `PRAGMA user_version` bump, so a crash
//!   mid-upgrade leaves the previous version, and the next open resumes. A database
//!   from a newer officebox is refused ([`StoreError::TooNew`]), never touched.
//! - Every `Db` write method ([`Db::meta_set`], [`Db::upsert_lease`]) is one
//!   transaction, committed with `synchronous=FULL` in WAL mode: when it returns
//!   `Ok`, the change survives a crash or power loss; when it fails, nothing of it
//!   is visible.
//! - [`Maildir::deliver`] returns `Ok` only after the message has been written to
//!   `tmp/`, fsynced, renamed into `new/` and `new/` itself fsynced. A file in `new/`
//!   or `cur/` is therefore always a complete message; a crash leaves at most debris
//!   in `tmp/` (removed by [`Maildir::clean_tmp`]). On error, nothing is left behind.
//! - [`Maildir::delete`] and [`Maildir::mark_seen`] fsync the directories they change
//!   before returning, so a removal or a move is durable once acknowledged.
//! - Message names never contain `/`, nor `:` or `,` before the info part; the size
//!   is in the name (`,S=<bytes>`), so a listing needs no `stat`.
//!
//! Library code never panics on anything read from disk: odd rows are
//! [`StoreError::Corrupt`], odd file names are skipped or [`StoreError::InvalidName`].

pub mod backup;
mod call_log;
pub mod date;
mod db;
mod dkim;
mod error;
mod fax;
mod fetch;
mod file;
mod greylist;
mod imap;
mod maildir;
pub mod memory;
mod phone;
mod provision;
mod queue;
mod trunk;
mod vacation;
mod vpn;
pub mod wav;

pub use call_log::{
    CSV_HEADER, CallEvent, CallQuery, CallRecord, Direction, Disposition, NewCall,
    csv as call_log_csv,
};
pub use db::{
    Db, LOCK_FILE, Lease, LeaseState, MIGRATIONS, Migration, ServedRecord, known_schema_version,
    state_db, unix_now,
};
pub use dkim::DkimKey;
pub use error::StoreError;
pub use fax::{FaxEntry, FaxOut, NewFaxOut};
pub use fetch::FetchStatus;
pub use file::write_atomic;
pub use imap::{FlagSets, Found, FoundFile, ImapFolder, ImapMessage, Synced};
pub use maildir::{
    Entry, Folder, Maildir, MessageName, Place, Places, TMP_STALE_AFTER, arrival_of, mailbox_path,
};
pub use phone::{Forwarding, SipBinding, SipCall, Voicemail};
pub use provision::ProvisionedPhone;
pub use queue::{
    Job, NewMessage, NewRecipient, Notice, Outcome, Queued, QueuedRecipient, RecipientState, Ret,
    notify, wants, write_queue_file,
};
pub use trunk::{TrunkState, TrunkStatus};
pub use vacation::{VACATION_EVERY, Vacation};
pub use vpn::SiteStatus;

/// Where the music on hold uploaded on the Phone Routing page is kept (it wins over the
/// configured file and the built-in tune).
pub fn music_on_hold_path(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("music").join("on-hold.wav")
}

/// Where the greeting recorded for auto attendant `name` is kept (uploaded on the Phone
/// Routing page, or recorded from a phone): it wins over the attendant's configured one.
pub fn attendant_greeting_path(data_dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    data_dir
        .join("attendants")
        .join("recorded")
        .join(format!("{name}.wav"))
}
