//! Arbitrary bytes as a DNS query, through the whole request pipeline (`answer::handle`),
//! over UDP and TCP, from a LAN and a WAN client, to a stand-alone and a forwarding view.
//! Besides "no panic", every reply must be a well-formed DNS message that echoes the ID and
//! fits the client's UDP limit; forwarded questions get a well-formed SERVFAIL, transfers
//! well-formed parts.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use officebox_dns::answer::{self, Action, Transport, View};
use officebox_dns::wire::{self, Header, QR};
use officebox_dns::zone::Zone;

const CONFIG: &str = r#"
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
name = "info"
type = "TXT"
value = "v=spf1 mx -all"

[[dns.records]]
name = "_sip._udp"
type = "SRV"
value = "10 5 5060 printer"

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
"#;

fn views() -> &'static [View; 2] {
    static VIEWS: OnceLock<[View; 2]> = OnceLock::new();
    VIEWS.get_or_init(|| {
        let config =
            officebox_config::parse("fuzz.toml", CONFIG).expect("the fuzz config is valid");
        let view = |use_upstream| View {
            zone: Zone::build(&config, Some(Ipv4Addr::new(203, 0, 113, 10)), &[], 1, None),
            network: config.network.clone(),
            use_upstream,
            secondaries: Vec::new(),
            sites: Vec::new(),
        };
        [view(false), view(true)]
    })
}

fn check(packet: &[u8], reply: &[u8], transport: Transport) {
    let q = Header::parse(packet).expect("a reply only to a message with a header");
    let r = Header::parse(reply).expect("a reply has a header");
    assert_eq!(r.id, q.id, "the ID is echoed");
    assert_ne!(r.flags & QR, 0, "a reply is a response");
    wire::records(reply).expect("a reply is a well-formed message");
    if transport == Transport::Udp {
        let limit = wire::parse_request(packet).map_or(512, |req| req.udp_limit());
        assert!(
            reply.len() <= limit,
            "{} bytes over UDP, limit {limit}",
            reply.len()
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let clients = [
        IpAddr::V4(Ipv4Addr::new(192, 168, 1, 50)),
        IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)),
    ];
    for view in views() {
        for client in clients {
            for transport in [Transport::Udp, Transport::Tcp] {
                match answer::handle(view, data, client, transport) {
                    Action::Reply(r) => check(data, &r, transport),
                    Action::Forward(req) => {
                        let r = answer::forwarded_at(&req, data, None, transport, Instant::now());
                        check(data, &r, transport);
                    }
                    Action::Transfer(req) => {
                        assert_eq!(transport, Transport::Tcp);
                        for part in view.zone.transfer(req.qname.as_bytes()).unwrap_or_default() {
                            let r = answer::transfer_part(&req, data, &part);
                            check(data, &r, transport);
                        }
                    }
                    Action::Drop => {}
                }
            }
        }
    }
});
