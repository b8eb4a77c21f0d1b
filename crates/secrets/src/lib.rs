//! Passwords and PINs are stored only as argon2id hashes; phones need digest secrets
//! (HA1 = H(login:realm:password), MD5 and SHA-256, RFC 3261 and RFC 8760), computed
//! when the password is set. The command line and the admin pages set passwords the same
//! way through [`set_password`].

pub mod dkim;
pub mod login;
pub mod provision;
pub mod tls;
pub mod wireguard;

use argon2::Argon2;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use md5::{Digest as _, Md5};
use officebox_config::edit::{self, EditError};

/// Why a secret could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error(transparent)]
    Edit(#[from] EditError),
}

/// The argon2id PHC string of `secret`, with a fresh random salt.
pub fn hash(secret: &str) -> Result<String, SecretError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| SecretError::Hash(e.to_string()))
}

/// Whether `secret` matches the stored argon2 `hash` (blocking: about 20 ms).
pub fn verify(hash: &str, secret: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(secret.as_bytes(), &h)
            .is_ok()
    })
}

/// A random password of 16 characters that reads unambiguously (no 0/O, 1/l/I).
pub fn generate() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The phone digest secrets for `login` in `realm`: (MD5, SHA-256) HA1s.
pub fn sip_ha1(login: &str, realm: &str, password: &str) -> (String, String) {
    let input = format!("{login}:{realm}:{password}");
    (
        hex(&Md5::digest(input.as_bytes())),
        hex(ring::digest::digest(&ring::digest::SHA256, input.as_bytes()).as_ref()),
    )
}

/// The config text with `login`'s password set: the argon2 hash, and the phone secrets
/// for the config's domain.
pub fn set_password(text: &str, login: &str, password: &str) -> Result<String, SecretError> {
    let text = edit::set_password(text, login, &hash(password)?)?;
    with_sip_secret(&text, login, password)
}

/// The config text with `login`'s phone secrets for `password` (realm: the domain): for
/// the login as digest user name, and for the user's extension as well, since most phones
/// are set up with the extension as their user.
pub fn with_sip_secret(text: &str, login: &str, password: &str) -> Result<String, SecretError> {
    let Some(realm) = edit::domain(text) else {
        return Ok(text.to_string());
    };
    let (md5, sha256) = sip_ha1(login, &realm, password);
    let text = edit::set_sip_secret(text, login, &md5, &sha256)?;
    let ext_secret = edit::user_extension(&text, login).map(|extension| {
        let (md5, sha256) = sip_ha1(&extension, &realm, password);
        officebox_config::ExtSecret {
            extension,
            md5,
            sha256,
        }
        .text()
    });
    Ok(edit::set_user_setting(
        &text,
        login,
        "sip_ext_secret",
        ext_secret.as_deref(),
    )?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ() {
        let a = hash("secret").unwrap();
        assert_ne!(a, hash("secret").unwrap(), "salts must differ");
        assert!(verify(&a, "secret"));
        assert!(!verify(&a, "wrong"));
        assert!(!verify("not a hash", "secret"));
    }

    #[test]
    fn phone_secrets_are_the_digest_ha1s() {
        let (md5, sha) = sip_ha1("alice", "office.test", "demo-alice");
        assert_eq!(md5, "d7f4ca4adcbbf28da0a920abbf709926");
        assert_eq!(
            sha,
            "da6641ae589c47bd376ac90b759b5b1a36d3a264e2e5d8cc5587f0349719d2e6"
        );
    }

    #[test]
    fn the_phone_secret_is_made_for_the_extension_too() {
        let text =
            "[network]\ndomain = \"office.test\"\n[[users]]\nlogin = \"alice\"\nextension = 101\n";
        let text = with_sip_secret(text, "alice", "demo-alice").unwrap();
        let (md5, sha) = sip_ha1("101", "office.test", "demo-alice");
        assert!(
            text.contains(&format!("sip_ext_secret = \"101:{md5}:{sha}\"")),
            "{text}"
        );
        let none = "[network]\ndomain = \"office.test\"\n[[users]]\nlogin = \"bob\"\n";
        assert!(
            !with_sip_secret(none, "bob", "pw")
                .unwrap()
                .contains("sip_ext_secret")
        );
    }

    #[test]
    fn generated_passwords_are_long_and_distinct() {
        let (a, b) = (generate(), generate());
        assert_eq!(a.chars().count(), 16);
        assert_ne!(a, b);
    }
}
