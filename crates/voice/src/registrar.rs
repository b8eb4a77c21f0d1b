//! The registrar (RFC 3261 section 10.3): where each user's phones can be reached.
//!
//! A user's address of record is `sip:<extension>@<domain>` (or their login); a phone
//! proves it is theirs with digest authentication as the user's login. Each REGISTER
//! adds, refreshes or removes contacts (several phones per user); a binding lives for the
//! Expires the phone asked for, clamped to [`MIN_EXPIRES`, `MAX_EXPIRES`] (below the
//! minimum: `423` with Min-Expires). Bindings are kept in memory and written to the state
//! database in batches, so `officebox phone registrations` can list them and a restart
//! keeps them.

use std::collections::HashMap;
use std::net::SocketAddr;

use officebox_config::Config;

use crate::sip::{self, Message, Transport, param, uri_of, uri_user};

pub const MIN_EXPIRES: u64 = 60;
pub const MAX_EXPIRES: u64 = 7200;
pub const DEFAULT_EXPIRES: u64 = 3600;
/// Contacts per user.
const MAX_CONTACTS: usize = 10;

/// One registered phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The Contact URI.
    pub contact: String,
    /// Unix seconds.
    pub expires_at: u64,
    pub call_id: String,
    pub cseq: u32,
    /// Where its REGISTER came from (behind NAT: where to send its calls).
    pub source: SocketAddr,
    pub transport: Transport,
    pub user_agent: String,
}

/// Every user's bindings.
#[derive(Debug, Default)]
pub struct Registrar {
    bindings: HashMap<String, Vec<Binding>>,
    /// Logins changed since the last [`Registrar::take_dirty`].
    dirty: Vec<String>,
}

/// What a REGISTER came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 200 with the user's current contacts.
    Ok(Vec<Binding>),
    /// 423: the phone asked for less than this.
    TooBrief(u64),
    /// 400/403/404 with a reason.
    Refused(u16, &'static str),
}

/// The login whose address of record `to_uri` is: the user with that extension or login.
pub fn owner_of(config: &Config, to_uri: &str) -> Option<String> {
    let user = uri_user(to_uri)?;
    config
        .users
        .iter()
        .find(|u| u.extension.as_deref() == Some(user.as_str()) || u.login == user)
        .map(|u| u.login.clone())
}

impl Registrar {
    /// Loads bindings (from the state database at start).
    pub fn restore(&mut self, login: &str, binding: Binding) {
        self.bindings
            .entry(login.to_string())
            .or_default()
            .push(binding);
    }

    /// The live bindings of `login` at `now`.
    pub fn contacts(&self, login: &str, now: u64) -> Vec<Binding> {
        self.bindings
            .get(login)
            .map(|b| b.iter().filter(|b| b.expires_at > now).cloned().collect())
            .unwrap_or_default()
    }

    /// Every live binding, by login.
    pub fn all(&self, now: u64) -> Vec<(String, Binding)> {
        let mut out: Vec<(String, Binding)> = self
            .bindings
            .iter()
            .flat_map(|(l, bs)| {
                bs.iter()
                    .filter(|b| b.expires_at > now)
                    .map(move |b| (l.clone(), b.clone()))
            })
            .collect();
        out.sort_by(|a, b| (&a.0, &a.1.contact).cmp(&(&b.0, &b.1.contact)));
        out
    }

    /// Logins whose bindings changed, each once, since the last call.
    pub fn take_dirty(&mut self) -> Vec<(String, Vec<Binding>)> {
        let mut logins = std::mem::take(&mut self.dirty);
        logins.sort();
        logins.dedup();
        logins
            .into_iter()
            .map(|l| {
                let b = self.bindings.get(&l).cloned().unwrap_or_default();
                (l, b)
            })
            .collect()
    }

    /// Applies an authenticated REGISTER from `login` (RFC 3261 section 10.3 steps 5-8).
    pub fn register(
        &mut self,
        login: &str,
        req: &Message,
        source: SocketAddr,
        transport: Transport,
        now: u64,
    ) -> Outcome {
        let header_expires = req
            .header("expires")
            .and_then(|e| e.trim().parse::<u64>().ok());
        let call_id = req.call_id().to_string();
        let cseq = req.cseq().map_or(0, |(n, _)| n);
        let user_agent: String = req
            .header("user-agent")
            .unwrap_or("")
            .chars()
            .take(80)
            .collect();
        let contacts: Vec<&str> = req.values("contact").collect();
        let list = self.bindings.entry(login.to_string()).or_default();
        list.retain(|b| b.expires_at > now);
        if contacts.iter().any(|c| c.trim() == "*") {
            // Remove all: only alone and with Expires: 0 (section 10.3 step 6).
            if contacts.len() != 1 || header_expires != Some(0) {
                return Outcome::Refused(400, "Bad Request (wildcard contact)");
            }
            list.clear();
            self.dirty.push(login.to_string());
            return Outcome::Ok(Vec::new());
        }
        // Check every contact before changing anything.
        let mut wanted = Vec::new();
        for c in &contacts {
            let Some(uri) = uri_of(c) else {
                return Outcome::Refused(400, "Bad Request (contact)");
            };
            let expires = param(c, "expires")
                .and_then(|e| e.parse::<u64>().ok())
                .or(header_expires)
                .unwrap_or(DEFAULT_EXPIRES);
            if expires != 0 && expires < MIN_EXPIRES {
                return Outcome::TooBrief(MIN_EXPIRES);
            }
            wanted.push((uri.to_string(), expires.min(MAX_EXPIRES)));
        }
        for (uri, expires) in wanted {
            let existing = list.iter().position(|b| same_contact(&b.contact, &uri));
            if let Some(i) = existing
                && let Some(old) = list.get_mut(i)
            {
                // A replayed or reordered REGISTER must not undo a newer one.
                if old.call_id == call_id && old.cseq > cseq {
                    continue;
                }
                if expires == 0 {
                    list.remove(i);
                    continue;
                }
                *old = Binding {
                    contact: uri,
                    expires_at: now + expires,
                    call_id: call_id.clone(),
                    cseq,
                    source,
                    transport,
                    user_agent: user_agent.clone(),
                };
            } else if expires > 0 {
                if list.len() >= MAX_CONTACTS {
                    // The oldest phone makes room.
                    list.remove(0);
                }
                list.push(Binding {
                    contact: uri,
                    expires_at: now + expires,
                    call_id: call_id.clone(),
                    cseq,
                    source,
                    transport,
                    user_agent: user_agent.clone(),
                });
            }
        }
        self.dirty.push(login.to_string());
        Outcome::Ok(list.clone())
    }
}

/// Two contact URIs name the same phone (RFC 3261 19.1.4, loosely: case-insensitive
/// scheme and host, parameters ignored).
fn same_contact(a: &str, b: &str) -> bool {
    let key = |u: &str| {
        let base = u.split(';').next().unwrap_or(u);
        (
            sip::uri_user(base).unwrap_or_default(),
            sip::uri_host(base).unwrap_or("").to_ascii_lowercase(),
        )
    };
    key(a) == key(b)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn register(contact: &str, expires: Option<u64>, cseq: u32) -> Message {
        let mut text = format!(
            "REGISTER sip:office.test SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5;branch=z9hG4bK{cseq}\r\n\
             To: <sip:101@office.test>\r\nFrom: <sip:101@office.test>;tag=1\r\n\
             Call-ID: reg-1\r\nCSeq: {cseq} REGISTER\r\nContact: {contact}\r\n"
        );
        if let Some(e) = expires {
            text.push_str(&format!("Expires: {e}\r\n"));
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        Message::parse(text.as_bytes()).unwrap()
    }

    fn src() -> SocketAddr {
        "10.0.0.5:5060".parse().unwrap()
    }

    #[test]
    fn contacts_are_added_refreshed_and_removed() {
        let mut r = Registrar::default();
        let Outcome::Ok(b) = r.register(
            "alice",
            &register("<sip:101@10.0.0.5>", None, 1),
            src(),
            Transport::Udp,
            1000,
        ) else {
            panic!()
        };
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].expires_at, 1000 + DEFAULT_EXPIRES);
        // Two phones.
        r.register(
            "alice",
            &register("<sip:101@10.0.0.6>;expires=120", None, 2),
            src(),
            Transport::Udp,
            1000,
        );
        assert_eq!(r.contacts("alice", 1001).len(), 2);
        assert_eq!(
            r.contacts("alice", 1121).len(),
            1,
            "the second expires first"
        );
        // Refresh with a huge Expires is clamped; expires=0 removes.
        r.register(
            "alice",
            &register("<sip:101@10.0.0.5>", Some(999_999), 3),
            src(),
            Transport::Udp,
            1000,
        );
        assert_eq!(r.contacts("alice", 1000)[0].expires_at, 1000 + MAX_EXPIRES);
        r.register(
            "alice",
            &register("<sip:101@10.0.0.5>", Some(0), 4),
            src(),
            Transport::Udp,
            1000,
        );
        assert_eq!(r.contacts("alice", 1000).len(), 1);
        assert_eq!(r.take_dirty().len(), 1);
        assert!(r.take_dirty().is_empty());
    }

    #[test]
    fn too_brief_wildcards_and_old_cseqs() {
        let mut r = Registrar::default();
        assert_eq!(
            r.register(
                "alice",
                &register("<sip:101@10.0.0.5>", Some(30), 1),
                src(),
                Transport::Udp,
                0
            ),
            Outcome::TooBrief(MIN_EXPIRES)
        );
        r.register(
            "alice",
            &register("<sip:101@10.0.0.5>", None, 5),
            src(),
            Transport::Udp,
            0,
        );
        // An older CSeq in the same Call-ID does not undo it.
        r.register(
            "alice",
            &register("<sip:101@10.0.0.5>", Some(0), 4),
            src(),
            Transport::Udp,
            0,
        );
        assert_eq!(r.contacts("alice", 1).len(), 1);
        assert!(matches!(
            r.register("alice", &register("*", None, 6), src(), Transport::Udp, 0),
            Outcome::Refused(400, _)
        ));
        assert_eq!(
            r.register(
                "alice",
                &register("*", Some(0), 7),
                src(),
                Transport::Udp,
                0
            ),
            Outcome::Ok(Vec::new())
        );
        assert!(r.contacts("alice", 1).is_empty());
    }
}
