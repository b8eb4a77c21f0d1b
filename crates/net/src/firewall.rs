//! The nftables ruleset for each security mode, rendered from the config as readable text.
//!
//! officebox owns one table, `inet officebox`, and nothing else on the host. The text is
//! applied in one `nft -f` transaction that first deletes the table and then declares it
//! again, so a mode switch is atomic: the old rules hold until the new ones do.
//!
//! - lan-only: officebox is a LAN host. No forwarding and no NAT; the WAN interface (when
//!   one is named) is down without an address, and whatever still arrives on it is dropped.
//! - router: the kernel routes between LAN and WAN unfiltered, without NAT; only officebox's
//!   own WAN side is guarded (the services in `wan_services` answer, others are rejected),
//!   so the admin pages never face the WAN.
//! - firewall-nat: stateful. LAN -> WAN is allowed and masqueraded; WAN -> LAN only through
//!   the configured forwards (DNAT, with hairpin for LAN PCs using the public address);
//!   officebox's own WAN services are reachable, everything else on the WAN is rejected.
//! - firewall-nat-dmz: the same, but officebox's own WAN address answers only the listed
//!   services and silently drops the rest (stealth), with ICMP rate limits and invalid
//!   packets dropped.
//!
//! In every mode but lan-only, two guards stand on the WAN side:
//! - anti-spoofing, before connection tracking and NAT see a packet: one arriving on the
//!   WAN from a LAN address, one of the box's own, a martian (0/8, 127/8, 169.254/16,
//!   multicast, 240/4) or any address the WAN is not the way back to (reverse path), is
//!   dropped and counted (`nft list counter inet officebox spoofed`). The services classify
//!   clients by source address, so a forged LAN source must never reach them;
//! - SYN limits per source address (a dynamic set, not one global limit): one flooder
//!   is held back without slowing anyone else.
//!
//! The SIP port also answers the listed addresses of each enabled SIP trunk's provider,
//! whatever `wan_services` says (an IP trunk's provider calls in without a registration
//! that would have opened the way), and with a trunk the RTP ports are open on the WAN
//! (the provider's media may come from anywhere, and first).

use std::fmt::Write as _;

use officebox_config::derive::{nat_enabled, wan_address_firewalled, wan_open_ports};
use officebox_config::model::PeerAccess;
use officebox_config::{Config, Protocol, SecurityMode};

/// The name of officebox's table.
pub const TABLE: &str = "officebox";

/// Why a ruleset cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("network.{0}.interface is not set; the firewall needs to know which port is which")]
    NoInterface(&'static str),
}

/// New connections per second one source may open to the box's own WAN services (after
/// a burst of twice that); more are dropped. No mail server, phone or browser comes near.
const SYN_RATE: u32 = 50;
const SYN_BURST: u32 = 100;

/// Whether IPv4 forwarding is on in `mode`.
pub fn ip_forward(mode: SecurityMode) -> bool {
    officebox_config::derive::forwarding_enabled(mode)
}

fn protos(list: &[Protocol]) -> Vec<&'static str> {
    list.iter().map(|p| p.name()).collect()
}

/// SIP from the addresses of each enabled trunk's provider reaches the box's SIP port,
/// whatever `wan_services` says: an IP trunk never registers, so no connection tracking
/// entry lets its provider's calls in. The rule names those addresses, so nobody else
/// gains anything from it.
fn trunk_rules(o: &mut String, config: &Config) {
    if !config.phone.enabled {
        return;
    }
    let port = config.phone.sip_port;
    for (i, t) in config
        .phone
        .trunks
        .iter()
        .enumerate()
        .filter(|(_, t)| t.enabled)
    {
        for (family, v4) in [("ip", true), ("ip6", false)] {
            let list: Vec<String> = t
                .addresses
                .iter()
                .filter(|a| a.address.is_ipv4() == v4)
                .map(ToString::to_string)
                .collect();
            if list.is_empty() {
                continue;
            }
            // The trunk is named by its place in the file: a name is free text.
            let _ = writeln!(
                o,
                "        {family} saddr {{ {} }} meta l4proto {{ tcp, udp }} th dport {port} accept comment \"phone.trunks[{i}]: the provider's calls\"",
                list.join(", ")
            );
        }
    }
    // The audio of calls over a trunk comes from the provider's media servers, which may
    // be anywhere and may speak first (early media: ringback, announcements), before the
    // box has sent anything that connection tracking would let answers back through. A
    // port in the range is open only while a call holds it, and its relay takes packets
    // from one source only.
    if config.phone.trunks.iter().any(|t| t.enabled) {
        let (lo, hi) = config.phone.rtp_ports;
        let _ = writeln!(
            o,
            "        udp dport {lo}-{hi} accept comment \"phone.rtp_ports: the audio of calls over the trunks\""
        );
    }
}

/// Renders the whole ruleset for `config` (the text given to `nft -f`).
pub fn render(config: &Config) -> Result<String, RenderError> {
    let mode = config.security.mode;
    let mut o = String::new();
    let _ = writeln!(o, "# officebox firewall: security mode {}", mode.name());
    let _ = writeln!(
        o,
        "# Generated from the config; officebox replaces this table as a whole."
    );
    // Declare, then delete, then declare again: works whether or not the table exists.
    let _ = writeln!(o, "table inet {TABLE}");
    let _ = writeln!(o, "delete table inet {TABLE}");
    if mode == SecurityMode::LanOnly {
        let _ = writeln!(o, "table inet {TABLE} {{");
        if config.vpn.enabled {
            // The sites' and devices' addresses come only through the tunnels here too
            // (a site's call is known by its address).
            let _ = writeln!(o, "    counter spoofed {{ }}");
            let _ = writeln!(o, "    chain antispoof {{");
            let _ = writeln!(
                o,
                "        type filter hook prerouting priority raw; policy accept;"
            );
            tunnel_antispoof(&mut o, config);
            let _ = writeln!(o, "    }}");
        }
        if let Some(wan) = config.network.wan.interface.as_deref() {
            let _ = writeln!(o, "    chain input {{");
            let _ = writeln!(
                o,
                "        type filter hook input priority filter; policy accept;"
            );
            let _ = writeln!(
                o,
                "        iifname \"{wan}\" drop comment \"lan-only: the WAN is not used\""
            );
            let _ = writeln!(o, "    }}");
        }
        let _ = writeln!(o, "    chain forward {{");
        let _ = writeln!(
            o,
            "        type filter hook forward priority filter; policy drop;"
        );
        let _ = writeln!(o, "    }}");
        let _ = writeln!(o, "}}");
        return Ok(o);
    }
    let wan = config
        .network
        .wan
        .interface
        .as_deref()
        .ok_or(RenderError::NoInterface("wan"))?;
    let lan = config
        .network
        .lan
        .interface
        .as_deref()
        .ok_or(RenderError::NoInterface("lan"))?;
    let lan_net = config.network.lan.net;
    let lan_addr = lan_net.address;
    let dmz = wan_address_firewalled(mode);

    let _ = writeln!(o, "table inet {TABLE} {{");
    let _ = writeln!(o, "    counter spoofed {{");
    let _ = writeln!(
        o,
        "        comment \"packets on the WAN with a source that cannot come from there\""
    );
    let _ = writeln!(o, "    }}");
    let _ = writeln!(o, "    counter syn_flood {{");
    let _ = writeln!(
        o,
        "        comment \"new connections dropped: one source over its rate\""
    );
    let _ = writeln!(o, "    }}");
    let _ = writeln!(o, "    set syn_v4 {{");
    let _ = writeln!(
        o,
        "        type ipv4_addr; size 65536; flags dynamic,timeout; timeout 1m;"
    );
    let _ = writeln!(o, "    }}");
    let _ = writeln!(o, "    set syn_v6 {{");
    let _ = writeln!(
        o,
        "        type ipv6_addr; size 65536; flags dynamic,timeout; timeout 1m;"
    );
    let _ = writeln!(o, "    }}");

    // ------------------------------------------------------------- antispoof
    let _ = writeln!(o, "    chain antispoof {{");
    let _ = writeln!(
        o,
        "        type filter hook prerouting priority raw; policy accept;"
    );
    if config.vpn.enabled {
        // The ISP's DHCP server may sit in a network a site also uses.
        let _ = writeln!(
            o,
            "        iifname \"{wan}\" udp sport 67 udp dport 68 accept comment \"the ISP's DHCP server\""
        );
        tunnel_antispoof(&mut o, config);
    }
    let _ = writeln!(o, "        iifname != \"{wan}\" accept");
    let _ = writeln!(
        o,
        "        ip saddr {{ {lan_net}, 0.0.0.0/8, 127.0.0.0/8, 169.254.0.0/16, 224.0.0.0/4, 240.0.0.0/4 }} counter name \"spoofed\" drop"
    );
    let _ = writeln!(
        o,
        "        ip6 saddr {{ ::1, ::ffff:0.0.0.0/96, ff00::/8 }} counter name \"spoofed\" drop"
    );
    let _ = writeln!(
        o,
        "        fib saddr type {{ local, broadcast, multicast }} counter name \"spoofed\" drop comment \"the box's own addresses\""
    );
    let _ = writeln!(
        o,
        "        udp sport 67 udp dport 68 accept comment \"the ISP's DHCP server, before there is a route back\""
    );
    let _ = writeln!(
        o,
        "        meta nfproto ipv4 fib saddr . iif oif missing counter name \"spoofed\" drop comment \"reverse path\""
    );
    let _ = writeln!(o, "    }}");

    if config.vpn.enabled {
        // The box's own packets for a site or a device (SIP, DNS) never leave in the
        // clear: without the tunnel's route they would take the default one.
        let _ = writeln!(o, "    chain output {{");
        let _ = writeln!(
            o,
            "        type filter hook output priority filter; policy accept;"
        );
        let _ = writeln!(
            o,
            "        oifname \"{wan}\" ip daddr {} drop comment \"the sites and devices only through the tunnels\"",
            nft_set(&tunnel_networks(config))
        );
        let _ = writeln!(o, "    }}");
    }

    // ---------------------------------------------------------------- input
    let _ = writeln!(o, "    chain input {{");
    let _ = writeln!(
        o,
        "        type filter hook input priority filter; policy accept;"
    );
    let _ = writeln!(o, "        iifname \"lo\" accept");
    let _ = writeln!(o, "        iifname \"{lan}\" accept");
    let _ = writeln!(o, "        iifname != \"{wan}\" accept");
    if dmz {
        let _ = writeln!(o, "        ct state invalid drop");
    }
    let _ = writeln!(o, "        ct state established,related accept");
    let _ = writeln!(
        o,
        "        udp sport 67 udp dport 68 accept comment \"the WAN DHCP client\""
    );
    let mut tcp_ports: Vec<u16> = Vec::new();
    let mut udp_ports: Vec<u16> = Vec::new();
    for l in wan_open_ports(config) {
        match l.protocol {
            Protocol::Tcp => tcp_ports.push(l.port),
            Protocol::Udp => udp_ports.push(l.port),
        }
    }
    tcp_ports.sort_unstable();
    tcp_ports.dedup();
    udp_ports.sort_unstable();
    udp_ports.dedup();
    let set = |ports: &[u16]| -> String {
        let list: Vec<String> = ports.iter().map(u16::to_string).collect();
        if list.len() == 1 {
            list[0].clone()
        } else {
            format!("{{ {} }}", list.join(", "))
        }
    };
    if !tcp_ports.is_empty() {
        // Per source: an IPv6 client by its /64, as one site has a whole /64.
        let _ = writeln!(
            o,
            "        tcp flags & (syn | ack) == syn update @syn_v4 {{ ip saddr limit rate over {SYN_RATE}/second burst {SYN_BURST} packets }} counter name \"syn_flood\" drop comment \"SYN flood from one address\""
        );
        let _ = writeln!(
            o,
            "        tcp flags & (syn | ack) == syn update @syn_v6 {{ ip6 saddr & ffff:ffff:ffff:ffff:: limit rate over {SYN_RATE}/second burst {SYN_BURST} packets }} counter name \"syn_flood\" drop comment \"SYN flood from one /64\""
        );
    }
    if dmz {
        let _ = writeln!(
            o,
            "        icmp type echo-request limit rate 5/second burst 10 packets accept"
        );
        let _ = writeln!(o, "        icmp type echo-request drop");
        let _ = writeln!(
            o,
            "        icmp type {{ destination-unreachable, time-exceeded, parameter-problem }} accept"
        );
    } else {
        let _ = writeln!(
            o,
            "        icmp type {{ echo-request, destination-unreachable, time-exceeded, parameter-problem }} accept"
        );
    }
    let _ = writeln!(
        o,
        "        icmpv6 type {{ destination-unreachable, packet-too-big, time-exceeded, parameter-problem, nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert }} accept"
    );
    if !tcp_ports.is_empty() {
        let _ = writeln!(
            o,
            "        tcp dport {} accept comment \"officebox services on the WAN\"",
            set(&tcp_ports)
        );
    }
    if !udp_ports.is_empty() {
        let _ = writeln!(
            o,
            "        udp dport {} accept comment \"officebox services on the WAN\"",
            set(&udp_ports)
        );
    }
    trunk_rules(&mut o, config);
    if let Some(port) = officebox_config::derive::vpn_wan_port(config) {
        let _ = writeln!(
            o,
            "        udp dport {port} accept comment \"the tunnels to the other sites (WireGuard answers only known keys)\""
        );
    }
    if dmz {
        let _ = writeln!(
            o,
            "        drop comment \"stealth: everything else is silently dropped\""
        );
    } else {
        let _ = writeln!(o, "        meta l4proto tcp reject with tcp reset");
        let _ = writeln!(o, "        reject");
    }
    let _ = writeln!(o, "    }}");

    if !nat_enabled(mode) {
        // Router: officebox's own WAN side is guarded; routed traffic is not, except
        // what comes out of the tunnels (each remote device's limits hold in every mode).
        if config.vpn.enabled {
            let tunnel = officebox_config::derive::VPN_INTERFACE;
            let _ = writeln!(o, "    chain forward {{");
            let _ = writeln!(
                o,
                "        type filter hook forward priority filter; policy accept;"
            );
            tunnel_in_rules(&mut o, config, lan, wan);
            let _ = writeln!(o, "        ct state established,related accept");
            tunnel_out_rules(&mut o, config, lan, wan);
            let _ = writeln!(
                o,
                "        oifname \"{tunnel}\" drop comment \"only the office reaches the tunnels\""
            );
            let _ = writeln!(o, "    }}");
            tunnel_masquerade(&mut o, config, wan);
        }
        let _ = writeln!(o, "}}");
        return Ok(o);
    }

    // ---------------------------------------------------------------- forward
    let _ = writeln!(o, "    chain forward {{");
    let _ = writeln!(
        o,
        "        type filter hook forward priority filter; policy drop;"
    );
    if dmz {
        let _ = writeln!(o, "        ct state invalid drop");
    }
    tunnel_in_rules(&mut o, config, lan, wan);
    let _ = writeln!(o, "        ct state established,related accept");
    tunnel_out_rules(&mut o, config, lan, wan);
    let _ = writeln!(
        o,
        "        iifname \"{lan}\" oifname \"{wan}\" accept comment \"the office reaches the Internet\""
    );
    let _ = writeln!(
        o,
        "        iifname \"{lan}\" oifname \"{lan}\" accept comment \"hairpin\""
    );
    let _ = writeln!(o, "        ct status dnat accept comment \"port forwards\"");
    let _ = writeln!(o, "    }}");

    // ---------------------------------------------------------------- nat
    let _ = writeln!(o, "    chain prerouting {{");
    let _ = writeln!(
        o,
        "        type nat hook prerouting priority dstnat; policy accept;"
    );
    for f in &config.security.forwards {
        let label = f
            .name
            .as_deref()
            .map(|n| format!(" comment \"{}\"", n.replace('"', "'")))
            .unwrap_or_default();
        for p in protos(&f.protocols) {
            let _ = writeln!(
                o,
                "        iifname \"{wan}\" fib daddr type local {p} dport {} dnat ip to {}:{}{label}",
                f.wan_port, f.host, f.port
            );
            // Hairpin: a LAN PC using the public address reaches the LAN device too.
            let _ = writeln!(
                o,
                "        iifname \"{lan}\" fib daddr type local ip daddr != {lan_addr} {p} dport {} dnat ip to {}:{}{label}",
                f.wan_port, f.host, f.port
            );
        }
    }
    let _ = writeln!(o, "    }}");
    let _ = writeln!(o, "    chain postrouting {{");
    let _ = writeln!(
        o,
        "        type nat hook postrouting priority srcnat; policy accept;"
    );
    let _ = writeln!(o, "        oifname \"{wan}\" masquerade");
    let _ = writeln!(
        o,
        "        iifname \"{lan}\" oifname \"{lan}\" ip saddr {lan_net} ct status dnat masquerade comment \"hairpin replies come back through officebox\""
    );
    let _ = writeln!(o, "    }}");
    let _ = writeln!(o, "}}");
    Ok(o)
}

/// An nft set of addresses or networks (`{ a, b }`, or the one alone).
fn nft_set(items: &[String]) -> String {
    match items {
        [one] => one.clone(),
        _ => format!("{{ {} }}", items.join(", ")),
    }
}

/// The enabled sites' subnets, as nft set elements.
fn site_networks(config: &Config) -> Vec<String> {
    config
        .vpn
        .sites
        .iter()
        .filter(|s| s.enabled)
        .flat_map(|s| {
            s.subnets
                .iter()
                .map(|n| format!("{}/{}", n.network(), n.prefix))
        })
        .collect()
}

/// The networks only the tunnels carry: the enabled sites' subnets and the tunnels' own
/// (the devices'), as nft set elements.
fn tunnel_networks(config: &Config) -> Vec<String> {
    let mut nets = site_networks(config);
    let own = config.vpn.address;
    nets.push(format!("{}/{}", own.network(), own.prefix));
    nets
}

/// The sites' and devices' addresses arriving anywhere but through the tunnel (or from
/// the box itself) are spoofed.
fn tunnel_antispoof(o: &mut String, config: &Config) {
    let _ = writeln!(
        o,
        "        iifname != {{ \"{}\", \"lo\" }} ip saddr {} counter name \"spoofed\" drop comment \"the sites' and devices' addresses come only through the tunnels\"",
        officebox_config::derive::VPN_INTERFACE,
        nft_set(&tunnel_networks(config))
    );
}

/// What comes out of the tunnels (with `vpn.enabled`), judged packet by packet before
/// connection tracking lets anything through: replies to what the office started pass;
/// otherwise each site's subnets reach the LAN, each remote device what its `access`
/// says (the whole LAN, or the hosts listed: the box itself is its input, open to the
/// tunnel) and, on a full tunnel, the Internet; the rest is dropped. So a device's
/// narrowed access or removal holds for its open connections too. The source a packet
/// claims was checked by the tunnel (a peer sends only from its own addresses).
fn tunnel_in_rules(o: &mut String, config: &Config, lan: &str, wan: &str) {
    if !config.vpn.enabled {
        return;
    }
    let tunnel = officebox_config::derive::VPN_INTERFACE;
    let _ = writeln!(
        o,
        "        iifname \"{tunnel}\" ct direction reply ct state established,related accept comment \"replies to the office\""
    );
    let sites = site_networks(config);
    if !sites.is_empty() {
        let _ = writeln!(
            o,
            "        iifname \"{tunnel}\" oifname \"{lan}\" ip saddr {} accept comment \"the other sites reach the office\"",
            nft_set(&sites)
        );
    }
    let peers = || config.vpn.peers.iter().filter(|p| p.enabled);
    let whole: Vec<String> = peers()
        .filter(|p| p.access == PeerAccess::Lan)
        .map(|p| p.address.to_string())
        .collect();
    if !whole.is_empty() {
        let _ = writeln!(
            o,
            "        iifname \"{tunnel}\" oifname \"{lan}\" ip saddr {} accept comment \"remote devices that may reach the LAN\"",
            nft_set(&whole)
        );
    }
    for p in peers() {
        if let PeerAccess::Hosts(hosts) = &p.access
            && !hosts.is_empty()
        {
            let list: Vec<String> = hosts.iter().map(ToString::to_string).collect();
            let _ = writeln!(
                o,
                "        iifname \"{tunnel}\" oifname \"{lan}\" ip saddr {} ip daddr {} accept comment \"{}: the hosts it may reach\"",
                p.address,
                nft_set(&list),
                p.name
            );
        }
    }
    let full: Vec<String> = peers()
        .filter(|p| p.full_tunnel)
        .map(|p| p.address.to_string())
        .collect();
    if !full.is_empty() {
        let _ = writeln!(
            o,
            "        iifname \"{tunnel}\" oifname \"{wan}\" ip saddr {} accept comment \"remote devices on a full tunnel reach the Internet\"",
            nft_set(&full)
        );
    }
    let _ = writeln!(
        o,
        "        iifname \"{tunnel}\" drop comment \"nothing else from the tunnels\""
    );
}

/// What goes into the tunnels: the office reaches the sites and the devices; nothing for
/// them leaves on the WAN in the clear (while the tunnel's routes are not there yet, say).
fn tunnel_out_rules(o: &mut String, config: &Config, lan: &str, wan: &str) {
    if !config.vpn.enabled {
        return;
    }
    let tunnel = officebox_config::derive::VPN_INTERFACE;
    let _ = writeln!(
        o,
        "        oifname \"{wan}\" ip daddr {} drop comment \"the sites and devices only through the tunnels\"",
        nft_set(&tunnel_networks(config))
    );
    let _ = writeln!(
        o,
        "        iifname \"{lan}\" oifname \"{tunnel}\" accept comment \"the office reaches the other sites and the remote devices\""
    );
}

/// Router mode has no NAT for the LAN, but a remote device on a full tunnel has an
/// address only the box knows: it leaves the WAN as the box.
fn tunnel_masquerade(o: &mut String, config: &Config, wan: &str) {
    if !config.vpn.peers.iter().any(|p| p.enabled && p.full_tunnel) {
        return;
    }
    let net = config.vpn.address;
    let _ = writeln!(o, "    chain postrouting {{");
    let _ = writeln!(
        o,
        "        type nat hook postrouting priority srcnat; policy accept;"
    );
    let _ = writeln!(
        o,
        "        oifname \"{wan}\" ip saddr {}/{} masquerade comment \"remote devices on a full tunnel\"",
        net.network(),
        net.prefix
    );
    let _ = writeln!(o, "    }}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lan_only_renders_an_empty_table() {
        let c = officebox_config::parse(
            "t.toml",
            "[network]\ndomain = \"example.com\"\nmanage = false\n[security]\nmode = \"lan-only\"\n[dns]\nuse_upstream = false\n[web]\nenabled = false\n",
        )
        .unwrap();
        let text = render(&c).unwrap();
        assert!(
            !text.contains("chain input"),
            "no WAN named, nothing to drop:\n{text}"
        );
        assert!(
            text.contains("policy drop"),
            "nothing is forwarded:\n{text}"
        );
        assert!(ip_forward(SecurityMode::Router) && !ip_forward(SecurityMode::LanOnly));
    }

    #[test]
    fn the_tunnels_open_their_port_on_the_wan_and_let_each_site_and_device_reach_its_share() {
        let file = |mode: &str, vpn: bool| {
            officebox_config::parse(
                "t.toml",
                &format!(
                    "[network]\ndomain = \"example.com\"\nmanage = false\n\
                     [network.wan]\ninterface = \"wan0\"\nmode = \"dhcp\"\n[network.lan]\ninterface = \"lan0\"\n\
                     [security]\nmode = \"{mode}\"\n[dns]\nuse_upstream = false\n[web]\nenabled = false\n\
                     [vpn]\nenabled = {vpn}\nlisten_port = 51999\n\
                     [[vpn.sites]]\nname = \"branch\"\n\
                     public_key = \"hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=\"\nsubnets = [\"192.168.2.0/24\"]\n\
                     [[vpn.peers]]\nname = \"alice-laptop\"\nuser = \"admin\"\naddress = \"10.99.0.10\"\ntunnel = \"full\"\n\
                     [[vpn.peers]]\nname = \"kiosk\"\nuser = \"admin\"\naddress = \"10.99.0.11\"\n\
                     access = \"box\"\nhosts = [\"192.168.1.20\"]\n\
                     [[vpn.peers]]\nname = \"old\"\nuser = \"admin\"\naddress = \"10.99.0.12\"\nenabled = false\n\
                     [[users]]\nlogin = \"admin\"\npassword = \"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA\"\nadmin = true\n"
                ),
            )
            .unwrap()
        };
        for mode in ["firewall-nat", "firewall-nat-dmz", "router"] {
            let on = render(&file(mode, true)).unwrap();
            for rule in [
                "udp dport 51999 accept",
                "iifname \"lan0\" oifname \"obx-wg0\" accept",
                "iifname \"obx-wg0\" oifname \"lan0\" ip saddr 192.168.2.0/24 accept",
                "iifname \"obx-wg0\" oifname \"lan0\" ip saddr 10.99.0.10 accept",
                "iifname \"obx-wg0\" oifname \"lan0\" ip saddr 10.99.0.11 ip daddr 192.168.1.20 accept",
                "iifname \"obx-wg0\" oifname \"wan0\" ip saddr 10.99.0.10 accept",
            ] {
                assert!(on.contains(rule), "{mode}: no {rule}:\n{on}");
            }
            // Their addresses from anywhere but the tunnel are spoofed; nothing for them
            // leaves on the WAN; replies pass before the per-device rules, all else not.
            for rule in [
                "iifname != { \"obx-wg0\", \"lo\" } ip saddr { 192.168.2.0/24, 10.99.0.0/24 } counter name \"spoofed\" drop",
                "oifname \"wan0\" ip daddr { 192.168.2.0/24, 10.99.0.0/24 } drop",
                "iifname \"obx-wg0\" ct direction reply ct state established,related accept",
                "iifname \"obx-wg0\" drop",
            ] {
                assert!(on.contains(rule), "{mode}: no {rule}:\n{on}");
            }
            let forward = on.find("chain forward").unwrap();
            let device_rule = on.find("ip saddr 10.99.0.11 ip daddr").unwrap();
            let established = forward
                + on[forward..]
                    .find("        ct state established,related accept")
                    .unwrap();
            assert!(
                device_rule < established,
                "{mode}: judged after conntrack:\n{on}"
            );
            // No catch-all from the tunnel, and nothing for a device that is off.
            assert!(
                !on.contains("iifname \"obx-wg0\" oifname \"lan0\" accept")
                    && !on.contains("10.99.0.12"),
                "{on}"
            );
            // Nothing else opens: off, the ruleset has none of it.
            let off = render(&file(mode, false)).unwrap();
            assert!(!off.contains("51999") && !off.contains("obx-wg0"), "{off}");
        }
        // lan-only: a site's address from the LAN is spoofed there too.
        let lan_only = render(&file("lan-only", true)).unwrap();
        assert!(
            lan_only.contains("iifname != { \"obx-wg0\", \"lo\" } ip saddr"),
            "{lan_only}"
        );
        // Router mode: what the tunnels carry is limited too, and a full tunnel leaves as
        // the box.
        let router = render(&file("router", true)).unwrap();
        assert!(
            router.contains("oifname \"obx-wg0\" drop")
                && router.contains("oifname \"wan0\" ip saddr 10.99.0.0/24 masquerade"),
            "{router}"
        );
    }
}
