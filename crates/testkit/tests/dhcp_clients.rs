//! The DHCP client wrappers against a reference server: dnsmasq in one namespace, each
//! client (dhclient, udhcpc, dhcpcd) in another, joined by a veth pair. Each client
//! leases an address, reports the options dnsmasq was told to hand out, configures the
//! address in its namespace only, renews where it can, and releases; the host's
//! /etc/resolv.conf stays byte for byte the same. Needs root, iproute2, iputils-ping,
//! dnsmasq-base, isc-dhcp-client, udhcpc and dhcpcd-base.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::fs;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use officebox_testkit::{
    ClientKind, DhcpClient, DnsmasqDhcp, DnsmasqOptions, Endpoint, Netns, Veth, require_program,
    require_root, wait_until,
};

const LEASE_WAIT: Duration = Duration::from_secs(20);
const SECS10: Duration = Duration::from_secs(10);

/// Third octet of 10.231.X.0/24, different for every test in this run. The addresses
/// exist only inside namespaces the tests create.
fn subnet() -> u8 {
    static NEXT: AtomicU8 = AtomicU8::new(60);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn preconditions(kind: ClientKind) {
    require_root();
    require_program("ip", "iproute2");
    require_program("ping", "iputils-ping");
    require_program("dnsmasq", "dnsmasq-base");
    kind.require();
}

/// Files a client must never write on the host.
struct HostFiles {
    resolv_conf: Vec<u8>,
    var_lib_dhcp: Vec<String>,
}

fn listing(dir: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

impl HostFiles {
    fn snapshot() -> HostFiles {
        HostFiles {
            resolv_conf: fs::read("/etc/resolv.conf").expect("read /etc/resolv.conf"),
            var_lib_dhcp: listing("/var/lib/dhcp"),
        }
    }

    fn assert_unchanged(&self) {
        let now = HostFiles::snapshot();
        assert!(
            now.resolv_conf == self.resolv_conf,
            "/etc/resolv.conf changed:\nbefore: {:?}\nafter:  {:?}",
            String::from_utf8_lossy(&self.resolv_conf),
            String::from_utf8_lossy(&now.resolv_conf)
        );
        assert_eq!(
            now.var_lib_dhcp, self.var_lib_dhcp,
            "/var/lib/dhcp gained or lost files"
        );
    }
}

fn addresses(ns: &Netns, iface: &str) -> String {
    let out = ns
        .run("ip", ["-4", "-o", "addr", "show", "dev", iface])
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn lease_release_cycle(kind: ClientKind) {
    preconditions(kind);
    let host = HostFiles::snapshot();
    let net = subnet();
    let ip = |last: u8| Ipv4Addr::new(10, 231, net, last);
    {
        let server_ns = Netns::new("dhcp-srv").unwrap();
        let pc = Netns::new("dhcp-pc").unwrap();
        let wire = Veth::new(
            Endpoint::netns(&server_ns).addr(&format!("{}/24", ip(1))),
            Endpoint::netns(&pc),
        )
        .unwrap();
        let (server_if, client_if) = (wire.name_a(), wire.name_b());
        let opts = DnsmasqOptions {
            lease_time: Some(Duration::from_secs(600)),
            router: Some(ip(1)),
            dns_servers: vec![ip(2), ip(3)],
            domain: Some("office.test".into()),
            ntp_servers: vec![ip(4)],
            extra_args: Vec::new(),
        };
        let server = DnsmasqDhcp::start(&server_ns, server_if, ip(50), ip(99), &opts).unwrap();
        let hostname = format!("pc-{kind}");

        let mut client =
            DhcpClient::lease(kind, &pc, client_if, Some(&hostname), LEASE_WAIT).unwrap();
        let lease = client.current().cloned().unwrap();
        let why = || format!("{lease:#?}\n{}", client.log());
        assert!(
            (ip(50)..=ip(99)).contains(&lease.address),
            "address outside the range: {}",
            why()
        );
        assert_eq!(
            lease.netmask,
            Some(Ipv4Addr::new(255, 255, 255, 0)),
            "{}",
            why()
        );
        assert_eq!(lease.routers, [ip(1)], "{}", why());
        assert_eq!(lease.dns_servers, [ip(2), ip(3)], "{}", why());
        assert_eq!(lease.domain.as_deref(), Some("office.test"), "{}", why());
        assert_eq!(lease.ntp_servers, [ip(4)], "{}", why());
        assert_eq!(
            lease.lease_time,
            Some(Duration::from_secs(600)),
            "{}",
            why()
        );
        assert_eq!(lease.server_id, Some(ip(1)), "{}", why());

        // The address is on the client's interface, in its namespace only, and works.
        let cidr = format!("{}/24", lease.address);
        assert!(addresses(&pc, client_if).contains(&cidr), "{}", why());
        pc.run("ping", ["-c", "1", "-W", "2", &ip(1).to_string()])
            .unwrap();

        // dnsmasq recorded the lease with the name the client sent.
        let leases = server.leases().unwrap();
        let held = leases
            .iter()
            .find(|l| l.address == lease.address)
            .unwrap_or_else(|| panic!("dnsmasq has no lease for {}: {leases:?}", lease.address));
        assert_eq!(
            held.hostname.as_deref(),
            Some(hostname.as_str()),
            "{leases:?}"
        );

        match client.renew(SECS10) {
            Ok(renewed) => {
                assert_ne!(kind, ClientKind::Dhclient);
                assert_eq!(renewed.address, lease.address, "{}", client.log());
                assert_eq!(renewed.lease_time, Some(Duration::from_secs(600)));
            }
            Err(e) => {
                assert_eq!(kind, ClientKind::Dhclient, "renew failed: {e}");
                assert_eq!(e.kind(), std::io::ErrorKind::Unsupported);
            }
        }

        client.release(SECS10).unwrap();
        assert!(
            client.peer().is_none(),
            "the client is stopped after release"
        );
        assert!(
            wait_until(SECS10, || {
                server
                    .leases()
                    .unwrap()
                    .iter()
                    .all(|l| l.address != lease.address)
            }),
            "dnsmasq still holds {} after the release:\n{}\n{}",
            lease.address,
            server.peer().log_tail(20),
            client.log()
        );
        let server_log = server.peer().log();
        assert!(
            server_log.contains(&format!("DHCPRELEASE({server_if}) {}", lease.address)),
            "{server_log}"
        );
        assert!(
            !addresses(&pc, client_if).contains(&cidr),
            "the address stays on {client_if} after the release:\n{}",
            client.log()
        );
        let dir = client.dir().to_owned();
        drop(client);
        assert!(!dir.exists(), "the client's scratch dir is removed");
        for leftover in [
            format!("/var/lib/dhcpcd/{client_if}.lease"),
            format!("/run/dhcpcd/{client_if}.pid"),
            format!("/run/dhcpcd/{client_if}-4.sock"),
        ] {
            assert!(!Path::new(&leftover).exists(), "{leftover} left behind");
        }
    }
    host.assert_unchanged();
}

#[test]
fn dhclient_leases_gets_options_and_releases() {
    lease_release_cycle(ClientKind::Dhclient);
}

#[test]
fn udhcpc_leases_gets_options_renews_and_releases() {
    lease_release_cycle(ClientKind::Udhcpc);
}

#[test]
fn dhcpcd_leases_gets_options_renews_and_releases() {
    lease_release_cycle(ClientKind::Dhcpcd);
}

/// Without a server every client gives up, and the error says which client, where, and
/// what it logged.
#[test]
fn no_server_is_a_clear_error() {
    for kind in ClientKind::ALL {
        preconditions(kind);
    }
    let host = HostFiles::snapshot();
    {
        let lan = Netns::new("dhcp-none").unwrap();
        let pc = Netns::new("dhcp-pc").unwrap();
        let wire = Veth::new(Endpoint::netns(&lan), Endpoint::netns(&pc)).unwrap();
        for kind in ClientKind::ALL {
            let err = DhcpClient::lease(kind, &pc, wire.name_b(), None, Duration::from_secs(3))
                .err()
                .unwrap_or_else(|| panic!("{kind} got a lease from nobody"));
            let msg = err.to_string();
            assert!(
                msg.contains(kind.program()) && msg.contains(wire.name_b()),
                "{msg}"
            );
            assert!(msg.contains(&format!("--- {kind} log ---")), "{msg}");
        }
    }
    host.assert_unchanged();
}
