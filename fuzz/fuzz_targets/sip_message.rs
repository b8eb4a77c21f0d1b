//! A SIP message from the network: parsed as the phone server parses datagrams and
//! stream frames, then every accessor the server uses, a response built from it, and
//! its serialisation parsed again (what we send must parse).

#![no_main]

use libfuzzer_sys::fuzz_target;
use officebox_voice::digest::parse_credentials;
use officebox_voice::sip::{self, Message};

fuzz_target!(|data: &[u8]| {
    let _ = sip::frame_len(data);
    let Ok(m) = Message::parse(data) else { return };
    let _ = (m.method(), m.cseq(), m.call_id(), m.top_via());
    for name in ["via", "contact", "to", "from", "authorization", "expires"] {
        for v in m.values(name) {
            let _ = (sip::uri_of(v), sip::display_name(v), sip::param(v, "expires"));
            if let Some(uri) = sip::uri_of(v) {
                let _ = (sip::uri_user(uri), sip::uri_host(uri));
            }
            let _ = parse_credentials(v);
        }
    }
    let again = Message::parse(&m.to_bytes()).expect("a parsed message serialises to one that parses");
    assert_eq!(again.headers.len(), m.headers.len() - usize::from(m.header("content-length").is_some()) + 1);
    if m.method().is_some() {
        let r = m.response(200, "OK", "tag");
        let _ = Message::parse(&r.to_bytes()).expect("our responses parse");
    }
});
