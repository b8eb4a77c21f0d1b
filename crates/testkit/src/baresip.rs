//! Real phones: baresip 1.x instances with private config, driven over their `ctrl_tcp`
//! control socket, playing a WAV file as their microphone and recording what they hear.
//!
//! Each [`Baresip`] is one baresip process (Debian package baresip, 1.0.0 on Debian 12) in
//! its own process group, with its config directory (`baresip -f DIR`), log, audio source
//! file and recordings in one scratch directory. It listens for SIP on 127.0.0.1 (or
//! another loopback address) and sends RTP only from there: no audio hardware, no
//! STUN/TURN/ICE, no video, codecs PCMU and PCMA only.
//!
//! - **Microphone**: the `aufile` module plays the account's WAV file from the moment a
//!   call's audio starts (for the callee: when it answers); every call starts it again.
//!   baresip 1.0.0 ends the call when the file ends, so by default the file is padded with
//!   silence up to [`BaresipAccount::max_call`]; [`BaresipAccount::hang_up_after_playing`]
//!   keeps that behaviour instead ("play a message, then hang up"). Without a file the
//!   phone sends silence (G.711 packets all the same).
//! - **Speaker**: the `sndfile` module writes each call's decoded incoming audio (what the
//!   phone hears, after the jitter buffer) and the audio it sent to 8 kHz mono WAV files,
//!   [`Baresip::recordings`]; the sound itself goes nowhere (an `aubridge` device with no
//!   source). baresip 1.0.0 stops recording what it hears when a re-INVITE changes the
//!   call's direction (hold); [`Baresip::audio_stats`] still counts packets.
//! - **Control**: commands (`dial`, `accept`, `hangup`, `hold`, `resume`) and events
//!   (`CALL_INCOMING`, `CALL_ESTABLISHED`, `CALL_CLOSED`, `REGISTER_OK`, ...) go over
//!   `ctrl_tcp` (JSON in netstrings). The account itself is created over that socket
//!   (`uanew`) once the harness is connected, so no event, not even the first
//!   registration's, can be missed.
//!
//! ```no_run
//! use std::net::SocketAddr;
//! use std::time::Duration;
//! use officebox_testkit::{audio, require_program, scratch_dir, Baresip, BaresipAccount};
//!
//! # fn main() -> std::io::Result<()> {
//! require_program("baresip", "baresip");
//! let dir = scratch_dir("call")?;
//! let greeting = dir.path().join("greeting.wav");
//! audio::make_tone_wav(&greeting, 3.0)?;
//! let officebox: SocketAddr = "127.0.0.1:5060".parse().map_err(std::io::Error::other)?;
//! let alice = Baresip::start(
//!     "alice",
//!     &BaresipAccount::new("101", officebox).auth("alice", "demo-alice"),
//! )?;
//! let bob = Baresip::start(
//!     "bob",
//!     &BaresipAccount::new("102", officebox)
//!         .auth("bob", "demo-bob")
//!         .auto_answer(true)
//!         .play(&greeting)
//!         .hang_up_after_playing(true),
//! )?;
//! alice.wait_registered(Duration::from_secs(10))?;
//! bob.wait_registered(Duration::from_secs(10))?;
//! alice.dial("102")?;
//! alice.wait_for_event("CALL_ESTABLISHED", Duration::from_secs(10))?;
//! alice.wait_for_event("CALL_CLOSED", Duration::from_secs(20))?; // bob hung up
//! let heard = alice.last_recording(Duration::from_secs(5))?.heard;
//! assert!(audio::similarity(&greeting, &heard)? > 0.8);
//! # Ok(())
//! # }
//! ```

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle, panicking, sleep};
use std::time::{Duration, Instant};

use crate::audio::{self, PHONE_RATE};
use crate::cmd::{next_id, sanitize};
use crate::{Peer, TempDir, scratch_dir};

const POLL: Duration = Duration::from_millis(20);
/// A clean `PATH` for baresip (it gets no other environment but `HOME`).
const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";
/// Where Debian installs baresip's modules.
const MODULE_PATH: &str = "/usr/lib/baresip/modules";
/// How long baresip may take to start and accept the control connection.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// Start attempts when another process took a port between choosing and binding it.
const START_ATTEMPTS: u32 = 4;
/// How long a control command may take to be answered.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long baresip gets after SIGTERM (it hangs up calls and unregisters) before its
/// group is SIGKILLed.
const STOP_GRACE: Duration = Duration::from_secs(3);
const TAIL_LINES: usize = 40;
/// Events quoted in error messages.
const TAIL_EVENTS: usize = 20;
/// A single netstring from ctrl_tcp larger than this is a protocol error.
const MAX_NETSTRING: usize = 1 << 20;

fn invalid_input(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// SIP transport between a [`Baresip`] phone and its registrar or peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SipTransport {
    Udp,
    Tcp,
}

impl SipTransport {
    fn param(self) -> &'static str {
        match self {
            SipTransport::Udp => "udp",
            SipTransport::Tcp => "tcp",
        }
    }
}

/// An audio codec a [`Baresip`] phone may offer or accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// G.711 μ-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
}

impl Codec {
    fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }
}

/// What a [`Baresip`] phone is: its SIP account and how it behaves.
///
/// Build one with [`BaresipAccount::new`] (registers with a registrar, usually
/// officebox) or [`BaresipAccount::direct`] (no registrar; others dial
/// [`Baresip::uri`]), then adjust it with the builder methods.
#[derive(Debug, Clone)]
pub struct BaresipAccount {
    user: String,
    registrar: Option<SocketAddr>,
    domain: Option<String>,
    auth: Option<(String, String)>,
    transport: SipTransport,
    local_ip: Ipv4Addr,
    sip_port: Option<u16>,
    rtp_ports: Option<(u16, u16)>,
    auto_answer: bool,
    play: Option<PathBuf>,
    hang_up_after_playing: bool,
    max_call: Duration,
    codecs: Vec<Codec>,
    register_interval: u32,
    sip_trace: bool,
    /// The network namespace it runs in (`None`: the test's own).
    netns: Option<String>,
}

impl BaresipAccount {
    /// A phone for extension `user` that registers with `registrar` (officebox's SIP
    /// address) every [`BaresipAccount::register_interval`] seconds. Its address of record
    /// is `sip:USER@REGISTRAR` unless [`BaresipAccount::domain`] says otherwise; calls to
    /// bare extensions (`dial("102")`) go to `sip:102@` that domain.
    pub fn new(user: &str, registrar: SocketAddr) -> BaresipAccount {
        BaresipAccount {
            registrar: Some(registrar),
            ..BaresipAccount::direct(user)
        }
    }

    /// A phone for `user` that registers nowhere: its address of record is its own
    /// address, `sip:USER@127.0.0.1:PORT` ([`Baresip::uri`]), which others dial directly.
    /// It must dial full URIs too: a bare `dial("102")` would complete to its own address.
    pub fn direct(user: &str) -> BaresipAccount {
        BaresipAccount {
            user: user.to_owned(),
            registrar: None,
            domain: None,
            auth: None,
            transport: SipTransport::Udp,
            local_ip: Ipv4Addr::LOCALHOST,
            sip_port: None,
            rtp_ports: None,
            auto_answer: false,
            play: None,
            hang_up_after_playing: false,
            max_call: Duration::from_secs(300),
            codecs: vec![Codec::Pcmu, Codec::Pcma],
            register_interval: 3600,
            sip_trace: true,
            netns: None,
        }
    }

    /// Digest credentials (login and password) for registering and for calls the
    /// registrar or proxy challenges.
    pub fn auth(mut self, login: &str, password: &str) -> BaresipAccount {
        self.auth = Some((login.to_owned(), password.to_owned()));
        self
    }

    /// The domain of the address of record (`sip:USER@DOMAIN`), when it is not the
    /// registrar's address (e.g. officebox's `network.domain`). Requests still go to the
    /// registrar, as an outbound proxy (a `Route` header).
    pub fn domain(mut self, domain: &str) -> BaresipAccount {
        self.domain = Some(domain.to_owned());
        self
    }

    /// SIP over UDP (the default) or TCP. baresip listens on both either way; this says
    /// how it registers and calls (`;transport=tcp` on the account URI, which baresip
    /// also appends to every URI it dials).
    pub fn transport(mut self, transport: SipTransport) -> BaresipAccount {
        self.transport = transport;
        self
    }

    /// The loopback address for SIP and SDP (default 127.0.0.1); any of 127.0.0.0/8 works,
    /// so phones can have distinct addresses. baresip 1.0.0 binds its RTP sockets to
    /// 0.0.0.0, so its RTP to 127.0.0.1 leaves from 127.0.0.1 whatever its SDP says (like
    /// a phone behind NAT).
    pub fn local_ip(mut self, ip: Ipv4Addr) -> BaresipAccount {
        self.local_ip = ip;
        self
    }

    /// A fixed SIP port. By default a free one is chosen (baresip needs the port free for
    /// UDP and TCP, and the next one for TCP too: its TLS listener).
    pub fn sip_port(mut self, port: u16) -> BaresipAccount {
        self.sip_port = Some(port);
        self
    }

    /// Take RTP (and RTCP, the port above) ports from `first..=last` (baresip's
    /// `rtp_ports`; it picks at random within the range). By default any free port.
    pub fn rtp_ports(mut self, first: u16, last: u16) -> BaresipAccount {
        self.rtp_ports = Some((first, last));
        self
    }

    /// Answer incoming calls at once (`answermode=auto`). Otherwise they ring until
    /// [`Baresip::accept`].
    pub fn auto_answer(mut self, yes: bool) -> BaresipAccount {
        self.auto_answer = yes;
        self
    }

    /// A WAV file to send as the microphone in every call (any WAV sox reads; converted
    /// to 8 kHz mono 16-bit if needed). Without one the phone sends silence.
    pub fn play(mut self, wav: &Path) -> BaresipAccount {
        self.play = Some(wav.to_path_buf());
        self
    }

    /// Hang up each call when the [`BaresipAccount::play`] file has been played (what
    /// baresip 1.0.0's aufile does at the end of its file), instead of going on with
    /// silence.
    pub fn hang_up_after_playing(mut self, yes: bool) -> BaresipAccount {
        self.hang_up_after_playing = yes;
        self
    }

    /// The longest a call may last (default 300 s): after this much audio the
    /// microphone file ends, and with it the call. Every second costs 16 kB of file and
    /// memory.
    pub fn max_call(mut self, max: Duration) -> BaresipAccount {
        self.max_call = max;
        self
    }

    /// The codecs to offer and accept, in order of preference (default PCMU, PCMA).
    pub fn codecs(mut self, codecs: &[Codec]) -> BaresipAccount {
        self.codecs = codecs.to_vec();
        self
    }

    /// The registration interval asked for, in seconds (default 3600; baresip re-registers
    /// about halfway through what the registrar grants).
    pub fn register_interval(mut self, seconds: u32) -> BaresipAccount {
        self.register_interval = seconds;
        self
    }

    /// Whether baresip logs every SIP message it sends and receives (`-s`, default on).
    pub fn sip_trace(mut self, yes: bool) -> BaresipAccount {
        self.sip_trace = yes;
        self
    }

    /// Run inside network namespace `ns` (its own addresses: set
    /// [`BaresipAccount::local_ip`] to one of them). The harness still drives it: its
    /// control connection is made from inside the namespace.
    pub fn netns(mut self, ns: &crate::Netns) -> BaresipAccount {
        self.netns = Some(ns.name().to_owned());
        self
    }

    /// Runs `f` in the account's namespace (or here).
    fn inside<T: Send>(&self, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
        match &self.netns {
            Some(name) => crate::netns::enter(name, f),
            None => f(),
        }
    }

    fn check(&self) -> io::Result<()> {
        let token = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.!~*'()&=+$".contains(c))
        };
        if !token(&self.user) {
            return Err(invalid_input(format!(
                "baresip account: user {:?} must be letters, digits and -_.!~*'()&=+$",
                self.user
            )));
        }
        if let Some(domain) = &self.domain
            && (domain.is_empty()
                || !domain
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.:[]".contains(c)))
        {
            return Err(invalid_input(format!(
                "baresip account: domain {domain:?} must be a host name or address"
            )));
        }
        if let Some((login, password)) = &self.auth {
            if !token(login) {
                return Err(invalid_input(format!(
                    "baresip account: login {login:?} must be letters, digits and -_.!~*'()&=+$"
                )));
            }
            // baresip reads `;auth_pass=VALUE` up to the next `;` or space.
            if password.is_empty()
                || !password
                    .chars()
                    .all(|c| c.is_ascii_graphic() && !";,\"<>\\".contains(c))
            {
                return Err(invalid_input(
                    "baresip account: the password must be printable ASCII without spaces or ;,\"<>\\"
                        .to_owned(),
                ));
            }
        }
        // Outside a namespace of the test's own, only loopback (never the host's network).
        if self.netns.is_none() && !self.local_ip.is_loopback() {
            return Err(invalid_input(format!(
                "baresip account: local address {} is not a loopback address (use a namespace)",
                self.local_ip
            )));
        }
        if let Some((first, last)) = self.rtp_ports
            && (first == 0 || last <= first)
        {
            return Err(invalid_input(format!(
                "baresip account: RTP port range {first}-{last} needs at least two ports"
            )));
        }
        if self.domain.is_some() && self.registrar.is_none() {
            return Err(invalid_input(
                "baresip account: a domain needs a registrar to send requests to".to_owned(),
            ));
        }
        if self.registrar.is_some() && self.register_interval == 0 {
            return Err(invalid_input(
                "baresip account: register interval 0 means no registration; use BaresipAccount::direct"
                    .to_owned(),
            ));
        }
        if self.codecs.is_empty() {
            return Err(invalid_input(
                "baresip account: no codecs to offer".to_owned(),
            ));
        }
        if self.max_call < Duration::from_secs(1) || self.max_call > Duration::from_secs(3600) {
            return Err(invalid_input(format!(
                "baresip account: max_call {:?} must be between 1 s and 1 h",
                self.max_call
            )));
        }
        Ok(())
    }

    /// The address of record's host part.
    fn aor_host(&self, sip_port: u16) -> String {
        match (&self.domain, self.registrar) {
            (Some(domain), _) => domain.clone(),
            (None, Some(registrar)) => registrar.to_string(),
            (None, None) => format!("{}:{sip_port}", self.local_ip),
        }
    }

    /// The line `uanew` gets: `<sip:USER@HOST;transport=T>;param=...`.
    fn account_line(&self, sip_port: u16, source: &Path) -> String {
        let transport = self.transport.param();
        // baresip appends the account URI's parameters to every URI it dials, so UDP
        // (the default) gets none.
        let mut line = format!("<sip:{}@{}", self.user, self.aor_host(sip_port));
        if self.transport != SipTransport::Udp {
            let _ = write!(line, ";transport={transport}");
        }
        line.push('>');
        if let Some((login, password)) = &self.auth {
            let _ = write!(line, ";auth_user={login};auth_pass={password}");
        }
        let regint = match self.registrar {
            Some(_) => self.register_interval,
            None => 0,
        };
        let _ = write!(line, ";regint={regint}");
        if let (Some(registrar), Some(_)) = (self.registrar, &self.domain) {
            let _ = write!(line, ";outbound=\"sip:{registrar};transport={transport}\"");
        }
        let answermode = if self.auto_answer { "auto" } else { "manual" };
        let codecs: Vec<&str> = self.codecs.iter().map(|c| c.name()).collect();
        let _ = write!(
            line,
            ";answermode={answermode};audio_codecs={};audio_source=aufile,{};audio_player={NOWHERE}",
            codecs.join(","),
            source.display()
        );
        line
    }
}

/// The audio player: an aubridge device no source is ever connected to, so what is
/// played goes nowhere (the recording is made by the sndfile filter before it).
const NOWHERE: &str = "aubridge,obx-nowhere";

/// One event a [`Baresip`] phone reported over `ctrl_tcp`.
#[derive(Debug, Clone, PartialEq)]
pub struct BaresipEvent {
    /// The event type: `REGISTERING`, `REGISTER_OK`, `REGISTER_FAIL`, `UNREGISTERING`,
    /// `CALL_INCOMING`, `CALL_RINGING`, `CALL_PROGRESS`, `CALL_ESTABLISHED`,
    /// `CALL_CLOSED`, `CALL_LOCAL_SDP`, `CALL_REMOTE_SDP` (with `param` `offer` or
    /// `answer`: a re-INVITE shows up as one), `CALL_RTPESTAB`, `CALL_RTCP`,
    /// `AUDIO_ERROR`, ...
    pub kind: String,
    /// `register`, `call` or `other`.
    pub class: String,
    /// The account's address of record.
    pub account: String,
    /// For calls: `incoming` or `outgoing` (empty if baresip did not say).
    pub direction: String,
    /// For calls: the other side's URI.
    pub peer_uri: String,
    /// For calls: the SIP Call-ID (empty in a call's first events).
    pub call_id: String,
    /// Details: the SIP status for registrations (`200 OK`, `403 Forbidden`), the reason
    /// for `CALL_CLOSED` (`Connection reset by peer` = the other side hung up,
    /// `Connection reset by user` = this side did, `end of file` = the microphone file
    /// ended, or a SIP error such as `486 Busy Here`).
    pub param: String,
    /// The event's JSON as baresip sent it.
    pub json: String,
    /// When the harness received it.
    pub received: Instant,
}

impl BaresipEvent {
    fn from_json(json: &str, fields: &[(String, Json)]) -> BaresipEvent {
        let get = |key: &str| {
            fields
                .iter()
                .find(|(k, _)| k == key)
                .and_then(|(_, v)| v.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        BaresipEvent {
            kind: get("type"),
            class: get("class"),
            account: get("accountaor"),
            direction: get("direction"),
            peer_uri: get("peeruri"),
            call_id: get("id"),
            param: get("param"),
            json: json.to_owned(),
            received: Instant::now(),
        }
    }

    fn summary(&self) -> String {
        let mut s = self.kind.clone();
        for part in [&self.peer_uri, &self.param] {
            if !part.is_empty() {
                s.push(' ');
                s.push_str(part);
            }
        }
        s
    }
}

/// RTP counters of a call's audio stream; see [`Baresip::audio_stats`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioStats {
    /// RTP packets sent. baresip 1.0.0 sends only while the stream is `sendrecv`: on
    /// hold neither side sends.
    pub sent: u64,
    /// RTP packets received (as RTCP counts them).
    pub received: u64,
    /// The stream's direction: `sendrecv`, `sendonly`, `recvonly` or `inactive`.
    pub direction: String,
}

/// Reads `TX: packets=N`, every `rcvd=N` and `audio dir=D` out of `audio_debug` output.
fn parse_audio_debug(text: &str) -> Option<AudioStats> {
    let number = |after: &str, word: &str| -> Option<u64> {
        let digits: String = after[word.len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    let (mut sent, mut received, mut direction) = (None, 0, None);
    for line in text.lines() {
        if let Some(i) = line.find("TX: packets=") {
            sent = number(&line[i..], "TX: packets=");
        }
        if let Some(i) = line.find("rcvd=") {
            received += number(&line[i..], "rcvd=")?;
        }
        if let Some(i) = line.find("audio dir=") {
            direction = line[i + "audio dir=".len()..]
                .split_whitespace()
                .next()
                .map(str::to_owned);
        }
    }
    Some(AudioStats {
        sent: sent?,
        received,
        direction: direction?,
    })
}

/// One call's recordings: 8 kHz mono 16-bit WAV files written by baresip's sndfile
/// module. Their headers are final only once the call has ended (see
/// [`Baresip::last_recording`]), but [`audio::read_wav`] reads them earlier too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    /// What the phone heard: the decoded incoming audio. baresip 1.0.0 stops writing it
    /// for the rest of the call when a re-INVITE changes the stream's direction (hold,
    /// from either side): restarting its player drops the recording filter. Use
    /// [`Baresip::audio_stats`] to see that audio flows after a resume.
    pub heard: PathBuf,
    /// What the phone sent: its microphone (file) audio, before encoding.
    pub sent: PathBuf,
}

#[derive(Debug, Default)]
struct CtrlState {
    events: Vec<BaresipEvent>,
    /// Answers not yet collected: (token, ok, data).
    responses: Vec<(String, bool, String)>,
    /// Why the control connection ended, once it has.
    closed: Option<String>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<CtrlState>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, CtrlState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for a change or `left`, whichever comes first.
    fn wait<'a>(
        &self,
        guard: MutexGuard<'a, CtrlState>,
        left: Duration,
    ) -> MutexGuard<'a, CtrlState> {
        self.changed
            .wait_timeout(guard, left.min(Duration::from_millis(200)))
            .map(|(g, _)| g)
            .unwrap_or_else(|e| e.into_inner().0)
    }
}

/// A running baresip phone: one baresip 1.x process with a private config directory,
/// SIP on a loopback address, PCMU/PCMA only, no audio hardware.
///
/// It sends [`BaresipAccount::play`]'s file as its microphone from the moment each call's
/// audio starts (silence without one), records what it hears and what it sends in every
/// call ([`Baresip::recordings`]), and is driven over baresip's `ctrl_tcp` socket:
/// commands ([`Baresip::dial`], [`Baresip::accept`], [`Baresip::hangup`],
/// [`Baresip::hold`], [`Baresip::resume`]) and events ([`Baresip::wait_for_event`]).
/// The account is created over that socket once the harness is connected, so no event is
/// missed, not even the first registration's.
///
/// baresip 1.0.0 quirks to know: the call ends when the microphone file ends (hence the
/// silence padding up to [`BaresipAccount::max_call`]); on hold neither side sends RTP;
/// a re-INVITE that changes the direction (hold) ends the recording of what the phone
/// hears for the rest of that call ([`Recording::heard`]).
///
/// Dropping it stops baresip (SIGTERM, so it hangs up and unregisters; SIGKILL to its
/// process group after a grace period) and removes its directory; if the test is
/// panicking, the last events and the log's tail are printed first.
#[derive(Debug)]
pub struct Baresip {
    name: String,
    account: BaresipAccount,
    aor: String,
    uri: String,
    sip_addr: SocketAddr,
    ctrl_addr: SocketAddr,
    source: PathBuf,
    rec_dir: PathBuf,
    /// The control connection's writing half; held for a whole command and its answer.
    ctrl: Mutex<TcpStream>,
    shared: Arc<Shared>,
    reader: Option<JoinHandle<()>>,
    peer: Option<Peer>,
    /// Declared last: removed after baresip has stopped.
    dir: TempDir,
}

impl Baresip {
    /// Starts a baresip phone called `name` (for logs and directory names) with
    /// `account`, and creates its account; returns once baresip accepts commands. A
    /// registering account has only started registering then: see
    /// [`Baresip::wait_registered`].
    pub fn start(name: &str, account: &BaresipAccount) -> io::Result<Baresip> {
        account.check()?;
        check_baresip_version()?;
        let dir = scratch_dir(&format!("baresip-{name}"))?;
        let root = dir.path().to_path_buf();
        let rec_dir = root.join("recordings");
        fs::create_dir(&rec_dir)?;
        let source = root.join("microphone.wav");
        write_source(account, &root, &source)?;
        for path in [&root, &source] {
            check_path(path)?;
        }
        fs::write(
            root.join("contacts"),
            "# baresip contacts (none; written by officebox-testkit)\n",
        )?;

        let mut last_err = None;
        let attempts = if account.sip_port.is_some() {
            1
        } else {
            START_ATTEMPTS
        };
        for _ in 0..attempts {
            let ip = account.local_ip;
            let sip_port = match account.sip_port {
                Some(port) => port,
                None => account.inside(|| free_sip_port(ip))?,
            };
            let ctrl_port = account.inside(|| free_tcp_port(ip))?;
            let sip_addr = SocketAddr::new(IpAddr::V4(account.local_ip), sip_port);
            let ctrl_addr = SocketAddr::new(IpAddr::V4(account.local_ip), ctrl_port);
            let line = account.account_line(sip_port, &source);
            fs::write(
                root.join("config"),
                config(account, sip_addr, ctrl_addr, &rec_dir),
            )?;
            fs::write(
                root.join("accounts"),
                format!(
                    "# The harness creates this account over ctrl_tcp (uanew), after it has\n\
                     # connected, so that it sees every event:\n# {line}\n"
                ),
            )?;
            let mut cmd = match &account.netns {
                Some(ns) => {
                    let mut cmd = Command::new("ip");
                    cmd.args(["netns", "exec", ns.as_str(), "baresip"]);
                    cmd
                }
                None => Command::new("baresip"),
            };
            if account.sip_trace {
                cmd.arg("-s");
            }
            cmd.arg("-f")
                .arg(&root)
                .env_clear()
                .env("PATH", PATH)
                .env("HOME", &root)
                .current_dir(&root);
            let peer = Peer::spawn_in(&format!("baresip-{name}"), cmd, &root)?;
            let ready = match &account.netns {
                Some(ns) => crate::netns::enter(ns, || Ok(wait_ready(&peer, ctrl_addr)))
                    .unwrap_or_else(|e| Err(StartError::Other(e))),
                None => wait_ready(&peer, ctrl_addr),
            };
            match ready {
                Ok(stream) => {
                    let (shared, reader) = spawn_reader(name, &stream)?;
                    let phone = Baresip {
                        name: name.to_owned(),
                        account: account.clone(),
                        aor: format!("sip:{}@{}", account.user, account.aor_host(sip_port)),
                        uri: format!("sip:{}@{sip_addr}", account.user),
                        sip_addr,
                        ctrl_addr,
                        source,
                        rec_dir,
                        ctrl: Mutex::new(stream),
                        shared,
                        reader: Some(reader),
                        peer: Some(peer),
                        dir,
                    };
                    phone.command("uanew", Some(&line))?;
                    return Ok(phone);
                }
                Err(StartError::PortTaken(e)) => {
                    drop(peer);
                    last_err = Some(e);
                }
                Err(StartError::Other(e)) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("baresip: could not start")))
    }

    /// The name given at start.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The account this phone was started with.
    pub fn account(&self) -> &BaresipAccount {
        &self.account
    }

    /// The address of record, `sip:USER@DOMAIN` (for a direct account the same as
    /// [`Baresip::uri`]). Calls from this phone carry it in their From header.
    pub fn aor(&self) -> &str {
        &self.aor
    }

    /// A URI that reaches this phone directly, without a registrar: `sip:USER@IP:PORT`.
    /// baresip listens on that port for UDP and TCP whatever its account's transport, and
    /// a TCP phone dialling it adds `;transport=tcp` itself (baresip appends its account
    /// URI's parameters to every URI it dials).
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Where baresip listens for SIP (UDP and TCP).
    pub fn sip_addr(&self) -> SocketAddr {
        self.sip_addr
    }

    /// Where baresip's ctrl_tcp listens.
    pub fn ctrl_addr(&self) -> SocketAddr {
        self.ctrl_addr
    }

    /// The private directory: `config`, `accounts`, `contacts`, the log, the microphone
    /// file and `recordings/`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The WAV file baresip plays as its microphone (the account's file converted and
    /// padded, or silence).
    pub fn microphone_path(&self) -> &Path {
        &self.source
    }

    /// baresip's pid (also its process group), while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.peer.as_ref().map(Peer::pid)
    }

    /// baresip's output so far (with [`BaresipAccount::sip_trace`], every SIP message).
    pub fn log(&self) -> String {
        self.peer.as_ref().map(Peer::log).unwrap_or_default()
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.peer
            .as_ref()
            .map(|p| p.log_tail(lines))
            .unwrap_or_default()
    }

    /// Polls the log until it contains `needle` (e.g. `Call established`,
    /// `a=sendonly`); fails after `timeout` or when baresip exits, quoting the log.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> io::Result<()> {
        match &self.peer {
            Some(peer) => peer.wait_for_log(needle, timeout),
            None => Err(io::Error::other(format!(
                "baresip {} was stopped",
                self.name
            ))),
        }
    }

    /// Runs a baresip command (as on its console, e.g. `dial`, `hangup`, `listcalls`,
    /// `reginfo`, `callstat`) with optional parameters; returns its output. A command
    /// baresip reports as failed is an error.
    pub fn command(&self, command: &str, params: Option<&str>) -> io::Result<String> {
        let token = format!("obx{}", next_id());
        let mut json = format!(
            "{{\"command\":{},\"token\":{}",
            json_string(command),
            json_string(&token)
        );
        if let Some(params) = params {
            let _ = write!(json, ",\"params\":{}", json_string(params));
        }
        json.push('}');
        let what = match params {
            Some(p) => format!("{command} {p}"),
            None => command.to_owned(),
        };
        let mut stream = self.ctrl.lock().unwrap_or_else(PoisonError::into_inner);
        stream
            .write_all(format!("{}:{json},", json.len()).as_bytes())
            .map_err(|e| self.error(e.kind(), &format!("could not send `{what}`: {e}")))?;
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        let mut state = self.shared.lock();
        loop {
            if let Some(i) = state.responses.iter().position(|r| r.0 == token) {
                let (_, ok, data) = state.responses.remove(i);
                drop(state);
                return if ok {
                    Ok(data)
                } else {
                    Err(self.error(
                        io::ErrorKind::Other,
                        &format!("failed `{what}`: {}", data.trim()),
                    ))
                };
            }
            if let Some(why) = &state.closed {
                let why = why.clone();
                drop(state);
                return Err(self.error(
                    io::ErrorKind::BrokenPipe,
                    &format!("did not answer `{what}`: control connection {why}"),
                ));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                drop(state);
                return Err(self.error(
                    io::ErrorKind::TimedOut,
                    &format!("did not answer `{what}` within {COMMAND_TIMEOUT:?}"),
                ));
            }
            state = self.shared.wait(state, left);
        }
    }

    /// Calls `uri`: a full SIP URI (`sip:102@127.0.0.1:5062`) or a bare user or extension
    /// (`102`), which baresip completes with the account's domain. Returns once the
    /// INVITE is under way; watch for `CALL_ESTABLISHED` or `CALL_CLOSED`.
    pub fn dial(&self, uri: &str) -> io::Result<()> {
        if uri.is_empty() || uri.chars().any(char::is_control) {
            return Err(invalid_input(format!("baresip: cannot dial {uri:?}")));
        }
        self.command("dial", Some(uri)).map(drop)
    }

    /// Answers the ringing incoming call (for phones without auto-answer).
    pub fn accept(&self) -> io::Result<()> {
        self.command("accept", None).map(drop)
    }

    /// Hangs up (or cancels, or rejects) the current call. Without one it does nothing.
    pub fn hangup(&self) -> io::Result<()> {
        self.command("hangup", None).map(drop)
    }

    /// Puts the current call on hold: a re-INVITE with `a=sendonly`.
    pub fn hold(&self) -> io::Result<()> {
        self.command("hold", None).map(drop)
    }

    /// Takes the current call off hold: a re-INVITE with `a=sendrecv`.
    pub fn resume(&self) -> io::Result<()> {
        self.command("resume", None).map(drop)
    }

    /// RTP counters of the current call's audio stream (from the `audio_debug` command).
    /// Fails when there is no call.
    pub fn audio_stats(&self) -> io::Result<AudioStats> {
        let text = self.command("audio_debug", None)?;
        parse_audio_debug(&text).ok_or_else(|| {
            self.error(
                io::ErrorKind::InvalidData,
                &format!("printed audio_debug output the harness cannot read:\n{text}"),
            )
        })
    }

    /// Every event so far, oldest first.
    pub fn events(&self) -> Vec<BaresipEvent> {
        self.shared.lock().events.clone()
    }

    /// The number of events so far: pass it to [`Baresip::wait_for_event_after`] to wait
    /// only for events that come later (the second call's `CALL_CLOSED`, say).
    pub fn mark(&self) -> usize {
        self.shared.lock().events.len()
    }

    /// Waits for an event of type `kind` (`CALL_ESTABLISHED`, `CALL_CLOSED`, ...; see
    /// [`BaresipEvent::kind`]), counting those already received; returns the first one.
    pub fn wait_for_event(&self, kind: &str, timeout: Duration) -> io::Result<BaresipEvent> {
        self.wait_for_event_after(0, kind, timeout)
    }

    /// Waits for an event of type `kind` among those after the first `mark` events (see
    /// [`Baresip::mark`]); returns the first one.
    pub fn wait_for_event_after(
        &self,
        mark: usize,
        kind: &str,
        timeout: Duration,
    ) -> io::Result<BaresipEvent> {
        self.wait_for(mark, kind, timeout, |e| e.kind == kind)
    }

    /// Waits for an event after the first `mark` ones for which `matches` is true;
    /// `what` describes it in the error.
    pub fn wait_for(
        &self,
        mark: usize,
        what: &str,
        timeout: Duration,
        mut matches: impl FnMut(&BaresipEvent) -> bool,
    ) -> io::Result<BaresipEvent> {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        loop {
            if let Some(event) = state.events.iter().skip(mark).find(|e| matches(e)) {
                return Ok(event.clone());
            }
            let failure = if let Some(why) = &state.closed {
                Some((
                    io::ErrorKind::Other,
                    format!("ended its control connection ({why}) before reporting {what}"),
                ))
            } else if Instant::now() >= deadline {
                Some((
                    io::ErrorKind::TimedOut,
                    format!("did not report {what} within {timeout:?}"),
                ))
            } else {
                None
            };
            if let Some((kind, msg)) = failure {
                drop(state);
                return Err(self.error(kind, &msg));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            state = self.shared.wait(state, left);
        }
    }

    /// Whether the latest registration outcome was success: a `REGISTER_OK` newer than
    /// any `REGISTER_FAIL` or `UNREGISTERING`.
    pub fn is_registered(&self) -> bool {
        matches!(
            self.registration(),
            Some(BaresipEvent { kind, .. }) if kind == "REGISTER_OK"
        )
    }

    fn registration(&self) -> Option<BaresipEvent> {
        self.shared
            .lock()
            .events
            .iter()
            .rev()
            .find(|e| {
                matches!(
                    e.kind.as_str(),
                    "REGISTER_OK" | "REGISTER_FAIL" | "UNREGISTERING"
                )
            })
            .cloned()
    }

    /// Waits until the phone is registered ([`Baresip::is_registered`]); fails at once
    /// when its latest attempt failed (`REGISTER_FAIL`, e.g. `403 Forbidden` for a wrong
    /// password), with the reason.
    pub fn wait_registered(&self, timeout: Duration) -> io::Result<()> {
        if self.account.registrar.is_none() {
            return Err(invalid_input(format!(
                "baresip {}: a direct account does not register",
                self.name
            )));
        }
        let event = self.wait_for(0, "a registration outcome", timeout, |e| {
            matches!(e.kind.as_str(), "REGISTER_OK" | "REGISTER_FAIL")
        })?;
        let mut latest = self.registration().unwrap_or(event);
        let deadline = Instant::now() + timeout;
        // A failure may be followed by a success (baresip retries); report the latest.
        while latest.kind != "REGISTER_OK" {
            if latest.kind == "REGISTER_FAIL" || Instant::now() >= deadline {
                return Err(self.error(
                    io::ErrorKind::PermissionDenied,
                    &format!("could not register: {}", latest.summary()),
                ));
            }
            sleep(POLL);
            latest = self.registration().unwrap_or(latest);
        }
        Ok(())
    }

    /// This phone's recordings so far, one per call, oldest first. baresip names them by
    /// the second the call's audio started, so two calls starting within one second
    /// share (overwrite) one recording.
    pub fn recordings(&self) -> io::Result<Vec<Recording>> {
        let mut heard: Vec<PathBuf> = fs::read_dir(&self.rec_dir)?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("dump-") && n.ends_with("-dec.wav"))
            })
            .collect();
        heard.sort();
        Ok(heard
            .into_iter()
            .map(|heard| {
                let name = heard
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default()
                    .replace("-dec.wav", "-enc.wav");
                Recording {
                    sent: heard.with_file_name(name),
                    heard,
                }
            })
            .collect())
    }

    /// The newest call's recordings, once baresip has finished them (it completes a
    /// file's header when the call's audio stops, a moment after `CALL_CLOSED`). Waits
    /// up to `timeout` for a recording to exist and be finished.
    pub fn last_recording(&self, timeout: Duration) -> io::Result<Recording> {
        self.last_recording_when(timeout, |rec| {
            wav_finished(&rec.heard) && wav_finished(&rec.sent)
        })
    }

    /// What the phone heard in its last call, once that one file is finished: for a test
    /// that needs only the far end's side (baresip may close the file it sent later).
    pub fn last_heard(&self, timeout: Duration) -> io::Result<PathBuf> {
        self.last_recording_when(timeout, |rec| wav_finished(&rec.heard))
            .map(|rec| rec.heard)
    }

    fn last_recording_when(
        &self,
        timeout: Duration,
        finished: impl Fn(&Recording) -> bool,
    ) -> io::Result<Recording> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = self.recordings()?.pop();
            if let Some(rec) = &last
                && finished(rec)
            {
                return Ok(rec.clone());
            }
            if Instant::now() >= deadline {
                let what = match last {
                    Some(rec) => format!(
                        "did not finish recording {} within {timeout:?} (is the call still up?)",
                        rec.heard.display()
                    ),
                    None => format!("recorded no call within {timeout:?}"),
                };
                return Err(self.error(io::ErrorKind::TimedOut, &what));
            }
            sleep(POLL);
        }
    }

    /// Stops baresip: SIGTERM (it hangs up its calls and unregisters), then after a grace
    /// period SIGKILL to its process group. Returns its exit status.
    pub fn stop(mut self) -> io::Result<ExitStatus> {
        let status = match self.peer.take() {
            Some(peer) => peer.stop(STOP_GRACE),
            None => Err(io::Error::other(format!(
                "baresip {}: already stopped",
                self.name
            ))),
        };
        self.close_ctrl();
        status
    }

    fn close_ctrl(&mut self) {
        let _ = self
            .ctrl
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .shutdown(Shutdown::Both);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }

    fn events_tail(&self) -> String {
        let state = self.shared.lock();
        let skip = state.events.len().saturating_sub(TAIL_EVENTS);
        let mut out = String::new();
        for e in &state.events[skip..] {
            let _ = writeln!(out, "  {}", e.summary());
        }
        if out.is_empty() {
            out.push_str("  (none)\n");
        }
        out
    }

    fn error(&self, kind: io::ErrorKind, what: &str) -> io::Error {
        let (pid, log_path) = match &self.peer {
            Some(p) => (p.pid().to_string(), p.log_path().display().to_string()),
            None => ("stopped".to_owned(), "its log".to_owned()),
        };
        io::Error::new(
            kind,
            format!(
                "baresip {} (pid {pid}) {what}; its last events:\n{}last lines of {log_path}:\n{}",
                self.name,
                self.events_tail(),
                self.log_tail(TAIL_LINES)
            ),
        )
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        if panicking() {
            eprintln!(
                "--- testkit: baresip {}, last events ---\n{}---",
                self.name,
                self.events_tail()
            );
        }
        // Dropping the peer while panicking prints its log's tail.
        if let Some(peer) = self.peer.take() {
            let pid = peer.pid();
            if let Err(e) = peer.stop(STOP_GRACE) {
                eprintln!("testkit: stopping baresip {} (pid {pid}): {e}", self.name);
            }
        }
        self.close_ctrl();
    }
}

/// Writes the microphone file: the account's WAV in phone format (converted with sox if
/// it is not) padded with silence to `max_call` (unless the call should end with it), or
/// `max_call` of silence.
fn write_source(account: &BaresipAccount, root: &Path, source: &Path) -> io::Result<()> {
    let max = (account.max_call.as_secs_f64() * f64::from(PHONE_RATE)) as usize;
    let mut samples = match &account.play {
        None => Vec::new(),
        Some(path) => {
            let wav = match audio::read_wav(path) {
                Ok(wav) if wav.rate == PHONE_RATE => wav,
                _ => {
                    let converted = root.join("converted.wav");
                    audio::to_phone_wav(path, &converted)?;
                    audio::read_wav(&converted)?
                }
            };
            if wav.samples.is_empty() {
                return Err(invalid_input(format!(
                    "baresip: {} holds no audio",
                    path.display()
                )));
            }
            wav.samples
        }
    };
    if !(account.play.is_some() && account.hang_up_after_playing) && samples.len() < max {
        samples.resize(max, 0);
    }
    audio::write_wav(source, PHONE_RATE, &samples)
}

/// baresip's config takes paths up to the end of the line (or a `#`), and the account
/// line up to `;` or `,`.
fn check_path(path: &Path) -> io::Result<()> {
    let text = path.to_string_lossy();
    if text
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || "#;,\"<>".contains(c))
    {
        return Err(invalid_input(format!(
            "baresip: cannot use path {text:?} (whitespace or #;,\"<> in it); set TMPDIR to a plain directory"
        )));
    }
    Ok(())
}

/// baresip's `config`: loopback only, modules for G.711, aufile in, sndfile recording,
/// aubridge out, menu commands and ctrl_tcp; nothing else (no stdio UI, no NAT helpers,
/// no video).
fn config(account: &BaresipAccount, sip: SocketAddr, ctrl: SocketAddr, rec_dir: &Path) -> String {
    let rtp_ports = match account.rtp_ports {
        Some((first, last)) => format!("rtp_ports\t\t{first}-{last}\n"),
        None => String::new(),
    };
    format!(
        "# baresip 1.x config for one officebox test phone (crates/testkit baresip.rs).
poll_method\t\tepoll
sip_listen\t\t{sip}
call_local_timeout\t120
call_max_calls\t\t4

# Audio: the account sets its source (aufile) and player (nowhere).
audio_player\t\t{NOWHERE}
audio_alert\t\t{NOWHERE}
audio_source\t\taufile,/dev/null
ausrc_srate\t\t8000
auplay_srate\t\t8000
ausrc_channels\t\t1
auplay_channels\t\t1
audio_level\t\tno
ausrc_format\t\ts16
auplay_format\t\ts16
auenc_format\t\ts16
audec_format\t\ts16
audio_buffer\t\t20-160

rtp_tos\t\t\t0
{rtp_ports}rtcp_mux\t\tno
jitter_buffer_delay\t5-10
rtp_stats\t\tno

# Only the loopback address: SDP and Contact carry it, RTP leaves from it.
net_interface\t\t{ip}
# No name is ever looked up (all URIs hold addresses); if one were, ask loopback.
dns_server\t\t127.0.0.1:53

module_path\t\t{MODULE_PATH}
module\t\t\tg711.so
module\t\t\tsndfile.so
module\t\t\taufile.so
module\t\t\taubridge.so
module_tmp\t\tuuid.so
module_app\t\tcontact.so
module_app\t\tmenu.so
module_app\t\tctrl_tcp.so

ctrl_tcp_listen\t\t{ctrl}
snd_path\t\t{rec}
statmode_default\toff
menu_bell\t\tno
",
        ip = account.local_ip,
        rec = rec_dir.display(),
    )
}

enum StartError {
    /// baresip could not bind a port we picked (someone took it meanwhile).
    PortTaken(io::Error),
    Other(io::Error),
}

/// Waits until baresip says it is ready and accepts the control connection.
fn wait_ready(peer: &Peer, ctrl: SocketAddr) -> Result<TcpStream, StartError> {
    let deadline = Instant::now() + START_TIMEOUT;
    let fail = |what: String| {
        let log = peer.log();
        let err = io::Error::other(format!(
            "baresip {} (pid {}) {what}; last lines of {}:\n{}",
            peer.name(),
            peer.pid(),
            peer.log_path().display(),
            tail(&log, TAIL_LINES)
        ));
        if log.contains("Address already in use") {
            StartError::PortTaken(err)
        } else {
            StartError::Other(err)
        }
    };
    loop {
        let exited = peer.try_wait().map_err(StartError::Other)?;
        let log = peer.log();
        if let Some(status) = exited {
            return Err(fail(format!("exited ({status}) while starting")));
        }
        if log.contains("Address already in use") {
            return Err(fail("could not bind a port".to_owned()));
        }
        if log.contains("baresip is ready.") {
            match TcpStream::connect_timeout(&ctrl, Duration::from_secs(1)) {
                Ok(stream) => {
                    stream.set_nodelay(true).map_err(StartError::Other)?;
                    return Ok(stream);
                }
                Err(e) if Instant::now() >= deadline => {
                    return Err(fail(format!("did not accept a connection on {ctrl}: {e}")));
                }
                Err(_) => {}
            }
        }
        if Instant::now() >= deadline {
            return Err(fail(format!("was not ready within {START_TIMEOUT:?}")));
        }
        sleep(POLL);
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Whether a WAV file's header is final: sndfile writes a RIFF size of 8 when it opens
/// the file and the real one (at least 36) when it closes it.
fn wav_finished(path: &Path) -> bool {
    let mut head = [0u8; 8];
    fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && &head[0..4] == b"RIFF"
        && u32::from_le_bytes([head[4], head[5], head[6], head[7]]) >= 36
}

/// A TCP port on `ip` that was free a moment ago.
fn free_tcp_port(ip: Ipv4Addr) -> io::Result<u16> {
    Ok(TcpListener::bind((ip, 0))?.local_addr()?.port())
}

/// A port P on `ip` free a moment ago for UDP and TCP, with P+1 free for TCP: baresip
/// listens on all three (UDP, TCP and TLS).
fn free_sip_port(ip: Ipv4Addr) -> io::Result<u16> {
    for _ in 0..50 {
        let tcp = TcpListener::bind((ip, 0))?;
        let port = tcp.local_addr()?.port();
        if port == u16::MAX {
            continue;
        }
        if UdpSocket::bind((ip, port)).is_ok() && TcpListener::bind((ip, port + 1)).is_ok() {
            return Ok(port);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        format!("no free SIP port (UDP+TCP, and TCP one above) on {ip}"),
    ))
}

/// baresip prints `baresip vX.Y.Z ...` first; this config is for 1.x.
fn check_baresip_version() -> io::Result<()> {
    let out = Command::new("baresip")
        .arg("-h")
        .env_clear()
        .env("PATH", PATH)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("could not run `baresip -h`: {e}")))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let version = text
        .split_whitespace()
        .skip_while(|w| *w != "baresip")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    if version.starts_with("v1.") {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "the baresip harness writes a baresip 1.x config; `baresip -h` says {:?}",
                text.lines().next().unwrap_or_default()
            ),
        ))
    }
}

/// Starts the thread that files what baresip sends on the control connection.
fn spawn_reader(name: &str, stream: &TcpStream) -> io::Result<(Arc<Shared>, JoinHandle<()>)> {
    let shared = Arc::new(Shared::default());
    let reading = stream.try_clone()?;
    let for_reader = Arc::clone(&shared);
    let reader = thread::Builder::new()
        .name(format!("baresip-{}-ctrl", sanitize(name)))
        .spawn(move || read_ctrl(reading, &for_reader))?;
    Ok((shared, reader))
}

/// Reads netstrings off the control connection until it ends, filing events and
/// answers in `shared`.
fn read_ctrl(mut stream: TcpStream, shared: &Shared) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let why = loop {
        match stream.read(&mut chunk) {
            Ok(0) => break "closed by baresip".to_owned(),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => break format!("failed: {e}"),
        }
        let mut failed = None;
        loop {
            match take_netstring(&mut buf) {
                Ok(Some(message)) => file_message(shared, &message),
                Ok(None) => break,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failed {
            break format!("broke the netstring protocol: {e}");
        }
    };
    shared.lock().closed = Some(why);
    shared.changed.notify_all();
}

fn file_message(shared: &Shared, message: &str) {
    let Some(Json::Obj(fields)) = parse_json(message) else {
        return;
    };
    let flag = |key: &str| {
        fields
            .iter()
            .any(|(k, v)| k == key && *v == Json::Bool(true))
    };
    let mut state = shared.lock();
    if flag("event") {
        state.events.push(BaresipEvent::from_json(message, &fields));
    } else if flag("response") {
        let get = |key: &str| {
            fields
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        let token = get("token")
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let ok = get("ok") == Some(Json::Bool(true));
        let data = get("data")
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        state.responses.push((token, ok, data));
    }
    drop(state);
    shared.changed.notify_all();
}

/// Takes one complete netstring (`LEN:DATA,`) off the front of `buf`, if there is one.
fn take_netstring(buf: &mut Vec<u8>) -> Result<Option<String>, String> {
    let Some(colon) = buf.iter().position(|&b| b == b':') else {
        if buf.len() > 10 || buf.iter().any(|b| !b.is_ascii_digit()) {
            return Err(format!("bad length {:?}", String::from_utf8_lossy(buf)));
        }
        return Ok(None);
    };
    let digits = &buf[..colon];
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(format!("bad length {:?}", String::from_utf8_lossy(digits)));
    }
    let len: usize = String::from_utf8_lossy(digits)
        .parse()
        .map_err(|e| format!("bad length: {e}"))?;
    if len > MAX_NETSTRING {
        return Err(format!("{len}-byte message"));
    }
    let end = colon + 1 + len;
    if buf.len() <= end {
        return Ok(None);
    }
    if buf[end] != b',' {
        return Err("no comma after a message".to_owned());
    }
    let message = String::from_utf8_lossy(&buf[colon + 1..end]).into_owned();
    buf.drain(..=end);
    Ok(Some(message))
}

/// A JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Just enough JSON for ctrl_tcp's messages.
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }
}

fn parse_json(text: &str) -> Option<Json> {
    let mut p = JsonParser {
        s: text.as_bytes(),
        at: 0,
    };
    let value = p.value(0)?;
    p.ws();
    (p.at == p.s.len()).then_some(value)
}

struct JsonParser<'a> {
    s: &'a [u8],
    at: usize,
}

impl JsonParser<'_> {
    fn ws(&mut self) {
        while self.at < self.s.len() && matches!(self.s[self.at], b' ' | b'\t' | b'\n' | b'\r') {
            self.at += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        self.ws();
        if self.peek() == Some(b) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn literal(&mut self, word: &str, value: Json) -> Option<Json> {
        if self.s[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            Some(value)
        } else {
            None
        }
    }

    fn value(&mut self, depth: usize) -> Option<Json> {
        if depth > 32 {
            return None;
        }
        self.ws();
        match self.peek()? {
            b'{' => {
                self.at += 1;
                let mut fields = Vec::new();
                if self.eat(b'}') {
                    return Some(Json::Obj(fields));
                }
                loop {
                    self.ws();
                    let key = self.string()?;
                    if !self.eat(b':') {
                        return None;
                    }
                    fields.push((key, self.value(depth + 1)?));
                    if self.eat(b'}') {
                        return Some(Json::Obj(fields));
                    }
                    if !self.eat(b',') {
                        return None;
                    }
                }
            }
            b'[' => {
                self.at += 1;
                let mut items = Vec::new();
                if self.eat(b']') {
                    return Some(Json::Arr(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    if self.eat(b']') {
                        return Some(Json::Arr(items));
                    }
                    if !self.eat(b',') {
                        return None;
                    }
                }
            }
            b'"' => self.string().map(Json::Str),
            b't' => self.literal("true", Json::Bool(true)),
            b'f' => self.literal("false", Json::Bool(false)),
            b'n' => self.literal("null", Json::Null),
            _ => {
                let start = self.at;
                while self
                    .peek()
                    .is_some_and(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
                {
                    self.at += 1;
                }
                std::str::from_utf8(&self.s[start..self.at])
                    .ok()?
                    .parse()
                    .ok()
                    .map(Json::Num)
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.s.get(self.at..self.at + 4)?;
        self.at += 4;
        u32::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
    }

    fn string(&mut self) -> Option<String> {
        if self.peek()? != b'"' {
            return None;
        }
        self.at += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let b = self.peek()?;
            self.at += 1;
            match b {
                b'"' => return Some(String::from_utf8_lossy(&out).into_owned()),
                b'\\' => {
                    let e = self.peek()?;
                    self.at += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&hi)
                                && self.s[self.at..].starts_with(b"\\u")
                            {
                                self.at += 2;
                                let lo = self.hex4()?;
                                0x10000 + ((hi - 0xD800) << 10) + (lo.wrapping_sub(0xDC00) & 0x3FF)
                            } else {
                                hi
                            };
                            char::from_u32(code).unwrap_or('\u{FFFD}')
                        }
                        _ => return None,
                    };
                    let mut tmp = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
                }
                b => out.push(b),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ctrl_tcp_event_json() {
        let text = r#"{"event":true,"type":"CALL_RTCP","class":"call","accountaor":"sip:101@127.0.0.1:35061","direction":"outgoing","peeruri":"sip:102@127.0.0.1:35064","id":"15d930fa","param":"audio","rtcp_stats":{"tx":{"sent":0,"lost":0,"jit":0},"rx":{"sent":0,"lost":-1,"jit":1.5e0}},"rtt":0}"#;
        let Some(Json::Obj(fields)) = parse_json(text) else {
            panic!("not an object");
        };
        let e = BaresipEvent::from_json(text, &fields);
        assert_eq!(e.kind, "CALL_RTCP");
        assert_eq!(e.class, "call");
        assert_eq!(e.account, "sip:101@127.0.0.1:35061");
        assert_eq!(e.direction, "outgoing");
        assert_eq!(e.peer_uri, "sip:102@127.0.0.1:35064");
        assert_eq!(e.call_id, "15d930fa");
        assert_eq!(e.param, "audio");
        assert_eq!(e.summary(), "CALL_RTCP sip:102@127.0.0.1:35064 audio");
    }

    #[test]
    fn parses_escapes_and_rejects_junk() {
        assert_eq!(
            parse_json(
                r#"{"data":"a\n\u001B[32mOK\u001B[;m \/ \"q\" \ud83d\ude00 é","ok":false,"x":null,"l":[1,[]]}"#
            ),
            Some(Json::Obj(vec![
                (
                    "data".to_owned(),
                    Json::Str("a\n\u{1b}[32mOK\u{1b}[;m / \"q\" 😀 é".to_owned())
                ),
                ("ok".to_owned(), Json::Bool(false)),
                ("x".to_owned(), Json::Null),
                (
                    "l".to_owned(),
                    Json::Arr(vec![Json::Num(1.0), Json::Arr(vec![])])
                ),
            ]))
        );
        for bad in [
            "",
            "{",
            r#"{"a":}"#,
            r#"{"a":1,}"#,
            r#"{"a":"\x"}"#,
            "{} x",
            "tru",
        ] {
            assert_eq!(parse_json(bad), None, "{bad:?}");
        }
        let s = "dial sip:x\"y\\z\n\u{1}";
        assert_eq!(parse_json(&json_string(s)), Some(Json::Str(s.to_owned())));
    }

    #[test]
    fn splits_netstrings() {
        let mut buf = b"5:hello,3:abc,2:x".to_vec();
        assert_eq!(take_netstring(&mut buf), Ok(Some("hello".to_owned())));
        assert_eq!(take_netstring(&mut buf), Ok(Some("abc".to_owned())));
        assert_eq!(take_netstring(&mut buf), Ok(None));
        buf.extend_from_slice(b"y,");
        assert_eq!(take_netstring(&mut buf), Ok(Some("xy".to_owned())));
        assert!(buf.is_empty());
        assert_eq!(take_netstring(&mut buf), Ok(None));
        assert!(take_netstring(&mut b"3:abcd".to_vec()).is_err());
        assert!(take_netstring(&mut b"x:a,".to_vec()).is_err());
        assert!(take_netstring(&mut b"99999999999".to_vec()).is_err());
    }

    #[test]
    fn account_lines() {
        let src = Path::new("/tmp/obx-x/microphone.wav");
        let registrar: SocketAddr = ([127, 0, 0, 1], 5060).into();
        let acc = BaresipAccount::new("101", registrar)
            .auth("alice", "demo-alice")
            .auto_answer(true);
        acc.check().unwrap();
        assert_eq!(
            acc.account_line(40000, src),
            "<sip:101@127.0.0.1:5060>;auth_user=alice;auth_pass=demo-alice;\
             regint=3600;answermode=auto;audio_codecs=PCMU,PCMA;\
             audio_source=aufile,/tmp/obx-x/microphone.wav;audio_player=aubridge,obx-nowhere"
        );
        let acc = BaresipAccount::new("101", registrar)
            .domain("office.test")
            .transport(SipTransport::Tcp)
            .codecs(&[Codec::Pcma]);
        assert_eq!(
            acc.account_line(40000, src),
            "<sip:101@office.test;transport=tcp>;regint=3600;\
             outbound=\"sip:127.0.0.1:5060;transport=tcp\";answermode=manual;\
             audio_codecs=PCMA;audio_source=aufile,/tmp/obx-x/microphone.wav;\
             audio_player=aubridge,obx-nowhere"
        );
        let acc = BaresipAccount::direct("102");
        assert!(
            acc.account_line(40000, src)
                .starts_with("<sip:102@127.0.0.1:40000>;regint=0;answermode=manual;")
        );
        assert!(BaresipAccount::direct("1 2").check().is_err());
        assert!(
            BaresipAccount::direct("1")
                .auth("a", "p;w")
                .check()
                .is_err()
        );
        assert!(BaresipAccount::direct("1").codecs(&[]).check().is_err());
        assert!(
            BaresipAccount::direct("1")
                .local_ip(Ipv4Addr::new(192, 0, 2, 1))
                .check()
                .is_err()
        );
    }

    #[test]
    fn config_is_loopback_only() {
        let acc = BaresipAccount::direct("1").rtp_ports(30000, 30099);
        let text = config(
            &acc,
            ([127, 0, 0, 1], 5070).into(),
            ([127, 0, 0, 1], 4444).into(),
            Path::new("/tmp/r"),
        );
        for want in [
            "sip_listen\t\t127.0.0.1:5070\n",
            "ctrl_tcp_listen\t\t127.0.0.1:4444\n",
            "net_interface\t\t127.0.0.1\n",
            "rtp_ports\t\t30000-30099\n",
            "snd_path\t\t/tmp/r\n",
        ] {
            assert!(text.contains(want), "{want:?} missing from\n{text}");
        }
        let modules: Vec<&str> = text.lines().filter(|l| l.starts_with("module")).collect();
        assert!(modules.len() >= 7, "{modules:?}");
        for unwanted in ["stdio", "stun", "turn", "ice", "alsa", "v4l2", "account"] {
            assert!(
                modules.iter().all(|m| !m.contains(unwanted)),
                "{unwanted:?} in {modules:?}"
            );
        }
        assert!(!text.contains("alsa") && !text.contains("video_"), "{text}");
    }

    #[test]
    fn reads_audio_debug() {
        let text = "\n--- Audio stream ---\n tx:   encode: PCMA 8000Hz/1ch ptime=20ms S16LE\n\
             audio rx pipeline:    aubridge <--- PCMA\n audio dir=recvonly pt_enc=8\n\
             local: 0.0.0.0:30068, remote: 127.0.0.1:30010/127.0.0.1:30011\n\
             ----- RTCP Session: -----\n  member 0xfba865e0: lost=0 Jitter=0.0ms RTT=0.0ms\n\
                             IP=127.0.0.1:30068 psent=0 rcvd=50\n  TX: packets=60, octets=9600\n";
        assert_eq!(
            parse_audio_debug(text),
            Some(AudioStats {
                sent: 60,
                received: 50,
                direction: "recvonly".to_owned()
            })
        );
        assert_eq!(parse_audio_debug("command not found"), None);
    }

    #[test]
    fn finished_wav_headers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.wav");
        fs::write(&p, audio::wav_bytes(8000, &[1, 2])).unwrap();
        assert!(wav_finished(&p));
        let mut open = audio::wav_bytes(8000, &[]);
        open[4..8].copy_from_slice(&8u32.to_le_bytes());
        fs::write(&p, open).unwrap();
        assert!(!wav_finished(&p));
        assert!(!wav_finished(&dir.path().join("none.wav")));
    }
}
