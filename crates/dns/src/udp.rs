//! UDP listeners: blocking threads that answer from the zone and the cache without touching
//! the async runtime; only cache misses go to the forwarder on tokio.

use std::io;
use std::io::{IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
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
    pub(crate) fn start(
        addrs: &[SocketAddr],
        shared: &Arc<Shared>,
        rt: &tokio::runtime::Handle,
    ) -> io::Result<UdpListeners> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for addr in addrs {
            let socket = UdpSocket::bind(addr).map_err(|e| {
                io::Error::new(e.kind(), format!("dns: cannot listen on udp {addr}: {e}"))
            })?;
            socket.set_read_timeout(Some(POLL))?;
            let socket = Arc::new(socket);
            for i in 0..THREADS {
                let (socket, shared, rt, stop) = (
                    Arc::clone(&socket),
                    Arc::clone(shared),
                    rt.clone(),
                    Arc::clone(&stop),
                );
                let t = std::thread::Builder::new()
                    .name(format!("dns-udp-{i}"))
                    .spawn(move || serve(&socket, &shared, &rt, &stop))?;
                threads.push(t);
            }
        }
        Ok(UdpListeners { stop, threads })
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
    let addr = addr?;
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::from(*v4));
    }
    addr.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6))
}

fn serve(
    socket: &Arc<UdpSocket>,
    shared: &Arc<Shared>,
    rt: &tokio::runtime::Handle,
    stop: &AtomicBool,
) {
    let fd = socket.as_raw_fd();
    let mut bufs = vec![[0u8; MAX_QUERY]; BATCH];
    let mut rx = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut tx = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut received: Vec<(usize, SocketAddr)> = Vec::with_capacity(BATCH);
    let mut replies: Vec<Vec<u8>> = Vec::with_capacity(BATCH);
    let mut to: Vec<Option<SockaddrStorage>> = Vec::with_capacity(BATCH);
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
                            received.push((m.bytes, client));
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
        to.clear();
        let now = Instant::now();
        for (buf, &(len, client)) in bufs.iter().zip(&received) {
            let packet = &buf[..len.min(MAX_QUERY)];
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
                                replies.push(answer::forwarded_at(
                                    &req,
                                    packet,
                                    None,
                                    Transport::Udp,
                                    now,
                                ));
                                to.push(Some(SockaddrStorage::from(client)));
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
                                send(&socket, &reply, client);
                                drop(permit);
                            });
                            continue;
                        }
                    }
                }
                Action::Transfer(_) | Action::Drop => continue,
            };
            replies.push(reply);
            to.push(Some(SockaddrStorage::from(client)));
        }
        if replies.is_empty() {
            continue;
        }
        let slices: Vec<[IoSlice<'_>; 1]> = replies.iter().map(|r| [IoSlice::new(r)]).collect();
        let sent =
            sendmmsg(fd, &mut tx, slices.iter(), &to, [], MsgFlags::empty()).map(Iterator::count);
        match sent {
            // A partial send (a full socket buffer): the rest one by one.
            Ok(n) if n < replies.len() => {
                for (reply, addr) in replies.iter().zip(&to).skip(n) {
                    if let Some(client) = client_addr(*addr) {
                        send(socket, reply, client);
                    }
                }
            }
            Ok(_) => {}
            Err(error) => tracing::debug!(message = "dns: replies not sent", %error),
        }
    }
}

/// Sends one reply without ever blocking: with a full send buffer the reply is dropped
/// and the client asks again.
fn send(socket: &UdpSocket, reply: &[u8], client: SocketAddr) {
    let to = SockaddrStorage::from(client);
    if let Err(error) =
        nix::sys::socket::sendto(socket.as_raw_fd(), reply, &to, MsgFlags::MSG_DONTWAIT)
    {
        tracing::debug!(message = "dns: reply not sent", %client, %error);
    }
}
