//! Fleets through the real binaries: the fleet policy checked by jitctl; jitd's fleet
//! interface offered records signed by the real ssh-keygen; hosts (worlds with jitd and the
//! agent) on a real etcd cluster, records put by hand (as a compromised writer could) and
//! made by the users' own jitctl (`request --hosts`, `approve` through a real ssh-agent,
//! `list --fleet`, `release`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use jit_e2e::fleet::{Etcd, keygen, unix_now};
use jit_e2e::{PASSWORD, bin, run};
use std::process::Command;
use std::time::Duration;

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
         approvers = [\"bob\"]\napprovals = 1\nmax_duration = \"1h\"\n\
         commands = [\"/usr/bin/id\"]\n"
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
    // jitd --check-config (what install.sh runs before it stops the running jitd) checks
    // the fleet policy too: a bad one is caught there, not by a jitd that will not start.
    let policy = d.join("jit.toml");
    std::fs::write(
        &policy,
        "[[role]]\nname = \"local\"\ncommands = [\"/usr/bin/true\"]\nrequesters = [\"alice\"]\n\
         max_duration = \"1h\"\n",
    )
    .unwrap();
    let jitd_check = |fleet: &str, host: &str| {
        std::fs::write(&file, fleet).unwrap();
        let mut c = Command::new(bin("jitd"));
        c.arg("--check-config").arg("--config").arg(&policy);
        c.arg("--fleet").arg(&file).args(["--fleet-host", host]);
        run(c, "", Duration::from_secs(30))
    };
    let r = jitd_check(&good, "db1.example.com");
    assert!(
        r.ok() && r.stdout.contains("this host 'db1.example.com'"),
        "{}",
        r.all()
    );
    let r = jitd_check(&good, "db9.example.com");
    assert!(
        !r.ok() && r.all().contains("is not one of its hosts"),
        "{}",
        r.all()
    );
    let r = jitd_check(
        &format!("max_skew = \"5m\"\nrecord_retention = \"1m\"\n{good}"),
        "db1.example.com",
    );
    assert!(
        !r.ok() && r.all().contains("at least twice max_skew"),
        "{}",
        r.all()
    );
    // The agent's key named where there is none: only the agent would find out, quietly.
    let missing = d.join("missing.key");
    let r = jitd_check(
        &good.replace(
            "[etcd]\n",
            &format!(
                "[etcd]\nca = \"{0}\"\ncert = \"{0}\"\nkey = \"{1}\"\n",
                file.display(),
                missing.display()
            ),
        ),
        "db1.example.com",
    );
    assert!(
        !r.ok()
            && r.all()
                .contains(&format!("[etcd] key {}", missing.display())),
        "{}",
        r.all()
    );
}

use jit_e2e::{Builder, World};
use jitd::fleet::{
    APPROVAL_NAMESPACE, Approval, Canonical, END_NAMESPACE, End, FleetRequest, REQUEST_NAMESPACE,
    Signed,
};
use nix::sys::signal::Signal;

/// A world that is host `name` of the fleet `fleet` (its policy file, returned), with users
/// alice, `jit-fleet` (the agent's) and `others`; its jitd started with `--fleet`.
fn fleet_host(
    name: &str,
    fleet: &str,
    others: &[&str],
    key: Option<&std::path::Path>,
) -> (World, std::path::PathBuf) {
    // pam_jit waits long at the sudo prompt: a fleet approval comes from another host.
    let mut b = Builder::new()
        .user("alice", &[])
        .user("jit-fleet", &[])
        .pam_args("wait=120", "");
    for u in others {
        b = b.user(u, &[]);
    }
    let mut w = b
        .policy(
            "[[role]]\nname = \"local\"\ncommands = [\"/usr/bin/true\"]\n\
             requesters = [\"alice\"]\nmax_duration = \"1h\"\n",
        )
        .build();
    let file = w.path().join("fleet.toml");
    std::fs::write(&file, fleet).unwrap();
    w.stop_jitd(Signal::SIGTERM);
    w.jitd_args = vec![
        "--fleet".into(),
        file.to_str().unwrap().into(),
        "--fleet-host".into(),
        name.into(),
    ];
    if let Some(k) = key {
        w.jitd_args
            .extend(["--fleet-key".into(), k.to_str().unwrap().into()]);
    }
    w.start_jitd();
    (w, file)
}

/// Keys made by ssh-keygen and signatures made by `ssh-keygen -Y sign`, as hosts and
/// approvers of a real fleet make them.
struct Signer {
    dir: tempfile::TempDir,
}

impl Signer {
    fn sign<T: Canonical + Clone>(&self, key: &str, namespace: &str, record: &T) -> Signed<T> {
        let msg = self.dir.path().join(format!(
            "msg-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::write(&msg, record.canonical()).unwrap();
        let mut c = Command::new("ssh-keygen");
        c.args(["-Y", "sign", "-n", namespace, "-f"])
            .arg(self.dir.path().join(key))
            .arg(&msg);
        let r = run(c, "", Duration::from_secs(30));
        assert!(r.ok(), "{}", r.all());
        let mut sig = msg.into_os_string();
        sig.push(".sig");
        Signed {
            record: record.clone(),
            signature: std::fs::read_to_string(sig).unwrap(),
        }
    }
}

/// A world that is host `db1` of a fleet of db1 and db2 (approver bob), its fleet agent
/// running as `jit-fleet`.
fn fleet_world() -> (World, Signer, FleetRequest) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (db1, db2, bob) = (keygen(d, "db1"), keygen(d, "db2"), keygen(d, "bob"));
    keygen(d, "mallory");
    let text = format!(
        "[[host]]\nname = \"db1\"\nkey = \"{db1}\"\ngroups = [\"db\"]\n\
         [[host]]\nname = \"db2\"\nkey = \"{db2}\"\ngroups = [\"db\"]\n\
         [[approver]]\nname = \"bob\"\nkeys = [\"{bob}\"]\n\
         [[fleet_role]]\nname = \"db-admin\"\nhosts = [\"db\"]\nrequesters = [\"alice\"]\n\
         approvers = [\"bob\"]\napprovals = 1\nmax_duration = \"1h\"\n\
         commands = [\"/usr/bin/id\"]\n"
    );
    let digest = jitd::fleet::policy::FleetPolicy::parse(&text)
        .unwrap()
        .digest;
    let (w, _) = fleet_host("db1", &text, &["mallory"], Some(&d.join("db1")));
    let now = unix_now();
    let req = FleetRequest {
        id: "db2-7".into(),
        host: "db2".into(),
        user: "alice".into(),
        role: "db-admin".into(),
        hosts: vec!["db1".into(), "db2".into()],
        duration_secs: 600,
        reason: "INC-9 replica lag".into(),
        created_at: now - 5,
        policy_digest: digest,
    };
    (w, Signer { dir }, req)
}

/// `Offer` on jitd's fleet interface, called as `user` through busctl; the ack as JSON.
fn offer(
    w: &World,
    user: &str,
    req: &Signed<FleetRequest>,
    approvals: &[Signed<Approval>],
    ends: &[Signed<End>],
) -> jit_e2e::Run {
    let mut args: Vec<String> = vec![
        format!("--address={}", w.bus),
        "--json=short".into(),
        "call".into(),
        "org.jit.Jitd".into(),
        "/org/jit/Jitd".into(),
        "org.jit.Jitd.Fleet1".into(),
        "Offer".into(),
        "sasas".into(),
        serde_json::to_string(req).unwrap(),
        approvals.len().to_string(),
    ];
    args.extend(approvals.iter().map(|a| serde_json::to_string(a).unwrap()));
    args.push(ends.len().to_string());
    args.extend(ends.iter().map(|e| serde_json::to_string(e).unwrap()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(
        w.as_user(user, std::path::Path::new("/usr/bin/busctl"), &args),
        "",
        Duration::from_secs(30),
    )
}

fn ack(r: &jit_e2e::Run) -> serde_json::Value {
    assert!(r.ok(), "{}", r.all());
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    serde_json::from_str(v["data"][0].as_str().unwrap()).unwrap()
}

#[test]
fn given_a_fleet_request_approved_by_bob_when_the_agent_offers_it_then_this_host_verifies_applies_and_ends_it()
 {
    let (w, s, req) = fleet_world();
    let signed = s.sign("db2", REQUEST_NAMESPACE, &req);
    let approval = Approval {
        request_id: req.id.clone(),
        request_digest: req.digest(),
        approver: "bob".into(),
        approved_at: req.created_at + 2,
    };
    // Nobody but the agent may offer.
    let denied = offer(&w, "mallory", &signed, &[], &[]);
    assert!(!denied.ok(), "{}", denied.all());
    // Forged approval (mallory's key as bob's): refused, acked and audited; no rule.
    let forged = s.sign("mallory", APPROVAL_NAMESPACE, &approval);
    let a = ack(&offer(&w, "jit-fleet", &signed, &[forged], &[]));
    assert_eq!(a["outcome"], "refused", "{a}");
    assert!(w.sudoers_files().is_empty());
    let no = w.sudo_n("alice", &["/usr/bin/id", "-u"]);
    assert!(!no.ok(), "{}", no.all());
    // bob's own signature: applied, once; real sudo works, with the fleet's end as NOTAFTER.
    let good = s.sign("bob", APPROVAL_NAMESPACE, &approval);
    let a = ack(&offer(
        &w,
        "jit-fleet",
        &signed,
        std::slice::from_ref(&good),
        &[],
    ));
    assert_eq!(a["outcome"], "applied", "{a}");
    assert_eq!(a["not_after"], req.created_at + 2 + 600);
    let again = ack(&offer(
        &w,
        "jit-fleet",
        &signed,
        std::slice::from_ref(&good),
        &[],
    ));
    assert_eq!(again["outcome"], "unchanged", "{again}");
    let yes = w.sudo_n("alice", &["/usr/bin/id", "-u"]);
    assert!(yes.ok(), "{}\n{}", yes.all(), w.jitd_log());
    assert_eq!(yes.stdout.trim(), "0");
    let local = a["local_id"].as_u64().unwrap();
    let shown = w.request(local);
    assert_eq!(shown["service"], "fleet", "{shown}");
    // Its approvers are the fleet's that completed it (none approved it here).
    assert_eq!(shown["approved_by"], serde_json::json!(["bob"]), "{shown}");
    // Revoked on this host by root: offered again, it is never applied again.
    let revoke = w.jitctl(
        "root",
        &["revoke", &local.to_string(), "--reason", "local call"],
    );
    assert!(revoke.ok(), "{}", revoke.all());
    let again = ack(&offer(
        &w,
        "jit-fleet",
        &signed,
        std::slice::from_ref(&good),
        &[],
    ));
    assert_eq!(again["outcome"], "ended", "{again}");
    assert!(!w.sudo_n("alice", &["/usr/bin/id", "-u"]).ok());
    // Ended by bob: revoked here, the rule gone.
    let end = End {
        request_id: req.id.clone(),
        request_digest: req.digest(),
        by: "bob".into(),
        at: req.created_at + 10,
    };
    let ended = s.sign("bob", END_NAMESPACE, &end);
    let a = ack(&offer(&w, "jit-fleet", &signed, &[good], &[ended]));
    assert_eq!(a["outcome"], "ended", "{a}");
    assert!(w.sudoers_files().is_empty(), "{:?}", w.sudoers_files());
    assert_eq!(w.request(local)["state"], "revoked");
    let audit = w.audit_actions();
    for action in ["fleet-refuse", "fleet-grant", "revoke"] {
        assert!(audit.contains(&action.to_string()), "{action}: {audit:?}");
    }
}

/// What the test asks of a host (each lives on a thread of its own, in its own world).
enum Ask {
    /// Whether alice's `sudo -n /usr/bin/id -u` works there now.
    Sudo(std::sync::mpsc::Sender<bool>),
    /// Stops (false) or starts (true) the host's fleet agent: the host cut off from the
    /// fleet, and back. Answered once done.
    Agent(bool, std::sync::mpsc::Sender<()>),
    /// jitctl ARGS as `user`, with a real ssh-agent holding `key` (a private key file)
    /// when there is one.
    Jitctl {
        user: String,
        args: Vec<String>,
        key: Option<std::path::PathBuf>,
        /// Run from a login session of this user (its loginuid), when given.
        login: Option<String>,
        reply: std::sync::mpsc::Sender<jit_e2e::Run>,
    },
    /// alice's `sudo -S /usr/bin/id -u`, answering its prompts with these lines.
    SudoPrompt(Vec<String>, std::sync::mpsc::Sender<jit_e2e::Run>),
    /// Restarts the host's jitd (its agent keeps running). Answered once it serves.
    RestartJitd(std::sync::mpsc::Sender<()>),
    Stop,
}

/// jitctl ARGS as `user` in `w`; with `key`, under a real ssh-agent of the user's own that
/// holds a copy of it (the agent is started for this run and stopped after it).
fn jitctl_with_agent(
    w: &World,
    user: &str,
    args: &[String],
    key: Option<&std::path::Path>,
    login: Option<&str>,
) -> jit_e2e::Run {
    let mut all = vec!["--bus".to_string(), w.bus.clone()];
    all.extend(args.iter().cloned());
    let Some(key) = key else {
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        return run(
            w.as_user(user, &bin("jitctl"), &all),
            "",
            Duration::from_secs(60),
        );
    };
    let dir = w.path().join(format!("keys-{user}"));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("id");
    std::fs::copy(key, &copy).unwrap();
    let uid = nix::unistd::Uid::from_raw(w.uid_of(user));
    for p in [&dir, &copy] {
        nix::unistd::chown(p.as_path(), Some(uid), None).unwrap();
    }
    std::fs::set_permissions(&copy, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let script = "eval \"$(ssh-agent -s)\" >/dev/null && ssh-add -q \"$0\" 2>/dev/null && \"$@\"; rc=$?; ssh-agent -k >/dev/null; exit $rc";
    let jitctl = bin("jitctl");
    let mut sh: Vec<&str> = vec![
        "-c",
        script,
        copy.to_str().unwrap(),
        jitctl.to_str().unwrap(),
    ];
    sh.extend(all.iter().map(String::as_str));
    let shell = std::path::Path::new("/bin/sh");
    let cmd = match login {
        Some(l) => w.in_session_of(l, user, shell, &sh),
        None => w.as_user(user, shell, &sh),
    };
    run(cmd, "", Duration::from_secs(60))
}

/// A host on its thread: asked through `tx`; stopped and joined when dropped (so its world
/// is taken down, every process of it stopped by pid, before the test ends, even on a
/// failed assertion).
struct Host {
    tx: std::sync::mpsc::Sender<Ask>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.tx.send(Ask::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Host `name`: a world whose jitd is `name` in the fleet, and the fleet agent as jit-fleet.
fn host(name: &'static str, fleet: String, key: std::path::PathBuf) -> Host {
    host_with(name, fleet, key, |_| {})
}

/// [`host`], with `prepare` run on its world before its agent starts.
fn host_with(
    name: &'static str,
    fleet: String,
    key: std::path::PathBuf,
    prepare: impl FnOnce(&World) + Send + 'static,
) -> Host {
    let (tx, rx) = std::sync::mpsc::channel::<Ask>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let (mut w, file) = fleet_host(name, &fleet, &["bob", "mallory"], Some(&key));
        prepare(&w);
        let start = |w: &World| {
            w.as_user(
                "jit-fleet",
                &bin("jit-fleetd"),
                &[
                    "--fleet",
                    file.to_str().unwrap(),
                    "--host",
                    name,
                    "--bus",
                    &w.bus,
                ],
            )
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(w.path().join("agent.log"))
                    .unwrap(),
            )
            .spawn()
            .unwrap()
        };
        let stop = |agent: Option<std::process::Child>| {
            if let Some(mut a) = agent {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(i32::try_from(a.id()).unwrap()),
                    Signal::SIGTERM,
                );
                let _ = a.wait();
            }
        };
        let mut agent = Some(start(&w));
        ready_tx.send(()).unwrap();
        for ask in rx {
            match ask {
                Ask::Sudo(reply) => {
                    let r = w.sudo_n("alice", &["/usr/bin/id", "-u"]);
                    let _ = reply.send(r.ok() && r.stdout.trim() == "0");
                }
                Ask::SudoPrompt(answers, reply) => {
                    // Longer than pam_jit's wait at the prompt.
                    let sudo = w.as_user(
                        "alice",
                        std::path::Path::new("/usr/bin/sudo"),
                        &["-S", "/usr/bin/id", "-u"],
                    );
                    let input = answers.join("\n") + "\n";
                    let _ = reply.send(run(sudo, &input, Duration::from_secs(180)));
                }
                Ask::Jitctl {
                    user,
                    args,
                    key,
                    login,
                    reply,
                } => {
                    let _ = reply.send(jitctl_with_agent(
                        &w,
                        &user,
                        &args,
                        key.as_deref(),
                        login.as_deref(),
                    ));
                }
                Ask::RestartJitd(done) => {
                    w.stop_jitd(Signal::SIGTERM);
                    w.start_jitd();
                    let _ = done.send(());
                }
                Ask::Agent(on, done) => {
                    stop(agent.take());
                    if on {
                        agent = Some(start(&w));
                    }
                    let _ = done.send(());
                }
                Ask::Stop => break,
            }
        }
        stop(agent.take());
        // Shown with a failed test's output (captured otherwise).
        eprintln!(
            "--- {name}: agent log\n{}--- {name}: jitd log\n{}",
            std::fs::read_to_string(w.path().join("agent.log")).unwrap_or_default(),
            w.jitd_log()
        );
    });
    ready_rx.recv_timeout(Duration::from_secs(120)).unwrap();
    Host {
        tx,
        thread: Some(thread),
    }
}

/// jitctl ARGS as `user` on host `h`, with a real ssh-agent holding `key` when given.
fn jitctl_on(h: &Host, user: &str, args: &[&str], key: Option<std::path::PathBuf>) -> jit_e2e::Run {
    jitctl_in_session(h, None, user, args, key)
}

/// [`jitctl_on`], from a login session of `login` when given.
fn jitctl_in_session(
    h: &Host,
    login: Option<&str>,
    user: &str,
    args: &[&str],
    key: Option<std::path::PathBuf>,
) -> jit_e2e::Run {
    let (tx, rx) = std::sync::mpsc::channel();
    h.tx.send(Ask::Jitctl {
        user: user.into(),
        args: args.iter().map(|a| (*a).to_string()).collect(),
        key,
        login: login.map(String::from),
        reply: tx,
    })
    .unwrap();
    rx.recv_timeout(Duration::from_secs(120)).unwrap()
}

/// The id `jitctl request ... --hosts` printed ("fleet request ID: ...").
fn made_id(made: &jit_e2e::Run) -> String {
    made.stdout
        .strip_prefix("fleet request ")
        .and_then(|s| s.split(':').next())
        .unwrap_or_else(|| panic!("no fleet request id in: {}", made.all()))
        .to_string()
}

fn sudo_works(h: &Host) -> bool {
    let (tx, rx) = std::sync::mpsc::channel();
    h.tx.send(Ask::Sudo(tx)).unwrap();
    rx.recv_timeout(Duration::from_secs(60)).unwrap()
}

/// A fleet on a real etcd cluster: hosts db1 and db2 (each a world, jitd and agent),
/// approver bob, and keys made by ssh-keygen. Hosts go down before etcd.
struct Rig {
    hosts: Vec<Host>,
    etcd: Etcd,
    s: Signer,
    digest: String,
    now: i64,
}

fn rig(members: usize) -> Rig {
    rig_with(members, "")
}

/// [`rig`], with `top` (top-level settings) at the head of the fleet policy.
fn rig_with(members: usize, top: &str) -> Rig {
    let etcd = Etcd::start(members);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (db1, db2, bob) = (keygen(d, "db1"), keygen(d, "db2"), keygen(d, "bob"));
    keygen(d, "mallory");
    let fleet = format!(
        "{top}[etcd]\nendpoints = [{}]\n\n\
         [[host]]\nname = \"db1\"\nkey = \"{db1}\"\ngroups = [\"db\"]\n\
         [[host]]\nname = \"db2\"\nkey = \"{db2}\"\ngroups = [\"db\"]\n\
         [[approver]]\nname = \"bob\"\nkeys = [\"{bob}\"]\n\
         [[fleet_role]]\nname = \"db-admin\"\nhosts = [\"db\"]\nrequesters = [\"alice\"]\n\
         approvers = [\"bob\"]\napprovals = 1\nmax_duration = \"1h\"\n\
         commands = [\"/usr/bin/id\"]\nfleet_stale_after = \"30s\"\n",
        etcd.toml()
    );
    let digest = jitd::fleet::policy::FleetPolicy::parse(&fleet)
        .unwrap()
        .digest;
    let now = unix_now();
    Rig {
        hosts: vec![
            host("db1", fleet.clone(), d.join("db1")),
            host("db2", fleet, d.join("db2")),
        ],
        etcd,
        s: Signer { dir },
        digest,
        now,
    }
}

impl Rig {
    /// Request `id` of alice for both hosts, taken by db2.
    fn request(&self, id: &str, secs: u64) -> FleetRequest {
        FleetRequest {
            id: id.into(),
            host: "db2".into(),
            user: "alice".into(),
            role: "db-admin".into(),
            hosts: vec!["db1".into(), "db2".into()],
            duration_secs: secs,
            reason: "INC-10 failover".into(),
            created_at: self.now,
            policy_digest: self.digest.clone(),
        }
    }

    /// bob's approval of `r`, signed with `key`'s key.
    fn approval(&self, r: &FleetRequest, key: &str) -> Signed<Approval> {
        self.s.sign(
            key,
            APPROVAL_NAMESPACE,
            &Approval {
                request_id: r.id.clone(),
                request_digest: r.digest(),
                approver: "bob".into(),
                approved_at: self.now - 1,
            },
        )
    }

    /// `r` into etcd, signed by db2.
    fn put_request(&self, r: &FleetRequest) {
        self.etcd.put(
            &format!("/jit/v1/db2/req/{}", r.id),
            &self.s.sign("db2", REQUEST_NAMESPACE, r),
        );
    }

    fn put_approval(&self, r: &FleetRequest, key: &str) {
        self.etcd.put(
            &format!("/jit/v1/db1/appr/{}/bob", r.id),
            &self.approval(r, key),
        );
    }

    /// jitctl ARGS as `user` on host `host`, with a real ssh-agent holding the key named
    /// `key` (made by [`keygen`]) when given.
    fn jitctl(&self, host: usize, user: &str, args: &[&str], key: Option<&str>) -> jit_e2e::Run {
        let key = key.map(|k| self.s.dir.path().join(k));
        jitctl_on(&self.hosts[host], user, args, key)
    }

    fn agent(&self, host: usize, on: bool) {
        let (tx, rx) = std::sync::mpsc::channel();
        self.hosts[host].tx.send(Ask::Agent(on, tx)).unwrap();
        rx.recv_timeout(Duration::from_secs(60)).unwrap();
    }
}

#[test]
fn given_a_fleet_on_etcd_when_a_request_is_approved_once_then_every_named_host_enforces_it_and_an_end_or_its_time_ends_it_everywhere_even_with_etcd_down()
 {
    let mut f = rig(1);
    // Asked once (signed by db2), approved once (bob, through etcd): both hosts enforce it.
    let r = f.request("db2-1", 600);
    f.put_request(&r);
    // A forged approval first: each host acks the refusal, nothing is granted.
    f.put_approval(&r, "mallory");
    for h in ["db1", "db2"] {
        f.etcd.wait_ack(h, "db2-1", "refused");
    }
    assert!(f.hosts.iter().all(|h| !sudo_works(h)));
    f.put_approval(&r, "bob");
    for h in ["db1", "db2"] {
        let ack = f.etcd.wait_ack(h, "db2-1", "applied");
        assert_eq!(ack["not_after"], f.now - 1 + 600, "{ack}");
    }
    assert!(f.hosts.iter().all(sudo_works));
    // Junk anyone could write to etcd (an unreadable end before the real one, a request too
    // big to acknowledge that sorts first) does not keep the real end from landing.
    let junk = f.etcd.ctl(&["put", "/jit/v1/db1/end/db2-1", "not json"]);
    assert!(junk.ok(), "{}", junk.all());
    let poison =
        serde_json::json!({"record": {"id": "A".repeat(100_000), "hosts": ["db1", "db2"]}});
    f.etcd.put("/jit/v1/db2/req/db2-0poison", &poison);
    // Revoked once: it ends everywhere.
    let end = End {
        request_id: r.id.clone(),
        request_digest: r.digest(),
        by: "bob".into(),
        at: f.now + 2,
    };
    f.etcd.put(
        "/jit/v1/db2/end/db2-1",
        &f.s.sign("bob", END_NAMESPACE, &end),
    );
    for h in ["db1", "db2"] {
        f.etcd.wait_ack(h, "db2-1", "ended");
    }
    assert!(f.hosts.iter().all(|h| !sudo_works(h)));
    // A short grant, then all of etcd gone: it still ends on time on every host.
    let short = f.request("db2-2", 12);
    f.put_request(&short);
    f.put_approval(&short, "bob");
    for h in ["db1", "db2"] {
        f.etcd.wait_ack(h, "db2-2", "applied");
    }
    assert!(f.hosts.iter().all(sudo_works));
    f.etcd.stop();
    jit_e2e::wait_for(
        "the grant to end on every host",
        Duration::from_secs(60),
        || f.hosts.iter().all(|h| !sudo_works(h)).then_some(()),
    );
}

#[test]
fn given_a_host_cut_off_while_a_grant_was_approved_and_etcd_compacted_and_a_member_down_when_it_comes_back_then_it_applies_it_no_longer_than_the_others()
 {
    let mut f = rig(3);
    // db1's agent is down (the host cut off from the fleet) when the grant is approved.
    f.agent(0, false);
    let r = f.request("db2-3", 600);
    f.put_request(&r);
    f.put_approval(&r, "bob");
    let at_db2 = f.etcd.wait_ack("db2", "db2-3", "applied");
    assert!(!sudo_works(&f.hosts[0]), "db1 never heard of it");
    // Meanwhile etcd compacts its history past anything db1 saw, and a member goes down.
    let rev = f.etcd.ctl(&["get", "/jit/v1/db2/req/db2-3", "-w", "json"]);
    let rev: serde_json::Value = serde_json::from_str(rev.stdout.trim()).unwrap();
    let rev = rev["header"]["revision"].as_i64().unwrap().to_string();
    let compacted = f.etcd.ctl(&["compact", &rev]);
    assert!(compacted.ok(), "{}", compacted.all());
    f.etcd.stop_member(0);
    // Back: db1 lists again and applies it, ending when db2's ends (never later).
    f.agent(0, true);
    let at_db1 = f.etcd.wait_ack("db1", "db2-3", "applied");
    assert_eq!(at_db1["not_after"], at_db2["not_after"]);
    assert!(sudo_works(&f.hosts[0]));
    // With one member of three down, new records still reach both hosts.
    let next = f.request("db2-4", 600);
    f.put_request(&next);
    f.put_approval(&next, "bob");
    for h in ["db1", "db2"] {
        f.etcd.wait_ack(h, "db2-4", "applied");
    }
}

#[test]
fn given_users_of_a_fleet_when_alice_requests_with_jitctl_and_bob_approves_on_another_host_through_ssh_agent_then_every_host_enforces_it_until_she_releases_it()
 {
    let mut f = rig(1);
    let ask = [
        "request",
        "db-admin",
        "--hosts",
        "db",
        "--for",
        "10m",
        "--reason",
        "INC-11 disk full",
    ];
    // The agents reach etcd a moment after they start: until then jitd says so.
    let made = jit_e2e::wait_for("alice's fleet request", Duration::from_secs(60), || {
        let r = f.jitctl(0, "alice", &ask, None);
        r.ok().then_some(r)
    });
    let id = made_id(&made);
    assert!(id.starts_with("db1-"), "{}", made.all());
    assert!(
        made.stdout.contains("published to the fleet"),
        "{}",
        made.all()
    );
    // In view at once: published, it is etcd's record, before the watch tells of it.
    let shown = f.jitctl(0, "alice", &["show", &id], None);
    assert!(shown.ok(), "{}", shown.all());
    // Each host says it waits for approval: not a refusal.
    for h in ["db1", "db2"] {
        f.etcd.wait_ack(h, &id, "pending");
    }
    let status = f.jitctl(0, "alice", &["status"], None);
    assert!(
        status.ok()
            && status
                .stdout
                .contains("fleet: host db1; agent in touch with etcd"),
        "{}",
        status.all()
    );
    // No agent, a key the policy does not list for bob, alice approving her own: each a
    // clear error, and nothing granted anywhere.
    let r = f.jitctl(1, "bob", &["approve", &id], None);
    assert!(
        !r.ok() && r.stderr.contains("SSH_AUTH_SOCK is not set"),
        "{}",
        r.all()
    );
    let r = f.jitctl(1, "bob", &["approve", &id], Some("mallory"));
    assert!(
        !r.ok() && r.stderr.contains("none of the keys in your ssh-agent"),
        "{}",
        r.all()
    );
    let r = f.jitctl(0, "alice", &["approve", &id], Some("bob"));
    assert!(
        !r.ok() && r.stderr.contains("not an approver"),
        "{}",
        r.all()
    );
    let r = f.jitctl(0, "mallory", &["approve", &id], Some("mallory"));
    assert!(!r.ok(), "{}", r.all());
    assert!(f.hosts.iter().all(|h| !sudo_works(h)));
    // bob approves on db2, signing with his key through his ssh-agent: both hosts enforce.
    let r = f.jitctl(1, "bob", &["approve", &id], Some("bob"));
    assert!(r.ok(), "{}", r.all());
    let mut until = Vec::new();
    for h in ["db1", "db2"] {
        until.push(f.etcd.wait_ack(h, &id, "applied")["not_after"].clone());
    }
    assert_eq!(until[0], until[1]);
    assert!(f.hosts.iter().all(sudo_works));
    // Its terms are the fleet's: no local extension.
    let local = f.etcd.wait_ack("db1", &id, "applied")["local_id"].to_string();
    let r = f.jitctl(
        0,
        "alice",
        &["extend", &local, "--by", "30m", "--reason", "INC-11"],
        None,
    );
    assert!(!r.ok() && r.stderr.contains("fleet grant"), "{}", r.all());
    // bob cannot approve twice (a later time would start it later on a host still to apply it).
    let r = f.jitctl(1, "bob", &["approve", &id], Some("bob"));
    assert!(
        !r.ok() && r.stderr.contains("approved fleet request"),
        "{}",
        r.all()
    );
    // db1's jitd restarts under its running agent: its view of etcd comes back.
    let (tx, rx) = std::sync::mpsc::channel();
    f.hosts[0].tx.send(Ask::RestartJitd(tx)).unwrap();
    rx.recv_timeout(Duration::from_secs(60)).unwrap();
    // alice sees every host's answer, on the host where she asked.
    let listed = jit_e2e::wait_for("both acks in alice's view", Duration::from_secs(60), || {
        let r = f.jitctl(0, "alice", &["--json", "list", "--fleet"], None);
        let v: serde_json::Value = serde_json::from_str(&r.stdout).ok()?;
        (v[0]["acks"].as_array()?.len() == 2).then_some(v)
    });
    assert_eq!(listed[0]["approved_by"], serde_json::json!(["bob"]));
    let shown = f.jitctl(0, "alice", &["show", &id], None);
    assert!(shown.ok(), "{}", shown.all());
    for h in ["db1", "db2"] {
        assert!(
            shown
                .stdout
                .lines()
                .any(|l| l.trim().starts_with(h) && l.contains("applied")),
            "{}",
            shown.all()
        );
    }
    // mallory sees nothing of it, as for a request that does not exist.
    let r = f.jitctl(0, "mallory", &["show", &id], None);
    assert!(
        !r.ok() && r.stderr.contains("no fleet request"),
        "{}",
        r.all()
    );
    let r = f.jitctl(0, "mallory", &["revoke", &id, "--reason", "x"], None);
    assert!(!r.ok(), "{}", r.all());
    // Released on db1: it ends on both.
    let r = f.jitctl(0, "alice", &["release", &id], None);
    assert!(r.ok(), "{}", r.all());
    for h in ["db1", "db2"] {
        f.etcd.wait_ack(h, &id, "ended");
    }
    assert!(f.hosts.iter().all(|h| !sudo_works(h)));
    let listed = f.jitctl(0, "alice", &["list", "--fleet"], None);
    assert!(
        listed
            .stdout
            .lines()
            .any(|l| l.starts_with(&id) && l.ends_with("ended")),
        "{}",
        listed.all()
    );
    let audit = f.jitctl(0, "root", &["audit"], None);
    for action in ["fleet-request", "fleet-grant", "fleet-end"] {
        assert!(audit.stdout.contains(action), "{action}: {}", audit.all());
    }
    let audit = f.jitctl(1, "root", &["audit"], None);
    assert!(audit.stdout.contains("fleet-approve"), "{}", audit.all());
    // etcd gone: a new request fails, saying why, and nothing is granted here by mistake.
    f.etcd.stop();
    let refused = jit_e2e::wait_for(
        "a request to fail clearly",
        Duration::from_secs(120),
        || {
            let r = f.jitctl(0, "alice", &ask, None);
            (!r.ok()).then_some(r)
        },
    );
    assert!(
        refused.stderr.contains("has not reached etcd")
            || refused.stderr.contains("not yet in etcd"),
        "{}",
        refused.all()
    );
    assert!(f.hosts.iter().all(|h| !sudo_works(h)));
    // An admin's (or a monitor's) `jitctl status` says the host is out of touch: unhealthy.
    let status = jit_e2e::wait_for("status to say so", Duration::from_secs(90), || {
        let r = f.jitctl(0, "root", &["status"], None);
        r.stdout.contains("has not reached etcd for").then_some(r)
    });
    assert!(!status.ok(), "{}", status.all());
    assert!(status.stdout.contains("health: ERROR"), "{}", status.all());
}

#[test]
fn given_fleet_stale_after_when_a_host_loses_etcd_then_it_suspends_the_grant_until_it_catches_up_and_the_others_keep_it()
 {
    let f = rig(1);
    let r = f.request("db2-5", 1800);
    f.put_request(&r);
    f.put_approval(&r, "bob");
    let mut until = Vec::new();
    for h in ["db1", "db2"] {
        until.push(f.etcd.wait_ack(h, "db2-5", "applied")["not_after"].clone());
    }
    assert!(f.hosts.iter().all(sudo_works));
    // db1 cut off: after fleet_stale_after (30 s) without news from etcd it suspends the
    // grant (a revocation it cannot hear of waits no longer); db2 keeps it.
    f.agent(0, false);
    jit_e2e::wait_for("db1 to suspend the grant", Duration::from_secs(120), || {
        (!sudo_works(&f.hosts[0])).then_some(())
    });
    assert!(sudo_works(&f.hosts[1]));
    // Back in touch: in force again on db1, to the same end.
    f.agent(0, true);
    jit_e2e::wait_for(
        "db1 to take the grant up again",
        Duration::from_secs(120),
        || sudo_works(&f.hosts[0]).then_some(()),
    );
    let ack = f.etcd.wait_ack("db1", "db2-5", "applied");
    assert_eq!(ack["not_after"], until[0]);
}

#[test]
fn given_a_fleet_role_for_this_host_when_alice_chooses_it_at_the_sudo_prompt_then_bob_approves_it_on_another_host_and_only_this_host_grants_it()
 {
    let f = rig(1);
    let answers: Vec<String> = [PASSWORD, "db-admin", "INC-12 replica lag", "10m"]
        .map(String::from)
        .to_vec();
    let ask = |tx| {
        f.hosts[0]
            .tx
            .send(Ask::SudoPrompt(answers.clone(), tx))
            .unwrap();
    };
    let (tx, mut rx) = std::sync::mpsc::channel();
    ask(tx);
    // The request db1 signed, once its agent has put it into etcd (until the agent is in
    // touch, jitd refuses fleet requests, saying so: then alice asks again).
    let id = jit_e2e::wait_for(
        "the request alice made at the prompt",
        Duration::from_secs(90),
        || {
            if let Ok(r) = rx.try_recv() {
                assert!(r.all().contains("has not reached etcd"), "{}", r.all());
                let (tx, again) = std::sync::mpsc::channel();
                ask(tx);
                rx = again;
            }
            let r = f.etcd.ctl(&["get", "--prefix", "/jit/v1/db1/req/"]);
            let record: serde_json::Value = serde_json::from_str(r.stdout.lines().nth(1)?).ok()?;
            Some(record)
        },
    );
    assert_eq!(id["record"]["hosts"], serde_json::json!(["db1"]), "{id}");
    assert_eq!(id["record"]["role"], "db-admin");
    assert_eq!(id["record"]["user"], "alice");
    assert_eq!(id["record"]["duration_secs"], 600);
    assert_eq!(id["record"]["reason"], "INC-12 replica lag");
    let id = id["record"]["id"].as_str().unwrap().to_string();
    // bob, on db2, signing with his key through his ssh-agent, once db2 has seen it.
    jit_e2e::wait_for("db2 to see the request", Duration::from_secs(60), || {
        f.jitctl(1, "bob", &["show", &id], None).ok().then_some(())
    });
    // Not from a login session of alice's, whoever's key and identity (as for local
    // approvals), nor of mallory's, who approves nothing.
    let bob_key = Some(f.s.dir.path().join("bob"));
    for (login, why) in [
        ("alice", "login session of its requester alice"),
        ("mallory", "login session of mallory"),
    ] {
        let r = jitctl_in_session(
            &f.hosts[1],
            Some(login),
            "bob",
            &["approve", &id],
            bob_key.clone(),
        );
        assert!(!r.ok() && r.stderr.contains(why), "{}", r.all());
    }
    let r = f.jitctl(1, "bob", &["approve", &id], Some("bob"));
    assert!(r.ok(), "{}", r.all());
    let prompt = rx.recv_timeout(Duration::from_secs(150)).unwrap();
    let said = prompt.all();
    assert!(said.contains("db-admin"), "{said}");
    assert!(said.contains("fleet role"), "{said}");
    assert!(
        said.contains(&format!("`jitctl approve {id}` on any host")),
        "{said}"
    );
    assert!(
        said.contains(&format!("fleet request {id}: granted db-admin until")),
        "{said}"
    );
    // Asked for this host: db1 grants it, db2 (where the role applies too) does not.
    assert!(sudo_works(&f.hosts[0]));
    assert!(!sudo_works(&f.hosts[1]));
    let r = f.jitctl(0, "alice", &["release", &id], None);
    assert!(r.ok(), "{}", r.all());
    assert!(!sudo_works(&f.hosts[0]));
    // A fleet request for db1 still waiting (made before, here with jitctl): sudo offers to
    // wait for it rather than make another; `n` asks for another role instead (none here).
    let made = f.jitctl(
        0,
        "alice",
        &[
            "request", "db-admin", "--hosts", "db1", "--for", "5m", "--reason", "INC-14",
        ],
        None,
    );
    assert!(made.ok(), "{}", made.all());
    let earlier = made_id(&made);
    let (tx, rx) = std::sync::mpsc::channel();
    f.hosts[0]
        .tx
        .send(Ask::SudoPrompt(
            vec![PASSWORD.into(), "n".into(), String::new()],
            tx,
        ))
        .unwrap();
    let said = rx.recv_timeout(Duration::from_secs(150)).unwrap().all();
    assert!(
        said.contains(&format!(
            "fleet request {earlier} for role 'db-admin' is still waiting"
        )),
        "{said}"
    );
    assert!(
        said.contains("no role chosen; nothing was requested"),
        "{said}"
    );
    let listed = f.jitctl(0, "alice", &["--json", "list", "--fleet"], None);
    let all: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 2, "{}", listed.all());
}

#[test]
fn given_etcd_with_tls_and_rbac_set_up_by_the_script_when_a_host_uses_its_own_certificate_then_its_request_is_published_approved_and_applied_and_under_another_hosts_certificate_nothing_it_writes_lands()
 {
    use jit_e2e::fleet::{TlsEtcd, fleet_init};
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let open = |p: &std::path::Path| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    // The agents (user jit-fleet of each host's world) read their certificates from here.
    open(tmp.path());
    let pki = tmp.path().join("pki");
    let p = pki.to_str().unwrap();
    let certs = fleet_init(&[
        "certs",
        p,
        "--member",
        "m0=127.0.0.1",
        "--host",
        "db1",
        "--host",
        "db2",
    ]);
    assert!(certs.ok(), "{}", certs.all());
    let etcd = TlsEtcd::start(&pki, &certs.stdout, &["m0"]);
    let ep = etcd.endpoints();
    let rbac = fleet_init(&["rbac", "--endpoints", &ep, p, "db1", "db2"]);
    assert!(rbac.ok(), "{}", rbac.all());
    let keys = tmp.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let (db1, db2, bob) = (
        keygen(&keys, "db1"),
        keygen(&keys, "db2"),
        keygen(&keys, "bob"),
    );
    // What `jit-fleet-init host-config` writes, with this cluster's endpoint and the
    // certificate of `cert`.
    let fleet = |cert: &str| {
        format!(
            "[etcd]\nendpoints = [\"{ep}\"]\nca = \"{p}/ca.crt\"\n\
             cert = \"{p}/hosts/{cert}/client.crt\"\nkey = \"{p}/hosts/{cert}/client.key\"\n\n\
             [[host]]\nname = \"db1\"\nkey = \"{db1}\"\ngroups = [\"db\"]\n\
             [[host]]\nname = \"db2\"\nkey = \"{db2}\"\ngroups = [\"db\"]\n\
             [[approver]]\nname = \"bob\"\nkeys = [\"{bob}\"]\n\
             [[fleet_role]]\nname = \"db-admin\"\nhosts = [\"db\"]\nrequesters = [\"alice\"]\n\
             approvers = [\"bob\"]\napprovals = 1\nmax_duration = \"1h\"\n\
             commands = [\"/usr/bin/id\"]\n"
        )
    };
    // Each host's key is its agent's alone (0600, owned by jit-fleet of its world).
    let handed = |cert: &'static str| {
        let dir = pki.join("hosts").join(cert);
        move |w: &World| {
            for d in [
                dir.parent().unwrap().parent().unwrap(),
                dir.parent().unwrap(),
                &dir,
            ] {
                open(d);
            }
            let uid = nix::unistd::Uid::from_raw(w.uid_of("jit-fleet"));
            nix::unistd::chown(&dir.join("client.key"), Some(uid), None).unwrap();
        }
    };
    let request = |h: &Host| {
        jitctl_on(
            h,
            "alice",
            &[
                "request",
                "db-admin",
                "--hosts",
                "db1",
                "--for",
                "10m",
                "--reason",
                "INC-13 tls",
            ],
            None,
        )
    };
    let admin = |args: &[&str]| {
        let r = etcd.ctl(Some("admin"), args);
        assert!(r.ok(), "{}", r.all());
        r.stdout
    };
    {
        let h = host_with("db1", fleet("db1"), keys.join("db1"), handed("db1"));
        // Through TLS with its certificate, and etcd's RBAC: published under db1's prefix.
        let made = jit_e2e::wait_for("db1's request over TLS", Duration::from_secs(60), || {
            let r = request(&h);
            r.ok().then_some(r)
        });
        assert!(
            made.stdout.contains("published to the fleet"),
            "{}",
            made.all()
        );
        let id = made_id(&made);
        assert!(admin(&["get", "--keys-only", "--prefix", "/jit/v1/db1/"]).contains(&id));
        let r = jitctl_on(&h, "bob", &["approve", &id], Some(keys.join("bob")));
        assert!(r.ok(), "{}", r.all());
        jit_e2e::wait_for("db1's ack over TLS", Duration::from_secs(60), || {
            admin(&[
                "get",
                "--print-value-only",
                &format!("/jit/v1/db1/ack/{id}"),
            ])
            .contains("\"applied\"")
            .then_some(())
        });
        assert!(sudo_works(&h));
    }
    // db2's agent with db1's certificate (a copy gone astray): etcd takes none of what it
    // writes under db2's prefix, so db2's request never leaves db2, and jitctl says so.
    let h = host_with("db2", fleet("db1"), keys.join("db2"), handed("db1"));
    let queued = jit_e2e::wait_for("db2's request to be taken", Duration::from_secs(60), || {
        let r = request(&h);
        (!r.stderr.contains("has not reached etcd")).then_some(r)
    });
    assert!(queued.all().contains("not yet in etcd"), "{}", queued.all());
    assert_eq!(
        admin(&["get", "--keys-only", "--prefix", "/jit/v1/db2/"]).trim(),
        ""
    );
}

#[test]
fn given_record_retention_when_a_fleet_request_can_no_longer_be_in_force_then_every_host_deletes_what_it_wrote_and_a_live_one_stays_unless_its_request_is_deleted()
 {
    // Over 2 x 3 s + 2 x 1 s after it was made, and 2 s more.
    let f = rig_with(1, "max_skew = \"1s\"\nrecord_retention = \"2s\"\n");
    let now = unix_now();
    let mut short = f.request("db2-00000000a1", 3);
    short.created_at = now;
    let mut long = f.request("db2-00000000b2", 600);
    long.created_at = now;
    for r in [&short, &long] {
        f.put_request(r);
        let a = f.s.sign(
            "bob",
            APPROVAL_NAMESPACE,
            &Approval {
                request_id: r.id.clone(),
                request_digest: r.digest(),
                approver: "bob".into(),
                approved_at: now,
            },
        );
        f.etcd.put(&format!("/jit/v1/db1/appr/{}/bob", r.id), &a);
    }
    for h in ["db1", "db2"] {
        f.etcd.wait_ack(h, &long.id, "applied");
    }
    // A writer to etcd says the live request was made in 1970 and lasted a second, under
    // a prefix that sorts after db2's: not the request of that id (db2's ids are db2's,
    // and db3 is no host of the fleet), so nobody lets the live one go for it.
    let mut forged = long.clone();
    forged.created_at = 0;
    forged.duration_secs = 1;
    forged.host = "db3".into();
    let forged_key = format!("/jit/v1/db3/req/{}", long.id);
    f.etcd
        .put(&forged_key, &f.s.sign("db1", REQUEST_NAMESPACE, &forged));
    let keys = || {
        let r = f.etcd.ctl(&["get", "--prefix", "--keys-only", "/jit/v1/"]);
        assert!(r.ok(), "{}", r.all());
        r.stdout
            .split_whitespace()
            .filter(|k| !k.ends_with("/alive"))
            .map(String::from)
            .collect::<Vec<_>>()
    };
    // db2 deletes its request, db1 the approval under its prefix, each host its ack.
    let left = jit_e2e::wait_for(
        "the short request's records to go",
        Duration::from_secs(90),
        || {
            let k = keys();
            (!k.iter().any(|k| k.contains(&short.id))).then_some(k)
        },
    );
    let mut want = vec![
        format!("/jit/v1/db1/ack/{}", long.id),
        format!("/jit/v1/db1/appr/{}/bob", long.id),
        forged_key.clone(),
        format!("/jit/v1/db2/ack/{}", long.id),
        format!("/jit/v1/db2/req/{}", long.id),
    ];
    want.sort();
    assert_eq!(left, want);
    // The live one is still in force on both.
    assert!(f.hosts.iter().all(sudo_works));
    // Its request deleted from etcd while in force (by a writer, not by its host): a
    // revocation could have gone with it, so each host ends it.
    let r = f
        .etcd
        .ctl(&["del", &format!("/jit/v1/db2/req/{}", long.id)]);
    assert!(r.ok(), "{}", r.all());
    jit_e2e::wait_for("both hosts to end it", Duration::from_secs(60), || {
        f.hosts.iter().all(|h| !sudo_works(h)).then_some(())
    });
}
