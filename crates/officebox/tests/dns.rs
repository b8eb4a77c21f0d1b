//! DNS end to end: officebox's zone asked by dig and kdig over UDP and TCP, the resolver
//! forwarding to real upstream servers (dnsmasq) with failover and recovery, and the
//! LAN/WAN policy with clients in network namespaces.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use officebox_testkit::{
    Endpoint, Netns, Officebox, Peer, TestConfig, Veth, free_udp_port, require_program,
    require_root, scratch_dir, wait_until,
};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_officebox"))
}

const RECORDS: &str = r#"
[[dns.records]]
name = "www2"
type = "CNAME"
value = "www"

[[dns.records]]
name = "ipv6host"
type = "AAAA"
value = "2001:db8::10"

[[dns.records]]
name = "_sip._udp"
type = "SRV"
value = "10 5 15060 officebox"

[[dns.records]]
name = "20.1.168.192.in-addr.arpa."
type = "PTR"
value = "printer"

[[dns.records]]
name = "@"
type = "TXT"
value = "v=spf1 mx -all"
"#;

/// A long TXT record: more than 512 bytes, so UDP without EDNS must truncate.
fn long_txt() -> String {
    format!(
        "[[dns.records]]\nname = \"long\"\ntype = \"TXT\"\nvalue = \"{}\"\n",
        "x".repeat(700)
    )
}

fn config() -> TestConfig {
    TestConfig::demo()
        .free_ports()
        .append(RECORDS)
        .append(&long_txt())
}

/// Starts officebox and waits until the DNS service listens.
fn start(c: &TestConfig) -> Officebox {
    let ob = Officebox::start(bin(), &c.text()).expect("starts");
    ob.peer()
        .wait_for_log("dns: serving", officebox_testkit::READY_TIMEOUT)
        .expect("dns listens");
    ob
}

fn port(c: &TestConfig) -> String {
    c.int("dns.port").to_string()
}

/// Runs `tool` (dig or kdig) with `args` and returns its output.
fn ask(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool)
        .args(args)
        .output()
        .expect("dig/kdig runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn dig(port: &str, args: &[&str]) -> String {
    let mut all = vec!["@127.0.0.1", "-p", port, "+time=2", "+tries=1"];
    all.extend_from_slice(args);
    ask("dig", &all)
}

fn short(port: &str, name: &str, rtype: &str, tcp: bool) -> Vec<String> {
    let mut args = vec![name, rtype, "+short"];
    if tcp {
        args.push("+tcp");
    }
    let mut lines: Vec<String> = dig(port, &args).lines().map(str::to_string).collect();
    lines.sort();
    lines
}

#[test]
fn authoritative_answers_for_every_record_type_over_udp_and_tcp() {
    require_program("dig", "bind9-dnsutils");
    let c = config();
    let p = port(&c);
    let _ob = start(&c);
    // name, type, expected answers (sorted)
    let table: &[(&str, &str, &[&str])] = &[
        ("www.office.test", "A", &["203.0.113.10"]),
        ("wan.office.test", "A", &["203.0.113.10"]),
        ("corp.office.test", "A", &["192.168.1.1"]),
        ("admin.office.test", "A", &["192.168.1.1"]),
        ("lan.office.test", "A", &["192.168.1.1"]),
        ("smtp.office.test", "A", &["192.168.1.1", "203.0.113.10"]),
        ("pop.office.test", "A", &["192.168.1.1", "203.0.113.10"]),
        ("office.test", "MX", &["10 smtp.office.test."]),
        ("office.test", "NS", &["officebox.office.test."]),
        ("office.test", "TXT", &["\"v=spf1 mx -all\""]),
        ("printer.office.test", "A", &["192.168.1.20"]),
        // A static name on the LAN answers the reverse question too.
        (
            "20.1.168.192.in-addr.arpa",
            "PTR",
            &["printer.office.test."],
        ),
        ("ipv6host.office.test", "AAAA", &["2001:db8::10"]),
        (
            "www2.office.test",
            "A",
            &["203.0.113.10", "www.office.test."],
        ),
        ("www2.office.test", "CNAME", &["www.office.test."]),
        (
            "_sip._udp.office.test",
            "SRV",
            &["10 5 15060 officebox.office.test."],
        ),
        (
            "20.1.168.192.in-addr.arpa",
            "PTR",
            &["printer.office.test."],
        ),
        (
            "1.1.168.192.in-addr.arpa",
            "PTR",
            &["officebox.office.test."],
        ),
    ];
    for tcp in [false, true] {
        for (name, rtype, want) in table {
            assert_eq!(
                short(&p, name, rtype, tcp),
                *want,
                "{name} {rtype} (tcp: {tcp})"
            );
        }
    }
    // Every answer from the zone is authoritative; the SOA is ours.
    let full = dig(&p, &["office.test", "SOA", "+norec"]);
    assert!(full.contains("flags: qr aa"), "{full}");
    assert!(
        full.contains("officebox.office.test. hostmaster.office.test."),
        "{full}"
    );
    // The MX target's addresses come along as additional records.
    let mx = dig(&p, &["office.test", "MX"]);
    assert!(
        mx.contains("ADDITIONAL: 2") || mx.contains("ADDITIONAL: 3"),
        "{mx}"
    );
    // kdig agrees, over UDP and TCP.
    require_program("kdig", "knot-dnsutils");
    for extra in ["+notcp", "+tcp"] {
        let out = ask(
            "kdig",
            &[
                "@127.0.0.1",
                "-p",
                &p,
                "pop.office.test",
                "A",
                "+short",
                extra,
            ],
        );
        let mut got: Vec<&str> = out.lines().collect();
        got.sort();
        assert_eq!(got, ["192.168.1.1", "203.0.113.10"], "kdig {extra}");
    }
}

#[test]
fn negative_answers_carry_the_soa_and_standalone_mode_answers_with_authority() {
    require_program("dig", "bind9-dnsutils");
    let c = config();
    let p = port(&c);
    let _ob = start(&c);

    let nx = dig(&p, &["nosuch.office.test", "A"]);
    assert!(
        nx.contains("status: NXDOMAIN") && nx.contains("flags: qr aa"),
        "{nx}"
    );
    assert!(
        nx.contains("AUTHORITY: 1") && nx.contains("IN\tSOA"),
        "RFC 2308: SOA in authority\n{nx}"
    );

    let nodata = dig(&p, &["printer.office.test", "AAAA"]);
    assert!(
        nodata.contains("status: NOERROR") && nodata.contains("ANSWER: 0"),
        "{nodata}"
    );
    assert!(nodata.contains("AUTHORITY: 1"), "{nodata}");

    // An empty non-terminal exists: NODATA, not NXDOMAIN.
    let ent = dig(&p, &["_udp.office.test", "A"]);
    assert!(ent.contains("status: NOERROR"), "{ent}");

    // The demo is stand-alone (use_upstream = false): unknown names do not exist, with
    // authority, at once.
    let started = Instant::now();
    let out = dig(&p, &["example.com", "A"]);
    assert!(
        out.contains("status: NXDOMAIN") && out.contains("flags: qr aa"),
        "{out}"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn protocol_edges_edns_truncation_chaos_any_and_malformed_input() {
    require_program("dig", "bind9-dnsutils");
    let c = config();
    let p = port(&c);
    let ob = start(&c);

    let badvers = dig(&p, &["www.office.test", "+edns=1", "+noednsneg"]);
    assert!(badvers.contains("status: BADVERS"), "{badvers}");
    let chaos = dig(&p, &["version.bind", "TXT", "CH"]);
    assert!(chaos.contains("status: REFUSED"), "{chaos}");
    // RFC 8482: ANY gets one RRset, not everything.
    let any = dig(&p, &["smtp.office.test", "ANY"]);
    assert!(any.contains("status: NOERROR"), "{any}");
    let pop_any = dig(&p, &["office.test", "ANY"]);
    assert!(pop_any.contains("ANSWER: 1,"), "minimal ANY\n{pop_any}");

    // 700 bytes of TXT: over UDP without EDNS the answer is truncated (TC)...
    let udp = dig(&p, &["long.office.test", "TXT", "+noedns", "+ignore"]);
    assert!(udp.contains(" tc"), "expected TC:\n{udp}");
    // ...and complete over TCP.
    let tcp = dig(&p, &["long.office.test", "TXT", "+tcp"]);
    assert!(tcp.contains(&"x".repeat(200)), "{tcp}");

    // Garbage: never a crash; a readable header gets FORMERR.
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let target = (Ipv4Addr::LOCALHOST, c.int("dns.port") as u16);
    for junk in [
        &b""[..],
        b"\x00",
        &[0xff; 12],
        &[
            0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 0x0C, 0, 1, 0, 1,
        ],
    ] {
        socket.send_to(junk, target).unwrap();
    }
    let mut buf = [0u8; 512];
    let mut formerr = 0;
    while let Ok(len) = socket.recv(&mut buf) {
        if len >= 12 && buf[3] & 0xF == 1 {
            formerr += 1;
        }
    }
    assert!(
        formerr >= 1,
        "a compression loop in the question is answered FORMERR"
    );
    assert_eq!(
        short(&p, "www.office.test", "A", false),
        ["203.0.113.10"],
        "still serving"
    );
    assert!(
        ob.peer().try_wait().unwrap().is_none(),
        "officebox is alive"
    );
}

/// A query in wire form for `name` A, with `id`.
fn query(id: u16, name: &str) -> Vec<u8> {
    let mut q = vec![(id >> 8) as u8, id as u8, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

#[test]
fn tcp_takes_pipelined_queries_on_one_connection() {
    let c = config();
    let _ob = start(&c);
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, c.int("dns.port") as u16)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut all = Vec::new();
    for (id, name) in [
        (1u16, "www.office.test"),
        (2, "corp.office.test"),
        (3, "nosuch.office.test"),
    ] {
        let q = query(id, name);
        all.extend_from_slice(&(q.len() as u16).to_be_bytes());
        all.extend_from_slice(&q);
    }
    stream.write_all(&all).unwrap(); // three queries in one write
    for want_id in 1u16..=3 {
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).unwrap();
        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut msg).unwrap();
        assert_eq!(u16::from_be_bytes([msg[0], msg[1]]), want_id);
        let rcode = msg[3] & 0xF;
        assert_eq!(rcode, if want_id == 3 { 3 } else { 0 });
    }
}

/// A dnsmasq answering every name under fwd.test with `answer`, on `addr:port`, logging
/// the queries it receives.
fn upstream(dir: &Path, name: &str, addr: &str, port: u16, answer: &str) -> Peer {
    let mut cmd = Command::new("dnsmasq");
    cmd.args([
        "--no-daemon",
        "--log-queries",
        "--log-facility=-",
        &format!("--port={port}"),
        &format!("--listen-address={addr}"),
        "--bind-interfaces",
        "--no-resolv",
        "--no-hosts",
        "--local-ttl=60",
        &format!("--address=/fwd.test/{answer}"),
    ]);
    let peer = Peer::spawn_in(name, cmd, dir).expect("dnsmasq starts");
    peer.wait_for_log("started", Duration::from_secs(5))
        .expect("dnsmasq ready");
    peer
}

#[test]
fn forwarding_fails_over_recovers_caches_and_asks_once() {
    require_program("dnsmasq", "dnsmasq-base");
    require_program("dig", "bind9-dnsutils");
    let dir = scratch_dir("dns-upstream").unwrap();
    let up_port = free_udp_port().unwrap();
    let primary = upstream(dir.path(), "primary", "127.0.0.21", up_port, "10.0.0.1");
    let _secondary = upstream(dir.path(), "secondary", "127.0.0.22", up_port, "10.0.0.2");
    let c = config()
        .set("dns.use_upstream", true)
        .set("dns.primary", format!("127.0.0.21:{up_port}"))
        .set("dns.secondary", format!("127.0.0.22:{up_port}"));
    let p = port(&c);
    let ob = start(&c);

    assert_eq!(
        short(&p, "a1.fwd.test", "A", false),
        ["10.0.0.1"],
        "the primary answers"
    );
    let full = dig(&p, &["a1.fwd.test", "A"]);
    assert!(
        full.contains("flags: qr rd ra;"),
        "a forwarded answer is not authoritative:\n{full}"
    );

    // Many clients asking one new name at once: one upstream query.
    let handles: Vec<_> = (0..12)
        .map(|_| {
            let p = p.clone();
            std::thread::spawn(move || short(&p, "Same-Name-For-All.fwd.test", "A", false))
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), ["10.0.0.1"]);
    }
    let asked = primary
        .log()
        .to_ascii_lowercase()
        .matches("query[a] same-name-for-all.fwd.test")
        .count();
    assert_eq!(
        asked,
        1,
        "identical questions in flight share one upstream query:\n{}",
        primary.log()
    );
    // 0x20: the upstream saw the name in mixed case at least once over a few questions.
    for i in 0..6 {
        short(&p, &format!("casecheck{i}.fwd.test"), "A", false);
    }
    let log = primary.log();
    let names: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split("query[A] ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter(|n| n.to_ascii_lowercase().starts_with("casecheck"))
        .collect();
    assert_eq!(names.len(), 6, "{log}");
    assert!(
        names
            .iter()
            .any(|n| n.chars().any(|ch| ch.is_ascii_uppercase())),
        "0x20: letter case is randomized: {names:?}"
    );

    // The primary dies: one short wait, then the secondary answers...
    primary.kill9().unwrap();
    drop(primary);
    let started = Instant::now();
    assert_eq!(
        short(&p, "a2.fwd.test", "A", false),
        ["10.0.0.2"],
        "failover to the secondary"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // ...and the next questions do not wait for the dead primary again.
    for i in 3..8 {
        let t = Instant::now();
        assert_eq!(
            short(&p, &format!("a{i}.fwd.test"), "A", false),
            ["10.0.0.2"]
        );
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "a{i}: {:?}",
            t.elapsed()
        );
    }
    // Cached answers outlive the upstream.
    assert_eq!(
        short(&p, "a1.fwd.test", "A", false),
        ["10.0.0.1"],
        "from the cache"
    );

    // The primary comes back: officebox notices (background probes) and returns to it.
    let primary = upstream(
        dir.path(),
        "primary-again",
        "127.0.0.21",
        up_port,
        "10.0.0.1",
    );
    let mut i = 100;
    let back = wait_until(Duration::from_secs(15), || {
        i += 1;
        short(&p, &format!("b{i}.fwd.test"), "A", false) == ["10.0.0.1"]
    });
    assert!(
        back,
        "officebox returns to the recovered primary\n{}",
        ob.log()
    );
    drop(primary);
}

#[test]
fn recursion_only_for_lan_clients_the_wan_gets_the_zone_and_refused() {
    require_root();
    require_program("dig", "bind9-dnsutils");
    require_program("dnsmasq", "dnsmasq-base");
    // box: officebox, LAN side 192.168.1.1/24 and WAN side 198.51.100.1/24, both only
    // inside namespaces this test makes.
    let box_ns = Netns::new("dnsbox").unwrap();
    let lan = Netns::new("dnslan").unwrap();
    let wan = Netns::new("dnswan").unwrap();
    let _lan_link = Veth::new(
        Endpoint::netns(&box_ns).addr("192.168.1.1/24"),
        Endpoint::netns(&lan).addr("192.168.1.50/24"),
    )
    .unwrap();
    let _wan_link = Veth::new(
        Endpoint::netns(&box_ns).addr("198.51.100.1/24"),
        Endpoint::netns(&wan).addr("198.51.100.7/24"),
    )
    .unwrap();

    let dir = scratch_dir("dns-policy").unwrap();
    let mut up = box_ns.command("dnsmasq");
    up.args([
        "--no-daemon",
        "--log-facility=-",
        "--port=5300",
        "--listen-address=127.0.0.1",
        "--bind-interfaces",
        "--no-resolv",
        "--no-hosts",
        "--address=/fwd.test/10.9.9.9",
    ]);
    let _upstream = Peer::spawn_in("upstream", up, dir.path()).unwrap();

    let c = TestConfig::demo()
        .set("network.listen", toml_edit_array(&[]))
        .set("dns.port", 53)
        .set("dns.use_upstream", true)
        .set("dns.primary", "127.0.0.1:5300")
        .set("ntp.enabled", false);
    let ob = Officebox::start_in_netns(bin(), &c.text(), &box_ns).expect("starts in the namespace");
    ob.peer()
        .wait_for_log("dns: serving", officebox_testkit::READY_TIMEOUT)
        .expect("dns listens");

    let ask_from = |ns: &Netns, name: &str| -> String {
        let out = ns
            .command("dig")
            .args(["@192.168.1.1", name, "A", "+time=2", "+tries=1"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let ask_wan = |name: &str| -> String {
        let out = wan
            .command("dig")
            .args(["@198.51.100.1", name, "A", "+time=2", "+tries=1"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // LAN: the zone and recursion.
    let zone = ask_from(&lan, "corp.office.test");
    assert!(
        zone.contains("192.168.1.1") && zone.contains(" aa"),
        "{zone}"
    );
    let rec = ask_from(&lan, "x.fwd.test");
    assert!(rec.contains("10.9.9.9") && rec.contains(" ra"), "{rec}");
    // WAN: the same zone (VPN users see the same names), never recursion.
    let zone = ask_wan("corp.office.test");
    assert!(
        zone.contains("192.168.1.1") && zone.contains(" aa"),
        "{zone}"
    );
    let refused = ask_wan("x.fwd.test");
    assert!(
        refused.contains("status: REFUSED"),
        "officebox is not an open resolver:\n{refused}"
    );
    assert!(!refused.contains("10.9.9.9"));
}

fn toml_edit_array(items: &[&str]) -> toml_edit::Value {
    toml_edit::Value::Array(items.iter().copied().collect())
}

fn lease(
    address: [u8; 4],
    host: &str,
    expires_in: i64,
    state: officebox_store::LeaseState,
) -> officebox_store::Lease {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    officebox_store::Lease {
        address: Ipv4Addr::from(address),
        client_id: vec![1, 2, 3, address[3]],
        mac: format!("52:54:00:00:00:{:02x}", address[3]),
        hostname: Some(host.to_string()),
        expires_at: now + expires_in,
        state,
        reserved: false,
    }
}

#[test]
fn dhcp_names_appear_never_shadow_and_go_with_their_lease() {
    use officebox_store::{Db, LeaseState};
    require_program("dig", "bind9-dnsutils");
    let c = config();
    let p = port(&c);
    let ob = start(&c);
    let db = Db::open(&ob.dir().join("demo-data/state.db")).unwrap();
    let resolves = |name: &str, want: &[&str]| {
        wait_until(Duration::from_secs(5), || {
            short(&p, name, "A", false) == want
        })
    };

    // A client that sent "Laptop 7" as its name: published as laptop-7, with its PTR.
    db.upsert_lease(&lease(
        [192, 168, 1, 57],
        "Laptop 7",
        3600,
        LeaseState::Bound,
    ))
    .unwrap();
    assert!(
        resolves("laptop-7.office.test", &["192.168.1.57"]),
        "{}",
        ob.log()
    );
    assert_eq!(
        short(&p, "57.1.168.192.in-addr.arpa", "PTR", false),
        ["laptop-7.office.test."]
    );

    // A client asking for a built-in or static name does not get it.
    db.upsert_lease(&lease([192, 168, 1, 58], "www", 3600, LeaseState::Bound))
        .unwrap();
    db.upsert_lease(&lease(
        [192, 168, 1, 59],
        "printer",
        3600,
        LeaseState::Bound,
    ))
    .unwrap();
    // Two clients wanting one name: the first keeps it.
    db.upsert_lease(&lease(
        [192, 168, 1, 60],
        "laptop-7",
        3600,
        LeaseState::Bound,
    ))
    .unwrap();
    db.upsert_lease(&lease([192, 168, 1, 61], "desk", 3, LeaseState::Bound))
        .unwrap();
    assert!(resolves("desk.office.test", &["192.168.1.61"]));
    assert_eq!(short(&p, "www.office.test", "A", false), ["203.0.113.10"]);
    assert_eq!(
        short(&p, "printer.office.test", "A", false),
        ["192.168.1.20"]
    );
    assert_eq!(
        short(&p, "laptop-7.office.test", "A", false),
        ["192.168.1.57"]
    );

    // `officebox dns names` shows where each name came from.
    let out = Command::new(bin())
        .args(["dns", "names", "--config"])
        .arg(ob.config_path())
        .current_dir(ob.dir())
        .output()
        .unwrap();
    let names = String::from_utf8_lossy(&out.stdout);
    let line = |needle: &str| {
        names.lines().any(|l| {
            l.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .contains(needle)
        })
    };
    assert!(
        line("laptop-7.office.test A 300 dhcp 192.168.1.57"),
        "{names}"
    );
    assert!(
        line("www.office.test A 3600 built-in 203.0.113.10"),
        "{names}"
    );
    assert!(
        line("printer.office.test A 3600 static 192.168.1.20"),
        "{names}"
    );

    // Released: gone. Expired (desk's lease ran for 3 s): gone, without any write.
    db.upsert_lease(&lease(
        [192, 168, 1, 57],
        "laptop-7",
        3600,
        LeaseState::Released,
    ))
    .unwrap();
    assert!(
        resolves("desk.office.test", &[]),
        "an expired lease's name is removed\n{}",
        ob.log()
    );
    // laptop-7 now belongs to the other client that asked for it.
    assert!(
        resolves("laptop-7.office.test", &["192.168.1.60"]),
        "{}",
        ob.log()
    );
    let nx = dig(&p, &["desk.office.test", "A"]);
    assert!(nx.contains("status: NXDOMAIN"), "{nx}");
}
