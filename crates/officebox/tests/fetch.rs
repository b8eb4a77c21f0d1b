//! The POP3 fetcher end to end, with dovecot playing the ISP: a user's own ISP mailbox
//! (kept on the server or deleted there, over TLS and STLS), the shared catch-all mailbox
//! sorted out to the right people, `kill -9` in the middle of a fetch, and
//! `officebox mail fetch status/now`. Also fetchmail and mpop reading officebox's own
//! POP3 server.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use officebox_testkit::{
    IspDovecot, Officebox, PopMode, PopTls, READY_TIMEOUT, TestConfig, delivered, fetchmail_once,
    mpop_once, require_program, require_root, wait_until,
};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_officebox"))
}

fn require_peers() {
    require_root();
    require_program("dovecot", "dovecot-pop3d");
    require_program("openssl", "openssl");
}

fn start(c: &TestConfig) -> Officebox {
    let ob = Officebox::start(bin(), &c.text()).expect("starts");
    ob.peer()
        .wait_for_log("pop3: serving", READY_TIMEOUT)
        .expect("mail starts");
    ob
}

/// A `[[users.pop3]]` or `[mail.catch_all]` body for a dovecot account.
fn account(isp: &IspDovecot, login: &str, password: &str, tls: &str, keep: bool) -> String {
    let port = if tls == "implicit" {
        isp.pop3s_port()
    } else {
        isp.pop3_port()
    };
    format!(
        "server = \"127.0.0.1\"\nport = {port}\ntls = \"{tls}\"\nlogin = \"{login}\"\n\
         password = \"{password}\"\nkeep_on_server = {keep}\nca_file = \"{}\"\n",
        isp.cert_path().display()
    )
}

/// The messages in a local mailbox (new and cur), as text.
fn mailbox(dir: &Path, login: &str) -> Vec<String> {
    let root: PathBuf = dir.join("demo-data/mail").join(login);
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(d) = std::fs::read_dir(root.join(sub)) {
            out.extend(d.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok()));
        }
    }
    out.sort();
    out
}

fn subjects(dir: &Path, login: &str) -> Vec<String> {
    let mut s: Vec<String> = mailbox(dir, login)
        .iter()
        .filter_map(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("Subject: ").map(str::to_string))
        })
        .collect();
    s.sort();
    s
}

fn message(headers: &str, subject: &str, n: usize) -> Vec<u8> {
    format!(
        "{headers}From: sender@elsewhere.example\r\nSubject: {subject}\r\n\
         Message-ID: <{subject}.{n}@elsewhere.example>\r\n\r\nbody of {subject}\r\n.a dot line\r\n"
    )
    .replace("\r\n", "\n")
    .replace('\n', "\r\n")
    .into_bytes()
}

fn officebox(ob: &Officebox, args: &[&str]) -> String {
    let out = Command::new(bin())
        .args(args)
        .arg("--config")
        .arg(ob.config_path())
        .current_dir(ob.dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_users_isp_mailbox_is_fetched_once_when_kept_and_deleted_only_after_it_is_safe() {
    require_peers();
    let isp = IspDovecot::start(
        LOCALHOST,
        &[("bob-kept", "pw-one"), ("bob-moved", "pw-two")],
    )
    .unwrap();
    for i in 0..3 {
        isp.put("bob-kept", &message("To: bob@isp.example\r\n", "kept", i))
            .unwrap();
    }
    for i in 0..2 {
        isp.put("bob-moved", &message("To: bob@isp.example\r\n", "moved", i))
            .unwrap();
    }
    // bob is the last [[users]] of the demo, so these belong to him.
    let c = TestConfig::demo().free_ports().append(&format!(
        "[[users.pop3]]\n{}\n[[users.pop3]]\n{}",
        account(&isp, "bob-kept", "pw-one", "implicit", true),
        account(&isp, "bob-moved", "pw-two", "starttls", false),
    ));
    let ob = start(&c);
    assert!(
        wait_until(Duration::from_secs(20), || mailbox(ob.dir(), "bob").len()
            == 5),
        "bob gets all five: {:?}\n{}",
        subjects(ob.dir(), "bob"),
        ob.log()
    );
    assert!(
        wait_until(Duration::from_secs(10), || isp.count("bob-moved").unwrap()
            == 0),
        "moved mail is deleted at the ISP after the fetch"
    );
    assert_eq!(isp.count("bob-kept").unwrap(), 3, "kept mail stays there");
    let m = mailbox(ob.dir(), "bob");
    assert!(
        m.iter()
            .all(|m| m.starts_with("Received: from 127.0.0.1 by ")),
        "{m:?}"
    );
    assert!(
        m.iter().all(|m| m.contains("\r\n.a dot line\r\n")),
        "dots unstuffed"
    );

    // Polling again (now, twice) brings nothing twice; a new message comes once.
    let logins = || isp.log().matches("Login: user=<bob-kept>").count();
    for _ in 0..2 {
        let before = logins();
        assert!(officebox(&ob, &["mail", "fetch", "now"]).contains("2 mailbox(es)"));
        assert!(
            wait_until(Duration::from_secs(10), || logins() > before),
            "the poll happened"
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(mailbox(ob.dir(), "bob").len(), 5, "nothing twice");
    isp.put("bob-kept", &message("", "late", 9)).unwrap();
    officebox(&ob, &["mail", "fetch", "now"]);
    assert!(wait_until(Duration::from_secs(10), || mailbox(
        ob.dir(),
        "bob"
    )
    .len()
        == 6));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        subjects(ob.dir(), "bob"),
        ["kept", "kept", "kept", "late", "moved", "moved"]
    );
    let status = officebox(&ob, &["mail", "fetch", "status"]);
    assert!(status.contains("bob:bob-kept@127.0.0.1"), "{status}");
    assert!(
        status.contains("4 fetched") && status.contains("2 fetched"),
        "{status}"
    );
    assert!(!status.contains("last error"), "{status}");
}

#[test]
fn a_failing_account_backs_off_and_says_why() {
    require_peers();
    let isp = IspDovecot::start(LOCALHOST, &[("bob-isp", "right")]).unwrap();
    isp.put("bob-isp", &message("", "waiting", 1)).unwrap();
    let c = TestConfig::demo().free_ports().append(&format!(
        "[[users.pop3]]\n{}",
        account(&isp, "bob-isp", "wrong", "implicit", false)
    ));
    let ob = start(&c);
    assert!(
        wait_until(Duration::from_secs(15), || officebox(
            &ob,
            &["mail", "fetch", "status"]
        )
        .contains("refused the login")),
        "{}",
        officebox(&ob, &["mail", "fetch", "status"])
    );
    let status = officebox(&ob, &["mail", "fetch", "status"]);
    assert!(status.contains("1 failure(s) in a row"), "{status}");
    assert!(status.contains("next poll in"), "it backs off: {status}");
    assert_eq!(isp.count("bob-isp").unwrap(), 1, "nothing lost at the ISP");
    assert!(mailbox(ob.dir(), "bob").is_empty());
    assert!(ob.peer().try_wait().unwrap().is_none(), "still running");
}

#[test]
fn the_shared_mailbox_is_sorted_out_to_the_right_people() {
    require_peers();
    let isp = IspDovecot::start(LOCALHOST, &[("office", "shared-pw")]).unwrap();
    let put = |headers: &str, subject: &str| {
        isp.put("office", &message(headers, subject, 0)).unwrap();
    };
    put(
        "Delivered-To: alice@office.test\r\nTo: alice@office.test\r\n",
        "for-alice",
    );
    put(
        "X-Original-To: bob@office.test\r\nTo: Bob <bob@office.test>\r\n",
        "for-bob",
    );
    put("To: \"Sales team\" <sales@office.test>\r\n", "for-sales");
    put(
        "Delivered-To: bob@office.test\r\nTo: someone@elsewhere.example\r\n",
        "bcc-bob",
    );
    put(
        "Received: from lists.example.org by mx.isp.example with ESMTP id 42\r\n\tfor <alice@office.test>; Sat, 28 Nov 2026 08:00:00 +0000\r\n\
         To: devs@lists.example.org\r\nList-Id: <devs.lists.example.org>\r\n",
        "list",
    );
    put("To: stranger@elsewhere.example\r\n", "nobody");
    // One message to alice and bob, which the ISP stored once per envelope recipient.
    let both =
        |to: &str| format!("Delivered-To: {to}\r\nTo: alice@office.test, bob@office.test\r\n");
    isp.put("office", &message(&both("alice@office.test"), "both", 7))
        .unwrap();
    isp.put("office", &message(&both("bob@office.test"), "both", 7))
        .unwrap();
    // And one that both copies would send to both: each person still gets it once.
    let cc = "To: alice@office.test\r\nCc: bob@office.test\r\n";
    isp.put("office", &message(cc, "twice", 8)).unwrap();
    isp.put("office", &message(cc, "twice", 8)).unwrap();

    let c = TestConfig::demo().free_ports().append(&format!(
        "[mail.catch_all]\n{}",
        account(&isp, "office", "shared-pw", "starttls", false)
    ));
    let ob = start(&c);
    assert!(
        wait_until(Duration::from_secs(20), || isp.count("office").unwrap()
            == 0),
        "{}",
        ob.log()
    );
    let got: BTreeMap<&str, Vec<String>> = ["alice", "bob", "admin"]
        .into_iter()
        .map(|u| (u, subjects(ob.dir(), u)))
        .collect();
    assert_eq!(
        got["alice"],
        ["both", "for-alice", "for-sales", "list", "twice"],
        "{got:?}"
    );
    assert_eq!(
        got["bob"],
        ["bcc-bob", "both", "for-bob", "for-sales", "twice"],
        "{got:?}"
    );
    assert_eq!(got["admin"], ["nobody"], "{got:?}");
}

#[test]
fn kill_9_in_the_middle_of_a_fetch_of_500_loses_nothing_and_repeats_nothing() {
    require_peers();
    let isp = IspDovecot::start(LOCALHOST, &[("bob-isp", "pw")]).unwrap();
    for i in 0..500 {
        isp.put("bob-isp", &message("", "bulk", i)).unwrap();
    }
    let c = TestConfig::demo().free_ports().append(&format!(
        "[[users.pop3]]\n{}",
        account(&isp, "bob-isp", "pw", "implicit", false)
    ));
    let text = c.text();
    let ob = start(&c);
    assert!(
        wait_until(Duration::from_secs(30), || mailbox(ob.dir(), "bob").len()
            >= 40),
        "the fetch got going: {}",
        ob.log()
    );
    let dir = ob.kill9().unwrap();
    let at_kill = mailbox(dir.path(), "bob").len();
    assert!(at_kill < 500, "killed in the middle ({at_kill} of 500)");
    assert_eq!(
        isp.count("bob-isp").unwrap(),
        500,
        "nothing deleted before QUIT"
    );
    let ob = Officebox::start_in(bin(), &text, dir).unwrap();
    assert!(
        wait_until(Duration::from_secs(60), || isp.count("bob-isp").unwrap()
            == 0),
        "{}",
        ob.log()
    );
    let m = mailbox(ob.dir(), "bob");
    let mut ids: Vec<&str> = m
        .iter()
        .filter_map(|m| m.lines().find(|l| l.starts_with("Message-ID:")))
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        (m.len(), ids.len()),
        (500, 500),
        "every message exactly once"
    );
}

#[test]
fn fetchmail_and_mpop_read_officebox_over_plain_stls_and_tls_without_duplicates() {
    require_root();
    require_program("swaks", "swaks");
    require_program("fetchmail", "fetchmail");
    require_program("mpop", "mpop");
    let c = TestConfig::demo().free_ports();
    let (smtp, pop, pops) = (
        c.int("mail.smtp_port"),
        c.int("mail.pop3_port"),
        c.int("mail.pop3s_port"),
    );
    let ob = start(&c);
    let send = |to: &str, body: &str| {
        let out = Command::new("swaks")
            .args([
                "--server",
                &format!("127.0.0.1:{smtp}"),
                "--from",
                "x@example.net",
            ])
            .args(["--to", to, "--body", body])
            .output()
            .unwrap();
        assert!(out.status.success());
    };
    for i in 0..3 {
        send("alice@office.test", &format!("for alice {i}\n.dot line"));
        send("bob@office.test", &format!("for bob {i}"));
    }
    let port =
        |tls: PopTls| u16::try_from(if tls == PopTls::Implicit { pops } else { pop }).unwrap();

    // fetchmail keeps alice's mail on the server and tracks UIDLs: each message once
    // across sessions and across plain, STLS and TLS.
    let fm = officebox_testkit::scratch_dir("fetchmail").unwrap();
    for tls in PopTls::ALL {
        let out = fetchmail_once(
            fm.path(),
            "127.0.0.1",
            port(tls),
            "alice",
            "demo-alice",
            PopMode::keep(tls),
        )
        .unwrap();
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "fetchmail {tls:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let got = delivered(fm.path()).unwrap();
    assert_eq!(got.len(), 3, "fetchmail saw each message once: {got:?}");
    assert!(
        std::fs::read_to_string(&got[0])
            .unwrap()
            .contains("\n.dot line")
    );
    assert_eq!(mailbox(ob.dir(), "alice").len(), 3, "kept on the server");
    send("alice@office.test", "one more");
    let out = fetchmail_once(
        fm.path(),
        "127.0.0.1",
        port(PopTls::StartTls),
        "alice",
        "demo-alice",
        PopMode::keep(PopTls::StartTls),
    )
    .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(delivered(fm.path()).unwrap().len(), 4, "only the new one");

    // mpop takes bob's mail and deletes it (over TLS), then finds nothing over STLS.
    let mp = officebox_testkit::scratch_dir("mpop").unwrap();
    let out = mpop_once(
        mp.path(),
        "127.0.0.1",
        port(PopTls::Implicit),
        "bob",
        "demo-bob",
        PopMode::delete(PopTls::Implicit),
    )
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(delivered(mp.path()).unwrap().len(), 3);
    assert!(mailbox(ob.dir(), "bob").is_empty(), "deleted at QUIT");
    let out = mpop_once(
        mp.path(),
        "127.0.0.1",
        port(PopTls::StartTls),
        "bob",
        "demo-bob",
        PopMode::delete(PopTls::StartTls),
    )
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(delivered(mp.path()).unwrap().len(), 3);
}

/// A POP3 server without UIDL (some old ISP servers): Python, plain text, three
/// messages kept between sessions; it logs each command to its stdout.
const NO_UIDL_SERVER: &str = r#"
import socketserver, sys
msgs = [("Subject: old %d\r\nMessage-ID: <old%d@isp>\r\n\r\nbody %d\r\n" % (i, i, i)).encode() for i in range(3)]
class H(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(b"+OK old server\r\n")
        for raw in self.rfile:
            cmd = raw.decode().strip().split(" ")
            print(cmd[0], flush=True)
            w = cmd[0].upper()
            if w in ("USER", "PASS", "NOOP", "DELE"): self.wfile.write(b"+OK\r\n")
            elif w == "QUIT": self.wfile.write(b"+OK bye\r\n"); return
            elif w == "LIST":
                self.wfile.write(b"+OK\r\n" + b"".join(b"%d %d\r\n" % (i + 1, len(m)) for i, m in enumerate(msgs)) + b".\r\n")
            elif w in ("RETR", "TOP"):
                m = msgs[int(cmd[1]) - 1]
                if w == "TOP": m = m.split(b"\r\n\r\n")[0] + b"\r\n\r\n"
                self.wfile.write(b"+OK\r\n" + m + b".\r\n")
            else: self.wfile.write(b"-ERR unknown command\r\n")
class S(socketserver.ThreadingTCPServer): allow_reuse_address = True
srv = S(("127.0.0.1", 0), H)
print("port", srv.server_address[1], flush=True)
srv.serve_forever()
"#;

#[test]
fn a_server_without_uidl_is_tracked_by_a_hash_of_each_message() {
    require_program("python3", "python3");
    let mut cmd = Command::new("python3");
    cmd.args(["-u", "-c", NO_UIDL_SERVER]);
    let server = officebox_testkit::Peer::spawn("no-uidl-pop3", cmd).unwrap();
    server
        .wait_for_log("port ", Duration::from_secs(10))
        .unwrap();
    let port: u16 = server
        .log()
        .lines()
        .find_map(|l| l.strip_prefix("port ")?.trim().parse().ok())
        .unwrap();
    let c = TestConfig::demo().free_ports().append(&format!(
        "[[users.pop3]]\nserver = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n\
         login = \"bob\"\npassword = \"pw\"\nkeep_on_server = true\n"
    ));
    let ob = start(&c);
    assert!(wait_until(Duration::from_secs(15), || mailbox(
        ob.dir(),
        "bob"
    )
    .len()
        == 3));
    let quits = || server.log().matches("QUIT").count();
    for _ in 0..2 {
        let before = quits();
        officebox(&ob, &["mail", "fetch", "now"]);
        assert!(wait_until(Duration::from_secs(10), || quits() > before));
    }
    assert_eq!(subjects(ob.dir(), "bob"), ["old 0", "old 1", "old 2"]);
    assert!(
        server.log().contains("TOP"),
        "headers hashed: {}",
        server.log()
    );
}
