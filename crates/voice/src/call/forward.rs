//! Call forwarding when busy or not answered: instead of the callee's voicemail, the
//! call rings where the callee forwards it ([`super::Forwards`], resolved by the call's
//! router as if the callee had dialled it: another user's phones, or a number as an
//! outside call of theirs). The caller, not answered yet, hears nothing change but the
//! ringing going on; the new callee's voicemail (or, for a number, the first callee's)
//! is behind it. A call is forwarded a few times at most (two users forwarding to each
//! other must not ring for ever).

use tokio::time::Instant;
use tracing::info;

use super::{Call, Routed, State, Transferee};

/// Forwards followed in one call at most.
const MAX_FORWARDED: u8 = 3;

impl Call {
    /// Forwards the ringing call for `code` (busy: 486, 600; no answer: 480, 408) if the
    /// callee asked for it; `false`: voicemail (or the refusal) as usual.
    pub(super) fn forward_on(&mut self, code: u16) -> bool {
        if !self.state.is_ringing()
            || self.boxed.is_some()
            || self.forwarded >= MAX_FORWARDED
            || self.setup.menu.is_some()
        {
            return false;
        }
        let Some(fw) = self.setup.forwards.take() else {
            return false;
        };
        let to = match code {
            486 | 600 => fw.busy,
            480 | 408 => fw.no_answer,
            _ => None,
        };
        let (Some(to), Some(router)) = (to, self.setup.router.clone()) else {
            return false;
        };
        let transferee = Transferee {
            name: self.setup.parties.caller_name.clone(),
            number: self.setup.parties.caller_ext.clone(),
        };
        // The box's own address: the forwarding is the user's, not a remote phone's.
        let here = self.setup.wire.local().ip();
        let Routed::Ring(ring) = router.transfer(&fw.by, here, &to, &transferee) else {
            return false;
        };
        info!(message = "phone: call forwarded", user = %fw.by, to = %to, code);
        self.forwarded += 1;
        self.ring_instead(*ring);
        true
    }

    /// An outside call none of whose lines carried it goes to its fallback
    /// ([`super::Setup::fallback`]: a site's box that did not answer), once; `false`
    /// when it has none, or it leads nowhere now.
    pub(super) fn fall_back(&mut self) -> bool {
        if !self.state.is_ringing() || self.boxed.is_some() {
            return false;
        }
        let (Some(to), Some(router)) = (self.setup.fallback.take(), self.setup.router.clone())
        else {
            return false;
        };
        let Routed::Ring(ring) = router.route(&to) else {
            return false;
        };
        info!(message = "phone: the line did not carry the call; it goes to the fallback", to = %to);
        self.ring_instead(*ring);
        true
    }

    /// The ringing call rings `ring`'s callee instead, with its voicemail behind (else
    /// the one it had); the caller hears the ringing go on.
    fn ring_instead(&mut self, ring: super::Ring) {
        self.forks.clear();
        self.stage = 0;
        self.line = 0;
        self.line_slot = None;
        self.setup.callee = ring.callee;
        self.setup.parties.callee_login = ring.login;
        self.setup.parties.callee_ext.clone_from(&ring.ext);
        self.b_to = format!("<sip:{}@{}>", ring.ext, self.setup.parties.domain);
        if ring.voicemail.is_some() {
            self.setup.voicemail = ring.voicemail;
        }
        self.setup.forwards = ring.forwards;
        self.setup.fallback = ring.fallback;
        self.setup.held.extend(ring.held);
        let rang = matches!(self.state, State::Ringing { rang: true });
        self.state = State::Ringing { rang };
        self.ring_until = Instant::now() + self.setup.no_answer;
        self.ring_callee();
    }
}
