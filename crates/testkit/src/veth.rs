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
