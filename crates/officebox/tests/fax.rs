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
    FaxLine, FaxReceived, FaxReceiver, FaxSender, FaxSent, Officebox, READY_TIMEOUT, TestConfig,
    fax_agreement, fax_test_page, pdf_pages, require_program, scratch_dir, wait_until,
};

mod common;
use common::{Mail, pop3_mail, sipp_call_in};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_officebox"))
}

/// The demo with a fax machine at extension 180 mailing to alice (the TIFF too).
fn config() -> TestConfig {
    TestConfig::demo().free_ports().append(
        "[[phone.fax]]\nname = \"main\"\nextension = \"180\"\nto = \"alice\"\nident = \"+1 555 0199\"\n\
         tiff = true\n",
    )
}

fn start(c: &TestConfig) -> Officebox {
    let ob = Officebox::start(bin(), &c.text()).unwrap();
    ob.peer()
        .wait_for_log("phone: serving", READY_TIMEOUT)
        .unwrap();
    ob
}

/// Three half pages faxed from alice's office line (101) to extension `to` by a machine
/// that falls silent after `hang_up_after` pages, once the box has mailed the call:
/// the box, the pages sent, what the sending machine saw, and the newest mail of
/// `mailbox` (login, password).
fn fax_call(
    to: &str,
    mailbox: (&str, &str),
    hang_up_after: Option<u32>,
) -> (Officebox, Vec<Bitmap>, FaxSent, Mail) {
    require_program("sipp", "sip-tester");
    require_program("pdftoppm", "poppler-utils");
    let c = config();
    let ob = start(&c);
    let dir = scratch_dir("fax-out").unwrap();
    let sent: Vec<Bitmap> = (1..=3).map(|n| fax_test_page(n, 1100)).collect();
    let tiff = dir.path().join("out.tif");
    write_bilevel(&tiff, &sent).unwrap();
    let local = "127.0.0.1:0".parse().unwrap();
    let machine = FaxSender::start(
        local,
        &tiff,
        "+1 555 0100",
        FaxLine::Audio { alaw: false },
        hang_up_after,
    )
    .unwrap();
    let port = machine.port().to_string();
    let sip = format!("127.0.0.1:{}", c.int("phone.sip_port"));
    let extra = ["-key", "fax_port", port.as_str()];
    let sipp = std::process::Command::new("sipp");
    let (ok, errors) = sipp_call_in(sipp, &sip, "uac_fax.xml", "caller.csv", to, &extra, "300s");
    assert!(ok, "the fax call: {errors}\n{}", ob.log());
    let seen = machine.wait(Duration::from_secs(30)).unwrap();
    ob.peer()
        .wait_for_log("phone: fax delivered", Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}\n{}", ob.log()));
    let mail = pop3_mail(c.int("mail.pop3_port"), mailbox.0, mailbox.1);
    let last = mail.into_iter().last().expect("a mail of the fax");
    (ob, sent, seen, last)
}

/// The PDF's pages, as pdftoppm draws them, are `sent` (99% of the pixels at least).
fn assert_pages(pdf: &[u8], sent: &[Bitmap]) {
    let dir = scratch_dir("fax-pdf").unwrap();
    let file = dir.path().join("fax.pdf");
    std::fs::write(&file, pdf).unwrap();
    let shown = pdf_pages(&file, (204, 196)).unwrap();
    assert_eq!(shown.len(), sent.len());
    for (n, (a, b)) in sent.iter().zip(&shown).enumerate() {
        let same = fax_agreement(a, b);
        assert!(
            same >= 0.99,
            "page {}: {same:.4} of the pixels agree",
            n + 1
        );
    }
}

#[test]
fn a_fax_to_the_fax_extension_arrives_in_the_mailbox_as_a_pdf_of_its_pages() {
    let (ob, sent, machine, fax) = fax_call("180", ("alice", "demo-alice"), None);
    assert!(machine.finished && machine.status == 0, "{machine:?}");
    assert_eq!(machine.pages, 3, "{machine:?}");
    let text = fax.text();
    assert_eq!(fax.subject, "Fax from +1 555 0100 (3 pages)", "{text}");
    for needle in [
        "From number:   101",
        "Station id:    +1 555 0100",
        "Pages:         3",
        "T.30 result:   0 (OK)",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
    assert_pages(fax.part("application/pdf").expect("a PDF attached"), &sent);
    // The fax machine asks for the TIFF too: the Group 4 file as it was written.
    let tiff = fax.part("image/tiff").expect("the TIFF attached");
    assert_eq!(officebox_fax::tiff::g4_pages(tiff).unwrap().len(), 3);
    // The fax log says so too.
    let log = ob.cli(bin(), &["fax", "log"]).unwrap();
    assert!(
        log.contains("+1 555 0100 (101) -> 180 (alice): 3 page(s)") && log.contains("T.30 0 OK"),
        "{log}"
    );
    // Nothing of the call is left in the spool: the mail holds the pages.
    let spool = ob.dir().join("demo-data/fax");
    let left = std::fs::read_dir(&spool).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "{}", spool.display());
}

/// The line goes quiet after the first page: the box gives up, and what arrived (the
/// first page, whole) is mailed, marked incomplete, with the T.30 reason.
#[test]
fn a_fax_cut_off_after_its_first_page_delivers_that_page_marked_incomplete() {
    let (_ob, sent, machine, fax) = fax_call("180", ("alice", "demo-alice"), Some(1));
    assert_eq!(machine.pages, 1, "{machine:?}");
    let text = fax.text();
    assert!(
        fax.subject.starts_with("Incomplete fax from +1 555 0100"),
        "{}",
        fax.subject
    );
    assert!(text.contains("INCOMPLETE: 1 whole page"), "{text}");
    let pdf = fax
        .part("application/pdf")
        .expect("the page that came, attached");
    assert_pages(pdf, &sent[..1]);
}

/// A fax machine calls bob, whose voicemail answers (no phone of his is registered): its
/// tone is heard during the greeting, the box answers as a fax machine, and the pages
/// reach bob's mailbox, the same as his voicemail.
#[test]
fn a_fax_machine_calling_a_voicemail_is_answered_as_a_fax() {
    let (ob, sent, machine, fax) = fax_call("102", ("bob", "demo-bob"), None);
    assert!(machine.finished && machine.status == 0, "{machine:?}");
    assert!(
        ob.log().contains("a fax machine called the voicemail"),
        "{}",
        ob.log()
    );
    assert_eq!(
        fax.subject,
        "Fax from +1 555 0100 (3 pages)",
        "{}",
        fax.text()
    );
    assert!(
        fax.text().contains("A fax to 102 (Bob Example)"),
        "{}",
        fax.text()
    );
    assert_pages(fax.part("application/pdf").expect("a PDF attached"), &sent);
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

/// The box is killed (kill -9) while a fax comes in, after its first page: at the next
/// start that page is mailed, marked incomplete, and nothing is left in the spool.
#[test]
fn a_page_that_arrived_before_the_box_was_killed_is_mailed_at_the_next_start() {
    require_program("sipp", "sip-tester");
    require_program("pdftoppm", "poppler-utils");
    let c = config();
    let ob = start(&c);
    let dir = scratch_dir("fax-kill").unwrap();
    let sent: Vec<Bitmap> = (1..=3).map(|n| fax_test_page(n, 1100)).collect();
    let tiff = dir.path().join("out.tif");
    write_bilevel(&tiff, &sent).unwrap();
    let local = "127.0.0.1:0".parse().unwrap();
    let machine = FaxSender::start(
        local,
        &tiff,
        "+1 555 0100",
        FaxLine::Audio { alaw: false },
        None,
    )
    .unwrap();
    let (port, sip_port, sipp_port) = (
        machine.port().to_string(),
        c.int("phone.sip_port"),
        officebox_testkit::free_udp_port().unwrap().to_string(),
    );
    let target = format!("127.0.0.1:{sip_port}");
    let sipp = common::sipp_peer(
        "fax-caller",
        &[
            "-sf",
            "uac_fax.xml",
            "-inf",
            "caller.csv",
            "-key",
            "domain",
            "office.test",
            "-key",
            "callee",
            "180",
            "-key",
            "fax_port",
            &port,
            "-auth_uri",
            "office.test",
            "-i",
            "127.0.0.1",
            "-p",
            &sipp_port,
            "-m",
            "1",
            "-nostdin",
            "-recv_timeout",
            "300s",
            &target,
        ],
    );
    ob.peer()
        .wait_for_log("fax: a page arrived", Duration::from_secs(90))
        .unwrap_or_else(|e| panic!("{e}\n{}", ob.log()));
    let state = ob.kill9().unwrap();
    drop(sipp);
    drop(machine);
    let ob = Officebox::start_in(bin(), &c.text(), state).unwrap();
    ob.peer()
        .wait_for_log("fax: an interrupted fax delivered", READY_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", ob.log()));
    ob.peer()
        .wait_for_log("phone: serving", READY_TIMEOUT)
        .unwrap();
    let mail = pop3_mail(c.int("mail.pop3_port"), "alice", "demo-alice");
    let fax = mail.last().expect("alice has the page");
    assert!(
        fax.subject.starts_with("Incomplete fax from 101"),
        "{}",
        fax.subject
    );
    assert!(
        fax.text().contains("the box stopped during the call"),
        "{}",
        fax.text()
    );
    let pdf = fax.part("application/pdf").expect("the page, attached");
    assert_pages(pdf, &sent[..1]);
    let spool = ob.dir().join("demo-data/fax");
    let left = std::fs::read_dir(&spool).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "{}", spool.display());
}

/// A fax to the office's fax number (a DID routed to `fax:main`) from a provider on an
/// IP trunk whose faxes go as `t38` says: sipp on 127.0.0.5 plays the provider with
/// `scenario`, testkit's machine on `line` sends two pages. The box, the pages sent, what
/// the machine saw, and alice's newest mail.
fn provider_fax(
    t38: &str,
    scenario: &str,
    line: FaxLine,
    pages: u32,
) -> (Officebox, Vec<Bitmap>, FaxSent, Mail) {
    provider_fax_to("fax:main", config(), t38, scenario, line, pages)
}

/// [`provider_fax`] with the DID leading to `destination`, on the config `c`. A
/// scenario that offers T.38 does so a second after the answer, or `REINVITE_LATE`
/// after it where the destination first has to hear the fax machine's tone.
fn provider_fax_to(
    destination: &str,
    c: TestConfig,
    t38: &str,
    scenario: &str,
    line: FaxLine,
    pages: u32,
) -> (Officebox, Vec<Bitmap>, FaxSent, Mail) {
    const REINVITE_LATE: &str = "8000";
    require_program("sipp", "sip-tester");
    require_program("pdftoppm", "poppler-utils");
    let port = officebox_testkit::free_udp_port().unwrap();
    let c = c.append(&format!(
        "[[phone.trunks]]\nname = \"isp\"\nkind = \"ip\"\nserver = \"127.0.0.5:{port}\"\n\
         addresses = [\"127.0.0.5\"]\nt38 = \"{t38}\"\n\n\
         [[phone.inbound]]\nnumber = \"4930123457\"\ndestination = \"{destination}\"\n"
    ));
    let ob = start(&c);
    let dir = scratch_dir("fax-provider").unwrap();
    let sent: Vec<Bitmap> = (1..=pages).map(|n| fax_test_page(n, 1100)).collect();
    let tiff = dir.path().join("out.tif");
    write_bilevel(&tiff, &sent).unwrap();
    let machine = FaxSender::start(
        "127.0.0.5:0".parse().unwrap(),
        &tiff,
        "+49 30 5551234",
        line,
        None,
    )
    .unwrap();
    let target = format!("127.0.0.1:{}", c.int("phone.sip_port"));
    let out = std::process::Command::new("sipp")
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../voice/tests/sipp"))
        .args(["-sf", scenario, "-key", "did", "4930123457"])
        .args(["-key", "fax_port", &machine.port().to_string()])
        .args(if scenario == "provider_fax_t38.xml" {
            let late = destination.starts_with("voicemail:");
            vec![
                "-set",
                "reinvite_after",
                if late { REINVITE_LATE } else { "1000" },
            ]
        } else {
            vec![]
        })
        .args(["-i", "127.0.0.5", "-p", &port.to_string()])
        .args(["-m", "1", "-nostdin", "-recv_timeout", "300s", "-trace_err"])
        .arg("-error_file")
        .arg(dir.path().join("sipp.err"))
        .arg(&target)
        .output()
        .unwrap();
    let errors = std::fs::read_to_string(dir.path().join("sipp.err")).unwrap_or_default();
    assert!(
        out.status.success(),
        "the provider's call: {errors}\n{}",
        ob.log()
    );
    let seen = machine.wait(Duration::from_secs(30)).unwrap();
    ob.peer()
        .wait_for_log("phone: fax delivered", Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}\n{}", ob.log()));
    let mail = pop3_mail(c.int("mail.pop3_port"), "alice", "demo-alice");
    let last = mail.into_iter().last().expect("a mail of the fax");
    (ob, sent, seen, last)
}

fn assert_delivered(machine: &FaxSent, fax: &Mail, sent: &[Bitmap]) {
    assert!(machine.finished && machine.status == 0, "{machine:?}");
    assert_eq!(machine.pages as usize, sent.len(), "{machine:?}");
    assert_eq!(
        fax.subject,
        format!("Fax from +49 30 5551234 ({} pages)", sent.len()),
        "{}",
        fax.text()
    );
    assert!(
        fax.text().contains("From number:   5551234"),
        "{}",
        fax.text()
    );
    assert_pages(fax.part("application/pdf").expect("a PDF attached"), sent);
}

/// The provider's gateway offers T.38 once the box has answered the DID: the box takes
/// it, the pages come as T.38 packets, and arrive whole.
#[test]
fn a_fax_from_a_provider_that_switches_to_t38_arrives_whole() {
    let (ob, sent, machine, fax) = provider_fax(
        "on",
        "provider_fax_t38.xml",
        FaxLine::T38 { paced: true },
        2,
    );
    assert!(
        ob.log()
            .contains("the fax goes over to T.38, as the caller asked")
            && ob.log().contains("fax: over to T.38"),
        "{}",
        ob.log()
    );
    assert!(machine.packets_in > 0, "{machine:?}");
    assert_delivered(&machine, &fax, &sent);
}

/// A trunk set to ask for T.38 itself: the box's re-INVITE offers it, the provider takes
/// it, and the fax comes over T.38.
#[test]
fn a_trunk_set_to_offer_t38_asks_for_it_and_the_fax_comes_over_it() {
    let (ob, sent, machine, fax) = provider_fax(
        "offered",
        "provider_fax_asked.xml",
        FaxLine::T38 { paced: true },
        2,
    );
    assert!(
        ob.log().contains("phone: asking the caller for T.38")
            && ob.log().contains("phone: the fax goes over to T.38"),
        "{}",
        ob.log()
    );
    assert_delivered(&machine, &fax, &sent);
}

/// A trunk that keeps faxes on audio refuses the gateway's T.38 offer (488); the fax goes
/// on over G.711 and arrives whole.
#[test]
fn a_trunk_with_t38_off_refuses_it_and_the_fax_comes_over_audio() {
    // The DID leads to alice's own fax machine (`fax = true`), not to [[phone.fax]].
    let (ob, sent, machine, fax) = provider_fax_to(
        "fax:alice",
        config().set_user("alice", "fax", true),
        "off",
        "provider_fax_t38.xml",
        FaxLine::Audio { alaw: true },
        2,
    );
    assert!(fax.text().contains("A fax to alice"), "{}", fax.text());
    assert!(
        ob.log().contains("T.38 refused; the call stays on audio")
            && !ob.log().contains("fax: over to T.38"),
        "{}",
        ob.log()
    );
    assert_delivered(&machine, &fax, &sent);
}

/// A DID to a user's voicemail on a trunk that keeps faxes on audio: the box hears the
/// fax machine's tone in the greeting and answers as a fax machine; the provider's
/// gateway then offers T.38 and is refused as the trunk says, and the pages come over
/// A-law into her mailbox like her voicemail.
#[test]
fn a_fax_to_a_voicemail_keeps_to_the_trunks_t38_setting() {
    let (ob, sent, machine, fax) = provider_fax_to(
        "voicemail:alice",
        config(),
        "off",
        "provider_fax_t38.xml",
        FaxLine::Audio { alaw: true },
        2,
    );
    assert!(
        ob.log().contains("a fax machine called the voicemail")
            && ob.log().contains("T.38 refused; the call stays on audio")
            && !ob.log().contains("fax: over to T.38"),
        "{}",
        ob.log()
    );
    assert_delivered(&machine, &fax, &sent);
}

/// A fax machine calling the auto attendant (a DID leads there) is known by its tone
/// during the greeting and sent to the office's fax machine; the pages come over audio
/// (the trunk keeps faxes on it: the provider's T.38 offer is refused) into alice's
/// mailbox.
#[test]
fn a_fax_machine_calling_the_attendant_is_sent_to_the_fax_machine() {
    require_program("espeak-ng", "espeak-ng");
    let c = config().append(
        "[[phone.attendants]]\nname = \"main\"\n\
         greeting = \"Thank you for calling. For sales, press 1.\"\n\
         keys = [\"1=extension:102\"]\ntimeout = \"10s\"\n\
         no_input = \"hangup\"\ninvalid = \"hangup\"\n",
    );
    let (ob, sent, machine, fax) = provider_fax_to(
        "attendant:main",
        c,
        "off",
        "provider_fax_t38.xml",
        FaxLine::Audio { alaw: true },
        2,
    );
    assert!(
        ob.log().contains("phone: attendant: a fax machine calls"),
        "{}",
        ob.log()
    );
    assert_delivered(&machine, &fax, &sent);
}

/// Forty pages from a fax server on T.38 (unpaced: as fast as the line takes them): every
/// page arrives whole, in order, in one PDF.
#[test]
fn forty_pages_over_t38_arrive_whole_in_one_pdf() {
    let (_ob, sent, machine, fax) = provider_fax(
        "on",
        "provider_fax_t38.xml",
        FaxLine::T38 { paced: false },
        40,
    );
    assert_delivered(&machine, &fax, &sent);
}

/// What a fax mailed to the box came to: the box, the pages in the document, what the
/// receiving machine saw and the pages it wrote, and alice's newest mail (the report).
struct Mailed {
    ob: Officebox,
    sent: Vec<Bitmap>,
    seen: FaxReceived,
    received: std::path::PathBuf,
    report: Mail,
    _dir: tempfile::TempDir,
}

/// What alice attaches: a PDF of the pages, or a fax program's TIFF of them (sent as it
/// came).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Document {
    Pdf,
    Tiff,
}

/// Alice mails `document` of `pages` pages to `9 555 0123` at the fax subdomain (from the
/// LAN, her own address as the sender: `auth` logs in on submission instead); the box
/// dials it through the dial plan (route `9.`, the 9 stripped) on an IP trunk whose
/// faxes go as `t38` says, to sipp on 127.0.0.5 playing the provider with `scenario`
/// and testkit's receiving machine on `line`.
fn mailed_fax(
    t38: &str,
    scenario: &str,
    line: FaxLine,
    (document, pages): (Document, u32),
    auth: bool,
    busy_first: bool,
) -> Mailed {
    require_program("sipp", "sip-tester");
    require_program("swaks", "swaks");
    require_program("pdftoppm", "poppler-utils");
    let port = officebox_testkit::free_udp_port().unwrap();
    let c = config().set("phone.fax_retry_after", "2s").append(&format!(
        "[[phone.trunks]]\nname = \"isp\"\nkind = \"ip\"\nserver = \"127.0.0.5:{port}\"\n\
             addresses = [\"127.0.0.5\"]\nt38 = \"{t38}\"\n\n\
             [[phone.routes]]\nname = \"out\"\npattern = \"9.\"\nstrip = 1\ntrunks = [\"isp\"]\n"
    ));
    let ob = start(&c);
    let dir = scratch_dir("fax-mailed").unwrap();
    let sent: Vec<Bitmap> = (1..=pages).map(|n| fax_test_page(n, 1100)).collect();
    let (file, kind) = match document {
        Document::Pdf => {
            let pdf = dir.path().join("offer.pdf");
            std::fs::write(&pdf, officebox_testkit::pdf_of_pages(&sent)).unwrap();
            (pdf, "application/pdf")
        }
        Document::Tiff => {
            let tiff = dir.path().join("offer.tif");
            write_bilevel(&tiff, &sent).unwrap();
            (tiff, "image/tiff")
        }
    };
    let received = dir.path().join("in.tif");
    let machine = FaxReceiver::start(
        "127.0.0.5:0".parse().unwrap(),
        &received,
        "+1 555 0123",
        line,
    )
    .unwrap();
    let (fax_port, sip_port) = (machine.port().to_string(), port.to_string());
    let error_file = dir.path().join("sipp.err");
    let provider = |scenario: &str| {
        common::sipp_peer(
            "provider",
            &[
                "-sf",
                scenario,
                "-key",
                "fax_port",
                &fax_port,
                "-i",
                "127.0.0.5",
                "-p",
                &sip_port,
                "-m",
                "1",
                "-nostdin",
                "-recv_timeout",
                "300s",
                "-trace_err",
                "-error_file",
                error_file.to_str().unwrap(),
            ],
        )
    };
    // Busy first: the provider answers 486 to the first attempt, and takes the next.
    let mut line_now = provider(if busy_first { "uas_busy.xml" } else { scenario });
    let attach = format!("@{}", file.display());
    let mut args = vec![
        "--from",
        "alice@office.test",
        "--to",
        "95550123@fax.office.test",
        "--header",
        "Subject: the offer",
        "--attach-type",
        kind,
        "--attach",
        &attach,
    ];
    let smtp_port = if auth {
        args.extend([
            "--tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            "alice",
            "--auth-password",
            "demo-alice",
        ]);
        c.int("mail.submission_port")
    } else {
        c.int("mail.smtp_port")
    };
    let sent_mail = std::process::Command::new("swaks")
        .args([
            "--server",
            &format!("127.0.0.1:{smtp_port}"),
            "--timeout",
            "30",
        ])
        .args(&args)
        .output()
        .unwrap();
    assert!(
        sent_mail.status.success(),
        "{}{}",
        String::from_utf8_lossy(&sent_mail.stdout),
        String::from_utf8_lossy(&sent_mail.stderr)
    );
    let attempts_over = || ob.log().matches("fax: attempt over").count();
    let ended = |provider: &officebox_testkit::Peer| {
        let mut status = None;
        let ended = wait_until(Duration::from_secs(10), || {
            status = provider.try_wait().unwrap();
            status.is_some()
        });
        let errors = std::fs::read_to_string(&error_file).unwrap_or_default();
        assert!(
            ended && status.is_some_and(|s| s.success()),
            "the provider: {errors}\n{}\n{}",
            provider.log(),
            ob.log()
        );
    };
    if busy_first {
        assert!(
            wait_until(Duration::from_secs(60), || attempts_over() >= 1),
            "{}",
            ob.log()
        );
        ended(&line_now);
        line_now = provider(scenario);
    }
    let attempts = if busy_first { 2 } else { 1 };
    assert!(
        wait_until(Duration::from_secs(240), || attempts_over() >= attempts),
        "{}",
        ob.log()
    );
    ended(&line_now);
    let seen = machine.wait(Duration::from_secs(10)).unwrap();
    let mail = pop3_mail(c.int("mail.pop3_port"), "alice", "demo-alice");
    let report = mail.into_iter().last().expect("the fax's report");
    Mailed {
        ob,
        sent,
        seen,
        received,
        report,
        _dir: dir,
    }
}

/// The far machine took every page, as sent (99% of the pixels at least, drawn back by
/// pdftoppm from its Group 4 file), and the report says so with the first page small.
fn assert_sent(m: &Mailed) {
    assert!(
        m.seen.finished && m.seen.status == 0,
        "{:?}\n{}",
        m.seen,
        m.ob.log()
    );
    assert_eq!(m.seen.pages as usize, m.sent.len(), "{:?}", m.seen);
    let pages = officebox_fax::tiff::read_g4_pages(&m.received).unwrap();
    let pdf = officebox_fax::pdf::from_pages(&pages, "received").unwrap();
    assert_pages(&pdf, &m.sent);
    assert_eq!(
        m.report.subject,
        "Fax to 95550123 sent",
        "{}",
        m.report.text()
    );
    assert!(
        m.report.text().contains(&format!(
            "{} pages, received by \"+1 555 0123\"",
            m.sent.len()
        )),
        "{}",
        m.report.text()
    );
    let png = m.report.part("image/png").expect("the first page, small");
    assert!(png.starts_with(b"\x89PNG"));
}

#[test]
fn a_pdf_mailed_from_the_lan_to_the_fax_subdomain_is_faxed_and_reported() {
    let m = mailed_fax(
        "on",
        "provider_fax_receive.xml",
        FaxLine::Audio { alaw: true },
        (Document::Pdf, 2),
        false,
        false,
    );
    assert_sent(&m);
}

#[test]
fn a_fax_mailed_by_submission_goes_over_t38_when_the_far_end_switches() {
    let m = mailed_fax(
        "on",
        "provider_fax_receive_t38.xml",
        FaxLine::T38 { paced: true },
        (Document::Pdf, 2),
        true,
        false,
    );
    assert_sent(&m);
    m.ob.peer()
        .wait_for_log("fax: over to T.38", Duration::from_secs(1))
        .unwrap_or_else(|e| panic!("{e}\n{}", m.ob.log()));
}

/// What cannot be faxed is reported to the sender at once, and nothing is dialled: a
/// "PDF" that is none, a TIFF cut short, a number no route of the dial plan takes, a
/// mail with no document;
/// and from the LAN only an office user's own address may send.
#[test]
fn a_fax_that_cannot_be_sent_is_reported_at_once_and_nothing_is_dialled() {
    require_program("swaks", "swaks");
    let c = config().append(
        "[[phone.trunks]]\nname = \"isp\"\nkind = \"ip\"\nserver = \"127.0.0.5:9\"\n\
         addresses = [\"127.0.0.5\"]\n\n\
         [[phone.routes]]\nname = \"local\"\npattern = \"9555.\"\nstrip = 1\ntrunks = [\"isp\"]\n",
    );
    let ob = start(&c);
    let dir = scratch_dir("fax-refused").unwrap();
    let fake = dir.path().join("offer.pdf");
    std::fs::write(&fake, "Dear Bob, the offer is attached.").unwrap();
    let port = c.int("mail.smtp_port");
    let swaks = |from: &str, to: &str, extra: &[&str]| {
        let out = std::process::Command::new("swaks")
            .args(["--server", &format!("127.0.0.1:{port}"), "--timeout", "30"])
            .args(["--from", from, "--to", to])
            .args(extra)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let attach = format!("@{}", fake.display());
    let log = swaks(
        "alice@office.test",
        "95550123@fax.office.test",
        &["--attach-type", "application/pdf", "--attach", &attach],
    );
    assert!(log.contains("250 2.0.0 Ok"), "{log}");
    let log = swaks(
        "alice@office.test",
        "94930123@fax.office.test",
        &["--body", "Hello"],
    );
    assert!(log.contains("250 2.0.0 Ok"), "{log}");
    let log = swaks(
        "alice@office.test",
        "95550123@fax.office.test",
        &["--body", " "],
    );
    assert!(log.contains("250 2.0.0 Ok"), "{log}");
    // A fax program's TIFF whose second page was cut short in transit: SpanDSP reads
    // it through at end of DATA, not first on the line.
    let cut = dir.path().join("scan.tif");
    let pages: Vec<Bitmap> = (1..=2).map(|n| fax_test_page(n, 1100)).collect();
    write_bilevel(&cut, &pages).unwrap();
    let bytes = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() - 1000]).unwrap();
    let log = swaks(
        "alice@office.test",
        "95550123@fax.office.test",
        &[
            "--attach-type",
            "image/tiff",
            "--attach",
            &format!("@{}", cut.display()),
        ],
    );
    assert!(log.contains("250 2.0.0 Ok"), "{log}");
    // Someone on the LAN who is no office user, and a name that is no number.
    let log = swaks(
        "visitor@example.org",
        "95550123@fax.office.test",
        &["--body", "Hi"],
    );
    assert!(log.contains("550 5.7.1"), "{log}");
    let log = swaks(
        "alice@office.test",
        "bob@fax.office.test",
        &["--body", "Hi"],
    );
    assert!(log.contains("550 5.1.1"), "{log}");
    let mail = pop3_mail(c.int("mail.pop3_port"), "alice", "demo-alice");
    let reports: Vec<String> = mail
        .iter()
        .filter(|m| m.subject.contains("not sent"))
        .map(|m| format!("{}: {}", m.subject, m.text()))
        .collect();
    assert_eq!(reports.len(), 4, "{reports:#?}");
    // Mails in one second may come in any order.
    for why in [
        "offer.pdf: it is not a PDF file",
        "the TIFF: it is not a TIFF file a fax machine can send (page 2 cannot be read)",
        "no route of the dial plan takes this number",
        "the mail has no document to fax",
    ] {
        assert!(
            reports.iter().any(|r| r.contains(why)),
            "{why}: {reports:#?}"
        );
    }
    assert!(!ob.log().contains("fax: dialling"), "{}", ob.log());
    let db = officebox_store::Db::open(&ob.dir().join("demo-data/state.db")).unwrap();
    assert_eq!(db.due_faxes(i64::MAX).unwrap(), vec![]);
}

/// Busy at the first attempt: the fax is tried again (`phone.fax_retry_after`, 2 s
/// here) and goes through; the report counts both attempts. The document is a fax
/// program's TIFF, sent as it came, its page 1 small in the report like a PDF's.
#[test]
fn a_tiff_faxed_to_a_busy_number_is_tried_again_and_sent() {
    let m = mailed_fax(
        "on",
        "provider_fax_receive.xml",
        FaxLine::Audio { alaw: false },
        (Document::Tiff, 2),
        false,
        true,
    );
    assert_sent(&m);
    assert!(
        m.ob.log().contains("result=the line was busy"),
        "{}",
        m.ob.log()
    );
    assert!(
        m.report.text().contains("Attempts:     2"),
        "{}",
        m.report.text()
    );
}
