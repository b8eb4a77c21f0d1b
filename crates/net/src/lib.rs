//! officebox's network side. Today: the LAN's time server ([`ntp`]). The router issue adds
//! interfaces, routes and the nftables ruleset per security mode here.
//!
//! Services in this crate take a `watch::Receiver<Arc<Config>>` and a cancellation token,
//! apply each new config as it is published, and return when the token is cancelled.

pub mod firewall;
pub mod ntp;
