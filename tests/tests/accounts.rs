//! Ephemeral accounts end to end: real `groupadd`/`useradd`/`userdel` on a private copy of
//! `/etc` with a private `/home`, real ssh logins into the account with the requester's
//! key through a real sshd and pam_jit, real sudo inside it, its processes ended and the
//! account gone at the grant's end, jitd killed at each named step, and an account planted
//! in jitd's range found at start.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use jit_e2e::{Builder, SSH_ACCOUNT_JIT, World, wait_for};
use nix::sys::signal::Signal;
use std::path::Path;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(30);

const POLICY: &str = r#"
[[role]]
name = "breakfix"
description = "A throwaway account for a repair"
account = true
groups = ["dockerish"]
commands = ["/usr/bin/id"]
requesters = ["alice"]
max_duration = "1h"

[[role]]
name = "reviewed-fix"
description = "An account, after an approval"
account = true
shell = "/bin/sh"
commands = []
requesters = ["alice"]
approvers = ["bob"]
approvals = 1
max_duration = "1h"
"#;

// The accounts of every world get the same uids (each jitd starts at the range's first),
// and ending an account ends every process of its uid, machine-wide: one at a time.

fn world() -> World {
    Builder::new()
        .user("alice", &[])
        .user("bob", &["dockerish"])
        .user("mallory", &[])
        .group("dockerish")
        .accounts()
        .sshd(Some(SSH_ACCOUNT_JIT))
        .policy(POLICY)
        .build()
}

/// `jitctl request` as alice with her key file (the world's `keys/alice.pub`).
fn request(w: &World, role: &str, duration: &str, reason: &str) -> jit_e2e::Run {
    let key = w.path().join("keys/alice.pub");
    w.jitctl(
        "alice",
        &[
            "--json",
            "request",
            role,
            "--for",
            duration,
            "--reason",
            reason,
            "--ssh-key",
            key.to_str().unwrap(),
        ],
    )
}

/// The passwd entry of `name` in the world's /etc/passwd: (uid, home, shell).
fn passwd(name: &str) -> Option<(u32, String, String)> {
    std::fs::read_to_string("/etc/passwd")
        .unwrap()
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f[0] == name).then(|| (f[2].parse().unwrap(), f[5].into(), f[6].into()))
        })
}

/// Lines of the account files naming anything `jit-`, and every home in /home: what an
/// account can leave behind (the host's own `jit-` names among them: see [`leftovers`]).
fn traces() -> Vec<String> {
    let mut out = Vec::new();
    for file in ["/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow"] {
        for l in std::fs::read_to_string(file).unwrap().lines() {
            if l.starts_with("jit-") || l.contains(":jit-") || l.contains(",jit-") {
                out.push(format!("{file}: {l}"));
            }
        }
    }
    for e in std::fs::read_dir("/home").unwrap() {
        out.push(format!(
            "/home/{}",
            e.unwrap().file_name().to_string_lossy()
        ));
    }
    out
}

/// The [`traces`] that were not there when the world was made (`before`): the host may have
/// `jit-` names of its own (an installed jit's `jit-users`, say).
fn leftovers(before: &[String]) -> Vec<String> {
    traces()
        .into_iter()
        .filter(|t| !before.contains(t))
        .collect()
}

/// How many live (not zombie) processes run as `uid`.
fn running_as(uid: u32) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter(|st| !st.contains("State:\tZ"))
        .filter(|st| {
            st.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .is_some_and(|u| u.split_whitespace().any(|n| n == uid.to_string()))
        })
        .count()
}

/// The account of grant `id` (alice's in every test here).
fn account_of(id: u64) -> String {
    format!("jit-alice-{id}")
}

#[test]
fn given_an_account_role_when_granted_then_the_requester_logs_in_with_their_key_and_at_the_end_its_processes_and_the_account_go()
 {
    let _serial = jit_e2e::one_at_a_time();
    let w = world();
    let before = traces();
    // CAP_KILL in effect; CHOWN, DAC_OVERRIDE and FOWNER kept for the tools only (raised as
    // ambient around a tool's run, so a reason validator never gets them).
    assert_eq!(w.jitd_caps("CapEff"), "0000000000000020");
    assert_eq!(w.jitd_caps("CapPrm"), "000000000000002b");
    assert_eq!(w.jitd_caps("CapAmb"), "0000000000000000");
    let r = request(&w, "breakfix", "25s", "OPS-1 fix the disk");
    assert!(r.ok(), "{}\n{}", r.all(), w.jitd_log());
    let id = r.json()["id"].as_u64().unwrap();
    let name = account_of(id);
    let (uid, home, shell) =
        passwd(&name).unwrap_or_else(|| panic!("no {name}: {:?}", leftovers(&before)));
    assert!((1_900_000_000..=1_900_999_999).contains(&uid), "{uid}");
    assert_eq!(
        (home.as_str(), shell.as_str()),
        (&*format!("/home/{name}"), "/bin/bash")
    );
    let shown = w.jitctl("alice", &["show", &id.to_string()]);
    assert!(
        shown
            .stdout
            .contains(&format!("holds:     account: {name} (uid {uid}")),
        "{}",
        shown.all()
    );
    // In over ssh with alice's key; in the role's groups; its sudo rule is the account's.
    let inside = jit_e2e::run(
        w.ssh_as("alice", &name, "id -un; id -nG; sudo -n /usr/bin/id -u"),
        "",
        LONG,
    );
    assert!(inside.ok(), "{}\n{}", inside.all(), w.jitd_log());
    let lines: Vec<&str> = inside.stdout.lines().collect();
    assert_eq!(lines[0], name, "{}", inside.all());
    assert!(lines[1].contains("dockerish"), "{}", inside.all());
    assert_eq!(lines[2], "0", "{}", inside.all());
    // alice's own ssh login is not what the grant gives.
    let own = jit_e2e::run(w.ssh_command("alice", "true"), "", LONG);
    assert!(!own.ok(), "alice herself got in: {}", own.all());
    // Nor does another key open the account.
    let other = jit_e2e::run(w.ssh_as("mallory", &name, "true"), "", LONG);
    assert!(!other.ok(), "mallory's key opened {name}: {}", other.all());
    // A process the account leaves running, out of its session.
    let left = jit_e2e::run(
        w.ssh_as(
            "alice",
            &name,
            "setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $!",
        ),
        "",
        LONG,
    );
    assert!(left.ok(), "{}", left.all());
    let pid: i32 = left.stdout.trim().parse().unwrap();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    // A setgid copy of a program in the role's group, left where anyone can run it: it
    // would keep the group for everyone after the grant.
    let kept = jit_e2e::run(
        w.ssh_as(
            "alice",
            &name,
            "f=$(mktemp /tmp/keep.XXXXXX) && cp /usr/bin/id $f && chgrp dockerish $f && \
             chmod 2755 $f && echo $f",
        ),
        "",
        LONG,
    );
    assert!(kept.ok(), "{}", kept.all());
    let setgid = kept.stdout.trim().to_string();
    assert!(Path::new(&setgid).exists());
    // And a chain that ignores SIGHUP and keeps detaching new children (a snapshot of the
    // account's processes, killed later, misses the ones born in between).
    let chain = jit_e2e::run(
        w.ssh_as(
            "alice",
            &name,
            "setsid sh -c 'trap \"\" HUP TERM; while :; do setsid -f sh -c \"trap \\\"\\\" HUP; sleep 2\" \
             </dev/null >/dev/null 2>&1; sleep 0.2; done' </dev/null >/dev/null 2>&1 & echo ok",
        ),
        "",
        LONG,
    );
    assert!(chain.ok(), "{}", chain.all());
    wait_for("the chain to run", LONG, || {
        (running_as(uid) > 2).then_some(())
    });
    wait_for("the grant's end", Duration::from_secs(60), || {
        (w.request(id)["state"] == "expired").then_some(())
    });
    wait_for("the account to be gone", LONG, || {
        passwd(&name).is_none().then_some(())
    });
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z ")),
        "the account's process outlived it"
    );
    assert!(leftovers(&before).is_empty(), "{:?}", leftovers(&before));
    assert_eq!(running_as(uid), 0, "processes of the account outlived it");
    assert!(
        !Path::new(&setgid).exists(),
        "{setgid} outlived the account"
    );
    let again = jit_e2e::run(w.ssh_as("alice", &name, "true"), "", LONG);
    assert!(!again.ok(), "{}", again.all());
    let audit = w.audit_actions();
    for a in ["account-create", "account-remove"] {
        assert!(audit.contains(&a.to_string()), "{a}: {audit:?}");
    }
    let log = w.jitctl("root", &["audit"]).stdout;
    let removal = log
        .lines()
        .find(|l| l.contains("account-remove"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        removal.contains(&format!("{pid},")) || removal.contains(&format!("{pid}]")),
        "{removal}"
    );
    assert!(
        log.contains("keys=SHA256:"),
        "the key's fingerprint is recorded: {log}"
    );
}

#[test]
fn given_an_account_made_in_an_approvers_group_when_it_tries_to_approve_or_request_then_it_is_refused()
 {
    let _serial = jit_e2e::one_at_a_time();
    let w = Builder::new()
        .user("alice", &[])
        .user("bob", &["approvers"])
        .group("approvers")
        .accounts()
        .sshd(Some(SSH_ACCOUNT_JIT))
        .policy(
            r#"
[[role]]
name = "helper"
account = true
groups = ["approvers"]
commands = []
requesters = ["alice"]
max_duration = "1h"

[[role]]
name = "db"
commands = ["/usr/bin/id"]
requesters = ["alice"]
approvers = ["%approvers"]
approvals = 1
max_duration = "1h"
"#,
        )
        .build();
    let pending = w.submit("alice", "db", "10m", "OPS-2 the database");
    let db = pending["id"].as_u64().unwrap();
    let r = request(&w, "helper", "10m", "OPS-2 a helper account");
    assert!(r.ok(), "{}\n{}", r.all(), w.jitd_log());
    let name = account_of(r.json()["id"].as_u64().unwrap());
    let approve = w.jitctl(&name, &["approve", &db.to_string()]);
    assert!(!approve.ok(), "{}", approve.all());
    assert_eq!(w.request(db)["state"], "pending");
    let ask = w.jitctl(&name, &["request", "db", "--reason", "OPS-2 again"]);
    assert!(!ask.ok(), "{}", ask.all());
    assert!(ask.all().contains("ephemeral account"), "{}", ask.all());
}

#[test]
fn given_no_key_or_a_key_with_options_when_requested_then_refused_and_nothing_is_made() {
    let _serial = jit_e2e::one_at_a_time();
    let w = world();
    let before = traces();
    let bad = w.path().join("bad.pub");
    let blob = std::fs::read_to_string(w.path().join("keys/alice.pub")).unwrap();
    std::fs::write(&bad, format!("command=\"/bin/sh\" {blob}")).unwrap();
    let forged = w.path().join("forged.pub");
    std::fs::write(
        &forged,
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBADBADBADBADBAD\n",
    )
    .unwrap();
    for file in [&bad, &forged] {
        let r = w.jitctl(
            "alice",
            &[
                "request",
                "breakfix",
                "--reason",
                "OPS-3",
                "--ssh-key",
                file.to_str().unwrap(),
            ],
        );
        assert!(!r.ok(), "{}", r.all());
    }
    // alice's home (/tmp in this world) has no ~/.ssh/authorized_keys of hers.
    let r = w.jitctl("alice", &["request", "breakfix", "--reason", "OPS-3"]);
    assert!(!r.ok(), "{}", r.all());
    assert!(r.all().contains("--ssh-key"), "{}", r.all());
    assert!(leftovers(&before).is_empty(), "{:?}", leftovers(&before));
    assert_eq!(
        w.jitctl("root", &["--json", "list", "--all"]).json(),
        serde_json::json!([])
    );
}

/// Kills jitd at `point` (the `n`th time) during `act`, restarts it, and returns the world.
/// Also returns the [`traces`] from before anything was made.
fn crash_at(point: &str, n: u32, act: impl FnOnce(&World)) -> (World, Vec<String>) {
    let mut w = world();
    let before = traces();
    w.stop_jitd(Signal::SIGTERM);
    w.jitd_env = vec![("JITD_CRASH_AT".into(), format!("{point}:{n}"))];
    w.start_jitd();
    act(&w);
    wait_for("jitd to die at the crash point", LONG, || w.jitd_exited());
    w.stop_jitd(Signal::SIGKILL);
    w.jitd_env.clear();
    w.start_jitd();
    (w, before)
}

#[test]
fn given_jitd_killed_at_each_step_of_making_an_account_when_restarted_then_it_is_finished_and_ends_clean()
 {
    let _serial = jit_e2e::one_at_a_time();
    for point in ["after-account-row", "after-account-create"] {
        let (w, before) = crash_at(point, 1, |w| {
            let _ = request(w, "breakfix", "10m", "OPS-4");
        });
        let id = w.jitctl("alice", &["--json", "grants"]).json()[0]["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("{point}: no grant\n{}", w.jitd_log()));
        let name = account_of(id);
        assert!(
            passwd(&name).is_some(),
            "{point}: made at start: {:?}",
            leftovers(&before)
        );
        let inside = jit_e2e::run(w.ssh_as("alice", &name, "id -un"), "", LONG);
        assert_eq!(inside.stdout.trim(), name, "{point}: {}", inside.all());
        let revoke = w.jitctl("root", &["revoke", &id.to_string(), "--reason", "done"]);
        assert!(revoke.ok(), "{}", revoke.all());
        wait_for("the account to be gone", LONG, || {
            passwd(&name).is_none().then_some(())
        });
        assert!(
            leftovers(&before).is_empty(),
            "{point}: {:?}",
            leftovers(&before)
        );
    }
}

#[test]
fn given_jitd_killed_between_userdel_and_its_record_when_restarted_then_nothing_is_left_and_the_removal_is_recorded()
 {
    let _serial = jit_e2e::one_at_a_time();
    let mut id = 0;
    let (w, before) = crash_at("after-account-delete", 1, |w| {
        let r = request(w, "breakfix", "10m", "OPS-5");
        assert!(r.ok(), "{}", r.all());
        id = r.json()["id"].as_u64().unwrap();
        let _ = w.jitctl("alice", &["release", &id.to_string()]);
    });
    assert_eq!(w.request(id)["state"], "released");
    assert!(leftovers(&before).is_empty(), "{:?}", leftovers(&before));
    let log = w.jitctl("root", &["audit"]).stdout;
    assert!(
        log.contains(&format!("account=jit-alice-{id} "))
            && log.contains(&format!("its home /home/jit-alice-{id} removed")),
        "the removal is recorded after the restart: {log}"
    );
    let status = w.jitctl("root", &["status"]);
    assert!(status.stdout.contains("health: ok"), "{}", status.all());
}

#[test]
fn given_an_approved_account_role_when_approved_then_the_account_is_made_with_the_roles_shell_and_no_rule()
 {
    let _serial = jit_e2e::one_at_a_time();
    let w = world();
    let r = request(&w, "reviewed-fix", "10m", "OPS-6");
    assert!(r.ok(), "{}", r.all());
    let id = r.json()["id"].as_u64().unwrap();
    let name = account_of(id);
    assert!(passwd(&name).is_none(), "made before the approval");
    // The approver sees which keys will open the account before approving it.
    let shown = w.jitctl("bob", &["show", &id.to_string()]);
    assert!(
        shown.stdout.contains("account key: SHA256:"),
        "{}",
        shown.all()
    );
    let ok = w.jitctl("bob", &["approve", &id.to_string()]);
    assert!(ok.ok(), "{}", ok.all());
    let (_, _, shell) = passwd(&name).unwrap();
    assert_eq!(shell, "/bin/sh");
    assert!(w.sudoers_files().is_empty(), "{:?}", w.sudoers_files());
    let release = w.jitctl("alice", &["release", &id.to_string()]);
    assert!(release.ok(), "{}", release.all());
    wait_for("the account to be gone", LONG, || {
        passwd(&name).is_none().then_some(())
    });
}

#[test]
fn given_an_account_planted_in_jitds_range_when_jitd_starts_then_it_is_removed_and_recorded_as_tamper()
 {
    let _serial = jit_e2e::one_at_a_time();
    let mut w = world();
    w.stop_jitd(Signal::SIGTERM);
    let made = jit_e2e::run(
        {
            let mut c = std::process::Command::new("useradd");
            c.args([
                "-u",
                "1900000777",
                "-M",
                "-N",
                "-g",
                "users",
                "jit-mallory-1",
            ]);
            c
        },
        "",
        LONG,
    );
    assert!(made.ok(), "{}", made.all());
    assert!(passwd("jit-mallory-1").is_some());
    w.start_jitd();
    assert!(passwd("jit-mallory-1").is_none(), "{}", w.jitd_log());
    let log = w.jitctl("root", &["audit"]).stdout;
    assert!(log.contains("jit-mallory-1 (uid 1900000777)"), "{log}");
    assert!(w.audit_actions().contains(&"tamper".to_string()));
    let status = w.jitctl("root", &["status"]);
    assert!(status.stdout.contains("jit-mallory-1"), "{}", status.all());
    // Its uid is never given to an account of jitd's.
    let r = request(&w, "breakfix", "10m", "OPS-7");
    assert!(r.ok(), "{}", r.all());
    let name = account_of(r.json()["id"].as_u64().unwrap());
    assert_ne!(passwd(&name).unwrap().0, 1_900_000_777);
}

#[test]
fn given_an_account_deleted_without_its_home_when_its_grant_ends_then_the_home_left_behind_goes_too()
 {
    let _serial = jit_e2e::one_at_a_time();
    let mut w = world();
    let before = traces();
    let r = request(&w, "breakfix", "10m", "OPS-8");
    assert!(r.ok(), "{}", r.all());
    let id = r.json()["id"].as_u64().unwrap();
    let name = account_of(id);
    let (uid, home, _) = passwd(&name).unwrap();
    // As an interrupted `userdel --remove` leaves it: the account gone, its home not.
    w.stop_jitd(Signal::SIGTERM);
    let del = jit_e2e::run(
        {
            let mut c = std::process::Command::new("userdel");
            c.arg(&name);
            c
        },
        "",
        LONG,
    );
    assert!(del.ok(), "{}", del.all());
    assert!(Path::new(&home).exists());
    w.start_jitd();
    let release = w.jitctl("alice", &["release", &id.to_string()]);
    assert!(release.ok(), "{}", release.all());
    wait_for("the home to go", LONG, || {
        (!Path::new(&home).exists()).then_some(())
    });
    let log = w.jitctl("root", &["audit"]).stdout;
    assert!(
        log.contains(&format!(
            "account={name} uid={uid} removed, its home {home} removed (left behind by userdel)"
        )),
        "{log}"
    );
    assert!(
        !leftovers(&before).iter().any(|l| l.starts_with("/home/")),
        "{:?}",
        leftovers(&before)
    );
}
