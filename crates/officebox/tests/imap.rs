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
    send_to(c, "alice@office.test", subject);
}

fn send_to(c: &TestConfig, to: &str, subject: &str) {
    let out = Command::new("swaks")
        .args([
            "--server",
            &format!("127.0.0.1:{}", c.int("mail.smtp_port")),
        ])
        .args(["--from", "bob@office.test", "--to", to])
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
    // Logged in: 9,000 copies of "1:*" cost what one does; searches nested past the
    // limit are refused.
    send(&c, "one");
    again
        .write_all(b"b1 LOGIN alice demo-alice\r\nb2 SELECT INBOX\r\n")
        .unwrap();
    assert!(read_until(&mut again, "b2 ").contains("b2 OK"));
    let huge = vec!["1:*"; 9000].join(",");
    let started = std::time::Instant::now();
    again
        .write_all(format!("b3 FETCH {huge} (UID)\r\n").as_bytes())
        .unwrap();
    let r = read_until(&mut again, "b3 ");
    assert!(
        r.contains("* 1 FETCH (UID 1)") && r.contains("b3 OK"),
        "{r}"
    );
    assert!(r.matches("FETCH (UID").count() == 1, "{r}");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    let nested = format!("b4 SEARCH {}ALL\r\n", "NOT ".repeat(40));
    again.write_all(nested.as_bytes()).unwrap();
    assert!(read_until(&mut again, "b4 ").contains("b4 BAD"));
    // A mailbox name that walks out of the Maildir is no folder.
    again
        .write_all(b"b5 SELECT \"../../bob\"\r\nb6 CREATE \"../x\"\r\nb7 NOOP\r\n")
        .unwrap();
    let r = read_until(&mut again, "b7 ");
    assert!(r.contains("b5 NO") && r.contains("b6 NO"), "{r}");
}

#[test]
fn folders_search_append_copy_move_and_idle_work_for_imaplib_and_curl() {
    require_program("swaks", "swaks");
    require_program("curl", "curl");
    let c = TestConfig::demo().free_ports();
    let ob = start(&c);
    send(&c, "invoice 4711");
    send(&c, "=?utf-8?q?Gr=C3=BC=C3=9Fe_aus_M=C3=BCnchen?=");
    let (imap, smtp, pop3) = (
        c.int("mail.imap_port"),
        c.int("mail.smtp_port"),
        c.int("mail.pop3_port"),
    );
    let out = python(
        &format!(
            r#"
import imaplib, poplib, smtplib, time
m = imaplib.IMAP4("127.0.0.1", {imap})
for cap in ("IDLE", "MOVE", "UIDPLUS", "ESEARCH", "SEARCHRES"):
    assert cap in m.capabilities, (cap, m.capabilities)
m.login("alice", "demo-alice")
m.select("INBOX")

# SEARCH on headers (decoded), body and flags; UTF-8 in a literal; ESEARCH and $.
assert m.search(None, "SUBJECT", "4711")[1] == [b"1"]
assert m.uid("SEARCH", "BODY", "hello")[1] == [b"1 2"]
m.literal = "grüße".encode()
typ, data = m.uid("SEARCH", "CHARSET", "UTF-8", "SUBJECT")
assert data == [b"2"], data
assert m.search(None, "UNSEEN", "NOT", "SUBJECT", "invoice")[1] == [b"2"]
typ, data = m.search("ISO-2022-JP", "ALL")
assert typ == "NO" and b"BADCHARSET" in data[0], (typ, data)
typ, data = m._simple_command("UID", "SEARCH", "RETURN", "(MIN MAX COUNT SAVE)", "ALL")
esearch = m.untagged_responses.pop("ESEARCH")[0].decode()
assert "UID MIN 1 MAX 2 COUNT 2" in esearch, esearch
typ, data = m.uid("FETCH", "$", "(UID)")
assert len([d for d in data if d]) == 2, data

# APPEND with flags, a keyword and a date: its UID told; read back from Drafts.
typ, data = m.append("Drafts", r"(\Draft $Work)", '"01-Dec-2026 09:30:00 +0100"',
                     b"Subject: a draft\r\n\r\nnot sent yet\r\n")
assert typ == "OK", data
validity, draft_uid = m.response("APPENDUID")[1][0].decode().split()
typ, data = m.status("Drafts", "(MESSAGES UIDVALIDITY)")
assert f"UIDVALIDITY {{validity}}" in data[0].decode(), data
m.select("Drafts")
typ, data = m.uid("FETCH", draft_uid, "(FLAGS INTERNALDATE BODY.PEEK[TEXT])")
meta = data[0][0].decode()
assert "\\Draft" in meta and "$Work" in meta and '"01-Dec-2026 08:30:00 +0000"' in meta, meta
assert data[0][1] == b"not sent yet\r\n", data
typ, data = m.append("NoSuchFolder", None, None, b"Subject: x\r\n\r\ny\r\n")
assert typ == "NO" and b"TRYCREATE" in data[0], data

# COPY to Archive, MOVE to Trash: new UIDs told, the moved one gone from INBOX.
m.select("INBOX")
m.store("1", "+FLAGS", "($Invoice)")
assert m.uid("COPY", "1", "Archive")[0] == "OK"
copied = m.response("COPYUID")[1][0].decode()
assert copied.split()[1:] == ["1", "1"], copied
typ, data = m._simple_command("UID", "MOVE", "2", "Trash")
assert typ == "OK", data
moved = m.response("COPYUID")[1][0].decode()
assert moved.endswith(" 2 1"), moved
assert m.untagged_responses.pop("EXPUNGE") == [b"2"]
m.select("Archive")
typ, data = m.fetch("1", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
assert b"$Invoice" in data[0][0] and b"4711" in data[0][1], data
assert m.select("Trash")[1] == [b"1"]
assert m.select("INBOX")[1] == [b"1"]

# Folders: inside one another, renamed with what is inside, deleted; subscriptions.
assert m.create("Work/2026")[0] == "OK"
typ, data = m.list(pattern="Work*")
assert any(b"\\HasChildren" in x and b'"Work"' in x for x in data), data
assert m.rename("Work", "Projects")[0] == "OK"
typ, data = m.list()
names = b" ".join(data)
assert b'"Projects/2026"' in names and b'"Work' not in names, data
assert m.delete("Projects")[0] == "NO"
assert m.delete("Projects/2026")[0] == "OK"
assert m.delete("Projects")[0] == "OK"
assert m.delete("INBOX")[0] == "NO"
m.unsubscribe("Archive")
typ, data = m.lsub()
assert b'"Sent"' in b" ".join(data) and b"Archive" not in b" ".join(data), data

# IDLE: a mail delivered by SMTP shows at once; so does a POP3 client taking it.
m.select("INBOX")
m.send(b"i1 IDLE\r\n")
assert m.readline().startswith(b"+"), "no continuation"
start = time.time()
with smtplib.SMTP("127.0.0.1", {smtp}) as s:
    s.sendmail("bob@office.test", ["alice@office.test"],
               b"Subject: while idling\r\n\r\nnew\r\n")
line = m.readline()
waited = time.time() - start
assert line.strip() == b"* 2 EXISTS", line
print(f"idle saw the mail after {{waited:.2f}} s")
assert waited < 1.0, waited
p = poplib.POP3("127.0.0.1", {pop3})
p.user("alice"); p.pass_("demo-alice")
p.dele(1)
p.quit()
line = m.readline()
assert line.strip() == b"* 1 EXPUNGE", line
m.send(b"DONE\r\n")
assert m.readline().startswith(b"i1 OK"), "IDLE did not end"
m.logout()
"#
        ),
        &ob,
    );
    assert!(out.contains("idle saw the mail"), "{out}");
    // curl as a second client: the message IMAP moved to Trash, by UID.
    let fetched = Command::new("curl")
        .args(["-s", "--max-time", "10", "-u", "alice:demo-alice"])
        .arg(format!("imap://127.0.0.1:{imap}/Trash;UID=1"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&fetched.stdout);
    assert!(
        text.contains("Gr=C3=BC=C3=9Fe"),
        "curl got:\n{text}\n{}",
        ob.log()
    );
}

#[test]
fn a_multipart_message_shows_its_structure_envelope_and_each_part() {
    require_program("swaks", "swaks");
    let c = TestConfig::demo().free_ports();
    let ob = start(&c);
    let dir = tempfile::tempdir().unwrap();
    // An attachment with every byte value, so BINARY must undo base64 exactly.
    let attachment = dir.path().join("data.bin");
    std::fs::write(
        &attachment,
        (0..=255u8).cycle().take(3000).collect::<Vec<u8>>(),
    )
    .unwrap();
    let out = Command::new("swaks")
        .args([
            "--server",
            &format!("127.0.0.1:{}", c.int("mail.smtp_port")),
        ])
        .args(["--from", "bob@office.test", "--to", "alice@office.test"])
        .args(["--header", "Subject: with a file", "--body", "see the file"])
        .args(["--attach-type", "application/octet-stream", "--attach"])
        .arg(format!("@{}", attachment.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let imap = c.int("mail.imap_port");
    let path = attachment.display();
    python(
        &format!(
            r#"
import imaplib, re
m = imaplib.IMAP4("127.0.0.1", {imap})
m.login("alice", "demo-alice")
m.select("INBOX", readonly=True)
typ, data = m.fetch("1", "(ENVELOPE BODYSTRUCTURE)")
text = data[0].decode() if isinstance(data[0], bytes) else data[0][0].decode()
assert 'ENVELOPE (' in text and '"with a file"' in text, text
assert '(NIL NIL "bob" "office.test")' in text, text
assert re.search(r'BODYSTRUCTURE \(\("text" "plain" .*\)\("application" "octet-stream" .* "base64" \d+ .*\) "mixed"', text), text
typ, data = m.fetch("1", "(BODY.PEEK[1] BODY.PEEK[2.MIME] BINARY.PEEK[2] BINARY.SIZE[2])")
parts = {{}}
for d in data:
    if isinstance(d, tuple):
        parts[d[0].decode().split()[-2].lstrip("(")] = d[1]
assert b"see the file" in parts["BODY[1]"], list(parts)
assert b"CONTENT-TRANSFER-ENCODING: BASE64" in parts["BODY[2.MIME]"].upper(), parts["BODY[2.MIME]"]
assert parts["BINARY[2]"] == open("{path}", "rb").read(), len(parts["BINARY[2]"])
assert b"BINARY.SIZE[2] 3000" in b" ".join(d if isinstance(d, bytes) else d[0] for d in data), data
m.logout()
"#
        ),
        &ob,
    );
}

/// The file names in a local Maildir folder's `cur/` and `new/`.
fn maildir_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for sub in ["cur", "new"] {
        if let Ok(read) = std::fs::read_dir(dir.join(sub)) {
            for e in read.flatten() {
                out.push(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

fn run(what: &str, cmd: &mut Command, ob: &Officebox) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{what} failed:\n{text}\nofficebox:\n{}",
        ob.log()
    );
    text
}

/// An mbsync configuration in `dir` that syncs every folder of alice's both ways into the
/// Maildir at `local` (deletions too); its path.
fn mbsync_rc(dir: &Path, local: &Path, imap: i64) -> std::path::PathBuf {
    let rc = dir.join("mbsyncrc");
    std::fs::write(
        &rc,
        format!(
            "IMAPAccount office\nHost 127.0.0.1\nPort {imap}\nUser alice\nPass demo-alice\n\
             SSLType None\nAuthMechs LOGIN\n\n\
             IMAPStore remote\nAccount office\n\n\
             MaildirStore local\nPath {l}/\nInbox {l}/INBOX\nSubFolders Verbatim\n\n\
             Channel office\nFar :remote:\nNear :local:\nPatterns *\nCreate Both\n\
             Expunge Both\nSyncState *\n",
            l = local.display()
        ),
    )
    .unwrap();
    rc
}

/// The files of the Maildir folder `dir` (both `cur/` and `new/`) by the number in their
/// `Subject: m<N>` line.
fn numbered_files(dir: &Path) -> std::collections::BTreeMap<u32, std::path::PathBuf> {
    let mut out = std::collections::BTreeMap::new();
    for sub in ["cur", "new"] {
        for e in std::fs::read_dir(dir.join(sub)).unwrap().flatten() {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            let n = text
                .lines()
                .find_map(|l| l.strip_prefix("Subject: m"))
                .and_then(|n| n.trim().parse().ok());
            if let Some(n) = n {
                assert!(out.insert(n, e.path()).is_none(), "m{n} twice in {dir:?}");
            }
        }
    }
    out
}

/// Writes `count` messages (`Subject: m<N>`, `Message-ID: <N@two.way>`) into the Maildir
/// folder `dir`'s `new/`, as a delivery agent would.
fn deliver_numbered(dir: &Path, count: u32) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 3600;
    for n in 0..count {
        let body = format!(
            "From: bob@office.test\r\nTo: alice@office.test\r\nSubject: m{n}\r\n\
             Message-ID: <{n}@two.way>\r\n\r\nmessage {n}\r\n"
        );
        let name = format!("{}.M{n}P1.test,S={}", secs + u64::from(n), body.len());
        std::fs::write(dir.join("tmp").join(&name), &body).unwrap();
        std::fs::rename(dir.join("tmp").join(&name), dir.join("new").join(&name)).unwrap();
    }
}

/// The flag letters of a Maildir file name (after `:2,`).
fn letters(path: &Path) -> String {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    name.split(":2,").nth(1).unwrap_or("").to_string()
}

#[test]
fn mbsync_two_way_sync_of_a_thousand_messages_converges_after_changes_on_each_side() {
    require_program("mbsync", "isync");
    let c = TestConfig::demo().free_ports();
    let ob = start(&c);
    let imap = c.int("mail.imap_port");
    let inbox_there = ob.dir().join("demo-data/mail/alice");
    std::fs::create_dir_all(inbox_there.join("tmp")).unwrap();
    std::fs::create_dir_all(inbox_there.join("new")).unwrap();
    deliver_numbered(&inbox_there, 1000);
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("mail");
    std::fs::create_dir_all(&local).unwrap();
    let rc = mbsync_rc(dir.path(), &local, imap);
    let mbsync = || {
        run(
            "mbsync",
            Command::new("mbsync").arg("-c").arg(&rc).arg("-a"),
            &ob,
        )
    };
    mbsync();
    let inbox = local.join("INBOX");
    let here = numbered_files(&inbox);
    assert_eq!(here.len(), 1000);
    // Here: m30 read, m40 deleted. There: m10 flagged, m20 deleted.
    let read = &here[&30];
    let base = read.file_name().unwrap().to_string_lossy();
    let base = base.split(":2,").next().unwrap();
    std::fs::rename(read, inbox.join("cur").join(format!("{base}:2,S"))).unwrap();
    std::fs::remove_file(&here[&40]).unwrap();
    python(
        &format!(
            r#"
import imaplib
m = imaplib.IMAP4("127.0.0.1", {imap})
m.login("alice", "demo-alice")
m.select("INBOX")
typ, data = m.search(None, "HEADER", "Message-ID", "<10@two.way>")
m.store(data[0].decode(), "+FLAGS", "(\\Flagged)")
typ, data = m.search(None, "HEADER", "Message-ID", "<20@two.way>")
m.store(data[0].decode(), "+FLAGS", "(\\Deleted)")
m.expunge()
m.logout()
"#
        ),
        &ob,
    );
    mbsync();
    // Both sides now hold the same 998 messages with the same flags; a third sync changes
    // nothing.
    let check_here = || {
        let here = numbered_files(&inbox);
        assert_eq!(here.len(), 998, "{:?}", here.keys().collect::<Vec<_>>());
        assert!(!here.contains_key(&20) && !here.contains_key(&40));
        assert_eq!(letters(&here[&10]), "F");
        assert_eq!(letters(&here[&30]), "S");
        let marked: Vec<u32> = here
            .iter()
            .filter(|(_, p)| !letters(p).is_empty())
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(marked, vec![10, 30]);
    };
    check_here();
    let there = python(
        &format!(
            r#"
import imaplib
m = imaplib.IMAP4("127.0.0.1", {imap})
m.login("alice", "demo-alice")
typ, data = m.select("INBOX")
print("count", data[0].decode())
for key in ("FLAGGED", "SEEN", "DELETED"):
    typ, data = m.search(None, key)
    found = []
    for n in data[0].split():
        typ, d = m.fetch(n, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        found.append(d[0][1].decode().strip())
    print(key, found)
for n in (20, 40):
    typ, data = m.search(None, "HEADER", "Message-ID", f"<{{n}}@two.way>")
    print("m%d" % n, data)
m.logout()
"#
        ),
        &ob,
    );
    assert!(there.contains("count 998"), "{there}");
    assert!(there.contains("FLAGGED ['Subject: m10']"), "{there}");
    assert!(there.contains("SEEN ['Subject: m30']"), "{there}");
    assert!(there.contains("DELETED []"), "{there}");
    assert!(
        there.contains("m20 [b'']") && there.contains("m40 [b'']"),
        "{there}"
    );
    assert_eq!(maildir_files(&inbox_there).len(), 998);
    mbsync();
    check_here();
    assert_eq!(maildir_files(&inbox_there).len(), 998);
}

#[test]
fn uids_and_uidvalidity_survive_a_reindex_of_files_renamed_while_officebox_was_down() {
    let c = TestConfig::demo().free_ports();
    let ob = start(&c);
    let imap = c.int("mail.imap_port");
    let inbox = ob.dir().join("demo-data/mail/alice");
    std::fs::create_dir_all(inbox.join("tmp")).unwrap();
    std::fs::create_dir_all(inbox.join("new")).unwrap();
    deliver_numbered(&inbox, 50);
    let uids = format!(
        r#"
import imaplib, re
m = imaplib.IMAP4("127.0.0.1", {imap})
m.login("alice", "demo-alice")
typ, data = m.select("INBOX")
typ, v = m.status("INBOX", "(UIDVALIDITY)")
print(v[0].decode())
typ, data = m.fetch("1:*", "(UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
for d in data:
    if isinstance(d, tuple):
        uid = re.search(rb"UID (\d+)", d[0]).group(1).decode()
        flags = re.search(rb"FLAGS \(([^)]*)\)", d[0]).group(1).decode()
        print(d[1].decode().strip(), uid, flags)
m.logout()
"#
    );
    let before = python(&uids, &ob);
    // officebox stops; meanwhile another program moves every message to cur/ and marks
    // the even ones read (the flags written in its own order), and one goes away.
    let dir = ob.kill9().unwrap();
    let data = dir.path().join("demo-data/mail/alice");
    for (n, path) in numbered_files(&data) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let base = name.split(":2,").next().unwrap().to_string();
        let flags = if n.is_multiple_of(2) { "SF" } else { "" };
        std::fs::rename(&path, data.join("cur").join(format!("{base}:2,{flags}"))).unwrap();
    }
    let gone = numbered_files(&data)[&7].clone();
    std::fs::remove_file(gone).unwrap();
    let ob = start_in(&c, dir);
    let after = python(&uids, &ob);
    let mut lines = before.lines();
    let validity = lines.next().unwrap();
    assert!(
        after.starts_with(validity),
        "{before}
{after}"
    );
    for line in lines {
        // "Subject: mN UID"
        let words: Vec<&str> = line.split_whitespace().collect();
        let n: u32 = words[1][1..].parse().unwrap();
        let same = format!("Subject: m{n} {} ", words[2]);
        if n == 7 {
            assert!(!after.contains(&same), "{after}");
        } else {
            let now = after
                .lines()
                .find(|l| l.starts_with(&same))
                .unwrap_or_else(|| {
                    panic!(
                        "m{n} lost its UID:
{before}
{after}"
                    )
                });
            assert_eq!(
                now.contains("\\Seen") && now.contains("\\Flagged"),
                n.is_multiple_of(2),
                "{now}"
            );
        }
    }
    assert_eq!(after.lines().count(), 50, "{after}");
}

#[test]
fn mbsync_and_offlineimap_sync_both_ways() {
    require_program("swaks", "swaks");
    require_program("mbsync", "isync");
    require_program("offlineimap", "offlineimap3");
    let c = TestConfig::demo().free_ports();
    let ob = start(&c);
    send(&c, "to be read");
    send(&c, "to be deleted");
    let imap = c.int("mail.imap_port");
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("mbsync");
    std::fs::create_dir_all(&local).unwrap();
    let rc = mbsync_rc(dir.path(), &local, imap);
    let mbsync = |ob: &Officebox| {
        run(
            "mbsync",
            Command::new("mbsync").arg("-c").arg(&rc).arg("-a"),
            ob,
        )
    };
    mbsync(&ob);
    let inbox = local.join("INBOX");
    let files = maildir_files(&inbox);
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(local.join("Sent").is_dir() && local.join("Trash").is_dir());
    // Here: the first read, the second deleted, a draft written. Then sync.
    let find = |subject: &str| {
        maildir_files(&inbox)
            .into_iter()
            .find(|f| {
                let p = ["cur", "new"]
                    .iter()
                    .map(|s| inbox.join(s).join(f))
                    .find(|p| p.exists())
                    .unwrap();
                String::from_utf8_lossy(&std::fs::read(p).unwrap()).contains(subject)
            })
            .unwrap()
    };
    let path_of = |f: &str| {
        ["cur", "new"]
            .iter()
            .map(|s| inbox.join(s).join(f))
            .find(|p| p.exists())
            .unwrap()
    };
    let read = find("to be read");
    let base = read.split(":2,").next().unwrap().to_string();
    std::fs::rename(
        path_of(&read),
        inbox.join("cur").join(format!("{base}:2,S")),
    )
    .unwrap();
    let doomed = find("to be deleted");
    let base = doomed.split(":2,").next().unwrap().to_string();
    std::fs::rename(
        path_of(&doomed),
        inbox.join("cur").join(format!("{base}:2,T")),
    )
    .unwrap();
    std::fs::write(
        local.join("Drafts/cur/1700000000.draft.local:2,D"),
        b"Subject: written offline\r\n\r\nsynced up\r\n",
    )
    .unwrap();
    mbsync(&ob);
    assert_eq!(maildir_files(&inbox).len(), 1);
    // The server agrees; then flags one there, and the next sync brings the flag down.
    let out = python(
        &format!(
            r#"
import imaplib
m = imaplib.IMAP4("127.0.0.1", {imap})
m.login("alice", "demo-alice")
m.select("INBOX")
typ, data = m.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
print([d for d in data if isinstance(d, tuple)])
assert len([d for d in data if isinstance(d, tuple)]) == 1, data
assert b"\\Seen" in data[0][0] and b"to be read" in data[0][1], data
m.store("1", "+FLAGS", "(\\Flagged)")
m.select("Drafts")
typ, data = m.fetch("1", "(FLAGS BODY.PEEK[])")
assert b"\\Draft" in data[0][0] and b"written offline" in data[0][1], data
m.logout()
"#
        ),
        &ob,
    );
    assert!(out.contains("to be read"), "{out}");
    mbsync(&ob);
    let files = maildir_files(&inbox);
    assert!(files.len() == 1 && files[0].ends_with(":2,FS"), "{files:?}");

    // offlineimap, as bob: down, a message written here goes up, one deleted on the
    // server goes away here.
    send_to(&c, "bob@office.test", "for offlineimap");
    let oi = dir.path().join("offlineimap");
    std::fs::create_dir_all(oi.join("meta")).unwrap();
    std::fs::create_dir_all(oi.join("mail")).unwrap();
    let oirc = dir.path().join("offlineimaprc");
    std::fs::write(
        &oirc,
        format!(
            "[general]\naccounts = office\nmetadata = {d}/meta\n\n\
             [Account office]\nlocalrepository = here\nremoterepository = there\n\n\
             [Repository here]\ntype = Maildir\nlocalfolders = {d}/mail\n\n\
             [Repository there]\ntype = IMAP\nremotehost = 127.0.0.1\nremoteport = {imap}\n\
             remoteuser = bob\nremotepass = demo-bob\nssl = no\nstarttls = no\n",
            d = oi.display()
        ),
    )
    .unwrap();
    let offlineimap = |ob: &Officebox| {
        run(
            "offlineimap",
            Command::new("offlineimap")
                .arg("-c")
                .arg(&oirc)
                .args(["-o", "-u", "basic"]),
            ob,
        )
    };
    offlineimap(&ob);
    let oinbox = oi.join("mail/INBOX");
    assert_eq!(
        maildir_files(&oinbox).len(),
        1,
        "{:?}",
        maildir_files(&oinbox)
    );
    std::fs::write(
        oinbox.join("new/1700000001.written.local"),
        b"Subject: from offlineimap\r\n\r\nup\r\n",
    )
    .unwrap();
    offlineimap(&ob);
    python(
        &format!(
            r#"
import imaplib
m = imaplib.IMAP4("127.0.0.1", {imap})
m.login("bob", "demo-bob")
m.select("INBOX")
typ, data = m.search(None, "SUBJECT", '"from offlineimap"')
assert data == [b"2"], data
m.store("1", "+FLAGS", "(\\Deleted)")
m.expunge()
m.logout()
"#
        ),
        &ob,
    );
    offlineimap(&ob);
    let left = maildir_files(&oinbox);
    assert_eq!(left.len(), 1, "{left:?}");
}

/// Runs `tmux` on its own server socket `name` (so the test's session is its own).
fn tmux(name: &str, args: &[&str]) -> String {
    let out = Command::new("tmux")
        .args(["-L", name])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What neomutt's screen shows once it shows `what` (or after 15 s).
fn screen_with(name: &str, what: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let screen = tmux(name, &["capture-pane", "-p", "-t", "mutt"]);
        if screen.contains(what) || std::time::Instant::now() > deadline {
            return screen;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Stops the test's tmux server (and neomutt in it) when the test ends, however it ends.
struct TmuxServer(String);

impl Drop for TmuxServer {
    fn drop(&mut self) {
        tmux(&self.0, &["kill-server"]);
    }
}

#[test]
fn neomutt_in_a_terminal_reads_deletes_and_sees_new_mail_by_idle() {
    require_program("swaks", "swaks");
    require_program("neomutt", "neomutt");
    require_program("tmux", "tmux");
    let c = TestConfig::demo().free_ports();
    let ob = start(&c);
    send(&c, "the first letter");
    send(&c, "the second letter");
    let imap = c.int("mail.imap_port");
    let dir = tempfile::tempdir().unwrap();
    let rc = dir.path().join("muttrc");
    std::fs::write(
        &rc,
        format!(
            "set folder=\"imap://alice@127.0.0.1:{imap}/\"\nset spoolfile=\"+INBOX\"\n\
             set imap_pass=\"demo-alice\"\nset ssl_starttls=no\nset ssl_force_tls=no\n\
             set record=\"\"\nset delete=yes\nset quit=yes\nset imap_idle=yes\n\
             set mail_check=1\nset timeout=1\nset sort=date\nset header_cache=\"\"\n\
             set message_cachedir=\"\"\n"
        ),
    )
    .unwrap();
    let name = format!("obx-mutt-{}", std::process::id());
    let _server = TmuxServer(name.clone());
    tmux(
        &name,
        &[
            "new-session",
            "-d",
            "-s",
            "mutt",
            "-x",
            "160",
            "-y",
            "40",
            &format!(
                "HOME={} neomutt -n -F {}",
                dir.path().display(),
                rc.display()
            ),
        ],
    );
    let screen = screen_with(&name, "the second letter");
    assert!(
        screen.contains("the first letter") && screen.contains("the second letter"),
        "neomutt shows:\n{screen}\n{}",
        ob.log()
    );
    // Open the first message, back to the index, delete it and sync.
    tmux(&name, &["send-keys", "-t", "mutt", "Enter"]);
    let screen = screen_with(&name, "Hello Alice");
    assert!(screen.contains("Hello Alice"), "the message:\n{screen}");
    tmux(&name, &["send-keys", "-t", "mutt", "q"]);
    tmux(&name, &["send-keys", "-t", "mutt", "d"]);
    tmux(&name, &["send-keys", "-t", "mutt", "$"]);
    // A new mail while it idles shows up by itself.
    send(&c, "the third letter");
    let screen = screen_with(&name, "the third letter");
    assert!(
        screen.contains("the third letter"),
        "neomutt shows:\n{screen}"
    );
    tmux(&name, &["send-keys", "-t", "mutt", "q"]);
    let out = python(
        &format!(
            r#"
import imaplib
m = imaplib.IMAP4("127.0.0.1", {imap})
m.login("alice", "demo-alice")
m.select("INBOX", readonly=True)
typ, data = m.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
for d in data:
    if isinstance(d, tuple):
        print(d[0].decode(), d[1].decode().strip())
"#
        ),
        &ob,
    );
    // The one read and deleted is gone; the other two are there.
    let lines: Vec<&str> = out.lines().filter(|l| l.contains("Subject")).collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        !out.contains("the first letter")
            && out.contains("the second letter")
            && out.contains("the third letter"),
        "{out}"
    );
}

#[test]
fn kill_9_during_moves_and_during_appends_loses_nothing_and_duplicates_nothing() {
    let c = TestConfig::demo().free_ports();
    let ob = start(&c);
    let imap = c.int("mail.imap_port");
    // 300 messages appended, then moved to Archive one by one, pipelined; officebox is
    // killed while the moves run.
    let script = format!(
        r#"
import imaplib, socket, sys, time
m = imaplib.IMAP4("127.0.0.1", {imap})
m.login("alice", "demo-alice")
for i in range(300):
    m.append("INBOX", None, None, f"Message-ID: <{{i}}@kill.test>\r\nSubject: n{{i}}\r\n\r\nbody {{i}}\r\n".encode())
m.select("INBOX")
sys.stdout.write("appended\n"); sys.stdout.flush()
s = m.socket()
s.sendall(b"".join(f"k{{i}} UID MOVE {{i + 1}} Archive\r\n".encode() for i in range(300)))
time.sleep(30)
"#
    );
    let mut child = std::process::Command::new("python3")
        .args(["-c", &script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut first = [0u8; 9];
    std::io::Read::read_exact(&mut out, &mut first).unwrap();
    assert_eq!(&first, b"appended\n");
    std::thread::sleep(std::time::Duration::from_millis(40));
    let dir = ob.kill9().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let ob = start_in(&c, dir);
    let seen = python(
        &format!(
            r#"
import imaplib, re
m = imaplib.IMAP4("127.0.0.1", {imap})
m.login("alice", "demo-alice")
ids = []
for folder in ("INBOX", "Archive"):
    typ, data = m.select(folder)
    n = int(data[0])
    if n:
        typ, data = m.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        ids += [re.search(rb"<(\d+)@kill", d[1]).group(1).decode() for d in data if isinstance(d, tuple)]
    print(folder, n)
print("ids", len(ids), len(set(ids)))
"#
        ),
        &ob,
    );
    eprintln!("after kill -9 during the moves: {seen}");
    assert!(seen.contains("ids 300 300"), "{seen}");

    // Then APPENDs, one after another, each acknowledged one printed; officebox is killed
    // after the 100th answer. Every acknowledged message is there once; the one being
    // written when the kill came is there whole or not at all.
    let script = format!(
        r#"
import imaplib, sys, time
m = imaplib.IMAP4("127.0.0.1", {imap})
m.login("alice", "demo-alice")
for i in range(1000):
    typ, _ = m.append("Drafts", None, None, f"Message-ID: <{{i}}@append.test>\r\nSubject: a{{i}}\r\n\r\n{{'x' * 20000}}\r\n".encode())
    assert typ == "OK", typ
    sys.stdout.write(f"ok {{i}}\n"); sys.stdout.flush()
"#
    );
    let mut child = std::process::Command::new("python3")
        .args(["-c", &script])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut acked = 0;
    let mut line = String::new();
    while acked < 100 {
        line.clear();
        assert!(std::io::BufRead::read_line(&mut out, &mut line).unwrap() > 0);
        acked += 1;
    }
    let dir = ob.kill9().unwrap();
    // Whatever the client still got before the kill counts as acknowledged too.
    let _ = child.wait();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    acked += rest.lines().filter(|l| l.starts_with("ok ")).count();
    let ob = start_in(&c, dir);
    let seen = python(
        &format!(
            r#"
import imaplib, re
m = imaplib.IMAP4("127.0.0.1", {imap})
m.login("alice", "demo-alice")
typ, data = m.select("Drafts")
typ, data = m.fetch("1:*", "(BODY.PEEK[])")
ids = [int(re.search(rb"<(\d+)@append", d[1]).group(1)) for d in data if isinstance(d, tuple)]
whole = all(d[1].endswith(b"x" * 20000 + b"\r\n") for d in data if isinstance(d, tuple))
print("ids", len(ids), len(set(ids)), max(ids) + 1, whole)
"#
        ),
        &ob,
    );
    eprintln!("after kill -9 during the appends ({acked} acknowledged): {seen}");
    let words: Vec<&str> = seen.split_whitespace().collect();
    let (count, distinct, upto): (usize, usize, usize) = (
        words[1].parse().unwrap(),
        words[2].parse().unwrap(),
        words[3].parse().unwrap(),
    );
    assert_eq!(count, distinct, "{seen}");
    assert!(
        count == upto && (acked..=acked + 1).contains(&count),
        "{seen}"
    );
    assert_eq!(words[4], "True", "{seen}");
}

#[test]
fn condstore_and_qresync_tell_a_returning_client_only_what_changed() {
    require_program("swaks", "swaks");
    let c = TestConfig::demo().free_ports();
    let ob = start(&c);
    for s in ["one", "two", "three"] {
        send(&c, s);
    }
    let imap = c.int("mail.imap_port");
    python(
        &format!(
            r#"
import imaplib, re
def session():
    m = imaplib.IMAP4("127.0.0.1", {imap})
    assert "CONDSTORE" in m.capabilities and "QRESYNC" in m.capabilities, m.capabilities
    m.login("alice", "demo-alice")
    m.enable("QRESYNC")
    enabled = m.untagged_responses.pop("ENABLED", [b""])
    assert b"QRESYNC" in enabled[0], enabled
    return m
first = session()
first.select("INBOX")
validity = first.response("UIDVALIDITY")[1][0].decode()
modseq = first.response("HIGHESTMODSEQ")[1][0].decode()
# Elsewhere: message 1 flagged, message 2 deleted.
other = imaplib.IMAP4("127.0.0.1", {imap})
other.login("alice", "demo-alice")
other.select("INBOX")
other.store("1", "+FLAGS", r"(\Flagged)")
other.store("2", "+FLAGS", r"(\Deleted)")
other.expunge()
# The first client, still there with QRESYNC on, hears VANISHED, not EXPUNGE.
first.noop()
assert first.untagged_responses.get("VANISHED") == [b"2"], first.untagged_responses
assert "EXPUNGE" not in first.untagged_responses, first.untagged_responses
# A client coming back with what it knew hears only what changed.
back = session()
typ, data = back._simple_command("SELECT", f"INBOX (QRESYNC ({{validity}} {{modseq}}))")
assert typ == "OK", data
back.state = "SELECTED"  # imaplib only notes it in its own select()
assert back.untagged_responses.get("VANISHED") == [b"(EARLIER) 2"], back.untagged_responses
fetched = b" ".join(back.untagged_responses.get("FETCH", []))
assert b"UID 1 " in fetched and b"\\Flagged" in fetched and b"MODSEQ" in fetched, fetched
assert b"UID 3 " not in fetched, fetched
back.untagged_responses.clear()
typ, data = back._simple_command("UID", "FETCH", "1:*", "(FLAGS)", f"(CHANGEDSINCE {{modseq}} VANISHED)")
assert back.untagged_responses.get("VANISHED") == [b"(EARLIER) 2"], back.untagged_responses
fetched = back.untagged_responses.get("FETCH", [])
assert len(fetched) == 1 and b"UID 1 " in fetched[0], fetched
# A store conditional on nothing having changed since: refused for message 1.
typ, data = back._simple_command("STORE", "1", f"(UNCHANGEDSINCE {{modseq}})", "+FLAGS", r"(\Seen)")
assert typ == "OK" and b"[MODIFIED 1]" in data[0], data
for m in (first, other, back):
    m.logout()
"#
        ),
        &ob,
    );
}

#[test]
fn imap4rev2_clients_get_utf8_names_esearch_and_list_status_while_rev1_clients_get_utf7() {
    require_program("swaks", "swaks");
    let c = TestConfig::demo().free_ports();
    let ob = start(&c);
    send(&c, "hello");
    let imap = c.int("mail.imap_port");
    python(
        &format!(
            r#"
import imaplib
old = imaplib.IMAP4("127.0.0.1", {imap})
assert "IMAP4REV2" in old.capabilities and "IMAP4REV1" in old.capabilities, old.capabilities
old.login("alice", "demo-alice")
assert old.create("Entw&APw-rfe")[0] == "OK"
typ, data = old.list(pattern="Entw*")
assert data == [b'(\\HasNoChildren) "/" "Entw&APw-rfe"'], data
new = imaplib.IMAP4("127.0.0.1", {imap})
new.login("alice", "demo-alice")
new.enable("IMAP4rev2")
assert b"IMAP4rev2" in new.untagged_responses.pop("ENABLED")[0]
typ, data = new.list(pattern="Entw*")
assert '"Entwürfe"'.encode() in data[0], data
typ, data = new._simple_command("LIST", "(SPECIAL-USE)", '""', "*")
names = b" ".join(new.untagged_responses.pop("LIST"))
assert b'"Sent"' in names and b"INBOX" not in names and "Entwürfe".encode() not in names, names
typ, data = new._simple_command("LIST", '""', "INBOX", "RETURN", "(STATUS (MESSAGES UNSEEN))")
status = new.untagged_responses.pop("STATUS")
assert status == [b'"INBOX" (MESSAGES 1 UNSEEN 1)'], status
new.select("INBOX")
assert "RECENT" not in new.untagged_responses, new.untagged_responses
typ, data = new._simple_command("SEARCH", "ALL")
esearch = new.untagged_responses.pop("ESEARCH")
assert len(esearch) == 1 and esearch[0].startswith(b"(TAG ") and esearch[0].endswith(b") ALL 1"), esearch
assert "SEARCH" not in new.untagged_responses, new.untagged_responses
new.select("Sent")
assert any(b"CLOSED" in x for x in new.untagged_responses.get("OK", [])), new.untagged_responses
for m in (old, new):
    m.logout()
"#
        ),
        &ob,
    );
    // On disk the folder has its UTF-8 name.
    assert!(ob.dir().join("demo-data/mail/alice/.Entwürfe/cur").is_dir());
}

#[test]
fn clear_text_logins_are_refused_from_the_wan_but_not_over_tls() {
    use officebox_testkit::{Endpoint, Netns, Veth, require_root};
    require_root();
    let boxns = Netns::new("imapb").unwrap();
    let wan = Netns::new("imapw").unwrap();
    let _link = Veth::new(
        Endpoint::netns(&boxns).addr("198.51.100.1/24"),
        Endpoint::netns(&wan).addr("198.51.100.7/24"),
    )
    .unwrap();
    let c = TestConfig::demo()
        .set(
            "network.listen",
            toml_edit::Value::Array(toml_edit::Array::new()),
        )
        .set("mail.imap_port", 143)
        .set("mail.imaps_port", 993)
        .set("dns.enabled", false)
        .set("ntp.enabled", false);
    let ob = Officebox::start_in_netns(bin(), &c.text(), &boxns).unwrap();
    ob.peer()
        .wait_for_log("imap: serving", READY_TIMEOUT)
        .unwrap();
    let script = r#"
import imaplib, ssl
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
m = imaplib.IMAP4("198.51.100.1", 143)
assert "LOGINDISABLED" in m.capabilities and "AUTH=PLAIN" not in m.capabilities, m.capabilities
try:
    m.login("alice", "demo-alice")
    print("accepted in the clear")
except imaplib.IMAP4.error as e:
    print("refused", e)
m.starttls(ssl_context=ctx)
assert "AUTH=PLAIN" in m.capabilities, m.capabilities
m.login("alice", "demo-alice")
print("starttls ok")
m.logout()
m = imaplib.IMAP4_SSL("198.51.100.1", 993, ssl_context=ctx)
m.login("alice", "demo-alice")
print("imaps ok")
m.logout()
"#;
    let out = wan
        .command("python3")
        .args(["-c", script])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        ob.log()
    );
    assert!(
        text.contains("refused") && text.contains("PRIVACYREQUIRED"),
        "{text}"
    );
    assert!(
        text.contains("starttls ok") && text.contains("imaps ok"),
        "{text}"
    );
}

/// Quota (issue 20, seventh part): alice may keep 40 KiB. SMTP takes mail until her
/// mailbox is full, then answers 452 (the sender keeps it and retries); she is warned
/// once at 90%; IMAP tells the quota (RFC 9208) and refuses an APPEND over it; mail
/// deleted over IMAP makes room again.
#[test]
fn a_full_mailbox_refuses_mail_for_now_warns_once_and_imap_tells_the_quota() {
    let c = TestConfig::demo()
        .free_ports()
        .set_user("alice", "quota", "40K");
    let ob = start(&c);
    let (smtp, imap) = (c.int("mail.smtp_port"), c.int("mail.imap_port"));
    let codes = python(
        &format!(
            r#"
import smtplib
codes = []
for i in range(12):
    s = smtplib.SMTP("127.0.0.1", {smtp})
    try:
        s.sendmail("bob@office.test", ["alice@office.test"],
                   "Subject: fill %d\r\n\r\n" % i + ("x" * 78 + "\r\n") * 75)
        codes.append(250)
    except smtplib.SMTPRecipientsRefused as e:
        codes.append(list(e.recipients.values())[0][0])
    s.quit()
print(codes)
"#
        ),
        &ob,
    );
    let codes: Vec<u32> = codes
        .trim()
        .trim_matches(['[', ']'])
        .split(", ")
        .map(|c| c.parse().unwrap())
        .collect();
    let taken = codes.iter().take_while(|c| **c == 250).count();
    assert!((6..=7).contains(&taken), "{codes:?}\n{}", ob.log());
    assert!(codes[taken..].iter().all(|c| *c == 452), "{codes:?}");
    let out = python(
        &format!(
            r#"
import imaplib
m = imaplib.IMAP4("127.0.0.1", {imap})
assert "QUOTA" in m.capabilities, m.capabilities
m.login("alice", "demo-alice")
typ, data = m.getquotaroot("INBOX")
print(data)
m.select("INBOX")
typ, data = m.search(None, 'SUBJECT "nearly full"')
assert len(data[0].split()) == 1, data
typ, data = m.append("INBOX", None, None, b"Subject: one more\r\n\r\n" + b"y" * 2000 + b"\r\n")
assert typ == "NO", (typ, data)
print(data)
m.store("1:*", "+FLAGS", "(\\Deleted)")
m.expunge()
m.logout()
"#
        ),
        &ob,
    );
    assert!(out.contains("[b'\"INBOX\" \"\"'"), "{out}");
    assert!(out.contains("(STORAGE ") && out.contains(" 40)"), "{out}");
    assert!(out.contains("[OVERQUOTA]"), "{out}");
    // Room again: the next message is taken.
    send(&c, "after the clean-up");
}
