//! Time and reconciliation: grants and pending requests end when their time is up, the
//! sudoers shards are rewritten from the database (and a grant whose rule cannot be written
//! is revoked), grants from another boot are judged again, and at start everything in the
//! sudoers directory is brought in line with the database.

use super::*;
use crate::sudoers::SudoersError;

impl Core {
    /// The active grants' rules of one shard, as the database says.
    pub(super) fn shard_rules(&self, shard: u32) -> Result<Vec<Rule>> {
        self.store
            .by_state(&[State::Active])?
            .iter()
            // A grant whose time is up has no rule, even while the database cannot yet
            // record that it expired.
            .filter(|r| shard_of(r.id) == shard && self.ms_left(r) > 0)
            // A grant of groups only has no sudo rule.
            .filter(|r| !r.commands.is_empty())
            .map(|r| rule_of(r, &self.policy.iolog_dir))
            .collect::<Result<Vec<Rule>>>()
    }

    /// Rewrites a shard from the database.
    pub(super) fn sync_shard(&mut self, shard: u32) -> std::result::Result<(), SudoersError> {
        let rules = self
            .shard_rules(shard)
            .map_err(|e| SudoersError(e.to_string()))?;
        if self.rules.shard_matches(shard, &rules) {
            return Ok(());
        }
        self.rules.write_shard(shard, &rules)
    }

    /// Revokes grants as jitd, in one transaction, with the reason given.
    pub(super) fn revoke_as_jitd(&mut self, ids: &[u64], why: &str) -> Result<()> {
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
    pub(super) fn install_or_revoke(&mut self, row: &RequestRow) -> Result<()> {
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
    pub(super) fn remove_rules_of(&mut self, ended: &[RequestRow]) {
        let mut shards: Vec<u32> = ended.iter().map(|r| shard_of(r.id)).collect();
        shards.sort_unstable();
        shards.dedup();
        for shard in shards {
            if let Err(e) = self.sync_shard(shard) {
                let _ = self.fail(format!("removing rules from shard {shard}: {e}"));
            }
        }
        for r in ended {
            let cleared = UserName::new(r.holder())
                .map_err(|e| crate::sudoers::SudoersError(e.to_string()))
                .and_then(|holder| self.rules.clear_timestamps(&holder));
            if let Err(e) = cleared {
                let _ = self.fail(e.0);
            }
            self.end_sessions_of(r.id);
        }
        // Accounts of grants that ended go (one whose processes are still ending, or whose
        // removal failed, is finished by the timer).
        if ended.iter().any(|r| r.account)
            && let Err(e) = self.sync_accounts()
        {
            tracing::error!("removing accounts (will retry): {e}");
        }
        // Groups no grant gives any more are taken away (a failure is retried by the timer).
        let mut users: Vec<&UserName> = ended
            .iter()
            .filter(|r| !r.groups.is_empty() && !r.account)
            .map(|r| &r.user)
            .collect();
        users.sort_unstable();
        users.dedup();
        for u in users {
            if let Err(e) = self.sync_groups(u) {
                tracing::error!("taking groups from {u} (will retry): {e}");
            }
        }
    }

    /// What the timer has to announce about `r` (escalated, ending soon), and from when
    /// (unix seconds); None once announced, or if it never will be.
    fn announcement(
        &self,
        r: &RequestRow,
        now: i64,
        ending_soon_ms: i64,
    ) -> Option<(Announce, i64)> {
        match r.state {
            State::Pending if r.escalated_at == 0 => {
                let after = self.policy.role(&r.role).ok()?.escalate_after?;
                let at = r.created_at.saturating_add(to_secs(after));
                let open = r.pending_until == 0 || at < r.pending_until;
                (open
                    && !self
                        .policy
                        .role(&r.role)
                        .ok()?
                        .escalation_approvers
                        .is_empty())
                .then_some((Announce::Escalated, at))
            }
            State::Active if r.ending_soon_for != r.not_after => {
                // A grant shorter than the notice gets none (it would come at its start).
                let length_ms = r
                    .not_after
                    .saturating_sub(r.granted_at)
                    .saturating_mul(1000);
                if length_ms <= ending_soon_ms {
                    return None;
                }
                let left_ms = self.ms_left(r);
                let at = if left_ms <= ending_soon_ms {
                    now
                } else {
                    now.saturating_add((left_ms - ending_soon_ms + 999).div_euclid(1000))
                };
                Some((Announce::EndingSoon(r.not_after), at))
            }
            _ => None,
        }
    }

    /// Records the announcements due (one transaction): the events follow from the records.
    fn announce(&mut self, due: &[(u64, Announce)], now: i64) -> Result<()> {
        let jitd = Actor::jitd();
        self.commit_as(Requests::Untouched, |tx, recs| {
            for (id, a) in due {
                let (action, detail) = match a {
                    Announce::Escalated => {
                        store::mark_escalated(tx, *id, now)?;
                        (
                            "escalate",
                            "escalation approvers may decide now".to_string(),
                        )
                    }
                    Announce::EndingSoon(not_after) => {
                        store::mark_ending_soon(tx, *id, *not_after)?;
                        (
                            "ending-soon",
                            format!("not_after={}", format_rfc3339(*not_after)),
                        )
                    }
                };
                recs.push(store::append_audit(
                    tx,
                    &Event {
                        at: now,
                        actor: &jitd,
                        action,
                        request_id: *id,
                        detail,
                    },
                )?);
            }
            Ok(())
        })
    }

    /// Ends every grant and pending request whose time is up, in one transaction, then
    /// rewrites each affected shard once. Returns the next deadline (unix seconds) if any
    /// request is still open.
    pub fn expire_due(&mut self) -> Result<Option<i64>> {
        let now = self.now();
        // Fleet grants of a host whose view of etcd has stalled (`fleet_stale_after`).
        let mut next: Option<i64> = match self.suspend_stale_fleet(now) {
            Ok(at) => at,
            Err(e) => {
                tracing::error!("fleet_stale_after (will retry): {e}");
                Some(now + 1)
            }
        };
        let open = self.store.by_state(&[State::Pending, State::Active])?;
        let mut due = Vec::new();
        let active: std::collections::HashSet<u64> = open
            .iter()
            .filter(|r| r.state == State::Active)
            .map(|r| r.id)
            .collect();
        let now_ms = self.now_ms();
        let mut announce: Vec<(u64, Announce)> = Vec::new();
        let ending_soon_ms = to_secs(self.policy.ending_soon).saturating_mul(1000);
        for r in open {
            if let Some((a, at)) = self.announcement(&r, now, ending_soon_ms) {
                if at <= now {
                    announce.push((r.id, a));
                } else {
                    next = Some(next.map_or(at, |n| n.min(at)));
                }
            }
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
        // Accounts whose grant ended and that are not gone yet (processes still ending, a
        // failed userdel): tried again on every pass, and the next pass is soon.
        match self.sync_accounts() {
            Ok(true) => next = Some(next.map_or(now + 1, |n| n.min(now + 1))),
            Ok(false) => {}
            Err(e) => tracing::error!("ephemeral accounts (will retry): {e}"),
        }
        // Memberships left over by a failed removal: tried again on every pass.
        if let Ok(users) = self.groups_left_over() {
            for u in users {
                if let Err(e) = self.sync_groups(&u) {
                    tracing::error!("taking groups from {u} (will retry): {e}");
                }
            }
        }
        // An announcement that cannot be recorded never holds up an expiry.
        if !announce.is_empty()
            && let Err(e) = self.announce(&announce, now)
        {
            tracing::error!("recording escalation/ending-soon events failed (will retry): {e}");
        }
        if due.is_empty() {
            return Ok(next);
        }
        // Grants ending in this pass: their pending extensions end with them, for that reason.
        let ending: std::collections::HashSet<u64> = due
            .iter()
            .filter(|r| r.state == State::Active)
            .map(|r| r.id)
            .collect();
        let jitd = Actor::jitd();
        let recorded = self.commit(|tx, recs| {
            for r in &due {
                let why = match r.state {
                    State::Active if r.not_after <= now => "grant reached not_after",
                    State::Active => "grant time used up (boot clock; the wall clock was set back)",
                    _ if r.kind == Kind::Extension
                        && (!active.contains(&r.extends) || ending.contains(&r.extends)) =>
                    {
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
    pub(super) fn reevaluate_other_boots(&mut self) -> Result<usize> {
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
            // A fleet grant was judged by the fleet policy (and its approvals) when it was
            // applied: the local policy does not know fleet roles.
            let fleet_role = (r.service == "fleet")
                .then_some(self.fleet.as_ref())
                .flatten()
                .and_then(|f| f.policy.role(&r.role))
                .is_some_and(|role| role.requesters.iter().any(|u| *u == r.user));
            let allowed = match self.policy.requestable(&r.user, self.dir.as_ref()) {
                _ if fleet_role => Ok(()),
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
        } = self.rules.owned().map_err(|e| self.fail(e.0))?;
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
            self.rules.remove_owned(name).map_err(|e| self.fail(e.0))?;
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
        // Group memberships brought in line with the grants (a crash at any step of an
        // edit is finished here).
        self.sync_all_groups()?;
        // Accounts likewise, and any in jitd's range that it did not make.
        self.reconcile_accounts()?;
        let detail = format!(
            "expired={} removed={} restored={} revoked={} sessions={}",
            rep.expired, rep.removed, rep.restored, rep.revoked, rep.sessions
        );
        self.record(&Actor::jitd(), "reconcile", 0, detail)?;
        Ok(rep)
    }
}

/// What the timer announces about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Announce {
    Escalated,
    /// Ending soon, for this `not_after`.
    EndingSoon(i64),
}
