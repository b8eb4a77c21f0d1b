//! Zone transfer to a real secondary: Knot DNS (`knotd`) copies the zone from officebox by
//! AXFR, and after a DHCP name appears officebox raises the serial, sends NOTIFY, and knot
//! pulls the new zone. A transfer asked for by a client not in `dns.secondaries` is refused.
//! Everything runs on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use officebox_store::{Db, Lease, LeaseState};
use officebox_testkit::{
    Officebox, Peer, TestConfig, free_udp_port, require_program, require_root, scratch_dir,
    wait_until,
};

const ZONE: &str = "office.test";
const REVERSE_ZONE: &str = "1.168.192.in-addr.arpa";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_officebox"))
}

fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    i64::try_from(secs).expect("a sane clock")
}

/// Runs `kdig @127.0.0.1 -p PORT ARGS` with a short timeout; returns whether it succeeded
/// and its output (stdout and stderr together).
fn kdig(port: u16, args: &[&str]) -> (bool, String) {
    let out = Command::new("kdig")
        .arg("@127.0.0.1")
        .args(["-p", &port.to_string(), "+time=2", "+retry=0"])
        .args(args)
        .output()
        .expect("kdig runs");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// The `+short` answer to `name type` at `port`, one record a line (empty when none).
fn short(port: u16, name: &str, rtype: &str) -> String {
    kdig(port, &[name, rtype, "+short"]).1.trim().to_string()
}

/// The SOA serial of `zone` at `port`, if it answers.
fn serial(port: u16, zone: &str) -> Option<u32> {
    short(port, zone, "SOA")
        .split_whitespace()
        .nth(2)
        .and_then(|s| s.parse().ok())
}

/// A knot secondary for the demo's zones, with officebox at 127.0.0.1@`primary` as its
/// primary; listens on 127.0.0.1@`port`. Config, databases, zone files, pid file and control
/// socket all live in `dir`.
fn knot_config(dir: &Path, port: u16, primary: u16) -> String {
    let d = dir.display();
    format!(
        r#"server:
    listen: 127.0.0.1@{port}
    rundir: {d}/run
    pidfile: {d}/run/knot.pid
    user: root:root
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1

control:
    listen: {d}/run/knot.sock

log:
  - target: stdout
    any: info

database:
    storage: {d}/db

remote:
  - id: officebox
    address: 127.0.0.1@{primary}

acl:
  - id: notify_from_officebox
    address: 127.0.0.1
    action: notify

template:
  - id: default
    storage: {d}/zones
    master: officebox
    acl: notify_from_officebox

zone:
  - domain: {ZONE}
  - domain: {REVERSE_ZONE}
"#
    )
}

#[test]
fn knot_copies_the_zone_and_follows_notify_and_strangers_are_refused() {
    require_root();
    require_program("knotd", "knot");
    require_program("kdig", "knot-dnsutils");

    // officebox, with knot's address as its only secondary.
    let knot_port = free_udp_port().expect("a free port for knot");
    let secondaries = toml_edit::Value::from_iter([format!("127.0.0.1:{knot_port}")]);
    let config = TestConfig::demo()
        .free_ports()
        .set("dns.secondaries", secondaries);
    let dns_port = u16::try_from(config.int("dns.port")).expect("a port");
    let ob = Officebox::start(bin(), &config.text()).expect("officebox starts");
    assert!(
        wait_until(Duration::from_secs(10), || serial(dns_port, ZONE).is_some()),
        "officebox answers for its zone:\n{}",
        ob.log()
    );
    let first_serial = serial(dns_port, ZONE).expect("a serial");

    // The AXFR itself, from an allowed address: the zone between two SOAs.
    let (ok, axfr) = kdig(dns_port, &[ZONE, "AXFR", "+nocomments"]);
    let records: Vec<&str> = axfr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with(';'))
        .collect();
    assert!(ok, "AXFR from 127.0.0.1 succeeds:\n{axfr}");
    assert!(
        records.len() > 2,
        "AXFR carries more than the SOAs:\n{axfr}"
    );
    for end in [records[0], records[records.len() - 1]] {
        let fields: Vec<&str> = end.split_whitespace().collect();
        assert_eq!(fields[0], "office.test.", "{axfr}");
        assert_eq!(
            fields[3], "SOA",
            "the transfer starts and ends with the SOA:\n{axfr}"
        );
        assert_eq!(fields[6], first_serial.to_string(), "{axfr}");
    }
    assert!(
        records.iter().any(|r| r.starts_with("www.office.test.")
            && r.split_whitespace().nth(3) == Some("A")
            && r.ends_with("203.0.113.10")),
        "the AXFR holds www:\n{axfr}"
    );

    // From an address not in dns.secondaries: refused.
    let (ok, refused) = kdig(dns_port, &["-b", "127.0.0.9", ZONE, "AXFR"]);
    assert!(!ok, "AXFR from 127.0.0.9 fails:\n{refused}");
    assert!(
        refused.contains("REFUSED"),
        "AXFR from 127.0.0.9 is REFUSED:\n{refused}"
    );
    assert!(
        !refused.contains("203.0.113.10"),
        "no record leaks to a stranger:\n{refused}"
    );
    assert!(
        wait_until(Duration::from_secs(5), || ob
            .log()
            .contains("dns: zone transfer refused client=127.0.0.9")),
        "officebox logs the refusal:\n{}",
        ob.log()
    );

    // knot, a secondary with officebox as its primary.
    let knot_dir = scratch_dir("knot").expect("scratch dir");
    for sub in ["run", "db", "zones"] {
        std::fs::create_dir(knot_dir.path().join(sub)).expect("mkdir");
    }
    let knot_conf = knot_dir.path().join("knot.conf");
    std::fs::write(
        &knot_conf,
        knot_config(knot_dir.path(), knot_port, dns_port),
    )
    .expect("write knot.conf");
    let mut cmd = Command::new("knotd");
    cmd.arg("-c").arg(&knot_conf);
    let knot = Peer::spawn_in("knotd", cmd, knot_dir.path()).expect("knotd starts");

    let transferred = wait_until(Duration::from_secs(20), || {
        short(knot_port, &format!("www.{ZONE}"), "A") == "203.0.113.10"
    });
    assert!(
        transferred,
        "knot transferred the zone from officebox\nknot log:\n{}\nofficebox log:\n{}",
        knot.log_tail(40),
        ob.log()
    );
    assert_eq!(
        serial(knot_port, ZONE),
        Some(first_serial),
        "{}",
        knot.log()
    );
    assert!(
        wait_until(Duration::from_secs(10), || serial(knot_port, REVERSE_ZONE)
            == Some(first_serial)),
        "knot transferred the reverse zone too:\n{}",
        knot.log_tail(40)
    );
    assert_eq!(short(knot_port, &format!("laptop-7.{ZONE}"), "A"), "");

    // A DHCP client appears: the lease goes into the state database, as the DHCP server
    // writes it.
    let db = Db::open(&ob.dir().join("demo-data/state.db")).expect("open the state database");
    db.upsert_lease(&Lease {
        address: Ipv4Addr::new(192, 168, 1, 57),
        client_id: vec![1, 0x02, 0, 0, 0, 0, 0x57],
        mac: "02:00:00:00:00:57".to_string(),
        hostname: Some("laptop-7".to_string()),
        expires_at: now() + 3600,
        state: LeaseState::Bound,
        reserved: false,
    })
    .expect("upsert the lease");
    drop(db);

    // officebox publishes the name under a higher serial.
    assert!(
        wait_until(Duration::from_secs(10), || short(
            dns_port,
            &format!("laptop-7.{ZONE}"),
            "A"
        ) == "192.168.1.57"),
        "officebox answers the DHCP name:\n{}",
        ob.log()
    );
    assert_eq!(
        short(dns_port, "57.1.168.192.in-addr.arpa", "PTR"),
        "laptop-7.office.test."
    );
    let second_serial = serial(dns_port, ZONE).expect("a serial");
    assert!(
        second_serial > first_serial,
        "the serial grew: {first_serial} -> {second_serial}"
    );

    // knot hears the NOTIFY and copies the new zone (its refresh timer is an hour away).
    let followed = wait_until(Duration::from_secs(15), || {
        short(knot_port, &format!("laptop-7.{ZONE}"), "A") == "192.168.1.57"
    });
    assert!(
        followed,
        "knot followed the NOTIFY\nknot log:\n{}\nofficebox log:\n{}",
        knot.log_tail(40),
        ob.log()
    );
    assert_eq!(serial(knot_port, ZONE), Some(second_serial));
    assert!(
        wait_until(Duration::from_secs(10), || short(
            knot_port,
            "57.1.168.192.in-addr.arpa",
            "PTR"
        ) == "laptop-7.office.test."),
        "knot has the new PTR:\n{}",
        knot.log_tail(40)
    );
    let knot_log = knot.log();
    assert!(
        knot_log.contains("[office.test.] notify, incoming, remote 127.0.0.1@"),
        "knot got officebox's NOTIFY:\n{knot_log}"
    );
    // Knot asks IXFR once it holds the zone; officebox answers it with the whole zone
    // (RFC 1995 section 4) rather than an error knot has to fall back from.
    assert!(
        knot_log.contains("[office.test.] IXFR, incoming, remote 127.0.0.1@")
            && knot_log.contains("receiving AXFR-style IXFR"),
        "knot refreshed by IXFR and got the whole zone:\n{knot_log}"
    );
    for complaint in ["FORMERR", "NOTIMPL", "fallback to AXFR", "error", "failed"] {
        let complaints: Vec<&str> = knot_log
            .lines()
            .filter(|l| l.contains(complaint) && !l.contains("failed to parse zone file"))
            .collect();
        assert!(
            complaints.is_empty(),
            "knot complains about the transfers: {complaints:#?}"
        );
    }
}
