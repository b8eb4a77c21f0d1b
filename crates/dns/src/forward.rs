//! The LAN resolver's way out: forwards questions to the configured upstream servers, with
//! failover, a cache, one upstream query for many identical questions, and the RFC 5452
//! defences (random IDs and source ports, 0x20 letter case, answers checked against the
//! question).

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use crate::cache::{Cache, Cached, UPSTREAM_TIMEOUT, key};
use crate::wire::{self, Builder, Header, RD, TC};

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

/// The question with its letters' case randomized (0x20, draft-vixie-dnsext-dns0x20).
fn mixed_case(name: &[u8]) -> Vec<u8> {
    let mut out = name.to_vec();
    let mut bits: u64 = rand::random();
    let mut at = 0;
    while let Some(&len) = out.get(at) {
        let len = usize::from(len);
        if len == 0 {
            break;
        }
        for b in out.iter_mut().skip(at + 1).take(len) {
            if b.is_ascii_alphabetic() {
                if bits & 1 == 1 {
                    b.make_ascii_uppercase();
                }
                bits = bits.rotate_right(1);
            }
        }
        at += 1 + len;
    }
    out
}

fn build_query(id: u16, name: &[u8], qtype: u16, qclass: u16) -> Vec<u8> {
    let mut b = Builder::with_question(name, qtype, qclass);
    b.buf.extend_from_slice(&wire::opt_record(0));
    Header {
        id,
        flags: RD,
        qdcount: 1,
        ancount: 0,
        nscount: 0,
        arcount: 1,
    }
    .write(&mut b.buf);
    b.buf
}

/// Whether `response` answers `query`: same ID, a response, and the very same question,
/// letter case included.
fn matches(query: &[u8], response: &[u8]) -> bool {
    let (Ok(q), Ok(r)) = (Header::parse(query), Header::parse(response)) else {
        return false;
    };
    if r.id != q.id || r.flags & wire::QR == 0 || r.qdcount != 1 {
        return false;
    }
    let Ok(qend) = wire::skip_name(query, wire::HEADER_LEN).map(|e| e + 4) else {
        return false;
    };
    response.get(wire::HEADER_LEN..qend) == query.get(wire::HEADER_LEN..qend)
}

/// Asks one upstream server, over UDP from a fresh random port, then over TCP if the answer
/// was truncated.
async fn query(addr: SocketAddr, name: &[u8], qtype: u16, qclass: u16) -> std::io::Result<Vec<u8>> {
    let timeout =
        |what: &str| std::io::Error::new(std::io::ErrorKind::TimedOut, format!("{what} timed out"));
    let id: u16 = rand::random();
    let q = build_query(id, &mixed_case(name), qtype, qclass);
    let local: SocketAddr = match addr {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await?;
    // Connected: the kernel drops datagrams from any other address or port.
    socket.connect(addr).await?;
    socket.send(&q).await?;
    let deadline = tokio::time::Instant::now() + UPSTREAM_TIMEOUT;
    let mut buf = vec![0u8; 4096];
    let response = loop {
        let len = tokio::time::timeout_at(deadline, socket.recv(&mut buf))
            .await
            .map_err(|_| timeout("udp query"))??;
        let r = &buf[..len];
        if matches(&q, r) {
            break r.to_vec();
        }
        debug!(message = "dns: dropped an upstream datagram that does not match the question", %addr);
    };
    let truncated = Header::parse(&response).is_ok_and(|h| h.flags & TC != 0);
    if !truncated {
        return Ok(response);
    }
    let tcp = async {
        let mut s = TcpStream::connect(addr).await?;
        let len = u16::try_from(q.len()).unwrap_or(u16::MAX);
        let mut framed = len.to_be_bytes().to_vec();
        framed.extend_from_slice(&q);
        s.write_all(&framed).await?;
        let len = s.read_u16().await?;
        let mut r = vec![0u8; usize::from(len)];
        s.read_exact(&mut r).await?;
        Ok::<_, std::io::Error>(r)
    };
    let r = tokio::time::timeout(UPSTREAM_TIMEOUT * 2, tcp)
        .await
        .map_err(|_| timeout("tcp query"))??;
    if matches(&q, &r) {
        Ok(r)
    } else {
        Err(std::io::Error::other(
            "tcp answer does not match the question",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{rtype, to_wire};

    #[test]
    fn mixed_case_keeps_the_name() {
        let name = to_wire("www.example-long-name.com");
        for _ in 0..20 {
            let m = mixed_case(&name);
            assert_eq!(m.len(), name.len());
            assert_eq!(m.to_ascii_lowercase(), name);
        }
        let varied = (0..20)
            .map(|_| mixed_case(&name))
            .collect::<std::collections::HashSet<_>>();
        assert!(varied.len() > 1, "case is randomized");
    }

    #[test]
    fn answers_must_match_id_and_exact_question() {
        let q = build_query(42, &mixed_case(&to_wire("www.example.com")), rtype::A, 1);
        let mut r = q.clone();
        r[2] |= 0x80;
        assert!(matches(&q, &r));
        let mut wrong_id = r.clone();
        wrong_id[1] ^= 1;
        assert!(!matches(&q, &wrong_id));
        let mut wrong_case = r.clone();
        wrong_case[13] ^= 0x20;
        assert!(
            !matches(&q, &wrong_case),
            "0x20: the letter case must come back unchanged"
        );
        assert!(!matches(&q, &q), "a query is not a response");
    }
}
