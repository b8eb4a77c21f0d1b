//! `[vpn]` and `[[vpn.sites]]`: the tunnels to the company's other offices.

use super::dialplan::leads_nowhere;
use super::*;
use crate::dialplan::{Destination, DialPlan};

/// A key as WireGuard writes it: 32 bytes of standard base64 (44 characters).
pub fn parse_wireguard_key(s: &str) -> Result<[u8; 32], String> {
    let text = s.trim();
    let bytes = decode_base64(text).ok_or_else(|| format!("`{text}` is not base64"))?;
    bytes.try_into().map_err(|b: Vec<u8>| {
        format!(
            "a WireGuard key is 32 bytes (44 characters of base64); this one is {} bytes",
            b.len()
        )
    })
}

/// Standard base64 with padding, canonical (no stray bits in the last character).
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

/// A site's endpoint: `host:port` or `host` (port 51820); the host a name or an IPv4
/// address (a name is looked up when the tunnel starts, not here).
fn parse_endpoint(s: &str) -> Result<(String, u16), String> {
    let text = s.trim();
    let (host, port) = match text.rsplit_once(':') {
        Some((h, p)) => {
            let port = p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("`{p}` is not a port"))?;
            (h, port)
        }
        None => (text, 51820),
    };
    if host.parse::<Ipv4Addr>().is_ok() {
        return Ok((host.to_string(), port));
    }
    let name =
        parse_domain(host).map_err(|_| format!("`{host}` is not a host name or IPv4 address"))?;
    Ok((name, port))
}

/// `200-299` (two numbers of one length) or `2` (a prefix).
fn parse_extensions(s: &str) -> Result<Extensions, String> {
    let text = s.trim();
    let digits = |x: &str| !x.is_empty() && x.len() <= 8 && x.bytes().all(|b| b.is_ascii_digit());
    match text.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (a.trim(), b.trim());
            if !digits(a) || !digits(b) || a.len() != b.len() || a > b {
                return Err(format!(
                    "`{text}` is not a range of extensions of one length, lowest first"
                ));
            }
            Ok(Extensions::Range(a.into(), b.into()))
        }
        None if digits(text) => Ok(Extensions::Prefix(text.into())),
        None => Err(format!(
            "`{text}` is neither a range nor a prefix of extensions"
        )),
    }
}

const SUBNET_HELP: &str = "write networks with their prefix length, e.g. [\"192.168.2.0/24\"]";

impl Loader<'_, '_> {
    /// `[vpn]`, checked against the LAN, the local users' extensions and the own domain.
    pub(super) fn vpn(
        &mut self,
        sec: Option<Section>,
        (lan, wan): (Option<Ipv4Net>, Option<Ipv4Net>),
        users: &[Spanned<User>],
        own_domain: Option<&str>,
        plan: &DialPlan,
    ) -> (Vpn, Option<Spanned<u16>>) {
        let mut vpn = Vpn {
            enabled: schema::VPN_ENABLED.bool(),
            listen_port: schema::VPN_LISTEN_PORT.port(),
            address: parse_ipv4_net(schema::VPN_ADDRESS.text()).unwrap_or(Ipv4Net {
                address: Ipv4Addr::new(10, 99, 0, 1),
                prefix: 24,
            }),
            sites: Vec::new(),
            peers: Vec::new(),
        };
        let Some(mut sec) = sec else {
            return (vpn, None);
        };
        vpn.enabled = sec.flag(self.sink, &schema::VPN_ENABLED);
        let port = sec.port(self.sink, schema::VPN_LISTEN_PORT.key());
        if let Some(p) = &port {
            vpn.listen_port = p.value;
        }
        if let Some(a) = sec.parsed(
            self.sink,
            schema::VPN_ADDRESS.key(),
            "write the box's address and the subnet's prefix length, e.g. \"10.99.0.1/24\"",
            parse_ipv4_net,
        ) {
            let net = a.value;
            if !net.is_host(net.address) || net.prefix > 30 {
                self.sink.error(
                    &a.span,
                    "vpn.address",
                    format!("{} is no host address of a subnet", a.value.address),
                    "give the box a host address and a subnet of /30 or wider, e.g. \"10.99.0.1/24\"",
                );
            } else if let Some(l) = lan.filter(|l| l.overlaps(net)) {
                self.sink.error(
                    &a.span,
                    "vpn.address",
                    format!("the tunnels' subnet {net} overlaps the LAN {l}"),
                    "pick a subnet the LAN does not use, e.g. \"10.99.0.1/24\"",
                );
            } else {
                vpn.address = net;
            }
        }
        let sites = sec.tables(self.sink, "sites");
        let peers = sec.tables(self.sink, "peers");
        sec.finish(self.sink);
        // Every network already taken, and by what (for overlaps).
        let mut taken: Vec<(Ipv4Net, String)> = Vec::new();
        if let Some(l) = lan {
            taken.push((l, "the LAN".into()));
        }
        if let Some(w) = wan {
            taken.push((w, "the WAN's subnet".into()));
        }
        taken.push((vpn.address, "the tunnels' own subnet (vpn.address)".into()));
        let mut ranges: Vec<(Extensions, String)> = Vec::new();
        for mut s in sites {
            let path = s.path.clone();
            let name = s.parsed(
                self.sink,
                "name",
                "letters, digits and '-', e.g. \"branch\"",
                parse_label,
            );
            let enabled = s.flag(self.sink, &schema::VPN_SITE_ENABLED);
            let key = s.parsed(
                self.sink,
                "public_key",
                "copy the other box's public key from its Sites page (44 characters ending in =)",
                parse_wireguard_key,
            );
            let endpoint = s.parsed(
                self.sink,
                "endpoint",
                "write its WAN address or name and the port, e.g. \"branch.example.com:51820\"",
                parse_endpoint,
            );
            let subnets = s.parsed_list(self.sink, "subnets", SUBNET_HELP, parse_ipv4_net);
            let address = s.parsed(
                self.sink,
                "address",
                "write its box's LAN address, e.g. \"192.168.2.1\"",
                parse_ipv4,
            );
            let domain = s.parsed(
                self.sink,
                "domain",
                "write its DNS domain, e.g. \"branch.example.com\"",
                parse_domain,
            );
            let extensions = s.parsed(
                self.sink,
                "extensions",
                "a range like \"200-299\" or a prefix like \"2\"",
                parse_extensions,
            );
            let sip_port = s
                .port(self.sink, schema::VPN_SITE_SIP_PORT.key())
                .map_or(schema::VPN_SITE_SIP_PORT.port(), |p| p.value);
            let fallback = s.parsed(
                self.sink,
                schema::VPN_SITE_FALLBACK.key(),
                &format!("write one of {}", Destination::FORMS),
                Destination::parse,
            );
            if let Some(f) = &fallback
                && let Some(help) = leads_nowhere(&f.value, plan, users)
            {
                self.sink.error(
                    &f.span,
                    format!("{path}.fallback"),
                    format!("{} leads nowhere", f.value),
                    help,
                );
            }
            for k in ["name", "public_key", "subnets"] {
                if !s.has(k) {
                    s.missing(
                        self.sink,
                        k,
                        "a site needs its name, its box's public key and its subnets",
                    );
                }
            }
            let mut ok = true;
            if let Some(k) = &key
                && let Some(other) = vpn.sites.iter().find(|x| x.public_key == k.value)
            {
                ok = false;
                self.sink.error(
                    &k.span,
                    format!("{path}.public_key"),
                    format!("{} already has this key", other.name),
                    "each box has a key of its own: copy the right one from its Sites page",
                );
            }
            if let Some(n) = &name
                && let Some(j) = vpn.sites.iter().position(|x| x.name == n.value)
            {
                ok = false;
                self.sink.error(
                    &n.span,
                    format!("{path}.name"),
                    format!("{} is already vpn.sites[{j}]", n.value),
                    "give each site its own name",
                );
            }
            let mut nets = Vec::new();
            for (i, net) in subnets.iter().flatten().enumerate() {
                let v = net.value;
                let here = format!("{path}.subnets[{i}]");
                if let Some((_, what)) = taken.iter().find(|(t, _)| t.overlaps(v)) {
                    ok = false;
                    self.sink.error(
                        &net.span,
                        here,
                        format!("{v} overlaps {what}"),
                        "each site needs networks of its own: renumber one of them",
                    );
                } else {
                    taken.push((v, format!("{path}.subnets[{i}]")));
                    nets.push(Ipv4Net {
                        address: v.network(),
                        prefix: v.prefix,
                    });
                }
            }
            if let Some(a) = &address
                && !nets.is_empty()
                && !nets.iter().any(|n| n.is_host(a.value))
            {
                ok = false;
                self.sink.error(
                    &a.span,
                    format!("{path}.address"),
                    format!("{} is in none of the site's subnets", a.value),
                    "write its box's address on its LAN, inside its subnets",
                );
            }
            if let Some(d) = domain.as_ref().filter(|_| address.is_none()) {
                ok = false;
                self.sink.error(
                    &d.span,
                    format!("{path}.domain"),
                    format!(
                        "{}'s names are asked of the site's box, but its address is not given",
                        d.value
                    ),
                    "add address = its box's LAN address, e.g. \"192.168.2.1\"",
                );
            }
            if let (Some(d), Some(own)) = (&domain, own_domain)
                && d.value == own
            {
                ok = false;
                self.sink.error(
                    &d.span,
                    format!("{path}.domain"),
                    format!("{} is this office's own domain", d.value),
                    "write the other office's domain, e.g. \"branch.example.com\"",
                );
            }
            if let Some(e) = &extensions {
                let local = users.iter().find_map(|u| {
                    u.value
                        .extension
                        .as_deref()
                        .filter(|x| e.value.contains(x))
                        .map(|x| (x.to_string(), u.value.login.clone()))
                });
                if address.is_none() {
                    ok = false;
                    self.sink.error(
                        &e.span,
                        format!("{path}.extensions"),
                        "its extensions are called at its box, but its address is not given"
                            .to_string(),
                        "add address = its box's LAN address, e.g. \"192.168.2.1\"",
                    );
                }
                let emergency = plan.emergency_numbers.iter().find(|n| e.value.contains(n));
                if let Some(n) = emergency {
                    ok = false;
                    self.sink.error(
                        &e.span,
                        format!("{path}.extensions"),
                        format!("{} takes in the emergency number {n}", e.value),
                        "narrow it so that emergency calls still go out on a trunk, e.g. \"120-199\"",
                    );
                } else if let Some((ext, login)) = local {
                    ok = false;
                    self.sink.error(
                        &e.span,
                        format!("{path}.extensions"),
                        format!("{} takes in {ext}, {login}'s extension here", e.value),
                        "give the site extensions no local user has",
                    );
                } else if let Some((_, other)) = ranges.iter().find(|(r, _)| r.overlaps(&e.value)) {
                    ok = false;
                    self.sink.error(
                        &e.span,
                        format!("{path}.extensions"),
                        format!("{} overlaps {other}'s extensions", e.value),
                        "each site needs extensions of its own",
                    );
                } else {
                    ranges.push((e.value.clone(), path.clone()));
                }
            }
            s.finish(self.sink);
            if let (true, Some(name), Some(key), Some(_)) = (ok, name, key, subnets) {
                vpn.sites.push(Site {
                    name: name.value,
                    enabled,
                    public_key: key.value,
                    endpoint: endpoint.map(|e| e.value),
                    subnets: nets,
                    address: address.map(|a| a.value),
                    domain: domain.map(|d| d.value),
                    extensions: extensions.map(|e| e.value),
                    sip_port,
                    fallback: fallback.map(|f| f.value),
                });
            }
        }
        let lan_net = lan;
        for t in peers {
            if let Some(p) = self.vpn_peer(t, &vpn, lan_net, users) {
                vpn.peers.push(p);
            }
        }
        (vpn, port)
    }

    /// One `[[vpn.peers]]` entry: a user's device, its own tunnel address, what it may
    /// reach.
    fn vpn_peer(
        &mut self,
        mut t: Section,
        vpn: &Vpn,
        lan: Option<Ipv4Net>,
        users: &[Spanned<User>],
    ) -> Option<VpnPeer> {
        let path = t.path.clone();
        let name = t.parsed(
            self.sink,
            "name",
            "letters, digits and '-', e.g. \"alice-laptop\"",
            parse_label,
        );
        let user = t.string(self.sink, "user");
        let enabled = t.flag(self.sink, &schema::VPN_PEER_ENABLED);
        let address = t.parsed(
            self.sink,
            "address",
            "write an address in the tunnels' subnet, e.g. \"10.99.0.10\"",
            parse_ipv4,
        );
        let key = t.parsed(
            self.sink,
            "public_key",
            "the device's public key as its WireGuard app shows it (44 characters ending in =), or leave it out and let the box make one",
            parse_wireguard_key,
        );
        let access = t.parsed(self.sink, "access", "use \"lan\" or \"box\"", |s| match s {
            "lan" | "box" => Ok(s == "lan"),
            _ => Err(format!("unknown access `{s}`")),
        });
        let hosts = t.parsed_list(
            self.sink,
            "hosts",
            "write LAN addresses, e.g. [\"192.168.1.20\"]",
            parse_ipv4,
        );
        let full = t.parsed(
            self.sink,
            "tunnel",
            "use \"split\" or \"full\"",
            |s| match s {
                "split" | "full" => Ok(s == "full"),
                _ => Err(format!("unknown tunnel `{s}`")),
            },
        );
        let expires = t.parsed(
            self.sink,
            "expires",
            "write the last day it works, e.g. \"2027-06-30\"",
            super::dialplan::parse_date,
        );
        for k in ["name", "user", "address"] {
            if !t.has(k) {
                t.missing(
                    self.sink,
                    k,
                    "a device needs its name, its user and its tunnel address",
                );
            }
        }
        let mut ok = true;
        if let Some(k) = &key {
            let site = vpn
                .sites
                .iter()
                .find(|x| x.public_key == k.value)
                .map(|x| &x.name);
            let device = vpn
                .peers
                .iter()
                .find(|x| x.public_key == Some(k.value))
                .map(|x| &x.name);
            if let Some(other) = site.or(device) {
                ok = false;
                self.sink.error(
                    &k.span,
                    format!("{path}.public_key"),
                    format!("{other} already has this key"),
                    "each device has a key of its own: leave it out and let the box make one",
                );
            }
        }
        if let Some(n) = &name
            && (vpn.peers.iter().any(|p| p.name == n.value)
                || vpn.sites.iter().any(|s| s.name == n.value))
        {
            ok = false;
            self.sink.error(
                &n.span,
                format!("{path}.name"),
                format!("{} is already the name of a device or a site", n.value),
                "give each device its own name",
            );
        }
        if let Some(u) = &user
            && !users.iter().any(|x| x.value.login == u.value)
        {
            ok = false;
            self.sink.error(
                &u.span,
                format!("{path}.user"),
                format!("no user has the login `{}`", u.value),
                "name the login of the user whose device it is",
            );
        }
        if let Some(a) = &address {
            let net = vpn.address;
            let why = if !net.is_host(a.value) {
                Some(format!(
                    "{} is not a host of the tunnels' subnet {net}",
                    a.value
                ))
            } else if a.value == net.address {
                Some(format!("{} is the box's own tunnel address", a.value))
            } else {
                vpn.peers
                    .iter()
                    .find(|p| p.address == a.value)
                    .map(|p| format!("{} is already {}'s", a.value, p.name))
            };
            if let Some(why) = why {
                ok = false;
                self.sink.error(
                    &a.span,
                    format!("{path}.address"),
                    why,
                    format!("give each device its own address in {net}, e.g. the next free one"),
                );
            }
        }
        let lan_access = access.as_ref().is_none_or(|a| a.value);
        let hosts: Vec<Ipv4Addr> = hosts
            .into_iter()
            .flatten()
            .filter(|h| {
                let inside = lan.is_none_or(|l| l.is_host(h.value));
                if !inside {
                    self.sink.error(
                        &h.span,
                        format!("{path}.hosts"),
                        format!("{} is not on the LAN", h.value),
                        "list hosts of the office network",
                    );
                }
                inside
            })
            .map(|h| h.value)
            .collect();
        if lan_access && t.has("hosts") {
            self.sink.error(
                &t.key_span("hosts"),
                format!("{path}.hosts"),
                "hosts are only for a device that may not reach the whole LAN",
                "set access = \"box\" to limit it to the box and these hosts, or remove hosts",
            );
        }
        t.finish(self.sink);
        let (true, Some(name), Some(user), Some(address)) = (ok, name, user, address) else {
            return None;
        };
        Some(VpnPeer {
            name: name.value,
            user: user.value,
            enabled,
            address: address.value,
            public_key: key.map(|k| k.value),
            access: if lan_access {
                PeerAccess::Lan
            } else {
                PeerAccess::Hosts(hosts)
            },
            full_tunnel: full.is_some_and(|f| f.value),
            expires: expires.map(|e| e.value),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_endpoints_and_extensions_parse_or_say_why_not() {
        assert_eq!(
            parse_wireguard_key("hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=").map(|k| k[0]),
            Ok(0x85)
        );
        assert!(parse_wireguard_key("hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066Spjqqb").is_err());
        assert!(parse_wireguard_key("not a key at all, not even close to one!!!=").is_err());
        assert_eq!(decode_base64("TWFu"), Some(b"Man".to_vec()));
        assert_eq!(decode_base64("TWE="), Some(b"Ma".to_vec()));
        assert_eq!(decode_base64("TQ=="), Some(b"M".to_vec()));
        assert_eq!(decode_base64("T=Q="), None);
        assert_eq!(
            parse_endpoint("Branch.Example.com:51821"),
            Ok(("branch.example.com".into(), 51821))
        );
        assert_eq!(
            parse_endpoint("203.0.113.7"),
            Ok(("203.0.113.7".into(), 51820))
        );
        assert!(parse_endpoint("host:0").is_err());
        assert!(parse_endpoint("bad host!:1").is_err());
        let range = parse_extensions("200-299").unwrap();
        assert!(range.contains("250") && !range.contains("2500") && !range.contains("300"));
        let prefix = parse_extensions("3").unwrap();
        assert!(prefix.contains("301") && !prefix.contains("3") && !prefix.contains("401"));
        assert!(range.overlaps(&parse_extensions("2").unwrap()));
        assert!(range.overlaps(&parse_extensions("29").unwrap()));
        assert!(!range.overlaps(&parse_extensions("3").unwrap()));
        assert!(!range.overlaps(&parse_extensions("2000-2999").unwrap()));
        assert!(range.overlaps(&parse_extensions("290-310").unwrap()));
        for bad in ["299-200", "20-300", "2x", "", "-"] {
            assert!(parse_extensions(bad).is_err(), "{bad}");
        }
    }
}
