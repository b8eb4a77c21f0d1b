//! officebox's phone system. This first part is the SIP registrar: phones register with
//! digest authentication (MD5 or SHA-256, against per-user hashes; no password is
//! stored), over UDP or TCP, and OPTIONS pings are answered. Calls, the media relay and
//! voicemail come next (issue 8).
//!
//! - [`sip`]: parsing and building SIP messages, never trusting the bytes.
//! - [`digest`]: challenges and their answers.
//! - [`registrar`]: where each user's phones are.
//! - [`server`]: the UDP and TCP listeners, retransmissions, NAT-friendly replies.

pub mod call;
pub mod digest;
pub mod media;
pub mod menu;
pub mod mwi;
pub mod registrar;
pub mod rtp;
pub mod sdp;
pub mod server;
pub mod sip;
pub mod voicemail;
pub mod wav;

pub use server::serve;

/// Now, in Unix seconds (registrations and calls count in unsigned seconds).
pub(crate) fn now_unix() -> u64 {
    u64::try_from(officebox_store::unix_now()).unwrap_or(0)
}
