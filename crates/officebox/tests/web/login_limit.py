"""Five wrong passwords, then the right one is refused too: failed logins are limited
per address (and each costs a second)."""

import time

from browser import Browser, script_args

args = script_args("the failed-login limit").parse_args()
with Browser(args.url, args.shots) as b:
    started = time.time()
    for i in range(5):
        b.get("/login")
        b.login("admin", "wrong-%d" % i)
        b.expect("Wrong user or password" in b.text(), "attempt %d refused" % i)
    b.expect(time.time() - started >= 5, "each failure took a second")
    b.get("/login")
    b.login("admin", "demo-admin")
    b.expect("Too many failed logins" in b.text(), "the sixth is refused outright")
    b.screenshot("login-limited")
print("ok")
