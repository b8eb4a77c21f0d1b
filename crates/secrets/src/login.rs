//! Password checks for every service that logs people in (SMTP AUTH, POP3, the admin
//! pages, the voicemail menu, the phones' digests), under the same two rules:
//!
//! - **Failures are limited however the guesses are timed.** An attempt counts from the
//!   moment its password arrives ([`Limiter::begin`]), not from when its answer is
//!   known: while earlier attempts from the same address are still being checked, a new
//!   one may start only if they could all fail without reaching the limit; otherwise it
//!   waits for them. Thirty guesses sent at once are thirty attempts one after another
//!   for the limit, and right passwords still get through, a few at a time.
//! - **The work a stranger can cause is bounded.** An argon2id check needs 19 MiB; at
//!   most [`CHECKS_AT_ONCE`] run at a time, and a check that cannot start within
//!   [`QUEUE_DEADLINE`] is answered "busy" rather than queued forever. A user that does
//!   not exist costs the same check as a wrong password (against a hash made once), so
//!   the time of the answer does not say which logins exist.
//! - **A right password is checked once, not at every login.** Mail clients log in
//!   again and again (a phone's POP3 every few minutes, a PC's five IMAP connections at
//!   once); a password found right is remembered for [`REMEMBER_RIGHT`], as a keyed
//!   digest (HMAC-SHA-256 under a key made at start, never stored) of the stored hash
//!   and the password, so a repeat costs microseconds instead of 20 ms and 19 MiB. A
//!   changed password is a changed stored hash, which no remembered digest matches; a
//!   wrong password, or a user that does not exist, always takes the full check.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use officebox_sockets::limits::Client;
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

/// How many failures, in what window, lock an address out for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub failures: usize,
    pub window: Duration,
    pub lockout: Duration,
}

/// Mail and the admin pages: five failures in ten minutes, and that address waits ten
/// minutes.
pub const LOGIN: Policy = Policy {
    failures: 5,
    window: Duration::from_secs(600),
    lockout: Duration::from_secs(600),
};

/// Phones: a misconfigured phone retries on its own, so twenty failures in a minute, and
/// that address is ignored for five minutes.
pub const PHONE: Policy = Policy {
    failures: 20,
    window: Duration::from_secs(60),
    lockout: Duration::from_secs(300),
};

/// Addresses remembered at most; beyond this the entries with no failures and nothing in
/// flight are forgotten first, then the oldest.
const MAX_ADDRESSES: usize = 10_000;

/// How long an attempt waits for earlier ones from its address before it is refused.
const WAIT_FOR_EARLIER: Duration = Duration::from_secs(20);

/// Why an attempt may not go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The address has failed too often; it may try again after the lockout.
    Locked,
}

#[derive(Debug, Default)]
struct Entry {
    /// Failures inside the window, oldest first.
    failures: VecDeque<Instant>,
    locked_until: Option<Instant>,
    /// Attempts started and not yet decided.
    in_flight: usize,
}

impl Entry {
    fn forget_old(&mut self, policy: &Policy, now: Instant) {
        if self.locked_until.is_some_and(|t| now >= t) {
            self.locked_until = None;
            self.failures.clear();
        }
        while self
            .failures
            .front()
            .is_some_and(|t| now.duration_since(*t) >= policy.window)
        {
            self.failures.pop_front();
        }
    }

    fn idle(&self) -> bool {
        self.failures.is_empty() && self.locked_until.is_none() && self.in_flight == 0
    }
}

/// Failed logins per client address, for one kind of login.
#[derive(Debug)]
pub struct Limiter {
    policy: Policy,
    entries: Mutex<HashMap<Client, Entry>>,
    /// Woken whenever an attempt is decided.
    decided: Notify,
}

/// An attempt under way: tell the limiter how it went with [`Attempt::succeeded`] or
/// [`Attempt::failed`]. One dropped undecided (the client went away mid-check) counts as
/// a failure.
#[derive(Debug)]
#[must_use = "an attempt counts as failed unless it is decided"]
pub struct Attempt {
    limiter: Arc<Limiter>,
    client: Client,
    decided: bool,
}

impl Attempt {
    pub fn succeeded(mut self) {
        self.decide(false);
    }

    pub fn failed(mut self) {
        self.decide(true);
    }

    /// Nothing was decided (the check could not run): counts neither way.
    pub fn withdrawn(mut self) {
        self.decide(false);
    }

    fn decide(&mut self, failed: bool) {
        if self.decided {
            return;
        }
        self.decided = true;
        self.limiter.finish(self.client, failed);
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        self.decide(true);
    }
}

impl Limiter {
    #[must_use]
    pub fn new(policy: Policy) -> Arc<Limiter> {
        Arc::new(Limiter {
            policy,
            entries: Mutex::default(),
            decided: Notify::new(),
        })
    }

    /// Whether `ip` is locked out now (for refusing early, before a password is asked
    /// for; the decision that counts is [`Limiter::begin`]'s).
    pub fn locked(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.get_mut(&Client::of(ip)).is_some_and(|e| {
            e.forget_old(&self.policy, now);
            e.locked_until.is_some()
        })
    }

    /// Starts an attempt from `ip` whose password has just arrived. Refused when the
    /// address is locked out; waits while the attempts already under way could, by
    /// failing, reach the limit.
    pub async fn begin(self: &Arc<Self>, ip: IpAddr) -> Result<Attempt, Refusal> {
        let deadline = Instant::now() + WAIT_FOR_EARLIER;
        loop {
            let decided = self.decided.notified();
            tokio::pin!(decided);
            // Registered before looking, so a decision made meanwhile is not missed.
            decided.as_mut().enable();
            match self.try_begin(ip) {
                Ok(attempt) => return Ok(attempt),
                Err(Wait::Refused(r)) => return Err(r),
                Err(Wait::ForEarlier) => {
                    if tokio::time::timeout_at(deadline, decided).await.is_err() {
                        return Err(Refusal::Locked);
                    }
                }
            }
        }
    }

    /// [`Limiter::begin`] for a caller that cannot wait (the SIP server decides each
    /// request at once): an attempt that would have to wait is refused.
    pub fn begin_now(self: &Arc<Self>, ip: IpAddr) -> Result<Attempt, Refusal> {
        self.try_begin(ip).map_err(|w| match w {
            Wait::Refused(r) => r,
            Wait::ForEarlier => Refusal::Locked,
        })
    }

    fn try_begin(self: &Arc<Self>, ip: IpAddr) -> Result<Attempt, Wait> {
        let client = Client::of(ip);
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_ADDRESSES && !entries.contains_key(&client) {
            // Full: what has expired goes, and if that is not an eighth of the table
            // (many addresses failing at once), those whose last failure is oldest go too,
            // so that the next arrivals do not each scan the table again.
            entries.retain(|_, e| {
                e.forget_old(&self.policy, now);
                !e.idle()
            });
            let keep = MAX_ADDRESSES - MAX_ADDRESSES / 8;
            if entries.len() > keep {
                let mut by_age: Vec<(Option<Instant>, Client)> = entries
                    .iter()
                    .filter(|(_, e)| e.in_flight == 0)
                    .map(|(c, e)| (e.failures.back().copied(), *c))
                    .collect();
                by_age.sort_unstable_by_key(|(last, _)| *last);
                let excess = entries.len() - keep;
                for (_, c) in by_age.into_iter().take(excess) {
                    entries.remove(&c);
                }
            }
        }
        let e = entries.entry(client).or_default();
        e.forget_old(&self.policy, now);
        if e.locked_until.is_some() {
            return Err(Wait::Refused(Refusal::Locked));
        }
        if e.failures.len() + e.in_flight >= self.policy.failures {
            return Err(Wait::ForEarlier);
        }
        e.in_flight += 1;
        Ok(Attempt {
            limiter: Arc::clone(self),
            client,
            decided: false,
        })
    }

    fn finish(&self, client: Client, failed: bool) {
        let now = Instant::now();
        {
            let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            let e = entries.entry(client).or_default();
            e.in_flight = e.in_flight.saturating_sub(1);
            if failed {
                e.forget_old(&self.policy, now);
                e.failures.push_back(now);
                if e.failures.len() >= self.policy.failures {
                    e.locked_until = Some(now + self.policy.lockout);
                    tracing::warn!(
                        message = "too many failed logins; this address is refused for a while",
                        client = ?client,
                        minutes = self.policy.lockout.as_secs() / 60
                    );
                }
            } else if e.idle() {
                entries.remove(&client);
            }
        }
        self.decided.notify_waiters();
    }
}

enum Wait {
    Refused(Refusal),
    ForEarlier,
}

/// Password checks (argon2id) running at once. Two use the machine's two cores; each
/// needs 19 MiB while it runs, so a burst of logins costs at most this many times that.
pub const CHECKS_AT_ONCE: usize = 2;

/// How long a check may wait for its turn before it is answered "busy".
pub const QUEUE_DEADLINE: Duration = Duration::from_secs(15);

fn checks() -> &'static Semaphore {
    static CHECKS: Semaphore = Semaphore::const_new(CHECKS_AT_ONCE);
    &CHECKS
}

/// What a password check came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    Right,
    Wrong,
    /// Too many checks were waiting; nothing was decided.
    Busy,
}

/// A hash with the same cost as the stored ones, for users that do not exist.
fn decoy() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| crate::hash("officebox: no such user").unwrap_or_default())
}

/// How long a password found right is remembered.
pub const REMEMBER_RIGHT: Duration = Duration::from_secs(15 * 60);

/// Right passwords remembered at most; beyond this the oldest is forgotten.
const REMEMBERED_AT_MOST: usize = 1024;

/// The passwords found right lately, each as a keyed digest of (stored hash, password).
struct Remembered {
    key: ring::hmac::Key,
    when: HashMap<[u8; 32], Instant>,
}

impl Remembered {
    /// With a fresh random key; `None` if the system gives no randomness (then nothing
    /// is remembered and every login takes the full check).
    fn new() -> Option<Remembered> {
        let key =
            ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &ring::rand::SystemRandom::new())
                .ok()?;
        Some(Remembered {
            key,
            when: HashMap::new(),
        })
    }

    fn digest(&self, hash: &str, secret: &str) -> [u8; 32] {
        let mut mac = ring::hmac::Context::with_key(&self.key);
        mac.update(hash.as_bytes());
        // The stored hash never holds a NUL, so the two parts cannot run into each other.
        mac.update(&[0]);
        mac.update(secret.as_bytes());
        let mut out = [0; 32];
        out.copy_from_slice(mac.sign().as_ref());
        out
    }

    fn knows(&mut self, hash: &str, secret: &str, now: Instant) -> bool {
        let digest = self.digest(hash, secret);
        match self.when.get(&digest) {
            Some(at) if now.duration_since(*at) < REMEMBER_RIGHT => true,
            Some(_) => {
                self.when.remove(&digest);
                false
            }
            None => false,
        }
    }

    fn remember(&mut self, hash: &str, secret: &str, now: Instant) {
        if self.when.len() >= REMEMBERED_AT_MOST {
            self.when
                .retain(|_, at| now.duration_since(*at) < REMEMBER_RIGHT);
        }
        if self.when.len() >= REMEMBERED_AT_MOST
            && let Some(oldest) = self.when.iter().min_by_key(|(_, at)| **at).map(|(d, _)| *d)
        {
            self.when.remove(&oldest);
        }
        let digest = self.digest(hash, secret);
        self.when.insert(digest, now);
    }
}

fn remembered() -> Option<&'static Mutex<Remembered>> {
    static REMEMBERED: OnceLock<Option<Mutex<Remembered>>> = OnceLock::new();
    REMEMBERED
        .get_or_init(|| Remembered::new().map(Mutex::new))
        .as_ref()
}

/// Whether `secret` was found right for `hash` within [`REMEMBER_RIGHT`].
fn found_right_lately(hash: &str, secret: &str) -> bool {
    remembered().is_some_and(|r| {
        r.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .knows(hash, secret, Instant::now())
    })
}

/// Checks `secret` against `hash` in turn with the other checks, off the async threads.
/// With no hash (no such user), the same work is done against a decoy and the answer is
/// [`Checked::Wrong`].
pub async fn check(hash: Option<String>, secret: String) -> Checked {
    if let Some(hash) = &hash
        && found_right_lately(hash, &secret)
    {
        return Checked::Right;
    }
    let Ok(Ok(_permit)) = tokio::time::timeout(QUEUE_DEADLINE, checks().acquire()).await else {
        return Checked::Busy;
    };
    let (right, hash, secret) = tokio::task::spawn_blocking(move || {
        let right = crate::verify(hash.as_deref().unwrap_or_else(|| decoy()), &secret);
        (right, hash, secret)
    })
    .await
    .unwrap_or((false, None, String::new()));
    match hash {
        Some(hash) if right => {
            if let Some(r) = remembered() {
                r.lock().unwrap_or_else(PoisonError::into_inner).remember(
                    &hash,
                    &secret,
                    Instant::now(),
                );
            }
            Checked::Right
        }
        _ => Checked::Wrong,
    }
}

/// Whether the decoy hash is made (it is made on first use; services make it at start so
/// that the first unknown user's answer takes no longer than the next one's).
pub fn prepare() {
    let _ = decoy();
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const SMALL: Policy = Policy {
        failures: 3,
        window: Duration::from_secs(60),
        lockout: Duration::from_secs(120),
    };

    #[tokio::test(start_paused = true)]
    async fn a_right_password_is_remembered_for_its_hash_only_and_for_a_while() {
        let mut r = Remembered::new().unwrap();
        let now = Instant::now();
        let (hash, other) = (
            "$argon2id$v=19$m=19456,t=2,p=1$a$b",
            "$argon2id$v=19$m=19456,t=2,p=1$c$d",
        );
        assert!(!r.knows(hash, "right", now));
        r.remember(hash, "right", now);
        assert!(r.knows(hash, "right", now + Duration::from_secs(60)));
        // Another password, or the same one against a changed hash: not known.
        assert!(!r.knows(hash, "wrong", now));
        assert!(!r.knows(hash, "righ", now));
        assert!(!r.knows(other, "right", now));
        // The parts cannot be shifted from one into the other.
        assert!(!r.knows("$argon2id$v=19$m=19456,t=2,p=1$a$", "bright", now));
        // Forgotten after its time.
        assert!(!r.knows(hash, "right", now + REMEMBER_RIGHT));
        assert!(!r.knows(hash, "right", now));
        // Bounded: the oldest goes first.
        for i in 0..REMEMBERED_AT_MOST + 10 {
            let at = now + Duration::from_millis(u64::try_from(i).unwrap());
            r.remember(hash, &format!("password {i}"), at);
        }
        assert_eq!(r.when.len(), REMEMBERED_AT_MOST);
        assert!(!r.knows(hash, "password 0", now));
        assert!(r.knows(hash, &format!("password {}", REMEMBERED_AT_MOST + 9), now));
    }

    #[tokio::test]
    async fn a_remembered_password_does_not_make_another_right() {
        let hash = crate::hash("the right one").unwrap();
        assert_eq!(
            check(Some(hash.clone()), "the right one".into()).await,
            Checked::Right
        );
        assert_eq!(
            check(Some(hash.clone()), "the right one".into()).await,
            Checked::Right
        );
        assert_eq!(
            check(Some(hash.clone()), "the wrong one".into()).await,
            Checked::Wrong
        );
        assert_eq!(check(None, "the right one".into()).await, Checked::Wrong);
        // A new hash for the same password (it was set again): checked in full, and right.
        let again = crate::hash("the right one").unwrap();
        assert!(!found_right_lately(&again, "the right one"));
        assert_eq!(
            check(Some(again), "the right one".into()).await,
            Checked::Right
        );
    }

    #[tokio::test(start_paused = true)]
    async fn guesses_in_parallel_are_limited_as_if_sent_one_after_another() {
        let l = Limiter::new(SMALL);
        let a = ip("192.0.2.1");
        // Three checks under way: a fourth may not start until they are decided.
        let first: Vec<Attempt> = vec![
            l.begin(a).await.unwrap(),
            l.begin(a).await.unwrap(),
            l.begin(a).await.unwrap(),
        ];
        let l2 = Arc::clone(&l);
        let fourth = tokio::spawn(async move { l2.begin(a).await.map(Attempt::failed) });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!fourth.is_finished(), "waits for the three under way");
        for attempt in first {
            attempt.failed();
        }
        assert_eq!(fourth.await.unwrap(), Err(Refusal::Locked));
        assert!(l.locked(a));
        // Another address is not affected.
        l.begin(ip("192.0.2.2")).await.unwrap().succeeded();
        // The lockout ends.
        tokio::time::sleep(SMALL.lockout).await;
        assert!(!l.locked(a));
        l.begin(a).await.unwrap().succeeded();
    }

    #[tokio::test(start_paused = true)]
    async fn right_passwords_at_once_all_get_through() {
        let l = Limiter::new(SMALL);
        let a = ip("192.0.2.1");
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let l = Arc::clone(&l);
            tasks.push(tokio::spawn(async move {
                let attempt = l.begin(a).await?;
                tokio::time::sleep(Duration::from_millis(30)).await;
                attempt.succeeded();
                Ok::<_, Refusal>(())
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), Ok(()));
        }
        assert!(!l.locked(a));
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_abandoned_mid_check_counts_as_failed() {
        let l = Limiter::new(SMALL);
        let a = ip("192.0.2.1");
        for _ in 0..SMALL.failures {
            drop(l.begin(a).await.unwrap());
        }
        assert!(l.locked(a));
        assert_eq!(l.begin_now(a).unwrap_err(), Refusal::Locked);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_older_than_the_window_are_forgotten() {
        let l = Limiter::new(SMALL);
        let a = ip("192.0.2.1");
        for _ in 0..SMALL.failures - 1 {
            l.begin(a).await.unwrap().failed();
        }
        tokio::time::sleep(SMALL.window).await;
        for _ in 0..SMALL.failures - 1 {
            l.begin(a).await.unwrap().failed();
        }
        assert!(!l.locked(a));
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_table_forgets_the_oldest_and_keeps_limiting() {
        let l = Limiter::new(SMALL);
        // More failing addresses than the table holds (forged sources, say).
        for i in 0..MAX_ADDRESSES + 100 {
            let n = u32::try_from(i).unwrap();
            let a = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n));
            l.begin_now(a).unwrap().failed();
        }
        assert!(l.entries.lock().unwrap().len() <= MAX_ADDRESSES);
        // An address at the limit is still held to it.
        let a = ip("192.0.2.1");
        for _ in 0..SMALL.failures {
            l.begin_now(a).unwrap().failed();
        }
        assert_eq!(l.begin_now(a).unwrap_err(), Refusal::Locked);
    }

    #[tokio::test]
    async fn an_unknown_user_costs_a_check_and_is_wrong() {
        let h = crate::hash("right").unwrap();
        assert_eq!(check(Some(h.clone()), "right".into()).await, Checked::Right);
        assert_eq!(check(Some(h), "wrong".into()).await, Checked::Wrong);
        assert_eq!(
            check(None, "officebox: no such user".into()).await,
            Checked::Wrong,
            "even the decoy's own password opens nothing"
        );
    }
}
