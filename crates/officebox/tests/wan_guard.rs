//! The box as seen from the Internet and from a PC using its other address, in the
//! three-namespace office (pc, box, isp): packets with forged LAN sources, a SYN flood
//! from one address, a PC asking the box's WAN address, and a stranger asking for
//! delivery notices to be sent to someone else.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use officebox_testkit::{
    DnsRecord, Office, Officebox, PYTHON, Peer, READY_TIMEOUT, TestConfig, TestDns,
    require_program, scratch_dir, wait_until,
};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_officebox"))
}

fn start(office: &Office, config: &TestConfig, ready: &[&str]) -> Officebox {
    let ob =
        Officebox::start_in_netns(bin(), &config.text(), &office.boxns).expect("officebox starts");
    for line in std::iter::once(&"net: applied").chain(ready) {
        ob.peer()
            .wait_for_log(line, READY_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}\n{}", ob.log()));
    }
    ob
}

/// Adds (`add`) or removes (`del`) an address on the ISP's end of the WAN link.
fn isp_address(office: &Office, verb: &str, cidr: &str) {
    office
        .isp
        .run("ip", ["addr", verb, cidr, "dev", office.wan.name_b()])
        .unwrap();
}

/// The packets the ruleset dropped as forged.
fn spoofed(office: &Office) -> u64 {
    let out = office
        .boxns
        .run("nft", ["list", "counter", "inet", "officebox", "spoofed"])
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no counter: {text}"))
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?}:\n{text}");
    text
}

#[test]
fn a_pc_asking_the_boxs_wan_address_is_answered_from_it() {
    require_program("dig", "bind9-dnsutils");
    require_program("ntpdate", "ntpsec-ntpdate");
    require_program("sipsak", "sipsak");
    let office = Office::new("wpk").unwrap();
    let config = office
        .config("firewall-nat")
        .set("ntp.enabled", true)
        .set("ntp.port", 123);
    let ob = start(
        &office,
        &config,
        &["dns: serving", "ntp: serving", "phone: serving"],
    );
    // The zone gives smtp and pop both addresses; a PC may well use the WAN one.
    for server in [Office::WAN_BOX, "192.168.1.1"] {
        assert_eq!(
            office.pc.dig(server, "corp.office.test", "A").unwrap(),
            vec!["192.168.1.1".to_string()],
            "DNS asked at {server}\n{}",
            ob.log()
        );
        let time = run_ok(office.pc.command("ntpdate").args(["-q", server]));
        assert!(time.contains(server), "NTP asked at {server}: {time}");
        let options =
            run_ok(
                office
                    .pc
                    .command("sipsak")
                    .args(["-v", "-s", &format!("sip:{server}:15060")]),
            );
        assert!(
            options.contains("200"),
            "SIP OPTIONS at {server}: {options}"
        );
    }
}

#[test]
fn packets_with_forged_lan_sources_from_the_wan_are_dropped_and_counted() {
    require_program("dig", "bind9-dnsutils");
    require_program("dnsmasq", "dnsmasq-base");
    let office = Office::new("wsp").unwrap();
    // An upstream DNS server on the Internet side, which logs every query it gets.
    let upstream = TestDns::start(
        &office.isp,
        format!("{}:53", Office::WAN_ISP).parse().unwrap(),
        &[DnsRecord::Addr {
            host: "www.example.net".into(),
            addr: "203.0.113.80".parse().unwrap(),
        }],
    )
    .unwrap();
    let config = office
        .config("firewall-nat")
        .set("dns.use_upstream", true)
        .set("dns.primary", format!("{}:53", Office::WAN_ISP));
    let ob = start(&office, &config, &["dns: serving", "phone: serving"]);
    // The office's own PC resolves through the box: the upstream is asked.
    assert_eq!(
        office
            .pc
            .dig("192.168.1.1", "www.example.net", "A")
            .unwrap(),
        vec!["203.0.113.80".to_string()]
    );
    // (The box asks in mixed letter case, RFC 0x20: compare in lower case.)
    let asked = upstream
        .log()
        .to_lowercase()
        .matches("query[a] www.example.net")
        .count();
    assert!(asked >= 1, "{}", upstream.log());

    // Someone on the Internet forges the PC's address as source: no recursion for them,
    // not even an answer, and the box counts what it dropped.
    isp_address(&office, "add", &format!("{}/32", Office::PC));
    let forged = office
        .isp
        .command("dig")
        .args([
            "-b",
            Office::PC,
            &format!("@{}", Office::WAN_BOX),
            "forged.example.net",
        ])
        .args(["+time=1", "+tries=2"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&forged.stdout).contains("ANSWER SECTION"),
        "{}",
        String::from_utf8_lossy(&forged.stdout)
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !upstream.log().to_lowercase().contains("forged.example.net"),
        "a forged LAN source was recursed upstream:\n{}",
        upstream.log()
    );
    assert!(spoofed(&office) >= 2, "the forged queries are counted");

    // 25 bad digests under the PC's address cannot lock the PC's phone out.
    let clients = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hardening/clients.py");
    run_ok(office.isp.command(PYTHON).arg(&clients).args([
        "bad-digests",
        "--host",
        Office::WAN_BOX,
        "--port",
        "15060",
        "--source",
        Office::PC,
        "--user",
        "alice",
        "--count",
        "25",
    ]));
    std::thread::sleep(Duration::from_millis(500));
    isp_address(&office, "del", &format!("{}/32", Office::PC));
    // sipsak exits 0 once the registration is answered 200.
    run_ok(office.pc.command("sipsak").args([
        "-U",
        "-s",
        "sip:101@192.168.1.1:15060",
        "-u",
        "alice",
        "-a",
        "demo-alice",
        "-x",
        "60",
    ]));
    assert!(
        !ob.log().contains("too many failed logins"),
        "no lockout:\n{}",
        ob.log()
    );
}

#[test]
fn one_syn_flooder_does_not_starve_everyone_else() {
    require_program("nping", "nmap");
    require_program(PYTHON, "python3");
    let office = Office::new("wsy").unwrap();
    let ob = start(
        &office,
        &office.config("firewall-nat-dmz"),
        &["smtp: serving"],
    );
    // The flooder has an address of its own on the Internet side.
    let flooder = "198.51.100.3";
    isp_address(&office, "add", &format!("{flooder}/24"));
    let dir = scratch_dir("synflood").unwrap();
    let mut flood = office.isp.command("nping");
    flood
        .args([
            "--tcp", "--flags", "syn", "-p", "25", "--rate", "1000", "-c", "6000",
        ])
        .args(["-S", flooder, "-q", Office::WAN_BOX]);
    let flood = Peer::spawn_in("nping", flood, dir.path()).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // Meanwhile a mail server from another address connects, ten times over two seconds.
    let script = format!(
        "import socket, time\nok = 0\nfor i in range(10):\n    try:\n        s = socket.create_connection(('{}', 25), timeout=2)\n        ok += s.recv(100).startswith(b'220')\n        s.close()\n    except OSError:\n        pass\n    time.sleep(0.2)\nprint('connected', ok)\n",
        Office::WAN_BOX
    );
    let out = run_ok(office.isp.command(PYTHON).args(["-c", &script]));
    assert!(
        out.contains("connected 10"),
        "the other sender gets through: {out}\n{}",
        ob.log()
    );
    let counter = office
        .boxns
        .run("nft", ["list", "counter", "inet", "officebox", "syn_flood"])
        .unwrap();
    let text = String::from_utf8_lossy(&counter.stdout).into_owned();
    assert!(
        !text.contains("packets 0 "),
        "the flood was held back: {text}"
    );
    drop(flood);
}

/// Sends one message over SMTP from `ns` with DSN parameters (Python's smtplib).
fn send_with_dsn(ns: &officebox_testkit::Netns, server: &str, from: &str, to: &str) {
    let script = format!(
        "import smtplib\ns = smtplib.SMTP('{server}', 25, timeout=10)\ns.ehlo('sender.example')\n\
         s.sendmail('{from}', ['{to}'], 'Subject: tell me\\r\\n\\r\\nbody\\r\\n', mail_options=['RET=FULL', 'ENVID=X1'], rcpt_options=['NOTIFY=SUCCESS'])\ns.quit()\n"
    );
    run_ok(ns.command(PYTHON).args(["-c", &script]));
}

#[test]
fn a_stranger_cannot_have_the_box_mail_someone_else_a_notice() {
    require_program(PYTHON, "python3");
    let office = Office::new("wbs").unwrap();
    let ob = start(&office, &office.config("firewall-nat"), &["smtp: serving"]);
    let queue = || ob.cli(bin(), &["mail", "queue"]).unwrap();
    // From the Internet, naming a victim as sender and asking for a success notice with
    // the whole message: delivered, and nothing goes to the victim.
    send_with_dsn(
        &office.isp,
        Office::WAN_BOX,
        "victim@far.example",
        "alice@office.test",
    );
    std::thread::sleep(Duration::from_secs(1));
    let q = queue();
    assert!(
        !q.contains("victim@far.example"),
        "a notice for the named sender was queued:\n{q}"
    );
    // From the office's own PC the same request is honoured.
    send_with_dsn(
        &office.pc,
        "192.168.1.1",
        "colleague@far.example",
        "alice@office.test",
    );
    assert!(
        wait_until(Duration::from_secs(5), || queue()
            .contains("colleague@far.example")),
        "a LAN sender gets the success notice it asked for:\n{}\n{}",
        queue(),
        ob.log()
    );
}
