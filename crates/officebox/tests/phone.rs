//! The phone system end to end, so far the registrar: sipp registers the demo's phones
//! with digest authentication over UDP and TCP and unregisters them, wrong passwords are
//! refused and a guessing flood is cut off, OPTIONS is answered, sipsak's registration
//! shows in `officebox phone registrations` and survives a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use officebox_testkit::{Officebox, READY_TIMEOUT, TestConfig, free_udp_port, require_program};

mod common;
use common::{bobs_phone, scenarios, sipp_call};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_officebox"))
}

fn start(c: &TestConfig) -> Officebox {
    let ob = Officebox::start(bin(), &c.text()).expect("starts");
    ob.peer()
        .wait_for_log("phone: serving", READY_TIMEOUT)
        .expect("phone starts");
    ob
}

/// Runs a sipp scenario against officebox's SIP port; (success, output).
fn sipp(
    port: i64,
    scenario: &str,
    inf: Option<&str>,
    transport: &str,
    count: u32,
) -> (bool, String) {
    let dir = scenarios();
    let errors = officebox_testkit::scratch_dir("sipp").unwrap();
    let mut cmd = Command::new("sipp");
    cmd.current_dir(&dir)
        .args(["-sf", scenario, "-key", "domain", "office.test"])
        .args(["-auth_uri", "office.test", "-i", "127.0.0.1"])
        .args(["-p", &free_udp_port().unwrap().to_string()])
        .args(["-t", transport, "-m", &count.to_string(), "-nostdin"])
        .args([
            "-recv_timeout",
            "5s",
            "-timeout",
            "30s",
            "-trace_err",
            "-error_file",
        ])
        .arg(errors.path().join("errors.txt"))
        .arg(format!("127.0.0.1:{port}"));
    if let Some(inf) = inf {
        cmd.args(["-inf", inf]);
    }
    let out: Output = cmd.output().unwrap();
    let log = format!(
        "{}{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(errors.path().join("errors.txt")).unwrap_or_default()
    );
    (out.status.success(), log)
}

fn registrations(ob: &Officebox) -> String {
    let out = Command::new(bin())
        .args(["phone", "registrations", "--config"])
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
fn phones_register_with_digest_over_udp_and_tcp_and_wrong_passwords_are_refused() {
    require_program("sipp", "sip-tester");
    let c = TestConfig::demo().free_ports();
    let port = c.int("phone.sip_port");
    let ob = start(&c);
    for transport in ["u1", "t1"] {
        let (ok, log) = sipp(port, "register_digest.xml", Some("users.csv"), transport, 2);
        assert!(ok, "register over {transport}:\n{log}\n{}", ob.log());
        let (ok, log) = sipp(
            port,
            "register_wrong_password.xml",
            Some("users_wrong_password.csv"),
            transport,
            2,
        );
        assert!(ok, "wrong passwords over {transport}:\n{log}");
    }
    let (ok, log) = sipp(port, "options.xml", None, "u1", 1);
    assert!(ok, "{log}");
    assert!(
        registrations(&ob).contains("no phone is registered"),
        "all unregistered"
    );
    assert!(ob.log().contains("phone: wrong password method=REGISTER"));
}

#[test]
fn a_registration_is_listed_and_kept_across_a_restart() {
    require_program("sipsak", "sipsak");
    let c = TestConfig::demo().free_ports();
    let port = c.int("phone.sip_port");
    let ob = start(&c);
    let local = free_udp_port().unwrap();
    // -H: the phone's own address in its Contact (sipsak would otherwise take its host
    // name's, 127.0.1.1 on a fresh Debian machine).
    let out = Command::new("sipsak")
        .args(["-U", "-i", "-s", &format!("sip:102@127.0.0.1:{port}")])
        .args(["-u", "bob", "-a", "demo-bob", "-x", "600"])
        .args(["-l", &local.to_string(), "-H", "127.0.0.1"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Registrations reach the state database in batches (every 200 ms).
    let _ = officebox_testkit::wait_until(Duration::from_secs(5), || {
        !registrations(&ob).contains("no phone is registered")
    });
    let list = registrations(&ob);
    assert!(
        list.contains(&format!("bob          102    sip:102@127.0.0.1:{local}"))
            && list.contains("(udp)")
            && list.contains("sipsak"),
        "{list}"
    );
    let text = c.text();
    let (_, _, dir) = ob.stop_with("TERM", Duration::from_secs(10)).unwrap();
    let ob = Officebox::start_in(bin(), &text, dir).unwrap();
    assert!(registrations(&ob).contains("sip:102@127.0.0.1"));
}

#[test]
fn a_password_guessing_flood_is_ignored_after_twenty_failures() {
    let c = TestConfig::demo().free_ports();
    let port = c.int("phone.sip_port");
    let ob = start(&c);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let target = format!("127.0.0.1:{port}");
    let mut buf = [0u8; 4096];
    let mut register = |n: u32, auth: &str| -> Option<String> {
        let msg = format!(
            "REGISTER sip:office.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bKflood{n}\r\n\
             Max-Forwards: 70\r\nTo: <sip:101@office.test>\r\nFrom: <sip:101@office.test>;tag=f{n}\r\n\
             Call-ID: flood-{n}\r\nCSeq: {n} REGISTER\r\nContact: <sip:101@127.0.0.1:9>\r\n{auth}Content-Length: 0\r\n\r\n",
            sock.local_addr().unwrap().port()
        );
        sock.send_to(msg.as_bytes(), &target).unwrap();
        let n = sock.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    let challenge = register(0, "").unwrap();
    assert!(challenge.starts_with("SIP/2.0 401"), "{challenge}");
    let nonce = challenge
        .split("nonce=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let guess = |i: u32| {
        format!(
            "Authorization: Digest username=\"alice\", realm=\"office.test\", nonce=\"{nonce}\", \
             uri=\"sip:office.test\", response=\"{:032x}\", algorithm=MD5\r\n",
            i
        )
    };
    for i in 1..=20 {
        let r = register(i, &guess(i)).unwrap_or_else(|| panic!("guess {i} unanswered"));
        assert!(r.starts_with("SIP/2.0 401"), "{r}");
    }
    assert!(
        register(21, &guess(21)).is_none(),
        "the 21st guess is ignored"
    );
    assert!(
        register(22, "").is_none(),
        "so is everything else from there"
    );
    assert!(ob.log().contains("too many failed logins"));
    // The administrator hears of it by mail, once.
    let admin_new = ob.dir().join("demo-data/mail/admin/new");
    let alerts = || {
        std::fs::read_dir(&admin_new)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                    .filter(|m| m.contains("Subject: Phone logins: 127.0.0.1 is locked out"))
                    .count()
            })
            .unwrap_or(0)
    };
    assert!(
        officebox_testkit::wait_until(Duration::from_secs(5), || alerts() == 1),
        "{}",
        ob.log()
    );
}

fn calls(ob: &Officebox) -> String {
    let out = Command::new(bin())
        .args(["phone", "calls", "--config"])
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
fn an_extension_calls_another_through_the_box_and_hangs_up() {
    require_program("sipp", "sip-tester");
    let c = TestConfig::demo().free_ports();
    let port = c.int("phone.sip_port");
    let ob = start(&c);
    let target = format!("127.0.0.1:{port}");
    // bob's phone: a sipp that answers, registered by another sipp.
    let bob_port = free_udp_port().unwrap().to_string();
    let uas = bobs_phone(&target, "uas_answer.xml", &bob_port);
    // alice calls 102, talks two seconds, hangs up.
    let caller = std::thread::spawn({
        let target = target.clone();
        move || sipp_call(&target, "uac_call.xml", "caller.csv", "102")
    });
    assert!(
        officebox_testkit::wait_until(Duration::from_secs(5), || calls(&ob).contains("talking")),
        "{}\n{}\nbob's phone:\n{}",
        calls(&ob),
        ob.log(),
        uas.log()
    );
    assert!(calls(&ob).contains("101 -> 102"), "{}", calls(&ob));
    let (ok, errors) = caller.join().unwrap();
    assert!(ok, "the caller: {errors}\n{}", ob.log());
    uas.wait_for_log("Successful call", Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("bob's phone: {e}\n{}", uas.log()));
    assert!(
        officebox_testkit::wait_until(Duration::from_secs(5), || calls(&ob).contains("no call")),
        "{}",
        calls(&ob)
    );
    // The call's one log line comes at its end (once bob's phone has answered our BYE).
    assert!(
        officebox_testkit::wait_until(Duration::from_secs(5), || {
            let log = ob.log();
            log.contains("phone: call ended") && log.contains("disposition=\"answered\"")
        }),
        "{}",
        ob.log()
    );
}

#[test]
fn answered_busy_cancelled_unanswered_and_unknown_calls_end_cleanly_and_are_in_the_call_log() {
    require_program("sipp", "sip-tester");
    require_program("curl", "curl");
    require_program("python3", "python3");
    let c = TestConfig::demo()
        .free_ports()
        .set("phone.no_answer_timeout", "5s");
    let port = c.int("phone.sip_port");
    let ob = start(&c);
    let target = format!("127.0.0.1:{port}");
    let voicemails = || ob.log().matches("phone: voicemail answers").count();

    // bob answers and alice hangs up after two seconds.
    let bob_port = free_udp_port().unwrap().to_string();
    let bob = bobs_phone(&target, "uas_answer.xml", &bob_port);
    let (ok, errors) = sipp_call(&target, "uac_call.xml", "caller.csv", "102");
    assert!(ok, "{errors}\n{}", ob.log());
    bob.wait_for_log("Successful call", Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}"));
    drop(bob);

    // 109 is nobody's extension.
    let (ok, errors) = sipp_call(&target, "uac_expect.xml", "caller.csv", "109");
    assert!(ok, "{errors}");

    // Busy: voicemail takes the call. (bob's phone always listens on one port, so each
    // new one replaces the last.)
    let bob = bobs_phone(&target, "uas_busy.xml", &bob_port);
    let (ok, errors) = sipp_call(&target, "uac_voicemail_hangup.xml", "caller.csv", "102");
    assert!(ok, "{errors}\n{}", ob.log());
    assert_eq!(voicemails(), 1, "{}", ob.log());
    bob.wait_for_log("Successful call", Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}"));
    drop(bob);

    // alice hangs up while bob's phone rings: bob's phone hears the CANCEL.
    let bob = bobs_phone(&target, "uas_ring.xml", &bob_port);
    let (ok, errors) = sipp_call(&target, "uac_cancel.xml", "caller.csv", "102");
    assert!(ok, "{errors}\n{}", ob.log());
    // The call's one log line comes at its end, once bob's phone has answered the CANCEL.
    assert!(
        officebox_testkit::wait_until(Duration::from_secs(5), || ob
            .log()
            .contains("disposition=\"cancelled\"")),
        "{}",
        ob.log()
    );
    bob.wait_for_log("Successful call", Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}"));
    drop(bob);

    // Nobody picks up within no_answer_timeout (5 s): bob's phone is cancelled and
    // voicemail answers.
    let bob = bobs_phone(&target, "uas_ring.xml", &bob_port);
    let (ok, errors) = sipp_call(&target, "uac_voicemail_hangup.xml", "caller.csv", "102");
    assert!(ok, "{errors}\n{}", ob.log());
    assert_eq!(voicemails(), 2, "{}", ob.log());
    bob.wait_for_log("Successful call", Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        officebox_testkit::wait_until(Duration::from_secs(5), || calls(&ob).contains("no call")),
        "{}",
        calls(&ob)
    );
    assert_eq!(ob.log().matches("phone: voicemail delivered").count(), 2);
    drop(bob);

    // Busy, and alice hangs up during the greeting: no message, so the call was busy.
    let bob = bobs_phone(&target, "uas_busy.xml", &bob_port);
    let (ok, errors) = sipp_call(&target, "uac_call.xml", "caller.csv", "102");
    assert!(ok, "{errors}\n{}", ob.log());
    assert_eq!(voicemails(), 3, "{}", ob.log());
    bob.wait_for_log("Successful call", Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}"));

    // Each call is in the log, newest first, with how it ended: on the command line,
    // as CSV, and on the admin pages.
    let expected =
        "102 busy -|102 voicemail -|102 cancelled -|102 voicemail -|109 failed -|102 answered bob";
    let from_cli = || parsed_csv(&phone_log(&ob, &["--csv"]));
    assert!(
        officebox_testkit::wait_until(Duration::from_secs(5), || from_cli() == expected),
        "{}\n{}",
        from_cli(),
        phone_log(&ob, &[])
    );
    let table = phone_log(&ob, &["--extension", "alice", "--limit", "2"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "a header and two calls: {table}");
    assert!(
        lines[1].contains("101 (Alice Example)") && lines[1].ends_with("busy"),
        "{table}"
    );
    let answered = phone_log(&ob, &[]);
    let answered = answered.lines().find(|l| l.ends_with("answered")).unwrap();
    assert!(answered.contains(" bob "), "{answered}");

    let admin = AdminPages::log_in(&ob, c.int("web.admin_port"));
    let csv = admin.get("/calls.csv");
    assert!(
        csv.starts_with("HTTP/1.1 200") && csv.contains("content-type: text/csv"),
        "{csv}"
    );
    let body = csv.split("\r\n\r\n").nth(1).unwrap_or("");
    assert_eq!(parsed_csv(body), expected);
    let page = admin.get("/calls");
    for (what, n) in [
        ("<td>answered</td>", 1),
        ("<td>busy</td>", 1),
        ("<td>voicemail left</td>", 2),
        ("<td>caller hung up</td>", 1),
        ("<td>failed</td>", 1),
        ("<td>bob</td>", 1),
        ("<td>voicemail</td>", 3),
    ] {
        assert_eq!(page.matches(what).count(), n, "{what} in {page}");
    }
    assert!(
        page.contains("6 calls.") && page.contains("href=\"/calls.csv\""),
        "{page}"
    );
    let busy = admin.get("/calls?disposition=busy&extension=102");
    assert!(
        busy.contains("1 call.")
            && busy.contains("href=\"/calls.csv?extension=102&amp;disposition=busy\""),
        "{busy}"
    );
    assert!(!ob.log().contains("panicked"), "{}", ob.log());
}

#[test]
fn a_call_cut_off_by_kill_9_is_in_the_call_log_as_ended_unknown_after_the_restart() {
    require_program("sipp", "sip-tester");
    require_program("python3", "python3");
    let c = TestConfig::demo().free_ports();
    let target = format!("127.0.0.1:{}", c.int("phone.sip_port"));
    let ob = start(&c);
    // bob has no phone: voicemail answers, and alice talks for 7 s.
    let caller = std::thread::spawn({
        let target = target.clone();
        move || sipp_call(&target, "uac_voicemail_hangup.xml", "caller.csv", "102")
    });
    let log = |ob: &Officebox| parsed_csv(&phone_log(ob, &["--csv"]));
    assert!(
        officebox_testkit::wait_until(Duration::from_secs(5), || log(&ob) == "102 in-progress -"),
        "{}\n{}",
        log(&ob),
        ob.log()
    );
    let dir = ob.kill9().unwrap();
    let ob = Officebox::start_in(bin(), &c.text(), dir).unwrap();
    ob.peer()
        .wait_for_log("phone: serving", READY_TIMEOUT)
        .unwrap();
    assert_eq!(log(&ob), "102 unknown -");
    assert!(phone_log(&ob, &[]).contains("unknown"));
    assert!(ob.log().contains("ended unknown"), "{}", ob.log());
    // alice's hang-up reaches a box that no longer knows the call.
    let _ = caller.join();
}

/// `officebox phone log ARGS`.
fn phone_log(ob: &Officebox, args: &[&str]) -> String {
    let out = Command::new(bin())
        .args(["phone", "log", "--config"])
        .arg(ob.config_path())
        .args(args)
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

/// A call log CSV as Python's csv module reads it: "to disposition answered-by" per
/// call, joined by |.
fn parsed_csv(text: &str) -> String {
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import csv, sys\n\
             rows = list(csv.DictReader(sys.stdin))\n\
             print('|'.join(f\"{r['to']} {r['disposition']} {r['answered by'] or '-'}\" for r in rows), end='')",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// curl logged in to the admin pages as the demo's admin (a cookie jar of its own).
struct AdminPages {
    base: String,
    jar: std::path::PathBuf,
}

impl AdminPages {
    fn log_in(ob: &Officebox, port: i64) -> AdminPages {
        let admin = AdminPages {
            base: format!("http://127.0.0.1:{port}"),
            jar: ob.dir().join("cookies.txt"),
        };
        let login = admin.curl(&[&format!("{}/login", admin.base)]);
        let csrf = login
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("no form token in {login}"))
            .to_string();
        let logged_in = admin.curl(&[
            "-d",
            &format!("csrf={csrf}&user=admin&password=demo-admin"),
            &format!("{}/login", admin.base),
        ]);
        assert!(logged_in.starts_with("HTTP/1.1 303"), "{logged_in}");
        admin
    }

    fn get(&self, path: &str) -> String {
        self.curl(&[&format!("{}{path}", self.base)])
    }

    fn curl(&self, args: &[&str]) -> String {
        let out = Command::new("curl")
            .args(["-s", "-i", "--max-time", "5", "--noproxy", "*", "-b"])
            .arg(&self.jar)
            .arg("-c")
            .arg(&self.jar)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

#[test]
fn a_key_sent_by_sip_info_reaches_the_other_phone() {
    require_program("sipp", "sip-tester");
    let c = TestConfig::demo().free_ports();
    let port = c.int("phone.sip_port");
    let ob = start(&c);
    let target = format!("127.0.0.1:{port}");
    let bob_port = free_udp_port().unwrap().to_string();
    let bob = bobs_phone(&target, "uas_answer_info.xml", &bob_port);
    let (ok, errors) = sipp_call(&target, "uac_call_info.xml", "caller.csv", "102");
    assert!(ok, "{errors}\n{}", ob.log());
    bob.wait_for_log("Successful call", Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}\n{}", ob.log()));
}

#[test]
fn after_a_stall_the_box_drops_what_waited_too_long_and_answers_the_retransmission() {
    let c = TestConfig::demo().free_ports();
    let port = c.int("phone.sip_port");
    let ob = start(&c);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let target = format!("127.0.0.1:{port}");
    let options = format!(
        "OPTIONS sip:office.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bKstall\r\n\
         Max-Forwards: 70\r\nTo: <sip:office.test>\r\nFrom: <sip:101@office.test>;tag=s1\r\n\
         Call-ID: stall-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        sock.local_addr().unwrap().port()
    );
    let send = || sock.send_to(options.as_bytes(), &target).unwrap();
    // officebox stops (SIGSTOP: as if the machine had no CPU for it) while the phone sends
    // its request three times, 500 ms apart (RFC 3261 says T1, doubling; steady here so
    // that several copies wait). 2.6 s in, the phone sends a fourth copy and the box
    // wakes: the first three have waited 1.6 s or more, over the box's one second, and the
    // fourth a moment (the margins are wide so that a loaded machine cannot blur them).
    ob.peer().freeze().unwrap();
    let stopped = std::time::Instant::now();
    let mut sent = 0;
    for _ in 0..3 {
        send();
        sent += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_millis(2600).saturating_sub(stopped.elapsed()));
    send();
    sent += 1;
    ob.peer().thaw().unwrap();
    // Then the phone goes on as a phone does: it retransmits until it hears an answer.
    let mut answers = Vec::new();
    let mut buf = [0u8; 4096];
    let mut last_sent = std::time::Instant::now();
    while stopped.elapsed() < Duration::from_secs(8) && answers.is_empty() {
        if let Ok(n) = sock.recv(&mut buf) {
            answers.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        } else if last_sent.elapsed() >= Duration::from_millis(500) {
            send();
            sent += 1;
            last_sent = std::time::Instant::now();
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    while let Ok(n) = sock.recv(&mut buf) {
        answers.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    // The three copies that waited over a second were dropped unread; the younger ones
    // are answered (a repeat from the replay cache).
    assert!(
        !answers.is_empty() && answers.len() + 3 <= sent,
        "{sent} sent, answers: {answers:?}\n{}",
        ob.log()
    );
    assert!(
        answers.iter().all(|a| a.starts_with("SIP/2.0 200")),
        "{answers:?}"
    );
    assert!(
        ob.log()
            .contains("phone: overloaded; dropping requests that waited too long"),
        "{}",
        ob.log()
    );
}

#[test]
fn a_phone_may_use_its_extension_as_the_user_name() {
    require_program("sipsak", "sipsak");
    let c = TestConfig::demo().free_ports();
    let port = c.int("phone.sip_port");
    let ob = start(&c);
    let register = |user: &str, password: &str| {
        let local = free_udp_port().unwrap();
        Command::new("sipsak")
            .args(["-U", "-i", "-s", &format!("sip:101@127.0.0.1:{port}")])
            .args(["-u", user, "-a", password, "-x", "600"])
            .args(["-l", &local.to_string(), "-H", "127.0.0.1"])
            .output()
            .unwrap()
    };
    for user in ["101", "alice"] {
        let out = register(user, "demo-alice");
        assert!(
            out.status.success(),
            "{user}: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            ob.log()
        );
    }
    assert!(!register("101", "not-alices").status.success());
    // Another user's extension is not a way in.
    assert!(!register("102", "demo-alice").status.success());
}
