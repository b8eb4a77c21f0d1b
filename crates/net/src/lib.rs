//! officebox's network side: the firewall ruleset per security mode ([`firewall`]), the
//! host's interfaces, routes, forwarding and ruleset when officebox manages them
//! ([`manage`], through the netlink operations in `officebox_sockets::netlink`, which
//! the WAN DHCP client uses too), the WAN shaped just below the line's speeds with
//! voice first ([`shaping`]), and the LAN's time server ([`ntp`]).
//!
//! Services in this crate take a `watch::Receiver<Arc<Config>>` and a cancellation token,
//! apply each new config as it is published, and return when the token is cancelled.

pub mod firewall;
pub mod manage;
pub mod ntp;
pub mod shaping;
