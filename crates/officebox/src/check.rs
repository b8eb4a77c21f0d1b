//! `officebox check`: validate a config and print what officebox derives from it.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use officebox_config::derive::{self, ClientZone};
use officebox_config::values::format_duration;
use officebox_config::{Config, LoadError, WanAddressing};

pub fn check(path: &Path) -> Result<ExitCode> {
    match officebox_config::load(path) {
        Ok(config) => {
            print!("{}", summary(&config));
            for advice in derive::advice(&config) {
                eprintln!("{}: warning: {advice}", path.display());
            }
            println!("{}: ok", path.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(LoadError::Invalid(diags)) => {
            eprintln!("{diags}");
            eprintln!("{}: {} problem(s)", path.display(), diags.0.len());
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e.into()),
    }
}

fn on(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

/// The effective settings, in the order of the admin pages.
pub fn summary(c: &Config) -> String {
    let mut o = String::new();
    let n = &c.network;
    let mode = c.security.mode;
    let _ = writeln!(
        o,
        "host      {}.{} (manage host networking: {})",
        n.hostname,
        n.domain,
        on(n.manage)
    );
    let _ = writeln!(
        o,
        "lan       {} address {} netmask {}",
        n.lan.net,
        n.lan.net.address,
        n.lan.net.netmask()
    );
    match &n.wan.addressing {
        WanAddressing::Static { net, gateway } => {
            let _ = writeln!(
                o,
                "wan       static {} address {} gateway {}",
                net, net.address, gateway
            );
        }
        WanAddressing::Dhcp { .. } => {
            let _ = writeln!(o, "wan       dhcp (address leased from the ISP)");
        }
    }
    let _ = writeln!(
        o,
        "security  {} (forwarding {}, NAT {}, firewall {}, stealth WAN {})",
        mode.name(),
        on(derive::forwarding_enabled(mode)),
        on(derive::nat_enabled(mode)),
        on(derive::firewall_enabled(mode)),
        on(derive::wan_address_firewalled(mode)),
    );
    for f in &c.security.forwards {
        let protos: Vec<&str> = f.protocols.iter().map(|p| p.name()).collect();
        let _ = writeln!(
            o,
            "forward   {} wan port {} -> {}:{}",
            protos.join("+"),
            f.wan_port,
            f.host,
            f.port
        );
    }
    if c.dhcp.enabled {
        let pool = derive::dhcp_pool(&n.lan, &c.dhcp);
        let opts = derive::dhcp_options(c);
        let _ = writeln!(
            o,
            "dhcp      pool {}-{} ({} addresses), lease {}, {} reservation(s)",
            pool.first,
            pool.last,
            pool.size(),
            format_duration(c.dhcp.lease_time),
            c.dhcp.reservations.len()
        );
        let dns: Vec<String> = opts.dns.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            o,
            "          options: netmask {}, router {}, dns {}, domain {}, ntp {}",
            opts.netmask,
            opts.router.map_or("(none)".to_string(), |r| r.to_string()),
            if dns.is_empty() {
                "(none)".to_string()
            } else {
                dns.join(" ")
            },
            opts.domain,
            opts.ntp.map_or("(none)".to_string(), |t| t.to_string())
        );
    } else {
        let _ = writeln!(o, "dhcp      off");
    }
    let wan = derive::static_wan_address(n);
    if c.dns.enabled {
        let upstream = match (c.dns.use_upstream, c.dns.primary, c.dns.secondary) {
            (false, ..) => "stand-alone (unknown names: authoritative NXDOMAIN)".to_string(),
            (true, Some(p), Some(s)) => format!("forward to {p}, then {s}"),
            (true, Some(p), None) => format!("forward to {p}"),
            (true, None, _) => "forward (no server)".to_string(),
        };
        let _ = writeln!(
            o,
            "dns       zone {}, {}; recursion for LAN and loopback only",
            n.domain, upstream
        );
        let (pref, mx) = derive::zone_mx(n);
        let _ = writeln!(o, "          MX {pref} {mx}; NS {}", derive::zone_ns(n));
        for b in derive::builtin_names(n, wan) {
            let addrs: Vec<String> = b.addresses.iter().map(ToString::to_string).collect();
            let _ = writeln!(o, "          {} -> {}", b.name, addrs.join(" "));
        }
        if wan.is_none() && derive::wan_in_use(mode) {
            let _ = writeln!(
                o,
                "          (the WAN address is known once leased; www and wan then point at it)"
            );
        }
        let _ = writeln!(o, "          {} static record(s)", c.dns.records.len());
    }
    let _ = writeln!(
        o,
        "mail      relay for LAN, loopback and authenticated users; from the WAN: {}",
        if derive::relay_allowed(c, ClientZone::Wan) {
            "ON (open relay!)"
        } else {
            "no"
        }
    );
    let resolvers: Vec<String> = derive::mail_resolvers(c)
        .iter()
        .map(ToString::to_string)
        .collect();
    let _ = writeln!(
        o,
        "          other domains' mail servers found through: {}",
        if resolvers.is_empty() {
            "nothing (no upstream DNS): mail for other domains waits in the queue".to_string()
        } else {
            resolvers.join(", ")
        }
    );
    let fetched = c.users.iter().map(|u| u.pop3.len()).sum::<usize>()
        + usize::from(c.mail.catch_all.is_some());
    if fetched > 0 {
        let _ = writeln!(
            o,
            "          {fetched} ISP mailbox(es) fetched{}",
            if c.mail.catch_all.is_some() {
                ", one of them the catch-all"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(
        o,
        "users     {}",
        c.users
            .iter()
            .map(|u| u.login.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(o, "listening");
    for l in derive::listeners(c) {
        let addrs: Vec<String> = derive::bind_addresses(c, l.service)
            .iter()
            .map(ToString::to_string)
            .collect();
        let wan_open = derive::wan_open_ports(c).contains(&l);
        let _ = writeln!(
            o,
            "          {:<10} {} {:<5} on {}{}",
            l.service.name(),
            l.protocol.name(),
            l.port,
            addrs.join(" "),
            if wan_open { " (open to the WAN)" } else { "" }
        );
    }
    o
}
