//! Temporary group membership end to end: real `gpasswd` on a private copy of `/etc`, real
//! logins (`runuser`, which reads the group file as a login does), real processes that
//! carry the group, and jitd killed at each step of a group edit.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use jit_e2e::{Builder, World, wait_for};
use nix::sys::signal::Signal;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(30);

const POLICY: &str = r#"
[[role]]
name = "docker"
description = "Use the container runtime"
commands = []
groups = ["dockerish"]
requesters = ["alice", "bob"]
max_duration = "1h"
"#;

// Worlds number their users and groups alike (alice is the same uid in each), and ending
// a group ends the processes of that uid carrying that gid, machine-wide: so these tests
// run one at a time, or one world's expiry would end another world's processes.

fn world() -> World {
    Builder::new()
        .user("alice", &[])
        .user("bob", &["dockerish"])
        .group("dockerish")
        .writable_etc()
        .policy(POLICY)
        .build()
}

/// The members of `group` in the world's /etc/group.
fn members(group: &str) -> Vec<String> {
    let text = std::fs::read_to_string("/etc/group").unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{group}:")))
        .unwrap_or_else(|| panic!("no {group} in /etc/group"));
    line.rsplit(':')
        .next()
        .unwrap()
        .split(',')
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .collect()
}

/// The groups a new login of `user` gets (`id -nG` through runuser, as a login reads them).
fn login_groups(w: &World, user: &str) -> String {
    jit_e2e::run(
        w.as_user(user, Path::new("/usr/bin/id"), &["-nG"]),
        "",
        LONG,
    )
    .stdout
}

/// A process of `user` started now (so it carries the groups of a login now).
fn process_of(w: &World, user: &str) -> Child {
    w.as_user(user, Path::new("/usr/bin/sleep"), &["300"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn gone(child: &mut Child) -> bool {
    child.try_wait().unwrap().is_some()
}

#[test]
fn given_a_group_role_when_granted_then_a_new_login_has_it_and_at_its_end_the_group_and_its_processes_go()
 {
    let _serial = jit_e2e::one_at_a_time();
    let w = world();
    // jitd holds CAP_KILL alone; CAP_CHOWN only for gpasswd (permitted and inheritable, raised
    // as ambient only around its run), never in effect.
    assert_eq!(w.jitd_caps("CapEff"), "0000000000000020");
    assert_eq!(w.jitd_caps("CapPrm"), "0000000000000021");
    assert_eq!(w.jitd_caps("CapInh"), "0000000000000001");
    assert_eq!(w.jitd_caps("CapAmb"), "0000000000000000");
    assert!(!login_groups(&w, "alice").contains("dockerish"));
    let g = w.submit("alice", "docker", "6s", "OPS-1 build images");
    let id = g["id"].as_u64().unwrap();
    assert_eq!(members("dockerish"), ["bob", "alice"]);
    assert!(login_groups(&w, "alice").contains("dockerish"));
    let shown = w.jitctl("alice", &["show", &id.to_string()]);
    assert!(
        shown.stdout.contains("holds:     groups: dockerish"),
        "{}",
        shown.all()
    );
    assert!(
        w.jitctl("alice", &["grants"])
            .stdout
            .contains("[groups: dockerish]")
    );
    // Started under the grant, it carries the group; it keeps it after /etc/group changes.
    let mut carrying = process_of(&w, "alice");
    wait_for("the grant's end", LONG, || {
        (w.request(id)["state"] == "expired").then_some(())
    });
    wait_for("the process carrying the group to end", LONG, || {
        gone(&mut carrying).then_some(())
    });
    assert_eq!(members("dockerish"), ["bob"]);
    assert!(!login_groups(&w, "alice").contains("dockerish"));
    let audit = w.audit_actions();
    assert!(audit.contains(&"group-add".to_string()), "{audit:?}");
    assert!(audit.contains(&"group-remove".to_string()), "{audit:?}");
}

#[test]
fn given_a_member_before_the_grant_when_it_ends_then_the_membership_and_its_processes_stay() {
    let _serial = jit_e2e::one_at_a_time();
    let w = world();
    let g = w.submit("bob", "docker", "10m", "OPS-2 already in it");
    let id = g["id"].as_u64().unwrap();
    let mut bobs = process_of(&w, "bob");
    let release = w.jitctl("bob", &["release", &id.to_string()]);
    assert!(release.ok(), "{}", release.all());
    assert_eq!(members("dockerish"), ["bob"]);
    // Checked after jitd's grace period for ending processes would have passed.
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        !gone(&mut bobs),
        "bob's own membership is not jitd's to end"
    );
    let _ = bobs.kill();
    let _ = bobs.wait();
    let log = w.jitctl("root", &["audit"]).stdout;
    assert!(log.contains("already a member: left as it is"), "{log}");
    assert!(log.contains("was a member before: kept"), "{log}");
}

#[test]
fn given_jitd_killed_between_the_membership_row_and_the_group_edit_when_restarted_then_the_grant_has_its_group()
 {
    let _serial = jit_e2e::one_at_a_time();
    let mut w = world();
    w.stop_jitd(Signal::SIGTERM);
    w.jitd_env = vec![("JITD_CRASH_AT".into(), "after-group-row:1".into())];
    w.start_jitd();
    let _ = w.jitctl(
        "alice",
        &["request", "docker", "--for", "10m", "--reason", "OPS-3"],
    );
    wait_for("jitd to die at the crash point", LONG, || w.jitd_exited());
    assert_eq!(members("dockerish"), ["bob"], "killed before gpasswd ran");
    w.stop_jitd(Signal::SIGKILL);
    w.jitd_env.clear();
    w.start_jitd();
    assert_eq!(members("dockerish"), ["bob", "alice"], "finished at start");
    // Revoked by root: a `jitctl release` of alice's would itself carry the group (a login
    // of hers made while she has it) and end with it.
    let id = w.jitctl("alice", &["--json", "grants"]).json()[0]["id"]
        .as_u64()
        .unwrap();
    let revoke = w.jitctl("root", &["revoke", &id.to_string(), "--reason", "done"]);
    assert!(revoke.ok(), "{}", revoke.all());
    assert_eq!(members("dockerish"), ["bob"]);
}

#[test]
fn given_jitd_killed_between_the_group_edit_and_its_record_when_restarted_then_nothing_is_left() {
    let _serial = jit_e2e::one_at_a_time();
    let mut w = world();
    w.stop_jitd(Signal::SIGTERM);
    // The first edit adds alice, the second (the release) removes her: killed right after.
    w.jitd_env = vec![("JITD_CRASH_AT".into(), "after-group-edit:2".into())];
    w.start_jitd();
    let g = w.submit("alice", "docker", "10m", "OPS-4");
    let id = g["id"].as_u64().unwrap();
    assert_eq!(members("dockerish"), ["bob", "alice"]);
    let _ = w.jitctl("alice", &["release", &id.to_string()]);
    wait_for("jitd to die at the crash point", LONG, || w.jitd_exited());
    assert_eq!(members("dockerish"), ["bob"], "gpasswd -d ran");
    w.stop_jitd(Signal::SIGKILL);
    w.jitd_env.clear();
    w.start_jitd();
    assert_eq!(members("dockerish"), ["bob"]);
    assert_eq!(w.request(id)["state"], "released");
    let log = w.jitctl("root", &["audit"]).stdout;
    assert!(
        log.contains("user=alice group=dockerish removed"),
        "the removal is recorded after the restart: {log}"
    );
    let status = w.jitctl("root", &["status"]);
    assert!(status.stdout.contains("health: ok"), "{}", status.all());
}

#[test]
fn given_a_terminal_carrying_the_group_when_the_grant_nears_its_end_then_it_is_warned_and_then_ended()
 {
    let _serial = jit_e2e::one_at_a_time();
    let w = world();
    w.host_like_terminals();
    // 65 s: the one-minute warning is due 5 s in.
    let g = w.submit("alice", "docker", "65s", "OPS-5 a long build");
    let id = g["id"].as_u64().unwrap();
    let mut shell = jit_e2e::Pty::spawn(&w, "alice", "id -nG; sleep 300");
    shell.expect("dockerish", LONG);
    let warning = format!("jit: your grant {id} (docker) ends in");
    if !wait_until(|| shell.said().contains(&warning)) {
        panic!(
            "no warning on the terminal; it said {:?}\njitd:\n{}",
            shell.said(),
            w.jitd_log()
        );
    }
    let end = Duration::from_secs(120);
    shell.wait(end);
    assert_eq!(w.request(id)["state"], "expired");
}

fn wait_until(f: impl Fn() -> bool) -> bool {
    let end = std::time::Instant::now() + LONG;
    while std::time::Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}
