//! From TOML text to a validated [`Config`], with every problem reported at once.
//!
//! Reading happens in two passes over the same spanned document: the structural pass reads
//! each section (types, unknown keys, per-value checks) and keeps each value's position;
//! the cross-checks then compare settings with each other (a DHCP range against the LAN
//! subnet, extensions across users, alias loops) and point at the setting that is wrong.
//! A cross-check runs only when the values it compares were themselves valid, so one
//! mistake is reported once, where it is.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::derive::{BUILTIN_NAMES, default_dhcp_range, service_enabled};
use crate::diag::{Diagnostics, Sink};
use crate::model::*;
use crate::read::{Section, Spanned, parse_spanned};
use crate::schema::{self, Setting};
use crate::values::*;

/// Why a config file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Diagnostics),
}

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<Config, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&path.display().to_string(), &text).map_err(LoadError::Invalid)
}

/// Validates config text; `file` names it in diagnostics.
pub fn parse(file: &str, text: &str) -> Result<Config, Diagnostics> {
    let mut sink = Sink::new(file, text);
    let doc = match toml_edit::Document::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let message = e.message().trim().replace('\n', "; ");
            sink.error(
                &span,
                "",
                format!("this is not valid TOML: {message}"),
                "see https://toml.io for the syntax",
            );
            return Err(sink.finish());
        }
    };
    let config = Loader {
        sink: &mut sink,
        saw_admin: false,
        ports: Vec::new(),
    }
    .config(Section::root(doc.as_table()));
    if sink.is_empty() {
        Ok(config)
    } else {
        Err(sink.finish())
    }
}

const IPV4_HELP: &str = "write four numbers from 0 to 255 separated by dots, e.g. \"192.168.1.1\"";
/// Help for DNS server addresses.
const IP_HELP: &str =
    "write an IP address, optionally with a port, e.g. \"192.0.2.53\" or \"192.0.2.53:5353\"";
const DURATION_HELP: &str =
    "write a number and a unit (s, m, h, d), e.g. \"30s\", \"5m\", \"12h\", \"1d\"";

struct Loader<'s, 'a> {
    sink: &'s mut Sink<'a>,
    /// Some `[[users]]` entry says admin = true (even one with other problems).
    saw_admin: bool,
    /// Every service port, where it was set.
    ports: Vec<PortSetting>,
}

/// Reads an optional value with a default.
macro_rules! or {
    ($e:expr, $default:expr) => {
        $e.map(|s| s.value).unwrap_or($default)
    };
}

// Each table of the file is read in its own module (after the macro above, which they use).
mod devices;
mod dhcp;
mod dialplan;
mod dns;
mod mail;
mod network;
mod ports;
mod security;
mod services;
mod trunks;
mod users;
mod vpn;

pub use dns::reverse_zone;
use network::placeholder_network;
pub use users::parse_login;

impl Loader<'_, '_> {
    /// A duration setting, or its default; shorter than its minimum is an error.
    fn duration(&mut self, sec: &mut Section, setting: &Setting) -> Duration {
        let (key, min) = (setting.key(), setting.min_duration());
        let Some(d) = sec.parsed(self.sink, key, DURATION_HELP, parse_duration) else {
            return setting.duration();
        };
        if d.value < min {
            self.sink.error(
                &d.span,
                sec.path_of(key),
                format!("{} is too short", format_duration(d.value)),
                format!("use at least {}", format_duration(min)),
            );
        }
        d.value
    }

    fn ipv4(&mut self, sec: &mut Section, key: &'static str) -> Option<Spanned<Ipv4Addr>> {
        sec.parsed(self.sink, key, IPV4_HELP, parse_ipv4)
    }

    fn config(&mut self, mut root: Section) -> Config {
        let data_dir = or!(
            root.string(self.sink, schema::DATA_DIR.key()),
            schema::DATA_DIR.text().into()
        );

        let network = match root.table(self.sink, "network") {
            Some(sec) => self.network(sec),
            None => {
                root.missing(
                    self.sink,
                    "network",
                    "add a [network] section with at least domain = \"example.com\"",
                );
                None
            }
        };
        let lan = network.as_ref().and_then(|n| n.lan_net);
        let sec_security = root.table(self.sink, "security");
        let security = self.security(sec_security, lan);
        let sec_dns = root.table(self.sink, "dns");
        let dns = self.dns(sec_dns, network.as_ref());
        let sec_dhcp = root.table(self.sink, "dhcp");
        let dhcp = self.dhcp(sec_dhcp, lan);
        let users_secs = root.tables(self.sink, "users");
        let users = self.users(users_secs);
        let sec_mail = root.table(self.sink, "mail");
        let mail = self.mail(sec_mail, network.as_ref(), &users);
        let sec_phone = root.table(self.sink, "phone");
        let phone = self.phone(sec_phone, &users);
        let sec_web = root.table(self.sink, "web");
        let web = self.web(sec_web);
        let sec_ntp = root.table(self.sink, "ntp");
        let ntp = self.ntp(sec_ntp);
        let sec_backup = root.table(self.sink, "backup");
        let backup = self.backup(sec_backup);
        let sec_vpn = root.table(self.sink, "vpn");
        let own_domain = network.as_ref().map(|n| n.value.domain.clone());
        let wan_net = network.as_ref().and_then(|n| match n.value.wan.addressing {
            WanAddressing::Static { net, .. } => Some(net),
            WanAddressing::Dhcp { .. } => None,
        });
        let (vpn, vpn_port) = self.vpn(
            sec_vpn,
            (lan, wan_net),
            &users,
            own_domain.as_deref(),
            &phone.dial_plan,
        );
        root.finish(self.sink);

        if web.enabled && !self.saw_admin {
            self.sink.error(
                &(0..0),
                "users",
                "no user has admin = true, so nobody could log in to the admin pages",
                "mark one [[users]] entry with admin = true (officebox init creates one)",
            );
        }
        self.ports.push(PortSetting {
            service: Service::Dhcp,
            port: 67,
            span: 0..0,
            path: "dhcp".into(),
        });
        self.check_forwards(&security.forwards, &security.wan_services);

        let mut network = network.map(|n| n.value).unwrap_or_else(placeholder_network);
        if vpn.enabled && !vpn.peers.is_empty() {
            network.tunnel = Some(vpn.address);
        }
        let config = Config {
            data_dir: PathBuf::from(data_dir),
            network,
            security: Security {
                mode: security.mode,
                forwards: security.forwards.into_iter().map(|f| f.value).collect(),
                wan_services: security.wan_services.into_iter().map(|s| s.value).collect(),
            },
            dns: dns.value,
            dhcp: dhcp.value,
            mail,
            users: users.into_iter().map(|u| u.value).collect(),
            phone,
            web,
            ntp,
            backup,
            vpn,
        };
        self.check_ports(|s| service_enabled(&config, s));
        self.check_vpn_port(&config, vpn_port);
        config
    }
}

// ------------------------------------------------------------------------- helpers

struct NetworkRead {
    value: Network,
    /// The LAN subnet, when it was valid (cross-checks against it only then).
    lan_net: Option<Ipv4Net>,
}

struct WanRead {
    value: Wan,
    static_net: Option<(Ipv4Net, Range<usize>)>,
}

struct SecurityRead {
    mode: SecurityMode,
    forwards: Vec<Spanned<Forward>>,
    wan_services: Vec<Spanned<Service>>,
}

/// Where a service's port was set.
#[derive(Debug, Clone)]
struct PortSetting {
    service: Service,
    port: u16,
    span: Range<usize>,
    path: String,
}

#[cfg(test)]
mod tests;
