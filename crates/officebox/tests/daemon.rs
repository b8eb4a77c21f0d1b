//! The daemon's life: start, serve, reload on SIGHUP, refuse a broken reload while keeping
//! the old config, stop on SIGINT/SIGTERM within 5 s with its ports free again, and come
//! back after kill -9 on the same state.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use officebox_testkit::{Officebox, TestConfig};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_officebox"))
}

/// Asks the time server on `port` for the time (an SNTPv4 client request); `None` when
/// nothing answers within a second.
fn ntp_time(port: u16) -> Option<u64> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).ok()?;
    socket.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    let mut request = [0u8; 48];
    request[0] = 0x23; // LI 0, version 4, mode 3 (client)
    socket
        .send_to(&request, SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .ok()?;
    let mut reply = [0u8; 64];
    let (len, _) = socket.recv_from(&mut reply).ok()?;
    assert_eq!(len, 48, "an NTP reply is 48 bytes");
    assert_eq!(reply[0] & 0x7, 4, "mode 4: server");
    let secs = u32::from_be_bytes([reply[40], reply[41], reply[42], reply[43]]);
    Some(u64::from(secs) - 2_208_988_800)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn port(config: &TestConfig, path: &str) -> u16 {
    u16::try_from(config.int(path)).expect("a port")
}

#[test]
fn starts_reloads_refuses_a_broken_reload_and_stops_on_sigint() {
    let config = TestConfig::demo().free_ports();
    let ntp = port(&config, "ntp.port");
    let ob = Officebox::start(bin(), &config.text()).expect("officebox starts");

    // Each service logs its own "serving" line once its socket is bound, which may come
    // just after the daemon says it is running.
    ob.peer()
        .wait_for_log("ntp: serving addr=127.0.0.1:", Duration::from_secs(5))
        .expect("the time server binds");
    let log = ob.log();
    for line in [
        "service started service=\"ntp\"",
        "officebox running services=dns, mail, phone, web, ntp",
    ] {
        assert!(log.contains(line), "log lacks {line:?}:\n{log}");
    }
    assert!(
        !log.contains("does not have that service yet"),
        "every service is built:\n{log}"
    );
    let t = ntp_time(ntp).expect("the time server answers");
    assert!(t.abs_diff(now()) <= 2);

    // A valid change moves the service to another port without a restart.
    let moved = config.clone().set(
        "ntp.port",
        i64::from(officebox_testkit::free_udp_port().expect("port")),
    );
    let ntp2 = port(&moved, "ntp.port");
    ob.write_config(&moved.text()).expect("write");
    assert!(
        ob.reload().expect("reload finishes"),
        "a valid config is applied:\n{}",
        ob.log()
    );
    // The NTP service moves itself once the new config reaches it, just after the reload.
    ob.peer()
        .wait_for_log(
            &format!("ntp: serving addr=127.0.0.1:{ntp2}"),
            Duration::from_secs(5),
        )
        .expect("the time server moves");
    assert!(
        ntp_time(ntp2).is_some(),
        "answers on the new port after reload"
    );
    assert!(
        ntp_time(ntp).is_none(),
        "the old port is closed after reload"
    );

    // A broken file changes nothing and says why, with the position.
    ob.write_config(&moved.text().replace("[ntp]", "[ntp]\nprot = 1"))
        .expect("write");
    assert!(
        !ob.reload().expect("reload finishes"),
        "a broken config is refused"
    );
    let log = ob.log();
    assert!(
        log.contains("reload refused: the new config is invalid; keeping the running one"),
        "{log}"
    );
    assert!(log.contains("unknown setting `prot` in [ntp]"), "{log}");
    assert!(
        log.contains("officebox.toml:"),
        "the error names the file and position:\n{log}"
    );
    assert!(
        ntp_time(ntp2).is_some(),
        "still serving with the old config"
    );

    // Disabling a service stops it; enabling it again starts it.
    ob.write_config(&moved.clone().set("ntp.enabled", false).text())
        .expect("write");
    assert!(ob.reload().expect("reload"));
    // The service stops right after the reload is applied.
    assert!(
        officebox_testkit::wait_until(Duration::from_secs(3), || ntp_time(ntp2).is_none()),
        "disabled by reload"
    );
    ob.write_config(&moved.text()).expect("write");
    assert!(ob.reload().expect("reload"));
    assert!(
        officebox_testkit::wait_until(Duration::from_secs(3), || ntp_time(ntp2).is_some()),
        "enabled again by reload"
    );

    let (status, log, _dir) = ob
        .stop_with("INT", Duration::from_secs(5))
        .expect("stops within 5 s");
    assert!(status.success(), "clean exit on SIGINT: {status}\n{log}");
    assert!(
        log.contains("SIGINT: stopping") && log.contains("officebox stopped"),
        "{log}"
    );
    // The port is free again.
    UdpSocket::bind((Ipv4Addr::LOCALHOST, ntp2)).expect("the ntp port can be bound after shutdown");
}

#[test]
fn stops_on_sigterm_and_restarts_after_kill_9_on_the_same_state() {
    let config = TestConfig::demo().free_ports();
    let ntp = port(&config, "ntp.port");
    let ob = Officebox::start(bin(), &config.text()).expect("starts");
    let state = ob.dir().join("demo-data/state.db");
    assert!(
        state.exists(),
        "the state database is created under data_dir"
    );
    let dir = ob.kill9().expect("kill -9");

    let ob = Officebox::start_in(bin(), &config.text(), dir).expect("restarts on the same state");
    assert!(ntp_time(ntp).is_some());
    let (status, log, _dir) = ob
        .stop_with("TERM", Duration::from_secs(5))
        .expect("stops within 5 s");
    assert!(status.success(), "{status}\n{log}");
    assert!(log.contains("SIGTERM: stopping"));
}

#[test]
fn an_invalid_config_starts_nothing() {
    let dir = officebox_testkit::scratch_dir("invalid").expect("dir");
    let path = dir.path().join("officebox.toml");
    std::fs::write(
        &path,
        TestConfig::demo()
            .free_ports()
            .text()
            .replace("mode = \"firewall-nat\"", "mode = \"open\""),
    )
    .expect("write");
    let out = std::process::Command::new(bin())
        .args(["run", "--config"])
        .arg(&path)
        .current_dir(dir.path())
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(":27:8: security.mode: unknown security mode `open`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("has 1 problem(s); nothing was started"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("demo-data").exists(),
        "no state is created for a refused config"
    );
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let busy = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let taken = busy.local_addr().expect("addr").port();
    let config = TestConfig::demo()
        .free_ports()
        .set("ntp.port", i64::from(taken));
    let dir = officebox_testkit::scratch_dir("busy").expect("dir");
    let path = dir.path().join("officebox.toml");
    std::fs::write(&path, config.text()).expect("write");
    let out = std::process::Command::new(bin())
        .args(["run", "--config"])
        .arg(&path)
        .current_dir(dir.path())
        .output()
        .expect("runs");
    assert!(
        !out.status.success(),
        "a service that cannot listen stops officebox"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("ntp: cannot listen on udp 127.0.0.1:{taken}")),
        "{stderr}"
    );
}

#[test]
fn json_logs_with_a_flag() {
    let config = TestConfig::demo().free_ports();
    let dir = officebox_testkit::scratch_dir("json").expect("dir");
    let path = dir.path().join("officebox.toml");
    std::fs::write(&path, config.text()).expect("write");
    let mut cmd = std::process::Command::new(bin());
    cmd.args(["--log-format", "json", "run", "--config"])
        .arg(&path)
        .current_dir(dir.path());
    let peer = officebox_testkit::Peer::spawn_in("officebox", cmd, dir.path()).expect("starts");
    peer.wait_for_log("officebox running", officebox_testkit::READY_TIMEOUT)
        .expect("runs");
    peer.signal("INT").expect("signal");
    assert!(officebox_testkit::wait_until(
        Duration::from_secs(5),
        || peer.log().contains("officebox stopped")
    ));
    let log = peer.log();
    for line in log.lines() {
        assert!(
            line.starts_with('{') && line.ends_with('}'),
            "not a JSON object: {line}"
        );
        assert!(
            line.contains("\"level\":") && line.contains("\"fields\":{"),
            "{line}"
        );
    }
    assert!(
        log.contains("\"message\":\"service started\",\"service\":\"ntp\""),
        "{log}"
    );
}

/// What officebox told the socket it was given as systemd's, in order.
fn notifications(socket: &std::os::unix::net::UnixDatagram, until: Duration) -> Vec<String> {
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let end = std::time::Instant::now() + until;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while std::time::Instant::now() < end {
        if let Ok(n) = socket.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    got
}

#[test]
fn tells_systemd_it_is_ready_reloading_and_stopping_and_feeds_the_watchdog() {
    let dir = officebox_testkit::scratch_dir("notify").unwrap();
    let path = dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    let config = TestConfig::demo().free_ports();
    // A watchdog of 0.4 s: officebox says WATCHDOG=1 every 0.2 s.
    let ob = Officebox::start_with_env(
        bin(),
        &config.text(),
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
    )
    .expect("officebox starts");
    let first = notifications(&socket, Duration::from_millis(1500));
    assert!(
        first[0].starts_with("READY=1\nSTATUS=running: dns, mail"),
        "{first:?}"
    );
    let fed = first.iter().filter(|m| *m == "WATCHDOG=1").count();
    // Every 0.2 s: seven or so in 1.5 s; a loaded machine may delay a few, never all.
    assert!((2..=10).contains(&fed), "fed every 0.2 s: {first:?}");

    assert!(ob.reload().unwrap());
    let reload = notifications(&socket, Duration::from_millis(500));
    let reload: Vec<&String> = reload.iter().filter(|m| *m != "WATCHDOG=1").collect();
    assert!(
        reload[0].starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{reload:?}"
    );
    let usec: u64 = reload[0].rsplit('=').next().unwrap().parse().unwrap();
    assert!(usec > 0);
    assert_eq!(reload[1], "READY=1\nSTATUS=running; reload applied");

    let (status, _, _) = ob.stop_with("TERM", Duration::from_secs(6)).unwrap();
    assert!(status.success());
    let last = notifications(&socket, Duration::from_millis(300));
    assert!(last.iter().any(|m| m == "STOPPING=1"), "{last:?}");
}

/// The unit the package installs (debian/officebox.service), pointed at this build.
fn unit_for_this_build(dir: &Path) -> std::path::PathBuf {
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../debian/officebox.service"),
    )
    .unwrap();
    // Each command line's program is this build's binary.
    let unit: String = unit
        .lines()
        .map(|line| match line.split_once('=') {
            Some((key @ ("ExecStart" | "ExecStartPre"), command)) => {
                let args = command.split_once(' ').map_or("", |(_, a)| a);
                format!("{key}={} {args}\n", bin().display())
            }
            _ => format!("{line}\n"),
        })
        .collect();
    let path = dir.join("officebox.service");
    std::fs::write(&path, unit).unwrap();
    path
}

#[test]
fn the_systemd_unit_verifies_and_keeps_its_exposure_low() {
    officebox_testkit::require_program("systemd-analyze", "systemd");
    let dir = officebox_testkit::scratch_dir("unit").unwrap();
    let unit = unit_for_this_build(dir.path());
    let verify = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
        .unwrap();
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    // systemd's own score of the sandbox: 0 is locked down, 10 is nothing at all. A
    // router that manages the firewall cannot reach 0; it must stay "OK" (under 3).
    let security = std::process::Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=30"])
        .arg(&unit)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&security.stdout);
    assert!(security.status.success(), "{report}");
    assert!(
        report.contains("Overall exposure level for officebox.service"),
        "{report}"
    );
}
