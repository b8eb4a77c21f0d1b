//! Two of SpanDSP's fax machines on one line, in-process: the sender's audio goes
//! through G.711 A-law (as a call carries it) to the receiver and back, 20 ms at a time,
//! as fast as they can work. The pages that arrive are the pages sent, pixel for pixel
//! where it counts (99% at least, as the issue asks), read from the PDF by poppler's
//! pdftoppm, an independent reader of both CCITT Group 4 and PDF.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use officebox_fax::tiff::{Bitmap, read_g4_pages, write_bilevel};
use officebox_fax::{Outcome, Terminal, pdf, render};
use officebox_testkit::{fax_agreement, fax_test_page as page, pdf_pages};
use spandsp::g711::{alaw_to_linear, linear_to_alaw};

/// Runs a sender and a receiver against each other until both are done (or `limit` of
/// simulated call time passes, or `cut` says to hang up after that many pages).
fn call(dir: &Path, pages: &[Bitmap], cut_after: Option<u32>) -> (Outcome, Outcome) {
    call_through(dir, pages, cut_after, &|_, _| false)
}

/// [`call`] on a line that ruins the 20 ms frame `n` towards the receiver (with noise)
/// when `damage(n, negotiated)` says so.
fn call_through(
    dir: &Path,
    pages: &[Bitmap],
    cut_after: Option<u32>,
    damage: &dyn Fn(u32, bool) -> bool,
) -> (Outcome, Outcome) {
    let sent = dir.join("sent.tif");
    let received = dir.join("received.tif");
    write_bilevel(&sent, pages).unwrap();
    let mut tx = Terminal::sender(&sent, "+1 555 0100").unwrap();
    let mut rx = Terminal::receiver(&received, "officebox").unwrap();
    let (mut a, mut b) = ([0i16; 160], [0i16; 160]);
    let mut noise = 0x1234_5678u32;
    // 20 ms frames: ten minutes of call at most.
    for frame in 0..30_000 {
        tx.tx(&mut a);
        rx.tx(&mut b);
        let through = |s: &mut [i16; 160]| {
            for v in s.iter_mut() {
                *v = alaw_to_linear(linear_to_alaw(*v));
            }
        };
        through(&mut a);
        through(&mut b);
        if damage(frame, rx.negotiated()) {
            // 10 ms of noise: dozens of bits of a page's data at 9600 bit/s and more.
            for v in a.iter_mut().skip(40).take(80) {
                noise ^= noise << 13;
                noise ^= noise >> 17;
                noise ^= noise << 5;
                *v = (noise >> 16) as i16 / 2;
            }
        }
        rx.rx(&a);
        tx.rx(&b);
        if tx.done() && rx.done() {
            break;
        }
        if cut_after.is_some_and(|n| rx.pages() >= n) {
            break;
        }
    }
    (tx.finish(), rx.finish())
}

fn check_pdf(dir: &Path, received: &Path, sent: &[Bitmap]) -> Vec<Bitmap> {
    let pages = read_g4_pages(received).unwrap();
    let bytes = pdf::from_pages(&pages, "Fax from +1 555 0100").unwrap();
    let file = dir.join("fax.pdf");
    std::fs::write(&file, bytes).unwrap();
    let shown = pdf_pages(&file, (204, 196)).unwrap();
    assert_eq!(shown.len(), pages.len());
    for (n, (a, b)) in sent.iter().zip(&shown).enumerate() {
        let same = fax_agreement(a, b);
        assert!(same >= 0.99, "page {}: {:.4} of pixels agree", n + 1, same);
    }
    // The box's own rasteriser (for faxes sent from email) draws the same pages.
    let drawn = render::pdf(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(drawn.len(), pages.len());
    for (n, (a, b)) in sent.iter().zip(&drawn).enumerate() {
        let same = fax_agreement(a, b);
        assert!(
            same >= 0.99,
            "page {} drawn: {:.4} of pixels agree",
            n + 1,
            same
        );
    }
    shown
}

#[test]
fn three_pages_cross_a_g711_line_and_arrive_whole_in_the_pdf() {
    let dir = tempfile::tempdir().unwrap();
    let sent: Vec<Bitmap> = (1..=3).map(|n| page(n, 2200)).collect();
    let (tx, rx) = call(dir.path(), &sent, None);
    assert!(tx.success(), "{tx:?}");
    assert!(rx.success(), "{rx:?}");
    assert_eq!(tx.pages_sent, 3);
    assert_eq!(rx.pages.len(), 3, "{rx:?}");
    assert_eq!(rx.complete_pages(), 3, "{rx:?}");
    assert_eq!(rx.remote_ident, "+1 555 0100");
    assert!(rx.ecm && rx.bit_rate >= 9600, "{rx:?}");
    assert_eq!(rx.pages[0].dpi, (204, 196), "{rx:?}");
    check_pdf(dir.path(), &rx.file, &sent);
}

/// A page's coded data ruined on the line (10 ms of noise over the sender's modem every
/// three seconds once the machines have agreed, each burst destroying a stretch of the
/// T.4 stream): error correction has the damaged frames sent again, and every page
/// arrives whole; nothing panics, and no row is made up.
#[test]
fn a_corrupted_page_stream_is_mended_by_error_correction_and_arrives_whole() {
    let dir = tempfile::tempdir().unwrap();
    let sent: Vec<Bitmap> = (1..=2).map(|n| page(n, 2200)).collect();
    let bursts = std::cell::Cell::new(0u32);
    let (tx, rx) = call_through(dir.path(), &sent, None, &|frame, negotiated| {
        let hit = negotiated && frame % 150 == 0;
        bursts.set(bursts.get() + u32::from(hit));
        hit
    });
    // The two pages took long enough for several bursts to land on them.
    assert!(bursts.get() >= 4, "{} bursts", bursts.get());
    assert!(tx.success(), "{tx:?}");
    assert!(rx.success(), "{rx:?}");
    assert!(rx.ecm, "{rx:?}");
    assert_eq!(rx.complete_pages(), 2, "{rx:?}");
    check_pdf(dir.path(), &dir.path().join("received.tif"), &sent);
}

#[test]
fn a_call_cut_after_the_first_page_keeps_that_page() {
    let dir = tempfile::tempdir().unwrap();
    let sent: Vec<Bitmap> = (1..=3).map(|n| page(n, 2200)).collect();
    let (_, rx) = call(dir.path(), &sent, Some(1));
    assert!(!rx.success(), "{rx:?}");
    assert_eq!(rx.code, None, "{rx:?}");
    assert!(rx.complete_pages() >= 1, "{rx:?}");
    check_pdf(dir.path(), &rx.file, &sent[..1]);
}

#[test]
fn nobody_on_the_line_ends_with_a_reason_and_no_pages() {
    let dir = tempfile::tempdir().unwrap();
    let mut rx = Terminal::receiver(&dir.path().join("r.tif"), "officebox").unwrap();
    let mut out = [0i16; 160];
    // 45 s of silence: T.30's T1 (35 s) gives up.
    for _ in 0..2250 {
        rx.tx(&mut out);
        rx.rx(&[0; 160]);
        if rx.done() {
            break;
        }
    }
    assert!(rx.done());
    let o = rx.finish();
    assert!(!o.success() && o.code.is_some_and(|c| c != 0), "{o:?}");
    assert!(o.pages.is_empty());
    assert!(!o.reason.is_empty(), "{o:?}");
    assert!(pdf::from_pages(&[], "none").is_none());
}

#[test]
fn a_calling_machines_tone_is_heard_and_a_voice_band_tone_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let sent = dir.path().join("sent.tif");
    write_bilevel(&sent, &[page(1, 400)]).unwrap();
    let mut tx = Terminal::sender(&sent, "caller").unwrap();
    let mut cng = officebox_fax::CngDetector::new().unwrap();
    let mut frame = [0i16; 160];
    // The caller's first four seconds, through A-law.
    let heard = (0..200).any(|_| {
        tx.tx(&mut frame);
        let line: Vec<i16> = frame
            .iter()
            .map(|&s| alaw_to_linear(linear_to_alaw(s)))
            .collect();
        cng.heard(&line)
    });
    assert!(heard, "no CNG in the calling machine's first four seconds");
    // A steady 440 Hz tone (a dial tone, a voice) for ten seconds is not a fax.
    let mut quiet = officebox_fax::CngDetector::new().unwrap();
    let tone: Vec<i16> = (0..80_000)
        .map(|i| {
            (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * f64::from(i) / 8000.0).sin()) as i16
        })
        .collect();
    assert!(!tone.chunks(160).any(|c| quiet.heard(c)));
}

#[test]
fn three_pages_cross_t38_with_lost_datagrams_filled_in_from_redundancy() {
    let dir = tempfile::tempdir().unwrap();
    let sent: Vec<Bitmap> = (1..=3).map(|n| page(n, 2200)).collect();
    let file = dir.path().join("sent.tif");
    let received = dir.path().join("received.tif");
    write_bilevel(&file, &sent).unwrap();
    let max = officebox_fax::udptl::MAX_DATAGRAM;
    let mut tx = Terminal::sender_t38(&file, "+1 555 0100", max).unwrap();
    let mut rx = Terminal::receiver_t38(&received, "officebox", max).unwrap();
    assert!(tx.is_t38() && rx.is_t38());
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let mut n = 0u64;
    let mut lost = 0u64;
    for _ in 0..30_000 {
        tx.tick_t38(160, &mut a);
        rx.tick_t38(160, &mut b);
        // Every seventh datagram each way is lost on the network; the next ones carry it.
        for d in a.drain(..) {
            n += 1;
            if n.is_multiple_of(7) {
                lost += 1;
            } else {
                assert!(rx.rx_datagram(&d));
            }
        }
        for d in b.drain(..) {
            n += 1;
            if n.is_multiple_of(7) {
                lost += 1;
            } else {
                assert!(tx.rx_datagram(&d));
            }
        }
        if tx.done() && rx.done() {
            break;
        }
    }
    assert!(lost > 10, "{lost} datagrams lost");
    let (tx, rx) = (tx.finish(), rx.finish());
    assert!(tx.success(), "{tx:?}");
    assert!(rx.success(), "{rx:?}");
    assert_eq!(rx.complete_pages(), 3, "{rx:?}");
    assert_eq!(rx.remote_ident, "+1 555 0100");
    check_pdf(dir.path(), &rx.file, &sent);
}
