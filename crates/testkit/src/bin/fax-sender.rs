//! testkit's fax machine (SpanDSP's own T.30 engine and modems) as a command, for
//! bench/fax.sh:
//!
//!   fax-sender pages N FILE      writes N test pages (A4, fine) into a TIFF file
//!   fax-sender send PORT FILE    a fax machine on 127.0.0.1:PORT sending FILE once the
//!                                box's audio arrives (sipp does the call's SIP); prints
//!                                `status=S pages=P finished=true|false` and exits 0 when
//!                                every page went (T.30 status 0)

use std::process::ExitCode;
use std::time::Duration;

use officebox_testkit::{FaxLine, FaxSender, fax_test_page};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || {
        eprintln!("usage: fax-sender pages N FILE | fax-sender send PORT FILE");
        ExitCode::from(2)
    };
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["pages", n, file] => {
            let Ok(n) = n.parse::<u32>() else {
                return usage();
            };
            let pages: Vec<_> = (1..=n).map(|i| fax_test_page(i, 2200)).collect();
            match officebox_fax::tiff::write_bilevel(std::path::Path::new(file), &pages) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("fax-sender: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        ["send", port, file] => {
            let Ok(port) = port.parse::<u16>() else {
                return usage();
            };
            let bind = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            let sent = FaxSender::start(
                bind,
                std::path::Path::new(file),
                "+1 555 0100",
                FaxLine::Audio { alaw: false },
                None,
            )
            .and_then(|m| m.wait(Duration::from_secs(3600)));
            match sent {
                Ok(s) => {
                    println!(
                        "status={} pages={} finished={}",
                        s.status, s.pages, s.finished
                    );
                    if s.finished && s.status == 0 {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(e) => {
                    eprintln!("fax-sender: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => usage(),
    }
}
