//! Park places and pickup codes dialled by an office phone: the call that takes the
//! party another call holds ([`crate::call::park`]). An empty place, or nothing ringing
//! to pick up, is said by the box. The conference extension: the call the box answers
//! into the room ([`crate::conference`]).

use officebox_config::derive::{PICKUP_CODE, park_places};
use officebox_config::model::User;

use tracing::info;

use super::Request;
use super::invite::{from_user, internal_call, launch, new_setup};
use crate::call::Callee;
use crate::voicemail::{prompt, prompts};

/// The conference extension dialled by `caller`: the box answers and the caller joins
/// the room (`None`: `dialled` is not it).
pub(super) fn conference(
    req: &Request,
    caller: &User,
    dialled: &str,
) -> Option<Option<crate::sip::Message>> {
    let phone = &req.config.phone;
    if phone.conference_extension.is_empty() || dialled != phone.conference_extension {
        return None;
    }
    let callee = Callee::Conference(Box::new(crate::conference::ConferenceSetup {
        rooms: std::sync::Arc::clone(&req.state.rooms),
        room: dialled.to_string(),
        pin: (!phone.conference_pin.is_empty()).then(|| phone.conference_pin.clone()),
        max: usize::try_from(phone.conference_size).unwrap_or(10),
    }));
    start(req, caller, dialled, callee);
    Some(None)
}

/// The box answers `caller`'s call to `dialled`, says `wav` and hangs up (nothing to
/// change).
fn say(req: &Request, caller: &User, dialled: &str, wav: &[u8]) -> Option<crate::sip::Message> {
    super::feature::announce(req, caller, dialled, prompt(wav), || true)
}

/// Starts `caller`'s call to `dialled`, which the box takes (`callee`).
pub(super) fn start(req: &Request, caller: &User, dialled: &str, callee: Callee) {
    let parties = from_user(req, caller, "", dialled);
    let log = internal_call(caller, &parties, dialled, None);
    let b_call_id = log.call_id.clone();
    let (setup, status_rx) = new_setup(req, parties, callee, b_call_id, log);
    launch(req, status_rx, async move { Some(setup) });
}

/// `dialled` by `caller` if it is a park place, the park extension or a pickup code:
/// the call taking the party, or what the box says (`None`: it is none of them).
pub(super) fn dialled(
    req: &Request,
    caller: &User,
    dialled: &str,
) -> Option<Option<crate::sip::Message>> {
    let phone = &req.config.phone;
    let target = if !phone.park_extension.is_empty()
        && (dialled == phone.park_extension || park_places(req.config).iter().any(|p| p == dialled))
    {
        let place = (dialled != phone.park_extension).then_some(dialled);
        match req.state.parking.find(place) {
            Some(links) => links,
            None => return Some(say(req, caller, dialled, prompts::PARK_EMPTY)),
        }
    } else if let Some(ext) = dialled.strip_prefix(PICKUP_CODE) {
        let login = (!ext.is_empty()).then(|| {
            req.config
                .users
                .iter()
                .find(|u| u.extension.as_deref() == Some(ext) || u.login == ext)
                .map(|u| u.login.clone())
                .unwrap_or_default()
        });
        match req.state.calls_ringing(login.as_deref(), &caller.login) {
            Some(links) => links,
            None => return Some(say(req, caller, dialled, prompts::PICKUP_NONE)),
        }
    } else {
        return None;
    };
    info!(message = "phone: taking a call", by = %caller.login, dialled = %dialled);
    start(req, caller, dialled, Callee::Retrieve(target));
    Some(None)
}
