//! Who is logged in: sessions in memory (a random token in an HttpOnly, SameSite=Strict
//! cookie; an idle session ends after `web.session_timeout`), each with its CSRF token
//! for forms. Every user may log in with their argon2 password (an administrator to
//! every page, anyone else to their own: `routes::require_session`); after
//! five failures from one address in ten minutes that address is refused
//! (`officebox_secrets::login`: counted as each password arrives, so parallel guesses
//! count too), and every failure costs a second.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use officebox_config::Config;
use officebox_secrets::login::{Checked, LOGIN, Limiter};

/// Sessions at once (the oldest goes first beyond this).
const MAX_SESSIONS: usize = 100;

/// One logged-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    pub csrf: String,
    last_seen: Instant,
}

/// What a login attempt came to.
#[derive(Debug)]
pub enum Login {
    Ok {
        token: String,
    },
    Wrong,
    /// Too many failures from this address.
    Limited,
    /// Too many password checks waiting; nothing was decided.
    Busy,
}

/// Every session, and the failed-login counts.
#[derive(Debug)]
pub struct Sessions {
    timeout: Mutex<Duration>,
    map: Mutex<HashMap<String, Session>>,
    limiter: Arc<Limiter>,
}

/// 128 random bits, hex.
fn token() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh random token (the login form's).
pub fn new_token() -> String {
    token()
}

/// Whether two tokens are equal, in time that does not depend on where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Sessions {
    /// Follows `web.session_timeout` when the config changes.
    pub fn set_timeout(&self, timeout: Duration) {
        *self.timeout.lock().unwrap_or_else(PoisonError::into_inner) = timeout;
    }

    fn timeout(&self) -> Duration {
        *self.timeout.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn new(timeout: Duration) -> Sessions {
        Sessions {
            timeout: Mutex::new(timeout),
            map: Mutex::default(),
            limiter: Limiter::new(LOGIN),
        }
    }

    /// The live session of `token` (its idle clock restarts).
    pub fn get(&self, token: &str) -> Option<Session> {
        self.lookup(token, true)
    }

    /// The live session of `token`, leaving its idle clock alone: for what a page asks
    /// by itself (the live tables), which is not the user doing anything.
    pub fn peek(&self, token: &str) -> Option<Session> {
        self.lookup(token, false)
    }

    fn lookup(&self, token: &str, touch: bool) -> Option<Session> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let s = map.get_mut(token)?;
        if s.last_seen.elapsed() > self.timeout() {
            map.remove(token);
            return None;
        }
        if touch {
            s.last_seen = Instant::now();
        }
        Some(s.clone())
    }

    pub fn end(&self, token: &str) {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(token);
    }

    /// Checks a user's password (in turn with other password checks, off the async
    /// threads) and opens a session: an administrator's opens every page, anyone
    /// else's their own (`routes::require_session` decides on each request).
    pub async fn login(&self, config: &Config, user: &str, password: &str, ip: IpAddr) -> Login {
        let Ok(attempt) = self.limiter.begin(ip).await else {
            return Login::Limited;
        };
        // A login that does not exist costs the same check as a wrong password.
        let hash = config
            .users
            .iter()
            .find(|u| u.login == user)
            .map(|u| u.password_hash.clone());
        match officebox_secrets::login::check(hash, password.to_string()).await {
            Checked::Right => attempt.succeeded(),
            Checked::Busy => {
                attempt.withdrawn();
                return Login::Busy;
            }
            Checked::Wrong => {
                attempt.failed();
                // A pause before the answer slows guessing further.
                tokio::time::sleep(Duration::from_secs(1)).await;
                return Login::Wrong;
            }
        }
        let t = token();
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let timeout = self.timeout();
        map.retain(|_, s| s.last_seen.elapsed() <= timeout);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(
            t.clone(),
            Session {
                user: user.to_string(),
                csrf: token(),
                last_seen: Instant::now(),
            },
        );
        Login::Ok { token: t }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn open(s: &Sessions, token: &str) {
        s.map.lock().unwrap().insert(
            token.into(),
            Session {
                user: "admin".into(),
                csrf: "c".into(),
                last_seen: Instant::now(),
            },
        );
    }

    #[test]
    fn a_page_refreshing_itself_does_not_keep_an_idle_session_alive() {
        let s = Sessions::new(Duration::from_secs(1));
        open(&s, "idle");
        open(&s, "busy");
        std::thread::sleep(Duration::from_millis(600));
        assert!(s.peek("idle").is_some(), "still within the timeout");
        assert!(
            s.get("busy").is_some(),
            "the user clicked: the clock restarts"
        );
        std::thread::sleep(Duration::from_millis(600));
        assert!(
            s.peek("idle").is_none(),
            "idle past the timeout, peeks or not"
        );
        assert!(s.peek("busy").is_some(), "600 ms since the click");
    }
}
