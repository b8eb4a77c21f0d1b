//! Keys pressed during a call (RFC 4733 events the relay hears, or SIP INFO), looked at
//! for the three-way code ([`super::threeway`]) and the record code: an office user on either side keys it in to record the call
//! (both sides hear a tone, [`crate::rtp`]) and again to stop; the recording, both
//! voices mixed, is delivered to that user's mailbox like a voicemail ("Recorded call
//! with ..."), also when the call ends first. An outside party cannot record: only a
//! side that is an office user's phone counts.

use std::time::Duration;

use officebox_config::derive::THREE_WAY_CODE;
use tokio::time::Instant;
use tracing::{info, warn};

use super::{Call, State};
use crate::rtp::{Heard, Side};
use crate::voicemail::{self, Envelope, Kind};

/// The keys of a code are pressed within this of each other.
const KEY_GAP: Duration = Duration::from_secs(3);
/// Calls recorded at once on the box (each recording is held in memory while it is
/// made, up to `rtp::MAX_RECORDING`).
const MAX_RECORDINGS: u32 = 8;

/// Keys pressed on each side lately, and who records the call.
#[derive(Debug, Default)]
pub(super) struct Keys {
    pressed: [(String, Option<Instant>); 2],
    /// The side recording, its user's login, and its place among the box's recordings.
    recorder: Option<(Side, String, super::Slot)>,
}

impl Call {
    /// Something the relay heard: a key, or a recording handed over.
    pub(super) fn heard(&mut self, h: Heard) {
        match h {
            Heard::Key(side, key) => self.key(side, key),
            Heard::Recorded(samples) => {
                // Over (the code again, or the length limit): the next code starts anew.
                self.media.peers.send_modify(|p| p.record = false);
                let Some(rec) = self.setup.record.clone() else {
                    return;
                };
                if let Some(envelope) = self.recording_envelope(&rec) {
                    tokio::spawn(deliver(rec, envelope, samples));
                }
            }
        }
    }

    /// A key pressed on `side` during the call (by RFC 4733 or INFO): the record code,
    /// or the three-way code ([`super::threeway`]) when this call can make one.
    pub(super) fn key(&mut self, side: Side, key: char) {
        let record = self
            .setup
            .record
            .as_ref()
            .map(|r| r.code.clone())
            .filter(|c| !c.is_empty());
        let three_way =
            (self.setup.rooms.is_some() && self.setup.inbox.is_some()).then_some(THREE_WAY_CODE);
        if !matches!(self.state, State::Talking) || (record.is_none() && three_way.is_none()) {
            return;
        }
        let longest = record
            .as_ref()
            .map_or(0, String::len)
            .max(three_way.map_or(0, str::len));
        let i = usize::from(side == Side::B);
        let Some((keys, at)) = self.keys.pressed.get_mut(i) else {
            return;
        };
        if at.is_some_and(|t| t.elapsed() > KEY_GAP) {
            keys.clear();
        }
        keys.push(key);
        *at = Some(Instant::now());
        if keys.len() > longest {
            keys.drain(..keys.len() - longest);
        }
        if record.is_some_and(|c| keys.ends_with(c.as_str())) {
            keys.clear();
            self.toggle_recording(side);
        } else if three_way.is_some_and(|c| keys.ends_with(c)) {
            keys.clear();
            self.three_way_keyed(side);
        }
    }

    /// The record code keyed on `side`: recording starts, or (the same side) stops.
    fn toggle_recording(&mut self, side: Side) {
        let login = match side {
            Side::A => Some(self.setup.parties.caller_login.clone()).filter(|l| !l.is_empty()),
            Side::B => self.winner().and_then(|w| w.login.clone()),
        };
        let Some(login) = login else {
            // The provider's side (an outside party) cannot record.
            return;
        };
        match &self.keys.recorder {
            None => {
                let Some(slot) = self.setup.slots.take("recordings", MAX_RECORDINGS) else {
                    warn!(message = "phone: too many calls are being recorded; not this one", by = %login, limit = MAX_RECORDINGS);
                    return;
                };
                info!(message = "phone: recording the call", by = %login, caller = %self.setup.parties.caller_ext, callee = %self.setup.parties.callee_ext);
                self.keys.recorder = Some((side, login, slot));
                self.media.peers.send_modify(|p| p.record = true);
            }
            Some((s, ..)) if *s == side => {
                info!(message = "phone: recording stopped", by = %login);
                self.media.peers.send_modify(|p| p.record = false);
            }
            Some(_) => {}
        }
    }

    /// The mail a recording goes out in: to the user who asked for it, from the other
    /// party (the recorder is forgotten: the next code starts a new recording).
    fn recording_envelope(&mut self, rec: &super::RecordSetup) -> Option<Envelope> {
        let (side, login, _slot) = self.keys.recorder.take()?;
        let p = &self.setup.parties;
        let (name, ext) = match side {
            Side::A => (p.callee_ext.clone(), p.callee_ext.clone()),
            Side::B => (p.caller_name.clone(), p.caller_ext.clone()),
        };
        Some(Envelope {
            kind: Kind::Recording,
            caller_address: format!("{ext}@{}", p.domain),
            caller_name: name,
            caller_ext: ext,
            callee_address: format!("{login}@{}", p.domain),
            callee_name: login.clone(),
            callee_login: login,
            host: rec.host.clone(),
        })
    }

    /// Delivers a recording the relay handed over as it stopped (the call's end).
    pub(super) async fn deliver_recording(&mut self, samples: Vec<i16>) {
        let Some(rec) = self.setup.record.clone() else {
            return;
        };
        if let Some(envelope) = self.recording_envelope(&rec) {
            deliver(rec, envelope, samples).await;
        }
    }
}

/// Puts a recording into its user's mailbox (and the voicemail index).
async fn deliver(rec: super::RecordSetup, envelope: Envelope, samples: Vec<i16>) {
    let to = envelope.callee_login.clone();
    let length = voicemail::duration_text(samples.len());
    let done = tokio::task::spawn_blocking(move || {
        voicemail::deliver(
            &rec.db,
            &rec.data_dir,
            &envelope,
            &crate::mailbox::Targets::own(),
            &samples,
        )
    })
    .await;
    match done {
        Ok(Ok(name)) => info!(message = "phone: call recording delivered", %to, %length, %name),
        Ok(Err(error)) => warn!(message = "phone: call recording not delivered", %to, %error),
        Err(error) => warn!(message = "phone: call recording not delivered", %to, %error),
    }
}
