//! Where one IMAP command ends in the bytes a client sends: a line, and for each literal
//! the line announces (`{n}`, `{n+}` or `~{n}`), its `n` bytes and the rest of the
//! command after them. Nothing is buffered beyond the limits: a line longer than
//! [`Limits::line`] or a literal larger than [`Limits::literal`] is reported as soon as
//! it is announced (or the line has run past the limit), so that a client sending a
//! gigabyte costs the server no more than the limit.
//!
//! A synchronizing literal (`{n}`) waits for the server's `+` before the client sends
//! it: [`Step::GoAhead`] says when. A non-synchronizing one (`{n+}`, LITERAL+) comes
//! right away; one too large cannot be skipped safely, so the connection ends.

/// How much one command may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of command text between literals (one line), CRLF included.
    pub line: usize,
    /// Bytes of one literal (a message being appended is one).
    pub literal: usize,
    /// Bytes of the whole command, literals included.
    pub command: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            line: 64 * 1024,
            literal: 64 * 1024 * 1024,
            command: 65 * 1024 * 1024,
        }
    }
}

/// What the bytes so far amount to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// More bytes are needed.
    NeedMore,
    /// The client announced a synchronizing literal and waits: send `+ ...`.
    GoAhead,
    /// A whole command (its bytes, CRLF included, literals inline as sent).
    Command(Vec<u8>),
    /// A synchronizing literal too large: answer the tag with BAD; the client sends no
    /// literal, and the command is dropped (reading goes on after its line).
    LiteralTooLarge { tag: Option<String>, size: u64 },
    /// The line ran past the limit, a non-synchronizing literal is too large, or the
    /// command as a whole is: the connection cannot go on (BYE).
    Overflow { tag: Option<String> },
}

/// The command being framed: bytes so far, and how far they are understood.
#[derive(Debug)]
pub struct Framer {
    limits: Limits,
    buf: Vec<u8>,
    /// Bytes of `buf` known to belong to the command so far (lines and literals).
    done: usize,
    /// Where the current line starts in `buf`.
    line_start: usize,
    /// Literal bytes still to come before the line goes on.
    literal_left: usize,
}

impl Framer {
    pub fn new(limits: Limits) -> Framer {
        Framer {
            limits,
            buf: Vec::new(),
            done: 0,
            line_start: 0,
            literal_left: 0,
        }
    }

    /// Bytes read from the client.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held (for the caller's own limit on unread input, e.g. during IDLE).
    pub fn held(&self) -> usize {
        self.buf.len()
    }

    /// Takes the bytes held as they are (the connection leaves command mode, e.g. the
    /// rest of an AUTHENTICATE exchange or IDLE's DONE), starting afresh.
    pub fn take_raw_line(&mut self) -> Option<Vec<u8>> {
        let end = self.buf.windows(2).position(|w| w == b"\r\n")? + 2;
        let line: Vec<u8> = self.buf.drain(..end).collect();
        self.reset_position();
        Some(line)
    }

    fn reset_position(&mut self) {
        self.done = 0;
        self.line_start = 0;
        self.literal_left = 0;
    }

    /// The tag of the command being framed, if its line has one yet.
    fn tag(&self) -> Option<String> {
        let end = self
            .buf
            .iter()
            .position(|&b| b == b' ' || b == b'\r' || b == b'\n')?;
        let tag = self.buf.get(..end)?;
        (!tag.is_empty() && tag.len() <= 64 && tag.iter().all(|&b| is_tag_char(b)))
            .then(|| String::from_utf8_lossy(tag).into_owned())
    }

    /// What the bytes so far amount to; call again after [`Step::GoAhead`],
    /// [`Step::Command`] and [`Step::LiteralTooLarge`] (more may be held).
    pub fn step(&mut self) -> Step {
        loop {
            if self.literal_left > 0 {
                let have = self.buf.len().saturating_sub(self.done);
                if have < self.literal_left {
                    self.literal_left -= have;
                    self.done = self.buf.len();
                    return Step::NeedMore;
                }
                self.done += self.literal_left;
                self.literal_left = 0;
                self.line_start = self.done;
            }
            // The rest of the current line.
            let from = self.done.max(self.line_start);
            let Some(rel) = self
                .buf
                .get(from..)
                .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
            else {
                self.done = self.buf.len();
                if self.buf.len() - self.line_start > self.limits.line {
                    return Step::Overflow { tag: self.tag() };
                }
                return Step::NeedMore;
            };
            let line_end = from + rel + 1;
            if line_end - self.line_start > self.limits.line || line_end > self.limits.command {
                return Step::Overflow { tag: self.tag() };
            }
            let line = self.buf.get(self.line_start..line_end).unwrap_or_default();
            match literal_announced(line) {
                None => {
                    let command: Vec<u8> = self.buf.drain(..line_end).collect();
                    self.reset_position();
                    return Step::Command(command);
                }
                Some((size, sync)) => {
                    let too_large = usize::try_from(size).map_or(true, |s| {
                        s > self.limits.literal || line_end + s > self.limits.command
                    });
                    if too_large {
                        if !sync {
                            return Step::Overflow { tag: self.tag() };
                        }
                        let tag = self.tag();
                        self.buf.drain(..line_end);
                        self.reset_position();
                        return Step::LiteralTooLarge { tag, size };
                    }
                    self.done = line_end;
                    self.literal_left = usize::try_from(size).unwrap_or(0);
                    if self.literal_left == 0 {
                        self.line_start = self.done;
                    }
                    // (Called again, the literal's own bytes are awaited above: the
                    // announcement is read once.)
                    if sync && self.buf.len() == line_end {
                        // Nothing of it yet: the client waits for our go-ahead.
                        return Step::GoAhead;
                    }
                }
            }
        }
    }
}

/// A character a tag may have (any ASTRING-CHAR but `+`).
pub fn is_tag_char(b: u8) -> bool {
    b > b' ' && b < 0x7f && !b"(){%*\"\\+".contains(&b)
}

/// The literal a line ends with: `{n}` (synchronizing), `{n+}` or `{n-}` (not), with an
/// optional `~` before it (literal8); its size and whether the client waits.
fn literal_announced(line: &[u8]) -> Option<(u64, bool)> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let mut digits = inner.get(open + 1..)?;
    let mut sync = true;
    if let Some(d) = digits
        .strip_suffix(b"+")
        .or_else(|| digits.strip_suffix(b"-"))
    {
        digits = d;
        sync = false;
    }
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let size = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((size, sync))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn small() -> Limits {
        Limits {
            line: 100,
            literal: 50,
            command: 200,
        }
    }

    #[test]
    fn lines_and_literals_make_commands() {
        let mut f = Framer::new(small());
        f.push(b"a1 NOOP\r\na2 LOGIN {5}\r\n");
        assert_eq!(f.step(), Step::Command(b"a1 NOOP\r\n".to_vec()));
        assert_eq!(f.step(), Step::GoAhead);
        assert_eq!(f.step(), Step::NeedMore);
        f.push(b"al");
        assert_eq!(f.step(), Step::NeedMore);
        f.push(b"ice {3+}\r\nabc\r\na3 ");
        assert_eq!(
            f.step(),
            Step::Command(b"a2 LOGIN {5}\r\nalice {3+}\r\nabc\r\n".to_vec())
        );
        assert_eq!(f.step(), Step::NeedMore);
        f.push(b"LOGOUT\r\n");
        assert_eq!(f.step(), Step::Command(b"a3 LOGOUT\r\n".to_vec()));
    }

    #[test]
    fn a_literal_already_sent_needs_no_go_ahead_and_braces_inside_it_are_data() {
        let mut f = Framer::new(small());
        f.push(b"x APPEND INBOX {5+}\r\n{9}\r\n\r\n");
        assert_eq!(
            f.step(),
            Step::Command(b"x APPEND INBOX {5+}\r\n{9}\r\n\r\n".to_vec())
        );
    }

    #[test]
    fn too_much_is_refused_without_being_held() {
        let mut f = Framer::new(small());
        f.push(b"t1 APPEND INBOX {1000000000}\r\nt2 NOOP\r\n");
        assert_eq!(
            f.step(),
            Step::LiteralTooLarge {
                tag: Some("t1".into()),
                size: 1_000_000_000
            }
        );
        assert_eq!(f.step(), Step::Command(b"t2 NOOP\r\n".to_vec()));
        let mut f = Framer::new(small());
        f.push(b"t3 APPEND INBOX {1000000000+}\r\n");
        assert_eq!(
            f.step(),
            Step::Overflow {
                tag: Some("t3".into())
            }
        );
        let mut f = Framer::new(small());
        f.push(&[b'a'; 150]);
        assert_eq!(f.step(), Step::Overflow { tag: None });
        let mut f = Framer::new(small());
        f.push(b"t4 ");
        f.push(&[b'x'; 120]);
        assert_eq!(
            f.step(),
            Step::Overflow {
                tag: Some("t4".into())
            }
        );
    }

    #[test]
    fn announcements_are_read_strictly() {
        assert_eq!(literal_announced(b"a {12}\r\n"), Some((12, true)));
        assert_eq!(literal_announced(b"a {12+}\r\n"), Some((12, false)));
        assert_eq!(literal_announced(b"a ~{7}\r\n"), Some((7, true)));
        assert_eq!(literal_announced(b"a {0}\r\n"), Some((0, true)));
        for no in [
            &b"a {}\r\n"[..],
            b"a {1a}\r\n",
            b"a {12\r\n",
            b"a 12}\r\n",
            b"{99999999999999999999}\r\n",
        ] {
            assert_eq!(
                literal_announced(no),
                None,
                "{}",
                String::from_utf8_lossy(no)
            );
        }
    }
}
