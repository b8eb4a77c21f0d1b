//! Preconditions that fail loudly: a skipped test checks nothing.

use std::env;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The effective uid, from the `Uid:` line of /proc/self/status
/// (real, effective, saved, filesystem).
fn euid() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Panics unless the test runs as root (effective uid 0).
pub fn require_root() {
    if euid() != Some(0) {
        panic!("this test needs root (it creates network namespaces); run scripts/test as root");
    }
}

fn find_program(name: &str) -> bool {
    let executable = |p: &Path| {
        fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.contains('/') {
        return executable(Path::new(name));
    }
    env::var_os("PATH")
        .is_some_and(|path| env::split_paths(&path).any(|dir| executable(&dir.join(name))))
}

/// Panics unless `name` is an executable on `PATH`; the message names the Debian
/// `package` that provides it.
pub fn require_program(name: &str, package: &str) {
    if !find_program(name) {
        panic!("`{name}` is not installed; scripts/test installs it (apt package {package})");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sh_and_not_nonsense() {
        assert!(find_program("sh"));
        assert!(find_program("/bin/sh"));
        assert!(!find_program("obx-no-such-program"));
    }

    #[test]
    fn missing_program_message_names_the_package() {
        let err = std::panic::catch_unwind(|| require_program("obx-no-such-program", "obx-pkg"))
            .err()
            .and_then(|e| e.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        assert_eq!(
            err,
            "`obx-no-such-program` is not installed; scripts/test installs it (apt package obx-pkg)"
        );
    }

    #[test]
    fn euid_is_readable() {
        assert!(euid().is_some());
    }
}
