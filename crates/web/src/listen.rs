//! Listening: the admin pages' and the sites' listeners (bound again when the ports or
//! HTTPS change), the accept loops with per-address connection limits, TLS for the admin
//! pages with `web.https`, and HTTP/1.1 connections served by an axum router.

use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use officebox_config::Config;
use officebox_config::derive::{bind_addresses, provisioning_on};
use officebox_config::model::Service;
use officebox_sockets::ConnLimits;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::{debug, error, info};

use crate::WebContext;
use crate::app::{App, Shared};

/// Connections the admin pages and the sites each serve at once (and from one address,
/// `officebox_sockets::limits::PER_ADDRESS`).
pub(crate) const MAX_CONNECTIONS: usize = 256;

/// The address a request came from, put in its extensions by the connection.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Peer {
    type Rejection = axum::http::StatusCode;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Peer>()
            .copied()
            .ok_or(axum::http::StatusCode::FORBIDDEN)
    }
}

/// Runs the admin pages and the sites until `shutdown`, binding again when the config
/// moves them, and undoing an unconfirmed risky change when its time is up.
pub(crate) async fn serve(
    config_rx: watch::Receiver<Arc<Config>>,
    context: WebContext,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let app: Shared = Arc::new(App::new(config_rx.clone(), context));
    // The state database is opened once, now, and shared by every request after.
    let _ = app.store.with(|_| Ok(())).await;
    let phones = crate::provision::Provisioning::new(config_rx.clone(), app.store.clone());
    let mut rx = config_rx.clone();
    let mut first = true;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let config = Arc::clone(&rx.borrow_and_update());
        let bound = binding(&config);
        phones.assign(&config).await;
        let mut tasks = match bind(&app, &phones, &config_rx, &config, &shutdown).await {
            Ok(t) => t,
            Err(e) if first => return Err(e),
            // A change moved the pages somewhere they cannot be: until the next change
            // (a risky change comes back by itself) nothing listens.
            Err(error) => {
                error!(message = "web: cannot listen where the config says", %error);
                JoinSet::new()
            }
        };
        first = false;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => {
                    tasks.shutdown().await;
                    return Ok(());
                }
                // A revert waits for the supervisor's answer, which a stop must not.
                _ = tick.tick() => tokio::select! {
                    () = crate::confirm::revert_if_unconfirmed(&app) => {}
                    () = shutdown.cancelled() => {
                        tasks.shutdown().await;
                        return Ok(());
                    }
                },
                changed = rx.changed() => {
                    if changed.is_err() {
                        tasks.shutdown().await;
                        return Ok(());
                    }
                    let c = Arc::clone(&rx.borrow_and_update());
                    app.sessions.set_timeout(c.web.session_timeout);
                    phones.assign(&c).await;
                    if binding(&c) != bound {
                        info!(message = "web: the ports or HTTPS changed; listening anew");
                        break;
                    }
                }
            }
        }
        tasks.shutdown().await;
    }
}

/// What the listeners depend on; a change rebinds them.
type Binding = (Vec<IpAddr>, u16, bool, Vec<IpAddr>, u16, Option<(u16, u16)>);

fn binding(c: &Config) -> Binding {
    (
        bind_addresses(c, Service::Admin),
        c.web.admin_port,
        c.web.https,
        bind_addresses(c, Service::Www),
        c.web.site_port,
        provisioning_on(c).then_some((c.phone.provisioning_port, c.phone.provisioning_tls_port)),
    )
}

/// The admin pages' listeners (over TLS with `web.https`) and the sites'.
async fn bind(
    app: &Shared,
    phones: &Arc<crate::provision::Provisioning>,
    config_rx: &watch::Receiver<Arc<Config>>,
    config: &Arc<Config>,
    stop: &CancellationToken,
) -> io::Result<JoinSet<()>> {
    // The sites' directories first, so that they exist once the pages say they serve.
    crate::site::prepare_dirs(config).await?;
    let tls = if config.web.https || provisioning_on(config) {
        let c = Arc::clone(config);
        Some(
            tokio::task::spawn_blocking(move || officebox_secrets::tls::acceptor(&c))
                .await
                .map_err(io::Error::other)??,
        )
    } else {
        None
    };
    let admin_tls = tls.clone().filter(|_| config.web.https);
    let mut listeners = Vec::new();
    for ip in bind_addresses(config, Service::Admin) {
        let addr = SocketAddr::new(ip, config.web.admin_port);
        let l = listen(addr).await?;
        info!(message = "web: serving the admin pages", %addr, https = admin_tls.is_some());
        listeners.push(l);
    }
    let admin = crate::routes::admin(Arc::clone(app));
    let mut tasks = JoinSet::new();
    for l in listeners {
        tasks.spawn(accept(
            l,
            admin.clone(),
            admin_tls.clone(),
            "web: connection",
            stop.clone(),
        ));
    }
    if provisioning_on(config) {
        let ports = [
            (config.phone.provisioning_port, None),
            (config.phone.provisioning_tls_port, tls.clone()),
        ];
        for (port, tls) in ports {
            let router = crate::provision::router(Arc::clone(phones), tls.is_some());
            for ip in bind_addresses(config, Service::Provisioning) {
                let addr = SocketAddr::new(ip, port);
                let l = listen(addr).await?;
                info!(message = "web: serving the phones' files", %addr, https = tls.is_some());
                tasks.spawn(accept(
                    l,
                    router.clone(),
                    tls.clone(),
                    "web: provisioning connection",
                    stop.clone(),
                ));
            }
        }
    }
    let site = crate::site::router(config_rx.clone());
    for ip in bind_addresses(config, Service::Www) {
        let addr = SocketAddr::new(ip, config.web.site_port);
        let l = listen(addr).await?;
        info!(message = "web: serving the www and corp sites", %addr);
        tasks.spawn(accept(
            l,
            site.clone(),
            None,
            "web: site connection",
            stop.clone(),
        ));
    }
    Ok(tasks)
}

/// A listener on `addr`, which may be the LAN address before the network service has put
/// it on the interface (they start together): see `officebox_sockets::tcp::listen`.
async fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    officebox_sockets::tcp::listen(addr)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("web: cannot listen on tcp {addr}: {e}")))
}

/// Accepts connections within the limits (the accept loop every TCP service shares) and
/// serves each with `router` (after a TLS handshake of at most 20 s, with `tls`) until
/// `stop`. `what` names them in the debug log.
async fn accept(
    listener: TcpListener,
    router: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    what: &'static str,
    stop: CancellationToken,
) {
    let limits = ConnLimits::new(officebox_sockets::limits::PER_ADDRESS, MAX_CONNECTIONS);
    let refused =
        |_, peer, why| debug!(message = "web: connection refused", what, %peer, reason = %why);
    let session = move |stream, peer| {
        let (router, tls) = (router.clone(), tls.clone());
        async move {
            connection(stream, peer, what, router, tls).await;
            Ok::<(), Infallible>(())
        }
    };
    officebox_sockets::tcp::serve(listener, limits, stop, "web", refused, session).await;
}

/// One admitted connection: the TLS handshake first, when the admin pages use HTTPS.
async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    what: &'static str,
    router: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    match tls {
        None => serve_http1(stream, peer, what, router).await,
        Some(tls) => {
            match tokio::time::timeout(Duration::from_secs(20), tls.accept(stream)).await {
                Ok(Ok(stream)) => serve_http1(stream, peer, what, router).await,
                Ok(Err(error)) => debug!(message = "web: TLS handshake failed", %peer, %error),
                Err(_) => debug!(message = "web: TLS handshake timed out", %peer),
            }
        }
    }
}

/// Serves one HTTP/1.1 connection (admin pages or sites) with `router`, under the same
/// rules for both: a request's headers must arrive within 20 s. Each request carries the
/// [`Peer`] it came from.
async fn serve_http1<S>(stream: S, peer: SocketAddr, what: &'static str, router: Router)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(Peer(peer));
        let router = router.clone();
        async move {
            let r = router.oneshot(req.map(axum::body::Body::new)).await;
            Ok::<_, Infallible>(r.unwrap_or_else(|never| match never {}))
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(20))
        .serve_connection(TokioIo::new(stream), svc);
    if let Err(error) = conn.await {
        debug!(message = "web: connection ended", what, %peer, %error);
    }
}
