//! Password hashing and generation: see `officebox_secrets`.

use anyhow::Result;

/// The argon2id PHC string of `secret`, with a fresh random salt.
pub fn hash(secret: &str) -> Result<String> {
    Ok(officebox_secrets::hash(secret)?)
}

/// A random password of 16 characters that reads unambiguously.
pub fn generate() -> String {
    officebox_secrets::generate()
}
