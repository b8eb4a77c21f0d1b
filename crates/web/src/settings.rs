//! Settings pages as data: each page lists the config settings it edits (by their dotted
//! path in the file), and the same code reads them out of the file, writes a submitted
//! form back into it (with toml_edit, so comments and layout stay), and validates the
//! result with the config crate, whose errors carry the same paths: each error lands
//! beside its field.

use officebox_config::Diagnostic;
use toml_edit::{Array, DocumentMut, Item, Table, Value};

/// How a setting is edited.
#[derive(Debug, Clone, Copy)]
pub enum FieldKind {
    /// A string (empty: the setting is removed, so its default applies).
    Text,
    /// A whole number (anything else is written as text, and validation says why).
    Int,
    Bool,
    Select(&'static [(&'static str, &'static str)]),
    /// Comma-separated strings, stored as an array.
    List,
}

/// One setting on a page.
#[derive(Debug, Clone, Copy)]
pub struct FieldDef {
    pub key: &'static str,
    pub label: &'static str,
    pub help: &'static str,
    pub kind: FieldKind,
}

/// A settings page.
#[derive(Debug, Clone, Copy)]
pub struct PageDef {
    pub path: &'static str,
    pub title: &'static str,
    pub intro: &'static str,
    pub fields: &'static [FieldDef],
    /// A change here can cut the admin off: it applies with confirm-or-revert.
    pub risky: bool,
}

/// One setting (for the tables of pages and lists).
pub(crate) const fn f(
    key: &'static str,
    label: &'static str,
    help: &'static str,
    kind: FieldKind,
) -> FieldDef {
    FieldDef {
        key,
        label,
        help,
        kind,
    }
}

const WAN_MODES: &[(&str, &str)] = &[
    ("dhcp", "DHCP: the ISP leases the address"),
    ("static", "Static: the address below, from the ISP"),
];

const SECURITY_MODES: &[(&str, &str)] = &[
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

/// How a POP3 client protects the password (the catch-all's and the users' mailboxes).
pub(crate) const POP3_TLS: &[(&str, &str)] = &[
    ("implicit", "TLS from the start (port 995)"),
    ("starttls", "STLS on the plain port (110)"),
    ("none", "None (only inside a trusted network)"),
];

/// Every settings page.
pub const PAGES: &[PageDef] = &[
    PageDef {
        path: "/network",
        title: "Network Settings",
        intro: "The box's name and addresses on the Internet side (WAN) and the office side (LAN), and where it looks up Internet names.",
        risky: true,
        fields: &[
            f(
                "network.hostname",
                "Host name",
                "This box's own name, one word, e.g. officebox.",
                FieldKind::Text,
            ),
            f(
                "network.domain",
                "Domain",
                "Your company's domain, e.g. example.com.",
                FieldKind::Text,
            ),
            f(
                "network.wan.mode",
                "WAN address",
                "How the Internet side gets its address.",
                FieldKind::Select(WAN_MODES),
            ),
            f(
                "network.wan.address",
                "WAN address (static)",
                "Only for a static WAN address: the address your ISP gave you.",
                FieldKind::Text,
            ),
            f(
                "network.wan.netmask",
                "WAN netmask (static)",
                "Only for a static WAN address, e.g. 255.255.255.0.",
                FieldKind::Text,
            ),
            f(
                "network.wan.gateway",
                "WAN gateway (static)",
                "Only for a static WAN address: your ISP's router.",
                FieldKind::Text,
            ),
            f(
                "network.lan.address",
                "LAN address",
                "This box's address on the office network, e.g. 192.168.1.1.",
                FieldKind::Text,
            ),
            f(
                "network.lan.netmask",
                "LAN netmask",
                "The office network's size, e.g. 255.255.255.0.",
                FieldKind::Text,
            ),
            f(
                "dns.primary",
                "Primary DNS server",
                "Your ISP's DNS server, for Internet names.",
                FieldKind::Text,
            ),
            f(
                "dns.secondary",
                "Secondary DNS server",
                "Optional: a second one; leave it empty rather than guess.",
                FieldKind::Text,
            ),
            f(
                "dns.use_upstream",
                "Look up Internet names",
                "Off: the box answers only its own names (a stand-alone office).",
                FieldKind::Bool,
            ),
            f(
                "network.wan.interface",
                "WAN port (interface)",
                "The network port facing the ISP's modem, e.g. eth0.",
                FieldKind::Text,
            ),
            f(
                "network.wan.release_on_shutdown",
                "Give the WAN address back when stopping",
                "Only with DHCP from the ISP: release the lease when officebox stops.",
                FieldKind::Bool,
            ),
            f(
                "network.lan.interface",
                "LAN port (interface)",
                "The network port facing the office switch, e.g. eth1.",
                FieldKind::Text,
            ),
        ],
    },
    PageDef {
        path: "/security",
        title: "Security Settings",
        intro: "How the box connects the office to the Internet, and what it lets in.",
        risky: true,
        fields: &[
            f(
                "security.mode",
                "Security mode",
                "Each mode in one sentence; Firewall/NAT is right for most offices.",
                FieldKind::Select(SECURITY_MODES),
            ),
            f(
                "security.wan_services",
                "Services visible from the Internet",
                "In DMZ mode, comma-separated: dns, smtp, submission, smtps, pop3, pop3s, sip, www, ntp.",
                FieldKind::List,
            ),
        ],
    },
    PageDef {
        path: "/dhcp",
        title: "Servers - DHCP",
        intro: "Hands out addresses on the office network. Only one DHCP server per network!",
        risky: false,
        fields: &[
            f(
                "dhcp.enabled",
                "DHCP server on",
                "Turn it off if another device already does this.",
                FieldKind::Bool,
            ),
            f(
                "dhcp.range",
                "Address range",
                "First and last address to hand out, e.g. 192.168.1.100, 192.168.1.199. Empty: the default.",
                FieldKind::List,
            ),
            f(
                "dhcp.lease_time",
                "Lease time",
                "How long an address is lent, e.g. 1d or 12h.",
                FieldKind::Text,
            ),
            f(
                "dhcp.exclude",
                "Excluded addresses",
                "Addresses in the range used by fixed devices, comma-separated.",
                FieldKind::List,
            ),
            f(
                "dhcp.ping_check",
                "Ping before lending",
                "Check that nobody answers at an address before handing it out.",
                FieldKind::Bool,
            ),
        ],
    },
    PageDef {
        path: "/mail",
        title: "Mail",
        intro: "Mail waiting to go to other domains, and the office's shared mailbox at the ISP (the catch-all), fetched and sorted out to everybody.",
        risky: false,
        fields: &[
            f(
                "mail.max_message_size",
                "Largest message",
                "e.g. 25M.",
                FieldKind::Text,
            ),
            f(
                "mail.relay_from_wan",
                "Relay for the Internet",
                "Never turn this on unless you know why: it makes an open relay.",
                FieldKind::Bool,
            ),
            f(
                "mail.catch_all.server",
                "Catch-all: ISP's POP3 server",
                "e.g. pop.isp.example; empty: no catch-all.",
                FieldKind::Text,
            ),
            f(
                "mail.catch_all.port",
                "Catch-all: port",
                "Empty: 995 with TLS, 110 otherwise.",
                FieldKind::Int,
            ),
            f(
                "mail.catch_all.tls",
                "Catch-all: encryption",
                "How to protect the password on the way.",
                FieldKind::Select(POP3_TLS),
            ),
            f(
                "mail.catch_all.login",
                "Catch-all: login",
                "The shared mailbox's login at the ISP.",
                FieldKind::Text,
            ),
            f(
                "mail.catch_all.password",
                "Catch-all: password",
                "Kept in the config file (readable by root only): the ISP needs it in clear.",
                FieldKind::Text,
            ),
            f(
                "mail.catch_all.poll_interval",
                "Catch-all: poll every",
                "e.g. 5m.",
                FieldKind::Text,
            ),
            f(
                "mail.catch_all.keep_on_server",
                "Catch-all: keep mail at the ISP",
                "Off: fetched mail is deleted there once it is safe here.",
                FieldKind::Bool,
            ),
            f(
                "mail.catch_all.verify_certificate",
                "Catch-all: check the server's certificate",
                "Leave on: the password goes to that server.",
                FieldKind::Bool,
            ),
            f(
                "mail.catch_all.ca_file",
                "Catch-all: the ISP's own CA",
                "Only for an ISP whose certificate is signed by its own authority: the file on the box.",
                FieldKind::Text,
            ),
            f(
                "mail.enabled",
                "Mail server on",
                "SMTP, POP3 and the fetcher.",
                FieldKind::Bool,
            ),
            f(
                "mail.smtp_port",
                "SMTP port",
                "25: mail from other servers.",
                FieldKind::Int,
            ),
            f(
                "mail.submission_port",
                "Submission port",
                "587: mail from the office's mail programs.",
                FieldKind::Int,
            ),
            f(
                "mail.smtps_port",
                "SMTPS port",
                "465: submission over TLS.",
                FieldKind::Int,
            ),
            f("mail.pop3_port", "POP3 port", "110.", FieldKind::Int),
            f(
                "mail.pop3s_port",
                "POP3S port",
                "995: POP3 over TLS.",
                FieldKind::Int,
            ),
            f(
                "mail.resolvers",
                "DNS for other domains' mail servers",
                "Empty: this box's own DNS. Comma-separated addresses.",
                FieldKind::List,
            ),
            f(
                "mail.queue.first_retry",
                "First retry after",
                "When a server elsewhere does not take a message, e.g. 5m.",
                FieldKind::Text,
            ),
            f(
                "mail.queue.max_retry_interval",
                "Retry at least every",
                "The wait doubles up to this, e.g. 1h.",
                FieldKind::Text,
            ),
            f(
                "mail.queue.delay_notice_after",
                "Tell the sender of a delay after",
                "e.g. 4h.",
                FieldKind::Text,
            ),
            f(
                "mail.queue.give_up_after",
                "Give up and return the message after",
                "e.g. 5d.",
                FieldKind::Text,
            ),
        ],
    },
    PageDef {
        path: "/phones",
        title: "Phones",
        intro: "The registered phones, the calls in progress, and how voicemail answers.",
        risky: false,
        fields: &[
            f(
                "phone.enabled",
                "Phone system on",
                "The office's phones register here.",
                FieldKind::Bool,
            ),
            f(
                "phone.voicemail_extension",
                "Voicemail extension",
                "Dial it to hear your messages, e.g. *97.",
                FieldKind::Text,
            ),
            f(
                "phone.no_answer_timeout",
                "Voicemail after",
                "How long a phone rings before voicemail answers, e.g. 20s.",
                FieldKind::Text,
            ),
            f(
                "phone.max_message_length",
                "Longest message",
                "e.g. 3m.",
                FieldKind::Text,
            ),
            f(
                "phone.sip_port",
                "SIP port",
                "5060, where the phones register.",
                FieldKind::Int,
            ),
            f(
                "phone.rtp_ports",
                "Ports for voice",
                "A range for the calls' audio, e.g. 10000-10999 (two per call).",
                FieldKind::Text,
            ),
        ],
    },
    PageDef {
        path: "/dns",
        title: "DNS Server",
        intro: "Answers the office's questions about names: its own, the DHCP clients', and (when on) Internet names.",
        risky: false,
        fields: &[
            f(
                "dns.enabled",
                "DNS server on",
                "The office's name server.",
                FieldKind::Bool,
            ),
            f(
                "dns.ttl",
                "Time to live (seconds)",
                "How long others may remember the box's own answers.",
                FieldKind::Int,
            ),
            f(
                "dns.cache_size",
                "Cache size",
                "How many Internet answers to remember.",
                FieldKind::Int,
            ),
            f(
                "dns.port",
                "Port",
                "53 for a real office; another only for testing.",
                FieldKind::Int,
            ),
            f(
                "dns.secondaries",
                "Secondary name servers",
                "Servers allowed to copy the zone (AXFR) and told of changes, comma-separated, e.g. 192.0.2.53.",
                FieldKind::List,
            ),
        ],
    },
    PageDef {
        path: "/system",
        title: "Web and Time",
        intro: "These admin pages, the www and corp sites, and the office's time server.",
        risky: true,
        fields: &[
            f(
                "web.admin_port",
                "Admin pages port",
                "Where these pages answer (office only), e.g. 8080.",
                FieldKind::Int,
            ),
            f(
                "web.https",
                "Admin pages over HTTPS",
                "With the box's own certificate; your browser will ask you to trust it once.",
                FieldKind::Bool,
            ),
            f(
                "web.session_timeout",
                "Log out after",
                "Idle time before a login ends, e.g. 30m.",
                FieldKind::Text,
            ),
            f(
                "web.confirm_timeout",
                "Time to confirm a risky change",
                "e.g. 90s.",
                FieldKind::Text,
            ),
            f(
                "web.site_port",
                "www and corp sites port",
                "80 for a real office.",
                FieldKind::Int,
            ),
            f(
                "ntp.enabled",
                "Time server on",
                "The office's computers and phones set their clocks from the box.",
                FieldKind::Bool,
            ),
            f("ntp.port", "Time server port", "123.", FieldKind::Int),
        ],
    },
];

/// The page at `path`.
pub fn page(path: &str) -> Option<&'static PageDef> {
    PAGES.iter().find(|p| p.path == path)
}

fn table_for<'d>(doc: &'d DocumentMut, key: &'d str) -> Option<(&'d Table, &'d str)> {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop()?;
    let mut t = doc.as_table();
    for p in parts {
        t = t.get(p)?.as_table()?;
    }
    Some((t, last))
}

/// A setting's current value as the form shows it ("" when absent).
pub fn read(doc: &DocumentMut, field: &FieldDef) -> String {
    let Some((t, last)) = table_for(doc, field.key) else {
        return String::new();
    };
    let Some(v) = t.get(last).and_then(Item::as_value) else {
        return String::new();
    };
    display(v)
}

pub fn display(v: &Value) -> String {
    match v {
        Value::String(s) => s.value().clone(),
        Value::Integer(i) => i.value().to_string(),
        Value::Boolean(b) => b.value().to_string(),
        Value::Float(x) => x.value().to_string(),
        Value::Array(a) => a.iter().map(display).collect::<Vec<_>>().join(", "),
        other => other.to_string().trim().to_string(),
    }
}

/// What officebox uses for a setting the file leaves out (the loader's default, from the
/// running config): a switch shows its real state, a text field its default as a hint.
pub fn effective(config: &officebox_config::Config, key: &str) -> Option<String> {
    use officebox_config::values::format_duration;
    let b = |v: bool| Some(v.to_string());
    match key {
        "dns.enabled" => b(config.dns.enabled),
        "dns.use_upstream" => b(config.dns.use_upstream),
        "dns.ttl" => Some(config.dns.ttl.to_string()),
        "dns.cache_size" => Some(config.dns.cache_size.to_string()),
        "dhcp.enabled" => b(config.dhcp.enabled),
        "dhcp.ping_check" => b(config.dhcp.ping_check),
        "dhcp.lease_time" => Some(format_duration(config.dhcp.lease_time)),
        "dhcp.range" => {
            let pool = officebox_config::derive::dhcp_pool(&config.network.lan, &config.dhcp);
            Some(format!("{}, {}", pool.first, pool.last))
        }
        "mail.relay_from_wan" => b(config.mail.relay_from_wan),
        "mail.max_message_size" => Some(config.mail.max_message_size.to_string()),
        "mail.catch_all.keep_on_server" => b(config
            .mail
            .catch_all
            .as_ref()
            .is_some_and(|c| c.keep_on_server)),
        "phone.enabled" => b(config.phone.enabled),
        "phone.voicemail_extension" => Some(config.phone.voicemail_extension.clone()),
        "phone.no_answer_timeout" => Some(format_duration(config.phone.no_answer_timeout)),
        "phone.max_message_length" => Some(format_duration(config.phone.max_message_length)),
        "network.wan.interface" => config.network.wan.interface.clone(),
        "network.wan.release_on_shutdown" => b(matches!(
            config.network.wan.addressing,
            officebox_config::WanAddressing::Dhcp {
                release_on_shutdown: true
            }
        )),
        "network.lan.interface" => config.network.lan.interface.clone(),
        "dns.port" => Some(config.dns.port.to_string()),
        "mail.enabled" => b(config.mail.enabled),
        "mail.smtp_port" => Some(config.mail.smtp_port.to_string()),
        "mail.submission_port" => Some(config.mail.submission_port.to_string()),
        "mail.smtps_port" => Some(config.mail.smtps_port.to_string()),
        "mail.pop3_port" => Some(config.mail.pop3_port.to_string()),
        "mail.pop3s_port" => Some(config.mail.pop3s_port.to_string()),
        "mail.catch_all.verify_certificate" => b(config
            .mail
            .catch_all
            .as_ref()
            .is_none_or(|c| c.verify_certificate)),
        "mail.queue.first_retry" => Some(format_duration(config.mail.queue.first_retry)),
        "mail.queue.max_retry_interval" => {
            Some(format_duration(config.mail.queue.max_retry_interval))
        }
        "mail.queue.delay_notice_after" => {
            Some(format_duration(config.mail.queue.delay_notice_after))
        }
        "mail.queue.give_up_after" => Some(format_duration(config.mail.queue.give_up_after)),
        "phone.sip_port" => Some(config.phone.sip_port.to_string()),
        "phone.rtp_ports" => Some(format!(
            "{}-{}",
            config.phone.rtp_ports.0, config.phone.rtp_ports.1
        )),
        "web.admin_port" => Some(config.web.admin_port.to_string()),
        "web.site_port" => Some(config.web.site_port.to_string()),
        "web.https" => b(config.web.https),
        "web.session_timeout" => Some(format_duration(config.web.session_timeout)),
        "web.confirm_timeout" => Some(format_duration(config.web.confirm_timeout)),
        "ntp.enabled" => b(config.ntp.enabled),
        "ntp.port" => Some(config.ntp.port.to_string()),
        _ => None,
    }
}

/// Writes one submitted value into the document (keeping the comment after it).
pub fn write(doc: &mut DocumentMut, field: &FieldDef, submitted: &str) {
    let mut parts: Vec<&str> = field.key.split('.').collect();
    let Some(last) = parts.pop() else { return };
    let mut t = doc.as_table_mut();
    for p in parts {
        let item = t.entry(p).or_insert_with(|| {
            let mut nt = Table::new();
            nt.set_implicit(false);
            Item::Table(nt)
        });
        let Some(next) = item.as_table_mut() else {
            return;
        };
        t = next;
    }
    let submitted = submitted.trim();
    let new: Option<Value> = match field.kind {
        FieldKind::Text | FieldKind::Select(_) => {
            (!submitted.is_empty()).then(|| Value::from(submitted))
        }
        FieldKind::Int => (!submitted.is_empty()).then(|| match submitted.parse::<i64>() {
            Ok(n) => Value::from(n),
            Err(_) => Value::from(submitted),
        }),
        FieldKind::Bool => Some(Value::from(submitted == "true")),
        FieldKind::List => {
            let items: Vec<&str> = submitted
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            if items.is_empty() && field.key == "dhcp.range" {
                None
            } else {
                let mut a = Array::new();
                for i in items {
                    a.push(i);
                }
                Some(Value::Array(a))
            }
        }
    };
    match new {
        None => {
            t.remove(last);
        }
        Some(mut v) => {
            if let Some(old) = t.get(last).and_then(Item::as_value) {
                *v.decor_mut() = old.decor().clone();
            }
            t.insert(last, Item::Value(v));
        }
    }
}

/// Removes the tables the page's fields live in that were left empty (so an unused
/// catch-all, say, is not an empty `[mail.catch_all]` that validation refuses).
pub fn prune_empty_tables(doc: &mut DocumentMut, page: &PageDef) {
    fn table_at<'a>(t: &'a mut Table, path: &[&str]) -> Option<&'a mut Table> {
        match path.split_first() {
            None => Some(t),
            Some((first, rest)) => table_at(t.get_mut(first)?.as_table_mut()?, rest),
        }
    }
    for fd in page.fields {
        // `mail.catch_all.server`: the table `catch_all` in `mail`.
        let parts: Vec<&str> = fd.key.split('.').collect();
        let Some((_, table_path)) = parts.split_last() else {
            continue;
        };
        let Some((&name, parent)) = table_path.split_last() else {
            continue;
        };
        if parent.is_empty() {
            continue;
        }
        let prefix = format!("{}.", table_path.join("."));
        let Some(t) = table_at(doc.as_table_mut(), parent) else {
            continue;
        };
        let Some(table) = t.get(name).and_then(Item::as_table) else {
            continue;
        };
        // A table whose text settings are all left empty is not in use (a catch-all
        // without a server): its switches and choices alone would not make it valid.
        let text_keys: Vec<&str> = page
            .fields
            .iter()
            .filter(|f| matches!(f.kind, FieldKind::Text | FieldKind::Int))
            .filter_map(|f| f.key.strip_prefix(&prefix))
            .collect();
        let unused = !text_keys.is_empty() && text_keys.iter().all(|k| !table.contains_key(k));
        if table.is_empty() || unused {
            t.remove(name);
        }
    }
}

/// The errors of a validation that belong to `field` (its path, or an element of it).
pub fn errors_for<'a>(diags: &'a [Diagnostic], field: &FieldDef) -> Vec<&'a Diagnostic> {
    diags
        .iter()
        .filter(|d| {
            d.path == field.key
                || d.path.starts_with(&format!("{}[", field.key))
                || d.path.starts_with(&format!("{}.", field.key))
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const TEXT: &str = "[network]\nhostname = \"box\" # the name\n[dhcp]\nenabled = true\n";

    #[test]
    fn values_are_read_written_and_comments_kept() {
        let mut doc: DocumentMut = TEXT.parse().unwrap();
        let host = &page("/network").unwrap().fields[0];
        assert_eq!(read(&doc, host), "box");
        write(&mut doc, host, "office");
        let range = page("/dhcp")
            .unwrap()
            .fields
            .iter()
            .find(|f| f.key == "dhcp.range")
            .unwrap();
        write(&mut doc, range, "10.0.0.10, 10.0.0.20");
        let dns = page("/dns")
            .unwrap()
            .fields
            .iter()
            .find(|f| f.key == "dns.ttl")
            .unwrap();
        write(&mut doc, dns, "60");
        let text = doc.to_string();
        assert!(text.contains("hostname = \"office\" # the name"), "{text}");
        assert!(
            text.contains("range = [\"10.0.0.10\", \"10.0.0.20\"]"),
            "{text}"
        );
        assert!(text.contains("[dns]\nttl = 60"), "{text}");
        assert_eq!(read(&doc, range), "10.0.0.10, 10.0.0.20");
        // Emptying an optional setting removes it.
        write(&mut doc, range, "");
        assert!(!doc.to_string().contains("range"));
    }

    #[test]
    fn errors_are_matched_to_their_field() {
        let d = |path: &str| Diagnostic {
            file: "f".into(),
            line: 1,
            column: 1,
            path: path.into(),
            message: "m".into(),
            help: String::new(),
        };
        let diags = vec![
            d("dhcp.range[1]"),
            d("dhcp.range_size"),
            d("network.lan.address"),
        ];
        let range = page("/dhcp")
            .unwrap()
            .fields
            .iter()
            .find(|f| f.key == "dhcp.range")
            .unwrap();
        assert_eq!(errors_for(&diags, range).len(), 1);
    }
}
