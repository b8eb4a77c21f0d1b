#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Robustness of the IMAP server's readers of untrusted bytes, in the normal test suite:
//! deterministic (fixed seeds) and bounded (seconds in debug). The fuzz target
//! `fuzz/fuzz_targets/imap_command.rs` drives the same entry points without bounds.
//!
//! - commands built from IMAP's grammar with hostile parts (literals of every kind,
//!   parentheses nested deep, huge and many-ranged sequence sets, 8-bit bytes in atoms,
//!   deep NOT/OR search keys), then mutated, are framed (`frame::Framer`, fed in random
//!   pieces) and parsed (`command::parse`) without a panic, each quickly;
//! - the framer never holds more than its limits, whatever is announced;
//! - messages with broken MIME (unclosed boundaries, nesting, bad encodings) are read for
//!   every section, BODYSTRUCTURE and ENVELOPE without a panic.

use std::time::{Duration, Instant};

use officebox_mail::imap::command::{self, Body, FetchItem};
use officebox_mail::imap::frame::{Framer, Limits, Step};
use officebox_mail::imap::structure;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

const COMMANDS: &[&str] = &[
    "FETCH",
    "UID FETCH",
    "STORE",
    "UID STORE",
    "SEARCH",
    "UID SEARCH",
    "COPY",
    "MOVE",
    "UID MOVE",
    "SELECT",
    "EXAMINE",
    "LIST",
    "LSUB",
    "STATUS",
    "APPEND",
    "CREATE",
    "DELETE",
    "RENAME",
    "SUBSCRIBE",
    "ENABLE",
    "LOGIN",
    "AUTHENTICATE",
    "EXPUNGE",
    "UID EXPUNGE",
    "GETQUOTAROOT",
    "GETQUOTA",
    "ID",
    "IDLE",
    "NOOP",
];

const ATOMS: &[&str] = &[
    "BODY[]",
    "BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)]",
    "BINARY[1.2]",
    "BINARY.SIZE[1]",
    "BODYSTRUCTURE",
    "ENVELOPE",
    "FLAGS",
    "UID",
    "MODSEQ",
    "RFC822",
    "INTERNALDATE",
    "BODY[1.2.3.MIME]<0.100>",
    "BODY[TEXT]<4294967295.4294967295>",
    "ALL",
    "FAST",
    "FULL",
    "\\Seen",
    "\\Deleted",
    "$Junk",
    "+FLAGS",
    "-FLAGS.SILENT",
    "(UNCHANGEDSINCE 5)",
    "CHANGEDSINCE",
    "VANISHED",
    "INBOX",
    "NOT",
    "OR",
    "SUBJECT",
    "BODY",
    "TEXT",
    "HEADER",
    "SINCE",
    "1-Feb-2026",
    "99-Xyz-0",
    "LARGER",
    "18446744073709551616",
    "RETURN",
    "(MIN MAX)",
    "$",
    "*",
    "NIL",
    "\"\"",
    "CHARSET",
    "UTF-8",
    "X-UNKNOWN",
    "QRESYNC",
    "CONDSTORE",
    "IMAP4rev2",
    "UTF8=ACCEPT",
    "(MESSAGES UIDNEXT SIZE HIGHESTMODSEQ)",
];

/// A sequence set, sometimes enormous.
fn sequence_set(rng: &mut StdRng) -> String {
    let n = if rng.random_bool(0.1) {
        rng.random_range(1000..5000)
    } else {
        rng.random_range(1..5)
    };
    let mut parts = Vec::with_capacity(n);
    for _ in 0..n {
        let a: u64 = if rng.random_bool(0.1) {
            rng.random_range(0..u64::MAX)
        } else {
            rng.random_range(0..100_000)
        };
        parts.push(match rng.random_range(0..4) {
            0 => a.to_string(),
            1 => format!("{a}:*"),
            2 => format!("{a}:{}", rng.random_range(0..u32::MAX)),
            _ => "*".to_string(),
        });
    }
    parts.join(",")
}

/// Arguments: atoms, quoted strings, literals of every kind, lists nested at random.
fn argument(rng: &mut StdRng, depth: usize) -> Vec<u8> {
    match rng.random_range(0..9) {
        0 if depth < 200 => {
            let mut out = b"(".to_vec();
            for i in 0..rng.random_range(0..4) {
                if i > 0 {
                    out.push(b' ');
                }
                out.extend(argument(rng, depth + 1));
            }
            out.push(b')');
            out
        }
        1 => {
            // A literal: synchronizing, LITERAL+, or binary (~{n}).
            let len = rng.random_range(0..64);
            let kind = ["{%}", "{%+}", "~{%}"].choose(rng).unwrap();
            let mut out = kind.replace('%', &len.to_string()).into_bytes();
            out.extend_from_slice(b"\r\n");
            out.extend((0..len).map(|_| rng.random::<u8>()));
            out
        }
        2 => {
            let mut out = b"\"".to_vec();
            for _ in 0..rng.random_range(0..20) {
                out.push(*b"ab\\\"\x80 ".choose(rng).unwrap());
            }
            out.push(b'"');
            out
        }
        3 => sequence_set(rng).into_bytes(),
        4 => (0..rng.random_range(1..12))
            .map(|_| rng.random_range(0x21..=0xff))
            .collect(),
        5 if depth < 200 => {
            // Search keys nested deep.
            let mut out = Vec::new();
            for _ in 0..rng.random_range(1..60) {
                out.extend_from_slice(if rng.random_bool(0.5) {
                    b"NOT "
                } else {
                    b"OR ALL "
                });
            }
            out.extend_from_slice(b"ALL");
            out
        }
        _ => ATOMS.choose(rng).unwrap().as_bytes().to_vec(),
    }
}

fn command_bytes(rng: &mut StdRng) -> Vec<u8> {
    let mut out = format!(
        "a{} {}",
        rng.random_range(0..1000),
        COMMANDS.choose(rng).unwrap()
    )
    .into_bytes();
    for _ in 0..rng.random_range(0..6) {
        out.push(b' ');
        out.extend(argument(rng, 0));
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn mutate(rng: &mut StdRng, bytes: &mut Vec<u8>) {
    for _ in 0..rng.random_range(0..4) {
        if bytes.is_empty() {
            return;
        }
        let at = rng.random_range(0..bytes.len());
        match rng.random_range(0..4) {
            0 => bytes[at] = rng.random(),
            1 => bytes.truncate(at),
            2 => bytes.insert(at, *b"{}()[]<>\r\n\"\\~+*:,".choose(rng).unwrap()),
            _ => {
                bytes.remove(at);
            }
        }
    }
}

/// Frames `bytes` fed in random pieces; parses every command that comes out.
fn frame_and_parse(rng: &mut StdRng, bytes: &[u8], limits: Limits) {
    let mut framer = Framer::new(limits);
    let mut rest = bytes;
    while !rest.is_empty() {
        let n = rng.random_range(1..=rest.len().min(97));
        let (piece, after) = rest.split_at(n);
        framer.push(piece);
        rest = after;
        loop {
            assert!(
                framer.held() <= limits.command + 97,
                "the framer holds {} bytes",
                framer.held()
            );
            match framer.step() {
                Step::NeedMore => break,
                Step::GoAhead => {}
                Step::Command(c) => {
                    let t = Instant::now();
                    let parsed = command::parse(&c);
                    assert!(t.elapsed() < Duration::from_secs(1), "slow parse of {c:?}");
                    if let Ok(cmd) = parsed {
                        assert!(!cmd.tag.is_empty());
                    }
                }
                Step::LiteralTooLarge { .. } => {}
                Step::Overflow { .. } => return,
            }
        }
    }
}

#[test]
fn hostile_commands_are_framed_and_parsed_without_a_panic() {
    let limits = Limits {
        line: 4096,
        literal: 1024,
        command: 8192,
    };
    let started = Instant::now();
    for seed in 0..3u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        for _ in 0..1500 {
            let mut bytes = command_bytes(&mut rng);
            if rng.random_bool(0.5) {
                mutate(&mut rng, &mut bytes);
            }
            frame_and_parse(&mut rng, &bytes, limits);
        }
    }
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn announced_sizes_never_make_the_framer_hold_more_than_its_limits() {
    let limits = Limits::default();
    // A gigabyte literal, synchronizing: refused at once, nothing of it expected.
    let mut f = Framer::new(limits);
    f.push(b"a1 APPEND INBOX {1073741824}\r\n");
    assert!(matches!(
        f.step(),
        Step::LiteralTooLarge {
            size: 1_073_741_824,
            ..
        }
    ));
    // The same without waiting (LITERAL+): the connection cannot go on.
    let mut f = Framer::new(limits);
    f.push(b"a2 APPEND INBOX {1073741824+}\r\n");
    assert!(matches!(f.step(), Step::Overflow { .. }));
    // A line that never ends: cut off once it passes the limit, not buffered on.
    let mut f = Framer::new(limits);
    let chunk = vec![b'x'; 16 * 1024];
    let mut ended = false;
    for _ in 0..64 {
        f.push(&chunk);
        if matches!(f.step(), Step::Overflow { .. }) {
            ended = true;
            break;
        }
    }
    assert!(ended, "an unbounded line ends the connection");
    assert!(f.held() <= limits.line + chunk.len());
}

/// A MIME message, broken at random: nesting, boundaries, encodings.
fn message(rng: &mut StdRng, depth: usize) -> Vec<u8> {
    let mut out = b"From: a@x.test\r\nSubject: =?utf-8?B?w6k=?= =?bogus?Q?x?=\r\n".to_vec();
    if depth < 12 && rng.random_bool(0.6) {
        let boundary = format!("b{depth}{}", rng.random_range(0..3));
        out.extend(
            format!("Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n").bytes(),
        );
        for _ in 0..rng.random_range(0..4) {
            out.extend(format!("--{boundary}\r\n").bytes());
            out.extend(message(rng, depth + 1));
        }
        if rng.random_bool(0.7) {
            out.extend(format!("--{boundary}--\r\n").bytes());
        }
    } else if rng.random_bool(0.3) {
        out.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
        if depth < 12 {
            out.extend(message(rng, depth + 1));
        }
    } else {
        let cte = ["base64", "quoted-printable", "x-uuencode", "7bit", "binäry"]
            .choose(rng)
            .unwrap();
        out.extend(
            format!("Content-Type: text/plain\r\nContent-Transfer-Encoding: {cte}\r\n\r\n").bytes(),
        );
        out.extend(
            (0..rng.random_range(0..200))
                .map(|_| *b"AZaz09+/=\r\n ?_\x80\xff".choose(rng).unwrap()),
        );
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[test]
fn broken_messages_are_read_for_every_section_without_a_panic() {
    let fetch = command::parse(
        b"a FETCH 1 (BODY[] BODY[1] BODY[1.2] BODY[2.1.3.MIME] BODY[1.HEADER] BODY[1.TEXT] \
          BODY[HEADER.FIELDS (SUBJECT)] BODY[3.HEADER.FIELDS.NOT (FROM)] BINARY[1] BINARY[1.1.1] \
          BINARY[2]<5.10>)\r\n",
    )
    .unwrap();
    let Body::Fetch { items, .. } = fetch.body else {
        panic!("{fetch:?}");
    };
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..400 {
        let mut raw = message(&mut rng, 0);
        mutate(&mut rng, &mut raw);
        let mut tree = None;
        for item in &items {
            if let FetchItem::Section {
                section, binary, ..
            } = item
            {
                let _ = structure::section(&raw, &mut tree, section, *binary);
            }
        }
        let top = structure::parse(&raw);
        let mut out = Vec::new();
        structure::body_structure(&mut out, &raw, &top, true);
        structure::envelope(&mut out, &raw);
        assert!(!out.is_empty());
    }
}
