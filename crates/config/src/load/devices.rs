//! `[[phone.devices]]`: which phone (by MAC address) is whose, for provisioning.

use super::*;

impl Loader<'_, '_> {
    pub(super) fn devices(&mut self, secs: Vec<Section>, users: &[Spanned<User>]) -> Vec<Device> {
        let mut out: Vec<Device> = Vec::new();
        for mut d in secs {
            let mac = d.parsed(
                self.sink,
                "mac",
                "six hex pairs, e.g. \"80:5e:c0:12:34:56\"",
                parse_mac,
            );
            let user = d.string(self.sink, "user");
            let vendor = d.parsed(
                self.sink,
                "vendor",
                "one of \"yealink\", \"poly\", \"grandstream\" or \"snom\"",
                |s| {
                    Vendor::from_name(&s.to_ascii_lowercase())
                        .ok_or_else(|| format!("officebox has no files for `{s}` phones"))
                },
            );
            let keys = d.string_list(self.sink, "keys");
            for key in ["mac", "user", "vendor"] {
                if !d.has(key) {
                    d.missing(self.sink, key, "a phone needs mac, user and vendor");
                }
            }
            let path = d.path.clone();
            let mut ok = true;
            if let Some(u) = &user {
                match users.iter().find(|x| x.value.login == u.value) {
                    Some(x) if x.value.extension.is_some() => {}
                    Some(_) => {
                        ok = false;
                        self.sink.error(
                            &u.span,
                            format!("{path}.user"),
                            format!("{} has no extension", u.value),
                            "give the user an extension first, or assign the phone to one who has",
                        );
                    }
                    None => {
                        ok = false;
                        self.sink.error(
                            &u.span,
                            format!("{path}.user"),
                            format!("there is no user `{}`", u.value),
                            "write the login of a user with an extension, e.g. \"alice\"",
                        );
                    }
                }
            }
            let mut lamps = Vec::new();
            for (i, k) in keys.iter().flatten().enumerate() {
                if users
                    .iter()
                    .any(|u| u.value.extension.as_deref() == Some(k.value.as_str()))
                {
                    lamps.push(k.value.clone());
                } else {
                    ok = false;
                    self.sink.error(
                        &k.span,
                        format!("{path}.keys[{i}]"),
                        format!("no user has the extension {}", k.value),
                        "list extensions of users, e.g. [\"102\", \"103\"]",
                    );
                }
            }
            if let Some(m) = &mac
                && let Some(j) = out.iter().position(|o| o.mac == m.value)
            {
                ok = false;
                self.sink.error(
                    &m.span,
                    format!("{path}.mac"),
                    format!("{} is already phone.devices[{j}]", m.value),
                    "one entry per phone; remove one of them",
                );
            }
            d.finish(self.sink);
            if let (true, Some(mac), Some(user), Some(vendor)) = (ok, mac, user, vendor) {
                out.push(Device {
                    mac: mac.value,
                    user: user.value,
                    vendor: vendor.value,
                    keys: keys.map(|_| lamps),
                });
            }
        }
        out
    }
}
