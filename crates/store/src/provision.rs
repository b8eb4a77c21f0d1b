//! The provisioned phones' own secrets (`phone_devices`): one row per assigned MAC,
//! written by the provisioning server, read by the registrar and DHCP. The secret is
//! random per phone (its SIP and HTTP passwords are made from it by
//! `officebox_secrets::provision`), and the one-time token opens the phone's own file
//! once, before the phone has its credentials.

use rusqlite::{OptionalExtension, params};

use crate::db::Db;
use crate::error::StoreError;

/// One assigned phone's secrets and its last fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionedPhone {
    /// 12 lowercase hex digits.
    pub mac: String,
    pub secret: String,
    /// The one-time token, while it is unused.
    pub token: Option<String>,
    /// When (Unix seconds), from where and by what its own file was last fetched.
    pub fetched_at: Option<i64>,
    pub fetched_from: Option<String>,
    pub user_agent: Option<String>,
}

const COLUMNS: &str = "mac, secret, token, fetched_at, fetched_from, user_agent";

fn row(r: &rusqlite::Row) -> rusqlite::Result<ProvisionedPhone> {
    Ok(ProvisionedPhone {
        mac: r.get(0)?,
        secret: r.get(1)?,
        token: r.get(2)?,
        fetched_at: r.get(3)?,
        fetched_from: r.get(4)?,
        user_agent: r.get(5)?,
    })
}

impl Db {
    /// Every provisioned phone.
    pub fn provisioned_phones(&self) -> Result<Vec<ProvisionedPhone>, StoreError> {
        let read_err = |e| self.err("read the provisioned phones", e);
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM phone_devices ORDER BY mac"))
            .map_err(read_err)?;
        stmt.query_map([], row)
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(read_err)
    }

    /// The provisioned phone `mac` (12 lowercase hex digits), if it has its secret.
    pub fn provisioned_phone(&self, mac: &str) -> Result<Option<ProvisionedPhone>, StoreError> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM phone_devices WHERE mac = ?1"),
                params![mac],
                row,
            )
            .optional()
            .map_err(|e| self.err("read a provisioned phone", e))
    }

    /// The phone whose unused one-time token is `token`.
    pub fn phone_by_token(&self, token: &str) -> Result<Option<ProvisionedPhone>, StoreError> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM phone_devices WHERE token = ?1"),
                params![token],
                row,
            )
            .optional()
            .map_err(|e| self.err("read a provisioned phone", e))
    }

    /// Gives `mac` its secret and token unless it has them already (`fresh` makes them;
    /// it is called only for a phone not yet here).
    pub fn ensure_phone(
        &self,
        mac: &str,
        fresh: impl FnOnce() -> (String, String),
    ) -> Result<ProvisionedPhone, StoreError> {
        if let Some(p) = self.provisioned_phone(mac)? {
            return Ok(p);
        }
        let (secret, token) = fresh();
        self.renew_phone(mac, &secret, &token)?;
        Ok(ProvisionedPhone {
            mac: mac.to_string(),
            secret,
            token: Some(token),
            fetched_at: None,
            fetched_from: None,
            user_agent: None,
        })
    }

    /// Gives `mac` a new secret and a new one-time token ("set this phone up again"):
    /// the credentials it had stop working.
    pub fn renew_phone(&self, mac: &str, secret: &str, token: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO phone_devices (mac, secret, token, made_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (mac) DO UPDATE SET secret = ?2, token = ?3, made_at = ?4,
                     fetched_at = NULL, fetched_from = NULL, user_agent = NULL",
                params![mac, secret, token, crate::unix_now()],
            )
            .map(drop)
            .map_err(|e| self.err("save a provisioned phone", e))
    }

    /// Uses `mac`'s one-time token: true when it was `token` and unused (it is gone now).
    pub fn use_phone_token(&self, mac: &str, token: &str) -> Result<bool, StoreError> {
        self.conn
            .execute(
                "UPDATE phone_devices SET token = NULL WHERE mac = ?1 AND token = ?2",
                params![mac, token],
            )
            .map(|n| n == 1)
            .map_err(|e| self.err("use a phone's token", e))
    }

    /// Notes that `mac` fetched its own file, from where and as what.
    pub fn phone_fetched(&self, mac: &str, from: &str, agent: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE phone_devices SET fetched_at = ?2, fetched_from = ?3, user_agent = ?4
                 WHERE mac = ?1",
                params![mac, crate::unix_now(), from, agent],
            )
            .map(drop)
            .map_err(|e| self.err("note a phone's fetch", e))
    }

    /// Forgets the phones not in `keep` (no longer assigned).
    pub fn forget_phones_but(&self, keep: &[String]) -> Result<(), StoreError> {
        let mut gone = Vec::new();
        for p in self.provisioned_phones()? {
            if !keep.contains(&p.mac) {
                gone.push(p.mac);
            }
        }
        for mac in gone {
            self.conn
                .execute("DELETE FROM phone_devices WHERE mac = ?1", params![mac])
                .map_err(|e| self.err("forget a provisioned phone", e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_token_opens_once_and_a_renewal_makes_new_secrets() {
        let db = Db::open_in_memory().unwrap();
        let p = db
            .ensure_phone("805ec0123456", || ("s1".into(), "t1".into()))
            .unwrap();
        assert_eq!(p.token.as_deref(), Some("t1"));
        // A second ensure keeps what is there.
        let again = db
            .ensure_phone("805ec0123456", || ("s2".into(), "t2".into()))
            .unwrap();
        assert_eq!(again.secret, "s1");
        assert_eq!(
            db.phone_by_token("t1").unwrap().unwrap().mac,
            "805ec0123456"
        );
        assert!(!db.use_phone_token("805ec0123456", "wrong").unwrap());
        assert!(db.use_phone_token("805ec0123456", "t1").unwrap());
        assert!(!db.use_phone_token("805ec0123456", "t1").unwrap());
        assert!(db.phone_by_token("t1").unwrap().is_none());
        db.phone_fetched("805ec0123456", "10.0.0.9", "Yealink")
            .unwrap();
        db.renew_phone("805ec0123456", "s3", "t3").unwrap();
        let all = db.provisioned_phones().unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(
            (all[0].secret.as_str(), all[0].token.as_deref()),
            ("s3", Some("t3"))
        );
        assert_eq!(all[0].fetched_at, None);
        db.forget_phones_but(&[]).unwrap();
        assert!(db.provisioned_phones().unwrap().is_empty());
    }
}
