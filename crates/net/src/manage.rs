//! When `network.manage` is on, officebox sets up the host's network side itself: the LAN
//! and WAN interfaces (through netlink), IP forwarding per security mode, and the firewall
//! ruleset (checked with `nft -c`, then applied with `nft -f` as one transaction).
//!
//! Everything is idempotent: applying the same config twice changes nothing. A change that
//! fails on reload leaves the previous setup in place (nft applies all or nothing) and is
//! logged; failing at start stops officebox rather than run a router without its firewall.
//! On shutdown the setup stays: the office keeps its network while officebox restarts.

use std::io;
use std::net::Ipv4Addr;
use std::process::Stdio;
use std::sync::Arc;

use officebox_config::values::Ipv4Net;
use officebox_config::{Config, WanAddressing};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::firewall;
use officebox_sockets::netlink::Netlink;

/// The interfaces and routes a config asks for: the state a fresh start in its mode
/// gives. Every apply, at start or on a reload from any other mode, converges on it, so
/// a mode switch ends exactly where a fresh start would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The LAN interface and its address.
    pub lan: Option<(String, Ipv4Net)>,
    pub wan: WanPlan,
    pub default_route: DefaultRoute,
}

/// What the WAN interface carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WanPlan {
    /// No WAN interface named.
    None,
    /// lan-only: the WAN is not used. The interface is down and has no IPv4 address, so
    /// nothing of the box answers there, whatever listens on 0.0.0.0.
    Unused(String),
    /// Up with exactly this address (others officebox finds there are removed).
    Static { interface: String, net: Ipv4Net },
    /// Up; the WAN DHCP client puts its leased address there.
    Dhcp(String),
}

/// Where the box's own default route points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultRoute {
    /// Through this gateway (the ISP's, or the LAN's own router in lan-only mode); other
    /// default routes are removed.
    Via(Ipv4Addr),
    /// The WAN DHCP client sets it; a default route left on the LAN side is removed.
    Dhcp,
    /// None through officebox's interfaces (lan-only without a LAN gateway).
    None,
}

/// The plan for `config`.
pub fn plan(config: &Config) -> Plan {
    let lan = &config.network.lan;
    let wan = &config.network.wan;
    let lan_plan = lan.interface.clone().map(|name| (name, lan.net));
    if !firewall::ip_forward(config.security.mode) {
        // lan-only: officebox is a LAN host whose router is the LAN gateway.
        return Plan {
            lan: lan_plan,
            wan: wan.interface.clone().map_or(WanPlan::None, WanPlan::Unused),
            default_route: lan.gateway.map_or(DefaultRoute::None, DefaultRoute::Via),
        };
    }
    let (wan_plan, default_route) = match (&wan.interface, &wan.addressing) {
        (Some(name), WanAddressing::Static { net, gateway }) => (
            WanPlan::Static {
                interface: name.clone(),
                net: *net,
            },
            DefaultRoute::Via(*gateway),
        ),
        (Some(name), WanAddressing::Dhcp { .. }) => {
            (WanPlan::Dhcp(name.clone()), DefaultRoute::Dhcp)
        }
        (None, WanAddressing::Static { gateway, .. }) => {
            (WanPlan::None, DefaultRoute::Via(*gateway))
        }
        (None, WanAddressing::Dhcp { .. }) => (WanPlan::None, DefaultRoute::Dhcp),
    };
    Plan {
        lan: lan_plan,
        wan: wan_plan,
        default_route,
    }
}

/// Puts exactly the addresses `keep` (none for `None`) of IPv4 on interface `index`:
/// `keep` is added (or refreshed), every other IPv4 address is removed.
async fn only_address(nl: &Netlink, index: u32, keep: Option<Ipv4Net>) -> io::Result<()> {
    if let Some(net) = keep {
        nl.put_address(index, net.address, net.prefix).await?;
    }
    for (ip, prefix, msg) in nl.ipv4_addresses(index).await? {
        if keep.is_some_and(|k| k.address == ip && k.prefix == prefix) {
            continue;
        }
        info!(message = "net: removing an address from the WAN interface", address = %ip, prefix);
        nl.delete_address(msg).await?;
    }
    Ok(())
}

async fn interfaces(plan: &Plan) -> io::Result<()> {
    let nl = Netlink::open()?;
    let mut lan_index = None;
    if let Some((name, net)) = &plan.lan {
        let index = nl.set_link(name, true).await?;
        nl.put_address(index, net.address, net.prefix).await?;
        lan_index = Some(index);
    }
    let mut wan_index = None;
    match &plan.wan {
        WanPlan::None => {}
        WanPlan::Unused(name) => {
            let index = nl.link_index(name).await?;
            only_address(&nl, index, None).await?;
            nl.set_link(name, false).await?;
            wan_index = Some(index);
        }
        WanPlan::Static { interface, net } => {
            let index = nl.set_link(interface, true).await?;
            only_address(&nl, index, Some(*net)).await?;
            wan_index = Some(index);
        }
        WanPlan::Dhcp(name) => {
            wan_index = Some(nl.set_link(name, true).await?);
        }
    }
    if let DefaultRoute::Via(gateway) = plan.default_route {
        nl.put_default_route(gateway).await?;
    }
    // Default routes another mode left behind on officebox's own interfaces (others
    // are not officebox's to touch): through another gateway, or on the LAN side when
    // the WAN DHCP client is to set it.
    let ours = |oif: Option<u32>| oif.is_some() && (oif == lan_index || oif == wan_index);
    for (gateway, oif, route) in nl.default_routes().await? {
        let stale = ours(oif)
            && match plan.default_route {
                DefaultRoute::Via(wanted) => gateway != Some(wanted),
                DefaultRoute::Dhcp => oif == lan_index,
                DefaultRoute::None => true,
            };
        if stale {
            info!(message = "net: removing a default route", gateway = ?gateway);
            nl.delete_route(route).await?;
        }
    }
    Ok(())
}

/// IPv4 forwarding on or off (this network namespace's sysctl).
fn forwarding(on: bool) -> io::Result<()> {
    std::fs::write(
        "/proc/sys/net/ipv4/ip_forward",
        if on { "1\n" } else { "0\n" },
    )
}

/// Runs `nft` with `args` on `ruleset` from standard input.
async fn nft(args: &[&str], ruleset: &str) -> io::Result<()> {
    let mut child = tokio::process::Command::new("nft")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run nft: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(ruleset.as_bytes()).await?;
    }
    let out = child.wait_with_output().await?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "nft {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Where the last applied ruleset is kept, for `officebox net apply --dry-run`.
fn applied_path(config: &Config) -> std::path::PathBuf {
    config.data_dir.join("firewall.nft")
}

/// Applies the whole network setup of `config`.
pub async fn apply(config: &Config) -> io::Result<()> {
    let ruleset = firewall::render(config).map_err(io::Error::other)?;
    let forward = firewall::ip_forward(config.security.mode);
    // Check first: a ruleset the kernel would refuse changes nothing at all.
    nft(&["-c", "-f", "-"], &ruleset).await?;
    // Closing goes first and opening last: forwarding off before the rules loosen, the
    // rules in place before the WAN address comes up, forwarding on at the end.
    if !forward {
        forwarding(false)?;
    }
    nft(&["-f", "-"], &ruleset).await?;
    interfaces(&plan(config)).await?;
    if forward {
        forwarding(true)?;
    }
    if let Err(e) = std::fs::create_dir_all(&config.data_dir)
        .and_then(|()| std::fs::write(applied_path(config), &ruleset))
    {
        tracing::warn!(message = "net: the applied ruleset was not kept for dry runs", error = %e);
    }
    info!(
        message = "net: applied",
        mode = config.security.mode.name(),
        forwarding = firewall::ip_forward(config.security.mode)
    );
    Ok(())
}

/// Keeps the host's network side as the config says until `shutdown`.
pub async fn serve(
    mut config_rx: watch::Receiver<Arc<Config>>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let config = Arc::clone(&config_rx.borrow_and_update());
    apply(&config)
        .await
        .map_err(|e| io::Error::other(format!("net: cannot set up the network: {e}")))?;
    // The shaping is applied again only when it changes (each time drops its queues),
    // and what was shaped before is undone first (whatever a crash left, at start).
    let mut shaped = crate::shaping::plan(&config);
    crate::shaping::apply(&config, &shaped).await;
    let mut look = tokio::time::interval(ROUTE_LOOK);
    look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // One connection for the looks, not one every two seconds.
    let nl = Netlink::open().ok();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            _ = look.tick() => {
                let config = Arc::clone(&config_rx.borrow());
                if let (true, Some(nl)) = (config.network.manage, &nl) {
                    put_back_default_route(nl, &config).await;
                }
            }
            changed = config_rx.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let config = Arc::clone(&config_rx.borrow_and_update());
                if !config.network.manage {
                    info!("net: manage = false now; leaving the network as it is");
                    continue;
                }
                if let Err(e) = apply(&config).await {
                    error!(message = "net: the new network setup was not applied; the previous one stays", error = %e);
                    continue;
                }
                let wanted = crate::shaping::plan(&config);
                if wanted != shaped {
                    crate::shaping::apply(&config, &shaped).await;
                    shaped = wanted;
                }
            }
        }
    }
}

/// How often the default route is looked for.
const ROUTE_LOOK: std::time::Duration = std::time::Duration::from_secs(2);

/// The kernel drops the routes through an interface whose link goes down (a cable pulled
/// out, the modem restarted); the addresses stay. When the link is back, the plan's
/// default route is put back here (a static one: the WAN DHCP client sets its own).
async fn put_back_default_route(nl: &Netlink, config: &Config) {
    let DefaultRoute::Via(gateway) = plan(config).default_route else {
        return;
    };
    let Ok(routes) = nl.default_routes().await else {
        return;
    };
    if routes.iter().any(|(g, ..)| *g == Some(gateway)) {
        return;
    }
    // Fails while the link is still down (the gateway is unreachable): tried again later.
    if nl.put_default_route(gateway).await.is_ok() {
        info!(message = "net: the default route was gone (the link went down?); put back", %gateway);
    }
}

/// What [`apply`] would change, in words: forwarding, interface addresses, and the ruleset
/// lines added and removed since the last apply.
pub async fn dry_run(config: &Config) -> io::Result<String> {
    use std::fmt::Write as _;
    let mut out = String::new();
    let wanted = firewall::ip_forward(config.security.mode);
    let current = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
        .ok()
        .map(|s| s.trim() == "1");
    let on = |b: bool| if b { "on" } else { "off" };
    match current {
        Some(c) if c == wanted => {
            let _ = writeln!(out, "forwarding: {} (unchanged)", on(c));
        }
        Some(c) => {
            let _ = writeln!(out, "forwarding: {} -> {}", on(c), on(wanted));
        }
        None => {
            let _ = writeln!(out, "forwarding: -> {}", on(wanted));
        }
    }
    let mut wanted_addrs: Vec<(String, Ipv4Addr, u8)> = Vec::new();
    if let Some(name) = &config.network.lan.interface {
        wanted_addrs.push((
            name.clone(),
            config.network.lan.net.address,
            config.network.lan.net.prefix,
        ));
    }
    if let (Some(name), WanAddressing::Static { net, .. }) = (
        &config.network.wan.interface,
        &config.network.wan.addressing,
    ) {
        wanted_addrs.push((name.clone(), net.address, net.prefix));
    }
    let nl = Netlink::open()?;
    for (name, addr, prefix) in wanted_addrs {
        let present = match nl.link_index(&name).await {
            Ok(index) => Some(
                nl.ipv4_addresses(index)
                    .await
                    .unwrap_or_default()
                    .iter()
                    .any(|(ip, p, _)| *ip == addr && *p == prefix),
            ),
            Err(_) => None,
        };
        let _ = match present {
            Some(true) => writeln!(out, "{name}: {addr}/{prefix} (unchanged)"),
            Some(false) => writeln!(out, "{name}: add {addr}/{prefix}"),
            None => writeln!(out, "{name}: no such interface (apply would fail)"),
        };
    }
    drop(nl);
    let new = firewall::render(config).map_err(io::Error::other)?;
    let rules = |text: &str| -> Vec<String> {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect()
    };
    match std::fs::read_to_string(applied_path(config)) {
        Ok(old) => {
            let (old, new) = (rules(&old), rules(&new));
            let removed: Vec<&String> = old.iter().filter(|l| !new.contains(l)).collect();
            let added: Vec<&String> = new.iter().filter(|l| !old.contains(l)).collect();
            if removed.is_empty() && added.is_empty() {
                let _ = writeln!(out, "firewall: unchanged");
            } else {
                let _ = writeln!(out, "firewall: table inet {} replaced:", firewall::TABLE);
                for l in removed {
                    let _ = writeln!(out, "- {l}");
                }
                for l in added {
                    let _ = writeln!(out, "+ {l}");
                }
            }
        }
        Err(_) => {
            let _ = writeln!(
                out,
                "firewall: table inet {} created ({} lines; never applied here before)",
                firewall::TABLE,
                rules(&new).len()
            );
        }
    }
    Ok(out)
}
