//! The media relay: for each call, two UDP ports on the box (one the caller sends to, one
//! the callee sends to), and a task copying packets across. Each side's address is where
//! its SDP said, until its first packet arrives from somewhere else: then that source is
//! used (symmetric RTP latching, for phones behind NAT). Packets from a third address
//! after latching are dropped, so nobody can inject audio into a call by guessing a port.

use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// RTP ports in use, from the configured range.
#[derive(Debug)]
pub struct Ports {
    range: (u16, u16),
    used: Mutex<BTreeSet<u16>>,
}

/// A port taken from the range, given back on drop.
#[derive(Debug)]
pub struct Lease {
    pub socket: UdpSocket,
    pub port: u16,
    ports: Arc<Ports>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.ports
            .used
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.port);
    }
}

impl Ports {
    pub fn new(range: (u16, u16)) -> Arc<Ports> {
        Arc::new(Ports {
            range,
            used: Mutex::default(),
        })
    }

    /// An even port of the range on `ip` (RTP's convention; RTCP would be the odd one).
    pub fn take(self: &Arc<Self>, ip: IpAddr) -> io::Result<Lease> {
        let (lo, hi) = self.range;
        let start = lo + (rand::random::<u16>() % ((hi - lo) / 2 + 1)) * 2;
        let candidates = (start..=hi).chain(lo..start).filter(|p| p % 2 == 0);
        for port in candidates {
            if !self
                .used
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(port)
            {
                continue;
            }
            match std::net::UdpSocket::bind((ip, port)).and_then(|s| {
                s.set_nonblocking(true)?;
                UdpSocket::from_std(s)
            }) {
                Ok(socket) => {
                    return Ok(Lease {
                        socket,
                        port,
                        ports: Arc::clone(self),
                    });
                }
                Err(_) => {
                    self.used
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&port);
                }
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("no free RTP port in {lo}-{hi}"),
        ))
    }
}

/// Where each side's audio goes now, as the call's signalling says (SDP offer/answer);
/// latching may override it with the side's real source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Peers {
    pub a: Option<SocketAddr>,
    pub b: Option<SocketAddr>,
}

/// What a relay hands back when stopped: its ports (voicemail answers on the caller's)
/// and the packets it carried each way.
#[derive(Debug)]
pub struct Stopped {
    pub a: Lease,
    pub b: Lease,
    pub a_to_b: u64,
    pub b_to_a: u64,
    /// Packets dropped on each side for coming from another source than the latched one.
    pub strangers_a: u64,
    pub strangers_b: u64,
}

/// Copies packets between `a` (the port the caller sends to) and `b` (the callee's) until
/// `stop`.
pub async fn relay(
    a: Lease,
    b: Lease,
    mut peers: watch::Receiver<Peers>,
    stop: CancellationToken,
) -> Stopped {
    let mut buf_a = vec![0u8; 2048];
    let mut buf_b = vec![0u8; 2048];
    let (mut latched_a, mut latched_b): (Option<SocketAddr>, Option<SocketAddr>) = (None, None);
    let (mut a_to_b, mut b_to_a) = (0u64, 0u64);
    let (mut strangers_a, mut strangers_b) = (0u64, 0u64);
    let mut current = *peers.borrow_and_update();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            changed = peers.changed() => {
                if changed.is_err() {
                    break;
                }
                let new = *peers.borrow_and_update();
                // A new offer or answer (re-INVITE) may move a side: latch again.
                if new.a != current.a {
                    latched_a = None;
                }
                if new.b != current.b {
                    latched_b = None;
                }
                current = new;
            }
            r = a.socket.recv_from(&mut buf_a) => {
                let Ok((n, from)) = r else { continue };
                if !accept(&mut latched_a, current.a, from) {
                    strangers_a += 1;
                    continue;
                }
                if let Some(to) = latched_b.or(current.b).filter(|t| !t.ip().is_unspecified())
                    && b.socket.send_to(buf_a.get(..n).unwrap_or_default(), to).await.is_ok()
                {
                    a_to_b += 1;
                }
            }
            r = b.socket.recv_from(&mut buf_b) => {
                let Ok((n, from)) = r else { continue };
                if !accept(&mut latched_b, current.b, from) {
                    strangers_b += 1;
                    continue;
                }
                if let Some(to) = latched_a.or(current.a).filter(|t| !t.ip().is_unspecified())
                    && a.socket.send_to(buf_b.get(..n).unwrap_or_default(), to).await.is_ok()
                {
                    b_to_a += 1;
                }
            }
        }
    }
    Stopped {
        a,
        b,
        a_to_b,
        b_to_a,
        strangers_a,
        strangers_b,
    }
}

/// Whether a packet from `from` belongs to this side; the first one latches it. Before
/// latching, only the side's signalled host (any port, for NAT) or any address when it
/// signalled none is accepted.
fn accept(
    latched: &mut Option<SocketAddr>,
    signalled: Option<SocketAddr>,
    from: SocketAddr,
) -> bool {
    match latched {
        Some(l) => *l == from,
        None => {
            let ok = signalled.is_none_or(|s| s.ip() == from.ip() || s.ip().is_unspecified())
                || signalled.is_some_and(|s| s.ip().is_loopback() && from.ip().is_loopback());
            if ok {
                *latched = Some(from);
            }
            ok
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn packets_cross_and_sides_latch_to_their_real_source() {
        let ports = Ports::new((47000, 47998));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let (a, b) = (ports.take(ip).unwrap(), ports.take(ip).unwrap());
        assert_ne!(a.port, b.port);
        assert_eq!(a.port % 2, 0);
        let (pa, pb) = (a.port, b.port);
        let phone_a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let phone_b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        // The SDP named other ports than the phones really use: latching fixes that.
        let (tx, rx) = watch::channel(Peers {
            a: Some("127.0.0.1:9".parse().unwrap()),
            b: Some("127.0.0.1:11".parse().unwrap()),
        });
        let stop = CancellationToken::new();
        let task = tokio::spawn(relay(a, b, rx, stop.clone()));
        let mut buf = [0u8; 64];
        phone_b.send_to(b"from b", ("127.0.0.1", pb)).await.unwrap(); // latches b
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        phone_a.send_to(b"from a", ("127.0.0.1", pa)).await.unwrap();
        let (n, _) = phone_b.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"from a");
        phone_b
            .send_to(b"again b", ("127.0.0.1", pb))
            .await
            .unwrap();
        let (n, from) = phone_a.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from.port()), (&b"again b"[..], pa));
        // A stranger cannot speak into the call.
        let stranger = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        stranger.send_to(b"evil", ("127.0.0.1", pa)).await.unwrap();
        stop.cancel();
        let stopped = task.await.unwrap();
        // b's first packet went where a's SDP said (nothing had come from a yet).
        assert_eq!((stopped.a_to_b, stopped.b_to_a), (1, 2));
        drop((tx, stopped));
        assert!(ports.used.lock().unwrap().is_empty(), "ports given back");
    }
}
