//! The fax log: one row per fax call the box answered, with its T.30 outcome, for
//! `officebox fax log` and the Phones page. Rows older than the call log's days go with
//! the call log's own clean-up.

use rusqlite::params;

use crate::{Db, StoreError};

/// One fax call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaxEntry {
    /// Unix seconds when it ended.
    pub at: i64,
    /// The caller's number as the call said, and the machine's station identity.
    pub caller: String,
    pub station: String,
    /// The fax number called, and whose mailbox got it.
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
                "INSERT INTO fax_log (at, caller, station, number, login, pages, complete, code, reason, seconds)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    e.at, e.caller, e.station, e.number, e.login, e.pages, e.complete, e.code,
                    e.reason, e.seconds
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
                "SELECT at, caller, station, number, login, pages, complete, code, reason, seconds
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
}
