//! Voicemail end to end: alice (sipp) calls bob, who has no phone registered; the box
//! answers, # skips the greeting, sipp plays 7 s of speech (its g711a.pcap) and hangs up
//! or presses # again. bob's mailbox then holds the message; Python's poplib fetches it
//! and its WAV attachment is the audio that was played, sample for sample within G.711's
//! quantisation (the reference decoded by sox).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::path::Path;
use std::process::Command;

use officebox_testkit::{Officebox, READY_TIMEOUT, TestConfig, free_udp_port, require_program};

mod common;
use common::{scenarios, sipp_call};

const SPEECH: &str = "/usr/share/sip-tester/g711a.pcap";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_officebox"))
}

/// Runs a Python program (poplib as bob's mail program); it must succeed.
fn python(script: &str) {
    let out = Command::new("python3")
        .args(["-c", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// officebox with `c`, once its phone service answers.
fn start(c: &TestConfig) -> Officebox {
    let ob = Officebox::start(bin(), &c.text()).unwrap();
    ob.peer()
        .wait_for_log("phone: serving", READY_TIMEOUT)
        .unwrap();
    ob
}

/// The RTP payloads of a pcap (Ethernet, IPv4, UDP, RTP without extensions).
fn pcap_payloads(path: &str) -> Vec<u8> {
    let d = std::fs::read(path).unwrap();
    let mut at = 24;
    let mut out = Vec::new();
    while at + 16 <= d.len() {
        let incl = u32::from_le_bytes(d[at + 8..at + 12].try_into().unwrap()) as usize;
        let pkt = &d[at + 16..at + 16 + incl];
        at += 16 + incl;
        let ip = &pkt[14..];
        let udp = &ip[usize::from(ip[0] & 15) * 4..];
        out.extend_from_slice(&udp[8 + 12..]);
    }
    out
}

/// 16-bit samples of a WAV file's data chunk.
fn wav_samples(bytes: &[u8]) -> Vec<i16> {
    let at = bytes.windows(4).position(|w| w == b"data").unwrap() + 8;
    bytes[at..]
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect()
}

/// The speech of the pcap as sox decodes A-law.
fn reference() -> Vec<i16> {
    let dir = officebox_testkit::scratch_dir("vm-ref").unwrap();
    let al = dir.path().join("speech.al");
    let wav = dir.path().join("speech.wav");
    std::fs::write(&al, pcap_payloads(SPEECH)).unwrap();
    let ok = Command::new("sox")
        .args(["-t", "al", "-r", "8000", "-c", "1"])
        .arg(&al)
        .args(["-b", "16", "-e", "signed-integer"])
        .arg(&wav)
        .status()
        .unwrap();
    assert!(ok.success());
    wav_samples(&std::fs::read(&wav).unwrap())
}

/// bob's messages through POP3: (subject, WAV attachment) of each that has one.
fn fetch_voicemails(pop3_port: i64) -> Vec<(String, Vec<u8>)> {
    common::pop3_mail(pop3_port, "bob", "demo-bob")
        .into_iter()
        .filter_map(|m| {
            let wav = m.part("audio/wav")?.to_vec();
            Some((m.subject, wav))
        })
        .collect()
}

/// How well `recorded` reproduces `reference`: the share of the reference found, in
/// order, at the best alignment, with every sample within G.711's error.
fn coverage(reference: &[i16], recorded: &[i16]) -> f64 {
    let window = 800.min(reference.len());
    // Find where the reference's first loud stretch appears in the recording.
    let start = reference
        .iter()
        .position(|s| s.unsigned_abs() > 500)
        .unwrap_or(0);
    let probe = &reference[start..start + window];
    let Some(offset) = (0..recorded.len().saturating_sub(window)).find(|&o| {
        recorded[o..o + window].iter().zip(probe).all(|(a, b)| {
            (i32::from(*a) - i32::from(*b)).abs() <= 8 + i32::from(b.unsigned_abs()) / 16
        })
    }) else {
        return 0.0;
    };
    let aligned = &recorded[offset..];
    let matching = aligned
        .iter()
        .zip(&reference[start..])
        .take_while(|(a, b)| {
            (i32::from(**a) - i32::from(**b)).abs() <= 8 + i32::from(b.unsigned_abs()) / 16
        })
        .count();
    matching as f64 / (reference.len() - start) as f64
}

#[test]
fn an_unanswered_call_leaves_a_voicemail_that_pop3_delivers_with_the_audio() {
    require_program("sipp", "sip-tester");
    require_program("sox", "sox");
    require_program("python3", "python3");
    let c = TestConfig::demo().free_ports();
    let (sip, pop) = (c.int("phone.sip_port"), c.int("mail.pop3_port"));
    let ob = start(&c);

    let (ok, errors) = sipp_call(
        &format!("127.0.0.1:{sip}"),
        "uac_voicemail_hangup.xml",
        "caller.csv",
        "102",
    );
    assert!(ok, "hang-up call: {errors}\n{}", ob.log());
    let (ok, errors) = sipp_call(
        &format!("127.0.0.1:{sip}"),
        "uac_voicemail_pound.xml",
        "caller.csv",
        "102",
    );
    assert!(ok, "# call: {errors}\n{}", ob.log());
    assert_eq!(
        ob.log().matches("phone: voicemail delivered").count(),
        2,
        "{}",
        ob.log()
    );

    let reference = reference();
    let messages = fetch_voicemails(pop);
    assert_eq!(messages.len(), 2);
    for (subject, wav) in &messages {
        assert!(
            subject.starts_with("Voicemail from Alice Example (101) (0:0"),
            "{subject}"
        );
        let samples = wav_samples(wav);
        let covered = coverage(&reference, &samples);
        assert!(
            covered > 0.98,
            "the recording holds {:.1}% of the speech ({} samples recorded, {} played)",
            covered * 100.0,
            samples.len(),
            reference.len()
        );
    }
}

#[test]
fn the_menu_takes_the_pin_plays_deletes_and_saves_and_pop3_and_imap_see_the_same_mailbox() {
    require_program("sipp", "sip-tester");
    require_program("python3", "python3");
    let c = TestConfig::demo().free_ports();
    let (sip, pop) = (c.int("phone.sip_port"), c.int("mail.pop3_port"));
    let ob = start(&c);
    for _ in 0..2 {
        let (ok, errors) = sipp_call(
            &format!("127.0.0.1:{sip}"),
            "uac_voicemail_hangup.xml",
            "caller.csv",
            "102",
        );
        assert!(ok, "{errors}\n{}", ob.log());
    }
    assert_eq!(fetch_voicemails(pop).len(), 2);

    // bob dials *97: PIN, 1, delete the newest, save the other, leave.
    let (ok, errors) = sipp_call(
        &format!("127.0.0.1:{sip}"),
        "uac_menu.xml",
        "callee.csv",
        "*97",
    );
    assert!(ok, "{errors}\n{}", ob.log());
    // One message left, seen (saved), in POP3 too.
    let maildir = ob.dir().join("demo-data/mail/bob");
    let count = |sub: &str| {
        std::fs::read_dir(maildir.join(sub))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    assert_eq!((count("new"), count("cur")), (0, 1), "{}", ob.log());
    let cur = std::fs::read_dir(maildir.join("cur"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert!(
        cur.file_name().to_string_lossy().ends_with(":2,S"),
        "{:?}",
        cur.file_name()
    );
    assert_eq!(fetch_voicemails(pop).len(), 1);

    // IMAP sees the same mailbox: the voicemail bob saved on the phone is \Seen; deleted
    // there, it is gone from the phone menu and from POP3.
    let imap = c.int("mail.imap_port");
    python(&format!(
        r#"
import imaplib
m = imaplib.IMAP4("127.0.0.1", {imap})
m.login("bob", "demo-bob")
assert m.select("INBOX")[1] == [b"1"]
typ, data = m.fetch("1", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
assert b"\\Seen" in data[0][0] and b"Voicemail from" in data[0][1], data
m.store("1", "+FLAGS", "(\\Deleted)")
assert m.expunge()[1] == [b"1"]
m.logout()
"#
    ));
    let (ok, errors) = sipp_call(
        &format!("127.0.0.1:{sip}"),
        "uac_menu_leave.xml",
        "callee.csv",
        "*97",
    );
    assert!(ok, "{errors}\n{}", ob.log());
    assert!(
        ob.log()
            .contains("phone: voicemail menu user=bob new=0 saved=0"),
        "{}",
        ob.log()
    );
    assert_eq!(fetch_voicemails(pop).len(), 0);
}

#[test]
fn the_message_waiting_lamp_follows_a_voicemail_from_arrival_to_deletion_by_pop3() {
    require_program("sipp", "sip-tester");
    require_program("python3", "python3");
    let c = TestConfig::demo().free_ports();
    let (sip, pop) = (c.int("phone.sip_port"), c.int("mail.pop3_port"));
    let ob = start(&c);
    // bob's phone subscribes and expects: nothing waiting, one waiting, nothing again.
    let mut cmd = Command::new("sipp");
    cmd.current_dir(scenarios())
        .args([
            "-sf",
            "subscribe_mwi.xml",
            "-inf",
            "callee.csv",
            "-key",
            "domain",
            "office.test",
        ])
        .args(["-auth_uri", "office.test", "-i", "127.0.0.1"])
        .args(["-p", &free_udp_port().unwrap().to_string()])
        .args([
            "-m",
            "1",
            "-nostdin",
            "-trace_err",
            "-error_file",
            "/dev/stderr",
        ])
        .arg(format!("127.0.0.1:{sip}"));
    let lamp = officebox_testkit::Peer::spawn("bob-lamp", cmd).unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    let (ok, errors) = sipp_call(
        &format!("127.0.0.1:{sip}"),
        "uac_voicemail_hangup.xml",
        "caller.csv",
        "102",
    );
    assert!(ok, "{errors}\n{}", ob.log());
    std::thread::sleep(std::time::Duration::from_secs(3));
    // bob reads it by mail and deletes it.
    let script = format!(
        "import poplib\np = poplib.POP3('127.0.0.1', {pop})\np.user('bob'); p.pass_('demo-bob')\n\
         p.retr(1); p.dele(1); p.quit()\n"
    );
    python(&script);
    lamp.wait_for_log("Successful call", std::time::Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}\n{}", ob.log()));
}

#[test]
fn a_voicemail_deleted_by_pop3_is_gone_from_the_phone_menu() {
    require_program("sipp", "sip-tester");
    require_program("python3", "python3");
    let c = TestConfig::demo().free_ports();
    let (sip, pop) = (c.int("phone.sip_port"), c.int("mail.pop3_port"));
    let ob = start(&c);
    let target = format!("127.0.0.1:{sip}");
    for _ in 0..2 {
        let (ok, errors) = sipp_call(&target, "uac_voicemail_hangup.xml", "caller.csv", "102");
        assert!(ok, "{errors}\n{}", ob.log());
    }
    let menu = |expect: &str| {
        let (ok, errors) = sipp_call(&target, "uac_menu_leave.xml", "callee.csv", "*97");
        assert!(ok, "{errors}\n{}", ob.log());
        assert!(
            ob.log()
                .contains(&format!("phone: voicemail menu user=bob {expect}")),
            "the menu says {expect}:\n{}",
            ob.log()
        );
    };
    menu("new=2 saved=0");
    // bob deletes the first in his mail program (without reading the other).
    let script = format!(
        "import poplib\np = poplib.POP3('127.0.0.1', {pop})\np.user('bob'); p.pass_('demo-bob')\n\
         p.dele(1); p.quit()\n"
    );
    python(&script);
    menu("new=1 saved=0");
}

#[test]
fn bob_records_his_greeting_from_the_phone_menu() {
    require_program("sipp", "sip-tester");
    require_program("sox", "sox");
    let c = TestConfig::demo().free_ports();
    let sip = c.int("phone.sip_port");
    let ob = start(&c);
    let greeting = ob.dir().join("demo-data/voicemail/bob/greeting.wav");
    assert!(!greeting.exists());
    let (ok, errors) = sipp_call(
        &format!("127.0.0.1:{sip}"),
        "uac_menu_greeting.xml",
        "callee.csv",
        "*97",
    );
    assert!(ok, "{errors}\n{}", ob.log());
    let samples = wav_samples(&std::fs::read(&greeting).unwrap());
    let covered = coverage(&reference(), &samples);
    assert!(
        covered > 0.98,
        "the greeting holds {:.1}% of the speech ({} samples)",
        covered * 100.0,
        samples.len()
    );
    // The new greeting is what answers the next caller: the call still ends in a message.
    let (ok, errors) = sipp_call(
        &format!("127.0.0.1:{sip}"),
        "uac_voicemail_pound.xml",
        "caller.csv",
        "102",
    );
    assert!(ok, "{errors}\n{}", ob.log());
    assert!(
        ob.log().contains("phone: voicemail delivered"),
        "{}",
        ob.log()
    );
}
