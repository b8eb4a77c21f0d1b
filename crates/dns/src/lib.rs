//! officebox's DNS: the authority for the company zone (built-in, static and DHCP names,
//! and the LAN's reverse zone) and the LAN's caching resolver.
//!
//! - [`wire`]: the DNS wire format, parsed in place.
//! - [`zone`]: the zone as ready answers, rebuilt on every change with a new serial.
//! - [`answer`]: one query in, one action out: the pipeline shared by UDP and TCP.
//! - [`cache`] and [`forward`]: the resolver for every other name.
//! - [`serve`]: the service: UDP on blocking threads (the hot path never awaits), TCP on
//!   tokio, and a maintenance task that follows the config, the DHCP leases in the state
//!   database and the WAN address.
//!
//! Invariants: no input panics the process (parsers return errors; the pipeline answers
//! FORMERR or drops); WAN clients never get recursion; the zone's serial only grows, also
//! across restarts (it is kept in the state database).

#![cfg_attr(not(test), warn(clippy::string_slice, clippy::indexing_slicing))]

pub mod answer;
pub mod cache;
pub mod forward;
mod maintain;
mod tcp;
mod udp;
pub use officebox_dnswire as wire;
pub mod zone;

pub use maintain::{names, serve};
