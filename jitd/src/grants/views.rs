//! What callers may see: roles, requests, grants, the daemon's status and the audit trail,
//! each filtered by who asks. Nothing here changes state.

use super::*;

/// The most records one `Audit` reply carries (a D-Bus message holds at most 128 MiB, and
/// a reply that large would stall the caller and jitd alike).
pub const MAX_AUDIT_REPLY: u32 = 50_000;
/// The most records one `AuditPage` reply carries.
pub const MAX_AUDIT_PAGE: u32 = 10_000;

impl Core {
    /// Roles `user` may request.
    pub fn roles_for(&self, user: &str) -> Result<Vec<RoleInfo>> {
        let now = self.now();
        Ok(self
            .policy
            .requestable(user, self.dir.as_ref())?
            .into_iter()
            .map(|r| r.info_at(now))
            .collect())
    }

    /// The role's reason validator, for the caller to run before [`Core::request`] or
    /// [`Core::extend`] (outside the lock: it may take seconds).
    pub fn validator_for(&self, role: &str) -> Option<crate::policy::Validator> {
        self.policy
            .role(role)
            .ok()
            .and_then(|r| r.validator.clone())
    }

    /// Break-glass grants `who` may review (root: all); `all`: acknowledged ones too.
    pub fn review(&self, who: &Actor, all: bool) -> Result<Vec<RequestInfo>> {
        let view = self.policy.approver_view(&who.name, self.dir.as_ref())?;
        if who.uid != 0 && view.direct.is_empty() {
            return Err(Error::NotAuthorized(
                "only root and approvers review break-glass grants".into(),
            ));
        }
        self.store
            .break_glass(!all)?
            .iter()
            .filter(|r| who.uid == 0 || view.direct.contains(&r.role))
            .map(|r| self.info(r))
            .collect()
    }

    pub fn show(&self, who: &Actor, id: u64) -> Result<RequestInfo> {
        let row = self.visible(who, id)?;
        self.info(&row)
    }

    /// Requests the caller may see: their own, and those of roles they approve (root: all).
    /// Default: pending and active; `all`: also ended ones (latest 500).
    pub fn list(&self, who: &Actor, pending_only: bool, all: bool) -> Result<Vec<RequestInfo>> {
        let rows = if pending_only {
            self.store.by_state(&[State::Pending])?
        } else if all {
            let mut r = self.store.recent(500)?;
            r.reverse();
            r
        } else {
            self.store.by_state(&[State::Pending, State::Active])?
        };
        // The caller's groups are looked up once for the whole listing, not once per row.
        let view = self.policy.approver_view(&who.name, self.dir.as_ref())?;
        let now = self.now();
        let mut out = Vec::new();
        for r in rows {
            if who.uid == 0 || r.uid == who.uid || view.covers(&r.role, r.created_at, now) {
                out.push(self.info(&r)?);
            }
        }
        Ok(out)
    }

    /// The caller's own active grants.
    pub fn grants(&self, who: &Actor) -> Result<Vec<RequestInfo>> {
        self.store
            .open_of_user(&who.name)?
            .iter()
            .filter(|r| r.state == State::Active && r.uid == who.uid)
            .map(|r| self.info(r))
            .collect()
    }

    /// Whether `user` holds an active grant now (with `ssh`: one whose role admits ssh).
    /// Checks the grant's end itself, so a late timer never extends a grant.
    pub fn check(&self, user: &str, ssh: bool) -> Result<GrantCheck> {
        Ok(super::in_force::answer(self.in_force(user, ssh)?.iter()))
    }

    /// Request `id` of `user` (for pam_jit's wait); NotFound if it is someone else's.
    /// `user`'s pending grant requests (not extensions or break-glass), oldest first.
    pub fn pending_of(&self, user: &str) -> Result<Vec<RequestInfo>> {
        self.store
            .by_state(&[State::Pending])?
            .iter()
            .filter(|r| r.user == user && r.kind == Kind::Grant)
            .map(|r| self.info(r))
            .collect()
    }

    pub fn request_of(&self, user: &str, id: u64) -> Result<RequestRow> {
        let row = self.get(id)?;
        if row.user != user {
            return Err(Error::NotFound(format!("no request {id} for {user}")));
        }
        Ok(row)
    }

    /// The daemon's health and counts. Root and approvers get the host's counts; anyone
    /// else the counts of their own requests (what others ask for is not theirs to know).
    pub fn status(&self, who: &Actor) -> Result<StatusInfo> {
        let privileged = who.uid == 0 || self.is_any_approver(who)?;
        let count = |state: State| -> Result<u32> {
            let rows = self.store.by_state(&[state])?;
            let n = rows
                .iter()
                .filter(|r| privileged || r.uid == who.uid)
                .count();
            Ok(u32::try_from(n).unwrap_or(u32::MAX))
        };
        let (audit_error, audit_notes) = if privileged {
            self.trail_health()
        } else {
            (String::new(), Vec::new())
        };
        Ok(StatusInfo {
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: self.started_at,
            policy_path: self.policy.path.clone(),
            roles: u32::try_from(self.policy.roles.len()).unwrap_or(u32::MAX),
            active_grants: count(State::Active)?,
            pending_requests: count(State::Pending)?,
            sudoers_dir: self.rules.location(),
            last_error: self.last_error.clone(),
            unreviewed_break_glass: if privileged {
                self.store.unreviewed_break_glass()?
            } else {
                0
            },
            audit_error,
            audit_notes,
            notifier_notes: if privileged {
                self.notifier_notes()?
            } else {
                Vec::new()
            },
        })
    }

    pub(super) fn is_any_approver(&self, who: &Actor) -> Result<bool> {
        Ok(!self
            .policy
            .approver_view(&who.name, self.dir.as_ref())?
            .is_empty())
    }

    /// Root and approvers see the whole trail; anyone else only records about themselves.
    /// `user`: only records by or about them.
    pub fn audit(
        &self,
        who: &Actor,
        since: i64,
        user: Option<&UserName>,
    ) -> Result<Vec<AuditRecord>> {
        let user = self.audit_subject(who, user)?;
        let records = self
            .store
            .audit_page(0, MAX_AUDIT_REPLY + 1, since, &user)?;
        if records.len() > MAX_AUDIT_REPLY as usize {
            return Err(Error::InvalidArgument(format!(
                "more than {MAX_AUDIT_REPLY} records match, too many for one reply: ask for \
                 them in pages (AuditPage; jitctl audit does)"
            )));
        }
        Ok(records)
    }

    /// One page of the audit trail: records after `after_seq`, at most `limit` (up to
    /// [`MAX_AUDIT_PAGE`]).
    pub fn audit_page(
        &self,
        who: &Actor,
        after_seq: u64,
        limit: u32,
        since: i64,
        user: Option<&UserName>,
    ) -> Result<Vec<AuditRecord>> {
        let user = self.audit_subject(who, user)?;
        self.store
            .audit_page(after_seq, limit.min(MAX_AUDIT_PAGE), since, &user)
    }

    /// Whose records the caller asks for and may see: root and approvers anyone's (empty:
    /// everyone's), anyone else their own.
    fn audit_subject(&self, who: &Actor, user: Option<&UserName>) -> Result<String> {
        let privileged = who.uid == 0 || self.is_any_approver(who)?;
        let user = match user {
            Some(u) if privileged => u.as_str(),
            None if privileged => "",
            Some(u) if *u != who.name => {
                return Err(Error::NotAuthorized(format!(
                    "only root and approvers may read other users' audit records; {} sees \
                     the records by or about {} (jitctl audit)",
                    who.name, who.name
                )));
            }
            _ => who.name.as_str(),
        };
        Ok(user.to_string())
    }

    pub fn audit_verify(&self, who: &Actor) -> Result<AuditVerify> {
        self.verify_with(who, None)
    }

    /// The whole trail checked, with the verification key if given (see
    /// [`Core::verify_trail`]).
    pub fn verify_with(
        &self,
        who: &Actor,
        key: Option<crate::seal::VerificationKey>,
    ) -> Result<AuditVerify> {
        let r = self.verify_trail(who, key)?;
        Ok(AuditVerify {
            ok: r.ok,
            records: r.records,
            first_bad_seq: r.first_bad_seq,
            message: r.message,
        })
    }
}
