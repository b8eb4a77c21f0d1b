//! Storing an accepted message: a copy in each local mailbox (Maildir, fsynced) and, for
//! addresses elsewhere, the message file plus its recipients on the outbound queue (file
//! fsynced first, then the queue rows in one transaction). All of it is on disk before
//! the client hears `250`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use officebox_store::{Db, Maildir, NewMessage, NewRecipient, Ret, StoreError};
use tokio::sync::Notify;

/// Where one message goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    pub mailboxes: BTreeSet<String>,
    /// Addresses elsewhere, each once.
    pub external: Vec<NewRecipient>,
    /// Into the mailboxes' Junk folder rather than their inbox.
    pub junk: bool,
}

impl Delivery {
    /// Adds an address elsewhere unless it is already there.
    pub fn forward(&mut self, recipient: NewRecipient) {
        if !self.external.iter().any(|r| r.address == recipient.address) {
            self.external.push(recipient);
        }
    }
}

/// The envelope of a message as the queue needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    /// The reverse path; empty for the null sender.
    pub from: String,
    /// RFC 3461 ENVID and RET.
    pub envid: Option<String>,
    pub ret: Option<Ret>,
}

/// The mail store: mailboxes and the queue under `data_dir`.
#[derive(Debug)]
pub struct Store {
    data_dir: PathBuf,
    db: Mutex<Db>,
    /// Rung when something is queued, so the queue runner starts on it at once.
    pub queued: Notify,
}

impl Store {
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        Ok(Store {
            data_dir: data_dir.to_path_buf(),
            db: Mutex::new(Db::open(&officebox_store::state_db(data_dir))?),
            queued: Notify::new(),
        })
    }

    /// The Maildir of user `login`.
    pub fn mailbox(&self, login: &str) -> PathBuf {
        mailbox_path(&self.data_dir, login)
    }

    /// Where queued message files live.
    pub fn queue_dir(&self) -> PathBuf {
        self.data_dir.join("queue")
    }

    /// Runs `f` with the state database (a blocking call).
    pub fn with_db<R>(&self, f: impl FnOnce(&Db) -> R) -> R {
        let db = self.db.lock().unwrap_or_else(PoisonError::into_inner);
        f(&db)
    }

    /// Writes `message` as a new queue file (fsynced); the caller queues its rows.
    pub fn write_queue_file(&self, message: &[u8], now: i64) -> Result<PathBuf, StoreError> {
        officebox_store::write_queue_file(&self.queue_dir(), message, now)
    }

    /// Stores `message` for `delivery`; returns an identifier for the `250` reply.
    pub fn deliver(
        &self,
        envelope: &Envelope,
        message: &[u8],
        delivery: &Delivery,
        now: i64,
    ) -> Result<String, StoreError> {
        let mut id = None;
        for login in &delivery.mailboxes {
            let mut dir = self.mailbox(login);
            if delivery.junk {
                // The IMAP folder Junk (Maildir++ `.Junk`, see imap::mailbox).
                dir.push(".Junk");
            }
            let name = Maildir::open(&dir)?.deliver(message)?;
            id.get_or_insert_with(|| name.to_string());
        }
        if !delivery.external.is_empty() {
            let path = self.write_queue_file(message, now)?;
            let qid = self.with_db(|db| {
                db.enqueue(
                    &NewMessage {
                        sender: &envelope.from,
                        path: &path,
                        size: message.len() as u64,
                        envid: envelope.envid.as_deref(),
                        ret: envelope.ret,
                        recipients: &delivery.external,
                    },
                    now,
                )
            })?;
            self.queued.notify_one();
            id.get_or_insert_with(|| format!("queued as {qid}"));
        }
        Ok(id.unwrap_or_default())
    }
}

pub use officebox_store::mailbox_path;
