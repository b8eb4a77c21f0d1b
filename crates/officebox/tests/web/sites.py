"""The Sites page and a remote device's page: the pairing text and its QR code are
shown; a device added on the page gets a tunnel address, and its configuration and QR
code on its own page (linked from its user's page); a new key replaces it; a device
added on its user's page gets the next address. The texts and the QR codes' pictures
are saved into the shots directory for the Rust test to decode (zbarimg)."""

import os

from browser import Browser, script_args

args = script_args("the Sites page").parse_args()


def save(name, text):
    with open(os.path.join(args.shots, name), "w", encoding="utf-8") as f:
        f.write(text)


def qr_picture(b, name):
    # The QR code alone, as the WireGuard app's camera would see it (scrolled into
    # view first: a picture of an element is cut at the window's edge).
    svg = b.find("figure.qr svg")
    b.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", svg)
    svg.screenshot(os.path.join(args.shots, name))


with Browser(args.url, args.shots) as b:
    b.get("/")
    b.login("admin", "demo-admin")
    b.get("/sites")
    b.wait_for_text("This office's pairing text")
    save("pairing.txt", b.find("pre#pairing").get_attribute("textContent"))
    qr_picture(b, "pairing-qr.png")
    b.screenshot("sites")

    # A device for alice, added on the page; its tunnel address left to the box.
    b.fill("remote_devices.name", "alice-laptop")
    b.fill("remote_devices.user", "alice")
    b.submit("Add device")
    # Saved, it shows its configuration at once.
    b.wait_for_text("The WireGuard configuration of")
    assert "Saved" in b.flash(), b.flash()
    assert "alice-laptop" in b.driver.current_url, b.driver.current_url

    # Her page links to it; its page shows the configuration and its QR code.
    b.get("/users/alice")
    b.click_link("alice-laptop")
    b.wait_for_text("The WireGuard configuration of")
    save("device.txt", b.find("pre#device-config").get_attribute("textContent"))
    qr_picture(b, "device-qr.png")
    b.screenshot("device")

    # A new key: the page shows another configuration.
    b.submit("Make a new key")
    b.wait_for_text("The WireGuard configuration of")
    save("device-new.txt", b.find("pre#device-config").get_attribute("textContent"))

    # Her phone, added on her own page: its configuration comes next.
    b.get("/users/alice")
    b.fill("remote_devices.name", "alice-phone")
    b.submit("Add a device")
    b.wait_for_text("The WireGuard configuration of")
    assert "Saved" in b.flash(), b.flash()
    save("phone.txt", b.find("pre#device-config").get_attribute("textContent"))
print("ok")
