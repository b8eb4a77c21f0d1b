//! DNS wire format (RFC 1035, RFC 6891): exactly what officebox needs, written for the hot
//! path. Requests are parsed in place; responses are the client's own header and question
//! followed by a pre-encoded body, so answering a known name is a lookup and a copy.
//!
//! Every reader checks bounds and returns [`WireError`]; nothing here panics on input.
//!
//! [`exchange`] asks a server one question (UDP, then TCP when truncated), with the
//! checks against forged answers, for the DNS forwarder and the mail resolver alike.

#![cfg_attr(not(test), warn(clippy::string_slice, clippy::indexing_slicing))]

pub mod exchange;

use std::ops::Range;

pub const HEADER_LEN: usize = 12;
/// Largest name in wire form (RFC 1035 section 3.1).
pub const MAX_NAME: usize = 255;
/// The UDP payload we advertise and never exceed (the DNS flag day 2020 value).
pub const OUR_UDP_PAYLOAD: u16 = 1232;

pub const QR: u16 = 0x8000;
pub const AA: u16 = 0x0400;
pub const TC: u16 = 0x0200;
pub const RD: u16 = 0x0100;
pub const RA: u16 = 0x0080;
pub const AD: u16 = 0x0020;
pub const CD: u16 = 0x0010;

/// Record types officebox serves or looks at.
pub mod rtype {
    pub const A: u16 = 1;
    pub const NS: u16 = 2;
    pub const CNAME: u16 = 5;
    pub const SOA: u16 = 6;
    pub const PTR: u16 = 12;
    pub const HINFO: u16 = 13;
    pub const MX: u16 = 15;
    pub const TXT: u16 = 16;
    pub const AAAA: u16 = 28;
    pub const SRV: u16 = 33;
    pub const OPT: u16 = 41;
    pub const IXFR: u16 = 251;
    pub const AXFR: u16 = 252;
    pub const ANY: u16 = 255;
}

pub const CLASS_IN: u16 = 1;
pub const CLASS_CH: u16 = 3;

/// Response codes (the low four bits; BADVERS needs the EDNS extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode {
    NoError = 0,
    FormErr = 1,
    ServFail = 2,
    NxDomain = 3,
    NotImp = 4,
    Refused = 5,
    NotAuth = 9,
    BadVers = 16,
}

/// Opcodes we handle.
pub const OPCODE_QUERY: u8 = 0;
pub const OPCODE_NOTIFY: u8 = 4;

/// Why bytes are not a usable DNS message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("message shorter than a DNS header")]
    NoHeader,
    #[error("message ends inside a record or name")]
    Truncated,
    #[error("bad label or compression pointer")]
    BadName,
    #[error("name longer than 255 bytes")]
    NameTooLong,
    #[error("a query must ask exactly one question")]
    QuestionCount,
    #[error("a query must not carry answers or authority records")]
    UnexpectedRecords,
    #[error("more than one OPT record, or an OPT record not at the root")]
    BadOpt,
    #[error("bytes after the last record")]
    TrailingBytes,
    #[error("the message is a response, not a query")]
    NotAQuery,
}

/// The `N` bytes at `at`, or [`WireError::Truncated`] where the message ends before.
fn bytes_at<const N: usize>(p: &[u8], at: usize) -> Result<[u8; N], WireError> {
    p.get(at..at.saturating_add(N))
        .and_then(|b| <[u8; N]>::try_from(b).ok())
        .ok_or(WireError::Truncated)
}

/// The big-endian `u16` at `at`.
pub fn u16_at(p: &[u8], at: usize) -> Result<u16, WireError> {
    bytes_at(p, at).map(u16::from_be_bytes)
}

/// The big-endian `u32` at `at`.
pub fn u32_at(p: &[u8], at: usize) -> Result<u32, WireError> {
    bytes_at(p, at).map(u32::from_be_bytes)
}

/// The fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub id: u16,
    pub flags: u16,
    pub qdcount: u16,
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
}

impl Header {
    pub fn parse(p: &[u8]) -> Result<Header, WireError> {
        if p.len() < HEADER_LEN {
            return Err(WireError::NoHeader);
        }
        Ok(Header {
            id: u16_at(p, 0)?,
            flags: u16_at(p, 2)?,
            qdcount: u16_at(p, 4)?,
            ancount: u16_at(p, 6)?,
            nscount: u16_at(p, 8)?,
            arcount: u16_at(p, 10)?,
        })
    }

    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0xF) as u8
    }

    pub fn rcode(&self) -> u8 {
        (self.flags & 0xF) as u8
    }

    /// Writes the header over the first [`HEADER_LEN`] bytes of `out` (nothing when
    /// `out` is shorter).
    pub fn write(&self, out: &mut [u8]) {
        let Some(head) = out.get_mut(..HEADER_LEN) else {
            return;
        };
        let fields = [
            self.id,
            self.flags,
            self.qdcount,
            self.ancount,
            self.nscount,
            self.arcount,
        ];
        for (slot, field) in head.chunks_exact_mut(2).zip(fields) {
            slot.copy_from_slice(&field.to_be_bytes());
        }
    }
}

/// Reads an uncompressed name at `at` into `key` as lowercase wire bytes; returns the offset
/// after it. Questions are never compressed (nothing precedes them to point at).
fn read_plain_name(p: &[u8], mut at: usize, key: &mut NameBuf) -> Result<usize, WireError> {
    key.len = 0;
    loop {
        let len = usize::from(*p.get(at).ok_or(WireError::Truncated)?);
        if len & 0xC0 != 0 {
            return Err(WireError::BadName);
        }
        let end = at + 1 + len;
        let label = p.get(at..end).ok_or(WireError::Truncated)?;
        let dest = key
            .bytes
            .get_mut(key.len..key.len + label.len())
            .ok_or(WireError::NameTooLong)?;
        // The length byte as it is (below 64, so no letter), the label's letters lowercased.
        for (d, b) in dest.iter_mut().zip(label) {
            *d = b.to_ascii_lowercase();
        }
        key.len += label.len();
        at = end;
        if len == 0 {
            return Ok(at);
        }
    }
}

/// A name in lowercase wire form, on the stack.
#[derive(Clone, Copy)]
pub struct NameBuf {
    bytes: [u8; MAX_NAME],
    len: usize,
}

impl Default for NameBuf {
    fn default() -> Self {
        NameBuf {
            bytes: [0; MAX_NAME],
            len: 0,
        }
    }
}

impl std::fmt::Debug for NameBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", to_text(self.as_bytes()))
    }
}

impl NameBuf {
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }
}

/// The EDNS(0) options of a request (RFC 6891).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    pub udp_payload: u16,
    pub version: u8,
    pub dnssec_ok: bool,
}

/// A parsed request: one question, maybe EDNS.
#[derive(Debug, Clone)]
pub struct Request {
    pub header: Header,
    /// The question's name, lowercase wire form.
    pub qname: NameBuf,
    pub qtype: u16,
    pub qclass: u16,
    /// The question as the client sent it (name, type, class), for copying into the answer.
    pub question: Range<usize>,
    pub edns: Option<Edns>,
}

impl Request {
    /// The largest response the client accepts over UDP.
    pub fn udp_limit(&self) -> usize {
        match self.edns {
            Some(e) => usize::from(e.udp_payload.clamp(512, OUR_UDP_PAYLOAD)),
            None => 512,
        }
    }
}

/// Parses a query. An error after the header still leaves the id readable, so the caller
/// can answer FORMERR ([`Header::parse`] tells whether there is a header at all).
pub fn parse_request(p: &[u8]) -> Result<Request, WireError> {
    let header = Header::parse(p)?;
    if header.flags & QR != 0 {
        return Err(WireError::NotAQuery);
    }
    if header.qdcount != 1 {
        return Err(WireError::QuestionCount);
    }
    // NOTIFY (RFC 1996) may carry the new SOA in the answer section.
    if header.ancount != 0 && header.opcode() != OPCODE_NOTIFY {
        return Err(WireError::UnexpectedRecords);
    }
    let mut qname = NameBuf::default();
    let after_name = read_plain_name(p, HEADER_LEN, &mut qname)?;
    let qtype = u16_at(p, after_name)?;
    let qclass = u16_at(p, after_name + 2)?;
    // IXFR (RFC 1995 section 3) carries the client's SOA in the authority section.
    if header.nscount != 0 && qtype != rtype::IXFR {
        return Err(WireError::UnexpectedRecords);
    }
    let question = HEADER_LEN..after_name + 4;
    let mut at = question.end;
    for _ in 0..u32::from(header.ancount) + u32::from(header.nscount) {
        at = skip_record(p, at)?;
    }
    let mut edns = None;
    for _ in 0..header.arcount {
        let start = at;
        let name_end = skip_name(p, at)?;
        let rtype = u16_at(p, name_end)?;
        at = skip_record(p, start)?;
        if rtype == rtype::OPT {
            if edns.is_some() || name_end != start + 1 || p.get(start) != Some(&0) {
                return Err(WireError::BadOpt);
            }
            let ttl = u32_at(p, name_end + 4)?;
            edns = Some(Edns {
                udp_payload: u16_at(p, name_end + 2)?,
                version: ((ttl >> 16) & 0xFF) as u8,
                dnssec_ok: ttl & 0x8000 != 0,
            });
        }
    }
    if at != p.len() {
        return Err(WireError::TrailingBytes);
    }
    Ok(Request {
        header,
        qname,
        qtype,
        qclass,
        question,
        edns,
    })
}

/// Returns the offset after the name at `at`, which may end in a compression pointer.
pub fn skip_name(p: &[u8], mut at: usize) -> Result<usize, WireError> {
    let mut total = 0usize;
    loop {
        let len = *p.get(at).ok_or(WireError::Truncated)?;
        match len & 0xC0 {
            0xC0 => {
                p.get(at + 1).ok_or(WireError::Truncated)?;
                return Ok(at + 2);
            }
            0x00 => {
                let len = usize::from(len);
                total += len + 1;
                if total > MAX_NAME {
                    return Err(WireError::NameTooLong);
                }
                at += 1 + len;
                if at > p.len() {
                    return Err(WireError::Truncated);
                }
                if len == 0 {
                    return Ok(at);
                }
            }
            _ => return Err(WireError::BadName),
        }
    }
}

/// Reads a possibly compressed name at `at` as lowercase wire bytes. Pointers must point
/// backwards, so loops are impossible.
pub fn read_name(p: &[u8], at: usize) -> Result<(Vec<u8>, usize), WireError> {
    let mut out = Vec::with_capacity(32);
    let mut pos = at;
    let mut end = None;
    loop {
        let len = *p.get(pos).ok_or(WireError::Truncated)?;
        match len & 0xC0 {
            0xC0 => {
                let target = usize::from(u16_at(p, pos)? & 0x3FFF);
                if target >= pos {
                    return Err(WireError::BadName);
                }
                end.get_or_insert(pos + 2);
                pos = target;
            }
            0x00 => {
                let len = usize::from(len);
                let label = p.get(pos..pos + 1 + len).ok_or(WireError::Truncated)?;
                if out.len() + label.len() > MAX_NAME {
                    return Err(WireError::NameTooLong);
                }
                // The length byte is below 64, so lowercasing leaves it as it is.
                out.extend(label.iter().map(u8::to_ascii_lowercase));
                pos += 1 + len;
                if len == 0 {
                    return Ok((out, end.unwrap_or(pos)));
                }
            }
            _ => return Err(WireError::BadName),
        }
    }
}

/// Returns the offset after the resource record at `at`.
pub fn skip_record(p: &[u8], at: usize) -> Result<usize, WireError> {
    let name_end = skip_name(p, at)?;
    let rdlen = usize::from(u16_at(p, name_end + 8)?);
    let end = name_end + 10 + rdlen;
    if end > p.len() {
        return Err(WireError::Truncated);
    }
    Ok(end)
}

/// Where one resource record sits in a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRef {
    pub start: usize,
    pub name_end: usize,
    pub rtype: u16,
    pub class: u16,
    pub ttl: u32,
    pub rdata: Range<usize>,
}

impl RecordRef {
    /// Offset of the TTL field.
    pub fn ttl_offset(&self) -> usize {
        self.name_end + 4
    }

    pub fn end(&self) -> usize {
        self.rdata.end
    }
}

/// The records of a response after its question, in order, with the counts of the answer,
/// authority and additional sections.
pub fn records(p: &[u8]) -> Result<(Header, usize, Vec<RecordRef>), WireError> {
    let h = Header::parse(p)?;
    let mut at = HEADER_LEN;
    for _ in 0..h.qdcount {
        at = skip_name(p, at)? + 4;
        if at > p.len() {
            return Err(WireError::Truncated);
        }
    }
    let question_end = at;
    let total = usize::from(h.ancount) + usize::from(h.nscount) + usize::from(h.arcount);
    // The counts come from the wire: never reserve more than the bytes can hold.
    let mut out = Vec::with_capacity(total.min(p.len() / 11));
    for _ in 0..total {
        let name_end = skip_name(p, at)?;
        let rdlen = usize::from(u16_at(p, name_end + 8)?);
        let rdata = name_end + 10..name_end + 10 + rdlen;
        if rdata.end > p.len() {
            return Err(WireError::Truncated);
        }
        out.push(RecordRef {
            start: at,
            name_end,
            rtype: u16_at(p, name_end)?,
            class: u16_at(p, name_end + 2)?,
            ttl: u32_at(p, name_end + 4)?,
            rdata: rdata.clone(),
        });
        at = rdata.end;
    }
    if at != p.len() {
        return Err(WireError::TrailingBytes);
    }
    Ok((h, question_end, out))
}

/// Converts `printer.example.com` (trailing dot optional) to lowercase wire form.
pub fn to_wire(name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        let label = label.as_bytes();
        let label = label.get(..63).unwrap_or(label);
        out.push(label.len() as u8);
        out.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    out.push(0);
    out
}

/// Converts wire form to text without the trailing dot (`.` for the root).
pub fn to_text(wire: &[u8]) -> String {
    let mut out = String::new();
    let mut at = 0;
    while let Some(&len) = wire.get(at) {
        let len = usize::from(len);
        if len == 0 {
            break;
        }
        if !out.is_empty() {
            out.push('.');
        }
        for &b in wire.get(at + 1..at + 1 + len).unwrap_or_default() {
            if b.is_ascii_graphic() && b != b'.' && b != b'\\' {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("\\{b:03}"));
            }
        }
        at += 1 + len;
    }
    if out.is_empty() { ".".into() } else { out }
}

/// Wire name `name` without its first label (`b.example` for `a.b.example`); `None` for
/// the root or a name cut short.
pub fn parent(name: &[u8]) -> Option<&[u8]> {
    let (&len, tail) = name.split_first()?;
    if len == 0 {
        return None;
    }
    tail.get(usize::from(len)..)
}

/// Whether wire name `name` is `zone` or below it.
pub fn is_subdomain(name: &[u8], zone: &[u8]) -> bool {
    // Walk name's labels until the remainder is no longer than zone; it must then be zone.
    let mut rest = name;
    while rest.len() > zone.len() {
        let Some(up) = parent(rest) else {
            return false;
        };
        rest = up;
    }
    rest == zone
}

/// Builds messages, with name compression unless made with [`Builder::plain`].
#[derive(Debug)]
pub struct Builder {
    pub buf: Vec<u8>,
    /// Names already written: lowercase wire suffix -> offset.
    names: Vec<(Vec<u8>, u16)>,
    compress: bool,
}

impl Builder {
    /// A message with a header (to be filled in later) and one question.
    pub fn with_question(qname: &[u8], qtype: u16, qclass: u16) -> Builder {
        let mut b = Builder {
            buf: vec![0; HEADER_LEN],
            names: Vec::new(),
            compress: true,
        };
        b.name(qname);
        b.u16(qtype);
        b.u16(qclass);
        b
    }

    /// Records without compression: the bytes mean the same wherever they are placed.
    pub fn plain() -> Builder {
        Builder {
            buf: Vec::new(),
            names: Vec::new(),
            compress: false,
        }
    }

    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// Writes a (lowercase, wire form) name, compressed against names written before.
    pub fn name(&mut self, name: &[u8]) {
        if !self.compress {
            self.buf.extend_from_slice(name);
            return;
        }
        let mut suffix = name;
        while let Some(&len) = suffix.first()
            && len != 0
        {
            if let Some((_, off)) = self.names.iter().find(|(n, _)| n == suffix) {
                self.u16(0xC000 | off);
                return;
            }
            if let Ok(off) = u16::try_from(self.buf.len())
                && off < 0x3FFF
            {
                self.names.push((suffix.to_vec(), off));
            }
            let Some((label, rest)) = suffix.split_at_checked(1 + usize::from(len)) else {
                break;
            };
            self.buf.extend_from_slice(label);
            suffix = rest;
        }
        self.buf.push(0);
    }

    /// Writes one record: owner, type, class IN, ttl, and rdata from `rdata`.
    pub fn record(&mut self, owner: &[u8], rtype: u16, ttl: u32, rdata: &RData) {
        self.name(owner);
        self.u16(rtype);
        self.u16(CLASS_IN);
        self.u32(ttl);
        let len_at = self.buf.len();
        self.u16(0);
        match rdata {
            RData::Bytes(b) => self.buf.extend_from_slice(b),
            RData::Name(n) => self.name(n),
            RData::PrefName(pref, n) => {
                self.u16(*pref);
                self.name(n);
            }
            RData::Srv {
                priority,
                weight,
                port,
                target,
            } => {
                self.u16(*priority);
                self.u16(*weight);
                self.u16(*port);
                // RFC 2782: the target is not compressed.
                self.buf.extend_from_slice(target);
            }
            RData::Soa {
                mname,
                rname,
                serial,
                refresh,
                retry,
                expire,
                minimum,
            } => {
                self.name(mname);
                self.name(rname);
                for v in [serial, refresh, retry, expire, minimum] {
                    self.u32(*v);
                }
            }
        }
        let len = (self.buf.len() - len_at - 2) as u16;
        if let Some(slot) = self.buf.get_mut(len_at..len_at + 2) {
            slot.copy_from_slice(&len.to_be_bytes());
        }
    }
}

/// Record data to encode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RData {
    /// Already in wire form (A, AAAA, TXT).
    Bytes(Vec<u8>),
    /// One name (CNAME, NS, PTR).
    Name(Vec<u8>),
    /// A preference and a name (MX).
    PrefName(u16, Vec<u8>),
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: Vec<u8>,
    },
    Soa {
        mname: Vec<u8>,
        rname: Vec<u8>,
        serial: u32,
        refresh: u32,
        retry: u32,
        expire: u32,
        minimum: u32,
    },
}

impl RData {
    /// TXT data: the text split into character-strings of at most 255 bytes.
    pub fn txt(text: &str) -> RData {
        let mut out = Vec::with_capacity(text.len() + 1);
        let bytes = text.as_bytes();
        if bytes.is_empty() {
            out.push(0);
        }
        for chunk in bytes.chunks(255) {
            out.push(chunk.len() as u8);
            out.extend_from_slice(chunk);
        }
        RData::Bytes(out)
    }
}

/// Our OPT record for a response: payload size, extended rcode high bits, version 0.
pub fn opt_record(extended_rcode: u8) -> [u8; 11] {
    let mut opt = [0u8; 11];
    opt[1..3].copy_from_slice(&rtype::OPT.to_be_bytes());
    opt[3..5].copy_from_slice(&OUR_UDP_PAYLOAD.to_be_bytes());
    opt[5] = extended_rcode;
    opt
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16, edns: bool) -> Vec<u8> {
        let mut b = Builder::with_question(&to_wire(name), qtype, CLASS_IN);
        let mut h = Header {
            id: 0xBEEF,
            flags: RD,
            qdcount: 1,
            ancount: 0,
            nscount: 0,
            arcount: 0,
        };
        if edns {
            b.buf
                .extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0x80, 0, 0, 0]);
            h.arcount = 1;
        }
        h.write(&mut b.buf);
        b.buf
    }

    #[test]
    fn parses_a_query_with_edns() {
        let mut q = query("WWW.Example.COM", rtype::A, true);
        let r = parse_request(&q).unwrap();
        assert_eq!(r.header.id, 0xBEEF);
        assert_eq!(r.qname.as_bytes(), to_wire("www.example.com").as_slice());
        assert_eq!((r.qtype, r.qclass), (rtype::A, CLASS_IN));
        assert_eq!(
            r.edns,
            Some(Edns {
                udp_payload: 4096,
                version: 0,
                dnssec_ok: true
            })
        );
        assert_eq!(r.udp_limit(), 1232);
        q.push(0);
        assert_eq!(parse_request(&q).unwrap_err(), WireError::TrailingBytes);
    }

    #[test]
    fn rejects_what_is_not_a_simple_query() {
        assert_eq!(parse_request(&[0; 5]).unwrap_err(), WireError::NoHeader);
        let mut q = query("a.b", rtype::A, false);
        q[5] = 2;
        assert_eq!(parse_request(&q).unwrap_err(), WireError::QuestionCount);
        let mut q = query("a.b", rtype::A, false);
        q[2] |= 0x80;
        assert_eq!(parse_request(&q).unwrap_err(), WireError::NotAQuery);
        let mut q = query("a.b", rtype::A, false);
        q.truncate(q.len() - 1);
        assert_eq!(parse_request(&q).unwrap_err(), WireError::Truncated);
        // A pointer in the question.
        let mut q = query("a.b", rtype::A, false);
        q[12] = 0xC0;
        assert_eq!(parse_request(&q).unwrap_err(), WireError::BadName);
        // Two OPT records.
        let mut q = query("a.b", rtype::A, true);
        q.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]);
        q[11] = 2;
        assert_eq!(parse_request(&q).unwrap_err(), WireError::BadOpt);
    }

    #[test]
    fn only_ixfr_may_carry_an_authority_section() {
        let with_soa = |qtype: u16| {
            let zone = to_wire("example.com");
            let mut b = Builder::with_question(&zone, qtype, CLASS_IN);
            b.record(
                &zone,
                rtype::SOA,
                60,
                &RData::Soa {
                    mname: to_wire("ns.example.com"),
                    rname: to_wire("h.example.com"),
                    serial: 7,
                    refresh: 1,
                    retry: 1,
                    expire: 1,
                    minimum: 1,
                },
            );
            Header {
                id: 1,
                flags: 0,
                qdcount: 1,
                ancount: 0,
                nscount: 1,
                arcount: 0,
            }
            .write(&mut b.buf);
            b.buf
        };
        let ixfr = parse_request(&with_soa(rtype::IXFR)).unwrap();
        assert_eq!(ixfr.qtype, rtype::IXFR);
        assert_eq!(
            parse_request(&with_soa(rtype::A)).unwrap_err(),
            WireError::UnexpectedRecords
        );
    }

    #[test]
    fn names_compress_and_read_back() {
        let mut b = Builder::with_question(&to_wire("www.example.com"), rtype::MX, CLASS_IN);
        b.record(
            &to_wire("www.example.com"),
            rtype::MX,
            60,
            &RData::PrefName(10, to_wire("mail.example.com")),
        );
        // The owner is a pointer to the question (offset 12).
        let q_end = 12 + 17 + 4;
        assert_eq!(&b.buf[q_end..q_end + 2], &[0xC0, 12]);
        let (name, end) = read_name(&b.buf, q_end + 2 + 10 + 2).unwrap();
        assert_eq!(to_text(&name), "mail.example.com");
        assert_eq!(end, b.buf.len());
    }

    #[test]
    fn forward_pointers_are_refused() {
        let p = [0u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xC0, 12];
        assert_eq!(read_name(&p, 12).unwrap_err(), WireError::BadName);
    }

    #[test]
    fn subdomains() {
        let zone = to_wire("example.com");
        assert!(is_subdomain(&to_wire("example.com"), &zone));
        assert!(is_subdomain(&to_wire("a.b.example.com"), &zone));
        assert!(!is_subdomain(&to_wire("badexample.com"), &zone));
        assert!(!is_subdomain(&to_wire("com"), &zone));
        assert!(is_subdomain(&to_wire("anything"), &to_wire(".")));
    }

    #[test]
    fn malformed_names_give_answers_not_panics() {
        assert_eq!(
            parent(&to_wire("a.example")),
            Some(to_wire("example").as_slice())
        );
        assert_eq!(parent(&[0]), None);
        // A label longer than what follows it.
        let cut = [5u8, b'a', b'b'];
        assert_eq!(parent(&cut), None);
        assert!(!is_subdomain(
            &[9, b'x', 3, b'c', b'o', b'm', 0],
            &to_wire("com")
        ));
        let mut b = Builder::plain();
        b.compress = true;
        b.name(&cut);
        assert_eq!(b.buf, [0], "a cut label is not copied");
        let mut short = [0u8; 4];
        Header::parse(&[0; 12]).unwrap().write(&mut short);
        assert_eq!(
            short, [0; 4],
            "no header is written into too small a buffer"
        );
        assert_eq!(u16_at(&[1, 2], 1), Err(WireError::Truncated));
        assert_eq!(u32_at(&[0, 0, 1, 2], 0), Ok(258));
    }

    #[test]
    fn text_roundtrip() {
        assert_eq!(
            to_text(&to_wire("Printer.Example.COM.")),
            "printer.example.com"
        );
        assert_eq!(to_text(&[0]), ".");
    }
}
