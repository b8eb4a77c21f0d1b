//! The DNS service's life: listeners bound where the config says, and a maintenance loop
//! that rebuilds the zone when the config, the DHCP leases or the WAN address change, keeps
//! the serial growing (persisted in the state database) and NOTIFYs the secondaries.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use officebox_config::Config;
use officebox_config::derive::{bind_addresses, site_zones, wan_address};
use officebox_config::model::Service;
use officebox_secrets::dkim;
use officebox_store::{Db, Lease, ServedRecord};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::answer::{self, View};
use crate::forward::Forwarder;
use crate::wire::{self, AA, Builder, CLASS_IN, Header, OPCODE_NOTIFY, Rcode, Request, rtype};
use crate::zone::{Entry, Zone};

/// Questions that may wait for an upstream answer at once (UDP; TCP is bounded by its
/// connection limit).
const UPSTREAM_SLOTS: usize = 512;

/// How often the lease table is checked for changes.
const LEASE_POLL: Duration = Duration::from_secs(1);

/// The state every listener reads: swapped whole on every change.
#[derive(Debug)]
pub struct Shared {
    view: RwLock<Arc<View>>,
    /// Bumped on every swap, so a listener thread can keep its own copy of the view and
    /// check with one read-only load whether it is still current.
    generation: AtomicU64,
    forwarder: Arc<Forwarder>,
    /// Bounds the questions waiting for an upstream answer.
    upstream_slots: Arc<tokio::sync::Semaphore>,
}

impl Shared {
    pub fn view(&self) -> Arc<View> {
        Arc::clone(&self.view.read().unwrap_or_else(PoisonError::into_inner))
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn forwarder(&self) -> &Arc<Forwarder> {
        &self.forwarder
    }

    pub fn upstream_slots(&self) -> &Arc<tokio::sync::Semaphore> {
        &self.upstream_slots
    }

    fn set_view(&self, view: View) {
        *self.view.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(view);
        self.generation.fetch_add(1, Ordering::Release);
    }
}

use officebox_store::unix_now as now_unix;

/// What the zone is built from, besides the config.
struct Inputs {
    leases: Vec<Lease>,
    wan: Option<Ipv4Addr>,
    /// The DKIM keys to publish: (selector, TXT record).
    dkim: Vec<(String, String)>,
    /// When the first retired DKIM key leaves the zone.
    dkim_gone_at: Option<i64>,
}

impl Inputs {
    /// When the zone changes by itself next: the first of the published leases runs
    /// out, or a retired DKIM key is published no longer.
    fn next_expiry(&self) -> Option<i64> {
        self.leases
            .iter()
            .map(|l| l.expires_at)
            .chain(self.dkim_gone_at)
            .min()
    }
}

/// The state database, touched only from blocking threads.
struct State {
    db: Mutex<Db>,
}

impl State {
    fn open(path: &Path) -> io::Result<State> {
        let db = Db::open(path).map_err(|e| io::Error::other(format!("dns: {e}")))?;
        Ok(State { db: Mutex::new(db) })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&Db) -> Result<T, officebox_store::StoreError>,
    ) -> io::Result<T> {
        let db = self.db.lock().unwrap_or_else(PoisonError::into_inner);
        f(&db).map_err(|e| io::Error::other(format!("dns: {e}")))
    }

    fn inputs(&self, config: &Config) -> io::Result<(Inputs, i64)> {
        self.with(|db| {
            let version = db.data_version()?;
            let leases = db.active_named_leases(now_unix())?;
            // A WAN address leased by the WAN DHCP client is kept in the state database.
            let wan = wan_address(config, db.wan_address().ok().flatten());
            let now = now_unix();
            let keys = db.dkim_keys()?;
            let keys: Vec<_> = keys.iter().filter(|k| dkim::published(k, now)).collect();
            let dkim = keys
                .iter()
                .map(|k| (k.selector.clone(), dkim::txt_record(k)))
                .collect();
            let dkim_gone_at = keys
                .iter()
                .filter_map(|k| k.retired)
                .map(|r| r + dkim::KEEP_PUBLISHED)
                .min();
            let inputs = Inputs {
                leases,
                wan,
                dkim,
                dkim_gone_at,
            };
            Ok((inputs, version))
        })
    }

    /// Keeps the zone's records in the state database (`Db::set_served_zone`) for the
    /// admin pages, which show the zone as it is served.
    fn publish(&self, zone: &Zone) -> io::Result<()> {
        let records: Vec<ServedRecord> = zone
            .entries()
            .iter()
            .map(|e| ServedRecord {
                source: e.source.name().to_string(),
                name: e.name.clone(),
                ttl: e.ttl,
                rtype: e.rtype.to_string(),
                value: e.value.clone(),
            })
            .collect();
        self.with(|db| db.set_served_zone(&records).map(drop))
    }

    /// The serial for a zone with `fingerprint`: unchanged when the content is, otherwise
    /// larger than any before (and at least the current time, the usual convention).
    fn serial_for(&self, fingerprint: u64) -> io::Result<u32> {
        self.with(|db| {
            let stored: Option<u32> = db.meta_get("dns.serial")?.and_then(|s| s.parse().ok());
            let stored_fp = db.meta_get("dns.fingerprint")?;
            if let (Some(serial), Some(fp)) = (stored, stored_fp)
                && fp == fingerprint.to_string()
            {
                return Ok(serial);
            }
            let now = u32::try_from(now_unix()).unwrap_or(u32::MAX);
            let serial = stored.map_or(now, |s| s.wrapping_add(1).max(now));
            db.meta_set("dns.serial", &serial.to_string())?;
            db.meta_set("dns.fingerprint", &fingerprint.to_string())?;
            Ok(serial)
        })
    }
}

/// Builds the zone with the right serial.
fn build(
    state: &State,
    config: &Config,
    inputs: &Inputs,
    previous: Option<&Zone>,
) -> io::Result<Zone> {
    let draft = Zone::build(
        config,
        inputs.wan,
        &inputs.leases,
        &inputs.dkim,
        0,
        previous,
    );
    let serial = state.serial_for(draft.fingerprint())?;
    let zone = Zone::build(
        config,
        inputs.wan,
        &inputs.leases,
        &inputs.dkim,
        serial,
        previous,
    );
    state.publish(&zone)?;
    Ok(zone)
}

fn view(config: &Config, zone: Zone) -> View {
    View {
        zone,
        network: config.network.clone(),
        use_upstream: config.dns.use_upstream,
        secondaries: config.dns.secondaries.iter().map(SocketAddr::ip).collect(),
        sites: site_zones(config)
            .into_iter()
            .map(|(zone, _)| crate::wire::to_wire(&zone))
            .collect(),
    }
}

/// The other sites' zones in wire form, and their boxes (for the forwarder).
fn sites(config: &Config) -> Vec<(Vec<u8>, SocketAddr)> {
    site_zones(config)
        .into_iter()
        .map(|(zone, server)| (crate::wire::to_wire(&zone), server))
        .collect()
}

fn upstreams(config: &Config) -> Vec<SocketAddr> {
    officebox_config::derive::upstream_resolvers(config)
}

fn endpoints(config: &Config) -> Vec<SocketAddr> {
    bind_addresses(config, Service::Dns)
        .into_iter()
        .map(|ip| SocketAddr::new(ip, config.dns.port))
        .collect()
}

fn db_path(config: &Config) -> PathBuf {
    officebox_store::state_db(&config.data_dir)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(io::Error::other)?
}

/// Runs the DNS service until `shutdown` is cancelled.
pub async fn serve(
    mut config_rx: watch::Receiver<Arc<Config>>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let mut config = Arc::clone(&config_rx.borrow_and_update());
    let path = db_path(&config);
    let state = Arc::new(blocking(move || State::open(&path)).await?);
    let (inputs, mut version) = {
        let (s, c) = (Arc::clone(&state), Arc::clone(&config));
        blocking(move || s.inputs(&c)).await?
    };
    let mut next_expiry = inputs.next_expiry();
    let zone = {
        let (s, c) = (Arc::clone(&state), Arc::clone(&config));
        blocking(move || build(&s, &c, &inputs, None)).await?
    };
    info!(message = "dns: zone ready", zone = %config.network.domain, serial = zone.serial, records = zone.entries().len());
    let forwarder = Arc::new(Forwarder::new(config.dns.cache_size));
    forwarder.set_upstreams(&upstreams(&config));
    forwarder.set_sites(sites(&config));
    let shared = Arc::new(Shared {
        view: RwLock::new(Arc::new(view(&config, zone))),
        generation: AtomicU64::new(0),
        forwarder,
        upstream_slots: Arc::new(tokio::sync::Semaphore::new(UPSTREAM_SLOTS)),
    });

    let rt = tokio::runtime::Handle::current();
    loop {
        let addrs = endpoints(&config);
        let udp = crate::udp::UdpListeners::start(&addrs, &shared, &rt).await?;
        let tcp_stop = shutdown.child_token();
        let mut tcp = tokio::task::JoinSet::new();
        for l in crate::tcp::bind(&addrs).await? {
            tcp.spawn(crate::tcp::serve(l, Arc::clone(&shared), tcp_stop.clone()));
        }
        for addr in &addrs {
            info!(message = "dns: serving", %addr);
        }
        let mut poll = tokio::time::interval(LEASE_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let rebind = loop {
            tokio::select! {
                () = shutdown.cancelled() => break false,
                changed = config_rx.changed() => {
                    if changed.is_err() {
                        break false;
                    }
                    config = Arc::clone(&config_rx.borrow_and_update());
                    shared.forwarder.set_upstreams(&upstreams(&config));
                    shared.forwarder.set_sites(sites(&config));
                    shared.forwarder.cache().set_capacity(config.dns.cache_size);
                    match refresh(&state, &shared, &config).await {
                        Ok(t) => next_expiry = t,
                        Err(error) => warn!(message = "dns: zone not rebuilt", %error),
                    }
                    if endpoints(&config) != addrs {
                        info!("dns: listening addresses changed, rebinding");
                        break true;
                    }
                }
                _ = poll.tick() => {
                    // New, renewed or released leases change the database; expired ones
                    // change the zone without a write, at their expiry time.
                    let s = Arc::clone(&state);
                    match blocking(move || s.with(|db| db.data_version())).await {
                        Ok(v) if v != version || next_expiry.is_some_and(|t| now_unix() >= t) => {
                            version = v;
                            match refresh(&state, &shared, &config).await {
                                Ok(t) => next_expiry = t,
                                Err(error) => warn!(message = "dns: zone not rebuilt", %error),
                            }
                        }
                        Ok(_) => {}
                        Err(error) => warn!(message = "dns: cannot read the state database", %error),
                    }
                }
            }
        };
        tcp_stop.cancel();
        // Everything bound is closed before binding anew. The UDP threads stop on a
        // blocking thread, so the runtime keeps running meanwhile.
        while tcp.join_next().await.is_some() {}
        let _ = tokio::task::spawn_blocking(move || drop(udp)).await;
        if !rebind {
            return Ok(());
        }
    }
}

/// Rebuilds the zone; on a new serial, tells the secondaries. Returns when the next DHCP
/// name expires.
async fn refresh(
    state: &Arc<State>,
    shared: &Arc<Shared>,
    config: &Arc<Config>,
) -> io::Result<Option<i64>> {
    let previous = shared.view();
    let old_serial = previous.zone.serial;
    let (s, c) = (Arc::clone(state), Arc::clone(config));
    let (zone, next_expiry) = blocking(move || {
        let (inputs, _) = s.inputs(&c)?;
        Ok((
            build(&s, &c, &inputs, Some(&previous.zone))?,
            inputs.next_expiry(),
        ))
    })
    .await?;
    let new_serial = zone.serial;
    let apexes = zone.apexes_wire();
    shared.set_view(view(config, zone));
    if new_serial != old_serial {
        info!(message = "dns: zone changed", serial = new_serial);
        for &secondary in &config.dns.secondaries {
            for apex in &apexes {
                tokio::spawn(notify(secondary, apex.clone()));
            }
        }
    }
    Ok(next_expiry)
}

/// Sends a NOTIFY (RFC 1996) for the zone at `apex` to `secondary`, retrying a few times
/// until it answers.
async fn notify(secondary: SocketAddr, apex: Vec<u8>) {
    let id: u16 = rand::random();
    let mut b = Builder::with_question(&apex, rtype::SOA, CLASS_IN);
    Header {
        id,
        flags: AA | (u16::from(OPCODE_NOTIFY) << 11),
        qdcount: 1,
        ancount: 0,
        nscount: 0,
        arcount: 0,
    }
    .write(&mut b.buf);
    let local: SocketAddr = if secondary.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let Ok(socket) = UdpSocket::bind(local).await else {
        return;
    };
    if socket.connect(secondary).await.is_err() {
        return;
    }
    let mut buf = [0u8; 512];
    for attempt in 0..5u32 {
        if socket.send(&b.buf).await.is_err() {
            return;
        }
        let wait = Duration::from_secs(1 << attempt.min(3));
        if let Ok(Ok(len)) = tokio::time::timeout(wait, socket.recv(&mut buf)).await
            && let Some(answer) = buf.get(..len)
            && Header::parse(answer).is_ok_and(|h| h.id == id && h.flags & wire::QR != 0)
        {
            debug!(message = "dns: secondary acknowledged NOTIFY", %secondary, zone = %wire::to_text(&apex));
            return;
        }
    }
    warn!(message = "dns: secondary did not acknowledge NOTIFY", %secondary, zone = %wire::to_text(&apex));
}

/// The answers to a zone transfer request: the records, or REFUSED for a client that is not
/// one of the configured secondaries. IXFR is answered with the whole zone in AXFR form,
/// which RFC 1995 (section 4) allows a server without incremental transfers; secondaries
/// (BIND, Knot, NSD) ask IXFR first on every refresh once they hold the zone.
pub(crate) fn transfer(view: &View, req: &Request, packet: &[u8], client: IpAddr) -> Vec<Vec<u8>> {
    let allowed = view.secondaries.contains(&client);
    let parts = if allowed && matches!(req.qtype, rtype::AXFR | rtype::IXFR) {
        view.zone.transfer(req.qname.as_bytes())
    } else {
        None
    };
    match parts {
        Some(parts) => parts
            .iter()
            .map(|a| answer::transfer_part(req, packet, a))
            .collect(),
        None => {
            info!(message = "dns: zone transfer refused", %client, zone = %wire::to_text(req.qname.as_bytes()));
            vec![answer::refusal(
                req,
                packet,
                if allowed {
                    Rcode::NotAuth
                } else {
                    Rcode::Refused
                },
            )]
        }
    }
}

/// The zone as served, for `officebox dns names`: built from the config file and the state
/// database (without a running officebox).
pub fn names(config: &Config) -> io::Result<(u32, Vec<Entry>)> {
    let state = State::open(&db_path(config))?;
    let (inputs, _) = state.inputs(config)?;
    let zone = build(&state, config, &inputs, None)?;
    Ok((zone.serial, zone.entries().to_vec()))
}
