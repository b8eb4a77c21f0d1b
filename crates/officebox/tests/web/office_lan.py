"""The list pages from a PC on the office LAN, on a phone-sized screen: a laptop's
lease made a reservation from the live lease table, a port forward refused beside its
field (a device outside the LAN) then added and kept, a DNS record added and then seen
in the zone as served (with the laptop's name beside it, marked by where it comes
from), an external mailbox added to a user, and the admin pages moved to another port
(confirmed there). No page is wider than the phone's screen. Last, with the lease table
open, a second device joins the LAN (the Rust test starts its DHCP client when this
script asks) and its row appears in the table by itself, without a reload.
The Rust test (tests/web.rs) checks the file and the DNS answers afterwards."""

import time

from browser import PHONE, Browser, script_args

p = script_args("the office network pages")
p.add_argument("--config", required=True, help="the config file officebox runs from")
p.add_argument("--laptop-mac", required=True)
p.add_argument("--laptop-address", required=True)
p.add_argument("--join-file", required=True,
               help="written when the test should bring the second device (phone-9) in")
args = p.parse_args()


def config_text():
    with open(args.config, encoding="utf-8") as f:
        return f.read()


def fits(b, what):
    """The page scrolls only downwards on the phone (wide tables scroll in their box)."""
    wide = b.driver.execute_script(
        "return document.documentElement.scrollWidth - window.innerWidth")
    b.expect(wide <= 1, f"{what} is {wide} pixels wider than the phone's screen")


with Browser(args.url, args.shots, size=PHONE) as b:
    b.get("/")
    b.login("admin", "demo-admin")
    b.expect("Recent problems" in b.text(), "the home page lists recent problems")
    fits(b, "Home")
    b.screenshot("home-phone")

    # The live lease table: the laptop is there; make it a reservation.
    b.get("/dhcp")
    b.expect("laptop-7" in b.find("#lease-table").text, "the laptop's lease is listed")
    b.expect(args.laptop_mac in b.find("#lease-table").text, "with its MAC")
    fits(b, "Servers - DHCP")
    b.screenshot("dhcp-leases-phone")
    b.submit("Make this a reservation")
    b.wait_for_text("Saved and applied.")
    reservations = b.find("#list-reservations").text
    b.expect(args.laptop_mac in reservations and args.laptop_address in reservations
             and "laptop-7" in reservations, "the reservation is listed: %r" % reservations)
    b.screenshot("dhcp-reserved-phone")

    # A port forward to a device outside the LAN: refused beside the field.
    before = config_text()
    b.get("/security")
    b.fill("forwards.name", "camera")
    b.fill("forwards.wan_port", "8022")
    b.fill("forwards.host", "10.9.9.9")
    b.fill("forwards.port", "22")
    b.submit("Add forward")
    err = b.field_error("forwards.host")
    b.expect("outside the LAN" in err, "the error is beside the device: %r" % err)
    b.expect(b.value("forwards.wan_port") == "8022", "what was typed is still there")
    b.expect(config_text() == before, "the file is unchanged")
    b.screenshot("forward-refused-phone")
    # Put right: applied with confirm-or-revert, and kept.
    b.fill("forwards.host", "192.168.1.20")
    b.submit("Add forward")
    b.wait_for_text("Keep these settings")
    b.submit("confirm")
    b.wait_for_text("Saved and applied.")
    b.get("/security")
    forwards = b.find("#list-forwards").text
    b.expect("camera" in forwards and "192.168.1.20" in forwards, "the forward is listed")
    fits(b, "Security Settings")
    b.screenshot("security-phone")

    # A DNS record, then the zone as served: static, reserved and built-in names.
    b.get("/dns")
    b.fill("records.name", "nas")
    b.fill("records.type", "A")
    b.fill("records.value", "192.168.1.30")
    b.submit("Add record")
    b.wait_for_text("Saved and applied.")
    deadline = time.monotonic() + 10
    while True:
        b.get("/dns")
        zone = b.find("#zone-table").text
        if "nas.office.test" in zone and "laptop-7.office.test" in zone:
            break
        b.expect(time.monotonic() < deadline, "the zone shows nas and laptop-7: %r" % zone)
        time.sleep(0.5)
    rows = {r.text for r in b.find_all("#zone-table tr")}
    b.expect(any("nas.office.test" in r and "static record" in r for r in rows),
             "nas is marked static: %r" % rows)
    b.expect(any("laptop-7.office.test" in r and "DHCP reservation" in r for r in rows),
             "laptop-7 is marked as a reservation now: %r" % rows)
    b.expect(any(r.startswith("www.office.test") and "built-in" in r for r in rows),
             "www is marked built-in")
    b.expect(b.find("#dns-enabled").is_selected(),
             "the DNS switch shows that DNS runs, though the file leaves it out")
    b.expect(b.find("#dns-ttl").get_attribute("placeholder") == "3600",
             "an empty setting shows its default")
    fits(b, "DNS Server")
    b.screenshot("dns-phone")

    # An external mailbox for alice, shown on her page and in the Users list.
    b.get("/users/alice")
    b.fill("pop3.server", "192.168.1.77")
    b.fill("pop3.login", "alice.office")
    b.fill("pop3.password", "isp-secret")
    b.fill("pop3.poll_interval", "1h")
    b.submit("Add mailbox")
    b.wait_for_text("Saved and applied.")
    mailboxes = b.find("#list-pop3").text
    b.expect("192.168.1.77" in mailboxes and "isp-secret" not in mailboxes,
             "the mailbox is listed, its password not shown: %r" % mailboxes)
    b.screenshot("user-mailbox-phone")
    b.get("/users")
    b.expect("alice.office@192.168.1.77" in b.text(), "the Users list shows it")
    fits(b, "Users")
    b.screenshot("users-phone")

    # The admin pages move to another port: the browser follows and confirms there.
    b.get("/system")
    b.expect(b.find("#ntp-enabled").is_selected() is False, "the time server is off here")
    b.fill("web.admin_port", "18081")
    b.submit("Save")
    b.wait_for_text("The admin pages have moved")
    b.click_link("Continue at")
    b.wait_for_text("Keep these settings")
    b.expect(":18081/confirm" in b.url, "the confirmation is asked where the pages are now")
    b.screenshot("system-moved-phone")
    b.submit("confirm")
    b.wait_for_text("Saved and applied.")
    b.expect(":18081/" in b.url, "still logged in on the new port")

    # The lease table is live: a device that joins now shows up in it.
    b.get(args.url.rsplit(":", 1)[0] + ":18081/dhcp")
    b.console_errors()  # the refused forms' 422s are behind us
    b.expect("phone-9" not in b.find("#live").text, "the second device is not here yet")
    b.driver.execute_script("window.officeboxStayed = true")
    with open(args.join_file, "w", encoding="utf-8") as f:
        f.write("join now\n")
    deadline = time.monotonic() + 40
    while "phone-9" not in b.find("#live").text:
        b.expect(time.monotonic() < deadline,
                 "the new lease appears by itself: %r" % b.find("#live").text)
        time.sleep(0.5)
    laptop = [r.text for r in b.find_all("#lease-table tr")
              if r.text.split(" ")[0] == args.laptop_address]
    b.expect(len(laptop) == 1 and "reserved" in laptop[0]
             and "Make this a reservation" not in laptop[0],
             "the laptop is still there, shown as reserved: %r" % laptop)
    b.expect(b.driver.execute_script("return window.officeboxStayed === true"),
             "the page was not reloaded")
    errors = [e for e in b.console_errors() if "favicon" not in e]
    b.expect(errors == [], "no script errors or CSP refusals: %r" % errors)
    fits(b, "Servers - DHCP with two leases")
    b.screenshot("dhcp-live-phone")
print("ok")
