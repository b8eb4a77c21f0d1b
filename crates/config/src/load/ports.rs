//! Every service's port, read once and checked against the others'.

use super::*;

impl Loader<'_, '_> {
    /// Reads one service's port (or takes its default) and remembers where it was set,
    /// for the port-collision check.
    pub(super) fn port_setting(
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
    pub(super) fn check_ports(&mut self, enabled: impl Fn(Service) -> bool) {
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

impl Loader<'_, '_> {
    /// The tunnels' UDP port, when they are on, is no other service's.
    pub(super) fn check_vpn_port(
        &mut self,
        config: &Config,
        at: Option<crate::read::Spanned<u16>>,
    ) {
        if !config.vpn.enabled {
            return;
        }
        let port = config.vpn.listen_port;
        let clash = self.ports.iter().find(|p| {
            p.port == port
                && service_enabled(config, p.service)
                && p.service.protocols().contains(&Protocol::Udp)
        });
        match (clash, at) {
            (Some(p), Some(at)) => self.sink.error(
                &at.span,
                "vpn.listen_port",
                format!(
                    "UDP port {port} is already used by {} ({})",
                    p.service.name(),
                    p.path
                ),
                "give the tunnels their own port, e.g. 51820",
            ),
            // The tunnels' port is the default: the other setting is the one to change.
            (Some(p), None) => self.sink.error(
                &p.span,
                p.path.clone(),
                format!("UDP port {port} is the tunnels' (vpn.listen_port)"),
                "give this service another port, or the tunnels another vpn.listen_port",
            ),
            (None, _) => {}
        }
    }
}
