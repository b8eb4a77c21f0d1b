//! Fax into the mailbox (the white paper's unified messaging): the box answers a call to
//! a fax number as a fax machine (crates/fax: SpanDSP's T.30 and modems over the call's
//! G.711 audio, or over T.38 once the call has switched to it), and mails what arrived
//! into the recipient's Maildir, fsynced before the call is released, the pages as one
//! PDF. Every fax call gives a mail, even one that failed before its first page: what
//! happened, in T.30's words.
//!
//! The switch to T.38 is the call's (its re-INVITE, answered or sent by the call task);
//! the call tells the fax machine through a [`FaxLink`], and the machine starts again on
//! T.38 on the same port, as long as no page has come over audio yet.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::MimePart;
use officebox_fax::{Outcome, Terminal};
use officebox_store::FaxEntry;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::media::{Endpoint, FRAME};

/// The longest fax call the box stays on (a 500-page fax at 9600 bit/s is about this).
pub const MAX_CALL: Duration = Duration::from_secs(4 * 3600);

/// Frames (20 ms) without a packet after which the far end counts as quiet.
const QUIET_FRAMES: u32 = 3;

/// Whose fax it is and how the box answers.
#[derive(Debug, Clone)]
pub struct FaxSetup {
    pub data_dir: PathBuf,
    /// The phone service's handle on the state database (the fax log, the queue).
    pub db: std::sync::Arc<std::sync::Mutex<officebox_store::Db>>,
    /// Where the fax goes: like a mail to the user, through their alias.
    pub targets: crate::mailbox::Targets,
    /// The mailbox it is delivered to, and how the mail names the recipient.
    pub login: String,
    pub name: String,
    pub address: String,
    /// The fax number called, and the identity the box's machine sends (CSI).
    pub number: String,
    pub ident: String,
    /// The box's host name (message ids).
    pub host: String,
    /// Whether the call may go over to T.38 (the trunk's setting; a call from inside is
    /// `On`).
    pub t38: officebox_config::model::T38Mode,
    /// Whether the mail carries the TIFF file too (`[[phone.fax]] tiff`).
    pub tiff: bool,
}

/// Where the far end wants T.38 sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct T38Far {
    pub addr: std::net::SocketAddr,
    /// The largest datagram it takes.
    pub max_datagram: usize,
}

/// Between a fax call's task (SIP) and its fax machine (media): the call's switch to
/// T.38, and how far the fax has come.
#[derive(Debug, Default)]
pub struct FaxLink {
    inner: std::sync::Mutex<LinkState>,
}

#[derive(Debug, Default)]
struct LinkState {
    pages: u32,
    on_t38: bool,
    switch: Option<T38Far>,
}

impl FaxLink {
    fn state(&self) -> std::sync::MutexGuard<'_, LinkState> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Asks the machine to go over to T.38 at `far` (or, on T.38 already, to send there
    /// now). `false`: a page has come over audio already, and a machine started again
    /// would lose it; the call stays on audio.
    pub fn switch(&self, far: T38Far) -> bool {
        let mut s = self.state();
        if s.pages > 0 && !s.on_t38 {
            return false;
        }
        s.switch = Some(far);
        true
    }
}

/// Who sent it, as the call said.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub name: String,
    pub number: String,
}

/// Where a call's pages are written while it goes on: its own file under the data
/// directory, named by `token` (made by the box for the call, never taken from the
/// caller, so no caller can name another call's file); removed once the mail holds
/// them.
pub fn spool_path(data_dir: &Path, token: &str) -> PathBuf {
    let safe: String = token
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(64)
        .collect();
    data_dir.join("fax").join(format!("{safe}.tif"))
}

/// The note beside a call's page file, saying whose pages they are: if the box stops
/// during the call (a crash, a kill), [`recover`] mails what arrived at the next start.
fn note_path(tiff: &Path) -> PathBuf {
    tiff.with_extension("for")
}

fn write_note(tiff: &Path, setup: &FaxSetup, caller: &Caller) -> io::Result<()> {
    let one_line = |s: &str| s.replace(['\r', '\n'], " ");
    let text = format!(
        "login={}\nname={}\naddress={}\nnumber={}\nhost={}\ncaller_name={}\ncaller_number={}\n",
        one_line(&setup.login),
        one_line(&setup.name),
        one_line(&setup.address),
        one_line(&setup.number),
        one_line(&setup.host),
        one_line(&caller.name),
        one_line(&caller.number),
    );
    officebox_store::write_atomic(&note_path(tiff), text.as_bytes(), 0o600)
        .map_err(io::Error::other)
}

fn read_note(
    data_dir: &Path,
    db: &std::sync::Arc<std::sync::Mutex<officebox_store::Db>>,
    note: &Path,
) -> Option<(FaxSetup, Caller)> {
    let text = std::fs::read_to_string(note).ok()?;
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix('=')))
            .map(str::to_string)
    };
    let login = get("login")?;
    // Only a plain login names a mailbox (the note is ours, but a file is a file).
    if login.is_empty()
        || !login
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return None;
    }
    Some((
        FaxSetup {
            data_dir: data_dir.to_path_buf(),
            db: std::sync::Arc::clone(db),
            targets: crate::mailbox::Targets::own(),
            login,
            name: get("name").unwrap_or_default(),
            address: get("address").unwrap_or_default(),
            number: get("number").unwrap_or_default(),
            ident: String::new(),
            host: get("host").unwrap_or_default(),
            t38: officebox_config::model::T38Mode::Off,
            tiff: false,
        },
        Caller {
            name: get("caller_name").unwrap_or_default(),
            number: get("caller_number").unwrap_or_default(),
        },
    ))
}

/// Mails the pages of fax calls the box was stopped in the middle of (their page files
/// and notes in `data_dir/fax`), marked incomplete, and removes them. Blocking; run at
/// the phone service's start, before any new call.
pub fn recover(
    data_dir: &Path,
    db: &std::sync::Arc<std::sync::Mutex<officebox_store::Db>>,
) -> Vec<String> {
    let mut delivered = Vec::new();
    let Ok(dir) = std::fs::read_dir(data_dir.join("fax")) else {
        return delivered;
    };
    for entry in dir.flatten() {
        let note = entry.path();
        if note.extension().is_none_or(|e| e != "for") {
            continue;
        }
        let tiff = note.with_extension("tif");
        let Some((setup, caller)) = read_note(data_dir, db, &note) else {
            tracing::warn!(message = "fax: an unreadable note of an interrupted fax is left", path = %note.display());
            continue;
        };
        let pages = officebox_fax::tiff::read_g4_pages(&tiff).unwrap_or_default();
        let outcome = Outcome {
            role: officebox_fax::Role::Receiver,
            code: None,
            reason: "the box stopped during the call".to_string(),
            remote_ident: String::new(),
            pages: pages
                .iter()
                .map(|p| officebox_fax::Page {
                    complete: true,
                    width: p.width,
                    rows: p.rows,
                    // Whole numbers of dots per inch, as they were sent.
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    dpi: (p.dpi.0.round() as u32, p.dpi.1.round() as u32),
                })
                .collect(),
            pages_sent: 0,
            bit_rate: 0,
            ecm: false,
            duration: Duration::ZERO,
            file: tiff.clone(),
        };
        match deliver(&setup, &caller, &outcome) {
            Ok(name) => {
                tracing::info!(message = "fax: an interrupted fax delivered", to = %setup.login, pages = pages.len(), %name);
                delivered.push(name);
            }
            Err(error) => {
                tracing::warn!(message = "fax: an interrupted fax not delivered", to = %setup.login, %error);
            }
        }
    }
    delivered
}

/// Answers as a fax machine on `ep` until the fax is over, `hangup` (the caller's BYE)
/// or [`MAX_CALL`]: on audio, and on T.38 from when `link` says the call switched; the
/// outcome, with the endpoint back (for a last word, none).
pub async fn receive(
    ep: Endpoint,
    setup: &FaxSetup,
    caller: &Caller,
    tiff: &Path,
    hangup: CancellationToken,
    link: &FaxLink,
) -> (Result<Outcome, officebox_fax::FaxError>, Endpoint) {
    if let Some(dir) = tiff.parent()
        && let Err(e) = std::fs::create_dir_all(dir).and_then(|()| write_note(tiff, setup, caller))
    {
        return (
            Err(officebox_fax::FaxError::Io {
                path: dir.to_path_buf(),
                source: e,
            }),
            ep,
        );
    }
    let term = match Terminal::receiver(tiff, &setup.ident) {
        Ok(t) => t,
        Err(e) => return (Err(e), ep),
    };
    let again = |max| Terminal::receiver_t38(tiff, &setup.ident, max);
    run(ep, (term, false), again, hangup, link, &setup.login).await
}

/// Sends `tiff`'s pages as a fax machine on `ep` (a call the box made), calling itself
/// `ident`, until the fax is over, `hangup` or [`MAX_CALL`]; on T.38 from when `link`
/// says the call switched. `who`: whose fax, for the log.
pub async fn send(
    ep: Endpoint,
    tiff: &Path,
    ident: &str,
    hangup: CancellationToken,
    link: &FaxLink,
    who: &str,
) -> (Result<Outcome, officebox_fax::FaxError>, Endpoint) {
    let term = match Terminal::sender(tiff, ident) {
        Ok(t) => t,
        Err(e) => return (Err(e), ep),
    };
    let again = |max| Terminal::sender_t38(tiff, ident, max);
    run(ep, (term, true), again, hangup, link, who).await
}

/// A fax machine (`term`, sending or not) on `ep` until the fax is over, `hangup` or [`MAX_CALL`]: on
/// audio, and from when `link` says the call switched, on T.38 (the machine started
/// again by `again` with the far end's largest datagram).
async fn run(
    mut ep: Endpoint,
    (mut term, sending): (Terminal, bool),
    again: impl Fn(usize) -> Result<Terminal, officebox_fax::FaxError>,
    hangup: CancellationToken,
    link: &FaxLink,
    who: &str,
) -> (Result<Outcome, officebox_fax::FaxError>, Endpoint) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let deadline = tokio::time::Instant::now() + MAX_CALL;
    let (mut heard, mut keys) = (Vec::new(), Vec::new());
    let mut out = [0i16; FRAME];
    let mut quiet = 0u32;
    let mut pages = 0u32;
    // On T.38: where the far end is (latched to where its datagrams come from), and what
    // to send it.
    let mut far: Option<T38Far> = None;
    let mut datagrams: Vec<Vec<u8>> = Vec::new();
    let mut buf = [0u8; 2048];
    loop {
        tokio::select! {
            () = hangup.cancelled() => break,
            () = tokio::time::sleep_until(deadline) => break,
            _ = tick.tick() => {}
        }
        let asked = link.state().switch.take();
        if let Some(to) = asked {
            if !term.is_t38() {
                // Started again on T.38, into the same file: nothing came on audio yet.
                if term.pages() > 0 {
                    tracing::warn!(message = "fax: too late to go over to T.38; a page went already", %who);
                } else {
                    drop(term.finish());
                    term = match again(to.max_datagram) {
                        Ok(t) => t,
                        Err(e) => return (Err(e), ep),
                    };
                    link.state().on_t38 = true;
                    tracing::info!(message = "fax: over to T.38", %who, far = %to.addr);
                }
            }
            far = Some(to);
        }
        if let Some(at) = far.as_mut().filter(|_| term.is_t38()) {
            while let Some((n, from)) = ep.try_recv_datagram(&mut buf) {
                let d = buf.get(..n).unwrap_or_default();
                // From the signalled host only (its port may differ behind NAT).
                let same_host = from.ip() == at.addr.ip()
                    || (from.ip().is_loopback() && at.addr.ip().is_loopback());
                if same_host && term.rx_datagram(d) {
                    at.addr = from;
                }
            }
            term.tick_t38(i32::try_from(FRAME).unwrap_or(160), &mut datagrams);
            for d in datagrams.drain(..) {
                ep.send_datagram(&d, at.addr);
            }
        } else {
            ep.drain(&mut heard, &mut keys);
            keys.clear();
            // The engine's clock is the audio it is given: while the far end sends
            // nothing (gone quiet, or gone), it gets silence, so that T.30's timers run
            // out. A frame merely late (jitter) is not filled in: it comes with the next.
            if heard.is_empty() {
                quiet += 1;
                if quiet >= QUIET_FRAMES {
                    term.rx(&[0; FRAME]);
                }
            } else {
                quiet = 0;
                term.rx(&heard);
                heard.clear();
            }
            term.tx(&mut out);
            ep.send_now(&out);
        }
        if term.pages() > pages {
            pages = term.pages();
            link.state().pages = pages;
            if sending {
                tracing::info!(message = "fax: a page sent", %who, page = pages);
            } else {
                tracing::info!(message = "fax: a page arrived", %who, page = pages);
            }
        }
        if term.done() {
            break;
        }
    }
    (Ok(term.finish()), ep)
}

fn clean(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() && *c != '"' && *c != '<' && *c != '>')
        .take(100)
        .collect()
}

/// `m:ss`.
fn minutes(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}", s / 60, s % 60)
}

/// The mail of a fax call: what arrived (the pages as a PDF, and as the TIFF file when
/// asked for) or what went wrong.
pub fn email(
    setup: &FaxSetup,
    caller: &Caller,
    outcome: &Outcome,
    (pdf, tiff): (Option<&[u8]>, Option<&[u8]>),
    now: SystemTime,
) -> Vec<u8> {
    let stamp = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let date = officebox_store::date::rfc5322_date(now);
    let number = clean(&caller.number);
    let station = clean(&outcome.remote_ident);
    let from = match (station.is_empty(), number.is_empty()) {
        (false, _) => station.clone(),
        (true, false) => number.clone(),
        (true, true) => "an unknown sender".to_string(),
    };
    let pages = outcome.pages.len();
    let complete = outcome.complete_pages();
    let partial = pages - complete;
    let (status, subject) = if outcome.success() {
        (
            format!(
                "{pages} page{} received.",
                if pages == 1 { "" } else { "s" }
            ),
            format!(
                "Fax from {from} ({pages} page{})",
                if pages == 1 { "" } else { "s" }
            ),
        )
    } else if pages > 0 {
        (
            format!(
                "INCOMPLETE: {complete} whole page{} and {partial} cut off arrived before the fax \
                 failed ({}).",
                if complete == 1 { "" } else { "s" },
                clean(&outcome.reason)
            ),
            format!(
                "Incomplete fax from {from} ({pages} page{} arrived)",
                if pages == 1 { "" } else { "s" }
            ),
        )
    } else {
        (
            format!("No page arrived: {}.", clean(&outcome.reason)),
            format!("Failed fax from {from}"),
        )
    };
    let resolution = outcome
        .pages
        .first()
        .map(|p| format!("{} x {} dpi", p.dpi.0, p.dpi.1))
        .unwrap_or_else(|| "-".to_string());
    let mut text = format!(
        "A fax to {} ({}) on {date}.\r\n\r\n{status}\r\n\r\n\
         From number:   {}\r\n\
         Station id:    {}\r\n\
         Pages:         {pages}{}\r\n\
         Resolution:    {resolution}\r\n\
         Speed:         {} bit/s{}\r\n\
         Call time:     {}\r\n\
         T.30 result:   {} ({})\r\n",
        clean(&setup.number),
        clean(&setup.name),
        if number.is_empty() { "-" } else { &number },
        if station.is_empty() { "-" } else { &station },
        if partial > 0 {
            format!(" ({partial} cut off, marked in the PDF's title)")
        } else {
            String::new()
        },
        outcome.bit_rate,
        if outcome.ecm {
            ", error correction on"
        } else {
            ""
        },
        minutes(outcome.duration),
        outcome
            .code
            .map_or_else(|| "none".to_string(), |c| c.to_string()),
        clean(&outcome.reason),
    );
    match (pdf.is_some(), tiff.is_some()) {
        (true, true) => text.push_str(
            "\r\nThe pages are attached as one PDF, and as the TIFF file they came in.\r\n",
        ),
        (true, false) => text.push_str("\r\nThe pages are attached as one PDF.\r\n"),
        _ => {}
    }
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut parts = vec![MimePart::new("text/plain", text)];
    if let Some(pdf) = pdf {
        let file = format!(
            "fax-{secs}-{}.pdf",
            if number.is_empty() {
                "unknown"
            } else {
                &number
            }
        );
        parts.push(
            MimePart::new(
                ContentType::new("application/pdf").attribute("name", file.clone()),
                pdf.to_vec(),
            )
            .attachment(file),
        );
    }
    if let Some(tiff) = tiff {
        let file = format!(
            "fax-{secs}-{}.tif",
            if number.is_empty() {
                "unknown"
            } else {
                &number
            }
        );
        parts.push(
            MimePart::new(
                ContentType::new("image/tiff").attribute("name", file.clone()),
                tiff.to_vec(),
            )
            .attachment(file),
        );
    }
    let mut out = Vec::new();
    MessageBuilder::new()
        .from(Address::new_address(
            Some(format!("Fax {from}")),
            format!("fax@{}", clean(&setup.host)),
        ))
        .to(Address::new_address(
            Some(clean(&setup.name)),
            clean(&setup.address),
        ))
        .subject(subject)
        .header("Date", Raw::new(date))
        .message_id(format!("fax.{stamp:x}@{}", clean(&setup.host)))
        .header(
            "X-Officebox-Fax",
            Raw::new(format!(
                "pages={pages}; complete={complete}; result={}",
                outcome
                    .code
                    .map_or_else(|| "none".to_string(), |c| c.to_string())
            )),
        )
        .body(MimePart::new("multipart/mixed", parts))
        .serialize(&mut out);
    out
}

/// Mails the fax call's outcome (its pages as a PDF) into the recipient's Maildir,
/// fsynced, and removes the page file once the mail holds its pages. Blocking.
pub fn deliver(setup: &FaxSetup, caller: &Caller, outcome: &Outcome) -> io::Result<String> {
    let pages = if outcome.pages.is_empty() {
        Vec::new()
    } else {
        officebox_fax::tiff::read_g4_pages(&outcome.file).unwrap_or_else(|e| {
            tracing::warn!(message = "fax: the received pages cannot be read", error = %e);
            Vec::new()
        })
    };
    let title = format!(
        "Fax from {}{}",
        if outcome.remote_ident.is_empty() {
            &caller.number
        } else {
            &outcome.remote_ident
        },
        if outcome.complete_pages() < outcome.pages.len() {
            " (incomplete)"
        } else {
            ""
        }
    );
    let pdf = officebox_fax::pdf::from_pages(&pages, &title);
    // The file as it came too, when the fax machine's settings ask for it.
    let tiff = (setup.tiff && !pages.is_empty())
        .then(|| std::fs::read(&outcome.file).ok())
        .flatten();
    let message = email(
        setup,
        caller,
        outcome,
        (pdf.as_deref(), tiff.as_deref()),
        SystemTime::now(),
    );
    let name = crate::mailbox::deliver(
        &setup.db,
        &setup.data_dir,
        &setup.login,
        &setup.targets,
        &message,
    )?
    .unwrap_or_else(|| "sent on".to_string());
    // The log is a convenience: the mail is the fax, and a log that cannot be written
    // loses no page.
    let entry = FaxEntry {
        at: officebox_store::unix_now(),
        outgoing: false,
        caller: caller.number.clone(),
        station: outcome.remote_ident.clone(),
        number: setup.number.clone(),
        login: setup.login.clone(),
        pages: u32::try_from(outcome.pages.len()).unwrap_or(u32::MAX),
        complete: u32::try_from(outcome.complete_pages()).unwrap_or(u32::MAX),
        code: outcome.code,
        reason: outcome.reason.clone(),
        seconds: u32::try_from(outcome.duration.as_secs()).unwrap_or(u32::MAX),
    };
    let logged = setup
        .db
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .add_fax(&entry);
    if let Err(error) = logged {
        tracing::warn!(message = "fax: not logged", %error);
    }
    // The mail holds the pages now (or there were none to keep).
    if pdf.is_some() || outcome.pages.is_empty() {
        let _ = std::fs::remove_file(&outcome.file);
        let _ = std::fs::remove_file(note_path(&outcome.file));
    }
    Ok(name)
}
