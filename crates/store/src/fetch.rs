//! What the POP3 fetcher remembers: the UIDs it has already taken from each external
//! mailbox (so a message kept on the server is fetched once), and each account's last
//! poll, for `officebox mail fetch status`.

use std::collections::HashSet;

use rusqlite::{OptionalExtension, params};

use crate::db::Db;
use crate::error::StoreError;

/// One account's polling record.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FetchStatus {
    pub account: String,
    pub last_attempt_at: Option<i64>,
    pub last_success_at: Option<i64>,
    pub last_error: Option<String>,
    /// Failures in a row since the last success.
    pub failures: i64,
    /// Messages fetched in all.
    pub fetched: i64,
    pub next_poll_at: i64,
}

impl Db {
    /// The UIDs already taken from `account`.
    pub fn fetched_uids(&self, account: &str) -> Result<HashSet<String>, StoreError> {
        let read_err = |e| self.err("read fetched UIDs", e);
        let mut stmt = self
            .conn
            .prepare_cached("SELECT uid FROM fetch_seen WHERE account = ?1")
            .map_err(read_err)?;
        stmt.query_map([account], |row| row.get(0))
            .map_err(read_err)?
            .collect::<Result<HashSet<_>, _>>()
            .map_err(read_err)
    }

    /// Records `uids` as taken from `account`. Durable when this returns.
    pub fn mark_fetched(&self, account: &str, uids: &[&str], now: i64) -> Result<(), StoreError> {
        let write_err = |e| self.err("record fetched UIDs", e);
        let tx = self.conn.unchecked_transaction().map_err(write_err)?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO fetch_seen (account, uid, fetched_at) VALUES (?1, ?2, ?3)",
                )
                .map_err(write_err)?;
            for uid in uids {
                stmt.execute(params![account, uid, now])
                    .map_err(write_err)?;
            }
        }
        tx.commit().map_err(write_err)
    }

    /// Forgets the UIDs of `account` that are no longer on the server (`present`), so
    /// the table does not grow without bound.
    pub fn forget_fetched_except(
        &self,
        account: &str,
        present: &HashSet<String>,
    ) -> Result<usize, StoreError> {
        let gone: Vec<String> = self
            .fetched_uids(account)?
            .into_iter()
            .filter(|u| !present.contains(u))
            .collect();
        let write_err = |e| self.err("forget fetched UIDs", e);
        let tx = self.conn.unchecked_transaction().map_err(write_err)?;
        {
            let mut stmt = tx
                .prepare_cached("DELETE FROM fetch_seen WHERE account = ?1 AND uid = ?2")
                .map_err(write_err)?;
            for uid in &gone {
                stmt.execute(params![account, uid]).map_err(write_err)?;
            }
        }
        tx.commit().map_err(write_err)?;
        Ok(gone.len())
    }

    /// The polling record of `account` (a default one when it was never polled).
    pub fn fetch_status(&self, account: &str) -> Result<FetchStatus, StoreError> {
        self.conn
            .query_row(
                "SELECT account, last_attempt_at, last_success_at, last_error, failures, fetched, next_poll_at
                 FROM fetch_status WHERE account = ?1",
                [account],
                status_row,
            )
            .optional()
            .map(|s| {
                s.unwrap_or_else(|| FetchStatus {
                    account: account.to_string(),
                    ..FetchStatus::default()
                })
            })
            .map_err(|e| self.err("read fetch status", e))
    }

    /// Every account's polling record, by account.
    pub fn fetch_statuses(&self) -> Result<Vec<FetchStatus>, StoreError> {
        let read_err = |e| self.err("read fetch status", e);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT account, last_attempt_at, last_success_at, last_error, failures, fetched, next_poll_at
                 FROM fetch_status ORDER BY account",
            )
            .map_err(read_err)?;
        stmt.query_map([], status_row)
            .map_err(read_err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(read_err)
    }

    /// Stores `status` (replacing the account's previous record).
    pub fn set_fetch_status(&self, status: &FetchStatus) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO fetch_status (account, last_attempt_at, last_success_at, last_error, failures, fetched, next_poll_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (account) DO UPDATE SET last_attempt_at = excluded.last_attempt_at,
                     last_success_at = excluded.last_success_at, last_error = excluded.last_error,
                     failures = excluded.failures, fetched = excluded.fetched,
                     next_poll_at = excluded.next_poll_at",
                params![
                    status.account,
                    status.last_attempt_at,
                    status.last_success_at,
                    status.last_error,
                    status.failures,
                    status.fetched,
                    status.next_poll_at
                ],
            )
            .map(drop)
            .map_err(|e| self.err("write fetch status", e))
    }

    /// Makes every account due now (`officebox mail fetch now`); returns how many.
    pub fn fetch_all_now(&self) -> Result<usize, StoreError> {
        self.conn
            .execute("UPDATE fetch_status SET next_poll_at = 0", [])
            .map_err(|e| self.err("schedule a fetch", e))
    }
}

fn status_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<FetchStatus> {
    Ok(FetchStatus {
        account: row.get(0)?,
        last_attempt_at: row.get(1)?,
        last_success_at: row.get(2)?,
        last_error: row.get(3)?,
        failures: row.get(4)?,
        fetched: row.get(5)?,
        next_poll_at: row.get(6)?,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_remembered_per_account_and_pruned() {
        let db = Db::open_in_memory().unwrap();
        db.mark_fetched("a", &["1", "2"], 10).unwrap();
        db.mark_fetched("b", &["1"], 10).unwrap();
        db.mark_fetched("a", &["2", "3"], 11).unwrap();
        let a = db.fetched_uids("a").unwrap();
        assert_eq!(a.len(), 3);
        let present: HashSet<String> = ["3".to_string()].into();
        assert_eq!(db.forget_fetched_except("a", &present).unwrap(), 2);
        assert_eq!(db.fetched_uids("a").unwrap(), present);
        assert_eq!(db.fetched_uids("b").unwrap().len(), 1);
    }

    #[test]
    fn status_round_trips_and_fetch_now_makes_all_due() {
        let db = Db::open_in_memory().unwrap();
        assert_eq!(db.fetch_status("x").unwrap().failures, 0);
        let s = FetchStatus {
            account: "x".into(),
            last_attempt_at: Some(5),
            last_success_at: None,
            last_error: Some("connection refused".into()),
            failures: 2,
            fetched: 7,
            next_poll_at: 500,
        };
        db.set_fetch_status(&s).unwrap();
        assert_eq!(db.fetch_status("x").unwrap(), s);
        assert_eq!(db.fetch_all_now().unwrap(), 1);
        assert_eq!(db.fetch_statuses().unwrap()[0].next_poll_at, 0);
    }
}
