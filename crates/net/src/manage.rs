//! When `network.manage` is on, officebox sets up the host's network side itself: the LAN
//! and WAN interfaces (through netlink), IP forwarding per security mode, and the firewall
//! ruleset (checked with `nft -c`, then applied with `nft -f` as one transaction).
//!
//! Everything is idempotent: applying the same config twice changes nothing. A change that
//! fails on reload leaves the previous setup in place (nft applies all or nothing) and is
//! logged; failing at start stops officebox rather than run a router without its firewall.
//! On shutdown the setup stays: the office keeps its network while officebox restarts.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::process::Stdio;
use std::sync::Arc;

use futures_util::TryStreamExt;
use officebox_config::{Config, WanAddressing};
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::firewall;

fn nl(e: rtnetlink::Error) -> io::Error {
    io::Error::other(format!("netlink: {e}"))
}

async fn link_index(handle: &Handle, name: &str) -> io::Result<u32> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(link)) => Ok(link.header.index),
        Ok(None) => Err(io::Error::other(format!("no interface {name}"))),
        Err(e) => Err(io::Error::other(format!("interface {name}: {e}"))),
    }
}

/// Brings `name` up with `address/prefix` (replacing nothing else on it).
async fn address(handle: &Handle, name: &str, address: Ipv4Addr, prefix: u8) -> io::Result<()> {
    let index = link_index(handle, name).await?;
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(nl)?;
    handle
        .address()
        .add(index, IpAddr::V4(address), prefix)
        .replace()
        .execute()
        .await
        .map_err(nl)
}

/// The default route through the ISP's gateway.
async fn default_route(handle: &Handle, gateway: Ipv4Addr) -> io::Result<()> {
    let route = RouteMessageBuilder::<Ipv4Addr>::new()
        .gateway(gateway)
        .build();
    handle
        .route()
        .add(route)
        .replace()
        .execute()
        .await
        .map_err(nl)
}

async fn interfaces(config: &Config) -> io::Result<()> {
    let (connection, handle, _) = rtnetlink::new_connection()?;
    let task = tokio::spawn(connection);
    let result = async {
        let lan = &config.network.lan;
        if let Some(name) = &lan.interface {
            address(&handle, name, lan.net.address, lan.net.prefix).await?;
        }
        let wan = &config.network.wan;
        match (&wan.interface, &wan.addressing) {
            (Some(name), WanAddressing::Static { net, gateway })
                if firewall::ip_forward(config.security.mode) =>
            {
                address(&handle, name, net.address, net.prefix).await?;
                default_route(&handle, *gateway).await?;
            }
            (Some(name), _) => {
                // DHCP: the WAN client sets the address; lan-only: the WAN is unused.
                let index = link_index(&handle, name).await?;
                handle
                    .link()
                    .set(LinkUnspec::new_with_index(index).up().build())
                    .execute()
                    .await
                    .map_err(nl)?;
            }
            (None, _) => {}
        }
        if !firewall::ip_forward(config.security.mode)
            && let Some(gateway) = lan.gateway
        {
            // lan-only: officebox is a LAN host whose router is the LAN gateway.
            default_route(&handle, gateway).await?;
        }
        Ok::<_, io::Error>(())
    }
    .await;
    task.abort();
    result
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
    interfaces(config).await?;
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
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
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
                }
            }
        }
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
    let (connection, handle, _) = rtnetlink::new_connection()?;
    let task = tokio::spawn(connection);
    for (name, addr, prefix) in wanted_addrs {
        let present = match link_index(&handle, &name).await {
            Ok(index) => {
                let mut addrs = handle
                    .address()
                    .get()
                    .set_link_index_filter(index)
                    .execute();
                let mut found = false;
                while let Ok(Some(a)) = addrs.try_next().await {
                    found |= a.header.prefix_len == prefix
                        && a.attributes.iter().any(|at| matches!(at, rtnetlink::packet_route::address::AddressAttribute::Address(IpAddr::V4(ip)) if *ip == addr));
                }
                Some(found)
            }
            Err(_) => None,
        };
        let _ = match present {
            Some(true) => writeln!(out, "{name}: {addr}/{prefix} (unchanged)"),
            Some(false) => writeln!(out, "{name}: add {addr}/{prefix}"),
            None => writeln!(out, "{name}: no such interface (apply would fail)"),
        };
    }
    task.abort();
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
