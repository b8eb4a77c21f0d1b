//! Browser tests of the web admin pages: Python scripts that drive headless Chromium
//! with Selenium (library `crates/officebox/tests/web/browser.py`), run against a
//! running officebox, with their screenshots kept under `target/web-screenshots/`.
//!
//! ```no_run
//! use officebox_testkit::{require_browser, run_browser_script, screenshots_dir, web_tests_dir};
//!
//! # fn main() -> std::io::Result<()> {
//! require_browser();
//! let url = "http://127.0.0.1:8080"; // officebox's web.admin_port
//! let shots = screenshots_dir("login");
//! let out = run_browser_script(&web_tests_dir().join("login.py"), url, &shots, &[])?;
//! assert!(out.status.success(), "{}", officebox_testkit::describe_output(&out));
//! # Ok(())
//! # }
//! ```

use std::env;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::cmd::{describe, sanitize, send_signal};
use crate::peer::exited_unreaped;
use crate::scratch_dir;

/// Debian's python3: python3-selenium is installed for it (another `python3` on
/// `PATH`, such as a pyenv one, may lack selenium).
pub const PYTHON: &str = "/usr/bin/python3";

/// How long [`run_browser_script`] lets a script run before it kills it.
pub const BROWSER_SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);

/// How long a script that timed out gets between SIGTERM (on which `browser.py` closes
/// the browser) and SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(10);

const POLL: Duration = Duration::from_millis(20);

/// The directory of `browser.py` and the browser test scripts
/// (`crates/officebox/tests/web`).
pub fn web_tests_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../officebox/tests/web");
    dir.canonicalize().unwrap_or(dir)
}

/// Panics unless what browser tests need is installed: Debian's python3 with selenium,
/// chromium and chromedriver. The message names the packages (scripts/test installs them).
pub fn require_browser() {
    for (program, package) in [
        (PYTHON, "python3"),
        ("/usr/bin/chromium", "chromium"),
        ("/usr/bin/chromedriver", "chromium-driver"),
    ] {
        crate::require_program(program, package);
    }
    let ok = Command::new(PYTHON)
        .args(["-c", "import selenium"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        panic!(
            "{PYTHON} cannot import selenium; scripts/test installs it (apt package python3-selenium)"
        );
    }
}

/// Runs `python3 SCRIPT --url BASE_URL --shots SHOTS EXTRA...` (Debian's [`PYTHON`],
/// with [`web_tests_dir`] on `PYTHONPATH` so the script can `import browser`) and
/// returns its exit status and output, whether it passed or not: assert on
/// `status.success()` and put [`describe_output`] in the message.
///
/// The script runs in its own process group, which also holds the chromedriver and
/// Chromium it starts. It may take [`BROWSER_SCRIPT_TIMEOUT`]; then the group gets
/// SIGTERM, and SIGKILL after a grace period, and the error (`TimedOut`) quotes the
/// output. Whatever the script left running in its group is SIGKILLed when it exits.
pub fn run_browser_script(
    script: &Path,
    base_url: &str,
    shots: &Path,
    extra_args: &[&str],
) -> io::Result<Output> {
    run_browser_script_with_timeout(script, base_url, shots, extra_args, BROWSER_SCRIPT_TIMEOUT)
}

/// [`run_browser_script`] with another time limit.
pub fn run_browser_script_with_timeout(
    script: &Path,
    base_url: &str,
    shots: &Path,
    extra_args: &[&str],
    timeout: Duration,
) -> io::Result<Output> {
    let cmd = script_command(Command::new(PYTHON), script, base_url, shots, extra_args);
    run_script(cmd, timeout, TERM_GRACE)
}

/// [`run_browser_script`] inside network namespace `ns` (a browser on the office's LAN).
pub fn run_browser_script_in(
    ns: &crate::Netns,
    script: &Path,
    base_url: &str,
    shots: &Path,
    extra_args: &[&str],
) -> io::Result<Output> {
    let cmd = script_command(ns.command(PYTHON), script, base_url, shots, extra_args);
    run_script(cmd, BROWSER_SCRIPT_TIMEOUT, TERM_GRACE)
}

/// `python3 SCRIPT --url BASE --shots DIR EXTRA...` on `cmd` (python3, possibly wrapped).
fn script_command(
    mut cmd: Command,
    script: &Path,
    base_url: &str,
    shots: &Path,
    extra_args: &[&str],
) -> Command {
    cmd.arg(script)
        .arg("--url")
        .arg(base_url)
        .arg("--shots")
        .arg(shots)
        .args(extra_args);
    cmd
}

/// Runs `cmd` (a Python script) with the browser library on its path, as above.
fn run_script(mut cmd: Command, timeout: Duration, grace: Duration) -> io::Result<Output> {
    let mut path = OsString::from(web_tests_dir());
    if let Some(old) = env::var_os("PYTHONPATH").filter(|p| !p.is_empty()) {
        path.push(":");
        path.push(old);
    }
    let dir = scratch_dir("browser-script")?;
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    cmd.env("PYTHONPATH", path)
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(File::create(&out_path)?)
        .stderr(File::create(&err_path)?)
        .process_group(0);
    let line = describe(&cmd);
    let mut child = cmd
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("could not run `{line}`: {e}")))?;
    let pid = child.id();
    let group = format!("-{pid}");

    // Until the child is reaped its pid, and so its process group id, is ours: only
    // then may the group be signalled.
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    while !exited_unreaped(pid) {
        if Instant::now() >= deadline {
            timed_out = true;
            let _ = send_signal("TERM", &group);
            let grace = Instant::now() + grace;
            while !exited_unreaped(pid) && Instant::now() < grace {
                sleep(POLL);
            }
            break;
        }
        sleep(POLL);
    }
    // Whatever is left in the group (the script, or a browser it left behind).
    let _ = send_signal("KILL", &group);
    let status = child.wait()?;
    let output = Output {
        status,
        stdout: fs::read(&out_path).unwrap_or_default(),
        stderr: fs::read(&err_path).unwrap_or_default(),
    };
    if timed_out {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "`{line}` did not finish within {timeout:?} and was killed\n{}",
                describe_output(&output)
            ),
        ));
    }
    Ok(output)
}

/// A script's exit status, stdout and stderr, for an assertion message.
pub fn describe_output(out: &Output) -> String {
    format!(
        "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim_end(),
        String::from_utf8_lossy(&out.stderr).trim_end()
    )
}

/// `target/web-screenshots/{test_name}/`, emptied and created: where a browser test keeps
/// its screenshots as artifacts of the run (target/ is not in git). The target
/// directory is `CARGO_TARGET_DIR` if set, else the one this test binary was built
/// in, else the workspace's `target/`. Give each test its own name. Panics if the
/// directory cannot be made.
pub fn screenshots_dir(test_name: &str) -> PathBuf {
    let dir = target_dir()
        .join("web-screenshots")
        .join(sanitize(test_name));
    if dir.exists() {
        fs::remove_dir_all(&dir)
            .unwrap_or_else(|e| panic!("removing old screenshots in {}: {e}", dir.display()));
    }
    fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("creating screenshot directory {}: {e}", dir.display()));
    dir
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn target_dir() -> PathBuf {
    if let Some(dir) = env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        return if dir.is_absolute() {
            dir
        } else {
            workspace_root().join(dir)
        };
    }
    // Cargo marks its target directory with CACHEDIR.TAG; test binaries live in
    // target/[TRIPLE/]PROFILE/deps/.
    env::current_exe()
        .ok()
        .and_then(|exe| {
            exe.ancestors()
                .skip(1)
                .find(|d| d.join("CACHEDIR.TAG").is_file())
                .map(Path::to_path_buf)
        })
        .unwrap_or_else(|| workspace_root().join("target"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn python_script(dir: &Path, name: &str, text: &str) -> io::Result<PathBuf> {
        let path = dir.join(name);
        fs::write(&path, text)?;
        Ok(path)
    }

    #[test]
    fn script_gets_its_arguments_and_the_library_path() -> io::Result<()> {
        let dir = scratch_dir("browser-args")?;
        let script = python_script(
            dir.path(),
            "args.py",
            "import os, sys\n\
             print(sys.argv[1:])\n\
             print(os.environ['PYTHONPATH'].split(':')[0])\n\
             print('err', file=sys.stderr)\n\
             sys.exit(3)\n",
        )?;
        let out = run_browser_script(&script, "http://127.0.0.1:1", Path::new("/tmp/s"), &["-x"])?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(3), "{}", describe_output(&out));
        assert!(
            stdout.contains("['--url', 'http://127.0.0.1:1', '--shots', '/tmp/s', '-x']"),
            "{stdout}"
        );
        let libdir = stdout.lines().nth(1).unwrap_or_default();
        assert!(
            Path::new(libdir).join("browser.py").is_file(),
            "PYTHONPATH starts with {libdir}"
        );
        assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
        Ok(())
    }

    #[test]
    fn a_script_that_hangs_is_killed_with_its_group() -> io::Result<()> {
        let dir = scratch_dir("browser-hang")?;
        // The script starts a child in its group, and ignores SIGTERM.
        let pidfile = dir.path().join("child.pid");
        let script = python_script(
            dir.path(),
            "hang.py",
            &format!(
                "import signal, subprocess, time\n\
                 signal.signal(signal.SIGTERM, signal.SIG_IGN)\n\
                 p = subprocess.Popen(['sleep', '600'])\n\
                 open({:?}, 'w').write(str(p.pid))\n\
                 print('started', flush=True)\n\
                 time.sleep(600)\n",
                pidfile.display().to_string()
            ),
        )?;
        let mut cmd = Command::new(PYTHON);
        cmd.arg(&script);
        let start = Instant::now();
        let err = run_script(cmd, Duration::from_secs(1), Duration::from_millis(300))
            .err()
            .ok_or_else(|| io::Error::other("a hanging script succeeded"))?;
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert!(err.to_string().contains("started"), "{err}");
        let child: u32 = fs::read_to_string(&pidfile)?
            .trim()
            .parse()
            .map_err(io::Error::other)?;
        // Killed (it may linger as a zombie until init reaps it).
        assert!(
            crate::wait_until(Duration::from_secs(5), || exited_unreaped(child)),
            "the script's child {child} survived"
        );
        Ok(())
    }

    #[test]
    fn screenshots_go_under_target() {
        let dir = screenshots_dir("testkit selftest/x");
        assert!(dir.is_dir());
        assert!(
            dir.ends_with("web-screenshots/testkit_selftest_x"),
            "{}",
            dir.display()
        );
        let stale = dir.join("01-old.png");
        assert!(fs::write(&stale, b"x").is_ok());
        let again = screenshots_dir("testkit selftest/x");
        assert_eq!(again, dir);
        assert!(!stale.exists(), "old screenshots are removed");
        assert!(fs::remove_dir(&dir).is_ok());
    }

    #[test]
    fn library_dir_holds_browser_py() {
        assert!(web_tests_dir().join("browser.py").is_file());
        assert!(web_tests_dir().join("selftest.py").is_file());
    }
}
