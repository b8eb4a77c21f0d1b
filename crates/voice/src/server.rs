//! The SIP server: UDP and TCP on the SIP port, each request parsed, answered, and
//! retransmissions answered from a cache (RFC 3261 section 17.2: a server transaction
//! replays its last response).
//!
//! Responses go back where the request came from, with `received` and `rport` added to
//! the top Via (RFC 3581), so phones behind NAT hear them. Sources that keep failing
//! authentication (a password-guessing flood) are ignored for a while.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use officebox_config::Config;
use officebox_config::derive::bind_addresses;
use officebox_config::model::Service;
use officebox_secrets::login::Limiter;
use officebox_sockets::ConnLimits;
use officebox_store::{Db, SipBinding, SipCall};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::call::{self, Incoming, Parties, Setup, Status, VoicemailSetup, Wire};
use crate::digest::{Algorithm, Authenticator, Verdict, parse_credentials};
use crate::menu::MenuSetup;
use crate::mwi::{self, Subscription, Subscriptions};
use crate::registrar::{Binding, Outcome, Registrar, owner_of};
use crate::rtp::Ports;
use crate::sip::{self, Message, ParseError, StartLine, param, split_list, uri_of, uri_user};
use crate::voicemail;

/// What the server answers OPTIONS with and allows.
const ALLOW: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, PRACK, INFO, SUBSCRIBE, NOTIFY, UPDATE";
/// How long a response is kept for retransmitted requests (64 * T1).
const REPLAY_FOR: Duration = Duration::from_secs(32);
const MAX_REPLAY: usize = 50_000;
/// Registrations are written to the state database this often.
const SAVE_EVERY: Duration = Duration::from_millis(200);
/// TCP connections at once, and how long one may sit idle.
const MAX_TCP: usize = 1000;
/// Calls ringing at once beyond which new ones get 503 (the box is overloaded: no small
/// office has this many phones ringing).
const MAX_RINGING: usize = 200;
const TCP_IDLE: Duration = Duration::from_secs(600);
/// A TCP connection that has not yet carried a whole SIP message is closed after this.
const TCP_SILENT_IDLE: Duration = Duration::from_secs(30);

use crate::now_unix;

/// Responses by (branch and method, source), for retransmitted requests.
type Replay = HashMap<(String, SocketAddr), (Instant, Vec<u8>)>;

/// How calls and the server send: the first UDP socket, and the TCP connections phones
/// keep open (by their address).
struct ServerWire {
    udp: Arc<UdpSocket>,
    local: SocketAddr,
    tcp: Mutex<HashMap<SocketAddr, mpsc::UnboundedSender<Vec<u8>>>>,
    /// Phones that spoke to another of the box's addresses than `local` (a LAN phone
    /// using the WAN address, say): what is sent to them goes out from that address.
    asked: Mutex<HashMap<SocketAddr, IpAddr>>,
}

/// Peers remembered in [`ServerWire::asked`] at most.
const MAX_ASKED: usize = 10_000;

impl ServerWire {
    /// Notes which of the box's addresses `peer` sent its last datagram to.
    fn learn(&self, peer: SocketAddr, to: Option<IpAddr>) {
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

impl Wire for ServerWire {
    fn send(&self, bytes: Vec<u8>, to: SocketAddr, transport: &'static str) {
        if transport == "tcp" {
            let tcp = self.tcp.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(w) = tcp.get(&to) {
                let _ = w.send(bytes);
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
}

/// Calls by Call-ID (both legs), and their status for `officebox phone calls`.
#[derive(Default)]
struct Calls {
    routes: HashMap<String, mpsc::Sender<Incoming>>,
    status: HashMap<u64, watch::Receiver<Status>>,
    next_id: u64,
    /// Calls that ended in the last 32 s, by Call-ID: a retransmitted BYE (our 200 was
    /// lost) is answered 200 again, not 481 (RFC 3261 section 17.2.2).
    ended: HashMap<String, Instant>,
    /// The same Call-IDs oldest first, so forgetting them costs nothing per call (at
    /// thousands of calls a second, scanning the whole map each time did).
    ended_order: VecDeque<(Instant, String)>,
}

impl Calls {
    /// Remembers that the call with these Call-IDs ended now; forgets those older than
    /// `REPLAY_FOR`.
    fn ended(&mut self, call_ids: [String; 2]) {
        let now = Instant::now();
        while let Some((at, _)) = self.ended_order.front()
            && now.duration_since(*at) >= REPLAY_FOR
        {
            if let Some((at, id)) = self.ended_order.pop_front()
                && self.ended.get(&id) == Some(&at)
            {
                self.ended.remove(&id);
            }
        }
        for id in call_ids {
            self.ended.insert(id.clone(), now);
            self.ended_order.push_back((now, id));
        }
    }
}

/// What the whole server shares.
struct State {
    registrar: Mutex<Registrar>,
    auth: Authenticator,
    replay: Mutex<Replay>,
    /// Failed digests per source (`officebox_secrets::login::PHONE`): past the limit,
    /// that source is ignored for a while.
    limiter: Arc<Limiter>,
    /// TCP connections per source address and in all.
    tcp: Arc<ConnLimits>,
    wire: Arc<ServerWire>,
    ports: Arc<Ports>,
    calls: Arc<Mutex<Calls>>,
    mwi: Mutex<Subscriptions>,
    /// Calls ringing or setting up now (see [`MAX_RINGING`]).
    ringing: Arc<std::sync::atomic::AtomicUsize>,
}

/// Where the SIP server listens for a config.
fn endpoints(config: &Config) -> Vec<SocketAddr> {
    bind_addresses(config, Service::Sip)
        .into_iter()
        .map(|ip| SocketAddr::new(ip, config.phone.sip_port))
        .collect()
}

/// Runs the SIP server until `shutdown`, or until a reload moves it (then it returns, and
/// the supervisor starts it again).
pub async fn serve(
    config_rx: watch::Receiver<Arc<Config>>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let config = Arc::clone(&config_rx.borrow());
    let db_path = officebox_store::state_db(&config.data_dir);
    let (db, restored) =
        tokio::task::spawn_blocking(move || -> Result<_, officebox_store::StoreError> {
            let db = Db::open(&db_path)?;
            let restored = db.bindings(i64::try_from(now_unix()).unwrap_or(i64::MAX))?;
            Ok((db, restored))
        })
        .await
        .map_err(io::Error::other)?
        .map_err(|e| io::Error::other(format!("phone: {e}")))?;
    let mut registrar = Registrar::default();
    for b in restored {
        if let Ok(source) = b.source.parse() {
            registrar.restore(
                &b.login,
                Binding {
                    contact: b.contact,
                    expires_at: u64::try_from(b.expires_at).unwrap_or(0),
                    call_id: b.call_id,
                    cseq: u32::try_from(b.cseq).unwrap_or(0),
                    source,
                    transport: if b.transport == "tcp" { "tcp" } else { "udp" },
                    user_agent: b.user_agent,
                },
            );
        }
    }
    let mut sockets = Vec::new();
    for addr in endpoints(&config) {
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
        sockets.push((Arc::new(udp), tcp, addr));
    }
    let Some((first, _, first_addr)) = sockets.first() else {
        return Err(io::Error::other("phone: no address to listen on"));
    };
    // Our address as phones see it: the listening one, or the LAN address for 0.0.0.0.
    let local = if first_addr.ip().is_unspecified() {
        SocketAddr::new(
            IpAddr::V4(config.network.lan.net.address),
            config.phone.sip_port,
        )
    } else {
        *first_addr
    };
    let state = Arc::new(State {
        registrar: Mutex::new(registrar),
        auth: Authenticator::new(&config.network.domain),
        replay: Mutex::default(),
        limiter: Limiter::new(officebox_secrets::login::PHONE),
        tcp: ConnLimits::new(officebox_sockets::limits::PER_ADDRESS, MAX_TCP),
        wire: Arc::new(ServerWire {
            udp: Arc::clone(first),
            local,
            tcp: Mutex::default(),
            asked: Mutex::default(),
        }),
        ports: Ports::new(config.phone.rtp_ports),
        calls: Arc::default(),
        mwi: Mutex::default(),
        ringing: Arc::default(),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for (udp, tcp, addr) in sockets {
        info!(message = "phone: serving", %addr);
        tasks.spawn(udp_loop(udp, config_rx.clone(), Arc::clone(&state)));
        tasks.spawn(tcp_loop(tcp, config_rx.clone(), Arc::clone(&state)));
    }
    let db = Arc::new(Mutex::new(db));
    let mut last_calls = Vec::new();
    let mut ticks = 0u64;
    let bound = endpoints(&config);
    let mut changes = config_rx.clone();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            changed = changes.changed() => {
                if changed.is_err() {
                    break;
                }
                if endpoints(&changes.borrow_and_update()) != bound {
                    // Ending here has the supervisor start the service again, bound anew;
                    // registrations are saved below and loaded again.
                    info!("phone: listening addresses changed; restarting the phone service");
                    break;
                }
            }
            () = tokio::time::sleep(SAVE_EVERY) => {
                save(&state, &db).await;
                save_calls(&state, &db, &mut last_calls).await;
                ticks += 1;
                if ticks.is_multiple_of(5) {
                    tick_mwi(&state, &db, &config.data_dir).await;
                }
            }
        }
    }
    save(&state, &db).await;
    let _ = db
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .save_calls(&[]);
    tasks.shutdown().await;
    Ok(())
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

/// Writes the registrations that changed.
async fn save(state: &Arc<State>, db: &Arc<Mutex<Db>>) {
    let dirty = state
        .registrar
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take_dirty();
    if dirty.is_empty() {
        return;
    }
    let rows: Vec<(String, Vec<SipBinding>)> = dirty
        .into_iter()
        .map(|(login, bindings)| {
            let rows = bindings
                .into_iter()
                .map(|b| SipBinding {
                    login: login.clone(),
                    contact: b.contact,
                    expires_at: i64::try_from(b.expires_at).unwrap_or(i64::MAX),
                    call_id: b.call_id,
                    cseq: i64::from(b.cseq),
                    source: b.source.to_string(),
                    transport: b.transport.to_string(),
                    user_agent: b.user_agent,
                })
                .collect();
            (login, rows)
        })
        .collect();
    let db = Arc::clone(db);
    let r = tokio::task::spawn_blocking(move || {
        db.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .save_bindings(&rows)
    })
    .await;
    if !matches!(r, Ok(Ok(()))) {
        warn!(message = "phone: could not save registrations (phones re-register anyway)");
    }
}

/// Writes the list of live calls when it changed.
async fn save_calls(state: &Arc<State>, db: &Arc<Mutex<Db>>, last: &mut Vec<SipCall>) {
    let now: Vec<SipCall> = {
        let calls = state.calls.lock().unwrap_or_else(PoisonError::into_inner);
        let mut v: Vec<SipCall> = calls
            .status
            .iter()
            .map(|(id, rx)| {
                let s = rx.borrow();
                SipCall {
                    id: i64::try_from(*id).unwrap_or(0),
                    caller: s.caller.clone(),
                    callee: s.callee.clone(),
                    state: s.state.to_string(),
                    started_at: i64::try_from(s.started_at).unwrap_or(0),
                    answered_at: s.answered_at.and_then(|t| i64::try_from(t).ok()),
                }
            })
            .collect();
        v.sort_by_key(|c| c.id);
        v
    };
    if now == *last {
        return;
    }
    let (db, rows) = (Arc::clone(db), now.clone());
    let r = tokio::task::spawn_blocking(move || {
        db.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .save_calls(&rows)
    })
    .await;
    if matches!(r, Ok(Ok(()))) {
        *last = now;
    }
}

async fn udp_loop(
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
        state.wire.learn(source, to);
        let config = Arc::clone(&config_rx.borrow());
        // From the address the phone asked, without blocking (a full socket buffer drops
        // the answer, and the phone's retransmission asks again).
        if let Some(reply) = datagram(
            &config,
            &state,
            buf.get(..n).unwrap_or_default(),
            source,
            "udp",
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

async fn tcp_loop(
    listener: TcpListener,
    config_rx: watch::Receiver<Arc<Config>>,
    state: Arc<State>,
) {
    loop {
        let (stream, source, slot) =
            match officebox_sockets::tcp::accept(&listener, &state.tcp).await {
                officebox_sockets::tcp::Accepted::Admitted(stream, source, slot) => {
                    (stream, source, slot)
                }
                officebox_sockets::tcp::Accepted::Refused(_, source, why) => {
                    debug!(message = "phone: tcp connection refused", %source, reason = %why);
                    continue;
                }
            };
        let (config_rx, state) = (config_rx.clone(), Arc::clone(&state));
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(error) = tcp_session(stream, source, config_rx, &state).await {
                debug!(message = "phone: tcp session ended", %source, %error);
            }
        });
    }
}

async fn tcp_session(
    stream: TcpStream,
    source: SocketAddr,
    config_rx: watch::Receiver<Arc<Config>>,
    state: &State,
) -> io::Result<()> {
    let (mut reader, mut writer) = stream.into_split();
    // Everything for this phone goes through one writer: replies, and requests from calls.
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    state
        .wire
        .tcp
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(source, tx.clone());
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
                        if let Some(reply) = datagram(&config, state, &message, source, "tcp") {
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
            let idle = if spoke { TCP_IDLE } else { TCP_SILENT_IDLE };
            let n = tokio::time::timeout(idle, reader.read(&mut chunk))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "idle"))??;
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

/// Handles one message; the bytes to send back, if any.
fn datagram(
    config: &Config,
    state: &State,
    bytes: &[u8],
    source: SocketAddr,
    transport: &'static str,
) -> Option<Vec<u8>> {
    if bytes.iter().all(|&b| b == b'\r' || b == b'\n') {
        return None; // keep-alive
    }
    if state.limiter.locked(source.ip()) {
        return None;
    }
    let msg = match Message::parse(bytes) {
        Ok(m) => m,
        Err(e) => {
            debug!(message = "phone: unparsable message", %source, error = %e);
            return bad_request(bytes, &e);
        }
    };
    // Everything of a call's two legs goes to that call.
    let route = state
        .calls
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .routes
        .get(msg.call_id())
        .cloned();
    if let Some(tx) = route {
        let _ = tx.try_send(Incoming {
            msg,
            source,
            transport,
        });
        return None;
    }
    let StartLine::Request { method, .. } = &msg.start else {
        // A response to one of our NOTIFYs, or to nothing we still wait for.
        if let (StartLine::Response { code, .. }, Some((cseq, m))) = (&msg.start, msg.cseq())
            && m == "NOTIFY"
        {
            state
                .mwi
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .answered(msg.call_id(), cseq, *code);
        }
        return None;
    };
    if method == "ACK" {
        return None;
    }
    let branch = msg.top_via().and_then(|v| param(v, "branch")).unwrap_or("");
    let key = (format!("{branch}|{method}"), source);
    if !branch.is_empty()
        && let Some((at, reply)) = state
            .replay
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        && at.elapsed() < REPLAY_FOR
    {
        return Some(reply.clone());
    }
    let mut reply = request(config, state, &msg, source, transport)?;
    fix_via(&mut reply, source);
    let bytes = reply.to_bytes();
    if !branch.is_empty() {
        let mut replay = state.replay.lock().unwrap_or_else(PoisonError::into_inner);
        if replay.len() >= MAX_REPLAY {
            replay.retain(|_, (at, _)| at.elapsed() < REPLAY_FOR);
            if replay.len() >= MAX_REPLAY {
                replay.clear();
            }
        }
        replay.insert(key, (Instant::now(), bytes.clone()));
    }
    Some(bytes)
}

fn request(
    config: &Config,
    state: &State,
    msg: &Message,
    source: SocketAddr,
    transport: &'static str,
) -> Option<Message> {
    let tag = to_tag(msg);
    let method = msg.method().unwrap_or("");
    // RFC 3261 8.2.2: the Request-URI's scheme, then extensions the phone insists on.
    if let StartLine::Request { uri, .. } = &msg.start {
        let scheme = uri.split(':').next().unwrap_or("").to_ascii_lowercase();
        if !matches!(scheme.as_str(), "sip" | "sips" | "tel") {
            let mut r = msg.response(416, "Unsupported URI Scheme", &tag);
            r.push("Server", "officebox");
            return Some(r);
        }
    }
    let required: Vec<&str> = msg.values("require").collect();
    if !required.is_empty() && method != "CANCEL" {
        let mut r = msg.response(420, "Bad Extension", &tag);
        r.push("Unsupported", required.join(", "));
        r.push("Server", "officebox");
        return Some(r);
    }
    let mut reply = match method {
        "REGISTER" => register(config, state, msg, source, transport, &tag),
        "OPTIONS" => {
            let mut r = msg.response(200, "OK", &tag);
            r.push("Allow", ALLOW);
            r.push("Accept", "application/sdp");
            r
        }
        "INVITE" if msg.header("to").and_then(|t| param(t, "tag")).is_some() => {
            msg.response(481, "Call/Transaction Does Not Exist", &tag)
        }
        "INVITE" => invite(config, state, msg, source, transport, &tag)?,
        "SUBSCRIBE" => subscribe(config, state, msg, source, transport, &tag),
        "BYE"
            if state
                .calls
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .ended
                .get(msg.call_id())
                .is_some_and(|at| at.elapsed() < REPLAY_FOR) =>
        {
            msg.response(200, "OK", &tag)
        }
        "BYE" | "CANCEL" | "PRACK" | "UPDATE" | "INFO" => {
            msg.response(481, "Call/Transaction Does Not Exist", &tag)
        }
        _ => msg.response(501, "Not Implemented", &tag),
    };
    reply.push("Server", "officebox");
    Some(reply)
}

/// A To tag that is the same for retransmissions of one request.
fn to_tag(msg: &Message) -> String {
    let seed = format!(
        "{}|{}",
        msg.call_id(),
        msg.header("from")
            .and_then(|f| param(f, "tag"))
            .unwrap_or("")
    );
    Algorithm::Md5.hex(&seed).chars().take(12).collect()
}

/// A new call: the caller proves who they are (407 challenge), the callee must exist and
/// have a phone registered; then a call task takes over (`None`: it answers).
fn invite(
    config: &Config,
    state: &State,
    msg: &Message,
    source: SocketAddr,
    transport: &'static str,
    tag: &str,
) -> Option<Message> {
    let caller = match authenticate(config, state, msg, source, true, tag) {
        Ok(u) => u,
        Err(challenge) => return Some(challenge),
    };
    let StartLine::Request { uri, .. } = &msg.start else {
        return None;
    };
    let Some(dialled) = uri_user(uri) else {
        return Some(msg.response(404, "Not Found", tag));
    };
    // The voicemail extension: the caller's own mailbox, through the menu.
    let menu_call = dialled == config.phone.voicemail_extension;
    let callee = if menu_call {
        Some(caller)
    } else {
        config
            .users
            .iter()
            .find(|u| u.extension.as_deref() == Some(dialled.as_str()) || u.login == dialled)
    };
    let Some(callee) = callee else {
        return Some(msg.response(404, "Not Found", tag));
    };
    // Overload: more calls setting up at once than a small office has phones means the
    // box is behind. New calls are turned away at once (cheap) so the ones under way
    // finish, instead of every call timing out in a storm of retransmissions.
    if state.ringing.load(std::sync::atomic::Ordering::Relaxed) >= MAX_RINGING {
        let mut busy = msg.response(503, "Service Unavailable", tag);
        busy.push("Retry-After", "5");
        return Some(busy);
    }
    let bindings = if menu_call {
        Vec::new()
    } else {
        state
            .registrar
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contacts(&callee.login, now_unix())
    };
    // No phone registered: the call goes straight to voicemail.
    let parties = Parties {
        caller_login: caller.login.clone(),
        caller_ext: caller
            .extension
            .clone()
            .unwrap_or_else(|| caller.login.clone()),
        caller_name: caller.name.clone(),
        callee_login: callee.login.clone(),
        callee_ext: callee
            .extension
            .clone()
            .unwrap_or_else(|| callee.login.clone()),
        domain: config.network.domain.clone(),
    };
    let (status_tx, status_rx) = watch::channel(Status {
        caller: parties.caller_ext.clone(),
        callee: parties.callee_ext.clone(),
        state: "ringing",
        started_at: now_unix(),
        answered_at: None,
    });
    let b_call_id = format!("{}@officebox", call::token());
    let a_call_id = msg.call_id().to_string();
    let (tx, rx) = mpsc::channel(64);
    let id = {
        let mut calls = state.calls.lock().unwrap_or_else(PoisonError::into_inner);
        calls.routes.insert(a_call_id.clone(), tx.clone());
        calls.routes.insert(b_call_id.clone(), tx);
        calls.next_id += 1;
        let id = calls.next_id;
        calls.status.insert(id, status_rx);
        id
    };
    let setup = Setup {
        wire: Arc::clone(&state.wire) as Arc<dyn Wire>,
        ports: Arc::clone(&state.ports),
        parties,
        bindings,
        no_answer: config.phone.no_answer_timeout,
        b_call_id: b_call_id.clone(),
        status: status_tx,
        ringing: call::Ringing::start(&state.ringing),
        menu: menu_call.then(|| MenuSetup {
            data_dir: config.data_dir.clone(),
            login: caller.login.clone(),
            pin_hash: caller.voicemail_pin_hash.clone(),
        }),
        voicemail: (!menu_call).then(|| VoicemailSetup {
            data_dir: config.data_dir.clone(),
            envelope: voicemail::Envelope {
                caller_name: caller.name.clone(),
                caller_ext: caller
                    .extension
                    .clone()
                    .unwrap_or_else(|| caller.login.clone()),
                caller_address: format!("{}@{}", caller.login, config.network.domain),
                callee_login: callee.login.clone(),
                callee_name: callee.name.clone(),
                callee_address: format!("{}@{}", callee.login, config.network.domain),
                host: format!("{}.{}", config.network.hostname, config.network.domain),
            },
            max: config.phone.max_message_length,
        }),
    };
    let incoming = Incoming {
        msg: msg.clone(),
        source,
        transport,
    };
    let calls = Arc::clone(&state.calls);
    tokio::spawn(async move {
        call::run(setup, incoming, rx).await;
        let mut calls = calls.lock().unwrap_or_else(PoisonError::into_inner);
        calls.routes.remove(&a_call_id);
        calls.routes.remove(&b_call_id);
        calls.status.remove(&id);
        calls.ended([a_call_id, b_call_id]);
    });
    None
}

/// SUBSCRIBE to `message-summary` (RFC 3842): a phone's own user's mailbox only. The
/// first NOTIFY goes out at the next tick (within a second).
fn subscribe(
    config: &Config,
    state: &State,
    msg: &Message,
    source: SocketAddr,
    transport: &'static str,
    tag: &str,
) -> Message {
    let event = msg.header("event").unwrap_or("");
    if !event
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .eq_ignore_ascii_case("message-summary")
    {
        let mut r = msg.response(489, "Bad Event", tag);
        r.push("Allow-Events", "message-summary");
        return r;
    }
    let StartLine::Request { uri, .. } = &msg.start else {
        return msg.response(400, "Bad Request", tag);
    };
    let owner = owner_of(config, uri)
        .or_else(|| owner_of(config, uri_of(msg.header("to").unwrap_or("")).unwrap_or("")));
    let user = match authenticate_owner(config, state, msg, source, tag, owner, "mailbox") {
        Ok(u) => u,
        Err(refusal) => return refusal,
    };
    let expires = msg
        .header("expires")
        .and_then(|e| e.trim().parse::<u64>().ok())
        .unwrap_or(mwi::DEFAULT_EXPIRES);
    let expires = if expires == 0 {
        0
    } else {
        expires.clamp(mwi::MIN_EXPIRES, mwi::DEFAULT_EXPIRES)
    };
    let call_id = msg.call_id().to_string();
    let mut subs = state.mwi.lock().unwrap_or_else(PoisonError::into_inner);
    let ours = subs.by_call.get(&call_id).map(|s| s.our_to.clone());
    let to_value = msg.header("to").unwrap_or("").to_string();
    let our_to = ours.unwrap_or_else(|| {
        if param(&to_value, "tag").is_some() {
            to_value.clone()
        } else {
            format!("{to_value};tag={tag}")
        }
    });
    let ext = user.extension.clone().unwrap_or_else(|| user.login.clone());
    let sub = Subscription {
        login: user.login.clone(),
        account: format!("sip:{ext}@{}", config.network.domain),
        target: msg
            .header("contact")
            .and_then(uri_of)
            .unwrap_or(uri)
            .to_string(),
        dest: source,
        transport,
        their_from: msg.header("from").unwrap_or("").to_string(),
        our_to,
        call_id: call_id.clone(),
        cseq: subs.by_call.get(&call_id).map_or(0, |s| s.cseq),
        expires_at: now_unix() + expires,
        // Told again at once: a (re-)SUBSCRIBE is answered with a NOTIFY (RFC 6665 4.2.1).
        told: None,
        pending: None,
    };
    subs.by_call.insert(call_id, sub);
    let mut r = msg.response(200, "OK", tag);
    r.push("Expires", expires.to_string());
    r.push("Contact", format!("<sip:mwi@{}>", state.wire.local));
    r
}

/// Tells each subscribed phone its mailbox's counts when they change, sends unanswered
/// NOTIFYs again, and ends expired subscriptions.
async fn tick_mwi(state: &Arc<State>, db: &Arc<Mutex<Db>>, data_dir: &std::path::Path) {
    let now = now_unix();
    let logins: Vec<String> = {
        let subs = state.mwi.lock().unwrap_or_else(PoisonError::into_inner);
        let mut l: Vec<String> = subs.by_call.values().map(|s| s.login.clone()).collect();
        l.sort();
        l.dedup();
        l
    };
    if logins.is_empty() {
        return;
    }
    let (db2, dir) = (Arc::clone(db), data_dir.to_path_buf());
    let counts: HashMap<String, (usize, usize)> = tokio::task::spawn_blocking(move || {
        let db = db2.lock().unwrap_or_else(PoisonError::into_inner);
        logins
            .into_iter()
            .filter_map(|l| {
                let (new, saved) = voicemail::mailbox(&db, &dir, &l).ok()?;
                Some((l, (new.len(), saved.len())))
            })
            .collect()
    })
    .await
    .unwrap_or_default();
    let local = state.wire.local;
    let mut out = Vec::new();
    {
        let mut subs = state.mwi.lock().unwrap_or_else(PoisonError::into_inner);
        subs.by_call.retain(|_, s| {
            if s.expires_at <= now {
                out.push((s.notify(local, None, now), s.dest, s.transport));
                return false;
            }
            if let Some(&c) = counts.get(&s.login)
                && s.told != Some(c)
            {
                out.push((s.notify(local, Some(c), now), s.dest, s.transport));
            } else if let Some(again) = s.resend() {
                out.push((again, s.dest, s.transport));
            }
            true
        });
    }
    for (bytes, dest, transport) in out {
        state.wire.send(bytes, dest, transport);
    }
}

/// A request about one user's own resource (their registration, their mailbox): the
/// digest challenge first, whoever `owner` is, so a stranger learns nothing about which
/// extensions exist; then 404 when `owner` is nobody, or 403 when someone else answered.
fn authenticate_owner<'c>(
    config: &'c Config,
    state: &State,
    msg: &Message,
    source: SocketAddr,
    tag: &str,
    owner: Option<String>,
    what: &str,
) -> Result<&'c officebox_config::User, Message> {
    let user = authenticate(config, state, msg, source, false, tag)?;
    match owner {
        Some(owner) if owner == user.login => Ok(user),
        Some(_) => Err(msg.response(403, &format!("Forbidden (not your {what})"), tag)),
        None => Err(msg.response(404, "Not Found", tag)),
    }
}

/// Digest authentication of a request (RFC 3261 section 22): `Ok` with the user, or the
/// challenge to answer with (401 from the registrar, 407 for calls: `proxy`). Wrong
/// answers count towards the source's flood limit.
fn authenticate<'c>(
    config: &'c Config,
    state: &State,
    msg: &Message,
    source: SocketAddr,
    proxy: bool,
    tag: &str,
) -> Result<&'c officebox_config::User, Message> {
    let (code, reason, ask, answer) = if proxy {
        (
            407,
            "Proxy Authentication Required",
            "Proxy-Authenticate",
            "proxy-authorization",
        )
    } else {
        (401, "Unauthorized", "WWW-Authenticate", "authorization")
    };
    let challenge = |stale: bool| {
        let mut r = msg.response(code, reason, tag);
        for c in challenges(state, msg, stale) {
            r.push(ask, c);
        }
        r
    };
    let Some(creds) = msg
        .headers
        .iter()
        .filter(|(n, _)| n == answer)
        .filter_map(|(_, v)| parse_credentials(v))
        .find(|c| c.realm == state.auth.realm)
    else {
        return Err(challenge(false));
    };
    let method = msg.method().unwrap_or("");
    let Ok(attempt) = state.limiter.begin_now(source.ip()) else {
        return Err(challenge(false));
    };
    // The digest user name is the login, or the extension (most phones are set up so),
    // each with the secrets made for it. A user that does not exist is checked against a
    // made-up secret: the same work and the same answer as a wrong password.
    let (user, ha1): (Option<&officebox_config::User>, [Option<String>; 2]) =
        match config.users.iter().find(|u| u.login == creds.username) {
            Some(u) => (Some(u), [u.sip_ha1_md5.clone(), u.sip_ha1_sha256.clone()]),
            None => match config
                .users
                .iter()
                .find_map(|u| u.ext_secret(&creds.username).map(|s| (u, s)))
            {
                Some((u, s)) => (Some(u), [Some(s.md5.clone()), Some(s.sha256.clone())]),
                None => (
                    None,
                    [
                        Some(NOBODY_MD5.to_string()),
                        Some(NOBODY_SHA256.to_string()),
                    ],
                ),
            },
        };
    let [md5, sha256] = ha1;
    let verdict = state.auth.verify(&creds, method, |alg| match alg {
        Algorithm::Md5 => md5.clone(),
        Algorithm::Sha256 => sha256.clone(),
    });
    match (verdict, user) {
        (Verdict::Ok, Some(u)) => {
            attempt.succeeded();
            Ok(u)
        }
        (Verdict::Stale, _) => {
            attempt.withdrawn();
            Err(challenge(true))
        }
        _ => {
            attempt.failed();
            info!(message = "phone: wrong password", %method, user = %creds.username, %source);
            Err(challenge(false))
        }
    }
}

/// The digest secrets a user that does not exist is checked against (no password hashes
/// to them: they are not hex digests of anything).
const NOBODY_MD5: &str = "00000000000000000000000000000000";
const NOBODY_SHA256: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn register(
    config: &Config,
    state: &State,
    msg: &Message,
    source: SocketAddr,
    transport: &'static str,
    tag: &str,
) -> Message {
    let to = uri_of(msg.header("to").unwrap_or("")).unwrap_or("");
    let user = match authenticate_owner(
        config,
        state,
        msg,
        source,
        tag,
        owner_of(config, to),
        "extension",
    ) {
        Ok(u) => u,
        Err(refusal) => return refusal,
    };
    let owner = &user.login;
    let outcome = state
        .registrar
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .register(owner, msg, source, transport, now_unix());
    match outcome {
        Outcome::Ok(bindings) => {
            let mut r = msg.response(200, "OK", tag);
            let now = now_unix();
            for b in bindings {
                r.push(
                    "Contact",
                    format!(
                        "<{}>;expires={}",
                        b.contact,
                        b.expires_at.saturating_sub(now)
                    ),
                );
            }
            r.push("Date", officebox_store::date::http_date(SystemTime::now()));
            debug!(message = "phone: registered", user = %owner, %source);
            r
        }
        Outcome::TooBrief(min) => {
            let mut r = msg.response(423, "Interval Too Brief", tag);
            r.push("Min-Expires", min.to_string());
            r
        }
        Outcome::Refused(code, reason) => msg.response(code, reason, tag),
    }
}

/// The challenge values for `msg`'s sender: MD5 and SHA-256, or MD5 alone for phones
/// that cannot cope with the SHA-256 one.
///
/// RFC 8760 section 2.4 says a phone MUST ignore a challenge whose algorithm it does not
/// support. libre before 3.12 (baresip before 3.12, e.g. Debian 12's baresip 1.0.0)
/// instead fails the whole authentication with ENOSYS as soon as one header names
/// anything but MD5 ("reg: ...: Register: Function not implemented"): such a phone could
/// never register or call. It says who it is in User-Agent (`baresip v1.0.0 (...)`).
fn challenges(state: &State, msg: &Message, stale: bool) -> Vec<String> {
    let all = state.auth.challenges(stale);
    if !md5_only(msg.header("user-agent").unwrap_or("")) {
        return all;
    }
    all.into_iter()
        .filter(|c| c.contains(&format!("algorithm={}", Algorithm::Md5.name())))
        .collect()
}

/// Whether a phone with this User-Agent knows only MD5 and refuses challenges that
/// offer anything else too: baresip (libre) before 3.12.
fn md5_only(user_agent: &str) -> bool {
    let Some(version) = user_agent.trim().strip_prefix("baresip v") else {
        return false;
    };
    let mut numbers = version
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().ok());
    match (numbers.next().flatten(), numbers.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) < (3, 12),
        _ => true,
    }
}

/// Adds `received` (and fills in `rport`) on the top Via of a response (RFC 3581).
fn fix_via(reply: &mut Message, source: SocketAddr) {
    let Some((_, value)) = reply.headers.iter_mut().find(|(n, _)| n == "via") else {
        return;
    };
    let parts = split_list(value);
    let Some((top, rest)) = parts.split_first() else {
        return;
    };
    let mut new_top = String::new();
    let mut has_received = false;
    for (i, p) in top.split(';').enumerate() {
        if i > 0 {
            new_top.push(';');
        }
        let key = p.split('=').next().unwrap_or("").trim();
        if key.eq_ignore_ascii_case("rport") {
            new_top.push_str(&format!("rport={}", source.port()));
        } else {
            has_received |= key.eq_ignore_ascii_case("received");
            new_top.push_str(p);
        }
    }
    if !has_received {
        new_top.push_str(&format!(";received={}", source.ip()));
    }
    *value = std::iter::once(new_top.as_str())
        .chain(rest.iter().copied())
        .collect::<Vec<_>>()
        .join(", ");
}

/// A best-effort `400` for a request that did not parse: its Via, From, To, Call-ID and
/// CSeq lines as they were, so the phone can match it. `None` for responses and for bytes
/// without a Via.
fn bad_request(bytes: &[u8], error: &ParseError) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(bytes.get(..sip::MAX_MESSAGE).unwrap_or(bytes));
    let text = text.trim_start_matches(['\r', '\n']);
    if text.starts_with("SIP/") || text.is_empty() {
        return None;
    }
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let mut lines = Vec::new();
    for line in head.lines().skip(1) {
        let name = line
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if matches!(
            name.as_str(),
            "via" | "v" | "from" | "f" | "to" | "t" | "call-id" | "i" | "cseq"
        ) && !line.contains(['\r', '\0'])
        {
            lines.push(line.trim_end());
        }
    }
    if !lines.iter().any(|l| {
        let n = l
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        n == "via" || n == "v"
    }) {
        return None;
    }
    let (code, reason) = error.status();
    let mut out = format!("SIP/2.0 {code} {reason} ({error})\r\n");
    for l in lines {
        out.push_str(l);
        out.push_str("\r\n");
    }
    out.push_str("Server: officebox\r\nContent-Length: 0\r\n\r\n");
    Some(out.into_bytes())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn via_gets_received_and_rport() {
        let req = Message::parse(
            b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKa;rport, SIP/2.0/UDP p;branch=z9hG4bKb\r\n\
              To: <sip:x@y>\r\nFrom: <sip:a@b>;tag=1\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n",
        )
        .unwrap();
        let mut r = req.response(200, "OK", "t");
        fix_via(&mut r, "192.0.2.7:40000".parse().unwrap());
        let via = r.header("via").unwrap();
        assert_eq!(
            via,
            "SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKa;rport=40000;received=192.0.2.7, SIP/2.0/UDP p;branch=z9hG4bKb"
        );
    }

    #[test]
    fn unparsable_requests_get_a_400_that_the_phone_can_match() {
        let bad = b"INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:x@y>\r\nFrom: <sip:a@b>;tag=1\r\nCall-ID: c\r\nCSeq: 1 BYE\r\n\r\n";
        let e = Message::parse(bad).unwrap_err();
        let r = String::from_utf8(bad_request(bad, &e).unwrap()).unwrap();
        assert!(r.starts_with("SIP/2.0 400 Bad Request"), "{r}");
        assert!(r.contains("Call-ID: c\r\n") && r.contains("CSeq: 1 BYE\r\n"));
        assert!(bad_request(b"SIP/2.0 200 OK\r\n\r\n", &e).is_none());
    }

    #[test]
    fn old_baresip_is_challenged_with_md5_alone() {
        for old in [
            "baresip v1.0.0 (x86_64/linux)",
            "baresip v3.11.0 (x86_64/Linux)",
            "baresip vsomething",
        ] {
            assert!(md5_only(old), "{old}");
        }
        for other in [
            "baresip v3.12.0 (x86_64/Linux)",
            "baresip v4.1.0 (aarch64/Linux)",
            "sipsak 0.9.8",
            "Linphone/5.2",
            "",
        ] {
            assert!(!md5_only(other), "{other}");
        }
    }

    #[test]
    fn dates() {
        assert_eq!(
            officebox_store::date::http_date(
                std::time::UNIX_EPOCH + Duration::from_secs(1_795_857_926)
            ),
            "Sat, 28 Nov 2026 09:25:26 GMT"
        );
    }
}
