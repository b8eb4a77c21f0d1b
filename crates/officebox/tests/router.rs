//! The router end to end, in three namespaces joined by veth pairs: "pc" (a LAN PC), "box"
//! (officebox with manage = true: it configures the interfaces, forwarding and the
//! firewall itself) and "isp" (the Internet side, with an HTTP server). Only addresses
//! inside these namespaces are used.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::path::Path;
use std::time::Duration;

use officebox_testkit::{
    Netns, Office, Officebox, Peer, READY_TIMEOUT, TestConfig, require_program, scratch_dir,
    wait_until,
};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_officebox"))
}

/// The office (pc, box, isp) of testkit.
type Net = Office;

const WAN_BOX: &str = Office::WAN_BOX;
const WAN_ISP: &str = Office::WAN_ISP;
const PC: &str = Office::PC;

/// Whether a TCP connection from `ns` to `addr:port` is accepted within two seconds.
fn tcp_open(ns: &Netns, addr: &str, port: u16) -> bool {
    let script =
        format!("import socket\nsocket.create_connection(('{addr}', {port}), timeout=2).close()\n");
    ns.command("python3")
        .args(["-c", &script])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn start(net: &Net, config: &TestConfig) -> Officebox {
    let ob =
        Officebox::start_in_netns(bin(), &config.text(), &net.boxns).expect("officebox starts");
    ob.peer()
        .wait_for_log("net: applied", READY_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    ob
}

#[test]
fn firewall_nat_masquerades_refuses_inbound_forwards_and_hairpins() {
    require_program("python3", "python3");
    require_program("nft", "nftables");
    let net = Office::new("rfn").unwrap();
    let dir = scratch_dir("router").unwrap();
    // A small HTTP server standing for the Internet; it logs each client's address.
    std::fs::write(dir.path().join("index.html"), "the internet\n").unwrap();
    let mut http = net.isp.command("python3");
    http.args([
        "-u",
        "-m",
        "http.server",
        "8080",
        "--bind",
        WAN_ISP,
        "--directory",
    ])
    .arg(dir.path());
    let web = Peer::spawn_in("internet", http, dir.path()).unwrap();
    web.wait_for_log("Serving HTTP", Duration::from_secs(5))
        .unwrap();
    let _ssh = net.pc.tcp_greeter(dir.path(), "pc", 2222).unwrap();
    // The ISP even routes the office's private range to the box: the firewall must hold.
    net.isp
        .run("ip", ["route", "add", "192.168.1.0/24", "via", WAN_BOX])
        .unwrap();
    let _ob = start(&net, &net.config("firewall-nat"));

    // officebox configured its own interfaces, forwarding and the default route.
    let addrs =
        String::from_utf8_lossy(&net.boxns.run("ip", ["-4", "addr"]).unwrap().stdout).into_owned();
    assert!(
        addrs.contains("192.168.1.1/24") && addrs.contains(&format!("{WAN_BOX}/24")),
        "{addrs}"
    );
    let inside = String::from_utf8_lossy(
        &net.boxns
            .run("cat", ["/proc/sys/net/ipv4/ip_forward"])
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert_eq!(inside.trim(), "1");

    // The PC fetches a page from the Internet, seen there as officebox's WAN address.
    let fetch = net
        .pc
        .command("python3")
        .args(["-c", &format!("import urllib.request;print(urllib.request.urlopen('http://{WAN_ISP}:8080/index.html', timeout=3).read().decode())")])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&fetch.stdout).trim(),
        "the internet",
        "{}",
        String::from_utf8_lossy(&fetch.stderr)
    );
    assert!(
        wait_until(Duration::from_secs(2), || web
            .log()
            .contains(&format!("{WAN_BOX} - - "))),
        "{}",
        web.log()
    );
    assert!(
        !web.log().contains(&format!("{PC} - - ")),
        "the PC's address is translated"
    );

    // Nobody outside opens a connection to the PC...
    assert_eq!(net.isp.tcp_greeting(PC, 2222), None);
    // ...except through the configured forward, from outside and (hairpin) from the LAN.
    assert_eq!(
        net.isp.tcp_greeting(WAN_BOX, 8022).as_deref(),
        Some("hello from pc")
    );
    assert_eq!(
        net.pc.tcp_greeting(WAN_BOX, 8022).as_deref(),
        Some("hello from pc"),
        "hairpin"
    );
    // officebox's own listed service answers on the WAN; an unlisted port is closed.
    let dns = net
        .isp
        .command("dig")
        .args([
            &format!("@{WAN_BOX}"),
            "www.office.test",
            "+short",
            "+time=2",
            "+tries=1",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&dns.stdout).trim(),
        WAN_BOX,
        "www is the WAN address"
    );
    assert_eq!(
        net.isp.tcp_greeting(WAN_BOX, 18080),
        None,
        "not a WAN service"
    );
    // officebox's SMTP answers on the WAN address.
    let banner = net.isp.tcp_greeting(WAN_BOX, 25).unwrap_or_default();
    assert!(
        banner.starts_with("220 officebox.office.test ESMTP"),
        "{banner}"
    );
}

#[test]
fn router_mode_routes_without_translation_and_lan_only_forwards_nothing() {
    require_program("python3", "python3");
    let net = Office::new("rrt").unwrap();
    let dir = scratch_dir("router").unwrap();
    let web = net.isp.tcp_greeter(dir.path(), "internet", 8080).unwrap();
    let _pc = net.pc.tcp_greeter(dir.path(), "pc", 2222).unwrap();
    net.isp
        .run("ip", ["route", "add", "192.168.1.0/24", "via", WAN_BOX])
        .unwrap();
    let config = net.config("router");
    let ob = start(&net, &config);

    assert_eq!(
        net.pc.tcp_greeting(WAN_ISP, 8080).as_deref(),
        Some("hello from internet")
    );
    assert!(
        wait_until(Duration::from_secs(2), || web
            .log()
            .contains(&format!("peer {PC}"))),
        "router: no translation\n{}",
        web.log()
    );
    assert_eq!(
        net.isp.tcp_greeting(PC, 2222).as_deref(),
        Some("hello from pc"),
        "router: the Internet reaches the LAN"
    );

    // Switching to lan-only by SIGHUP: nothing crosses any more, without a restart.
    ob.write_config(&net.config("lan-only").text()).unwrap();
    assert!(ob.reload().unwrap(), "{}", ob.log());
    assert!(wait_until(Duration::from_secs(5), || ob
        .log()
        .matches("net: applied")
        .count()
        >= 2));
    assert_eq!(
        net.isp.tcp_greeting(PC, 2222),
        None,
        "lan-only forwards nothing"
    );
    assert_eq!(net.pc.tcp_greeting(WAN_ISP, 8080), None);
    let inside = String::from_utf8_lossy(
        &net.boxns
            .run("cat", ["/proc/sys/net/ipv4/ip_forward"])
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert_eq!(inside.trim(), "0");
}

#[test]
fn switching_modes_keeps_established_lan_connections() {
    require_program("python3", "python3");
    let net = Office::new("rsw").unwrap();
    let dir = scratch_dir("router").unwrap();
    // A server on the Internet that keeps the connection open and answers each line.
    let script = "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind(('0.0.0.0', 7000))\ns.listen(4)\nprint('listening', flush=True)\nc,a=s.accept()\nf=c.makefile('rwb')\nfor line in f:\n    f.write(b'echo '+line); f.flush()\n";
    let mut cmd = net.isp.command("python3");
    cmd.args(["-u", "-c", script]);
    let _echo = Peer::spawn_in("echo", cmd, dir.path()).unwrap();
    _echo
        .wait_for_log("listening", Duration::from_secs(5))
        .unwrap();
    let ob = start(&net, &net.config("firewall-nat"));

    // A long-lived client on the PC: one line now, one after the mode switch.
    let client = format!(
        "import socket,time,sys\ns=socket.create_connection(('{WAN_ISP}', 7000), timeout=5)\nf=s.makefile('rwb')\nf.write(b'one\\n'); f.flush(); print(f.readline().decode().strip(), flush=True)\nwhile not __import__('os').path.exists('{}'): time.sleep(0.1)\nf.write(b'two\\n'); f.flush(); print(f.readline().decode().strip(), flush=True)\n",
        dir.path().join("go").display()
    );
    let mut cmd = net.pc.command("python3");
    cmd.args(["-u", "-c", &client]);
    let pc = Peer::spawn_in("client", cmd, dir.path()).unwrap();
    pc.wait_for_log("echo one", Duration::from_secs(5)).unwrap();

    ob.write_config(&net.config("firewall-nat-dmz").text())
        .unwrap();
    assert!(ob.reload().unwrap());
    assert!(
        wait_until(Duration::from_secs(5), || ob
            .log()
            .matches("net: applied")
            .count()
            >= 2),
        "{}",
        ob.log()
    );
    std::fs::write(dir.path().join("go"), "").unwrap();
    pc.wait_for_log("echo two", Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("the connection survived the switch: {e}"));
}

#[test]
fn dmz_mode_shows_a_port_scan_only_the_listed_services() {
    require_program("nmap", "nmap");
    let net = Office::new("rdz").unwrap();
    let dir = scratch_dir("router").unwrap();
    let _pc = net.pc.tcp_greeter(dir.path(), "pc", 2222).unwrap();
    let ob = start(&net, &net.config("firewall-nat-dmz"));
    ob.peer()
        .wait_for_log("dns: serving", READY_TIMEOUT)
        .unwrap();
    let out = net
        .isp
        .command("nmap")
        .args([
            "-Pn",
            "-n",
            "-sS",
            "-p",
            "22,25,53,80,110,8022,8080,10025,18080",
            "--max-retries",
            "1",
            "--host-timeout",
            "30s",
            WAN_BOX,
        ])
        .output()
        .unwrap();
    let scan = String::from_utf8_lossy(&out.stdout).into_owned();
    let state = |port: &str| {
        scan.lines()
            .find(|l| l.starts_with(&format!("{port}/tcp")))
            .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_string())
    };
    assert_eq!(
        state("53").as_deref(),
        Some("open"),
        "the listed service\n{scan}"
    );
    assert_eq!(
        state("8022").as_deref(),
        Some("open"),
        "the forward to the PC\n{scan}"
    );
    for port in ["22", "80", "110", "8080", "10025", "18080"] {
        assert_eq!(
            state(port).as_deref(),
            Some("filtered"),
            "stealth: {port} shows nothing\n{scan}"
        );
    }
}

#[test]
fn the_wan_address_comes_from_the_isps_dhcp_server_renews_and_is_released() {
    require_program("dnsmasq", "dnsmasq-base");
    let net = Office::new("rwd").unwrap();
    let dir = scratch_dir("router").unwrap();
    let web = net.isp.tcp_greeter(dir.path(), "internet", 8080).unwrap();
    // The ISP's DHCP server; it also offers DNS servers and a domain, which officebox must
    // not take.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut isp_dhcp = net.isp.command("dnsmasq");
    isp_dhcp.args([
        "--no-daemon",
        "--log-facility=-",
        "--log-dhcp",
        "--port=0",
        &format!("--interface={}", net.wan.name_b()),
        "--bind-interfaces",
        "--no-ping",
        "--dhcp-authoritative",
        "--dhcp-range=198.51.100.100,198.51.100.150,2m",
        &format!(
            "--dhcp-leasefile={}",
            dir.path().join("isp.leases").display()
        ),
        "--dhcp-option=option:router,198.51.100.1",
        "--dhcp-option=option:dns-server,198.51.100.53",
        "--dhcp-option=option:domain-name,isp.example",
        "--dhcp-option=option:T1,15",
        "--dhcp-option=option:T2,90",
    ]);
    let isp = Peer::spawn_in("isp-dhcp", isp_dhcp, dir.path()).unwrap();
    isp.wait_for_log("DHCP, IP range", Duration::from_secs(5))
        .unwrap();

    let config = net
        .config("firewall-nat")
        .set("network.wan.mode", "dhcp")
        .remove("network.wan.address")
        .remove("network.wan.netmask")
        .remove("network.wan.gateway")
        .set("network.wan.release_on_shutdown", true);
    let ob = start(&net, &config);
    ob.peer()
        .wait_for_log("wan dhcp: bound", Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}"));

    // The leased address and the ISP's router are on the box.
    let addrs = String::from_utf8_lossy(
        &net.boxns
            .run("ip", ["-4", "addr", "show", "dev", net.wan.name_a()])
            .unwrap()
            .stdout,
    )
    .into_owned();
    let leased = addrs
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .unwrap_or_else(|| panic!("no WAN address:\n{addrs}\n{}", ob.log()))
        .to_string();
    assert!(leased.starts_with("198.51.100.1"), "{leased}");
    let routes =
        String::from_utf8_lossy(&net.boxns.run("ip", ["-4", "route"]).unwrap().stdout).into_owned();
    assert!(routes.contains("default via 198.51.100.1"), "{routes}");
    // The office reaches the Internet through it, translated to the leased address.
    assert_eq!(
        net.pc.tcp_greeting(WAN_ISP, 8080).as_deref(),
        Some("hello from internet")
    );
    assert!(
        wait_until(Duration::from_secs(2), || web
            .log()
            .contains(&format!("peer {leased}"))),
        "{}",
        web.log()
    );
    // The built-in WAN names follow the leased address.
    let www = || {
        let out = net
            .boxns
            .command("dig")
            .args([
                "@127.0.0.1",
                "www.office.test",
                "+short",
                "+time=2",
                "+tries=1",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert!(
        wait_until(Duration::from_secs(5), || www() == leased),
        "www: {}",
        www()
    );
    // It renews at T1 (15 s here), by unicast to the server.
    ob.peer()
        .wait_for_log("wan dhcp: renewed", Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}\n{}", isp.log()));
    assert!(!ob.log().contains("isp.example") && !ob.log().contains("198.51.100.53"));

    // The cable is pulled and put back: officebox asks for a lease again.
    net.isp
        .run("ip", ["link", "set", net.wan.name_b(), "down"])
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    net.isp
        .run("ip", ["link", "set", net.wan.name_b(), "up"])
        .unwrap();
    ob.peer()
        .wait_for_log(
            "the WAN link went down and came back",
            Duration::from_secs(10),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        wait_until(Duration::from_secs(20), || ob
            .log()
            .matches("wan dhcp: bound")
            .count()
            >= 2),
        "{}",
        ob.log()
    );

    // On shutdown it gives the address back, as configured.
    let (status, log, _dir) = ob.stop_with("TERM", Duration::from_secs(5)).unwrap();
    assert!(status.success(), "{log}");
    assert!(log.contains("wan dhcp: released"), "{log}");
    assert!(
        wait_until(Duration::from_secs(3), || isp.log().contains("DHCPRELEASE")),
        "{}",
        isp.log()
    );
}

#[test]
fn a_lan_pc_gets_its_settings_resolves_through_officebox_and_sets_its_clock() {
    officebox_testkit::ClientKind::Dhclient.require();
    require_program("ntpdate", "ntpsec-ntpdate");
    require_program("dig", "bind9-dnsutils");
    let net = Office::new("rpc").unwrap();
    let config = net
        .config("firewall-nat")
        .set("dhcp.enabled", true)
        .set("ntp.enabled", true)
        .set("ntp.port", 123);
    let ob = start(&net, &config);
    ob.peer()
        .wait_for_log("dhcp: serving", READY_TIMEOUT)
        .unwrap();
    let client = officebox_testkit::DhcpClient::lease(
        officebox_testkit::ClientKind::Dhclient,
        &net.pc,
        net.lan.name_b(),
        Some("desk-3"),
        Duration::from_secs(20),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", ob.log()));
    let lease = client.current().unwrap().clone();
    assert_eq!(
        lease.routers,
        vec!["192.168.1.1".parse::<std::net::Ipv4Addr>().unwrap()]
    );
    assert_eq!(
        lease.dns_servers, lease.routers,
        "officebox is the router and the resolver"
    );
    assert_eq!(lease.ntp_servers, lease.routers, "and the time server");
    // Names through officebox: its own, and the PC's own name from its lease.
    let dig = |name: &str| {
        let out = net
            .pc
            .command("dig")
            .args(["@192.168.1.1", name, "+short", "+time=2", "+tries=1"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(dig("corp.office.test"), "192.168.1.1");
    assert!(wait_until(Duration::from_secs(5), || dig(
        "desk-3.office.test"
    ) == lease
        .address
        .to_string()));
    // The clock, asked from officebox (query only: the clock is not namespaced).
    let out = net
        .pc
        .command("ntpdate")
        .args(["-q", "192.168.1.1"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("192.168.1.1"),
        "ntpdate:\n{text}"
    );
}

#[test]
fn net_apply_dry_run_says_what_would_change() {
    let net = Office::new("rdr").unwrap();
    let config = net.config("firewall-nat");
    let ob = start(&net, &config);
    let dry = |c: &TestConfig| {
        let path = ob.dir().join("other.toml");
        std::fs::write(&path, c.text()).unwrap();
        let out = net
            .boxns
            .command(bin())
            .args(["net", "apply", "--dry-run", "--config"])
            .arg(&path)
            .current_dir(ob.dir())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let same = dry(&config);
    assert!(
        same.contains("forwarding: on (unchanged)") && same.contains("firewall: unchanged"),
        "{same}"
    );
    assert!(same.contains("192.168.1.1/24 (unchanged)"), "{same}");
    let to_lan_only = dry(&net.config("lan-only"));
    assert!(
        to_lan_only.contains("forwarding: on -> off"),
        "{to_lan_only}"
    );
    assert!(
        to_lan_only
            .lines()
            .any(|l| l.starts_with("- ") && l.contains("masquerade")),
        "{to_lan_only}"
    );
    // A dry run changes nothing.
    let tables = String::from_utf8_lossy(
        &net.boxns
            .run("nft", ["list", "table", "inet", "officebox"])
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(tables.contains("masquerade"));
}

/// What the box's network side is: addresses, links, routes, forwarding, the ruleset (with
/// counters and dynamic set members left out) and the listening sockets, with the
/// interfaces named LAN and WAN, so that two boxes can be compared.
fn network_state(net: &Net) -> String {
    let run = |program: &str, args: &[&str]| {
        let out = net.boxns.run(program, args.iter().copied()).unwrap();
        String::from_utf8_lossy(&out.stdout)
            .replace(net.lan.name_a(), "LAN")
            .replace(net.wan.name_a(), "WAN")
    };
    let mut out = Vec::new();
    for line in run("ip", &["-4", "-o", "addr", "show"]).lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let (Some(dev), Some(pos)) = (words.get(1), words.iter().position(|w| *w == "inet"))
            && *dev != "lo"
        {
            out.push(format!("address {dev} {}", words[pos + 1]));
        }
    }
    for dev in ["LAN", "WAN"] {
        let name = if dev == "LAN" {
            net.lan.name_a()
        } else {
            net.wan.name_a()
        };
        let link = run("ip", &["-o", "link", "show", "dev", name]);
        let flags = link
            .split(['<', '>'])
            .nth(1)
            .unwrap_or_default()
            .to_string();
        let up = flags.split(',').any(|f| f == "UP");
        out.push(format!("link {dev} {}", if up { "up" } else { "down" }));
    }
    for line in run("ip", &["-4", "route", "show", "table", "main"]).lines() {
        out.push(format!("route {line}"));
    }
    out.push(format!(
        "forwarding {}",
        run("cat", &["/proc/sys/net/ipv4/ip_forward"]).trim()
    ));
    let mut in_elements = false;
    for line in run("nft", &["list", "table", "inet", "officebox"]).lines() {
        let line = line.trim();
        if line.starts_with("elements = {") {
            in_elements = !line.ends_with('}');
            continue;
        }
        if in_elements {
            in_elements = !line.ends_with('}');
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let mut kept = Vec::new();
        let mut i = 0;
        while i < words.len() {
            if (words[i] == "packets" || words[i] == "bytes") && i + 1 < words.len() {
                i += 2;
                continue;
            }
            kept.push(words[i]);
            i += 1;
        }
        out.push(format!("nft {}", kept.join(" ")));
    }
    for line in run("ss", &["-H", "-l", "-n", "-t", "-u"]).lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let (Some(proto), Some(local)) = (words.first(), words.get(4)) {
            out.push(format!("listen {proto} {local}"));
        }
    }
    out.sort();
    out.dedup();
    out.join("\n")
}

/// The lines of `a` missing from `b` and the other way round.
fn state_diff(want: &str, got: &str) -> String {
    let w: Vec<&str> = want.lines().collect();
    let g: Vec<&str> = got.lines().collect();
    let mut out = String::new();
    for l in &w {
        if !g.contains(l) {
            out.push_str(&format!("- {l}\n"));
        }
    }
    for l in &g {
        if !w.contains(l) {
            out.push_str(&format!("+ {l}\n"));
        }
    }
    out
}

/// The box's state once everything has started: unchanged for a second.
fn settled_state(net: &Net) -> String {
    let mut last = network_state(net);
    let deadline = std::time::Instant::now() + READY_TIMEOUT;
    loop {
        std::thread::sleep(Duration::from_millis(700));
        let now = network_state(net);
        if now == last || std::time::Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

fn mode_config(net: &Net, mode: &str) -> TestConfig {
    net.config(mode).set(
        "security.wan_services",
        toml_edit::Value::Array(["smtp", "pop3", "sip"].into_iter().collect()),
    )
}

fn start_settled(net: &Net, config: &TestConfig) -> Officebox {
    let ob = start(net, config);
    for service in [
        "dns: serving",
        "smtp: serving",
        "pop3: serving",
        "phone: serving",
    ] {
        ob.peer()
            .wait_for_log(service, READY_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}\n{}", ob.log()));
    }
    // In lan-only mode the phones' plug-and-play socket of its own joins once the LAN
    // address is up.
    if config.text().contains("mode = \"lan-only\"") {
        ob.peer()
            .wait_for_log("phone: answering plug-and-play requests", READY_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}\n{}", ob.log()));
    }
    ob
}

#[test]
fn every_mode_switch_by_reload_ends_as_a_fresh_start_in_that_mode() {
    require_program("nft", "nftables");
    require_program("ss", "iproute2");
    const MODES: [&str; 4] = ["lan-only", "router", "firewall-nat", "firewall-nat-dmz"];
    // What a fresh start in each mode gives, each in namespaces of its own.
    let mut fresh = std::collections::HashMap::new();
    for (i, mode) in MODES.iter().enumerate().skip(1) {
        let net = Office::new(&format!("rm{i}")).unwrap();
        let ob = start_settled(&net, &mode_config(&net, mode));
        fresh.insert(*mode, settled_state(&net));
        drop(ob);
    }
    // One box through every ordered pair of modes (an Euler circuit of the 12 switches),
    // starting fresh in lan-only.
    let net = Office::new("rm0").unwrap();
    let ob = start_settled(&net, &mode_config(&net, "lan-only"));
    fresh.insert("lan-only", settled_state(&net));
    let lan_only = &fresh["lan-only"];
    assert!(
        lan_only.contains("link WAN down") && !lan_only.contains("address WAN"),
        "lan-only: the WAN is down and has no address\n{lan_only}"
    );
    assert!(
        !lan_only.contains("0.0.0.0:") && lan_only.contains("listen tcp 192.168.1.1:10110"),
        "lan-only: services listen on the LAN (and loopback) only\n{lan_only}"
    );
    let circuit = [
        "router",
        "lan-only",
        "firewall-nat",
        "lan-only",
        "firewall-nat-dmz",
        "router",
        "firewall-nat",
        "router",
        "firewall-nat-dmz",
        "firewall-nat",
        "firewall-nat-dmz",
        "lan-only",
    ];
    let mut from = "lan-only";
    for to in circuit {
        let applied = ob.log().matches("net: applied").count();
        ob.write_config(&mode_config(&net, to).text()).unwrap();
        assert!(
            ob.reload().unwrap(),
            "{from} -> {to}: reload refused\n{}",
            ob.log()
        );
        assert!(
            wait_until(READY_TIMEOUT, || ob.log().matches("net: applied").count()
                > applied),
            "{from} -> {to}: not applied\n{}",
            ob.log()
        );
        let want = &fresh[to];
        let mut got = network_state(&net);
        let same = wait_until(Duration::from_secs(10), || {
            got = network_state(&net);
            got == *want
        });
        assert!(
            same,
            "{from} -> {to} by reload differs from a fresh start in {to}:\n{}",
            state_diff(want, &got)
        );
        if to == "lan-only" {
            // From the Internet, nothing of the box answers any more.
            for port in [25, 10110, 10587, 10465, 10995, 10143, 10993, 15060] {
                assert!(
                    !tcp_open(&net.isp, WAN_BOX, port),
                    "{from} -> lan-only: port {port} answers on the WAN"
                );
            }
        }
        from = to;
    }
}
