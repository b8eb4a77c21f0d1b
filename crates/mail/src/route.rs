//! Where a recipient's mail goes: local mailboxes (through aliases, recursively) and
//! addresses elsewhere; and whether a client may relay. Pure over the config.

use std::collections::BTreeSet;

use officebox_config::Config;
use officebox_config::derive::{ClientZone, relay_allowed};

/// What one recipient address means here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Ours: these users' mailboxes, and these addresses elsewhere (alias members).
    Local {
        mailboxes: BTreeSet<String>,
        forward: BTreeSet<String>,
    },
    /// Another domain's address: relaying.
    Foreign(String),
    /// A fax to this number (`<number>@fax.<domain>`): sent by the phone service.
    Fax(String),
    /// Our domain, but no such user or alias.
    Unknown,
}

/// Splits `local@domain`, refusing the forms that open relays hide behind: quoted local
/// parts, source routes, `%` and `!` (RFC 5321 section 3.6, 3.9).
pub fn split(address: &str) -> Option<(String, String)> {
    let (local, domain) = address.rsplit_once('@')?;
    if local.is_empty() || domain.is_empty() || local.starts_with('@') {
        return None;
    }
    if local.contains(['"', '%', '!', ':', '@', ' ', '\\'])
        || domain.contains([':', '@', ' ', '!', '%'])
    {
        return None;
    }
    Some((
        local.to_ascii_lowercase(),
        domain.trim_end_matches('.').to_ascii_lowercase(),
    ))
}

/// Whether `domain` is ours (the company domain or the box's own name).
pub fn is_our_domain(config: &Config, domain: &str) -> bool {
    let ours = &config.network.domain;
    domain == ours || domain == format!("{}.{ours}", config.network.hostname)
}

/// Resolves one recipient.
pub fn resolve(config: &Config, address: &str) -> Destination {
    let Some((local, domain)) = split(address) else {
        // Something we will not interpret: a foreign address as far as policy goes, which
        // the relay check refuses for anyone not allowed to relay.
        return Destination::Foreign(address.to_string());
    };
    if crate::fax::is_fax_domain(config, &domain) {
        return crate::fax::number(&local).map_or(Destination::Unknown, Destination::Fax);
    }
    if !is_our_domain(config, &domain) {
        return Destination::Foreign(format!("{local}@{domain}"));
    }
    let (mailboxes, forward) = officebox_config::derive::mail_targets(config, &local);
    if mailboxes.is_empty() && forward.is_empty() {
        Destination::Unknown
    } else {
        Destination::Local { mailboxes, forward }
    }
}

/// Whether a client in `zone` (authenticated or not) may send to other domains.
pub fn may_relay(config: &Config, zone: ClientZone, authenticated: bool) -> bool {
    authenticated || relay_allowed(config, zone)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA";

    fn config() -> Config {
        let text = format!(
            "[network]\ndomain = \"office.test\"\nmanage = false\n[dns]\nuse_upstream = false\n\
             [mail.aliases]\nsales = [\"alice\", \"team\"]\nteam = [\"bob\", \"carol@elsewhere.example\"]\nbob = [\"bob\", \"bob@primary.example\"]\n\
             [[users]]\nlogin = \"admin\"\npassword = \"{HASH}\"\nadmin = true\n\
             [[users]]\nlogin = \"alice\"\npassword = \"{HASH}\"\n\
             [[users]]\nlogin = \"bob\"\npassword = \"{HASH}\"\n"
        );
        officebox_config::parse("t.toml", &text).unwrap()
    }

    fn local(m: &[&str], f: &[&str]) -> Destination {
        Destination::Local {
            mailboxes: m.iter().map(|s| s.to_string()).collect(),
            forward: f.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn recipients() {
        let c = config();
        assert_eq!(resolve(&c, "Alice@Office.Test"), local(&["alice"], &[]));
        assert_eq!(
            resolve(&c, "bob@office.test"),
            local(&["bob"], &["bob@primary.example"]),
            "keep a copy and forward"
        );
        assert_eq!(
            resolve(&c, "sales@office.test"),
            local(
                &["alice", "bob"],
                &["bob@primary.example", "carol@elsewhere.example"]
            )
        );
        assert_eq!(
            resolve(&c, "postmaster@office.test"),
            local(&["admin"], &[])
        );
        assert_eq!(
            resolve(&c, "alice@officebox.office.test"),
            local(&["alice"], &[])
        );
        assert_eq!(resolve(&c, "nobody@office.test"), Destination::Unknown);
        assert_eq!(
            resolve(&c, "+49-30-1234@Fax.Office.Test"),
            Destination::Fax("+49301234".into())
        );
        assert_eq!(resolve(&c, "alice@fax.office.test"), Destination::Unknown);
        assert_eq!(
            resolve(&c, "5551234@fax.elsewhere.example"),
            Destination::Foreign("5551234@fax.elsewhere.example".into())
        );
        assert_eq!(
            resolve(&c, "x@example.net"),
            Destination::Foreign("x@example.net".into())
        );
    }

    #[test]
    fn relay_tricks_are_not_local() {
        let c = config();
        for trick in [
            "user%ext.example@office.test",
            "ext.example!user@office.test",
            "\"user@ext\"@office.test",
            "@office.test:user@ext.example",
        ] {
            assert!(
                matches!(resolve(&c, trick), Destination::Foreign(_)),
                "{trick}"
            );
        }
        assert!(!may_relay(&c, ClientZone::Wan, false));
        assert!(may_relay(&c, ClientZone::Wan, true));
        assert!(
            may_relay(&c, ClientZone::Lan, false) && may_relay(&c, ClientZone::Loopback, false)
        );
    }
}
