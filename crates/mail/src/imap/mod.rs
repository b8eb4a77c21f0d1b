//! IMAP (RFC 9051 IMAP4rev2, and RFC 3501 IMAP4rev1 for older clients) on the same
//! Maildirs that SMTP, POP3, voicemail and the fetcher use.
//!
//! - [`frame`]: where one command ends in what a client sends (lines and literals),
//!   within limits, so that nothing unbounded is ever held.
//! - [`command`]: the commands, parsed from one framed command.
//! - [`mailbox`]: a user's folders on disk (Maildir++) and their index.
//! - [`flags`]: IMAP flags as Maildir letters and index keywords.
//! - [`search`]: which messages a SEARCH key picks.
//! - [`structure`]: a message's MIME parts, BODYSTRUCTURE and ENVELOPE.
//! - [`utf7`]: modified UTF-7 folder names for IMAP4rev1 clients.
//! - [`session`]: one connection.

pub mod command;
pub mod flags;
pub mod frame;
pub mod mailbox;
pub mod search;
pub mod session;
pub mod structure;
pub mod utf7;
