//! The www site (public: the WAN side sees it) and the corp intranet (the office only),
//! served from `data_dir/www` and `data_dir/corp` on `web.site_port` and told apart by the
//! Host name: `corp.<domain>` (or plain `corp`) is the intranet, every other name the www
//! site. `admin.<domain>` from the office is sent on to the admin pages.
//!
//! Static files only: GET and HEAD, an `index.html` for a directory or else a listing of
//! it, ETag and Last-Modified with 304s, short caching for pages and longer for the rest.
//! Names starting with a dot are never served, nor anything outside the site's directory
//! (`..`, or a symbolic link that leads out).

use std::fmt::Write as _;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::UNIX_EPOCH;

use axum::Router;
use axum::extract::State;
use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use hyper::header::HeaderValue;
use hyper::{Method, Request, Response, StatusCode};
use officebox_config::Config;
use officebox_config::derive::{ClientZone, client_zone};
use tokio::sync::{mpsc, watch};
use tracing::warn;

use crate::listen::Peer;
use maud::{PreEscaped, html};

/// Files up to this size are read at once; larger ones are streamed in chunks.
const WHOLE: u64 = 256 * 1024;
const CHUNK: usize = 64 * 1024;

/// Which site a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    Www,
    Corp,
    /// `admin.<domain>`: the admin pages are on their own port.
    Admin,
}

impl Site {
    fn dir_name(self) -> &'static str {
        match self {
            Site::Www | Site::Admin => "www",
            Site::Corp => "corp",
        }
    }
}

/// The site a Host header names.
pub fn site_for(config: &Config, host: Option<&str>) -> Site {
    let host = host.unwrap_or("").trim().to_ascii_lowercase();
    // Without the port: `name:80`, `[::1]:80`.
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h)
    };
    let name = name.trim_end_matches('.');
    let domain = config.network.domain.to_ascii_lowercase();
    let is = |label: &str| name == label || name == format!("{label}.{domain}");
    if is("corp") {
        Site::Corp
    } else if is("admin") {
        Site::Admin
    } else {
        Site::Www
    }
}

/// A response body: bytes in hand, or a file read in chunks by a blocking thread.
#[derive(Debug)]
pub enum SiteBody {
    Bytes(Option<Bytes>),
    File {
        chunks: mpsc::Receiver<io::Result<Bytes>>,
        left: u64,
    },
}

impl hyper::body::Body for SiteBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            SiteBody::Bytes(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            SiteBody::File { chunks, left } => match chunks.poll_recv(cx) {
                Poll::Ready(Some(Ok(b))) => {
                    *left = left.saturating_sub(b.len() as u64);
                    Poll::Ready(Some(Ok(Frame::data(b))))
                }
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            SiteBody::Bytes(b) => b.is_none(),
            SiteBody::File { left, .. } => *left == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            SiteBody::Bytes(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            SiteBody::File { left, .. } => SizeHint::with_exact(*left),
        }
    }
}

/// The page a new site starts with, so the box answers something sensible at once.
fn starter_page(site: Site, config: &Config, dir: &Path) -> String {
    let (title, what) = match site {
        Site::Corp => (
            format!("{} intranet", config.network.domain),
            "the office's own pages, seen only from the office network",
        ),
        _ => (
            config.network.domain.clone(),
            "the company's public web site",
        ),
    };
    let dir = dir.display().to_string();
    document(
        &title,
        html! {
            p {
                "This is " (what) ". Put its files in " code { (dir) }
                " on the box; this page is " code { "index.html" } " there."
            }
        },
    )
}

/// A whole small page the sites make themselves (a starter page, a listing, an error):
/// the title as heading, then `body`.
fn document(title: &str, body: maud::Markup) -> String {
    html! {
        (PreEscaped("<!doctype html>"))
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
            }
            body {
                h1 { (title) }
                (body)
            }
        }
    }
    .into_string()
        + "\n"
}

/// Makes each site's directory with a starter page the first time.
fn prepare(config: &Config) -> io::Result<()> {
    for site in [Site::Www, Site::Corp] {
        let dir = config.data_dir.join(site.dir_name());
        if !dir.exists() {
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join("index.html"), starter_page(site, config, &dir))?;
        }
    }
    Ok(())
}

/// [`prepare`], off the async threads.
pub(crate) async fn prepare_dirs(config: &Arc<Config>) -> io::Result<()> {
    let c = Arc::clone(config);
    tokio::task::spawn_blocking(move || prepare(&c))
        .await
        .map_err(io::Error::other)?
}

/// The sites' router: every request, whatever its path and method, goes to [`handle`].
pub(crate) fn router(config: watch::Receiver<Arc<Config>>) -> Router {
    Router::new().fallback(answer).with_state(config)
}

async fn answer(
    State(config): State<watch::Receiver<Arc<Config>>>,
    Peer(peer): Peer,
    req: axum::extract::Request,
) -> axum::response::Response {
    let c = Arc::clone(&config.borrow());
    let (parts, body) = req.into_parts();
    // A site reads no request body; Autodiscover's question is the one body read.
    let req = Request::from_parts(parts, ());
    if let Some(r) = mail_settings(&c, &req, body).await {
        return r.map(axum::body::Body::new);
    }
    handle(&c, &req, peer).await.map(axum::body::Body::new)
}

/// The largest Autodiscover question read (Outlook's are a few hundred bytes).
const AUTODISCOVER_MAX: usize = 8 * 1024;

/// The mail settings files ([`crate::mailsetup`]), on every host name of the sites, when
/// mail is on; `None` for every other request.
async fn mail_settings(
    config: &Config,
    req: &Request<()>,
    body: axum::body::Body,
) -> Option<Response<SiteBody>> {
    use crate::mailsetup;
    use http_body_util::{BodyExt, Limited};
    let path = req.uri().path();
    let autoconfig = mailsetup::AUTOCONFIG_PATHS.contains(&path);
    let autodiscover = mailsetup::is_autodiscover_path(path);
    if !config.mail.enabled || !(autoconfig || autodiscover) {
        return None;
    }
    let method = req.method();
    let text = if autoconfig && (method == Method::GET || method == Method::HEAD) {
        mailsetup::autoconfig(config)
    } else if autodiscover && method == Method::POST {
        let asked = match Limited::new(body, AUTODISCOVER_MAX).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return Some(simple(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "An Autodiscover question is a few hundred bytes.",
                ));
            }
        };
        let address = mailsetup::autodiscover_address(config, &asked);
        mailsetup::autodiscover(config, address.as_deref(), true)
    } else if autodiscover && (method == Method::GET || method == Method::HEAD) {
        mailsetup::autodiscover(config, None, false)
    } else {
        let mut r = simple(
            StatusCode::METHOD_NOT_ALLOWED,
            "Mail settings are read with GET (Autodiscover: POST).",
        );
        let allow = if autodiscover {
            "GET, HEAD, POST"
        } else {
            "GET, HEAD"
        };
        r.headers_mut()
            .insert("allow", HeaderValue::from_static(allow));
        return Some(r);
    };
    let mut r = with_body(Bytes::from(text), "application/xml; charset=utf-8");
    r.headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-cache"));
    Some(r)
}

fn simple(status: StatusCode, text: &str) -> Response<SiteBody> {
    let body = document(&status.to_string(), html! { p { (text) } });
    let mut r = with_body(Bytes::from(body), "text/html; charset=utf-8");
    *r.status_mut() = status;
    r.headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-store"));
    r
}

fn with_body(b: Bytes, content_type: &'static str) -> Response<SiteBody> {
    let mut r = Response::new(SiteBody::Bytes(Some(b)));
    let h = r.headers_mut();
    h.insert("content-type", HeaderValue::from_static(content_type));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("server", HeaderValue::from_static("officebox"));
    r
}

/// Answers one request.
pub async fn handle<B>(config: &Config, req: &Request<B>, peer: SocketAddr) -> Response<SiteBody> {
    let host = req
        .headers()
        .get("host")
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().host());
    let site = site_for(config, host);
    let zone = client_zone(&config.network, peer.ip());
    let mut r = match (site, zone) {
        (Site::Corp, ClientZone::Wan) => simple(
            StatusCode::FORBIDDEN,
            "The intranet is open only to the office network.",
        ),
        (Site::Admin, ClientZone::Wan | ClientZone::Tunnel) => simple(
            StatusCode::FORBIDDEN,
            "The admin pages are open only to the office network.",
        ),
        (Site::Admin, _) => {
            let scheme = if config.web.https { "https" } else { "http" };
            let to = format!(
                "{scheme}://admin.{}:{}/",
                config.network.domain, config.web.admin_port
            );
            let mut r = simple(StatusCode::FOUND, "The admin pages are on their own port.");
            if let Ok(v) = HeaderValue::from_str(&to) {
                r.headers_mut().insert("location", v);
            }
            r
        }
        _ if req.method() != Method::GET && req.method() != Method::HEAD => {
            let mut r = simple(
                StatusCode::METHOD_NOT_ALLOWED,
                "This site has pages to read only.",
            );
            r.headers_mut()
                .insert("allow", HeaderValue::from_static("GET, HEAD"));
            r
        }
        _ => {
            let root = config.data_dir.join(site.dir_name());
            let path = req.uri().path().to_string();
            let conditions = Conditions::of(req);
            let head = req.method() == Method::HEAD;
            match tokio::task::spawn_blocking(move || serve_path(&root, &path, &conditions, head))
                .await
            {
                Ok(r) => r,
                Err(error) => {
                    warn!(message = "web: a site request failed", %error);
                    simple(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong.")
                }
            }
        }
    };
    if req.method() == Method::HEAD {
        // hyper leaves the body out; the headers still say what GET would send.
        if let SiteBody::File { .. } = r.body() {
            *r.body_mut() = SiteBody::Bytes(None);
        }
    }
    r
}

/// The request's cache validators.
#[derive(Debug, Default)]
struct Conditions {
    if_none_match: Option<String>,
    if_modified_since: Option<String>,
}

impl Conditions {
    fn of<B>(req: &Request<B>) -> Self {
        let get = |n: &str| {
            req.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        Conditions {
            if_none_match: get("if-none-match"),
            if_modified_since: get("if-modified-since"),
        }
    }

    /// Whether the client's copy (by ETag, else by date) is current.
    fn fresh(&self, etag: &str, last_modified: &str) -> bool {
        if let Some(inm) = &self.if_none_match {
            return inm.trim() == "*"
                || inm
                    .split(',')
                    .any(|t| t.trim().trim_start_matches("W/") == etag);
        }
        self.if_modified_since.as_deref() == Some(last_modified)
    }
}

/// `%xx` decoded; `None` for bad escapes, invalid UTF-8 or a NUL.
fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut rest = s.as_bytes();
    while let Some((&c, after)) = rest.split_first() {
        rest = after;
        if c == b'%' {
            let (hex, after) = rest.split_at_checked(2)?;
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            rest = after;
        } else {
            out.push(c);
        }
    }
    let s = String::from_utf8(out).ok()?;
    (!s.contains('\0')).then_some(s)
}

/// A name made safe for a URL path segment.
fn percent_encode(name: &str) -> String {
    let mut out = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// What a file name's extension says it is.
fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "txt" | "md" => "text/plain; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "pdf" => "application/pdf",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "mp4" => "video/mp4",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

/// The file or directory `uri_path` names under `root`, or why not (blocking).
fn serve_path(root: &Path, uri_path: &str, cond: &Conditions, head: bool) -> Response<SiteBody> {
    let not_found = || simple(StatusCode::NOT_FOUND, "There is no such page here.");
    let Some(decoded) = percent_decode(uri_path) else {
        return simple(StatusCode::BAD_REQUEST, "That address is not valid.");
    };
    let mut path = root.to_path_buf();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            // Up and out, or a hidden file (.htaccess, .git): not served.
            s if s.starts_with('.') || s.contains('\\') => return not_found(),
            s => path.push(s),
        }
    }
    // A symbolic link may not lead out of the site.
    let (Ok(real_root), Ok(real)) = (root.canonicalize(), path.canonicalize()) else {
        return not_found();
    };
    if !real.starts_with(&real_root) {
        return not_found();
    }
    let Ok(meta) = std::fs::metadata(&real) else {
        return not_found();
    };
    if meta.is_dir() {
        if !uri_path.ends_with('/') {
            let mut r = simple(StatusCode::MOVED_PERMANENTLY, "Moved.");
            if let Ok(v) = HeaderValue::from_str(&format!("{uri_path}/")) {
                r.headers_mut().insert("location", v);
            }
            return r;
        }
        let index = real.join("index.html");
        return match std::fs::metadata(&index) {
            Ok(m) if m.is_file() => file_response(&index, &m, cond, head),
            _ => listing(&real, &decoded),
        };
    }
    if !meta.is_file() {
        return not_found();
    }
    file_response(&real, &meta, cond, head)
}

fn file_response(
    path: &Path,
    meta: &std::fs::Metadata,
    cond: &Conditions,
    head: bool,
) -> Response<SiteBody> {
    let len = meta.len();
    let modified = meta.modified().unwrap_or(UNIX_EPOCH);
    let since = modified.duration_since(UNIX_EPOCH).unwrap_or_default();
    let etag = format!(
        "\"{len:x}-{:x}-{:x}\"",
        since.as_secs(),
        since.subsec_nanos()
    );
    let last_modified = officebox_store::date::http_date(modified);
    let ctype = content_type(path);
    let cache = if ctype.starts_with("text/html") {
        "public, max-age=60"
    } else {
        "public, max-age=3600"
    };
    let mut r = if cond.fresh(&etag, &last_modified) {
        let mut r = Response::new(SiteBody::Bytes(None));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else if head {
        let mut r = with_body(Bytes::new(), ctype);
        r.headers_mut()
            .insert("content-length", HeaderValue::from(len));
        *r.body_mut() = SiteBody::Bytes(None);
        r
    } else if len <= WHOLE {
        match std::fs::read(path) {
            Ok(b) => with_body(Bytes::from(b), ctype),
            Err(_) => return simple(StatusCode::NOT_FOUND, "There is no such page here."),
        }
    } else {
        let Ok(mut file) = std::fs::File::open(path) else {
            return simple(StatusCode::NOT_FOUND, "There is no such page here.");
        };
        let (tx, rx) = mpsc::channel(4);
        std::thread::spawn(move || {
            let mut sent = 0u64;
            while sent < len {
                let mut buf = vec![0u8; CHUNK];
                match file.read(&mut buf) {
                    Ok(0) => {
                        let _ = tx.blocking_send(Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the file got shorter while it was sent",
                        )));
                        break;
                    }
                    Ok(n) => {
                        let n = usize::try_from((n as u64).min(len - sent)).unwrap_or(n);
                        buf.truncate(n);
                        sent += n as u64;
                        if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        break;
                    }
                }
            }
        });
        let mut r = with_body(Bytes::new(), ctype);
        r.headers_mut()
            .insert("content-length", HeaderValue::from(len));
        *r.body_mut() = SiteBody::File {
            chunks: rx,
            left: len,
        };
        r
    };
    let h = r.headers_mut();
    for (k, v) in [("etag", etag), ("last-modified", last_modified)] {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    }
    h.insert("cache-control", HeaderValue::from_static(cache));
    r
}

/// An index page for a directory without `index.html`: folders first, then files.
fn listing(dir: &Path, shown_as: &str) -> Response<SiteBody> {
    let mut entries: Vec<(bool, String, u64)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    if name.starts_with('.') {
                        return None;
                    }
                    let meta = std::fs::metadata(e.path()).ok()?;
                    Some((!meta.is_dir(), name, meta.len()))
                })
                .collect()
        })
        .unwrap_or_default();
    entries.sort();
    let body = document(
        &format!("Index of {shown_as}"),
        html! {
            ul {
                @if shown_as != "/" {
                    li { a href="../" { "../" } }
                }
                @for (is_file, name, len) in &entries {
                    @let slash = if *is_file { "" } else { "/" };
                    li {
                        a href={ (percent_encode(name)) (slash) } { (name) (slash) }
                        @if *is_file { " (" (len) " bytes)" }
                    }
                }
            }
        },
    );
    let mut r = with_body(Bytes::from(body), "text/html; charset=utf-8");
    r.headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-cache"));
    r
}

/// Where the site `site` keeps its files.
pub fn site_dir(config: &Config, site: Site) -> PathBuf {
    config.data_dir.join(site.dir_name())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn demo(data: &Path) -> Config {
        let text = include_str!("../../../examples/demo.toml");
        let mut c = officebox_config::parse("demo.toml", text).unwrap();
        c.data_dir = data.to_path_buf();
        c
    }

    fn get(config: &Config, host: &str, from: &str) -> Response<SiteBody> {
        let req = Request::builder()
            .uri("/")
            .header("host", host)
            .body(())
            .unwrap();
        let peer: SocketAddr = format!("{from}:40000").parse().unwrap();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(handle(config, &req, peer))
    }

    #[test]
    fn the_intranet_and_the_admin_pages_are_for_the_office_only() {
        let dir = tempfile::tempdir().unwrap();
        let c = demo(dir.path());
        prepare(&c).unwrap();
        assert_eq!(site_for(&c, Some("CORP.office.test:80")), Site::Corp);
        assert_eq!(site_for(&c, Some("corp")), Site::Corp);
        assert_eq!(site_for(&c, Some("admin.office.test.")), Site::Admin);
        assert_eq!(site_for(&c, Some("203.0.113.10")), Site::Www);
        assert_eq!(site_for(&c, Some("[2001:db8::1]:80")), Site::Www);
        assert_eq!(site_for(&c, None), Site::Www);
        // From the office (a LAN address) and from the Internet.
        assert_eq!(
            get(&c, "corp.office.test", "192.168.1.50").status(),
            StatusCode::OK
        );
        assert_eq!(
            get(&c, "corp.office.test", "198.51.100.7").status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            get(&c, "admin.office.test", "198.51.100.7").status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            get(&c, "www.office.test", "198.51.100.7").status(),
            StatusCode::OK
        );
        assert_eq!(
            get(&c, "203.0.113.10", "198.51.100.7").status(),
            StatusCode::OK
        );
    }

    #[test]
    fn paths_decode_and_encode() {
        assert_eq!(percent_decode("/a%20b/c").unwrap(), "/a b/c");
        assert!(percent_decode("/a%2").is_none());
        assert!(percent_decode("/a%00").is_none());
        assert!(percent_decode("/%ff").is_none());
        assert_eq!(percent_encode("a b&c.html"), "a%20b%26c.html");
    }

    #[test]
    fn files_outside_the_site_and_hidden_ones_are_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("www");
        std::fs::create_dir_all(root.join("docs")).unwrap();
        std::fs::write(root.join("docs/a.txt"), "hello").unwrap();
        std::fs::write(root.join(".secret"), "no").unwrap();
        std::fs::write(dir.path().join("outside"), "no").unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside"), root.join("link")).unwrap();
        let c = Conditions::default();
        let status = |p: &str| serve_path(&root, p, &c, false).status();
        assert_eq!(status("/docs/a.txt"), StatusCode::OK);
        assert_eq!(status("/docs"), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(status("/docs/"), StatusCode::OK);
        assert_eq!(status("/.secret"), StatusCode::NOT_FOUND);
        assert_eq!(status("/../outside"), StatusCode::NOT_FOUND);
        assert_eq!(status("/%2e%2e/outside"), StatusCode::NOT_FOUND);
        assert_eq!(status("/link"), StatusCode::NOT_FOUND);
        assert_eq!(status("/nothing"), StatusCode::NOT_FOUND);
        assert_eq!(status("/a%zz"), StatusCode::BAD_REQUEST);
        let r = serve_path(&root, "/docs/a.txt", &c, false);
        let etag = r.headers()["etag"].to_str().unwrap().to_string();
        let again = Conditions {
            if_none_match: Some(etag),
            if_modified_since: None,
        };
        assert_eq!(
            serve_path(&root, "/docs/a.txt", &again, false).status(),
            StatusCode::NOT_MODIFIED
        );
    }
}
