//! Temporary group membership (a role's `groups`): the user is added to each group while a
//! grant in force gives it, and taken out when none does, through the system's tool
//! ([`crate::groups`]). The database says which memberships jitd answers for and which the
//! user had before (never removed): a row is written before jitd adds anyone, and deleted
//! only after jitd took them out, so a crash at any step leaves a row that the next pass
//! (or the reconciliation at start) finishes. A process keeps its groups after
//! `/etc/group` changes: the user's processes that still carry a group taken away are ended
//! as sessions are.

use super::*;
use crate::store::Membership;
use std::collections::BTreeSet;

impl Core {
    /// The groups `user`'s grants in force give now, but for grant `except`.
    fn groups_given(&self, user: &str, except: u64) -> Result<BTreeSet<String>> {
        Ok(self
            .store
            .open_of_user(user)?
            .iter()
            // A grant of an account gives its groups to the account, made in them.
            .filter(|r| !r.account)
            .filter(|r| r.id != except && r.state == State::Active && self.ms_left(r) > 0)
            .flat_map(|r| r.groups.iter().map(ToString::to_string))
            .collect())
    }

    fn owned_by(&self, user: &str) -> Result<Vec<Membership>> {
        Ok(store::memberships(self.store.conn())?
            .into_iter()
            .filter(|m| m.user == user)
            .collect())
    }

    fn group_error(&mut self, e: String) -> Error {
        self.fail(format!("group membership: {e}"))
    }

    /// Brings `user`'s memberships in line with their grants in force: the groups given are
    /// added (the row first, the tool after), the groups no grant gives any more are taken
    /// away (the tool first, then the user's processes that still carry them end, then the
    /// row goes). A membership the user had before is never touched.
    pub(super) fn sync_groups(&mut self, user: &UserName) -> Result<()> {
        let wanted = self.groups_given(user, 0)?;
        let owned = self.owned_by(user)?;
        if wanted.is_empty() && owned.is_empty() {
            return Ok(());
        }
        let now = self.now();
        let jitd = Actor::jitd();
        for g in &wanted {
            let had_before = match owned.iter().find(|m| &m.group == g) {
                Some(m) => m.had_before,
                None => {
                    let had = self
                        .groups
                        .is_member(user, g)
                        .map_err(|e| self.group_error(e))?;
                    self.commit_as(Requests::Untouched, |tx, recs| {
                        store::take_membership(tx, user, g, had, now)?;
                        recs.push(store::append_audit(
                            tx,
                            &Event {
                                at: now,
                                actor: &jitd,
                                action: "group-add",
                                request_id: 0,
                                detail: format!(
                                    "user={user} group={g} {}",
                                    if had {
                                        "already a member: left as it is"
                                    } else {
                                        "added"
                                    }
                                ),
                            },
                        )?);
                        Ok(())
                    })?;
                    crate::faults::reached(crate::faults::Point::AfterGroupRow);
                    had
                }
            };
            if !had_before
                && !self
                    .groups
                    .is_member(user, g)
                    .map_err(|e| self.group_error(e))?
            {
                self.groups.add(user, g).map_err(|e| self.group_error(e))?;
                crate::faults::reached(crate::faults::Point::AfterGroupEdit);
            }
        }
        let uid = self.dir.uid_of(user).map_err(|e| self.group_error(e))?;
        for m in owned.iter().filter(|m| !wanted.contains(&m.group)) {
            let mut ended = Vec::new();
            if !m.had_before {
                if self
                    .groups
                    .is_member(user, &m.group)
                    .map_err(|e| self.group_error(e))?
                {
                    self.groups
                        .remove(user, &m.group)
                        .map_err(|e| self.group_error(e))?;
                    crate::faults::reached(crate::faults::Point::AfterGroupEdit);
                }
                let gid = self.groups.gid(&m.group).map_err(|e| self.group_error(e))?;
                if let (Some(uid), Some(gid)) = (uid, gid) {
                    ended = crate::sessions::carrying_group(uid, gid);
                }
            }
            let pids: Vec<String> = ended.iter().map(|s| s.pid.to_string()).collect();
            self.commit_as(Requests::Untouched, |tx, recs| {
                store::drop_membership(tx, user, &m.group)?;
                recs.push(store::append_audit(
                    tx,
                    &Event {
                        at: now,
                        actor: &jitd,
                        action: "group-remove",
                        request_id: 0,
                        detail: if m.had_before {
                            format!("user={user} group={} was a member before: kept", m.group)
                        } else {
                            format!(
                                "user={user} group={} removed; processes still carrying it \
                                 ended: [{}]",
                                m.group,
                                pids.join(",")
                            )
                        },
                    },
                )?);
                Ok(())
            })?;
            crate::sessions::end(ended);
        }
        Ok(())
    }

    /// After a grant started: its groups are given, or the grant is revoked (fail closed:
    /// never a grant that is not what was approved).
    pub(super) fn give_groups_or_revoke(&mut self, row: &RequestRow) -> Result<()> {
        if row.groups.is_empty() {
            return Ok(());
        }
        match self.sync_groups(&row.user) {
            Ok(()) => Ok(()),
            Err(e) => {
                let msg = format!("could not give grant {} its groups: {e}", row.id);
                let _ = self.revoke_as_jitd(&[row.id], &msg);
                let _ = self.sync_shard(shard_of(row.id));
                let _ = self.sync_groups(&row.user);
                Err(self.fail(msg))
            }
        }
    }

    /// Every user whose memberships may not match their grants: those jitd answers for a
    /// membership of, and holders of grants in force that give groups.
    pub(super) fn sync_all_groups(&mut self) -> Result<()> {
        let mut users: BTreeSet<String> = store::memberships(self.store.conn())?
            .into_iter()
            .map(|m| m.user)
            .collect();
        users.extend(
            self.store
                .by_state(&[State::Active])?
                .into_iter()
                .filter(|r| !r.groups.is_empty() && !r.account)
                .map(|r| r.user.to_string()),
        );
        for u in users {
            let Ok(user) = UserName::new(u.clone()) else {
                continue;
            };
            if let Err(e) = self.sync_groups(&user) {
                tracing::error!("group memberships of {u} (will retry): {e}");
            }
        }
        Ok(())
    }

    /// Memberships jitd answers for that no grant gives any more (a failed removal, a
    /// grant that ended while the database could not record it): their users, for the
    /// timer to finish.
    pub(super) fn groups_left_over(&self) -> Result<Vec<UserName>> {
        let owned = store::memberships(self.store.conn())?;
        let mut users = BTreeSet::new();
        for m in owned {
            if !self.groups_given(&m.user, 0)?.contains(&m.group) {
                users.insert(m.user);
            }
        }
        Ok(users
            .into_iter()
            .filter_map(|u| UserName::new(u).ok())
            .collect())
    }

    /// (uid, gid) of the groups that grant `r`'s end takes away (no other grant in force
    /// gives them, and the user did not have them before): their processes are warned.
    pub(super) fn groups_ending_with(&self, r: &RequestRow) -> Vec<(u32, u32)> {
        if r.groups.is_empty() || r.account {
            return Vec::new();
        }
        let (Ok(others), Ok(owned), Ok(Some(uid))) = (
            self.groups_given(&r.user, r.id),
            self.owned_by(&r.user),
            self.dir.uid_of(&r.user),
        ) else {
            return Vec::new();
        };
        r.groups
            .iter()
            .filter(|g| !others.contains(g.as_str()))
            .filter(|g| owned.iter().any(|m| m.group == g.as_str() && !m.had_before))
            .filter_map(|g| self.groups.gid(g).ok().flatten())
            .map(|gid| (uid, gid))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{actor, ask, dir, world_with};
    use crate::groups::GroupEditor;
    use crate::model::Kind;
    use crate::policy::Verdict;
    use std::collections::BTreeSet;
    use std::sync::{Arc, Mutex};

    /// Memberships in memory; `fail` makes every edit fail.
    #[derive(Clone, Default)]
    struct FakeGroups {
        members: Arc<Mutex<BTreeSet<(String, String)>>>,
        fail: Arc<Mutex<bool>>,
    }

    impl FakeGroups {
        fn has(&self, user: &str, group: &str) -> bool {
            self.members
                .lock()
                .unwrap()
                .contains(&(user.to_string(), group.to_string()))
        }
    }

    impl GroupEditor for FakeGroups {
        fn is_member(&self, user: &str, group: &str) -> Result<bool, String> {
            Ok(self.has(user, group))
        }
        fn add(&self, user: &str, group: &str) -> Result<(), String> {
            if *self.fail.lock().unwrap() {
                return Err("gpasswd failed".into());
            }
            self.members
                .lock()
                .unwrap()
                .insert((user.into(), group.into()));
            Ok(())
        }
        fn remove(&self, user: &str, group: &str) -> Result<(), String> {
            if *self.fail.lock().unwrap() {
                return Err("gpasswd failed".into());
            }
            self.members
                .lock()
                .unwrap()
                .remove(&(user.to_string(), group.to_string()));
            Ok(())
        }
        fn gid(&self, _group: &str) -> Result<Option<u32>, String> {
            // No process of the fake world carries it.
            Ok(Some(4_000_000_000))
        }
    }

    const POLICY: &str = r#"
[[role]]
name = "docker"
commands = []
groups = ["webops"]
requesters = ["alice", "bob"]
max_duration = "1h"

[[role]]
name = "docker-long"
commands = ["/usr/bin/id"]
groups = ["webops"]
requesters = ["alice"]
max_duration = "2h"
"#;

    fn world() -> (super::super::tests::World, FakeGroups) {
        let mut w = world_with(POLICY, &dir(), 1_795_272_000);
        let g = FakeGroups::default();
        w.core.set_group_editor(Box::new(g.clone()));
        (w, g)
    }

    #[test]
    fn given_a_group_grant_when_it_lives_and_ends_then_the_membership_comes_and_goes_with_it() {
        let (mut w, g) = world();
        let r = w
            .core
            .request(
                &actor("alice"),
                &ask(Kind::Grant, "docker", 600, "OPS-1"),
                &Verdict::NotRun,
            )
            .unwrap();
        assert!(g.has("alice", "webops"));
        assert!(
            w.rules.ids().is_empty(),
            "a groups-only role has no sudo rule"
        );
        w.clock.advance(601);
        w.core.expire_due().unwrap();
        assert!(!g.has("alice", "webops"), "taken away at the end");
        assert_eq!(
            crate::store::membership_count(w.core.store.conn()).unwrap(),
            0
        );
        assert_eq!(w.core.row(r.id).unwrap().state, jit_proto::State::Expired);
    }

    #[test]
    fn given_a_membership_the_user_had_before_when_the_grant_ends_then_it_is_kept() {
        let (mut w, g) = world();
        g.add("bob", "webops").unwrap();
        let r = w
            .core
            .request(
                &actor("bob"),
                &ask(Kind::Grant, "docker", 600, "OPS-2"),
                &Verdict::NotRun,
            )
            .unwrap();
        w.core.release(&actor("bob"), r.id).unwrap();
        assert!(g.has("bob", "webops"), "never jitd's to remove");
    }

    #[test]
    fn given_two_grants_of_the_same_group_when_one_ends_then_the_other_keeps_it() {
        let (mut w, g) = world();
        let short = w
            .core
            .request(
                &actor("alice"),
                &ask(Kind::Grant, "docker", 600, "OPS-3"),
                &Verdict::NotRun,
            )
            .unwrap();
        let long = w
            .core
            .request(
                &actor("alice"),
                &ask(Kind::Grant, "docker-long", 3600, "OPS-4"),
                &Verdict::NotRun,
            )
            .unwrap();
        w.core.release(&actor("alice"), short.id).unwrap();
        assert!(g.has("alice", "webops"), "the longer grant still gives it");
        w.core.release(&actor("alice"), long.id).unwrap();
        assert!(!g.has("alice", "webops"));
    }

    #[test]
    fn given_the_tool_failing_when_a_group_grant_starts_then_the_grant_is_revoked() {
        let (mut w, g) = world();
        *g.fail.lock().unwrap() = true;
        let r = w.core.request(
            &actor("alice"),
            &ask(Kind::Grant, "docker", 600, "OPS-5"),
            &Verdict::NotRun,
        );
        assert!(r.is_err(), "{r:?}");
        let row = w.core.store.by_state(&[jit_proto::State::Revoked]).unwrap();
        assert_eq!(row.len(), 1, "revoked, never half-given");
        assert!(!g.has("alice", "webops"));
    }

    #[test]
    fn given_a_row_left_by_a_crash_when_reconciled_then_the_edit_is_finished() {
        let (mut w, g) = world();
        let r = w
            .core
            .request(
                &actor("alice"),
                &ask(Kind::Grant, "docker", 600, "OPS-6"),
                &Verdict::NotRun,
            )
            .unwrap();
        // As if jitd died after the row and before gpasswd -a: the grant is active.
        g.remove("alice", "webops").unwrap();
        w.core.reconcile().unwrap();
        assert!(g.has("alice", "webops"), "added at start");
        // As if it died after gpasswd -d and before the row went: the grant has ended.
        w.clock.advance(601);
        g.remove("alice", "webops").unwrap();
        w.core.reconcile().unwrap();
        assert!(!g.has("alice", "webops"));
        assert_eq!(
            crate::store::membership_count(w.core.store.conn()).unwrap(),
            0
        );
        assert_eq!(w.core.row(r.id).unwrap().state, jit_proto::State::Expired);
    }
}
