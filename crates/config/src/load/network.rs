//! `[network]`: the box's name, its WAN and LAN ports and addresses.

use super::*;

impl Loader<'_, '_> {
    pub(super) fn network(&mut self, mut sec: Section) -> Option<NetworkRead> {
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
                tunnel: None,
            },
        })
    }

    pub(super) fn lan(&mut self, sec: Option<Section>) -> (Lan, Option<Ipv4Net>) {
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

    pub(super) fn wan(&mut self, sec: Option<Section>, manage: bool) -> WanRead {
        let dhcp = WanRead {
            value: Wan {
                interface: None,
                addressing: WanAddressing::Dhcp {
                    release_on_shutdown: schema::WAN_RELEASE.bool(),
                },
                upload_kbit: None,
                download_kbit: None,
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
        let rate_help = "write the line's speed with its unit, e.g. \"20mbit\" or \"800kbit\"";
        let upload = sec.parsed(self.sink, schema::WAN_UPLOAD.key(), rate_help, parse_rate);
        let download = sec.parsed(self.sink, schema::WAN_DOWNLOAD.key(), rate_help, parse_rate);
        let path = sec.path.clone();
        let mut out = WanRead {
            value: Wan {
                interface: interface.clone(),
                addressing: WanAddressing::Dhcp {
                    release_on_shutdown: release,
                },
                upload_kbit: upload.map(|u| u.value),
                download_kbit: download.map(|d| d.value),
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
}

pub(super) fn placeholder_network() -> Network {
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
            upload_kbit: None,
            download_kbit: None,
        },
        lan: Lan {
            interface: None,
            net: Ipv4Net {
                address: Ipv4Addr::new(192, 168, 1, 1),
                prefix: 24,
            },
            gateway: None,
        },
        tunnel: None,
    }
}

/// A line speed in kbit/s: a number and its unit (`kbit`, `mbit`, `gbit`; `k`, `m`,
/// `g` alone too), at least 64 kbit/s.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let digits = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let n: f64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a speed like 20mbit"))?;
    let factor = match unit
        .trim()
        .trim_end_matches("/s")
        .trim_end_matches("bps")
        .trim_end_matches("bit")
    {
        "k" => 1.0,
        "m" => 1_000.0,
        "g" => 1_000_000.0,
        _ => return Err(format!("`{s}` needs a unit: kbit, mbit or gbit")),
    };
    let kbit = n * factor;
    if !(64.0..=100_000_000.0).contains(&kbit) {
        return Err(format!("`{s}` is not a line speed (64kbit to 100gbit)"));
    }
    // In range: the cast cannot overflow.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(kbit.round() as u64)
}
