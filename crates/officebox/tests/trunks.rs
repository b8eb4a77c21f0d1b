//! SIP trunks end to end: officebox (managing its interfaces, firewall-nat mode) registers
//! a trunk account at a telephone provider played by kamailio in the ISP's namespace
//! (registrar with digest authentication, usrloc without a database). The registration
//! shows in kamailio's location table (`kamcmd ul.dump`) with the box's WAN address and
//! in `officebox phone trunks`, and the provider reaches the box there (an OPTIONS to the
//! account, relayed by kamailio, is answered by officebox); it is refreshed at the time the provider grants; a wrong
//! password is reported as failing and a reload with the right one recovers; a provider
//! that challenges with SHA-256 only is answered with SHA-256; TCP works as UDP does; the
//! trunk is un-REGISTERed when officebox stops.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::path::Path;
use std::time::Duration;

use officebox_testkit::{
    KamailioProvider, Office, Officebox, ProviderOptions, READY_TIMEOUT, TestConfig, wait_until,
};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_officebox"))
}

const USER: &str = "4930123456";
const PASSWORD: &str = "trunk-secret";

/// The box's SIP port (the demo's, in the box's own namespace).
fn sip_port(c: &TestConfig) -> i64 {
    c.int("phone.sip_port")
}

/// The office in firewall-nat mode with one registration trunk to the ISP's
/// 198.51.100.1, and an IP trunk beside it.
fn config(office: &Office, trunk_extra: &str, password: &str) -> TestConfig {
    office.config("firewall-nat").append(&format!(
        "[[phone.trunks]]\nname = \"main\"\nserver = \"{}\"\nusername = \"{USER}\"\n\
         password = \"{password}\"\n{trunk_extra}\n\
         [[phone.trunks]]\nname = \"backup\"\nkind = \"ip\"\nserver = \"203.0.113.9\"\n\
         addresses = [\"203.0.113.9\", \"203.0.113.64/26\"]\n",
        Office::WAN_ISP
    ))
}

fn start(office: &Office, c: &TestConfig) -> Officebox {
    let ob = Officebox::start_in_netns(bin(), &c.text(), &office.boxns).expect("starts");
    ob.peer()
        .wait_for_log("phone: serving", READY_TIMEOUT)
        .expect("phone starts");
    ob
}

fn trunks(ob: &Officebox) -> String {
    ob.cli(bin(), &["phone", "trunks"]).unwrap()
}

/// The line of trunk `name` in `officebox phone trunks`.
fn line(ob: &Officebox, name: &str) -> String {
    trunks(ob)
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_default()
        .to_string()
}

/// Waits until trunk `name`'s line contains `what`; the line.
fn wait_for_line(ob: &Officebox, name: &str, what: &str, within: Duration) -> String {
    let ok = wait_until(within, || line(ob, name).contains(what));
    let l = line(ob, name);
    assert!(
        ok,
        "trunk {name} never showed {what:?}; now: {l:?}\n{}",
        ob.peer().log_tail(30)
    );
    l
}

fn provider(options: &ProviderOptions, office: &Office) -> KamailioProvider {
    KamailioProvider::start(&office.isp, options).expect("kamailio starts")
}

#[test]
fn a_trunk_registers_at_the_provider_and_unregisters_when_officebox_stops() {
    officebox_testkit::require_program("sipsak", "sipsak");
    let office = Office::new("trk").unwrap();
    let kam = provider(
        &ProviderOptions::new(Office::WAN_ISP, USER, PASSWORD),
        &office,
    );
    let c = config(&office, "", PASSWORD);
    let ob = start(&office, &c);
    let contact = format!("sip:{USER}@{}:{}", Office::WAN_BOX, sip_port(&c));
    let l = wait_for_line(&ob, "main", "registered", Duration::from_secs(20));
    assert!(
        l.contains("register")
            && l.contains(Office::WAN_ISP)
            && l.contains(&format!("as {contact} for ")),
        "{l}"
    );
    let table = kam.contacts().unwrap();
    assert!(
        table.contains(&contact),
        "kamailio's location table:\n{table}"
    );
    assert!(table.contains(&format!("AoR: {USER}")), "{table}");
    let saved = kam.saved();
    assert!(
        saved
            .iter()
            .any(|s| s.contains("qop=auth, nc=00000001") && !s.contains("SHA-256")),
        "answered kamailio's MD5 challenge with qop=auth: {saved:?}"
    );
    // The provider reaches the box at the contact it registered (through the box's
    // firewall): an OPTIONS to the account, relayed by kamailio, is answered by officebox.
    let out = office
        .isp
        .command("sipsak")
        .args(["-vv", "-s", &format!("sip:{USER}@{}", Office::WAN_ISP)])
        .args(["-H", Office::WAN_ISP])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("SIP/2.0 200 OK") && text.contains("Server: officebox"),
        "{text}{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        kam.log()
    );
    let ip = line(&ob, "backup");
    assert!(
        ip.contains(" ip ")
            && ip.ends_with("ip          (accepts calls from: 203.0.113.9, 203.0.113.64/26)"),
        "{ip:?}"
    );
    // Stopping un-REGISTERs: kamailio forgets the contact.
    let (status, log, dir) = ob.stop_with("TERM", Duration::from_secs(5)).unwrap();
    assert!(status.success(), "{log}");
    assert!(log.contains("phone: trunk unregistered"), "{log}");
    let table = kam.contacts().unwrap();
    assert!(!table.contains(&contact), "still registered:\n{table}");
    drop(dir);
}

#[test]
fn a_wrong_password_is_reported_and_a_reload_with_the_right_one_recovers() {
    let office = Office::new("trw").unwrap();
    let kam = provider(
        &ProviderOptions::new(Office::WAN_ISP, USER, PASSWORD),
        &office,
    );
    let wrong = config(&office, "", "not-the-password");
    let ob = start(&office, &wrong);
    let l = wait_for_line(&ob, "main", "failing     401", Duration::from_secs(20));
    // Refused credentials are tried again in 10 minutes (a second may have passed).
    let next = l
        .split("; next try in ")
        .nth(1)
        .and_then(|t| t.trim_end_matches('s').parse::<u32>().ok());
    assert!(
        l.contains("401 Unauthorized (the provider refused the user name or password)")
            && next.is_some_and(|n| (590..=600).contains(&n)),
        "{l}"
    );
    assert!(kam.saved().is_empty());
    assert!(!kam.contacts().unwrap().contains(USER));
    // Fixed by a reload: registered at once, not after the slow retry.
    ob.write_config(&config(&office, "", PASSWORD).text())
        .unwrap();
    assert!(ob.reload().unwrap(), "{}", ob.log());
    wait_for_line(&ob, "main", "registered", Duration::from_secs(10));
    assert!(kam.contacts().unwrap().contains(USER));
}

#[test]
fn registrations_are_refreshed_at_the_time_the_provider_grants() {
    let office = Office::new("trr").unwrap();
    let mut options = ProviderOptions::new(Office::WAN_ISP, USER, PASSWORD);
    options.max_expires = Some(4);
    let kam = provider(&options, &office);
    let ob = start(&office, &config(&office, "expires = \"1m\"", PASSWORD));
    wait_for_line(&ob, "main", "registered", Duration::from_secs(20));
    let first = kam.saved().len();
    // Granted 4 s, refreshed at 85%: every 3.4 s; in 10 s, three more at least.
    std::thread::sleep(Duration::from_secs(10));
    let saved = kam.saved();
    assert!(
        saved.len() >= first + 2 && saved.len() <= first + 4,
        "{} REGISTERs saved after the first {first}: {saved:#?}",
        saved.len()
    );
    // Each asked for the configured minute; kamailio granted 4 s, and the box kept it up.
    assert!(
        saved.iter().all(|s| s.contains("expires=[60]")),
        "{saved:#?}"
    );
    assert!(kam.contacts().unwrap().contains(USER));
    let l = line(&ob, "main");
    assert!(l.contains("registered"), "{l}");
}

#[test]
fn a_provider_that_asks_for_longer_registrations_gets_them() {
    let office = Office::new("tri").unwrap();
    let mut options = ProviderOptions::new(Office::WAN_ISP, USER, PASSWORD);
    options.min_expires = Some(600);
    let kam = provider(&options, &office);
    let ob = start(&office, &config(&office, "expires = \"2m\"", PASSWORD));
    wait_for_line(&ob, "main", "registered", Duration::from_secs(20));
    let saved = kam.saved();
    assert!(
        saved.iter().all(|s| s.contains("expires=[600]")),
        "{saved:#?}"
    );
    assert!(ob.log().contains("trunk asks for longer registrations"));
}

#[test]
fn a_provider_that_challenges_with_sha256_only_is_answered_with_sha256() {
    let office = Office::new("trs").unwrap();
    let mut options = ProviderOptions::new(Office::WAN_ISP, USER, PASSWORD);
    options.algorithm = Some("SHA-256".into());
    let kam = provider(&options, &office);
    let ob = start(&office, &config(&office, "", PASSWORD));
    wait_for_line(&ob, "main", "registered", Duration::from_secs(20));
    let saved = kam.saved();
    assert!(
        !saved.is_empty() && saved.iter().all(|s| s.contains("algorithm=SHA-256")),
        "{saved:#?}\n{}",
        kam.log()
    );
}

#[test]
fn a_trunk_registers_over_tcp() {
    let office = Office::new("trt").unwrap();
    let mut options = ProviderOptions::new(Office::WAN_ISP, USER, PASSWORD);
    options.tcp = true;
    let kam = provider(&options, &office);
    let c = config(&office, "transport = \"tcp\"", PASSWORD);
    let ob = start(&office, &c);
    let contact = format!(
        "sip:{USER}@{}:{};transport=tcp",
        Office::WAN_BOX,
        sip_port(&c)
    );
    let l = wait_for_line(&ob, "main", "registered", Duration::from_secs(20));
    assert!(l.contains(&contact), "{l}");
    let saved = kam.saved();
    assert!(saved.iter().all(|s| s.contains(" tcp ")), "{saved:#?}");
    assert!(kam.contacts().unwrap().contains(&contact));
}

/// An IP trunk's provider never registers, so its calls would meet the firewall with no
/// connection tracking entry: the box's SIP port answers its listed addresses (and only
/// them) even though `sip` is not among the services open to the WAN.
#[test]
fn an_ip_trunks_provider_reaches_the_sip_port_through_the_firewall_and_nobody_else() {
    let office = Office::new("trf").unwrap();
    let ip_trunk = |addresses: &str| {
        office.config("firewall-nat").append(&format!(
            "[[phone.trunks]]\nname = \"carrier\"\nkind = \"ip\"\nserver = \"{}\"\n\
             addresses = [{addresses}]\n",
            Office::WAN_ISP
        ))
    };
    let c = ip_trunk(&format!("\"{}\"", Office::WAN_ISP));
    let ob = start(&office, &c);
    let options = || {
        let out = office
            .isp
            .command("sipsak")
            .args(["-vv", "-D", "2", "-s"])
            .arg(format!("sip:{}:{}", Office::WAN_BOX, sip_port(&c)))
            .args(["-H", Office::WAN_ISP])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let answered = options();
    assert!(
        answered.contains("SIP/2.0 200 OK"),
        "{answered}\n{}",
        ob.log()
    );
    // The same provider, no longer listed: the firewall drops it like any stranger.
    ob.write_config(&ip_trunk("\"203.0.113.9\"").text())
        .unwrap();
    assert!(ob.reload().unwrap(), "{}", ob.log());
    // The network service applies the new ruleset after the reload is published.
    let ruleset = || {
        let out = office
            .boxns
            .run("nft", ["list", "chain", "inet", "officebox", "input"]);
        out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    assert!(
        wait_until(Duration::from_secs(10), || {
            let r = ruleset();
            r.contains("203.0.113.9") && !r.contains(&format!("saddr {}", Office::WAN_ISP))
        }),
        "{}",
        ruleset()
    );
    // (sipsak sends from a new port each time: a flow the first OPTIONS left in
    // connection tracking does not carry the second.)
    let dropped = options();
    assert!(!dropped.contains("SIP/2.0"), "{dropped}");
}

/// sipp in `ns`, from the voice crate's scenarios, writing what it receives to
/// `dir/NAME.msg`: a phone or provider that waits (its Peer), or `None` to run to the end
/// (then its output).
fn sipp_in(
    ns: &officebox_testkit::Netns,
    dir: &Path,
    name: &str,
    args: &[&str],
) -> std::process::Command {
    let scenarios = Path::new(env!("CARGO_MANIFEST_DIR")).join("../voice/tests/sipp");
    let mut cmd = ns.command("sipp");
    cmd.current_dir(scenarios)
        .args(args)
        .args([
            "-nostdin",
            "-m",
            "1",
            "-recv_timeout",
            "20s",
            "-trace_msg",
            "-message_file",
        ])
        .arg(dir.join(format!("{name}.msg")));
    cmd
}

/// Runs a sipp `cmd` to its end and fails, with the other side's log and officebox's,
/// unless every call of it succeeded.
fn run_to_end(cmd: &mut std::process::Command, other: &officebox_testkit::Peer, ob: &Officebox) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        other.log_tail(40),
        ob.log()
    );
}

/// Waits for the call after the first `calls_before` to end, and checks the box relayed
/// speech both ways (over 50 packets each way: three seconds of 30 ms packets is 100).
fn audio_both_ways(ob: &Officebox, calls_before: usize) {
    let ok = wait_until(Duration::from_secs(5), || {
        ob.log().matches("phone: call ended").count() > calls_before
    });
    let (a_to_b, b_to_a) = media_counts(&ob.log());
    eprintln!("relayed packets: {a_to_b} to the far side, {b_to_a} back");
    assert!(
        ok && a_to_b > 50 && b_to_a > 50,
        "audio each way: {a_to_b}, {b_to_a}\n{}",
        ob.log()
    );
}

/// The box's packet counts for the last call (on its "phone: call ended" line): each way.
fn media_counts(log: &str) -> (u64, u64) {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("phone: call ended"))
        .unwrap_or_default();
    let count = |key: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (count("a_to_b="), count("b_to_a="))
}

#[test]
fn calls_over_an_ip_trunk_cross_the_firewall_with_the_wan_address_and_audio_both_ways() {
    officebox_testkit::require_program("sipp", "sip-tester");
    let office = Office::new("trkc").unwrap();
    let c = office.config("firewall-nat").append(
        "[[phone.trunks]]\nname = \"isp\"\nkind = \"ip\"\nserver = \"198.51.100.1:5070\"\n\
         addresses = [\"198.51.100.1\"]\n\n\
         [[phone.routes]]\nname = \"out\"\npattern = \"9.\"\nstrip = 1\ntrunks = [\"isp\"]\n\n\
         [[phone.inbound]]\nnumber = \"4930123457\"\ndestination = \"extension:102\"\n",
    );
    let ob = start(&office, &c);
    let port = sip_port(&c);
    let dir = officebox_testkit::scratch_dir("trunk-wan").unwrap();
    let wan_box = format!("{}:{port}", Office::WAN_BOX);
    let lan_box = format!("192.168.1.1:{port}");

    // Out: alice's phone on the LAN dials 9 and the number; the provider answers and both
    // send speech.
    let provider = officebox_testkit::Peer::spawn_in(
        "provider-uas",
        sipp_in(
            &office.isp,
            dir.path(),
            "provider",
            &[
                "-sf",
                "uas_answer_audio.xml",
                "-i",
                Office::WAN_ISP,
                "-p",
                "5070",
            ],
        ),
        dir.path(),
    )
    .unwrap();
    let mut out = sipp_in(
        &office.pc,
        dir.path(),
        "alice",
        &[
            "-sf",
            "uac_call_audio.xml",
            "-inf",
            "caller.csv",
            "-key",
            "domain",
            "office.test",
            "-key",
            "callee",
            "95551234",
            "-auth_uri",
            "office.test",
            "-i",
            Office::PC,
            "-p",
            "5062",
        ],
    );
    out.arg(&lan_box);
    run_to_end(&mut out, &provider, &ob);
    assert!(wait_until(Duration::from_secs(10), || provider
        .try_wait()
        .ok()
        .flatten()
        .is_some()));
    let seen = std::fs::read_to_string(dir.path().join("provider.msg")).unwrap();
    let invite = seen
        .split("INVITE sip:")
        .nth(1)
        .map(|m| m.split("\n\n\n").next().unwrap_or(m).to_string())
        .unwrap_or_default();
    // The provider sees the box by its WAN address: the Request-URI at the provider,
    // Via, Contact and the SDP's address (the box is the NAT; nothing names the LAN).
    assert!(
        invite.starts_with("5551234@198.51.100.1:5070 SIP/2.0"),
        "{invite}"
    );
    assert!(
        invite.contains(&format!("Via: SIP/2.0/UDP {wan_box}"))
            && invite.contains(&format!("@{wan_box}>"))
            && invite.contains("c=IN IP4 198.51.100.2")
            && !invite.contains("192.168.1."),
        "{invite}"
    );
    audio_both_ways(&ob, 0);

    // In: the provider calls bob's DID at the box's WAN address; bob's phone on the LAN
    // answers, and speech crosses both ways again (the RTP ports are open on the WAN).
    let bob = officebox_testkit::Peer::spawn_in(
        "bob-uas",
        sipp_in(
            &office.pc,
            dir.path(),
            "bob",
            &[
                "-sf",
                "uas_answer_audio.xml",
                "-i",
                Office::PC,
                "-p",
                "5064",
            ],
        ),
        dir.path(),
    )
    .unwrap();
    let reg = sipp_in(
        &office.pc,
        dir.path(),
        "bob-register",
        &[
            "-sf",
            "register_contact.xml",
            "-inf",
            "callee.csv",
            "-key",
            "domain",
            "office.test",
            "-key",
            "contact_port",
            "5064",
            "-auth_uri",
            "office.test",
            "-i",
            Office::PC,
            "-p",
            "5066",
        ],
    )
    .arg(&lan_box)
    .output()
    .unwrap();
    assert!(
        reg.status.success(),
        "{}",
        String::from_utf8_lossy(&reg.stdout)
    );
    let calls_before = ob.log().matches("phone: call ended").count();
    let mut call = sipp_in(
        &office.isp,
        dir.path(),
        "provider-call",
        &[
            "-sf",
            "provider_call_audio.xml",
            "-key",
            "did",
            "4930123457",
            "-i",
            Office::WAN_ISP,
            "-p",
            "5070",
        ],
    );
    call.arg(&wan_box);
    run_to_end(&mut call, &bob, &ob);
    audio_both_ways(&ob, calls_before);
    let answer = std::fs::read_to_string(dir.path().join("provider-call.msg")).unwrap();
    assert!(answer.contains("c=IN IP4 198.51.100.2"), "{answer}");
    drop(bob);
}
