//! jitd under a bounded randomized fuzzer of its D-Bus interfaces (`bus_fuzz`, as dfuzzer is
//! run against polkit), as an unprivileged user and as root, against a real jitd on a real
//! dbus-daemon. Afterwards jitd must be alive and healthy, the audit trail must verify, every
//! sudoers shard must hold exactly the active grants (and pass visudo), and nothing may have
//! been granted or approved that the policy would not grant.
//!
//! `JIT_BUS_FUZZ_CALLS` (per caller) and `JIT_BUS_FUZZ_SEED` run it longer or differently.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use jit_e2e::{Builder, World, bin, grants_in, run};
use std::process::{Child, Command};
use std::time::Duration;

const POLICY: &str = r#"
[[role]]
name = "web"
commands = ["/usr/bin/id"]
requesters = ["%jit-users"]
max_duration = "1h"
default_duration = "15m"
max_total_duration = "2h"

[[role]]
name = "db"
commands = ["/usr/bin/id -g"]
requesters = ["alice"]
approvers = ["bob"]
approvals = 1
max_duration = "2h"
reason_pattern = "^DB-[0-9]+"
break_glass = true

[[role]]
name = "ops"
commands = ["/usr/bin/id -u"]
requesters = ["%jit-users"]
approvers = ["%jit-approvers"]
approvals = 2
max_duration = "1h"
ssh = true
"#;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Processes of the test's own, the only pids root's fuzzer registers as sessions.
struct Sacrificial(Vec<Child>);

impl Drop for Sacrificial {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn fuzz(w: &World, user: &str, seed: u64, calls: u64, pids: &str) -> serde_json::Value {
    let seed = seed.to_string();
    let calls = calls.to_string();
    let r = run(
        w.as_user(user, &bin("bus_fuzz"), &[&w.bus, &seed, &calls, pids]),
        "",
        Duration::from_secs(1800),
    );
    assert!(r.ok(), "bus_fuzz as {user} lost jitd: {}", r.all());
    let out: serde_json::Value = serde_json::from_str(r.stdout.trim())
        .unwrap_or_else(|e| panic!("bus_fuzz output {:?}: {e}", r.stdout));
    eprintln!("bus_fuzz as {user} (seed {seed}): {out}");
    out
}

fn str_list(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|s| s.as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn given_random_calls_to_every_method_as_a_user_and_as_root_then_jitd_holds_and_grants_nothing_extra()
 {
    let w = Builder::new()
        .user("alice", &["jit-users"])
        .user("mallory", &["jit-users"])
        .user("bob", &["jit-approvers"])
        .user("carol", &["jit-approvers"])
        .policy(POLICY)
        .build();
    // Requests of several users to aim at: alice's active web grant (1), her db request that
    // bob approves (2), her pending ops request (3), mallory's pending ops request (4).
    assert_eq!(w.submit("alice", "web", "1h", "INC-1 fuzz target")["id"], 1);
    assert_eq!(w.submit("alice", "db", "1h", "DB-1 fuzz target")["id"], 2);
    assert_eq!(w.submit("alice", "ops", "", "INC-2 fuzz target")["id"], 3);
    assert_eq!(w.submit("mallory", "ops", "", "INC-3 fuzz target")["id"], 4);
    let r = w.jitctl("bob", &["approve", "2", "--comment", "ok"]);
    assert!(r.ok(), "{}", r.all());
    assert_eq!(w.request(2)["state"], "active");

    let sacrificial = Sacrificial(
        (0..4)
            .map(|_| Command::new("sleep").arg("3600").spawn().unwrap())
            .collect(),
    );
    let pids: Vec<String> = sacrificial.0.iter().map(|c| c.id().to_string()).collect();
    let calls = env_u64("JIT_BUS_FUZZ_CALLS", 1500);
    let seed = env_u64("JIT_BUS_FUZZ_SEED", 19);
    let as_user = fuzz(&w, "mallory", seed, calls, "");
    let as_root = fuzz(&w, "root", seed + 1, calls, &pids.join(","));
    for out in [&as_user, &as_root] {
        assert_eq!(out["calls"], calls, "{out}");
        assert_eq!(out["lost"], false, "{out}");
        // The fuzzer reached jitd, not only the bus's refusals.
        let outcomes = out["outcomes"].as_object().unwrap();
        assert!(
            outcomes.get("ok").and_then(serde_json::Value::as_u64) > Some(0),
            "{out}"
        );
        assert!(
            outcomes
                .keys()
                .any(|k| k.starts_with("org.jit.Jitd.Error.")),
            "{out}"
        );
    }
    // The unprivileged caller never got through to the root-only interface; root did.
    assert_eq!(as_user["pam1_ok"], 0, "{as_user}");
    assert!(as_root["pam1_ok"].as_u64() > Some(0), "{as_root}");
    assert!(
        as_user["outcomes"]
            .as_object()
            .unwrap()
            .contains_key("org.freedesktop.DBus.Error.AccessDenied"),
        "{as_user}"
    );
    drop(sacrificial);

    // Alive and healthy.
    assert!(w.jitd_pid().is_some());
    let status = w.jitctl("root", &["status"]);
    assert!(status.ok(), "{}", status.all());
    assert!(status.stdout.contains("health: ok"), "{}", status.all());
    assert!(!w.jitd_log().contains("panicked"), "{}", w.jitd_log());
    // The trail verifies.
    let verify = w.jitctl("root", &["audit", "verify"]);
    assert!(verify.ok(), "{}", verify.all());

    // Every request as root sees it.
    let list = w.jitctl("root", &["--json", "list", "--all"]);
    assert!(list.ok(), "{}", list.all());
    let requests = list.json().as_array().cloned().unwrap();
    assert!(requests.len() >= 4, "{}", list.stdout);
    eprintln!(
        "after the fuzzers: {} requests; states {:?}",
        requests.len(),
        requests
            .iter()
            .map(|r| format!("{}:{}:{}:{}", r["id"], r["user"], r["role"], r["state"]))
            .collect::<Vec<_>>()
    );
    let active: Vec<u64> = requests
        .iter()
        .filter(|r| r["state"] == "active")
        .map(|r| r["id"].as_u64().unwrap())
        .collect();

    // Every shard holds exactly the active grants, and sudo's parser takes it.
    let mut in_shards: Vec<u64> = Vec::new();
    for f in w.sudoers_files() {
        let path = format!("/etc/sudoers.d/{f}");
        let text = std::fs::read_to_string(&path).unwrap();
        in_shards.extend(grants_in(&text));
        let visudo = run(
            {
                let mut c = Command::new("visudo");
                c.args(["-c", "-q", "-f", &path]);
                c
            },
            "",
            Duration::from_secs(30),
        );
        assert!(visudo.ok(), "{path}: {}\n{text}", visudo.all());
    }
    in_shards.sort_unstable();
    let mut expected = active.clone();
    expected.sort_unstable();
    assert_eq!(in_shards, expected, "the shards and the database disagree");

    // Nothing granted or approved that the policy would not: the only approval is bob's of
    // request 2; every grant ever made (extensions too) is a self-service web grant of a
    // jit-users member, or that approved db request.
    for r in &requests {
        let id = r["id"].as_u64().unwrap();
        let (user, role, kind) = (
            r["user"].as_str().unwrap(),
            r["role"].as_str().unwrap(),
            r["kind"].as_str().unwrap(),
        );
        let approved_by = str_list(&r["approved_by"]);
        if id == 2 {
            assert_eq!(approved_by, ["bob"], "{r}");
        } else {
            assert!(
                approved_by.is_empty(),
                "request {id} approved by {approved_by:?}: {r}"
            );
        }
        let granted = r["granted_at"].as_i64().unwrap_or(0) > 0 || r["state"] == "active";
        if granted {
            let allowed = (role == "web" && ["alice", "mallory"].contains(&user))
                || (id == 2 && role == "db" && user == "alice" && kind == "grant");
            assert!(allowed, "granted beyond the policy: {r}");
        }
    }
}
