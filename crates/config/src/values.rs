//! Value types of the config and their parsers. Each parser's error says what is wrong
//! with the text; the caller adds what would be right.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// An IPv4 subnet: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Net {
    /// The interface address (not necessarily the network address).
    pub address: Ipv4Addr,
    /// Prefix length, 0-32.
    pub prefix: u8,
}

impl Ipv4Net {
    /// Mask as a number.
    fn mask_bits(self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }

    /// The netmask, e.g. 255.255.255.0.
    pub fn netmask(self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask_bits())
    }

    /// The network address (host bits zero).
    pub fn network(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.address) & self.mask_bits())
    }

    /// The broadcast address (host bits one).
    pub fn broadcast(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.address) | !self.mask_bits())
    }

    /// Whether `ip` is inside the subnet (network and broadcast included).
    pub fn contains(self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask_bits() == u32::from(self.address) & self.mask_bits()
    }

    /// Whether `ip` is a usable host address of the subnet (not network, not broadcast).
    pub fn is_host(self, ip: Ipv4Addr) -> bool {
        self.contains(ip) && (self.prefix >= 31 || (ip != self.network() && ip != self.broadcast()))
    }

    /// Whether two subnets share any address.
    pub fn overlaps(self, other: Ipv4Net) -> bool {
        let shorter = if self.prefix <= other.prefix {
            self
        } else {
            other
        };
        shorter.contains(self.address) && shorter.contains(other.address)
    }

    /// First and last usable host addresses.
    pub fn host_range(self) -> (Ipv4Addr, Ipv4Addr) {
        if self.prefix >= 31 {
            return (self.network(), self.broadcast());
        }
        (
            Ipv4Addr::from(u32::from(self.network()) + 1),
            Ipv4Addr::from(u32::from(self.broadcast()) - 1),
        )
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix)
    }
}

/// Parses a dotted IPv4 address.
pub fn parse_ipv4(s: &str) -> Result<Ipv4Addr, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("`{s}` is not an IPv4 address"))
}

/// Parses an IPv4 address with a prefix length (`10.2.0.0/24`, `10.99.0.1/24`); a bare
/// address is a /32.
pub fn parse_ipv4_net(s: &str) -> Result<Ipv4Net, String> {
    let text = s.trim();
    let (addr, prefix) = text.split_once('/').unwrap_or((text, "32"));
    let address = addr
        .parse()
        .map_err(|_| format!("`{addr}` is not an IPv4 address"))?;
    let prefix = prefix
        .parse::<u8>()
        .ok()
        .filter(|p| *p <= 32)
        .ok_or_else(|| format!("`/{prefix}` is not a prefix length (0 to 32)"))?;
    Ok(Ipv4Net { address, prefix })
}

/// Parses an IPv4 or IPv6 address.
pub fn parse_ip(s: &str) -> Result<IpAddr, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("`{s}` is not an IP address"))
}

/// Parses a DNS server: `192.0.2.53`, `192.0.2.53:5353`, `2001:db8::53` or
/// `[2001:db8::53]:5353`; the port defaults to 53.
pub fn parse_dns_server(s: &str) -> Result<std::net::SocketAddr, String> {
    let text = s.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(std::net::SocketAddr::new(ip, 53));
    }
    text.parse()
        .map_err(|_| format!("`{s}` is not an IP address (optionally with :port)"))
}

/// Parses a dotted netmask into a prefix length; the ones must be contiguous.
pub fn parse_netmask(s: &str) -> Result<u8, String> {
    let mask: Ipv4Addr = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a netmask"))?;
    let bits = u32::from(mask);
    let prefix = bits.leading_ones();
    if bits.checked_shl(prefix).unwrap_or(0) != 0 {
        return Err(format!(
            "`{s}` is not a valid netmask: its one bits are not contiguous"
        ));
    }
    u8::try_from(prefix).map_err(|_| format!("`{s}` is not a netmask"))
}

/// A hardware (MAC) address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// Parses `52:54:00:12:34:56` (or with dashes).
pub fn parse_mac(s: &str) -> Result<Mac, String> {
    let bad = || format!("`{s}` is not a MAC address");
    let parts: Vec<&str> = s.trim().split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut out = [0u8; 6];
    for (byte, part) in out.iter_mut().zip(parts) {
        if part.len() != 2 {
            return Err(bad());
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
    }
    Ok(Mac(out))
}

/// Parses durations like `90s`, `5m`, `12h`, `1d`, `1h30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("`{s}` is not a duration");
    let text = s.trim();
    if text.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        number.clear();
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    if !number.is_empty() {
        return Err(format!("`{s}` has no unit"));
    }
    Ok(Duration::from_secs(total))
}

/// Formats a duration the way the config writes it: in the largest unit that divides it
/// exactly ("1d", "4h", "30m", "90s").
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (unit, size) = [("d", 86_400), ("h", 3600), ("m", 60)]
        .into_iter()
        .find(|&(_, size)| secs >= size && secs.is_multiple_of(size))
        .unwrap_or(("s", 1));
    format!("{}{unit}", secs / size)
}

/// Formats a size the way the config writes it: in the largest unit that divides it
/// exactly ("25M", "512K", "1000").
pub fn format_size(bytes: u64) -> String {
    let (unit, size) = [("G", 1u64 << 30), ("M", 1 << 20), ("K", 1 << 10)]
        .into_iter()
        .find(|&(_, size)| bytes >= size && bytes.is_multiple_of(size))
        .unwrap_or(("", 1));
    format!("{}{unit}", bytes / size)
}

/// Parses sizes like `25M`, `512K`, `1G`, `1000` (bytes).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let text = s.trim();
    let (digits, mult) = match text.char_indices().last() {
        Some((i, 'K' | 'k')) => (&text[..i], 1 << 10),
        Some((i, 'M' | 'm')) => (&text[..i], 1 << 20),
        Some((i, 'G' | 'g')) => (&text[..i], 1 << 30),
        _ => (text, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("`{s}` is not a size"))
}

/// Checks one DNS label as used for host names: letters, digits, hyphens; 1-63 long;
/// no hyphen at either end.
pub fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Parses a domain name (`example.com`, trailing dot allowed), returned lowercase without
/// the trailing dot.
pub fn parse_domain(s: &str) -> Result<String, String> {
    let text = s.trim().trim_end_matches('.').to_ascii_lowercase();
    if text.is_empty() || text.len() > 253 || !text.split('.').all(is_label) {
        return Err(format!("`{s}` is not a domain name"));
    }
    Ok(text)
}

/// Parses a host label (`officebox`, `laptop-7`), returned lowercase.
pub fn parse_label(s: &str) -> Result<String, String> {
    if is_label(s) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!("`{s}` is not a valid host name"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netmasks() {
        assert_eq!(parse_netmask("255.255.255.0"), Ok(24));
        assert_eq!(parse_netmask("255.255.0.0"), Ok(16));
        assert_eq!(parse_netmask("255.255.255.255"), Ok(32));
        assert_eq!(parse_netmask("0.0.0.0"), Ok(0));
        assert!(parse_netmask("255.0.255.0").is_err());
        assert!(parse_netmask("255.255.255").is_err());
    }

    #[test]
    fn subnets() {
        let lan = Ipv4Net {
            address: Ipv4Addr::new(192, 168, 1, 1),
            prefix: 24,
        };
        assert_eq!(lan.network(), Ipv4Addr::new(192, 168, 1, 0));
        assert_eq!(lan.broadcast(), Ipv4Addr::new(192, 168, 1, 255));
        assert!(lan.is_host(Ipv4Addr::new(192, 168, 1, 254)));
        assert!(!lan.is_host(Ipv4Addr::new(192, 168, 1, 255)));
        assert!(!lan.contains(Ipv4Addr::new(192, 168, 2, 1)));
        let wide = Ipv4Net {
            address: Ipv4Addr::new(192, 168, 0, 1),
            prefix: 16,
        };
        assert!(lan.overlaps(wide) && wide.overlaps(lan));
        let other = Ipv4Net {
            address: Ipv4Addr::new(10, 0, 0, 1),
            prefix: 8,
        };
        assert!(!lan.overlaps(other));
        assert_eq!(lan.to_string(), "192.168.1.0/24");
    }

    #[test]
    fn durations() {
        // text, seconds, how it is written back
        for (text, secs, shown) in [
            ("90s", 90, "90s"),
            ("5m", 300, "5m"),
            ("1h30m", 5400, "90m"),
            ("1d1s", 86_401, "86401s"),
            ("1d", 86_400, "1d"),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs(secs)),
                "{text}"
            );
            assert_eq!(format_duration(Duration::from_secs(secs)), shown);
        }
        assert!(parse_duration("5 minutes").is_err());
        assert!(parse_duration("12").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn macs_sizes_names() {
        assert_eq!(
            parse_mac("52:54:00:AB:cd:0f").map(|m| m.to_string()),
            Ok("52:54:00:ab:cd:0f".to_string())
        );
        assert!(parse_mac("52:54:00:ab:cd").is_err());
        assert_eq!(parse_size("25M"), Ok(25 << 20));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("lots").is_err());
        assert_eq!(parse_domain("Example.COM."), Ok("example.com".into()));
        assert!(parse_domain("bad_name.com").is_err());
        assert!(parse_label("-x").is_err());
    }
}
