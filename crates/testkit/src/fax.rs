//! A fax machine at the far end of a call, for the fax tests: SpanDSP's own T.30 engine
//! (the spandsp crate directly, none of officebox's fax code) sending a TIFF file's
//! pages over RTP as G.711 with SpanDSP's modems, or over T.38 (its T.38 terminal, the
//! packets framed by the `udptl` crate with copies of the last three). sipp does the
//! call's SIP (and the re-INVITE to T.38); this is its media.
//!
//! The machine listens on its own UDP port (named in sipp's SDP as the media port) and
//! sends to wherever the box's media comes from: on audio, the box's first RTP packet
//! (it sends as soon as it answers); on T.38, its first UDPTL datagram (RTP before the
//! switch is not listened to). 20 ms a step, until the fax is over, the test stops it,
//! or it has sent `hang_up_after` pages (then it falls silent, as a machine whose line
//! was cut).
//!
//! Also the pages the tests send ([`fax_test_page`]) and what they check a received PDF
//! with: poppler's pdftoppm ([`pdf_pages`]) and [`fax_agreement`].
#![allow(unsafe_code)] // one call: the station identity (see `set_ident`)

use std::ffi::CString;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use officebox_fax::tiff::Bitmap;
use spandsp::fax::FaxState;
use spandsp::g711::{alaw_to_linear, linear_to_alaw, linear_to_ulaw, ulaw_to_linear};
use spandsp::t30::{T30ModemSupport, T30State};
use spandsp::t38_terminal::T38Terminal;
use udptl::{RedundancyReceiver, UdptlPacket};

/// How the machine is on the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaxLine {
    /// G.711 audio: A-law (`true`) or μ-law until the box's audio comes (then in its
    /// law, the one the call agreed on).
    Audio { alaw: bool },
    /// T.38 over UDPTL: paced as a modem would send (`paced`), or as fast as it goes
    /// (a fax server's way; a long fax in seconds).
    T38 { paced: bool },
}

/// What the sending machine saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaxSent {
    /// The engine's T.30 status at the end (0: OK); see SpanDSP's t30_err_e.
    pub status: i32,
    /// Pages the receiver confirmed.
    pub pages: u32,
    /// Whether the engine finished (phase E) rather than being stopped.
    pub finished: bool,
    /// Packets (RTP, or UDPTL datagrams on T.38) that came from the box.
    pub packets_in: u64,
}

/// A fax machine sending one document; see the module's notes.
#[derive(Debug)]
pub struct FaxSender {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<io::Result<FaxSent>>>,
}

/// G.711 A-law (PCMA, payload type 8), else μ-law (PCMU, 0).
fn decode(pt: u8, b: u8) -> i16 {
    if pt == 8 {
        alaw_to_linear(b)
    } else {
        ulaw_to_linear(b)
    }
}

fn set_ident(t30: &T30State<'_>, ident: &str) {
    let Ok(c) = CString::new(ident) else { return };
    // SAFETY: a live engine (borrowed from `fax`); it copies the string before returning.
    unsafe {
        spandsp::spandsp_sys::t30_set_tx_ident(t30.as_ptr(), c.as_ptr());
    }
}

impl FaxSender {
    /// A machine on `bind` (port 0: any) sending `tiff`, calling itself `ident`, on
    /// `line`.
    pub fn start(
        bind: SocketAddr,
        tiff: &Path,
        ident: &str,
        line: FaxLine,
        hang_up_after: Option<u32>,
    ) -> io::Result<FaxSender> {
        let socket = UdpSocket::bind(bind)?;
        socket.set_read_timeout(Some(Duration::from_millis(2)))?;
        let port = socket.local_addr()?.port();
        let file = tiff
            .to_str()
            .ok_or_else(|| io::Error::other("the TIFF path is not UTF-8"))?
            .to_string();
        let ident = ident.to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("fax-sender".into())
            .spawn(move || match line {
                FaxLine::Audio { alaw } => {
                    run(&socket, &file, &ident, alaw, hang_up_after, &stopped)
                }
                FaxLine::T38 { paced } => {
                    run_t38(&socket, &file, &ident, paced, hang_up_after, &stopped)
                }
            })?;
        Ok(FaxSender {
            port,
            stop,
            thread: Some(thread),
        })
    }

    /// Its RTP port (for sipp's SDP).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Waits up to `timeout` for the fax to end (else stops it), and says what happened.
    pub fn wait(mut self, timeout: Duration) -> io::Result<FaxSent> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline && self.thread.as_ref().is_some_and(|t| !t.is_finished()) {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(io::Error::other("the fax sender's thread panicked")),
            None => Err(io::Error::other("the fax sender was already waited for")),
        }
    }
}

impl Drop for FaxSender {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn err(e: spandsp::error::SpanDspError) -> io::Error {
    io::Error::other(e.to_string())
}

/// A calling machine's T.30 settings: the file, error correction, the usual modems.
fn calling(t30: &T30State<'_>, file: &str, ident: &str) -> io::Result<()> {
    t30.set_tx_file(file, -1, -1).map_err(err)?;
    t30.set_ecm_capability(true).map_err(err)?;
    t30.set_supported_modems(T30ModemSupport::V27TER | T30ModemSupport::V29 | T30ModemSupport::V17)
        .map_err(err)?;
    set_ident(t30, ident);
    Ok(())
}

fn run(
    socket: &UdpSocket,
    file: &str,
    ident: &str,
    alaw: bool,
    hang_up_after: Option<u32>,
    stop: &AtomicBool,
) -> io::Result<FaxSent> {
    let fax = FaxState::new(true).map_err(err)?;
    calling(&fax.get_t30_state().map_err(err)?, file, ident)?;
    fax.set_transmit_on_idle(true);
    // Until the box's audio says which law the call agreed on (its answer's), `alaw`.
    let mut pt: u8 = if alaw { 8 } else { 0 };
    let (mut seq, mut ts, ssrc) = (1u16, 160u32, 0x0fa7_0001u32);
    let mut remote: Option<SocketAddr> = None;
    let mut packets_in = 0u64;
    let mut buf = [0u8; 2048];
    let mut out = [0i16; 160];
    let mut next = Instant::now();
    let mut silent = false;
    let stats = |fax: &FaxState| fax.get_t30_state().map(|t| t.get_transfer_statistics());
    let limit = Instant::now() + Duration::from_secs(3600);
    loop {
        if stop.load(Ordering::Relaxed) || Instant::now() > limit {
            break;
        }
        // Everything that came in, into the engine.
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let Some(packet) = buf.get(..n) else { continue };
            if n < 12 || packet[0] >> 6 != 2 {
                continue;
            }
            let kind = packet[1] & 0x7f;
            if kind != 0 && kind != 8 {
                continue; // telephone-event, comfort noise
            }
            remote.get_or_insert(from);
            pt = kind;
            packets_in += 1;
            if !silent {
                let mut samples: Vec<i16> = packet[12..].iter().map(|&b| decode(kind, b)).collect();
                fax.rx(&mut samples);
            }
        }
        if Instant::now() < next {
            continue;
        }
        next += Duration::from_millis(20);
        let finished = fax
            .get_t30_state()
            .map(|t| !t.call_active())
            .unwrap_or(true);
        if finished {
            break;
        }
        if let (Some(n), Ok(s)) = (hang_up_after, stats(&fax))
            && u32::try_from(s.pages_tx).unwrap_or(0) >= n
        {
            silent = true;
        }
        let Some(to) = remote else { continue };
        if silent {
            continue;
        }
        fax.tx(&mut out);
        let mut packet = Vec::with_capacity(172);
        packet.extend_from_slice(&[0x80, pt]);
        packet.extend_from_slice(&seq.to_be_bytes());
        packet.extend_from_slice(&ts.to_be_bytes());
        packet.extend_from_slice(&ssrc.to_be_bytes());
        packet.extend(out.iter().map(|&s| {
            if pt == 8 {
                linear_to_alaw(s)
            } else {
                linear_to_ulaw(s)
            }
        }));
        socket.send_to(&packet, to)?;
        seq = seq.wrapping_add(1);
        ts = ts.wrapping_add(160);
    }
    sent(&fax.get_t30_state().map_err(err)?, packets_in)
}

fn sent(t30: &T30State<'_>, packets_in: u64) -> io::Result<FaxSent> {
    let s = t30.get_transfer_statistics();
    Ok(FaxSent {
        status: s.current_status,
        pages: u32::try_from(s.pages_tx).unwrap_or(0),
        finished: !t30.call_active(),
        packets_in,
    })
}

/// IFP packets the T.38 engine gave to send (with how many times each).
type Outbox = Vec<(Vec<u8>, i32)>;

unsafe extern "C" fn t38_packet(
    _core: *mut spandsp::spandsp_sys::t38_core_state_t,
    user: *mut std::ffi::c_void,
    buf: *const u8,
    len: std::ffi::c_int,
    count: std::ffi::c_int,
) -> std::ffi::c_int {
    let Ok(len) = usize::try_from(len) else {
        return -1;
    };
    if buf.is_null() {
        return -1;
    }
    // SAFETY: `len` bytes at `buf` for this call; `user` is the `Outbox` in `run_t38`,
    // which outlives the engine (dropped first there) and is touched only between calls
    // into the engine.
    let (bytes, outbox) = unsafe {
        (
            std::slice::from_raw_parts(buf, len),
            user.cast::<Outbox>().as_mut(),
        )
    };
    if let Some(o) = outbox {
        o.push((bytes.to_vec(), count.clamp(1, 8)));
    }
    0
}

fn run_t38(
    socket: &UdpSocket,
    file: &str,
    ident: &str,
    paced: bool,
    hang_up_after: Option<u32>,
    stop: &AtomicBool,
) -> io::Result<FaxSent> {
    let outbox: *mut Outbox = Box::into_raw(Box::default());
    // SAFETY: the callback writes only to `outbox`, freed below after the engine is.
    let term = unsafe { T38Terminal::new_raw(true, Some(t38_packet), outbox.cast()) };
    let result = term.map_err(err).and_then(|term| {
        if !paced {
            term.set_config(spandsp::t38_core::T38TerminalOptions::NO_PACING);
        }
        t38_call(&term, outbox, socket, file, ident, hang_up_after, stop)
    });
    // SAFETY: made by `Box::into_raw` above; the engine that wrote to it is gone.
    drop(unsafe { Box::from_raw(outbox) });
    result
}

fn t38_call(
    term: &T38Terminal,
    outbox: *mut Outbox,
    socket: &UdpSocket,
    file: &str,
    ident: &str,
    hang_up_after: Option<u32>,
    stop: &AtomicBool,
) -> io::Result<FaxSent> {
    calling(&term.get_t30_state().map_err(err)?, file, ident)?;
    let mut remote: Option<SocketAddr> = None;
    let mut received = RedundancyReceiver::new();
    let (mut seq, mut recent) = (0u16, std::collections::VecDeque::<Vec<u8>>::new());
    let mut packets_in = 0u64;
    let mut buf = [0u8; 2048];
    let mut next = Instant::now();
    let mut silent = false;
    let limit = Instant::now() + Duration::from_secs(3600);
    while !stop.load(Ordering::Relaxed) && Instant::now() < limit {
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let Some(d) = buf.get(..n) else { continue };
            // Before the first datagram, RTP from the box (before its switch) is not ours.
            if remote.is_none() && d.first().is_some_and(|b| b >> 6 == 2) {
                continue;
            }
            let Ok(p) = UdptlPacket::decode(d) else {
                continue;
            };
            remote.get_or_insert(from);
            packets_in += 1;
            if silent {
                continue;
            }
            let core = term.get_t38_core_state().map_err(err)?;
            for ifp in received.receive(&p) {
                let _ = core.rx_ifp_packet(&ifp.payload, ifp.sequence);
            }
        }
        if Instant::now() < next {
            continue;
        }
        next += Duration::from_millis(20);
        let t30 = term.get_t30_state().map_err(err)?;
        if !t30.call_active() {
            break;
        }
        if hang_up_after.is_some_and(|n| {
            u32::try_from(t30.get_transfer_statistics().pages_tx).unwrap_or(0) >= n
        }) {
            silent = true;
        }
        drop(t30);
        if remote.is_none() || silent {
            continue;
        }
        term.send_timeout(160);
        // SAFETY: the engine is not running (its callback writes only inside its calls).
        let packets = std::mem::take(unsafe { &mut *outbox });
        for (ifp, count) in packets {
            let copies: Vec<Vec<u8>> = recent.iter().rev().cloned().collect();
            let d = UdptlPacket::with_redundancy(seq, ifp.clone(), copies).encode();
            seq = seq.wrapping_add(1);
            recent.push_back(ifp);
            if recent.len() > 3 {
                recent.pop_front();
            }
            if let Some(to) = remote {
                for _ in 0..count {
                    socket.send_to(&d, to)?;
                }
            }
        }
    }
    sent(&term.get_t30_state().map_err(err)?, packets_in)
}

/// A page anyone could tell from another, 1728 pixels wide (A4 at 204 dpi across) and
/// `rows` high at 196 dpi: a frame, page number `n` as that many thick bars, and blocks
/// in a pattern seeded by `n`.
pub fn fax_test_page(n: u32, rows: u32) -> Bitmap {
    const WIDTH: u32 = 1728;
    let rows = rows.max(400);
    let mut p = Bitmap::white(WIDTH, rows, (204, 196));
    let mut fill = |x0: u32, y0: u32, w: u32, h: u32| {
        for y in y0..y0 + h {
            for x in x0..x0 + w {
                p.set(x, y);
            }
        }
    };
    fill(0, 10, WIDTH, 2);
    fill(0, rows - 12, WIDTH, 2);
    fill(10, 0, 2, rows);
    fill(WIDTH - 12, 0, 2, rows);
    for bar in 0..n.min(38) {
        fill(100 + bar * 40, 60, 20, 100);
    }
    let mut seed = 0x9e37_79b9u32.wrapping_mul(n + 1);
    for by in 0..(rows - 300) / 40 {
        for bx in 0..(WIDTH - 200) / 40 {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            if seed.is_multiple_of(3) {
                fill(100 + bx * 40, 250 + by * 40, 30, 30);
            }
        }
    }
    p
}

/// The pages of a PDF file as poppler's pdftoppm draws them, black and white at `dpi`
/// (an independent reader of both PDF and CCITT Group 4).
pub fn pdf_pages(pdf: &Path, dpi: (u32, u32)) -> io::Result<Vec<Bitmap>> {
    let dir = crate::scratch_dir("pdf-pages")?;
    let out = std::process::Command::new("pdftoppm")
        .args([
            "-mono",
            "-rx",
            &dpi.0.to_string(),
            "-ry",
            &dpi.1.to_string(),
        ])
        .arg(pdf)
        .arg(dir.path().join("page"))
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "pdftoppm {}: {}",
            pdf.display(),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let mut files: Vec<_> = std::fs::read_dir(dir.path())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pbm"))
        .collect();
    files.sort();
    files.iter().map(|f| pbm(&std::fs::read(f)?, dpi)).collect()
}

/// A raw PBM (P4) file as a bitmap.
fn pbm(bytes: &[u8], dpi: (u32, u32)) -> io::Result<Bitmap> {
    let bad = || io::Error::other("not a raw PBM file");
    let mut fields = Vec::new();
    let mut i = 0;
    while fields.len() < 3 {
        match bytes.get(i) {
            None => return Err(bad()),
            Some(b) if b.is_ascii_whitespace() => i += 1,
            Some(b'#') => {
                while bytes.get(i).is_some_and(|b| *b != b'\n') {
                    i += 1;
                }
            }
            Some(_) => {
                let start = i;
                while bytes.get(i).is_some_and(|b| !b.is_ascii_whitespace()) {
                    i += 1;
                }
                fields.push(
                    String::from_utf8_lossy(bytes.get(start..i).unwrap_or_default()).to_string(),
                );
            }
        }
    }
    let (w, h) = match (fields[0].as_str(), fields[1].parse(), fields[2].parse()) {
        ("P4", Ok(w), Ok(h)) => (w, h),
        _ => return Err(bad()),
    };
    let mut p = Bitmap::white(w, h, dpi);
    let data = bytes.get(i + 1..).ok_or_else(bad)?;
    if data.len() < p.bits.len() {
        return Err(bad());
    }
    p.bits = data[..p.bits.len()].to_vec();
    Ok(p)
}

/// The share of `sent`'s pixels that `received` agrees on.
pub fn fax_agreement(sent: &Bitmap, received: &Bitmap) -> f64 {
    let mut same = 0u64;
    for y in 0..sent.rows {
        for x in 0..sent.width {
            same += u64::from(sent.get(x, y) == received.get(x, y));
        }
    }
    same as f64 / (f64::from(sent.width) * f64::from(sent.rows)).max(1.0)
}
