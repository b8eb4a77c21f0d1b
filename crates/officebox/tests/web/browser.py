"""Browser tests of the web admin site: headless Chromium driven by Selenium.

Test scripts in this directory import this module and drive the real pages of a
running officebox. The Rust tests start officebox and run a script with
`officebox_testkit::run_browser_script`, which passes `--url BASE --shots DIR` and
puts this directory on PYTHONPATH. A script looks like this:

    from browser import Browser, script_args

    args = script_args("the login page").parse_args()
    with Browser(args.url, args.shots) as b:
        b.get("/")
        b.screenshot("login")
        b.login("admin", "wrong")
        b.expect("wrong user name or password" in b.flash().lower(), "login refused")

Browser's methods: get(path), fill(name, value), check(name, on), value(name),
submit(form_id_or_button_text), click_link(text), login(user, password), text(),
field_error(name), flash(), console_errors(), screenshot(name), resize(size),
expect(cond, message), wait_for_text(text, timeout), wait_for(cond, message),
find(css), find_all(css), url, title; `driver` is the Selenium WebDriver itself.

Everything waits explicitly (WebDriverWait) for what it needs; nothing sleeps but
close(), while it waits for the browser's processes to exit. A failed `expect` or wait raises AssertionError with the URL and the page's text,
and a screenshot `NN-failure.png` is saved; so is one when any exception leaves the
`with` block. The script then exits non-zero, which fails the Rust test.

Debian packages: chromium, chromium-driver and python3-selenium (Debian's python3,
/usr/bin/python3: another python3 on PATH may lack selenium).
"""

import argparse
import base64
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from urllib.parse import urldefrag, urljoin, urlsplit

from selenium import webdriver
from selenium.common.exceptions import (
    ElementNotInteractableException,
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.command import Command
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

# Window sizes (CSS pixels).
DESKTOP = (1280, 900)
PHONE = (390, 844)

# How long a wait may take before the test fails, in seconds.
TIMEOUT = 10
PAGE_LOAD_TIMEOUT = 30
# How long closing waits for chromedriver and Chromium to exit before killing them.
QUIT_GRACE = 10

# Input types whose value send_keys cannot type portably: set by script instead.
_SET_BY_SCRIPT = {"date", "time", "datetime-local", "month", "week", "color", "range"}

_SET_VALUE_JS = """
const el = arguments[0];
el.value = arguments[1];
el.dispatchEvent(new Event('input', {bubbles: true}));
el.dispatchEvent(new Event('change', {bubbles: true}));
"""

# Whether the browser's own validation stops form arguments[0] from being submitted.
_REFUSED_JS = "const f = arguments[0]; return !f.noValidate && !f.checkValidity();"

# The invalid fields of the page, as "name: message".
_INVALID_JS = """
return [...document.querySelectorAll(':invalid')]
    .filter(e => e.name).map(e => e.name + ': ' + e.validationMessage);
"""

# Everything Chromium needs to run headless as root in a container, plus flags that
# keep it off the network: it may only talk to loopback (host names other than
# localhost do not resolve, no proxy, no background services).
_CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-breakpad",
    "--no-first-run",
    "--no-default-browser-check",
    "--no-proxy-server",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--no-pings",
    "--password-store=basic",
    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
    "--lang=en-US",
    "--force-device-scale-factor=1",
    "--hide-scrollbars",
]


def script_args(description=None):
    """An argument parser that knows `--url BASE` and `--shots DIR`; add a script's
    own arguments to it, then call parse_args()."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--url", required=True, help="base URL of the site, e.g. http://127.0.0.1:8080")
    p.add_argument("--shots", required=True, help="directory for the screenshots")
    return p


def _norm(s):
    """Text with runs of whitespace made one space, trimmed."""
    return re.sub(r"\s+", " ", s or "").strip()


def _quote(s):
    """An XPath string literal for s (which may contain both kinds of quotes)."""
    if "'" not in s:
        return f"'{s}'"
    if '"' not in s:
        return f'"{s}"'
    parts = s.split("'")
    return "concat(" + ", \"'\", ".join(f"'{p}'" for p in parts) + ")"


def _proc_start_time(pid):
    """The start time of process pid (field 22 of /proc/PID/stat), or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None
    return fields[19]


def _processes_mentioning(text):
    """The pids of processes whose command line contains text."""
    found = []
    needle = text.encode()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if needle in f.read():
                        found.append(int(entry))
            except OSError:
                pass
    return found


def _quiet(fn):
    """fn, with any exception ignored."""
    def run():
        try:
            fn()
        except Exception:
            pass
    return run


def _descendants(pid):
    """The pids of all descendants of pid, from /proc/PID/task/*/children."""
    found = []
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tasks:
            try:
                with open(f"/proc/{p}/task/{t}/children") as f:
                    kids = [int(k) for k in f.read().split()]
            except OSError:
                continue
            found.extend(kids)
            todo.extend(kids)
    return found


class Browser:
    """Headless Chromium through chromedriver, as a context manager.

    `Browser(base_url, shots_dir)` starts chromedriver and Chromium (private profile in
    a temporary directory, window DESKTOP = 1280x900, or `size=PHONE`) on entering the
    `with` block and always quits them on leaving it: chromedriver and every Chromium
    process it started are gone afterwards (any that outlive quit() are killed, by pid).

    Paths given to get() are relative to base_url. Elements are found by their name
    attribute (form fields), their id (forms) or their visible text (buttons, links).
    """

    def __init__(self, base_url, shots_dir, size=DESKTOP, timeout=TIMEOUT):
        self.base_url = base_url.rstrip("/") + "/"
        self.shots_dir = shots_dir
        self.size = size
        self.timeout = timeout
        self.driver = None
        self._service = None
        self._tmp = None
        self._pids = {}
        self._old_sigterm = None
        self._log = None
        self._log_path = None
        self._shots = 0
        self._last_failure = None  # the AssertionError _fail raised (and took a screenshot for)
        os.makedirs(shots_dir, exist_ok=True)

    # ----- life -----

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old_sigterm = signal.signal(signal.SIGTERM, _sigterm)
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and exc is not self._last_failure:
            self._failure_screenshot()
        self.close()
        return False

    def _start(self):
        for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
            if not os.access(path, os.X_OK):
                raise RuntimeError(f"{path} is not installed (Debian package {package})")
        self._tmp = tempfile.mkdtemp(prefix="obx-browser-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in _CHROMIUM_ARGS:
            options.add_argument(arg)
        # Only loopback and the site under test resolve (even an IP literal is refused
        # unless excluded here).
        host = urlsplit(self.base_url).hostname
        allowed = ["localhost", "127.0.0.1", "[::1]"]
        if host and host not in ("localhost", "127.0.0.1", "::1"):
            allowed.append(f"[{host}]" if ":" in host else host)
        options.add_argument("--host-resolver-rules=MAP * ~NOTFOUND, "
                             + ", ".join(f"EXCLUDE {h}" for h in allowed))
        options.add_argument(f"--user-data-dir={os.path.join(self._tmp, 'profile')}")
        options.add_argument(f"--window-size={self.size[0]},{self.size[1]}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        options.ignore_local_proxy_environment_variables()
        self._log_path = os.path.join(self._tmp, "chromedriver.log")
        self._log = open(self._log_path, "wb")
        # A private home: Chromium's crash handler and caches write there, not to ~root.
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        env.update(HOME=self._tmp, XDG_CONFIG_HOME=os.path.join(self._tmp, "config"),
                   XDG_CACHE_HOME=os.path.join(self._tmp, "cache"))
        self._service = Service(executable_path=CHROMEDRIVER, log_file=self._log, env=env)
        try:
            self.driver = webdriver.Chrome(service=self._service, options=options)
        except WebDriverException as e:
            raise RuntimeError(f"could not start Chromium: {e.msg}\n{self._log_tail()}") from None
        finally:
            self._remember_pids()
        self.driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT)
        self.driver.set_script_timeout(self.timeout)
        self.resize(self.size)
        self._shots = self._existing_shots()

    def _remember_pids(self):
        """Notes the processes we started, with their start times, so close() can make
        sure they are gone without ever signalling someone else's process: chromedriver,
        its descendants, and the crash handlers Chromium daemonizes (found by our
        private directory in their command line)."""
        proc = getattr(self._service, "process", None)
        pids = [] if proc is None else [proc.pid] + _descendants(proc.pid)
        if self._tmp is not None:
            pids += _processes_mentioning(os.path.join(self._tmp, ""))
        for pid in pids:
            start = _proc_start_time(pid)
            if start is not None:
                self._pids[pid] = start

    def processes(self):
        """The pids of the processes this browser started that are still running."""
        self._remember_pids()
        return [p for p, s in self._pids.items() if _proc_start_time(p) == s]

    def _log_tail(self, lines=30):
        try:
            with open(self._log_path, errors="replace") as f:
                text = f.read().splitlines()
        except (OSError, TypeError):
            return ""
        return "chromedriver log:\n" + "\n".join(text[-lines:])

    def close(self):
        """Quits Chromium and chromedriver, and removes the private directory
        (idempotent; leaving the with block calls it). Bounded in time: what has not
        exited QUIT_GRACE seconds after asking is SIGKILLed, by pid."""
        self._remember_pids()
        if self.driver is not None:
            # Ask chromedriver to close Chromium; a hung renderer can make it wait for
            # minutes, so wait in a thread, for a while only.
            driver = self.driver
            t = threading.Thread(target=_quiet(lambda: driver.execute(Command.QUIT)), daemon=True)
            t.start()
            t.join(QUIT_GRACE)
            self.driver = None
        proc = getattr(self._service, "process", None)
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(QUIT_GRACE)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            self._service.process = None  # so Service.__del__ does not try again
        self._service = None
        deadline = time.monotonic() + QUIT_GRACE
        while True:
            alive = [p for p, s in self._pids.items() if _proc_start_time(p) == s]
            if not alive:
                break
            if time.monotonic() > deadline:
                for pid in alive:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                break
            time.sleep(0.05)  # unavoidable: waiting for processes to exit
        self._pids = {}
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        if self._old_sigterm is not None:
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None

    # ----- pages -----

    @property
    def url(self):
        """The current page's URL."""
        return self.driver.current_url

    @property
    def title(self):
        return self.driver.title

    def get(self, path):
        """Loads base_url + path (an absolute URL is loaded as it is)."""
        url = path if re.match(r"[a-z][a-z0-9+.-]*:", path) else urljoin(self.base_url, path.lstrip("/"))
        try:
            self.driver.get(url)
        except WebDriverException as e:
            self._fail(f"loading {url} failed: {(e.msg or '').strip()}")
        self._wait_loaded()

    def resize(self, size):
        """Makes the page's viewport size = (width, height) CSS pixels, e.g. PHONE or
        DESKTOP. Up to 480 pixels wide the browser also acts as a phone (mobile
        viewport: the page's <meta name=viewport> counts, as on a phone)."""
        width, height = size
        self.driver.set_window_size(width, height)
        inner = self.driver.execute_script("return [innerWidth, innerHeight]")
        if inner != [width, height]:
            # The window includes (simulated) browser chrome: grow it by that much.
            self.driver.set_window_size(2 * width - inner[0], 2 * height - inner[1])
        if width <= 480:
            self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
                "width": width, "height": height, "deviceScaleFactor": 1, "mobile": True})
        else:
            self.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        self.size = size

    def text(self):
        """The page's visible text (what a person can read)."""
        return self.driver.find_element(By.TAG_NAME, "body").text

    def find(self, css):
        """The first element matching a CSS selector, waiting for it to be present."""
        return self._wait(
            EC.presence_of_element_located((By.CSS_SELECTOR, css)), f"no element matches {css!r}"
        )

    def find_all(self, css):
        """All elements matching a CSS selector now (maybe none)."""
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    # ----- forms -----

    def field(self, name):
        """The visible form field with this name attribute (waits for it)."""
        def visible_field(d):
            for el in d.find_elements(By.NAME, name):
                try:
                    if el.is_displayed():
                        return el
                except StaleElementReferenceException:
                    pass
            return False

        return self._wait(visible_field, f"no visible field named {name!r}")

    def fill(self, name, value):
        """Types value into the field named name, replacing what was there. A <select>
        gets the option whose visible text (else value) is value; radio buttons the one
        with that value; a checkbox is checked or unchecked if value is a bool."""
        el = self.field(name)
        tag = el.tag_name.lower()
        kind = (el.get_attribute("type") or "").lower()
        if tag == "select":
            sel = Select(el)
            try:
                sel.select_by_visible_text(str(value))
            except NoSuchElementException:
                try:
                    sel.select_by_value(str(value))
                except NoSuchElementException:
                    options = [_norm(o.text) for o in sel.options]
                    self._fail(f"select {name!r} has no option {value!r} (options: {options})")
            return
        if kind == "checkbox":
            if not isinstance(value, bool):
                raise TypeError(f"field {name!r} is a checkbox: use check(name, on) or a bool")
            self.check(name, value)
            return
        if kind == "radio":
            self._click(self._wait(
                EC.element_to_be_clickable((By.CSS_SELECTOR, f"input[type=radio][name={_css_str(name)}][value={_css_str(str(value))}]")),
                f"no radio button {name!r} with value {value!r}",
            ))
            return
        if kind in _SET_BY_SCRIPT:
            self.driver.execute_script(_SET_VALUE_JS, el, str(value))
            return
        self._wait(lambda d: el.is_enabled(), f"field {name!r} is disabled")
        el.clear()
        if el.get_attribute("value"):
            # clear() can be undone by scripts; set it empty the direct way.
            self.driver.execute_script(_SET_VALUE_JS, el, "")
        el.send_keys(str(value))

    def value(self, name):
        """The current value of the field named name (a checkbox: whether it is checked)."""
        el = self.field(name)
        if (el.get_attribute("type") or "").lower() in ("checkbox", "radio"):
            return el.is_selected()
        return el.get_attribute("value")

    def check(self, name, on=True):
        """Checks (on=True) or unchecks the checkbox named name."""
        el = self._wait(
            lambda d: next((e for e in d.find_elements(By.NAME, name)
                            if (e.get_attribute("type") or "").lower() == "checkbox"), False),
            f"no checkbox named {name!r}",
        )
        if el.is_selected() != on:
            self._click(el)
        self._wait(lambda d: el.is_selected() == on,
                   f"checkbox {name!r} did not become {'checked' if on else 'unchecked'}")

    def submit(self, form_id_or_button_text, navigate=True):
        """Submits a form: the form with this id (through its submit button, else
        requestSubmit()), or the button whose text (or value) this is. With navigate
        (the default) waits for the next page to load, and fails if none comes, e.g.
        because the browser's own validation stopped the form."""
        key = form_id_or_button_text
        forms = self.driver.find_elements(By.CSS_SELECTOR, f"form[id={_css_str(key)}]")
        if forms:
            form = forms[0]
            buttons = [b for b in form.find_elements(
                By.CSS_SELECTOR, "button:not([type]), button[type=submit], input[type=submit]")
                if b.is_displayed()]
            if buttons:
                action = lambda: self._click(buttons[0])  # noqa: E731
            else:
                action = lambda: self.driver.execute_script("arguments[0].requestSubmit()", form)  # noqa: E731
            self._act(action, f"submitting form #{key}", navigate, form)
            return
        button = self._button(key)
        form = self.driver.execute_script("return arguments[0].form", button)
        self._act(lambda: self._click(button), f"pressing {key!r}", navigate, form)

    def _button(self, text):
        want = _norm(text)

        def find(d):
            found = []
            for b in d.find_elements(By.CSS_SELECTOR, "button, input[type=submit], input[type=button]"):
                try:
                    label = b.text if b.tag_name.lower() == "button" else b.get_attribute("value")
                    if _norm(label) == want and b.is_displayed():
                        found.append(b)
                except StaleElementReferenceException:
                    pass
            return found[0] if found else False

        return self._wait(find, f"no visible form id or button {text!r}")

    def click_link(self, text):
        """Follows the link whose visible text is text (else the one link containing
        it) and waits for the page to load (not for links within the page)."""
        want = _norm(text)

        def find(d):
            links = [a for a in d.find_elements(By.TAG_NAME, "a") if a.is_displayed()]
            exact = [a for a in links if _norm(a.text) == want]
            if exact:
                return exact[0]
            partial = [a for a in links if want in _norm(a.text)]
            return partial[0] if len(partial) == 1 else False

        link = self._wait(find, f"no (single) visible link {text!r}")
        href = link.get_attribute("href")
        navigate = bool(href) and urldefrag(href)[0] != urldefrag(self.url)[0]
        self._act(lambda: self._click(link), f"following link {text!r}", navigate)

    def login(self, user, password):
        """Logs in through the login form (fields user and password, button "Log in")."""
        self.fill("user", user)
        self.fill("password", password)
        self.submit("Log in")

    # ----- what the page says -----

    def field_error(self, name):
        """The error shown for the field named name: the text of the elements its
        aria-errormessage, else aria-describedby, refers to ("" if none is shown)."""
        el = self.field(name)
        ids = (el.get_attribute("aria-errormessage") or el.get_attribute("aria-describedby") or "").split()
        texts = []
        for i in ids:
            refs = self.driver.find_elements(By.ID, i)
            if not refs:
                self._fail(f"field {name!r} refers to #{i} (aria-describedby), which does not exist")
            texts.append(refs[0].text)
        return _norm(" ".join(texts))

    def flash(self):
        """The text of the page's messages: elements with role=alert or class flash
        ("" if there are none)."""
        els = self.driver.find_elements(By.CSS_SELECTOR, "[role=alert], .flash")
        return _norm(" ".join(e.text for e in els if e.is_displayed()))

    def console_errors(self):
        """Severe messages the page logged to the browser console since the last call
        (JavaScript errors, failed loads)."""
        try:
            logs = self.driver.get_log("browser")
        except WebDriverException:
            return []
        return [e["message"] for e in logs if e.get("level") == "SEVERE"]

    # ----- screenshots -----

    def _existing_shots(self):
        nums = [int(m.group(1)) for f in os.listdir(self.shots_dir)
                if (m := re.match(r"(\d+)-.*\.png$", f))]
        return max(nums, default=0)

    def screenshot(self, name, full_page=True):
        """Saves the page as shots_dir/NN-name.png (NN counts up from the highest
        number already there) and returns the path. full_page takes the whole page,
        not only the window."""
        self._shots += 1
        safe = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "page"
        path = os.path.join(self.shots_dir, f"{self._shots:02d}-{safe}.png")
        png = None
        if full_page:
            try:
                metrics = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
                content = metrics["cssContentSize"]
                width = max(self.size[0], content["width"])
                shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", {
                    "format": "png",
                    "captureBeyondViewport": True,
                    "clip": {"x": 0, "y": 0, "width": width, "height": content["height"], "scale": 1},
                })
                png = base64.b64decode(shot["data"])
            except (WebDriverException, KeyError):
                png = None
        if png is None:
            png = self.driver.get_screenshot_as_png()
        with open(path, "wb") as f:
            f.write(png)
        return path

    def _failure_screenshot(self):
        if self.driver is None:
            return
        try:
            self.screenshot("failure")
        except Exception:
            pass

    # ----- checks and waits -----

    def expect(self, cond, message):
        """Fails (AssertionError naming the URL and quoting the page) unless cond."""
        if not cond:
            self._fail(message)

    def wait_for_text(self, text, timeout=None):
        """Waits until the page's visible text contains text."""
        def seen(d):
            try:
                return text in d.find_element(By.TAG_NAME, "body").text
            except (NoSuchElementException, StaleElementReferenceException):
                return False

        self._wait(seen, f"the page did not show {text!r}", timeout)

    def wait_for(self, cond, message, timeout=None):
        """Waits until cond(driver) is truthy and returns its value."""
        return self._wait(cond, message, timeout)

    def _fail(self, message):
        self._failure_screenshot()
        try:
            where = f"URL: {self.url}\npage text:\n{self.text()}"
        except Exception as e:
            where = f"(page unavailable: {e})"
        self._last_failure = AssertionError(f"{message}\n{where}")
        raise self._last_failure from None

    def _wait(self, cond, message, timeout=None):
        try:
            return WebDriverWait(
                self.driver, self.timeout if timeout is None else timeout,
                ignored_exceptions=(StaleElementReferenceException,),
            ).until(cond)
        except TimeoutException:
            self._fail(f"{message} (waited {self.timeout if timeout is None else timeout} s)")

    def _wait_loaded(self):
        self._wait(lambda d: d.execute_script("return document.readyState") == "complete",
                   "the page did not finish loading", PAGE_LOAD_TIMEOUT)

    def _click(self, el):
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", el)
        try:
            el.click()
        except ElementNotInteractableException:
            # Covered or styled away (e.g. a custom checkbox): click it by script.
            self.driver.execute_script("arguments[0].click()", el)

    def _act(self, action, what, navigate, form=None):
        """Runs action; with navigate, waits for the page it leads to to load. When
        action submits form, fails at once if the browser's validation stopped it."""
        old = self.driver.find_element(By.TAG_NAME, "html")
        action()
        if navigate:
            def moved_on_or_refused(d):
                # The old page going away (between or during these checks) is the
                # answer; Chromium says so as a stale element or, mid-navigation, as a
                # node that "does not belong to the document".
                try:
                    old.tag_name
                    if form is not None and d.execute_script(_REFUSED_JS, form):
                        return "refused"
                except StaleElementReferenceException:
                    return "loaded"
                except WebDriverException as e:
                    if "does not belong to the document" in str(e):
                        return "loaded"
                    raise
                return False

            try:
                outcome = WebDriverWait(self.driver, PAGE_LOAD_TIMEOUT).until(moved_on_or_refused)
            except TimeoutException:
                outcome = "timeout"
            if outcome != "loaded":
                invalid = self.driver.execute_script(_INVALID_JS)
                extra = f" (the browser refused invalid fields: {invalid})" if invalid else ""
                self._fail(f"{what} loaded no new page{extra}")
        self._wait_loaded()


def _css_str(s):
    """A CSS string literal for s."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _sigterm(signum, frame):
    # Leave the with block (which quits the browser) instead of dying on the spot.
    raise SystemExit(128 + signum)
