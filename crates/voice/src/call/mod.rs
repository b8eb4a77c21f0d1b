//! Calls between extensions: a back-to-back user agent (B2BUA). The caller's INVITE ends
//! here (leg A); officebox places its own INVITE to each phone of the callee (leg B, one
//! fork per registered phone), and joins the legs when one answers: the other forks are
//! cancelled, and audio flows through the media relay ([`crate::rtp`]) because both
//! sides' SDP is rewritten to point at the box. CANCEL, BYE from either side, re-INVITE
//! (hold and resume) in either direction, busy (486), no answer within
//! `no_answer_timeout` (480), unreachable phones (408).
//!
//! One task per call owns all of its state (the [`Call`] struct below: start there); the
//! server hands it every message with its Call-ID (leg A's or leg B's). Over UDP the task
//! does the transaction layer's work (RFC 3261 section 17): INVITEs and BYEs are
//! retransmitted until answered, final responses to the caller's INVITE until ACKed,
//! each with timer doubling from 500 ms to 4 s and a 32 s limit.
//!
//! - [`leg`]: leg A, the caller's dialog (the box is its called party).
//! - [`fork`]: leg B, the box's INVITE to each of the callee's phones.
//! - [`group`]: a ring group's members, stage by stage (all at once, or hunt).
//! - [`forward`]: the callee's forwarding when busy or not answered.
//! - [`lines`]: an outside call's trunks, in order (challenge, failover).
//! - [`reinvite`]: re-INVITEs carried from one leg to the other; UPDATEs answered.
//! - [`t38`]: a fax call the box answered going over to T.38.
//! - [`hold`]: hold with music: the box answers the holder and plays to the held side.
//! - [`timers`]: retransmissions, transaction timeouts, and no answer.
//! - [`handoff`]: the box answering instead (voicemail, the voicemail menu, or the
//!   auto attendant).
//! - [`transfer`]: where the auto attendant sends the call: ringing on with ringback,
//!   then the legs joined.
//! - [`record`]: keys pressed in a call, and recording it on demand (the record code).
//! - [`refer`]: blind transfer (REFER) by either side of an answered call.
//! - [`page`]: group paging: many phones answer and hear the caller.
//! - [`park`]: call park (a transfer to the park extension) and pickup; the calls join
//!   as an attended transfer's do.
//! - [`bridge`]: attended transfer (REFER with Replaces): two calls joined by their
//!   relays, and their links.
//! - [`threeway`]: a three-way call made from a transfer: two calls' parties and their
//!   user in a room of their own.

mod bridge;
mod fork;
mod forward;
mod group;
mod handoff;
mod hold;
mod leg;
mod lines;
mod page;
pub mod park;
mod record;
mod refer;
mod reinvite;
mod t38;
mod threeway;
mod timers;
mod transfer;

#[cfg(test)]
mod tests;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use officebox_store::{CallEvent, Disposition, NewCall, unix_now};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::attendant::AttendantSetup;
use crate::menu;
use crate::now_unix;
use crate::registrar::Binding;
use crate::rtp::{self, Peers, Ports};
use crate::sdp;
use crate::sip::{Message, StartLine, Transport};

pub use bridge::Link;
use fork::Fork;
use handoff::Recording;
pub use handoff::VoicemailSetup;
use leg::CallerLeg;
use reinvite::ReInvite;
use timers::Retransmit;

/// A message for a call, with where it came from.
#[derive(Debug)]
pub struct Incoming {
    pub msg: Message,
    pub source: SocketAddr,
    pub transport: Transport,
}

/// How a call sends SIP: the server's sockets (a fake one in the tests).
pub trait Wire: Send + Sync {
    fn send(&self, bytes: Vec<u8>, to: SocketAddr, transport: Transport);
    /// Our SIP address, for Via, Contact and SDP.
    fn local(&self) -> SocketAddr;
    /// Our address as `peer` reaches us (a provider on the WAN sees the WAN address):
    /// for Via, Contact and SDP towards it.
    fn local_for(&self, _peer: SocketAddr) -> IpAddr {
        self.local().ip()
    }
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

/// Whom leg B calls.
#[derive(Debug, Clone)]
pub enum Callee {
    /// An office user's registered phones, rung at once (none: voicemail answers).
    Phones(Vec<Binding>),
    /// A ring group: its stages one after the other ([`group`]); then the voicemail in
    /// the setup, if any.
    Group(Vec<Stage>),
    /// An outside number, over trunks tried in order: the next when one fails.
    Outside(Vec<OutsideLine>),
    /// The auto attendant: the box answers, and the caller's key chooses where the call
    /// goes on ([`Setup::router`] says what that is).
    Attendant(Box<AttendantSetup>),
    /// A feature code done: the box answers, says what was done, and hangs up.
    Announcement(Arc<Vec<i16>>),
    /// A transfer's target that parks the call ([`park`]).
    Park(Box<park::ParkSetup>),
    /// A park place dialled, or a pickup code: the party another call holds, taken over
    /// its links.
    Retrieve(mpsc::Sender<Link>),
    /// The conference extension: the box answers and the caller joins the room.
    Conference(Box<crate::conference::ConferenceSetup>),
    /// A page: these users' phones are called and hear the caller ([`page`]).
    Page(Vec<(String, Binding)>),
    /// A fax machine of the box's: the box answers as one and mails the pages.
    Fax(Box<crate::fax::FaxSetup>),
}

/// Where a destination leads now (the server's view of the config and the phones
/// registered), for a call the attendant sends on.
pub trait Router: Send + Sync {
    fn route(&self, to: &officebox_config::dialplan::Destination) -> Routed;

    /// Where office user `by` (whose phone is at `source`) may put `transferee` through
    /// to by dialling `dialled`: an extension, or an outside number as an outside call of
    /// theirs (their routes and limits; the slot it holds comes back with it). Also
    /// where `by`'s calls go when forwarded on busy or no answer.
    fn transfer(&self, by: &str, source: IpAddr, dialled: &str, transferee: &Transferee) -> Routed;
}

/// The party a transfer puts through, as the target's phone and voicemail show it.
#[derive(Debug, Clone)]
pub struct Transferee {
    pub name: String,
    pub number: String,
}

/// The server's routing of a call's messages by Call-ID: a call that starts a new leg B
/// (a transfer) has its Call-ID routed to the call's inbox too.
pub trait Inbox: Send + Sync {
    fn route(&self, call_id: &str);
    /// The links of the live call known by `call_id`, if there is one.
    fn find(&self, call_id: &str) -> Option<mpsc::Sender<Link>>;
    /// This call's own links (given to a partner call).
    fn links(&self) -> mpsc::Sender<Link>;
    /// The links of every other live call (for a three-way call: each is asked whether
    /// it is the user's).
    fn others(&self) -> Vec<mpsc::Sender<Link>> {
        Vec::new()
    }
    /// The call rings office user `login`'s phones now (`None`: no more), for pickup.
    fn ringing(&self, _login: Option<&str>) {}
}

/// What [`Router::route`] found (made once per call sent on, and taken apart at once:
/// its size does not matter).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Routed {
    /// Ring this.
    Ring(Box<Ring>),
    /// Nowhere to go: the call ends (busy, no such extension, ...).
    Refused(u16),
}

/// What a call rings: `callee` (shown as `ext`, whose login is `login`), with
/// `voicemail` behind, where the callee's forwarding sends it when busy or not answered,
/// and the slots it holds (an outside call's).
#[derive(Debug)]
pub struct Ring {
    pub callee: Callee,
    pub login: String,
    pub ext: String,
    pub voicemail: Option<VoicemailSetup>,
    pub forwards: Option<Forwards>,
    pub held: Vec<Slot>,
    /// Where the call goes when its line does not carry it (another site's `fallback`).
    pub fallback: Option<officebox_config::dialplan::Destination>,
}

impl Routed {
    /// Ringing `callee` (no forwarding, nothing held).
    pub fn ring(
        callee: Callee,
        login: String,
        ext: String,
        voicemail: Option<VoicemailSetup>,
    ) -> Routed {
        Routed::Ring(Box::new(Ring {
            callee,
            login,
            ext,
            voicemail,
            forwards: None,
            held: Vec::new(),
            fallback: None,
        }))
    }
}

/// Where an office user's calls go when their phones are busy, or nobody answers: what
/// they dialled to set it (an extension, or a number called as an outside call of theirs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forwards {
    pub by: String,
    pub busy: Option<String>,
    pub no_answer: Option<String>,
}

/// Phones rung together in a ring group, by their users' logins, and outside numbers
/// (each by the first of its trunks that has room), and for how long.
#[derive(Debug, Clone)]
pub struct Stage {
    pub phones: Vec<(String, Binding)>,
    pub outside: Vec<Vec<OutsideLine>>,
    pub ring: Duration,
}

impl Stage {
    /// Whether it rings anything at all.
    pub fn is_empty(&self) -> bool {
        self.phones.is_empty() && self.outside.is_empty()
    }
}

/// One trunk an outside call may leave by, as the provider is to be asked.
#[derive(Debug, Clone)]
pub struct OutsideLine {
    /// The trunk's name (logs, the call log).
    pub trunk: String,
    /// The Request-URI: the number at the provider.
    pub uri: String,
    /// From (without its tag) and To of leg B.
    pub from: String,
    pub to: String,
    /// P-Asserted-Identity, when the trunk sends one.
    pub identity: Option<String>,
    /// The user part of our Contact (the account, so the provider knows the line).
    pub contact_user: String,
    /// Where the provider is reached (the outbound proxy, if any), and how.
    pub peer: SocketAddr,
    pub transport: Transport,
    /// The account's digest credentials, for the provider's challenge.
    pub credentials: Option<Credentials>,
    /// The trunk's calls at once (0: no limit): a full trunk is skipped.
    pub max_calls: u32,
    /// The codecs offered to the provider, in order (empty: whatever the caller offers).
    pub codecs: Vec<String>,
}

/// Recording a call on demand: the code an office user keys in during the call (again:
/// stop), and where the recording is delivered (their mailbox, like a voicemail).
#[derive(Debug, Clone)]
pub struct RecordSetup {
    pub code: String,
    pub data_dir: std::path::PathBuf,
    pub db: Arc<std::sync::Mutex<officebox_store::Db>>,
    /// The box's host name, for Message-IDs.
    pub host: String,
}

/// A trunk account's digest credentials.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Each trunk's last digest challenge, shared by its calls: a new call answers it up front
/// (the next nonce count), which saves the provider's 407 and a second INVITE per call
/// while the provider accepts the nonce; when it does not, its new challenge is answered
/// as usual and kept instead.
#[derive(Debug, Default)]
pub struct Nonces {
    last: std::sync::Mutex<std::collections::HashMap<String, Nonce>>,
}

/// A challenge kept for a trunk: which header answers it, and how often it was answered.
#[derive(Debug, Clone)]
struct Nonce {
    challenge: crate::trunk::auth::Challenge,
    header: &'static str,
    answered: u32,
}

/// Nonces answered this often are not used again (the provider would soon say stale).
const NONCE_USES: u32 = 1000;

impl Nonces {
    /// Keeps `challenge` (answered once already) for `trunk`'s next calls.
    fn keep(&self, trunk: &str, challenge: crate::trunk::auth::Challenge, header: &'static str) {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(
                trunk.to_string(),
                Nonce {
                    challenge,
                    header,
                    answered: 1,
                },
            );
    }

    /// The challenge to answer up front for `trunk`, its header and how often it was
    /// answered before (counted now).
    fn next(&self, trunk: &str) -> Option<(crate::trunk::auth::Challenge, &'static str, u32)> {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = last.get_mut(trunk)?;
        if n.answered >= NONCE_USES {
            last.remove(trunk);
            return None;
        }
        n.answered += 1;
        Some((n.challenge.clone(), n.header, n.answered - 1))
    }
}

/// Calls at once per name (a trunk's, a user's outside calls), taken and given back by
/// the calls themselves.
#[derive(Debug, Default)]
pub struct Slots {
    used: std::sync::Mutex<std::collections::HashMap<String, u32>>,
}

/// One call counted under a name in [`Slots`] until it drops.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<Slots>,
    name: String,
}

impl Slots {
    /// Counts one more call under `name`, unless `max` (0: no limit) are there already.
    pub fn take(self: &Arc<Self>, name: &str, max: u32) -> Option<Slot> {
        let mut used = self
            .used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = used.entry(name.to_string()).or_insert(0);
        if max > 0 && *n >= max {
            return None;
        }
        *n += 1;
        Some(Slot {
            slots: Arc::clone(self),
            name: name.to_string(),
        })
    }

    /// Calls counted under `name` now.
    pub fn count(&self, name: &str) -> u32 {
        self.used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut used = self
            .slots
            .used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = used.get_mut(&self.name) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                used.remove(&self.name);
            }
        }
    }
}

/// Everything a call needs from the server.
pub struct Setup {
    pub wire: Arc<dyn Wire>,
    pub ports: Arc<Ports>,
    pub parties: Parties,
    pub callee: Callee,
    /// The server's count of calls per trunk (and per user), and what this call holds
    /// there for its whole length (a user's outside calls at once, say).
    pub slots: Arc<Slots>,
    pub held: Vec<Slot>,
    /// The trunks' last digest challenges (see [`Nonces`]).
    pub nonces: Arc<Nonces>,
    pub no_answer: Duration,
    /// The Call-ID of leg B, already routed to this call's inbox.
    pub b_call_id: String,
    pub status: watch::Sender<Status>,
    /// Where unanswered calls leave their message.
    pub voicemail: Option<VoicemailSetup>,
    /// Where the callee forwards calls when busy or not answered (instead of voicemail).
    pub forwards: Option<Forwards>,
    /// Where an outside call goes when every line failed to carry it (a site's box
    /// that does not answer: its `fallback`), resolved by the router.
    pub fallback: Option<officebox_config::dialplan::Destination>,
    /// A call to the voicemail extension: the box answers with the menu.
    pub menu: Option<menu::MenuSetup>,
    /// Where the attendant's choices and transfers lead.
    pub router: Option<Arc<dyn Router>>,
    /// Routes the Call-IDs of the legs the call starts later to its inbox.
    pub inbox: Option<Arc<dyn Inbox>>,
    /// What other calls tell this one ([`Link`]).
    pub links: Option<mpsc::Receiver<Link>>,
    /// Recording on demand (`None`: off).
    pub record: Option<RecordSetup>,
    /// Music on hold (`None`: hold is carried to the other phone, which hears silence).
    pub music: Option<Arc<crate::music::Source>>,
    /// An intercom call or a page: the phones are asked to answer by themselves.
    pub auto_answer: bool,
    /// The conference rooms (a page is one).
    pub rooms: Option<Arc<crate::conference::Rooms>>,
    /// Counts this call among those still ringing until it is answered or ends.
    pub ringing: Ringing,
    /// The call's row in the call log ...
    pub log: NewCall,
    /// ... and where its start, answer and end go (the server writes them in batches).
    pub log_events: mpsc::UnboundedSender<CallEvent>,
}

impl std::fmt::Debug for Setup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Setup")
            .field("parties", &self.parties)
            .field("b_call_id", &self.b_call_id)
            .finish()
    }
}

/// One call among those still ringing (or setting up): the server refuses new calls
/// while too many are (overload), so they are counted from the INVITE until the call
/// is answered, goes to voicemail, or ends.
#[derive(Debug)]
pub struct Ringing {
    count: Arc<AtomicUsize>,
    done: AtomicBool,
}

impl Ringing {
    /// Counts one more ringing call in `count`.
    pub fn start(count: &Arc<AtomicUsize>) -> Ringing {
        count.fetch_add(1, Ordering::Relaxed);
        Ringing {
            count: Arc::clone(count),
            done: AtomicBool::new(false),
        }
    }

    /// The call no longer rings (once; dropping does it too).
    pub fn stop(&self) {
        if !self.done.swap(true, Ordering::Relaxed) {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Ringing {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The methods a call takes in its dialogs (the Allow of our INVITEs and answers).
const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REFER, NOTIFY";

/// A random token for tags and Call-IDs.
pub fn token() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// A new branch for a request we send (RFC 3261's magic cookie first).
pub(crate) fn branch() -> String {
    format!("z9hG4bK{}", token())
}

/// Where a message goes: an address, and the transport it is reached by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Peer {
    addr: SocketAddr,
    transport: Transport,
}

/// Where the call is. Which phone answered is the fork in [`fork::ForkState::Answered`]
/// (at most one ever is); a re-INVITE in flight is [`Call::reinvite`].
#[derive(Debug)]
enum State {
    /// The callee's phones ring. `rang`: the caller has heard ringing (180 or 183).
    Ringing { rang: bool },
    /// Nobody answered and the box answers instead (voicemail or the menu): done at the
    /// loop's next turn, which waits for the relay to give back the caller's port.
    ToVoicemail,
    /// A phone answered a call the box had answered (the attendant sent it on): the
    /// ringback stops and the relay starts at the loop's next turn.
    Joining,
    /// A phone answered: the legs are joined.
    Talking,
    /// A transfer was accepted: carried out at the loop's next turn ([`refer`]).
    Transferring(Box<refer::Pending>),
    /// An attended transfer joins this call to another ([`bridge`]), at the loop's
    /// next turn.
    Bridging(Box<bridge::Step>),
    /// Music on hold starts or stops ([`hold`]), at the loop's next turn.
    Hold(hold::HoldStep),
    /// Another call takes our party ([`park`]), at the loop's next turn.
    Giving(Box<park::Retrieve>),
    /// This call takes another's party ([`park`]), at the loop's next turn.
    Taking,
    /// Parked too long: back to the parker, at the loop's next turn.
    Unparking,
    /// A three-way call is being made ([`threeway`]), at the loop's next turn.
    Mixing(Box<threeway::Step>),
    /// The call's sides are in a three-way call's room ([`Call::mixed`]).
    Mixed,
    /// The box answered the caller: a message is being recorded, or the menu plays.
    Voicemail(Recording),
    /// Final response sent or BYEs out: waiting for the ACK and the answers, then over.
    Ending,
}

impl State {
    fn is_ringing(&self) -> bool {
        matches!(self, State::Ringing { .. })
    }
}

/// The call's audio: the relay's two ports on the box and where each side is.
#[derive(Debug)]
struct Media {
    /// The box's address in the SDP to each side (the WAN address towards a provider).
    ip_a: IpAddr,
    ip_b: IpAddr,
    /// The relay's port for leg A (the caller sends there), and for leg B.
    port_a: u16,
    port_b: u16,
    /// Where each side's audio goes (from its SDP).
    peers: watch::Sender<Peers>,
    relay: Option<tokio::task::JoinHandle<rtp::Stopped>>,
    relay_stop: CancellationToken,
    /// Keys and recordings from the relay.
    heard: Option<mpsc::UnboundedReceiver<rtp::Heard>>,
}

/// One call: everything the call task knows.
struct Call {
    setup: Setup,
    inbox: mpsc::Receiver<Incoming>,
    /// Where the call is.
    state: State,
    /// Leg A: the caller's INVITE, its dialog, and our answers to it ([`leg`]).
    a: CallerLeg,
    /// Our SIP address as each leg sees it (Via, Contact).
    a_local: SocketAddr,
    b_local: SocketAddr,
    /// Leg B: our From tag and CSeq, shared by every fork ([`fork`]), and its From (no
    /// tag), To, and the user of our Contact (for an outside call, the line's).
    b_from_tag: String,
    b_cseq: u32,
    b_from: String,
    b_to: String,
    b_contact_user: String,
    /// For an outside call: the line tried now (an index into the lines), and the slot
    /// it holds on its trunk.
    line: usize,
    line_slot: Option<Slot>,
    /// For a ring group: the stage ringing now.
    stage: usize,
    /// One per phone rung ([`fork`]).
    forks: Vec<Fork>,
    /// The re-INVITE being carried from one leg to the other ([`reinvite`]).
    reinvite: Option<ReInvite>,
    /// Messages sent again until answered, over UDP ([`timers`]).
    retransmits: Vec<Retransmit>,
    /// When an unanswered call stops ringing.
    ring_until: Instant,
    media: Media,
    /// How the call ends if it ended now, for the call log: set as it goes (answered,
    /// busy or no answer on the way to voicemail, a message left, ...).
    disposition: Disposition,
    /// When it began to end (Unix seconds), for the call log.
    ended_at: Option<i64>,
    /// The codec of the box's own answer to the caller, once the box answered (the
    /// attendant): leg B is offered that, and the caller hears nothing more of leg B's
    /// ringing or answer but its audio.
    boxed: Option<crate::media::Negotiated>,
    /// The caller, answered by the box and hearing ringback while the call rings on
    /// ([`transfer`]).
    held: Option<transfer::Held>,
    /// Where the caller's SIP INFO digits go once the box answered (to its endpoint).
    a_digits: mpsc::UnboundedSender<char>,
    /// Keys pressed on each side in the call, and the recording ([`record`]).
    keys: record::Keys,
    /// Times an attendant has answered this call (a caller who never presses a key, or
    /// is gone without a BYE, must not go round an attendant for ever).
    attendant_passes: u32,
    /// Where the caller said its audio now goes, in a re-INVITE or UPDATE the box
    /// answered itself (the relay starts from there when the call is joined).
    a_moved: Option<SocketAddr>,
    /// The box answered as a fax machine: the link to it (the switch to T.38), and
    /// whether the box's own re-INVITE asking for T.38 waits for its answer.
    fax: Option<(
        std::sync::Arc<crate::fax::FaxLink>,
        officebox_config::model::T38Mode,
    )>,
    t38_asked: bool,
    /// The answering phone's SDP (the codec both sides use: the box plays in it when it
    /// takes one side over for a transfer).
    b_answer: Vec<u8>,
    /// Whether the caller's last offer put the callee on hold, and the other way round
    /// (a transferee on hold is taken off it).
    a_held_b: bool,
    b_held_a: bool,
    /// The side that asked for a transfer, until it hangs up ([`refer`]).
    transferor: Option<refer::Transferor>,
    /// What other calls tell this one, and the call joined to this one by an attended
    /// transfer ([`bridge`]).
    links: Option<mpsc::Receiver<Link>>,
    partner: Option<mpsc::Sender<Link>>,
    /// The music a side on hold hears ([`hold`]).
    music: Option<hold::Music>,
    /// Times the call was forwarded ([`forward`]).
    forwarded: u8,
    /// The parked call's music and place ([`park`]).
    parked: Option<park::Parked>,
    /// The transferor's port, kept to tell it where its call is parked.
    transferor_media: Option<(rtp::Lease, Option<SocketAddr>)>,
    /// The sides in a three-way call's room ([`threeway`]).
    mixed: Option<Box<threeway::Mixed>>,
}

/// Runs one call from the caller's (authenticated) INVITE to its end.
pub async fn run(setup: Setup, invite: Incoming, inbox: mpsc::Receiver<Incoming>) {
    let (events, call_id) = (setup.log_events.clone(), setup.log.call_id.clone());
    let _ = events.send(CallEvent::Start(setup.log.clone()));
    let Some(mut call) = Call::new(setup, invite, inbox) else {
        let _ = events.send(CallEvent::Ended {
            call_id,
            at: unix_now(),
            disposition: Disposition::Failed,
        });
        return;
    };
    call.start();
    loop {
        if matches!(call.state, State::ToVoicemail) {
            call.enter_voicemail().await;
            continue;
        }
        if matches!(call.state, State::Joining) {
            call.join().await;
            continue;
        }
        if matches!(call.state, State::Transferring(_)) {
            call.transfer().await;
            continue;
        }
        if matches!(call.state, State::Bridging(_)) {
            call.bridge().await;
            continue;
        }
        if matches!(call.state, State::Hold(_)) {
            call.hold_step().await;
            continue;
        }
        if matches!(call.state, State::Giving(_)) {
            call.give().await;
            continue;
        }
        if matches!(call.state, State::Taking) {
            if let Callee::Retrieve(target) = &call.setup.callee {
                let target = target.clone();
                call.take(target).await;
            } else {
                call.state = State::Talking;
            }
            continue;
        }
        if matches!(call.state, State::Unparking) {
            call.unpark().await;
            continue;
        }
        if matches!(call.state, State::Mixing(_)) {
            call.three_way_step().await;
            continue;
        }
        let next = call.next_timer();
        let recording = async {
            match &mut call.state {
                State::Voicemail(r) => Some((&mut r.task).await),
                _ => std::future::pending().await,
            }
        };
        let heard = async {
            match &mut call.media.heard {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        let link = async {
            match &mut call.links {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        let mixed = async {
            match &mut call.mixed {
                Some(m) => m.next_left().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            m = call.inbox.recv() => match m {
                Some(m) => call.handle(m),
                None => break,
            },
            () = tokio::time::sleep_until(next) => call.timers(),
            Some(done) = recording => call.recorded(done).await,
            h = heard => match h {
                Some(h) => call.heard(h),
                None => call.media.heard = None,
            },
            l = link => match l {
                Some(l) => call.link(l),
                None => call.links = None,
            },
            Some(side) = mixed => call.mixed_left(side),
        }
        if call.is_over() {
            break;
        }
    }
    call.media.relay_stop.cancel();
    call.end_music().await;
    let (mut relayed, mut strangers) = ((0, 0), (0, 0));
    if let Some(relay) = call.media.relay.take()
        && let Ok(stopped) = relay.await
    {
        relayed = (stopped.a_to_b, stopped.b_to_a);
        strangers = (stopped.strangers_a, stopped.strangers_b);
        if let Some(samples) = stopped.recorded {
            call.deliver_recording(samples).await;
        }
    }
    // A recording handed over as the call ended.
    let mut late = Vec::new();
    if let Some(rx) = call.media.heard.as_mut() {
        while let Ok(h) = rx.try_recv() {
            if let rtp::Heard::Recorded(samples) = h {
                late.push(samples);
            }
        }
    }
    for samples in late {
        call.deliver_recording(samples).await;
    }
    if let State::Voicemail(r) = std::mem::replace(&mut call.state, State::Ending) {
        r.hangup.cancel();
        let _ = r.task.await;
    }
    if let Some(held) = call.held.take() {
        held.release().await;
    }
    call.log(CallEvent::Ended {
        call_id: call.setup.log.call_id.clone(),
        at: call.ended_at.unwrap_or_else(unix_now),
        disposition: call.disposition,
    });
    // One line per call (the call log has the rest). An answered call that carried
    // nothing one way (a firewall, a NAT, a phone's wrong address) is a warning.
    let (caller, callee) = (
        &call.setup.parties.caller_ext,
        &call.setup.parties.callee_ext,
    );
    let disposition = call.disposition.as_str();
    let (a_to_b, b_to_a) = relayed;
    info!(message = "phone: call ended", %caller, %callee, disposition, a_to_b, b_to_a);
    if call.disposition == Disposition::Answered && (a_to_b == 0 || b_to_a == 0) {
        warn!(
            message = "phone: an answered call carried no audio one way",
            %caller, %callee, a_to_b, b_to_a
        );
    }
    let (strangers_a, strangers_b) = strangers;
    if strangers_a + strangers_b > 0 {
        debug!(message = "phone: packets from strangers dropped", %caller, %callee, strangers_a, strangers_b);
    }
}

impl Call {
    /// A call for the caller's INVITE, with the relay's ports leased and the relay
    /// running; `None` (the caller told 503) when no ports are left.
    fn new(mut setup: Setup, invite: Incoming, inbox: mpsc::Receiver<Incoming>) -> Option<Call> {
        let local = setup.wire.local();
        let ip_a = setup.wire.local_for(invite.source);
        let ip_b = match &setup.callee {
            Callee::Outside(lines) => lines
                .first()
                .map_or(local.ip(), |l| setup.wire.local_for(l.peer)),
            Callee::Phones(_)
            | Callee::Group(_)
            | Callee::Attendant(_)
            | Callee::Announcement(_)
            | Callee::Park(_)
            | Callee::Retrieve(_)
            | Callee::Conference(_)
            | Callee::Page(_)
            | Callee::Fax(_) => local.ip(),
        };
        // A group ringing outside numbers too: leg B's port answers on every address
        // (the LAN's for the phones, the WAN's for the provider).
        // The same when the callee forwards calls on busy or no answer: they may go to
        // an outside number.
        let bind_b = match &setup.callee {
            Callee::Group(stages) if stages.iter().any(|s| !s.outside.is_empty()) => {
                IpAddr::from([0, 0, 0, 0])
            }
            _ if setup.forwards.is_some() => IpAddr::from([0, 0, 0, 0]),
            _ => ip_b,
        };
        let (lease_a, lease_b) = match (setup.ports.take(ip_a), setup.ports.take(bind_b)) {
            (Ok(a), Ok(b)) => (a, b),
            _ => {
                let r = invite
                    .msg
                    .response(503, "Service Unavailable (no RTP ports)", &token());
                setup
                    .wire
                    .send(r.to_bytes(), invite.source, invite.transport);
                return None;
            }
        };
        let a_media = sdp::audio(&invite.msg.body).map(|m| m.addr);
        let (peers, peers_rx) = watch::channel(Peers {
            a: a_media,
            events_a: crate::media::negotiate(&invite.msg.body).and_then(|n| n.events),
            ..Peers::default()
        });
        let relay_stop = CancellationToken::new();
        let (port_a, port_b) = (lease_a.port, lease_b.port);
        let (heard_tx, heard) = mpsc::unbounded_channel();
        let relay = tokio::spawn(rtp::relay(
            lease_a,
            lease_b,
            peers_rx,
            relay_stop.clone(),
            Some(heard_tx),
        ));
        let p = &setup.parties;
        let (b_from, b_to, b_contact_user) = (
            format!(
                "\"{}\" <sip:{}@{}>",
                p.caller_name.replace('"', ""),
                p.caller_ext,
                p.domain
            ),
            format!("<sip:{}@{}>", p.callee_ext, p.domain),
            p.caller_ext.clone(),
        );
        let links = setup.links.take();
        Some(Call {
            ring_until: Instant::now() + setup.no_answer,
            setup,
            inbox,
            state: State::Ringing { rang: false },
            a_local: SocketAddr::new(ip_a, local.port()),
            b_local: SocketAddr::new(ip_b, local.port()),
            a: CallerLeg::new(invite),
            b_from_tag: token(),
            b_cseq: 1,
            b_from,
            b_to,
            b_contact_user,
            line: 0,
            line_slot: None,
            stage: 0,
            forks: Vec::new(),
            reinvite: None,
            retransmits: Vec::new(),
            media: Media {
                ip_a,
                ip_b,
                port_a,
                port_b,
                peers,
                relay: Some(relay),
                relay_stop,
                heard: Some(heard),
            },
            disposition: Disposition::Failed,
            ended_at: None,
            boxed: None,
            held: None,
            a_digits: mpsc::unbounded_channel().0,
            keys: record::Keys::default(),
            attendant_passes: 0,
            a_moved: None,
            fax: None,
            t38_asked: false,
            b_answer: Vec::new(),
            a_held_b: false,
            b_held_a: false,
            transferor: None,
            links,
            partner: None,
            music: None,
            forwarded: 0,
            parked: None,
            transferor_media: None,
            mixed: None,
        })
    }

    /// Sends an event to the call log (nothing is lost for the call if it cannot).
    fn log(&self, event: CallEvent) {
        let _ = self.setup.log_events.send(event);
    }

    /// Someone answered: a phone of `by`, or the box itself (`None`).
    fn log_answer(&self, by: Option<&str>) {
        self.log(CallEvent::Answered {
            call_id: self.setup.log.call_id.clone(),
            at: unix_now(),
            by: by.map(str::to_string),
        });
    }

    /// Tells the server's list of live calls where the call is (and its list of calls
    /// ringing an office user, for pickup).
    fn status(&mut self, state: &'static str) {
        if state != "ringing" {
            self.setup.ringing.stop();
        }
        if let Some(inbox) = &self.setup.inbox {
            let login = &self.setup.parties.callee_login;
            let ringing_user = state == "ringing"
                && !login.is_empty()
                && matches!(self.setup.callee, Callee::Phones(_))
                && self.boxed.is_none();
            inbox.ringing(ringing_user.then_some(login.as_str()));
        }
        if state == "ending" && self.ended_at.is_none() {
            self.ended_at = Some(unix_now());
        }
        self.setup.status.send_modify(|s| {
            s.state = state;
            if state == "talking" && s.answered_at.is_none() {
                s.answered_at = Some(now_unix());
            }
        });
    }

    /// Sends `bytes` once, to `to`.
    fn send(&self, bytes: Vec<u8>, to: Peer) {
        self.setup.wire.send(bytes, to.addr, to.transport);
    }

    /// Answers a request (in either leg) where it came from.
    fn reply(&self, m: &Incoming, code: u16, reason: &str, tag: &str) {
        let r = m.msg.response(code, reason, tag);
        self.setup.wire.send(r.to_bytes(), m.source, m.transport);
    }

    /// Every message of the call, from either leg.
    fn handle(&mut self, m: Incoming) {
        if self.is_transferors(&m.msg) {
            self.message_from_transferor(m);
            return;
        }
        let from_a = m.msg.call_id() == self.a.invite.call_id();
        if matches!(self.state, State::Mixed) && matches!(m.msg.start, StartLine::Request { .. }) {
            let side = if from_a { rtp::Side::A } else { rtp::Side::B };
            self.mixed_request(m, side);
            return;
        }
        match (&m.msg.start, from_a) {
            (StartLine::Request { .. }, true) => self.request_from_a(m),
            (StartLine::Request { .. }, false) => self.request_from_b(m),
            (StartLine::Response { code, .. }, true) => self.response_from_a(*code, &m.msg),
            (StartLine::Response { code, .. }, false) => self.response_from_b(*code, m),
        }
    }

    /// A call is over when it is ending and nothing is outstanding: the caller has ACKed
    /// our final answer, every phone rung has answered its INVITE or CANCEL (or timed
    /// out), and every BYE has its answer (or timed out).
    fn is_over(&self) -> bool {
        matches!(self.state, State::Ending)
            && !self.forks.iter().any(Fork::is_pending)
            && self.retransmits.is_empty()
    }

    /// The call moves to [`State::Ending`], and the list of calls says so.
    fn ending(&mut self) {
        self.state = State::Ending;
        self.status("ending");
        // Ringback for a caller the box holds stops with the call (its port is given
        // back when the task ends).
        if let Some(held) = self.held.take() {
            held.abandon();
        }
        // A transfer under way ends with the call, and a call joined to this one.
        self.transfer_done("487 Request Terminated");
        self.bye_transferor();
        if let Some(partner) = self.partner.take() {
            let _ = partner.try_send(Link::HungUp);
        }
        self.end_page();
    }
}

/// How a call refused with `code` ends, for the call log.
fn refused(code: u16) -> Disposition {
    match code {
        486 | 600 | 603 => Disposition::Busy,
        408 | 480 => Disposition::NoAnswer,
        487 => Disposition::Cancelled,
        _ => Disposition::Failed,
    }
}

/// Gives `to` the body (and its type) of `from`.
fn copy_body(from: &Message, to: &mut Message) {
    if let Some(ct) = from.header("content-type") {
        to.push("Content-Type", ct.to_string());
    }
    to.body = from.body.clone();
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
