//! Mail from the Internet checked on its way in (issue 20, fourth part): SPF, DKIM, DMARC
//! and ARC with mail-auth, the outcome in an Authentication-Results header, a DMARC
//! reject honoured at the end of DATA, failures into Junk, and greylisting.
//!
//! Two namespaces joined by a veth pair: the box's WAN side (198.51.100.1) and the
//! Internet (198.51.100.7 and .8). In the box's namespace a test DNS (dnsmasq, 127.0.0.3)
//! answers for the sending domains, and officebox's own DNS forwards to it. On the
//! Internet side a private postfix is far.test's mail server (198.51.100.7), sending to
//! the box; .8 is a forger that talks SMTP itself (python's smtplib). Messages are
//! DKIM-signed by python's dkim with a key whose public half the test DNS publishes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use officebox_testkit::{
    DnsRecord, Endpoint, FarPostfix, Netns, Officebox, READY_TIMEOUT, TestConfig, TestDns, Veth,
    require_program, require_root, scratch_dir, wait_until,
};

const BOX: &str = "198.51.100.1";
const FAR: &str = "198.51.100.7";
const FORGER: &str = "198.51.100.8";
const DELIVERY: Duration = Duration::from_secs(30);

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_officebox"))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The messages in one of alice's folders (`""` for the inbox, `".Junk"`).
fn folder(ob: &Officebox, name: &str) -> Vec<String> {
    let dir = ob.dir().join("demo-data/mail/alice").join(name).join("new");
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The message in `name` whose Message-ID has `id`, once it is there.
fn arrived(ob: &Officebox, name: &str, id: &str) -> String {
    let mut found = None;
    let ok = wait_until(DELIVERY, || {
        found = folder(ob, name).into_iter().find(|m| m.contains(id));
        found.is_some()
    });
    assert!(ok, "{id} never reached {name:?}\n{}", ob.log());
    found.unwrap()
}

/// The Authentication-Results field officebox wrote (the first line of the message,
/// unfolded).
fn results(message: &str) -> String {
    let mut out = String::new();
    for (i, line) in message.lines().enumerate() {
        if i > 0 && !line.starts_with([' ', '\t']) {
            break;
        }
        out.push_str(line.trim());
        out.push(' ');
    }
    assert!(
        out.starts_with("Authentication-Results: officebox.office.test;"),
        "{message}"
    );
    out
}

#[test]
fn mail_from_the_internet_is_judged_by_spf_dkim_and_dmarc() {
    require_root();
    for (p, pkg) in [
        ("postfix", "postfix"),
        ("dnsmasq", "dnsmasq-base"),
        ("openssl", "openssl"),
        ("dkimverify", "python3-dkim"),
    ] {
        require_program(p, pkg);
    }
    let boxns = Netns::new("inbb").unwrap();
    let wan = Netns::new("inbw").unwrap();
    let link = Veth::new(
        Endpoint::netns(&boxns).addr(&format!("{BOX}/24")),
        Endpoint::netns(&wan).addr(&format!("{FAR}/24")),
    )
    .unwrap();
    run(wan
        .command("ip")
        .args(["addr", "add", &format!("{FORGER}/24"), "dev", link.name_b()]));

    // far.test's DKIM key (RSA 1024: its record fits one TXT string).
    let keys = scratch_dir("inbound-dkim").unwrap();
    let key = keys.path().join("far.key");
    run(Command::new("openssl")
        .args(["genrsa", "-out"])
        .arg(&key)
        .arg("1024"));
    let public = run(Command::new("sh").arg("-c").arg(format!(
        "openssl rsa -in {} -pubout -outform DER 2>/dev/null | openssl base64 -A",
        key.display()
    )));
    let dns = TestDns::start(
        &boxns,
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)), 53),
        &[
            DnsRecord::txt("far.test", &format!("v=spf1 ip4:{FAR} -all")),
            DnsRecord::txt("_dmarc.far.test", "v=DMARC1; p=reject"),
            DnsRecord::txt(
                "sel._domainkey.far.test",
                &format!("v=DKIM1; k=rsa; p={public}"),
            ),
            DnsRecord::txt("lax.test", &format!("v=spf1 ip4:{FAR} -all")),
            DnsRecord::txt("_dmarc.lax.test", "v=DMARC1; p=none"),
            DnsRecord::txt("bad.test", "v=spf1 ip4:999.1.1.1 include: -all"),
        ],
    )
    .unwrap();
    let far_ip: IpAddr = FAR.parse().unwrap();
    let far = FarPostfix::start_relaying(
        &wan,
        far_ip,
        &["far.test"],
        SocketAddr::new(BOX.parse().unwrap(), 25),
        "198.51.100.0/24",
    )
    .unwrap();

    let config = TestConfig::demo()
        .free_ports()
        .set(
            "network.listen",
            toml_edit::Value::Array(toml_edit::Array::new()),
        )
        .set("mail.smtp_port", 25)
        .set("mail.junk_failed_checks", true)
        .set("dns.use_upstream", true)
        .set("dns.primary", "127.0.0.3:53")
        .set("ntp.enabled", false);
    let ob = Officebox::start_in_netns(bin(), &config.text(), &boxns).unwrap();
    for line in ["smtp: serving", "dns: serving"] {
        ob.peer().wait_for_log(line, READY_TIMEOUT).unwrap();
    }

    let messages = scratch_dir("inbound-messages").unwrap();
    // Sends a message (signed by far.test's key when `sign`, then changed after signing
    // when `tamper`) through far.test's postfix, or straight from the forger's address.
    let send = |via_postfix: bool, from: &str, id: &str, sign: bool, tamper: bool| -> String {
        let file: PathBuf = messages.path().join(format!("{id}.eml"));
        std::fs::write(
            &file,
            format!(
                "From: Sender <{from}>\r\nTo: alice@office.test\r\nSubject: {id}\r\n\
                 Date: Mon, 7 Dec 2026 10:00:00 +0000\r\nMessage-ID: <{id}@test>\r\n\
                 Authentication-Results: officebox.office.test; dkim=pass; dmarc=pass\r\n\
                 \r\nHello from {from}.\r\n"
            ),
        )
        .unwrap();
        let (server, source) = if via_postfix {
            (FAR, FAR)
        } else {
            (BOX, FORGER)
        };
        let script = format!(
            r#"
import dkim, smtplib, sys
msg = open({file:?}, "rb").read()
if {sign}:
    sig = dkim.sign(msg, b"sel", b"far.test", open({key:?}, "rb").read(),
                    include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    msg = sig + msg
if {tamper}:
    msg = msg.replace(b"Hello", b"Goodbye")
s = smtplib.SMTP({server:?}, 25, source_address=({source:?}, 0), timeout=30)
try:
    s.sendmail({from:?}, ["alice@office.test"], msg)
    print("250")
except smtplib.SMTPRecipientsRefused as e:
    print(list(e.recipients.values())[0][0])
except smtplib.SMTPDataError as e:
    print(e.smtp_code, e.smtp_error.decode())
s.quit()
"#,
            file = file.display().to_string(),
            key = key.display().to_string(),
            sign = if sign { "True" } else { "False" },
            tamper = if tamper { "True" } else { "False" },
        );
        let out = wan
            .command("/usr/bin/python3")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sending {id}: {}\npostfix: {}\nofficebox: {}",
            String::from_utf8_lossy(&out.stderr),
            far.log_tail(30),
            ob.log()
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };

    // far.test's own server, signed: everything passes; the forged results are gone.
    assert_eq!(send(true, "ann@far.test", "good", true, false), "250");
    let good = arrived(&ob, "", "<good@test>");
    let ar = results(&good);
    for want in ["spf=pass", "dkim=pass", "header.i=@far.test", "dmarc=pass"] {
        assert!(ar.contains(want), "{want}: {ar}");
    }
    assert_eq!(
        good.matches("Authentication-Results:").count(),
        1,
        "the forged results are taken out: {good}"
    );

    // A signature broken on the way: DKIM does not pass (mail-auth says "neutral" for a
    // body hash that does not match), SPF still passes and carries DMARC.
    assert_eq!(send(true, "ann@far.test", "broken", true, true), "250");
    let ar = results(&arrived(&ob, "", "<broken@test>"));
    assert!(
        ar.contains("body hash did not verify")
            && !ar.contains("dkim=pass")
            && ar.contains("dmarc=pass"),
        "{ar}"
    );

    // A forger using far.test (p=reject), signed or not: refused at the end of DATA.
    for (id, sign) in [("forged", false), ("forged-resigned", true)] {
        let reply = send(false, "ceo@far.test", id, sign, sign);
        assert!(
            reply.starts_with("550") && reply.contains("DMARC"),
            "{id}: {reply}"
        );
    }
    // A forger using lax.test (p=none): taken, into Junk, with the failures said.
    assert_eq!(send(false, "boss@lax.test", "lax", false, false), "250");
    let ar = results(&arrived(&ob, ".Junk", "<lax@test>"));
    assert!(ar.contains("spf=fail") && ar.contains("dmarc=fail"), "{ar}");
    // A domain whose SPF record is malformed: judged (permerror), not a crash.
    assert_eq!(send(false, "x@bad.test", "malformed", false, false), "250");
    let ar = results(&arrived(&ob, "", "<malformed@test>"));
    assert!(ar.contains("spf=permerror"), "{ar}");
    assert!(
        !folder(&ob, "").iter().any(|m| m.contains("<forged")),
        "nothing forged was stored"
    );
    assert!(!ob.log().contains("panicked"), "{}", ob.log());

    // Greylisting on, by a reload: a new sender is told to come back; postfix does,
    // and its mail arrives once the delay is over.
    let greylisting = config
        .clone()
        .set("mail.greylisting", true)
        .set("mail.greylist_delay", "2s");
    ob.write_config(&greylisting.text()).unwrap();
    assert!(ob.reload().unwrap(), "{}", ob.log());
    let first = send(false, "new@lax.test", "grey-direct", false, false);
    assert!(first.starts_with("451"), "{first}");
    assert_eq!(send(true, "bea@far.test", "grey", true, false), "250");
    let grey = arrived(&ob, "", "<grey@test>");
    assert!(results(&grey).contains("dkim=pass"), "{grey}");
    assert!(ob.log().contains("smtp: greylisted"), "{}", ob.log());
    assert!(
        far.log().contains("451 4.7.1"),
        "postfix was told to come back: {}",
        far.log_tail(30)
    );
    drop(dns);
}
