//! POP3 end to end: Python's poplib (plain, STLS, port 995) reads what SMTP delivered;
//! exact sizes, stable UIDLs, DELE at QUIT, one session per mailbox, and no clear-text
//! passwords from the WAN.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::path::Path;
use std::process::Command;

use officebox_testkit::{
    Endpoint, Netns, Officebox, READY_TIMEOUT, TestConfig, Veth, require_program, require_root,
};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_officebox"))
}

fn start(c: &TestConfig) -> Officebox {
    let ob = Officebox::start(bin(), &c.text()).expect("starts");
    ob.peer()
        .wait_for_log("pop3: serving", READY_TIMEOUT)
        .expect("pop3 listens");
    ob
}

fn send(port: i64, to: &str, body: &str) {
    let out = Command::new("swaks")
        .args([
            "--server",
            &format!("127.0.0.1:{port}"),
            "--from",
            "x@example.net",
            "--to",
            to,
            "--body",
            body,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Runs a Python snippet (with poplib, ssl imported) and returns its stdout.
fn python(ns: Option<&Netns>, script: &str) -> String {
    let prelude = "import poplib, ssl, sys\nctx = ssl.create_default_context()\nctx.check_hostname = False\nctx.verify_mode = ssl.CERT_NONE\n";
    let code = format!("{prelude}{script}");
    let mut cmd = match ns {
        Some(ns) => ns.command("python3"),
        None => Command::new("python3"),
    };
    let out = cmd.args(["-c", &code]).output().unwrap();
    assert!(
        out.status.success(),
        "python failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn poplib_reads_sizes_uidls_and_deletes_at_quit() {
    require_program("swaks", "swaks");
    require_program("python3", "python3");
    let c = TestConfig::demo().free_ports();
    let (smtp, pop) = (c.int("mail.smtp_port"), c.int("mail.pop3_port"));
    let ob = start(&c);
    for i in 1..=3 {
        send(
            smtp,
            "alice@office.test",
            &format!("message number {i}\n.leading dot line\n"),
        );
    }
    let first = python(
        None,
        &format!(
            "p = poplib.POP3('127.0.0.1', {pop})\np.user('alice'); p.pass_('demo-alice')\n\
             n, size = p.stat(); print('stat', n, size)\n\
             sizes = [int(l.split()[1]) for l in p.list()[1]]\n\
             total = 0\n\
             for i in range(1, n + 1):\n    lines = p.retr(i)[1]\n    raw = b''.join(l + b'\\r\\n' for l in lines)\n    assert len(raw) == sizes[i-1], (len(raw), sizes[i-1])\n    assert b'.leading dot line' in raw\n    total += len(raw)\n\
             assert total == size\n\
             print('uidl', ' '.join(l.decode().split()[1] for l in p.uidl()[1]))\n\
             top = p.top(1, 0)[1]; assert any(l.startswith(b'Received:') for l in top) and not any(b'message number' in l for l in top)\n\
             p.dele(2); p.quit()\n"
        ),
    );
    assert!(first.contains("stat 3 "), "{first}");
    let uidls: Vec<String> = first
        .lines()
        .find_map(|l| l.strip_prefix("uidl "))
        .unwrap()
        .split(' ')
        .map(String::from)
        .collect();
    let second = python(
        None,
        &format!(
            "p = poplib.POP3('127.0.0.1', {pop})\np.user('alice'); p.pass_('demo-alice')\nprint('stat', p.stat()[0])\nprint('uidl', ' '.join(l.decode().split()[1] for l in p.uidl()[1]))\np.quit()\n"
        ),
    );
    assert!(
        second.contains("stat 2"),
        "DELE took effect at QUIT:\n{second}"
    );
    let after: Vec<&str> = second
        .lines()
        .find_map(|l| l.strip_prefix("uidl "))
        .unwrap()
        .split(' ')
        .collect();
    assert_eq!(
        after,
        [uidls[0].as_str(), uidls[2].as_str()],
        "UIDLs are stable"
    );
    let count = |sub: &str| {
        std::fs::read_dir(ob.dir().join("demo-data/mail/alice").join(sub))
            .unwrap()
            .count()
    };
    assert_eq!(
        count("new") + count("cur"),
        2,
        "the deleted message is gone from the Maildir"
    );
    assert!(
        count("cur") >= 1,
        "what was read is marked seen (moved to cur/)"
    );
}

#[test]
fn stls_port_995_in_use_and_bad_passwords() {
    require_program("python3", "python3");
    let c = TestConfig::demo().free_ports();
    let (pop, pops) = (c.int("mail.pop3_port"), c.int("mail.pop3s_port"));
    let _ob = start(&c);
    let out = python(
        None,
        &format!(
            "p = poplib.POP3('127.0.0.1', {pop}); caps = p.capa(); assert 'STLS' in caps and 'UIDL' in caps, caps\n\
             p.stls(context=ctx); assert 'STLS' not in p.capa()\n\
             p.user('bob'); p.pass_('demo-bob'); print('stls ok', p.stat()[0])\n\
             import threading, time\n\
             q = poplib.POP3_SSL('127.0.0.1', {pops}, context=ctx)\n\
             q.user('bob')\n\
             got = []\n\
             def second():\n    got.append(q.pass_('demo-bob'))\n\
             t = threading.Thread(target=second); t.start(); time.sleep(1.5)\n\
             print('second waits' if t.is_alive() else 'second did not wait', got)\n\
             p.quit(); t.join(5); print('second after the first quit', got)\n\
             q.quit()\n\
             q = poplib.POP3_SSL('127.0.0.1', {pops}, context=ctx); q.user('bob'); q.pass_('demo-bob'); print('995 ok'); q.quit()\n\
             r = poplib.POP3('127.0.0.1', {pop}); r.user('bob')\n\
             try:\n    r.pass_('wrong')\n\
             except poplib.error_proto as e:\n    print('bad', e)\n"
        ),
    );
    assert!(out.contains("stls ok 0"), "{out}");
    assert!(
        out.contains("second waits []") && out.contains("second after the first quit [b'+OK"),
        "one session per mailbox; a second waits for the first to end:\n{out}"
    );
    assert!(out.contains("995 ok"), "{out}");
    assert!(out.contains("bad b'-ERR [AUTH]"), "{out}");
}

#[test]
fn clear_text_passwords_are_refused_from_the_wan_but_not_over_tls() {
    require_root();
    require_program("python3", "python3");
    let boxns = Netns::new("popb").unwrap();
    let wan = Netns::new("popw").unwrap();
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
        .set("mail.pop3_port", 110)
        .set("dns.enabled", false)
        .set("ntp.enabled", false);
    let ob = Officebox::start_in_netns(bin(), &c.text(), &boxns).unwrap();
    ob.peer()
        .wait_for_log("pop3: serving", READY_TIMEOUT)
        .unwrap();
    let out = python(
        Some(&wan),
        "p = poplib.POP3('198.51.100.1', 110)\n\
         try:\n    p.user('alice'); print('accepted')\n\
         except poplib.error_proto as e:\n    print('refused', e)\n\
         p.stls(context=ctx); p.user('alice'); p.pass_('demo-alice'); print('tls ok'); p.quit()\n",
    );
    assert!(out.contains("refused b'-ERR [AUTH]"), "{out}");
    assert!(out.contains("tls ok"), "{out}");
}
