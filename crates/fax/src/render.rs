//! Documents made into fax pages, for faxes sent from email: a PDF's pages rasterised by
//! hayro (a PDF renderer in Rust: no external program), plain text set in Courier (as a
//! PDF, then rasterised the same way). Pages come out at fax fine resolution, 204 x 196
//! dots per inch, 1728 dots across (the printable width of A4 and Letter on a fax
//! machine), black where the page is darker than mid-grey.
//!
//! What cannot be sent is an error saying why in words a sender understands: not a PDF,
//! protected by a password, no pages, too many pages. A TIFF is sent as it came, once
//! SpanDSP has read every page of it here ([`tiff`]).

use std::path::Path;
use std::sync::Arc;

use hayro::hayro_interpret::InterpreterSettings;
use hayro::hayro_syntax::Pdf;
use hayro::vello_cpu::color::palette::css::WHITE;
use hayro::{PixmapSettings, RenderCache, RenderSettings};

use spandsp::t4::T4Compression;
use spandsp::t4_tx::T4Tx;

use crate::tiff::Bitmap;

/// Dots across a fax page.
pub const WIDTH: u32 = 1728;

/// Fine resolution: dots per inch across and down.
pub const DPI: (u32, u32) = (204, 196);

/// The most pages one fax from email may have (at a minute a page, over an hour and a
/// half on the line).
pub const MAX_PAGES: usize = 100;

/// The longest page, in rows: 17 inches (A4 is 11.7, Legal 14); a longer one is scaled
/// down to fit.
const MAX_ROWS: u32 = 196 * 17;

/// Why a document cannot be faxed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("it is not a PDF file that can be read")]
    NotPdf,
    #[error("the PDF is protected by a password")]
    Encrypted,
    #[error("the document has no pages")]
    Empty,
    #[error("the document has {0} pages; a fax from email can have at most {MAX_PAGES}")]
    TooManyPages(usize),
    #[error("it is not a TIFF file a fax machine can send ({0})")]
    BadTiff(String),
}

/// Page sizes and resolutions any fax machine takes (SpanDSP's `T4_SUPPORT_*` and
/// `T4_RESOLUTION_*` values, which its bindings do not carry): A4 width, any length;
/// standard, fine and superfine, in inch and metric forms.
const PLAIN_SIZES: i32 = 0x01 | 0x1_0000 | 0x2_0000 | 0x4_0000 | 0x8_0000 | 0x10_0000;
const PLAIN_RESOLUTIONS: i32 = 0x1 | 0x2 | 0x4 | 0x20 | 0x40 | 0x80;

/// A TIFF file read through as the sending machine will read it ([`tiff`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TiffDocument {
    pub pages: usize,
    /// Page 1 as SpanDSP codes it for the line, drawn back (for the report's thumbnail).
    pub first: Option<Bitmap>,
}

/// Checks a TIFF file that is to be sent as it came (a fax program's own file) the way
/// the sending machine will read it: SpanDSP opens it and codes every page for a plain
/// fax machine (T.6 here; the line may use T.4, from the same reading of the file).
/// Its pages, and page 1 as a fax machine will print it; why not in words, before
/// anything is dialled.
pub fn tiff(path: &Path) -> Result<TiffDocument, RenderError> {
    let bad = |why: &str| RenderError::BadTiff(why.to_string());
    let bytes = std::fs::read(path).map_err(|e| bad(&e.to_string()))?;
    let count = crate::tiff::page_count(&bytes).map_err(|why| bad(&why))?;
    match count {
        0 => return Err(RenderError::Empty),
        n if n > MAX_PAGES => return Err(RenderError::TooManyPages(n)),
        _ => {}
    }
    let name = path.to_str().ok_or_else(|| bad("its name is not UTF-8"))?;
    let mut tx = T4Tx::new(name, -1, -1).map_err(|_| bad("it cannot be opened"))?;
    tx.set_tx_image_format(T4Compression::T6, PLAIN_SIZES, PLAIN_RESOLUTIONS, 0)
        .map_err(|_| bad("its pages are not a size or resolution a fax machine takes"))?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut first = None;
    for page in 1..=count {
        let unreadable = || RenderError::BadTiff(format!("page {page} cannot be read"));
        tx.start_page().map_err(|_| unreadable())?;
        // A page codes to well under a megabyte; one that goes on and on is broken.
        let (mut coded, mut length) = (Vec::new(), 0usize);
        loop {
            let n = tx.get(&mut buf);
            length += n;
            if page == 1 {
                coded.extend_from_slice(&buf[..n]);
            }
            if n < buf.len() {
                break;
            }
            if length > 64 * 1024 * 1024 {
                return Err(RenderError::BadTiff(format!("page {page} never ends")));
            }
        }
        if page == 1 {
            first = drawn_back(&tx, coded);
        }
        tx.end_page().map_err(|_| unreadable())?;
    }
    Ok(TiffDocument {
        pages: count,
        first,
    })
}

/// A page SpanDSP coded in T.6 (`coded`), drawn back as a bitmap: put in a PDF as the
/// Group 4 image it is, and that drawn like any PDF.
fn drawn_back(tx: &T4Tx, mut coded: Vec<u8>) -> Option<Bitmap> {
    let stats = tx.get_transfer_statistics();
    let per_inch = |per_metre: i32| {
        #[allow(clippy::cast_precision_loss)]
        let v = per_metre as f32 * 0.0254;
        v
    };
    // The line sends each byte's first pixel in its lowest bit; PDF wants the highest.
    for b in &mut coded {
        *b = b.reverse_bits();
    }
    let page = crate::tiff::G4Page {
        width: u32::try_from(stats.width).ok()?,
        rows: u32::try_from(stats.length).ok()?,
        dpi: (per_inch(stats.x_resolution), per_inch(stats.y_resolution)),
        data: coded,
    };
    let document = crate::pdf::from_pages(&[page], "page 1")?;
    pdf(&document).ok()?.into_iter().next()
}

/// The pages of a PDF file, as fax pages.
pub fn pdf(bytes: &[u8]) -> Result<Vec<Bitmap>, RenderError> {
    let data: Arc<Vec<u8>> = Arc::new(bytes.to_vec());
    // hayro's error type is not exported by name; its variants are `Decryption(..)`
    // (a password) and `Invalid`.
    let pdf = Pdf::new(data).map_err(|e| {
        if format!("{e:?}").starts_with("Decryption") {
            RenderError::Encrypted
        } else {
            RenderError::NotPdf
        }
    })?;
    let pages = pdf.pages();
    match pages.len() {
        0 => return Err(RenderError::Empty),
        n if n > MAX_PAGES => return Err(RenderError::TooManyPages(n)),
        _ => {}
    }
    let cache = RenderCache::new();
    let interpreter = InterpreterSettings::default();
    let settings = RenderSettings::default();
    Ok(pages
        .iter()
        .map(|page| {
            let (w, h) = page.render_dimensions();
            // Points (1/72 inch) to dots, the page's width onto the fax's; a page too
            // long for a fax is made smaller still.
            let w = if w.is_finite() && w > 1.0 { w } else { 612.0 };
            let h = if h.is_finite() && h > 1.0 { h } else { 792.0 };
            #[allow(clippy::cast_precision_loss)]
            let mut x_scale = WIDTH as f32 / w;
            #[allow(clippy::cast_precision_loss)]
            let ratio = DPI.1 as f32 / DPI.0 as f32;
            #[allow(clippy::cast_precision_loss)]
            if h * x_scale * ratio > MAX_ROWS as f32 {
                x_scale = MAX_ROWS as f32 / (h * ratio);
            }
            let pixmap = hayro::render(
                page,
                &cache,
                &interpreter,
                &settings,
                &PixmapSettings {
                    x_scale,
                    y_scale: x_scale * ratio,
                    bg_color: WHITE,
                },
            );
            bilevel(
                u32::from(pixmap.width()),
                u32::from(pixmap.height()),
                pixmap.data(),
            )
        })
        .collect())
}

/// A rendered page (white behind it, so its colours are opaque) as a fax page: centred
/// across, black where darker than mid-grey.
fn bilevel(width: u32, height: u32, pixels: &[hayro::vello_cpu::color::PremulRgba8]) -> Bitmap {
    let mut page = Bitmap::white(WIDTH, height.max(1), DPI);
    let left = WIDTH.saturating_sub(width) / 2;
    for (y, row) in pixels
        .chunks(usize::try_from(width).unwrap_or(1).max(1))
        .enumerate()
    {
        let Ok(y) = u32::try_from(y) else { break };
        for (x, p) in row.iter().enumerate() {
            let Ok(x) = u32::try_from(x) else { break };
            let luma = u32::from(p.r) * 299 + u32::from(p.g) * 587 + u32::from(p.b) * 114;
            if luma < 128_000 && x + left < WIDTH && y < height {
                page.set(x + left, y);
            }
        }
    }
    page
}

/// The width of a page's preview ([`thumbnail`]), in pixels.
pub const THUMBNAIL_WIDTH: u32 = 288;

/// `page` small, as a grey PNG [`THUMBNAIL_WIDTH`] pixels across (its height in
/// proportion, the page's two resolutions taken into account): each pixel the share of
/// white in the dots it stands for, so that text stays legible as grey.
pub fn thumbnail(page: &Bitmap) -> Vec<u8> {
    let (dx, dy) = (page.dpi.0.max(1), page.dpi.1.max(1));
    let w = THUMBNAIL_WIDTH.min(page.width.max(1));
    // Rows in proportion to the page's height in inches.
    let h = ((u64::from(page.rows) * u64::from(w) * u64::from(dx))
        / (u64::from(page.width.max(1)) * u64::from(dy)))
    .clamp(1, 4096);
    let h = u32::try_from(h).unwrap_or(1);
    let mut grey = Vec::with_capacity((w * h) as usize);
    for ty in 0..h {
        let (y0, y1) = span(ty, h, page.rows);
        for tx in 0..w {
            let (x0, x1) = span(tx, w, page.width);
            let (mut white, mut all) = (0u32, 0u32);
            for y in y0..y1 {
                for x in x0..x1 {
                    all += 1;
                    if !page.get(x, y) {
                        white += 1;
                    }
                }
            }
            let level = (white * 255).checked_div(all).unwrap_or(255);
            grey.push(u8::try_from(level).unwrap_or(255));
        }
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, w, h);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let written = encoder
        .write_header()
        .and_then(|mut writer| writer.write_image_data(&grey));
    if written.is_err() {
        // Only a size PNG cannot hold fails, and the sizes above are small.
        return Vec::new();
    }
    out
}

/// The source pixels `[from, to)` that target pixel `i` of `n` covers in `len`.
fn span(i: u32, n: u32, len: u32) -> (u32, u32) {
    let at =
        |k: u32| u32::try_from(u64::from(k) * u64::from(len) / u64::from(n.max(1))).unwrap_or(len);
    let (from, to) = (at(i), at(i + 1));
    (from, to.max(from + 1).min(len.max(1)))
}

/// Lines on a page of text, and characters on a line (Courier 10 point on A4 with
/// margins of 50 points).
const LINES: usize = 61;
const COLUMNS: usize = 82;

/// Plain text as fax pages: Courier, long lines wrapped, a form feed starting a new
/// page; characters Courier's Latin set lacks shown as `?`.
pub fn text(text: &str) -> Result<Vec<Bitmap>, RenderError> {
    let mut pages: Vec<Vec<String>> = vec![Vec::new()];
    for raw in text.lines() {
        for (i, part) in raw.split('\u{c}').enumerate() {
            if i > 0 {
                pages.push(Vec::new());
            }
            let clean: String = part
                .replace('\t', "    ")
                .chars()
                .map(|c| {
                    if c == ' ' || c.is_ascii_graphic() {
                        c
                    } else {
                        '?'
                    }
                })
                .collect();
            let chars: Vec<char> = clean.trim_end().chars().collect();
            let mut chunks: Vec<String> =
                chars.chunks(COLUMNS).map(|c| c.iter().collect()).collect();
            if chunks.is_empty() {
                chunks.push(String::new());
            }
            for line in chunks {
                if pages.last().is_some_and(|p| p.len() >= LINES) {
                    pages.push(Vec::new());
                }
                if let Some(p) = pages.last_mut() {
                    p.push(line);
                }
            }
            if pages.len() > MAX_PAGES {
                return Err(RenderError::TooManyPages(pages.len()));
            }
        }
    }
    while pages.len() > 1 && pages.last().is_some_and(|p| p.iter().all(String::is_empty)) {
        pages.pop();
    }
    pdf(&text_pdf(&pages))
}

/// A PDF of pages of lines, in Courier.
fn text_pdf(pages: &[Vec<String>]) -> Vec<u8> {
    use pdf_writer::{Content, Finish, Name, Pdf as Writer, Rect, Ref, Str};
    let mut w = Writer::new();
    let (catalog, tree, font) = (Ref::new(1), Ref::new(2), Ref::new(3));
    w.catalog(catalog).pages(tree);
    let ids: Vec<(Ref, Ref)> = (0..pages.len())
        .map(|i| {
            let base = 4 + 2 * i32::try_from(i).unwrap_or(0);
            (Ref::new(base), Ref::new(base + 1))
        })
        .collect();
    w.pages(tree)
        .kids(ids.iter().map(|(p, _)| *p))
        .count(i32::try_from(ids.len()).unwrap_or(0));
    w.type1_font(font).base_font(Name(b"Courier"));
    for (lines, (page, content)) in pages.iter().zip(&ids) {
        let mut p = w.page(*page);
        p.media_box(Rect::new(0.0, 0.0, 595.0, 842.0))
            .parent(tree)
            .contents(*content);
        p.resources().fonts().pair(Name(b"F1"), font);
        p.finish();
        let mut c = Content::new();
        c.begin_text();
        c.set_font(Name(b"F1"), 10.0);
        c.set_leading(12.0);
        c.next_line(50.0, 780.0);
        for line in lines {
            c.show(Str(line.as_bytes()));
            c.next_line_using_leading();
        }
        c.end_text();
        w.stream(*content, &c.finish());
    }
    w.finish()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn what_is_not_a_pdf_is_said_so() {
        assert_eq!(pdf(b"Dear Bob, see attached."), Err(RenderError::NotPdf));
        assert_eq!(pdf(b""), Err(RenderError::NotPdf));
        assert_eq!(pdf(b"%PDF-1.7\n%%EOF\n"), Err(RenderError::NotPdf));
    }

    #[test]
    fn a_tiff_is_read_through_by_spandsp_before_it_is_queued() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("doc.tif");
        let pages = text("ONE\u{c}TWO\u{c}THREE").unwrap();
        let good = crate::tiff::bilevel(&pages);
        std::fs::write(&file, &good).unwrap();
        let read = tiff(&file).unwrap();
        assert_eq!(read.pages, 3);
        // Page 1 as the line will carry it, drawn back, is the page.
        let first = read.first.unwrap();
        // Fine resolution on the line is 7.7 rows a millimetre (195.6 a inch, not 196):
        // the page drawn back is a few rows longer. The top of it lines up.
        assert_eq!(first.width, pages[0].width);
        assert!(first.rows.abs_diff(pages[0].rows) * 100 < pages[0].rows);
        let top = first.stride() * 400;
        let differ = first.bits[..top]
            .iter()
            .zip(&pages[0].bits[..top])
            .map(|(a, b)| (a ^ b).count_ones() as usize)
            .sum::<usize>();
        let all = top * 8;
        assert!(differ * 100 <= all, "{differ} of {all} pixels differ");
        assert!(first.bits.iter().any(|b| *b != 0), "page 1 drawn blank");

        // A TIFF's header with nothing after it, strips that run off the end of the
        // file, a page 1000 dots across, and directories that loop: each said, none sent.
        let mut cases: Vec<(&str, Vec<u8>)> = vec![
            ("header only", b"II*\0\x08\0\0\0".to_vec()),
            ("cut short", good[..good.len() / 2].to_vec()),
            // Every directory whole, the last page's pixels cut: found by SpanDSP.
            ("last page cut", good[..good.len() - 1000].to_vec()),
            ("not a tiff", b"%PDF-1.4 hello".to_vec()),
        ];
        let mut narrow = Bitmap::white(1000, 400, DPI);
        narrow.set(10, 10);
        cases.push(("odd width", crate::tiff::bilevel(&[narrow])));
        let mut looped = crate::tiff::bilevel(&pages[..1]);
        // The first directory (at offset 8) names itself as the next one.
        let next_at = 8 + 2 + 12 * 13;
        looped[next_at..next_at + 4].copy_from_slice(&8u32.to_le_bytes());
        cases.push(("loop", looped));
        for (what, bytes) in cases {
            std::fs::write(&file, &bytes).unwrap();
            match tiff(&file) {
                Err(RenderError::BadTiff(why)) => assert!(!why.is_empty(), "{what}"),
                other => panic!("{what}: {other:?}"),
            }
        }
    }

    #[test]
    fn text_becomes_pages_with_ink_where_the_words_are() {
        let pages = text("HELLO FAX\n\nsecond line\u{c}page two").unwrap();
        assert_eq!(pages.len(), 2);
        let page = &pages[0];
        assert_eq!((page.width, page.dpi), (WIDTH, DPI));
        // A4 at 196 dpi down: about 2290 rows.
        assert!((2200..2400).contains(&page.rows), "{}", page.rows);
        let ink = |p: &Bitmap, rows: std::ops::Range<u32>| {
            rows.flat_map(|y| (0..p.width).map(move |x| (x, y)))
                .filter(|&(x, y)| p.get(x, y))
                .count()
        };
        // The first line (about 62 points down) has ink; the middle of the page none.
        assert!(ink(page, 150..200) > 200, "{}", ink(page, 150..200));
        assert_eq!(ink(page, 1000..1100), 0);
        assert!(ink(&pages[1], 150..200) > 100);
    }

    #[test]
    fn a_thumbnail_is_a_small_grey_png_of_the_page_in_proportion() {
        let pages = text("HELLO FAX").unwrap();
        let png_bytes = thumbnail(&pages[0]);
        let mut reader = png::Decoder::new(std::io::Cursor::new(png_bytes))
            .read_info()
            .unwrap();
        let mut grey = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut grey).unwrap();
        assert_eq!(info.width, THUMBNAIL_WIDTH);
        // A4 is 1.41 times as long as wide.
        assert!((395..415).contains(&info.height), "{}", info.height);
        let row = |y: u32| &grey[(y * info.width) as usize..((y + 1) * info.width) as usize];
        // The line of text (about 62 points down, row 34 of 406) is grey; below it white.
        assert!((28..40).any(|y| row(y).iter().any(|&g| g < 200)));
        assert!(row(300).iter().all(|&g| g == 255));
    }

    #[test]
    fn a_500_page_pdf_is_refused_by_its_page_count() {
        let pages = vec![vec!["x".to_string()]; 500];
        assert_eq!(pdf(&text_pdf(&pages)), Err(RenderError::TooManyPages(500)));
        // Cut short, the same file has no page hayro can find (it reads what it can).
        let whole = text_pdf(&pages[..2]);
        assert_eq!(pdf(&whole[..whole.len() / 3]), Err(RenderError::Empty));
    }

    #[test]
    fn too_long_a_text_is_refused_before_any_page_is_drawn() {
        let long = "x\n".repeat(LINES * (MAX_PAGES + 1));
        assert_eq!(text(&long), Err(RenderError::TooManyPages(MAX_PAGES + 1)));
    }
}
