//! The call state machine, driven message by message through a fake [`Wire`] on tokio's
//! paused clock: what each step sends, and where the call is after it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::fork::ForkState;
use super::*;
use crate::sip::{Method, Transport, param};

const BOX: &str = "127.0.0.1:5060";
const CALLER: &str = "127.0.0.1:5062";
const PHONE_1: &str = "127.0.0.1:5070";
const PHONE_2: &str = "127.0.0.1:5072";
const NO_ANSWER: Duration = Duration::from_secs(20);

fn addr(a: &str) -> SocketAddr {
    a.parse().unwrap()
}

/// Records what the call sends instead of sending it.
#[derive(Default)]
struct FakeWire {
    sent: Mutex<Vec<(Message, SocketAddr, Transport)>>,
}

impl Wire for FakeWire {
    fn send(&self, bytes: Vec<u8>, to: SocketAddr, transport: Transport) {
        let m = Message::parse(&bytes).expect("the call sent a message that does not parse");
        self.sent.lock().unwrap().push((m, to, transport));
    }

    fn local(&self) -> SocketAddr {
        addr(BOX)
    }
}

impl FakeWire {
    /// What was sent since the last look.
    fn take(&self) -> Vec<(Message, SocketAddr, Transport)> {
        std::mem::take(&mut *self.sent.lock().unwrap())
    }
}

/// `INVITE 127.0.0.1:5070`, `180 127.0.0.1:5062`: a message and where it went.
fn line(m: &Message, to: SocketAddr) -> String {
    match &m.start {
        StartLine::Request { method, .. } => format!("{method} {to}"),
        StartLine::Response { code, .. } => {
            let method = m.cseq().map(|(_, m)| m.to_string()).unwrap_or_default();
            format!("{code}/{method} {to}")
        }
    }
}

/// Takes what was sent: the lines (see [`line`]) and the messages.
fn sent(wire: &FakeWire) -> (Vec<String>, Vec<Message>) {
    wire.take()
        .into_iter()
        .map(|(m, to, _)| (line(&m, to), m))
        .unzip()
}

fn sdp(port: u16) -> Vec<u8> {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
    )
    .into_bytes()
}

/// The port of an SDP body's audio.
fn audio_port(m: &Message) -> u16 {
    sdp::audio(&m.body).unwrap().addr.port()
}

/// A request in text, from `source` over UDP.
#[allow(clippy::too_many_arguments)]
fn request(
    method: &str,
    uri: &str,
    via: &str,
    from: &str,
    to: &str,
    call_id: &str,
    cseq: u32,
    body: &[u8],
    source: &str,
) -> Incoming {
    let mut text = format!(
        "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {via}\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n"
    );
    if !body.is_empty() {
        text.push_str("Content-Type: application/sdp\r\n");
    }
    text.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(body);
    Incoming {
        msg: Message::parse(&bytes).unwrap(),
        source: addr(source),
        transport: Transport::Udp,
    }
}

const CALLER_FROM: &str = "\"Alice\" <sip:101@office.test>;tag=alice";
const CALLER_BRANCH: &str = "z9hG4bKcaller";

/// The caller's INVITE (with a Contact, as phones send it).
fn caller_invite() -> Incoming {
    caller_invite_in("leg-a")
}

/// The caller's INVITE with Call-ID `call_id`.
fn caller_invite_in(call_id: &str) -> Incoming {
    let mut m = request(
        "INVITE",
        "sip:102@office.test",
        &format!("{CALLER};branch={CALLER_BRANCH};rport"),
        CALLER_FROM,
        "<sip:102@office.test>",
        call_id,
        1,
        &sdp(4000),
        CALLER,
    );
    m.msg.push("Contact", format!("<sip:101@{CALLER}>"));
    m
}

/// A request from the caller in its dialog (`to` with our tag, from our answer).
fn from_caller(method: &str, cseq: u32, branch: &str, to: &str, body: &[u8]) -> Incoming {
    request(
        method,
        &format!("sip:102@{BOX}"),
        &format!("{CALLER};branch={branch};rport"),
        CALLER_FROM,
        to,
        "leg-a",
        cseq,
        body,
        CALLER,
    )
}

/// A phone's response to a request the call sent it (`tag`: the phone's To tag).
fn answer(req: &Message, code: u16, tag: &str, from: &str, body: &[u8]) -> Incoming {
    let mut r = req.response(code, "Whatever", tag);
    if (200..300).contains(&code) {
        r.push("Contact", format!("<sip:102@{from}>"));
    }
    if !body.is_empty() {
        r.push("Content-Type", "application/sdp");
        r.body = body.to_vec();
    }
    Incoming {
        msg: Message::parse(&r.to_bytes()).unwrap(),
        source: addr(from),
        transport: Transport::Udp,
    }
}

/// A request from the answering phone in leg B's dialog, given our INVITE to it.
fn from_callee(method: &str, cseq: u32, invite: &Message, tag: &str, body: &[u8]) -> Incoming {
    request(
        method,
        &format!("sip:101@{BOX}"),
        &format!("{PHONE_1};branch=z9hG4bKphone{cseq};rport"),
        &format!("{};tag={tag}", invite.header("to").unwrap()),
        invite.header("from").unwrap(),
        invite.call_id(),
        cseq,
        body,
        PHONE_1,
    )
}

fn binding(at: &str) -> Binding {
    Binding {
        contact: format!("sip:102@{at}"),
        expires_at: u64::MAX,
        call_id: "reg".into(),
        cseq: 1,
        source: addr(at),
        transport: Transport::Udp,
        user_agent: "test".into(),
    }
}

/// A call from 101 to 102, whose phones are at `phones`; the box answers for 102 when
/// `voicemail` (here: with the menu, which takes the same way).
fn new_call(
    phones: &[&str],
    voicemail: bool,
) -> (
    Call,
    Arc<FakeWire>,
    watch::Receiver<Status>,
    mpsc::Sender<Incoming>,
) {
    let (setup, wire, status) = new_setup(phones, voicemail);
    let (tx, rx) = mpsc::channel(64);
    let call = Call::new(setup, caller_invite(), rx).unwrap();
    (call, wire, status, tx)
}

/// What [`run`] needs for a call as in [`new_call`].
fn new_setup(phones: &[&str], voicemail: bool) -> (Setup, Arc<FakeWire>, watch::Receiver<Status>) {
    let (setup, wire, status, _log) = new_logged_setup(phones, voicemail);
    (setup, wire, status)
}

/// [`new_setup`], and the call log's events.
fn new_logged_setup(
    phones: &[&str],
    voicemail: bool,
) -> (
    Setup,
    Arc<FakeWire>,
    watch::Receiver<Status>,
    mpsc::UnboundedReceiver<CallEvent>,
) {
    let wire = Arc::new(FakeWire::default());
    let (log_events, log_rx) = mpsc::unbounded_channel();
    let (status_tx, status_rx) = watch::channel(Status {
        caller: "101".into(),
        callee: "102".into(),
        state: "ringing",
        started_at: 0,
        answered_at: None,
    });
    let setup = Setup {
        wire: Arc::clone(&wire) as Arc<dyn Wire>,
        ports: Ports::new((47000, 47998)),
        parties: Parties {
            caller_login: "alice".into(),
            caller_ext: "101".into(),
            caller_name: "Alice".into(),
            callee_login: "bob".into(),
            callee_ext: "102".into(),
            domain: "office.test".into(),
        },
        callee: Callee::Phones(phones.iter().map(|p| binding(p)).collect()),
        slots: Arc::default(),
        held: Vec::new(),
        nonces: Arc::default(),
        no_answer: NO_ANSWER,
        b_call_id: "leg-b".into(),
        status: status_tx,
        voicemail: None,
        forwards: None,
        fallback: None,
        router: None,
        inbox: None,
        links: None,
        music: None,
        auto_answer: false,
        rooms: None,
        record: None,
        menu: voicemail.then(|| menu::MenuSetup {
            data_dir: std::env::temp_dir(),
            db: Arc::new(std::sync::Mutex::new(
                officebox_store::Db::open_in_memory().unwrap(),
            )),
            login: "bob".into(),
            pin_hash: None,
            attendants: Vec::new(),
        }),
        ringing: Ringing::start(&Arc::default()),
        log: NewCall {
            call_id: "leg-b".into(),
            direction: officebox_store::Direction::Internal,
            trunk: None,
            caller: "101".into(),
            caller_login: Some("alice".into()),
            caller_name: "Alice".into(),
            callee: "102".into(),
            callee_login: Some("bob".into()),
            started_at: 0,
        },
        log_events,
    };
    (setup, wire, status_rx, log_rx)
}

/// Starts the call: 100 to the caller, our INVITE to each phone (returned).
fn started(call: &mut Call, wire: &FakeWire) -> Vec<Message> {
    call.start();
    let (lines, msgs) = sent(wire);
    assert_eq!(
        lines.first().map(String::as_str),
        Some("100/INVITE 127.0.0.1:5062")
    );
    msgs.into_iter()
        .skip(1)
        .inspect(|m| assert_eq!(m.method(), Some(&Method::Invite)))
        .collect()
}

/// Lets the clock run `d`, then the call's timers.
async fn after(call: &mut Call, d: Duration) {
    tokio::time::advance(d).await;
    call.timers();
}

/// A call answered by phone 1 (tag `bob`): our INVITE to it, and our 200 to the caller.
async fn answered() -> (
    Call,
    Arc<FakeWire>,
    watch::Receiver<Status>,
    Message,
    Message,
) {
    let (mut call, wire, status, _tx) = new_call(&[PHONE_1], false);
    let invite = started(&mut call, &wire).remove(0);
    call.handle(answer(&invite, 200, "bob", PHONE_1, &sdp(6000)));
    let (lines, mut msgs) = sent(&wire);
    assert_eq!(lines, ["ACK 127.0.0.1:5070", "200/INVITE 127.0.0.1:5062"]);
    let ok = msgs.remove(1);
    (call, wire, status, invite, ok)
}

#[tokio::test(start_paused = true)]
async fn a_phone_rings_and_answers_and_the_legs_are_joined() {
    let (mut call, wire, status, _tx) = new_call(&[PHONE_1], false);
    let invite = started(&mut call, &wire).remove(0);
    // Our offer to the phone points at the relay's leg-B port.
    assert_eq!(audio_port(&invite), call.media.port_b);
    assert_eq!(invite.call_id(), "leg-b");
    assert!(matches!(call.state, State::Ringing { rang: false }));

    call.handle(answer(&invite, 180, "bob", PHONE_1, b""));
    assert_eq!(sent(&wire).0, ["180/INVITE 127.0.0.1:5062"]);
    assert!(matches!(call.state, State::Ringing { rang: true }));
    // A second ringing is not passed on.
    call.handle(answer(&invite, 180, "bob", PHONE_1, b""));
    assert!(sent(&wire).0.is_empty());

    call.handle(answer(&invite, 200, "bob", PHONE_1, &sdp(6000)));
    let (lines, msgs) = sent(&wire);
    assert_eq!(lines, ["ACK 127.0.0.1:5070", "200/INVITE 127.0.0.1:5062"]);
    // The caller's answer points at the relay's leg-A port, from the callee's SDP.
    assert_eq!(audio_port(&msgs[1]), call.media.port_a);
    assert!(matches!(call.state, State::Talking));
    assert_eq!(call.winner().map(|f| f.state), Some(ForkState::Answered));
    assert_eq!(status.borrow().state, "talking");
    assert!(status.borrow().answered_at.is_some());
    assert_eq!(
        call.media.peers.borrow().b,
        Some(addr("127.0.0.1:6000")),
        "the relay sends leg A's audio to the phone's SDP address"
    );
}

#[tokio::test(start_paused = true)]
async fn invites_are_retransmitted_until_a_response_and_our_200_until_the_ack() {
    let (mut call, wire, _status, _tx) = new_call(&[PHONE_1], false);
    let invite = started(&mut call, &wire).remove(0);
    after(&mut call, Duration::from_millis(500)).await;
    assert_eq!(sent(&wire).0, ["INVITE 127.0.0.1:5070"]);
    // Doubling: nothing at 500 ms more, again at 1 s more.
    after(&mut call, Duration::from_millis(500)).await;
    assert!(sent(&wire).0.is_empty());
    after(&mut call, Duration::from_millis(500)).await;
    assert_eq!(sent(&wire).0, ["INVITE 127.0.0.1:5070"]);
    // Any response ends it.
    call.handle(answer(&invite, 100, "", PHONE_1, b""));
    after(&mut call, Duration::from_secs(4)).await;
    assert!(sent(&wire).0.is_empty());

    call.handle(answer(&invite, 200, "bob", PHONE_1, &sdp(6000)));
    let (_, msgs) = sent(&wire);
    let ok = &msgs[1];
    after(&mut call, Duration::from_millis(500)).await;
    assert_eq!(sent(&wire).0, ["200/INVITE 127.0.0.1:5062"]);
    after(&mut call, Duration::from_secs(1)).await;
    assert_eq!(sent(&wire).0, ["200/INVITE 127.0.0.1:5062"]);
    let to = ok.header("to").unwrap();
    call.handle(from_caller("ACK", 1, "z9hG4bKack", to, b""));
    after(&mut call, Duration::from_secs(4)).await;
    assert!(sent(&wire).0.is_empty());
    assert!(call.retransmits.is_empty());
    assert!(matches!(call.state, State::Talking));
}

#[tokio::test(start_paused = true)]
async fn a_retransmitted_invite_from_the_caller_gets_the_last_answer_again() {
    let (mut call, wire, _status, _tx) = new_call(&[PHONE_1], false);
    let invite = started(&mut call, &wire).remove(0);
    call.handle(caller_invite());
    assert_eq!(sent(&wire).0, ["100/INVITE 127.0.0.1:5062"]);
    call.handle(answer(&invite, 180, "bob", PHONE_1, b""));
    sent(&wire);
    call.handle(caller_invite());
    assert_eq!(sent(&wire).0, ["180/INVITE 127.0.0.1:5062"]);
    // Ringing is not retransmitted by itself (and the 180 ended our INVITE's).
    after(&mut call, Duration::from_secs(2)).await;
    assert!(sent(&wire).0.is_empty());
}

#[tokio::test(start_paused = true)]
async fn busy_without_voicemail_is_passed_on_and_the_call_ends_with_the_ack() {
    let (mut call, wire, status, _tx) = new_call(&[PHONE_1], false);
    let invite = started(&mut call, &wire).remove(0);
    call.handle(answer(&invite, 486, "bob", PHONE_1, b""));
    let (lines, msgs) = sent(&wire);
    assert_eq!(lines, ["ACK 127.0.0.1:5070", "486/INVITE 127.0.0.1:5062"]);
    assert_eq!(call.disposition, Disposition::Busy);
    // The ACK of a refusal is in the INVITE's transaction: the same branch.
    assert_eq!(msgs[0].branch(), invite.branch());
    assert!(matches!(call.state, State::Ending));
    assert_eq!(status.borrow().state, "ending");
    assert!(!call.is_over(), "our 486 waits for its ACK");
    let to = msgs[1].header("to").unwrap().to_string();
    call.handle(from_caller("ACK", 1, CALLER_BRANCH, &to, b""));
    assert!(call.is_over());
}

#[tokio::test(start_paused = true)]
async fn busy_with_voicemail_goes_to_the_box() {
    let (mut call, wire, _status, _tx) = new_call(&[PHONE_1], true);
    let invite = started(&mut call, &wire).remove(0);
    call.handle(answer(&invite, 486, "bob", PHONE_1, b""));
    assert_eq!(sent(&wire).0, ["ACK 127.0.0.1:5070"]);
    assert!(matches!(call.state, State::ToVoicemail));
    assert_eq!(
        call.disposition,
        Disposition::Busy,
        "busy, unless a message is left"
    );
}

#[tokio::test(start_paused = true)]
async fn decline_is_not_taken_by_voicemail_and_busy_beats_unavailable() {
    let (mut call, wire, _status, _tx) = new_call(&[PHONE_1], true);
    let invite = started(&mut call, &wire).remove(0);
    call.handle(answer(&invite, 603, "bob", PHONE_1, b""));
    assert_eq!(
        sent(&wire).0,
        ["ACK 127.0.0.1:5070", "603/INVITE 127.0.0.1:5062"]
    );
    assert!(matches!(call.state, State::Ending));
    assert_eq!(call.disposition, Disposition::Busy, "declined");

    let (mut call, wire, _status, _tx) = new_call(&[PHONE_1, PHONE_2], false);
    let invites = started(&mut call, &wire);
    call.handle(answer(&invites[0], 486, "one", PHONE_1, b""));
    assert_eq!(sent(&wire).0, ["ACK 127.0.0.1:5070"], "phone 2 still rings");
    assert!(call.state.is_ringing());
    call.handle(answer(&invites[1], 480, "two", PHONE_2, b""));
    assert_eq!(
        sent(&wire).0,
        ["ACK 127.0.0.1:5072", "486/INVITE 127.0.0.1:5062"]
    );
}

#[tokio::test(start_paused = true)]
async fn no_answer_cancels_the_phones_and_goes_to_voicemail() {
    let (mut call, wire, _status, _tx) = new_call(&[PHONE_1], true);
    let invite = started(&mut call, &wire).remove(0);
    call.handle(answer(&invite, 180, "bob", PHONE_1, b""));
    sent(&wire);
    assert_eq!(
        call.next_timer(),
        tokio::time::Instant::now() + Duration::from_secs(1)
    );
    tokio::time::advance(NO_ANSWER - Duration::from_millis(1)).await;
    call.timers();
    assert!(call.state.is_ringing());
    sent(&wire);
    after(&mut call, Duration::from_millis(1)).await;
    let (lines, msgs) = sent(&wire);
    assert_eq!(lines, ["CANCEL 127.0.0.1:5070"]);
    assert_eq!(msgs[0].branch(), invite.branch());
    assert!(matches!(call.state, State::ToVoicemail));
    assert_eq!(call.forks[0].state, ForkState::Cancelled);
    assert_eq!(call.disposition, Disposition::NoAnswer);
}

#[tokio::test(start_paused = true)]
async fn no_answer_without_voicemail_is_480_and_ends_when_everything_is_answered() {
    let (mut call, wire, _status, _tx) = new_call(&[PHONE_1], false);
    let invite = started(&mut call, &wire).remove(0);
    call.handle(answer(&invite, 180, "bob", PHONE_1, b""));
    sent(&wire);
    tokio::time::advance(NO_ANSWER).await;
    call.timers();
    let (lines, msgs) = sent(&wire);
    assert_eq!(
        lines,
        ["CANCEL 127.0.0.1:5070", "480/INVITE 127.0.0.1:5062"]
    );
    assert!(matches!(call.state, State::Ending));
    assert_eq!(call.disposition, Disposition::NoAnswer);
    let to = msgs[1].header("to").unwrap().to_string();
    call.handle(from_caller("ACK", 1, CALLER_BRANCH, &to, b""));
    assert!(!call.is_over(), "the CANCEL is not answered yet");
    call.handle(answer(&msgs[0], 200, "bob", PHONE_1, b""));
    assert!(!call.is_over(), "the INVITE is not answered yet");
    call.handle(answer(&invite, 487, "bob", PHONE_1, b""));
    assert_eq!(sent(&wire).0, ["ACK 127.0.0.1:5070"]);
    assert!(call.is_over());
}

#[tokio::test(start_paused = true)]
async fn the_callers_cancel_ends_the_ringing_and_a_crossing_200_is_hung_up() {
    let (mut call, wire, _status, _tx) = new_call(&[PHONE_1], false);
    let invite = started(&mut call, &wire).remove(0);
    call.handle(answer(&invite, 180, "bob", PHONE_1, b""));
    sent(&wire);
    call.handle(from_caller(
        "CANCEL",
        1,
        CALLER_BRANCH,
        "<sip:102@office.test>",
        b"",
    ));
    assert_eq!(
        sent(&wire).0,
        [
            "200/CANCEL 127.0.0.1:5062",
            "CANCEL 127.0.0.1:5070",
            "487/INVITE 127.0.0.1:5062"
        ]
    );
    assert!(matches!(call.state, State::Ending));
    // The phone answered before our CANCEL reached it: ACK it, then hang it up.
    call.handle(answer(&invite, 200, "bob", PHONE_1, &sdp(6000)));
    let (lines, msgs) = sent(&wire);
    assert_eq!(lines, ["ACK 127.0.0.1:5070", "BYE 127.0.0.1:5070"]);
    assert_eq!(param(msgs[1].header("to").unwrap(), "tag"), Some("bob"));
    assert!(matches!(call.state, State::Ending));
    assert!(call.winner().is_none(), "nobody won the call");
    assert_eq!(call.forks[0].state, ForkState::HungUp);
    assert_eq!(call.disposition, Disposition::Cancelled);
    // The phone answers our CANCEL (too late: 481); the call is over once the caller
    // has ACKed its 487.
    call.handle(answer(&msgs[1], 481, "bob", PHONE_1, b""));
    assert!(!call.is_over());
    let to = call.a.invite.response(487, "", &call.a.tag);
    let to = to.header("to").unwrap().to_string();
    call.handle(from_caller("ACK", 1, CALLER_BRANCH, &to, b""));
    assert!(call.is_over());
}

#[tokio::test(start_paused = true)]
async fn a_cancel_after_the_answer_changes_nothing() {
    let (mut call, wire, _status, _invite, ok) = answered().await;
    let to = ok.header("to").unwrap().to_string();
    call.handle(from_caller("CANCEL", 1, CALLER_BRANCH, &to, b""));
    assert_eq!(sent(&wire).0, ["200/CANCEL 127.0.0.1:5062"]);
    assert!(matches!(call.state, State::Talking));
}

#[tokio::test(start_paused = true)]
async fn the_first_phone_to_answer_wins_and_the_others_are_cancelled() {
    let (mut call, wire, _status, _tx) = new_call(&[PHONE_1, PHONE_2], false);
    let invites = started(&mut call, &wire);
    assert_eq!(invites.len(), 2);
    call.handle(answer(&invites[1], 200, "two", PHONE_2, &sdp(6002)));
    assert_eq!(
        sent(&wire).0,
        [
            "ACK 127.0.0.1:5072",
            "CANCEL 127.0.0.1:5070",
            "200/INVITE 127.0.0.1:5062"
        ]
    );
    assert_eq!(call.forks[0].state, ForkState::Cancelled);
    // Phone 1 answered anyway: it is hung up.
    call.handle(answer(&invites[0], 200, "one", PHONE_1, &sdp(6000)));
    assert_eq!(sent(&wire).0, ["ACK 127.0.0.1:5070", "BYE 127.0.0.1:5070"]);
    assert_eq!(
        call.winner().map(|f| f.to_tag.clone()),
        Some(Some("two".into()))
    );
}

#[tokio::test(start_paused = true)]
async fn the_callers_bye_hangs_up_the_phone() {
    let (mut call, wire, status, invite, ok) = answered().await;
    let to = ok.header("to").unwrap().to_string();
    call.handle(from_caller("ACK", 1, "z9hG4bKack", &to, b""));
    call.handle(from_caller("BYE", 2, "z9hG4bKbye", &to, b""));
    let (lines, msgs) = sent(&wire);
    assert_eq!(lines, ["200/BYE 127.0.0.1:5062", "BYE 127.0.0.1:5070"]);
    let bye = &msgs[1];
    // In the phone's dialog: its tag, our From tag, the next CSeq, its Contact.
    assert_eq!(param(bye.header("to").unwrap(), "tag"), Some("bob"));
    assert_eq!(bye.header("from"), invite.header("from"));
    assert_eq!(bye.cseq(), Some((2, Method::Bye)));
    assert!(
        matches!(&bye.start, StartLine::Request { uri, .. } if uri == "sip:102@127.0.0.1:5070")
    );
    assert!(matches!(call.state, State::Ending));
    assert_eq!(status.borrow().state, "ending");
    assert!(!call.is_over(), "our BYE is not answered yet");
    after(&mut call, Duration::from_millis(500)).await;
    assert_eq!(sent(&wire).0, ["BYE 127.0.0.1:5070"]);
    call.handle(answer(bye, 200, "bob", PHONE_1, b""));
    assert!(call.is_over());
}

#[tokio::test(start_paused = true)]
async fn the_callees_bye_hangs_up_the_caller() {
    let (mut call, wire, _status, invite, ok) = answered().await;
    let to = ok.header("to").unwrap().to_string();
    call.handle(from_caller("ACK", 1, "z9hG4bKack", &to, b""));
    call.handle(from_callee("BYE", 2, &invite, "bob", b""));
    let (lines, msgs) = sent(&wire);
    assert_eq!(lines, ["200/BYE 127.0.0.1:5070", "BYE 127.0.0.1:5062"]);
    let bye = &msgs[1];
    // In the caller's dialog: to its Contact, From our answer's To, To its From.
    assert!(
        matches!(&bye.start, StartLine::Request { uri, .. } if uri == "sip:101@127.0.0.1:5062")
    );
    assert_eq!(bye.header("from"), Some(to.as_str()));
    assert_eq!(bye.header("to"), Some(CALLER_FROM));
    assert_eq!(bye.call_id(), "leg-a");
    assert!(matches!(call.state, State::Ending));
    // A retransmitted BYE from the phone is answered again.
    call.handle(from_callee("BYE", 2, &invite, "bob", b""));
    assert_eq!(sent(&wire).0, ["200/BYE 127.0.0.1:5070"]);
    call.handle(answer(bye, 200, "alice", CALLER, b""));
    assert!(call.is_over());
}

#[tokio::test(start_paused = true)]
async fn a_reinvite_from_the_caller_is_carried_to_the_phone_and_answered_back() {
    let (mut call, wire, _status, _invite, ok) = answered().await;
    let to = ok.header("to").unwrap().to_string();
    call.handle(from_caller("ACK", 1, "z9hG4bKack", &to, b""));
    call.handle(from_caller("INVITE", 2, "z9hG4bKre1", &to, &sdp(4100)));
    let (lines, msgs) = sent(&wire);
    assert_eq!(
        lines,
        ["100/INVITE 127.0.0.1:5062", "INVITE 127.0.0.1:5070"]
    );
    let re = &msgs[1];
    assert_eq!(re.cseq(), Some((2, Method::Invite)));
    assert_eq!(audio_port(re), call.media.port_b);
    assert_eq!(call.media.peers.borrow().a, Some(addr("127.0.0.1:4100")));
    // Its retransmission is not carried again; another re-INVITE meanwhile is refused.
    call.handle(from_caller("INVITE", 2, "z9hG4bKre1", &to, &sdp(4100)));
    assert!(sent(&wire).0.is_empty());
    call.handle(from_caller("INVITE", 3, "z9hG4bKre2", &to, &sdp(4100)));
    assert_eq!(sent(&wire).0, ["491/INVITE 127.0.0.1:5062"]);

    call.handle(answer(re, 200, "bob", PHONE_1, &sdp(6100)));
    let (lines, msgs) = sent(&wire);
    assert_eq!(lines, ["ACK 127.0.0.1:5070", "200/INVITE 127.0.0.1:5062"]);
    assert_eq!(msgs[0].cseq(), Some((2, Method::Ack)));
    assert_eq!(audio_port(&msgs[1]), call.media.port_a);
    assert_eq!(msgs[1].branch(), "z9hG4bKre1");
    assert_eq!(call.media.peers.borrow().b, Some(addr("127.0.0.1:6100")));
    assert!(call.reinvite.is_none());
    assert!(matches!(call.state, State::Talking));
}

#[tokio::test(start_paused = true)]
async fn a_reinvite_from_the_phone_is_carried_to_the_caller_and_answered_back() {
    let (mut call, wire, _status, invite, ok) = answered().await;
    let to = ok.header("to").unwrap().to_string();
    call.handle(from_caller("ACK", 1, "z9hG4bKack", &to, b""));
    call.handle(from_callee("INVITE", 2, &invite, "bob", &sdp(6200)));
    let (lines, msgs) = sent(&wire);
    assert_eq!(
        lines,
        ["100/INVITE 127.0.0.1:5070", "INVITE 127.0.0.1:5062"]
    );
    let re = &msgs[1];
    assert_eq!(re.call_id(), "leg-a");
    assert_eq!(audio_port(re), call.media.port_a);
    // Sent again until the caller answers.
    after(&mut call, Duration::from_millis(500)).await;
    assert_eq!(sent(&wire).0, ["INVITE 127.0.0.1:5062"]);

    call.handle(answer(re, 200, "alice", CALLER, &sdp(4200)));
    let (lines, msgs) = sent(&wire);
    assert_eq!(lines, ["ACK 127.0.0.1:5062", "200/INVITE 127.0.0.1:5070"]);
    assert_eq!(msgs[0].cseq(), re.cseq().map(|(n, _)| (n, Method::Ack)));
    assert_eq!(audio_port(&msgs[1]), call.media.port_b);
    assert_eq!(call.media.peers.borrow().a, Some(addr("127.0.0.1:4200")));
    after(&mut call, Duration::from_secs(4)).await;
    assert!(sent(&wire).0.is_empty());
    assert!(matches!(call.state, State::Talking));
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_phone_times_out_as_408_and_the_caller_hears_480() {
    let (mut call, wire, _status, _tx) = new_call(&[PHONE_1], false);
    started(&mut call, &wire);
    let mut lines = Vec::new();
    for _ in 0..40 {
        after(&mut call, Duration::from_millis(500)).await;
        lines.extend(sent(&wire).0);
    }
    // From T1 doubling to T2: at 0.5, 1.5, 3.5, 7.5, 11.5, 15.5 and 19.5 s; then the
    // no-answer timer (20 s) cancels the phone.
    let resent = lines
        .iter()
        .filter(|l| *l == "INVITE 127.0.0.1:5070")
        .count();
    assert_eq!(resent, 7);
    assert_eq!(
        lines.get(7..),
        Some(
            &[
                "CANCEL 127.0.0.1:5070".to_string(),
                "480/INVITE 127.0.0.1:5062".into()
            ][..]
        )
    );
    assert!(matches!(call.state, State::Ending));

    // With a longer no-answer timer the transaction timeout decides.
    let (mut call, wire, _status, _tx) = new_call(&[PHONE_1], false);
    call.ring_until += Duration::from_secs(60);
    started(&mut call, &wire);
    after(&mut call, Duration::from_secs(32)).await;
    let (lines, _) = sent(&wire);
    assert_eq!(
        lines.last().map(String::as_str),
        Some("480/INVITE 127.0.0.1:5062")
    );
    assert_eq!(call.forks[0].state, ForkState::Failed(408));
}

#[tokio::test(start_paused = true)]
async fn a_200_never_acked_hangs_up_the_phone() {
    let (mut call, wire, _status, _invite, _ok) = answered().await;
    tokio::time::advance(Duration::from_secs(32)).await;
    call.timers();
    let (lines, _) = sent(&wire);
    assert_eq!(lines.last().map(String::as_str), Some("BYE 127.0.0.1:5070"));
    assert!(matches!(call.state, State::Ending));
}

#[tokio::test(start_paused = true)]
async fn info_digits_go_to_the_other_phone() {
    let (mut call, wire, _status, invite, ok) = answered().await;
    let to = ok.header("to").unwrap().to_string();
    let mut info = from_caller("INFO", 2, "z9hG4bKinfo", &to, b"");
    info.msg.push("Content-Type", "application/dtmf-relay");
    info.msg.body = b"Signal=5\r\nDuration=160\r\n".to_vec();
    call.handle(info);
    let (lines, msgs) = sent(&wire);
    assert_eq!(lines, ["200/INFO 127.0.0.1:5062", "INFO 127.0.0.1:5070"]);
    assert_eq!(msgs[1].body, b"Signal=5\r\nDuration=160\r\n");
    call.handle(from_callee("INFO", 2, &invite, "bob", b""));
    assert_eq!(
        sent(&wire).0,
        ["200/INFO 127.0.0.1:5070", "INFO 127.0.0.1:5062"]
    );
}

#[tokio::test(start_paused = true)]
async fn no_phone_and_no_voicemail_is_480_at_once() {
    let (mut call, wire, _status, _tx) = new_call(&[], false);
    call.start();
    assert_eq!(
        sent(&wire).0,
        ["100/INVITE 127.0.0.1:5062", "480/INVITE 127.0.0.1:5062"]
    );
    assert!(matches!(call.state, State::Ending));
    assert_eq!(call.disposition, Disposition::NoAnswer);
}

#[tokio::test(start_paused = true)]
async fn the_call_task_runs_to_its_end() {
    let (setup, wire, status, mut log) = new_logged_setup(&[PHONE_1], false);
    let (tx2, rx2) = mpsc::channel(64);
    let task = tokio::spawn(run(setup, caller_invite(), rx2));
    tokio::time::sleep(Duration::from_millis(1)).await;
    let (lines, msgs) = sent(&wire);
    assert_eq!(
        lines,
        ["100/INVITE 127.0.0.1:5062", "INVITE 127.0.0.1:5070"]
    );
    let invite = msgs[1].clone();
    tx2.send(answer(&invite, 200, "bob", PHONE_1, &sdp(6000)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1)).await;
    let (lines, msgs) = sent(&wire);
    assert_eq!(lines, ["ACK 127.0.0.1:5070", "200/INVITE 127.0.0.1:5062"]);
    assert_eq!(status.borrow().state, "talking");
    let to = msgs[1].header("to").unwrap().to_string();
    tx2.send(from_caller("ACK", 1, "z9hG4bKack", &to, b""))
        .await
        .unwrap();
    tx2.send(from_caller("BYE", 2, "z9hG4bKbye", &to, b""))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1)).await;
    let (lines, msgs) = sent(&wire);
    assert_eq!(lines, ["200/BYE 127.0.0.1:5062", "BYE 127.0.0.1:5070"]);
    assert!(!task.is_finished());
    tx2.send(answer(&msgs[1], 200, "bob", PHONE_1, b""))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(1), task)
        .await
        .expect("the call task ends once everything is answered")
        .unwrap();
    assert_eq!(status.borrow().state, "ending");
    // The call log heard its start, who answered, and how it ended.
    let mut events = Vec::new();
    while let Ok(e) = log.try_recv() {
        events.push(e);
    }
    assert!(
        matches!(&events[..], [
            CallEvent::Start(NewCall { call_id, .. }),
            CallEvent::Answered { by: Some(by), .. },
            CallEvent::Ended { disposition: Disposition::Answered, .. },
        ] if call_id == "leg-b" && by == "bob"),
        "{events:?}"
    );
}

const PROVIDER: &str = "198.51.100.1:5060";
const BACKUP: &str = "203.0.113.9:5060";

/// An outside line to `number` over trunk `name` at `at`.
fn outside_line(name: &str, at: &str, password: Option<&str>, max_calls: u32) -> OutsideLine {
    let host = addr(at).ip();
    OutsideLine {
        trunk: name.into(),
        uri: format!("sip:5551234@{host}"),
        from: format!("\"Alice\" <sip:4930123456@{host}>"),
        to: format!("<sip:5551234@{host}>"),
        identity: Some(format!("\"Alice\" <sip:4930123456@{host}>")),
        contact_user: "4930123456".into(),
        peer: addr(at),
        transport: Transport::Udp,
        credentials: password.map(|p| Credentials {
            username: "4930123456".into(),
            password: p.into(),
        }),
        max_calls,
        codecs: vec!["PCMA".into(), "PCMU".into()],
    }
}

/// Alice's call to the outside number 5551234 over `lines`, with the server's `slots`.
fn outside_call(
    lines: Vec<OutsideLine>,
    slots: &Arc<Slots>,
) -> (Call, Arc<FakeWire>, mpsc::UnboundedReceiver<CallEvent>) {
    outside_call_with(lines, slots, &Arc::default())
}

/// [`outside_call`] with the trunks' last challenges in `nonces`.
fn outside_call_with(
    lines: Vec<OutsideLine>,
    slots: &Arc<Slots>,
    nonces: &Arc<Nonces>,
) -> (Call, Arc<FakeWire>, mpsc::UnboundedReceiver<CallEvent>) {
    let (setup, wire, _status, log) = new_logged_setup(&[], false);
    let setup = Setup {
        callee: Callee::Outside(lines),
        slots: Arc::clone(slots),
        nonces: Arc::clone(nonces),
        no_answer: Duration::from_secs(180),
        ..setup
    };
    let (_tx, rx) = mpsc::channel(64);
    (Call::new(setup, caller_invite(), rx).unwrap(), wire, log)
}

/// A provider's refusal of `req` with `code` (a challenge for 401 and 407).
fn refusal(req: &Message, code: u16, from: &str) -> Incoming {
    let mut r = req.response(code, "Refused", "provider");
    if code == 407 {
        r.push(
            "Proxy-Authenticate",
            "Digest realm=\"198.51.100.1\", nonce=\"abc123\", qop=\"auth\", algorithm=MD5",
        );
    }
    Incoming {
        msg: Message::parse(&r.to_bytes()).unwrap(),
        source: addr(from),
        transport: Transport::Udp,
    }
}

#[tokio::test(start_paused = true)]
async fn an_outside_call_answers_the_providers_challenge_and_is_joined() {
    let slots = Arc::default();
    let lines = vec![outside_line("main", PROVIDER, Some("secret"), 0)];
    let (mut call, wire, _log) = outside_call(lines, &slots);
    let invite = started(&mut call, &wire).remove(0);
    assert_eq!(
        invite.start,
        StartLine::Request {
            method: Method::Invite,
            uri: "sip:5551234@198.51.100.1".into()
        }
    );
    assert_eq!(
        invite.header("from").unwrap().split(";tag=").next(),
        Some("\"Alice\" <sip:4930123456@198.51.100.1>")
    );
    assert_eq!(invite.header("to"), Some("<sip:5551234@198.51.100.1>"));
    assert!(invite.header("p-asserted-identity").is_some());
    assert_eq!(
        slots.count("trunk:main"),
        1,
        "the call holds a place on its trunk"
    );

    call.handle(refusal(&invite, 407, PROVIDER));
    let (lines, msgs) = sent(&wire);
    assert_eq!(lines, ["ACK 198.51.100.1:5060", "INVITE 198.51.100.1:5060"]);
    assert_eq!(msgs[0].branch(), invite.branch(), "the refusal's ACK");
    let again = &msgs[1];
    let (first_cseq, _) = invite.cseq().unwrap();
    assert_eq!(again.cseq().unwrap().0, first_cseq + 1);
    assert_eq!(again.call_id(), invite.call_id());
    let auth = again.header("proxy-authorization").unwrap();
    assert!(
        auth.contains("username=\"4930123456\"")
            && auth.contains("uri=\"sip:5551234@198.51.100.1\"")
            && auth.contains("nc=00000001"),
        "{auth}"
    );
    // A second challenge is not answered again: the caller hears the trunk failed.
    call.handle(answer(again, 200, "far", PROVIDER, &sdp(7000)));
    let (lines, msgs) = sent(&wire);
    assert_eq!(
        lines,
        ["ACK 198.51.100.1:5060", "200/INVITE 127.0.0.1:5062"]
    );
    assert_eq!(
        msgs[0].cseq().unwrap().0,
        first_cseq + 1,
        "the ACK has the INVITE's CSeq"
    );
    assert!(matches!(call.state, State::Talking));
    // The caller hangs up: the BYE to the provider comes after the INVITE's CSeq.
    let to = msgs[1].header("to").unwrap().to_string();
    call.handle(from_caller("BYE", 2, "z9hG4bKbye", &to, b""));
    let (lines, msgs) = sent(&wire);
    assert_eq!(lines, ["200/BYE 127.0.0.1:5062", "BYE 198.51.100.1:5060"]);
    assert_eq!(msgs[1].cseq().unwrap().0, first_cseq + 2);
}

#[tokio::test(start_paused = true)]
async fn an_outside_call_fails_over_on_a_server_error_but_busy_is_passed_on() {
    let slots = Arc::default();
    let lines = vec![
        outside_line("main", PROVIDER, Some("secret"), 0),
        outside_line("backup", BACKUP, None, 0),
    ];
    let (mut call, wire, mut log) = outside_call(lines, &slots);
    let invite = started(&mut call, &wire).remove(0);
    call.handle(refusal(&invite, 503, PROVIDER));
    let (lines, msgs) = sent(&wire);
    assert_eq!(lines, ["ACK 198.51.100.1:5060", "INVITE 203.0.113.9:5060"]);
    assert_eq!(msgs[1].header("to"), Some("<sip:5551234@203.0.113.9>"));
    assert_eq!(
        (slots.count("trunk:main"), slots.count("trunk:backup")),
        (0, 1)
    );
    let mut moved = false;
    while let Ok(e) = log.try_recv() {
        moved |= matches!(e, CallEvent::Trunk { ref trunk, .. } if trunk == "backup");
    }
    assert!(moved, "the call log names the trunk the call went out on");
    // Busy is the called party's answer: no other trunk would do better.
    call.handle(refusal(&msgs[1], 486, BACKUP));
    assert_eq!(
        sent(&wire).0,
        ["ACK 203.0.113.9:5060", "486/INVITE 127.0.0.1:5062"]
    );
    assert_eq!(call.disposition, Disposition::Busy);
    assert_eq!(slots.count("trunk:backup"), 0);
}

#[tokio::test(start_paused = true)]
async fn an_outside_call_skips_a_full_trunk_and_fails_over_when_a_provider_is_silent() {
    let slots: Arc<Slots> = Arc::default();
    let busy = slots.take("trunk:main", 1).unwrap();
    let lines = vec![
        outside_line("main", PROVIDER, None, 1),
        outside_line("backup", BACKUP, None, 0),
        outside_line("third", "192.0.2.50:5060", None, 0),
    ];
    let (mut call, wire, _log) = outside_call(lines, &slots);
    let invite = started(&mut call, &wire).remove(0);
    assert_eq!(invite.header("to"), Some("<sip:5551234@203.0.113.9>"));
    drop(busy);
    // The backup says nothing, even to the retransmissions: 5 s on, the third trunk.
    for _ in 0..9 {
        after(&mut call, Duration::from_millis(500)).await;
    }
    assert_eq!(
        sent(&wire).0,
        ["INVITE 203.0.113.9:5060"; 3],
        "retransmitted at 0.5, 1.5 and 3.5 s"
    );
    after(&mut call, Duration::from_millis(500)).await;
    assert_eq!(sent(&wire).0, ["INVITE 192.0.2.50:5060"]);
    // The backup answers after all, too late: it is hung up.
    let backup = call.forks[0].branch.clone();
    let late = request(
        "INVITE",
        "sip:5551234@203.0.113.9",
        &format!("127.0.0.1:5060;branch={backup}"),
        "<sip:4930123456@203.0.113.9>;tag=x",
        "<sip:5551234@203.0.113.9>",
        "leg-b",
        call.forks[0].cseq,
        b"",
        CALLER,
    );
    call.handle(answer(&late.msg, 200, "late", BACKUP, &sdp(7100)));
    assert_eq!(
        sent(&wire).0,
        ["ACK 203.0.113.9:5060", "BYE 203.0.113.9:5060"]
    );
    // The last trunk refuses the number: the caller hears it.
    let last = call.forks.last().unwrap().branch.clone();
    let invite3 = request(
        "INVITE",
        "sip:5551234@192.0.2.50",
        &format!("127.0.0.1:5060;branch={last}"),
        "<sip:4930123456@192.0.2.50>;tag=x",
        "<sip:5551234@192.0.2.50>",
        "leg-b",
        call.forks.last().unwrap().cseq,
        b"",
        CALLER,
    );
    call.handle(refusal(&invite3.msg, 404, "192.0.2.50:5060"));
    assert_eq!(
        sent(&wire).0,
        ["ACK 192.0.2.50:5060", "404/INVITE 127.0.0.1:5062"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_site_that_says_nothing_sends_the_call_to_its_fallback_once() {
    let slots = Arc::default();
    let lines = vec![outside_line("site:branch", PROVIDER, None, 0)];
    let (call, wire, _log) = outside_call(lines, &slots);
    let mut call = call;
    call.setup.router = Some(Arc::new(FakeRouter));
    call.setup.fallback = Some(officebox_config::dialplan::Destination::Extension(
        "102".into(),
    ));
    started(&mut call, &wire);
    for _ in 0..10 {
        after(&mut call, Duration::from_millis(500)).await;
    }
    let (to, _) = sent(&wire);
    assert!(
        to.iter().any(|t| t == &format!("INVITE {PHONE_1}")),
        "5 s of silence: the fallback's phone rings: {to:?}"
    );
    assert_eq!(call.setup.parties.callee_ext, "102");
    assert!(call.setup.fallback.is_none(), "taken once");
    // Nobody there either: the fallback fails as any call does, never the site again.
    call.forks.clear();
    call.fork_failed(480, "Temporarily Unavailable");
    let (to, _) = sent(&wire);
    assert!(
        to.iter().all(|t| !t.contains(PROVIDER)),
        "the site is not asked again: {to:?}"
    );
}

/// A call from outside to a ring group whose `stages` ring in turn, 5 s each.
fn group_call(
    stages: Vec<Vec<(&str, &str)>>,
) -> (Call, Arc<FakeWire>, mpsc::UnboundedReceiver<CallEvent>) {
    let (setup, wire, _status, log) = new_logged_setup(&[], false);
    let stages = stages
        .into_iter()
        .map(|phones| Stage {
            outside: Vec::new(),
            phones: phones
                .into_iter()
                .map(|(login, at)| (login.to_string(), binding(at)))
                .collect(),
            ring: Duration::from_secs(5),
        })
        .collect();
    let setup = Setup {
        callee: Callee::Group(stages),
        ..setup
    };
    let (_tx, rx) = mpsc::channel(64);
    (Call::new(setup, caller_invite(), rx).unwrap(), wire, log)
}

#[tokio::test(start_paused = true)]
async fn a_hunt_group_rings_each_member_in_turn_and_a_busy_one_passes_at_once() {
    const PHONE_3: &str = "127.0.0.1:5074";
    let (mut call, wire, mut log) = group_call(vec![
        vec![("bob", PHONE_1)],
        vec![],
        vec![("carol", PHONE_2)],
        vec![("dave", PHONE_3)],
    ]);
    let first = started(&mut call, &wire);
    assert_eq!(first.len(), 1, "only the first member rings");
    call.handle(answer(&first[0], 180, "bob", PHONE_1, b""));
    sent(&wire);
    // Bob does not answer in 5 s: cancelled, and carol (the empty stage skipped) rings.
    after(&mut call, Duration::from_secs(5)).await;
    let (lines, msgs) = sent(&wire);
    assert_eq!(lines, ["CANCEL 127.0.0.1:5070", "INVITE 127.0.0.1:5072"]);
    assert!(msgs[1].cseq().unwrap().0 > first[0].cseq().unwrap().0);
    // Carol is busy: dave at once.
    call.handle(answer(&msgs[1], 486, "carol", PHONE_2, b""));
    let (lines, msgs) = sent(&wire);
    assert_eq!(lines, ["ACK 127.0.0.1:5072", "INVITE 127.0.0.1:5074"]);
    call.handle(answer(&msgs[1], 200, "dave", PHONE_3, &sdp(6000)));
    assert_eq!(
        sent(&wire).0,
        ["ACK 127.0.0.1:5074", "200/INVITE 127.0.0.1:5062"]
    );
    assert!(matches!(call.state, State::Talking));
    let mut by = None;
    while let Ok(e) = log.try_recv() {
        if let CallEvent::Answered { by: b, .. } = e {
            by = b;
        }
    }
    assert_eq!(
        by.as_deref(),
        Some("dave"),
        "the member who answered is logged"
    );
}

#[tokio::test(start_paused = true)]
async fn a_group_nobody_answers_ends_in_its_no_answer() {
    let (mut call, wire, _log) = group_call(vec![vec![("bob", PHONE_1), ("carol", PHONE_2)]]);
    let invites = started(&mut call, &wire);
    assert_eq!(invites.len(), 2, "all at once");
    call.handle(answer(&invites[0], 180, "bob", PHONE_1, b""));
    call.handle(answer(&invites[1], 180, "carol", PHONE_2, b""));
    sent(&wire);
    after(&mut call, Duration::from_secs(5)).await;
    let lines = sent(&wire).0;
    assert_eq!(
        lines,
        [
            "CANCEL 127.0.0.1:5070",
            "CANCEL 127.0.0.1:5072",
            "480/INVITE 127.0.0.1:5062"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn the_next_call_answers_the_trunks_last_challenge_up_front() {
    let (slots, nonces): (Arc<Slots>, Arc<Nonces>) = (Arc::default(), Arc::default());
    let line = || vec![outside_line("main", PROVIDER, Some("secret"), 0)];
    let (mut first, wire, _log) = outside_call_with(line(), &slots, &nonces);
    let invite = started(&mut first, &wire).remove(0);
    assert!(
        invite.header("proxy-authorization").is_none(),
        "nothing to answer yet"
    );
    first.handle(refusal(&invite, 407, PROVIDER));
    let (_, msgs) = sent(&wire);
    assert!(
        msgs[1]
            .header("proxy-authorization")
            .unwrap()
            .contains("nc=00000001")
    );

    // The second call sends the answer with its first INVITE, the nonce counted on.
    let (mut second, wire, _log) = outside_call_with(line(), &slots, &nonces);
    let invite = started(&mut second, &wire).remove(0);
    let auth = invite.header("proxy-authorization").unwrap();
    assert!(
        auth.contains("nonce=\"abc123\"") && auth.contains("nc=00000002"),
        "{auth}"
    );
    // The provider wants a new nonce after all: its challenge is answered once more.
    second.handle(refusal(&invite, 407, PROVIDER));
    let (lines, msgs) = sent(&wire);
    assert_eq!(lines, ["ACK 198.51.100.1:5060", "INVITE 198.51.100.1:5060"]);
    assert!(
        msgs[1]
            .header("proxy-authorization")
            .unwrap()
            .contains("nc=00000001")
    );
    second.handle(refusal(&msgs[1], 407, PROVIDER));
    assert_eq!(
        sent(&wire).0,
        ["ACK 198.51.100.1:5060", "503/INVITE 127.0.0.1:5062"],
        "a third challenge is a refusal"
    );
}

/// The attendant's choices as the server would route them: 102 rings phone 1, anything
/// else is nowhere.
struct FakeRouter;

impl Router for FakeRouter {
    fn route(&self, to: &officebox_config::dialplan::Destination) -> Routed {
        match to {
            officebox_config::dialplan::Destination::Extension(e) if e == "102" => Routed::ring(
                Callee::Phones(vec![binding(PHONE_1)]),
                "bob".into(),
                "102".into(),
                None,
            ),
            officebox_config::dialplan::Destination::Attendant(_) => Routed::ring(
                Callee::Attendant(Box::new(attendant_setup())),
                String::new(),
                "main".into(),
                None,
            ),
            _ => Routed::Refused(404),
        }
    }

    /// 103 is phone 2; 5551234 may not be called; anything else is no one.
    fn transfer(
        &self,
        _by: &str,
        _source: std::net::IpAddr,
        dialled: &str,
        _transferee: &Transferee,
    ) -> Routed {
        match dialled {
            "103" => Routed::ring(
                Callee::Phones(vec![binding(PHONE_2)]),
                "carol".into(),
                "103".into(),
                None,
            ),
            "5551234" => Routed::Refused(403),
            "700" => Routed::ring(
                Callee::Park(Box::new(park::ParkSetup {
                    parking: Arc::default(),
                    places: vec!["701".into(), "702".into()],
                    place: None,
                    parker: "102".into(),
                })),
                "bob".into(),
                "700".into(),
                None,
            ),
            _ => Routed::Refused(404),
        }
    }
}

/// The Call-IDs a call asked to have routed to it, the other calls it may find, and
/// its own links.
struct FakeInbox(
    Mutex<Vec<String>>,
    Mutex<Vec<(String, mpsc::Sender<Link>)>>,
    mpsc::Sender<Link>,
);

impl Default for FakeInbox {
    fn default() -> FakeInbox {
        FakeInbox(Mutex::default(), Mutex::default(), mpsc::channel(1).0)
    }
}

impl Inbox for FakeInbox {
    fn route(&self, call_id: &str) {
        self.0.lock().unwrap().push(call_id.to_string());
    }

    fn find(&self, call_id: &str) -> Option<mpsc::Sender<Link>> {
        let calls = self.1.lock().unwrap();
        calls
            .iter()
            .find(|(id, _)| id == call_id)
            .map(|(_, l)| l.clone())
    }

    fn links(&self) -> mpsc::Sender<Link> {
        self.2.clone()
    }

    fn others(&self) -> Vec<mpsc::Sender<Link>> {
        self.1
            .lock()
            .unwrap()
            .iter()
            .map(|(_, l)| l.clone())
            .collect()
    }
}

/// An answered call (as [`answered`]) that can be transferred: the fake router, and
/// the Call-IDs it routes.
async fn transferable() -> (Call, Arc<FakeWire>, Message, Message, Arc<FakeInbox>) {
    let (mut call, wire, _status, invite, ok) = answered().await;
    let inbox = Arc::new(FakeInbox::default());
    call.setup.router = Some(Arc::new(FakeRouter));
    call.setup.inbox = Some(Arc::clone(&inbox) as Arc<dyn Inbox>);
    (call, wire, invite, ok, inbox)
}

/// `request` with a Refer-To header.
fn referring(mut m: Incoming, to: &str) -> Incoming {
    m.msg.push("Refer-To", to.to_string());
    m
}

/// The status line in a NOTIFY's sipfrag, and its Subscription-State.
fn sipfrag(n: &Message) -> (String, String) {
    assert_eq!(
        n.header("content-type"),
        Some("message/sipfrag;version=2.0")
    );
    assert!(n.header("event").unwrap().starts_with("refer"));
    (
        String::from_utf8_lossy(&n.body).trim().to_string(),
        n.header("subscription-state").unwrap().to_string(),
    )
}

#[tokio::test(start_paused = true)]
async fn the_callee_transfers_the_caller_who_hears_ringback_then_the_target() {
    let (mut call, wire, invite, ok, inbox) = transferable().await;
    let caller_port = audio_port(&ok);
    call.handle(referring(
        from_callee("REFER", 2, &invite, "bob", b""),
        "<sip:103@office.test>",
    ));
    let (lines, msgs) = sent(&wire);
    assert_eq!(lines, ["202/REFER 127.0.0.1:5070", "NOTIFY 127.0.0.1:5070"]);
    let notify = &msgs[1];
    assert_eq!(sipfrag(notify).0, "SIP/2.0 100 Trying");
    assert_eq!(notify.header("event"), Some("refer;id=2"));
    assert_eq!(notify.call_id(), "leg-b");
    assert!(notify.header("to").unwrap().contains("tag=bob"));
    assert!(matches!(call.state, State::Transferring(_)));
    call.handle(answer(notify, 200, "bob", PHONE_1, b""));
    call.transfer().await;
    // Phone 2 rings in a new leg B (routed to the call), offered the caller's codec;
    // the caller hears ringback from the box on its own port, and nothing in SIP.
    let (lines, msgs) = sent(&wire);
    assert_eq!(lines, ["INVITE 127.0.0.1:5072"]);
    let to_carol = &msgs[0];
    assert_ne!(to_carol.call_id(), "leg-b");
    assert_eq!(*inbox.0.lock().unwrap(), [to_carol.call_id().to_string()]);
    assert_eq!(call.media.port_a, caller_port);
    assert!(String::from_utf8_lossy(&to_carol.body).contains("RTP/AVP 0 101"));
    assert!(call.held.is_some());
    call.handle(answer(to_carol, 200, "carol", PHONE_2, &sdp(7000)));
    assert_eq!(sent(&wire).0, ["ACK 127.0.0.1:5072"]);
    call.join().await;
    assert!(matches!(call.state, State::Talking));
    assert_eq!(call.media.peers.borrow().b, Some(addr("127.0.0.1:7000")));
    // The transferor hears it went through, and hangs up.
    let (lines, msgs) = sent(&wire);
    assert_eq!(lines, ["NOTIFY 127.0.0.1:5070"]);
    assert_eq!(
        sipfrag(&msgs[0]),
        (
            "SIP/2.0 200 OK".into(),
            "terminated;reason=noresource".into()
        )
    );
    call.handle(from_callee("BYE", 3, &invite, "bob", b""));
    assert_eq!(sent(&wire).0, ["200/BYE 127.0.0.1:5070"]);
    assert!(call.transferor.is_none());
    // The caller's BYE now hangs up the target.
    let to = ok.header("to").unwrap().to_string();
    call.handle(from_caller("BYE", 2, "z9hG4bKbye", &to, b""));
    let (lines, msgs) = sent(&wire);
    assert_eq!(lines, ["200/BYE 127.0.0.1:5062", "BYE 127.0.0.1:5072"]);
    assert_eq!(msgs[1].call_id(), to_carol.call_id());
}

#[tokio::test(start_paused = true)]
async fn the_caller_transfers_the_callee_whose_dialog_becomes_leg_a() {
    let (mut call, wire, invite, ok, _inbox) = transferable().await;
    let to = ok.header("to").unwrap().to_string();
    call.handle(referring(
        from_caller("REFER", 2, "z9hG4bKrefer", &to, b""),
        "<sip:103@office.test>",
    ));
    assert_eq!(
        sent(&wire).0,
        ["202/REFER 127.0.0.1:5062", "NOTIFY 127.0.0.1:5062"]
    );
    call.transfer().await;
    let (lines, msgs) = sent(&wire);
    assert_eq!(lines, ["INVITE 127.0.0.1:5072"]);
    // Carol's phone sees bob calling now.
    assert!(
        msgs[0]
            .header("from")
            .unwrap()
            .contains("sip:102@office.test")
    );
    assert_eq!(call.setup.parties.caller_login, "bob");
    call.handle(answer(&msgs[0], 200, "carol", PHONE_2, &sdp(7000)));
    call.join().await;
    let (lines, _) = sent(&wire);
    assert_eq!(lines, ["ACK 127.0.0.1:5072", "NOTIFY 127.0.0.1:5062"]);
    // Bob's phone hangs up, in its own dialog as it always was: carol's is hung up, and
    // the transferor (alice), who never hung up, with it.
    call.handle(from_callee("BYE", 2, &invite, "bob", b""));
    let (lines, msgs) = sent(&wire);
    assert_eq!(
        lines,
        [
            "200/BYE 127.0.0.1:5070",
            "BYE 127.0.0.1:5072",
            "BYE 127.0.0.1:5062"
        ]
    );
    assert_eq!(msgs[0].call_id(), "leg-b");
    assert_eq!(msgs[2].call_id(), "leg-a");
    assert_eq!(msgs[2].header("to"), Some(CALLER_FROM));
}

#[tokio::test(start_paused = true)]
async fn a_transferor_that_stays_on_the_line_is_hung_up_and_a_refused_transfer_changes_nothing() {
    let (mut call, wire, invite, _ok, _inbox) = transferable().await;
    // Nowhere the transferor may call, nobody, an attended transfer naming no call, no
    // Refer-To: refused, and the call goes on.
    for (to, code) in [
        (Some("<sip:5551234@office.test>"), "403"),
        (Some("<sip:999@office.test>"), "404"),
        (
            Some("<sip:103@office.test?Replaces=x%3Bto-tag%3D1%3Bfrom-tag%3D2>"),
            "481",
        ),
        (None, "400"),
    ] {
        let refer = from_callee("REFER", 2, &invite, "bob", b"");
        let refer = match to {
            Some(to) => referring(refer, to),
            None => refer,
        };
        call.handle(refer);
        assert_eq!(sent(&wire).0, [format!("{code}/REFER 127.0.0.1:5070")]);
        assert!(matches!(call.state, State::Talking));
        assert!(call.transferor.is_none());
    }
    call.handle(referring(
        from_callee("REFER", 3, &invite, "bob", b""),
        "<sip:103@office.test>",
    ));
    sent(&wire);
    call.transfer().await;
    let to_carol = sent(&wire).1.remove(0);
    call.handle(answer(&to_carol, 200, "carol", PHONE_2, &sdp(7000)));
    call.join().await;
    sent(&wire);
    // Bob's phone does not hang up after the final NOTIFY: the box does.
    after(&mut call, Duration::from_secs(5)).await;
    let (lines, msgs) = sent(&wire);
    assert!(
        lines.contains(&"BYE 127.0.0.1:5070".to_string()),
        "{lines:?}"
    );
    let bye = msgs
        .iter()
        .find(|m| m.method() == Some(&Method::Bye))
        .unwrap();
    assert_eq!(bye.call_id(), "leg-b");
    call.handle(answer(bye, 200, "bob", PHONE_1, b""));
    assert!(call.transferor.is_none());
}

/// The attendant "main": key 1 rings 102.
fn attendant_setup() -> crate::attendant::AttendantSetup {
    use officebox_config::dialplan::{Attendant, Destination, Greeting};
    crate::attendant::AttendantSetup {
        attendant: Attendant {
            name: "main".into(),
            greeting: Greeting::File("no-such-greeting.wav".into()),
            keys: vec![('1', Destination::Extension("102".into()))],
            dial_by_extension: false,
            timeout: Duration::from_secs(5),
            no_input: Destination::Attendant("main".into()),
            invalid: Destination::Hangup,
        },
        extensions: Vec::new(),
        data_dir: std::env::temp_dir(),
        fax: None,
    }
}

/// A call to an attendant, answered by the box (its 200 to the caller returned); the
/// attendant's own dialog stopped at once, and its endpoint handed back for
/// [`Call::send_on`].
async fn at_the_attendant() -> (Call, Arc<FakeWire>, Message, crate::media::Endpoint) {
    let (setup, wire, _status, _log) = new_logged_setup(&[], false);
    let setup = Setup {
        callee: Callee::Attendant(Box::new(attendant_setup())),
        router: Some(Arc::new(FakeRouter)),
        ..setup
    };
    let (_tx, rx) = mpsc::channel(64);
    let mut call = Call::new(setup, caller_invite(), rx).unwrap();
    call.start();
    assert!(matches!(call.state, State::ToVoicemail));
    call.enter_voicemail().await;
    let (lines, mut msgs) = sent(&wire);
    assert_eq!(
        lines,
        ["100/INVITE 127.0.0.1:5062", "200/INVITE 127.0.0.1:5062"]
    );
    let ok = msgs.remove(1);
    assert_eq!(call.disposition, Disposition::Attendant);
    let State::Voicemail(rec) = std::mem::replace(&mut call.state, State::Ending) else {
        panic!("the attendant does not play");
    };
    rec.hangup.cancel();
    let Ok(handoff::MediaJob::Attendant { endpoint, choice }) = rec.task.await else {
        panic!("the attendant's task did not give its endpoint back");
    };
    assert_eq!(choice, None);
    (call, wire, ok, *endpoint)
}

#[tokio::test(start_paused = true)]
async fn the_attendant_sends_the_call_on_and_the_answer_joins_the_legs_in_silence() {
    let (mut call, wire, ok, ep) = at_the_attendant().await;
    let caller_port = audio_port(&ok);
    call.send_on(
        ep,
        &officebox_config::dialplan::Destination::Extension("102".into()),
    )
    .await;
    // Phone 1 is offered the codec the box and the caller agreed on, at a new port; the
    // caller hears ringback from the box and nothing in SIP.
    let (lines, msgs) = sent(&wire);
    assert_eq!(lines, ["INVITE 127.0.0.1:5070"]);
    let invite = &msgs[0];
    assert_eq!(audio_port(invite), call.media.port_b);
    assert_ne!(call.media.port_b, caller_port);
    let offer = String::from_utf8_lossy(&invite.body).to_string();
    assert!(
        offer.contains("RTP/AVP 0 101") && offer.contains("telephone-event"),
        "{offer}"
    );
    assert!(call.held.is_some());
    call.handle(answer(invite, 180, "bob", PHONE_1, b""));
    assert!(sent(&wire).0.is_empty(), "ringing is not passed on");
    call.handle(answer(invite, 200, "bob", PHONE_1, &sdp(6000)));
    assert_eq!(sent(&wire).0, ["ACK 127.0.0.1:5070"], "no second 200");
    assert!(matches!(call.state, State::Joining));
    call.join().await;
    assert!(matches!(call.state, State::Talking));
    assert!(call.held.is_none() && call.media.relay.is_some());
    assert_eq!(call.media.peers.borrow().b, Some(addr("127.0.0.1:6000")));
    assert_eq!(call.disposition, Disposition::Answered);
    // The caller hangs up: the phone is hung up.
    let to = ok.header("to").unwrap().to_string();
    call.handle(from_caller("BYE", 2, "z9hG4bKbye", &to, b""));
    assert_eq!(
        sent(&wire).0,
        ["200/BYE 127.0.0.1:5062", "BYE 127.0.0.1:5070"]
    );
}

#[tokio::test(start_paused = true)]
async fn nobody_answering_or_nowhere_to_go_ends_an_attended_call_with_a_bye() {
    use officebox_config::dialplan::Destination;
    // No answer (and no voicemail behind the extension): the phone is cancelled and
    // the caller, answered long ago, gets a BYE.
    let (mut call, wire, _ok, ep) = at_the_attendant().await;
    call.send_on(ep, &Destination::Extension("102".into()))
        .await;
    let invite = sent(&wire).1.remove(0);
    call.handle(answer(&invite, 180, "bob", PHONE_1, b""));
    after(&mut call, NO_ANSWER).await;
    let lines = sent(&wire).0;
    assert!(
        lines.contains(&"CANCEL 127.0.0.1:5070".to_string())
            && lines.contains(&"BYE 127.0.0.1:5062".to_string()),
        "{lines:?}"
    );
    assert!(call.held.is_none());
    assert_eq!(call.disposition, Disposition::NoAnswer);

    // A choice that leads nowhere: goodbye, then BYE.
    let (mut call, wire, _ok, ep) = at_the_attendant().await;
    call.send_on(ep, &Destination::Extension("999".into()))
        .await;
    assert_eq!(sent(&wire).0, ["BYE 127.0.0.1:5062"]);
    assert_eq!(call.disposition, Disposition::Failed);
    assert!(matches!(call.state, State::Ending));
}

#[tokio::test(start_paused = true)]
async fn a_group_rings_a_phone_and_an_outside_number_at_once_each_as_itself() {
    let (setup, wire, _status, _log) = new_logged_setup(&[], false);
    let slots: Arc<Slots> = Arc::default();
    let setup = Setup {
        callee: Callee::Group(vec![Stage {
            phones: vec![("bob".into(), binding(PHONE_1))],
            outside: vec![vec![outside_line("main", PROVIDER, Some("secret"), 1)]],
            ring: Duration::from_secs(20),
        }]),
        slots: Arc::clone(&slots),
        ..setup
    };
    let (_tx, rx) = mpsc::channel(64);
    let mut call = Call::new(setup, caller_invite(), rx).unwrap();
    let invites = started(&mut call, &wire);
    assert_eq!(invites.len(), 2);
    let (phone, provider) = (&invites[0], &invites[1]);
    // The phone sees the office's caller; the provider, the trunk's account.
    assert!(
        phone
            .header("from")
            .unwrap()
            .contains("sip:101@office.test")
    );
    assert!(
        provider
            .header("from")
            .unwrap()
            .starts_with("\"Alice\" <sip:4930123456@198.51.100.1>;tag="),
        "{provider:?}"
    );
    assert_eq!(provider.header("to"), Some("<sip:5551234@198.51.100.1>"));
    assert!(provider.header("p-asserted-identity").is_some());
    assert_eq!(slots.count("trunk:main"), 1);
    // The provider's challenge is answered as the line.
    call.handle(refusal(provider, 407, PROVIDER));
    let (lines, msgs) = sent(&wire);
    assert_eq!(lines, ["ACK 198.51.100.1:5060", "INVITE 198.51.100.1:5060"]);
    let again = &msgs[1];
    assert!(again.header("proxy-authorization").is_some());
    assert_eq!(again.header("to"), Some("<sip:5551234@198.51.100.1>"));
    assert_eq!(slots.count("trunk:main"), 1, "the slot went with it");
    // The far end answers: the phone is cancelled, the caller joined; the dialog with
    // the provider is the line's.
    call.handle(answer(again, 200, "far", PROVIDER, &sdp(7000)));
    let (lines, msgs) = sent(&wire);
    assert_eq!(
        lines,
        [
            "ACK 198.51.100.1:5060",
            "CANCEL 127.0.0.1:5070",
            "200/INVITE 127.0.0.1:5062"
        ]
    );
    assert!(msgs[0].header("from").unwrap().contains("4930123456"));
    assert!(
        msgs[1]
            .header("from")
            .unwrap()
            .contains("sip:101@office.test")
    );
    let to = msgs[2].header("to").unwrap().to_string();
    call.handle(from_caller("BYE", 2, "z9hG4bKbye", &to, b""));
    let (lines, msgs) = sent(&wire);
    assert_eq!(lines, ["200/BYE 127.0.0.1:5062", "BYE 198.51.100.1:5060"]);
    assert!(msgs[1].header("from").unwrap().contains("4930123456"));
    assert!(
        msgs[1]
            .header("to")
            .unwrap()
            .starts_with("<sip:5551234@198.51.100.1>;tag=far")
    );
}

#[tokio::test(start_paused = true)]
async fn an_update_with_an_offer_is_answered_by_the_box_and_moves_that_sides_audio() {
    let (mut call, wire, _status, invite, _ok) = answered().await;
    // The phone moves its audio: answered from the relay's leg-B port; the caller hears
    // nothing of it.
    call.handle(from_callee("UPDATE", 5, &invite, "bob", &sdp(6100)));
    let (lines, msgs) = sent(&wire);
    assert_eq!(lines, ["200/UPDATE 127.0.0.1:5070"]);
    assert_eq!(audio_port(&msgs[0]), call.media.port_b);
    assert_eq!(call.media.peers.borrow().b, Some(addr("127.0.0.1:6100")));
    // A session refresh (no body) is just OK; an offer without G.711, 488.
    call.handle(from_callee("UPDATE", 6, &invite, "bob", b""));
    assert_eq!(sent(&wire).0, ["200/UPDATE 127.0.0.1:5070"]);
    let g729 = String::from_utf8(sdp(6200))
        .unwrap()
        .replace("RTP/AVP 0 101", "RTP/AVP 18");
    call.handle(from_callee("UPDATE", 7, &invite, "bob", g729.as_bytes()));
    assert_eq!(sent(&wire).0, ["488/UPDATE 127.0.0.1:5070"]);
    assert_eq!(call.media.peers.borrow().b, Some(addr("127.0.0.1:6100")));
    assert!(matches!(call.state, State::Talking));
}

#[tokio::test(start_paused = true)]
async fn a_reinvite_from_a_caller_the_box_holds_is_answered_by_the_box() {
    let (mut call, wire, ok, ep) = at_the_attendant().await;
    let caller_port = audio_port(&ok);
    call.send_on(
        ep,
        &officebox_config::dialplan::Destination::Extension("102".into()),
    )
    .await;
    sent(&wire);
    // While bob's phone rings, the provider refreshes the session.
    let to = ok.header("to").unwrap().to_string();
    call.handle(from_caller("INVITE", 2, "z9hG4bKrefresh", &to, &sdp(4000)));
    let (lines, msgs) = sent(&wire);
    assert_eq!(
        lines,
        ["200/INVITE 127.0.0.1:5062"],
        "not carried to a ringing phone"
    );
    assert_eq!(audio_port(&msgs[0]), caller_port, "the box's own port");
    assert!(msgs[0].header("contact").is_some());
    assert!(call.state.is_ringing());
    // Without G.711 it is refused, and the call goes on.
    let g729 = String::from_utf8(sdp(4000))
        .unwrap()
        .replace("RTP/AVP 0 101", "RTP/AVP 18");
    call.handle(from_caller(
        "INVITE",
        3,
        "z9hG4bKg729",
        &to,
        g729.as_bytes(),
    ));
    assert_eq!(sent(&wire).0, ["488/INVITE 127.0.0.1:5062"]);
    assert!(call.state.is_ringing());
}

#[tokio::test(start_paused = true)]
async fn the_record_code_from_an_office_phone_starts_and_stops_a_recording_within_the_limit() {
    let (setup, wire, _status) = new_setup(&[PHONE_1], false);
    let slots: Arc<Slots> = Arc::default();
    let setup = Setup {
        record: Some(RecordSetup {
            code: "*1".into(),
            data_dir: std::env::temp_dir(),
            db: Arc::new(std::sync::Mutex::new(
                officebox_store::Db::open_in_memory().unwrap(),
            )),
            host: "officebox.office.test".into(),
        }),
        slots: Arc::clone(&slots),
        ..setup
    };
    let (_tx, rx) = mpsc::channel(64);
    let mut call = Call::new(setup, caller_invite(), rx).unwrap();
    let invite = started(&mut call, &wire).remove(0);
    call.handle(answer(&invite, 200, "bob", PHONE_1, &sdp(6000)));
    let to = sent(&wire).1[1].header("to").unwrap().to_string();
    let key = |call: &mut Call, n: u32, k: &str| {
        let mut info = from_caller("INFO", n, &format!("z9hG4bKkey{n}"), &to, b"");
        info.msg.body = format!("Signal={k}\r\n").into_bytes();
        call.handle(info);
    };
    // Keys before the code do not matter; * then 1 starts it (alice is an office user).
    key(&mut call, 2, "5");
    key(&mut call, 3, "*");
    assert!(!call.media.peers.borrow().record);
    key(&mut call, 4, "1");
    assert!(call.media.peers.borrow().record);
    assert_eq!(slots.count("recordings"), 1);
    // The same code again stops it (the relay then hands the recording over).
    key(&mut call, 5, "*");
    key(&mut call, 6, "1");
    assert!(!call.media.peers.borrow().record);
    // With every place on the box taken, the code does nothing.
    // (The first recording delivered: its place is free again.)
    call.keys = super::record::Keys::default();
    let full: Vec<Slot> = (0..8).filter_map(|_| slots.take("recordings", 8)).collect();
    assert_eq!(full.len(), 8);
    key(&mut call, 7, "*");
    key(&mut call, 8, "1");
    assert!(!call.media.peers.borrow().record);
}

/// The attendant's own task, stopped at once: its endpoint back, as if nothing was chosen.
async fn stop_attendant(call: &mut Call) -> crate::media::Endpoint {
    let State::Voicemail(rec) = std::mem::replace(&mut call.state, State::Ending) else {
        panic!("the attendant does not play");
    };
    rec.hangup.cancel();
    let Ok(handoff::MediaJob::Attendant { endpoint, .. }) = rec.task.await else {
        panic!("no endpoint back");
    };
    *endpoint
}

#[tokio::test(start_paused = true)]
async fn a_caller_who_never_chooses_goes_round_the_attendant_a_few_times_then_is_let_go() {
    let main = officebox_config::dialplan::Destination::Attendant("main".into());
    let (mut call, wire, _ok, mut ep) = at_the_attendant().await;
    for pass in 2..=4 {
        call.send_on(ep, &main).await;
        assert_eq!(call.attendant_passes, pass);
        assert!(sent(&wire).0.is_empty(), "the same attendant again");
        ep = stop_attendant(&mut call).await;
    }
    call.send_on(ep, &main).await;
    assert_eq!(sent(&wire).0, ["BYE 127.0.0.1:5062"]);
    assert!(matches!(call.state, State::Ending));
}

#[tokio::test(start_paused = true)]
async fn a_caller_that_moved_its_audio_while_held_is_joined_at_its_new_address() {
    let (mut call, wire, ok, ep) = at_the_attendant().await;
    call.send_on(
        ep,
        &officebox_config::dialplan::Destination::Extension("102".into()),
    )
    .await;
    let invite = sent(&wire).1.remove(0);
    let to = ok.header("to").unwrap().to_string();
    call.handle(from_caller("INVITE", 2, "z9hG4bKmove", &to, &sdp(4100)));
    assert_eq!(sent(&wire).0, ["200/INVITE 127.0.0.1:5062"]);
    call.handle(answer(&invite, 200, "bob", PHONE_1, &sdp(6000)));
    call.join().await;
    assert_eq!(call.media.peers.borrow().a, Some(addr("127.0.0.1:4100")));
}

#[tokio::test(start_paused = true)]
async fn a_group_members_outside_line_gives_its_trunk_place_back_when_a_phone_wins() {
    let (setup, wire, _status, _log) = new_logged_setup(&[], false);
    let slots: Arc<Slots> = Arc::default();
    let setup = Setup {
        callee: Callee::Group(vec![Stage {
            phones: vec![("bob".into(), binding(PHONE_1))],
            outside: vec![vec![outside_line("main", PROVIDER, None, 1)]],
            ring: Duration::from_secs(20),
        }]),
        slots: Arc::clone(&slots),
        ..setup
    };
    let (_tx, rx) = mpsc::channel(64);
    let mut call = Call::new(setup, caller_invite(), rx).unwrap();
    let invites = started(&mut call, &wire);
    assert_eq!(slots.count("trunk:main"), 1);
    call.handle(answer(&invites[0], 200, "bob", PHONE_1, &sdp(6000)));
    let lines = sent(&wire).0;
    assert!(
        lines.contains(&"CANCEL 198.51.100.1:5060".to_string()),
        "{lines:?}"
    );
    assert_eq!(
        slots.count("trunk:main"),
        0,
        "the cancelled line's place is free"
    );
}

/// A second call of alice's (Call-IDs `leg-a2` and `leg-b2`), to phone 2 (carol's, for
/// `callee_login`), answered (tag `carol`); its links, our INVITE to phone 2 and our
/// 200 to alice.
async fn second_call(
    callee_login: &str,
) -> (
    Call,
    Arc<FakeWire>,
    mpsc::Receiver<Link>,
    mpsc::Sender<Link>,
    Message,
    Message,
) {
    let (mut setup, wire, _status, _log) = new_logged_setup(&[PHONE_2], false);
    setup.b_call_id = "leg-b2".into();
    setup.parties.callee_login = callee_login.into();
    setup.parties.callee_ext = "103".into();
    let (links_tx, links_rx) = mpsc::channel(8);
    let (_tx, rx) = mpsc::channel(64);
    let mut call = Call::new(setup, caller_invite_in("leg-a2"), rx).unwrap();
    let invite = started(&mut call, &wire).remove(0);
    let mut answered = answer(&invite, 200, "carol", PHONE_2, &sdp(7000));
    if let Some((_, v)) = answered
        .msg
        .headers
        .iter_mut()
        .find(|(n, _)| n == "contact")
    {
        *v = format!("<sip:103@{PHONE_2}>");
    }
    call.handle(answered);
    let ok = sent(&wire).1.remove(1);
    // Carol's phone is logged as carol's.
    if let Some(f) = call.forks.first_mut() {
        f.login = Some(callee_login.into());
    }
    (call, wire, links_rx, links_tx, invite, ok)
}

/// alice's REFER in the first call (to bob), naming her dialog in the second (to carol).
fn refer_replacing(first_ok: &Message, second_ok: &Message, from_tag: &str) -> Incoming {
    let to = first_ok.header("to").unwrap().to_string();
    let our_tag = param(second_ok.header("to").unwrap(), "tag").unwrap();
    referring(
        from_caller("REFER", 2, "z9hG4bKattended", &to, b""),
        &format!(
            "<sip:103@office.test?Replaces=leg-a2%3Bto-tag%3D{our_tag}%3Bfrom-tag%3D{from_tag}>"
        ),
    )
}

#[tokio::test(start_paused = true)]
async fn an_attended_transfer_joins_the_two_other_parties_and_either_hangup_ends_both() {
    let (mut first, wire1, invite1, ok1, inbox1) = transferable().await;
    let (mut second, wire2, mut links2, link2, _invite2, ok2) = second_call("carol").await;
    inbox1.1.lock().unwrap().push(("leg-a2".into(), link2));
    let (own1, _links1) = mpsc::channel(8);
    let inbox1 = Arc::new(FakeInbox(
        Mutex::default(),
        Mutex::new(inbox1.1.lock().unwrap().clone()),
        own1,
    ));
    first.setup.inbox = Some(Arc::clone(&inbox1) as Arc<dyn Inbox>);

    first.handle(refer_replacing(&ok1, &ok2, "alice"));
    assert!(matches!(first.state, State::Bridging(_)));
    tokio::join!(first.bridge(), async {
        let link = links2.recv().await.unwrap();
        second.link(link);
        second.bridge().await;
    });
    // alice hears the transfer is done in the first call; her dialog in the second is
    // hung up by the box a moment later.
    let (lines, msgs) = sent(&wire1);
    assert_eq!(lines, ["202/REFER 127.0.0.1:5062", "NOTIFY 127.0.0.1:5062"]);
    assert_eq!(sipfrag(&msgs[1]).0, "SIP/2.0 200 OK");
    assert!(sent(&wire2).0.is_empty());
    after(&mut second, Duration::from_millis(300)).await;
    let (lines, msgs) = sent(&wire2);
    assert_eq!(lines, ["BYE 127.0.0.1:5062"]);
    assert_eq!(msgs[0].call_id(), "leg-a2");
    // Each relay's far side is the other's fresh port on the box.
    assert_eq!(
        first.media.peers.borrow().b,
        Some(SocketAddr::new(addr(BOX).ip(), second.media.port_b))
    );
    assert_eq!(
        second.media.peers.borrow().b,
        Some(SocketAddr::new(addr(BOX).ip(), first.media.port_b))
    );
    // Bob and carol are now each call's leg A.
    assert_eq!(first.a.peer.addr, addr(PHONE_1));
    assert_eq!(second.a.peer.addr, addr(PHONE_2));
    // Bob hangs up: carol is hung up by her call.
    first.handle(from_callee("BYE", 2, &invite1, "bob", b""));
    assert!(
        sent(&wire1)
            .0
            .contains(&"200/BYE 127.0.0.1:5070".to_string())
    );
    assert!(matches!(first.state, State::Ending));
    let link = links2.try_recv().unwrap();
    assert!(matches!(link, Link::HungUp));
    second.link(link);
    let (lines, msgs) = sent(&wire2);
    assert_eq!(lines, ["BYE 127.0.0.1:5072"]);
    assert_eq!(msgs[0].call_id(), "leg-b2");
    assert!(matches!(second.state, State::Ending));
}

#[tokio::test(start_paused = true)]
async fn an_attended_transfer_naming_someone_elses_or_no_dialog_is_refused() {
    for (owner, from_tag, code) in [("mallory", "alice", "403"), ("alice", "nobody", "481")] {
        let (mut first, wire1, _invite1, ok1, inbox1) = transferable().await;
        let (mut second, wire2, mut links2, link2, _invite2, ok2) = second_call("carol").await;
        second.setup.parties.caller_login = owner.into();
        inbox1.1.lock().unwrap().push(("leg-a2".into(), link2));
        first.handle(refer_replacing(&ok1, &ok2, from_tag));
        tokio::join!(first.bridge(), async {
            let link = links2.recv().await.unwrap();
            second.link(link);
        });
        assert_eq!(sent(&wire1).0, [format!("{code}/REFER 127.0.0.1:5062")]);
        assert!(sent(&wire2).0.is_empty());
        assert!(matches!(first.state, State::Talking) && matches!(second.state, State::Talking));
        assert!(first.transferor.is_none() && first.partner.is_none());
    }
    // A Replaces naming the call itself, and one no call has.
    let (mut first, wire1, _invite1, ok1, _inbox1) = transferable().await;
    let to = ok1.header("to").unwrap().to_string();
    for (replaces, code) in [
        ("leg-b%3Bto-tag%3Dx%3Bfrom-tag%3Dy", "403"),
        ("gone%3Bto-tag%3Dx%3Bfrom-tag%3Dy", "481"),
    ] {
        first.handle(referring(
            from_caller("REFER", 2, "z9hG4bKr", &to, b""),
            &format!("<sip:103@office.test?Replaces={replaces}>"),
        ));
        assert_eq!(sent(&wire1).0, [format!("{code}/REFER 127.0.0.1:5062")]);
    }
}

/// An offer like [`sdp`]'s, with a direction attribute.
fn sdp_dir(port: u16, direction: &str) -> Vec<u8> {
    let mut body = sdp(port);
    body.extend_from_slice(format!("a={direction}\r\n").as_bytes());
    body
}

#[tokio::test(start_paused = true)]
async fn a_hold_is_answered_by_the_box_which_plays_music_to_the_other_side_until_resumed() {
    let (mut call, wire, _status, _invite, ok) = answered().await;
    call.setup.music = Some(Arc::new(crate::music::Source {
        data_dir: std::env::temp_dir().join("obx-no-music-here"),
        file: None,
    }));
    let to = ok.header("to").unwrap().to_string();
    // alice holds: the box answers recvonly from her port, bob's phone hears of nothing.
    call.handle(from_caller(
        "INVITE",
        2,
        "z9hG4bKhold",
        &to,
        &sdp_dir(4000, "sendonly"),
    ));
    let (lines, msgs) = sent(&wire);
    assert_eq!(lines, ["200/INVITE 127.0.0.1:5062"]);
    assert_eq!(audio_port(&msgs[0]), call.media.port_a);
    assert!(String::from_utf8_lossy(&msgs[0].body).contains("a=recvonly"));
    assert!(matches!(
        call.state,
        State::Hold(hold::HoldStep::Start(crate::rtp::Side::A))
    ));
    call.hold_step().await;
    assert!(call.music.is_some() && call.media.relay.is_none());
    assert!(matches!(call.state, State::Talking));
    // A refresh from bob's phone meanwhile is answered by the box, music going on.
    let from_bob = |cseq, branch: &str, body: &[u8]| {
        let mut m = from_callee("INVITE", cseq, &_invite, "bob", body);
        m.msg
            .headers
            .iter_mut()
            .find(|(n, _)| n == "via")
            .unwrap()
            .1 = format!("{PHONE_1};branch={branch};rport");
        m
    };
    call.handle(from_bob(2, "z9hG4bKrefresh", &sdp(6000)));
    let (lines, msgs) = sent(&wire);
    assert_eq!(lines, ["200/INVITE 127.0.0.1:5070"]);
    assert!(String::from_utf8_lossy(&msgs[0].body).contains("a=sendrecv"));
    assert!(call.music.is_some());
    // alice resumes: answered sendrecv, the music stops and the relay starts again.
    call.handle(from_caller(
        "INVITE",
        3,
        "z9hG4bKresume",
        &to,
        &sdp_dir(4000, "sendrecv"),
    ));
    let (lines, msgs) = sent(&wire);
    assert_eq!(lines, ["200/INVITE 127.0.0.1:5062"]);
    assert!(String::from_utf8_lossy(&msgs[0].body).contains("a=sendrecv"));
    call.hold_step().await;
    assert!(call.music.is_none() && call.media.relay.is_some());
    assert_eq!(call.media.peers.borrow().a, Some(addr("127.0.0.1:4000")));
    // Held again, and transferred while the music plays: the ports go to the transfer.
    call.handle(from_caller(
        "INVITE",
        4,
        "z9hG4bKhold2",
        &to,
        &sdp_dir(4000, "inactive"),
    ));
    assert!(String::from_utf8_lossy(&sent(&wire).1[0].body).contains("a=inactive"));
    call.hold_step().await;
    call.setup.router = Some(Arc::new(FakeRouter));
    call.setup.inbox = Some(Arc::new(FakeInbox::default()) as Arc<dyn Inbox>);
    call.handle(referring(
        from_caller("REFER", 5, "z9hG4bKrefer", &to, b""),
        "<sip:103@office.test>",
    ));
    sent(&wire);
    call.transfer().await;
    assert!(call.music.is_none() && call.held.is_some());
    assert_eq!(sent(&wire).0, ["INVITE 127.0.0.1:5072"]);
}

#[tokio::test(start_paused = true)]
async fn without_music_a_hold_is_carried_to_the_other_phone() {
    let (mut call, wire, _status, _invite, ok) = answered().await;
    let to = ok.header("to").unwrap().to_string();
    call.handle(from_caller(
        "INVITE",
        2,
        "z9hG4bKhold",
        &to,
        &sdp_dir(4000, "sendonly"),
    ));
    assert_eq!(
        sent(&wire).0,
        ["100/INVITE 127.0.0.1:5062", "INVITE 127.0.0.1:5070"]
    );
    assert!(call.a_held_b);
}

#[tokio::test(start_paused = true)]
async fn a_busy_or_unanswered_callee_forwards_the_call_instead_of_voicemail() {
    // Busy: phone 1 says 486, phone 2 (103) rings at once; its answer is the caller's.
    let (mut call, wire, _status, _tx) = new_call(&[PHONE_1], false);
    call.setup.router = Some(Arc::new(FakeRouter));
    call.setup.forwards = Some(Forwards {
        by: "bob".into(),
        busy: Some("103".into()),
        no_answer: None,
    });
    let invite = started(&mut call, &wire).remove(0);
    call.handle(answer(&invite, 486, "bob", PHONE_1, b""));
    let (lines, msgs) = sent(&wire);
    assert_eq!(lines, ["ACK 127.0.0.1:5070", "INVITE 127.0.0.1:5072"]);
    assert_eq!(msgs[1].call_id(), "leg-b");
    assert!(msgs[1].header("to").unwrap().contains("sip:103@"));
    call.handle(answer(&msgs[1], 200, "carol", PHONE_2, &sdp(7000)));
    assert_eq!(
        sent(&wire).0,
        ["ACK 127.0.0.1:5072", "200/INVITE 127.0.0.1:5062"]
    );
    assert_eq!(call.setup.parties.callee_ext, "103");

    // No answer: after the ring time phone 1 is cancelled and phone 2 rings; a second
    // no answer there is the end (no forwarding set for 103).
    let (mut call, wire, _status, _tx) = new_call(&[PHONE_1], false);
    call.setup.router = Some(Arc::new(FakeRouter));
    call.setup.forwards = Some(Forwards {
        by: "bob".into(),
        busy: None,
        no_answer: Some("103".into()),
    });
    let invite = started(&mut call, &wire).remove(0);
    call.handle(answer(&invite, 180, "bob", PHONE_1, b""));
    sent(&wire);
    after(&mut call, NO_ANSWER).await;
    let (lines, _) = sent(&wire);
    assert_eq!(lines, ["CANCEL 127.0.0.1:5070", "INVITE 127.0.0.1:5072"]);
    assert!(matches!(call.state, State::Ringing { rang: true }));
    // Busy is not forwarded when only no answer is.
    let (mut call, wire, _status, _tx) = new_call(&[PHONE_1], false);
    call.setup.router = Some(Arc::new(FakeRouter));
    call.setup.forwards = Some(Forwards {
        by: "bob".into(),
        busy: None,
        no_answer: Some("103".into()),
    });
    let invite = started(&mut call, &wire).remove(0);
    call.handle(answer(&invite, 486, "bob", PHONE_1, b""));
    assert_eq!(
        sent(&wire).0,
        ["ACK 127.0.0.1:5070", "486/INVITE 127.0.0.1:5062"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_parked_call_nobody_takes_rings_its_parker_again() {
    let (mut call, wire, invite, ok, _inbox) = transferable().await;
    let to = ok.header("to").unwrap().to_string();
    call.handle(from_caller("ACK", 1, "z9hG4bKack", &to, b""));
    call.handle(referring(
        from_callee("REFER", 2, &invite, "bob", b""),
        "<sip:700@office.test>",
    ));
    assert_eq!(
        sent(&wire).0,
        ["202/REFER 127.0.0.1:5070", "NOTIFY 127.0.0.1:5070"]
    );
    call.transfer().await;
    // Parked on 701 (bob heard where), with music; bob hears it is done.
    assert!(call.parked.is_some());
    assert_eq!(call.setup.parties.callee_ext, "701");
    let (lines, msgs) = sent(&wire);
    assert_eq!(lines, ["NOTIFY 127.0.0.1:5070"]);
    assert_eq!(sipfrag(&msgs[0]).0, "SIP/2.0 200 OK");
    // Two minutes later: bob's phone rings again, and the place is free.
    after(&mut call, park::PARK_FOR).await;
    assert!(matches!(call.state, State::Unparking), "{:?}", call.state);
    call.unpark().await;
    assert!(call.parked.is_none() && call.held.is_some());
    let (lines, _) = sent(&wire);
    assert!(
        lines.contains(&"INVITE 127.0.0.1:5070".to_string()),
        "{lines:?}"
    );
}

/// `call`'s inbox finds one other call: the second (`leg-a2`), by `link`.
fn knows_second_call(call: &mut Call, link: mpsc::Sender<Link>) {
    let (own, _links) = mpsc::channel(8);
    let inbox = FakeInbox(
        Mutex::default(),
        Mutex::new(vec![("leg-a2".into(), link)]),
        own,
    );
    call.setup.inbox = Some(Arc::new(inbox) as Arc<dyn Inbox>);
}

/// The caller keys `keys` in (SIP INFO, one a request), in its dialog `to`.
fn keys_from_caller(call: &mut Call, to: &str, keys: &str) {
    for (i, key) in keys.chars().enumerate() {
        let cseq = 2 + u32::try_from(i).unwrap();
        let mut info = from_caller("INFO", cseq, &format!("z9hG4bKkey{cseq}"), to, b"");
        info.msg.push("Content-Type", "application/dtmf-relay");
        info.msg.body = format!("Signal={key}\r\nDuration=160\r\n").into_bytes();
        call.handle(info);
    }
}

#[tokio::test(start_paused = true)]
async fn the_three_way_code_puts_the_users_two_calls_in_one_room_that_outlives_the_user() {
    let (mut first, wire1, _invite1, ok1, _inbox1) = transferable().await;
    let (mut second, wire2, mut links2, link2, invite2, _ok2) = second_call("carol").await;
    knows_second_call(&mut first, link2);
    let rooms = Arc::new(crate::conference::Rooms::default());
    first.setup.rooms = Some(Arc::clone(&rooms));

    // alice keys *3 (by SIP INFO) in her call to bob.
    let to = ok1.header("to").unwrap().to_string();
    keys_from_caller(&mut first, &to, "*3");
    assert!(matches!(first.state, State::Mixing(_)));
    sent(&wire1);
    tokio::join!(first.three_way_step(), async {
        // Asked first for a call where alice holds the other party (she holds nobody:
        // no), then for any call of hers (yes).
        for _ in 0..2 {
            let link = links2.recv().await.unwrap();
            second.link(link);
        }
        second.three_way_step().await;
    });
    assert!(matches!(first.state, State::Mixed));
    assert!(matches!(second.state, State::Mixed));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(rooms.members("three-way:leg-a"), 3);
    // alice's dialog in the second call is hung up by the box; carol is its leg A now.
    after(&mut second, Duration::from_millis(300)).await;
    let (lines, msgs) = sent(&wire2);
    assert_eq!(lines, ["BYE 127.0.0.1:5062"]);
    assert_eq!(msgs[0].call_id(), "leg-a2");
    assert_eq!(second.a.peer.addr, addr(PHONE_2));
    assert!(sent(&wire1).0.is_empty());

    // alice hangs up: she leaves, bob and carol stay.
    first.handle(from_caller("BYE", 4, "z9hG4bKbye", &to, b""));
    assert_eq!(sent(&wire1).0, ["200/BYE 127.0.0.1:5062"]);
    let left = first.mixed.as_mut().unwrap().next_left().await.unwrap();
    assert_eq!(left, crate::rtp::Side::A);
    first.mixed_left(left);
    assert!(matches!(first.state, State::Mixed));
    assert!(sent(&wire1).0.is_empty());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(rooms.members("three-way:leg-a"), 2);

    // carol hangs up: her call ends; bob, the last one left, is hung up by the box.
    let mut bye = from_callee("BYE", 2, &invite2, "carol", b"");
    bye.source = addr(PHONE_2);
    second.handle(bye);
    assert_eq!(sent(&wire2).0, ["200/BYE 127.0.0.1:5072"]);
    let left = second.mixed.as_mut().unwrap().next_left().await.unwrap();
    second.mixed_left(left);
    assert!(matches!(second.state, State::Ending));
    let left = first.mixed.as_mut().unwrap().next_left().await.unwrap();
    assert_eq!(left, crate::rtp::Side::B);
    first.mixed_left(left);
    assert_eq!(sent(&wire1).0, ["BYE 127.0.0.1:5070"]);
    assert!(matches!(first.state, State::Ending));
}

#[tokio::test(start_paused = true)]
async fn the_three_way_code_never_joins_another_users_call_and_alone_changes_nothing() {
    let (mut first, wire1, _invite1, ok1, _inbox1) = transferable().await;
    let (mut second, wire2, mut links2, link2, _invite2, _ok2) = second_call("carol").await;
    // The second call is mallory's with carol: none of alice's.
    second.setup.parties.caller_login = "mallory".into();
    knows_second_call(&mut first, link2);
    first.setup.rooms = Some(Arc::default());
    let to = ok1.header("to").unwrap().to_string();
    keys_from_caller(&mut first, &to, "*3");
    sent(&wire1);
    sent(&wire2);
    tokio::join!(first.three_way_step(), async {
        for _ in 0..2 {
            let link = links2.recv().await.unwrap();
            second.link(link);
        }
    });
    // Both calls go on as they were: nothing sent, the relays untouched.
    assert!(matches!(first.state, State::Talking));
    assert!(matches!(second.state, State::Talking));
    assert!(first.media.relay.is_some() && second.media.relay.is_some());
    assert!(sent(&wire1).0.is_empty() && sent(&wire2).0.is_empty());
}
