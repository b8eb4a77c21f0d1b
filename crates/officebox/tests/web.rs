//! The admin pages in headless Chromium (Selenium scripts in tests/web/), against a
//! running officebox; screenshots of each page go to target/web-screenshots/.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use officebox_testkit::{
    AdminPages, ClientKind, DhcpClient, OfficeLan, Officebox, READY_TIMEOUT, TestConfig,
    require_program, require_root, wait_until,
};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_officebox"))
}

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web")
}

/// Kept as a test artifact (not in git): target/web-screenshots/NAME.
fn shots(name: &str) -> PathBuf {
    officebox_testkit::screenshots_dir(name)
}

fn start(c: &TestConfig) -> Officebox {
    let ob = Officebox::start(bin(), &c.text()).expect("starts");
    ob.peer()
        .wait_for_log("web: serving the admin pages", READY_TIMEOUT)
        .expect("the admin pages are served");
    ob
}

fn run(script: &str, url: &str, shots: &Path, extra: &[&str], ob: &Officebox) {
    let out = officebox_testkit::run_browser_script(&scripts().join(script), url, shots, extra)
        .unwrap_or_else(|e| panic!("{script}: {e}\nofficebox:\n{}", ob.log()));
    assert!(
        out.status.success(),
        "{script}:\n{}\n{}\nofficebox:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        ob.log()
    );
}

/// One browser at a time: three headless Chromiums on a two-core machine make each
/// other's waits time out.
static ONE_BROWSER: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn preconditions() -> std::sync::MutexGuard<'static, ()> {
    officebox_testkit::require_browser();
    ONE_BROWSER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[test]
fn the_admin_pages_change_settings_safely_in_a_real_browser() {
    let _one = preconditions();
    let c = TestConfig::demo()
        .free_ports()
        .set("web.confirm_timeout", "8s");
    let url = format!("http://127.0.0.1:{}", c.int("web.admin_port"));
    let ob = start(&c);
    let config = ob.config_path().display().to_string();
    run(
        "admin.py",
        &url,
        &shots("admin"),
        &["--config", &config, "--confirm-seconds", "8"],
        &ob,
    );
    assert!(
        ob.log()
            .contains("web: the change was not confirmed in time")
    );
}

#[test]
fn the_admin_pages_add_a_user_that_the_command_line_sees() {
    let _one = preconditions();
    let c = TestConfig::demo().free_ports();
    let url = format!("http://127.0.0.1:{}", c.int("web.admin_port"));
    let ob = start(&c);
    run("add_user.py", &url, &shots("add-user"), &[], &ob);
    let out = Command::new(bin())
        .args(["user", "list", "--config"])
        .arg(ob.config_path())
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(
        list.lines()
            .any(|l| l.starts_with("carol") && l.contains("103")),
        "{list}"
    );
}

/// What `zbarimg` reads in the picture at `png` (the QR code's text).
fn decode_qr(png: &Path) -> String {
    require_program("zbarimg", "zbar-tools");
    let out = Command::new("zbarimg")
        .args(["--raw", "-q"])
        .arg(png)
        .output()
        .unwrap();
    assert!(out.status.success(), "zbarimg {}: {out:?}", png.display());
    // zbarimg ends what it read with a newline of its own.
    let text = String::from_utf8(out.stdout).unwrap();
    text.strip_suffix('\n').unwrap_or(&text).to_string()
}

#[test]
fn the_sites_page_shows_the_pairing_text_and_a_devices_configuration_as_qr_codes() {
    let _one = preconditions();
    let c = TestConfig::demo().free_ports();
    let url = format!("http://127.0.0.1:{}", c.int("web.admin_port"));
    let ob = start(&c);
    let dir = shots("sites");
    run("sites.py", &url, &dir, &[], &ob);
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    // Each QR code decodes to the text beside it.
    let pairing = read("pairing.txt");
    assert!(pairing.contains("[[vpn.sites]]") && pairing.contains("public_key = "));
    assert_eq!(decode_qr(&dir.join("pairing-qr.png")), pairing);
    let device = read("device.txt");
    assert!(
        device.contains("[Interface]") && device.contains("Address = 10.99.0.10/32"),
        "{device}"
    );
    assert_eq!(decode_qr(&dir.join("device-qr.png")), device);
    let phone = read("phone.txt");
    assert!(phone.contains("Address = 10.99.0.11/32"), "{phone}");
    let saved = std::fs::read_to_string(ob.config_path()).unwrap();
    let saved = officebox_config::parse("officebox.toml", &saved).unwrap();
    let added = saved.vpn.peers.iter().find(|p| p.name == "alice-phone");
    assert!(
        added.is_some_and(|p| p.user == "alice"
            && p.enabled
            && p.address == std::net::Ipv4Addr::new(10, 99, 0, 11)),
        "{added:?}"
    );
    // The page's new key is the one the command line shows now, and not the old one.
    let now = ob.cli(bin(), &["vpn", "device", "alice-laptop"]).unwrap();
    assert_eq!(now, read("device-new.txt"));
    assert_ne!(now, device);
    let key = |t: &str| {
        t.lines()
            .find(|l| l.starts_with("PrivateKey"))
            .unwrap()
            .to_string()
    };
    assert_ne!(key(&now), key(&device));
}

#[test]
fn five_wrong_passwords_and_the_admin_pages_slow_down_and_refuse() {
    let _one = preconditions();
    let c = TestConfig::demo().free_ports();
    let url = format!("http://127.0.0.1:{}", c.int("web.admin_port"));
    let ob = start(&c);
    run("login_limit.py", &url, &shots("login-limit"), &[], &ob);
}

/// `curl` on the office's PC.
fn curl(office: &OfficeLan, args: &[&str]) -> String {
    let out = office
        .pc
        .command("curl")
        .args(["-s", "--max-time", "5", "--noproxy", "*"])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `dig` on the office's PC, asking the box.
fn dig(office: &OfficeLan, name: &str) -> Vec<String> {
    office.pc.dig("192.168.1.1", name, "A").unwrap()
}

/// A second device on the office LAN: a macvlan `iface` (a MAC of its own) on the PC's
/// side, leasing an address as `hostname`.
fn join_the_lan(office: &OfficeLan, iface: &str, hostname: &str) -> std::io::Result<DhcpClient> {
    let ip = |args: &[&str]| match office.pc.command("ip").args(args).status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(std::io::Error::other(format!("ip {args:?}: {s}"))),
        Err(e) => Err(e),
    };
    // Each interface answers ARP only for its own address (no ARP flux between the two
    // interfaces on one subnet), inside the PC's namespace only.
    let arp = office
        .pc
        .command("sysctl")
        .args(["-q", "-w", "net.ipv4.conf.all.arp_ignore=1"])
        .args(["net.ipv4.conf.all.arp_announce=2"])
        .status()?;
    if !arp.success() {
        return Err(std::io::Error::other(format!("sysctl: {arp}")));
    }
    ip(&[
        "link",
        "add",
        "link",
        office.pc_iface(),
        "name",
        iface,
        "type",
        "macvlan",
    ])?;
    ip(&["link", "set", iface, "up"])?;
    DhcpClient::lease(
        ClientKind::Dhclient,
        &office.pc,
        iface,
        Some(hostname),
        Duration::from_secs(20),
    )
}

#[test]
fn from_a_pc_on_the_lan_the_list_pages_work_on_a_phone_screen() {
    let _one = preconditions();
    ClientKind::Dhclient.require();
    require_program("dig", "bind9-dnsutils");
    require_root();
    let office = OfficeLan::new("wbl", "192.168.1.1/24").unwrap();
    let c = TestConfig::demo()
        .set(
            "network.listen",
            toml_edit::Value::Array(toml_edit::Array::new()),
        )
        .set("network.lan.interface", office.box_iface())
        .set("dhcp.enabled", true)
        .set("dhcp.lease_time", "1h")
        .set("dns.port", 53)
        .set("ntp.enabled", false)
        .set("phone.enabled", false);
    let ob = Officebox::start_in_netns(bin(), &c.text(), &office.boxns).unwrap();
    ob.peer()
        .wait_for_log("web: serving the admin pages", READY_TIMEOUT)
        .unwrap();
    ob.peer()
        .wait_for_log("dhcp: serving", READY_TIMEOUT)
        .unwrap();
    let laptop = DhcpClient::lease(
        ClientKind::Dhclient,
        &office.pc,
        office.pc_iface(),
        Some("laptop-7"),
        Duration::from_secs(20),
    )
    .unwrap();
    let lease = laptop.current().unwrap().clone();
    // The PC's MAC (sysfs inside the PC's namespace).
    let out = office
        .pc
        .command("cat")
        .arg(format!("/sys/class/net/{}/address", office.pc_iface()))
        .output()
        .unwrap();
    let mac = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let config = ob.config_path().display().to_string();
    let address = lease.address.to_string();
    let scratch = officebox_testkit::scratch_dir("web-join").unwrap();
    let join_file = scratch.path().join("join");
    let (out, phone) = std::thread::scope(|s| {
        let browser = s.spawn(|| {
            officebox_testkit::run_browser_script_in(
                &office.pc,
                &scripts().join("office_lan.py"),
                &format!("http://192.168.1.1:{}", c.int("web.admin_port")),
                &shots("office-lan"),
                &[
                    "--config",
                    &config,
                    "--laptop-mac",
                    &mac,
                    "--laptop-address",
                    &address,
                    "--join-file",
                    &join_file.display().to_string(),
                ],
            )
        });
        // Once the lease table is open in the browser, a second device (a macvlan on
        // the PC's side of the LAN, with a MAC of its own) asks for an address.
        let asked = wait_until(Duration::from_secs(300), || {
            join_file.exists() || browser.is_finished()
        }) && join_file.exists();
        let phone = asked.then(|| join_the_lan(&office, "phone9", "phone-9"));
        (browser.join().unwrap().unwrap(), phone)
    });
    assert!(
        out.status.success(),
        "{}\nofficebox:\n{}",
        officebox_testkit::describe_output(&out),
        ob.log()
    );

    // What the pages saved is what the services do.
    let text = std::fs::read_to_string(ob.config_path()).unwrap();
    assert!(text.contains("[[dhcp.reservations]]"), "{text}");
    assert!(text.contains(&format!("mac = \"{mac}\"")), "{text}");
    assert!(text.contains("[[security.forwards]]"), "{text}");
    assert!(text.contains("server = \"192.168.1.77\""), "{text}");
    assert!(text.contains("admin_port = 18081"), "{text}");
    assert!(
        ob.log()
            .contains("web: serving the admin pages addr=192.168.1.1:18081"),
        "{}",
        ob.log()
    );
    assert_eq!(dig(&office, "nas.office.test"), ["192.168.1.30"]);
    assert_eq!(dig(&office, "laptop-7.office.test"), [address]);

    // The www site and the intranet, by name, from the office.
    let site = format!("192.168.1.1:{}", c.int("web.site_port"));
    let www = curl(
        &office,
        &["-H", "Host: www.office.test", &format!("http://{site}/")],
    );
    assert!(www.contains("public web site"), "{www}");
    let corp = curl(
        &office,
        &["-H", "Host: corp.office.test", &format!("http://{site}/")],
    );
    assert!(corp.contains("office.test intranet"), "{corp}");
    let phone = phone.expect("the script asked for the second device");
    assert!(
        phone.is_ok(),
        "the second device got a lease: {:?}",
        phone.err()
    );
    drop(phone);
    drop(laptop);
}

#[test]
fn the_sites_serve_files_by_host_name_with_caching_and_the_admin_pages_speak_https() {
    require_program("curl", "curl");
    let c = TestConfig::demo().free_ports().set("web.https", true);
    let ob = start(&c);
    let data = ob.dir().join("demo-data");
    let site = format!("http://127.0.0.1:{}", c.int("web.site_port"));
    let curl = |args: &[&str]| -> String {
        let out = Command::new("curl")
            .args(["-s", "--max-time", "5", "--noproxy", "*"])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    // Files of each site, and a directory without index.html listed.
    std::fs::create_dir_all(data.join("corp/handbook")).unwrap();
    std::fs::write(data.join("corp/handbook/holidays.txt"), "24 Dec to 1 Jan\n").unwrap();
    std::fs::write(data.join("corp/handbook/.draft"), "secret\n").unwrap();
    std::fs::write(data.join("www/logo.svg"), "<svg/>").unwrap();
    let corp = |path: &str| {
        curl(&[
            "-i",
            "-H",
            "Host: corp.office.test",
            &format!("{site}{path}"),
        ])
    };
    let holidays = corp("/handbook/holidays.txt");
    assert!(
        holidays.starts_with("HTTP/1.1 200") && holidays.ends_with("24 Dec to 1 Jan\n"),
        "{holidays}"
    );
    assert!(holidays.contains("content-type: text/plain"), "{holidays}");
    let listing = corp("/handbook/");
    assert!(
        listing.contains("holidays.txt") && !listing.contains(".draft"),
        "{listing}"
    );
    assert!(corp("/handbook").starts_with("HTTP/1.1 301"));
    assert!(corp("/handbook/.draft").starts_with("HTTP/1.1 404"));
    assert!(corp("/../officebox.toml").starts_with("HTTP/1.1 404"));
    assert!(corp("/handbook/%2e%2e/%2e%2e/officebox.toml").starts_with("HTTP/1.1 404"));
    // The www site does not see the intranet's files.
    let www = |extra: &[&str], path: &str| {
        let mut args = vec!["-i", "-H", "Host: www.office.test"];
        args.extend_from_slice(extra);
        let url = format!("{site}{path}");
        args.push(&url);
        curl(&args)
    };
    assert!(www(&[], "/handbook/holidays.txt").starts_with("HTTP/1.1 404"));
    let logo = www(&[], "/logo.svg");
    assert!(logo.contains("content-type: image/svg+xml"), "{logo}");
    assert!(
        logo.contains("cache-control: public, max-age=3600"),
        "{logo}"
    );
    // Caching: the ETag and the date bring a 304 without the body.
    let etag = logo
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .unwrap()
        .trim()
        .to_string();
    let again = www(&["-H", &format!("If-None-Match: {etag}")], "/logo.svg");
    assert!(again.starts_with("HTTP/1.1 304"), "{again}");
    let head = www(&["-I"], "/logo.svg");
    assert!(head.contains("content-length: 6"), "{head}");
    let post = www(&["-X", "POST"], "/");
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    // admin.<domain> on the site port goes to the admin pages.
    let admin = curl(&["-i", "-H", "Host: admin.office.test", &format!("{site}/")]);
    assert!(
        admin.contains(&format!(
            "location: https://admin.office.test:{}/",
            c.int("web.admin_port")
        )),
        "{admin}"
    );

    // The admin pages over HTTPS with the box's own certificate; the cookies are Secure.
    let admin_url = format!("https://127.0.0.1:{}/login", c.int("web.admin_port"));
    let login = curl(&["-i", "-k", &admin_url]);
    assert!(login.starts_with("HTTP/1.1 200"), "{login}");
    assert!(
        login
            .lines()
            .any(|l| l.starts_with("set-cookie: officebox_login=") && l.contains("; Secure")),
        "{login}"
    );
    let cert = ob.dir().join("demo-data/tls/cert.pem");
    let verified = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--cacert",
        cert.to_str().unwrap(),
        "--resolve",
        &format!("admin.office.test:{}:127.0.0.1", c.int("web.admin_port")),
        &format!(
            "https://admin.office.test:{}/login",
            c.int("web.admin_port")
        ),
    ]);
    assert_eq!(verified, "200", "the certificate names admin.office.test");
    let plain = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("http://127.0.0.1:{}/login", c.int("web.admin_port")),
    ]);
    assert_ne!(plain, "200", "no plain HTTP once HTTPS is on");

    // The pages' script is public; the live tables it fetches are not.
    let admin = format!("https://127.0.0.1:{}", c.int("web.admin_port"));
    let script = curl(&["-i", "-k", &format!("{admin}/officebox.js")]);
    assert!(script.starts_with("HTTP/1.1 200"), "{script}");
    assert!(
        script.contains("content-type: text/javascript") && script.contains("data-live"),
        "{script}"
    );
    assert!(
        login.contains("script-src 'self'; connect-src 'self'"),
        "the policy lets the pages run their own script and no other: {login}"
    );
    let live = curl(&["-i", "-k", &format!("{admin}/live/dhcp")]);
    assert!(
        live.starts_with("HTTP/1.1 303") && live.contains("location: /login"),
        "{live}"
    );
}

#[test]
fn a_logged_in_admin_posting_to_routes_without_a_resource_gets_404_not_a_crash() {
    require_program("curl", "curl");
    let c = TestConfig::demo().free_ports();
    let ob = start(&c);
    let base = format!("http://127.0.0.1:{}", c.int("web.admin_port"));
    let pages = AdminPages::new(&base, ob.dir().join("cookies.txt"), None);
    let logged_in = pages.log_in("admin", "demo-admin");
    assert!(logged_in.starts_with("HTTP/1.1 303"), "{logged_in}");
    let users = pages.get("/users");
    for path in [
        "/history/rollback",
        "/users/delete",
        "/mail/queue/delete",
        "/users/nobody",
    ] {
        let answer = pages.post(&users, path, "");
        assert!(
            answer.starts_with("HTTP/1.1 404"),
            "POST {path}: {answer}\n{}",
            ob.log()
        );
    }
    assert!(!ob.log().contains("panicked"), "{}", ob.log());
}

/// A user's own fax machine is set on their page, and the Phones page lists the fax log
/// both ways (rows written into the state database as the phone service writes them).
#[test]
fn a_user_gets_a_fax_machine_and_the_phones_page_lists_faxes_both_ways() {
    let _one = preconditions();
    let c = TestConfig::demo().free_ports();
    let url = format!("http://127.0.0.1:{}", c.int("web.admin_port"));
    let ob = start(&c);
    let db = officebox_store::Db::open(&ob.dir().join("demo-data/state.db")).unwrap();
    let now = officebox_store::unix_now();
    let fax =
        |at: i64, outgoing: bool, code: Option<i32>, reason: &str| officebox_store::FaxEntry {
            at,
            outgoing,
            caller: if outgoing {
                "alice@office.test"
            } else {
                "5551234"
            }
            .into(),
            station: if outgoing { "" } else { "+49 30 5551234" }.into(),
            number: if outgoing { "95550123" } else { "alice" }.into(),
            login: "alice".into(),
            pages: 2,
            complete: if code == Some(0) { 2 } else { 1 },
            code,
            reason: reason.into(),
            seconds: 40,
        };
    db.add_fax(&fax(now - 300, true, Some(0), "OK")).unwrap();
    db.add_fax(&fax(now - 200, true, Some(48), "the line was cut"))
        .unwrap();
    db.add_fax(&fax(now - 100, false, Some(0), "OK")).unwrap();
    run("faxes.py", &url, &shots("faxes"), &[], &ob);
    let text = std::fs::read_to_string(ob.config_path()).unwrap();
    let alice = text
        .split("[[users]]")
        .find(|u| u.contains("login = \"alice\""))
        .unwrap();
    assert!(alice.contains("fax = true"), "{alice}");
}
