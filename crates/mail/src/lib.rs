//! officebox's mail: SMTP in (this crate's first part), local delivery into the Maildirs
//! that POP3 and voicemail share, and the outbound queue.
//!
//! - [`route`]: what a recipient address means here (users, aliases, elsewhere) and who
//!   may relay; pure over the config.
//! - [`smtp`]: the SMTP server, one task per connection.
//! - [`deliver`]: storing an accepted message durably before it is acknowledged.

pub mod deliver;
pub mod route;
pub mod smtp;
pub mod tls;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use officebox_config::Config;
use officebox_config::derive::bind_addresses;
use officebox_config::model::Service;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Connections served at once; more wait in the kernel's backlog.
const MAX_SESSIONS: usize = 200;

fn endpoints(config: &Config) -> Vec<(SocketAddr, smtp::Port)> {
    let m = &config.mail;
    let ports = [
        (Service::Smtp, m.smtp_port, smtp::Port::Smtp),
        (
            Service::Submission,
            m.submission_port,
            smtp::Port::Submission,
        ),
        (Service::Smtps, m.smtps_port, smtp::Port::Smtps),
    ];
    ports
        .into_iter()
        .flat_map(|(service, port, kind)| {
            bind_addresses(config, service)
                .into_iter()
                .map(move |ip| (SocketAddr::new(ip, port), kind))
        })
        .collect()
}

/// Runs the SMTP server until `shutdown`; rebinds when a reload moves it.
pub async fn serve(
    mut config_rx: watch::Receiver<Arc<Config>>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let config = Arc::clone(&config_rx.borrow_and_update());
    let data_dir = config.data_dir.clone();
    let store = Arc::new(
        tokio::task::spawn_blocking(move || deliver::Store::open(&data_dir))
            .await
            .map_err(io::Error::other)?
            .map_err(|e| io::Error::other(format!("mail: {e}")))?,
    );
    let tls = match tls::acceptor(&config) {
        Ok(a) => Some(a),
        Err(error) => {
            warn!(message = "mail: no TLS (STARTTLS is not offered and the smtps port is not served)", %error);
            None
        }
    };
    let shared = Arc::new(smtp::Shared {
        tls,
        limiter: tls::AuthLimiter::default(),
    });
    let slots = Arc::new(Semaphore::new(MAX_SESSIONS));
    loop {
        let addrs = endpoints(&config_rx.borrow());
        let mut listeners = Vec::new();
        for (addr, kind) in &addrs {
            if *kind == smtp::Port::Smtps && shared.tls.is_none() {
                continue;
            }
            let l = TcpListener::bind(addr).await.map_err(|e| {
                io::Error::new(e.kind(), format!("smtp: cannot listen on tcp {addr}: {e}"))
            })?;
            info!(message = "smtp: serving", %addr, port = ?kind);
            listeners.push((l, *kind));
        }
        let stop = shutdown.child_token();
        for (l, kind) in listeners {
            let ctx = Ctx {
                store: Arc::clone(&store),
                shared: Arc::clone(&shared),
                slots: Arc::clone(&slots),
                kind,
            };
            tokio::spawn(accept(l, config_rx.clone(), ctx, stop.clone()));
        }
        let rebind = loop {
            tokio::select! {
                () = shutdown.cancelled() => break false,
                changed = config_rx.changed() => {
                    if changed.is_err() {
                        break false;
                    }
                    if endpoints(&config_rx.borrow()) != addrs {
                        break true;
                    }
                }
            }
        };
        stop.cancel();
        if !rebind {
            return Ok(());
        }
    }
}

/// What a listener hands each session.
struct Ctx {
    store: Arc<deliver::Store>,
    shared: Arc<smtp::Shared>,
    slots: Arc<Semaphore>,
    kind: smtp::Port,
}

async fn accept(
    listener: TcpListener,
    config_rx: watch::Receiver<Arc<Config>>,
    ctx: Ctx,
    stop: CancellationToken,
) {
    loop {
        let (stream, peer) = tokio::select! {
            () = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(error) => {
                    warn!(message = "smtp: accept failed", %error);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&ctx.slots).acquire_owned().await else {
            return;
        };
        // Each session keeps the config it started with.
        let config = Arc::clone(&config_rx.borrow());
        let (store, shared, kind, stop) = (
            Arc::clone(&ctx.store),
            Arc::clone(&ctx.shared),
            ctx.kind,
            stop.clone(),
        );
        tokio::spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                r = smtp::session(stream, peer, config, store, shared, kind) => {
                    if let Err(error) = r {
                        debug!(message = "smtp: session ended", %peer, %error);
                    }
                }
            }
            drop(permit);
        });
    }
}
