//! TCP listeners, bound the same way by every service.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::limits::{ConnLimits, Refused, Slot};

/// Connections the kernel keeps waiting for `accept`.
const BACKLOG: u32 = 1024;

/// A listener on `addr` (SO_REUSEADDR, so a restart can bind again at once). A specific
/// address may be one the interface does not have yet, such as the LAN address while the
/// network service is still putting it there (IP_FREEBIND): connections arrive once it
/// exists. A port whose old listener was closed a moment ago is tried again for a while
/// (see [`crate::retry_in_use`]).
pub async fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    crate::retry_in_use(|| listen_once(addr)).await
}

fn listen_once(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    if !addr.ip().is_unspecified() {
        nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::IpFreebind, &true)
            .map_err(io::Error::from)?;
    }
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// A connection taken from a listener.
#[derive(Debug)]
pub enum Accepted {
    /// Admitted under the service's limits; the slot is held for as long as it is kept.
    Admitted(TcpStream, SocketAddr, Slot),
    /// Over the limits: the caller may say so in its protocol, then drops it.
    Refused(TcpStream, SocketAddr, Refused),
}

/// The next connection on `listener`, admitted or refused under `limits`. An accept that
/// fails (no file descriptors left, say) is tried again after a pause, not in a busy loop.
pub async fn accept(listener: &TcpListener, limits: &Arc<ConnLimits>) -> Accepted {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                return match limits.admit(peer.ip()) {
                    Ok(slot) => Accepted::Admitted(stream, peer, slot),
                    Err(why) => Accepted::Refused(stream, peer, why),
                };
            }
            Err(_) => tokio::time::sleep(ACCEPT_PAUSE).await,
        }
    }
}

/// The pause after a failed accept.
const ACCEPT_PAUSE: Duration = Duration::from_millis(50);
