//! The outbound mail queue: one row per message (its file is written and fsynced before
//! the row), one per recipient with its own state, attempts and schedule.
//!
//! A recipient is `pending` until the far side takes it (`delivered`) or refuses it for
//! good, or the queue gives up (`failed`). A finished recipient whose sender asked to be
//! told (RFC 3461 NOTIFY) stays until the notice is on its way (`reported`); a message
//! whose recipients are all finished and reported is removed, file first.

use std::path::{Path, PathBuf};

use rusqlite::{OptionalExtension, params};

use crate::db::Db;
use crate::error::StoreError;

/// RFC 3461 NOTIFY bits, as a recipient asked for them (`None`: not given).
pub mod notify {
    pub const SUCCESS: u8 = 1;
    pub const FAILURE: u8 = 2;
    pub const DELAY: u8 = 4;
    pub const NEVER: u8 = 8;
}

static QUEUE_FILES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Writes `message` as a new file in `queue_dir` (made if missing; the file fsynced and
/// its name unique in this process), for [`Db::enqueue`] to queue. Everything that
/// queues mail (SMTP, bounces, forwarded voicemail and faxes) writes its file here.
pub fn write_queue_file(queue_dir: &Path, message: &[u8], now: i64) -> Result<PathBuf, StoreError> {
    std::fs::create_dir_all(queue_dir).map_err(|e| StoreError::Io {
        op: "create directory",
        path: queue_dir.to_path_buf(),
        source: e,
    })?;
    let n = QUEUE_FILES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = queue_dir.join(format!("{now}.{}.{n}.eml", std::process::id()));
    crate::write_atomic(&path, message, 0o600)?;
    Ok(path)
}

/// One recipient of a message being queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecipient {
    pub address: String,
    /// RFC 3461 NOTIFY bits from [`notify`]; `None` when the sender gave none.
    pub notify: Option<u8>,
    /// RFC 3461 ORCPT, as given (`rfc822;user@example.com`).
    pub orcpt: Option<String>,
}

impl NewRecipient {
    /// A recipient without DSN parameters.
    pub fn plain(address: impl Into<String>) -> NewRecipient {
        NewRecipient {
            address: address.into(),
            notify: None,
            orcpt: None,
        }
    }
}

/// What RET (RFC 3461) asked a bounce to carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    Full,
    Headers,
}

/// A message being put on the queue; its file is already on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage<'a> {
    /// The envelope sender; empty for the null sender `<>` (bounces).
    pub sender: &'a str,
    pub path: &'a Path,
    pub size: u64,
    pub envid: Option<&'a str>,
    pub ret: Option<Ret>,
    pub recipients: &'a [NewRecipient],
}

/// A message on the queue, for `officebox mail queue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub id: i64,
    pub sender: String,
    /// The message file (written and fsynced before the row).
    pub path: PathBuf,
    pub size: u64,
    pub received_at: i64,
    pub recipients: Vec<QueuedRecipient>,
}

/// One recipient of a queued message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedRecipient {
    pub address: String,
    pub state: RecipientState,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
}

/// Where a recipient is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientState {
    Pending,
    Delivered,
    Failed,
}

impl RecipientState {
    fn parse(s: &str) -> RecipientState {
        match s {
            "delivered" => RecipientState::Delivered,
            "failed" => RecipientState::Failed,
            _ => RecipientState::Pending,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RecipientState::Pending => "pending",
            RecipientState::Delivered => "delivered",
            RecipientState::Failed => "failed",
        }
    }
}

/// A recipient the queue should work on, with what is needed to send to it or report
/// on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub message_id: i64,
    pub sender: String,
    pub path: PathBuf,
    pub size: u64,
    pub received_at: i64,
    pub envid: Option<String>,
    pub ret: Option<Ret>,
    pub recipient: String,
    pub notify: Option<u8>,
    pub orcpt: Option<String>,
    pub state: RecipientState,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// The server that took the message (for success notices).
    pub remote: Option<String>,
}

/// The result of one delivery attempt for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The far side (named) took it. `dsn_passed_on`: it speaks DSN and was given the
    /// sender's NOTIFY, so success is reported from there, not by us (RFC 3461 5.2.2).
    Delivered { remote: String, dsn_passed_on: bool },
    /// Try again at `at` (unix seconds).
    Retry { at: i64, error: String },
    /// Refused for good, or the queue gave up.
    Failed { error: String },
}

/// Which notice a report is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// Still trying (RFC 3464 action `delayed`).
    Delay,
    /// Finished: delivered or failed.
    Final,
}

const JOB_COLUMNS: &str = "m.id, m.sender, m.path, m.size, m.received_at, m.envid, m.ret,
    r.recipient, r.notify, r.orcpt, r.state, r.attempts, r.last_error, r.remote";

fn job(row: &rusqlite::Row<'_>) -> rusqlite::Result<Job> {
    Ok(Job {
        message_id: row.get(0)?,
        sender: row.get(1)?,
        path: PathBuf::from(row.get::<_, String>(2)?),
        size: u64::try_from(row.get::<_, i64>(3)?).unwrap_or(0),
        received_at: row.get(4)?,
        envid: row.get(5)?,
        ret: match row.get::<_, Option<String>>(6)?.as_deref() {
            Some("full") => Some(Ret::Full),
            Some("hdrs") => Some(Ret::Headers),
            _ => None,
        },
        recipient: row.get(7)?,
        notify: row
            .get::<_, Option<i64>>(8)?
            .and_then(|n| u8::try_from(n).ok()),
        orcpt: row.get(9)?,
        state: RecipientState::parse(&row.get::<_, String>(10)?),
        attempts: row.get(11)?,
        last_error: row.get(12)?,
        remote: row.get(13)?,
    })
}

/// Whether a recipient's sender wants a notice of kind `bit` (RFC 3461 section 4.1:
/// without NOTIFY, failures and delays are reported, successes are not).
pub fn wants(notify: Option<u8>, bit: u8) -> bool {
    match notify {
        None => bit != notify::SUCCESS,
        Some(n) => n & notify::NEVER == 0 && n & bit != 0,
    }
}

impl Db {
    /// Puts a message on the outbound queue: one row for the message and one per
    /// recipient, in one transaction. Durable when this returns.
    pub fn enqueue(&self, message: &NewMessage<'_>, now: i64) -> Result<i64, StoreError> {
        let write_err = |e| self.err("queue a message", e);
        let tx = self.conn.unchecked_transaction().map_err(write_err)?;
        let id = insert_message(&tx, message, now).map_err(write_err)?;
        tx.commit().map_err(write_err)?;
        Ok(id)
    }

    /// Up to `limit` pending recipients due at `now`, the longest-waiting first.
    pub fn due(&self, now: i64, limit: usize) -> Result<Vec<Job>, StoreError> {
        self.jobs(
            &format!(
                "SELECT {JOB_COLUMNS} FROM queue_recipients r JOIN queue_messages m ON m.id = r.message_id
                 WHERE r.state = 'pending' AND r.next_attempt_at <= ?1
                 ORDER BY r.next_attempt_at, m.id LIMIT ?2"
            ),
            params![now, i64::try_from(limit).unwrap_or(i64::MAX)],
        )
    }

    /// When the next pending recipient is due, if any.
    pub fn next_due(&self) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row(
                "SELECT MIN(next_attempt_at) FROM queue_recipients WHERE state = 'pending'",
                [],
                |row| row.get(0),
            )
            .optional()
            .map(Option::flatten)
            .map_err(|e| self.err("read the queue", e))
    }

    /// Records what an attempt came to, for each recipient of one message.
    pub fn record(
        &self,
        message_id: i64,
        outcomes: &[(String, Outcome)],
        now: i64,
    ) -> Result<(), StoreError> {
        let write_err = |e| self.err("record a delivery attempt", e);
        let tx = self.conn.unchecked_transaction().map_err(write_err)?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "UPDATE queue_recipients SET state = ?3, attempts = attempts + 1,
                         next_attempt_at = ?4, last_error = ?5, remote = ?6,
                         reported = CASE
                             WHEN ?3 = 'delivered' AND NOT ?7 AND notify IS NOT NULL AND notify & 9 = 1 THEN 0
                             WHEN ?3 = 'failed' AND (notify IS NULL OR notify & 10 = 2) THEN 0
                             ELSE 1 END
                     WHERE message_id = ?1 AND recipient = ?2 AND state = 'pending'",
                )
                .map_err(write_err)?;
            for (recipient, outcome) in outcomes {
                let (state, at, error, remote, passed_on) = match outcome {
                    Outcome::Delivered {
                        remote,
                        dsn_passed_on,
                    } => ("delivered", now, None, Some(remote), *dsn_passed_on),
                    Outcome::Retry { at, error } => ("pending", *at, Some(error), None, false),
                    Outcome::Failed { error } => ("failed", now, Some(error), None, false),
                };
                stmt.execute(params![
                    message_id, recipient, state, at, error, remote, passed_on
                ])
                .map_err(write_err)?;
            }
        }
        tx.commit().map_err(write_err)
    }

    /// Recipients owed a notice at `now`: finished ones whose sender asked to hear
    /// (see [`wants`]), and pending ones older than `delay_after` seconds not yet
    /// reported as delayed. Grouped by message.
    pub fn notices_due(&self, now: i64, delay_after: i64) -> Result<Vec<Job>, StoreError> {
        self.jobs(
            &format!(
                "SELECT {JOB_COLUMNS} FROM queue_recipients r JOIN queue_messages m ON m.id = r.message_id
                 WHERE (r.state <> 'pending' AND r.reported = 0)
                    OR (r.state = 'pending' AND r.delay_notified = 0 AND m.received_at <= ?1
                        AND (r.notify IS NULL OR r.notify & 12 = 4))
                 ORDER BY m.id, r.recipient"
            ),
            params![now - delay_after],
        )
    }

    /// Marks recipients of one message as reported and, in the same transaction,
    /// queues the notice itself when it goes elsewhere (`notice`), so a crash neither
    /// loses nor repeats it.
    pub fn reported(
        &self,
        message_id: i64,
        recipients: &[String],
        kind: Notice,
        notice: Option<&NewMessage<'_>>,
        now: i64,
    ) -> Result<(), StoreError> {
        let write_err = |e| self.err("record a delivery notice", e);
        let tx = self.conn.unchecked_transaction().map_err(write_err)?;
        {
            let sql = match kind {
                Notice::Delay => {
                    "UPDATE queue_recipients SET delay_notified = 1 WHERE message_id = ?1 AND recipient = ?2"
                }
                Notice::Final => {
                    "UPDATE queue_recipients SET reported = 1 WHERE message_id = ?1 AND recipient = ?2"
                }
            };
            let mut stmt = tx.prepare_cached(sql).map_err(write_err)?;
            for r in recipients {
                stmt.execute(params![message_id, r]).map_err(write_err)?;
            }
        }
        if let Some(n) = notice {
            insert_message(&tx, n, now).map_err(write_err)?;
        }
        tx.commit().map_err(write_err)
    }

    /// Messages with nothing left to do: every recipient finished and reported.
    pub fn finished(&self) -> Result<Vec<(i64, PathBuf)>, StoreError> {
        let read_err = |e| self.err("read the queue", e);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, path FROM queue_messages m WHERE NOT EXISTS (
                     SELECT 1 FROM queue_recipients r WHERE r.message_id = m.id
                     AND (r.state = 'pending' OR r.reported = 0))",
            )
            .map_err(read_err)?;
        stmt.query_map([], |row| {
            Ok((row.get(0)?, PathBuf::from(row.get::<_, String>(1)?)))
        })
        .map_err(read_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_err)
    }

    /// Removes a message and its recipients (its file is removed first, by the caller).
    pub fn remove_message(&self, id: i64) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM queue_messages WHERE id = ?1", [id])
            .map(drop)
            .map_err(|e| self.err("remove a finished message", e))
    }

    /// Every message file the queue still refers to.
    pub fn queue_paths(&self) -> Result<Vec<PathBuf>, StoreError> {
        let read_err = |e| self.err("read the queue", e);
        let mut stmt = self
            .conn
            .prepare("SELECT path FROM queue_messages")
            .map_err(read_err)?;
        stmt.query_map([], |row| Ok(PathBuf::from(row.get::<_, String>(0)?)))
            .map_err(read_err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(read_err)
    }

    /// Makes every pending recipient due now (`officebox mail flush`); returns how many.
    pub fn flush_queue(&self, now: i64) -> Result<usize, StoreError> {
        self.conn
            .execute(
                "UPDATE queue_recipients SET next_attempt_at = ?1 WHERE state = 'pending'",
                [now],
            )
            .map_err(|e| self.err("flush the queue", e))
    }

    /// Deletes a queued message as an admin asks (`officebox mail`, the Mail page): its
    /// rows, then its file. Whatever its recipients' states, nothing more is sent or
    /// reported for it. `Ok(false)` when there is no such message. A crash between the
    /// two leaves only the file, which the mail service's sweep of orphans removes.
    pub fn delete_queued(&self, id: i64) -> Result<bool, StoreError> {
        let path: Option<String> = self
            .conn
            .query_row(
                "SELECT path FROM queue_messages WHERE id = ?1",
                [id],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.err("read the queue", e))?;
        let Some(path) = path else {
            return Ok(false);
        };
        self.conn
            .execute("DELETE FROM queue_messages WHERE id = ?1", [id])
            .map_err(|e| self.err("delete a queued message", e))?;
        // The paths are as the mail service wrote them, from officebox's own working
        // directory. A file already gone is no error.
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
            Err(source) => Err(StoreError::Io {
                op: "delete a queued message's file",
                path: PathBuf::from(path),
                source,
            }),
        }
    }

    /// The queue, oldest first.
    pub fn queue(&self) -> Result<Vec<Queued>, StoreError> {
        let read_err = |e| self.err("read the queue", e);
        let mut stmt = self
            .conn
            .prepare("SELECT id, sender, path, size, received_at FROM queue_messages ORDER BY id")
            .map_err(read_err)?;
        let messages = stmt
            .query_map([], |row| {
                Ok(Queued {
                    id: row.get(0)?,
                    sender: row.get(1)?,
                    path: PathBuf::from(row.get::<_, String>(2)?),
                    size: u64::try_from(row.get::<_, i64>(3)?).unwrap_or(0),
                    received_at: row.get(4)?,
                    recipients: Vec::new(),
                })
            })
            .map_err(read_err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(read_err)?;
        let mut rstmt = self
            .conn
            .prepare(
                "SELECT recipient, state, attempts, next_attempt_at, last_error
                 FROM queue_recipients WHERE message_id = ?1 ORDER BY recipient",
            )
            .map_err(read_err)?;
        let mut out = Vec::with_capacity(messages.len());
        for mut m in messages {
            m.recipients = rstmt
                .query_map([m.id], |row| {
                    Ok(QueuedRecipient {
                        address: row.get(0)?,
                        state: RecipientState::parse(&row.get::<_, String>(1)?),
                        attempts: row.get(2)?,
                        next_attempt_at: row.get(3)?,
                        last_error: row.get(4)?,
                    })
                })
                .map_err(read_err)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(read_err)?;
            out.push(m);
        }
        Ok(out)
    }

    fn jobs<P: rusqlite::Params>(&self, sql: &str, params: P) -> Result<Vec<Job>, StoreError> {
        let read_err = |e| self.err("read the queue", e);
        let mut stmt = self.conn.prepare_cached(sql).map_err(read_err)?;
        stmt.query_map(params, job)
            .map_err(read_err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(read_err)
    }
}

fn insert_message(
    tx: &rusqlite::Transaction<'_>,
    m: &NewMessage<'_>,
    now: i64,
) -> rusqlite::Result<i64> {
    tx.execute(
        "INSERT INTO queue_messages (sender, path, size, received_at, envid, ret)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            m.sender,
            m.path.to_string_lossy(),
            i64::try_from(m.size).unwrap_or(i64::MAX),
            now,
            m.envid,
            m.ret.map(|r| match r {
                Ret::Full => "full",
                Ret::Headers => "hdrs",
            }),
        ],
    )?;
    let id = tx.last_insert_rowid();
    let mut stmt = tx.prepare_cached(
        "INSERT OR IGNORE INTO queue_recipients
             (message_id, recipient, state, next_attempt_at, notify, orcpt)
         VALUES (?1, ?2, 'pending', ?3, ?4, ?5)",
    )?;
    for r in m.recipients {
        stmt.execute(params![id, r.address, now, r.notify, r.orcpt])?;
    }
    Ok(id)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn queue_one(db: &Db, sender: &str, recipients: &[NewRecipient]) -> i64 {
        db.enqueue(
            &NewMessage {
                sender,
                path: Path::new("/q/1.eml"),
                size: 10,
                envid: Some("E1"),
                ret: Some(Ret::Headers),
                recipients,
            },
            1000,
        )
        .unwrap()
    }

    #[test]
    fn a_recipient_goes_pending_to_delivered_and_the_message_is_then_finished() {
        let db = Db::open_in_memory().unwrap();
        let id = queue_one(
            &db,
            "a@x",
            &[NewRecipient::plain("b@y"), NewRecipient::plain("c@y")],
        );
        let due = db.due(1000, 10).unwrap();
        assert_eq!(due.len(), 2);
        assert_eq!(due[0].envid.as_deref(), Some("E1"));
        assert_eq!(due[0].ret, Some(Ret::Headers));
        db.record(
            id,
            &[
                (
                    "b@y".into(),
                    Outcome::Delivered {
                        remote: "mx.y".into(),
                        dsn_passed_on: false,
                    },
                ),
                (
                    "c@y".into(),
                    Outcome::Retry {
                        at: 1300,
                        error: "421 busy".into(),
                    },
                ),
            ],
            1001,
        )
        .unwrap();
        assert!(db.due(1001, 10).unwrap().is_empty());
        assert_eq!(db.next_due().unwrap(), Some(1300));
        assert!(db.finished().unwrap().is_empty());
        assert_eq!(db.flush_queue(1002).unwrap(), 1);
        let due = db.due(1002, 10).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].attempts, 1);
        db.record(
            id,
            &[(
                "c@y".into(),
                Outcome::Delivered {
                    remote: "mx.y".into(),
                    dsn_passed_on: false,
                },
            )],
            1003,
        )
        .unwrap();
        // Nobody asked for success notices: nothing to report, the message is done.
        assert!(db.notices_due(1003, 3600).unwrap().is_empty());
        assert_eq!(
            db.finished().unwrap(),
            vec![(id, PathBuf::from("/q/1.eml"))]
        );
        db.remove_message(id).unwrap();
        assert!(db.queue().unwrap().is_empty());
    }

    #[test]
    fn failures_are_reported_unless_never_and_the_bounce_is_queued_with_the_mark() {
        let db = Db::open_in_memory().unwrap();
        let never = NewRecipient {
            address: "n@y".into(),
            notify: Some(notify::NEVER),
            orcpt: None,
        };
        let id = queue_one(&db, "a@x", &[NewRecipient::plain("b@y"), never]);
        let failed = |r: &str| {
            (
                r.to_string(),
                Outcome::Failed {
                    error: "550 no".into(),
                },
            )
        };
        db.record(id, &[failed("b@y"), failed("n@y")], 1001)
            .unwrap();
        let due = db.notices_due(1001, 3600).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].recipient, "b@y");
        assert_eq!(due[0].state, RecipientState::Failed);
        let bounce = NewMessage {
            sender: "",
            path: Path::new("/q/2.eml"),
            size: 5,
            envid: None,
            ret: None,
            recipients: &[NewRecipient::plain("a@x")],
        };
        db.reported(id, &["b@y".into()], Notice::Final, Some(&bounce), 1002)
            .unwrap();
        assert!(db.notices_due(1002, 3600).unwrap().is_empty());
        assert_eq!(db.finished().unwrap().len(), 1);
        let q = db.queue().unwrap();
        assert_eq!(q.len(), 2);
        assert_eq!(q[1].sender, "");
    }

    #[test]
    fn delay_notices_once_after_the_threshold_and_only_if_wanted() {
        let db = Db::open_in_memory().unwrap();
        let success_only = NewRecipient {
            address: "s@y".into(),
            notify: Some(notify::SUCCESS),
            orcpt: None,
        };
        let id = queue_one(&db, "a@x", &[NewRecipient::plain("b@y"), success_only]);
        assert!(db.notices_due(2000, 3600).unwrap().is_empty());
        let due = db.notices_due(1000 + 3600, 3600).unwrap();
        assert_eq!(due.len(), 1, "{due:?}");
        db.reported(id, &["b@y".into()], Notice::Delay, None, 4600)
            .unwrap();
        assert!(db.notices_due(9000, 3600).unwrap().is_empty());
        // A success notice is owed to the recipient that asked.
        db.record(
            id,
            &[(
                "s@y".into(),
                Outcome::Delivered {
                    remote: "mx".into(),
                    dsn_passed_on: false,
                },
            )],
            9001,
        )
        .unwrap();
        let due = db.notices_due(9001, 3600).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].state, RecipientState::Delivered);
        assert_eq!(due[0].remote.as_deref(), Some("mx"));
    }

    #[test]
    fn an_admin_deletes_a_queued_message_with_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("1.eml");
        std::fs::write(&file, "Subject: x\r\n\r\nx\r\n").unwrap();
        let db = Db::open_in_memory().unwrap();
        let id = db
            .enqueue(
                &NewMessage {
                    sender: "a@x",
                    path: &file,
                    size: 10,
                    envid: None,
                    ret: None,
                    recipients: &[NewRecipient::plain("b@y")],
                },
                1000,
            )
            .unwrap();
        assert!(db.delete_queued(id).unwrap());
        assert!(db.queue().unwrap().is_empty());
        assert!(
            db.due(2000, 10).unwrap().is_empty(),
            "its recipients went with it"
        );
        assert!(!file.exists());
        assert!(
            !db.delete_queued(id).unwrap(),
            "a second delete finds nothing"
        );
    }

    #[test]
    fn wants_follows_rfc_3461_defaults() {
        assert!(wants(None, notify::FAILURE));
        assert!(wants(None, notify::DELAY));
        assert!(!wants(None, notify::SUCCESS));
        assert!(!wants(Some(notify::NEVER), notify::FAILURE));
        assert!(wants(
            Some(notify::SUCCESS | notify::FAILURE),
            notify::SUCCESS
        ));
        assert!(!wants(Some(notify::FAILURE), notify::DELAY));
    }
}
