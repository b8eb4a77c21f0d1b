//! The box answering instead of a phone: when nobody answers, the line is busy, or no
//! phone is registered, the caller's voicemail takes the call (the callee's greeting,
//! then a recording delivered by email); a call to the voicemail extension gets the menu;
//! a call to an auto attendant gets its greeting and keys ([`crate::attendant`]).
//! The relay stops and gives its caller-side port to an endpoint of the box's own
//! ([`crate::media`]), which plays and records there. A caller the box has answered
//! already (the attendant sent the call on, and nobody answered) keeps that endpoint.

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
    /// Where the message goes: like a mail to the callee, through their alias.
    pub targets: crate::mailbox::Targets,
    /// Whether a fax machine heard on the line may switch the call to T.38 (the
    /// caller's trunk's setting; `On` for a call from inside).
    pub t38: officebox_config::model::T38Mode,
}

/// What the box's own side of a call came to.
#[derive(Debug)]
pub(super) enum MediaJob {
    Deposit(voicemail::Deposit),
    /// The menu ended; whether the caller was still there.
    Menu(bool),
    /// The attendant's choice (none: the caller hung up), and the caller's endpoint for
    /// what comes next.
    Attendant {
        endpoint: Box<Endpoint>,
        choice: Option<officebox_config::dialplan::Destination>,
    },
    /// A fax call ended: what came of it (none: the fax machine could not start), and
    /// whether the caller was still there.
    Fax {
        setup: Box<crate::fax::FaxSetup>,
        outcome: Option<officebox_fax::Outcome>,
        caller_present: bool,
    },
}

/// Who answers for the box.
pub(super) enum Answering {
    /// The voicemail menu (a call to the voicemail extension).
    Menu(crate::menu::MenuSetup),
    /// The callee's voicemail.
    Deposit(Box<VoicemailSetup>),
    /// An auto attendant.
    Attendant(Box<crate::attendant::AttendantSetup>),
    /// What a feature code did, said once.
    Announcement(std::sync::Arc<Vec<i16>>),
    /// A conference room.
    Conference(Box<crate::conference::ConferenceSetup>),
    /// The pager, heard in its page's room.
    Page(std::sync::Arc<crate::conference::Rooms>, String),
    /// A fax machine of the box's.
    Fax(Box<crate::fax::FaxSetup>),
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
        if self.forward_on(code) {
            return;
        }
        let answers = self.setup.voicemail.is_some()
            || self.setup.menu.is_some()
            || matches!(
                self.setup.callee,
                super::Callee::Attendant(_)
                    | super::Callee::Announcement(_)
                    | super::Callee::Conference(_)
                    | super::Callee::Fax(_)
            );
        if answers && self.state.is_ringing() {
            self.state = State::ToVoicemail;
            // Unless a message is left (or this is the menu), the call was not answered.
            self.disposition = super::refused(code);
        } else {
            self.fail_a(code, reason);
        }
    }

    /// The box answers the caller itself and records a message (or plays the menu, or
    /// the attendant).
    pub(super) async fn enter_voicemail(&mut self) {
        let answering = match (&self.setup.callee, &self.setup.menu, &self.setup.voicemail) {
            (_, Some(m), _) => Answering::Menu(m.clone()),
            (super::Callee::Attendant(a), ..) => Answering::Attendant(a.clone()),
            (super::Callee::Announcement(say), ..) => Answering::Announcement(say.clone()),
            (super::Callee::Conference(c), ..) => Answering::Conference(c.clone()),
            (super::Callee::Fax(f), ..) => Answering::Fax(f.clone()),
            (super::Callee::Page(_), ..) => match self.setup.rooms.clone() {
                Some(rooms) => Answering::Page(rooms, format!("page:{}", self.a.invite.call_id())),
                None => {
                    self.fail_a(500, "Server Internal Error");
                    return;
                }
            },
            (_, None, Some(vm)) => Answering::Deposit(Box::new(vm.clone())),
            (_, None, None) => {
                self.fail_a(500, "Server Internal Error");
                return;
            }
        };
        let ep = match self.held.take() {
            // Answered already, and ringback playing: the caller's endpoint goes on.
            Some(held) => match held.release().await {
                Some(ep) => ep,
                None => {
                    self.fail_a(500, "Server Internal Error");
                    return;
                }
            },
            None => match self.answer_a().await {
                Some(ep) => ep,
                None => return,
            },
        };
        // A transfer's target did not answer: its voicemail has the call.
        self.transfer_done("200 OK");
        let state = match answering {
            Answering::Menu(_) => "voicemail",
            Answering::Attendant(_) => "attendant",
            Answering::Deposit(_) => "voicemail",
            Answering::Announcement(_) => "feature",
            Answering::Conference(_) => "conference",
            Answering::Page(..) => "paging",
            Answering::Fax(_) => "fax",
        };
        self.status(state);
        let (caller, callee) = (
            &self.setup.parties.caller_ext,
            &self.setup.parties.callee_ext,
        );
        match answering {
            Answering::Attendant(_) => {
                info!(message = "phone: the attendant answers", %caller, %callee);
            }
            Answering::Announcement(_) => {
                info!(message = "phone: a feature code answered", %caller, %callee);
            }
            Answering::Conference(_) => {
                info!(message = "phone: the conference answers", %caller, %callee);
            }
            Answering::Page(..) => {
                info!(message = "phone: the page is on", %caller);
            }
            Answering::Fax(_) => {
                info!(message = "phone: a fax machine answers", %caller, %callee);
            }
            Answering::Menu(_) | Answering::Deposit(_) => {
                info!(message = "phone: voicemail answers", %caller, %callee);
            }
        }
        self.play_to_a(ep, answering);
    }

    /// Stops the relay and answers the caller with the box's own endpoint on its port
    /// (`None`: the caller was told why not).
    async fn answer_a(&mut self) -> Option<Endpoint> {
        self.media.relay_stop.cancel();
        let Some(relay) = self.media.relay.take() else {
            self.fail_a(500, "Server Internal Error");
            return None;
        };
        let Ok(stopped) = relay.await else {
            self.fail_a(500, "Server Internal Error");
            return None;
        };
        let Some(n) = media::negotiate(&self.a.invite.body) else {
            self.fail_a(488, "Not Acceptable Here");
            return None;
        };
        let answer = media::answer(self.media.ip_a, stopped.a.port, &n);
        let mut r = self.a.invite.response(200, "OK", &self.a.tag);
        r.push("Allow", super::ALLOW);
        r.push("Content-Type", "application/sdp");
        r.body = answer;
        self.respond_a(r);
        self.log_answer(None);
        self.boxed = Some(n);
        drop(stopped.b);
        let (digits, digits_rx) = mpsc::unbounded_channel();
        self.a_digits = digits;
        Some(Endpoint::new(Socket::Leased(stopped.a), n, digits_rx))
    }

    /// Starts the box's side of the call on the caller's endpoint.
    pub(super) fn play_to_a(&mut self, mut ep: Endpoint, answering: Answering) {
        let hangup = CancellationToken::new();
        let stop = hangup.clone();
        let task = match answering {
            Answering::Menu(m) => {
                self.disposition = Disposition::Menu;
                tokio::spawn(async move { MediaJob::Menu(crate::menu::run(ep, m, stop).await) })
            }
            Answering::Attendant(a) => {
                self.disposition = Disposition::Attendant;
                self.attendant_passes += 1;
                tokio::spawn(async move {
                    let choice = tokio::select! {
                        () = stop.cancelled() => None,
                        d = crate::attendant::run(&mut ep, &a) => Some(d),
                    };
                    MediaJob::Attendant {
                        endpoint: Box::new(ep),
                        choice,
                    }
                })
            }
            Answering::Announcement(say) => {
                self.disposition = Disposition::Feature;
                tokio::spawn(async move {
                    tokio::select! {
                        () = stop.cancelled() => MediaJob::Menu(false),
                        _ = ep.play(&say, false) => MediaJob::Menu(true),
                    }
                })
            }
            Answering::Conference(c) => {
                self.disposition = Disposition::Answered;
                tokio::spawn(async move {
                    MediaJob::Menu(crate::conference::attend(ep, *c, stop).await)
                })
            }
            Answering::Page(rooms, room) => {
                self.disposition = Disposition::Answered;
                tokio::spawn(async move {
                    // A beep, then the pager is heard on every phone that answered.
                    ep.play(&voicemail::prompt(voicemail::prompts::BEEP), false)
                        .await;
                    let present = match rooms.join_as(&room, usize::MAX, ep, true, stop) {
                        Ok(back) => {
                            let _ = back.await;
                            false
                        }
                        Err(_) => true,
                    };
                    MediaJob::Menu(present)
                })
            }
            Answering::Fax(fax) => {
                self.disposition = Disposition::Answered;
                let tiff = crate::fax::spool_path(&fax.data_dir, &super::token());
                let caller = crate::fax::Caller {
                    name: self.setup.parties.caller_name.clone(),
                    number: self.setup.parties.caller_ext.clone(),
                };
                let link = std::sync::Arc::new(crate::fax::FaxLink::default());
                self.fax = Some((std::sync::Arc::clone(&link), fax.t38));
                if fax.t38 == officebox_config::model::T38Mode::Offered {
                    self.ask_for_t38();
                }
                tokio::spawn(async move {
                    let (outcome, _ep) =
                        crate::fax::receive(ep, &fax, &caller, &tiff, stop.clone(), &link).await;
                    let outcome = match outcome {
                        Ok(o) => Some(o),
                        Err(error) => {
                            tracing::warn!(message = "phone: the fax machine could not start", %error);
                            None
                        }
                    };
                    MediaJob::Fax {
                        setup: fax,
                        outcome,
                        caller_present: !stop.is_cancelled(),
                    }
                })
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
            digits: self.a_digits.clone(),
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
            Ok(MediaJob::Fax {
                setup,
                outcome,
                caller_present,
            }) => {
                self.faxed(*setup, outcome).await;
                self.release(rec.bye, caller_present);
                return;
            }
            Ok(MediaJob::Attendant { endpoint, choice }) => {
                match (rec.bye, choice) {
                    (None, Some(to)) => self.send_on(*endpoint, &to).await,
                    (bye, _) => self.release(bye, false),
                }
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
        // A fax machine called the voicemail: the box answers as one, into the same
        // mailbox.
        if deposit.fax && rec.bye.is_none() {
            let env = &vm.envelope;
            let fax = crate::fax::FaxSetup {
                data_dir: vm.data_dir.clone(),
                db: std::sync::Arc::clone(&vm.db),
                targets: vm.targets.clone(),
                login: env.callee_login.clone(),
                name: env.callee_name.clone(),
                address: env.callee_address.clone(),
                number: self.setup.parties.callee_ext.clone(),
                ident: self.setup.parties.callee_ext.clone(),
                host: env.host.clone(),
                t38: vm.t38,
                tiff: false,
            };
            info!(message = "phone: a fax machine called the voicemail; answering as one", caller = %self.setup.parties.caller_ext, callee = %self.setup.parties.callee_ext);
            self.status("fax");
            self.play_to_a(deposit.endpoint, Answering::Fax(Box::new(fax)));
            return;
        }
        let long_enough = deposit.samples.len() >= voicemail::MIN_LENGTH.as_millis() as usize * 8;
        let mut saved = false;
        if long_enough {
            let samples = std::mem::take(&mut deposit.samples);
            let env = vm.envelope.clone();
            let (dir, db) = (vm.data_dir.clone(), std::sync::Arc::clone(&vm.db));
            let targets = vm.targets.clone();
            let length = voicemail::duration_text(samples.len());
            match tokio::task::spawn_blocking(move || {
                voicemail::deliver(&db, &dir, &env, &targets, &samples)
            })
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

    /// Mails a fax call's outcome (the pages, or what went wrong) into its recipient's
    /// mailbox before the caller is released.
    async fn faxed(&mut self, fax: crate::fax::FaxSetup, outcome: Option<officebox_fax::Outcome>) {
        let Some(outcome) = outcome else {
            return;
        };
        let caller = crate::fax::Caller {
            name: self.setup.parties.caller_name.clone(),
            number: self.setup.parties.caller_ext.clone(),
        };
        let (pages, complete, reason) = (
            outcome.pages.len(),
            outcome.complete_pages(),
            outcome.reason.clone(),
        );
        let to = fax.login.clone();
        match tokio::task::spawn_blocking(move || crate::fax::deliver(&fax, &caller, &outcome))
            .await
        {
            Ok(Ok(name)) => {
                info!(message = "phone: fax delivered", %to, from = %self.setup.parties.caller_ext, pages, complete, %reason, %name);
            }
            Ok(Err(error)) => tracing::warn!(message = "phone: fax not delivered", %to, %error),
            Err(error) => tracing::warn!(message = "phone: fax not delivered", %to, %error),
        }
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
