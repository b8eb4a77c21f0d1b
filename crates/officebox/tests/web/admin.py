"""The admin pages in a real browser (headless Chromium): log in, a DHCP range outside
the LAN refused beside its field with the file unchanged, a user with an extension
added, an alias added, the security mode switched and kept, switched again and not
confirmed (the old mode comes back by itself; the open page counts down and says so),
a rollback to an earlier version, and every page screenshotted. The Rust test (tests/web.rs) checks the command line's view
of the same changes afterwards."""

import re
import time

from selenium.webdriver.common.by import By

from browser import Browser, script_args

p = script_args("the admin pages")
p.add_argument("--config", required=True, help="the config file officebox runs from")
p.add_argument("--confirm-seconds", type=int, required=True)
args = p.parse_args()


def config_text():
    with open(args.config, encoding="utf-8") as f:
        return f.read()


def mode():
    m = re.search(r'^mode = "([a-z-]+)"', config_text()[config_text().index("[security]"):], re.M)
    return m.group(1) if m else None


with Browser(args.url, args.shots) as b:
    b.get("/")
    b.expect("Log in" in b.text(), "the login page comes first")
    b.screenshot("login")
    b.login("admin", "demo-admin")
    b.expect("Services" in b.text() and "Phones registered" in b.text(), "the home page")
    b.screenshot("home")

    # A DHCP range outside the LAN: refused beside the field, nothing written.
    before = config_text()
    b.get("/dhcp")
    b.screenshot("dhcp")
    b.fill("dhcp.range", "10.9.9.1, 10.9.9.20")
    b.submit("Save")
    err = b.field_error("dhcp.range")
    b.expect("outside the LAN" in err, "the error is beside the range: %r" % err)
    b.expect(config_text() == before, "the file is unchanged")
    b.screenshot("dhcp-refused")

    # A user with an extension.
    b.get("/users")
    b.fill("login", "carol")
    b.fill("name", "Carol Example")
    b.fill("extension", "103")
    b.fill("password", "carol-secret")
    b.submit("Add user")
    b.wait_for_text("Saved and applied.")
    b.expect("Carol Example" in b.text(), "carol is listed")
    b.screenshot("users")

    # An alias.
    b.get("/aliases")
    b.fill("alias", "team")
    b.fill("members", "alice, carol")
    b.submit("Save alias")
    b.wait_for_text("Saved and applied.")
    b.expect("team@office.test" in b.text(), "the alias is listed")
    b.screenshot("aliases")

    # Security mode switched and kept.
    b.get("/security")
    b.screenshot("security")
    b.fill("security.mode", "router")
    b.submit("Save")
    b.wait_for_text("Keep these settings")
    b.screenshot("confirm")
    b.submit("Keep these settings")
    b.wait_for_text("Saved and applied.")
    b.expect(mode() == "router", "router kept: %r" % mode())
    time.sleep(args.confirm_seconds + 2)
    b.expect(mode() == "router", "a kept change stays: %r" % mode())

    # Switched again and not confirmed: the previous mode comes back by itself.
    b.get("/security")
    b.fill("security.mode", "firewall-nat-dmz")
    b.submit("Save")
    b.wait_for_text("Keep these settings")
    b.expect(mode() == "firewall-nat-dmz", "applied at once")
    b.console_errors()  # the refused DHCP range's 422 is behind us
    first = int(b.find("#countdown").text)
    b.expect(first > 1, "seconds are left to confirm: %d" % first)
    b.wait_for(lambda d: int(d.find_element(By.ID, "countdown").text) < first,
               "the countdown runs on the page", timeout=3)
    deadline = time.time() + args.confirm_seconds + 10
    while mode() != "router" and time.time() < deadline:
        time.sleep(0.5)
    b.expect(mode() == "router", "the old mode is back: %r" % mode())
    # The page, left open, says so itself and no longer offers to keep the change.
    b.wait_for_text("The time ran out")  # said by the page itself
    b.expect(not b.find("#confirm").is_displayed(), "the keep button is gone")
    b.screenshot("confirm-timed-out")
    errors = [e for e in b.console_errors() if "favicon" not in e]
    b.expect(errors == [], "no script errors or CSP refusals: %r" % errors)

    # Roll back to an earlier version: the one before the first security change.
    b.get("/history")
    b.screenshot("history")
    versions = re.findall(r"Version (\d+)", b.text())
    b.expect(len(versions) >= 3, "versions are listed: %r" % versions)
    # The oldest version is the file as it was before any change.
    b.click_link("Version %s" % min(versions, key=int))
    b.screenshot("history-diff")
    b.expect("carol" in b.text(), "the diff shows carol going away")
    b.submit("Go back to version %s" % min(versions, key=int))
    b.wait_for_text("Keep these settings")
    b.submit("Keep these settings")
    b.wait_for_text("Saved and applied.")
    b.expect(mode() == "firewall-nat", "the original mode is back: %r" % mode())
    b.expect("carol" not in config_text(), "and carol is gone again")

    # The live pages.
    b.get("/mail")
    b.expect("Waiting to go out" in b.text(), "the mail queue is shown")
    b.screenshot("mail")
    b.get("/phones")
    b.expect("Registered phones" in b.text() and "Calls now" in b.text(), "phones and calls")
    b.screenshot("phones")
    b.click_link("The call log")
    b.expect("Call Log" in b.text() and "Download CSV" in b.text() and "0 calls" in b.text(),
             "the call log, from the Phones page")
    b.screenshot("calls")
    b.get("/network")
    b.screenshot("network")
print("ok")
