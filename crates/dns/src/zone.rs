//! The company zone and the LAN's reverse zone, built from the config, the WAN address and
//! the DHCP leases, and turned into ready answers.
//!
//! A [`Zone`] is immutable; a change (reload, lease, WAN address) builds a new one with a
//! higher serial. Every (name, type) that has data gets a pre-encoded answer body whose
//! compression pointers refer only to the question at offset 12, so the server answers by
//! copying the client's own header and question and appending the body.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;

use foldhash::fast::RandomState;

use officebox_config::derive::{
    builtin_names, client_name_allowed, dmarc_record, mail_endpoints, spf_record, zone_mx, zone_ns,
};
use officebox_config::{Config, RecordData, reverse_zone};
use officebox_store::Lease;

use crate::wire::{self, Builder, CLASS_IN, RData, rtype};

/// Where a name came from, for `officebox dns names` and for conflict rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// SOA, NS, MX of the zone itself.
    Zone,
    /// The appliance's built-in names (www, corp, ...).
    Builtin,
    /// `[[dns.records]]` in the config.
    Static,
    /// A DHCP reservation with a host name.
    Reservation,
    /// A DHCP client that sent its host name.
    Dhcp,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Zone => "zone",
            Source::Builtin => "built-in",
            Source::Static => "static",
            Source::Reservation => "reservation",
            Source::Dhcp => "dhcp",
        }
    }
}

/// One record of the zone, for listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub rtype: &'static str,
    pub ttl: u32,
    pub value: String,
    pub source: Source,
}

/// A ready answer: the response's flags and counts, and its sections after the question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub rcode: wire::Rcode,
    pub counts: [u16; 3],
    pub body: Box<[u8]>,
}

/// What the zone says about a question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup<'z> {
    /// Data for the name and type (possibly through a CNAME).
    Found(&'z Answer),
    /// The name exists without that type: NOERROR, SOA in authority.
    NoData(&'z Answer),
    /// No such name in our zone: NXDOMAIN, SOA in authority.
    NxDomain(&'z Answer),
    /// Not our zone.
    NotOurs,
}

#[derive(Debug, Clone)]
struct RRset {
    rtype: u16,
    ttl: u32,
    data: Vec<RData>,
}

#[derive(Debug, Clone, Default)]
struct Node {
    source: Option<Source>,
    sets: Vec<RRset>,
}

/// One authoritative zone: its apex and the answer for "no data" / "no such name".
#[derive(Debug, Clone)]
struct Apex {
    name: Vec<u8>,
    nodata: Answer,
    nxdomain: Answer,
}

/// The zones officebox is authoritative for.
#[derive(Debug, Clone)]
pub struct Zone {
    pub serial: u32,
    apexes: Vec<Apex>,
    /// Keyed by the name in lowercase wire form followed by the type (big-endian).
    answers: HashMap<Box<[u8]>, Answer, RandomState>,
    /// Names with data or with names below them (empty non-terminals answer NODATA).
    existing: HashSet<Box<[u8]>, RandomState>,
    entries: Vec<Entry>,
    /// DHCP host name -> address, to keep the first holder of a name on rebuilds.
    dhcp_holders: HashMap<String, Ipv4Addr>,
    /// The records by owner name, for zone transfers.
    nodes: BTreeMap<Vec<u8>, Node>,
}

/// SOA timers: refresh 1 h, retry 10 min, expire 1 week, negative TTL 5 min.
const SOA_TIMERS: [u32; 4] = [3600, 600, 604_800, 300];
/// The TTL of DHCP names: short, since leases come and go.
const DHCP_TTL: u32 = 300;

fn ptr_name(ip: Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("{d}.{c}.{b}.{a}.in-addr.arpa")
}

/// Makes a DHCP client's host name usable as a label (`Laptop 7` -> `laptop-7`).
pub fn sanitize_hostname(name: &str) -> Option<String> {
    let first = name.split('.').next().unwrap_or_default();
    let mut out: String = first
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    out = out.trim_matches('-').to_string();
    out.truncate(63);
    let out = out.trim_end_matches('-').to_string();
    (!out.is_empty()).then_some(out)
}

/// Collects records before the answers are encoded.
#[derive(Default)]
struct ZoneBuilder {
    nodes: BTreeMap<Vec<u8>, Node>,
    entries: Vec<Entry>,
}

impl ZoneBuilder {
    fn has_name(&self, name: &str) -> bool {
        self.nodes
            .get(&wire::to_wire(name))
            .is_some_and(|n| !n.sets.is_empty())
    }

    fn add(&mut self, name: &str, ttl: u32, data: &RecordData, source: Source) {
        let (rtype, rdata, value) = match data {
            RecordData::A(ip) => (rtype::A, RData::Bytes(ip.octets().to_vec()), ip.to_string()),
            RecordData::Aaaa(ip) => (
                rtype::AAAA,
                RData::Bytes(ip.octets().to_vec()),
                ip.to_string(),
            ),
            RecordData::Cname(n) => (rtype::CNAME, RData::Name(wire::to_wire(n)), n.clone()),
            RecordData::Ptr(n) => (rtype::PTR, RData::Name(wire::to_wire(n)), n.clone()),
            RecordData::Mx {
                preference,
                exchange,
            } => (
                rtype::MX,
                RData::PrefName(*preference, wire::to_wire(exchange)),
                format!("{preference} {exchange}"),
            ),
            RecordData::Txt(t) => (rtype::TXT, RData::txt(t), format!("{t:?}")),
            RecordData::Srv {
                priority,
                weight,
                port,
                target,
            } => (
                rtype::SRV,
                RData::Srv {
                    priority: *priority,
                    weight: *weight,
                    port: *port,
                    target: wire::to_wire(target),
                },
                format!("{priority} {weight} {port} {target}"),
            ),
        };
        self.push(name, rtype, ttl, rdata, value, data.type_name(), source);
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        name: &str,
        rt: u16,
        ttl: u32,
        rdata: RData,
        value: String,
        type_name: &'static str,
        source: Source,
    ) {
        let node = self.nodes.entry(wire::to_wire(name)).or_default();
        node.source.get_or_insert(source);
        match node.sets.iter_mut().find(|s| s.rtype == rt) {
            Some(set) if !set.data.contains(&rdata) => set.data.push(rdata),
            Some(_) => return,
            None => node.sets.push(RRset {
                rtype: rt,
                ttl,
                data: vec![rdata],
            }),
        }
        self.entries.push(Entry {
            name: name.to_string(),
            rtype: type_name,
            ttl,
            value,
            source,
        });
    }

    fn soa(&mut self, apex: &str, ns: &str, rname: &str, ttl: u32, serial: u32) -> RData {
        let [refresh, retry, expire, minimum] = SOA_TIMERS;
        let soa = RData::Soa {
            mname: wire::to_wire(ns),
            rname: wire::to_wire(rname),
            serial,
            refresh,
            retry,
            expire,
            minimum,
        };
        let value = format!("{ns} {rname} {serial} {refresh} {retry} {expire} {minimum}");
        self.push(
            apex,
            rtype::SOA,
            ttl,
            soa.clone(),
            value,
            "SOA",
            Source::Zone,
        );
        self.push(
            apex,
            rtype::NS,
            ttl,
            RData::Name(wire::to_wire(ns)),
            ns.to_string(),
            "NS",
            Source::Zone,
        );
        soa
    }
}

impl Zone {
    /// Builds the zones for `config`, the current WAN address, the active DHCP leases and
    /// the DKIM keys to publish (selector, TXT record). `previous` keeps DHCP names with
    /// the client that held them first.
    pub fn build(
        config: &Config,
        wan: Option<Ipv4Addr>,
        leases: &[Lease],
        dkim: &[(String, String)],
        serial: u32,
        previous: Option<&Zone>,
    ) -> Zone {
        let net = &config.network;
        let ttl = config.dns.ttl;
        let domain = net.domain.as_str();
        let ns = zone_ns(net);
        let rname = format!("hostmaster.{domain}");
        let reverse = reverse_zone(net.lan.net);
        let mut z = ZoneBuilder::default();

        let fwd_soa = z.soa(domain, &ns, &rname, ttl, serial);
        let rev_soa = z.soa(&reverse, &ns, &rname, ttl, serial);
        let (pref, mx) = zone_mx(net);
        z.add(
            domain,
            ttl,
            &RecordData::Mx {
                preference: pref,
                exchange: mx,
            },
            Source::Zone,
        );

        for b in builtin_names(net, wan) {
            for ip in b.addresses {
                z.add(&b.name, ttl, &RecordData::A(ip), Source::Builtin);
            }
        }
        z.add(
            &ptr_name(net.lan.net.address),
            ttl,
            &RecordData::Ptr(ns.clone()),
            Source::Builtin,
        );
        // Mail programs find the box's mail services from the address alone, unless the
        // admin wrote that name (mail hosted elsewhere for some of it).
        for e in mail_endpoints(config) {
            if let Some(srv) = &e.srv
                && !config.dns.records.iter().any(|r| &r.name == srv)
            {
                let data = RecordData::Srv {
                    priority: 0,
                    weight: 1,
                    port: e.port,
                    target: e.host.clone(),
                };
                z.add(srv, ttl, &data, Source::Builtin);
            }
        }
        // What receivers check mail from the domain against: the DKIM keys, SPF and
        // DMARC, each unless the admin wrote their own.
        let written = |name: &str, prefix: &str| {
            config.dns.records.iter().any(|r| {
                r.name == name && matches!(&r.data, RecordData::Txt(t) if t.starts_with(prefix))
            })
        };
        if config.mail.enabled {
            for (selector, txt) in dkim {
                let name = format!("{selector}._domainkey.{domain}");
                z.add(&name, ttl, &RecordData::Txt(txt.clone()), Source::Builtin);
            }
        }
        if let Some(spf) = spf_record(config, wan)
            && !written(domain, "v=spf1")
        {
            z.add(domain, ttl, &RecordData::Txt(spf), Source::Builtin);
        }
        let dmarc = format!("_dmarc.{domain}");
        if let Some(policy) = dmarc_record(config)
            && !written(&dmarc, "")
        {
            z.add(&dmarc, ttl, &RecordData::Txt(policy), Source::Builtin);
        }

        for r in &config.dns.records {
            z.add(&r.name, r.ttl, &r.data, Source::Static);
        }
        // A static name on the LAN answers the reverse question too, unless the admin
        // wrote that PTR record (or the address is the box's own).
        for r in &config.dns.records {
            if let RecordData::A(ip) = r.data
                && net.lan.net.contains(ip)
                && !z.has_name(&ptr_name(ip))
            {
                z.add(
                    &ptr_name(ip),
                    r.ttl,
                    &RecordData::Ptr(r.name.clone()),
                    Source::Static,
                );
            }
        }

        for r in &config.dhcp.reservations {
            let Some(host) = &r.hostname else { continue };
            let name = format!("{host}.{domain}");
            if z.has_name(&name) {
                continue;
            }
            z.add(&name, ttl, &RecordData::A(r.address), Source::Reservation);
            if !z.has_name(&ptr_name(r.address)) {
                z.add(
                    &ptr_name(r.address),
                    ttl,
                    &RecordData::Ptr(name),
                    Source::Reservation,
                );
            }
        }

        // DHCP names: never over a built-in, static or reserved name; between two clients
        // asking for one name, the one that had it keeps it.
        let mut holders: HashMap<String, Ipv4Addr> = HashMap::new();
        let mut by_name: BTreeMap<String, Vec<&Lease>> = BTreeMap::new();
        for lease in leases {
            if let Some(host) = lease.hostname.as_deref().and_then(sanitize_hostname) {
                by_name.entry(host).or_default().push(lease);
            }
        }
        for (host, claims) in by_name {
            let Some(first) = claims.first() else {
                continue;
            };
            let name = format!("{host}.{domain}");
            if !client_name_allowed(&host) {
                tracing::info!(message = "dns: a DHCP client asked for a reserved name; not published", name, address = %first.address);
                continue;
            }
            if z.has_name(&name) {
                // Quietly when the name is the client's own reservation.
                let own = config.dhcp.reservations.iter().any(|r| {
                    r.hostname.as_deref().and_then(sanitize_hostname).as_deref() == Some(&host)
                        && claims.iter().all(|l| l.address == r.address)
                });
                if !own {
                    tracing::info!(message = "dns: DHCP client's name is taken; not published", name, address = %first.address);
                }
                continue;
            }
            let previous_holder = previous.and_then(|p| p.dhcp_holders.get(&host)).copied();
            let winner = claims
                .iter()
                .find(|l| Some(l.address) == previous_holder)
                .unwrap_or(first);
            for loser in claims.iter().filter(|l| l.address != winner.address) {
                tracing::info!(message = "dns: two DHCP clients want one name; the first keeps it", name, kept = %winner.address, refused = %loser.address);
            }
            z.add(
                &name,
                DHCP_TTL,
                &RecordData::A(winner.address),
                Source::Dhcp,
            );
            if net.lan.net.contains(winner.address) && !z.has_name(&ptr_name(winner.address)) {
                z.add(
                    &ptr_name(winner.address),
                    DHCP_TTL,
                    &RecordData::Ptr(name.clone()),
                    Source::Dhcp,
                );
            }
            holders.insert(host, winner.address);
        }

        let apexes = vec![
            Self::apex(domain, ttl, &fwd_soa),
            Self::apex(&reverse, ttl, &rev_soa),
        ];
        let mut zone = Zone {
            serial,
            apexes,
            answers: HashMap::default(),
            existing: HashSet::default(),
            entries: z.entries,
            dhcp_holders: holders,
            nodes: BTreeMap::new(),
        };
        zone.encode(&z.nodes);
        zone.nodes = z.nodes;
        zone
    }

    /// A fingerprint of the zone's content, the serial aside: equal fingerprints mean
    /// nothing a secondary would need to fetch has changed.
    pub fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for e in self.entries.iter().filter(|e| e.rtype != "SOA") {
            (&e.name, e.rtype, e.ttl, &e.value, e.source).hash(&mut h);
        }
        h.finish()
    }

    /// The messages of a zone transfer (RFC 5936) of the zone at `apex`: the SOA, every
    /// other record, the SOA again; each message's body follows the question. `None` when
    /// `apex` is not one of our zones' apex.
    pub fn transfer(&self, apex: &[u8]) -> Option<Vec<Answer>> {
        let apex = self.apexes.iter().find(|a| a.name == apex)?;
        let soa = self
            .nodes
            .get(&apex.name)?
            .sets
            .iter()
            .find(|s| s.rtype == rtype::SOA)?;
        let mut records: Vec<(&[u8], &RRset, &RData)> = Vec::new();
        let first = soa.data.first()?;
        records.push((&apex.name, soa, first));
        for (name, node) in &self.nodes {
            if !wire::is_subdomain(name, &apex.name) {
                continue;
            }
            for set in node
                .sets
                .iter()
                .filter(|s| !(s.rtype == rtype::SOA && *name == apex.name))
            {
                for rd in &set.data {
                    records.push((name, set, rd));
                }
            }
        }
        records.push((&apex.name, soa, first));
        // Messages of about 16 KiB (a record's data is at most 64 KiB, TXT here far less).
        let mut out = Vec::new();
        let mut b = Builder::with_question(&apex.name, rtype::AXFR, CLASS_IN);
        let mut start = b.buf.len();
        let mut count = 0u16;
        for (name, set, rd) in &records {
            b.record(name, set.rtype, set.ttl, rd);
            count += 1;
            if b.buf.len() > 16 * 1024 || count == u16::MAX {
                out.push(Answer {
                    rcode: wire::Rcode::NoError,
                    counts: [count, 0, 0],
                    body: b.buf.get(start..).unwrap_or_default().into(),
                });
                b = Builder::with_question(&apex.name, rtype::AXFR, CLASS_IN);
                start = b.buf.len();
                count = 0;
            }
        }
        if count > 0 {
            out.push(Answer {
                rcode: wire::Rcode::NoError,
                counts: [count, 0, 0],
                body: b.buf.get(start..).unwrap_or_default().into(),
            });
        }
        Some(out)
    }

    /// The SOA question a NOTIFY for the zone at `apex` carries.
    pub fn apexes_wire(&self) -> Vec<Vec<u8>> {
        self.apexes.iter().map(|a| a.name.clone()).collect()
    }

    fn apex(apex: &str, ttl: u32, soa: &RData) -> Apex {
        let name = wire::to_wire(apex);
        // The SOA is written without compression so the body fits after any question.
        let mut b = Builder::plain();
        b.record(&name, rtype::SOA, ttl.min(SOA_TIMERS[3]), soa);
        let body: Box<[u8]> = b.buf.into();
        let answer = |rcode| Answer {
            rcode,
            counts: [0, 1, 0],
            body: body.clone(),
        };
        Apex {
            name,
            nodata: answer(wire::Rcode::NoError),
            nxdomain: answer(wire::Rcode::NxDomain),
        }
    }

    fn encode(&mut self, nodes: &BTreeMap<Vec<u8>, Node>) {
        for (name, node) in nodes {
            // The name and every name between it and its apex exist.
            if let Some(apex) = self
                .apexes
                .iter()
                .find(|a| wire::is_subdomain(name, &a.name))
            {
                let mut rest = name.as_slice();
                while rest.len() >= apex.name.len() {
                    self.existing.insert(rest.into());
                    if rest.len() == apex.name.len() {
                        break;
                    }
                    let Some(up) = wire::parent(rest) else {
                        break;
                    };
                    rest = up;
                }
            }
            let cname = node.sets.iter().find(|s| s.rtype == rtype::CNAME);
            for set in &node.sets {
                let answer = encode_answer(name, set.rtype, &[set], nodes);
                self.answers.insert(answer_key(name, set.rtype), answer);
            }
            if let Some(first) = node.sets.first() {
                // RFC 8482: answer ANY with one RRset.
                let answer = encode_answer(name, rtype::ANY, &[first], nodes);
                self.answers.insert(answer_key(name, rtype::ANY), answer);
            }
            if let Some(cname) = cname {
                // Any other type at an alias: the CNAME, then the target's data if ours.
                for qtype in [
                    rtype::A,
                    rtype::AAAA,
                    rtype::MX,
                    rtype::TXT,
                    rtype::SRV,
                    rtype::PTR,
                    rtype::NS,
                    rtype::SOA,
                ] {
                    let answer = encode_cname_chain(name, qtype, cname, nodes);
                    self.answers.insert(answer_key(name, qtype), answer);
                }
            }
        }
    }

    /// What the zone says for `qname` (lowercase wire form) and `qtype`.
    pub fn lookup(&self, qname: &[u8], qtype: u16) -> Lookup<'_> {
        let Some(apex) = self
            .apexes
            .iter()
            .filter(|a| wire::is_subdomain(qname, &a.name))
            .max_by_key(|a| a.name.len())
        else {
            return Lookup::NotOurs;
        };
        // The key on the stack: no allocation on the hot path.
        let name = qname.get(..wire::MAX_NAME).unwrap_or(qname);
        let mut key = [0u8; wire::MAX_NAME + 2];
        for (k, b) in key.iter_mut().zip(name.iter().chain(&qtype.to_be_bytes())) {
            *k = *b;
        }
        if let Some(a) = key
            .get(..name.len() + 2)
            .and_then(|key| self.answers.get(key))
        {
            return Lookup::Found(a);
        }
        if self.existing.contains(qname) {
            Lookup::NoData(&apex.nodata)
        } else {
            Lookup::NxDomain(&apex.nxdomain)
        }
    }

    /// Whether `qname` is inside one of our zones.
    pub fn is_ours(&self, qname: &[u8]) -> bool {
        self.apexes
            .iter()
            .any(|a| wire::is_subdomain(qname, &a.name))
    }

    /// Every record, for `officebox dns names` and the admin pages.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The apex names (forward zone first).
    pub fn apex_names(&self) -> Vec<String> {
        self.apexes.iter().map(|a| wire::to_text(&a.name)).collect()
    }
}

fn answer_key(name: &[u8], qtype: u16) -> Box<[u8]> {
    let mut k = Vec::with_capacity(name.len() + 2);
    k.extend_from_slice(name);
    k.extend_from_slice(&qtype.to_be_bytes());
    k.into()
}

/// Encodes an answer for `sets` at `name`, with in-zone addresses of MX/SRV/NS targets as
/// additional records.
fn encode_answer(
    name: &[u8],
    qtype: u16,
    sets: &[&RRset],
    nodes: &BTreeMap<Vec<u8>, Node>,
) -> Answer {
    let mut b = Builder::with_question(name, qtype, CLASS_IN);
    let body_start = b.buf.len();
    let mut an = 0u16;
    let mut targets: Vec<Vec<u8>> = Vec::new();
    for set in sets {
        for rd in &set.data {
            b.record(name, set.rtype, set.ttl, rd);
            an += 1;
            match rd {
                RData::PrefName(_, t) | RData::Srv { target: t, .. } => targets.push(t.clone()),
                RData::Name(t) if set.rtype == rtype::NS => targets.push(t.clone()),
                _ => {}
            }
        }
    }
    let mut ar = 0u16;
    for t in targets {
        let Some(node) = nodes.get(&t) else { continue };
        for set in node
            .sets
            .iter()
            .filter(|s| s.rtype == rtype::A || s.rtype == rtype::AAAA)
        {
            for rd in &set.data {
                b.record(&t, set.rtype, set.ttl, rd);
                ar += 1;
            }
        }
    }
    Answer {
        rcode: wire::Rcode::NoError,
        counts: [an, 0, ar],
        body: b.buf.get(body_start..).unwrap_or_default().into(),
    }
}

/// The CNAME at `name`, then (when the target is ours and has them) the target's records.
fn encode_cname_chain(
    name: &[u8],
    qtype: u16,
    cname: &RRset,
    nodes: &BTreeMap<Vec<u8>, Node>,
) -> Answer {
    let mut b = Builder::with_question(name, qtype, CLASS_IN);
    let body_start = b.buf.len();
    let mut an = 0u16;
    let mut current = name.to_vec();
    let mut set = cname.clone();
    // Follow up to 8 aliases inside the zone.
    for _ in 0..8 {
        let Some(RData::Name(target)) = set.data.first().cloned() else {
            break;
        };
        b.record(
            &current,
            rtype::CNAME,
            set.ttl,
            &RData::Name(target.clone()),
        );
        an += 1;
        let Some(node) = nodes.get(&target) else {
            break;
        };
        if let Some(next) = node.sets.iter().find(|s| s.rtype == rtype::CNAME) {
            current = target;
            set = next.clone();
            continue;
        }
        for s in node.sets.iter().filter(|s| s.rtype == qtype) {
            for rd in &s.data {
                b.record(&target, s.rtype, s.ttl, rd);
                an += 1;
            }
        }
        break;
    }
    Answer {
        rcode: wire::Rcode::NoError,
        counts: [an, 0, 0],
        body: b.buf.get(body_start..).unwrap_or_default().into(),
    }
}
