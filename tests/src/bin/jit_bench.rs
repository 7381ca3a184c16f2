//! What JIT access costs a host, measured side by side in one run. Driven by `bench/run`,
//! which regenerates `bench/RESULTS.md` from this program's output.
//!
//! Every measurement runs the real programs (sudo, jitd, jitctl, dbus-daemon) in a private
//! mount namespace built by the end-to-end test world. Ratios compare against a baseline
//! taken in the same run, interleaved, because these machines are noisy.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use jit_e2e::{Builder, World, bin, run, wait_for};
use nix::sys::signal::Signal;
use std::fmt::Write as _;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Median, 10th and 90th percentile, in milliseconds.
#[derive(Debug, Clone, Copy)]
struct Stats {
    median: f64,
    p10: f64,
    p90: f64,
    max: f64,
    n: usize,
}

fn stats(mut v: Vec<f64>) -> Stats {
    assert!(!v.is_empty());
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    Stats {
        median: at(0.5),
        p10: at(0.1),
        p90: at(0.9),
        max: v[v.len() - 1],
        n: v.len(),
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "median {:.2} ms (p10 {:.2}, p90 {:.2}, max {:.2}; n={})",
            self.median, self.p10, self.p90, self.max, self.n
        )
    }
}

fn uid_of(name: &str) -> (u32, u32) {
    let u = nix::unistd::User::from_name(name).unwrap().unwrap();
    (u.uid.as_raw(), u.gid.as_raw())
}

/// Runs `program args` as `user` directly (setuid in the child; no runuser in the timing).
fn timed_as(user: (u32, u32), program: &Path, args: &[&str]) -> (f64, bool) {
    let t = Instant::now();
    let status = Command::new(program)
        .args(args)
        .uid(user.0)
        .gid(user.1)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    (t.elapsed().as_secs_f64() * 1000.0, status.success())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn pam_file(w: &World) -> std::path::PathBuf {
    w.path().join("pam-sudo")
}

const PAM_PLAIN: &str =
    "auth required pam_unix.so\naccount required pam_unix.so\nsession required pam_permit.so\n";

/// pam_jit.so as the world installed it (its bus library beside it).
fn module(w: &World) -> std::path::PathBuf {
    w.path().join("security/pam_jit.so")
}

/// pam_jit's channel arguments: the world's PAM socket (`socket` true) or the bus only.
fn chan(w: &World, socket: bool) -> String {
    match socket {
        true => format!("bus={} socket={}", w.bus, w.pam_socket.display()),
        false => format!("bus={} socket=none", w.bus),
    }
}

/// pam_jit in the stack but not checking (no require_grant): what loading it costs.
fn pam_loaded_only(w: &World) -> String {
    format!(
        "auth required pam_unix.so\naccount required pam_unix.so\n\
         account required {m} mode=sudo {c} timeout=5\nsession required pam_permit.so\n",
        m = module(w).display(),
        c = chan(w, true)
    )
}

/// The account check only (`require_grant`), no session line.
fn pam_with_jit(w: &World, socket: bool) -> String {
    format!(
        "auth required pam_unix.so\nauth optional {m} mode=sudo {c} timeout=5\n\
         account required pam_unix.so\naccount required {m} mode=sudo {c} timeout=5 require_grant\n\
         session required pam_permit.so\n",
        m = module(w).display(),
        c = chan(w, socket)
    )
}

/// The full stack: account check (`require_grant`) and session registration.
fn pam_full(w: &World, socket: bool) -> String {
    format!(
        "{}session optional {m} mode=sudo {c} timeout=5\n",
        pam_with_jit(w, socket),
        m = module(w).display(),
        c = chan(w, socket)
    )
}

fn policy(users: usize) -> String {
    let mut requesters: Vec<String> = (0..users).map(|i| format!("\"u{i}\"")).collect();
    requesters.push("\"alice\"".into());
    format!(
        r#"
[[role]]
name = "ops"
commands = ["/usr/bin/true"]
requesters = [{r}]
max_duration = "8h"
ssh = true

[[role]]
name = "db"
commands = ["/usr/bin/true"]
requesters = ["alice"]
approvers = ["bob"]
approvals = 1
max_duration = "1h"
"#,
        r = requesters.join(", ")
    )
}

fn world(users: usize) -> World {
    let mut b = Builder::new()
        .user("alice", &[])
        .user("bob", &[])
        .user("carol", &[])
        .static_rule("carol ALL=(root) NOPASSWD: /usr/bin/true");
    for i in 0..users {
        b = b.user(&format!("u{i}"), &[]);
    }
    b.policy(&policy(users)).build()
}

fn grant(w: &World, user: &str, role: &str, dur: &str) -> serde_json::Value {
    w.submit(user, role, dur, "BENCH-1")
}

fn rss_kb(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

struct Report {
    md: String,
}

impl Report {
    fn line(&mut self, s: &str) {
        println!("{s}");
        self.md.push_str(s);
        self.md.push('\n');
    }
}

/// 1. `sudo -n true`: JIT grant with pam_jit (require_grant) in the account stack vs a static
///    rule without pam_jit, interleaved.
fn sudo_overhead(w: &World, rep: &mut Report, n: usize) {
    grant(w, "alice", "ops", "8h");
    let sudo = Path::new("/usr/bin/sudo");
    let (alice, carol) = (uid_of("alice"), uid_of("carol"));
    // (label, PAM file, user): alice holds a JIT grant, carol a static NOPASSWD rule.
    let variants: [(&str, String, (u32, u32)); 6] = [
        (
            "static NOPASSWD rule, no pam_jit (baseline)",
            PAM_PLAIN.to_string(),
            carol,
        ),
        (
            "JIT grant, pam_jit account check (`require_grant`), PAM socket",
            pam_with_jit(w, true),
            alice,
        ),
        (
            "JIT grant, account check and session registration (full stack), PAM socket",
            pam_full(w, true),
            alice,
        ),
        (
            "JIT grant, account check, D-Bus only (`socket=none`)",
            pam_with_jit(w, false),
            alice,
        ),
        (
            "JIT grant, full stack, D-Bus only (`socket=none`)",
            pam_full(w, false),
            alice,
        ),
        (
            "static rule, pam_jit loaded but making no call",
            pam_loaded_only(w),
            carol,
        ),
    ];
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    for round in 0..n + 10 {
        for k in shuffled(variants.len(), round) {
            let (_, pam, user) = &variants[k];
            std::fs::write(pam_file(w), pam).unwrap();
            let (ms, ok) = timed_as(*user, sudo, &["-n", "/usr/bin/true"]);
            assert!(ok);
            if round >= 10 {
                samples[k].push(ms);
            }
        }
    }
    let stats_of: Vec<Stats> = samples.into_iter().map(stats).collect();
    let base = stats_of[0].median;
    rep.line(
        "### 1. `sudo -n true`: JIT grant with pam_jit vs static rule without (interleaved, \
         shuffled)\n",
    );
    for ((label, _, _), st) in variants.iter().zip(&stats_of) {
        rep.line(&format!("- {label}: {st}; ratio {:.3}", st.median / base));
    }
    rep.line(&format!(
        "- **ratio, account check vs baseline: {:.3} (target ≤ 1.05); full stack: {:.3} \
         (target ≤ 1.10)** (PAM socket; over D-Bus: {:.3} and {:.3})",
        stats_of[1].median / base,
        stats_of[2].median / base,
        stats_of[3].median / base,
        stats_of[4].median / base
    ));
    // What the account hook's one call costs by itself, exactly as pam_jit makes it (in
    // this process, no sudo around it): on the PAM socket (connect, Check, close) and on
    // the bus (connect, authenticate, Hello, Check, close).
    for (label, socket) in [
        ("PAM socket: connect, Check, close", true),
        ("bus: connect, auth, Hello, Check, close", false),
    ] {
        let calls: Vec<f64> = (0..n)
            .map(|_| {
                let client = channel(w, socket);
                let t = Instant::now();
                pam_jit::logic::Jitd::check(&client, "alice", false).unwrap();
                drop(client);
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        rep.line(&format!(
            "- pam_jit's call alone, {label}: {}",
            stats(calls)
        ));
    }
    rep.line("");
    std::fs::write(pam_file(w), pam_with_jit(w, true)).unwrap();
}

/// pam_jit's way to jitd, as a hook builds it: the PAM socket first, or the bus only.
fn channel(w: &World, socket: bool) -> pam_jit::channel::Channel {
    let timeout = Duration::from_secs(5);
    pam_jit::channel::Channel {
        socket: socket
            .then(|| pam_jit::socket::SocketClient::new(w.pam_socket.clone(), timeout, None)),
        bus: pam_jit::bus::BusClient {
            address: w.bus.clone(),
            timeout,
            library: Some(bin("libpam_jit_bus.so")),
        },
    }
}

/// 2b. What pam_jit adds to an ssh login's PAM steps (`mode=ssh` in the account and session
///     stacks, as sshd runs them), measured with pamtester for a user holding an ssh
///     grant: without pam_jit, with it on the PAM socket, and on the bus only.
fn ssh_pam_steps(w: &World, rep: &mut Report, n: usize) {
    let m = module(w);
    let with = |socket: bool| {
        format!(
            "account required pam_unix.so\naccount required {m} mode=ssh {c} timeout=5\n\
             session required pam_permit.so\nsession optional {m} mode=ssh {c} timeout=5\n",
            m = m.display(),
            c = chan(w, socket)
        )
    };
    let variants: [(&str, &str, String); 3] = [
        (
            "without pam_jit",
            "jit-bench-plain",
            "account required pam_unix.so\nsession required pam_permit.so\n".into(),
        ),
        ("pam_jit, PAM socket", "jit-bench-socket", with(true)),
        ("pam_jit, D-Bus only", "jit-bench-bus", with(false)),
    ];
    for (_, service, text) in &variants {
        // The world's private /etc/pam.d, bind-mounted: the host's is not touched.
        std::fs::write(format!("/etc/pam.d/{service}"), text).unwrap();
    }
    let pamtester = Path::new("/usr/bin/pamtester");
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    for round in 0..n + 10 {
        for k in shuffled(variants.len(), round) {
            let (_, service, _) = &variants[k];
            let (ms, ok) = timed_as(
                (0, 0),
                pamtester,
                &[service, "alice", "acct_mgmt", "open_session"],
            );
            assert!(ok, "pamtester {service}");
            if round >= 10 {
                samples[k].push(ms);
            }
        }
    }
    let stats_of: Vec<Stats> = samples.into_iter().map(stats).collect();
    rep.line(
        "### 2b. An ssh login's PAM steps: `pamtester SERVICE alice acct_mgmt open_session` \
         (interleaved, shuffled)\n",
    );
    let base = stats_of[0].median;
    for ((label, _, _), st) in variants.iter().zip(&stats_of) {
        rep.line(&format!("- {label}: {st}; +{:.2} ms", st.median - base));
    }
    rep.line(&format!(
        "- **pam_jit adds {:.2} ms on the PAM socket** (target ≤ +0.5 ms), {:.2} ms over D-Bus\n",
        stats_of[1].median - base,
        stats_of[2].median - base
    ));
}

/// Runs `hyperfine` on two commands, each after its own `--prepare` (both run on the same
/// sshd: PAM reads its files per connection, so the prepare step switches the stack).
/// Returns (median, mean, stddev) in ms for each.
fn hyperfine_pair(
    w: &World,
    runs: usize,
    a: (&str, &str, &Command),
    b: (&str, &str, &Command),
) -> [(f64, f64, f64); 2] {
    let out = w.path().join("hyperfine.json");
    let line = |c: &Command| {
        std::iter::once(c.get_program())
            .chain(c.get_args())
            .map(|s| s.to_str().unwrap().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut h = Command::new("hyperfine");
    h.args(["-N", "--style", "none", "--warmup", "3", "--runs"])
        .arg(runs.to_string())
        .arg("--export-json")
        .arg(&out)
        .args(["--prepare", a.1, "--prepare", b.1])
        .args(["-n", a.0, &line(a.2), "-n", b.0, &line(b.2)])
        .envs(a.2.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .stdin(Stdio::null());
    let status = h.status().expect("hyperfine (apt-get install hyperfine)");
    assert!(status.success(), "hyperfine failed");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let get = |i: usize, k: &str| json["results"][i][k].as_f64().unwrap() * 1000.0;
    [0, 1].map(|i| (get(i, "median"), get(i, "mean"), get(i, "stddev")))
}

/// 2. What pam_jit adds to an ssh login to loopback, measured with hyperfine against the
///    same sshd without pam_jit: (a) key only, pam_jit in the account and session stacks
///    (the grant check and the session registration); (b) key then keyboard-interactive
///    with a grant already held (pam_jit's auth answers from one check) vs the same
///    methods with `pam_permit` as the keyboard-interactive step.
fn ssh_overhead(rep: &mut Report, runs: usize) {
    const ROLE: &str = "[[role]]\nname = \"login\"\ncommands = [\"/usr/bin/true\"]\n\
                        requesters = [\"alice\"]\nmax_duration = \"8h\"\nssh = true\n";
    rep.line("### 2. ssh login to loopback: with pam_jit vs the same sshd without (hyperfine)\n");
    for kbdint in [false, true] {
        let mut b = Builder::new()
            .user("alice", &[])
            .policy(ROLE)
            .sshd(Some(jit_e2e::SSH_ACCOUNT_JIT));
        if kbdint {
            b = b.ssh_keyboard_interactive("mode=ssh timeout=5");
        }
        let w = b.build();
        grant(&w, "alice", "login", "8h");
        let pam = w.path().join("pam.d/sshd-jittest");
        let with_jit = w.path().join("pam-with");
        let without = w.path().join("pam-without");
        std::fs::copy(&pam, &with_jit).unwrap();
        let auth = if kbdint {
            "pam_permit.so"
        } else {
            "pam_deny.so"
        };
        std::fs::write(
            &without,
            format!(
                "auth     required {auth}\naccount  required pam_unix.so\n\
                 session  required pam_permit.so\n"
            ),
        )
        .unwrap();
        let login = if kbdint {
            w.ssh_interactive("alice", "", "", "true")
        } else {
            w.ssh_command("alice", "true")
        };
        let cp = |from: &Path| format!("cp {} {}", from.display(), pam.display());
        let (to_with, to_without) = (cp(&with_jit), cp(&without));
        let with_cmd = ("with pam_jit", to_with.as_str(), &login);
        let without_cmd = ("without", to_without.as_str(), &login);
        // hyperfine runs one command's runs, then the other's: both orders, so that a drift
        // of the machine over the run cancels out of the difference.
        let [j1, p1] = hyperfine_pair(&w, runs, with_cmd, without_cmd);
        let [p2, j2] = hyperfine_pair(&w, runs, without_cmd, with_cmd);
        // The switch really happened: pam_jit registered every login of the "with" runs
        // (warm-ups included) and none of the others.
        let opened = w
            .audit_actions()
            .iter()
            .filter(|a| *a == "session-open")
            .count();
        assert_eq!(opened, 2 * (runs + 3), "session-open records");
        let what = if kbdint {
            "(b) publickey,keyboard-interactive, grant held: pam_jit in auth, account, session"
        } else {
            "(a) publickey only: pam_jit in account and session"
        };
        rep.line(&format!("{what}:\n"));
        for (order, runs_in_order) in [
            ("with first", [("with pam_jit", j1), ("without", p1)]),
            ("without first", [("without", p2), ("with pam_jit", j2)]),
        ] {
            let cells: Vec<String> = runs_in_order
                .iter()
                .map(|(name, (median, mean, sd))| {
                    format!("{name} median {median:.1} ms (mean {mean:.1} ± {sd:.1})")
                })
                .collect();
            rep.line(&format!("- {order}, n={runs} each: {}", cells.join("; ")));
        }
        let delta = ((j1.0 - p1.0) + (j2.0 - p2.0)) / 2.0;
        rep.line(&format!(
            "- **pam_jit adds {delta:+.1} ms at the median, both orders averaged (ratio {:.3})**\n",
            (j1.0 + j2.0) / (p1.0 + p2.0)
        ));
        if !kbdint {
            // The PAM part alone, without ssh's ~300 ms of key exchange and its noise: the
            // same stack's account and session phases driven by pamtester.
            let mut pt = Command::new("pamtester");
            pt.args(["sshd-jittest", "alice", "acct_mgmt", "open_session"]);
            let n = runs * 5;
            let [j1, p1] = hyperfine_pair(
                &w,
                n,
                ("with", &to_with, &pt),
                ("without", &to_without, &pt),
            );
            let [p2, j2] = hyperfine_pair(
                &w,
                n,
                ("without", &to_without, &pt),
                ("with", &to_with, &pt),
            );
            rep.line(&format!(
                "- the same PAM stack alone (`pamtester sshd-jittest alice acct_mgmt open_session`, \
                 n={n} per order): with pam_jit median {:.2} ms, without {:.2} ms: **pam_jit's \
                 account check and session registration cost {:+.2} ms** (both orders averaged)\n",
                (j1.0 + j2.0) / 2.0,
                (p1.0 + p2.0) / 2.0,
                ((j1.0 - p1.0) + (j2.0 - p2.0)) / 2.0
            ));
        }
    }
}

/// 3. Time from `jitctl approve` returning to the requester's next sudo succeeding, and a
///    self-service `jitctl request` end to end.
fn latencies(w: &World, rep: &mut Report, n: usize) {
    let (alice, bob) = (uid_of("alice"), uid_of("bob"));
    let jitctl = bin("jitctl");
    let sudo = Path::new("/usr/bin/sudo");
    let bus = w.bus.clone();
    let mut approve_to_sudo = Vec::new();
    let mut request_e2e = Vec::new();
    // Release alice's ops grant so the approval path is what lets her in.
    let _ = w.jitctl("alice", &["release"]);
    std::fs::write(
        pam_file(w),
        "auth required pam_unix.so\naccount required pam_unix.so\nsession required pam_permit.so\n",
    )
    .unwrap();
    for _ in 0..n {
        let r = w.jitctl(
            "alice",
            &[
                "--json", "request", "db", "--for", "10m", "--reason", "BENCH-2",
            ],
        );
        let id = r.json()["id"].as_u64().unwrap().to_string();
        let (_, ok) = timed_as(bob, &jitctl, &["--bus", &bus, "approve", &id]);
        assert!(ok);
        let t = Instant::now();
        loop {
            if timed_as(alice, sudo, &["-n", "/usr/bin/true"]).1 {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(5));
        }
        approve_to_sudo.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(w.jitctl("alice", &["release", &id]).ok());

        let (ms, ok) = timed_as(
            alice,
            &jitctl,
            &[
                "--bus", &bus, "request", "ops", "--for", "10m", "--reason", "BENCH-3",
            ],
        );
        assert!(ok);
        request_e2e.push(ms);
        assert!(w.jitctl("alice", &["release"]).ok());
    }
    rep.line("### 3. Latencies\n");
    rep.line(&format!(
        "- `jitctl approve` returned → requester's next `sudo -n true` succeeded (includes that sudo's own run): {} (target < 10 ms)",
        stats(approve_to_sudo)
    ));
    rep.line(&format!(
        "- self-service `jitctl request` end to end, process start included: {} (target < 30 ms)\n",
        stats(request_e2e)
    ));
}

/// 3a. From the start of a requester's `jitctl request` to the line in an approver's
///     `jitctl watch` (a process of its own, started once), and from the request command's
///     return to that line (negative: the line came first).
fn watch_latency(w: &World, rep: &mut Report, n: usize) {
    use std::io::BufRead;
    let alice = uid_of("alice");
    let jitctl = bin("jitctl");
    let bus = w.bus.clone();
    let mut watch = w
        .as_user("bob", &jitctl, &["--bus", &bus, "watch"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<(Instant, String)>();
    let out = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    let mut err = std::io::BufReader::new(watch.stderr.take().unwrap());
    let mut said = String::new();
    while !said.contains("watching") {
        said.clear();
        assert!(err.read_line(&mut said).unwrap() > 0, "jitctl watch ended");
    }
    let next = |what: &str| loop {
        let (at, line) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        if line.contains(what) {
            return (at, line);
        }
    };
    let mut to_line = Vec::new();
    let mut after_return = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        let (ms, ok) = timed_as(
            alice,
            &jitctl,
            &[
                "--bus", &bus, "request", "db", "--for", "10m", "--reason", "BENCH-4",
            ],
        );
        assert!(ok);
        let (at, line) = next("submitted: request ");
        let seen = at.duration_since(t).as_secs_f64() * 1000.0;
        to_line.push(seen);
        after_return.push(seen - ms);
        let id = line
            .split("request ")
            .nth(1)
            .and_then(|t| t.split(':').next())
            .unwrap()
            .to_string();
        assert!(w.jitctl("alice", &["cancel", &id]).ok());
        next(&format!("request {id} (alice"));
    }
    let _ = watch.kill();
    let _ = watch.wait();
    rep.line(&format!(
        "- a request → the approver's `jitctl watch` line: from the start of the requester's `jitctl request` (process start included): {} (target < 50 ms); from that command's return: {}\n",
        stats(to_line),
        stats(after_return)
    ));
}

/// The ids of the grants whose rules are in jitd's shard files now.
fn ids_with_rules() -> std::collections::HashSet<u64> {
    let mut ids = std::collections::HashSet::new();
    for e in std::fs::read_dir("/etc/sudoers.d").unwrap() {
        let e = e.unwrap();
        if e.file_name().to_string_lossy().starts_with("jit-s") {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            ids.extend(jit_e2e::grants_in(&text));
        }
    }
    ids
}

/// 4. Delay between `not_after` and the rule's removal, over many grants. The grants all
///    last long enough for every one of them to be made before the first ends, however slow
///    the machine: the duration is set from how long making the first few took.
fn expiry_precision(w: &World, rep: &mut Report, grants: usize) {
    let probe = 5.min(grants);
    let t = Instant::now();
    let mut made: Vec<(u64, i64)> = Vec::new();
    let make = |i: usize, duration: &str| {
        let r = grant(w, &format!("u{i}"), "ops", duration);
        (
            r["id"].as_u64().unwrap(),
            r["not_after_unix"].as_i64().unwrap() * 1000,
        )
    };
    // The first few last long (they are timed, not measured); the rest share one duration.
    for i in 0..probe {
        make(i, "1h");
    }
    let each = t.elapsed().as_secs_f64() / probe as f64;
    let secs = ((each * (grants - probe) as f64 * 2.0).ceil() as u64 + 3).max(4);
    for i in probe..grants {
        made.push(make(i, &format!("{secs}s")));
    }
    let present = ids_with_rules();
    let missing: Vec<u64> = made
        .iter()
        .filter(|(id, end)| !present.contains(id) && *end > now_ms())
        .map(|(id, _)| *id)
        .collect();
    assert!(missing.is_empty(), "rules missing for grants {missing:?}");
    let mut ends = made;
    let mut delays = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(secs + 60);
    while !ends.is_empty() {
        assert!(Instant::now() < deadline, "rules not removed in time");
        let present = ids_with_rules();
        let t = now_ms();
        ends.retain(|(id, end)| {
            if present.contains(id) {
                true
            } else {
                delays.push((t - end) as f64);
                false
            }
        });
        std::thread::sleep(Duration::from_millis(2));
    }
    let s = stats(delays);
    rep.line(&format!(
        "### 4. Expiry precision over {} grants\n\n- removal after `not_after` ({secs}-second grants made one after another; shards polled every 2 ms): {s}; **worst case {:.0} ms** (target < 1000 ms)\n",
        grants - probe,
        s.max
    ));
}

/// A grant's rule as jitd renders it: one of five roles, three commands each, as a typical
/// role has.
fn bench_rule(i: usize) -> jitd::sudoers::Rule {
    use jitd::names::{Command as Cmd, RoleName, UserName};
    let role = i % 5;
    jitd::sudoers::Rule {
        grant_id: i as u64,
        user: UserName::new(format!("u{i}")).unwrap(),
        role: RoleName::new(format!("ops{role}")).unwrap(),
        run_as: vec![UserName::new("root").unwrap()],
        commands: [
            format!("/usr/bin/true{role}"),
            format!("/usr/bin/systemctl restart nginx{role}"),
            format!("/usr/bin/journalctl -u nginx{role}"),
        ]
        .into_iter()
        .map(|c| Cmd::new(&c).unwrap())
        .collect(),
        // Distinct ends, a second apart, as grants made one after another have.
        not_after: 2_100_000_000 + i as i64,
        reauth: false,
        iolog_dir: None,
    }
}

/// Writes `files` (name, text) into /etc/sudoers.d, after removing jitd's.
fn write_rules(files: &[(String, String)]) {
    for e in std::fs::read_dir("/etc/sudoers.d").unwrap() {
        let e = e.unwrap();
        if e.file_name().to_string_lossy().starts_with("jit-") {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    for (name, text) in files {
        std::fs::write(format!("/etc/sudoers.d/{name}"), text).unwrap();
    }
}

/// A seeded shuffle of `0..n`: every round runs the variants in a new order, so no variant
/// always follows the same other one (a fixed order biased whichever came first).
fn shuffled(n: usize, round: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut x = (round as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for i in (1..n).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    order
}

/// 5a. The same 1,000 grants (1,000 users, three commands each) in each candidate sudoers
/// layout; carol, who has none of them, runs `sudo -n true` (sudo parses every rule of
/// every file on every run, whoever runs it).
fn layout_comparison(rep: &mut Report, n: usize) {
    use jitd::sudoers::{SHARDS, render, render_shard, shard_file, shard_of};
    let w = world(0);
    std::fs::write(pam_file(&w), PAM_PLAIN).unwrap();
    let carol = uid_of("carol");
    let sudo = Path::new("/usr/bin/sudo");
    let rules: Vec<jitd::sudoers::Rule> = (0..1000).map(bench_rule).collect();
    let sharded = |strip: &dyn Fn(String) -> String| -> Vec<(String, String)> {
        (0..SHARDS)
            .map(|s| {
                let mine: Vec<jitd::sudoers::Rule> = rules
                    .iter()
                    .filter(|r| shard_of(r.grant_id) == s)
                    .cloned()
                    .collect();
                (shard_file(s), strip(render_shard(s, &mine).unwrap()))
            })
            .collect()
    };
    let no_comments = |t: String| -> String {
        t.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    // The previous layout: each rule with its own command list and a long comment.
    let previous = |r: &jitd::sudoers::Rule| -> String {
        let inline = render(r).unwrap();
        let rule_line = inline.lines().nth(1).unwrap_or_default().to_string();
        format!(
            "# jitd grant {}: {}, role {}, until {}. Managed by jitd; do not edit.\n{rule_line}\n",
            r.grant_id,
            r.user,
            r.role,
            jit_proto::format_rfc3339(r.not_after)
        )
    };
    let layouts: Vec<(&str, Vec<(String, String)>)> = vec![
        ("no rules", Vec::new()),
        (
            "1,000 files, one rule per grant (the first layout)",
            rules
                .iter()
                .map(|r| (format!("jit-{}", r.grant_id), previous(r)))
                .collect(),
        ),
        (
            "16 shards, one rule per grant with its own command list (the previous layout)",
            (0..SHARDS)
                .map(|s| {
                    let text: String = rules
                        .iter()
                        .filter(|r| shard_of(r.grant_id) == s)
                        .map(previous)
                        .collect();
                    (shard_file(s), text)
                })
                .collect(),
        ),
        (
            "16 shards, each command list once as a Cmnd_Alias (current)",
            sharded(&|t| t),
        ),
        (
            "the current layout without its comment lines",
            sharded(&no_comments),
        ),
        (
            "the current layout without NOTAFTER (not usable: shows what NOTAFTER costs)",
            sharded(&|t| {
                t.split(' ')
                    .filter(|w| !w.starts_with("NOTAFTER="))
                    .collect::<Vec<_>>()
                    .join(" ")
            }),
        ),
    ];
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); layouts.len()];
    for round in 0..n {
        for k in shuffled(layouts.len(), round) {
            write_rules(&layouts[k].1);
            let (ms, ok) = timed_as(carol, sudo, &["-n", "/usr/bin/true"]);
            assert!(ok, "{}", layouts[k].0);
            samples[k].push(ms);
        }
    }
    write_rules(&[]);
    let base = stats(samples[0].clone()).median;
    rep.line("### 5a. sudoers file layout at 1,000 rules (interleaved, shuffled, same run)\n");
    for ((name, files), v) in layouts.iter().zip(samples) {
        let st = stats(v);
        let bytes: usize = files.iter().map(|(_, t)| t.len()).sum();
        rep.line(&format!(
            "- {name} ({} files, {} KiB): {st}; **{:.2}x** no rules",
            files.len(),
            bytes / 1024,
            st.median / base
        ));
    }
    rep.line("");
}

/// The audit trail at 100,000 records: `jitctl audit` queries and `audit verify`, as root,
/// against a state database filled through jitd's own store (a real hash chain).
fn audit_scale(rep: &mut Report, records: u64, n: usize) {
    let mut w = world(10);
    w.stop_jitd(Signal::SIGTERM);
    let now = now_ms() / 1000;
    let actors: Vec<jitd::model::Actor> = (0..10)
        .map(|i| jitd::model::Actor {
            name: jitd::names::UserName::new(format!("u{i}")).unwrap(),
            uid: 60_000 + i,
            origin: format!("bus pid={} tty=pts/{i}", 4000 + i),
            login_uid: None,
            tty: format!("pts/{i}"),
        })
        .collect();
    let started = Instant::now();
    let mut store = jitd::store::Store::open(&w.state_dir).unwrap();
    store
        .transaction(|tx| {
            for i in 0..records {
                let actor = &actors[(i % 10) as usize];
                let ev = jitd::store::Event {
                    // One record every second, the newest now: 1,000,000 span 11.6 days.
                    at: now - i64::try_from(records - i).unwrap(),
                    actor,
                    action: if i % 3 == 0 { "request" } else { "grant" },
                    request_id: 0,
                    detail: format!("bench record {i}: OPS-{i} reason text of a usual length"),
                };
                jitd::store::append_audit(tx, &ev)?;
            }
            Ok(())
        })
        .unwrap();
    drop(store);
    let filled = started.elapsed().as_secs_f64();
    w.start_jitd();
    let time = |args: &[&str]| {
        let mut v = Vec::new();
        for _ in 0..n {
            let t = Instant::now();
            let r = w.jitctl("root", args);
            assert!(r.ok(), "{args:?}: {}", r.all());
            v.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        stats(v)
    };
    rep.line(&format!(
        "\n## Audit trail at {records} records\n\nFilled in {filled:.1} s (one transaction). \
         Each line: `jitctl` as root, whole command.\n"
    ));
    rep.line(&format!(
        "- `jitctl audit --since 1h` (3,600 records returned): {}",
        time(&["--json", "audit", "--since", "1h"])
    ));
    rep.line(&format!(
        "- `jitctl audit --user u3` ({} records returned, in pages of 5,000): {}",
        records / 10,
        time(&["--json", "audit", "--user", "u3"])
    ));
    rep.line(&format!(
        "- `jitctl audit --user u3 --since 10m` (60 records returned): {}",
        time(&["--json", "audit", "--user", "u3", "--since", "10m"])
    ));
    rep.line(&format!(
        "- `jitctl audit verify` (whole chain): {}",
        time(&["audit", "verify"])
    ));
    // The daemon's own check: 20,000 records per timer pass until it has seen them all.
    let t = Instant::now();
    wait_for(
        "jitd to check its whole trail",
        Duration::from_secs(600),
        || {
            let s = w.jitctl("root", &["status"]);
            (!s.stdout.contains("audit chain checked up to")).then_some(())
        },
    );
    rep.line(&format!(
        "- jitd's own check of the whole trail after a start (20,000 records per timer pass, \
         the state lock released between): done {:.1} s after the first `status`",
        t.elapsed().as_secs_f64()
    ));
}

/// 5. Scale: sudo cost, jitd memory, startup reconciliation with N active grants.
fn scale(rep: &mut Report, sizes: &[usize], n: usize) {
    rep.line("### 5. Scale\n");
    rep.line("| active grants | `sudo -n true` median (p10–p90) | vs 0 grants | jitd RSS | reconciliation at start |");
    rep.line("|---|---|---|---|---|");
    let max = *sizes.iter().max().unwrap();
    let mut w = world(max);
    std::fs::write(pam_file(&w), PAM_PLAIN).unwrap();
    let carol = uid_of("carol");
    let sudo = Path::new("/usr/bin/sudo");
    let measure = |n: usize| {
        let v: Vec<f64> = (0..n)
            .map(|_| {
                let (ms, ok) = timed_as(carol, sudo, &["-n", "/usr/bin/true"]);
                assert!(ok);
                ms
            })
            .collect();
        stats(v)
    };
    let base = measure(n);
    rep.line(&format!(
        "| 0 | {:.2} ms ({:.2}–{:.2}) | 1.00 | {} KiB | – |",
        base.median,
        base.p10,
        base.p90,
        rss_kb(w.jitd_pid().unwrap())
    ));
    let mut have = 0;
    for &size in sizes {
        for i in have..size {
            grant(&w, &format!("u{i}"), "ops", "8h");
        }
        have = size;
        let s = measure(n);
        w.stop_jitd(Signal::SIGTERM);
        std::fs::write(w.path().join("jitd.log"), "").unwrap();
        w.start_jitd();
        let log = w.jitd_log();
        let reconcile = log
            .lines()
            .find_map(|l| l.split("reconciled in ").nth(1))
            .map(|r| r.split(':').next().unwrap_or("?").trim().to_string())
            .unwrap_or_else(|| "?".into());
        // Exercise it once so RSS includes a served call.
        assert!(w.jitctl("root", &["status"]).ok());
        rep.line(&format!(
            "| {size} | {:.2} ms ({:.2}–{:.2}) | {:.2} | {} KiB | {reconcile} |",
            s.median,
            s.p10,
            s.p90,
            s.median / base.median,
            rss_kb(w.jitd_pid().unwrap()),
        ));
    }
    rep.line("\nTargets: sudo at 1,000 grants within 1.5x of 0 grants; jitd under 20 MB RSS at 1,000 grants; reconciliation under 1 s.\n");
}

/// 6. Grant checks per second over the bus, several concurrent clients (root, PAM interface).
fn throughput(w: &World, rep: &mut Report, clients: usize, secs: u64) {
    let bus = w.bus.clone();
    let stop = Instant::now() + Duration::from_secs(secs);
    let counts: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                let bus = bus.clone();
                s.spawn(move || {
                    zbus::block_on(async move {
                        let conn = zbus::connection::Builder::address(bus.as_str())
                            .method_timeout(Duration::from_secs(5))
                            .build()
                            .await
                            .unwrap();
                        let p = jit_proto::pam1(&conn).await.unwrap();
                        let mut n = 0u64;
                        while Instant::now() < stop {
                            p.check("alice", false).await.unwrap();
                            n += 1;
                        }
                        n
                    })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let total: u64 = counts.iter().sum();
    rep.line(&format!(
        "### 6. Grant checks over the bus\n\n- {clients} concurrent clients, {secs} s: **{:.0} checks/s** (target ≥ 5,000)\n",
        total as f64 / secs as f64
    ));
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let kernel = run(
        {
            let mut c = Command::new("uname");
            c.arg("-r");
            c
        },
        "",
        Duration::from_secs(5),
    )
    .stdout;
    let sudo = run(
        {
            let mut c = Command::new("sudo");
            c.arg("-V");
            c
        },
        "",
        Duration::from_secs(5),
    )
    .stdout;
    format!(
        "{} cores, {cpu}; Linux {}; {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        kernel.trim(),
        sudo.lines().next().unwrap_or("")
    )
}

/// A policy of `n` roles with approvers, two run-as users and separations, naming only
/// users and groups every Debian host has (the checker asks NSS about each).
fn big_policy(n: usize) -> String {
    let mut out = String::from("[settings]\nreason_min_length = 3\n\n");
    for i in 0..n {
        let _ = write!(
            out,
            "[[role]]\nname = \"r{i}\"\ndescription = \"role {i}\"\n\
             commands = [\"/usr/bin/systemctl restart svc{i}\", \"/usr/bin/id\"]\n\
             run_as = [\"root\", \"nobody\"]\nrequesters = [\"%adm\", \"daemon\"]\n\
             approvers = [\"%sudo\", \"bin\"]\napprovals = 1\nmax_duration = \"1h\"\n\n"
        );
    }
    for i in (0..n.saturating_sub(2)).step_by(3) {
        let _ = write!(
            out,
            "[[separation]]\nroles = [\"r{i}\", \"r{}\", \"r{}\"]\n\n",
            i + 1,
            i + 2
        );
    }
    out
}

/// 7. `jitd --check-config` at growing policy sizes: the checker must stay linear (it was
///    quadratic in the number of roles: 20,000 roles took 1.5 s, 200,000 over a minute).
fn policy_scale(rep: &mut Report, sizes: &[usize], runs: usize) {
    rep.line("### 7. Policy check at scale\n");
    rep.line(
        "`jitd --check-config` on generated policies (roles with approvers, two run-as users, \
         a separation per three roles). Median of the runs; time per role should stay flat.\n",
    );
    rep.line("| roles | file | check (median) | per role |");
    rep.line("|---|---|---|---|");
    let dir = tempfile::tempdir().unwrap();
    let mut per_role = Vec::new();
    for &n in sizes {
        let path = dir.path().join(format!("jit-{n}.toml"));
        let text = big_policy(n);
        std::fs::write(&path, &text).unwrap();
        let times: Vec<f64> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                let out = Command::new(bin("jitd"))
                    .args(["--check-config", "--config"])
                    .arg(&path)
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                t.elapsed().as_secs_f64()
            })
            .collect();
        let med = stats(times).median;
        let us = med * 1e6 / n as f64;
        per_role.push(us);
        rep.line(&format!(
            "| {n} | {:.1} MB | {med:.2} s | {us:.1} µs |",
            text.len() as f64 / 1e6
        ));
    }
    if let (Some(first), Some(last)) = (per_role.first(), per_role.last()) {
        rep.line(&format!(
            "\nTime per role at the largest size over the smallest: {:.2}x (1.0 is linear; \
             a quadratic check would be {}x).\n",
            last / first,
            sizes.last().unwrap_or(&1) / sizes.first().unwrap_or(&1)
        ));
    }
}

/// Processes started for the fleet benchmark, each stopped by its pid when dropped.
struct Procs(Vec<std::process::Child>);

impl Procs {
    /// Stops the run at once, with the host's logs, when one of a fleet host's processes
    /// (its bus, jitd, agent: three per host, in that order) has exited: waiting for its
    /// heartbeat would only time out.
    fn check_alive(&mut self, dirs: &[std::path::PathBuf]) {
        for (i, c) in self.0.iter_mut().enumerate() {
            if let Ok(Some(status)) = c.try_wait() {
                let hd = &dirs[i / 3];
                let what = ["dbus-daemon", "jitd", "jit-fleetd"][i % 3];
                let log = |f: &str| std::fs::read_to_string(hd.join(f)).unwrap_or_default();
                panic!(
                    "{what} of host {} exited ({status}) before every host was up\n\
                     --- jitd.log\n{}\n--- agent.log\n{}",
                    hd.display(),
                    log("jitd.log"),
                    log("agent.log")
                );
            }
        }
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), Signal::SIGTERM);
        }
        for c in &mut self.0 {
            let _ = c.wait();
        }
    }
}

/// Whether host directory `hd`'s sudoers directory holds a rule for alice.
fn alice_rule_in(sudoers: &Path) -> bool {
    std::fs::read_dir(sudoers).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            std::fs::read_to_string(e.path())
                .is_ok_and(|t| t.lines().any(|l| l.starts_with("alice ")))
        })
    })
}

/// Polls every host's sudoers directory until each shows `want` (a rule for alice or none),
/// from `t0`; the time each host got there, in ms.
fn fan_out(dirs: &[std::path::PathBuf], want: bool, t0: Instant) -> Vec<f64> {
    let mut at: Vec<Option<f64>> = vec![None; dirs.len()];
    let deadline = t0 + Duration::from_secs(120);
    while at.iter().any(Option::is_none) {
        if Instant::now() >= deadline {
            // What the hosts that never got there say.
            let mut logs = String::new();
            for (i, d) in dirs.iter().enumerate().filter(|(i, _)| at[*i].is_none()) {
                let hd = d.parent().unwrap();
                for f in ["jitd.log", "agent.log"] {
                    let text = std::fs::read_to_string(hd.join(f)).unwrap_or_default();
                    let tail: Vec<&str> = text.lines().rev().take(40).collect();
                    let _ = write!(logs, "\n--- host {i}: {f}\n");
                    for l in tail.iter().rev() {
                        let _ = writeln!(logs, "{l}");
                    }
                }
            }
            panic!("hosts never got there: {at:?}{logs}");
        }
        for (i, d) in dirs.iter().enumerate() {
            if at[i].is_none() && alice_rule_in(d) == want {
                at[i] = Some(t0.elapsed().as_secs_f64() * 1000.0);
            }
        }
    }
    at.into_iter().flatten().collect()
}

/// CPU time (clock ticks) `pids` have used so far.
fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .map(|stat| {
            // After the command's closing parenthesis: utime and stime are fields 14 and 15.
            let rest = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
                + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        })
        .sum()
}

/// Waits until `pids` together use under a tenth of a core over half a second: the
/// fleet has digested what came before (every host hearing every other host's ack), so
/// the next figure measures one change, not the backlog of the last.
fn wait_quiet(what: &str, pids: &[u32]) {
    wait_for(what, Duration::from_secs(600), || {
        let before = cpu_ticks(pids);
        std::thread::sleep(Duration::from_millis(500));
        // 100 ticks a second: under 5 in half a second.
        (cpu_ticks(pids) - before < 5).then_some(())
    });
}

fn pct(v: &[f64], q: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// 7. A fleet of `hosts` hosts on a 3-member etcd: each host its own bus, jitd (with its
///    host key, state and sudoers directory) and agent (as jit-fleet), in one private mount
///    namespace. Per round a request signed by h0 names every host; then bob's approval
///    (the time runs from there to alice's rule in every host's sudoers directory), then an
///    end (to the rule gone everywhere).
fn fleet_scale(rep: &mut Report, hosts: usize, rounds: usize) {
    use jitd::fleet::{
        APPROVAL_NAMESPACE, Approval, Canonical, END_NAMESPACE, End, FleetRequest,
        REQUEST_NAMESPACE, Signed,
    };
    let w = Builder::new()
        .user("alice", &[])
        .user("bob", &[])
        .user("jit-fleet", &[])
        .policy("[[role]]\nname = \"local\"\ncommands = [\"/usr/bin/true\"]\nrequesters = [\"alice\"]\nmax_duration = \"1h\"\n")
        .build();
    let d = w.path().to_path_buf();
    let etcd = jit_e2e::fleet::Etcd::start(3);
    let bob_pub = jit_e2e::fleet::keygen(&d, "bob");
    let mut keys = Vec::new();
    let mut dirs = Vec::new();
    let mut sudoers_dirs = Vec::new();
    for i in 0..hosts {
        let hd = d.join(format!("h{i}"));
        std::fs::create_dir_all(hd.join("sudoers")).unwrap();
        let mut c = Command::new(bin("jitd"));
        c.args([
            "--fleet-keygen",
            "--fleet-host",
            &format!("h{i}"),
            "--state-dir",
        ])
        .arg(hd.join("state"));
        let r = run(c, "", Duration::from_secs(30));
        assert!(r.ok(), "{}", r.all());
        keys.push(r.stdout.trim().to_string());
        sudoers_dirs.push(hd.join("sudoers"));
        dirs.push(hd);
    }
    let mut fleet = format!("[etcd]\nendpoints = [{}]\n\n", etcd.toml());
    for (i, k) in keys.iter().enumerate() {
        let _ = write!(
            fleet,
            "[[host]]\nname = \"h{i}\"\nkey = \"{k}\"\ngroups = [\"all\"]\n"
        );
    }
    let _ = write!(
        fleet,
        "[[approver]]\nname = \"bob\"\nkeys = [\"{bob_pub}\"]\n\
         [[fleet_role]]\nname = \"db-admin\"\nhosts = [\"all\"]\nrequesters = [\"alice\"]\n\
         approvers = [\"bob\"]\napprovals = 1\nmax_duration = \"1h\"\ncommands = [\"/usr/bin/id\"]\n"
    );
    let fleet_file = d.join("fleet.toml");
    std::fs::write(&fleet_file, &fleet).unwrap();
    let digest = jitd::fleet::policy::FleetPolicy::parse(&fleet)
        .unwrap()
        .digest;
    let conf = std::fs::read_to_string(d.join("bus.conf")).unwrap();
    let mut procs = Procs(Vec::new());
    let mut pids: Vec<(u32, u32)> = Vec::new();
    let started = Instant::now();
    for (i, hd) in dirs.iter().enumerate() {
        let sock = hd.join("bus.sock");
        let addr = format!("unix:path={}", sock.display());
        std::fs::write(hd.join("bus.conf"), conf.replace(&w.bus, &addr)).unwrap();
        procs.0.push(
            Command::new("dbus-daemon")
                .arg(format!("--config-file={}", hd.join("bus.conf").display()))
                .arg("--nofork")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_for("a host's bus", Duration::from_secs(30), || {
            sock.exists().then_some(())
        });
        let log = std::fs::File::create(hd.join("jitd.log")).unwrap();
        let jitd = Command::new(bin("jitd"))
            .arg("--config")
            .arg(&w.policy_path)
            .arg("--state-dir")
            .arg(hd.join("state"))
            .arg("--sudoers-dir")
            .arg(hd.join("sudoers"))
            .args(["--bus", &addr, "--pam-socket"])
            .arg(hd.join("pam.sock"))
            .arg("--fleet")
            .arg(&fleet_file)
            .args(["--fleet-host", &format!("h{i}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let jitd_pid = jitd.id();
        procs.0.push(jitd);
        let agent_log = std::fs::File::create(hd.join("agent.log")).unwrap();
        let agent = w
            .as_user(
                "jit-fleet",
                &bin("jit-fleetd"),
                &[
                    "--fleet",
                    fleet_file.to_str().unwrap(),
                    "--host",
                    &format!("h{i}"),
                    "--bus",
                    &addr,
                ],
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(agent_log)
            .spawn()
            .unwrap();
        pids.push((jitd_pid, agent.id()));
        procs.0.push(agent);
    }
    // Every agent in touch with its jitd and etcd: its heartbeat is there.
    wait_for("every host's heartbeat", Duration::from_secs(600), || {
        procs.check_alive(&dirs);
        let r = etcd.ctl(&["get", "--prefix", "--keys-only", "/jit/v1/"]);
        (r.stdout.lines().filter(|l| l.ends_with("/alive")).count() == hosts).then_some(())
    });
    let up = started.elapsed();
    let busy: Vec<u32> = pids
        .iter()
        .flat_map(|(j, a)| [*j, *a])
        .chain(etcd.pids())
        .collect();
    let h0 = jitd::fleet::host_key(&dirs[0].join("state/fleet_host_key"), "h0").unwrap();
    let bob = jitd::fleet::host_key(&d.join("bob"), "bob").unwrap();
    let now = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    let names: Vec<String> = (0..hosts).map(|i| format!("h{i}")).collect();
    let (mut grant_ms, mut end_ms, mut grant_last, mut end_last, mut put_ms) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut settled = Vec::new();
    for round in 0..rounds {
        let r = FleetRequest {
            id: format!("h0-bench{round}"),
            host: "h0".into(),
            user: "alice".into(),
            role: "db-admin".into(),
            hosts: names.clone(),
            duration_secs: 600,
            reason: format!("BENCH-7 round {round}"),
            created_at: now(),
            policy_digest: digest.clone(),
        };
        let req = Signed {
            signature: jitd::fleet::sign(&h0, REQUEST_NAMESPACE, &r).unwrap(),
            record: r.clone(),
        };
        etcd.put(&format!("/jit/v1/h0/req/{}", r.id), &req);
        // Every host has seen it (and refused it: no approval yet) before the clock starts.
        wait_for("every host's refusal", Duration::from_secs(120), || {
            procs.check_alive(&dirs);
            let got = etcd.ctl(&["get", "--prefix", "--keys-only", "/jit/v1/"]);
            let acks = got
                .stdout
                .lines()
                .filter(|l| l.ends_with(&format!("/ack/{}", r.id)))
                .count();
            (acks == hosts).then_some(())
        });
        let appr = Approval {
            request_id: r.id.clone(),
            request_digest: r.digest(),
            approver: "bob".into(),
            approved_at: now(),
        };
        let appr = Signed {
            signature: jitd::fleet::sign(&bob, APPROVAL_NAMESPACE, &appr).unwrap(),
            record: appr,
        };
        wait_quiet("the fleet to settle before the approval", &busy);
        let t0 = Instant::now();
        etcd.put(&format!("/jit/v1/h1/appr/{}/bob", r.id), &appr);
        put_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
        let got = fan_out(&sudoers_dirs, true, t0);
        grant_last.push(pct(&got, 1.0));
        grant_ms.extend(got);
        let end = End {
            request_id: r.id.clone(),
            request_digest: r.digest(),
            by: "bob@h0".into(),
            at: now(),
        };
        let end = Signed {
            signature: jitd::fleet::sign(&h0, END_NAMESPACE, &end).unwrap(),
            record: end,
        };
        wait_quiet("the fleet to settle before the end", &busy);
        settled.push(t0.elapsed().as_secs_f64());
        let t1 = Instant::now();
        etcd.put(&format!("/jit/v1/h0/end/{}", r.id), &end);
        let got = fan_out(&sudoers_dirs, false, t1);
        end_last.push(pct(&got, 1.0));
        end_ms.extend(got);
    }
    // Memory per host, once every round is done.
    let (jitd_kb, agent_kb): (Vec<f64>, Vec<f64>) = pids
        .iter()
        .map(|(j, a)| (rss_kb(*j) as f64, rss_kb(*a) as f64))
        .unzip();
    // What etcd holds per grant (heartbeats left out).
    let all = etcd.ctl(&["get", "--prefix", "/jit/v1/"]);
    let lines: Vec<&str> = all.stdout.lines().collect();
    let (mut keys_n, mut bytes) = (0usize, 0usize);
    for kv in lines.chunks(2) {
        if kv[0].ends_with("/alive") {
            continue;
        }
        keys_n += 1;
        bytes += kv.iter().map(|l| l.len()).sum::<usize>();
    }
    drop(procs);
    let fmt = |v: &[f64]| {
        format!(
            "p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (n={})",
            pct(v, 0.5),
            pct(v, 0.99),
            pct(v, 1.0),
            v.len()
        )
    };
    rep.line(&format!(
        "\n### 7. A fleet: {hosts} hosts (jitd + agent + bus each) on a 3-member etcd, {rounds} grants\n"
    ));
    rep.line(&format!(
        "- all {hosts} hosts up and in touch with etcd {:.1} s after the first started",
        up.as_secs_f64()
    ));
    rep.line(&format!(
        "- **approval → alice's rule in a host's sudoers directory**, per host: {}; to the last host of each grant: {}",
        fmt(&grant_ms),
        fmt(&grant_last)
    ));
    rep.line(&format!(
        "- **end → rule gone**, per host: {}; to the last host of each grant: {} (target: under 1 s to every connected host)",
        fmt(&end_ms),
        fmt(&end_last)
    ));
    rep.line(&format!(
        "- (both include the `etcdctl put` that writes the record, itself {:.0} ms at the median; \
         each is measured on a settled fleet: jitds, agents and etcd together under a tenth of \
         a core for half a second)",
        pct(&put_ms, 0.5)
    ));
    rep.line(&format!(
        "- the fleet settles again (every host has heard every other host's ack) {:.1} s after \
         an approval at the median, {:.1} s at most",
        pct(&settled, 0.5),
        pct(&settled, 1.0)
    ));
    rep.line(&format!(
        "- memory per host (RSS): jitd median {:.1} MB (max {:.1}), agent median {:.1} MB (max {:.1})",
        pct(&jitd_kb, 0.5) / 1024.0,
        pct(&jitd_kb, 1.0) / 1024.0,
        pct(&agent_kb, 0.5) / 1024.0,
        pct(&agent_kb, 1.0) / 1024.0
    ));
    rep.line(&format!(
        "- etcd per grant: {:.0} keys, {:.1} KiB (request, approval, end, one ack per host)",
        keys_n as f64 / rounds as f64,
        bytes as f64 / rounds as f64 / 1024.0
    ));
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (n, grants, sizes): (usize, usize, &[usize]) = if quick {
        (30, 20, &[10, 100])
    } else {
        (200, 200, &[10, 100, 1000])
    };
    let mut rep = Report { md: String::new() };
    rep.line(&format!("Machine: {}\n", machine()));
    if std::env::args().any(|a| a == "--audit-only") {
        audit_scale(&mut rep, 1_000_000, 5);
        return;
    }
    if std::env::args().any(|a| a == "--ssh-only") {
        ssh_overhead(&mut rep, 40);
        return;
    }
    if std::env::args().any(|a| a == "--sudo-only") {
        let w = world(grants);
        sudo_overhead(&w, &mut rep, n);
        ssh_pam_steps(&w, &mut rep, n);
        return;
    }
    if std::env::args().any(|a| a == "--layout-only") {
        layout_comparison(&mut rep, n.min(40));
        return;
    }
    if std::env::args().any(|a| a == "--watch-only") {
        let w = world(grants);
        watch_latency(&w, &mut rep, n.min(100));
        return;
    }
    if std::env::args().any(|a| a == "--fleet-only") {
        let hosts = std::env::var("JIT_BENCH_HOSTS")
            .ok()
            .and_then(|h| h.parse().ok())
            .unwrap_or(if quick { 10 } else { 100 });
        fleet_scale(&mut rep, hosts, if quick { 3 } else { 10 });
        return;
    }
    if std::env::args().any(|a| a == "--policy-only") {
        policy_scale(&mut rep, &[2_000, 20_000, 200_000], 3);
        return;
    }
    {
        let w = world(grants);
        sudo_overhead(&w, &mut rep, n);
        ssh_pam_steps(&w, &mut rep, n);
        throughput(&w, &mut rep, 4, if quick { 2 } else { 5 });
        latencies(&w, &mut rep, if quick { 10 } else { 50 });
        watch_latency(&w, &mut rep, if quick { 20 } else { 100 });
        expiry_precision(&w, &mut rep, grants);
    }
    ssh_overhead(&mut rep, if quick { 10 } else { 40 });
    layout_comparison(&mut rep, if quick { 10 } else { 40 });
    scale(&mut rep, sizes, n.min(100));
    audit_scale(
        &mut rep,
        if quick { 100_000 } else { 1_000_000 },
        if quick { 3 } else { 5 },
    );
    if quick {
        policy_scale(&mut rep, &[2_000, 20_000], 3);
    } else {
        policy_scale(&mut rep, &[2_000, 20_000, 200_000], 3);
    }
    fleet_scale(
        &mut rep,
        if quick { 10 } else { 100 },
        if quick { 3 } else { 10 },
    );
    let out = std::env::var("JIT_BENCH_OUT").unwrap_or_else(|_| "bench/results.part.md".into());
    let mut text = String::new();
    let _ = write!(text, "{}", rep.md);
    std::fs::write(&out, text).unwrap();
}
