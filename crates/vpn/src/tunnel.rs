//! The WireGuard datapath: one UDP socket for every peer, and the tunnel's inner IP
//! packets ([`Packets`]: the TUN device in service). boringtun does the protocol (the
//! Noise handshake, the session keys, ChaCha20-Poly1305, the timers); this module routes:
//!
//! - out: an inner packet goes to the peer whose allowed subnets hold its destination
//!   (the longest match), encrypted to the peer's endpoint; nothing goes to a destination
//!   no peer has;
//! - in: a datagram is first checked by the shared rate limiter (its MAC; a cookie reply
//!   instead of work when the box is under a handshake flood), then belongs to a peer by
//!   its receiver index (each peer's sessions carry its number in their top 24 bits) or,
//!   for a handshake initiation, by the static key the initiation proves. Anything else,
//!   a stranger's handshake among it, is dropped without a word: a WireGuard port
//!   answers nobody it does not know;
//! - a decrypted packet is delivered only when its source is inside the sending peer's
//!   allowed subnets (cryptokey routing: a peer cannot speak for another's addresses);
//! - the peer's endpoint follows the address its last authenticated datagram came from
//!   (roaming), so a site behind a changing address, or a laptop, is found again.
//!
//! Every 250 ms each peer's timers run (handshake retries, keepalives, rekeying), and
//! the status ([`PeerStatus`]) is published.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use boringtun::noise::errors::WireGuardError;
use boringtun::noise::handshake::parse_handshake_anon;
use boringtun::noise::rate_limiter::RateLimiter;
use boringtun::noise::{Packet, Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

/// The largest inner packet (an IPv4 packet's own limit).
const MAX_PACKET: usize = 65_535;
/// What WireGuard adds to a packet (header, counter, tag), and its smallest message (a
/// handshake initiation is 148 bytes).
const OVERHEAD: usize = 32;
const MIN_BUFFER: usize = 148;
/// Handshakes a second from everyone before the box asks for cookies (boringtun's
/// device uses the same figure).
const HANDSHAKES_PER_SECOND: u64 = 100;

/// An IPv4 subnet a peer may use as a source, and is routed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    fn mask(self) -> u32 {
        match self.prefix {
            0 => 0,
            p => u32::MAX << (32 - u32::from(p.min(32))),
        }
    }

    /// Whether `ip` is inside.
    pub fn contains(self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network) & self.mask()
    }
}

/// One peer: another site's box, or a remote worker's device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// For logs and the status.
    pub name: String,
    pub public_key: [u8; 32],
    /// Where it is first sent to (a remote device has none until it speaks).
    pub endpoint: Option<SocketAddr>,
    /// The addresses behind it: its sources, and where packets for them go.
    pub allowed: Vec<Subnet>,
    /// Seconds between keepalives (keeps a NAT's mapping open), if any.
    pub keepalive: Option<u16>,
}

/// How a peer is doing, as `officebox vpn status` and the Sites page show it.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerStatus {
    pub name: String,
    pub endpoint: Option<SocketAddr>,
    /// Since the last completed handshake, if there was one.
    pub last_handshake: Option<Duration>,
    /// Inner bytes sent and received.
    pub sent: u64,
    pub received: u64,
}

/// Where the tunnel's inner packets come from and go to.
pub trait Packets: Send + Sync {
    /// The next packet to send through the tunnel, into `buf`; its length.
    fn recv(&self, buf: &mut [u8]) -> impl Future<Output = io::Result<usize>> + Send;
    /// Delivers a packet that came out of the tunnel.
    fn send(&self, packet: &[u8]) -> impl Future<Output = io::Result<()>> + Send;
    /// The next packet if one is waiting already (`WouldBlock` if not): a burst is
    /// handled in one turn of the loop.
    fn try_recv(&self, _buf: &mut [u8]) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }
}

/// Packets or datagrams handled in one turn of the loop at most, when they are waiting
/// already (fewer wake-ups under load; the other side is not kept waiting long).
const BURST: usize = 32;

/// A peer and its protocol state.
struct Peer {
    config: PeerConfig,
    tunn: Tunn,
    endpoint: Option<SocketAddr>,
}

/// The box's side of its tunnels: its key and its peers.
pub struct Tunnel {
    secret: StaticSecret,
    public: PublicKey,
    /// By number (a session's receiver index carries it): a peer removed leaves its
    /// place empty, so that no one else's sessions are taken for its.
    peers: Vec<Option<Peer>>,
    /// The peer list to follow while running (see [`Tunnel::follow`]).
    updates: Option<watch::Receiver<Vec<PeerConfig>>>,
    limiter: Arc<RateLimiter>,
    status: watch::Sender<Vec<PeerStatus>>,
}

impl std::fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tunnel")
            .field("peers", &self.peers.len())
            .finish_non_exhaustive()
    }
}

impl Tunnel {
    /// The tunnels of the box whose private key is `secret`, to `peers`.
    pub fn new(secret: [u8; 32], peers: Vec<PeerConfig>) -> Tunnel {
        let secret = StaticSecret::from(secret);
        let public = PublicKey::from(&secret);
        let limiter = Arc::new(RateLimiter::new(&public, HANDSHAKES_PER_SECOND));
        let (status, _) = watch::channel(Vec::new());
        let mut tunnel = Tunnel {
            secret,
            public,
            peers: Vec::new(),
            updates: None,
            limiter,
            status,
        };
        tunnel.set_peers(peers);
        tunnel
    }

    /// Makes `wanted` the peers: one whose settings are unchanged keeps its sessions;
    /// one no longer wanted is dropped at once (its sessions with it: a removed device
    /// gets nothing more through); a new one gets a new number.
    pub fn set_peers(&mut self, wanted: Vec<PeerConfig>) {
        for slot in &mut self.peers {
            if slot.as_ref().is_some_and(|p| !wanted.contains(&p.config))
                && let Some(p) = slot.take()
            {
                info!(message = "vpn: a peer removed", peer = %p.config.name);
            }
        }
        for config in wanted {
            if self.peers.iter().flatten().any(|p| p.config == config) {
                continue;
            }
            let number = u32::try_from(self.peers.len()).unwrap_or(u32::MAX);
            self.peers.push(Some(Peer {
                tunn: Tunn::new(
                    self.secret.clone(),
                    PublicKey::from(config.public_key),
                    None,
                    config.keepalive,
                    number,
                    Some(Arc::clone(&self.limiter)),
                ),
                endpoint: config.endpoint,
                config,
            }));
        }
        self.publish();
    }

    /// While running, follow `peers` (the whole list, each time it changes).
    pub fn follow(&mut self, peers: watch::Receiver<Vec<PeerConfig>>) {
        self.updates = Some(peers);
    }

    /// The box's public key.
    pub fn public_key(&self) -> [u8; 32] {
        *self.public.as_bytes()
    }

    /// The peers' status, updated as the tunnel runs.
    pub fn status(&self) -> watch::Receiver<Vec<PeerStatus>> {
        self.status.subscribe()
    }

    /// Carries packets between `packets` and the peers over `udp` until `stop`.
    pub async fn run<P: Packets>(mut self, packets: &P, udp: &UdpSocket, stop: CancellationToken) {
        let mut inner = vec![0u8; MAX_PACKET];
        let mut outer = vec![0u8; MAX_PACKET + OVERHEAD];
        let mut out = vec![0u8; MAX_PACKET + OVERHEAD + MIN_BUFFER];
        let mut timers = tokio::time::interval(Duration::from_millis(250));
        timers.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut second = tokio::time::interval(Duration::from_secs(1));
        second.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut updates = self.updates.take();
        loop {
            let update = async {
                if let Some(rx) = updates.as_mut()
                    && rx.changed().await.is_ok()
                {
                    return Some(rx.borrow_and_update().clone());
                }
                std::future::pending().await
            };
            tokio::select! {
                () = stop.cancelled() => break,
                Some(peers) = update => self.set_peers(peers),
                r = packets.recv(&mut inner) => match r {
                    Ok(n) => {
                        let packet = inner.get(..n).unwrap_or_default();
                        self.outgoing(packet, udp, &mut out).await;
                        for _ in 1..BURST {
                            let Ok(n) = packets.try_recv(&mut inner) else { break };
                            let packet = inner.get(..n).unwrap_or_default();
                            self.outgoing(packet, udp, &mut out).await;
                        }
                    }
                    Err(error) => {
                        debug!(message = "vpn: reading the tunnel's packets failed", %error);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
                r = udp.recv_from(&mut outer) => {
                    if let Ok((n, from)) = r {
                        let datagram = outer.get(..n).unwrap_or_default();
                        self.incoming(datagram, from, packets, udp, &mut out).await;
                        for _ in 1..BURST {
                            let Ok((n, from)) = udp.try_recv_from(&mut outer) else { break };
                            let datagram = outer.get(..n).unwrap_or_default();
                            self.incoming(datagram, from, packets, udp, &mut out).await;
                        }
                    }
                },
                _ = timers.tick() => self.timers(udp, &mut out).await,
                _ = second.tick() => {
                    self.limiter.reset_count();
                    self.publish();
                },
            }
        }
    }

    /// The peer whose allowed subnets hold `dst` most narrowly.
    fn route(&self, dst: Ipv4Addr) -> Option<usize> {
        let mut best: Option<(usize, u8)> = None;
        for (i, p) in self.peers.iter().enumerate() {
            let Some(p) = p else { continue };
            for s in &p.config.allowed {
                if s.contains(dst) && best.is_none_or(|(_, prefix)| s.prefix > prefix) {
                    best = Some((i, s.prefix));
                }
            }
        }
        best.map(|(i, _)| i)
    }

    /// An inner packet: encrypted to the peer its destination belongs to.
    async fn outgoing(&mut self, packet: &[u8], udp: &UdpSocket, out: &mut [u8]) {
        let Some(IpAddr::V4(dst)) = Tunn::dst_address(packet) else {
            return;
        };
        let Some(peer) = self
            .route(dst)
            .and_then(|i| self.peers.get_mut(i)?.as_mut())
        else {
            return;
        };
        // The inner packet's DSCP mark goes on the outer one (voice stays voice at the
        // ISP's bottleneck and in the box's own shaper); its ECN bits do not.
        let tos = packet.get(1).map_or(0, |t| t & 0xfc);
        match peer.tunn.encapsulate(packet, out) {
            TunnResult::WriteToNetwork(datagram) => {
                if let Some(to) = peer.endpoint {
                    let _ = officebox_sockets::udp::send_marked(udp, datagram, to, tos).await;
                }
            }
            TunnResult::Err(error) => {
                debug!(message = "vpn: a packet could not be sent", peer = %peer.config.name, ?error);
            }
            _ => {}
        }
    }

    /// Which peer a datagram from the network belongs to, if any.
    fn peer_of(&self, packet: &Packet<'_>) -> Option<usize> {
        let index = match packet {
            Packet::HandshakeInit(init) => {
                let half = parse_handshake_anon(&self.secret, &self.public, init).ok()?;
                return self.peers.iter().position(|p| {
                    p.as_ref()
                        .is_some_and(|p| p.config.public_key == half.peer_static_public)
                });
            }
            Packet::HandshakeResponse(r) => r.receiver_idx,
            Packet::PacketCookieReply(c) => c.receiver_idx,
            Packet::PacketData(d) => d.receiver_idx,
        };
        usize::try_from(index >> 8).ok()
    }

    /// A datagram from the network: a handshake answered, or a packet decrypted and
    /// delivered (when its source is the peer's).
    async fn incoming<P: Packets>(
        &mut self,
        datagram: &[u8],
        from: SocketAddr,
        packets: &P,
        udp: &UdpSocket,
        out: &mut [u8],
    ) {
        let packet = match self.limiter.verify_packet(Some(from.ip()), datagram, out) {
            Ok(packet) => packet,
            Err(TunnResult::WriteToNetwork(cookie)) => {
                let _ = udp.send_to(cookie, from).await;
                return;
            }
            Err(_) => return,
        };
        let Some(peer) = self
            .peer_of(&packet)
            .and_then(|i| self.peers.get_mut(i)?.as_mut())
        else {
            return;
        };
        let mut first = true;
        loop {
            let result = if first {
                peer.tunn.decapsulate(Some(from.ip()), datagram, out)
            } else {
                // Packets queued while the handshake went on go out now.
                peer.tunn.decapsulate(None, &[], out)
            };
            first = false;
            match result {
                TunnResult::WriteToNetwork(reply) => {
                    roam(peer, from);
                    let _ = udp.send_to(reply, from).await;
                }
                TunnResult::WriteToTunnelV4(inner, source) => {
                    if peer.config.allowed.iter().any(|s| s.contains(source)) {
                        roam(peer, from);
                        let _ = packets.send(inner).await;
                    } else {
                        debug!(message = "vpn: a packet from outside the peer's subnets dropped", peer = %peer.config.name, %source);
                    }
                    break;
                }
                TunnResult::WriteToTunnelV6(..) | TunnResult::Done => break,
                TunnResult::Err(error) => {
                    debug!(message = "vpn: a datagram was refused", peer = %peer.config.name, ?error);
                    break;
                }
            }
        }
    }

    /// Each peer's timers: handshakes started or retried, keepalives, expiry.
    async fn timers(&mut self, udp: &UdpSocket, out: &mut [u8]) {
        for peer in self.peers.iter_mut().flatten() {
            match peer.tunn.update_timers(out) {
                TunnResult::WriteToNetwork(datagram) => {
                    if let Some(to) = peer.endpoint {
                        let _ = udp.send_to(datagram, to).await;
                    }
                }
                TunnResult::Err(WireGuardError::ConnectionExpired) | TunnResult::Done => {}
                TunnResult::Err(error) => {
                    debug!(message = "vpn: a peer's timers failed", peer = %peer.config.name, ?error);
                }
                _ => {}
            }
        }
    }

    /// Publishes every peer's status.
    fn publish(&self) {
        let now: Vec<PeerStatus> = self
            .peers
            .iter()
            .flatten()
            .map(|p| {
                let (last_handshake, sent, received, ..) = p.tunn.stats();
                PeerStatus {
                    name: p.config.name.clone(),
                    endpoint: p.endpoint,
                    last_handshake,
                    sent: sent as u64,
                    received: received as u64,
                }
            })
            .collect();
        self.status.send_if_modified(|s| {
            if *s == now {
                false
            } else {
                *s = now;
                true
            }
        });
    }
}

/// The peer spoke from `from` (authenticated): its packets go there now.
fn roam(peer: &mut Peer, from: SocketAddr) {
    if peer.endpoint != Some(from) {
        if peer.endpoint.is_some() {
            info!(message = "vpn: a peer moved", peer = %peer.config.name, endpoint = %from);
        }
        peer.endpoint = Some(from);
    }
}
