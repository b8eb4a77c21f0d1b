//! The phone system with real phones: baresip 1.0.0 instances (crates/testkit's
//! `Baresip`) register with officebox's registrar using their login and password (digest,
//! realm office.test, address of record = the extension) and call each other through the
//! B2BUA and its RTP relay; what one phone plays, the other records, and the recording is
//! compared with what was played.
//!
//! - alice (101) and bob (102) register and are listed by `officebox phone registrations`;
//!   101 calls 102, bob answers at once, each plays a different spoken sentence, both
//!   recordings hold the other side's sentence; `officebox phone calls` shows the call
//!   talking while it is up and none after alice hangs up.
//! - Hold and resume through the B2BUA, both ways: alice holds and resumes (her re-INVITE
//!   is carried to bob), then bob does (his re-INVITE is carried to alice); audio flows
//!   again after each resume; bob hangs up and alice sees the call closed.
//! - Voicemail with a real phone: carol (103) has no phone; alice calls her, the box
//!   answers, alice presses # (RFC 4733 telephone-event) to skip the greeting, speaks and
//!   hangs up; Python's poplib fetches carol's message and its WAV attachment holds the
//!   sentence.
//!
//! The tests run one at a time (audio timing on a loaded two-core machine), and every
//! failure quotes officebox's log; the phones' logs and events are printed by the harness
//! when a test panics.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod common;

use std::fmt::Display;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread::sleep;
use std::time::{Duration, Instant};

use officebox_testkit::{
    AudioStats, Baresip, BaresipAccount, DEMO_CONFIG, Officebox, READY_TIMEOUT, SipTransport,
    TestConfig, audio, require_program, scratch_dir,
};

/// How long a phone may take to register, to see a call established or closed.
const EVENT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long `officebox phone ...` may take to show a change (state is saved every 200 ms).
const LIST_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest call a phone makes here (its microphone file is padded to this).
const MAX_CALL: Duration = Duration::from_secs(60);
/// Similarity a recording must reach (a G.711 round trip through the relay scores about
/// 0.99; unrelated speech or silence below 0.3).
const SIMILAR: f64 = 0.8;
/// Similarity a recording must stay below to count as "not that sentence".
const DIFFERENT: f64 = 0.4;

/// One test at a time: each sends real-time audio through two phones and officebox.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_officebox"))
}

fn require_peers() {
    require_program("baresip", "baresip");
    require_program("sox", "sox");
    require_program("espeak-ng", "espeak-ng");
    require_program("python3", "python3");
}

/// A running officebox and where its phones talk to it.
struct Office {
    ob: Officebox,
    sip: SocketAddr,
    pop3: u16,
}

impl Office {
    fn start(c: &TestConfig) -> Office {
        let ob = Officebox::start(bin(), &c.text()).expect("officebox starts");
        ob.peer()
            .wait_for_log("phone: serving", READY_TIMEOUT)
            .expect("the phone server starts");
        let port = u16::try_from(c.int("phone.sip_port")).unwrap();
        Office {
            ob,
            sip: SocketAddr::from(([127, 0, 0, 1], port)),
            pop3: u16::try_from(c.int("mail.pop3_port")).unwrap(),
        }
    }

    /// A phone account for extension `ext`, logging in as `login`.
    fn account(&self, ext: &str, login: &str, password: &str) -> BaresipAccount {
        BaresipAccount::new(ext, self.sip)
            .domain("office.test")
            .auth(login, password)
            .max_call(MAX_CALL)
    }

    /// Panics with `what`, the error and officebox's log.
    fn fail(&self, what: &str, error: impl Display) -> ! {
        panic!(
            "{what}: {error}\n--- officebox log ({}) ---\n{}",
            self.ob.peer().log_path().display(),
            self.ob.log()
        )
    }

    /// `officebox phone SUBCOMMAND --config ...`'s output.
    fn phone_cli(&self, subcommand: &str) -> String {
        let out = Command::new(bin())
            .args(["phone", subcommand, "--config"])
            .arg(self.ob.config_path())
            .current_dir(self.ob.dir())
            .output()
            .unwrap();
        if !out.status.success() {
            self.fail(
                &format!("`officebox phone {subcommand}` failed"),
                String::from_utf8_lossy(&out.stderr),
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Polls `officebox phone SUBCOMMAND` (every 200 ms) until its output satisfies
    /// `ok`; fails with the last output.
    fn wait_listing(&self, subcommand: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + LIST_TIMEOUT;
        loop {
            let out = self.phone_cli(subcommand);
            if ok(&out) {
                return out;
            }
            if Instant::now() >= deadline {
                self.fail(
                    &format!(
                        "`officebox phone {subcommand}` did not show {what} within {LIST_TIMEOUT:?}"
                    ),
                    format!("it shows:\n{out}"),
                );
            }
            sleep(Duration::from_millis(200));
        }
    }

    fn wait_registered(&self, phone: &Baresip) {
        if let Err(e) = phone.wait_registered(EVENT_TIMEOUT) {
            self.fail(&format!("{} did not register", phone.name()), e);
        }
    }

    fn wait_event(
        &self,
        phone: &Baresip,
        mark: usize,
        kind: &str,
    ) -> officebox_testkit::BaresipEvent {
        phone
            .wait_for_event_after(mark, kind, EVENT_TIMEOUT)
            .unwrap_or_else(|e| self.fail(&format!("{}: no {kind}", phone.name()), e))
    }

    fn stats(&self, phone: &Baresip) -> AudioStats {
        phone
            .audio_stats()
            .unwrap_or_else(|e| self.fail(&format!("{}: audio_stats", phone.name()), e))
    }

    /// Waits until `phone`'s audio stream has `direction` (after a re-INVITE).
    fn wait_direction(&self, phone: &Baresip, direction: &str) -> AudioStats {
        let deadline = Instant::now() + EVENT_TIMEOUT;
        loop {
            let s = self.stats(phone);
            if s.direction == direction {
                return s;
            }
            if Instant::now() >= deadline {
                self.fail(
                    &format!("{}'s audio did not become {direction}", phone.name()),
                    format!("{s:?}; its log:\n{}", phone.log_tail(60)),
                );
            }
            sleep(Duration::from_millis(100));
        }
    }
}

/// `seconds` of silence, then `speech`, then `tail` seconds of silence, as a new file.
fn padded(speech: &Path, out: &Path, lead: f64, tail: f64) {
    let wav = audio::read_wav(speech).unwrap();
    let silence = |s: f64| vec![0i16; (s * f64::from(wav.rate)) as usize];
    let mut samples = silence(lead);
    samples.extend_from_slice(&wav.samples);
    samples.extend(silence(tail));
    audio::write_wav(out, wav.rate, &samples).unwrap();
}

fn seconds(path: &Path) -> f64 {
    audio::read_wav(path).unwrap().seconds()
}

#[test]
fn phones_register_and_talk_both_ways_through_the_relay() {
    require_peers();
    let _serial = serial();
    let dir = scratch_dir("baresip-talk").unwrap();
    let bob_says = dir.path().join("bob-says.wav");
    audio::speak_wav(
        &bob_says,
        "Hello Alice, this is Bob speaking through the office box. The quick brown fox jumps over the lazy dog.",
    )
    .unwrap();
    let alice_says = dir.path().join("alice-says.wav");
    audio::speak_wav(
        &alice_says,
        "Seven green bottles hanging on the wall, and Alice is calling Bob on extension one oh two.",
    )
    .unwrap();
    // Half a second of silence first: a phone's first packets may be lost while the
    // other side is still setting up its audio.
    let (bob_plays, alice_plays) = (dir.path().join("bob.wav"), dir.path().join("alice.wav"));
    padded(&bob_says, &bob_plays, 0.5, 0.0);
    padded(&alice_says, &alice_plays, 0.5, 0.0);

    let c = TestConfig::demo().free_ports();
    let office = Office::start(&c);
    let alice = Baresip::start(
        "alice",
        &office
            .account("101", "alice", "demo-alice")
            .play(&alice_plays),
    )
    .unwrap();
    let bob = Baresip::start(
        "bob",
        &office
            .account("102", "bob", "demo-bob")
            .auto_answer(true)
            .play(&bob_plays),
    )
    .unwrap();
    office.wait_registered(&alice);
    office.wait_registered(&bob);
    assert_eq!(alice.aor(), "sip:101@office.test");
    let list = office.wait_listing("registrations", "both phones", |l| {
        l.lines()
            .any(|l| l.starts_with("alice") && l.contains(" 101 "))
            && l.lines()
                .any(|l| l.starts_with("bob") && l.contains(" 102 "))
    });
    for (login, phone) in [("alice", &alice), ("bob", &bob)] {
        let line = list.lines().find(|l| l.starts_with(login)).unwrap();
        assert!(
            line.contains(&format!("from {} (udp)", phone.sip_addr())) && line.contains("baresip"),
            "{login}'s registration: {line}\n{list}"
        );
    }

    alice.dial("102").unwrap();
    let established = office.wait_event(&alice, 0, "CALL_ESTABLISHED");
    assert_eq!(established.direction, "outgoing");
    let incoming = office.wait_event(&bob, 0, "CALL_ESTABLISHED");
    assert_eq!(incoming.direction, "incoming");
    // bob's phone sees the call come from 101 at the office's domain.
    assert!(
        incoming.peer_uri.starts_with("sip:101@office.test"),
        "{incoming:?}"
    );
    let calls = office.wait_listing("calls", "101 -> 102 talking", |l| {
        l.contains("101 -> 102: talking")
    });
    assert_eq!(calls.lines().count(), 1, "{calls}");

    // Both sentences play out (plus a margin for the jitter buffers), then alice hangs up.
    let longest = seconds(&bob_plays).max(seconds(&alice_plays));
    let until = established.received + Duration::from_secs_f64(longest + 1.0);
    sleep(until.saturating_duration_since(Instant::now()));
    assert!(
        office.phone_cli("calls").contains("101 -> 102: talking"),
        "the call ended early:\n{}",
        office.ob.log()
    );
    let mark = alice.mark();
    alice.hangup().unwrap();
    let closed = office.wait_event(&alice, mark, "CALL_CLOSED");
    assert_eq!(closed.param, "Connection reset by user", "{closed:?}");
    let bob_closed = office.wait_event(&bob, 0, "CALL_CLOSED");
    assert_eq!(
        bob_closed.param, "Connection reset by peer",
        "{bob_closed:?}"
    );
    office.wait_listing("calls", "no call", |l| l.contains("no call in progress"));

    let alice_heard = alice.last_recording(EVENT_TIMEOUT).unwrap().heard;
    let bob_heard = bob.last_recording(EVENT_TIMEOUT).unwrap().heard;
    let to_alice = audio::compare(&bob_says, &alice_heard).unwrap();
    let to_bob = audio::compare(&alice_says, &bob_heard).unwrap();
    // Cross-checks: neither phone hears its own voice, and the sentences differ.
    let alice_echo = audio::similarity(&alice_says, &alice_heard).unwrap();
    let bob_echo = audio::similarity(&bob_says, &bob_heard).unwrap();
    let sentences = audio::similarity(&bob_says, &alice_says).unwrap();
    eprintln!(
        "bob -> alice: similarity {:.4} (whole {:.4}, lag {:.3} s, rms {:.3}); \
         alice -> bob: {:.4} (whole {:.4}, lag {:.3} s, rms {:.3}); \
         own voice heard back: alice {alice_echo:.4}, bob {bob_echo:.4}; \
         the two sentences {sentences:.4}",
        to_alice.score,
        to_alice.whole,
        to_alice.lag_seconds,
        to_alice.recorded_rms,
        to_bob.score,
        to_bob.whole,
        to_bob.lag_seconds,
        to_bob.recorded_rms,
    );
    for (who, heard, m) in [
        ("alice", &alice_heard, to_alice),
        ("bob", &bob_heard, to_bob),
    ] {
        assert!(
            !audio::is_silent(heard).unwrap(),
            "{who} heard silence ({}):\n{}",
            heard.display(),
            office.ob.log()
        );
        assert!(
            m.score > SIMILAR,
            "{who} did not hear the other's sentence: {m:?} ({})",
            heard.display()
        );
    }
    assert!(alice_echo < DIFFERENT && bob_echo < DIFFERENT && sentences < DIFFERENT);
    let ended = officebox_testkit::wait_until(Duration::from_secs(5), || {
        let log = office.ob.log();
        log.contains("phone: call ended") && log.contains("disposition=\"answered\"")
    });
    assert!(ended, "{}", office.ob.log());
}

#[test]
fn phones_on_tcp_register_call_and_talk_over_their_own_connections() {
    require_peers();
    let _serial = serial();
    let dir = scratch_dir("baresip-tcp").unwrap();
    let bob_says = dir.path().join("bob-says.wav");
    audio::speak_wav(
        &bob_says,
        "This call goes over TCP from end to end, and the voice still arrives.",
    )
    .unwrap();
    let bob_plays = dir.path().join("bob.wav");
    padded(&bob_says, &bob_plays, 0.5, 0.0);

    let c = TestConfig::demo().free_ports();
    let office = Office::start(&c);
    let alice = Baresip::start(
        "alice",
        &office
            .account("101", "alice", "demo-alice")
            .transport(SipTransport::Tcp),
    )
    .unwrap();
    let bob = Baresip::start(
        "bob",
        &office
            .account("102", "bob", "demo-bob")
            .transport(SipTransport::Tcp)
            .auto_answer(true)
            .play(&bob_plays),
    )
    .unwrap();
    office.wait_registered(&alice);
    office.wait_registered(&bob);
    let list = office.wait_listing("registrations", "both phones over tcp", |l| {
        l.lines()
            .filter(|l| l.starts_with("alice") || l.starts_with("bob"))
            .filter(|l| l.contains("(tcp)"))
            .count()
            == 2
    });
    assert!(list.contains("baresip"), "{list}");

    // The INVITE reaches bob over the connection his phone registered on: the box has
    // no other way to reach a TCP phone.
    alice.dial("102").unwrap();
    let established = office.wait_event(&alice, 0, "CALL_ESTABLISHED");
    office.wait_event(&bob, 0, "CALL_ESTABLISHED");
    let until = established.received + Duration::from_secs_f64(seconds(&bob_plays) + 1.0);
    sleep(until.saturating_duration_since(Instant::now()));
    // This time the callee hangs up.
    let mark = bob.mark();
    bob.hangup().unwrap();
    office.wait_event(&bob, mark, "CALL_CLOSED");
    let closed = office.wait_event(&alice, 0, "CALL_CLOSED");
    assert_eq!(closed.param, "Connection reset by peer", "{closed:?}");
    office.wait_listing("calls", "no call", |l| l.contains("no call in progress"));

    let heard = alice.last_recording(EVENT_TIMEOUT).unwrap().heard;
    let m = audio::compare(&bob_says, &heard).unwrap();
    eprintln!("bob -> alice over tcp: {m:?}");
    assert!(
        m.score > SIMILAR,
        "alice did not hear bob: {m:?}\n{}",
        office.ob.log()
    );
}

#[test]
fn hold_and_resume_both_ways_through_the_b2bua_then_the_callee_hangs_up() {
    require_peers();
    let _serial = serial();
    let dir = scratch_dir("baresip-hold").unwrap();
    let tones = dir.path().join("tones.wav");
    audio::make_tone_wav(&tones, 30.0).unwrap();

    // Without music on hold, the box carries the hold to the other phone.
    let c = TestConfig::demo()
        .free_ports()
        .set("phone.music_on_hold", "off");
    let office = Office::start(&c);
    let alice = Baresip::start("alice", &office.account("101", "alice", "demo-alice")).unwrap();
    let bob = Baresip::start(
        "bob",
        &office
            .account("102", "bob", "demo-bob")
            .auto_answer(true)
            .play(&tones),
    )
    .unwrap();
    office.wait_registered(&alice);
    office.wait_registered(&bob);

    alice.dial("102").unwrap();
    office.wait_event(&alice, 0, "CALL_ESTABLISHED");
    office.wait_event(&bob, 0, "CALL_ESTABLISHED");
    office.wait_listing("calls", "101 -> 102 talking", |l| {
        l.contains("101 -> 102: talking")
    });
    sleep(Duration::from_millis(1500));
    let talking = office.stats(&alice);
    assert_eq!(talking.direction, "sendrecv", "{talking:?}");
    assert!(talking.received > 40, "alice hears nothing: {talking:?}");

    // Each side holds and resumes in turn; after each resume audio flows both ways.
    for (who, holder, other) in [("alice", &alice, &bob), ("bob", &bob, &alice)] {
        let mark = other.mark();
        holder.hold().unwrap();
        other
            .wait_for(mark, "a re-INVITE offer", EVENT_TIMEOUT, |e| {
                e.kind == "CALL_REMOTE_SDP" && e.param == "offer"
            })
            .unwrap_or_else(|e| {
                office.fail(&format!("{who}'s hold did not reach the other phone"), e)
            });
        office.wait_direction(holder, "sendonly");
        office.wait_direction(other, "recvonly");
        sleep(Duration::from_millis(300));
        let held = (office.stats(holder), office.stats(other));
        sleep(Duration::from_millis(1000));
        let still = (office.stats(holder), office.stats(other));
        // baresip 1.0.0 sends nothing unless sendrecv: the line is quiet both ways.
        assert!(
            still.0.received <= held.0.received + 3 && still.1.received <= held.1.received + 3,
            "audio flows while {who} holds: {held:?} then {still:?}"
        );
        assert!(
            office.phone_cli("calls").contains("101 -> 102: talking"),
            "the call is not up while {who} holds:\n{}",
            office.ob.log()
        );

        let mark = other.mark();
        holder.resume().unwrap();
        other
            .wait_for(mark, "a re-INVITE offer", EVENT_TIMEOUT, |e| {
                e.kind == "CALL_REMOTE_SDP" && e.param == "offer"
            })
            .unwrap_or_else(|e| {
                office.fail(&format!("{who}'s resume did not reach the other phone"), e)
            });
        office.wait_direction(holder, "sendrecv");
        office.wait_direction(other, "sendrecv");
        sleep(Duration::from_millis(1500));
        let resumed = (office.stats(holder), office.stats(other));
        eprintln!(
            "{who} held and resumed: holder {:?} -> {:?} -> {:?}; other {:?} -> {:?} -> {:?}",
            held.0, still.0, resumed.0, held.1, still.1, resumed.1
        );
        for (side, before, after) in [
            ("holder", &still.0, &resumed.0),
            ("other", &still.1, &resumed.1),
        ] {
            assert!(
                after.received >= before.received + 40 && after.sent >= before.sent + 40,
                "no audio after {who} resumed ({side}): {before:?} then {after:?}\n{}",
                office.ob.log()
            );
        }
    }
    let log = office.ob.log();
    assert!(!log.contains("ERROR"), "{log}");

    let mark = alice.mark();
    bob.hangup().unwrap();
    let closed = office.wait_event(&alice, mark, "CALL_CLOSED");
    assert_eq!(closed.param, "Connection reset by peer", "{closed:?}");
    let bob_closed = office.wait_event(&bob, 0, "CALL_CLOSED");
    assert_eq!(
        bob_closed.param, "Connection reset by user",
        "{bob_closed:?}"
    );
    office.wait_listing("calls", "no call", |l| l.contains("no call in progress"));
    assert!(officebox_testkit::wait_until(
        Duration::from_secs(5),
        || { office.ob.log().contains("phone: call ended") }
    ));
    // Until the first hold alice heard bob's tones.
    let heard = alice.last_recording(EVENT_TIMEOUT).unwrap().heard;
    let mut start = audio::read_wav(&tones).unwrap();
    start.samples.truncate(8000);
    let tones_start = dir.path().join("tones-start.wav");
    audio::write_wav(&tones_start, start.rate, &start.samples).unwrap();
    let m = audio::compare(&tones_start, &heard).unwrap();
    eprintln!(
        "tones until the hold: alice heard {:.2} s, similarity {:.4} (lag {:.3} s)",
        seconds(&heard),
        m.score,
        m.lag_seconds
    );
    assert!(m.score > SIMILAR, "{m:?}");
}

#[test]
fn a_phone_on_hold_hears_the_music_and_is_never_asked_to_hold() {
    require_peers();
    let _serial = serial();
    let dir = scratch_dir("baresip-music").unwrap();
    let tune = dir.path().join("tune.wav");
    audio::write_wav(&tune, 8000, &officebox_voice::music::built_in()[..16_000]).unwrap();
    let c = TestConfig::demo().free_ports();
    let office = Office::start(&c);
    let alice = Baresip::start("alice", &office.account("101", "alice", "demo-alice")).unwrap();
    let bob = Baresip::start(
        "bob",
        &office.account("102", "bob", "demo-bob").auto_answer(true),
    )
    .unwrap();
    office.wait_registered(&alice);
    office.wait_registered(&bob);

    // alice holds bob, then bob holds alice: the held one hears the tune.
    for (who, caller, callee, holder, held) in [
        ("alice", &alice, &bob, &alice, &bob),
        ("bob", &alice, &bob, &bob, &alice),
    ] {
        let (caller_mark, callee_mark) = (caller.mark(), callee.mark());
        caller.dial("102").unwrap();
        office.wait_event(caller, caller_mark, "CALL_ESTABLISHED");
        office.wait_event(callee, callee_mark, "CALL_ESTABLISHED");
        sleep(Duration::from_millis(500));
        let mark = held.mark();
        holder.hold().unwrap();
        // The box answers the hold: the holder sends only, the held phone is not asked.
        office.wait_direction(holder, "sendonly");
        let before = office.stats(held);
        sleep(Duration::from_millis(2500));
        let during = office.stats(held);
        assert_eq!(during.direction, "sendrecv", "{who} held: {during:?}");
        assert!(
            held.events()[mark..]
                .iter()
                .all(|e| !(e.kind == "CALL_REMOTE_SDP" && e.param == "offer")),
            "the held phone was sent an offer"
        );
        assert!(
            during.received >= before.received + 100,
            "the held phone hears nothing while {who} holds: {before:?} then {during:?}"
        );
        holder.resume().unwrap();
        office.wait_direction(holder, "sendrecv");
        sleep(Duration::from_millis(1000));
        let resumed = (office.stats(holder), office.stats(held));
        sleep(Duration::from_millis(1000));
        let later = (office.stats(holder), office.stats(held));
        assert!(
            later.0.received >= resumed.0.received + 40
                && later.1.received >= resumed.1.received + 40,
            "no audio after {who} resumed: {resumed:?} then {later:?}\n{}",
            office.ob.log()
        );
        let mark = held.mark();
        caller.hangup().unwrap();
        office.wait_event(held, mark, "CALL_CLOSED");
        office.wait_listing("calls", "no call", |l| l.contains("no call in progress"));
        let heard = held.last_recording(EVENT_TIMEOUT).unwrap().heard;
        let m = audio::compare(&tune, &heard).unwrap();
        eprintln!(
            "the phone {who} held heard the tune: similarity {:.4} at {:.2} s",
            m.score, m.lag_seconds
        );
        assert!(m.score > SIMILAR, "{m:?} ({})", heard.display());
    }
}

/// bob's `password` line in the demo config (an argon2 hash of demo-bob).
fn bobs_password_line() -> &'static str {
    let block = DEMO_CONFIG
        .split("[[users]]")
        .find(|b| b.contains("login = \"bob\""))
        .expect("bob in the demo config");
    block
        .lines()
        .find(|l| l.starts_with("password = "))
        .expect("bob's password")
}

/// A `[[users]]` block for a new phone user, as `officebox user add` writes it (with
/// the phone's digest secrets for `password`).
fn user_block(login: &str, name: &str, extension: &str, password: &str) -> String {
    let dir = scratch_dir("user-block").unwrap();
    let config = dir.path().join("officebox.toml");
    std::fs::write(&config, DEMO_CONFIG).unwrap();
    let mut add = Command::new(bin())
        .args([
            "user",
            "add",
            login,
            "--name",
            name,
            "--extension",
            extension,
        ])
        .args(["--password-stdin", "--config"])
        .arg(&config)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut stdin = add.stdin.take().unwrap();
        writeln!(stdin, "{password}").unwrap();
    }
    assert!(add.wait().unwrap().success(), "officebox user add {login}");
    let text = std::fs::read_to_string(&config).unwrap();
    let block = text
        .split("[[users]]")
        .find(|b| b.contains(&format!("login = \"{login}\"")))
        .unwrap();
    // The block ends where the next table begins.
    let end = block.find("\n[").map_or(block.len(), |i| i + 1);
    format!("\n[[users]]{}", &block[..end])
}

/// `login`'s messages through POP3 ([`common::pop3_mail`]): (subject, WAV attachment,
/// written into `dir`) of each that has one.
fn fetch_voicemails(
    pop3: u16,
    login: &str,
    password: &str,
    dir: &Path,
) -> Vec<(String, std::path::PathBuf)> {
    common::pop3_mail(i64::from(pop3), login, password)
        .into_iter()
        .enumerate()
        .filter_map(|(i, m)| {
            let wav = dir.join(format!("{}.wav", i + 1));
            std::fs::write(&wav, m.part("audio/wav")?).unwrap();
            Some((m.subject, wav))
        })
        .collect()
}

#[test]
fn a_real_phone_leaves_a_voicemail_that_pop3_delivers_with_the_audio() {
    require_peers();
    let _serial = serial();
    let dir = scratch_dir("baresip-vm").unwrap();
    let message = dir.path().join("message.wav");
    audio::speak_wav(
        &message,
        "Hi Carol, this is Alice. Please call me back about the printer on the second floor.",
    )
    .unwrap();
    // alice presses # as soon as the box answers, which skips the greeting; the box
    // then beeps (0.4 s) and records. Three seconds of silence cover that with a wide
    // margin; a second of silence after the sentence lets its last packets arrive before
    // baresip hangs up at the end of the file.
    let plays = dir.path().join("alice.wav");
    padded(&message, &plays, 3.0, 1.0);

    let c = TestConfig::demo().free_ports().append(&format!(
        "[[users]]\nlogin = \"carol\"\nname = \"Carol Example\"\n{}\nextension = 103\n",
        bobs_password_line()
    ));
    let office = Office::start(&c);
    let alice = Baresip::start(
        "alice",
        &office
            .account("101", "alice", "demo-alice")
            .play(&plays)
            .hang_up_after_playing(true),
    )
    .unwrap();
    office.wait_registered(&alice);

    alice.dial("103").unwrap();
    let established = office.wait_event(&alice, 0, "CALL_ESTABLISHED");
    alice
        .command("sndcode", Some("#"))
        .unwrap_or_else(|e| office.fail("alice could not press #", e));
    office.wait_listing("calls", "101 -> 103 at voicemail", |l| {
        l.contains("101 -> 103: voicemail")
    });
    // The phone hangs up when its file ends.
    let closed = alice
        .wait_for_event(
            "CALL_CLOSED",
            EVENT_TIMEOUT + Duration::from_secs_f64(seconds(&plays)),
        )
        .unwrap_or_else(|e| office.fail("alice's call did not end", e));
    assert_eq!(closed.param, "end of file", "{closed:?}");
    let lasted = closed.received - established.received;
    if let Err(e) = office
        .ob
        .peer()
        .wait_for_log("phone: voicemail delivered", EVENT_TIMEOUT)
    {
        let sent = alice.log().contains("send DTMF digit");
        office.fail(
            &format!(
                "no voicemail was delivered (did alice's # reach the box? her log {} sending it)",
                if sent { "shows" } else { "does not show" }
            ),
            e,
        );
    }
    office.wait_listing("calls", "no call", |l| l.contains("no call in progress"));

    let pop = scratch_dir("baresip-vm-pop").unwrap();
    let messages = fetch_voicemails(office.pop3, "carol", "demo-bob", pop.path());
    assert_eq!(
        messages.len(),
        1,
        "carol's mailbox: {messages:?}\n{}",
        office.ob.log()
    );
    let (subject, wav) = &messages[0];
    assert!(
        subject.starts_with("Voicemail from Alice Example (101) (0:0"),
        "{subject}"
    );
    let m = audio::compare(&message, wav).unwrap();
    eprintln!(
        "voicemail: call {:.2} s, message {:.2} s ({subject}), speech {:.2} s: similarity {:.4} \
         (whole {:.4}, lag {:.3} s, rms {:.3})",
        lasted.as_secs_f64(),
        seconds(wav),
        seconds(&message),
        m.score,
        m.whole,
        m.lag_seconds,
        m.recorded_rms
    );
    assert!(!audio::is_silent(wav).unwrap(), "the message is silent");
    assert!(
        m.score > SIMILAR,
        "the message does not hold the sentence: {m:?}"
    );
    // The recording began after the beep, in the silence before the sentence: the whole
    // sentence is there and little else (the greeting was skipped).
    assert!(
        m.lag_seconds > 0.5 && m.lag_seconds < 3.0,
        "the sentence starts {:.2} s into the message",
        m.lag_seconds
    );
    // And alice heard the box: the start of the greeting, then the beep.
    let heard = alice.last_heard(EVENT_TIMEOUT).unwrap();
    assert!(
        !audio::is_silent(&heard).unwrap(),
        "alice heard nothing from the box"
    );
}

#[test]
fn a_user_records_a_call_with_the_record_code_and_gets_both_voices_by_mail() {
    require_peers();
    let _serial = serial();
    let dir = scratch_dir("baresip-record").unwrap();
    let (alice_says, bob_says) = (
        dir.path().join("alice-says.wav"),
        dir.path().join("bob-says.wav"),
    );
    audio::speak_wav(&alice_says, "Alice asks for the quarterly figures.").unwrap();
    audio::speak_wav(&bob_says, "Bob promises them by Friday noon.").unwrap();
    // alice keys in *1 at once; the tone lasts 0.4 s; then she speaks, then bob does.
    let (alice_plays, bob_plays) = (dir.path().join("alice.wav"), dir.path().join("bob.wav"));
    padded(&alice_says, &alice_plays, 2.5, 0.0);
    padded(&bob_says, &bob_plays, 3.0 + seconds(&alice_says), 0.0);

    let office = Office::start(&TestConfig::demo().free_ports());
    let alice = Baresip::start(
        "alice",
        &office
            .account("101", "alice", "demo-alice")
            .play(&alice_plays),
    )
    .unwrap();
    let bob = Baresip::start(
        "bob",
        &office
            .account("102", "bob", "demo-bob")
            .auto_answer(true)
            .play(&bob_plays),
    )
    .unwrap();
    office.wait_registered(&alice);
    office.wait_registered(&bob);

    alice.dial("102").unwrap();
    let established = office.wait_event(&alice, 0, "CALL_ESTABLISHED");
    office.wait_event(&bob, 0, "CALL_ESTABLISHED");
    for key in ["*", "1"] {
        alice
            .command("sndcode", Some(key))
            .unwrap_or_else(|e| office.fail("alice could not press a key", e));
        sleep(Duration::from_millis(300));
    }
    if let Err(e) = office
        .ob
        .peer()
        .wait_for_log("phone: recording the call", EVENT_TIMEOUT)
    {
        office.fail("the record code did not start a recording", e);
    }
    let until = established.received + Duration::from_secs_f64(seconds(&bob_plays) + 1.0);
    sleep(until.saturating_duration_since(Instant::now()));
    let mark = alice.mark();
    alice.hangup().unwrap();
    office.wait_event(&alice, mark, "CALL_CLOSED");
    if let Err(e) = office
        .ob
        .peer()
        .wait_for_log("phone: call recording delivered", EVENT_TIMEOUT)
    {
        office.fail("the recording was not delivered", e);
    }

    // In alice's mailbox (not bob's, who did not ask): both voices.
    let pop = scratch_dir("baresip-record-pop").unwrap();
    let messages = fetch_voicemails(office.pop3, "alice", "demo-alice", pop.path());
    assert_eq!(messages.len(), 1, "alice's mailbox: {messages:?}");
    let (subject, wav) = &messages[0];
    assert!(
        subject.starts_with("Recorded call with 102 (102) (0:0"),
        "{subject}"
    );
    for (who, said) in [("alice", &alice_says), ("bob", &bob_says)] {
        let m = audio::compare(said, wav).unwrap();
        eprintln!(
            "recording: {who}'s sentence, similarity {:.4} at {:.2} s",
            m.score, m.lag_seconds
        );
        assert!(
            m.score > SIMILAR,
            "{who} is not in the recording: {m:?} ({})",
            wav.display()
        );
    }
    let bobs = fetch_voicemails(office.pop3, "bob", "demo-bob", pop.path());
    assert!(bobs.is_empty(), "bob's mailbox: {bobs:?}");
    // Both heard the tone: bob's phone got it in the middle of alice's silence.
    let heard = bob.last_recording(EVENT_TIMEOUT).unwrap().heard;
    assert!(!audio::is_silent(&heard).unwrap());
}

/// One blind transfer: `caller` calls `dialled` (`answerer` answers at once), and
/// `transferor` (one of the two) transfers the other to carol, who answers at once. alice
/// is in both calls and speaks late (after the transfer); carol speaks as she answers:
/// each must hear the other.
#[allow(clippy::too_many_arguments)]
fn transfer_to_carol(
    office: &Office,
    (caller, answerer, dialled): (&Baresip, &Baresip, &str),
    transferor: &Baresip,
    alice: &Baresip,
    carol: &Baresip,
    (alice_says, alice_plays, carol_says): (&Path, &Path, &Path),
) {
    let (caller_mark, answerer_mark, carol_mark) = (caller.mark(), answerer.mark(), carol.mark());
    caller.dial(dialled).unwrap();
    let established = office.wait_event(caller, caller_mark, "CALL_ESTABLISHED");
    office.wait_event(answerer, answerer_mark, "CALL_ESTABLISHED");
    sleep(Duration::from_millis(500));
    transferor
        .command("transfer", Some("103"))
        .unwrap_or_else(|e| office.fail("the phone could not transfer", e));
    office.wait_event(carol, carol_mark, "CALL_ESTABLISHED");
    // The transferor leaves (by itself, or hung up by the box after the last NOTIFY).
    let transferor_mark = if std::ptr::eq(transferor, caller) {
        caller_mark
    } else {
        answerer_mark
    };
    office.wait_event(transferor, transferor_mark, "CALL_CLOSED");
    office.wait_listing("calls", "alice talking to carol", |l| {
        l.contains(": talking") && l.contains("103") && l.lines().count() == 1
    });
    let until = established.received + Duration::from_secs_f64(seconds(alice_plays) + 1.0);
    sleep(until.saturating_duration_since(Instant::now()));
    let (alice_mark, carol_mark) = (alice.mark(), carol.mark());
    alice.hangup().unwrap();
    office.wait_event(alice, alice_mark, "CALL_CLOSED");
    office.wait_event(carol, carol_mark, "CALL_CLOSED");
    office.wait_listing("calls", "no call", |l| l.contains("no call in progress"));
    let alice_heard = alice.last_recording(EVENT_TIMEOUT).unwrap().heard;
    let carol_heard = carol.last_recording(EVENT_TIMEOUT).unwrap().heard;
    for (who, said, heard) in [
        ("alice", carol_says, &alice_heard),
        ("carol", alice_says, &carol_heard),
    ] {
        let m = audio::compare(said, heard).unwrap();
        eprintln!(
            "{who} heard the other after the transfer: similarity {:.4} at {:.2} s ({})",
            m.score,
            m.lag_seconds,
            heard.display()
        );
        assert!(
            m.score > SIMILAR,
            "{who} did not hear the other after the transfer: {m:?} ({})\n{}",
            heard.display(),
            office.ob.log()
        );
    }
}

#[test]
fn blind_transfers_by_the_callee_and_by_the_caller_put_the_other_party_through() {
    require_peers();
    let _serial = serial();
    let dir = scratch_dir("baresip-transfer").unwrap();
    let (alice_says, carol_says) = (
        dir.path().join("alice-says.wav"),
        dir.path().join("carol-says.wav"),
    );
    audio::speak_wav(
        &alice_says,
        "Alice asks for the March invoice to be sent again.",
    )
    .unwrap();
    audio::speak_wav(
        &carol_says,
        "Carol in accounts sends it again this afternoon.",
    )
    .unwrap();
    // alice speaks once she is through to carol (the transfer takes a few seconds at
    // most); carol as soon as she answers.
    let (alice_plays, carol_plays, silence) = (
        dir.path().join("alice.wav"),
        dir.path().join("carol.wav"),
        dir.path().join("silence.wav"),
    );
    padded(&alice_says, &alice_plays, 6.0, 1.0);
    padded(&carol_says, &carol_plays, 1.0, 0.0);
    audio::make_silence_wav(&silence, 20.0).unwrap();

    let c = TestConfig::demo().free_ports().append(&user_block(
        "carol",
        "Carol Example",
        "103",
        "demo-carol",
    ));
    let office = Office::start(&c);
    let alice = Baresip::start(
        "alice",
        &office
            .account("101", "alice", "demo-alice")
            .auto_answer(true)
            .play(&alice_plays),
    )
    .unwrap();
    let bob = Baresip::start(
        "bob",
        &office
            .account("102", "bob", "demo-bob")
            .auto_answer(true)
            .play(&silence),
    )
    .unwrap();
    let carol = Baresip::start(
        "carol",
        &office
            .account("103", "carol", "demo-carol")
            .auto_answer(true)
            .play(&carol_plays),
    )
    .unwrap();
    for phone in [&alice, &bob, &carol] {
        office.wait_registered(phone);
    }
    let files = (
        alice_says.as_path(),
        alice_plays.as_path(),
        carol_says.as_path(),
    );
    // The callee transfers: alice calls bob, bob puts her through to carol.
    transfer_to_carol(&office, (&alice, &bob, "102"), &bob, &alice, &carol, files);
    // The caller transfers: bob calls alice, and puts her through to carol (alice's
    // dialog, where the box was the caller, becomes the call's first leg).
    transfer_to_carol(&office, (&bob, &alice, "101"), &bob, &alice, &carol, files);
    let log = office.ob.log();
    assert_eq!(log.matches("phone: transfer accepted").count(), 2, "{log}");
}

#[test]
fn an_attended_transfer_by_a_desk_phone_puts_its_two_callers_through_to_each_other() {
    require_peers();
    require_program("sipp", "sip-tester");
    let _serial = serial();
    let dir = scratch_dir("baresip-attended").unwrap();
    let (alice_says, carol_says) = (
        dir.path().join("alice-says.wav"),
        dir.path().join("carol-says.wav"),
    );
    audio::speak_wav(
        &alice_says,
        "Alice has the delivery address for the new desks.",
    )
    .unwrap();
    audio::speak_wav(&carol_says, "Carol writes it down for the furniture order.").unwrap();
    // bob calls alice, then carol, then joins them (about two seconds in): both speak
    // after that.
    let (alice_plays, carol_plays) = (dir.path().join("alice.wav"), dir.path().join("carol.wav"));
    padded(&alice_says, &alice_plays, 5.0, 1.0);
    padded(&carol_says, &carol_plays, 5.0, 1.0);
    let c = TestConfig::demo().free_ports().append(&user_block(
        "carol",
        "Carol Example",
        "103",
        "demo-carol",
    ));
    let office = Office::start(&c);
    let alice = Baresip::start(
        "alice",
        &office
            .account("101", "alice", "demo-alice")
            .auto_answer(true)
            .play(&alice_plays),
    )
    .unwrap();
    let carol = Baresip::start(
        "carol",
        &office
            .account("103", "carol", "demo-carol")
            .auto_answer(true)
            .play(&carol_plays),
    )
    .unwrap();
    office.wait_registered(&alice);
    office.wait_registered(&carol);

    // bob's desk phone (sipp: baresip 1.0 has no attended transfer).
    let errors = dir.path().join("sipp-errors.txt");
    let bob = Command::new("sipp")
        .current_dir(common::scenarios())
        .args(["-sf", "uac_attended_transfer.xml", "-inf", "callee.csv"])
        .args(["-key", "domain", "office.test", "-key", "first", "101"])
        .args(["-key", "second", "103", "-auth_uri", "office.test"])
        .args(["-cid_str", "xfer-%u-%p", "-i", "127.0.0.1"])
        .args([
            "-p",
            &officebox_testkit::free_udp_port().unwrap().to_string(),
        ])
        .args([
            "-mp",
            &officebox_testkit::free_udp_port().unwrap().to_string(),
        ])
        .args(["-m", "1", "-nostdin", "-recv_timeout", "20s", "-trace_err"])
        .arg("-error_file")
        .arg(&errors)
        .arg(office.sip.to_string())
        .output()
        .unwrap();
    if !bob.status.success() {
        office.fail(
            "the transferor's scenario failed",
            format!(
                "{}\n{}",
                String::from_utf8_lossy(&bob.stdout),
                std::fs::read_to_string(&errors).unwrap_or_default()
            ),
        );
    }
    // alice and carol are in one call each, joined: both listed as talking (to the box's
    // bob, who is gone), and each hears the other.
    office.wait_listing("calls", "two calls joined", |l| {
        l.matches(": talking").count() == 2
    });
    let until =
        Instant::now() + Duration::from_secs_f64(seconds(&alice_plays).max(seconds(&carol_plays)));
    sleep(until.saturating_duration_since(Instant::now()));
    let (alice_mark, carol_mark) = (alice.mark(), carol.mark());
    alice.hangup().unwrap();
    office.wait_event(&alice, alice_mark, "CALL_CLOSED");
    // Her hanging up hangs up carol (the other call).
    office.wait_event(&carol, carol_mark, "CALL_CLOSED");
    office.wait_listing("calls", "no call", |l| l.contains("no call in progress"));
    let alice_heard = alice.last_recording(EVENT_TIMEOUT).unwrap().heard;
    let carol_heard = carol.last_recording(EVENT_TIMEOUT).unwrap().heard;
    for (who, said, heard) in [
        ("alice", &carol_says, &alice_heard),
        ("carol", &alice_says, &carol_heard),
    ] {
        let m = audio::compare(said, heard).unwrap();
        eprintln!(
            "{who} heard the other after the attended transfer: similarity {:.4} at {:.2} s",
            m.score, m.lag_seconds
        );
        assert!(
            m.score > SIMILAR,
            "{who} did not hear the other: {m:?} ({})\n{}",
            heard.display(),
            office.ob.log()
        );
    }
    assert!(office.ob.log().contains("phone: attended transfer"));
}

/// `phone` dials feature code `code`: the box answers, says what it did, and hangs up.
fn dial_code(office: &Office, phone: &Baresip, code: &str) {
    let mark = phone.mark();
    let log_before = office
        .ob
        .log()
        .matches("phone: call forwarding changed")
        .count();
    phone.dial(code).unwrap();
    office.wait_event(phone, mark, "CALL_ESTABLISHED");
    office.wait_event(phone, mark, "CALL_CLOSED");
    let changed = officebox_testkit::wait_until(Duration::from_secs(5), || {
        office
            .ob
            .log()
            .matches("phone: call forwarding changed")
            .count()
            > log_before
    });
    assert!(changed, "{code} changed nothing:\n{}", office.ob.log());
}

#[test]
fn do_not_disturb_and_forwarding_set_from_the_phone_send_calls_to_voicemail_and_elsewhere() {
    require_peers();
    let _serial = serial();
    let c = TestConfig::demo()
        .free_ports()
        .set("phone.no_answer_timeout", "5s")
        .append(&user_block("carol", "Carol Example", "103", "demo-carol"));
    let office = Office::start(&c);
    let alice = Baresip::start("alice", &office.account("101", "alice", "demo-alice")).unwrap();
    let bob = Baresip::start("bob", &office.account("102", "bob", "demo-bob")).unwrap();
    let carol = Baresip::start(
        "carol",
        &office
            .account("103", "carol", "demo-carol")
            .auto_answer(true),
    )
    .unwrap();
    for phone in [&alice, &bob, &carol] {
        office.wait_registered(phone);
    }
    // alice calls bob; `answered_by` is whose phone rings and answers (the box: None).
    let call_bob = |rings_bob: bool, answered_by: Option<&Baresip>| {
        let (a, b, c) = (alice.mark(), bob.mark(), carol.mark());
        alice.dial("102").unwrap();
        office.wait_event(&alice, a, "CALL_ESTABLISHED");
        if let Some(phone) = answered_by {
            let mark = if std::ptr::eq(phone, &carol) { c } else { b };
            office.wait_event(phone, mark, "CALL_ESTABLISHED");
        }
        let bob_rang = bob.events()[b..].iter().any(|e| e.kind == "CALL_INCOMING");
        assert_eq!(bob_rang, rings_bob, "{:?}", &bob.events()[b..]);
        alice.hangup().unwrap();
        office.wait_event(&alice, a, "CALL_CLOSED");
        office.wait_listing("calls", "no call", |l| l.contains("no call in progress"));
    };

    // Do not disturb: alice reaches bob's voicemail, his phone silent.
    dial_code(&office, &bob, "*78");
    call_bob(false, None);
    assert!(office.ob.log().contains("phone: voicemail answers"));
    dial_code(&office, &bob, "*78");
    // Every call to carol: her phone answers, bob's does not ring.
    dial_code(&office, &bob, "*72103");
    call_bob(false, Some(&carol));
    // Forwarding off, then only when not answered: bob's phone rings 5 s, then carol's.
    dial_code(&office, &bob, "*73");
    dial_code(&office, &bob, "*92103");
    call_bob(true, Some(&carol));
    let log = office.ob.log();
    assert_eq!(log.matches("phone: call forwarded").count(), 2, "{log}");
    // A target bob may not forward to (his own extension): refused, nothing changes.
    let mark = bob.mark();
    bob.dial("*72102").unwrap();
    office.wait_event(&bob, mark, "CALL_CLOSED");
    assert!(office.ob.log().contains("phone: call forwarding refused"));
}

#[test]
fn a_parked_call_is_taken_from_its_place_and_a_ringing_one_is_picked_up() {
    require_peers();
    let _serial = serial();
    let dir = scratch_dir("baresip-park").unwrap();
    let (alice_says, carol_says) = (
        dir.path().join("alice-says.wav"),
        dir.path().join("carol-says.wav"),
    );
    audio::speak_wav(
        &alice_says,
        "Alice is waiting for the parts list from the warehouse.",
    )
    .unwrap();
    audio::speak_wav(
        &carol_says,
        "Carol from the warehouse reads the parts list aloud.",
    )
    .unwrap();
    // alice speaks once carol has taken her call; carol as soon as she has.
    let (alice_plays, carol_plays) = (dir.path().join("alice.wav"), dir.path().join("carol.wav"));
    padded(&alice_says, &alice_plays, 9.0, 1.0);
    padded(&carol_says, &carol_plays, 1.0, 1.0);
    let c = TestConfig::demo()
        .free_ports()
        .append(&user_block("carol", "Carol Example", "103", "demo-carol"))
        .append(&user_block("dave", "Dave Example", "104", "demo-dave"));
    let office = Office::start(&c);
    let alice = Baresip::start(
        "alice",
        &office
            .account("101", "alice", "demo-alice")
            .play(&alice_plays),
    )
    .unwrap();
    let bob = Baresip::start(
        "bob",
        &office.account("102", "bob", "demo-bob").auto_answer(true),
    )
    .unwrap();
    let carol = Baresip::start(
        "carol",
        &office
            .account("103", "carol", "demo-carol")
            .play(&carol_plays),
    )
    .unwrap();
    let dave = Baresip::start("dave", &office.account("104", "dave", "demo-dave")).unwrap();
    for phone in [&alice, &bob, &carol, &dave] {
        office.wait_registered(phone);
    }

    // bob answers alice and parks her: he hears the place and is let go.
    alice.dial("102").unwrap();
    let established = office.wait_event(&alice, 0, "CALL_ESTABLISHED");
    office.wait_event(&bob, 0, "CALL_ESTABLISHED");
    sleep(Duration::from_millis(500));
    bob.command("transfer", Some("700"))
        .unwrap_or_else(|e| office.fail("bob could not transfer to 700", e));
    office.wait_event(&bob, 0, "CALL_CLOSED");
    office.wait_listing("calls", "alice parked on 701", |l| {
        l.contains("101 -> 701: parked")
    });
    // An empty place is said so; a number past the places is nobody.
    for (place, closes) in [("705", true), ("799", true)] {
        let mark = carol.mark();
        carol.dial(place).unwrap();
        if closes {
            office.wait_event(&carol, mark, "CALL_CLOSED");
        }
    }
    // carol takes alice from 701, and they talk.
    let mark = carol.mark();
    carol.dial("701").unwrap();
    office.wait_event(&carol, mark, "CALL_ESTABLISHED");
    office.wait_listing("calls", "alice and carol", |l| {
        l.matches(": talking").count() == 2
    });
    let until = established.received + Duration::from_secs_f64(seconds(&alice_plays) + 0.5);
    sleep(until.saturating_duration_since(Instant::now()));
    let (a, c2) = (alice.mark(), carol.mark());
    alice.hangup().unwrap();
    office.wait_event(&alice, a, "CALL_CLOSED");
    office.wait_event(&carol, c2, "CALL_CLOSED");
    let alice_heard = alice.last_recording(EVENT_TIMEOUT).unwrap().heard;
    let carol_heard = carol.last_recording(EVENT_TIMEOUT).unwrap().heard;
    for (who, said, heard) in [
        ("alice", &carol_says, &alice_heard),
        ("carol", &alice_says, &carol_heard),
    ] {
        let m = audio::compare(said, heard).unwrap();
        eprintln!(
            "{who} after the park: similarity {:.4} at {:.2} s",
            m.score, m.lag_seconds
        );
        assert!(m.score > SIMILAR, "{who}: {m:?}\n{}", office.ob.log());
    }
    let tune = dir.path().join("tune.wav");
    audio::write_wav(&tune, 8000, &officebox_voice::music::built_in()[..16_000]).unwrap();
    let m = audio::compare(&tune, &alice_heard).unwrap();
    assert!(
        m.score > SIMILAR,
        "alice heard no music while parked: {m:?}"
    );

    // Pickup: alice calls dave, whose phone rings; carol picks it up with *8104.
    let (a, d, c3) = (alice.mark(), dave.mark(), carol.mark());
    alice.dial("104").unwrap();
    office.wait_event(&dave, d, "CALL_INCOMING");
    carol.dial("*8104").unwrap();
    office.wait_event(&carol, c3, "CALL_ESTABLISHED");
    office.wait_event(&alice, a, "CALL_ESTABLISHED");
    office.wait_event(&dave, d, "CALL_CLOSED");
    sleep(Duration::from_millis(1500));
    let s = office.stats(&carol);
    assert!(
        s.received > 40,
        "carol hears nothing after the pickup: {s:?}"
    );
    let a = alice.mark();
    carol.hangup().unwrap();
    office.wait_event(&alice, a, "CALL_CLOSED");
    // Nothing ringing: *8 is said so.
    let mark = carol.mark();
    carol.dial("*8").unwrap();
    office.wait_event(&carol, mark, "CALL_CLOSED");
    let log = office.ob.log();
    assert!(
        log.contains("phone: parked call retrieved") && log.contains("phone: call picked up"),
        "{log}"
    );
}

#[test]
fn a_blf_key_on_an_extension_shows_it_ringing_busy_and_idle() {
    require_peers();
    require_program("sipp", "sip-tester");
    let _serial = serial();
    let dir = scratch_dir("baresip-blf").unwrap();
    let office = Office::start(&TestConfig::demo().free_ports());
    let alice = Baresip::start("alice", &office.account("101", "alice", "demo-alice")).unwrap();
    let bob = Baresip::start(
        "bob",
        &office.account("102", "bob", "demo-bob").sip_trace(true),
    )
    .unwrap();
    office.wait_registered(&alice);
    office.wait_registered(&bob);
    // A desk phone's BLF key on 102 (sipp, logged in as bob).
    let errors = dir.path().join("sipp-errors.txt");
    let mut cmd = Command::new("sipp");
    cmd.current_dir(common::scenarios())
        .args(["-sf", "subscribe_blf_line.xml", "-inf", "callee.csv"])
        .args(["-key", "domain", "office.test", "-key", "target", "102"])
        .args(["-auth_uri", "office.test", "-i", "127.0.0.1"])
        .args([
            "-p",
            &officebox_testkit::free_udp_port().unwrap().to_string(),
        ])
        .args(["-m", "1", "-nostdin", "-trace_err", "-error_file"])
        .arg(&errors)
        .arg(office.sip.to_string());
    let key = officebox_testkit::Peer::spawn("blf-key", cmd).unwrap();
    sleep(Duration::from_millis(1500));
    // Ringing, then answered, then over: each held a couple of seconds (the lamps are
    // looked at every second).
    alice.dial("102").unwrap();
    office.wait_event(&bob, 0, "CALL_INCOMING");
    sleep(Duration::from_millis(2000));
    bob.accept().unwrap();
    office.wait_event(&alice, 0, "CALL_ESTABLISHED");
    sleep(Duration::from_millis(2000));
    alice.hangup().unwrap();
    office.wait_event(&bob, 0, "CALL_CLOSED");
    let done = officebox_testkit::wait_until(Duration::from_secs(10), || {
        key.try_wait().ok().flatten().is_some()
    });
    let status = key.try_wait().ok().flatten();
    assert!(
        done && status.is_some_and(|s| s.success()),
        "the BLF key did not see idle, ringing, busy, idle: {status:?}\n{}\n{}",
        std::fs::read_to_string(&errors).unwrap_or_default(),
        key.log_tail(40)
    );
    // Intercom: *80 + 102 rings bob's phone asking it to answer by itself (baresip 1.0
    // does not heed that: bob answers), and the call is an ordinary one.
    let (a, b) = (alice.mark(), bob.mark());
    alice.dial("*80102").unwrap();
    office.wait_event(&bob, b, "CALL_INCOMING");
    let log = bob.log();
    assert!(
        log.contains("Call-Info: <sip:office.test>;answer-after=0")
            && log.contains("info=alert-autoanswer"),
        "the intercom INVITE does not ask to answer by itself:\n{}",
        bob.log_tail(60)
    );
    bob.accept().unwrap();
    office.wait_event(&alice, a, "CALL_ESTABLISHED");
    alice.hangup().unwrap();
    office.wait_event(&bob, b, "CALL_CLOSED");
}

#[test]
fn three_phones_meet_in_the_conference_behind_its_pin_and_each_hears_the_others() {
    require_peers();
    let _serial = serial();
    let dir = scratch_dir("baresip-conference").unwrap();
    let c = TestConfig::demo()
        .free_ports()
        .set("phone.conference_pin", "4321")
        .append(&user_block("carol", "Carol Example", "103", "demo-carol"));
    let office = Office::start(&c);
    // Each speaks at its own time, once all are in (the PIN takes a few seconds).
    let people = [
        (
            "alice",
            "101",
            "demo-alice",
            8.0,
            "Alice opens the budget meeting for the third quarter.",
        ),
        (
            "bob",
            "102",
            "demo-bob",
            11.5,
            "Bob reports that travel costs went down again.",
        ),
        (
            "carol",
            "103",
            "demo-carol",
            15.0,
            "Carol asks who will order the new printers.",
        ),
    ];
    let mut phones = Vec::new();
    let mut says = Vec::new();
    for (name, ext, password, lead, sentence) in people {
        let said = dir.path().join(format!("{name}-says.wav"));
        audio::speak_wav(&said, sentence).unwrap();
        let plays = dir.path().join(format!("{name}.wav"));
        padded(&said, &plays, lead, 1.0);
        let phone =
            Baresip::start(name, &office.account(ext, name, password).play(&plays)).unwrap();
        office.wait_registered(&phone);
        phones.push(phone);
        says.push(said);
    }
    // Each dials the conference and keys the PIN once asked for it.
    let mut started = Vec::new();
    for phone in &phones {
        let mark = phone.mark();
        phone.dial("800").unwrap();
        started.push(office.wait_event(phone, mark, "CALL_ESTABLISHED").received);
    }
    sleep(Duration::from_millis(2500));
    for phone in &phones {
        for key in ["4", "3", "2", "1", "#"] {
            phone
                .command("sndcode", Some(key))
                .unwrap_or_else(|e| office.fail("a phone could not press a key", e));
            sleep(Duration::from_millis(250));
        }
    }
    let until = started[2] + Duration::from_secs_f64(15.0 + 4.0);
    sleep(until.saturating_duration_since(Instant::now()));
    assert!(office.ob.log().contains("phone: conference opened"));
    for phone in &phones {
        let mark = phone.mark();
        phone.hangup().unwrap();
        office.wait_event(phone, mark, "CALL_CLOSED");
    }
    office.wait_listing("calls", "no call", |l| l.contains("no call in progress"));
    for (i, phone) in phones.iter().enumerate() {
        let heard = phone.last_recording(EVENT_TIMEOUT).unwrap().heard;
        for (j, said) in says.iter().enumerate() {
            let m = audio::compare(said, &heard).unwrap();
            eprintln!(
                "{} heard {}'s sentence: similarity {:.4} at {:.2} s",
                phone.name(),
                phones[j].name(),
                m.score,
                m.lag_seconds
            );
            if i == j {
                assert!(m.score < DIFFERENT, "{} hears itself: {m:?}", phone.name());
            } else {
                assert!(
                    m.score > SIMILAR,
                    "{} did not hear {}: {m:?} ({})\n{}",
                    phone.name(),
                    phones[j].name(),
                    heard.display(),
                    office.ob.log()
                );
            }
        }
    }
}

#[test]
fn a_page_reaches_every_other_phone_one_way() {
    require_peers();
    let _serial = serial();
    let dir = scratch_dir("baresip-page").unwrap();
    let (alice_says, bob_says) = (
        dir.path().join("alice-says.wav"),
        dir.path().join("bob-says.wav"),
    );
    audio::speak_wav(
        &alice_says,
        "Attention please, the delivery van is at the front door.",
    )
    .unwrap();
    audio::speak_wav(&bob_says, "Bob keeps talking but nobody should hear him.").unwrap();
    let (alice_plays, bob_plays) = (dir.path().join("alice.wav"), dir.path().join("bob.wav"));
    padded(&alice_says, &alice_plays, 2.0, 1.0);
    padded(&bob_says, &bob_plays, 1.0, 1.0);
    let c = TestConfig::demo()
        .free_ports()
        .append(&user_block("carol", "Carol Example", "103", "demo-carol"))
        .append("[[phone.ring_groups]]\nname = \"warehouse\"\nmembers = [\"103\"]\n");
    let office = Office::start(&c);
    let alice = Baresip::start(
        "alice",
        &office
            .account("101", "alice", "demo-alice")
            .play(&alice_plays),
    )
    .unwrap();
    // The paged phones answer by themselves (baresip 1.0 by its own setting; the INVITE
    // also asks it to, see the intercom test).
    let bob = Baresip::start(
        "bob",
        &office
            .account("102", "bob", "demo-bob")
            .auto_answer(true)
            .play(&bob_plays),
    )
    .unwrap();
    let carol = Baresip::start(
        "carol",
        &office
            .account("103", "carol", "demo-carol")
            .auto_answer(true),
    )
    .unwrap();
    for phone in [&alice, &bob, &carol] {
        office.wait_registered(phone);
    }
    alice.dial("*81").unwrap();
    let started = office.wait_event(&alice, 0, "CALL_ESTABLISHED").received;
    office.wait_event(&bob, 0, "CALL_ESTABLISHED");
    office.wait_event(&carol, 0, "CALL_ESTABLISHED");
    let until = started + Duration::from_secs_f64(seconds(&alice_plays) + 0.5);
    sleep(until.saturating_duration_since(Instant::now()));
    alice.hangup().unwrap();
    office.wait_event(&bob, 0, "CALL_CLOSED");
    office.wait_event(&carol, 0, "CALL_CLOSED");
    office.wait_listing("calls", "no call", |l| l.contains("no call in progress"));
    for phone in [&bob, &carol] {
        let heard = phone.last_recording(EVENT_TIMEOUT).unwrap().heard;
        let m = audio::compare(&alice_says, &heard).unwrap();
        eprintln!("{} heard the page: similarity {:.4}", phone.name(), m.score);
        assert!(
            m.score > SIMILAR,
            "{} did not hear the page: {m:?}",
            phone.name()
        );
    }
    // One way: alice (and carol) never hear bob.
    for phone in [&alice, &carol] {
        let heard = phone.last_recording(EVENT_TIMEOUT).unwrap().heard;
        let m = audio::similarity(&bob_says, &heard).unwrap();
        assert!(m < DIFFERENT, "{} heard bob on the page: {m}", phone.name());
    }
    // *81*1: the first ring group (carol's phone) only; bob's does not ring. A group
    // that does not exist is nobody.
    let (a, b, k) = (alice.mark(), bob.mark(), carol.mark());
    alice.dial("*81*1").unwrap();
    office.wait_event(&alice, a, "CALL_ESTABLISHED");
    office.wait_event(&carol, k, "CALL_ESTABLISHED");
    sleep(Duration::from_secs(2));
    alice.hangup().unwrap();
    office.wait_event(&carol, k, "CALL_CLOSED");
    assert!(
        !bob.events()
            .iter()
            .skip(b)
            .any(|e| e.kind == "CALL_INCOMING"),
        "bob's phone rang for the warehouse page"
    );
    let a = alice.mark();
    alice.dial("*81*9").unwrap();
    let closed = office.wait_event(&alice, a, "CALL_CLOSED");
    assert!(closed.param.contains("404"), "{closed:?}");
}

#[test]
fn a_transfer_to_a_number_the_transferor_may_not_call_or_to_nobody_is_refused() {
    require_peers();
    let _serial = serial();
    // A route only alice may use, over an IP trunk that is never reached (the REFER is
    // refused before any call goes out).
    let c = TestConfig::demo().free_ports().append(
        "[[phone.trunks]]\nname = \"isp\"\nkind = \"ip\"\nserver = \"127.0.0.9:5099\"\n\
         addresses = [\"127.0.0.9\"]\n\n\
         [[phone.routes]]\nname = \"out\"\npattern = \"9.\"\nstrip = 1\ntrunks = [\"isp\"]\n\
         users = [\"alice\"]\n",
    );
    let office = Office::start(&c);
    let alice = Baresip::start("alice", &office.account("101", "alice", "demo-alice")).unwrap();
    let bob = Baresip::start(
        "bob",
        &office.account("102", "bob", "demo-bob").auto_answer(true),
    )
    .unwrap();
    office.wait_registered(&alice);
    office.wait_registered(&bob);
    // bob may not call out (403); 5551234 is nobody (404): the REFER is refused. (baresip
    // 1.0 hangs up a call whose transfer failed; the box would have carried on.)
    for (to, code) in [("95551234", "code=403"), ("5551234", "code=404")] {
        let (a, b) = (alice.mark(), bob.mark());
        alice.dial("102").unwrap();
        office.wait_event(&alice, a, "CALL_ESTABLISHED");
        office.wait_event(&bob, b, "CALL_ESTABLISHED");
        let before = office.ob.log().matches("phone: transfer refused").count();
        bob.command("transfer", Some(to))
            .unwrap_or_else(|e| office.fail("bob could not send the transfer", e));
        let refused = officebox_testkit::wait_until(Duration::from_secs(5), || {
            let log = office.ob.log();
            log.matches("phone: transfer refused").count() > before && log.contains(code)
        });
        assert!(
            refused,
            "the transfer to {to} was not refused with {code}:\n{}",
            office.ob.log()
        );
        if office.phone_cli("calls").contains(": talking") {
            alice.hangup().unwrap();
        }
        office.wait_event(&alice, a, "CALL_CLOSED");
        office.wait_listing("calls", "no call", |l| l.contains("no call in progress"));
    }
    // Nothing was held or broken: another call goes through.
    let (a, b) = (alice.mark(), bob.mark());
    alice.dial("102").unwrap();
    office.wait_event(&alice, a, "CALL_ESTABLISHED");
    office.wait_event(&bob, b, "CALL_ESTABLISHED");
    alice.hangup().unwrap();
    office.wait_event(&bob, b, "CALL_CLOSED");
    assert!(!office.ob.log().contains("too many outside calls at once"));
}

#[test]
fn a_three_way_call_made_from_a_transfer_lets_all_three_talk_and_goes_on_without_its_maker() {
    require_peers();
    let _serial = serial();
    let dir = scratch_dir("baresip-three-way").unwrap();
    let c = TestConfig::demo().free_ports().append(&user_block(
        "carol",
        "Carol Example",
        "103",
        "demo-carol",
    ));
    let office = Office::start(&c);
    // alice calls bob, puts him on hold, calls carol, and keys *3 about 3.5 s after
    // bob's call began. Then (in bob's time) bob speaks at 5 s, alice at 9 s; alice
    // hangs up at 13 s, carol speaks at 14 s, and bob hangs up at 18.5 s. carol's and
    // alice's second call begin about 2.2 s after bob's.
    let people = [
        (
            "alice",
            9.0 - 2.2,
            "Alice asks both of them for the shipping dates.",
        ),
        ("bob", 5.0, "Bob says the crates leave on Monday morning."),
        (
            "carol",
            14.0 - 2.2,
            "Carol confirms the truck arrives at noon.",
        ),
    ];
    let mut says = Vec::new();
    let mut plays = Vec::new();
    for (name, lead, sentence) in people {
        let said = dir.path().join(format!("{name}-says.wav"));
        audio::speak_wav(&said, sentence).unwrap();
        let play = dir.path().join(format!("{name}.wav"));
        padded(&said, &play, lead, 1.0);
        says.push(said);
        plays.push(play);
    }
    let alice = Baresip::start(
        "alice",
        &office.account("101", "alice", "demo-alice").play(&plays[0]),
    )
    .unwrap();
    let bob = Baresip::start(
        "bob",
        &office
            .account("102", "bob", "demo-bob")
            .auto_answer(true)
            .play(&plays[1]),
    )
    .unwrap();
    let carol = Baresip::start(
        "carol",
        &office
            .account("103", "carol", "demo-carol")
            .auto_answer(true)
            .play(&plays[2]),
    )
    .unwrap();
    for phone in [&alice, &bob, &carol] {
        office.wait_registered(phone);
    }
    let at = |start: Instant, seconds: f64| {
        let until = start + Duration::from_secs_f64(seconds);
        sleep(until.saturating_duration_since(Instant::now()));
    };

    alice.dial("102").unwrap();
    office.wait_event(&alice, 0, "CALL_ESTABLISHED");
    let start = office.wait_event(&bob, 0, "CALL_ESTABLISHED").received;
    at(start, 1.0);
    alice.hold().unwrap();
    at(start, 2.0);
    let (a, c) = (alice.mark(), carol.mark());
    alice.dial("103").unwrap();
    office.wait_event(&alice, a, "CALL_ESTABLISHED");
    office.wait_event(&carol, c, "CALL_ESTABLISHED");
    at(start, 3.0);
    let keyed = alice.mark();
    for key in ["*", "3"] {
        alice
            .command("sndcode", Some(key))
            .unwrap_or_else(|e| office.fail("alice could not press a key", e));
        sleep(Duration::from_millis(250));
    }
    if let Err(e) = office
        .ob
        .peer()
        .wait_for_log("phone: three-way call", EVENT_TIMEOUT)
    {
        office.fail("*3 did not make a three-way call", e);
    }
    // The box hangs up alice's held call to bob; her call to carol is the three-way call.
    office.wait_event(&alice, keyed, "CALL_CLOSED");
    office.wait_listing("calls", "two calls in the three-way room", |l| {
        l.matches(": conference").count() == 2
    });

    at(start, 13.0);
    let (a, b, c) = (alice.mark(), bob.mark(), carol.mark());
    alice.hangup().unwrap();
    office.wait_event(&alice, a, "CALL_CLOSED");
    // bob and carol go on: carol speaks after alice left, and bob hears her.
    at(start, 18.5);
    let closed = |phone: &Baresip, mark: usize| {
        phone
            .events()
            .iter()
            .skip(mark)
            .any(|e| e.kind == "CALL_CLOSED")
    };
    assert!(
        !closed(&bob, b) && !closed(&carol, c),
        "alice hanging up hung up the others:\n{}",
        office.ob.log()
    );
    bob.hangup().unwrap();
    office.wait_event(&bob, b, "CALL_CLOSED");
    // carol, the last one left, is hung up by the box.
    office.wait_event(&carol, c, "CALL_CLOSED");
    office.wait_listing("calls", "no call", |l| l.contains("no call in progress"));

    let heard: Vec<_> = [&alice, &bob, &carol]
        .iter()
        .map(|p| p.last_recording(EVENT_TIMEOUT).unwrap().heard)
        .collect();
    let names = ["alice", "bob", "carol"];
    // Who must hear whom (carol spoke after alice had left).
    for (listener, speaker, expected) in [
        (0, 1, true),
        (1, 0, true),
        (2, 0, true),
        (2, 1, true),
        (1, 2, true),
        (0, 0, false),
        (1, 1, false),
        (2, 2, false),
    ] {
        let m = audio::compare(&says[speaker], &heard[listener]).unwrap();
        eprintln!(
            "{} heard {}: similarity {:.4} at {:.2} s",
            names[listener], names[speaker], m.score, m.lag_seconds
        );
        if expected {
            assert!(
                m.score > SIMILAR,
                "{} did not hear {}: {m:?} ({})\n{}",
                names[listener],
                names[speaker],
                heard[listener].display(),
                office.ob.log()
            );
        } else {
            assert!(
                m.score < DIFFERENT,
                "{} hears itself: {m:?}",
                names[listener]
            );
        }
    }
}
