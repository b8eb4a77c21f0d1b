//! Phone registrations as the registrar last saw them: for `officebox phone
//! registrations`, and so a restart does not forget where the phones are. Written in
//! batches by the registrar (registrations are soft state: a phone refreshes its own).

use rusqlite::params;

use crate::db::Db;
use crate::error::StoreError;

/// One registered contact of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipBinding {
    pub login: String,
    pub contact: String,
    /// Unix seconds.
    pub expires_at: i64,
    pub call_id: String,
    pub cseq: i64,
    /// `ip:port` the phone registered from.
    pub source: String,
    pub transport: String,
    pub user_agent: String,
}

/// A call in progress, as the phone server last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipCall {
    pub id: i64,
    pub caller: String,
    pub callee: String,
    /// ringing, talking, ending.
    pub state: String,
    pub started_at: i64,
    pub answered_at: Option<i64>,
}

/// A user's call forwarding and do-not-disturb, set from their phone (feature codes) or
/// on the Users page. The targets are what the user dialled (an extension or a number
/// as they would dial it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forwarding {
    pub login: String,
    /// Callers go straight to voicemail.
    pub dnd: bool,
    /// Every call goes there.
    pub always: Option<String>,
    /// When every phone of the user is busy.
    pub busy: Option<String>,
    /// When nobody answers in time.
    pub no_answer: Option<String>,
}

impl Forwarding {
    /// Whether it changes nothing (no row is kept for it).
    pub fn is_off(&self) -> bool {
        !self.dnd && self.always.is_none() && self.busy.is_none() && self.no_answer.is_none()
    }
}

/// One voicemail in the index (its message is `name` in the user's Maildir).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voicemail {
    pub login: String,
    /// The Maildir unique name (without flags), as `Entry::unique` gives it.
    pub name: String,
    /// e.g. `Alice Example (101)`.
    pub caller: String,
    pub duration_ms: i64,
    pub received_at: i64,
}

impl Db {
    /// Adds a voicemail to the index (its message is already in the Maildir).
    pub fn add_voicemail(&self, v: &Voicemail) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO voicemail (login, name, caller, duration_ms, received_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![v.login, v.name, v.caller, v.duration_ms, v.received_at],
            )
            .map(drop)
            .map_err(|e| self.err("index a voicemail", e))
    }

    /// The voicemails of `login`, newest first.
    pub fn voicemails(&self, login: &str) -> Result<Vec<Voicemail>, StoreError> {
        let read_err = |e| self.err("read the voicemail index", e);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT login, name, caller, duration_ms, received_at FROM voicemail
                 WHERE login = ?1 ORDER BY received_at DESC, name DESC",
            )
            .map_err(read_err)?;
        stmt.query_map([login], |row| {
            Ok(Voicemail {
                login: row.get(0)?,
                name: row.get(1)?,
                caller: row.get(2)?,
                duration_ms: row.get(3)?,
                received_at: row.get(4)?,
            })
        })
        .map_err(read_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_err)
    }

    /// Drops a voicemail from the index (deleted by phone or by POP3).
    pub fn remove_voicemail(&self, login: &str, name: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "DELETE FROM voicemail WHERE login = ?1 AND name = ?2",
                params![login, name],
            )
            .map(drop)
            .map_err(|e| self.err("remove a voicemail", e))
    }

    /// Replaces the list of live calls (one transaction).
    pub fn save_calls(&self, calls: &[SipCall]) -> Result<(), StoreError> {
        let write_err = |e| self.err("save live calls", e);
        let tx = self.conn.unchecked_transaction().map_err(write_err)?;
        tx.execute("DELETE FROM sip_calls", []).map_err(write_err)?;
        {
            let mut ins = tx
                .prepare_cached(
                    "INSERT INTO sip_calls (id, caller, callee, state, started_at, answered_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(write_err)?;
            for c in calls {
                ins.execute(params![
                    c.id,
                    c.caller,
                    c.callee,
                    c.state,
                    c.started_at,
                    c.answered_at
                ])
                .map_err(write_err)?;
            }
        }
        tx.commit().map_err(write_err)
    }

    /// The live calls, oldest first.
    pub fn calls(&self) -> Result<Vec<SipCall>, StoreError> {
        let read_err = |e| self.err("read live calls", e);
        let mut stmt = self
            .conn
            .prepare("SELECT id, caller, callee, state, started_at, answered_at FROM sip_calls ORDER BY started_at, id")
            .map_err(read_err)?;
        stmt.query_map([], |row| {
            Ok(SipCall {
                id: row.get(0)?,
                caller: row.get(1)?,
                callee: row.get(2)?,
                state: row.get(3)?,
                started_at: row.get(4)?,
                answered_at: row.get(5)?,
            })
        })
        .map_err(read_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_err)
    }

    /// Replaces the bindings of each login in `changes` (one transaction).
    pub fn save_bindings(&self, changes: &[(String, Vec<SipBinding>)]) -> Result<(), StoreError> {
        let write_err = |e| self.err("save phone registrations", e);
        let tx = self.conn.unchecked_transaction().map_err(write_err)?;
        {
            let mut del = tx
                .prepare_cached("DELETE FROM sip_bindings WHERE login = ?1")
                .map_err(write_err)?;
            let mut ins = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO sip_bindings
                     (login, contact, expires_at, call_id, cseq, source, transport, user_agent)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(write_err)?;
            for (login, bindings) in changes {
                del.execute([login]).map_err(write_err)?;
                for b in bindings {
                    ins.execute(params![
                        login,
                        b.contact,
                        b.expires_at,
                        b.call_id,
                        b.cseq,
                        b.source,
                        b.transport,
                        b.user_agent
                    ])
                    .map_err(write_err)?;
                }
            }
        }
        tx.commit().map_err(write_err)
    }

    /// The bindings that have not expired at `now`, by login and contact.
    pub fn bindings(&self, now: i64) -> Result<Vec<SipBinding>, StoreError> {
        let read_err = |e| self.err("read phone registrations", e);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT login, contact, expires_at, call_id, cseq, source, transport, user_agent
                 FROM sip_bindings WHERE expires_at > ?1 ORDER BY login, contact",
            )
            .map_err(read_err)?;
        stmt.query_map([now], |row| {
            Ok(SipBinding {
                login: row.get(0)?,
                contact: row.get(1)?,
                expires_at: row.get(2)?,
                call_id: row.get(3)?,
                cseq: row.get(4)?,
                source: row.get(5)?,
                transport: row.get(6)?,
                user_agent: row.get(7)?,
            })
        })
        .map_err(read_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_err)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bindings_are_replaced_per_login_and_expire() {
        let db = Db::open_in_memory().unwrap();
        let b = |contact: &str, expires_at| SipBinding {
            login: "alice".into(),
            contact: contact.into(),
            expires_at,
            call_id: "c".into(),
            cseq: 1,
            source: "10.0.0.5:5060".into(),
            transport: "udp".into(),
            user_agent: "phone".into(),
        };
        db.save_bindings(&[("alice".into(), vec![b("sip:a", 100), b("sip:b", 50)])])
            .unwrap();
        assert_eq!(db.bindings(60).unwrap().len(), 1);
        db.save_bindings(&[("alice".into(), vec![])]).unwrap();
        assert!(db.bindings(0).unwrap().is_empty());
    }
}

impl Db {
    /// Every user's forwarding that is not off.
    pub fn forwardings(&self) -> Result<Vec<Forwarding>, StoreError> {
        let read_err = |e| self.err("read the call forwarding", e);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT login, dnd, always, busy, no_answer FROM phone_forwarding ORDER BY login",
            )
            .map_err(read_err)?;
        stmt.query_map([], |r| {
            Ok(Forwarding {
                login: r.get(0)?,
                dnd: r.get::<_, i64>(1)? != 0,
                always: r.get(2)?,
                busy: r.get(3)?,
                no_answer: r.get(4)?,
            })
        })
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(read_err)
    }

    /// Keeps `f` as its user's forwarding (all off: forgets it).
    pub fn set_forwarding(&self, f: &Forwarding) -> Result<(), StoreError> {
        let result = if f.is_off() {
            self.conn.execute(
                "DELETE FROM phone_forwarding WHERE login = ?1",
                params![f.login],
            )
        } else {
            self.conn.execute(
                "INSERT INTO phone_forwarding (login, dnd, always, busy, no_answer, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (login) DO UPDATE SET dnd = ?2, always = ?3, busy = ?4,
                     no_answer = ?5, updated_at = ?6",
                params![
                    f.login,
                    i64::from(f.dnd),
                    f.always,
                    f.busy,
                    f.no_answer,
                    crate::unix_now()
                ],
            )
        };
        result
            .map(drop)
            .map_err(|e| self.err("save the call forwarding", e))
    }
}

#[cfg(test)]
mod forwarding_tests {
    use super::*;

    #[test]
    fn forwarding_is_kept_changed_and_forgotten_when_all_off() {
        let db = Db::open_in_memory().unwrap();
        let mut f = Forwarding {
            login: "bob".into(),
            dnd: true,
            ..Forwarding::default()
        };
        db.set_forwarding(&f).unwrap();
        f.dnd = false;
        f.always = Some("5551234".into());
        db.set_forwarding(&f).unwrap();
        assert_eq!(db.forwardings().unwrap(), [f.clone()]);
        f.always = None;
        db.set_forwarding(&f).unwrap();
        assert!(db.forwardings().unwrap().is_empty());
    }
}
