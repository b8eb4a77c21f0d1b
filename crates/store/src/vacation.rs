//! Out-of-office replies (`vacation`, `vacation_replied`): a user's reply while they are
//! away, set on the Users page or by the user on their own page, and to whom it went
//! when, so that a sender hears it once in a while rather than for every message
//! (RFC 3834 section 2).

use rusqlite::{OptionalExtension, params};

use crate::db::Db;
use crate::error::StoreError;

/// How often one sender hears one user's reply (RFC 3834 suggests days, not minutes).
pub const VACATION_EVERY: i64 = 4 * 86_400;

/// A user's out-of-office reply, while it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vacation {
    pub login: String,
    pub subject: String,
    pub body: String,
    /// The last day it answers (Unix seconds of that day's end); `None`: until turned off.
    pub until: Option<i64>,
}

impl Db {
    /// `login`'s reply, if it is on.
    pub fn vacation(&self, login: &str) -> Result<Option<Vacation>, StoreError> {
        self.conn
            .query_row(
                "SELECT login, subject, body, until FROM vacation WHERE login = ?1",
                params![login],
                |r| {
                    Ok(Vacation {
                        login: r.get(0)?,
                        subject: r.get(1)?,
                        body: r.get(2)?,
                        until: r.get(3)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err("read an out-of-office reply", e))
    }

    /// Turns `login`'s reply on with `v`, or off (`None`). Turning it on again starts
    /// afresh: everyone hears the new reply once.
    pub fn set_vacation(&self, login: &str, v: Option<&Vacation>) -> Result<(), StoreError> {
        let write_err = |e| self.err("save an out-of-office reply", e);
        let tx = self.conn.unchecked_transaction().map_err(write_err)?;
        tx.execute("DELETE FROM vacation WHERE login = ?1", params![login])
            .map_err(write_err)?;
        tx.execute(
            "DELETE FROM vacation_replied WHERE login = ?1",
            params![login],
        )
        .map_err(write_err)?;
        if let Some(v) = v {
            tx.execute(
                "INSERT INTO vacation (login, subject, body, until) VALUES (?1, ?2, ?3, ?4)",
                params![login, v.subject, v.body, v.until],
            )
            .map_err(write_err)?;
        }
        tx.commit().map_err(write_err)
    }

    /// Whether `login` should answer `sender` now: not within `every` seconds of the
    /// last answer to them. Records the answer when it says yes.
    pub fn vacation_reply_due(
        &self,
        login: &str,
        sender: &str,
        now: i64,
        every: i64,
    ) -> Result<bool, StoreError> {
        let write_err = |e| self.err("record an out-of-office reply", e);
        let tx = self.conn.unchecked_transaction().map_err(write_err)?;
        let last: Option<i64> = tx
            .query_row(
                "SELECT at FROM vacation_replied WHERE login = ?1 AND sender = ?2",
                params![login, sender],
                |r| r.get(0),
            )
            .optional()
            .map_err(write_err)?;
        let due = last.is_none_or(|at| now - at >= every);
        if due {
            tx.execute(
                "INSERT INTO vacation_replied (login, sender, at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (login, sender) DO UPDATE SET at = ?3",
                params![login, sender, now],
            )
            .map_err(write_err)?;
        }
        tx.commit().map_err(write_err)?;
        Ok(due)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_sender_hears_the_reply_once_per_period_and_again_after_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("state.db")).unwrap();
        assert_eq!(db.vacation("alice").unwrap(), None);
        let v = Vacation {
            login: "alice".into(),
            subject: "Away".into(),
            body: "Back Monday".into(),
            until: None,
        };
        db.set_vacation("alice", Some(&v)).unwrap();
        assert_eq!(db.vacation("alice").unwrap(), Some(v.clone()));
        let due = |now| {
            db.vacation_reply_due("alice", "bob@x.test", now, 100)
                .unwrap()
        };
        assert!(due(1000));
        assert!(!due(1050));
        assert!(due(1100));
        db.set_vacation("alice", Some(&v)).unwrap();
        assert!(due(1101), "a reply set again is heard again");
        db.set_vacation("alice", None).unwrap();
        assert_eq!(db.vacation("alice").unwrap(), None);
    }
}
