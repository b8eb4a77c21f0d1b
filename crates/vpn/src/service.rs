//! The tunnels as a service: from `[vpn]` to a running tunnel, and again on every change
//! of it.
//!
//! Start: the box's key (made on first start, `officebox_secrets::wireguard`); the TUN
//! interface [`VPN_INTERFACE`] (MTU 1420, the tunnels' own address); a route to each
//! site's subnets through it, with the box's LAN address as the source its own packets
//! take there (so the other box, which knows this office by its LAN subnets, accepts
//! them); the UDP socket on every address at `listen_port`; then the datapath
//! ([`Tunnel`]) with one peer per enabled site (keepalive 25 s, for the NATs between).
//! A site given by name is looked up when the tunnel starts.
//!
//! A reload that changes `[vpn]` (or the LAN address) stops the tunnel and starts it
//! again; the interface goes with its descriptor, and its routes with it. Each site that
//! comes up or goes quiet is logged.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use officebox_config::Config;
use officebox_config::derive::VPN_INTERFACE;
use officebox_config::model::Site;
use officebox_secrets::wireguard::KeyPair;
use officebox_sockets::netlink::Netlink;
use officebox_sockets::tun::Tun;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::tunnel::{Packets, PeerConfig, PeerStatus, Subnet, Tunnel};

/// WireGuard's usual MTU: 1500 less its 80 bytes of IPv6, UDP and WireGuard headers.
const MTU: u32 = 1420;
/// Seconds between keepalives to a site (NAT mappings last at least this long).
const KEEPALIVE: u16 = 25;

/// Why the tunnels could not run.
#[derive(Debug, thiserror::Error)]
pub enum VpnError {
    #[error("vpn: the box's WireGuard key: {0}")]
    Key(io::Error),
    #[error("vpn: the interface {VPN_INTERFACE}: {0}")]
    Interface(io::Error),
    #[error("vpn: the UDP port {port}: {source}")]
    Socket { port: u16, source: io::Error },
}

impl Packets for Tun {
    async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        Tun::recv(self, buf).await
    }

    async fn send(&self, packet: &[u8]) -> io::Result<()> {
        Tun::send(self, packet).await
    }

    fn try_recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        Tun::try_recv(self, buf)
    }
}

/// What a change of config must restart the tunnel for: everything but the remote
/// devices, which the running tunnel takes in and lets go by itself.
fn setup_of(config: &Config) -> (officebox_config::model::Vpn, Ipv4Addr, std::path::PathBuf) {
    let mut vpn = config.vpn.clone();
    vpn.peers.clear();
    (vpn, config.network.lan.net.address, config.data_dir.clone())
}

/// Runs the tunnels until `stop`, following the config.
pub async fn serve(
    mut config: watch::Receiver<Arc<Config>>,
    stop: CancellationToken,
) -> Result<(), VpnError> {
    loop {
        let now = Arc::clone(&config.borrow_and_update());
        let running = stop.child_token();
        let mut started = start(&now, running.clone()).await?;
        let setup = setup_of(&now);
        let mut current = Arc::clone(&now);
        let mut check = tokio::time::interval(DEVICE_CHECK);
        check.tick().await;
        let again = loop {
            tokio::select! {
                () = stop.cancelled() => break false,
                changed = config.changed() => {
                    if changed.is_err() {
                        break false;
                    }
                    let before = std::mem::replace(&mut current, Arc::clone(&config.borrow_and_update()));
                    let (was, is) = (Arc::clone(&before), Arc::clone(&current));
                    let _ = tokio::task::spawn_blocking(move || forget_removed(&was, &is)).await;
                    if setup_of(&current) != setup {
                        break true;
                    }
                }
                _ = check.tick() => {}
            }
            // The devices now (a reload, an expiry, a key replaced by `vpn device
            // --new-key` or the Users page): the tunnel follows at once.
            let (for_devices, box_key) = (Arc::clone(&current), started.key.clone());
            let devices = tokio::task::spawn_blocking(move || device_peers(&for_devices, &box_key))
                .await
                .ok();
            if let Some(devices) = devices
                && devices != started.devices
            {
                info!(
                    message = "vpn: the remote devices changed",
                    devices = devices.len()
                );
                started.devices = devices;
                let mut all = started.sites.clone();
                all.extend(device_configs(&started.devices));
                started.peers.send_replace(all);
            }
        };
        let task = started.task;
        running.cancel();
        let _ = task.await;
        if !again {
            return Ok(());
        }
        info!("vpn: the tunnels' settings changed; starting them again");
    }
}

/// How often the devices' keys and expiry dates are looked at again.
const DEVICE_CHECK: Duration = Duration::from_secs(5);

/// The remote devices in use today (enabled, not expired), each with its public key (its
/// own, else the one the box made for it, made now if there is none yet) and address. A
/// device whose key cannot be read or made is left out (and said so): it cannot
/// connect, and nothing else is held up. The keys of devices no longer in the config
/// are deleted, so that a device added later under the same name gets a new one.
fn device_peers(config: &Config, box_key: &KeyPair) -> Vec<Device> {
    let today = officebox_config::dialplan::LocalTime::now(config.phone.timezone.as_deref()).date;
    let mut out = Vec::new();
    for p in config.vpn.peers.iter().filter(|p| p.active(today)) {
        let key = match p.public_key {
            Some(k) => k,
            None => {
                match officebox_secrets::wireguard::device_key(&config.data_dir, &p.name, box_key) {
                    Ok(pair) => pair.public(),
                    Err(error) => {
                        warn!(message = "vpn: a device's key cannot be read; it is left out", device = %p.name, %error);
                        continue;
                    }
                }
            }
        };
        out.push((p.name.clone(), key, p.address));
    }
    out
}

/// Deletes the keys the box made for devices that `before` had and `now` has not (a
/// device removed, or given a key of its own), so that a device added later under the
/// same name gets a new key. Only on a change of config: a key the command line made
/// for a device just written into the file (not yet reloaded) stays.
fn forget_removed(before: &Config, now: &Config) {
    let made = |c: &Config| -> Vec<String> {
        c.vpn
            .peers
            .iter()
            .filter(|p| p.public_key.is_none())
            .map(|p| p.name.clone())
            .collect()
    };
    let is = made(now);
    for gone in made(before).iter().filter(|n| !is.contains(n)) {
        if let Err(error) = officebox_secrets::wireguard::forget_device(&now.data_dir, gone) {
            warn!(message = "vpn: the key of a removed device cannot be deleted", device = %gone, %error);
        }
    }
}

/// A remote device as the tunnel knows it: its name, public key and address.
type Device = (String, [u8; 32], Ipv4Addr);

/// The running datapath: its task, its sites, the devices it lets in, and where its peer
/// list is changed.
struct Started {
    task: tokio::task::JoinHandle<()>,
    /// The box's key pair, read once at start (never made again behind the admin's back).
    key: KeyPair,
    sites: Vec<PeerConfig>,
    devices: Vec<Device>,
    peers: watch::Sender<Vec<PeerConfig>>,
}

/// Each device: its own address only (its source, and where its packets go), no
/// endpoint until it speaks, no keepalive from here (the device keeps its NAT open).
fn device_configs(devices: &[Device]) -> Vec<PeerConfig> {
    devices
        .iter()
        .map(|(name, public_key, address)| PeerConfig {
            name: name.clone(),
            public_key: *public_key,
            endpoint: None,
            allowed: vec![Subnet {
                network: *address,
                prefix: 32,
            }],
            keepalive: None,
        })
        .collect()
}

/// Sets up the interface, routes and socket, and starts the datapath (until `stop`).
async fn start(config: &Config, stop: CancellationToken) -> Result<Started, VpnError> {
    let dir = config.data_dir.clone();
    let key = tokio::task::spawn_blocking(move || officebox_secrets::wireguard::load_or_make(&dir))
        .await
        .map_err(|e| VpnError::Key(io::Error::other(e)))?
        .map_err(VpnError::Key)?;
    let (for_devices, box_key) = (Arc::new(config.clone()), key.clone());
    let devices = tokio::task::spawn_blocking(move || device_peers(&for_devices, &box_key))
        .await
        .unwrap_or_default();
    let vpn = &config.vpn;
    let tun = Tun::open(VPN_INTERFACE).map_err(VpnError::Interface)?;
    let nl = Netlink::open().map_err(VpnError::Interface)?;
    let index = nl
        .set_link(VPN_INTERFACE, true)
        .await
        .map_err(VpnError::Interface)?;
    nl.set_mtu(index, MTU).await.map_err(VpnError::Interface)?;
    nl.put_address(index, vpn.address.address, vpn.address.prefix)
        .await
        .map_err(VpnError::Interface)?;
    let lan = config.network.lan.net.address;
    let mut routes = Vec::new();
    let mut peers = Vec::new();
    for site in vpn.sites.iter().filter(|s| s.enabled) {
        for net in &site.subnets {
            routes.push((site.name.clone(), net.network(), net.prefix));
        }
        let endpoint = match &site.endpoint {
            Some((host, port)) => resolve(host, *port).await,
            None => None,
        };
        if site.endpoint.is_some() && endpoint.is_none() {
            warn!(message = "vpn: a site's endpoint does not resolve; waiting for it to call", site = %site.name);
        }
        peers.push(PeerConfig {
            name: site.name.clone(),
            public_key: site.public_key,
            endpoint,
            allowed: site
                .subnets
                .iter()
                .map(|n| Subnet {
                    network: n.network(),
                    prefix: n.prefix,
                })
                .collect(),
            keepalive: Some(KEEPALIVE),
        });
    }
    let sites = peers.clone();
    peers.extend(device_configs(&devices));
    let (peers_tx, peers_rx) = watch::channel(peers.clone());
    let socket = UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, vpn.listen_port)))
        .await
        .map_err(|source| VpnError::Socket {
            port: vpn.listen_port,
            source,
        })?;
    let mut tunnel = Tunnel::new(key.private(), peers);
    tunnel.follow(peers_rx);
    let status = tunnel.status();
    info!(
        message = "vpn: serving",
        interface = VPN_INTERFACE,
        port = vpn.listen_port,
        address = %format!("{}/{}", vpn.address.address, vpn.address.prefix),
        sites = vpn.sites.iter().filter(|s| s.enabled).count(),
        devices = devices.len(),
        public_key = %key.public_text()
    );
    let db_path = officebox_store::state_db(&config.data_dir);
    let db = tokio::task::spawn_blocking(move || officebox_store::Db::open(&db_path))
        .await
        .ok()
        .and_then(|r| {
            r.map_err(
                |error| warn!(message = "vpn: no state database; the status is not kept", %error),
            )
            .ok()
        });
    let names: Vec<String> = sites.iter().map(|p| p.name.clone()).collect();
    let (answers_tx, answers) = watch::channel(Vec::new());
    let probed: Vec<Site> = vpn.sites.iter().filter(|s| s.enabled).cloned().collect();
    tokio::spawn(probe_sites(
        probed,
        status.clone(),
        answers_tx,
        stop.clone(),
    ));
    tokio::spawn(watch_sites(status, answers, db, names, stop.clone()));
    tokio::spawn(put_routes(nl, index, routes, lan, stop.clone()));
    let task = tokio::spawn(async move {
        tunnel.run(&tun, &socket, stop).await;
        // The interface and its routes go with the descriptor.
        drop(tun);
    });
    Ok(Started {
        task,
        key,
        sites,
        devices,
        peers: peers_tx,
    })
}

/// Routes each site's subnets through the tunnel, with the LAN address as the box's own
/// source there. The kernel takes such a route only once that address is on the LAN
/// interface, which the network service may not have put there yet at start: each route
/// is tried every second until it is set (or the tunnel stops).
async fn put_routes(
    nl: Netlink,
    index: u32,
    mut routes: Vec<(String, Ipv4Addr, u8)>,
    lan: Ipv4Addr,
    stop: CancellationToken,
) {
    let mut tries = 0u32;
    while !routes.is_empty() {
        let mut left = Vec::new();
        for (site, network, prefix) in routes {
            if let Err(error) = nl.put_route_from(network, prefix, index, Some(lan)).await {
                // Said once a minute, not every second.
                if tries % 60 == 5 {
                    warn!(message = "vpn: a site's route cannot be set yet", %site, network = %format!("{network}/{prefix}"), %error);
                }
                left.push((site, network, prefix));
            }
        }
        routes = left;
        if routes.is_empty() {
            break;
        }
        tries += 1;
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    // The routes live as long as the interface; the connection is not needed after.
    drop(nl);
}

/// A site's endpoint: the address, or the name looked up (the first IPv4 address).
async fn resolve(host: &str, port: u16) -> Option<SocketAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, port));
    }
    let found = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::lookup_host((host.to_string(), port)),
    )
    .await
    .ok()?
    .ok()?;
    found.into_iter().find(SocketAddr::is_ipv4)
}

/// How often a site's box is asked whether its services answer (at once when it comes
/// up).
const PROBE_EVERY: Duration = Duration::from_secs(30);

/// Asks each site's box, while its tunnel is up, whether its DNS and phones answer
/// ([`crate::probe`]); the answers go to `answers` (site, what it said).
async fn probe_sites(
    sites: Vec<Site>,
    status: watch::Receiver<Vec<PeerStatus>>,
    answers: watch::Sender<Vec<(String, String)>>,
    stop: CancellationToken,
) {
    let mut asked: Vec<(String, tokio::time::Instant)> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = status.borrow().clone();
        for site in &sites {
            let live = now.iter().any(|p| {
                p.name == site.name
                    && p.last_handshake
                        .is_some_and(|d| d < Duration::from_secs(180))
            });
            let due = asked
                .iter()
                .find(|(n, _)| *n == site.name)
                .is_none_or(|(_, at)| at.elapsed() >= PROBE_EVERY);
            if !live || !due {
                continue;
            }
            asked.retain(|(n, _)| *n != site.name);
            asked.push((site.name.clone(), tokio::time::Instant::now()));
            let Some(said) = crate::probe::services(site).await else {
                continue;
            };
            answers.send_if_modified(|all| {
                let entry = all.iter_mut().find(|(n, _)| *n == site.name);
                match entry {
                    Some((_, old)) if *old == said => false,
                    Some((_, old)) => {
                        info!(message = "vpn: a site's services", site = %site.name, services = %said);
                        *old = said.clone();
                        true
                    }
                    None => {
                        info!(message = "vpn: a site's services", site = %site.name, services = %said);
                        all.push((site.name.clone(), said.clone()));
                        true
                    }
                }
            });
        }
    }
}

/// How often the sites' status is written to the state database at most (and at once
/// when a site comes up or goes quiet).
const STATUS_EVERY: Duration = Duration::from_secs(5);

/// Logs each site that comes up (its first handshake, or one after a silence) or goes
/// quiet (no handshake for three minutes: WireGuard rekeys every two), and keeps the
/// status in the state database for `officebox vpn status`.
async fn watch_sites(
    mut status: watch::Receiver<Vec<PeerStatus>>,
    mut answers: watch::Receiver<Vec<(String, String)>>,
    db: Option<officebox_store::Db>,
    sites: Vec<String>,
    stop: CancellationToken,
) {
    let db = db.map(|d| Arc::new(std::sync::Mutex::new(d)));
    let mut up: Vec<(String, bool)> = Vec::new();
    let mut written: Option<tokio::time::Instant> = None;
    loop {
        let mut news = false;
        tokio::select! {
            () = stop.cancelled() => return,
            changed = status.changed() => if changed.is_err() { return },
            changed = answers.changed() => {
                if changed.is_err() { return }
                news = true;
            }
        }
        let now = status.borrow_and_update().clone();
        let said = answers.borrow_and_update().clone();
        for p in &now {
            let live = p
                .last_handshake
                .is_some_and(|d| d < Duration::from_secs(180));
            let was = up.iter().find(|(n, _)| *n == p.name).map(|(_, l)| *l);
            if was != Some(live) && (live || was.is_some()) {
                news = true;
                if !sites.contains(&p.name) {
                    match (live, p.endpoint) {
                        (true, Some(at)) => {
                            info!(message = "vpn: device up", device = %p.name, endpoint = %at);
                        }
                        (true, None) => info!(message = "vpn: device up", device = %p.name),
                        (false, _) => info!(message = "vpn: device gone quiet", device = %p.name),
                    }
                } else {
                    match (live, p.endpoint) {
                        (true, Some(at)) => {
                            info!(message = "vpn: site up", site = %p.name, endpoint = %at);
                        }
                        (true, None) => info!(message = "vpn: site up", site = %p.name),
                        (false, _) => info!(message = "vpn: site quiet", site = %p.name),
                    }
                }
            }
            match up.iter_mut().find(|(n, _)| *n == p.name) {
                Some(e) => e.1 = live,
                None => up.push((p.name.clone(), live)),
            }
        }
        let due = news || written.is_none_or(|t| t.elapsed() >= STATUS_EVERY);
        if let (true, Some(db)) = (due, &db) {
            written = Some(tokio::time::Instant::now());
            let rows: Vec<officebox_store::SiteStatus> = now
                .iter()
                .map(|p| {
                    let at = officebox_store::unix_now();
                    officebox_store::SiteStatus {
                        site: p.name.clone(),
                        endpoint: p.endpoint.map(|e| e.to_string()),
                        handshake_at: p
                            .last_handshake
                            .map(|d| at - i64::try_from(d.as_secs()).unwrap_or(0)),
                        sent: p.sent,
                        received: p.received,
                        // What its box said is shown only while its tunnel is up.
                        services: said
                            .iter()
                            .find(|(n, _)| *n == p.name)
                            .filter(|_| {
                                p.last_handshake
                                    .is_some_and(|d| d < Duration::from_secs(180))
                            })
                            .map(|(_, s)| s.clone()),
                        updated_at: at,
                    }
                })
                .collect();

            let db = Arc::clone(db);
            let _ = tokio::task::spawn_blocking(move || {
                let db = db.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Err(error) = db.set_site_statuses(&rows) {
                    warn!(message = "vpn: the sites' status was not saved", %error);
                }
            })
            .await;
        }
    }
}
