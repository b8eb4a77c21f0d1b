//! Shaping the WAN just below the line's speeds, voice first (`network.wan.upload` and
//! `download`).
//!
//! Marks alone do nothing at the ISP's bottleneck, the modem's queue: a big upload fills
//! it and every call waits behind it. Sent a little slower than the line, the queue
//! stays in the box, where voice (the DSCP marks of `phone.dscp_rtp` and
//! `phone.dscp_sip`, EF and CS3 by default; a tunnel keeps its inner packets' marks)
//! goes first. Downloads are held the same way on arrival: the WAN's ingress is
//! redirected to an IFB device (`obx-ifb0`) shaped just below the download speed, so the
//! ISP's queue drains and TCP slows to fit.
//!
//! CAKE (diffserv4: voice in its own tin) where the kernel has it; else HTB with two
//! classes, voice (the marks, strict priority) and the rest, which may borrow the whole
//! rate (this machine's kernel has no CAKE). The `tc` and `ip` commands are iproute2's.

use officebox_config::Config;
use tracing::{info, warn};

/// The device downloads are shaped on.
pub const IFB: &str = "obx-ifb0";

/// Upload is shaped to this share of the line (per mille), download a little lower:
/// shaping what has already crossed the line needs more room to keep the ISP's queue
/// empty.
const UPLOAD_SHARE: u64 = 950;
const DOWNLOAD_SHARE: u64 = 900;

/// One direction's shaper: the device, its rate (kbit/s), and the marks that go first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shaper {
    pub device: String,
    pub kbit: u64,
    pub voice: Vec<u8>,
}

/// What the box shapes: the WAN interface it is on, upload there, download on the IFB
/// device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub wan: Option<String>,
    pub up: Option<Shaper>,
    pub down: Option<Shaper>,
}

/// What `config` shapes: upload on the WAN, download on the IFB device (each when its
/// speed is set, the network is managed, the WAN named and in use by the mode).
pub fn plan(config: &Config) -> Plan {
    let wan = &config.network.wan;
    let Some(interface) = wan.interface.as_ref().filter(|_| {
        config.network.manage && officebox_config::derive::wan_in_use(config.security.mode)
    }) else {
        return Plan::default();
    };
    if wan.upload_kbit.is_none() && wan.download_kbit.is_none() {
        return Plan::default();
    }
    let mut voice: Vec<u8> = [config.phone.dscp_rtp, config.phone.dscp_sip]
        .into_iter()
        .filter(|d| *d != 0)
        .collect();
    voice.dedup();
    let shaper = |device: &str, kbit: Option<u64>, share: u64| {
        kbit.map(|k| Shaper {
            device: device.to_string(),
            kbit: (k * share / 1000).max(64),
            voice: voice.clone(),
        })
    };
    Plan {
        wan: Some(interface.clone()),
        up: shaper(interface, wan.upload_kbit, UPLOAD_SHARE),
        down: shaper(IFB, wan.download_kbit, DOWNLOAD_SHARE),
    }
}

/// CAKE on `s.device` at its rate.
fn cake(s: &Shaper) -> Vec<String> {
    words(&format!(
        "qdisc replace dev {} root cake bandwidth {}kbit diffserv4",
        s.device, s.kbit
    ))
}

/// HTB on `s.device`: voice (its marks) first but held to its share, a quarter of the
/// rate (at least 500 kbit/s, some six G.711 calls, where the line has it), so that
/// what anyone marks as voice cannot take the line; the rest may use all of it.
fn htb(s: &Shaper) -> Vec<Vec<String>> {
    let (dev, rate) = (&s.device, s.kbit);
    let voice = (rate / 4).max(rate.min(500));
    let rest = rate.saturating_sub(voice).max(8);
    let mut out = vec![
        words(&format!(
            "qdisc replace dev {dev} root handle 1: htb default 20"
        )),
        words(&format!(
            "class replace dev {dev} parent 1: classid 1:1 htb rate {rate}kbit ceil {rate}kbit"
        )),
        words(&format!(
            "class replace dev {dev} parent 1:1 classid 1:10 htb rate {voice}kbit ceil {voice}kbit prio 0"
        )),
        words(&format!(
            "class replace dev {dev} parent 1:1 classid 1:20 htb rate {rest}kbit ceil {rate}kbit prio 1"
        )),
    ];
    for (i, dscp) in s.voice.iter().enumerate() {
        out.push(words(&format!(
            "filter add dev {dev} parent 1: protocol ip prio {} u32 match ip tos 0x{:02x} 0xfc flowid 1:10",
            i + 1,
            dscp << 2
        )));
    }
    out
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

/// Runs `program args`; its error output on failure.
async fn run(program: &str, args: &[String]) -> Result<(), String> {
    let out = tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// One direction's shaper: CAKE if the kernel has it, else HTB.
async fn shape(s: &Shaper) -> Result<&'static str, String> {
    // A fresh start: what was there before (another rate, the other qdisc) goes.
    let _ = run("tc", &words(&format!("qdisc del dev {} root", s.device))).await;
    if run("tc", &cake(s)).await.is_ok() {
        return Ok("cake");
    }
    for cmd in htb(s) {
        run("tc", &cmd).await?;
    }
    Ok("htb")
}

/// Shapes the WAN as `config` says (`plan(config)`), after undoing what `old` shaped
/// (the last plan applied: the WAN may have been renamed, or its speeds removed; an
/// ingress redirect left pointing at a deleted IFB device would drop everything arriving
/// there). Failures are reported, never fatal: an unshaped line still works.
pub async fn apply(config: &Config, old: &Plan) {
    let new = plan(config);
    if let Some(wan) = &old.wan {
        let _ = run("tc", &words(&format!("qdisc del dev {wan} root"))).await;
        let _ = run("tc", &words(&format!("qdisc del dev {wan} ingress"))).await;
    }
    if old.down.is_some() || new.down.is_some() {
        let _ = run("ip", &words(&format!("link del {IFB}"))).await;
    }
    let Some(wan) = &new.wan else {
        return;
    };
    if let Some(s) = &new.up {
        match shape(s).await {
            Ok(how) => {
                info!(message = "net: upload shaped", device = %s.device, kbit = s.kbit, qdisc = how);
            }
            Err(error) => warn!(message = "net: upload not shaped", %error),
        }
    }
    // Download: the WAN's arrivals through the IFB device.
    if let Some(s) = &new.down {
        let _ = run("tc", &words(&format!("qdisc del dev {wan} ingress"))).await;
        let steps = [
            ("ip", format!("link add {IFB} type ifb")),
            ("ip", format!("link set {IFB} up")),
            ("tc", format!("qdisc add dev {wan} handle ffff: ingress")),
            (
                "tc",
                format!(
                    "filter add dev {wan} parent ffff: protocol all prio 10 u32 match u32 0 0 action mirred egress redirect dev {IFB}"
                ),
            ),
        ];
        let mut result = Ok("");
        for (program, args) in steps {
            if let Err(e) = run(program, &words(&args)).await {
                result = Err(e);
                break;
            }
        }
        match result.and(shape(s).await) {
            Ok(how) => {
                info!(message = "net: download shaped", device = %s.device, kbit = s.kbit, qdisc = how);
            }
            Err(error) => {
                // Never a redirect to nowhere: without its shaper, the ingress goes too.
                let _ = run("tc", &words(&format!("qdisc del dev {wan} ingress"))).await;
                warn!(message = "net: download not shaped", %error);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_line_is_shaped_just_below_its_speeds_with_voice_first() {
        let c = officebox_config::parse(
            "t.toml",
            "[network]\ndomain = \"example.com\"\nmanage = true\n\
             [network.wan]\ninterface = \"wan0\"\nmode = \"dhcp\"\nupload = \"4mbit\"\ndownload = \"20mbit\"\n\
             [network.lan]\ninterface = \"lan0\"\n[dns]\nuse_upstream = false\n[web]\nenabled = false\n",
        )
        .unwrap();
        let p = plan(&c);
        assert_eq!(p.wan.as_deref(), Some("wan0"));
        let up = p.up.unwrap();
        assert_eq!((up.device.as_str(), up.kbit), ("wan0", 3800));
        assert_eq!(up.voice, [46, 24], "EF and CS3 by default");
        let down = p.down.unwrap();
        assert_eq!((down.device.as_str(), down.kbit), (IFB, 18000));
        let htb: Vec<String> = htb(&up).iter().map(|c| c.join(" ")).collect();
        assert!(htb.contains(
            &"filter add dev wan0 parent 1: protocol ip prio 1 u32 match ip tos 0xb8 0xfc flowid 1:10".to_string()
        ), "{htb:?}");
        assert!(
            htb.iter()
                .any(|c| c.contains("classid 1:10 htb rate 950kbit ceil 950kbit prio 0")),
            "voice is held to its share: {htb:?}"
        );
        assert_eq!(
            cake(&up).join(" "),
            "qdisc replace dev wan0 root cake bandwidth 3800kbit diffserv4"
        );
        // Not managed, or no speeds: nothing.
        let mut off = c.clone();
        off.network.manage = false;
        assert_eq!(plan(&off), Plan::default());
        off.network.manage = true;
        off.security.mode = officebox_config::SecurityMode::LanOnly;
        assert_eq!(plan(&off), Plan::default(), "lan-only: the WAN is not used");
        off.security.mode = officebox_config::SecurityMode::FirewallNat;
        off.network.wan.upload_kbit = None;
        off.network.wan.download_kbit = None;
        assert_eq!(plan(&off), Plan::default());
    }
}
