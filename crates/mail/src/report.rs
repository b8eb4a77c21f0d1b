//! Delivery status notifications (RFC 3464): the bounce a sender gets when a message
//! cannot be delivered, the notice that it is delayed, and (when asked with NOTIFY=SUCCESS)
//! that it was delivered. A `multipart/report` with a human part, the machine-readable
//! `message/delivery-status` part, and the original's headers (or the whole original when
//! the sender asked with RET=FULL).

use std::time::{SystemTime, UNIX_EPOCH};

use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::MimePart;
use officebox_store::{Job, Ret};

use officebox_store::date::rfc5322_date;

/// Which notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Failed,
    Delayed,
    /// Delivered into a mailbox here.
    Delivered,
    /// Handed to a server that does not speak DSN, which will not report further.
    Relayed,
}

/// What a notice says about one recipient.
#[derive(Debug, Clone)]
pub struct Line<'a> {
    pub job: &'a Job,
    pub kind: Kind,
}

/// The parts a notice is built from.
#[derive(Debug)]
pub struct Report<'a> {
    /// Our host name, e.g. `box.example.com`.
    pub host: &'a str,
    /// The notice is addressed to this (the original sender).
    pub to: &'a str,
    pub lines: &'a [Line<'a>],
    /// The original message (None when its file is gone).
    pub original: Option<&'a [u8]>,
    pub now: SystemTime,
    /// When the queue gives up (for delay notices).
    pub give_up_at: i64,
}

fn unix_time(t: i64) -> SystemTime {
    UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(t).unwrap_or(0))
}

/// The enhanced status code (RFC 3463) in an error text like `4.4.1 ...` or
/// `mx said: 550 5.1.1 ...`, or a default for the kind.
fn status_of(error: Option<&str>, kind: Kind) -> String {
    let found = error.and_then(|e| {
        e.split(|c: char| c.is_ascii_whitespace() || c == ':')
            .find(|w| {
                let number = |p: &str| {
                    !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit())
                };
                let parts: Vec<&str> = w.split('.').collect();
                matches!(parts.as_slice(), [class, subject, detail]
                    if matches!(*class, "2" | "4" | "5") && number(subject) && number(detail))
            })
            .map(str::to_string)
    });
    match (kind, found) {
        (Kind::Delivered | Kind::Relayed, _) => "2.0.0".into(),
        (Kind::Failed, Some(s)) if s.starts_with('5') => s,
        // The class made permanent: 4.4.1 -> 5.4.1.
        (Kind::Failed, Some(s)) => match s.split_once('.') {
            Some((_, rest)) => format!("5.{rest}"),
            None => "5.0.0".into(),
        },
        (Kind::Failed, None) => "5.0.0".into(),
        (Kind::Delayed, Some(s)) if s.starts_with('4') => s,
        (Kind::Delayed, _) => "4.0.0".into(),
    }
}

/// The SMTP reply in an error text (`mx said: 550 ...` -> `550 ...`), for Diagnostic-Code.
fn smtp_reply(error: &str) -> Option<&str> {
    error.split_once(" said: ").map(|(_, r)| r).filter(|r| {
        r.len() > 3
            && r.as_bytes()
                .get(..3)
                .is_some_and(|code| code.iter().all(u8::is_ascii_digit))
    })
}

/// One header-safe line: no CR, LF or other controls, bounded.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(900)
        .collect()
}

/// The original's header block (up to the first empty line).
fn headers_of(message: &[u8]) -> &[u8] {
    let end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(message.len(), |p| p + 2);
    message.get(..end).unwrap_or(message)
}

/// The human part: what happened, in words. The fixed lines stay under 76 characters
/// so that the part goes as plain 7bit text unless an error quoted in it is long.
fn human_text(r: &Report<'_>, kind: Kind) -> String {
    let mut m = format!("This is the mail system at {}.\r\n\r\n", r.host);
    m.push_str(match kind {
        Kind::Failed => {
            "Your message could not be delivered to one or more recipients. It is\r\nattached below. The mail system said:\r\n\r\n"
        }
        Kind::Delayed => {
            "Your message has not been delivered yet to the recipients below. The\r\nmail system keeps trying; you need not send it again. The last error\r\nwas:\r\n\r\n"
        }
        Kind::Delivered => {
            "Your message was delivered to the recipients below, as you asked to be\r\ntold.\r\n\r\n"
        }
        Kind::Relayed => {
            "Your message was handed on to the recipients' mail servers below, as\r\nyou asked to be told. They do not report delivery, so this is the last\r\nnotice you get.\r\n\r\n"
        }
    });
    for line in r.lines {
        let j = line.job;
        match &j.last_error {
            Some(e) if matches!(line.kind, Kind::Failed | Kind::Delayed) => {
                m.push_str(&format!("<{}>: {}\r\n", j.recipient, clean(e)));
            }
            _ => m.push_str(&format!("<{}>\r\n", j.recipient)),
        }
    }
    if kind == Kind::Delayed {
        m.push_str(&format!(
            "\r\nIt will keep trying until {}.\r\n",
            rfc5322_date(unix_time(r.give_up_at))
        ));
    }
    m
}

/// The machine part (RFC 3464 section 2): per-message fields, then a block per
/// recipient.
fn delivery_status(r: &Report<'_>) -> String {
    let mut m = format!("Reporting-MTA: dns; {}\r\n", r.host);
    if let Some(envid) = r.lines.first().and_then(|l| l.job.envid.as_deref()) {
        m.push_str(&format!("Original-Envelope-Id: {}\r\n", clean(envid)));
    }
    if let Some(l) = r.lines.first() {
        m.push_str(&format!(
            "Arrival-Date: {}\r\n",
            rfc5322_date(unix_time(l.job.received_at))
        ));
    }
    for line in r.lines {
        let j = line.job;
        m.push_str("\r\n");
        if let Some(o) = &j.orcpt {
            m.push_str(&format!("Original-Recipient: {}\r\n", clean(o)));
        }
        m.push_str(&format!("Final-Recipient: rfc822; {}\r\n", j.recipient));
        let action = match line.kind {
            Kind::Failed => "failed",
            Kind::Delayed => "delayed",
            Kind::Delivered => "delivered",
            Kind::Relayed => "relayed",
        };
        m.push_str(&format!("Action: {action}\r\n"));
        m.push_str(&format!(
            "Status: {}\r\n",
            status_of(j.last_error.as_deref(), line.kind)
        ));
        let remote = j.remote.as_deref().or_else(|| {
            j.last_error
                .as_deref()
                .and_then(|e| e.split_once(" said: ").map(|(host, _)| host))
        });
        if let Some(remote) = remote {
            let host = remote.split_whitespace().next().unwrap_or(remote);
            m.push_str(&format!("Remote-MTA: dns; {}\r\n", clean(host)));
        }
        if matches!(line.kind, Kind::Failed | Kind::Delayed)
            && let Some(reply) = j.last_error.as_deref().and_then(smtp_reply)
        {
            m.push_str(&format!("Diagnostic-Code: smtp; {}\r\n", clean(reply)));
        }
        if line.kind == Kind::Delayed {
            m.push_str(&format!(
                "Will-Retry-Until: {}\r\n",
                rfc5322_date(unix_time(r.give_up_at))
            ));
        }
    }
    m
}

/// A part whose body goes as it is: its lines are already CRLF-ended and short enough,
/// and a message/* type may not be encoded (RFC 2046 section 5.2.1). The transfer
/// encoding names what the body holds.
fn verbatim<'a>(content_type: &'static str, body: &'a [u8]) -> MimePart<'a> {
    let encoding = if body.is_ascii() { "7bit" } else { "8bit" };
    MimePart::new(content_type, body).transfer_encoding(encoding)
}

/// Builds the notice with mail-builder, CRLF line ends throughout.
pub fn build(r: &Report<'_>) -> Vec<u8> {
    let kind = r.lines.first().map_or(Kind::Failed, |l| l.kind);
    let stamp = r.now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let subject = match kind {
        Kind::Failed => "Undelivered Mail Returned to Sender",
        Kind::Delayed => "Delayed Mail (still being retried)",
        Kind::Delivered | Kind::Relayed => "Successful Mail Delivery Report",
    };
    let status = delivery_status(r);
    let mut parts = vec![
        MimePart::new("text/plain", human_text(r, kind)),
        verbatim("message/delivery-status", status.as_bytes()),
    ];
    let full = r.lines.first().and_then(|l| l.job.ret) == Some(Ret::Full);
    if let Some(original) = r.original {
        parts.push(if full && kind == Kind::Failed {
            verbatim("message/rfc822", original)
        } else {
            verbatim("text/rfc822-headers", headers_of(original))
        });
    }
    // The report type goes as written: mail-builder would quote the parameter, and
    // readers (and our tests) look for `report-type=delivery-status` as RFC 6522 shows it.
    let body = MimePart::raw(parts).header(
        "Content-Type",
        Raw::new("multipart/report; report-type=delivery-status"),
    );
    let mut out = Vec::new();
    MessageBuilder::new()
        // The display name is a plain phrase; mail-builder would quote it.
        .header(
            "From",
            Raw::new(format!(
                "Mail Delivery System <MAILER-DAEMON@{}>",
                clean(r.host)
            )),
        )
        .to(Address::new_address(None::<&str>, clean(r.to)))
        .subject(subject)
        .header("Date", Raw::new(rfc5322_date(r.now)))
        .message_id(format!("{stamp:x}.dsn@{}", clean(r.host)))
        .header("Auto-Submitted", Raw::new("auto-replied"))
        .body(body)
        .serialize(&mut out);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::PathBuf;

    use mail_parser::MimeHeaders as _;
    use officebox_store::RecipientState;

    use super::*;

    fn job(recipient: &str, error: Option<&str>) -> Job {
        Job {
            message_id: 1,
            sender: "alice@office.test".into(),
            path: PathBuf::from("/q/1"),
            size: 10,
            received_at: 1_764_000_000,
            envid: Some("QQ314159".into()),
            ret: None,
            recipient: recipient.into(),
            notify: None,
            orcpt: Some("rfc822;sales@office.test".into()),
            state: RecipientState::Failed,
            attempts: 1,
            last_error: error.map(str::to_string),
            remote: None,
        }
    }

    #[test]
    fn a_bounce_is_a_multipart_report_with_the_original_headers() {
        let j = job(
            "nobody@far.test",
            Some("mx.far.test [127.0.0.2] said: 550 5.1.1 <nobody@far.test>: User unknown"),
        );
        let lines = [Line {
            job: &j,
            kind: Kind::Failed,
        }];
        let original = b"Subject: hello\r\nFrom: alice@office.test\r\n\r\nsecret body\r\n";
        let out = build(&Report {
            host: "box.office.test",
            to: "alice@office.test",
            lines: &lines,
            original: Some(original),
            now: SystemTime::now(),
            give_up_at: 0,
        });
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("Content-Type: multipart/report; report-type=delivery-status"));
        assert!(text.contains("Auto-Submitted: auto-replied"));
        assert!(text.contains("Original-Envelope-Id: QQ314159"));
        assert!(text.contains("Original-Recipient: rfc822;sales@office.test"));
        assert!(text.contains("Final-Recipient: rfc822; nobody@far.test"));
        assert!(text.contains("Action: failed"));
        assert!(text.contains("Status: 5.1.1"));
        assert!(text.contains("Remote-MTA: dns; mx.far.test"));
        assert!(text.contains("Diagnostic-Code: smtp; 550 5.1.1 <nobody@far.test>: User unknown"));
        assert!(text.contains(
            "Content-Type: text/rfc822-headers\r\nContent-Transfer-Encoding: 7bit\r\n\r\nSubject: hello\r\n"
        ));
        assert!(!text.contains("secret body"), "RET=HDRS by default");
        assert!(!text.contains("\n\n") && !text.replace("\r\n", "").contains('\n'));
    }

    #[test]
    fn a_notice_reads_back_as_three_parts_and_keeps_a_full_original() {
        let mut j = job("nobody@far.test", Some("4.4.1 connection refused"));
        j.ret = Some(Ret::Full);
        let lines = [Line {
            job: &j,
            kind: Kind::Failed,
        }];
        let original = "Subject: caf\u{e9}\r\nFrom: alice@office.test\r\n\r\nthe whole body\r\n";
        let out = build(&Report {
            host: "box.office.test",
            to: "alice@office.test",
            lines: &lines,
            original: Some(original.as_bytes()),
            now: SystemTime::now(),
            give_up_at: 0,
        });
        let m = mail_parser::MessageParser::default().parse(&out).unwrap();
        assert_eq!(m.subject(), Some("Undelivered Mail Returned to Sender"));
        assert_eq!(
            m.from().and_then(|a| a.first()).and_then(|a| a.address()),
            Some("MAILER-DAEMON@box.office.test")
        );
        let ct = m.content_type().unwrap();
        assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
        assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.contains("Content-Type: message/delivery-status\r\nContent-Transfer-Encoding: 7bit\r\n\r\nReporting-MTA: dns; box.office.test\r\n"));
        assert!(text.contains("Action: failed\r\nStatus: 5.4.1\r\n"));
        assert!(text.contains("Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 8bit\r\n\r\nSubject: caf\u{e9}\r\n"));
        assert!(
            text.contains("the whole body"),
            "RET=FULL sends the whole original back"
        );
        assert!(!text.replace("\r\n", "").contains('\n'));
    }

    #[test]
    fn status_codes_follow_the_kind() {
        assert_eq!(
            status_of(Some("4.4.1 connection refused"), Kind::Failed),
            "5.4.1"
        );
        assert_eq!(
            status_of(Some("4.4.1 connection refused"), Kind::Delayed),
            "4.4.1"
        );
        assert_eq!(status_of(Some("no code here"), Kind::Delayed), "4.0.0");
        assert_eq!(status_of(None, Kind::Delivered), "2.0.0");
        assert_eq!(
            status_of(Some("x said: 552 5.3.4 too big"), Kind::Failed),
            "5.3.4"
        );
    }
}
