//! The commented default config that `officebox init` writes.
//!
//! Every setting appears with its default and a sentence in the office manager's words,
//! in the order of the appliance's admin pages. The text is a template, not a serializer
//! output, so its comments are written for people.

/// The default config for a new box. `admin_hash` is the argon2 hash of the admin's
/// password (the caller generates and shows the password).
pub fn default_config(domain: &str, admin_hash: &str) -> String {
    TEMPLATE
        .replace("{domain}", domain)
        .replace("{admin_hash}", admin_hash)
}

const TEMPLATE: &str = r#"# officebox configuration.
#
# One file for the whole box. After editing, check it with
#     officebox check --config THIS_FILE
# and apply it to a running officebox with `kill -HUP <pid>` (or from the admin pages).
# Durations are written like "30s", "5m", "12h", "1d"; sizes like "25M".

# Where officebox keeps its state: leases, the mail queue, mailboxes, certificates.
data_dir = "/var/lib/officebox"

# ---------------------------------------------------------------- Network Settings
[network]
hostname = "officebox"          # this box's own name
domain = "{domain}"              # your company's domain
manage = true                   # officebox configures the interfaces, routes and firewall
# listen = ["127.0.0.1"]        # bind every service to these addresses only (testing)

[network.wan]                   # the port facing your ISP's modem
interface = "eth0"
mode = "dhcp"                   # "dhcp": leased from the ISP; "static": entered below
# mode = "static"
# address = "203.0.113.10"      # from your ISP
# netmask = "255.255.255.0"
# gateway = "203.0.113.1"
release_on_shutdown = false     # (dhcp) give the address back when officebox stops

[network.lan]                   # the port facing the office switch
interface = "eth1"
address = "192.168.1.1"
netmask = "255.255.255.0"
# gateway = "192.168.1.254"     # only in lan-only mode: the office's other router

# ---------------------------------------------------------------- Security Settings
[security]
# lan-only:         officebox is an ordinary host on the LAN; no routing.
# router:           plain routing between LAN and WAN; no NAT, no firewall.
# firewall-nat:     the office shares one Internet address; nobody outside can reach in.
# firewall-nat-dmz: the same, and officebox's own WAN address answers only the services
#                   listed in wan_services (all other ports are invisible).
mode = "firewall-nat"
# officebox's own services reachable from the Internet:
# dns, smtp, submission, smtps, pop3, pop3s, sip, www, ntp.
wan_services = ["smtp", "www"]

# Publish a LAN device on the Internet (repeat the block for each):
# [[security.forwards]]
# name = "office camera"
# protocol = "tcp"              # "tcp", "udp" or "both"
# wan_port = 8022
# host = "192.168.1.20"
# port = 22                     # defaults to wan_port

# ---------------------------------------------------------------- DNS Server
[dns]
enabled = true
port = 53
# primary = "192.0.2.53"        # your ISP's DNS server
# secondary = "192.0.2.54"      # optional; leave it out rather than guess
use_upstream = false            # true: look up Internet names at primary/secondary.
                                # false: stand-alone; unknown names do not exist.
secondaries = []                # name servers allowed to copy the zone (AXFR)
ttl = 3600                      # seconds, for officebox's own records
cache_size = 10000

# Extra names in your domain (types: A, AAAA, CNAME, MX, TXT, SRV, PTR):
# [[dns.records]]
# name = "printer"
# type = "A"
# value = "192.168.1.20"

# ---------------------------------------------------------------- Servers - DHCP
[dhcp]
enabled = true                  # only one DHCP server per LAN!
# range = ["192.168.1.1", "192.168.1.100"]   # default: .1 to .100, skipping officebox
lease_time = "1d"
exclude = []                    # addresses in the range used by fixed devices
ping_check = false              # ping an address before handing it out
server_check = "1m"             # how often to look for another DHCP server (none may serve beside officebox)

# A fixed address for one device (repeat for each):
# [[dhcp.reservations]]
# mac = "52:54:00:12:34:56"
# address = "192.168.1.20"
# hostname = "printer"

# ---------------------------------------------------------------- Mail
[mail]
enabled = true
smtp_port = 25
submission_port = 587
smtps_port = 465
pop3_port = 110
pop3s_port = 995
relay_from_wan = false          # never turn on unless you know why: it makes an open relay
max_message_size = "25M"
# DNS servers for finding other domains' mail servers. Unset: this box's own DNS
# (which asks [dns] primary/secondary), or nothing when use_upstream is off.
# resolvers = ["192.0.2.53"]

# Mail for other domains waits here until their servers take it.
[mail.queue]
first_retry = "5m"
max_retry_interval = "1h"
delay_notice_after = "4h"
give_up_after = "5d"

# Message Aliases: a name that delivers to users and/or addresses elsewhere.
# Naming the user itself keeps a copy here and forwards one:
#     bob = ["bob", "bob@primary.example"]
[mail.aliases]
postmaster = ["admin"]

# One ISP mailbox shared by everybody, sorted out to the users:
# [mail.catch_all]
# server = "pop.isp.example"
# tls = "implicit"              # "implicit" (995), "starttls" or "none"
# login = "office"
# password = "..."
# poll_interval = "5m"
# keep_on_server = false
# verify_certificate = true     # check the ISP's certificate; the password goes there
# ca_file = "/etc/officebox/isp-ca.pem"   # an ISP with its own CA

# ---------------------------------------------------------------- Users
# Add users with `officebox user add LOGIN`; it stores hashes, never passwords.
[[users]]
login = "admin"
name = "Administrator"
password = "{admin_hash}"
admin = true
# A user's own mailbox at the ISP, fetched into theirs (settings as for the catch-all):
# [[users.pop3]]
# server = "pop.isp.example"
# login = "admin.office"
# password = "..."

# ---------------------------------------------------------------- Phones
[phone]
enabled = true
sip_port = 5060
voicemail_extension = "*97"
no_answer_timeout = "20s"
max_message_length = "3m"
rtp_ports = "10000-10999"

# ---------------------------------------------------------------- Web
[web]
enabled = true
admin_port = 8080               # the admin pages, LAN only
site_port = 80                  # the www site and the corp intranet
https = false
session_timeout = "30m"
confirm_timeout = "90s"          # after changing addresses or the security mode: keep, or undo

# ---------------------------------------------------------------- Time
[ntp]
enabled = true                  # the LAN's time server
port = 123
"#;
