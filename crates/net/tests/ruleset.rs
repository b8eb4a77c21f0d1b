//! The firewall ruleset per security mode: rendered text compared with checked-in golden
//! files (`UPDATE_EXPECT=1 cargo test -p officebox-net --test ruleset` rewrites them; review
//! the diff), then checked and applied by the real `nft` inside a namespace made here.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::path::{Path, PathBuf};

use officebox_net::firewall::render;
use officebox_testkit::{Netns, require_program, require_root};

const CONFIG: &str = r#"
[network]
domain = "example.com"
manage = true
[network.wan]
interface = "wan0"
mode = "static"
address = "203.0.113.10"
netmask = "255.255.255.0"
gateway = "203.0.113.1"
[network.lan]
interface = "lan0"
address = "192.168.1.1"
netmask = "255.255.255.0"
gateway = "192.168.1.254"
[security]
mode = "MODE"
wan_services = ["smtp", "www", "dns", "pop3s"]
[[security.forwards]]
name = "camera"
protocol = "tcp"
wan_port = 8022
host = "192.168.1.20"
port = 22
[[security.forwards]]
protocol = "both"
wan_port = 5070
host = "192.168.1.30"
[dns]
use_upstream = false
[[phone.trunks]]
name = "ip-line"
kind = "ip"
server = "198.51.100.5"
addresses = ["198.51.100.5", "198.51.100.16/28", "2001:db8::5"]
[[phone.trunks]]
name = "switched-off"
kind = "ip"
enabled = false
server = "198.51.100.99"
addresses = ["198.51.100.99"]
[[users]]
login = "admin"
password = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA"
admin = true
"#;

const MODES: [&str; 4] = ["lan-only", "router", "firewall-nat", "firewall-nat-dmz"];

fn golden(mode: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/{mode}.nft"))
}

fn ruleset(mode: &str) -> String {
    let config = officebox_config::parse("t.toml", &CONFIG.replace("MODE", mode)).unwrap();
    render(&config).unwrap()
}

#[test]
fn each_mode_renders_its_golden_ruleset() {
    let mut diffs = Vec::new();
    for mode in MODES {
        let text = ruleset(mode);
        if std::env::var_os("UPDATE_EXPECT").is_some() {
            std::fs::write(golden(mode), &text).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(golden(mode)).unwrap_or_default();
        if text != want {
            diffs.push(format!("{mode}:\n--- expected\n{want}--- actual\n{text}"));
        }
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

#[test]
fn the_rules_say_what_each_mode_promises() {
    let nat = ruleset("firewall-nat");
    let dmz = ruleset("firewall-nat-dmz");
    for text in [&nat, &dmz] {
        assert!(
            text.contains("oifname \"wan0\" masquerade"),
            "NAT in the firewall modes"
        );
        assert!(
            text.contains("policy drop;"),
            "WAN -> LAN refused by default"
        );
        assert!(text.contains(
            "iifname \"wan0\" fib daddr type local tcp dport 8022 dnat ip to 192.168.1.20:22"
        ));
        assert!(
            text.contains("ip daddr != 192.168.1.1 tcp dport 8022 dnat ip to 192.168.1.20:22"),
            "hairpin"
        );
        assert!(
            text.contains("tcp dport { 25, 53, 80, 995 } accept"),
            "listed WAN services open"
        );
        assert!(
            !text.contains("8080"),
            "the admin pages are never opened to the WAN"
        );
    }
    assert!(nat.contains("reject") && !nat.contains("stealth"));
    for text in [&nat, &dmz] {
        assert!(
            text.contains("ip saddr { 198.51.100.5, 198.51.100.16/28 } meta l4proto { tcp, udp } th dport 5060 accept")
                && text.contains("ip6 saddr { 2001:db8::5 } meta l4proto { tcp, udp } th dport 5060 accept")
                && !text.contains("198.51.100.99"),
            "an enabled trunk's provider reaches the SIP port, a disabled one's does not\n{text}"
        );
    }
    assert!(
        dmz.contains("drop comment \"stealth")
            && dmz.contains("limit rate")
            && dmz.contains("ct state invalid drop")
    );
    let lan_only = ruleset("lan-only");
    assert!(
        !lan_only.contains("masquerade") && !lan_only.contains("dnat"),
        "lan-only: no NAT\n{lan_only}"
    );
    assert!(
        lan_only.contains("iifname \"wan0\" drop") && lan_only.contains("policy drop"),
        "lan-only: the WAN is not used, nothing is forwarded\n{lan_only}"
    );
    for mode in ["router", "firewall-nat", "firewall-nat-dmz"] {
        let text = ruleset(mode);
        assert!(
            text.contains("hook prerouting priority raw")
                && text.contains("ip saddr { 192.168.1.0/24, 0.0.0.0/8")
                && text.contains("fib saddr . iif oif missing counter name \"spoofed\" drop"),
            "{mode}: forged sources are dropped on the WAN before anything else\n{text}"
        );
        assert!(
            text.contains("update @syn_v4 { ip saddr limit rate over")
                && !text.contains("syn limit rate"),
            "{mode}: SYN limits per source, none global\n{text}"
        );
    }
    let router = ruleset("router");
    assert!(
        !router.contains("chain forward")
            && !router.contains("masquerade")
            && !router.contains("dnat"),
        "router: routing unfiltered, no NAT\n{router}"
    );
    assert!(
        router.contains("tcp dport { 25, 53, 80, 995 } accept") && router.contains("reject"),
        "router: officebox's own WAN side is guarded\n{router}"
    );
}

#[test]
fn nft_accepts_every_ruleset_and_switching_modes_replaces_the_table() {
    require_root();
    require_program("nft", "nftables");
    let ns = Netns::new("nft").unwrap();
    let dir = officebox_testkit::scratch_dir("nft").unwrap();
    // Twice through the modes: applying over any previous mode works.
    for mode in MODES.iter().chain(MODES.iter().rev()) {
        let file = dir.path().join(format!("{mode}.nft"));
        std::fs::write(&file, ruleset(mode)).unwrap();
        ns.run("nft", ["-c", "-f", file.to_str().unwrap()])
            .unwrap_or_else(|e| panic!("{mode}: nft -c: {e}"));
        ns.run("nft", ["-f", file.to_str().unwrap()])
            .unwrap_or_else(|e| panic!("{mode}: nft -f: {e}"));
        let listed = String::from_utf8_lossy(
            &ns.run("nft", ["list", "table", "inet", "officebox"])
                .unwrap()
                .stdout,
        )
        .into_owned();
        let has_nat = listed.contains("masquerade");
        assert_eq!(has_nat, mode.starts_with("firewall"), "{mode}:\n{listed}");
        // Only our table exists in the namespace: nothing else is touched.
        let tables = String::from_utf8_lossy(&ns.run("nft", ["list", "tables"]).unwrap().stdout)
            .into_owned();
        assert_eq!(tables.trim(), "table inet officebox", "{mode}");
    }
}
