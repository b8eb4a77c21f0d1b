//! IMAP's modified UTF-7 (RFC 3501 5.1.3): how IMAP4rev1 clients write folder names
//! that are not ASCII ("Entwürfe" is `Entw&APw-rfe`). Clients that enable UTF8=ACCEPT or
//! IMAP4rev2 use UTF-8 instead; the server keeps names in UTF-8 and converts at the edge.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{GeneralPurpose, GeneralPurposeConfig, general_purpose};

/// Base64 with `,` for `/` and no padding.
fn engine() -> GeneralPurpose {
    let Ok(abc) =
        alphabet::Alphabet::new("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,")
    else {
        return general_purpose::STANDARD_NO_PAD;
    };
    GeneralPurpose::new(
        &abc,
        GeneralPurposeConfig::new()
            .with_encode_padding(false)
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone),
    )
}

/// A name in modified UTF-7.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut run: Vec<u16> = Vec::new();
    let flush = |run: &mut Vec<u16>, out: &mut String| {
        if run.is_empty() {
            return;
        }
        let bytes: Vec<u8> = run.iter().flat_map(|u| u.to_be_bytes()).collect();
        out.push('&');
        out.push_str(&engine().encode(bytes));
        out.push('-');
        run.clear();
    };
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut run, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut buf = [0u16; 2];
            run.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut run, &mut out);
    out
}

/// A name from modified UTF-7; `None` when it is not valid modified UTF-7 (then the
/// client meant the bytes as they are).
pub fn decode(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(rest.get(..amp)?);
        let after = rest.get(amp + 1..)?;
        let end = after.find('-')?;
        let encoded = after.get(..end)?;
        if encoded.is_empty() {
            out.push('&');
        } else {
            let bytes = engine().decode(encoded).ok()?;
            if bytes.len() % 2 != 0 {
                return None;
            }
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|p| <[u8; 2]>::try_from(p).map_or(0, u16::from_be_bytes))
                .collect();
            out.push_str(&String::from_utf16(&units).ok()?);
        }
        rest = after.get(end + 1..)?;
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_go_there_and_back() {
        for (utf8, utf7) in [
            ("INBOX", "INBOX"),
            ("Entwürfe", "Entw&APw-rfe"),
            ("Tom & Jerry", "Tom &- Jerry"),
            ("日本語", "&ZeVnLIqe-"),
            ("Ordner/Gelöscht", "Ordner/Gel&APY-scht"),
            ("🙂", "&2D3eQg-"),
        ] {
            assert_eq!(encode(utf8), utf7, "{utf8}");
            assert_eq!(decode(utf7).as_deref(), Some(utf8), "{utf7}");
        }
        assert_eq!(decode("a&"), None);
        assert_eq!(decode("a&ZeVn"), None);
        assert_eq!(decode("a&A-"), None);
    }
}
