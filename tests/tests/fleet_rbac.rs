//! The fleet's etcd as `conf/fleet-init.sh` sets it up: its CA and certificates, and on a real
//! three-member etcd cluster with TLS between clients and members and between members, its
//! users and roles. Each host's certificate is its etcd user: it writes only under
//! `/jit/v1/HOST/` and reads all of `/jit/v1/`. Needs openssl, etcd and etcdctl; no jit
//! binary, no host user, nothing under /etc.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use jit_e2e::fleet::{TlsEtcd as Etcd, fleet_init as init};
use jit_e2e::run;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// `openssl x509 -noout` with `args` on `cert`.
fn x509(cert: &Path, args: &[&str]) -> String {
    let mut c = Command::new("openssl");
    c.args(["x509", "-noout", "-in"]).arg(cert).args(args);
    let r = run(c, "", Duration::from_secs(30));
    assert!(r.ok(), "{}", r.all());
    r.stdout
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                out.push((p, bytes));
            }
        }
    }
    out.sort();
    out
}

fn assert_denied(r: &jit_e2e::Run, what: &str) {
    assert!(!r.ok(), "{what} should be refused: {}", r.all());
    assert!(
        r.stderr.contains("permission denied"),
        "{what}: refused, but not for want of rights: {}",
        r.all()
    );
}

fn assert_ok(r: &jit_e2e::Run, what: &str) {
    assert!(r.ok(), "{what}: {}", r.all());
}

#[test]
fn given_certs_made_by_the_script_when_it_runs_again_or_is_given_a_bad_name_then_nothing_made_is_replaced_a_bad_name_changes_nothing_and_a_host_gets_an_etcd_table_jitd_reads()
 {
    let tmp = tempfile::tempdir().unwrap();
    let pki = tmp.path().join("pki");
    let p = pki.to_str().unwrap();
    let made = init(&["certs", p, "--member", "m0=127.0.0.1", "--host", "db1"]);
    assert_ok(&made, "certs");
    for key in [
        "ca.key",
        "members/m0/server.key",
        "hosts/db1/client.key",
        "admin/client.key",
    ] {
        assert_eq!(mode(&pki.join(key)), 0o600, "{key}");
    }
    let host = x509(
        &pki.join("hosts/db1/client.crt"),
        &["-subject", "-ext", "extendedKeyUsage"],
    );
    assert!(host.contains("CN = db1"), "{host}");
    assert!(host.contains("TLS Web Client Authentication"), "{host}");
    assert!(!host.contains("Server"), "{host}");
    let member = x509(
        &pki.join("members/m0/server.crt"),
        &["-ext", "subjectAltName,extendedKeyUsage"],
    );
    for want in [
        "IP Address:127.0.0.1",
        "DNS:m0",
        "Server Auth",
        "Client Auth",
    ] {
        assert!(member.contains(want), "{want}: {member}");
    }
    let admin = x509(&pki.join("admin/client.crt"), &["-subject"]);
    assert!(admin.contains("CN = root"), "{admin}");
    assert_eq!(
        std::fs::read(pki.join("hosts/db1/ca.crt")).unwrap(),
        std::fs::read(pki.join("ca.crt")).unwrap()
    );

    // Again, with one more host: only db2 is new; the CA and every key stay as they were.
    let before = snapshot(&pki);
    let again = init(&[
        "certs",
        p,
        "--member",
        "m0=127.0.0.1",
        "--host",
        "db1",
        "--host",
        "db2",
    ]);
    assert_ok(&again, "certs again");
    let after = snapshot(&pki);
    assert!(
        before.iter().all(|f| after.contains(f)),
        "something made before was replaced"
    );
    let new: Vec<_> = after.iter().filter(|f| !before.contains(f)).collect();
    assert_eq!(new.len(), 3, "{new:?}");
    assert!(
        new.iter()
            .all(|(f, _)| f.starts_with(pki.join("hosts/db2")))
    );

    // Refused, saying why, with nothing made (a good name beside a bad one included).
    let before = snapshot(&pki);
    for (bad, why) in [
        ("DB3", "lower-case DNS name"),
        ("db_3", "lower-case DNS name"),
        ("db3/..", "lower-case DNS name"),
        ("-db3", "lower-case DNS name"),
        ("root", "administrator"),
        ("m0", "both a host and a member"),
    ] {
        let r = init(&["certs", p, "--host", "db4", "--host", bad]);
        assert!(!r.ok(), "{bad}: {}", r.all());
        assert!(r.stderr.contains(why), "{bad}: {}", r.all());
        assert_eq!(snapshot(&pki), before, "{bad} changed something");
    }
    let r = init(&["certs", p, "--member", "m0=127.0.0.2"]);
    assert!(!r.ok() && r.stderr.contains("another IP"), "{}", r.all());
    assert_eq!(snapshot(&pki), before);

    // What a host puts in its fleet policy is what jitd reads.
    let conf = init(&[
        "host-config",
        p,
        "db1",
        "--endpoints",
        "https://10.0.0.1:2379,https://10.0.0.2:2379",
    ]);
    assert_ok(&conf, "host-config");
    assert!(conf.stdout.contains("hosts/db1"), "{}", conf.stdout);
    let policy = jitd::fleet::policy::FleetPolicy::parse(&conf.stdout)
        .unwrap_or_else(|e| panic!("{e}:\n{}", conf.stdout));
    assert_eq!(
        policy.etcd_endpoints,
        ["https://10.0.0.1:2379", "https://10.0.0.2:2379"]
    );
    assert_eq!(policy.etcd_cert, "/etc/jit/fleet/client.crt");
}

#[test]
fn given_a_tls_etcd_cluster_set_up_by_the_script_when_hosts_use_their_certificates_then_each_writes_only_its_own_prefix_reads_the_whole_fleet_and_strangers_are_refused()
 {
    let tmp = tempfile::tempdir().unwrap();
    let pki = tmp.path().join("pki");
    let p = pki.to_str().unwrap();
    let mut args = vec!["certs", p, "--host", "db1", "--host", "db2"];
    for m in ["m0=127.0.0.1", "m1=127.0.0.1", "m2=127.0.0.1"] {
        args.extend(["--member", m]);
    }
    let certs = init(&args);
    assert_ok(&certs, "certs");
    let etcd = Etcd::start(&pki, &certs.stdout, &["m0", "m1", "m2"]);
    let ep = etcd.endpoints();
    let rbac = init(&["rbac", "--endpoints", &ep, p, "db1", "db2"]);
    assert_ok(&rbac, "rbac");
    let (db1, db2) = (Some("hosts/db1"), Some("hosts/db2"));

    // Its own prefix: yes. Another host's: no put, no delete.
    assert_ok(
        &etcd.ctl(db1, &["put", "/jit/v1/db1/req/x", "1"]),
        "db1's own",
    );
    assert_ok(
        &etcd.ctl(db2, &["put", "/jit/v1/db2/req/x", "2"]),
        "db2's own",
    );
    assert_denied(
        &etcd.ctl(db1, &["put", "/jit/v1/db2/req/x", "x"]),
        "db1 into db2's",
    );
    assert_denied(
        &etcd.ctl(db1, &["del", "/jit/v1/db2/req/x"]),
        "db1 deleting db2's",
    );
    assert_denied(
        &etcd.ctl(db1, &["del", "--prefix", "/jit/v1/db2/"]),
        "db1 deleting db2's prefix",
    );
    // A name that merely starts like its own is not its own.
    assert_denied(
        &etcd.ctl(db1, &["put", "/jit/v1/db10/req/x", "x"]),
        "db1 into db10's",
    );
    // Outside the fleet's prefix, and the fleet's prefix itself: no.
    for key in ["/other", "/jit/v1/req/x", "/jit/v1x"] {
        assert_denied(&etcd.ctl(db1, &["put", key, "x"]), key);
    }
    assert_denied(&etcd.ctl(db1, &["get", "/other"]), "db1 reading outside");

    // A transaction reaching into db2's prefix is refused whole: its own half is not written.
    let txn = etcd.ctl_in(
        db1,
        &["txn"],
        "\nput /jit/v1/db1/req/t mine\nput /jit/v1/db2/req/t theirs\n\n\n",
    );
    assert_denied(&txn, "a txn into db2's");
    for key in ["/jit/v1/db1/req/t", "/jit/v1/db2/req/t"] {
        let r = etcd.ctl(Some("admin"), &["get", key, "--print-value-only"]);
        assert_ok(&r, key);
        assert_eq!(r.stdout.trim(), "", "{key} was written");
    }

    // The whole fleet's records: readable, db2's among them.
    let all = etcd.ctl(db1, &["get", "--prefix", "/jit/v1/", "--keys-only"]);
    assert_ok(&all, "db1 reading the fleet");
    let keys: Vec<&str> = all.stdout.split_whitespace().collect();
    assert_eq!(keys, ["/jit/v1/db1/req/x", "/jit/v1/db2/req/x"]);

    // Its heartbeat on a lease of its own; another host's lease it may not revoke.
    let lease_of = |who: Option<&str>| {
        let r = etcd.ctl(who, &["lease", "grant", "60"]);
        assert_ok(&r, "lease grant");
        r.stdout.split_whitespace().nth(1).unwrap().to_string()
    };
    let l1 = lease_of(db1);
    assert_ok(
        &etcd.ctl(db1, &["put", "/jit/v1/db1/alive", "1", "--lease", &l1]),
        "db1's heartbeat",
    );
    let ttl = etcd.ctl(db1, &["lease", "timetolive", "--keys", &l1]);
    assert!(ttl.stdout.contains("/jit/v1/db1/alive"), "{}", ttl.all());
    let l2 = lease_of(db2);
    assert_ok(
        &etcd.ctl(db2, &["put", "/jit/v1/db2/alive", "1", "--lease", &l2]),
        "db2's heartbeat",
    );
    assert_denied(
        &etcd.ctl(db1, &["lease", "revoke", &l2]),
        "db1 revoking db2's lease",
    );
    assert_denied(
        &etcd.ctl(db1, &["put", "/jit/v1/db1/x", "1", "--lease", &l2]),
        "db1 on db2's lease",
    );

    // A password overrides the certificate: root has none, so none is right.
    let guess = etcd.ctl(db1, &["--user=root", "--password=guess", "user", "list"]);
    assert!(!guess.ok(), "{}", guess.all());
    assert!(
        guess.stderr.contains("authentication failed"),
        "{}",
        guess.all()
    );

    // No certificate, or one of another CA: the TLS handshake itself is refused.
    let stranger = tmp.path().join("stranger");
    assert_ok(
        &init(&["certs", stranger.to_str().unwrap(), "--host", "db1"]),
        "another CA",
    );
    // Each is given up after its command timeout: both at once.
    let get = [
        "--dial-timeout=1s",
        "--command-timeout=2s",
        "get",
        "/jit/v1/db1/req/x",
    ];
    std::thread::scope(|s| {
        for who in [None, Some("../stranger/hosts/db1")] {
            let (etcd, get) = (&etcd, &get);
            s.spawn(move || {
                let r = etcd.ctl(who, get);
                assert!(!r.ok(), "{who:?}: {}", r.all());
            });
        }
    });
    for why in [
        "client didn't provide a certificate",
        "certificate signed by unknown authority",
    ] {
        jit_e2e::wait_for(
            &format!("etcd to log '{why}'"),
            Duration::from_secs(30),
            || etcd.logs().contains(why).then_some(()),
        );
    }

    // Run again with a new host: db3 gets its prefix, the others keep theirs.
    assert_ok(&init(&["certs", p, "--host", "db3"]), "certs for db3");
    let again = init(&["rbac", "--endpoints", &ep, p, "db1", "db2", "db3"]);
    assert_ok(&again, "rbac again");
    let db3 = Some("hosts/db3");
    assert_ok(
        &etcd.ctl(db3, &["put", "/jit/v1/db3/req/x", "3"]),
        "db3's own",
    );
    assert_denied(
        &etcd.ctl(db3, &["put", "/jit/v1/db1/req/y", "x"]),
        "db3 into db1's",
    );
    assert_ok(
        &etcd.ctl(db1, &["put", "/jit/v1/db1/req/y", "1"]),
        "db1's own, still",
    );
    let seen = etcd.ctl(db3, &["get", "--prefix", "/jit/v1/", "--keys-only"]);
    assert!(seen.stdout.contains("/jit/v1/db2/alive"), "{}", seen.all());
}
