//! Fax for officebox (the white paper's unified messaging: faxes into the same mailbox
//! as mail and voicemail).
//!
//! - [`terminal`]: a fax machine on a call, SpanDSP's T.30 engine on the call's audio
//!   (over G.711, with SpanDSP's modems) or on T.38; it receives into a TIFF file, or
//!   sends one.
//! - [`udptl`]: T.38's packets in UDP datagrams, with copies of the ones before.
//! - [`tiff`]: the received file's pages read back (Group 4, as the receiver writes
//!   them), and bilevel pages written for sending.
//! - [`render`]: documents (PDF, plain text) made into fax pages, for faxes sent from
//!   email.
//! - [`pdf`]: the received pages as one PDF, their Group 4 data as it came.
//! - [`CngDetector`]: a calling fax machine's tone heard on a call a person was expected
//!   on (voicemail), so that the box can answer as a fax machine instead.
//!
//! SpanDSP is C; the few calls its Rust wrapper leaves unsafe are in one module (`ffi`),
//! each with what makes it sound.

mod ffi;
pub mod pdf;
pub mod render;
pub mod terminal;
pub mod tiff;
pub mod udptl;

pub use ffi::CngDetector;
pub use terminal::{Outcome, Page, Role, Terminal};

/// Why a fax could not be set up or its file read.
#[derive(Debug, thiserror::Error)]
pub enum FaxError {
    #[error("the fax engine: {0}")]
    Engine(String),
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {why}")]
    Tiff {
        path: std::path::PathBuf,
        why: String,
    },
}

impl FaxError {
    fn engine(e: spandsp::error::SpanDspError) -> FaxError {
        FaxError::Engine(e.to_string())
    }

    fn io(path: &std::path::Path, source: std::io::Error) -> FaxError {
        FaxError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
