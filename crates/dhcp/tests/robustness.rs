//! Untrusted bytes from the LAN never panic the server: mutated and random messages go
//! through the same decode and pipeline the server uses. (The cargo-fuzz target
//! `dhcp_packet` does the same without bounds; this is its deterministic share in the
//! normal test suite, with the inputs it found kept as regression cases.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use dhcproto::Encodable;
use dhcproto::v4::{DhcpOption, HType, Message, MessageType, Opcode};
use officebox_config::derive::DhcpOptions;
use officebox_config::values::Ipv4Net;
use officebox_dhcp::handler::{self, Decision, Settings};
use officebox_dhcp::pool::Pool;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn settings() -> Settings {
    let ip = |s: &str| s.parse().unwrap();
    Settings {
        server_id: ip("192.168.1.1"),
        subnet: Ipv4Net {
            address: ip("192.168.1.1"),
            prefix: 24,
        },
        options: DhcpOptions {
            netmask: ip("255.255.255.0"),
            router: Some(ip("192.168.1.1")),
            dns: vec![ip("192.168.1.1")],
            domain: "office.test".into(),
            ntp: Some(ip("192.168.1.1")),
            provisioning: None,
        },
        lease_secs: 3600,
        phone_urls: std::collections::HashMap::new(),
    }
}

fn valid(kind: MessageType, n: u8) -> Vec<u8> {
    let mut m = Message::default();
    m.set_opcode(Opcode::BootRequest)
        .set_htype(HType::Eth)
        .set_xid(u32::from(n))
        .set_chaddr(&[2, 0, 0, 0, 1, n]);
    m.opts_mut().insert(DhcpOption::MessageType(kind));
    m.opts_mut()
        .insert(DhcpOption::Hostname(format!("host-{n}")));
    m.opts_mut()
        .insert(DhcpOption::ClientIdentifier(vec![1, 2, 0, 0, 0, 1, n]));
    m.opts_mut()
        .insert(DhcpOption::RequestedIpAddress([192, 168, 1, n].into()));
    m.opts_mut()
        .insert(DhcpOption::ServerIdentifier([192, 168, 1, 1].into()));
    m.to_vec().unwrap()
}

fn run(pool: &mut Pool, s: &Settings, bytes: &[u8], now: i64) {
    let Some(msg) = officebox_dhcp::decode(bytes) else {
        return;
    };
    if let Decision::Reply { reply, .. } = handler::handle(pool, s, &msg, now) {
        reply.to_vec().expect("every reply encodes");
    }
}

#[test]
fn mutated_and_random_messages_never_panic() {
    let s = settings();
    let mut pool = Pool::new(
        [192, 168, 1, 1].into(),
        [192, 168, 1, 40].into(),
        &[[192, 168, 1, 1].into()],
        [],
    );
    let mut rng = StdRng::seed_from_u64(0x0ff1ce);
    let kinds = [
        MessageType::Discover,
        MessageType::Request,
        MessageType::Release,
        MessageType::Decline,
        MessageType::Inform,
    ];
    for i in 0..20_000u32 {
        let mut bytes = valid(kinds[i as usize % kinds.len()], (i % 60) as u8 + 2);
        match i % 4 {
            0 => {}
            1 => {
                for _ in 0..rng.random_range(1..8) {
                    let at = rng.random_range(0..bytes.len());
                    bytes[at] ^= 1 << rng.random_range(0..8);
                }
            }
            2 => bytes.truncate(rng.random_range(0..bytes.len())),
            _ => {
                bytes = (0..rng.random_range(0..600))
                    .map(|_| rng.random())
                    .collect()
            }
        }
        run(&mut pool, &s, &bytes, i64::from(i));
    }
}

#[test]
fn a_hardware_address_length_over_16_is_dropped() {
    // Found by the dhcp_packet fuzz target: dhcproto's chaddr() slices by the wire's hlen.
    let mut bytes = valid(MessageType::Discover, 7);
    bytes[2] = 200; // hlen
    assert!(officebox_dhcp::decode(&bytes).is_none());
    let mut pool = Pool::new([192, 168, 1, 1].into(), [192, 168, 1, 40].into(), &[], []);
    run(&mut pool, &settings(), &bytes, 0);
}
