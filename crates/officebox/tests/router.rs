//! The router end to end, in three namespaces joined by veth pairs: "pc" (a LAN PC), "box"
//! (officebox with manage = true: it configures the interfaces, forwarding and the
//! firewall itself) and "isp" (the Internet side, with an HTTP server). Only addresses
//! inside these namespaces are used.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::path::Path;
use std::time::Duration;

use officebox_testkit::{
    Endpoint, Netns, Officebox, Peer, READY_TIMEOUT, TestConfig, Veth, require_program,
    require_root, scratch_dir, wait_until,
};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_officebox"))
}

struct Net {
    // Links drop before namespaces.
    lan: Veth,
    wan: Veth,
    pc: Netns,
    boxns: Netns,
    isp: Netns,
}

const WAN_BOX: &str = "198.51.100.2";
const WAN_ISP: &str = "198.51.100.1";
const PC: &str = "192.168.1.50";

impl Net {
    fn new(tag: &str) -> Net {
        require_root();
        let pc = Netns::new(&format!("{tag}pc")).unwrap();
        let boxns = Netns::new(&format!("{tag}bx")).unwrap();
        let isp = Netns::new(&format!("{tag}is")).unwrap();
        // The box side of each link gets its address from officebox itself.
        let lan = Veth::new(
            Endpoint::netns(&boxns),
            Endpoint::netns(&pc).addr(&format!("{PC}/24")),
        )
        .unwrap();
        let wan = Veth::new(
            Endpoint::netns(&boxns),
            Endpoint::netns(&isp).addr(&format!("{WAN_ISP}/24")),
        )
        .unwrap();
        pc.run("ip", ["route", "add", "default", "via", "192.168.1.1"])
            .unwrap();
        Net {
            lan,
            wan,
            pc,
            boxns,
            isp,
        }
    }

    fn config(&self, mode: &str) -> TestConfig {
        TestConfig::demo()
            .set("network.manage", true)
            .set("network.listen", toml_edit::Value::Array(toml_edit::Array::new()))
            .set("network.lan.interface", self.lan.name_a())
            .set("network.lan.gateway", "192.168.1.254")
            .set("network.wan.interface", self.wan.name_a())
            .set("network.wan.address", WAN_BOX)
            .set("network.wan.gateway", WAN_ISP)
            .set("security.mode", mode)
            .set("security.wan_services", toml_edit::Value::Array(["dns", "smtp"].into_iter().collect()))
            .set("mail.smtp_port", 25)
            .set("dns.port", 53)
            .set("ntp.enabled", false)
            .set("web.enabled", false)
            .append("[[security.forwards]]\nname = \"ssh to the pc\"\nprotocol = \"tcp\"\nwan_port = 8022\nhost = \"192.168.1.50\"\nport = 2222\n")
    }
}

/// A TCP server printing each client's address, in `ns` on `port`.
fn tcp_server(ns: &Netns, dir: &Path, name: &str, port: u16) -> Peer {
    let script = format!(
        "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind(('0.0.0.0', {port}))\ns.listen(16)\nprint('listening', flush=True)\nwhile True:\n    c, a = s.accept()\n    print('peer', a[0], flush=True)\n    c.sendall(b'hello from {name}\\n')\n    c.close()\n"
    );
    let mut cmd = ns.command("python3");
    cmd.args(["-u", "-c", &script]);
    let peer = Peer::spawn_in(name, cmd, dir).unwrap();
    peer.wait_for_log("listening", Duration::from_secs(5))
        .unwrap();
    peer
}

/// Connects from `ns` to `addr:port`; the server's greeting, or `None` when nothing answers
/// within two seconds.
fn connect(ns: &Netns, addr: &str, port: u16) -> Option<String> {
    let script = format!(
        "import socket,sys\ns=socket.create_connection(('{addr}', {port}), timeout=2)\nsys.stdout.write(s.recv(100).decode())\n"
    );
    let out = ns.command("python3").args(["-c", &script]).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
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
    let net = Net::new("rfn");
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
    let _ssh = tcp_server(&net.pc, dir.path(), "pc", 2222);
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
    assert_eq!(connect(&net.isp, PC, 2222), None);
    // ...except through the configured forward, from outside and (hairpin) from the LAN.
    assert_eq!(
        connect(&net.isp, WAN_BOX, 8022).as_deref(),
        Some("hello from pc")
    );
    assert_eq!(
        connect(&net.pc, WAN_BOX, 8022).as_deref(),
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
    assert_eq!(connect(&net.isp, WAN_BOX, 18080), None, "not a WAN service");
    // officebox's SMTP answers on the WAN address.
    let banner = connect(&net.isp, WAN_BOX, 25).unwrap_or_default();
    assert!(
        banner.starts_with("220 officebox.office.test ESMTP"),
        "{banner}"
    );
}

#[test]
fn router_mode_routes_without_translation_and_lan_only_forwards_nothing() {
    require_program("python3", "python3");
    let net = Net::new("rrt");
    let dir = scratch_dir("router").unwrap();
    let web = tcp_server(&net.isp, dir.path(), "internet", 8080);
    let _pc = tcp_server(&net.pc, dir.path(), "pc", 2222);
    net.isp
        .run("ip", ["route", "add", "192.168.1.0/24", "via", WAN_BOX])
        .unwrap();
    let config = net.config("router");
    let ob = start(&net, &config);

    assert_eq!(
        connect(&net.pc, WAN_ISP, 8080).as_deref(),
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
        connect(&net.isp, PC, 2222).as_deref(),
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
        connect(&net.isp, PC, 2222),
        None,
        "lan-only forwards nothing"
    );
    assert_eq!(connect(&net.pc, WAN_ISP, 8080), None);
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
    let net = Net::new("rsw");
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
    let net = Net::new("rdz");
    let dir = scratch_dir("router").unwrap();
    let _pc = tcp_server(&net.pc, dir.path(), "pc", 2222);
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
    let net = Net::new("rwd");
    let dir = scratch_dir("router").unwrap();
    let web = tcp_server(&net.isp, dir.path(), "internet", 8080);
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
        connect(&net.pc, WAN_ISP, 8080).as_deref(),
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
    let net = Net::new("rpc");
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
    let net = Net::new("rdr");
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
