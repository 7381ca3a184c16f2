//! Change windows: the days and hours, in a stated time zone, in which a role may be held.
//!
//! Pure: every question takes the instant it is about. Local times come from the system
//! time-zone database through jiff, so daylight-saving changes are handled as the zone says.

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const MINUTES_PER_DAY: u32 = 24 * 60;

/// Allowed days (Monday first) and one daily span `start..end` in minutes after local
/// midnight. `end` may be 1440 (midnight at the end of the day); `start > end` is a span
/// that runs past midnight, and then the day named is the day it starts on.
#[derive(Debug, Clone)]
pub struct Window {
    days: [bool; 7],
    start: u32,
    end: u32,
    tz: TimeZone,
    tz_name: String,
}

fn parse_hhmm(s: &str) -> Result<u32, String> {
    let (h, m) = s
        .split_once(':')
        .ok_or_else(|| format!("'{s}' is not HH:MM"))?;
    let ok = |p: &str| p.len() == 2 && p.chars().all(|c| c.is_ascii_digit());
    if !ok(h) || !ok(m) {
        return Err(format!("'{s}' is not HH:MM"));
    }
    let (h, m): (u32, u32) = (
        h.parse().map_err(|_| format!("'{s}' is not HH:MM"))?,
        m.parse().map_err(|_| format!("'{s}' is not HH:MM"))?,
    );
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return Err(format!("'{s}' is not a time of day (00:00 to 24:00)"));
    }
    Ok(h * 60 + m)
}

fn day_index(s: &str) -> Result<usize, String> {
    DAY_NAMES
        .iter()
        .position(|d| *d == s)
        .ok_or_else(|| format!("unknown day '{s}' (use mon, tue, wed, thu, fri, sat, sun)"))
}

fn hhmm(m: u32) -> String {
    format!("{:02}:{:02}", m / 60, m % 60)
}

impl Window {
    /// `days`: names or ranges (`"mon-fri"`, `"sat"`); `hours`: `"08:00-18:00"`;
    /// `timezone`: an IANA name such as `"Europe/Berlin"` or `"UTC"`.
    pub fn parse(days: &[String], hours: &str, timezone: &str) -> Result<Window, String> {
        let mut set = [false; 7];
        if days.is_empty() {
            return Err("days must name at least one day".into());
        }
        for d in days {
            let d = d.trim().to_ascii_lowercase();
            match d.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (day_index(a)?, day_index(b)?);
                    let mut i = a;
                    loop {
                        set[i] = true;
                        if i == b {
                            break;
                        }
                        i = (i + 1) % 7;
                    }
                }
                None => set[day_index(&d)?] = true,
            }
        }
        let (s, e) = hours
            .split_once('-')
            .ok_or_else(|| format!("hours '{hours}' is not HH:MM-HH:MM"))?;
        let (start, end) = (parse_hhmm(s.trim())?, parse_hhmm(e.trim())?);
        if start == end || start == MINUTES_PER_DAY {
            return Err(format!("hours '{hours}' is an empty span"));
        }
        let tz = TimeZone::get(timezone).map_err(|e| {
            format!("unknown time zone '{timezone}' (an IANA name such as Europe/Berlin): {e}")
        })?;
        Ok(Window {
            days: set,
            start,
            end,
            tz,
            tz_name: timezone.to_string(),
        })
    }

    /// "mon-fri 08:00-18:00 Europe/Berlin".
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        let mut i = 0;
        while i < 7 {
            if !self.days[i] {
                i += 1;
                continue;
            }
            let first = i;
            while i + 1 < 7 && self.days[i + 1] {
                i += 1;
            }
            parts.push(if first == i {
                DAY_NAMES[i].to_string()
            } else {
                format!("{}-{}", DAY_NAMES[first], DAY_NAMES[i])
            });
            i += 1;
        }
        format!(
            "{} {}-{} {}",
            parts.join(","),
            hhmm(self.start),
            hhmm(self.end),
            self.tz_name
        )
    }

    /// The instant `minutes` after local midnight of `date` (may be 1440: next midnight).
    fn at(&self, date: Date, minutes: u32) -> Option<i64> {
        let (date, minutes) = if minutes >= MINUTES_PER_DAY {
            (date.tomorrow().ok()?, minutes - MINUTES_PER_DAY)
        } else {
            (date, minutes)
        };
        let h = i8::try_from(minutes / 60).ok()?;
        let m = i8::try_from(minutes % 60).ok()?;
        let z = date.at(h, m, 0, 0).to_zoned(self.tz.clone()).ok()?;
        Some(z.timestamp().as_second())
    }

    /// If `t` (unix seconds) lies inside the window, when that opening of it ends.
    /// `None`: the window is closed at `t` (or `t` cannot be placed in the zone: closed).
    pub fn end_if_open(&self, t: i64) -> Option<i64> {
        let z = Timestamp::from_second(t).ok()?.to_zoned(self.tz.clone());
        let day = usize::from(z.weekday().to_monday_zero_offset().unsigned_abs());
        let minutes =
            u32::from(z.hour().unsigned_abs()) * 60 + u32::from(z.minute().unsigned_abs());
        let date = z.date();
        if self.start < self.end {
            if self.days[day] && (self.start..self.end).contains(&minutes) {
                return self.at(date, self.end);
            }
            return None;
        }
        // Runs past midnight: open from `start` on an allowed day until `end` the next day.
        if self.days[day] && minutes >= self.start {
            return self.at(date, MINUTES_PER_DAY + self.end);
        }
        if minutes < self.end && self.days[(day + 6) % 7] {
            return self.at(date, self.end);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(days: &[&str], hours: &str, tz: &str) -> Window {
        let days: Vec<String> = days.iter().map(|d| (*d).to_string()).collect();
        Window::parse(&days, hours, tz).unwrap()
    }

    fn ts(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_second()
    }

    #[test]
    fn given_office_hours_when_inside_then_open_until_the_end_that_day() {
        let win = w(&["mon-fri"], "08:00-18:00", "UTC");
        // 2026-11-20 is a Friday.
        assert_eq!(
            win.end_if_open(ts("2026-11-20T09:30:00Z")),
            Some(ts("2026-11-20T18:00:00Z"))
        );
        assert_eq!(win.end_if_open(ts("2026-11-20T18:00:00Z")), None);
        assert_eq!(win.end_if_open(ts("2026-11-20T07:59:59Z")), None);
        // Saturday
        assert_eq!(win.end_if_open(ts("2026-11-21T10:00:00Z")), None);
        assert_eq!(win.describe(), "mon-fri 08:00-18:00 UTC");
    }

    #[test]
    fn given_a_zone_when_checked_then_local_time_decides() {
        let win = w(&["mon-fri"], "08:00-18:00", "Europe/Berlin");
        // 07:30 UTC in November is 08:30 in Berlin (CET, UTC+1).
        assert_eq!(
            win.end_if_open(ts("2026-11-20T07:30:00Z")),
            Some(ts("2026-11-20T17:00:00Z"))
        );
        assert_eq!(win.end_if_open(ts("2026-11-20T17:00:00Z")), None);
        // In July (CEST, UTC+2) 06:30 UTC is 08:30 local.
        assert_eq!(
            win.end_if_open(ts("2026-07-03T06:30:00Z")),
            Some(ts("2026-07-03T16:00:00Z"))
        );
    }

    #[test]
    fn given_overnight_window_when_checked_then_it_belongs_to_its_start_day() {
        let win = w(&["sat"], "22:00-04:00", "UTC");
        assert_eq!(
            win.end_if_open(ts("2026-11-21T23:00:00Z")),
            Some(ts("2026-11-22T04:00:00Z"))
        );
        assert_eq!(
            win.end_if_open(ts("2026-11-22T03:00:00Z")),
            Some(ts("2026-11-22T04:00:00Z"))
        );
        // Sunday night is not a Saturday window.
        assert_eq!(win.end_if_open(ts("2026-11-22T23:00:00Z")), None);
        // Saturday early morning belongs to Friday's (absent) window.
        assert_eq!(win.end_if_open(ts("2026-11-21T03:00:00Z")), None);
    }

    #[test]
    fn given_whole_day_window_when_checked_then_ends_at_midnight() {
        let win = w(&["sun", "sat"], "00:00-24:00", "UTC");
        assert_eq!(
            win.end_if_open(ts("2026-11-22T12:00:00Z")),
            Some(ts("2026-11-23T00:00:00Z"))
        );
        assert_eq!(win.describe(), "sat-sun 00:00-24:00 UTC");
    }

    #[test]
    fn given_bad_specs_when_parsed_then_each_is_refused() {
        let d = |x: &[&str]| x.iter().map(|s| (*s).to_string()).collect::<Vec<_>>();
        assert!(Window::parse(&d(&[]), "08:00-18:00", "UTC").is_err());
        assert!(Window::parse(&d(&["funday"]), "08:00-18:00", "UTC").is_err());
        assert!(Window::parse(&d(&["mon"]), "8-18", "UTC").is_err());
        assert!(Window::parse(&d(&["mon"]), "08:00-08:00", "UTC").is_err());
        assert!(Window::parse(&d(&["mon"]), "08:00-25:00", "UTC").is_err());
        assert!(Window::parse(&d(&["mon"]), "08:00-18:00", "Mars/Olympus").is_err());
    }
}
