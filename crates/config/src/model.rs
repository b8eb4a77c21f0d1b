//! The validated config: what the services read. Every value here has passed validation;
//! services never see a half-valid config.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::values::{Ipv4Net, Mac};

/// The whole config of one officebox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where durable state lives (SQLite database, mailboxes, certificates).
    pub data_dir: PathBuf,
    pub network: Network,
    pub security: Security,
    pub dns: Dns,
    pub dhcp: Dhcp,
    pub mail: Mail,
    pub users: Vec<User>,
    pub phone: Phone,
    pub web: Web,
    pub ntp: Ntp,
    pub backup: Backup,
    pub vpn: Vpn,
}

/// `[vpn]`: the box's WireGuard tunnels to the company's other sites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vpn {
    pub enabled: bool,
    /// The UDP port the tunnels use on the WAN (the only WAN opening they make).
    pub listen_port: u16,
    /// The box's address in the tunnels' own subnet, e.g. 10.99.0.1/24.
    pub address: Ipv4Net,
    /// `[[vpn.sites]]`.
    pub sites: Vec<Site>,
    /// `[[vpn.peers]]`: staff's devices working from elsewhere.
    pub peers: Vec<VpnPeer>,
}

/// `[[vpn.peers]]`: one device of a user's (a laptop, a phone) that joins the office
/// through the tunnel from wherever it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpnPeer {
    /// A short name, e.g. `alice-laptop` (its key file is named after it).
    pub name: String,
    /// The user whose device it is.
    pub user: String,
    pub enabled: bool,
    /// Its address in the tunnels' subnet (its only source the box accepts).
    pub address: Ipv4Addr,
    /// The device's own public key; `None`: the box makes the device's key pair and
    /// hands it over in the device's configuration.
    pub public_key: Option<[u8; 32]>,
    /// What it may reach, as the box's firewall enforces it.
    pub access: PeerAccess,
    /// Full tunnel (all its traffic through the office) or split (office subnets only).
    pub full_tunnel: bool,
    /// The last day it works (the office's local date), if any.
    pub expires: Option<(i32, u8, u8)>,
}

impl VpnPeer {
    /// Whether it is in use on local date `today`.
    pub fn active(&self, today: (i32, u8, u8)) -> bool {
        self.enabled && self.expires.is_none_or(|last| today <= last)
    }
}

/// What a remote device may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerAccess {
    /// The whole LAN.
    Lan,
    /// Only the box and these LAN hosts.
    Hosts(Vec<Ipv4Addr>),
}

/// `[[vpn.sites]]`: another office with its own officebox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// A short name, e.g. `branch`.
    pub name: String,
    pub enabled: bool,
    /// The other box's public key (32 bytes, base64 as WireGuard writes it).
    pub public_key: [u8; 32],
    /// Where the other box is reached: a host name or address, and the port.
    pub endpoint: Option<(String, u16)>,
    /// Its LAN subnets (routed through the tunnel).
    pub subnets: Vec<Ipv4Net>,
    /// Its box's LAN address: asked for the site's names (and reverse names).
    pub address: Option<Ipv4Addr>,
    /// Its DNS domain (answered by asking its box through the tunnel).
    pub domain: Option<String>,
    /// Its extensions (called through the tunnel).
    pub extensions: Option<Extensions>,
    /// The port its box takes calls on.
    pub sip_port: u16,
    /// Where a call to its extensions goes when its box does not answer.
    pub fallback: Option<crate::dialplan::Destination>,
}

/// A site's extensions: a range, or every extension with a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extensions {
    /// `200-299`: the numbers from the first to the last, of their length.
    Range(String, String),
    /// `2`: any extension starting with it.
    Prefix(String),
}

impl Extensions {
    /// Whether `ext` is one of them (a prefix takes numbers of any length after it).
    pub fn contains(&self, ext: &str) -> bool {
        if ext.is_empty() || !ext.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
        match self {
            Extensions::Prefix(p) => ext.starts_with(p.as_str()) && ext.len() > p.len(),
            Extensions::Range(first, last) => {
                ext.len() == first.len() && first.as_str() <= ext && ext <= last.as_str()
            }
        }
    }

    /// Whether the two share an extension.
    pub fn overlaps(&self, other: &Extensions) -> bool {
        match (self, other) {
            (Extensions::Prefix(a), Extensions::Prefix(b)) => {
                a.starts_with(b.as_str()) || b.starts_with(a.as_str())
            }
            (Extensions::Range(f, l), Extensions::Prefix(p))
            | (Extensions::Prefix(p), Extensions::Range(f, l)) => {
                // Some number of the range's length starting with the prefix is in it.
                if p.len() >= f.len() {
                    return p.len() == f.len() && f <= p && p <= l;
                }
                let pad = f.len() - p.len();
                let low = format!("{p}{}", "0".repeat(pad));
                let high = format!("{p}{}", "9".repeat(pad));
                low.as_str() <= l.as_str() && f.as_str() <= high.as_str()
            }
            (Extensions::Range(f1, l1), Extensions::Range(f2, l2)) => {
                f1.len() == f2.len() && f1 <= l2 && f2 <= l1
            }
        }
    }
}

impl std::fmt::Display for Extensions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Extensions::Range(a, b) => write!(f, "{a}-{b}"),
            Extensions::Prefix(p) => write!(f, "{p}"),
        }
    }
}

/// `[network]`: names and addresses of the box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    /// The box's own host name (one label), e.g. `officebox`.
    pub hostname: String,
    /// The company domain, lowercase, without trailing dot.
    pub domain: String,
    /// Whether officebox configures the host's interfaces and firewall.
    pub manage: bool,
    /// Bind every service to these addresses instead of the interface addresses
    /// (the demo uses 127.0.0.1). Empty: services bind as the mode requires.
    pub listen: Vec<IpAddr>,
    pub wan: Wan,
    pub lan: Lan,
    /// The remote devices' subnet: the tunnels' own (`vpn.address`) while the tunnels
    /// run with a device set up, else `None`. Not written in `[network]`: derived from
    /// `[vpn]` when the config is read, so that every service classifies a client by
    /// its address alone ([`crate::derive::client_zone`]).
    pub tunnel: Option<Ipv4Net>,
}

/// `[network.wan]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wan {
    /// Interface name, needed when `manage` is on.
    pub interface: Option<String>,
    pub addressing: WanAddressing,
    /// The line's speeds, kbit/s (the box shapes just below them, voice first).
    pub upload_kbit: Option<u64>,
    pub download_kbit: Option<u64>,
}

/// How the WAN interface gets its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WanAddressing {
    /// Entered by the admin, as given by the ISP.
    Static { net: Ipv4Net, gateway: Ipv4Addr },
    /// Leased from the ISP's DHCP server by officebox's DHCP client.
    Dhcp { release_on_shutdown: bool },
}

/// `[network.lan]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lan {
    pub interface: Option<String>,
    /// Our LAN address and subnet.
    pub net: Ipv4Net,
    /// The LAN's router when officebox is not it (lan-only mode).
    pub gateway: Option<Ipv4Addr>,
}

/// The four security modes of the appliance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityMode {
    LanOnly,
    Router,
    FirewallNat,
    FirewallNatDmz,
}

impl SecurityMode {
    pub const ALL: [SecurityMode; 4] = [
        SecurityMode::LanOnly,
        SecurityMode::Router,
        SecurityMode::FirewallNat,
        SecurityMode::FirewallNatDmz,
    ];

    /// The name used in the config file.
    pub fn name(self) -> &'static str {
        match self {
            SecurityMode::LanOnly => "lan-only",
            SecurityMode::Router => "router",
            SecurityMode::FirewallNat => "firewall-nat",
            SecurityMode::FirewallNatDmz => "firewall-nat-dmz",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == s)
    }
}

/// `[security]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Security {
    pub mode: SecurityMode,
    pub forwards: Vec<Forward>,
    /// officebox's own services reachable from the WAN in the firewall modes.
    pub wan_services: Vec<Service>,
}

/// Transport protocol of a forward or service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// One port forward: WAN port -> LAN host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub name: Option<String>,
    pub protocols: Vec<Protocol>,
    pub wan_port: u16,
    pub host: Ipv4Addr,
    pub port: u16,
}

/// officebox's own network services, as named in `wan_services` and in logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    Dns,
    Dhcp,
    Smtp,
    Submission,
    Smtps,
    Pop3,
    Pop3s,
    Imap,
    Imaps,
    Sip,
    Www,
    Admin,
    Ntp,
    /// The phones' provisioning server, plain HTTP.
    Provisioning,
    /// The phones' provisioning server, HTTPS.
    ProvisioningTls,
}

impl Service {
    pub const ALL: [Service; 15] = [
        Service::Dns,
        Service::Dhcp,
        Service::Smtp,
        Service::Submission,
        Service::Smtps,
        Service::Pop3,
        Service::Pop3s,
        Service::Imap,
        Service::Imaps,
        Service::Sip,
        Service::Www,
        Service::Admin,
        Service::Ntp,
        Service::Provisioning,
        Service::ProvisioningTls,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Service::Dns => "dns",
            Service::Dhcp => "dhcp",
            Service::Smtp => "smtp",
            Service::Submission => "submission",
            Service::Smtps => "smtps",
            Service::Pop3 => "pop3",
            Service::Pop3s => "pop3s",
            Service::Imap => "imap",
            Service::Imaps => "imaps",
            Service::Sip => "sip",
            Service::Www => "www",
            Service::Admin => "admin",
            Service::Ntp => "ntp",
            Service::Provisioning => "provisioning",
            Service::ProvisioningTls => "provisioning-tls",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == s)
    }

    /// The transport protocols the service listens on.
    pub fn protocols(self) -> &'static [Protocol] {
        match self {
            Service::Dns | Service::Sip => &[Protocol::Udp, Protocol::Tcp],
            Service::Dhcp | Service::Ntp => &[Protocol::Udp],
            _ => &[Protocol::Tcp],
        }
    }

    /// Services that may be opened to the WAN. The admin pages, DHCP and the phones'
    /// provisioning never are.
    pub fn may_face_wan(self) -> bool {
        !matches!(
            self,
            Service::Admin | Service::Dhcp | Service::Provisioning | Service::ProvisioningTls
        )
    }
}

/// `[dns]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dns {
    pub enabled: bool,
    pub port: u16,
    /// Upstream servers (port 53 unless written `IP:PORT`).
    pub primary: Option<SocketAddr>,
    pub secondary: Option<SocketAddr>,
    /// Forward names we don't know to the upstream servers; when off, answer them as
    /// authoritatively non-existent.
    pub use_upstream: bool,
    /// Secondary name servers allowed to transfer the zone (and sent NOTIFY).
    pub secondaries: Vec<SocketAddr>,
    /// TTL of the zone's own records.
    pub ttl: u32,
    /// Upper bound of cached answers.
    pub cache_size: usize,
    pub records: Vec<Record>,
}

/// A static DNS record from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Fully qualified, lowercase, without the trailing dot.
    pub name: String,
    pub ttl: u32,
    pub data: RecordData,
}

/// Data of a static record, already parsed from its presentation form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordData {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(String),
    Mx {
        preference: u16,
        exchange: String,
    },
    Txt(String),
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: String,
    },
    Ptr(String),
}

impl RecordData {
    pub fn type_name(&self) -> &'static str {
        match self {
            RecordData::A(_) => "A",
            RecordData::Aaaa(_) => "AAAA",
            RecordData::Cname(_) => "CNAME",
            RecordData::Mx { .. } => "MX",
            RecordData::Txt(_) => "TXT",
            RecordData::Srv { .. } => "SRV",
            RecordData::Ptr(_) => "PTR",
        }
    }
}

/// `[dhcp]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dhcp {
    pub enabled: bool,
    /// The range as configured; `None` means the appliance default (see `derive`).
    pub range: Option<(Ipv4Addr, Ipv4Addr)>,
    pub lease_time: Duration,
    /// Addresses inside the range used by static hosts, never handed out.
    pub exclude: Vec<Ipv4Addr>,
    /// Ping an address before offering it.
    pub ping_check: bool,
    /// How often the LAN is asked whether another DHCP server answers (officebox does
    /// not serve while one does).
    pub server_check: Duration,
    pub reservations: Vec<Reservation>,
}

/// A fixed address for one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub mac: Mac,
    pub address: Ipv4Addr,
    pub hostname: Option<String>,
}

/// `[mail]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub enabled: bool,
    pub smtp_port: u16,
    pub submission_port: u16,
    pub smtps_port: u16,
    pub pop3_port: u16,
    pub pop3s_port: u16,
    pub imap_port: u16,
    pub imaps_port: u16,
    /// Relay to other domains for WAN clients that did not authenticate. Off: no open relay.
    pub relay_from_wan: bool,
    /// Each user's mailbox size limit in bytes unless their own says otherwise; 0: none.
    pub quota: u64,
    /// The DMARC policy the zone publishes for the domain.
    pub dmarc_policy: DmarcPolicy,
    /// Mail from the WAN failing SPF or DMARC goes to Junk.
    pub junk_failed_checks: bool,
    /// Greylisting of unknown senders from the WAN, and how long they must wait.
    pub greylisting: bool,
    pub greylist_delay: Duration,
    pub max_message_size: u64,
    pub aliases: Vec<Alias>,
    /// The admin's shared ISP mailbox, sorted out to the users.
    pub catch_all: Option<Pop3Account>,
    pub queue: Queue,
    /// DNS servers for finding other domains' mail hosts; empty: see
    /// [`crate::derive::mail_resolvers`].
    pub resolvers: Vec<std::net::SocketAddr>,
}

/// DMARC's `p=`: what receivers should do with mail that fails the domain's checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmarcPolicy {
    None,
    Quarantine,
    Reject,
}

impl DmarcPolicy {
    pub const ALL: [DmarcPolicy; 3] = [
        DmarcPolicy::None,
        DmarcPolicy::Quarantine,
        DmarcPolicy::Reject,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DmarcPolicy::None => "none",
            DmarcPolicy::Quarantine => "quarantine",
            DmarcPolicy::Reject => "reject",
        }
    }

    pub fn from_name(name: &str) -> Option<DmarcPolicy> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// Outbound queue timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    pub first_retry: Duration,
    pub max_retry_interval: Duration,
    pub delay_notice_after: Duration,
    pub give_up_after: Duration,
}

/// An alias: a name that delivers to local users and/or external addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    pub name: String,
    pub members: Vec<AliasMember>,
}

/// One target of an alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AliasMember {
    /// A local user's mailbox, or another alias (expanded recursively).
    Local(String),
    /// An address elsewhere; the message is relayed there.
    External(String),
}

/// One person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub login: String,
    pub name: String,
    /// argon2 PHC string.
    pub password_hash: String,
    pub extension: Option<String>,
    /// argon2 PHC string of the voicemail PIN.
    pub voicemail_pin_hash: Option<String>,
    /// The phone's digest secret, HA1 = H(login:domain:password) with MD5 and SHA-256
    /// (RFC 3261 section 22, RFC 8760): what SIP authentication needs, and no password.
    pub sip_ha1_md5: Option<String>,
    pub sip_ha1_sha256: Option<String>,
    /// The same secrets for the extension as the digest user name (most phones are set
    /// up with the extension as their user), made when the password was set.
    pub sip_ext_secret: Option<ExtSecret>,
    /// May log in to the admin pages; receives catch-all mail that matches nobody.
    pub admin: bool,
    pub pop3: Vec<Pop3Account>,
    /// What this user may do on outside lines (toll-fraud guards).
    pub outside: OutsideCalls,
    /// The number shown when this user calls out (a direct line); `None`: the route's,
    /// else the trunk account's.
    pub caller_id: Option<String>,
    /// A fax machine of their own: the box answers `fax:LOGIN` (a DID's destination, an
    /// attendant key) as a fax machine and mails the pages to them.
    pub fax: bool,
    /// Their own mailbox size limit in bytes (0: none); `None`: `mail.quota`.
    pub quota: Option<u64>,
}

/// A user's limits on outside calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutsideCalls {
    /// Outside calls at once (0: none at all).
    pub at_once: u32,
    /// Outside calls a day (counted from midnight, local time).
    pub per_day: u32,
    /// Whether a phone of the user's registered from the Internet may call out.
    pub from_remote_phones: bool,
}

/// A phone secret for the extension as user name: HA1 = H(extension:domain:password), in
/// the file as `"EXTENSION:MD5:SHA256"`. It names its extension, so that one made before
/// the extension changed is known to be stale (and ignored) rather than silently wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtSecret {
    pub extension: String,
    pub md5: String,
    pub sha256: String,
}

impl ExtSecret {
    /// Its text in the config file.
    pub fn text(&self) -> String {
        format!("{}:{}:{}", self.extension, self.md5, self.sha256)
    }
}

impl User {
    /// The secrets for `ext` as the digest user name, when they were made for it.
    pub fn ext_secret(&self, ext: &str) -> Option<&ExtSecret> {
        self.sip_ext_secret
            .as_ref()
            .filter(|s| s.extension == ext && self.extension.as_deref() == Some(ext))
    }
}

/// How to talk TLS to a POP3 server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pop3Tls {
    /// Plain text (only sensible inside a trusted network).
    None,
    /// STLS on the plain port.
    Starttls,
    /// TLS from the first byte (port 995).
    Implicit,
}

/// An external POP3 mailbox fetched into a local one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pop3Account {
    pub server: String,
    pub port: u16,
    pub tls: Pop3Tls,
    pub login: String,
    /// Needed in clear to log in to the ISP; the config file is kept 0600.
    pub password: String,
    pub poll_interval: Duration,
    pub keep_on_server: bool,
    /// Check the server's certificate (against the system's roots and `ca_file`).
    /// Turning it off sends the password to whoever answers.
    pub verify_certificate: bool,
    /// Extra trusted roots (PEM), e.g. for an ISP with a private CA.
    pub ca_file: Option<std::path::PathBuf>,
}

/// `[phone]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone {
    pub enabled: bool,
    pub sip_port: u16,
    /// The DSCP marks SIP and the calls' audio leave with (0: none).
    pub dscp_sip: u8,
    pub dscp_rtp: u8,
    pub voicemail_extension: String,
    /// Dialled (or its BLF key pressed), it forces the office hours closed, or open,
    /// until they next change by themselves.
    pub night_code: String,
    /// Keyed in during a call, it records the call into the user's mailbox; empty: off.
    pub record_code: String,
    /// What a caller on hold hears.
    pub music_on_hold: MusicOnHold,
    /// A transfer here parks the call on the first free place (the next
    /// [`crate::derive::PARK_PLACES`] numbers); empty: no parking.
    pub park_extension: String,
    /// Dialled, it joins the meet-me conference; empty: none.
    pub conference_extension: String,
    /// Asked before joining; empty: none.
    pub conference_pin: String,
    /// Members of the conference at most.
    pub conference_size: u32,
    pub no_answer_timeout: Duration,
    /// Attempts at a fax sent from email while busy or unanswered, and the time between.
    pub fax_attempts: u32,
    pub fax_retry_after: Duration,
    pub max_message_length: Duration,
    pub rtp_ports: (u16, u16),
    /// Calls older than this many days leave the call log.
    pub call_log_days: u32,
    /// The office's time zone (an IANA name) for schedules and the day's limits; `None`:
    /// the box's own.
    pub timezone: Option<String>,
    /// Routes out, numbers in, ring groups, schedules and attendants.
    pub dial_plan: crate::dialplan::DialPlan,
    /// `[[phone.trunks]]`: lines to telephone providers, in the file's order.
    pub trunks: Vec<Trunk>,
    /// DHCP's provisioning options, plug-and-play answers and the provisioning server.
    pub provisioning: bool,
    /// The provisioning server's plain HTTP port (secret-free files only).
    pub provisioning_port: u16,
    /// Its HTTPS port (an assigned phone's own file).
    pub provisioning_tls_port: u16,
    /// `[[phone.devices]]`: the phones assigned to users, by MAC address.
    pub devices: Vec<Device>,
}

/// `[[phone.devices]]`: "this MAC is Alice's phone".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub mac: crate::values::Mac,
    /// The user's login (a user with an extension).
    pub user: String,
    pub vendor: Vendor,
    /// Extensions on the phone's busy-lamp keys; `None`: every other user's.
    pub keys: Option<Vec<String>>,
}

impl Device {
    /// The name the phone signs in with (its digest user name) and fetches its files
    /// as: its MAC in 12 lowercase hex digits.
    pub fn name(&self) -> String {
        self.mac.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The makes of phone the provisioning server writes files for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Vendor {
    Yealink,
    Poly,
    Grandstream,
    Snom,
}

impl Vendor {
    pub const ALL: [Vendor; 4] = [
        Vendor::Yealink,
        Vendor::Poly,
        Vendor::Grandstream,
        Vendor::Snom,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Vendor::Yealink => "yealink",
            Vendor::Poly => "poly",
            Vendor::Grandstream => "grandstream",
            Vendor::Snom => "snom",
        }
    }

    pub fn from_name(s: &str) -> Option<Vendor> {
        Self::ALL.into_iter().find(|v| v.name() == s)
    }
}

/// What a phone put on hold hears (`phone.music_on_hold`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MusicOnHold {
    /// Nothing from the box: the hold goes to the other phone (silence, or the holder's
    /// own music).
    Off,
    /// The tune built in.
    BuiltIn,
    /// A WAV file (any rate; relative to the data directory unless absolute).
    File(std::path::PathBuf),
}

/// `[web]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Web {
    pub enabled: bool,
    /// The admin pages (LAN only).
    pub admin_port: u16,
    /// The public www site and the corp intranet, by Host name.
    pub site_port: u16,
    pub https: bool,
    pub session_timeout: Duration,
    /// How long a risky change (addresses, the security mode) waits for "keep" before
    /// the previous settings come back.
    pub confirm_timeout: Duration,
}

/// `[ntp]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ntp {
    pub enabled: bool,
    pub port: u16,
}

/// `[backup]`: the nightly archive.
#[derive(Clone, PartialEq, Eq)]
pub struct Backup {
    pub enabled: bool,
    /// The folder the archives are written to (absolute; required when enabled).
    pub path: Option<std::path::PathBuf>,
    /// The time of day, in the office's time zone: (hour, minute, second).
    pub at: (u8, u8, u8),
    /// How many archives stay.
    pub keep: u32,
    /// Encrypts each archive (age, scrypt) when set.
    pub passphrase: Option<String>,
}

impl std::fmt::Debug for Backup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backup")
            .field("enabled", &self.enabled)
            .field("path", &self.path)
            .field("at", &self.at)
            .field("keep", &self.keep)
            .field("passphrase", &self.passphrase.as_ref().map(|_| "(set)"))
            .finish()
    }
}

/// `[[phone.trunks]]`: a SIP trunk to a telephone provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trunk {
    /// A label, unique among the trunks (logs, `officebox phone trunks`, routes).
    pub name: String,
    pub kind: TrunkKind,
    /// Off: kept in the file but not used (no registration, no calls).
    pub enabled: bool,
    /// The provider: a host name or address, optionally with a port (`host`, `host:port`,
    /// `[v6]:port`), lowercase.
    pub server: String,
    /// The account at the provider (From/To of the registration); `None` for IP trunks
    /// that have none.
    pub username: Option<String>,
    /// Needed in clear to answer the provider's digest challenge; the config file is
    /// kept 0600.
    pub password: Option<String>,
    /// The digest user name, when the provider's differs from `username`.
    pub auth_username: Option<String>,
    /// Where requests go instead of `server` (host or host:port), with a Route to it.
    pub outbound_proxy: Option<String>,
    pub transport: TrunkTransport,
    /// The registration period asked for (the provider may grant another).
    pub expires: Duration,
    /// The provider's source addresses and networks: calls are accepted from these (an
    /// IP trunk needs at least one).
    pub addresses: Vec<IpNet>,
    /// Calls at once over this trunk; 0: no limit.
    pub max_calls: u32,
    /// Codecs offered to the provider, in order of preference (upper case, e.g. PCMU).
    pub codecs: Vec<String>,
    /// How the provider is told who calls.
    pub identity: TrunkIdentity,
    /// Over TLS: a PEM file of the CA (or the certificate itself) the provider's
    /// certificate is checked against, besides the system's trusted roots.
    pub ca_file: Option<std::path::PathBuf>,
    /// Faxes over this trunk: T.38 or G.711 audio.
    pub t38: T38Mode,
}

/// Whether a fax call goes over T.38 (fax packets) or stays on G.711 audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum T38Mode {
    /// T.38 when the far end asks for it (a re-INVITE offering it), audio otherwise.
    #[default]
    On,
    /// Audio only: a T.38 offer is refused and the fax goes on over G.711.
    Off,
    /// The box asks for T.38 itself as soon as a call is a fax; if the far end refuses,
    /// the fax goes on over G.711.
    Offered,
}

/// Where a call to a trunk's provider carries the caller ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrunkIdentity {
    /// In From and in P-Asserted-Identity (RFC 3325).
    #[default]
    Pai,
    /// In From only.
    From,
    /// The account's number in From (the provider knows the line by it), the caller ID
    /// in P-Asserted-Identity.
    Account,
}

/// How a trunk is authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrunkKind {
    /// officebox registers to the provider with digest credentials.
    Register,
    /// No registration: the provider is known by its source addresses.
    Ip,
}

impl TrunkKind {
    /// As written in the file.
    pub fn name(self) -> &'static str {
        match self {
            TrunkKind::Register => "register",
            TrunkKind::Ip => "ip",
        }
    }
}

/// How SIP travels to a trunk's provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrunkTransport {
    Udp,
    Tcp,
    /// TLS over TCP (port 5061 unless given), the provider's certificate checked.
    Tls,
}

impl TrunkTransport {
    /// As written in the file.
    pub fn name(self) -> &'static str {
        match self {
            TrunkTransport::Udp => "udp",
            TrunkTransport::Tcp => "tcp",
            TrunkTransport::Tls => "tls",
        }
    }
}

/// An address with a prefix length (`203.0.113.0/24`; a bare address is /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub address: IpAddr,
    pub prefix: u8,
}

impl IpNet {
    /// Whether `ip` is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        fn masked(bits: u128, prefix: u8, width: u8) -> u128 {
            let keep = u32::from(prefix.min(width));
            if keep == 0 {
                0
            } else {
                bits >> (u32::from(width) - keep)
            }
        }
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u128::from(u32::from(net)), self.prefix, 32)
                    == masked(u128::from(u32::from(ip)), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(u128::from(net), self.prefix, 128)
                    == masked(u128::from(ip), self.prefix, 128)
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for IpNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let full = if self.address.is_ipv4() { 32 } else { 128 };
        if self.prefix == full {
            write!(f, "{}", self.address)
        } else {
            write!(f, "{}/{}", self.address, self.prefix)
        }
    }
}
