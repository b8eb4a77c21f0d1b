//! The admin pages in headless Chromium (Selenium scripts in tests/web/), against a
//! running officebox; screenshots of each page go to target/web-screenshots/.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::path::{Path, PathBuf};
use std::process::Command;

use officebox_testkit::{Officebox, READY_TIMEOUT, TestConfig};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_officebox"))
}

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web")
}

/// Kept as a test artifact (not in git): target/web-screenshots/NAME.
fn shots(name: &str) -> PathBuf {
    officebox_testkit::screenshots_dir(name)
}

fn start(c: &TestConfig) -> Officebox {
    let ob = Officebox::start(bin(), &c.text()).expect("starts");
    ob.peer()
        .wait_for_log("web: serving the admin pages", READY_TIMEOUT)
        .expect("the admin pages are served");
    ob
}

fn run(script: &str, url: &str, shots: &Path, extra: &[&str], ob: &Officebox) {
    let out = officebox_testkit::run_browser_script(&scripts().join(script), url, shots, extra)
        .unwrap_or_else(|e| panic!("{script}: {e}\nofficebox:\n{}", ob.log()));
    assert!(
        out.status.success(),
        "{script}:\n{}\n{}\nofficebox:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        ob.log()
    );
}

/// One browser at a time: three headless Chromiums on a two-core machine make each
/// other's waits time out.
static ONE_BROWSER: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn preconditions() -> std::sync::MutexGuard<'static, ()> {
    officebox_testkit::require_browser();
    ONE_BROWSER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[test]
fn the_admin_pages_change_settings_safely_in_a_real_browser() {
    let _one = preconditions();
    let c = TestConfig::demo()
        .free_ports()
        .set("web.confirm_timeout", "5s");
    let url = format!("http://127.0.0.1:{}", c.int("web.admin_port"));
    let ob = start(&c);
    let config = ob.config_path().display().to_string();
    run(
        "admin.py",
        &url,
        &shots("admin"),
        &["--config", &config, "--confirm-seconds", "5"],
        &ob,
    );
    assert!(
        ob.log()
            .contains("web: the change was not confirmed in time")
    );
}

#[test]
fn the_admin_pages_add_a_user_that_the_command_line_sees() {
    let _one = preconditions();
    let c = TestConfig::demo().free_ports();
    let url = format!("http://127.0.0.1:{}", c.int("web.admin_port"));
    let ob = start(&c);
    run("add_user.py", &url, &shots("add-user"), &[], &ob);
    let out = Command::new(bin())
        .args(["user", "list", "--config"])
        .arg(ob.config_path())
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(
        list.lines()
            .any(|l| l.starts_with("carol") && l.contains("103")),
        "{list}"
    );
}

#[test]
fn five_wrong_passwords_and_the_admin_pages_slow_down_and_refuse() {
    let _one = preconditions();
    let c = TestConfig::demo().free_ports();
    let url = format!("http://127.0.0.1:{}", c.int("web.admin_port"));
    let ob = start(&c);
    run("login_limit.py", &url, &shots("login-limit"), &[], &ob);
}
