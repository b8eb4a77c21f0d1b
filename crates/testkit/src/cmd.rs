//! Running helper commands (`ip`, `kill`) with readable errors.

use std::ffi::OsStr;
use std::io;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A number unique within this process, for naming namespaces and links.
pub(crate) fn next_id() -> u32 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// Keeps `[A-Za-z0-9_-]`, replaces everything else with `_`.
pub(crate) fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn word(s: &OsStr) -> String {
    let s = s.to_string_lossy();
    if s.is_empty() || s.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'') {
        format!("{s:?}")
    } else {
        s.into_owned()
    }
}

/// The command line of `cmd`, for error messages.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut out = word(cmd.get_program());
    for arg in cmd.get_args() {
        out.push(' ');
        out.push_str(&word(arg));
    }
    out
}

/// Runs `cmd` to completion; a non-zero exit is an error naming the command line,
/// the exit status and what the command printed.
pub(crate) fn run_checked(cmd: &mut Command) -> io::Result<Output> {
    let line = describe(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("could not run `{line}`: {e}")))?;
    if out.status.success() {
        return Ok(out);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut msg = format!("`{line}` failed ({})", out.status);
    if !stderr.trim().is_empty() {
        msg.push_str(&format!("; stderr: {}", stderr.trim()));
    }
    if !stdout.trim().is_empty() {
        msg.push_str(&format!("; stdout: {}", stdout.trim()));
    }
    Err(io::Error::other(msg))
}

/// `ip [-n NS] ARGS...`
pub(crate) fn ip(netns: Option<&str>) -> Command {
    let mut cmd = Command::new("ip");
    if let Some(ns) = netns {
        cmd.args(["-n", ns]);
    }
    cmd
}

/// Sends signal `sig` (a name such as `TERM` or a number) to `target`, which is a pid
/// or `-PGID`. Callers guarantee the target is theirs. Uses the shell's builtin
/// `kill`, so nothing beyond `sh` is needed.
pub(crate) fn send_signal(sig: &str, target: &str) -> io::Result<()> {
    if sig.is_empty() || !sig.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a signal name: {sig:?}"),
        ));
    }
    run_checked(
        Command::new("sh")
            .args(["-c", "kill -s \"$1\" -- \"$2\"", "sh", sig, target])
            .stdout(Stdio::null()),
    )
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_quotes_awkward_words() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo hi", ""]);
        assert_eq!(describe(&cmd), r#"sh -c "echo hi" """#);
    }

    #[test]
    fn failure_names_command_status_and_stderr() {
        let err = run_checked(Command::new("sh").args(["-c", "echo oops >&2; exit 3"]))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("sh -c"), "{err}");
        assert!(err.contains("exit status: 3"), "{err}");
        assert!(err.contains("oops"), "{err}");
    }

    #[test]
    fn signal_names_are_checked() {
        assert!(send_signal("TERM; rm", "1").is_err());
        assert!(send_signal("", "1").is_err());
    }

    #[test]
    fn sanitize_keeps_safe_characters() {
        assert_eq!(sanitize("dns-fwd_1 x/y"), "dns-fwd_1_x_y");
    }
}
