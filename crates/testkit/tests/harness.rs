//! The harness's own end-to-end checks. They need root (they create network
//! namespaces), `ip` (iproute2) and `ping` (iputils-ping).

use std::error::Error;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use officebox_testkit::{
    Endpoint, Netns, Peer, Veth, require_program, require_root, scratch_dir, wait_until,
};

type TestResult = Result<(), Box<dyn Error>>;

const SECS5: Duration = Duration::from_secs(5);

/// Third octet for 10.231.X.0/30 subnets, different for every test in this run.
/// The addresses exist only inside namespaces the tests create.
fn subnet() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed) % 256
}

fn netns_exists(name: &str) -> Result<bool, Box<dyn Error>> {
    let out = Command::new("ip").args(["netns", "list"]).output()?;
    assert!(out.status.success(), "ip netns list failed: {out:?}");
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.split_whitespace().next() == Some(name)))
}

/// Whether `ip [-n NS] link show NAME` succeeds.
fn link_exists(netns: Option<&str>, name: &str) -> Result<bool, Box<dyn Error>> {
    let mut cmd = Command::new("ip");
    if let Some(ns) = netns {
        cmd.args(["-n", ns]);
    }
    Ok(cmd.args(["link", "show", name]).output()?.status.success())
}

/// The one-letter state from /proc/PID/stat, or None if the process is gone.
fn proc_state(pid: u32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

fn preconditions() {
    require_root();
    require_program("ip", "iproute2");
}

#[test]
fn namespaces_joined_by_veth_ping_and_vanish_on_drop() -> TestResult {
    preconditions();
    require_program("ping", "iputils-ping");
    let net = subnet();
    let left = Netns::new("left")?;
    let right = Netns::new("right")?;
    let wire = Veth::new(
        Endpoint::netns(&left).addr(&format!("10.231.{net}.1/30")),
        Endpoint::netns(&right).addr(&format!("10.231.{net}.2/30")),
    )?;
    let names = (left.name().to_owned(), right.name().to_owned());
    let links = (wire.name_a().to_owned(), wire.name_b().to_owned());
    assert!(
        names.0.len() < 32 && names.0.starts_with("obx-left-"),
        "{}",
        names.0
    );
    assert!(links.0.len() <= 15 && links.1.len() <= 15);
    assert!(netns_exists(&names.0)? && netns_exists(&names.1)?);
    assert!(link_exists(Some(&names.0), &links.0)?);
    assert!(link_exists(Some(&names.1), &links.1)?);
    // Nothing was added to the host.
    assert!(!link_exists(None, &links.0)? && !link_exists(None, &links.1)?);

    left.run("ping", ["-c", "1", "-W", "2", &format!("10.231.{net}.2")])?;
    right.run("ping", ["-c", "1", "-W", "2", &format!("10.231.{net}.1")])?;

    drop(wire);
    drop(right);
    drop(left);
    assert!(!netns_exists(&names.0)?, "{} still exists", names.0);
    assert!(!netns_exists(&names.1)?, "{} still exists", names.1);
    assert!(!link_exists(None, &links.0)? && !link_exists(None, &links.1)?);
    assert!(!link_exists(Some(&names.0), &links.0)?);
    Ok(())
}

#[test]
fn dropping_veth_removes_both_ends_and_tolerates_gone_links() -> TestResult {
    preconditions();
    let a = Netns::new("va")?;
    let b = Netns::new("vb")?;
    let wire = Veth::new(Endpoint::netns(&a), Endpoint::netns(&b))?;
    let (la, lb) = (wire.name_a().to_owned(), wire.name_b().to_owned());
    drop(wire);
    assert!(!link_exists(Some(a.name()), &la)?);
    assert!(!link_exists(Some(b.name()), &lb)?);

    // A link whose namespace went first: dropping it must not panic.
    let wire = Veth::new(Endpoint::netns(&a), Endpoint::netns(&b))?;
    let lb = wire.name_b().to_owned();
    drop(a);
    assert!(wait_until(SECS5, || !link_exists(Some(b.name()), &lb).unwrap_or(true)));
    drop(wire);
    Ok(())
}

#[test]
fn run_failure_names_program_status_and_stderr() -> TestResult {
    preconditions();
    let ns = Netns::new("run")?;
    let err = ns
        .run("sh", ["-c", "echo no-such-thing >&2; exit 3"])
        .err()
        .ok_or("a failing command succeeded")?
        .to_string();
    assert!(err.contains("sh -c"), "{err}");
    assert!(err.contains("exit status: 3"), "{err}");
    assert!(err.contains("no-such-thing"), "{err}");
    let out = ns.run("ip", ["-o", "link", "show", "lo"])?;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("UP"),
        "lo is not up: {out:?}"
    );
    Ok(())
}

#[test]
fn dropping_netns_kills_processes_inside() -> TestResult {
    preconditions();
    let ns = Netns::new("kill")?;
    let name = ns.name().to_owned();
    let mut cmd = ns.command("sleep");
    cmd.arg("1000");
    let peer = Peer::spawn("sleeper", cmd)?;
    assert!(wait_until(SECS5, || ns
        .pids()
        .is_ok_and(|p| p.contains(&peer.pid()))));
    drop(ns);
    let status = peer
        .try_wait()?
        .ok_or("sleep still running after its namespace dropped")?;
    assert_eq!(status.signal(), Some(9));
    assert!(!netns_exists(&name)?);
    Ok(())
}

#[test]
fn peer_and_its_children_die_when_a_test_panics() -> TestResult {
    let pids = Mutex::new(None);
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "sleep 1000 & echo child $!; echo ready; wait"]);
        let peer = Peer::spawn("panicky", cmd).unwrap_or_else(|e| panic!("spawn: {e}"));
        peer.wait_for_log("ready", SECS5)
            .unwrap_or_else(|e| panic!("{e}"));
        let child: u32 = peer
            .log()
            .lines()
            .find_map(|l| l.strip_prefix("child ")?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no child pid in log: {}", peer.log()));
        *pids.lock().unwrap_or_else(|e| e.into_inner()) = Some((peer.pid(), child));
        panic!("deliberate panic: the peer must still be cleaned up");
    }));
    assert!(result.is_err());
    let (pid, child) = pids
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .ok_or("the peer never started")?;
    // Our own child was reaped in Drop: no process, no zombie.
    assert_eq!(proc_state(pid), None, "peer {pid} still exists");
    // The grandchild was killed with the process group; whoever adopted it may not
    // have reaped it yet, so a zombie is acceptable, a running sleep is not.
    assert!(
        wait_until(SECS5, || matches!(
            proc_state(child),
            None | Some('Z' | 'X')
        )),
        "grandchild {child} still running: {:?}",
        proc_state(child)
    );
    Ok(())
}

#[test]
fn wait_for_log_timeout_quotes_the_log_tail() -> TestResult {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "for i in $(seq 1 100); do echo line$i; done; echo to-stderr >&2; echo done; exec sleep 1000"]);
    let peer = Peer::spawn("chatty", cmd)?;
    peer.wait_for_log("done", SECS5)?;
    let start = Instant::now();
    let err = peer
        .wait_for_log("never printed", Duration::from_millis(300))
        .err()
        .ok_or("found a needle that was never printed")?;
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    let msg = err.to_string();
    assert!(
        msg.contains("chatty") && msg.contains("never printed"),
        "{msg}"
    );
    assert!(msg.contains("line99\nline100\nto-stderr\ndone"), "{msg}");
    assert!(!msg.contains("line1\n"), "tail is not a tail: {msg}");
    Ok(())
}

#[test]
fn wait_for_log_fails_fast_when_the_peer_exits() -> TestResult {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "echo bad config >&2; exit 2"]);
    let peer = Peer::spawn("quitter", cmd)?;
    let start = Instant::now();
    let msg = peer
        .wait_for_log("listening", Duration::from_secs(30))
        .err()
        .ok_or("found a needle that was never printed")?
        .to_string();
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(
        msg.contains("exit status: 2") && msg.contains("bad config"),
        "{msg}"
    );
    assert!(peer.signal("TERM").is_err(), "signalled a reaped pid");
    Ok(())
}

#[test]
fn stop_terminates_gracefully_or_escalates_to_sigkill() -> TestResult {
    let mut cmd = Command::new("sleep");
    cmd.arg("1000");
    let polite = Peer::spawn("polite", cmd)?;
    assert_eq!(polite.stop(SECS5)?.signal(), Some(15));

    let mut cmd = Command::new("sh");
    cmd.args(["-c", "trap '' TERM; echo ready; sleep 1000"]);
    let stubborn = Peer::spawn("stubborn", cmd)?;
    stubborn.wait_for_log("ready", SECS5)?;
    let start = Instant::now();
    assert_eq!(stubborn.stop(Duration::from_millis(300))?.signal(), Some(9));
    assert!(start.elapsed() >= Duration::from_millis(300));
    Ok(())
}

#[test]
fn signal_kill9_and_spawn_in_a_given_dir() -> TestResult {
    let dir = scratch_dir("peer")?;
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "trap 'echo got-hup' HUP; echo ready; while :; do sleep 0.05; done",
    ]);
    let peer = Peer::spawn_in("hup", cmd, dir.path())?;
    assert_eq!(peer.log_path(), dir.path().join("hup.log"));
    peer.wait_for_log("ready", SECS5)?;
    peer.signal("HUP")?;
    peer.wait_for_log("got-hup", SECS5)?;
    assert!(peer.try_wait()?.is_none());
    assert_eq!(peer.kill9()?.signal(), Some(9));
    assert!(peer.try_wait()?.is_some());
    assert!(peer.signal("TERM").is_err());
    drop(peer);
    assert!(
        dir.path().join("hup.log").exists(),
        "spawn_in must leave the log"
    );
    Ok(())
}

#[test]
fn require_root_passes_as_root() {
    // CI runs this suite as root; anywhere else this fails loudly, as it should.
    require_root();
}
