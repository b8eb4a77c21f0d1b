//! A message's MIME structure as IMAP shows it: BODYSTRUCTURE, ENVELOPE, and where each
//! numbered part (`BODY[2.1]`, `BODY[2.MIME]`) lies in the bytes on disk.
//!
//! IMAP hands out parts as they were written (still base64 or quoted-printable), so this
//! walks the raw bytes itself and keeps exact ranges: the header and body of every part,
//! multiparts split on their boundaries and `message/rfc822` parts opened as messages.
//! Address lists are read by mail-parser.

use std::ops::Range;

use base64::Engine as _;
use mail_parser::{Address, MessageParser};

use super::command::{Section, SectionText};

/// How deep multiparts and attached messages are followed (the rest is one opaque part).
const MAX_DEPTH: usize = 20;
/// How many parts a message may have before the rest is left unsplit.
const MAX_PARTS: usize = 1000;

/// One part: where its header and body are in the message, and what it is.
#[derive(Debug, Clone)]
pub struct Part {
    pub header: Range<usize>,
    pub body: Range<usize>,
    pub kind: Kind,
    content: Content,
}

#[derive(Debug, Clone)]
pub enum Kind {
    /// A multipart: its parts.
    Multipart(Vec<Part>),
    /// A `message/rfc822` part: the message inside (its header and body ranges are
    /// within this part's body).
    Message(Box<Part>),
    /// Anything else.
    Leaf,
}

/// The fields of a part's header that BODYSTRUCTURE shows.
#[derive(Debug, Clone, Default)]
struct Content {
    /// Type and subtype, lower case.
    kind: (String, String),
    params: Vec<(String, String)>,
    id: Option<String>,
    description: Option<String>,
    encoding: Option<String>,
    disposition: Option<(String, Vec<(String, String)>)>,
    language: Option<String>,
    location: Option<String>,
    md5: Option<String>,
}

/// BINARY met a Content-Transfer-Encoding it cannot undo (or a body that is not what its
/// encoding says).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownEncoding;

/// Reads the structure of a whole message.
pub fn parse(raw: &[u8]) -> Part {
    let mut budget = MAX_PARTS;
    message(raw, 0..raw.len(), ("text", "plain"), 0, &mut budget)
}

/// The part a section path names (`[2, 1]` for `BODY[2.1]`); the message itself for an
/// empty path.
pub fn locate<'a>(top: &'a Part, path: &[u32]) -> Option<&'a Part> {
    let mut cur = top;
    for &n in path {
        cur = child(cur, n)?;
    }
    Some(cur)
}

fn child(p: &Part, n: u32) -> Option<&Part> {
    match &p.kind {
        Kind::Multipart(parts) => parts.get(usize::try_from(n).ok()?.checked_sub(1)?),
        Kind::Message(inner) => child(inner, n),
        Kind::Leaf => (n == 1).then_some(p),
    }
}

/// For a part that is a message (the top, or a `message/rfc822` part): the message's own
/// header and body ranges.
pub fn as_message(p: &Part, top: bool) -> Option<(Range<usize>, Range<usize>)> {
    if top {
        return Some((p.header.clone(), p.body.clone()));
    }
    match &p.kind {
        Kind::Message(inner) => Some((inner.header.clone(), inner.body.clone())),
        _ => None,
    }
}

/// The bytes `section` names (as written, or decoded for BINARY); `Ok(None)` when there
/// is no such part, `Err` when BINARY meets an encoding it does not know.
/// `tree` is the message's structure, read here when first needed (a section of the
/// whole message needs none).
pub fn section(
    raw: &[u8],
    tree: &mut Option<Part>,
    s: &Section,
    binary: bool,
) -> Result<Option<Vec<u8>>, UnknownEncoding> {
    let is_top = s.part.is_empty();
    if is_top {
        let split = header_end(raw);
        let whole = Part {
            header: 0..split,
            body: split..raw.len(),
            kind: Kind::Leaf,
            content: Content::default(),
        };
        return top_or_part(raw, &whole, s, binary, true);
    }
    let top = tree.get_or_insert_with(|| parse(raw));
    let Some(p) = locate(top, &s.part) else {
        return Ok(None);
    };
    top_or_part(raw, p, s, binary, false)
}

fn top_or_part(
    raw: &[u8],
    p: &Part,
    s: &Section,
    binary: bool,
    is_top: bool,
) -> Result<Option<Vec<u8>>, UnknownEncoding> {
    let slice = |r: Range<usize>| raw.get(r).unwrap_or_default().to_vec();
    let as_msg = || as_message(p, is_top);
    Ok(match &s.text {
        SectionText::All if is_top => Some(raw.to_vec()),
        SectionText::All if binary => Some(decode(raw, p)?),
        SectionText::All => Some(slice(p.body.clone())),
        SectionText::Mime => (!is_top).then(|| slice(p.header.clone())),
        SectionText::Header => as_msg().map(|(h, _)| slice(h)),
        SectionText::Text => as_msg().map(|(_, b)| slice(b)),
        SectionText::HeaderFields(names) => {
            as_msg().map(|(h, _)| header_fields(&slice(h), names, true))
        }
        SectionText::HeaderFieldsNot(names) => {
            as_msg().map(|(h, _)| header_fields(&slice(h), names, false))
        }
    })
}

/// A part's body with its Content-Transfer-Encoding undone (RFC 3516 BINARY).
fn decode(raw: &[u8], p: &Part) -> Result<Vec<u8>, UnknownEncoding> {
    let body = raw.get(p.body.clone()).unwrap_or_default();
    let encoding = p.content.encoding.as_deref().unwrap_or("7bit");
    match encoding.to_ascii_lowercase().as_str() {
        "7bit" | "8bit" | "binary" => Ok(body.to_vec()),
        "base64" => {
            let clean: Vec<u8> = body
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            base64::engine::general_purpose::STANDARD
                .decode(&clean)
                .map_err(|_| UnknownEncoding)
        }
        "quoted-printable" => {
            mail_parser::decoders::quoted_printable::quoted_printable_decode(body)
                .ok_or(UnknownEncoding)
        }
        _ => Err(UnknownEncoding),
    }
}

/// The header fields of `header` named (`keep`) or not named in `names` (lower case),
/// with their continuation lines, and the blank line.
pub fn header_fields(header: &[u8], names: &[String], keep: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut take = false;
    for line in header.split_inclusive(|&b| b == b'\n') {
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        if !line.starts_with(b" ") && !line.starts_with(b"\t") {
            let name = line
                .split(|&b| b == b':')
                .next()
                .map(|n| String::from_utf8_lossy(n).trim().to_ascii_lowercase())
                .unwrap_or_default();
            take = names.contains(&name) == keep;
        }
        if take {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Splits `range` of `raw` into header (with its blank line) and body, and reads the
/// part by its Content-Type (`default` when it has none).
fn message(
    raw: &[u8],
    range: Range<usize>,
    default: (&str, &str),
    depth: usize,
    budget: &mut usize,
) -> Part {
    let bytes = raw.get(range.clone()).unwrap_or_default();
    let split = header_end(bytes);
    let header = range.start..range.start + split;
    let body = range.start + split..range.end;
    let content = content(raw.get(header.clone()).unwrap_or_default(), default);
    *budget = budget.saturating_sub(1);
    let kind = if depth >= MAX_DEPTH || *budget == 0 {
        Kind::Leaf
    } else if content.kind.0 == "multipart" {
        match content
            .params
            .iter()
            .find(|(k, _)| k == "boundary")
            .map(|(_, v)| v.clone())
        {
            Some(boundary) if !boundary.is_empty() => {
                let child_default = if content.kind.1 == "digest" {
                    ("message", "rfc822")
                } else {
                    ("text", "plain")
                };
                let parts = split_multipart(raw, body.clone(), boundary.as_bytes())
                    .into_iter()
                    .map(|r| message(raw, r, child_default, depth + 1, budget))
                    .collect();
                Kind::Multipart(parts)
            }
            _ => Kind::Leaf,
        }
    } else if content.kind == ("message".into(), "rfc822".into())
        || content.kind == ("message".into(), "global".into())
    {
        Kind::Message(Box::new(message(
            raw,
            body.clone(),
            ("text", "plain"),
            depth + 1,
            budget,
        )))
    } else {
        Kind::Leaf
    };
    Part {
        header,
        body,
        kind,
        content,
    }
}

/// Where the header ends: after the blank line (or the end, when there is no body).
pub fn header_end(data: &[u8]) -> usize {
    if data.starts_with(b"\r\n") {
        return 2;
    }
    if data.starts_with(b"\n") {
        return 1;
    }
    let crlf = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4);
    let lf = data.windows(2).position(|w| w == b"\n\n").map(|p| p + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b).unwrap_or(data.len()),
    }
}

/// The ranges of a multipart body's parts: between `--boundary` lines, up to
/// `--boundary--`, each without the line break that belongs to the next delimiter.
fn split_multipart(raw: &[u8], body: Range<usize>, boundary: &[u8]) -> Vec<Range<usize>> {
    let mut parts = Vec::new();
    let mut start: Option<usize> = None;
    let mut pos = body.start;
    while pos < body.end {
        let line_end = raw
            .get(pos..body.end)
            .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
            .map_or(body.end, |i| pos + i + 1);
        let line = raw.get(pos..line_end).unwrap_or_default();
        let is_delimiter =
            line.starts_with(b"--") && line.get(2..).is_some_and(|l| l.starts_with(boundary));
        let after = line.get(2 + boundary.len()..).unwrap_or_default();
        let closing = after.starts_with(b"--");
        // Only the boundary (then `--` on the last), and white space: `--b1` is not
        // `--b10`.
        let rest = if closing {
            after.get(2..).unwrap_or_default()
        } else {
            after
        };
        if is_delimiter && rest.iter().all(u8::is_ascii_whitespace) {
            if let Some(s) = start.take() {
                // The CRLF before the delimiter belongs to it.
                let mut end = pos;
                if end > s && raw.get(end - 1) == Some(&b'\n') {
                    end -= 1;
                    if end > s && raw.get(end - 1) == Some(&b'\r') {
                        end -= 1;
                    }
                }
                parts.push(s..end.max(s));
            }
            if closing {
                return parts;
            }
            start = Some(line_end);
        }
        pos = line_end;
    }
    // No closing delimiter: the last part runs to the end.
    if let Some(s) = start {
        parts.push(s..body.end);
    }
    parts
}

/// The header's fields, unfolded: (lower-case name, value).
fn fields(header: &[u8]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in String::from_utf8_lossy(header).split('\n') {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = out.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            out.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    out
}

fn content(header: &[u8], default: (&str, &str)) -> Content {
    let fields = fields(header);
    let get = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let (kind, params) = match get("content-type").and_then(|v| {
        let (value, params) = value_and_params(&v);
        let (t, s) = value.split_once('/')?;
        let (t, s) = (t.trim().to_ascii_lowercase(), s.trim().to_ascii_lowercase());
        (!t.is_empty() && !s.is_empty()).then_some(((t, s), params))
    }) {
        Some(found) => found,
        None => (
            (default.0.to_string(), default.1.to_string()),
            if default == ("text", "plain") {
                vec![("charset".to_string(), "us-ascii".to_string())]
            } else {
                Vec::new()
            },
        ),
    };
    Content {
        kind,
        params,
        id: get("content-id"),
        description: get("content-description"),
        encoding: get("content-transfer-encoding"),
        disposition: get("content-disposition").map(|v| {
            let (value, params) = value_and_params(&v);
            (value.trim().to_ascii_lowercase(), params)
        }),
        language: get("content-language"),
        location: get("content-location"),
        md5: get("content-md5"),
    }
}

/// `text/plain; charset="utf-8"; format=flowed` → the value and its parameters (names
/// lower case, quotes removed).
fn value_and_params(v: &str) -> (String, Vec<(String, String)>) {
    let mut chunks = split_unquoted(v, ';').into_iter();
    let value = chunks.next().unwrap_or_default();
    let params = chunks
        .filter_map(|c| {
            let (k, v) = c.split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|x| x.strip_suffix('"'))
                .map(|x| x.replace("\\\"", "\"").replace("\\\\", "\\"))
                .unwrap_or_else(|| v.to_string());
            Some((k.trim().to_ascii_lowercase(), v))
        })
        .take(50)
        .collect();
    (value, params)
}

/// Splits on `sep` outside double quotes.
fn split_unquoted(s: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let (mut quoted, mut escaped) = (false, false);
    for c in s.chars() {
        if let Some(cur) = out.last_mut() {
            if escaped {
                escaped = false;
                cur.push(c);
                continue;
            }
            match c {
                '\\' if quoted => {
                    escaped = true;
                    cur.push(c);
                }
                '"' => {
                    quoted = !quoted;
                    cur.push(c);
                }
                c if c == sep && !quoted => out.push(String::new()),
                c => cur.push(c),
            }
        }
    }
    out
}

/// An IMAP string: quoted when it can be, else a literal; NIL for nothing.
pub fn nstring(out: &mut Vec<u8>, s: Option<&[u8]>) {
    let Some(s) = s else {
        out.extend_from_slice(b"NIL");
        return;
    };
    if s.len() < 1024 && s.iter().all(|&b| (0x20..0x7f).contains(&b)) {
        out.push(b'"');
        for &b in s {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(format!("{{{}}}\r\n", s.len()).as_bytes());
        out.extend_from_slice(s);
    }
}

fn nstr(out: &mut Vec<u8>, s: Option<&str>) {
    nstring(out, s.map(str::as_bytes));
}

fn params(out: &mut Vec<u8>, params: &[(String, String)]) {
    if params.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, (k, v)) in params.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        nstr(out, Some(k));
        out.push(b' ');
        nstr(out, Some(v));
    }
    out.push(b')');
}

/// BODYSTRUCTURE (`extended`) or BODY of a part, written into `out`.
pub fn body_structure(out: &mut Vec<u8>, raw: &[u8], p: &Part, extended: bool) {
    let c = &p.content;
    out.push(b'(');
    if let Kind::Multipart(parts) = &p.kind {
        for part in parts {
            body_structure(out, raw, part, extended);
        }
        if parts.is_empty() {
            // A multipart must have a part: an empty text one stands in.
            out.extend_from_slice(b"(\"text\" \"plain\" NIL NIL NIL \"7bit\" 0 0)");
        }
        out.push(b' ');
        nstr(out, Some(&c.kind.1));
        if extended {
            out.push(b' ');
            params(out, &c.params);
            extension(out, c);
        }
        out.push(b')');
        return;
    }
    nstr(out, Some(&c.kind.0));
    out.push(b' ');
    nstr(out, Some(&c.kind.1));
    out.push(b' ');
    params(out, &c.params);
    out.push(b' ');
    nstr(out, c.id.as_deref());
    out.push(b' ');
    nstr(out, c.description.as_deref());
    out.push(b' ');
    let encoding = c
        .encoding
        .as_deref()
        .map_or_else(|| "7bit".to_string(), str::to_ascii_lowercase);
    nstr(out, Some(&encoding));
    let body = raw.get(p.body.clone()).unwrap_or_default();
    out.extend_from_slice(format!(" {}", body.len()).as_bytes());
    let lines = body.iter().filter(|&&b| b == b'\n').count();
    if let Kind::Message(inner) = &p.kind {
        out.push(b' ');
        envelope(out, raw.get(inner.header.clone()).unwrap_or_default());
        out.push(b' ');
        body_structure(out, raw, inner, extended);
        out.extend_from_slice(format!(" {lines}").as_bytes());
    } else if c.kind.0 == "text" {
        out.extend_from_slice(format!(" {lines}").as_bytes());
    }
    if extended {
        out.push(b' ');
        nstr(out, c.md5.as_deref());
        extension(out, c);
    }
    out.push(b')');
}

/// Disposition, language and location.
fn extension(out: &mut Vec<u8>, c: &Content) {
    out.push(b' ');
    match &c.disposition {
        Some((value, ps)) => {
            out.push(b'(');
            nstr(out, Some(value));
            out.push(b' ');
            params(out, ps);
            out.push(b')');
        }
        None => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    nstr(out, c.language.as_deref());
    out.push(b' ');
    nstr(out, c.location.as_deref());
}

/// ENVELOPE of a message header: date, subject, from, sender, reply-to, to, cc, bcc,
/// in-reply-to, message-id. Text fields as written; addresses read by mail-parser
/// (sender and reply-to default to from, as RFC 9051 says).
pub fn envelope(out: &mut Vec<u8>, header: &[u8]) {
    let f = fields(header);
    let get = |name: &str| f.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let parsed = MessageParser::default().parse_headers(header);
    let m = parsed.as_ref();
    out.push(b'(');
    nstr(out, get("date"));
    out.push(b' ');
    nstr(out, get("subject"));
    let from = m.and_then(|m| m.from());
    for list in [
        from,
        m.and_then(|m| m.sender()).or(from),
        m.and_then(|m| m.reply_to()).or(from),
        m.and_then(|m| m.to()),
        m.and_then(|m| m.cc()),
        m.and_then(|m| m.bcc()),
    ] {
        out.push(b' ');
        addresses(out, list);
    }
    out.push(b' ');
    nstr(out, get("in-reply-to"));
    out.push(b' ');
    nstr(out, get("message-id"));
    out.push(b')');
}

fn addresses(out: &mut Vec<u8>, list: Option<&Address<'_>>) {
    let addrs: Vec<&mail_parser::Addr<'_>> = match list {
        Some(Address::List(l)) => l.iter().collect(),
        Some(Address::Group(groups)) => groups.iter().flat_map(|g| g.addresses.iter()).collect(),
        None => Vec::new(),
    };
    let addrs: Vec<_> = addrs.into_iter().filter(|a| a.address.is_some()).collect();
    if addrs.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for a in addrs {
        let address = a.address.as_deref().unwrap_or_default();
        let (mailbox, host) = address.rsplit_once('@').unwrap_or((address, ""));
        out.push(b'(');
        nstr(out, a.name.as_deref().filter(|n| !n.is_empty()));
        out.extend_from_slice(b" NIL ");
        nstr(out, Some(mailbox));
        out.push(b' ');
        nstr(out, (!host.is_empty()).then_some(host));
        out.push(b')');
    }
    out.push(b')');
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MAIL: &[u8] = b"From: \"Bob B.\" <bob@office.test>\r\n\
To: alice@office.test, Carol <carol@office.test>\r\n\
Subject: report\r\n\
Message-ID: <1@office.test>\r\n\
Content-Type: multipart/mixed; boundary=\"outer\"\r\n\
\r\n\
preamble\r\n\
--outer\r\n\
Content-Type: multipart/alternative; boundary=inner\r\n\
\r\n\
--inner\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
plain text\r\n\
--inner\r\n\
Content-Type: text/html\r\n\
\r\n\
<p>html</p>\r\n\
--inner--\r\n\
--outer\r\n\
Content-Type: application/pdf; name=r.pdf\r\n\
Content-Disposition: attachment; filename=\"r.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
JVBERi0=\r\n\
--outer\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
Subject: inner\r\n\
From: dave@example.com\r\n\
\r\n\
forwarded body\r\n\
--outer--\r\n\
epilogue\r\n";

    fn text(r: &Range<usize>) -> String {
        String::from_utf8_lossy(&MAIL[r.clone()]).into_owned()
    }

    #[test]
    fn parts_are_found_by_their_numbers() {
        let top = parse(MAIL);
        let at = |path: &[u32]| locate(&top, path).unwrap();
        assert_eq!(text(&at(&[1, 1]).body), "plain text");
        assert_eq!(text(&at(&[1, 2]).body), "<p>html</p>");
        assert_eq!(text(&at(&[2]).body), "JVBERi0=");
        assert!(text(&at(&[2]).header).starts_with("Content-Type: application/pdf"));
        // The attached message: whole, its header and text, and its only part.
        let msg = at(&[3]);
        assert!(text(&msg.body).starts_with("Subject: inner"));
        let (h, b) = as_message(msg, false).unwrap();
        assert_eq!(text(&h), "Subject: inner\r\nFrom: dave@example.com\r\n\r\n");
        assert_eq!(text(&b), "forwarded body");
        assert_eq!(text(&at(&[3, 1]).body), "forwarded body");
        assert!(locate(&top, &[4]).is_none());
        assert!(locate(&top, &[2, 2]).is_none());
        // A single-part message: part 1 is its body.
        let single = parse(b"Subject: x\r\n\r\nhello\r\n");
        assert_eq!(locate(&single, &[1]).unwrap().body, 14..21);
    }

    #[test]
    fn bodystructure_and_envelope_are_written_as_imap_says() {
        let top = parse(MAIL);
        let mut out = Vec::new();
        body_structure(&mut out, MAIL, &top, true);
        let s = String::from_utf8(out).unwrap();
        assert!(
            s.starts_with(
                "(((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 10 0 NIL NIL NIL NIL)\
                 (\"text\" \"html\" NIL NIL NIL \"7bit\" 11 0 NIL NIL NIL NIL) \"alternative\""
            ),
            "{s}"
        );
        assert!(
            s.contains(
                "(\"application\" \"pdf\" (\"name\" \"r.pdf\") NIL NIL \"base64\" 8 NIL \
                 (\"attachment\" (\"filename\" \"r.pdf\")) NIL NIL)"
            ),
            "{s}"
        );
        assert!(s.contains("(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 56 (NIL \"inner\" ((NIL NIL \"dave\" \"example.com\"))"), "{s}");
        assert!(
            s.ends_with(" \"mixed\" (\"boundary\" \"outer\") NIL NIL NIL)"),
            "{s}"
        );
        let mut env = Vec::new();
        envelope(&mut env, &MAIL[..header_end(MAIL)]);
        assert_eq!(
            String::from_utf8(env).unwrap(),
            "(NIL \"report\" ((\"Bob B.\" NIL \"bob\" \"office.test\")) \
             ((\"Bob B.\" NIL \"bob\" \"office.test\")) ((\"Bob B.\" NIL \"bob\" \"office.test\")) \
             ((NIL NIL \"alice\" \"office.test\")(\"Carol\" NIL \"carol\" \"office.test\")) \
             NIL NIL NIL \"<1@office.test>\")"
        );
    }

    #[test]
    fn sections_are_cut_and_decoded() {
        let top = parse(MAIL);
        let get = |part: &[u32], text: SectionText, binary: bool| {
            let s = Section {
                part: part.to_vec(),
                text,
            };
            section(MAIL, &mut Some(top.clone()), &s, binary)
                .map(|b| b.map(|b| String::from_utf8_lossy(&b).into_owned()))
        };
        assert_eq!(
            get(&[2], SectionText::All, false),
            Ok(Some("JVBERi0=".into()))
        );
        assert_eq!(get(&[2], SectionText::All, true), Ok(Some("%PDF-".into())));
        assert_eq!(
            get(&[3], SectionText::HeaderFields(vec!["from".into()]), false),
            Ok(Some("From: dave@example.com\r\n\r\n".into()))
        );
        assert_eq!(
            get(&[3], SectionText::Text, false),
            Ok(Some("forwarded body".into()))
        );
        assert_eq!(get(&[2], SectionText::Text, false), Ok(None));
        assert_eq!(get(&[], SectionText::Mime, false), Ok(None));
        assert_eq!(get(&[9], SectionText::All, false), Ok(None));
        assert!(
            get(&[1, 1], SectionText::Mime, false)
                .unwrap()
                .unwrap()
                .starts_with("Content-Type: text/plain")
        );
        let odd = b"Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin\r\n";
        let s = Section {
            part: vec![1],
            text: SectionText::All,
        };
        assert_eq!(section(odd, &mut None, &s, true), Err(UnknownEncoding));
        assert_eq!(
            header_fields(
                b"From: a@b\r\nSubject: one\r\n two\r\nTo: c@d\r\n\r\n",
                &["subject".into()],
                true
            ),
            b"Subject: one\r\n two\r\n\r\n".to_vec()
        );
    }

    #[test]
    fn hostile_structures_stay_bounded() {
        // A thousand nested multiparts: followed to the depth limit, then one part.
        let mut m = Vec::new();
        for i in 0..1000 {
            m.extend_from_slice(
                format!("Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n")
                    .as_bytes(),
            );
        }
        let top = parse(&m);
        let mut depth = 0;
        let mut cur = &top;
        while let Kind::Multipart(parts) = &cur.kind {
            depth += 1;
            cur = &parts[0];
        }
        assert_eq!(depth, MAX_DEPTH);
        // No boundary, no header, binary junk: parsed without a panic.
        for junk in [
            &b"Content-Type: multipart/mixed\r\n\r\nx"[..],
            b"",
            b"\xff\xfe\r\n\r\n\x00",
            b"Content-Type: /\r\n",
        ] {
            let p = parse(junk);
            let mut out = Vec::new();
            body_structure(&mut out, junk, &p, true);
        }
    }
}
