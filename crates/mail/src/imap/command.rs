//! IMAP commands as a client sends them (RFC 9051, with RFC 3501's forms older clients
//! use), read from one framed command ([`super::frame`]): a tag, a command name, its
//! arguments. Everything is bounded: parenthesised search keys nest at most
//! [`MAX_DEPTH`] deep, a sequence set holds at most [`MAX_RANGES`] ranges and is never
//! expanded, and any byte out of place is an error naming what was expected (the
//! server answers it with a tagged BAD), never a panic.

use std::fmt;

/// How deep search keys (and other parenthesised lists) may nest.
pub const MAX_DEPTH: usize = 32;
/// Ranges in one sequence set at most.
pub const MAX_RANGES: usize = 10_000;

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub tag: String,
    pub body: Body,
}

/// What a command asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Capability,
    Noop,
    Logout,
    StartTls,
    /// AUTHENTICATE mechanism, with its initial response (SASL-IR; `=` is empty).
    Authenticate {
        mechanism: String,
        initial: Option<Vec<u8>>,
    },
    Login {
        user: Vec<u8>,
        password: Vec<u8>,
    },
    Enable(Vec<String>),
    Select {
        mailbox: Vec<u8>,
        read_only: bool,
        condstore: bool,
        qresync: Option<Qresync>,
    },
    Create {
        mailbox: Vec<u8>,
        /// `(USE (\Sent))` (RFC 6154).
        special_use: Vec<String>,
    },
    Delete(Vec<u8>),
    Rename {
        from: Vec<u8>,
        to: Vec<u8>,
    },
    Subscribe(Vec<u8>),
    Unsubscribe(Vec<u8>),
    List {
        reference: Vec<u8>,
        patterns: Vec<Vec<u8>>,
        /// Selection options (`SUBSCRIBED`, `SPECIAL-USE`, ...), upper case.
        select: Vec<String>,
        /// Return options: `SUBSCRIBED`, `CHILDREN`, `SPECIAL-USE`, and `STATUS` items.
        returns: Vec<String>,
        status: Vec<StatusItem>,
        /// LSUB (IMAP4rev1): the subscribed mailboxes only.
        lsub: bool,
    },
    Namespace,
    /// RFC 9208: the quota roots of a folder, and one root's usage and limit.
    GetQuotaRoot(Vec<u8>),
    GetQuota(Vec<u8>),
    SetQuota,
    Status {
        mailbox: Vec<u8>,
        items: Vec<StatusItem>,
    },
    Append {
        mailbox: Vec<u8>,
        flags: Vec<Flag>,
        /// The date-time given, as written (`"17-Jul-1996 02:44:25 -0700"`).
        date: Option<String>,
        message: Vec<u8>,
    },
    Idle,
    Check,
    Close,
    Unselect,
    /// EXPUNGE, or UID EXPUNGE with its set (UIDPLUS).
    Expunge(Option<SequenceSet>),
    Search {
        uid: bool,
        /// `RETURN (...)` (ESEARCH): MIN, MAX, ALL, COUNT, SAVE; empty: a plain SEARCH.
        returns: Vec<String>,
        /// `RETURN ()` given: an ESEARCH answer with ALL.
        esearch: bool,
        charset: Option<String>,
        key: SearchKey,
    },
    Fetch {
        uid: bool,
        set: SequenceSet,
        items: Vec<FetchItem>,
        /// `(CHANGEDSINCE n)` (CONDSTORE), and `VANISHED` (QRESYNC).
        changed_since: Option<u64>,
        vanished: bool,
    },
    Store {
        uid: bool,
        set: SequenceSet,
        mode: StoreMode,
        silent: bool,
        flags: Vec<Flag>,
        unchanged_since: Option<u64>,
    },
    Copy {
        uid: bool,
        set: SequenceSet,
        mailbox: Vec<u8>,
    },
    Move {
        uid: bool,
        set: SequenceSet,
        mailbox: Vec<u8>,
    },
    /// ID (RFC 2971): the client's fields, or NIL.
    Id(Vec<(String, Option<String>)>),
}

/// QRESYNC's SELECT parameter: the client's UIDVALIDITY and HIGHESTMODSEQ, and the UIDs
/// it knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qresync {
    pub uidvalidity: u32,
    pub modseq: u64,
    pub known_uids: Option<SequenceSet>,
}

/// A STATUS item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusItem {
    Messages,
    Recent,
    UidNext,
    UidValidity,
    Unseen,
    Deleted,
    Size,
    HighestModseq,
}

/// A flag: a system flag (`\Seen`) or a keyword (`$Forwarded`), as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Flag(pub String);

impl Flag {
    /// Whether it is a system flag (begins with `\`).
    pub fn is_system(&self) -> bool {
        self.0.starts_with('\\')
    }
}

/// How STORE changes the flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    Replace,
    Add,
    Remove,
}

/// Sequence numbers or UIDs: ranges, `*` being the largest there is; `$` the saved
/// result (SEARCHRES). Never expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SequenceSet {
    Ranges(Vec<(Seq, Seq)>),
    Saved,
}

/// One end of a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seq {
    Number(u32),
    Last,
}

impl SequenceSet {
    /// Whether `n` is in the set, `last` being what `*` stands for.
    pub fn contains(&self, n: u32, last: u32) -> bool {
        let SequenceSet::Ranges(ranges) = self else {
            return false;
        };
        let value = |s: Seq| match s {
            Seq::Number(v) => v,
            Seq::Last => last,
        };
        ranges.iter().any(|&(a, b)| {
            let (a, b) = (value(a), value(b));
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            (lo..=hi).contains(&n)
        })
    }
}

/// What FETCH asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchItem {
    Envelope,
    Flags,
    InternalDate,
    Rfc822Size,
    /// RFC822, RFC822.HEADER, RFC822.TEXT (IMAP4rev1): as BODY[], BODY.PEEK[HEADER] and
    /// BODY[TEXT], named as asked.
    Rfc822,
    Rfc822Header,
    Rfc822Text,
    Body,
    BodyStructure,
    Uid,
    Modseq,
    /// BODY[section]<partial> (or BODY.PEEK), BINARY[...] (or BINARY.PEEK).
    Section {
        section: Section,
        peek: bool,
        binary: bool,
        partial: Option<(u32, u32)>,
    },
    BinarySize(Vec<u32>),
}

/// A body section: the part (`1.2`, empty for the whole message) and what of it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Section {
    pub part: Vec<u32>,
    pub text: SectionText,
}

/// What of a part a section is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SectionText {
    /// The whole part (or message).
    #[default]
    All,
    Header,
    HeaderFields(Vec<String>),
    HeaderFieldsNot(Vec<String>),
    Text,
    Mime,
}

/// A search key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchKey {
    All,
    And(Vec<SearchKey>),
    Or(Box<SearchKey>, Box<SearchKey>),
    Not(Box<SearchKey>),
    /// A message set (sequence numbers), or UID set.
    Sequence(SequenceSet),
    Uid(SequenceSet),
    /// Has (`true`) or has not this flag.
    Flag(Flag, bool),
    /// New (RFC 3501): recent and not seen; Old: not recent.
    New,
    Old,
    Recent,
    /// A header field contains the text (an empty text: the field exists).
    Header(String, Vec<u8>),
    Body(Vec<u8>),
    Text(Vec<u8>),
    /// Internal date before, on, since (days since 1970-01-01).
    Before(i64),
    On(i64),
    Since(i64),
    /// The Date: header's day before, on, since.
    SentBefore(i64),
    SentOn(i64),
    SentSince(i64),
    Larger(u64),
    Smaller(u64),
    /// MODSEQ n (CONDSTORE).
    Modseq(u64),
}

/// Why a command could not be read, for the tagged BAD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The tag, when the command had a valid one (else the answer is untagged).
    pub tag: Option<String>,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParseError {}

/// Reads one framed command (CRLF included).
pub fn parse(bytes: &[u8]) -> Result<Command, ParseError> {
    let mut p = Parser { s: bytes, i: 0 };
    let tag = p
        .tag()
        .map_err(|message| ParseError { tag: None, message })?;
    let body = p.body().map_err(|message| ParseError {
        tag: Some(tag.clone()),
        message,
    })?;
    Ok(Command { tag, body })
}

type R<T> = Result<T, String>;

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

/// A character an atom may have (RFC 9051's ATOM-CHAR).
fn is_atom_char(b: u8) -> bool {
    b > b' ' && b < 0x7f && !b"(){%*\"\\]".contains(&b)
}

/// An ASTRING-CHAR: an atom's, or `]`.
fn is_astring_char(b: u8) -> bool {
    is_atom_char(b) || b == b']'
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn expect(&mut self, b: u8, what: &str) -> R<()> {
        if self.peek() == Some(b) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected {what}"))
        }
    }

    fn space(&mut self) -> R<()> {
        self.expect(b' ', "a space")
    }

    fn end(&mut self) -> R<()> {
        if self.peek() == Some(b'\r') {
            self.i += 1;
        }
        self.expect(b'\n', "the end of the command")?;
        if self.i == self.s.len() {
            Ok(())
        } else {
            Err("unexpected bytes after the command".into())
        }
    }

    fn tag(&mut self) -> R<String> {
        let start = self.i;
        while self.peek().is_some_and(super::frame::is_tag_char) {
            self.i += 1;
        }
        if self.i == start || self.i - start > 64 {
            return Err("a command begins with a tag".into());
        }
        let tag =
            String::from_utf8_lossy(self.s.get(start..self.i).unwrap_or_default()).into_owned();
        self.space()
            .map_err(|_| "a space after the tag".to_string())?;
        Ok(tag)
    }

    /// An atom (upper-cased when `upper`).
    fn atom(&mut self) -> R<String> {
        let start = self.i;
        while self.peek().is_some_and(is_atom_char) {
            self.i += 1;
        }
        if self.i == start {
            return Err("expected an atom".into());
        }
        Ok(String::from_utf8_lossy(self.s.get(start..self.i).unwrap_or_default()).into_owned())
    }

    fn keyword(&mut self) -> R<String> {
        self.atom().map(|a| a.to_ascii_uppercase())
    }

    fn number(&mut self) -> R<u64> {
        let start = self.i;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.i += 1;
        }
        let digits = self.s.get(start..self.i).unwrap_or_default();
        if digits.is_empty() || digits.len() > 20 {
            return Err("expected a number".into());
        }
        std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| "a number out of range".to_string())
    }

    fn nz_number(&mut self) -> R<u32> {
        let n = self.number()?;
        u32::try_from(n)
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| "expected a number from 1 to 4294967295".to_string())
    }

    fn quoted(&mut self) -> R<Vec<u8>> {
        self.expect(b'"', "a quoted string")?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => {
                            out.push(c);
                            self.i += 1;
                        }
                        _ => return Err("only \\\" and \\\\ may be escaped".into()),
                    }
                }
                Some(b'\r' | b'\n') | None => return Err("a quoted string is not closed".into()),
                Some(c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }

    fn literal(&mut self) -> R<Vec<u8>> {
        if self.peek() == Some(b'~') {
            self.i += 1;
        }
        self.expect(b'{', "a literal")?;
        let size =
            usize::try_from(self.number()?).map_err(|_| "a literal too large".to_string())?;
        if matches!(self.peek(), Some(b'+' | b'-')) {
            self.i += 1;
        }
        self.expect(b'}', "the end of a literal's size")?;
        if self.peek() == Some(b'\r') {
            self.i += 1;
        }
        self.expect(b'\n', "a line break after a literal's size")?;
        let data = self
            .s
            .get(self.i..self.i.saturating_add(size))
            .ok_or_else(|| "a literal shorter than announced".to_string())?
            .to_vec();
        self.i += size;
        Ok(data)
    }

    /// A string: quoted or literal.
    fn string(&mut self) -> R<Vec<u8>> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{' | b'~') => self.literal(),
            _ => Err("expected a string".into()),
        }
    }

    fn astring(&mut self) -> R<Vec<u8>> {
        match self.peek() {
            Some(b'"' | b'{' | b'~') => self.string(),
            _ => {
                let start = self.i;
                while self.peek().is_some_and(is_astring_char) {
                    self.i += 1;
                }
                if self.i == start {
                    return Err("expected a string or an atom".into());
                }
                Ok(self.s.get(start..self.i).unwrap_or_default().to_vec())
            }
        }
    }

    /// A mailbox name (`INBOX` in any case is INBOX).
    fn mailbox(&mut self) -> R<Vec<u8>> {
        let name = self.astring()?;
        Ok(if name.eq_ignore_ascii_case(b"INBOX") {
            b"INBOX".to_vec()
        } else {
            name
        })
    }

    /// A LIST pattern: an astring, or an atom with `%` and `*`.
    fn list_mailbox(&mut self) -> R<Vec<u8>> {
        match self.peek() {
            Some(b'"' | b'{' | b'~') => self.string(),
            _ => {
                let start = self.i;
                while self
                    .peek()
                    .is_some_and(|b| is_astring_char(b) || b == b'%' || b == b'*')
                {
                    self.i += 1;
                }
                if self.i == start {
                    return Err("expected a mailbox pattern".into());
                }
                Ok(self.s.get(start..self.i).unwrap_or_default().to_vec())
            }
        }
    }

    fn nstring_or_nil(&mut self) -> R<Option<String>> {
        if self.peek_word("NIL") {
            self.i += 3;
            return Ok(None);
        }
        Ok(Some(String::from_utf8_lossy(&self.string()?).into_owned()))
    }

    /// Whether the next bytes are `word` (any case) followed by a delimiter.
    fn peek_word(&self, word: &str) -> bool {
        let end = self.i + word.len();
        self.s
            .get(self.i..end)
            .is_some_and(|w| w.eq_ignore_ascii_case(word.as_bytes()))
            && !self.s.get(end).copied().is_some_and(is_atom_char)
    }

    fn flag(&mut self) -> R<Flag> {
        if self.peek() == Some(b'\\') {
            self.i += 1;
            if self.peek() == Some(b'*') {
                self.i += 1;
                return Ok(Flag("\\*".into()));
            }
            let name = self.atom()?;
            // System flags in their canonical case.
            let canonical = ["Seen", "Answered", "Flagged", "Deleted", "Draft", "Recent"]
                .iter()
                .find(|f| f.eq_ignore_ascii_case(&name))
                .map_or(name, |f| (*f).to_string());
            return Ok(Flag(format!("\\{canonical}")));
        }
        Ok(Flag(self.atom()?))
    }

    /// `(flag flag ...)`, or (for STORE) flags without the parentheses.
    fn flag_list(&mut self, bare_allowed: bool) -> R<Vec<Flag>> {
        let mut flags = Vec::new();
        if self.peek() == Some(b'(') {
            self.i += 1;
            while self.peek() != Some(b')') {
                if !flags.is_empty() {
                    self.space()?;
                }
                flags.push(self.flag()?);
                if flags.len() > 1000 {
                    return Err("too many flags".into());
                }
            }
            self.i += 1;
            return Ok(flags);
        }
        if !bare_allowed {
            return Err("expected a list of flags in parentheses".into());
        }
        loop {
            flags.push(self.flag()?);
            if self.peek() != Some(b' ') || flags.len() > 1000 {
                return Ok(flags);
            }
            self.i += 1;
        }
    }

    fn sequence_set(&mut self) -> R<SequenceSet> {
        if self.peek() == Some(b'$') {
            self.i += 1;
            return Ok(SequenceSet::Saved);
        }
        let mut ranges = Vec::new();
        loop {
            let a = self.seq()?;
            let b = if self.peek() == Some(b':') {
                self.i += 1;
                self.seq()?
            } else {
                a
            };
            ranges.push((a, b));
            if ranges.len() > MAX_RANGES {
                return Err(format!("a sequence set has at most {MAX_RANGES} ranges"));
            }
            if self.peek() != Some(b',') {
                return Ok(SequenceSet::Ranges(ranges));
            }
            self.i += 1;
        }
    }

    fn seq(&mut self) -> R<Seq> {
        if self.peek() == Some(b'*') {
            self.i += 1;
            return Ok(Seq::Last);
        }
        self.nz_number()
            .map(Seq::Number)
            .map_err(|_| "expected a sequence set (e.g. 1:5,7,9:*)".into())
    }

    fn body(&mut self) -> R<Body> {
        let name = self.keyword()?;
        let body = match name.as_str() {
            "CAPABILITY" => Body::Capability,
            "NOOP" => Body::Noop,
            "LOGOUT" => Body::Logout,
            "STARTTLS" => Body::StartTls,
            "CHECK" => Body::Check,
            "CLOSE" => Body::Close,
            "UNSELECT" => Body::Unselect,
            "IDLE" => Body::Idle,
            "NAMESPACE" => Body::Namespace,
            "GETQUOTAROOT" => {
                self.space()?;
                Body::GetQuotaRoot(self.mailbox()?)
            }
            "GETQUOTA" => {
                self.space()?;
                Body::GetQuota(self.astring()?)
            }
            // Limits are the admin's to set; the rest of the line is not read.
            "SETQUOTA" => Body::SetQuota,
            "EXPUNGE" => Body::Expunge(None),
            "AUTHENTICATE" => {
                self.space()?;
                let mechanism = self.keyword()?;
                let initial = if self.peek() == Some(b' ') {
                    self.i += 1;
                    if self.peek() == Some(b'=') {
                        self.i += 1;
                        Some(Vec::new())
                    } else {
                        Some(self.atom()?.into_bytes())
                    }
                } else {
                    None
                };
                Body::Authenticate { mechanism, initial }
            }
            "LOGIN" => {
                self.space()?;
                let user = self.astring()?;
                self.space()?;
                let password = self.astring()?;
                Body::Login { user, password }
            }
            "ENABLE" => {
                let mut caps = Vec::new();
                while self.peek() == Some(b' ') {
                    self.i += 1;
                    caps.push(self.keyword()?);
                }
                if caps.is_empty() {
                    return Err("ENABLE names at least one capability".into());
                }
                Body::Enable(caps)
            }
            "SELECT" | "EXAMINE" => {
                self.space()?;
                let mailbox = self.mailbox()?;
                let (mut condstore, mut qresync) = (false, None);
                if self.peek() == Some(b' ') {
                    self.i += 1;
                    self.expect(b'(', "select parameters in parentheses")?;
                    while self.peek() != Some(b')') {
                        if self.peek() == Some(b' ') {
                            self.i += 1;
                        }
                        match self.keyword()?.as_str() {
                            "CONDSTORE" => condstore = true,
                            "QRESYNC" => {
                                self.space()?;
                                qresync = Some(self.qresync()?);
                            }
                            other => return Err(format!("unknown select parameter {other}")),
                        }
                    }
                    self.i += 1;
                }
                Body::Select {
                    mailbox,
                    read_only: name == "EXAMINE",
                    condstore,
                    qresync,
                }
            }
            "CREATE" => {
                self.space()?;
                let mailbox = self.mailbox()?;
                let mut special_use = Vec::new();
                if self.peek() == Some(b' ') {
                    self.i += 1;
                    self.expect(b'(', "create parameters")?;
                    if self.keyword()? != "USE" {
                        return Err("the only create parameter is USE".into());
                    }
                    self.space()?;
                    special_use = self.flag_list(false)?.into_iter().map(|f| f.0).collect();
                    self.expect(b')', "the end of the create parameters")?;
                }
                Body::Create {
                    mailbox,
                    special_use,
                }
            }
            "DELETE" => {
                self.space()?;
                Body::Delete(self.mailbox()?)
            }
            "SUBSCRIBE" => {
                self.space()?;
                Body::Subscribe(self.mailbox()?)
            }
            "UNSUBSCRIBE" => {
                self.space()?;
                Body::Unsubscribe(self.mailbox()?)
            }
            "RENAME" => {
                self.space()?;
                let from = self.mailbox()?;
                self.space()?;
                let to = self.mailbox()?;
                Body::Rename { from, to }
            }
            "LIST" | "LSUB" => self.list(name == "LSUB")?,
            "STATUS" => {
                self.space()?;
                let mailbox = self.mailbox()?;
                self.space()?;
                Body::Status {
                    mailbox,
                    items: self.status_items()?,
                }
            }
            "APPEND" => self.append()?,
            "SEARCH" => self.search(false)?,
            "FETCH" => self.fetch(false)?,
            "STORE" => self.store(false)?,
            "COPY" | "MOVE" => self.copy(false, name == "MOVE")?,
            "UID" => {
                self.space()?;
                let sub = self.keyword()?;
                match sub.as_str() {
                    "SEARCH" => self.search(true)?,
                    "FETCH" => self.fetch(true)?,
                    "STORE" => self.store(true)?,
                    "COPY" | "MOVE" => self.copy(true, sub == "MOVE")?,
                    "EXPUNGE" => {
                        self.space()?;
                        Body::Expunge(Some(self.sequence_set()?))
                    }
                    other => return Err(format!("unknown command UID {other}")),
                }
            }
            "ID" => {
                self.space()?;
                let mut fields = Vec::new();
                if self.peek_word("NIL") {
                    self.i += 3;
                } else {
                    self.expect(b'(', "ID's fields in parentheses, or NIL")?;
                    while self.peek() != Some(b')') {
                        if !fields.is_empty() {
                            self.space()?;
                        }
                        let k = String::from_utf8_lossy(&self.string()?).into_owned();
                        self.space()?;
                        let v = self.nstring_or_nil()?;
                        fields.push((k, v));
                        if fields.len() > 30 {
                            return Err("ID has at most 30 fields".into());
                        }
                    }
                    self.i += 1;
                }
                Body::Id(fields)
            }
            other => return Err(format!("unknown command {other}")),
        };
        self.end()?;
        Ok(body)
    }

    fn qresync(&mut self) -> R<Qresync> {
        self.expect(b'(', "QRESYNC's parameters")?;
        let uidvalidity = self.nz_number()?;
        self.space()?;
        let modseq = self.number()?;
        let mut known_uids = None;
        if self.peek() == Some(b' ') {
            self.i += 1;
            if self.peek() != Some(b'(') {
                known_uids = Some(self.sequence_set()?);
            }
            // The sequence match data, if any, is not used (it only saves a round trip).
            if self.peek() == Some(b' ') {
                self.i += 1;
            }
            if self.peek() == Some(b'(') {
                self.skip_parenthesised()?;
            }
        }
        self.expect(b')', "the end of QRESYNC's parameters")?;
        Ok(Qresync {
            uidvalidity,
            modseq,
            known_uids,
        })
    }

    /// Skips one parenthesised group (bounded, no literals inside).
    fn skip_parenthesised(&mut self) -> R<()> {
        let mut depth = 0usize;
        loop {
            match self.peek() {
                Some(b'(') => depth += 1,
                Some(b')') => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        self.i += 1;
                        return Ok(());
                    }
                }
                Some(b'\r' | b'\n') | None => return Err("a list is not closed".into()),
                _ => {}
            }
            if depth > MAX_DEPTH {
                return Err("lists nest too deep".into());
            }
            self.i += 1;
        }
    }

    fn list(&mut self, lsub: bool) -> R<Body> {
        self.space()?;
        let mut select = Vec::new();
        if !lsub && self.peek() == Some(b'(') {
            self.i += 1;
            while self.peek() != Some(b')') {
                if !select.is_empty() {
                    self.space()?;
                }
                select.push(self.keyword()?);
                if select.len() > 20 {
                    return Err("too many selection options".into());
                }
            }
            self.i += 1;
            self.space()?;
        }
        let reference = self.mailbox_or_empty()?;
        self.space()?;
        let mut patterns = Vec::new();
        if !lsub && self.peek() == Some(b'(') {
            self.i += 1;
            while self.peek() != Some(b')') {
                if !patterns.is_empty() {
                    self.space()?;
                }
                patterns.push(self.list_mailbox()?);
                if patterns.len() > 100 {
                    return Err("too many patterns".into());
                }
            }
            self.i += 1;
        } else {
            patterns.push(self.list_mailbox()?);
        }
        let (mut returns, mut status) = (Vec::new(), Vec::new());
        if !lsub && self.peek() == Some(b' ') {
            self.i += 1;
            if self.keyword()? != "RETURN" {
                return Err("expected RETURN".into());
            }
            self.space()?;
            self.expect(b'(', "return options")?;
            while self.peek() != Some(b')') {
                if !returns.is_empty() {
                    self.space()?;
                }
                let option = self.keyword()?;
                if option == "STATUS" {
                    self.space()?;
                    status = self.status_items()?;
                }
                returns.push(option);
                if returns.len() > 20 {
                    return Err("too many return options".into());
                }
            }
            self.i += 1;
        }
        Ok(Body::List {
            reference,
            patterns,
            select,
            returns,
            status,
            lsub,
        })
    }

    /// A mailbox name, which may be the empty string `""`.
    fn mailbox_or_empty(&mut self) -> R<Vec<u8>> {
        self.astring()
    }

    fn status_items(&mut self) -> R<Vec<StatusItem>> {
        self.expect(b'(', "status items in parentheses")?;
        let mut items = Vec::new();
        while self.peek() != Some(b')') {
            if !items.is_empty() {
                self.space()?;
            }
            items.push(match self.keyword()?.as_str() {
                "MESSAGES" => StatusItem::Messages,
                "RECENT" => StatusItem::Recent,
                "UIDNEXT" => StatusItem::UidNext,
                "UIDVALIDITY" => StatusItem::UidValidity,
                "UNSEEN" => StatusItem::Unseen,
                "DELETED" => StatusItem::Deleted,
                "SIZE" => StatusItem::Size,
                "HIGHESTMODSEQ" => StatusItem::HighestModseq,
                other => return Err(format!("unknown status item {other}")),
            });
            if items.len() > 20 {
                return Err("too many status items".into());
            }
        }
        self.i += 1;
        Ok(items)
    }

    fn append(&mut self) -> R<Body> {
        self.space()?;
        let mailbox = self.mailbox()?;
        self.space()?;
        let mut flags = Vec::new();
        if self.peek() == Some(b'(') {
            flags = self.flag_list(false)?;
            self.space()?;
        }
        let mut date = None;
        if self.peek() == Some(b'"') {
            date = Some(String::from_utf8_lossy(&self.quoted()?).into_owned());
            self.space()?;
        }
        // A UTF8 (RFC 6855) wrapper around the literal.
        let message = if self.peek_word("UTF8") {
            self.i += 4;
            self.space()?;
            self.expect(b'(', "UTF8 (literal)")?;
            let m = self.literal()?;
            self.expect(b')', "the end of UTF8 (literal)")?;
            m
        } else {
            self.literal()?
        };
        Ok(Body::Append {
            mailbox,
            flags,
            date,
            message,
        })
    }

    fn copy(&mut self, uid: bool, is_move: bool) -> R<Body> {
        self.space()?;
        let set = self.sequence_set()?;
        self.space()?;
        let mailbox = self.mailbox()?;
        Ok(if is_move {
            Body::Move { uid, set, mailbox }
        } else {
            Body::Copy { uid, set, mailbox }
        })
    }

    fn store(&mut self, uid: bool) -> R<Body> {
        self.space()?;
        let set = self.sequence_set()?;
        self.space()?;
        let mut unchanged_since = None;
        if self.peek() == Some(b'(') {
            self.i += 1;
            if self.keyword()? != "UNCHANGEDSINCE" {
                return Err("the only store modifier is UNCHANGEDSINCE".into());
            }
            self.space()?;
            unchanged_since = Some(self.number()?);
            self.expect(b')', "the end of the store modifiers")?;
            self.space()?;
        }
        let mode = match self.peek() {
            Some(b'+') => {
                self.i += 1;
                StoreMode::Add
            }
            Some(b'-') => {
                self.i += 1;
                StoreMode::Remove
            }
            _ => StoreMode::Replace,
        };
        let what = self.keyword()?;
        let silent = match what.as_str() {
            "FLAGS" => false,
            "FLAGS.SILENT" => true,
            other => return Err(format!("STORE changes FLAGS, not {other}")),
        };
        self.space()?;
        let flags = if self.peek() == Some(b'(') && self.s.get(self.i + 1) == Some(&b')') {
            self.i += 2;
            Vec::new()
        } else {
            self.flag_list(true)?
        };
        Ok(Body::Store {
            uid,
            set,
            mode,
            silent,
            flags,
            unchanged_since,
        })
    }

    fn fetch(&mut self, uid: bool) -> R<Body> {
        self.space()?;
        let set = self.sequence_set()?;
        self.space()?;
        let mut items = Vec::new();
        if self.peek() == Some(b'(') {
            self.i += 1;
            while self.peek() != Some(b')') {
                if !items.is_empty() {
                    self.space()?;
                }
                self.fetch_item(&mut items)?;
                if items.len() > 100 {
                    return Err("too many fetch items".into());
                }
            }
            self.i += 1;
        } else {
            self.fetch_item(&mut items)?;
        }
        let (mut changed_since, mut vanished) = (None, false);
        if self.peek() == Some(b' ') {
            self.i += 1;
            self.expect(b'(', "fetch modifiers")?;
            while self.peek() != Some(b')') {
                if self.peek() == Some(b' ') {
                    self.i += 1;
                }
                match self.keyword()?.as_str() {
                    "CHANGEDSINCE" => {
                        self.space()?;
                        changed_since = Some(self.number()?);
                    }
                    "VANISHED" => vanished = true,
                    other => return Err(format!("unknown fetch modifier {other}")),
                }
            }
            self.i += 1;
        }
        Ok(Body::Fetch {
            uid,
            set,
            items,
            changed_since,
            vanished,
        })
    }

    fn fetch_item(&mut self, items: &mut Vec<FetchItem>) -> R<()> {
        // The name runs up to `[`, a space or a parenthesis.
        let start = self.i;
        while self.peek().is_some_and(|b| is_atom_char(b) && b != b'[') {
            self.i += 1;
        }
        let name = String::from_utf8_lossy(self.s.get(start..self.i).unwrap_or_default())
            .to_ascii_uppercase();
        match name.as_str() {
            "ALL" => items.extend([
                FetchItem::Flags,
                FetchItem::InternalDate,
                FetchItem::Rfc822Size,
                FetchItem::Envelope,
            ]),
            "FAST" => items.extend([
                FetchItem::Flags,
                FetchItem::InternalDate,
                FetchItem::Rfc822Size,
            ]),
            "FULL" => items.extend([
                FetchItem::Flags,
                FetchItem::InternalDate,
                FetchItem::Rfc822Size,
                FetchItem::Envelope,
                FetchItem::Body,
            ]),
            "ENVELOPE" => items.push(FetchItem::Envelope),
            "FLAGS" => items.push(FetchItem::Flags),
            "INTERNALDATE" => items.push(FetchItem::InternalDate),
            "RFC822.SIZE" => items.push(FetchItem::Rfc822Size),
            "RFC822" => items.push(FetchItem::Rfc822),
            "RFC822.HEADER" => items.push(FetchItem::Rfc822Header),
            "RFC822.TEXT" => items.push(FetchItem::Rfc822Text),
            "BODYSTRUCTURE" => items.push(FetchItem::BodyStructure),
            "UID" => items.push(FetchItem::Uid),
            "MODSEQ" => items.push(FetchItem::Modseq),
            "BODY" if self.peek() != Some(b'[') => items.push(FetchItem::Body),
            "BODY" | "BODY.PEEK" | "BINARY" | "BINARY.PEEK" => {
                let binary = name.starts_with("BINARY");
                let section = self.section(binary)?;
                let partial = self.partial()?;
                items.push(FetchItem::Section {
                    section,
                    peek: name.ends_with(".PEEK"),
                    binary,
                    partial,
                });
            }
            "BINARY.SIZE" => {
                let section = self.section(true)?;
                items.push(FetchItem::BinarySize(section.part));
            }
            "" => return Err("expected a fetch item".into()),
            other => return Err(format!("unknown fetch item {other}")),
        }
        Ok(())
    }

    /// `[1.2.HEADER.FIELDS (From To)]`; BINARY sections are part numbers only.
    fn section(&mut self, binary: bool) -> R<Section> {
        self.expect(b'[', "a section in brackets")?;
        let mut section = Section::default();
        loop {
            if self.peek().is_some_and(|b| b.is_ascii_digit()) {
                section.part.push(self.nz_number()?);
                if section.part.len() > 32 {
                    return Err("a section nests too deep".into());
                }
                if self.peek() == Some(b'.') {
                    self.i += 1;
                    continue;
                }
            }
            break;
        }
        if self.peek() != Some(b']') {
            if binary {
                return Err("a BINARY section is part numbers only".into());
            }
            let start = self.i;
            while self
                .peek()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'.')
            {
                self.i += 1;
            }
            let text = String::from_utf8_lossy(self.s.get(start..self.i).unwrap_or_default())
                .to_ascii_uppercase();
            section.text = match text.as_str() {
                "HEADER" => SectionText::Header,
                "TEXT" => SectionText::Text,
                "MIME" if !section.part.is_empty() => SectionText::Mime,
                "HEADER.FIELDS" | "HEADER.FIELDS.NOT" => {
                    self.space()?;
                    self.expect(b'(', "header field names in parentheses")?;
                    let mut names = Vec::new();
                    while self.peek() != Some(b')') {
                        if !names.is_empty() {
                            self.space()?;
                        }
                        names.push(String::from_utf8_lossy(&self.astring()?).to_ascii_lowercase());
                        if names.len() > 100 {
                            return Err("too many header fields".into());
                        }
                    }
                    self.i += 1;
                    if text == "HEADER.FIELDS" {
                        SectionText::HeaderFields(names)
                    } else {
                        SectionText::HeaderFieldsNot(names)
                    }
                }
                _ => return Err(format!("unknown section {text}")),
            };
        }
        self.expect(b']', "the end of the section")?;
        Ok(section)
    }

    /// `<offset.length>`.
    fn partial(&mut self) -> R<Option<(u32, u32)>> {
        if self.peek() != Some(b'<') {
            return Ok(None);
        }
        self.i += 1;
        let offset = u32::try_from(self.number()?).map_err(|_| "an offset out of range")?;
        self.expect(b'.', "offset.length")?;
        let length = u32::try_from(self.number()?).map_err(|_| "a length out of range")?;
        self.expect(b'>', "the end of offset.length")?;
        Ok(Some((offset, length)))
    }

    fn search(&mut self, uid: bool) -> R<Body> {
        let (mut returns, mut esearch, mut charset) = (Vec::new(), false, None);
        self.space()?;
        if self.peek_word("RETURN") {
            self.i += 6;
            self.space()?;
            self.expect(b'(', "return options")?;
            esearch = true;
            while self.peek() != Some(b')') {
                if !returns.is_empty() {
                    self.space()?;
                }
                returns.push(self.keyword()?);
                if returns.len() > 10 {
                    return Err("too many return options".into());
                }
            }
            self.i += 1;
            self.space()?;
        }
        if self.peek_word("CHARSET") {
            self.i += 7;
            self.space()?;
            charset = Some(String::from_utf8_lossy(&self.astring()?).to_ascii_uppercase());
            self.space()?;
        }
        let mut keys = vec![self.search_key(0)?];
        while self.peek() == Some(b' ') {
            self.i += 1;
            keys.push(self.search_key(0)?);
            if keys.len() > 1000 {
                return Err("too many search keys".into());
            }
        }
        let key = if keys.len() == 1 {
            keys.pop().unwrap_or(SearchKey::All)
        } else {
            SearchKey::And(keys)
        };
        Ok(Body::Search {
            uid,
            returns,
            esearch,
            charset,
            key,
        })
    }

    fn date(&mut self) -> R<i64> {
        let quoted = self.peek() == Some(b'"');
        if quoted {
            self.i += 1;
        }
        let start = self.i;
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            self.i += 1;
        }
        let text =
            String::from_utf8_lossy(self.s.get(start..self.i).unwrap_or_default()).into_owned();
        if quoted {
            self.expect(b'"', "the end of a quoted date")?;
        }
        day_number(&text).ok_or_else(|| format!("`{text}` is not a date like 1-Feb-2026"))
    }

    fn search_key(&mut self, depth: usize) -> R<SearchKey> {
        if depth > MAX_DEPTH {
            return Err("search keys nest too deep".into());
        }
        if self.peek() == Some(b'(') {
            self.i += 1;
            let mut keys = vec![self.search_key(depth + 1)?];
            while self.peek() == Some(b' ') {
                self.i += 1;
                keys.push(self.search_key(depth + 1)?);
                if keys.len() > 1000 {
                    return Err("too many search keys".into());
                }
            }
            self.expect(b')', "the end of a parenthesised search")?;
            return Ok(if keys.len() == 1 {
                keys.pop().unwrap_or(SearchKey::All)
            } else {
                SearchKey::And(keys)
            });
        }
        if self
            .peek()
            .is_some_and(|b| b.is_ascii_digit() || b == b'*' || b == b'$')
        {
            return Ok(SearchKey::Sequence(self.sequence_set()?));
        }
        let flag = |f: &str, has: bool| Ok(SearchKey::Flag(Flag(f.to_string()), has));
        let word = self.keyword()?;
        match word.as_str() {
            "ALL" => Ok(SearchKey::All),
            "ANSWERED" => flag("\\Answered", true),
            "DELETED" => flag("\\Deleted", true),
            "DRAFT" => flag("\\Draft", true),
            "FLAGGED" => flag("\\Flagged", true),
            "SEEN" => flag("\\Seen", true),
            "UNANSWERED" => flag("\\Answered", false),
            "UNDELETED" => flag("\\Deleted", false),
            "UNDRAFT" => flag("\\Draft", false),
            "UNFLAGGED" => flag("\\Flagged", false),
            "UNSEEN" => flag("\\Seen", false),
            "NEW" => Ok(SearchKey::New),
            "OLD" => Ok(SearchKey::Old),
            "RECENT" => Ok(SearchKey::Recent),
            "KEYWORD" | "UNKEYWORD" => {
                self.space()?;
                let k = self.atom()?;
                Ok(SearchKey::Flag(Flag(k), word == "KEYWORD"))
            }
            "BCC" | "CC" | "FROM" | "SUBJECT" | "TO" => {
                self.space()?;
                Ok(SearchKey::Header(
                    word.to_ascii_lowercase(),
                    self.astring()?,
                ))
            }
            "HEADER" => {
                self.space()?;
                let field = String::from_utf8_lossy(&self.astring()?).to_ascii_lowercase();
                self.space()?;
                Ok(SearchKey::Header(field, self.astring()?))
            }
            "BODY" => {
                self.space()?;
                Ok(SearchKey::Body(self.astring()?))
            }
            "TEXT" => {
                self.space()?;
                Ok(SearchKey::Text(self.astring()?))
            }
            "BEFORE" | "ON" | "SINCE" | "SENTBEFORE" | "SENTON" | "SENTSINCE" => {
                self.space()?;
                let d = self.date()?;
                Ok(match word.as_str() {
                    "BEFORE" => SearchKey::Before(d),
                    "ON" => SearchKey::On(d),
                    "SINCE" => SearchKey::Since(d),
                    "SENTBEFORE" => SearchKey::SentBefore(d),
                    "SENTON" => SearchKey::SentOn(d),
                    _ => SearchKey::SentSince(d),
                })
            }
            "LARGER" | "SMALLER" => {
                self.space()?;
                let n = self.number()?;
                Ok(if word == "LARGER" {
                    SearchKey::Larger(n)
                } else {
                    SearchKey::Smaller(n)
                })
            }
            "UID" => {
                self.space()?;
                Ok(SearchKey::Uid(self.sequence_set()?))
            }
            "NOT" => {
                self.space()?;
                Ok(SearchKey::Not(Box::new(self.search_key(depth + 1)?)))
            }
            "OR" => {
                self.space()?;
                let a = self.search_key(depth + 1)?;
                self.space()?;
                let b = self.search_key(depth + 1)?;
                Ok(SearchKey::Or(Box::new(a), Box::new(b)))
            }
            "MODSEQ" => {
                self.space()?;
                // An entry name and type may come first (RFC 7162); they change nothing here.
                if self.peek() == Some(b'"') {
                    self.quoted()?;
                    self.space()?;
                    self.keyword()?;
                    self.space()?;
                }
                Ok(SearchKey::Modseq(self.number()?))
            }
            other => Err(format!("unknown search key {other}")),
        }
    }
}

/// `1-Feb-2026` as days since 1970-01-01.
pub fn day_number(text: &str) -> Option<i64> {
    let mut parts = text.split('-');
    let day: i64 = parts.next()?.parse().ok()?;
    let month = parts.next()?;
    let year: i64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let month = i64::try_from(MONTHS.iter().position(|m| m.eq_ignore_ascii_case(month))?).ok()? + 1;
    // The store's reader of calendar days (which refuses 31 February), as days.
    officebox_store::date::parse_day(&format!("{year:04}-{month:02}-{day:02}"))
        .map(|secs| secs / 86_400)
}

/// An APPEND date-time (`" 7-Jul-1996 02:44:25 -0700"`) as Unix seconds; `None` when
/// it is not one.
pub fn date_time(text: &str) -> Option<i64> {
    let mut words = text.trim_start().split(' ');
    let (date, time, zone) = (words.next()?, words.next()?, words.next()?);
    if words.next().is_some() {
        return None;
    }
    let days = day_number(date)?;
    let mut hms = time
        .split(':')
        .map(|n| (n.len() == 2).then(|| n.parse::<i64>().ok()).flatten());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    if hms.next().is_some() || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let sign = match zone.as_bytes().first() {
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => return None,
    };
    let digits = zone.get(1..).filter(|d| d.len() == 4)?;
    let hhmm: i64 = digits.parse().ok()?;
    let offset = sign * (hhmm / 100 * 3600 + hhmm % 100 * 60);
    Some(days * 86_400 + h * 3600 + m * 60 + s - offset)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn append_dates_are_read_with_their_zone() {
        assert_eq!(date_time("07-Dec-2026 10:00:00 +0000"), Some(1_796_637_600));
        assert_eq!(date_time(" 7-Dec-2026 11:30:00 +0130"), Some(1_796_637_600));
        assert_eq!(date_time("07-Dec-2026 02:00:00 -0800"), Some(1_796_637_600));
        for bad in [
            "07-Dec-2026 10:00 +0000",
            "07-Dec-2026 24:00:00 +0000",
            "31-Feb-2026 10:00:00 +0000",
            "07-Dec-2026 10:00:00 0000",
            "07-Dec-2026 10:00:00 +00",
            "07-Dec-2026 10:00:00 +0000 x",
            "",
        ] {
            assert_eq!(date_time(bad), None, "{bad}");
        }
    }

    fn ok(s: &str) -> Body {
        parse(s.as_bytes())
            .unwrap_or_else(|e| panic!("{s:?}: {e}"))
            .body
    }

    fn bad(s: &[u8]) -> ParseError {
        parse(s).expect_err(&String::from_utf8_lossy(s))
    }

    #[test]
    fn simple_commands_and_their_tags() {
        let c = parse(b"a001 capability\r\n").unwrap();
        assert_eq!((c.tag.as_str(), c.body), ("a001", Body::Capability));
        assert_eq!(ok("x NOOP\r\n"), Body::Noop);
        assert_eq!(ok("x idle\r\n"), Body::Idle);
        assert_eq!(
            ok("x LOGIN alice \"pa ss\\\"w\"\r\n"),
            Body::Login {
                user: b"alice".to_vec(),
                password: b"pa ss\"w".to_vec()
            }
        );
        assert_eq!(
            ok("x LOGIN {5}\r\nalice {4+}\r\npass\r\n"),
            Body::Login {
                user: b"alice".to_vec(),
                password: b"pass".to_vec()
            }
        );
        assert_eq!(
            ok("x AUTHENTICATE PLAIN AGFsaWNlAHB3\r\n"),
            Body::Authenticate {
                mechanism: "PLAIN".into(),
                initial: Some(b"AGFsaWNlAHB3".to_vec())
            }
        );
        assert_eq!(
            ok("x AUTHENTICATE plain =\r\n"),
            Body::Authenticate {
                mechanism: "PLAIN".into(),
                initial: Some(Vec::new())
            }
        );
        assert_eq!(
            ok("x ENABLE IMAP4rev2 condstore\r\n"),
            Body::Enable(vec!["IMAP4REV2".into(), "CONDSTORE".into()])
        );
    }

    #[test]
    fn select_with_qresync_and_mailbox_names() {
        assert_eq!(
            ok("x SELECT inbox\r\n"),
            Body::Select {
                mailbox: b"INBOX".to_vec(),
                read_only: false,
                condstore: false,
                qresync: None
            }
        );
        assert_eq!(
            ok(
                "x EXAMINE \"Sent Items\" (QRESYNC (67890007 20050715194045000 41,43:211,214:541))\r\n"
            ),
            Body::Select {
                mailbox: b"Sent Items".to_vec(),
                read_only: true,
                condstore: false,
                qresync: Some(Qresync {
                    uidvalidity: 67_890_007,
                    modseq: 20_050_715_194_045_000,
                    known_uids: Some(SequenceSet::Ranges(vec![
                        (Seq::Number(41), Seq::Number(41)),
                        (Seq::Number(43), Seq::Number(211)),
                        (Seq::Number(214), Seq::Number(541)),
                    ]))
                })
            }
        );
    }

    #[test]
    fn list_in_both_forms() {
        assert_eq!(
            ok("x LIST \"\" *\r\n"),
            Body::List {
                reference: Vec::new(),
                patterns: vec![b"*".to_vec()],
                select: vec![],
                returns: vec![],
                status: vec![],
                lsub: false
            }
        );
        let Body::List {
            select,
            patterns,
            returns,
            status,
            ..
        } = ok(
            "x LIST (SPECIAL-USE) \"\" (% \"Sent\") RETURN (SPECIAL-USE STATUS (MESSAGES UNSEEN))\r\n",
        )
        else {
            panic!()
        };
        assert_eq!(select, vec!["SPECIAL-USE"]);
        assert_eq!(patterns, vec![b"%".to_vec(), b"Sent".to_vec()]);
        assert_eq!(returns, vec!["SPECIAL-USE", "STATUS"]);
        assert_eq!(status, vec![StatusItem::Messages, StatusItem::Unseen]);
        assert!(matches!(
            ok("x LSUB \"\" *\r\n"),
            Body::List { lsub: true, .. }
        ));
    }

    #[test]
    fn append_with_flags_date_and_literal() {
        assert_eq!(
            ok(
                "x APPEND Drafts (\\Seen $Label1) \"07-Dec-2026 10:00:00 +0000\" {10+}\r\nHello\r\nBye\r\n"
            ),
            Body::Append {
                mailbox: b"Drafts".to_vec(),
                flags: vec![Flag("\\Seen".into()), Flag("$Label1".into())],
                date: Some("07-Dec-2026 10:00:00 +0000".into()),
                message: b"Hello\r\nBye".to_vec()
            }
        );
        assert!(
            bad(b"x APPEND INBOX {20}\r\nshort\r\n")
                .message
                .contains("shorter")
        );
    }

    #[test]
    fn fetch_items_sections_and_partials() {
        let Body::Fetch {
            uid,
            set,
            items,
            changed_since,
            vanished,
        } = ok(
            "x UID FETCH 1:* (FLAGS BODY.PEEK[1.2.HEADER.FIELDS (From To)]<0.512> BODY[] RFC822.SIZE) (CHANGEDSINCE 12345 VANISHED)\r\n",
        )
        else {
            panic!()
        };
        assert!(uid && vanished);
        assert_eq!(changed_since, Some(12_345));
        assert_eq!(set, SequenceSet::Ranges(vec![(Seq::Number(1), Seq::Last)]));
        assert_eq!(
            items,
            vec![
                FetchItem::Flags,
                FetchItem::Section {
                    section: Section {
                        part: vec![1, 2],
                        text: SectionText::HeaderFields(vec!["from".into(), "to".into()])
                    },
                    peek: true,
                    binary: false,
                    partial: Some((0, 512))
                },
                FetchItem::Section {
                    section: Section::default(),
                    peek: false,
                    binary: false,
                    partial: None
                },
                FetchItem::Rfc822Size,
            ]
        );
        let Body::Fetch { items, .. } = ok("x FETCH 2 fast\r\n") else {
            panic!()
        };
        assert_eq!(items.len(), 3);
        let Body::Fetch { items, .. } = ok("x FETCH 2 BODY\r\n") else {
            panic!()
        };
        assert_eq!(items, vec![FetchItem::Body]);
        assert!(
            bad(b"x FETCH 1 BODY[2.MIME\r\n")
                .message
                .contains("end of the section")
        );
        assert!(bad(b"x FETCH 0 FLAGS\r\n").message.contains("sequence set"));
    }

    #[test]
    fn store_copy_move_expunge() {
        assert_eq!(
            ok("x UID STORE 1:3,7 +FLAGS.SILENT (\\Deleted \\seen)\r\n"),
            Body::Store {
                uid: true,
                set: SequenceSet::Ranges(vec![
                    (Seq::Number(1), Seq::Number(3)),
                    (Seq::Number(7), Seq::Number(7))
                ]),
                mode: StoreMode::Add,
                silent: true,
                flags: vec![Flag("\\Deleted".into()), Flag("\\Seen".into())],
                unchanged_since: None
            }
        );
        assert!(matches!(
            ok("x STORE 1 (UNCHANGEDSINCE 5) FLAGS ()\r\n"),
            Body::Store { mode: StoreMode::Replace, unchanged_since: Some(5), ref flags, .. } if flags.is_empty()
        ));
        assert!(matches!(
            ok("x UID MOVE 4:* Trash\r\n"),
            Body::Move { uid: true, .. }
        ));
        assert!(matches!(
            ok("x COPY $ Archive\r\n"),
            Body::Copy {
                set: SequenceSet::Saved,
                ..
            }
        ));
        assert!(matches!(
            ok("x UID EXPUNGE 3:4\r\n"),
            Body::Expunge(Some(_))
        ));
    }

    #[test]
    fn search_keys() {
        let Body::Search {
            uid,
            key,
            esearch,
            returns,
            charset,
        } = ok(
            "x UID SEARCH RETURN (MIN COUNT) CHARSET UTF-8 OR FROM alice (SUBJECT \"fax\" UNSEEN) NOT 1:5 SINCE 1-Feb-2026 larger 10000\r\n",
        )
        else {
            panic!()
        };
        assert!(uid && esearch);
        assert_eq!(returns, vec!["MIN", "COUNT"]);
        assert_eq!(charset.as_deref(), Some("UTF-8"));
        let SearchKey::And(keys) = key else { panic!() };
        assert_eq!(keys.len(), 4);
        assert_eq!(
            keys[0],
            SearchKey::Or(
                Box::new(SearchKey::Header("from".into(), b"alice".to_vec())),
                Box::new(SearchKey::And(vec![
                    SearchKey::Header("subject".into(), b"fax".to_vec()),
                    SearchKey::Flag(Flag("\\Seen".into()), false)
                ]))
            )
        );
        assert_eq!(keys[2], SearchKey::Since(day_number("1-Feb-2026").unwrap()));
        assert_eq!(keys[3], SearchKey::Larger(10_000));
    }

    #[test]
    fn dates_are_days_since_the_epoch() {
        assert_eq!(day_number("1-Jan-1970"), Some(0));
        assert_eq!(day_number("07-dec-2026"), Some(20_794));
        assert_eq!(day_number("29-Feb-2000"), Some(11_016));
        for no in [
            "",
            "1-Foo-2020",
            "32-Jan-2020",
            "1-Jan",
            "x-Jan-2020",
            "1-Jan-2020-1",
        ] {
            assert_eq!(day_number(no), None, "{no}");
        }
    }

    #[test]
    fn hostile_input_is_refused_in_words() {
        // Nesting past the limit, a long sequence set, 8-bit in atoms, no tag, junk.
        let deep = format!("x SEARCH {}ALL{}\r\n", "(".repeat(100), ")".repeat(100));
        assert!(bad(deep.as_bytes()).message.contains("too deep"));
        let mut nots = "x SEARCH ".to_string();
        for _ in 0..100 {
            nots.push_str("NOT ");
        }
        nots.push_str("ALL\r\n");
        assert!(bad(nots.as_bytes()).message.contains("too deep"));
        let many = format!("x FETCH {} FLAGS\r\n", vec!["1"; MAX_RANGES + 1].join(","));
        assert!(bad(many.as_bytes()).message.contains("ranges"));
        assert!(bad("x SELECT caf\u{e9}\r\n".as_bytes()).tag.is_some());
        assert_eq!(bad(b"\r\n").tag, None);
        assert_eq!(bad(b"+ NOOP\r\n").tag, None);
        assert!(bad(b"x FOO\r\n").message.contains("unknown command FOO"));
        assert!(
            bad(b"x NOOP extra\r\n")
                .message
                .contains("end of the command")
        );
        assert!(bad(b"x LOGIN \"open\r\n").message.contains("not closed"));
        assert!(bad(b"x FETCH 1 (FLAGS\r\n").tag.is_some());
        assert!(bad(b"x FETCH 99999999999 FLAGS\r\n").tag.is_some());
        // Every prefix of a good command is refused, not a panic.
        let good = b"x UID FETCH 1:* (BODY.PEEK[1.HEADER.FIELDS (A B)]<0.5>) (CHANGEDSINCE 1)\r\n";
        for n in 0..good.len() {
            let _ = parse(&good[..n]);
        }
    }
}
