//! Re-INVITEs (hold, resume, a new codec) from either side of an answered call: the
//! same offer, pointed at the box, goes to the other side; its answer comes back the
//! same way. One at a time: another meanwhile is told 491 Request Pending. An UPDATE
//! with an offer (a provider moving its media) is answered by the box itself.

use super::fork::routed;
use super::{Call, Incoming, Peer, branch};
use crate::sdp;
use crate::sip::{Message, Method, param};

/// A re-INVITE carried across: which side sent it, and its request.
#[derive(Debug)]
pub(super) struct ReInvite {
    pub(super) from_a: bool,
    pub(super) request: Message,
    /// The branch of our INVITE to the other side.
    pub(super) our_branch: String,
}

impl Call {
    /// A retransmission of the re-INVITE being carried across (answered when the other
    /// side answers).
    pub(super) fn is_pending_reinvite(&self, branch: &str) -> bool {
        self.reinvite
            .as_ref()
            .is_some_and(|re| re.request.top_via().and_then(|v| param(v, "branch")) == Some(branch))
    }

    /// A re-INVITE from one side: the same offer, pointed at the box, to the other side.
    pub(super) fn forward_reinvite(&mut self, req: Message, from_a: bool) {
        let side = if from_a {
            crate::rtp::Side::A
        } else {
            crate::rtp::Side::B
        };
        if self.reinvite.is_none() && self.hold_reinvite(&req, side) {
            return;
        }
        let Some((w_uri, w_tag, w_peer, w_route)) = self
            .winner()
            .map(|w| (w.dialog_uri(), w.to_tag.clone(), w.peer, w.route.clone()))
        else {
            let r = req.response(491, "Request Pending", &self.a.tag);
            self.send_a(r.to_bytes());
            return;
        };
        if self.reinvite.is_some() {
            let r = req.response(491, "Request Pending", &self.a.tag);
            let to = if from_a { self.a.peer } else { w_peer };
            self.send(r.to_bytes(), to);
            return;
        }
        let media = sdp::audio(&req.body).map(|m| m.addr);
        if !req.body.is_empty() {
            let hold = sdp::is_hold(&req.body);
            if from_a {
                self.a_held_b = hold;
            } else {
                self.b_held_a = hold;
            }
        }
        let our_branch = branch();
        let trying = req.response(100, "Trying", "").to_bytes();
        if from_a {
            self.send_a(trying);
            if media.is_some() {
                self.media.peers.send_modify(|p| p.a = media);
            }
            let offer = sdp::rewrite(&req.body, self.media.ip_b, self.media.port_b);
            self.b_cseq += 1;
            let mut r = self.b_request(
                Method::Invite,
                &w_uri,
                self.b_cseq,
                &our_branch,
                w_tag.as_deref(),
                (!req.body.is_empty()).then_some(offer.as_slice()),
            );
            routed(&mut r, &w_route);
            self.send_b(w_peer, r.to_bytes());
        } else {
            self.send(trying, w_peer);
            if media.is_some() {
                self.media.peers.send_modify(|p| p.b = media);
            }
            let offer = sdp::rewrite(&req.body, self.media.ip_a, self.media.port_a);
            let mut r = self.a_request(
                Method::Invite,
                (!req.body.is_empty()).then_some(offer.as_slice()),
            );
            // Our own branch, remembered to match the answer.
            if let Some((_, v)) = r.headers.iter_mut().find(|(n, _)| n == "via") {
                *v = format!("SIP/2.0/UDP {};branch={our_branch};rport", self.a_local);
            }
            self.send_to_a_reliably(r.to_bytes());
        }
        self.reinvite = Some(ReInvite {
            from_a,
            request: req,
            our_branch,
        });
    }

    /// The callee's phone answered the re-INVITE we carried to it: ACKed, and the
    /// answer goes back to the caller.
    pub(super) fn reinvite_answered_by_b(&mut self, code: u16, m: Incoming) {
        let (uri, to_tag, route) = self
            .winner()
            .map(|w| (w.dialog_uri(), w.to_tag.clone(), w.route.clone()))
            .unwrap_or_default();
        let mut ack = self.b_request(
            Method::Ack,
            &uri,
            self.b_cseq,
            &branch(),
            to_tag.as_deref(),
            None,
        );
        routed(&mut ack, &route);
        self.send(
            ack.to_bytes(),
            Peer {
                addr: m.source,
                transport: m.transport,
            },
        );
        self.answer_reinvite(code, &m.msg, false);
    }

    /// The other side answered a re-INVITE (the caller, `answered_by_a`, or the callee's
    /// phone): pass the answer back to whoever asked.
    pub(super) fn answer_reinvite(&mut self, code: u16, msg: &Message, answered_by_a: bool) {
        let Some(re) = self.reinvite.take() else {
            return;
        };
        if re.from_a == answered_by_a {
            self.reinvite = Some(re);
            return;
        }
        let media = sdp::audio(&msg.body).map(|m| m.addr);
        let (ip, port, local, tag) = if re.from_a {
            if code < 300 && media.is_some() {
                self.media.peers.send_modify(|p| p.b = media);
            }
            (
                self.media.ip_a,
                self.media.port_a,
                self.a_local,
                self.a.tag.clone(),
            )
        } else {
            if code < 300 && media.is_some() {
                self.media.peers.send_modify(|p| p.a = media);
            }
            (
                self.media.ip_b,
                self.media.port_b,
                self.b_local,
                self.b_tag(),
            )
        };
        let reason = if code < 300 { "OK" } else { "Request Failed" };
        let mut r = re.request.response(code.max(200), reason, &tag);
        r.push(
            "Contact",
            format!("<sip:{}@{local}>", self.setup.parties.callee_ext),
        );
        if !msg.body.is_empty() {
            r.push("Content-Type", "application/sdp");
            r.body = sdp::rewrite(&msg.body, ip, port);
        }
        let bytes = r.to_bytes();
        if re.from_a {
            self.send_a(bytes);
        } else if let Some(w) = self.winner() {
            self.send(bytes, w.peer);
        }
    }
}

impl Call {
    /// An UPDATE with an offer (RFC 3311) in the call, from the caller (`from_a`) or the
    /// answering side: answered here, from the relay's port for that side, in the G.711
    /// law and telephone-event the offer has (488 without G.711). The side's new address
    /// goes to the relay; the other side goes on as it was (the relay is in between, so
    /// it need not hear of it). An UPDATE without a body (a session refresh) is just OK.
    pub(super) fn answer_update(&mut self, m: &Incoming, from_a: bool, tag: &str) {
        if m.msg.body.is_empty() {
            self.reply(m, 200, "OK", tag);
            return;
        }
        let Some(n) = crate::media::negotiate(&m.msg.body) else {
            self.reply(m, 488, "Not Acceptable Here", tag);
            return;
        };
        let (ip, port) = if from_a {
            (self.media.ip_a, self.media.port_a)
        } else {
            (self.media.ip_b, self.media.port_b)
        };
        if let Some(media) = crate::sdp::audio(&m.msg.body) {
            self.media.peers.send_modify(|p| {
                if from_a {
                    p.a = Some(media.addr);
                    p.events_a = n.events;
                } else {
                    p.b = Some(media.addr);
                    p.events_b = n.events;
                }
            });
        }
        let mut r = m.msg.response(200, "OK", tag);
        r.push("Content-Type", "application/sdp");
        r.body = crate::media::answer(ip, port, &n);
        self.setup.wire.send(r.to_bytes(), m.source, m.transport);
    }

    /// A re-INVITE or UPDATE from a caller the box itself is talking to (a session
    /// refresh, say): answered with the box's own SDP on the caller's port, in the codec
    /// agreed when the box answered (an offer without it is 488: the box's endpoint
    /// keeps to it). A new address is kept for when the call is joined.
    pub(super) fn answer_reinvite_here(&mut self, m: &Incoming) {
        let Some(agreed) = self.boxed else {
            return;
        };
        if self.t38_reinvite(m) {
            return;
        }
        let mut n = agreed;
        if !m.msg.body.is_empty() {
            let offered = crate::media::negotiate(&m.msg.body);
            let keeps_law = sdp::audio(&m.msg.body).is_some()
                && std::str::from_utf8(&m.msg.body).is_ok_and(|t| {
                    t.lines()
                        .find(|l| l.starts_with("m=audio "))
                        .is_some_and(|l| {
                            l.split_whitespace()
                                .skip(3)
                                .any(|pt| pt == agreed.law.payload_type().to_string())
                        })
                });
            let Some(offered) = offered.filter(|_| keeps_law) else {
                let tag = self.a.tag.clone();
                self.reply(m, 488, "Not Acceptable Here", &tag);
                return;
            };
            n.events = offered.events;
            self.a_moved = sdp::audio(&m.msg.body).map(|a| a.addr);
            if matches!(self.state, super::State::Talking) {
                // Joined to another call's relay: the relay follows at once.
                let moved = self.a_moved.take();
                self.media.peers.send_modify(|p| p.a = moved);
            }
        }
        let mut r = m.msg.response(200, "OK", &self.a.tag);
        r.push(
            "Contact",
            format!("<sip:{}@{}>", self.setup.parties.callee_ext, self.a_local),
        );
        r.push("Content-Type", "application/sdp");
        r.body = crate::media::answer(self.media.ip_a, self.media.port_a, &n);
        self.setup.wire.send(r.to_bytes(), m.source, m.transport);
    }
}
