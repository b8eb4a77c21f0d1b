//! Calls between extensions: a back-to-back user agent (B2BUA). The caller's INVITE ends
//! here (leg A); officebox places its own INVITE to each phone of the callee (leg B, one
//! fork per registered phone), and joins the legs when one answers: the other forks are
//! cancelled, and audio flows through the media relay ([`crate::rtp`]) because both
//! sides' SDP is rewritten to point at the box. CANCEL, BYE from either side, re-INVITE
//! (hold and resume) in either direction, busy (486), no answer within
//! `no_answer_timeout` (480), unreachable phones (408).
//!
//! One task per call owns all of its state; the server hands it every message with its
//! Call-ID (leg A's or leg B's). Over UDP the task does the transaction layer's work
//! (RFC 3261 section 17): INVITEs and BYEs are retransmitted until answered, final
//! responses to the caller's INVITE until ACKed, each with timer doubling from 500 ms
//! to 4 s and a 32 s limit.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::media::{self, Endpoint, Socket};
use crate::registrar::Binding;
use crate::rtp::{self, Peers, Ports};
use crate::sdp;
use crate::sip::{Message, StartLine, param, uri_of};
use crate::{menu, voicemail};

/// Retransmission timers (RFC 3261 section 17.1.1.1).
const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);
const TIMEOUT: Duration = Duration::from_secs(32);
/// Phones of the callee rung at once.
const MAX_FORKS: usize = 5;

/// A message for a call, with where it came from.
#[derive(Debug)]
pub struct Incoming {
    pub msg: Message,
    pub source: SocketAddr,
    pub transport: &'static str,
}

/// How a call sends SIP: the server's sockets.
pub trait Wire: Send + Sync {
    fn send(&self, bytes: Vec<u8>, to: SocketAddr, transport: &'static str);
    /// Our SIP address, for Via, Contact and SDP.
    fn local(&self) -> SocketAddr;
}

/// What a call reports to the server's list of live calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub caller: String,
    pub callee: String,
    pub state: &'static str,
    pub started_at: u64,
    pub answered_at: Option<u64>,
}

/// Who is calling whom.
#[derive(Debug, Clone)]
pub struct Parties {
    pub caller_login: String,
    pub caller_ext: String,
    pub caller_name: String,
    pub callee_login: String,
    pub callee_ext: String,
    pub domain: String,
}

/// Everything a call needs from the server.
pub struct Setup {
    pub wire: Arc<dyn Wire>,
    pub ports: Arc<Ports>,
    pub parties: Parties,
    pub bindings: Vec<Binding>,
    pub no_answer: Duration,
    /// The Call-ID of leg B, already routed to this call's inbox.
    pub b_call_id: String,
    pub status: watch::Sender<Status>,
    /// Where unanswered calls leave their message.
    pub voicemail: Option<VoicemailSetup>,
    /// A call to the voicemail extension: the box answers with the menu.
    pub menu: Option<menu::MenuSetup>,
    /// Counts this call among those still ringing until it is answered or ends.
    pub ringing: Ringing,
}

/// One call among those still ringing (or setting up): the server refuses new calls
/// while too many are (overload), so they are counted from the INVITE until the call
/// is answered, goes to voicemail, or ends.
#[derive(Debug)]
pub struct Ringing {
    count: Arc<std::sync::atomic::AtomicUsize>,
    done: std::sync::atomic::AtomicBool,
}

impl Ringing {
    /// Counts one more ringing call in `count`.
    pub fn start(count: &Arc<std::sync::atomic::AtomicUsize>) -> Ringing {
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ringing {
            count: Arc::clone(count),
            done: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The call no longer rings (once; dropping does it too).
    pub fn stop(&self) {
        if !self.done.swap(true, std::sync::atomic::Ordering::Relaxed) {
            self.count
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl Drop for Ringing {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What the box's own side of a call came to.
#[derive(Debug)]
enum MediaJob {
    Deposit(voicemail::Deposit),
    /// The menu ended; whether the caller was still there.
    Menu(bool),
}

/// What voicemail needs to know about the callee.
#[derive(Debug, Clone)]
pub struct VoicemailSetup {
    pub data_dir: std::path::PathBuf,
    pub envelope: voicemail::Envelope,
    pub max: Duration,
}

/// A voicemail being left.
#[derive(Debug)]
struct Recording {
    hangup: CancellationToken,
    digits: mpsc::UnboundedSender<char>,
    task: tokio::task::JoinHandle<MediaJob>,
    /// The caller's BYE, answered once the message is on disk.
    bye: Option<Incoming>,
}

impl std::fmt::Debug for Setup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Setup")
            .field("parties", &self.parties)
            .field("b_call_id", &self.b_call_id)
            .finish()
    }
}

use crate::now_unix;

pub fn token() -> String {
    format!("{:016x}", rand::random::<u64>())
}

fn branch() -> String {
    format!("z9hG4bK{}", token())
}

/// A message sent again until answered (UDP only).
#[derive(Debug)]
struct Retransmit {
    /// What answers it: a branch (requests) or "a-final" (our final response to leg A).
    key: String,
    bytes: Vec<u8>,
    to: SocketAddr,
    next: Instant,
    interval: Duration,
    until: Instant,
}

impl Retransmit {
    /// `bytes` to `to`, first again after T1, doubling, for up to the transaction timeout.
    fn new(key: String, bytes: &[u8], to: SocketAddr) -> Retransmit {
        let now = Instant::now();
        Retransmit {
            key,
            bytes: bytes.to_vec(),
            to,
            next: now + T1,
            interval: T1,
            until: now + TIMEOUT,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ForkState {
    Calling,
    Ringing,
    Answered,
    Failed(u16),
    Cancelled,
}

#[derive(Debug)]
struct Fork {
    branch: String,
    /// Request-URI: the phone's Contact.
    uri: String,
    /// Where it is reached (its REGISTER's source).
    dest: SocketAddr,
    transport: &'static str,
    state: ForkState,
    to_tag: Option<String>,
    /// The Contact of its 2xx: where in-dialog requests go.
    remote_uri: Option<String>,
}

/// Where the call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Ringing,
    Answered,
    /// The box answered: voicemail is playing or recording.
    Voicemail,
    /// Final response sent or BYEs out: waiting for ACK or BYE answers, then done.
    Ending,
}

/// A re-INVITE carried across: which side sent it, and its request.
#[derive(Debug)]
struct ReInvite {
    from_a: bool,
    request: Message,
    /// The branch of our INVITE to the other side.
    our_branch: String,
}

struct Call {
    setup: Setup,
    inbox: mpsc::Receiver<Incoming>,
    a_invite: Message,
    a_source: SocketAddr,
    a_transport: &'static str,
    a_tag: String,
    a_branch: String,
    /// Our CSeq in leg A (for requests we send the caller).
    a_cseq: u32,
    /// The last response to leg A's INVITE (sent again for a retransmitted INVITE).
    a_last: Option<Vec<u8>>,
    /// Whether the caller has heard ringing.
    rang: bool,
    b_from_tag: String,
    b_cseq: u32,
    forks: Vec<Fork>,
    winner: Option<usize>,
    retransmits: Vec<Retransmit>,
    phase: Phase,
    ring_until: Instant,
    peers: watch::Sender<Peers>,
    ports: (u16, u16),
    ip: IpAddr,
    reinvite: Option<ReInvite>,
    done: bool,
    relay: Option<tokio::task::JoinHandle<rtp::Stopped>>,
    relay_stop: CancellationToken,
    /// Set when the call should go to voicemail (done in the async part of the loop).
    to_voicemail: bool,
    recording: Option<Recording>,
}

/// Runs one call from the caller's (authenticated) INVITE to its end.
pub async fn run(setup: Setup, invite: Incoming, inbox: mpsc::Receiver<Incoming>) {
    let ip = setup.wire.local().ip();
    let a_branch = invite
        .msg
        .top_via()
        .and_then(|v| param(v, "branch"))
        .unwrap_or("")
        .to_string();
    let (lease_a, lease_b) = match (setup.ports.take(ip), setup.ports.take(ip)) {
        (Ok(a), Ok(b)) => (a, b),
        _ => {
            let r = invite
                .msg
                .response(503, "Service Unavailable (no RTP ports)", &token());
            setup
                .wire
                .send(r.to_bytes(), invite.source, invite.transport);
            return;
        }
    };
    let a_media = sdp::audio(&invite.msg.body).map(|m| m.addr);
    let (peers, peers_rx) = watch::channel(Peers {
        a: a_media,
        b: None,
    });
    let relay_stop = CancellationToken::new();
    let ports = (lease_a.port, lease_b.port);
    let relay = tokio::spawn(rtp::relay(lease_a, lease_b, peers_rx, relay_stop.clone()));
    let mut call = Call {
        ring_until: Instant::now() + setup.no_answer,
        setup,
        inbox,
        a_source: invite.source,
        a_transport: invite.transport,
        a_invite: invite.msg,
        a_tag: token(),
        a_branch,
        a_cseq: 1,
        a_last: None,
        rang: false,
        b_from_tag: token(),
        b_cseq: 1,
        forks: Vec::new(),
        winner: None,
        retransmits: Vec::new(),
        phase: Phase::Ringing,
        peers,
        ports,
        ip,
        reinvite: None,
        done: false,
        relay: Some(relay),
        relay_stop: relay_stop.clone(),
        to_voicemail: false,
        recording: None,
    };
    call.start();
    while !call.done {
        if std::mem::take(&mut call.to_voicemail) {
            call.enter_voicemail().await;
            continue;
        }
        let next = call.next_timer();
        let recording = async {
            match call.recording.as_mut() {
                Some(r) => Some((&mut r.task).await),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            m = call.inbox.recv() => match m {
                Some(m) => call.handle(m),
                None => break,
            },
            () = tokio::time::sleep_until(next.into()) => call.timers(),
            Some(done) = recording => call.recorded(done).await,
        }
        call.check_done();
    }
    relay_stop.cancel();
    if let Some(relay) = call.relay.take()
        && let Ok(stopped) = relay.await
    {
        debug!(
            message = "phone: call media",
            a_to_b = stopped.a_to_b,
            b_to_a = stopped.b_to_a
        );
    }
    if let Some(r) = call.recording.take() {
        r.hangup.cancel();
        let _ = r.task.await;
    }
    info!(
        message = "phone: call ended",
        caller = %call.setup.parties.caller_ext,
        callee = %call.setup.parties.callee_ext
    );
}

impl Call {
    fn status(&self, state: &'static str) {
        if state != "ringing" {
            self.setup.ringing.stop();
        }
        self.setup.status.send_modify(|s| {
            s.state = state;
            if state == "talking" && s.answered_at.is_none() {
                s.answered_at = Some(now_unix());
            }
        });
    }

    fn local(&self) -> SocketAddr {
        self.setup.wire.local()
    }

    fn send_a(&mut self, bytes: Vec<u8>) {
        self.setup.wire.send(bytes, self.a_source, self.a_transport);
    }

    /// Answers leg A's INVITE; final answers are retransmitted until the ACK.
    fn respond_a(&mut self, mut r: Message) {
        let code = match r.start {
            StartLine::Response { code, .. } => code,
            StartLine::Request { .. } => return,
        };
        if code > 100 {
            r.push(
                "Contact",
                format!("<sip:{}@{}>", self.setup.parties.callee_ext, self.local()),
            );
        }
        r.push("Server", "officebox");
        let bytes = r.to_bytes();
        self.a_last = Some(bytes.clone());
        if code >= 200 && self.a_transport == "udp" {
            self.retransmits.retain(|r| r.key != "a-final");
            self.retransmits
                .push(Retransmit::new("a-final".into(), &bytes, self.a_source));
        }
        self.send_a(bytes);
    }

    fn start(&mut self) {
        let trying = self.a_invite.response(100, "Trying", "").to_bytes();
        // Sent again if the caller retransmits its INVITE before anything else happens.
        self.a_last = Some(trying.clone());
        self.send_a(trying);
        let bindings: Vec<Binding> = self
            .setup
            .bindings
            .iter()
            .take(MAX_FORKS)
            .cloned()
            .collect();
        let offer = sdp::rewrite(&self.a_invite.body, self.ip, self.ports.1);
        for b in bindings {
            let fork = Fork {
                branch: branch(),
                uri: b.contact.clone(),
                dest: reach(&b),
                transport: b.transport,
                state: ForkState::Calling,
                to_tag: None,
                remote_uri: None,
            };
            let req = self.b_request("INVITE", &fork.uri, 1, &fork.branch, None, Some(&offer));
            self.send_b(&fork, req.to_bytes());
            self.forks.push(fork);
        }
        self.status("ringing");
        if self.forks.is_empty() {
            self.voicemail_or_fail(480, "Temporarily Unavailable");
        }
        info!(
            message = "phone: calling",
            caller = %self.setup.parties.caller_ext,
            callee = %self.setup.parties.callee_ext,
            phones = self.forks.len()
        );
    }

    fn send_b(&mut self, fork_dest: &Fork, bytes: Vec<u8>) {
        if fork_dest.transport == "udp" {
            self.retransmits.push(Retransmit::new(
                branch_of_bytes(&bytes).unwrap_or_default(),
                &bytes,
                fork_dest.dest,
            ));
        }
        self.setup
            .wire
            .send(bytes, fork_dest.dest, fork_dest.transport);
    }

    /// A request in leg B's dialog (or its initial INVITE).
    fn b_request(
        &self,
        method: &str,
        uri: &str,
        cseq: u32,
        branch: &str,
        to_tag: Option<&str>,
        body: Option<&[u8]>,
    ) -> Message {
        let p = &self.setup.parties;
        let mut m = Message {
            start: StartLine::Request {
                method: method.to_string(),
                uri: uri.to_string(),
            },
            headers: Vec::new(),
            body: Vec::new(),
        };
        m.push(
            "Via",
            format!("SIP/2.0/UDP {};branch={branch};rport", self.local()),
        );
        m.push("Max-Forwards", "70");
        m.push(
            "From",
            format!(
                "\"{}\" <sip:{}@{}>;tag={}",
                p.caller_name.replace('"', ""),
                p.caller_ext,
                p.domain,
                self.b_from_tag
            ),
        );
        let to = format!("<sip:{}@{}>", p.callee_ext, p.domain);
        m.push(
            "To",
            match to_tag {
                Some(t) => format!("{to};tag={t}"),
                None => to,
            },
        );
        m.push("Call-ID", self.setup.b_call_id.clone());
        m.push("CSeq", format!("{cseq} {method}"));
        if method == "INVITE" {
            m.push(
                "Contact",
                format!("<sip:{}@{}>", p.caller_ext, self.local()),
            );
            m.push("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE");
        }
        m.push("User-Agent", "officebox");
        if let Some(b) = body {
            m.push("Content-Type", "application/sdp");
            m.body = b.to_vec();
        }
        m
    }

    /// A request in leg A's dialog (we are its UAS).
    fn a_request(&mut self, method: &str, body: Option<&[u8]>) -> Message {
        let uri = self
            .a_invite
            .header("contact")
            .and_then(uri_of)
            .or_else(|| self.a_invite.header("from").and_then(uri_of))
            .unwrap_or("sip:invalid")
            .to_string();
        let mut m = Message {
            start: StartLine::Request {
                method: method.to_string(),
                uri,
            },
            headers: Vec::new(),
            body: Vec::new(),
        };
        self.a_cseq += 1;
        m.push(
            "Via",
            format!("SIP/2.0/UDP {};branch={};rport", self.local(), branch()),
        );
        m.push("Max-Forwards", "70");
        let to_value = self.a_invite.header("to").unwrap_or("").to_string();
        let from = if param(&to_value, "tag").is_some() {
            to_value
        } else {
            format!("{to_value};tag={}", self.a_tag)
        };
        m.push("From", from);
        m.push("To", self.a_invite.header("from").unwrap_or("").to_string());
        m.push("Call-ID", self.a_invite.call_id().to_string());
        m.push("CSeq", format!("{} {method}", self.a_cseq));
        if method == "INVITE" {
            m.push(
                "Contact",
                format!("<sip:{}@{}>", self.setup.parties.callee_ext, self.local()),
            );
        }
        if let Some(b) = body {
            m.push("Content-Type", "application/sdp");
            m.body = b.to_vec();
        }
        m
    }

    fn handle(&mut self, m: Incoming) {
        let from_a = m.msg.call_id() == self.a_invite.call_id();
        match (&m.msg.start, from_a) {
            (StartLine::Request { .. }, true) => self.request_from_a(m),
            (StartLine::Request { .. }, false) => self.request_from_b(m),
            (StartLine::Response { code, .. }, true) => self.response_from_a(*code, &m.msg),
            (StartLine::Response { code, .. }, false) => self.response_from_b(*code, m),
        }
    }

    fn request_from_a(&mut self, m: Incoming) {
        let method = m.msg.method().unwrap_or("").to_string();
        let branch = m
            .msg
            .top_via()
            .and_then(|v| param(v, "branch"))
            .unwrap_or("")
            .to_string();
        match method.as_str() {
            "INVITE" if branch == self.a_branch => {
                // The caller did not hear us: the last answer again.
                if let Some(b) = self.a_last.clone() {
                    self.send_a(b);
                }
            }
            "ACK" => {
                self.retransmits.retain(|r| r.key != "a-final");
            }
            "CANCEL" => {
                let ok = m.msg.response(200, "OK", &self.a_tag);
                self.setup.wire.send(ok.to_bytes(), m.source, m.transport);
                if self.phase == Phase::Ringing && branch == self.a_branch {
                    self.cancel_forks(None);
                    self.fail_a(487, "Request Terminated");
                }
            }
            "BYE" if self.recording.is_some() => {
                // Answered once the message is on disk.
                self.retransmits.retain(|r| r.key != "a-final");
                if let Some(rec) = self.recording.as_mut() {
                    rec.hangup.cancel();
                    rec.bye = Some(m);
                }
            }
            "INFO" if self.recording.is_some() => {
                if let Some(d) = info_digit(&m.msg)
                    && let Some(rec) = &self.recording
                {
                    let _ = rec.digits.send(d);
                }
                let ok = m.msg.response(200, "OK", &self.a_tag);
                self.setup.wire.send(ok.to_bytes(), m.source, m.transport);
            }
            "INFO" if self.phase == Phase::Answered => {
                // DTMF by SIP INFO goes on to the other phone (RFC 4733 events go with
                // the audio through the relay by themselves).
                let ok = m.msg.response(200, "OK", &self.a_tag);
                self.setup.wire.send(ok.to_bytes(), m.source, m.transport);
                self.forward_info_to_b(&m.msg);
            }
            "BYE" => {
                let ok = m.msg.response(200, "OK", &self.a_tag);
                self.setup.wire.send(ok.to_bytes(), m.source, m.transport);
                self.retransmits.retain(|r| r.key != "a-final");
                self.bye_b();
                self.phase = Phase::Ending;
                self.status("ending");
            }
            "INVITE" if self.is_pending_reinvite(&branch) => {}
            "INVITE" => self.forward_reinvite(m.msg, true),
            _ => {
                // INFO, UPDATE, OPTIONS, PRACK, NOTIFY in the dialog: acknowledged here.
                let ok = m.msg.response(200, "OK", &self.a_tag);
                self.setup.wire.send(ok.to_bytes(), m.source, m.transport);
            }
        }
    }

    fn request_from_b(&mut self, m: Incoming) {
        let method = m.msg.method().unwrap_or("").to_string();
        let tag = self
            .winner
            .and_then(|w| self.forks[w].to_tag.clone())
            .unwrap_or_default();
        match method.as_str() {
            "ACK" => {}
            "BYE" => {
                let ok = m.msg.response(200, "OK", &tag);
                self.setup.wire.send(ok.to_bytes(), m.source, m.transport);
                if self.phase == Phase::Answered {
                    let bye = self.a_request("BYE", None);
                    let bytes = bye.to_bytes();
                    self.send_to_a_reliably(bytes);
                    self.phase = Phase::Ending;
                    self.status("ending");
                }
            }
            "INVITE"
                if self.is_pending_reinvite(
                    m.msg
                        .top_via()
                        .and_then(|v| param(v, "branch"))
                        .unwrap_or(""),
                ) => {}
            "INVITE" if self.phase == Phase::Answered => self.forward_reinvite(m.msg, false),
            "INFO" if self.phase == Phase::Answered => {
                let ok = m.msg.response(200, "OK", &tag);
                self.setup.wire.send(ok.to_bytes(), m.source, m.transport);
                let mut info = self.a_request("INFO", None);
                copy_body(&m.msg, &mut info);
                self.send_to_a_reliably(info.to_bytes());
            }
            _ => {
                let ok = m.msg.response(200, "OK", &tag);
                self.setup.wire.send(ok.to_bytes(), m.source, m.transport);
            }
        }
    }

    /// An INFO from the caller, carried to the answering phone.
    fn forward_info_to_b(&mut self, from_a: &Message) {
        let Some(w) = self.winner else { return };
        self.b_cseq += 1;
        let f = &self.forks[w];
        let uri = f.remote_uri.clone().unwrap_or_else(|| f.uri.clone());
        let mut info = self.b_request(
            "INFO",
            &uri,
            self.b_cseq,
            &branch(),
            f.to_tag.as_deref(),
            None,
        );
        copy_body(from_a, &mut info);
        let fork = Fork {
            branch: String::new(),
            uri,
            dest: f.dest,
            transport: f.transport,
            state: ForkState::Answered,
            to_tag: None,
            remote_uri: None,
        };
        self.send_b(&fork, info.to_bytes());
    }

    /// A retransmission of the re-INVITE being carried across (answered when the other
    /// side answers).
    fn is_pending_reinvite(&self, branch: &str) -> bool {
        self.reinvite
            .as_ref()
            .is_some_and(|re| re.request.top_via().and_then(|v| param(v, "branch")) == Some(branch))
    }

    fn send_to_a_reliably(&mut self, bytes: Vec<u8>) {
        if self.a_transport == "udp" {
            self.retransmits.push(Retransmit::new(
                branch_of_bytes(&bytes).unwrap_or_default(),
                &bytes,
                self.a_source,
            ));
        }
        self.send_a(bytes);
    }

    /// A re-INVITE from one side (hold, resume, a new codec): the same offer, pointed at
    /// the box, to the other side; its answer comes back the same way.
    fn forward_reinvite(&mut self, req: Message, from_a: bool) {
        let Some(w) = self.winner else {
            let r = req.response(491, "Request Pending", &self.a_tag);
            self.send_a(r.to_bytes());
            return;
        };
        if self.reinvite.is_some() {
            let r = req.response(491, "Request Pending", &self.a_tag);
            let (to, t) = if from_a {
                (self.a_source, self.a_transport)
            } else {
                (self.forks[w].dest, self.forks[w].transport)
            };
            self.setup.wire.send(r.to_bytes(), to, t);
            return;
        }
        let media = sdp::audio(&req.body).map(|m| m.addr);
        let our_branch = branch();
        if from_a {
            let trying = req.response(100, "Trying", "");
            self.send_a(trying.to_bytes());
            if media.is_some() {
                self.peers.send_modify(|p| p.a = media);
            }
            let offer = sdp::rewrite(&req.body, self.ip, self.ports.1);
            self.b_cseq += 1;
            let fork = &self.forks[w];
            let uri = fork.remote_uri.clone().unwrap_or_else(|| fork.uri.clone());
            let to_tag = fork.to_tag.clone();
            let r = self.b_request(
                "INVITE",
                &uri,
                self.b_cseq,
                &our_branch,
                to_tag.as_deref(),
                (!req.body.is_empty()).then_some(offer.as_slice()),
            );
            let dest = Fork {
                branch: our_branch.clone(),
                uri,
                dest: self.forks[w].dest,
                transport: self.forks[w].transport,
                state: ForkState::Calling,
                to_tag: None,
                remote_uri: None,
            };
            self.send_b(&dest, r.to_bytes());
        } else {
            let trying = req.response(100, "Trying", "");
            self.setup.wire.send(
                trying.to_bytes(),
                self.forks[w].dest,
                self.forks[w].transport,
            );
            if media.is_some() {
                self.peers.send_modify(|p| p.b = media);
            }
            let offer = sdp::rewrite(&req.body, self.ip, self.ports.0);
            let mut r =
                self.a_request("INVITE", (!req.body.is_empty()).then_some(offer.as_slice()));
            // Our own branch, remembered to match the answer.
            if let Some((_, v)) = r.headers.iter_mut().find(|(n, _)| n == "via") {
                *v = format!("SIP/2.0/UDP {};branch={our_branch};rport", self.local());
            }
            self.send_to_a_reliably(r.to_bytes());
        }
        self.reinvite = Some(ReInvite {
            from_a,
            request: req,
            our_branch,
        });
    }

    /// A response from the caller's phone: to our BYE or to a re-INVITE we sent it.
    fn response_from_a(&mut self, code: u16, msg: &Message) {
        let branch = msg
            .top_via()
            .and_then(|v| param(v, "branch"))
            .unwrap_or("")
            .to_string();
        if code >= 200 || msg.cseq().is_some_and(|(_, m)| m == "INVITE") {
            self.retransmits.retain(|r| r.key != branch);
        }
        let is_invite = msg.cseq().is_some_and(|(_, m)| m == "INVITE");
        if is_invite && code >= 200 {
            // ACK the caller's answer to our re-INVITE.
            let mut ack = self.a_request("ACK", None);
            if let Some((_, v)) = ack.headers.iter_mut().find(|(n, _)| n == "cseq") {
                *v = format!("{} ACK", self.a_cseq - 1);
            }
            self.a_cseq -= 1;
            self.send_a(ack.to_bytes());
            self.answer_reinvite(code, msg, true);
        }
    }

    /// The callee's phone answered our re-INVITE (or the caller's, `answered_by_a`): pass
    /// the answer back to whoever asked.
    fn answer_reinvite(&mut self, code: u16, msg: &Message, answered_by_a: bool) {
        let Some(re) = self.reinvite.take() else {
            return;
        };
        if re.from_a == answered_by_a {
            self.reinvite = Some(re);
            return;
        }
        let media = sdp::audio(&msg.body).map(|m| m.addr);
        let (port, tag) = if re.from_a {
            if code < 300 && media.is_some() {
                self.peers.send_modify(|p| p.b = media);
            }
            (self.ports.0, self.a_tag.clone())
        } else {
            if code < 300 && media.is_some() {
                self.peers.send_modify(|p| p.a = media);
            }
            let tag = self
                .winner
                .and_then(|w| self.forks[w].to_tag.clone())
                .unwrap_or_default();
            (self.ports.1, tag)
        };
        let reason = if code < 300 { "OK" } else { "Request Failed" };
        let mut r = re.request.response(code.max(200), reason, &tag);
        r.push(
            "Contact",
            format!("<sip:{}@{}>", self.setup.parties.callee_ext, self.local()),
        );
        if !msg.body.is_empty() {
            r.push("Content-Type", "application/sdp");
            r.body = sdp::rewrite(&msg.body, self.ip, port);
        }
        let bytes = r.to_bytes();
        if re.from_a {
            self.send_a(bytes);
        } else if let Some(w) = self.winner {
            let (dest, t) = (self.forks[w].dest, self.forks[w].transport);
            self.setup.wire.send(bytes, dest, t);
        }
    }

    fn response_from_b(&mut self, code: u16, m: Incoming) {
        let msg = &m.msg;
        let branch = msg
            .top_via()
            .and_then(|v| param(v, "branch"))
            .unwrap_or("")
            .to_string();
        let method = msg.cseq().map(|(_, m)| m).unwrap_or_default();
        // Any response ends the retransmission of an INVITE; a final one of the rest.
        if method == "INVITE" || code >= 200 {
            self.retransmits.retain(|r| r.key != branch);
        }
        if method == "BYE" {
            return;
        }
        if method != "INVITE" {
            return;
        }
        if let Some(re) = &self.reinvite
            && re.our_branch == branch
        {
            if code >= 200 {
                let w = self.winner.unwrap_or(0);
                let to_tag = self.forks[w].to_tag.clone();
                let uri = self.forks[w]
                    .remote_uri
                    .clone()
                    .unwrap_or_else(|| self.forks[w].uri.clone());
                let ack = self.b_request(
                    "ACK",
                    &uri,
                    self.b_cseq,
                    &self::branch(),
                    to_tag.as_deref(),
                    None,
                );
                self.setup.wire.send(ack.to_bytes(), m.source, m.transport);
                let msg = m.msg;
                self.answer_reinvite(code, &msg, false);
            }
            return;
        }
        let Some(i) = self.forks.iter().position(|f| f.branch == branch) else {
            return;
        };
        let to_tag = msg
            .header("to")
            .and_then(|t| param(t, "tag"))
            .map(str::to_string);
        match code {
            100 => {}
            101..=199 => {
                if self.forks[i].state == ForkState::Calling {
                    self.forks[i].state = ForkState::Ringing;
                }
                if self.phase == Phase::Ringing && !self.rang {
                    self.rang = true;
                    let mut r = self.a_invite.response(180, "Ringing", &self.a_tag);
                    if code == 183 && !msg.body.is_empty() {
                        if let Some(media) = sdp::audio(&msg.body) {
                            self.peers.send_modify(|p| p.b = Some(media.addr));
                        }
                        r = self.a_invite.response(183, "Session Progress", &self.a_tag);
                        r.push("Content-Type", "application/sdp");
                        r.body = sdp::rewrite(&msg.body, self.ip, self.ports.0);
                    }
                    // Not retransmitted (RFC 3261 13.3.1.1); sent again only when the
                    // caller's INVITE is.
                    self.respond_a(r);
                }
            }
            200..=299 => {
                let remote_uri = msg.header("contact").and_then(uri_of).map(str::to_string);
                let uri = remote_uri
                    .clone()
                    .unwrap_or_else(|| self.forks[i].uri.clone());
                let ack = self.b_request("ACK", &uri, 1, &self::branch(), to_tag.as_deref(), None);
                self.setup.wire.send(ack.to_bytes(), m.source, m.transport);
                if self.winner.is_some_and(|w| w != i) || self.phase != Phase::Ringing {
                    if self.winner != Some(i) {
                        // A second phone answered too late: hang it up.
                        let bye = self.b_request(
                            "BYE",
                            &uri,
                            2,
                            &self::branch(),
                            to_tag.as_deref(),
                            None,
                        );
                        self.setup.wire.send(bye.to_bytes(), m.source, m.transport);
                    }
                    return;
                }
                self.forks[i].state = ForkState::Answered;
                self.forks[i].to_tag = to_tag;
                self.forks[i].remote_uri = remote_uri;
                self.forks[i].dest = m.source;
                self.winner = Some(i);
                self.cancel_forks(Some(i));
                if let Some(media) = sdp::audio(&msg.body) {
                    self.peers.send_modify(|p| p.b = Some(media.addr));
                }
                let mut r = self.a_invite.response(200, "OK", &self.a_tag);
                r.push("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE");
                if !msg.body.is_empty() {
                    r.push("Content-Type", "application/sdp");
                    r.body = sdp::rewrite(&msg.body, self.ip, self.ports.0);
                }
                self.phase = Phase::Answered;
                self.respond_a(r);
                self.status("talking");
                info!(
                    message = "phone: call answered",
                    caller = %self.setup.parties.caller_ext,
                    callee = %self.setup.parties.callee_ext
                );
            }
            _ => {
                // A final refusal: ACK it (same branch, RFC 3261 17.1.1.3).
                let f = &self.forks[i];
                let mut ack = self.b_request("ACK", &f.uri, 1, &f.branch, to_tag.as_deref(), None);
                ack.headers.retain(|(n, _)| n != "contact" && n != "allow");
                self.setup.wire.send(ack.to_bytes(), m.source, m.transport);
                if matches!(
                    self.forks[i].state,
                    ForkState::Calling | ForkState::Ringing | ForkState::Cancelled
                ) {
                    self.forks[i].state = ForkState::Failed(code);
                }
                self.all_failed();
            }
        }
    }

    /// When every fork has failed: the caller hears the best reason.
    fn all_failed(&mut self) {
        if self.phase != Phase::Ringing
            || self.forks.iter().any(|f| {
                matches!(
                    f.state,
                    ForkState::Calling | ForkState::Ringing | ForkState::Answered
                )
            })
        {
            return;
        }
        let codes: Vec<u16> = self
            .forks
            .iter()
            .filter_map(|f| match f.state {
                ForkState::Failed(c) => Some(c),
                _ => None,
            })
            .collect();
        let (code, reason) = if codes.iter().any(|&c| c == 486 || c == 600) {
            (486, "Busy Here")
        } else if codes.contains(&603) {
            (603, "Decline")
        } else {
            (480, "Temporarily Unavailable")
        };
        if code == 603 {
            self.fail_a(code, reason);
        } else {
            self.voicemail_or_fail(code, reason);
        }
    }

    /// Busy, no answer, no phone: voicemail takes the call when there is one.
    fn voicemail_or_fail(&mut self, code: u16, reason: &str) {
        let answers = self.setup.voicemail.is_some() || self.setup.menu.is_some();
        if answers && self.phase == Phase::Ringing {
            self.to_voicemail = true;
            self.phase = Phase::Voicemail;
        } else {
            self.fail_a(code, reason);
        }
    }

    /// The box answers the caller itself and records a message.
    async fn enter_voicemail(&mut self) {
        self.relay_stop.cancel();
        let Some(relay) = self.relay.take() else {
            return;
        };
        let Ok(stopped) = relay.await else {
            self.phase = Phase::Ringing;
            self.fail_a(500, "Server Internal Error");
            return;
        };
        let Some(n) = media::negotiate(&self.a_invite.body) else {
            self.phase = Phase::Ringing;
            self.fail_a(488, "Not Acceptable Here");
            return;
        };
        let answer = media::answer(self.ip, stopped.a.port, &n);
        let mut r = self.a_invite.response(200, "OK", &self.a_tag);
        r.push("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO");
        r.push("Content-Type", "application/sdp");
        r.body = answer;
        self.respond_a(r);
        self.status("voicemail");
        info!(
            message = "phone: voicemail answers",
            caller = %self.setup.parties.caller_ext,
            callee = %self.setup.parties.callee_ext
        );
        drop(stopped.b);
        let (digits, digits_rx) = mpsc::unbounded_channel();
        let ep = Endpoint::new(Socket::Leased(stopped.a), n, digits_rx);
        let hangup = CancellationToken::new();
        let task = if let Some(m) = self.setup.menu.clone() {
            let hangup = hangup.clone();
            tokio::spawn(async move { MediaJob::Menu(menu::run(ep, m, hangup).await) })
        } else if let Some(vm) = self.setup.voicemail.clone() {
            let greeting = voicemail::greeting(
                &vm.data_dir,
                &self.setup.parties.callee_login,
                &self.setup.parties.callee_ext,
            );
            let hangup = hangup.clone();
            tokio::spawn(async move {
                MediaJob::Deposit(voicemail::record(ep, greeting, vm.max, hangup).await)
            })
        } else {
            return;
        };
        self.recording = Some(Recording {
            hangup,
            digits,
            task,
            bye: None,
        });
    }

    /// The recording is over: deliver it, then release the caller (answer their BYE, or
    /// say goodbye and send ours).
    async fn recorded(&mut self, job: Result<MediaJob, tokio::task::JoinError>) {
        let Some(rec) = self.recording.take() else {
            return;
        };
        let mut deposit = match job {
            Ok(MediaJob::Deposit(d)) => d,
            Ok(MediaJob::Menu(present)) => {
                self.release(rec.bye, present);
                return;
            }
            Err(_) => {
                self.release(rec.bye, false);
                return;
            }
        };
        let Some(vm) = self.setup.voicemail.clone() else {
            return;
        };
        let long_enough = deposit.samples.len() >= voicemail::MIN_LENGTH.as_millis() as usize * 8;
        let mut saved = false;
        if long_enough {
            let samples = std::mem::take(&mut deposit.samples);
            let env = vm.envelope.clone();
            let dir = vm.data_dir.clone();
            let length = voicemail::duration_text(samples.len());
            match tokio::task::spawn_blocking(move || voicemail::deliver(&dir, &env, &samples))
                .await
            {
                Ok(Ok(name)) => {
                    saved = true;
                    info!(
                        message = "phone: voicemail delivered",
                        to = %vm.envelope.callee_login,
                        from = %self.setup.parties.caller_ext,
                        %length,
                        %name
                    );
                }
                Ok(Err(error)) => {
                    tracing::warn!(message = "phone: voicemail not delivered", %error)
                }
                Err(error) => tracing::warn!(message = "phone: voicemail not delivered", %error),
            }
        }
        if let Some(bye) = rec.bye {
            let ok = bye.msg.response(200, "OK", &self.a_tag);
            self.setup
                .wire
                .send(ok.to_bytes(), bye.source, bye.transport);
        } else if deposit.caller_present {
            let last = if saved {
                voicemail::prompts::MESSAGE_SAVED
            } else {
                voicemail::prompts::MESSAGE_TOO_SHORT
            };
            deposit.endpoint.play(&voicemail::prompt(last), false).await;
            let bye = self.a_request("BYE", None);
            self.send_to_a_reliably(bye.to_bytes());
        }
        self.phase = Phase::Ending;
        self.status("ending");
    }

    /// The box's side is done: answer the caller's BYE, or send ours.
    fn release(&mut self, bye: Option<Incoming>, caller_present: bool) {
        if let Some(bye) = bye {
            let ok = bye.msg.response(200, "OK", &self.a_tag);
            self.setup
                .wire
                .send(ok.to_bytes(), bye.source, bye.transport);
        } else if caller_present {
            let bye = self.a_request("BYE", None);
            self.send_to_a_reliably(bye.to_bytes());
        }
        self.phase = Phase::Ending;
        self.status("ending");
    }

    fn fail_a(&mut self, code: u16, reason: &str) {
        let r = self.a_invite.response(code, reason, &self.a_tag);
        self.phase = Phase::Ending;
        self.respond_a(r);
        self.status("ending");
        info!(
            message = "phone: call not answered",
            caller = %self.setup.parties.caller_ext,
            callee = %self.setup.parties.callee_ext,
            code
        );
    }

    /// CANCELs every ringing fork but `keep`.
    fn cancel_forks(&mut self, keep: Option<usize>) {
        for i in 0..self.forks.len() {
            if Some(i) == keep
                || !matches!(self.forks[i].state, ForkState::Calling | ForkState::Ringing)
            {
                continue;
            }
            self.forks[i].state = ForkState::Cancelled;
            let f = &self.forks[i];
            let mut c = self.b_request("CANCEL", &f.uri, 1, &f.branch, None, None);
            c.headers.retain(|(n, _)| n != "contact" && n != "allow");
            let bytes = c.to_bytes();
            let fork = Fork {
                branch: f.branch.clone(),
                uri: f.uri.clone(),
                dest: f.dest,
                transport: f.transport,
                state: ForkState::Cancelled,
                to_tag: None,
                remote_uri: None,
            };
            // The INVITE is no longer sent again; the CANCEL is, until answered (it has
            // the INVITE's branch, so the INVITE's 487 or the CANCEL's 200 both stop it).
            self.retransmits.retain(|r| r.key != fork.branch);
            self.send_b(&fork, bytes);
        }
    }

    fn bye_b(&mut self) {
        let Some(w) = self.winner else {
            self.cancel_forks(None);
            return;
        };
        self.b_cseq += 1;
        let f = &self.forks[w];
        let uri = f.remote_uri.clone().unwrap_or_else(|| f.uri.clone());
        let bye = self.b_request(
            "BYE",
            &uri,
            self.b_cseq,
            &branch(),
            f.to_tag.as_deref(),
            None,
        );
        let fork = Fork {
            branch: String::new(),
            uri,
            dest: f.dest,
            transport: f.transport,
            state: ForkState::Answered,
            to_tag: None,
            remote_uri: None,
        };
        self.send_b(&fork, bye.to_bytes());
    }

    /// A call is over when it is ending and nothing is outstanding: the caller has ACKed
    /// our final answer, every phone rung has answered its INVITE or CANCEL (or timed
    /// out), and every BYE has its answer (or timed out).
    fn check_done(&mut self) {
        if self.phase != Phase::Ending {
            return;
        }
        let forks_pending = self.forks.iter().any(|f| {
            matches!(
                f.state,
                ForkState::Calling | ForkState::Ringing | ForkState::Cancelled
            )
        });
        if !forks_pending && self.retransmits.is_empty() {
            self.done = true;
        }
    }

    fn next_timer(&self) -> Instant {
        let mut next = Instant::now() + Duration::from_secs(1);
        for r in &self.retransmits {
            next = next.min(r.next).min(r.until);
        }
        if self.phase == Phase::Ringing {
            next = next.min(self.ring_until);
        }
        next
    }

    fn timers(&mut self) {
        let now = Instant::now();
        let mut expired = Vec::new();
        for r in &mut self.retransmits {
            if r.until <= now {
                expired.push(r.key.clone());
            } else if r.next <= now {
                self.setup.wire.send(r.bytes.clone(), r.to, "udp");
                r.interval = (r.interval * 2).min(T2);
                r.next = now + r.interval;
            }
        }
        self.retransmits.retain(|r| r.until > now);
        for key in expired {
            if key == "a-final" {
                // Never ACKed: the caller is gone.
                if self.phase == Phase::Answered {
                    self.bye_b();
                }
                self.phase = Phase::Ending;
            } else if let Some(i) = self.forks.iter().position(|f| f.branch == key)
                && matches!(
                    self.forks[i].state,
                    ForkState::Calling | ForkState::Ringing | ForkState::Cancelled
                )
            {
                self.forks[i].state = ForkState::Failed(408);
                self.all_failed();
            }
        }
        if self.phase == Phase::Ringing && now >= self.ring_until {
            self.cancel_forks(None);
            self.voicemail_or_fail(480, "Temporarily Unavailable (no answer)");
        }
    }
}

/// Gives `to` the body (and its type) of `from`.
fn copy_body(from: &Message, to: &mut Message) {
    if let Some(ct) = from.header("content-type") {
        to.push("Content-Type", ct.to_string());
    }
    to.body = from.body.clone();
}

/// The digit of a SIP INFO (application/dtmf-relay `Signal=5`, or application/dtmf `5`).
fn info_digit(m: &Message) -> Option<char> {
    let text = std::str::from_utf8(&m.body).ok()?;
    let value = text
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.trim().eq_ignore_ascii_case("signal").then_some(v)
        })
        .unwrap_or(text);
    let c = value.trim().chars().next()?;
    matches!(c, '0'..='9' | '*' | '#' | 'A'..='D').then_some(c)
}

/// Where a registered phone is reached: the address in its Contact when that is the
/// host it registered from (it said which port it listens on), else the address its
/// REGISTER came from (it is behind NAT, and only that address gets through).
pub fn reach(b: &Binding) -> SocketAddr {
    let contact = crate::sip::uri_host(&b.contact).and_then(|h| {
        h.parse::<SocketAddr>()
            .ok()
            .or_else(|| h.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 5060)))
    });
    match contact {
        Some(c) if c.ip() == b.source.ip() => c,
        _ => b.source,
    }
}

/// The branch of the top Via of a message we built.
fn branch_of_bytes(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    let via = text.lines().find(|l| l.starts_with("Via:"))?;
    param(via.trim_start_matches("Via:").trim(), "branch").map(str::to_string)
}
