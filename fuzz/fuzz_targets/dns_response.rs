//! Arbitrary bytes as an upstream server's response: the record walk (`wire::records`) and
//! the cache's parser (`Cached::from_response`); a usable response is then written out at
//! several ages and served to a client that asked its question, which must give a
//! well-formed reply within the UDP limit.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use officebox_dns::answer::{self, Transport};
use officebox_dns::cache::Cached;
use officebox_dns::wire::{self, HEADER_LEN, Header, RD};

/// A client query with the response's question, with EDNS or not.
fn query_for(response: &[u8], edns: bool) -> Option<Vec<u8>> {
    let end = wire::skip_name(response, HEADER_LEN).ok()? + 4;
    let question = response.get(HEADER_LEN..end)?;
    let mut p = vec![0u8; HEADER_LEN];
    Header {
        id: 0x4242,
        flags: RD,
        qdcount: 1,
        ancount: 0,
        nscount: 0,
        arcount: u16::from(edns),
    }
    .write(&mut p);
    p.extend_from_slice(question);
    if edns {
        p.extend_from_slice(&[0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0]);
    }
    Some(p)
}

fuzz_target!(|data: &[u8]| {
    let _ = wire::records(data);
    let now = Instant::now();
    let Ok(c) = Cached::from_response(data, now) else {
        return;
    };
    for age in [0u64, 1, 3_600, 1 << 40] {
        let later = now + Duration::from_secs(age);
        let _ = c.remaining(later);
        let mut out = Vec::new();
        c.write_body(&mut out, later);
        assert_eq!(out.len(), c.body.len());
    }
    for edns in [false, true] {
        let Some(packet) = query_for(data, edns) else {
            continue;
        };
        let Ok(req) = wire::parse_request(&packet) else {
            continue;
        };
        for transport in [Transport::Udp, Transport::Tcp] {
            let r = answer::forwarded_at(&req, &packet, Some(&c), transport, now);
            wire::records(&r).expect("a forwarded reply is a well-formed message");
            if transport == Transport::Udp {
                assert!(r.len() <= req.udp_limit());
            }
        }
    }
});
