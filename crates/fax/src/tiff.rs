//! The little of TIFF a fax needs, without a TIFF library of our own: the pages SpanDSP
//! writes on receiving (one CCITT Group 4 strip per page, as `audio` asks of it) read back
//! for the PDF, and bilevel pages written for SpanDSP to send.
//!
//! Reading checks every offset and count against the file: a damaged file is an error
//! naming what is wrong, never a panic or a read outside it.

use std::path::Path;

use crate::FaxError;

/// TIFF tags used here.
const WIDTH: u16 = 256;
const LENGTH: u16 = 257;
const BITS: u16 = 258;
const COMPRESSION: u16 = 259;
const PHOTOMETRIC: u16 = 262;
const FILL_ORDER: u16 = 266;
const STRIP_OFFSETS: u16 = 273;
const SAMPLES: u16 = 277;
const ROWS_PER_STRIP: u16 = 278;
const STRIP_BYTES: u16 = 279;
const X_RESOLUTION: u16 = 282;
const Y_RESOLUTION: u16 = 283;
const RESOLUTION_UNIT: u16 = 296;

/// CCITT T.6 (Group 4), the compression of the pages read here.
pub const GROUP_4: u32 = 4;

/// One received page: its Group 4 data, most significant bit first (as PDF's
/// CCITTFaxDecode wants it), and its size.
#[derive(Debug, Clone, PartialEq)]
pub struct G4Page {
    pub width: u32,
    pub rows: u32,
    /// Dots per inch, across and down.
    pub dpi: (f32, f32),
    pub data: Vec<u8>,
}

/// Byte order of a file.
#[derive(Debug, Clone, Copy)]
enum Order {
    Little,
    Big,
}

struct Reader<'a> {
    bytes: &'a [u8],
    order: Order,
}

impl Reader<'_> {
    fn slice(&self, at: u64, len: u64) -> Result<&[u8], String> {
        let start = usize::try_from(at).map_err(|_| format!("offset {at} is out of range"))?;
        let len = usize::try_from(len).map_err(|_| format!("length {len} is out of range"))?;
        start
            .checked_add(len)
            .and_then(|end| self.bytes.get(start..end))
            .ok_or_else(|| format!("{len} bytes at offset {at} go past the end of the file"))
    }

    fn u16(&self, at: u64) -> Result<u16, String> {
        let b = self.slice(at, 2)?;
        let b = [b[0], b[1]];
        Ok(match self.order {
            Order::Little => u16::from_le_bytes(b),
            Order::Big => u16::from_be_bytes(b),
        })
    }

    fn u32(&self, at: u64) -> Result<u32, String> {
        let b = self.slice(at, 4)?;
        let b = [b[0], b[1], b[2], b[3]];
        Ok(match self.order {
            Order::Little => u32::from_le_bytes(b),
            Order::Big => u32::from_be_bytes(b),
        })
    }
}

/// One directory entry's values, as numbers (SHORT and LONG), or as a ratio (RATIONAL:
/// the first one's).
#[derive(Debug, Default)]
struct Field {
    numbers: Vec<u64>,
    ratio: Option<f64>,
}

/// The entries of the directory at `at` (tag, values), and the next directory's offset.
fn directory(r: &Reader<'_>, at: u64) -> Result<(Vec<(u16, Field)>, u64), String> {
    let count = u64::from(r.u16(at)?);
    let mut out = Vec::new();
    for i in 0..count {
        let e = at + 2 + i * 12;
        let (tag, kind, n) = (r.u16(e)?, r.u16(e + 2)?, u64::from(r.u32(e + 4)?));
        let size = match kind {
            3 => 2,
            4 => 4,
            5 => 8,
            _ => continue, // a type these tags never have
        };
        let total = size * n;
        let values_at = if total <= 4 {
            e + 8
        } else {
            u64::from(r.u32(e + 8)?)
        };
        // A page has one strip here; a few thousand would be absurd.
        if n > 65_536 {
            return Err(format!("tag {tag} has {n} values"));
        }
        let mut f = Field::default();
        for k in 0..n {
            match kind {
                3 => f.numbers.push(u64::from(r.u16(values_at + 2 * k)?)),
                4 => f.numbers.push(u64::from(r.u32(values_at + 4 * k)?)),
                _ => {
                    let (num, den) = (r.u32(values_at + 8 * k)?, r.u32(values_at + 8 * k + 4)?);
                    if f.ratio.is_none() && den != 0 {
                        f.ratio = Some(f64::from(num) / f64::from(den));
                    }
                }
            }
        }
        out.push((tag, f));
    }
    let next = u64::from(r.u32(at + 2 + count * 12)?);
    Ok((out, next))
}

/// Each image directory of a classic TIFF file's bytes, in order, handed to `each` with
/// the file's reader; an error where they run off the file or loop back.
fn each_directory(
    bytes: &[u8],
    mut each: impl FnMut(&Reader<'_>, Vec<(u16, Field)>) -> Result<(), String>,
) -> Result<(), String> {
    let order = match bytes.get(..2) {
        Some(b"II") => Order::Little,
        Some(b"MM") => Order::Big,
        _ => return Err("not a TIFF file".to_string()),
    };
    let r = Reader { bytes, order };
    if r.u16(2)? != 42 {
        return Err("not a classic TIFF file".to_string());
    }
    let mut at = u64::from(r.u32(4)?);
    let mut seen = std::collections::HashSet::new();
    while at != 0 {
        if !seen.insert(at) {
            return Err(format!("the directories loop back to offset {at}"));
        }
        let (entries, next) = directory(&r, at)?;
        each(&r, entries)?;
        at = next;
    }
    Ok(())
}

/// How many pages (image directories) a TIFF file's bytes hold; an error where the
/// directories run off the file or loop back.
pub fn page_count(bytes: &[u8]) -> Result<usize, String> {
    let mut pages = 0;
    each_directory(bytes, |_, _| {
        pages += 1;
        Ok(())
    })?;
    Ok(pages)
}

/// The pages of a TIFF file SpanDSP wrote on receiving: Group 4, one strip each.
pub fn read_g4_pages(path: &Path) -> Result<Vec<G4Page>, FaxError> {
    let bytes = std::fs::read(path).map_err(|e| FaxError::io(path, e))?;
    g4_pages(&bytes).map_err(|why| FaxError::Tiff {
        path: path.to_path_buf(),
        why,
    })
}

/// [`read_g4_pages`] of a file's bytes.
pub fn g4_pages(bytes: &[u8]) -> Result<Vec<G4Page>, String> {
    let mut pages = Vec::new();
    each_directory(bytes, |r, entries| {
        let page = pages.len() + 1;
        let get = |tag: u16| entries.iter().find(|(t, _)| *t == tag).map(|(_, f)| f);
        let one = |tag: u16, name: &str| {
            get(tag)
                .and_then(|f| f.numbers.first().copied())
                .ok_or_else(|| format!("page {page} has no {name}"))
        };
        let width = u32::try_from(one(WIDTH, "width")?).unwrap_or(0);
        let rows = u32::try_from(one(LENGTH, "length")?).unwrap_or(0);
        let compression = one(COMPRESSION, "compression")?;
        if compression != u64::from(GROUP_4) {
            return Err(format!(
                "page {page} is compressed with scheme {compression}, not Group 4"
            ));
        }
        if get(BITS)
            .and_then(|f| f.numbers.first().copied())
            .unwrap_or(1)
            != 1
        {
            return Err(format!("page {page} is not black and white"));
        }
        let offsets = get(STRIP_OFFSETS)
            .map(|f| f.numbers.clone())
            .unwrap_or_default();
        let counts = get(STRIP_BYTES)
            .map(|f| f.numbers.clone())
            .unwrap_or_default();
        if offsets.len() != 1 || counts.len() != 1 {
            return Err(format!(
                "page {page} has {} strips, not one",
                offsets.len().max(counts.len())
            ));
        }
        let mut data = r.slice(offsets[0], counts[0])?.to_vec();
        // Fill order 2: the first pixel in each byte's lowest bit; PDF wants the highest.
        if one(FILL_ORDER, "fill order").unwrap_or(1) == 2 {
            for b in &mut data {
                *b = b.reverse_bits();
            }
        }
        // Resolution: per inch (unit 2, the default) or per centimetre (3).
        let per_cm = one(RESOLUTION_UNIT, "resolution unit").unwrap_or(2) == 3;
        let dpi = |tag: u16, default: f64| {
            let v = get(tag).and_then(|f| f.ratio).filter(|v| *v > 0.0);
            let v = v.map_or(default, |v| if per_cm { v * 2.54 } else { v });
            #[allow(clippy::cast_possible_truncation)]
            let v = v as f32;
            v
        };
        if width == 0 || rows == 0 {
            return Err(format!("page {page} is empty ({width} x {rows})"));
        }
        pages.push(G4Page {
            width,
            rows,
            dpi: (dpi(X_RESOLUTION, 204.0), dpi(Y_RESOLUTION, 196.0)),
            data,
        });
        Ok(())
    })?;
    Ok(pages)
}

/// A black-and-white page: `rows` rows of `width` pixels, each row padded to whole bytes,
/// the first pixel in each byte's highest bit, 1 black.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitmap {
    pub width: u32,
    pub rows: u32,
    /// Dots per inch, across and down (fax: 204 x 98 standard, 204 x 196 fine).
    pub dpi: (u32, u32),
    pub bits: Vec<u8>,
}

impl Bitmap {
    /// A white page.
    pub fn white(width: u32, rows: u32, dpi: (u32, u32)) -> Bitmap {
        let len = Bitmap::stride_of(width) * rows as usize;
        Bitmap {
            width,
            rows,
            dpi,
            bits: vec![0; len],
        }
    }

    fn stride_of(width: u32) -> usize {
        (width as usize).div_ceil(8)
    }

    /// Bytes per row.
    pub fn stride(&self) -> usize {
        Bitmap::stride_of(self.width)
    }

    /// Whether pixel (`x`, `y`) is black (outside the page: white).
    pub fn get(&self, x: u32, y: u32) -> bool {
        if x >= self.width || y >= self.rows {
            return false;
        }
        let i = y as usize * self.stride() + x as usize / 8;
        self.bits.get(i).is_some_and(|b| b & (0x80 >> (x % 8)) != 0)
    }

    /// Makes pixel (`x`, `y`) black (outside the page: nothing).
    pub fn set(&mut self, x: u32, y: u32) {
        if x >= self.width || y >= self.rows {
            return;
        }
        let i = y as usize * self.stride() + x as usize / 8;
        if let Some(b) = self.bits.get_mut(i) {
            *b |= 0x80 >> (x % 8);
        }
    }
}

/// Writes `pages` as one uncompressed bilevel TIFF file (little-endian, a directory per
/// page), the form SpanDSP reads to send.
pub fn write_bilevel(path: &Path, pages: &[Bitmap]) -> Result<(), FaxError> {
    std::fs::write(path, bilevel(pages)).map_err(|e| FaxError::io(path, e))
}

/// [`write_bilevel`]'s file, in memory.
pub fn bilevel(pages: &[Bitmap]) -> Vec<u8> {
    const ENTRIES: u16 = 13;
    let mut out = b"II\x2a\x00".to_vec();
    out.extend_from_slice(&8u32.to_le_bytes());
    let put16 = |o: &mut Vec<u8>, v: u16| o.extend_from_slice(&v.to_le_bytes());
    let put32 = |o: &mut Vec<u8>, v: u32| o.extend_from_slice(&v.to_le_bytes());
    for (n, page) in pages.iter().enumerate() {
        // The directory, then its two resolutions, then the pixels; the next page's
        // directory follows.
        let dir_at = out.len();
        let dir_len = 2 + 12 * usize::from(ENTRIES) + 4;
        let res_at = dir_at + dir_len;
        let data_at = res_at + 16;
        let data_len = page.bits.len();
        let next = if n + 1 < pages.len() {
            data_at + data_len + (data_at + data_len) % 2
        } else {
            0
        };
        let as32 = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        put16(&mut out, ENTRIES);
        let entry = |o: &mut Vec<u8>, tag: u16, kind: u16, value: u32| {
            put16(o, tag);
            put16(o, kind);
            put32(o, 1);
            if kind == 3 {
                put16(o, u16::try_from(value).unwrap_or(u16::MAX));
                put16(o, 0);
            } else {
                put32(o, value);
            }
        };
        entry(&mut out, WIDTH, 4, page.width);
        entry(&mut out, LENGTH, 4, page.rows);
        entry(&mut out, BITS, 3, 1);
        entry(&mut out, COMPRESSION, 3, 1);
        entry(&mut out, PHOTOMETRIC, 3, 0); // 0 is white
        entry(&mut out, FILL_ORDER, 3, 1);
        entry(&mut out, STRIP_OFFSETS, 4, as32(data_at));
        entry(&mut out, SAMPLES, 3, 1);
        entry(&mut out, ROWS_PER_STRIP, 4, page.rows);
        entry(&mut out, STRIP_BYTES, 4, as32(data_len));
        entry(&mut out, X_RESOLUTION, 5, as32(res_at));
        entry(&mut out, Y_RESOLUTION, 5, as32(res_at + 8));
        entry(&mut out, RESOLUTION_UNIT, 3, 2);
        put32(&mut out, as32(next));
        for dpi in [page.dpi.0, page.dpi.1] {
            put32(&mut out, dpi);
            put32(&mut out, 1);
        }
        out.extend_from_slice(&page.bits);
        if next != 0 && out.len() % 2 == 1 {
            out.push(0);
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn damaged_files_are_errors_not_panics() {
        assert!(g4_pages(b"").is_err());
        assert!(g4_pages(b"PK\x03\x04").is_err());
        assert!(g4_pages(b"II\x2a\x00\xff\xff\xff\x7f").is_err());
        // Every prefix of a real file, and every byte of it changed, is an answer.
        let file = bilevel(&[Bitmap::white(64, 8, (204, 196))]);
        for n in 0..file.len() {
            let _ = g4_pages(&file[..n]);
            let mut bad = file.clone();
            bad[n] ^= 0xff;
            let _ = g4_pages(&bad);
        }
        // An uncompressed page is named as such.
        let why = g4_pages(&file).unwrap_err();
        assert!(why.contains("scheme 1"), "{why}");
        // Marked Group 4 (entry 3, compression, its value at byte 54), it reads; with its
        // directory pointing back at itself, it is an error.
        let mut g4 = file.clone();
        g4[54] = 4;
        let pages = g4_pages(&g4).unwrap();
        assert_eq!((pages.len(), pages[0].width, pages[0].rows), (1, 64, 8));
        assert_eq!(pages[0].dpi, (204.0, 196.0));
        let mut looped = g4.clone();
        let end = 8 + 2 + 12 * 13;
        looped[end..end + 4].copy_from_slice(&8u32.to_le_bytes());
        assert!(g4_pages(&looped).unwrap_err().contains("loop"));
    }

    #[test]
    fn pixels_are_set_and_read_where_they_are() {
        let mut page = Bitmap::white(20, 3, (204, 98));
        page.set(0, 0);
        page.set(9, 1);
        page.set(19, 2);
        page.set(20, 2);
        assert_eq!(page.stride(), 3);
        assert_eq!(page.bits, [0x80, 0, 0, 0, 0x40, 0, 0, 0, 0x10]);
        assert!(page.get(9, 1) && !page.get(10, 1) && !page.get(99, 99));
    }
}
