//! Connections per client address, and in all.
//!
//! Every TCP service admits a connection only with a [`Slot`], given while the client's
//! address holds fewer than its cap and the service fewer than its total, and given back
//! when the connection ends (the slot is dropped). 300 idle connections from one address
//! then take [`PER_ADDRESS`] slots, not all of them, and everyone else is still served.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};

/// Connections one client address may hold open on one service: more than a mail server
/// relaying to us or a browser opens at once, far fewer than a service's total.
pub const PER_ADDRESS: usize = 32;

/// Who a connection counts against: an IPv4 address, or the /64 of an IPv6 one (one
/// home or office is given a whole /64, so its addresses are one client).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Client(IpAddr);

impl Client {
    #[must_use]
    pub fn of(ip: IpAddr) -> Client {
        match ip {
            IpAddr::V4(v4) => Client(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Client(IpAddr::V4(v4)),
                None => Client(IpAddr::V6(Ipv6Addr::from(
                    u128::from(v6) & !u128::from(u64::MAX),
                ))),
            },
        }
    }
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The client's address holds its share already.
    PerAddress,
    /// The service is full.
    Full,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refused::PerAddress => "too many connections from this address",
            Refused::Full => "too many connections",
        })
    }
}

/// The open connections of one service, by client; the total may be shared with other
/// services ([`ConnLimits::sharing_total`]).
#[derive(Debug)]
pub struct ConnLimits {
    per_address: usize,
    total: Arc<Total>,
    by_client: Mutex<HashMap<Client, usize>>,
}

/// Connections open now, against their maximum.
#[derive(Debug)]
struct Total {
    max: usize,
    open: Mutex<usize>,
}

impl ConnLimits {
    /// Limits of `per_address` connections per client and `total` in all.
    #[must_use]
    pub fn new(per_address: usize, total: usize) -> Arc<ConnLimits> {
        Arc::new(ConnLimits {
            per_address,
            total: Arc::new(Total {
                max: total,
                open: Mutex::new(0),
            }),
            by_client: Mutex::default(),
        })
    }

    /// Limits for another service with its own per-address counts and the same total
    /// (SMTP and POP3 share the mail sessions, but a mail program's burst on one does
    /// not count against the other).
    #[must_use]
    pub fn sharing_total(&self) -> Arc<ConnLimits> {
        Arc::new(ConnLimits {
            per_address: self.per_address,
            total: Arc::clone(&self.total),
            by_client: Mutex::default(),
        })
    }

    /// A slot for a connection from `ip`, or why there is none.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refused> {
        let client = Client::of(ip);
        let mut by_client = self
            .by_client
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let held = by_client.get(&client).copied().unwrap_or(0);
        if held >= self.per_address {
            return Err(Refused::PerAddress);
        }
        {
            let mut open = self
                .total
                .open
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if *open >= self.total.max {
                return Err(Refused::Full);
            }
            *open += 1;
        }
        by_client.insert(client, held + 1);
        Ok(Slot {
            limits: Arc::clone(self),
            client,
        })
    }

    /// Connections open now from `ip`'s client.
    #[must_use]
    pub fn open_from(&self, ip: IpAddr) -> usize {
        let by_client = self
            .by_client
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        by_client.get(&Client::of(ip)).copied().unwrap_or(0)
    }

    /// Connections open now in all (with the services sharing the total).
    #[must_use]
    pub fn open(&self) -> usize {
        *self
            .total
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// One admitted connection; given back on drop.
#[derive(Debug)]
pub struct Slot {
    limits: Arc<ConnLimits>,
    client: Client,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let limits = &self.limits;
        let mut by_client = limits
            .by_client
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(held) = by_client.get_mut(&self.client) {
            *held -= 1;
            if *held == 0 {
                by_client.remove(&self.client);
            }
        }
        let mut open = limits
            .total
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *open = open.saturating_sub(1);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_address_cannot_take_every_slot() {
        let l = ConnLimits::new(3, 5);
        let mine: Vec<Slot> = (0..3).map(|_| l.admit(ip("192.0.2.1")).unwrap()).collect();
        assert_eq!(l.admit(ip("192.0.2.1")).unwrap_err(), Refused::PerAddress);
        let other = l.admit(ip("192.0.2.2")).unwrap();
        let _third = l.admit(ip("192.0.2.3")).unwrap();
        assert_eq!(l.admit(ip("192.0.2.4")).unwrap_err(), Refused::Full);
        drop(other);
        assert!(
            l.admit(ip("192.0.2.4")).is_ok(),
            "a closed connection gives its slot back"
        );
        drop(mine);
        assert_eq!(l.open_from(ip("192.0.2.1")), 0);
        assert_eq!(l.open(), 1);
    }

    #[test]
    fn services_sharing_a_total_count_addresses_each_for_themselves() {
        let smtp = ConnLimits::new(2, 3);
        let pop3 = smtp.sharing_total();
        let a = ip("192.0.2.1");
        let _s: Vec<Slot> = (0..2).map(|_| smtp.admit(a).unwrap()).collect();
        assert_eq!(smtp.admit(a).unwrap_err(), Refused::PerAddress);
        let _p = pop3.admit(a).unwrap();
        assert_eq!(pop3.admit(ip("192.0.2.2")).unwrap_err(), Refused::Full);
        assert_eq!((smtp.open(), pop3.open()), (3, 3));
    }

    #[test]
    fn an_ipv6_client_is_its_slash_64_and_a_mapped_address_its_ipv4() {
        assert_eq!(
            Client::of(ip("2001:db8:1:2:aaaa::1")),
            Client::of(ip("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(
            Client::of(ip("2001:db8:1:2::1")),
            Client::of(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            Client::of(ip("::ffff:192.0.2.1")),
            Client::of(ip("192.0.2.1"))
        );
    }
}
