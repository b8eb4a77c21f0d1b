//! The LAN resolver's way out: forwards questions to the configured upstream servers, with
//! failover, a cache, one upstream query for many identical questions, and the RFC 5452
//! defences (random IDs and source ports, 0x20 letter case, answers checked against the
//! question), which `officebox_dnswire::exchange` applies to every question asked.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use crate::cache::{Cache, Cached, UPSTREAM_TIMEOUT, key};
use crate::wire::Header;
use crate::wire::exchange::{Ask, ExchangeError, Question, exchange};

/// How long an upstream that failed is passed over before clients try it again.
const DOWN_FOR: Duration = Duration::from_secs(30);
/// How often a down upstream is probed in the background (no client waits for a probe).
const PROBE_EVERY: Duration = Duration::from_secs(2);

/// Why no answer could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    #[error("no upstream server is configured")]
    NoUpstream,
    #[error("every upstream server failed")]
    AllFailed,
}

/// The result handed to everyone who asked the same question.
pub type Outcome = Result<Arc<Cached>, ForwardError>;

/// Everyone waiting for one upstream question.
type Waiters = Vec<oneshot::Sender<Outcome>>;

#[derive(Debug, Clone)]
struct Upstream {
    addr: SocketAddr,
    down_until: Option<Instant>,
    last_probe: Option<Instant>,
}

/// The forwarder: shared by every listener.
#[derive(Debug)]
pub struct Forwarder {
    cache: Cache,
    upstreams: Mutex<Vec<Upstream>>,
    /// The other sites' zones (wire form) and their boxes, asked instead of the
    /// upstreams for names in them.
    sites: Mutex<Vec<(Vec<u8>, SocketAddr)>>,
    inflight: Mutex<HashMap<Box<[u8]>, Waiters>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Forwarder {
    pub fn new(cache_size: usize) -> Forwarder {
        Forwarder {
            cache: Cache::new(cache_size),
            upstreams: Mutex::new(Vec::new()),
            sites: Mutex::new(Vec::new()),
            inflight: Mutex::new(HashMap::new()),
        }
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Sets the upstream servers in order of preference. A change empties the cache.
    pub fn set_upstreams(&self, addrs: &[SocketAddr]) {
        let mut ups = lock(&self.upstreams);
        let same = ups.iter().map(|u| u.addr).eq(addrs.iter().copied());
        if !same {
            *ups = addrs
                .iter()
                .map(|&addr| Upstream {
                    addr,
                    down_until: None,
                    last_probe: None,
                })
                .collect();
            drop(ups);
            self.cache.clear();
        }
    }

    /// Sets the other sites' zones and their boxes. A change empties the cache.
    pub fn set_sites(&self, sites: Vec<(Vec<u8>, SocketAddr)>) {
        let mut now = lock(&self.sites);
        if *now != sites {
            *now = sites;
            drop(now);
            self.cache.clear();
        }
    }

    /// The box that answers for `name`, when it is in another site's zone.
    fn site_for(&self, name: &[u8]) -> Option<SocketAddr> {
        lock(&self.sites)
            .iter()
            .filter(|(zone, _)| crate::wire::is_subdomain(name, zone))
            .max_by_key(|(zone, _)| zone.len())
            .map(|(_, server)| *server)
    }

    /// The answer for a question: from the cache, or from an upstream server. Identical
    /// questions in flight share one upstream query.
    pub async fn resolve(self: &Arc<Self>, name: &[u8], qtype: u16, qclass: u16) -> Outcome {
        if let Some(hit) = self.cache.get(name, qtype, qclass, Instant::now()) {
            return Ok(hit);
        }
        let k = key(name, qtype, qclass);
        let (tx, rx) = oneshot::channel();
        let leader = {
            let mut inflight = lock(&self.inflight);
            match inflight.get_mut(&k) {
                Some(waiters) => {
                    waiters.push(tx);
                    false
                }
                None => {
                    inflight.insert(k.clone(), vec![tx]);
                    true
                }
            }
        };
        if leader {
            // Its own task: a client that goes away does not cancel the others' answer.
            let this = Arc::clone(self);
            let name = name.to_vec();
            tokio::spawn(async move {
                let outcome = this.ask_upstreams(&name, qtype, qclass).await;
                if let Ok(c) = &outcome {
                    this.cache.insert(k.clone(), Arc::clone(c));
                }
                let waiters = lock(&this.inflight).remove(&k).unwrap_or_default();
                for w in waiters {
                    let _ = w.send(outcome.clone());
                }
            });
        }
        rx.await.unwrap_or(Err(ForwardError::AllFailed))
    }

    /// Upstreams to try, healthy ones first, in configured order.
    fn order(&self, now: Instant) -> Vec<SocketAddr> {
        let ups = lock(&self.upstreams);
        let (up, down): (Vec<&Upstream>, Vec<&Upstream>) = ups
            .iter()
            .partition(|u| u.down_until.is_none_or(|t| t <= now));
        up.into_iter().chain(down).map(|u| u.addr).collect()
    }

    fn mark(&self, addr: SocketAddr, ok: bool) {
        let mut ups = lock(&self.upstreams);
        if let Some(u) = ups.iter_mut().find(|u| u.addr == addr) {
            match (ok, u.down_until.is_some()) {
                (true, true) => {
                    info!(message = "dns: upstream answers again", %addr);
                    u.down_until = None;
                }
                (false, false) => {
                    warn!(message = "dns: upstream failed; using the next one", %addr);
                    u.down_until = Some(Instant::now() + DOWN_FOR);
                }
                (false, true) => u.down_until = Some(Instant::now() + DOWN_FOR),
                (true, false) => {}
            }
        }
    }

    /// Down upstreams due for a background probe (a copy of a real question).
    fn due_probes(&self, now: Instant) -> Vec<SocketAddr> {
        let mut ups = lock(&self.upstreams);
        let mut due = Vec::new();
        for u in ups.iter_mut() {
            if u.down_until.is_some_and(|t| t > now)
                && u.last_probe.is_none_or(|t| now - t >= PROBE_EVERY)
            {
                u.last_probe = Some(now);
                due.push(u.addr);
            }
        }
        due
    }

    async fn ask_upstreams(self: &Arc<Self>, name: &[u8], qtype: u16, qclass: u16) -> Outcome {
        if let Some(site) = self.site_for(name) {
            // Another office's name: its box, through the tunnel, and nobody else.
            return match query(site, name, qtype, qclass).await {
                Ok(response) if usable(&response) => {
                    Cached::from_response(&response, Instant::now())
                        .map(Arc::new)
                        .map_err(|_| ForwardError::AllFailed)
                }
                Ok(_) => Err(ForwardError::AllFailed),
                Err(e) => {
                    debug!(message = "dns: a site's box did not answer", %site, error = %e);
                    Err(ForwardError::AllFailed)
                }
            };
        }
        let now = Instant::now();
        let order = self.order(now);
        if order.is_empty() {
            return Err(ForwardError::NoUpstream);
        }
        for addr in self.due_probes(now) {
            let this = Arc::clone(self);
            let name = name.to_vec();
            tokio::spawn(async move {
                let ok = matches!(query(addr, &name, qtype, qclass).await, Ok(r) if usable(&r));
                if ok {
                    this.mark(addr, true);
                }
            });
        }
        for addr in order {
            match query(addr, name, qtype, qclass).await {
                Ok(response) if usable(&response) => {
                    match Cached::from_response(&response, Instant::now()) {
                        Ok(c) => {
                            self.mark(addr, true);
                            return Ok(Arc::new(c));
                        }
                        // A bad answer about one name says nothing about the server's
                        // health: ask the next one, without passing this one over.
                        Err(e) => {
                            debug!(message = "dns: unusable upstream answer", %addr, error = %e);
                        }
                    }
                }
                Ok(response) => {
                    let rcode = Header::parse(&response).map(|h| h.rcode()).unwrap_or(2);
                    debug!(message = "dns: upstream refused or failed", %addr, rcode);
                }
                Err(e) => {
                    debug!(message = "dns: upstream did not answer", %addr, error = %e);
                    self.mark(addr, false);
                }
            }
        }
        Err(ForwardError::AllFailed)
    }
}

/// NOERROR and NXDOMAIN are answers; SERVFAIL, REFUSED and the rest mean "ask another".
fn usable(response: &[u8]) -> bool {
    Header::parse(response).is_ok_and(|h| matches!(h.rcode(), 0 | 3))
}

/// How the forwarder asks: with EDNS and 0x20 mixed case, UDP answers within
/// [`UPSTREAM_TIMEOUT`], a TCP retry within twice that.
const ASK: Ask = Ask {
    udp_timeout: UPSTREAM_TIMEOUT,
    tcp_timeout: UPSTREAM_TIMEOUT.saturating_mul(2),
    edns: true,
    mixed_case: true,
};

/// Asks one upstream server (see [`exchange`] for the checks on its answer).
async fn query(
    addr: SocketAddr,
    name: &[u8],
    qtype: u16,
    qclass: u16,
) -> Result<Vec<u8>, ExchangeError> {
    let question = Question {
        name,
        qtype,
        qclass,
    };
    exchange(addr, &question, &ASK).await
}
