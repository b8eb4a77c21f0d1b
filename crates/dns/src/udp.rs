//! UDP listeners: blocking threads that answer from the zone and the cache without touching
//! the async runtime; only cache misses go to the forwarder on tokio.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::warn;

use crate::answer::{self, Action, Transport};
use crate::maintain::Shared;

/// How often a blocked receive wakes up to see whether it should stop.
const POLL: Duration = Duration::from_millis(200);

/// Threads per UDP socket: the machine has two cores.
const THREADS: usize = 2;

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

fn serve(
    socket: &Arc<UdpSocket>,
    shared: &Arc<Shared>,
    rt: &tokio::runtime::Handle,
    stop: &AtomicBool,
) {
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        let (len, client) = match socket.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(error) => {
                warn!(message = "dns: udp receive failed", %error);
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let packet = &buf[..len];
        let view = shared.view();
        match answer::handle(&view, packet, client.ip(), Transport::Udp) {
            Action::Reply(reply) => send(socket, &reply, client),
            Action::Forward(req) => {
                let forwarder = shared.forwarder();
                // A cached answer goes out from this thread; only a miss goes to tokio.
                if let Some(hit) = forwarder.cache().get(
                    req.qname.as_bytes(),
                    req.qtype,
                    req.qclass,
                    Instant::now(),
                ) {
                    send(
                        socket,
                        &answer::forwarded(&req, packet, Some(&hit), Transport::Udp),
                        client,
                    );
                    continue;
                }
                let (packet, socket) = (packet.to_vec(), Arc::clone(socket));
                rt.spawn(async move {
                    let outcome = forwarder
                        .resolve(req.qname.as_bytes(), req.qtype, req.qclass)
                        .await;
                    let reply =
                        answer::forwarded(&req, &packet, outcome.as_ref().ok(), Transport::Udp);
                    send(&socket, &reply, client);
                });
            }
            Action::Transfer(_) | Action::Drop => {}
        }
    }
}

fn send(socket: &UdpSocket, reply: &[u8], client: SocketAddr) {
    if let Err(error) = socket.send_to(reply, client) {
        tracing::debug!(message = "dns: reply not sent", %client, %error);
    }
}
