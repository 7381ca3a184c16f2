//! The state database on a full disk: every change is refused (no new grant, no lost
//! record), a grant whose time is up still loses its rule on time, the error shows in
//! `jitctl status`, and once there is room again jitd records what it could not.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use jit_e2e::{Builder, has_rule, shard_file, wait_for};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::signal::Signal;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

const POLICY: &str = r#"
[[role]]
name = "web-restart"
commands = ["/usr/bin/true"]
requesters = ["alice"]
max_duration = "1h"

[[role]]
name = "db-read"
commands = ["/usr/bin/id"]
requesters = ["alice"]
max_duration = "1h"
"#;

/// Fills the file system under `path` until a write fails with ENOSPC.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0xa5u8; 64 * 1024];
    loop {
        match f.write(&block) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    // Whatever is left below a block, too.
    while f.write(&[0u8]).is_ok_and(|n| n == 1) {}
    let _ = f.sync_all();
}

#[test]
fn given_full_disk_when_requests_come_then_refused_while_expiry_goes_on_and_status_says_why() {
    let mut w = Builder::new()
        .user("alice", &[])
        .policy(POLICY)
        .without_jitd()
        .build();
    // The state directory on its own small file system, so filling it is harmless.
    std::fs::create_dir_all(&w.state_dir).unwrap();
    mount(
        Some("tmpfs"),
        &w.state_dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("size=4m,mode=0700"),
    )
    .unwrap();
    w.start_jitd();
    let request = |duration: &str| {
        w.jitctl(
            "alice",
            &[
                "--json",
                "request",
                "web-restart",
                "--for",
                duration,
                "--reason",
                "OPS-1",
            ],
        )
    };
    let short = request("6s");
    assert!(short.ok(), "{}", short.all());
    let short = short.json()["id"].as_u64().unwrap();
    assert!(has_rule(short));
    let before = w.jitctl("root", &["--json", "audit"]).json();
    let records_before = before.as_array().unwrap().len();

    let ballast = w.state_dir.join("ballast");
    fill(&ballast);
    let refused = w.jitctl(
        "alice",
        &["request", "db-read", "--for", "1h", "--reason", "OPS-2"],
    );
    assert!(!refused.ok(), "granted on a full disk: {}", refused.all());
    assert!(
        refused.stderr.contains("full"),
        "the error should say why: {}",
        refused.all()
    );
    let grants = w.jitctl("root", &["--json", "list", "--all"]).json();
    assert_eq!(
        grants.as_array().unwrap().len(),
        1,
        "nothing new may be recorded: {grants}"
    );
    let status = w.jitctl("root", &["status"]);
    assert_eq!(
        status.code,
        1,
        "unhealthy is a failure to monitoring: {}",
        status.all()
    );
    assert!(
        status.stdout.contains("health: ERROR") && status.stdout.contains("full"),
        "{}",
        status.all()
    );

    // The first grant's time runs out while the disk is still full: its rule goes anyway.
    wait_for(
        "the expired grant's rule to go",
        Duration::from_secs(20),
        || (!has_rule(short)).then_some(()),
    );
    assert!(!w.sudo_n("alice", &["/usr/bin/true"]).ok());
    assert_eq!(
        w.request(short)["state"],
        "active",
        "the database could not record the expiry yet"
    );
    // Room again: the expiry is recorded, status is healthy, requests work.
    std::fs::remove_file(&ballast).unwrap();
    wait_for("the expiry to be recorded", Duration::from_secs(10), || {
        (w.request(short)["state"] == "expired").then_some(())
    });
    let status = w.jitctl("root", &["status"]);
    assert!(status.stdout.contains("health: ok"), "{}", status.all());
    let again = request("1h");
    assert!(again.ok(), "{}", again.all());
    let after = w.jitctl("root", &["--json", "audit"]).json();
    assert!(after.as_array().unwrap().len() > records_before);
    let verify = w.jitctl("root", &["audit", "verify"]);
    assert!(verify.ok(), "{}", verify.all());

    w.stop_jitd(Signal::SIGTERM);
    umount2(&w.state_dir, MntFlags::MNT_DETACH).unwrap();
}

fn audit_details(w: &jit_e2e::World, action: &str) -> Vec<String> {
    let r = w.jitctl("root", &["--json", "audit"]);
    assert!(r.ok(), "{}", r.all());
    r.json()
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == action)
        .map(|a| a["detail"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn given_symlink_fifo_and_hard_link_planted_at_jitd_names_when_jitd_starts_then_removed_and_recorded()
 {
    let mut w = Builder::new().user("alice", &[]).policy(POLICY).build();
    let id = w.submit("alice", "web-restart", "1h", "OPS-1")["id"]
        .as_u64()
        .unwrap();
    w.stop_jitd(Signal::SIGTERM);
    let dir = Path::new("/etc/sudoers.d");
    // At the active grant's shard: a symlink to a rule that gives alice everything.
    let bait = w.path().join("bait");
    std::fs::write(&bait, "alice ALL=(ALL) NOPASSWD: ALL\n").unwrap();
    let shard = dir.join(shard_file(id));
    std::fs::remove_file(&shard).unwrap();
    std::os::unix::fs::symlink(&bait, &shard).unwrap();
    // At an unused shard: a FIFO (sudo would block reading it) and, at another, a hard link.
    let fifo = dir.join(shard_file(id + 1));
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // (The other name is in the same directory, a name sudo skips: it has a dot.)
    let linked = dir.join("zz.linked");
    std::fs::write(&linked, "# grants: 99\n").unwrap();
    let hard = dir.join(shard_file(id + 2));
    std::fs::hard_link(&linked, &hard).unwrap();

    w.start_jitd();
    // The grant's rule is back as a plain file of jitd's; the planted entries are gone and
    // nothing was followed.
    let meta = std::fs::symlink_metadata(&shard).unwrap();
    assert!(meta.file_type().is_file(), "{meta:?}");
    let text = std::fs::read_to_string(&shard).unwrap();
    assert!(jit_e2e::grants_in(&text).contains(&id) && !text.contains("NOPASSWD: ALL"));
    assert!(
        std::fs::read_to_string(&bait)
            .unwrap()
            .contains("NOPASSWD: ALL")
    );
    assert!(std::fs::symlink_metadata(&fifo).is_err());
    assert!(std::fs::symlink_metadata(&hard).is_err());
    assert!(linked.exists(), "the other link is left alone");
    std::fs::remove_file(&linked).unwrap();
    let tamper = audit_details(&w, "tamper");
    for (name, what) in [
        (shard_file(id), "a symlink"),
        (shard_file(id + 1), "a FIFO"),
        (shard_file(id + 2), "a file with 2 hard links"),
    ] {
        assert!(
            tamper.iter().any(|d| d.contains(&name) && d.contains(what)),
            "{name} {what}: {tamper:?}"
        );
    }
    let status = w.jitctl("root", &["status"]);
    assert!(
        status.stdout.contains("health: ERROR") && status.stdout.contains("jitd never creates"),
        "{}",
        status.all()
    );
    assert!(w.sudo_n("alice", &["/usr/bin/true"]).ok());
    assert!(!w.sudo_n("alice", &["/usr/bin/id"]).ok());
}

/// Starts jitd on `state_dir` and `sudoers_dir` and expects it to refuse, saying `why`.
fn refuses_to_start(w: &jit_e2e::World, state_dir: &Path, sudoers_dir: &Path, why: &str) {
    let mut c = std::process::Command::new(jit_e2e::bin("jitd"));
    c.arg("--config")
        .arg(&w.policy_path)
        .arg("--state-dir")
        .arg(state_dir)
        .arg("--sudoers-dir")
        .arg(sudoers_dir)
        .arg("--bus")
        .arg(&w.bus)
        .arg("--pam-socket")
        .arg(w.path().join("other.socket"));
    let out = jit_e2e::run(c, "", Duration::from_secs(30));
    assert!(!out.ok(), "jitd started: {}", out.all());
    assert!(out.stderr.contains(why), "{}", out.all());
}

#[test]
fn given_planted_links_in_state_or_in_place_of_directories_when_jitd_starts_then_it_refuses() {
    let w = Builder::new()
        .user("alice", &[])
        .policy(POLICY)
        .without_jitd()
        .build();
    let elsewhere = w.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let sudoers = Path::new("/etc/sudoers.d");

    // The state directory is a symlink.
    let state_link = w.path().join("state-link");
    std::os::unix::fs::symlink(&elsewhere, &state_link).unwrap();
    refuses_to_start(&w, &state_link, sudoers, "symlinks are refused");

    // The database, or its write-ahead log, is a symlink or a hard link.
    for (name, plant) in [
        ("jitd.db", "symlink"),
        ("jitd.db-wal", "symlink"),
        ("jitd.db", "hard link"),
    ] {
        let state = tempfile::tempdir().unwrap();
        let target = elsewhere.join(format!("target-{name}"));
        std::fs::write(&target, "").unwrap();
        let at = state.path().join(name);
        if plant == "symlink" {
            std::os::unix::fs::symlink(&target, &at).unwrap();
        } else {
            std::fs::hard_link(&target, &at).unwrap();
        }
        refuses_to_start(&w, state.path(), sudoers, "jitd never creates");
        assert_eq!(
            std::fs::read(&target).unwrap(),
            b"",
            "{name} was written through"
        );
    }

    // The sudoers directory is a symlink to a directory jitd would otherwise write into.
    let state = tempfile::tempdir().unwrap();
    let sudoers_link = w.path().join("sudoers-link");
    std::os::unix::fs::symlink(&elsewhere, &sudoers_link).unwrap();
    refuses_to_start(&w, state.path(), &sudoers_link, "symlinks are refused");
    assert!(
        std::fs::read_dir(&elsewhere).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("jit-"))
    );
}
