//! Ephemeral accounts (a role's `account = true`): the grant's account is made when the
//! grant starts and removed when it ends, through the system's tools
//! ([`crate::accounts`]). The database leads at every step: the account's row (with the
//! uid it will have) is written before `useradd` runs and marked removed only after
//! `userdel` did its work, so a crash at any step leaves a row that the next timer pass or
//! the reconciliation at start finishes. Before the account goes, every process running
//! as it ends; `userdel` refuses while any is left, and the removal is tried again.

use super::*;
use crate::accounts::{self as acc, NewAccount, Removal};
use crate::store::{AccountRow, AccountState};

/// How many uids in use by others (an admin's account in jitd's range) are stepped over
/// before jitd gives up looking for a free one.
const MAX_UID_SKIPS: u32 = 1000;

impl Core {
    /// How accounts are made and removed (jitd: [`crate::accounts::ShadowTools`]).
    pub fn set_account_editor(&mut self, editor: Box<dyn acc::AccountEditor>) {
        self.accounts = editor;
    }

    fn account_error(&mut self, e: String) -> Error {
        self.fail(format!("ephemeral account: {e}"))
    }

    /// A uid for a new account: after every uid jitd ever gave, stepping over any an
    /// account or group of someone else's has.
    fn free_uid(&mut self) -> Result<u32> {
        let mut uid = store::next_account_uid(self.store.conn(), acc::UID_MIN)?;
        for _ in 0..MAX_UID_SKIPS {
            if uid > acc::UID_MAX {
                break;
            }
            if store::account_uid_recorded(self.store.conn(), uid)? {
                uid += 1;
                continue;
            }
            match self.accounts.id_taken(uid) {
                Ok(false) => return Ok(uid),
                Ok(true) => uid += 1,
                Err(e) => return Err(self.account_error(e)),
            }
        }
        Err(self.account_error(format!(
            "no free uid left in jitd's range {}-{}",
            acc::UID_MIN,
            acc::UID_MAX
        )))
    }

    /// Makes grant `r`'s account, or finishes making it: its row first (with the uid it
    /// gets), then the tools, then the row says it is made.
    fn make_account(&mut self, r: &RequestRow) -> Result<()> {
        let name = r.holder();
        let row = match store::account_of(self.store.conn(), r.id)? {
            Some(a) if a.state == AccountState::Made => return Ok(()),
            Some(a) if a.state == AccountState::Removed => {
                return Err(self.account_error(format!("{name} was removed already")));
            }
            Some(a) => a,
            None => {
                let uid = self.free_uid()?;
                let now = self.now();
                self.commit_as(Requests::Untouched, |tx, _| {
                    store::insert_account(tx, r.id, &name, uid, now)
                })?;
                crate::faults::reached(crate::faults::Point::AfterAccountRow);
                AccountRow {
                    request_id: r.id,
                    name: name.clone(),
                    uid,
                    home: String::new(),
                    state: AccountState::Creating,
                    created_at: now,
                }
            }
        };
        let made = self.accounts.create(&NewAccount {
            name: &name,
            uid: row.uid,
            shell: &r.shell,
            groups: &r.groups,
            keys: &r.ssh_keys,
            comment: format!("jit grant {} for {}", r.id, r.user),
        });
        let home = made.map_err(|e| self.account_error(e))?;
        crate::faults::reached(crate::faults::Point::AfterAccountCreate);
        let now = self.now();
        let groups: Vec<&str> = r.groups.iter().map(|g| g.as_str()).collect();
        let detail = format!(
            "account={name} uid={} home={home} shell={} groups=[{}] keys={} for user={}",
            row.uid,
            r.shell,
            groups.join(","),
            r.ssh_keys.len(),
            r.user
        );
        self.commit_as(Requests::Untouched, |tx, recs| {
            store::set_account_made(tx, row.uid, &home)?;
            recs.push(store::append_audit(
                tx,
                &Event {
                    at: now,
                    actor: &Actor::jitd(),
                    action: "account-create",
                    request_id: r.id,
                    detail,
                },
            )?);
            Ok(())
        })
    }

    /// After a grant started: its account is made, or the grant is revoked (fail closed:
    /// never a grant that is not what was approved), and what was made of it removed.
    pub(super) fn give_account_or_revoke(&mut self, row: &RequestRow) -> Result<()> {
        if !row.account {
            return Ok(());
        }
        match self.make_account(row) {
            Ok(()) => Ok(()),
            Err(e) => {
                let msg = format!("could not make the account of grant {}: {e}", row.id);
                let _ = self.revoke_as_jitd(&[row.id], &msg);
                let _ = self.sync_shard(shard_of(row.id));
                let _ = self.sync_accounts();
                Err(self.fail(msg))
            }
        }
    }

    /// Ends account `a`: its processes first (SIGHUP on the first pass, so a shell can
    /// end cleanly; from the next pass, a second later, SIGKILL round after round until no
    /// process of its uid is left), then `userdel`, then the row says removed. Busy
    /// (processes left) is tried again by the timer. `userdel`'s own check for running
    /// processes is not relied on: with jitd's capabilities it does not see them all.
    fn remove_account(&mut self, a: &AccountRow, why: &str) -> Result<Removal> {
        if self.hung_up.insert(a.uid) {
            let running = crate::sessions::of_uid(a.uid);
            if !running.is_empty() {
                self.ended_pids
                    .entry(a.uid)
                    .or_default()
                    .extend(running.iter().map(|s| s.pid.to_string()));
                crate::sessions::end(running);
                return Ok(Removal::Busy);
            }
        }
        let (left, killed) = crate::sessions::kill_uid(a.uid);
        self.ended_pids
            .entry(a.uid)
            .or_default()
            .extend(killed.iter().map(ToString::to_string));
        if left > 0 {
            tracing::warn!("{} still has {left} process(es); trying again", a.name);
            return Ok(Removal::Busy);
        }
        // Its files in /tmp, /var/tmp and /dev/shm go too (none can be made now: no process
        // of the uid is left).
        let swept = match acc::sweep_temp(a.uid) {
            Ok(n) => format!("{n} file(s) of it in /tmp, /var/tmp, /dev/shm removed"),
            Err(e) => {
                let _ = self.fail(format!("account {}: its temporary files: {e}", a.name));
                format!("its temporary files NOT all removed ({e})")
            }
        };
        let removal = self.accounts.remove(&a.name, a.uid, true);
        match removal.map_err(|e| self.account_error(e))? {
            Removal::Busy => return Ok(Removal::Busy),
            Removal::Gone => {}
        }
        let mut pids = self.ended_pids.remove(&a.uid).unwrap_or_default();
        pids.sort_unstable_by_key(|p| p.parse::<i32>().unwrap_or(0));
        pids.dedup();
        self.hung_up.remove(&a.uid);
        // userdel removed the home, unless it was interrupted (or the account was deleted
        // by hand): what is left of it goes here. Said as it is: a home that is still there
        // is not "removed".
        let home_path = if a.home.is_empty() {
            format!("/home/{}", a.name)
        } else {
            a.home.clone()
        };
        let home = match acc::remove_left_home(&home_path, &a.name, a.uid) {
            Ok(true) => format!("its home {home_path} removed (left behind by userdel)"),
            Ok(false) if a.home.is_empty() => "no home made".to_string(),
            Ok(false) => format!("its home {home_path} removed"),
            Err(e) => {
                let _ = self.fail(format!("account {} is gone but {e}", a.name));
                format!("its home {home_path} LEFT in place ({e})")
            }
        };
        crate::faults::reached(crate::faults::Point::AfterAccountDelete);
        let now = self.now();
        let detail = format!(
            "account={} uid={} removed, {home}, {swept} ({why}); processes ended: [{}]",
            a.name,
            a.uid,
            pids.join(",")
        );
        self.commit_as(Requests::Untouched, |tx, recs| {
            store::set_account_removed(tx, a.uid, now)?;
            recs.push(store::append_audit(
                tx,
                &Event {
                    at: now,
                    actor: &Actor::jitd(),
                    action: "account-remove",
                    request_id: a.request_id,
                    detail,
                },
            )?);
            Ok(())
        })?;
        Ok(Removal::Gone)
    }

    /// Brings every account jitd answers for in line with its grant: one whose grant is in
    /// force is made (finishing a crash between its row and `useradd`); any other is
    /// removed. Returns whether one is still waiting for its processes to end (the timer
    /// then comes back within a second). A failure is logged, shown in `jitctl status`, and
    /// tried again on the timer's next pass.
    pub(super) fn sync_accounts(&mut self) -> Result<bool> {
        let mut waiting = false;
        for a in store::live_accounts(self.store.conn())? {
            let grant = match a.request_id {
                0 => None,
                id => self.store.get(id)?,
            };
            let in_force = grant.as_ref().filter(|g| {
                g.account && g.state == State::Active && self.ms_left(g) > 0 && g.holder() == a.name
            });
            if let Some(g) = in_force {
                if a.state == AccountState::Creating {
                    let g = g.clone();
                    self.give_account_or_revoke(&g).ok();
                }
                continue;
            }
            let why = match &grant {
                Some(g) if g.state == State::Active => "grant time used up",
                Some(g) => g.state.as_str(),
                None => "no grant",
            };
            match self.remove_account(&a, why) {
                Ok(Removal::Gone) => {}
                Ok(Removal::Busy) => waiting = true,
                // Not a matter of processes ending: the timer's ordinary passes try again
                // (no pass each second for an error that may last), and status shows it.
                Err(e) => tracing::error!("removing account {} (will retry): {e}", a.name),
            }
        }
        Ok(waiting)
    }

    /// At start: active grants of accounts with no account row (jitd stopped between the
    /// grant's commit and the row) get theirs; then every account is brought in line
    /// ([`Core::sync_accounts`]); then accounts in jitd's range that it did not make (or
    /// that no longer match what it made) are removed and recorded as `tamper`.
    pub(super) fn reconcile_accounts(&mut self) -> Result<()> {
        let orphans: Vec<RequestRow> = self
            .store
            .by_state(&[State::Active])?
            .into_iter()
            .filter(|r| r.account && self.ms_left(r) > 0)
            .collect();
        for r in orphans {
            if store::account_of(self.store.conn(), r.id)?.is_none() {
                let _ = self.give_account_or_revoke(&r);
            }
        }
        self.sync_accounts()?;
        // The host's accounts in jitd's range: none to look at without the tools.
        let Ok(found) = self.accounts.in_range() else {
            return Ok(());
        };
        let ours = store::live_accounts(self.store.conn())?;
        for (name, uid) in found {
            if ours.iter().any(|a| a.name == name && a.uid == uid) {
                continue;
            }
            let running = crate::sessions::of_uid(uid);
            let pids: Vec<String> = running.iter().map(|s| s.pid.to_string()).collect();
            crate::sessions::end(running);
            // Its home is left for whoever looks into it.
            let outcome = match self.accounts.remove(&name, uid, false) {
                Ok(Removal::Gone) => "removed (its home, if any, left in place)".to_string(),
                Ok(Removal::Busy) => "NOT removed: its processes are still ending".to_string(),
                Err(e) => format!("NOT removed: {e}"),
            };
            let msg = format!(
                "account {name} (uid {uid}) is in jitd's uid range {}-{} but no grant made \
                 it; {outcome}; processes ended: [{}]",
                acc::UID_MIN,
                acc::UID_MAX,
                pids.join(",")
            );
            let now = self.now();
            self.record_with(&Actor::jitd(), "tamper", 0, msg.clone(), |tx| {
                store::record_foreign_account(tx, &name, uid, now)
            })?;
            let _ = self.fail(msg);
        }
        Ok(())
    }

    /// The account of grant `id`, as `jitctl show` tells it (empty: none).
    pub(super) fn account_info(&self, r: &RequestRow) -> String {
        if !r.account {
            return String::new();
        }
        match store::account_of(self.store.conn(), r.id) {
            Ok(Some(a)) => match a.state {
                AccountState::Creating => format!("{} (being made)", a.name),
                AccountState::Made => format!("{} (uid {}, home {})", a.name, a.uid, a.home),
                AccountState::Removed => format!("{} (removed)", a.name),
            },
            _ => r.holder(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{actor, ask, dir, world_with};
    use crate::accounts::{AccountEditor, NewAccount, Removal, UID_MIN};
    use crate::model::Kind;
    use crate::policy::Verdict;
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    /// Accounts in memory: name -> uid. `busy`: userdel refuses (processes left);
    /// `fail`: every tool fails; `taken`: ids someone else has.
    #[derive(Clone, Default)]
    struct FakeAccounts {
        made: Arc<Mutex<BTreeMap<String, u32>>>,
        busy: Arc<Mutex<bool>>,
        fail: Arc<Mutex<bool>>,
        taken: Arc<Mutex<Vec<u32>>>,
    }

    impl FakeAccounts {
        fn uid(&self, name: &str) -> Option<u32> {
            self.made.lock().unwrap().get(name).copied()
        }
    }

    impl AccountEditor for FakeAccounts {
        fn create(&self, a: &NewAccount<'_>) -> Result<String, String> {
            if *self.fail.lock().unwrap() {
                return Err("useradd failed".into());
            }
            assert!(!a.keys.is_empty());
            self.made.lock().unwrap().insert(a.name.into(), a.uid);
            Ok(format!("/home/{}", a.name))
        }
        fn remove(&self, name: &str, uid: u32, _home: bool) -> Result<Removal, String> {
            if *self.fail.lock().unwrap() {
                return Err("userdel failed".into());
            }
            if *self.busy.lock().unwrap() {
                return Ok(Removal::Busy);
            }
            let mut made = self.made.lock().unwrap();
            if made.get(name).is_some_and(|u| *u != uid) {
                return Err("another uid".into());
            }
            made.remove(name);
            Ok(Removal::Gone)
        }
        fn in_range(&self) -> Result<Vec<(String, u32)>, String> {
            Ok(self
                .made
                .lock()
                .unwrap()
                .iter()
                .map(|(n, u)| (n.clone(), *u))
                .collect())
        }
        fn id_taken(&self, id: u32) -> Result<bool, String> {
            Ok(self.taken.lock().unwrap().contains(&id)
                || self.made.lock().unwrap().values().any(|u| *u == id))
        }
    }

    const POLICY: &str = r#"
[[role]]
name = "fix"
account = true
commands = ["/usr/bin/id"]
requesters = ["alice"]
max_duration = "1h"

[[role]]
name = "plain"
commands = ["/usr/bin/id"]
requesters = ["alice"]
max_duration = "1h"
"#;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO1MYxyJd0yuDx4PMGVGLHFmVNnGR2D8yUdxfr1cQ4Gv";

    fn world() -> (super::super::tests::World, FakeAccounts) {
        let mut w = world_with(POLICY, &dir(), 1_795_272_000);
        let a = FakeAccounts::default();
        w.core.set_account_editor(Box::new(a.clone()));
        (w, a)
    }

    fn with_key(role: &str) -> crate::model::Ask {
        let mut a = ask(Kind::Grant, role, 600, "OPS-1");
        a.ssh_keys = vec![KEY.into()];
        a
    }

    #[test]
    fn given_an_account_grant_when_it_lives_and_ends_then_the_account_holds_the_rule_and_goes_with_it()
     {
        let (mut w, a) = world();
        let r = w
            .core
            .request(&actor("alice"), &with_key("fix"), &Verdict::NotRun)
            .unwrap();
        let name = format!("jit-alice-{}", r.id);
        assert_eq!(a.uid(&name), Some(UID_MIN));
        assert_eq!(w.rules.rule(r.id).unwrap().user.as_str(), name);
        // The account's ssh logins are admitted; alice's own are not what it gives.
        assert!(w.core.check(&name, true).unwrap().active);
        assert!(!w.core.check("alice", true).unwrap().active);
        assert!(!w.core.check("alice", false).unwrap().active);
        assert!(w.core.info(&r).unwrap().account.starts_with(&name));
        w.clock.advance(601);
        w.core.expire_due().unwrap();
        assert_eq!(a.uid(&name), None, "removed at the end");
        assert!(!w.core.check(&name, true).unwrap().active);
        assert_eq!(
            crate::store::live_account_count(w.core.store.conn()).unwrap(),
            0
        );
    }

    #[test]
    fn given_an_accounts_processes_still_ending_when_the_grant_ends_then_removal_is_retried_soon() {
        let (mut w, a) = world();
        let r = w
            .core
            .request(&actor("alice"), &with_key("fix"), &Verdict::NotRun)
            .unwrap();
        let name = format!("jit-alice-{}", r.id);
        *a.busy.lock().unwrap() = true;
        w.clock.advance(601);
        let next = w.core.expire_due().unwrap();
        assert_eq!(
            next,
            Some(w.core.now() + 1),
            "the timer comes back in a second"
        );
        assert!(a.uid(&name).is_some());
        assert!(
            !w.core.check(&name, true).unwrap().active,
            "no longer admitted"
        );
        *a.busy.lock().unwrap() = false;
        w.core.expire_due().unwrap();
        assert_eq!(a.uid(&name), None);
    }

    #[test]
    fn given_useradd_failing_when_granted_then_the_grant_is_revoked_and_nothing_is_left() {
        let (mut w, a) = world();
        *a.fail.lock().unwrap() = true;
        let e = w
            .core
            .request(&actor("alice"), &with_key("fix"), &Verdict::NotRun)
            .unwrap_err();
        assert!(e.to_string().contains("could not make the account"), "{e}");
        let r = w.core.row(1).unwrap();
        assert_eq!(r.state, jit_proto::State::Revoked);
        assert!(w.rules.ids().is_empty());
        *a.fail.lock().unwrap() = false;
        w.core.expire_due().unwrap();
        assert!(a.made.lock().unwrap().is_empty());
        assert_eq!(
            crate::store::live_account_count(w.core.store.conn()).unwrap(),
            0
        );
    }

    #[test]
    fn given_uids_in_use_or_given_before_when_accounts_are_made_then_none_is_given_twice() {
        let (mut w, a) = world();
        a.taken.lock().unwrap().push(UID_MIN);
        let first = w
            .core
            .request(&actor("alice"), &with_key("fix"), &Verdict::NotRun)
            .unwrap();
        assert_eq!(a.uid(&format!("jit-alice-{}", first.id)), Some(UID_MIN + 1));
        w.core.release(&actor("alice"), first.id).unwrap();
        let second = w
            .core
            .request(&actor("alice"), &with_key("fix"), &Verdict::NotRun)
            .unwrap();
        assert_eq!(
            a.uid(&format!("jit-alice-{}", second.id)),
            Some(UID_MIN + 2),
            "the uid of a removed account is not given again"
        );
    }

    #[test]
    fn given_keys_missing_or_misplaced_or_an_account_asking_then_refused() {
        let (mut w, _) = world();
        let no_key = w
            .core
            .request(
                &actor("alice"),
                &ask(Kind::Grant, "fix", 600, "OPS-1"),
                &Verdict::NotRun,
            )
            .unwrap_err();
        assert!(no_key.to_string().contains("SSH public keys"), "{no_key}");
        let misplaced = w
            .core
            .request(&actor("alice"), &with_key("plain"), &Verdict::NotRun)
            .unwrap_err();
        assert!(
            misplaced.to_string().contains("takes no SSH keys"),
            "{misplaced}"
        );
        let mut bad = with_key("fix");
        bad.ssh_keys = vec![format!("command=\"sh\" {KEY}")];
        assert!(
            w.core
                .request(&actor("alice"), &bad, &Verdict::NotRun)
                .is_err()
        );
        let mut account = actor("alice");
        account.name = "jit-alice-1".into();
        account.uid = UID_MIN;
        let e = w
            .core
            .request(
                &account,
                &ask(Kind::Grant, "plain", 600, "OPS-1"),
                &Verdict::NotRun,
            )
            .unwrap_err();
        assert!(e.to_string().contains("ephemeral account"), "{e}");
        assert!(w.core.row(1).is_err(), "nothing was recorded");
    }

    #[test]
    fn given_an_account_in_range_that_no_grant_made_when_reconciled_then_it_is_removed_as_tamper() {
        let (mut w, a) = world();
        a.made
            .lock()
            .unwrap()
            .insert("jit-mallory-3".into(), UID_MIN + 5);
        w.core.reconcile().unwrap();
        assert!(a.made.lock().unwrap().is_empty());
        let trail = w.core.store.audit_since(0, "").unwrap();
        assert!(
            trail
                .iter()
                .any(|r| r.action == "tamper" && r.detail.contains("jit-mallory-3"))
        );
        // Its uid is never given.
        let r = w
            .core
            .request(&actor("alice"), &with_key("fix"), &Verdict::NotRun)
            .unwrap();
        assert_eq!(
            a.uid(&format!("jit-alice-{}", r.id)),
            Some(UID_MIN),
            "a planted uid does not move where jitd starts"
        );
        a.made.lock().unwrap().clear();
        w.core.release(&actor("alice"), r.id).unwrap();
        a.taken.lock().unwrap().clear();
        let mut uid = UID_MIN + 1;
        while uid < UID_MIN + 5 {
            w.core
                .commit(|tx, _| crate::store::insert_account(tx, 100 + u64::from(uid), "x", uid, 0))
                .unwrap();
            uid += 1;
        }
        let next = w
            .core
            .request(&actor("alice"), &with_key("fix"), &Verdict::NotRun)
            .unwrap();
        assert_eq!(
            a.uid(&format!("jit-alice-{}", next.id)),
            Some(UID_MIN + 6),
            "the uid of the account removed as tamper is stepped over"
        );
    }
}
