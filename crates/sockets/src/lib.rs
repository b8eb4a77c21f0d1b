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
//!
//! And the loops they all run: [`tcp::serve`] (accept, pause after a failed accept, one
//! task per connection) and [`wait_for_new_endpoints`] (serve until a reload moves the
//! listening addresses).

pub mod limits;
pub mod netlink;
pub mod tcp;
pub mod tun;
pub mod udp;

pub use limits::{ConnLimits, Refused, Slot};

use std::io;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

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

/// What a service that follows its config waits for between binds: returns `true` once
/// the addresses `endpoints` makes of a new config differ from `current` (bind anew), or
/// `false` once `shutdown` is cancelled or the config's sender is gone (stop).
pub async fn wait_for_new_endpoints<C, E: PartialEq>(
    config: &mut watch::Receiver<C>,
    shutdown: &CancellationToken,
    current: &E,
    endpoints: impl Fn(&C) -> E,
) -> bool {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return false,
            changed = config.changed() => {
                if changed.is_err() {
                    return false;
                }
                if endpoints(&config.borrow()) != *current {
                    return true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn new_endpoints_mean_rebind_and_shutdown_means_stop() {
        // The config is (port, other setting); the endpoints are the port.
        let (tx, mut rx) = watch::channel((53u16, 1u32));
        let shutdown = CancellationToken::new();
        let port = |c: &(u16, u32)| c.0;
        let waiting = tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                let moved = wait_for_new_endpoints(&mut rx, &shutdown, &53, port).await;
                (moved, rx)
            }
        });
        tx.send_replace((53, 2));
        tokio::task::yield_now().await;
        assert!(
            !waiting.is_finished(),
            "another setting changed: keep serving"
        );
        tx.send_replace((5353, 2));
        let (moved, mut rx) = waiting.await.unwrap();
        assert!(moved, "the port moved: bind anew");

        shutdown.cancel();
        assert!(!wait_for_new_endpoints(&mut rx, &shutdown, &5353, port).await);
        let live = CancellationToken::new();
        drop(tx);
        assert!(
            !wait_for_new_endpoints(&mut rx, &live, &5353, port).await,
            "the config's sender is gone: stop"
        );
    }
}
