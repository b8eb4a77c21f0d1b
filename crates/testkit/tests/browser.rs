//! The browser harness's own check: `crates/officebox/tests/web/selftest.py` drives
//! headless Chromium through every helper of `browser.py` against pages it serves
//! itself on 127.0.0.1, and checks that chromedriver and Chromium are gone afterwards.
//! Needs chromium, chromium-driver and python3-selenium (scripts/test installs them).

use std::error::Error;
use std::fs;

use officebox_testkit::{
    describe_output, require_browser, run_browser_script, screenshots_dir, web_tests_dir,
};

#[test]
fn browser_helpers_work_in_headless_chromium() -> Result<(), Box<dyn Error>> {
    require_browser();
    let shots = screenshots_dir("browser-selftest");
    let script = web_tests_dir().join("selftest.py");
    // The self-test serves its own pages; --url is not used.
    let out = run_browser_script(&script, "http://127.0.0.1:1", &shots, &[])?;
    assert!(out.status.success(), "{}", describe_output(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(" passed, 0 failed"),
        "{}",
        describe_output(&out)
    );
    let pngs = fs::read_dir(&shots)?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".png"))
        .count();
    assert!(pngs >= 5, "only {pngs} screenshots in {}", shots.display());
    Ok(())
}
