//! `[mail]`: ports, relay, the queue, aliases, the catch-all ISP mailbox.

use super::*;

impl Loader<'_, '_> {
    pub(super) fn mail(
        &mut self,
        sec: Option<Section>,
        network: Option<&NetworkRead>,
        users: &[Spanned<User>],
    ) -> Mail {
        let mut mail = Mail {
            enabled: schema::MAIL_ENABLED.bool(),
            smtp_port: schema::SMTP_PORT.port(),
            submission_port: schema::SUBMISSION_PORT.port(),
            smtps_port: schema::SMTPS_PORT.port(),
            pop3_port: schema::POP3_PORT.port(),
            pop3s_port: schema::POP3S_PORT.port(),
            imap_port: schema::IMAP_PORT.port(),
            imaps_port: schema::IMAPS_PORT.port(),
            relay_from_wan: schema::RELAY_FROM_WAN.bool(),
            quota: schema::MAIL_QUOTA.bytes(),
            dmarc_policy: DmarcPolicy::None,
            junk_failed_checks: schema::JUNK_FAILED_CHECKS.bool(),
            greylisting: schema::GREYLISTING.bool(),
            greylist_delay: schema::GREYLIST_DELAY.duration(),
            max_message_size: schema::MAX_MESSAGE_SIZE.bytes(),
            aliases: Vec::new(),
            catch_all: None,
            queue: Queue {
                first_retry: schema::FIRST_RETRY.duration(),
                max_retry_interval: schema::MAX_RETRY_INTERVAL.duration(),
                delay_notice_after: schema::DELAY_NOTICE_AFTER.duration(),
                give_up_after: schema::GIVE_UP_AFTER.duration(),
            },
            resolvers: Vec::new(),
        };
        let mut sec_opt = sec;
        if let Some(s) = sec_opt.as_mut() {
            mail.enabled = s.flag(self.sink, &schema::MAIL_ENABLED);
        }
        for (setting, service, field) in [
            (&schema::SMTP_PORT, Service::Smtp, &mut mail.smtp_port),
            (
                &schema::SUBMISSION_PORT,
                Service::Submission,
                &mut mail.submission_port,
            ),
            (&schema::SMTPS_PORT, Service::Smtps, &mut mail.smtps_port),
            (&schema::POP3_PORT, Service::Pop3, &mut mail.pop3_port),
            (&schema::POP3S_PORT, Service::Pop3s, &mut mail.pop3s_port),
            (&schema::IMAP_PORT, Service::Imap, &mut mail.imap_port),
            (&schema::IMAPS_PORT, Service::Imaps, &mut mail.imaps_port),
        ] {
            *field = self.port_setting(sec_opt.as_mut(), setting, service);
        }
        let Some(mut sec) = sec_opt else { return mail };
        mail.relay_from_wan = sec.flag(self.sink, &schema::RELAY_FROM_WAN);
        if let Some(p) = sec.parsed(
            self.sink,
            "dmarc_policy",
            "one of \"none\", \"quarantine\", \"reject\"",
            |s| DmarcPolicy::from_name(s).ok_or_else(|| format!("unknown DMARC policy `{s}`")),
        ) {
            mail.dmarc_policy = p.value;
        }
        mail.junk_failed_checks = sec.flag(self.sink, &schema::JUNK_FAILED_CHECKS);
        mail.greylisting = sec.flag(self.sink, &schema::GREYLISTING);
        mail.greylist_delay = self.duration(&mut sec, &schema::GREYLIST_DELAY);
        if let Some(size) = sec.parsed(
            self.sink,
            "max_message_size",
            "a size like \"25M\"",
            parse_size,
        ) {
            mail.max_message_size = size.value;
        }
        if let Some(q) = sec.parsed(
            self.sink,
            "quota",
            "a size like \"2G\", or 0 for no limit",
            parse_size,
        ) {
            mail.quota = q.value;
        }
        mail.resolvers = sec
            .parsed_list(self.sink, "resolvers", IP_HELP, parse_dns_server)
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.value)
            .collect();
        if let Some(mut q) = sec.table(self.sink, "queue") {
            mail.queue.first_retry = self.duration(&mut q, &schema::FIRST_RETRY);
            mail.queue.max_retry_interval = self.duration(&mut q, &schema::MAX_RETRY_INTERVAL);
            mail.queue.delay_notice_after = self.duration(&mut q, &schema::DELAY_NOTICE_AFTER);
            mail.queue.give_up_after = self.duration(&mut q, &schema::GIVE_UP_AFTER);
            q.finish(self.sink);
        }
        if let Some(c) = sec.table(self.sink, "catch_all") {
            mail.catch_all = self.pop3_account(c);
        }
        let aliases = sec.table(self.sink, "aliases");
        sec.finish(self.sink);
        if let (Some(aliases), Some(network)) = (aliases, network) {
            mail.aliases = self.aliases(aliases, &network.value.domain, users);
        }
        mail
    }

    pub(super) fn aliases(
        &mut self,
        mut sec: Section,
        domain: &str,
        users: &[Spanned<User>],
    ) -> Vec<Alias> {
        let is_user = |n: &str| users.iter().any(|u| u.value.login == n);
        let entries = sec.entries();
        let names: Vec<String> = entries
            .iter()
            .map(|(n, _, _)| n.to_ascii_lowercase())
            .collect();
        let mut out = Vec::new();
        let mut spans: BTreeMap<String, Range<usize>> = BTreeMap::new();
        for (name, kspan, item) in entries {
            let path = format!("mail.aliases.{name}");
            let Ok(lname) = parse_login(&name) else {
                self.sink.error(
                    &kspan,
                    path,
                    format!("`{name}` is not a valid mailbox name"),
                    "use lowercase letters, digits, '.', '-' or '_'",
                );
                continue;
            };
            let Some(array) = item.as_array() else {
                self.sink.error(
                    &item.span().unwrap_or(kspan),
                    path,
                    "expected a list of members",
                    "write e.g. sales = [\"alice\", \"bob\"]",
                );
                continue;
            };
            let mut members = Vec::new();
            for (i, v) in array.iter().enumerate() {
                let vspan = v.span().unwrap_or_else(|| kspan.clone());
                let mpath = format!("{path}[{i}]");
                let Some(text) = v.as_str() else {
                    self.sink.error(
                        &vspan,
                        mpath,
                        "expected a string",
                        "write each member in double quotes",
                    );
                    continue;
                };
                let text = text.trim().to_ascii_lowercase();
                let member = match text.split_once('@') {
                    Some((local, dom)) if dom == domain => Ok(local.to_string()),
                    Some((local, dom)) => match (
                        parse_login(local).is_ok() || !local.is_empty(),
                        parse_domain(dom),
                    ) {
                        (true, Ok(_)) => {
                            members.push(AliasMember::External(text.clone()));
                            continue;
                        }
                        _ => Err(format!("`{text}` is not an email address")),
                    },
                    None => Ok(text.clone()),
                };
                match member {
                    Ok(local) if local == lname && !is_user(&local) => {
                        self.sink.error(&vspan, mpath, format!("alias `{lname}` names itself but there is no user `{lname}`"), "an alias may name itself only to keep a copy in that user's own mailbox");
                    }
                    Ok(local) if local == lname || is_user(&local) || names.contains(&local) => {
                        members.push(AliasMember::Local(local));
                    }
                    Ok(local) => {
                        let mut candidates: Vec<&str> =
                            users.iter().map(|u| u.value.login.as_str()).collect();
                        candidates.extend(names.iter().map(String::as_str));
                        let help = match crate::diag::closest(&local, &candidates) {
                            Some(c) => format!("did you mean `{c}`? members are user logins, other aliases, or full addresses"),
                            None => "members are user logins, other aliases, or full addresses like \"bob@elsewhere.example\"".into(),
                        };
                        self.sink.error(
                            &vspan,
                            mpath,
                            format!("`{local}` is neither a user nor an alias"),
                            help,
                        );
                    }
                    Err(message) => self.sink.error(
                        &vspan,
                        mpath,
                        message,
                        "write a full address like \"bob@elsewhere.example\"",
                    ),
                }
            }
            spans.insert(lname.clone(), kspan);
            out.push(Alias {
                name: lname,
                members,
            });
        }
        // Loops: follow alias -> alias edges (a self-reference is the user's own mailbox).
        let graph: HashMap<&str, Vec<&str>> = out
            .iter()
            .map(|a| {
                let next = a
                    .members
                    .iter()
                    .filter_map(|m| match m {
                        AliasMember::Local(l) if *l != a.name && names.contains(l) => {
                            Some(l.as_str())
                        }
                        _ => None,
                    })
                    .collect();
                (a.name.as_str(), next)
            })
            .collect();
        let mut reported: Vec<String> = Vec::new();
        for a in &out {
            if let Some(cycle) = find_cycle(&graph, &a.name) {
                let mut key: Vec<String> = cycle[..cycle.len() - 1].to_vec();
                key.sort();
                let key = key.join(",");
                if reported.contains(&key) {
                    continue;
                }
                reported.push(key);
                let span = spans.get(&a.name).cloned().unwrap_or_default();
                self.sink.error(&span, format!("mail.aliases.{}", a.name), format!("alias loop: {}", cycle.join(" -> ")), "an alias cannot contain itself through other aliases; remove one link of the loop");
            }
        }
        out
    }
}

pub(super) fn find_cycle(graph: &HashMap<&str, Vec<&str>>, start: &str) -> Option<Vec<String>> {
    fn walk<'g>(
        graph: &HashMap<&str, Vec<&'g str>>,
        node: &'g str,
        start: &str,
        path: &mut Vec<&'g str>,
    ) -> bool {
        for &next in graph.get(node).map(Vec::as_slice).unwrap_or_default() {
            if next == start {
                path.push(next);
                return true;
            }
            if path.contains(&next) {
                continue;
            }
            path.push(next);
            if walk(graph, next, start, path) {
                return true;
            }
            path.pop();
        }
        false
    }
    let (&node, _) = graph.get_key_value(start)?;
    let mut path = vec![node];
    walk(graph, node, start, &mut path).then(|| path.into_iter().map(String::from).collect())
}
