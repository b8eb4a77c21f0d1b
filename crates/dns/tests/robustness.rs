#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Robustness of the DNS request pipeline and of the upstream-response parser, in the
//! normal test suite: deterministic (fixed seeds) and bounded (a few seconds in debug).
//!
//! - valid queries of every shape get well-formed replies that echo the ID and question;
//! - mutated and random messages never panic, and any reply is well-formed and fits the
//!   client's UDP limit;
//! - mutated upstream responses never panic `Cached::from_response` or what uses its result;
//! - our answers, parsed by an independent implementation (hickory-proto), say what the
//!   config says.
//!
//! The fuzz targets in `fuzz/` drive the same entry points without bounds.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{RData as HRData, Record, RecordType};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use officebox_dns::answer::{self, Action, Transport, View};
use officebox_dns::cache::Cached;
use officebox_dns::wire::{
    self, AA, Builder, CD, CLASS_CH, CLASS_IN, HEADER_LEN, Header, QR, RA, RD, RData, TC, rtype,
};
use officebox_dns::zone::Zone;

// ------------------------------------------------------------------------ the zone

/// A big TXT record: more than any UDP answer may carry.
fn big_text() -> String {
    "0123456789abcdef".repeat(100)
}

fn config_text() -> String {
    format!(
        r#"
data_dir = "unused"

[network]
hostname = "officebox"
domain = "office.test"
manage = false
listen = ["127.0.0.1"]

[network.wan]
mode = "static"
address = "203.0.113.10"
netmask = "255.255.255.0"
gateway = "203.0.113.1"

[network.lan]
address = "192.168.1.1"
netmask = "255.255.255.0"

[security]
mode = "firewall-nat"

[dns]
port = 10053
use_upstream = false

[[dns.records]]
name = "printer"
type = "A"
value = "192.168.1.20"

[[dns.records]]
name = "printer"
type = "AAAA"
value = "2001:db8::20"

[[dns.records]]
name = "files"
type = "CNAME"
value = "printer"

[[dns.records]]
name = "elsewhere"
type = "CNAME"
value = "www.example.net."

[[dns.records]]
name = "info"
type = "TXT"
value = "v=spf1 mx -all"

[[dns.records]]
name = "big"
type = "TXT"
value = "{big}"

[[dns.records]]
name = "_sip._udp"
type = "SRV"
value = "10 5 5060 printer"

[[dns.records]]
name = "lists"
type = "MX"
value = "20 printer"

[[dns.records]]
name = "deep.sub"
type = "A"
value = "192.168.1.30"

[[dns.records]]
name = "20.1.168.192.in-addr.arpa."
type = "PTR"
value = "printer"

[dhcp]
enabled = false

[[users]]
login = "admin"
name = "Office Administrator"
password = "$argon2id$v=19$m=19456,t=2,p=1$m8/6KLD7VfxVKBeT8xCuIg$Rff1QH8n6rxqeUxSOhR6LCT8ClCBCjbhjZVMaWoKpq8"
admin = true
"#,
        big = big_text()
    )
}

const WAN: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
const LAN_ADDR: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);

/// The demo-like view: stand-alone (`use_upstream = false`), or forwarding.
fn view(use_upstream: bool) -> View {
    let config = match officebox_config::parse("t.toml", &config_text()) {
        Ok(c) => c,
        Err(d) => panic!("test config is invalid: {d:?}"),
    };
    let zone = Zone::build(&config, Some(WAN), &[], &[], 1, None);
    View {
        zone,
        network: config.network.clone(),
        use_upstream,
        secondaries: Vec::new(),
        sites: Vec::new(),
    }
}

/// Names of the zone (and some that are not), in text form.
const NAMES: &[&str] = &[
    "office.test",
    "printer.office.test",
    "files.office.test",
    "elsewhere.office.test",
    "info.office.test",
    "big.office.test",
    "_sip._udp.office.test",
    "_udp.office.test",
    "lists.office.test",
    "deep.sub.office.test",
    "sub.office.test",
    "x.deep.sub.office.test",
    "www.office.test",
    "wan.office.test",
    "corp.office.test",
    "smtp.office.test",
    "pop.office.test",
    "officebox.office.test",
    "nothing.office.test",
    "1.168.192.in-addr.arpa",
    "1.1.168.192.in-addr.arpa",
    "20.1.168.192.in-addr.arpa",
    "99.1.168.192.in-addr.arpa",
    "168.192.in-addr.arpa",
    "www.example.net",
    "example.net",
    "test",
    "",
];

const TYPES: &[u16] = &[
    rtype::A,
    rtype::NS,
    rtype::CNAME,
    rtype::SOA,
    rtype::PTR,
    rtype::HINFO,
    rtype::MX,
    rtype::TXT,
    rtype::AAAA,
    rtype::SRV,
    rtype::OPT,
    rtype::IXFR,
    rtype::AXFR,
    rtype::ANY,
    0,
    65535,
];

const CLASSES: &[u16] = &[CLASS_IN, CLASS_IN, CLASS_IN, CLASS_CH, 4, 254, 255, 0];

fn clients() -> Vec<IpAddr> {
    vec![
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
        IpAddr::V4(Ipv4Addr::new(192, 168, 1, 50)),
        IpAddr::V6(Ipv4Addr::new(192, 168, 1, 51).to_ipv6_mapped()),
        IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)),
        IpAddr::V6("2001:db8::7".parse().unwrap()),
    ]
}

// ------------------------------------------------------------------------ building queries

/// A query's parts, written raw so that tests can also make what our encoder never would.
#[derive(Debug, Clone)]
struct Query {
    id: u16,
    flags: u16,
    /// Labels as raw bytes (any length, any bytes).
    labels: Vec<Vec<u8>>,
    qtype: u16,
    qclass: u16,
    /// EDNS: (payload, extended rcode, version, flags, options rdata).
    edns: Option<(u16, u8, u8, u16, Vec<u8>)>,
}

impl Query {
    fn new(name: &str, qtype: u16) -> Query {
        Query {
            id: 0x1234,
            flags: RD,
            labels: name
                .split('.')
                .filter(|l| !l.is_empty())
                .map(|l| l.as_bytes().to_vec())
                .collect(),
            qtype,
            qclass: CLASS_IN,
            edns: None,
        }
    }

    fn edns(mut self, payload: u16) -> Query {
        self.edns = Some((payload, 0, 0, 0, Vec::new()));
        self
    }

    fn bytes(&self) -> Vec<u8> {
        let mut p = Vec::with_capacity(64);
        let arcount = u16::from(self.edns.is_some());
        for v in [self.id, self.flags, 1, 0, 0, arcount] {
            p.extend_from_slice(&v.to_be_bytes());
        }
        for l in &self.labels {
            p.push(l.len() as u8);
            p.extend_from_slice(l);
        }
        p.push(0);
        p.extend_from_slice(&self.qtype.to_be_bytes());
        p.extend_from_slice(&self.qclass.to_be_bytes());
        if let Some((payload, ext, version, flags, options)) = &self.edns {
            p.push(0);
            p.extend_from_slice(&rtype::OPT.to_be_bytes());
            p.extend_from_slice(&payload.to_be_bytes());
            p.extend_from_slice(&[*ext, *version]);
            p.extend_from_slice(&flags.to_be_bytes());
            p.extend_from_slice(&(options.len() as u16).to_be_bytes());
            p.extend_from_slice(options);
        }
        p
    }
}

/// Upper- and lower-case letters at random (0x20 style).
fn random_case(rng: &mut StdRng, label: &[u8]) -> Vec<u8> {
    label
        .iter()
        .map(|&b| {
            if rng.random_bool(0.5) {
                b.to_ascii_uppercase()
            } else {
                b
            }
        })
        .collect()
}

/// A random, valid query: names of the zone and around it, every type and class, flags,
/// opcodes, EDNS or not.
fn random_query(rng: &mut StdRng) -> Query {
    let base = *NAMES.choose(rng).unwrap();
    let mut q = Query::new(base, *TYPES.choose(rng).unwrap());
    q.id = rng.random();
    q.labels = q.labels.iter().map(|l| random_case(rng, l)).collect();
    match rng.random_range(0..10) {
        // A random label in front (NXDOMAIN in our zone, forwarded elsewhere).
        0 | 1 => {
            let len = rng.random_range(1..=63);
            let label = (0..len)
                .map(|_| {
                    *b"abcdefghijklmnopqrstuvwxyz0123456789-_*"
                        .choose(rng)
                        .unwrap()
                })
                .collect();
            q.labels.insert(0, label);
        }
        // Any bytes in a label: legal on the wire.
        2 => {
            let len = rng.random_range(1..=20);
            q.labels.insert(0, (0..len).map(|_| rng.random()).collect());
        }
        // As long as a name may be: 255 bytes in wire form.
        3 => {
            let mut wire_len = 1 + q.labels.iter().map(|l| l.len() + 1).sum::<usize>();
            while wire_len < 255 {
                let len = (255 - wire_len - 1).clamp(1, 63);
                q.labels.insert(0, vec![b'a'; len]);
                wire_len += len + 1;
            }
            assert_eq!(wire_len, 255);
        }
        _ => {}
    }
    if rng.random_bool(0.3) {
        q.qtype = rng.random();
    }
    q.qclass = *CLASSES.choose(rng).unwrap();
    if rng.random_bool(0.05) {
        q.qclass = rng.random();
    }
    // Flags a client may set: RD, CD, AD, the Z bit; AA/TC/RA/rcode bits are ignored.
    q.flags = rng.random::<u16>() & !QR & !(0xF << 11);
    if rng.random_bool(0.1) {
        let opcode: u16 = *[1u16, 2, 4, 5, 6, 15].choose(rng).unwrap();
        q.flags |= opcode << 11;
    }
    if rng.random_bool(0.5) {
        let payload = *[0u16, 1, 511, 512, 513, 1232, 1233, 4096, 65535]
            .choose(rng)
            .unwrap();
        let version = if rng.random_bool(0.9) {
            0
        } else {
            rng.random()
        };
        let flags = if rng.random_bool(0.5) { 0x8000 } else { 0 };
        let options = if rng.random_bool(0.2) {
            // A cookie option (code 10) with 8 bytes of client cookie.
            let mut o = vec![0, 10, 0, 8];
            o.extend((0..8).map(|_| rng.random::<u8>()));
            o
        } else {
            Vec::new()
        };
        q.edns = Some((payload, 0, version, flags, options));
    }
    q
}

// ------------------------------------------------------------------------ checking replies

/// The question section of `p` (bytes after the header), if `p` has exactly one.
fn question(p: &[u8]) -> Option<&[u8]> {
    let end = wire::skip_name(p, HEADER_LEN).ok()? + 4;
    p.get(HEADER_LEN..end)
}

/// Checks that `reply` is a well-formed answer to `packet` over `transport`; returns it
/// parsed by hickory.
fn check_reply(packet: &[u8], reply: &[u8], transport: Transport) -> Message {
    let ctx = || format!("query {packet:02x?}\nreply {reply:02x?}");
    let qh = Header::parse(packet).unwrap_or_else(|_| panic!("a reply to no header\n{}", ctx()));
    let rh = Header::parse(reply).unwrap_or_else(|e| panic!("{e}\n{}", ctx()));
    assert_eq!(rh.id, qh.id, "the ID is echoed\n{}", ctx());
    assert_ne!(rh.flags & QR, 0, "QR is set\n{}", ctx());
    assert_eq!(rh.opcode(), qh.opcode(), "the opcode is echoed\n{}", ctx());
    assert_eq!(rh.flags & RD, qh.flags & RD, "RD is echoed\n{}", ctx());
    let (_, question_end, records) =
        wire::records(reply).unwrap_or_else(|e| panic!("malformed reply: {e}\n{}", ctx()));
    assert!(rh.qdcount <= 1, "{}", ctx());
    let req = wire::parse_request(packet);
    match &req {
        Ok(req) => {
            assert_eq!(rh.qdcount, 1, "the question is echoed\n{}", ctx());
            assert_eq!(
                reply.get(HEADER_LEN..question_end),
                packet.get(req.question.clone()),
                "the question is echoed byte for byte\n{}",
                ctx()
            );
        }
        Err(_) => {
            assert_eq!(rh.rcode(), 1, "FORMERR for what does not parse\n{}", ctx());
            assert_eq!(reply.len(), HEADER_LEN, "{}", ctx());
        }
    }
    // EDNS in, EDNS out: one OPT, last; none without.
    let opts: Vec<_> = records.iter().filter(|r| r.rtype == rtype::OPT).collect();
    let client_edns = req.as_ref().is_ok_and(|r| r.edns.is_some());
    if client_edns {
        assert_eq!(opts.len(), 1, "{}", ctx());
        assert_eq!(
            records.last().map(|r| r.rtype),
            Some(rtype::OPT),
            "{}",
            ctx()
        );
    } else {
        assert!(
            opts.is_empty(),
            "no OPT for a client without EDNS\n{}",
            ctx()
        );
    }
    if transport == Transport::Udp {
        let limit = match &req {
            Ok(r) => r.udp_limit(),
            Err(_) => 512,
        };
        assert!(
            reply.len() <= limit,
            "{} bytes over UDP, limit {limit}\n{}",
            reply.len(),
            ctx()
        );
        if !client_edns {
            assert!(reply.len() <= 512, "{}", ctx());
        }
    }
    if rh.flags & TC != 0 {
        assert_eq!(rh.ancount + rh.nscount, 0, "{}", ctx());
    }
    let msg = Message::from_vec(reply)
        .unwrap_or_else(|e| panic!("hickory cannot parse our reply: {e}\n{}", ctx()));
    assert_eq!(msg.metadata.id, qh.id);
    assert_eq!(msg.metadata.message_type, MessageType::Response);
    msg
}

/// Runs one message through the pipeline and checks whatever comes out.
fn run(view: &View, packet: &[u8], client: IpAddr, transport: Transport) -> Action {
    let action = answer::handle(view, packet, client, transport);
    match &action {
        Action::Reply(r) => {
            check_reply(packet, r, transport);
        }
        Action::Forward(req) => {
            assert!(view.use_upstream, "stand-alone never forwards");
            assert!(!view.zone.is_ours(req.qname.as_bytes()));
            assert!(
                officebox_config::derive::client_zone(&view.network, client)
                    != officebox_config::derive::ClientZone::Wan,
                "never recursion for the WAN"
            );
            // No upstream answer: SERVFAIL, well-formed.
            let r = answer::forwarded_at(req, packet, None, transport, Instant::now());
            check_reply(packet, &r, transport);
        }
        Action::Transfer(req) => {
            assert_eq!(transport, Transport::Tcp, "transfers only over TCP");
            assert!(matches!(req.qtype, rtype::AXFR | rtype::IXFR));
        }
        Action::Drop => {}
    }
    action
}

// ------------------------------------------------------------------------ (a) valid queries

#[test]
fn valid_queries_get_well_formed_replies() {
    let views = [view(false), view(true)];
    let clients = clients();
    let mut rng = StdRng::seed_from_u64(0x0ff1_ceb0);
    let mut seen = [0usize; 4];
    for i in 0..6000 {
        let q = random_query(&mut rng);
        let packet = q.bytes();
        let view = &views[i % 2];
        let client = *clients.choose(&mut rng).unwrap();
        let transport = if rng.random_bool(0.7) {
            Transport::Udp
        } else {
            Transport::Tcp
        };
        let action = run(view, &packet, client, transport);
        let kind = match action {
            Action::Reply(r) => {
                let h = Header::parse(&r).unwrap();
                let udp_transfer =
                    transport == Transport::Udp && matches!(q.qtype, rtype::AXFR | rtype::IXFR);
                assert!(
                    h.rcode() != 1 || udp_transfer,
                    "a valid query is FORMERR only for a transfer over UDP: {q:?}"
                );
                0
            }
            Action::Forward(_) => 1,
            Action::Transfer(_) => 2,
            Action::Drop => panic!("a valid query is never dropped: {q:?}"),
        };
        seen[kind] += 1;
    }
    assert!(seen[0] > 3000 && seen[1] > 50 && seen[2] > 10, "{seen:?}");
}

/// Every zone answer, over UDP without EDNS, fits or is truncated; the AA and RA bits follow
/// the policy.
#[test]
fn flags_follow_the_policy() {
    let standalone = view(false);
    let forwarding = view(true);
    let lan = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 50));
    let wan = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
    for name in NAMES {
        for &qtype in TYPES {
            if matches!(qtype, rtype::AXFR | rtype::IXFR) {
                continue;
            }
            let packet = Query::new(name, qtype).bytes();
            let ours = standalone.zone.is_ours(&wire::to_wire(name));
            for (view, client) in [
                (&standalone, lan),
                (&standalone, wan),
                (&forwarding, lan),
                (&forwarding, wan),
            ] {
                let Action::Reply(r) = run(view, &packet, client, Transport::Udp) else {
                    assert!(!ours && view.use_upstream && client == lan);
                    continue;
                };
                let h = Header::parse(&r).unwrap();
                let ra = view.use_upstream && client == lan;
                assert_eq!(h.flags & RA != 0, ra, "{name} {qtype}");
                if ours {
                    assert_ne!(h.flags & AA, 0, "{name} {qtype}");
                } else if client == wan {
                    assert_eq!(h.rcode(), 5, "the WAN gets REFUSED for other names");
                }
            }
        }
    }
}

// ------------------------------------------------------------------------ (b) mutations

fn random_bytes(rng: &mut StdRng, n: usize) -> Vec<u8> {
    (0..n).map(|_| rng.random()).collect()
}

/// A 14-bit offset that points forward of, or at, `at` (or anywhere).
fn bad_pointer(rng: &mut StdRng, at: usize, len: usize) -> [u8; 2] {
    let target = match rng.random_range(0..4) {
        0 => at,
        1 => at + 1,
        2 => rng.random_range(at..len + 16),
        _ => rng.random_range(0..0x4000),
    } & 0x3FFF;
    [0xC0 | (target >> 8) as u8, target as u8]
}

/// One to four random changes of `p`.
fn mutate(rng: &mut StdRng, p: &mut Vec<u8>) {
    for _ in 0..rng.random_range(1..=4) {
        let len = p.len();
        match rng.random_range(0..14) {
            // Bit flips.
            0 | 1 if len > 0 => {
                let i = rng.random_range(0..len);
                p[i] ^= 1 << rng.random_range(0..8);
            }
            // Truncation.
            2 => p.truncate(rng.random_range(0..=len)),
            // A random byte.
            3 if len > 0 => {
                let i = rng.random_range(0..len);
                p[i] = rng.random();
            }
            // An extended tail.
            4 => {
                let n = rng.random_range(1..64);
                p.extend(random_bytes(rng, n));
            }
            // Random counts in the header.
            5 if len >= HEADER_LEN => {
                let field = 4 + 2 * rng.random_range(0..4);
                let v: u16 = *[0u16, 1, 2, 3, 0x7FFF, 0xFFFF, rng.random()]
                    .choose(rng)
                    .unwrap();
                p[field..field + 2].copy_from_slice(&v.to_be_bytes());
            }
            // A compression pointer forward or at itself.
            6 if len > HEADER_LEN + 1 => {
                let at = rng.random_range(HEADER_LEN..len - 1);
                let ptr = bad_pointer(rng, at, len);
                p[at..at + 2].copy_from_slice(&ptr);
            }
            // A label length over 63 (or any length byte).
            7 if len > HEADER_LEN => {
                let at = rng.random_range(HEADER_LEN..len);
                p[at] = rng.random_range(64..=255);
            }
            // Bytes inserted.
            8 => {
                let at = rng.random_range(0..=len);
                let n = rng.random_range(1..16);
                let bytes = random_bytes(rng, n);
                p.splice(at..at, bytes);
            }
            // A range removed.
            9 if len > 0 => {
                let a = rng.random_range(0..len);
                let b = rng.random_range(a..=len);
                p.drain(a..b);
            }
            // A part of the message repeated at its end (a second OPT, say).
            10 if len > 0 => {
                let a = rng.random_range(0..len);
                let b = rng.random_range(a..=len);
                p.extend_from_within(a..b);
            }
            // Random flags, QR mostly clear so the message goes deep.
            11 if len >= 4 => {
                let f: u16 = rng.random::<u16>() & if rng.random_bool(0.9) { !QR } else { !0 };
                p[2..4].copy_from_slice(&f.to_be_bytes());
            }
            // Labels added in front of the name until it is over 255 bytes.
            12 if len >= HEADER_LEN => {
                let n = rng.random_range(1..=8);
                for _ in 0..n {
                    let mut label = vec![63u8];
                    label.extend(std::iter::repeat_n(b'x', 63));
                    p.splice(HEADER_LEN..HEADER_LEN, label);
                }
            }
            // Random length: the message cut or padded to any size.
            _ => {
                let n = rng.random_range(0..600);
                p.resize(n, rng.random());
            }
        }
    }
}

/// Messages that are wrong in ways worth keeping as fixed cases.
fn crafted() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let base = Query::new("printer.office.test", rtype::A)
        .edns(1232)
        .bytes();
    let q_end = base.len() - 11;
    // A pointer in the question, at itself and forward.
    for target in [12u16, 13, 40, 0x3FFF] {
        let mut p = base.clone();
        p[12..14].copy_from_slice(&(0xC000 | target).to_be_bytes());
        out.push(p);
    }
    // The OPT's owner a pointer at itself / forward, and past the end.
    for target in [q_end as u16, q_end as u16 + 2, 0x3FFF] {
        let mut p = base.clone();
        p.splice(q_end..q_end + 1, (0xC000 | target).to_be_bytes());
        out.push(p);
    }
    // A label of 64 bytes.
    let mut q = Query::new("printer.office.test", rtype::A);
    q.labels[0] = vec![b'a'; 64];
    out.push(q.bytes());
    // Names of 256 and more bytes.
    for extra in [1usize, 2, 200] {
        let mut q = Query::new("", rtype::A);
        let mut wire_len = 1;
        while wire_len < 255 + extra {
            let len = (255 + extra - wire_len - 1).clamp(1, 63);
            q.labels.push(vec![b'b'; len]);
            wire_len += len + 1;
        }
        out.push(q.bytes());
    }
    // 128 one-byte labels (257 bytes).
    let mut q = Query::new("", rtype::A);
    q.labels = vec![b"a".to_vec(); 128];
    out.push(q.bytes());
    // Two OPTs; an OPT not at the root; an OPT whose length runs past the end.
    let mut p = base.clone();
    p.extend_from_slice(&base[q_end..]);
    p[11] = 2;
    out.push(p);
    let mut p = base.clone();
    p.splice(q_end..q_end + 1, [1, b'x', 0]);
    out.push(p);
    let mut p = base.clone();
    let n = p.len();
    p[n - 2..].copy_from_slice(&[0xFF, 0xFF]);
    out.push(p);
    // Counts that promise far more than there is, with NOTIFY and IXFR (which may carry
    // records).
    for (opcode, qtype) in [(0u16, rtype::A), (4, rtype::SOA), (0, rtype::IXFR)] {
        let mut q = Query::new("office.test", qtype);
        q.flags |= opcode << 11;
        let mut p = q.bytes();
        for field in [6, 8, 10] {
            p[field..field + 2].copy_from_slice(&0xFFFFu16.to_be_bytes());
        }
        out.push(p);
        // The same with one record whose owner points forward.
        let mut p = q.bytes();
        p[7] = 1;
        let at = p.len();
        p.extend_from_slice(&[0xC0, at as u8 + 2, 0, 6, 0, 1, 0, 0, 0, 0, 0, 0]);
        out.push(p);
    }
    // Header only, and shorter.
    out.push(base[..HEADER_LEN].to_vec());
    out.push(base[..HEADER_LEN - 1].to_vec());
    out.push(Vec::new());
    out
}

#[test]
fn mutated_and_random_messages_never_panic() {
    let views = [view(false), view(true)];
    let clients = clients();
    let transports = [Transport::Udp, Transport::Tcp];
    for packet in crafted() {
        for view in &views {
            for &client in &clients {
                for transport in transports {
                    run(view, &packet, client, transport);
                }
            }
        }
    }
    let mut rng = StdRng::seed_from_u64(0xdead_beef);
    let mut replies = 0;
    for i in 0..24_000 {
        let mut packet = random_query(&mut rng).bytes();
        if i % 3 == 0 {
            // Records after the question, as NOTIFY and IXFR may have.
            let owner = bad_pointer(&mut rng, packet.len(), packet.len());
            packet.extend_from_slice(&owner);
            packet.extend_from_slice(&[0, 6, 0, 1, 0, 0, 0, 60, 0, 4, 1, 2, 3, 4]);
            packet[7] = rng.random_range(0..2);
            packet[9] = rng.random_range(0..2);
        }
        mutate(&mut rng, &mut packet);
        let view = &views[i % 2];
        let client = *clients.choose(&mut rng).unwrap();
        let transport = *transports.choose(&mut rng).unwrap();
        if let Action::Reply(_) = run(view, &packet, client, transport) {
            replies += 1;
        }
    }
    // Pure random bytes, half of them with QR clear so they are not dropped at once.
    for i in 0..16_000 {
        let n = if i % 4 == 0 {
            rng.random_range(0..HEADER_LEN + 2)
        } else {
            rng.random_range(0..700)
        };
        let mut packet = random_bytes(&mut rng, n);
        if i % 2 == 0 && n > 2 {
            packet[2] &= 0x7F;
        }
        if i % 4 == 1 && n >= HEADER_LEN {
            packet[4..6].copy_from_slice(&[0, 1]);
        }
        let view = &views[i % 2];
        let client = *clients.choose(&mut rng).unwrap();
        let transport = *transports.choose(&mut rng).unwrap();
        if let Action::Reply(_) = run(view, &packet, client, transport) {
            replies += 1;
        }
    }
    assert!(replies > 8_000, "{replies}");
}

// ------------------------------------------------------------------------ (c) responses

const UPSTREAM_Q: &str = "www.example.net";

fn response_header(b: &mut Builder, rcode: u16, counts: [u16; 3]) {
    Header {
        id: 7,
        flags: QR | RD | RA | rcode,
        qdcount: 1,
        ancount: counts[0],
        nscount: counts[1],
        arcount: counts[2],
    }
    .write(&mut b.buf);
}

fn soa(zone: &str) -> RData {
    RData::Soa {
        mname: wire::to_wire(&format!("ns.{zone}")),
        rname: wire::to_wire(&format!("h.{zone}")),
        serial: 1,
        refresh: 2,
        retry: 3,
        expire: 4,
        minimum: 300,
    }
}

/// Upstream responses of several shapes for `www.example.net`.
fn responses(rng: &mut StdRng) -> Vec<(u16, Vec<u8>)> {
    let name = wire::to_wire(UPSTREAM_Q);
    let mut out = Vec::new();
    // Addresses, OPT or not.
    for (qtype, opt) in [(rtype::A, true), (rtype::A, false), (rtype::AAAA, true)] {
        let mut b = Builder::with_question(&name, qtype, CLASS_IN);
        let n = rng.random_range(1..6);
        for i in 0..n {
            let data = if qtype == rtype::A {
                vec![192, 0, 2, i]
            } else {
                let mut a = vec![0x20, 0x01, 0x0d, 0xb8];
                a.extend([0; 11]);
                a.push(i);
                a
            };
            b.record(&name, qtype, 60 + u32::from(i), &RData::Bytes(data));
        }
        if opt {
            b.buf.extend_from_slice(&wire::opt_record(0));
        }
        response_header(&mut b, 0, [u16::from(n), 0, u16::from(opt)]);
        out.push((qtype, b.buf));
    }
    // A CNAME chain, compressed.
    let mut b = Builder::with_question(&name, rtype::A, CLASS_IN);
    let target = wire::to_wire("edge.cdn.example.net");
    b.record(&name, rtype::CNAME, 300, &RData::Name(target.clone()));
    b.record(&target, rtype::A, 20, &RData::Bytes(vec![192, 0, 2, 9]));
    b.buf.extend_from_slice(&wire::opt_record(0));
    response_header(&mut b, 0, [2, 0, 1]);
    out.push((rtype::A, b.buf));
    // NXDOMAIN and NODATA with the SOA.
    for (rcode, opt) in [(3u16, false), (0, true)] {
        let mut b = Builder::with_question(&name, rtype::A, CLASS_IN);
        b.record(
            &wire::to_wire("example.net"),
            rtype::SOA,
            900,
            &soa("example.net"),
        );
        if opt {
            b.buf.extend_from_slice(&wire::opt_record(0));
        }
        response_header(&mut b, rcode, [0, 1, u16::from(opt)]);
        out.push((rtype::A, b.buf));
    }
    // MX with additional addresses.
    let mut b = Builder::with_question(&name, rtype::MX, CLASS_IN);
    let mx = wire::to_wire("mx.example.net");
    b.record(&name, rtype::MX, 300, &RData::PrefName(10, mx.clone()));
    b.record(
        &wire::to_wire("example.net"),
        rtype::NS,
        300,
        &RData::Name(wire::to_wire("ns.example.net")),
    );
    b.record(&mx, rtype::A, 300, &RData::Bytes(vec![192, 0, 2, 25]));
    b.buf.extend_from_slice(&wire::opt_record(0));
    response_header(&mut b, 0, [1, 1, 2]);
    out.push((rtype::MX, b.buf));
    // SERVFAIL with nothing.
    let mut b = Builder::with_question(&name, rtype::A, CLASS_IN);
    response_header(&mut b, 2, [0, 0, 0]);
    out.push((rtype::A, b.buf));
    // Large: many TXT records (over the UDP limits once served).
    let mut b = Builder::with_question(&name, rtype::TXT, CLASS_IN);
    for i in 0..12 {
        b.record(&name, rtype::TXT, 60, &RData::txt(&format!("{i:0>120}")));
    }
    b.buf.extend_from_slice(&wire::opt_record(0));
    response_header(&mut b, 0, [12, 0, 1]);
    out.push((rtype::TXT, b.buf));
    out
}

/// Responses whose OPT record is in the answer or authority section.
fn misplaced_opt() -> Vec<Vec<u8>> {
    let name = wire::to_wire(UPSTREAM_Q);
    let mut out = Vec::new();
    for (rcode, counts, with_a) in [
        (0u16, [1u16, 0, 0], false),
        (0, [2, 0, 0], true),
        (0, [0, 1, 0], false),
        (3, [0, 1, 0], false),
        (0, [1, 1, 0], true),
        (3, [0, 2, 0], true),
    ] {
        let mut b = Builder::with_question(&name, rtype::A, CLASS_IN);
        if with_a {
            b.record(&name, rtype::A, 60, &RData::Bytes(vec![192, 0, 2, 1]));
        }
        b.buf.extend_from_slice(&wire::opt_record(0));
        response_header(&mut b, rcode, counts);
        out.push(b.buf);
    }
    out
}

/// The client query that a response answers (same question), with EDNS or not.
fn query_for(response: &[u8], edns: bool) -> Option<Vec<u8>> {
    let q = question(response)?;
    let mut p = vec![0u8; HEADER_LEN];
    Header {
        id: 0x4242,
        flags: RD | CD,
        qdcount: 1,
        ancount: 0,
        nscount: 0,
        arcount: u16::from(edns),
    }
    .write(&mut p);
    p.extend_from_slice(q);
    if edns {
        p.extend_from_slice(&[0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0]);
    }
    Some(p)
}

/// Parses `response` as the forwarder does and, when usable, serves it to a client.
fn check_response(response: &[u8], strict: bool) -> bool {
    let now = Instant::now();
    let Ok(c) = Cached::from_response(response, now) else {
        return false;
    };
    let ctx = || format!("response {response:02x?}\ncached {c:?}");
    // Bodies written at any age, into any buffer.
    for age in [0u64, 1, 59, 86_400, 1 << 40] {
        let later = now + Duration::from_secs(age);
        let _ = c.remaining(later);
        let mut out = Vec::new();
        c.write_body(&mut out, later);
        assert_eq!(out.len(), c.body.len(), "{}", ctx());
        let mut out = vec![0u8; HEADER_LEN + 17];
        c.write_body(&mut out, later);
    }
    // Served to a client that asked the same question (forward.rs checks the question).
    for edns in [false, true] {
        let Some(packet) = query_for(response, edns) else {
            continue;
        };
        let Ok(req) = wire::parse_request(&packet) else {
            continue;
        };
        for transport in [Transport::Udp, Transport::Tcp] {
            let r = answer::forwarded_at(&req, &packet, Some(&c), transport, now);
            // The records of the upstream's body keep their structure.
            let (h, _, records) = wire::records(&r)
                .unwrap_or_else(|e| panic!("malformed forwarded reply: {e}\n{}", ctx()));
            assert_eq!(h.id, 0x4242);
            assert!(records.iter().filter(|r| r.rtype == rtype::OPT).count() <= 1);
            if transport == Transport::Udp {
                assert!(r.len() <= req.udp_limit(), "{}", ctx());
            }
            if strict {
                check_reply(&packet, &r, transport);
            }
        }
    }
    true
}

#[test]
fn upstream_responses_never_panic() {
    let mut rng = StdRng::seed_from_u64(0x5eed_cafe);
    let valid = responses(&mut rng);
    for (_, r) in &valid {
        assert!(check_response(r, true), "a valid response is usable");
    }
    for r in misplaced_opt() {
        assert!(
            Cached::from_response(&r, Instant::now()).is_err(),
            "an OPT record outside the additional section is refused: {r:02x?}"
        );
        check_response(&r, false);
    }
    // Found by the dns_response fuzz target: two answers, the second an OPT record.
    let fuzzed: &[u8] = &[
        0x00, 0x07, 0x81, 0x80, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
        0x00, 0x02, 0x00, 0xf6, 0xff, 0x50, 0x00, 0x07, 0x00, 0x04, 0x00, 0x00, 0x01, 0x2c, 0x00,
        0x00, 0x00, 0x00, 0x29, 0x01, 0x2c, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    assert!(Cached::from_response(fuzzed, Instant::now()).is_err());
    let mut usable = 0;
    for i in 0..30_000 {
        let (_, base) = valid.choose(&mut rng).unwrap();
        let mut r = base.clone();
        mutate(&mut rng, &mut r);
        if i % 5 == 0 && r.len() > 2 {
            r[2] |= 0x80;
        }
        if check_response(&r, false) {
            usable += 1;
        }
        // The raw record walk, on its own.
        let _ = wire::records(&r);
    }
    for _ in 0..10_000 {
        let n = rng.random_range(0..600);
        let r = random_bytes(&mut rng, n);
        check_response(&r, false);
    }
    assert!(usable > 1000, "{usable}");
}

// ------------------------------------------------------------------------ hickory cross-check

/// Asks `view` and parses the reply with hickory.
fn ask(view: &View, q: &Query, client: IpAddr, transport: Transport) -> (Vec<u8>, Message) {
    let packet = q.bytes();
    let Action::Reply(r) = run(view, &packet, client, transport) else {
        panic!("no reply to {q:?}");
    };
    let m = check_reply(&packet, &r, transport);
    assert_eq!(m.queries.len(), 1);
    assert_eq!(m.queries[0].query_type(), RecordType::from(q.qtype));
    (r, m)
}

fn text(n: &hickory_proto::rr::Name) -> String {
    n.to_ascii().trim_end_matches('.').to_ascii_lowercase()
}

/// The record data of `records` of type `rt`, in presentation-like form.
fn data(records: &[Record], rt: RecordType) -> Vec<String> {
    records
        .iter()
        .filter(|r| r.record_type() == rt)
        .map(|r| match &r.data {
            HRData::A(a) => a.0.to_string(),
            HRData::AAAA(a) => a.0.to_string(),
            HRData::CNAME(n) => text(&n.0),
            HRData::NS(n) => text(&n.0),
            HRData::PTR(n) => text(&n.0),
            HRData::MX(mx) => format!("{} {}", mx.preference, text(&mx.exchange)),
            HRData::SRV(s) => format!("{} {} {} {}", s.priority, s.weight, s.port, text(&s.target)),
            HRData::TXT(t) => t
                .txt_data
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect(),
            HRData::SOA(s) => format!(
                "{} {} {} {} {} {} {}",
                text(&s.mname),
                text(&s.rname),
                s.serial,
                s.refresh,
                s.retry,
                s.expire,
                s.minimum
            ),
            other => panic!("unexpected record {other:?}"),
        })
        .collect()
}

fn owners(records: &[Record]) -> Vec<String> {
    records.iter().map(|r| text(&r.name)).collect()
}

/// A question and what the reply must hold: rcode, answers of the asked type, addresses in
/// the additional section.
type Case = (
    &'static str,
    RecordType,
    ResponseCode,
    Vec<String>,
    Vec<String>,
);

#[test]
fn hickory_reads_what_the_config_says() {
    let v = view(false);
    let lan = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 50));
    let wan_client = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
    let soa = "officebox.office.test hostmaster.office.test 1 3600 600 604800 300";
    let both = vec![WAN.to_string(), LAN_ADDR.to_string()];

    // (name, type, rcode, answers of that type, additional A records)
    let cases: Vec<Case> = vec![
        (
            "office.test",
            RecordType::SOA,
            ResponseCode::NoError,
            vec![soa.into()],
            vec![],
        ),
        (
            "office.test",
            RecordType::NS,
            ResponseCode::NoError,
            vec!["officebox.office.test".into()],
            both.clone(),
        ),
        (
            "office.test",
            RecordType::MX,
            ResponseCode::NoError,
            vec!["10 smtp.office.test".into()],
            both.clone(),
        ),
        (
            "printer.office.test",
            RecordType::A,
            ResponseCode::NoError,
            vec!["192.168.1.20".into()],
            vec![],
        ),
        (
            "PRINTER.Office.Test",
            RecordType::A,
            ResponseCode::NoError,
            vec!["192.168.1.20".into()],
            vec![],
        ),
        (
            "printer.office.test",
            RecordType::AAAA,
            ResponseCode::NoError,
            vec!["2001:db8::20".into()],
            vec![],
        ),
        (
            "www.office.test",
            RecordType::A,
            ResponseCode::NoError,
            vec![WAN.to_string()],
            vec![],
        ),
        (
            "corp.office.test",
            RecordType::A,
            ResponseCode::NoError,
            vec![LAN_ADDR.to_string()],
            vec![],
        ),
        (
            "smtp.office.test",
            RecordType::A,
            ResponseCode::NoError,
            both.clone(),
            vec![],
        ),
        (
            "deep.sub.office.test",
            RecordType::A,
            ResponseCode::NoError,
            vec!["192.168.1.30".into()],
            vec![],
        ),
        (
            "info.office.test",
            RecordType::TXT,
            ResponseCode::NoError,
            vec!["v=spf1 mx -all".into()],
            vec![],
        ),
        (
            "_sip._udp.office.test",
            RecordType::SRV,
            ResponseCode::NoError,
            vec!["10 5 5060 printer.office.test".into()],
            vec!["192.168.1.20".into()],
        ),
        (
            "lists.office.test",
            RecordType::MX,
            ResponseCode::NoError,
            vec!["20 printer.office.test".into()],
            vec!["192.168.1.20".into()],
        ),
        (
            "20.1.168.192.in-addr.arpa",
            RecordType::PTR,
            ResponseCode::NoError,
            vec!["printer.office.test".into()],
            vec![],
        ),
        (
            "1.1.168.192.in-addr.arpa",
            RecordType::PTR,
            ResponseCode::NoError,
            vec!["officebox.office.test".into()],
            vec![],
        ),
        (
            "1.168.192.in-addr.arpa",
            RecordType::SOA,
            ResponseCode::NoError,
            vec![soa.into()],
            vec![],
        ),
        (
            "files.office.test",
            RecordType::CNAME,
            ResponseCode::NoError,
            vec!["printer.office.test".into()],
            vec![],
        ),
    ];
    for (name, rt, rcode, want, additional) in cases {
        let q = Query::new(name, u16::from(rt));
        let (_, m) = ask(&v, &q, lan, Transport::Udp);
        let what = format!("{name} {rt}");
        assert_eq!(m.metadata.response_code, rcode, "{what}");
        assert!(m.metadata.authoritative, "{what}");
        assert!(!m.metadata.truncation, "{what}");
        assert_eq!(m.answers.len(), want.len(), "{what}: {:?}", m.answers);
        let mut got = data(&m.answers, rt);
        got.sort();
        let mut want = want;
        want.sort();
        assert_eq!(got, want, "{what}");
        assert!(
            owners(&m.answers)
                .iter()
                .all(|o| *o == name.to_ascii_lowercase()),
            "{what}"
        );
        let mut extra = data(&m.additionals, RecordType::A);
        extra.sort();
        let mut additional = additional;
        additional.sort();
        assert_eq!(extra, additional, "{what}");
        assert!(m.authorities.is_empty(), "{what}");
    }

    // Through the alias: the CNAME, then the target's address.
    let (_, m) = ask(
        &v,
        &Query::new("files.office.test", rtype::A),
        lan,
        Transport::Udp,
    );
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.answers.len(), 2);
    assert_eq!(
        data(&m.answers, RecordType::CNAME),
        vec!["printer.office.test"]
    );
    assert_eq!(data(&m.answers, RecordType::A), vec!["192.168.1.20"]);
    assert_eq!(
        owners(&m.answers),
        vec!["files.office.test", "printer.office.test"]
    );
    // An alias out of the zone: the CNAME alone.
    let (_, m) = ask(
        &v,
        &Query::new("elsewhere.office.test", rtype::A),
        lan,
        Transport::Udp,
    );
    assert_eq!(data(&m.answers, RecordType::CNAME), vec!["www.example.net"]);
    assert_eq!(m.answers.len(), 1);

    // Negative answers: the SOA in authority, with the negative TTL.
    for (name, rt, rcode) in [
        ("nothing.office.test", rtype::A, ResponseCode::NXDomain),
        ("x.deep.sub.office.test", rtype::A, ResponseCode::NXDomain),
        (
            "99.1.168.192.in-addr.arpa",
            rtype::PTR,
            ResponseCode::NXDomain,
        ),
        ("printer.office.test", rtype::MX, ResponseCode::NoError),
        ("sub.office.test", rtype::A, ResponseCode::NoError),
        ("www.office.test", rtype::AAAA, ResponseCode::NoError),
        ("office.test", rtype::A, ResponseCode::NoError),
    ] {
        let (_, m) = ask(&v, &Query::new(name, rt), lan, Transport::Udp);
        assert_eq!(m.metadata.response_code, rcode, "{name} {rt}");
        assert!(m.metadata.authoritative, "{name} {rt}");
        assert!(m.answers.is_empty(), "{name} {rt}");
        assert_eq!(m.authorities.len(), 1, "{name} {rt}");
        assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
        assert!(m.authorities[0].ttl <= 300);
        let apex = if name.ends_with("arpa") {
            "1.168.192.in-addr.arpa"
        } else {
            "office.test"
        };
        assert_eq!(text(&m.authorities[0].name), apex);
        assert_eq!(data(&m.authorities, RecordType::SOA), vec![soa]);
    }

    // ANY: one RRset (RFC 8482).
    let (_, m) = ask(
        &v,
        &Query::new("printer.office.test", rtype::ANY),
        lan,
        Transport::Udp,
    );
    assert_eq!(data(&m.answers, RecordType::A), vec!["192.168.1.20"]);
    assert_eq!(m.answers.len(), 1);

    // The big TXT: truncated over UDP, whole over TCP, EDNS or not.
    for q in [
        Query::new("big.office.test", rtype::TXT),
        Query::new("big.office.test", rtype::TXT).edns(4096),
    ] {
        let (r, m) = ask(&v, &q, lan, Transport::Udp);
        assert!(m.metadata.truncation);
        assert!(m.metadata.authoritative);
        assert!(m.answers.is_empty());
        assert!(r.len() <= 512);
        assert_eq!(m.edns.is_some(), q.edns.is_some());
        let (_, m) = ask(&v, &q, lan, Transport::Tcp);
        assert!(!m.metadata.truncation);
        assert_eq!(data(&m.answers, RecordType::TXT), vec![big_text()]);
    }

    // EDNS: our OPT comes back with our payload size; an unknown version is BADVERS.
    let (_, m) = ask(
        &v,
        &Query::new("printer.office.test", rtype::A).edns(4096),
        lan,
        Transport::Udp,
    );
    let edns = m.edns.as_ref().expect("an OPT in the reply");
    assert_eq!(edns.max_payload(), wire::OUR_UDP_PAYLOAD);
    assert_eq!(data(&m.answers, RecordType::A), vec!["192.168.1.20"]);
    let mut q = Query::new("printer.office.test", rtype::A);
    q.edns = Some((1232, 0, 1, 0, Vec::new()));
    let (_, m) = ask(&v, &q, lan, Transport::Udp);
    // BADVERS and BADSIG share the number 16; hickory names it BADSIG.
    assert_eq!(u16::from(m.metadata.response_code), 16);
    assert!(m.answers.is_empty());

    // Policy answers.
    let mut q = Query::new("version.bind", rtype::TXT);
    q.qclass = CLASS_CH;
    let (_, m) = ask(&v, &q, lan, Transport::Udp);
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    let (_, m) = ask(
        &v,
        &Query::new("www.example.net", rtype::A),
        wan_client,
        Transport::Udp,
    );
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(!m.metadata.recursion_available);
    let (_, m) = ask(
        &v,
        &Query::new("www.example.net", rtype::A),
        lan,
        Transport::Udp,
    );
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.metadata.authoritative);
    let (_, m) = ask(
        &v,
        &Query::new("office.test", rtype::AXFR),
        lan,
        Transport::Udp,
    );
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    let mut q = Query::new("office.test", rtype::SOA);
    q.flags |= 2 << 11;
    let (_, m) = ask(&v, &q, lan, Transport::Udp);
    assert_eq!(m.metadata.response_code, ResponseCode::NotImp);

    // The WAN gets the zone too, without recursion.
    let (_, m) = ask(
        &v,
        &Query::new("www.office.test", rtype::A),
        wan_client,
        Transport::Udp,
    );
    assert_eq!(data(&m.answers, RecordType::A), vec![WAN.to_string()]);
    assert!(m.metadata.authoritative);
    assert!(!m.metadata.recursion_available);
    let _ = TC;
}
