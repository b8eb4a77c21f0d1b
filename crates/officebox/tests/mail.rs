//! SMTP in, end to end: swaks and raw protocol sessions against the real binary; local
//! delivery through aliases into Maildirs, relaying queued for LAN clients, the open-relay
//! probes refused from the WAN (in network namespaces), and hostile input.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use officebox_testkit::{
    AdminPages, Endpoint, Netns, Officebox, READY_TIMEOUT, TestConfig, Veth, require_program,
    require_root,
};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_officebox"))
}

fn start(c: &TestConfig) -> Officebox {
    let ob = Officebox::start(bin(), &c.text()).expect("starts");
    ob.peer()
        .wait_for_log("smtp: serving", READY_TIMEOUT)
        .expect("smtp listens");
    ob
}

fn mailbox(ob: &Officebox, login: &str) -> Vec<String> {
    let dir: PathBuf = ob.dir().join("demo-data/mail").join(login).join("new");
    let mut out: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn swaks(port: i64, args: &[&str]) -> (bool, String) {
    let out = Command::new("swaks")
        .args(["--server", &format!("127.0.0.1:{port}"), "--timeout", "10"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A raw SMTP session: sends `script` in one write (pipelining), returns every reply line.
fn raw(port: i64, script: &str, replies: usize) -> Vec<String> {
    let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port as u16)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut lines = Vec::new();
    let mut greeting = String::new();
    reader.read_line(&mut greeting).unwrap();
    (&stream).write_all(script.as_bytes()).unwrap();
    while lines.len() < replies {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        let done = line.as_bytes().get(3) == Some(&b' ');
        let text = line.trim_end().to_string();
        if done {
            lines.push(text);
        }
    }
    lines
}

#[test]
fn mail_for_aliases_and_users_lands_in_their_maildirs_with_a_received_header() {
    require_program("swaks", "swaks");
    let c = TestConfig::demo().free_ports();
    let port = c.int("mail.smtp_port");
    let ob = start(&c);
    let (ok, log) = swaks(
        port,
        &[
            "--from",
            "someone@example.net",
            "--to",
            "sales@office.test",
            "--header",
            "Subject: quarterly",
            "--body",
            "numbers attached",
        ],
    );
    assert!(ok, "{log}");
    assert!(log.contains("250 2.0.0 Ok"), "{log}");
    for login in ["alice", "bob"] {
        let msgs = mailbox(&ob, login);
        assert_eq!(msgs.len(), 1, "{login}: {msgs:?}");
        assert!(msgs[0].starts_with("Received: from "), "{}", msgs[0]);
        assert!(msgs[0].contains("by officebox.office.test (officebox) with ESMTP;"));
        assert!(msgs[0].contains("Subject: quarterly") && msgs[0].contains("numbers attached"));
    }
    // postmaster reaches the admin; unknown users are refused.
    assert!(
        swaks(
            port,
            &["--from", "x@example.net", "--to", "postmaster@office.test"]
        )
        .0
    );
    assert_eq!(mailbox(&ob, "admin").len(), 1);
    let (ok, log) = swaks(
        port,
        &["--from", "x@example.net", "--to", "nobody@office.test"],
    );
    assert!(!ok && log.contains("550 5.1.1"), "{log}");
}

#[test]
fn lan_clients_relay_and_the_message_waits_on_the_queue() {
    require_program("swaks", "swaks");
    let c = TestConfig::demo().free_ports();
    let port = c.int("mail.smtp_port");
    let ob = start(&c);
    let (ok, log) = swaks(
        port,
        &[
            "--from",
            "alice@office.test",
            "--to",
            "friend@example.net",
            "--body",
            "lunch?",
        ],
    );
    assert!(ok && log.contains("queued as"), "{log}");
    let db = officebox_store::Db::open(&ob.dir().join("demo-data/state.db")).unwrap();
    let queue = db.queue().unwrap();
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0].sender, "alice@office.test");
    assert_eq!(queue[0].recipients[0].address, "friend@example.net");
    assert!(
        std::fs::read_to_string(ob.dir().join(&queue[0].path))
            .unwrap()
            .contains("lunch?"),
        "the message file is on disk"
    );
    let out = Command::new(bin())
        .args(["mail", "queue", "--config"])
        .arg(ob.config_path())
        .current_dir(ob.dir())
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.contains("from <alice@office.test>")
            && listing.contains("friend@example.net: pending"),
        "{listing}"
    );
}

#[test]
fn open_relay_probes_from_the_wan_are_all_refused() {
    require_root();
    require_program("swaks", "swaks");
    let boxns = Netns::new("smtpb").unwrap();
    let wan = Netns::new("smtpw").unwrap();
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
        .set("mail.smtp_port", 25)
        .set("dns.enabled", false)
        .set("ntp.enabled", false);
    let ob = Officebox::start_in_netns(bin(), &c.text(), &boxns).unwrap();
    ob.peer()
        .wait_for_log("smtp: serving", READY_TIMEOUT)
        .unwrap();
    let probe = |from: &str, to: &str| -> String {
        let out = wan
            .command("swaks")
            .args([
                "--server",
                "198.51.100.1:25",
                "--timeout",
                "10",
                "--from",
                from,
                "--to",
                to,
            ])
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    for (from, to) in [
        ("spammer@example.net", "victim@example.org"),
        ("alice@office.test", "victim@example.org"),
        ("<>", "victim@example.org"),
        ("spammer@example.net", "\"victim@example.org\"@office.test"),
        ("spammer@example.net", "victim%example.org@office.test"),
        ("spammer@example.net", "example.org!victim@office.test"),
        ("spammer@example.net", "@office.test:victim@example.org"),
    ] {
        let log = probe(from, to);
        assert!(
            log.contains("554 5.7.1") || log.contains(" 501 "),
            "relay probe {from} -> {to} was not refused:\n{log}"
        );
        assert!(!log.contains("250 2.0.0 Ok"), "{log}");
    }
    // Nor does a fax go out for a stranger, even one naming an office user as sender.
    let log = probe("alice@office.test", "95550123@fax.office.test");
    assert!(log.contains("550 5.7.1"), "a fax for a stranger:\n{log}");
    // Mail for the office is still accepted from the Internet.
    let log = probe("friend@example.org", "alice@office.test");
    assert!(log.contains("250 2.0.0 Ok"), "{log}");
    assert!(
        officebox_store::Db::open(&ob.dir().join("demo-data/state.db"))
            .unwrap()
            .queue()
            .unwrap()
            .is_empty(),
        "nothing was queued for relaying"
    );
}

#[test]
fn pipelining_limits_and_hostile_input() {
    let c = TestConfig::demo()
        .free_ports()
        .set("mail.max_message_size", "10K");
    let port = c.int("mail.smtp_port");
    let ob = start(&c);
    // Everything in one write (RFC 2920).
    let replies = raw(
        port,
        "EHLO client\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<alice@office.test>\r\nRCPT TO:<bob@office.test>\r\nDATA\r\n",
        5,
    );
    assert_eq!(replies.len(), 5, "{replies:?}");
    assert!(
        replies[0].starts_with("250 ")
            && replies[1].starts_with("250 2.1.0")
            && replies[4].starts_with("354"),
        "{replies:?}"
    );
    // Declared too big; then too big in fact.
    let r = raw(
        port,
        "EHLO c\r\nMAIL FROM:<a@example.net> SIZE=999999\r\nQUIT\r\n",
        3,
    );
    assert!(r[1].starts_with("552 5.3.4"), "{r:?}");
    let big = format!(
        "EHLO c\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<alice@office.test>\r\nDATA\r\n{}\r\n.\r\n",
        "x".repeat(20_000)
    );
    let r = raw(port, &big, 5);
    assert!(r[4].starts_with("552 5.3.4"), "{r:?}");
    // A bare LF inside the message is refused (SMTP smuggling), and does not end the data.
    let r = raw(
        port,
        "EHLO c\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<alice@office.test>\r\nDATA\r\nSubject: x\n.\nMAIL FROM:<evil@example.net>\r\n.\r\n",
        5,
    );
    assert!(r[4].starts_with("550 5.6.11"), "{r:?}");
    // More than 100 recipients: the rest wait for another message.
    let mut script = String::from("EHLO c\r\nMAIL FROM:<a@example.net>\r\n");
    for _ in 0..101 {
        script.push_str("RCPT TO:<alice@office.test>\r\n");
    }
    let r = raw(port, &script, 103);
    assert!(r[101].starts_with("250"), "{}", r[101]);
    assert!(r[102].starts_with("452 4.5.3"), "{}", r[102]);
    // An over-long line, NUL, nonsense, commands out of order: answered, never a crash.
    let r = raw(
        port,
        &format!(
            "{}\r\nEHLO\0x\r\nFOO\r\nRCPT TO:<alice@office.test>\r\nDATA\r\nQUIT\r\n",
            "A".repeat(5000)
        ),
        6,
    );
    assert!(
        r[0].starts_with("500")
            && r[1].starts_with("500")
            && r[2].starts_with("500")
            && r[3].starts_with("503")
            && r[4].starts_with("503")
            && r[5].starts_with("221"),
        "{r:?}"
    );
    assert!(ob.peer().try_wait().unwrap().is_none());
    assert!(
        mailbox(&ob, "alice").is_empty(),
        "none of that was delivered"
    );
}

#[test]
fn starttls_implicit_tls_and_auth_over_tls_only() {
    require_program("swaks", "swaks");
    let c = TestConfig::demo().free_ports();
    let (smtp, submission, smtps) = (
        c.int("mail.smtp_port"),
        c.int("mail.submission_port"),
        c.int("mail.smtps_port"),
    );
    let ob = start(&c);
    // STARTTLS, then AUTH PLAIN: an authenticated user relays.
    let (ok, log) = swaks(
        smtp,
        &[
            "--tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            "alice",
            "--auth-password",
            "demo-alice",
            "--from",
            "alice@office.test",
            "--to",
            "friend@example.net",
        ],
    );
    assert!(
        ok && log.contains("235 2.7.0") && log.contains("queued as"),
        "{log}"
    );
    // Implicit TLS on the smtps port, AUTH LOGIN with the full address.
    let (ok, log) = swaks(
        smtps,
        &[
            "--tlsc",
            "--auth",
            "LOGIN",
            "--auth-user",
            "bob@office.test",
            "--auth-password",
            "demo-bob",
            "--from",
            "bob@office.test",
            "--to",
            "alice@office.test",
        ],
    );
    assert!(ok && log.contains("235 2.7.0"), "{log}");
    assert_eq!(mailbox(&ob, "alice").len(), 1);
    // No AUTH without TLS (RFC 4954 section 4): AUTH is not even offered in clear.
    let r = raw(
        smtp,
        "EHLO c\r\nAUTH PLAIN AGFsaWNlAGRlbW8tYWxpY2U=\r\nQUIT\r\n",
        3,
    );
    assert!(
        r[0].starts_with("250 ") && r[1].starts_with("538 5.7.11"),
        "{r:?}"
    );
    // Submission requires AUTH.
    let r = raw(
        submission,
        "EHLO c\r\nMAIL FROM:<bob@office.test>\r\nQUIT\r\n",
        3,
    );
    assert!(r[1].starts_with("530 5.7.0"), "{r:?}");
    // Plaintext pipelined after STARTTLS is not carried into the TLS session: the
    // connection is closed after the 220.
    let r = raw(
        smtp,
        "EHLO c\r\nSTARTTLS\r\nMAIL FROM:<evil@example.net>\r\n",
        3,
    );
    assert!(r.len() == 2 && r[1].starts_with("220 2.0.0"), "{r:?}");
    assert!(ob.log().contains("data pipelined after STARTTLS; closing"));
}

#[test]
fn failed_logins_are_slowed_and_then_refused() {
    require_program("swaks", "swaks");
    let c = TestConfig::demo().free_ports();
    let smtp = c.int("mail.smtp_port");
    let _ob = start(&c);
    let attempt = || {
        swaks(
            smtp,
            &[
                "--tls",
                "--auth",
                "PLAIN",
                "--auth-user",
                "alice",
                "--auth-password",
                "wrong",
                "--from",
                "alice@office.test",
                "--to",
                "bob@office.test",
                "--quit-after",
                "AUTH",
            ],
        )
        .1
    };
    for i in 0..5 {
        let log = attempt();
        assert!(log.contains("535 5.7.8"), "attempt {i}: {log}");
    }
    let log = attempt();
    assert!(
        log.contains("454 4.7.0"),
        "the sixth failure in a row is refused outright:\n{log}"
    );
    // Even the right password waits now.
    let (_, log) = swaks(
        smtp,
        &[
            "--tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            "alice",
            "--auth-password",
            "demo-alice",
            "--quit-after",
            "AUTH",
        ],
    );
    assert!(log.contains("454 4.7.0"), "{log}");
}

#[test]
fn kill_9_during_a_load_of_1000_messages_loses_none_that_got_a_250() {
    require_program("python3", "python3");
    // Nothing resolves other domains here: queued mail stays queued.
    let c = TestConfig::demo().free_ports();
    let port = c.int("mail.smtp_port");
    let ob = start(&c);
    let acks = ob.dir().join("acked.txt");
    // Four connections send 250 messages each, alternately to a local user and to
    // another domain (queued), and write down every Message-ID that got its 250.
    let script = format!(
        r#"
import smtplib, threading, sys
out = open({acks:?}, "a", buffering=1)
lock = threading.Lock()
def run(t):
    try:
        s = smtplib.SMTP("127.0.0.1", {port}, timeout=10)
        for i in range(250):
            mid = "<load-%d-%d@test>" % (t, i)
            to = "alice@office.test" if i % 2 == 0 else "friend@example.net"
            msg = "Message-ID: %s\r\nSubject: load\r\n\r\n%s\r\n" % (mid, "x" * 2000)
            s.sendmail("sender@office.test", [to], msg)
            with lock:
                out.write(mid + " " + to + "\n")
    except Exception as e:
        pass
ts = [threading.Thread(target=run, args=(t,)) for t in range(4)]
[t.start() for t in ts]
[t.join() for t in ts]
"#
    );
    let mut client = Command::new("python3")
        .args(["-c", &script])
        .spawn()
        .unwrap();
    let count = || {
        std::fs::read_to_string(&acks)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    assert!(
        officebox_testkit::wait_until(Duration::from_secs(60), || count() >= 300),
        "the load got going: {}",
        count()
    );
    let dir = ob.kill9().unwrap();
    client.wait().unwrap();
    let acked = std::fs::read_to_string(&acks).unwrap();
    let acked: Vec<(&str, &str)> = acked.lines().filter_map(|l| l.split_once(' ')).collect();
    assert!(
        acked.len() >= 300 && acked.len() < 1000,
        "killed mid-load: {}",
        acked.len()
    );

    let data = dir.path().join("demo-data");
    let mut stored = String::new();
    for sub in ["new", "cur"] {
        if let Ok(d) = std::fs::read_dir(data.join("mail/alice").join(sub)) {
            for e in d.flatten() {
                stored.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
    }
    let db = officebox_store::Db::open(&data.join("state.db")).unwrap();
    let mut queued = String::new();
    for m in db.queue().unwrap() {
        queued.push_str(
            &std::fs::read_to_string(data.join("..").join(&m.path))
                .unwrap_or_else(|_| std::fs::read_to_string(&m.path).unwrap_or_default()),
        );
    }
    for (mid, to) in &acked {
        let place = if *to == "alice@office.test" {
            &stored
        } else {
            &queued
        };
        assert!(place.contains(mid), "{mid} for {to} got a 250 and was lost");
    }
}

/// Out of office (issue 20, sixth part): alice turns her reply on from her own page (she
/// is not an admin); bob's mail gets one reply, marked auto-replied; his second message, a list's, a bulk one, an automatic one and a bounce get
/// none.
#[test]
fn an_out_of_office_reply_goes_once_to_a_person_and_never_to_lists_or_robots() {
    require_program("swaks", "swaks");
    require_program("curl", "curl");
    let c = TestConfig::demo().free_ports();
    let ob = start(&c);
    ob.peer()
        .wait_for_log("web: serving the admin pages", READY_TIMEOUT)
        .unwrap();
    let admin = format!("http://127.0.0.1:{}", c.int("web.admin_port"));
    let pages = AdminPages::new(&admin, ob.dir().join("cookies.txt"), None);
    let logged_in = pages.log_in("alice", "demo-alice");
    assert!(logged_in.starts_with("HTTP/1.1 303"), "{logged_in}");
    let own = pages.get("/me");
    assert!(own.contains("Out of office"), "{own}");
    let saved = pages.post(
        &own,
        "/me/vacation",
        "on=true&subject=Away+until+Monday&body=I+am+away.%0AWrite+to+bob%40office.test.",
    );
    assert!(saved.contains("location: /me?saved=1"), "{saved}");
    // alice may not open the admin pages.
    let users = pages.get("/users");
    assert!(users.contains("location: /me"), "{users}");

    let port = c.int("mail.smtp_port");
    let send = |from: &str, extra: &[&str], subject: &str| {
        let header = format!("Subject: {subject}");
        let mut args = vec!["--from", from, "--to", "alice@office.test"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--header", &header]);
        let (ok, log) = swaks(port, &args);
        assert!(ok, "{log}");
    };
    send("bob@office.test", &[], "first");
    send("bob@office.test", &[], "second");
    send(
        "bob@office.test",
        &["--add-header", "Precedence: bulk"],
        "newsletter",
    );
    send(
        "bob@office.test",
        &["--add-header", "List-Id: <team.office.test>"],
        "list",
    );
    send(
        "bob@office.test",
        &["--add-header", "Auto-Submitted: auto-generated"],
        "robot",
    );
    send("<>", &[], "bounce");
    std::thread::sleep(Duration::from_millis(500));
    let replies: Vec<String> = mailbox(&ob, "bob")
        .into_iter()
        .filter(|m| m.contains("Away until Monday"))
        .collect();
    assert_eq!(replies.len(), 1, "{replies:?}\n{}", ob.log());
    let r = &replies[0];
    assert!(r.contains("Auto-Submitted: auto-replied"), "{r}");
    assert!(
        r.contains("From: \"Alice Example\" <alice@office.test>")
            || r.contains("From: Alice Example <alice@office.test>"),
        "{r}"
    );
    assert!(r.contains("In-Reply-To: <"), "{r}");
    assert!(r.contains("I am away.\r\nWrite to bob@office.test."), "{r}");
    assert_eq!(
        mailbox(&ob, "alice").len(),
        6,
        "alice still gets everything"
    );
}
