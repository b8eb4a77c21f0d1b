//! The phone system's dial plan, as the config states it: outbound routes by pattern,
//! emergency numbers, the numbers the provider sends in (DIDs) and where each goes, ring
//! groups, schedules (office hours), and auto attendants.
//!
//! Everything here is validated data plus the pure rules the call server applies to it
//! (does a number match a route's pattern, what a route makes of it, which destination a
//! schedule picks at a given local time), so they are tested without a phone in sight.

use std::time::Duration;

/// `[phone]`'s routing part.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DialPlan {
    /// Numbers that always go out, on the first working trunk, whoever dials them.
    pub emergency_numbers: Vec<String>,
    /// Where a call from outside goes when no DID matches (None: it is refused).
    pub operator: Option<Destination>,
    /// Outbound routes, tried in order; an office extension always wins over them.
    pub routes: Vec<Route>,
    /// The provider's numbers and where each rings.
    pub inbound: Vec<Inbound>,
    pub ring_groups: Vec<RingGroup>,
    pub schedules: Vec<Schedule>,
    pub attendants: Vec<Attendant>,
    /// `[[phone.fax]]`: the box's fax machines, each mailing what it receives.
    pub faxes: Vec<FaxLine>,
    /// Number prefixes (as sent to the trunk) that are international or premium-rate:
    /// refused on every route that does not allow them.
    pub international_prefixes: Vec<String>,
    pub premium_prefixes: Vec<String>,
}

/// Where a call is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// An office extension (rings its user's phones).
    Extension(String),
    /// A ring group by name.
    Group(String),
    /// An auto attendant by name.
    Attendant(String),
    /// A user's voicemail, by login.
    Voicemail(String),
    /// A schedule by name, which picks one of its own destinations by the time.
    Schedule(String),
    /// An outside number, through the outbound routes.
    Number(String),
    /// A fax machine of the box's, by name: it answers and mails the pages.
    Fax(String),
    /// The operator destination (`phone.operator`).
    Operator,
    /// The call is ended (busy tone).
    Hangup,
}

impl Destination {
    /// The forms a destination is written in, for help texts.
    pub const FORMS: &'static str = "\"extension:101\", \"group:sales\", \"attendant:main\", \
         \"voicemail:alice\", \"schedule:office\", \"fax:main\", \"number:+15551234567\", \"operator\" or \"hangup\"";

    /// Reads `kind:name`.
    pub fn parse(s: &str) -> Result<Destination, String> {
        let s = s.trim();
        match s {
            "operator" => return Ok(Destination::Operator),
            "hangup" => return Ok(Destination::Hangup),
            _ => {}
        }
        let Some((kind, name)) = s.split_once(':') else {
            return Err(format!("`{s}` is not a destination"));
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(format!("`{s}` names no {kind}"));
        }
        let name = name.to_string();
        match kind.trim() {
            "extension" => Ok(Destination::Extension(name)),
            "group" => Ok(Destination::Group(name)),
            "attendant" => Ok(Destination::Attendant(name)),
            "voicemail" => Ok(Destination::Voicemail(name)),
            "schedule" => Ok(Destination::Schedule(name)),
            "fax" => Ok(Destination::Fax(name)),
            "number" if is_dialable(&name) => Ok(Destination::Number(name)),
            "number" => Err(format!("`{name}` is not a phone number")),
            other => Err(format!("`{other}` is not a kind of destination")),
        }
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::Extension(n) => write!(f, "extension:{n}"),
            Destination::Group(n) => write!(f, "group:{n}"),
            Destination::Attendant(n) => write!(f, "attendant:{n}"),
            Destination::Voicemail(n) => write!(f, "voicemail:{n}"),
            Destination::Schedule(n) => write!(f, "schedule:{n}"),
            Destination::Fax(n) => write!(f, "fax:{n}"),
            Destination::Number(n) => write!(f, "number:{n}"),
            Destination::Operator => f.write_str("operator"),
            Destination::Hangup => f.write_str("hangup"),
        }
    }
}

/// Digits, optionally after a `+`, and the keys a phone has (`*`, `#`).
pub fn is_dialable(s: &str) -> bool {
    let body = s.strip_prefix('+').unwrap_or(s);
    !body.is_empty()
        && body.len() <= 32
        && body
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
}

/// What the dial plan makes of a number an office phone dialed (that is no extension:
/// extensions are looked up first and always win).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound<'p> {
    /// An emergency number: out on the first trunk that works, of every route's trunks in
    /// order, whoever dialed it and whatever the routes allow.
    Emergency {
        number: String,
        trunks: Vec<&'p str>,
    },
    /// Out through `route`, as `number`, on its trunks in order.
    Route { route: &'p Route, number: String },
    /// Not allowed, and why (for the log and the caller's 403).
    Refused(Refusal),
    /// No route takes the number (404).
    NoRoute,
}

/// Why an outside call is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The matching routes are not for this user.
    NotAllowed,
    /// The number is international and the route does not allow it.
    International,
    /// The number is premium-rate and the route does not allow it.
    Premium,
}

impl DialPlan {
    /// The decision for `dialed` by the user `login`. The first route whose pattern
    /// matches and which the user may use takes the call; a guarded prefix on the number
    /// it would send refuses it (toll fraud is the costliest mistake a PBX can make).
    pub fn outbound(&self, login: &str, dialed: &str) -> Outbound<'_> {
        self.route_out(Some(login), dialed)
    }

    /// What the dial plan makes of a number the box itself calls for the office (a ring
    /// group's outside member, an attendant's key): as [`DialPlan::outbound`], but any
    /// route may take it whoever its users are (the admin chose the number); the
    /// international and premium-rate guards still apply.
    pub fn forward(&self, dialed: &str) -> Outbound<'_> {
        self.route_out(None, dialed)
    }

    /// [`DialPlan::outbound`] for `login`, or for the box (`None`).
    fn route_out(&self, login: Option<&str>, dialed: &str) -> Outbound<'_> {
        if self.emergency_numbers.iter().any(|n| n == dialed) {
            let mut trunks: Vec<&str> = Vec::new();
            for t in self.routes.iter().flat_map(|r| &r.trunks) {
                if !trunks.contains(&t.as_str()) {
                    trunks.push(t);
                }
            }
            return Outbound::Emergency {
                number: dialed.to_string(),
                trunks,
            };
        }
        let mut refused = None;
        for route in self.routes.iter().filter(|r| r.pattern.matches(dialed)) {
            if let (Some(login), Some(users)) = (login, route.users.as_ref())
                && !users.iter().any(|l| l == login)
            {
                refused.get_or_insert(Refusal::NotAllowed);
                continue;
            }
            let number = route.outgoing(dialed);
            let starts =
                |prefixes: &[String]| prefixes.iter().any(|p| number.starts_with(p.as_str()));
            if !route.allow_international && starts(&self.international_prefixes) {
                return Outbound::Refused(Refusal::International);
            }
            if !route.allow_premium && starts(&self.premium_prefixes) {
                return Outbound::Refused(Refusal::Premium);
            }
            return Outbound::Route { route, number };
        }
        refused.map_or(Outbound::NoRoute, Outbound::Refused)
    }

    /// Where a call from a trunk to `called` goes: its DID's destination, else the
    /// operator (None: refused).
    pub fn inbound(&self, called: &str) -> Option<&Destination> {
        self.inbound
            .iter()
            .find(|d| d.matches(called))
            .map(|d| &d.destination)
            .or(self.operator.as_ref())
    }
}

/// One outbound route.
/// One outbound route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub name: String,
    pub pattern: Pattern,
    /// Trunks by name, tried in order when one fails.
    pub trunks: Vec<String>,
    /// Characters taken off the front of the dialed number (e.g. 1 for the `9` prefix).
    pub strip: usize,
    /// Characters put in front after stripping (e.g. a country code).
    pub prepend: String,
    /// Logins allowed to use the route; None: everybody.
    pub users: Option<Vec<String>>,
    /// The caller ID sent; None: the user's own, else the company's.
    pub caller_id: Option<String>,
    pub allow_international: bool,
    pub allow_premium: bool,
}

impl Route {
    /// The number sent to the trunk for `dialed` (which matched the pattern).
    pub fn outgoing(&self, dialed: &str) -> String {
        let kept: String = dialed.chars().skip(self.strip).collect();
        format!("{}{kept}", self.prepend)
    }
}

/// A dial pattern: literal digits and keys, `X` (0-9), `N` (2-9), `Z` (1-9), `[1-5,7]`
/// (a set), and at the end `.` (one or more of anything; a trailing `*` after other
/// characters means the same, as in `+*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    pub text: String,
    elems: Vec<Class>,
    /// Ends in a wildcard: one or more further characters of any kind.
    open: bool,
}

/// The characters one position of a pattern takes: a bit per `0`-`9`, `*`, `#`, `+`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Class(u16);

impl Class {
    fn bit(c: char) -> Option<u16> {
        match c {
            '0'..='9' => Some(1 << (c as u32 - '0' as u32)),
            '*' => Some(1 << 10),
            '#' => Some(1 << 11),
            '+' => Some(1 << 12),
            _ => None,
        }
    }

    fn digits(from: u32, to: u32) -> Class {
        Class((from..=to).fold(0, |m, d| m | (1 << d)))
    }

    fn takes(self, c: char) -> bool {
        Class::bit(c).is_some_and(|b| self.0 & b != 0)
    }

    fn covers(self, other: Class) -> bool {
        other.0 & !self.0 == 0
    }
}

impl Pattern {
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let mut elems = Vec::new();
        let mut open = false;
        let mut chars = text.trim().chars().peekable();
        while let Some(c) = chars.next() {
            if open {
                return Err(format!("`{text}`: a wildcard can only end a pattern"));
            }
            let class = match c {
                'X' | 'x' => Class::digits(0, 9),
                'N' | 'n' => Class::digits(2, 9),
                'Z' | 'z' => Class::digits(1, 9),
                '.' => {
                    open = true;
                    continue;
                }
                '*' if chars.peek().is_none() && !elems.is_empty() => {
                    open = true;
                    continue;
                }
                '[' => {
                    let mut set = 0u16;
                    let mut prev: Option<u32> = None;
                    let mut closed = false;
                    while let Some(c) = chars.next() {
                        match c {
                            ']' => {
                                closed = true;
                                break;
                            }
                            '-' => {
                                let (Some(from), Some(to)) =
                                    (prev, chars.next().and_then(|c| c.to_digit(10)))
                                else {
                                    return Err(format!("`{text}`: a range is written like [2-5]"));
                                };
                                if to < from {
                                    return Err(format!(
                                        "`{text}`: the range {from}-{to} is backwards"
                                    ));
                                }
                                set |= Class::digits(from, to).0;
                            }
                            ',' | ' ' => {}
                            c => {
                                let Some(bit) = Class::bit(c) else {
                                    return Err(format!("`{text}`: `{c}` cannot be dialed"));
                                };
                                set |= bit;
                                prev = c.to_digit(10);
                            }
                        }
                    }
                    if !closed || set == 0 {
                        return Err(format!("`{text}`: a set is written like [1-5,7]"));
                    }
                    Class(set)
                }
                c => match Class::bit(c) {
                    Some(bit) => Class(bit),
                    None => {
                        return Err(format!(
                            "`{text}`: `{c}` is not a digit, key or pattern letter"
                        ));
                    }
                },
            };
            elems.push(class);
        }
        if elems.is_empty() {
            return Err("a pattern needs at least one digit or letter before a wildcard".into());
        }
        Ok(Pattern {
            text: text.trim().to_string(),
            elems,
            open,
        })
    }

    /// Whether `number` (what a phone dialed) matches.
    pub fn matches(&self, number: &str) -> bool {
        let n = number.chars().count();
        let fits = if self.open {
            n > self.elems.len()
        } else {
            n == self.elems.len()
        };
        fits && number
            .chars()
            .zip(&self.elems)
            .all(|(c, class)| class.takes(c))
            && (!self.open
                || number
                    .chars()
                    .skip(self.elems.len())
                    .all(|c| Class::bit(c).is_some()))
    }

    /// Whether every number `other` matches, this one matches too (so a route with
    /// `other` after one with this pattern can never be used).
    pub fn covers(&self, other: &Pattern) -> bool {
        if self.open {
            // Our fixed part must cover the start of theirs, and they must be longer.
            let their_min = other.elems.len() + usize::from(other.open);
            their_min > self.elems.len()
                && self
                    .elems
                    .iter()
                    .zip(&other.elems)
                    .all(|(a, b)| a.covers(*b))
                && (other.elems.len() > self.elems.len() || other.open)
        } else {
            !other.open
                && other.elems.len() == self.elems.len()
                && self
                    .elems
                    .iter()
                    .zip(&other.elems)
                    .all(|(a, b)| a.covers(*b))
        }
    }

    /// Whether the pattern can match a number of digits and keys at all (a set of no
    /// dialable character cannot happen: parsing refuses it).
    pub fn min_len(&self) -> usize {
        self.elems.len() + usize::from(self.open)
    }
}

/// A number from the provider and where it rings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// The DID as the provider sends it (digits, optionally with `+`).
    pub number: String,
    pub destination: Destination,
}

impl Inbound {
    /// Whether a called number from a trunk is this DID: exactly, or the same digits
    /// once a leading `+` is left out on either side.
    pub fn matches(&self, called: &str) -> bool {
        let plain = |s: &str| s.trim_start_matches('+').to_string();
        self.number == called || plain(&self.number) == plain(called)
    }
}

/// How a ring group rings its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Every member at once; the first to answer takes the call.
    All,
    /// One after the other, each for `ring_time`.
    Hunt,
}

/// A ring group member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Member {
    Extension(String),
    /// An outside number, through the outbound routes.
    Number(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingGroup {
    pub name: String,
    pub strategy: Strategy,
    pub members: Vec<Member>,
    /// How long each member rings (hunt), or the whole group (all).
    pub ring_time: Duration,
    /// Where the call goes when nobody answers.
    pub no_answer: Destination,
}

/// Days of the week as bits, Monday = bit 0.
pub type Days = u8;

/// Opening hours on some days: minutes after midnight, `from` < `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub days: Days,
    pub from: u16,
    pub to: u16,
}

impl Window {
    /// Reads `mon-fri 09:00-17:00`, `sat 10:00-12:00`, `mon,wed 08:30-12:00`.
    pub fn parse(s: &str) -> Result<Window, String> {
        let help = || format!("`{s}` is not days and hours like \"mon-fri 09:00-17:00\"");
        let (days, hours) = s.trim().split_once(' ').ok_or_else(help)?;
        let mut set: Days = 0;
        for part in days.split(',') {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            let (a, b) = (day(a).ok_or_else(help)?, day(b).ok_or_else(help)?);
            if b < a {
                return Err(format!(
                    "`{part}`: write days from Monday to Sunday, e.g. mon-fri"
                ));
            }
            for d in a..=b {
                set |= 1 << d;
            }
        }
        let (from, to) = hours.trim().split_once('-').ok_or_else(help)?;
        let (from, to) = (
            minutes(from).ok_or_else(help)?,
            minutes(to).ok_or_else(help)?,
        );
        if to <= from {
            return Err(format!(
                "`{hours}`: the end must be after the start (on the same day)"
            ));
        }
        Ok(Window {
            days: set,
            from,
            to,
        })
    }

    fn contains(&self, weekday: u8, minute: u16) -> bool {
        self.days & (1 << weekday) != 0 && (self.from..self.to).contains(&minute)
    }

    /// Whether two windows share a minute on a day.
    pub fn overlaps(&self, other: &Window) -> bool {
        self.days & other.days != 0 && self.from < other.to && other.from < self.to
    }
}

fn day(s: &str) -> Option<u8> {
    let names = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let s = s.trim().to_ascii_lowercase();
    names
        .iter()
        .position(|d| s.starts_with(d) && s.len() >= 3)
        .and_then(|i| u8::try_from(i).ok())
}

fn minutes(s: &str) -> Option<u16> {
    let (h, m) = s.trim().split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    // 24:00 is the end of the day.
    (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
}

/// Office hours: which destination rings, open or closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub name: String,
    pub open: Vec<Window>,
    /// Whole days closed, as (year, month, day).
    pub holidays: Vec<(i32, u8, u8)>,
    pub when_open: Destination,
    pub when_closed: Destination,
}

/// A moment in the office's local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    pub date: (i32, u8, u8),
    /// Monday = 0.
    pub weekday: u8,
    /// Minutes after midnight.
    pub minute: u16,
}

impl LocalTime {
    /// Now in time zone `zone` (an IANA name the config has checked), else the box's own.
    pub fn now(zone: Option<&str>) -> LocalTime {
        LocalTime::at(&now_in(zone))
    }

    /// When today began in time zone `zone` (else the box's own), in Unix seconds: the
    /// day's limits count from there.
    pub fn midnight(zone: Option<&str>) -> i64 {
        let now = now_in(zone);
        now.start_of_day().map_or_else(
            |_| now.timestamp().as_second(),
            |d| d.timestamp().as_second(),
        )
    }

    /// The next moment after Unix second `after` at which the clock in time zone `zone`
    /// (else the box's own) shows `at` (hour, minute, second), in Unix seconds. A time a
    /// clock change skips is taken as the moment after the gap.
    pub fn next_at(zone: Option<&str>, at: (u8, u8, u8), after: i64) -> i64 {
        let tz = zone_of(zone);
        let now = jiff::Timestamp::from_second(after)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
            .to_zoned(tz.clone());
        let (h, m, s) = (
            i8::try_from(at.0).unwrap_or(0),
            i8::try_from(at.1).unwrap_or(0),
            i8::try_from(at.2).unwrap_or(0),
        );
        let on = |date: jiff::civil::Date| {
            date.at(h, m, s, 0)
                .to_zoned(tz.clone())
                .map(|z| z.timestamp().as_second())
                .ok()
        };
        let today = on(now.date()).filter(|t| *t > after);
        today
            .or_else(|| now.date().tomorrow().ok().and_then(on))
            .unwrap_or(after + 86_400)
    }

    fn at(t: &jiff::Zoned) -> LocalTime {
        let minute =
            u16::try_from(t.hour()).unwrap_or(0) * 60 + u16::try_from(t.minute()).unwrap_or(0);
        LocalTime {
            date: (
                i32::from(t.year()),
                u8::try_from(t.month()).unwrap_or(1),
                u8::try_from(t.day()).unwrap_or(1),
            ),
            weekday: u8::try_from(t.weekday().to_monday_zero_offset()).unwrap_or(0),
            minute,
        }
    }
}

/// Now in time zone `zone` (an IANA name the config has checked), else the box's own.
fn now_in(zone: Option<&str>) -> jiff::Zoned {
    jiff::Timestamp::now().to_zoned(zone_of(zone))
}

/// Time zone `zone`, else the box's own.
fn zone_of(zone: Option<&str>) -> jiff::tz::TimeZone {
    zone.and_then(|z| jiff::tz::TimeZone::get(z).ok())
        .unwrap_or_else(jiff::tz::TimeZone::system)
}

/// The local time at Unix second `secs` in `tz`.
fn local_at(tz: &jiff::tz::TimeZone, secs: i64) -> LocalTime {
    let ts = jiff::Timestamp::from_second(secs).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    LocalTime::at(&ts.to_zoned(tz.clone()))
}

/// How far ahead [`Schedule::next_change`] looks.
const LOOK_AHEAD_MINUTES: i64 = 8 * 24 * 60;

impl Schedule {
    /// Whether the office is open at `t`.
    pub fn is_open(&self, t: LocalTime) -> bool {
        !self.holidays.contains(&t.date)
            && self.open.iter().any(|w| w.contains(t.weekday, t.minute))
    }

    /// The destination at `t`.
    pub fn destination(&self, t: LocalTime) -> &Destination {
        self.destination_when(self.is_open(t))
    }

    /// The destination when open (or closed).
    pub fn destination_when(&self, open: bool) -> &Destination {
        if open {
            &self.when_open
        } else {
            &self.when_closed
        }
    }

    /// Whether the office is open at Unix second `at` in time zone `zone` (else the
    /// box's own).
    pub fn is_open_at(&self, zone: Option<&str>, at: i64) -> bool {
        self.is_open(local_at(&zone_of(zone), at))
    }

    /// When (Unix seconds, on a minute) the schedule next opens or closes by itself
    /// after `from`, in time zone `zone`; a schedule that does not change within eight
    /// days (open around the clock, say) gives the end of those days.
    pub fn next_change(&self, zone: Option<&str>, from: i64) -> i64 {
        let tz = zone_of(zone);
        let now = self.is_open(local_at(&tz, from));
        let first = from - from.rem_euclid(60) + 60;
        (0..LOOK_AHEAD_MINUTES)
            .map(|m| first + m * 60)
            .find(|&t| self.is_open(local_at(&tz, t)) != now)
            .unwrap_or(first + LOOK_AHEAD_MINUTES * 60)
    }
}

/// What an attendant says first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Greeting {
    /// Spoken by espeak-ng when the config is saved.
    Text(String),
    /// A WAV file on the box.
    File(std::path::PathBuf),
}

/// `[[phone.fax]]`: a fax machine of the box's. It answers calls sent to it (a DID's
/// destination `fax:NAME`, or its own extension) and mails what arrives, the pages as a
/// PDF, to a user's mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaxLine {
    pub name: String,
    /// Dialled inside the office, it answers (none: only as a destination).
    pub extension: Option<String>,
    /// The login of the user whose mailbox gets the faxes.
    pub to: String,
    /// The identity it sends the other machine (often the fax number); default: the
    /// extension, else the name.
    pub ident: String,
    /// Whether the mail carries the received TIFF file beside the PDF.
    pub tiff: bool,
}

/// An auto attendant: a greeting, then keys to destinations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attendant {
    pub name: String,
    pub greeting: Greeting,
    /// Key (`0`-`9`, `*`, `#`) to destination.
    pub keys: Vec<(char, Destination)>,
    /// A caller may dial an extension directly.
    pub dial_by_extension: bool,
    /// How long to wait for a key after the greeting.
    pub timeout: Duration,
    /// Where the call goes with no key pressed, and with a key that leads nowhere.
    pub no_input: Destination,
    pub invalid: Destination,
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_next_time_of_day_is_today_or_tomorrow_in_the_zone() {
        // 2026-12-08 10:00:00 UTC.
        let t = 1_796_724_000;
        assert_eq!(LocalTime::next_at(Some("UTC"), (11, 0, 0), t), t + 3600);
        assert_eq!(LocalTime::next_at(Some("UTC"), (10, 0, 0), t), t + 86_400);
        assert_eq!(
            LocalTime::next_at(Some("UTC"), (2, 30, 0), t),
            t + 16 * 3600 + 1800
        );
        // Berlin is an hour ahead in December: 02:30 there is 01:30 UTC.
        assert_eq!(
            LocalTime::next_at(Some("Europe/Berlin"), (2, 30, 0), t),
            t + 15 * 3600 + 1800
        );
    }

    use super::*;

    #[test]
    fn a_schedule_knows_when_it_next_changes_by_itself() {
        let s = Schedule {
            name: "office".into(),
            open: vec![Window::parse("mon-fri 09:00-17:00").unwrap()],
            holidays: vec![(2026, 12, 25)],
            when_open: Destination::Extension("101".into()),
            when_closed: Destination::Voicemail("alice".into()),
        };
        let utc = Some("UTC");
        // Thursday 2026-12-24 15:00 UTC: open, closes at 17:00.
        let thu_3pm = 1_798_124_400;
        assert!(s.is_open_at(utc, thu_3pm));
        assert_eq!(s.next_change(utc, thu_3pm), thu_3pm + 2 * 3600);
        // Closed at 17:00 (a holiday and a weekend follow): opens Monday 28th at 09:00.
        let thu_5pm = thu_3pm + 2 * 3600;
        assert!(!s.is_open_at(utc, thu_5pm));
        assert_eq!(s.next_change(utc, thu_5pm), thu_5pm + (3 * 24 + 16) * 3600);
        // In Berlin (UTC+1) the same instant is 16:00: an hour later.
        assert_eq!(
            s.next_change(Some("Europe/Berlin"), thu_3pm),
            thu_3pm + 3600
        );
        // Open around the clock: no change within the eight days looked at.
        let always = Schedule {
            open: vec![Window::parse("mon-sun 00:00-24:00").unwrap()],
            holidays: Vec::new(),
            ..s
        };
        assert_eq!(always.next_change(utc, thu_3pm), thu_3pm + 60 + 8 * 86_400);
    }

    fn p(s: &str) -> Pattern {
        Pattern::parse(s).unwrap()
    }

    #[test]
    fn patterns_match_as_a_pbx_user_writes_them() {
        assert!(p("9.").matches("95551234"));
        assert!(!p("9.").matches("9"), "a wildcard takes at least one more");
        assert!(p("0NXXXXXXXX").matches("0212345678"));
        assert!(!p("0NXXXXXXXX").matches("0112345678"), "N is 2-9");
        assert!(!p("0NXXXXXXXX").matches("02123456789"), "too long");
        assert!(p("+*").matches("+4930123456"));
        assert!(!p("+*").matches("4930123456"));
        assert!(p("[1-3,5]X").matches("57"));
        assert!(!p("[1-3,5]X").matches("47"));
        assert!(
            p("*9X").matches("*91"),
            "a star that does not end the pattern is the key"
        );
        for bad in ["", ".", "9.1", "[5", "[]", "[5-2]", "9a", "+9.*"] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_pattern_knows_when_it_shadows_another() {
        assert!(p("9.").covers(&p("91XXX")));
        assert!(p("9.").covers(&p("9X.")));
        assert!(!p("9.").covers(&p("9")), "9 alone is not matched by 9.");
        assert!(p("XXX").covers(&p("1[2-3]4")));
        assert!(!p("XXX").covers(&p("XXXX")));
        assert!(!p("91XXX").covers(&p("9.")));
        assert!(!p("NXX").covers(&p("1XX")));
    }

    #[test]
    fn a_route_strips_and_prepends() {
        let r = Route {
            name: "out".into(),
            pattern: p("9."),
            trunks: vec!["t".into()],
            strip: 1,
            prepend: "+1".into(),
            users: None,
            caller_id: None,
            allow_international: false,
            allow_premium: false,
        };
        assert_eq!(r.outgoing("95551234"), "+15551234");
    }

    #[test]
    fn local_time_is_the_wall_clock_in_the_zone() {
        let t: jiff::Timestamp = "2026-12-07T07:30:00Z".parse().unwrap();
        // Berlin one hour ahead; New York five behind: the small hours of the same Monday.
        for (zone, minute) in [
            ("Europe/Berlin", 8 * 60 + 30),
            ("America/New_York", 2 * 60 + 30),
        ] {
            let local = t.to_zoned(jiff::tz::TimeZone::get(zone).unwrap());
            let expected = LocalTime {
                date: (2026, 12, 7),
                weekday: 0,
                minute,
            };
            assert_eq!(LocalTime::at(&local), expected, "{zone}");
        }
    }

    #[test]
    fn destinations_read_and_write_alike() {
        for s in [
            "extension:101",
            "group:sales",
            "attendant:main",
            "voicemail:alice",
            "schedule:office",
            "fax:main",
            "number:+15551234567",
            "operator",
            "hangup",
        ] {
            assert_eq!(Destination::parse(s).unwrap().to_string(), s);
        }
        for bad in ["101", "group:", "fax:", "modem:1", "number:abc"] {
            assert!(Destination::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_schedule_picks_by_day_hour_and_holiday() {
        let s = Schedule {
            name: "office".into(),
            open: vec![
                Window::parse("mon-fri 09:00-12:00").unwrap(),
                Window::parse("mon-fri 13:00-17:00").unwrap(),
            ],
            holidays: vec![(2026, 12, 25)],
            when_open: Destination::Group("sales".into()),
            when_closed: Destination::Voicemail("alice".into()),
        };
        let at = |date, weekday, h: u16, m: u16| LocalTime {
            date,
            weekday,
            minute: h * 60 + m,
        };
        assert!(s.is_open(at((2026, 12, 7), 0, 9, 0)));
        assert!(!s.is_open(at((2026, 12, 7), 0, 12, 30)), "lunch");
        assert!(!s.is_open(at((2026, 12, 7), 0, 17, 0)), "the end is closed");
        assert!(!s.is_open(at((2026, 12, 12), 5, 10, 0)), "Saturday");
        assert!(!s.is_open(at((2026, 12, 25), 4, 10, 0)), "a holiday");
        assert_eq!(
            s.destination(at((2026, 12, 25), 4, 10, 0)),
            &Destination::Voicemail("alice".into())
        );
        let w = Window::parse("sat,sun 10:00-24:00").unwrap();
        assert_eq!((w.days, w.from, w.to), (0b110_0000, 600, 1440));
        assert!(Window::parse("mon-fri 09:00-08:00").is_err());
        assert!(Window::parse("fri-mon 09:00-10:00").is_err());
        assert!(Window::parse("weekdays 9-5").is_err());
        assert!(
            Window::parse("mon-fri 09:00-12:00")
                .unwrap()
                .overlaps(&Window::parse("fri 11:00-13:00").unwrap())
        );
        assert!(
            !Window::parse("mon-fri 09:00-12:00")
                .unwrap()
                .overlaps(&Window::parse("mon-fri 12:00-13:00").unwrap())
        );
    }

    fn route(name: &str, pattern: &str, trunks: &[&str], strip: usize, prepend: &str) -> Route {
        Route {
            name: name.into(),
            pattern: p(pattern),
            trunks: trunks.iter().map(|t| (*t).to_string()).collect(),
            strip,
            prepend: prepend.into(),
            users: None,
            caller_id: None,
            allow_international: false,
            allow_premium: false,
        }
    }

    fn plan() -> DialPlan {
        let mut managers = route("managers", "9011.", &["b"], 1, "");
        managers.users = Some(vec!["boss".into()]);
        managers.allow_international = true;
        DialPlan {
            emergency_numbers: vec!["911".into(), "112".into()],
            international_prefixes: vec!["011".into(), "00".into()],
            premium_prefixes: vec!["1900".into()],
            routes: vec![managers, route("national", "9.", &["a", "b"], 1, "")],
            operator: Some(Destination::Extension("100".into())),
            inbound: vec![Inbound {
                number: "+15551230000".into(),
                destination: Destination::Group("sales".into()),
            }],
            ..DialPlan::default()
        }
    }

    #[test]
    fn outbound_calls_follow_routes_permissions_and_guards() {
        let d = plan();
        match d.outbound("alice", "95551234") {
            Outbound::Route { route, number } => assert_eq!(
                (route.name.as_str(), number.as_str()),
                ("national", "5551234")
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            d.outbound("alice", "9011441234"),
            Outbound::Refused(Refusal::International),
            "the managers' route is not hers, the national one guards 011"
        );
        match d.outbound("boss", "9011441234") {
            Outbound::Route { route, .. } => assert_eq!(route.name, "managers"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            d.outbound("boss", "919005551234"),
            Outbound::Refused(Refusal::Premium)
        );
        assert_eq!(d.outbound("alice", "5551234"), Outbound::NoRoute);
        // Emergency: whoever dials, on every trunk in order, even with no route matching.
        assert_eq!(
            d.outbound("guest", "911"),
            Outbound::Emergency {
                number: "911".into(),
                trunks: vec!["b", "a"]
            }
        );
        let mut only_boss = plan();
        only_boss.routes.truncate(1);
        assert_eq!(
            only_boss.outbound("alice", "9011441234"),
            Outbound::Refused(Refusal::NotAllowed)
        );
        assert!(matches!(
            only_boss.outbound("alice", "112"),
            Outbound::Emergency { .. }
        ));
        // The box forwarding a call (a ring group's outside member) may use any route,
        // whoever its users, but not to call abroad where the route may not.
        assert!(matches!(
            only_boss.forward("9011441234"),
            Outbound::Route { .. }
        ));
        let mut national_only = plan();
        national_only.routes.remove(0);
        assert!(matches!(
            national_only.forward("95551234"),
            Outbound::Route { .. }
        ));
        assert_eq!(
            national_only.forward("9011441234"),
            Outbound::Refused(Refusal::International)
        );
    }

    #[test]
    fn inbound_calls_go_to_their_did_or_the_operator() {
        let d = plan();
        assert_eq!(
            d.inbound("15551230000"),
            Some(&Destination::Group("sales".into()))
        );
        assert_eq!(
            d.inbound("+15559999999"),
            Some(&Destination::Extension("100".into()))
        );
        let mut closed = plan();
        closed.operator = None;
        assert_eq!(closed.inbound("+15559999999"), None);
    }

    #[test]
    fn a_did_matches_with_or_without_plus() {
        let d = Inbound {
            number: "+15551230000".into(),
            destination: Destination::Operator,
        };
        assert!(d.matches("+15551230000"));
        assert!(d.matches("15551230000"));
        assert!(!d.matches("5551230000"));
    }
}
