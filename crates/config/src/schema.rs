//! Every setting of the config file, written once: its dotted path, what kind of value
//! it holds, its default, and the label and help text an office manager reads.
//!
//! Three things are driven by this table, so they cannot disagree:
//! - the loader (`load`) takes each setting's default and limits from here;
//! - the commented config that `officebox init` writes (`template.rs`) prints each
//!   setting with its default and help from here;
//! - the admin pages (the `web` crate) label and explain each field from here.
//!
//! Settings inside repeated entries (`[[dhcp.reservations]]`, `[[users.pop3]]`, …) are
//! named with `[]` for the entry, e.g. `dhcp.reservations[].mac`; the settings of a POP3
//! account are those of the catch-all (`mail.catch_all.*`), which every account shares.

use std::time::Duration;

/// What kind of value a setting holds: how it is read, written and edited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A string.
    Text,
    /// true or false.
    Bool,
    /// A whole number from `min` to `max`.
    Int { min: i64, max: i64 },
    /// A duration written like "30s", "5m", "12h", "1d"; at least `min_secs`.
    Duration { min_secs: u64 },
    /// A size written like "25M".
    Size,
    /// One of these values, each with the sentence that explains it.
    Select(&'static [(&'static str, &'static str)]),
    /// A list of strings.
    List,
}

/// A TCP/UDP port.
const PORT: Kind = Kind::Int { min: 1, max: 65535 };

/// A setting's value when the file leaves it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Default {
    /// No default: the setting is optional, or required (the loader says which).
    None,
    Bool(bool),
    Int(i64),
    /// A duration, in seconds.
    Secs(u64),
    /// A size, in bytes.
    Bytes(u64),
    Text(&'static str),
    List(&'static [&'static str]),
}

/// One setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// Its dotted path in the file, e.g. `dhcp.lease_time`.
    pub path: &'static str,
    pub kind: Kind,
    pub default: Default,
    /// A few words naming it on the admin pages.
    pub label: &'static str,
    /// A sentence saying what it does, for the admin pages and the config's comments.
    pub help: &'static str,
}

impl Setting {
    /// Its key inside its table (the last part of the path).
    pub const fn key(&self) -> &'static str {
        // A const fn, so the admin pages' tables can name fields by their setting.
        let bytes = self.path.as_bytes();
        let mut start = bytes.len();
        while start > 0 && bytes[start - 1] != b'.' {
            start -= 1;
        }
        let (_, key) = bytes.split_at(start);
        match std::str::from_utf8(key) {
            Ok(key) => key,
            Err(_) => self.path,
        }
    }

    /// Its table's path (everything before the key; empty at the top level).
    pub fn table(&self) -> &'static str {
        let path = self.path;
        path.rsplit_once('.').map_or("", |(table, _)| table)
    }

    /// The default of a `Bool` setting (false for any other).
    pub const fn bool(&self) -> bool {
        matches!(self.default, Default::Bool(true))
    }

    /// The default of an `Int` setting (0 for any other).
    pub const fn int(&self) -> i64 {
        match self.default {
            Default::Int(n) => n,
            _ => 0,
        }
    }

    /// The default of a port setting.
    pub const fn port(&self) -> u16 {
        match self.default {
            Default::Int(n) if n > 0 && n <= 65535 => n as u16,
            _ => 0,
        }
    }

    /// The default of a `Duration` setting (zero for any other).
    pub const fn duration(&self) -> Duration {
        match self.default {
            Default::Secs(s) => Duration::from_secs(s),
            _ => Duration::ZERO,
        }
    }

    /// The shortest value a `Duration` setting accepts.
    pub const fn min_duration(&self) -> Duration {
        match self.kind {
            Kind::Duration { min_secs } => Duration::from_secs(min_secs),
            _ => Duration::ZERO,
        }
    }

    /// The range an `Int` setting accepts.
    pub const fn range(&self) -> std::ops::RangeInclusive<i64> {
        match self.kind {
            Kind::Int { min, max } => min..=max,
            _ => 0..=0,
        }
    }

    /// The default of a `Size` setting, in bytes (0 for any other).
    pub const fn bytes(&self) -> u64 {
        match self.default {
            Default::Bytes(b) => b,
            _ => 0,
        }
    }

    /// The default of a `Text` or `Select` setting ("" for any other).
    pub const fn text(&self) -> &'static str {
        match self.default {
            Default::Text(t) => t,
            _ => "",
        }
    }

    /// The default of a `List` setting (empty for any other).
    pub const fn list(&self) -> &'static [&'static str] {
        match self.default {
            Default::List(l) => l,
            _ => &[],
        }
    }

    /// The default as it is written in the file (`true`, `53`, `"1d"`, `["smtp"]`), or
    /// `None` when the setting has none.
    pub fn default_toml(&self) -> Option<String> {
        let quoted = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
        Some(match self.default {
            Default::None => return None,
            Default::Bool(b) => b.to_string(),
            Default::Int(n) => n.to_string(),
            Default::Secs(s) => quoted(&crate::values::format_duration(Duration::from_secs(s))),
            Default::Bytes(b) => quoted(&crate::values::format_size(b)),
            Default::Text(t) => quoted(t),
            Default::List(l) => {
                let items: Vec<String> = l.iter().map(|s| quoted(s)).collect();
                format!("[{}]", items.join(", "))
            }
        })
    }

    /// The default as the admin pages show it: a switch's state (`true`/`false`), or a
    /// text field's hint.
    pub fn default_display(&self) -> Option<String> {
        Some(match self.default {
            Default::None => return None,
            Default::Bool(b) => b.to_string(),
            Default::Int(n) => n.to_string(),
            Default::Secs(s) => crate::values::format_duration(Duration::from_secs(s)),
            Default::Bytes(b) => crate::values::format_size(b),
            Default::Text(t) => t.to_string(),
            Default::List(l) => l.join(", "),
        })
    }
}

/// The setting at `path`, if there is one.
pub fn get(path: &str) -> Option<&'static Setting> {
    SETTINGS.iter().copied().find(|s| s.path == path)
}

const fn s(
    path: &'static str,
    kind: Kind,
    default: Default,
    label: &'static str,
    help: &'static str,
) -> Setting {
    Setting {
        path,
        kind,
        default,
        label,
        help,
    }
}

// ---------------------------------------------------------------- choices

/// How the WAN side gets its address.
pub const WAN_MODES: &[(&str, &str)] = &[
    ("dhcp", "DHCP: the ISP leases the address"),
    ("static", "Static: the address below, from the ISP"),
];

/// The four security modes of the appliance.
pub const SECURITY_MODES: &[(&str, &str)] = &[
    (
        "lan-only",
        "LAN only: officebox is an ordinary computer on the office network; no routing",
    ),
    (
        "router",
        "Router: plain routing between the office and the Internet; no NAT, no firewall",
    ),
    (
        "firewall-nat",
        "Firewall/NAT: the office shares one Internet address; nobody outside can reach in",
    ),
    (
        "firewall-nat-dmz",
        "Firewall/NAT with DMZ: as Firewall/NAT, and officebox answers from the Internet only for the services below",
    ),
];

/// How a POP3 client protects the password.
pub const POP3_TLS: &[(&str, &str)] = &[
    ("implicit", "TLS from the start (port 995)"),
    ("starttls", "STLS on the plain port (110)"),
    ("none", "None (only inside a trusted network)"),
];

/// What a receiver should do with mail that claims the domain and fails its checks
/// (DMARC's `p=`).
pub const DMARC_POLICIES: &[(&str, &str)] = &[
    ("none", "None: only report (start here)"),
    ("quarantine", "Quarantine: into the receiver's spam folder"),
    ("reject", "Reject: refused outright"),
];

/// The protocols of a port forward.
pub const PROTOCOLS: &[(&str, &str)] = &[("tcp", "TCP"), ("udp", "UDP"), ("both", "TCP and UDP")];

/// The record types an office can add to its zone.
pub const RECORD_TYPES: &[(&str, &str)] = &[
    ("A", "A (an IPv4 address)"),
    ("AAAA", "AAAA (an IPv6 address)"),
    ("CNAME", "CNAME (another name for a name)"),
    ("MX", "MX (a mail server: preference and name)"),
    ("TXT", "TXT (text, e.g. SPF)"),
    ("SRV", "SRV (a service: priority weight port target)"),
    ("PTR", "PTR (the name of an address)"),
];

// ---------------------------------------------------------------- top level

pub const DATA_DIR: Setting = s(
    "data_dir",
    Kind::Text,
    Default::Text("/var/lib/officebox"),
    "State directory",
    "Where officebox keeps its state: leases, the mail queue, mailboxes, certificates.",
);

// ---------------------------------------------------------------- [network]

pub const HOSTNAME: Setting = s(
    "network.hostname",
    Kind::Text,
    Default::Text("officebox"),
    "Host name",
    "This box's own name, one word, e.g. officebox.",
);
pub const DOMAIN: Setting = s(
    "network.domain",
    Kind::Text,
    Default::None,
    "Domain",
    "Your company's domain, e.g. example.com.",
);
pub const MANAGE: Setting = s(
    "network.manage",
    Kind::Bool,
    Default::Bool(true),
    "Manage the network",
    "officebox configures the interfaces, routes and firewall.",
);
pub const LISTEN: Setting = s(
    "network.listen",
    Kind::List,
    Default::None,
    "Listen only on",
    "Bind every service to these addresses only (for testing).",
);
pub const WAN_INTERFACE: Setting = s(
    "network.wan.interface",
    Kind::Text,
    Default::None,
    "WAN port (interface)",
    "The network port facing the ISP's modem, e.g. eth0.",
);
pub const WAN_MODE: Setting = s(
    "network.wan.mode",
    Kind::Select(WAN_MODES),
    Default::None,
    "WAN address",
    "How the Internet side gets its address.",
);
pub const WAN_ADDRESS: Setting = s(
    "network.wan.address",
    Kind::Text,
    Default::None,
    "WAN address (static)",
    "Only for a static WAN address: the address your ISP gave you.",
);
pub const WAN_NETMASK: Setting = s(
    "network.wan.netmask",
    Kind::Text,
    Default::None,
    "WAN netmask (static)",
    "Only for a static WAN address, e.g. 255.255.255.0.",
);
pub const WAN_GATEWAY: Setting = s(
    "network.wan.gateway",
    Kind::Text,
    Default::None,
    "WAN gateway (static)",
    "Only for a static WAN address: your ISP's router.",
);
pub const WAN_UPLOAD: Setting = s(
    "network.wan.upload",
    Kind::Text,
    Default::None,
    "Upload speed",
    "The line's upload speed, e.g. 20mbit: the box sends just below it, voice first, so the modem's queue never fills. Unset: no shaping.",
);
pub const WAN_DOWNLOAD: Setting = s(
    "network.wan.download",
    Kind::Text,
    Default::None,
    "Download speed",
    "The line's download speed, e.g. 100mbit: what arrives is held just below it, voice first. Unset: no shaping.",
);
pub const WAN_RELEASE: Setting = s(
    "network.wan.release_on_shutdown",
    Kind::Bool,
    Default::Bool(false),
    "Give the WAN address back when stopping",
    "Only with DHCP from the ISP: release the lease when officebox stops.",
);
pub const LAN_INTERFACE: Setting = s(
    "network.lan.interface",
    Kind::Text,
    Default::None,
    "LAN port (interface)",
    "The network port facing the office switch, e.g. eth1.",
);
pub const LAN_ADDRESS: Setting = s(
    "network.lan.address",
    Kind::Text,
    Default::None,
    "LAN address",
    "This box's address on the office network, e.g. 192.168.1.1.",
);
pub const LAN_NETMASK: Setting = s(
    "network.lan.netmask",
    Kind::Text,
    Default::None,
    "LAN netmask",
    "The office network's size, e.g. 255.255.255.0.",
);
pub const LAN_GATEWAY: Setting = s(
    "network.lan.gateway",
    Kind::Text,
    Default::None,
    "LAN gateway (lan-only)",
    "Only in lan-only mode: the office's other router.",
);

// ---------------------------------------------------------------- [security]

pub const SECURITY_MODE: Setting = s(
    "security.mode",
    Kind::Select(SECURITY_MODES),
    Default::Text("firewall-nat"),
    "Security mode",
    "Each mode in one sentence; Firewall/NAT is right for most offices.",
);
pub const WAN_SERVICES: Setting = s(
    "security.wan_services",
    Kind::List,
    Default::List(&["smtp", "www"]),
    "Services visible from the Internet",
    "In DMZ mode, comma-separated: dns, smtp, submission, smtps, pop3, pop3s, imap, imaps, sip, www, ntp.",
);
pub const FORWARD_NAME: Setting = s(
    "security.forwards[].name",
    Kind::Text,
    Default::None,
    "Name",
    "What it is, e.g. office camera.",
);
pub const FORWARD_PROTOCOL: Setting = s(
    "security.forwards[].protocol",
    Kind::Select(PROTOCOLS),
    Default::Text("tcp"),
    "Protocol",
    "Most services use TCP.",
);
pub const FORWARD_WAN_PORT: Setting = s(
    "security.forwards[].wan_port",
    PORT,
    Default::None,
    "Port on the WAN address",
    "The port callers from the Internet use, e.g. 8022.",
);
pub const FORWARD_HOST: Setting = s(
    "security.forwards[].host",
    Kind::Text,
    Default::None,
    "Office device",
    "Its LAN address, e.g. 192.168.1.20 (give it a DHCP reservation).",
);
pub const FORWARD_PORT: Setting = s(
    "security.forwards[].port",
    PORT,
    Default::None,
    "Port on the device",
    "Empty: the same as on the WAN address.",
);

// ---------------------------------------------------------------- [dns]

pub const DNS_ENABLED: Setting = s(
    "dns.enabled",
    Kind::Bool,
    Default::Bool(true),
    "DNS server on",
    "The office's name server.",
);
pub const DNS_PORT: Setting = s(
    "dns.port",
    PORT,
    Default::Int(53),
    "Port",
    "53 for a real office; another only for testing.",
);
pub const DNS_PRIMARY: Setting = s(
    "dns.primary",
    Kind::Text,
    Default::None,
    "Primary DNS server",
    "Your ISP's DNS server, for Internet names.",
);
pub const DNS_SECONDARY: Setting = s(
    "dns.secondary",
    Kind::Text,
    Default::None,
    "Secondary DNS server",
    "Optional: a second one; leave it empty rather than guess.",
);
pub const DNS_USE_UPSTREAM: Setting = s(
    "dns.use_upstream",
    Kind::Bool,
    Default::Bool(true),
    "Look up Internet names",
    "Off: the box answers only its own names (a stand-alone office); on: it asks the primary and secondary servers.",
);
pub const DNS_SECONDARIES: Setting = s(
    "dns.secondaries",
    Kind::List,
    Default::List(&[]),
    "Secondary name servers",
    "Servers allowed to copy the zone (AXFR) and told of changes, comma-separated, e.g. 192.0.2.53.",
);
pub const DNS_TTL: Setting = s(
    "dns.ttl",
    Kind::Int {
        min: 1,
        max: 604_800,
    },
    Default::Int(3600),
    "Time to live (seconds)",
    "How long others may remember the box's own answers.",
);
pub const DNS_CACHE_SIZE: Setting = s(
    "dns.cache_size",
    Kind::Int {
        min: 0,
        max: 10_000_000,
    },
    Default::Int(10_000),
    "Cache size",
    "How many Internet answers to remember.",
);
pub const RECORD_NAME: Setting = s(
    "dns.records[].name",
    Kind::Text,
    Default::None,
    "Name",
    "e.g. printer (inside your domain), @ for the domain itself.",
);
pub const RECORD_TYPE: Setting = s(
    "dns.records[].type",
    Kind::Select(RECORD_TYPES),
    Default::None,
    "Type",
    "What the name holds.",
);
pub const RECORD_VALUE: Setting = s(
    "dns.records[].value",
    Kind::Text,
    Default::None,
    "Value",
    "e.g. 192.168.1.20 for A; 10 mail.example.com for MX.",
);

// ---------------------------------------------------------------- [dhcp]

pub const DHCP_ENABLED: Setting = s(
    "dhcp.enabled",
    Kind::Bool,
    Default::Bool(true),
    "DHCP server on",
    "Only one DHCP server per LAN: turn it off if another device already does this.",
);
pub const DHCP_RANGE: Setting = s(
    "dhcp.range",
    Kind::List,
    Default::None,
    "Address range",
    "First and last address to hand out, e.g. 192.168.1.100, 192.168.1.199. Empty: .1 to .100, skipping officebox.",
);
pub const DHCP_LEASE_TIME: Setting = s(
    "dhcp.lease_time",
    Kind::Duration { min_secs: 120 },
    Default::Secs(86_400),
    "Lease time",
    "How long an address is lent, e.g. 1d or 12h.",
);
pub const DHCP_EXCLUDE: Setting = s(
    "dhcp.exclude",
    Kind::List,
    Default::List(&[]),
    "Excluded addresses",
    "Addresses in the range used by fixed devices, comma-separated.",
);
pub const DHCP_PING_CHECK: Setting = s(
    "dhcp.ping_check",
    Kind::Bool,
    Default::Bool(false),
    "Ping before lending",
    "Check that nobody answers at an address before handing it out.",
);
pub const DHCP_SERVER_CHECK: Setting = s(
    "dhcp.server_check",
    Kind::Duration { min_secs: 1 },
    Default::Secs(60),
    "Look for other DHCP servers every",
    "officebox stands back while another DHCP server answers on the LAN.",
);
pub const RESERVATION_MAC: Setting = s(
    "dhcp.reservations[].mac",
    Kind::Text,
    Default::None,
    "Hardware (MAC) address",
    "e.g. 52:54:00:12:34:56.",
);
pub const RESERVATION_ADDRESS: Setting = s(
    "dhcp.reservations[].address",
    Kind::Text,
    Default::None,
    "Address",
    "On the LAN, e.g. 192.168.1.20.",
);
pub const RESERVATION_HOSTNAME: Setting = s(
    "dhcp.reservations[].hostname",
    Kind::Text,
    Default::None,
    "Host name",
    "Optional, one word, e.g. printer.",
);

// ---------------------------------------------------------------- [mail]

pub const MAIL_ENABLED: Setting = s(
    "mail.enabled",
    Kind::Bool,
    Default::Bool(true),
    "Mail server on",
    "SMTP, POP3 and the fetcher.",
);
pub const SMTP_PORT: Setting = s(
    "mail.smtp_port",
    PORT,
    Default::Int(25),
    "SMTP port",
    "25: mail from other servers.",
);
pub const SUBMISSION_PORT: Setting = s(
    "mail.submission_port",
    PORT,
    Default::Int(587),
    "Submission port",
    "587: mail from the office's mail programs.",
);
pub const SMTPS_PORT: Setting = s(
    "mail.smtps_port",
    PORT,
    Default::Int(465),
    "SMTPS port",
    "465: submission over TLS.",
);
pub const POP3_PORT: Setting = s(
    "mail.pop3_port",
    PORT,
    Default::Int(110),
    "POP3 port",
    "110: POP3 for the office's mail programs (STLS before the password).",
);
pub const POP3S_PORT: Setting = s(
    "mail.pop3s_port",
    PORT,
    Default::Int(995),
    "POP3S port",
    "995: POP3 over TLS.",
);
pub const IMAP_PORT: Setting = s(
    "mail.imap_port",
    PORT,
    Default::Int(143),
    "IMAP port",
    "143: IMAP, encrypted by STARTTLS before a password is given from the Internet.",
);
pub const IMAPS_PORT: Setting = s(
    "mail.imaps_port",
    PORT,
    Default::Int(993),
    "IMAPS port",
    "993: IMAP over TLS.",
);
pub const DMARC_POLICY: Setting = s(
    "mail.dmarc_policy",
    Kind::Select(DMARC_POLICIES),
    Default::Text("none"),
    "DMARC policy",
    "What other servers do with mail that claims to be from this domain but was not signed or sent by this box; published in the zone. \"none\" until every sender of the domain's mail goes through the box.",
);
pub const MAIL_QUOTA: Setting = s(
    "mail.quota",
    Kind::Size,
    Default::Bytes(0),
    "Mailbox size limit",
    "How much mail each user may keep, e.g. 2G; a user's own quota overrides it; 0: no limit. A warning mail goes out at 90%; when full, new mail is refused for now (senders retry).",
);
pub const JUNK_FAILED_CHECKS: Setting = s(
    "mail.junk_failed_checks",
    Kind::Bool,
    Default::Bool(false),
    "Failed checks to Junk",
    "Mail from the Internet that fails its sender's SPF or DMARC goes to the Junk folder instead of the inbox (POP3 sees only the inbox).",
);
pub const GREYLISTING: Setting = s(
    "mail.greylisting",
    Kind::Bool,
    Default::Bool(false),
    "Greylisting",
    "A sender the box has not seen before is asked to try again later; real mail servers do, most spam senders do not. Delays first mail from new senders.",
);
pub const GREYLIST_DELAY: Setting = s(
    "mail.greylist_delay",
    Kind::Duration { min_secs: 1 },
    Default::Secs(300),
    "Greylisting delay",
    "How long a new sender must wait before trying again, e.g. 5m.",
);
pub const RELAY_FROM_WAN: Setting = s(
    "mail.relay_from_wan",
    Kind::Bool,
    Default::Bool(false),
    "Relay for the Internet",
    "Never turn this on unless you know why: it makes an open relay.",
);
pub const MAX_MESSAGE_SIZE: Setting = s(
    "mail.max_message_size",
    Kind::Size,
    Default::Bytes(25 << 20),
    "Largest message",
    "The largest message the box accepts, e.g. 25M.",
);
pub const MAIL_RESOLVERS: Setting = s(
    "mail.resolvers",
    Kind::List,
    Default::None,
    "DNS for other domains' mail servers",
    "Empty: this box's own DNS (which asks the primary and secondary servers). Comma-separated addresses.",
);
pub const FIRST_RETRY: Setting = s(
    "mail.queue.first_retry",
    Kind::Duration { min_secs: 1 },
    Default::Secs(300),
    "First retry after",
    "When a server elsewhere does not take a message, e.g. 5m.",
);
pub const MAX_RETRY_INTERVAL: Setting = s(
    "mail.queue.max_retry_interval",
    Kind::Duration { min_secs: 1 },
    Default::Secs(3600),
    "Retry at least every",
    "The wait doubles up to this, e.g. 1h.",
);
pub const DELAY_NOTICE_AFTER: Setting = s(
    "mail.queue.delay_notice_after",
    Kind::Duration { min_secs: 60 },
    Default::Secs(4 * 3600),
    "Tell the sender of a delay after",
    "A message still waiting this long gets its sender a delay notice, e.g. 4h.",
);
pub const GIVE_UP_AFTER: Setting = s(
    "mail.queue.give_up_after",
    Kind::Duration { min_secs: 60 },
    Default::Secs(5 * 86_400),
    "Give up and return the message after",
    "A message still undelivered after this goes back to its sender, e.g. 5d.",
);

// A POP3 account at the ISP: the catch-all's settings, shared by every user's account.

pub const POP3_SERVER: Setting = s(
    "mail.catch_all.server",
    Kind::Text,
    Default::None,
    "POP3 server",
    "e.g. pop.isp.example.",
);
pub const POP3_ACCOUNT_PORT: Setting = s(
    "mail.catch_all.port",
    PORT,
    Default::None,
    "Port",
    "Empty: 995 with TLS from the start, 110 otherwise.",
);
pub const POP3_ACCOUNT_TLS: Setting = s(
    "mail.catch_all.tls",
    Kind::Select(POP3_TLS),
    Default::Text("implicit"),
    "Encryption",
    "How to protect the password on the way.",
);
pub const POP3_LOGIN: Setting = s(
    "mail.catch_all.login",
    Kind::Text,
    Default::None,
    "Login",
    "The login at that server.",
);
pub const POP3_PASSWORD: Setting = s(
    "mail.catch_all.password",
    Kind::Text,
    Default::None,
    "Password",
    "Kept in the config file (readable by root only): the server needs it in clear.",
);
pub const POP3_POLL_INTERVAL: Setting = s(
    "mail.catch_all.poll_interval",
    Kind::Duration { min_secs: 60 },
    Default::Secs(300),
    "Fetch every",
    "How often to fetch mail from that server, e.g. 5m.",
);
pub const POP3_KEEP_ON_SERVER: Setting = s(
    "mail.catch_all.keep_on_server",
    Kind::Bool,
    Default::Bool(false),
    "Keep mail there",
    "Off: fetched mail is deleted there once it is safe here.",
);
pub const POP3_VERIFY_CERTIFICATE: Setting = s(
    "mail.catch_all.verify_certificate",
    Kind::Bool,
    Default::Bool(true),
    "Check its certificate",
    "Leave on: the password goes to that server.",
);
pub const POP3_CA_FILE: Setting = s(
    "mail.catch_all.ca_file",
    Kind::Text,
    Default::None,
    "Its own CA",
    "Only for a server whose certificate is signed by its own authority: the file on the box.",
);

// ---------------------------------------------------------------- [[users]]

pub const USER_ADMIN: Setting = s(
    "users[].admin",
    Kind::Bool,
    Default::Bool(false),
    "Administrator",
    "May log in to the admin pages.",
);

pub const USER_OUTSIDE_AT_ONCE: Setting = s(
    "users[].outside_calls_at_once",
    Kind::Int { min: 0, max: 1000 },
    Default::Int(2),
    "Outside calls at once",
    "How many outside calls the user's phones may have at a time; 0: none.",
);
pub const USER_OUTSIDE_PER_DAY: Setting = s(
    "users[].outside_calls_per_day",
    Kind::Int {
        min: 0,
        max: 100_000,
    },
    Default::Int(100),
    "Outside calls a day",
    "More are refused until midnight (emergency numbers always go out).",
);
pub const USER_CALLER_ID: Setting = s(
    "users[].caller_id",
    Kind::Text,
    Default::None,
    "Caller ID",
    "The number called parties see when this user calls out (a direct line, e.g. +4930123458). Empty: the route's, else the trunk account's (the company's main number).",
);
pub const USER_FAX: Setting = s(
    "users[].fax",
    Kind::Bool,
    Default::Bool(false),
    "A fax machine of their own",
    "The box answers as this user's fax machine where the dial plan says fax:LOGIN (a number from outside, an attendant key), and mails the pages to them as a PDF.",
);
pub const USER_QUOTA: Setting = s(
    "users[].quota",
    Kind::Size,
    Default::None,
    "Mailbox size limit",
    "How much mail this user may keep, e.g. 5G; 0: no limit; unset: the [mail] quota.",
);
pub const USER_REMOTE_OUTSIDE: Setting = s(
    "users[].outside_calls_from_remote_phones",
    Kind::Bool,
    Default::Bool(false),
    "Outside calls from phones away from the office",
    "Off: a phone of this user registered from the Internet may call extensions only.",
);

// ---------------------------------------------------------------- [phone]

pub const PHONE_ENABLED: Setting = s(
    "phone.enabled",
    Kind::Bool,
    Default::Bool(true),
    "Phone system on",
    "The office's phones register here.",
);
pub const SIP_PORT: Setting = s(
    "phone.sip_port",
    PORT,
    Default::Int(5060),
    "SIP port",
    "5060, where the phones register.",
);
pub const VOICEMAIL_EXTENSION: Setting = s(
    "phone.voicemail_extension",
    Kind::Text,
    Default::Text("*97"),
    "Voicemail extension",
    "Dial it to hear your messages, e.g. *97.",
);
pub const NIGHT_CODE: Setting = s(
    "phone.night_code",
    Kind::Text,
    Default::Text("*30"),
    "Day/night key",
    "Dial it (or press its BLF key) to close the office early or open it late: the office hours' closed (or open) destination takes calls until the hours next change by themselves; dial again to undo. E.g. *30.",
);
pub const RECORD_CODE: Setting = s(
    "phone.record_code",
    Kind::Text,
    Default::Text("*1"),
    "Record key",
    "Keyed in during a call, it records the call (both sides hear a tone) into your mailbox; again to stop. Empty: off.",
);
pub const MUSIC_ON_HOLD: Setting = s(
    "phone.music_on_hold",
    Kind::Text,
    Default::Text("builtin"),
    "Music on hold",
    "What a caller on hold hears: \"builtin\" (a tune), a WAV file (any rate; relative to the data directory), or \"off\" (the other phone decides). A WAV uploaded on the Phone Routing page wins.",
);
pub const PARK_EXTENSION: Setting = s(
    "phone.park_extension",
    Kind::Text,
    Default::Text("700"),
    "Park extension",
    "Transfer a call here to park it: the box says the place (the next 20 numbers, 701-720 for 700), and any phone dialling the place takes the call. Empty: off.",
);
pub const CONFERENCE_EXTENSION: Setting = s(
    "phone.conference_extension",
    Kind::Text,
    Default::Text("800"),
    "Conference extension",
    "Dial it to join the office's meet-me conference. Empty: off.",
);
pub const CONFERENCE_PIN: Setting = s(
    "phone.conference_pin",
    Kind::Text,
    Default::Text(""),
    "Conference PIN",
    "Digits a caller keys in (then #) before joining the conference. Empty: none.",
);
pub const CONFERENCE_SIZE: Setting = s(
    "phone.conference_size",
    Kind::Int { min: 2, max: 100 },
    Default::Int(10),
    "Conference size",
    "How many may be in the conference at once.",
);
pub const PROVISIONING: Setting = s(
    "phone.provisioning",
    Kind::Bool,
    Default::Bool(true),
    "Phones set themselves up",
    "DHCP tells phones where the box's provisioning server is (options 66, 150 and 43), and the box answers plug-and-play requests: an assigned phone (below) gets its extension, password, keys and phonebook over HTTPS. A phone nobody assigned gets nothing secret.",
);
pub const PROVISIONING_PORT: Setting = s(
    "phone.provisioning_port",
    PORT,
    Default::Int(8081),
    "Provisioning port (HTTP)",
    "Where phones fetch their first, secret-free files (LAN only).",
);
pub const PROVISIONING_TLS_PORT: Setting = s(
    "phone.provisioning_tls_port",
    PORT,
    Default::Int(8443),
    "Provisioning port (HTTPS)",
    "Where an assigned phone fetches its own file, with its one-time token or its own credentials (LAN only).",
);
pub const VENDORS: &[(&str, &str)] = &[
    ("yealink", "Yealink (T3x, T4x, T5x)"),
    ("poly", "Poly / Polycom (VVX, Edge)"),
    ("grandstream", "Grandstream (GXP, GRP)"),
    ("snom", "Snom (D7xx, 3xx)"),
];
pub const DEVICE_MAC: Setting = s(
    "phone.devices[].mac",
    Kind::Text,
    Default::None,
    "MAC address",
    "On the phone's label or its network menu, e.g. 80:5e:c0:12:34:56.",
);
pub const DEVICE_USER: Setting = s(
    "phone.devices[].user",
    Kind::Text,
    Default::None,
    "User",
    "Whose phone it is (a login with an extension).",
);
pub const DEVICE_VENDOR: Setting = s(
    "phone.devices[].vendor",
    Kind::Select(VENDORS),
    Default::None,
    "Make",
    "Which file the phone is given.",
);
pub const DEVICE_KEYS: Setting = s(
    "phone.devices[].keys",
    Kind::List,
    Default::None,
    "Lamp keys",
    "Extensions shown on the phone's keys (busy lamps), comma-separated. Empty: every other user's.",
);
pub const NO_ANSWER_TIMEOUT: Setting = s(
    "phone.no_answer_timeout",
    Kind::Duration { min_secs: 5 },
    Default::Secs(20),
    "Voicemail after",
    "How long a phone rings before voicemail answers, e.g. 20s.",
);
pub const FAX_ATTEMPTS: Setting = s(
    "phone.fax_attempts",
    Kind::Int { min: 1, max: 10 },
    Default::Int(3),
    "Fax attempts",
    "How often a fax sent from email is tried while the line is busy or nobody answers.",
);
pub const FAX_RETRY_AFTER: Setting = s(
    "phone.fax_retry_after",
    Kind::Duration { min_secs: 1 },
    Default::Secs(300),
    "Fax tried again after",
    "Between those attempts, e.g. 5m.",
);
pub const MAX_MESSAGE_LENGTH: Setting = s(
    "phone.max_message_length",
    Kind::Duration { min_secs: 10 },
    Default::Secs(180),
    "Longest message",
    "The longest voicemail message a caller may leave, e.g. 3m.",
);
pub const RTP_PORTS: Setting = s(
    "phone.rtp_ports",
    Kind::Text,
    Default::Text("10000-10999"),
    "Ports for voice",
    "A range for the calls' audio, e.g. 10000-10999 (two per call).",
);
pub const DSCP_SIP: Setting = s(
    "phone.dscp_sip",
    Kind::Text,
    Default::Text("cs3"),
    "Priority mark of call signalling",
    "The DSCP mark SIP leaves with (cs3, ef, af41 ... or 0-63; 0: none).",
);
pub const DSCP_RTP: Setting = s(
    "phone.dscp_rtp",
    Kind::Text,
    Default::Text("ef"),
    "Priority mark of voice",
    "The DSCP mark the calls' audio leaves with (ef, cs5 ... or 0-63; 0: none). Tunnels keep it on their outer packets.",
);

pub const TIMEZONE: Setting = s(
    "phone.timezone",
    Kind::Text,
    Default::None,
    "Time zone",
    "For office hours and the day's call limits, e.g. Europe/Berlin. Empty: the box's own.",
);

pub const CALL_LOG_DAYS: Setting = s(
    "phone.call_log_days",
    Kind::Int {
        min: 1,
        max: 36_500,
    },
    Default::Int(90),
    "Keep the call log (days)",
    "Calls older than this many days leave the call log.",
);

// ---------------------------------------------------------------- [[phone.trunks]]

/// How a trunk is authenticated.
pub const TRUNK_KINDS: &[(&str, &str)] = &[
    (
        "register",
        "Registration: officebox signs in to the provider with a user name and password",
    ),
    (
        "ip",
        "IP: no sign-in; the provider is known by the addresses it calls from",
    ),
];

/// How SIP travels to a provider.
pub const TRUNK_TRANSPORTS: &[(&str, &str)] = &[("udp", "UDP"), ("tcp", "TCP"), ("tls", "TLS")];
pub const TRUNK_IDENTITIES: &[(&str, &str)] = &[
    ("pai", "The caller ID in From and P-Asserted-Identity"),
    ("from", "The caller ID in From only"),
    (
        "account",
        "The account in From, the caller ID in P-Asserted-Identity",
    ),
];

/// How a trunk carries faxes.
pub const TRUNK_T38_MODES: &[(&str, &str)] = &[
    ("on", "T.38 when the provider asks for it, audio otherwise"),
    ("offered", "Ask for T.38; audio if the provider refuses"),
    ("off", "Audio (G.711) only"),
];

pub const TRUNK_NAME: Setting = s(
    "phone.trunks[].name",
    Kind::Text,
    Default::None,
    "Name",
    "A name for this line, e.g. main-line (each trunk's differs).",
);
pub const TRUNK_KIND: Setting = s(
    "phone.trunks[].kind",
    Kind::Select(TRUNK_KINDS),
    Default::Text("register"),
    "Kind",
    "How the provider knows this box: by registration, or by its address.",
);
pub const TRUNK_ENABLED: Setting = s(
    "phone.trunks[].enabled",
    Kind::Bool,
    Default::Bool(true),
    "In use",
    "Off: kept here but not used (no registration, no calls).",
);
pub const TRUNK_SERVER: Setting = s(
    "phone.trunks[].server",
    Kind::Text,
    Default::None,
    "Provider's server",
    "Its name or address, optionally with a port, e.g. sip.provider.example or 203.0.113.5:5060.",
);
pub const TRUNK_USERNAME: Setting = s(
    "phone.trunks[].username",
    Kind::Text,
    Default::None,
    "User name",
    "The account at the provider, e.g. 4930123456.",
);
pub const TRUNK_PASSWORD: Setting = s(
    "phone.trunks[].password",
    Kind::Text,
    Default::None,
    "Password",
    "Kept in the config file (readable by root only): the provider needs it in clear.",
);
pub const TRUNK_AUTH_USERNAME: Setting = s(
    "phone.trunks[].auth_username",
    Kind::Text,
    Default::None,
    "Authentication user name",
    "Only when the provider gave a separate one for signing in; empty: the user name.",
);
pub const TRUNK_OUTBOUND_PROXY: Setting = s(
    "phone.trunks[].outbound_proxy",
    Kind::Text,
    Default::None,
    "Outbound proxy",
    "Only when the provider names one: where requests go instead, e.g. proxy.provider.example:5060.",
);
pub const TRUNK_TRANSPORT: Setting = s(
    "phone.trunks[].transport",
    Kind::Select(TRUNK_TRANSPORTS),
    Default::Text("udp"),
    "Transport",
    "How SIP travels to the provider; most use UDP.",
);
pub const TRUNK_EXPIRES: Setting = s(
    "phone.trunks[].expires",
    Kind::Duration { min_secs: 60 },
    Default::Secs(3600),
    "Registration period",
    "How long a registration is asked to last; it is renewed before it ends, e.g. 1h.",
);
pub const TRUNK_ADDRESSES: Setting = s(
    "phone.trunks[].addresses",
    Kind::List,
    Default::List(&[]),
    "Provider's addresses",
    "Where its calls come from, comma-separated addresses or networks, e.g. 203.0.113.0/24 (needed for an IP trunk).",
);
pub const TRUNK_MAX_CALLS: Setting = s(
    "phone.trunks[].max_calls",
    Kind::Int {
        min: 0,
        max: 10_000,
    },
    Default::Int(0),
    "Calls at once",
    "How many calls this line carries at once; 0: no limit.",
);
pub const TRUNK_CA_FILE: Setting = s(
    "phone.trunks[].ca_file",
    Kind::Text,
    Default::None,
    "Trusted certificate (TLS)",
    "Over TLS: a PEM file of the CA that signed the provider's certificate, when the box does not trust it already.",
);
pub const TRUNK_IDENTITY: Setting = s(
    "phone.trunks[].identity",
    Kind::Select(TRUNK_IDENTITIES),
    Default::Text("pai"),
    "Caller ID style",
    "How the provider is told who calls: most take P-Asserted-Identity; some want the account in From.",
);
pub const TRUNK_T38: Setting = s(
    "phone.trunks[].t38",
    Kind::Select(TRUNK_T38_MODES),
    Default::Text("on"),
    "Fax (T.38)",
    "How faxes cross this line: as T.38 packets, which survive a lossy line, or as G.711 audio, which any provider carries. \"on\" takes T.38 when the provider asks for it; \"offered\" asks for it first.",
);
pub const TRUNK_CODECS: Setting = s(
    "phone.trunks[].codecs",
    Kind::List,
    Default::List(&["PCMU", "PCMA"]),
    "Codecs",
    "Offered to the provider in this order, comma-separated, e.g. PCMU, PCMA, G722.",
);

// ---------------------------------------------------------------- [web]

pub const WEB_ENABLED: Setting = s(
    "web.enabled",
    Kind::Bool,
    Default::Bool(true),
    "Web server on",
    "The admin pages and the www and corp sites.",
);
pub const ADMIN_PORT: Setting = s(
    "web.admin_port",
    PORT,
    Default::Int(8080),
    "Admin pages port",
    "Where these pages answer (office only), e.g. 8080.",
);
pub const SITE_PORT: Setting = s(
    "web.site_port",
    PORT,
    Default::Int(80),
    "www and corp sites port",
    "80 for a real office.",
);
pub const HTTPS: Setting = s(
    "web.https",
    Kind::Bool,
    Default::Bool(false),
    "Admin pages over HTTPS",
    "With the box's own certificate; your browser will ask you to trust it once.",
);
pub const SESSION_TIMEOUT: Setting = s(
    "web.session_timeout",
    Kind::Duration { min_secs: 60 },
    Default::Secs(1800),
    "Log out after",
    "Idle time before a login ends, e.g. 30m.",
);
pub const CONFIRM_TIMEOUT: Setting = s(
    "web.confirm_timeout",
    Kind::Duration { min_secs: 5 },
    Default::Secs(90),
    "Time to confirm a risky change",
    "After changing addresses or the security mode: keep it, or it is undone after this, e.g. 90s.",
);

// ---------------------------------------------------------------- [ntp]

pub const NTP_ENABLED: Setting = s(
    "ntp.enabled",
    Kind::Bool,
    Default::Bool(true),
    "Time server on",
    "The office's computers and phones set their clocks from the box.",
);
pub const NTP_PORT: Setting = s(
    "ntp.port",
    PORT,
    Default::Int(123),
    "Time server port",
    "123 for a real office; another only for testing.",
);

// ---------------------------------------------------------------- [backup]

pub const BACKUP_ENABLED: Setting = s(
    "backup.enabled",
    Kind::Bool,
    Default::Bool(false),
    "Nightly backup on",
    "Every night the box writes one archive of itself (settings, mail, voicemail, keys) to the backup folder.",
);
pub const BACKUP_PATH: Setting = s(
    "backup.path",
    Kind::Text,
    Default::None,
    "Backup folder",
    "Where the nightly archives go: a folder on a USB disk or another disk, e.g. /media/backup/officebox.",
);
pub const BACKUP_AT: Setting = s(
    "backup.at",
    Kind::Text,
    Default::Text("02:30"),
    "Time of the backup",
    "The time of day it runs, in the office's time zone (HH:MM).",
);
pub const BACKUP_KEEP: Setting = s(
    "backup.keep",
    Kind::Int { min: 1, max: 365 },
    Default::Int(7),
    "Archives kept",
    "How many of the newest archives stay in the folder; older ones are deleted.",
);
pub const BACKUP_PASSPHRASE: Setting = s(
    "backup.passphrase",
    Kind::Text,
    Default::None,
    "Backup passphrase",
    "When set, each archive is encrypted with it (age): keep it somewhere safe, a restore needs it.",
);

pub const VPN_ENABLED: Setting = s(
    "vpn.enabled",
    Kind::Bool,
    Default::Bool(false),
    "Tunnels on",
    "WireGuard tunnels to the company's other sites. The box makes its key on first start.",
);
pub const VPN_LISTEN_PORT: Setting = s(
    "vpn.listen_port",
    PORT,
    Default::Int(51820),
    "Tunnel port",
    "The UDP port the tunnels use on the WAN (the only opening they make there).",
);
pub const VPN_ADDRESS: Setting = s(
    "vpn.address",
    Kind::Text,
    Default::Text("10.99.0.1/24"),
    "Tunnel address",
    "The box's address in the tunnels' own subnet; each site's box has another in it.",
);
pub const VPN_SITE_NAME: Setting = s(
    "vpn.sites[].name",
    Kind::Text,
    Default::None,
    "Name",
    "A short name for the other office, e.g. branch.",
);
pub const VPN_SITE_ENABLED: Setting = s(
    "vpn.sites[].enabled",
    Kind::Bool,
    Default::Bool(true),
    "In use",
    "Off: kept here, but no tunnel to it.",
);
pub const VPN_SITE_PUBLIC_KEY: Setting = s(
    "vpn.sites[].public_key",
    Kind::Text,
    Default::None,
    "Its public key",
    "The other box's public key, as its Sites page shows it (44 characters).",
);
pub const VPN_SITE_ENDPOINT: Setting = s(
    "vpn.sites[].endpoint",
    Kind::Text,
    Default::None,
    "Where it is",
    "Its WAN address or name, and port, e.g. branch.example.com:51820. None: it calls in.",
);
pub const VPN_SITE_SUBNETS: Setting = s(
    "vpn.sites[].subnets",
    Kind::List,
    Default::None,
    "Its networks",
    "Its LAN subnets, reached through the tunnel, e.g. [\"192.168.2.0/24\"].",
);
pub const VPN_SITE_ADDRESS: Setting = s(
    "vpn.sites[].address",
    Kind::Text,
    Default::None,
    "Its box",
    "Its box's LAN address, in one of its subnets: asked for the site's names.",
);
pub const VPN_SITE_DOMAIN: Setting = s(
    "vpn.sites[].domain",
    Kind::Text,
    Default::None,
    "Its domain",
    "Its DNS domain, answered by its box, e.g. branch.example.com.",
);
pub const VPN_SITE_EXTENSIONS: Setting = s(
    "vpn.sites[].extensions",
    Kind::Text,
    Default::None,
    "Its extensions",
    "Its phones' extensions, called through the tunnel: a range (\"200-299\") or a prefix (\"2\").",
);
pub const VPN_PEER_NAME: Setting = s(
    "vpn.peers[].name",
    Kind::Text,
    Default::None,
    "Device",
    "A short name for the device, e.g. alice-laptop.",
);
pub const VPN_PEER_USER: Setting = s(
    "vpn.peers[].user",
    Kind::Text,
    Default::None,
    "Whose",
    "The login of the user whose device it is.",
);
pub const VPN_PEER_ENABLED: Setting = s(
    "vpn.peers[].enabled",
    Kind::Bool,
    Default::Bool(true),
    "In use",
    "Off: it is cut off at once, but kept here.",
);
pub const VPN_PEER_ADDRESS: Setting = s(
    "vpn.peers[].address",
    Kind::Text,
    Default::None,
    "Its tunnel address",
    "Its own address in the tunnels' subnet (vpn.address), e.g. 10.99.0.10; left empty on the Sites page, the box gives it the next free one.",
);
pub const VPN_PEER_PUBLIC_KEY: Setting = s(
    "vpn.peers[].public_key",
    Kind::Text,
    Default::None,
    "Its public key",
    "Only for a device that made its own key; unset, the box makes the device's key and puts it in its configuration.",
);
pub const VPN_PEER_ACCESS: Setting = s(
    "vpn.peers[].access",
    Kind::Select(PEER_ACCESS),
    Default::Text("lan"),
    "It may reach",
    "lan: the whole office network; box: only the box and the hosts listed.",
);
pub const VPN_PEER_HOSTS: Setting = s(
    "vpn.peers[].hosts",
    Kind::List,
    Default::None,
    "Hosts",
    "With access = \"box\": the LAN hosts it may reach besides the box, e.g. [\"192.168.1.20\"].",
);
pub const VPN_PEER_TUNNEL: Setting = s(
    "vpn.peers[].tunnel",
    Kind::Select(PEER_TUNNEL),
    Default::Text("split"),
    "Its traffic",
    "split: only the office's networks go through the tunnel; full: everything, out through the office's WAN.",
);
pub const VPN_PEER_EXPIRES: Setting = s(
    "vpn.peers[].expires",
    Kind::Text,
    Default::None,
    "Works until",
    "The last day it works, e.g. 2027-06-30; unset: no end.",
);

/// What a remote device may reach.
pub const PEER_ACCESS: &[(&str, &str)] = &[
    ("lan", "The whole office network"),
    ("box", "Only the box and the hosts listed"),
];
/// Which of a remote device's traffic goes through the tunnel.
pub const PEER_TUNNEL: &[(&str, &str)] = &[
    ("split", "Only the office's networks"),
    ("full", "Everything, out through the office"),
];

pub const VPN_SITE_SIP_PORT: Setting = s(
    "vpn.sites[].sip_port",
    PORT,
    Default::Int(5060),
    "Its SIP port",
    "The port its box takes calls on (its phone.sip_port).",
);
pub const VPN_SITE_FALLBACK: Setting = s(
    "vpn.sites[].fallback",
    Kind::Text,
    Default::None,
    "When it is down",
    "Where a call to its extensions goes when its box does not answer, e.g. \"operator\" or \"voicemail:alice\"; unset: the caller hears that it is unavailable.",
);

// ---------------------------------------------------------------- [phone]: the dial plan

/// How a ring group rings.
pub const RING_STRATEGIES: &[(&str, &str)] = &[
    ("all", "All at once: the first to answer takes the call"),
    ("hunt", "In order: each member rings in turn"),
];

pub const EMERGENCY_NUMBERS: Setting = s(
    "phone.emergency_numbers",
    Kind::List,
    Default::List(&["911", "112"]),
    "Emergency numbers",
    "Always go out, on the first working trunk, whoever dials them.",
);
pub const OPERATOR: Setting = s(
    "phone.operator",
    Kind::Text,
    Default::None,
    "Operator",
    "Where a call from outside goes when its number is not listed, e.g. extension:100. Empty: refused.",
);
pub const INTERNATIONAL_PREFIXES: Setting = s(
    "phone.international_prefixes",
    Kind::List,
    Default::List(&["011", "00"]),
    "International prefixes",
    "Numbers starting so (as sent to the provider) are refused on routes that do not allow international calls.",
);
pub const PREMIUM_PREFIXES: Setting = s(
    "phone.premium_prefixes",
    Kind::List,
    Default::List(&["1900", "900"]),
    "Premium-rate prefixes",
    "Numbers starting so (as sent to the provider) are refused on routes that do not allow premium-rate calls.",
);
pub const ROUTE_NAME: Setting = s(
    "phone.routes[].name",
    Kind::Text,
    Default::None,
    "Name",
    "What the route is for, e.g. local calls.",
);
pub const ROUTE_PATTERN: Setting = s(
    "phone.routes[].pattern",
    Kind::Text,
    Default::None,
    "Pattern",
    "The numbers it takes: digits, X (0-9), N (2-9), Z (1-9), [1-5], and . at the end for any more, e.g. 9. or 0NXXXXXXXX.",
);
pub const ROUTE_TRUNKS: Setting = s(
    "phone.routes[].trunks",
    Kind::List,
    Default::None,
    "Trunks",
    "The providers to send the call to, tried in order, comma-separated.",
);
pub const ROUTE_STRIP: Setting = s(
    "phone.routes[].strip",
    Kind::Int { min: 0, max: 32 },
    Default::Int(0),
    "Digits to strip",
    "How many to take off the front, e.g. 1 for a 9 dialed first.",
);
pub const ROUTE_PREPEND: Setting = s(
    "phone.routes[].prepend",
    Kind::Text,
    Default::Text(""),
    "Digits to add",
    "Put in front after stripping, e.g. +1.",
);
pub const ROUTE_USERS: Setting = s(
    "phone.routes[].users",
    Kind::List,
    Default::None,
    "Who may use it",
    "Logins, comma-separated. Empty: everybody.",
);
pub const ROUTE_CALLER_ID: Setting = s(
    "phone.routes[].caller_id",
    Kind::Text,
    Default::None,
    "Caller ID",
    "The number the called party sees. Empty: the trunk account's number (the company's main number).",
);
pub const ROUTE_ALLOW_INTERNATIONAL: Setting = s(
    "phone.routes[].allow_international",
    Kind::Bool,
    Default::Bool(false),
    "International calls",
    "Off: numbers with an international prefix are refused on this route.",
);
pub const ROUTE_ALLOW_PREMIUM: Setting = s(
    "phone.routes[].allow_premium",
    Kind::Bool,
    Default::Bool(false),
    "Premium-rate calls",
    "Off: premium-rate numbers are refused on this route.",
);
pub const INBOUND_NUMBER: Setting = s(
    "phone.inbound[].number",
    Kind::Text,
    Default::None,
    "Number",
    "A number the provider sends, e.g. +15551230000.",
);
pub const INBOUND_DESTINATION: Setting = s(
    "phone.inbound[].destination",
    Kind::Text,
    Default::None,
    "Rings",
    "e.g. extension:101, group:sales, attendant:main, voicemail:alice, schedule:office.",
);
pub const GROUP_NAME: Setting = s(
    "phone.ring_groups[].name",
    Kind::Text,
    Default::None,
    "Name",
    "One word, e.g. sales.",
);
pub const GROUP_STRATEGY: Setting = s(
    "phone.ring_groups[].strategy",
    Kind::Select(RING_STRATEGIES),
    Default::Text("all"),
    "Rings",
    "All members at once, or one after the other.",
);
pub const GROUP_MEMBERS: Setting = s(
    "phone.ring_groups[].members",
    Kind::List,
    Default::None,
    "Members",
    "Extensions or outside numbers (number:+1555...), comma-separated.",
);
pub const GROUP_RING_TIME: Setting = s(
    "phone.ring_groups[].ring_time",
    Kind::Duration { min_secs: 5 },
    Default::Secs(20),
    "Ring for",
    "Each member in turn, or the whole group at once, e.g. 20s.",
);
pub const GROUP_NO_ANSWER: Setting = s(
    "phone.ring_groups[].no_answer",
    Kind::Text,
    Default::Text("hangup"),
    "Nobody answers",
    "Where the call goes then, e.g. voicemail:alice.",
);
pub const SCHEDULE_NAME: Setting = s(
    "phone.schedules[].name",
    Kind::Text,
    Default::None,
    "Name",
    "One word, e.g. office.",
);
pub const SCHEDULE_OPEN: Setting = s(
    "phone.schedules[].open",
    Kind::List,
    Default::None,
    "Open",
    "Days and hours, e.g. mon-fri 09:00-12:00, mon-fri 13:00-17:00.",
);
pub const SCHEDULE_HOLIDAYS: Setting = s(
    "phone.schedules[].holidays",
    Kind::List,
    Default::List(&[]),
    "Closed on",
    "Dates, e.g. 2026-12-25.",
);
pub const SCHEDULE_WHEN_OPEN: Setting = s(
    "phone.schedules[].when_open",
    Kind::Text,
    Default::None,
    "When open, ring",
    "e.g. group:sales.",
);
pub const SCHEDULE_WHEN_CLOSED: Setting = s(
    "phone.schedules[].when_closed",
    Kind::Text,
    Default::None,
    "When closed, ring",
    "e.g. attendant:night or voicemail:alice.",
);
pub const ATTENDANT_NAME: Setting = s(
    "phone.attendants[].name",
    Kind::Text,
    Default::None,
    "Name",
    "One word, e.g. main.",
);
pub const ATTENDANT_GREETING: Setting = s(
    "phone.attendants[].greeting",
    Kind::Text,
    Default::None,
    "Greeting (text)",
    "Spoken by the box, e.g. Thank you for calling. For sales press 1.",
);
pub const ATTENDANT_GREETING_FILE: Setting = s(
    "phone.attendants[].greeting_file",
    Kind::Text,
    Default::None,
    "Greeting (recording)",
    "A WAV file on the box (any rate; a relative path is in the data directory), instead of the text.",
);
pub const ATTENDANT_KEYS: Setting = s(
    "phone.attendants[].keys",
    Kind::List,
    Default::List(&[]),
    "Keys",
    "KEY=DESTINATION, comma-separated, e.g. 1=group:sales, 0=operator.",
);
pub const ATTENDANT_DIAL_BY_EXTENSION: Setting = s(
    "phone.attendants[].dial_by_extension",
    Kind::Bool,
    Default::Bool(true),
    "Dial by extension",
    "A caller may dial an extension directly.",
);
pub const ATTENDANT_TIMEOUT: Setting = s(
    "phone.attendants[].timeout",
    Kind::Duration { min_secs: 1 },
    Default::Secs(5),
    "Wait for a key",
    "After the greeting, e.g. 5s.",
);
pub const ATTENDANT_NO_INPUT: Setting = s(
    "phone.attendants[].no_input",
    Kind::Text,
    Default::Text("operator"),
    "No key pressed",
    "Where the call goes then.",
);
pub const ATTENDANT_INVALID: Setting = s(
    "phone.attendants[].invalid",
    Kind::Text,
    Default::Text("operator"),
    "A key that leads nowhere",
    "Where the call goes then.",
);
pub const FAX_NAME: Setting = s(
    "phone.fax[].name",
    Kind::Text,
    Default::None,
    "Name",
    "One word, e.g. main; a number routed to \"fax:main\" reaches it.",
);
pub const FAX_EXTENSION: Setting = s(
    "phone.fax[].extension",
    Kind::Text,
    Default::None,
    "Its extension",
    "Dialled in the office, it answers, e.g. 180; unset: only numbers routed to it.",
);
pub const FAX_TO: Setting = s(
    "phone.fax[].to",
    Kind::Text,
    Default::None,
    "Mailed to",
    "The login of the user whose mailbox gets its faxes, each as a PDF.",
);
pub const FAX_IDENT: Setting = s(
    "phone.fax[].ident",
    Kind::Text,
    Default::None,
    "Its identity",
    "What it tells the sending machine (often the fax number, at most 20 characters); unset: its extension, else its name.",
);
pub const FAX_TIFF: Setting = s(
    "phone.fax[].tiff",
    Kind::Bool,
    Default::Bool(false),
    "The TIFF too",
    "Also attach the pages as the TIFF file they came in (for fax software); the PDF is always there.",
);

/// Every setting, in the order of the appliance's admin pages.
pub const SETTINGS: &[&Setting] = &[
    &DATA_DIR,
    &HOSTNAME,
    &DOMAIN,
    &MANAGE,
    &LISTEN,
    &WAN_INTERFACE,
    &WAN_MODE,
    &WAN_ADDRESS,
    &WAN_NETMASK,
    &WAN_GATEWAY,
    &WAN_RELEASE,
    &WAN_UPLOAD,
    &WAN_DOWNLOAD,
    &LAN_INTERFACE,
    &LAN_ADDRESS,
    &LAN_NETMASK,
    &LAN_GATEWAY,
    &SECURITY_MODE,
    &WAN_SERVICES,
    &FORWARD_NAME,
    &FORWARD_PROTOCOL,
    &FORWARD_WAN_PORT,
    &FORWARD_HOST,
    &FORWARD_PORT,
    &DNS_ENABLED,
    &DNS_PORT,
    &DNS_PRIMARY,
    &DNS_SECONDARY,
    &DNS_USE_UPSTREAM,
    &DNS_SECONDARIES,
    &DNS_TTL,
    &DNS_CACHE_SIZE,
    &RECORD_NAME,
    &RECORD_TYPE,
    &RECORD_VALUE,
    &DHCP_ENABLED,
    &DHCP_RANGE,
    &DHCP_LEASE_TIME,
    &DHCP_EXCLUDE,
    &DHCP_PING_CHECK,
    &DHCP_SERVER_CHECK,
    &RESERVATION_MAC,
    &RESERVATION_ADDRESS,
    &RESERVATION_HOSTNAME,
    &MAIL_ENABLED,
    &SMTP_PORT,
    &SUBMISSION_PORT,
    &SMTPS_PORT,
    &POP3_PORT,
    &POP3S_PORT,
    &IMAP_PORT,
    &IMAPS_PORT,
    &RELAY_FROM_WAN,
    &DMARC_POLICY,
    &JUNK_FAILED_CHECKS,
    &GREYLISTING,
    &GREYLIST_DELAY,
    &MAX_MESSAGE_SIZE,
    &MAIL_QUOTA,
    &MAIL_RESOLVERS,
    &FIRST_RETRY,
    &MAX_RETRY_INTERVAL,
    &DELAY_NOTICE_AFTER,
    &GIVE_UP_AFTER,
    &POP3_SERVER,
    &POP3_ACCOUNT_PORT,
    &POP3_ACCOUNT_TLS,
    &POP3_LOGIN,
    &POP3_PASSWORD,
    &POP3_POLL_INTERVAL,
    &POP3_KEEP_ON_SERVER,
    &POP3_VERIFY_CERTIFICATE,
    &POP3_CA_FILE,
    &USER_ADMIN,
    &USER_OUTSIDE_AT_ONCE,
    &USER_OUTSIDE_PER_DAY,
    &USER_CALLER_ID,
    &USER_FAX,
    &USER_REMOTE_OUTSIDE,
    &USER_QUOTA,
    &PHONE_ENABLED,
    &SIP_PORT,
    &VOICEMAIL_EXTENSION,
    &NIGHT_CODE,
    &RECORD_CODE,
    &MUSIC_ON_HOLD,
    &PARK_EXTENSION,
    &CONFERENCE_EXTENSION,
    &CONFERENCE_PIN,
    &CONFERENCE_SIZE,
    &PROVISIONING,
    &PROVISIONING_PORT,
    &PROVISIONING_TLS_PORT,
    &DEVICE_MAC,
    &DEVICE_USER,
    &DEVICE_VENDOR,
    &DEVICE_KEYS,
    &NO_ANSWER_TIMEOUT,
    &FAX_ATTEMPTS,
    &FAX_RETRY_AFTER,
    &MAX_MESSAGE_LENGTH,
    &RTP_PORTS,
    &DSCP_SIP,
    &DSCP_RTP,
    &CALL_LOG_DAYS,
    &TIMEZONE,
    &EMERGENCY_NUMBERS,
    &OPERATOR,
    &INTERNATIONAL_PREFIXES,
    &PREMIUM_PREFIXES,
    &ROUTE_NAME,
    &ROUTE_PATTERN,
    &ROUTE_TRUNKS,
    &ROUTE_STRIP,
    &ROUTE_PREPEND,
    &ROUTE_USERS,
    &ROUTE_CALLER_ID,
    &ROUTE_ALLOW_INTERNATIONAL,
    &ROUTE_ALLOW_PREMIUM,
    &INBOUND_NUMBER,
    &INBOUND_DESTINATION,
    &GROUP_NAME,
    &GROUP_STRATEGY,
    &GROUP_MEMBERS,
    &GROUP_RING_TIME,
    &GROUP_NO_ANSWER,
    &SCHEDULE_NAME,
    &SCHEDULE_OPEN,
    &SCHEDULE_HOLIDAYS,
    &SCHEDULE_WHEN_OPEN,
    &SCHEDULE_WHEN_CLOSED,
    &ATTENDANT_NAME,
    &ATTENDANT_GREETING,
    &ATTENDANT_GREETING_FILE,
    &ATTENDANT_KEYS,
    &ATTENDANT_DIAL_BY_EXTENSION,
    &ATTENDANT_TIMEOUT,
    &ATTENDANT_NO_INPUT,
    &ATTENDANT_INVALID,
    &FAX_NAME,
    &FAX_EXTENSION,
    &FAX_TO,
    &FAX_IDENT,
    &FAX_TIFF,
    &TRUNK_NAME,
    &TRUNK_KIND,
    &TRUNK_ENABLED,
    &TRUNK_SERVER,
    &TRUNK_USERNAME,
    &TRUNK_PASSWORD,
    &TRUNK_AUTH_USERNAME,
    &TRUNK_OUTBOUND_PROXY,
    &TRUNK_TRANSPORT,
    &TRUNK_EXPIRES,
    &TRUNK_ADDRESSES,
    &TRUNK_MAX_CALLS,
    &TRUNK_IDENTITY,
    &TRUNK_T38,
    &TRUNK_CA_FILE,
    &TRUNK_CODECS,
    &WEB_ENABLED,
    &ADMIN_PORT,
    &SITE_PORT,
    &HTTPS,
    &SESSION_TIMEOUT,
    &CONFIRM_TIMEOUT,
    &NTP_ENABLED,
    &NTP_PORT,
    &BACKUP_ENABLED,
    &BACKUP_PATH,
    &BACKUP_AT,
    &BACKUP_KEEP,
    &BACKUP_PASSPHRASE,
    &VPN_ENABLED,
    &VPN_LISTEN_PORT,
    &VPN_ADDRESS,
    &VPN_SITE_NAME,
    &VPN_SITE_ENABLED,
    &VPN_SITE_PUBLIC_KEY,
    &VPN_SITE_ENDPOINT,
    &VPN_SITE_SUBNETS,
    &VPN_SITE_ADDRESS,
    &VPN_SITE_DOMAIN,
    &VPN_SITE_EXTENSIONS,
    &VPN_SITE_SIP_PORT,
    &VPN_SITE_FALLBACK,
    &VPN_PEER_NAME,
    &VPN_PEER_USER,
    &VPN_PEER_ENABLED,
    &VPN_PEER_ADDRESS,
    &VPN_PEER_PUBLIC_KEY,
    &VPN_PEER_ACCESS,
    &VPN_PEER_HOSTS,
    &VPN_PEER_TUNNEL,
    &VPN_PEER_EXPIRES,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_unique_and_found() {
        for (i, a) in SETTINGS.iter().enumerate() {
            assert!(
                SETTINGS.iter().skip(i + 1).all(|b| b.path != a.path),
                "{} twice",
                a.path
            );
            assert_eq!(get(a.path), Some(*a));
        }
        assert_eq!(get("dhcp.no_such_thing"), None);
        assert_eq!(DHCP_LEASE_TIME.key(), "lease_time");
        assert_eq!(DATA_DIR.key(), "data_dir");
        assert_eq!(RESERVATION_MAC.key(), "mac");
        assert_eq!(DHCP_LEASE_TIME.table(), "dhcp");
        assert_eq!(DATA_DIR.table(), "");
    }

    #[test]
    fn every_default_fits_its_kind() {
        for s in SETTINGS {
            let fits = match (s.kind, s.default) {
                (_, Default::None) => true,
                (Kind::Bool, Default::Bool(_)) => true,
                (Kind::Int { min, max }, Default::Int(n)) => (min..=max).contains(&n),
                (Kind::Duration { min_secs }, Default::Secs(d)) => d >= min_secs,
                (Kind::Size, Default::Bytes(_)) => true,
                (Kind::Text, Default::Text(_)) => true,
                (Kind::Select(choices), Default::Text(t)) => choices.iter().any(|(c, _)| *c == t),
                (Kind::List, Default::List(_)) => true,
                _ => false,
            };
            assert!(
                fits,
                "{}: default {:?} is not a {:?}",
                s.path, s.default, s.kind
            );
            assert!(
                !s.label.is_empty() && !s.help.is_empty(),
                "{} needs words",
                s.path
            );
        }
    }

    #[test]
    fn defaults_are_written_as_the_file_writes_them() {
        assert_eq!(DHCP_LEASE_TIME.default_toml().as_deref(), Some("\"1d\""));
        assert_eq!(MAX_MESSAGE_SIZE.default_toml().as_deref(), Some("\"25M\""));
        assert_eq!(
            WAN_SERVICES.default_toml().as_deref(),
            Some("[\"smtp\", \"www\"]")
        );
        assert_eq!(DNS_PORT.default_toml().as_deref(), Some("53"));
        assert_eq!(DOMAIN.default_toml(), None);
        assert_eq!(CONFIRM_TIMEOUT.default_display().as_deref(), Some("90s"));
        assert_eq!(DNS_PORT.port(), 53);
    }
}
