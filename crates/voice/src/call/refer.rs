//! Blind transfer (REFER, RFC 3515, as RFC 5589 describes it): one side of an answered
//! call (the transferor) asks the box to put the other side (the transferee) through to
//! somewhere else. The box checks that the transferor may call there (an outside number
//! is an outside call of theirs, with their routes and limits), answers 202 and tells the
//! transferor how it goes in NOTIFYs (`message/sipfrag`: 100 Trying, then 200 OK once the
//! target answers or its voicemail does, or why it failed).
//!
//! The box then holds the transferee as the attendant holds a caller it sends on
//! ([`super::transfer`]): the relay stops, the box's endpoint takes the transferee's port
//! and plays ringback, leg B rings the target with the codec the transferee already
//! uses, and on answer the relay joins them. The transferee's dialog never changes, so it
//! needs no new offer; one that was put on hold before the REFER is taken off hold by a
//! re-INVITE from the box. When the transferor is the caller (leg A), the answered phone
//! becomes leg A first ([`Call::swap_legs`]): the rest of the call cannot tell.
//!
//! The transferor's dialog lives on beside the call (its BYE answered, our NOTIFYs
//! resent until answered) until it hangs up; if it has not a few seconds after the last
//! NOTIFY, the box hangs it up.

use std::net::SocketAddr;
use std::time::Duration;

use officebox_store::Disposition;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

use super::fork::routed;
use super::leg::CallerLeg;
use super::{Call, Incoming, Peer, Routed, State, branch, token};
use crate::media::{self, Endpoint, Socket};
use crate::rtp::Side;
use crate::sip::{Message, Method, StartLine, param, uri_of, uri_user};

/// How long the transferor has to hang up after the last NOTIFY before the box does.
const TRANSFEROR_LINGER: Duration = Duration::from_secs(4);
/// When the dialog an attended transfer replaced is hung up.
const REPLACED_LINGER: Duration = Duration::from_millis(250);

/// A dialog the box is in, as the requests it sends there are built.
#[derive(Debug, Clone)]
pub(super) struct Dialog {
    pub(super) call_id: String,
    /// The Request-URI: the far end's Contact.
    uri: String,
    /// Our From (with our tag), and To (the far end with its tag).
    from: String,
    to: String,
    /// Proxies in the order our requests pass them.
    route: Vec<String>,
    cseq: u32,
    /// Our address as the far end sees it, and the user of our Contact.
    local: SocketAddr,
    contact_user: String,
    pub(super) peer: Peer,
}

impl Dialog {
    /// A new request in the dialog (the next CSeq).
    fn request(&mut self, method: Method) -> Message {
        self.cseq += 1;
        let mut m = Message {
            start: StartLine::Request {
                method: method.clone(),
                uri: self.uri.clone(),
            },
            headers: Vec::new(),
            body: Vec::new(),
        };
        m.push(
            "Via",
            format!("SIP/2.0/UDP {};branch={};rport", self.local, branch()),
        );
        m.push("Max-Forwards", "70");
        m.push("From", self.from.clone());
        m.push("To", self.to.clone());
        m.push("Call-ID", self.call_id.clone());
        m.push("CSeq", format!("{} {method}", self.cseq));
        m.push(
            "Contact",
            format!("<sip:{}@{}>", self.contact_user, self.local),
        );
        routed(&mut m, &self.route);
        m
    }
}

/// The side that asked for the transfer, until it hangs up.
#[derive(Debug)]
pub(super) struct Transferor {
    pub(super) dialog: Dialog,
    /// The REFER's branch (a retransmission is answered 202 again) and CSeq (the `id`
    /// of the NOTIFYs' Event).
    refer_branch: String,
    refer_cseq: u32,
    /// Whether it wants NOTIFYs (RFC 4488 `Refer-Sub: false`: no).
    pub(super) notify: bool,
    /// The final NOTIFY is out: it should hang up by then, or the box does.
    hang_up_at: Option<Instant>,
    /// Our BYE is out.
    bye_sent: bool,
    /// The branches of what we sent it (not sent again once it has hung up).
    sent: Vec<String>,
}

impl Transferor {
    /// The side that sent `refer`, in `dialog`.
    pub(super) fn new(dialog: Dialog, refer: &Incoming) -> Transferor {
        Transferor {
            dialog,
            refer_branch: refer.msg.branch().to_string(),
            refer_cseq: refer.msg.cseq().map_or(0, |(n, _)| n),
            notify: !refer
                .msg
                .header("refer-sub")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("false")),
            hang_up_at: None,
            bye_sent: false,
            sent: Vec::new(),
        }
    }

    /// The transferor's dialog in the other call of an attended transfer, which the
    /// transfer replaces: no NOTIFYs, hung up in a moment (once the transferor has
    /// heard the transfer is done in the call where it asked).
    pub(super) fn replaced(dialog: Dialog) -> Transferor {
        Transferor {
            dialog,
            refer_branch: String::new(),
            refer_cseq: 0,
            notify: false,
            hang_up_at: Some(Instant::now() + REPLACED_LINGER),
            bye_sent: false,
            sent: Vec::new(),
        }
    }
}

/// A transfer accepted, carried out at the loop's next turn ([`Call::transfer`]).
#[derive(Debug)]
pub(super) struct Pending {
    departing: Side,
    routed: Routed,
    dialled: String,
}

/// What a REFER asks for: whom to put through where.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct ReferTo {
    /// The user part of the Refer-To URI (an extension or a number).
    pub(super) dialled: String,
    /// The Replaces of an attended transfer, when there is one.
    pub(super) replaces: Option<String>,
}

impl ReferTo {
    /// Reads a Refer-To header (`<sip:201@box>`, `<sip:201@box?Replaces=...>`).
    pub(super) fn parse(value: &str) -> Option<ReferTo> {
        let uri = uri_of(value)?;
        let (uri, headers) = uri.split_once('?').unwrap_or((uri, ""));
        let scheme = uri.split(':').next()?.to_ascii_lowercase();
        if !matches!(scheme.as_str(), "sip" | "sips" | "tel") {
            return None;
        }
        let dialled = match scheme.as_str() {
            "tel" => uri.split_once(':')?.1.split(';').next()?.to_string(),
            _ => uri_user(uri)?,
        };
        let dialled: String = dialled.chars().filter(|c| !"-. ()".contains(*c)).collect();
        if dialled.is_empty()
            || !dialled
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+*#_".contains(c))
        {
            return None;
        }
        let replaces = headers.split('&').find_map(|h| {
            let (k, v) = h.split_once('=')?;
            k.eq_ignore_ascii_case("replaces").then(|| v.to_string())
        });
        Some(ReferTo { dialled, replaces })
    }
}

impl Call {
    /// A REFER in the answered call from `side`: refused with why, or accepted (202, a
    /// first NOTIFY) and carried out at the loop's next turn.
    pub(super) fn refer(&mut self, m: Incoming, side: Side) {
        let tag = match side {
            Side::A => self.a.tag.clone(),
            Side::B => self.b_tag(),
        };
        if let Some(t) = &self.transferor
            && t.refer_branch == m.msg.branch()
        {
            self.refer_accepted(&m, &tag, t.notify);
            return;
        }
        let refuse = |call: &Call, code: u16, reason: &str| {
            call.reply(&m, code, reason, &tag);
        };
        if !matches!(self.state, State::Talking) || self.winner().is_none() {
            return refuse(
                self,
                403,
                "Forbidden (only an answered call can be transferred)",
            );
        }
        if self.reinvite.is_some() || self.transferor.is_some() {
            return refuse(self, 491, "Request Pending");
        }
        let Some(to) = m.msg.header("refer-to").and_then(ReferTo::parse) else {
            return refuse(self, 400, "Bad Request (Refer-To)");
        };
        // Who transfers: an office user (a provider's REFER is not followed).
        let by = match side {
            Side::A => Some(self.setup.parties.caller_login.clone()),
            Side::B => self.winner().and_then(|w| w.login.clone()),
        }
        .filter(|l| !l.is_empty());
        let Some(by) = by else {
            return refuse(self, 403, "Forbidden (only office phones transfer calls)");
        };
        // The box plays to the transferee while the target rings: G.711 only.
        if media::negotiate(&self.b_answer).is_none() {
            return refuse(self, 488, "Not Acceptable Here (a transfer needs G.711)");
        }
        if let Some(replaces) = &to.replaces {
            return self.refer_replacing(m, side, tag, by, &replaces.clone());
        }
        let transferee = match side {
            Side::A => super::Transferee {
                name: self.setup.parties.callee_ext.clone(),
                number: self.setup.parties.callee_ext.clone(),
            },
            Side::B => super::Transferee {
                name: self.setup.parties.caller_name.clone(),
                number: self.setup.parties.caller_ext.clone(),
            },
        };
        let Some(router) = self.setup.router.clone() else {
            return refuse(self, 403, "Forbidden");
        };
        let routed = router.transfer(&by, m.source.ip(), &to.dialled, &transferee);
        if let Routed::Refused(code) = routed {
            info!(message = "phone: transfer refused", by = %by, to = %to.dialled, code);
            let reason = match code {
                403 => "Forbidden (you may not call there)",
                _ => reason_of(code),
            };
            return refuse(self, code, reason);
        }
        let dialog = match side {
            Side::A => self.dialog_of_a(),
            Side::B => match self.dialog_of_winner() {
                Some(d) => d,
                None => return refuse(self, 403, "Forbidden"),
            },
        };
        let transferor = Transferor::new(dialog, &m);
        self.refer_accepted(&m, &tag, transferor.notify);
        self.transferor = Some(transferor);
        self.notify_transferor("100 Trying", false);
        info!(message = "phone: transfer accepted", by = %by, to = %to.dialled);
        self.state = State::Transferring(Box::new(Pending {
            departing: side,
            routed,
            dialled: to.dialled,
        }));
    }

    /// 202 Accepted to a REFER (saying there will be no NOTIFYs when asked for none).
    fn refer_accepted(&self, m: &Incoming, tag: &str, notify: bool) {
        let mut r = m.msg.response(202, "Accepted", tag);
        if !notify {
            r.push("Refer-Sub", "false");
        }
        self.setup.wire.send(r.to_bytes(), m.source, m.transport);
    }

    /// Leg A's dialog, as the box's requests to the caller are built.
    pub(super) fn dialog_of_a(&self) -> Dialog {
        let invite = &self.a.invite;
        let to = invite.header("to").unwrap_or("").to_string();
        Dialog {
            call_id: invite.call_id().to_string(),
            uri: invite
                .header("contact")
                .and_then(uri_of)
                .or_else(|| invite.header("from").and_then(uri_of))
                .unwrap_or("sip:invalid")
                .to_string(),
            from: if param(&to, "tag").is_some() {
                to
            } else {
                format!("{to};tag={}", self.a.tag)
            },
            to: invite.header("from").unwrap_or("").to_string(),
            route: invite.values("record-route").map(str::to_string).collect(),
            cseq: self.a.cseq,
            local: self.a_local,
            contact_user: self.setup.parties.callee_ext.clone(),
            peer: self.a.peer,
        }
    }

    /// The answering phone's dialog (leg B), as the box's requests to it are built.
    pub(super) fn dialog_of_winner(&self) -> Option<Dialog> {
        let w = self.winner()?;
        Some(Dialog {
            call_id: self.setup.b_call_id.clone(),
            uri: w.dialog_uri(),
            from: format!("{};tag={}", self.b_from, self.b_from_tag),
            to: match &w.to_tag {
                Some(t) => format!("{};tag={t}", self.b_to),
                None => self.b_to.clone(),
            },
            route: w.route.clone(),
            cseq: self.b_cseq,
            local: self.b_local,
            contact_user: self.b_contact_user.clone(),
            peer: w.peer,
        })
    }

    /// Tells the transferor how the transfer goes (`status`: "200 OK"); `last`: the
    /// subscription ends with it, and the transferor should hang up.
    pub(super) fn notify_transferor(&mut self, status: &str, last: bool) {
        let Some(t) = self.transferor.as_mut() else {
            return;
        };
        if last {
            t.hang_up_at = Some(Instant::now() + TRANSFEROR_LINGER);
        }
        if !t.notify || t.bye_sent {
            return;
        }
        let mut n = t.dialog.request(Method::Notify);
        n.push("Event", format!("refer;id={}", t.refer_cseq));
        n.push(
            "Subscription-State",
            if last {
                "terminated;reason=noresource".to_string()
            } else {
                "active;expires=60".to_string()
            },
        );
        n.push("Content-Type", "message/sipfrag;version=2.0");
        n.body = format!("SIP/2.0 {status}\r\n").into_bytes();
        t.sent.push(n.branch().to_string());
        let peer = t.dialog.peer;
        self.send_b(peer, n.to_bytes());
    }

    /// The transfer is over (`status`: how, for the last NOTIFY), if one was going on.
    pub(super) fn transfer_done(&mut self, status: &str) {
        if self
            .transferor
            .as_ref()
            .is_some_and(|t| t.hang_up_at.is_none())
        {
            self.notify_transferor(status, true);
        }
    }

    /// Hangs up the transferor (once).
    pub(super) fn bye_transferor(&mut self) {
        let Some(t) = self.transferor.as_mut() else {
            return;
        };
        if t.bye_sent {
            return;
        }
        t.bye_sent = true;
        let bye = t.dialog.request(Method::Bye);
        t.sent.push(bye.branch().to_string());
        let peer = t.dialog.peer;
        self.send_b(peer, bye.to_bytes());
    }

    /// Whether `m` belongs to the transferor's dialog.
    pub(super) fn is_transferors(&self, m: &Message) -> bool {
        self.transferor
            .as_ref()
            .is_some_and(|t| t.dialog.call_id == m.call_id())
    }

    /// A message in the transferor's dialog: its BYE (it is gone), answers to our
    /// NOTIFYs and BYE, anything else answered and otherwise ignored.
    pub(super) fn message_from_transferor(&mut self, m: Incoming) {
        match m.msg.start {
            StartLine::Response { code, .. } => {
                if code >= 200 {
                    self.stop_retransmitting(&super::timers::Key::Branch(
                        m.msg.branch().to_string(),
                    ));
                }
                if m.msg
                    .cseq()
                    .is_some_and(|(_, method)| method == Method::Bye)
                {
                    self.transferor = None;
                }
            }
            StartLine::Request { ref method, .. } => {
                let tag = self
                    .transferor
                    .as_ref()
                    .and_then(|t| param(&t.dialog.from, "tag").map(str::to_string))
                    .unwrap_or_default();
                match method {
                    Method::Ack => {}
                    Method::Bye => {
                        self.reply(&m, 200, "OK", &tag);
                        // Its subscription ends with it: our NOTIFYs are not sent again.
                        if let Some(t) = self.transferor.take() {
                            for b in t.sent {
                                self.stop_retransmitting(&super::timers::Key::Branch(b));
                            }
                        }
                    }
                    Method::Invite => self.reply(&m, 488, "Not Acceptable Here", &tag),
                    Method::Other(o) if o == "REFER" => {
                        self.reply(&m, 491, "Request Pending", &tag);
                    }
                    _ => self.reply(&m, 200, "OK", &tag),
                }
            }
        }
    }

    /// When the transferor is due to be hung up.
    pub(super) fn transferor_due(&self) -> Option<Instant> {
        self.transferor
            .as_ref()
            .filter(|t| !t.bye_sent)
            .and_then(|t| t.hang_up_at)
    }

    /// Carries out the transfer accepted: the transferee is held by the box, with
    /// ringback, while the target rings.
    pub(super) async fn transfer(&mut self) {
        let State::Transferring(p) = std::mem::replace(&mut self.state, State::Talking) else {
            return;
        };
        let Pending {
            departing,
            routed,
            dialled,
        } = *p;
        // The relay (or the music on hold) stops; a recording made so far is delivered.
        let Some((lease_a, lease_b)) = self.stop_media().await else {
            self.transfer_failed();
            return;
        };
        self.media.heard = None;
        let Some(mut n) = media::negotiate(&self.b_answer) else {
            self.transfer_failed();
            return;
        };
        let peers = *self.media.peers.borrow();
        let was_held = match departing {
            Side::B => self.b_held_a,
            Side::A => self.a_held_b,
        };
        // Parking: the transferor's port is kept, to tell it the place.
        let parking = matches!(&routed, Routed::Ring(r) if super::park::is_park(&r.callee));
        let (lease, remote) = match departing {
            Side::B => {
                if parking {
                    self.transferor_media = Some((lease_b, peers.b));
                }
                (lease_a, self.a_moved.or(peers.a))
            }
            Side::A => {
                if parking {
                    self.transferor_media = Some((lease_a, peers.a));
                }
                let remote = peers.b;
                self.swap_legs();
                (lease_b, remote)
            }
        };
        n.remote = remote;
        n.events = peers_events(&peers, departing);
        // The transferee's audio now comes from the box; its dialog goes on as it was.
        self.forks.clear();
        self.setup.b_call_id = format!("{}@officebox", token());
        if let Some(inbox) = &self.setup.inbox {
            inbox.route(&self.setup.b_call_id);
        }
        self.b_from_tag = token();
        self.b_cseq = 1;
        let local = self.setup.wire.local();
        self.b_local = SocketAddr::new(local.ip(), local.port());
        let p = &self.setup.parties;
        self.b_from = format!(
            "\"{}\" <sip:{}@{}>",
            p.caller_name.replace('"', ""),
            p.caller_ext,
            p.domain
        );
        self.b_contact_user = p.caller_ext.clone();
        self.line = 0;
        self.line_slot = None;
        self.a_moved = None;
        self.a_held_b = false;
        self.b_held_a = false;
        let (digits, digits_rx) = mpsc::unbounded_channel();
        self.a_digits = digits;
        self.boxed = Some(n);
        let ep = Endpoint::new(Socket::Leased(lease), n, digits_rx);
        if was_held {
            // Put on hold before the REFER: the box takes it off hold (its audio is
            // what the target will hear).
            let offer = media::answer(self.media.ip_a, self.media.port_a, &n);
            let re = self.a_request(Method::Invite, Some(&offer));
            self.send_to_a_reliably(re.to_bytes());
        }
        info!(message = "phone: transferring", caller = %self.setup.parties.caller_ext, to = %dialled);
        self.ring_on(ep, routed).await;
    }

    /// Says `say` to the transferor on its own port (where its call is parked), then
    /// tells it the transfer is done.
    pub(super) async fn tell_transferor(&mut self, say: Vec<i16>) {
        if let Some((lease, remote)) = self.transferor_media.take()
            && let Some(mut n) = media::negotiate(&self.b_answer)
        {
            n.remote = remote;
            let mut ep = Endpoint::new(Socket::Leased(lease), n, mpsc::unbounded_channel().1);
            ep.play(&say, false).await;
        }
        self.transfer_done("200 OK");
    }

    /// The transfer could not be carried out: the transferor hears why, and the
    /// transferee is hung up (its audio went with the relay).
    fn transfer_failed(&mut self) {
        warn!("phone: the transfer failed");
        self.transfer_done("500 Server Internal Error");
        self.disposition = Disposition::Failed;
        let bye = self.a_request(Method::Bye, None);
        self.send_to_a_reliably(bye.to_bytes());
        self.ending();
    }

    /// The caller transfers the phone that answered: that phone's dialog becomes leg A
    /// (the box its UAC, but requests in it are built the same way), and the caller's
    /// the transferor's. The parties swap with it.
    pub(super) fn swap_legs(&mut self) {
        let Some(w) = self.winner() else {
            return;
        };
        let mut invite = Message {
            start: StartLine::Request {
                method: Method::Invite,
                uri: w.dialog_uri(),
            },
            headers: Vec::new(),
            body: self.b_answer.clone(),
        };
        let far = match &w.to_tag {
            Some(t) => format!("{};tag={t}", self.b_to),
            None => self.b_to.clone(),
        };
        invite.push("From", far);
        invite.push("To", format!("{};tag={}", self.b_from, self.b_from_tag));
        invite.push("Call-ID", self.setup.b_call_id.clone());
        invite.push("CSeq", format!("{} INVITE", self.b_cseq));
        invite.push("Contact", format!("<{}>", w.dialog_uri()));
        // Leg A's requests pass its Record-Route in order: the fork's route already is.
        for r in &w.route {
            invite.push("Record-Route", r.clone());
        }
        let leg = CallerLeg::answered(invite, w.peer, self.b_from_tag.clone(), self.b_cseq);
        self.a = leg;
        self.a_local = self.b_local;
        self.media.ip_a = self.media.ip_b;
        self.media.port_a = self.media.port_b;
        let p = &mut self.setup.parties;
        std::mem::swap(&mut p.caller_login, &mut p.callee_login);
        std::mem::swap(&mut p.caller_ext, &mut p.callee_ext);
        p.caller_name.clone_from(&p.caller_ext);
    }
}

/// The reason phrase of a refusal the router gives.
fn reason_of(code: u16) -> &'static str {
    match code {
        403 => "Forbidden",
        404 => "Not Found",
        486 => "Busy Here",
        480 => "Temporarily Unavailable",
        487 => "Request Terminated",
        _ => "Service Unavailable",
    }
}

/// A status line for a NOTIFY's sipfrag (`404 Not Found`).
pub(super) fn status_line(code: u16) -> String {
    format!("{code} {}", reason_of(code))
}

/// The telephone-event type the transferee uses (the one the relay saw it send).
fn peers_events(peers: &crate::rtp::Peers, departing: Side) -> Option<u8> {
    match departing {
        Side::B => peers.events_a,
        Side::A => peers.events_b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refer_to_names_an_extension_a_number_or_an_attended_transfer() {
        assert_eq!(
            ReferTo::parse("<sip:102@office.test>"),
            Some(ReferTo {
                dialled: "102".into(),
                replaces: None
            })
        );
        assert_eq!(
            ReferTo::parse("sip:+1-555-123-4567@office.test;user=phone").map(|r| r.dialled),
            Some("+15551234567".into())
        );
        assert_eq!(
            ReferTo::parse("<tel:5551234>").map(|r| r.dialled),
            Some("5551234".into())
        );
        let attended =
            ReferTo::parse("<sip:103@office.test?Replaces=abc%40host%3Bto-tag%3D1%3Bfrom-tag%3D2>")
                .unwrap();
        assert_eq!(attended.dialled, "103");
        assert_eq!(
            attended.replaces.as_deref(),
            Some("abc%40host%3Bto-tag%3D1%3Bfrom-tag%3D2")
        );
        for bad in [
            "",
            "<>",
            "<mailto:a@b>",
            "<sip:office.test>",
            "<sip:a\"b@x>",
        ] {
            assert_eq!(ReferTo::parse(bad), None, "{bad}");
        }
    }
}
