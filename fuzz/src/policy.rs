//! The policy file: TOML to a validated policy. Whatever text an admin (or a configuration
//! tool) writes, jitd either refuses it with a position inside the file or gets a policy
//! whose every role can become a rule sudo accepts.

use jitd::directory::Directory;
use jitd::model::Kind;
use jitd::names::UserName;
use jitd::policy::Policy;
use jitd::sudoers::{Rule, render};

/// A fixed directory: the same users and groups on every host the target runs on.
pub struct Fixed;

const USERS: &[(&str, u32, &[&str])] = &[
    ("root", 0, &["root"]),
    ("alice", 1000, &["alice", "ops", "jit-users"]),
    ("bob", 1001, &["bob", "jit-approvers"]),
    ("carol", 1002, &["carol", "jit-approvers", "ops"]),
    ("postgres", 120, &["postgres"]),
    ("nobody", 65534, &["nogroup"]),
];
const GROUPS: &[&str] = &[
    "root",
    "alice",
    "bob",
    "carol",
    "ops",
    "jit-users",
    "jit-approvers",
    "postgres",
    "nogroup",
];

impl Directory for Fixed {
    fn groups_of(&self, user: &str) -> Result<Vec<String>, String> {
        USERS
            .iter()
            .find(|(u, _, _)| *u == user)
            .map(|(_, _, g)| g.iter().map(|s| (*s).to_string()).collect())
            .ok_or_else(|| format!("no such user: {user}"))
    }
    fn group_exists(&self, group: &str) -> Result<bool, String> {
        Ok(GROUPS.contains(&group))
    }
    fn group_members(&self, group: &str) -> Result<Vec<String>, String> {
        Ok(USERS
            .iter()
            .filter(|(_, _, g)| g.contains(&group))
            .map(|(u, _, _)| (*u).to_string())
            .collect())
    }
    fn uid_of(&self, user: &str) -> Result<Option<u32>, String> {
        Ok(USERS
            .iter()
            .find(|(u, _, _)| *u == user)
            .map(|(_, id, _)| *id))
    }
    fn name_of(&self, uid: u32) -> Result<Option<String>, String> {
        Ok(USERS
            .iter()
            .find(|(_, id, _)| *id == uid)
            .map(|(u, _, _)| (*u).to_string()))
    }
}

/// Moments to start grants at: ordinary ones, and the hours around the 2026 DST changes in
/// Europe and America (windows are in local time).
const TIMES: [i64; 6] = [
    1_764_417_600, // 2025-11-29T12:00:00Z
    1_774_746_000, // 2026-03-29T01:00:00Z: Europe springs forward
    1_792_890_000, // 2026-10-25T01:00:00Z: Europe falls back
    1_792_888_200, // 2026-10-25T00:30:00Z
    1_793_511_000, // 2026-11-01T05:30:00Z: America falls back at 06:00Z
    1_793_514_600, // 2026-11-01T06:30:00Z
];

pub fn fuzz(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let policy = match Policy::parse("fuzz.toml", text, &Fixed) {
        Ok(p) => p,
        Err(e) => {
            // A refusal points into the file (line 0: no position) and says something.
            assert!(!e.message.trim().is_empty(), "an empty refusal");
            assert!(
                e.line >= 1 && e.line <= text.lines().count() + 1,
                "line {} of a {}-line file: {e}",
                e.line,
                text.lines().count()
            );
            return;
        }
    };
    let alice = UserName::new("alice").unwrap();
    let _ = policy.requestable("alice", &Fixed);
    let _ = policy.approver_view("bob", &Fixed);
    for (i, role) in policy.roles.iter().enumerate() {
        // Found by name, and it is this one (names are unique).
        let found = policy
            .role(&role.name)
            .expect("every role is found by its name");
        assert!(
            std::ptr::eq(found, &policy.roles[i]),
            "role {} found twice",
            role.name
        );
        assert!(role.default_duration > 0 && role.default_duration <= role.max_duration);
        assert!(role.max_duration <= jit_proto::MAX_DURATION_SECS);
        assert!(role.reason_min <= role.reason_max);
        assert!(!role.run_as_list.is_empty() && !role.commands.is_empty());
        let info = role.info();
        assert_eq!(info.name, role.name.as_str());
        // A grant starting at any of these times ends no earlier than it starts and no
        // later than asked (cut, never stretched, by a window; DST days included).
        for now in TIMES {
            for kind in [Kind::Grant, Kind::BreakGlass] {
                let end = policy.grant_end(role, kind, now, role.max_duration);
                assert!(
                    end >= now && end <= now + i64::try_from(role.max_duration).unwrap(),
                    "role {}: a grant at {now} for {}s ends at {end}",
                    role.name,
                    role.max_duration
                );
            }
            let _ = role.check_reason("INC-1234 restart the stuck worker");
        }
        // Every role becomes a rule the renderer takes; the shape sudo reads is the
        // sudoers target's to check, with these names.
        let rule = Rule {
            grant_id: 1,
            user: alice.clone(),
            role: role.name.clone(),
            run_as: role.run_as_list.clone(),
            commands: role.commands.clone(),
            not_after: 2_000_000_000,
            reauth: role.reauth,
            iolog_dir: role.log_io.then(|| policy.iolog_dir.clone()),
        };
        if let Err(e) = render(&rule) {
            panic!("role {} does not render: {e:?}", role.name);
        }
    }
}
