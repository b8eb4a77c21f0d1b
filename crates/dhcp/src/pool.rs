//! The address pool: who holds which address, and which address a client gets.
//!
//! Pure and in memory; the server persists every binding that matters (bound, released,
//! declined) through the state database before it answers, and rebuilds the pool from the
//! database at start. Offers are not persisted: a lost offer costs the client a retry.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use officebox_config::values::Mac;

/// How long an offered address is held for the client that was offered it.
pub const OFFER_HOLD: i64 = 60;
/// How long a declined address (in use by someone unknown, RFC 2131 3.1.5) is kept out.
pub const DECLINE_QUARANTINE: i64 = 600;

/// How a client is known: its client identifier (option 61) when it sends one, else its
/// hardware type and address (RFC 2131 4.2; RFC 6842).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientKey(pub Vec<u8>);

/// Where a binding is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Offered, not yet requested; held until the time given.
    Offered,
    Bound,
    Released,
    Declined,
}

/// One address and who has (or had) it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub address: Ipv4Addr,
    pub client: ClientKey,
    pub mac: Mac,
    pub hostname: Option<String>,
    /// Bound: the lease's end. Offered: the hold's end. Declined: the quarantine's end.
    pub until: i64,
    pub state: State,
    pub reserved: bool,
}

impl Binding {
    /// Whether the address is taken at `now` (by this binding's client).
    fn holds(&self, now: i64) -> bool {
        match self.state {
            State::Bound | State::Offered | State::Declined => self.until > now,
            State::Released => false,
        }
    }
}

/// Why a request cannot be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the address is not in this LAN's pool")]
    NotOurs,
    #[error("the address belongs to another client")]
    Taken,
    #[error("no address is free")]
    Exhausted,
}

/// The pool of one LAN.
#[derive(Debug)]
pub struct Pool {
    first: u32,
    last: u32,
    excluded: HashSet<u32>,
    /// MAC -> reserved address and host name.
    reservations: HashMap<Mac, (Ipv4Addr, Option<String>)>,
    reserved_addrs: HashMap<u32, Mac>,
    by_addr: HashMap<u32, Binding>,
    by_client: HashMap<ClientKey, u32>,
    /// Where the search for a never-used address goes on.
    cursor: u32,
}

impl Pool {
    /// A pool over `first..=last` without `excluded` (our own address among them), with
    /// fixed addresses for the `reservations`.
    pub fn new(
        first: Ipv4Addr,
        last: Ipv4Addr,
        excluded: &[Ipv4Addr],
        reservations: impl IntoIterator<Item = (Mac, Ipv4Addr, Option<String>)>,
    ) -> Pool {
        let mut pool = Pool {
            first: u32::from(first),
            last: u32::from(last),
            excluded: excluded.iter().map(|a| u32::from(*a)).collect(),
            reservations: HashMap::new(),
            reserved_addrs: HashMap::new(),
            by_addr: HashMap::new(),
            by_client: HashMap::new(),
            cursor: u32::from(first),
        };
        for (mac, addr, host) in reservations {
            pool.reservations.insert(mac, (addr, host));
            pool.reserved_addrs.insert(u32::from(addr), mac);
        }
        pool
    }

    /// Takes a binding read back from the database at start.
    pub fn restore(&mut self, b: Binding) {
        let addr = u32::from(b.address);
        if let Some(old) = self.by_addr.get(&addr) {
            self.by_client.remove(&old.client);
        }
        self.by_client.insert(b.client.clone(), addr);
        self.by_addr.insert(addr, b);
    }

    pub fn binding(&self, addr: Ipv4Addr) -> Option<&Binding> {
        self.by_addr.get(&u32::from(addr))
    }

    /// The client's binding, whatever its state.
    pub fn of_client(&self, client: &ClientKey) -> Option<&Binding> {
        self.by_client.get(client).and_then(|a| self.by_addr.get(a))
    }

    fn in_range(&self, addr: u32) -> bool {
        (self.first..=self.last).contains(&addr) && !self.excluded.contains(&addr)
    }

    /// Whether `client` (with `mac`) may have `addr` at `now`.
    fn available_to(
        &self,
        addr: u32,
        client: &ClientKey,
        mac: Mac,
        now: i64,
    ) -> Result<(), Refusal> {
        match self.reserved_addrs.get(&addr) {
            Some(owner) if *owner == mac => return self.free_of_others(addr, client, now),
            Some(_) => return Err(Refusal::Taken),
            None => {}
        }
        if !self.in_range(addr) {
            return Err(Refusal::NotOurs);
        }
        self.free_of_others(addr, client, now)
    }

    fn free_of_others(&self, addr: u32, client: &ClientKey, now: i64) -> Result<(), Refusal> {
        match self.by_addr.get(&addr) {
            Some(b) if b.client != *client && b.holds(now) => Err(Refusal::Taken),
            Some(b) if b.state == State::Declined && b.holds(now) => Err(Refusal::Taken),
            _ => Ok(()),
        }
    }

    /// The address to offer `client`: its reservation; else the address it has or had;
    /// else the one it asks for, if free; else a never-used address; else the one that has
    /// been free longest.
    pub fn choose(
        &self,
        client: &ClientKey,
        mac: Mac,
        requested: Option<Ipv4Addr>,
        now: i64,
    ) -> Result<Ipv4Addr, Refusal> {
        if let Some((addr, _)) = self.reservations.get(&mac) {
            return self
                .free_of_others(u32::from(*addr), client, now)
                .map(|()| *addr);
        }
        if let Some(b) = self.of_client(client)
            && b.state != State::Declined
            && self
                .available_to(u32::from(b.address), client, mac, now)
                .is_ok()
        {
            return Ok(b.address);
        }
        if let Some(r) = requested
            && self.available_to(u32::from(r), client, mac, now).is_ok()
        {
            return Ok(r);
        }
        self.free_address(client, mac, now)
            .map(Ipv4Addr::from)
            .ok_or(Refusal::Exhausted)
    }

    fn free_address(&self, client: &ClientKey, mac: Mac, now: i64) -> Option<u32> {
        let Some(span) = self.last.checked_sub(self.first) else {
            return None; // an empty range
        };
        let size = u64::from(span) + 1;
        // Never-used addresses first, from the cursor on.
        let mut addr = self.cursor.clamp(self.first, self.last);
        for _ in 0..size {
            if !self.by_addr.contains_key(&addr)
                && self.available_to(addr, client, mac, now).is_ok()
            {
                return Some(addr);
            }
            addr = if addr >= self.last {
                self.first
            } else {
                addr + 1
            };
        }
        // Then the address free for the longest time.
        self.by_addr
            .iter()
            .filter(|(a, b)| !b.holds(now) && self.available_to(**a, client, mac, now).is_ok())
            .min_by_key(|(a, b)| (b.until, **a))
            .map(|(a, _)| *a)
    }

    fn put(&mut self, b: Binding) -> &Binding {
        let addr = u32::from(b.address);
        // The client's previous address, if different, is no longer its.
        if let Some(prev) = self.by_client.insert(b.client.clone(), addr)
            && prev != addr
            && let Some(old) = self.by_addr.get_mut(&prev)
            && old.client == b.client
            && old.state != State::Declined
        {
            old.state = State::Released;
        }
        // The address's previous holder no longer has it, unless it has moved on already.
        if let Some(old) = self.by_addr.get(&addr)
            && old.client != b.client
            && self.by_client.get(&old.client) == Some(&addr)
        {
            self.by_client.remove(&old.client);
        }
        if addr == self.cursor {
            self.cursor = if addr >= self.last {
                self.first
            } else {
                addr + 1
            };
        }
        match self.by_addr.entry(addr) {
            Entry::Occupied(mut held) => {
                held.insert(b);
                held.into_mut()
            }
            Entry::Vacant(free) => free.insert(b),
        }
    }

    /// Holds `addr` for `client` while it decides (DHCPOFFER).
    pub fn offer(&mut self, client: &ClientKey, mac: Mac, addr: Ipv4Addr, now: i64) {
        let existing_bound = self
            .binding(addr)
            .is_some_and(|b| b.client == *client && b.state == State::Bound && b.holds(now));
        if existing_bound {
            return;
        }
        let reserved = self.reservations.contains_key(&mac);
        let hostname = self
            .binding(addr)
            .filter(|b| b.client == *client)
            .and_then(|b| b.hostname.clone());
        self.put(Binding {
            address: addr,
            client: client.clone(),
            mac,
            hostname,
            until: now + OFFER_HOLD,
            state: State::Offered,
            reserved,
        });
    }

    /// Binds `addr` to `client` until `now + lease_secs` (DHCPACK), if it may have it.
    pub fn bind(
        &mut self,
        client: &ClientKey,
        mac: Mac,
        addr: Ipv4Addr,
        hostname: Option<String>,
        lease_secs: i64,
        now: i64,
    ) -> Result<&Binding, Refusal> {
        self.available_to(u32::from(addr), client, mac, now)?;
        let reserved = self.reservations.get(&mac).is_some_and(|(a, _)| *a == addr);
        let hostname =
            hostname.or_else(|| self.reservations.get(&mac).and_then(|(_, h)| h.clone()));
        Ok(self.put(Binding {
            address: addr,
            client: client.clone(),
            mac,
            hostname,
            until: now + lease_secs,
            state: State::Bound,
            reserved,
        }))
    }

    /// The client gives its address back (DHCPRELEASE). Returns the binding to persist.
    /// The client is recognised by its identifier or its hardware address: some clients
    /// (dhclient) send a client identifier in the release that they did not send before.
    pub fn release(
        &mut self,
        client: &ClientKey,
        mac: Mac,
        addr: Ipv4Addr,
        now: i64,
    ) -> Option<&Binding> {
        let b = self.by_addr.get_mut(&u32::from(addr))?;
        if (b.client != *client && b.mac != mac) || b.state != State::Bound {
            return None;
        }
        b.state = State::Released;
        b.until = now;
        Some(b)
    }

    /// The client found `addr` in use (DHCPDECLINE): keep it out for a while.
    pub fn decline(
        &mut self,
        client: &ClientKey,
        mac: Mac,
        addr: Ipv4Addr,
        now: i64,
    ) -> Option<&Binding> {
        let b = self.by_addr.get_mut(&u32::from(addr))?;
        if b.client != *client && b.mac != mac {
            return None;
        }
        b.state = State::Declined;
        b.until = now + DECLINE_QUARANTINE;
        b.hostname = None;
        Some(b)
    }

    /// Something answered a ping to `addr` (a device configured by hand): keep the address
    /// out of the pool for a while, whoever was offered it.
    pub fn mark_in_use(&mut self, addr: Ipv4Addr, now: i64) {
        self.put(Binding {
            address: addr,
            client: ClientKey(b"in use (answered a ping)".to_vec()),
            mac: Mac([0; 6]),
            hostname: None,
            until: now + DECLINE_QUARANTINE,
            state: State::Declined,
            reserved: false,
        });
    }

    /// A client gave up the offer (it chose another server).
    pub fn forget_offer(&mut self, client: &ClientKey) {
        if let Some(addr) = self.by_client.get(client).copied()
            && let Some(b) = self.by_addr.get_mut(&addr)
            && b.state == State::Offered
        {
            b.state = State::Released;
        }
    }

    /// Every binding, for listing.
    pub fn bindings(&self) -> impl Iterator<Item = &Binding> {
        self.by_addr.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn client(n: u8) -> (ClientKey, Mac) {
        let mac = Mac([2, 0, 0, 0, 0, n]);
        (ClientKey(vec![1, 2, 0, 0, 0, 0, n]), mac)
    }

    fn pool() -> Pool {
        Pool::new(
            ip("192.168.1.1"),
            ip("192.168.1.5"),
            &[ip("192.168.1.1")],
            [(
                Mac([2, 0, 0, 0, 0, 9]),
                ip("192.168.1.200"),
                Some("printer".into()),
            )],
        )
    }

    #[test]
    fn a_client_keeps_its_address() {
        let mut p = pool();
        let (c, m) = client(1);
        let a = p.choose(&c, m, None, 0).unwrap();
        assert_eq!(a, ip("192.168.1.2"), "our own .1 is excluded");
        p.offer(&c, m, a, 0);
        p.bind(&c, m, a, None, 3600, 0).unwrap();
        // Renewal, and after expiry, and after release: the same address again.
        assert_eq!(p.choose(&c, m, None, 100).unwrap(), a);
        assert_eq!(p.choose(&c, m, None, 10_000).unwrap(), a);
        p.release(&c, m, a, 200).unwrap();
        assert_eq!(p.choose(&c, m, None, 300).unwrap(), a);
    }

    #[test]
    fn no_address_is_given_to_two_clients() {
        let mut p = pool();
        let mut given = HashSet::new();
        for n in 1..=4 {
            let (c, m) = client(n);
            let a = p.choose(&c, m, Some(ip("192.168.1.2")), 0).unwrap();
            p.offer(&c, m, a, 0);
            p.bind(&c, m, a, None, 3600, 0).unwrap();
            assert!(given.insert(a), "{a} given twice");
        }
        let (c, m) = client(5);
        assert_eq!(p.choose(&c, m, None, 0), Err(Refusal::Exhausted));
        // Client 1's address is not someone else's to request.
        assert_eq!(
            p.bind(&c, m, ip("192.168.1.2"), None, 60, 0).unwrap_err(),
            Refusal::Taken
        );
        // Once a lease expires, its address can go to another client, oldest first.
        let a = p.choose(&c, m, None, 4000).unwrap();
        assert!(given.contains(&a));
    }

    #[test]
    fn reservations_and_requests() {
        let mut p = pool();
        let printer = Mac([2, 0, 0, 0, 0, 9]);
        let pk = ClientKey(vec![1, 2, 0, 0, 0, 0, 9]);
        assert_eq!(
            p.choose(&pk, printer, Some(ip("192.168.1.3")), 0).unwrap(),
            ip("192.168.1.200")
        );
        let b = p
            .bind(&pk, printer, ip("192.168.1.200"), None, 60, 0)
            .unwrap();
        assert!(b.reserved);
        assert_eq!(b.hostname.as_deref(), Some("printer"));
        // Nobody else gets the reserved address, even if they ask for it.
        let (c, m) = client(1);
        assert_eq!(
            p.bind(&c, m, ip("192.168.1.200"), None, 60, 0).unwrap_err(),
            Refusal::Taken
        );
        // A requested free address is honoured; one outside the pool is not ours.
        assert_eq!(
            p.choose(&c, m, Some(ip("192.168.1.4")), 0).unwrap(),
            ip("192.168.1.4")
        );
        assert_eq!(
            p.bind(&c, m, ip("10.0.0.1"), None, 60, 0).unwrap_err(),
            Refusal::NotOurs
        );
    }

    #[test]
    fn declined_addresses_are_quarantined() {
        let mut p = pool();
        let (c, m) = client(1);
        let a = p.choose(&c, m, None, 0).unwrap();
        p.bind(&c, m, a, None, 3600, 0).unwrap();
        p.decline(&c, m, a, 10).unwrap();
        let next = p.choose(&c, m, None, 20).unwrap();
        assert_ne!(next, a, "the declined address is not offered again");
        let (c2, m2) = client(2);
        assert_ne!(p.choose(&c2, m2, Some(a), 20).unwrap(), a);
        assert!(
            p.choose(&c2, m2, Some(a), 10 + DECLINE_QUARANTINE + 1)
                .is_ok()
        );
    }

    #[test]
    fn offers_are_held_briefly() {
        let mut p = pool();
        let (c1, m1) = client(1);
        let (c2, m2) = client(2);
        let a = p.choose(&c1, m1, None, 0).unwrap();
        p.offer(&c1, m1, a, 0);
        assert_ne!(
            p.choose(&c2, m2, None, 1).unwrap(),
            a,
            "held for the first client"
        );
        let later = p.choose(&c2, m2, Some(a), OFFER_HOLD + 1).unwrap();
        assert_eq!(later, a, "an unanswered offer lapses");
    }
}
