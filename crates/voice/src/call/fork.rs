//! Leg B: the box's own INVITE to each registered phone of the callee (a fork each, all
//! with leg B's one Call-ID and From tag), to a ring group's members stage by stage
//! ([`super::group`]), or to an outside number over the first trunk that takes it
//! ([`super::lines`]); their answers (ringing, the first 200 wins and the others are
//! cancelled, refusals), and requests from the answering side.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;
use tracing::debug;

use officebox_store::{CallEvent, Disposition};

use super::timers::{Key, Retransmit};
use super::{Call, Callee, Incoming, OutsideLine, Peer, State, branch, copy_body, reach};
use crate::registrar::Binding;
use crate::sdp;
use crate::sip::{Message, Method, StartLine, param, uri_of};

/// Phones of the callee rung at once.
const MAX_FORKS: usize = 5;

/// Where one fork's INVITE is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ForkState {
    /// Sent, nothing heard but 100.
    Calling,
    /// 180 or 183.
    Ringing,
    /// It answered (200) and won the call: at most one fork ever is.
    Answered,
    /// It refused (or timed out, 408).
    Failed(u16),
    /// We sent CANCEL and wait for its answer (or the INVITE's 487).
    Cancelled,
    /// It answered after another phone won or the caller gave up, and was hung up:
    /// its INVITE is answered, nothing more is awaited from it.
    HungUp,
}

/// One phone rung.
#[derive(Debug)]
pub(super) struct Fork {
    /// Our INVITE's branch: what its responses (and our CANCEL) carry.
    pub(super) branch: String,
    /// Request-URI: the phone's Contact.
    pub(super) uri: String,
    /// Where it is reached (see [`reach`]); once it answers, where its 200 came from.
    pub(super) peer: Peer,
    pub(super) state: ForkState,
    pub(super) to_tag: Option<String>,
    /// The Contact of its 2xx: where in-dialog requests go.
    pub(super) remote_uri: Option<String>,
    /// The proxies its 2xx says stay in the dialog, in the order our requests pass them
    /// (its Record-Route reversed, RFC 3261 section 12.1.2).
    pub(super) route: Vec<String>,
    /// Whose phone it is (the call log's "answered by"); `None` for a trunk.
    pub(super) login: Option<String>,
    /// Its INVITE's CSeq (an INVITE answering a provider's challenge has the next).
    pub(super) cseq: u32,
    /// Whether its INVITE answers a provider's challenge (one that fails is not
    /// answered again).
    pub(super) authorized: bool,
    /// A provider that has said nothing by then (not even 100 Trying) is taken for
    /// down, and the next trunk is tried ([`PROVIDER_SILENCE`]); `None` for phones.
    pub(super) silent_until: Option<Instant>,
    /// A ring group's outside number: the line it is called on (its From, To and our
    /// address as the provider sees it are its own), and the trunk slot it holds.
    pub(super) line: Option<Box<OutsideLine>>,
    pub(super) slot: Option<super::Slot>,
    /// A paged phone's port and its way out of the page ([`super::page`]).
    pub(super) page: Option<Box<super::page::Paged>>,
}

/// How long a provider may leave our INVITE unanswered (with retransmissions at 0.5, 1.5
/// and 3.5 s) before the call fails over: a caller should not wait the whole 32 s
/// transaction timeout in silence.
pub(super) const PROVIDER_SILENCE: Duration = Duration::from_secs(5);

impl Fork {
    /// Whether it still owes an answer to our INVITE or CANCEL.
    pub(super) fn is_pending(&self) -> bool {
        matches!(
            self.state,
            ForkState::Calling | ForkState::Ringing | ForkState::Cancelled
        )
    }

    /// Whether it still rings (or may yet answer).
    fn is_live(&self) -> bool {
        matches!(
            self.state,
            ForkState::Calling | ForkState::Ringing | ForkState::Answered
        )
    }

    /// Where requests in its dialog go: its 2xx's Contact, else the URI we rang.
    pub(super) fn dialog_uri(&self) -> String {
        self.remote_uri.clone().unwrap_or_else(|| self.uri.clone())
    }
}

/// How a fork's INVITE is asked: whose phone it rings (the call log's "answered by"),
/// a ring group's outside line it goes out as, and an answer to a provider's challenge.
#[derive(Debug, Default)]
pub(super) struct Asked<'a> {
    pub(super) login: Option<String>,
    pub(super) authorization: Option<(&'a str, String)>,
    pub(super) answers_challenge: bool,
    pub(super) line: Option<Box<OutsideLine>>,
}

impl Call {
    /// The fork that answered, if one did.
    pub(super) fn winner(&self) -> Option<&Fork> {
        self.forks.iter().find(|f| f.state == ForkState::Answered)
    }

    /// The caller hears 100 Trying; then the callee rings ([`Call::ring_callee`]).
    pub(super) fn start(&mut self) {
        let trying = self.a.invite.response(100, "Trying", "").to_bytes();
        // Sent again if the caller retransmits its INVITE before anything else happens.
        self.a.last = Some(trying.clone());
        self.send_a(trying);
        self.status("ringing");
        self.ring_callee();
    }

    /// Rings the callee: its phones, its group's first stage, its first trunk; or the
    /// box answers (an attendant).
    pub(super) fn ring_callee(&mut self) {
        let bindings: Vec<Binding> = match &self.setup.callee {
            Callee::Phones(b) => b.iter().take(MAX_FORKS).cloned().collect(),
            Callee::Group(_) => {
                self.ring_stage(0);
                return;
            }
            Callee::Outside(_) => {
                self.try_line(0, None);
                return;
            }
            Callee::Attendant(_)
            | Callee::Announcement(_)
            | Callee::Conference(_)
            | Callee::Fax(_) => {
                self.state = State::ToVoicemail;
                return;
            }
            Callee::Retrieve(_) => {
                self.state = State::Taking;
                return;
            }
            Callee::Page(phones) => {
                let phones = phones.clone();
                self.ring_page(&phones);
                return;
            }
            // Only a transfer parks (`Call::ring_on`).
            Callee::Park(_) => {
                self.fail_a(404, "Not Found");
                return;
            }
        };
        let login = Some(self.setup.parties.callee_login.clone());
        for b in bindings {
            self.ring_phone(&b, 1, login.clone());
        }
        if self.forks.is_empty() {
            self.voicemail_or_fail(480, "Temporarily Unavailable");
        }
        debug!(
            message = "phone: calling",
            caller = %self.setup.parties.caller_ext,
            callee = %self.setup.parties.callee_ext,
            phones = self.forks.len()
        );
    }

    /// Rings one registered phone (of `login`).
    pub(super) fn ring_phone(&mut self, b: &Binding, cseq: u32, login: Option<String>) {
        let peer = Peer {
            addr: reach(b),
            transport: b.transport,
        };
        let how = Asked {
            login,
            ..Asked::default()
        };
        self.invite_b(&b.contact, peer, cseq, how);
    }

    /// Rings an outside number of a ring group, on the first of its lines whose trunk
    /// has room (`false`: none has).
    pub(super) fn ring_outside(&mut self, lines: &[OutsideLine], cseq: u32) -> bool {
        let found = lines.iter().find_map(|l| {
            let slot = self
                .setup
                .slots
                .take(&format!("trunk:{}", l.trunk), l.max_calls)?;
            Some((l.clone(), slot))
        });
        let Some((line, slot)) = found else {
            return false;
        };
        self.invite_line(Box::new(line), cseq, None, false);
        if let Some(f) = self.forks.last_mut() {
            f.slot = Some(slot);
        }
        true
    }

    /// Sends a ring group's outside line our INVITE, as that line (its From and To, our
    /// WAN address), with an answer to the provider's challenge when there is one.
    pub(super) fn invite_line(
        &mut self,
        line: Box<OutsideLine>,
        cseq: u32,
        authorization: Option<(&str, String)>,
        answers_challenge: bool,
    ) {
        let peer = Peer {
            addr: line.peer,
            transport: line.transport,
        };
        let uri = line.uri.clone();
        let how = Asked {
            login: None,
            authorization,
            answers_challenge,
            line: Some(line),
        };
        self.invite_b(&uri, peer, cseq, how);
    }

    /// Sends a fork our INVITE with the CSeq `cseq`: the caller's offer pointed at the
    /// relay (only the trunk's codecs, when it goes to a provider), and an answer to a
    /// digest challenge when there is one (to this call's 401/407 when
    /// `answers_challenge`, which is not answered again).
    pub(super) fn invite_b(&mut self, uri: &str, peer: Peer, cseq: u32, how: Asked<'_>) {
        self.invite_b_with(uri, peer, cseq, how, None);
    }

    /// [`Call::invite_b`] with `offer` instead of the call's own (a paged phone's).
    pub(super) fn invite_b_with(
        &mut self,
        uri: &str,
        peer: Peer,
        cseq: u32,
        how: Asked<'_>,
        offer: Option<Vec<u8>>,
    ) {
        // The provider's line it goes out on: a ring group member's own, or the call's.
        let call_line = match &self.setup.callee {
            Callee::Outside(lines) => lines.get(self.line).cloned(),
            _ => None,
        };
        let to_provider = how.line.is_some() || call_line.is_some();
        let fork = Fork {
            login: how.login,
            branch: branch(),
            uri: uri.to_string(),
            peer,
            state: ForkState::Calling,
            to_tag: None,
            remote_uri: None,
            route: Vec::new(),
            cseq,
            authorized: how.answers_challenge,
            silent_until: to_provider.then(|| Instant::now() + PROVIDER_SILENCE),
            line: how.line,
            slot: None,
            page: None,
        };
        let ip = match &fork.line {
            Some(_) => self.setup.wire.local_for(peer.addr),
            None => self.media.ip_b,
        };
        let line = fork.line.as_deref().or(call_line.as_ref());
        let mut offer = offer.unwrap_or_else(|| self.offer_b(ip));
        if let Some(l) = line {
            offer = sdp::only_codecs(&offer, &l.codecs);
        }
        let mut req = self.b_request_as(
            fork.line.as_deref(),
            Method::Invite,
            &fork.uri,
            cseq,
            &fork.branch,
            None,
            Some(&offer),
        );
        if let Some(identity) = line.and_then(|l| l.identity.clone()) {
            req.push("P-Asserted-Identity", identity);
        }
        if self.setup.auto_answer && line.is_none() {
            // Intercom: answered by the phone itself (Call-Info for Snom, Yealink and
            // Grandstream; Alert-Info for Polycom and Yealink).
            let domain = &self.setup.parties.domain;
            req.push("Call-Info", format!("<sip:{domain}>;answer-after=0"));
            req.push(
                "Alert-Info",
                format!("<sip:{domain}>;info=alert-autoanswer"),
            );
        }
        if let Some((name, value)) = how.authorization {
            req.push(name, value);
        }
        self.b_cseq = self.b_cseq.max(cseq);
        self.send_b(fork.peer, req.to_bytes());
        self.forks.push(fork);
    }

    /// A fork failed with `code` (refused, or no answer in time): an outside line fails
    /// over; a phone's is one fewer ringing.
    pub(super) fn fork_failed(&mut self, code: u16, reason: &str) {
        if !self.state.is_ringing() {
            return;
        }
        let live = self.forks.iter().any(Fork::is_live);
        match self.setup.callee {
            Callee::Outside(_) if !live => self.line_failed(code, reason),
            // A member busy or refusing: the next (hunt), or the group's no-answer.
            Callee::Group(_) if !live => self.ring_stage(self.stage + 1),
            Callee::Phones(_) => self.all_failed(),
            _ => {}
        }
    }

    /// Leg B's offer, at our address `ip`: the caller's offer pointed at the relay; once
    /// the box has answered the caller, the codec they agreed on.
    fn offer_b(&self, ip: std::net::IpAddr) -> Vec<u8> {
        match &self.boxed {
            Some(n) => crate::media::answer(ip, self.media.port_b, n),
            None => sdp::rewrite(&self.a.invite.body, ip, self.media.port_b),
        }
    }

    /// A request to a fork that is a ring group's outside line: as [`Call::b_request`],
    /// but with the line's From, To and Contact, and our address as its provider sees it
    /// (`line` None: the call's own).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn b_request_as(
        &self,
        line: Option<&OutsideLine>,
        method: Method,
        uri: &str,
        cseq: u32,
        branch: &str,
        to_tag: Option<&str>,
        body: Option<&[u8]>,
    ) -> Message {
        // Who leg B's request is from and to, and our address in it.
        let (from, to, contact_user, local) = match line {
            Some(l) => (
                l.from.as_str(),
                l.to.as_str(),
                l.contact_user.as_str(),
                SocketAddr::new(self.setup.wire.local_for(l.peer), self.b_local.port()),
            ),
            None => (
                self.b_from.as_str(),
                self.b_to.as_str(),
                self.b_contact_user.as_str(),
                self.b_local,
            ),
        };
        let mut m = Message {
            start: StartLine::Request {
                method: method.clone(),
                uri: uri.to_string(),
            },
            headers: Vec::new(),
            body: Vec::new(),
        };
        m.push("Via", format!("SIP/2.0/UDP {local};branch={branch};rport"));
        m.push("Max-Forwards", "70");
        m.push("From", format!("{from};tag={}", self.b_from_tag));
        m.push(
            "To",
            match to_tag {
                Some(t) => format!("{to};tag={t}"),
                None => to.to_string(),
            },
        );
        m.push("Call-ID", self.setup.b_call_id.clone());
        m.push("CSeq", format!("{cseq} {method}"));
        if method == Method::Invite {
            m.push("Contact", format!("<sip:{contact_user}@{local}>"));
            m.push("Allow", super::ALLOW);
        }
        m.push("User-Agent", "officebox");
        if let Some(b) = body {
            m.push("Content-Type", "application/sdp");
            m.body = b.to_vec();
        }
        m
    }

    /// Sends a request in leg B to `to`, again until answered over UDP (it is matched
    /// by the branch of its Via).
    pub(super) fn send_b(&mut self, to: Peer, bytes: Vec<u8>) {
        if to.transport.is_unreliable() {
            self.retransmits
                .push(Retransmit::for_request(&bytes, to.addr));
        }
        self.send(bytes, to);
    }

    /// A request in leg B's dialog (or its initial INVITE), as the call's own.
    pub(super) fn b_request(
        &self,
        method: Method,
        uri: &str,
        cseq: u32,
        branch: &str,
        to_tag: Option<&str>,
        body: Option<&[u8]>,
    ) -> Message {
        self.b_request_as(None, method, uri, cseq, branch, to_tag, body)
    }

    /// A new request in the answering phone's dialog (BYE, INFO), sent reliably; `None`
    /// when no phone answered.
    fn send_in_b_dialog(&mut self, method: Method, body_from: Option<&Message>) -> Option<()> {
        let w = self.winner()?;
        let (uri, to_tag, peer, route) =
            (w.dialog_uri(), w.to_tag.clone(), w.peer, w.route.clone());
        self.b_cseq += 1;
        let mut req = self.b_request(
            method,
            &uri,
            self.b_cseq,
            &branch(),
            to_tag.as_deref(),
            None,
        );
        if let Some(from) = body_from {
            copy_body(from, &mut req);
        }
        routed(&mut req, &route);
        self.send_b(peer, req.to_bytes());
        Some(())
    }

    /// A request from a phone of leg B: BYE, a re-INVITE, INFO, or anything else.
    pub(super) fn request_from_b(&mut self, m: Incoming) {
        let Some(method) = m.msg.method().cloned() else {
            return;
        };
        let tag = self.b_tag();
        match method {
            Method::Ack => {}
            Method::Bye if matches!(self.setup.callee, Callee::Page(_)) => {
                if !self.page_phone_left(&m) {
                    self.reply(&m, 481, "Call/Transaction Does Not Exist", &tag);
                }
            }
            Method::Bye => {
                self.reply(&m, 200, "OK", &tag);
                if matches!(self.state, State::Talking) {
                    let bye = self.a_request(Method::Bye, None);
                    self.send_to_a_reliably(bye.to_bytes());
                    self.ending();
                }
            }
            Method::Invite if self.is_pending_reinvite(m.msg.branch()) => {}
            Method::Invite if matches!(self.state, State::Talking) => {
                self.forward_reinvite(m.msg, false);
            }
            Method::Update if matches!(self.state, State::Talking) => {
                self.answer_update(&m, false, &tag);
            }
            Method::Other(ref o) if o == "REFER" => self.refer(m, crate::rtp::Side::B),
            Method::Info if matches!(self.state, State::Talking) => {
                self.reply(&m, 200, "OK", &tag);
                let mut info = self.a_request(Method::Info, None);
                copy_body(&m.msg, &mut info);
                self.send_to_a_reliably(info.to_bytes());
                if let Some(d) = super::leg::info_digit(&m.msg) {
                    self.key(crate::rtp::Side::B, d);
                }
            }
            _ => self.reply(&m, 200, "OK", &tag),
        }
    }

    /// An INFO from the caller, carried to the answering phone.
    pub(super) fn forward_info_to_b(&mut self, from_a: &Message) {
        let _ = self.send_in_b_dialog(Method::Info, Some(from_a));
    }

    /// Hangs up leg B: BYE to the phone that answered, else CANCEL to those ringing.
    pub(super) fn bye_b(&mut self) {
        if self.send_in_b_dialog(Method::Bye, None).is_none() {
            self.cancel_forks(None);
        }
    }

    /// CANCELs every ringing fork but `keep`.
    pub(super) fn cancel_forks(&mut self, keep: Option<usize>) {
        for i in 0..self.forks.len() {
            let Some(f) = self.forks.get_mut(i) else {
                continue;
            };
            if Some(i) == keep || !matches!(f.state, ForkState::Calling | ForkState::Ringing) {
                continue;
            }
            f.state = ForkState::Cancelled;
            // A ring group's outside line gives its trunk's place back at once: the next
            // stage may need it.
            f.slot = None;
            let (uri, fork_branch, peer, cseq) = (f.uri.clone(), f.branch.clone(), f.peer, f.cseq);
            let line = f.line.clone();
            let mut c = self.b_request_as(
                line.as_deref(),
                Method::Cancel,
                &uri,
                cseq,
                &fork_branch,
                None,
                None,
            );
            c.headers.retain(|(n, _)| n != "contact" && n != "allow");
            // The INVITE is no longer sent again; the CANCEL is, until answered (it has
            // the INVITE's branch, so the INVITE's 487 or the CANCEL's 200 both stop it).
            self.stop_retransmitting(&Key::Branch(fork_branch));
            self.send_b(peer, c.to_bytes());
        }
    }

    /// A response from a phone of leg B: to a fork's INVITE (or CANCEL), to a BYE or
    /// INFO, or to a re-INVITE we carried across.
    pub(super) fn response_from_b(&mut self, code: u16, m: Incoming) {
        let branch = m.msg.branch().to_string();
        let method = m.msg.cseq().map(|(_, m)| m);
        let is_invite = method == Some(Method::Invite);
        // Any response ends the retransmission of an INVITE; a final one of the rest.
        if is_invite || code >= 200 {
            self.stop_retransmitting(&Key::Branch(branch.clone()));
        }
        if !is_invite {
            return;
        }
        if self
            .reinvite
            .as_ref()
            .is_some_and(|re| re.our_branch == branch)
        {
            if code >= 200 {
                self.reinvite_answered_by_b(code, m);
            }
            return;
        }
        let Some(i) = self.forks.iter().position(|f| f.branch == branch) else {
            return;
        };
        if let Some(f) = self.forks.get_mut(i) {
            f.silent_until = None;
        }
        match code {
            100 => {}
            101..=199 => self.fork_rings(i, code, &m.msg),
            200..=299 => self.fork_answers(i, m),
            _ => self.fork_refuses(i, code, m),
        }
    }

    /// A fork rings: the caller hears it, once (183 with early media when it has some).
    fn fork_rings(&mut self, i: usize, code: u16, msg: &Message) {
        if let Some(f) = self.forks.get_mut(i)
            && f.state == ForkState::Calling
        {
            f.state = ForkState::Ringing;
        }
        if !matches!(self.state, State::Ringing { rang: false }) {
            return;
        }
        self.state = State::Ringing { rang: true };
        let mut r = self.a.invite.response(180, "Ringing", &self.a.tag);
        if code == 183 && !msg.body.is_empty() {
            if let Some(media) = sdp::audio(&msg.body) {
                self.media.peers.send_modify(|p| p.b = Some(media.addr));
            }
            r = self.a.invite.response(183, "Session Progress", &self.a.tag);
            r.push("Content-Type", "application/sdp");
            r.body = sdp::rewrite(&msg.body, self.media.ip_a, self.media.port_a);
        }
        // Not retransmitted (RFC 3261 13.3.1.1); sent again only when the caller's
        // INVITE is.
        self.respond_a(r);
    }

    /// A fork answers: ACKed; the first while ringing wins (the others are cancelled
    /// and the caller gets 200), a later one is hung up at once.
    fn fork_answers(&mut self, i: usize, m: Incoming) {
        if matches!(self.setup.callee, Callee::Page(_)) {
            self.page_answered(i, &m);
            return;
        }
        let msg = &m.msg;
        let from = Peer {
            addr: m.source,
            transport: m.transport,
        };
        let to_tag = msg
            .header("to")
            .and_then(|t| param(t, "tag"))
            .map(str::to_string);
        let remote_uri = msg.header("contact").and_then(uri_of).map(str::to_string);
        let Some(fork) = self.forks.get(i) else {
            return;
        };
        let uri = remote_uri.clone().unwrap_or_else(|| fork.uri.clone());
        let won_already = fork.state == ForkState::Answered;
        let cseq = fork.cseq;
        let line = fork.line.clone();
        // Given up on (a provider that was silent too long) or hung up already.
        let given_up = matches!(fork.state, ForkState::Failed(_) | ForkState::HungUp);
        let mut route: Vec<String> = msg.values("record-route").map(str::to_string).collect();
        route.reverse();
        let mut ack = self.b_request_as(
            line.as_deref(),
            Method::Ack,
            &uri,
            cseq,
            &branch(),
            to_tag.as_deref(),
            None,
        );
        routed(&mut ack, &route);
        self.send(ack.to_bytes(), from);
        let someone_else = (self.winner().is_some() && !won_already) || given_up;
        if someone_else || !self.state.is_ringing() {
            if !won_already {
                // A second phone answered too late: hang it up.
                let mut bye = self.b_request_as(
                    line.as_deref(),
                    Method::Bye,
                    &uri,
                    cseq + 1,
                    &branch(),
                    to_tag.as_deref(),
                    None,
                );
                routed(&mut bye, &route);
                self.send(bye.to_bytes(), from);
                if let Some(f) = self.forks.get_mut(i) {
                    f.state = ForkState::HungUp;
                    f.slot = None;
                }
            }
            return;
        }
        if let Some(f) = self.forks.get_mut(i) {
            f.state = ForkState::Answered;
            f.to_tag = to_tag;
            f.remote_uri = remote_uri;
            f.peer.addr = from.addr;
            f.route = route;
        }
        self.cancel_forks(Some(i));
        if let Some(l) = line {
            // A ring group's outside number answered (or a transfer's, a forward's): the
            // dialog is the line's, and the call log says which trunk carried it.
            if self.setup.log.trunk.as_deref() != Some(l.trunk.as_str()) {
                self.log(CallEvent::Trunk {
                    call_id: self.setup.log.call_id.clone(),
                    trunk: l.trunk.clone(),
                });
            }
            let ip = self.setup.wire.local_for(l.peer);
            self.b_local = SocketAddr::new(ip, self.b_local.port());
            self.media.ip_b = ip;
            self.b_from.clone_from(&l.from);
            self.b_to.clone_from(&l.to);
            self.b_contact_user.clone_from(&l.contact_user);
        }
        if let Some(media) = sdp::audio(&msg.body) {
            let events = crate::media::negotiate(&msg.body).and_then(|n| n.events);
            self.media.peers.send_modify(|p| {
                p.b = Some(media.addr);
                p.events_b = events;
            });
        }
        self.disposition = Disposition::Answered;
        self.b_answer.clone_from(&msg.body);
        let by = self.forks.get(i).and_then(|f| f.login.clone());
        if self.boxed.is_some() {
            // The caller was answered by the box: the legs are joined at the loop's next
            // turn ([`Call::join`]), without a word to the caller.
            self.state = State::Joining;
            self.status("talking");
            self.log_answer(by.as_deref());
            return;
        }
        let mut r = self.a.invite.response(200, "OK", &self.a.tag);
        r.push("Allow", super::ALLOW);
        if !msg.body.is_empty() {
            r.push("Content-Type", "application/sdp");
            r.body = sdp::rewrite(&msg.body, self.media.ip_a, self.media.port_a);
        }
        self.state = State::Talking;
        self.respond_a(r);
        self.status("talking");
        self.log_answer(by.as_deref());
        debug!(
            message = "phone: call answered",
            caller = %self.setup.parties.caller_ext,
            callee = %self.setup.parties.callee_ext
        );
    }

    /// A fork refuses (a final answer of 300 or more): ACKed (same branch, RFC 3261
    /// 17.1.1.3); a provider's challenge is answered; when it was the last, the caller
    /// hears why (or the next trunk is tried).
    fn fork_refuses(&mut self, i: usize, code: u16, m: Incoming) {
        let to_tag = m
            .msg
            .header("to")
            .and_then(|t| param(t, "tag"))
            .map(str::to_string);
        let Some(f) = self.forks.get(i) else {
            return;
        };
        let (was_pending, authorized) = (f.is_pending(), f.authorized);
        let mut ack = self.b_request_as(
            f.line.as_deref(),
            Method::Ack,
            &f.uri,
            f.cseq,
            &f.branch,
            to_tag.as_deref(),
            None,
        );
        ack.headers.retain(|(n, _)| n != "contact" && n != "allow");
        self.setup.wire.send(ack.to_bytes(), m.source, m.transport);
        if let Some(f) = self.forks.get_mut(i)
            && f.is_pending()
        {
            f.state = ForkState::Failed(code);
        }
        if !was_pending {
            return;
        }
        if matches!(code, 401 | 407)
            && !authorized
            && self.state.is_ringing()
            && self.answer_challenge(code, &m.msg, i)
        {
            return;
        }
        let reason = match &m.msg.start {
            StartLine::Response { reason, .. } => reason.clone(),
            StartLine::Request { .. } => String::new(),
        };
        // A ring group's outside number that failed gives its trunk's place back.
        if let Some(f) = self.forks.get_mut(i) {
            f.slot = None;
        }
        self.fork_failed(code, &reason);
    }

    /// When every fork has failed: the caller hears the best reason (busy over
    /// declined over unavailable); voicemail takes busy and unavailable calls.
    pub(super) fn all_failed(&mut self) {
        if !self.state.is_ringing() || self.forks.iter().any(Fork::is_live) {
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
        if codes.iter().any(|&c| c == 486 || c == 600) {
            self.voicemail_or_fail(486, "Busy Here");
        } else if codes.contains(&603) {
            self.fail_a(603, "Decline");
        } else {
            self.voicemail_or_fail(480, "Temporarily Unavailable");
        }
    }
}

/// Adds the dialog's route set to a request in it (Route headers, first hop first).
pub(super) fn routed(m: &mut Message, route: &[String]) {
    for r in route {
        m.push("Route", r.clone());
    }
}
