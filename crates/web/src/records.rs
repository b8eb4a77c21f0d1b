//! The records mail needs, checked against what the Internet's DNS answers (issue 20):
//! for a domain whose zone is hosted elsewhere, or to see that the box's own zone is
//! what the world sees. The questions go to the configured upstream servers only
//! (`derive::upstream_resolvers`), never anywhere else; with none, nothing is asked.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use officebox_config::Config;
use officebox_config::derive::NeededRecord;
use officebox_dnswire::exchange::{Ask, Question, exchange};
use officebox_dnswire::{self as wire, Rcode, read_name, rtype};

/// How long one question may take, over UDP and then TCP.
const TIMEOUT: Duration = Duration::from_secs(2);

/// What the DNS said for one name and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// The records' values, as zone files write them (TXT without quotes).
    Values(Vec<String>),
    /// No such name, or no record of that type.
    Nothing,
    /// No server answered.
    Failed(String),
}

/// One needed record beside what was found, and whether it is right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub needed: NeededRecord,
    pub found: Found,
    /// `None` when it is right; else what is wrong, in words.
    pub problem: Option<String>,
}

/// Asks the upstream servers for each record `needed` (at once) and compares.
pub async fn check(config: &Config, needed: Vec<NeededRecord>) -> Vec<Checked> {
    let servers = officebox_config::derive::upstream_resolvers(config);
    // A handful of questions, asked together, each bounded by its timeout.
    let found =
        futures_util::future::join_all(needed.iter().map(|n| lookup(&servers, &n.name, n.rtype)))
            .await;
    needed
        .into_iter()
        .zip(found)
        .map(|(needed, found)| {
            let problem = judge(&needed, &found);
            Checked {
                needed,
                found,
                problem,
            }
        })
        .collect()
}

/// Lowercase, without the trailing dot.
fn norm(s: &str) -> String {
    s.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// What is wrong with `found` for `needed`, if anything.
fn judge(needed: &NeededRecord, found: &Found) -> Option<String> {
    let values = match found {
        Found::Failed(why) => return Some(format!("not checked: {why}")),
        Found::Nothing => return Some("missing".into()),
        Found::Values(v) => v,
    };
    let want = norm(&needed.value);
    match needed.rtype {
        "TXT" => {
            // Only the record of the same kind counts (an SPF record among others).
            let kind = needed.value.split([' ', ';']).next().unwrap_or("");
            let same: Vec<&String> = values
                .iter()
                .filter(|v| v.split([' ', ';']).next() == Some(kind))
                .collect();
            let compact = |s: &str| {
                s.split_whitespace()
                    .collect::<String>()
                    .to_ascii_lowercase()
            };
            match same.as_slice() {
                [] => Some(format!("missing (no {kind} record)")),
                [one] if compact(one) == compact(&needed.value) => None,
                [one] if kind == "v=spf1" => {
                    let wan_named = needed
                        .value
                        .split_whitespace()
                        .filter(|t| t.starts_with("ip4:"))
                        .all(|t| one.split_whitespace().any(|o| o == t));
                    if wan_named {
                        None
                    } else {
                        Some(format!("does not name the box's address: {one}"))
                    }
                }
                [one] => Some(format!("different: {one}")),
                _ => Some(format!("{} {kind} records; there must be one", same.len())),
            }
        }
        _ => {
            if values.iter().any(|v| norm(v) == want) {
                None
            } else {
                Some(format!("different: {}", values.join(", ")))
            }
        }
    }
}

/// One question to the servers in turn, the first answer taken.
async fn lookup(servers: &[SocketAddr], name: &str, rtype_name: &str) -> Found {
    if servers.is_empty() {
        return Found::Failed(
            "the box asks no DNS server outside (dns.use_upstream is off, or no primary is set)"
                .into(),
        );
    }
    let qtype = match rtype_name {
        "MX" => rtype::MX,
        "A" => rtype::A,
        "TXT" => rtype::TXT,
        "SRV" => rtype::SRV,
        "PTR" => rtype::PTR,
        _ => return Found::Failed(format!("{rtype_name} is not looked up")),
    };
    let owner = wire::to_wire(name);
    let question = Question {
        name: &owner,
        qtype,
        qclass: 1,
    };
    let ask = Ask {
        udp_timeout: TIMEOUT,
        tcp_timeout: TIMEOUT,
        edns: true,
        mixed_case: false,
    };
    let mut last = String::from("no answer");
    for server in servers {
        match exchange(*server, &question, &ask).await {
            Ok(packet) => match values(&packet, &owner, qtype) {
                Ok(Some(found)) => return found,
                Ok(None) => last = format!("{server} could not answer"),
                Err(e) => last = format!("{server} answered badly: {e}"),
            },
            Err(e) => last = format!("{server}: {e}"),
        }
    }
    Found::Failed(last)
}

/// The values of `qtype` records of `owner` in an answer; `None` for an answer that
/// says nothing (SERVFAIL, REFUSED).
fn values(packet: &[u8], owner: &[u8], qtype: u16) -> Result<Option<Found>, wire::WireError> {
    let (header, _, records) = wire::records(packet)?;
    let rcode = header.rcode();
    if rcode == Rcode::NxDomain as u8 {
        return Ok(Some(Found::Nothing));
    }
    if rcode != Rcode::NoError as u8 {
        return Ok(None);
    }
    let answers = records
        .get(..usize::from(header.ancount))
        .unwrap_or(&records);
    let mut out = Vec::new();
    for r in answers {
        if r.rtype != qtype || read_name(packet, r.start)?.0 != owner {
            continue;
        }
        let rdata = packet
            .get(r.rdata.clone())
            .ok_or(wire::WireError::Truncated)?;
        let text = |at: usize| read_name(packet, at).map(|(n, _)| wire::to_text(&n));
        let value = match qtype {
            rtype::A => match <[u8; 4]>::try_from(rdata) {
                Ok(b) => Ipv4Addr::from(b).to_string(),
                Err(_) => continue,
            },
            rtype::MX if rdata.len() >= 3 => {
                format!("{} {}", wire::u16_at(rdata, 0)?, text(r.rdata.start + 2)?)
            }
            rtype::SRV if rdata.len() >= 7 => format!(
                "{} {} {} {}",
                wire::u16_at(rdata, 0)?,
                wire::u16_at(rdata, 2)?,
                wire::u16_at(rdata, 4)?,
                text(r.rdata.start + 6)?
            ),
            rtype::PTR => text(r.rdata.start)?,
            rtype::TXT => {
                let mut s = Vec::new();
                let mut rest = rdata;
                while let Some((&len, after)) = rest.split_first() {
                    let (chunk, after) = after
                        .split_at_checked(usize::from(len))
                        .ok_or(wire::WireError::Truncated)?;
                    s.extend_from_slice(chunk);
                    rest = after;
                }
                String::from_utf8_lossy(&s).into_owned()
            }
            _ => continue,
        };
        out.push(value);
    }
    Ok(Some(if out.is_empty() {
        Found::Nothing
    } else {
        Found::Values(out)
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn need(rtype: &'static str, value: &str) -> NeededRecord {
        NeededRecord {
            name: "x.test".into(),
            rtype,
            value: value.into(),
            why: "",
        }
    }

    fn values(v: &[&str]) -> Found {
        Found::Values(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn records_are_judged_by_what_matters_in_them() {
        let spf = need("TXT", "v=spf1 ip4:203.0.113.10 ~all");
        assert_eq!(
            judge(&spf, &values(&["v=spf1 ip4:203.0.113.10 ~all"])),
            None
        );
        // A stricter or longer SPF record that names the address is fine.
        assert_eq!(
            judge(
                &spf,
                &values(&[
                    "google-site-verification=x",
                    "v=spf1 mx ip4:203.0.113.10 -all"
                ])
            ),
            None
        );
        assert!(
            judge(&spf, &values(&["v=spf1 -all"]))
                .unwrap()
                .contains("does not name")
        );
        assert!(
            judge(&spf, &values(&["v=spf1 a", "v=spf1 mx"]))
                .unwrap()
                .contains("2 v=spf1")
        );
        assert_eq!(judge(&spf, &Found::Nothing).as_deref(), Some("missing"));
        let dmarc = need("TXT", "v=DMARC1; p=none");
        assert!(
            judge(&dmarc, &values(&["v=DMARC1; p=reject"]))
                .unwrap()
                .contains("different")
        );
        let mx = need("MX", "10 smtp.office.test");
        assert_eq!(judge(&mx, &values(&["10 SMTP.office.test."])), None);
        assert!(judge(&mx, &values(&["10 mx.elsewhere.test"])).is_some());
        assert!(
            judge(&mx, &Found::Failed("x".into()))
                .unwrap()
                .starts_with("not checked")
        );
    }
}
