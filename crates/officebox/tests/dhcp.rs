//! DHCP end to end: real clients (dhclient, udhcpc, dhcpcd) lease addresses from officebox
//! over a veth pair between two network namespaces, in each security mode; names reach the
//! DNS; leases survive kill -9; perfdhcp never sees one address given twice; and a second
//! DHCP server on the LAN makes officebox stand back.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use officebox_testkit::{
    ClientKind, DhcpClient, DnsmasqDhcp, Endpoint, OfficeLan, Officebox, READY_TIMEOUT, TestConfig,
    Veth, dnsmasq_dhcp_server, require_program, require_root, wait_until,
};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_officebox"))
}

const LEASE_TIMEOUT: Duration = Duration::from_secs(20);

/// A LAN: officebox's namespace and a PC's, joined by a veth pair (192.168.1.1 on the box
/// side; these addresses exist only inside the two namespaces).
struct Lan(OfficeLan);

impl std::ops::Deref for Lan {
    type Target = OfficeLan;
    fn deref(&self) -> &OfficeLan {
        &self.0
    }
}

impl Lan {
    fn new(tag: &str) -> Lan {
        require_root();
        Lan(OfficeLan::new(tag, "192.168.1.1/24").unwrap())
    }

    fn config(&self, mode: &str) -> TestConfig {
        TestConfig::demo()
            .set(
                "network.listen",
                toml_edit::Value::Array(toml_edit::Array::new()),
            )
            .set("network.lan.interface", self.box_iface())
            .set("network.lan.gateway", "192.168.1.254")
            .set("security.mode", mode)
            .set("dhcp.enabled", true)
            .set("dhcp.lease_time", "1h")
            .set("dns.port", 53)
            .set("dns.use_upstream", true)
            .set("dns.primary", "192.0.2.53")
            // The box names itself as time server only when it serves the time.
            .set("ntp.enabled", true)
            .set("ntp.port", 123)
    }

    fn start(&self, config: &TestConfig) -> Officebox {
        let ob = Officebox::start_in_netns(bin(), &config.text(), &self.boxns)
            .expect("officebox starts");
        ob.peer()
            .wait_for_log("dhcp: serving", READY_TIMEOUT)
            .expect("dhcp serves");
        ob
    }

    /// Another DHCP server on the LAN: dnsmasq on the PC's side (which needs an address
    /// there, 192.168.1.254), handing out 192.168.1.150-160.
    fn another_server(&self) -> DnsmasqDhcp {
        dnsmasq_dhcp_server(
            &self.pc,
            self.pc_iface(),
            ip("192.168.1.150"),
            ip("192.168.1.160"),
        )
        .unwrap()
    }

    /// Asks officebox's DNS from inside its own namespace (the PC may have no address).
    fn dig(&self, name: &str, rtype: &str) -> Vec<String> {
        self.boxns.dig("127.0.0.1", name, rtype).unwrap()
    }
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn every_client_gets_the_options_of_every_security_mode() {
    for kind in ClientKind::ALL {
        kind.require();
    }
    let lan = Lan::new("dhm");
    // mode, router, dns: the white paper's rules (crates/config/src/derive.rs).
    let table = [
        ("lan-only", "192.168.1.254", "192.0.2.53"),
        ("router", "192.168.1.1", "192.168.1.1"),
        ("firewall-nat", "192.168.1.1", "192.168.1.1"),
        ("firewall-nat-dmz", "192.168.1.1", "192.168.1.1"),
    ];
    for (mode, router, dns) in table {
        let ob = lan.start(&lan.config(mode));
        for kind in ClientKind::ALL {
            let mut client =
                DhcpClient::lease(kind, &lan.pc, lan.pc_iface(), Some("desk"), LEASE_TIMEOUT)
                    .unwrap_or_else(|e| {
                        panic!("{kind:?} in {mode}: {e}\nofficebox:\n{}", ob.log())
                    });
            let l = client.current().unwrap().clone();
            let what = format!("{kind:?} in {mode}");
            assert!(
                (ip("192.168.1.2")..=ip("192.168.1.100")).contains(&l.address),
                "{what}: {}",
                l.address
            );
            assert_eq!(l.netmask, Some(ip("255.255.255.0")), "{what}");
            assert_eq!(l.routers, vec![ip(router)], "{what}");
            assert_eq!(l.dns_servers, vec![ip(dns)], "{what}");
            assert_eq!(l.domain.as_deref(), Some("office.test"), "{what}");
            assert_eq!(l.ntp_servers, vec![ip("192.168.1.1")], "{what}");
            assert_eq!(l.lease_time, Some(Duration::from_secs(3600)), "{what}");
            assert_eq!(l.server_id, Some(ip("192.168.1.1")), "{what}");
            client
                .release(LEASE_TIMEOUT)
                .unwrap_or_else(|e| panic!("{what}: release: {e}"));
        }
        drop(ob);
    }
}

#[test]
fn a_named_laptop_resolves_until_it_releases_and_leases_survive_kill_9() {
    ClientKind::Udhcpc.require();
    ClientKind::Dhclient.require();
    require_program("dig", "bind9-dnsutils");
    let lan = Lan::new("dhn");
    let config = lan.config("firewall-nat");
    let ob = lan.start(&config);

    let mut laptop = DhcpClient::lease(
        ClientKind::Dhclient,
        &lan.pc,
        lan.pc_iface(),
        Some("laptop-7"),
        LEASE_TIMEOUT,
    )
    .unwrap();
    let addr = laptop.current().unwrap().address;
    let a = addr.to_string();
    assert!(
        wait_until(Duration::from_secs(5), || lan
            .dig("laptop-7.office.test", "A")
            == [a.clone()]),
        "{}",
        ob.log()
    );
    let [o1, o2, o3, o4] = addr.octets();
    assert_eq!(
        lan.dig(&format!("{o4}.{o3}.{o2}.{o1}.in-addr.arpa"), "PTR"),
        ["laptop-7.office.test."]
    );
    laptop.release(LEASE_TIMEOUT).unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || lan
            .dig("laptop-7.office.test", "A")
            .is_empty()),
        "the name goes with the release\n{}",
        ob.log()
    );

    // A second client takes a lease; officebox dies by SIGKILL right after the ACK.
    let mut phone = DhcpClient::lease(
        ClientKind::Udhcpc,
        &lan.pc,
        lan.pc_iface(),
        Some("phone-1"),
        LEASE_TIMEOUT,
    )
    .unwrap();
    let held = phone.current().unwrap().address;
    let dir = ob.kill9().unwrap();
    let ob = Officebox::restart_in_netns(bin(), &config.text(), &lan.boxns, dir).unwrap();
    ob.peer()
        .wait_for_log("dhcp: serving", READY_TIMEOUT)
        .unwrap();
    assert!(
        !ob.log().contains("dhcp: leases restored count=0"),
        "the leases are back:\n{}",
        ob.log()
    );
    // The renewal after the restart gets the same address.
    let renewed = phone
        .renew(LEASE_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", ob.log()));
    assert_eq!(renewed.address, held);
    // And `officebox dhcp leases` lists it.
    let out = std::process::Command::new(bin())
        .args(["dhcp", "leases", "--config"])
        .arg(ob.config_path())
        .current_dir(ob.dir())
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.lines().any(|l| l.starts_with(&held.to_string())
            && l.contains("phone-1")
            && l.contains("bound")),
        "{table}"
    );
    if held != addr {
        assert!(
            table
                .lines()
                .any(|l| l.starts_with(&addr.to_string()) && l.contains("released")),
            "{table}"
        );
    }
}

#[test]
fn under_perfdhcp_no_address_goes_to_two_clients() {
    require_program("perfdhcp", "kea-admin");
    let lan = Lan::new("dhp");
    let config = lan.config("firewall-nat").set(
        "dhcp.range",
        toml_edit::Value::Array(["192.168.1.2", "192.168.1.250"].into_iter().collect()),
    );
    let ob = lan.start(&config);
    // perfdhcp acts as a relay from its own address on the PC side (outside the range).
    lan.pc
        .run(
            "ip",
            ["addr", "add", "192.168.1.251/24", "dev", lan.pc_iface()],
        )
        .unwrap();
    let out = lan
        .pc
        .command("perfdhcp")
        .args([
            "-4",
            "-l",
            lan.pc_iface(),
            "-R",
            "200",
            "-r",
            "400",
            "-p",
            "3",
            "192.168.1.1",
        ])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("Rate:"),
        "perfdhcp ran:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let db = officebox_store::Db::open(&ob.dir().join("demo-data/state.db")).unwrap();
    let leases = db.leases().unwrap();
    assert!(
        leases.len() >= 50,
        "perfdhcp's clients got leases: {}\n{report}",
        leases.len()
    );
    // One row per address by construction; no client holds two bound addresses either.
    let mut clients: Vec<&[u8]> = leases
        .iter()
        .filter(|l| l.state == officebox_store::LeaseState::Bound)
        .map(|l| l.client_id.as_slice())
        .collect();
    let total = clients.len();
    clients.sort();
    clients.dedup();
    assert_eq!(clients.len(), total, "a client holds two addresses");
    assert!(
        leases
            .iter()
            .all(|l| l.address != ip("192.168.1.1") && l.address != ip("192.168.1.251"))
    );
}

#[test]
fn a_second_dhcp_server_on_the_lan_makes_officebox_stand_back() {
    require_program("dnsmasq", "dnsmasq-base");
    let lan = Lan::new("dhr");
    // Another server on the LAN, reachable from the box side.
    lan.pc
        .run(
            "ip",
            ["addr", "add", "192.168.1.254/24", "dev", lan.pc_iface()],
        )
        .unwrap();
    let _rogue = lan.another_server();
    let ob =
        Officebox::start_in_netns(bin(), &lan.config("firewall-nat").text(), &lan.boxns).unwrap();
    ob.peer()
        .wait_for_log("ANOTHER DHCP SERVER ANSWERS ON THIS LAN", READY_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        ob.log().contains("other_server=192.168.1.254"),
        "{}",
        ob.log()
    );
    assert!(!ob.log().contains("dhcp: serving"));
}

#[test]
fn the_ping_check_passes_over_an_address_a_device_already_uses() {
    ClientKind::Udhcpc.require();
    let lan = Lan::new("dhk");
    // A device set up by hand with the pool's first free address (the PC's own interface
    // carries it, so it answers pings from the box).
    lan.pc
        .run(
            "ip",
            ["addr", "add", "192.168.1.2/24", "dev", lan.pc_iface()],
        )
        .unwrap();
    let ob = lan.start(&lan.config("firewall-nat").set("dhcp.ping_check", true));
    let mut client = DhcpClient::lease(
        ClientKind::Udhcpc,
        &lan.pc,
        lan.pc_iface(),
        None,
        LEASE_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", ob.log()));
    let got = client.current().unwrap().address;
    assert_ne!(
        got,
        ip("192.168.1.2"),
        "the address in use is not handed out"
    );
    assert!(
        ob.log().contains("an address answered a ping") && ob.log().contains("address=192.168.1.2"),
        "{}",
        ob.log()
    );
    client.release(LEASE_TIMEOUT).unwrap();
}

#[test]
fn with_manage_on_another_server_is_found_once_the_address_is_up_and_kept_watch_for() {
    require_program("dnsmasq", "dnsmasq-base");
    ClientKind::Udhcpc.require();
    let lan = Lan::new("dhw");
    // officebox puts the LAN address on the interface itself, as it starts.
    lan.boxns
        .run("ip", ["addr", "flush", "dev", lan.box_iface()])
        .unwrap();
    lan.pc
        .run(
            "ip",
            ["addr", "add", "192.168.1.254/24", "dev", lan.pc_iface()],
        )
        .unwrap();
    let rogue = lan.another_server();
    // A WAN port too (unused in lan-only mode, which this office runs in).
    let wan = Veth::new(Endpoint::netns(&lan.boxns), Endpoint::netns(&lan.pc)).unwrap();
    let config = lan
        .config("lan-only")
        .set("network.manage", true)
        .set("network.wan.interface", wan.name_a())
        .set("dhcp.server_check", "1s");
    let ob = Officebox::start_in_netns(bin(), &config.text(), &lan.boxns).unwrap();
    ob.peer()
        .wait_for_log("ANOTHER DHCP SERVER ANSWERS ON THIS LAN", READY_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", ob.log()));
    assert!(!ob.log().contains("dhcp: serving"), "{}", ob.log());
    assert!(!ob.log().contains("could not check"), "{}", ob.log());

    // The other server goes: officebox serves at its next check.
    drop(rogue);
    ob.peer()
        .wait_for_log("dhcp: serving", READY_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", ob.log()));
    let mut client = DhcpClient::lease(
        ClientKind::Udhcpc,
        &lan.pc,
        lan.pc_iface(),
        None,
        LEASE_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", ob.log()));
    assert_eq!(client.current().unwrap().server_id, Some(ip("192.168.1.1")));
    client.release(LEASE_TIMEOUT).unwrap();

    // And when one appears while officebox serves, officebox stands back again.
    let _rogue = lan.another_server();
    ob.peer()
        .wait_for_log("ANOTHER DHCP SERVER NOW ANSWERS", READY_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", ob.log()));
}

#[test]
fn a_client_cannot_claim_a_name_other_machines_trust() {
    ClientKind::Udhcpc.require();
    require_program("dig", "bind9-dnsutils");
    let lan = Lan::new("dhs");
    let ob = lan.start(&lan.config("firewall-nat"));
    for name in [
        "wpad",
        "isatap",
        "localhost",
        "autodiscover",
        "www",
        "officebox",
    ] {
        let mut client = DhcpClient::lease(
            ClientKind::Udhcpc,
            &lan.pc,
            lan.pc_iface(),
            Some(name),
            LEASE_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("{name}: {e}\n{}", ob.log()));
        let leased = client.current().unwrap().address.to_string();
        // Give the zone its second to notice the lease.
        std::thread::sleep(Duration::from_millis(1500));
        let answer = lan.dig(&format!("{name}.office.test"), "A");
        assert!(
            !answer.contains(&leased),
            "{name}.office.test points at the client {leased}: {answer:?}\n{}",
            ob.log()
        );
        client.release(LEASE_TIMEOUT).unwrap();
    }
    // An ordinary name is published as before.
    let client = DhcpClient::lease(
        ClientKind::Udhcpc,
        &lan.pc,
        lan.pc_iface(),
        Some("desk-9"),
        LEASE_TIMEOUT,
    )
    .unwrap();
    let leased = client.current().unwrap().address.to_string();
    assert!(
        wait_until(Duration::from_secs(5), || lan
            .dig("desk-9.office.test", "A")
            == [leased.clone()]),
        "{}",
        ob.log()
    );
}
