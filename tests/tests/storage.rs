//! The state database on a full disk: every change is refused (no new grant, no lost
//! record), a grant whose time is up still loses its rule on time, the error shows in
//! `jitctl status`, and once there is room again jitd records what it could not.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use jit_e2e::{Builder, shard_file, wait_for};
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

fn has_rule(id: u64) -> bool {
    std::fs::read_to_string(Path::new("/etc/sudoers.d").join(shard_file(id)))
        .is_ok_and(|s| s.contains(&format!("# jitd grant {id}:")))
}

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
