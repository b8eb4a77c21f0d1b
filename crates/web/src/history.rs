//! The last versions of the config: each save keeps the file as it was before (and the
//! first save also the one before that) in `data_dir/config-history/NNNNNN.toml`, twenty
//! at most. The history page lists them with their time and a diff against the current
//! file, and rolls back to any of them (itself a change that must be confirmed).

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use maud::{Markup, html};
use officebox_config::Config;

use crate::html;

/// Versions kept.
pub const KEEP: usize = 20;

fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("config-history")
}

/// The saved versions, oldest first: (number, path).
fn versions(data_dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut v: Vec<(u64, PathBuf)> = std::fs::read_dir(dir(data_dir))
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let n = name.strip_suffix(".toml")?.parse().ok()?;
                    Some((n, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Keeps `previous` (the file before a save) as the newest version, then trims to
/// [`KEEP`]. Blocking.
pub fn record(data_dir: &Path, previous: &str, _new: &str) -> Result<(), String> {
    let d = dir(data_dir);
    std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    let list = versions(data_dir);
    if list
        .last()
        .and_then(|(_, p)| std::fs::read_to_string(p).ok())
        .is_some_and(|t| t == previous)
    {
        return Ok(());
    }
    let next = list.last().map_or(1, |(n, _)| n + 1);
    officebox_store::write_atomic(
        &d.join(format!("{next:06}.toml")),
        previous.as_bytes(),
        0o600,
    )
    .map_err(|e| e.to_string())?;
    let list = versions(data_dir);
    for (_, p) in list.iter().take(list.len().saturating_sub(KEEP)) {
        let _ = std::fs::remove_file(p);
    }
    Ok(())
}

/// The text of version `n`.
pub fn version_text(config: &Config, n: &str) -> Option<String> {
    let n: u64 = n.parse().ok()?;
    let (_, p) = versions(&config.data_dir)
        .into_iter()
        .find(|(v, _)| *v == n)?;
    std::fs::read_to_string(p).ok()
}

/// A line diff (the longest common subsequence): lines as (' '|'-'|'+', text).
pub fn diff<'a>(old: &'a str, new: &'a str) -> Vec<(char, &'a str)> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    // Config files are small; bound the work anyway.
    if a.len() * b.len() > 4_000_000 {
        return a
            .iter()
            .map(|l| ('-', *l))
            .chain(b.iter().map(|l| ('+', *l)))
            .collect();
    }
    // lcs[i * w + j]: the length of the longest common subsequence of a[i..] and b[j..].
    let w = b.len() + 1;
    let mut lcs = vec![0u32; (a.len() + 1) * w];
    let at = |lcs: &[u32], i: usize, j: usize| lcs.get(i * w + j).copied().unwrap_or(0);
    for (i, x) in a.iter().enumerate().rev() {
        for (j, y) in b.iter().enumerate().rev() {
            let v = if x == y {
                at(&lcs, i + 1, j + 1) + 1
            } else {
                at(&lcs, i + 1, j).max(at(&lcs, i, j + 1))
            };
            if let Some(cell) = lcs.get_mut(i * w + j) {
                *cell = v;
            }
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    loop {
        match (a.get(i), b.get(j)) {
            (None, None) => break,
            (Some(x), Some(y)) if x == y => {
                out.push((' ', *x));
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) => {
                if at(&lcs, i, j + 1) >= at(&lcs, i + 1, j) {
                    out.push(('+', *y));
                    j += 1;
                } else {
                    out.push(('-', *x));
                    i += 1;
                }
            }
            (None, Some(y)) => {
                out.push(('+', *y));
                j += 1;
            }
            (Some(x), None) => {
                out.push(('-', *x));
                i += 1;
            }
        }
    }
    out
}

/// The history page: every version kept, newest first.
pub fn list_page(config: &Config, me: (&str, &str)) -> Markup {
    let list = versions(&config.data_dir);
    let when = |p: &Path| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or_else(String::new, |d| format!("{}s since 1970", d.as_secs()))
    };
    let body = html! {
        p { "Each save keeps the settings as they were. Open a version to see how it differs from today's, and to go back to it." }
        table {
            tr { th { "Version" } th { "Saved" } }
            @if list.is_empty() {
                tr { td colspan="2" { "No saves yet." } }
            }
            @for (n, p) in list.iter().rev() {
                tr {
                    td { a href={ "/history/" (n) } { "Version " (n) } }
                    td { (when(p)) }
                }
            }
        }
    };
    html::page("Config History", "/history", Some(me), None, body)
}

/// Version `n` against `current` (the file as it is), with the button that goes back to
/// it; `None` for no such version.
pub fn show_page(config: &Config, me: (&str, &str), n: &str, current: &str) -> Option<Markup> {
    let old = version_text(config, n)?;
    let changes = diff(current, &old);
    let same = changes.iter().all(|(c, _)| *c == ' ');
    let mut lines = String::new();
    for (c, line) in changes.into_iter().filter(|(c, _)| *c != ' ') {
        lines.push(c);
        lines.push(' ');
        lines.push_str(line);
        lines.push('\n');
    }
    let body = html! {
        p {
            "What changes if you go back to version " (n) " (" code { "-" }
            " today's lines that go, " code { "+" } " the lines that come back):"
        }
        pre {
            @if same { "(no difference)\n" }
            (lines)
        }
        form method="post" action={ "/history/" (n) "/rollback" } id="rollback" {
            (html::csrf_field(me.1))
            button type="submit" { "Go back to version " (n) }
        }
    };
    Some(html::page(
        "Config History",
        "/history",
        Some(me),
        None,
        body,
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn diffs_show_removed_and_added_lines() {
        let d = diff("a\nb\nc\n", "a\nx\nc\nd\n");
        assert_eq!(
            d,
            vec![(' ', "a"), ('+', "x"), ('-', "b"), (' ', "c"), ('+', "d")]
        );
    }

    #[test]
    fn at_most_twenty_versions_are_kept_and_repeats_are_not() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..25 {
            record(dir.path(), &format!("v{i}"), "").unwrap();
            record(dir.path(), &format!("v{i}"), "").unwrap();
        }
        let v = versions(dir.path());
        assert_eq!(v.len(), KEEP);
        assert_eq!(v.last().unwrap().0, 25);
        assert_eq!(std::fs::read_to_string(&v[0].1).unwrap(), "v5");
    }
}
