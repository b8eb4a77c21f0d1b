//! The ISP dovecot and the POP3 client wrappers, checked against each other: fetchmail and
//! mpop read the private dovecot in every TLS mode, keep mail with UIDL tracking, then
//! delete it.

use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::process::Output;
use std::time::Duration;

use officebox_testkit::{
    IspDovecot, PopMode, PopTls, delivered, fetchmail_once, mpop_once, require_program,
    require_root, scratch_dir, wait_until,
};

const HOST: &str = "127.0.0.1";

fn require_peers(client: &str) {
    require_root();
    require_program("dovecot", "dovecot-pop3d");
    require_program("openssl", "openssl");
    require_program(client, client);
}

fn isp() -> io::Result<IspDovecot> {
    let isp = IspDovecot::start(
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        &[("alice", "pw"), ("bob", "bob secret 2")],
    )?;
    for i in 1..=3 {
        let msg = format!(
            "From: Sender <sender@example.org>\r\nTo: alice@isp.test\r\n\
             Subject: message {i}\r\nMessage-ID: <{i}@example.org>\r\n\r\n\
             body of message {i}\r\n.a line starting with a dot\r\n"
        );
        isp.put("alice", msg.as_bytes())?;
    }
    isp.put("bob", b"Subject: for bob\r\n\r\nhi bob\r\n")?;
    assert_eq!(isp.count("alice")?, 3);
    assert_eq!(isp.count("bob")?, 1);
    Ok(isp)
}

fn describe(out: &Output) -> String {
    format!(
        "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// What dovecot logged since the last call, once `user`'s session has ended, with a check
/// that it was one login of `user` protected as `tls` says (dovecot marks TLS sessions,
/// implicit or STLS, with "TLS"). dovecot's log process writes a little after the client
/// is done, hence the wait.
fn session_log(isp: &IspDovecot, seen: &mut usize, user: &str, tls: PopTls) -> String {
    let ended = format!("pop3({user})");
    let mut new = String::new();
    let done = wait_until(Duration::from_secs(5), || {
        let log = isp.log();
        new = log.get(*seen..).unwrap_or_default().to_owned();
        new.lines()
            .any(|l| l.contains(&ended) && l.contains("Disconnected"))
    });
    assert!(
        done,
        "{user}'s session did not end in dovecot's log:\n{new}"
    );
    *seen += new.len();
    let logins: Vec<&str> = new.lines().filter(|l| l.contains("Login: user=")).collect();
    assert_eq!(logins.len(), 1, "one login expected:\n{new}");
    assert!(logins[0].contains(&format!("user=<{user}>")), "{new}");
    assert_eq!(
        logins[0].contains(", TLS,"),
        tls != PopTls::Plain,
        "{tls:?}:\n{new}"
    );
    new
}

fn subjects(dir: &std::path::Path) -> io::Result<Vec<String>> {
    let mut subjects = Vec::new();
    for path in delivered(dir)? {
        let text = fs::read_to_string(&path)?;
        let subject = text
            .lines()
            .find_map(|l| l.strip_prefix("Subject: "))
            .unwrap_or("(none)")
            .trim_end()
            .to_owned();
        assert!(
            text.contains("\n.a line starting with a dot"),
            "{}: dot-unstuffing: {text}",
            path.display()
        );
        subjects.push(subject);
    }
    subjects.sort();
    Ok(subjects)
}

#[test]
fn fetchmail_keeps_with_uidl_then_deletes() -> io::Result<()> {
    require_peers("fetchmail");
    let isp = isp()?;
    let dir = scratch_dir("fetchmail")?;
    let dir = dir.path();
    let run = |port, mode| fetchmail_once(dir, HOST, port, "alice", "pw", mode);
    let mut seen = 0;

    // Keep, plain POP3: all three arrive and stay on the server.
    let out = run(isp.pop3_port(), PopMode::keep(PopTls::Plain))?;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(!describe(&out).contains("POP3> STLS"), "{}", describe(&out));
    session_log(&isp, &mut seen, "alice", PopTls::Plain);
    assert_eq!(
        subjects(dir)?,
        ["message 1", "message 2", "message 3"],
        "{}",
        describe(&out)
    );
    assert_eq!(isp.count("alice")?, 3);

    // Keep again, now over STLS: UIDL tracking says nothing is new (exit 1: no mail).
    let out = run(isp.pop3_port(), PopMode::keep(PopTls::StartTls))?;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(describe(&out).contains("POP3> STLS"), "{}", describe(&out));
    session_log(&isp, &mut seen, "alice", PopTls::StartTls);
    assert_eq!(delivered(dir)?.len(), 3);
    assert_eq!(isp.count("alice")?, 3);

    // Delete, implicit TLS: every message is fetched again and deleted.
    let out = run(isp.pop3s_port(), PopMode::delete(PopTls::Implicit))?;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(!describe(&out).contains("POP3> STLS"), "{}", describe(&out));
    let log = session_log(&isp, &mut seen, "alice", PopTls::Implicit);
    assert!(log.contains("del=3/3"), "{log}");
    assert_eq!(delivered(dir)?.len(), 6);
    assert_eq!(isp.count("alice")?, 0, "{}", isp.log());
    assert_eq!(isp.count("bob")?, 1);

    // Nothing left.
    let out = run(isp.pop3_port(), PopMode::delete(PopTls::StartTls))?;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));

    // A wrong password is an authentication failure (exit 3), not an Err.
    let out = fetchmail_once(
        dir,
        HOST,
        isp.pop3_port(),
        "bob",
        "wrong",
        PopMode::keep(PopTls::Plain),
    )?;
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert_eq!(isp.count("bob")?, 1);

    isp.stop()?;
    Ok(())
}

#[test]
fn mpop_keeps_with_uidl_then_deletes() -> io::Result<()> {
    require_peers("mpop");
    let isp = isp()?;
    let dir = scratch_dir("mpop")?;
    let dir = dir.path();
    let run = |port, mode| mpop_once(dir, HOST, port, "alice", "pw", mode);
    let mut seen = 0;

    // Keep, implicit TLS: all three arrive and stay.
    let out = run(isp.pop3s_port(), PopMode::keep(PopTls::Implicit))?;
    assert!(out.status.success(), "{}", describe(&out));
    session_log(&isp, &mut seen, "alice", PopTls::Implicit);
    assert_eq!(
        subjects(dir)?,
        ["message 1", "message 2", "message 3"],
        "{}",
        describe(&out)
    );
    assert_eq!(isp.count("alice")?, 3);

    // Keep, STLS, then plain: nothing new either time.
    for tls in [PopTls::StartTls, PopTls::Plain] {
        let out = run(isp.pop3_port(), PopMode::keep(tls))?;
        assert!(out.status.success(), "{tls:?}: {}", describe(&out));
        session_log(&isp, &mut seen, "alice", tls);
        assert_eq!(delivered(dir)?.len(), 3, "{tls:?}: {}", describe(&out));
        assert_eq!(isp.count("alice")?, 3);
    }

    // Delete over STLS: all fetched again, server empty.
    let out = run(isp.pop3_port(), PopMode::delete(PopTls::StartTls))?;
    assert!(out.status.success(), "{}", describe(&out));
    let log = session_log(&isp, &mut seen, "alice", PopTls::StartTls);
    assert!(log.contains("del=3/3"), "{log}");
    assert_eq!(delivered(dir)?.len(), 6);
    assert_eq!(isp.count("alice")?, 0, "{}", isp.log());

    // A wrong password is an authentication failure (EX_NOPERM), not an Err; bob's real
    // password, which has spaces, works.
    let bob = scratch_dir("mpop-bob")?;
    let bob_run = |pass| {
        mpop_once(
            bob.path(),
            HOST,
            isp.pop3s_port(),
            "bob",
            pass,
            PopMode::keep(PopTls::Implicit),
        )
    };
    let out = bob_run("wrong")?;
    assert_eq!(out.status.code(), Some(77), "{}", describe(&out));
    assert!(delivered(bob.path())?.is_empty());
    let out = bob_run("bob secret 2")?;
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(delivered(bob.path())?.len(), 1);
    assert_eq!(isp.count("bob")?, 1);
    Ok(())
}
