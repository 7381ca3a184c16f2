//! Requests and grants: the state machine, its authorization rules, and the side effects
//! (sudoers rules) that follow each committed change.
//!
//! Nothing here knows about D-Bus. Callers arrive as an [`Actor`] whose identity the bus
//! layer established; time comes from an injected [`Clock`].

use crate::audit::Mirror;
use crate::directory::Directory;
use crate::error::{Error, Refusal, Result};
pub use crate::model::Origin;
use crate::model::{Actor, Ask, Kind};
use crate::names::{Text, UserName};
use crate::policy::{Held, Policy, Verdict};
use crate::store::{self, Event, NewRequest, RequestRow, Store, Transition};
pub use crate::sudoers::Rules;
use crate::sudoers::{Rule, shard_of};
use jit_proto::{
    AuditRecord, AuditVerify, GrantCheck, RequestInfo, RoleInfo, State, StatusInfo,
    format_duration, format_rfc3339,
};
use std::sync::Arc;

/// Longest comment on an approval.
pub const MAX_COMMENT: usize = 500;

/// The clocks a grant's end is measured on, injected so expiry logic is testable without
/// sleeping or stepping the machine's clock.
pub trait Clock: Send + Sync {
    /// Wall-clock milliseconds since the Unix epoch (can step either way).
    fn now_ms(&self) -> i64;
    /// Milliseconds on CLOCK_BOOTTIME: never steps, keeps counting through suspend, and
    /// starts again from zero at each boot. None if unavailable: the wall clock decides alone.
    fn boot_ms(&self) -> Option<i64>;
    /// The kernel's identifier of the current boot.
    fn boot_id(&self) -> &str;
    fn now(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }
}

/// Where the kernel publishes the boot id.
const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";

#[derive(Debug, Clone)]
pub struct SystemClock {
    boot_id: String,
}

impl SystemClock {
    /// Reads the boot id. If the kernel does not say, this start gets an id of its own, so
    /// that grants from before it are re-evaluated as after a reboot (never trusted longer).
    pub fn new() -> SystemClock {
        let boot_id = match std::fs::read_to_string(BOOT_ID_PATH) {
            Ok(id) if !id.trim().is_empty() => id.trim().to_string(),
            other => {
                let why = other.map_or_else(|e| e.to_string(), |_| "empty".into());
                tracing::warn!(
                    "cannot read {BOOT_ID_PATH} ({why}); treating this start as a new boot"
                );
                format!("unknown-{}-{}", std::process::id(), SystemClock::wall_ms())
            }
        };
        SystemClock { boot_id }
    }

    fn wall_ms() -> i64 {
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            // Before 1970: every grant is treated as not yet started, none as extended.
            Err(_) => 0,
        }
    }
}

impl Default for SystemClock {
    fn default() -> SystemClock {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemClock::wall_ms()
    }

    fn boot_ms(&self) -> Option<i64> {
        nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
            .ok()
            .map(|t| t.tv_sec().saturating_mul(1000) + t.tv_nsec() / 1_000_000)
    }

    fn boot_id(&self) -> &str {
        &self.boot_id
    }
}

/// What startup reconciliation did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reconciled {
    pub expired: usize,
    pub removed: usize,
    pub restored: usize,
    pub revoked: usize,
    /// Sessions under active grants tracked again.
    pub sessions: usize,
}

/// A session pam_jit registers, and what could have authorised it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSpec {
    /// The process that runs the session.
    pub pid: i32,
    /// The user a sudo command runs as (None: unknown, or an ssh login).
    pub target: Option<UserName>,
    /// An ssh login: only grants of roles that admit ssh logins count.
    pub ssh: bool,
}

/// A session just registered under a grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedSession {
    pub grant: u64,
    pub pid: i32,
    /// The process's start time (see [`store::SessionRow`]).
    pub start_time: u64,
    /// Where sudo records it, for a role that logs I/O.
    pub iolog: Option<String>,
}

pub struct Core {
    policy: Policy,
    store: Store,
    rules: Box<dyn Rules>,
    dir: Box<dyn Directory>,
    clock: Arc<dyn Clock>,
    mirror: Option<Arc<Mirror>>,
    started_at: i64,
    last_error: String,
    /// Whether `last_error` is a failed write of the state database (cleared by the next
    /// write that succeeds, e.g. once the disk has room again).
    storage_failed: bool,
    sessions: crate::sessions::Sessions,
    /// Counts committed transactions: a waiter or the timer sees whether anything changed.
    generation: u64,
}

/// The sudoers rule of a grant; `iolog_dir` is where the policy has sudo record sessions.
fn rule_of(r: &RequestRow, iolog_dir: &str) -> Rule {
    Rule {
        grant_id: r.id,
        user: r.user.clone(),
        role: r.role.clone(),
        run_as: r.run_as.clone(),
        commands: r.commands.clone(),
        not_after: r.not_after,
        reauth: r.reauth,
        iolog_dir: r.log_io.then(|| iolog_dir.to_string()),
    }
}

/// The open requests of a user as limits and separation see them (extensions are not
/// grants of their own).
fn held(open: &[RequestRow]) -> Vec<Held<'_>> {
    open.iter()
        .filter(|r| r.kind != Kind::Extension)
        .map(|r| Held {
            role: &r.role,
            state: r.state,
        })
        .collect()
}

impl Core {
    pub fn new(
        policy: Policy,
        store: Store,
        rules: Box<dyn Rules>,
        dir: Box<dyn Directory>,
        clock: Arc<dyn Clock>,
        mirror: Option<Arc<Mirror>>,
    ) -> Core {
        let started_at = clock.now();
        Core {
            policy,
            store,
            rules,
            dir,
            clock,
            mirror,
            started_at,
            last_error: String::new(),
            storage_failed: false,
            sessions: crate::sessions::Sessions::default(),
            generation: 0,
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn directory(&self) -> &dyn Directory {
        self.dir.as_ref()
    }

    /// Replaces the policy (SIGHUP). Requests keep the terms frozen at submission; pending
    /// requests of a role that is gone can no longer be approved and time out.
    pub fn replace_policy(&mut self, policy: Policy) -> Result<()> {
        let now = self.now();
        let jitd = Actor::jitd();
        let detail = format!("path={} roles={}", policy.path, policy.roles.len());
        self.commit(|tx, recs| {
            recs.push(store::append_audit(
                tx,
                &Event {
                    at: now,
                    actor: &jitd,
                    action: "policy-reload",
                    request_id: 0,
                    detail,
                },
            )?);
            Ok(())
        })?;
        self.policy = policy;
        self.last_error.clear();
        Ok(())
    }

    /// Records a refused reload: the old policy stays in force.
    pub fn reload_refused(&mut self, msg: String) {
        let _ = self.fail(format!(
            "policy reload refused, previous policy kept: {msg}"
        ));
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// How many transactions have been committed (wraps): changes when anything did.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The point on this boot's boot clock that matches wall-clock `not_after` now: the
    /// boot id (empty without a boot clock) and the deadline in milliseconds.
    fn boot_deadline(&self, not_after: i64) -> (String, i64) {
        match self.clock.boot_ms() {
            Some(boot) => {
                let left = not_after.saturating_mul(1000).saturating_sub(self.now_ms());
                (self.clock.boot_id().to_string(), boot.saturating_add(left))
            }
            None => (String::new(), 0),
        }
    }

    /// Milliseconds left on an active grant: the wall clock's answer (a step forward ends
    /// it early), and never more than the boot clock's answer for the boot it was granted
    /// on (a step back does not lengthen it; suspend does not stop it).
    fn ms_left(&self, r: &RequestRow) -> i64 {
        let wall = r
            .not_after
            .saturating_mul(1000)
            .saturating_sub(self.now_ms());
        match self.clock.boot_ms() {
            Some(boot) if !r.boot_id.is_empty() && r.boot_id == self.clock.boot_id() => {
                wall.min(r.boot_deadline_ms.saturating_sub(boot))
            }
            _ => wall,
        }
    }

    fn publish(&self, records: &[AuditRecord]) {
        if let Some(m) = &self.mirror {
            for r in records {
                m.send(r);
            }
        }
    }

    fn fail(&mut self, msg: String) -> Error {
        tracing::error!("{msg}");
        self.last_error = msg.clone();
        self.storage_failed = false;
        Error::Internal(msg)
    }

    /// Runs one transaction that writes state and audit records together.
    fn commit<T>(
        &mut self,
        f: impl FnOnce(&rusqlite::Transaction<'_>, &mut Vec<AuditRecord>) -> Result<T>,
    ) -> Result<T> {
        let mut records = Vec::new();
        let out = self.store.transaction(|tx| f(tx, &mut records));
        match out {
            Ok(v) => {
                self.generation = self.generation.wrapping_add(1);
                if self.storage_failed {
                    self.storage_failed = false;
                    self.last_error.clear();
                    tracing::info!("state database writes succeed again");
                }
                self.publish(&records);
                Ok(v)
            }
            // Nothing was committed (a full disk, a failed fsync): the change is refused.
            Err(Error::Internal(m)) => {
                let e = self.fail(m);
                self.storage_failed = true;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// The stored request `id`, with no authorization check.
    pub fn row(&self, id: u64) -> Result<RequestRow> {
        self.get(id)
    }

    fn get(&self, id: u64) -> Result<RequestRow> {
        self.store
            .get(id)?
            .ok_or_else(|| Error::NotFound(format!("no request {id}")))
    }

    pub fn info(&self, r: &RequestRow) -> Result<RequestInfo> {
        let approved_by = self
            .store
            .approvers_of(r.id)?
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        Ok(RequestInfo {
            id: r.id,
            user: r.user.to_string(),
            uid: r.uid,
            role: r.role.to_string(),
            state: r.state.as_str().to_string(),
            reason: r.reason.clone(),
            duration_secs: r.duration_secs,
            created_at: r.created_at,
            updated_at: r.updated_at,
            not_after: r.not_after,
            approvals_required: r.approvals_required,
            approved_by,
            approvers: r.approvers.clone(),
            decided_by: r.decided_by.clone(),
            decision_reason: r.decision_reason.clone(),
            service: r.service.clone(),
            tty: r.tty.clone(),
            kind: r.kind.as_str().to_string(),
            extends: r.extends,
            granted_at: r.granted_at,
            reviewed_by: r.reviewed_by.clone(),
            reviewed_at: r.reviewed_at,
            review_comment: r.review_comment.clone(),
        })
    }

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

    /// Whether `who` may decide on `r` now (approvers, and escalation approvers once the
    /// request has waited long enough).
    fn is_approver(&self, r: &RequestRow, who: &Actor) -> Result<bool> {
        match self.policy.role(&r.role) {
            Ok(role) => self.policy.may_approve(
                role,
                &who.name,
                r.created_at,
                self.now(),
                self.dir.as_ref(),
            ),
            // A role removed from the policy has no approvers left.
            Err(_) => Ok(false),
        }
    }

    fn may_see(&self, who: &Actor, r: &RequestRow) -> Result<bool> {
        Ok(who.uid == 0 || r.uid == who.uid || self.is_approver(r, who)?)
    }

    /// Request `id` if `who` may see it. Every method that names a request goes through
    /// here first: one the caller may not see gets the very answer a request that does not
    /// exist gets, so nothing (owner, role, state) leaks through a refusal.
    fn visible(&self, who: &Actor, id: u64) -> Result<RequestRow> {
        match self.store.get(id)? {
            Some(row) if self.may_see(who, &row)? => Ok(row),
            _ => Err(Error::NotFound(format!("no request {id}"))),
        }
    }

    /// The role's reason validator, for the caller to run before [`Core::request`] or
    /// [`Core::extend`] (outside the lock: it may take seconds).
    pub fn validator_for(&self, role: &str) -> Option<crate::policy::Validator> {
        self.policy
            .role(role)
            .ok()
            .and_then(|r| r.validator.clone())
    }

    /// Submits a request. A self-service role, or a break-glass request, is granted at
    /// once. `verdict` is what the role's reason validator answered (see
    /// [`Core::validator_for`]).
    pub fn request(&mut self, who: &Actor, ask: &Ask, verdict: &Verdict) -> Result<RequestRow> {
        let (kind, origin) = (ask.kind, &ask.origin);
        if kind == Kind::Extension {
            return Err(Error::InvalidArgument(
                "extensions are requested with extend".into(),
            ));
        }
        let now = self.now();
        let role = self.policy.role(&ask.role)?.clone();
        let (duration, reason) =
            self.policy
                .check_request(&role, &who.name, ask, now, self.dir.as_ref())?;
        let open = self.store.open_of_user(&who.name)?;
        if let Some(dup) = open
            .iter()
            .find(|r| r.role == role.name && r.kind != Kind::Extension)
        {
            return Err(Error::refused(
                Refusal::Duplicate,
                match dup.state {
                    State::Active => format!(
                        "{} already holds role '{}' (grant {}) until {}; extend or release it",
                        who.name,
                        role.name,
                        dup.id,
                        format_rfc3339(dup.not_after)
                    ),
                    _ => format!(
                        "request {} for role '{}' is already pending; wait for it or cancel it",
                        dup.id, role.name
                    ),
                },
            ));
        }
        let held = held(&open);
        let role_active = self.active_of_role(&role.name)?;
        let immediate = role.approvals == 0 || kind == Kind::BreakGlass;
        // A request that starts at once is not a pending one: only the active limits apply.
        self.policy
            .check_limits(&role, &who.name, &held, role_active, immediate)?;
        self.policy.check_separation(&role.name, &who.name, &held)?;
        let note = role.judge(verdict)?;
        let not_after = if immediate {
            self.policy.grant_end(&role, kind, now, duration)
        } else {
            0
        };
        let new = NewRequest {
            user: who.name.clone(),
            uid: who.uid,
            role: role.name.clone(),
            reason: reason.clone(),
            duration_secs: duration,
            state: if immediate {
                State::Active
            } else {
                State::Pending
            },
            now,
            not_after,
            pending_until: if immediate {
                0
            } else {
                now + to_secs(role.pending_timeout)
            },
            approvals_required: if immediate { 0 } else { role.approvals },
            approvers: role.approvers.iter().map(|p| p.spec()).collect(),
            commands: role.commands.clone(),
            run_as: role.run_as_list.clone(),
            reauth: role.reauth,
            ssh: role.ssh,
            service: origin.service.clone(),
            tty: origin.tty.clone(),
            rhost: origin.rhost.clone(),
            kind,
            extends: 0,
            log_io: role.log_io,
        };
        let (boot_id, boot_deadline) = self.boot_deadline(not_after);
        let id = self.commit(|tx, recs| {
            let id = store::insert_request(tx, &new)?;
            if immediate {
                store::set_boot_deadline(tx, id, &boot_id, boot_deadline)?;
            }
            recs.push(store::append_audit(
                tx,
                &Event {
                    at: now,
                    actor: who,
                    action: if kind == Kind::BreakGlass {
                        "break-glass"
                    } else {
                        "request"
                    },
                    request_id: id,
                    detail: format!(
                        "role={} duration={} service={} tty={} rhost={} {note} reason={}",
                        new.role,
                        format_duration(duration),
                        new.service,
                        new.tty,
                        new.rhost,
                        new.reason
                    ),
                },
            )?);
            if immediate {
                let how = match kind {
                    Kind::BreakGlass => "break-glass, needs review",
                    _ => "self-service",
                };
                recs.push(store::append_audit(
                    tx,
                    &Event {
                        at: now,
                        actor: who,
                        action: "grant",
                        request_id: id,
                        detail: format!(
                            "role={} {how} not_after={}",
                            new.role,
                            format_rfc3339(new.not_after)
                        ),
                    },
                )?);
            }
            Ok(id)
        })?;
        let row = self.get(id)?;
        if immediate {
            self.install_or_revoke(&row)?;
        }
        self.get(id)
    }

    fn active_of_role(&self, role: &str) -> Result<usize> {
        Ok(self
            .store
            .by_state(&[State::Active])?
            .iter()
            .filter(|r| r.role == role)
            .count())
    }

    /// Asks for `by` seconds more on the caller's active grant `id`. The extension is a
    /// request of its own under the role's current approval rule: applied at once for a
    /// self-service role, pending approval otherwise. It can never take the grant past
    /// the role's `max_total_duration` (counted from activation) or, unless the role
    /// allows it, past the end of its window.
    pub fn extend(
        &mut self,
        who: &Actor,
        id: u64,
        by: u64,
        reason: &str,
        verdict: &Verdict,
    ) -> Result<RequestRow> {
        if by == 0 {
            return Err(Error::InvalidArgument("say how much longer (--by)".into()));
        }
        if by > jit_proto::MAX_DURATION_SECS {
            return Err(Error::InvalidArgument(format!(
                "an extension is at most {}",
                format_duration(jit_proto::MAX_DURATION_SECS)
            )));
        }
        let grant = self.own_active_grant(who, id)?;
        let now = self.now();
        let role = self.policy.role(&grant.role)?.clone();
        let (_, reason) = self.policy.check_request(
            &role,
            &who.name,
            &Ask::extension(&role.name, by, reason),
            now,
            self.dir.as_ref(),
        )?;
        let new_end =
            self.policy
                .extension_end(&role, grant.granted_at, grant.not_after, by, now)?;
        let open = self.store.open_of_user(&who.name)?;
        if let Some(dup) = open
            .iter()
            .find(|r| r.kind == Kind::Extension && r.extends == id)
        {
            return Err(Error::refused(
                Refusal::Duplicate,
                format!(
                    "extension request {} for grant {id} is already pending",
                    dup.id
                ),
            ));
        }
        let note = role.judge(verdict)?;
        let immediate = role.approvals == 0;
        let new = NewRequest {
            user: who.name.clone(),
            uid: who.uid,
            role: role.name.clone(),
            reason,
            duration_secs: by,
            state: if immediate {
                State::Applied
            } else {
                State::Pending
            },
            now,
            not_after: if immediate { new_end } else { 0 },
            // An extension cannot wait past the grant it extends.
            pending_until: if immediate {
                0
            } else {
                (now + to_secs(role.pending_timeout)).min(grant.not_after)
            },
            approvals_required: role.approvals,
            approvers: role.approvers.iter().map(|p| p.spec()).collect(),
            commands: grant.commands.clone(),
            run_as: grant.run_as.clone(),
            reauth: grant.reauth,
            ssh: grant.ssh,
            service: "jitctl".into(),
            tty: String::new(),
            rhost: String::new(),
            kind: Kind::Extension,
            extends: id,
            log_io: grant.log_io,
        };
        let (boot_id, boot_deadline) = self.boot_deadline(new_end);
        let ext = self.commit(|tx, recs| {
            let ext = store::insert_request(tx, &new)?;
            recs.push(store::append_audit(
                tx,
                &Event {
                    at: now,
                    actor: who,
                    action: "request-extension",
                    request_id: ext,
                    detail: format!(
                        "grant={id} role={} by={} {note} reason={}",
                        new.role,
                        format_duration(by),
                        new.reason
                    ),
                },
            )?);
            if immediate {
                store::set_not_after(tx, id, new_end, now)?;
                store::set_boot_deadline(tx, id, &boot_id, boot_deadline)?;
                recs.push(store::append_audit(
                    tx,
                    &Event {
                        at: now,
                        actor: who,
                        action: "extend",
                        request_id: id,
                        detail: format!(
                            "extension={ext} self-service not_after={}",
                            format_rfc3339(new_end)
                        ),
                    },
                )?);
            }
            Ok(ext)
        })?;
        if immediate {
            let row = self.get(id)?;
            self.install_or_revoke(&row)?;
        }
        self.get(ext)
    }

    /// Grant `id`, if it is active and `who` holds it (what may be extended).
    pub fn own_active_grant(&self, who: &Actor, id: u64) -> Result<RequestRow> {
        let grant = self.visible(who, id)?;
        if grant.uid != who.uid || grant.user != who.name {
            return Err(Error::NotAuthorized(format!(
                "grant {id} belongs to {}; only its holder can extend it",
                grant.user
            )));
        }
        if grant.state != State::Active || grant.kind == Kind::Extension {
            return Err(Error::WrongState(format!(
                "request {id} is not an active grant ({})",
                grant.state
            )));
        }
        Ok(grant)
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

    /// Acknowledges a break-glass grant: an approver of its role (or root), never its
    /// holder, with a comment.
    pub fn acknowledge(&mut self, who: &Actor, id: u64, comment: &str) -> Result<RequestRow> {
        let comment = String::from(Text::new("comment", comment, MAX_COMMENT)?);
        let row = self.visible(who, id)?;
        if row.kind != Kind::BreakGlass {
            return Err(Error::WrongState(format!(
                "request {id} is not a break-glass grant"
            )));
        }
        if row.uid == who.uid || row.user == who.name {
            return Err(Error::NotAuthorized(format!(
                "{} may not review their own break-glass grant {id}",
                who.name
            )));
        }
        self.check_not_holder_in_disguise(who, &row, "review")?;
        let direct = match self.policy.role(&row.role) {
            Ok(_) => self
                .policy
                .approver_view(&who.name, self.dir.as_ref())?
                .direct
                .contains(&row.role),
            Err(_) => false,
        };
        if !(who.uid == 0 || direct) {
            return Err(Error::NotAuthorized(format!(
                "{} is not an approver for role '{}'",
                who.name, row.role
            )));
        }
        if !row.reviewed_by.is_empty() {
            return Err(Error::WrongState(format!(
                "break-glass grant {id} was already reviewed by {}",
                row.reviewed_by
            )));
        }
        let now = self.now();
        self.commit(|tx, recs| {
            store::mark_reviewed(tx, id, &who.name, now, &comment)?;
            recs.push(store::append_audit(
                tx,
                &Event {
                    at: now,
                    actor: who,
                    action: "review",
                    request_id: id,
                    detail: format!("role={} holder={} comment={comment}", row.role, row.user),
                },
            )?);
            Ok(())
        })?;
        self.get(id)
    }

    /// The active grants' rules of one shard, as the database says.
    fn shard_rules(&self, shard: u32) -> Result<Vec<Rule>> {
        Ok(self
            .store
            .by_state(&[State::Active])?
            .iter()
            // A grant whose time is up has no rule, even while the database cannot yet
            // record that it expired.
            .filter(|r| shard_of(r.id) == shard && self.ms_left(r) > 0)
            .map(|r| rule_of(r, &self.policy.iolog_dir))
            .collect())
    }

    /// Rewrites a shard from the database.
    fn sync_shard(&mut self, shard: u32) -> std::result::Result<(), String> {
        let rules = self.shard_rules(shard).map_err(|e| e.to_string())?;
        if self.rules.shard_matches(shard, &rules) {
            return Ok(());
        }
        self.rules.write_shard(shard, &rules)
    }

    /// Revokes grants as jitd, in one transaction, with the reason given.
    fn revoke_as_jitd(&mut self, ids: &[u64], why: &str) -> Result<()> {
        let now = self.now();
        let jitd = Actor::jitd();
        self.commit(|tx, recs| {
            for &id in ids {
                recs.push(store::transition_audited(
                    tx,
                    &Transition {
                        id,
                        from: State::Active,
                        to: State::Revoked,
                        now,
                        not_after: None,
                        decided_by: "jitd",
                        decision_reason: why,
                    },
                    &Event {
                        at: now,
                        actor: &jitd,
                        action: "revoke",
                        request_id: id,
                        detail: why.to_string(),
                    },
                )?);
            }
            Ok(())
        })
    }

    /// Puts an active grant's rule in place; if that fails, the grant is revoked (fail
    /// closed) and the error returned.
    fn install_or_revoke(&mut self, row: &RequestRow) -> Result<()> {
        let shard = shard_of(row.id);
        match self.sync_shard(shard) {
            Ok(()) => Ok(()),
            Err(e) => {
                let msg = format!(
                    "could not install the sudoers rule for grant {}: {e}",
                    row.id
                );
                let _ = self.revoke_as_jitd(&[row.id], &msg);
                let _ = self.sync_shard(shard);
                Err(self.fail(msg))
            }
        }
    }

    /// After grants ended: rewrite their shards (once each) and clear their users' sudo
    /// time stamps. The state already says ended; if a rewrite fails, NOTAFTER and the next
    /// reconciliation still hold, and the error shows in `jitctl status`.
    fn remove_rules_of(&mut self, ended: &[RequestRow]) {
        let mut shards: Vec<u32> = ended.iter().map(|r| shard_of(r.id)).collect();
        shards.sort_unstable();
        shards.dedup();
        for shard in shards {
            if let Err(e) = self.sync_shard(shard) {
                let _ = self.fail(format!("removing rules from shard {shard}: {e}"));
            }
        }
        for r in ended {
            if let Err(e) = self.rules.clear_timestamps(&r.user) {
                let _ = self.fail(e);
            }
            self.end_sessions_of(r.id);
        }
    }

    /// Ends the sessions registered under `grant` (a `session-end` record, their stored rows
    /// removed in the same transaction; the signals are sent even if that fails).
    fn end_sessions_of(&mut self, grant: u64) {
        let sessions = self.sessions.take(grant);
        if sessions.is_empty() {
            return;
        }
        let pids: Vec<String> = sessions.iter().map(|s| s.pid.to_string()).collect();
        self.audit_with(
            &Actor::jitd(),
            "session-end",
            grant,
            format!("pids={} signal=HUP then KILL", pids.join(",")),
            |tx| store::delete_sessions(tx, grant, None),
        );
        crate::sessions::end(sessions);
    }

    /// An audit record with no state change of its own.
    fn audit_only(&mut self, who: &Actor, action: &str, request_id: u64, detail: String) {
        self.audit_with(who, action, request_id, detail, |_| Ok(()));
    }

    /// An audit record and `also` (bookkeeping that is not a state change), in one
    /// transaction. A failure is logged: the record is about something already done.
    fn audit_with(
        &mut self,
        who: &Actor,
        action: &str,
        request_id: u64,
        detail: String,
        also: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<()>,
    ) {
        let now = self.now();
        let r = self.commit(|tx, recs| {
            also(tx)?;
            recs.push(store::append_audit(
                tx,
                &Event {
                    at: now,
                    actor: who,
                    action,
                    request_id,
                    detail,
                },
            )?);
            Ok(())
        });
        if let Err(e) = r {
            tracing::error!("audit record {action} for {request_id} failed: {e}");
        }
    }

    /// Registers a session (pam_jit's session hook) under the grant that could have
    /// authorised it and ends first ([`Core::authorising_grant`]); it is ended when that
    /// grant ends, and its terminal (`tty`) gets the warnings before. Returns None if the
    /// user holds no such grant. For a sudo session of a role that logs I/O it also
    /// says where sudo records it: the newest session in the holder's I/O log directory
    /// (sudo has created it, and advanced its `seq` file, before it opens the PAM session).
    /// The audit record and the stored row are written by [`Core::record_session_open`],
    /// after the caller has its answer: they record a use, they do not authorize one, and
    /// their fsync need not hold up sudo.
    pub fn open_session(
        &mut self,
        who: &Actor,
        session: &SessionSpec,
        origin: &Origin,
    ) -> Result<Option<OpenedSession>> {
        let pid = session.pid;
        let Some(grant) = self.authorising_grant(&who.name, session)? else {
            return Ok(None);
        };
        let start_time = self
            .sessions
            .open(grant.id, pid, &origin.tty)
            .map_err(|e| Error::InvalidArgument(format!("cannot track session {pid}: {e}")))?;
        let iolog = (grant.log_io && origin.service.starts_with("sudo"))
            .then(|| crate::sudoers::newest_iolog(&self.policy.iolog_dir, &grant.user))
            .flatten();
        Ok(Some(OpenedSession {
            grant: grant.id,
            pid,
            start_time,
            iolog,
        }))
    }

    /// The `session-open` record (a use of the grant, where it came from, and where sudo
    /// records it when the role logs I/O) and the stored session, in one transaction.
    pub fn record_session_open(&mut self, who: &Actor, s: &OpenedSession, origin: &Origin) {
        let mut detail = format!(
            "pid={} service={} tty={} rhost={}",
            s.pid, origin.service, origin.tty, origin.rhost
        );
        if let Some(path) = &s.iolog {
            detail.push_str(&format!(" iolog={path}"));
        }
        let row = store::SessionRow {
            grant_id: s.grant,
            pid: s.pid,
            start_time: s.start_time,
            boot_id: self.clock.boot_id().to_string(),
            tty: origin.tty.clone(),
        };
        self.audit_with(who, "session-open", s.grant, detail, |tx| {
            store::insert_session(tx, &row)
        });
    }

    /// Takes up the stored sessions after a restart (before expiry runs, so the sessions of
    /// grants that ended while jitd was away are ended with them). A session whose process
    /// has gone, or whose pid now names another process, is forgotten; one whose grant is
    /// no longer active (jitd stopped between ending a grant and ending its sessions) is
    /// ended now. Returns how many are tracked again.
    fn restore_sessions(&mut self) -> Result<usize> {
        let rows = self.store.sessions()?;
        let boot = self.clock.boot_id().to_string();
        let (mut tracked, mut forget, mut orphaned) = (0, Vec::new(), Vec::new());
        for row in rows {
            let restored = if row.boot_id == boot {
                self.sessions
                    .restore(row.grant_id, row.pid, row.start_time, &row.tty)
            } else {
                Err("from another boot".into())
            };
            // A grant that cannot be read counts as ended: its session ends (fail closed).
            let active = || matches!(self.get(row.grant_id), Ok(g) if g.state == State::Active);
            match restored {
                Ok(()) if active() => tracked += 1,
                Ok(()) => orphaned.push(row.grant_id),
                Err(why) => {
                    tracing::info!(
                        "session pid={} of grant {} not taken up: {why}",
                        row.pid,
                        row.grant_id
                    );
                    forget.push(row);
                }
            }
        }
        if !forget.is_empty() {
            self.commit(|tx, _| {
                for row in &forget {
                    store::delete_sessions(tx, row.grant_id, Some(row.pid))?;
                }
                Ok(())
            })?;
        }
        orphaned.dedup();
        for grant in orphaned {
            self.end_sessions_of(grant);
        }
        Ok(tracked)
    }

    /// Records one approval. The request becomes active once it has the required number of
    /// distinct approvals, none of them from the requester; an extension is then applied to
    /// its grant. Everything that must hold when a grant starts (window, limits,
    /// separation of duties) is checked again at that moment; if it does not hold, the
    /// approval is refused and not recorded.
    pub fn approve(&mut self, who: &Actor, id: u64, comment: &str) -> Result<RequestRow> {
        let row = self.visible(who, id)?;
        if row.uid == who.uid || row.user == who.name {
            return Err(Error::NotAuthorized(format!(
                "{} may not approve their own request {id}",
                who.name
            )));
        }
        self.check_not_holder_in_disguise(who, &row, "approve")?;
        if !self.is_approver(&row, who)? {
            return Err(Error::NotAuthorized(format!(
                "{} is not an approver for role '{}'",
                who.name, row.role
            )));
        }
        if row.state != State::Pending {
            return Err(Error::WrongState(format!(
                "request {id} is {}; only pending requests can be approved",
                row.state
            )));
        }
        let now = self.now();
        if row.pending_until != 0 && now >= row.pending_until {
            return Err(Error::WrongState(format!(
                "request {id} has timed out waiting for approval"
            )));
        }
        let already = self.store.approvers_of(id)?;
        if already
            .iter()
            .any(|(n, uid)| *uid == who.uid || *n == who.name)
        {
            return Err(Error::WrongState(format!(
                "{} has already approved request {id}",
                who.name
            )));
        }
        let approver_open = self.store.open_of_user(&who.name)?;
        self.policy
            .check_approver_separation(&row.role, &who.name, &held(&approver_open))?;
        let comment = if comment.trim().is_empty() {
            String::new()
        } else {
            String::from(Text::new("comment", comment, MAX_COMMENT)?)
        };
        let distinct = already.len() + 1;
        let activate = distinct >= usize::try_from(row.approvals_required).unwrap_or(usize::MAX);
        let activation = if activate {
            Some(self.activation(&row, now)?)
        } else {
            None
        };
        let (boot_id, boot_deadline) = match activation {
            Some(Activation::Grant { not_after } | Activation::Extension { not_after, .. }) => {
                self.boot_deadline(not_after)
            }
            None => (String::new(), 0),
        };
        self.commit(|tx, recs| {
            store::add_approval(tx, id, who, now, &comment)?;
            recs.push(store::append_audit(
                tx,
                &Event {
                    at: now,
                    actor: who,
                    action: "approve",
                    request_id: id,
                    detail: format!(
                        "approval {distinct}/{} comment={comment}",
                        row.approvals_required
                    ),
                },
            )?);
            match activation {
                None => {}
                Some(Activation::Grant { not_after }) => {
                    recs.push(store::transition_audited(
                        tx,
                        &Transition {
                            id,
                            from: State::Pending,
                            to: State::Active,
                            now,
                            not_after: Some(not_after),
                            decided_by: "",
                            decision_reason: "",
                        },
                        &Event {
                            at: now,
                            actor: who,
                            action: "grant",
                            request_id: id,
                            detail: format!(
                                "role={} not_after={}",
                                row.role,
                                format_rfc3339(not_after)
                            ),
                        },
                    )?);
                    store::set_boot_deadline(tx, id, &boot_id, boot_deadline)?;
                }
                Some(Activation::Extension { grant, not_after }) => {
                    store::transition(
                        tx,
                        &Transition {
                            id,
                            from: State::Pending,
                            to: State::Applied,
                            now,
                            not_after: Some(not_after),
                            decided_by: "",
                            decision_reason: "",
                        },
                    )?;
                    store::set_not_after(tx, grant, not_after, now)?;
                    store::set_boot_deadline(tx, grant, &boot_id, boot_deadline)?;
                    recs.push(store::append_audit(
                        tx,
                        &Event {
                            at: now,
                            actor: who,
                            action: "extend",
                            request_id: grant,
                            detail: format!(
                                "extension={id} not_after={}",
                                format_rfc3339(not_after)
                            ),
                        },
                    )?);
                }
            }
            Ok(())
        })?;
        match activation {
            Some(Activation::Grant { .. }) => {
                let row = self.get(id)?;
                self.install_or_revoke(&row)?;
            }
            Some(Activation::Extension { grant, .. }) => {
                let row = self.get(grant)?;
                self.install_or_revoke(&row)?;
            }
            None => {}
        }
        self.get(id)
    }

    /// What approving `row` would start now, or why it cannot.
    fn activation(&self, row: &RequestRow, now: i64) -> Result<Activation> {
        let role = self.policy.role(&row.role).map_err(|_| {
            Error::WrongState(format!(
                "role '{}' is no longer in the policy; request {} cannot start",
                row.role, row.id
            ))
        })?;
        self.policy.check_window(role, now)?;
        if row.kind == Kind::Extension {
            let grant = self.get(row.extends)?;
            if grant.state != State::Active {
                return Err(Error::WrongState(format!(
                    "grant {} has ended ({}); extension {} cannot apply",
                    grant.id, grant.state, row.id
                )));
            }
            let not_after = self.policy.extension_end(
                role,
                grant.granted_at,
                grant.not_after,
                row.duration_secs,
                now,
            )?;
            return Ok(Activation::Extension {
                grant: grant.id,
                not_after,
            });
        }
        let open: Vec<RequestRow> = self
            .store
            .open_of_user(&row.user)?
            .into_iter()
            .filter(|r| r.id != row.id)
            .collect();
        let held = held(&open);
        self.policy.check_limits(
            role,
            &row.user,
            &held,
            self.active_of_role(&row.role)?,
            true,
        )?;
        self.policy.check_separation(&row.role, &row.user, &held)?;
        Ok(Activation::Grant {
            not_after: self
                .policy
                .grant_end(role, row.kind, now, row.duration_secs),
        })
    }

    /// Refuses a decision on `row` that comes from its requester under another identity:
    /// from a process of the requester's own login session (`loginuid`, which su and sudo
    /// keep), or from a user the requester can run commands as through an active grant
    /// (`sudo -u approver jitctl approve`). `what` names the decision for the message.
    fn check_not_holder_in_disguise(
        &self,
        who: &Actor,
        row: &RequestRow,
        what: &str,
    ) -> Result<()> {
        if who.login_uid == Some(row.uid) {
            return Err(Error::NotAuthorized(format!(
                "{} may not {what} request {}: the call comes from a login session of its \
                 requester {} (loginuid {})",
                who.name, row.id, row.user, row.uid
            )));
        }
        let assumable = self
            .store
            .open_of_user(&row.user)?
            .into_iter()
            .filter(|g| g.state == State::Active && g.uid == row.uid)
            .find(|g| g.run_as.contains(&who.name));
        if let Some(g) = assumable {
            return Err(Error::NotAuthorized(format!(
                "{} may not {what} request {}: its requester {} can run commands as {} \
                 (grant {}, role '{}')",
                who.name, row.id, row.user, who.name, g.id, g.role
            )));
        }
        Ok(())
    }

    fn end(
        &mut self,
        who: &Actor,
        row: &RequestRow,
        to: State,
        action: &str,
        reason: &str,
    ) -> Result<RequestRow> {
        let now = self.now();
        let from = row.state;
        let id = row.id;
        self.commit(|tx, recs| {
            recs.push(store::transition_audited(
                tx,
                &Transition {
                    id,
                    from,
                    to,
                    now,
                    not_after: None,
                    decided_by: &who.name,
                    decision_reason: reason,
                },
                &Event {
                    at: now,
                    actor: who,
                    action,
                    request_id: id,
                    detail: format!("role={} from={from} reason={reason}", row.role),
                },
            )?);
            Ok(())
        })?;
        if from == State::Active {
            self.remove_rules_of(std::slice::from_ref(row));
        }
        self.get(id)
    }

    /// An approver (or root) denies a pending request.
    pub fn deny(&mut self, who: &Actor, id: u64, reason: &str) -> Result<RequestRow> {
        self.end_by_approver(who, id, reason, Ending::Deny)
    }

    /// An approver (or root) ends an active grant.
    pub fn revoke(&mut self, who: &Actor, id: u64, reason: &str) -> Result<RequestRow> {
        self.end_by_approver(who, id, reason, Ending::Revoke)
    }

    fn end_by_approver(
        &mut self,
        who: &Actor,
        id: u64,
        reason: &str,
        how: Ending,
    ) -> Result<RequestRow> {
        let reason = String::from(Text::new("reason", reason, MAX_COMMENT)?);
        let row = self.visible(who, id)?;
        if !(who.uid == 0 || self.is_approver(&row, who)?) {
            return Err(Error::NotAuthorized(format!(
                "{} is not an approver for role '{}'",
                who.name, row.role
            )));
        }
        let (from, to, verb, what) = match how {
            Ending::Deny => (State::Pending, State::Denied, "deny", "pending requests"),
            Ending::Revoke => (State::Active, State::Revoked, "revoke", "active grants"),
        };
        if row.state != from {
            return Err(Error::WrongState(format!(
                "request {id} is {}; only {what} can be {}",
                row.state,
                to.as_str()
            )));
        }
        self.end(who, &row, to, verb, &reason)
    }

    /// Ends the caller's own grant early. `id` 0 means "my only active grant".
    pub fn release(&mut self, who: &Actor, id: u64) -> Result<RequestRow> {
        let row = if id == 0 {
            let mine: Vec<RequestRow> = self
                .store
                .open_of_user(&who.name)?
                .into_iter()
                .filter(|r| r.state == State::Active && r.uid == who.uid)
                .collect();
            match mine.as_slice() {
                [one] => one.clone(),
                [] => return Err(Error::NotFound(format!("{} has no active grant", who.name))),
                many => {
                    let ids: Vec<String> = many.iter().map(|r| r.id.to_string()).collect();
                    return Err(Error::InvalidArgument(format!(
                        "{} has several active grants ({}); say which to release",
                        who.name,
                        ids.join(", ")
                    )));
                }
            }
        } else {
            self.visible(who, id)?
        };
        if row.uid != who.uid {
            return Err(Error::NotAuthorized(format!(
                "request {} belongs to {}; only its holder can release it",
                row.id, row.user
            )));
        }
        if row.state != State::Active {
            return Err(Error::WrongState(format!(
                "request {} is {}; only active grants can be released",
                row.id, row.state
            )));
        }
        self.end(who, &row, State::Released, "release", "released by holder")
    }

    /// Withdraws the caller's own pending request.
    pub fn cancel(&mut self, who: &Actor, id: u64) -> Result<RequestRow> {
        let row = self.visible(who, id)?;
        if row.uid != who.uid {
            return Err(Error::NotAuthorized(format!(
                "request {id} belongs to {}; only its requester can cancel it",
                row.user
            )));
        }
        if row.state != State::Pending {
            return Err(Error::WrongState(format!(
                "request {id} is {}; only pending requests can be cancelled",
                row.state
            )));
        }
        self.end(
            who,
            &row,
            State::Cancelled,
            "cancel",
            "cancelled by requester",
        )
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
        Ok(match self.best_active(user, ssh)? {
            Some(r) => GrantCheck {
                active: true,
                request_id: r.id,
                role: r.role.to_string(),
                not_after: r.not_after,
            },
            None => GrantCheck {
                active: false,
                request_id: 0,
                role: String::new(),
                not_after: 0,
            },
        })
    }

    /// The user's grants in force now (with `ssh`: of roles that admit ssh logins).
    fn in_force(&self, user: &str, ssh: bool) -> Result<Vec<RequestRow>> {
        Ok(self
            .store
            .open_of_user(user)?
            .into_iter()
            .filter(|r| {
                r.state == State::Active
                    && r.kind != Kind::Extension
                    && self.ms_left(r) > 0
                    && (!ssh || r.ssh)
            })
            .collect())
    }

    /// The user's active grant (with `ssh`: one whose role admits ssh) that lasts longest.
    fn best_active(&self, user: &str, ssh: bool) -> Result<Option<RequestRow>> {
        Ok(self
            .in_force(user, ssh)?
            .into_iter()
            .max_by_key(|r| r.not_after))
    }

    /// The grant a session is bound to. jitd cannot see which sudoers rule sudo matched,
    /// so of the grants that could have authorised the session it takes the one that ends
    /// first (fail closed: the session never outlives the grant that authorised it). An
    /// ssh login: only grants of roles with `ssh = true`. A sudo session: the grants whose
    /// role runs as the session's target user; if none does (a static rule authorised it,
    /// or jitd cannot tell), every grant of the user.
    pub fn authorising_grant(&self, user: &str, s: &SessionSpec) -> Result<Option<RequestRow>> {
        let all = self.in_force(user, s.ssh)?;
        let by_target: Vec<&RequestRow> = all
            .iter()
            .filter(|r| s.ssh || s.target.as_ref().is_some_and(|t| r.run_as.contains(t)))
            .collect();
        let candidates = if by_target.is_empty() {
            all.iter().collect()
        } else {
            by_target
        };
        Ok(candidates
            .into_iter()
            .min_by_key(|r| (self.ms_left(r), r.id))
            .cloned())
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

    /// Ends every grant and pending request whose time is up, in one transaction, then
    /// rewrites each affected shard once. Returns the next deadline (unix seconds) if any
    /// request is still open.
    pub fn expire_due(&mut self) -> Result<Option<i64>> {
        let now = self.now();
        let open = self.store.by_state(&[State::Pending, State::Active])?;
        let mut next: Option<i64> = None;
        let mut due = Vec::new();
        let active: std::collections::HashSet<u64> = open
            .iter()
            .filter(|r| r.state == State::Active)
            .map(|r| r.id)
            .collect();
        let now_ms = self.now_ms();
        for r in open {
            let deadline = match r.state {
                State::Active => {
                    let left_ms = self.ms_left(&r);
                    if left_ms <= 0 {
                        due.push(r);
                        continue;
                    }
                    self.warn_sessions(&r, left_ms);
                    // In whole seconds, rounded up: the timer wakes at or after the end.
                    (now_ms.saturating_add(left_ms) + 999).div_euclid(1000)
                }
                // An extension of a grant that ended early has nothing left to extend.
                _ if r.kind == Kind::Extension && !active.contains(&r.extends) => now,
                _ if r.pending_until > 0 => r.pending_until,
                _ => continue,
            };
            if r.state != State::Active && deadline <= now {
                due.push(r);
            } else {
                next = Some(next.map_or(deadline, |n| n.min(deadline)));
            }
        }
        if due.is_empty() {
            return Ok(next);
        }
        let jitd = Actor::jitd();
        let recorded = self.commit(|tx, recs| {
            for r in &due {
                let why = match r.state {
                    State::Active if r.not_after <= now => "grant reached not_after",
                    State::Active => "grant time used up (boot clock; the wall clock was set back)",
                    _ if r.kind == Kind::Extension && !active.contains(&r.extends) => {
                        "the grant it extends has ended"
                    }
                    _ => "no decision before the pending timeout",
                };
                recs.push(store::transition_audited(
                    tx,
                    &Transition {
                        id: r.id,
                        from: r.state,
                        to: State::Expired,
                        now,
                        not_after: None,
                        decided_by: "jitd",
                        decision_reason: why,
                    },
                    &Event {
                        at: now,
                        actor: &jitd,
                        action: "expire",
                        request_id: r.id,
                        detail: format!("role={} from={} reason={why}", r.role, r.state),
                    },
                )?);
            }
            Ok(())
        });
        // Privilege ends on time even when the database cannot record it (a full disk):
        // the rules go now, the expiry is recorded on a later pass.
        let ended: Vec<RequestRow> = due
            .into_iter()
            .filter(|r| r.state == State::Active)
            .collect();
        self.remove_rules_of(&ended);
        recorded?;
        Ok(next)
    }

    /// Active grants made on another boot (or by a jitd that kept no boot deadline): their
    /// boot-clock deadline means nothing on this boot. Each is judged again: a role that is
    /// gone, or a user who may no longer request it, revokes it; otherwise it gets a
    /// deadline on this boot's clock from the wall clock, never longer than the grant's own
    /// length (so a clock set back across the reboot cannot lengthen it). Grants already
    /// past `not_after` are left to expiry. Returns how many were revoked.
    fn reevaluate_other_boots(&mut self) -> Result<usize> {
        if self.clock.boot_ms().is_none() {
            return Ok(0);
        }
        let now = self.now();
        let current = self.clock.boot_id().to_string();
        let stale: Vec<RequestRow> = self
            .store
            .by_state(&[State::Active])?
            .into_iter()
            .filter(|r| r.boot_id != current && r.not_after > now)
            .collect();
        let mut revoke: Vec<(u64, String)> = Vec::new();
        let mut anchor: Vec<(RequestRow, i64, String, i64)> = Vec::new();
        for r in stale {
            let allowed = match self.policy.requestable(&r.user, self.dir.as_ref()) {
                Ok(roles) if roles.iter().any(|role| role.name == r.role) => Ok(()),
                Ok(_) => Err(format!(
                    "after a reboot: {} may no longer hold role '{}'",
                    r.user, r.role
                )),
                Err(e) => Err(format!(
                    "after a reboot: cannot confirm {} may hold role '{}': {e}",
                    r.user, r.role
                )),
            };
            if let Err(why) = allowed {
                revoke.push((r.id, why));
                continue;
            }
            let left = (r.not_after - now).min(r.not_after - r.granted_at).max(0);
            let (boot_id, deadline) = self.boot_deadline(now + left);
            anchor.push((r, left, boot_id, deadline));
        }
        for (id, why) in &revoke {
            self.revoke_as_jitd(&[*id], why)?;
        }
        if anchor.is_empty() {
            return Ok(revoke.len());
        }
        let jitd = Actor::jitd();
        self.commit(|tx, recs| {
            for (r, left, boot_id, deadline) in &anchor {
                store::set_boot_deadline(tx, r.id, boot_id, *deadline)?;
                recs.push(store::append_audit(
                    tx,
                    &Event {
                        at: now,
                        actor: &jitd,
                        action: "reevaluate",
                        request_id: r.id,
                        detail: format!(
                            "role={} boot changed (was {}); {} left by the wall clock, not_after={}",
                            r.role,
                            if r.boot_id.is_empty() { "unknown" } else { &r.boot_id },
                            format_duration(u64::try_from(*left).unwrap_or(0)),
                            format_rfc3339(r.not_after)
                        ),
                    },
                )?);
            }
            Ok(())
        })?;
        Ok(revoke.len())
    }

    /// Warns the terminals of an active grant's sessions once it is within
    /// [`crate::sessions::WARN_BEFORE`] of its end (`left_ms`).
    fn warn_sessions(&mut self, r: &RequestRow, left_ms: i64) {
        let left = u64::try_from(left_ms / 1000).unwrap_or(0);
        if !crate::sessions::WARN_BEFORE.iter().any(|&t| left <= t) {
            return;
        }
        let length = u64::try_from(r.not_after - r.granted_at).unwrap_or(0);
        let (id, role, end) = (r.id, &r.role, r.not_after);
        let n = self.sessions.warn(id, left, length, |left| {
            format!(
                "\r\n\x07jit: your grant {id} ({role}) ends in {} (at {}); \
                 extend it with: jitctl extend {id} --by DURATION\r\n",
                format_duration(left.max(1)),
                format_rfc3339(end)
            )
        });
        if n > 0 {
            tracing::info!("warned {n} terminal(s) of grant {id}: {left} s left");
        }
    }

    /// Brings the sudoers directory in line with the database: expired grants end, files
    /// under jitd's prefix that are not shards go, and every shard that differs from what
    /// the database says is written again (or removed). A shard that cannot be written has
    /// its grants revoked. Runs before jitd takes its bus name.
    pub fn reconcile(&mut self) -> Result<Reconciled> {
        let mut rep = Reconciled {
            revoked: self.reevaluate_other_boots()?,
            sessions: self.restore_sessions()?,
            ..Reconciled::default()
        };
        let before = self.store.by_state(&[State::Active, State::Pending])?.len();
        self.expire_due()?;
        let after = self.store.by_state(&[State::Active, State::Pending])?.len();
        rep.expired = before.saturating_sub(after);
        let crate::sudoers::Owned {
            shards,
            foreign,
            temps,
            planted,
        } = self.rules.owned().map_err(|e| self.fail(e))?;
        // Something jitd never creates, at one of its names: an attack or a mistake. It is
        // removed (unlink never follows a link), recorded, and shown in `jitctl status`.
        for (name, what) in &planted {
            let msg = format!(
                "{}/{name} is {what}, which jitd never creates; removed",
                self.rules.location()
            );
            self.rules
                .remove_owned(name)
                .map_err(|e| self.fail(format!("{msg} (failed: {e}); refusing to start")))?;
            self.audit_only(&Actor::jitd(), "tamper", 0, msg.clone());
            let _ = self.fail(msg);
        }
        rep.removed += planted.len();
        for name in foreign.iter().chain(&temps) {
            self.rules.remove_owned(name).map_err(|e| self.fail(e))?;
        }
        rep.removed += foreign.len();
        for shard in 0..crate::sudoers::SHARDS {
            let rules = self.shard_rules(shard)?;
            if self.rules.shard_matches(shard, &rules) {
                continue;
            }
            match self.rules.write_shard(shard, &rules) {
                Ok(()) if rules.is_empty() => {
                    if shards.contains(&shard) {
                        rep.removed += 1;
                    }
                }
                Ok(()) => rep.restored += rules.len(),
                Err(e) => {
                    let ids: Vec<u64> = rules.iter().map(|r| r.grant_id).collect();
                    let msg = format!("could not restore sudoers shard {shard}: {e}");
                    self.revoke_as_jitd(&ids, &msg)?;
                    let _ = self.rules.write_shard(shard, &[]);
                    let _ = self.fail(msg);
                    rep.revoked += ids.len();
                }
            }
        }
        let jitd = Actor::jitd();
        let now = self.now();
        let detail = format!(
            "expired={} removed={} restored={} revoked={} sessions={}",
            rep.expired, rep.removed, rep.restored, rep.revoked, rep.sessions
        );
        self.commit(|tx, recs| {
            recs.push(store::append_audit(
                tx,
                &Event {
                    at: now,
                    actor: &jitd,
                    action: "reconcile",
                    request_id: 0,
                    detail,
                },
            )?);
            Ok(())
        })?;
        Ok(rep)
    }

    pub fn status(&self) -> Result<StatusInfo> {
        let active = self.store.by_state(&[State::Active])?.len();
        let pending = self.store.by_state(&[State::Pending])?.len();
        Ok(StatusInfo {
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: self.started_at,
            policy_path: self.policy.path.clone(),
            roles: u32::try_from(self.policy.roles.len()).unwrap_or(u32::MAX),
            active_grants: u32::try_from(active).unwrap_or(u32::MAX),
            pending_requests: u32::try_from(pending).unwrap_or(u32::MAX),
            sudoers_dir: self.rules.location(),
            last_error: self.last_error.clone(),
            unreviewed_break_glass: self.store.unreviewed_break_glass()?,
        })
    }

    fn is_any_approver(&self, who: &Actor) -> Result<bool> {
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
        let privileged = who.uid == 0 || self.is_any_approver(who)?;
        let user = match user {
            Some(u) if privileged => u.as_str(),
            None if privileged => "",
            _ => who.name.as_str(),
        };
        self.store.audit_since(since, user)
    }

    pub fn audit_verify(&self, who: &Actor) -> Result<AuditVerify> {
        if !(who.uid == 0 || self.is_any_approver(who)?) {
            return Err(Error::NotAuthorized(
                "only root and approvers may verify the audit trail".into(),
            ));
        }
        let (records, bad) = self.store.audit_verify()?;
        Ok(match bad {
            None => AuditVerify {
                ok: true,
                records,
                first_bad_seq: 0,
                message: format!("audit chain intact: {records} records"),
            },
            Some((seq, why)) => AuditVerify {
                ok: false,
                records,
                first_bad_seq: seq,
                message: format!("audit chain broken at record {seq}: {why}"),
            },
        })
    }
}

/// How an approver ends a request.
#[derive(Debug, Clone, Copy)]
enum Ending {
    Deny,
    Revoke,
}

/// What an approval that completes a request starts.
#[derive(Debug, Clone, Copy)]
enum Activation {
    Grant { not_after: i64 },
    Extension { grant: u64, not_after: i64 },
}

fn to_secs(d: u64) -> i64 {
    i64::try_from(d).unwrap_or(i64::MAX / 4)
}

#[cfg(test)]
mod feature_tests;
#[cfg(test)]
mod lifetime_tests;
#[cfg(test)]
mod tests;
