// TODO(lead): the shared DNS exchange replaces this file's parsing
#![allow(clippy::string_slice, clippy::indexing_slicing)]
//! Finding where a domain's mail goes (RFC 5321 section 5.1): its MX hosts by
//! preference, or the domain itself when it has none, then their addresses. A small stub
//! resolver over UDP (TCP when the answer is truncated) that asks the servers it is given
//! (the box's own DNS by default, so answers are cached and tests can point it at theirs),
//! parsing with officebox's DNS wire code (officebox-dnswire).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use officebox_dnswire::{
    self as wire, CLASS_IN, HEADER_LEN, Header, QR, RD, Rcode, TC, WireError, read_name, rtype,
};
use rand::Rng;
use rand::seq::SliceRandom;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// How long one server gets to answer one query.
const QUERY_TIMEOUT: Duration = Duration::from_secs(3);
/// Rounds over the server list.
const ROUNDS: usize = 2;
/// CNAME links followed before giving up.
const MAX_CHAIN: usize = 8;

/// Why a lookup has no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// The name does not exist: a permanent failure.
    #[error("{0}: no such domain")]
    NoSuchDomain(String),
    /// The domain says it takes no mail (null MX, RFC 7505): permanent.
    #[error("{0}: the domain accepts no mail (null MX)")]
    NullMx(String),
    /// Nothing usable now (timeouts, SERVFAIL, no servers): try later.
    #[error("{0}")]
    Temporary(String),
}

impl LookupError {
    pub fn is_permanent(&self) -> bool {
        !matches!(self, LookupError::Temporary(_))
    }
}

/// The records of one type a name has, after following CNAMEs.
#[derive(Debug, Default)]
struct Answer {
    nxdomain: bool,
    /// (preference, host) for MX; empty for other types.
    mx: Vec<(u16, String)>,
    addresses: Vec<IpAddr>,
}

/// A stub resolver asking `servers` in turn.
#[derive(Debug, Clone)]
pub struct Resolver {
    servers: Vec<SocketAddr>,
    /// What to say when there are no servers.
    none: &'static str,
}

impl Resolver {
    pub fn new(servers: Vec<SocketAddr>) -> Resolver {
        Resolver {
            servers,
            none: "no DNS server to look up mail hosts",
        }
    }

    /// The resolver the config gives mail (`derive::mail_resolvers`), saying why there is
    /// none when there is none.
    pub fn for_config(config: &officebox_config::Config) -> Resolver {
        Resolver {
            servers: officebox_config::derive::mail_resolvers(config),
            none: officebox_config::derive::no_mail_resolvers_reason(config),
        }
    }

    /// The mail hosts of `domain`, best first (equal preferences shuffled, RFC 5321
    /// section 5.1). A domain without MX records is its own mail host.
    pub async fn mail_hosts(&self, domain: &str) -> Result<Vec<String>, LookupError> {
        let answer = self.query(domain, rtype::MX).await?;
        if answer.nxdomain {
            return Err(LookupError::NoSuchDomain(domain.to_string()));
        }
        if answer.mx.is_empty() {
            return Ok(vec![domain.to_string()]);
        }
        if answer.mx.len() == 1 && answer.mx[0].1.is_empty() {
            return Err(LookupError::NullMx(domain.to_string()));
        }
        let mut mx: Vec<(u16, String)> = answer
            .mx
            .into_iter()
            .filter(|(_, h)| !h.is_empty())
            .collect();
        mx.shuffle(&mut rand::rng());
        mx.sort_by_key(|(pref, _)| *pref);
        Ok(mx.into_iter().map(|(_, h)| h).collect())
    }

    /// The addresses of `host`: IPv4 first, then IPv6.
    pub async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, LookupError> {
        if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse() {
            return Ok(vec![ip]);
        }
        let (a, aaaa) = tokio::join!(self.query(host, rtype::A), self.query(host, rtype::AAAA));
        let mut out = Vec::new();
        let mut error = None;
        for r in [a, aaaa] {
            match r {
                Ok(ans) if ans.nxdomain => {
                    return Err(LookupError::NoSuchDomain(host.to_string()));
                }
                Ok(ans) => out.extend(ans.addresses),
                Err(e) => error = Some(e),
            }
        }
        match (out.is_empty(), error) {
            (false, _) => Ok(out),
            (true, Some(e)) => Err(e),
            (true, None) => Err(LookupError::Temporary(format!("{host}: no address"))),
        }
    }

    async fn query(&self, name: &str, qtype: u16) -> Result<Answer, LookupError> {
        if self.servers.is_empty() {
            return Err(LookupError::Temporary(self.none.into()));
        }
        let mut last = String::new();
        for _ in 0..ROUNDS {
            for server in &self.servers {
                match exchange(*server, name, qtype).await {
                    Ok(packet) => match parse(&packet, name, qtype) {
                        Ok(Some(answer)) => return Ok(answer),
                        Ok(None) => last = format!("DNS {server}: server failure for {name}"),
                        Err(e) => last = format!("DNS {server}: bad answer for {name}: {e}"),
                    },
                    Err(e) => last = format!("DNS {server}: {e}"),
                }
            }
        }
        Err(LookupError::Temporary(last))
    }
}

fn query_packet(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut b = wire::Builder::with_question(&wire::to_wire(name), qtype, CLASS_IN);
    Header {
        id,
        flags: RD,
        qdcount: 1,
        ancount: 0,
        nscount: 0,
        arcount: 0,
    }
    .write(&mut b.buf);
    b.buf
}

/// One query to one server: UDP from a random port with a random ID, then TCP when the
/// answer is truncated.
async fn exchange(server: SocketAddr, name: &str, qtype: u16) -> io::Result<Vec<u8>> {
    let id: u16 = rand::rng().random();
    let query = query_packet(id, name, qtype);
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(server).await?;
    socket.send(&query).await?;
    let mut buf = vec![0u8; 4096];
    let answer = tokio::time::timeout(QUERY_TIMEOUT, async {
        loop {
            let n = socket.recv(&mut buf).await?;
            let packet = &buf[..n];
            // Only the answer to this question, from this server (connected), counts.
            if matches!(Header::parse(packet), Ok(h) if h.id == id && h.flags & QR != 0)
                && packet.get(HEADER_LEN..query.len()) == query.get(HEADER_LEN..)
            {
                return Ok::<_, io::Error>(packet.to_vec());
            }
        }
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer"))??;
    if matches!(Header::parse(&answer), Ok(h) if h.flags & TC != 0) {
        return tokio::time::timeout(QUERY_TIMEOUT, exchange_tcp(server, &query))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer over TCP"))?;
    }
    Ok(answer)
}

async fn exchange_tcp(server: SocketAddr, query: &[u8]) -> io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(server).await?;
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    stream.write_all(&framed).await?;
    let len = stream.read_u16().await?;
    let mut answer = vec![0u8; usize::from(len)];
    stream.read_exact(&mut answer).await?;
    if Header::parse(&answer).map(|h| h.id) != Header::parse(query).map(|h| h.id) {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "wrong ID"));
    }
    Ok(answer)
}

/// The records of `qtype` for `name` in `packet`, following CNAMEs inside it. `None`
/// for an answer that says nothing (SERVFAIL, REFUSED), so the next server is asked.
fn parse(packet: &[u8], name: &str, qtype: u16) -> Result<Option<Answer>, WireError> {
    let (header, _, records) = wire::records(packet)?;
    let rcode = header.rcode();
    if rcode == Rcode::NxDomain as u8 {
        return Ok(Some(Answer {
            nxdomain: true,
            ..Answer::default()
        }));
    }
    if rcode != Rcode::NoError as u8 {
        return Ok(None);
    }
    let answers = &records[..usize::from(header.ancount).min(records.len())];
    let mut owner = wire::to_wire(name);
    let mut out = Answer::default();
    for _ in 0..MAX_CHAIN {
        let mut next = None;
        for r in answers {
            if r.class != CLASS_IN || read_name(packet, r.start)?.0 != owner {
                continue;
            }
            let rdata = &packet[r.rdata.clone()];
            match r.rtype {
                rtype::CNAME if qtype != rtype::CNAME => {
                    next = Some(read_name(packet, r.rdata.start)?.0);
                }
                t if t == qtype && t == rtype::MX && rdata.len() >= 3 => {
                    let pref = u16::from_be_bytes([rdata[0], rdata[1]]);
                    let host = wire::to_text(&read_name(packet, r.rdata.start + 2)?.0);
                    out.mx
                        .push((pref, if host == "." { String::new() } else { host }));
                }
                t if t == qtype && t == rtype::A => {
                    if let Ok(b) = <[u8; 4]>::try_from(rdata) {
                        out.addresses.push(IpAddr::from(b));
                    }
                }
                t if t == qtype && t == rtype::AAAA => {
                    if let Ok(b) = <[u8; 16]>::try_from(rdata) {
                        out.addresses.push(IpAddr::from(b));
                    }
                }
                _ => {}
            }
        }
        match next {
            Some(target) if out.mx.is_empty() && out.addresses.is_empty() => owner = target,
            _ => break,
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use officebox_dnswire::{Builder, RData};

    fn response(qname: &str, qtype: u16, rcode: u16, records: &[(&str, u16, RData)]) -> Vec<u8> {
        let mut b = Builder::with_question(&wire::to_wire(qname), qtype, CLASS_IN);
        for (owner, t, data) in records {
            b.record(&wire::to_wire(owner), *t, 60, data);
        }
        Header {
            id: 7,
            flags: QR | RD | rcode,
            qdcount: 1,
            ancount: records.len() as u16,
            nscount: 0,
            arcount: 0,
        }
        .write(&mut b.buf);
        b.buf
    }

    fn mx(pref: u16, host: &str) -> RData {
        RData::PrefName(pref, wire::to_wire(host))
    }

    #[test]
    fn mx_records_follow_a_cname_and_null_mx_is_seen() {
        let p = response(
            "far.test",
            rtype::MX,
            0,
            &[
                (
                    "far.test",
                    rtype::CNAME,
                    RData::Name(wire::to_wire("mail.far.test")),
                ),
                ("mail.far.test", rtype::MX, mx(20, "b.far.test")),
                ("mail.far.test", rtype::MX, mx(10, "a.far.test")),
                ("other.test", rtype::MX, mx(1, "evil.test")),
            ],
        );
        let a = parse(&p, "far.test", rtype::MX).unwrap().unwrap();
        assert_eq!(
            a.mx,
            vec![
                (20, "b.far.test".to_string()),
                (10, "a.far.test".to_string())
            ]
        );
        let null = response(
            "none.test",
            rtype::MX,
            0,
            &[("none.test", rtype::MX, mx(0, "."))],
        );
        let a = parse(&null, "none.test", rtype::MX).unwrap().unwrap();
        assert_eq!(a.mx, vec![(0, String::new())]);
    }

    #[test]
    fn nxdomain_and_servfail_are_told_apart() {
        let nx = response("gone.test", rtype::MX, 3, &[]);
        assert!(
            parse(&nx, "gone.test", rtype::MX)
                .unwrap()
                .unwrap()
                .nxdomain
        );
        let fail = response("x.test", rtype::MX, 2, &[]);
        assert!(parse(&fail, "x.test", rtype::MX).unwrap().is_none());
        assert!(parse(&fail[..5], "x.test", rtype::MX).is_err());
    }

    #[test]
    fn addresses_of_the_asked_type_only() {
        let p = response(
            "mx.far.test",
            rtype::A,
            0,
            &[
                ("mx.far.test", rtype::A, RData::Bytes(vec![127, 0, 0, 2])),
                ("mx.far.test", rtype::A, RData::Bytes(vec![1, 2, 3])),
            ],
        );
        let a = parse(&p, "mx.far.test", rtype::A).unwrap().unwrap();
        assert_eq!(a.addresses, vec![IpAddr::from([127, 0, 0, 2])]);
    }
}
