//! The WAN's DHCP client (RFC 2131, client side): leases officebox's WAN address from the
//! ISP, renews at T1 (unicast), rebinds at T2 (broadcast), starts over on NAK or expiry,
//! and releases on shutdown when the config asks.
//!
//! As the appliance's manual requires, it takes only the address, the netmask and the
//! router from the ISP: DNS servers and the domain are always the admin's.
//!
//! Until it has an address the client cannot receive unicast, so its DISCOVER and REQUEST
//! set the broadcast flag (RFC 2131 4.1): servers then broadcast their answers, which an
//! ordinary UDP socket on port 68 bound to the WAN interface receives.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use dhcproto::Encodable;
use dhcproto::v4::{DhcpOption, Flags, HType, Message, MessageType, Opcode, OptionCode};
use officebox_sockets::netlink::Netlink;
use tokio::net::UdpSocket;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{CLIENT_PORT, SERVER_PORT, decode, udp_socket};

/// What the WAN client needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WanClient {
    pub interface: String,
    pub hostname: String,
    pub release_on_shutdown: bool,
    /// The state database, where the leased address is kept for DNS and the admin pages.
    pub db: PathBuf,
}

/// A lease from the ISP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WanLease {
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub router: Option<Ipv4Addr>,
    pub server: Ipv4Addr,
    pub lease: Duration,
    pub t1: Duration,
    pub t2: Duration,
}

/// Reads a lease from an ACK.
pub fn lease_of(ack: &Message) -> Option<WanLease> {
    let opts = ack.opts();
    let prefix = match opts.get(OptionCode::SubnetMask) {
        Some(DhcpOption::SubnetMask(m)) => u8::try_from(u32::from(*m).leading_ones()).ok()?,
        _ => 24,
    };
    let router = match opts.get(OptionCode::Router) {
        Some(DhcpOption::Router(r)) => r.first().copied(),
        _ => None,
    };
    let server = match opts.get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(s)) => *s,
        _ => return None,
    };
    let secs = |code, default: u64| match opts.get(code) {
        Some(
            DhcpOption::AddressLeaseTime(s) | DhcpOption::Renewal(s) | DhcpOption::Rebinding(s),
        ) => u64::from(*s),
        _ => default,
    };
    let lease = secs(OptionCode::AddressLeaseTime, 3600).max(10);
    let t1 = secs(OptionCode::Renewal, lease / 2).min(lease);
    let t2 = secs(OptionCode::Rebinding, lease * 7 / 8).clamp(t1, lease);
    Some(WanLease {
        address: ack.yiaddr(),
        prefix,
        router,
        server,
        lease: Duration::from_secs(lease),
        t1: Duration::from_secs(t1),
        t2: Duration::from_secs(t2),
    })
}

struct Exchange {
    socket: UdpSocket,
    mac: [u8; 6],
    hostname: String,
}

impl Exchange {
    fn message(&self, kind: MessageType, xid: u32, broadcast: bool) -> Message {
        let mut m = Message::default();
        m.set_opcode(Opcode::BootRequest)
            .set_htype(HType::Eth)
            .set_xid(xid)
            .set_chaddr(&self.mac);
        if broadcast {
            m.set_flags(Flags::default().set_broadcast());
        }
        let opts = m.opts_mut();
        opts.insert(DhcpOption::MessageType(kind));
        opts.insert(DhcpOption::Hostname(self.hostname.clone()));
        // Only what we use: never DNS servers or the domain (the admin enters those).
        opts.insert(DhcpOption::ParameterRequestList(vec![
            OptionCode::SubnetMask,
            OptionCode::Router,
            OptionCode::AddressLeaseTime,
            OptionCode::Renewal,
            OptionCode::Rebinding,
        ]));
        m
    }

    async fn send(&self, msg: &Message, to: SocketAddr) -> io::Result<()> {
        let bytes = msg.to_vec().map_err(io::Error::other)?;
        self.socket.send_to(&bytes, to).await.map(drop)
    }

    /// Waits up to `wait` for a reply to `xid` of one of `kinds`.
    async fn reply(&self, xid: u32, kinds: &[MessageType], wait: Duration) -> Option<Message> {
        let deadline = Instant::now() + wait;
        let mut buf = vec![0u8; 1500];
        loop {
            let (len, _) = timeout(
                deadline.saturating_duration_since(Instant::now()),
                self.socket.recv_from(&mut buf),
            )
            .await
            .ok()?
            .ok()?;
            let Some(m) = buf.get(..len).and_then(decode) else {
                continue;
            };
            if m.opcode() == Opcode::BootReply
                && m.xid() == xid
                && m.chaddr() == self.mac
                && m.opts().msg_type().is_some_and(|k| kinds.contains(&k))
            {
                return Some(m);
            }
        }
    }

    /// DISCOVER, OFFER, REQUEST, ACK: a new lease.
    async fn obtain(&self, stop: &CancellationToken) -> Option<WanLease> {
        let mut wait = Duration::from_secs(2);
        loop {
            let xid: u32 = rand::random();
            let discover = self.message(MessageType::Discover, xid, true);
            if let Err(error) = self
                .send(&discover, (Ipv4Addr::BROADCAST, SERVER_PORT).into())
                .await
            {
                warn!(message = "wan dhcp: discover not sent", %error);
            }
            let offer = tokio::select! {
                () = stop.cancelled() => return None,
                o = self.reply(xid, &[MessageType::Offer], wait) => o,
            };
            if let Some(offer) = offer
                && let Some(DhcpOption::ServerIdentifier(server)) =
                    offer.opts().get(OptionCode::ServerIdentifier).cloned()
            {
                let mut request = self.message(MessageType::Request, xid, true);
                request
                    .opts_mut()
                    .insert(DhcpOption::ServerIdentifier(server));
                request
                    .opts_mut()
                    .insert(DhcpOption::RequestedIpAddress(offer.yiaddr()));
                if self
                    .send(&request, (Ipv4Addr::BROADCAST, SERVER_PORT).into())
                    .await
                    .is_ok()
                    && let Some(ack) = self
                        .reply(
                            xid,
                            &[MessageType::Ack, MessageType::Nak],
                            Duration::from_secs(4),
                        )
                        .await
                    && ack.opts().msg_type() == Some(MessageType::Ack)
                    && let Some(lease) = lease_of(&ack)
                {
                    return Some(lease);
                }
            }
            wait = (wait * 2).min(Duration::from_secs(32));
        }
    }

    /// RENEWING (unicast to the server) or REBINDING (broadcast): `Ok(Some)` extended,
    /// `Ok(None)` no answer, `Err` NAK.
    async fn extend(&self, lease: &WanLease, rebinding: bool) -> Result<Option<WanLease>, ()> {
        let xid: u32 = rand::random();
        let mut request = self.message(MessageType::Request, xid, false);
        request.set_ciaddr(lease.address);
        let to: SocketAddr = if rebinding {
            (Ipv4Addr::BROADCAST, SERVER_PORT).into()
        } else {
            (lease.server, SERVER_PORT).into()
        };
        if self.send(&request, to).await.is_err() {
            return Ok(None);
        }
        match self
            .reply(
                xid,
                &[MessageType::Ack, MessageType::Nak],
                Duration::from_secs(4),
            )
            .await
        {
            Some(m) if m.opts().msg_type() == Some(MessageType::Nak) => Err(()),
            Some(m) => Ok(lease_of(&m)),
            None => Ok(None),
        }
    }
}

/// Puts the leased address and the default route on the WAN interface.
async fn configure(interface: &str, lease: &WanLease) -> io::Result<()> {
    let nl = Netlink::open()?;
    let index = nl.set_link(interface, true).await?;
    nl.put_address(index, lease.address, lease.prefix).await?;
    if let Some(router) = lease.router {
        nl.put_default_route(router).await?;
    }
    Ok(())
}

/// Takes the address off the WAN interface (lease lost or released).
async fn unconfigure(interface: &str, lease: &WanLease) -> io::Result<()> {
    let nl = Netlink::open()?;
    let index = nl.link_index(interface).await?;
    for (ip, _, address) in nl.ipv4_addresses(index).await? {
        if ip == lease.address {
            nl.delete_address(address).await?;
        }
    }
    Ok(())
}

/// Whether the interface has a carrier (a cable, a peer).
fn carrier(interface: &str) -> bool {
    std::fs::read_to_string(format!("/sys/class/net/{interface}/carrier"))
        .is_ok_and(|s| s.trim() == "1")
}

/// Returns once the link has gone down and come back up (checked every second).
async fn link_flapped(interface: &str) {
    let mut went_down = false;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        match (went_down, carrier(interface)) {
            (false, false) => went_down = true,
            (true, true) => return,
            _ => {}
        }
    }
}

/// The client's one handle on the state database, where it records the WAN address for
/// the services that name it (DNS, the admin pages).
type Store = std::sync::Arc<std::sync::Mutex<officebox_store::Db>>;

async fn open_store(path: &std::path::Path) -> io::Result<Store> {
    let path = path.to_path_buf();
    let db = tokio::task::spawn_blocking(move || officebox_store::Db::open(&path))
        .await
        .map_err(io::Error::other)?
        .map_err(|e| io::Error::other(format!("wan dhcp: {e}")))?;
    Ok(std::sync::Arc::new(std::sync::Mutex::new(db)))
}

/// Records the WAN address through the client's handle, opened at the first record (a
/// database that cannot be opened is logged, and tried again next time: the uplink
/// matters more than the record).
async fn record(store: &mut Option<Store>, path: &std::path::Path, address: Option<Ipv4Addr>) {
    if store.is_none() {
        match open_store(path).await {
            Ok(opened) => *store = Some(opened),
            Err(error) => {
                warn!(message = "wan dhcp: the WAN address is not recorded", %error);
                return;
            }
        }
    }
    let Some(db) = store.as_ref() else { return };
    let db = std::sync::Arc::clone(db);
    let written = tokio::task::spawn_blocking(move || match db.lock() {
        Ok(db) => db.set_wan_address(address).map_err(|e| e.to_string()),
        Err(_) => Err("the database handle was poisoned".to_string()),
    })
    .await;
    match written {
        Ok(Ok(())) => {}
        Ok(Err(error)) => warn!(message = "wan dhcp: the WAN address is not recorded", %error),
        Err(error) => warn!(message = "wan dhcp: the WAN address is not recorded", %error),
    }
}

fn interface_mac(interface: &str) -> io::Result<[u8; 6]> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{interface}/address"))?;
    let mac = officebox_config::values::parse_mac(text.trim()).map_err(io::Error::other)?;
    Ok(mac.0)
}

/// Keeps a WAN lease until `stop` is cancelled.
pub async fn run(client: WanClient, stop: CancellationToken) -> io::Result<()> {
    let exchange = Exchange {
        socket: UdpSocket::from_std(udp_socket(CLIENT_PORT, Some(&client.interface))?)?,
        mac: interface_mac(&client.interface)?,
        hostname: client.hostname.clone(),
    };
    let mut store: Option<Store> = None;
    'lease: loop {
        let Some(mut lease) = exchange.obtain(&stop).await else {
            return Ok(());
        };
        if let Err(error) = configure(&client.interface, &lease).await {
            // A passing netlink failure must not take officebox down: try again shortly.
            warn!(message = "wan dhcp: cannot configure the WAN address; trying again", %error);
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                () = tokio::time::sleep(Duration::from_secs(5)) => continue 'lease,
            }
        }
        record(&mut store, &client.db, Some(lease.address)).await;
        info!(message = "wan dhcp: bound", address = %lease.address, prefix = lease.prefix, router = ?lease.router, lease_secs = lease.lease.as_secs());
        let mut start = Instant::now();
        loop {
            let (t1, t2, end) = (start + lease.t1, start + lease.t2, start + lease.lease);
            let now = Instant::now();
            // Before T1 wait for it; then renew (unicast), after T2 rebind (broadcast),
            // retrying every few seconds until the lease ends.
            let (when, rebinding) = if now < t1 {
                (t1, false)
            } else {
                (now, now >= t2)
            };
            tokio::select! {
                () = stop.cancelled() => {
                    if client.release_on_shutdown {
                        let mut release = exchange.message(MessageType::Release, rand::random(), false);
                        release.set_ciaddr(lease.address);
                        release.opts_mut().insert(DhcpOption::ServerIdentifier(lease.server));
                        let _ = exchange.send(&release, (lease.server, SERVER_PORT).into()).await;
                        let _ = unconfigure(&client.interface, &lease).await;
                        record(&mut store, &client.db, None).await;
                        info!(message = "wan dhcp: released", address = %lease.address);
                    }
                    return Ok(());
                }
                () = sleep_until(when) => {}
                () = link_flapped(&client.interface) => {
                    // Plugged into another network, maybe: ask again from the start.
                    info!(message = "wan dhcp: the WAN link went down and came back; asking for a lease again", interface = %client.interface);
                    let _ = unconfigure(&client.interface, &lease).await;
                    continue 'lease;
                }
            }
            if Instant::now() >= end {
                warn!(message = "wan dhcp: the lease expired; starting over", address = %lease.address);
                let _ = unconfigure(&client.interface, &lease).await;
                continue 'lease;
            }
            match exchange.extend(&lease, rebinding).await {
                Ok(Some(renewed)) => {
                    if (renewed.address, renewed.prefix, renewed.router)
                        != (lease.address, lease.prefix, lease.router)
                    {
                        let _ = unconfigure(&client.interface, &lease).await;
                        if let Err(error) = configure(&client.interface, &renewed).await {
                            warn!(message = "wan dhcp: cannot apply the renewed lease; starting over", %error);
                            continue 'lease;
                        }
                    }
                    lease = renewed;
                    start = Instant::now();
                    info!(message = "wan dhcp: renewed", address = %lease.address, rebinding, lease_secs = lease.lease.as_secs());
                }
                Ok(None) => {
                    // RFC 2131 4.4.5: half the time left to T2 (or to the end), at least a
                    // minute, then ask again.
                    let now = Instant::now();
                    let target = if now < t2 { t2 } else { end };
                    let retry = (now
                        + (target.saturating_duration_since(now) / 2).max(Duration::from_secs(60)))
                    .min(end);
                    tokio::select! {
                        () = stop.cancelled() => {}
                        () = sleep_until(retry) => {}
                    }
                }
                Err(()) => {
                    warn!(message = "wan dhcp: the ISP refused the renewal (NAK); starting over", address = %lease.address);
                    let _ = unconfigure(&client.interface, &lease).await;
                    continue 'lease;
                }
            }
        }
    }
}
