//! When a trunk registers again: refreshes before the provider's registration ends, and
//! retries that back off after failures.

use std::time::Duration;

/// The first retry after a failure; it doubles with each failure in a row...
pub const FIRST_RETRY: Duration = Duration::from_secs(30);
/// ...up to this.
pub const MAX_RETRY: Duration = Duration::from_secs(600);
/// After the provider refused the credentials (403, or a challenge to our answer): a
/// wrong password does not get right by itself, and providers block accounts that
/// hammer them. A reload with the right password tries at once.
pub const AUTH_RETRY: Duration = Duration::from_secs(600);
/// While the box has no way to the provider at all (no route: the WAN is not up yet, at
/// boot or while DHCP waits for a lease): nothing reached the provider, so trying again
/// soon bothers nobody.
pub const NO_ROUTE_RETRY: Duration = Duration::from_secs(5);
/// The longest Retry-After (or Min-Expires) taken from a provider.
pub const MAX_PROVIDER_WAIT: Duration = Duration::from_secs(3600);

/// What kind of failure a registration attempt ended in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// No answer, a network error, a 5xx, or another refusal that may pass.
    Transient,
    /// The provider refused the credentials.
    Auth,
    /// Nothing could be sent: the box has no route to the provider (yet).
    NoRoute,
}

/// The wait before the next attempt after `failures` failures in a row (1 for the
/// first), of `kind`, when the provider asked for `retry_after` (Retry-After).
pub fn backoff(failures: u32, kind: FailureKind, retry_after: Option<Duration>) -> Duration {
    let doubled = FIRST_RETRY
        .checked_mul(1u32 << failures.saturating_sub(1).min(16))
        .unwrap_or(MAX_RETRY)
        .min(MAX_RETRY);
    let ours = match kind {
        FailureKind::Transient => doubled,
        FailureKind::Auth => doubled.max(AUTH_RETRY),
        FailureKind::NoRoute => return NO_ROUTE_RETRY,
    };
    match (retry_after, kind) {
        // The provider says when: not sooner than the first retry, not later than an hour.
        (Some(asked), FailureKind::Transient) => asked.clamp(FIRST_RETRY, MAX_PROVIDER_WAIT),
        (Some(asked), _) => ours.max(asked.min(MAX_PROVIDER_WAIT)),
        (None, _) => ours,
    }
}

/// When to refresh a registration the provider granted for `granted`: at 85% of it.
pub fn refresh_after(granted: Duration) -> Duration {
    (granted * 85 / 100).max(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_from_30s_to_10min() {
        let waits: Vec<u64> = (1..=8)
            .map(|n| backoff(n, FailureKind::Transient, None).as_secs())
            .collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 600, 600, 600]);
        assert_eq!(backoff(u32::MAX, FailureKind::Transient, None), MAX_RETRY);
    }

    #[test]
    fn refused_credentials_are_retried_slowly() {
        assert_eq!(backoff(1, FailureKind::Auth, None), AUTH_RETRY);
        assert_eq!(backoff(9, FailureKind::Auth, None), AUTH_RETRY);
    }

    #[test]
    fn retry_after_is_honoured_within_bounds() {
        let s = Duration::from_secs;
        assert_eq!(backoff(1, FailureKind::Transient, Some(s(120))), s(120));
        assert_eq!(
            backoff(1, FailureKind::Transient, Some(s(5))),
            s(30),
            "not sooner"
        );
        assert_eq!(
            backoff(1, FailureKind::Transient, Some(s(86_400))),
            MAX_PROVIDER_WAIT
        );
        // A provider asking for a shorter wait than our backoff gets it (from 30 s).
        assert_eq!(backoff(6, FailureKind::Transient, Some(s(45))), s(45));
        // But refused credentials are never retried sooner than slowly.
        assert_eq!(backoff(1, FailureKind::Auth, Some(s(45))), AUTH_RETRY);
        assert_eq!(backoff(1, FailureKind::Auth, Some(s(1800))), s(1800));
    }

    #[test]
    fn without_a_route_it_tries_again_soon() {
        assert_eq!(backoff(1, FailureKind::NoRoute, None), NO_ROUTE_RETRY);
        assert_eq!(backoff(40, FailureKind::NoRoute, None), NO_ROUTE_RETRY);
    }

    #[test]
    fn refreshes_come_at_85_percent() {
        let s = Duration::from_secs;
        assert_eq!(refresh_after(s(3600)), s(3060));
        assert_eq!(refresh_after(s(60)), s(51));
        assert_eq!(refresh_after(s(5)), Duration::from_millis(4250));
        assert_eq!(refresh_after(s(0)), s(1));
    }
}
