//! The few SpanDSP calls the `spandsp` crate has no safe form for, each wrapped here with
//! what makes it sound. Nothing else in officebox calls C.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_int, c_void};

use spandsp::spandsp_sys as sys;
use spandsp::t30::T30State;

/// What the T.30 engine reports while a fax goes on (its phase callbacks write here).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Events {
    /// Pages done (phase D: after each page's post-page exchange).
    pub pages: u32,
    /// Phase B (the two machines agreed) was reached.
    pub negotiated: bool,
    /// The completion code, once phase E came (the call's fax part is over).
    pub completion: Option<i32>,
}

/// The place the engine's callbacks write [`Events`] to: allocated once, reached only
/// through its raw pointer (by the callbacks while the engine runs, and by [`Watch::get`]
/// between the engine's calls), freed on drop. Its owner drops the engine first.
#[derive(Debug)]
pub(crate) struct Watch {
    events: std::ptr::NonNull<Events>,
}

// SAFETY: the events are plain data, reached only by the engine's callbacks (inside the
// owner's calls into the engine) and by the owner itself, never from two threads at once.
unsafe impl Send for Watch {}

impl Watch {
    /// Has the engine report into a new place. The caller keeps the `Watch` for as long
    /// as the engine lives (and drops the engine first).
    pub(crate) fn new(t30: &T30State<'_>) -> Watch {
        let events = std::ptr::NonNull::from(Box::leak(Box::<Events>::default()));
        let user = events.as_ptr().cast::<c_void>();
        // SAFETY: the handlers only write through `user`, valid until this `Watch` is
        // dropped, after the engine; they cannot unwind (nothing in them panics).
        unsafe {
            t30.set_phase_b_handler_raw(Some(phase_b), user);
            t30.set_phase_d_handler_raw(Some(phase_d), user);
            t30.set_phase_e_handler_raw(Some(phase_e), user);
        }
        Watch { events }
    }

    /// What has been reported so far.
    pub(crate) fn get(&self) -> Events {
        // SAFETY: valid (see `new`), and not being written: the callbacks run only
        // inside calls into the engine, which the owner is not making now.
        unsafe { *self.events.as_ptr() }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // SAFETY: made by `Box::leak` in `new`, freed once, here; the engine that could
        // write to it is gone (its owner drops it first).
        drop(unsafe { Box::from_raw(self.events.as_ptr()) });
    }
}

unsafe extern "C" fn phase_b(user: *mut c_void, _result: c_int) -> c_int {
    // SAFETY: `user` is a `Watch`'s events, which outlive the engine that calls this;
    // the engine calls back inside its owner's calls, never two at once.
    if let Some(e) = unsafe { user.cast::<Events>().as_mut() } {
        e.negotiated = true;
    }
    0
}

unsafe extern "C" fn phase_d(user: *mut c_void, _result: c_int) -> c_int {
    // SAFETY: as in `phase_b`.
    if let Some(e) = unsafe { user.cast::<Events>().as_mut() } {
        e.pages = e.pages.saturating_add(1);
    }
    0
}

unsafe extern "C" fn phase_e(user: *mut c_void, code: c_int) {
    // SAFETY: as in `phase_b`.
    if let Some(e) = unsafe { user.cast::<Events>().as_mut() } {
        e.completion = Some(code);
    }
}

/// IFP packets the T.38 engine gave to send, each with how many times to send it (its
/// indicators and last packets go more than once).
pub(crate) type Sent = Vec<(Vec<u8>, u8)>;

/// The place a T.38 engine's packet callback writes to: allocated once, reached through
/// its raw pointer (by the callback inside the owner's calls into the engine, and by
/// [`Outbox::take`] between them), freed on drop, after the engine.
#[derive(Debug)]
pub(crate) struct Outbox {
    sent: std::ptr::NonNull<Sent>,
}

// SAFETY: as for `Watch`: plain data, reached from one thread at a time.
unsafe impl Send for Outbox {}

impl Outbox {
    /// The packets given since the last call.
    pub(crate) fn take(&mut self) -> Sent {
        // SAFETY: valid until drop; not being written (the callback runs only inside
        // calls into the engine, and `&mut self` means none is being made).
        std::mem::take(unsafe { &mut *self.sent.as_ptr() })
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        // SAFETY: made by `Box::leak` in `t38_terminal`, freed once, here, after the
        // engine (its owner drops that first).
        drop(unsafe { Box::from_raw(self.sent.as_ptr()) });
    }
}

unsafe extern "C" fn t38_packet(
    _core: *mut sys::t38_core_state_t,
    user: *mut c_void,
    buf: *const u8,
    len: c_int,
    count: c_int,
) -> c_int {
    let Ok(len) = usize::try_from(len) else {
        return -1;
    };
    if buf.is_null() {
        return -1;
    }
    // SAFETY: the engine gives `len` readable bytes at `buf` for this call; `user` is an
    // `Outbox`'s list, alive while the engine is (see `Outbox`).
    let (bytes, sent) = unsafe {
        (
            std::slice::from_raw_parts(buf, len),
            user.cast::<Sent>().as_mut(),
        )
    };
    if let Some(sent) = sent {
        sent.push((bytes.to_vec(), u8::try_from(count.clamp(1, 8)).unwrap_or(1)));
    }
    0
}

/// A T.38 terminal (the calling end, or an answering one keeping what arrived of a page
/// cut off), whose packets go to the `Outbox` returned with it. The caller keeps the
/// `Outbox` for as long as the terminal lives, and drops the terminal first.
pub(crate) fn t38_terminal(
    calling: bool,
) -> Result<(spandsp::t38_terminal::T38Terminal, Outbox), spandsp::error::SpanDspError> {
    let sent = std::ptr::NonNull::from(Box::leak(Box::<Sent>::default()));
    let outbox = Outbox { sent };
    let user = sent.as_ptr().cast::<c_void>();
    // SAFETY: the callback writes only through `user`, which lives until the `Outbox` is
    // dropped, after the terminal; it does not unwind or call back into the terminal.
    let term = unsafe {
        if calling {
            spandsp::t38_terminal::T38Terminal::new_raw(true, Some(t38_packet), user)
        } else {
            spandsp::t38_terminal::T38Terminal::new_receiver_raw(
                spandsp::ReceiveRecovery::PreserveDecodedRows,
                Some(t38_packet),
                user,
            )
        }
    }?;
    Ok((term, outbox))
}

/// Sets the station identity this end sends (TSI/CSI): at most 20 characters of
/// printable ASCII, the rest cut.
pub(crate) fn set_ident(t30: &T30State<'_>, ident: &str) {
    let clean: String = ident
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(20)
        .collect();
    let Ok(c) = CString::new(clean) else { return };
    // SAFETY: the engine copies the string before returning.
    unsafe {
        sys::t30_set_tx_ident(t30.as_ptr(), c.as_ptr());
    }
}

/// The station identity the other end sent, if any.
pub(crate) fn remote_ident(t30: &T30State<'_>) -> String {
    // SAFETY: the engine returns its own buffer (or null), valid while it lives, which
    // it does for this call; it is copied at once.
    let p = unsafe { sys::t30_get_rx_ident(t30.as_ptr()) };
    if p.is_null() {
        return String::new();
    }
    // SAFETY: a NUL-terminated string inside the engine, as above.
    unsafe { CStr::from_ptr(p) }
        .to_string_lossy()
        .trim()
        .to_string()
}

/// Received pages are written to the file as Group 4 (T.6), whatever the line carried.
pub(crate) fn write_group_4(t30: &T30State<'_>) {
    let g4 = spandsp::t4::T4Compression::T6.bits();
    // SAFETY: a plain setting on a live engine.
    unsafe {
        sys::t30_set_supported_output_compressions(t30.as_ptr(), c_int::try_from(g4).unwrap_or(0));
    }
}

/// The T.30 completion code's own words (e.g. "OK", "Disconnected after permission to
/// receive").
pub(crate) fn completion_text(code: i32) -> String {
    // SAFETY: returns a pointer to a static string (a fallback one for unknown codes).
    let p = unsafe { sys::t30_completion_code_to_str(code) };
    if p.is_null() {
        return format!("T.30 code {code}");
    }
    // SAFETY: static and NUL-terminated, as above.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// `MODEM_CONNECT_TONES_FAX_CNG` of SpanDSP's modem_connect_tones.h (an unnamed enum's
/// value, which the bindings leave out).
const FAX_CNG: c_int = 1;

/// SpanDSP's detector of a calling fax machine's tone (CNG: 1100 Hz, half a second on,
/// three off), for calls a person was expected on.
#[derive(Debug)]
pub struct CngDetector {
    state: std::ptr::NonNull<sys::modem_connect_tones_rx_state_t>,
}

// SAFETY: the detector's state is plain memory, used only through `&mut self`.
unsafe impl Send for CngDetector {}

impl CngDetector {
    /// A detector; `None` if SpanDSP could not allocate one.
    pub fn new() -> Option<CngDetector> {
        let tone = FAX_CNG;
        // SAFETY: a null state asks SpanDSP to allocate one; no callback is given (the
        // result is read with `modem_connect_tones_rx_get`).
        let p = unsafe {
            sys::modem_connect_tones_rx_init(std::ptr::null_mut(), tone, None, std::ptr::null_mut())
        };
        std::ptr::NonNull::new(p).map(|state| CngDetector { state })
    }

    /// Takes in received audio; whether the fax tone was heard in it.
    pub fn heard(&mut self, samples: &[i16]) -> bool {
        let Ok(len) = c_int::try_from(samples.len()) else {
            return false;
        };
        // SAFETY: a live state (freed only on drop) and `len` samples readable at `amp`.
        let tone = unsafe {
            sys::modem_connect_tones_rx(self.state.as_ptr(), samples.as_ptr(), len);
            sys::modem_connect_tones_rx_get(self.state.as_ptr())
        };
        tone == FAX_CNG
    }
}

impl Drop for CngDetector {
    fn drop(&mut self) {
        // SAFETY: allocated by `modem_connect_tones_rx_init` in `new`, freed once, here.
        unsafe {
            sys::modem_connect_tones_rx_free(self.state.as_ptr());
        }
    }
}
