//! TCP listeners, bound the same way by every service.

use std::fmt::Display;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;

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

/// The accept loop every TCP service runs: takes the connections `listener` admits under
/// `limits` (pausing after a failed accept, see [`accept`]) until `stop` is cancelled, and
/// runs `session` for each in a task of its own that holds the connection's slot and ends
/// when `stop` is cancelled. A connection over the limits goes to `refused`, which may say
/// so in the protocol. `service` names the service in the log line of a session that ended
/// with an error ("dns: tcp", "mail").
pub async fn serve<S, F, E>(
    listener: TcpListener,
    limits: Arc<ConnLimits>,
    stop: CancellationToken,
    service: &'static str,
    mut refused: impl FnMut(TcpStream, SocketAddr, Refused),
    mut session: S,
) where
    S: FnMut(TcpStream, SocketAddr) -> F,
    F: Future<Output = Result<(), E>> + Send + 'static,
    E: Display,
{
    loop {
        let (stream, peer, slot) = tokio::select! {
            () = stop.cancelled() => return,
            a = accept(&listener, &limits) => match a {
                Accepted::Admitted(stream, peer, slot) => (stream, peer, slot),
                Accepted::Refused(stream, peer, why) => {
                    refused(stream, peer, why);
                    continue;
                }
            },
        };
        let run = session(stream, peer);
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                r = run => {
                    if let Err(error) = r {
                        tracing::debug!(%peer, %error, "{service}: connection ended");
                    }
                }
            }
            drop(slot);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::mpsc;

    #[tokio::test]
    async fn serve_runs_sessions_refuses_over_the_limit_and_stops() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = ConnLimits::new(1, 8);
        let stop = CancellationToken::new();
        let (refusals, mut refused_rx) = mpsc::unbounded_channel();
        let refused = move |_: TcpStream, _: SocketAddr, why: Refused| {
            let _ = refusals.send(why);
        };
        // Each session says hello, then waits for the client to close.
        let session = |mut stream: TcpStream, _: SocketAddr| async move {
            stream.write_all(b"hi").await?;
            let mut rest = Vec::new();
            stream.read_to_end(&mut rest).await.map(|_| ())
        };
        let server = tokio::spawn(serve(
            listener,
            Arc::clone(&limits),
            stop.clone(),
            "test",
            refused,
            session,
        ));

        let mut first = TcpStream::connect(addr).await.unwrap();
        let mut hello = [0u8; 2];
        first.read_exact(&mut hello).await.unwrap();
        assert_eq!(&hello, b"hi");
        assert_eq!(limits.open(), 1, "the session holds its slot");

        let _second = TcpStream::connect(addr).await.unwrap();
        assert_eq!(refused_rx.recv().await, Some(Refused::PerAddress));

        stop.cancel();
        server.await.unwrap();
        // The session's task ended with the stop: the connection closes, the slot frees.
        let mut rest = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(5), first.read_to_end(&mut rest))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 0);
        for _ in 0..100 {
            if limits.open() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(limits.open(), 0);
    }
}
