//! Bytes from an IMAP client: framed into commands (`frame::Framer`, the first byte
//! choosing where the input is cut into reads), each command parsed (`command::parse`),
//! and the input read as a message for every kind of section, BODYSTRUCTURE and
//! ENVELOPE.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use officebox_mail::imap::command::{self, Body, FetchItem};
use officebox_mail::imap::frame::{Framer, Limits, Step};
use officebox_mail::imap::structure;

fn items() -> &'static [FetchItem] {
    static ITEMS: OnceLock<Vec<FetchItem>> = OnceLock::new();
    ITEMS.get_or_init(|| {
        match command::parse(
            b"a FETCH 1 (BODY[] BODY[1] BODY[1.2.MIME] BODY[2.HEADER] BODY[1.TEXT] \
              BODY[HEADER.FIELDS (SUBJECT)] BINARY[1] BINARY[1.1]<3.9>)\r\n",
        ) {
            Ok(command::Command {
                body: Body::Fetch { items, .. },
                ..
            }) => items,
            _ => Vec::new(),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, bytes)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        line: 4096,
        literal: 4096,
        command: 16384,
    };
    let mut framer = Framer::new(limits);
    for piece in bytes.chunks(usize::from(cut).max(1)) {
        framer.push(piece);
        loop {
            assert!(framer.held() <= limits.command + 256);
            match framer.step() {
                Step::NeedMore => break,
                Step::Command(c) => {
                    let _ = command::parse(&c);
                }
                Step::Overflow { .. } => return,
                Step::GoAhead | Step::LiteralTooLarge { .. } => {}
            }
        }
    }
    let mut tree = None;
    for item in items() {
        if let FetchItem::Section {
            section, binary, ..
        } = item
        {
            let _ = structure::section(bytes, &mut tree, section, *binary);
        }
    }
    let top = structure::parse(bytes);
    let mut out = Vec::new();
    structure::body_structure(&mut out, bytes, &top, true);
    structure::envelope(&mut out, bytes);
});
