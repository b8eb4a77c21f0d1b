//! officebox's phone system: a SIP registrar and back-to-back user agent for the
//! office's extensions, and its lines to telephone providers. Phones register with digest authentication (MD5 or SHA-256,
//! against per-user hashes; no password is stored), over UDP or TCP; calls between
//! extensions go through the box, audio through its media relay; unanswered calls go to
//! voicemail, delivered by email, and the voicemail extension reads the mailbox out.
//!
//! - [`sip`]: parsing and building SIP messages, never trusting the bytes.
//! - [`digest`]: challenges and their answers.
//! - [`registrar`]: where each user's phones are.
//! - [`server`]: the UDP and TCP listeners, retransmissions, NAT-friendly replies.
//! - [`call`]: one call, from the caller's INVITE to the last BYE.
//! - [`sdp`] and [`rtp`]: the calls' SDP rewritten to the box, and the media relay.
//! - [`media`], [`voicemail`], [`menu`], [`attendant`], [`fax`]: the box's own end of a call.
//! - [`mwi`]: message-waiting indication (NOTIFY to subscribed phones).
//! - [`trunk`]: the lines to telephone providers (registration to the provider).
//! - [`daynight`]: the night code, forcing the office hours closed or open by hand.
//! - [`alert`]: mails to the administrators about toll-fraud limits and lockouts.
//! - [`wav`]: the WAV reader and writer.

#![cfg_attr(not(test), warn(clippy::string_slice, clippy::indexing_slicing))]

pub mod alert;
pub mod attendant;
pub mod call;
pub mod conference;
pub mod daynight;
pub mod digest;
pub mod fax;
pub mod fax_out;
pub mod mailbox;
pub mod media;
pub mod menu;
pub mod music;
pub mod mwi;
pub mod registrar;
pub mod rtp;
pub mod sdp;
pub mod server;
pub mod sip;
pub mod trunk;
pub mod voicemail;
/// The WAV reader and writer (kept state: in the store crate, which the pages share).
pub use officebox_store::wav;

pub use server::serve;

/// Now, in Unix seconds (registrations and calls count in unsigned seconds).
pub(crate) fn now_unix() -> u64 {
    u64::try_from(officebox_store::unix_now()).unwrap_or(0)
}
