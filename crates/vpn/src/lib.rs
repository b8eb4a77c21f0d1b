//! officebox's WireGuard tunnels: offices joined as sites, and remote workers' devices.
//!
//! - [`tunnel`]: the userspace datapath (boringtun's protocol): routing inner packets to
//!   peers by their subnets, datagrams to peers by index or proven key, strangers
//!   unanswered, and each peer's status.

pub mod tunnel;

pub use tunnel::{Packets, PeerConfig, PeerStatus, Subnet, Tunnel};
