//! What mail from the Internet is checked against before it is stored (RFC 7208 SPF,
//! RFC 6376 DKIM, RFC 7489 DMARC, RFC 8617 ARC), with mail-auth: the outcome is written
//! in an Authentication-Results header (RFC 8601) above the message; a DMARC failure
//! under the sender domain's `p=reject` is refused at the end of DATA; other failures
//! may go to the recipient's Junk folder (`mail.junk_failed_checks`). ARC seals are
//! checked and recorded and left on the message (pass-through), but never override
//! DMARC: anyone can seal.
//!
//! The lookups go to the mail resolvers (`derive::mail_resolvers`), else to the box's own
//! DNS (which answers its zone and, stand-alone, nothing else), never to the system's.
//! A check that cannot finish (a resolver down) is a temporary error in the header and
//! refuses nothing.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mail_auth::common::headers::HeaderWriter as _;
use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DmarcResult, MessageAuthenticator, SpfResult,
};
use officebox_config::Config;
use officebox_config::derive::{mail_resolvers, own_resolvers};
use tracing::{info, warn};

/// One lookup's wait; a message's checks are a handful of lookups.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);
/// All of a message's checks, at most (the client waits for its reply meanwhile).
const ALL_CHECKS: Duration = Duration::from_secs(20);

/// What the checks say about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    /// The Authentication-Results header field, CRLF-terminated.
    pub header: String,
    /// The reply refusing it: DMARC failed and the domain says reject.
    pub refuse: Option<String>,
    /// It failed a check (DMARC, or SPF outright): Junk material.
    pub failed: bool,
}

/// The checker, with its resolver made again only when the servers change.
#[derive(Default)]
pub struct Checker {
    resolver: Mutex<Option<(Vec<SocketAddr>, Arc<MessageAuthenticator>)>>,
}

impl std::fmt::Debug for Checker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checker").finish_non_exhaustive()
    }
}

/// The DNS servers the checks ask.
fn servers(config: &Config) -> Vec<SocketAddr> {
    let servers = mail_resolvers(config);
    if !servers.is_empty() || !config.dns.enabled {
        return servers;
    }
    own_resolvers(config)
}

impl Checker {
    fn authenticator(&self, config: &Config) -> Option<Arc<MessageAuthenticator>> {
        let servers = servers(config);
        if servers.is_empty() {
            return None;
        }
        let mut cached = self.resolver.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((s, a)) = cached.as_ref()
            && *s == servers
        {
            return Some(Arc::clone(a));
        }
        let name_servers = servers
            .iter()
            .map(|s| {
                let mut udp = ConnectionConfig::udp();
                udp.port = s.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = s.port();
                NameServerConfig::new(s.ip(), true, vec![udp, tcp])
            })
            .collect();
        let mut opts = ResolverOpts::default();
        opts.timeout = LOOKUP_TIMEOUT;
        opts.attempts = 1;
        opts.cache_size = 1024;
        opts.use_hosts_file = ResolveHosts::Never;
        match MessageAuthenticator::new(ResolverConfig::from_name_servers(name_servers), opts) {
            Ok(a) => {
                let a = Arc::new(a);
                *cached = Some((servers, Arc::clone(&a)));
                Some(a)
            }
            Err(error) => {
                warn!(message = "smtp: cannot make the resolver for SPF, DKIM and DMARC", %error);
                None
            }
        }
    }

    /// Checks a message from `ip` (who said `helo`, with envelope sender `mail_from`,
    /// empty for the null sender). `host` is the box's name, the header's authserv-id.
    pub async fn judge(
        &self,
        config: &Config,
        host: &str,
        ip: IpAddr,
        helo: &str,
        mail_from: &str,
        message: &[u8],
    ) -> Judgement {
        let Some(auth) = self.authenticator(config) else {
            return Judgement {
                header: format!("Authentication-Results: {host}; none\r\n"),
                refuse: None,
                failed: false,
            };
        };
        match tokio::time::timeout(ALL_CHECKS, judge(&auth, host, ip, helo, mail_from, message))
            .await
        {
            Ok(j) => j,
            Err(_) => {
                warn!(message = "smtp: SPF, DKIM and DMARC checks took too long", %ip);
                Judgement {
                    header: format!(
                        "Authentication-Results: {host}; spf=temperror; dkim=temperror; dmarc=temperror\r\n"
                    ),
                    refuse: None,
                    failed: false,
                }
            }
        }
    }
}

async fn judge(
    auth: &MessageAuthenticator,
    host: &str,
    ip: IpAddr,
    helo: &str,
    mail_from: &str,
    message: &[u8],
) -> Judgement {
    let spf = if mail_from.is_empty() {
        auth.verify_spf(SpfParameters::verify_ehlo(ip, helo, host))
            .await
    } else {
        auth.verify_spf(SpfParameters::verify_mail_from(ip, helo, host, mail_from))
            .await
    };
    let results = AuthenticationResults::new(host);
    let results = if mail_from.is_empty() {
        results.with_spf_ehlo_result(&spf, ip, helo)
    } else {
        results.with_spf_mailfrom_result(&spf, ip, mail_from, helo)
    };
    let spf_failed = spf.result() == SpfResult::Fail;
    let Some(msg) = AuthenticatedMessage::parse(message) else {
        return Judgement {
            header: results.to_header(),
            refuse: None,
            failed: spf_failed,
        };
    };
    let dkim = auth.verify_dkim(&msg).await;
    let arc = auth.verify_arc(&msg).await;
    let mail_from_domain = mail_from.rsplit_once('@').map_or(helo, |(_, d)| d);
    let dmarc = auth
        .verify_dmarc(DmarcParameters::new(&msg, &dkim, mail_from_domain, &spf))
        .await;
    let header = results
        .with_dkim_results(&dkim, msg.from())
        .with_arc_result(&arc, ip)
        .with_dmarc_result(&dmarc)
        .to_header();
    let dmarc_failed = matches!(dmarc.result(), DmarcResult::Fail(_));
    let refuse = (dmarc_failed && dmarc.policy() == Policy::Reject).then(|| {
        info!(message = "smtp: refused by the sender domain's DMARC policy", %ip, domain = %dmarc.domain());
        format!(
            "550 5.7.1 The domain {} says to refuse mail from it that fails its checks (DMARC), and this message fails them",
            dmarc.domain()
        )
    });
    Judgement {
        header,
        refuse,
        failed: dmarc_failed || spf_failed,
    }
}

/// `message` without the Authentication-Results fields that claim to be ours (an
/// `authserv-id` of `host`): only this box may say what it checked (RFC 8601 section 5).
pub fn strip_forged_results(message: &[u8], host: &str) -> Vec<u8> {
    let header_end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(message.len(), |p| p + 2);
    let (head, body) = message.split_at(header_end);
    let mut out = Vec::with_capacity(message.len());
    let mut dropping = false;
    for line in head.split_inclusive(|&b| b == b'\n') {
        let continuation = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        if !continuation {
            dropping = is_ours(line, host);
        }
        if !dropping {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(body);
    out
}

/// Whether a header line starts an Authentication-Results field naming `host`.
fn is_ours(line: &[u8], host: &str) -> bool {
    let text = String::from_utf8_lossy(line);
    let Some((name, value)) = text.split_once(':') else {
        return false;
    };
    name.eq_ignore_ascii_case("Authentication-Results")
        && value
            .trim_start()
            .split([';', ' ', '\t', '\r', '\n'])
            .next()
            .is_some_and(|id| id.eq_ignore_ascii_case(host))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_results_claiming_to_be_ours_are_taken_out() {
        let m = b"Authentication-Results: box.office.test; spf=pass\r\n\tdkim=pass\r\n\
                  authentication-results:   BOX.office.test;\r\n dmarc=pass\r\n\
                  Authentication-Results: mx.example.org; spf=fail\r\n\
                  Subject: hi\r\n\r\nAuthentication-Results: box.office.test; body\r\n";
        let out = strip_forged_results(m, "box.office.test");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Authentication-Results: mx.example.org; spf=fail\r\nSubject: hi\r\n\r\n\
             Authentication-Results: box.office.test; body\r\n"
        );
    }
}
