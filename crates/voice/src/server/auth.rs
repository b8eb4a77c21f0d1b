//! Digest authentication (RFC 3261 section 22, RFC 8760): the challenge, the answer
//! checked against the user's stored hashes (by login or by extension), the flood limit
//! per source that wrong answers count towards, and a remote device held to its own
//! user's phone.

use officebox_config::User;
use tracing::info;

use super::{Request, State};
use crate::digest::{Algorithm, Verdict, parse_credentials};
use crate::sip::{Message, Method};

/// A request about one user's own resource (their registration, their mailbox): the
/// digest challenge first, whoever `owner` is, so a stranger learns nothing about which
/// extensions exist; then 404 when `owner` is nobody, or 403 when someone else answered.
pub(super) fn authenticate_owner<'c>(
    req: &Request<'c>,
    owner: Option<String>,
    what: &str,
) -> Result<&'c User, Message> {
    let (msg, tag) = (req.msg, req.tag.as_str());
    let user = authenticate(req, false)?;
    match owner {
        Some(owner) if owner == user.login => Ok(user),
        Some(_) => Err(msg.response(403, &format!("Forbidden (not your {what})"), tag)),
        None => Err(msg.response(404, "Not Found", tag)),
    }
}

/// Digest authentication of a request (RFC 3261 section 22): `Ok` with the user, or the
/// challenge to answer with (401 from the registrar, 407 for calls: `proxy`). Wrong
/// answers count towards the source's flood limit.
pub(super) fn authenticate<'c>(req: &Request<'c>, proxy: bool) -> Result<&'c User, Message> {
    let (config, state, msg, source, tag) =
        (req.config, req.state, req.msg, req.source, req.tag.as_str());
    let (code, reason, ask, answer) = if proxy {
        (
            407,
            "Proxy Authentication Required",
            "Proxy-Authenticate",
            "proxy-authorization",
        )
    } else {
        (401, "Unauthorized", "WWW-Authenticate", "authorization")
    };
    let challenge = |stale: bool| {
        let mut r = msg.response(code, reason, tag);
        for c in challenges(state, msg, stale) {
            r.push(ask, c);
        }
        r
    };
    let Some(creds) = msg
        .headers
        .iter()
        .filter(|(n, _)| n == answer)
        .filter_map(|(_, v)| parse_credentials(v))
        .find(|c| c.realm == state.auth.realm)
    else {
        return Err(challenge(false));
    };
    let method = msg.method().map_or("", Method::as_str);
    let Ok(attempt) = state.limiter.begin_now(source.ip()) else {
        return Err(challenge(false));
    };
    // The digest user name is the login, or the extension (most phones are set up so),
    // each with the secrets made for it, or a provisioned phone's MAC with its own. A user that does not exist is checked against a
    // made-up secret: the same work and the same answer as a wrong password.
    let (user, ha1): (Option<&User>, [Option<String>; 2]) =
        match config.users.iter().find(|u| u.login == creds.username) {
            Some(u) => (Some(u), [u.sip_ha1_md5.clone(), u.sip_ha1_sha256.clone()]),
            None => match config
                .users
                .iter()
                .find_map(|u| u.ext_secret(&creds.username).map(|s| (u, s)))
            {
                Some((u, s)) => (Some(u), [Some(s.md5.clone()), Some(s.sha256.clone())]),
                // A provisioned phone, by its MAC and its own secret.
                None => match super::devices::credentials(state, config, &creds.username) {
                    Some((u, md5, sha256)) => (Some(u), [Some(md5), Some(sha256)]),
                    None => (
                        None,
                        [
                            Some(NOBODY_MD5.to_string()),
                            Some(NOBODY_SHA256.to_string()),
                        ],
                    ),
                },
            },
        };
    let [md5, sha256] = ha1;
    let verdict = state.auth.verify(&creds, method, |alg| match alg {
        Algorithm::Md5 => md5.clone(),
        Algorithm::Sha256 => sha256.clone(),
    });
    match (verdict, user) {
        (Verdict::Ok, Some(u)) => {
            attempt.succeeded();
            // A remote device's tunnel carries its own user's phone only: a device (its
            // key stolen, or lent) is no way in for anyone else's extension.
            if let Some(device) = officebox_config::derive::device_at(config, source.ip())
                && device.user != u.login
            {
                info!(message = "phone: a device signed in as another user", device = %device.name, owner = %device.user, user = %u.login);
                return Err(msg.response(403, "Forbidden (not this device's user)", tag));
            }
            Ok(u)
        }
        (Verdict::Stale, _) => {
            attempt.withdrawn();
            Err(challenge(true))
        }
        _ => {
            attempt.failed();
            info!(message = "phone: wrong password", %method, user = %creds.username, %source);
            if state.limiter.locked(source.ip()) {
                let ip = source.ip();
                state.alerts.raise(
                    config,
                    &format!("logins:{ip}"),
                    &format!("Phone logins: {ip} is locked out after repeated wrong passwords"),
                    &format!(
                        "{ip} gave wrong phone passwords again and again (the last for \"{}\")\r\n\
                         and is ignored for a while. A phone with an old password does this; so\r\n\
                         does someone guessing passwords.",
                        creds.username.replace(['\r', '\n'], "")
                    ),
                );
            }
            Err(challenge(false))
        }
    }
}

/// The digest secrets a user that does not exist is checked against (no password hashes
/// to them: they are not hex digests of anything).
const NOBODY_MD5: &str = "00000000000000000000000000000000";
const NOBODY_SHA256: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The challenge values for `msg`'s sender: MD5 and SHA-256, or MD5 alone for phones
/// that cannot cope with the SHA-256 one.
///
/// RFC 8760 section 2.4 says a phone MUST ignore a challenge whose algorithm it does not
/// support. libre before 3.12 (baresip before 3.12, e.g. Debian 12's baresip 1.0.0)
/// instead fails the whole authentication with ENOSYS as soon as one header names
/// anything but MD5 ("reg: ...: Register: Function not implemented"): such a phone could
/// never register or call. It says who it is in User-Agent (`baresip v1.0.0 (...)`).
fn challenges(state: &State, msg: &Message, stale: bool) -> Vec<String> {
    let all = state.auth.challenges(stale);
    if !md5_only(msg.header("user-agent").unwrap_or("")) {
        return all;
    }
    all.into_iter()
        .filter(|c| c.contains(&format!("algorithm={}", Algorithm::Md5.name())))
        .collect()
}

/// Whether a phone with this User-Agent knows only MD5 and refuses challenges that
/// offer anything else too: baresip (libre) before 3.12.
fn md5_only(user_agent: &str) -> bool {
    let Some(version) = user_agent.trim().strip_prefix("baresip v") else {
        return false;
    };
    let mut numbers = version
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().ok());
    match (numbers.next().flatten(), numbers.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) < (3, 12),
        _ => true,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn old_baresip_is_challenged_with_md5_alone() {
        for old in [
            "baresip v1.0.0 (x86_64/linux)",
            "baresip v3.11.0 (x86_64/Linux)",
            "baresip vsomething",
        ] {
            assert!(md5_only(old), "{old}");
        }
        for other in [
            "baresip v3.12.0 (x86_64/Linux)",
            "baresip v4.1.0 (aarch64/Linux)",
            "sipsak 0.9.8",
            "Linphone/5.2",
            "",
        ] {
            assert!(!md5_only(other), "{other}");
        }
    }
}
