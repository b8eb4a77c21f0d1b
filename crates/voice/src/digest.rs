//! HTTP Digest authentication as SIP uses it (RFC 3261 section 22, RFC 7616 with
//! RFC 8760's SHA-256 for SIP). The box stores no password, only HA1 = H(user:realm:pass)
//! for MD5 and SHA-256 per user (set by `officebox user add/passwd`).
//!
//! Nonces are stateless: a timestamp and an HMAC of it under a key made at start, so a
//! nonce is good for [`NONCE_LIFETIME`] and then answered with `stale=true` (the phone
//! retries without asking its user). Responses are compared in constant time.

use std::time::{SystemTime, UNIX_EPOCH};

use md5::{Digest as _, Md5};
use ring::hmac;

/// How long a nonce is accepted.
pub const NONCE_LIFETIME: u64 = 300;

/// The two algorithms offered (RFC 8760).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha256,
    Md5,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Md5 => "MD5",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Algorithm> {
        match s.to_ascii_uppercase().as_str() {
            "SHA-256" => Some(Algorithm::Sha256),
            "MD5" | "" => Some(Algorithm::Md5),
            _ => None,
        }
    }

    /// The hash of `data`, in lowercase hex.
    pub fn hex(self, data: &str) -> String {
        let bytes: Vec<u8> = match self {
            Algorithm::Md5 => Md5::digest(data.as_bytes()).to_vec(),
            Algorithm::Sha256 => ring::digest::digest(&ring::digest::SHA256, data.as_bytes())
                .as_ref()
                .to_vec(),
        };
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// HA1 for a user, as the config stores it.
pub fn ha1(algorithm: Algorithm, user: &str, realm: &str, password: &str) -> String {
    algorithm.hex(&format!("{user}:{realm}:{password}"))
}

/// The `response` of a digest answer (RFC 7616 section 3.4.1) from HA1: with
/// `qop=auth`, `auth` holds the nonce count and the client's nonce.
pub fn response(
    algorithm: Algorithm,
    ha1: &str,
    nonce: &str,
    method: &str,
    uri: &str,
    auth: Option<(&str, &str)>,
) -> String {
    let ha2 = algorithm.hex(&format!("{method}:{uri}"));
    match auth {
        Some((nc, cnonce)) => algorithm.hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")),
        None => algorithm.hex(&format!("{ha1}:{nonce}:{ha2}")),
    }
}

/// The parameters of an `Authorization` header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: String,
    pub qop: Option<String>,
    pub nc: Option<String>,
    pub cnonce: Option<String>,
}

/// Parses `Digest username="..", realm="..", ...`; `None` when it is not Digest or a
/// required parameter is missing.
pub fn parse_credentials(value: &str) -> Option<Credentials> {
    let v = value.trim();
    let (scheme, rest) = v.split_once(char::is_whitespace)?;
    if !scheme.eq_ignore_ascii_case("digest") {
        return None;
    }
    let mut c = Credentials::default();
    for (k, val) in params(rest) {
        match k.to_ascii_lowercase().as_str() {
            "username" => c.username = val,
            "realm" => c.realm = val,
            "nonce" => c.nonce = val,
            "uri" => c.uri = val,
            "response" => c.response = val.to_ascii_lowercase(),
            "algorithm" => c.algorithm = val,
            "qop" => c.qop = Some(val),
            "nc" => c.nc = Some(val),
            "cnonce" => c.cnonce = Some(val),
            _ => {}
        }
    }
    (!c.username.is_empty() && !c.nonce.is_empty() && !c.uri.is_empty() && !c.response.is_empty())
        .then_some(c)
}

/// `k=v, k="v, with comma"` pairs.
pub(crate) fn params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((k, after)) = rest.split_once('=') else {
            break;
        };
        let k = k.trim().trim_start_matches(',').trim().to_string();
        let after = after.trim_start();
        let (val, next) = if let Some(q) = after.strip_prefix('"') {
            let mut end = None;
            let mut escaped = false;
            for (i, ch) in q.char_indices() {
                match ch {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '"' => {
                        end = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            // The closing quote is one byte: what follows it starts right after.
            let Some((value, next)) = end.and_then(|e| q.split_at_checked(e)) else {
                break;
            };
            (
                value.replace("\\\"", "\""),
                next.strip_prefix('"').unwrap_or(next),
            )
        } else {
            let (value, next) = after
                .split_once(',')
                .map_or((after, ""), |(v, _)| after.split_at(v.len()));
            (value.trim().to_string(), next)
        };
        out.push((k, val));
        rest = next.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

/// Makes and checks nonces; verifies responses.
#[derive(Debug)]
pub struct Authenticator {
    key: hmac::Key,
    pub realm: String,
}

/// What a credentials check came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// Right password, old nonce: challenge again with stale=true.
    Stale,
    Wrong,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Authenticator {
    pub fn new(realm: &str) -> Authenticator {
        let mut secret = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut secret);
        Authenticator {
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
            realm: realm.to_string(),
        }
    }

    fn nonce_at(&self, t: u64) -> String {
        let tag = hmac::sign(&self.key, t.to_string().as_bytes());
        let mac: String = tag
            .as_ref()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{t:x}.{mac}")
    }

    /// `Some(age)` for a nonce we made.
    fn nonce_age(&self, nonce: &str) -> Option<u64> {
        let (t, _) = nonce.split_once('.')?;
        let t = u64::from_str_radix(t, 16).ok()?;
        let expected = self.nonce_at(t);
        constant_eq(expected.as_bytes(), nonce.as_bytes()).then(|| now().saturating_sub(t))
    }

    /// The `WWW-Authenticate` values of a challenge: MD5 first, then SHA-256. RFC 8760
    /// lets the server order them by its preference; many phones (and sipp) read only
    /// the first and know only MD5, while a phone that knows SHA-256 and looks at both
    /// may still pick it.
    pub fn challenges(&self, stale: bool) -> Vec<String> {
        let nonce = self.nonce_at(now());
        [Algorithm::Md5, Algorithm::Sha256]
            .iter()
            .map(|a| {
                format!(
                    "Digest realm=\"{}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"{}",
                    self.realm,
                    a.name(),
                    if stale { ", stale=true" } else { "" }
                )
            })
            .collect()
    }

    /// Checks `c` for `method`, given the user's HA1 for the algorithm the phone used
    /// (looked up by `ha1_for`).
    pub fn verify(
        &self,
        c: &Credentials,
        method: &str,
        ha1_for: impl Fn(Algorithm) -> Option<String>,
    ) -> Verdict {
        let Some(algorithm) = Algorithm::parse(&c.algorithm) else {
            return Verdict::Wrong;
        };
        if c.realm != self.realm {
            return Verdict::Wrong;
        }
        let Some(age) = self.nonce_age(&c.nonce) else {
            return Verdict::Wrong;
        };
        let Some(ha1) = ha1_for(algorithm) else {
            return Verdict::Wrong;
        };
        let auth = match c.qop.as_deref() {
            Some(q) if q.eq_ignore_ascii_case("auth") => {
                let (Some(nc), Some(cnonce)) = (&c.nc, &c.cnonce) else {
                    return Verdict::Wrong;
                };
                Some((nc.as_str(), cnonce.as_str()))
            }
            Some(_) => return Verdict::Wrong,
            None => None,
        };
        let expected = response(algorithm, &ha1, &c.nonce, method, &c.uri, auth);
        if !constant_eq(expected.as_bytes(), c.response.as_bytes()) {
            return Verdict::Wrong;
        }
        if age > NONCE_LIFETIME {
            Verdict::Stale
        } else {
            Verdict::Ok
        }
    }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rfc_2617_example_md5() {
        // RFC 2617 section 3.5's example, with HA1 from its password.
        let ha1 = ha1(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
        );
        let ha2 = Algorithm::Md5.hex("GET:/dir/index.html");
        let r = Algorithm::Md5.hex(&format!(
            "{ha1}:dcd98b7102dd2f0e8b11d0f600bfb0c093:00000001:0a4f113b:auth:{ha2}"
        ));
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    fn answer(a: &Authenticator, challenge: &str, alg: Algorithm, password: &str) -> Credentials {
        let nonce = challenge
            .split("nonce=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let ha1 = ha1(alg, "alice", &a.realm, password);
        let ha2 = alg.hex("REGISTER:sip:office.test");
        let response = alg.hex(&format!("{ha1}:{nonce}:00000001:xyz:auth:{ha2}"));
        let header = format!(
            "Digest username=\"alice\", realm=\"{}\", nonce=\"{nonce}\", uri=\"sip:office.test\", \
             response=\"{response}\", algorithm={}, qop=auth, nc=00000001, cnonce=\"xyz\"",
            a.realm,
            alg.name()
        );
        parse_credentials(&header).unwrap()
    }

    #[test]
    fn a_challenge_answered_with_the_right_password_passes_for_both_algorithms() {
        let a = Authenticator::new("office.test");
        let ch = a.challenges(false);
        assert!(ch[0].contains("algorithm=MD5") && ch[1].contains("algorithm=SHA-256"));
        for alg in [Algorithm::Sha256, Algorithm::Md5] {
            let stored = |x: Algorithm| Some(ha1(x, "alice", "office.test", "demo-alice"));
            let good = answer(&a, &ch[0], alg, "demo-alice");
            assert_eq!(a.verify(&good, "REGISTER", stored), Verdict::Ok);
            let bad = answer(&a, &ch[0], alg, "guess");
            assert_eq!(a.verify(&bad, "REGISTER", stored), Verdict::Wrong);
            assert_eq!(
                a.verify(&good, "INVITE", stored),
                Verdict::Wrong,
                "method bound"
            );
        }
        // A nonce from another run (another key) is not ours.
        let other = Authenticator::new("office.test");
        let c = answer(
            &other,
            &other.challenges(false)[0],
            Algorithm::Md5,
            "demo-alice",
        );
        let stored = |x: Algorithm| Some(ha1(x, "alice", "office.test", "demo-alice"));
        assert_eq!(a.verify(&c, "REGISTER", stored), Verdict::Wrong);
    }

    #[test]
    fn old_nonces_are_stale() {
        let a = Authenticator::new("office.test");
        let old = a.nonce_at(now() - NONCE_LIFETIME - 10);
        let ch = format!("Digest nonce=\"{old}\"");
        let c = answer(&a, &ch, Algorithm::Md5, "pw");
        let stored = |x: Algorithm| Some(ha1(x, "alice", "office.test", "pw"));
        assert_eq!(a.verify(&c, "REGISTER", stored), Verdict::Stale);
    }

    #[test]
    fn credentials_parse_with_quoted_commas_and_odd_spacing() {
        let c = parse_credentials(
            "Digest username=\"al,ice\",realm=\"r\" , nonce=\"n\",uri=\"sip:x\",response=\"AB\",algorithm=MD5",
        )
        .unwrap();
        assert_eq!(c.username, "al,ice");
        assert_eq!(c.response, "ab");
        assert!(parse_credentials("Basic YWxhZGRpbjpvcGVuc2VzYW1l").is_none());
        assert!(parse_credentials("Digest username=\"x").is_none());
    }
}
