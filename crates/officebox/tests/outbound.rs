//! Outbound mail end to end. In a test namespace, dnsmasq (TestDns, 127.0.0.3) serves
//! `far.test MX 10 mx.far.test` and `mx.far.test A 127.0.0.2`, where a private postfix
//! (FarPostfix) plays the other domain's mail server on port 25. officebox runs in the same
//! namespace and finds it the way it would on the Internet: its own DNS service forwards
//! to the test DNS, the queue asks its own DNS for the MX.
//!
//! Also: kill -9 in the middle of 1,000 incoming messages loses none that got a 250.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use officebox_testkit::{
    AdminPages, DnsRecord, FarPostfix, Netns, Officebox, READY_TIMEOUT, REJECT_LOCAL_PART,
    TestConfig, TestDns, require_program, require_root, wait_until,
};

mod common;

const FAR: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const DELIVERY: Duration = Duration::from_secs(30);

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_officebox"))
}

/// The far side: DNS and postfix in `ns`, and officebox's config pointing its DNS there.
struct World {
    // Dropped in reverse order: officebox, postfix, DNS, then the namespace.
    ns: Netns,
    _dns: TestDns,
    far: FarPostfix,
    config: TestConfig,
}

fn world(tag: &str) -> World {
    require_root();
    require_program("postfix", "postfix");
    require_program("dnsmasq", "dnsmasq-base");
    require_program("swaks", "swaks");
    require_program("python3", "python3");
    let ns = Netns::new(tag).unwrap();
    let dns = TestDns::start(
        &ns,
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)), 53),
        &[
            DnsRecord::mx("far.test", 10, "mx.far.test"),
            DnsRecord::a("mx.far.test", FAR),
        ],
    )
    .unwrap();
    let far = FarPostfix::start(&ns, FAR, &["far.test"]).unwrap();
    let config = TestConfig::demo()
        .free_ports()
        .set("dns.use_upstream", true)
        .set("dns.primary", "127.0.0.3:53")
        .append("[mail.queue]\nfirst_retry = \"1s\"\nmax_retry_interval = \"2s\"\n");
    World {
        ns,
        _dns: dns,
        far,
        config,
    }
}

fn start(w: &World) -> Officebox {
    let ob = Officebox::start_in_netns(bin(), &w.config.text(), &w.ns).unwrap();
    ob.peer()
        .wait_for_log("smtp: serving", READY_TIMEOUT)
        .unwrap();
    ob
}

/// Sends with Python's smtplib inside the namespace: (from, [to], message, mail and
/// rcpt options). Returns the per-recipient refusals smtplib reports.
fn send(w: &World, from: &str, to: &[&str], message: &str, mail_opts: &[&str], rcpt_opts: &[&str]) {
    let port = w.config.int("mail.smtp_port");
    let script = format!(
        "import smtplib, sys\n\
         s = smtplib.SMTP('127.0.0.1', {port})\n\
         r = s.sendmail({from:?}, {to:?}, {message:?}.encode('utf-8'), mail_options={mail_opts:?}, rcpt_options={rcpt_opts:?})\n\
         s.quit()\n\
         print(r)\n"
    );
    let out =
        w.ns.command("python3")
            .args(["-c", &script])
            .output()
            .unwrap();
    assert!(
        out.status.success(),
        "smtplib: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
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

fn queue_empty(ob: &Officebox) -> bool {
    officebox(ob, &["mail", "queue"]).contains("the queue is empty")
}

fn local_mail(ob: &Officebox, login: &str) -> Vec<String> {
    let dir = ob.dir().join("demo-data/mail").join(login).join("new");
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                .collect()
        })
        .unwrap_or_default()
}

fn text(m: &[u8]) -> String {
    String::from_utf8_lossy(m).into_owned()
}

#[test]
fn mail_for_another_domain_reaches_its_mx_over_starttls_intact_and_once() {
    let w = world("out-tls");
    let ob = start(&w);
    let message = "From: Alice <alice@office.test>\r\nTo: bob@far.test, carol@far.test\r\n\
                   Subject: quarterly numbers\r\n\r\nHere they are.\r\n.a line with a dot\r\n\
                   caf\u{e9} au lait\r\n";
    send(
        &w,
        "alice@office.test",
        &["bob@far.test", "carol@far.test"],
        message,
        &[],
        &[],
    );
    for rcpt in ["bob@far.test", "carol@far.test"] {
        let got = w
            .far
            .wait_for_messages(rcpt, 1, DELIVERY)
            .unwrap_or_else(|e| {
                panic!("{e}\n{}\n{}", ob.log(), officebox(&ob, &["mail", "queue"]))
            });
        let m = text(&got[0]);
        assert!(m.contains("Return-Path: <alice@office.test>"), "{m}");
        assert!(m.contains("using TLS"), "STARTTLS to the far side: {m}");
        assert!(
            m.contains("by officebox.office.test (officebox) with ESMTP"),
            "{m}"
        );
        assert!(
            m.contains("\nHere they are.\n.a line with a dot\ncaf\u{e9} au lait\n")
                || m.contains("\r\nHere they are.\r\n.a line with a dot\r\ncaf\u{e9} au lait\r\n"),
            "the body arrives intact: {m:?}"
        );
    }
    assert!(
        wait_until(DELIVERY, || queue_empty(&ob)),
        "{}",
        officebox(&ob, &["mail", "queue"])
    );
    assert!(ob.log().contains("smtp out: delivered"));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(w.far.messages("bob@far.test").len(), 1, "exactly once");
    // One connection carried both recipients.
    assert_eq!(
        w.far
            .log()
            .matches("TLS connection established from")
            .count(),
        1,
        "{}",
        w.far.log()
    );
}

#[test]
fn a_stopped_far_side_is_retried_and_a_restart_or_kill_9_sends_nothing_twice() {
    let mut w = world("out-retry");
    w.far.stop().unwrap();
    let ob = start(&w);
    for i in 0..20 {
        send(
            &w,
            "alice@office.test",
            &["bob@far.test"],
            &format!("Subject: waiting {i}\r\n\r\nmessage {i}\r\n"),
            &[],
            &[],
        );
    }
    assert!(
        wait_until(DELIVERY, || officebox(&ob, &["mail", "queue"])
            .contains("Connection refused")),
        "{}",
        officebox(&ob, &["mail", "queue"])
    );
    // killed while everything waits; the far side comes back; the restart resumes.
    let dir = ob.kill9().unwrap();
    w.far.start_again().unwrap();
    let ob = Officebox::restart_in_netns(bin(), &w.config.text(), &w.ns, dir).unwrap();
    officebox(&ob, &["mail", "flush"]);
    let got = w
        .far
        .wait_for_messages("bob@far.test", 20, DELIVERY)
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", ob.log(), officebox(&ob, &["mail", "queue"])));
    assert!(wait_until(DELIVERY, || queue_empty(&ob)));
    // Restarted again (cleanly this time) with an empty queue: nothing more is sent.
    let (_, _, dir) = ob.stop_with("TERM", Duration::from_secs(10)).unwrap();
    let ob = Officebox::restart_in_netns(bin(), &w.config.text(), &w.ns, dir).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let mut subjects: Vec<String> = w
        .far
        .messages("bob@far.test")
        .iter()
        .filter_map(|m| {
            text(m)
                .lines()
                .find(|l| l.starts_with("Subject:"))
                .map(str::to_string)
        })
        .collect();
    subjects.sort();
    subjects.dedup();
    assert_eq!(
        (got.len(), subjects.len()),
        (20, 20),
        "each message exactly once"
    );
    assert_eq!(w.far.messages("bob@far.test").len(), 20);
    drop(ob);
}

#[test]
fn refusals_bounce_to_the_sender_with_a_delivery_status_report_and_never_to_the_null_sender() {
    let w = world("out-bounce");
    let ob = start(&w);
    let reject = format!("{REJECT_LOCAL_PART}@far.test");
    send(
        &w,
        "alice@office.test",
        &[&reject, "bob@far.test"],
        "Subject: to two\r\nMessage-ID: <two@office.test>\r\n\r\nsecret body\r\n",
        &["RET=HDRS", "ENVID=QQ314159"],
        &["NOTIFY=FAILURE,DELAY"],
    );
    w.far
        .wait_for_messages("bob@far.test", 1, DELIVERY)
        .unwrap();
    assert!(
        wait_until(DELIVERY, || !local_mail(&ob, "alice").is_empty()),
        "{}",
        ob.log()
    );
    let bounce = &local_mail(&ob, "alice")[0];
    for want in [
        "From: Mail Delivery System <MAILER-DAEMON@officebox.office.test>",
        "Auto-Submitted: auto-replied",
        "Content-Type: multipart/report; report-type=delivery-status",
        "Content-Type: message/delivery-status",
        "Original-Envelope-Id: QQ314159",
        &format!("Final-Recipient: rfc822; {reject}"),
        "Action: failed",
        "Status: 5.1.1",
        "Remote-MTA: dns; mx.far.test",
        "Diagnostic-Code: smtp; 550 5.1.1",
        "Content-Type: text/rfc822-headers",
        "Subject: to two",
    ] {
        assert!(bounce.contains(want), "missing {want:?} in\n{bounce}");
    }
    assert!(!bounce.contains("secret body"), "RET=HDRS: headers only");
    assert!(!bounce.contains("Final-Recipient: rfc822; bob@far.test"));
    assert!(wait_until(DELIVERY, || queue_empty(&ob)));

    // A bounce (null sender) that fails makes no bounce of its own; NOTIFY=NEVER none.
    send(
        &w,
        "",
        &[&reject],
        "Subject: a notice\r\n\r\nx\r\n",
        &[],
        &[],
    );
    send(
        &w,
        "bob@office.test",
        &[&reject],
        "Subject: never tell\r\n\r\nx\r\n",
        &[],
        &["NOTIFY=NEVER"],
    );
    assert!(
        wait_until(DELIVERY, || queue_empty(&ob)),
        "{}",
        officebox(&ob, &["mail", "queue"])
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(local_mail(&ob, "alice").len(), 1);
    assert!(local_mail(&ob, "bob").is_empty());
    assert!(local_mail(&ob, "admin").is_empty());

    // NOTIFY=SUCCESS: a mailbox here reports delivery itself; a server that speaks DSN
    // (postfix) is given the request and reports from there, so no notice from us.
    send(
        &w,
        "bob@office.test",
        &["admin@office.test", "carol@far.test"],
        "Subject: did it arrive\r\n\r\nx\r\n",
        &["ENVID=ASK1"],
        &["NOTIFY=SUCCESS,FAILURE"],
    );
    w.far
        .wait_for_messages("carol@far.test", 1, DELIVERY)
        .unwrap();
    assert!(wait_until(DELIVERY, || queue_empty(&ob)));
    std::thread::sleep(Duration::from_secs(2));
    let notices = local_mail(&ob, "bob");
    assert_eq!(notices.len(), 1, "{notices:#?}");
    for want in [
        "Subject: Successful Mail Delivery Report",
        "Final-Recipient: rfc822; admin@office.test",
        "Action: delivered",
        "Status: 2.0.0",
        "Original-Envelope-Id: ASK1",
    ] {
        assert!(
            notices[0].contains(want),
            "missing {want:?} in\n{}",
            notices[0]
        );
    }
    // postfix got NOTIFY=SUCCESS and answered it with its own notice (which has nowhere
    // to go in this test world).
    assert!(
        wait_until(DELIVERY, || w
            .far
            .log()
            .contains("sender delivery status notification")),
        "{}",
        w.far.log_tail(20)
    );
}

#[test]
fn a_domain_that_does_not_exist_bounces_at_once() {
    let w = world("out-nx");
    let ob = start(&w);
    send(
        &w,
        "alice@office.test",
        &["x@no-such-domain.test"],
        "Subject: lost\r\n\r\nx\r\n",
        &[],
        &[],
    );
    assert!(
        wait_until(DELIVERY, || !local_mail(&ob, "alice").is_empty()),
        "{}\n{}",
        ob.log(),
        officebox(&ob, &["mail", "queue"])
    );
    let bounce = &local_mail(&ob, "alice")[0];
    assert!(bounce.contains("Status: 5.1.2"), "{bounce}");
    assert!(bounce.contains("no such domain"), "{bounce}");
}

#[test]
fn an_alias_that_names_itself_keeps_the_local_copy_and_forwards_one() {
    let mut w = world("out-alias");
    let members: toml_edit::Array = ["bob", "bob@far.test"].into_iter().collect();
    w.config = w.config.clone().set("mail.aliases.bob", members);
    let ob = start(&w);
    // From the Internet (well, from outside: anyone may write to a local alias).
    send(
        &w,
        "friend@elsewhere.test",
        &["bob@office.test"],
        "Subject: for bob twice\r\n\r\nhello\r\n",
        &[],
        &[],
    );
    let far = w
        .far
        .wait_for_messages("bob@far.test", 1, DELIVERY)
        .unwrap();
    assert!(text(&far[0]).contains("Subject: for bob twice"));
    assert!(text(&far[0]).contains("Return-Path: <friend@elsewhere.test>"));
    let here = local_mail(&ob, "bob");
    assert_eq!(here.len(), 1);
    assert!(here[0].contains("Subject: for bob twice"));
}

/// A voicemail is delivered like a mail to its user: bob's alias keeps his copy (the one
/// his phone menu plays) and forwards one, which reaches the far side's postfix.
#[test]
fn a_voicemail_to_an_aliased_user_keeps_the_local_copy_and_forwards_one() {
    require_program("sipp", "sip-tester");
    let mut w = world("out-vm-alias");
    let members: toml_edit::Array = ["bob", "bob@far.test"].into_iter().collect();
    w.config = w.config.clone().set("mail.aliases.bob", members);
    let ob = start(&w);
    ob.peer()
        .wait_for_log("phone: serving", READY_TIMEOUT)
        .unwrap();
    let sip = format!("127.0.0.1:{}", w.config.int("phone.sip_port"));
    let (ok, errors) = common::sipp_call_in(
        w.ns.command("sipp"),
        &sip,
        "uac_voicemail_hangup.xml",
        "caller.csv",
        "102",
        &[],
        "30s",
    );
    assert!(ok, "{errors}\n{}", ob.log());
    let far = w
        .far
        .wait_for_messages("bob@far.test", 1, DELIVERY)
        .unwrap_or_else(|e| panic!("{e}\n{}", ob.log()));
    assert!(
        text(&far[0]).contains("Subject: Voicemail from Alice Example (101)"),
        "{}",
        text(&far[0])
    );
    assert!(text(&far[0]).contains("audio/wav"));
    let here = local_mail(&ob, "bob");
    assert_eq!(here.len(), 1);
    assert!(here[0].contains("Subject: Voicemail from Alice Example (101)"));
}

/// Runs `program args` in the world's namespace with `stdin`: (success, stdout+stderr).
fn in_ns(w: &World, program: &str, args: &[&str], stdin: &[u8]) -> (bool, String) {
    use std::io::Write as _;
    let mut child =
        w.ns.command(program)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The `s=` of each DKIM-Signature of `message`, in order, with its `a=`.
fn dkim_selectors(message: &str) -> Vec<(String, String)> {
    // Unfolded: a header's continuation lines start with white space.
    let unfolded = message
        .replace("\r\n", "\n")
        .replace("\n\t", " ")
        .replace("\n ", " ");
    unfolded
        .lines()
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.strip_prefix("DKIM-Signature:"))
        .map(|h| {
            let tag = |name: &str| {
                h.split(';')
                    .map(str::trim)
                    .find_map(|t| t.strip_prefix(&format!("{name}=")))
                    .unwrap_or("")
                    .to_string()
            };
            (tag("s"), tag("a"))
        })
        .collect()
}

/// Mail to another domain leaves signed twice (ed25519 and RSA); dkimverify and OpenDKIM
/// check both signatures with the keys they find in officebox's own DNS (the namespace's
/// resolver is officebox), a changed body fails, the zone has SPF and DMARC, and new keys
/// made on the Mail page sign the next message while the old ones stay published.
#[test]
fn mail_leaving_is_dkim_signed_and_verifies_with_the_keys_from_the_boxs_own_dns() {
    require_program("dkimverify", "python3-dkim");
    require_program("opendkim-testmsg", "opendkim-tools");
    require_program("dig", "bind9-dnsutils");
    require_program("curl", "curl");
    let mut w = world("out-dkim");
    w.config = w.config.clone().set("dns.port", 53);
    w.ns.set_resolver(IpAddr::V4(Ipv4Addr::LOCALHOST)).unwrap();
    let ob = start(&w);
    ob.peer()
        .wait_for_log("dns: serving", READY_TIMEOUT)
        .unwrap();
    let message = "From: Alice <alice@office.test>\r\nTo: bob@far.test\r\n\
                   Subject: signed\r\nDate: Mon, 7 Dec 2026 10:00:00 +0000\r\n\
                   Message-ID: <dkim-1@office.test>\r\n\r\nPlease check me.\r\n";
    send(
        &w,
        "alice@office.test",
        &["bob@far.test"],
        message,
        &[],
        &[],
    );
    let got = w
        .far
        .wait_for_messages("bob@far.test", 1, DELIVERY)
        .unwrap_or_else(|e| panic!("{e}\n{}", ob.log()));
    let signed = text(&got[0]);
    let selectors = dkim_selectors(&signed);
    let algorithms: Vec<&str> = selectors.iter().map(|(_, a)| a.as_str()).collect();
    assert_eq!(algorithms, ["ed25519-sha256", "rsa-sha256"], "{signed}");

    let dig = |name: &str| {
        let out = w.ns.run("dig", ["+short", "+time=2", "TXT", name]).unwrap();
        String::from_utf8_lossy(&out.stdout).replace("\" \"", "")
    };
    for (selector, _) in &selectors {
        let txt = dig(&format!("{selector}._domainkey.office.test"));
        assert!(txt.contains("v=DKIM1; k="), "{selector}: {txt}");
    }
    assert_eq!(
        dig("office.test").trim(),
        "\"v=spf1 ip4:203.0.113.10 ~all\""
    );
    assert_eq!(dig("_dmarc.office.test").trim(), "\"v=DMARC1; p=none\"");

    // Both signatures, by python's dkim and by OpenDKIM.
    for index in ["0", "1"] {
        let (ok, out) = in_ns(&w, "dkimverify", &["--index", index], signed.as_bytes());
        assert!(
            ok && out.contains("signature ok"),
            "dkimverify {index}: {out}\n{signed}"
        );
    }
    let (ok, out) = in_ns(&w, "opendkim-testmsg", &[], signed.as_bytes());
    assert!(
        ok && out.trim().is_empty(),
        "opendkim-testmsg: {out}\n{signed}"
    );
    let forged = signed.replace("Please check me.", "Please pay me.");
    let (ok, out) = in_ns(&w, "opendkim-testmsg", &[], forged.as_bytes());
    assert!(
        !ok && out.contains("Bad signature"),
        "OpenDKIM on a changed body: {out}"
    );
    let (ok, out) = in_ns(&w, "dkimverify", &[], forged.as_bytes());
    assert!(!ok, "a changed body must fail: {out}");

    // Mail whose From is another domain (a forward, say) is not signed as ours.
    send(
        &w,
        "alice@office.test",
        &["carol@far.test"],
        "From: someone@example.org\r\nTo: carol@far.test\r\nSubject: not ours\r\n\r\nx\r\n",
        &[],
        &[],
    );
    let other = w
        .far
        .wait_for_messages("carol@far.test", 1, DELIVERY)
        .unwrap_or_else(|e| panic!("{e}\n{}", ob.log()));
    assert!(
        dkim_selectors(&text(&other[0])).is_empty(),
        "{}",
        text(&other[0])
    );

    // New keys from the Mail page: the next message carries them, the old stay published.
    let admin = format!("http://127.0.0.1:{}", w.config.int("web.admin_port"));
    let pages = AdminPages::new(&admin, ob.dir().join("cookies.txt"), Some(&w.ns));
    let logged_in = pages.log_in("admin", "demo-admin");
    assert!(logged_in.starts_with("HTTP/1.1 303"), "{logged_in}");
    let page = pages.get("/mail");
    for (selector, _) in &selectors {
        assert!(
            page.contains(selector.as_str()),
            "{selector} on the Mail page"
        );
    }
    let rotated = pages.post(&page, "/mail/dkim/rotate", "");
    assert!(rotated.starts_with("HTTP/1.1 303"), "{rotated}");
    send(
        &w,
        "alice@office.test",
        &["bob@far.test"],
        &message.replace("dkim-1@", "dkim-2@"),
        &[],
        &[],
    );
    let got = w
        .far
        .wait_for_messages("bob@far.test", 2, DELIVERY)
        .unwrap_or_else(|e| panic!("{e}\n{}", ob.log()));
    let second = got
        .iter()
        .map(|m| text(m))
        .find(|m| m.contains("dkim-2@"))
        .unwrap();
    let new = dkim_selectors(&second);
    assert_eq!(new.len(), 2, "{second}");
    assert!(
        new.iter().all(|n| !selectors.contains(n)),
        "{new:?} {selectors:?}"
    );
    // The zone follows within its poll; both the old and the new keys answer.
    assert!(
        wait_until(Duration::from_secs(5), || {
            new.iter()
                .chain(&selectors)
                .all(|(s, _)| dig(&format!("{s}._domainkey.office.test")).contains("v=DKIM1"))
        }),
        "{}",
        ob.log()
    );
    for index in ["0", "1"] {
        let (ok, out) = in_ns(&w, "dkimverify", &["--index", index], second.as_bytes());
        assert!(ok, "dkimverify {index} after the rotation: {out}\n{second}");
    }
}
