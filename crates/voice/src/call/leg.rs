//! Leg A: the caller's dialog. The box is its called party (UAS): it answers the INVITE
//! (100, then 180 or 183, then the final answer, sent again until ACKed), answers the
//! caller's CANCEL, BYE, INFO and re-INVITEs, and sends its own requests in the dialog
//! (BYE, INFO, re-INVITE from the other side).

use tracing::debug;

use super::timers::{Key, Retransmit};
use super::{Call, Incoming, Peer, State, branch};
use crate::sip::{Message, Method, StartLine, param, uri_of};

/// What the call knows of leg A.
#[derive(Debug)]
pub(super) struct CallerLeg {
    /// The caller's INVITE, as it came.
    pub(super) invite: Message,
    /// Where it came from: where everything for the caller goes.
    pub(super) peer: Peer,
    /// Our To tag in the caller's dialog.
    pub(super) tag: String,
    /// The branch of the caller's INVITE (a retransmission has the same).
    pub(super) branch: String,
    /// Our CSeq in leg A (for requests we send the caller).
    pub(super) cseq: u32,
    /// The last response to the INVITE (sent again for a retransmitted INVITE).
    pub(super) last: Option<Vec<u8>>,
}

impl CallerLeg {
    pub(super) fn new(invite: Incoming) -> CallerLeg {
        CallerLeg {
            branch: invite.msg.branch().to_string(),
            peer: Peer {
                addr: invite.source,
                transport: invite.transport,
            },
            invite: invite.msg,
            tag: super::token(),
            cseq: 1,
            last: None,
        }
    }

    /// A dialog the box began (its INVITE answered), as leg A: `invite` is written as
    /// if the far end had sent it (From the far end, To us with our `tag`, its Contact,
    /// the route our requests take as Record-Route), so requests in it are built as
    /// leg A's are. Nothing of it is answered again.
    pub(super) fn answered(invite: Message, peer: Peer, tag: String, cseq: u32) -> CallerLeg {
        CallerLeg {
            invite,
            peer,
            tag,
            // No INVITE of the far end's has this branch.
            branch: super::branch(),
            cseq,
            last: None,
        }
    }
}

impl Call {
    /// Sends `bytes` to the caller, once.
    pub(super) fn send_a(&self, bytes: Vec<u8>) {
        self.send(bytes, self.a.peer);
    }

    /// Sends a request to the caller, again until answered over UDP.
    pub(super) fn send_to_a_reliably(&mut self, bytes: Vec<u8>) {
        if self.a.peer.transport.is_unreliable() {
            self.retransmits
                .push(Retransmit::for_request(&bytes, self.a.peer.addr));
        }
        self.send_a(bytes);
    }

    /// Answers leg A's INVITE; final answers are retransmitted until the ACK.
    pub(super) fn respond_a(&mut self, mut r: Message) {
        let code = match r.start {
            StartLine::Response { code, .. } => code,
            StartLine::Request { .. } => return,
        };
        if code > 100 {
            r.push(
                "Contact",
                format!("<sip:{}@{}>", self.setup.parties.callee_ext, self.a_local),
            );
        }
        r.push("Server", "officebox");
        let bytes = r.to_bytes();
        self.a.last = Some(bytes.clone());
        if code >= 200 && self.a.peer.transport.is_unreliable() {
            self.stop_retransmitting(&Key::FinalToCaller);
            self.retransmits.push(Retransmit::new(
                Key::FinalToCaller,
                &bytes,
                self.a.peer.addr,
            ));
        }
        self.send_a(bytes);
    }

    /// Refuses the caller's INVITE with `code`: the call ends. (A caller the box has
    /// answered already gets a BYE.)
    pub(super) fn fail_a(&mut self, code: u16, reason: &str) {
        if self.boxed.is_some() {
            self.disposition = super::refused(code);
            self.transfer_done(&super::refer::status_line(code));
            self.hang_up_boxed();
            return;
        }
        let r = self.a.invite.response(code, reason, &self.a.tag);
        self.state = State::Ending;
        self.disposition = super::refused(code);
        self.respond_a(r);
        self.status("ending");
        debug!(
            message = "phone: call not answered",
            caller = %self.setup.parties.caller_ext,
            callee = %self.setup.parties.callee_ext,
            code
        );
    }

    /// A request in leg A's dialog (we are its UAS).
    pub(super) fn a_request(&mut self, method: Method, body: Option<&[u8]>) -> Message {
        let invite = &self.a.invite;
        let uri = invite
            .header("contact")
            .and_then(uri_of)
            .or_else(|| invite.header("from").and_then(uri_of))
            .unwrap_or("sip:invalid")
            .to_string();
        let to_value = invite.header("to").unwrap_or("").to_string();
        let from = if param(&to_value, "tag").is_some() {
            to_value
        } else {
            format!("{to_value};tag={}", self.a.tag)
        };
        let to = invite.header("from").unwrap_or("").to_string();
        let call_id = invite.call_id().to_string();
        self.a.cseq += 1;
        let mut m = Message {
            start: StartLine::Request {
                method: method.clone(),
                uri,
            },
            headers: Vec::new(),
            body: Vec::new(),
        };
        m.push(
            "Via",
            format!("SIP/2.0/UDP {};branch={};rport", self.a_local, branch()),
        );
        m.push("Max-Forwards", "70");
        m.push("From", from);
        m.push("To", to);
        m.push("Call-ID", call_id);
        m.push("CSeq", format!("{} {method}", self.a.cseq));
        // Through the proxies that asked to stay in the dialog (a provider's), in the
        // order the caller's INVITE listed them (RFC 3261 section 12.1.1).
        for route in self.a.invite.values("record-route") {
            m.push("Route", route.to_string());
        }
        if method == Method::Invite {
            m.push(
                "Contact",
                format!("<sip:{}@{}>", self.setup.parties.callee_ext, self.a_local),
            );
        }
        if let Some(b) = body {
            m.push("Content-Type", "application/sdp");
            m.body = b.to_vec();
        }
        m
    }

    /// A request from the caller: a retransmitted INVITE, its ACK, CANCEL, BYE, INFO, a
    /// re-INVITE, or anything else in the dialog.
    pub(super) fn request_from_a(&mut self, m: Incoming) {
        let Some(method) = m.msg.method().cloned() else {
            return;
        };
        let branch = m.msg.branch().to_string();
        let a_tag = self.a.tag.clone();
        match method {
            Method::Invite if branch == self.a.branch => {
                // The caller did not hear us: the last answer again.
                if let Some(b) = self.a.last.clone() {
                    self.send_a(b);
                }
            }
            Method::Ack => self.stop_retransmitting(&Key::FinalToCaller),
            Method::Cancel => {
                self.reply(&m, 200, "OK", &a_tag);
                if self.state.is_ringing() && branch == self.a.branch && self.boxed.is_none() {
                    self.cancel_forks(None);
                    self.fail_a(487, "Request Terminated");
                }
            }
            Method::Bye if matches!(self.state, State::Voicemail(_)) => {
                // Answered once the message is on disk.
                self.stop_retransmitting(&Key::FinalToCaller);
                if let State::Voicemail(rec) = &mut self.state {
                    rec.hangup.cancel();
                    rec.bye = Some(m);
                }
            }
            Method::Info if matches!(self.state, State::Voicemail(_)) => {
                if let Some(d) = info_digit(&m.msg)
                    && let State::Voicemail(rec) = &self.state
                {
                    let _ = rec.digits.send(d);
                }
                self.reply(&m, 200, "OK", &a_tag);
            }
            Method::Info if matches!(self.state, State::Talking) => {
                // DTMF by SIP INFO goes on to the other phone (RFC 4733 events go with
                // the audio through the relay by themselves).
                self.reply(&m, 200, "OK", &a_tag);
                self.forward_info_to_b(&m.msg);
                if let Some(d) = info_digit(&m.msg) {
                    self.key(crate::rtp::Side::A, d);
                }
            }
            Method::Bye => {
                if self.state.is_ringing() {
                    // Sent on by the attendant, and still ringing there.
                    self.disposition = officebox_store::Disposition::Cancelled;
                }
                self.reply(&m, 200, "OK", &a_tag);
                self.stop_retransmitting(&Key::FinalToCaller);
                self.bye_b();
                self.ending();
            }
            Method::Invite if self.is_pending_reinvite(&branch) => {}
            // The box has the caller (voicemail, the attendant, ringback while the call
            // goes on): no phone to carry it to, the box answers it.
            Method::Invite if self.boxed.is_some() && self.winner().is_none() => {
                self.answer_reinvite_here(&m);
            }
            Method::Invite => self.forward_reinvite(m.msg, true),
            Method::Update if matches!(self.state, State::Talking) => {
                self.answer_update(&m, true, &a_tag);
            }
            Method::Update if self.boxed.is_some() && self.winner().is_none() => {
                self.answer_reinvite_here(&m);
            }
            Method::Other(ref o) if o == "REFER" => self.refer(m, crate::rtp::Side::A),
            _ => {
                // INFO, UPDATE, OPTIONS, PRACK, NOTIFY in the dialog: acknowledged here.
                self.reply(&m, 200, "OK", &a_tag);
            }
        }
    }

    /// A response from the caller's phone: to our BYE or to a re-INVITE we sent it.
    pub(super) fn response_from_a(&mut self, code: u16, msg: &Message) {
        let is_invite = msg.cseq().is_some_and(|(_, m)| m == Method::Invite);
        if code >= 200 || is_invite {
            self.stop_retransmitting(&Key::Branch(msg.branch().to_string()));
        }
        if is_invite && code >= 200 {
            // ACK the caller's answer to our re-INVITE (with the INVITE's CSeq).
            let mut ack = self.a_request(Method::Ack, None);
            if let Some((_, v)) = ack.headers.iter_mut().find(|(n, _)| n == "cseq") {
                *v = format!("{} ACK", self.a.cseq - 1);
            }
            self.a.cseq -= 1;
            self.send_a(ack.to_bytes());
            if self.t38_asked {
                self.t38_answered(code, msg);
            } else {
                self.answer_reinvite(code, msg, true);
            }
        }
    }

    /// The To tag of the answering phone's dialog, for our answers in leg B.
    pub(super) fn b_tag(&self) -> String {
        self.winner()
            .and_then(|w| w.to_tag.clone())
            .unwrap_or_default()
    }
}

/// The digit of a SIP INFO (application/dtmf-relay `Signal=5`, or application/dtmf `5`).
pub(super) fn info_digit(m: &Message) -> Option<char> {
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
