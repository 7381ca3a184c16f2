//! The contract of the JIT access system: what jitd serves on the D-Bus system bus and on
//! its PAM socket.
//!
//! jitd serves it; jitctl and pam_jit call it. Nothing here knows about jitd's internals:
//! names, wire types, error names, proxies, and the small formatting helpers every side
//! must agree on (durations, timestamps). Without the `dbus` feature (on by default) only
//! what the PAM socket needs is built: pam_jit's fast path links no bus code.
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};
use std::time::{Duration, UNIX_EPOCH};
#[cfg(feature = "dbus")]
use zbus::Type;

#[cfg(feature = "dbus")]
mod dbus;
mod error;
pub mod fleet;
pub mod text;
pub mod wire;

#[cfg(feature = "dbus")]
pub use dbus::*;
pub use error::*;

/// The longest duration anything in the system can be: a role's `max_duration`, a
/// request, an extension, a pending timeout. Longer input is refused where it is parsed
/// (policy, jitctl, the PAM prompt) and checked again in jitd, so no arithmetic on a time
/// can overflow and no time can fall outside what the formats below can write.
pub const MAX_DURATION_SECS: u64 = 366 * 86_400;

/// Well-known bus name owned by jitd. Only root may own it (bus policy).
pub const BUS_NAME: &str = "org.jit.Jitd";
/// The one object jitd serves.
pub const OBJECT_PATH: &str = "/org/jit/Jitd";
/// User-facing interface: every local user may call it; jitd authorizes per method.
pub const USER_INTERFACE: &str = "org.jit.Jitd.User1";
/// PAM interface: callable by uid 0 only (bus policy, and re-checked by jitd).
pub const PAM_INTERFACE: &str = "org.jit.Jitd.Pam1";
/// Notifier interface: callable by the notifier agent's user only (`jit-notifyd`, running
/// as `jit-notify`; bus policy, and re-checked by jitd).
pub const NOTIFY_INTERFACE: &str = "org.jit.Jitd.Notify1";
/// The system user the notifier agent runs as, unless jitd is told otherwise.
pub const NOTIFIER_USER: &str = "jit-notify";
/// The signal jitd sends to each `Watch`ing caller, addressed to that caller only.
pub const EVENT_SIGNAL: &str = "Event";
/// The version of the event document (`jitctl watch --json`, notifier programs' input).
pub const EVENT_SCHEMA: &str = "jit.event/1";
/// The system bus socket, used when no address is given.
pub const SYSTEM_BUS_ADDRESS: &str = "unix:path=/run/dbus/system_bus_socket";

/// Why policy refused a request: a stable code for scripts (`jitctl --json` prints it as
/// `code`) and a D-Bus error name of its own, `org.jit.Jitd.Error.Refused.<Name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// The user may not request the role.
    NotEligible,
    /// Longer than the role allows (or than any duration may be).
    Duration,
    /// No reason, or only blanks.
    ReasonRequired,
    /// The reason is too short or too long for the role.
    ReasonLength,
    /// The reason (or a comment) holds an invisible, control or formatting character.
    ReasonCharacters,
    /// The reason does not match the role's `reason_pattern`.
    ReasonPattern,
    /// The role's reason validator refused, or gave no answer.
    Validator,
    /// The role's change window is closed.
    Window,
    /// The role does not allow break-glass.
    BreakGlass,
    /// The user has as many pending requests as `max_pending_per_user` allows.
    MaxPending,
    /// The user holds as many grants as `max_active_per_user` allows.
    MaxActivePerUser,
    /// The role has as many active grants as its `max_active` allows.
    MaxActive,
    /// Separation of duties: the user holds (or waits for) a conflicting role.
    Separation,
    /// The user already holds, or waits for, this role (or this extension).
    Duplicate,
    /// More time than `max_total_duration` (or the window) leaves.
    MaxTotal,
    /// The caller has as many waits or calls in progress as one caller may.
    Busy,
    /// A refusal this version does not know by name.
    Policy,
}

impl Refusal {
    pub const ALL: [Refusal; 17] = [
        Refusal::NotEligible,
        Refusal::Duration,
        Refusal::ReasonRequired,
        Refusal::ReasonLength,
        Refusal::ReasonCharacters,
        Refusal::ReasonPattern,
        Refusal::Validator,
        Refusal::Window,
        Refusal::BreakGlass,
        Refusal::MaxPending,
        Refusal::MaxActivePerUser,
        Refusal::MaxActive,
        Refusal::Separation,
        Refusal::Duplicate,
        Refusal::MaxTotal,
        Refusal::Busy,
        Refusal::Policy,
    ];

    /// The stable code: `max_active`, `reason_pattern`, ...
    pub fn code(self) -> &'static str {
        self.names().0
    }

    /// The D-Bus error name.
    pub fn error_name(self) -> &'static str {
        self.names().1
    }

    fn names(self) -> (&'static str, &'static str) {
        match self {
            Refusal::NotEligible => ("not_eligible", "org.jit.Jitd.Error.Refused.NotEligible"),
            Refusal::Duration => ("duration", "org.jit.Jitd.Error.Refused.Duration"),
            Refusal::ReasonRequired => (
                "reason_required",
                "org.jit.Jitd.Error.Refused.ReasonRequired",
            ),
            Refusal::ReasonLength => ("reason_length", "org.jit.Jitd.Error.Refused.ReasonLength"),
            Refusal::ReasonCharacters => (
                "reason_characters",
                "org.jit.Jitd.Error.Refused.ReasonCharacters",
            ),
            Refusal::ReasonPattern => {
                ("reason_pattern", "org.jit.Jitd.Error.Refused.ReasonPattern")
            }
            Refusal::Validator => ("validator", "org.jit.Jitd.Error.Refused.Validator"),
            Refusal::Window => ("window", "org.jit.Jitd.Error.Refused.Window"),
            Refusal::BreakGlass => ("break_glass", "org.jit.Jitd.Error.Refused.BreakGlass"),
            Refusal::MaxPending => (
                "max_pending_per_user",
                "org.jit.Jitd.Error.Refused.MaxPending",
            ),
            Refusal::MaxActivePerUser => (
                "max_active_per_user",
                "org.jit.Jitd.Error.Refused.MaxActivePerUser",
            ),
            Refusal::MaxActive => ("max_active", "org.jit.Jitd.Error.Refused.MaxActive"),
            Refusal::Separation => ("separation", "org.jit.Jitd.Error.Refused.Separation"),
            Refusal::Duplicate => ("duplicate", "org.jit.Jitd.Error.Refused.Duplicate"),
            Refusal::MaxTotal => ("max_total_duration", "org.jit.Jitd.Error.Refused.MaxTotal"),
            Refusal::Busy => ("busy", "org.jit.Jitd.Error.Refused.Busy"),
            Refusal::Policy => ("policy", "org.jit.Jitd.Error.Refused"),
        }
    }

    /// The refusal a D-Bus error name stands for, if it is one.
    pub fn from_error_name(name: &str) -> Option<Refusal> {
        if let Some(r) = Refusal::ALL.into_iter().find(|r| r.error_name() == name) {
            return Some(r);
        }
        // A refusal a newer jitd knows and this client does not.
        name.starts_with("org.jit.Jitd.Error.Refused.")
            .then_some(Refusal::Policy)
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// The lifecycle of a request. A grant is a request in state `Active`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Pending,
    Active,
    Denied,
    Expired,
    Revoked,
    Released,
    Cancelled,
    /// An extension request whose time was added to its grant.
    Applied,
}

impl State {
    pub const ALL: [State; 8] = [
        State::Pending,
        State::Active,
        State::Denied,
        State::Expired,
        State::Revoked,
        State::Released,
        State::Cancelled,
        State::Applied,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Active => "active",
            State::Denied => "denied",
            State::Expired => "expired",
            State::Revoked => "revoked",
            State::Released => "released",
            State::Cancelled => "cancelled",
            State::Applied => "applied",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Terminal states can never change again.
    pub fn is_terminal(self) -> bool {
        !matches!(self, State::Pending | State::Active)
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role as the caller may request it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "dbus", derive(Type))]
pub struct RoleInfo {
    pub name: String,
    pub description: String,
    /// Distinct approvals needed; 0 means self-service.
    pub approvals: u32,
    /// Approvers as written in the policy (`user`, `%group`).
    pub approvers: Vec<String>,
    pub max_duration_secs: u64,
    pub default_duration_secs: u64,
    pub commands: Vec<String>,
    pub run_as: String,
    pub ssh: bool,
    /// Empty when the role has no pattern.
    pub reason_pattern: String,
    /// Shortest and longest reason accepted.
    pub reason_min_length: u32,
    pub reason_max_length: u32,
    /// An emergency self-grant is allowed (reviewed afterwards).
    pub break_glass: bool,
    /// Longest a grant may last counting every extension.
    pub max_total_secs: u64,
    /// "mon-fri 08:00-18:00 Europe/Berlin"; empty when the role has no window.
    pub window: String,
    /// Whether the window is open now (always true without a window).
    pub window_open: bool,
    /// The grant is an ephemeral account of its own, logged into with the requester's SSH
    /// keys (`jitctl request` sends them).
    #[serde(default)]
    pub account: bool,
}

impl RoleInfo {
    /// "up to 1h, no approval" / "1 approval from %sre".
    pub fn summary(&self) -> String {
        let max = format_duration(self.max_duration_secs);
        let mut out = if self.approvals == 0 {
            format!("up to {max}, no approval")
        } else {
            let plural = if self.approvals == 1 { "" } else { "s" };
            format!(
                "up to {max}, {} approval{plural} from {}",
                self.approvals,
                self.approvers.join(", ")
            )
        };
        if !self.window.is_empty() {
            let open = if self.window_open {
                "open"
            } else {
                "closed now"
            };
            out.push_str(&format!(", window {} ({open})", self.window));
        }
        if self.break_glass {
            out.push_str(", break-glass allowed");
        }
        out
    }
}

/// A request (and, when active, the grant it became).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "dbus", derive(Type))]
pub struct RequestInfo {
    pub id: u64,
    pub user: String,
    pub uid: u32,
    pub role: String,
    /// One of [`State`]'s names.
    pub state: String,
    pub reason: String,
    pub duration_secs: u64,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds of the last state change.
    pub updated_at: i64,
    /// Unix seconds; 0 while the request is pending or if it never became active.
    pub not_after: i64,
    pub approvals_required: u32,
    /// Names of the distinct approvers so far.
    pub approved_by: Vec<String>,
    /// Approvers as written in the policy, for messages ("waiting for %sre").
    pub approvers: Vec<String>,
    /// Who denied/revoked and why; empty otherwise.
    pub decided_by: String,
    pub decision_reason: String,
    /// Where the request came from: the PAM service for pam_jit ("sudo", "sudo-i", "sshd"),
    /// "bus" for a D-Bus caller (jitctl or any other).
    pub service: String,
    pub tty: String,
    /// "grant", "break-glass" or "extension".
    pub kind: String,
    /// For an extension: the grant it extends; 0 otherwise.
    pub extends: u64,
    /// Unix seconds the grant became active; 0 if it never did.
    pub granted_at: i64,
    /// For break-glass grants: who acknowledged it, when and with what comment.
    pub reviewed_by: String,
    pub reviewed_at: i64,
    pub review_comment: String,
    /// Who else may decide once the request has waited long enough (`%managers`), and from
    /// when (Unix seconds); empty and 0 for a role without escalation.
    pub escalation_approvers: Vec<String>,
    pub escalates_at: i64,
    /// What the grant holds: its sudo rule's commands and whom they run as (empty: no
    /// rule), and the supplementary groups it gives its holder.
    #[serde(default)]
    pub commands: Vec<String>,
    #[serde(default)]
    pub run_as: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    /// The grant's ephemeral account, as jitd tells it (`jit-alice-17 (uid ..., home ...)`);
    /// empty when the grant is not an account.
    #[serde(default)]
    pub account: String,
    /// The SSH keys the account is made with, as approvers judge them: each key's
    /// fingerprint and comment (`SHA256:... alice@laptop`).
    #[serde(default)]
    pub ssh_keys: Vec<String>,
}

impl RequestInfo {
    pub fn state(&self) -> Option<State> {
        State::parse(&self.state)
    }
}

/// A fleet request made at a PAM prompt, as this host sees it: its fleet id, and its state
/// here as a request (`pending` until this host applies it; then the local grant that holds
/// it, whose `id` is the local one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "dbus", derive(Type))]
pub struct FleetAnswer {
    pub id: String,
    pub request: RequestInfo,
}

/// Answer to "does this user hold an active grant?"
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "dbus", derive(Type))]
pub struct GrantCheck {
    pub active: bool,
    /// The grant with the latest `not_after` among the matching ones; 0 when none.
    pub request_id: u64,
    pub role: String,
    pub not_after: i64,
}

/// One delivery of an event to a notifier program, handed to the notifier agent: what to
/// run (the policy's `[[notifier]]` entry as it is now), and the event document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "dbus", derive(Type))]
pub struct Delivery {
    pub id: u64,
    pub notifier: String,
    /// Absolute program path and fixed arguments: run without a shell.
    pub command: Vec<String>,
    pub timeout_ms: u64,
    /// The event kind (`submitted`, ...).
    pub event: String,
    pub request_id: u64,
    /// This attempt's number, from 1.
    pub attempt: u32,
    /// The event document (`jit.event/1`), for the program's standard input.
    pub body: String,
}

/// Daemon status for `jitctl status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "dbus", derive(Type))]
pub struct StatusInfo {
    pub version: String,
    pub started_at: i64,
    pub policy_path: String,
    pub roles: u32,
    pub active_grants: u32,
    pub pending_requests: u32,
    pub sudoers_dir: String,
    /// Empty when healthy; otherwise the last error that stopped new grants.
    pub last_error: String,
    /// Break-glass grants no approver has acknowledged yet.
    pub unreviewed_break_glass: u32,
    /// Root and approvers: what is wrong with the audit trail (a broken chain, a missing
    /// seal, sealing stopped); empty when nothing is.
    pub audit_error: String,
    /// Root and approvers: how the audit trail stands (sealed or not, how far the daemon's
    /// own check has come, a syslog mirror that is down).
    pub audit_notes: Vec<String>,
    /// Root and approvers: notifiers whose deliveries are failing or were given up, one
    /// line each; empty when every notifier delivers.
    pub notifier_notes: Vec<String>,
}

/// One record of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "dbus", derive(Type))]
pub struct AuditRecord {
    pub seq: u64,
    pub at: i64,
    pub actor: String,
    pub actor_uid: u32,
    /// Where it came from: `service=... tty=... rhost=...` (PAM), `bus pid=... tty=...`
    /// (a D-Bus caller), `jitd`; empty in records from before jitd kept it.
    pub origin: String,
    pub action: String,
    pub request_id: u64,
    pub detail: String,
    pub hash: String,
}

/// Result of recomputing the audit hash chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "dbus", derive(Type))]
pub struct AuditVerify {
    pub ok: bool,
    pub records: u64,
    /// 0 when the chain is intact.
    pub first_bad_seq: u64,
    pub message: String,
}

/// Where a PAM call comes from, as the PAM items say (for the audit trail only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "dbus", derive(Type))]
pub struct PamOrigin {
    /// PAM_SERVICE: `sudo`, `sudo-i`, `sshd`...
    pub service: String,
    pub tty: String,
    pub rhost: String,
}

/// A request pam_jit submits for the PAM user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "dbus", derive(Type))]
pub struct PamRequest {
    pub user: String,
    pub role: String,
    /// 0: the role's default.
    pub duration_secs: u64,
    pub reason: String,
    pub origin: PamOrigin,
}

/// A session pam_jit registers: which process, for whom, and what could have authorised it.
/// jitd cannot see which sudoers rule sudo matched, so it binds the session to the grant
/// that ends first among those that could have: the holder's active grants whose role runs
/// as `target` (sudo), or whose role admits ssh logins (`ssh`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "dbus", derive(Type))]
pub struct SessionOpen {
    /// The grant holder: sudo's invoking user (PAM_RUSER), sshd's PAM_USER.
    pub user: String,
    /// The user the command runs as (sudo's PAM_USER in the session phase); empty for ssh.
    pub target: String,
    /// An ssh login: only grants of roles with `ssh = true` count.
    pub ssh: bool,
    /// The process that runs the session (sudo, or sshd's session process).
    pub pid: u32,
    pub origin: PamOrigin,
}

/// Parses "15m", "1h30m", "90s", "2h 5m". Zero is refused.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let t = text.trim();
    // Shown in messages as typed, but never raw: a control character from the prompt or
    // the command line would reach the terminal.
    let shown = crate::text::escape(t);
    if t.is_empty() {
        return Err("empty duration".into());
    }
    if t.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "invalid duration '{shown}': add a unit, as in {shown}s, {shown}m or {shown}h (examples: 15m, 1h, \
             1h30m)"
        ));
    }
    let d = humantime::parse_duration(t).map_err(|e| {
        let e = crate::text::escape(&e.to_string());
        format!("invalid duration '{shown}': {e} (examples: 15m, 1h, 1h30m)")
    })?;
    if d.subsec_nanos() != 0 {
        return Err(format!(
            "invalid duration '{shown}': whole seconds only (examples: 15m, 1h, 1h30m)"
        ));
    }
    match d.as_secs() {
        0 => Err(format!(
            "invalid duration '{shown}': must be more than zero"
        )),
        s if s > MAX_DURATION_SECS => Err(format!(
            "invalid duration '{shown}': at most {} (366 days)",
            format_duration(MAX_DURATION_SECS)
        )),
        s => Ok(s),
    }
}

/// "1h30m", "15m", "45s".
pub fn format_duration(secs: u64) -> String {
    if secs == 0 {
        return "0s".into();
    }
    let (d, rest) = (secs / 86_400, secs % 86_400);
    let (h, rest) = (rest / 3600, rest % 3600);
    let (m, s) = (rest / 60, rest % 60);
    let mut out = String::new();
    for (v, unit) in [(d, "d"), (h, "h"), (m, "m"), (s, "s")] {
        if v > 0 {
            out.push_str(&format!("{v}{unit}"));
        }
    }
    out
}

/// The last second RFC 3339 (four-digit years) can write: 9999-12-31T23:59:59Z.
const LAST_RFC3339_SECOND: u64 = 253_402_300_799;

/// RFC 3339 in UTC with seconds: "2026-11-21T14:42:00Z". Times before the epoch clamp to
/// it, times after year 9999 to its last second: formatting never fails.
pub fn format_rfc3339(unix: i64) -> String {
    let secs = u64::try_from(unix).unwrap_or(0).min(LAST_RFC3339_SECOND);
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

/// "14:42 UTC" for prompts on the same day, with the date otherwise.
pub fn format_time_short(unix: i64, now: i64) -> String {
    let full = format_rfc3339(unix);
    let same_day = full.get(..10) == Some(&format_rfc3339(now)[..10]);
    match (same_day, full.get(11..16), full.get(..10)) {
        (true, Some(hm), _) => format!("{hm} UTC"),
        (false, Some(hm), Some(date)) => format!("{date} {hm} UTC"),
        _ => full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_format_round_trip() {
        assert_eq!(parse_duration("15m"), Ok(900));
        assert_eq!(parse_duration("1h30m"), Ok(5400));
        assert_eq!(parse_duration(" 2h 5m "), Ok(7500));
        assert_eq!(format_duration(5400), "1h30m");
        assert_eq!(format_duration(45), "45s");
        assert_eq!(format_duration(86_400 + 60), "1d1m");
        for s in [1u64, 59, 60, 61, 3599, 3600, 86_399, 90_061] {
            assert_eq!(parse_duration(&format_duration(s)), Ok(s));
        }
    }

    #[test]
    fn given_bad_duration_when_parsed_then_error_says_what_is_expected() {
        for bad in ["", "0s", "abc", "10", "-5m", "1.5ms"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(!e.is_empty(), "{bad}");
        }
    }

    #[test]
    fn given_durations_past_the_ceiling_when_parsed_then_refused() {
        assert_eq!(parse_duration("366d"), Ok(MAX_DURATION_SECS));
        for bad in ["367d", "10000y", "9000y", "2y"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains("at most 366d"), "{bad}: {e}");
        }
    }

    #[test]
    fn given_a_duration_with_control_characters_when_refused_then_the_message_escapes_them() {
        // Found by the conversation fuzz target: what was typed at the sudo prompt came back
        // in the refusal raw, terminal escapes included.
        for typed in ["\u{13}", "5\u{1b}[2J", "1h\u{7}", "3 \u{1b}]0;x\u{7}m"] {
            let e = parse_duration(typed).unwrap_err();
            assert!(!e.chars().any(char::is_control), "{typed:?} -> {e:?}");
        }
    }

    #[test]
    fn given_times_past_year_9999_when_formatted_then_clamped_not_panicking() {
        assert_eq!(format_rfc3339(i64::MAX), "9999-12-31T23:59:59Z");
        assert_eq!(format_rfc3339(i64::MIN), "1970-01-01T00:00:00Z");
        assert!(format_time_short(i64::MAX, 0).starts_with("9999-12-31"));
    }

    #[test]
    fn times_format_in_utc() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(1_795_272_120), "2026-11-21T14:42:00Z");
        assert_eq!(format_time_short(1_795_272_120, 1_795_272_000), "14:42 UTC");
        assert_eq!(
            format_time_short(1_795_272_120, 1_795_100_000),
            "2026-11-21 14:42 UTC"
        );
    }

    #[test]
    fn every_refusal_has_its_own_code_and_error_name_and_round_trips() {
        let mut codes = std::collections::HashSet::new();
        let mut names = std::collections::HashSet::new();
        for r in Refusal::ALL {
            assert!(codes.insert(r.code()), "{r:?}");
            assert!(names.insert(r.error_name()), "{r:?}");
            assert_eq!(Refusal::from_error_name(r.error_name()), Some(r));
            #[cfg(feature = "dbus")]
            assert!(
                zbus::names::ErrorName::try_from(r.error_name()).is_ok(),
                "{r:?}"
            );
        }
        assert_eq!(
            Refusal::from_error_name("org.jit.Jitd.Error.Refused.SomethingNew"),
            Some(Refusal::Policy)
        );
        assert_eq!(
            Refusal::from_error_name("org.jit.Jitd.Error.NotFound"),
            None
        );
    }

    #[test]
    fn states_round_trip_and_terminal_states_are_final() {
        for s in State::ALL {
            assert_eq!(State::parse(s.as_str()), Some(s));
        }
        assert!(!State::Pending.is_terminal());
        assert!(!State::Active.is_terminal());
        assert!(State::Revoked.is_terminal());
        assert_eq!(State::parse("bogus"), None);
    }
}
