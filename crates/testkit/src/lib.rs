//! Test harness for officebox end-to-end tests: network namespaces, veth pairs and
//! peer processes that are always torn down, whether the test passes or panics.
//!
//! End-to-end tests run the real `officebox` binary against real peer programs
//! (dnsmasq, dhclient, postfix, sipp, ...). Each test builds its own little network
//! out of [`Netns`] namespaces joined by [`Veth`] pairs, starts programs inside them
//! as [`Peer`]s, and waits for them with [`Peer::wait_for_log`] or [`wait_for_tcp`].
//!
//! Rules the harness keeps, and tests should keep too:
//!
//! - Everything is named uniquely (`obx-{tag}-{pid}-{n}` namespaces, `ox…a`/`ox…b`
//!   interfaces) and removed in `Drop`, which also runs while a failing test unwinds.
//! - Traffic goes only to loopback or to addresses inside namespaces the test created.
//!   Put both ends of a veth pair in namespaces; [`Endpoint::host`] exists but changes
//!   the host's interface list, so avoid it.
//! - Missing preconditions fail loudly: call [`require_root`] and [`require_program`]
//!   first. A skipped test checks nothing.
//! - Only processes the harness spawned are signalled: a [`Peer`]'s own process group,
//!   and processes inside a [`Netns`] the test created.
//!
//! DHCP tests run real clients with [`DhcpClient`] (dhclient, udhcpc, dhcpcd, each with
//! private files and a hook script that records what it was given) and can use dnsmasq
//! as a reference server with [`dnsmasq_dhcp_server`].
//!
//! Outbound mail tests deliver to the far side: [`FarPostfix`] (a private postfix instance
//! with STARTTLS that accepts mail for some domains into a Maildir per domain, and can
//! be stopped and started to test retries) found through [`TestDns`] (dnsmasq answering
//! only the MX and address records it was given).
//!
//! SIP trunk tests register to a telephone provider played by [`KamailioProvider`] (a
//! private kamailio registrar with digest authentication, in the ISP's namespace).
//!
//! Browser tests of the admin pages run Python scripts that drive headless Chromium
//! (`crates/officebox/tests/web/browser.py`) with [`run_browser_script`], and keep
//! their screenshots in [`screenshots_dir`] (under `target/`, not in git).
//!
//! Declare namespaces first, then links, then peers: locals drop in reverse order, so
//! peers stop before their network disappears.
//!
//! ```no_run
//! use std::time::Duration;
//! use officebox_testkit::{require_program, require_root, Endpoint, Netns, Peer, Veth};
//!
//! # fn main() -> std::io::Result<()> {
//! require_root();
//! require_program("ping", "iputils-ping");
//! let lan = Netns::new("lan")?;
//! let pc = Netns::new("pc")?;
//! let _wire = Veth::new(
//!     Endpoint::netns(&lan).addr("10.231.7.1/30"),
//!     Endpoint::netns(&pc).addr("10.231.7.2/30"),
//! )?;
//! pc.run("ping", ["-c", "1", "-W", "2", "10.231.7.1"])?;
//!
//! let mut cmd = lan.command("sh");
//! cmd.args(["-c", "echo ready; exec sleep 1000"]);
//! let server = Peer::spawn("server", cmd)?;
//! server.wait_for_log("ready", Duration::from_secs(5))?;
//! let status = server.stop(Duration::from_secs(2))?;
//! assert!(!status.success()); // it was ended by SIGTERM
//! # Ok(())
//! # }
//! ```

mod admin;
pub mod audio;
mod baresip;
mod browser;
mod cmd;
mod dhcp_client;
mod far_mail;
mod fax;
mod isp_pop3;
mod kamailio;
mod netns;
mod officebox;
mod peer;
mod require;
mod veth;
mod wait;

pub use admin::{AdminPages, form_token};
pub use baresip::{
    AudioStats, Baresip, BaresipAccount, BaresipEvent, Codec, Recording, SipTransport,
};
pub use browser::{
    BROWSER_SCRIPT_TIMEOUT, PYTHON, describe_output, require_browser, run_browser_script,
    run_browser_script_in, run_browser_script_with_timeout, screenshots_dir, web_tests_dir,
};
pub use dhcp_client::{
    ClientEvent, ClientKind, ClientLease, DhcpClient, DnsmasqDhcp, DnsmasqLease, DnsmasqOptions,
    dnsmasq_dhcp_server,
};
pub use far_mail::{DnsRecord, FarPostfix, REJECT_LOCAL_PART, TEMPFAIL_LOCAL_PART, TestDns};
pub use fax::{
    FaxLine, FaxReceived, FaxReceiver, FaxSender, FaxSent, fax_agreement, fax_test_page,
    pdf_of_pages, pdf_pages,
};
pub use isp_pop3::{IspDovecot, PopMode, PopTls, delivered, fetchmail_once, mpop_once};
pub use kamailio::{KamailioProvider, ProviderOptions};
pub use netns::Netns;
pub use officebox::{DEMO_CONFIG, Officebox, READY_TIMEOUT, TestConfig};
pub use peer::Peer;
pub use require::{require_program, require_root};
pub use tempfile::TempDir;
pub use veth::{Endpoint, Office, OfficeLan, Veth};
pub use wait::{free_tcp_port, free_udp_port, wait_for_tcp, wait_until};

/// A fresh private directory for one test's files, removed when the returned
/// [`TempDir`] drops. Its name starts with `obx-{tag}-`.
pub fn scratch_dir(tag: &str) -> std::io::Result<TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("obx-{}-", cmd::sanitize(tag)))
        .tempdir()
}
