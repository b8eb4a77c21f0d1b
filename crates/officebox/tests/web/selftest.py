"""Self-test of browser.py: every helper against a tiny site served here.

A small http.server on 127.0.0.1 (a port the kernel picks) serves a login form and a
settings form with the markup the admin site uses (errors tied to fields by
aria-describedby, messages with role=alert). The test drives them with Browser,
saves screenshots, and checks that chromedriver and every Chromium process are gone
afterwards.

    /usr/bin/python3 crates/officebox/tests/web/selftest.py [--shots DIR]

Without --shots the screenshots go to a temporary directory that is removed at the
end. `--url` is accepted (and ignored) so run_browser_script can run this too.
Prints "selftest: N passed, 0 failed" and exits 0 when all is well.
"""

import argparse
import html
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True

import browser  # noqa: E402
from browser import PHONE, Browser, _descendants, _proc_start_time  # noqa: E402

STYLE = """
body { font-family: sans-serif; margin: 2em; }
.error { color: #b00; }
.flash { background: #efe; border: 1px solid #6a6; padding: .5em; }
label { display: block; margin-top: 1em; }
.tall { height: 2400px; background: linear-gradient(#fff, #ccd); }
"""


def page(title, body):
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{STYLE}</style></head>
<body><h1>{title}</h1>{body}</body></html>"""


def login_page(error="", user=""):
    alert = f'<p role="alert">{html.escape(error)}</p>' if error else ""
    return page("Log in", f"""{alert}
<form method="post" action="/login" id="login">
  <label>User <input name="user" value="{html.escape(user)}" autocomplete="username"></label>
  <label>Password <input name="password" type="password"></label>
  <button>Log in</button>
</form>""")


MODES = [("auto", "Automatic"), ("static", "Static address"), ("off", "Off")]


def settings_page(values, errors=None, saved=None):
    errors = errors or {}
    flash = f'<div class="flash">{html.escape(saved)}</div>' if saved else ""
    options = "".join(
        f'<option value="{v}"{" selected" if values.get("mode") == v else ""}>{t}</option>'
        for v, t in MODES
    )
    checked = " checked" if values.get("dhcp") else ""
    host_err = html.escape(errors.get("hostname", ""))
    invalid = ' aria-invalid="true"' if host_err else ""
    return page("Settings", f"""{flash}
<p><a href="/home">Back home</a> <a href="#bottom">Jump to the end</a></p>
<form method="post" action="/settings" id="settings" novalidate>
  <label>Host name
    <input name="hostname" value="{html.escape(values.get('hostname', ''))}"
           aria-describedby="hostname-hint hostname-error"{invalid}></label>
  <small id="hostname-hint" hidden>letters, digits and dashes</small>
  <p class="error" id="hostname-error">{host_err}</p>
  <label>Domain <input name="domain" value="{html.escape(values.get('domain', ''))}"
           aria-describedby="domain-error"></label>
  <p class="error" id="domain-error"></p>
  <label>Mode <select name="mode">{options}</select></label>
  <label><input type="checkbox" name="dhcp"{checked}> DHCP server on</label>
  <label>Date <input type="date" name="since" value="{html.escape(values.get('since', ''))}"></label>
  <label>Notes <textarea name="notes">{html.escape(values.get('notes', ''))}</textarea></label>
  <button type="submit">Save</button>
</form>
<form method="post" action="/settings" id="strict">
  <label>Required <input name="needed" required></label>
  <button>Send</button>
</form>
<div class="tall"></div>
<p id="bottom">The end.</p>""")


SLOW = page("Slow", """<p id="later"></p>
<script>setTimeout(() => { document.getElementById('later').textContent = 'Arrived late'; }, 400);</script>""")

BROKEN = page("Broken", """<p>This page throws.</p>
<script>throw new Error('selftest boom');</script>""")


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def send(self, body, status=200):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def redirect(self, where):
        self.send_response(303)
        self.send_header("Location", where)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/":
            self.send(login_page())
        elif path == "/home":
            self.send(page("Home", '<p class="flash">Welcome, admin</p><p><a href="/settings">Settings</a></p>'))
        elif path == "/settings":
            self.send(settings_page({"hostname": "officebox", "mode": "auto", "dhcp": True}))
        elif path == "/slow":
            self.send(SLOW)
        elif path == "/broken":
            self.send(BROKEN)
        else:
            self.send(page("Not found", "<p>No such page.</p>"), 404)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode(), keep_blank_values=True).items()}
        if self.path == "/login":
            if form.get("user") == "admin" and form.get("password") == "s3cret pass":
                self.redirect("/home")
            else:
                self.send(login_page("Wrong user name or password", form.get("user", "")))
        elif self.path == "/settings":
            values = dict(form, dhcp="dhcp" in form)
            if not re.fullmatch(r"[A-Za-z0-9-]+", form.get("hostname", "")):
                self.send(settings_page(values, {"hostname": "Use letters, digits and dashes only"}))
            else:
                saved = (f"Saved: hostname={form.get('hostname')} domain={form.get('domain')} "
                         f"mode={form.get('mode')} dhcp={'on' if 'dhcp' in form else 'off'} "
                         f"since={form.get('since')} notes={form.get('notes')}")
                self.send(settings_page(values, saved=saved))
        else:
            self.send(page("Not found", ""), 404)


PASSED = []


def check(name, cond, detail=""):
    if not cond:
        raise AssertionError(f"selftest {name}: failed {detail}")
    PASSED.append(name)
    print(f"ok: {name}", flush=True)


def raises(fn, *words):
    """Runs fn, which must raise AssertionError whose message has all the words."""
    try:
        fn()
    except AssertionError as e:
        msg = str(e)
        missing = [w for w in words if w not in msg]
        if missing:
            raise AssertionError(f"message lacks {missing}: {msg}")
        return msg
    raise AssertionError("no AssertionError was raised")


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def alive(pids):
    """Those of {pid: start time} that still run (not zombies, not reused)."""
    return [p for p, s in pids.items() if _proc_start_time(p) == s]


def run(base, shots):
    started = {}

    def note_processes(b):
        driver_pid = b._service.process.pid
        for p in [driver_pid] + _descendants(driver_pid):
            s = _proc_start_time(p)
            if s is not None:
                started[p] = s

    with Browser(base, shots) as b:
        note_processes(b)
        check("chromedriver and chromium started", len(started) >= 2, str(started))
        check("window is desktop-sized",
              b.driver.execute_script("return [innerWidth, innerHeight]") == [1280, 900],
              str(b.driver.execute_script("return [innerWidth, innerHeight]")))

        # The login form: a wrong password, then the right one.
        b.get("/")
        check("get loads the page", b.title == "Log in" and b.url == base + "/")
        check("text is the visible text", "User" in b.text() and "<form" not in b.text())
        check("no flash before submitting", b.flash() == "")
        first = b.screenshot("login")
        check("screenshot NN-name.png", os.path.basename(first) == "01-login.png" and png_size(first)[0] == 1280)
        b.login("admin", "wrong")
        check("bad login shows the alert", b.flash() == "Wrong user name or password", b.flash())
        check("the form kept the user", b.value("user") == "admin", b.value("user"))
        b.fill("user", "someone")
        check("fill replaces the value", b.value("user") == "someone", b.value("user"))
        b.login("admin", "s3cret pass")
        check("login follows the redirect", b.url == base + "/home" and b.flash() == "Welcome, admin")

        # The settings form.
        b.click_link("Settings")
        check("click_link follows the link", b.url == base + "/settings")
        check("field_error is empty without an error", b.field_error("hostname") == "")
        check("checkbox value", b.value("dhcp") is True)
        b.fill("hostname", "bad name!")
        b.fill("mode", "Static address")  # by visible text
        b.check("dhcp", False)
        check("check unchecks", b.value("dhcp") is False)
        b.submit("settings")  # by form id
        check("field_error reads aria-describedby",
              b.field_error("hostname") == "Use letters, digits and dashes only", b.field_error("hostname"))
        check("field_error of another field is empty", b.field_error("domain") == "")
        check("values survive the round trip", b.value("mode") == "static" and b.value("dhcp") is False)
        b.screenshot("settings-error")
        b.fill("hostname", "box-1")
        b.fill("domain", "example.test")
        b.fill("mode", "off")  # by value
        b.fill("dhcp", True)  # a bool checks a checkbox
        b.fill("since", "2025-03-04")  # set by script
        b.fill("notes", "two words")
        b.submit("Save")  # by button text
        want = "Saved: hostname=box-1 domain=example.test mode=off dhcp=on since=2025-03-04 notes=two words"
        check("submit by button text posts every field", b.flash() == want, b.flash())
        check("field_error is gone after a good save", b.field_error("hostname") == "")
        full = b.screenshot("settings-saved")
        w, h = png_size(full)
        check("screenshot takes the full page", w == 1280 and h > 2400, f"{w}x{h}")
        top = b.screenshot("viewport", full_page=False)
        check("screenshot of the window only", png_size(top) == (1280, 900), str(png_size(top)))

        # A link within the page does not wait for a new page.
        t0 = time.monotonic()
        b.click_link("Jump to the")  # partial text
        check("click_link within the page", b.url.endswith("#bottom") and time.monotonic() - t0 < 5)

        # The browser's own validation stops a form: submit says so.
        t0 = time.monotonic()
        raises(lambda: b.submit("strict"), "loaded no new page", "needed", "URL: ")
        raises(lambda: b.submit("Send"), "loaded no new page", "needed")
        check("submit reports a form the browser refused, at once", time.monotonic() - t0 < 5)

        # expect and the waits fail with the URL and the page's text.
        b.expect(True, "never shown")
        msg = raises(lambda: b.expect(False, "the sky is green"), "the sky is green", f"URL: {base}/settings", "Host name")
        check("expect fails with URL and page text", True)
        check("a failure takes a screenshot", any(f.endswith("-failure.png") for f in os.listdir(shots)))
        b.get("/slow")
        b.wait_for_text("Arrived late", timeout=5)
        check("wait_for_text waits", "Arrived late" in b.text())
        t0 = time.monotonic()
        raises(lambda: b.wait_for_text("Never there", timeout=1), "Never there", "URL: ")
        check("wait_for_text times out", time.monotonic() - t0 < 5)
        b.timeout = 1
        raises(lambda: b.click_link("No such link"), "No such link", "waited 1 s")
        raises(lambda: b.fill("nothing", "x"), "nothing")
        raises(lambda: b.submit("No such button"), "No such button")
        b.timeout = browser.TIMEOUT
        check("missing elements fail with AssertionError", True)

        # Console errors, localhost, and the phone size.
        b.get("/broken")
        errors = b.console_errors()
        check("console_errors sees a script error", any("selftest boom" in e for e in errors), str(errors))
        port = base.rsplit(":", 1)[1]
        b.get(f"http://localhost:{port}/home")
        check("localhost resolves", b.title == "Home")
        b.get("/settings")
        b.resize(PHONE)
        phone = b.screenshot("settings-phone", full_page=False)
        check("resize to phone size", png_size(phone)[0] == PHONE[0], str(png_size(phone)))
        note_processes(b)

    check("chromedriver and chromium are gone after the with block", not alive(started), str(alive(started)))

    # A second browser, phone-sized from the start: numbering goes on, and an
    # exception leaving the block still quits the browser and takes a screenshot.
    started.clear()
    before = set(os.listdir(shots))
    try:
        with Browser(base, shots, size=PHONE) as b:
            note_processes(b)
            b.get("/settings")
            shot = b.screenshot("phone")
            check("numbering goes on", os.path.basename(shot) == f"{len(before) + 1:02d}-phone.png", shot)
            raise KeyError("boom")
    except KeyError:
        pass
    new = sorted(set(os.listdir(shots)) - before)
    check("an exception leaving the block takes a screenshot", new[-1].endswith("-failure.png"), str(new))
    check("cleanup after an exception", not alive(started), str(alive(started)))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shots", help="keep the screenshots here")
    p.add_argument("--url", help="ignored: the self-test serves its own pages")
    args = p.parse_args()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    tmp = None
    if args.shots:
        shots = args.shots
        os.makedirs(shots, exist_ok=True)
        for f in os.listdir(shots):
            if f.endswith(".png"):
                os.remove(os.path.join(shots, f))
    else:
        tmp = shots = tempfile.mkdtemp(prefix="obx-selftest-shots-")
    try:
        run(base, shots)
        print(f"screenshots: {shots}: {', '.join(sorted(os.listdir(shots)))}")
    except AssertionError as e:
        print(f"FAILED: {e}", file=sys.stderr)
        print(f"selftest: {len(PASSED)} passed, 1 failed")
        return 1
    finally:
        server.shutdown()
        server.server_close()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"selftest: {len(PASSED)} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
