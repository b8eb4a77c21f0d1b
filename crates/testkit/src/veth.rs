//! Veth pairs between namespaces.

use std::io;
use std::path::Path;
use std::process::Stdio;

use crate::Netns;
use crate::cmd::{ip, next_id, run_checked};

/// One end of a [`Veth`] pair: the namespace it lives in and an optional address.
#[derive(Debug, Clone)]
pub struct Endpoint {
    netns: Option<String>,
    addr: Option<String>,
}

impl Endpoint {
    /// An end inside `ns`. Prefer this for both ends.
    pub fn netns(ns: &Netns) -> Endpoint {
        Endpoint {
            netns: Some(ns.name().to_owned()),
            addr: None,
        }
    }

    /// An end in the host's own namespace. This adds an interface to the host; tests
    /// should put both ends in namespaces they created instead.
    pub fn host() -> Endpoint {
        Endpoint {
            netns: None,
            addr: None,
        }
    }

    /// Gives the end an address in CIDR form, e.g. `10.231.7.1/30`.
    pub fn addr(mut self, cidr: &str) -> Endpoint {
        self.addr = Some(cidr.to_owned());
        self
    }
}

/// A veth pair, both ends up and addressed as asked. Dropping it deletes the link;
/// it tolerates the link being gone already (deleting a namespace removes it too).
#[derive(Debug)]
pub struct Veth {
    a: Endpoint,
    b: Endpoint,
    name_a: String,
    name_b: String,
}

/// `ox` + pid (6 hex digits) + counter (5 hex digits) + `a`/`b`: 14 bytes, under the
/// kernel's 15.
fn link_names(pid: u32, n: u32) -> (String, String) {
    let base = format!("ox{:06x}{:05x}", pid & 0xff_ffff, n & 0xf_ffff);
    (format!("{base}a"), format!("{base}b"))
}

fn exists_on_host(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

impl Veth {
    /// Creates the pair with end `a` in `a`'s namespace and end `b` in `b`'s, then
    /// adds the addresses and sets both ends up.
    pub fn new(a: Endpoint, b: Endpoint) -> io::Result<Veth> {
        let pid = std::process::id();
        let (mut name_a, mut name_b) = link_names(pid, next_id());
        while exists_on_host(&name_a) || exists_on_host(&name_b) {
            (name_a, name_b) = link_names(pid, next_id());
        }
        // Create each end directly where it belongs, so nothing appears on the host
        // unless an end is the host.
        let mut add = ip(a.netns.as_deref());
        add.args([
            "link", "add", "name", &name_a, "type", "veth", "peer", "name",
        ])
        .arg(&name_b);
        match (&a.netns, &b.netns) {
            (_, Some(ns_b)) => {
                add.args(["netns", ns_b]);
            }
            // `ip -n A` runs in A; our own pid names the host's namespace.
            (Some(_), None) => {
                add.args(["netns", &pid.to_string()]);
            }
            (None, None) => {}
        }
        run_checked(&mut add)?;
        let veth = Veth {
            a,
            b,
            name_a,
            name_b,
        };
        for (end, name) in [(&veth.a, &veth.name_a), (&veth.b, &veth.name_b)] {
            if let Some(cidr) = &end.addr {
                run_checked(ip(end.netns.as_deref()).args(["addr", "add", cidr, "dev", name]))?;
            }
            run_checked(ip(end.netns.as_deref()).args(["link", "set", name, "up"]))?;
        }
        Ok(veth)
    }

    /// Interface name of end `a`.
    pub fn name_a(&self) -> &str {
        &self.name_a
    }

    /// Interface name of end `b`.
    pub fn name_b(&self) -> &str {
        &self.name_b
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        // Deleting either end deletes both; either may be gone with its namespace.
        for (end, name) in [(&self.a, &self.name_a), (&self.b, &self.name_b)] {
            let deleted = ip(end.netns.as_deref())
                .args(["link", "del", name])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if deleted {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_names_fit_the_kernel_limit() {
        let (a, b) = link_names(4_194_304, u32::MAX);
        assert!(a.len() <= 15 && b.len() <= 15, "{a} {b}");
        assert_eq!(
            link_names(0x1234, 5),
            ("ox00123400005a".into(), "ox00123400005b".into())
        );
    }
}

/// An office network in two namespaces: the box's and a PC's, joined by a veth pair whose
/// box end has `box_cidr` (the addresses exist only inside the two namespaces). Removed on
/// drop, the link before the namespaces.
#[derive(Debug)]
pub struct OfficeLan {
    // Fields drop in order: the link before the namespaces.
    pub link: Veth,
    pub pc: Netns,
    pub boxns: Netns,
}

impl OfficeLan {
    /// Namespaces `{tag}b` and `{tag}p` (made unique by [`Netns::new`]).
    pub fn new(tag: &str, box_cidr: &str) -> io::Result<OfficeLan> {
        let boxns = Netns::new(&format!("{tag}b"))?;
        let pc = Netns::new(&format!("{tag}p"))?;
        let link = Veth::new(Endpoint::netns(&boxns).addr(box_cidr), Endpoint::netns(&pc))?;
        Ok(OfficeLan { link, pc, boxns })
    }

    /// The box's end of the link.
    pub fn box_iface(&self) -> &str {
        self.link.name_a()
    }

    /// The PC's end of the link.
    pub fn pc_iface(&self) -> &str {
        self.link.name_b()
    }
}

/// The office and the Internet in three namespaces joined by two veth pairs: a LAN PC
/// (`pc`, 192.168.1.50/24, its router 192.168.1.1), the box (`boxns`, whose ends have no
/// address: officebox with `network.manage = true` configures them) and the ISP (`isp`,
/// 198.51.100.1/24 on the WAN link; the box's WAN address is 198.51.100.2). Removed on
/// drop, the links before the namespaces.
#[derive(Debug)]
pub struct Office {
    // Fields drop in order: the links before the namespaces.
    pub lan: Veth,
    pub wan: Veth,
    pub pc: Netns,
    pub boxns: Netns,
    pub isp: Netns,
}

impl Office {
    pub const WAN_BOX: &'static str = "198.51.100.2";
    pub const WAN_ISP: &'static str = "198.51.100.1";
    pub const PC: &'static str = "192.168.1.50";

    /// Namespaces `{tag}pc`, `{tag}bx` and `{tag}is` (made unique by [`Netns::new`]).
    pub fn new(tag: &str) -> io::Result<Office> {
        crate::require_root();
        let pc = Netns::new(&format!("{tag}pc"))?;
        let boxns = Netns::new(&format!("{tag}bx"))?;
        let isp = Netns::new(&format!("{tag}is"))?;
        let lan = Veth::new(
            Endpoint::netns(&boxns),
            Endpoint::netns(&pc).addr(&format!("{}/24", Self::PC)),
        )?;
        let wan = Veth::new(
            Endpoint::netns(&boxns),
            Endpoint::netns(&isp).addr(&format!("{}/24", Self::WAN_ISP)),
        )?;
        let routed = pc.run("ip", ["route", "add", "default", "via", "192.168.1.1"])?;
        if !routed.status.success() {
            return Err(io::Error::other("cannot give the PC its default route"));
        }
        Ok(Office {
            lan,
            wan,
            pc,
            boxns,
            isp,
        })
    }

    /// The demo config for this office in `mode`: officebox manages both interfaces
    /// (static WAN address), listens on every address, SMTP on 25 and DNS on 53 (the
    /// services the WAN may reach: dns and smtp), a port forward of WAN port 8022 to
    /// the PC's 2222; NTP and the admin pages off.
    pub fn config(&self, mode: &str) -> crate::TestConfig {
        crate::TestConfig::demo()
            .set("network.manage", true)
            .set("network.listen", toml_edit::Value::Array(toml_edit::Array::new()))
            .set("network.lan.interface", self.lan.name_a())
            .set("network.lan.gateway", "192.168.1.254")
            .set("network.wan.interface", self.wan.name_a())
            .set("network.wan.address", Self::WAN_BOX)
            .set("network.wan.gateway", Self::WAN_ISP)
            .set("security.mode", mode)
            .set(
                "security.wan_services",
                toml_edit::Value::Array(["dns", "smtp"].into_iter().collect()),
            )
            .set("mail.smtp_port", 25)
            .set("dns.port", 53)
            .set("ntp.enabled", false)
            .set("web.enabled", false)
            .append("[[security.forwards]]\nname = \"ssh to the pc\"\nprotocol = \"tcp\"\nwan_port = 8022\nhost = \"192.168.1.50\"\nport = 2222\n")
    }
}
