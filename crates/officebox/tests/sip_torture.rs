//! RFC 4475's torture messages (crates/voice/tests/rfc4475, byte for byte) sent to the
//! running phone server over UDP and over TCP: every one is answered or dropped without
//! the server falling over, the ones the RFC says must be refused are refused with the
//! right status; again as if from a trunk's provider, whose calls are let in.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::Path;
use std::time::Duration;

use officebox_testkit::{Officebox, READY_TIMEOUT, TestConfig};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_officebox"))
}

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../voice/tests/rfc4475");
    let index = std::fs::read_to_string(dir.join("index.txt")).unwrap();
    index
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(|name| {
            let bytes = std::fs::read(dir.join(format!("{name}.dat"))).unwrap();
            (name.to_string(), bytes)
        })
        .collect()
}

/// The status the RFC requires for a message, where it leaves no choice.
fn required(name: &str) -> Option<u16> {
    match name {
        "clerr" | "ncl" | "scalar02" | "mismatch01" | "insuf" | "multi01" | "mcl01" => Some(400),
        "badvers" => Some(505),
        "unkscm" => Some(416),
        "bext01" => Some(420),
        _ => None,
    }
}

fn status(reply: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(reply);
    text.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

fn options_ping(port: i64) -> bool {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let msg = format!(
        "OPTIONS sip:office.test SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKping\r\n\
         Max-Forwards: 70\r\nTo: <sip:office.test>\r\nFrom: <sip:t@office.test>;tag=p\r\n\
         Call-ID: ping\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        sock.local_addr().unwrap()
    );
    sock.send_to(msg.as_bytes(), ("127.0.0.1", u16::try_from(port).unwrap()))
        .unwrap();
    let mut buf = [0u8; 4096];
    sock.recv(&mut buf)
        .is_ok_and(|n| status(&buf[..n]) == Some(200))
}

#[test]
fn every_torture_message_is_answered_or_dropped_and_the_server_stays_up() {
    let log = torture(TestConfig::demo().free_ports());
    assert!(!log.contains("phone: call from outside"), "{log}");
}

/// The same from a telephone provider: 127.0.0.1 is an IP trunk's, whose calls are let in
/// without a challenge and go to the operator's extension (voicemail answers there), so
/// the messages reach the trunk side's code, deeper than a stranger's do.
#[test]
fn torture_messages_from_a_trunks_provider_do_no_harm_either() {
    let log = torture(
        TestConfig::demo()
            .free_ports()
            .set("phone.operator", "extension:101")
            .append(
                "[[phone.trunks]]\nname = \"provider\"\nkind = \"ip\"\nserver = \"127.0.0.1:9\"\n\
                 addresses = [\"127.0.0.1\"]\n",
            ),
    );
    assert!(log.contains("phone: call from outside"), "{log}");
}

/// Sends every message over UDP and TCP and checks the answers; officebox's log.
fn torture(c: TestConfig) -> String {
    let port = c.int("phone.sip_port");
    let ob = Officebox::start(bin(), &c.text()).unwrap();
    ob.peer()
        .wait_for_log("phone: serving", READY_TIMEOUT)
        .unwrap();
    let port16 = u16::try_from(port).unwrap();
    let mut report = Vec::new();
    for (name, bytes) in corpus() {
        // UDP: one datagram, the first answer (if any) within 300 ms.
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        sock.send_to(&bytes, ("127.0.0.1", port16)).unwrap();
        let mut buf = vec![0u8; 65_536];
        let udp = sock.recv(&mut buf).ok().and_then(|n| status(&buf[..n]));
        // TCP: a fresh connection, the message, then whatever comes back in 300 ms.
        let mut tcp = TcpStream::connect(("127.0.0.1", port16)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        tcp.write_all(&bytes).unwrap();
        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        while let Ok(n) = tcp.read(&mut chunk) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&chunk[..n]);
        }
        let over_tcp = status(&got);
        report.push(format!("{name}: udp {udp:?} tcp {over_tcp:?}"));
        if let Some(code) = required(&name) {
            assert_eq!(udp, Some(code), "{name} over UDP");
        }
        for s in [udp, over_tcp].into_iter().flatten() {
            assert!(
                (100..700).contains(&s),
                "{name}: a status that is not one: {s}"
            );
        }
        assert!(
            ob.peer().try_wait().unwrap().is_none(),
            "officebox died on {name}:\n{}",
            ob.log()
        );
    }
    assert!(
        options_ping(port),
        "still answering:\n{}",
        report.join("\n")
    );
    println!("{}", report.join("\n"));
    assert!(!ob.log().contains("panicked"), "{}", ob.log());
    ob.log()
}
