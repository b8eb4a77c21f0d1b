//! The commented default config that `officebox init` writes.
//!
//! The text is a template, not a serializer output, so its section banners and examples
//! are written for people; every setting with a default is a `{path}` placeholder that
//! [`schema`](crate::schema) fills in with the setting's default and help, so the file
//! cannot disagree with the loader or the admin pages. `{path=value}` writes another
//! value than the default, where a new box wants one (and says so).

use crate::schema;

/// The default config for a new box. `admin_hash` is the argon2 hash of the admin's
/// password (the caller generates and shows the password).
pub fn default_config(hostname: &str, domain: &str, admin_hash: &str) -> String {
    // The names go in first, so their lines are laid out with them.
    let named = TEMPLATE
        .replace("{hostname}", hostname)
        .replace("{domain}", domain);
    render(&named).replace("{admin_hash}", admin_hash)
}

/// Where an inline comment starts, and the longest line that keeps one.
const COMMENT_COLUMN: usize = 32;
const LINE: usize = 100;

/// Fills each `{path}` / `{path=value}` placeholder with `key = value` and the setting's
/// help; other braces (`{domain}`) are left for the caller.
fn render(template: &str) -> String {
    let mut out = String::with_capacity(template.len() * 2);
    for line in template.lines() {
        match placeholder(line) {
            Some((setting, value)) => {
                let assignment = format!("{} = {value}", setting.key());
                let inline = format!("{assignment:<COMMENT_COLUMN$}# {}", setting.help);
                if inline.len() <= LINE {
                    out.push_str(&inline);
                } else {
                    for comment in wrap(setting.help, LINE - 2) {
                        out.push_str("# ");
                        out.push_str(&comment);
                        out.push('\n');
                    }
                    out.push_str(&assignment);
                }
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// The setting a line names (`{path}` alone on it) and the value to write.
fn placeholder(line: &str) -> Option<(&'static schema::Setting, String)> {
    let inner = line.strip_prefix('{')?.strip_suffix('}')?;
    let (path, value) = match inner.split_once('=') {
        Some((path, value)) => (path, Some(value.to_string())),
        None => (inner, None),
    };
    let setting = schema::get(path)?;
    Some((setting, value.or_else(|| setting.default_toml())?))
}

/// Splits `text` into lines of at most `width` characters, at spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split(' ') {
        match lines.last_mut() {
            Some(last) if last.len() + 1 + word.len() <= width => {
                last.push(' ');
                last.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

const TEMPLATE: &str = r#"# officebox configuration.
#
# One file for the whole box. After editing, check it with
#     officebox check --config THIS_FILE
# and apply it to a running officebox with `kill -HUP <pid>` (or from the admin pages).
# Durations are written like "30s", "5m", "12h", "1d"; sizes like "25M".

{data_dir}

# ---------------------------------------------------------------- Network Settings
[network]
{network.hostname="{hostname}"}
{network.domain="{domain}"}
{network.manage}
# listen = ["127.0.0.1"]        # bind every service to these addresses only (testing)

[network.wan]                   # the port facing your ISP's modem
{network.wan.interface="eth0"}
mode = "dhcp"                   # "dhcp": leased from the ISP; "static": entered below
# mode = "static"
# address = "203.0.113.10"      # from your ISP
# netmask = "255.255.255.0"
# gateway = "203.0.113.1"
{network.wan.release_on_shutdown}
# upload = "20mbit"               # the line's speeds: the box shapes just below them,
# download = "100mbit"            # voice first (unset: no shaping)

[network.lan]                   # the port facing the office switch
{network.lan.interface="eth1"}
{network.lan.address="192.168.1.1"}
{network.lan.netmask="255.255.255.0"}
# gateway = "192.168.1.254"     # only in lan-only mode: the office's other router

# ---------------------------------------------------------------- Security Settings
[security]
# lan-only:         officebox is an ordinary host on the LAN; no routing.
# router:           plain routing between LAN and WAN; no NAT, no firewall.
# firewall-nat:     the office shares one Internet address; nobody outside can reach in.
# firewall-nat-dmz: the same, and officebox's own WAN address answers only the services
#                   listed in wan_services (all other ports are invisible).
{security.mode}
{security.wan_services}

# Publish a LAN device on the Internet (repeat the block for each):
# [[security.forwards]]
# name = "office camera"
# protocol = "tcp"              # "tcp", "udp" or "both"
# wan_port = 8022
# host = "192.168.1.20"
# port = 22                     # defaults to wan_port

# ---------------------------------------------------------------- DNS Server
[dns]
{dns.enabled}
{dns.port}
# primary = "192.0.2.53"        # your ISP's DNS server
# secondary = "192.0.2.54"      # optional; leave it out rather than guess
# A new box starts stand-alone: set primary, then use_upstream = true.
{dns.use_upstream=false}
{dns.secondaries}
{dns.ttl}
{dns.cache_size}

# Extra names in your domain (types: A, AAAA, CNAME, MX, TXT, SRV, PTR):
# [[dns.records]]
# name = "printer"
# type = "A"
# value = "192.168.1.20"

# ---------------------------------------------------------------- Servers - DHCP
[dhcp]
{dhcp.enabled}
# range = ["192.168.1.1", "192.168.1.100"]   # default: .1 to .100, skipping officebox
{dhcp.lease_time}
{dhcp.exclude}
{dhcp.ping_check}
{dhcp.server_check}

# A fixed address for one device (repeat for each):
# [[dhcp.reservations]]
# mac = "52:54:00:12:34:56"
# address = "192.168.1.20"
# hostname = "printer"

# ---------------------------------------------------------------- Mail
[mail]
{mail.enabled}
{mail.smtp_port}
{mail.submission_port}
{mail.smtps_port}
{mail.pop3_port}
{mail.pop3s_port}
{mail.imap_port}
{mail.imaps_port}
{mail.relay_from_wan}
# Every message from the domain to other domains is signed (DKIM, keys made on the first
# start); the zone publishes the keys, an SPF record naming the WAN address, and DMARC.
{mail.dmarc_policy}
# Mail from the Internet is checked (SPF, DKIM, DMARC, ARC) and the outcome written in
# an Authentication-Results header; a domain's DMARC "reject" is honoured.
{mail.junk_failed_checks}
{mail.greylisting}
{mail.greylist_delay}
{mail.max_message_size}
{mail.quota}
# DNS servers for finding other domains' mail servers. Unset: this box's own DNS
# (which asks [dns] primary/secondary), or nothing when use_upstream is off.
# resolvers = ["192.0.2.53"]

# Mail for other domains waits here until their servers take it.
[mail.queue]
{mail.queue.first_retry}
{mail.queue.max_retry_interval}
{mail.queue.delay_notice_after}
{mail.queue.give_up_after}

# Message Aliases: a name that delivers to users and/or addresses elsewhere.
# Naming the user itself keeps a copy here and forwards one:
#     bob = ["bob", "bob@primary.example"]
[mail.aliases]
postmaster = ["admin"]

# One ISP mailbox shared by everybody, sorted out to the users:
# [mail.catch_all]
# server = "pop.isp.example"
# tls = "implicit"              # "implicit" (995), "starttls" or "none"
# login = "office"
# password = "..."
# poll_interval = "5m"
# keep_on_server = false
# verify_certificate = true     # check the ISP's certificate; the password goes there
# ca_file = "/etc/officebox/isp-ca.pem"   # an ISP with its own CA

# ---------------------------------------------------------------- Users
# Add users with `officebox user add LOGIN`; it stores hashes, never passwords.
[[users]]
login = "admin"
name = "Administrator"
password = "{admin_hash}"
{users[].admin=true}
# A user's own mailbox at the ISP, fetched into theirs (settings as for the catch-all):
# [[users.pop3]]
# server = "pop.isp.example"
# login = "admin.office"
# password = "..."

# ---------------------------------------------------------------- Phones
[phone]
{phone.enabled}
{phone.sip_port}
{phone.voicemail_extension}
{phone.night_code}
{phone.record_code}
{phone.music_on_hold}
{phone.park_extension}
{phone.conference_extension}
{phone.conference_pin}
{phone.conference_size}
{phone.no_answer_timeout}
{phone.max_message_length}
{phone.fax_attempts}
{phone.fax_retry_after}
{phone.rtp_ports}
{phone.dscp_sip}
{phone.dscp_rtp}
{phone.call_log_days}
{phone.provisioning}
{phone.provisioning_port}
{phone.provisioning_tls_port}
# timezone = "Europe/Berlin"   # office hours and the day's limits; unset: the box's own
{phone.emergency_numbers}
{phone.international_prefixes}
{phone.premium_prefixes}
# operator = "extension:100"   # where outside calls for an unlisted number ring

# Desk phones that set themselves up: this MAC is Alice's phone (vendor: yealink, poly,
# grandstream or snom; keys: the extensions on its lamp keys, every other user's if left out):
# [[phone.devices]]
# mac = "80:5e:c0:12:34:56"
# user = "alice"
# vendor = "yealink"
# keys = ["102", "103"]

# Calls out: a route per kind of number, tried in order (an extension always wins):
# [[phone.routes]]
# name = "outside"
# pattern = "9."                # 9, then the number
# trunks = ["provider"]         # tried in order
# strip = 1                     # take the 9 off
# prepend = ""
# users = ["alice", "bob"]      # who may use it; leave out for everybody

# Calls in: each number the provider sends, and where it rings:
# [[phone.inbound]]
# number = "+15551230000"
# destination = "schedule:office"   # extension:101, group:sales, attendant:main, voicemail:alice

# [[phone.ring_groups]]
# name = "sales"
# strategy = "all"              # "all" at once, or "hunt" one after the other
# members = ["101", "102", "number:95551234"]   # a mobile too, out over its route
# ring_time = "20s"
# no_answer = "voicemail:alice"

# [[phone.schedules]]
# name = "office"
# open = ["mon-fri 09:00-12:00", "mon-fri 13:00-17:00"]
# holidays = ["2026-12-25"]
# when_open = "group:sales"
# when_closed = "attendant:main"

# [[phone.attendants]]
# name = "main"
# greeting = "Thank you for calling. For sales, press 1. For Bob, press 2."
# keys = ["1=group:sales", "2=extension:102", "0=operator"]
# (a recording uploaded on the Phone Routing page, or made with *97 and 5, wins over the text)
# A line to your telephone provider (a SIP trunk); officebox registers to it:
# [[phone.trunks]]
# name = "main-line"
# server = "sip.provider.example"   # its host, optionally :port (no port: its SRV records)
# username = "4930123456"
# password = "..."                  # kept here in clear (this file is readable by root only)
# transport = "udp"                 # or "tcp", or "tls" (port 5061; ca_file = "..." for a private CA)
# expires = "1h"
# A provider that knows the box by its address instead:
# [[phone.trunks]]
# name = "ip-line"
# kind = "ip"
# server = "203.0.113.5"
# addresses = ["203.0.113.5"]       # where its calls come from

# ---------------------------------------------------------------- Web
[web]
{web.enabled}
{web.admin_port}
{web.site_port}
{web.https}
{web.session_timeout}
{web.confirm_timeout}

# ---------------------------------------------------------------- Time
[ntp]
{ntp.enabled}
{ntp.port}

# ---------------------------------------------------------------- Backup
[backup]
{backup.enabled}
# {backup.path}
{backup.at}
{backup.keep}
# {backup.passphrase}

# ---------------------------------------------------------------- Sites (VPN)
[vpn]
{vpn.enabled}
{vpn.listen_port}
{vpn.address}
# Another office with its own officebox (exchange public keys on the Sites pages):
# [[vpn.sites]]
# name = "branch"
# public_key = "..."                # its box's, as its Sites page shows it
# endpoint = "branch.example.com:51820"
# subnets = ["192.168.2.0/24"]      # its LAN
# address = "192.168.2.1"           # its box's LAN address
# domain = "branch.example.com"     # its names, answered by its box
# extensions = "200-299"            # its phones, called through the tunnel
# fallback = "operator"             # where their calls go while it is down
#
# [[vpn.peers]]                     # a user's device working from elsewhere
# name = "alice-laptop"
# user = "alice"
# address = "10.99.0.10"            # its own address in vpn.address's subnet
# access = "lan"                    # or "box": only the box and the hosts listed
# tunnel = "split"                  # or "full": all its traffic through the office
# expires = "2027-06-30"            # the last day it works (optional)
# (officebox vpn device alice-laptop prints the configuration for its WireGuard app)
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_names_a_setting_and_every_default_is_written() {
        let text = default_config("officebox", "example.com", "HASH");
        assert!(
            text.lines().all(|l| !l.starts_with('{')),
            "a placeholder was left: {text}"
        );
        for line in TEMPLATE.lines() {
            if line.starts_with('{') && !line.starts_with("{domain") && !line.starts_with("{admin")
            {
                assert!(
                    placeholder(line).is_some(),
                    "{line} names no setting with a value"
                );
            }
        }
        // Each setting of a plain table that has a default is in the file, once.
        for s in schema::SETTINGS {
            if s.default_toml().is_none()
                || s.path.contains("[]")
                || s.path.starts_with("mail.catch_all")
            {
                continue;
            }
            let (plain, other) = (format!("{{{}}}", s.path), format!("{{{}=", s.path));
            assert_eq!(
                TEMPLATE.matches(&plain).count() + TEMPLATE.matches(&other).count(),
                1,
                "{} is not in the template once",
                s.path
            );
        }
        assert!(text.contains("lease_time = \"1d\""));
        assert!(
            !text.contains("{phone."),
            "a placeholder inside a comment stays unfilled"
        );
        assert!(text.contains("# How long an address is lent"));
    }

    #[test]
    fn long_help_goes_above_its_setting() {
        let text = render("{dns.use_upstream=false}\n");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.last(), Some(&"use_upstream = false"));
        assert!(
            lines
                .iter()
                .rev()
                .skip(1)
                .all(|l| l.starts_with("# ") && l.len() <= LINE)
        );
        assert_eq!(wrap("a bb ccc", 4), vec!["a bb", "ccc"]);
    }
}
