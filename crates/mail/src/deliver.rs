//! Storing an accepted message: a copy in each local mailbox (Maildir, fsynced) and, for
//! addresses elsewhere, the message file plus its recipients on the outbound queue (file
//! fsynced first, then the queue rows in one transaction). All of it is on disk before
//! the client hears `250`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use officebox_store::{Db, Maildir, StoreError};

/// Where one message goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    pub mailboxes: BTreeSet<String>,
    pub external: BTreeSet<String>,
}

/// The mail store: mailboxes and the queue under `data_dir`.
#[derive(Debug)]
pub struct Store {
    data_dir: PathBuf,
    db: Mutex<Db>,
}

static QUEUE_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Store {
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        Ok(Store {
            data_dir: data_dir.to_path_buf(),
            db: Mutex::new(Db::open(&data_dir.join("state.db"))?),
        })
    }

    /// The Maildir of user `login`.
    pub fn mailbox(&self, login: &str) -> PathBuf {
        mailbox_path(&self.data_dir, login)
    }

    /// Stores `message` for `delivery`; returns an identifier for the `250` reply.
    pub fn deliver(
        &self,
        from: &str,
        message: &[u8],
        delivery: &Delivery,
        now: i64,
    ) -> Result<String, StoreError> {
        let mut id = None;
        for login in &delivery.mailboxes {
            let name = Maildir::open(&self.mailbox(login))?.deliver(message)?;
            id.get_or_insert_with(|| name.to_string());
        }
        if !delivery.external.is_empty() {
            let dir = self.data_dir.join("queue");
            std::fs::create_dir_all(&dir).map_err(|e| StoreError::Io {
                op: "create directory",
                path: dir.clone(),
                source: e,
            })?;
            let n = QUEUE_COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!("{now}.{}.{n}.eml", std::process::id()));
            officebox_store::write_atomic(&path, message, 0o600)?;
            let recipients: Vec<String> = delivery.external.iter().cloned().collect();
            let db = self.db.lock().unwrap_or_else(PoisonError::into_inner);
            let qid = db.enqueue(from, &path, message.len() as u64, &recipients, now)?;
            id.get_or_insert_with(|| format!("queued as {qid}"));
        }
        Ok(id.unwrap_or_default())
    }
}

/// `data_dir/mail/<login>`: one Maildir per user, shared with POP3 and voicemail.
pub fn mailbox_path(data_dir: &Path, login: &str) -> PathBuf {
    data_dir.join("mail").join(login)
}
