//! jitd killed with SIGKILL at random moments while requests, approvals, releases and
//! revokes are in flight, then restarted: after its reconciliation the sudoers shards say
//! exactly what the database says, no ended grant has a rule, and every decision a client
//! saw succeed is still there. Alone in its binary (it runs many jitd lifetimes).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use jit_e2e::{Builder, World};
use nix::sys::signal::Signal;
use std::collections::HashMap;
use std::time::Duration;

const USERS: [&str; 4] = ["u0", "u1", "u2", "u3"];

const POLICY: &str = r#"
[[role]]
name = "self"
commands = ["/usr/bin/true"]
requesters = ["u0", "u1", "u2", "u3"]
max_duration = "1h"

[[role]]
name = "approved"
commands = ["/usr/bin/id -u"]
requesters = ["u0", "u1", "u2", "u3"]
approvers = ["boss"]
approvals = 1
max_duration = "1h"
"#;

/// A small deterministic generator (no dependency needed for a test's dice).
struct Dice(u64);

impl Dice {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// What clients saw succeed: request id -> the state it must (at least) have reached.
#[derive(Default)]
struct Seen {
    approved: Vec<u64>,
    ended: HashMap<u64, &'static str>,
}

fn rules_in_shards() -> Vec<u64> {
    let mut ids = Vec::new();
    for e in std::fs::read_dir("/etc/sudoers.d").unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("jit-") {
            assert!(name.starts_with("jit-s"), "unexpected file {name}");
            let text = std::fs::read_to_string(e.path()).unwrap();
            let here = jit_e2e::grants_in(&text);
            // One rule per grant listed, no more, no less.
            let rules = text.lines().filter(|l| l.contains(" NOTAFTER=")).count();
            assert_eq!(rules, here.len(), "{text}");
            ids.extend(here);
        }
    }
    ids.sort_unstable();
    ids
}

fn ops(w: &World, dice: &mut Dice, seen: &mut Seen) {
    for _ in 0..12 {
        ops_once(w, dice, seen);
    }
}

/// One random operation: a request, an approval, a release or a revoke.
fn ops_once(w: &World, dice: &mut Dice, seen: &mut Seen) {
    let user = USERS[dice.next(4) as usize];
    match dice.next(5) {
        0 | 1 => {
            let role = if dice.next(2) == 0 {
                "self"
            } else {
                "approved"
            };
            let _ = w.jitctl(user, &["request", role, "--for", "20m", "--reason", "x"]);
        }
        2 => {
            let pending = w.jitctl("boss", &["--json", "list", "--pending"]);
            if let Some(id) = pending
                .ok()
                .then(|| pending.json()[0]["id"].as_u64())
                .flatten()
                && w.jitctl("boss", &["approve", &id.to_string()]).ok()
            {
                seen.approved.push(id);
            }
        }
        3 => {
            let r = w.jitctl(user, &["--json", "release"]);
            if r.ok() {
                seen.ended
                    .insert(r.json()["id"].as_u64().unwrap(), "released");
            }
        }
        _ => {
            let grants = w.jitctl("root", &["--json", "list"]);
            let active = grants
                .ok()
                .then(|| {
                    grants
                        .json()
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|r| r["state"] == "active")
                        .and_then(|r| r["id"].as_u64())
                })
                .flatten();
            if let Some(id) = active
                && w.jitctl("root", &["revoke", &id.to_string(), "--reason", "chaos"])
                    .ok()
            {
                seen.ended.insert(id, "revoked");
            }
        }
    }
}

fn check_invariants(w: &World, seen: &Seen, round: usize) {
    let all = w.jitctl("root", &["--json", "list", "--all"]);
    assert!(all.ok(), "round {round}: {}", all.all());
    let mut active: Vec<u64> = Vec::new();
    let mut state_of: HashMap<u64, String> = HashMap::new();
    for r in all.json().as_array().unwrap() {
        let id = r["id"].as_u64().unwrap();
        let state = r["state"].as_str().unwrap().to_string();
        if state == "active" {
            active.push(id);
        }
        state_of.insert(id, state);
    }
    active.sort_unstable();
    assert_eq!(
        rules_in_shards(),
        active,
        "round {round}: shards and database disagree"
    );
    for id in &seen.approved {
        assert_ne!(
            state_of.get(id).map(String::as_str),
            Some("pending"),
            "round {round}: approval of {id} was lost"
        );
    }
    for (id, want) in &seen.ended {
        assert_eq!(
            state_of.get(id).map(String::as_str),
            Some(*want),
            "round {round}: request {id} came back"
        );
    }
}

#[test]
fn given_jitd_killed_at_random_points_when_restarted_then_rules_match_decisions() {
    let mut b = Builder::new().user("boss", &[]);
    for u in USERS {
        b = b.user(u, &[]);
    }
    let mut w = b.policy(POLICY).build();
    let mut dice = Dice(0x5eed_1234);
    let mut seen = Seen::default();
    let rounds = 60;
    for round in 0..rounds {
        std::thread::scope(|s| {
            let delay = Duration::from_millis(dice.next(150));
            let mut local_dice = Dice(dice.next(u64::MAX));
            let w = &w;
            let worker = s.spawn(move || {
                let mut local = Seen::default();
                ops(w, &mut local_dice, &mut local);
                local
            });
            std::thread::sleep(delay);
            let pid = nix::unistd::Pid::from_raw(i32::try_from(w.jitd_pid().unwrap()).unwrap());
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            let local = worker.join().unwrap();
            seen.approved.extend(local.approved);
            seen.ended.extend(local.ended);
        });
        w.stop_jitd(Signal::SIGKILL);
        w.start_jitd();
        check_invariants(&w, &seen, round);
    }
    println!(
        "kill points exercised: {rounds}; approvals seen: {}, releases/revokes seen: {}",
        seen.approved.len(),
        seen.ended.len()
    );
}

/// The crash points jitd's debug build offers (jitd/src/faults.rs), in the order of a state
/// change: commit, temporary file written, rename (or unlink), directory fsync.
const POINTS: [&str; 5] = [
    "after-commit",
    "after-write",
    "after-rename",
    "after-unlink",
    "after-dirsync",
];

#[test]
fn given_jitd_killed_at_each_named_step_when_restarted_then_no_ended_grant_has_a_rule_and_no_approval_is_lost()
 {
    let mut b = Builder::new().user("boss", &[]);
    for u in USERS {
        b = b.user(u, &[]);
    }
    let mut w = b.policy(POLICY).build();
    let mut dice = Dice(0x00c0_ffee);
    let mut seen = Seen::default();
    let mut fired: HashMap<&str, usize> = HashMap::new();
    let rounds = 80;
    for round in 0..rounds {
        // A random step, and a random one of its next few occurrences.
        let point = POINTS[dice.next(POINTS.len() as u64) as usize];
        let nth = 1 + dice.next(3);
        w.stop_jitd(Signal::SIGTERM);
        w.jitd_env = vec![("JITD_CRASH_AT".into(), format!("{point}:{nth}"))];
        w.start_jitd();
        let mut died = false;
        for _ in 0..8 {
            ops_once(&w, &mut dice, &mut seen);
            if let Some(status) = w.jitd_exited() {
                use std::os::unix::process::ExitStatusExt;
                assert_eq!(status.signal(), Some(9), "round {round}: {status}");
                died = true;
                break;
            }
        }
        if died {
            *fired.entry(point).or_default() += 1;
        }
        w.stop_jitd(Signal::SIGKILL);
        w.jitd_env.clear();
        w.start_jitd();
        check_invariants(&w, &seen, round);
    }
    let total: usize = fired.values().sum();
    println!(
        "named kill points exercised: {total} of {rounds} rounds ({fired:?}); \
         approvals seen: {}, releases/revokes seen: {}",
        seen.approved.len(),
        seen.ended.len()
    );
    for p in POINTS {
        assert!(
            fired.get(p).copied().unwrap_or(0) > 0,
            "{p} was never reached: {fired:?}"
        );
    }
}
