//! Voicemail and faxes are delivered like a mail to their user (the white paper's alias
//! technique, section 9.2): through the user's alias, if they have one, a copy in each
//! local mailbox it names and one queued for each address elsewhere, so that
//! `alice = ["alice", "alice@isp.example"]` keeps alice's copy and forwards one. The
//! mail service's queue (the store's, which it looks at every second) sends the
//! forwarded copies; the phone system writes the queue file and rows as SMTP does (file
//! fsynced first, then the rows in one transaction).

use std::io;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use officebox_store::{Db, Maildir, NewMessage, NewRecipient, mailbox_path};

/// Where a user's voicemail or fax goes, from the config at the time of the call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Targets {
    /// The user's own mailbox keeps a copy (the one the phone menu plays).
    pub own: bool,
    /// Other local mailboxes (an alias's members).
    pub copies: Vec<String>,
    /// Addresses elsewhere, sent by the mail queue.
    pub forward: Vec<String>,
    /// The envelope sender of forwarded copies (bounces come back to the user).
    pub sender: String,
}

impl Targets {
    /// The user's own mailbox only.
    pub fn own() -> Targets {
        Targets {
            own: true,
            ..Targets::default()
        }
    }

    /// Where mail to `login` goes under `config`'s aliases.
    pub fn of(config: &officebox_config::Config, login: &str) -> Targets {
        let (mailboxes, forward) = officebox_config::derive::mail_targets(config, login);
        if mailboxes.is_empty() && forward.is_empty() {
            return Targets::own();
        }
        Targets {
            own: mailboxes.contains(login),
            copies: mailboxes.into_iter().filter(|m| m != login).collect(),
            forward: forward.into_iter().collect(),
            sender: format!("{login}@{}", config.network.domain),
        }
    }
}

/// Delivers `message` for `login` to `targets`: the user's own copy's name (if kept),
/// every copy fsynced and the forwarded one queued before this returns. Blocking.
pub fn deliver(
    db: &Mutex<Db>,
    data_dir: &Path,
    login: &str,
    targets: &Targets,
    message: &[u8],
) -> io::Result<Option<String>> {
    let mut own = None;
    if targets.own {
        let maildir = Maildir::open(&mailbox_path(data_dir, login)).map_err(io::Error::other)?;
        own = Some(
            maildir
                .deliver(message)
                .map_err(io::Error::other)?
                .as_str()
                .to_string(),
        );
    }
    for other in &targets.copies {
        let maildir = Maildir::open(&mailbox_path(data_dir, other)).map_err(io::Error::other)?;
        maildir.deliver(message).map_err(io::Error::other)?;
    }
    if !targets.forward.is_empty() {
        let now = officebox_store::unix_now();
        let path = officebox_store::write_queue_file(&data_dir.join("queue"), message, now)
            .map_err(io::Error::other)?;
        let recipients: Vec<NewRecipient> =
            targets.forward.iter().map(NewRecipient::plain).collect();
        let queued = db.lock().unwrap_or_else(PoisonError::into_inner).enqueue(
            &NewMessage {
                sender: &targets.sender,
                path: &path,
                size: message.len() as u64,
                envid: None,
                ret: None,
                recipients: &recipients,
            },
            now,
        );
        if let Err(e) = queued {
            let _ = std::fs::remove_file(&path);
            return Err(io::Error::other(e));
        }
    }
    Ok(own)
}
