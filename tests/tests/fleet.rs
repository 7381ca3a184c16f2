//! The fleet policy through the real binaries: `jitctl policy check --fleet` runs jitd's own
//! parser on a file with keys made by the real ssh-keygen. (What a host does with verified
//! fleet records is tested in jitd's `fleet` module; the etcd agent is not built yet.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use jit_e2e::{bin, run};
use std::process::Command;
use std::time::Duration;

fn keygen(dir: &std::path::Path, name: &str) -> String {
    let path = dir.join(name);
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    std::fs::read_to_string(path.with_extension("pub"))
        .unwrap()
        .trim()
        .to_string()
}

fn check(file: &std::path::Path) -> jit_e2e::Run {
    let mut c = Command::new(bin("jitctl"));
    c.args(["policy", "check", "--fleet"]).arg(file);
    run(c, "", Duration::from_secs(30))
}

#[test]
fn given_a_fleet_policy_when_checked_then_hosts_roles_and_keys_are_read_and_a_bad_one_is_refused_saying_why()
 {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (db1, bob) = (keygen(d, "db1"), keygen(d, "bob"));
    let good = format!(
        "[etcd]\nendpoints = [\"https://10.0.0.1:2379\"]\n\n[[host]]\nname = \"db1.example.com\"\n\
         key = \"{db1}\"\ngroups = [\"db\"]\n\n[[approver]]\nname = \"bob\"\nkeys = [\"{bob}\"]\n\n\
         [[fleet_role]]\nname = \"db-admin\"\nhosts = [\"db\"]\nrequesters = [\"alice\"]\n\
         approvers = [\"bob\"]\napprovals = 1\nmax_duration = \"1h\"\n"
    );
    let file = d.join("fleet.toml");
    std::fs::write(&file, &good).unwrap();
    let r = check(&file);
    assert!(r.ok(), "{}", r.all());
    assert!(
        r.stdout
            .contains("OK (1 hosts, 1 fleet roles, 1 approvers; digest "),
        "{}",
        r.all()
    );
    // The requester's key given as an approver's, with options: refused, saying what.
    let bad = good.replace(
        &format!("keys = [\"{bob}\"]"),
        &format!("keys = [\"from=x {bob}\"]"),
    );
    std::fs::write(&file, bad).unwrap();
    let r = check(&file);
    assert!(!r.ok(), "{}", r.all());
    assert!(r.all().contains("approver 'bob' key"), "{}", r.all());
}
