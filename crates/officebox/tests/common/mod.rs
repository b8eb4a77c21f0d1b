//! sipp as the phones of the phone and voicemail tests: the scenarios in
//! crates/voice/tests/sipp, run against officebox on loopback.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // each test file uses some

use std::path::{Path, PathBuf};
use std::process::Command;

use officebox_testkit::{Peer, free_udp_port};

/// The sipp scenarios and injection files.
pub fn scenarios() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../voice/tests/sipp")
}

/// A sipp running in the background (a phone waiting for calls, a subscriber).
pub fn sipp_peer(name: &str, args: &[&str]) -> Peer {
    let mut cmd = Command::new("sipp");
    cmd.current_dir(scenarios()).args(args);
    Peer::spawn(name, cmd).unwrap()
}

/// bob's phone (a sipp running `scenario` on `bob_port`), registered for extension 102 by
/// another sipp (register_contact.xml).
pub fn bobs_phone(target: &str, scenario: &str, bob_port: &str) -> Peer {
    let media = free_udp_port().unwrap().to_string();
    let uas = sipp_peer(
        "bob-phone",
        &[
            "-sf",
            scenario,
            "-i",
            "127.0.0.1",
            "-p",
            bob_port,
            "-mp",
            &media,
            "-m",
            "1",
            "-nostdin",
        ],
    );
    let reg = Command::new("sipp")
        .current_dir(scenarios())
        .args([
            "-sf",
            "register_contact.xml",
            "-inf",
            "callee.csv",
            "-key",
            "domain",
            "office.test",
        ])
        .args([
            "-key",
            "contact_port",
            bob_port,
            "-auth_uri",
            "office.test",
            "-i",
            "127.0.0.1",
        ])
        .args([
            "-p",
            &free_udp_port().unwrap().to_string(),
            "-m",
            "1",
            "-nostdin",
            target,
        ])
        .output()
        .unwrap();
    assert!(
        reg.status.success(),
        "{}",
        String::from_utf8_lossy(&reg.stdout)
    );
    uas
}

/// One call by the phone of `inf` (caller.csv: alice, callee.csv: bob) to `callee` with
/// `scenario`, to officebox at `target`: (success, sipp's errors).
pub fn sipp_call(target: &str, scenario: &str, inf: &str, callee: &str) -> (bool, String) {
    sipp_call_with(target, scenario, inf, callee, &[], "30s")
}

/// [`sipp_call`] with more of sipp's arguments (`-key fax_port 40000`, say), waiting up
/// to `recv_timeout` for each message.
pub fn sipp_call_with(
    target: &str,
    scenario: &str,
    inf: &str,
    callee: &str,
    extra: &[&str],
    recv_timeout: &str,
) -> (bool, String) {
    let errors = officebox_testkit::scratch_dir("sipp-uac").unwrap();
    let out = Command::new("sipp")
        .current_dir(scenarios())
        .args([
            "-sf",
            scenario,
            "-inf",
            inf,
            "-key",
            "domain",
            "office.test",
        ])
        .args([
            "-key",
            "callee",
            callee,
            "-auth_uri",
            "office.test",
            "-i",
            "127.0.0.1",
        ])
        .args(["-p", &free_udp_port().unwrap().to_string()])
        .args(["-mp", &free_udp_port().unwrap().to_string()])
        .args([
            "-m",
            "1",
            "-nostdin",
            "-recv_timeout",
            recv_timeout,
            "-trace_err",
            "-error_file",
        ])
        .arg(errors.path().join("e.txt"))
        .args(extra)
        .arg(target)
        .output()
        .unwrap();
    (
        out.status.success(),
        std::fs::read_to_string(errors.path().join("e.txt")).unwrap_or_default(),
    )
}
