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
    sipp_call_in(
        Command::new("sipp"),
        target,
        scenario,
        inf,
        callee,
        &[],
        "30s",
    )
}

/// [`sipp_call`] run by `sipp` (a command for sipp: `Command::new("sipp")`, or one inside
/// a test's namespace, `Netns::command("sipp")`), with more of sipp's arguments (`-key
/// fax_port 40000`, say), waiting up to `recv_timeout` for each message.
pub fn sipp_call_in(
    mut sipp: Command,
    target: &str,
    scenario: &str,
    inf: &str,
    callee: &str,
    extra: &[&str],
    recv_timeout: &str,
) -> (bool, String) {
    let errors = officebox_testkit::scratch_dir("sipp-uac").unwrap();
    let out = sipp
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

/// One message as a mail program sees it: its subject, and each leaf part (content
/// type, decoded body).
#[derive(Debug)]
pub struct Mail {
    pub subject: String,
    pub parts: Vec<(String, Vec<u8>)>,
}

impl Mail {
    /// The first part of `content_type`.
    pub fn part(&self, content_type: &str) -> Option<&[u8]> {
        self.parts
            .iter()
            .find(|(t, _)| t == content_type)
            .map(|(_, b)| b.as_slice())
    }

    /// The first text/plain part, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(self.part("text/plain").unwrap_or_default()).into_owned()
    }
}

/// `login`'s mailbox through POP3 on loopback `port`, read by Python's poplib and email
/// (a client and a MIME reader that are not officebox's), oldest first.
pub fn pop3_mail(port: i64, login: &str, password: &str) -> Vec<Mail> {
    let dir = officebox_testkit::scratch_dir("pop3-mail").unwrap();
    let script = format!(
        r#"
import poplib, email, os
p = poplib.POP3("127.0.0.1", {port})
p.user({login:?}); p.pass_({password:?})
n, _ = p.stat()
for i in range(1, n + 1):
    m = email.message_from_bytes(b"\r\n".join(p.retr(i)[1]))
    d = os.path.join({dir:?}, "%03d" % i)
    os.mkdir(d)
    open(os.path.join(d, "subject"), "w").write(m["Subject"] or "")
    for k, part in enumerate(m.walk()):
        if not part.is_multipart():
            name = "%03d %s" % (k, part.get_content_type().replace("/", "_"))
            open(os.path.join(d, name), "wb").write(part.get_payload(decode=True) or b"")
p.quit()
"#,
        dir = dir.path().display().to_string()
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "poplib: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut messages: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    messages.sort();
    messages
        .iter()
        .map(|m| {
            let mut files: Vec<PathBuf> = std::fs::read_dir(m)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.file_name().is_some_and(|n| n != "subject"))
                .collect();
            files.sort();
            Mail {
                subject: std::fs::read_to_string(m.join("subject")).unwrap(),
                parts: files
                    .iter()
                    .map(|f| {
                        let name = f.file_name().unwrap().to_string_lossy().into_owned();
                        let kind = name
                            .split_once(' ')
                            .map_or("", |(_, t)| t)
                            .replacen('_', "/", 1);
                        (kind, std::fs::read(f).unwrap())
                    })
                    .collect(),
            }
        })
        .collect()
}
