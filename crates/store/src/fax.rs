//! The fax log: one row per fax call the box answered or made, with its T.30 outcome,
//! for `officebox fax log` and the Phones page. Rows older than the call log's days go
//! with the call log's own clean-up.
//!
//! Also the faxes waiting to be sent (`fax_out`): one row per fax a user mailed to
//! `<number>@fax.<domain>`, its pages already in a file, until it is sent or given up.

use std::path::PathBuf;

use rusqlite::params;

use crate::{Db, StoreError};

/// One fax call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaxEntry {
    /// Unix seconds when it ended.
    pub at: i64,
    /// Sent by the box (`true`), or received.
    pub outgoing: bool,
    /// The caller's number as the call said (sent: the sender's address), and the far
    /// machine's station identity.
    pub caller: String,
    pub station: String,
    /// The fax number called, and whose mailbox got it (sent: who sent it).
    pub number: String,
    pub login: String,
    pub pages: u32,
    pub complete: u32,
    /// The T.30 completion code (`None`: the call ended first) and its words.
    pub code: Option<i32>,
    pub reason: String,
    pub seconds: u32,
}

impl Db {
    /// Adds a fax call to the log.
    pub fn add_fax(&self, e: &FaxEntry) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO fax_log (at, caller, station, number, login, pages, complete, code, reason, seconds, outgoing)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    e.at, e.caller, e.station, e.number, e.login, e.pages, e.complete, e.code,
                    e.reason, e.seconds, e.outgoing
                ],
            )
            .map(|_| ())
            .map_err(|err| self.err("log a fax", err))
    }

    /// The newest `limit` fax calls, newest first.
    pub fn faxes(&self, limit: u32) -> Result<Vec<FaxEntry>, StoreError> {
        let read_err = |e| self.err("read the fax log", e);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT at, caller, station, number, login, pages, complete, code, reason, seconds, outgoing
                 FROM fax_log ORDER BY at DESC, rowid DESC LIMIT ?1",
            )
            .map_err(read_err)?;
        let rows = stmt
            .query_map([limit], |row| {
                Ok(FaxEntry {
                    at: row.get(0)?,
                    caller: row.get(1)?,
                    station: row.get(2)?,
                    number: row.get(3)?,
                    login: row.get(4)?,
                    pages: row.get(5)?,
                    complete: row.get(6)?,
                    code: row.get(7)?,
                    reason: row.get(8)?,
                    seconds: row.get(9)?,
                    outgoing: row.get(10)?,
                })
            })
            .map_err(read_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(read_err)
    }

    /// Forgets fax calls that ended before `before` (unix seconds).
    pub fn prune_faxes(&self, before: i64) -> Result<usize, StoreError> {
        self.conn
            .execute("DELETE FROM fax_log WHERE at < ?1", [before])
            .map_err(|e| self.err("prune the fax log", e))
    }

    /// Queues a fax to send, due now; its number in the queue.
    pub fn queue_fax(&self, fax: &NewFaxOut<'_>, now: i64) -> Result<i64, StoreError> {
        self.conn
            .execute(
                "INSERT INTO fax_out (login, sender, number, file, preview, pages, subject, created, next_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
                params![
                    fax.login,
                    fax.sender,
                    fax.number,
                    fax.file.to_string_lossy(),
                    fax.preview.map(|p| p.to_string_lossy().into_owned()),
                    fax.pages,
                    fax.subject,
                    now
                ],
            )
            .map_err(|e| self.err("queue a fax", e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// The faxes to send at `now` or before, the longest waiting first; all of them
    /// with `now` = `i64::MAX`.
    pub fn due_faxes(&self, now: i64) -> Result<Vec<FaxOut>, StoreError> {
        let read_err = |e| self.err("read the fax queue", e);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, login, sender, number, file, preview, pages, subject, created,
                        attempts, next_at, last_result
                 FROM fax_out WHERE next_at <= ?1 ORDER BY next_at, id",
            )
            .map_err(read_err)?;
        let rows = stmt
            .query_map([now], |row| {
                Ok(FaxOut {
                    id: row.get(0)?,
                    login: row.get(1)?,
                    sender: row.get(2)?,
                    number: row.get(3)?,
                    file: PathBuf::from(row.get::<_, String>(4)?),
                    preview: row.get::<_, Option<String>>(5)?.map(PathBuf::from),
                    pages: row.get(6)?,
                    subject: row.get(7)?,
                    created: row.get(8)?,
                    attempts: row.get(9)?,
                    next_at: row.get(10)?,
                    last_result: row.get(11)?,
                })
            })
            .map_err(read_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(read_err)
    }

    /// One more attempt at fax `id` failed with `result`; the next is due at `next_at`.
    pub fn fax_attempted(&self, id: i64, next_at: i64, result: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE fax_out SET attempts = attempts + 1, next_at = ?2, last_result = ?3
                 WHERE id = ?1",
                params![id, next_at, result],
            )
            .map(|_| ())
            .map_err(|e| self.err("note a fax attempt", e))
    }

    /// Fax `id` is sent or given up (its report mailed): out of the queue.
    pub fn fax_finished(&self, id: i64) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM fax_out WHERE id = ?1", [id])
            .map(|_| ())
            .map_err(|e| self.err("finish a fax", e))
    }
}

/// A fax to queue: who sent it, where to, and its pages (a TIFF, ready to send).
#[derive(Debug, Clone, Copy)]
pub struct NewFaxOut<'a> {
    pub login: &'a str,
    /// The address the report goes to.
    pub sender: &'a str,
    pub number: &'a str,
    pub file: &'a std::path::Path,
    /// The first page, small (a PNG), for the report.
    pub preview: Option<&'a std::path::Path>,
    pub pages: u32,
    /// The mail's subject, to name the fax in its report.
    pub subject: &'a str,
}

/// A fax waiting to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaxOut {
    pub id: i64,
    pub login: String,
    pub sender: String,
    pub number: String,
    pub file: PathBuf,
    pub preview: Option<PathBuf>,
    pub pages: u32,
    pub subject: String,
    /// Unix seconds when it was queued, and when it is due next.
    pub created: i64,
    pub attempts: u32,
    pub next_at: i64,
    /// What the last attempt came to (empty before the first).
    pub last_result: String,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fax_calls_are_logged_newest_first_and_pruned() {
        let db = Db::open_in_memory().unwrap();
        let entry = |at: i64, code: Option<i32>| FaxEntry {
            at,
            outgoing: at > 150,
            caller: "101".into(),
            station: "+1 555 0100".into(),
            number: "180".into(),
            login: "alice".into(),
            pages: 3,
            complete: if code == Some(0) { 3 } else { 1 },
            code,
            reason: if code == Some(0) {
                "OK".into()
            } else {
                "the call ended before the fax did".into()
            },
            seconds: 40,
        };
        db.add_fax(&entry(100, Some(0))).unwrap();
        db.add_fax(&entry(200, None)).unwrap();
        let log = db.faxes(10).unwrap();
        assert_eq!(log, vec![entry(200, None), entry(100, Some(0))]);
        assert_eq!(db.faxes(1).unwrap().len(), 1);
        assert_eq!(db.prune_faxes(150).unwrap(), 1);
        assert_eq!(db.faxes(10).unwrap(), vec![entry(200, None)]);
    }

    #[test]
    fn faxes_to_send_wait_their_turn_and_leave_when_finished() {
        let db = Db::open_in_memory().unwrap();
        let file = std::path::Path::new("/var/lib/officebox/fax/out/1.tif");
        let new = |number| NewFaxOut {
            login: "alice",
            sender: "alice@office.test",
            number,
            file,
            preview: None,
            pages: 2,
            subject: "Offer",
        };
        let first = db.queue_fax(&new("5551234"), 100).unwrap();
        let second = db.queue_fax(&new("5559876"), 110).unwrap();
        assert_eq!(db.due_faxes(99).unwrap(), vec![]);
        let due = db.due_faxes(120).unwrap();
        assert_eq!(due.len(), 2);
        assert_eq!((due[0].id, due[0].number.as_str()), (first, "5551234"));
        assert_eq!((due[0].file.as_path(), due[0].pages), (file, 2));
        db.fax_attempted(first, 400, "busy").unwrap();
        let due = db.due_faxes(120).unwrap();
        assert_eq!(due.iter().map(|f| f.id).collect::<Vec<_>>(), vec![second]);
        let later = db.due_faxes(i64::MAX).unwrap();
        let retried = later.iter().find(|f| f.id == first).unwrap();
        assert_eq!((retried.attempts, retried.next_at), (1, 400));
        assert_eq!(retried.last_result, "busy");
        db.fax_finished(first).unwrap();
        db.fax_finished(second).unwrap();
        assert_eq!(db.due_faxes(i64::MAX).unwrap(), vec![]);
    }
}
