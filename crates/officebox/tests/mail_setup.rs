//! Mail settings found from the address alone (issue 20, second part), against the real
//! binary on the demo's ports: dig reads the SRV records (RFC 6186, RFC 8314) and the
//! built-in names; curl fetches Thunderbird's autoconfig file from both of its places and
//! xmllint checks it against the format's schema; python logs in over IMAP and SMTP
//! exactly as the file says; Outlook's Autodiscover question is answered for the
//! company's addresses and refused for others; the Users page hands out an Apple profile
//! that python's plistlib reads.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use officebox_testkit::{AdminPages, Officebox, READY_TIMEOUT, TestConfig, require_program};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_officebox"))
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn mail_programs_find_their_settings_from_the_address_alone() {
    require_program("dig", "bind9-dnsutils");
    require_program("curl", "curl");
    require_program("xmllint", "libxml2-utils");
    let c = TestConfig::demo().free_ports();
    let ob = Officebox::start(bin(), &c.text()).unwrap();
    for line in ["imap: serving", "web: serving", "dns: serving"] {
        ob.peer()
            .wait_for_log(line, READY_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}\n{}", ob.log()));
    }
    let port = |p: &str| c.int(p).to_string();

    // The SRV records name the built-in hosts and the ports the config gives.
    let dns = port("dns.port");
    let dig = |name: &str, rtype: &str| {
        run(
            "dig",
            &["@127.0.0.1", "-p", &dns, "+short", "+time=2", name, rtype],
        )
    };
    for (name, service, host) in [
        ("_imaps._tcp", "mail.imaps_port", "imap"),
        ("_imap._tcp", "mail.imap_port", "imap"),
        ("_pop3s._tcp", "mail.pop3s_port", "pop"),
        ("_submissions._tcp", "mail.smtps_port", "smtp"),
        ("_submission._tcp", "mail.submission_port", "smtp"),
    ] {
        let answer = dig(&format!("{name}.office.test"), "SRV");
        assert_eq!(
            answer.trim(),
            format!("0 1 {} {host}.office.test.", port(service)),
            "{name}"
        );
    }
    for name in ["imap", "autoconfig", "autodiscover"] {
        let answer = dig(&format!("{name}.office.test"), "A");
        assert!(answer.contains("192.168.1.1"), "{name}: {answer}");
    }

    // Thunderbird's file, from autoconfig.<domain> and from the domain's .well-known.
    let site = port("web.site_port");
    let resolve = |name: &str| format!("{name}.office.test:{site}:127.0.0.1");
    let file = ob.dir().join("config-v1.1.xml");
    let file_s = file.to_str().unwrap();
    let well_known = run(
        "curl",
        &[
            "-sf",
            "--noproxy",
            "*",
            "--resolve",
            &resolve("www"),
            &format!(
                "http://www.office.test:{site}/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=alice%40office.test"
            ),
        ],
    );
    run(
        "curl",
        &[
            "-sf",
            "--noproxy",
            "*",
            "-o",
            file_s,
            "--resolve",
            &resolve("autoconfig"),
            &format!(
                "http://autoconfig.office.test:{site}/mail/config-v1.1.xml?emailaddress=alice%40office.test"
            ),
        ],
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), well_known);
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mailsetup/autoconfig-v1.1.xsd");
    let out = Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(&schema)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the autoconfig file does not match the schema: {}\n{well_known}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A mail program following the file: every server in it takes alice's login.
    let follow = r#"
import imaplib, poplib, smtplib, ssl, sys
import xml.etree.ElementTree as ET
ctx = ssl._create_unverified_context()
root = ET.parse(sys.argv[1]).getroot()
tried = []
for s in root.iter():
    if s.tag not in ("incomingServer", "outgoingServer"):
        continue
    kind, port, sock = s.get("type"), int(s.findtext("port")), s.findtext("socketType")
    user = s.findtext("username").replace("%EMAILADDRESS%", "alice@office.test")
    assert s.findtext("hostname").endswith(".office.test"), s.findtext("hostname")
    host = "127.0.0.1"
    if kind == "imap":
        m = imaplib.IMAP4_SSL(host, port, ssl_context=ctx) if sock == "SSL" else imaplib.IMAP4(host, port)
        if sock == "STARTTLS":
            m.starttls(ctx)
        m.login(user, "demo-alice")
        m.logout()
    elif kind == "pop3":
        m = poplib.POP3_SSL(host, port, context=ctx) if sock == "SSL" else poplib.POP3(host, port)
        if sock == "STARTTLS":
            m.stls(ctx)
        m.user(user)
        m.pass_("demo-alice")
        m.quit()
    elif kind == "smtp":
        m = smtplib.SMTP_SSL(host, port, context=ctx) if sock == "SSL" else smtplib.SMTP(host, port)
        if sock == "STARTTLS":
            m.starttls(context=ctx)
        m.login(user, "demo-alice")
        m.quit()
    tried.append(f"{kind}/{sock}/{port}")
print(" ".join(tried))
"#;
    let tried = run("python3", &["-c", follow, file_s]);
    assert_eq!(
        tried.trim(),
        format!(
            "imap/SSL/{} imap/STARTTLS/{} pop3/SSL/{} pop3/STARTTLS/{} smtp/SSL/{} smtp/STARTTLS/{}",
            port("mail.imaps_port"),
            port("mail.imap_port"),
            port("mail.pop3s_port"),
            port("mail.pop3_port"),
            port("mail.smtps_port"),
            port("mail.submission_port"),
        )
    );

    // Outlook's question, for one of ours and for a stranger's address.
    let autodiscover = |address: &str| {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006\"><Request><EMailAddress>{address}</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>"
        );
        run(
            "curl",
            &[
                "-sf",
                "--noproxy",
                "*",
                "-H",
                "Content-Type: text/xml",
                "--data-binary",
                &body,
                "--resolve",
                &resolve("autodiscover"),
                &format!("http://autodiscover.office.test:{site}/Autodiscover/Autodiscover.xml"),
            ],
        )
    };
    let answer = ob.dir().join("autodiscover.xml");
    std::fs::write(&answer, autodiscover("Alice@office.test")).unwrap();
    let xpath = |expr: &str| {
        run("xmllint", &["--xpath", expr, answer.to_str().unwrap()])
            .trim()
            .to_string()
    };
    let protocol = |kind: &str, field: &str| {
        xpath(&format!(
            "string(//*[local-name()='Protocol'][*[local-name()='Type']='{kind}']/*[local-name()='{field}'])"
        ))
    };
    assert_eq!(protocol("IMAP", "Server"), "imap.office.test");
    assert_eq!(protocol("IMAP", "Port"), port("mail.imaps_port"));
    assert_eq!(protocol("IMAP", "Encryption"), "SSL");
    assert_eq!(protocol("IMAP", "LoginName"), "alice@office.test");
    assert_eq!(protocol("SMTP", "Port"), port("mail.smtps_port"));
    assert_eq!(protocol("POP3", "Server"), "pop.office.test");
    let stranger = autodiscover("someone@example.com");
    assert!(
        stranger.contains("<ErrorCode>600</ErrorCode>"),
        "{stranger}"
    );
    assert!(!stranger.contains("<Protocol>"), "{stranger}");
    // A question far larger than any Outlook asks is refused unread.
    let huge = "x".repeat(100_000);
    let status = run(
        "curl",
        &[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--noproxy",
            "*",
            "--data-binary",
            &huge,
            &format!("http://127.0.0.1:{site}/autodiscover/autodiscover.xml"),
        ],
    );
    assert_eq!(status, "413");

    // The Apple profile: only for a logged-in admin, and a plist Apple's format reads.
    let admin = format!("http://127.0.0.1:{}", port("web.admin_port"));
    let pages = AdminPages::new(&admin, ob.dir().join("cookies.txt"), None);
    let profile_url = "/users/alice/mail.mobileconfig";
    let anonymous = pages.get(profile_url);
    assert!(anonymous.starts_with("HTTP/1.1 303"), "{anonymous}");
    let logged_in = pages.log_in("admin", "demo-admin");
    assert!(logged_in.starts_with("HTTP/1.1 303"), "{logged_in}");
    let page = pages.get("/users/alice");
    assert!(
        page.contains("href=\"/users/alice/mail.mobileconfig\""),
        "{page}"
    );
    assert!(page.contains("Mailbox: 0.0 MB, no size limit."), "{page}");
    let profile = ob.dir().join("alice.mobileconfig");
    let answer = pages.get(profile_url);
    let (headers, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(
        headers.contains("content-type: application/x-apple-aspen-config"),
        "{headers}"
    );
    std::fs::write(&profile, body).unwrap();
    let read = format!(
        r#"
import plistlib, sys
p = plistlib.load(open(sys.argv[1], "rb"))
assert p["PayloadType"] == "Configuration", p
a = p["PayloadContent"][0]
assert a["PayloadType"] == "com.apple.mail.managed", a
assert a["EmailAddress"] == "alice@office.test", a
assert a["IncomingMailServerHostName"] == "imap.office.test", a
assert a["IncomingMailServerPortNumber"] == {imaps}, a
assert a["IncomingMailServerUseSSL"] is True, a
assert a["OutgoingMailServerPortNumber"] == {smtps}, a
assert a["PayloadUUID"] != p["PayloadUUID"], p
assert not any("Password" in k and k != "OutgoingPasswordSameAsIncomingPassword" for k in a if "Authentication" not in k), a
print(a["EmailAccountName"])
"#,
        imaps = port("mail.imaps_port"),
        smtps = port("mail.smtps_port"),
    );
    let name = run("python3", &["-c", &read, profile.to_str().unwrap()]);
    assert!(!name.trim().is_empty());
    let nobody = pages.get("/users/nobody/mail.mobileconfig");
    assert!(nobody.starts_with("HTTP/1.1 404"), "{nobody}");
    assert!(!ob.log().contains("panicked"), "{}", ob.log());
}

/// The zone hosted elsewhere (issue 20, fifth part): the Mail page lists every record
/// mail needs and checks each against what the Internet's DNS answers. Here that DNS is
/// a test dnsmasq (the box's upstream, in a namespace of the test's own) with the MX and
/// the mail server's address right, IMAP's address wrong, an SPF record that does not
/// name the box, a PTR naming another host, and no DMARC, DKIM or SRV records.
#[test]
fn the_records_mail_needs_are_checked_against_the_internets_dns() {
    use officebox_testkit::{DnsRecord, Netns, TestDns, require_root};
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    require_root();
    require_program("dnsmasq", "dnsmasq-base");
    require_program("curl", "curl");
    let ns = Netns::new("mrec").unwrap();
    let _dns = TestDns::start(
        &ns,
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)), 53),
        &[
            DnsRecord::mx("office.test", 10, "smtp.office.test"),
            DnsRecord::a("smtp.office.test", Ipv4Addr::new(203, 0, 113, 10)),
            DnsRecord::a("imap.office.test", Ipv4Addr::new(198, 51, 100, 99)),
            DnsRecord::txt("office.test", "v=spf1 -all"),
        ],
    )
    .unwrap();
    let c = TestConfig::demo()
        .free_ports()
        .set("dns.use_upstream", true)
        .set("dns.primary", "127.0.0.3:53");
    let ob = Officebox::start_in_netns(bin(), &c.text(), &ns).unwrap();
    ob.peer()
        .wait_for_log("web: serving the admin pages", READY_TIMEOUT)
        .unwrap();
    let admin = format!("http://127.0.0.1:{}", c.int("web.admin_port"));
    let pages = AdminPages::new(&admin, ob.dir().join("cookies.txt"), Some(&ns));
    let logged_in = pages.log_in("admin", "demo-admin");
    assert!(logged_in.starts_with("HTTP/1.1 303"), "{logged_in}");
    let page = pages.get("/mail/records");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("hosted elsewhere"), "{page}");
    // Each row: its status and text.
    let rows: Vec<(&str, &str)> = page
        .split("<tr data-status=\"")
        .skip(1)
        .filter_map(|r| r.split_once('"'))
        .collect();
    let row = |needle: &str| -> (&str, &str) {
        *rows
            .iter()
            .find(|(_, text)| text.contains(needle))
            .unwrap_or_else(|| panic!("no row with {needle}: {page}"))
    };
    assert_eq!(row("<code>10 smtp.office.test</code>").0, "ok");
    assert_eq!(row("<code>smtp.office.test</code></td><td>A").0, "ok");
    let imap = row("<code>imap.office.test</code></td><td>A");
    assert!(
        imap.0 == "wrong" && imap.1.contains("different: 198.51.100.99"),
        "{imap:?}"
    );
    let spf = row("v=spf1 ip4:203.0.113.10 ~all");
    assert!(
        spf.0 == "wrong" && spf.1.contains("does not name"),
        "{spf:?}"
    );
    for missing in [
        "<code>_dmarc.office.test</code>",
        "._domainkey.office.test</code>",
        "<code>_imaps._tcp.office.test</code>",
    ] {
        let r = row(missing);
        assert!(
            r.0 == "wrong" && r.1.contains("missing"),
            "{missing}: {r:?}"
        );
    }
    // dnsmasq answers the reverse name from its A record: not the name the box says in
    // HELO.
    let ptr = row("<code>10.113.0.203.in-addr.arpa</code>");
    assert!(
        ptr.0 == "wrong" && ptr.1.contains("different: smtp.office.test"),
        "{ptr:?}"
    );
    assert!(page.contains("2 of "), "two rows right: {page}");
}
