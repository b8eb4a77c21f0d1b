//! The box answering instead of a phone: when nobody answers, the line is busy, or no
//! phone is registered, the caller's voicemail takes the call (the callee's greeting,
//! then a recording delivered by email); a call to the voicemail extension gets the menu.
//! The relay stops and gives its caller-side port to an endpoint of the box's own
//! ([`crate::media`]), which plays and records there.

use officebox_store::Disposition;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::{Call, Incoming, State};
use crate::media::{self, Endpoint, Socket};
use crate::sip::Method;
use crate::voicemail;

/// What voicemail needs to know about the callee.
#[derive(Debug, Clone)]
pub struct VoicemailSetup {
    pub data_dir: std::path::PathBuf,
    /// The phone service's one handle on the state database (the voicemail index).
    pub db: std::sync::Arc<std::sync::Mutex<officebox_store::Db>>,
    pub envelope: voicemail::Envelope,
    pub max: std::time::Duration,
}

/// What the box's own side of a call came to.
#[derive(Debug)]
pub(super) enum MediaJob {
    Deposit(voicemail::Deposit),
    /// The menu ended; whether the caller was still there.
    Menu(bool),
}

/// Who answers for the box.
enum Answering {
    /// The voicemail menu (a call to the voicemail extension).
    Menu(crate::menu::MenuSetup),
    /// The callee's voicemail.
    Deposit(VoicemailSetup),
}

/// A voicemail being left (or the menu playing).
#[derive(Debug)]
pub(super) struct Recording {
    pub(super) hangup: CancellationToken,
    pub(super) digits: mpsc::UnboundedSender<char>,
    pub(super) task: tokio::task::JoinHandle<MediaJob>,
    /// The caller's BYE, answered once the message is on disk.
    pub(super) bye: Option<Incoming>,
}

impl Call {
    /// Busy, no answer, no phone: voicemail takes the call when there is one (at the
    /// loop's next turn, [`Call::enter_voicemail`]); otherwise the caller hears `code`.
    pub(super) fn voicemail_or_fail(&mut self, code: u16, reason: &str) {
        let answers = self.setup.voicemail.is_some() || self.setup.menu.is_some();
        if answers && self.state.is_ringing() {
            self.state = State::ToVoicemail;
            // Unless a message is left (or this is the menu), the call was not answered.
            self.disposition = super::refused(code);
        } else {
            self.fail_a(code, reason);
        }
    }

    /// The box answers the caller itself and records a message (or plays the menu).
    pub(super) async fn enter_voicemail(&mut self) {
        self.media.relay_stop.cancel();
        let Some(relay) = self.media.relay.take() else {
            self.fail_a(500, "Server Internal Error");
            return;
        };
        let Ok(stopped) = relay.await else {
            self.fail_a(500, "Server Internal Error");
            return;
        };
        let Some(n) = media::negotiate(&self.a.invite.body) else {
            self.fail_a(488, "Not Acceptable Here");
            return;
        };
        let answering = match (self.setup.menu.clone(), self.setup.voicemail.clone()) {
            (Some(m), _) => Answering::Menu(m),
            (None, Some(vm)) => Answering::Deposit(vm),
            (None, None) => {
                self.fail_a(500, "Server Internal Error");
                return;
            }
        };
        let answer = media::answer(self.media.ip_a, stopped.a.port, &n);
        let mut r = self.a.invite.response(200, "OK", &self.a.tag);
        r.push("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO");
        r.push("Content-Type", "application/sdp");
        r.body = answer;
        self.respond_a(r);
        self.status("voicemail");
        self.log_answer(None);
        if matches!(answering, Answering::Menu(_)) {
            self.disposition = Disposition::Menu;
        }
        info!(
            message = "phone: voicemail answers",
            caller = %self.setup.parties.caller_ext,
            callee = %self.setup.parties.callee_ext
        );
        drop(stopped.b);
        let (digits, digits_rx) = mpsc::unbounded_channel();
        let ep = Endpoint::new(Socket::Leased(stopped.a), n, digits_rx);
        let hangup = CancellationToken::new();
        let stop = hangup.clone();
        let task = match answering {
            Answering::Menu(m) => {
                tokio::spawn(async move { MediaJob::Menu(crate::menu::run(ep, m, stop).await) })
            }
            Answering::Deposit(vm) => {
                let greeting = voicemail::greeting(
                    &vm.data_dir,
                    &self.setup.parties.callee_login,
                    &self.setup.parties.callee_ext,
                );
                tokio::spawn(async move {
                    MediaJob::Deposit(voicemail::record(ep, greeting, vm.max, stop).await)
                })
            }
        };
        self.state = State::Voicemail(Recording {
            hangup,
            digits,
            task,
            bye: None,
        });
    }

    /// The recording is over: deliver it, then release the caller (answer their BYE, or
    /// say goodbye and send ours).
    pub(super) async fn recorded(&mut self, job: Result<MediaJob, tokio::task::JoinError>) {
        let State::Voicemail(rec) = std::mem::replace(&mut self.state, State::Ending) else {
            return;
        };
        let mut deposit = match job {
            Ok(MediaJob::Deposit(d)) => d,
            Ok(MediaJob::Menu(present)) => {
                self.release(rec.bye, present);
                return;
            }
            Err(_) => {
                self.release(rec.bye, false);
                return;
            }
        };
        let Some(vm) = self.setup.voicemail.clone() else {
            self.release(rec.bye, false);
            return;
        };
        let long_enough = deposit.samples.len() >= voicemail::MIN_LENGTH.as_millis() as usize * 8;
        let mut saved = false;
        if long_enough {
            let samples = std::mem::take(&mut deposit.samples);
            let env = vm.envelope.clone();
            let (dir, db) = (vm.data_dir.clone(), std::sync::Arc::clone(&vm.db));
            let length = voicemail::duration_text(samples.len());
            match tokio::task::spawn_blocking(move || voicemail::deliver(&db, &dir, &env, &samples))
                .await
            {
                Ok(Ok(name)) => {
                    saved = true;
                    self.disposition = Disposition::Voicemail;
                    info!(
                        message = "phone: voicemail delivered",
                        to = %vm.envelope.callee_login,
                        from = %self.setup.parties.caller_ext,
                        %length,
                        %name
                    );
                }
                Ok(Err(error)) => {
                    tracing::warn!(message = "phone: voicemail not delivered", %error)
                }
                Err(error) => tracing::warn!(message = "phone: voicemail not delivered", %error),
            }
        }
        if let Some(bye) = rec.bye {
            self.reply(&bye, 200, "OK", &self.a.tag);
        } else if deposit.caller_present {
            let last = if saved {
                voicemail::prompts::MESSAGE_SAVED
            } else {
                voicemail::prompts::MESSAGE_TOO_SHORT
            };
            deposit.endpoint.play(&voicemail::prompt(last), false).await;
            let bye = self.a_request(Method::Bye, None);
            self.send_to_a_reliably(bye.to_bytes());
        }
        self.ending();
    }

    /// The box's side is done: answer the caller's BYE, or send ours.
    fn release(&mut self, bye: Option<Incoming>, caller_present: bool) {
        if let Some(bye) = bye {
            self.reply(&bye, 200, "OK", &self.a.tag);
        } else if caller_present {
            let bye = self.a_request(Method::Bye, None);
            self.send_to_a_reliably(bye.to_bytes());
        }
        self.ending();
    }
}
