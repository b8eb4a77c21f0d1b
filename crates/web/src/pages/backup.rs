//! The Backup page's own parts: the archives in the nightly folder, newest first, and
//! `GET /backup/download`, a fresh archive of the running box (store's `backup`), encrypted
//! when `[backup] passphrase` is set. The archive is written to a temporary file, which
//! is unlinked at once and streamed from its open handle: a download cut off leaves
//! nothing behind, and a large mailbox is never held in memory.

use std::io::Read;
use std::path::Path;

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use officebox_config::Config;
use officebox_store::date::datetime;
use tracing::warn;

use crate::app::Shared;
use crate::routes::Me;

/// Bytes read from the archive per chunk of the response.
const CHUNK: usize = 256 * 1024;

/// One archive in the folder.
struct Archive {
    name: String,
    bytes: u64,
    made: i64,
}

fn archives(dir: &Path) -> std::io::Result<Vec<Archive>> {
    let mut found: Vec<Archive> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            if !(name.ends_with(".tar.gz") || name.ends_with(".tar.gz.age")) {
                return None;
            }
            let meta = e.metadata().ok()?;
            let made = meta
                .modified()
                .ok()?
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?
                .as_secs();
            Some(Archive {
                name,
                bytes: meta.len(),
                made: i64::try_from(made).unwrap_or(0),
            })
        })
        .collect();
    found.sort_by(|a, b| b.name.cmp(&a.name));
    Ok(found)
}

/// The page's top: what the nightly backup has written, and the download.
pub(crate) async fn panel(config: &Config) -> Markup {
    let folder = config.backup.path.clone();
    let listed = match folder.clone() {
        Some(dir) if config.backup.enabled => tokio::task::spawn_blocking(move || archives(&dir))
            .await
            .ok(),
        _ => None,
    };
    let encrypted = config.backup.passphrase.is_some();
    html! {
        p {
            a.button href="/backup/download" download { "Download a backup now" }
            " "
            @if encrypted {
                "Encrypted with the backup passphrase."
            } @else {
                "Not encrypted: set a passphrase below to encrypt every archive."
            }
        }
        @match (&listed, &folder) {
            (Some(Ok(list)), Some(dir)) => {
                h2 { "Archives in " (dir.display()) }
                @if list.is_empty() {
                    p { "None yet: the first is written at " (format_at(config.backup.at)) "." }
                } @else {
                    table {
                        thead { tr { th { "Archive" } th { "Size" } th { "Written (UTC)" } } }
                        tbody {
                            @for a in list {
                                tr {
                                    td { (a.name) }
                                    td { (format!("{:.1} MB", a.bytes as f64 / 1e6)) }
                                    td { (datetime(a.made)) }
                                }
                            }
                        }
                    }
                }
            }
            (Some(Err(e)), Some(dir)) => {
                p.error role="alert" { "The backup folder " (dir.display()) " cannot be read: " (e.to_string()) }
            }
            _ => {
                p { "Nightly backups are off. Turn them on below, with a folder on a USB disk or another disk." }
            }
        }
    }
}

fn format_at((h, m, s): (u8, u8, u8)) -> String {
    if s == 0 {
        format!("{h:02}:{m:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

/// `GET /backup/download`: a fresh archive of the box.
pub(crate) async fn download(State(app): State<Shared>, _me: Me) -> Response {
    let config = app.config();
    let config_path = app.context.config_path.clone();
    let made = tokio::task::spawn_blocking(move || {
        let host = config.network.hostname.clone();
        let passphrase = config.backup.passphrase.clone();
        let name = officebox_store::backup::archive_name(&host, passphrase.is_some());
        // Two downloads at once each have their own.
        static DOWNLOADS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = DOWNLOADS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp =
            std::env::temp_dir().join(format!(".officebox-download-{}-{n}", std::process::id()));
        let manifest = officebox_store::backup::manifest_now(env!("CARGO_PKG_VERSION"), &host);
        let result = officebox_store::backup::write(
            &config_path,
            &config.data_dir,
            &tmp,
            &manifest,
            passphrase.as_deref(),
        )
        .map_err(|e| e.to_string())
        .and_then(|_| std::fs::File::open(&tmp).map_err(|e| e.to_string()));
        // Unlinked now: the open handle is all that is left of it.
        let _ = std::fs::remove_file(&tmp);
        result.map(|file| (name, file))
    })
    .await;
    let (name, file) = match made {
        Ok(Ok(made)) => made,
        Ok(Err(error)) => {
            warn!(message = "web: a backup download failed", %error);
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(CONTENT_TYPE, "text/plain; charset=utf-8")],
                format!("The backup could not be made: {error}\n"),
            )
                .into_response();
        }
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let length = file.metadata().map(|m| m.len()).ok();
    let body = futures_util::stream::unfold(Some(file), |state| async move {
        let mut file = state?;
        let read = tokio::task::spawn_blocking(move || {
            let mut chunk = vec![0; CHUNK];
            let n = file.read(&mut chunk);
            (
                file,
                n.map(|n| {
                    chunk.truncate(n);
                    chunk
                }),
            )
        })
        .await;
        match read {
            Ok((_, Ok(chunk))) if chunk.is_empty() => None,
            Ok((file, Ok(chunk))) => Some((Ok(bytes::Bytes::from(chunk)), Some(file))),
            Ok((_, Err(e))) => Some((Err(e), None)),
            Err(e) => Some((Err(std::io::Error::other(e)), None)),
        }
    });
    let mut response = (
        StatusCode::OK,
        [
            (CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response();
    if let Some(n) = length
        && let Ok(v) = axum::http::HeaderValue::from_str(&n.to_string())
    {
        response.headers_mut().insert(CONTENT_LENGTH, v);
    }
    response
}
