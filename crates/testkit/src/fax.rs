//! A fax machine at the far end of a call, for the fax tests: SpanDSP's own T.30 engine
//! (the spandsp crate directly, none of officebox's fax code) sending a TIFF file's
//! pages ([`FaxSender`], the calling machine) or receiving pages into one
//! ([`FaxReceiver`], the answering machine), over RTP as G.711 with SpanDSP's modems,
//! or over T.38 (its T.38 terminal, the packets framed by the `udptl` crate with copies
//! of the last three). sipp does the call's SIP (and the re-INVITE to T.38); this is its
//! media.
//!
//! The machine listens on its own UDP port (named in sipp's SDP as the media port) and
//! sends to wherever the box's media comes from: on audio, the box's first RTP packet
//! (it sends as soon as the call is answered; the machine answers in its law); on T.38,
//! its first UDPTL datagram (RTP before the switch is not listened to). 20 ms a step,
//! until the fax is over, the test stops it, or (a sender) it has sent `hang_up_after`
//! pages (then it falls silent, as a machine whose line was cut).
//!
//! Also the pages the tests send ([`fax_test_page`]) and what they check a received PDF
//! with: poppler's pdftoppm ([`pdf_pages`]) and [`fax_agreement`].
#![allow(unsafe_code)] // station identities (`set_ident`, `remote_ident`), T.38's callback

use std::ffi::{CStr, CString};
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

/// What the receiving machine saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaxReceived {
    /// The engine's T.30 status at the end (0: OK); see SpanDSP's t30_err_e.
    pub status: i32,
    /// Pages it received (and confirmed), in its TIFF file.
    pub pages: u32,
    /// Whether the engine finished (phase E) rather than being stopped.
    pub finished: bool,
    /// Packets (RTP, or UDPTL datagrams on T.38) that came from the box.
    pub packets_in: u64,
    /// The station identity the sender gave (its TSI), empty if none.
    pub remote_ident: String,
}

/// A fax machine sending one document; see the module's notes.
#[derive(Debug)]
pub struct FaxSender {
    machine: Machine,
}

/// A fax machine answering a call and receiving a document; see the module's notes.
#[derive(Debug)]
pub struct FaxReceiver {
    machine: Machine,
}

/// Which end of the fax a machine is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Calls and sends its file; falls silent once `hang_up_after` pages are sent.
    Send { hang_up_after: Option<u32> },
    /// Answers and receives into its file.
    Receive,
}

impl Role {
    fn calling(self) -> bool {
        matches!(self, Role::Send { .. })
    }

    fn hang_up_after(self) -> Option<u32> {
        match self {
            Role::Send { hang_up_after } => hang_up_after,
            Role::Receive => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Role::Send { .. } => "fax sender",
            Role::Receive => "fax receiver",
        }
    }
}

/// How a machine's fax ended, either end's.
#[derive(Debug)]
struct Ended {
    status: i32,
    /// Pages sent and confirmed, or received.
    pages: u32,
    finished: bool,
    packets_in: u64,
    remote_ident: String,
}

/// Either machine: its socket's port and the thread running its engine.
#[derive(Debug)]
struct Machine {
    role: Role,
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<io::Result<Ended>>>,
}

impl Machine {
    fn start(
        bind: SocketAddr,
        tiff: &Path,
        ident: &str,
        line: FaxLine,
        role: Role,
    ) -> io::Result<Machine> {
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
            .name(role.name().replace(' ', "-"))
            .spawn(move || match line {
                FaxLine::Audio { alaw } => run(&socket, &file, &ident, alaw, role, &stopped),
                FaxLine::T38 { paced } => run_t38(&socket, &file, &ident, paced, role, &stopped),
            })?;
        Ok(Machine {
            role,
            port,
            stop,
            thread: Some(thread),
        })
    }

    fn wait(mut self, timeout: Duration) -> io::Result<Ended> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline && self.thread.as_ref().is_some_and(|t| !t.is_finished()) {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.stop.store(true, Ordering::Relaxed);
        let name = self.role.name();
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(io::Error::other(format!("the {name}'s thread panicked"))),
            None => Err(io::Error::other(format!(
                "the {name} was already waited for"
            ))),
        }
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
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

/// The station identity the far machine gave (its TSI or CSI), empty if none.
fn remote_ident(t30: &T30State<'_>) -> String {
    // SAFETY: a live engine (borrowed); null or its own NUL-terminated buffer, copied
    // here before the engine is called again.
    unsafe {
        let p = spandsp::spandsp_sys::t30_get_rx_ident(t30.as_ptr());
        if p.is_null() {
            return String::new();
        }
        CStr::from_ptr(p).to_string_lossy().trim().to_string()
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
        let role = Role::Send { hang_up_after };
        Ok(FaxSender {
            machine: Machine::start(bind, tiff, ident, line, role)?,
        })
    }

    /// Its RTP port (for sipp's SDP).
    pub fn port(&self) -> u16 {
        self.machine.port
    }

    /// Waits up to `timeout` for the fax to end (else stops it), and says what happened.
    pub fn wait(self, timeout: Duration) -> io::Result<FaxSent> {
        let e = self.machine.wait(timeout)?;
        Ok(FaxSent {
            status: e.status,
            pages: e.pages,
            finished: e.finished,
            packets_in: e.packets_in,
        })
    }
}

impl FaxReceiver {
    /// A machine on `bind` (port 0: any) answering on `line`, writing the pages it
    /// receives into `tiff`, calling itself `ident`.
    pub fn start(
        bind: SocketAddr,
        tiff: &Path,
        ident: &str,
        line: FaxLine,
    ) -> io::Result<FaxReceiver> {
        Ok(FaxReceiver {
            machine: Machine::start(bind, tiff, ident, line, Role::Receive)?,
        })
    }

    /// Its RTP port (for sipp's SDP).
    pub fn port(&self) -> u16 {
        self.machine.port
    }

    /// Waits up to `timeout` for the fax to end (else stops it), and says what happened.
    pub fn wait(self, timeout: Duration) -> io::Result<FaxReceived> {
        let e = self.machine.wait(timeout)?;
        Ok(FaxReceived {
            status: e.status,
            pages: e.pages,
            finished: e.finished,
            packets_in: e.packets_in,
            remote_ident: e.remote_ident,
        })
    }
}

fn err(e: spandsp::error::SpanDspError) -> io::Error {
    io::Error::other(e.to_string())
}

/// A machine's T.30 settings: the file to send or receive into, error correction, the
/// usual modems, its identity.
fn setup(t30: &T30State<'_>, file: &str, ident: &str, role: Role) -> io::Result<()> {
    match role {
        Role::Send { .. } => t30.set_tx_file(file, -1, -1),
        Role::Receive => t30.set_rx_file(file, -1),
    }
    .map_err(err)?;
    t30.set_ecm_capability(true).map_err(err)?;
    t30.set_supported_modems(T30ModemSupport::V27TER | T30ModemSupport::V29 | T30ModemSupport::V17)
        .map_err(err)?;
    if role == Role::Receive {
        // The pages are written as Group 4 (T.6), whatever coding came: the form the
        // tests read back (`officebox_fax::tiff::read_g4_pages`).
        let g4 = spandsp::t4::T4Compression::T6.bits();
        // SAFETY: a live engine (borrowed); the call only sets a field of it.
        unsafe {
            spandsp::spandsp_sys::t30_set_supported_output_compressions(
                t30.as_ptr(),
                std::ffi::c_int::try_from(g4).unwrap_or(0),
            );
        }
    }
    set_ident(t30, ident);
    Ok(())
}

/// Whether a sender has sent the pages it was to hang up after.
fn hung_up(t30: &T30State<'_>, role: Role) -> bool {
    role.hang_up_after()
        .is_some_and(|n| u32::try_from(t30.get_transfer_statistics().pages_tx).unwrap_or(0) >= n)
}

fn run(
    socket: &UdpSocket,
    file: &str,
    ident: &str,
    alaw: bool,
    role: Role,
    stop: &AtomicBool,
) -> io::Result<Ended> {
    let fax = FaxState::new(role.calling()).map_err(err)?;
    setup(&fax.get_t30_state().map_err(err)?, file, ident, role)?;
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
        let Ok(t30) = fax.get_t30_state() else { break };
        if !t30.call_active() {
            break;
        }
        if hung_up(&t30, role) {
            silent = true;
        }
        drop(t30);
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
    Ok(ended(&fax.get_t30_state().map_err(err)?, role, packets_in))
}

fn ended(t30: &T30State<'_>, role: Role, packets_in: u64) -> Ended {
    let s = t30.get_transfer_statistics();
    let pages = match role {
        Role::Send { .. } => s.pages_tx,
        Role::Receive => s.pages_rx,
    };
    Ended {
        status: s.current_status,
        pages: u32::try_from(pages).unwrap_or(0),
        finished: !t30.call_active(),
        packets_in,
        remote_ident: remote_ident(t30),
    }
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
    role: Role,
    stop: &AtomicBool,
) -> io::Result<Ended> {
    let outbox: *mut Outbox = Box::into_raw(Box::default());
    // SAFETY: the callback writes only to `outbox`, freed below after the engine is.
    let term = unsafe { T38Terminal::new_raw(role.calling(), Some(t38_packet), outbox.cast()) };
    let result = term.map_err(err).and_then(|term| {
        if !paced {
            term.set_config(spandsp::t38_core::T38TerminalOptions::NO_PACING);
        }
        t38_call(&term, outbox, socket, file, ident, role, stop)
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
    role: Role,
    stop: &AtomicBool,
) -> io::Result<Ended> {
    setup(&term.get_t30_state().map_err(err)?, file, ident, role)?;
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
        if hung_up(&t30, role) {
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
    Ok(ended(&term.get_t30_state().map_err(err)?, role, packets_in))
}

/// `pages` as a PDF file, each page one black-and-white image at the page's own
/// resolution (so a renderer drawing the page at that resolution gives back the same
/// dots): the document a user mails to be faxed, written here without any of
/// officebox's code.
pub fn pdf_of_pages(pages: &[Bitmap]) -> Vec<u8> {
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets: Vec<usize> = Vec::new();
    let object =
        |out: &mut Vec<u8>, offsets: &mut Vec<usize>, head: String, stream: Option<&[u8]>| {
            offsets.push(out.len());
            out.extend_from_slice(format!("{} 0 obj\n{head}\n", offsets.len()).as_bytes());
            if let Some(data) = stream {
                out.extend_from_slice(b"stream\n");
                out.extend_from_slice(data);
                out.extend_from_slice(b"\nendstream\n");
            }
            out.extend_from_slice(b"endobj\n");
        };
    let kids: Vec<String> = (0..pages.len())
        .map(|i| format!("{} 0 R", 3 + 3 * i))
        .collect();
    object(
        &mut out,
        &mut offsets,
        "<< /Type /Catalog /Pages 2 0 R >>".into(),
        None,
    );
    object(
        &mut out,
        &mut offsets,
        format!(
            "<< /Type /Pages /Kids [{}] /Count {} >>",
            kids.join(" "),
            pages.len()
        ),
        None,
    );
    for (i, page) in pages.iter().enumerate() {
        let (page_id, content_id, image_id) = (3 + 3 * i, 4 + 3 * i, 5 + 3 * i);
        let w = f64::from(page.width) * 72.0 / f64::from(page.dpi.0.max(1));
        let h = f64::from(page.rows) * 72.0 / f64::from(page.dpi.1.max(1));
        object(
            &mut out,
            &mut offsets,
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {w:.3} {h:.3}] \
                 /Resources << /XObject << /Im0 {image_id} 0 R >> >> /Contents {content_id} 0 R >>"
            ),
            None,
        );
        let content = format!("q {w:.3} 0 0 {h:.3} 0 0 cm /Im0 Do Q");
        object(
            &mut out,
            &mut offsets,
            format!("<< /Length {} >>", content.len()),
            Some(content.as_bytes()),
        );
        debug_assert_eq!(offsets.len(), page_id + 1);
        object(
            &mut out,
            &mut offsets,
            format!(
                "<< /Type /XObject /Subtype /Image /Width {} /Height {} /ColorSpace /DeviceGray \
                 /BitsPerComponent 1 /Decode [1 0] /Length {} >>",
                page.width,
                page.rows,
                page.bits.len()
            ),
            Some(&page.bits),
        );
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", offsets.len() + 1).as_bytes(),
    );
    for o in &offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            offsets.len() + 1
        )
        .as_bytes(),
    );
    out
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
