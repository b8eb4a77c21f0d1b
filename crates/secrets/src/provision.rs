//! A provisioned phone's own credentials. Each assigned phone has a random secret (in the
//! state database, `officebox_store::ProvisionedPhone`); its SIP password and its
//! password for fetching its files are made from it, so neither is the user's password
//! and "set this phone up again" replaces both. The phone signs in (SIP digest and HTTP
//! Basic alike) with its MAC as user name.

use ring::digest::{SHA256, digest};

use crate::{generate, hex, sip_ha1};

/// A new phone's secret and one-time token.
pub fn fresh() -> (String, String) {
    (
        format!("{}{}", generate(), generate()),
        format!("{}{}", generate(), generate()),
    )
}

/// The phone's SIP password (digest user name: its MAC).
pub fn sip_password(secret: &str) -> String {
    derived("sip", secret)
}

/// The phone's password for fetching its own files over HTTPS (user name: its MAC).
pub fn http_password(secret: &str) -> String {
    derived("http", secret)
}

/// The phone's digest HA1s (MD5, SHA-256) in `realm`.
pub fn sip_ha1s(mac: &str, realm: &str, secret: &str) -> (String, String) {
    sip_ha1(mac, realm, &sip_password(secret))
}

/// 24 hex digits of SHA-256 over `what` and the secret: letters and digits any phone's
/// configuration file and keypad can hold.
fn derived(what: &str, secret: &str) -> String {
    let mut h = hex(digest(&SHA256, format!("officebox-{what}:{secret}").as_bytes()).as_ref());
    h.truncate(24);
    h
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn each_password_is_its_own_and_each_phone_its_own() {
        let (s, t) = fresh();
        let (s2, _) = fresh();
        assert_ne!(s, t);
        assert_ne!(s, s2);
        assert_eq!(sip_password(&s).len(), 24);
        assert_ne!(sip_password(&s), http_password(&s));
        assert_ne!(sip_password(&s), sip_password(&s2));
        assert_eq!(sip_password(&s), sip_password(&s));
    }
}
