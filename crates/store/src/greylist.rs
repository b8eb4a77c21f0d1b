//! Greylisting (`greylist`): who has tried to send what from where. A (client network,
//! sender, recipient) triple seen for the first time is told to come back later; once it
//! comes back after the delay it passes, and keeps passing while it keeps sending.

use rusqlite::{OptionalExtension, params};

use crate::db::Db;
use crate::error::StoreError;

/// A triple that never came back is forgotten after a day.
const FORGET_UNPASSED: i64 = 86_400;
/// A triple that passed is remembered this long after its last message.
const FORGET_PASSED: i64 = 36 * 86_400;

impl Db {
    /// Whether the triple may deliver now (`delay` seconds after it was first seen), and
    /// records the attempt. Triples long unused are forgotten on the way.
    pub fn greylist_pass(
        &self,
        network: &str,
        sender: &str,
        recipient: &str,
        now: i64,
        delay: i64,
    ) -> Result<bool, StoreError> {
        let write_err = |e| self.err("record a greylisting attempt", e);
        let tx = self.conn.unchecked_transaction().map_err(write_err)?;
        let seen: Option<(i64, bool)> = tx
            .query_row(
                "SELECT first_seen, passed FROM greylist
                 WHERE network = ?1 AND sender = ?2 AND recipient = ?3",
                params![network, sender, recipient],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(write_err)?;
        let pass = match seen {
            None => {
                tx.execute(
                    "DELETE FROM greylist WHERE (passed = 0 AND first_seen < ?1) OR last_seen < ?2",
                    params![now - FORGET_UNPASSED, now - FORGET_PASSED],
                )
                .map_err(write_err)?;
                tx.execute(
                    "INSERT INTO greylist (network, sender, recipient, first_seen, last_seen, passed)
                     VALUES (?1, ?2, ?3, ?4, ?4, 0)",
                    params![network, sender, recipient, now],
                )
                .map_err(write_err)?;
                false
            }
            Some((first, passed)) => {
                let pass = passed || now - first >= delay;
                tx.execute(
                    "UPDATE greylist SET last_seen = ?4, passed = ?5
                     WHERE network = ?1 AND sender = ?2 AND recipient = ?3",
                    params![network, sender, recipient, now, pass],
                )
                .map_err(write_err)?;
                pass
            }
        };
        tx.commit().map_err(write_err)?;
        Ok(pass)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_new_triple_waits_the_delay_then_passes_and_stays_passed() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("state.db")).unwrap();
        let t = |now| {
            db.greylist_pass("198.51.100.0/24", "a@x.test", "bob@o.test", now, 300)
                .unwrap()
        };
        assert!(!t(1000));
        assert!(!t(1299), "too early");
        assert!(t(1300));
        assert!(t(1301));
        // Another recipient from the same sender is a new triple.
        assert!(
            !db.greylist_pass("198.51.100.0/24", "a@x.test", "al@o.test", 1302, 300)
                .unwrap()
        );
        // A day later an unpassed triple is forgotten when another arrives; a passed one
        // stays until 36 days after its last message.
        assert!(
            !db.greylist_pass(
                "203.0.113.0/24",
                "c@y.test",
                "bob@o.test",
                1302 + 86_401,
                300
            )
            .unwrap()
        );
        assert!(
            !db.greylist_pass(
                "198.51.100.0/24",
                "a@x.test",
                "al@o.test",
                1302 + 86_402,
                300
            )
            .unwrap()
        );
        assert!(t(1302 + 86_403));
    }
}
