//! The decisions a policy drives: who may request and approve what, whether a request fits
//! the role (duration, reason, window, limits, separation of duties), and when a grant or
//! an extension ends.

use super::*;

impl Policy {
    pub fn role(&self, name: &str) -> Result<&Role> {
        self.by_name
            .get(name)
            .and_then(|&i| self.roles.get(i))
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
