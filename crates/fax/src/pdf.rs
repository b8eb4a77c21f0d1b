//! A received fax as a PDF: each page's Group 4 data as it came (no decoding, no loss),
//! an image of its real size (pixels at the page's own resolution, so a fine page and a
//! standard one are both the paper's size) under PDF's CCITTFaxDecode filter.

use pdf_writer::{Content, Filter, Finish, Name, Pdf, Rect, Ref};

use crate::tiff::G4Page;

/// The PDF of `pages` (none: a PDF of no pages is no use; `None`), titled `title`.
pub fn from_pages(pages: &[G4Page], title: &str) -> Option<Vec<u8>> {
    if pages.is_empty() {
        return None;
    }
    let mut pdf = Pdf::new();
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let info = Ref::new(3);
    // Each page takes three objects: the page, its content, its image.
    let ids = |n: usize| {
        let base = 4 + 3 * i32::try_from(n).unwrap_or(0);
        (Ref::new(base), Ref::new(base + 1), Ref::new(base + 2))
    };
    pdf.catalog(catalog).pages(tree);
    pdf.document_info(info)
        .title(pdf_writer::TextStr(title))
        .producer(pdf_writer::TextStr("officebox"));
    let count = i32::try_from(pages.len()).unwrap_or(i32::MAX);
    pdf.pages(tree)
        .kids((0..pages.len()).map(|n| ids(n).0))
        .count(count);
    let image = Name(b"Page");
    for (n, p) in pages.iter().enumerate() {
        let (page_id, content_id, image_id) = ids(n);
        // Points (1/72 inch) from pixels at the page's resolution.
        #[allow(clippy::cast_precision_loss)]
        let (w, h) = (
            p.width as f32 * 72.0 / p.dpi.0.max(1.0),
            p.rows as f32 * 72.0 / p.dpi.1.max(1.0),
        );
        let mut page = pdf.page(page_id);
        page.media_box(Rect::new(0.0, 0.0, w, h));
        page.parent(tree);
        page.contents(content_id);
        page.resources().x_objects().pair(image, image_id);
        page.finish();
        let mut content = Content::new();
        content.save_state();
        content.transform([w, 0.0, 0.0, h, 0.0, 0.0]);
        content.x_object(image);
        content.restore_state();
        pdf.stream(content_id, &content.finish());
        let (width, rows) = (
            i32::try_from(p.width).unwrap_or(i32::MAX),
            i32::try_from(p.rows).unwrap_or(i32::MAX),
        );
        let mut img = pdf.image_xobject(image_id, &p.data);
        img.filter(Filter::CcittFaxDecode);
        img.decode_parms().k(-1).columns(width).rows(rows);
        img.width(width);
        img.height(rows);
        img.color_space().device_gray();
        img.bits_per_component(1);
        img.finish();
    }
    Some(pdf.finish())
}
