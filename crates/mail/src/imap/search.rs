//! SEARCH: which messages of a folder a search key picks.
//!
//! Flags, sizes, dates and UIDs come from the index; header and body keys need the
//! message itself, read and decoded (RFC 2047 words, quoted-printable, base64, charsets)
//! by mail-parser, so a search for "Müller" finds it however the sender encoded it.
//! Text is compared case-insensitively, as a substring (RFC 9051 6.4.4).

use mail_parser::{Address, HeaderValue, Message, MessageParser, PartType};
use officebox_store::ImapMessage;

use super::command::SearchKey;

/// One message as a search sees it.
#[derive(Debug)]
pub struct Candidate<'a> {
    /// Its sequence number, and the folder's message count (what `*` means).
    pub seq: u32,
    pub count: u32,
    /// The folder's highest UID (what `*` means in a UID set).
    pub last_uid: u32,
    pub message: &'a ImapMessage,
    /// Arrived while this session watched.
    pub recent: bool,
}

/// Whether `key` looks inside messages (headers, body, the Date: field).
pub fn needs_content(key: &SearchKey) -> bool {
    match key {
        SearchKey::And(keys) => keys.iter().any(needs_content),
        SearchKey::Or(a, b) => needs_content(a) || needs_content(b),
        SearchKey::Not(k) => needs_content(k),
        SearchKey::Header(..)
        | SearchKey::Body(_)
        | SearchKey::Text(_)
        | SearchKey::SentBefore(_)
        | SearchKey::SentOn(_)
        | SearchKey::SentSince(_) => true,
        _ => false,
    }
}

/// Parses a message for [`matches`].
pub fn parse(raw: &[u8]) -> Option<Message<'_>> {
    MessageParser::default().parse(raw)
}

/// Whether the message matches `key`. `content` is the parsed message when
/// [`needs_content`] said it is needed (without it, content keys do not match).
pub fn matches(key: &SearchKey, c: &Candidate<'_>, content: Option<&Message<'_>>) -> bool {
    let m = c.message;
    let day = m.received.div_euclid(86_400);
    match key {
        SearchKey::All => true,
        SearchKey::And(keys) => keys.iter().all(|k| matches(k, c, content)),
        SearchKey::Or(a, b) => matches(a, c, content) || matches(b, c, content),
        SearchKey::Not(k) => !matches(k, c, content),
        SearchKey::Sequence(set) => set.contains(c.seq, c.count),
        SearchKey::Uid(set) => set.contains(m.uid, c.last_uid),
        SearchKey::Flag(flag, has) => {
            super::flags::shown(&m.flags, &m.keywords, c.recent)
                .iter()
                .any(|f| f.eq_ignore_ascii_case(&flag.0))
                == *has
        }
        SearchKey::New => c.recent && !m.flags.contains('S'),
        SearchKey::Old => !c.recent,
        SearchKey::Recent => c.recent,
        SearchKey::Before(d) => day < *d,
        SearchKey::On(d) => day == *d,
        SearchKey::Since(d) => day >= *d,
        SearchKey::Larger(n) => m.size > *n,
        SearchKey::Smaller(n) => m.size < *n,
        SearchKey::Modseq(n) => m.modseq >= *n,
        SearchKey::SentBefore(d) => sent_day(content).is_some_and(|s| s < *d),
        SearchKey::SentOn(d) => sent_day(content).is_some_and(|s| s == *d),
        SearchKey::SentSince(d) => sent_day(content).is_some_and(|s| s >= *d),
        SearchKey::Header(name, text) => content.is_some_and(|msg| header_has(msg, name, text)),
        SearchKey::Body(text) => content.is_some_and(|msg| body_has(msg, text)),
        SearchKey::Text(text) => content.is_some_and(|msg| {
            body_has(msg, text)
                || msg
                    .root_part()
                    .headers
                    .iter()
                    .any(|h| value_has(msg, h, &needle(text)))
        }),
    }
}

/// The day of the Date: field as written (its own zone, as RFC 9051 says), in days since
/// 1970-01-01.
fn sent_day(content: Option<&Message<'_>>) -> Option<i64> {
    let d = content?.date()?;
    officebox_store::date::parse_day(&format!("{:04}-{:02}-{:02}", d.year, d.month, d.day))
        .map(|secs| secs / 86_400)
}

/// What to look for: the text, lower case (invalid UTF-8 kept as replacement characters,
/// which then match nothing decoded).
fn needle(text: &[u8]) -> String {
    String::from_utf8_lossy(text).to_lowercase()
}

fn contains(haystack: &str, needle: &str) -> bool {
    needle.is_empty() || haystack.to_lowercase().contains(needle)
}

fn header_has(msg: &Message<'_>, name: &str, text: &[u8]) -> bool {
    let wanted = needle(text);
    msg.root_part()
        .headers
        .iter()
        .filter(|h| h.name.as_str().eq_ignore_ascii_case(name))
        .any(|h| value_has(msg, h, &wanted))
}

/// Whether a header field holds `wanted`: in its decoded form (names and addresses,
/// decoded words) or as it was written.
fn value_has(msg: &Message<'_>, h: &mail_parser::Header<'_>, wanted: &str) -> bool {
    if wanted.is_empty() {
        return true;
    }
    let decoded = match &h.value {
        HeaderValue::Text(t) => t.to_string(),
        HeaderValue::TextList(list) => list.join(" "),
        HeaderValue::Address(a) => addresses(a),
        _ => String::new(),
    };
    if contains(&decoded, wanted) {
        return true;
    }
    let raw = msg
        .raw_message()
        .get(h.offset_start as usize..h.offset_end as usize)
        .unwrap_or_default();
    contains(&String::from_utf8_lossy(raw), wanted)
}

fn addresses(a: &Address<'_>) -> String {
    let one = |name: Option<&str>, address: Option<&str>| {
        format!(
            "{} <{}>",
            name.unwrap_or_default(),
            address.unwrap_or_default()
        )
    };
    match a {
        Address::List(list) => list
            .iter()
            .map(|x| one(x.name.as_deref(), x.address.as_deref()))
            .collect::<Vec<_>>()
            .join(", "),
        Address::Group(groups) => groups
            .iter()
            .flat_map(|g| g.addresses.iter())
            .map(|x| one(x.name.as_deref(), x.address.as_deref()))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// Whether a text part of the message (at any depth) holds `text`.
fn body_has(msg: &Message<'_>, text: &[u8]) -> bool {
    let wanted = needle(text);
    msg.parts.iter().any(|part| match &part.body {
        PartType::Text(t) | PartType::Html(t) => contains(t, &wanted),
        PartType::Message(inner) => body_has(inner, text),
        _ => false,
    })
}

/// A set of numbers written compactly (`1:3,7,9:10`), for ESEARCH and COPYUID.
pub fn compact(numbers: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while let Some(&start) = numbers.get(i) {
        let mut end = start;
        while numbers.get(i + 1) == Some(&end.wrapping_add(1)) {
            end += 1;
            i += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::imap::command::{self, Body};

    fn key(text: &str) -> SearchKey {
        match command::parse(format!("a SEARCH {text}\r\n").as_bytes())
            .unwrap()
            .body
        {
            Body::Search { key, .. } => key,
            other => panic!("{other:?}"),
        }
    }

    const MAIL: &[u8] = b"From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <jm@example.com>\r\n\
To: alice@office.example\r\n\
Subject: =?utf-8?b?UXVhcnRhbHN6YWhsZW4=?=\r\n\
Date: Sun, 06 Dec 2026 23:30:00 -0800\r\n\
X-Ticket: 4711\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\
\r\n\
--b\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Die Gr=C3=BC=C3=9Fe aus M=C3=BCnchen\r\n\
--b\r\n\
Content-Type: application/octet-stream\r\n\
\r\n\
secretword\r\n\
--b--\r\n";

    fn hit(text: &str) -> bool {
        let m = ImapMessage {
            uid: 7,
            unique: "1.M1".into(),
            size: MAIL.len() as u64,
            // 2026-12-07 10:00 UTC.
            received: 1_796_637_600,
            flags: "S".into(),
            keywords: vec!["$Work".into()],
            modseq: 12,
        };
        let c = Candidate {
            seq: 3,
            count: 5,
            last_uid: 9,
            message: &m,
            recent: false,
        };
        let k = key(text);
        let parsed = parse(MAIL);
        matches(&k, &c, parsed.as_ref())
    }

    #[test]
    fn keys_match_headers_bodies_dates_and_flags() {
        for yes in [
            "ALL",
            "FROM \"müller\"",
            "FROM \"jm@example\"",
            "SUBJECT quartal",
            "TO alice",
            "HEADER X-Ticket 4711",
            "HEADER X-Ticket \"\"",
            "BODY \"grüße\"",
            "TEXT \"münchen\"",
            "TEXT quartalszahlen",
            "SEEN",
            "KEYWORD $work",
            "UNKEYWORD $Private",
            "UNDELETED",
            "3",
            "2:4",
            "UID 7",
            "UID 5:*",
            "ON 7-Dec-2026",
            "SINCE 1-Dec-2026 BEFORE 8-Dec-2026",
            "SENTON 6-Dec-2026",
            "LARGER 100",
            "MODSEQ 12",
            "OR UNSEEN NOT FLAGGED",
            "OLD",
        ] {
            assert!(hit(yes), "{yes} should match");
        }
        for no in [
            "FROM smith",
            "BODY secretword",
            "HEADER X-Other \"\"",
            "UNSEEN",
            "DELETED",
            "4:*",
            "UID 8:*",
            "BEFORE 7-Dec-2026",
            "SENTSINCE 7-Dec-2026",
            "SMALLER 100",
            "MODSEQ 13",
            "NEW",
            "RECENT",
            "NOT ALL",
        ] {
            assert!(!hit(no), "{no} should not match");
        }
        assert!(needs_content(&key("OR SEEN BODY x")));
        assert!(!needs_content(&key("SEEN UID 1:5 LARGER 3")));
    }

    #[test]
    fn sets_are_written_compactly() {
        assert_eq!(compact(&[]), "");
        assert_eq!(compact(&[4]), "4");
        assert_eq!(compact(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(
            compact(&[u32::MAX - 1, u32::MAX]),
            format!("{}:{}", u32::MAX - 1, u32::MAX)
        );
    }
}
