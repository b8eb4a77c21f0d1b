//! The domain's DKIM keys (`dkim_keys`): made by `officebox_secrets::dkim` on the mail
//! service's first start and when the admin rotates them, used by the outbound queue to
//! sign, and published by the DNS service under `<selector>._domainkey.<domain>`. A key
//! replaced by a newer one is "retired": no longer used to sign, still published for a
//! while so that mail signed before the change still verifies.

use rusqlite::params;

use crate::db::Db;
use crate::error::StoreError;

/// One DKIM key.
#[derive(Clone, PartialEq, Eq)]
pub struct DkimKey {
    /// The DNS label under `_domainkey`.
    pub selector: String,
    /// `rsa` or `ed25519` (DKIM's `k=`).
    pub algorithm: String,
    /// The private key, PKCS#8 DER.
    pub private: Vec<u8>,
    /// The public key as DKIM's `p=` carries it (before base64): SubjectPublicKeyInfo DER
    /// for RSA, the 32 raw bytes for ed25519.
    pub public: Vec<u8>,
    /// When it was made (Unix seconds).
    pub created: i64,
    /// When a newer key replaced it.
    pub retired: Option<i64>,
}

impl std::fmt::Debug for DkimKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkimKey")
            .field("selector", &self.selector)
            .field("algorithm", &self.algorithm)
            .field("created", &self.created)
            .field("retired", &self.retired)
            .finish_non_exhaustive()
    }
}

impl Db {
    /// Every DKIM key kept, the newest first.
    pub fn dkim_keys(&self) -> Result<Vec<DkimKey>, StoreError> {
        let read_err = |e| self.err("read the DKIM keys", e);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT selector, algorithm, private, public, created, retired FROM dkim_keys
                 ORDER BY created DESC, selector",
            )
            .map_err(read_err)?;
        stmt.query_map([], |r| {
            Ok(DkimKey {
                selector: r.get(0)?,
                algorithm: r.get(1)?,
                private: r.get(2)?,
                public: r.get(3)?,
                created: r.get(4)?,
                retired: r.get(5)?,
            })
        })
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(read_err)
    }

    /// Makes `keys` the ones that sign, in one transaction: the keys signing until now
    /// are retired at `now`, and keys retired before `forget_before` are forgotten.
    pub fn replace_dkim_keys(
        &self,
        keys: &[DkimKey],
        now: i64,
        forget_before: i64,
    ) -> Result<(), StoreError> {
        let write_err = |e| self.err("store the DKIM keys", e);
        let tx = self.conn.unchecked_transaction().map_err(write_err)?;
        tx.execute(
            "UPDATE dkim_keys SET retired = ?1 WHERE retired IS NULL",
            params![now],
        )
        .map_err(write_err)?;
        tx.execute(
            "DELETE FROM dkim_keys WHERE retired < ?1",
            params![forget_before],
        )
        .map_err(write_err)?;
        for k in keys {
            tx.execute(
                "INSERT INTO dkim_keys (selector, algorithm, private, public, created, retired)
                 VALUES (?1, ?2, ?3, ?4, ?5, NULL)",
                params![k.selector, k.algorithm, k.private, k.public, k.created],
            )
            .map_err(write_err)?;
        }
        tx.commit().map_err(write_err)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn key(selector: &str, created: i64) -> DkimKey {
        DkimKey {
            selector: selector.into(),
            algorithm: "ed25519".into(),
            private: vec![1, 2, 3],
            public: vec![4, 5],
            created,
            retired: None,
        }
    }

    #[test]
    fn new_keys_retire_the_old_ones_and_old_retired_keys_go() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("state.db")).unwrap();
        assert!(db.dkim_keys().unwrap().is_empty());
        db.replace_dkim_keys(&[key("a", 100)], 100, 0).unwrap();
        db.replace_dkim_keys(&[key("b", 200)], 200, 0).unwrap();
        let keys = db.dkim_keys().unwrap();
        let shown: Vec<(&str, Option<i64>)> = keys
            .iter()
            .map(|k| (k.selector.as_str(), k.retired))
            .collect();
        assert_eq!(shown, [("b", None), ("a", Some(200))]);
        assert!(!format!("{:?}", keys[0]).contains("private"));
        // A third: "a" was retired at 200, before 250, and is forgotten.
        db.replace_dkim_keys(&[key("c", 300)], 300, 250).unwrap();
        let left: Vec<String> = db
            .dkim_keys()
            .unwrap()
            .into_iter()
            .map(|k| k.selector)
            .collect();
        assert_eq!(left, ["c", "b"]);
        // A selector is never used twice.
        assert!(db.replace_dkim_keys(&[key("c", 400)], 400, 0).is_err());
        assert_eq!(db.dkim_keys().unwrap().len(), 2);
    }
}
