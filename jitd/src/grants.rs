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
use crate::names::{RoleName, Text, UserName};
use crate::policy::{Held, Policy, Verdict};
use crate::store::{self, Event, NewRequest, RequestRow, Store, Transition};
pub use crate::sudoers::Rules;
use crate::sudoers::{Rule, shard_of};
pub use in_force::{InForce, SharedIndex};
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
    /// The grants in force, rebuilt after every commit; shared with the service, which
    /// answers checks from it without this core's lock.
    index: Arc<SharedIndex>,
    /// The seal key file, once the state directory is known ([`Core::enable_sealing`]).
    seal_path: Option<std::path::PathBuf>,
    sealing: sealing::Sealing,
    /// The daemon's own check of the trail, a slice per timer pass.
    health: sealing::Health,
    /// This host's name, as events name it.
    host: String,
    /// Events committed since the service last took them ([`Core::take_notices`]).
    fresh: Vec<crate::notices::Notice>,
    /// Adds and removes group members ([`crate::groups::NoGroups`] until jitd sets one).
    groups: Box<dyn crate::groups::GroupEditor>,
    /// Makes and removes ephemeral accounts ([`crate::accounts::NoAccounts`] until jitd
    /// sets one).
    accounts: Box<dyn crate::accounts::AccountEditor>,
    /// This host's fleet, when it is in one (jitd's `--fleet`).
    fleet: Option<fleet::FleetConfig>,
    /// Accounts whose processes were sent SIGHUP (the first pass of their removal).
    hung_up: std::collections::HashSet<u32>,
    /// Per account uid, the processes its removal has ended so far.
    ended_pids: std::collections::HashMap<u32, Vec<String>>,
    /// Deliveries handed to the notifier agent and not yet reported on.
    leased: std::collections::HashSet<u64>,
    /// When the notifier agent last asked for deliveries (unix seconds; 0: not since start).
    agent_seen: std::sync::atomic::AtomicI64,
}

/// The sudoers rule of a grant; `iolog_dir` is where the policy has sudo record sessions.
/// The rule is the holder's: the requester, or the grant's account.
fn rule_of(r: &RequestRow, iolog_dir: &str) -> Result<Rule> {
    Ok(Rule {
        grant_id: r.id,
        user: UserName::new(r.holder())
            .map_err(|e| Error::Internal(format!("grant {}: holder: {e}", r.id)))?,
        role: r.role.clone(),
        run_as: r.run_as.clone(),
        commands: r.commands.clone(),
        not_after: r.not_after,
        reauth: r.reauth,
        iolog_dir: r.log_io.then(|| iolog_dir.to_string()),
    })
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
        let trail_base = store.audit_base().unwrap_or_default();
        let mut core = Core {
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
            index: Arc::new(SharedIndex::default()),
            seal_path: None,
            sealing: sealing::Sealing::Off,
            health: sealing::Health::new(&trail_base),
            host: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "localhost".into()),
            fresh: Vec::new(),
            groups: Box::new(crate::groups::NoGroups),
            accounts: Box::new(crate::accounts::NoAccounts),
            fleet: None,
            hung_up: std::collections::HashSet::new(),
            ended_pids: std::collections::HashMap::new(),
            leased: std::collections::HashSet::new(),
            agent_seen: std::sync::atomic::AtomicI64::new(0),
        };
        core.reindex();
        core
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
        let detail = format!("path={} roles={}", policy.path, policy.roles.len());
        self.record(&Actor::jitd(), "policy-reload", 0, detail)?;
        let groups = policy
            .roles
            .iter()
            .any(|r| !r.account && !r.groups.is_empty());
        let accounts = policy.roles.iter().any(|r| r.account);
        self.policy = policy;
        self.last_error.clear();
        // The tools' capabilities are kept at start only for what the policy then needed.
        if (groups || accounts) && !crate::privileges::tools_ready(groups, accounts) {
            let _ = self.fail(
                "the new policy grants groups or accounts, but jitd started without the \
                 capabilities their tools need: restart jitd (under systemd, with the \
                 drop-in groups.conf or accounts.conf)"
                    .into(),
            );
        }
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
    pub(super) fn boot_deadline(&self, not_after: i64) -> (String, i64) {
        match self.clock.boot_ms() {
            Some(boot) => {
                let left = not_after.saturating_mul(1000).saturating_sub(self.now_ms());
                (self.clock.boot_id().to_string(), boot.saturating_add(left))
            }
            None => (String::new(), 0),
        }
    }

    /// Milliseconds left on an active grant (see [`in_force::ms_left`]).
    pub(super) fn ms_left(&self, r: &RequestRow) -> i64 {
        in_force::ms_left(&*self.clock, r)
    }

    /// A syslog mirror that is down tries again (the timer's passes).
    pub fn mirror_keepalive(&self) {
        if let Some(m) = &self.mirror {
            m.keepalive();
        }
    }

    pub(super) fn publish(&self, records: &[AuditRecord]) {
        if let Some(m) = &self.mirror {
            for r in records {
                m.send(r);
            }
        }
    }

    pub(super) fn fail(&mut self, msg: String) -> Error {
        tracing::error!("{msg}");
        self.last_error = msg.clone();
        self.storage_failed = false;
        Error::Internal(msg)
    }

    /// Runs one transaction that writes state and audit records together.
    pub(super) fn commit<T>(
        &mut self,
        f: impl FnOnce(&rusqlite::Transaction<'_>, &mut Vec<AuditRecord>) -> Result<T>,
    ) -> Result<T> {
        self.commit_as(Requests::May, f)
    }

    /// [`Core::commit`], told whether the transaction may change requests: one that writes
    /// only audit records and session rows leaves the index of grants in force as it is.
    fn commit_as<T>(
        &mut self,
        requests: Requests,
        f: impl FnOnce(&rusqlite::Transaction<'_>, &mut Vec<AuditRecord>) -> Result<T>,
    ) -> Result<T> {
        let mut records = Vec::new();
        let mut notices = Vec::new();
        let now = self.clock.now();
        let (policy, host) = (&self.policy, &self.host);
        // Events, and their deliveries to notifier programs, commit with the change itself:
        // no crash in between can lose one.
        let out = self.store.transaction(|tx| {
            let v = f(tx, &mut records)?;
            notices = crate::notices::derive(tx, policy, host, &records)?;
            crate::outbox::enqueue(tx, policy, &notices, now)?;
            Ok(v)
        });
        match out {
            Ok(v) => {
                self.fresh.extend(notices);
                self.generation = self.generation.wrapping_add(1);
                if requests == Requests::May {
                    self.reindex();
                }
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

    /// How group memberships are edited (jitd: [`crate::groups::Gpasswd`]).
    pub fn set_group_editor(&mut self, editor: Box<dyn crate::groups::GroupEditor>) {
        self.groups = editor;
    }

    /// Events committed since the last call, for the watchers and terminals.
    pub fn take_notices(&mut self) -> Vec<crate::notices::Notice> {
        std::mem::take(&mut self.fresh)
    }

    /// The stored request `id`, with no authorization check.
    pub fn row(&self, id: u64) -> Result<RequestRow> {
        self.get(id)
    }

    pub(super) fn get(&self, id: u64) -> Result<RequestRow> {
        self.store
            .get(id)?
            .ok_or_else(|| Error::NotFound(format!("no request {id}")))
    }

    pub fn info(&self, r: &RequestRow) -> Result<RequestInfo> {
        // Who else may decide, and from when: from the role as the policy says it now.
        let escalation = self.policy.role(&r.role).ok().and_then(|role| {
            role.escalate_after.map(|after| {
                (
                    role.escalation_approvers
                        .iter()
                        .map(crate::policy::Principal::spec)
                        .collect::<Vec<_>>(),
                    r.created_at
                        .saturating_add(i64::try_from(after).unwrap_or(i64::MAX)),
                )
            })
        });
        let escalates_at = escalation.as_ref().map_or(0, |(_, at)| *at);
        // A fleet grant's approvals were verified from the fleet's records, not made here:
        // its approvers are those that completed it.
        let approved_by = if r.service == "fleet" {
            r.approvers.clone()
        } else {
            self.store
                .approvers_of(r.id)?
                .into_iter()
                .map(|(n, _)| n)
                .collect()
        };
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
            escalation_approvers: escalation.map(|(list, _)| list).unwrap_or_default(),
            escalates_at,
            commands: r.commands.iter().map(ToString::to_string).collect(),
            run_as: r.run_as.iter().map(ToString::to_string).collect(),
            groups: r.groups.iter().map(ToString::to_string).collect(),
            account: self.account_info(r),
            ssh_keys: r
                .key_fingerprints
                .iter()
                .zip(r.ssh_keys.iter().chain(std::iter::repeat(&String::new())))
                .map(|(fp, line)| match line.splitn(3, ' ').nth(2) {
                    Some(comment) => format!("{fp} {comment}"),
                    None => fp.clone(),
                })
                .collect(),
        })
    }

    /// Whether `who` may decide on `r` now (approvers, and escalation approvers once the
    /// request has waited long enough).
    pub fn is_approver(&self, r: &RequestRow, who: &Actor) -> Result<bool> {
        // An ephemeral account decides nothing (see `refuse_accounts`).
        if crate::accounts::in_range(who.uid) {
            return Ok(false);
        }
        // A fleet grant is decided by the fleet's approvers, never by a local role that
        // happens to have its name.
        if r.service == "fleet" {
            return Ok(false);
        }
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

    pub fn may_see(&self, who: &Actor, r: &RequestRow) -> Result<bool> {
        Ok(who.uid == 0 || r.uid == who.uid || self.is_approver(r, who)?)
    }

    /// Request `id` if `who` may see it. Every method that names a request goes through
    /// here first: one the caller may not see gets the very answer a request that does not
    /// exist gets, so nothing (owner, role, state) leaks through a refusal.
    pub(super) fn visible(&self, who: &Actor, id: u64) -> Result<RequestRow> {
        match self.store.get(id)? {
            Some(row) if self.may_see(who, &row)? => Ok(row),
            _ => Err(Error::NotFound(format!("no request {id}"))),
        }
    }

    /// An audit record with no state change of its own.
    pub(super) fn audit_only(
        &mut self,
        who: &Actor,
        action: &str,
        request_id: u64,
        detail: String,
    ) {
        self.audit_with(who, action, request_id, detail, |_| Ok(()));
    }

    /// An audit record and `also` (bookkeeping that is not a state change), in one
    /// transaction. A failure is logged: the record is about something already done.
    pub(super) fn audit_with(
        &mut self,
        who: &Actor,
        action: &str,
        request_id: u64,
        detail: String,
        also: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<()>,
    ) {
        if let Err(e) = self.record_with(who, action, request_id, detail, also) {
            tracing::error!("audit record {action} for {request_id} failed: {e}");
        }
    }

    /// An audit record with no state change of its own, which must be written (the caller
    /// refuses to go on without it).
    pub(super) fn record(
        &mut self,
        who: &Actor,
        action: &str,
        request_id: u64,
        detail: String,
    ) -> Result<()> {
        self.record_with(who, action, request_id, detail, |_| Ok(()))
    }

    /// The `also` closure writes audit-side rows only (sessions), never a request: the
    /// index of grants in force is not rebuilt for it.
    fn record_with(
        &mut self,
        who: &Actor,
        action: &str,
        request_id: u64,
        detail: String,
        also: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<()>,
    ) -> Result<()> {
        let now = self.now();
        self.commit_as(Requests::Untouched, |tx, recs| {
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
        })
    }
}

/// Whether a transaction may change the requests table (and so the grants in force).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Requests {
    May,
    /// Audit records and session rows only.
    Untouched,
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

mod accounts;
mod approvals;
mod decide;
mod deliveries;
mod expiry;
pub mod fleet;
mod in_force;
mod memberships;
pub mod sealing;
mod sessions;
mod views;

#[cfg(test)]
mod clock_tests;
#[cfg(test)]
mod feature_tests;
#[cfg(test)]
mod lifetime_tests;
#[cfg(test)]
pub(crate) mod tests;
