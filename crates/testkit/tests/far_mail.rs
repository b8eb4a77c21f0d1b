//! The far side of outbound mail on its own: TestDns (dnsmasq) answers the MX and A
//! records that lead to FarPostfix (a private postfix), which takes mail with and
//! without STARTTLS into a Maildir per domain, refuses what it was told to refuse, and
//! can be stopped and started again. Everything runs in one test namespace, on
//! 127.0.0.2 (postfix) and 127.0.0.3 (DNS) there. Needs root, iproute2, postfix,
//! dnsmasq-base, bind9-dnsutils (dig) and swaks with libnet-ssleay-perl (for --tls).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Output;
use std::time::Duration;

use officebox_testkit::{
    DnsRecord, FarPostfix, Netns, REJECT_LOCAL_PART, TEMPFAIL_LOCAL_PART, TestDns, require_program,
    require_root,
};

const DELIVERY: Duration = Duration::from_secs(30);
const FAR: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

fn preconditions() {
    require_root();
    require_program("ip", "iproute2");
    require_program("postfix", "postfix");
    require_program("dnsmasq", "dnsmasq-base");
    require_program("dig", "bind9-dnsutils");
    require_program("swaks", "swaks");
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `dig @127.0.0.3 ARGS` in `ns`: (status line word, +short answer).
fn dig(ns: &Netns, name: &str, kind: &str) -> (String, String) {
    let args = ["+time=2", "+tries=1", "@127.0.0.3", name, kind];
    let full = text(&ns.run("dig", args).unwrap());
    let status = full
        .split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or_default()
        .to_owned();
    let short = text(&ns.run("dig", ["+short"].iter().chain(args.iter())).unwrap());
    (status, short.trim().to_owned())
}

/// swaks from inside `ns` to 127.0.0.2:25; (exited 0, transcript).
fn swaks(ns: &Netns, to: &str, subject: &str, extra: &[&str]) -> (bool, String) {
    swaks_to(ns, "127.0.0.2", to, subject, extra)
}

/// swaks from inside `ns` to `server` port 25; (exited 0, transcript).
fn swaks_to(ns: &Netns, server: &str, to: &str, subject: &str, extra: &[&str]) -> (bool, String) {
    let out = ns
        .command("swaks")
        .args(["--server", server, "--port", "25", "--timeout", "10"])
        .args([
            "--helo",
            "client.office.test",
            "--from",
            "alice@office.test",
        ])
        .args(["--to", to, "--header", &format!("Subject: {subject}")])
        .args(["--body", &format!("body of {subject}")])
        .args(extra)
        .output()
        .unwrap();
    (out.status.success(), text(&out))
}

fn has(message: &[u8], needle: &str) -> bool {
    String::from_utf8_lossy(message).contains(needle)
}

#[test]
fn far_postfix_and_test_dns() {
    preconditions();
    let ns = Netns::new("farmail").unwrap();
    let dns = TestDns::start(
        &ns,
        SocketAddr::from(([127, 0, 0, 3], 53)),
        &[
            DnsRecord::mx("far.test", 10, "mx.far.test"),
            DnsRecord::a("mx.far.test", Ipv4Addr::new(127, 0, 0, 2)),
            DnsRecord::txt("far.test", "v=spf1 -all"),
        ],
    )
    .unwrap();
    let mut far = FarPostfix::start(&ns, FAR, &["far.test", "other.test"]).unwrap();
    assert!(far.is_running());
    assert_eq!(far.hostname(), "mx.far.test");
    assert!(far.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));

    // DNS: the records, NODATA for a name without that type, NXDOMAIN for the rest.
    assert_eq!(
        dig(&ns, "far.test", "MX"),
        ("NOERROR".into(), "10 mx.far.test.".into())
    );
    assert_eq!(
        dig(&ns, "mx.far.test", "A"),
        ("NOERROR".into(), "127.0.0.2".into())
    );
    assert_eq!(
        dig(&ns, "far.test", "TXT"),
        ("NOERROR".into(), "\"v=spf1 -all\"".into())
    );
    assert_eq!(
        dig(&ns, "mx.far.test", "AAAA"),
        ("NOERROR".into(), "".into())
    );
    assert_eq!(dig(&ns, "nope.test", "MX").0, "NXDOMAIN");
    assert_eq!(dig(&ns, "example.com", "A").0, "NXDOMAIN");
    assert!(dns.log().contains("query[MX] far.test"), "{}", dns.log());

    // Plain SMTP, then STARTTLS; each recipient gets its own messages.
    let (ok, log) = swaks(&ns, "bob@far.test", "plain one", &[]);
    assert!(ok, "{log}");
    let mail = far.wait_for_messages("bob@far.test", 1, DELIVERY).unwrap();
    assert!(
        has(&mail[0], "Subject: plain one"),
        "{:?}",
        String::from_utf8_lossy(&mail[0])
    );
    assert!(has(&mail[0], "Return-Path: <alice@office.test>"));
    assert!(has(&mail[0], "Delivered-To: bob@far.test"));
    assert!(!has(&mail[0], "using TLS"));

    let (ok, log) = swaks(&ns, "Bob@Far.Test", "over tls", &["--tls"]);
    assert!(ok, "{log}");
    assert!(
        log.contains("STARTTLS") && log.contains("TLS started"),
        "{log}"
    );
    let mail = far.wait_for_messages("bob@far.test", 2, DELIVERY).unwrap();
    assert!(has(&mail[1], "Subject: over tls"));
    assert!(
        has(&mail[1], "using TLS"),
        "{:?}",
        String::from_utf8_lossy(&mail[1])
    );
    assert!(
        far.log().contains("TLS connection established"),
        "{}",
        far.log()
    );

    let (ok, log) = swaks(&ns, "carol@other.test", "other domain", &[]);
    assert!(ok, "{log}");
    far.wait_for_messages("carol@other.test", 1, DELIVERY)
        .unwrap();
    assert!(far.messages("carol@far.test").is_empty());
    assert_eq!(far.messages("bob@far.test").len(), 2);

    // Refusals: permanent, temporary, relaying.
    let (ok, log) = swaks(&ns, &format!("{REJECT_LOCAL_PART}@far.test"), "x", &[]);
    assert!(!ok && log.contains("<** 550 5.1.1"), "{log}");
    let (ok, log) = swaks(&ns, &format!("{TEMPFAIL_LOCAL_PART}@other.test"), "x", &[]);
    assert!(!ok && log.contains("<** 450 4.2.1"), "{log}");
    let (ok, log) = swaks(&ns, "someone@elsewhere.test", "x", &[]);
    assert!(!ok && log.contains("<** 554 5.7.1"), "{log}");

    // A reply set at run time (postfix restarts), then taken back.
    far.set_reply("dave@far.test", Some("452 4.2.2 mailbox full"))
        .unwrap();
    let (ok, log) = swaks(&ns, "dave@far.test", "full", &[]);
    assert!(
        !ok && log
            .contains("<** 452 4.2.2 <dave@far.test>: Recipient address rejected: mailbox full"),
        "{log}"
    );
    far.set_reply("dave@far.test", None).unwrap();
    let (ok, log) = swaks(&ns, "dave@far.test", "room again", &[]);
    assert!(ok, "{log}");
    far.wait_for_messages("dave@far.test", 1, DELIVERY).unwrap();

    // Stopped: nothing listens; started again: mail flows as before.
    let master = far.master_pid().unwrap();
    far.stop().unwrap();
    assert!(!far.is_running());
    assert!(!ns.pids().unwrap().contains(&master));
    let (ok, log) = swaks(&ns, "bob@far.test", "while stopped", &[]);
    assert!(!ok && log.contains("Connection refused"), "{log}");
    far.start_again().unwrap();
    assert!(far.is_running());
    assert_ne!(far.master_pid(), Some(master));
    let (ok, log) = swaks(&ns, "bob@far.test", "after restart", &["--tls"]);
    assert!(ok, "{log}");
    let mail = far.wait_for_messages("bob@far.test", 3, DELIVERY).unwrap();
    assert!(has(&mail[2], "Subject: after restart"));

    // The log says nothing went anywhere but the Maildirs.
    let maillog = far.log();
    assert!(
        !maillog.contains("relay=smtp") && !maillog.contains("relay=lmtp"),
        "{maillog}"
    );
    assert!(
        !maillog.contains("fatal:") && !maillog.contains("panic:"),
        "{maillog}"
    );

    // Dropping stops it: the namespace holds no process of it afterwards.
    let master = far.master_pid().unwrap();
    drop(far);
    let left: Vec<u32> = ns.pids().unwrap();
    assert!(!left.contains(&master), "master {master} still in {left:?}");
    drop(dns);
    assert!(ns.pids().unwrap().is_empty(), "{:?}", ns.pids());
}

#[test]
fn start_errors_are_readable_and_instances_coexist() {
    preconditions();
    let ns = Netns::new("farmail2").unwrap();
    for domains in [&[][..], &["bad domain"][..], &["far.test,x"][..]] {
        let err = FarPostfix::start(&ns, FAR, domains).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    }
    let bad_txt = [DnsRecord::txt("far.test", "a\"b")];
    let listen = SocketAddr::from(([127, 0, 0, 3], 53));
    assert!(TestDns::start(&ns, listen, &bad_txt).is_err());

    // 10.231.250.1 is on no interface in `ns`: the master cannot bind it.
    let err = FarPostfix::start(&ns, IpAddr::from([10, 231, 250, 1]), &["far.test"])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("fatal: bind 10.231.250.1 port 25: Cannot assign requested address"),
        "{err}"
    );

    // Two instances in one namespace, e.g. a primary and a backup MX.
    let primary = FarPostfix::start(&ns, FAR, &["far.test"]).unwrap();
    let backup = FarPostfix::start(&ns, IpAddr::from([127, 0, 0, 4]), &["far.test"]).unwrap();
    let (ok, log) = swaks_to(&ns, "127.0.0.4", "bob@far.test", "to the backup", &[]);
    assert!(ok, "{log}");
    backup
        .wait_for_messages("bob@far.test", 1, DELIVERY)
        .unwrap();
    assert!(primary.messages("bob@far.test").is_empty());
    assert!(primary.is_running() && backup.is_running());

    let v6 = FarPostfix::start(&ns, "::1".parse().unwrap(), &["six.test"]).unwrap();
    let (ok, log) = swaks_to(&ns, "::1", "bob@six.test", "over v6", &["--tls"]);
    assert!(ok, "{log}");
    v6.wait_for_messages("bob@six.test", 1, DELIVERY).unwrap();
}
