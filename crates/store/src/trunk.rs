//! The state of each SIP trunk as the phone service last saw it (registered until when,
//! failing and why, disabled, or an IP trunk): written by the trunk client, read by
//! `officebox phone trunks` and the admin pages. One row per trunk, by name; rows of
//! trunks the config no longer has are removed by [`Db::retain_trunks`].

use rusqlite::params;

use crate::db::Db;
use crate::error::StoreError;

/// Where a trunk stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrunkState {
    /// The first REGISTER is on its way.
    Registering,
    /// The provider accepted the registration (until `registered_until`).
    Registered,
    /// The last attempt failed (`last_code`, `last_reason`); next try at `next_try_at`.
    Failing,
    /// Switched off in the config.
    Disabled,
    /// An IP trunk: nothing to register.
    Ip,
    /// officebox stopped (and un-REGISTERed the trunk).
    Stopped,
}

impl TrunkState {
    /// As stored (and printed).
    pub fn as_str(self) -> &'static str {
        match self {
            TrunkState::Registering => "registering",
            TrunkState::Registered => "registered",
            TrunkState::Failing => "failing",
            TrunkState::Disabled => "disabled",
            TrunkState::Ip => "ip",
            TrunkState::Stopped => "stopped",
        }
    }

    fn parse(s: &str) -> Option<TrunkState> {
        [
            TrunkState::Registering,
            TrunkState::Registered,
            TrunkState::Failing,
            TrunkState::Disabled,
            TrunkState::Ip,
            TrunkState::Stopped,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

/// One trunk's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkStatus {
    pub name: String,
    /// `register` or `ip`.
    pub kind: String,
    /// The provider, as configured.
    pub server: String,
    pub state: TrunkState,
    /// Unix seconds: when the provider's registration ends (registered).
    pub registered_until: Option<i64>,
    /// The provider's last status code, when it answered with a failure.
    pub last_code: Option<i64>,
    /// Why the last attempt failed: the provider's reason phrase, or what happened.
    pub last_reason: Option<String>,
    /// Unix seconds: the next attempt (failing), or the next refresh (registered).
    pub next_try_at: Option<i64>,
    /// More words for people: the contact registered, the addresses of an IP trunk.
    pub detail: String,
    pub updated_at: i64,
}

impl Db {
    /// Writes one trunk's state (replacing its row). Durable when this returns.
    pub fn set_trunk_status(&self, t: &TrunkStatus) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO trunk_status
                 (name, kind, server, state, registered_until, last_code, last_reason,
                  next_try_at, detail, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    t.name,
                    t.kind,
                    t.server,
                    t.state.as_str(),
                    t.registered_until,
                    t.last_code,
                    t.last_reason,
                    t.next_try_at,
                    t.detail,
                    t.updated_at
                ],
            )
            .map(drop)
            .map_err(|e| self.err("save a trunk's state", e))
    }

    /// Removes the rows of trunks not named in `names` (trunks the config dropped).
    pub fn retain_trunks(&self, names: &[&str]) -> Result<(), StoreError> {
        let write_err = |e| self.err("forget removed trunks", e);
        let known: Vec<String> = self.trunk_statuses()?.into_iter().map(|t| t.name).collect();
        let tx = self.conn.unchecked_transaction().map_err(write_err)?;
        for name in known.iter().filter(|n| !names.contains(&n.as_str())) {
            tx.execute("DELETE FROM trunk_status WHERE name = ?1", [name])
                .map_err(write_err)?;
        }
        tx.commit().map_err(write_err)
    }

    /// Every trunk's row, by name.
    pub fn trunk_statuses(&self) -> Result<Vec<TrunkStatus>, StoreError> {
        let read_err = |e| self.err("read the trunks' state", e);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT name, kind, server, state, registered_until, last_code, last_reason,
                        next_try_at, detail, updated_at
                 FROM trunk_status ORDER BY name",
            )
            .map_err(read_err)?;
        let rows = stmt
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(3)?,
                    TrunkStatus {
                        name: row.get(0)?,
                        kind: row.get(1)?,
                        server: row.get(2)?,
                        state: TrunkState::Disabled,
                        registered_until: row.get(4)?,
                        last_code: row.get(5)?,
                        last_reason: row.get(6)?,
                        next_try_at: row.get(7)?,
                        detail: row.get(8)?,
                        updated_at: row.get(9)?,
                    },
                ))
            })
            .map_err(read_err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(read_err)?;
        rows.into_iter()
            .map(|(state, mut t)| {
                t.state = TrunkState::parse(&state).ok_or_else(|| {
                    self.corrupt(format!("trunk {}: unknown state `{state}`", t.name))
                })?;
                Ok(t)
            })
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn status(name: &str, state: TrunkState) -> TrunkStatus {
        TrunkStatus {
            name: name.into(),
            kind: "register".into(),
            server: "sip.provider.example".into(),
            state,
            registered_until: None,
            last_code: None,
            last_reason: None,
            next_try_at: None,
            detail: String::new(),
            updated_at: 1,
        }
    }

    #[test]
    fn a_trunk_row_is_replaced_and_removed_trunks_are_forgotten() {
        let db = Db::open_in_memory().unwrap();
        db.set_trunk_status(&status("main", TrunkState::Registering))
            .unwrap();
        let mut failing = status("main", TrunkState::Failing);
        failing.last_code = Some(403);
        failing.last_reason = Some("Forbidden".into());
        failing.next_try_at = Some(600);
        db.set_trunk_status(&failing).unwrap();
        db.set_trunk_status(&status("backup", TrunkState::Ip))
            .unwrap();
        let rows = db.trunk_statuses().unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1], failing);
        db.retain_trunks(&["backup"]).unwrap();
        let rows = db.trunk_statuses().unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].state, TrunkState::Ip);
    }
}
