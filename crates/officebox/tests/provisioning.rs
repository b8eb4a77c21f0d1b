//! Phones that set themselves up, end to end on a LAN of two namespaces: dhclient shows
//! options 66, 150 and 43 sent unasked (and not 160, a captive portal to PCs) (the plain address to a stranger, the one-time
//! token address to an assigned phone); curl fetches files as a Yealink would, over HTTP
//! and HTTPS (secret-free files for anyone, the phone's own file once under its token and
//! then only with its credentials, 404 for a MAC nobody assigned); the SIP password in
//! the file registers (sipp); and sipp's plug-and-play SUBSCRIBE to 224.0.1.75 is
//! answered with the address, in both ways the box joins the group.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod common;

use std::path::Path;
use std::time::Duration;

use officebox_testkit::{
    ClientKind, DhcpClient, OfficeLan, Officebox, READY_TIMEOUT, TestConfig, require_program,
    require_root, scratch_dir,
};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_officebox"))
}

const BOX: &str = "192.168.1.1";
/// The demo's provisioning ports.
const HTTP: u16 = 18081;
const HTTPS: u16 = 18443;
const UA: &str = "Yealink SIP-T46S 66.86.0.15";
/// A Poly phone assigned to bob from the start (never on this LAN).
const BOBS: &str = "00:04:f2:aa:bb:cc";

fn config(lan: &OfficeLan, mode: &str, alices: Option<&str>) -> TestConfig {
    let mut c = TestConfig::demo()
        .set(
            "network.listen",
            toml_edit::Value::Array(toml_edit::Array::new()),
        )
        .set("network.lan.interface", lan.box_iface())
        .set("security.mode", mode)
        .set("dhcp.enabled", true)
        .set("dns.port", 53)
        .set("dns.use_upstream", false)
        .set("ntp.enabled", false)
        .set("phone.sip_port", 5060)
        .append(&format!(
            "[[phone.devices]]\nmac = \"{BOBS}\"\nuser = \"bob\"\nvendor = \"poly\"\n"
        ));
    if let Some(mac) = alices {
        c = c.append(&format!(
            "[[phone.devices]]\nmac = \"{mac}\"\nuser = \"alice\"\nvendor = \"yealink\"\nkeys = [\"102\"]\n"
        ));
    }
    c
}

/// curl from the PC: (status, body). `auth`: HTTP Basic user and password.
fn fetch(lan: &OfficeLan, url: &str, auth: Option<(&str, &str)>) -> (u16, String) {
    let dir = scratch_dir("prov-curl").unwrap();
    let body = dir.path().join("body");
    let mut cmd = lan.pc.command("curl");
    cmd.args(["-s", "-k", "-m", "10", "-A", UA, "-o"])
        .arg(&body)
        .args(["-w", "%{http_code}"]);
    if let Some((u, p)) = auth {
        cmd.args(["-u", &format!("{u}:{p}")]);
    }
    let out = cmd.arg(url).output().unwrap();
    let code = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    (code, std::fs::read_to_string(&body).unwrap_or_default())
}

/// The value of `key = value` in a Yealink file.
fn setting<'b>(file: &'b str, key: &str) -> &'b str {
    file.lines()
        .find_map(|l| l.strip_prefix(key)?.trim_start().strip_prefix('='))
        .map(str::trim)
        .unwrap_or_else(|| panic!("{key} is not in\n{file}"))
}

/// A plug-and-play SUBSCRIBE for `mac` from the PC: the address the NOTIFY gave.
fn plug_and_play(lan: &OfficeLan, mac: &str, from: &str) -> String {
    let dir = scratch_dir("prov-pnp").unwrap();
    let log = dir.path().join("pnp.log");
    let out = lan
        .pc
        .command("sipp")
        .current_dir(common::scenarios())
        .args(["-sf", "pnp_subscribe.xml", "-key", "mac", mac])
        .args(["-trace_logs", "-log_file"])
        .arg(&log)
        .args(["-i", from, "-p", "5062", "-m", "1", "-nostdin"])
        .args(["-recv_timeout", "10s", "-timeout", "15s"])
        .arg("224.0.1.75:5060")
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        out.status.success(),
        "sipp: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        text
    );
    text.lines()
        .find_map(|l| l.trim().strip_prefix("url="))
        .unwrap_or_else(|| panic!("no address in the NOTIFY: {text}"))
        .to_string()
}

#[test]
fn a_phone_sets_itself_up_and_a_stranger_learns_nothing_secret() {
    require_root();
    require_program("curl", "curl");
    require_program("sipp", "sip-tester");
    ClientKind::Dhclient.require();
    let lan = OfficeLan::new("prv", &format!("{BOX}/24")).unwrap();
    let pc_mac = lan
        .pc
        .run(
            "cat",
            [format!("/sys/class/net/{}/address", lan.pc_iface())],
        )
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap();
    let mac = pc_mac.replace(':', "");
    let ob = Officebox::start_in_netns(
        bin(),
        &config(&lan, "firewall-nat", None).text(),
        &lan.boxns,
    )
    .unwrap();
    ob.peer()
        .wait_for_log("dhcp: serving", READY_TIMEOUT)
        .unwrap();
    ob.peer()
        .wait_for_log("web: serving the phones' files", READY_TIMEOUT)
        .unwrap();

    // A stranger (this PC, nobody's phone) is told the plain address, unasked: dhclient
    // requests none of these options.
    let mut client = lease(&lan);
    let lease = client.current().unwrap().clone();
    let plain = format!("http://{BOX}:{HTTP}/");
    assert_eq!(
        lease.vars.get("new_tftp_server_name").map(String::as_str),
        Some(plain.as_str()),
        "{:?}",
        lease.vars
    );
    assert_eq!(
        lease
            .vars
            .get("new_tftp_server_address")
            .map(String::as_str),
        Some(BOX)
    );
    // Option 43 carries it too (sub-option 66, as Snom reads it).
    let vendor = lease
        .vars
        .get("new_vendor_encapsulated_options")
        .cloned()
        .unwrap_or_default();
    assert!(vendor.starts_with("42:19:68:74:74:70"), "{vendor}");
    // Not option 160: a PC would read it as a captive portal.
    assert!(
        !lease.vars.contains_key("new_v4_captive_portal"),
        "{:?}",
        lease.vars
    );

    // What a stranger can fetch: common files and the phonebook, nothing secret.
    let (code, common) = fetch(&lan, &format!("{plain}y000000000066.cfg"), None);
    assert_eq!(code, 200);
    assert!(
        common.starts_with("#!version:1.0.0.1") && !common.contains("password"),
        "{common}"
    );
    let (code, book) = fetch(&lan, &format!("{plain}yealink-phonebook.xml"), None);
    assert_eq!(code, 200);
    assert!(
        book.contains("<Name>Alice Example</Name><Telephone>101</Telephone>"),
        "{book}"
    );
    // Its own file: nobody assigned it.
    assert_eq!(fetch(&lan, &format!("{plain}{mac}.cfg"), None).0, 404);
    assert_eq!(
        fetch(&lan, &format!("https://{BOX}:{HTTPS}/{mac}.cfg"), None).0,
        404
    );
    // Bob's phone's file (assigned): not over HTTP, not without its credentials, and a
    // Poly master file that names it but holds nothing secret.
    assert_eq!(
        fetch(&lan, &format!("{plain}0004f2aabbcc-phone.cfg"), None).0,
        403
    );
    assert_eq!(
        fetch(
            &lan,
            &format!("https://{BOX}:{HTTPS}/0004f2aabbcc-phone.cfg"),
            None
        )
        .0,
        401
    );
    let (code, master) = fetch(&lan, &format!("{plain}0004f2aabbcc.cfg"), None);
    assert_eq!(code, 200);
    assert!(
        master.contains("CONFIG_FILES=\"0004f2aabbcc-phone.cfg\""),
        "{master}"
    );
    assert_eq!(
        fetch(
            &lan,
            &format!("https://{BOX}:{HTTPS}/t/nonsense/0004f2aabbcc-phone.cfg"),
            None
        )
        .0,
        404
    );
    // Plug-and-play tells a stranger the plain address too.
    lan.pc
        .run("ip", ["route", "add", "224.0.0.0/4", "dev", lan.pc_iface()])
        .unwrap();
    let from = lease.address.to_string();
    assert_eq!(plug_and_play(&lan, &mac.to_uppercase(), &from), plain);

    // The office manager assigns this PC's MAC to alice: DHCP and plug-and-play now give
    // it the one-time token address.
    ob.write_config(&config(&lan, "firewall-nat", Some(&pc_mac)).text())
        .unwrap();
    assert!(ob.reload().unwrap(), "{}", ob.log());
    std::thread::sleep(Duration::from_secs(3));
    let renewed = lease_again(&lan, &mut client);
    let own = renewed
        .vars
        .get("new_tftp_server_name")
        .cloned()
        .unwrap_or_default();
    let prefix = format!("https://{BOX}:{HTTPS}/t/");
    assert!(own.starts_with(&prefix) && own.ends_with('/'), "{own}");
    assert_eq!(plug_and_play(&lan, &mac.to_uppercase(), &from), own);

    // The phone fetches its own file under the token: once.
    let (code, file) = fetch(&lan, &format!("{own}{mac}.cfg"), None);
    assert_eq!(code, 200, "{}", ob.log());
    assert_eq!(setting(&file, "account.1.user_name"), "101");
    assert_eq!(setting(&file, "account.1.auth_name"), mac);
    assert_eq!(setting(&file, "account.1.sip_server.1.address"), BOX);
    assert_eq!(setting(&file, "linekey.2.value"), "102");
    assert_eq!(setting(&file, "linekey.2.label"), "Bob Example");
    assert_eq!(setting(&file, "voice_mail.number.1"), "*97");
    let sip_password = setting(&file, "account.1.password").to_string();
    let user = setting(&file, "static.auto_provision.server.username").to_string();
    let password = setting(&file, "static.auto_provision.server.password").to_string();
    assert_ne!(sip_password, "demo-alice", "never the user's own password");
    assert_eq!(
        fetch(&lan, &format!("{own}{mac}.cfg"), None).0,
        404,
        "the token is used up"
    );
    // From now on, with its credentials only (and only over HTTPS).
    let https = format!("https://{BOX}:{HTTPS}/{mac}.cfg");
    assert_eq!(fetch(&lan, &https, Some((&user, &password))).0, 200);
    assert_eq!(fetch(&lan, &https, Some((&user, "wrong"))).0, 401);
    assert_eq!(
        fetch(&lan, &https, Some(("0004f2aabbcc", &password))).0,
        401
    );
    assert_eq!(
        fetch(&lan, &format!("{plain}{mac}.cfg"), Some((&user, &password))).0,
        403
    );
    // DHCP and plug-and-play now give it the plain HTTPS address.
    std::thread::sleep(Duration::from_secs(3));
    let renewed = lease_again(&lan, &mut client);
    assert_eq!(
        renewed.vars.get("new_tftp_server_name").map(String::as_str),
        Some(format!("https://{BOX}:{HTTPS}/").as_str())
    );

    // The phone registers as 101 with the SIP password it was given.
    let inf = scratch_dir("prov-reg").unwrap();
    let users = inf.path().join("phone.csv");
    std::fs::write(
        &users,
        format!("SEQUENTIAL\n101;[authentication username={mac} password={sip_password}]\n"),
    )
    .unwrap();
    let reg = lan
        .pc
        .command("sipp")
        .current_dir(common::scenarios())
        .args(["-sf", "register_contact.xml", "-inf"])
        .arg(&users)
        .args([
            "-key",
            "domain",
            "office.test",
            "-key",
            "contact_port",
            "5070",
        ])
        .args(["-auth_uri", "office.test", "-i", &from, "-p", "5064"])
        .args(["-m", "1", "-nostdin", "-recv_timeout", "10s"])
        .arg(format!("{BOX}:5060"))
        .output()
        .unwrap();
    assert!(
        reg.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&reg.stdout),
        ob.log()
    );

    // In lan-only mode the SIP sockets bind the LAN address itself, and plug-and-play
    // has a socket of its own.
    ob.write_config(&config(&lan, "lan-only", Some(&pc_mac)).text())
        .unwrap();
    assert!(ob.reload().unwrap(), "{}", ob.log());
    let joined = officebox_testkit::wait_until(READY_TIMEOUT, || {
        ob.log()
            .matches("phone: answering plug-and-play requests")
            .count()
            >= 2
    });
    assert!(joined, "{}", ob.log());
    assert_eq!(
        plug_and_play(&lan, &mac, &from),
        format!("https://{BOX}:{HTTPS}/")
    );
    assert!(!ob.log().contains("panicked"), "{}", ob.log());
    drop(client);
}

/// dhclient cannot be told to renew: it lets go of its lease and takes one again.
fn lease_again(lan: &OfficeLan, client: &mut DhcpClient) -> officebox_testkit::ClientLease {
    client.release(Duration::from_secs(20)).unwrap();
    *client = lease(lan);
    client.current().unwrap().clone()
}

/// dhclient on the PC, bound.
fn lease(lan: &OfficeLan) -> DhcpClient {
    DhcpClient::lease(
        ClientKind::Dhclient,
        &lan.pc,
        lan.pc_iface(),
        None,
        Duration::from_secs(20),
    )
    .unwrap()
}

/// From the ISP's side the provisioning server is not there: not on the WAN address, and
/// a request routed to the LAN address is refused (in router mode, where the box
/// forwards between the two).
#[test]
fn the_wan_gets_no_phone_files() {
    require_root();
    require_program("curl", "curl");
    let net = officebox_testkit::Office::new("prw").unwrap();
    let config = net
        .config("router")
        .set("web.enabled", true)
        .set("phone.sip_port", 5060)
        .append("[[phone.devices]]\nmac = \"80:5e:c0:12:34:56\"\nuser = \"alice\"\nvendor = \"yealink\"\n");
    let ob = Officebox::start_in_netns(bin(), &config.text(), &net.boxns).unwrap();
    ob.peer()
        .wait_for_log("web: serving the phones' files", READY_TIMEOUT)
        .unwrap();
    net.isp
        .run(
            "ip",
            [
                "route",
                "add",
                "192.168.1.0/24",
                "via",
                officebox_testkit::Office::WAN_BOX,
            ],
        )
        .unwrap();
    let curl = |url: &str| {
        let out = net
            .isp
            .command("curl")
            .args([
                "-s",
                "-k",
                "-m",
                "5",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                url,
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let wan = officebox_testkit::Office::WAN_BOX;
    // Nothing listens there: no HTTP status at all.
    assert_eq!(
        curl(&format!("http://{wan}:{HTTP}/y000000000066.cfg")),
        "000"
    );
    assert_eq!(
        curl(&format!("https://{wan}:{HTTPS}/805ec0123456.cfg")),
        "000"
    );
    // The LAN address answers the WAN side with a refusal, or not at all.
    for url in [
        format!("http://{BOX}:{HTTP}/y000000000066.cfg"),
        format!("https://{BOX}:{HTTPS}/805ec0123456.cfg"),
    ] {
        let code = curl(&url);
        assert!(
            code == "403" || code == "000",
            "{url}: {code}\n{}",
            ob.log()
        );
    }
}
