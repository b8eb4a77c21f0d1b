//! `[security]`: the mode, the services open to the WAN, and port forwards.

use super::*;

impl Loader<'_, '_> {
    pub(super) fn security(&mut self, sec: Option<Section>, lan: Option<Ipv4Net>) -> SecurityRead {
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

    pub(super) fn forward(
        &mut self,
        f: &mut Section,
        lan: Option<Ipv4Net>,
    ) -> Option<Spanned<Forward>> {
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

    pub(super) fn check_forwards(
        &mut self,
        forwards: &[Spanned<Forward>],
        wan_services: &[Spanned<Service>],
    ) {
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
}
