//! officebox tried as an attacker and a careless crowd would: password guesses sent all at
//! once, user names given before passwords, bursts of right logins, hundreds of idle
//! connections from one address, extensions probed for, and login times compared.
//! The clients are tests/hardening/clients.py; each "client" has a loopback source
//! address of its own (127.0.0.x), which the box tells apart as it would two machines.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use officebox_testkit::{Officebox, PYTHON, READY_TIMEOUT, TestConfig, require_program};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_officebox"))
}

fn clients_py() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hardening/clients.py")
}

/// Tests that load the machine hold this for reading; the one that measures login times
/// holds it for writing, so that it runs alone.
static MACHINE: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// The demo on free ports, every service up.
fn start() -> (Officebox, TestConfig) {
    require_program("python3", "python3");
    let c = TestConfig::demo().free_ports();
    let ob = Officebox::start(bin(), &c.text()).expect("officebox starts");
    for service in [
        "pop3: serving",
        "smtp: serving",
        "phone: serving",
        "dns: serving",
    ] {
        ob.peer()
            .wait_for_log(service, READY_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}\n{}", ob.log()));
    }
    (ob, c)
}

/// What clients.py said: "key value..." lines.
#[derive(Debug)]
struct Said(HashMap<String, Vec<String>>);

impl Said {
    fn parse(text: &str) -> Said {
        Said(
            text.lines()
                .filter_map(|l| {
                    let mut words = l.split_whitespace().map(str::to_string);
                    Some((words.next()?, words.collect()))
                })
                .collect(),
        )
    }

    /// The first value under `key` ("" when absent).
    fn get(&self, key: &str) -> &str {
        self.0
            .get(key)
            .and_then(|v| v.first())
            .map_or("", String::as_str)
    }

    /// A count (0 when absent).
    fn count(&self, key: &str) -> u64 {
        self.get(key).parse().unwrap_or(0)
    }

    fn numbers(&self, key: &str) -> Vec<f64> {
        self.0
            .get(key)
            .map(|v| v.iter().filter_map(|x| x.parse().ok()).collect())
            .unwrap_or_default()
    }
}

/// Runs clients.py with `args`; what it said.
fn clients(args: &[&str]) -> Said {
    let out = Command::new(PYTHON)
        .arg(clients_py())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "clients.py {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Said::parse(&String::from_utf8_lossy(&out.stdout))
}

fn port(c: &TestConfig, key: &str) -> String {
    c.int(key).to_string()
}

#[test]
fn thirty_guesses_at_once_are_limited_as_if_sent_one_after_another() {
    let _shared = MACHINE
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (ob, c) = start();
    // POP3, SMTP AUTH and the admin login, each from an address of its own; 30 wrong
    // passwords released at one instant, then the right one.
    let cases = [
        (
            "pop3",
            "mail.pop3s_port",
            "127.0.0.2",
            "alice",
            "demo-alice",
        ),
        (
            "smtp",
            "mail.smtps_port",
            "127.0.0.3",
            "alice",
            "demo-alice",
        ),
        (
            "admin",
            "web.admin_port",
            "127.0.0.4",
            "admin",
            "demo-admin",
        ),
    ];
    let ports: Vec<String> = cases.iter().map(|case| port(&c, case.1)).collect();
    let said = at_once(
        cases
            .iter()
            .zip(&ports)
            .map(|(&(proto, _, source, user, right), port)| {
                strings(&[
                    "guesses",
                    "--proto",
                    proto,
                    "--port",
                    port,
                    "--source",
                    source,
                    "--count",
                    "30",
                    "--user",
                    user,
                    "--password",
                    "guess",
                    "--right",
                    right,
                ])
            })
            .collect(),
    );
    for (&(proto, ..), r) in cases.iter().zip(said) {
        assert!(
            r.count("wrong") <= 5 && r.count("wrong") + r.count("limited") == 30,
            "{proto}: 30 guesses at once: at most 5 may be checked, the rest refused: {r:?}\n{}",
            ob.log()
        );
        assert_eq!(
            r.get("after"),
            "limited",
            "{proto}: after the guesses, even the right password waits out the lockout: {r:?}"
        );
    }

    // AUTH LOGIN asks for the user name first: twelve connections give theirs, then the
    // passwords arrive. The limit is decided when each password does.
    let r = clients(&[
        "staged",
        "--port",
        &port(&c, "mail.smtps_port"),
        "--source",
        "127.0.0.5",
        "--count",
        "12",
        "--user",
        "alice",
        "--password",
        "guess",
        "--right",
        "demo-alice",
    ]);
    assert_eq!(
        (
            r.count("wrong"),
            r.count("limited"),
            r.count("last-limited")
        ),
        (5, 6, 1),
        "staged AUTH LOGIN: 5 checked, then refused, the right password too: {r:?}"
    );
}

/// Runs clients.py with each of `runs` at once (each in a thread); what each said, in order.
fn at_once(runs: Vec<Vec<String>>) -> Vec<Said> {
    let threads: Vec<_> = runs
        .into_iter()
        .map(|args| {
            std::thread::spawn(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                clients(&args)
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_string()).collect()
}

/// officebox's resident memory, in MiB.
fn rss_mib(ob: &Officebox) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", ob.peer().pid())).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb / 1024.0
}

#[test]
fn bursts_of_right_logins_are_all_served_and_the_memory_comes_back() {
    let _shared = MACHINE
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (ob, c) = start();
    let idle = rss_mib(&ob);
    for round in 0..3 {
        // 32 POP3 and 32 SMTP AUTH logins with the right password, all at once.
        let protos = [("pop3", "mail.pop3s_port"), ("smtp", "mail.smtps_port")];
        let said = at_once(
            protos
                .iter()
                .map(|&(proto, key)| {
                    strings(&[
                        "guesses",
                        "--proto",
                        proto,
                        "--port",
                        &port(&c, key),
                        "--source",
                        "127.0.0.6",
                        "--count",
                        "32",
                        "--user",
                        "alice",
                        "--password",
                        "demo-alice",
                    ])
                })
                .collect(),
        );
        for (&(proto, _), r) in protos.iter().zip(said) {
            assert_eq!(
                r.count("right"),
                32,
                "round {round}: every {proto} login is served: {r:?}\n{}",
                ob.log()
            );
        }
    }
    std::thread::sleep(Duration::from_secs(5));
    let after = rss_mib(&ob);
    eprintln!(
        "RSS idle {idle:.1} MiB, five seconds after three bursts of 64 logins {after:.1} MiB"
    );
    assert!(
        after < 64.0,
        "the memory of the password checks comes back: {after:.1} MiB (idle {idle:.1})"
    );
}

/// clients.py hold: N idle connections from `source`, kept open while the returned child
/// lives; and how many the box kept.
fn hold(port: &str, source: &str, count: usize) -> (std::process::Child, u64) {
    let mut child = Command::new(PYTHON)
        .arg(clients_py())
        .args(["hold", "--port", port, "--source", source, "--count"])
        .arg(count.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Two lines ("opened N", "kept N"), then it waits for its stdin to close.
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut text = String::new();
    for _ in 0..2 {
        out.read_line(&mut text).unwrap();
    }
    (child, Said::parse(&text).count("kept"))
}

fn release(mut child: std::process::Child) {
    drop(child.stdin.take());
    let _ = child.wait();
}

#[test]
fn one_address_cannot_take_every_connection() {
    let _shared = MACHINE
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (ob, c) = start();
    // 300 idle connections to SMTP from one address: it keeps its share, no more.
    let smtp = port(&c, "mail.smtp_port");
    let (flood, kept) = hold(&smtp, "127.0.0.7", 300);
    assert!(kept <= 32, "one address holds {kept} SMTP sessions");
    // Everyone else is still served, at once: SMTP and POP3 share the mail sessions.
    for (proto, key) in [("smtp", "mail.smtp_port"), ("pop3", "mail.pop3_port")] {
        let r = clients(&[
            "session",
            "--proto",
            proto,
            "--port",
            &port(&c, key),
            "--source",
            "127.0.0.8",
            "--timeout",
            "5",
        ]);
        assert_eq!(r.get("ok"), "True", "{proto}: {r:?}");
        assert!(
            r.numbers("seconds")[0] < 2.0,
            "{proto} answered late: {r:?}"
        );
    }
    release(flood);

    // Every other TCP service caps one address too.
    let services = [
        ("submission", port(&c, "mail.submission_port"), 32),
        ("smtps", port(&c, "mail.smtps_port"), 32),
        ("pop3", port(&c, "mail.pop3_port"), 32),
        ("pop3s", port(&c, "mail.pop3s_port"), 32),
        ("imap", port(&c, "mail.imap_port"), 32),
        ("imaps", port(&c, "mail.imaps_port"), 32),
        ("sip", port(&c, "phone.sip_port"), 32),
        ("admin pages", port(&c, "web.admin_port"), 32),
        ("sites", port(&c, "web.site_port"), 32),
        ("dns", port(&c, "dns.port"), 16),
    ];
    let held: Vec<_> = services
        .iter()
        .enumerate()
        .map(|(i, (name, port, cap))| {
            let (port, name, cap) = (port.clone(), *name, *cap);
            std::thread::spawn(move || {
                let (child, kept) = hold(&port, &format!("127.0.1.{}", i + 1), 60);
                (name, port, cap, child, kept)
            })
        })
        .collect();
    for h in held {
        let (name, port, cap, child, kept) = h.join().unwrap();
        assert!(
            kept <= cap,
            "{name}: one address holds {kept} connections (cap {cap})"
        );
        assert!(
            kept >= cap / 2,
            "{name}: only {kept} connections kept at all"
        );
        // Another address still gets in.
        let other = std::net::TcpStream::connect_timeout(
            &format!("127.0.0.1:{port}").parse().unwrap(),
            Duration::from_secs(2),
        );
        assert!(other.is_ok(), "{name}: another client cannot connect");
        release(child);
    }
    drop(ob);
}

/// A SIP REGISTER for `user`, with `auth` as its Authorization header if any; the status
/// line of the answer.
fn register(sip_port: u16, user: &str, auth: Option<&str>) -> String {
    let socket = std::net::UdpSocket::bind("127.0.0.9:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let local = socket.local_addr().unwrap();
    let branch: u64 = rand_u64();
    let mut msg = format!(
        "REGISTER sip:office.test SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK{branch:x};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{user}@office.test>;tag={branch:x}\r\n\
         To: <sip:{user}@office.test>\r\n\
         Call-ID: enum-{branch:x}\r\n\
         CSeq: 1 REGISTER\r\n\
         Contact: <sip:{user}@{local}>\r\n\
         Expires: 60\r\n"
    );
    if let Some(a) = auth {
        msg.push_str(&format!("Authorization: {a}\r\n"));
    }
    msg.push_str("Content-Length: 0\r\n\r\n");
    socket
        .send_to(msg.as_bytes(), ("127.0.0.1", sip_port))
        .unwrap();
    let mut buf = [0u8; 4096];
    loop {
        let (n, _) = socket.recv_from(&mut buf).unwrap();
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let status = text.lines().next().unwrap_or_default().to_string();
        if !status.starts_with("SIP/2.0 1") {
            return status;
        }
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish()
}

#[test]
fn a_stranger_cannot_tell_which_extensions_and_logins_exist() {
    let _alone = MACHINE
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (ob, c) = start();
    let sip = u16::try_from(c.int("phone.sip_port")).unwrap();
    // An extension that exists and one that does not: the same challenge, unanswered or
    // answered wrongly.
    let wrong = "Digest username=\"USER\", realm=\"office.test\", nonce=\"00\", uri=\"sip:office.test\", response=\"00000000000000000000000000000000\", algorithm=MD5";
    for user in ["101", "alice", "999", "nobody"] {
        assert_eq!(
            register(sip, user, None),
            "SIP/2.0 401 Unauthorized",
            "{user}: challenged like any other\n{}",
            ob.log()
        );
        assert_eq!(
            register(sip, user, Some(&wrong.replace("USER", user))),
            "SIP/2.0 401 Unauthorized",
            "{user}: a wrong answer is refused the same way"
        );
    }

    // POP3: a wrong password for alice takes as long as any password for nobody. The two
    // alternate. Load only ever adds delay (single times scatter by ±35 ms on a busy
    // two-core CI machine), so each kind's fastest answer is what its own work costs, and
    // those are compared: checking a real password costs tens of milliseconds (argon2id),
    // which a box that skipped the check for unknown users would show.
    let r = clients(&[
        "timing",
        "--port",
        &port(&c, "mail.pop3s_port"),
        "--source",
        "127.0.2.1",
        "--count",
        "12",
        "--user",
        "alice",
        "--password",
        "guess",
    ]);
    let (real, nobody) = (r.numbers("real"), r.numbers("nobody"));
    let fastest = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let gap = fastest(&real) - fastest(&nobody);
    eprintln!(
        "POP3 wrong password, alice minus nobody: fastest {gap:.1} ms ({real:.1?} against {nobody:.1?})"
    );
    assert!(
        gap.abs() < 10.0,
        "a wrong password for a real user takes {gap:.1} ms longer than for no such user"
    );
}

#[test]
fn the_boxs_certificate_is_named_after_it_and_valid_for_about_a_year() {
    require_program("openssl", "openssl");
    let _shared = MACHINE
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (ob, c) = start();
    let shown = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{} </dev/null 2>/dev/null | openssl x509 -noout -subject -startdate -enddate -dateopt iso_8601",
            c.int("mail.smtps_port")
        ))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&shown.stdout).into_owned();
    assert!(
        text.contains("CN = officebox.office.test") && text.contains("O = officebox"),
        "{text}\n{}",
        ob.log()
    );
    let year = |key: &str| -> i32 {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|d| d.get(..4))
            .and_then(|y| y.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {text}"))
    };
    let (from, until) = (year("notBefore="), year("notAfter="));
    assert!(
        (2026..2100).contains(&from) && (until - from) <= 2,
        "valid from {from} until {until}: {text}"
    );
}
