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

        let network = network.map(|n| n.value).unwrap_or_else(placeholder_network);
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
        };
        self.check_ports(|s| service_enabled(&config, s));
        config
    }

    // ---------------------------------------------------------------- [network]

    fn network(&mut self, mut sec: Section) -> Option<NetworkRead> {
        let hostname = sec
            .parsed(
                self.sink,
                "hostname",
                "one label of letters, digits and hyphens, e.g. \"officebox\"",
                parse_label,
            )
            .map(|s| s.value)
            .unwrap_or_else(|| schema::HOSTNAME.text().into());
        let domain = sec.parsed(
            self.sink,
            "domain",
            "a domain like \"example.com\"",
            parse_domain,
        );
        if domain.is_none() && !sec.has("domain") {
            sec.missing(
                self.sink,
                "domain",
                "set the company's domain, e.g. domain = \"example.com\"",
            );
        }
        // Absent: the appliance manages its interfaces. Invalid: reported, and treated as
        // off so no check piles onto it.
        let manage = sec
            .bool(self.sink, schema::MANAGE.key())
            .unwrap_or(!sec.has("manage") && schema::MANAGE.bool());
        let listen = sec
            .parsed_list(
                self.sink,
                "listen",
                "write an IP address, e.g. \"127.0.0.1\"",
                parse_ip,
            )
            .unwrap_or_default();

        let wan_sec = sec.table(self.sink, "wan");
        let lan_sec = sec.table(self.sink, "lan");
        let manage_span = sec.key_span("manage");
        sec.finish(self.sink);

        let (lan, lan_net) = self.lan(lan_sec);
        let wan = self.wan(wan_sec, manage);

        // The two sides of a router must be different networks.
        if let (Some(lan_net), Some((wan_net, span))) = (lan_net, &wan.static_net)
            && lan_net.overlaps(*wan_net)
        {
            self.sink.error(
                    span,
                    "network.wan.address",
                    format!("the WAN subnet {wan_net} overlaps the LAN subnet {lan_net}"),
                    "the LAN and WAN must be different networks; change the LAN address (e.g. 192.168.1.1) or check the ISP's settings",
                );
        }
        if manage && lan.interface.is_none() {
            self.sink.error(
                &manage_span,
                "network.lan.interface",
                "manage = true but the LAN interface is not named",
                "set interface = \"eth1\" (the port facing the office) in [network.lan], or manage = false",
            );
        }

        Some(NetworkRead {
            lan_net,
            value: Network {
                hostname,
                domain: domain.map(|d| d.value).unwrap_or_default(),
                manage,
                listen: listen.into_iter().map(|s| s.value).collect(),
                wan: wan.value,
                lan,
            },
        })
    }

    fn lan(&mut self, sec: Option<Section>) -> (Lan, Option<Ipv4Net>) {
        let default_net = Ipv4Net {
            address: Ipv4Addr::new(192, 168, 1, 1),
            prefix: 24,
        };
        let Some(mut sec) = sec else {
            return (
                Lan {
                    interface: None,
                    net: default_net,
                    gateway: None,
                },
                Some(default_net),
            );
        };
        let interface = sec.string(self.sink, "interface").map(|s| s.value);
        let address = self.ipv4(&mut sec, "address");
        let prefix = sec.parsed(
            self.sink,
            "netmask",
            "e.g. \"255.255.255.0\"",
            parse_netmask,
        );
        let gateway = self.ipv4(&mut sec, "gateway");
        let address_ok = address.is_some() || !sec.has("address");
        let prefix_ok = prefix.is_some() || !sec.has("netmask");
        let net = Ipv4Net {
            address: or!(address.clone(), default_net.address),
            prefix: or!(prefix, 24),
        };
        let mut valid = address_ok && prefix_ok;
        if let Some(a) = &address
            && valid
            && !net.is_host(a.value)
        {
            self.sink.error(
                &a.span,
                sec.path_of("address"),
                format!("{} is the network or broadcast address of {net}", a.value),
                format!(
                    "use a host address of {net}, e.g. \"{}\"",
                    net.host_range().0
                ),
            );
            valid = false;
        }
        if let Some(g) = &gateway
            && valid
            && (!net.is_host(g.value) || g.value == net.address)
        {
            self.sink.error(
                    &g.span,
                    sec.path_of("gateway"),
                    format!("the gateway {} is not another host of the LAN subnet {net}", g.value),
                    "the LAN gateway (used in lan-only mode) must be a router on the LAN, not officebox itself",
                );
        }
        sec.finish(self.sink);
        (
            Lan {
                interface,
                net,
                gateway: gateway.map(|g| g.value),
            },
            valid.then_some(net),
        )
    }

    fn wan(&mut self, sec: Option<Section>, manage: bool) -> WanRead {
        let dhcp = WanRead {
            value: Wan {
                interface: None,
                addressing: WanAddressing::Dhcp {
                    release_on_shutdown: schema::WAN_RELEASE.bool(),
                },
            },
            static_net: None,
        };
        let Some(mut sec) = sec else {
            return dhcp;
        };
        let interface = sec.string(self.sink, "interface").map(|s| s.value);
        let mode = sec.string(self.sink, "mode");
        let address = self.ipv4(&mut sec, "address");
        let prefix = sec.parsed(
            self.sink,
            "netmask",
            "e.g. \"255.255.255.0\"",
            parse_netmask,
        );
        let gateway = self.ipv4(&mut sec, "gateway");
        let release = sec.flag(self.sink, &schema::WAN_RELEASE);
        let path = sec.path.clone();
        let mut out = WanRead {
            value: Wan {
                interface: interface.clone(),
                addressing: WanAddressing::Dhcp {
                    release_on_shutdown: release,
                },
            },
            static_net: None,
        };
        match mode.as_ref().map(|m| m.value.as_str()) {
            Some("dhcp") => {
                for key in ["address", "netmask", "gateway"] {
                    if sec.has(key) {
                        self.sink.error(
                            &sec.key_span(key),
                            sec.path_of(key),
                            "has no effect when mode = \"dhcp\" (the ISP's DHCP server assigns it)",
                            "remove it, or set mode = \"static\"",
                        );
                    }
                }
            }
            Some("static") => {
                for (key, present) in [
                    ("address", address.is_some()),
                    ("netmask", prefix.is_some()),
                    ("gateway", gateway.is_some()),
                ] {
                    if !present && !sec.has(key) {
                        sec.missing(self.sink, key, "with mode = \"static\", enter the address, netmask and gateway the ISP gave you");
                    }
                }
                if let (Some(a), Some(p), Some(g)) = (&address, &prefix, &gateway) {
                    let net = Ipv4Net {
                        address: a.value,
                        prefix: p.value,
                    };
                    if !net.is_host(a.value) {
                        self.sink.error(
                            &a.span,
                            format!("{path}.address"),
                            format!("{} is the network or broadcast address of {net}", a.value),
                            "enter the address the ISP assigned to you",
                        );
                    } else if !net.is_host(g.value) || g.value == a.value {
                        self.sink.error(
                            &g.span,
                            format!("{path}.gateway"),
                            format!("the gateway {} is outside the WAN subnet {net}", g.value),
                            format!(
                                "the ISP's gateway must be another host of {net} (between {} and {}); check the netmask",
                                net.host_range().0,
                                net.host_range().1
                            ),
                        );
                    } else {
                        out.static_net = Some((net, a.span.clone()));
                        out.value.addressing = WanAddressing::Static {
                            net,
                            gateway: g.value,
                        };
                    }
                }
            }
            Some(other) => self.sink.error(
                &mode.as_ref().map(|m| m.span.clone()).unwrap_or_default(),
                format!("{path}.mode"),
                format!("unknown WAN mode `{other}`"),
                "use \"static\" (address from the ISP, entered here) or \"dhcp\" (leased from the ISP)",
            ),
            None => {
                if !sec.has("mode") {
                    sec.missing(self.sink, "mode", "set mode = \"dhcp\" or mode = \"static\"");
                }
            }
        }
        if manage && interface.is_none() {
            sec.missing(
                self.sink,
                "interface",
                "with manage = true, name the port facing the ISP, e.g. interface = \"eth0\"",
            );
        }
        sec.finish(self.sink);
        out
    }

    // ---------------------------------------------------------------- [security]

    fn security(&mut self, sec: Option<Section>, lan: Option<Ipv4Net>) -> SecurityRead {
        let mut out = SecurityRead {
            mode: SecurityMode::FirewallNat,
            forwards: Vec::new(),
            wan_services: vec![
                Spanned {
                    value: Service::Smtp,
                    span: 0..0,
                },
                Spanned {
                    value: Service::Www,
                    span: 0..0,
                },
            ],
        };
        let Some(mut sec) = sec else { return out };
        let modes: Vec<&str> = SecurityMode::ALL.iter().map(|m| m.name()).collect();
        if let Some(m) = sec.parsed(
            self.sink,
            "mode",
            &format!("use one of: {}", modes.join(", ")),
            |s| SecurityMode::from_name(s).ok_or_else(|| format!("unknown security mode `{s}`")),
        ) {
            out.mode = m.value;
        }
        let names: Vec<&str> = Service::ALL
            .iter()
            .filter(|s| s.may_face_wan())
            .map(|s| s.name())
            .collect();
        if let Some(list) = sec.string_list(self.sink, "wan_services") {
            out.wan_services.clear();
            let path = sec.path_of("wan_services");
            for (i, s) in list.into_iter().enumerate() {
                let help = format!("use any of: {}", names.join(", "));
                let parsed = parse_spanned(self.sink, &format!("{path}[{i}]"), s, &help, |s| {
                    match Service::from_name(s) {
                        Some(svc) if !svc.may_face_wan() => Err(format!(
                            "`{s}` can never be opened to the WAN (the admin pages and DHCP serve the LAN only)"
                        )),
                        Some(svc) => Ok(svc),
                        None => Err(format!("unknown service `{s}`")),
                    }
                });
                out.wan_services.extend(parsed);
            }
        }
        for mut f in sec.tables(self.sink, "forwards") {
            if let Some(fw) = self.forward(&mut f, lan) {
                out.forwards.push(fw);
            }
            f.finish(self.sink);
        }
        sec.finish(self.sink);
        out
    }

    fn forward(&mut self, f: &mut Section, lan: Option<Ipv4Net>) -> Option<Spanned<Forward>> {
        let name = f.string(self.sink, "name").map(|s| s.value);
        let protocols = f.parsed(
            self.sink,
            "protocol",
            "use \"tcp\", \"udp\" or \"both\"",
            |s| match s {
                "tcp" => Ok(vec![Protocol::Tcp]),
                "udp" => Ok(vec![Protocol::Udp]),
                "both" => Ok(vec![Protocol::Tcp, Protocol::Udp]),
                _ => Err(format!("unknown protocol `{s}`")),
            },
        );
        let wan_port = f.port(self.sink, "wan_port");
        let host = self.ipv4(f, "host");
        let port = f.port(self.sink, "port");
        if wan_port.is_none() && !f.has("wan_port") {
            f.missing(
                self.sink,
                "wan_port",
                "the port on the WAN address that is forwarded, e.g. wan_port = 8022",
            );
        }
        if host.is_none() && !f.has("host") {
            f.missing(
                self.sink,
                "host",
                "the LAN device that receives the traffic, e.g. host = \"192.168.1.20\"",
            );
        }
        let (wan_port, host) = (wan_port?, host?);
        if let Some(lan) = lan
            && (!lan.is_host(host.value) || host.value == lan.address)
        {
            let why = if host.value == lan.address {
                "is officebox's own LAN address".to_string()
            } else {
                format!("is outside the LAN {lan}")
            };
            self.sink.error(
                &host.span,
                f.path_of("host"),
                format!("forward target {} {why}", host.value),
                format!(
                    "forwards go to a device on the LAN: an address from {} to {}",
                    lan.host_range().0,
                    lan.host_range().1
                ),
            );
            return None;
        }
        Some(Spanned {
            span: wan_port.span.clone(),
            value: Forward {
                name,
                protocols: protocols
                    .map(|p| p.value)
                    .unwrap_or_else(|| vec![Protocol::Tcp]),
                wan_port: wan_port.value,
                host: host.value,
                port: port.map(|p| p.value).unwrap_or(wan_port.value),
            },
        })
    }

    fn check_forwards(&mut self, forwards: &[Spanned<Forward>], wan_services: &[Spanned<Service>]) {
        let mut seen: HashMap<(Protocol, u16), usize> = HashMap::new();
        for (i, f) in forwards.iter().enumerate() {
            for &proto in &f.value.protocols {
                if let Some(first) = seen.insert((proto, f.value.wan_port), i) {
                    self.sink.error(
                        &f.span,
                        format!("security.forwards[{i}].wan_port"),
                        format!(
                            "{} port {} is already forwarded by security.forwards[{first}]",
                            proto.name(),
                            f.value.wan_port
                        ),
                        "each WAN port can go to one LAN device only",
                    );
                }
                let clash = self.ports.iter().find(|p| {
                    p.port == f.value.wan_port
                        && p.service.protocols().contains(&proto)
                        && wan_services.iter().any(|s| s.value == p.service)
                });
                if let Some(p) = clash {
                    self.sink.error(
                        &f.span,
                        format!("security.forwards[{i}].wan_port"),
                        format!(
                            "{} port {} is officebox's own {} service on the WAN",
                            proto.name(),
                            f.value.wan_port,
                            p.service.name()
                        ),
                        format!(
                            "pick another WAN port, or remove \"{}\" from security.wan_services",
                            p.service.name()
                        ),
                    );
                }
            }
        }
    }

    // ---------------------------------------------------------------- [dns]

    fn dns(&mut self, sec: Option<Section>, network: Option<&NetworkRead>) -> Spanned<Dns> {
        let mut dns = Dns {
            enabled: schema::DNS_ENABLED.bool(),
            port: schema::DNS_PORT.port(),
            primary: None,
            secondary: None,
            use_upstream: schema::DNS_USE_UPSTREAM.bool(),
            secondaries: Vec::new(),
            ttl: u32::try_from(schema::DNS_TTL.int()).unwrap_or(u32::MAX),
            cache_size: usize::try_from(schema::DNS_CACHE_SIZE.int()).unwrap_or(0),
            records: Vec::new(),
        };
        let mut sec = sec;
        dns.port = self.port_setting(sec.as_mut(), &schema::DNS_PORT, Service::Dns);
        let Some(mut sec) = sec else {
            return Spanned {
                value: dns,
                span: 0..0,
            };
        };
        dns.enabled = sec.flag(self.sink, &schema::DNS_ENABLED);
        let primary = sec.parsed(self.sink, "primary", IP_HELP, parse_dns_server);
        dns.primary = primary.as_ref().map(|p| p.value);
        dns.secondary = sec
            .parsed(self.sink, "secondary", IP_HELP, parse_dns_server)
            .map(|p| p.value);
        dns.use_upstream = sec.flag(self.sink, &schema::DNS_USE_UPSTREAM);
        if dns.enabled && dns.use_upstream && primary.is_none() && !sec.has("primary") {
            self.sink.error(
                &sec.key_span("use_upstream"),
                sec.path_of("primary"),
                "use_upstream is on but no primary DNS server is set",
                "set primary = \"<your ISP's DNS server>\", or use_upstream = false to answer only local names",
            );
        }
        dns.secondaries = sec
            .parsed_list(self.sink, "secondaries", IP_HELP, parse_dns_server)
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.value)
            .collect();
        let ttl = &schema::DNS_TTL;
        if let Some(t) = sec.int(self.sink, ttl.key(), ttl.range()) {
            dns.ttl = u32::try_from(t.value).unwrap_or(dns.ttl);
        }
        let cache = &schema::DNS_CACHE_SIZE;
        if let Some(c) = sec.int(self.sink, cache.key(), cache.range()) {
            dns.cache_size = usize::try_from(c.value).unwrap_or(dns.cache_size);
        }
        let records = sec.tables(self.sink, "records");
        sec.finish(self.sink);
        if let Some(network) = network {
            dns.records = self.records(records, &network.value, network.lan_net, dns.ttl);
        }
        Spanned {
            value: dns,
            span: 0..0,
        }
    }

    fn records(
        &mut self,
        secs: Vec<Section>,
        network: &Network,
        lan: Option<Ipv4Net>,
        default_ttl: u32,
    ) -> Vec<Record> {
        let domain = network.domain.clone();
        let mut out: Vec<Record> = Vec::new();
        for mut r in secs {
            let name = r.string(self.sink, "name");
            let rtype = r.string(self.sink, "type");
            let value = r.string(self.sink, "value");
            let ttl = r.int(self.sink, "ttl", 0..=604_800);
            for (key, v) in [
                ("name", name.is_some()),
                ("type", rtype.is_some()),
                ("value", value.is_some()),
            ] {
                if !v && !r.has(key) {
                    r.missing(self.sink, key, "a record needs name, type and value, e.g. { name = \"printer\", type = \"A\", value = \"192.168.1.20\" }");
                }
            }
            let path = r.path.clone();
            r.finish(self.sink);
            let (Some(name), Some(rtype), Some(value)) = (name, rtype, value) else {
                continue;
            };
            let data = parse_spanned(
                self.sink,
                &format!("{path}.value"),
                value,
                &record_help(&rtype.value),
                |v| parse_record_data(&rtype.value, v, &domain),
            );
            let Some(data) = data else { continue };
            let is_ptr = matches!(data.value, RecordData::Ptr(_));
            let reverse = lan.map(reverse_zone);
            let fq = parse_spanned(
                self.sink,
                &format!("{path}.name"),
                name,
                "a name inside the zone, e.g. \"printer\", \"@\" for the domain itself, or \"printer.example.com.\"",
                |n| record_name(n, &domain, if is_ptr { reverse.as_deref() } else { None }),
            );
            let Some(fq) = fq else { continue };
            if let Some((label, _)) = BUILTIN_NAMES
                .iter()
                .chain(std::iter::once(&(
                    network.hostname.as_str(),
                    crate::derive::BuiltinTarget::Both,
                )))
                .find(|(l, _)| fq.value == format!("{l}.{domain}"))
            {
                self.sink.error(
                    &fq.span,
                    format!("{path}.name"),
                    format!("`{label}` is a built-in name that officebox answers itself"),
                    "pick another name; the built-in names are www, wan, corp, admin, lan, smtp, pop and the box's own host name",
                );
                continue;
            }
            let is_cname = matches!(data.value, RecordData::Cname(_));
            if is_cname && fq.value == domain {
                self.sink.error(
                    &fq.span,
                    format!("{path}.name"),
                    "a CNAME cannot be at the domain itself (it holds the SOA, NS and MX)",
                    "use an A record for the domain, or a name below it",
                );
                continue;
            }
            if let Some(j) = out.iter().position(|o| {
                o.name == fq.value && (is_cname || matches!(o.data, RecordData::Cname(_)))
            }) {
                self.sink.error(
                    &fq.span,
                    format!("{path}.name"),
                    format!(
                        "`{}` has a CNAME and other records (dns.records[{j}])",
                        fq.value
                    ),
                    "a name with a CNAME can have no other records; remove one of them",
                );
                continue;
            }
            out.push(Record {
                name: fq.value,
                ttl: ttl.map_or(default_ttl, |t| {
                    u32::try_from(t.value).unwrap_or(default_ttl)
                }),
                data: data.value,
            });
        }
        out
    }

    // ---------------------------------------------------------------- [dhcp]

    fn dhcp(&mut self, sec: Option<Section>, lan: Option<Ipv4Net>) -> Spanned<Dhcp> {
        let mut dhcp = Dhcp {
            enabled: schema::DHCP_ENABLED.bool(),
            range: None,
            lease_time: schema::DHCP_LEASE_TIME.duration(),
            exclude: Vec::new(),
            ping_check: schema::DHCP_PING_CHECK.bool(),
            server_check: schema::DHCP_SERVER_CHECK.duration(),
            reservations: Vec::new(),
        };
        let Some(mut sec) = sec else {
            return Spanned {
                value: dhcp,
                span: 0..0,
            };
        };
        dhcp.enabled = sec.flag(self.sink, &schema::DHCP_ENABLED);
        let range = sec.parsed_list(self.sink, "range", IPV4_HELP, parse_ipv4);
        dhcp.lease_time = self.duration(&mut sec, &schema::DHCP_LEASE_TIME);
        let exclude = sec
            .parsed_list(self.sink, "exclude", IPV4_HELP, parse_ipv4)
            .unwrap_or_default();
        dhcp.ping_check = sec.flag(self.sink, &schema::DHCP_PING_CHECK);
        dhcp.server_check = self.duration(&mut sec, &schema::DHCP_SERVER_CHECK);
        let reservation_secs = sec.tables(self.sink, "reservations");
        if dhcp.enabled
            && let Some(lan) = lan
            && lan.prefix > 30
        {
            self.sink.error(
                &sec.key_span("enabled"),
                sec.path_of("enabled"),
                format!("the LAN {lan} has no room for DHCP clients"),
                "use a LAN netmask of 255.255.255.252 (/30) or wider, or set enabled = false",
            );
        }
        let range_path = sec.path_of("range");
        let range_span = sec.key_span("range");
        sec.finish(self.sink);

        let in_lan = |this: &mut Self, ip: &Spanned<Ipv4Addr>, path: String, what: &str| -> bool {
            let Some(lan) = lan else { return false };
            if lan.is_host(ip.value) {
                return true;
            }
            let (first, last) = lan.host_range();
            this.sink.error(
                &ip.span,
                path,
                format!("{what} {} is outside the LAN subnet {lan}", ip.value),
                format!("use addresses from {first} to {last}, or change network.lan"),
            );
            false
        };

        if let Some(range) = range {
            match range.as_slice() {
                [first, last] => {
                    let ok_first =
                        in_lan(self, first, format!("{range_path}[0]"), "the range start");
                    let ok_last = in_lan(self, last, format!("{range_path}[1]"), "the range end");
                    if ok_first && ok_last {
                        if first.value > last.value {
                            self.sink.error(
                                &first.span,
                                range_path.clone(),
                                format!(
                                    "the range starts at {} but ends before it, at {}",
                                    first.value, last.value
                                ),
                                format!(
                                    "write the lower address first: range = [\"{}\", \"{}\"]",
                                    last.value, first.value
                                ),
                            );
                        } else if u32::from(last.value) - u32::from(first.value) >= 65_536 {
                            self.sink.error(
                                &first.span,
                                range_path.clone(),
                                "the range is larger than a /16 (65,536 addresses)",
                                "use a smaller range",
                            );
                        } else {
                            dhcp.range = Some((first.value, last.value));
                        }
                    }
                }
                _ => {
                    let example = lan.map(default_dhcp_range).map_or(String::new(), |(a, b)| {
                        format!(", e.g. range = [\"{a}\", \"{b}\"]")
                    });
                    self.sink.error(
                        &range_span,
                        range_path.clone(),
                        format!(
                            "expected two addresses (first and last), found {}",
                            range.len()
                        ),
                        format!("write [first, last]{example}"),
                    );
                }
            }
        }
        for (i, ip) in exclude.iter().enumerate() {
            if in_lan(self, ip, format!("dhcp.exclude[{i}]"), "excluded address") {
                dhcp.exclude.push(ip.value);
            }
        }
        let mut macs: HashMap<Mac, usize> = HashMap::new();
        let mut addrs: HashMap<Ipv4Addr, usize> = HashMap::new();
        for (i, mut r) in reservation_secs.into_iter().enumerate() {
            let mac = r.parsed(
                self.sink,
                "mac",
                "six hex pairs, e.g. \"52:54:00:12:34:56\"",
                parse_mac,
            );
            let address = self.ipv4(&mut r, "address");
            let hostname = r.parsed(
                self.sink,
                "hostname",
                "one label of letters, digits and hyphens, e.g. \"printer\"",
                parse_label,
            );
            for (key, v) in [("mac", mac.is_some()), ("address", address.is_some())] {
                if !v && !r.has(key) {
                    r.missing(self.sink, key, "a reservation needs mac and address");
                }
            }
            let path = r.path.clone();
            r.finish(self.sink);
            let (Some(mac), Some(address)) = (mac, address) else {
                continue;
            };
            if !in_lan(
                self,
                &address,
                format!("{path}.address"),
                "reserved address",
            ) {
                continue;
            }
            if let Some(lan) = lan
                && address.value == lan.address
            {
                self.sink.error(
                    &address.span,
                    format!("{path}.address"),
                    format!("{} is officebox's own LAN address", address.value),
                    "reserve another address",
                );
                continue;
            }
            if let Some(j) = macs.insert(mac.value, i) {
                self.sink.error(
                    &mac.span,
                    format!("{path}.mac"),
                    format!(
                        "{} already has a reservation (dhcp.reservations[{j}])",
                        mac.value
                    ),
                    "one reservation per device; remove one of them",
                );
                continue;
            }
            if let Some(j) = addrs.insert(address.value, i) {
                self.sink.error(
                    &address.span,
                    format!("{path}.address"),
                    format!(
                        "{} is already reserved by dhcp.reservations[{j}]",
                        address.value
                    ),
                    "give each device its own address",
                );
                continue;
            }
            dhcp.reservations.push(Reservation {
                mac: mac.value,
                address: address.value,
                hostname: hostname.map(|h| h.value),
            });
        }
        Spanned {
            value: dhcp,
            span: 0..0,
        }
    }

    // ---------------------------------------------------------------- [[users]]

    fn users(&mut self, secs: Vec<Section>) -> Vec<Spanned<User>> {
        let mut out: Vec<Spanned<User>> = Vec::new();
        let mut extensions: HashMap<String, String> = HashMap::new();
        for mut u in secs {
            let login = u.parsed(
                self.sink,
                "login",
                "lowercase letters, digits, '.', '-' or '_', e.g. \"alice\"",
                parse_login,
            );
            let name = u.string(self.sink, "name").map(|s| s.value);
            let password = u.parsed(
                self.sink,
                "password",
                "set it with `officebox user passwd LOGIN`, which stores an argon2 hash",
                parse_argon2,
            );
            let extension = self.extension(&mut u);
            let pin = u.parsed(
                self.sink,
                "voicemail_pin",
                "set it with `officebox user passwd LOGIN --pin`, which stores an argon2 hash",
                parse_argon2,
            );
            let sip_help = "set it with `officebox user passwd LOGIN`, which stores the phone \
                            password's digest hashes";
            let sip_ha1_md5 = u.parsed(self.sink, "sip_ha1_md5", sip_help, |s| hex_of(s, 32));
            let sip_ha1_sha256 = u.parsed(self.sink, "sip_ha1_sha256", sip_help, |s| hex_of(s, 64));
            let sip_ext_secret = u.parsed(self.sink, "sip_ext_secret", sip_help, parse_ext_secret);
            let admin = u.flag(self.sink, &schema::USER_ADMIN);
            self.saw_admin |= admin;
            let pop3 = u
                .tables(self.sink, "pop3")
                .into_iter()
                .filter_map(|p| self.pop3_account(p))
                .collect();
            for (key, v) in [("login", login.is_some()), ("password", password.is_some())] {
                if !v && !u.has(key) {
                    u.missing(self.sink, key, "add users with `officebox user add LOGIN`");
                }
            }
            let path = u.path.clone();
            let span = u.span.clone();
            u.finish(self.sink);
            let Some(login) = login else { continue };
            if out.iter().any(|o| o.value.login == login.value) {
                self.sink.error(
                    &login.span,
                    format!("{path}.login"),
                    format!("there is already a user `{}`", login.value),
                    "each login must be unique",
                );
                continue;
            }
            if let Some(ext) = &extension {
                if let Some(owner) = extensions.get(&ext.value) {
                    self.sink.error(
                        &ext.span,
                        format!("{path}.extension"),
                        format!("extension {} is already {owner}'s", ext.value),
                        "give each user a different extension",
                    );
                } else {
                    extensions.insert(ext.value.clone(), login.value.clone());
                }
            }
            out.push(Spanned {
                span,
                value: User {
                    name: name.unwrap_or_else(|| login.value.clone()),
                    login: login.value,
                    password_hash: password.map(|p| p.value).unwrap_or_default(),
                    extension: extension.map(|e| e.value),
                    voicemail_pin_hash: pin.map(|p| p.value),
                    sip_ha1_md5: sip_ha1_md5.map(|h| h.value),
                    sip_ha1_sha256: sip_ha1_sha256.map(|h| h.value),
                    sip_ext_secret: sip_ext_secret.map(|h| h.value),
                    admin,
                    pop3,
                },
            });
        }
        out
    }

    /// An extension, written as 101 or "101".
    fn extension(&mut self, u: &mut Section) -> Option<Spanned<String>> {
        let help = "an extension is 2 to 6 digits, e.g. extension = 101";
        let path = u.path_of("extension");
        let text = if u.has("extension") && u.is_string("extension") {
            u.parsed(self.sink, "extension", help, |s| Ok(s.trim().to_string()))?
        } else {
            let n = u.int(self.sink, "extension", 0..=999_999)?;
            Spanned {
                value: n.value.to_string(),
                span: n.span,
            }
        };
        if !(2..=6).contains(&text.value.len()) || !text.value.bytes().all(|b| b.is_ascii_digit()) {
            self.sink.error(
                &text.span,
                path,
                format!("extension {} is not 2 to 6 digits", text.value),
                help,
            );
            return None;
        }
        Some(text)
    }

    fn pop3_account(&mut self, mut p: Section) -> Option<Pop3Account> {
        let server = p.parsed(
            self.sink,
            "server",
            "the ISP's POP3 server name, e.g. \"pop.isp.example\"",
            |s| {
                parse_ip(s)
                    .map(|ip| ip.to_string())
                    .or_else(|_| parse_domain(s))
            },
        );
        let tls = p.parsed(
            self.sink,
            "tls",
            "use \"implicit\" (port 995), \"starttls\" or \"none\"",
            |s| match s {
                "implicit" => Ok(Pop3Tls::Implicit),
                "starttls" => Ok(Pop3Tls::Starttls),
                "none" => Ok(Pop3Tls::None),
                _ => Err(format!("unknown TLS mode `{s}`")),
            },
        );
        let tls = tls.map_or(Pop3Tls::Implicit, |t| t.value);
        let port = p
            .port(self.sink, "port")
            .map_or(if tls == Pop3Tls::Implicit { 995 } else { 110 }, |p| {
                p.value
            });
        let login = p.string(self.sink, "login");
        let password = p.string(self.sink, "password");
        let poll_interval = self.duration(&mut p, &schema::POP3_POLL_INTERVAL);
        let keep_on_server = p.flag(self.sink, &schema::POP3_KEEP_ON_SERVER);
        let verify_certificate = p.flag(self.sink, &schema::POP3_VERIFY_CERTIFICATE);
        let ca_file = p
            .string(self.sink, "ca_file")
            .map(|s| std::path::PathBuf::from(s.value));
        for (key, v) in [
            ("server", server.is_some()),
            ("login", login.is_some()),
            ("password", password.is_some()),
        ] {
            if !v && !p.has(key) {
                p.missing(
                    self.sink,
                    key,
                    "an external mailbox needs server, login and password",
                );
            }
        }
        p.finish(self.sink);
        Some(Pop3Account {
            server: server?.value,
            port,
            tls,
            login: login?.value,
            password: password?.value,
            poll_interval,
            keep_on_server,
            verify_certificate,
            ca_file,
        })
    }

    // ---------------------------------------------------------------- [mail]

    fn mail(
        &mut self,
        sec: Option<Section>,
        network: Option<&NetworkRead>,
        users: &[Spanned<User>],
    ) -> Mail {
        let mut mail = Mail {
            enabled: schema::MAIL_ENABLED.bool(),
            smtp_port: schema::SMTP_PORT.port(),
            submission_port: schema::SUBMISSION_PORT.port(),
            smtps_port: schema::SMTPS_PORT.port(),
            pop3_port: schema::POP3_PORT.port(),
            pop3s_port: schema::POP3S_PORT.port(),
            relay_from_wan: schema::RELAY_FROM_WAN.bool(),
            max_message_size: schema::MAX_MESSAGE_SIZE.bytes(),
            aliases: Vec::new(),
            catch_all: None,
            queue: Queue {
                first_retry: schema::FIRST_RETRY.duration(),
                max_retry_interval: schema::MAX_RETRY_INTERVAL.duration(),
                delay_notice_after: schema::DELAY_NOTICE_AFTER.duration(),
                give_up_after: schema::GIVE_UP_AFTER.duration(),
            },
            resolvers: Vec::new(),
        };
        let mut sec_opt = sec;
        if let Some(s) = sec_opt.as_mut() {
            mail.enabled = s.flag(self.sink, &schema::MAIL_ENABLED);
        }
        for (setting, service, field) in [
            (&schema::SMTP_PORT, Service::Smtp, &mut mail.smtp_port),
            (
                &schema::SUBMISSION_PORT,
                Service::Submission,
                &mut mail.submission_port,
            ),
            (&schema::SMTPS_PORT, Service::Smtps, &mut mail.smtps_port),
            (&schema::POP3_PORT, Service::Pop3, &mut mail.pop3_port),
            (&schema::POP3S_PORT, Service::Pop3s, &mut mail.pop3s_port),
        ] {
            *field = self.port_setting(sec_opt.as_mut(), setting, service);
        }
        let Some(mut sec) = sec_opt else { return mail };
        mail.relay_from_wan = sec.flag(self.sink, &schema::RELAY_FROM_WAN);
        if let Some(size) = sec.parsed(
            self.sink,
            "max_message_size",
            "a size like \"25M\"",
            parse_size,
        ) {
            mail.max_message_size = size.value;
        }
        mail.resolvers = sec
            .parsed_list(self.sink, "resolvers", IP_HELP, parse_dns_server)
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.value)
            .collect();
        if let Some(mut q) = sec.table(self.sink, "queue") {
            mail.queue.first_retry = self.duration(&mut q, &schema::FIRST_RETRY);
            mail.queue.max_retry_interval = self.duration(&mut q, &schema::MAX_RETRY_INTERVAL);
            mail.queue.delay_notice_after = self.duration(&mut q, &schema::DELAY_NOTICE_AFTER);
            mail.queue.give_up_after = self.duration(&mut q, &schema::GIVE_UP_AFTER);
            q.finish(self.sink);
        }
        if let Some(c) = sec.table(self.sink, "catch_all") {
            mail.catch_all = self.pop3_account(c);
        }
        let aliases = sec.table(self.sink, "aliases");
        sec.finish(self.sink);
        if let (Some(aliases), Some(network)) = (aliases, network) {
            mail.aliases = self.aliases(aliases, &network.value.domain, users);
        }
        mail
    }

    fn aliases(&mut self, mut sec: Section, domain: &str, users: &[Spanned<User>]) -> Vec<Alias> {
        let is_user = |n: &str| users.iter().any(|u| u.value.login == n);
        let entries = sec.entries();
        let names: Vec<String> = entries
            .iter()
            .map(|(n, _, _)| n.to_ascii_lowercase())
            .collect();
        let mut out = Vec::new();
        let mut spans: BTreeMap<String, Range<usize>> = BTreeMap::new();
        for (name, kspan, item) in entries {
            let path = format!("mail.aliases.{name}");
            let Ok(lname) = parse_login(&name) else {
                self.sink.error(
                    &kspan,
                    path,
                    format!("`{name}` is not a valid mailbox name"),
                    "use lowercase letters, digits, '.', '-' or '_'",
                );
                continue;
            };
            let Some(array) = item.as_array() else {
                self.sink.error(
                    &item.span().unwrap_or(kspan),
                    path,
                    "expected a list of members",
                    "write e.g. sales = [\"alice\", \"bob\"]",
                );
                continue;
            };
            let mut members = Vec::new();
            for (i, v) in array.iter().enumerate() {
                let vspan = v.span().unwrap_or_else(|| kspan.clone());
                let mpath = format!("{path}[{i}]");
                let Some(text) = v.as_str() else {
                    self.sink.error(
                        &vspan,
                        mpath,
                        "expected a string",
                        "write each member in double quotes",
                    );
                    continue;
                };
                let text = text.trim().to_ascii_lowercase();
                let member = match text.split_once('@') {
                    Some((local, dom)) if dom == domain => Ok(local.to_string()),
                    Some((local, dom)) => match (
                        parse_login(local).is_ok() || !local.is_empty(),
                        parse_domain(dom),
                    ) {
                        (true, Ok(_)) => {
                            members.push(AliasMember::External(text.clone()));
                            continue;
                        }
                        _ => Err(format!("`{text}` is not an email address")),
                    },
                    None => Ok(text.clone()),
                };
                match member {
                    Ok(local) if local == lname && !is_user(&local) => {
                        self.sink.error(&vspan, mpath, format!("alias `{lname}` names itself but there is no user `{lname}`"), "an alias may name itself only to keep a copy in that user's own mailbox");
                    }
                    Ok(local) if local == lname || is_user(&local) || names.contains(&local) => {
                        members.push(AliasMember::Local(local));
                    }
                    Ok(local) => {
                        let mut candidates: Vec<&str> =
                            users.iter().map(|u| u.value.login.as_str()).collect();
                        candidates.extend(names.iter().map(String::as_str));
                        let help = match crate::diag::closest(&local, &candidates) {
                            Some(c) => format!("did you mean `{c}`? members are user logins, other aliases, or full addresses"),
                            None => "members are user logins, other aliases, or full addresses like \"bob@elsewhere.example\"".into(),
                        };
                        self.sink.error(
                            &vspan,
                            mpath,
                            format!("`{local}` is neither a user nor an alias"),
                            help,
                        );
                    }
                    Err(message) => self.sink.error(
                        &vspan,
                        mpath,
                        message,
                        "write a full address like \"bob@elsewhere.example\"",
                    ),
                }
            }
            spans.insert(lname.clone(), kspan);
            out.push(Alias {
                name: lname,
                members,
            });
        }
        // Loops: follow alias -> alias edges (a self-reference is the user's own mailbox).
        let graph: HashMap<&str, Vec<&str>> = out
            .iter()
            .map(|a| {
                let next = a
                    .members
                    .iter()
                    .filter_map(|m| match m {
                        AliasMember::Local(l) if *l != a.name && names.contains(l) => {
                            Some(l.as_str())
                        }
                        _ => None,
                    })
                    .collect();
                (a.name.as_str(), next)
            })
            .collect();
        let mut reported: Vec<String> = Vec::new();
        for a in &out {
            if let Some(cycle) = find_cycle(&graph, &a.name) {
                let mut key: Vec<String> = cycle[..cycle.len() - 1].to_vec();
                key.sort();
                let key = key.join(",");
                if reported.contains(&key) {
                    continue;
                }
                reported.push(key);
                let span = spans.get(&a.name).cloned().unwrap_or_default();
                self.sink.error(&span, format!("mail.aliases.{}", a.name), format!("alias loop: {}", cycle.join(" -> ")), "an alias cannot contain itself through other aliases; remove one link of the loop");
            }
        }
        out
    }

    // ---------------------------------------------------------------- [phone], [web], [ntp]

    fn phone(&mut self, sec: Option<Section>, users: &[Spanned<User>]) -> Phone {
        let mut phone = Phone {
            enabled: schema::PHONE_ENABLED.bool(),
            sip_port: schema::SIP_PORT.port(),
            voicemail_extension: schema::VOICEMAIL_EXTENSION.text().into(),
            no_answer_timeout: schema::NO_ANSWER_TIMEOUT.duration(),
            max_message_length: schema::MAX_MESSAGE_LENGTH.duration(),
            rtp_ports: (10_000, 10_999),
        };
        let mut sec = sec;
        phone.sip_port = self.port_setting(sec.as_mut(), &schema::SIP_PORT, Service::Sip);
        if let Some(mut sec) = sec {
            phone.enabled = sec.flag(self.sink, &schema::PHONE_ENABLED);
            if let Some(v) = sec.parsed(
                self.sink,
                "voicemail_extension",
                "digits, optionally starting with * or #, e.g. \"*97\"",
                |s| {
                    let body = s.trim_start_matches(['*', '#']);
                    if !body.is_empty()
                        && body.len() <= 6
                        && body.bytes().all(|b| b.is_ascii_digit())
                    {
                        Ok(s.to_string())
                    } else {
                        Err(format!("`{s}` is not something a phone can dial"))
                    }
                },
            ) {
                if let Some(u) = users
                    .iter()
                    .find(|u| u.value.extension.as_deref() == Some(v.value.as_str()))
                {
                    self.sink.error(
                        &v.span,
                        "phone.voicemail_extension",
                        format!("{} is {}'s extension", v.value, u.value.login),
                        "pick a voicemail extension no user has, e.g. \"*97\"",
                    );
                }
                phone.voicemail_extension = v.value;
            }
            phone.no_answer_timeout = self.duration(&mut sec, &schema::NO_ANSWER_TIMEOUT);
            phone.max_message_length = self.duration(&mut sec, &schema::MAX_MESSAGE_LENGTH);
            if let Some(r) = sec.parsed(
                self.sink,
                "rtp_ports",
                "write \"FIRST-LAST\" with at least 4 ports, e.g. \"10000-10999\"",
                |s| {
                    let (a, b) = s
                        .split_once('-')
                        .ok_or_else(|| format!("`{s}` is not a port range"))?;
                    let (a, b): (u16, u16) = (
                        a.trim()
                            .parse()
                            .map_err(|_| format!("`{a}` is not a port"))?,
                        b.trim()
                            .parse()
                            .map_err(|_| format!("`{b}` is not a port"))?,
                    );
                    if a < 1024 || b < a.saturating_add(3) {
                        return Err(format!("`{s}` is not a usable range of unprivileged ports"));
                    }
                    Ok((a, b))
                },
            ) {
                phone.rtp_ports = r.value;
            }
            sec.finish(self.sink);
        }
        phone
    }

    fn web(&mut self, sec: Option<Section>) -> Web {
        let mut web = Web {
            enabled: schema::WEB_ENABLED.bool(),
            admin_port: schema::ADMIN_PORT.port(),
            site_port: schema::SITE_PORT.port(),
            https: schema::HTTPS.bool(),
            session_timeout: schema::SESSION_TIMEOUT.duration(),
            confirm_timeout: schema::CONFIRM_TIMEOUT.duration(),
        };
        let mut sec = sec;
        web.admin_port = self.port_setting(sec.as_mut(), &schema::ADMIN_PORT, Service::Admin);
        web.site_port = self.port_setting(sec.as_mut(), &schema::SITE_PORT, Service::Www);
        if let Some(mut sec) = sec {
            web.enabled = sec.flag(self.sink, &schema::WEB_ENABLED);
            web.https = sec.flag(self.sink, &schema::HTTPS);
            web.session_timeout = self.duration(&mut sec, &schema::SESSION_TIMEOUT);
            web.confirm_timeout = self.duration(&mut sec, &schema::CONFIRM_TIMEOUT);
            sec.finish(self.sink);
        }
        web
    }

    fn ntp(&mut self, sec: Option<Section>) -> Ntp {
        let mut sec = sec;
        let port = self.port_setting(sec.as_mut(), &schema::NTP_PORT, Service::Ntp);
        let mut ntp = Ntp {
            enabled: schema::NTP_ENABLED.bool(),
            port,
        };
        if let Some(mut sec) = sec {
            ntp.enabled = sec.flag(self.sink, &schema::NTP_ENABLED);
            sec.finish(self.sink);
        }
        ntp
    }

    /// Reads one service's port (or takes its default) and remembers where it was set,
    /// for the port-collision check.
    fn port_setting(
        &mut self,
        sec: Option<&mut Section>,
        setting: &Setting,
        service: Service,
    ) -> u16 {
        let default = setting.port();
        let (port, span) = match sec {
            Some(s) => match s.port(self.sink, setting.key()) {
                Some(p) => (p.value, p.span),
                None => (default, s.span.clone()),
            },
            None => (default, 0..0),
        };
        self.ports.push(PortSetting {
            service,
            port,
            span,
            path: setting.path.into(),
        });
        port
    }

    /// Two enabled services cannot listen on one port and protocol.
    fn check_ports(&mut self, enabled: impl Fn(Service) -> bool) {
        let mut seen: Vec<(Protocol, &PortSetting)> = Vec::new();
        for p in self.ports.iter().filter(|p| enabled(p.service)) {
            for &protocol in p.service.protocols() {
                let clash = seen.iter().find(|(proto, q)| {
                    *proto == protocol && q.port == p.port && q.service != p.service
                });
                if let Some((_, q)) = clash {
                    self.sink.error(
                        &p.span,
                        p.path.clone(),
                        format!(
                            "{} port {} is already used by {} ({})",
                            protocol.name(),
                            p.port,
                            q.service.name(),
                            q.path
                        ),
                        "give each service its own port",
                    );
                    break;
                }
                seen.push((protocol, p));
            }
        }
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

fn placeholder_network() -> Network {
    Network {
        hostname: "officebox".into(),
        domain: String::new(),
        manage: false,
        listen: Vec::new(),
        wan: Wan {
            interface: None,
            addressing: WanAddressing::Dhcp {
                release_on_shutdown: false,
            },
        },
        lan: Lan {
            interface: None,
            net: Ipv4Net {
                address: Ipv4Addr::new(192, 168, 1, 1),
                prefix: 24,
            },
            gateway: None,
        },
    }
}

/// A mailbox name / login: lowercase letters, digits, `.`, `-`, `_`; 1-32 long.
pub fn parse_login(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        })
        && !s.starts_with('.')
        && !s.ends_with('.');
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!("`{s}` is not a valid login"))
    }
}

/// Accepts an argon2 PHC string (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`).
fn parse_argon2(s: &str) -> Result<String, String> {
    let parts: Vec<&str> = s.split('$').collect();
    let ok = parts.len() == 6
        && parts[0].is_empty()
        && matches!(parts[1], "argon2id" | "argon2i" | "argon2d")
        && parts[2].starts_with("v=")
        && parts[3].contains("m=")
        && !parts[4].is_empty()
        && !parts[5].is_empty();
    if ok {
        Ok(s.to_string())
    } else {
        Err("this is not an argon2 password hash (passwords are never stored in clear)".into())
    }
}

/// The reverse zone of a LAN subnet, e.g. `1.168.192.in-addr.arpa` for a /24.
pub fn reverse_zone(net: Ipv4Net) -> String {
    let octets = net.network().octets();
    let whole = usize::from(net.prefix / 8);
    let mut labels: Vec<String> = octets[..whole].iter().rev().map(u8::to_string).collect();
    labels.push("in-addr.arpa".into());
    labels.join(".")
}

/// Resolves a record name: `@` is the domain, a trailing dot means absolute, otherwise
/// relative to the domain. The result must be inside the zone (or the reverse zone for PTR).
fn record_name(n: &str, domain: &str, reverse: Option<&str>) -> Result<String, String> {
    let n = n.trim().to_ascii_lowercase();
    let fq = if n == "@" {
        domain.to_string()
    } else if let Some(abs) = n.strip_suffix('.') {
        abs.to_string()
    } else {
        format!("{n}.{domain}")
    };
    let labels_ok = fq.split('.').all(|l| {
        let l = l.strip_prefix('_').unwrap_or(l);
        crate::values::is_label(l) || l == "*"
    });
    if !labels_ok {
        return Err(format!("`{n}` is not a valid name"));
    }
    let inside = |zone: &str| fq == zone || fq.ends_with(&format!(".{zone}"));
    if inside(domain) || reverse.is_some_and(inside) {
        Ok(fq)
    } else {
        Err(format!("`{n}` is outside the zone {domain}"))
    }
}

fn absolute(name: &str, domain: &str) -> Result<String, String> {
    let name = name.trim().to_ascii_lowercase();
    match name.strip_suffix('.') {
        Some(abs) => parse_domain(abs),
        None => parse_domain(&format!("{name}.{domain}")),
    }
}

fn record_help(rtype: &str) -> String {
    match rtype.to_ascii_uppercase().as_str() {
        "A" => IPV4_HELP.into(),
        "AAAA" => "an IPv6 address, e.g. \"2001:db8::10\"".into(),
        "CNAME" | "PTR" => "a host name, e.g. \"server\" or \"host.example.net.\"".into(),
        "MX" => "preference and mail server, e.g. \"10 mail.example.net.\"".into(),
        "TXT" => "any text".into(),
        "SRV" => "priority, weight, port and target, e.g. \"10 5 5060 sip.example.com.\"".into(),
        _ => "the type is one of A, AAAA, CNAME, MX, TXT, SRV, PTR".into(),
    }
}

fn parse_record_data(rtype: &str, v: &str, domain: &str) -> Result<RecordData, String> {
    let fields: Vec<&str> = v.split_whitespace().collect();
    let num = |s: &str| {
        s.parse::<u16>()
            .map_err(|_| format!("`{s}` is not a number from 0 to 65535"))
    };
    match rtype.to_ascii_uppercase().as_str() {
        "A" => parse_ipv4(v).map(RecordData::A),
        "AAAA" => v
            .trim()
            .parse()
            .map(RecordData::Aaaa)
            .map_err(|_| format!("`{v}` is not an IPv6 address")),
        "CNAME" => absolute(v, domain).map(RecordData::Cname),
        "PTR" => absolute(v, domain).map(RecordData::Ptr),
        "TXT" if v.len() <= 4000 => Ok(RecordData::Txt(v.to_string())),
        "TXT" => Err("the text is too long (at most 4000 characters)".into()),
        "MX" => match fields.as_slice() {
            [pref, host] => Ok(RecordData::Mx {
                preference: num(pref)?,
                exchange: absolute(host, domain)?,
            }),
            _ => Err(format!("`{v}` is not an MX value")),
        },
        "SRV" => match fields.as_slice() {
            [prio, weight, port, target] => Ok(RecordData::Srv {
                priority: num(prio)?,
                weight: num(weight)?,
                port: num(port)?,
                target: absolute(target, domain)?,
            }),
            _ => Err(format!("`{v}` is not an SRV value")),
        },
        other => Err(format!("unsupported record type `{other}`")),
    }
}

fn find_cycle(graph: &HashMap<&str, Vec<&str>>, start: &str) -> Option<Vec<String>> {
    fn walk<'g>(
        graph: &HashMap<&str, Vec<&'g str>>,
        node: &'g str,
        start: &str,
        path: &mut Vec<&'g str>,
    ) -> bool {
        for &next in graph.get(node).map(Vec::as_slice).unwrap_or_default() {
            if next == start {
                path.push(next);
                return true;
            }
            if path.contains(&next) {
                continue;
            }
            path.push(next);
            if walk(graph, next, start, path) {
                return true;
            }
            path.pop();
        }
        false
    }
    let (&node, _) = graph.get_key_value(start)?;
    let mut path = vec![node];
    walk(graph, node, start, &mut path).then(|| path.into_iter().map(String::from).collect())
}

/// `n` lowercase hex digits (a digest hash).
/// `EXTENSION:MD5:SHA256` (see [`crate::model::ExtSecret`]).
fn parse_ext_secret(s: &str) -> Result<crate::model::ExtSecret, String> {
    let mut parts = s.split(':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(ext), Some(md5), Some(sha256), None)
            if !ext.is_empty() && ext.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Ok(crate::model::ExtSecret {
                extension: ext.to_string(),
                md5: hex_of(md5, 32)?,
                sha256: hex_of(sha256, 64)?,
            })
        }
        _ => Err("expected EXTENSION:MD5:SHA256 (digits, 32 and 64 hex digits)".into()),
    }
}

fn hex_of(s: &str, n: usize) -> Result<String, String> {
    if s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!("expected {n} hex digits"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA";

    fn parse_ok(extra: &str) -> Config {
        let text = format!(
            "[network]\ndomain = \"example.com\"\nmanage = false\n[dns]\nuse_upstream = false\n{extra}\n\
             [[users]]\nlogin = \"admin\"\npassword = \"{HASH}\"\nadmin = true\n\
             [[users]]\nlogin = \"bob\"\npassword = \"{HASH}\"\nextension = \"102\"\n"
        );
        match parse("t.toml", &text) {
            Ok(c) => c,
            Err(d) => panic!("{d}"),
        }
    }

    #[test]
    fn the_shipped_configs_are_valid() {
        let demo = include_str!("../../../examples/demo.toml");
        let c = parse("demo.toml", demo).unwrap();
        assert_eq!(c.users.len(), 3);
        assert!(!c.network.manage);
        assert!(!c.dns.use_upstream, "the demo never forwards anywhere");
        let t = crate::template::default_config("acme.example", HASH);
        let c = parse("init.toml", &t).unwrap();
        assert_eq!(c.network.domain, "acme.example");
        assert_eq!(c.security.mode, SecurityMode::FirewallNat);
        assert!(!c.mail.relay_from_wan);
    }

    /// The schema is the one place defaults are written: writing any setting's default
    /// into a file loads the same config as leaving it out.
    #[test]
    fn every_schema_default_is_the_loaders_default() {
        let file = |table: &str, line: &str| {
            let catch_all = "server = \"pop.isp.example\"\nlogin = \"o\"\npassword = \"p\"";
            let (top, mut tables) = (
                if table.is_empty() { line } else { "" },
                vec![
                    (
                        "network",
                        "domain = \"example.com\"\nmanage = false".to_string(),
                    ),
                    ("network.wan", "mode = \"dhcp\"".to_string()),
                    ("dns", "use_upstream = false".to_string()),
                    ("mail.catch_all", catch_all.to_string()),
                ],
            );
            match tables.iter_mut().find(|(t, _)| *t == table) {
                Some((_, body)) => {
                    body.push('\n');
                    body.push_str(line);
                }
                None if !table.is_empty() => tables.push((table, line.to_string())),
                None => {}
            }
            let mut text = format!("{top}\n");
            for (t, body) in tables {
                text.push_str(&format!("[{t}]\n{body}\n"));
            }
            text.push_str(&format!(
                "[[users]]\nlogin = \"admin\"\npassword = \"{HASH}\"\nadmin = true\n"
            ));
            match parse("t.toml", &text) {
                Ok(c) => c,
                Err(d) => panic!("{d}\n{text}"),
            }
        };
        let without = file("", "");
        let mut checked = 0;
        for s in crate::schema::SETTINGS {
            let Some(value) = s.default_toml() else {
                continue;
            };
            // Entries of lists, and the two the base file itself sets, are not plain tables.
            if s.path.contains("[]") || ["network.manage", "dns.use_upstream"].contains(&s.path) {
                continue;
            }
            let with = file(s.table(), &format!("{} = {value}", s.key()));
            assert_eq!(
                with, without,
                "{} = {value} is not what leaving it out gives",
                s.path
            );
            checked += 1;
        }
        assert!(checked > 40, "only {checked} settings were checked");
        // And the two the base sets: their defaults are on.
        assert!(crate::schema::MANAGE.bool() && crate::schema::DNS_USE_UPSTREAM.bool());
    }

    #[test]
    fn defaults_are_the_appliance_defaults() {
        let c = parse_ok("");
        assert_eq!(c.network.lan.net.to_string(), "192.168.1.0/24");
        assert_eq!(c.network.lan.net.address, Ipv4Addr::new(192, 168, 1, 1));
        assert_eq!(c.security.mode, SecurityMode::FirewallNat);
        assert_eq!(c.security.wan_services, vec![Service::Smtp, Service::Www]);
        assert_eq!(c.dhcp.range, None);
        assert_eq!(c.dhcp.lease_time, Duration::from_secs(86_400));
        assert_eq!(
            (c.mail.smtp_port, c.mail.pop3_port, c.web.admin_port),
            (25, 110, 8080)
        );
        assert_eq!(c.phone.voicemail_extension, "*97");
        assert_eq!(c.phone.no_answer_timeout, Duration::from_secs(20));
        assert_eq!(c.mail.queue.give_up_after, Duration::from_secs(5 * 86_400));
        assert_eq!(c.users[1].extension.as_deref(), Some("102"));
        assert_eq!(c.users[1].name, "bob", "the name defaults to the login");
    }

    #[test]
    fn aliases_keep_a_copy_and_forward() {
        let c = parse_ok(
            "[mail.aliases]\nbob = [\"bob\", \"Bob@Elsewhere.Example\"]\nsales = [\"bob\", \"admin@example.com\"]\nall = [\"sales\", \"bob\"]\n",
        );
        let find = |n: &str| {
            c.mail
                .aliases
                .iter()
                .find(|a| a.name == n)
                .unwrap()
                .members
                .clone()
        };
        assert_eq!(
            find("bob"),
            vec![
                AliasMember::Local("bob".into()),
                AliasMember::External("bob@elsewhere.example".into())
            ]
        );
        assert_eq!(
            find("sales"),
            vec![
                AliasMember::Local("bob".into()),
                AliasMember::Local("admin".into())
            ]
        );
        assert_eq!(
            find("all"),
            vec![
                AliasMember::Local("sales".into()),
                AliasMember::Local("bob".into())
            ]
        );
    }

    #[test]
    fn records_resolve_names_and_values() {
        let c = parse_ok(
            r#"[[dns.records]]
name = "printer"
type = "A"
value = "192.168.1.20"
[[dns.records]]
name = "@"
type = "MX"
value = "20 backup.example.net."
ttl = 60
[[dns.records]]
name = "_sip._udp"
type = "SRV"
value = "10 5 5060 officebox"
[[dns.records]]
name = "20.1.168.192.in-addr.arpa."
type = "PTR"
value = "printer"
[[dns.records]]
name = "files"
type = "CNAME"
value = "printer"
"#,
        );
        let r = &c.dns.records;
        assert_eq!(r[0].name, "printer.example.com");
        assert_eq!(r[0].data, RecordData::A(Ipv4Addr::new(192, 168, 1, 20)));
        assert_eq!(r[1].name, "example.com");
        assert_eq!(r[1].ttl, 60);
        assert_eq!(
            r[1].data,
            RecordData::Mx {
                preference: 20,
                exchange: "backup.example.net".into()
            }
        );
        assert_eq!(
            r[2].data,
            RecordData::Srv {
                priority: 10,
                weight: 5,
                port: 5060,
                target: "officebox.example.com".into()
            }
        );
        assert_eq!(r[3].name, "20.1.168.192.in-addr.arpa");
        assert_eq!(r[4].data, RecordData::Cname("printer.example.com".into()));
        assert_eq!(r[4].ttl, 3600);
    }

    #[test]
    fn reverse_zones() {
        let net = |a: [u8; 4], prefix| Ipv4Net {
            address: Ipv4Addr::from(a),
            prefix,
        };
        assert_eq!(
            reverse_zone(net([192, 168, 1, 1], 24)),
            "1.168.192.in-addr.arpa"
        );
        assert_eq!(
            reverse_zone(net([172, 16, 0, 1], 16)),
            "16.172.in-addr.arpa"
        );
        assert_eq!(reverse_zone(net([10, 0, 0, 1], 28)), "0.0.10.in-addr.arpa");
    }
}
