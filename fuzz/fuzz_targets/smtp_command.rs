//! An SMTP command line from a client: parsed the way the server parses it, and every
//! address in it routed through the recipient rules (aliases, relay tricks).

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use officebox_config::Config;
use officebox_mail::route::{resolve, split};

fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA";
        let text = format!(
            "[network]\ndomain = \"office.test\"\nmanage = false\n[dns]\nuse_upstream = false\n\
             [mail.aliases]\nsales = [\"alice\", \"team\"]\nteam = [\"bob\", \"x@elsewhere.example\"]\nbob = [\"bob\", \"bob@primary.example\"]\n\
             [[users]]\nlogin = \"admin\"\npassword = \"{hash}\"\nadmin = true\n[[users]]\nlogin = \"alice\"\npassword = \"{hash}\"\n[[users]]\nlogin = \"bob\"\npassword = \"{hash}\"\n"
        );
        officebox_config::parse("fuzz.toml", &text).expect("the fuzz config is valid")
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = smtp_proto::Request::parse(&mut data.iter()) {
        match request {
            smtp_proto::Request::Mail { from } => {
                let _ = split(&from.address);
            }
            smtp_proto::Request::Rcpt { to } => {
                let _ = resolve(config(), &to.address);
            }
            _ => {}
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = resolve(config(), text);
    }
});
