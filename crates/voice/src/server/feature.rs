//! Feature codes an office phone dials: the night code forces the office hours closed
//! (or open) until they next change by themselves, or gives them back
//! ([`crate::daynight`]); the box answers, says which, and hangs up. The new state is in
//! the state database before the caller hears it.

use std::sync::{Arc, PoisonError};

use officebox_config::model::User;
use officebox_store::{Direction, NewCall, unix_now};
use tracing::{info, warn};

use super::Request;
use super::invite::{failed_call, from_user, launch, log_failed, new_setup};
use crate::call::{self, Callee};
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
    let parties = from_user(req, caller, "", &phone.night_code);
    let caller_ext = parties.caller_ext.clone();
    let b_call_id = format!("{}@officebox", call::token());
    let log = NewCall {
        call_id: b_call_id.clone(),
        direction: Direction::Internal,
        trunk: None,
        caller: caller_ext,
        caller_login: Some(caller.login.clone()),
        caller_name: caller.name.clone(),
        callee: phone.night_code.clone(),
        callee_login: None,
        started_at: now,
    };
    let say = prompt(if open {
        prompts::OFFICE_OPEN
    } else {
        prompts::OFFICE_CLOSED
    });
    let (setup, status_rx) = new_setup(
        req,
        parties,
        Callee::Announcement(Arc::new(say)),
        b_call_id,
        log,
    );
    let db = Arc::clone(&req.state.db);
    launch(req, status_rx, async move {
        let saved = tokio::task::spawn_blocking(move || {
            db.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .meta_set(crate::daynight::META_KEY, &text)
        })
        .await;
        if !matches!(saved, Ok(Ok(()))) {
            warn!("phone: the office hours changed by hand could not be saved");
        }
        Some(setup)
    });
    None
}
