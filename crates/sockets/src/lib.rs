//! What every listening service shares, so that each service binds, answers and limits
//! its clients the same way:
//!
//! - [`udp`]: server sockets that learn the address each datagram was sent to
//!   (IP_PKTINFO / IPV6_RECVPKTINFO) and answer from that address. A socket bound to
//!   0.0.0.0 would otherwise answer from the outgoing interface's address, and a LAN PC
//!   asking the box's WAN address would drop the reply as coming from a stranger.
//! - [`tcp`]: listeners bound alike (SO_REUSEADDR; IP_FREEBIND for a specific address,
//!   which may be the LAN address before the network service has put it on the
//!   interface).
//! - [`limits`]: connections per client address and in all, so that one address cannot
//!   take every slot of a service.

pub mod limits;
pub mod tcp;
pub mod udp;

pub use limits::{ConnLimits, Refused, Slot};

use std::io;
use std::time::Duration;

/// How long a bind to a port that is in use is retried.
const IN_USE_FOR: Duration = Duration::from_secs(2);

/// Runs `bind` until it succeeds, fails otherwise than "address in use", or
/// [`IN_USE_FOR`] has passed. A service moving its listeners (a reload from lan-only's
/// LAN address to 0.0.0.0, say) closes the old ones first, but a socket closed a moment
/// ago can live on for a few milliseconds more: a child process another service is
/// starting (`nft`) holds a copy of every descriptor between its fork and its exec.
pub async fn retry_in_use<T>(mut bind: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let deadline = tokio::time::Instant::now() + IN_USE_FOR;
    loop {
        match bind() {
            Err(e)
                if e.kind() == io::ErrorKind::AddrInUse
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
}
