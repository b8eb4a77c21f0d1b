//! kamailio as a telephone provider's registrar, for the SIP trunk tests: a private
//! instance (config, control socket and runtime files in a scratch directory) inside a
//! namespace the test made, one account with digest authentication, no database
//! (usrloc `db_mode 0`). Its location table is read with `kamcmd ul.dump` over its own
//! control socket; each REGISTER it accepts is logged as `provider: saved`. A request to
//! a registered account (an OPTIONS to `sip:ACCOUNT@provider`, say) is relayed to where
//! it registered, as a provider sends its calls.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{Netns, Peer, TempDir, scratch_dir, wait_until};

/// What the provider is like.
#[derive(Debug, Clone)]
pub struct ProviderOptions {
    /// Where it listens (inside its namespace).
    pub address: String,
    pub port: u16,
    /// The trunk account.
    pub username: String,
    pub password: String,
    /// `Some("SHA-256")`: it challenges with SHA-256 only (kamailio's auth `algorithm`).
    pub algorithm: Option<String>,
    /// The registrar's `max_expires` (it grants at most this), and `min_expires` (with
    /// `min_expires_mode` 1: shorter asks get 423 Interval Too Brief).
    pub max_expires: Option<u32>,
    pub min_expires: Option<u32>,
    /// Listen on TCP too.
    pub tcp: bool,
    /// The provider's own phones (account, password): they register, call anyone, and
    /// are called by account. Any other call is challenged for the trunk account.
    pub phones: Vec<(String, String)>,
    /// Numbers starting with this are the trunk's DIDs: relayed to where the trunk
    /// account registered, the number kept in To.
    pub did_prefix: Option<String>,
    /// Listen on TLS too, on this port, with a self-signed certificate for its address
    /// ([`KamailioProvider::tls_cert`]).
    pub tls_port: Option<u16>,
}

impl ProviderOptions {
    /// A provider on `address:5060` (UDP) with one account.
    pub fn new(address: &str, username: &str, password: &str) -> ProviderOptions {
        ProviderOptions {
            address: address.to_string(),
            port: 5060,
            username: username.to_string(),
            password: password.to_string(),
            algorithm: None,
            max_expires: None,
            min_expires: None,
            tcp: false,
            phones: Vec::new(),
            did_prefix: None,
            tls_port: None,
        }
    }

    fn config(&self, ctl: &str, dir: &Path) -> String {
        let (addr, port) = (&self.address, self.port);
        let mut listen = format!("listen=udp:{addr}:{port}\n");
        if self.tcp {
            listen.push_str(&format!("listen=tcp:{addr}:{port}\n"));
        }
        let mut tls_module = String::new();
        let mut params = String::new();
        if let Some(tls) = self.tls_port {
            listen.push_str(&format!("enable_tls=yes\nlisten=tls:{addr}:{tls}\n"));
            tls_module.push_str("loadmodule \"tls.so\"\n");
            params.push_str(&format!(
                "modparam(\"tls\", \"config\", \"{}\")\n",
                dir.join("tls.cfg").display()
            ));
        }
        if self.tcp || self.tls_port.is_some() {
            listen.push_str("tcp_children=1\n");
        } else {
            listen.push_str("disable_tcp=yes\n");
        }
        if let Some(a) = &self.algorithm {
            params.push_str(&format!("modparam(\"auth\", \"algorithm\", \"{a}\")\n"));
        }
        // Without a maximum, a minimum of one second (kamailio's 60 would clash).
        let min = self.min_expires.unwrap_or(1);
        params.push_str(&format!(
            "modparam(\"registrar\", \"min_expires\", {min})\n"
        ));
        if self.min_expires.is_some() {
            params.push_str("modparam(\"registrar\", \"min_expires_mode\", 1)\n");
        }
        if let Some(max) = self.max_expires {
            params.push_str(&format!(
                "modparam(\"registrar\", \"max_expires\", {max})\n"
            ));
            params.push_str(&format!(
                "modparam(\"registrar\", \"default_expires\", {max})\n"
            ));
        }
        let (user, password) = (&self.username, &self.password);
        let mut phone_passwords = String::new();
        let mut own_phone = String::from("$var(own) = 0;\n");
        for (account, pw) in &self.phones {
            phone_passwords.push_str(&format!(
                "        if ($au == \"{account}\") {{ $var(pw) = \"{pw}\"; }}\n"
            ));
            own_phone.push_str(&format!(
                "        if ($fU == \"{account}\") {{ $var(own) = 1; }}\n"
            ));
        }
        let did = match &self.did_prefix {
            Some(p) => format!(
                "        if ($rU =~ \"^{p}\") {{\n            xlog(\"L_NOTICE\", \"provider: DID $rU to the trunk\\n\");\n            $rU = \"{user}\";\n        }}\n"
            ),
            None => String::new(),
        };
        format!(
            r#"#!KAMAILIO
debug=2
log_stderror=yes
children=2
{listen}dns=no
rev_dns=no
auto_aliases=no
disable_sctp=yes
use_dns_cache=no

{tls_module}loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"
loadmodule "siputils.so"
loadmodule "textops.so"
loadmodule "xlog.so"
loadmodule "ctl.so"
loadmodule "kex.so"
loadmodule "rr.so"

modparam("usrloc", "db_mode", 0)
modparam("auth", "secret", "provider-{pid}")
modparam("ctl", "binrpc", "unix:{ctl}")
{params}
request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    # Within a dialog: along the recorded route.
    if (has_totag()) {{
        if (loose_route()) {{
            t_relay();
            exit;
        }}
        if (is_method("ACK")) {{
            if (t_check_trans()) {{
                t_relay();
            }}
            exit;
        }}
        sl_send_reply("404", "Not Here");
        exit;
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
    if (is_method("REGISTER")) {{
        $var(pw) = "";
        if ($au == $null || $au == "{user}") {{
            $var(pw) = "{password}";
        }}
{phone_passwords}        if ($var(pw) == "") {{
            sl_send_reply("403", "Forbidden");
            exit;
        }}
        if (!pv_www_authenticate("$td", "$var(pw)", "0")) {{
            xlog("L_NOTICE", "provider: challenge to $si:$sp ($ua) after [$hdr(Authorization)]\n");
            www_challenge("$td", "1");
            exit;
        }}
        if (!save("location")) {{
            sl_reply_error();
            exit;
        }}
        xlog("L_NOTICE", "provider: saved $ct expires=[$hdr(Expires)] from $si:$sp $proto auth=[$hdr(Authorization)]\n");
        exit;
    }}
    if (is_method("INVITE")) {{
        {own_phone}        if ($var(own) == 0) {{
            # A call on the trunk: the account's credentials, or no call.
            if ($au != "{user}" || !pv_proxy_authenticate("$fd", "{password}", "0")) {{
                xlog("L_NOTICE", "provider: challenge INVITE to $rU from $si:$sp\n");
                proxy_challenge("$fd", "1");
                exit;
            }}
            consume_credentials();
            xlog("L_NOTICE", "provider: call on the trunk to $rU from [$hdr(From)] pai=[$hdr(P-Asserted-Identity)]\n");
        }}
        record_route();
{did}    }}
    if (is_method("OPTIONS") && $rU == $null) {{
        sl_send_reply("200", "OK");
        exit;
    }}
    # To an account: where it is registered (the box, for the trunk account).
    if (!lookup("location")) {{
        sl_send_reply("404", "Not Found");
        exit;
    }}
    xlog("L_NOTICE", "provider: relaying $rm to $ru\n");
    t_relay();
}}
"#,
            pid = std::process::id(),
        )
    }
}

/// A running provider registrar.
#[derive(Debug)]
pub struct KamailioProvider {
    peer: Peer,
    ctl: PathBuf,
    // Last: the directory goes after the process.
    _dir: TempDir,
}

impl KamailioProvider {
    /// Its TLS certificate (self-signed, for its address), when it listens on TLS.
    pub fn tls_cert(&self) -> PathBuf {
        self._dir.path().join("cert.pem")
    }

    /// Starts kamailio in `ns` (which has `options.address`) and waits until it listens.
    pub fn start(ns: &Netns, options: &ProviderOptions) -> io::Result<KamailioProvider> {
        Self::launch(Some(ns), options)
    }

    /// Starts kamailio in this namespace, on a loopback address (`options.address`,
    /// e.g. 127.0.0.2, with a free port): a provider for tests without namespaces.
    pub fn start_on_loopback(options: &ProviderOptions) -> io::Result<KamailioProvider> {
        Self::launch(None, options)
    }

    fn launch(ns: Option<&Netns>, options: &ProviderOptions) -> io::Result<KamailioProvider> {
        crate::require_program("kamailio", "kamailio");
        let dir = scratch_dir("kamailio")?;
        let ctl = dir.path().join("kamailio_ctl");
        let cfg = dir.path().join("kamailio.cfg");
        std::fs::write(&cfg, options.config(&ctl.display().to_string(), dir.path()))?;
        if options.tls_port.is_some() {
            let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
            let ip: std::net::IpAddr = options
                .address
                .parse()
                .map_err(|_| io::Error::other("kamailio over TLS needs an IP address"))?;
            crate::isp_pop3::self_signed_cert(ip, &cert, &key)?;
            std::fs::write(
                dir.path().join("tls.cfg"),
                format!(
                    "[server:default]\nmethod = TLSv1.2+\nverify_certificate = no\n\
                     require_certificate = no\nprivate_key = {}\ncertificate = {}\n\n\
                     [client:default]\nverify_certificate = no\nrequire_certificate = no\n",
                    key.display(),
                    cert.display()
                ),
            )?;
        }
        let run = dir.path().join("run");
        std::fs::create_dir_all(&run)?;
        let mut cmd = match ns {
            Some(ns) => ns.command("kamailio"),
            None => Command::new("kamailio"),
        };
        cmd.arg("-f")
            .arg(&cfg)
            .arg("-P")
            .arg(dir.path().join("kamailio.pid"))
            .arg("-Y")
            .arg(&run)
            .arg("-w")
            .arg(dir.path())
            .args(["-DD", "-E", "-m", "64", "-M", "8"]);
        let peer = Peer::spawn_in("kamailio", cmd, dir.path())?;
        let provider = KamailioProvider {
            peer,
            ctl,
            _dir: dir,
        };
        let ready = wait_until(Duration::from_secs(10), || {
            provider.ctl.exists() && provider.contacts().is_ok()
        });
        if !ready {
            return Err(io::Error::other(format!(
                "kamailio did not start; log:\n{}",
                provider.peer.log_tail(30)
            )));
        }
        Ok(provider)
    }

    /// `kamcmd ul.dump`: the location table as kamailio prints it.
    pub fn contacts(&self) -> io::Result<String> {
        let out = Command::new("kamcmd")
            .arg("-s")
            .arg(format!("unix:{}", self.ctl.display()))
            .arg("ul.dump")
            .output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "kamcmd ul.dump: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The REGISTERs it accepted (their log lines).
    pub fn saved(&self) -> Vec<String> {
        self.peer
            .log()
            .lines()
            .filter(|l| l.contains("provider: saved"))
            .map(str::to_string)
            .collect()
    }

    pub fn log(&self) -> String {
        self.peer.log()
    }

    pub fn peer(&self) -> &Peer {
        &self.peer
    }
}
