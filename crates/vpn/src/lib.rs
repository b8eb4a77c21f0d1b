//! officebox's WireGuard tunnels: offices joined as sites, and remote workers' devices.
//!
//! - [`tunnel`]: the userspace datapath (boringtun's protocol): routing inner packets to
//!   peers by their subnets, datagrams to peers by index or proven key, strangers
//!   unanswered, and each peer's status.
//! - [`service`]: `[vpn]` made real: the key, the TUN interface, its address and the
//!   sites' routes, the socket, the datapath; again on each change. Each site's box is
//!   asked whether its DNS and phones answer (`probe`).

mod probe;
pub mod service;
pub mod tunnel;

pub use service::{VpnError, serve};
pub use tunnel::{Packets, PeerConfig, PeerStatus, Subnet, Tunnel};
