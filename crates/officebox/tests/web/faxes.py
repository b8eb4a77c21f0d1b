"""The fax pages in a browser: alice is given a fax machine of her own on her user
page, then the Phones page lists the faxes the Rust test logged (one received, one sent,
one that failed) with their outcomes."""

from browser import Browser, script_args

args = script_args("faxes").parse_args()
with Browser(args.url, args.shots) as b:
    b.get("/")
    b.login("admin", "demo-admin")
    b.get("/users/alice")
    b.expect(not b.value("fax"), "alice has no fax machine yet")
    b.check("fax")
    b.submit("edit-user")
    b.wait_for_text("Saved and applied.")
    b.get("/users/alice")
    b.expect(b.value("fax"), "alice's fax machine is kept")
    b.screenshot("user-fax")
    b.get("/phones")
    rows = [r.text for r in b.find("#fax-log").find_elements("css selector", "tr")]
    b.expect(len(rows) == 4, f"a heading and three faxes: {rows}")
    received, failed, sent = rows[1], rows[2], rows[3]
    b.expect("+49 30 5551234" in received and "received" in received, f"received: {received}")
    b.expect("95550123" in failed and "failed: the line was cut (T.30 48)" in failed,
             f"failed: {failed}")
    b.expect("95550123" in sent and "alice" in sent and sent.endswith("sent"), f"sent: {sent}")
    b.screenshot("phones-faxes")
print("ok")
