//! DNS over TCP (RFC 7766): length-prefixed messages, several per connection (pipelined;
//! answered in order), idle connections closed, a bound on open connections.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use officebox_sockets::{ConnLimits, Refused};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::answer::{self, Action, Transport};
use crate::maintain::Shared;

/// Idle time after which a connection is closed (RFC 7766 section 6.2.3 suggests seconds).
const IDLE: Duration = Duration::from_secs(10);
const MAX_CONNECTIONS: usize = 256;
/// Connections one client address may hold at once.
const PER_CLIENT: usize = 16;

pub(crate) async fn bind(addrs: &[SocketAddr]) -> io::Result<Vec<TcpListener>> {
    let mut out = Vec::new();
    for addr in addrs {
        let l = officebox_sockets::tcp::listen(*addr).await.map_err(|e| {
            io::Error::new(e.kind(), format!("dns: cannot listen on tcp {addr}: {e}"))
        })?;
        out.push(l);
    }
    Ok(out)
}

pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, stop: CancellationToken) {
    // One client cannot hold every slot (RFC 7766 section 6.2.3).
    let limits = ConnLimits::new(PER_CLIENT, MAX_CONNECTIONS);
    let refused = |_: TcpStream, peer: SocketAddr, why: Refused| {
        debug!(message = "dns: tcp connection refused", %peer, reason = %why);
    };
    let session = move |stream: TcpStream, peer: SocketAddr| {
        let shared = Arc::clone(&shared);
        async move { connection(stream, peer, &shared).await }
    };
    officebox_sockets::tcp::serve(listener, limits, stop, "dns: tcp", refused, session).await;
}

async fn connection(mut stream: TcpStream, peer: SocketAddr, shared: &Shared) -> io::Result<()> {
    loop {
        let len = match tokio::time::timeout(IDLE, stream.read_u16()).await {
            Err(_) => return Ok(()),
            Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(r) => r?,
        };
        let mut packet = vec![0u8; usize::from(len)];
        tokio::time::timeout(IDLE, stream.read_exact(&mut packet))
            .await
            .map_err(|_| {
                io::Error::new(io::ErrorKind::TimedOut, "message not finished in time")
            })??;
        let view = shared.view();
        let replies = match answer::handle(&view, &packet, peer.ip(), Transport::Tcp) {
            Action::Reply(r) => vec![r],
            Action::Forward(req) => {
                let outcome = shared
                    .forwarder()
                    .resolve(req.qname.as_bytes(), req.qtype, req.qclass)
                    .await;
                vec![answer::forwarded(
                    &req,
                    &packet,
                    outcome.as_deref(),
                    Transport::Tcp,
                )]
            }
            Action::Transfer(req) => crate::maintain::transfer(&view, &req, &packet, peer.ip()),
            Action::Drop => continue,
        };
        for r in replies {
            let len = u16::try_from(r.len()).unwrap_or(u16::MAX);
            let mut framed = Vec::with_capacity(r.len() + 2);
            framed.extend_from_slice(&len.to_be_bytes());
            framed.extend_from_slice(&r);
            stream.write_all(&framed).await?;
        }
    }
}
