//! The box as a digest client (RFC 3261 section 22.2, RFC 7616, RFC 8760): reading the
//! provider's challenges, choosing one (SHA-256 before MD5 when both are offered), and
//! answering it with the trunk's password. The hashes are `crate::digest`'s, the same the
//! registrar checks phones with.

use crate::digest::{self, Algorithm};

/// One `WWW-Authenticate` / `Proxy-Authenticate` challenge the box can answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Algorithm,
    /// `MD5-sess` / `SHA-256-sess`: HA1 includes the nonces.
    pub sess: bool,
    /// The server offers `qop=auth` (answered with cnonce and nc).
    pub qop_auth: bool,
    /// The server says our last answer was right but its nonce too old.
    pub stale: bool,
    /// The algorithm as the server wrote it (echoed back).
    algorithm_text: Option<String>,
}

/// Why no challenge of a 401/407 could be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unanswerable {
    /// No Digest challenge at all.
    NoChallenge,
    /// Digest, but only with algorithms (or qop values) the box does not know.
    Unsupported(String),
}

impl std::fmt::Display for Unanswerable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unanswerable::NoChallenge => f.write_str("the provider sent no digest challenge"),
            Unanswerable::Unsupported(what) => {
                write!(
                    f,
                    "the provider asks for digest {what}, which officebox does not do"
                )
            }
        }
    }
}

/// Reads one challenge; `Err` says what the box cannot answer.
fn parse(value: &str) -> Result<Challenge, Unanswerable> {
    let v = value.trim();
    let (scheme, rest) = v.split_once(char::is_whitespace).unwrap_or((v, ""));
    if !scheme.eq_ignore_ascii_case("digest") {
        return Err(Unanswerable::NoChallenge);
    }
    let mut c = Challenge {
        realm: String::new(),
        nonce: String::new(),
        opaque: None,
        algorithm: Algorithm::Md5,
        sess: false,
        qop_auth: false,
        stale: false,
        algorithm_text: None,
    };
    let mut qop: Option<String> = None;
    for (k, val) in digest::params(rest) {
        match k.to_ascii_lowercase().as_str() {
            "realm" => c.realm = val,
            "nonce" => c.nonce = val,
            "opaque" => c.opaque = Some(val),
            "stale" => c.stale = val.eq_ignore_ascii_case("true"),
            "qop" => qop = Some(val),
            "algorithm" => {
                let upper = val.to_ascii_uppercase();
                let (base, sess) = match upper.strip_suffix("-SESS") {
                    Some(base) => (base.to_string(), true),
                    None => (upper, false),
                };
                c.algorithm = Algorithm::parse(&base)
                    .ok_or_else(|| Unanswerable::Unsupported(format!("algorithm {val}")))?;
                c.sess = sess;
                c.algorithm_text = Some(val);
            }
            _ => {}
        }
    }
    if c.nonce.is_empty() {
        return Err(Unanswerable::NoChallenge);
    }
    if let Some(q) = qop {
        let offered: Vec<String> = q
            .split(',')
            .map(|o| o.trim().to_ascii_lowercase())
            .collect();
        if offered.iter().any(|o| o == "auth") {
            c.qop_auth = true;
        } else if !offered.iter().all(String::is_empty) {
            // auth-int only: the box would have to hash bodies it does not send.
            return Err(Unanswerable::Unsupported(format!("qop={q}")));
        }
    }
    Ok(c)
}

/// The challenge to answer among `values` (every WWW-/Proxy-Authenticate of a response):
/// SHA-256 when offered, else MD5.
pub fn choose<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Challenge, Unanswerable> {
    let mut best: Option<Challenge> = None;
    let mut why = Unanswerable::NoChallenge;
    for v in values {
        match parse(v) {
            Ok(c) => {
                let better = best.as_ref().is_none_or(|b| {
                    b.algorithm == Algorithm::Md5 && c.algorithm == Algorithm::Sha256
                });
                if better {
                    best = Some(c);
                }
            }
            Err(e @ Unanswerable::Unsupported(_)) => why = e,
            Err(Unanswerable::NoChallenge) => {}
        }
    }
    best.ok_or(why)
}

/// What answering a challenge needs besides the challenge.
#[derive(Debug, Clone, Copy)]
pub struct Answer<'a> {
    pub username: &'a str,
    pub password: &'a str,
    pub method: &'a str,
    pub uri: &'a str,
    /// How many times this nonce has been answered before (nc = this + 1).
    pub count: u32,
    pub cnonce: &'a str,
}

/// The `Authorization` / `Proxy-Authorization` value answering `c`.
pub fn authorization(c: &Challenge, a: &Answer) -> String {
    let mut ha1 = digest::ha1(c.algorithm, a.username, &c.realm, a.password);
    if c.sess {
        ha1 = c.algorithm.hex(&format!("{ha1}:{}:{}", c.nonce, a.cnonce));
    }
    let nc = format!("{:08x}", a.count.saturating_add(1));
    let qop = c.qop_auth.then_some((nc.as_str(), a.cnonce));
    let response = digest::response(c.algorithm, &ha1, &c.nonce, a.method, a.uri, qop);
    let mut out = format!(
        "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{response}\"",
        quote(a.username),
        quote(&c.realm),
        quote(&c.nonce),
        quote(a.uri)
    );
    if let Some(alg) = &c.algorithm_text {
        out.push_str(&format!(", algorithm={alg}"));
    }
    if c.sess || c.qop_auth {
        out.push_str(&format!(", cnonce=\"{}\"", quote(a.cnonce)));
    }
    if let Some(opaque) = &c.opaque {
        out.push_str(&format!(", opaque=\"{}\"", quote(opaque)));
    }
    if c.qop_auth {
        out.push_str(&format!(", qop=auth, nc={nc}"));
    }
    out
}

/// A quoted-string's content (RFC 3261 section 25.1: `"` and `\` escaped).
fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::digest::{Authenticator, Verdict, parse_credentials};

    /// RFC 7616 section 3.9.1: the same request answered with SHA-256 and with MD5.
    #[test]
    fn rfc_7616_examples() {
        let challenge = |alg: &str| {
            format!(
                "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm={alg}, \
                 nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
                 opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""
            )
        };
        let answer = Answer {
            username: "Mufasa",
            password: "Circle of Life",
            method: "GET",
            uri: "/dir/index.html",
            count: 0,
            cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        };
        let md5 = challenge("MD5");
        let sha = challenge("SHA-256");
        let c = choose([md5.as_str(), sha.as_str()]).unwrap();
        assert_eq!(c.algorithm, Algorithm::Sha256, "SHA-256 preferred");
        let h = authorization(&c, &answer);
        assert!(
            h.contains(
                "response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\""
            ),
            "{h}"
        );
        assert!(h.contains("qop=auth, nc=00000001") && h.contains("algorithm=SHA-256"));
        assert!(h.contains("opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""));
        let c = choose([md5.as_str()]).unwrap();
        let h = authorization(&c, &answer);
        assert!(
            h.contains("response=\"8ca523f5e9506fed4657c9700eebdbec\""),
            "{h}"
        );
    }

    /// RFC 2617 section 3.5 (MD5, qop=auth), through the client's own header.
    #[test]
    fn rfc_2617_example() {
        let c = choose(["Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""])
        .unwrap();
        let h = authorization(
            &c,
            &Answer {
                username: "Mufasa",
                password: "Circle Of Life",
                method: "GET",
                uri: "/dir/index.html",
                count: 0,
                cnonce: "0a4f113b",
            },
        );
        assert!(
            h.contains("response=\"6629fae49393a05397450978507c4ef1\""),
            "{h}"
        );
        assert!(
            !h.contains("algorithm"),
            "not named when the server named none: {h}"
        );
    }

    #[test]
    fn the_registrar_accepts_what_the_client_answers() {
        let server = Authenticator::new("office.test");
        for (i, ch) in server.challenges(false).iter().enumerate() {
            let c = choose([ch.as_str()]).unwrap();
            let h = authorization(
                &c,
                &Answer {
                    username: "alice",
                    password: "pw",
                    method: "REGISTER",
                    uri: "sip:office.test",
                    count: u32::try_from(i).unwrap(),
                    cnonce: "abc",
                },
            );
            let creds = parse_credentials(&h).unwrap();
            let stored = |a: Algorithm| Some(digest::ha1(a, "alice", "office.test", "pw"));
            assert_eq!(
                server.verify(&creds, "REGISTER", stored),
                Verdict::Ok,
                "{h}"
            );
        }
    }

    #[test]
    fn what_cannot_be_answered_says_why() {
        assert_eq!(
            choose(["Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512-256"]),
            Err(Unanswerable::Unsupported("algorithm SHA-512-256".into()))
        );
        assert_eq!(
            choose(["Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\""]),
            Err(Unanswerable::Unsupported("qop=auth-int".into()))
        );
        assert_eq!(
            choose(["Basic realm=\"r\""]),
            Err(Unanswerable::NoChallenge)
        );
        // One unknown algorithm beside a known one: the known one is answered.
        let c = choose([
            "Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512-256",
            "Digest realm=\"r\", nonce=\"n\", algorithm=MD5-sess, stale=TRUE",
        ])
        .unwrap();
        assert!(c.sess && c.stale && c.algorithm == Algorithm::Md5);
    }
}
