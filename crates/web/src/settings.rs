//! Settings pages as data: each page lists the config settings it edits (by their dotted
//! path in the file), and the same code reads them out of the file, writes a submitted
//! form back into it (with toml_edit, so comments and layout stay), and validates the
//! result with the config crate, whose errors carry the same paths: each error lands
//! beside its field.

use officebox_config::Diagnostic;
use officebox_config::schema::{self, Kind, Setting};
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
    /// What applies when the file leaves it out.
    pub default: schema::Default,
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

/// A page's field for a setting: key, label, help and kind all from the config schema.
pub(crate) const fn field(setting: &'static Setting) -> FieldDef {
    FieldDef {
        key: setting.path,
        label: setting.label,
        help: setting.help,
        kind: kind_of(setting.kind),
        default: setting.default,
    }
}

/// The same, under another label where a page shows it among look-alikes ("Catch-all:
/// port" beside the mail server's own ports).
pub(crate) const fn field_labelled(setting: &'static Setting, label: &'static str) -> FieldDef {
    FieldDef {
        label,
        ..field(setting)
    }
}

/// A list row's field (keyed inside the row).
pub(crate) const fn entry(setting: &'static Setting) -> FieldDef {
    FieldDef {
        key: setting.key(),
        ..field(setting)
    }
}

/// How the page edits a kind of setting: durations and sizes are text the loader checks.
const fn kind_of(kind: Kind) -> FieldKind {
    match kind {
        Kind::Text | Kind::Duration { .. } | Kind::Size => FieldKind::Text,
        Kind::Int { .. } => FieldKind::Int,
        Kind::Bool => FieldKind::Bool,
        Kind::Select(choices) => FieldKind::Select(choices),
        Kind::List => FieldKind::List,
    }
}

/// Every settings page.
pub const PAGES: &[PageDef] = &[
    PageDef {
        path: "/network",
        title: "Network Settings",
        intro: "The box's name and addresses on the Internet side (WAN) and the office side (LAN), and where it looks up Internet names.",
        risky: true,
        fields: &[
            field(&schema::HOSTNAME),
            field(&schema::DOMAIN),
            field(&schema::WAN_MODE),
            field(&schema::WAN_ADDRESS),
            field(&schema::WAN_NETMASK),
            field(&schema::WAN_GATEWAY),
            field(&schema::LAN_ADDRESS),
            field(&schema::LAN_NETMASK),
            field(&schema::DNS_PRIMARY),
            field(&schema::DNS_SECONDARY),
            field(&schema::DNS_USE_UPSTREAM),
            field(&schema::WAN_INTERFACE),
            field(&schema::WAN_RELEASE),
            field(&schema::LAN_INTERFACE),
        ],
    },
    PageDef {
        path: "/security",
        title: "Security Settings",
        intro: "How the box connects the office to the Internet, and what it lets in.",
        risky: true,
        fields: &[field(&schema::SECURITY_MODE), field(&schema::WAN_SERVICES)],
    },
    PageDef {
        path: "/dhcp",
        title: "Servers - DHCP",
        intro: "Hands out addresses on the office network. Only one DHCP server per network!",
        risky: false,
        fields: &[
            field(&schema::DHCP_ENABLED),
            field(&schema::DHCP_RANGE),
            field(&schema::DHCP_LEASE_TIME),
            field(&schema::DHCP_EXCLUDE),
            field(&schema::DHCP_PING_CHECK),
        ],
    },
    PageDef {
        path: "/mail",
        title: "Mail",
        intro: "Mail waiting to go to other domains, and the office's shared mailbox at the ISP (the catch-all), fetched and sorted out to everybody.",
        risky: false,
        fields: &[
            field(&schema::MAX_MESSAGE_SIZE),
            field(&schema::RELAY_FROM_WAN),
            field(&schema::DMARC_POLICY),
            field(&schema::JUNK_FAILED_CHECKS),
            field(&schema::GREYLISTING),
            field(&schema::GREYLIST_DELAY),
            field_labelled(&schema::POP3_SERVER, "Catch-all: ISP's POP3 server"),
            field_labelled(&schema::POP3_ACCOUNT_PORT, "Catch-all: port"),
            field_labelled(&schema::POP3_ACCOUNT_TLS, "Catch-all: encryption"),
            field_labelled(&schema::POP3_LOGIN, "Catch-all: login"),
            field_labelled(&schema::POP3_PASSWORD, "Catch-all: password"),
            field_labelled(&schema::POP3_POLL_INTERVAL, "Catch-all: poll every"),
            field_labelled(
                &schema::POP3_KEEP_ON_SERVER,
                "Catch-all: keep mail at the ISP",
            ),
            field_labelled(
                &schema::POP3_VERIFY_CERTIFICATE,
                "Catch-all: check the server's certificate",
            ),
            field_labelled(&schema::POP3_CA_FILE, "Catch-all: the ISP's own CA"),
            field(&schema::MAIL_ENABLED),
            field(&schema::SMTP_PORT),
            field(&schema::SUBMISSION_PORT),
            field(&schema::SMTPS_PORT),
            field(&schema::POP3_PORT),
            field(&schema::POP3S_PORT),
            field(&schema::IMAP_PORT),
            field(&schema::IMAPS_PORT),
            field(&schema::MAIL_RESOLVERS),
            field(&schema::FIRST_RETRY),
            field(&schema::MAX_RETRY_INTERVAL),
            field(&schema::DELAY_NOTICE_AFTER),
            field(&schema::GIVE_UP_AFTER),
        ],
    },
    PageDef {
        path: "/phones",
        title: "Phones",
        intro: "The registered phones, the calls in progress, and how voicemail answers.",
        risky: false,
        fields: &[
            field(&schema::PHONE_ENABLED),
            field(&schema::VOICEMAIL_EXTENSION),
            field(&schema::NIGHT_CODE),
            field(&schema::RECORD_CODE),
            field(&schema::PARK_EXTENSION),
            field(&schema::CONFERENCE_EXTENSION),
            field(&schema::CONFERENCE_PIN),
            field(&schema::CONFERENCE_SIZE),
            field(&schema::NO_ANSWER_TIMEOUT),
            field(&schema::MAX_MESSAGE_LENGTH),
            field(&schema::FAX_ATTEMPTS),
            field(&schema::FAX_RETRY_AFTER),
            field(&schema::SIP_PORT),
            field(&schema::RTP_PORTS),
            field(&schema::CALL_LOG_DAYS),
            field(&schema::PROVISIONING),
            field(&schema::PROVISIONING_PORT),
            field(&schema::PROVISIONING_TLS_PORT),
        ],
    },
    PageDef {
        path: "/routing",
        title: "Phone Routing",
        intro: "How calls leave and reach the office: routes out by the number dialed, the provider's numbers in, ring groups, office hours and the auto attendant. An extension always wins over a route.",
        risky: false,
        fields: &[
            field(&schema::OPERATOR),
            field(&schema::MUSIC_ON_HOLD),
            field(&schema::TIMEZONE),
            field(&schema::EMERGENCY_NUMBERS),
            field(&schema::INTERNATIONAL_PREFIXES),
            field(&schema::PREMIUM_PREFIXES),
        ],
    },
    PageDef {
        path: "/sites",
        title: "Sites",
        intro: "The company's other offices, each with its own officebox, joined by encrypted tunnels (WireGuard) over the Internet: their PCs, names and phones as if down the hall. And the staff's own devices working from home. Give the other office's admin this office's pairing text; put theirs in the list below.",
        risky: true,
        fields: &[
            field(&schema::VPN_ENABLED),
            field(&schema::VPN_LISTEN_PORT),
            field(&schema::VPN_ADDRESS),
        ],
    },
    PageDef {
        path: "/dns",
        title: "DNS Server",
        intro: "Answers the office's questions about names: its own, the DHCP clients', and (when on) Internet names.",
        risky: false,
        fields: &[
            field(&schema::DNS_ENABLED),
            field(&schema::DNS_TTL),
            field(&schema::DNS_CACHE_SIZE),
            field(&schema::DNS_PORT),
            field(&schema::DNS_SECONDARIES),
        ],
    },
    PageDef {
        path: "/system",
        title: "Web and Time",
        intro: "These admin pages, the www and corp sites, and the office's time server.",
        risky: true,
        fields: &[
            field(&schema::ADMIN_PORT),
            field(&schema::HTTPS),
            field(&schema::SESSION_TIMEOUT),
            field(&schema::CONFIRM_TIMEOUT),
            field(&schema::SITE_PORT),
            field(&schema::NTP_ENABLED),
            field(&schema::NTP_PORT),
        ],
    },
    PageDef {
        path: "/backup",
        title: "Backup",
        intro: "One archive of the whole box (settings, mail, voicemail, keys), every night to a folder, and here to download at any time. `officebox restore` brings it back.",
        risky: false,
        fields: &[
            field(&schema::BACKUP_ENABLED),
            field(&schema::BACKUP_PATH),
            field(&schema::BACKUP_AT),
            field(&schema::BACKUP_KEEP),
            field(&schema::BACKUP_PASSPHRASE),
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

/// What officebox uses for a setting the file leaves out: the schema's default, or for
/// the DHCP range, the pool derived from the LAN. A switch shows its real state, a text
/// field its default as a hint.
pub fn effective(config: &officebox_config::Config, field: &FieldDef) -> Option<String> {
    if field.key == schema::DHCP_RANGE.path {
        let pool = officebox_config::derive::dhcp_pool(&config.network.lan, &config.dhcp);
        return Some(format!("{}, {}", pool.first, pool.last));
    }
    default_text(field.default)
}

/// A default as a page shows it.
pub(crate) fn default_text(default: schema::Default) -> Option<String> {
    use officebox_config::values::{format_duration, format_size};
    Some(match default {
        schema::Default::None => return None,
        schema::Default::Bool(b) => b.to_string(),
        schema::Default::Int(n) => n.to_string(),
        schema::Default::Secs(s) => format_duration(std::time::Duration::from_secs(s)),
        schema::Default::Bytes(b) => format_size(b),
        schema::Default::Text(t) => t.to_string(),
        schema::Default::List(l) => l.join(", "),
    })
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
    fn every_field_is_a_setting_of_the_schema_with_its_words_and_default() {
        for page in PAGES {
            for fd in page.fields {
                let Some(setting) = schema::get(fd.key) else {
                    panic!("{} on {} is not in the schema", fd.key, page.path)
                };
                assert_eq!((fd.help, fd.default), (setting.help, setting.default));
            }
        }
        let lease = PAGES
            .iter()
            .flat_map(|p| p.fields)
            .find(|f| f.key == "dhcp.lease_time");
        assert_eq!(
            lease.and_then(|f| default_text(f.default)).as_deref(),
            Some("1d")
        );
    }

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
