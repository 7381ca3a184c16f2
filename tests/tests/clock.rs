//! The wall clock stepped under a running jitd, for jitd alone: libfaketime is preloaded
//! into jitd only (never the machine's clock, never sudo's) and told to move its wall clock
//! through a file the test writes. CLOCK_BOOTTIME stays real, as it does when an admin or
//! NTP steps the clock. A step back must not lengthen a grant; a step forward ends what is
//! then due.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use jit_e2e::{Builder, World, has_rule, wait_for};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

const POLICY: &str = r#"
[[role]]
name = "web-restart"
commands = ["/usr/bin/true"]
requesters = ["alice"]
max_duration = "4h"
"#;

/// A world whose jitd sees its wall clock moved by the offset written to the returned file.
fn stepped_world() -> (World, PathBuf) {
    assert!(
        Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} missing (Debian package libfaketime; tests/run installs it)"
    );
    let mut w = Builder::new()
        .user("alice", &[])
        .policy(POLICY)
        .without_jitd()
        .build();
    let offset = w.path().join("faketime");
    std::fs::write(&offset, "+0\n").unwrap();
    w.jitd_env = vec![
        ("LD_PRELOAD".into(), LIBFAKETIME.into()),
        (
            "FAKETIME_TIMESTAMP_FILE".into(),
            offset.to_str().unwrap().into(),
        ),
        // Read the file on every call, so a step takes effect at once.
        ("FAKETIME_NO_CACHE".into(), "1".into()),
        // Only the wall clock moves; CLOCK_MONOTONIC and CLOCK_BOOTTIME stay real.
        ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
    ];
    w.start_jitd();
    (w, offset)
}

fn grant(w: &World, duration: &str) -> u64 {
    let id = w.submit("alice", "web-restart", duration, "OPS-1")["id"]
        .as_u64()
        .unwrap();
    assert_eq!(w.request(id)["state"], "active");
    assert!(has_rule(id), "no rule for grant {id}");
    id
}

fn real_now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// The time jitd wrote on the last audit record with `action` for request `id`.
fn audit_at(w: &World, action: &str, id: u64) -> i64 {
    let r = w.jitctl("root", &["--json", "audit"]);
    assert!(r.ok(), "{}", r.all());
    r.json()
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|a| a["action"] == action && a["request_id"].as_u64() == Some(id))
        .unwrap_or_else(|| panic!("no {action} record for {id}: {}", r.stdout))["at"]
        .as_i64()
        .unwrap()
}

#[test]
fn given_jitd_clock_stepped_back_an_hour_when_grant_time_passes_then_grant_still_ends() {
    let (w, offset) = stepped_world();
    let id = grant(&w, "8s");
    let granted = Instant::now();
    std::fs::write(&offset, "-3600\n").unwrap();
    // jitd now believes an hour and eight seconds are left; the boot clock says eight.
    wait_for(
        "the grant's rule to be removed",
        Duration::from_secs(20),
        || (!has_rule(id)).then_some(()),
    );
    let took = granted.elapsed();
    assert!(
        took >= Duration::from_secs(6),
        "ended after {took:?}, before its time"
    );
    let req = w.request(id);
    assert_eq!(req["state"], "expired", "{req}");
    assert!(
        req["decision_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("boot clock"),
        "{req}"
    );
    // The step really reached jitd: it dated the expiry an hour back.
    let at = audit_at(&w, "expire", id);
    assert!(
        at < real_now() - 3000,
        "expiry dated {at}, now {}",
        real_now()
    );
    assert!(!w.sudo_n("alice", &["/usr/bin/true"]).ok());
}

#[test]
fn given_jitd_clock_stepped_forward_past_not_after_when_timer_runs_then_grant_ends_at_once() {
    let (w, offset) = stepped_world();
    let id = grant(&w, "1h");
    let stepped = Instant::now();
    std::fs::write(&offset, "+7200\n").unwrap();
    wait_for(
        "the grant's rule to be removed",
        Duration::from_secs(10),
        || (!has_rule(id)).then_some(()),
    );
    assert!(
        stepped.elapsed() < Duration::from_secs(5),
        "{:?}",
        stepped.elapsed()
    );
    let req = w.request(id);
    assert_eq!(req["state"], "expired", "{req}");
    assert!(
        req["decision_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("not_after"),
        "{req}"
    );
    assert!(audit_at(&w, "expire", id) > real_now() + 6000);
}

/// The boot id jitd reads, replaced (in this test's mount namespace) as a reboot would.
struct FakeBootId {
    _file: tempfile::NamedTempFile,
}

const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

impl FakeBootId {
    fn mount() -> FakeBootId {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, b"00000000-1111-2222-3333-444444444444\n").unwrap();
        nix::mount::mount(
            Some(file.path()),
            BOOT_ID,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .unwrap();
        FakeBootId { _file: file }
    }
}

impl Drop for FakeBootId {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(BOOT_ID, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn given_new_boot_id_when_jitd_starts_then_every_grant_is_judged_again() {
    let policy = r#"
[[role]]
name = "web-restart"
commands = ["/usr/bin/true"]
requesters = ["alice"]
max_duration = "4h"

[[role]]
name = "db-admin"
commands = ["/usr/bin/id"]
requesters = ["alice"]
max_duration = "4h"
"#;
    let mut w = Builder::new().user("alice", &[]).policy(policy).build();
    let request = |role: &str| {
        w.submit("alice", role, "1h", "OPS-1")["id"]
            .as_u64()
            .unwrap()
    };
    let (web, db) = (request("web-restart"), request("db-admin"));
    w.stop_jitd(nix::sys::signal::Signal::SIGTERM);
    // While jitd was down, alice lost db-admin in the policy; the host "rebooted".
    std::fs::write(
        &w.policy_path,
        policy.replace(
            "commands = [\"/usr/bin/id\"]\nrequesters = [\"alice\"]",
            "commands = [\"/usr/bin/id\"]\nrequesters = [\"bob\"]",
        ),
    )
    .unwrap();
    let before = std::fs::read_to_string(BOOT_ID).unwrap();
    let _boot = FakeBootId::mount();
    assert_ne!(std::fs::read_to_string(BOOT_ID).unwrap(), before);
    w.start_jitd();
    assert_eq!(w.request(db)["state"], "revoked");
    assert!(!has_rule(db));
    assert_eq!(w.request(web)["state"], "active");
    assert!(has_rule(web));
    let audit = w.jitctl("root", &["--json", "audit"]);
    let records = audit.json();
    let reevaluated = records
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action"] == "reevaluate" && a["request_id"].as_u64() == Some(web))
        .unwrap_or_else(|| panic!("{}", audit.stdout));
    assert!(
        reevaluated["detail"]
            .as_str()
            .unwrap()
            .contains(before.trim()),
        "{reevaluated}"
    );
    // A restart within the same (fake) boot judges nothing again.
    w.stop_jitd(nix::sys::signal::Signal::SIGTERM);
    w.start_jitd();
    let again = w.jitctl("root", &["--json", "audit"]).json();
    let count = again
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "reevaluate")
        .count();
    assert_eq!(count, 1, "{again}");
}
