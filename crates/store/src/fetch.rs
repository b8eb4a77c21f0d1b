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

    /// Marks `account` as being polled, just before the poll starts. A request for a
    /// poll made from now on (`request_fetch`) is then told apart from the one this poll
    /// answers, and survives the poll's record (`record_fetch`).
    pub fn claim_fetch(&self, account: &str) -> Result<(), StoreError> {
        self.set_next_poll(account, POLLING)
            .map_err(|e| self.err("claim a fetch", e))
    }

    /// Asks for `account` to be polled at once (`officebox mail fetch now`). Only the
    /// schedule is touched, so a poll recording its outcome meanwhile loses nothing.
    pub fn request_fetch(&self, account: &str) -> Result<(), StoreError> {
        self.set_next_poll(account, 0)
            .map_err(|e| self.err("schedule a fetch", e))
    }

    fn set_next_poll(&self, account: &str, at: i64) -> rusqlite::Result<()> {
        self.conn
            .execute(
                "INSERT INTO fetch_status (account, next_poll_at) VALUES (?1, ?2)
                 ON CONFLICT (account) DO UPDATE SET next_poll_at = excluded.next_poll_at",
                params![account, at],
            )
            .map(drop)
    }

    /// Records a poll's outcome (replacing the account's previous record). If a poll was
    /// asked for while this one ran, the account stays due now rather than waiting for
    /// `status.next_poll_at`.
    pub fn record_fetch(&self, status: &FetchStatus) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO fetch_status (account, last_attempt_at, last_success_at, last_error, failures, fetched, next_poll_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (account) DO UPDATE SET last_attempt_at = excluded.last_attempt_at,
                     last_success_at = excluded.last_success_at, last_error = excluded.last_error,
                     failures = excluded.failures, fetched = excluded.fetched,
                     next_poll_at = CASE WHEN fetch_status.next_poll_at = 0 THEN 0
                                         ELSE excluded.next_poll_at END",
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
}

/// `next_poll_at` of an account whose poll is under way. It is in the past, so a poll
/// cut short (`kill -9`) is taken up again at the next start.
const POLLING: i64 = -1;

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
    fn status_round_trips_and_a_request_during_a_poll_outlives_its_record() {
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
        db.record_fetch(&s).unwrap();
        assert_eq!(db.fetch_status("x").unwrap(), s);

        // Asked for before the poll starts: the poll answers it.
        db.request_fetch("x").unwrap();
        assert_eq!(db.fetch_statuses().unwrap()[0].next_poll_at, 0);
        db.claim_fetch("x").unwrap();
        db.record_fetch(&FetchStatus {
            fetched: 8,
            ..s.clone()
        })
        .unwrap();
        assert_eq!(db.fetch_status("x").unwrap().next_poll_at, 500);

        // Asked for while the poll runs: still due when it is recorded.
        db.claim_fetch("x").unwrap();
        db.request_fetch("x").unwrap();
        db.record_fetch(&FetchStatus {
            fetched: 9,
            ..s.clone()
        })
        .unwrap();
        let after = db.fetch_status("x").unwrap();
        assert_eq!((after.next_poll_at, after.fetched), (0, 9));

        // An account never polled can be asked for.
        db.request_fetch("y").unwrap();
        assert_eq!(db.fetch_status("y").unwrap().next_poll_at, 0);
    }
}
