//! Mail settings a program finds by itself: Thunderbird's autoconfig file
//! (`autoconfig.<domain>/mail/config-v1.1.xml` and the `.well-known` path on the www
//! site), Outlook's Autodiscover answer (the "POX" one, `autodiscover.<domain>`), and an
//! Apple configuration profile per user (from the Users page). All three say the same
//! thing, which [`mail_endpoints`] decides once: the zone's SRV records say it too.
//!
//! None of them names a password or says whether a user exists: the user name is the
//! address the program was given (`%EMAILADDRESS%`, the EMailAddress asked about), which
//! the mail services accept as a login.

use officebox_config::Config;
use officebox_config::User;
use officebox_config::derive::{MailEndpoint, MailProtocol, MailTls, mail_endpoints};

use crate::provision::xml_escaped as x;

/// Where the autoconfig file is asked for: on `autoconfig.<domain>`, and on the domain's
/// own site under `.well-known`.
pub const AUTOCONFIG_PATHS: [&str; 2] = [
    "/mail/config-v1.1.xml",
    "/.well-known/autoconfig/mail/config-v1.1.xml",
];

/// Whether `path` is Autodiscover's (Outlook writes it in either case).
pub fn is_autodiscover_path(path: &str) -> bool {
    path.eq_ignore_ascii_case("/autodiscover/autodiscover.xml")
}

/// Thunderbird's autoconfig file (format 1.1): every way in, preferred first.
pub fn autoconfig(config: &Config) -> String {
    let domain = x(&config.network.domain);
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <clientConfig version=\"1.1\">\n\
         \x20 <emailProvider id=\"{domain}\">\n\
         \x20   <domain>{domain}</domain>\n\
         \x20   <displayName>{domain} mail</displayName>\n\
         \x20   <displayShortName>{domain}</displayShortName>\n"
    );
    let endpoints = mail_endpoints(config);
    // Incoming servers come before outgoing ones in the file's order.
    let (outgoing, incoming): (Vec<&MailEndpoint>, Vec<&MailEndpoint>) = endpoints
        .iter()
        .partition(|e| e.protocol == MailProtocol::Submission);
    for e in incoming.into_iter().chain(outgoing) {
        let (element, kind) = match e.protocol {
            MailProtocol::Imap => ("incomingServer", "imap"),
            MailProtocol::Pop3 => ("incomingServer", "pop3"),
            MailProtocol::Submission => ("outgoingServer", "smtp"),
        };
        let socket = match e.tls {
            MailTls::Implicit => "SSL",
            MailTls::StartTls => "STARTTLS",
        };
        out += &format!(
            "    <{element} type=\"{kind}\">\n\
             \x20     <hostname>{}</hostname>\n\
             \x20     <port>{}</port>\n\
             \x20     <socketType>{socket}</socketType>\n\
             \x20     <username>%EMAILADDRESS%</username>\n\
             \x20     <authentication>password-cleartext</authentication>\n\
             \x20   </{element}>\n",
            x(&e.host),
            e.port
        );
    }
    out += "  </emailProvider>\n</clientConfig>\n";
    out
}

/// The address an Autodiscover request asks about, when it is a plain address in the
/// company's domain (the only ones this box answers for).
pub fn autodiscover_address(config: &Config, request: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(request).ok()?;
    let (_, rest) = text.split_once("<EMailAddress>")?;
    let (address, _) = rest.split_once("</EMailAddress>")?;
    let address = address.trim();
    let (local, domain) = address.rsplit_once('@')?;
    let plain = !local.is_empty()
        && local.len() <= 64
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b));
    (plain && domain.eq_ignore_ascii_case(&config.network.domain))
        .then(|| format!("{}@{}", local.to_ascii_lowercase(), config.network.domain))
}

/// Outlook's Autodiscover answer ("POX", the 2006a response schema): the preferred way
/// in for each of IMAP, POP3 and SMTP, with `address` as the login when one was asked
/// about. An address of another domain gets Autodiscover's error 600.
pub fn autodiscover(config: &Config, address: Option<&str>, asked: bool) -> String {
    const HEAD: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
        <Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006\">\n";
    if asked && address.is_none() {
        return format!(
            "{HEAD}  <Response>\n    <Error Id=\"1\" Time=\"00:00:00\">\n      \
             <ErrorCode>600</ErrorCode>\n      <Message>Invalid Request</Message>\n      \
             <DebugData>this box answers for addresses @{}</DebugData>\n    </Error>\n  \
             </Response>\n</Autodiscover>\n",
            x(&config.network.domain)
        );
    }
    let mut out = format!(
        "{HEAD}  <Response xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a\">\n\
         \x20   <Account>\n\
         \x20     <AccountType>email</AccountType>\n\
         \x20     <Action>settings</Action>\n"
    );
    let endpoints = mail_endpoints(config);
    for protocol in [
        MailProtocol::Imap,
        MailProtocol::Pop3,
        MailProtocol::Submission,
    ] {
        let Some(e) = endpoints.iter().find(|e| e.protocol == protocol) else {
            continue;
        };
        let kind = match protocol {
            MailProtocol::Imap => "IMAP",
            MailProtocol::Pop3 => "POP3",
            MailProtocol::Submission => "SMTP",
        };
        let encryption = match e.tls {
            MailTls::Implicit => "SSL",
            MailTls::StartTls => "TLS",
        };
        out += &format!(
            "      <Protocol>\n\
             \x20       <Type>{kind}</Type>\n\
             \x20       <Server>{}</Server>\n\
             \x20       <Port>{}</Port>\n",
            x(&e.host),
            e.port
        );
        if let Some(a) = address {
            out += &format!("        <LoginName>{}</LoginName>\n", x(a));
        }
        out += &format!(
            "        <DomainRequired>off</DomainRequired>\n\
             \x20       <SPA>off</SPA>\n\
             \x20       <Encryption>{encryption}</Encryption>\n\
             \x20       <AuthRequired>on</AuthRequired>\n\
             \x20     </Protocol>\n"
        );
    }
    out += "    </Account>\n  </Response>\n</Autodiscover>\n";
    out
}

/// An Apple configuration profile (`.mobileconfig`) with one IMAP account for `user`:
/// installed on an iPhone, iPad or Mac, it asks for the password and sets up Mail.
/// Installing it again replaces the account (the identifiers stay; the UUIDs are new).
pub fn mobileconfig(config: &Config, user: &User) -> Option<String> {
    let endpoints = mail_endpoints(config);
    let imap = endpoints
        .iter()
        .find(|e| e.protocol == MailProtocol::Imap)?;
    let smtp = endpoints
        .iter()
        .find(|e| e.protocol == MailProtocol::Submission)?;
    let domain = &config.network.domain;
    let address = x(&format!("{}@{domain}", user.login));
    let name = x(if user.name.is_empty() {
        &user.login
    } else {
        &user.name
    });
    let reversed: Vec<&str> = domain.rsplit('.').collect();
    let id = x(&format!(
        "{}.officebox.mail.{}",
        reversed.join("."),
        user.login
    ));
    let ssl = |e: &MailEndpoint| {
        if e.tls == MailTls::Implicit {
            "<true/>"
        } else {
            "<false/>"
        }
    };
    let account = format!(
        "      <dict>\n\
         \x20       <key>EmailAccountDescription</key><string>{address}</string>\n\
         \x20       <key>EmailAccountName</key><string>{name}</string>\n\
         \x20       <key>EmailAccountType</key><string>EmailTypeIMAP</string>\n\
         \x20       <key>EmailAddress</key><string>{address}</string>\n\
         \x20       <key>IncomingMailServerAuthentication</key><string>EmailAuthPassword</string>\n\
         \x20       <key>IncomingMailServerHostName</key><string>{}</string>\n\
         \x20       <key>IncomingMailServerPortNumber</key><integer>{}</integer>\n\
         \x20       <key>IncomingMailServerUseSSL</key>{}\n\
         \x20       <key>IncomingMailServerUsername</key><string>{address}</string>\n\
         \x20       <key>OutgoingMailServerAuthentication</key><string>EmailAuthPassword</string>\n\
         \x20       <key>OutgoingMailServerHostName</key><string>{}</string>\n\
         \x20       <key>OutgoingMailServerPortNumber</key><integer>{}</integer>\n\
         \x20       <key>OutgoingMailServerUseSSL</key>{}\n\
         \x20       <key>OutgoingMailServerUsername</key><string>{address}</string>\n\
         \x20       <key>OutgoingPasswordSameAsIncomingPassword</key><true/>\n\
         \x20       <key>PayloadDisplayName</key><string>Mail ({address})</string>\n\
         \x20       <key>PayloadIdentifier</key><string>{id}.account</string>\n\
         \x20       <key>PayloadType</key><string>com.apple.mail.managed</string>\n\
         \x20       <key>PayloadUUID</key><string>{}</string>\n\
         \x20       <key>PayloadVersion</key><integer>1</integer>\n\
         \x20     </dict>\n",
        x(&imap.host),
        imap.port,
        ssl(imap),
        x(&smtp.host),
        smtp.port,
        ssl(smtp),
        uuid(),
    );
    Some(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
         <plist version=\"1.0\">\n\
         \x20 <dict>\n\
         \x20   <key>PayloadContent</key>\n\
         \x20   <array>\n\
         {account}\
         \x20   </array>\n\
         \x20   <key>PayloadDescription</key><string>The mail account {address} on the office's server.</string>\n\
         \x20   <key>PayloadDisplayName</key><string>{} mail for {name}</string>\n\
         \x20   <key>PayloadIdentifier</key><string>{id}</string>\n\
         \x20   <key>PayloadOrganization</key><string>{}</string>\n\
         \x20   <key>PayloadRemovalDisallowed</key><false/>\n\
         \x20   <key>PayloadType</key><string>Configuration</string>\n\
         \x20   <key>PayloadUUID</key><string>{}</string>\n\
         \x20   <key>PayloadVersion</key><integer>1</integer>\n\
         \x20 </dict>\n\
         </plist>\n",
        x(domain),
        x(domain),
        uuid(),
    ))
}

/// A random (version 4) UUID in its usual spelling.
fn uuid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex = |r: std::ops::Range<usize>| -> String {
        b.get(r)
            .unwrap_or_default()
            .iter()
            .map(|v| format!("{v:02X}"))
            .collect()
    };
    format!(
        "{}-{}-{}-{}-{}",
        hex(0..4),
        hex(4..6),
        hex(6..8),
        hex(8..10),
        hex(10..16)
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn demo() -> Config {
        let text = include_str!("../../../examples/demo.toml");
        officebox_config::parse("demo.toml", text).unwrap()
    }

    #[test]
    fn autodiscover_answers_only_plain_addresses_of_the_domain() {
        let c = demo();
        let ask = |a: &str| {
            let body = format!(
                "<Autodiscover><Request><EMailAddress> {a} </EMailAddress></Request></Autodiscover>"
            );
            autodiscover_address(&c, body.as_bytes())
        };
        assert_eq!(
            ask("Alice@Office.TEST").as_deref(),
            Some("alice@office.test")
        );
        assert_eq!(ask("alice@example.com"), None);
        assert_eq!(ask("a<b>@office.test"), None);
        assert_eq!(ask("@office.test"), None);
        assert_eq!(autodiscover_address(&c, b"\xff\xfe"), None);
        let error = autodiscover(&c, None, true);
        assert!(error.contains("<ErrorCode>600</ErrorCode>"), "{error}");
        let ok = autodiscover(&c, Some("alice@office.test"), true);
        assert!(ok.contains("<Type>IMAP</Type>"), "{ok}");
        assert!(ok.contains("<Port>10993</Port>"), "{ok}");
        assert!(ok.contains("<LoginName>alice@office.test</LoginName>"));
    }

    #[test]
    fn uuids_are_version_4() {
        let u = uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!("89AB".contains(&u[19..20]), "{u}");
        assert_ne!(u, uuid());
    }
}
