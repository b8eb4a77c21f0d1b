//! The box's WireGuard key pair: made the first time it is needed, kept in
//! `data_dir/keys/wireguard.key` (mode 0600, written atomically and synced), never shown
//! again; the public half is what another site's admin or a device is given. Keys are
//! written as WireGuard's own tools write them: 32 bytes in standard base64.

use std::io;
use std::path::{Path, PathBuf};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use x25519_dalek::{PublicKey, StaticSecret};

/// A WireGuard key pair.
#[derive(Clone)]
pub struct KeyPair {
    private: [u8; 32],
    public: [u8; 32],
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("public", &encode(&self.public))
            .finish_non_exhaustive()
    }
}

impl KeyPair {
    /// A new random key pair.
    pub fn generate() -> KeyPair {
        let mut private = [0u8; 32];
        OsRng.fill_bytes(&mut private);
        KeyPair::from_private(private)
    }

    /// The pair of `private` (clamped as X25519 does).
    pub fn from_private(private: [u8; 32]) -> KeyPair {
        let secret = StaticSecret::from(private);
        KeyPair {
            private: secret.to_bytes(),
            public: *PublicKey::from(&secret).as_bytes(),
        }
    }

    pub fn private(&self) -> [u8; 32] {
        self.private
    }

    pub fn public(&self) -> [u8; 32] {
        self.public
    }

    /// The public key as it is shown and exchanged (base64).
    pub fn public_text(&self) -> String {
        encode(&self.public)
    }

    /// The private key as a device's configuration carries it (base64).
    pub fn private_text(&self) -> String {
        encode(&self.private)
    }
}

/// Where the box's key is kept.
pub fn key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("keys").join("wireguard.key")
}

/// The box's key pair, if it has been made.
pub fn load(data_dir: &Path) -> io::Result<Option<KeyPair>> {
    let path = key_path(data_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let private = decode(text.trim()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} does not hold a WireGuard key", path.display()),
        )
    })?;
    Ok(Some(KeyPair::from_private(private)))
}

/// The box's key pair, made and kept now if it has none yet.
pub fn load_or_make(data_dir: &Path) -> io::Result<KeyPair> {
    if let Some(pair) = load(data_dir)? {
        return Ok(pair);
    }
    let pair = KeyPair::generate();
    let path = key_path(data_dir);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    officebox_store::write_atomic(
        &path,
        format!("{}\n", pair.private_text()).as_bytes(),
        0o600,
    )
    .map_err(io::Error::other)?;
    tracing::info!(message = "vpn: the box's WireGuard key was made", public = %pair.public_text());
    Ok(pair)
}

/// A key as text (standard base64, 44 characters).
pub fn encode(key: &[u8; 32]) -> String {
    STANDARD.encode(key)
}

/// A key from its text; `None` unless it is 32 bytes of standard base64.
pub fn decode(text: &str) -> Option<[u8; 32]> {
    STANDARD.decode(text.trim()).ok()?.try_into().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_made_once_kept_private_and_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_none());
        let made = load_or_make(dir.path()).unwrap();
        let again = load_or_make(dir.path()).unwrap();
        assert_eq!(made.public(), again.public());
        assert_eq!(made.private(), again.private());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(key_path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // The Debug form names the public key only.
        let shown = format!("{made:?}");
        assert!(shown.contains(&made.public_text()));
        assert!(!shown.contains(&made.private_text()));
    }

    #[test]
    fn keys_read_as_wireguards_tools_write_them() {
        // RFC 7748's test vector (Alice): the private key and its public key.
        let private = "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=";
        let pair = KeyPair::from_private(decode(private).unwrap());
        assert_eq!(
            pair.public_text(),
            "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo="
        );
        for bad in [
            "",
            "abc",
            "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTm==",
            "!!!!",
        ] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_damaged_key_file_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("keys")).unwrap();
        std::fs::write(key_path(dir.path()), "not a key\n").unwrap();
        assert!(load_or_make(dir.path()).is_err());
    }
}
