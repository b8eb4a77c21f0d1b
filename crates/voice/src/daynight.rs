//! Day/night by hand: the night code (`phone.night_code`, dialled or pressed as a BLF
//! key) forces every schedule the other way from where it is (an office closing early,
//! or staying open late) until the schedule next changes by itself; dialled again while
//! forced, it gives the schedules back their hours. The state is kept in the state
//! database, so a restart (or kill -9) does not reopen an office closed by hand, and the
//! key's lamp (a BLF subscription to the code, [`crate::mwi`]) is lit while it is forced.

use std::collections::HashMap;

use officebox_config::dialplan::Schedule;

/// The `meta` key it is kept under.
pub const META_KEY: &str = "phone.day_night";

/// One schedule forced open or closed, until a Unix second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forced {
    pub open: bool,
    pub until: i64,
}

/// The schedules forced by hand, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayNight {
    forced: HashMap<String, Forced>,
}

impl DayNight {
    /// Whether `schedule` is forced open (`Some(true)`) or closed at `now`.
    pub fn forced(&self, schedule: &str, now: i64) -> Option<bool> {
        self.forced
            .get(schedule)
            .filter(|f| f.until > now)
            .map(|f| f.open)
    }

    /// Whether any schedule is forced at `now` (the BLF lamp).
    pub fn is_active(&self, now: i64) -> bool {
        self.forced.values().any(|f| f.until > now)
    }

    /// The night code was dialled at `now`: while any schedule is forced, every one goes
    /// back to its hours; otherwise each is forced the other way until it next changes.
    /// Whether the office (the first schedule) is open afterwards.
    pub fn toggle(&mut self, schedules: &[Schedule], zone: Option<&str>, now: i64) -> bool {
        if self.is_active(now) {
            self.forced.clear();
        } else {
            self.forced = schedules
                .iter()
                .map(|s| {
                    let forced = Forced {
                        open: !s.is_open_at(zone, now),
                        until: s.next_change(zone, now),
                    };
                    (s.name.clone(), forced)
                })
                .collect();
        }
        schedules.first().is_some_and(|s| {
            self.forced(&s.name, now)
                .unwrap_or_else(|| s.is_open_at(zone, now))
        })
    }

    /// As kept in the state database: `name open|closed UNTIL`, one a line.
    pub fn to_text(&self) -> String {
        let mut lines: Vec<String> = self
            .forced
            .iter()
            .map(|(name, f)| {
                let how = if f.open { "open" } else { "closed" };
                format!("{name} {how} {}", f.until)
            })
            .collect();
        lines.sort();
        lines.join("\n")
    }

    /// Reads [`DayNight::to_text`]; lines it does not understand are skipped.
    pub fn from_text(text: &str) -> DayNight {
        let forced = text
            .lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                let (name, how, until) = (words.next()?, words.next()?, words.next()?);
                let open = match how {
                    "open" => true,
                    "closed" => false,
                    _ => return None,
                };
                Some((
                    name.to_string(),
                    Forced {
                        open,
                        until: until.parse().ok()?,
                    },
                ))
            })
            .collect();
        DayNight { forced }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use officebox_config::dialplan::{Destination, Window};

    fn office() -> Schedule {
        Schedule {
            name: "office".into(),
            open: vec![Window::parse("mon-fri 09:00-17:00").unwrap()],
            holidays: Vec::new(),
            when_open: Destination::Extension("101".into()),
            when_closed: Destination::Voicemail("alice".into()),
        }
    }

    #[test]
    fn closing_early_lasts_until_the_office_would_open_and_dialling_again_undoes_it() {
        let utc = Some("UTC");
        // Thursday 2026-12-24 15:00 UTC: open; the code closes it.
        let thu_3pm = 1_798_124_400;
        let mut dn = DayNight::default();
        assert!(!dn.toggle(&[office()], utc, thu_3pm), "closed now");
        assert_eq!(dn.forced("office", thu_3pm), Some(false));
        assert!(dn.is_active(thu_3pm + 3600));
        // At 17:00 the hours close it by themselves: the override is over.
        let thu_5pm = thu_3pm + 2 * 3600;
        assert_eq!(dn.forced("office", thu_5pm), None);
        assert!(!dn.is_active(thu_5pm));
        // Kept and read back.
        assert_eq!(DayNight::from_text(&dn.to_text()), dn);
        assert_eq!(dn.to_text(), format!("office closed {thu_5pm}"));
        // Dialled again before then: the hours are back (open).
        assert!(dn.toggle(&[office()], utc, thu_3pm + 60));
        assert!(!dn.is_active(thu_3pm + 60));
        // Staying open late: forced open from 18:00 until Friday 09:00.
        let thu_6pm = thu_3pm + 3 * 3600;
        assert!(dn.toggle(&[office()], utc, thu_6pm));
        assert_eq!(dn.forced("office", thu_6pm + 3600), Some(true));
        assert_eq!(dn.forced("office", thu_6pm + 15 * 3600), None);
        assert_eq!(
            DayNight::from_text("nonsense\noffice maybe 5\n"),
            DayNight::default()
        );
    }
}
