//! Password hashing (argon2id) and generation, for users and voicemail PINs.

use anyhow::{Result, anyhow};
use argon2::Argon2;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHasher, SaltString};

/// The argon2id PHC string of `secret`, with a fresh random salt.
pub fn hash(secret: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow!("cannot hash the password: {e}"))
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

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::PasswordVerifier;
    use argon2::password_hash::PasswordHash;

    #[test]
    fn hashes_verify_and_differ() {
        let a = hash("secret").unwrap();
        let b = hash("secret").unwrap();
        assert_ne!(a, b, "salts must differ");
        let parsed = PasswordHash::new(&a).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"secret", &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"wrong", &parsed)
                .is_err()
        );
        assert!(officebox_config::parse("t", &format!(
            "[network]\ndomain = \"example.com\"\nmanage = false\n[dns]\nuse_upstream = false\n[[users]]\nlogin = \"a\"\npassword = \"{a}\"\nadmin = true\n"
        )).is_ok());
    }

    #[test]
    fn generated_passwords_are_long_and_distinct() {
        let (a, b) = (generate(), generate());
        assert_eq!(a.chars().count(), 16);
        assert_ne!(a, b);
    }
}
