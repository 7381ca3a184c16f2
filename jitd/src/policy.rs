//! The policy file (TOML) and the decisions it drives.
//!
//! Loading is strict: an unknown key, a bad name, a pattern that does not compile or a
//! contradiction is an error with file, line and column; jitd never runs on a
//! half-understood policy. Decisions are pure: users and groups come from an injected
//! [`Directory`].

use crate::directory::Directory;
use crate::error::{Error, Refusal, Result};
use crate::model::{Ask, Kind};
use crate::names::{self, Command, GroupName, RoleName, UserName};
use crate::window::Window;
use jit_proto::{RoleInfo, State, format_duration, format_rfc3339, parse_duration};
use regex::Regex;
use serde::Deserialize;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;
use toml::Spanned;

/// Longest reason accepted unless the policy says otherwise.
pub const DEFAULT_REASON_MAX: usize = 500;
/// Shortest reason accepted unless the policy says otherwise.
pub const DEFAULT_REASON_MIN: usize = 1;
/// How long a request may stay pending unless the role says otherwise.
pub const DEFAULT_PENDING_TIMEOUT: u64 = 3600;
/// Most pending requests one user may have at once unless the policy says otherwise.
pub const DEFAULT_MAX_PENDING_PER_USER: u32 = 5;
/// Where sudo records sessions of roles with `log_io`, unless `[settings] iolog_dir` says.
pub const DEFAULT_IOLOG_DIR: &str = "/var/log/sudo-io/jit";
/// How long a reason validator may run unless the role says otherwise.
pub const DEFAULT_VALIDATOR_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a reason validator may be given.
pub const MAX_VALIDATOR_TIMEOUT: Duration = Duration::from_secs(60);

/// A requester or approver as written in the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    User(UserName),
    Group(GroupName),
}

impl Principal {
    fn parse(s: &str) -> std::result::Result<Principal, names::NameError> {
        match s.strip_prefix('%') {
            Some(g) => GroupName::new(g).map(Principal::Group),
            None => UserName::new(s).map(Principal::User),
        }
    }

    pub fn spec(&self) -> String {
        match self {
            Principal::User(u) => u.to_string(),
            Principal::Group(g) => format!("%{g}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Role {
    pub name: RoleName,
    pub description: String,
    pub commands: Vec<Command>,
    pub run_as: String,
    pub requesters: Vec<Principal>,
    pub approvers: Vec<Principal>,
    pub approvals: u32,
    pub max_duration: u64,
    pub default_duration: u64,
    pub reason_pattern: Option<Regex>,
    pub ssh: bool,
    pub reauth: bool,
    pub pending_timeout: u64,
    pub run_as_list: Vec<UserName>,
    pub reason_min: usize,
    pub reason_max: usize,
    pub validator: Option<Validator>,
    pub break_glass: bool,
    /// Longest a grant may last from activation, counting every extension.
    pub max_total: u64,
    pub window: Option<Window>,
    /// Whether a grant may run past the end of the window it started in.
    pub outlive_window: bool,
    /// Most simultaneous active grants of this role (all users together).
    pub max_active: Option<u32>,
    /// After this long without a decision, `escalation_approvers` may approve too.
    pub escalate_after: Option<u64>,
    pub escalation_approvers: Vec<Principal>,
    /// sudo I/O logging (`LOG_INPUT:`/`LOG_OUTPUT:`) on the role's rule.
    pub log_io: bool,
}

/// An external command that accepts or refuses a reason (e.g. checks a ticket).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validator {
    /// Absolute program path and fixed arguments; run without a shell.
    pub command: Vec<String>,
    pub timeout: Duration,
    /// When the validator cannot give an answer (timeout, crash, cannot run): accept on
    /// `reason_pattern` alone instead of refusing.
    pub fallback_to_pattern: bool,
}

/// Roles that one user may not hold (or approve) together.
#[derive(Debug, Clone)]
pub struct Separation {
    pub roles: Vec<String>,
    pub description: String,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub path: String,
    pub roles: Vec<Role>,
    pub reason_max: usize,
    pub reason_min: usize,
    pub max_active_per_user: Option<u32>,
    pub max_pending_per_user: u32,
    /// Where sudo records sessions of roles with `log_io` (one directory per user below).
    pub iolog_dir: String,
    pub separations: Vec<Separation>,
    /// Problems that depend on group membership today, not on the file: reported, not fatal.
    pub warnings: Vec<PolicyError>,
}

/// What a reason validator answered, as the caller ran it (outside jitd's lock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The role has no validator, or it was not run.
    NotRun,
    Accepted,
    /// The validator refused, with its message.
    Refused(String),
    /// No answer: timeout, crash, could not start.
    Failed(String),
}

/// One open request of a user, as limits and separation of duties see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held<'a> {
    pub role: &'a str,
    pub state: State,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    settings: Option<RawSettings>,
    #[serde(default)]
    role: Vec<Spanned<RawRole>>,
    #[serde(default)]
    separation: Vec<Spanned<RawSeparation>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    reason_max_length: Option<Spanned<i64>>,
    reason_min_length: Option<Spanned<i64>>,
    max_active_per_user: Option<Spanned<i64>>,
    max_pending_per_user: Option<Spanned<i64>>,
    iolog_dir: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeparation {
    roles: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    description: String,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawValidator {
    command: Spanned<Vec<String>>,
    #[serde(default)]
    timeout: Option<Spanned<String>>,
    #[serde(default)]
    on_failure: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    days: Vec<String>,
    hours: String,
    timezone: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    commands: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    run_as: Option<Spanned<OneOrMany>>,
    requesters: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    approvers: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    approvals: Option<Spanned<i64>>,
    max_duration: Spanned<String>,
    #[serde(default)]
    default_duration: Option<Spanned<String>>,
    #[serde(default)]
    reason_pattern: Option<Spanned<String>>,
    #[serde(default)]
    ssh: bool,
    #[serde(default)]
    reauth: bool,
    #[serde(default)]
    pending_timeout: Option<Spanned<String>>,
    #[serde(default)]
    reason_min_length: Option<Spanned<i64>>,
    #[serde(default)]
    reason_max_length: Option<Spanned<i64>>,
    #[serde(default)]
    reason_validator: Option<Spanned<RawValidator>>,
    #[serde(default)]
    break_glass: Option<Spanned<bool>>,
    #[serde(default)]
    max_total_duration: Option<Spanned<String>>,
    #[serde(default)]
    window: Option<Spanned<RawWindow>>,
    #[serde(default)]
    outlive_window: Option<Spanned<bool>>,
    #[serde(default)]
    max_active: Option<Spanned<i64>>,
    #[serde(default)]
    escalate_after: Option<Spanned<String>>,
    #[serde(default)]
    escalation_approvers: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    log_io: bool,
}

/// A policy error with its position, printed as `file:line:column: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

impl std::error::Error for PolicyError {}

fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
}

impl Ctx<'_> {
    fn err(&self, span: Range<usize>, message: impl Into<String>) -> PolicyError {
        let (line, column) = position(self.text, span.start);
        PolicyError {
            file: self.file.to_string(),
            line,
            column,
            message: message.into(),
        }
    }
}

impl Policy {
    /// Reads and validates the policy file.
    pub fn load(path: &str, dir: &dyn Directory) -> std::result::Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError {
            file: path.to_string(),
            line: 0,
            column: 0,
            message: format!("cannot read policy: {e}"),
        })?;
        Policy::parse(path, &text, dir)
    }

    /// Parses and validates policy text; `file` is only used in messages.
    pub fn parse(
        file: &str,
        text: &str,
        dir: &dyn Directory,
    ) -> std::result::Result<Policy, PolicyError> {
        let ctx = Ctx { file, text };
        let raw: RawPolicy = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            ctx.err(span, e.message().trim().to_string())
        })?;
        let settings = raw.settings.unwrap_or(RawSettings {
            reason_max_length: None,
            reason_min_length: None,
            max_active_per_user: None,
            max_pending_per_user: None,
            iolog_dir: None,
        });
        let reason_max = bounded(
            &ctx,
            "reason_max_length",
            settings.reason_max_length,
            1,
            4096,
        )?
        .map_or(DEFAULT_REASON_MAX, usize_of);
        let reason_min = bounded(
            &ctx,
            "reason_min_length",
            settings.reason_min_length,
            1,
            4096,
        )?
        .map_or(DEFAULT_REASON_MIN, usize_of);
        if reason_min > reason_max {
            return Err(ctx.err(
                0..0,
                format!(
                    "[settings] reason_min_length {reason_min} is larger than reason_max_length {reason_max}"
                ),
            ));
        }
        let max_active_per_user = bounded(
            &ctx,
            "max_active_per_user",
            settings.max_active_per_user,
            1,
            1000,
        )?;
        let max_pending_per_user = bounded(
            &ctx,
            "max_pending_per_user",
            settings.max_pending_per_user,
            1,
            100,
        )?
        .unwrap_or(DEFAULT_MAX_PENDING_PER_USER);
        let iolog_dir = match settings.iolog_dir {
            Some(d) => {
                names::validate_dir_path("[settings] iolog_dir", d.get_ref())
                    .map_err(|e| ctx.err(d.span(), e))?;
                d.into_inner()
            }
            None => DEFAULT_IOLOG_DIR.to_string(),
        };
        let defaults = Defaults {
            reason_min,
            reason_max,
        };
        let mut roles: Vec<Role> = Vec::new();
        let mut run_as_spans = Vec::new();
        let mut warnings = Vec::new();
        for spanned in raw.role {
            let span = spanned.get_ref().name.span();
            let run_as_span = spanned
                .get_ref()
                .run_as
                .as_ref()
                .map_or_else(|| span.clone(), Spanned::span);
            let role = validate_role(&ctx, spanned.into_inner(), &defaults, dir, &mut warnings)?;
            if roles.iter().any(|r| r.name == role.name) {
                return Err(ctx.err(span, format!("duplicate role '{}'", role.name)));
            }
            roles.push(role);
            run_as_spans.push(run_as_span);
        }
        if roles.is_empty() {
            return Err(ctx.err(0..0, "no [[role]] defined: nothing could ever be granted"));
        }
        check_run_as_principals(&ctx, &roles, &run_as_spans, dir, &mut warnings)?;
        let mut separations = Vec::new();
        for sep in raw.separation {
            let span = sep.span();
            let sep = sep.into_inner();
            let mut names: Vec<String> = Vec::new();
            for r in sep.roles.into_inner() {
                if !roles.iter().any(|x| &x.name == r.get_ref()) {
                    return Err(ctx.err(
                        r.span(),
                        format!(
                            "[[separation]] names unknown role '{}'",
                            names::escape(r.get_ref())
                        ),
                    ));
                }
                if !names.contains(r.get_ref()) {
                    names.push(r.into_inner());
                }
            }
            if names.len() < 2 {
                return Err(ctx.err(span, "[[separation]] needs at least two different roles"));
            }
            let description = names::validate_text("description", &sep.description, 200)
                .unwrap_or_else(|_| names.join(" / "));
            separations.push(Separation {
                roles: names,
                description,
            });
        }
        Ok(Policy {
            path: file.to_string(),
            roles,
            reason_max,
            reason_min,
            max_active_per_user,
            max_pending_per_user,
            iolog_dir,
            separations,
            warnings,
        })
    }

    pub fn role(&self, name: &str) -> Result<&Role> {
        self.roles
            .iter()
            .find(|r| r.name == name)
            .ok_or_else(|| Error::NotFound(format!("unknown role '{}'", names::escape(name))))
    }

    /// Roles `user` may request, in policy order.
    pub fn requestable(&self, user: &str, dir: &dyn Directory) -> Result<Vec<&Role>> {
        let groups = user_groups(user, dir)?;
        Ok(self
            .roles
            .iter()
            .filter(|r| matches_any(&r.requesters, user, &groups))
            .collect())
    }

    /// Validates a request against the role: eligibility, kind, time window, duration,
    /// reason. Returns the duration (the role's default when 0 is asked) and the
    /// normalised reason. Limits, separation of duties and the validator are separate
    /// steps ([`Policy::check_limits`], [`Policy::check_separation`], [`Role::judge`]).
    pub fn check_request(
        &self,
        role: &Role,
        user: &str,
        ask: &Ask,
        now: i64,
        dir: &dyn Directory,
    ) -> Result<(u64, String)> {
        let (kind, duration, reason) = (ask.kind, ask.duration, ask.reason.as_str());
        let groups = user_groups(user, dir)?;
        if !matches_any(&role.requesters, user, &groups) {
            return Err(Error::refused(
                Refusal::NotEligible,
                format!("{user} may not request role '{}'", role.name),
            ));
        }
        match kind {
            Kind::BreakGlass if !role.break_glass => {
                return Err(Error::refused(
                    Refusal::BreakGlass,
                    format!(
                        "role '{}' does not allow break-glass; request it normally",
                        role.name
                    ),
                ));
            }
            // Break-glass is for emergencies: it ignores the change window (and is reviewed).
            Kind::BreakGlass => {}
            Kind::Grant | Kind::Extension => self.check_window(role, now)?,
        }
        let duration = if duration == 0 {
            role.default_duration
        } else {
            duration
        };
        if kind != Kind::Extension && duration > role.max_duration {
            return Err(Error::refused(
                Refusal::Duration,
                format!(
                    "duration {} exceeds the maximum of {} for role '{}'",
                    format_duration(duration),
                    format_duration(role.max_duration),
                    role.name
                ),
            ));
        }
        let reason = role.check_reason(reason)?;
        Ok((duration, reason))
    }

    /// Refuses when the role has a window and it is closed at `now`.
    pub fn check_window(&self, role: &Role, now: i64) -> Result<()> {
        match &role.window {
            Some(w) if w.end_if_open(now).is_none() => Err(Error::refused(
                Refusal::Window,
                format!(
                    "role '{}' may only be held within its window ({}); it is closed now",
                    role.name,
                    w.describe()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// When a grant of `role` that starts at `now` for `duration` ends: cut at the end of
    /// the window it starts in, unless the role lets grants outlive their window.
    pub fn grant_end(&self, role: &Role, kind: Kind, now: i64, duration: u64) -> i64 {
        let end = now.saturating_add(to_secs(duration));
        match (&role.window, role.outlive_window, kind) {
            (Some(w), false, Kind::Grant | Kind::Extension) => match w.end_if_open(now) {
                Some(close) => end.min(close),
                // Callers check the window first; closed means nothing at all.
                None => now,
            },
            _ => end,
        }
    }

    /// The new end of a grant that started at `granted_at`, now ending at `not_after`,
    /// extended by `by` at `now`: never past `granted_at + max_total`, never past the
    /// window's end unless the role allows it.
    pub fn extension_end(
        &self,
        role: &Role,
        granted_at: i64,
        not_after: i64,
        by: u64,
        now: i64,
    ) -> Result<i64> {
        let wanted = not_after.saturating_add(to_secs(by));
        let cap = granted_at.saturating_add(to_secs(role.max_total));
        if wanted > cap {
            let left = u64::try_from(cap.saturating_sub(not_after)).unwrap_or(0);
            return Err(Error::refused(
                Refusal::MaxTotal,
                format!(
                    "extending by {} would exceed role '{}''s maximum total of {} ({} left)",
                    format_duration(by),
                    role.name,
                    format_duration(role.max_total),
                    format_duration(left)
                ),
            ));
        }
        let end = match (&role.window, role.outlive_window) {
            (Some(w), false) => match w.end_if_open(now) {
                Some(close) => wanted.min(close),
                None => now,
            },
            _ => wanted,
        };
        if end <= not_after {
            return Err(Error::refused(
                Refusal::MaxTotal,
                format!(
                    "grant already runs to the end of role '{}''s window ({}) at {}",
                    role.name,
                    role.window
                        .as_ref()
                        .map(Window::describe)
                        .unwrap_or_default(),
                    format_rfc3339(not_after)
                ),
            ));
        }
        Ok(end)
    }

    /// Limits: pending requests and active grants per user, active grants per role.
    /// `held` is the user's open requests (extensions excluded), `role_active` how many
    /// grants of `role` are active now. `activating`: a grant would start now (only the
    /// active limits apply); otherwise a new request is being submitted.
    pub fn check_limits(
        &self,
        role: &Role,
        user: &str,
        held: &[Held<'_>],
        role_active: usize,
        activating: bool,
    ) -> Result<()> {
        let pending = held.iter().filter(|h| h.state == State::Pending).count();
        let active = held.iter().filter(|h| h.state == State::Active).count();
        if !activating && pending >= usize_of(self.max_pending_per_user) {
            return Err(Error::refused(
                Refusal::MaxPending,
                format!(
                    "{user} already has {pending} pending request(s), the most allowed \
                 (max_pending_per_user); wait for a decision or cancel one"
                ),
            ));
        }
        if let Some(max) = self.max_active_per_user
            && active >= usize_of(max)
        {
            return Err(Error::refused(
                Refusal::MaxActivePerUser,
                format!(
                    "{user} already holds {active} active grant(s), the most allowed \
                 (max_active_per_user); release one first"
                ),
            ));
        }
        if let Some(max) = role.max_active
            && role_active >= usize_of(max)
        {
            return Err(Error::refused(
                Refusal::MaxActive,
                format!(
                    "role '{}' already has {role_active} active grant(s), the most allowed (max_active)",
                    role.name
                ),
            ));
        }
        Ok(())
    }

    /// The separation rule, if any, that forbids one user holding `a` and `b` together.
    pub fn conflict(&self, a: &str, b: &str) -> Option<&Separation> {
        if a == b {
            return None;
        }
        self.separations
            .iter()
            .find(|s| s.roles.iter().any(|r| r == a) && s.roles.iter().any(|r| r == b))
    }

    /// Refuses `role` to a user who holds (or waits for) a role it conflicts with.
    pub fn check_separation(&self, role: &str, user: &str, held: &[Held<'_>]) -> Result<()> {
        for h in held {
            if let Some(sep) = self.conflict(role, h.role) {
                return Err(Error::refused(
                    Refusal::Separation,
                    format!(
                        "separation of duties ({}): {user} has role '{}' {} and may not also hold '{role}'",
                        sep.description,
                        h.role,
                        if h.state == State::Active {
                            "active"
                        } else {
                            "pending"
                        }
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Refuses an approver who holds (or waits for) a role that conflicts with `role`:
    /// roles that may not be held together may not be approved by their holder either.
    pub fn check_approver_separation(
        &self,
        role: &str,
        approver: &str,
        held: &[Held<'_>],
    ) -> Result<()> {
        for h in held {
            if let Some(sep) = self.conflict(role, h.role) {
                return Err(Error::NotAuthorized(format!(
                    "separation of duties ({}): {approver} has role '{}' and may not approve '{role}'",
                    sep.description, h.role
                )));
            }
        }
        Ok(())
    }

    /// Whether `user` may approve a request for `role` submitted at `created_at`: one of
    /// the approvers, or, once the request has waited `escalate_after`, one of the
    /// escalation approvers. Self-approval and separation are the caller's checks.
    pub fn may_approve(
        &self,
        role: &Role,
        user: &str,
        created_at: i64,
        now: i64,
        dir: &dyn Directory,
    ) -> Result<bool> {
        let groups = user_groups(user, dir)?;
        Ok(role.approver_kind(user, &groups, created_at, now).is_some())
    }

    /// What `user` may approve, resolving the user's groups once.
    pub fn approver_view(&self, user: &str, dir: &dyn Directory) -> Result<ApproverView> {
        let groups = user_groups(user, dir)?;
        let mut view = ApproverView::default();
        for r in &self.roles {
            if matches_any(&r.approvers, user, &groups) {
                view.direct.push(r.name.clone());
            } else if let Some(after) = r.escalate_after
                && matches_any(&r.escalation_approvers, user, &groups)
            {
                view.escalation.push((r.name.clone(), after));
            }
        }
        Ok(view)
    }
}

/// The roles one user approves: directly, or after a role's escalation delay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApproverView {
    pub direct: Vec<RoleName>,
    /// (role, escalate_after seconds)
    pub escalation: Vec<(RoleName, u64)>,
}

impl ApproverView {
    pub fn is_empty(&self) -> bool {
        self.direct.is_empty() && self.escalation.is_empty()
    }

    /// Whether a request for `role` made at `created_at` is the user's to decide at `now`.
    pub fn covers(&self, role: &str, created_at: i64, now: i64) -> bool {
        self.direct.iter().any(|r| r == role)
            || self
                .escalation
                .iter()
                .any(|(r, after)| r == role && now >= created_at.saturating_add(to_secs(*after)))
    }
}

impl Role {
    /// "approver" or "escalation approver" when `user` (in `groups`) may approve a request
    /// made at `created_at`; None otherwise.
    pub fn approver_kind(
        &self,
        user: &str,
        groups: &[String],
        created_at: i64,
        now: i64,
    ) -> Option<&'static str> {
        if matches_any(&self.approvers, user, groups) {
            return Some("approver");
        }
        match self.escalate_after {
            Some(after)
                if now >= created_at.saturating_add(to_secs(after))
                    && matches_any(&self.escalation_approvers, user, groups) =>
            {
                Some("escalation approver")
            }
            _ => None,
        }
    }

    /// Required, within the length bounds, no control characters, and matching the
    /// role's pattern if it has one. Returns the trimmed reason.
    pub fn check_reason(&self, reason: &str) -> Result<String> {
        let reason = String::from(names::Text::new("reason", reason, self.reason_max)?);
        let len = reason.chars().count();
        if len < self.reason_min {
            return Err(Error::refused(
                Refusal::ReasonLength,
                format!(
                    "reason is too short for role '{}' (at least {} characters, got {len})",
                    self.name, self.reason_min
                ),
            ));
        }
        if let Some(re) = &self.reason_pattern
            && !re.is_match(&reason)
        {
            return Err(Error::refused(
                Refusal::ReasonPattern,
                format!(
                    "reason must match {} for role '{}' (for example a ticket id)",
                    re.as_str(),
                    self.name
                ),
            ));
        }
        Ok(reason)
    }

    /// Applies the validator's verdict. Returns a note for the audit trail. Fails closed:
    /// a role with a validator that was not run, or that gave no answer, is refused unless
    /// the role allows the pattern-only fallback (the pattern was already checked).
    pub fn judge(&self, verdict: &Verdict) -> Result<String> {
        let Some(v) = &self.validator else {
            return Ok(String::new());
        };
        match verdict {
            Verdict::Accepted => Ok("validator=accepted".into()),
            Verdict::Refused(msg) => Err(Error::refused(
                Refusal::Validator,
                format!(
                    "reason refused by the validator of role '{}': {msg}",
                    self.name
                ),
            )),
            Verdict::Failed(e) if v.fallback_to_pattern => Ok(format!(
                "validator=failed ({e}); accepted on reason_pattern"
            )),
            Verdict::Failed(e) => Err(Error::refused(
                Refusal::Validator,
                format!(
                    "the reason could not be validated for role '{}' ({e}); request refused",
                    self.name
                ),
            )),
            Verdict::NotRun => Err(Error::refused(
                Refusal::Validator,
                format!(
                    "the reason validator of role '{}' was not run; request refused",
                    self.name
                ),
            )),
        }
    }
}

fn to_secs(d: u64) -> i64 {
    i64::try_from(d).unwrap_or(i64::MAX / 4)
}

fn usize_of(n: u32) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn user_groups(user: &str, dir: &dyn Directory) -> Result<Vec<String>> {
    dir.groups_of(user)
        .map_err(|e| Error::Internal(format!("cannot resolve groups: {e}")))
}

fn matches_any(list: &[Principal], user: &str, groups: &[String]) -> bool {
    list.iter().any(|p| match p {
        Principal::User(u) => u == user,
        Principal::Group(g) => groups.iter().any(|x| x == g),
    })
}

fn principals(
    ctx: &Ctx<'_>,
    list: Spanned<Vec<Spanned<String>>>,
    dir: &dyn Directory,
) -> std::result::Result<Vec<Principal>, PolicyError> {
    let mut out = Vec::new();
    for item in list.into_inner() {
        let p = Principal::parse(item.get_ref()).map_err(|e| ctx.err(item.span(), e))?;
        if let Principal::Group(g) = &p {
            match dir.group_exists(g) {
                Ok(true) => {}
                Ok(false) => {
                    return Err(ctx.err(
                        item.span(),
                        format!("unknown group '{g}': create it or remove it from the list"),
                    ));
                }
                Err(e) => return Err(ctx.err(item.span(), e)),
            }
        }
        out.push(p);
    }
    Ok(out)
}

fn duration(
    ctx: &Ctx<'_>,
    key: &str,
    value: &Spanned<String>,
) -> std::result::Result<u64, PolicyError> {
    parse_duration(value.get_ref()).map_err(|e| ctx.err(value.span(), format!("{key}: {e}")))
}

struct Defaults {
    reason_min: usize,
    reason_max: usize,
}

/// An optional integer setting within `lo..=hi`.
fn bounded(
    ctx: &Ctx<'_>,
    key: &str,
    value: Option<Spanned<i64>>,
    lo: u32,
    hi: u32,
) -> std::result::Result<Option<u32>, PolicyError> {
    match value {
        None => Ok(None),
        Some(v) => u32::try_from(*v.get_ref())
            .ok()
            .filter(|n| (lo..=hi).contains(n))
            .map(Some)
            .ok_or_else(|| ctx.err(v.span(), format!("{key} must be between {lo} and {hi}"))),
    }
}

/// Every user a list of principals can stand for, as NSS sees it now.
fn resolve(list: &[Principal], dir: &dyn Directory) -> std::result::Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for p in list {
        match p {
            Principal::User(u) => out.push(u.to_string()),
            Principal::Group(g) => out.extend(dir.group_members(g)?),
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn validator(
    ctx: &Ctx<'_>,
    raw: Spanned<RawValidator>,
    has_pattern: bool,
) -> std::result::Result<Validator, PolicyError> {
    let raw = raw.into_inner();
    let cmd_span = raw.command.span();
    let command = raw.command.into_inner();
    let Some(program) = command.first() else {
        return Err(ctx.err(cmd_span, "reason_validator.command must name a program"));
    };
    if !program.starts_with('/') {
        return Err(ctx.err(
            cmd_span,
            format!("reason_validator.command: '{program}' must be an absolute path (no shell, no PATH search)"),
        ));
    }
    for arg in &command {
        if arg.is_empty() || arg.len() > 512 || arg.chars().any(names::is_hidden_char) {
            return Err(ctx.err(
                cmd_span,
                "reason_validator.command: arguments must be non-empty text without control characters",
            ));
        }
    }
    match std::fs::metadata(Path::new(program)) {
        Ok(m)
            if m.is_file()
                && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0 => {}
        Ok(_) => {
            return Err(ctx.err(
                cmd_span,
                format!("reason_validator.command: {program} is not an executable file"),
            ));
        }
        Err(e) => {
            return Err(ctx.err(
                cmd_span,
                format!("reason_validator.command: {program}: {e}"),
            ));
        }
    }
    let timeout = match &raw.timeout {
        Some(t) => {
            let d = Duration::from_secs(duration(ctx, "reason_validator.timeout", t)?);
            if d > MAX_VALIDATOR_TIMEOUT {
                return Err(ctx.err(
                    t.span(),
                    format!(
                        "reason_validator.timeout must be at most {}s: the requester waits for it",
                        MAX_VALIDATOR_TIMEOUT.as_secs()
                    ),
                ));
            }
            d
        }
        None => DEFAULT_VALIDATOR_TIMEOUT,
    };
    let fallback_to_pattern = match &raw.on_failure {
        None => false,
        Some(v) => match v.get_ref().as_str() {
            "refuse" => false,
            "pattern" if has_pattern => true,
            "pattern" => {
                return Err(ctx.err(
                    v.span(),
                    "reason_validator.on_failure = \"pattern\" needs a reason_pattern on the role",
                ));
            }
            other => {
                return Err(ctx.err(
                    v.span(),
                    format!("reason_validator.on_failure must be \"refuse\" or \"pattern\", not '{other}'"),
                ));
            }
        },
    };
    Ok(Validator {
        command,
        timeout,
        fallback_to_pattern,
    })
}

fn validate_role(
    ctx: &Ctx<'_>,
    raw: RawRole,
    defaults: &Defaults,
    dir: &dyn Directory,
    warnings: &mut Vec<PolicyError>,
) -> std::result::Result<Role, PolicyError> {
    let name_span = raw.name.span();
    let name =
        RoleName::new(raw.name.get_ref().as_str()).map_err(|e| ctx.err(raw.name.span(), e))?;
    let description = names::validate_text("description", &raw.description, 200)
        .unwrap_or_else(|_| name.to_string());

    let commands_span = raw.commands.span();
    let mut commands = Vec::new();
    for c in raw.commands.into_inner() {
        commands.push(Command::new(c.get_ref().as_str()).map_err(|e| ctx.err(c.span(), e))?);
    }
    if commands.is_empty() {
        return Err(ctx.err(commands_span, "commands must list at least one command"));
    }

    let run_as_list = match raw.run_as {
        Some(r) => {
            let span = r.span();
            let list = match r.into_inner() {
                OneOrMany::One(u) => vec![u],
                OneOrMany::Many(v) => v,
            };
            if list.is_empty() {
                return Err(ctx.err(span, "run_as must name at least one user"));
            }
            let list = list
                .iter()
                .map(|u| {
                    UserName::new(u.as_str())
                        .map_err(|e| ctx.err(span.clone(), format!("run_as: {e}")))
                })
                .collect::<std::result::Result<Vec<UserName>, PolicyError>>()?;
            let mut dedup = list.clone();
            dedup.sort();
            dedup.dedup();
            if dedup.len() != list.len() {
                return Err(ctx.err(span, "run_as lists a user twice"));
            }
            list
        }
        None => vec![UserName::root()],
    };
    let run_as = run_as_list
        .iter()
        .map(UserName::as_str)
        .collect::<Vec<_>>()
        .join(", ");

    let requesters_span = raw.requesters.span();
    let requesters = principals(ctx, raw.requesters, dir)?;
    if requesters.is_empty() {
        return Err(ctx.err(requesters_span, "requesters must not be empty"));
    }
    let (approvers, approvers_span) = match raw.approvers {
        Some(a) => {
            let span = a.span();
            (principals(ctx, a, dir)?, span)
        }
        None => (Vec::new(), commands_span.clone()),
    };

    let approvals = match raw.approvals {
        Some(a) => u32::try_from(*a.get_ref())
            .ok()
            .filter(|n| *n <= 16)
            .ok_or_else(|| ctx.err(a.span(), "approvals must be between 0 and 16"))?,
        None => 0,
    };
    if approvals > 0 && approvers.is_empty() {
        return Err(ctx.err(
            approvers_span,
            format!("role '{name}' needs {approvals} approval(s) but lists no approvers"),
        ));
    }

    let max_duration = duration(ctx, "max_duration", &raw.max_duration)?;
    let default_duration = match &raw.default_duration {
        Some(d) => {
            let v = duration(ctx, "default_duration", d)?;
            if v > max_duration {
                return Err(ctx.err(
                    d.span(),
                    format!(
                        "default_duration {} is longer than max_duration {}",
                        format_duration(v),
                        format_duration(max_duration)
                    ),
                ));
            }
            v
        }
        None => max_duration.min(900),
    };
    let max_total = match &raw.max_total_duration {
        Some(d) => {
            let v = duration(ctx, "max_total_duration", d)?;
            if v < max_duration {
                return Err(ctx.err(
                    d.span(),
                    format!(
                        "max_total_duration {} is shorter than max_duration {}: make it at least as long",
                        format_duration(v),
                        format_duration(max_duration)
                    ),
                ));
            }
            v
        }
        None => max_duration,
    };
    let pending_timeout = match &raw.pending_timeout {
        Some(d) => duration(ctx, "pending_timeout", d)?,
        None => DEFAULT_PENDING_TIMEOUT,
    };

    let escalation_approvers = match raw.escalation_approvers {
        Some(a) => {
            let span = a.span();
            let list = principals(ctx, a, dir)?;
            if list.is_empty() {
                return Err(ctx.err(span, "escalation_approvers must not be empty"));
            }
            if raw.escalate_after.is_none() {
                return Err(ctx.err(
                    span,
                    "escalation_approvers needs escalate_after (how long a request waits before they may approve)",
                ));
            }
            list
        }
        None => Vec::new(),
    };
    let escalate_after = match &raw.escalate_after {
        Some(d) => {
            let v = duration(ctx, "escalate_after", d)?;
            if escalation_approvers.is_empty() {
                return Err(ctx.err(d.span(), "escalate_after needs escalation_approvers"));
            }
            if approvals == 0 {
                return Err(ctx.err(
                    d.span(),
                    "escalate_after on a self-service role (approvals = 0): nothing to escalate",
                ));
            }
            if v >= pending_timeout {
                return Err(ctx.err(
                    d.span(),
                    format!(
                        "escalate_after {} is not before pending_timeout {}: requests would expire first",
                        format_duration(v),
                        format_duration(pending_timeout)
                    ),
                ));
            }
            Some(v)
        }
        None => None,
    };

    if approvals > 0 {
        // With only named users this is a contradiction in the file itself: refused. With
        // groups it depends on today's membership (install.sh creates empty groups), so it
        // is a warning: printed by `jitctl policy check` and logged at start.
        let is_group = |p: &Principal| matches!(p, Principal::Group(_));
        let approver_groups = approvers.iter().chain(&escalation_approvers).any(is_group);
        let requester_groups = requesters.iter().any(is_group);
        let mut possible =
            resolve(&approvers, dir).map_err(|e| ctx.err(approvers_span.clone(), e))?;
        possible.extend(
            resolve(&escalation_approvers, dir).map_err(|e| ctx.err(approvers_span.clone(), e))?,
        );
        possible.sort();
        possible.dedup();
        let need = usize_of(approvals);
        let requesters_now =
            resolve(&requesters, dir).map_err(|e| ctx.err(requesters_span.clone(), e))?;
        let problem = if possible.len() < need {
            Some((
                approver_groups,
                format!(
                    "role '{name}' needs {approvals} distinct approvals but only {} user(s) can approve{}: lower approvals or add approvers",
                    possible.len(),
                    if possible.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", possible.join(", "))
                    }
                ),
            ))
        } else if !requesters_now.is_empty()
            && !requesters_now
                .iter()
                .any(|u| possible.iter().filter(|a| *a != u).count() >= need)
        {
            Some((
                approver_groups || requester_groups,
                format!(
                    "role '{name}' can never be granted: every requester is one of its {} possible approvers, and a requester never approves their own request",
                    possible.len()
                ),
            ))
        } else {
            None
        };
        if let Some((membership, message)) = problem {
            let e = ctx.err(approvers_span.clone(), message);
            if membership {
                warnings.push(e);
            } else {
                return Err(e);
            }
        }
    }

    let reason_pattern = match raw.reason_pattern {
        Some(p) => Some(Regex::new(p.get_ref()).map_err(|e| {
            ctx.err(
                p.span(),
                format!(
                    "reason_pattern does not compile: {}",
                    one_line(&e.to_string())
                ),
            )
        })?),
        None => None,
    };
    let reason_max = bounded(ctx, "reason_max_length", raw.reason_max_length, 1, 4096)?
        .map_or(defaults.reason_max, usize_of);
    let reason_min = bounded(ctx, "reason_min_length", raw.reason_min_length, 1, 4096)?
        .map_or(defaults.reason_min, usize_of);
    if reason_min > reason_max {
        return Err(ctx.err(
            name_span.clone(),
            format!("role '{name}': reason_min_length {reason_min} is larger than reason_max_length {reason_max}"),
        ));
    }
    let validator = match raw.reason_validator {
        Some(v) => Some(validator(ctx, v, reason_pattern.is_some())?),
        None => None,
    };

    let break_glass = match raw.break_glass {
        Some(b) if *b.get_ref() && approvals == 0 => {
            return Err(ctx.err(
                b.span(),
                "break_glass on a self-service role (approvals = 0) changes nothing: remove it",
            ));
        }
        Some(b) => *b.get_ref(),
        None => false,
    };

    let window = match raw.window {
        Some(w) => {
            let span = w.span();
            let w = w.into_inner();
            Some(
                Window::parse(&w.days, &w.hours, &w.timezone)
                    .map_err(|e| ctx.err(span, format!("window: {e}")))?,
            )
        }
        None => None,
    };
    let outlive_window = match raw.outlive_window {
        Some(o) if window.is_none() => {
            return Err(ctx.err(o.span(), "outlive_window without a window"));
        }
        Some(o) => *o.get_ref(),
        None => false,
    };
    let max_active = bounded(ctx, "max_active", raw.max_active, 1, 10_000)?;

    Ok(Role {
        name,
        description,
        commands,
        run_as,
        requesters,
        approvers,
        approvals,
        max_duration,
        default_duration,
        reason_pattern,
        ssh: raw.ssh,
        reauth: raw.reauth,
        pending_timeout,
        run_as_list,
        reason_min,
        reason_max,
        validator,
        break_glass,
        max_total,
        window,
        outlive_window,
        max_active,
        escalate_after,
        escalation_approvers,
        log_io: raw.log_io,
    })
}

/// A role may not run commands as anyone the policy names as a requester or approver: a
/// grant would let its holder act as that principal (`sudo -u approver jitctl approve` of
/// their own request, or requesting the principal's roles). A user named directly is an
/// error, with the run_as position; one who is a principal through a group today is a
/// warning (membership changes without the policy changing), and jitd refuses such
/// approvals at run time anyway.
fn check_run_as_principals(
    ctx: &Ctx<'_>,
    roles: &[Role],
    run_as_spans: &[Range<usize>],
    dir: &dyn Directory,
    warnings: &mut Vec<PolicyError>,
) -> std::result::Result<(), PolicyError> {
    let mut named: Vec<(&str, &str, &str)> = Vec::new();
    let mut groups: Vec<(&str, &str, &str)> = Vec::new();
    for r in roles {
        for (what, list) in [
            ("a requester", &r.requesters),
            ("an approver", &r.approvers),
            ("an escalation approver", &r.escalation_approvers),
        ] {
            for p in list {
                match p {
                    Principal::User(u) => named.push((u, what, &r.name)),
                    Principal::Group(g) => groups.push((g, what, &r.name)),
                }
            }
        }
    }
    for (role, span) in roles.iter().zip(run_as_spans) {
        for target in &role.run_as_list {
            if let Some((_, what, of)) = named.iter().find(|(u, _, _)| *u == target) {
                return Err(ctx.err(
                    span.clone(),
                    format!(
                        "role '{}' runs commands as '{target}', who is {what} of role '{of}': \
                         a holder could act as them (sudo -u {target} jitctl ...); run as a \
                         user the policy does not name",
                        role.name
                    ),
                ));
            }
            let Ok(member_of) = dir.groups_of(target) else {
                continue;
            };
            if let Some((g, what, of)) = groups
                .iter()
                .find(|(g, _, _)| member_of.contains(&(*g).to_string()))
            {
                warnings.push(ctx.err(
                    span.clone(),
                    format!(
                        "role '{}' runs commands as '{target}', a member of %{g} ({what} of \
                         role '{of}'): a holder could act as them; jitd refuses their \
                         approvals of the holder's requests",
                        role.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Role {
    pub fn info(&self) -> RoleInfo {
        RoleInfo {
            name: self.name.to_string(),
            description: self.description.clone(),
            approvals: self.approvals,
            approvers: self.approvers.iter().map(Principal::spec).collect(),
            max_duration_secs: self.max_duration,
            default_duration_secs: self.default_duration,
            commands: self.commands.iter().map(ToString::to_string).collect(),
            run_as: self.run_as.clone(),
            ssh: self.ssh,
            reason_pattern: self
                .reason_pattern
                .as_ref()
                .map(|r| r.as_str().to_string())
                .unwrap_or_default(),
            reason_min_length: u32::try_from(self.reason_min).unwrap_or(u32::MAX),
            reason_max_length: u32::try_from(self.reason_max).unwrap_or(u32::MAX),
            break_glass: self.break_glass,
            max_total_secs: self.max_total,
            window: self
                .window
                .as_ref()
                .map(Window::describe)
                .unwrap_or_default(),
            window_open: true,
        }
    }

    /// [`Role::info`] with the window's state at `now`.
    pub fn info_at(&self, now: i64) -> RoleInfo {
        let mut info = self.info();
        info.window_open = self
            .window
            .as_ref()
            .is_none_or(|w| w.end_if_open(now).is_some());
        info
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::FakeDirectory;

    fn dir() -> FakeDirectory {
        FakeDirectory::default()
            .user("alice", 1001, &["alice", "webops"])
            .user("bob", 1002, &["bob", "sre"])
            .user("carol", 1003, &["carol", "sre"])
            .user("mallory", 1004, &["mallory"])
    }

    const GOOD: &str = r#"
[[role]]
name = "web-restart"
description = "Restart the web tier"
commands = ["/usr/bin/systemctl restart nginx", "/usr/bin/systemctl status nginx"]
requesters = ["alice", "%webops"]
approvals = 0
max_duration = "1h"
default_duration = "15m"
reason_pattern = "^[A-Z]+-[0-9]+"

[[role]]
name = "db-admin"
commands = ["/usr/bin/psql"]
run_as = "postgres"
requesters = ["%webops"]
approvers = ["%sre"]
approvals = 1
max_duration = "2h"
"#;

    /// Friday 2026-11-20 14:00 UTC.
    const NOW: i64 = 1_795_183_200;

    fn parse(text: &str) -> std::result::Result<Policy, PolicyError> {
        Policy::parse("jit.toml", text, &dir())
    }

    #[test]
    fn given_example_policy_when_parsed_then_roles_have_their_values() {
        let p = parse(GOOD).unwrap();
        assert_eq!(p.roles.len(), 2);
        let web = p.role("web-restart").unwrap();
        assert_eq!(web.max_duration, 3600);
        assert_eq!(web.default_duration, 900);
        assert_eq!(web.run_as, "root");
        let db = p.role("db-admin").unwrap();
        assert_eq!(db.approvals, 1);
        assert_eq!(db.run_as, "postgres");
        assert_eq!(db.approvers, vec![Principal::Group("sre".into())]);
        assert_eq!(db.default_duration, 900);
    }

    fn err_of(text: &str) -> PolicyError {
        parse(text).unwrap_err()
    }

    #[test]
    fn given_unknown_key_when_parsed_then_error_names_line_and_column() {
        let e = err_of(
            &GOOD
                .replace("ssh_x", "")
                .replace("approvals = 0", "approvals = 0\naproval = 1"),
        );
        assert_eq!(e.line, 8, "{e}");
        assert!(e.message.contains("aproval"), "{e}");
        assert!(e.to_string().starts_with("jit.toml:8:1:"), "{e}");
    }

    #[test]
    fn given_malformed_toml_when_parsed_then_refused_with_position() {
        let e = err_of("[[role]\nname = 1");
        assert_eq!(e.line, 1, "{e}");
    }

    #[test]
    fn given_bad_values_when_parsed_then_each_is_refused_with_its_position() {
        let cases = [
            (GOOD.replace("\"1h\"", "\"1 fortnight\""), "max_duration", 8),
            (GOOD.replace("\"15m\"", "\"2h\""), "default_duration", 9),
            (
                GOOD.replace("^[A-Z]+-[0-9]+", "^[A-Z+"),
                "does not compile",
                10,
            ),
            (GOOD.replace("%sre", "%nosuchgroup"), "unknown group", 17),
            (
                GOOD.replace("\"alice\",", "\"Alice\","),
                "invalid user name",
                6,
            ),
            (
                GOOD.replace("/usr/bin/psql", "/usr/bin/psql *"),
                "invalid command",
                14,
            ),
            (
                GOOD.replace("approvals = 1", "approvals = -1"),
                "approvals",
                18,
            ),
            (
                GOOD.replace("\"db-admin\"", "\"web-restart\""),
                "duplicate",
                13,
            ),
            (
                GOOD.replace("name = \"db-admin\"", "name = \"DB\""),
                "role name",
                13,
            ),
        ];
        for (text, needle, line) in cases {
            let e = err_of(&text);
            assert!(e.message.contains(needle), "want {needle}: {e}");
            assert_eq!(e.line, line, "{needle}: {e}");
        }
    }

    #[test]
    fn given_approvals_without_enough_approvers_when_parsed_then_refused() {
        let e = err_of(
            &GOOD
                .replace("[\"%sre\"]", "[\"bob\"]")
                .replace("approvals = 1", "approvals = 2"),
        );
        assert!(e.message.contains("2 distinct approvals"), "{e}");
        let e = err_of(&GOOD.replace("approvers = [\"%sre\"]\n", ""));
        assert!(e.message.contains("lists no approvers"), "{e}");
    }

    #[test]
    fn given_empty_policy_when_parsed_then_refused() {
        assert!(err_of("").message.contains("no [[role]]"));
    }

    #[test]
    fn given_user_in_requester_group_when_listing_roles_then_only_eligible_roles() {
        let p = parse(GOOD).unwrap();
        let d = dir();
        let names = |u| {
            p.requestable(u, &d)
                .unwrap()
                .iter()
                .map(|r| r.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names("alice"), vec!["web-restart", "db-admin"]);
        assert!(names("mallory").is_empty());
        assert!(p.requestable("nobody-here", &d).is_err());
    }

    fn ask(duration: u64, reason: &str) -> Ask {
        Ask {
            kind: Kind::Grant,
            role: "web-restart".into(),
            duration,
            reason: reason.into(),
            origin: crate::model::Origin::default(),
        }
    }

    #[test]
    fn given_request_when_checked_then_duration_and_reason_rules_apply() {
        let p = parse(GOOD).unwrap();
        let d = dir();
        let web = p.role("web-restart").unwrap();
        assert_eq!(
            p.check_request(web, "alice", &ask(0, " OPS-1 x "), NOW, &d),
            Ok((900, "OPS-1 x".to_string()))
        );
        assert!(matches!(
            p.check_request(web, "alice", &ask(7200, "OPS-1"), NOW, &d),
            Err(Error::Refused(Refusal::Duration, m)) if m.contains("exceeds")
        ));
        assert!(matches!(
            p.check_request(web, "alice", &ask(60, ""), NOW, &d),
            Err(Error::Refused(Refusal::ReasonRequired, _))
        ));
        assert!(matches!(
            p.check_request(web, "alice", &ask(60, "no ticket"), NOW, &d),
            Err(Error::Refused(Refusal::ReasonPattern, m)) if m.contains("must match")
        ));
        assert!(matches!(
            p.check_request(web, "mallory", &ask(60, "OPS-1"), NOW, &d),
            Err(Error::Refused(Refusal::NotEligible, _))
        ));
    }

    #[test]
    fn given_group_approver_when_checked_then_membership_decides() {
        let p = parse(GOOD).unwrap();
        let d = dir();
        let db = p.role("db-admin").unwrap();
        assert!(p.may_approve(db, "bob", NOW, NOW, &d).unwrap());
        assert!(!p.may_approve(db, "alice", NOW, NOW, &d).unwrap());
        assert!(
            !p.may_approve(p.role("web-restart").unwrap(), "bob", NOW, NOW, &d)
                .unwrap()
        );
    }

    const FULL: &str = r#"
[settings]
reason_min_length = 8
max_active_per_user = 3
max_pending_per_user = 2

[[role]]
name = "change"
commands = ["/usr/bin/id"]
run_as = ["root", "postgres"]
requesters = ["%webops"]
approvers = ["%sre"]
approvals = 1
max_duration = "1h"
max_total_duration = "5h"
pending_timeout = "30m"
escalate_after = "10m"
escalation_approvers = ["mallory"]
break_glass = true
window = { days = ["mon-fri"], hours = "08:00-18:00", timezone = "Europe/Berlin" }
max_active = 2
log_io = true
reason_validator = { command = ["/bin/true", "--check"], timeout = "3s", on_failure = "refuse" }

[[role]]
name = "audit"
commands = ["/usr/bin/last"]
requesters = ["%sre"]
max_duration = "1h"

[[separation]]
roles = ["change", "audit"]
"#;

    #[test]
    fn given_every_feature_key_when_parsed_then_values_arrive() {
        let p = parse(FULL).unwrap();
        let r = p.role("change").unwrap();
        assert_eq!(r.run_as_list, vec!["root", "postgres"]);
        assert_eq!(r.max_total, 5 * 3600);
        assert_eq!(r.escalate_after, Some(600));
        assert!(r.break_glass && r.log_io);
        assert_eq!(r.max_active, Some(2));
        assert_eq!(r.reason_min, 8);
        let v = r.validator.as_ref().unwrap();
        assert_eq!(v.command, vec!["/bin/true", "--check"]);
        assert_eq!(v.timeout, Duration::from_secs(3));
        assert!(!v.fallback_to_pattern);
        assert_eq!(
            r.window.as_ref().unwrap().describe(),
            "mon-fri 08:00-18:00 Europe/Berlin"
        );
        assert_eq!(p.max_active_per_user, Some(3));
        assert_eq!(p.max_pending_per_user, 2);
        assert!(p.conflict("change", "audit").is_some());
        assert!(p.conflict("audit", "audit").is_none());
    }

    #[test]
    fn given_contradictory_policies_when_parsed_then_each_refused_with_position_and_fix() {
        let cases: Vec<(String, &str, usize)> = vec![
            (FULL.replace("\"5h\"", "\"30m\""), "shorter than max_duration", 15),
            (FULL.replace("escalate_after = \"10m\"", "escalate_after = \"40m\""), "not before pending_timeout", 17),
            (FULL.replace("escalate_after = \"10m\"\n", ""), "needs escalate_after", 17),
            (FULL.replace("approvals = 1", "approvals = 4").replace("[\"%sre\"]", "[\"bob\", \"carol\"]").replace("requesters = [\"%webops\"]", "requesters = [\"alice\"]"), "only 3 user(s) can approve", 12),
            (FULL.replace("\"mon-fri\"", "\"someday\""), "unknown day", 20),
            (FULL.replace("Europe/Berlin", "Mars/Olympus"), "unknown time zone", 20),
            (FULL.replace("on_failure = \"refuse\"", "on_failure = \"pattern\""), "needs a reason_pattern", 23),
            (FULL.replace("/bin/true", "true"), "absolute path", 23),
            (FULL.replace("/bin/true", "/nonexistent/check"), "No such file", 23),
            (FULL.replace("timeout = \"3s\"", "timeout = \"5m\""), "at most 60s", 23),
            (FULL.replace("roles = [\"change\", \"audit\"]", "roles = [\"change\", \"nope\"]"), "unknown role 'nope'", 32),
            (FULL.replace("roles = [\"change\", \"audit\"]", "roles = [\"change\", \"change\"]"), "at least two different roles", 31),
            (FULL.replace("max_active = 2", "max_active = 0"), "max_active must be between", 21),
            (FULL.replace("reason_min_length = 8", "reason_min_length = 900"), "larger than reason_max_length", 1),
            (FULL.replace("run_as = [\"root\", \"postgres\"]", "run_as = [\"root\", \"root\"]"), "twice", 10),
            (FULL.replace("[[role]]\nname = \"audit\"\ncommands = [\"/usr/bin/last\"]\nrequesters = [\"%sre\"]\nmax_duration = \"1h\"\n", "[[role]]\nname = \"audit\"\ncommands = [\"/usr/bin/last\"]\nrequesters = [\"%sre\"]\nmax_duration = \"1h\"\nbreak_glass = true\n"), "changes nothing", 30),
            (FULL.replace("max_duration = \"1h\"\n\n[[separation]]", "max_duration = \"1h\"\noutlive_window = true\n\n[[separation]]"), "outlive_window without a window", 30),
        ];
        for (text, needle, line) in cases {
            let e = err_of(&text);
            assert!(e.message.contains(needle), "want {needle}: {e}");
            assert_eq!(e.line, line, "{needle}: {e}");
        }
    }

    #[test]
    fn given_durations_past_a_year_when_parsed_then_refused_with_position() {
        // Regression: max_duration = "10000y" passed, and a request for 9000y then
        // panicked jitd formatting a time past year 9999.
        for (key, line) in [("max_duration", 8), ("default_duration", 9)] {
            let text = GOOD.replacen(
                &format!("{key} = \""),
                &format!("{key} = \"10000y\" # was \""),
                1,
            );
            let e = err_of(&text);
            assert!(
                e.message.contains(key) && e.message.contains("at most 366d"),
                "{e}"
            );
            assert_eq!(e.line, line, "{e}");
        }
        let e = err_of(&FULL.replace("pending_timeout = \"30m\"", "pending_timeout = \"2y\""));
        assert!(e.message.contains("at most 366d"), "{e}");
    }

    #[test]
    fn given_role_running_as_a_policy_principal_when_parsed_then_refused_or_warned() {
        // Regression: a self-service role that ran as an approver let the requester approve
        // their own request with `sudo -u approver jitctl approve`.
        let text = format!(
            "{GOOD}\n[[role]]\nname = \"as-bob\"\ncommands = [\"/usr/bin/jitctl\"]\n\
             run_as = \"bob\"\nrequesters = [\"alice\"]\nmax_duration = \"1h\"\n"
        );
        let p = parse(&text.replace("\"%sre\"", "\"bob\"")).map(|_| ());
        let Err(e) = p else {
            panic!("a role running as a named approver was accepted");
        };
        assert!(
            e.message
                .contains("runs commands as 'bob', who is an approver"),
            "{e}"
        );
        assert_eq!(
            e.line,
            text.lines()
                .position(|l| l.starts_with("run_as = \"bob\""))
                .unwrap()
                + 1
        );
        // As a member of an approver group: a warning (membership can change; jitd refuses
        // such approvals at run time).
        let p = parse(&text).unwrap();
        assert!(
            p.warnings
                .iter()
                .any(|w| w.message.contains("a member of %sre")),
            "{:?}",
            p.warnings
        );
        // Running as a requester named elsewhere is refused too.
        let e = err_of(&text.replace("run_as = \"bob\"", "run_as = \"alice\""));
        assert!(e.message.contains("who is a requester"), "{e}");
    }

    #[test]
    fn given_requesters_who_are_all_the_approvers_when_parsed_then_never_grantable() {
        // carol and bob are the only %sre; each would need the other plus one more.
        let text = r#"
[[role]]
name = "x"
commands = ["/usr/bin/id"]
requesters = ["%sre"]
approvers = ["%sre"]
approvals = 2
max_duration = "1h"
"#;
        // With groups it is a warning (membership can change); with named users, an error.
        let p = parse(text).unwrap();
        assert!(
            p.warnings[0].message.contains("can never be granted"),
            "{:?}",
            p.warnings
        );
        assert!(
            parse(&text.replace("approvals = 2", "approvals = 1"))
                .unwrap()
                .warnings
                .is_empty()
        );
        let e = err_of(&text.replace("[\"%sre\"]", "[\"bob\", \"carol\"]"));
        assert!(e.message.contains("can never be granted"), "{e}");
    }

    #[test]
    fn given_role_rules_when_checking_then_each_decides_alone() {
        let p = parse(FULL).unwrap();
        let d = dir();
        let r = p.role("change").unwrap();
        // Reason length: the settings' minimum applies to every role.
        assert!(
            matches!(r.check_reason("T-1 x"), Err(Error::Refused(Refusal::ReasonLength, m)) if m.contains("too short"))
        );
        assert!(r.check_reason("T-1 fix the index").is_ok());
        // Window: Friday 14:00 UTC is 15:00 in Berlin (open); Saturday is closed.
        assert!(p.check_window(r, NOW).is_ok());
        assert!(p.check_window(r, NOW + 86_400).is_err());
        // Grants are cut at the window's end (17:00 UTC = 18:00 Berlin).
        assert_eq!(p.grant_end(r, Kind::Grant, NOW, 7200), NOW + 7200);
        assert_eq!(p.grant_end(r, Kind::Grant, NOW, 4 * 3600), NOW + 3 * 3600);
        assert_eq!(
            p.grant_end(r, Kind::BreakGlass, NOW, 4 * 3600),
            NOW + 4 * 3600
        );
        // Limits.
        let held = [
            Held {
                role: "a",
                state: State::Pending,
            },
            Held {
                role: "b",
                state: State::Pending,
            },
        ];
        assert!(p.check_limits(r, "alice", &held, 0, false).is_err());
        assert!(p.check_limits(r, "alice", &held, 0, true).is_ok());
        assert!(p.check_limits(r, "alice", &[], 2, true).is_err());
        // Separation, both ways, for holders and approvers.
        let audit = [Held {
            role: "audit",
            state: State::Active,
        }];
        assert!(p.check_separation("change", "alice", &audit).is_err());
        assert!(
            p.check_approver_separation("change", "bob", &audit)
                .is_err()
        );
        assert!(p.check_separation("audit", "alice", &[]).is_ok());
        // Escalation: mallory only after 10 minutes.
        assert!(!p.may_approve(r, "mallory", NOW, NOW + 599, &d).unwrap());
        assert!(p.may_approve(r, "mallory", NOW, NOW + 600, &d).unwrap());
        assert!(p.may_approve(r, "bob", NOW, NOW, &d).unwrap());
        // Extension: at most max_total from the start; never past the window.
        assert_eq!(
            p.extension_end(r, NOW - 600, NOW + 600, 600, NOW),
            Ok(NOW + 1200)
        );
        assert!(p.extension_end(r, NOW - 600, NOW + 3000, 1200, NOW).is_ok());
        assert!(matches!(
            p.extension_end(r, NOW, NOW + 3 * 3600, 600, NOW),
            Err(Error::Refused(Refusal::MaxTotal, m)) if m.contains("window")
        ));
        assert!(matches!(
            p.extension_end(r, NOW - 17_000, NOW + 600, 1200, NOW),
            Err(Error::Refused(Refusal::MaxTotal, m)) if m.contains("maximum total of 5h")
        ));
        // Validator verdicts.
        assert!(r.judge(&Verdict::Accepted).is_ok());
        assert!(r.judge(&Verdict::NotRun).is_err());
        assert!(r.judge(&Verdict::Failed("x".into())).is_err());
        assert!(r.judge(&Verdict::Refused("no".into())).is_err());
        assert_eq!(
            p.role("audit").unwrap().judge(&Verdict::NotRun),
            Ok(String::new())
        );
    }
}
