//! The domain's DKIM keys: a pair is made on the mail service's first start and again
//! when the admin rotates them (an ed25519 key, RFC 8463, and an RSA-2048 key for the
//! receivers that know only RSA; every message is signed with both). They live in the
//! state database ([`DkimKey`]); a replaced pair is kept published for
//! [`KEEP_PUBLISHED`] so that mail signed with it still verifies, then forgotten.

use base64::Engine as _;
use officebox_store::{Db, DkimKey, StoreError, date};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair as _};

/// How long a replaced key stays in the zone: longer than any message waits in a queue
/// (officebox gives up after 5 days by default) plus a receiver's late check.
pub const KEEP_PUBLISHED: i64 = 10 * 86_400;

/// Why a key could not be made or kept.
#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    #[error("cannot make a DKIM key: {0}")]
    Make(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A new pair (RSA first, then ed25519) with selectors that no kept key has:
/// `<yyyymmdd>-rsa` and `<yyyymmdd>-ed25519`, with `-2`, `-3`... after the date when
/// the pair is not the day's first. Blocking: an RSA key takes a fraction of a second.
pub fn make_pair(kept: &[DkimKey], now: i64) -> Result<[DkimKey; 2], DkimError> {
    let (y, m, d) = date::civil(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(now).unwrap_or(0)),
    );
    let day = format!("{y:04}{m:02}{d:02}");
    let taken = |base: &str| {
        kept.iter().any(|k| {
            k.selector
                .strip_prefix(base)
                .is_some_and(|rest| rest == "-rsa" || rest == "-ed25519")
        })
    };
    let base = std::iter::once(day.clone())
        .chain((2..).map(|n| format!("{day}-{n}")))
        .find(|b| !taken(b))
        .unwrap_or(day);
    let rsa = make_rsa()?;
    let ed = make_ed25519()?;
    Ok([
        DkimKey {
            selector: format!("{base}-rsa"),
            algorithm: "rsa".into(),
            private: rsa.0,
            public: rsa.1,
            created: now,
            retired: None,
        },
        DkimKey {
            selector: format!("{base}-ed25519"),
            algorithm: "ed25519".into(),
            private: ed.0,
            public: ed.1,
            created: now,
            retired: None,
        },
    ])
}

/// (PKCS#8 DER, SubjectPublicKeyInfo DER) of a new RSA-2048 key.
fn make_rsa() -> Result<(Vec<u8>, Vec<u8>), DkimError> {
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
        .map_err(|e| DkimError::Make(e.to_string()))?;
    let private = key
        .to_pkcs8_der()
        .map_err(|e| DkimError::Make(e.to_string()))?
        .as_bytes()
        .to_vec();
    let public = key
        .to_public_key()
        .to_public_key_der()
        .map_err(|e| DkimError::Make(e.to_string()))?
        .as_bytes()
        .to_vec();
    Ok((private, public))
}

/// (PKCS#8 DER, the 32 raw public bytes) of a new ed25519 key.
fn make_ed25519() -> Result<(Vec<u8>, Vec<u8>), DkimError> {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .map_err(|_| DkimError::Make("ed25519: no randomness".into()))?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .map_err(|e| DkimError::Make(format!("ed25519: {e}")))?;
    Ok((pkcs8.as_ref().to_vec(), pair.public_key().as_ref().to_vec()))
}

/// Makes the first pair unless keys that sign are there already; whether it made them.
/// Blocking.
pub fn ensure(db: &Db, now: i64) -> Result<bool, DkimError> {
    let kept = db.dkim_keys()?;
    if kept.iter().any(|k| k.retired.is_none()) {
        return Ok(false);
    }
    let pair = make_pair(&kept, now)?;
    db.replace_dkim_keys(&pair, now, now - KEEP_PUBLISHED)?;
    Ok(true)
}

/// Replaces the keys that sign with a new pair (the old ones stay published for
/// [`KEEP_PUBLISHED`]); the new selectors. Blocking.
pub fn rotate(db: &Db, now: i64) -> Result<[String; 2], DkimError> {
    let kept = db.dkim_keys()?;
    let pair = make_pair(&kept, now)?;
    db.replace_dkim_keys(&pair, now, now - KEEP_PUBLISHED)?;
    let [a, b] = pair;
    Ok([a.selector, b.selector])
}

/// Whether `key` is still in the zone at `now`.
pub fn published(key: &DkimKey, now: i64) -> bool {
    key.retired.is_none_or(|r| now < r + KEEP_PUBLISHED)
}

/// The TXT record of `key` (at `<selector>._domainkey.<domain>`).
pub fn txt_record(key: &DkimKey) -> String {
    format!(
        "v=DKIM1; k={}; p={}",
        key.algorithm,
        base64::engine::general_purpose::STANDARD.encode(&key.public)
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_is_made_once_and_rotation_keeps_the_old_one_published() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("state.db")).unwrap();
        let day = 1_796_601_600; // 2026-12-07
        assert!(ensure(&db, day).unwrap());
        assert!(!ensure(&db, day + 10).unwrap());
        let keys = db.dkim_keys().unwrap();
        let selectors: Vec<&str> = keys.iter().map(|k| k.selector.as_str()).collect();
        assert_eq!(selectors, ["20261207-ed25519", "20261207-rsa"]);
        let rsa = keys.iter().find(|k| k.algorithm == "rsa").unwrap();
        assert!(
            txt_record(rsa).starts_with("v=DKIM1; k=rsa; p=MIIBIjAN"),
            "{}",
            txt_record(rsa)
        );
        let ed = keys.iter().find(|k| k.algorithm == "ed25519").unwrap();
        assert_eq!(ed.public.len(), 32);

        // The same day again: new selectors; the first pair retired, still published.
        assert_eq!(
            rotate(&db, day + 60).unwrap(),
            ["20261207-2-rsa", "20261207-2-ed25519"]
        );
        let keys = db.dkim_keys().unwrap();
        assert_eq!(keys.len(), 4);
        let old = keys.iter().find(|k| k.selector == "20261207-rsa").unwrap();
        assert_eq!(old.retired, Some(day + 60));
        assert!(published(old, day + 60 + KEEP_PUBLISHED - 1));
        assert!(!published(old, day + 60 + KEEP_PUBLISHED));
    }
}
