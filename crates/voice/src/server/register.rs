//! REGISTER: where each user's phones are ([`crate::registrar`] keeps the bindings).

use std::sync::PoisonError;
use std::time::SystemTime;

use tracing::debug;

use super::Request;
use super::auth::authenticate_owner;
use crate::now_unix;
use crate::registrar::{Outcome, owner_of};
use crate::sip::{Message, uri_of};

/// REGISTER (RFC 3261 section 10.3): the phone proves it is the extension's owner,
/// then its bindings are updated and all of them listed in the answer.
pub(super) fn register(req: &Request) -> Message {
    let to = uri_of(req.msg.header("to").unwrap_or("")).unwrap_or("");
    let user = match authenticate_owner(req, owner_of(req.config, to), "extension") {
        Ok(u) => u,
        Err(refusal) => return refusal,
    };
    let owner = &user.login;
    let outcome = req
        .state
        .registrar
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .register(owner, req.msg, req.source, req.transport, now_unix());
    match outcome {
        Outcome::Ok(bindings) => {
            let mut r = req.msg.response(200, "OK", req.tag.as_str());
            let now = now_unix();
            for b in bindings {
                r.push(
                    "Contact",
                    format!(
                        "<{}>;expires={}",
                        b.contact,
                        b.expires_at.saturating_sub(now)
                    ),
                );
            }
            r.push("Date", officebox_store::date::http_date(SystemTime::now()));
            debug!(message = "phone: registered", user = %owner, source = %req.source);
            r
        }
        Outcome::TooBrief(min) => {
            let mut r = req
                .msg
                .response(423, "Interval Too Brief", req.tag.as_str());
            r.push("Min-Expires", min.to_string());
            r
        }
        Outcome::Refused(code, reason) => req.msg.response(code, reason, req.tag.as_str()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    #[test]
    fn dates() {
        assert_eq!(
            officebox_store::date::http_date(
                std::time::UNIX_EPOCH + Duration::from_secs(1_795_857_926)
            ),
            "Sat, 28 Nov 2026 09:25:26 GMT"
        );
    }
}
