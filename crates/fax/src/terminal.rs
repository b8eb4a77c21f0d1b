//! A fax machine on a call: SpanDSP's T.30 engine, either on the call's audio (its
//! modems, V.17, V.29 and V.27ter, fed 8 kHz linear samples decoded from G.711 by the
//! caller, giving the audio to send back) or on T.38 (the same engine speaking IFP
//! packets, carried in UDPTL datagrams with redundancy: [`crate::udptl`]).
//!
//! A receiver writes the pages into a TIFF file (Group 4, one strip per page) and keeps
//! what arrived of a page cut off in the middle (SpanDSP's receive recovery: the rows
//! decoded before the damage, never made-up ones). A sender sends a TIFF file's pages.
//! Both run until the engine's phase E (the fax is over, well or not) or the caller stops
//! feeding them (the call ended); [`Terminal::finish`] then says what happened.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use spandsp::fax::FaxState;
use spandsp::t4::T4Compression;
use spandsp::t30::{T30ModemSupport, T30State};
use spandsp::t38_terminal::T38Terminal;
use spandsp::{ReceiveCompletion, ReceivePageKind, ReceiveRecovery, ReceiveReport};

use crate::FaxError;
use crate::ffi::{self, Watch};

/// Receiving or sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Receiver,
    Sender,
}

/// The engine: on audio, or on T.38 (with where its packets go, and the UDPTL framing).
enum Engine {
    Audio(FaxState),
    T38(T38Terminal, crate::udptl::Session),
}

impl Engine {
    fn t30(&self) -> Result<T30State<'_>, FaxError> {
        match self {
            Engine::Audio(f) => f.get_t30_state(),
            Engine::T38(t, _) => t.get_t30_state(),
        }
        .map_err(FaxError::engine)
    }

    fn finalize_receive(&mut self) -> &ReceiveReport {
        match self {
            Engine::Audio(f) => f.finalize_receive(),
            Engine::T38(t, _) => t.finalize_receive(),
        }
    }
}

/// A fax machine on one call. Drop order matters: the engine goes before the places its
/// callbacks write to (`watch`, and a T.38 engine's outbox).
pub struct Terminal {
    engine: Engine,
    watch: Watch,
    outbox: Option<ffi::Outbox>,
    role: Role,
    file: PathBuf,
    started: Instant,
    scratch: Vec<i16>,
    /// The receive report, once taken (a receiver's file is closed then).
    finished: bool,
}

impl std::fmt::Debug for Terminal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Terminal")
            .field("role", &self.role)
            .field("t38", &self.is_t38())
            .field("file", &self.file)
            .field("events", &self.watch.get())
            .finish_non_exhaustive()
    }
}

/// One page as it arrived (or went).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Whole (confirmed by the post-page exchange), or what arrived of a page cut off.
    pub complete: bool,
    pub width: u32,
    pub rows: u32,
    /// Dots per inch, across and down.
    pub dpi: (u32, u32),
}

/// What a fax call came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub role: Role,
    /// The T.30 completion code (0: OK) and its words; `None` when the call ended before
    /// the fax did (the other end hung up, the line went).
    pub code: Option<i32>,
    pub reason: String,
    /// The other machine's station identity (often its number), if it sent one.
    pub remote_ident: String,
    /// The pages received into the file (a receiver), in order; a sender's are counted
    /// in `pages_sent`.
    pub pages: Vec<Page>,
    pub pages_sent: u32,
    /// The line's last speed (bit/s) and whether error correction was on.
    pub bit_rate: u32,
    pub ecm: bool,
    pub duration: Duration,
    /// The TIFF file (received pages, or the pages sent).
    pub file: PathBuf,
}

impl Outcome {
    /// Every page came (or went) and the machines said goodbye properly.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Pages that came whole.
    pub fn complete_pages(&self) -> usize {
        self.pages.iter().filter(|p| p.complete).count()
    }
}

/// What both ends are set up with: the standard modems, error correction (ECM) offered,
/// black and white pages in any of the T.4/T.6 codings.
fn common(t30: &T30State<'_>, ident: &str) -> Result<(), FaxError> {
    t30.set_supported_modems(T30ModemSupport::V27TER | T30ModemSupport::V29 | T30ModemSupport::V17)
        .map_err(FaxError::engine)?;
    t30.set_ecm_capability(true).map_err(FaxError::engine)?;
    let codings = T4Compression::T4_1D | T4Compression::T4_2D | T4Compression::T6;
    t30.set_supported_compressions(i32::try_from(codings.bits()).unwrap_or(0))
        .map_err(FaxError::engine)?;
    ffi::set_ident(t30, ident);
    Ok(())
}

fn path_str(path: &Path) -> Result<&str, FaxError> {
    path.to_str()
        .ok_or_else(|| FaxError::Engine(format!("{} is not UTF-8", path.display())))
}

impl Terminal {
    /// The answering machine of a call on its audio, receiving into `tiff` (made or
    /// replaced), sending `ident` as its identity.
    pub fn receiver(tiff: &Path, ident: &str) -> Result<Terminal, FaxError> {
        let fax = FaxState::new_receiver(ReceiveRecovery::PreserveDecodedRows)
            .map_err(FaxError::engine)?;
        fax.set_transmit_on_idle(true);
        Terminal::start(Engine::Audio(fax), None, Role::Receiver, tiff, ident)
    }

    /// The answering machine of a call on T.38, receiving into `tiff`; its datagrams
    /// are at most `max_datagram` bytes (what the far end said it takes).
    pub fn receiver_t38(
        tiff: &Path,
        ident: &str,
        max_datagram: usize,
    ) -> Result<Terminal, FaxError> {
        let (term, outbox) = ffi::t38_terminal(false).map_err(FaxError::engine)?;
        let engine = Engine::T38(term, crate::udptl::Session::new(max_datagram));
        Terminal::start(engine, Some(outbox), Role::Receiver, tiff, ident)
    }

    /// The calling machine on a call's audio, sending the pages of `tiff`, with `ident`
    /// as its identity.
    pub fn sender(tiff: &Path, ident: &str) -> Result<Terminal, FaxError> {
        if !tiff.is_file() {
            return Err(FaxError::io(tiff, std::io::ErrorKind::NotFound.into()));
        }
        let fax = FaxState::new(true).map_err(FaxError::engine)?;
        fax.set_transmit_on_idle(true);
        Terminal::start(Engine::Audio(fax), None, Role::Sender, tiff, ident)
    }

    /// The calling machine on T.38, sending the pages of `tiff`.
    pub fn sender_t38(tiff: &Path, ident: &str, max_datagram: usize) -> Result<Terminal, FaxError> {
        if !tiff.is_file() {
            return Err(FaxError::io(tiff, std::io::ErrorKind::NotFound.into()));
        }
        let (term, outbox) = ffi::t38_terminal(true).map_err(FaxError::engine)?;
        let engine = Engine::T38(term, crate::udptl::Session::new(max_datagram));
        Terminal::start(engine, Some(outbox), Role::Sender, tiff, ident)
    }

    /// Sets up `engine`'s T.30 for `role` with `tiff` (received into, or sent) and
    /// starts watching it.
    fn start(
        engine: Engine,
        outbox: Option<ffi::Outbox>,
        role: Role,
        tiff: &Path,
        ident: &str,
    ) -> Result<Terminal, FaxError> {
        let t30 = engine.t30()?;
        common(&t30, ident)?;
        let file = path_str(tiff)?;
        match role {
            Role::Receiver => {
                t30.set_rx_file(file, -1).map_err(FaxError::engine)?;
                ffi::write_group_4(&t30);
            }
            Role::Sender => t30.set_tx_file(file, -1, -1).map_err(FaxError::engine)?,
        }
        let watch = Watch::new(&t30);
        drop(t30);
        Ok(Terminal::new(engine, watch, outbox, role, tiff))
    }

    fn new(
        engine: Engine,
        watch: Watch,
        outbox: Option<ffi::Outbox>,
        role: Role,
        file: &Path,
    ) -> Terminal {
        Terminal {
            engine,
            watch,
            outbox,
            role,
            file: file.to_path_buf(),
            started: Instant::now(),
            scratch: Vec::new(),
            finished: false,
        }
    }

    /// Whether this machine speaks T.38 (else audio).
    pub fn is_t38(&self) -> bool {
        matches!(self.engine, Engine::T38(..))
    }

    /// Takes in one UDPTL datagram from the far end (T.38): its packet, and any earlier
    /// one lost on the way that its redundancy carries. A datagram that is not UDPTL is
    /// dropped; `false` says so.
    pub fn rx_datagram(&mut self, datagram: &[u8]) -> bool {
        let Engine::T38(term, session) = &mut self.engine else {
            return false;
        };
        if self.finished {
            return true;
        }
        let Some(ifps) = session.receive(datagram) else {
            return false;
        };
        if let Ok(core) = term.get_t38_core_state() {
            for (seq, ifp) in ifps {
                // A packet the engine cannot make sense of is its to judge (it asks
                // again, or the fax fails with a reason); nothing here to add.
                let _ = core.rx_ifp_packet(&ifp, seq);
            }
        }
        true
    }

    /// Runs a T.38 machine's clock by `samples` (8000 a second; call it every 20 ms with
    /// 160) and appends the datagrams it has to send to `out`.
    pub fn tick_t38(&mut self, samples: i32, out: &mut Vec<Vec<u8>>) {
        let Engine::T38(term, session) = &mut self.engine else {
            return;
        };
        if !self.finished {
            term.send_timeout(samples);
        }
        if let Some(outbox) = self.outbox.as_mut() {
            for (ifp, count) in outbox.take() {
                if let Some(d) = session.frame(&ifp) {
                    for _ in 0..count {
                        out.push(d.clone());
                    }
                }
            }
        }
    }

    /// Takes in audio from the line.
    pub fn rx(&mut self, samples: &[i16]) {
        let Engine::Audio(fax) = &self.engine else {
            return;
        };
        if self.finished {
            return;
        }
        self.scratch.clear();
        self.scratch.extend_from_slice(samples);
        fax.rx(&mut self.scratch);
    }

    /// Fills `out` with the audio to send (silence once there is nothing to say).
    pub fn tx(&mut self, out: &mut [i16]) {
        let n = match &self.engine {
            Engine::Audio(fax) if !self.finished => fax.tx(out),
            _ => 0,
        };
        if let Some(rest) = out.get_mut(n..) {
            rest.fill(0);
        }
    }

    /// Whether the fax is over (phase E): the call may be ended.
    pub fn done(&self) -> bool {
        self.watch.get().completion.is_some()
    }

    /// Pages done so far.
    pub fn pages(&self) -> u32 {
        self.watch.get().pages
    }

    /// Whether the two machines have agreed to exchange pages (phase B): a fax call.
    pub fn negotiated(&self) -> bool {
        self.watch.get().negotiated
    }

    /// Ends the fax (the call is over or the fax is done) and says what happened; a
    /// receiver's file is closed, holding what arrived.
    pub fn finish(mut self) -> Outcome {
        let events = self.watch.get();
        let (remote_ident, stats) = match self.engine.t30() {
            Ok(t30) => (ffi::remote_ident(&t30), Some(t30.get_transfer_statistics())),
            Err(_) => (String::new(), None),
        };
        let mut pages = Vec::new();
        let mut code = events.completion;
        if self.role == Role::Receiver {
            let report = self.engine.finalize_receive();
            if let ReceiveCompletion::Completed { code: c } = report.completion {
                code = Some(c);
            }
            let dpi = |per_metre: i32| {
                let v = (f64::from(per_metre) * 0.0254).round();
                if v > 0.0 && v < 10_000.0 {
                    // In range, as just checked.
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    let v = v as u32;
                    v
                } else {
                    0
                }
            };
            pages = report
                .pages
                .iter()
                .map(|p| Page {
                    complete: p.kind == ReceivePageKind::Complete && !p.missing_tail,
                    width: p.pixel_width,
                    rows: p.decoded_rows,
                    dpi: (dpi(p.horizontal_resolution), dpi(p.vertical_resolution)),
                })
                .collect();
        }
        self.finished = true;
        let reason = match code {
            Some(c) => ffi::completion_text(c),
            None => "the call ended before the fax did".to_string(),
        };
        let (bit_rate, ecm) = stats.map_or((0, false), |s| {
            (
                u32::try_from(s.bit_rate).unwrap_or(0),
                s.error_correcting_mode != 0,
            )
        });
        Outcome {
            role: self.role,
            code,
            reason,
            remote_ident,
            pages,
            pages_sent: if self.role == Role::Sender {
                stats.map_or(events.pages, |s| u32::try_from(s.pages_tx).unwrap_or(0))
            } else {
                0
            },
            bit_rate,
            ecm,
            duration: self.started.elapsed(),
            file: self.file.clone(),
        }
    }
}
