//! The baresip phone harness and the audio helpers, checked against each other without
//! officebox: two phones calling each other directly on loopback (one plays, the other
//! records, the recording is compared with what was played), manual answer with hold and
//! resume over TCP, and registration with digest authentication at a tiny fake registrar.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle, sleep};
use std::time::Duration;

use officebox_testkit::{
    AudioStats, Baresip, BaresipAccount, Codec, SipTransport, audio, require_program, scratch_dir,
};

const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

fn require_peers() {
    require_program("baresip", "baresip");
    require_program("sox", "sox");
    require_program("espeak-ng", "espeak-ng");
}

fn seconds(path: &Path) -> io::Result<f64> {
    Ok(audio::read_wav(path)?.seconds())
}

#[test]
fn direct_call_plays_speech_and_the_caller_records_it() -> io::Result<()> {
    require_peers();
    let dir = scratch_dir("baresip-speech")?;
    let speech = dir.path().join("speech.wav");
    audio::speak_wav(
        &speech,
        "Hello Alice. This is Bob's phone. The quick brown fox jumps over the lazy dog.",
    )?;
    let other = dir.path().join("other.wav");
    audio::speak_wav(
        &other,
        "Seven green bottles, hanging on the wall, and nobody answered the telephone.",
    )?;

    // Bob answers at once, plays the sentence and hangs up when it ends.
    let bob = Baresip::start(
        "bob",
        &BaresipAccount::direct("102")
            .auto_answer(true)
            .play(&speech)
            .hang_up_after_playing(true),
    )?;
    let alice = Baresip::start("alice", &BaresipAccount::direct("101"))?;
    assert!(bob.uri().starts_with("sip:102@127.0.0.1:"), "{}", bob.uri());

    alice.dial(bob.uri())?;
    let established = alice.wait_for_event("CALL_ESTABLISHED", EVENT_TIMEOUT)?;
    assert_eq!(established.peer_uri, bob.uri());
    assert_eq!(established.direction, "outgoing");
    let incoming = bob.wait_for_event("CALL_ESTABLISHED", EVENT_TIMEOUT)?;
    assert_eq!(incoming.direction, "incoming");
    assert_eq!(incoming.peer_uri, alice.aor());

    let played = seconds(&speech)?;
    let timeout = Duration::from_secs_f64(played + 10.0);
    let closed = alice.wait_for_event("CALL_CLOSED", timeout)?;
    assert_eq!(closed.param, "Connection reset by peer", "{closed:?}");
    let bob_closed = bob.wait_for_event("CALL_CLOSED", EVENT_TIMEOUT)?;
    assert_eq!(bob_closed.param, "end of file", "{bob_closed:?}");
    assert!(
        established.received.elapsed() < Duration::from_secs_f64(played + 3.0),
        "the call outlasted the file"
    );

    let heard = alice.last_recording(EVENT_TIMEOUT)?.heard;
    let m = audio::compare(&speech, &heard)?;
    let other_score = audio::similarity(&other, &heard)?;
    let bob_rec = bob.last_recording(EVENT_TIMEOUT)?;
    let bob_heard_score = audio::similarity(&speech, &bob_rec.heard)?;
    let sentences = audio::similarity(&speech, &other)?;
    let sent = audio::similarity(&speech, &bob_rec.sent)?;
    eprintln!(
        "speech {played:.2} s; alice heard {:.2} s, rms {:.3}: similarity {:.4} (whole {:.4}, lag {:.3} s); \
         other sentence vs heard {other_score:.4}; speech vs other sentence {sentences:.4}; \
         speech vs bob's silent side {bob_heard_score:.4}; speech vs what bob sent {sent:.4}",
        seconds(&heard)?,
        m.recorded_rms,
        m.score,
        m.whole,
        m.lag_seconds,
    );
    assert!(m.score > 0.9, "alice's recording does not match: {m:?}");
    assert!((-0.1..0.5).contains(&m.lag_seconds), "{m:?}");
    assert!(other_score < 0.3, "another sentence matches: {other_score}");
    assert!(sentences < 0.3, "the two sentences match: {sentences}");
    assert!(sent > 0.99, "bob did not send the file as it is: {sent}");
    // Alice sent silence.
    assert!(audio::is_silent(&bob_rec.heard)?);
    assert!(!audio::is_silent(&heard)?);
    assert!(bob_heard_score < 0.1, "{bob_heard_score}");
    Ok(())
}

#[test]
fn manual_answer_hold_resume_and_hangup_over_tcp() -> io::Result<()> {
    require_peers();
    let dir = scratch_dir("baresip-hold")?;
    let tones = dir.path().join("tones.wav");
    audio::make_tone_wav(&tones, 8.0)?;

    let bob = Baresip::start(
        "bob",
        &BaresipAccount::direct("102")
            .transport(SipTransport::Tcp)
            .play(&tones)
            .rtp_ports(31000, 31999),
    )?;
    let alice = Baresip::start(
        "alice",
        &BaresipAccount::direct("101")
            .transport(SipTransport::Tcp)
            .codecs(&[Codec::Pcma])
            .rtp_ports(32000, 32999),
    )?;

    alice.dial(bob.uri())?;
    let ringing = bob.wait_for_event("CALL_INCOMING", EVENT_TIMEOUT)?;
    assert_eq!(ringing.peer_uri, alice.aor());
    alice.wait_for_event("CALL_RINGING", EVENT_TIMEOUT)?;
    sleep(Duration::from_millis(300));
    assert!(
        alice.events().iter().all(|e| e.kind != "CALL_ESTABLISHED"),
        "answered without accept"
    );
    bob.accept()?;
    alice.wait_for_event("CALL_ESTABLISHED", EVENT_TIMEOUT)?;
    bob.wait_for_event("CALL_ESTABLISHED", EVENT_TIMEOUT)?;
    assert!(alice.log().contains("m=audio 32"), "alice's RTP port range");
    assert!(alice.log().contains("SIP/2.0/TCP"), "not over TCP");
    assert!(bob.log().contains("PCMA/8000"));
    sleep(Duration::from_millis(1500));
    let before: AudioStats = alice.audio_stats()?;
    assert_eq!(before.direction, "sendrecv");
    assert!(before.received > 40, "{before:?}");

    let mark = bob.mark();
    alice.hold()?;
    let offer = bob.wait_for(mark, "a re-INVITE offer", EVENT_TIMEOUT, |e| {
        e.kind == "CALL_REMOTE_SDP" && e.param == "offer"
    })?;
    assert_eq!(offer.peer_uri, alice.aor());
    alice.wait_for_log("a=recvonly", EVENT_TIMEOUT)?; // bob's answer to sendonly
    sleep(Duration::from_millis(300));
    let held = alice.audio_stats()?;
    sleep(Duration::from_millis(1000));
    let still_held = alice.audio_stats()?;
    assert_eq!(held.direction, "sendonly");
    assert_eq!(bob.audio_stats()?.direction, "recvonly");
    // baresip 1.0.0 sends nothing unless sendrecv: no audio either way on hold.
    assert_eq!(
        still_held.received, held.received,
        "{held:?} {still_held:?}"
    );
    assert_eq!(still_held.sent, held.sent, "{held:?} {still_held:?}");

    let mark = bob.mark();
    alice.resume()?;
    bob.wait_for(mark, "a re-INVITE offer", EVENT_TIMEOUT, |e| {
        e.kind == "CALL_REMOTE_SDP" && e.param == "offer"
    })?;
    sleep(Duration::from_millis(1500));
    let resumed = alice.audio_stats()?;
    assert_eq!(resumed.direction, "sendrecv");
    assert!(resumed.received >= still_held.received + 40, "{resumed:?}");
    assert!(resumed.sent >= still_held.sent + 40, "{resumed:?}");
    let bob_stats = bob.audio_stats()?;
    eprintln!("alice {before:?} / {held:?} / {resumed:?}; bob {bob_stats:?}");

    let mark = alice.mark();
    alice.hangup()?;
    let closed = alice.wait_for_event_after(mark, "CALL_CLOSED", EVENT_TIMEOUT)?;
    assert_eq!(closed.param, "Connection reset by user", "{closed:?}");
    let bob_closed = bob.wait_for_event("CALL_CLOSED", EVENT_TIMEOUT)?;
    assert_eq!(
        bob_closed.param, "Connection reset by peer",
        "{bob_closed:?}"
    );
    assert!(alice.audio_stats().is_err(), "stats without a call");

    // The recording of what alice heard stops at the hold (see `Recording::heard`):
    // compare it with the first second of what bob played.
    let heard = alice.last_recording(EVENT_TIMEOUT)?.heard;
    let mut start = audio::read_wav(&tones)?;
    start.samples.truncate(8000);
    let tones_start = dir.path().join("tones-start.wav");
    audio::write_wav(&tones_start, start.rate, &start.samples)?;
    let m = audio::compare(&tones_start, &heard)?;
    let heard_seconds = seconds(&heard)?;
    eprintln!(
        "tones over PCMA until the hold: alice heard {heard_seconds:.2} s, similarity {:.4} (whole {:.4}, lag {:.3} s)",
        m.score, m.whole, m.lag_seconds
    );
    assert!((1.0..2.5).contains(&heard_seconds), "{heard_seconds}");
    assert!(m.score > 0.9, "{m:?}");
    // Alice only sent silence.
    assert!(audio::is_silent(&bob.last_recording(EVENT_TIMEOUT)?.heard)?);

    // A second call: the marks keep the first call's events apart.
    let mark = alice.mark();
    alice.dial(bob.uri())?;
    bob.wait_for_event_after(0, "CALL_INCOMING", EVENT_TIMEOUT)?;
    sleep(Duration::from_millis(200));
    bob.hangup()?; // rejects the ringing call
    let rejected = alice.wait_for_event_after(mark, "CALL_CLOSED", EVENT_TIMEOUT)?;
    assert!(
        alice
            .events()
            .iter()
            .skip(mark)
            .all(|e| e.kind != "CALL_ESTABLISHED"),
        "{rejected:?}"
    );
    eprintln!("rejected call closed with {:?}", rejected.param);
    Ok(())
}

/// A registrar that challenges, then accepts login `alice` (any response; it cannot
/// check digests) and refuses everyone else with 403. Records every request.
struct FakeRegistrar {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    message.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

impl FakeRegistrar {
    fn start() -> io::Result<FakeRegistrar> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_read_timeout(Some(Duration::from_millis(100)))?;
        let addr = socket.local_addr()?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, done) = (Arc::clone(&requests), Arc::clone(&stop));
        let thread = thread::spawn(move || {
            let mut buf = [0u8; 65535];
            while !done.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                if msg.starts_with("SIP/2.0") {
                    continue;
                }
                log.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(msg.clone());
                let auth = header(&msg, "Authorization");
                let status = match auth {
                    None => "401 Unauthorized",
                    Some(a) if a.contains("username=\"alice\"") => "200 OK",
                    Some(_) => "403 Forbidden",
                };
                let mut reply = format!("SIP/2.0 {status}\r\n");
                for h in ["Via", "From", "Call-ID", "CSeq"] {
                    reply.push_str(&format!("{h}: {}\r\n", header(&msg, h).unwrap_or("")));
                }
                reply.push_str(&format!(
                    "To: {};tag=fake\r\n",
                    header(&msg, "To").unwrap_or("")
                ));
                if auth.is_none() {
                    reply.push_str(
                        "WWW-Authenticate: Digest realm=\"office.test\", nonce=\"n0nce\", \
                         algorithm=MD5, qop=\"auth\"\r\n",
                    );
                } else if status.starts_with("200")
                    && let Some(contact) = header(&msg, "Contact")
                {
                    reply.push_str(&format!("Contact: {contact}\r\n"));
                }
                reply.push_str("Content-Length: 0\r\n\r\n");
                let _ = socket.send_to(reply.as_bytes(), from);
            }
        });
        Ok(FakeRegistrar {
            addr,
            requests,
            stop,
            thread: Some(thread),
        })
    }

    fn requests(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for FakeRegistrar {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn registers_with_digest_auth_and_reports_refusal() -> io::Result<()> {
    require_peers();
    let registrar = FakeRegistrar::start()?;

    let alice = Baresip::start(
        "alice",
        &BaresipAccount::new("101", registrar.addr)
            .domain("office.test")
            .auth("alice", "demo-alice")
            .register_interval(600),
    )?;
    assert_eq!(alice.aor(), "sip:101@office.test");
    alice.wait_registered(EVENT_TIMEOUT)?;
    assert!(alice.is_registered());
    let registers = registrar.requests();
    assert_eq!(registers.len(), 2, "{registers:#?}");
    let first = &registers[0];
    assert!(
        first.starts_with("REGISTER sip:office.test SIP/2.0"),
        "{first}"
    );
    let route = header(first, "Route").unwrap_or_default();
    assert_eq!(
        route,
        format!("<sip:{};transport=udp;lr>", registrar.addr),
        "{first}"
    );
    assert!(
        header(first, "To")
            .unwrap_or_default()
            .contains("sip:101@office.test")
    );
    assert!(header(first, "Expires").is_some() || first.contains("expires=600"));
    let auth = header(&registers[1], "Authorization").unwrap_or_default();
    for want in [
        "Digest username=\"alice\"",
        "realm=\"office.test\"",
        "nonce=\"n0nce\"",
        "uri=\"sip:office.test\"",
        "response=\"",
        "qop=auth",
        "nc=00000001",
    ] {
        assert!(auth.contains(want), "{want} missing from {auth}");
    }

    let mallory = Baresip::start(
        "mallory",
        &BaresipAccount::new("103", registrar.addr).auth("mallory", "guess"),
    )?;
    let err = mallory
        .wait_registered(EVENT_TIMEOUT)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("403 Forbidden"), "{err}");
    assert!(!mallory.is_registered());
    Ok(())
}
