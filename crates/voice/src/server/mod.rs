//! The SIP server: UDP and TCP on the SIP port, each request parsed, answered, and
//! retransmissions answered from a cache (RFC 3261 section 17.2: a server transaction
//! replays its last response).
//!
//! Responses go back where the request came from, with `received` and `rport` added to
//! the top Via (RFC 3581), so phones behind NAT hear them. Sources that keep failing
//! authentication (a password-guessing flood) are ignored for a while.
//!
//! - [`transport`]: the sockets: UDP datagrams, TCP streams, and how calls send.
//! - [`dispatch`]: one message in: to its call, from the replay cache, or by method.
//! - [`auth`]: digest challenges and their answers.
//! - [`register`]: the REGISTER handler.
//! - [`invite`]: a new call, and the table of live calls.
//! - [`outside`]: calls over the trunks, out (the dial plan) and in (DIDs).
//! - [`feature`]: feature codes (the night code).
//! - [`subscribe`]: SUBSCRIBE to a mailbox, and the NOTIFYs.
//! - [`persistence`]: registrations, live calls and the trunks' states in the state
//!   database.
//!
//! The SIP trunks' clients ([`crate::trunk`]) send from these sockets too; responses to
//! their REGISTERs are handed to them by Via branch.

mod auth;
mod devices;
mod dispatch;
mod fax;
mod feature;
mod forward;
mod invite;
mod outside;
mod park;
mod persistence;
mod pnp;
mod register;
mod site;
mod subscribe;
mod transport;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use officebox_config::Config;
use officebox_config::derive::bind_addresses;
use officebox_config::model::Service;
use officebox_secrets::login::Limiter;
use officebox_sockets::ConnLimits;
use officebox_store::{CallEvent, Db};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::digest::Authenticator;
use crate::mwi::Subscriptions;
use crate::registrar::Registrar;
use crate::rtp::Ports;
use crate::sip::{Message, Transport};
use tokio::net::UdpSocket;

use invite::Calls;
use transport::ServerWire;

/// How long a response is kept for retransmitted requests (64 * T1).
const REPLAY_FOR: Duration = Duration::from_secs(32);
/// Registrations are written to the state database this often.
const SAVE_EVERY: Duration = Duration::from_millis(200);

/// Responses by (branch and method, source), for retransmitted requests.
type Replay = HashMap<(String, SocketAddr), (Instant, Vec<u8>)>;

/// What the whole server shares.
struct State {
    registrar: Mutex<Registrar>,
    auth: Authenticator,
    replay: Mutex<Replay>,
    /// Failed digests per source (`officebox_secrets::login::PHONE`): past the limit,
    /// that source is ignored for a while.
    limiter: Arc<Limiter>,
    /// TCP connections per source address and in all.
    tcp: Arc<ConnLimits>,
    wire: Arc<ServerWire>,
    ports: Arc<Ports>,
    calls: Arc<Mutex<Calls>>,
    mwi: Mutex<Subscriptions>,
    /// Calls ringing or setting up now (see [`invite::MAX_RINGING`]).
    ringing: Arc<AtomicUsize>,
    /// The service's one handle on the state database: registrations, live calls, the
    /// voicemail index (used from blocking threads).
    db: Arc<Mutex<Db>>,
    /// The calls' log events, written to the state database in batches.
    call_log: mpsc::UnboundedSender<CallEvent>,
    /// The trunk clients' transactions, by branch: responses to the box's own REGISTERs.
    trunks: Arc<crate::trunk::Inbox>,
    /// Where each trunk's provider was found: its calls are let in.
    providers: Arc<crate::trunk::Providers>,
    /// Calls at once per trunk and per user's outside calls (the limits).
    slots: Arc<crate::call::Slots>,
    /// Each trunk's last digest challenge, answered up front by its next calls.
    nonces: Arc<crate::call::Nonces>,
    /// Outside calls each user made today: (the local midnight they count from, calls).
    outside_today: Mutex<HashMap<String, (i64, u32)>>,
    /// Mails to the administrators about limits hit and logins locked out.
    alerts: crate::alert::Alerts,
    /// The office hours forced open or closed by the night code.
    day_night: Mutex<crate::daynight::DayNight>,
    /// Each user's call forwarding and do-not-disturb ([`forward`]).
    forwarding: forward::Table,
    /// The provisioned phones' own secrets ([`devices`]).
    devices: devices::Table,
    /// The park places taken.
    parking: Arc<crate::call::park::Parking>,
    /// The conference rooms running.
    rooms: Arc<crate::conference::Rooms>,
    /// The box's own fax machines calling now (faxes from email), known by address.
    fax_dialers: Arc<crate::fax_out::Dialers>,
}

impl State {
    /// The links of a call ringing `login`'s phones (`None`: any office user's but
    /// `not`'s own), the longest ringing first.
    fn calls_ringing(
        &self,
        login: Option<&str>,
        not: &str,
    ) -> Option<tokio::sync::mpsc::Sender<crate::call::Link>> {
        let calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        calls
            .ringing_users
            .iter()
            .filter(|(_, user, ..)| match login {
                Some(l) => user == l,
                None => user != not,
            })
            .min_by_key(|(_, _, since, _)| *since)
            .map(|(.., links)| links.clone())
    }
}

/// One request being answered: what every handler needs.
struct Request<'a> {
    config: &'a Arc<Config>,
    state: &'a Arc<State>,
    msg: &'a Message,
    /// Where it came from, and how.
    source: SocketAddr,
    transport: Transport,
    /// Our To tag in the answer (the same for retransmissions of the request).
    tag: String,
}

/// Speaks the attendants' text greetings that are not spoken yet, in the background (a
/// caller reaching an attendant before it is done waits for its own copy).
fn prepare_greetings(config: &Config) {
    let attendants = config.phone.dial_plan.attendants.clone();
    if attendants.is_empty() {
        return;
    }
    let dir = config.data_dir.clone();
    tokio::task::spawn_blocking(move || crate::attendant::prepare(&dir, &attendants));
}

/// Where the SIP server listens for a config.
fn endpoints(config: &Config) -> Vec<SocketAddr> {
    bind_addresses(config, Service::Sip)
        .into_iter()
        .map(|ip| SocketAddr::new(ip, config.phone.sip_port))
        .collect()
}

/// Runs the SIP server until `shutdown`, or until a reload moves it (then it returns, and
/// the supervisor starts it again).
pub async fn serve(
    config_rx: watch::Receiver<Arc<Config>>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let config = Arc::clone(&config_rx.borrow());
    let (db, registrar, day_night) =
        persistence::open(&config.data_dir, config.phone.call_log_days).await?;
    let (log_tx, mut log_rx) = mpsc::unbounded_channel();
    let mut sockets = Vec::new();
    for addr in endpoints(&config) {
        let (udp, tcp) = transport::bind(addr, config.phone.dscp_sip).await?;
        sockets.push((Arc::new(udp), tcp, addr));
    }
    let Some((first, _, first_addr)) = sockets.first() else {
        return Err(io::Error::other("phone: no address to listen on"));
    };
    // Where the box's own fax machine calls (faxes from email): a loopback address
    // when the server listens on all.
    let fax_server = if first_addr.ip().is_unspecified() {
        SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), first_addr.port())
    } else {
        *first_addr
    };
    // Our address as phones see it: the listening one, or the LAN address for 0.0.0.0.
    let local = if first_addr.ip().is_unspecified() {
        SocketAddr::new(
            IpAddr::V4(config.network.lan.net.address),
            config.phone.sip_port,
        )
    } else {
        *first_addr
    };
    let db = Arc::new(Mutex::new(db));
    // Faxes the box was stopped in the middle of: what arrived goes to their mailboxes.
    let (data_dir, fax_db) = (config.data_dir.clone(), Arc::clone(&db));
    let _ = tokio::task::spawn_blocking(move || crate::fax::recover(&data_dir, &fax_db)).await;
    let state = Arc::new(State {
        db: Arc::clone(&db),
        registrar: Mutex::new(registrar),
        auth: Authenticator::new(&config.network.domain),
        replay: Mutex::default(),
        limiter: Limiter::new(officebox_secrets::login::PHONE),
        tcp: ConnLimits::new(officebox_sockets::limits::PER_ADDRESS, transport::MAX_TCP),
        wire: Arc::new(ServerWire::new(
            Arc::clone(first),
            local,
            first_addr.ip().is_unspecified(),
        )),
        ports: Ports::marked(config.phone.rtp_ports, config.phone.dscp_rtp),
        calls: Arc::default(),
        mwi: Mutex::default(),
        ringing: Arc::default(),
        call_log: log_tx,
        trunks: Arc::default(),
        providers: Arc::default(),
        slots: Arc::default(),
        nonces: Arc::default(),
        outside_today: Mutex::default(),
        alerts: crate::alert::Alerts::default(),
        day_night: Mutex::new(day_night),
        forwarding: Mutex::default(),
        devices: Mutex::default(),
        parking: Arc::default(),
        rooms: Arc::default(),
        fax_dialers: Arc::default(),
    });
    forward::reload(&state, &db).await;
    devices::reload(&state, &db).await;
    let udp_sockets: Vec<(SocketAddr, Arc<UdpSocket>)> = sockets
        .iter()
        .map(|(udp, _, addr)| (*addr, Arc::clone(udp)))
        .collect();
    let pnp = pnp::join(&config, &udp_sockets, &state, &config_rx);
    let (trunk_status, trunk_status_writer) = persistence::TrunkStatusDb::start(Arc::clone(&db));
    let trunk_ctx = crate::trunk::Context {
        wire: Arc::new(transport::TrunkSockets::new(
            udp_sockets,
            Arc::clone(&state),
            config_rx.clone(),
        )),
        inbox: Arc::clone(&state.trunks),
        status: trunk_status,
        providers: Arc::clone(&state.providers),
        dns: Arc::new(Mutex::new(officebox_config::derive::own_resolvers(&config))),
    };
    let trunks_stop = CancellationToken::new();
    let trunks = tokio::spawn(crate::trunk::run(
        config_rx.clone(),
        trunk_ctx,
        trunks_stop.clone(),
    ));
    let mut tasks = tokio::task::JoinSet::new();
    for (udp, tcp, addr) in sockets {
        info!(message = "phone: serving", %addr);
        tasks.spawn(transport::udp_loop(
            udp,
            config_rx.clone(),
            Arc::clone(&state),
        ));
        tasks.spawn(transport::tcp_loop(
            tcp,
            config_rx.clone(),
            Arc::clone(&state),
            shutdown.clone(),
        ));
    }
    prepare_greetings(&config);
    // Faxes from email: the box's fax machine calls this server from loopback.
    let fax_out = tokio::spawn(crate::fax_out::run(
        config_rx.clone(),
        crate::fax_out::Context {
            db: Arc::clone(&db),
            server: fax_server,
            dialers: Arc::clone(&state.fax_dialers),
        },
        shutdown.child_token(),
    ));
    let mut last_calls = Vec::new();
    let mut call_log = persistence::CallLog::default();
    let mut ticks = 0u64;
    let bound = endpoints(&config);
    let mut changes = config_rx.clone();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            changed = changes.changed() => {
                if changed.is_err() {
                    break;
                }
                let now = Arc::clone(&changes.borrow_and_update());
                prepare_greetings(&now);
                if endpoints(&now) != bound {
                    // Ending here has the supervisor start the service again, bound anew;
                    // registrations are saved below and loaded again.
                    info!("phone: listening addresses changed; restarting the phone service");
                    break;
                }
            }
            () = tokio::time::sleep(SAVE_EVERY) => {
                persistence::save(&state, &db).await;
                persistence::save_calls(&state, &db, &mut last_calls).await;
                let days = changes.borrow().phone.call_log_days;
                call_log.save(&db, &mut log_rx, days).await;
                ticks += 1;
                if ticks.is_multiple_of(5) {
                    subscribe::tick_mwi(&state, &db, &config.data_dir).await;
                    forward::reload(&state, &db).await;
                    devices::reload(&state, &db).await;
                }
            }
        }
    }
    fax_out.abort();
    // The trunks un-REGISTER first, while the sockets still hear the answers.
    trunks_stop.cancel();
    let _ = trunks.await;
    let _ = tokio::time::timeout(Duration::from_secs(1), trunk_status_writer).await;
    persistence::save(&state, &db).await;
    let days = changes.borrow().phone.call_log_days;
    call_log.save(&db, &mut log_rx, days).await;
    let _ = db
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .save_calls(&[]);
    tasks.shutdown().await;
    if let Some(pnp) = pnp {
        pnp.abort();
    }
    Ok(())
}
