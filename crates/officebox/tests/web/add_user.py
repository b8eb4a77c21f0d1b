"""Adds carol (extension 103) on the Users page; the Rust test then asks
`officebox user list` whether she is there."""

from browser import Browser, script_args

args = script_args("add a user").parse_args()
with Browser(args.url, args.shots) as b:
    b.get("/")
    b.login("admin", "demo-admin")
    b.get("/users")
    b.fill("login", "carol")
    b.fill("name", "Carol Example")
    b.fill("extension", "103")
    b.fill("password", "carol-secret")
    b.submit("Add user")
    b.wait_for_text("Saved and applied.")
    b.screenshot("users")
print("ok")
