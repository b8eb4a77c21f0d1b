//! officebox's mail: SMTP in (this crate's first part), local delivery into the Maildirs
//! that POP3 and voicemail share, and the outbound queue.
//!
//! - [`route`]: what a recipient address means here (users, aliases, elsewhere) and who
//!   may relay; pure over the config.
//! - [`smtp`]: the SMTP server, one task per connection.
//! - [`deliver`]: storing an accepted message durably before it is acknowledged.
//! - [`pop3`]: the POP3 server over the same Maildirs.
//! - [`tls`]: the box's certificate and password checks, shared by SMTP and POP3; TLS as
//!   a client.
//! - [`queue`]: the runner that sends queued mail to other domains, with [`client`] (the
//!   SMTP client), [`resolve`] (MX lookups) and [`report`] (bounces and other notices).
//! - [`fetch`]: the POP3 fetcher that brings mail from ISP mailboxes into local ones.

// This crate reads what the network sends: slicing and indexing that could panic on it
// are refused outside tests (issue 15, item 6).
#![cfg_attr(not(test), warn(clippy::string_slice, clippy::indexing_slicing))]

pub mod checks;
pub mod client;
mod conn;
pub mod deliver;
pub mod dkim;
pub mod fax;
pub mod fetch;
pub mod imap;
pub mod pop3;
pub mod queue;
pub mod report;
pub mod resolve;
pub mod route;
pub mod smtp;
pub mod tls;
pub mod vacation;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use officebox_config::Config;
use officebox_config::derive::bind_addresses;
use officebox_config::model::Service;
use officebox_sockets::{ConnLimits, Refused};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Connections served at once (SMTP, submission and POP3 together), and from one client
/// address on each port ([`officebox_sockets::limits::PER_ADDRESS`]). Beyond either, a
/// connection is told to come back later and closed.
const MAX_SESSIONS: usize = 200;

/// What a listening socket serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Smtp(smtp::Port),
    Pop3(pop3::Port),
    Imap(imap::session::Port),
}

impl Kind {
    fn needs_tls_first(self) -> bool {
        matches!(
            self,
            Kind::Smtp(smtp::Port::Smtps)
                | Kind::Pop3(pop3::Port::Pop3s)
                | Kind::Imap(imap::session::Port::Imaps)
        )
    }
}

fn endpoints(config: &Config) -> Vec<(SocketAddr, Kind)> {
    let m = &config.mail;
    let ports = [
        (Service::Smtp, m.smtp_port, Kind::Smtp(smtp::Port::Smtp)),
        (
            Service::Submission,
            m.submission_port,
            Kind::Smtp(smtp::Port::Submission),
        ),
        (Service::Smtps, m.smtps_port, Kind::Smtp(smtp::Port::Smtps)),
        (Service::Pop3, m.pop3_port, Kind::Pop3(pop3::Port::Pop3)),
        (Service::Pop3s, m.pop3s_port, Kind::Pop3(pop3::Port::Pop3s)),
        (
            Service::Imap,
            m.imap_port,
            Kind::Imap(imap::session::Port::Imap),
        ),
        (
            Service::Imaps,
            m.imaps_port,
            Kind::Imap(imap::session::Port::Imaps),
        ),
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

/// What every session shares.
struct Ctx {
    store: Arc<deliver::Store>,
    shared: Arc<smtp::Shared>,
    locks: Arc<pop3::Locks>,
    /// The IMAP index.
    index: Arc<imap::session::Index>,
    /// The mail sessions in all; each port counts its clients' addresses by itself.
    limits: Arc<ConnLimits>,
}

/// Runs the SMTP and POP3 servers until `shutdown`; rebinds when a reload moves them.
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
    // The DKIM keys are made once, before the first message can leave.
    let s = Arc::clone(&store);
    let made = tokio::task::spawn_blocking(move || {
        s.with_db(|db| officebox_secrets::dkim::ensure(db, officebox_store::unix_now()))
    })
    .await
    .map_err(io::Error::other)?;
    match made {
        Ok(true) => info!(message = "mail: made the domain's DKIM keys (published in the zone)"),
        Ok(false) => {}
        Err(error) => {
            warn!(message = "mail: cannot make the DKIM keys; mail leaves unsigned", %error);
        }
    }
    let tls = match tls::acceptor(&config) {
        Ok(a) => Some(a),
        Err(error) => {
            warn!(message = "mail: no TLS (STARTTLS/STLS are not offered, the TLS ports are not served)", %error);
            None
        }
    };
    // The queue runner and the fetcher live exactly as long as this instance: they are
    // stopped and awaited however the listeners end, so two of them never work on the
    // same message.
    let runner_stop = shutdown.child_token();
    let runner = tokio::spawn(queue::run(
        config_rx.clone(),
        Arc::clone(&store),
        runner_stop.clone(),
    ));
    let fetcher = tokio::spawn(fetch::run(
        config_rx.clone(),
        Arc::clone(&store),
        runner_stop.clone(),
    ));
    let index = Arc::new(imap::session::Index::new(Arc::clone(&store)));
    let ctx = Arc::new(Ctx {
        store,
        shared: Arc::new(smtp::Shared {
            tls,
            limiter: officebox_secrets::login::Limiter::new(officebox_secrets::login::LOGIN),
            checker: checks::Checker::default(),
        }),
        locks: Arc::default(),
        index,
        limits: ConnLimits::new(officebox_sockets::limits::PER_ADDRESS, MAX_SESSIONS),
    });
    let result = listen(config_rx, &ctx, &shutdown).await;
    runner_stop.cancel();
    let _ = tokio::join!(runner, fetcher);
    result
}

/// Binds the SMTP and POP3 ports and serves them until `shutdown`; rebinds when a reload
/// moves them.
async fn listen(
    mut config_rx: watch::Receiver<Arc<Config>>,
    ctx: &Arc<Ctx>,
    shutdown: &CancellationToken,
) -> io::Result<()> {
    loop {
        let addrs = endpoints(&config_rx.borrow());
        let mut listeners = Vec::new();
        for (addr, kind) in &addrs {
            if kind.needs_tls_first() && ctx.shared.tls.is_none() {
                continue;
            }
            let l = officebox_sockets::tcp::listen(*addr).await.map_err(|e| {
                io::Error::new(e.kind(), format!("mail: cannot listen on tcp {addr}: {e}"))
            })?;
            match kind {
                Kind::Smtp(port) => info!(message = "smtp: serving", %addr, ?port),
                Kind::Pop3(port) => info!(message = "pop3: serving", %addr, ?port),
                Kind::Imap(port) => info!(message = "imap: serving", %addr, ?port),
            }
            listeners.push((l, *kind));
        }
        let stop = shutdown.child_token();
        let mut acceptors = tokio::task::JoinSet::new();
        for (l, kind) in listeners {
            let limits = ctx.limits.sharing_total();
            acceptors.spawn(accept(
                l,
                limits,
                kind,
                config_rx.clone(),
                Arc::clone(ctx),
                stop.clone(),
            ));
        }
        let rebind = officebox_sockets::wait_for_new_endpoints(
            &mut config_rx,
            shutdown,
            &addrs,
            |c: &Arc<Config>| endpoints(c),
        )
        .await;
        stop.cancel();
        // The old listeners are closed before the new ones bind (0.0.0.0 cannot be bound
        // while the LAN address's listener on the same port is open, nor the reverse).
        while acceptors.join_next().await.is_some() {}
        if !rebind {
            return Ok(());
        }
    }
}

/// Tells a client there is no room for it now (in the protocol's words, where the port
/// speaks plain text first) and closes the connection.
fn refuse(mut stream: tokio::net::TcpStream, kind: Kind, why: Refused, peer: SocketAddr) {
    debug!(message = "mail: connection refused", %peer, reason = %why);
    let line: &[u8] = match (kind, why) {
        (
            Kind::Smtp(smtp::Port::Smtps)
            | Kind::Pop3(pop3::Port::Pop3s)
            | Kind::Imap(imap::session::Port::Imaps),
            _,
        ) => b"",
        (Kind::Smtp(_), Refused::PerAddress) => {
            b"421 4.7.0 Too many connections from your address; try again later\r\n"
        }
        (Kind::Smtp(_), Refused::Full) => b"421 4.3.2 Too busy; try again later\r\n",
        (Kind::Pop3(_), Refused::PerAddress) => {
            b"-ERR [SYS/TEMP] too many connections from your address; try again later\r\n"
        }
        (Kind::Pop3(_), Refused::Full) => b"-ERR [SYS/TEMP] too busy; try again later\r\n",
        (Kind::Imap(_), Refused::PerAddress) => {
            b"* BYE [UNAVAILABLE] too many connections from your address; try again later\r\n"
        }
        (Kind::Imap(_), Refused::Full) => b"* BYE [UNAVAILABLE] too busy; try again later\r\n",
    };
    tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.write_all(line)).await;
    });
}

async fn accept(
    listener: TcpListener,
    limits: Arc<ConnLimits>,
    kind: Kind,
    config_rx: watch::Receiver<Arc<Config>>,
    ctx: Arc<Ctx>,
    stop: CancellationToken,
) {
    let refused = move |stream, peer, why| refuse(stream, kind, why, peer);
    let session = move |stream, peer| {
        // Each session keeps the config it started with.
        let config = Arc::clone(&config_rx.borrow());
        let ctx = Arc::clone(&ctx);
        async move {
            match kind {
                Kind::Smtp(port) => {
                    smtp::session(
                        stream,
                        peer,
                        config,
                        Arc::clone(&ctx.store),
                        Arc::clone(&ctx.shared),
                        port,
                    )
                    .await
                }
                Kind::Imap(port) => {
                    imap::session::session(
                        stream,
                        peer,
                        config,
                        Arc::clone(&ctx.shared),
                        Arc::clone(&ctx.index),
                        port,
                    )
                    .await
                }
                Kind::Pop3(port) => {
                    pop3::session(
                        stream,
                        peer,
                        config,
                        Arc::clone(&ctx.shared),
                        Arc::clone(&ctx.locks),
                        port,
                    )
                    .await
                }
            }
        }
    };
    officebox_sockets::tcp::serve(listener, limits, stop, "mail", refused, session).await;
}
