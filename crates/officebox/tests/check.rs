//! `officebox check` on broken configs: every problem at its line and column, with what
//! would be right. Each `broken/NAME.toml` has the exact expected stderr in
//! `broken/NAME.err`. After an intended change of wording, regenerate the expectations with
//! `UPDATE_EXPECT=1 cargo test -p officebox --test check` and review the diff.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::path::{Path, PathBuf};
use std::process::Command;

fn officebox() -> Command {
    Command::new(env!("CARGO_BIN_EXE_officebox"))
}

fn broken_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/broken")
}

/// Runs `officebox check` on `input` (relative to tests/broken, so messages name it the
/// same way on every machine) and compares stderr with `expected`.
fn check(input: &str, expected: &Path) -> Result<(), String> {
    let out = officebox()
        .args(["check", "--config", input])
        .current_dir(broken_dir())
        .output()
        .map_err(|e| format!("cannot run officebox: {e}"))?;
    if out.status.success() {
        return Err(format!("{input}: officebox check accepted a broken config"));
    }
    if !out.stdout.is_empty() {
        return Err(format!(
            "{input}: printed on stdout: {}",
            String::from_utf8_lossy(&out.stdout)
        ));
    }
    let actual = String::from_utf8_lossy(&out.stderr).into_owned();
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(expected, &actual).map_err(|e| e.to_string())?;
        return Ok(());
    }
    let want = std::fs::read_to_string(expected).map_err(|e| {
        format!(
            "{}: {e} (run with UPDATE_EXPECT=1 to create it)",
            expected.display()
        )
    })?;
    if actual != want {
        return Err(format!(
            "{input}: stderr differs\n--- expected\n{want}--- actual\n{actual}"
        ));
    }
    Ok(())
}

#[test]
fn broken_configs_report_every_problem_with_position_and_help() {
    let mut inputs: Vec<String> = std::fs::read_dir(broken_dir())
        .expect("tests/broken exists")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    inputs.sort();
    assert!(
        inputs.len() >= 15,
        "the suite promises at least 15 broken configs"
    );
    let failures: Vec<String> = inputs
        .iter()
        .filter_map(|name| check(name, &broken_dir().join(name.replace(".toml", ".err"))).err())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_message_has_a_position_a_path_and_help() {
    // A structural guard over all expectations: "FILE:LINE:COL: path: message" then help.
    for entry in std::fs::read_dir(broken_dir()).expect("tests/broken exists") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_none_or(|e| e != "err") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable");
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("utf-8 name");
        let mut lines = text.lines().peekable();
        while let Some(line) = lines.next() {
            if line.ends_with("problem(s)") {
                continue;
            }
            let prefix = format!("{name}.toml:");
            assert!(line.starts_with(&prefix), "{}: {line}", path.display());
            let mut parts = line[prefix.len()..].splitn(3, ':');
            let (l, c) = (parts.next(), parts.next());
            assert!(
                l.and_then(|l| l.parse::<usize>().ok()).is_some(),
                "line number in {line}"
            );
            assert!(
                c.and_then(|c| c.parse::<usize>().ok()).is_some(),
                "column in {line}"
            );
            let help = lines.next().unwrap_or_default();
            assert!(
                help.starts_with("  help: "),
                "{}: no help after {line}",
                path.display()
            );
        }
    }
}

#[test]
fn valid_configs_pass_and_print_derived_settings() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = officebox()
        .args(["check", "--config", "examples/demo.toml"])
        .current_dir(&root)
        .output()
        .expect("officebox runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "security  firewall-nat (forwarding on, NAT on, firewall on, stealth WAN off)",
        "          www.office.test -> 203.0.113.10",
        "          smtp.office.test -> 203.0.113.10 192.168.1.1",
        "          MX 10 smtp.office.test; NS officebox.office.test",
        "          ntp        udp 10123 on 127.0.0.1",
        "examples/demo.toml: ok",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "missing {line:?} in\n{stdout}"
        );
    }
}

#[test]
fn init_writes_a_valid_commented_config_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("officebox.toml");
    let out = officebox()
        .args(["init", "--domain", "acme.example", "--config"])
        .arg(&path)
        .output()
        .expect("officebox runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let password = stdout
        .lines()
        .find_map(|l| l.strip_prefix("admin password: "))
        .and_then(|l| l.split_whitespace().next())
        .expect("the password is shown");
    assert_eq!(password.len(), 16);
    let text = std::fs::read_to_string(&path).expect("written");
    assert!(text.contains("domain = \"acme.example\""));
    // The box is named as the machine is (its first label), where the config takes it.
    let machine = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("a host name");
    let first = machine
        .trim()
        .split('.')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    let named = if first.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') && !first.is_empty()
    {
        first
    } else {
        "officebox".to_string()
    };
    assert!(text.contains(&format!("hostname = \"{named}\"")), "{text}");
    assert!(
        !text.contains(password),
        "the password itself is never stored"
    );
    assert!(
        text.lines()
            .filter(|l| l.trim_start().starts_with('#'))
            .count()
            > 40
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&path).expect("meta").permissions(),
    );
    assert_eq!(
        mode & 0o777,
        0o600,
        "the config holds ISP passwords: owner only"
    );
    let check = officebox()
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .expect("runs");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let again = officebox()
        .args(["init", "--config"])
        .arg(&path)
        .output()
        .expect("runs");
    assert!(!again.status.success());
    assert_eq!(std::fs::read_to_string(&path).expect("still there"), text);

    // A name given is used, and a name the config cannot take is refused.
    let named = dir.path().join("named.toml");
    let out = officebox()
        .args(["init", "--hostname", "FrontDesk", "--config"])
        .arg(&named)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&named).expect("written");
    assert!(text.contains("hostname = \"frontdesk\""), "{text}");
    let bad = officebox()
        .args(["init", "--hostname", "front desk", "--config"])
        .arg(dir.path().join("bad.toml"))
        .output()
        .expect("runs");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--hostname"));
}

#[test]
fn valid_but_doubtful_settings_get_advice() {
    // Hosting the domain's DNS on a WAN address the ISP leases by DHCP (white paper,
    // section 6: a static address is needed), and an open relay.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("officebox.toml");
    let demo = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo.toml"),
    )
    .expect("the demo config");
    let text = demo
        .replace(
            "mode = \"static\"\naddress = \"203.0.113.10\"\nnetmask = \"255.255.255.0\"\ngateway = \"203.0.113.1\"",
            "mode = \"dhcp\"",
        )
        .replace("wan_services = [\"smtp\", \"www\"]", "wan_services = [\"smtp\", \"www\", \"dns\"]")
        .replace("[mail]\n", "[mail]\nrelay_from_wan = true\n");
    assert_ne!(text, demo);
    std::fs::write(&path, text).expect("written");
    let out = officebox()
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .expect("officebox runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "still valid: {stderr}");
    assert!(
        stderr.contains("warning: security.wan_services:") && stderr.contains("static WAN address"),
        "{stderr}"
    );
    assert!(stderr.contains("warning: mail.relay_from_wan:"), "{stderr}");
}
