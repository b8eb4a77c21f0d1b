//! The lists inside pages: port forwards, DHCP reservations, DNS records and each user's
//! external mailboxes. Each is an array of tables in the config file (`[[dhcp.reservations]]`
//! and the like); a row is added or removed by editing the file's text with toml_edit (the
//! rest of the file, comments included, stays as it was), and the result is validated as
//! a whole before it is saved, like every page. Errors in a new row land beside its fields.

use maud::{Markup, Render, html};
use officebox_config::Diagnostic;
use toml_edit::{ArrayOfTables, DocumentMut, InlineTable, Item, Table, Value};

use crate::html::{Field, Kind, csrf_field, field_errors, problem_items};
use officebox_config::schema;

use crate::settings::{FieldDef, FieldKind, entry};

/// One list: where it lives in the file and what a row holds.
#[derive(Debug, Clone, Copy)]
pub struct ListDef {
    /// Its name in URLs: `/list/{id}/add`, `/list/{id}/{n}/delete`.
    pub id: &'static str,
    /// The page it is shown on.
    pub page: &'static str,
    /// The array's dotted path (for a per-user list, the key inside the user's table).
    pub array: &'static str,
    /// A list that belongs to one user (`[[users.pop3]]`).
    pub per_user: bool,
    pub heading: &'static str,
    pub intro: &'static str,
    /// The row's settings, keyed relative to the row.
    pub fields: &'static [FieldDef],
    pub add_label: &'static str,
    /// A change can cut the admin off: confirm-or-revert.
    pub risky: bool,
}

/// Every list.
pub const LISTS: &[ListDef] = &[
    ListDef {
        id: "forwards",
        page: "/security",
        array: "security.forwards",
        per_user: false,
        heading: "Port forwards",
        intro: "Publish a device of the office on the Internet: what arrives at a port of the box's WAN address goes to that device. Only in the Firewall/NAT modes.",
        fields: &[
            entry(&schema::FORWARD_NAME),
            entry(&schema::FORWARD_PROTOCOL),
            entry(&schema::FORWARD_WAN_PORT),
            entry(&schema::FORWARD_HOST),
            entry(&schema::FORWARD_PORT),
        ],
        add_label: "Add forward",
        risky: true,
    },
    ListDef {
        id: "reservations",
        page: "/dhcp",
        array: "dhcp.reservations",
        per_user: false,
        heading: "Reservations",
        intro: "A device that always gets the same address (a printer, a camera). With a host name, the DNS server knows it by that name.",
        fields: &[
            entry(&schema::RESERVATION_MAC),
            entry(&schema::RESERVATION_ADDRESS),
            entry(&schema::RESERVATION_HOSTNAME),
        ],
        add_label: "Add reservation",
        risky: false,
    },
    ListDef {
        id: "records",
        page: "/dns",
        array: "dns.records",
        per_user: false,
        heading: "Static records",
        intro: "Extra names in your domain, beside the built-in ones and the DHCP clients'.",
        fields: &[
            entry(&schema::RECORD_NAME),
            entry(&schema::RECORD_TYPE),
            entry(&schema::RECORD_VALUE),
        ],
        add_label: "Add record",
        risky: false,
    },
    ListDef {
        id: "pop3",
        page: "/users",
        array: "pop3",
        per_user: true,
        heading: "External mailboxes",
        intro: "Mailboxes at the ISP or elsewhere whose mail is fetched into this user's mailbox.",
        fields: &[
            entry(&schema::POP3_SERVER),
            entry(&schema::POP3_ACCOUNT_TLS),
            entry(&schema::POP3_ACCOUNT_PORT),
            entry(&schema::POP3_LOGIN),
            entry(&schema::POP3_PASSWORD),
            entry(&schema::POP3_POLL_INTERVAL),
            entry(&schema::POP3_KEEP_ON_SERVER),
            entry(&schema::POP3_VERIFY_CERTIFICATE),
            entry(&schema::POP3_CA_FILE),
        ],
        add_label: "Add mailbox",
        risky: false,
    },
    ListDef {
        id: "trunks",
        page: "/routing",
        array: "phone.trunks",
        per_user: false,
        heading: "Trunks",
        intro: "The lines to your telephone providers. A registration trunk signs in with the account the provider gave you; an IP trunk is known to the provider by this box's address, and its calls come from the addresses listed. Their state is on the Phones page.",
        fields: &[
            entry(&schema::TRUNK_NAME),
            entry(&schema::TRUNK_KIND),
            entry(&schema::TRUNK_ENABLED),
            entry(&schema::TRUNK_SERVER),
            entry(&schema::TRUNK_USERNAME),
            entry(&schema::TRUNK_PASSWORD),
            entry(&schema::TRUNK_AUTH_USERNAME),
            entry(&schema::TRUNK_OUTBOUND_PROXY),
            entry(&schema::TRUNK_TRANSPORT),
            entry(&schema::TRUNK_EXPIRES),
            entry(&schema::TRUNK_ADDRESSES),
            entry(&schema::TRUNK_MAX_CALLS),
            entry(&schema::TRUNK_IDENTITY),
            entry(&schema::TRUNK_T38),
            entry(&schema::TRUNK_CA_FILE),
            entry(&schema::TRUNK_CODECS),
        ],
        add_label: "Add trunk",
        risky: false,
    },
    ListDef {
        id: "routes",
        page: "/routing",
        array: "phone.routes",
        per_user: false,
        heading: "Routes out",
        intro: "Each kind of outside number and the trunks it goes out on, tried in order. The first route whose pattern matches, and that the caller may use, takes the call.",
        fields: &[
            entry(&schema::ROUTE_NAME),
            entry(&schema::ROUTE_PATTERN),
            entry(&schema::ROUTE_TRUNKS),
            entry(&schema::ROUTE_STRIP),
            entry(&schema::ROUTE_PREPEND),
            entry(&schema::ROUTE_USERS),
            entry(&schema::ROUTE_CALLER_ID),
            entry(&schema::ROUTE_ALLOW_INTERNATIONAL),
            entry(&schema::ROUTE_ALLOW_PREMIUM),
        ],
        add_label: "Add route",
        risky: false,
    },
    ListDef {
        id: "inbound",
        page: "/routing",
        array: "phone.inbound",
        per_user: false,
        heading: "Numbers in",
        intro: "The numbers your provider sends calls to, and where each rings. Any other number rings the operator.",
        fields: &[
            entry(&schema::INBOUND_NUMBER),
            entry(&schema::INBOUND_DESTINATION),
        ],
        add_label: "Add number",
        risky: false,
    },
    ListDef {
        id: "devices",
        page: "/phones",
        array: "phone.devices",
        per_user: false,
        heading: "Desk phones",
        intro: "Assign a phone by its MAC address, plug it in, and it sets itself up (Yealink, Poly, Grandstream, Snom). It is given its own password, not the user's. To set a phone up again (say after a factory reset), remove it and add it again: its old password stops working.",
        fields: &[
            entry(&schema::DEVICE_MAC),
            entry(&schema::DEVICE_USER),
            entry(&schema::DEVICE_VENDOR),
            entry(&schema::DEVICE_KEYS),
        ],
        add_label: "Add phone",
        risky: false,
    },
    ListDef {
        id: "sites",
        page: "/sites",
        array: "vpn.sites",
        per_user: false,
        heading: "Other offices",
        intro: "Paste what the other office's Sites page shows as its pairing text. Its LAN, names and extensions are then reached through the tunnel; the WireGuard port is the only opening on the WAN.",
        fields: &[
            entry(&schema::VPN_SITE_NAME),
            entry(&schema::VPN_SITE_ENABLED),
            entry(&schema::VPN_SITE_PUBLIC_KEY),
            entry(&schema::VPN_SITE_ENDPOINT),
            entry(&schema::VPN_SITE_SUBNETS),
            entry(&schema::VPN_SITE_ADDRESS),
            entry(&schema::VPN_SITE_DOMAIN),
            entry(&schema::VPN_SITE_EXTENSIONS),
            entry(&schema::VPN_SITE_SIP_PORT),
            entry(&schema::VPN_SITE_FALLBACK),
        ],
        add_label: "Add site",
        risky: true,
    },
    ListDef {
        id: "remote_devices",
        page: "/sites",
        array: "vpn.peers",
        per_user: false,
        heading: "Devices working from elsewhere",
        intro: "A user's laptop or phone joins the office through the tunnel. The box makes its key; its configuration (text and QR code for the WireGuard app) is on its user's page. What it may reach is the box's firewall's to say, whatever the device is set to. Removing it cuts it off at once.",
        fields: &[
            entry(&schema::VPN_PEER_NAME),
            entry(&schema::VPN_PEER_USER),
            entry(&schema::VPN_PEER_ENABLED),
            entry(&schema::VPN_PEER_ADDRESS),
            entry(&schema::VPN_PEER_ACCESS),
            entry(&schema::VPN_PEER_HOSTS),
            entry(&schema::VPN_PEER_TUNNEL),
            entry(&schema::VPN_PEER_EXPIRES),
            entry(&schema::VPN_PEER_PUBLIC_KEY),
        ],
        add_label: "Add device",
        risky: false,
    },
    ListDef {
        id: "ring_groups",
        page: "/routing",
        array: "phone.ring_groups",
        per_user: false,
        heading: "Ring groups",
        intro: "Several phones behind one destination: all at once, or one after the other.",
        fields: &[
            entry(&schema::GROUP_NAME),
            entry(&schema::GROUP_STRATEGY),
            entry(&schema::GROUP_MEMBERS),
            entry(&schema::GROUP_RING_TIME),
            entry(&schema::GROUP_NO_ANSWER),
        ],
        add_label: "Add ring group",
        risky: false,
    },
    ListDef {
        id: "schedules",
        page: "/routing",
        array: "phone.schedules",
        per_user: false,
        heading: "Office hours",
        intro: "Where calls ring while the office is open, and while it is closed (nights, weekends, holidays).",
        fields: &[
            entry(&schema::SCHEDULE_NAME),
            entry(&schema::SCHEDULE_OPEN),
            entry(&schema::SCHEDULE_HOLIDAYS),
            entry(&schema::SCHEDULE_WHEN_OPEN),
            entry(&schema::SCHEDULE_WHEN_CLOSED),
        ],
        add_label: "Add schedule",
        risky: false,
    },
    ListDef {
        id: "attendants",
        page: "/routing",
        array: "phone.attendants",
        per_user: false,
        heading: "Auto attendants",
        intro: "A greeting, then a key for each destination; callers may also dial an extension.",
        fields: &[
            entry(&schema::ATTENDANT_NAME),
            entry(&schema::ATTENDANT_GREETING),
            entry(&schema::ATTENDANT_GREETING_FILE),
            entry(&schema::ATTENDANT_KEYS),
            entry(&schema::ATTENDANT_DIAL_BY_EXTENSION),
            entry(&schema::ATTENDANT_TIMEOUT),
            entry(&schema::ATTENDANT_NO_INPUT),
            entry(&schema::ATTENDANT_INVALID),
        ],
        add_label: "Add attendant",
        risky: false,
    },
];

/// The list called `id`.
pub fn list(id: &str) -> Option<&'static ListDef> {
    LISTS.iter().find(|l| l.id == id)
}

/// The lists shown on `page`.
pub fn on_page(page: &str) -> impl Iterator<Item = &'static ListDef> + '_ {
    LISTS.iter().filter(move |l| l.page == page)
}

/// A row of the file, whichever way it is written (`[[a.b]]` or `b = [{...}]`).
fn row_value(item: &Item, index: usize, key: &str) -> String {
    let v = if let Some(aot) = item.as_array_of_tables() {
        aot.get(index)
            .and_then(|t| t.get(key))
            .and_then(Item::as_value)
    } else {
        item.as_array()
            .and_then(|a| a.get(index))
            .and_then(Value::as_inline_table)
            .and_then(|t| t.get(key))
    };
    v.map(crate::settings::display).unwrap_or_default()
}

fn row_count(item: &Item) -> usize {
    item.as_array_of_tables()
        .map(ArrayOfTables::len)
        .or_else(|| item.as_array().map(toml_edit::Array::len))
        .unwrap_or(0)
}

/// The index of user `login` among `[[users]]`.
fn user_index(doc: &DocumentMut, login: &str) -> Option<usize> {
    doc.get("users")?
        .as_array_of_tables()?
        .iter()
        .position(|t| t.get("login").and_then(Item::as_str) == Some(login))
}

/// The list's path as validation names it (`dhcp.reservations`, `users[2].pop3`).
fn array_path(doc: &DocumentMut, def: &ListDef, owner: Option<&str>) -> Option<String> {
    if def.per_user {
        Some(format!("users[{}].{}", user_index(doc, owner?)?, def.array))
    } else {
        Some(def.array.to_string())
    }
}

/// The table that holds the list (created on the way when `create`).
fn parent_mut<'d>(
    doc: &'d mut DocumentMut,
    def: &ListDef,
    owner: Option<&str>,
) -> Option<(&'d mut Table, &'static str)> {
    if def.per_user {
        let i = user_index(doc, owner?)?;
        let users = doc.get_mut("users")?.as_array_of_tables_mut()?;
        return Some((users.get_mut(i)?, def.array));
    }
    let (parents, last) = def.array.rsplit_once('.')?;
    let mut t = doc.as_table_mut();
    for p in parents.split('.') {
        let item = t.entry(p).or_insert_with(|| {
            let mut nt = Table::new();
            nt.set_implicit(false);
            Item::Table(nt)
        });
        t = item.as_table_mut()?;
    }
    Some((t, last))
}

fn parent<'d>(
    doc: &'d DocumentMut,
    def: &ListDef,
    owner: Option<&str>,
) -> Option<&'d dyn toml_edit::TableLike> {
    if def.per_user {
        let i = user_index(doc, owner?)?;
        return doc
            .get("users")?
            .as_array_of_tables()?
            .get(i)
            .map(|t| t as _);
    }
    let (parents, _) = def.array.rsplit_once('.')?;
    let mut t: &dyn toml_edit::TableLike = doc.as_table();
    for p in parents.split('.') {
        t = t.get(p)?.as_table_like()?;
    }
    Some(t)
}

fn last_key(def: &ListDef) -> &'static str {
    def.array.rsplit_once('.').map_or(def.array, |(_, k)| k)
}

/// The rows as the form shows them: one value per field.
pub fn rows(doc: &DocumentMut, def: &ListDef, owner: Option<&str>) -> Vec<Vec<String>> {
    let Some(item) = parent(doc, def, owner).and_then(|t| t.get(last_key(def))) else {
        return Vec::new();
    };
    (0..row_count(item))
        .map(|i| {
            def.fields
                .iter()
                .map(|fd| {
                    let v = row_value(item, i, fd.key);
                    if v.is_empty() {
                        crate::settings::default_text(fd.default).unwrap_or_default()
                    } else {
                        v
                    }
                })
                .collect()
        })
        .collect()
}

/// A submitted value as TOML (None: left out, so its default applies).
fn to_value(kind: FieldKind, submitted: &str) -> Option<Value> {
    let s = submitted.trim();
    match kind {
        FieldKind::Bool => Some(Value::from(s == "true")),
        _ if s.is_empty() => None,
        FieldKind::Int => Some(
            s.parse::<i64>()
                .map_or_else(|_| Value::from(s), Value::from),
        ),
        FieldKind::List => {
            let mut a = toml_edit::Array::new();
            for i in s.split(',').map(str::trim).filter(|x| !x.is_empty()) {
                a.push(i);
            }
            Some(Value::Array(a))
        }
        FieldKind::Text | FieldKind::Select(_) => Some(Value::from(s)),
    }
}

/// Why a list change could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("the config file is not valid TOML")]
    NotToml,
    #[error("there is no user `{0}`")]
    NoUser(String),
    #[error("there is no entry {0} in this list (it may have been removed meanwhile)")]
    NoRow(usize),
    #[error("this list is written in a way the admin pages cannot change; edit the file")]
    Odd,
}

/// The config text with a row added from `pairs` (field keys as names), and the index the
/// new row has (for matching validation errors to its fields).
pub fn add(
    text: &str,
    def: &ListDef,
    owner: Option<&str>,
    pairs: &[(String, String)],
) -> Result<(String, usize), ListError> {
    let mut doc: DocumentMut = text.parse().map_err(|_| ListError::NotToml)?;
    let (table, key) = parent_mut(&mut doc, def, owner)
        .ok_or_else(|| ListError::NoUser(owner.unwrap_or_default().to_string()))?;
    let values: Vec<(&str, Value)> = def
        .fields
        .iter()
        .filter_map(|fd| {
            let v = crate::forms::value(pairs, fd.key).unwrap_or("");
            to_value(fd.kind, v).map(|v| (fd.key, v))
        })
        .collect();
    let item = table
        .entry(key)
        .or_insert_with(|| Item::ArrayOfTables(ArrayOfTables::new()));
    let index = if let Some(aot) = item.as_array_of_tables_mut() {
        let mut t = Table::new();
        for (k, v) in values {
            t.insert(k, Item::Value(v));
        }
        aot.push(t);
        aot.len() - 1
    } else if let Some(a) = item.as_array_mut() {
        let mut t = InlineTable::new();
        for (k, v) in values {
            t.insert(k, v);
        }
        a.push(Value::InlineTable(t));
        a.len() - 1
    } else {
        return Err(ListError::Odd);
    };
    Ok((doc.to_string(), index))
}

/// The config text without row `index`.
pub fn remove(
    text: &str,
    def: &ListDef,
    owner: Option<&str>,
    index: usize,
) -> Result<String, ListError> {
    let mut doc: DocumentMut = text.parse().map_err(|_| ListError::NotToml)?;
    let (table, key) = parent_mut(&mut doc, def, owner)
        .ok_or_else(|| ListError::NoUser(owner.unwrap_or_default().to_string()))?;
    let item = table.get_mut(key).ok_or(ListError::NoRow(index))?;
    let left = if let Some(aot) = item.as_array_of_tables_mut() {
        if index >= aot.len() {
            return Err(ListError::NoRow(index));
        }
        aot.remove(index);
        aot.len()
    } else if let Some(a) = item.as_array_mut() {
        if index >= a.len() {
            return Err(ListError::NoRow(index));
        }
        a.remove(index);
        a.len()
    } else {
        return Err(ListError::Odd);
    };
    if left == 0 {
        table.remove(key);
    }
    Ok(doc.to_string())
}

/// Where a list's forms post to.
pub fn action(def: &ListDef, owner: Option<&str>, rest: &str) -> String {
    match owner {
        Some(o) => format!("/users/{o}/{}/{rest}", def.id),
        None => format!("/list/{}/{rest}", def.id),
    }
}

/// A row that was refused: what was submitted, and the validation errors, which name the
/// row by `path` (`dhcp.reservations[2]`).
#[derive(Debug, Clone, Copy)]
pub struct Refused<'a> {
    pub pairs: &'a [(String, String)],
    pub diags: &'a [Diagnostic],
    pub path: &'a str,
}

/// A list as HTML: its rows with a Delete button each, then the form that adds one.
/// `failed`: the rejected row (its submitted values and validation errors, the errors
/// keyed as the config names them, under `new_path`).
pub fn render(
    doc: &DocumentMut,
    def: &ListDef,
    owner: Option<&str>,
    csrf: &str,
    failed: Option<Refused<'_>>,
) -> Markup {
    let rows = rows(doc, def, owner);
    // Problems the new row caused elsewhere (a port forwarded twice, say).
    let other: Vec<&Diagnostic> = failed
        .map(|f| {
            let mine = format!("{}.", f.path);
            f.diags
                .iter()
                .filter(|d| !d.path.starts_with(&mine))
                .collect()
        })
        .unwrap_or_default();
    html! {
        section id={ "list-" (def.id) } {
            h2 { (def.heading) }
            p { (def.intro) }
            @if rows.is_empty() {
                p { "None yet." }
            } @else {
                div.wide {
                    table {
                        tr {
                            @for fd in def.fields { th { (fd.label) } }
                            th {}
                        }
                        @for (i, row) in rows.iter().enumerate() {
                            tr {
                                @for (fd, v) in def.fields.iter().zip(row) {
                                    td { (if fd.key == "password" && !v.is_empty() { "(set)" } else { v }) }
                                }
                                td {
                                    form method="post" action=(action(def, owner, &format!("{i}/delete"))) {
                                        (csrf_field(csrf))
                                        button type="submit" { "Delete" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            form method="post" action=(action(def, owner, "add")) id={ "add-" (def.id) } novalidate {
                (csrf_field(csrf))
                @if !other.is_empty() {
                    div.error role="alert" { ul { (problem_items(other)) } }
                }
                @for fd in def.fields {
                    (field(def, fd, failed))
                }
                button type="submit" { (def.add_label) }
            }
        }
    }
}

/// The add form's field for `fd`: empty (or the list's default), or as it was submitted
/// with its errors.
fn field(def: &ListDef, fd: &FieldDef, failed: Option<Refused<'_>>) -> Markup {
    let name = format!("{}.{}", def.id, fd.key);
    let (value, error) = match failed {
        Some(Refused { pairs, diags, path }) => {
            let path = format!("{path}.{}", fd.key);
            let nested = format!("{path}[");
            let errors = field_errors(
                diags
                    .iter()
                    .filter(|d| d.path == path || d.path.starts_with(&nested)),
            );
            (
                crate::forms::value(pairs, fd.key).unwrap_or("").to_string(),
                errors,
            )
        }
        None => (
            crate::settings::default_text(fd.default).unwrap_or_default(),
            None,
        ),
    };
    let kind = match fd.kind {
        FieldKind::Bool => Kind::Check,
        FieldKind::Select(o) => Kind::Select(o),
        _ => Kind::Text,
    };
    Field {
        name: &name,
        label: fd.label,
        help: fd.help,
        value: &value,
        placeholder: "",
        error: error.as_deref(),
        kind,
    }
    .render()
}

/// The form's pairs with the list's prefix (`forwards.host`) taken off the names.
pub fn unprefixed(def: &ListDef, pairs: &[(String, String)]) -> Vec<(String, String)> {
    let prefix = format!("{}.", def.id);
    pairs
        .iter()
        .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|k| (k.to_string(), v.clone())))
        .collect()
}

/// The path validation gives row `index` of the list.
pub fn row_path(text: &str, def: &ListDef, owner: Option<&str>, index: usize) -> Option<String> {
    let doc: DocumentMut = text.parse().ok()?;
    Some(format!("{}[{index}]", array_path(&doc, def, owner)?))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    const TEXT: &str = "[security]\nmode = \"firewall-nat\" # the usual\n\n[dhcp]\nenabled = true\n\n\
        [[users]]\nlogin = \"admin\"\n\n[[users]]\nlogin = \"bob\"\n\n[[users.pop3]]\nserver = \"a\"\n\n\
        [[users]]\nlogin = \"carol\"\n";

    #[test]
    fn rows_are_added_and_removed_keeping_the_rest() {
        let fw = list("forwards").unwrap();
        let (text, i) = add(
            TEXT,
            fw,
            None,
            &pairs(&[("wan_port", "8022"), ("host", "192.168.1.20"), ("port", "")]),
        )
        .unwrap();
        assert_eq!(i, 0);
        assert!(
            text.contains("mode = \"firewall-nat\" # the usual"),
            "{text}"
        );
        assert!(
            text.contains("[[security.forwards]]\nwan_port = 8022\nhost = \"192.168.1.20\""),
            "{text}"
        );
        let doc: DocumentMut = text.parse().unwrap();
        assert_eq!(rows(&doc, fw, None)[0][2], "8022");
        assert_eq!(
            row_path(&text, fw, None, 0).unwrap(),
            "security.forwards[0]"
        );
        let back = remove(&text, fw, None, 0).unwrap();
        assert!(!back.contains("forwards"), "{back}");
        assert!(matches!(
            remove(&back, fw, None, 0),
            Err(ListError::NoRow(0))
        ));
    }

    #[test]
    fn a_users_mailbox_goes_to_that_user() {
        let pop = list("pop3").unwrap();
        let (text, i) = add(
            TEXT,
            pop,
            Some("carol"),
            &pairs(&[("server", "pop.isp.example"), ("keep_on_server", "true")]),
        )
        .unwrap();
        assert_eq!(i, 0);
        let doc: DocumentMut = text.parse().unwrap();
        let users = doc["users"].as_array_of_tables().unwrap();
        assert_eq!(
            users.get(2).unwrap()["pop3"]
                .as_array_of_tables()
                .unwrap()
                .get(0)
                .unwrap()["server"]
                .as_str(),
            Some("pop.isp.example")
        );
        assert_eq!(rows(&doc, pop, Some("bob"))[0][0], "a");
        assert_eq!(
            row_path(&text, pop, Some("carol"), 0).unwrap(),
            "users[2].pop3[0]"
        );
        assert!(add(TEXT, pop, Some("nobody"), &[]).is_err());
    }

    #[test]
    fn inline_arrays_are_kept_inline() {
        let text =
            "[dhcp]\nreservations = [{ mac = \"52:54:00:00:00:01\", address = \"10.0.0.5\" }]\n";
        let res = list("reservations").unwrap();
        let (t, i) = add(
            text,
            res,
            None,
            &pairs(&[("mac", "52:54:00:00:00:02"), ("address", "10.0.0.6")]),
        )
        .unwrap();
        assert_eq!(i, 1);
        assert!(t.contains("address = \"10.0.0.6\" }]"), "{t}");
        let t = remove(&t, res, None, 0).unwrap();
        assert!(!t.contains("10.0.0.5") && t.contains("10.0.0.6"), "{t}");
    }
}
