//! Finding a provider (RFC 3263): a trunk's server given as a domain without a port is
//! looked up as SRV `_sip._udp.DOMAIN` (`_sip._tcp.` for TCP) first, and its best target
//! (lowest priority, then highest weight) by address; with a port, or with no SRV
//! records, the name's own address at 5060. Asked of the box's own DNS
//! (`derive::own_resolvers`: it answers the company zone and forwards the rest when
//! allowed), with officebox's DNS wire code; only with no DNS server at all does the
//! host's resolver answer.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use officebox_dnswire::exchange::{Ask, Question};
use officebox_dnswire::{self as wire, CLASS_IN, Rcode, read_name, rtype};

use crate::sip::Transport;

/// How long one server gets to answer one query.
const QUERY_TIMEOUT: Duration = Duration::from_secs(3);
/// Rounds over the servers before a lookup fails.
const ROUNDS: usize = 3;

const ASK: Ask = Ask {
    udp_timeout: QUERY_TIMEOUT,
    tcp_timeout: QUERY_TIMEOUT,
    edns: false,
    mixed_case: false,
};

/// One SRV record: priority, weight, port, target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Srv {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: String,
}

/// Where `host` (with `port`, if the config gave one) is reached over `transport`.
pub async fn locate(
    host: &str,
    port: Option<u16>,
    transport: Transport,
    servers: &[SocketAddr],
) -> Result<SocketAddr, String> {
    // SIP over TLS listens on 5061 (RFC 3261 section 19.1.2).
    let default_port = if transport == Transport::Tls {
        5061
    } else {
        5060
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port.unwrap_or(default_port)));
    }
    if servers.is_empty() {
        return system(host, port.unwrap_or(default_port)).await;
    }
    if port.is_none() {
        let service = match transport {
            Transport::Udp => "_sip._udp",
            Transport::Tcp => "_sip._tcp",
            Transport::Tls => "_sips._tcp",
        };
        let srv = query(servers, &format!("{service}.{host}"), rtype::SRV).await?;
        if let Some(best) = best(srv.srv) {
            let ip = address(servers, &best.target).await?;
            return Ok(SocketAddr::new(ip, best.port));
        }
    }
    let ip = address(servers, host).await?;
    Ok(SocketAddr::new(ip, port.unwrap_or(default_port)))
}

/// The SRV record to use: the lowest priority, and of those the heaviest (a box makes
/// few connections to its provider; spreading them by weight would only move the
/// registration around). A target of "." says there is no such service.
pub fn best(mut records: Vec<Srv>) -> Option<Srv> {
    records.retain(|r| !r.target.is_empty() && r.target != ".");
    records.sort_by(|a, b| a.priority.cmp(&b.priority).then(b.weight.cmp(&a.weight)));
    records.into_iter().next()
}

/// The first IPv4 address of `name` (else IPv6).
async fn address(servers: &[SocketAddr], name: &str) -> Result<IpAddr, String> {
    let a = query(servers, name, rtype::A).await?;
    if let Some(ip) = a.addresses.first() {
        return Ok(*ip);
    }
    let aaaa = query(servers, name, rtype::AAAA).await?;
    aaaa.addresses
        .first()
        .copied()
        .ok_or_else(|| format!("{name} has no address"))
}

/// What the host's own resolver says (only when the box has no DNS server to ask).
async fn system(host: &str, port: u16) -> Result<SocketAddr, String> {
    let found = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot find the address of {host}: {e}"))?;
    let all: Vec<SocketAddr> = found.collect();
    all.iter()
        .find(|a| a.is_ipv4())
        .or(all.first())
        .copied()
        .ok_or_else(|| format!("{host} has no address"))
}

/// The records found for a name.
#[derive(Debug, Default)]
pub struct Found {
    pub srv: Vec<Srv>,
    pub addresses: Vec<IpAddr>,
}

/// Asks each server in turn until one answers; NXDOMAIN and no records are an empty
/// answer.
async fn query(servers: &[SocketAddr], name: &str, qtype: u16) -> Result<Found, String> {
    let wire_name = wire::to_wire(name);
    let question = Question {
        name: &wire_name,
        qtype,
        qclass: CLASS_IN,
    };
    let mut last = String::new();
    for round in 0..ROUNDS {
        if round > 0 {
            // The box's own DNS may be starting with the phone service.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        for server in servers {
            match wire::exchange::exchange(*server, &question, &ASK).await {
                Ok(packet) => match parse(&packet, name, qtype) {
                    Some(found) => return Ok(found),
                    None => last = format!("DNS {server}: no usable answer for {name}"),
                },
                Err(e) => last = format!("DNS {server}: {e}"),
            }
        }
    }
    Err(last)
}

/// The records of `qtype` owned by `name` in `packet`; `None` for a server failure (the
/// next server is asked).
pub fn parse(packet: &[u8], name: &str, qtype: u16) -> Option<Found> {
    let (header, _, records) = wire::records(packet).ok()?;
    let rcode = header.rcode();
    if rcode == Rcode::NxDomain as u8 {
        return Some(Found::default());
    }
    if rcode != Rcode::NoError as u8 {
        return None;
    }
    let owner = wire::to_wire(name);
    let mut found = Found::default();
    for r in records
        .get(..usize::from(header.ancount))
        .unwrap_or(&records)
    {
        if r.class != CLASS_IN || r.rtype != qtype {
            continue;
        }
        let Ok((n, _)) = read_name(packet, r.start) else {
            continue;
        };
        if !n.eq_ignore_ascii_case(&owner) {
            continue;
        }
        let Some(rdata) = packet.get(r.rdata.clone()) else {
            continue;
        };
        match qtype {
            rtype::SRV => {
                let (Ok(priority), Ok(weight), Ok(port)) = (
                    wire::u16_at(rdata, 0),
                    wire::u16_at(rdata, 2),
                    wire::u16_at(rdata, 4),
                ) else {
                    continue;
                };
                let Ok((target, _)) = read_name(packet, r.rdata.start + 6) else {
                    continue;
                };
                found.srv.push(Srv {
                    priority,
                    weight,
                    port,
                    target: wire::to_text(&target),
                });
            }
            rtype::A => {
                if let Ok(b) = <[u8; 4]>::try_from(rdata) {
                    found.addresses.push(IpAddr::from(b));
                }
            }
            rtype::AAAA => {
                if let Ok(b) = <[u8; 16]>::try_from(rdata) {
                    found.addresses.push(IpAddr::from(b));
                }
            }
            _ => {}
        }
    }
    Some(found)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn srv(priority: u16, weight: u16, target: &str) -> Srv {
        Srv {
            priority,
            weight,
            port: 5060,
            target: target.into(),
        }
    }

    #[test]
    fn the_best_srv_target_is_the_lowest_priority_then_the_heaviest() {
        let picked = best(vec![
            srv(20, 100, "backup.example"),
            srv(10, 5, "light.example"),
            srv(10, 50, "heavy.example"),
        ])
        .unwrap();
        assert_eq!(picked.target, "heavy.example");
        assert_eq!(best(vec![srv(0, 0, ".")]), None, "no such service");
        assert_eq!(best(Vec::new()), None);
    }

    #[test]
    fn answers_are_read_without_trusting_them() {
        assert!(parse(b"", "x", rtype::SRV).is_none());
        assert!(parse(&[0u8; 11], "x", rtype::SRV).is_none());
    }
}
