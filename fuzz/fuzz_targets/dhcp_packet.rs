//! A DHCP message from the LAN: decoded, then through the server's pipeline against a pool
//! that keeps its state across inputs (so sequences of messages are exercised too). Every
//! reply must encode again.

#![no_main]

use std::sync::{Mutex, OnceLock};

use dhcproto::Encodable;
use libfuzzer_sys::fuzz_target;
use officebox_config::derive::DhcpOptions;
use officebox_config::values::{Ipv4Net, Mac};
use officebox_dhcp::handler::{self, Decision, Settings};
use officebox_dhcp::pool::Pool;

fn state() -> &'static Mutex<(Pool, Settings)> {
    static STATE: OnceLock<Mutex<(Pool, Settings)>> = OnceLock::new();
    STATE.get_or_init(|| {
        let ip = |s: &str| s.parse().expect("literal address");
        let settings = Settings {
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
                ntp: ip("192.168.1.1"),
            },
            lease_secs: 3600,
        };
        let pool = Pool::new(
            ip("192.168.1.1"),
            ip("192.168.1.20"),
            &[ip("192.168.1.1")],
            [(
                Mac([2, 0, 0, 0, 0, 9]),
                ip("192.168.1.50"),
                Some("printer".into()),
            )],
        );
        Mutex::new((pool, settings))
    })
}

fuzz_target!(|data: &[u8]| {
    // The server's own decode step (it drops what dhcproto cannot read, or panics on).
    let Some(msg) = officebox_dhcp::decode(data) else {
        return;
    };
    let mut guard = state()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (pool, settings) = &mut *guard;
    let now = i64::from(data.first().copied().unwrap_or(0)) * 100;
    if let Decision::Reply { reply, .. } = handler::handle(pool, settings, &msg, now) {
        reply.to_vec().expect("a reply always encodes");
    }
});
