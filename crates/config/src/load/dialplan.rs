//! `[phone]`'s dial plan: `[[phone.routes]]`, `[[phone.inbound]]`, `[[phone.ring_groups]]`,
//! `[[phone.schedules]]`, `[[phone.attendants]]`, `[[phone.fax]]`, the emergency numbers and
//! the operator.
//! Every destination is checked against what exists once all of them are read, so a DID
//! that rings a group nobody defined is refused where it says so.

use super::*;
use crate::dialplan::*;

/// A destination as written, kept with where it was for the cross-check.
struct Named {
    destination: Destination,
    span: Range<usize>,
    path: String,
    /// Not written: the setting's default.
    by_default: bool,
}

const DIALABLE_HELP: &str = "write digits, optionally after +, e.g. \"911\" or \"+15551230000\"";

fn parse_dialable(s: &str) -> Result<String, String> {
    if is_dialable(s.trim()) {
        Ok(s.trim().to_string())
    } else {
        Err(format!("`{s}` is not a phone number"))
    }
}

fn parse_destination(s: &str) -> Result<Destination, String> {
    Destination::parse(s)
}

pub(super) fn parse_date(s: &str) -> Result<(i32, u8, u8), String> {
    let bad = || format!("`{s}` is not a date like 2026-12-25");
    let mut parts = s.trim().splitn(3, '-');
    let (Some(y), Some(m), Some(d)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let (y, m, d): (i32, u8, u8) = (
        y.parse().map_err(|_| bad())?,
        m.parse().map_err(|_| bad())?,
        d.parse().map_err(|_| bad())?,
    );
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    Ok((y, m, d))
}

/// The dial plan of a config that says nothing of one: no routes, and the schema's
/// emergency numbers and guarded prefixes.
pub(super) fn default_dial_plan() -> DialPlan {
    let list = |s: &Setting| s.list().iter().map(|n| (*n).to_string()).collect();
    DialPlan {
        emergency_numbers: list(&schema::EMERGENCY_NUMBERS),
        international_prefixes: list(&schema::INTERNATIONAL_PREFIXES),
        premium_prefixes: list(&schema::PREMIUM_PREFIXES),
        ..DialPlan::default()
    }
}

impl Loader<'_, '_> {
    /// Reads the dial plan out of the `[phone]` table.
    pub(super) fn dial_plan(
        &mut self,
        sec: &mut Section,
        users: &[Spanned<User>],
        trunks: &[Trunk],
    ) -> DialPlan {
        let trunk_names: Vec<&str> = trunks.iter().map(|t| t.name.as_str()).collect();
        let mut named: Vec<Named> = Vec::new();
        let mut plan = DialPlan {
            emergency_numbers: self.numbers(sec, &schema::EMERGENCY_NUMBERS),
            international_prefixes: self.numbers(sec, &schema::INTERNATIONAL_PREFIXES),
            premium_prefixes: self.numbers(sec, &schema::PREMIUM_PREFIXES),
            ..DialPlan::default()
        };
        if let Some(op) = self.destination(sec, &schema::OPERATOR, &mut named) {
            if op == Destination::Operator {
                self.sink.error(
                    &sec.key_span("operator"),
                    sec.path_of("operator"),
                    "the operator cannot be the operator",
                    "name where outside calls with no number of their own ring, e.g. \"extension:100\"",
                );
            }
            plan.operator = Some(op);
        }
        for t in sec.tables(self.sink, "routes") {
            if let Some(r) = self.route(t, users, &trunk_names, &plan.routes) {
                plan.routes.push(r);
            }
        }
        for mut t in sec.tables(self.sink, "inbound") {
            let number = t.parsed(
                self.sink,
                schema::INBOUND_NUMBER.key(),
                DIALABLE_HELP,
                parse_dialable,
            );
            let destination = self.destination(&mut t, &schema::INBOUND_DESTINATION, &mut named);
            for key in ["number", "destination"] {
                if !t.has(key) {
                    t.missing(
                        self.sink,
                        key,
                        "each [[phone.inbound]] needs a number and a destination",
                    );
                }
            }
            if let (Some(number), Some(destination)) = (number, destination) {
                if let Some(i) = plan.inbound.iter().position(|d| d.number == number.value) {
                    self.sink.error(
                        &number.span,
                        t.path_of("number"),
                        format!("{} is already routed by phone.inbound[{i}]", number.value),
                        "route each number once",
                    );
                } else {
                    plan.inbound.push(Inbound {
                        number: number.value,
                        destination,
                    });
                }
            }
            t.finish(self.sink);
        }
        for t in sec.tables(self.sink, "ring_groups") {
            if let Some(g) = self.ring_group(t, users, &mut named) {
                plan.ring_groups.push(g);
            }
        }
        for t in sec.tables(self.sink, "schedules") {
            if let Some(s) = self.schedule(t, &mut named) {
                plan.schedules.push(s);
            }
        }
        for t in sec.tables(self.sink, "attendants") {
            if let Some(a) = self.attendant(t, &mut named) {
                plan.attendants.push(a);
            }
        }
        // Users' own fax machines (`fax = true`), named by their logins.
        plan.faxes
            .extend(users.iter().filter(|u| u.value.fax).map(|u| {
                let login = &u.value.login;
                FaxLine {
                    name: login.clone(),
                    extension: None,
                    to: login.clone(),
                    // The number they send from, as a fax identity is at most 20 characters.
                    ident: u
                        .value
                        .caller_id
                        .clone()
                        .filter(|c| c.len() <= 20)
                        .unwrap_or_else(|| login.clone()),
                    tiff: false,
                }
            }));
        for t in sec.tables(self.sink, "fax") {
            if let Some(f) = self.fax_line(t, users, &plan.faxes) {
                plan.faxes.push(f);
            }
        }
        self.check_names(&plan, users, &named);
        plan
    }

    /// A list of numbers (or prefixes), or the setting's default.
    fn numbers(&mut self, sec: &mut Section, setting: &Setting) -> Vec<String> {
        match sec.parsed_list(self.sink, setting.key(), DIALABLE_HELP, parse_dialable) {
            Some(list) => list.into_iter().map(|n| n.value).collect(),
            None => setting.list().iter().map(|s| (*s).to_string()).collect(),
        }
    }

    /// A destination setting (or its default), remembered for the cross-check.
    fn destination(
        &mut self,
        sec: &mut Section,
        setting: &Setting,
        named: &mut Vec<Named>,
    ) -> Option<Destination> {
        let help = format!("write one of {}", Destination::FORMS);
        match sec.parsed(self.sink, setting.key(), &help, parse_destination) {
            Some(d) => {
                named.push(Named {
                    destination: d.value.clone(),
                    span: d.span,
                    path: sec.path_of(setting.key()),
                    by_default: false,
                });
                Some(d.value)
            }
            None if sec.has(setting.key()) => None,
            None => Destination::parse(setting.text()).ok().inspect(|d| {
                named.push(Named {
                    destination: d.clone(),
                    span: sec.span.clone(),
                    path: sec.path_of(setting.key()),
                    by_default: true,
                });
            }),
        }
    }

    /// A name that identifies a group, schedule or attendant: one word.
    fn entry_name(&mut self, t: &mut Section, what: &str) -> Option<Spanned<String>> {
        let name = t.parsed(
            self.sink,
            "name",
            "one word of letters, digits and hyphens, e.g. \"sales\"",
            parse_label,
        );
        if name.is_none() && !t.has("name") {
            t.missing(
                self.sink,
                "name",
                &format!("give the {what} a name, e.g. name = \"sales\""),
            );
        }
        name
    }

    fn route(
        &mut self,
        mut t: Section,
        users: &[Spanned<User>],
        trunk_names: &[&str],
        earlier: &[Route],
    ) -> Option<Route> {
        let name = t.string(self.sink, "name");
        let pattern = t.parsed(
            self.sink,
            "pattern",
            "digits, X (0-9), N (2-9), Z (1-9), [1-5], and . at the end for any more, e.g. \"9.\"",
            Pattern::parse,
        );
        let trunks = t.string_list(self.sink, "trunks");
        let strip = t
            .int(
                self.sink,
                schema::ROUTE_STRIP.key(),
                schema::ROUTE_STRIP.range(),
            )
            .map_or(0, |s| usize::try_from(s.value).unwrap_or(0));
        let prepend = t
            .parsed(self.sink, "prepend", DIALABLE_HELP, |s| {
                if s.is_empty() {
                    Ok(String::new())
                } else {
                    parse_dialable(s)
                }
            })
            .map_or_else(|| schema::ROUTE_PREPEND.text().to_string(), |p| p.value);
        let allowed = t.string_list(self.sink, "users").map(|list| {
            for u in &list {
                if !users.iter().any(|x| x.value.login == u.value) {
                    self.sink.error(
                        &u.span,
                        t.path_of("users"),
                        format!("no user has the login `{}`", u.value),
                        "name users by their login, or leave users out to let everybody use the route",
                    );
                }
            }
            list.into_iter().map(|u| u.value).collect::<Vec<_>>()
        });
        let caller_id = t
            .parsed(self.sink, "caller_id", DIALABLE_HELP, parse_dialable)
            .map(|c| c.value);
        let allow_international = t.flag(self.sink, &schema::ROUTE_ALLOW_INTERNATIONAL);
        let allow_premium = t.flag(self.sink, &schema::ROUTE_ALLOW_PREMIUM);
        for key in ["name", "pattern", "trunks"] {
            if !t.has(key) {
                t.missing(
                    self.sink,
                    key,
                    "a route needs a name, a pattern and the trunks it uses",
                );
            }
        }
        let (name, pattern, trunks) = (name?, pattern?, trunks?);
        for (i, trunk) in trunks.iter().enumerate() {
            if !trunk_names.contains(&trunk.value.as_str()) {
                self.sink.error(
                    &trunk.span,
                    format!("{}[{i}]", t.path_of("trunks")),
                    format!("no [[phone.trunks]] is called `{}`", trunk.value),
                    if trunk_names.is_empty() {
                        "add the provider's line as a [[phone.trunks]] first".to_string()
                    } else {
                        format!("use one of: {}", trunk_names.join(", "))
                    },
                );
            }
        }
        if trunks.is_empty() {
            self.sink.error(
                &t.key_span("trunks"),
                t.path_of("trunks"),
                format!("route `{}` names no trunk", name.value),
                "list the trunks to try, in order, e.g. trunks = [\"provider\"]",
            );
        }
        if let Some((i, wider)) = earlier
            .iter()
            .enumerate()
            .find(|(_, r)| r.pattern.covers(&pattern.value))
        {
            self.sink.error(
                &pattern.span,
                t.path_of("pattern"),
                format!(
                    "route `{}` can never be used: `{}` of route `{}` (phone.routes[{i}]) comes first and takes every number it would",
                    name.value, wider.pattern.text, wider.name
                ),
                "put the narrower route first, or change its pattern",
            );
        }
        if strip >= pattern.value.min_len() {
            self.sink.error(
                &t.key_span("strip"),
                t.path_of("strip"),
                format!(
                    "stripping {strip} would leave nothing of a number matching `{}`",
                    pattern.value.text
                ),
                "strip fewer digits than the pattern's shortest number",
            );
        }
        t.finish(self.sink);
        Some(Route {
            name: name.value,
            pattern: pattern.value,
            trunks: trunks.into_iter().map(|t| t.value).collect(),
            strip,
            prepend,
            users: allowed,
            caller_id,
            allow_international,
            allow_premium,
        })
    }

    fn ring_group(
        &mut self,
        mut t: Section,
        users: &[Spanned<User>],
        named: &mut Vec<Named>,
    ) -> Option<RingGroup> {
        let name = self.entry_name(&mut t, "ring group");
        let strategy = match t.string(self.sink, "strategy") {
            None => Strategy::All,
            Some(s) => match s.value.as_str() {
                "all" => Strategy::All,
                "hunt" => Strategy::Hunt,
                other => {
                    self.sink.error(
                        &s.span,
                        t.path_of("strategy"),
                        format!("`{other}` is not a way to ring a group"),
                        "use \"all\" (at once) or \"hunt\" (one after the other)",
                    );
                    Strategy::All
                }
            },
        };
        let mut members = Vec::new();
        let list = t.string_list(self.sink, "members").unwrap_or_default();
        for (i, m) in list.iter().enumerate() {
            let path = format!("{}[{i}]", t.path_of("members"));
            if let Some(number) = m.value.strip_prefix("number:") {
                match parse_dialable(number) {
                    Ok(n) => members.push(Member::Number(n)),
                    Err(e) => self.sink.error(&m.span, path, e, DIALABLE_HELP),
                }
            } else if users
                .iter()
                .any(|u| u.value.extension.as_deref() == Some(m.value.as_str()))
            {
                members.push(Member::Extension(m.value.clone()));
            } else {
                self.sink.error(
                    &m.span,
                    path,
                    format!("no user has the extension {}", m.value),
                    "list extensions of users, or outside numbers as \"number:+15551230000\"",
                );
            }
        }
        if list.is_empty() {
            let span = if t.has("members") {
                t.key_span("members")
            } else {
                t.span.clone()
            };
            self.sink.error(
                &span,
                t.path_of("members"),
                "a ring group with no members rings nobody",
                "list its members, e.g. members = [\"101\", \"102\"]",
            );
        }
        let ring_time = self.duration(&mut t, &schema::GROUP_RING_TIME);
        let no_answer = self.destination(&mut t, &schema::GROUP_NO_ANSWER, named);
        t.finish(self.sink);
        Some(RingGroup {
            name: name?.value,
            strategy,
            members,
            ring_time,
            no_answer: no_answer?,
        })
    }

    fn schedule(&mut self, mut t: Section, named: &mut Vec<Named>) -> Option<Schedule> {
        let name = self.entry_name(&mut t, "schedule");
        let windows = t
            .parsed_list(
                self.sink,
                "open",
                "days and hours like \"mon-fri 09:00-17:00\"",
                Window::parse,
            )
            .unwrap_or_default();
        if !t.has("open") {
            t.missing(
                self.sink,
                "open",
                "say when the office is open, e.g. open = [\"mon-fri 09:00-17:00\"]",
            );
        }
        for (i, w) in windows.iter().enumerate() {
            if let Some(j) = windows
                .iter()
                .take(i)
                .position(|v| v.value.overlaps(&w.value))
            {
                self.sink.error(
                    &w.span,
                    format!("{}[{i}]", t.path_of("open")),
                    format!("these hours overlap {}[{j}]", t.path_of("open")),
                    "give each day's hours once, e.g. mon-fri 09:00-12:00 and mon-fri 13:00-17:00",
                );
            }
        }
        let holidays = t
            .parsed_list(
                self.sink,
                "holidays",
                "dates like \"2026-12-25\"",
                parse_date,
            )
            .unwrap_or_default();
        let when_open = self.destination(&mut t, &schema::SCHEDULE_WHEN_OPEN, named);
        let when_closed = self.destination(&mut t, &schema::SCHEDULE_WHEN_CLOSED, named);
        for key in ["when_open", "when_closed"] {
            if !t.has(key) {
                t.missing(
                    self.sink,
                    key,
                    "a schedule says where calls ring when open and when closed",
                );
            }
        }
        t.finish(self.sink);
        Some(Schedule {
            name: name?.value,
            open: windows.into_iter().map(|w| w.value).collect(),
            holidays: holidays.into_iter().map(|h| h.value).collect(),
            when_open: when_open?,
            when_closed: when_closed?,
        })
    }

    fn attendant(&mut self, mut t: Section, named: &mut Vec<Named>) -> Option<Attendant> {
        let name = self.entry_name(&mut t, "attendant");
        let text = t.string(self.sink, "greeting");
        let file = t.string(self.sink, "greeting_file");
        let greeting = match (text, file) {
            (Some(text), None) => Some(Greeting::Text(text.value)),
            (None, Some(file)) => Some(Greeting::File(PathBuf::from(file.value))),
            (Some(_), Some(file)) => {
                self.sink.error(
                    &file.span,
                    t.path_of("greeting_file"),
                    "an attendant has one greeting: a text or a recording, not both",
                    "remove greeting or greeting_file",
                );
                None
            }
            (None, None) => {
                if !t.has("greeting") && !t.has("greeting_file") {
                    t.missing(
                        self.sink,
                        "greeting",
                        "write what the attendant says, or name a WAV in greeting_file",
                    );
                }
                None
            }
        };
        let mut keys: Vec<(char, Destination)> = Vec::new();
        let path = t.path_of("keys");
        for (i, k) in t
            .string_list(self.sink, "keys")
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let item = format!("{path}[{i}]");
            let parsed = k.value.split_once('=').and_then(|(key, dest)| {
                let mut chars = key.trim().chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) if c.is_ascii_digit() || c == '*' || c == '#' => {
                        Some((c, dest))
                    }
                    _ => None,
                }
            });
            let Some((key, dest)) = parsed else {
                self.sink.error(
                    &k.span,
                    item,
                    format!("`{}` is not KEY=DESTINATION", k.value),
                    "write one key (0-9, *, #), =, and where it leads, e.g. \"1=group:sales\"",
                );
                continue;
            };
            match Destination::parse(dest) {
                Ok(_) if keys.iter().any(|(c, _)| *c == key) => {
                    self.sink.error(
                        &k.span,
                        item,
                        format!("key {key} is given twice"),
                        "give each key one destination",
                    );
                }
                Ok(d) => {
                    named.push(Named {
                        destination: d.clone(),
                        span: k.span.clone(),
                        path: item,
                        by_default: false,
                    });
                    keys.push((key, d));
                }
                Err(e) => self.sink.error(
                    &k.span,
                    item,
                    e,
                    format!("write one of {}", Destination::FORMS),
                ),
            }
        }
        let dial_by_extension = t.flag(self.sink, &schema::ATTENDANT_DIAL_BY_EXTENSION);
        let timeout = self.duration(&mut t, &schema::ATTENDANT_TIMEOUT);
        let no_input = self.destination(&mut t, &schema::ATTENDANT_NO_INPUT, named);
        let invalid = self.destination(&mut t, &schema::ATTENDANT_INVALID, named);
        t.finish(self.sink);
        Some(Attendant {
            name: name?.value,
            greeting: greeting?,
            keys,
            dial_by_extension,
            timeout,
            no_input: no_input?,
            invalid: invalid?,
        })
    }

    /// One `[[phone.fax]]`: a name, the user it mails to, and an extension no one else
    /// has (users and the fax machines before it; the feature codes are checked with
    /// the rest of `[phone]`).
    fn fax_line(
        &mut self,
        mut t: Section,
        users: &[Spanned<User>],
        earlier: &[FaxLine],
    ) -> Option<FaxLine> {
        let name = self.entry_name(&mut t, "fax machine");
        let extension = t.parsed(
            self.sink,
            schema::FAX_EXTENSION.key(),
            "digits, e.g. \"180\"",
            |s| {
                if !s.is_empty() && s.len() <= 16 && s.bytes().all(|b| b.is_ascii_digit()) {
                    Ok(s.to_string())
                } else {
                    Err(format!("`{s}` is not an extension"))
                }
            },
        );
        let to = t.string(self.sink, schema::FAX_TO.key());
        let ident = t.string(self.sink, schema::FAX_IDENT.key());
        let tiff = t.flag(self.sink, &schema::FAX_TIFF);
        if !t.has("to") {
            t.missing(
                self.sink,
                "to",
                "say whose mailbox gets the faxes, e.g. to = \"alice\"",
            );
        }
        let mut ok = true;
        if let Some(n) = &name
            && earlier.iter().any(|f| f.name == n.value)
        {
            ok = false;
            let users_own = users
                .iter()
                .any(|u| u.value.fax && u.value.login == n.value);
            let (why, help) = if users_own {
                (
                    format!(
                        "`{}` is user {}'s own fax machine (fax = true)",
                        n.value, n.value
                    ),
                    "give this fax machine another name, or use the user's",
                )
            } else {
                (
                    format!("two fax machines are called `{}`", n.value),
                    "give each fax machine its own name",
                )
            };
            self.sink.error(&n.span, t.path_of("name"), why, help);
        }
        if let Some(e) = &extension {
            let taken = users
                .iter()
                .find(|u| u.value.extension.as_deref() == Some(e.value.as_str()))
                .map(|u| format!("{} is {}'s extension", e.value, u.value.login))
                .or_else(|| {
                    earlier
                        .iter()
                        .find(|f| f.extension.as_deref() == Some(e.value.as_str()))
                        .map(|f| format!("{} is the fax machine {}'s extension", e.value, f.name))
                });
            if let Some(why) = taken {
                ok = false;
                self.sink.error(
                    &e.span,
                    t.path_of("extension"),
                    why,
                    "give the fax machine an extension of its own",
                );
            }
        }
        if let Some(to) = &to
            && !users.iter().any(|u| u.value.login == to.value)
        {
            ok = false;
            self.sink.error(
                &to.span,
                t.path_of("to"),
                format!("no user has the login `{}`", to.value),
                "name the user whose mailbox gets the faxes",
            );
        }
        if let Some(i) = &ident
            && (i.value.len() > 20 || !i.value.bytes().all(|b| b.is_ascii_graphic() || b == b' '))
        {
            ok = false;
            self.sink.error(
                &i.span,
                t.path_of("ident"),
                "a fax identity is at most 20 plain characters (letters, digits, + and spaces)",
                "e.g. ident = \"+1 555 0100\"",
            );
        }
        t.finish(self.sink);
        let (true, Some(name), Some(to)) = (ok, name, to) else {
            return None;
        };
        let extension = extension.map(|e| e.value);
        let ident = ident
            .map(|i| i.value)
            .or_else(|| extension.clone())
            .unwrap_or_else(|| name.value.clone());
        Some(FaxLine {
            name: name.value,
            extension,
            to: to.value,
            ident,
            tiff,
        })
    }

    /// Every destination names something that exists; names are unique per kind; a
    /// schedule does not lead to another schedule.
    fn check_names(&mut self, plan: &DialPlan, users: &[Spanned<User>], named: &[Named]) {
        let groups: Vec<&str> = plan.ring_groups.iter().map(|g| g.name.as_str()).collect();
        let schedules: Vec<&str> = plan.schedules.iter().map(|s| s.name.as_str()).collect();
        let attendants: Vec<&str> = plan.attendants.iter().map(|a| a.name.as_str()).collect();
        for (what, names) in [
            ("ring group", &groups),
            ("schedule", &schedules),
            ("attendant", &attendants),
        ] {
            for (i, n) in names.iter().enumerate() {
                if names.iter().take(i).any(|m| m == n) {
                    self.sink.error(
                        &(0..0),
                        "phone",
                        format!("two {what}s are called `{n}`"),
                        format!("give each {what} its own name"),
                    );
                }
            }
        }
        for n in named {
            let inside_schedule = n.path.contains(".schedules[");
            let missing = if inside_schedule && matches!(n.destination, Destination::Schedule(_)) {
                Some("a schedule leads to a destination, not to another schedule".to_string())
            } else {
                leads_nowhere(&n.destination, plan, users)
            };
            if let Some(help) = missing {
                let default = if n.by_default {
                    " (the default, as it is not set)"
                } else {
                    ""
                };
                self.sink.error(
                    &n.span,
                    n.path.clone(),
                    format!("{}{default} leads nowhere", n.destination),
                    help,
                );
            }
        }
    }
}

/// Why `d` leads nowhere in `plan` with `users` (what to do instead), or `None` when it
/// leads somewhere.
pub(super) fn leads_nowhere(
    d: &Destination,
    plan: &DialPlan,
    users: &[Spanned<User>],
) -> Option<String> {
    let named = |list: Vec<&str>, n: &str| list.contains(&n);
    let (exists, help) = match d {
        Destination::Extension(e) => (
            users
                .iter()
                .any(|u| u.value.extension.as_deref() == Some(e.as_str())),
            format!(
                "no user has the extension {e}; give a user that extension, or route elsewhere"
            ),
        ),
        Destination::Voicemail(l) => (
            users.iter().any(|u| &u.value.login == l),
            format!("no user has the login `{l}`"),
        ),
        Destination::Group(g) => (
            named(
                plan.ring_groups.iter().map(|x| x.name.as_str()).collect(),
                g,
            ),
            format!("no [[phone.ring_groups]] is called `{g}`"),
        ),
        Destination::Attendant(a) => (
            named(plan.attendants.iter().map(|x| x.name.as_str()).collect(), a),
            format!("no [[phone.attendants]] is called `{a}`"),
        ),
        Destination::Schedule(s) => (
            named(plan.schedules.iter().map(|x| x.name.as_str()).collect(), s),
            format!("no [[phone.schedules]] is called `{s}`"),
        ),
        Destination::Fax(f) => (
            named(plan.faxes.iter().map(|x| x.name.as_str()).collect(), f),
            format!("no [[phone.fax]] is called `{f}`"),
        ),
        Destination::Operator => (
            plan.operator.is_some(),
            "set phone.operator, where such calls ring".to_string(),
        ),
        Destination::Number(_) | Destination::Hangup => (true, String::new()),
    };
    (!exists).then_some(help)
}
