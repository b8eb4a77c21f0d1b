//! Which file a phone asked for (by the names each make uses), and the files
//! themselves, from templates: built in, or the same name in `data_dir/provisioning/`
//! (which wins; one that does not render is logged and the built-in one used).
//!
//! | make        | common (secret-free)          | own (HTTPS, secrets)              | phonebook                    |
//! |-------------|-------------------------------|-----------------------------------|------------------------------|
//! | Yealink     | `y0000000000xx.cfg`           | `<mac>.cfg`                       | `yealink-phonebook.xml`      |
//! | Poly        | `000000000000.cfg`, `common.cfg` | `<mac>.cfg` (lists) → `<mac>-phone.cfg` | `<mac>-directory.xml` |
//! | Grandstream | `cfg.xml`, `cfg<model>.xml`   | `cfg<mac>.xml`, `cfg<mac>`        | `grandstream-phonebook.xml`  |
//! | Snom        | `snom<model>.htm`             | `snom<model>-<MAC>.htm`, `snom-<mac>.xml` | `yealink-phonebook.xml` |

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use officebox_config::Config;
use officebox_config::derive::{PICKUP_CODE, provisioning_urls};
use officebox_config::model::{Device, Vendor};
use officebox_secrets::provision as secrets;
use tracing::warn;

use super::template::{Format, Vars, render};

/// What a request names.
#[derive(Debug)]
pub(crate) enum Asked<'c> {
    /// No file of ours.
    Nothing,
    /// A secret-free file, ready.
    Public(Response),
    /// An assigned phone's own file (served only to that phone, over HTTPS).
    Own(&'c Device),
    /// The own file of a MAC nobody assigned.
    Unassigned(String),
}

/// The built-in templates, by file name.
const BUILT_IN: &[(&str, &str)] = &[
    (
        "yealink.cfg",
        include_str!("../../../../assets/provisioning/yealink.cfg"),
    ),
    (
        "yealink-common.cfg",
        include_str!("../../../../assets/provisioning/yealink-common.cfg"),
    ),
    (
        "poly.cfg",
        include_str!("../../../../assets/provisioning/poly.cfg"),
    ),
    (
        "poly-master.cfg",
        include_str!("../../../../assets/provisioning/poly-master.cfg"),
    ),
    (
        "poly-common.cfg",
        include_str!("../../../../assets/provisioning/poly-common.cfg"),
    ),
    (
        "poly-common-settings.cfg",
        include_str!("../../../../assets/provisioning/poly-common-settings.cfg"),
    ),
    (
        "grandstream.xml",
        include_str!("../../../../assets/provisioning/grandstream.xml"),
    ),
    (
        "grandstream-common.xml",
        include_str!("../../../../assets/provisioning/grandstream-common.xml"),
    ),
    (
        "snom.xml",
        include_str!("../../../../assets/provisioning/snom.xml"),
    ),
    (
        "snom-common.xml",
        include_str!("../../../../assets/provisioning/snom-common.xml"),
    ),
    (
        "yealink-phonebook.xml",
        include_str!("../../../../assets/provisioning/yealink-phonebook.xml"),
    ),
    (
        "poly-directory.xml",
        include_str!("../../../../assets/provisioning/poly-directory.xml"),
    ),
    (
        "grandstream-phonebook.xml",
        include_str!("../../../../assets/provisioning/grandstream-phonebook.xml"),
    ),
];

/// What `file` is. `token_device` is the phone whose token the request came under.
pub(crate) fn asked<'c>(
    file: &str,
    config: &'c Config,
    token_device: Option<&'c Device>,
) -> Asked<'c> {
    let name = file.to_ascii_lowercase();
    let assigned = |mac: &str| config.phone.devices.iter().find(|d| d.name() == mac);
    let own = |mac: String| match assigned(&mac) {
        Some(d) => Asked::Own(d),
        None => Asked::Unassigned(mac),
    };
    if name == "yealink-phonebook.xml" || name == "phonebook.xml" {
        return Asked::Public(phonebook(config, "yealink-phonebook.xml"));
    }
    if name == "grandstream-phonebook.xml" {
        return Asked::Public(phonebook(config, "grandstream-phonebook.xml"));
    }
    if name.ends_with("-directory.xml") {
        return Asked::Public(phonebook(config, "poly-directory.xml"));
    }
    // Poly's default master file, and the common file it lists.
    if name == "000000000000.cfg" {
        return Asked::Public(common(config, "poly-common.cfg"));
    }
    if name == "common.cfg" {
        return Asked::Public(common(config, "poly-common-settings.cfg"));
    }
    if let Some(mac) = name.strip_suffix(".cfg").and_then(mac_of) {
        // Poly's master file names the own file and holds nothing secret.
        return match assigned(&mac) {
            Some(d) if d.vendor == Vendor::Poly => Asked::Public(poly_master(config, d)),
            _ => own(mac),
        };
    }
    if let Some(mac) = name.strip_suffix("-phone.cfg").and_then(mac_of) {
        return own(mac);
    }
    if let Some(rest) = name.strip_prefix("cfg") {
        let stem = rest.strip_suffix(".xml").unwrap_or(rest);
        return match mac_of(stem) {
            Some(mac) => own(mac),
            None => Asked::Public(common(config, "grandstream-common.xml")),
        };
    }
    if let Some(mac) = name
        .strip_prefix("snom-")
        .and_then(|r| r.strip_suffix(".xml"))
        .and_then(mac_of)
    {
        return own(mac);
    }
    if let Some(stem) = name
        .strip_prefix("snom")
        .and_then(|r| r.strip_suffix(".htm"))
    {
        if let Some(mac) = stem.rsplit_once('-').and_then(|(_, m)| mac_of(m)) {
            return own(mac);
        }
        // A Snom asks for its model's file first; under its token, that is its own.
        return match token_device {
            Some(d) if d.vendor == Vendor::Snom => Asked::Own(d),
            _ => Asked::Public(common(config, "snom-common.xml")),
        };
    }
    if name.starts_with('y') && name.ends_with(".cfg") && name.len() == "y000000000000.cfg".len() {
        return Asked::Public(common(config, "yealink-common.cfg"));
    }
    Asked::Nothing
}

/// 12 hex digits, not all zero: a MAC in a file name (lowercase).
fn mac_of(s: &str) -> Option<String> {
    (s.len() == 12 && s.bytes().all(|b| b.is_ascii_hexdigit()) && s != "000000000000")
        .then(|| s.to_ascii_lowercase())
}

/// `device`'s own file, made for `secret`.
pub(crate) fn own_file(config: &Config, device: &Device, secret: &str) -> Response {
    let Some(urls) = provisioning_urls(config) else {
        return (StatusCode::NOT_FOUND, "provisioning is off\n").into_response();
    };
    let user = config.users.iter().find(|u| u.login == device.user);
    let display = user.map_or(device.user.as_str(), |u| {
        if u.name.is_empty() {
            u.login.as_str()
        } else {
            u.name.as_str()
        }
    });
    let extension = user.and_then(|u| u.extension.clone()).unwrap_or_default();
    let mac = device.name();
    let mut v = base_vars(config);
    v.set("mac", &mac)
        .set("display_name", display)
        .set("extension", &extension)
        .set("auth_name", &mac)
        .set("sip_password", secrets::sip_password(secret))
        .set("sip_port", config.phone.sip_port)
        .set("voicemail", &config.phone.voicemail_extension)
        .set("provisioning_url", &urls.https)
        .set(
            "provisioning_host",
            urls.https
                .trim_start_matches("https://")
                .trim_end_matches('/'),
        )
        .set("provisioning_user", &mac)
        .set("provisioning_password", secrets::http_password(secret))
        .set("phonebook_url", &urls.https)
        .list("keys", keys(config, device, &extension));
    let (template, format) = match device.vendor {
        Vendor::Yealink => ("yealink.cfg", Format::Lines),
        Vendor::Poly => ("poly.cfg", Format::Xml),
        Vendor::Grandstream => ("grandstream.xml", Format::Xml),
        Vendor::Snom => ("snom.xml", Format::Xml),
    };
    file(config, template, &v, format)
}

/// The busy-lamp keys: the device's list, or every other user's extension.
fn keys(config: &Config, device: &Device, own: &str) -> Vec<Vars> {
    let extensions: Vec<String> = match &device.keys {
        Some(k) => k.clone(),
        None => config
            .users
            .iter()
            .filter_map(|u| u.extension.clone())
            .filter(|e| e != own)
            .collect(),
    };
    extensions
        .iter()
        .enumerate()
        .map(|(i, ext)| {
            let name = config
                .users
                .iter()
                .find(|u| u.extension.as_deref() == Some(ext))
                .map_or(ext.as_str(), |u| {
                    if u.name.is_empty() { &u.login } else { &u.name }
                });
            let mut k = Vars::default();
            // Grandstream GXP multi-purpose key n (from 1): mode P(322+n), account,
            // name and value P(3n-2), P(3n-1), P(3n) after 300.
            let n = i + 1;
            k.set("n", n)
                .set("n0", i)
                .set("line_key", n + 1)
                .set("extension", ext)
                .set("name", name)
                .set("pickup", PICKUP_CODE)
                .set("gs_mode", 322 + n)
                .set("gs_account", 300 + 3 * n - 2)
                .set("gs_name", 300 + 3 * n - 1)
                .set("gs_value", 300 + 3 * n);
            k
        })
        .collect()
}

/// What every file may use: the box's addresses and the company.
fn base_vars(config: &Config) -> Vars {
    let host = provisioning_urls(config).map_or_else(
        || config.network.lan.net.address.to_string(),
        |u| u.host.to_string(),
    );
    let mut v = Vars::default();
    v.set(
        "ntp_server",
        if config.ntp.enabled {
            host.as_str()
        } else {
            ""
        },
    )
    .set("sip_server", &host)
    .set("company", &config.network.domain);
    v
}

fn common(config: &Config, template: &'static str) -> Response {
    let format = if template.ends_with(".xml") || template.starts_with("poly") {
        Format::Xml
    } else {
        Format::Lines
    };
    file(config, template, &base_vars(config), format)
}

fn poly_master(config: &Config, device: &Device) -> Response {
    let mut v = base_vars(config);
    v.set("mac", device.name());
    file(config, "poly-master.cfg", &v, Format::Xml)
}

/// The company phonebook: every user with an extension, by name.
fn phonebook(config: &Config, template: &'static str) -> Response {
    let mut users: Vec<_> = config
        .users
        .iter()
        .filter(|u| u.extension.is_some())
        .collect();
    users.sort_by(|a, b| a.name.cmp(&b.name));
    let entries = users
        .iter()
        .map(|u| {
            let mut e = Vars::default();
            e.set("name", if u.name.is_empty() { &u.login } else { &u.name })
                .set("extension", u.extension.as_deref().unwrap_or_default());
            e
        })
        .collect();
    let mut v = base_vars(config);
    v.list("entries", entries);
    file(config, template, &v, Format::Xml)
}

/// `template` (the data directory's, else the built-in one) filled with `vars`.
fn file(config: &Config, template: &'static str, vars: &Vars, format: Format) -> Response {
    let built_in = BUILT_IN
        .iter()
        .find(|(n, _)| *n == template)
        .map_or("", |(_, t)| *t);
    let custom = std::fs::read_to_string(config.data_dir.join("provisioning").join(template)).ok();
    let text = custom
        .and_then(|t| match render(&t, vars, format) {
            Ok(out) => Some(out),
            Err(error) => {
                warn!(message = "provisioning: the data directory's template does not render; using the built-in one", template, %error);
                None
            }
        })
        .or_else(|| render(built_in, vars, format).ok())
        .unwrap_or_default();
    let kind = if matches!(format, Format::Xml) {
        "application/xml; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    let mut r = (StatusCode::OK, text).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    super::no_store(&mut r);
    r
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA";

    fn config() -> Config {
        let text = format!(
            "[network]\ndomain = \"example.com\"\nmanage = false\n[dns]\nuse_upstream = false\n\
             [[users]]\nlogin = \"alice\"\nname = \"Alice <\\\"&> Smith\\ninjected = 1\"\npassword = \"{HASH}\"\nextension = \"101\"\n\
             [[users]]\nlogin = \"bob\"\nname = \"Bob\"\npassword = \"{HASH}\"\nextension = \"102\"\nadmin = true\n\
             [[phone.devices]]\nmac = \"80:5e:c0:12:34:56\"\nuser = \"alice\"\nvendor = \"yealink\"\n\
             [[phone.devices]]\nmac = \"00:04:f2:12:34:56\"\nuser = \"alice\"\nvendor = \"poly\"\n\
             [[phone.devices]]\nmac = \"00:0b:82:12:34:56\"\nuser = \"alice\"\nvendor = \"grandstream\"\n\
             [[phone.devices]]\nmac = \"00:04:13:12:34:56\"\nuser = \"alice\"\nvendor = \"snom\"\n"
        );
        officebox_config::parse("t.toml", &text).unwrap()
    }

    async fn body(r: Response) -> (StatusCode, String) {
        let status = r.status();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn every_make_gets_its_account_and_keys_with_values_escaped() {
        let c = config();
        let password = secrets::sip_password("s3cret");
        for (i, must) in [
            vec![
                "account.1.user_name = 101",
                "linekey.2.value = 102",
                "account.1.auth_name = 805ec0123456",
            ],
            vec![
                "reg.1.address=\"101\"",
                "attendant.resourceList.1.address=\"102\"",
                "device.prov.serverType=\"3\"",
            ],
            vec![
                "<P35>101</P35>",
                "<P323>1</P323>",
                "<P303>102</P303>",
                "<P36>000b82123456</P36>",
            ],
            vec![
                "<user_name idx=\"1\" perm=\"R\">101</user_name>",
                "blf sip:102@",
                "<user_pname idx=\"1\" perm=\"R\">000413123456</user_pname>",
            ],
        ]
        .into_iter()
        .enumerate()
        {
            let device = &c.phone.devices[i];
            let (status, text) = body(own_file(&c, device, "s3cret")).await;
            assert_eq!(status, StatusCode::OK);
            assert!(text.contains(&password), "{text}");
            for m in must {
                assert!(text.contains(m), "{:?}: {m} in\n{text}", device.vendor);
            }
            // A name cannot add a setting or break the markup.
            assert!(!text.contains("\ninjected"), "{text}");
            if device.vendor != Vendor::Yealink {
                assert!(!text.contains("<\"&>"), "{text}");
                assert!(text.contains("&lt;&quot;&amp;&gt;"), "{text}");
            }
        }
    }

    #[test]
    fn file_names_of_each_make() {
        let c = config();
        let own = |name: &str| matches!(asked(name, &c, None), Asked::Own(_));
        let public = |name: &str| matches!(asked(name, &c, None), Asked::Public(_));
        assert!(own("805ec0123456.cfg") && own("805EC0123456.cfg"));
        assert!(
            public("0004f2123456.cfg"),
            "Poly's master file holds no secret"
        );
        assert!(own("0004f2123456-phone.cfg"));
        assert!(own("cfg000b82123456.xml") && own("cfg000b82123456"));
        assert!(own("snomD785-000413123456.htm") && own("snom-000413123456.xml"));
        for common in [
            "y000000000066.cfg",
            "000000000000.cfg",
            "common.cfg",
            "cfg.xml",
            "snomD785.htm",
            "yealink-phonebook.xml",
            "0004f2123456-directory.xml",
            "grandstream-phonebook.xml",
        ] {
            assert!(public(common), "{common}");
        }
        assert!(matches!(
            asked("aabbccddeeff.cfg", &c, None),
            Asked::Unassigned(_)
        ));
        for nothing in [
            "..",
            "index.html",
            "805ec0123456.cfg.bak",
            "y0000000000661.cfg",
        ] {
            assert!(
                matches!(asked(nothing, &c, None), Asked::Nothing),
                "{nothing}"
            );
        }
        // Under a Snom's token its model file is its own.
        let snom = &c.phone.devices[3];
        assert!(matches!(
            asked("snomD785.htm", &c, Some(snom)),
            Asked::Own(_)
        ));
    }
}
