//! SIP messages (RFC 3261 sections 7 and 25): parsing what phones send, without trusting
//! a byte of it, and building replies.
//!
//! The parser is deliberately forgiving where RFC 3261 and RFC 4475 ask for it (compact
//! header names, folded lines, any case, whitespace around colons, bare LF line ends,
//! leading CRLF keep-alives) and strict where a mistake would change meaning: the request
//! line, the SIP version, a Content-Length that does not fit the datagram, the headers a
//! request cannot do without, and a CSeq whose method is not the request's. Everything
//! refused is a [`ParseError`] naming what was wrong, answered with `400` (or `505`) by
//! the caller; nothing panics.

use std::fmt::Write as _;

/// Size bounds: a message, a header line, the number of header fields.
pub const MAX_MESSAGE: usize = 64 * 1024;
const MAX_HEADERS: usize = 200;

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("empty message")]
    Empty,
    #[error("bad start line")]
    StartLine,
    #[error("unsupported SIP version {0}")]
    Version(String),
    #[error("bad header line")]
    HeaderLine,
    #[error("too many header fields")]
    TooManyHeaders,
    #[error("bad Content-Length")]
    ContentLength,
    #[error("Content-Length is larger than the message")]
    Truncated,
    #[error("missing {0}")]
    Missing(&'static str),
    #[error("bad {0}")]
    Bad(&'static str),
    #[error("message too large")]
    TooLarge,
}

impl ParseError {
    /// The status a server answers a request with when it cannot parse it.
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            ParseError::Version(_) => (505, "Version Not Supported"),
            ParseError::TooLarge => (513, "Message Too Large"),
            _ => (400, "Bad Request"),
        }
    }
}

/// A request's method (RFC 3261 section 7.1 and the extensions the box meets). Methods
/// are case-sensitive: `invite` is some other method, kept as [`Method::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Cancel,
    Bye,
    Options,
    Register,
    Prack,
    Info,
    Subscribe,
    Notify,
    Update,
    /// Any other token (MESSAGE, REFER, PUBLISH, ...).
    Other(String),
}

impl Method {
    /// The method named by `token`.
    pub fn parse(token: &str) -> Method {
        match token {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "CANCEL" => Method::Cancel,
            "BYE" => Method::Bye,
            "OPTIONS" => Method::Options,
            "REGISTER" => Method::Register,
            "PRACK" => Method::Prack,
            "INFO" => Method::Info,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "UPDATE" => Method::Update,
            other => Method::Other(other.to_string()),
        }
    }

    /// The method as written on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Cancel => "CANCEL",
            Method::Bye => "BYE",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Prack => "PRACK",
            Method::Info => "INFO",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Update => "UPDATE",
            Method::Other(token) => token,
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a message travels: the box listens on UDP and TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    /// TLS over TCP (to a provider's trunk).
    Tls,
}

impl Transport {
    /// As stored in the state database (`udp`, `tcp`).
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }

    /// The transport stored as `text`: TCP for `tcp`, else UDP.
    pub fn from_stored(text: &str) -> Transport {
        match text {
            "tcp" => Transport::Tcp,
            "tls" => Transport::Tls,
            _ => Transport::Udp,
        }
    }

    /// Whether the sender retransmits (RFC 3261 section 17: only over unreliable UDP).
    pub fn is_unreliable(self) -> bool {
        self == Transport::Udp
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Transport {
    /// As a Via header names it (`UDP`, `TCP`, `TLS`).
    pub fn via_name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// A request we built (its top Via says UDP) as it goes over this transport: the top
    /// Via names it (RFC 3261 section 18.2.2: the far end answers on the connection).
    /// Responses, and anything over UDP, are left as they are.
    pub fn stamp_via(self, bytes: Vec<u8>) -> Vec<u8> {
        const UDP: &[u8] = b"Via: SIP/2.0/UDP ";
        if self == Transport::Udp || bytes.starts_with(b"SIP/2.0 ") {
            return bytes;
        }
        let Some(at) = bytes.windows(UDP.len()).position(|w| w == UDP) else {
            return bytes;
        };
        let mut out = Vec::with_capacity(bytes.len());
        out.extend_from_slice(bytes.get(..at).unwrap_or_default());
        out.extend_from_slice(format!("Via: SIP/2.0/{} ", self.via_name()).as_bytes());
        out.extend_from_slice(bytes.get(at + UDP.len()..).unwrap_or_default());
        out
    }
}

/// The first line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    Request { method: Method, uri: String },
    Response { code: u16, reason: String },
}

/// A parsed SIP message: header names in their long lowercase form, values as given
/// (unfolded, trimmed), the body as bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub start: StartLine,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The long form of a compact header name (RFC 3261 section 7.3.3 and later RFCs).
fn long_name(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let long = match lower.as_str() {
        "i" => "call-id",
        "m" => "contact",
        "e" => "content-encoding",
        "l" => "content-length",
        "c" => "content-type",
        "f" => "from",
        "s" => "subject",
        "k" => "supported",
        "t" => "to",
        "v" => "via",
        "o" => "event",
        "u" => "allow-events",
        "r" => "refer-to",
        "x" => "session-expires",
        _ => return lower,
    };
    long.to_string()
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
}

/// Header fields whose values may be comma-separated lists of several values in one line
/// (RFC 3261 section 7.3.1); the others (From, To, Call-ID, CSeq, ...) never are.
fn is_list(name: &str) -> bool {
    matches!(
        name,
        "via"
            | "contact"
            | "route"
            | "record-route"
            | "allow"
            | "supported"
            | "require"
            | "proxy-require"
            | "unsupported"
            | "accept"
            | "accept-encoding"
            | "accept-language"
            | "allow-events"
    )
}

/// Splits a header value at commas outside quotes and angle brackets.
pub fn split_list(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut quoted, mut angle, mut escaped) = (false, false, false);
    let mut start = 0;
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                // `start` follows a one-byte comma: always a character boundary.
                out.push(value.get(start..i).unwrap_or_default().trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(value.get(start..).unwrap_or_default().trim());
    out.retain(|v| !v.is_empty());
    out
}

impl Message {
    /// Parses one message. `datagram`: the bytes are a whole UDP datagram, so a missing
    /// Content-Length means "the rest"; over a stream the framing layer has already cut
    /// the message with its Content-Length.
    pub fn parse(bytes: &[u8]) -> Result<Message, ParseError> {
        if bytes.len() > MAX_MESSAGE {
            return Err(ParseError::TooLarge);
        }
        // Leading empty lines are keep-alives or stray CRLFs (RFC 3261 section 7.5).
        let start = bytes
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .ok_or(ParseError::Empty)?;
        let bytes = bytes.get(start..).ok_or(ParseError::Empty)?;
        let (head, body) = split_head(bytes).ok_or(ParseError::HeaderLine)?;
        let head = std::str::from_utf8(head).map_err(|_| ParseError::HeaderLine)?;
        let mut lines = logical_lines(head);
        let first = lines.next().ok_or(ParseError::Empty)?;
        let start = parse_start(&first)?;
        let mut headers = Vec::new();
        for line in lines {
            if headers.len() >= MAX_HEADERS {
                return Err(ParseError::TooManyHeaders);
            }
            let (name, value) = line.split_once(':').ok_or(ParseError::HeaderLine)?;
            let name = name.trim_end_matches([' ', '\t']);
            if !is_token(name) {
                return Err(ParseError::HeaderLine);
            }
            headers.push((long_name(name), value.trim().to_string()));
        }
        let mut m = Message {
            start,
            headers,
            body: Vec::new(),
        };
        let body = match m.header("content-length") {
            Some(v) => {
                let len: usize = v.trim().parse().map_err(|_| ParseError::ContentLength)?;
                // Extra bytes after the body in a datagram are ignored (RFC 3261 18.3).
                body.get(..len).ok_or(ParseError::Truncated)?
            }
            None => body,
        };
        m.body = body.to_vec();
        m.check()?;
        Ok(m)
    }

    /// The checks that make a request usable at all (RFC 3261 section 8.1.1).
    fn check(&self) -> Result<(), ParseError> {
        for (h, name) in [
            ("to", "To"),
            ("from", "From"),
            ("call-id", "Call-ID"),
            ("cseq", "CSeq"),
            ("via", "Via"),
        ] {
            if self.header(h).is_none_or(|v| v.trim().is_empty()) {
                return Err(ParseError::Missing(name));
            }
        }
        for h in [
            "to",
            "from",
            "call-id",
            "cseq",
            "max-forwards",
            "content-length",
        ] {
            if self.headers.iter().filter(|(n, _)| n == h).count() > 1 {
                return Err(ParseError::Bad("header given twice"));
            }
        }
        let (_, cseq_method) = self.cseq().ok_or(ParseError::Bad("CSeq"))?;
        if let StartLine::Request { method, .. } = &self.start
            && cseq_method != *method
        {
            return Err(ParseError::Bad("CSeq method"));
        }
        if let Some(mf) = self.header("max-forwards")
            && mf.trim().parse::<u8>().is_err()
        {
            return Err(ParseError::Bad("Max-Forwards"));
        }
        if uri_of(self.header("to").unwrap_or("")).is_none() {
            return Err(ParseError::Bad("To"));
        }
        if uri_of(self.header("from").unwrap_or("")).is_none() {
            return Err(ParseError::Bad("From"));
        }
        Ok(())
    }

    /// The first value of header `name` (long lowercase name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, list headers split at their commas.
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .flat_map(move |(_, v)| {
                if is_list(name) {
                    split_list(v)
                } else {
                    vec![v.as_str()]
                }
            })
    }

    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// CSeq: (number, method).
    pub fn cseq(&self) -> Option<(u32, Method)> {
        let v = self.header("cseq")?;
        let mut w = v.split_ascii_whitespace();
        let n = w.next()?.parse().ok()?;
        let m = w.next()?;
        (w.next().is_none() && is_token(m)).then(|| (n, Method::parse(m)))
    }

    /// The branch parameter of the top Via (`""` when there is none): what names the
    /// transaction (RFC 3261 section 17.2.3).
    pub fn branch(&self) -> &str {
        self.top_via()
            .and_then(|v| param(v, "branch"))
            .unwrap_or("")
    }

    pub fn call_id(&self) -> &str {
        self.header("call-id").unwrap_or("")
    }

    /// The top Via.
    pub fn top_via(&self) -> Option<&str> {
        self.values("via").next()
    }

    /// Serialises the message, setting Content-Length to the body's.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::new();
        match &self.start {
            StartLine::Request { method, uri } => {
                let _ = write!(out, "{method} {uri} SIP/2.0\r\n");
            }
            StartLine::Response { code, reason } => {
                let _ = write!(out, "SIP/2.0 {code} {reason}\r\n");
            }
        }
        for (name, value) in &self.headers {
            if name == "content-length" {
                continue;
            }
            let _ = write!(out, "{}: {value}\r\n", canonical(name));
        }
        let _ = write!(out, "Content-Length: {}\r\n\r\n", self.body.len());
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }

    /// A response to this request: Via, From, To (with `to_tag` added when it has none
    /// and the status is not 100), Call-ID and CSeq copied (RFC 3261 section 8.2.6).
    pub fn response(&self, code: u16, reason: &str, to_tag: &str) -> Message {
        let mut headers = Vec::new();
        for (n, v) in &self.headers {
            match n.as_str() {
                "via" | "from" | "call-id" | "cseq" => headers.push((n.clone(), v.clone())),
                // The route set of the dialog a response makes (RFC 3261 section 12.1.1).
                "record-route" if (101..300).contains(&code) => {
                    headers.push((n.clone(), v.clone()));
                }
                "to" => {
                    let v = if code != 100 && param(v, "tag").is_none() && !to_tag.is_empty() {
                        format!("{v};tag={to_tag}")
                    } else {
                        v.clone()
                    };
                    headers.push((n.clone(), v));
                }
                _ => {}
            }
        }
        Message {
            start: StartLine::Response {
                code,
                reason: reason.to_string(),
            },
            headers,
            body: Vec::new(),
        }
    }

    /// Adds a header field at the end.
    pub fn push(&mut self, name: &str, value: impl Into<String>) {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
    }
}

/// The usual spelling of a header name in what we send.
fn canonical(name: &str) -> String {
    match name {
        "call-id" => "Call-ID".into(),
        "cseq" => "CSeq".into(),
        "www-authenticate" => "WWW-Authenticate".into(),
        "mime-version" => "MIME-Version".into(),
        _ => name
            .split('-')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("-"),
    }
}

/// Splits at the blank line ending the headers (CRLFCRLF, or bare LFs).
fn split_head(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    for (i, _) in bytes.iter().enumerate().filter(|(_, b)| **b == b'\n') {
        let (head, rest) = bytes.split_at_checked(i)?;
        // "\n\n" or "\n\r\n" ends the head.
        if let Some(body) = rest
            .strip_prefix(b"\n\n")
            .or_else(|| rest.strip_prefix(b"\n\r\n"))
        {
            return Some((head, body));
        }
    }
    // No blank line: a message without body and without the final CRLF is malformed,
    // but a datagram cut at the end of its headers is common enough to accept.
    Some((bytes, &[]))
}

/// Lines with folding undone (a line starting with space or tab continues the last).
fn logical_lines(head: &str) -> impl Iterator<Item = String> + '_ {
    let mut out: Vec<String> = Vec::new();
    for raw in head.split('\n') {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.starts_with([' ', '\t']) && !out.is_empty() {
            if let Some(last) = out.last_mut() {
                last.push(' ');
                last.push_str(line.trim());
            }
        } else if !line.is_empty() {
            out.push(line.to_string());
        }
    }
    out.into_iter()
}

fn parse_start(line: &str) -> Result<StartLine, ParseError> {
    if let Some(rest) = line.strip_prefix("SIP/") {
        let (version, rest) = rest.split_once(' ').ok_or(ParseError::StartLine)?;
        if version != "2.0" {
            return Err(ParseError::Version(format!("SIP/{version}")));
        }
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        let code: u16 = code.parse().map_err(|_| ParseError::StartLine)?;
        if !(100..700).contains(&code) {
            return Err(ParseError::StartLine);
        }
        return Ok(StartLine::Response {
            code,
            reason: reason.to_string(),
        });
    }
    let mut parts = line.split(' ');
    let (method, uri, version) = (parts.next(), parts.next(), parts.next());
    let (Some(method), Some(uri), Some(version)) = (method, uri, version) else {
        return Err(ParseError::StartLine);
    };
    if parts.next().is_some() || !is_token(method) || uri.is_empty() || !uri.contains(':') {
        return Err(ParseError::StartLine);
    }
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        return Err(ParseError::Version(version.to_string()));
    }
    Ok(StartLine::Request {
        method: Method::parse(method),
        uri: uri.to_string(),
    })
}

/// A parameter of a header value (`;name=value` after the URI or the `>`), unquoted;
/// `Some("")` for a parameter without value.
pub fn param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    let params = match value.rsplit_once('>') {
        Some((_, after)) => after,
        None => value.split_once(';').map_or("", |(_, p)| p),
    };
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"'))
    })
}

/// The URI of a name-addr or addr-spec (`"Alice" <sip:101@box>;tag=1` -> `sip:101@box`).
pub fn uri_of(value: &str) -> Option<&str> {
    let v = value.trim();
    if let Some((_, after)) = v.split_once('<') {
        let uri = after.split_once('>')?.0.trim();
        return (!uri.is_empty() && uri.contains(':')).then_some(uri);
    }
    // An addr-spec: its parameters belong to the header, not the URI.
    let uri = v.split(';').next()?.trim();
    (!uri.is_empty() && uri.contains(':') && !uri.contains(char::is_whitespace)).then_some(uri)
}

/// The display name of a name-addr, unquoted.
pub fn display_name(value: &str) -> Option<String> {
    let v = value.trim();
    let before = v.split_once('<')?.0;
    let name = before.trim().trim_matches('"').trim();
    (!name.is_empty()).then(|| name.replace("\\\"", "\""))
}

/// The user part of a SIP URI (`sip:101@box;transport=udp` -> `101`), unescaped.
pub fn uri_user(uri: &str) -> Option<String> {
    let rest = uri.split_once(':')?.1;
    let (user, _) = rest.split_once('@')?;
    let user = user.split(';').next()?.split(':').next()?;
    Some(unescape(user))
}

/// The host[:port] part of a SIP URI.
pub fn uri_host(uri: &str) -> Option<&str> {
    let rest = uri.split_once(':')?.1;
    let rest = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host = rest.split([';', '?']).next()?;
    (!host.is_empty()).then_some(host)
}

/// `%XX` escapes undone.
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%'
            && let Some(h) = b.get(i + 1..i + 3)
            && let Ok(v) = u8::from_str_radix(std::str::from_utf8(h).unwrap_or("zz"), 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(c);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Where a stream's next message ends: the head's end plus its Content-Length. `None`
/// until the whole message is there; `Err` when the head is unusable.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, ParseError> {
    // Skip keep-alive CRLFs between messages.
    let skip = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let rest = buf.get(skip..).unwrap_or_default();
    let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") else {
        if rest.len() > MAX_MESSAGE {
            return Err(ParseError::TooLarge);
        }
        return Ok(None);
    };
    let head = rest.get(..end).unwrap_or_default();
    let head = std::str::from_utf8(head).map_err(|_| ParseError::HeaderLine)?;
    let mut len = None;
    for line in logical_lines(head).skip(1) {
        if let Some((n, v)) = line.split_once(':')
            && long_name(n.trim()) == "content-length"
        {
            len = Some(
                v.trim()
                    .parse::<usize>()
                    .map_err(|_| ParseError::ContentLength)?,
            );
        }
    }
    // Over a stream Content-Length is required (RFC 3261 18.3); taken as 0 when absent.
    // A huge Content-Length must not wrap the sum (or panic in a debug build).
    let total = (skip + end + 4)
        .checked_add(len.unwrap_or(0))
        .filter(|&t| t <= MAX_MESSAGE + skip)
        .ok_or(ParseError::TooLarge)?;
    Ok((buf.len() >= total).then_some(total))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const REGISTER: &str = "REGISTER sip:office.test SIP/2.0\r\n\
        Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK776asdhds;rport\r\n\
        Max-Forwards: 70\r\n\
        To: \"Alice\" <sip:101@office.test>\r\n\
        f: <sip:101@office.test>;tag=456248\r\n\
        i: 843817637684230@998sdasdh09\r\n\
        CSeq: 1826 REGISTER\r\n\
        Contact: <sip:101@10.0.0.5:5062>;expires=600, <sip:101@10.0.0.6>\r\n\
        l: 0\r\n\r\n";

    #[test]
    fn a_register_with_compact_headers_and_a_contact_list() {
        let m = Message::parse(REGISTER.as_bytes()).unwrap();
        assert_eq!(m.method(), Some(&Method::Register));
        assert_eq!(m.call_id(), "843817637684230@998sdasdh09");
        assert_eq!(m.cseq(), Some((1826, Method::Register)));
        let contacts: Vec<&str> = m.values("contact").collect();
        assert_eq!(contacts.len(), 2);
        assert_eq!(param(contacts[0], "expires"), Some("600"));
        assert_eq!(uri_of(m.header("to").unwrap()), Some("sip:101@office.test"));
        assert_eq!(
            display_name(m.header("to").unwrap()).as_deref(),
            Some("Alice")
        );
        assert_eq!(param(m.header("from").unwrap(), "tag"), Some("456248"));
        assert_eq!(param(m.top_via().unwrap(), "rport"), Some(""));
        assert_eq!(
            uri_user("sip:101@office.test;transport=udp").as_deref(),
            Some("101")
        );
        assert_eq!(
            uri_host("sip:101@office.test:5060;transport=udp"),
            Some("office.test:5060")
        );
    }

    #[test]
    fn folding_case_and_bare_lf_are_accepted() {
        let text = REGISTER
            .replace("Max-Forwards: 70\r\n", "mAx-fOrWaRdS  :\r\n 70\r\n")
            .replace("\r\n", "\n");
        let m = Message::parse(text.as_bytes()).unwrap();
        assert_eq!(m.header("max-forwards"), Some("70"));
    }

    #[test]
    fn broken_requests_are_refused_with_the_right_status() {
        let cases = [
            (
                REGISTER.replace("CSeq: 1826 REGISTER", "CSeq: 1826 INVITE"),
                400,
            ),
            (
                REGISTER.replace("i: 843817637684230@998sdasdh09\r\n", ""),
                400,
            ),
            (REGISTER.replace("l: 0", "l: 40"), 400),
            (REGISTER.replace("SIP/2.0\r\nVia", "SIP/7.0\r\nVia"), 505),
            (REGISTER.replace("REGISTER sip", "REGISTER  sip"), 400),
            (
                REGISTER.replace("Max-Forwards: 70", "Max-Forwards: 70\r\nMax-Forwards: 69"),
                400,
            ),
        ];
        for (text, status) in cases {
            let e = Message::parse(text.as_bytes()).unwrap_err();
            assert_eq!(e.status().0, status, "{e}: {text}");
        }
        assert!(Message::parse(b"\r\n\r\n").is_err());
        assert!(Message::parse(&[0xff; 100]).is_err());
    }

    #[test]
    fn responses_copy_the_dialog_headers_and_add_a_to_tag() {
        let m = Message::parse(REGISTER.as_bytes()).unwrap();
        let mut r = m.response(200, "OK", "abc");
        r.push("Expires", "600");
        let text = String::from_utf8(r.to_bytes()).unwrap();
        assert!(text.starts_with("SIP/2.0 200 OK\r\n"));
        assert!(text.contains("To: \"Alice\" <sip:101@office.test>;tag=abc\r\n"));
        assert!(text.contains("Call-ID: 843817637684230@998sdasdh09\r\n"));
        assert!(text.ends_with("Content-Length: 0\r\n\r\n"));
        let back = Message::parse(text.as_bytes()).unwrap();
        assert_eq!(
            back.start,
            StartLine::Response {
                code: 200,
                reason: "OK".into()
            }
        );
    }

    #[test]
    fn stream_framing_waits_for_the_body() {
        let msg = "OPTIONS sip:x SIP/2.0\r\nContent-Length: 4\r\n\r\nbody";
        assert_eq!(frame_len(&msg.as_bytes()[..30]).unwrap(), None);
        assert_eq!(frame_len(msg.as_bytes()).unwrap(), Some(msg.len()));
        let two = format!("\r\n\r\n{msg}{msg}");
        assert_eq!(frame_len(two.as_bytes()).unwrap(), Some(4 + msg.len()));
        assert!(frame_len(b"X\r\nContent-Length: x\r\n\r\n").is_err());
        let huge = format!("X\r\nContent-Length: {}\r\n\r\n", usize::MAX);
        assert!(matches!(
            frame_len(huge.as_bytes()),
            Err(ParseError::TooLarge)
        ));
    }

    #[test]
    fn a_request_on_a_connection_names_its_transport_in_the_top_via() {
        let req = b"BYE sip:x@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKa\r\nVia: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKb\r\n\r\n".to_vec();
        let tls = String::from_utf8(Transport::Tls.stamp_via(req.clone())).unwrap();
        assert!(
            tls.contains(
                "Via: SIP/2.0/TLS 10.0.0.2:5060;branch=z9hG4bKa\r\nVia: SIP/2.0/UDP 10.0.0.9"
            ),
            "{tls}"
        );
        assert_eq!(Transport::Udp.stamp_via(req.clone()), req);
        // A response keeps the Vias it was asked with.
        let resp =
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKa\r\n\r\n".to_vec();
        assert_eq!(Transport::Tcp.stamp_via(resp.clone()), resp);
        assert_eq!(Transport::from_stored("tls"), Transport::Tls);
        assert_eq!(Transport::Tls.via_name(), "TLS");
    }
}
