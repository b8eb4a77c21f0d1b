//! The SIP server's sockets: a UDP socket and a TCP listener per address. Datagrams are
//! read with the address they were sent to and when they arrived (stale ones are
//! shed under overload); TCP streams are framed by Content-Length. [`ServerWire`] is how
//! the server and the calls send: on the phone's TCP connection when it has one, else
//! by UDP from the address the phone spoke to.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use officebox_config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use super::State;
use super::dispatch::{bad_request, datagram};
use crate::call::Wire;
use crate::sip::{self, Transport};

/// TCP connections at once, and how long one may sit idle.
pub(super) const MAX_TCP: usize = 1000;
const TCP_IDLE: Duration = Duration::from_secs(600);
/// A TCP connection that has not yet carried a whole SIP message is closed after this.
const TCP_SILENT_IDLE: Duration = Duration::from_secs(30);

/// How calls and the server send: the first UDP socket, and the TCP connections phones
/// keep open (by their address).
pub(super) struct ServerWire {
    udp: Arc<UdpSocket>,
    pub(super) local: SocketAddr,
    /// Whether the socket is bound to every address (then the box answers from the
    /// address on the route to each peer), or to `local`'s alone.
    any: bool,
    tcp: Mutex<HashMap<SocketAddr, mpsc::UnboundedSender<Vec<u8>>>>,
    /// Phones that spoke to another of the box's addresses than `local` (a LAN phone
    /// using the WAN address, say): what is sent to them goes out from that address.
    asked: Mutex<HashMap<SocketAddr, IpAddr>>,
    /// The source address of the route to each peer, looked up at most once a minute
    /// (a call to a provider asks for it twice).
    routes: Mutex<HashMap<IpAddr, (IpAddr, Instant)>>,
}

/// How long a route's source address is taken as known.
const ROUTE_FOR: Duration = Duration::from_secs(60);

/// Peers remembered in [`ServerWire::asked`] at most.
const MAX_ASKED: usize = 10_000;

impl ServerWire {
    pub(super) fn new(udp: Arc<UdpSocket>, local: SocketAddr, any: bool) -> ServerWire {
        ServerWire {
            udp,
            local,
            any,
            tcp: Mutex::default(),
            asked: Mutex::default(),
            routes: Mutex::default(),
        }
    }

    /// Notes which of the box's addresses `peer` sent its last datagram to.
    pub(super) fn learn(&self, peer: SocketAddr, to: Option<IpAddr>) {
        let other = to.filter(|ip| *ip != self.local.ip() && !ip.is_unspecified());
        let mut asked = self.asked.lock().unwrap_or_else(PoisonError::into_inner);
        match other {
            Some(ip) => {
                if asked.len() >= MAX_ASKED && !asked.contains_key(&peer) {
                    asked.clear();
                }
                asked.insert(peer, ip);
            }
            None if !asked.is_empty() => {
                asked.remove(&peer);
            }
            None => {}
        }
    }
}

impl ServerWire {
    /// The source of the route to `peer`, from the last minute's lookups when it can.
    fn route_source(&self, peer: SocketAddr) -> Option<IpAddr> {
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((ip, at)) = routes.get(&peer.ip())
            && at.elapsed() < ROUTE_FOR
        {
            return Some(*ip);
        }
        let ip = route_source(peer).ok()?;
        if routes.len() >= MAX_ASKED {
            routes.clear();
        }
        routes.insert(peer.ip(), (ip, Instant::now()));
        Some(ip)
    }
}

impl Wire for ServerWire {
    fn send(&self, bytes: Vec<u8>, to: SocketAddr, transport: Transport) {
        if transport != Transport::Udp {
            let tcp = self.tcp.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(w) = tcp.get(&to) {
                // On the connection, the top Via of our request names its transport.
                let _ = w.send(transport.stamp_via(bytes));
                return;
            }
        }
        // Non-blocking: a full socket buffer drops it, and retransmission covers that.
        let from = self
            .asked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&to)
            .copied();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&*self.udp);
        if let Err(error) = officebox_sockets::udp::send(fd, &bytes, to, from) {
            debug!(message = "phone: send failed", %to, %error);
        }
    }

    fn local(&self) -> SocketAddr {
        self.local
    }

    /// The address `peer` last spoke to, else the source of the route to it (a provider
    /// on the WAN sees the WAN address), when the socket is on every address.
    fn local_for(&self, peer: SocketAddr) -> IpAddr {
        if !self.any {
            return self.local.ip();
        }
        let asked = self
            .asked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&peer)
            .copied();
        asked
            .or_else(|| self.route_source(peer))
            .filter(|ip| ip.is_ipv4() == self.local.is_ipv4())
            .unwrap_or(self.local.ip())
    }
}

/// The receive buffer a SIP socket asks for: at 10,000 requests a second the kernel's
/// default (about 200 KB, 400 requests) is 40 ms of traffic, and a moment without CPU
/// (the phones' own software shares it on a small box) would drop requests that then
/// come back as retransmissions, adding to the load.
const RECEIVE_BUFFER: usize = 4 << 20;

fn big_receive_buffer(socket: &UdpSocket) {
    use nix::sys::socket::{setsockopt, sockopt};
    // As root the limit (net.core.rmem_max) does not apply; otherwise it caps the size.
    let r = setsockopt(socket, sockopt::RcvBufForce, &RECEIVE_BUFFER)
        .or_else(|_| setsockopt(socket, sockopt::RcvBuf, &RECEIVE_BUFFER));
    if let Err(error) = r {
        debug!(message = "phone: could not enlarge the receive buffer", %error);
    }
}

/// Binds the SIP port on `addr`: UDP (with a large receive buffer and receive
/// timestamps) and TCP, both sending with DSCP mark `dscp` (and the connections
/// accepted from the listener with it).
pub(super) async fn bind(addr: SocketAddr, dscp: u8) -> io::Result<(UdpSocket, TcpListener)> {
    let udp = officebox_sockets::udp::bind(addr)
        .await
        .and_then(UdpSocket::from_std)
        .map_err(|e| {
            io::Error::new(e.kind(), format!("phone: cannot listen on udp {addr}: {e}"))
        })?;
    big_receive_buffer(&udp);
    // Each datagram's arrival time, to drop what waited too long (see `STALE`).
    if let Err(error) =
        nix::sys::socket::setsockopt(&udp, nix::sys::socket::sockopt::ReceiveTimestampns, &true)
    {
        debug!(message = "phone: no receive timestamps", %error);
    }
    let tcp = officebox_sockets::tcp::listen(addr).await.map_err(|e| {
        io::Error::new(e.kind(), format!("phone: cannot listen on tcp {addr}: {e}"))
    })?;
    for (what, result) in [
        ("udp", officebox_sockets::udp::set_dscp(&udp, dscp)),
        ("tcp", officebox_sockets::udp::set_dscp(&tcp, dscp)),
    ] {
        if let Err(error) = result {
            debug!(message = "phone: the SIP socket cannot be marked", socket = what, %error);
        }
    }
    Ok((udp, tcp))
}

/// Answers the datagrams of one UDP socket, each from the address it was sent to.
pub(super) async fn udp_loop(
    socket: Arc<UdpSocket>,
    config_rx: watch::Receiver<Arc<Config>>,
    state: Arc<State>,
) {
    let mut buf = vec![0u8; 65_536];
    let mut cmsg = officebox_sockets::udp::cmsg_buffer();
    let mut shed = Shedding::default();
    loop {
        let (n, source, to, queued) = match receive(&socket, &mut buf, &mut cmsg).await {
            Ok(x) => x,
            Err(error) => {
                debug!(message = "phone: udp receive failed", %error);
                continue;
            }
        };
        if shed.stale(queued) {
            continue;
        }
        let config = Arc::clone(&config_rx.borrow());
        if super::pnp::is_pnp(to) {
            tokio::spawn(super::pnp::answer(
                config,
                Arc::clone(&state),
                buf.get(..n).unwrap_or_default().to_vec(),
                source,
                Arc::clone(&socket),
            ));
            continue;
        }
        state.wire.learn(source, to);
        // From the address the phone asked, without blocking (a full socket buffer drops
        // the answer, and the phone's retransmission asks again).
        if let Some(reply) = datagram(
            &config,
            &state,
            buf.get(..n).unwrap_or_default(),
            source,
            Transport::Udp,
        ) && let Err(error) = officebox_sockets::udp::send(
            std::os::fd::AsRawFd::as_raw_fd(&*socket),
            &reply,
            source,
            to,
        ) {
            debug!(message = "phone: udp send failed", %source, %error);
        }
    }
}

/// A datagram that waited longer than this in the socket is dropped unread. By then its
/// sender has retransmitted it at least once (T1 is 500 ms), so a copy is queued behind
/// it, and a box this far behind only falls further behind answering stale copies first.
/// Shorter waits are answered: in a box that is only just keeping up, the original's
/// answer beats the retransmission.
const STALE: Duration = Duration::from_secs(1);

/// Counts the datagrams dropped as stale, and says so at most once a minute.
#[derive(Default)]
struct Shedding {
    dropped: u64,
    since: Option<Instant>,
}

impl Shedding {
    /// Whether a datagram that waited `queued` is dropped.
    fn stale(&mut self, queued: Option<Duration>) -> bool {
        if queued.is_none_or(|q| q <= STALE) {
            return false;
        }
        self.dropped += 1;
        let since = *self.since.get_or_insert_with(Instant::now);
        if since.elapsed() >= Duration::from_secs(60) || self.dropped == 1 {
            warn!(
                message = "phone: overloaded; dropping requests that waited too long (their senders retransmit)",
                dropped = self.dropped,
                waited_over_ms = STALE.as_millis()
            );
            self.since = Some(Instant::now());
        }
        true
    }
}

/// One datagram into `buf`: its length, sender, the address it was sent to (the source
/// of the answer) and how long it waited in the socket (from the kernel's receive
/// timestamp; `None` when there is none).
async fn receive(
    socket: &UdpSocket,
    buf: &mut [u8],
    cmsg: &mut Vec<u8>,
) -> io::Result<(usize, SocketAddr, Option<IpAddr>, Option<Duration>)> {
    use std::os::fd::AsRawFd;
    let fd = socket.as_raw_fd();
    let got = socket
        .async_io(tokio::io::Interest::READABLE, || {
            officebox_sockets::udp::recv(fd, buf, cmsg)
        })
        .await?;
    let queued = got.stamp.and_then(|at| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .checked_sub(at)
    });
    Ok((got.len, got.from, got.to, queued))
}

/// Accepts TCP connections (within the limits per source and in all), a task each, until
/// `stop` (the accept loop every TCP service shares).
pub(super) async fn tcp_loop(
    listener: TcpListener,
    config_rx: watch::Receiver<Arc<Config>>,
    state: Arc<State>,
    stop: tokio_util::sync::CancellationToken,
) {
    let limits = Arc::clone(&state.tcp);
    let refused = |_, source, why| {
        debug!(message = "phone: tcp connection refused", %source, reason = %why);
    };
    let session = move |stream, source| {
        let (config_rx, state) = (config_rx.clone(), Arc::clone(&state));
        async move { tcp_session(stream, source, config_rx, &state).await }
    };
    officebox_sockets::tcp::serve(listener, limits, stop, "phone: tcp", refused, session).await;
}

/// One phone's TCP connection: messages framed by their Content-Length and answered on
/// it; calls send this phone their requests on it too.
async fn tcp_session(
    stream: TcpStream,
    source: SocketAddr,
    config_rx: watch::Receiver<Arc<Config>>,
    state: &Arc<State>,
) -> io::Result<()> {
    let (tx, rx) = writer_for(state, source);
    let link = Link {
        peer: source,
        transport: Transport::Tcp,
        outgoing: false,
    };
    session(stream, link, config_rx, state, (tx, rx)).await
}

/// A connection's far end, how it is carried, and whether the box opened it.
#[derive(Debug, Clone, Copy)]
struct Link {
    peer: SocketAddr,
    transport: Transport,
    outgoing: bool,
}

/// The channel everything for `peer`'s connection goes through, known to the wire.
fn writer_for(
    state: &State,
    peer: SocketAddr,
) -> (
    mpsc::UnboundedSender<Vec<u8>>,
    mpsc::UnboundedReceiver<Vec<u8>>,
) {
    let (tx, rx) = mpsc::unbounded_channel::<Vec<u8>>();
    state
        .wire
        .tcp
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(peer, tx.clone());
    (tx, rx)
}

/// A TCP connection to or from `source`: what arrives is framed and handled like a
/// datagram, what is sent to `source` goes out on it. A phone's connection (incoming) is
/// closed when idle; one the box opened to a provider (`outgoing`) is kept, since the
/// provider sends its calls on it.
async fn session<S>(
    stream: S,
    link: Link,
    config_rx: watch::Receiver<Arc<Config>>,
    state: &Arc<State>,
    (tx, mut rx): (
        mpsc::UnboundedSender<Vec<u8>>,
        mpsc::UnboundedReceiver<Vec<u8>>,
    ),
) -> io::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let Link {
        peer: source,
        transport,
        outgoing,
    } = link;
    let (mut reader, mut writer) = tokio::io::split(stream);
    // Everything for this peer goes through one writer: replies, and requests from calls.
    let write = tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    let result = async {
        let mut buf: Vec<u8> = Vec::new();
        let mut chunk = vec![0u8; 16 * 1024];
        let mut spoke = false;
        loop {
            loop {
                match sip::frame_len(&buf) {
                    Ok(Some(len)) => {
                        let message: Vec<u8> = buf.drain(..len).collect();
                        spoke |= !message.iter().all(|&b| b == b'\r' || b == b'\n');
                        let config = Arc::clone(&config_rx.borrow());
                        if let Some(reply) = datagram(&config, state, &message, source, transport) {
                            let _ = tx.send(reply);
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        // The stream cannot be framed any more: say so once and close.
                        if let Some(reply) = bad_request(&buf, &e) {
                            let _ = tx.send(reply);
                        }
                        return Ok(());
                    }
                }
            }
            let n = if outgoing {
                reader.read(&mut chunk).await?
            } else {
                let idle = if spoke { TCP_IDLE } else { TCP_SILENT_IDLE };
                tokio::time::timeout(idle, reader.read(&mut chunk))
                    .await
                    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "idle"))??
            };
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        }
    }
    .await;
    state
        .wire
        .tcp
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&source);
    drop(tx);
    let _ = write.await;
    result
}

/// How the trunk clients send ([`crate::trunk::TrunkWire`]): by UDP from the SIP socket
/// the route to the provider leaves from, or on a TCP connection to the provider that
/// the box opens (and then serves like a phone's).
pub(super) struct TrunkSockets {
    udp: Vec<(SocketAddr, Arc<UdpSocket>)>,
    state: Arc<State>,
    config_rx: watch::Receiver<Arc<Config>>,
}

/// How long connecting to a provider may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl TrunkSockets {
    pub(super) fn new(
        udp: Vec<(SocketAddr, Arc<UdpSocket>)>,
        state: Arc<State>,
        config_rx: watch::Receiver<Arc<Config>>,
    ) -> TrunkSockets {
        TrunkSockets {
            udp,
            state,
            config_rx,
        }
    }

    /// The SIP socket to reach `to` from, and the box's address as `to` sees it: the
    /// socket bound to the route's source address, else one on any address (which sends
    /// from the route's source), else the first of the family.
    fn socket_for(&self, to: SocketAddr) -> io::Result<(IpAddr, &Arc<UdpSocket>)> {
        let source = route_source(to)?;
        let family: Vec<&(SocketAddr, Arc<UdpSocket>)> = self
            .udp
            .iter()
            .filter(|(a, _)| a.is_ipv4() == to.is_ipv4())
            .collect();
        if let Some((_, s)) = family.iter().find(|(a, _)| a.ip() == source) {
            return Ok((source, s));
        }
        if let Some((_, s)) = family.iter().find(|(a, _)| a.ip().is_unspecified()) {
            return Ok((source, s));
        }
        family
            .first()
            .map(|(a, s)| (a.ip(), s))
            .ok_or_else(|| io::Error::other(format!("no SIP socket can reach {to}")))
    }
}

/// The source address of the route to `to` (a UDP socket connected there says it).
fn route_source(to: SocketAddr) -> io::Result<IpAddr> {
    let any: SocketAddr = if to.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let probe = std::net::UdpSocket::bind(any)?;
    probe.connect(to)?;
    Ok(probe.local_addr()?.ip())
}

impl crate::trunk::TrunkWire for TrunkSockets {
    fn local_for(&self, to: SocketAddr, _transport: Transport) -> io::Result<SocketAddr> {
        let (ip, _) = self.socket_for(to)?;
        let port = self.udp.first().map_or(0, |(a, _)| a.port());
        Ok(SocketAddr::new(ip, port))
    }

    fn send(
        &self,
        bytes: Vec<u8>,
        to: SocketAddr,
        transport: Transport,
        tls: Option<crate::trunk::TlsPeer>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = io::Result<()>> + Send + '_>> {
        Box::pin(async move {
            if transport == Transport::Udp {
                let (_, socket) = self.socket_for(to)?;
                let fd = std::os::fd::AsRawFd::as_raw_fd(&**socket);
                return officebox_sockets::udp::send(fd, &bytes, to, None).map(drop);
            }
            let open = self
                .state
                .wire
                .tcp
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&to)
                .cloned();
            if let Some(w) = open
                && w.send(bytes.clone()).is_ok()
            {
                return Ok(());
            }
            let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(to))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connecting timed out"))??;
            let link = Link {
                peer: to,
                transport,
                outgoing: true,
            };
            let (state, config_rx) = (Arc::clone(&self.state), self.config_rx.clone());
            if transport == Transport::Tls {
                // The provider's certificate must be for the trunk's host, signed by a
                // root the box trusts (or the trunk's CA file).
                let peer = tls.ok_or_else(|| io::Error::other("TLS without a peer name"))?;
                let connector =
                    officebox_secrets::tls::verifying_connector(peer.ca_file.as_deref())?;
                let name = officebox_secrets::tls::server_name(&peer.name)?;
                let stream = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, stream))
                    .await
                    .map_err(|_| {
                        io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")
                    })??;
                let (tx, rx) = writer_for(&self.state, to);
                let _ = tx.send(bytes);
                tokio::spawn(async move {
                    if let Err(error) = session(stream, link, config_rx, &state, (tx, rx)).await {
                        debug!(message = "phone: tls connection to a provider ended", peer = %to, %error);
                    }
                });
                return Ok(());
            }
            let (tx, rx) = writer_for(&self.state, to);
            let _ = tx.send(bytes);
            tokio::spawn(async move {
                if let Err(error) = session(stream, link, config_rx, &state, (tx, rx)).await {
                    debug!(message = "phone: tcp connection to a provider ended", peer = %to, %error);
                }
            });
            Ok(())
        })
    }
}
