//! The resolver's cache: upstream answers kept in wire form, served by patching the ID and
//! the TTLs (RFC 1035 section 7.4; negative answers per RFC 2308).
//!
//! An entry keeps the upstream response's sections after the question. Compression pointers
//! in it are absolute offsets, and stay right because the client's question has the same
//! length as the one we asked (the same name, maybe in other letter case).

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use foldhash::fast::RandomState;

use crate::wire::{self, Header, RecordRef, rtype};

/// Longest time an answer is kept, whatever its TTL says.
pub const MAX_TTL: u32 = 86_400;
/// Longest time a negative answer is kept (RFC 2308 suggests 1-3 hours).
pub const MAX_NEGATIVE_TTL: u32 = 3_600;

/// What is cached: the name in lowercase wire form, then type and class (big-endian).
pub type Key = Box<[u8]>;

/// The key of a question.
pub fn key(name: &[u8], qtype: u16, qclass: u16) -> Key {
    let mut k = Vec::with_capacity(name.len() + 4);
    k.extend_from_slice(name);
    k.extend_from_slice(&qtype.to_be_bytes());
    k.extend_from_slice(&qclass.to_be_bytes());
    k.into()
}

/// One upstream answer, ready to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    /// NOERROR or NXDOMAIN (SERVFAIL and REFUSED are never cached).
    pub rcode: u8,
    /// Answer, authority and additional counts (the upstream's OPT removed).
    pub counts: [u16; 3],
    /// The sections after the question.
    pub body: Box<[u8]>,
    /// Offsets of the TTL fields in `body`.
    pub ttl_offsets: Box<[u32]>,
    /// How long the answer may be kept.
    pub ttl: u32,
    pub stored: Instant,
}

/// Why an upstream response is not an answer we can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    #[error("malformed: {0}")]
    Malformed(#[from] wire::WireError),
    #[error("the upstream OPT record is not the last record")]
    OptNotLast,
    #[error("the upstream OPT record is not in the additional section")]
    OptNotAdditional,
}

impl Cached {
    /// Turns an upstream response into an entry; `ttl` is 0 when it must not be kept.
    pub fn from_response(p: &[u8], now: Instant) -> Result<Cached, Unusable> {
        let (h, question_end, records) = wire::records(p)?;
        let rcode = h.rcode();
        let answers = usize::from(h.ancount);
        let authority = usize::from(h.nscount);
        let opt_at = records.iter().position(|r| r.rtype == rtype::OPT);
        let (kept, end) = match opt_at {
            Some(i) if i + 1 != records.len() => return Err(Unusable::OptNotLast),
            // An OPT counted as an answer or authority record would leave the counts (and
            // the sections sliced by them below) one record short.
            Some(i) if i < answers + authority => return Err(Unusable::OptNotAdditional),
            // The OPT record is the last one (checked above): kept are the others.
            Some(_) => match records.split_last() {
                Some((opt, others)) => (others, opt.start),
                None => (records.as_slice(), p.len()),
            },
            None => (records.as_slice(), p.len()),
        };
        let body: Box<[u8]> = p
            .get(question_end..end)
            .ok_or(wire::WireError::Truncated)?
            .into();
        let ttl_offsets = kept
            .iter()
            .map(|r| (r.ttl_offset() - question_end) as u32)
            .collect();
        let ttl = match (rcode, answers) {
            (0, n) if n > 0 => kept
                .iter()
                .take(n)
                .map(|r| r.ttl)
                .min()
                .unwrap_or(0)
                .min(MAX_TTL),
            (0 | 3, _) => negative_ttl(p, kept.iter().skip(answers).take(authority)),
            _ => 0,
        };
        Ok(Cached {
            rcode,
            counts: [
                h.ancount,
                h.nscount,
                h.arcount - u16::from(opt_at.is_some()),
            ],
            body,
            ttl_offsets,
            ttl,
            stored: now,
        })
    }

    /// Seconds left, or `None` when expired.
    pub fn remaining(&self, now: Instant) -> Option<u32> {
        let age = now.saturating_duration_since(self.stored).as_secs();
        let age = u32::try_from(age).unwrap_or(u32::MAX);
        (age < self.ttl).then(|| self.ttl - age)
    }

    /// Appends the body to `out` (whose length is where the body starts) with every TTL
    /// lowered by the time the entry has been kept.
    pub fn write_body(&self, out: &mut Vec<u8>, now: Instant) {
        let base = out.len();
        out.extend_from_slice(&self.body);
        let age =
            u32::try_from(now.saturating_duration_since(self.stored).as_secs()).unwrap_or(u32::MAX);
        for &off in self.ttl_offsets.iter() {
            let at = base + off as usize;
            if let Ok(ttl) = wire::u32_at(out, at)
                && let Some(field) = out.get_mut(at..at + 4)
            {
                field.copy_from_slice(&ttl.saturating_sub(age).to_be_bytes());
            }
        }
    }
}

/// RFC 2308 section 5: the negative TTL is the SOA's TTL capped by its MINIMUM field.
fn negative_ttl<'a>(p: &[u8], mut authority: impl Iterator<Item = &'a RecordRef>) -> u32 {
    authority
        .find(|r| r.rtype == rtype::SOA)
        .and_then(|soa| {
            let rd = p.get(soa.rdata.clone())?;
            let minimum = wire::u32_at(rd, rd.len().checked_sub(4)?).ok()?;
            Some(soa.ttl.min(minimum).min(MAX_NEGATIVE_TTL))
        })
        .unwrap_or(0)
}

struct Shard {
    map: HashMap<Key, Arc<Cached>, RandomState>,
    /// Insertion order, for evicting the oldest when full.
    order: VecDeque<Key>,
}

/// A bounded cache, in shards so lookups from several threads rarely wait on each other.
pub struct Cache {
    shards: Box<[Mutex<Shard>]>,
    /// Changed by a reload (`dns.cache_size`); a smaller size takes effect as entries come.
    capacity: AtomicUsize,
    /// Entries in all shards.
    count: AtomicUsize,
    /// Seeded per process: which shard a name lands in is not predictable from outside.
    hasher: RandomState,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("capacity", &self.capacity.load(Ordering::Relaxed))
            .finish()
    }
}

const SHARDS: usize = 16;

impl Cache {
    /// A cache for about `capacity` answers (0 turns caching off).
    pub fn new(capacity: usize) -> Cache {
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    map: HashMap::default(),
                    order: VecDeque::new(),
                })
            })
            .collect();
        Cache {
            shards,
            capacity: AtomicUsize::new(capacity),
            count: AtomicUsize::new(0),
            hasher: RandomState::default(),
        }
    }

    fn shard_index(&self, key: &[u8]) -> usize {
        (self.hasher.hash_one(key) as usize) % SHARDS
    }

    /// Every shard once, starting with the one at `first` and wrapping around.
    fn shards_from(&self, first: usize) -> impl Iterator<Item = &Mutex<Shard>> {
        self.shards
            .iter()
            .cycle()
            .skip(first)
            .take(self.shards.len())
    }

    fn shard(&self, key: &[u8]) -> Option<&Mutex<Shard>> {
        self.shards.get(self.shard_index(key))
    }

    /// A live entry for the question, if any.
    pub fn get(&self, name: &[u8], qtype: u16, qclass: u16, now: Instant) -> Option<Arc<Cached>> {
        self.with_entry(name, qtype, qclass, now, Arc::clone)
    }

    /// Calls `f` on the live entry for the question, if any, under the shard's lock: no
    /// reference count is touched on the hot path for cached answers.
    pub fn with<T>(
        &self,
        name: &[u8],
        qtype: u16,
        qclass: u16,
        now: Instant,
        f: impl FnOnce(&Cached) -> T,
    ) -> Option<T> {
        self.with_entry(name, qtype, qclass, now, |c| f(c))
    }

    fn with_entry<T>(
        &self,
        name: &[u8],
        qtype: u16,
        qclass: u16,
        now: Instant,
        f: impl FnOnce(&Arc<Cached>) -> T,
    ) -> Option<T> {
        // The key on the stack: no allocation on the hot path.
        let mut buf = [0u8; wire::MAX_NAME + 4];
        let (name_part, rest) = buf.split_at_mut_checked(name.len())?;
        name_part.copy_from_slice(name);
        let ([t0, t1], [c0, c1]) = (qtype.to_be_bytes(), qclass.to_be_bytes());
        rest.get_mut(..4)?.copy_from_slice(&[t0, t1, c0, c1]);
        let key = buf.get(..name.len() + 4)?;
        let shard = self
            .shard(key)?
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let entry = shard.map.get(key)?;
        entry.remaining(now).map(|_| f(entry))
    }

    /// Keeps `entry` (if its TTL allows). When the cache is full, the shard taking the new
    /// entry gives up its oldest one, so the total stays at the capacity however names
    /// fall into shards.
    pub fn insert(&self, key: Key, entry: Arc<Cached>) {
        let capacity = self.capacity.load(Ordering::Relaxed);
        if entry.ttl == 0 || capacity == 0 {
            return;
        }
        let mut ring = self.shards_from(self.shard_index(&key));
        if let Some(home) = ring.next() {
            let mut shard = home.lock().unwrap_or_else(PoisonError::into_inner);
            if shard.map.insert(key.clone(), entry).is_some() {
                return;
            }
            shard.order.push_back(key);
            if self.count.fetch_add(1, Ordering::Relaxed) < capacity {
                return;
            }
            // Full: this shard gives up its oldest entry, unless the new one is all it has.
            if shard.map.len() > 1 && Self::evict_oldest(&mut shard) {
                self.count.fetch_sub(1, Ordering::Relaxed);
                return;
            }
        }
        // Then the next shard that has something to give.
        for next in ring {
            let mut shard = next.lock().unwrap_or_else(PoisonError::into_inner);
            if Self::evict_oldest(&mut shard) {
                self.count.fetch_sub(1, Ordering::Relaxed);
                return;
            }
        }
    }

    fn evict_oldest(shard: &mut Shard) -> bool {
        while let Some(old) = shard.order.pop_front() {
            if shard.map.remove(&old).is_some() {
                return true;
            }
        }
        false
    }

    /// Sets the number of answers kept (a reload of `dns.cache_size`).
    pub fn set_capacity(&self, capacity: usize) {
        self.capacity.store(capacity, Ordering::Relaxed);
    }

    /// Number of entries (for status and tests).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).map.len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops everything (the upstream servers changed).
    pub fn clear(&self) {
        for s in self.shards.iter() {
            let mut s = s.lock().unwrap_or_else(PoisonError::into_inner);
            self.count.fetch_sub(s.map.len(), Ordering::Relaxed);
            s.map.clear();
            s.order.clear();
        }
    }
}

/// How long to wait for an upstream before trying the next one.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_millis(800);

/// Whether a response header is one to keep and pass on.
pub fn usable_rcode(h: &Header) -> bool {
    matches!(h.rcode(), 0 | 3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Builder, CLASS_IN, RData, to_wire};

    fn response(
        rcode: u16,
        answers: &[(u32, [u8; 4])],
        soa: Option<(u32, u32)>,
        opt: bool,
    ) -> Vec<u8> {
        let name = to_wire("www.example.net");
        let mut b = Builder::with_question(&name, rtype::A, CLASS_IN);
        for (ttl, ip) in answers {
            b.record(&name, rtype::A, *ttl, &RData::Bytes(ip.to_vec()));
        }
        if let Some((ttl, minimum)) = soa {
            b.record(
                &to_wire("example.net"),
                rtype::SOA,
                ttl,
                &RData::Soa {
                    mname: to_wire("ns.example.net"),
                    rname: to_wire("h.example.net"),
                    serial: 1,
                    refresh: 2,
                    retry: 3,
                    expire: 4,
                    minimum,
                },
            );
        }
        if opt {
            b.buf.extend_from_slice(&crate::wire::opt_record(0));
        }
        let h = Header {
            id: 7,
            flags: 0x8180 | rcode,
            qdcount: 1,
            ancount: answers.len() as u16,
            nscount: u16::from(soa.is_some()),
            arcount: u16::from(opt),
        };
        h.write(&mut b.buf);
        b.buf
    }

    #[test]
    fn positive_answers_keep_the_smallest_ttl_and_age() {
        let now = Instant::now();
        let p = response(
            0,
            &[(300, [192, 0, 2, 1]), (60, [192, 0, 2, 2])],
            None,
            true,
        );
        let c = Cached::from_response(&p, now).unwrap();
        assert_eq!((c.rcode, c.ttl, c.counts), (0, 60, [2, 0, 0]));
        let later = now + Duration::from_secs(10);
        assert_eq!(c.remaining(later), Some(50));
        let mut out = vec![0u8; 12 + 17 + 4];
        c.write_body(&mut out, later);
        let (_, _, recs) = wire::records(&{
            let mut m = p[..12 + 17 + 4].to_vec();
            m[11] = 0; // the OPT is gone
            m.extend_from_slice(&out[12 + 17 + 4..]);
            m
        })
        .unwrap();
        assert_eq!(
            recs.iter().map(|r| r.ttl).collect::<Vec<_>>(),
            vec![290, 50]
        );
        assert_eq!(c.remaining(now + Duration::from_secs(60)), None);
    }

    #[test]
    fn negative_answers_use_the_soa_minimum() {
        let now = Instant::now();
        let nx = Cached::from_response(&response(3, &[], Some((3600, 120)), false), now).unwrap();
        assert_eq!((nx.rcode, nx.ttl), (3, 120));
        let nodata = Cached::from_response(&response(0, &[], Some((30, 900)), false), now).unwrap();
        assert_eq!(nodata.ttl, 30);
        let no_soa = Cached::from_response(&response(3, &[], None, false), now).unwrap();
        assert_eq!(
            no_soa.ttl, 0,
            "without an SOA a negative answer is not kept"
        );
        let servfail =
            Cached::from_response(&response(2, &[], Some((30, 30)), false), now).unwrap();
        assert_eq!(servfail.ttl, 0);
    }

    #[test]
    fn bounded_and_expiring() {
        let cache = Cache::new(32);
        let now = Instant::now();
        let p = response(0, &[(60, [192, 0, 2, 1])], None, false);
        let entry = Arc::new(Cached::from_response(&p, now).unwrap());
        for i in 0..1000u16 {
            cache.insert(
                key(&to_wire(&format!("n{i}.example")), rtype::A, CLASS_IN),
                Arc::clone(&entry),
            );
        }
        assert!(cache.len() <= 32, "{}", cache.len());
        let name = to_wire("n999.example");
        assert!(cache.get(&name, rtype::A, CLASS_IN, now).is_some());
        assert!(
            cache
                .get(&name, rtype::A, CLASS_IN, now + Duration::from_secs(61))
                .is_none()
        );
    }
}
