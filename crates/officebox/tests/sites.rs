//! Two offices joined by officebox's WireGuard tunnel, in five namespaces joined by veth
//! pairs: pcA (192.168.1.50) - boxA (LAN 192.168.1.1, WAN 198.51.100.2) - inet (a plain
//! router between 198.51.100.0/24 and 203.0.113.0/24) - boxB (WAN 203.0.113.2, LAN
//! 192.168.2.1) - pcB (192.168.2.50). Both boxes manage their interfaces and firewall
//! (firewall-nat). Each admin gives the other `officebox vpn pairing` (which makes the
//! box's key) before the boxes start. Only addresses inside these namespaces are used.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use officebox_testkit::{
    Baresip, BaresipAccount, BaresipEvent, Endpoint, Netns, Officebox, READY_TIMEOUT, TestConfig,
    Veth, audio, scratch_dir, wait_until,
};

/// How long a phone event may take (a call through a silent site's 5 s included).
const EVENT_TIMEOUT: Duration = Duration::from_secs(15);

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_officebox"))
}

/// The five namespaces and their links (the links go first when dropped).
struct Sites {
    lan_a: Veth,
    wan_a: Veth,
    wan_b: Veth,
    lan_b: Veth,
    pc_a: Netns,
    box_a: Netns,
    inet: Netns,
    box_b: Netns,
    pc_b: Netns,
}

impl Sites {
    fn new() -> Sites {
        officebox_testkit::require_root();
        let pc_a = Netns::new("sapc").unwrap();
        let box_a = Netns::new("sabx").unwrap();
        let inet = Netns::new("sinet").unwrap();
        let box_b = Netns::new("sbbx").unwrap();
        let pc_b = Netns::new("sbpc").unwrap();
        let lan_a = Veth::new(
            Endpoint::netns(&box_a),
            Endpoint::netns(&pc_a).addr("192.168.1.50/24"),
        )
        .unwrap();
        let wan_a = Veth::new(
            Endpoint::netns(&box_a),
            Endpoint::netns(&inet).addr("198.51.100.1/24"),
        )
        .unwrap();
        let wan_b = Veth::new(
            Endpoint::netns(&box_b),
            Endpoint::netns(&inet).addr("203.0.113.1/24"),
        )
        .unwrap();
        let lan_b = Veth::new(
            Endpoint::netns(&box_b),
            Endpoint::netns(&pc_b).addr("192.168.2.50/24"),
        )
        .unwrap();
        for (pc, gw) in [(&pc_a, "192.168.1.1"), (&pc_b, "192.168.2.1")] {
            let out = pc
                .run("ip", ["route", "add", "default", "via", gw])
                .unwrap();
            assert!(out.status.success(), "{out:?}");
        }
        let out = inet
            .run("sysctl", ["-qw", "net.ipv4.ip_forward=1"])
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        Sites {
            lan_a,
            wan_a,
            wan_b,
            lan_b,
            pc_a,
            box_a,
            inet,
            box_b,
            pc_b,
        }
    }
}

/// One office's config (firewall-nat, managing its two interfaces), without sites yet.
fn office(
    host: &str,
    domain: &str,
    lan_if: &str,
    lan: &str,
    wan_if: &str,
    wan: &str,
    gateway: &str,
) -> TestConfig {
    TestConfig::demo()
        .set("network.hostname", host)
        .set("network.domain", domain)
        .set("network.manage", true)
        .set(
            "network.listen",
            toml_edit::Value::Array(toml_edit::Array::new()),
        )
        .set("network.lan.interface", lan_if)
        .set("network.lan.address", lan)
        .set("network.wan.interface", wan_if)
        .set("network.wan.address", wan)
        .set("network.wan.gateway", gateway)
        .set("security.mode", "firewall-nat")
        .set(
            "security.wan_services",
            toml_edit::Value::Array(["dns"].into_iter().collect()),
        )
        .set("dns.port", 53)
        .set("ntp.enabled", false)
        .set("web.enabled", false)
        .set("mail.enabled", false)
}

/// Runs `officebox vpn pairing` for the box whose config and data are in `dir` (its key
/// is made then), and checks `vpn key` says the same key; the pairing text.
fn pairing(dir: &Path, config: &TestConfig) -> String {
    std::fs::write(dir.join("officebox.toml"), config.text()).unwrap();
    let run = |what: &str| {
        let out = Command::new(bin())
            .args(["vpn", what, "--config", "officebox.toml"])
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let text = run("pairing");
    let key = run("key").trim().to_string();
    assert_eq!(key.len(), 44, "{key}");
    assert!(text.contains(&format!("public_key = \"{key}\"")), "{text}");
    text
}

/// `[vpn]` with the other office as its one site, from that office's pairing text;
/// `tunnel` is this box's own tunnel address.
fn vpn_with(pairing: &str, tunnel: &str) -> String {
    format!("[vpn]\nenabled = true\naddress = \"{tunnel}\"\n\n{pairing}")
}

fn pings(ns: &Netns, addr: &str) -> bool {
    ns.run("ping", ["-c", "1", "-W", "1", addr])
        .is_ok_and(|o| o.status.success())
}

#[test]
fn two_offices_reach_each_other_through_the_tunnel_and_the_wan_stays_closed() {
    let net = Sites::new();
    let (dir_a, dir_b) = (
        scratch_dir("site-a").unwrap(),
        scratch_dir("site-b").unwrap(),
    );
    let a = office(
        "head",
        "office.test",
        net.lan_a.name_a(),
        "192.168.1.1",
        net.wan_a.name_a(),
        "198.51.100.2",
        "198.51.100.1",
    );
    // The branch's phones are 2xx.
    let b = office(
        "branch",
        "branch.test",
        net.lan_b.name_a(),
        "192.168.2.1",
        net.wan_b.name_a(),
        "203.0.113.2",
        "203.0.113.1",
    )
    .set_user("alice", "extension", 201)
    .set_user("bob", "extension", 202);
    // Its phones sign in under its own domain (the digest realm).
    let (md5, sha256) = officebox_secrets::sip_ha1("bob", "branch.test", "demo-bob");
    let b = b
        .set_user("bob", "sip_ha1_md5", md5)
        .set_user("bob", "sip_ha1_sha256", sha256);
    // Each admin gives the other the pairing text.
    let (pair_a, pair_b) = (pairing(dir_a.path(), &a), pairing(dir_b.path(), &b));
    assert_ne!(pair_a, pair_b);
    assert!(
        pair_b.contains("endpoint = \"203.0.113.2:51820\"")
            && pair_b.contains("address = \"192.168.2.1\"")
            && pair_b.contains("name = \"branch\"")
            && pair_b.contains("extensions = \"200-299\"")
            && pair_b.contains("sip_port = 15060"),
        "{pair_b}"
    );
    // While the branch does not answer, its calls go to bob's voicemail at the head office.
    let a = a.append(&vpn_with(
        &format!("{pair_b}fallback = \"voicemail:bob\"\n"),
        "10.99.0.1/24",
    ));
    let b = b.append(&vpn_with(&pair_a, "10.99.0.2/24"));
    let box_a =
        Officebox::restart_in_netns(bin(), &a.text(), &net.box_a, dir_a).expect("box A starts");
    let box_b =
        Officebox::restart_in_netns(bin(), &b.text(), &net.box_b, dir_b).expect("box B starts");
    for ob in [&box_a, &box_b] {
        ob.peer()
            .wait_for_log("net: applied", READY_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}\n{}", ob.log()));
        ob.peer()
            .wait_for_log("vpn: serving", READY_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}\n{}", ob.log()));
    }

    // A PC at the head office reaches a PC at the branch, and the branch's box.
    let reached = wait_until(Duration::from_secs(10), || pings(&net.pc_a, "192.168.2.50"));
    assert!(
        reached,
        "pcA cannot reach pcB through the tunnel\n--- A ---\n{}\n--- B ---\n{}",
        box_a.log(),
        box_b.log()
    );
    assert!(pings(&net.pc_b, "192.168.1.50"), "pcB cannot reach pcA");
    assert!(pings(&net.pc_a, "192.168.2.1"), "pcA cannot reach box B");
    for (ob, other) in [(&box_a, "branch"), (&box_b, "head")] {
        ob.peer()
            .wait_for_log(&format!("site up site={other}"), Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{e}\n{}", ob.log()));
    }
    // Each office's names resolve at the other: asked of the PC's own box, which asks the
    // other box through the tunnel (forward and reverse).
    let dig =
        |ns: &Netns, server: &str, name: &str, rtype: &str| ns.dig(server, name, rtype).unwrap();
    assert_eq!(
        dig(&net.pc_a, "192.168.1.1", "printer.branch.test", "A"),
        ["192.168.1.20"]
    );
    assert_eq!(
        dig(&net.pc_a, "192.168.1.1", "1.2.168.192.in-addr.arpa", "PTR"),
        ["branch.branch.test."]
    );
    let head = dig(&net.pc_b, "192.168.2.1", "head.office.test", "A");
    assert!(head.iter().any(|l| l == "192.168.1.1"), "{head:?}");
    // The Internet may ask the box for its own names (DNS is open on the WAN here), but is
    // not told the other office's.
    assert!(
        dig(&net.inet, "198.51.100.2", "head.office.test", "A")
            .contains(&"198.51.100.2".to_string())
    );
    assert!(dig(&net.inet, "198.51.100.2", "printer.branch.test", "A").is_empty());
    // The status says so (written every few seconds).
    let status = || {
        let out = Command::new(bin())
            .args(["vpn", "status", "--config"])
            .arg(box_a.config_path())
            .current_dir(box_a.dir())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let shown = wait_until(Duration::from_secs(12), || {
        status().lines().any(|l| {
            l.starts_with("branch")
                && l.contains("203.0.113.2:51820")
                && l.contains("up, handshake")
                && !l.contains("received 0 B")
                && l.contains("names answer, phones answer")
        })
    });
    assert!(shown, "{}", status());
    // TCP across, with the PC's own address (no NAT between the offices).
    let dir = scratch_dir("site-tcp").unwrap();
    let server = net.pc_b.tcp_greeter(dir.path(), "branch", 8088).unwrap();
    assert_eq!(
        net.pc_a.tcp_greeting("192.168.2.50", 8088).as_deref(),
        Some("hello from branch")
    );
    server
        .wait_for_log("peer 192.168.1.50", Duration::from_secs(5))
        .unwrap();
    // The Internet does not reach the branch's PC, nor is the tunnel a way in for it; a
    // stranger writing to the tunnels' port gets no answer at all.
    assert_eq!(net.inet.tcp_greeting("192.168.2.50", 8088), None);
    assert!(!pings(&net.inet, "192.168.1.50"));
    let probe = concat!(
        "import socket\n",
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n",
        "s.settimeout(1.5)\n",
        "s.sendto(bytes([1, 0, 0, 0]) + bytes(144), ('203.0.113.2', 51820))\n",
        "try:\n",
        "    s.recvfrom(512)\n",
        "    print('answered')\n",
        "except socket.timeout:\n",
        "    print('silent')\n",
    );
    let out = net
        .inet
        .command("python3")
        .args(["-c", probe])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "silent",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A phone at the head office calls one at the branch: both hear each other, and the
    // branch's phone shows the caller's extension and name (at its own box, where 101
    // dialled back is the head office's).
    let dir = scratch_dir("site-calls").unwrap();
    let (alice_says, bob_says) = (dir.path().join("alice.wav"), dir.path().join("bob.wav"));
    audio::speak_wav(
        &alice_says,
        "Good morning from the head office, this is Alice.",
    )
    .unwrap();
    audio::speak_wav(&bob_says, "The branch office hears you, Bob speaking here.").unwrap();
    let phone = |ns: &Netns, ip: [u8; 4], ext: &str, login: &str, domain: &str| {
        BaresipAccount::new(ext, std::net::SocketAddr::from((ip, 15060)))
            .netns(ns)
            .local_ip(std::net::Ipv4Addr::from(pc_ip(ip)))
            .domain(domain)
            .auth(login, &format!("demo-{login}"))
            .max_call(Duration::from_secs(60))
    };
    let alice = Baresip::start(
        "site-alice",
        &phone(&net.pc_a, [192, 168, 1, 1], "101", "alice", "office.test").play(&alice_says),
    )
    .unwrap();
    let bob = Baresip::start(
        "site-bob",
        &phone(&net.pc_b, [192, 168, 2, 1], "202", "bob", "branch.test")
            .auto_answer(true)
            .play(&bob_says),
    )
    .unwrap();
    for p in [&alice, &bob] {
        p.wait_registered(EVENT_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}\n{}\n{}", box_a.log(), box_b.log()));
    }
    let event = |p: &Baresip, mark: usize, kind: &str| -> BaresipEvent {
        p.wait_for_event_after(mark, kind, EVENT_TIMEOUT)
            .unwrap_or_else(|e| {
                panic!(
                    "{e}\n--- A ---\n{}\n--- B ---\n{}",
                    box_a.log(),
                    box_b.log()
                )
            })
    };
    alice.dial("202").unwrap();
    let started = event(&alice, 0, "CALL_ESTABLISHED");
    let incoming = event(&bob, 0, "CALL_ESTABLISHED");
    assert!(
        incoming.peer_uri.starts_with("sip:101@branch.test")
            && incoming.json.contains("Alice Example"),
        "{incoming:?}"
    );
    let long = audio::read_wav(&alice_says)
        .unwrap()
        .seconds()
        .max(audio::read_wav(&bob_says).unwrap().seconds());
    std::thread::sleep(
        (started.received + Duration::from_secs_f64(long + 1.0))
            .saturating_duration_since(std::time::Instant::now()),
    );
    let mark = alice.mark();
    alice.hangup().unwrap();
    event(&alice, mark, "CALL_CLOSED");
    event(&bob, 0, "CALL_CLOSED");
    for (who, heard, says) in [
        (
            "alice",
            alice.last_recording(EVENT_TIMEOUT).unwrap().heard,
            &bob_says,
        ),
        (
            "bob",
            bob.last_recording(EVENT_TIMEOUT).unwrap().heard,
            &alice_says,
        ),
    ] {
        let m = audio::compare(says, &heard).unwrap();
        assert!(m.score > 0.8, "{who} did not hear the other office: {m:?}");
    }
    // The branch puts a call from the head office only through to its own phones: a
    // number of its block nobody has is refused there, not sent on.
    let mark = alice.mark();
    alice.dial("299").unwrap();
    let closed = event(&alice, mark, "CALL_CLOSED");
    assert!(closed.param.contains("404"), "{closed:?}");
    assert!(
        box_b.log().contains("a call from another site refused"),
        "{}",
        box_b.log()
    );

    // The branch's WAN link goes down and comes back: the tunnel carries again.
    let wan_b = net.wan_b.name_a().to_string();
    let down = net
        .box_b
        .run("ip", ["link", "set", &wan_b, "down"])
        .unwrap();
    assert!(down.status.success());
    assert!(!pings(&net.pc_a, "192.168.2.50"));
    // A call to the branch meanwhile goes to its fallback, bob's voicemail here.
    let mark = alice.mark();
    alice.dial("202").unwrap();
    event(&alice, mark, "CALL_ESTABLISHED");
    assert!(
        box_a.log().contains("goes to the fallback"),
        "{}",
        box_a.log()
    );
    let mark = alice.mark();
    alice.hangup().unwrap();
    event(&alice, mark, "CALL_CLOSED");
    let up = net.box_b.run("ip", ["link", "set", &wan_b, "up"]).unwrap();
    assert!(up.status.success());
    // The box puts its WAN address and route back on its own (the net service converges).
    let back = wait_until(Duration::from_secs(30), || pings(&net.pc_a, "192.168.2.50"));
    assert!(
        back,
        "the tunnel did not carry again\n--- A ---\n{}\n--- B ---\n{}",
        box_a.log(),
        box_b.log()
    );
    // ... and the phones call across again.
    let (mark_a, mark_b) = (alice.mark(), bob.mark());
    alice.dial("202").unwrap();
    event(&alice, mark_a, "CALL_ESTABLISHED");
    event(&bob, mark_b, "CALL_ESTABLISHED");
    alice.hangup().unwrap();
    drop(server);
    let _ = &net.inet;
}

/// The PC's address on the LAN whose box is `ip`.
fn pc_ip(ip: [u8; 4]) -> [u8; 4] {
    [ip[0], ip[1], ip[2], 50]
}

/// The device's configuration as `wg setconf` takes it: without wg-quick's Address and
/// DNS lines (set by hand here, as wg-quick would) and comments.
fn wg_setconf_text(config: &str) -> String {
    config
        .lines()
        .filter(|l| !l.starts_with("Address") && !l.starts_with("DNS") && !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// A laptop at home running wireguard-go, set up with `wg` from the configuration the box
/// made for it, with the addresses and routes wg-quick would make (its address, the LAN
/// and the tunnels' subnet through the tunnel).
struct Laptop {
    _wireguard: officebox_testkit::Peer,
    dir: tempfile::TempDir,
    interface: String,
}

impl Laptop {
    /// Joins the laptop in `home` with `conf`; its interface is `prefix` + this test
    /// process's number (wireguard-go's control socket, /var/run/wireguard/NAME.sock, is
    /// one per name for the whole machine).
    fn join(home: &Netns, conf: &str, prefix: &str) -> Laptop {
        let dir = scratch_dir(prefix).unwrap();
        let interface = format!("{prefix}{}", std::process::id() % 1_000_000);
        let mut cmd = home.command("wireguard-go");
        cmd.args(["-f", &interface]);
        let wireguard = officebox_testkit::Peer::spawn_in("wireguard-go", cmd, dir.path()).unwrap();
        assert!(wait_until(Duration::from_secs(5), || home
            .run("ip", ["link", "show", &interface])
            .is_ok()));
        let laptop = Laptop {
            _wireguard: wireguard,
            dir,
            interface,
        };
        laptop.import(home, conf);
        let wg = &laptop.interface;
        for cmd in [
            format!("ip address add 10.99.0.10/32 dev {wg}"),
            format!("ip link set {wg} up"),
            format!("ip route add 192.168.1.0/24 dev {wg}"),
            format!("ip route add 10.99.0.0/24 dev {wg}"),
        ] {
            must(home, &cmd);
        }
        laptop
    }

    /// Gives wireguard-go configuration `conf` (a new key, say).
    fn import(&self, home: &Netns, conf: &str) {
        let file = self.dir.path().join("laptop.conf");
        std::fs::write(&file, wg_setconf_text(conf)).unwrap();
        must(
            home,
            &format!("wg setconf {} {}", self.interface, file.display()),
        );
    }
}

/// A laptop at home (192.0.2.10, on the Internet) with wireguard-go (another WireGuard
/// implementation, and `wg` to set it up) imports the configuration the box made for it:
/// it reaches the office's PCs and names, its softphone registers as the user's extension
/// (and as nobody else's) and calls the office; limited to the box, it reaches only the box; removed from the
/// config, nothing of it gets through.
#[test]
fn a_remote_worker_joins_with_wireguard_go_and_is_cut_off_when_removed() {
    officebox_testkit::require_program("wireguard-go", "wireguard-go");
    officebox_testkit::require_program("wg", "wireguard-tools");
    let net = Sites::new();
    let home = Netns::new("shome").unwrap();
    let _wan_home = Veth::new(
        Endpoint::netns(&home).addr("192.0.2.10/24"),
        Endpoint::netns(&net.inet).addr("192.0.2.1/24"),
    )
    .unwrap();
    let out = home
        .run("ip", ["route", "add", "default", "via", "192.0.2.1"])
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let dir = scratch_dir("site-home").unwrap();
    let base = office(
        "head",
        "office.test",
        net.lan_a.name_a(),
        "192.168.1.1",
        net.wan_a.name_a(),
        "198.51.100.2",
        "198.51.100.1",
    );
    let device = |access: &str| {
        format!(
            "[vpn]\nenabled = true\n\n[[vpn.peers]]\nname = \"alice-laptop\"\nuser = \"alice\"\n\
             address = \"10.99.0.10\"\naccess = \"{access}\"\n"
        )
    };
    let a = base.clone().append(&device("lan"));
    let ob = Officebox::restart_in_netns(bin(), &a.text(), &net.box_a, dir).expect("box A starts");
    for needle in ["net: applied", "vpn: serving"] {
        ob.peer()
            .wait_for_log(needle, READY_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}\n{}", ob.log()));
    }
    // The admin hands the device its configuration (made by the box, shown again on
    // demand).
    let conf = ob.cli(bin(), &["vpn", "device", "alice-laptop"]).unwrap();
    assert!(
        conf.contains("Address = 10.99.0.10/32")
            && conf.contains("DNS = 192.168.1.1, office.test")
            && conf.contains("Endpoint = 198.51.100.2:51820")
            && conf.contains("AllowedIPs = 192.168.1.0/24, 10.99.0.0/24"),
        "{conf}"
    );
    assert_eq!(
        ob.cli(bin(), &["vpn", "device", "alice-laptop"]).unwrap(),
        conf
    );
    let laptop = Laptop::join(&home, &conf, "obxwg");
    // The office's PCs and names, from home.
    let reached = wait_until(Duration::from_secs(10), || pings(&home, "192.168.1.50"));
    assert!(
        reached,
        "the laptop does not reach the office\n{}",
        ob.log()
    );
    ob.peer()
        .wait_for_log("device up device=alice-laptop", Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}\n{}", ob.log()));
    let names = home.dig("192.168.1.1", "head.office.test", "A").unwrap();
    assert!(names.contains(&"192.168.1.1".to_string()), "{names:?}");
    let pc = scratch_dir("site-pc").unwrap();
    let greeter = net.pc_a.tcp_greeter(pc.path(), "office-pc", 8088).unwrap();
    assert_eq!(
        home.tcp_greeting("192.168.1.50", 8088).as_deref(),
        Some("hello from office-pc")
    );
    greeter
        .wait_for_log("peer 10.99.0.10", Duration::from_secs(5))
        .unwrap();
    let status = ob.cli(bin(), &["vpn", "status"]).unwrap();
    assert!(
        status.lines().any(|l| l.starts_with("alice-laptop")
            && l.contains("192.0.2.10:")
            && l.contains("up,")),
        "{status}"
    );

    // The softphone on the laptop registers as alice's extension through the tunnel and
    // calls bob's phone in the office.
    let account = |ns: &Netns, ip: [u8; 4], ext: &str, login: &str| {
        BaresipAccount::new(ext, std::net::SocketAddr::from(([192, 168, 1, 1], 15060)))
            .netns(ns)
            .local_ip(std::net::Ipv4Addr::from(ip))
            .domain("office.test")
            .auth(login, &format!("demo-{login}"))
    };
    let says = laptop.dir.path().join("home.wav");
    audio::speak_wav(&says, "Working from home today, Bob, can you hear me?").unwrap();
    let softphone = Baresip::start(
        "home-alice",
        &account(&home, [10, 99, 0, 10], "101", "alice").play(&says),
    )
    .unwrap();
    let desk = Baresip::start(
        "desk-bob",
        &account(&net.pc_a, [192, 168, 1, 50], "102", "bob").auto_answer(true),
    )
    .unwrap();
    for p in [&softphone, &desk] {
        p.wait_registered(EVENT_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}\n{}", ob.log()));
    }
    softphone.dial("102").unwrap();
    for p in [&softphone, &desk] {
        p.wait_for_event_after(0, "CALL_ESTABLISHED", EVENT_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}\n{}", ob.log()));
    }
    std::thread::sleep(Duration::from_secs_f64(
        audio::read_wav(&says).unwrap().seconds() + 1.0,
    ));
    softphone.hangup().unwrap();
    let heard = desk.last_recording(EVENT_TIMEOUT).unwrap().heard;
    let m = audio::compare(&says, &heard).unwrap();
    assert!(m.score > 0.8, "the desk phone did not hear home: {m:?}");
    drop(desk);
    drop(softphone);
    // The laptop is alice's: bob's password typed into its softphone gets nowhere (a
    // device's tunnel carries its own user's phone only).
    let borrowed = Baresip::start(
        "home-as-bob",
        &account(&home, [10, 99, 0, 10], "102", "bob"),
    )
    .unwrap();
    let refused = borrowed.wait_registered(EVENT_TIMEOUT).unwrap_err();
    assert!(refused.to_string().contains("403"), "{refused}");
    ob.peer()
        .wait_for_log("a device signed in as another user", Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}\n{}", ob.log()));
    drop(borrowed);

    // A new key for the device: the old configuration stops working at once; the new
    // one, imported, works.
    let new_conf = ob
        .cli(bin(), &["vpn", "device", "alice-laptop", "--new-key"])
        .unwrap();
    assert_ne!(new_conf, conf);
    let cut = wait_until(Duration::from_secs(10), || !pings(&home, "192.168.1.50"));
    assert!(cut, "the old key still works\n{}", ob.log());
    laptop.import(&home, &new_conf);
    let back = wait_until(Duration::from_secs(10), || pings(&home, "192.168.1.50"));
    assert!(back, "the new key does not work\n{}", ob.log());

    // Limited to the box: its names still, the office's PCs no more.
    ob.write_config(&base.clone().append(&device("box")).text())
        .unwrap();
    assert!(ob.reload().unwrap(), "{}", ob.log());
    let limited = wait_until(Duration::from_secs(10), || {
        home.dig("192.168.1.1", "head.office.test", "A")
            .is_ok_and(|a| a.contains(&"192.168.1.1".to_string()))
    });
    assert!(
        limited,
        "the box no longer answers the device\n{}",
        ob.log()
    );
    assert_eq!(home.tcp_greeting("192.168.1.50", 8088), None);
    assert!(!pings(&home, "192.168.1.50"));

    // Removed: nothing gets through, not even to the box.
    ob.write_config(&base.append("[vpn]\nenabled = true\n").text())
        .unwrap();
    assert!(ob.reload().unwrap(), "{}", ob.log());
    std::thread::sleep(Duration::from_secs(1));
    // (dig prints its timeout, not an answer.)
    let names = home.dig("192.168.1.1", "head.office.test", "A").unwrap();
    assert!(!names.contains(&"192.168.1.1".to_string()), "{names:?}");
    assert!(!pings(&home, "192.168.1.1"));
    drop(greeter);
}

/// Runs `cmd` in `ns` and fails the test with its output if it fails.
fn must(ns: &Netns, cmd: &str) {
    let words: Vec<&str> = cmd.split_whitespace().collect();
    let out = ns.run(words[0], &words[1..]).unwrap();
    assert!(out.status.success(), "{cmd}: {out:?}");
}

/// The average round trip `ping` reports (ms), if any reply came.
fn ping_avg(out: &std::process::Output) -> Option<f64> {
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.contains("min/avg/max"))?;
    line.split('=')
        .nth(1)?
        .trim()
        .split('/')
        .nth(1)?
        .parse()
        .ok()
}

/// A slow line (4 Mbit/s up, a modem with 400 ms of queue) saturated by an upload from
/// the office: with the line's speed configured, the box shapes just below it, voice
/// first. A ping marked EF (as the calls' audio is) crosses in well under G.711's delay
/// budget while the upload runs, and a call to a home worker's softphone through the
/// tunnel is heard clearly; the tunnel's outer packets carry the marks (counted by the
/// ISP's router), SIP's CS3 and RTP's EF.
///
/// pc 192.168.1.50 - box (LAN 192.168.1.1, WAN 198.51.100.2) - modem (198.51.100.1,
/// 100.64.0.1; 4 Mbit/s towards the ISP) - isp (100.64.0.2, 192.0.2.1; an iperf3 server)
/// - home 192.0.2.10 (wireguard-go, a softphone).
#[test]
fn voice_goes_first_through_a_saturated_line() {
    officebox_testkit::require_program("wireguard-go", "wireguard-go");
    officebox_testkit::require_program("iperf3", "iperf3");
    officebox_testkit::require_program("tc", "iproute2");
    officebox_testkit::require_root();
    let pc = Netns::new("qpc").unwrap();
    let boxed = Netns::new("qbox").unwrap();
    let modem = Netns::new("qmodem").unwrap();
    let isp = Netns::new("qisp").unwrap();
    let home = Netns::new("qhome").unwrap();
    let lan = Veth::new(
        Endpoint::netns(&boxed),
        Endpoint::netns(&pc).addr("192.168.1.50/24"),
    )
    .unwrap();
    let wan = Veth::new(
        Endpoint::netns(&boxed),
        Endpoint::netns(&modem).addr("198.51.100.1/24"),
    )
    .unwrap();
    let line = Veth::new(
        Endpoint::netns(&modem).addr("100.64.0.1/24"),
        Endpoint::netns(&isp).addr("100.64.0.2/24"),
    )
    .unwrap();
    let _home_link = Veth::new(
        Endpoint::netns(&isp).addr("192.0.2.1/24"),
        Endpoint::netns(&home).addr("192.0.2.10/24"),
    )
    .unwrap();
    must(&pc, "ip route add default via 192.168.1.1");
    must(&modem, "ip route add default via 100.64.0.2");
    must(&modem, "sysctl -qw net.ipv4.ip_forward=1");
    must(&isp, "ip route add 198.51.100.0/24 via 100.64.0.1");
    must(&isp, "sysctl -qw net.ipv4.ip_forward=1");
    must(&home, "ip route add default via 192.0.2.1");
    // The modem: 4 Mbit/s up, with a deep queue (what makes calls break).
    must(
        &modem,
        &format!(
            "tc qdisc add dev {} root tbf rate 4mbit burst 16kb latency 400ms",
            line.name_a()
        ),
    );
    // The ISP counts the tunnel's packets from the box by their marks.
    let counters = "table inet obxcount {\n\
        counter marked_ef {}\n counter marked_cs3 {}\n\
        chain count { type filter hook forward priority 0; policy accept;\n\
        udp sport 51820 ip dscp ef counter name \"marked_ef\"\n\
        udp sport 51820 ip dscp cs3 counter name \"marked_cs3\"\n}\n}\n";
    let rules = scratch_dir("qos-nft").unwrap();
    std::fs::write(rules.path().join("count.nft"), counters).unwrap();
    must(
        &isp,
        &format!("nft -f {}", rules.path().join("count.nft").display()),
    );

    let dir = scratch_dir("qos-box").unwrap();
    let c = office(
        "head",
        "office.test",
        lan.name_a(),
        "192.168.1.1",
        wan.name_a(),
        "198.51.100.2",
        "198.51.100.1",
    )
    .set("network.wan.upload", "4mbit")
    .append(
        "[vpn]\nenabled = true\n\n[[vpn.peers]]\nname = \"alice-laptop\"\nuser = \"alice\"\n\
         address = \"10.99.0.10\"\n",
    );
    let ob = Officebox::restart_in_netns(bin(), &c.text(), &boxed, dir).expect("the box starts");
    for needle in ["net: upload shaped", "vpn: serving"] {
        ob.peer()
            .wait_for_log(needle, READY_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}\n{}", ob.log()));
    }
    // The home worker's laptop joins (as in the remote-worker test).
    let conf = ob.cli(bin(), &["vpn", "device", "alice-laptop"]).unwrap();
    let laptop = Laptop::join(&home, &conf, "obxq");
    assert!(
        wait_until(Duration::from_secs(10), || pings(&home, "192.168.1.50")),
        "{}",
        ob.log()
    );

    // A desk phone in the office and the softphone at home.
    let says = laptop.dir.path().join("desk.wav");
    audio::speak_wav(
        &says,
        "The office line is busy with a big upload, but this call still sounds clear.",
    )
    .unwrap();
    let account = |ns: &Netns, ip: [u8; 4], ext: &str, login: &str| {
        BaresipAccount::new(ext, std::net::SocketAddr::from(([192, 168, 1, 1], 15060)))
            .netns(ns)
            .local_ip(std::net::Ipv4Addr::from(ip))
            .domain("office.test")
            .auth(login, &format!("demo-{login}"))
    };
    let softphone = Baresip::start(
        "qos-home",
        &account(&home, [10, 99, 0, 10], "101", "alice").auto_answer(true),
    )
    .unwrap();
    let desk = Baresip::start(
        "qos-desk",
        &account(&pc, [192, 168, 1, 50], "102", "bob").play(&says),
    )
    .unwrap();
    for p in [&softphone, &desk] {
        p.wait_registered(EVENT_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}\n{}", ob.log()));
    }

    // The upload that fills the line, from the office PC to the ISP's server. (Without
    // the shaping the voice-marked ping below waits about 400 ms in the modem.)
    let srv = scratch_dir("qos-iperf").unwrap();
    let server = officebox_testkit::Peer::spawn_in(
        "iperf3-server",
        {
            let mut c = isp.command("iperf3");
            c.args(["-s", "-1", "--forceflush"]);
            c
        },
        srv.path(),
    )
    .unwrap();
    server
        .wait_for_log("Server listening", Duration::from_secs(5))
        .unwrap();
    let upload = officebox_testkit::Peer::spawn_in(
        "iperf3-client",
        {
            let mut c = pc.command("iperf3");
            // Twice what the line carries (UDP does not slow down): whatever queue
            // there is, it is full.
            c.args([
                "-c",
                "100.64.0.2",
                "-u",
                "-b",
                "8M",
                "-t",
                "14",
                "-f",
                "k",
                "--forceflush",
            ]);
            c
        },
        srv.path(),
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(3));

    // Voice-marked packets cross the full line at once; the call is heard clearly.
    let ef = pc
        .run(
            "ping",
            [
                "-Q",
                "0xb8",
                "-c",
                "10",
                "-i",
                "0.2",
                "-W",
                "2",
                "10.99.0.10",
            ],
        )
        .unwrap();
    desk.dial("101").unwrap();
    for p in [&softphone, &desk] {
        p.wait_for_event_after(0, "CALL_ESTABLISHED", EVENT_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}\n{}", ob.log()));
    }
    std::thread::sleep(Duration::from_secs_f64(
        audio::read_wav(&says).unwrap().seconds() + 1.0,
    ));
    desk.hangup().unwrap();
    let heard = softphone.last_recording(EVENT_TIMEOUT).unwrap().heard;
    upload
        .wait_for_log("receiver", Duration::from_secs(20))
        .unwrap();
    let ef_ms = ping_avg(&ef);
    eprintln!("EF ping under load: {ef_ms:?} ms\nupload: {}", upload.log());
    assert!(
        ef_ms.is_some_and(|ms| ms < 60.0),
        "voice waited behind the upload: {}\n{}",
        String::from_utf8_lossy(&ef.stdout),
        ob.log()
    );
    let m = audio::compare(&says, &heard).unwrap();
    assert!(m.score > 0.8, "the call broke up under the upload: {m:?}");
    // The upload did fill the line (the box's 3.8 Mbit/s, give or take).
    let rate = upload
        .log()
        .lines()
        .find(|l| l.contains("receiver"))
        .and_then(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let i = words.iter().position(|w| *w == "Kbits/sec")?;
            words.get(i - 1)?.parse::<f64>().ok()
        });
    assert!(
        rate.is_some_and(|k| k > 3000.0),
        "the line was not saturated: {}",
        upload.log()
    );
    // The tunnel's outer packets kept the marks: RTP EF, SIP CS3.
    let counted = isp
        .run("nft", ["list", "table", "inet", "obxcount"])
        .unwrap();
    let text = String::from_utf8_lossy(&counted.stdout).to_string();
    let packets = |name: &str| -> u64 {
        text.split(&format!("counter {name} {{"))
            .nth(1)
            .and_then(|rest| rest.split("packets ").nth(1))
            .and_then(|n| n.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    assert!(
        packets("marked_ef") > 100 && packets("marked_cs3") > 0,
        "marks lost on the tunnel's packets: {text}"
    );
    drop(server);
}
