//! UDP listeners: blocking threads that answer from the zone and the cache without touching
//! the async runtime; only cache misses go to the forwarder on tokio.

use std::io;
use std::io::{IoSlice, IoSliceMut};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg};
use tracing::warn;

use crate::answer::{self, Action, Transport};
use crate::maintain::Shared;

/// How often a blocked receive wakes up to see whether it should stop.
const POLL: Duration = Duration::from_millis(200);

/// Threads per UDP socket. One thread with batched receives uses the least CPU per query
/// (measured with bench/dns.sh); a second mostly adds contention on this 2-core machine.
const THREADS: usize = 1;

/// Running UDP listeners; stopped on drop.
#[derive(Debug)]
pub(crate) struct UdpListeners {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl UdpListeners {
    pub(crate) async fn start(
        addrs: &[SocketAddr],
        shared: &Arc<Shared>,
        rt: &tokio::runtime::Handle,
    ) -> io::Result<UdpListeners> {
        // Built up as the sockets are bound, so that a failure part way stops (on drop)
        // the threads already started.
        let mut listeners = UdpListeners {
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
        };
        for addr in addrs {
            // Each query's destination comes with it, so its answer goes out from the
            // address the client asked (officebox_sockets::udp).
            let socket = officebox_sockets::udp::bind(*addr).await.map_err(|e| {
                io::Error::new(e.kind(), format!("dns: cannot listen on udp {addr}: {e}"))
            })?;
            socket.set_nonblocking(false)?;
            socket.set_read_timeout(Some(POLL))?;
            let socket = Arc::new(socket);
            for i in 0..THREADS {
                let (socket, shared, rt, stop) = (
                    Arc::clone(&socket),
                    Arc::clone(shared),
                    rt.clone(),
                    Arc::clone(&listeners.stop),
                );
                let t = std::thread::Builder::new()
                    .name(format!("dns-udp-{i}"))
                    .spawn(move || serve(&socket, &shared, &rt, &stop))?;
                listeners.threads.push(t);
            }
        }
        Ok(listeners)
    }
}

impl Drop for UdpListeners {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Datagrams taken from the kernel per system call.
const BATCH: usize = 32;
/// Room for one query; larger datagrams are cut and answered FORMERR.
const MAX_QUERY: usize = 2048;

/// The client address of a received datagram.
fn client_addr(addr: Option<SockaddrStorage>) -> Option<SocketAddr> {
    officebox_sockets::udp::socket_addr(&addr?)
}

/// Replies of a batch, each with its client and the source it goes out from.
#[derive(Default)]
struct Replies {
    bytes: Vec<Vec<u8>>,
    to: Vec<Option<SockaddrStorage>>,
    from: Vec<Option<IpAddr>>,
}

impl Replies {
    fn clear(&mut self) {
        self.bytes.clear();
        self.to.clear();
        self.from.clear();
    }

    fn push(&mut self, reply: Vec<u8>, client: SocketAddr, from: Option<IpAddr>) {
        self.bytes.push(reply);
        self.to.push(Some(SockaddrStorage::from(client)));
        self.from.push(from);
    }
}

/// Headers for `sendmmsg`: replies that name their source need room for exactly that
/// one control message; replies that do not, no room at all (the kernel reads every byte
/// of the room it is given as control messages).
struct Headers {
    with_source: MultiHeaders<SockaddrStorage>,
    plain: MultiHeaders<SockaddrStorage>,
}

impl Headers {
    fn new() -> Headers {
        Headers {
            with_source: MultiHeaders::preallocate(
                BATCH,
                Some(nix::cmsg_space!(libc::in6_pktinfo)),
            ),
            plain: MultiHeaders::preallocate(BATCH, None),
        }
    }
}

/// Sends a batch: one `sendmmsg` per source address (a batch almost always has one).
fn send_batch(socket: &UdpSocket, tx: &mut Headers, replies: &Replies) {
    let Some(&first) = replies.from.first() else {
        return;
    };
    let all = 0..replies.bytes.len();
    if replies.from.iter().all(|f| *f == first) {
        send_group(socket, tx, replies, first, all);
        return;
    }
    let mut sources: Vec<Option<IpAddr>> = replies.from.clone();
    sources.sort_unstable();
    sources.dedup();
    for source in sources {
        let group = all
            .clone()
            .filter(|&i| replies.from.get(i) == Some(&source));
        send_group(socket, tx, replies, source, group);
    }
}

/// Sends the replies at `indices`, all from `source`, with one `sendmmsg`.
fn send_group(
    socket: &UdpSocket,
    tx: &mut Headers,
    replies: &Replies,
    source: Option<IpAddr>,
    indices: impl Iterator<Item = usize>,
) {
    let fd = socket.as_raw_fd();
    let group: Vec<(&[u8], Option<SockaddrStorage>)> = indices
        .filter_map(|i| Some((replies.bytes.get(i)?.as_slice(), *replies.to.get(i)?)))
        .collect();
    let slices: Vec<[IoSlice<'_>; 1]> = group.iter().map(|(b, _)| [IoSlice::new(b)]).collect();
    let to: Vec<Option<SockaddrStorage>> = group.iter().map(|&(_, to)| to).collect();
    let first = to
        .first()
        .copied()
        .flatten()
        .as_ref()
        .and_then(officebox_sockets::udp::socket_addr);
    let pktinfo = first.and_then(|c| officebox_sockets::udp::Source::new(source, c));
    let sent = match &pktinfo {
        Some(p) => sendmmsg(
            fd,
            &mut tx.with_source,
            slices.iter(),
            &to,
            [p.cmsg()],
            MsgFlags::empty(),
        )
        .map(Iterator::count),
        None => sendmmsg(fd, &mut tx.plain, slices.iter(), &to, [], MsgFlags::empty())
            .map(Iterator::count),
    };
    let done = match sent {
        Ok(n) => n,
        Err(error) => {
            tracing::debug!(message = "dns: replies not sent together", %error);
            0
        }
    };
    // A partial send (a full socket buffer), or a source that went away: the rest one by
    // one.
    for &(bytes, to) in group.iter().skip(done) {
        if let Some(client) = client_addr(to) {
            send(socket, bytes, client, source);
        }
    }
}

fn serve(
    socket: &Arc<UdpSocket>,
    shared: &Arc<Shared>,
    rt: &tokio::runtime::Handle,
    stop: &AtomicBool,
) {
    let fd = socket.as_raw_fd();
    let mut bufs = vec![[0u8; MAX_QUERY]; BATCH];
    let mut rx = MultiHeaders::<SockaddrStorage>::preallocate(
        BATCH,
        Some(officebox_sockets::udp::cmsg_buffer()),
    );
    let mut tx = Headers::new();
    let mut received: Vec<(usize, SocketAddr, Option<IpAddr>)> = Vec::with_capacity(BATCH);
    let mut replies = Replies::default();
    // This thread's copy of the view, refreshed when the generation moves: no shared
    // reference count is touched per query.
    let mut generation = shared.generation();
    let mut view = shared.view();
    let forwarder = shared.forwarder();
    while !stop.load(Ordering::Relaxed) {
        // As many datagrams as are waiting (at least one; the socket's timeout bounds the
        // wait), in one system call.
        received.clear();
        {
            let mut iovs: Vec<[IoSliceMut<'_>; 1]> = bufs
                .iter_mut()
                .map(|b| [IoSliceMut::new(&mut b[..])])
                .collect();
            match recvmmsg(fd, &mut rx, iovs.iter_mut(), MsgFlags::MSG_WAITFORONE, None) {
                Ok(msgs) => {
                    for m in msgs {
                        if let Some(client) = client_addr(m.address) {
                            let to = officebox_sockets::udp::destination(
                                m.cmsgs().into_iter().flatten(),
                            );
                            received.push((m.bytes, client, to));
                        }
                    }
                }
                Err(Errno::EAGAIN | Errno::EINTR) => continue,
                Err(error) => {
                    warn!(message = "dns: udp receive failed", %error);
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            }
        }
        if shared.generation() != generation {
            generation = shared.generation();
            view = shared.view();
        }
        replies.clear();
        let now = Instant::now();
        for (buf, &(len, client, asked)) in bufs.iter().zip(&received) {
            let Some(packet) = buf.get(..len.min(MAX_QUERY)) else {
                continue;
            };
            let reply = match answer::handle(&view, packet, client.ip(), Transport::Udp) {
                Action::Reply(reply) => reply,
                Action::Forward(req) => {
                    // A cached answer goes out with the batch; only a miss goes to tokio.
                    let hit = forwarder.cache().with(
                        req.qname.as_bytes(),
                        req.qtype,
                        req.qclass,
                        now,
                        |c| answer::forwarded_at(&req, packet, Some(c), Transport::Udp, now),
                    );
                    match hit {
                        Some(reply) => reply,
                        None => {
                            // Questions waiting upstream are bounded: beyond that, SERVFAIL
                            // at once rather than unbounded tasks and sockets.
                            let Ok(permit) =
                                Arc::clone(shared.upstream_slots()).try_acquire_owned()
                            else {
                                replies.push(
                                    answer::forwarded_at(&req, packet, None, Transport::Udp, now),
                                    client,
                                    asked,
                                );
                                continue;
                            };
                            let (packet, socket, forwarder) =
                                (packet.to_vec(), Arc::clone(socket), Arc::clone(forwarder));
                            rt.spawn(async move {
                                let outcome = forwarder
                                    .resolve(req.qname.as_bytes(), req.qtype, req.qclass)
                                    .await;
                                let reply = answer::forwarded(
                                    &req,
                                    &packet,
                                    outcome.as_deref(),
                                    Transport::Udp,
                                );
                                send(&socket, &reply, client, asked);
                                drop(permit);
                            });
                            continue;
                        }
                    }
                }
                Action::Transfer(_) | Action::Drop => continue,
            };
            replies.push(reply, client, asked);
        }
        if replies.bytes.is_empty() {
            continue;
        }
        send_batch(socket, &mut tx, &replies);
    }
}

/// Sends one reply without ever blocking: with a full send buffer the reply is dropped
/// and the client asks again.
fn send(socket: &UdpSocket, reply: &[u8], client: SocketAddr, from: Option<IpAddr>) {
    if let Err(error) = officebox_sockets::udp::send(socket.as_raw_fd(), reply, client, from) {
        tracing::debug!(message = "dns: reply not sent", %client, %error);
    }
}
