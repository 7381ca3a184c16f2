//! Durations and times: what a user types at the sudo prompt or to jitctl (`15m`, `1h30m`),
//! the times jitd formats into sudoers (`NOTAFTER=`) and messages, and a role's window.

use jit_proto::{MAX_DURATION_SECS, format_duration, format_rfc3339, format_time_short};
use jitd::sudoers::sudoers_time;
use jitd::window::Window;

/// `YYYY-MM-DDTHH:MM:SSZ`.
fn is_rfc3339_seconds(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

fn i64_at(data: &[u8], at: usize) -> i64 {
    let mut b = [0u8; 8];
    for (i, v) in data.iter().skip(at).take(8).enumerate() {
        b[i] = *v;
    }
    i64::from_le_bytes(b)
}

pub fn fuzz(data: &[u8]) {
    // Any two times, from the first 16 bytes: formatting never fails and keeps its shape.
    let (a, b) = (i64_at(data, 0), i64_at(data, 8));
    for t in [a, b, a.wrapping_add(b), a.saturating_sub(1)] {
        let full = format_rfc3339(t);
        assert!(is_rfc3339_seconds(&full), "format_rfc3339({t}) = {full:?}");
        let s = sudoers_time(t);
        assert!(
            s.len() == 15 && s.ends_with('Z') && s[..14].bytes().all(|c| c.is_ascii_digit()),
            "sudoers_time({t}) = {s:?}"
        );
        let short = format_time_short(t, b);
        assert!(
            short.ends_with("UTC") || is_rfc3339_seconds(&short),
            "{short:?}"
        );
    }
    // Order is kept where it can be shown: sudoers compares NOTAFTER as a string.
    if (0..=253_402_300_799).contains(&a) && (0..=253_402_300_799).contains(&b) && a < b {
        assert!(sudoers_time(a) < sudoers_time(b), "{a} {b}");
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A typed duration: accepted means whole seconds in (0, 366 days], and what jitd shows
    // for it reads back as the same duration.
    if let Ok(secs) = jit_proto::parse_duration(text) {
        assert!(secs > 0 && secs <= MAX_DURATION_SECS, "{text:?} -> {secs}");
        let shown = format_duration(secs);
        assert_eq!(
            jit_proto::parse_duration(&shown),
            Ok(secs),
            "{text:?} -> {secs} -> {shown:?}"
        );
    }
    // A window: `days;hours;timezone`.
    let mut parts = text.splitn(3, ';');
    let (days, hours, tz) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let days: Vec<String> = days.split(',').map(str::to_string).collect();
    if let Ok(w) = Window::parse(&days, hours, tz) {
        let _ = w.describe();
        for t in [a, b] {
            // Open now: it ends later than now (or never within reach).
            if let Some(end) = w.end_if_open(t) {
                assert!(end > t, "window {text:?} open at {t} ends at {end}");
            }
        }
    }
}
