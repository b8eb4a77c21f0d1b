//! IMAP end to end (issue 20, first part): python's imaplib against the real binary on
//! the demo's ports. Mail delivered by SMTP is there over IMAP, plain on the IMAP port
//! from this machine, by STARTTLS, and over TLS on the IMAPS port; flags set over IMAP
//! are the Maildir's (POP3 sees the message read); UIDs and UIDVALIDITY stay across kill -9
//! and a start; an expunge removes the file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use officebox_testkit::{Officebox, READY_TIMEOUT, TestConfig, require_program};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_officebox"))
}

fn start(c: &TestConfig) -> Officebox {
    let ob = Officebox::start(bin(), &c.text()).unwrap();
    ob.peer()
        .wait_for_log("imap: serving", READY_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", ob.log()));
    ob
}

fn start_in(c: &TestConfig, dir: tempfile::TempDir) -> Officebox {
    let ob = Officebox::start_in(bin(), &c.text(), dir).unwrap();
    ob.peer()
        .wait_for_log("imap: serving", READY_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", ob.log()));
    ob
}

/// Runs a python script (imaplib) and returns what it printed.
fn python(script: &str, ob: &Officebox) -> String {
    let out = Command::new("python3")
        .args(["-c", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "imaplib:\n{}\n{}\nofficebox:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        ob.log()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn send(c: &TestConfig, subject: &str) {
    let out = Command::new("swaks")
        .args([
            "--server",
            &format!("127.0.0.1:{}", c.int("mail.smtp_port")),
        ])
        .args(["--from", "bob@office.test", "--to", "alice@office.test"])
        .args([
            "--header",
            &format!("Subject: {subject}"),
            "--body",
            "Hello Alice",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn mail_delivered_by_smtp_is_read_and_flagged_over_imap_and_uids_survive_a_restart() {
    require_program("swaks", "swaks");
    let c = TestConfig::demo().free_ports();
    let ob = start(&c);
    send(&c, "first");
    send(&c, "second");
    let (imap, imaps) = (c.int("mail.imap_port"), c.int("mail.imaps_port"));
    let seen = python(
        &format!(
            r#"
import imaplib, ssl
m = imaplib.IMAP4("127.0.0.1", {imap})
caps = m.capabilities
assert "IMAP4REV1" in caps and "AUTH=PLAIN" in caps and "STARTTLS" in caps, caps
m.login("alice", "demo-alice")
typ, folders = m.list()
names = [f.decode() for f in folders]
assert any('\\Sent' in f and '"Sent"' in f for f in names), names
typ, data = m.select("INBOX")
assert data == [b"2"], data
typ, data = m.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
subjects = [d[1].decode().strip() for d in data if isinstance(d, tuple)]
assert subjects == ["Subject: first", "Subject: second"], subjects
typ, data = m.fetch("1", "(BODY[TEXT])")
assert b"Hello Alice" in data[0][1], data
typ, data = m.store("2", "+FLAGS", "(\\Flagged \\Deleted)")
assert b"\\Flagged" in data[0] and b"\\Deleted" in data[0], data
typ, data = m.status("INBOX", "(MESSAGES UNSEEN UIDNEXT UIDVALIDITY)")
print(data[0].decode())
typ, data = m.expunge()
assert data == [b"2"], data
m.logout()
# STARTTLS, then the same folder.
m = imaplib.IMAP4("127.0.0.1", {imap})
m.starttls(ssl._create_unverified_context())
m.login("alice", "demo-alice")
typ, data = m.select("INBOX", readonly=True)
assert data == [b"1"], data
typ, data = m.fetch("1", "(FLAGS)")
assert b"\\Seen" in data[0], data
m.logout()
# IMAPS.
m = imaplib.IMAP4_SSL("127.0.0.1", {imaps}, ssl_context=ssl._create_unverified_context())
m.login("alice", "demo-alice")
m.select("INBOX")
typ, data = m.uid("FETCH", "1:*", "(UID)")
print(data[0].decode())
m.logout()
# A wrong password is refused.
m = imaplib.IMAP4("127.0.0.1", {imap})
try:
    m.login("alice", "wrong")
    raise SystemExit("a wrong password was taken")
except imaplib.IMAP4.error as e:
    assert "AUTHENTICATIONFAILED" in str(e), e
"#
        ),
        &ob,
    );
    assert!(seen.contains("MESSAGES 2"), "{seen}");
    assert!(seen.contains("UNSEEN 1"), "{seen}");
    assert!(seen.contains("(UID 1)"), "{seen}");
    let validity: String = seen
        .split("UIDVALIDITY ")
        .nth(1)
        .unwrap()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    // The Maildir says what IMAP set: the first message read (S), the second gone.
    let cur = ob.dir().join("demo-data/mail/alice/cur");
    let files: Vec<String> = std::fs::read_dir(&cur)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].ends_with(":2,S"), "{files:?}");
    // After kill -9 and a start (and a new mail), the UIDs and UIDVALIDITY are the same.
    let dir = ob.kill9().unwrap();
    let ob = start_in(&c, dir);
    send(&c, "third");
    let after = python(
        &format!(
            r#"
import imaplib
m = imaplib.IMAP4("127.0.0.1", {imap})
m.login("alice", "demo-alice")
m.select("INBOX")
typ, data = m.uid("FETCH", "1:*", "(UID)")
print(" ".join(d.decode() for d in data))
typ, data = m.status("INBOX", "(UIDVALIDITY)")
print(data[0].decode())
m.logout()
"#
        ),
        &ob,
    );
    assert!(
        after.contains("(UID 1)") && after.contains("(UID 3)"),
        "{after}"
    );
    assert!(!after.contains("(UID 2)"), "{after}");
    assert!(
        after.contains(&format!("UIDVALIDITY {validity}")),
        "{after}"
    );
}

/// Reads what the server sent until `until` appears (or 10 s pass).
fn read_until(stream: &mut std::net::TcpStream, until: &str) -> String {
    use std::io::Read;
    stream
        .set_read_timeout(Some(std::time::Duration::from_millis(200)))
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while std::time::Instant::now() < deadline && !String::from_utf8_lossy(&got).contains(until) {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn hostile_commands_are_refused_without_being_buffered() {
    use std::io::Write;
    let c = TestConfig::demo().free_ports();
    let ob = start(&c);
    let addr = format!("127.0.0.1:{}", c.int("mail.imap_port"));
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    assert!(read_until(&mut s, "\r\n").starts_with("* OK [CAPABILITY IMAP4rev1"));
    // A gigabyte literal announced: refused by its tag, and the session goes on.
    s.write_all(b"a1 LOGIN {1000000000}\r\n").unwrap();
    let r = read_until(&mut s, "a1 ");
    assert!(r.contains("a1 NO [TOOBIG]"), "{r}");
    // Junk, 8-bit atoms, nesting, an unknown command: each a tagged BAD.
    s.write_all(b"a2 SELECT caf\xc3\xa9\r\na3 FOO\r\n\xff\xfe\r\na4 NOOP\r\n")
        .unwrap();
    let r = read_until(&mut s, "a4 OK");
    assert!(
        r.contains("a2 BAD") && r.contains("a3 BAD unknown command FOO"),
        "{r}"
    );
    assert!(r.contains("* BAD"), "{r}");
    // Commands that need a login are refused before it.
    s.write_all(b"a5 SELECT INBOX\r\n").unwrap();
    assert!(read_until(&mut s, "a5 ").contains("a5 NO log in first"));
    // A line that never ends: cut off at the limit with BYE, not held.
    let long = vec![b'x'; 100 * 1024];
    let _ = s.write_all(b"a6 LOGIN ");
    let _ = s.write_all(&long);
    let r = read_until(&mut s, "* BYE");
    assert!(r.contains("* BYE command too long"), "{r}");
    // The box is fine: a new client is greeted.
    let mut again = std::net::TcpStream::connect(&addr).unwrap();
    assert!(
        read_until(&mut again, "\r\n").starts_with("* OK"),
        "{}",
        ob.log()
    );
}
