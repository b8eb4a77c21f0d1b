//! Fax into the mailbox, end to end: a fax machine (testkit's FaxSender: SpanDSP's own
//! T.30 engine and modems, sipp for its SIP) calls the box's fax extension from the
//! office and sends pages over G.711; the box answers as a fax machine and mails the
//! pages to the fax's user as a PDF, which POP3 hands out and poppler's pdftoppm draws
//! back into the pages that were sent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use officebox_fax::tiff::{Bitmap, write_bilevel};
use officebox_testkit::{
    FaxSender, Officebox, READY_TIMEOUT, TestConfig, fax_agreement, fax_test_page, pdf_pages,
    require_program, scratch_dir,
};

mod common;
use common::{pop3_mail, sipp_call_with};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_officebox"))
}

/// The demo with a fax machine at extension 180 mailing to alice.
fn config() -> TestConfig {
    TestConfig::demo().free_ports().append(
        "[[phone.fax]]\nname = \"main\"\nextension = \"180\"\nto = \"alice\"\nident = \"+1 555 0199\"\n",
    )
}

fn start(c: &TestConfig) -> Officebox {
    let ob = Officebox::start(bin(), &c.text()).unwrap();
    ob.peer()
        .wait_for_log("phone: serving", READY_TIMEOUT)
        .unwrap();
    ob
}

/// A fax of `pages` from alice's office line (101) to extension 180 (the machine falls
/// silent after `hang_up_after` pages); what the sending machine saw.
fn send_fax(
    ob: &Officebox,
    c: &TestConfig,
    pages: &[Bitmap],
    dir: &Path,
    hang_up_after: Option<u32>,
) -> officebox_testkit::FaxSent {
    let tiff = dir.join("out.tif");
    write_bilevel(&tiff, pages).unwrap();
    let machine = FaxSender::start(
        "127.0.0.1:0".parse().unwrap(),
        &tiff,
        "+1 555 0100",
        false,
        hang_up_after,
    )
    .unwrap();
    let port = machine.port().to_string();
    let sip = format!("127.0.0.1:{}", c.int("phone.sip_port"));
    let (ok, errors) = sipp_call_with(
        &sip,
        "uac_fax.xml",
        "caller.csv",
        "180",
        &["-key", "fax_port", &port],
        "300s",
    );
    assert!(ok, "the fax call: {errors}\n{}", ob.log());
    machine.wait(Duration::from_secs(30)).unwrap()
}

#[test]
fn a_fax_to_the_fax_extension_arrives_in_the_mailbox_as_a_pdf_of_its_pages() {
    require_program("sipp", "sip-tester");
    require_program("pdftoppm", "poppler-utils");
    let c = config();
    let ob = start(&c);
    let dir = scratch_dir("fax-e2e").unwrap();
    let sent: Vec<Bitmap> = (1..=3).map(|n| fax_test_page(n, 1100)).collect();
    let machine = send_fax(&ob, &c, &sent, dir.path(), None);
    assert!(
        machine.finished && machine.status == 0,
        "{machine:?}\n{}",
        ob.log()
    );
    assert_eq!(machine.pages, 3, "{machine:?}");
    ob.peer()
        .wait_for_log("phone: fax delivered", Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}\n{}", ob.log()));

    let mail = pop3_mail(c.int("mail.pop3_port"), "alice", "demo-alice");
    let fax = mail.last().expect("alice has the fax");
    let (subject, text, pdf) = (&fax.subject, fax.text(), fax.part("application/pdf"));
    assert_eq!(subject, "Fax from +1 555 0100 (3 pages)", "{text}");
    for needle in [
        "From number:   101",
        "Station id:    +1 555 0100",
        "Pages:         3",
        "T.30 result:   0 (OK)",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
    let file = dir.path().join("fax.pdf");
    std::fs::write(&file, pdf.expect("a PDF attached")).unwrap();
    let shown = pdf_pages(&file, (204, 196)).unwrap();
    assert_eq!(shown.len(), 3);
    for (n, (a, b)) in sent.iter().zip(&shown).enumerate() {
        let same = fax_agreement(a, b);
        assert!(
            same >= 0.99,
            "page {}: {same:.4} of the pixels agree",
            n + 1
        );
    }
    // Nothing of the call is left in the spool: the mail holds the pages.
    let spool = ob.dir().join("demo-data/fax");
    let left = std::fs::read_dir(&spool).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "{}", spool.display());
}

/// The line goes quiet after the first page: the box gives up, and what arrived (the
/// first page, whole) is mailed, marked incomplete, with the T.30 reason.
#[test]
fn a_fax_cut_off_after_its_first_page_delivers_that_page_marked_incomplete() {
    require_program("sipp", "sip-tester");
    require_program("pdftoppm", "poppler-utils");
    let c = config();
    let ob = start(&c);
    let dir = scratch_dir("fax-cut").unwrap();
    let sent: Vec<Bitmap> = (1..=3).map(|n| fax_test_page(n, 1100)).collect();
    let machine = send_fax(&ob, &c, &sent, dir.path(), Some(1));
    assert_eq!(machine.pages, 1, "{machine:?}");
    ob.peer()
        .wait_for_log("phone: fax delivered", Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}\n{}", ob.log()));
    let mail = pop3_mail(c.int("mail.pop3_port"), "alice", "demo-alice");
    let fax = mail.last().expect("alice has the fax");
    let (subject, text, pdf) = (&fax.subject, fax.text(), fax.part("application/pdf"));
    assert!(
        subject.starts_with("Incomplete fax from +1 555 0100"),
        "{subject}"
    );
    assert!(text.contains("INCOMPLETE: 1 whole page"), "{text}");
    let file = dir.path().join("fax.pdf");
    std::fs::write(&file, pdf.expect("the page that came, attached")).unwrap();
    let shown = pdf_pages(&file, (204, 196)).unwrap();
    assert!(!shown.is_empty());
    let same = fax_agreement(&sent[0], &shown[0]);
    assert!(same >= 0.99, "page 1: {same:.4} of the pixels agree");
}

/// A person (no fax machine) calls the fax extension and hangs up: the fax's user still
/// gets a mail saying a call came and no page did.
#[test]
fn a_call_without_a_fax_machine_still_mails_what_happened() {
    require_program("sipp", "sip-tester");
    let c = config();
    let ob = start(&c);
    let sip = format!("127.0.0.1:{}", c.int("phone.sip_port"));
    let (ok, errors) = common::sipp_call(&sip, "uac_voicemail_hangup.xml", "caller.csv", "180");
    assert!(ok, "{errors}\n{}", ob.log());
    ob.peer()
        .wait_for_log("phone: fax delivered", Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}\n{}", ob.log()));
    let mail = pop3_mail(c.int("mail.pop3_port"), "alice", "demo-alice");
    let call = mail.last().expect("alice has a mail of the call");
    let (subject, text, pdf) = (&call.subject, call.text(), call.part("application/pdf"));
    assert_eq!(subject, "Failed fax from 101", "{text}");
    assert!(
        text.contains("No page arrived: the call ended before the fax did."),
        "{text}"
    );
    assert!(pdf.is_none());
}
