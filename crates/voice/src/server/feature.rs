//! Feature codes an office phone dials: the night code forces the office hours closed
//! (or open) until they next change by themselves, or gives them back
//! ([`crate::daynight`]); the box answers, says which, and hangs up. The new state is in
//! the state database before the caller hears it.

use std::sync::{Arc, PoisonError};

use officebox_config::model::User;
use officebox_store::{Direction, unix_now};
use tracing::{info, warn};

use super::Request;
use super::invite::{failed_call, from_user, internal_call, launch, log_failed, new_setup};
use crate::call::Callee;
use crate::voicemail::{prompt, prompts};

/// The night code, dialled by `caller`.
pub(super) fn night_code(req: &Request, caller: &User) -> Option<crate::sip::Message> {
    let phone = &req.config.phone;
    let schedules = &phone.dial_plan.schedules;
    if schedules.is_empty() {
        log_failed(
            req.state,
            failed_call(caller, &phone.night_code, Direction::Internal),
        );
        return Some(req.msg.response(
            404,
            "Not Found (no office hours to change)",
            req.tag.as_str(),
        ));
    }
    let now = unix_now();
    let (open, text) = {
        let mut dn = req
            .state
            .day_night
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let open = dn.toggle(schedules, phone.timezone.as_deref(), now);
        (open, dn.to_text())
    };
    info!(message = "phone: office hours changed by hand", by = %caller.login, open);
    let say = prompt(if open {
        prompts::OFFICE_OPEN
    } else {
        prompts::OFFICE_CLOSED
    });
    let db = Arc::clone(&req.state.db);
    announce(req, caller, &phone.night_code, say, move || {
        db.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .meta_set(crate::daynight::META_KEY, &text)
            .is_ok()
    })
}

/// A feature code `dialled` by `caller` is done: `save` keeps its effect in the state
/// database (off the async threads), then the box answers and says `say` (the caller
/// hears it only once it is saved, so a kill -9 keeps what was announced).
pub(super) fn announce(
    req: &Request,
    caller: &User,
    dialled: &str,
    say: Vec<i16>,
    save: impl FnOnce() -> bool + Send + 'static,
) -> Option<crate::sip::Message> {
    let parties = from_user(req, caller, "", dialled);
    let log = internal_call(caller, &parties, dialled, None);
    let b_call_id = log.call_id.clone();
    let (setup, status_rx) = new_setup(
        req,
        parties,
        Callee::Announcement(Arc::new(say)),
        b_call_id,
        log,
    );
    launch(req, status_rx, async move {
        if !matches!(tokio::task::spawn_blocking(save).await, Ok(true)) {
            warn!("phone: what a feature code changed could not be saved");
        }
        Some(setup)
    });
    None
}
