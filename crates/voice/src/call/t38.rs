//! A fax call the box answered going over to T.38: the far end's re-INVITE offering it
//! is answered here (when the trunk allows), or the box asks for it itself (the trunk
//! says `offered`) and goes over if the far end agrees. Either way the fax machine is
//! told through its [`FaxLink`](crate::fax::FaxLink) and starts again on T.38 on the same
//! port. Nothing else makes the box send a re-INVITE during a fax (no session refresh:
//! a re-INVITE in the middle of a page loses it).

use officebox_config::model::T38Mode;
use officebox_fax::udptl::MAX_DATAGRAM;
use tracing::info;

use super::{Call, Incoming};
use crate::fax::T38Far;
use crate::sdp;
use crate::sip::{Message, Method};

impl Call {
    /// The box asks the caller for T.38 (a re-INVITE replacing the audio stream).
    pub(super) fn ask_for_t38(&mut self) {
        let offer = sdp::t38_description(self.media.ip_a, self.media.port_a, MAX_DATAGRAM, None);
        let re = self.a_request(Method::Invite, Some(&offer));
        self.send_to_a_reliably(re.to_bytes());
        self.t38_asked = true;
        info!(message = "phone: asking the caller for T.38", caller = %self.setup.parties.caller_ext);
    }

    /// A re-INVITE from the caller offering T.38, answered (`true`), or none (`false`:
    /// the usual answer). Refused (488, the fax goes on over audio) when the call is no
    /// fax the box answered, its trunk keeps faxes on audio, or a page has come already.
    pub(super) fn t38_reinvite(&mut self, m: &Incoming) -> bool {
        let Some(offered) = sdp::t38(&m.msg.body) else {
            return false;
        };
        let tag = self.a.tag.clone();
        let far = T38Far {
            addr: offered.addr,
            max_datagram: offered.max_datagram.unwrap_or(MAX_DATAGRAM),
        };
        let accepted = match &self.fax {
            Some((link, mode)) if *mode != T38Mode::Off => link.switch(far),
            _ => false,
        };
        if !accepted {
            info!(message = "phone: T.38 refused; the call stays on audio", caller = %self.setup.parties.caller_ext);
            self.reply(m, 488, "Not Acceptable Here", &tag);
            return true;
        }
        // Our own offer crossed theirs: theirs is taken (ours gets their 491).
        self.t38_asked = false;
        let mut r = m.msg.response(200, "OK", &tag);
        r.push(
            "Contact",
            format!("<sip:{}@{}>", self.setup.parties.callee_ext, self.a_local),
        );
        r.push("Content-Type", "application/sdp");
        r.body = sdp::t38_description(
            self.media.ip_a,
            self.media.port_a,
            MAX_DATAGRAM,
            Some(&m.msg.body),
        );
        self.setup.wire.send(r.to_bytes(), m.source, m.transport);
        info!(message = "phone: the fax goes over to T.38, as the caller asked", caller = %self.setup.parties.caller_ext, far = %far.addr);
        true
    }

    /// The caller's answer to the box's request for T.38 (already acknowledged): over
    /// to T.38 if it agreed, else the fax goes on over audio.
    pub(super) fn t38_answered(&mut self, code: u16, msg: &Message) {
        self.t38_asked = false;
        let agreed = (200..300)
            .contains(&code)
            .then(|| sdp::t38(&msg.body))
            .flatten();
        match (agreed, &self.fax) {
            (Some(t), Some((link, _))) => {
                let far = T38Far {
                    addr: t.addr,
                    max_datagram: t.max_datagram.unwrap_or(MAX_DATAGRAM),
                };
                if link.switch(far) {
                    info!(message = "phone: the fax goes over to T.38", caller = %self.setup.parties.caller_ext, far = %far.addr);
                }
            }
            _ => {
                info!(message = "phone: the caller does not take T.38; the fax stays on audio", caller = %self.setup.parties.caller_ext, code);
            }
        }
    }
}
