//! Storing an accepted message: a copy in each local mailbox (Maildir, fsynced) and, for
//! addresses elsewhere, the message file plus its recipients on the outbound queue (file
//! fsynced first, then the queue rows in one transaction). All of it is on disk before
//! the client hears `250`.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use officebox_config::Config;
use officebox_config::derive::quota_of;

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
    /// Each mailbox's bytes as last counted, and when (see [`Store::usage`]).
    usage: Mutex<HashMap<String, (u64, Instant)>>,
}

/// How long a mailbox's count is trusted before it is made again (deliveries through
/// this store add to it meanwhile; deletions over IMAP or POP3 show after this).
const USAGE_FRESH: Duration = Duration::from_secs(30);
/// The share of the quota at which the user is warned, and below which they may be
/// warned again, in percent.
const WARN_AT: u64 = 90;
const WARN_AGAIN_BELOW: u64 = 80;

impl Store {
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        Ok(Store {
            data_dir: data_dir.to_path_buf(),
            db: Mutex::new(Db::open(&officebox_store::state_db(data_dir))?),
            queued: Notify::new(),
            usage: Mutex::default(),
        })
    }

    /// The bytes `login` keeps in all their folders (a blocking call: a count of the
    /// mailbox at most every 30 s).
    pub fn usage(&self, login: &str) -> Result<u64, StoreError> {
        if let Some((bytes, at)) = self
            .usage
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(login)
            && at.elapsed() < USAGE_FRESH
        {
            return Ok(*bytes);
        }
        let bytes = Maildir::usage(&self.mailbox(login))?;
        self.usage
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(login.to_string(), (bytes, Instant::now()));
        Ok(bytes)
    }

    /// Forgets `login`'s count, so the next question counts again (after mail was
    /// deleted over IMAP).
    pub fn forget_usage(&self, login: &str) {
        self.usage
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(login);
    }

    /// After a delivery of `size` bytes to `mailboxes`: counts it, and sends a user
    /// whose mailbox went past 90% of their quota one warning (again only once it has
    /// been under 80%).
    pub fn after_delivery(
        &self,
        config: &Config,
        mailboxes: &BTreeSet<String>,
        size: u64,
        now: i64,
    ) -> Result<(), StoreError> {
        for login in mailboxes {
            if let Some((bytes, _)) = self
                .usage
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_mut(login)
            {
                *bytes = bytes.saturating_add(size);
            }
            let Some(quota) = quota_of(config, login) else {
                continue;
            };
            let used = self.usage(login)?;
            let percent = used.saturating_mul(100) / quota;
            let key = format!("quota.warned.{login}");
            let warned = self.with_db(|db| db.meta_get(&key))?.is_some();
            if percent >= WARN_AT && !warned {
                let warning = quota_warning(config, login, used, quota, now);
                Maildir::open(&self.mailbox(login))?.deliver(warning.as_bytes())?;
                self.with_db(|db| db.meta_set(&key, &now.to_string()))?;
                tracing::info!(message = "mail: mailbox nearly full; the user was told", user = %login, used, quota);
            } else if percent < WARN_AGAIN_BELOW && warned {
                self.with_db(|db| db.meta_delete(&key))?;
            }
        }
        Ok(())
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

/// The message that tells `login` their mailbox is nearly full.
fn quota_warning(config: &Config, login: &str, used: u64, quota: u64, now: i64) -> String {
    let domain = &config.network.domain;
    let mb = |b: u64| format!("{:.1} MB", b as f64 / f64::from(1 << 20));
    let date = officebox_store::date::rfc5322_date(
        std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(now).unwrap_or(0)),
    );
    format!(
        "From: Mail server <postmaster@{domain}>\r\n\
         To: {login}@{domain}\r\n\
         Subject: Your mailbox is nearly full\r\n\
         Date: {date}\r\n\
         Message-ID: <quota.{now}.{login}@{domain}>\r\n\
         Auto-Submitted: auto-generated\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         Your mailbox holds {} of the {} it may keep.\r\n\
         \r\n\
         When it is full, new mail for you waits at the sender's server, and after some\r\n\
         days goes back to the sender. Delete or archive mail you no longer need (the\r\n\
         Trash and Sent folders count too), or ask the office's administrator for more\r\n\
         room.\r\n",
        mb(used),
        mb(quota)
    )
}

pub use officebox_store::mailbox_path;
