//! `[dhcp]`: the pool, lease times and reservations.

use super::*;

impl Loader<'_, '_> {
    pub(super) fn dhcp(&mut self, sec: Option<Section>, lan: Option<Ipv4Net>) -> Spanned<Dhcp> {
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
}
