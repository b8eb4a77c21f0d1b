//! Derived settings: every rule of the form "X is Y in these modes", computed once, here.
//!
//! Each function is pure and has a table of tests below, one row per mode where the mode
//! matters. The rules are the appliance's (see the networking white paper, sections 4-6 and 10).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::model::{
    Config, Dhcp, Lan, Network, Protocol, SecurityMode, Service, Site, Vpn, VpnPeer, WanAddressing,
};
use crate::values::Ipv4Net;

/// The addresses a DHCP client is handed, computed from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpOptions {
    pub netmask: Ipv4Addr,
    /// Option 3; `None` when there is nothing to hand out (lan-only without a gateway).
    pub router: Option<Ipv4Addr>,
    /// Option 6.
    pub dns: Vec<Ipv4Addr>,
    /// Option 15.
    pub domain: String,
    /// Option 42; `None` when the box's time server is off.
    pub ntp: Option<Ipv4Addr>,
    /// Where phones find their files (options 66, 150 and 43); `None` when
    /// provisioning is off.
    pub provisioning: Option<ProvisioningOptions>,
}

/// What DHCP tells phones about the provisioning server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisioningOptions {
    /// The secret-free plain HTTP address (options 66 and 43 for every client).
    pub url: String,
    /// The HTTPS address, for assigned phones (with their token while it is unused:
    /// [`token_url_at`]).
    pub https: String,
    /// The box (option 150, the TFTP server address some phones read instead).
    pub server: Ipv4Addr,
}

/// The dynamic pool: `first..=last` minus `excluded`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
    pub excluded: Vec<Ipv4Addr>,
}

impl Pool {
    /// Number of addresses that can be handed out.
    pub fn size(&self) -> u64 {
        let span =
            (u64::from(u32::from(self.last)) + 1).saturating_sub(u64::from(u32::from(self.first)));
        let inside = self
            .excluded
            .iter()
            .filter(|a| (self.first..=self.last).contains(*a))
            .count() as u64;
        span.saturating_sub(inside)
    }
}

/// The default range: host numbers 1 to 100 of the LAN subnet (clamped to the subnet).
pub fn default_dhcp_range(lan: Ipv4Net) -> (Ipv4Addr, Ipv4Addr) {
    let (first_host, last_host) = lan.host_range();
    let network = u32::from(lan.network());
    let first = Ipv4Addr::from(network + 1).max(first_host);
    let last = Ipv4Addr::from(network.saturating_add(100)).min(last_host);
    (first, last)
}

/// The pool handed out: the configured range (or the default), skipping our own LAN address,
/// the configured exclusions and every reserved address.
pub fn dhcp_pool(lan: &Lan, dhcp: &Dhcp) -> Pool {
    let (first, last) = dhcp.range.unwrap_or_else(|| default_dhcp_range(lan.net));
    let mut excluded: Vec<Ipv4Addr> = std::iter::once(lan.net.address)
        .chain(dhcp.exclude.iter().copied())
        .chain(dhcp.reservations.iter().map(|r| r.address))
        .filter(|a| (first..=last).contains(a))
        .collect();
    excluded.sort();
    excluded.dedup();
    Pool {
        first,
        last,
        excluded,
    }
}

/// What DHCP clients are told, per security mode. The box names itself as DNS server and
/// time server only where it serves them; with its DNS off, clients are given the
/// upstream servers instead (so they still resolve names), and with NTP off, no time
/// server.
pub fn dhcp_options(config: &Config) -> DhcpOptions {
    let lan = &config.network.lan;
    let ours = lan.net.address;
    let upstream: Vec<Ipv4Addr> = config
        .dns
        .primary
        .into_iter()
        .chain(config.dns.secondary)
        .filter_map(|p| match p.ip() {
            IpAddr::V4(ip) => Some(ip),
            IpAddr::V6(_) => None,
        })
        .collect();
    let (router, dns) = match config.security.mode {
        // lan-only: officebox is just a LAN host; clients use the LAN's own router and the
        // configured primary DNS server.
        SecurityMode::LanOnly => (lan.gateway, upstream.into_iter().take(1).collect()),
        // Every other mode: officebox is the router and the resolver.
        SecurityMode::Router | SecurityMode::FirewallNat | SecurityMode::FirewallNatDmz => (
            Some(ours),
            if config.dns.enabled {
                vec![ours]
            } else {
                upstream
            },
        ),
    };
    DhcpOptions {
        netmask: lan.net.netmask(),
        router,
        dns,
        domain: config.network.domain.clone(),
        ntp: config.ntp.enabled.then_some(ours),
        provisioning: provisioning_urls(config).map(|u| ProvisioningOptions {
            url: u.http,
            https: u.https,
            server: ours,
        }),
    }
}

/// The provisioning server's addresses, as phones are told them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisioningUrls {
    /// `http://HOST:PORT/`: secret-free files.
    pub http: String,
    /// `https://HOST:PORT/`: an assigned phone's own files.
    pub https: String,
    /// The host in both: the box's LAN address (or the `listen` override).
    pub host: IpAddr,
}

/// Where the phones' provisioning server is, or `None` when provisioning is off.
pub fn provisioning_urls(config: &Config) -> Option<ProvisioningUrls> {
    if !provisioning_on(config) {
        return None;
    }
    let host = bind_addresses(config, Service::Provisioning)
        .into_iter()
        .find(|ip| !ip.is_unspecified())
        .unwrap_or(IpAddr::V4(config.network.lan.net.address));
    let at = |port: u16| match host {
        IpAddr::V4(ip) => format!("{ip}:{port}"),
        IpAddr::V6(ip) => format!("[{ip}]:{port}"),
    };
    Some(ProvisioningUrls {
        http: format!("http://{}/", at(config.phone.provisioning_port)),
        https: format!("https://{}/", at(config.phone.provisioning_tls_port)),
        host,
    })
}

/// The address an assigned phone is given (by DHCP or plug-and-play) while its one-time
/// `token` is unused: its own files over HTTPS, the token opening them once.
pub fn token_url(config: &Config, token: &str) -> Option<String> {
    provisioning_urls(config).map(|u| token_url_at(&u.https, token))
}

/// The token address under the HTTPS address `https` (which ends in `/`).
pub fn token_url_at(https: &str, token: &str) -> String {
    format!("{https}t/{token}/")
}

/// NAT is on exactly in the firewall modes (the firewall turns it on).
pub fn nat_enabled(mode: SecurityMode) -> bool {
    matches!(
        mode,
        SecurityMode::FirewallNat | SecurityMode::FirewallNatDmz
    )
}

/// The stateful firewall between LAN and WAN is on in the firewall modes.
pub fn firewall_enabled(mode: SecurityMode) -> bool {
    nat_enabled(mode)
}

/// IP forwarding between the interfaces: everything but lan-only.
pub fn forwarding_enabled(mode: SecurityMode) -> bool {
    mode != SecurityMode::LanOnly
}

/// Whether officebox's own WAN address is firewalled (stealth: unlisted ports drop).
pub fn wan_address_firewalled(mode: SecurityMode) -> bool {
    mode == SecurityMode::FirewallNatDmz
}

/// Whether the WAN interface is used at all.
pub fn wan_in_use(mode: SecurityMode) -> bool {
    mode != SecurityMode::LanOnly
}

/// The WAN address known from the config alone (a DHCP-leased one is known at run time).
pub fn static_wan_address(network: &Network) -> Option<Ipv4Addr> {
    match network.wan.addressing {
        WanAddressing::Static { net, .. } => Some(net.address),
        WanAddressing::Dhcp { .. } => None,
    }
}

/// The box's WAN address in use: none in lan-only mode (the WAN is not used), the
/// configured one when static, else the one the WAN DHCP client last `leased`.
pub fn wan_address(config: &Config, leased: Option<Ipv4Addr>) -> Option<Ipv4Addr> {
    if !wan_in_use(config.security.mode) {
        return None;
    }
    static_wan_address(&config.network).or(leased)
}

/// Names a DHCP client may not claim in the company zone, besides the built-in ones
/// (which it cannot claim either): names that other machines look up for a special
/// purpose and would trust whoever holds them (proxy auto-discovery, IPv6 transition,
/// this machine, mail clients finding their settings).
pub const RESERVED_CLIENT_NAMES: [&str; 7] = [
    "localhost",
    "wpad",
    "isatap",
    "autoconfig",
    "autodiscover",
    "imap",
    "mail",
];

/// Settings that are valid but probably not what the office wants, each said in words
/// with what to do instead (`officebox check` prints them, `officebox run` logs them).
pub fn advice(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let dns_hosted = config.dns.enabled && config.security.wan_services.contains(&Service::Dns);
    if dns_hosted
        && wan_in_use(config.security.mode)
        && matches!(config.network.wan.addressing, WanAddressing::Dhcp { .. })
    {
        out.push(format!(
            "security.wan_services: the box answers for {} on the Internet (dns), but its WAN address is leased by DHCP and may change; the domain's name server records point at an address, so hosting the domain's DNS needs a static WAN address (network.wan.mode = \"static\"), or take dns out of wan_services and host the zone elsewhere",
            config.network.domain
        ));
    }
    for u in &config.users {
        if let Some(ext) = &u.extension
            && u.sip_ha1_md5.is_some()
            && u.ext_secret(ext).is_none()
        {
            out.push(format!(
                "users[{}]: a phone can log in as {} but not yet as extension {ext}: that needs the password set again since the extension was given (`officebox user passwd {}`, or the Users page)",
                u.login, u.login, u.login
            ));
        }
    }
    if config.mail.relay_from_wan {
        out.push(
            "mail.relay_from_wan: anyone on the Internet may send mail through this box to anywhere (an open relay); turn it off unless you know why it must be on".to_string(),
        );
    }
    out
}

/// Whether a DHCP client may publish `host` (one label, lowercase) in the zone.
pub fn client_name_allowed(host: &str) -> bool {
    !RESERVED_CLIENT_NAMES.contains(&host)
}

/// Which addresses a built-in name points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuiltinTarget {
    Wan,
    Lan,
    Both,
}

/// The appliance's built-in names (white paper, section 10), and the names mail programs
/// look for when they find their settings by themselves (`imap`, and `autoconfig` and
/// `autodiscover`, which the www site answers).
pub const BUILTIN_NAMES: [(&str, BuiltinTarget); 10] = [
    ("www", BuiltinTarget::Wan),
    ("wan", BuiltinTarget::Wan),
    ("corp", BuiltinTarget::Lan),
    ("admin", BuiltinTarget::Lan),
    ("lan", BuiltinTarget::Lan),
    ("smtp", BuiltinTarget::Both),
    ("pop", BuiltinTarget::Both),
    ("imap", BuiltinTarget::Both),
    ("autoconfig", BuiltinTarget::Both),
    ("autodiscover", BuiltinTarget::Both),
];

/// One name of the zone that officebox makes itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltinName {
    /// Fully qualified, without trailing dot.
    pub name: String,
    pub addresses: Vec<Ipv4Addr>,
}

/// The built-in names with their addresses, given the current WAN address (`None` in
/// lan-only mode or before the WAN DHCP client has a lease). Without a WAN address, the
/// names meant for the WAN side fall back to the LAN address so the www site stays
/// reachable from the office, except `wan` itself, which then has no address. The box's
/// own host name is the zone's name server and points at both sides, like `smtp`.
pub fn builtin_names(network: &Network, wan: Option<Ipv4Addr>) -> Vec<BuiltinName> {
    let lan = network.lan.net.address;
    let mut out = Vec::new();
    let own = (network.hostname.as_str(), BuiltinTarget::Both);
    for (label, target) in BUILTIN_NAMES.into_iter().chain(std::iter::once(own)) {
        let addresses = match (target, wan) {
            (BuiltinTarget::Lan, _) => vec![lan],
            (BuiltinTarget::Wan, Some(w)) => vec![w],
            (BuiltinTarget::Wan, None) if label == "wan" => continue,
            (BuiltinTarget::Wan, None) => vec![lan],
            (BuiltinTarget::Both, Some(w)) => vec![w, lan],
            (BuiltinTarget::Both, None) => vec![lan],
        };
        if out
            .iter()
            .any(|b: &BuiltinName| b.name == fqdn(label, network))
        {
            continue;
        }
        out.push(BuiltinName {
            name: fqdn(label, network),
            addresses,
        });
    }
    out
}

fn fqdn(label: &str, network: &Network) -> String {
    format!("{label}.{}", network.domain)
}

/// The zone's MX: ourselves, through the `smtp` name that maps to both interfaces.
pub fn zone_mx(network: &Network) -> (u16, String) {
    (10, fqdn("smtp", network))
}

/// A mail service as a mail program reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailProtocol {
    Imap,
    Pop3,
    /// Sending: SMTP submission with a password.
    Submission,
}

/// How a connection to a mail service is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailTls {
    /// TLS from the first byte (993, 995, 465).
    Implicit,
    /// Plain first, then STARTTLS (or STLS) before the password (143, 110, 587).
    StartTls,
}

/// One way in to the box's mail, as published in the zone's SRV records (RFC 6186,
/// RFC 8314) and written in the settings files mail programs fetch (autoconfig,
/// autodiscover, Apple's profiles).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailEndpoint {
    pub protocol: MailProtocol,
    pub tls: MailTls,
    /// The built-in name a program connects to (`imap.<domain>`, ...).
    pub host: String,
    pub port: u16,
    /// The SRV record's owner, `_imaps._tcp.<domain>`; `None` for POP3 with STLS, which
    /// RFC 8314 would rather programs did not pick.
    pub srv: Option<String>,
}

/// The box's mail services in the order a program should prefer them: for each
/// protocol, implicit TLS first (RFC 8314 section 5.1). None when mail is off.
pub fn mail_endpoints(config: &Config) -> Vec<MailEndpoint> {
    if !config.mail.enabled {
        return Vec::new();
    }
    let m = &config.mail;
    let net = &config.network;
    let e = |protocol, tls, label: &str, port, srv: Option<&str>| MailEndpoint {
        protocol,
        tls,
        host: fqdn(label, net),
        port,
        srv: srv.map(|s| format!("{s}._tcp.{}", net.domain)),
    };
    use MailProtocol::{Imap, Pop3, Submission};
    use MailTls::{Implicit, StartTls};
    vec![
        e(Imap, Implicit, "imap", m.imaps_port, Some("_imaps")),
        e(Imap, StartTls, "imap", m.imap_port, Some("_imap")),
        e(Pop3, Implicit, "pop", m.pop3s_port, Some("_pop3s")),
        e(Pop3, StartTls, "pop", m.pop3_port, None),
        e(
            Submission,
            Implicit,
            "smtp",
            m.smtps_port,
            Some("_submissions"),
        ),
        e(
            Submission,
            StartTls,
            "smtp",
            m.submission_port,
            Some("_submission"),
        ),
    ]
}

/// The domain's SPF record (RFC 7208) while mail is on: the box's WAN address sends the
/// domain's mail. `~all` (soft fail) for the rest: the box cannot know that nothing else
/// sends as the domain (a web shop, a newsletter service); the DMARC policy is where the
/// office says how strict to be. None without a WAN address (lan-only, no lease yet).
pub fn spf_record(config: &Config, wan: Option<Ipv4Addr>) -> Option<String> {
    let wan = wan.filter(|_| config.mail.enabled)?;
    Some(format!("v=spf1 ip4:{wan} ~all"))
}

/// The domain's DMARC record (RFC 7489) at `_dmarc.<domain>`, while mail is on.
pub fn dmarc_record(config: &Config) -> Option<String> {
    config
        .mail
        .enabled
        .then(|| format!("v=DMARC1; p={}", config.mail.dmarc_policy.name()))
}

/// How much mail `login` may keep, in bytes; `None`: no limit (their own quota, else
/// `mail.quota`; 0 in either means none).
pub fn quota_of(config: &Config, login: &str) -> Option<u64> {
    let own = config
        .users
        .iter()
        .find(|u| u.login == login)
        .and_then(|u| u.quota);
    Some(own.unwrap_or(config.mail.quota)).filter(|q| *q > 0)
}

/// The DNS servers the box asks about names outside its zone (the Internet's DNS):
/// `dns.primary` and `dns.secondary`, when `dns.use_upstream` lets it ask anyone.
pub fn upstream_resolvers(config: &Config) -> Vec<SocketAddr> {
    if !config.dns.use_upstream {
        return Vec::new();
    }
    config
        .dns
        .primary
        .into_iter()
        .chain(config.dns.secondary)
        .collect()
}

/// A record the Internet's DNS must have for the domain's mail to work, whoever hosts
/// the zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeededRecord {
    /// Fully qualified, without the trailing dot.
    pub name: String,
    /// `MX`, `A`, `TXT`, `SRV` or `PTR`.
    pub rtype: &'static str,
    /// The value as a zone file writes it (TXT without quotes).
    pub value: String,
    /// What it is for, in a few words.
    pub why: &'static str,
}

/// Every record mail needs, given the WAN address (`None`: those naming it are left
/// out) and the DKIM keys in use (selector, TXT record): MX, the mail names' addresses,
/// SPF, DKIM, DMARC, the SRV records, and the PTR the ISP should set for the WAN address
/// (the name the box says in HELO). Empty when mail is off.
pub fn needed_mail_records(
    config: &Config,
    wan: Option<Ipv4Addr>,
    dkim: &[(String, String)],
) -> Vec<NeededRecord> {
    if !config.mail.enabled {
        return Vec::new();
    }
    let net = &config.network;
    let domain = net.domain.as_str();
    let r = |name: String, rtype, value: String, why| NeededRecord {
        name,
        rtype,
        value,
        why,
    };
    let (pref, mx) = zone_mx(net);
    let mut out = vec![r(
        domain.to_string(),
        "MX",
        format!("{pref} {mx}"),
        "where other servers deliver the domain's mail",
    )];
    if let Some(wan) = wan {
        for (label, why) in [
            ("smtp", "the mail server's name"),
            ("imap", "mail programs reading mail"),
            ("pop", "mail programs fetching mail"),
            ("autoconfig", "Thunderbird finding its settings"),
            ("autodiscover", "Outlook finding its settings"),
        ] {
            out.push(r(fqdn(label, net), "A", wan.to_string(), why));
        }
    }
    if let Some(spf) = spf_record(config, wan) {
        out.push(r(
            domain.to_string(),
            "TXT",
            spf,
            "SPF: which addresses send the domain's mail",
        ));
    }
    for (selector, txt) in dkim {
        out.push(r(
            format!("{selector}._domainkey.{domain}"),
            "TXT",
            txt.clone(),
            "DKIM: the key mail is signed with",
        ));
    }
    if let Some(dmarc) = dmarc_record(config) {
        out.push(r(
            format!("_dmarc.{domain}"),
            "TXT",
            dmarc,
            "DMARC: what receivers do with mail that fails",
        ));
    }
    for e in mail_endpoints(config) {
        if let Some(srv) = e.srv {
            out.push(r(
                srv,
                "SRV",
                format!("0 1 {} {}", e.port, e.host),
                "mail programs finding the server",
            ));
        }
    }
    if let Some(wan) = wan {
        let [a, b, c, d] = wan.octets();
        out.push(r(
            format!("{d}.{c}.{b}.{a}.in-addr.arpa"),
            "PTR",
            fqdn(&net.hostname, net),
            "set by the ISP: receivers check the sender's name",
        ));
    }
    out
}

/// The zone's name server: the box itself.
pub fn zone_ns(network: &Network) -> String {
    fqdn(&network.hostname, network)
}

/// Where a client's address puts it, for every policy that depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientZone {
    Loopback,
    Lan,
    /// A remote device through the tunnel (`[[vpn.peers]]`): the office's services as
    /// from the LAN (its names, recursion, mail and phones), but not the admin pages.
    Tunnel,
    Wan,
}

/// Classifies a client by its source address.
pub fn client_zone(network: &Network, ip: IpAddr) -> ClientZone {
    let ip = match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    };
    match ip {
        ip if ip.is_loopback() => ClientZone::Loopback,
        IpAddr::V4(v4) if network.lan.net.contains(v4) => ClientZone::Lan,
        IpAddr::V4(v4) if network.tunnel.is_some_and(|t| t.contains(v4)) => ClientZone::Tunnel,
        _ => ClientZone::Wan,
    }
}

/// Recursion (forwarding to the upstream servers) only for LAN, loopback and remote
/// device (tunnel) clients: officebox is never an open resolver.
pub fn recursion_allowed(zone: ClientZone) -> bool {
    zone != ClientZone::Wan
}

/// Relaying to other domains without authentication.
pub fn relay_allowed(config: &Config, zone: ClientZone) -> bool {
    zone != ClientZone::Wan || config.mail.relay_from_wan
}

/// The DNS servers the mail queue asks for other domains' mail hosts: `mail.resolvers`
/// when set; else, when the box looks names up upstream at all, its own DNS service
/// (which caches, and forwards to the upstream servers), or the upstream servers
/// themselves when the DNS service is off. Empty when there is none: the box's DNS
/// answers only local names then, and mail for other domains waits in the queue rather
/// than bouncing for want of a lookup.
pub fn mail_resolvers(config: &Config) -> Vec<SocketAddr> {
    if !config.mail.resolvers.is_empty() {
        return config.mail.resolvers.clone();
    }
    if !config.dns.use_upstream {
        return Vec::new();
    }
    own_resolvers(config)
}

/// The DNS servers the box asks for itself: its own DNS service when it runs (it
/// answers the company zone, and forwards the rest upstream when allowed), else the
/// upstream servers. For the phone system's trunks: a provider's domain (RFC 3263 SRV,
/// then addresses).
pub fn own_resolvers(config: &Config) -> Vec<SocketAddr> {
    if config.dns.enabled {
        return bind_addresses(config, Service::Dns)
            .into_iter()
            .map(|ip| {
                let ip = match ip {
                    IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
                    other => other,
                };
                SocketAddr::new(ip, config.dns.port)
            })
            .take(1)
            .collect();
    }
    config
        .dns
        .primary
        .into_iter()
        .chain(config.dns.secondary)
        .collect()
}

/// Why [`mail_resolvers`] is empty, in words for the mail queue's status.
pub fn no_mail_resolvers_reason(config: &Config) -> &'static str {
    if config.dns.enabled {
        "no DNS lookups for other domains: the box's DNS answers only the company zone (dns.use_upstream = false); turn dns.use_upstream on, or set mail.resolvers"
    } else {
        "no DNS server to look up mail hosts: the box's DNS is off and dns.use_upstream = false; turn dns.use_upstream on, or set mail.resolvers"
    }
}

/// One port officebox listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    pub service: Service,
    pub protocol: Protocol,
    pub port: u16,
}

/// Whether the config runs `service`.
pub fn service_enabled(config: &Config, service: Service) -> bool {
    match service {
        Service::Dns => config.dns.enabled,
        Service::Dhcp => config.dhcp.enabled,
        Service::Smtp
        | Service::Submission
        | Service::Smtps
        | Service::Pop3
        | Service::Pop3s
        | Service::Imap
        | Service::Imaps => config.mail.enabled,
        Service::Sip => config.phone.enabled,
        Service::Www | Service::Admin => config.web.enabled,
        Service::Ntp => config.ntp.enabled,
        Service::Provisioning | Service::ProvisioningTls => provisioning_on(config),
    }
}

/// Whether phones are provisioned: the phone service, provisioning and the web service
/// (which serves the files) are all on.
pub fn provisioning_on(config: &Config) -> bool {
    config.phone.enabled && config.phone.provisioning && config.web.enabled
}

/// The port `service` listens on.
pub fn service_port(config: &Config, service: Service) -> u16 {
    let mail = &config.mail;
    match service {
        Service::Dns => config.dns.port,
        Service::Dhcp => 67,
        Service::Smtp => mail.smtp_port,
        Service::Submission => mail.submission_port,
        Service::Smtps => mail.smtps_port,
        Service::Pop3 => mail.pop3_port,
        Service::Pop3s => mail.pop3s_port,
        Service::Imap => mail.imap_port,
        Service::Imaps => mail.imaps_port,
        Service::Sip => config.phone.sip_port,
        Service::Www => config.web.site_port,
        Service::Admin => config.web.admin_port,
        Service::Ntp => config.ntp.port,
        Service::Provisioning => config.phone.provisioning_port,
        Service::ProvisioningTls => config.phone.provisioning_tls_port,
    }
}

/// Every port of every enabled service.
pub fn listeners(config: &Config) -> Vec<Listener> {
    Service::ALL
        .into_iter()
        .filter(|&s| service_enabled(config, s))
        .flat_map(|service| {
            service.protocols().iter().map(move |&protocol| Listener {
                service,
                protocol,
                port: service_port(config, service),
            })
        })
        .collect()
}

/// The ports of officebox's own services open on the WAN side, per mode: none in lan-only
/// (the WAN is unused); in router and firewall-nat mode the public services listed in
/// `wan_services`; in DMZ mode exactly those too, and everything else is dropped silently.
pub fn wan_open_ports(config: &Config) -> Vec<Listener> {
    if !wan_in_use(config.security.mode) {
        return Vec::new();
    }
    listeners(config)
        .into_iter()
        .filter(|l| config.security.wan_services.contains(&l.service))
        .collect()
}

/// The addresses a service binds: the `listen` override when set; the admin pages the
/// LAN address only; in lan-only mode (no WAN) the LAN address and loopback; else any
/// address (the firewall decides who reaches what).
pub fn bind_addresses(config: &Config, service: Service) -> Vec<IpAddr> {
    if !config.network.listen.is_empty() {
        return config.network.listen.clone();
    }
    let lan = IpAddr::V4(config.network.lan.net.address);
    match service {
        Service::Admin | Service::Provisioning | Service::ProvisioningTls => vec![lan],
        _ if !wan_in_use(config.security.mode) => vec![lan, IpAddr::V4(Ipv4Addr::LOCALHOST)],
        _ => vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)],
    }
}

/// The WireGuard tunnels' interface (a TUN device officebox makes; the kernel's
/// WireGuard would use the same name).
pub const VPN_INTERFACE: &str = "obx-wg0";

/// The tunnels' UDP port, when they run and there is a WAN for them to use.
pub fn vpn_wan_port(config: &Config) -> Option<u16> {
    (config.vpn.enabled && wan_in_use(config.security.mode)).then_some(config.vpn.listen_port)
}

/// The zones the other sites' boxes answer for, and where each box is asked: each
/// enabled site's domain and the reverse zones of its subnets (a subnet not on an octet
/// boundary as the /24s or /16s it spans, at most 256 of them), when the tunnels run and
/// the site's box address is known.
pub fn site_zones(config: &Config) -> Vec<(String, SocketAddr)> {
    let mut out = Vec::new();
    if !config.vpn.enabled {
        return out;
    }
    for site in config.vpn.sites.iter().filter(|s| s.enabled) {
        let Some(address) = site.address else {
            continue;
        };
        let server = SocketAddr::from((address, 53));
        if let Some(domain) = &site.domain {
            out.push((domain.clone(), server));
        }
        for net in &site.subnets {
            let (step, unit) = match net.prefix {
                p if p % 8 == 0 && p > 0 => (p, 0u32),
                p if p > 16 => (24, 1 << 8),
                p if p > 8 => (16, 1 << 16),
                _ => continue,
            };
            let first = u32::from(net.network());
            let count = if unit == 0 {
                1
            } else {
                1u32 << (step - net.prefix)
            };
            for i in 0..count.min(256) {
                let zone = crate::reverse_zone(Ipv4Net {
                    address: Ipv4Addr::from(first + i * unit.max(1)),
                    prefix: step,
                });
                out.push((zone, server));
            }
        }
    }
    out
}

/// The remote device (`[[vpn.peers]]`) whose tunnel address `source` is, while the
/// tunnels run: what arrives from that address came through that device's tunnel, sealed
/// with its key (the tunnel drops any other source from it, and the firewall drops the
/// tunnels' addresses arriving anywhere else).
pub fn device_at(config: &Config, source: IpAddr) -> Option<&VpnPeer> {
    let IpAddr::V4(source) = source else {
        return None;
    };
    if !config.vpn.enabled {
        return None;
    }
    config.vpn.peers.iter().find(|p| p.address == source)
}

/// The tunnel address for a new device: the first free host of the tunnels' subnet from
/// its tenth on (the first nine are left for the offices' own boxes, which number
/// themselves from the start), then any free one; not the box's own and no other
/// device's. `None` when the subnet is full.
pub fn free_device_address(vpn: &Vpn) -> Option<Ipv4Addr> {
    let net = vpn.address;
    let first = u32::from(net.network());
    let size = 1u64 << (32 - u32::from(net.prefix));
    let taken = |ip: Ipv4Addr| ip == net.address || vpn.peers.iter().any(|p| p.address == ip);
    let start = if size > 16 { 10 } else { 1 };
    (start..size)
        .chain(1..start)
        .filter_map(|i| u32::try_from(i).ok())
        .map(|i| Ipv4Addr::from(first.wrapping_add(i)))
        .find(|&ip| net.is_host(ip) && !taken(ip))
}

/// Where mail for `local` (a local part of the company's domain) goes: users' mailboxes
/// and addresses elsewhere, through the aliases (recursively; an alias naming itself
/// keeps that user's own copy), `postmaster` to the admins. Both empty: nobody here.
/// Shared by SMTP and by the phone system's voicemail and faxes, which are delivered
/// like a mail to the user.
pub fn mail_targets(
    config: &Config,
    local: &str,
) -> (
    std::collections::BTreeSet<String>,
    std::collections::BTreeSet<String>,
) {
    let mut mailboxes = std::collections::BTreeSet::new();
    let mut forward = std::collections::BTreeSet::new();
    let mut seen = std::collections::BTreeSet::new();
    expand_alias(config, local, &mut mailboxes, &mut forward, &mut seen);
    (mailboxes, forward)
}

fn expand_alias(
    config: &Config,
    name: &str,
    mailboxes: &mut std::collections::BTreeSet<String>,
    forward: &mut std::collections::BTreeSet<String>,
    seen: &mut std::collections::BTreeSet<String>,
) {
    if !seen.insert(name.to_string()) {
        return; // loops are refused by the config; this guards anyway
    }
    let is_user = |n: &str| config.users.iter().any(|u| u.login == n);
    match config.mail.aliases.iter().find(|a| a.name == name) {
        Some(alias) => {
            for m in &alias.members {
                match m {
                    // An alias naming itself keeps the copy in that user's own mailbox.
                    crate::AliasMember::Local(l) if l == name => {
                        if is_user(l) {
                            mailboxes.insert(l.clone());
                        }
                    }
                    crate::AliasMember::Local(l) => {
                        expand_alias(config, l, mailboxes, forward, seen);
                    }
                    crate::AliasMember::External(addr) => {
                        forward.insert(addr.clone());
                    }
                }
            }
        }
        None if is_user(name) => {
            mailboxes.insert(name.to_string());
        }
        // postmaster must always work (RFC 5321 section 4.5.1): the admins get it.
        None if name == "postmaster" => {
            mailboxes.extend(
                config
                    .users
                    .iter()
                    .filter(|u| u.admin)
                    .map(|u| u.login.clone()),
            );
        }
        None => {}
    }
}

/// The site whose box takes calls to `dialled`: an enabled site, while the tunnels run,
/// whose extensions include it (a local user's extension always wins; the config
/// refuses a site's range that takes one in, this only makes sure).
pub fn site_for_extension<'c>(config: &'c Config, dialled: &str) -> Option<&'c Site> {
    // An emergency number always goes out on a trunk (the config refuses a site's
    // extensions that take one in; this only makes sure).
    if !config.vpn.enabled
        || config
            .phone
            .dial_plan
            .emergency_numbers
            .iter()
            .any(|n| n == dialled)
        || config
            .users
            .iter()
            .any(|u| u.extension.as_deref() == Some(dialled) || u.login == dialled)
    {
        return None;
    }
    config.vpn.sites.iter().find(|s| {
        s.enabled
            && s.address.is_some()
            && s.extensions.as_ref().is_some_and(|e| e.contains(dialled))
    })
}

/// This office's extensions as another site would write them (`vpn pairing`): when all
/// are as long and start with one digit, their block (`100-199`) narrowed to keep the
/// emergency numbers out (with 112: `100-111` for 101 and 102, `113-199` for 120 and
/// 150); `None` when there are none, their lengths differ, they share no first digit,
/// or an emergency number lies among them (the admin writes a range).
pub fn extension_block(config: &Config) -> Option<String> {
    let exts: Vec<&str> = config
        .users
        .iter()
        .filter_map(|u| u.extension.as_deref())
        .collect();
    let first = exts.first()?.get(..1)?;
    if !exts.iter().all(|e| e.starts_with(first)) {
        return None;
    }
    let len = exts[0].len();
    if len < 2 || exts.iter().any(|e| e.len() != len) {
        return None;
    }
    let number = |e: &str| e.parse::<u64>().ok();
    let base = number(first)? * 10u64.pow(u32::try_from(len - 1).ok()?);
    let (mut low, mut high) = (base, base + 10u64.pow(u32::try_from(len - 1).ok()?) - 1);
    let lowest = exts.iter().filter_map(|e| number(e)).min()?;
    let highest = exts.iter().filter_map(|e| number(e)).max()?;
    // The widest part of the block around the extensions that holds no emergency number
    // (same-length numbers sort as numbers).
    for n in &config.phone.dial_plan.emergency_numbers {
        let Some(v) = number(n).filter(|_| n.len() == len) else {
            continue;
        };
        match v {
            v if v < low || v > high => {}
            v if v < lowest => low = v + 1,
            v if v > highest => high = v - 1,
            _ => return None,
        }
    }
    Some(format!("{low:0len$}-{high:0len$}"))
}

/// This office as the other site writes it in its config: its key, where it is, its
/// LAN, its box, its domain, and (when the phones are on) its extensions and SIP port.
pub fn pairing_text(config: &Config, key: &str, wan: Option<std::net::Ipv4Addr>) -> String {
    use std::fmt::Write as _;
    let lan = config.network.lan.net;
    let mut t =
        String::from("# Paste into the other office's officebox.toml (or its Sites page):\n");
    t.push_str("[[vpn.sites]]\n");
    let _ = writeln!(t, "name = \"{}\"", config.network.hostname);
    let _ = writeln!(t, "public_key = \"{key}\"");
    if let Some(w) = wan {
        let _ = writeln!(t, "endpoint = \"{w}:{}\"", config.vpn.listen_port);
    }
    let _ = writeln!(t, "subnets = [\"{}/{}\"]", lan.network(), lan.prefix);
    let _ = writeln!(t, "address = \"{}\"", lan.address);
    let _ = writeln!(t, "domain = \"{}\"", config.network.domain);
    if config.phone.enabled {
        match extension_block(config) {
            Some(block) => {
                let _ = writeln!(t, "extensions = \"{block}\"");
            }
            None => t.push_str(
                "# extensions = \"...\"  # this office's extensions share no first digit: write them\n",
            ),
        }
        if config.phone.sip_port != 5060 {
            let _ = writeln!(t, "sip_port = {}", config.phone.sip_port);
        }
    }
    t
}

/// The feature codes of call forwarding and do-not-disturb (the usual ones of office
/// phone systems): forward every call, when busy, when not answered (each followed by
/// the extension or number, as the user would dial it), forwarding off, and DND on/off.
pub const FORWARD_ALWAYS_CODE: &str = "*72";
pub const FORWARD_BUSY_CODE: &str = "*90";
pub const FORWARD_NO_ANSWER_CODE: &str = "*92";
pub const FORWARD_OFF_CODE: &str = "*73";
pub const DND_CODE: &str = "*78";
/// Pickup: alone, the call ringing longest at an office phone; + an extension, the call
/// ringing there.
pub const PICKUP_CODE: &str = "*8";
/// Intercom: + an extension, its phone answers by itself (the phone's intercom setting).
pub const INTERCOM_CODE: &str = "*80";
/// Paging: every other office phone is asked to answer by itself and hears the caller;
/// followed by `*` and N, the phones of the Nth ring group only.
pub const PAGE_CODE: &str = "*81";
/// Three-way call: keyed in during a call while another call of the same user is
/// answered (on hold, as in an attended transfer), it joins the two calls' three parties.
pub const THREE_WAY_CODE: &str = "*3";
/// Park places after the park extension (701 ... 720 for 700).
pub const PARK_PLACES: u32 = 20;

/// The park places of park extension `ext` (digits): the next [`PARK_PLACES`] numbers.
pub fn park_places_of(ext: &str) -> Vec<String> {
    let Ok(first) = ext.parse::<u32>() else {
        return Vec::new();
    };
    (1..=PARK_PLACES)
        .map(|i| format!("{:0width$}", first + i, width = ext.len()))
        .collect()
}

/// The config's park places (none when parking is off).
pub fn park_places(config: &Config) -> Vec<String> {
    if config.phone.park_extension.is_empty() {
        return Vec::new();
    }
    park_places_of(&config.phone.park_extension)
}

/// Whether `user` may forward their calls to `to`: another user's extension (or login),
/// or a number one of their routes takes (when they may call out at all).
pub fn forward_reachable(config: &Config, user: &crate::model::User, to: &str) -> bool {
    if to.is_empty() {
        return false;
    }
    if let Some(other) = config
        .users
        .iter()
        .find(|u| u.extension.as_deref() == Some(to) || u.login == to)
    {
        return other.login != user.login;
    }
    if site_for_extension(config, to).is_some() {
        return true;
    }
    user.outside.at_once > 0
        && matches!(
            config.phone.dial_plan.outbound(&user.login, to),
            crate::dialplan::Outbound::Route { .. }
        )
}

/// What a phone can dial besides extensions and outside numbers: each feature code, and
/// what it does, in words for the Phones page and `officebox phone codes`.
pub fn feature_codes(config: &Config) -> Vec<(String, String)> {
    let phone = &config.phone;
    let mut codes = vec![(
        phone.voicemail_extension.clone(),
        "your voicemail: PIN, messages, greeting (an administrator records the auto \
         attendant's greeting with 5)"
            .to_string(),
    )];
    if !phone.dial_plan.schedules.is_empty() {
        codes.push((
            phone.night_code.clone(),
            "close the office now (or open it) until the office hours next change; again \
             to undo (a BLF key on it lights while it holds)"
                .to_string(),
        ));
    }
    if !phone.record_code.is_empty() {
        codes.push((
            format!("{} during a call", phone.record_code),
            "record the call into your mailbox (both sides hear a tone); again to stop".to_string(),
        ));
    }
    codes.push((
        format!("{THREE_WAY_CODE} during a call"),
        "three-way call: with another call on hold (as for an attended transfer), all three \
         talk together; the box hangs up your held call"
            .to_string(),
    ));
    codes.extend([
        (
            format!("{FORWARD_ALWAYS_CODE} + number"),
            "forward every call to that extension or outside number".to_string(),
        ),
        (
            format!("{FORWARD_BUSY_CODE} + number"),
            "forward calls there when your phones are busy".to_string(),
        ),
        (
            format!("{FORWARD_NO_ANSWER_CODE} + number"),
            "forward calls there when nobody answers in time".to_string(),
        ),
        (
            FORWARD_OFF_CODE.to_string(),
            "call forwarding off".to_string(),
        ),
        (
            DND_CODE.to_string(),
            "do not disturb: your callers go to your voicemail; again to undo".to_string(),
        ),
    ]);
    if let (Some(first), Some(last)) = (park_places(config).first(), park_places(config).last()) {
        codes.push((
            format!("transfer to {}", phone.park_extension),
            format!("park the call: the box says its place ({first}-{last})"),
        ));
        codes.push((
            format!("{first}-{last}"),
            format!(
                "take the call parked there ({} alone: the longest parked)",
                phone.park_extension
            ),
        ));
    }
    if !phone.conference_extension.is_empty() {
        codes.push((
            phone.conference_extension.clone(),
            format!(
                "the meet-me conference (up to {}{})",
                phone.conference_size,
                if phone.conference_pin.is_empty() {
                    ""
                } else {
                    ", with its PIN"
                }
            ),
        ));
    }
    codes.push((
        PAGE_CODE.to_string(),
        "page: every other office phone answers by itself and hears you (one way)".to_string(),
    ));
    for (i, g) in phone.dial_plan.ring_groups.iter().enumerate() {
        codes.push((
            format!("{PAGE_CODE}*{}", i + 1),
            format!(
                "page ring group {}: its phones answer by themselves",
                g.name
            ),
        ));
    }
    codes.push((
        format!("{INTERCOM_CODE} + extension"),
        "intercom: that phone answers by itself, on its speaker".to_string(),
    ));
    codes.push((
        format!("{PICKUP_CODE} + extension"),
        format!("answer the call ringing there ({PICKUP_CODE} alone: any ringing office phone)"),
    ));
    for n in &phone.dial_plan.emergency_numbers {
        codes.push((
            n.clone(),
            "emergency: goes out on the first working trunk".to_string(),
        ));
    }
    codes
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_feature_codes_are_those_the_config_turns_on() {
        let text = include_str!("../../../examples/demo.toml");
        let c = crate::parse("demo.toml", text).unwrap();
        let codes: Vec<String> = feature_codes(&c).into_iter().map(|(k, _)| k).collect();
        assert!(codes.contains(&"*97".to_string()), "{codes:?}");
        assert!(codes.contains(&"*1 during a call".to_string()), "{codes:?}");
        assert!(codes.contains(&"911".to_string()), "{codes:?}");
        assert!(codes.contains(&"*72 + number".to_string()), "{codes:?}");
        assert!(codes.contains(&"*78".to_string()), "{codes:?}");
        // No office hours: no night code to offer.
        assert!(!codes.contains(&"*30".to_string()), "{codes:?}");
    }

    use super::*;
    use crate::model::Reservation;
    use crate::values::Mac;

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA";

    /// A config in `mode` with the given extra settings, through the real parser.
    fn config(mode: SecurityMode, extra: &str) -> Config {
        let text = format!(
            r#"
[network]
hostname = "box"
domain = "example.com"
manage = false
[network.wan]
mode = "static"
address = "203.0.113.10"
netmask = "255.255.255.0"
gateway = "203.0.113.1"
[network.lan]
address = "192.168.1.1"
netmask = "255.255.255.0"
gateway = "192.168.1.254"
[security]
mode = "{}"
[dns]
primary = "192.0.2.53"
[[users]]
login = "admin"
password = "{HASH}"
admin = true
{extra}
"#,
            mode.name()
        );
        match crate::parse("test.toml", &text) {
            Ok(c) => c,
            Err(d) => panic!("test config invalid:\n{d}"),
        }
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn mail_asks_its_own_dns_unless_told_otherwise() {
        let c = config(SecurityMode::FirewallNat, "");
        assert_eq!(mail_resolvers(&c), vec!["127.0.0.1:53".parse().unwrap()]);
        let mut c = config(SecurityMode::FirewallNat, "");
        c.dns.enabled = false;
        assert_eq!(mail_resolvers(&c), vec!["192.0.2.53:53".parse().unwrap()]);
        c.dns.use_upstream = false;
        assert!(mail_resolvers(&c).is_empty(), "no lookups: mail waits");
        let c = config(
            SecurityMode::FirewallNat,
            "[mail]\nresolvers = [\"198.51.100.1:5353\"]",
        );
        assert_eq!(
            mail_resolvers(&c),
            vec!["198.51.100.1:5353".parse().unwrap()]
        );
    }

    #[test]
    fn dhcp_options_per_mode() {
        // mode, router option, dns option: the white paper's rules (section 5).
        let table = [
            (SecurityMode::LanOnly, Some("192.168.1.254"), "192.0.2.53"),
            (SecurityMode::Router, Some("192.168.1.1"), "192.168.1.1"),
            (
                SecurityMode::FirewallNat,
                Some("192.168.1.1"),
                "192.168.1.1",
            ),
            (
                SecurityMode::FirewallNatDmz,
                Some("192.168.1.1"),
                "192.168.1.1",
            ),
        ];
        for (mode, router, dns) in table {
            let c = config(mode, "");
            let o = dhcp_options(&c);
            assert_eq!(o.router, router.map(ip), "{mode:?} router");
            assert_eq!(o.dns, vec![ip(dns)], "{mode:?} dns");
            // The same in every mode: netmask from the LAN, domain, our own time server.
            assert_eq!(o.netmask, ip("255.255.255.0"), "{mode:?}");
            assert_eq!(o.domain, "example.com", "{mode:?}");
            assert_eq!(o.ntp, Some(ip("192.168.1.1")), "{mode:?}");
        }
    }

    #[test]
    fn advice_on_hosting_dns_with_a_leased_address() {
        let c = config(SecurityMode::FirewallNat, "");
        assert!(advice(&c).is_empty(), "{:?}", advice(&c));
        let mut leased = config(SecurityMode::FirewallNat, "");
        leased.security.wan_services = vec![Service::Dns, Service::Smtp];
        leased.network.wan.addressing = WanAddressing::Dhcp {
            release_on_shutdown: false,
        };
        let said = advice(&leased);
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].contains("static WAN address"), "{}", said[0]);
        let mut lan_only = leased.clone();
        lan_only.security.mode = SecurityMode::LanOnly;
        assert!(advice(&lan_only).is_empty(), "no WAN, no advice");
    }

    #[test]
    fn dhcp_names_the_box_only_for_services_it_runs() {
        let mut c = config(SecurityMode::FirewallNat, "");
        c.dns.enabled = false;
        c.ntp.enabled = false;
        let o = dhcp_options(&c);
        assert_eq!(o.dns, vec![ip("192.0.2.53")], "the upstream server instead");
        assert_eq!(o.ntp, None);
        c.dns.primary = None;
        assert!(dhcp_options(&c).dns.is_empty());
    }

    #[test]
    fn lan_only_without_gateway_or_ipv4_dns_hands_out_none() {
        let text = format!(
            "[network]\ndomain = \"example.com\"\nmanage = false\n[security]\nmode = \"lan-only\"\n\
             [dns]\nprimary = \"2001:db8::53\"\n[[users]]\nlogin = \"a\"\npassword = \"{HASH}\"\nadmin = true\n"
        );
        let c = crate::parse("t.toml", &text).unwrap();
        let o = dhcp_options(&c);
        assert_eq!(o.router, None);
        assert!(o.dns.is_empty());
    }

    #[test]
    fn mode_switches() {
        // mode, forwarding, NAT, firewall, stealth WAN, WAN in use
        let table = [
            (SecurityMode::LanOnly, false, false, false, false, false),
            (SecurityMode::Router, true, false, false, false, true),
            (SecurityMode::FirewallNat, true, true, true, false, true),
            (SecurityMode::FirewallNatDmz, true, true, true, true, true),
        ];
        for (mode, fwd, nat, fw, stealth, wan) in table {
            assert_eq!(forwarding_enabled(mode), fwd, "{mode:?} forwarding");
            assert_eq!(nat_enabled(mode), nat, "{mode:?} nat");
            assert_eq!(firewall_enabled(mode), fw, "{mode:?} firewall");
            assert_eq!(wan_address_firewalled(mode), stealth, "{mode:?} stealth");
            assert_eq!(wan_in_use(mode), wan, "{mode:?} wan");
        }
    }

    #[test]
    fn default_pool() {
        // LAN address/prefix -> first, last, excluded
        let table: [(&str, u8, &str, &str, &[&str]); 6] = [
            (
                "192.168.1.1",
                24,
                "192.168.1.1",
                "192.168.1.100",
                &["192.168.1.1"],
            ),
            (
                "192.168.1.50",
                24,
                "192.168.1.1",
                "192.168.1.100",
                &["192.168.1.50"],
            ),
            ("192.168.1.200", 24, "192.168.1.1", "192.168.1.100", &[]),
            ("10.0.0.1", 28, "10.0.0.1", "10.0.0.14", &["10.0.0.1"]),
            ("172.16.5.1", 16, "172.16.0.1", "172.16.0.100", &[]),
            (
                "192.168.1.129",
                25,
                "192.168.1.129",
                "192.168.1.228",
                &["192.168.1.129"],
            ),
        ];
        for (addr, prefix, first, last, excluded) in table {
            let lan = Lan {
                interface: None,
                net: Ipv4Net {
                    address: ip(addr),
                    prefix,
                },
                gateway: None,
            };
            let dhcp = Dhcp {
                enabled: true,
                range: None,
                lease_time: std::time::Duration::from_secs(3600),
                exclude: vec![],
                ping_check: false,
                server_check: std::time::Duration::from_secs(60),
                reservations: vec![],
            };
            let pool = dhcp_pool(&lan, &dhcp);
            let want: Vec<Ipv4Addr> = excluded.iter().map(|a| ip(a)).collect();
            assert_eq!(
                (pool.first, pool.last, pool.excluded),
                (ip(first), ip(last), want),
                "{addr}/{prefix}"
            );
        }
    }

    #[test]
    fn pool_skips_exclusions_and_reservations() {
        let mut c = config(
            SecurityMode::FirewallNat,
            "[dhcp]\nrange = [\"192.168.1.1\", \"192.168.1.10\"]\nexclude = [\"192.168.1.5\"]\n",
        );
        c.dhcp.reservations.push(Reservation {
            mac: Mac([2, 0, 0, 0, 0, 1]),
            address: ip("192.168.1.7"),
            hostname: None,
        });
        let pool = dhcp_pool(&c.network.lan, &c.dhcp);
        assert_eq!(
            pool.excluded,
            vec![ip("192.168.1.1"), ip("192.168.1.5"), ip("192.168.1.7")]
        );
        assert_eq!(pool.size(), 7);
    }

    #[test]
    fn builtin_names_with_and_without_a_wan_address() {
        let c = config(SecurityMode::FirewallNat, "");
        let wan = Some(ip("203.0.113.10"));
        let show = |names: Vec<BuiltinName>| -> Vec<String> {
            names
                .into_iter()
                .map(|b| {
                    let a: Vec<String> = b.addresses.iter().map(ToString::to_string).collect();
                    format!("{} {}", b.name, a.join(" "))
                })
                .collect()
        };
        assert_eq!(
            show(builtin_names(&c.network, wan)),
            [
                "www.example.com 203.0.113.10",
                "wan.example.com 203.0.113.10",
                "corp.example.com 192.168.1.1",
                "admin.example.com 192.168.1.1",
                "lan.example.com 192.168.1.1",
                "smtp.example.com 203.0.113.10 192.168.1.1",
                "pop.example.com 203.0.113.10 192.168.1.1",
                "imap.example.com 203.0.113.10 192.168.1.1",
                "autoconfig.example.com 203.0.113.10 192.168.1.1",
                "autodiscover.example.com 203.0.113.10 192.168.1.1",
                "box.example.com 203.0.113.10 192.168.1.1",
            ]
        );
        // lan-only, or no lease yet: www falls back to the LAN, wan has no address.
        assert_eq!(
            show(builtin_names(&c.network, None)),
            [
                "www.example.com 192.168.1.1",
                "corp.example.com 192.168.1.1",
                "admin.example.com 192.168.1.1",
                "lan.example.com 192.168.1.1",
                "smtp.example.com 192.168.1.1",
                "pop.example.com 192.168.1.1",
                "imap.example.com 192.168.1.1",
                "autoconfig.example.com 192.168.1.1",
                "autodiscover.example.com 192.168.1.1",
                "box.example.com 192.168.1.1",
            ]
        );
        assert_eq!(zone_mx(&c.network), (10, "smtp.example.com".to_string()));
        assert_eq!(zone_ns(&c.network), "box.example.com");
        assert_eq!(static_wan_address(&c.network), wan);
    }

    #[test]
    fn mail_endpoints_prefer_tls_and_follow_the_ports() {
        let c = config(
            SecurityMode::FirewallNat,
            "[mail]\nimaps_port = 10993\nsubmission_port = 10587\n",
        );
        let shown: Vec<String> = mail_endpoints(&c)
            .iter()
            .map(|e| {
                let srv = e.srv.as_deref().unwrap_or("-");
                format!("{:?} {:?} {}:{} {srv}", e.protocol, e.tls, e.host, e.port)
            })
            .collect();
        assert_eq!(
            shown,
            [
                "Imap Implicit imap.example.com:10993 _imaps._tcp.example.com",
                "Imap StartTls imap.example.com:143 _imap._tcp.example.com",
                "Pop3 Implicit pop.example.com:995 _pop3s._tcp.example.com",
                "Pop3 StartTls pop.example.com:110 -",
                "Submission Implicit smtp.example.com:465 _submissions._tcp.example.com",
                "Submission StartTls smtp.example.com:10587 _submission._tcp.example.com",
            ]
        );
        let off = config(SecurityMode::FirewallNat, "[mail]\nenabled = false\n");
        assert!(mail_endpoints(&off).is_empty());
        let wan = Some(ip("203.0.113.10"));
        assert_eq!(
            spf_record(&c, wan).as_deref(),
            Some("v=spf1 ip4:203.0.113.10 ~all")
        );
        assert_eq!(spf_record(&c, None), None);
        assert_eq!(spf_record(&off, wan), None);
        assert_eq!(dmarc_record(&c).as_deref(), Some("v=DMARC1; p=none"));
        let strict = config(
            SecurityMode::FirewallNat,
            "[mail]\ndmarc_policy = \"reject\"\n",
        );
        assert_eq!(dmarc_record(&strict).as_deref(), Some("v=DMARC1; p=reject"));
        assert_eq!(dmarc_record(&off), None);
    }

    #[test]
    fn who_may_recurse_and_relay() {
        let c = config(SecurityMode::FirewallNat, "");
        // address, zone, recursion, relay without auth
        let table = [
            ("127.0.0.1", ClientZone::Loopback, true, true),
            ("::1", ClientZone::Loopback, true, true),
            ("192.168.1.77", ClientZone::Lan, true, true),
            ("::ffff:192.168.1.77", ClientZone::Lan, true, true),
            ("203.0.113.99", ClientZone::Wan, false, false),
            ("2001:db8::1", ClientZone::Wan, false, false),
        ];
        for (addr, zone, recurse, relay) in table {
            let z = client_zone(&c.network, addr.parse().unwrap());
            assert_eq!(z, zone, "{addr}");
            assert_eq!(recursion_allowed(z), recurse, "{addr}");
            assert_eq!(relay_allowed(&c, z), relay, "{addr}");
        }
        let open = config(SecurityMode::FirewallNat, "[mail]\nrelay_from_wan = true\n");
        assert!(relay_allowed(&open, ClientZone::Wan));
    }

    #[test]
    fn wan_ports_per_mode() {
        for mode in SecurityMode::ALL {
            let c = config(mode, "");
            let open: Vec<(&str, u16)> = wan_open_ports(&c)
                .iter()
                .map(|l| (l.service.name(), l.port))
                .collect();
            let want: &[(&str, u16)] = if mode == SecurityMode::LanOnly {
                &[]
            } else {
                &[("smtp", 25), ("www", 80)]
            };
            assert_eq!(open, want, "{mode:?}");
        }
    }

    #[test]
    fn binds() {
        let c = config(SecurityMode::FirewallNat, "");
        assert_eq!(
            bind_addresses(&c, Service::Admin),
            vec![IpAddr::V4(ip("192.168.1.1"))]
        );
        assert_eq!(
            bind_addresses(&c, Service::Smtp),
            vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)]
        );
        let lan_only = config(SecurityMode::LanOnly, "");
        assert_eq!(
            bind_addresses(&lan_only, Service::Smtp),
            vec![
                IpAddr::V4(ip("192.168.1.1")),
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            ],
            "lan-only: nothing listens on a WAN address"
        );
        let mut demo = c.clone();
        demo.network.listen = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
        assert_eq!(
            bind_addresses(&demo, Service::Admin),
            vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]
        );
    }

    #[test]
    fn a_new_device_gets_the_next_free_tunnel_address_and_is_known_by_it() {
        let device = |name: &str, address: &str| {
            format!("[[vpn.peers]]\nname = \"{name}\"\nuser = \"admin\"\naddress = \"{address}\"\n")
        };
        let vpn = "[vpn]\nenabled = true\naddress = \"10.99.0.1/24\"\n";
        let c = config(SecurityMode::FirewallNat, vpn);
        assert_eq!(
            free_device_address(&c.vpn),
            Some(Ipv4Addr::new(10, 99, 0, 10))
        );
        let two = format!(
            "{vpn}{}{}",
            device("a", "10.99.0.10"),
            device("b", "10.99.0.11")
        );
        let c = config(SecurityMode::FirewallNat, &two);
        assert_eq!(
            free_device_address(&c.vpn),
            Some(Ipv4Addr::new(10, 99, 0, 12))
        );
        let from = |ip: [u8; 4]| device_at(&c, IpAddr::from(ip)).map(|p| p.name.as_str());
        assert_eq!(from([10, 99, 0, 11]), Some("b"));
        assert_eq!(from([10, 99, 0, 12]), None);
        assert_eq!(from([192, 168, 1, 11]), None);
        // A small subnet fills from its start; a full one has none to give.
        let small = "[vpn]\nenabled = true\naddress = \"10.99.0.1/30\"\n";
        let c = config(SecurityMode::FirewallNat, small);
        assert_eq!(
            free_device_address(&c.vpn),
            Some(Ipv4Addr::new(10, 99, 0, 2))
        );
        let full = format!("{small}{}", device("a", "10.99.0.2"));
        assert_eq!(
            free_device_address(&config(SecurityMode::FirewallNat, &full).vpn),
            None
        );
        // With the tunnels off nothing is a device.
        let off = two.replace("enabled = true", "enabled = false");
        let c = config(SecurityMode::FirewallNat, &off);
        assert_eq!(device_at(&c, IpAddr::from([10, 99, 0, 11])), None);
    }
}
