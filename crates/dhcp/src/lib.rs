//! officebox's DHCP: the LAN's DHCPv4 server (RFC 2131/2132).
//!
//! - [`pool`]: who holds which address; pure and in memory, rebuilt from the state
//!   database at start.
//! - [`handler`]: one message in, one decision out: the reply, where it goes, and the
//!   binding to make durable first.
//! - [`serve`]: the service. Messages are taken from the socket in batches; the bindings a
//!   batch creates are written to SQLite in one transaction (one fsync for all), and only
//!   then are their ACKs sent (offers and NAKs go at once). So every ACK a client sees is
//!   on disk, and durability costs one fsync per batch, not per client. A small batch with
//!   leases to write waits a few milliseconds for more messages first (group commit), so
//!   that under load the batches grow.
//!
//! Before serving, the server asks the LAN whether another DHCP server answers; if one
//! does, it refuses to serve (one DHCP server per LAN, as the appliance's manual insists).

#![cfg_attr(not(test), warn(clippy::string_slice, clippy::indexing_slicing))]

pub mod client;
pub mod handler;
pub mod pool;
mod probe;
mod raw;

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use dhcproto::v4::{DhcpOption, Flags, HType, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable};
use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, SockaddrIn, bind, setsockopt, socket, sockopt,
};
use officebox_config::Config;
use officebox_config::derive::{dhcp_options, dhcp_pool};
use officebox_config::values::Mac;
use officebox_store::{Db, Lease, LeaseState};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use handler::{Decision, Dest, Settings};
use pool::{Binding, ClientKey, Pool, State};

pub const SERVER_PORT: u16 = 67;
pub const CLIENT_PORT: u16 = 68;
/// Messages handled per batch (and per fsync at most).
const BATCH: usize = 256;
/// How long a batch of fewer than `LINGER_BELOW` messages with leases to write waits
/// for more before the fsync. Under load this is what makes batches grow (at 25% of a
/// core, 4 ms doubled the exchanges per second against none, and beat 1 and 2 ms); a
/// lone client's ACK is 4 ms later.
const LINGER: Duration = Duration::from_millis(4);
const LINGER_BELOW: usize = 32;
/// The receive buffer the server asks for.
const RECEIVE_BUFFER: usize = 1 << 20;
/// How long to listen for another server's offer before serving.
const DETECT_FOR: Duration = Duration::from_secs(2);

use officebox_store::unix_now as now_unix;

/// Decodes a message from the LAN, or `None` for one to drop.
///
/// Two traps in dhcproto 0.15 are closed here: `Message::chaddr()` slices the 16-byte field
/// by the `hlen` the client sent (a panic for hlen > 16, found by the `dhcp_packet` fuzz
/// target), so such messages are dropped; and some option lengths are checked with
/// `debug_assert!`, so in a debug build a malformed option panics inside the decoder,
/// which is caught and treated as malformed.
pub fn decode(bytes: &[u8]) -> Option<Message> {
    let msg =
        std::panic::catch_unwind(|| Message::decode(&mut Decoder::new(bytes)).ok()).ok()??;
    (usize::from(msg.hlen()) <= 16).then_some(msg)
}

/// What the server needs from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Setup {
    settings: Settings,
    interface: Option<String>,
    first: Ipv4Addr,
    last: Ipv4Addr,
    excluded: Vec<Ipv4Addr>,
    reservations: Vec<(Mac, Ipv4Addr, Option<String>)>,
    /// The phones assigned for provisioning.
    phones: Vec<Mac>,
    ping_check: bool,
    server_check: Duration,
    db: PathBuf,
}

fn setup(config: &Config) -> Option<Setup> {
    if !config.dhcp.enabled {
        return None;
    }
    let lan = &config.network.lan;
    let pool = dhcp_pool(lan, &config.dhcp);
    Some(Setup {
        settings: Settings {
            server_id: lan.net.address,
            subnet: lan.net,
            options: dhcp_options(config),
            lease_secs: u32::try_from(config.dhcp.lease_time.as_secs()).unwrap_or(u32::MAX),
            phone_urls: HashMap::new(),
        },
        phones: config.phone.devices.iter().map(|d| d.mac).collect(),
        interface: lan.interface.clone(),
        first: pool.first,
        last: pool.last,
        excluded: pool.excluded,
        reservations: config
            .dhcp
            .reservations
            .iter()
            .map(|r| (r.mac, r.address, r.hostname.clone()))
            .collect(),
        ping_check: config.dhcp.ping_check,
        server_check: config.dhcp.server_check,
        db: officebox_store::state_db(&config.data_dir),
    })
}

fn to_lease(b: &Binding) -> Lease {
    Lease {
        address: b.address,
        client_id: b.client.0.clone(),
        mac: b.mac.to_string(),
        hostname: b.hostname.clone(),
        expires_at: b.until,
        state: match b.state {
            State::Offered => LeaseState::Offered,
            State::Bound => LeaseState::Bound,
            State::Released => LeaseState::Released,
            State::Declined => LeaseState::Declined,
        },
        reserved: b.reserved,
    }
}

fn from_lease(l: &Lease) -> Option<Binding> {
    let mac = officebox_config::values::parse_mac(&l.mac).ok()?;
    let state = match l.state {
        LeaseState::Bound => State::Bound,
        LeaseState::Released => State::Released,
        LeaseState::Declined => State::Declined,
        LeaseState::Offered => return None,
    };
    Some(Binding {
        address: l.address,
        client: ClientKey(l.client_id.clone()),
        mac,
        hostname: l.hostname.clone(),
        until: l.expires_at,
        state,
        reserved: l.reserved,
    })
}

/// A UDP socket on `port`, bound to the LAN interface when one is named, allowed to
/// broadcast.
pub(crate) fn udp_socket(port: u16, interface: Option<&str>) -> io::Result<std::net::UdpSocket> {
    let fd: OwnedFd = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    setsockopt(&fd, sockopt::Broadcast, &true)?;
    // Room for the messages that arrive while a batch's leases are committed (the
    // kernel's default, about 200 KB, is some 150 DHCP messages).
    if setsockopt(&fd, sockopt::RcvBufForce, &RECEIVE_BUFFER)
        .or_else(|_| setsockopt(&fd, sockopt::RcvBuf, &RECEIVE_BUFFER))
        .is_err()
    {
        debug!(message = "dhcp: could not enlarge the receive buffer");
    }
    if let Some(ifname) = interface {
        setsockopt(
            &fd,
            sockopt::BindToDevice,
            &std::ffi::OsString::from(ifname),
        )
        .map_err(|e| io::Error::other(format!("dhcp: cannot use interface {ifname}: {e}")))?;
    }
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)),
    )
    .map_err(|e| io::Error::other(format!("dhcp: cannot listen on udp port {port}: {e}")))?;
    let socket = std::net::UdpSocket::from(fd);
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// The hardware address the server's own probes use: made up once (locally
/// administered, unicast), and ignored by the server itself.
fn probe_mac() -> [u8; 6] {
    let mut mac = rand::random::<[u8; 6]>();
    mac[0] = (mac[0] | 0x02) & 0xFE;
    mac
}

/// Asks the LAN for offers from a DHCP server that is not us.
async fn other_server(
    interface: Option<&str>,
    us: Ipv4Addr,
    mac: [u8; 6],
) -> io::Result<Option<Ipv4Addr>> {
    let socket = UdpSocket::from_std(udp_socket(CLIENT_PORT, interface)?)?;
    let xid: u32 = rand::random();
    let mut probe = Message::default();
    probe
        .set_opcode(Opcode::BootRequest)
        .set_htype(HType::Eth)
        .set_xid(xid)
        .set_chaddr(&mac)
        .set_flags(Flags::default().set_broadcast());
    probe
        .opts_mut()
        .insert(DhcpOption::MessageType(MessageType::Discover));
    let bytes = probe.to_vec().map_err(io::Error::other)?;
    socket
        .send_to(&bytes, (Ipv4Addr::BROADCAST, SERVER_PORT))
        .await?;
    let deadline = tokio::time::Instant::now() + DETECT_FOR;
    let mut buf = vec![0u8; 1500];
    loop {
        let Ok(r) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await else {
            return Ok(None);
        };
        let (len, _) = r?;
        let Some(m) = buf.get(..len).and_then(decode) else {
            continue;
        };
        if m.xid() != xid || m.opts().msg_type() != Some(MessageType::Offer) {
            continue;
        }
        let id = match m.opts().get(OptionCode::ServerIdentifier) {
            Some(DhcpOption::ServerIdentifier(ip)) => *ip,
            _ => Ipv4Addr::UNSPECIFIED,
        };
        if id != us {
            return Ok(Some(id));
        }
    }
}

/// Runs the DHCP server until `shutdown` is cancelled; restarts itself when the config
/// changes what it serves.
pub async fn serve(
    mut config_rx: watch::Receiver<Arc<Config>>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    loop {
        let config = Arc::clone(&config_rx.borrow_and_update());
        let Some(setup) = setup(&config) else {
            return Ok(());
        };
        let stop = shutdown.child_token();
        let run = run(setup.clone(), stop.clone());
        tokio::pin!(run);
        let restart = loop {
            tokio::select! {
                r = &mut run => { r?; return Ok(()); }
                changed = config_rx.changed() => {
                    if changed.is_err() {
                        break false;
                    }
                    let new = setup_of(&config_rx);
                    if new.as_ref() != Some(&setup) {
                        info!("dhcp: settings changed, restarting the server");
                        break true;
                    }
                }
            }
        };
        stop.cancel();
        let _ = run.await;
        if !restart {
            return Ok(());
        }
    }
}

/// Each assigned phone's provisioning address: under its token while the token is
/// unused, else the plain HTTPS one (the phone has its credentials).
async fn phone_urls(db: &Arc<Mutex<Db>>, phones: &[Mac], https: &str) -> HashMap<Mac, String> {
    let db = Arc::clone(db);
    let rows = tokio::task::spawn_blocking(move || {
        db.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .provisioned_phones()
    })
    .await;
    let tokens: HashMap<String, Option<String>> = match rows {
        Ok(Ok(rows)) => rows.into_iter().map(|r| (r.mac, r.token)).collect(),
        Ok(Err(error)) => {
            warn!(message = "dhcp: cannot read the phones' tokens", %error);
            HashMap::new()
        }
        Err(_) => HashMap::new(),
    };
    phones
        .iter()
        .map(|mac| {
            let name: String = mac.0.iter().map(|b| format!("{b:02x}")).collect();
            let url = match tokens.get(&name) {
                Some(Some(token)) => officebox_config::derive::token_url_at(https, token),
                _ => https.to_string(),
            };
            (*mac, url)
        })
        .collect()
}

fn setup_of(rx: &watch::Receiver<Arc<Config>>) -> Option<Setup> {
    setup(&rx.borrow())
}

/// How long the server waits at start for the LAN address to be on the interface (the
/// network service puts it there as officebox starts).
const ADDRESS_WAIT: Duration = Duration::from_secs(30);

/// Whether `address` is on `interface` now.
fn has_address(interface: &str, address: Ipv4Addr) -> bool {
    nix::ifaddrs::getifaddrs().is_ok_and(|mut all| {
        all.any(|a| {
            a.interface_name == interface
                && a.address
                    .as_ref()
                    .and_then(|s| s.as_sockaddr_in())
                    .is_some_and(|sin| sin.ip() == address)
        })
    })
}

/// Waits (up to [`ADDRESS_WAIT`]) until the LAN address is on the interface: a probe sent
/// before cannot leave ("Network is unreachable") and would find nobody.
async fn address_up(setup: &Setup, stop: &CancellationToken) {
    let Some(interface) = setup.interface.as_deref() else {
        return;
    };
    let us = setup.settings.server_id;
    let deadline = tokio::time::Instant::now() + ADDRESS_WAIT;
    let mut said = false;
    while !has_address(interface, us) && tokio::time::Instant::now() < deadline {
        if !said {
            info!(message = "dhcp: waiting for the LAN address before serving", %interface, address = %us);
            said = true;
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// Asks the LAN whether another DHCP server answers, every `setup.server_check`, until
/// none does (`true`) or `stop` (`false`).
async fn until_alone(setup: &Setup, mac: [u8; 6], stop: &CancellationToken) -> bool {
    let us = setup.settings.server_id;
    let mut told: Option<Ipv4Addr> = None;
    loop {
        match other_server(setup.interface.as_deref(), us, mac).await {
            Ok(Some(other)) => {
                if told != Some(other) {
                    error!(
                        message = "dhcp: ANOTHER DHCP SERVER ANSWERS ON THIS LAN; officebox will not serve DHCP while it does (one DHCP server per LAN). Turn the other one off, or set [dhcp] enabled = false.",
                        other_server = %other
                    );
                    told = Some(other);
                }
            }
            Ok(None) => {
                if told.is_some() {
                    info!("dhcp: the other DHCP server is gone; serving");
                }
                return true;
            }
            Err(error) => {
                warn!(message = "dhcp: could not check the LAN for another DHCP server", %error);
                return true;
            }
        }
        tokio::select! {
            () = stop.cancelled() => return false,
            () = tokio::time::sleep(setup.server_check) => {}
        }
    }
}

/// Why serving ended.
enum Ended {
    Stopped,
    /// Another DHCP server answered a later check.
    OtherServer(Ipv4Addr),
}

async fn run(setup: Setup, stop: CancellationToken) -> io::Result<()> {
    let mac = probe_mac();
    address_up(&setup, &stop).await;
    loop {
        if !until_alone(&setup, mac, &stop).await {
            return Ok(());
        }
        match serve_lan(&setup, mac, &stop).await? {
            Ended::Stopped => return Ok(()),
            Ended::OtherServer(other) => error!(
                message = "dhcp: ANOTHER DHCP SERVER NOW ANSWERS ON THIS LAN; officebox stops serving DHCP while it does",
                other_server = %other
            ),
        }
    }
}

/// Serves the LAN until `stop`, or until a check (every `setup.server_check`) finds
/// another DHCP server.
async fn serve_lan(setup: &Setup, mac: [u8; 6], stop: &CancellationToken) -> io::Result<Ended> {
    let us = setup.settings.server_id;
    // The periodic check runs beside the server and says when it finds another.
    let (found_tx, mut found) = tokio::sync::mpsc::channel::<Ipv4Addr>(1);
    let checker_stop = stop.child_token();
    let _checker = checker_stop.clone().drop_guard();
    {
        let (interface, every, stop) = (setup.interface.clone(), setup.server_check, checker_stop);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(every) => {}
                }
                if let Ok(Some(other)) = other_server(interface.as_deref(), us, mac).await {
                    let _ = found_tx.send(other).await;
                    return;
                }
            }
        });
    }
    let db_path = setup.db.clone();
    let db = tokio::task::spawn_blocking(move || Db::open(&db_path))
        .await
        .map_err(io::Error::other)?
        .map_err(|e| io::Error::other(format!("dhcp: {e}")))?;
    let db = Arc::new(Mutex::new(db));
    let mut pool = Pool::new(
        setup.first,
        setup.last,
        &setup.excluded,
        setup.reservations.clone(),
    );
    {
        let db = Arc::clone(&db);
        let leases = tokio::task::spawn_blocking(move || {
            db.lock().unwrap_or_else(PoisonError::into_inner).leases()
        })
        .await
        .map_err(io::Error::other)?
        .map_err(|e| io::Error::other(format!("dhcp: {e}")))?;
        let mut restored = 0;
        for b in leases.iter().filter_map(from_lease) {
            pool.restore(b);
            restored += 1;
        }
        info!(message = "dhcp: leases restored", count = restored);
    }

    let socket = UdpSocket::from_std(udp_socket(SERVER_PORT, setup.interface.as_deref())?)?;
    let raw = match setup.interface.as_deref().map(raw::RawSender::open) {
        Some(Ok(r)) => Some(r),
        Some(Err(error)) => {
            warn!(message = "dhcp: cannot reply to hardware addresses; broadcasting instead", %error);
            None
        }
        None => None,
    };
    info!(message = "dhcp: serving", interface = setup.interface.as_deref().unwrap_or("(any)"), first = %setup.first, last = %setup.last);

    let mut prober = match setup.ping_check {
        true => match probe::Prober::open(setup.interface.as_deref()) {
            Ok(p) => Some(p),
            Err(error) => {
                warn!(message = "dhcp: ping check unavailable; offering without it", %error);
                None
            }
        },
        false => None,
    };
    // Offers waiting for their ping check: (address, offer, where to, when it goes out).
    let mut probing: Vec<(Ipv4Addr, Message, Dest, tokio::time::Instant)> = Vec::new();
    let mut buf = vec![0u8; 1500];
    // The assigned phones' addresses follow their tokens (read every 2 s).
    let mut settings = setup.settings.clone();
    let provisioning = settings.options.provisioning.clone();
    let mut phones_every = tokio::time::interval(Duration::from_secs(2));
    loop {
        let due = probing.iter().map(|p| p.3).min();
        tokio::select! {
            () = stop.cancelled() => return Ok(Ended::Stopped),
            Some(other) = found.recv() => return Ok(Ended::OtherServer(other)),
            _ = phones_every.tick(), if !setup.phones.is_empty() => {
                if let Some(p) = &provisioning {
                    settings.phone_urls = phone_urls(&db, &setup.phones, &p.https).await;
                }
                continue;
            }
            r = socket.readable() => r?,
            answered = async {
                match &prober {
                    Some(p) => p.answered().await,
                    None => std::future::pending().await,
                }
            }, if prober.is_some() => {
                if let Ok(addr) = answered
                    && probing.iter().any(|p| p.0 == addr)
                {
                    warn!(message = "dhcp: an address answered a ping; a device uses it without a lease, so it is kept out of the pool", address = %addr);
                    pool.mark_in_use(addr, now_unix());
                    probing.retain(|p| p.0 != addr);
                }
                continue;
            }
            () = tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)), if due.is_some() => {
                let now = tokio::time::Instant::now();
                let (ready, waiting): (Vec<_>, Vec<_>) = probing.drain(..).partition(|p| p.3 <= now);
                probing = waiting;
                for (_, offer, dest, _) in ready {
                    if let Err(error) = send(&socket, raw.as_ref(), us, &offer, dest).await {
                        debug!(message = "dhcp: offer not sent", ?dest, %error);
                    }
                }
                continue;
            }
        }
        // A batch: everything waiting now. Replies that promise nothing durable (offers,
        // NAKs) go out as they are made; the ACKs of new or extended leases wait for
        // the batch's commit.
        let now = now_unix();
        let mut at_once: Vec<(Message, Dest)> = Vec::new();
        let mut after_commit: Vec<(Message, Dest)> = Vec::new();
        let mut durable: Vec<Lease> = Vec::new();
        let (mut handled, mut lingered) = (0, false);
        loop {
            while handled < BATCH {
                let (len, from) = match socket.try_recv_from(&mut buf) {
                    Ok(x) => x,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(error) => {
                        debug!(message = "dhcp: receive failed", %error);
                        break;
                    }
                };
                handled += 1;
                let Some(msg) = buf.get(..len).and_then(decode) else {
                    debug!(message = "dhcp: malformed message dropped", %from);
                    continue;
                };
                if msg.chaddr().get(..6) == Some(&mac[..]) {
                    continue; // our own probe for other servers
                }
                match handler::handle(&mut pool, &settings, &msg, now) {
                    Decision::Reply {
                        reply,
                        dest,
                        persist: Some(binding),
                    } => {
                        durable.push(to_lease(&binding));
                        after_commit.push((*reply, dest));
                    }
                    Decision::Reply {
                        reply,
                        dest,
                        persist: None,
                    } => at_once.push((*reply, dest)),
                    Decision::Offer {
                        reply,
                        dest,
                        address,
                        fresh,
                    } => match prober.as_mut() {
                        Some(p) if fresh => {
                            // A client repeating its DISCOVER while the check runs waits for it.
                            if !probing.iter().any(|q| q.0 == address) {
                                if let Err(error) = p.ping(address) {
                                    debug!(message = "dhcp: ping not sent", %address, %error);
                                }
                                probing.push((
                                    address,
                                    *reply,
                                    dest,
                                    tokio::time::Instant::now() + probe::PROBE_WAIT,
                                ));
                            }
                        }
                        _ => at_once.push((*reply, dest)),
                    },
                    Decision::Record(b) => durable.push(to_lease(&b)),
                    Decision::Ignore(why) => debug!(message = "dhcp: message ignored", %from, why),
                }
            }
            send_all(&socket, raw.as_ref(), us, at_once.drain(..)).await;
            // Group commit: a small batch with leases to write waits a moment for more
            // messages, so that one fsync covers more clients. A big batch (the commits
            // are what holds the server up) needs no wait to share its fsync.
            if lingered || handled >= LINGER_BELOW || durable.is_empty() {
                break;
            }
            lingered = true;
            tokio::time::sleep(LINGER).await;
        }
        if !durable.is_empty() {
            let db = Arc::clone(&db);
            let written = tokio::task::spawn_blocking(move || {
                db.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .upsert_leases(&durable)
            })
            .await;
            match written {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    error!(message = "dhcp: leases not written; no ACK is sent for them", error = %e);
                    after_commit.clear();
                }
                Err(e) => {
                    error!(message = "dhcp: lease writer failed; no ACK is sent", error = %e);
                    after_commit.clear();
                }
            }
        }
        send_all(&socket, raw.as_ref(), us, after_commit.drain(..)).await;
    }
}

async fn send_all(
    socket: &UdpSocket,
    raw: Option<&raw::RawSender>,
    us: Ipv4Addr,
    replies: impl Iterator<Item = (Message, Dest)>,
) {
    for (reply, dest) in replies {
        if let Err(error) = send(socket, raw, us, &reply, dest).await {
            debug!(message = "dhcp: reply not sent", ?dest, %error);
        }
    }
}

async fn send(
    socket: &UdpSocket,
    raw: Option<&raw::RawSender>,
    us: Ipv4Addr,
    reply: &Message,
    dest: Dest,
) -> io::Result<()> {
    let bytes = reply.to_vec().map_err(io::Error::other)?;
    let to: SocketAddr = match dest {
        Dest::Broadcast => (Ipv4Addr::BROADCAST, CLIENT_PORT).into(),
        Dest::Client(ip) => (ip, CLIENT_PORT).into(),
        Dest::Relay(ip) => (ip, SERVER_PORT).into(),
        Dest::Hardware { mac, ip } => match raw {
            Some(raw) => return raw.send((us, SERVER_PORT), (ip, CLIENT_PORT), mac, &bytes),
            None => (Ipv4Addr::BROADCAST, CLIENT_PORT).into(),
        },
    };
    socket.send_to(&bytes, to).await.map(drop)
}

/// The lease table as `officebox dhcp leases` prints it.
pub fn leases(config: &Config) -> io::Result<Vec<Lease>> {
    let db = Db::open(&officebox_store::state_db(&config.data_dir))
        .map_err(|e| io::Error::other(e.to_string()))?;
    db.leases().map_err(|e| io::Error::other(e.to_string()))
}

/// What the WAN client runs with, when the config has one.
fn wan_client(config: &Config) -> Option<client::WanClient> {
    let net = &config.network;
    let dhcp = match net.wan.addressing {
        officebox_config::WanAddressing::Dhcp {
            release_on_shutdown,
        } => release_on_shutdown,
        officebox_config::WanAddressing::Static { .. } => return None,
    };
    if !net.manage || !officebox_config::derive::wan_in_use(config.security.mode) {
        return None;
    }
    Some(client::WanClient {
        interface: net.wan.interface.clone()?,
        hostname: net.hostname.clone(),
        release_on_shutdown: dhcp,
        db: officebox_store::state_db(&config.data_dir),
    })
}

/// Whether the config runs the WAN DHCP client.
pub fn wan_client_enabled(config: &Config) -> bool {
    wan_client(config).is_some()
}

/// Runs the WAN DHCP client until `shutdown`; restarts it when the config changes it.
pub async fn serve_wan(
    mut config_rx: watch::Receiver<Arc<Config>>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    loop {
        let Some(wan) = wan_client(&config_rx.borrow_and_update()) else {
            return Ok(());
        };
        let stop = shutdown.child_token();
        let run = client::run(wan.clone(), stop.clone());
        tokio::pin!(run);
        let restart = loop {
            tokio::select! {
                r = &mut run => { r?; return Ok(()); }
                changed = config_rx.changed() => {
                    if changed.is_err() {
                        break false;
                    }
                    if wan_client(&config_rx.borrow()) != Some(wan.clone()) {
                        break true;
                    }
                }
            }
        };
        stop.cancel();
        let _ = run.await;
        if !restart {
            return Ok(());
        }
    }
}
