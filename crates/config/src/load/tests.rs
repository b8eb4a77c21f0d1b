use super::*;

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA";

fn parse_ok(extra: &str) -> Config {
    match parse("t.toml", &with_users(extra)) {
        Ok(c) => c,
        Err(d) => panic!("{d}"),
    }
}

/// `extra` in a small valid file with users admin and bob (102).
fn with_users(extra: &str) -> String {
    format!(
        "[network]\ndomain = \"example.com\"\nmanage = false\n[dns]\nuse_upstream = false\n{extra}\n\
         [[users]]\nlogin = \"admin\"\npassword = \"{HASH}\"\nadmin = true\n\
         [[users]]\nlogin = \"bob\"\npassword = \"{HASH}\"\nextension = \"102\"\n"
    )
}

/// What the loader says about `extra` in that file (nothing: valid).
fn problems(extra: &str) -> String {
    parse("t.toml", &with_users(extra))
        .err()
        .map(|d| d.to_string())
        .unwrap_or_default()
}

#[test]
fn the_shipped_configs_are_valid() {
    let demo = include_str!("../../../../examples/demo.toml");
    let c = parse("demo.toml", demo).unwrap();
    assert_eq!(c.users.len(), 3);
    assert!(!c.network.manage);
    assert!(!c.dns.use_upstream, "the demo never forwards anywhere");
    let t = crate::template::default_config("frontdesk", "acme.example", HASH);
    let c = parse("init.toml", &t).unwrap();
    assert_eq!(c.network.domain, "acme.example");
    assert_eq!(c.security.mode, SecurityMode::FirewallNat);
    assert!(!c.mail.relay_from_wan);
}

/// The schema is the one place defaults are written: writing any setting's default
/// into a file loads the same config as leaving it out.
#[test]
fn every_schema_default_is_the_loaders_default() {
    let file = |table: &str, line: &str| {
        let catch_all = "server = \"pop.isp.example\"\nlogin = \"o\"\npassword = \"p\"";
        let (top, mut tables) = (
            if table.is_empty() { line } else { "" },
            vec![
                (
                    "network",
                    "domain = \"example.com\"\nmanage = false".to_string(),
                ),
                ("network.wan", "mode = \"dhcp\"".to_string()),
                ("dns", "use_upstream = false".to_string()),
                ("mail.catch_all", catch_all.to_string()),
            ],
        );
        match tables.iter_mut().find(|(t, _)| *t == table) {
            Some((_, body)) => {
                body.push('\n');
                body.push_str(line);
            }
            None if !table.is_empty() => tables.push((table, line.to_string())),
            None => {}
        }
        let mut text = format!("{top}\n");
        for (t, body) in tables {
            text.push_str(&format!("[{t}]\n{body}\n"));
        }
        text.push_str(&format!(
            "[[users]]\nlogin = \"admin\"\npassword = \"{HASH}\"\nadmin = true\n"
        ));
        match parse("t.toml", &text) {
            Ok(c) => c,
            Err(d) => panic!("{d}\n{text}"),
        }
    };
    let without = file("", "");
    let mut checked = 0;
    for s in crate::schema::SETTINGS {
        let Some(value) = s.default_toml() else {
            continue;
        };
        // Entries of lists, and the two the base file itself sets, are not plain tables.
        if s.path.contains("[]") || ["network.manage", "dns.use_upstream"].contains(&s.path) {
            continue;
        }
        let with = file(s.table(), &format!("{} = {value}", s.key()));
        assert_eq!(
            with, without,
            "{} = {value} is not what leaving it out gives",
            s.path
        );
        checked += 1;
    }
    assert!(checked > 40, "only {checked} settings were checked");
    // And the two the base sets: their defaults are on.
    assert!(crate::schema::MANAGE.bool() && crate::schema::DNS_USE_UPSTREAM.bool());
}

#[test]
fn defaults_are_the_appliance_defaults() {
    let c = parse_ok("");
    assert_eq!(c.network.lan.net.to_string(), "192.168.1.0/24");
    assert_eq!(c.network.lan.net.address, Ipv4Addr::new(192, 168, 1, 1));
    assert_eq!(c.security.mode, SecurityMode::FirewallNat);
    assert_eq!(c.security.wan_services, vec![Service::Smtp, Service::Www]);
    assert_eq!(c.dhcp.range, None);
    assert_eq!(c.dhcp.lease_time, Duration::from_secs(86_400));
    assert_eq!(
        (c.mail.smtp_port, c.mail.pop3_port, c.web.admin_port),
        (25, 110, 8080)
    );
    assert_eq!(c.phone.voicemail_extension, "*97");
    assert_eq!(c.phone.no_answer_timeout, Duration::from_secs(20));
    assert_eq!(c.phone.call_log_days, 90);
    assert_eq!(c.mail.queue.give_up_after, Duration::from_secs(5 * 86_400));
    assert_eq!(c.users[1].extension.as_deref(), Some("102"));
    assert_eq!(c.users[1].name, "bob", "the name defaults to the login");
}

#[test]
fn aliases_keep_a_copy_and_forward() {
    let c = parse_ok(
        "[mail.aliases]\nbob = [\"bob\", \"Bob@Elsewhere.Example\"]\nsales = [\"bob\", \"admin@example.com\"]\nall = [\"sales\", \"bob\"]\n",
    );
    let find = |n: &str| {
        c.mail
            .aliases
            .iter()
            .find(|a| a.name == n)
            .unwrap()
            .members
            .clone()
    };
    assert_eq!(
        find("bob"),
        vec![
            AliasMember::Local("bob".into()),
            AliasMember::External("bob@elsewhere.example".into())
        ]
    );
    assert_eq!(
        find("sales"),
        vec![
            AliasMember::Local("bob".into()),
            AliasMember::Local("admin".into())
        ]
    );
    assert_eq!(
        find("all"),
        vec![
            AliasMember::Local("sales".into()),
            AliasMember::Local("bob".into())
        ]
    );
}

#[test]
fn records_resolve_names_and_values() {
    let c = parse_ok(
        r#"[[dns.records]]
name = "printer"
type = "A"
value = "192.168.1.20"
[[dns.records]]
name = "@"
type = "MX"
value = "20 backup.example.net."
ttl = 60
[[dns.records]]
name = "_sip._udp"
type = "SRV"
value = "10 5 5060 officebox"
[[dns.records]]
name = "20.1.168.192.in-addr.arpa."
type = "PTR"
value = "printer"
[[dns.records]]
name = "files"
type = "CNAME"
value = "printer"
"#,
    );
    let r = &c.dns.records;
    assert_eq!(r[0].name, "printer.example.com");
    assert_eq!(r[0].data, RecordData::A(Ipv4Addr::new(192, 168, 1, 20)));
    assert_eq!(r[1].name, "example.com");
    assert_eq!(r[1].ttl, 60);
    assert_eq!(
        r[1].data,
        RecordData::Mx {
            preference: 20,
            exchange: "backup.example.net".into()
        }
    );
    assert_eq!(
        r[2].data,
        RecordData::Srv {
            priority: 10,
            weight: 5,
            port: 5060,
            target: "officebox.example.com".into()
        }
    );
    assert_eq!(r[3].name, "20.1.168.192.in-addr.arpa");
    assert_eq!(r[4].data, RecordData::Cname("printer.example.com".into()));
    assert_eq!(r[4].ttl, 3600);
}

#[test]
fn reverse_zones() {
    let net = |a: [u8; 4], prefix| Ipv4Net {
        address: Ipv4Addr::from(a),
        prefix,
    };
    assert_eq!(
        reverse_zone(net([192, 168, 1, 1], 24)),
        "1.168.192.in-addr.arpa"
    );
    assert_eq!(
        reverse_zone(net([172, 16, 0, 1], 16)),
        "16.172.in-addr.arpa"
    );
    assert_eq!(reverse_zone(net([10, 0, 0, 1], 28)), "0.0.10.in-addr.arpa");
}

#[test]
fn the_call_log_is_kept_a_whole_number_of_days_at_least_one() {
    assert_eq!(
        parse_ok("[phone]\ncall_log_days = 7\n").phone.call_log_days,
        7
    );
    let text = format!(
        "[network]\ndomain = \"example.com\"\nmanage = false\n[phone]\ncall_log_days = 0\n\
         [[users]]\nlogin = \"admin\"\npassword = \"{HASH}\"\nadmin = true\n"
    );
    let Err(d) = parse("t.toml", &text) else {
        panic!("0 days accepted");
    };
    let d = d.to_string();
    assert!(
        d.contains("phone.call_log_days") && d.contains("from 1 to 36500"),
        "{d}"
    );
}

#[test]
fn a_whole_dial_plan_loads() {
    use crate::dialplan::*;
    let c = parse_ok(
        r#"[phone]
operator = "extension:102"
emergency_numbers = ["911"]

[[phone.trunks]]
name = "a"
kind = "ip"
server = "192.0.2.5"
addresses = ["192.0.2.5"]

[[phone.trunks]]
name = "b"
kind = "ip"
server = "192.0.2.6"
addresses = ["192.0.2.6"]

[[phone.routes]]
name = "local"
pattern = "9NXXXXXX"
trunks = ["a", "b"]
strip = 1

[[phone.routes]]
name = "anything"
pattern = "9."
trunks = ["a"]
strip = 1
prepend = "+1"
users = ["bob"]
allow_international = true

[[phone.inbound]]
number = "+15551230000"
destination = "schedule:office"

[[phone.ring_groups]]
name = "sales"
strategy = "hunt"
members = ["102", "number:+15559990000"]
ring_time = "15s"
no_answer = "voicemail:bob"

[[phone.schedules]]
name = "office"
open = ["mon-fri 09:00-17:00"]
holidays = ["2026-12-25"]
when_open = "group:sales"
when_closed = "attendant:night"

[[phone.attendants]]
name = "night"
greeting = "We are closed."
keys = ["1=voicemail:bob", "0=operator"]
"#,
    );
    let d = &c.phone.dial_plan;
    assert_eq!(d.emergency_numbers, vec!["911"]);
    assert_eq!(d.operator, Some(Destination::Extension("102".into())));
    assert_eq!(d.routes.len(), 2);
    assert_eq!(d.routes[1].outgoing("95551234"), "+15551234");
    assert_eq!(d.routes[1].users.as_deref(), Some(&["bob".to_string()][..]));
    assert_eq!(
        d.inbound[0].destination,
        Destination::Schedule("office".into())
    );
    let g = &d.ring_groups[0];
    assert_eq!(
        (g.strategy, g.ring_time),
        (Strategy::Hunt, Duration::from_secs(15))
    );
    assert_eq!(g.members[1], Member::Number("+15559990000".into()));
    assert_eq!(d.schedules[0].holidays, vec![(2026, 12, 25)]);
    let a = &d.attendants[0];
    assert_eq!(a.keys[1], ('0', Destination::Operator));
    assert_eq!(
        (a.no_input.clone(), a.dial_by_extension),
        (Destination::Operator, true)
    );
    assert_eq!(d.international_prefixes, vec!["011", "00"], "the default");
}

#[test]
fn outside_call_limits_per_user() {
    let c = parse_ok("");
    assert_eq!(
        c.users[1].outside,
        OutsideCalls {
            at_once: 2,
            per_day: 100,
            from_remote_phones: false
        }
    );
    let text = format!(
        "[network]\ndomain = \"example.com\"\nmanage = false\n[dns]\nuse_upstream = false\n\
         [[users]]\nlogin = \"admin\"\npassword = \"{HASH}\"\nadmin = true\n\
         outside_calls_at_once = 0\noutside_calls_per_day = 5\noutside_calls_from_remote_phones = true\n"
    );
    let c = parse("t.toml", &text).unwrap();
    assert_eq!(
        c.users[0].outside,
        OutsideCalls {
            at_once: 0,
            per_day: 5,
            from_remote_phones: true
        }
    );
    let bad = text.replace("outside_calls_at_once = 0", "outside_calls_at_once = -1");
    assert!(
        parse("t.toml", &bad)
            .unwrap_err()
            .to_string()
            .contains("users[0].outside_calls_at_once")
    );
}

#[test]
fn phones_are_assigned_by_mac_to_users_with_extensions() {
    let c = parse_ok(
        "[[phone.devices]]\nmac = \"80-5E-C0-12-34-56\"\nuser = \"bob\"\nvendor = \"Yealink\"\n\
         [[phone.devices]]\nmac = \"00:04:f2:00:00:01\"\nuser = \"bob\"\nvendor = \"poly\"\nkeys = [\"102\"]\n",
    );
    assert!(c.phone.provisioning, "on by default");
    assert_eq!(c.phone.devices.len(), 2);
    assert_eq!(c.phone.devices[0].name(), "805ec0123456");
    assert_eq!(c.phone.devices[0].vendor, Vendor::Yealink);
    assert_eq!(c.phone.devices[0].keys, None);
    assert_eq!(c.phone.devices[1].keys, Some(vec!["102".to_string()]));
    let urls = crate::derive::provisioning_urls(&c).unwrap();
    assert!(urls.https.starts_with("https://") && urls.https.ends_with(":8443/"));
    assert_eq!(
        crate::derive::dhcp_options(&c)
            .provisioning
            .map(|p| p.url.ends_with(":8081/")),
        Some(true)
    );
    for (row, path, says) in [
        (
            "mac = \"80:5e:c0:12:34\"\nuser = \"bob\"\nvendor = \"snom\"",
            "phone.devices[0].mac",
            "not a MAC",
        ),
        (
            "mac = \"80:5e:c0:12:34:56\"\nuser = \"carol\"\nvendor = \"snom\"",
            "phone.devices[0].user",
            "no user `carol`",
        ),
        (
            "mac = \"80:5e:c0:12:34:56\"\nuser = \"admin\"\nvendor = \"snom\"",
            "phone.devices[0].user",
            "has no extension",
        ),
        (
            "mac = \"80:5e:c0:12:34:56\"\nuser = \"bob\"\nvendor = \"cisco\"",
            "phone.devices[0].vendor",
            "no files for `cisco`",
        ),
        (
            "mac = \"80:5e:c0:12:34:56\"\nuser = \"bob\"\nvendor = \"snom\"\nkeys = [\"109\"]",
            "phone.devices[0].keys[0]",
            "no user has the extension 109",
        ),
        (
            "mac = \"80:5e:c0:12:34:56\"\nvendor = \"snom\"",
            "phone.devices[0]",
            "needs mac, user and vendor",
        ),
    ] {
        let text = format!("[[phone.devices]]\n{row}\n");
        let e = problems(&text);
        assert!(e.contains(path) && e.contains(says), "{row}: {e}");
    }
    let twice =
        "[[phone.devices]]\nmac = \"80:5e:c0:12:34:56\"\nuser = \"bob\"\nvendor = \"snom\"\n";
    let e = problems(&twice.repeat(2));
    assert!(
        e.contains("phone.devices[1].mac") && e.contains("already"),
        "{e}"
    );
    // The provisioning server is never opened to the WAN.
    let e =
        problems("[security]\nmode = \"firewall-nat\"\nwan_services = [\"provisioning-tls\"]\n");
    assert!(e.contains("provisioning-tls"), "{e}");
}

#[test]
fn a_site_loads_with_its_key_networks_domain_and_extensions() {
    let c = parse_ok(
        "[vpn]\nenabled = true\nlisten_port = 51821\naddress = \"10.77.0.1/24\"\n\
         [[vpn.sites]]\nname = \"branch\"\n\
         public_key = \"hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=\"\n\
         endpoint = \"203.0.113.7\"\nsubnets = [\"192.168.2.1/24\", \"10.20.0.0/16\"]\n\
         address = \"192.168.2.1\"\n\
         domain = \"Branch.Example.com\"\nextensions = \"200-299\"\n\
         [[vpn.sites]]\nname = \"home\"\nenabled = false\n\
         public_key = \"dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=\"\nsubnets = [\"10.30.0.0/24\"]\n",
    );
    let vpn = &c.vpn;
    assert!(vpn.enabled);
    assert_eq!(vpn.listen_port, 51821);
    assert_eq!(vpn.address.to_string(), "10.77.0.0/24");
    assert_eq!(vpn.address.address, Ipv4Addr::new(10, 77, 0, 1));
    let b = &vpn.sites[0];
    assert_eq!(b.name, "branch");
    assert_eq!(b.public_key[0], 0x85);
    assert_eq!(b.endpoint, Some(("203.0.113.7".into(), 51820)));
    let nets: Vec<String> = b.subnets.iter().map(|n| n.to_string()).collect();
    assert_eq!(nets, ["192.168.2.0/24", "10.20.0.0/16"]);
    assert_eq!(b.domain.as_deref(), Some("branch.example.com"));
    assert_eq!(b.address, Some(Ipv4Addr::new(192, 168, 2, 1)));
    assert!(b.extensions.as_ref().is_some_and(|e| e.contains("250")));
    assert!(b.enabled && !vpn.sites[1].enabled);
    assert_eq!(vpn.sites[1].endpoint, None);
    // Off by default, and an extension of a local user is not a site's.
    assert!(!parse_ok("").vpn.enabled);
    assert!(
        problems(
            "[[vpn.sites]]\nname = \"x\"\npublic_key = \"hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=\"\n\
             subnets = [\"10.5.0.0/24\"]\naddress = \"10.5.0.1\"\nextensions = \"100-109\"\n"
        )
        .contains("takes in 102, bob's extension here")
    );
}

#[test]
fn a_sites_names_and_reverse_zones_are_asked_of_its_box() {
    let c = parse_ok(
        "[vpn]\nenabled = true\n\
         [[vpn.sites]]\nname = \"branch\"\n\
         public_key = \"hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=\"\n\
         subnets = [\"192.168.2.0/23\", \"10.20.0.0/16\"]\naddress = \"192.168.3.1\"\n\
         domain = \"branch.example.com\"\n\
         [[vpn.sites]]\nname = \"quiet\"\n\
         public_key = \"dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=\"\nsubnets = [\"10.30.0.0/24\"]\n",
    );
    let zones: Vec<String> = crate::derive::site_zones(&c)
        .into_iter()
        .map(|(z, at)| format!("{z} {at}"))
        .collect();
    assert_eq!(
        zones,
        [
            "branch.example.com 192.168.3.1:53",
            "2.168.192.in-addr.arpa 192.168.3.1:53",
            "3.168.192.in-addr.arpa 192.168.3.1:53",
            "20.10.in-addr.arpa 192.168.3.1:53",
        ]
    );
    // A box without an address is asked nothing; tunnels off, nobody is.
    let mut off = c.clone();
    off.vpn.enabled = false;
    assert!(crate::derive::site_zones(&off).is_empty());
    // The address must be the site's.
    assert!(
        problems(
            "[[vpn.sites]]\nname = \"x\"\npublic_key = \"hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=\"\n\
             subnets = [\"10.5.0.0/24\"]\naddress = \"10.6.0.1\"\n"
        )
        .contains("10.6.0.1 is in none of the site's subnets")
    );
}

#[test]
fn a_sites_extensions_are_called_at_its_box_unless_local_and_its_fallback_must_exist() {
    let c = parse_ok(
        "[vpn]\nenabled = true\n\
         [[vpn.sites]]\nname = \"branch\"\n\
         public_key = \"hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=\"\n\
         subnets = [\"192.168.2.0/24\"]\naddress = \"192.168.2.1\"\n\
         extensions = \"200-299\"\nsip_port = 5070\nfallback = \"voicemail:bob\"\n",
    );
    let b = &c.vpn.sites[0];
    assert_eq!(b.sip_port, 5070);
    assert_eq!(
        b.fallback,
        Some(crate::dialplan::Destination::Voicemail("bob".into()))
    );
    let site = |n: &str| crate::derive::site_for_extension(&c, n).map(|s| s.name.clone());
    assert_eq!(site("250").as_deref(), Some("branch"));
    assert_eq!(
        site("2500"),
        None,
        "a number of another length is not the site's"
    );
    assert_eq!(site("101"), None);
    let mut off = c.clone();
    off.vpn.enabled = false;
    assert_eq!(crate::derive::site_for_extension(&off, "250"), None);
    // A user may forward their calls to another site's extension.
    let bob = c.users.iter().find(|u| u.login == "bob").unwrap();
    assert!(crate::derive::forward_reachable(&c, bob, "250"));
    assert!(!crate::derive::forward_reachable(&off, bob, "250"));
    // The default port; a fallback that leads nowhere is refused.
    let plain = parse_ok(
        "[[vpn.sites]]\nname = \"x\"\npublic_key = \"hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=\"\n\
         subnets = [\"10.5.0.0/24\"]\n",
    );
    assert_eq!(plain.vpn.sites[0].sip_port, 5060);
    let e = problems(
        "[[vpn.sites]]\nname = \"x\"\npublic_key = \"hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=\"\n\
         subnets = [\"10.5.0.0/24\"]\nfallback = \"group:nobody\"\n",
    );
    assert!(
        e.contains("vpn.sites[0].fallback") && e.contains("leads nowhere"),
        "{e}"
    );
    // This office's extensions as a pairing text writes them: clear of 112.
    assert_eq!(
        crate::derive::extension_block(&c).as_deref(),
        Some("100-111")
    );
    // A site's extensions never take an emergency number in, need its box's address,
    // and are its own.
    let site = |ext: &str, address: &str| {
        problems(&format!(
            "[[vpn.sites]]\nname = \"x\"\npublic_key = \"hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=\"\n\
             subnets = [\"10.5.0.0/24\"]\n{address}extensions = \"{ext}\"\n\
             [[vpn.sites]]\nname = \"y\"\npublic_key = \"dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=\"\n\
             subnets = [\"10.6.0.0/24\"]\naddress = \"10.6.0.1\"\nextensions = \"300-399\"\n"
        ))
    };
    let at = "address = \"10.5.0.1\"\n";
    assert!(site("900-999", at).contains("takes in the emergency number 911"));
    assert!(site("1", at).contains("emergency number 112"));
    assert!(site("500-599", "").contains("its address is not given"));
    let e = site("3", at);
    assert!(
        e.contains("300-399 overlaps vpn.sites[0]'s extensions"),
        "{e}"
    );
    // Nor is an emergency number ever called at a site.
    let mut odd = c.clone();
    odd.vpn.sites[0].extensions = Some(crate::model::Extensions::Prefix("9".into()));
    assert_eq!(crate::derive::site_for_extension(&odd, "911"), None);
    // A site in the WAN's own subnet would cut the box off its ISP.
    let e = problems(
        "[network.wan]\nmode = \"static\"\naddress = \"192.168.0.2\"\nnetmask = \"255.255.255.0\"\ngateway = \"192.168.0.1\"\n\
         [[vpn.sites]]\nname = \"x\"\npublic_key = \"hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=\"\nsubnets = [\"192.168.0.0/24\"]\n",
    );
    assert!(e.contains("overlaps the WAN's subnet"), "{e}");
    // Two boxes with one key: one of them could never connect.
    let e = problems(
        "[[vpn.sites]]\nname = \"x\"\npublic_key = \"hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=\"\nsubnets = [\"10.5.0.0/24\"]\n\
         [[vpn.sites]]\nname = \"y\"\npublic_key = \"hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=\"\nsubnets = [\"10.6.0.0/24\"]\n",
    );
    assert!(e.contains("x already has this key"), "{e}");
}

#[test]
fn a_remote_device_loads_with_its_user_address_access_and_expiry() {
    let c = parse_ok(
        "[vpn]\nenabled = true\naddress = \"10.99.0.1/24\"\n\
         [[vpn.peers]]\nname = \"bob-laptop\"\nuser = \"bob\"\naddress = \"10.99.0.10\"\n\
         [[vpn.peers]]\nname = \"bob-phone\"\nuser = \"bob\"\naddress = \"10.99.0.11\"\n\
         access = \"box\"\nhosts = [\"192.168.1.20\"]\ntunnel = \"full\"\nexpires = \"2027-06-30\"\n\
         public_key = \"hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=\"\n",
    );
    let [laptop, phone] = &c.vpn.peers[..] else {
        panic!("{:?}", c.vpn.peers)
    };
    assert_eq!(laptop.access, PeerAccess::Lan);
    assert!(!laptop.full_tunnel && laptop.public_key.is_none() && laptop.enabled);
    assert_eq!(
        phone.access,
        PeerAccess::Hosts(vec![Ipv4Addr::new(192, 168, 1, 20)])
    );
    assert!(phone.full_tunnel && phone.public_key.is_some());
    assert!(phone.active((2027, 6, 30)) && !phone.active((2027, 7, 1)));
    // The devices' subnet is a zone of its own for every service.
    assert_eq!(
        crate::derive::client_zone(&c.network, "10.99.0.10".parse().unwrap()),
        crate::derive::ClientZone::Tunnel
    );
    assert_eq!(
        crate::derive::client_zone(&parse_ok("").network, "10.99.0.10".parse().unwrap()),
        crate::derive::ClientZone::Wan
    );
    // Refused, each with where and why.
    for (text, says) in [
        (
            "name = \"x\"\nuser = \"nobody\"\naddress = \"10.99.0.10\"\n",
            "no user has the login `nobody`",
        ),
        (
            "name = \"x\"\nuser = \"bob\"\naddress = \"10.98.0.10\"\n",
            "is not a host of the tunnels' subnet",
        ),
        (
            "name = \"x\"\nuser = \"bob\"\naddress = \"10.99.0.1\"\n",
            "the box's own tunnel address",
        ),
        (
            "name = \"x\"\nuser = \"bob\"\naddress = \"10.99.0.10\"\nhosts = [\"192.168.1.20\"]\n",
            "hosts are only for",
        ),
        (
            "name = \"x\"\nuser = \"bob\"\naddress = \"10.99.0.10\"\naccess = \"box\"\nhosts = [\"10.0.0.1\"]\n",
            "is not on the LAN",
        ),
        (
            "name = \"x\"\nuser = \"bob\"\naddress = \"10.99.0.10\"\ntunnel = \"half\"\n",
            "unknown tunnel",
        ),
        (
            "name = \"x\"\nuser = \"bob\"\naddress = \"10.99.0.10\"\nexpires = \"soon\"\n",
            "not a date",
        ),
        ("name = \"x\"\nuser = \"bob\"\n", "address"),
    ] {
        let e = problems(&format!("[vpn]\nenabled = true\n[[vpn.peers]]\n{text}"));
        assert!(
            e.contains("vpn.peers[0]") && e.contains(says),
            "{text}: {e}"
        );
    }
    let e = problems(
        "[vpn]\nenabled = true\n[[vpn.peers]]\nname = \"x\"\nuser = \"bob\"\naddress = \"10.99.0.10\"\n\
         [[vpn.peers]]\nname = \"x\"\nuser = \"bob\"\naddress = \"10.99.0.10\"\n",
    );
    assert!(
        e.contains("already the name") && e.contains("is already x's"),
        "{e}"
    );
}

#[test]
fn voice_marks_and_line_speeds_read_as_written_or_say_why_not() {
    let c = parse_ok("");
    assert_eq!((c.phone.dscp_sip, c.phone.dscp_rtp), (24, 46), "CS3 and EF");
    assert_eq!(c.network.wan.upload_kbit, None);
    let c = parse_ok(
        "[network.wan]\nmode = \"dhcp\"\nupload = \"20mbit\"\ndownload = \"1.5Gbit\"\n[phone]\ndscp_sip = \"af31\"\ndscp_rtp = \"0\"\n",
    );
    assert_eq!(c.network.wan.upload_kbit, Some(20_000));
    assert_eq!(c.network.wan.download_kbit, Some(1_500_000));
    assert_eq!((c.phone.dscp_sip, c.phone.dscp_rtp), (26, 0));
    for (text, says) in [
        (
            "[network.wan]\nmode = \"dhcp\"\nupload = \"20\"\n",
            "needs a unit",
        ),
        (
            "[network.wan]\nmode = \"dhcp\"\ndownload = \"10kbit\"\n",
            "not a line speed",
        ),
        ("[phone]\ndscp_rtp = \"af51\"\n", "no DSCP mark"),
        ("[phone]\ndscp_sip = \"64\"\n", "past 63"),
    ] {
        let e = problems(text);
        assert!(e.contains(says), "{text}: {e}");
    }
}
