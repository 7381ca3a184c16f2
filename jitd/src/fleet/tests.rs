//! The records signed as a real fleet would sign them: hosts' keys through `ssh-key`,
//! approvals with OpenSSH's own `ssh-keygen -Y sign`, keys made by `ssh-keygen`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::policy::FleetPolicy;
use super::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const NOW: i64 = 1_795_272_000;

struct Keys {
    dir: tempfile::TempDir,
}

impl Keys {
    fn new() -> Keys {
        Keys {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// An ed25519 key pair made by ssh-keygen; returns the public key line.
    fn make(&self, name: &str) -> String {
        let ok = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(self.path(name))
            .status()
            .unwrap()
            .success();
        assert!(ok);
        std::fs::read_to_string(self.path(&format!("{name}.pub")))
            .unwrap()
            .trim()
            .to_string()
    }

    fn private(&self, name: &str) -> PrivateKey {
        PrivateKey::read_openssh_file(&self.path(name)).unwrap()
    }

    /// `ssh-keygen -Y sign` of `record` with `name`'s key in `namespace`.
    fn ssh_keygen_sign<T: Canonical>(&self, name: &str, namespace: &str, record: &T) -> String {
        let msg = self.path(&format!("msg-{}", rand_suffix()));
        std::fs::write(&msg, record.canonical()).unwrap();
        let out = Command::new("ssh-keygen")
            .args(["-Y", "sign", "-n", namespace, "-f"])
            .arg(self.path(name))
            .arg(&msg)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read_to_string(sig_of(&msg)).unwrap()
    }
}

fn sig_of(msg: &Path) -> PathBuf {
    let mut p = msg.as_os_str().to_owned();
    p.push(".sig");
    PathBuf::from(p)
}

fn rand_suffix() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        .to_string()
}

/// Two db hosts and a web host; approvers bob and carol (one approval needed); alice and
/// bob may request db-admin (bob, to show he cannot approve his own).
struct Fleet {
    keys: Keys,
    policy: FleetPolicy,
}

fn fleet() -> Fleet {
    let keys = Keys::new();
    let (db1, db2, web1) = (keys.make("db1"), keys.make("db2"), keys.make("web1"));
    let (bob, carol) = (keys.make("bob"), keys.make("carol"));
    keys.make("mallory");
    let text = format!(
        r#"
max_skew = "5m"
[etcd]
endpoints = ["https://127.0.0.1:2379"]
ca = "/etc/jit/fleet/ca.pem"

[[host]]
name = "db1"
key = "{db1}"
groups = ["db"]
[[host]]
name = "db2"
key = "{db2}"
groups = ["db"]
[[host]]
name = "web1"
key = "{web1}"
groups = ["web"]

[[approver]]
name = "bob"
keys = ["{bob}"]
[[approver]]
name = "carol"
keys = ["{carol}"]

[[fleet_role]]
name = "db-admin"
hosts = ["db"]
requesters = ["alice", "bob"]
approvers = ["bob", "carol"]
approvals = 1
max_duration = "1h"
commands = ["/usr/bin/id"]

[[fleet_role]]
name = "db-read"
hosts = ["db"]
requesters = ["alice"]
max_duration = "10m"
commands = ["/usr/bin/id"]
"#
    );
    Fleet {
        policy: FleetPolicy::parse(&text).unwrap(),
        keys,
    }
}

impl Fleet {
    fn request(&self, user: &str, hosts: &[&str]) -> FleetRequest {
        FleetRequest {
            id: "db1-17".into(),
            host: "db1".into(),
            user: user.into(),
            role: "db-admin".into(),
            hosts: hosts.iter().map(ToString::to_string).collect(),
            duration_secs: 1800,
            reason: "INC-123 replica lag".into(),
            created_at: NOW - 60,
            policy_digest: self.policy.digest.clone(),
        }
    }

    /// Signed by its host's key, as that host's jitd signs it.
    fn signed(&self, r: FleetRequest) -> Signed<FleetRequest> {
        let signature = sign(&self.keys.private(&r.host), REQUEST_NAMESPACE, &r).unwrap();
        Signed {
            record: r,
            signature,
        }
    }

    /// `who` approves `r` with `key`'s key (their own, unless a test says otherwise).
    fn approval(&self, r: &FleetRequest, who: &str, key: &str, at: i64) -> Signed<Approval> {
        let record = Approval {
            request_id: r.id.clone(),
            request_digest: r.digest(),
            approver: who.into(),
            approved_at: at,
        };
        let signature = self.keys.ssh_keygen_sign(key, APPROVAL_NAMESPACE, &record);
        Signed { record, signature }
    }
}

#[test]
fn given_a_request_approved_by_an_approver_when_verified_on_a_matching_host_then_enforced_until_approval_plus_duration()
 {
    let f = fleet();
    let r = f.request("alice", &["db1", "db2"]);
    let a = f.approval(&r, "carol", "carol", NOW - 30);
    let req = f.signed(r);
    for host in ["db1", "db2"] {
        let d = verify(&f.policy, host, &req, std::slice::from_ref(&a), &[], NOW).unwrap();
        assert_eq!(d.not_after, NOW - 30 + 1800, "{host}");
        assert_eq!(d.approvers, ["carol"]);
    }
    // A host not named, or not in the role's groups, does nothing.
    assert!(matches!(
        verify(&f.policy, "web1", &req, std::slice::from_ref(&a), &[], NOW),
        Err(Refused::NotForThisHost(..))
    ));
}

#[test]
fn given_forged_self_replayed_or_wrong_namespace_approvals_when_verified_then_not_approved() {
    let f = fleet();
    let r = f.request("bob", &["db1"]);
    let req = f.signed(r.clone());
    // mallory's key, claiming to be carol.
    let forged = f.approval(&r, "carol", "mallory", NOW - 10);
    // bob approving his own request, with his own valid key.
    let own = f.approval(&r, "bob", "bob", NOW - 10);
    // carol's valid approval of another request.
    let mut other = r.clone();
    other.id = "db1-18".into();
    let replayed = f.approval(&other, "carol", "carol", NOW - 10);
    let mut moved = replayed.clone();
    moved.record.request_id = r.id.clone();
    // carol's key, but a signature made for another namespace.
    let mut wrong_ns = f.approval(&r, "carol", "carol", NOW - 10);
    wrong_ns.signature = f
        .keys
        .ssh_keygen_sign("carol", END_NAMESPACE, &wrong_ns.record);
    let e = verify(
        &f.policy,
        "db1",
        &req,
        &[forged, own, replayed, moved, wrong_ns],
        &[],
        NOW,
    )
    .unwrap_err();
    assert_eq!(
        e,
        Refused::NotApproved(
            "db1-17".into(),
            0,
            1,
            "; the requester's own approval does not count".into()
        )
    );
}

#[test]
fn given_a_request_altered_after_approval_when_verified_then_refused() {
    let f = fleet();
    let r = f.request("alice", &["db1"]);
    let a = f.approval(&r, "carol", "carol", NOW - 10);
    let signed = f.signed(r.clone());
    type Alter = fn(&mut FleetRequest);
    let alterations: [(&str, Alter); 5] = [
        ("role", |r| r.role = "db-admin2".into()),
        ("duration", |r| r.duration_secs = 3600),
        ("hosts", |r| r.hosts.push("db2".into())),
        ("reason", |r| r.reason = "something else".into()),
        ("user", |r| r.user = "bob".into()),
    ];
    for (what, alter) in alterations {
        // Altered in transit, its old signature kept: the host's signature no longer holds.
        let mut tampered = signed.clone();
        alter(&mut tampered.record);
        let e = verify(
            &f.policy,
            "db1",
            &tampered,
            std::slice::from_ref(&a),
            &[],
            NOW,
        )
        .unwrap_err();
        assert!(matches!(e, Refused::BadRequestSignature(..)), "{what}: {e}");
        // Altered and signed again by a (compromised) host: the approval names the old one.
        let mut resigned = r.clone();
        alter(&mut resigned);
        if what == "role" {
            continue;
        }
        let e = verify(
            &f.policy,
            "db1",
            &f.signed(resigned),
            std::slice::from_ref(&a),
            &[],
            NOW,
        )
        .unwrap_err();
        assert!(matches!(e, Refused::NotApproved(..)), "{what}: {e}");
    }
}

#[test]
fn given_unknown_hosts_other_policies_ends_and_clocks_when_verified_then_each_refused_as_it_is() {
    let f = fleet();
    let r = f.request("alice", &["db1"]);
    let a = f.approval(&r, "carol", "carol", NOW - 10);
    let req = f.signed(r.clone());
    // Signed by a host the policy does not know.
    let mut stranger = r.clone();
    stranger.host = "mallory".into();
    let signature = sign(&f.keys.private("mallory"), REQUEST_NAMESPACE, &stranger).unwrap();
    let e = verify(
        &f.policy,
        "db1",
        &Signed {
            record: stranger,
            signature,
        },
        std::slice::from_ref(&a),
        &[],
        NOW,
    )
    .unwrap_err();
    assert!(matches!(e, Refused::UnknownHost(..)), "{e}");
    // Made under another version of the fleet policy.
    let mut other = r.clone();
    other.policy_digest = "0".repeat(64);
    let e = verify(&f.policy, "db1", &f.signed(other), &[], &[], NOW).unwrap_err();
    assert!(matches!(e, Refused::PolicyMismatch(..)), "{e}");
    // Ended by bob (an approver), signed with his key: refused; an end signed by mallory
    // (no key the policy knows) is ignored.
    let end = End {
        request_id: r.id.clone(),
        request_digest: r.digest(),
        by: "bob".into(),
        at: NOW - 5,
    };
    let by_bob = Signed {
        signature: f.keys.ssh_keygen_sign("bob", END_NAMESPACE, &end),
        record: end.clone(),
    };
    let by_mallory = Signed {
        signature: f.keys.ssh_keygen_sign("mallory", END_NAMESPACE, &end),
        record: end,
    };
    let ok = verify(
        &f.policy,
        "db1",
        &req,
        std::slice::from_ref(&a),
        std::slice::from_ref(&by_mallory),
        NOW,
    );
    assert!(ok.is_ok(), "{ok:?}");
    let e = verify(
        &f.policy,
        "db1",
        &req,
        std::slice::from_ref(&a),
        &[by_mallory, by_bob],
        NOW,
    )
    .unwrap_err();
    assert!(matches!(e, Refused::Ended(..)), "{e}");
    // Approved a little in this host's future (within the bound): it starts now, never
    // lasting longer than asked.
    let soon = f.approval(&r, "carol", "carol", NOW + 200);
    let d = verify(&f.policy, "db1", &req, &[soon], &[], NOW).unwrap();
    assert_eq!(d.not_after, NOW + 1800);
    // Approved in this host's future beyond the bound; or long enough ago that it ended.
    let future = f.approval(&r, "carol", "carol", NOW + 301);
    let e = verify(&f.policy, "db1", &req, &[future], &[], NOW).unwrap_err();
    assert!(matches!(e, Refused::Clock(..)), "{e}");
    let e = verify(
        &f.policy,
        "db1",
        &req,
        std::slice::from_ref(&a),
        &[],
        NOW + 1800,
    )
    .unwrap_err();
    assert!(matches!(e, Refused::Expired(..)), "{e}");
    // A host that was down when it was approved applies it on its return, never longer.
    let d = verify(
        &f.policy,
        "db1",
        &req,
        std::slice::from_ref(&a),
        &[],
        NOW + 1000,
    )
    .unwrap();
    assert_eq!(d.not_after, NOW - 10 + 1800);
}

#[test]
fn given_bad_fleet_policies_when_parsed_then_refused_saying_what() {
    let keys = Keys::new();
    let k = keys.make("h");
    let k2 = keys.make("a");
    let host = |name: &str, key: &str| {
        format!("[[host]]\nname = \"{name}\"\nkey = \"{key}\"\ngroups = [\"db\"]\n")
    };
    let role = |extra: &str| {
        format!(
            "[[fleet_role]]\nname = \"r\"\nhosts = [\"db\"]\nrequesters = [\"alice\"]\n\
             max_duration = \"1h\"\ncommands = [\"/usr/bin/id\"]\n{extra}\n"
        )
    };
    for (text, needle) in [
        (host("DB1", &k), "lower case"),
        (
            "max_skew = \"5m\"\nrecord_retention = \"9m\"\n".to_string(),
            "at least twice max_skew",
        ),
        (
            format!("{}{}", host("db1", &k), host("db1", &k2)),
            "named twice",
        ),
        (
            format!("{}{}", host("db1", &k), host("db2", &k)),
            "key of another host",
        ),
        (host("db1", &format!("command=x {k}")), "options"),
        (host("db1", "ssh-ed25519 AAAAnotakey"), "db1"),
        (
            format!(
                "{}{}",
                host("db1", &k),
                role("approvers = [\"zed\"]\napprovals = 1")
            ),
            "no [[approver]]",
        ),
        (
            format!("{}{}", host("db1", &k), role("approvals = 2")),
            "needs 2 approvals",
        ),
        (
            format!(
                "{}{}",
                host("db1", &k),
                role("").replace("[\"db\"]", "[\"web\"]")
            ),
            "no host is in group 'web'",
        ),
        ("surprise = 1\n".to_string(), "surprise"),
        (
            format!(
                "{}{}fleet_stale_after = \"10s\"\n",
                host("db1", &k),
                role("")
            ),
            "fleet_stale_after must be at least 30s",
        ),
        (
            format!(
                "{}[[approver]]\nname = \"bob\"\nkeys = [\"{k}\"]\n",
                host("db1", &k)
            ),
            "another approver or a host",
        ),
        (
            format!(
                "[[approver]]\nname = \"bob\"\nkeys = [\"{k}\"]\n[[approver]]\nname = \"bob2\"\nkeys = [\"{k}\"]\n"
            ),
            "another approver or a host",
        ),
    ] {
        let e = FleetPolicy::parse(&text).unwrap_err();
        assert!(e.contains(needle), "{needle}: {e}");
    }
}

#[test]
fn given_a_self_service_fleet_role_when_verified_then_it_needs_no_approval_and_ends_from_the_request()
 {
    let f = fleet();
    let mut r = f.request("alice", &["db1"]);
    r.role = "db-read".into();
    r.duration_secs = 600;
    let d = verify(&f.policy, "db1", &f.signed(r.clone()), &[], &[], NOW).unwrap();
    assert_eq!(d.not_after, NOW - 60 + 600);
    assert!(d.approvers.is_empty());
    // Longer than the role allows: refused; made in this host's future: refused.
    r.duration_secs = 601;
    assert!(matches!(
        verify(&f.policy, "db1", &f.signed(r.clone()), &[], &[], NOW),
        Err(Refused::BadDuration(..))
    ));
    r.duration_secs = 60;
    r.created_at = i64::MAX;
    assert!(matches!(
        verify(&f.policy, "db1", &f.signed(r.clone()), &[], &[], NOW),
        Err(Refused::Clock(..))
    ));
    r.created_at = i64::MIN;
    assert!(matches!(
        verify(&f.policy, "db1", &f.signed(r), &[], &[], NOW),
        Err(Refused::Expired(..))
    ));
}

#[test]
fn given_an_approval_later_than_the_requests_duration_when_verified_then_the_request_has_lapsed() {
    let f = fleet();
    let mut r = f.request("alice", &["db1"]);
    r.created_at = NOW - 2500;
    let req = f.signed(r.clone());
    // 1800 s asked, 300 s of clock bound: approved 2400 s after it was made, too late.
    let late = f.approval(&r, "carol", "carol", NOW - 100);
    let e = verify(&f.policy, "db1", &req, &[late], &[], NOW).unwrap_err();
    assert!(matches!(e, Refused::Lapsed(..)), "{e}");
    // Within the bound it stands, for its duration from the approval.
    let in_time = f.approval(&r, "carol", "carol", NOW - 500);
    let d = verify(&f.policy, "db1", &req, &[in_time], &[], NOW).unwrap();
    assert_eq!(d.not_after, NOW - 500 + 1800);
    assert!(last_in_force(&r, 300) >= d.not_after);
}
