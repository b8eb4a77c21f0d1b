//! A ring group's call: its members rung stage by stage (all at once is one stage; hunt
//! is a stage per member, in order), each stage for its time; a member busy or refusing
//! moves the hunt on at once. When the last stage is over, the group's no-answer
//! destination takes the call (its voicemail, in the setup), else the caller hears 480.

use tokio::time::Instant;
use tracing::debug;

use super::{Call, Callee, Stage};

/// Phones rung at once in one stage at most (a group rings more than one person's).
const MAX_GROUP_FORKS: usize = 16;

impl Call {
    /// Rings the first stage from `from` on that has a phone registered; after the last,
    /// the no-answer destination.
    pub(super) fn ring_stage(&mut self, from: usize) {
        let Callee::Group(stages) = &self.setup.callee else {
            return;
        };
        let next: Option<(usize, Stage)> = stages
            .iter()
            .enumerate()
            .skip(from)
            .find(|(_, s)| !s.is_empty())
            .map(|(i, s)| (i, s.clone()));
        if !self.state.is_ringing() {
            return;
        }
        let Some((i, stage)) = next else {
            self.cancel_forks(None);
            self.voicemail_or_fail(480, "Temporarily Unavailable");
            return;
        };
        self.cancel_forks(None);
        self.stage = i;
        self.ring_until = Instant::now() + stage.ring;
        self.b_cseq += 1;
        let cseq = self.b_cseq;
        let before = self.forks.len();
        for (login, b) in stage.phones.iter().take(MAX_GROUP_FORKS) {
            self.ring_phone(b, cseq, Some(login.clone()));
        }
        for lines in &stage.outside {
            if !self.ring_outside(lines, cseq) {
                tracing::warn!(message = "phone: no trunk has room for a ring group's outside number", group = %self.setup.parties.callee_ext);
            }
        }
        if self.forks.len() == before {
            // Nothing could be rung in this stage: the next.
            self.ring_stage(i + 1);
            return;
        }
        debug!(
            message = "phone: ringing the group",
            caller = %self.setup.parties.caller_ext,
            group = %self.setup.parties.callee_ext,
            stage = i + 1,
            phones = stage.phones.len().min(MAX_GROUP_FORKS)
        );
    }

    /// Whether a later stage is left to ring (the ringing time of this one ran out).
    pub(super) fn has_next_stage(&self) -> bool {
        match &self.setup.callee {
            Callee::Group(stages) => stages.iter().skip(self.stage + 1).any(|s| !s.is_empty()),
            _ => false,
        }
    }
}
