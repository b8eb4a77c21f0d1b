//! `[[phone.trunks]]`: lines to telephone providers (read from the `[phone]` loader).

use std::net::IpAddr;

use super::*;

/// The codecs a trunk may offer, as they are spelled in SDP.
const CODECS: &[&str] = &["PCMU", "PCMA", "G722", "G729", "GSM", "opus"];

const SERVER_HELP: &str = "the provider's host name or address, optionally with :port, e.g. \
                           \"sip.provider.example\" or \"203.0.113.5:5060\"";
const USER_HELP: &str = "the account name exactly as the provider gave it, e.g. \"4930123456\"";

impl Loader<'_, '_> {
    pub(super) fn trunks(&mut self, secs: Vec<Section>) -> Vec<Trunk> {
        let mut out: Vec<Trunk> = Vec::new();
        for mut t in secs {
            let name = t.parsed(
                self.sink,
                "name",
                "letters, digits, '-', '_' or '.', e.g. \"main-line\"",
                parse_trunk_name,
            );
            let kind = t.parsed(
                self.sink,
                "kind",
                "use \"register\" (officebox signs in to the provider) or \"ip\" (the provider \
                 knows the box by its address)",
                |s| match s {
                    "register" => Ok(TrunkKind::Register),
                    "ip" => Ok(TrunkKind::Ip),
                    _ => Err(format!("unknown trunk kind `{s}`")),
                },
            );
            let kind_known = kind.is_some() || !t.has("kind");
            let kind = kind.map_or(TrunkKind::Register, |k| k.value);
            let enabled = t.flag(self.sink, &schema::TRUNK_ENABLED);
            let server = t.parsed(self.sink, "server", SERVER_HELP, parse_sip_host);
            let username = t.parsed(self.sink, "username", USER_HELP, parse_sip_user);
            let password = t.string(self.sink, "password");
            if let Some(p) = &password
                && p.value.is_empty()
            {
                self.sink.error(
                    &p.span,
                    t.path_of("password"),
                    "the password is empty",
                    "write the password the provider gave for this account",
                );
            }
            let auth_username = t.parsed(self.sink, "auth_username", USER_HELP, parse_sip_user);
            let outbound_proxy = t.parsed(self.sink, "outbound_proxy", SERVER_HELP, parse_sip_host);
            let transport = t.parsed(
                self.sink,
                "transport",
                "use \"udp\", \"tcp\" or \"tls\"",
                |s| match s.to_ascii_lowercase().as_str() {
                    "udp" => Ok(TrunkTransport::Udp),
                    "tcp" => Ok(TrunkTransport::Tcp),
                    "tls" => Ok(TrunkTransport::Tls),
                    _ => Err(format!("unknown transport `{s}`")),
                },
            );
            let identity = t.parsed(
                self.sink,
                "identity",
                "use \"pai\", \"from\" or \"account\"",
                |s| match s.to_ascii_lowercase().as_str() {
                    "pai" => Ok(TrunkIdentity::Pai),
                    "from" => Ok(TrunkIdentity::From),
                    "account" => Ok(TrunkIdentity::Account),
                    _ => Err(format!("unknown caller ID style `{s}`")),
                },
            );
            let t38 = t.parsed(
                self.sink,
                "t38",
                "use \"on\" (T.38 when the provider asks), \"offered\" (ask for it) or \"off\" \
                 (audio only)",
                |s| match s.to_ascii_lowercase().as_str() {
                    "on" => Ok(T38Mode::On),
                    "offered" => Ok(T38Mode::Offered),
                    "off" => Ok(T38Mode::Off),
                    _ => Err(format!("unknown fax mode `{s}`")),
                },
            );
            let ca_file = t
                .string(self.sink, "ca_file")
                .map(|c| std::path::PathBuf::from(c.value));
            let expires = self.duration(&mut t, &schema::TRUNK_EXPIRES);
            let addresses_path = t.path_of("addresses");
            let raw_addresses = t.string_list(self.sink, "addresses");
            let addresses_listed = raw_addresses.as_ref().map(Vec::len);
            let addresses: Vec<IpNet> = raw_addresses
                .unwrap_or_default()
                .into_iter()
                .enumerate()
                .filter_map(|(i, a)| {
                    parse_spanned(
                        self.sink,
                        &format!("{addresses_path}[{i}]"),
                        a,
                        "write addresses or networks, e.g. [\"203.0.113.5\", \"198.51.100.0/24\"]",
                        parse_ip_net,
                    )
                })
                .map(|a| a.value)
                .collect();
            let max_calls = t
                .int(self.sink, "max_calls", schema::TRUNK_MAX_CALLS.range())
                .map_or(0, |n| u32::try_from(n.value).unwrap_or(0));
            let codecs_path = t.path_of("codecs");
            let raw_codecs = t.string_list(self.sink, "codecs");
            if raw_codecs.as_ref().is_some_and(Vec::is_empty) {
                self.sink.error(
                    &t.key_span("codecs"),
                    codecs_path.clone(),
                    "no codec is offered, so no call could be set up",
                    "leave it out for PCMU and PCMA, or name at least one",
                );
            }
            let mut codecs: Vec<String> = Vec::new();
            for (i, c) in raw_codecs.unwrap_or_default().into_iter().enumerate() {
                let help = format!("use any of: {}", CODECS.join(", "));
                if let Some(c) = parse_spanned(
                    self.sink,
                    &format!("{codecs_path}[{i}]"),
                    c,
                    &help,
                    parse_codec,
                ) && !codecs.contains(&c.value)
                {
                    codecs.push(c.value);
                }
            }
            if codecs.is_empty() {
                codecs = schema::TRUNK_CODECS
                    .list()
                    .iter()
                    .map(|c| c.to_string())
                    .collect();
            }
            for (key, ok) in [("name", name.is_some()), ("server", server.is_some())] {
                if !ok && !t.has(key) {
                    t.missing(
                        self.sink,
                        key,
                        "a trunk needs at least name and server (the provider's host)",
                    );
                }
            }
            if kind_known && kind == TrunkKind::Register {
                for (key, ok) in [
                    ("username", username.is_some()),
                    ("password", password.is_some()),
                ] {
                    if !ok && !t.has(key) {
                        t.missing(
                            self.sink,
                            key,
                            "a registration trunk signs in with the account the provider gave: \
                             add username and password (or kind = \"ip\" for a provider that \
                             knows the box by its address)",
                        );
                    }
                }
            }
            if kind_known && kind == TrunkKind::Ip {
                let help = "list the addresses the provider's calls come from, e.g. \
                            addresses = [\"203.0.113.5\"] (or kind = \"register\" to sign in)";
                if !t.has("addresses") {
                    t.missing(self.sink, "addresses", help);
                } else if addresses_listed == Some(0) {
                    self.sink.error(
                        &t.key_span("addresses"),
                        t.path_of("addresses"),
                        "an IP trunk needs the provider's addresses, and none is listed",
                        help,
                    );
                }
            }
            let path = t.path.clone();
            t.finish(self.sink);
            let Some(name) = name else { continue };
            if out.iter().any(|o| o.name == name.value) {
                self.sink.error(
                    &name.span,
                    format!("{path}.name"),
                    format!("there is already a trunk named `{}`", name.value),
                    "give each trunk a different name",
                );
                continue;
            }
            let (Some(server), true) = (server, kind_known) else {
                continue;
            };
            out.push(Trunk {
                name: name.value,
                kind,
                enabled,
                server: server.value,
                username: username.map(|u| u.value),
                password: password.map(|p| p.value),
                auth_username: auth_username.map(|u| u.value),
                outbound_proxy: outbound_proxy.map(|p| p.value),
                transport: transport.map_or(TrunkTransport::Udp, |t| t.value),
                expires,
                addresses,
                max_calls,
                codecs,
                identity: identity.map(|i| i.value).unwrap_or_default(),
                t38: t38.map(|m| m.value).unwrap_or_default(),
                ca_file,
            });
        }
        out
    }
}

/// A trunk's name: 1-32 letters, digits, `-`, `_`, `.`.
fn parse_trunk_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!("`{s}` is not a trunk name"))
    }
}

/// A SIP user name as it goes into a URI unescaped (RFC 3261's unreserved characters and
/// the user-unreserved ones but `;`).
fn parse_sip_user(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,?/".contains(&b));
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!("`{s}` cannot be a SIP user name"))
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`, where host is an address or a domain name
/// (a leading `sip:` is dropped); lowercase.
fn parse_sip_host(s: &str) -> Result<String, String> {
    let bad = || format!("`{s}` is not a host name or address (optionally with :port)");
    let text = s.trim();
    let text = text.strip_prefix("sip:").unwrap_or(text);
    if text.is_empty() {
        return Err(bad());
    }
    // A bare IPv6 address has colons of its own.
    if let Ok(IpAddr::V6(v6)) = text.parse::<IpAddr>() {
        return Ok(format!("[{v6}]"));
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']').ok_or_else(bad)?;
        let v6: std::net::Ipv6Addr = inside.parse().map_err(|_| bad())?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(bad)?),
        };
        (format!("[{v6}]"), port)
    } else {
        let (host, port) = match text.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        };
        let host = match host.parse::<std::net::Ipv4Addr>() {
            Ok(ip) => ip.to_string(),
            Err(_) => parse_domain(host).map_err(|_| bad())?,
        };
        (host, port)
    };
    match port {
        None => Ok(host),
        Some(p) => {
            let n: u16 = p.parse().map_err(|_| format!("`{p}` is not a port"))?;
            if n == 0 {
                return Err(format!("`{p}` is not a port"));
            }
            Ok(format!("{host}:{n}"))
        }
    }
}

/// An address or a network (`203.0.113.0/24`).
fn parse_ip_net(s: &str) -> Result<IpNet, String> {
    let text = s.trim();
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let address: IpAddr = addr
        .parse()
        .map_err(|_| format!("`{s}` is not an IP address or network"))?;
    let width = if address.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => width,
        Some(p) => p
            .parse::<u8>()
            .ok()
            .filter(|n| *n <= width)
            .ok_or_else(|| format!("`/{p}` is not a prefix length for {address}"))?,
    };
    Ok(IpNet { address, prefix })
}

/// A codec name, spelled as SDP spells it.
fn parse_codec(s: &str) -> Result<String, String> {
    CODECS
        .iter()
        .find(|c| c.eq_ignore_ascii_case(s.trim()))
        .map(|c| c.to_string())
        .ok_or_else(|| format!("unknown codec `{s}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA";

    fn parse_trunks(extra: &str) -> Result<Vec<Trunk>, String> {
        let text = format!(
            "[network]\ndomain = \"example.com\"\nmanage = false\n[dns]\nuse_upstream = false\n\
             [[users]]\nlogin = \"admin\"\npassword = \"{HASH}\"\nadmin = true\n{extra}"
        );
        crate::parse("t.toml", &text)
            .map(|c| c.phone.trunks)
            .map_err(|d| d.to_string())
    }

    #[test]
    fn trunks_load_with_their_defaults() {
        let trunks = parse_trunks(
            r#"
[[phone.trunks]]
name = "main"
server = "SIP.Provider.Example"
username = "4930123456"
password = "secret"

[[phone.trunks]]
name = "backup"
kind = "ip"
server = "203.0.113.5:5080"
transport = "TCP"
addresses = ["203.0.113.5", "198.51.100.0/24"]
max_calls = 4
codecs = ["pcma", "G722", "PCMA"]
enabled = false
"#,
        )
        .unwrap();
        let main = &trunks[0];
        assert_eq!(main.kind, TrunkKind::Register);
        assert_eq!(main.server, "sip.provider.example");
        assert_eq!(main.username.as_deref(), Some("4930123456"));
        assert_eq!(main.password.as_deref(), Some("secret"));
        assert_eq!(main.auth_username, None);
        assert_eq!(main.transport, TrunkTransport::Udp);
        assert_eq!(main.expires, Duration::from_secs(3600));
        assert_eq!(main.max_calls, 0);
        assert_eq!(main.codecs, ["PCMU", "PCMA"]);
        assert!(main.enabled);
        let backup = &trunks[1];
        assert_eq!(backup.kind, TrunkKind::Ip);
        assert_eq!(backup.transport, TrunkTransport::Tcp);
        assert_eq!(backup.addresses.len(), 2);
        assert_eq!(backup.max_calls, 4);
        assert_eq!(backup.codecs, ["PCMA", "G722"]);
        assert!(!backup.enabled);
    }

    #[test]
    fn broken_trunks_are_each_reported_where_they_are() {
        let e = parse_trunks(
            "[[phone.trunks]]\nname = \"a\"\nkind = \"sip\"\nserver = \"x.example\"\n\
             [[phone.trunks]]\nname = \"b\"\nserver = \"x.example\"\n\
             [[phone.trunks]]\nname = \"c\"\nkind = \"ip\"\nserver = \"x.example\"\n\
             [[phone.trunks]]\nname = \"c\"\nkind = \"ip\"\nserver = \"x.example\"\naddresses = [\"203.0.113.5\"]\n\
             transport = \"sctp\"\nexpires = \"30s\"\n",
        )
        .unwrap_err();
        for wanted in [
            "phone.trunks[0].kind: unknown trunk kind `sip`",
            "phone.trunks[1].username: this setting is required but missing",
            "phone.trunks[1].password: this setting is required but missing",
            "phone.trunks[2].addresses: this setting is required but missing",
            "phone.trunks[3].name: there is already a trunk named `c`",
            "phone.trunks[3].transport: unknown transport `sctp`",
            "phone.trunks[3].expires: 30s is too short",
        ] {
            assert!(e.contains(wanted), "{wanted} not in:\n{e}");
        }
        assert_eq!(e.matches("phone.trunks[0]").count(), 1, "{e}");
    }

    #[test]
    fn hosts_with_and_without_ports() {
        assert_eq!(
            parse_sip_host("SIP.Provider.Example"),
            Ok("sip.provider.example".into())
        );
        assert_eq!(
            parse_sip_host("203.0.113.5:5080"),
            Ok("203.0.113.5:5080".into())
        );
        assert_eq!(parse_sip_host("sip:203.0.113.5"), Ok("203.0.113.5".into()));
        assert_eq!(parse_sip_host("2001:db8::5"), Ok("[2001:db8::5]".into()));
        assert_eq!(
            parse_sip_host("[2001:db8::5]:5062"),
            Ok("[2001:db8::5]:5062".into())
        );
        assert!(parse_sip_host("host:0").is_err());
        assert!(parse_sip_host("host:x").is_err());
        assert!(parse_sip_host("a b").is_err());
        assert!(parse_sip_host("").is_err());
    }

    #[test]
    fn networks_contain_their_addresses() {
        let net = parse_ip_net("198.51.100.0/24").unwrap();
        assert!(net.contains("198.51.100.7".parse().unwrap()));
        assert!(!net.contains("198.51.101.7".parse().unwrap()));
        let one = parse_ip_net("203.0.113.5").unwrap();
        assert_eq!(one.to_string(), "203.0.113.5");
        assert!(one.contains("203.0.113.5".parse().unwrap()));
        assert!(!one.contains("203.0.113.6".parse().unwrap()));
        assert!(
            parse_ip_net("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(parse_ip_net("10.0.0.0/33").is_err());
        assert!(
            parse_ip_net("2001:db8::/32")
                .unwrap()
                .contains("2001:db8:1::1".parse().unwrap())
        );
    }
}
