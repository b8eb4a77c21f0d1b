//! A fax machine at the far end of a call, for the fax tests: SpanDSP's own T.30 engine
//! and modems (the spandsp crate directly, none of officebox's fax code) sending a TIFF
//! file's pages over RTP as G.711. sipp does the call's SIP; this is its audio.
//!
//! The machine listens on its own UDP port (named in sipp's SDP offer as the media
//! port) and sends to wherever the box's audio comes from (the box sends as soon as it
//! answers), 20 ms a packet, until the fax is over, the test stops it, or it has sent
//! `hang_up_after` pages (then it falls silent, as a machine whose line was cut).
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
use spandsp::t30::T30ModemSupport;

/// What the sending machine saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaxSent {
    /// The engine's T.30 status at the end (0: OK); see SpanDSP's t30_err_e.
    pub status: i32,
    /// Pages the receiver confirmed.
    pub pages: u32,
    /// Whether the engine finished (phase E) rather than being stopped.
    pub finished: bool,
    /// RTP packets that came from the box.
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

fn set_ident(fax: &FaxState, ident: &str) {
    let Ok(t30) = fax.get_t30_state() else { return };
    let Ok(c) = CString::new(ident) else { return };
    // SAFETY: a live engine (borrowed from `fax`); it copies the string before returning.
    unsafe {
        spandsp::spandsp_sys::t30_set_tx_ident(t30.as_ptr(), c.as_ptr());
    }
}

impl FaxSender {
    /// A machine on `bind` (port 0: any) sending `tiff`, calling itself `ident`, in
    /// A-law (`alaw`) or μ-law.
    pub fn start(
        bind: SocketAddr,
        tiff: &Path,
        ident: &str,
        alaw: bool,
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
            .spawn(move || run(&socket, &file, &ident, alaw, hang_up_after, &stopped))?;
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

fn run(
    socket: &UdpSocket,
    file: &str,
    ident: &str,
    alaw: bool,
    hang_up_after: Option<u32>,
    stop: &AtomicBool,
) -> io::Result<FaxSent> {
    let err = |e: spandsp::error::SpanDspError| io::Error::other(e.to_string());
    let fax = FaxState::new(true).map_err(err)?;
    {
        let t30 = fax.get_t30_state().map_err(err)?;
        t30.set_tx_file(file, -1, -1).map_err(err)?;
        t30.set_ecm_capability(true).map_err(err)?;
        t30.set_supported_modems(
            T30ModemSupport::V27TER | T30ModemSupport::V29 | T30ModemSupport::V17,
        )
        .map_err(err)?;
    }
    set_ident(&fax, ident);
    fax.set_transmit_on_idle(true);
    let pt: u8 = if alaw { 8 } else { 0 };
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
            if alaw {
                linear_to_alaw(s)
            } else {
                linear_to_ulaw(s)
            }
        }));
        socket.send_to(&packet, to)?;
        seq = seq.wrapping_add(1);
        ts = ts.wrapping_add(160);
    }
    let s = stats(&fax).map_err(err)?;
    let finished = fax
        .get_t30_state()
        .map(|t| !t.call_active())
        .unwrap_or(false);
    Ok(FaxSent {
        status: s.current_status,
        pages: u32::try_from(s.pages_tx).unwrap_or(0),
        finished,
        packets_in,
    })
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
