//! The request pipeline: one parsed query in, one action out (reply now, ask upstream,
//! or drop). Pure over a [`View`] of the current zone and policy, so it is the same for UDP
//! and TCP and is what the fuzz target drives.

use std::net::IpAddr;
use std::time::Instant;

use officebox_config::Network;
use officebox_config::derive::{ClientZone, client_zone, recursion_allowed};

use crate::cache::Cached;
use crate::forward::ForwardError;
use crate::wire::{
    self, AA, CD, CLASS_CH, CLASS_IN, HEADER_LEN, Header, OPCODE_QUERY, QR, RA, RD, Rcode, Request,
    TC, WireError, rtype,
};
use crate::zone::{Lookup, Zone};

/// Everything a query is answered from; swapped whole on every change.
#[derive(Debug)]
pub struct View {
    pub zone: Zone,
    pub network: Network,
    /// Forward what the zone does not know (else: authoritative NXDOMAIN for it).
    pub use_upstream: bool,
    /// Secondaries allowed to transfer the zone.
    pub secondaries: Vec<IpAddr>,
    /// The other sites' zones (wire form): asked of their boxes, for the office's own
    /// clients, whatever `use_upstream` says.
    pub sites: Vec<Vec<u8>>,
}

/// What to do with one message.
#[derive(Debug)]
pub enum Action {
    Reply(Vec<u8>),
    /// Ask the upstream servers, then answer with [`forwarded`].
    Forward(Request),
    /// A zone transfer (TCP only).
    Transfer(Request),
    Drop,
}

/// Over which transport the query came, which bounds the answer's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// Decides what to do with the message `packet` from `client`.
pub fn handle(view: &View, packet: &[u8], client: IpAddr, transport: Transport) -> Action {
    let Ok(header) = Header::parse(packet) else {
        return Action::Drop;
    };
    if header.flags & QR != 0 {
        // Responses are never answered (no reflection loops).
        return Action::Drop;
    }
    let req = match wire::parse_request(packet) {
        Ok(r) => r,
        Err(WireError::NotAQuery) => return Action::Drop,
        Err(_) => return Action::Reply(error_reply(&header, Rcode::FormErr)),
    };
    let zone = client_zone(&view.network, client);
    let recursion = recursion_allowed(zone) && view.use_upstream;
    let ra = if recursion { RA } else { 0 };
    if req.header.opcode() != OPCODE_QUERY {
        return Action::Reply(reply(
            &req,
            packet,
            Rcode::NotImp,
            0,
            &[0; 3],
            &[],
            transport,
        ));
    }
    if let Some(e) = req.edns
        && e.version != 0
    {
        return Action::Reply(reply(
            &req,
            packet,
            Rcode::BadVers,
            ra,
            &[0; 3],
            &[],
            transport,
        ));
    }
    if req.qclass == CLASS_CH {
        // version.bind and friends: nothing to tell.
        return Action::Reply(reply(
            &req,
            packet,
            Rcode::Refused,
            ra,
            &[0; 3],
            &[],
            transport,
        ));
    }
    if req.qclass != CLASS_IN {
        return Action::Reply(reply(
            &req,
            packet,
            Rcode::NotImp,
            ra,
            &[0; 3],
            &[],
            transport,
        ));
    }
    if matches!(req.qtype, rtype::AXFR | rtype::IXFR) {
        return match transport {
            Transport::Tcp if view.zone.is_ours(req.qname.as_bytes()) => Action::Transfer(req),
            Transport::Tcp => Action::Reply(reply(
                &req,
                packet,
                Rcode::NotAuth,
                ra,
                &[0; 3],
                &[],
                transport,
            )),
            // Transfers need TCP (RFC 5936 section 4.2).
            Transport::Udp => Action::Reply(reply(
                &req,
                packet,
                Rcode::FormErr,
                ra,
                &[0; 3],
                &[],
                transport,
            )),
        };
    }
    if zone != ClientZone::Wan
        && view
            .sites
            .iter()
            .any(|s| wire::is_subdomain(req.qname.as_bytes(), s))
    {
        // Another office's name (it may lie inside our own domain): its box answers.
        return Action::Forward(req);
    }
    let answer = match view.zone.lookup(req.qname.as_bytes(), req.qtype) {
        Lookup::Found(a) | Lookup::NoData(a) | Lookup::NxDomain(a) => a,
        Lookup::NotOurs if zone == ClientZone::Wan => {
            // Never an open resolver: the WAN gets our zone and nothing else.
            return Action::Reply(reply(
                &req,
                packet,
                Rcode::Refused,
                0,
                &[0; 3],
                &[],
                transport,
            ));
        }
        Lookup::NotOurs if !view.use_upstream => {
            // Stand-alone: whatever we do not know does not exist, said with authority.
            return Action::Reply(reply(
                &req,
                packet,
                Rcode::NxDomain,
                AA,
                &[0; 3],
                &[],
                transport,
            ));
        }
        Lookup::NotOurs => return Action::Forward(req),
    };
    Action::Reply(reply(
        &req,
        packet,
        answer.rcode,
        AA | ra,
        &answer.counts,
        &answer.body,
        transport,
    ))
}

/// The answer to a forwarded question, from an upstream answer (or SERVFAIL without one).
pub fn forwarded(
    req: &Request,
    packet: &[u8],
    answer: Result<&Cached, &ForwardError>,
    transport: Transport,
) -> Vec<u8> {
    forwarded_at(req, packet, answer.ok(), transport, Instant::now())
}

/// [`forwarded`], with the clock already read.
pub fn forwarded_at(
    req: &Request,
    packet: &[u8],
    answer: Option<&Cached>,
    transport: Transport,
    now: Instant,
) -> Vec<u8> {
    let Some(c) = answer else {
        return reply(req, packet, Rcode::ServFail, RA, &[0; 3], &[], transport);
    };
    let rcode = if c.rcode == 3 {
        Rcode::NxDomain
    } else {
        Rcode::NoError
    };
    let mut out = start(req, packet, rcode, RA, &c.counts, c.body.len());
    c.write_body(&mut out, now);
    finish(req, packet, out, rcode, transport)
}

/// A FORMERR-style answer to a message we could not parse beyond its header.
fn error_reply(h: &Header, rcode: Rcode) -> Vec<u8> {
    let mut out = vec![0u8; HEADER_LEN];
    Header {
        id: h.id,
        flags: QR | (h.flags & (0xF << 11)) | (h.flags & RD) | rcode as u16,
        qdcount: 0,
        ancount: 0,
        nscount: 0,
        arcount: 0,
    }
    .write(&mut out);
    out
}

/// Header and question of a response, with room for a body of `body_len` bytes.
fn start(
    req: &Request,
    packet: &[u8],
    rcode: Rcode,
    flags: u16,
    counts: &[u16; 3],
    body_len: usize,
) -> Vec<u8> {
    let question = packet.get(req.question.clone()).unwrap_or_default();
    let mut out = Vec::with_capacity(HEADER_LEN + question.len() + body_len + 11);
    out.resize(HEADER_LEN, 0);
    let opcode_bits = req.header.flags & (0xF << 11);
    Header {
        id: req.header.id,
        flags: QR | opcode_bits | flags | (req.header.flags & (RD | CD)) | (rcode as u16 & 0xF),
        qdcount: 1,
        ancount: counts[0],
        nscount: counts[1],
        arcount: counts[2] + u16::from(req.edns.is_some()),
    }
    .write(&mut out);
    out.extend_from_slice(question);
    out
}

/// Appends our OPT when the client sent one, and truncates what does not fit over UDP.
fn finish(
    req: &Request,
    packet: &[u8],
    mut out: Vec<u8>,
    rcode: Rcode,
    transport: Transport,
) -> Vec<u8> {
    let ext = (rcode as u16 >> 4) as u8;
    if req.edns.is_some() {
        out.extend_from_slice(&wire::opt_record(ext));
    }
    let limit = match transport {
        Transport::Udp => req.udp_limit(),
        Transport::Tcp => usize::from(u16::MAX),
    };
    if out.len() <= limit {
        return out;
    }
    // Too big: header and question with TC, so the client asks again over TCP.
    let mut t = start(req, packet, rcode, TC, &[0; 3], 0);
    if let Ok(mut h) = Header::parse(&t) {
        h.flags |= wire::u16_at(&out, 2).map_or(0, |f| f & (AA | RA));
        h.write(&mut t);
    }
    if req.edns.is_some() {
        t.extend_from_slice(&wire::opt_record(ext));
    }
    t
}

fn reply(
    req: &Request,
    packet: &[u8],
    rcode: Rcode,
    flags: u16,
    counts: &[u16; 3],
    body: &[u8],
    transport: Transport,
) -> Vec<u8> {
    let mut out = start(req, packet, rcode, flags, counts, body.len());
    out.extend_from_slice(body);
    finish(req, packet, out, rcode, transport)
}

/// One message of a zone transfer.
pub fn transfer_part(req: &Request, packet: &[u8], part: &crate::zone::Answer) -> Vec<u8> {
    reply(
        req,
        packet,
        part.rcode,
        AA,
        &part.counts,
        &part.body,
        Transport::Tcp,
    )
}

/// An empty answer with `rcode` (a refused or unsupported request).
pub fn refusal(req: &Request, packet: &[u8], rcode: Rcode) -> Vec<u8> {
    reply(req, packet, rcode, 0, &[0; 3], &[], Transport::Tcp)
}
