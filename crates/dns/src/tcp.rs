//! DNS over TCP (RFC 7766): length-prefixed messages, several per connection (pipelined;
//! answered in order), idle connections closed, a bound on open connections.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

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
        let l = TcpListener::bind(addr).await.map_err(|e| {
            io::Error::new(e.kind(), format!("dns: cannot listen on tcp {addr}: {e}"))
        })?;
        out.push(l);
    }
    Ok(out)
}

pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, stop: CancellationToken) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let per_client: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    loop {
        let (stream, peer) = tokio::select! {
            () = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(error) => {
                    warn!(message = "dns: tcp accept failed", %error);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            debug!(message = "dns: too many tcp connections; closing one", %peer);
            continue;
        };
        // One client cannot hold every slot (RFC 7766 section 6.2.3).
        let ip = peer.ip();
        let mine = {
            let mut per = lock(&per_client);
            let n = per.entry(ip).or_insert(0);
            *n += 1;
            *n
        };
        if mine > PER_CLIENT {
            release(&per_client, ip);
            debug!(message = "dns: too many tcp connections from one client", %peer);
            continue;
        }
        let (shared, stop, per_client) =
            (Arc::clone(&shared), stop.clone(), Arc::clone(&per_client));
        tokio::spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                r = connection(stream, peer, &shared) => {
                    if let Err(error) = r {
                        debug!(message = "dns: tcp connection ended", %peer, %error);
                    }
                }
            }
            release(&per_client, ip);
            drop(permit);
        });
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn release(per_client: &Mutex<HashMap<IpAddr, usize>>, ip: IpAddr) {
    let mut per = lock(per_client);
    if let Some(n) = per.get_mut(&ip) {
        *n -= 1;
        if *n == 0 {
            per.remove(&ip);
        }
    }
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
