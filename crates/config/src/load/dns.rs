//! `[dns]`: the name server and the zone's own records.

use super::*;

impl Loader<'_, '_> {
    pub(super) fn dns(
        &mut self,
        sec: Option<Section>,
        network: Option<&NetworkRead>,
    ) -> Spanned<Dns> {
        let mut dns = Dns {
            enabled: schema::DNS_ENABLED.bool(),
            port: schema::DNS_PORT.port(),
            primary: None,
            secondary: None,
            use_upstream: schema::DNS_USE_UPSTREAM.bool(),
            secondaries: Vec::new(),
            ttl: u32::try_from(schema::DNS_TTL.int()).unwrap_or(u32::MAX),
            cache_size: usize::try_from(schema::DNS_CACHE_SIZE.int()).unwrap_or(0),
            records: Vec::new(),
        };
        let mut sec = sec;
        dns.port = self.port_setting(sec.as_mut(), &schema::DNS_PORT, Service::Dns);
        let Some(mut sec) = sec else {
            return Spanned {
                value: dns,
                span: 0..0,
            };
        };
        dns.enabled = sec.flag(self.sink, &schema::DNS_ENABLED);
        let primary = sec.parsed(self.sink, "primary", IP_HELP, parse_dns_server);
        dns.primary = primary.as_ref().map(|p| p.value);
        dns.secondary = sec
            .parsed(self.sink, "secondary", IP_HELP, parse_dns_server)
            .map(|p| p.value);
        dns.use_upstream = sec.flag(self.sink, &schema::DNS_USE_UPSTREAM);
        if dns.enabled && dns.use_upstream && primary.is_none() && !sec.has("primary") {
            self.sink.error(
                &sec.key_span("use_upstream"),
                sec.path_of("primary"),
                "use_upstream is on but no primary DNS server is set",
                "set primary = \"<your ISP's DNS server>\", or use_upstream = false to answer only local names",
            );
        }
        dns.secondaries = sec
            .parsed_list(self.sink, "secondaries", IP_HELP, parse_dns_server)
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.value)
            .collect();
        let ttl = &schema::DNS_TTL;
        if let Some(t) = sec.int(self.sink, ttl.key(), ttl.range()) {
            dns.ttl = u32::try_from(t.value).unwrap_or(dns.ttl);
        }
        let cache = &schema::DNS_CACHE_SIZE;
        if let Some(c) = sec.int(self.sink, cache.key(), cache.range()) {
            dns.cache_size = usize::try_from(c.value).unwrap_or(dns.cache_size);
        }
        let records = sec.tables(self.sink, "records");
        sec.finish(self.sink);
        if let Some(network) = network {
            dns.records = self.records(records, &network.value, network.lan_net, dns.ttl);
        }
        Spanned {
            value: dns,
            span: 0..0,
        }
    }

    pub(super) fn records(
        &mut self,
        secs: Vec<Section>,
        network: &Network,
        lan: Option<Ipv4Net>,
        default_ttl: u32,
    ) -> Vec<Record> {
        let domain = network.domain.clone();
        let mut out: Vec<Record> = Vec::new();
        for mut r in secs {
            let name = r.string(self.sink, "name");
            let rtype = r.string(self.sink, "type");
            let value = r.string(self.sink, "value");
            let ttl = r.int(self.sink, "ttl", 0..=604_800);
            for (key, v) in [
                ("name", name.is_some()),
                ("type", rtype.is_some()),
                ("value", value.is_some()),
            ] {
                if !v && !r.has(key) {
                    r.missing(self.sink, key, "a record needs name, type and value, e.g. { name = \"printer\", type = \"A\", value = \"192.168.1.20\" }");
                }
            }
            let path = r.path.clone();
            r.finish(self.sink);
            let (Some(name), Some(rtype), Some(value)) = (name, rtype, value) else {
                continue;
            };
            let data = parse_spanned(
                self.sink,
                &format!("{path}.value"),
                value,
                &record_help(&rtype.value),
                |v| parse_record_data(&rtype.value, v, &domain),
            );
            let Some(data) = data else { continue };
            let is_ptr = matches!(data.value, RecordData::Ptr(_));
            let reverse = lan.map(reverse_zone);
            let fq = parse_spanned(
                self.sink,
                &format!("{path}.name"),
                name,
                "a name inside the zone, e.g. \"printer\", \"@\" for the domain itself, or \"printer.example.com.\"",
                |n| record_name(n, &domain, if is_ptr { reverse.as_deref() } else { None }),
            );
            let Some(fq) = fq else { continue };
            if let Some((label, _)) = BUILTIN_NAMES
                .iter()
                .chain(std::iter::once(&(
                    network.hostname.as_str(),
                    crate::derive::BuiltinTarget::Both,
                )))
                .find(|(l, _)| fq.value == format!("{l}.{domain}"))
            {
                self.sink.error(
                    &fq.span,
                    format!("{path}.name"),
                    format!("`{label}` is a built-in name that officebox answers itself"),
                    format!(
                        "pick another name; the built-in names are {} and the box's own host name",
                        BUILTIN_NAMES.map(|(l, _)| l).join(", ")
                    ),
                );
                continue;
            }
            let is_cname = matches!(data.value, RecordData::Cname(_));
            if is_cname && fq.value == domain {
                self.sink.error(
                    &fq.span,
                    format!("{path}.name"),
                    "a CNAME cannot be at the domain itself (it holds the SOA, NS and MX)",
                    "use an A record for the domain, or a name below it",
                );
                continue;
            }
            if let Some(j) = out.iter().position(|o| {
                o.name == fq.value && (is_cname || matches!(o.data, RecordData::Cname(_)))
            }) {
                self.sink.error(
                    &fq.span,
                    format!("{path}.name"),
                    format!(
                        "`{}` has a CNAME and other records (dns.records[{j}])",
                        fq.value
                    ),
                    "a name with a CNAME can have no other records; remove one of them",
                );
                continue;
            }
            out.push(Record {
                name: fq.value,
                ttl: ttl.map_or(default_ttl, |t| {
                    u32::try_from(t.value).unwrap_or(default_ttl)
                }),
                data: data.value,
            });
        }
        out
    }
}

/// The reverse zone of a LAN subnet, e.g. `1.168.192.in-addr.arpa` for a /24.
pub fn reverse_zone(net: Ipv4Net) -> String {
    let octets = net.network().octets();
    let whole = usize::from(net.prefix / 8);
    let mut labels: Vec<String> = octets[..whole].iter().rev().map(u8::to_string).collect();
    labels.push("in-addr.arpa".into());
    labels.join(".")
}

/// Resolves a record name: `@` is the domain, a trailing dot means absolute, otherwise
/// relative to the domain. The result must be inside the zone (or the reverse zone for PTR).
pub(super) fn record_name(n: &str, domain: &str, reverse: Option<&str>) -> Result<String, String> {
    let n = n.trim().to_ascii_lowercase();
    let fq = if n == "@" {
        domain.to_string()
    } else if let Some(abs) = n.strip_suffix('.') {
        abs.to_string()
    } else {
        format!("{n}.{domain}")
    };
    let labels_ok = fq.split('.').all(|l| {
        let l = l.strip_prefix('_').unwrap_or(l);
        crate::values::is_label(l) || l == "*"
    });
    if !labels_ok {
        return Err(format!("`{n}` is not a valid name"));
    }
    let inside = |zone: &str| fq == zone || fq.ends_with(&format!(".{zone}"));
    if inside(domain) || reverse.is_some_and(inside) {
        Ok(fq)
    } else {
        Err(format!("`{n}` is outside the zone {domain}"))
    }
}

pub(super) fn absolute(name: &str, domain: &str) -> Result<String, String> {
    let name = name.trim().to_ascii_lowercase();
    match name.strip_suffix('.') {
        Some(abs) => parse_domain(abs),
        None => parse_domain(&format!("{name}.{domain}")),
    }
}

pub(super) fn record_help(rtype: &str) -> String {
    match rtype.to_ascii_uppercase().as_str() {
        "A" => IPV4_HELP.into(),
        "AAAA" => "an IPv6 address, e.g. \"2001:db8::10\"".into(),
        "CNAME" | "PTR" => "a host name, e.g. \"server\" or \"host.example.net.\"".into(),
        "MX" => "preference and mail server, e.g. \"10 mail.example.net.\"".into(),
        "TXT" => "any text".into(),
        "SRV" => "priority, weight, port and target, e.g. \"10 5 5060 sip.example.com.\"".into(),
        _ => "the type is one of A, AAAA, CNAME, MX, TXT, SRV, PTR".into(),
    }
}

pub(super) fn parse_record_data(rtype: &str, v: &str, domain: &str) -> Result<RecordData, String> {
    let fields: Vec<&str> = v.split_whitespace().collect();
    let num = |s: &str| {
        s.parse::<u16>()
            .map_err(|_| format!("`{s}` is not a number from 0 to 65535"))
    };
    match rtype.to_ascii_uppercase().as_str() {
        "A" => parse_ipv4(v).map(RecordData::A),
        "AAAA" => v
            .trim()
            .parse()
            .map(RecordData::Aaaa)
            .map_err(|_| format!("`{v}` is not an IPv6 address")),
        "CNAME" => absolute(v, domain).map(RecordData::Cname),
        "PTR" => absolute(v, domain).map(RecordData::Ptr),
        "TXT" if v.len() <= 4000 => Ok(RecordData::Txt(v.to_string())),
        "TXT" => Err("the text is too long (at most 4000 characters)".into()),
        "MX" => match fields.as_slice() {
            [pref, host] => Ok(RecordData::Mx {
                preference: num(pref)?,
                exchange: absolute(host, domain)?,
            }),
            _ => Err(format!("`{v}` is not an MX value")),
        },
        "SRV" => match fields.as_slice() {
            [prio, weight, port, target] => Ok(RecordData::Srv {
                priority: num(prio)?,
                weight: num(weight)?,
                port: num(port)?,
                target: absolute(target, domain)?,
            }),
            _ => Err(format!("`{v}` is not an SRV value")),
        },
        other => Err(format!("unsupported record type `{other}`")),
    }
}
