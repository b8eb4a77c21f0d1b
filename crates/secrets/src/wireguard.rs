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

/// Where the key the box made for device `name` (`[[vpn.peers]]`) is kept.
pub fn device_key_path(data_dir: &Path, name: &str) -> PathBuf {
    data_dir
        .join("keys")
        .join("devices")
        .join(format!("{name}.key"))
}

/// What a device key file starts with (the format, should it ever change).
const DEVICE_MAGIC: &str = "officebox-device-key-1 ";

/// The key sealing the devices' keys: SHA-256 of a label and the box's private key, so
/// that a copy of `keys/devices` alone (a backup of the wrong folder) gives nothing away.
fn sealing_key(box_key: &KeyPair) -> Result<ring::aead::LessSafeKey, io::Error> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"officebox device keys\0");
    ctx.update(&box_key.private());
    let key = ring::aead::UnboundKey::new(&ring::aead::CHACHA20_POLY1305, ctx.finish().as_ref())
        .map_err(|_| io::Error::other("cannot make the sealing key"))?;
    Ok(ring::aead::LessSafeKey::new(key))
}

/// Device `name`'s key pair, sealed under the box's key, if the box has made one.
pub fn load_device(data_dir: &Path, name: &str, box_key: &KeyPair) -> io::Result<Option<KeyPair>> {
    let path = device_key_path(data_dir, name);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let bad = |why: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {why}", path.display()),
        )
    };
    let sealed = text
        .trim()
        .strip_prefix(DEVICE_MAGIC.trim_end())
        .map(str::trim)
        .and_then(|b| STANDARD.decode(b).ok())
        .ok_or_else(|| bad("not a device key file"))?;
    if sealed.len() < 12 {
        return Err(bad("too short"));
    }
    let (nonce, body) = sealed.split_at(12);
    let nonce =
        ring::aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| bad("a bad nonce"))?;
    let mut body = body.to_vec();
    let plain = sealing_key(box_key)?
        .open_in_place(nonce, ring::aead::Aad::from(name.as_bytes()), &mut body)
        .map_err(|_| bad("sealed under another box key, or damaged"))?;
    let private: [u8; 32] = plain
        .try_into()
        .map_err(|_| bad("does not hold a WireGuard key"))?;
    Ok(Some(KeyPair::from_private(private)))
}

/// Device `name`'s key pair: the one kept, else a new one made and kept now. Two
/// callers at once (the service and the command line) end with the same key: the file
/// is created only if it is not there, and then read.
pub fn device_key(data_dir: &Path, name: &str, box_key: &KeyPair) -> io::Result<KeyPair> {
    if let Some(pair) = load_device(data_dir, name, box_key)? {
        return Ok(pair);
    }
    let path = device_key_path(data_dir, name);
    let (pair, text) = sealed_device_key(name, box_key)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Written and synced beside it, then linked in place: a link never replaces a file.
    // A name of this call's own (the service and a page of the same process may make
    // one at once).
    let mut salt = [0u8; 8];
    OsRng.fill_bytes(&mut salt);
    let tmp = path.with_extension(format!("new-{}", u64::from_le_bytes(salt)));
    officebox_store::write_atomic(&tmp, text.as_bytes(), 0o600).map_err(io::Error::other)?;
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            tracing::info!(message = "vpn: a device key was made", device = %name, public = %pair.public_text());
            Ok(pair)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => load_device(data_dir, name, box_key)?
            .ok_or_else(|| io::Error::other("the device key vanished as it was made")),
        Err(e) => Err(e),
    }
}

/// Deletes the key made for device `name` (removed from the config), so that a device
/// added later under that name never gets the old key back.
pub fn forget_device(data_dir: &Path, name: &str) -> io::Result<()> {
    match std::fs::remove_file(device_key_path(data_dir, name)) {
        Ok(()) => {
            tracing::info!(message = "vpn: the key of a removed device was deleted", device = %name);
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// A new key pair for device `name`, sealed under the box's key, and the file's text.
fn sealed_device_key(name: &str, box_key: &KeyPair) -> io::Result<(KeyPair, String)> {
    let pair = KeyPair::generate();
    let mut nonce = [0u8; 12];
    OsRng.fill_bytes(&mut nonce);
    let mut body = pair.private().to_vec();
    sealing_key(box_key)?
        .seal_in_place_append_tag(
            ring::aead::Nonce::assume_unique_for_key(nonce),
            ring::aead::Aad::from(name.as_bytes()),
            &mut body,
        )
        .map_err(|_| io::Error::other("cannot seal the device key"))?;
    let mut sealed = nonce.to_vec();
    sealed.extend_from_slice(&body);
    let text = format!("{DEVICE_MAGIC}{}\n", STANDARD.encode(sealed));
    Ok((pair, text))
}

/// A new key pair for device `name`, replacing any it had (the old one stops working
/// when the tunnels next read the keys, within seconds), sealed and kept.
pub fn new_device_key(data_dir: &Path, name: &str, box_key: &KeyPair) -> io::Result<KeyPair> {
    let (pair, text) = sealed_device_key(name, box_key)?;
    let path = device_key_path(data_dir, name);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    officebox_store::write_atomic(&path, text.as_bytes(), 0o600).map_err(io::Error::other)?;
    tracing::info!(message = "vpn: a device was given a new key", device = %name, public = %pair.public_text());
    Ok(pair)
}

/// The WireGuard configuration of device `peer` (`wg-quick`'s format, which the
/// WireGuard apps import as text or a QR code): its key (the box's making, unless it has
/// its own: then a placeholder for the admin to fill in on the device), its tunnel
/// address, the box as its DNS (and the office's domain to search), and the box as its
/// one peer at `endpoint` carrying the office's networks (split) or everything (full).
pub fn client_config(
    config: &officebox_config::Config,
    peer: &officebox_config::model::VpnPeer,
    box_key: &KeyPair,
    endpoint: Option<std::net::Ipv4Addr>,
) -> io::Result<String> {
    use std::fmt::Write as _;
    let private = match peer.public_key {
        Some(_) => "(the key this device made: it never leaves the device)".to_string(),
        None => device_key(&config.data_dir, &peer.name, box_key)?.private_text(),
    };
    let lan = config.network.lan.net;
    let tunnel = config.vpn.address;
    let allowed = if peer.full_tunnel {
        "0.0.0.0/0".to_string()
    } else {
        // (The other sites are not: a device reaches this office, not through it.)
        let nets = [
            format!("{}/{}", lan.network(), lan.prefix),
            format!("{}/{}", tunnel.network(), tunnel.prefix),
        ];
        nets.join(", ")
    };
    let mut t = String::new();
    let _ = writeln!(
        t,
        "# {} ({}) at {}: import into the WireGuard app",
        peer.name, peer.user, config.network.domain
    );
    let _ = writeln!(t, "[Interface]");
    let _ = writeln!(t, "PrivateKey = {private}");
    let _ = writeln!(t, "Address = {}/32", peer.address);
    let _ = writeln!(t, "DNS = {}, {}", lan.address, config.network.domain);
    let _ = writeln!(t);
    let _ = writeln!(t, "[Peer]");
    let _ = writeln!(t, "PublicKey = {}", box_key.public_text());
    match endpoint {
        Some(ip) => {
            let _ = writeln!(t, "Endpoint = {ip}:{}", config.vpn.listen_port);
        }
        None => {
            let _ = writeln!(
                t,
                "Endpoint = (the office's WAN address, not known yet):{}",
                config.vpn.listen_port
            );
        }
    }
    let _ = writeln!(t, "AllowedIPs = {allowed}");
    let _ = writeln!(t, "PersistentKeepalive = 25");
    Ok(t)
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
    fn a_device_key_is_sealed_under_the_box_key_and_replaced_on_demand() {
        let dir = tempfile::tempdir().unwrap();
        let boxed = load_or_make(dir.path()).unwrap();
        let made = device_key(dir.path(), "alice-laptop", &boxed).unwrap();
        let again = device_key(dir.path(), "alice-laptop", &boxed).unwrap();
        assert_eq!(made.private(), again.private());
        let file = std::fs::read_to_string(device_key_path(dir.path(), "alice-laptop")).unwrap();
        assert!(!file.contains(&made.private_text()), "kept sealed: {file}");
        // Another box's key opens nothing (nor does the file under another device's name).
        let other = KeyPair::generate();
        assert!(load_device(dir.path(), "alice-laptop", &other).is_err());
        std::fs::copy(
            device_key_path(dir.path(), "alice-laptop"),
            device_key_path(dir.path(), "bob-phone"),
        )
        .unwrap();
        assert!(load_device(dir.path(), "bob-phone", &boxed).is_err());
        // A device no longer in the config loses its key (a new one of that name gets
        // another).
        forget_device(dir.path(), "bob-phone").unwrap();
        forget_device(dir.path(), "bob-phone").unwrap();
        assert!(!device_key_path(dir.path(), "bob-phone").exists());
        assert!(device_key_path(dir.path(), "alice-laptop").exists());
        // A new key replaces the old.
        let new = new_device_key(dir.path(), "alice-laptop", &boxed).unwrap();
        assert_ne!(new.public(), made.public());
        let read = load_device(dir.path(), "alice-laptop", &boxed)
            .unwrap()
            .unwrap();
        assert_eq!(read.public(), new.public());
    }

    #[test]
    fn a_damaged_key_file_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("keys")).unwrap();
        std::fs::write(key_path(dir.path()), "not a key\n").unwrap();
        assert!(load_or_make(dir.path()).is_err());
    }
}
