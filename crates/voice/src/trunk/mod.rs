//! SIP trunks: the office's lines to telephone providers (`[[phone.trunks]]`).
//!
//! A registration trunk is a client of the provider: officebox REGISTERs the account from
//! its own SIP socket (so the provider reaches the box where it listens), answers the
//! digest challenge with the trunk's password, refreshes at 85% of the time the provider
//! granted, and backs off after failures (30 s doubling to 10 minutes; refused
//! credentials are retried only every 10 minutes). An IP trunk registers nothing: the
//! provider knows the box by its address. Each trunk's state goes to the store's
//! `trunk_status` table, where `officebox phone trunks` and the admin pages read it.
//!
//! The server hands every response whose Via branch is one of ours to the [`Inbox`]
//! (the box's own transactions are matched by branch, RFC 3261 section 17.1.3).
//!
//! - [`run`] (here): follows the config: starts a client per enabled registration trunk,
//!   stops (un-REGISTERs) the ones a reload removed or changed, and all at shutdown.
//! - [`register`]: one trunk's client: REGISTER, challenge, refresh, retry, un-REGISTER.
//! - [`auth`]: the box answering a provider's digest challenge (SHA-256 or MD5).
//! - [`timing`]: when to refresh, how long to back off.

pub mod auth;
pub mod locate;
mod register;
pub mod timing;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use officebox_config::Config;
use officebox_config::model::{Trunk, TrunkKind};
use officebox_store::{TrunkState, TrunkStatus};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::sip::{Message, StartLine, Transport};

/// How long un-REGISTERing may take when a trunk stops (the supervisor gives every service
/// 4 s to end).
pub const UNREGISTER_WITHIN: Duration = Duration::from_secs(2);

/// How the trunk clients send: the SIP server's own sockets (a fake one in the tests).
pub trait TrunkWire: Send + Sync {
    /// The box's SIP address as `to` sees it (over `transport`): the source address of the
    /// route there, with the SIP port. Via and Contact name it.
    fn local_for(&self, to: SocketAddr, transport: Transport) -> io::Result<SocketAddr>;

    /// Sends `bytes` to `to`: by UDP from the SIP socket, or on a TCP (or TLS, checked as
    /// `tls` says) connection to it, opened first when there is none.
    fn send(
        &self,
        bytes: Vec<u8>,
        to: SocketAddr,
        transport: Transport,
        tls: Option<TlsPeer>,
    ) -> Pin<Box<dyn Future<Output = io::Result<()>> + Send + '_>>;
}

/// Who a TLS connection to a provider must reach: the name its certificate is checked
/// against (the trunk's host), and a CA file trusted besides the system's roots.
#[derive(Debug, Clone)]
pub struct TlsPeer {
    pub name: String,
    pub ca_file: Option<std::path::PathBuf>,
}

/// The TLS peer of trunk `t` (`None` unless it goes over TLS).
pub fn tls_peer(t: &Trunk) -> Option<TlsPeer> {
    (t.transport == officebox_config::model::TrunkTransport::Tls).then(|| {
        let target = t.outbound_proxy.as_deref().unwrap_or(&t.server);
        TlsPeer {
            name: split_host_port(target)
                .0
                .trim_matches(['[', ']'])
                .to_string(),
            ca_file: t.ca_file.clone(),
        }
    })
}

/// Where the trunks' states go (the state database; a list in the tests). Reports are
/// kept in order.
pub trait StatusSink: Send + Sync {
    fn report(&self, status: TrunkStatus);
    /// Forgets trunks other than `names`.
    fn retain(&self, names: Vec<String>);
}

/// The trunk clients' transactions waiting for responses, by Via branch.
#[derive(Debug, Default)]
pub struct Inbox {
    waiting: Mutex<HashMap<String, mpsc::UnboundedSender<Message>>>,
}

impl Inbox {
    /// Hands a response to the transaction it answers; `false` when it answers none of
    /// ours (or is not a response).
    pub fn deliver(&self, msg: &Message) -> bool {
        if !matches!(msg.start, StartLine::Response { .. }) {
            return false;
        }
        let branch = msg.branch();
        if branch.is_empty() {
            return false;
        }
        let waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        match waiting.get(branch) {
            Some(tx) => {
                let _ = tx.send(msg.clone());
                true
            }
            None => false,
        }
    }

    /// Starts waiting for responses with `branch`.
    fn expect(self: &Arc<Self>, branch: &str) -> Expected {
        let (tx, rx) = mpsc::unbounded_channel();
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(branch.to_string(), tx);
        Expected {
            inbox: Arc::clone(self),
            branch: branch.to_string(),
            rx,
        }
    }

    /// How many transactions wait (for the tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// Responses to one transaction; it stops waiting when this drops.
struct Expected {
    inbox: Arc<Inbox>,
    branch: String,
    rx: mpsc::UnboundedReceiver<Message>,
}

impl Drop for Expected {
    fn drop(&mut self) {
        self.inbox
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.branch);
    }
}

/// What the trunk clients share.
#[derive(Clone)]
pub struct Context {
    pub wire: Arc<dyn TrunkWire>,
    pub inbox: Arc<Inbox>,
    pub status: Arc<dyn StatusSink>,
    /// Where each trunk's provider was last found (the server takes its calls).
    pub providers: Arc<Providers>,
    /// The DNS servers a provider's domain is asked of (the config's, kept current).
    pub dns: Arc<Mutex<Vec<SocketAddr>>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("inbox", &self.inbox)
            .finish()
    }
}

/// Why a trunk's client stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// A reload removed or changed the trunk.
    Reload,
    /// officebox (or the phone service) stops.
    Shutdown,
}

/// One running client.
struct Running {
    trunk: Trunk,
    stop: watch::Sender<Option<Ending>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Tells the client to stop (it un-REGISTERs, within [`UNREGISTER_WITHIN`]).
    fn stop(&self, why: Ending) {
        let _ = self.stop.send(Some(why));
    }
}

/// Runs the trunks of each config until `stop`; then un-REGISTERs them all.
pub async fn run(
    mut config_rx: watch::Receiver<Arc<Config>>,
    ctx: Context,
    stop: CancellationToken,
) {
    let mut running: HashMap<String, Running> = HashMap::new();
    loop {
        let config = Arc::clone(&config_rx.borrow_and_update());
        apply(&config, &ctx, &mut running).await;
        tokio::select! {
            () = stop.cancelled() => break,
            changed = config_rx.changed() => {
                if changed.is_err() {
                    break;
                }
            }
        }
    }
    let all: Vec<Running> = running.into_values().collect();
    for r in &all {
        r.stop(Ending::Shutdown);
    }
    for r in all {
        // Each client bounds its own un-REGISTER; this only guards against one that hangs.
        let mut task = r.task;
        if tokio::time::timeout(UNREGISTER_WITHIN + Duration::from_millis(500), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

/// Whether `t` is a trunk that registers.
fn registers(t: &Trunk) -> bool {
    t.enabled && t.kind == TrunkKind::Register
}

/// Brings the running clients in line with `config`.
async fn apply(config: &Config, ctx: &Context, running: &mut HashMap<String, Running>) {
    *ctx.dns.lock().unwrap_or_else(PoisonError::into_inner) =
        officebox_config::derive::own_resolvers(config);
    let trunks = &config.phone.trunks;
    // Stop what a reload removed or changed (all at once), and wait for their un-REGISTER:
    // a changed trunk registers again only after, so the two cannot cross.
    let gone: Vec<String> = running
        .iter()
        .filter(|(name, r)| {
            !trunks
                .iter()
                .any(|t| &t.name == *name && registers(t) && *t == r.trunk)
        })
        .map(|(name, _)| name.clone())
        .collect();
    let stopping: Vec<Running> = gone.iter().filter_map(|n| running.remove(n)).collect();
    for r in &stopping {
        info!(message = "phone: trunk stops (changed or removed)", trunk = %r.trunk.name);
        r.stop(Ending::Reload);
    }
    for r in stopping {
        let mut task = r.task;
        if tokio::time::timeout(UNREGISTER_WITHIN + Duration::from_millis(500), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
    for t in trunks {
        if !t.enabled {
            ctx.status
                .report(status(t, TrunkState::Disabled, String::new()));
        } else if t.kind == TrunkKind::Ip {
            let from: Vec<String> = t.addresses.iter().map(ToString::to_string).collect();
            ctx.status.report(status(
                t,
                TrunkState::Ip,
                format!("accepts calls from: {}", from.join(", ")),
            ));
        } else if !running.contains_key(&t.name) {
            let (stop, stop_rx) = watch::channel(None);
            let task = tokio::spawn(register::run(t.clone(), ctx.clone(), stop_rx));
            running.insert(
                t.name.clone(),
                Running {
                    trunk: t.clone(),
                    stop,
                    task,
                },
            );
        }
    }
    ctx.status
        .retain(trunks.iter().map(|t| t.name.clone()).collect());
}

/// A trunk's row with nothing but its state and detail.
fn status(t: &Trunk, state: TrunkState, detail: String) -> TrunkStatus {
    TrunkStatus {
        name: t.name.clone(),
        kind: t.kind.name().to_string(),
        server: t.server.clone(),
        state,
        registered_until: None,
        last_code: None,
        last_reason: None,
        next_try_at: None,
        detail,
        updated_at: i64::try_from(crate::now_unix()).unwrap_or(i64::MAX),
    }
}

/// `host` and the port of `host:port`, `[v6]:port`, `[v6]`, `host`.
/// The addresses each trunk's provider was last found at, by trunk name: a call from one
/// of them is a call from that trunk (see [`trunk_of`]).
#[derive(Debug, Default)]
pub struct Providers {
    found: Mutex<HashMap<String, IpAddr>>,
}

impl Providers {
    /// Notes that trunk `name`'s provider is at `ip`.
    pub fn found(&self, name: &str, ip: IpAddr) {
        self.found
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_string(), ip);
    }

    fn get(&self, name: &str) -> Option<IpAddr> {
        self.found
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .copied()
    }
}

/// The enabled trunk a request from `ip` comes from: one whose listed addresses hold
/// it, or whose server or outbound proxy is at it (as given, or as last found).
pub fn trunk_of<'c>(config: &'c Config, providers: &Providers, ip: IpAddr) -> Option<&'c Trunk> {
    let at = |host_port: &str| split_host_port(host_port).0.parse::<IpAddr>().ok() == Some(ip);
    config.phone.trunks.iter().filter(|t| t.enabled).find(|t| {
        t.addresses.iter().any(|net| net.contains(ip))
            || at(&t.server)
            || t.outbound_proxy.as_deref().is_some_and(at)
            || providers.get(&t.name) == Some(ip)
    })
}

/// The provider's domain: the trunk's server without its port (an IPv6 address in
/// brackets), for URIs.
pub fn domain(trunk: &Trunk) -> String {
    let (host, _) = split_host_port(&trunk.server);
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// Where trunk `t`'s requests go: its outbound proxy if it has one, else its server;
/// a domain without a port by its SRV records (RFC 3263), each asked of `dns` (the box's
/// own DNS, `derive::own_resolvers`).
pub async fn address(trunk: &Trunk, dns: &[SocketAddr]) -> Result<SocketAddr, String> {
    let target = trunk.outbound_proxy.as_deref().unwrap_or(&trunk.server);
    let (host, port) = split_host_port(target);
    locate::locate(host, port, transport(trunk), dns).await
}

/// Where trunk `t`'s provider is reached, without looking anything up: its address as
/// given (an IP address), or as last found (registration looks it up).
pub fn address_now(t: &Trunk, providers: &Providers) -> Option<SocketAddr> {
    let target = t.outbound_proxy.as_deref().unwrap_or(&t.server);
    let (host, port) = split_host_port(target);
    let default_port = if t.transport == officebox_config::model::TrunkTransport::Tls {
        5061
    } else {
        5060
    };
    let port = port.unwrap_or(default_port);
    host.parse::<IpAddr>()
        .ok()
        .or_else(|| providers.get(&t.name))
        .map(|ip| SocketAddr::new(ip, port))
}

/// The transport a trunk's requests go by.
pub fn transport(trunk: &Trunk) -> Transport {
    match trunk.transport {
        officebox_config::model::TrunkTransport::Udp => Transport::Udp,
        officebox_config::model::TrunkTransport::Tcp => Transport::Tcp,
        officebox_config::model::TrunkTransport::Tls => Transport::Tls,
    }
}

fn split_host_port(s: &str) -> (&str, Option<u16>) {
    if s.starts_with('[') {
        return match s.rsplit_once("]:") {
            Some((host, port)) => (host.get(1..).unwrap_or(host), port.parse().ok()),
            None => (s.trim_start_matches('[').trim_end_matches(']'), None),
        };
    }
    match s.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().ok()),
        None => (s, None),
    }
}
