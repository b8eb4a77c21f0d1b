//! DKIM signing of mail leaving for other domains (RFC 6376, ed25519 by RFC 8463): every
//! message whose From is the company's domain (or a name under it) is signed with each
//! key that signs now, an ed25519 and an RSA one, so that a receiver knowing only RSA
//! still finds a signature it can check. The keys come from the state database
//! (`officebox_secrets::dkim` makes them); their public halves are in the zone.

use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256, SigningKey};
use mail_auth::common::headers::HeaderWriter as _;
use mail_auth::dkim::{DkimSigner, Done};
use mail_parser::MessageParser;
use officebox_store::DkimKey;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tracing::warn;

/// The header fields signed, those of them the message has (relaxed canonicalization of
/// header and body).
const SIGNED: [&str; 13] = [
    "From",
    "To",
    "Subject",
    "Cc",
    "Date",
    "Message-ID",
    "Reply-To",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Unsubscribe",
];

enum Key {
    Rsa(DkimSigner<RsaKey<Sha256>, Done>),
    Ed25519(DkimSigner<Ed25519Key, Done>),
}

fn signer<T: SigningKey>(key: T, domain: &str, selector: &str) -> DkimSigner<T, Done> {
    DkimSigner::from_key(key)
        .domain(domain.to_ascii_lowercase())
        .selector(selector)
        .headers(SIGNED)
}

/// The keys that sign now, ready to sign.
pub struct Signer {
    domain: String,
    keys: Vec<(String, Key)>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let selectors: Vec<&str> = self.keys.iter().map(|(s, _)| s.as_str()).collect();
        f.debug_struct("Signer")
            .field("domain", &self.domain)
            .field("selectors", &selectors)
            .finish()
    }
}

impl Signer {
    /// A signer for `domain` with the keys of `keys` that are not retired (a key that
    /// does not load is left out, and said).
    pub fn new(domain: &str, keys: &[DkimKey]) -> Signer {
        let mut loaded = Vec::new();
        for k in keys.iter().filter(|k| k.retired.is_none()) {
            let key = match k.algorithm.as_str() {
                "rsa" => RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs8(
                    PrivatePkcs8KeyDer::from(k.private.as_slice()),
                ))
                .map(|s| Key::Rsa(signer(s, domain, &k.selector)))
                .map_err(|e| e.to_string()),
                "ed25519" => Ed25519Key::from_pkcs8_der(&k.private)
                    .map(|s| Key::Ed25519(signer(s, domain, &k.selector)))
                    .map_err(|e| e.to_string()),
                other => Err(format!("unknown algorithm {other}")),
            };
            match key {
                Ok(key) => loaded.push((k.selector.clone(), key)),
                Err(error) => {
                    warn!(message = "smtp out: a DKIM key does not load; not signing with it", selector = %k.selector, %error);
                }
            }
        }
        Signer {
            domain: domain.to_ascii_lowercase(),
            keys: loaded,
        }
    }

    /// The selectors it signs with.
    pub fn selectors(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(s, _)| s.as_str())
    }

    /// Whether mail from `address` is ours to sign.
    fn ours(&self, address: &str) -> bool {
        let Some((_, domain)) = address.rsplit_once('@') else {
            return false;
        };
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        domain == self.domain || domain.ends_with(&format!(".{}", self.domain))
    }

    /// `message` with a DKIM-Signature per key in front, when its From is ours and it
    /// is a message at all; otherwise `None` (sent as it is).
    pub fn sign(&self, message: &[u8]) -> Option<Vec<u8>> {
        if self.keys.is_empty() {
            return None;
        }
        let headers = MessageParser::default().parse_headers(message)?;
        let from = headers.from()?.first()?.address()?;
        if !self.ours(from) {
            return None;
        }
        let mut out = Vec::with_capacity(message.len() + 1200);
        for (selector, key) in &self.keys {
            let signature = match key {
                Key::Rsa(s) => s.sign(message),
                Key::Ed25519(s) => s.sign(message),
            };
            match signature {
                Ok(s) => s.write_header(&mut out),
                Err(error) => {
                    warn!(message = "smtp out: could not sign a message", %selector, %error);
                }
            }
        }
        out.extend_from_slice(message);
        Some(out)
    }
}
