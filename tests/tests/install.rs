//! The README's first quick-start command, `install.sh`, and `uninstall.sh`, on a host whose
//! `/etc`, `/usr/local`, the PAM security directory, `/run`,
//! `/var/lib` and `/var/log` are private copies or empty tmpfs in a mount namespace. Alone in
//! its binary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use jit_e2e::{bin_dir, private_mount_namespace, run};
use nix::mount::{MsFlags, mount};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn sh(cmd: &str) -> jit_e2e::Run {
    let mut c = Command::new("bash");
    c.args(["-c", cmd]);
    run(c, "", Duration::from_secs(120))
}

fn bind(src: &Path, dst: &str) {
    mount(Some(src), dst, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .unwrap_or_else(|e| panic!("bind {} on {dst}: {e}", src.display()));
}

fn tmpfs(dst: &str) {
    mount(
        Some("tmpfs"),
        dst,
        Some("tmpfs"),
        MsFlags::empty(),
        Some("mode=0755"),
    )
    .unwrap_or_else(|e| panic!("tmpfs on {dst}: {e}"));
}

fn pid_in(file: &str) -> Option<Pid> {
    std::fs::read_to_string(file)
        .ok()?
        .trim()
        .parse()
        .ok()
        .map(Pid::from_raw)
}

/// Every jitd in this test's mount namespace (not a jitd the host itself may run).
const JITD_HERE: &str = "ns=$(readlink /proc/self/ns/mnt); for p in /proc/[0-9]*; do \
     [ \"$(cat $p/comm 2>/dev/null)\" = jitd ] && [ \"$(readlink $p/ns/mnt)\" = \"$ns\" ] \
     && ! grep -q '^State:.*Z' $p/status && echo ${p#/proc/}; done";

/// The user of every notifier agent in this test's mount namespace, one line each.
const AGENTS_HERE: &str = "ns=$(readlink /proc/self/ns/mnt); for p in /proc/[0-9]*; do \
     [ \"$(cat $p/comm 2>/dev/null)\" = jit-notifyd ] && [ \"$(readlink $p/ns/mnt)\" = \"$ns\" ] \
     && ! grep -q '^State:.*Z' $p/status && stat -c %U $p; done";

/// A user who keeps calling jitd (`jitctl roles`), so the bus starts one whenever none runs.
struct Busy {
    on: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<usize>,
}

impl Busy {
    fn start() -> Busy {
        let on = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let flag = on.clone();
        let thread = std::thread::spawn(move || {
            let mut calls = 0;
            while flag.load(std::sync::atomic::Ordering::SeqCst) {
                let _ = Command::new("/usr/local/bin/jitctl")
                    .arg("roles")
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status();
                calls += 1;
            }
            calls
        });
        Busy { on, thread }
    }

    fn stop(self) -> usize {
        self.on.store(false, std::sync::atomic::Ordering::SeqCst);
        self.thread.join().unwrap()
    }
}

#[test]
fn given_fresh_host_when_install_then_jitd_runs_with_example_policy_and_uninstall_restores_it() {
    assert!(nix::unistd::geteuid().is_root(), "needs root");
    private_mount_namespace();
    let tmp = tempfile::tempdir().unwrap();
    let secdir = sh("echo $(pkg-config --variable=libdir pam)/security").stdout;
    let secdir = secdir.trim().to_string();
    // Private copies of everything install.sh writes to.
    for (src, name) in [("/etc", "etc"), (secdir.as_str(), "security")] {
        let copy = tmp.path().join(name);
        let r = sh(&format!("cp -a {src} {}", copy.display()));
        assert!(r.ok(), "{}", r.all());
        bind(&copy, src);
    }
    // /usr/local as a whole (install.sh writes bin, sbin, share and libexec there; a host
    // may have none of them): empty, but for a copy of share (man's and bash's paths).
    let share = tmp.path().join("share");
    let r = sh(&format!("cp -a /usr/local/share {}", share.display()));
    assert!(r.ok(), "{}", r.all());
    tmpfs("/usr/local");
    for d in ["bin", "sbin", "share", "libexec"] {
        std::fs::create_dir(format!("/usr/local/{d}")).unwrap();
    }
    bind(&share, "/usr/local/share");
    // A fresh host: if this one has jit installed (an admin tried the README), its copies
    // lose what install.sh would add, so the test starts from the same state everywhere.
    let r = sh(
        "rm -rf /etc/jit /usr/local/share/jit && for f in /etc/pam.d/*; do \
                sed -i '/# added by jitctl setup pam$/d' \"$f\"; done",
    );
    assert!(r.ok(), "{}", r.all());
    // Nor the ephemeral accounts of such a jit (the installed jitd would remove them as
    // planted, and end their processes).
    jit_e2e::drop_jit_range_accounts();
    // A copy of the package database (install.sh asks it what is installed and may install
    // packages). Never a bind of the host's own directory into `tmp`: removing `tmp` at the
    // end of the test would then empty the host's /var/lib/dpkg.
    let dpkg = tmp.path().join("dpkg");
    let r = sh(&format!("cp -a /var/lib/dpkg {}", dpkg.display()));
    assert!(r.ok(), "{}", r.all());
    tmpfs("/var/lib");
    std::fs::create_dir("/var/lib/dpkg").unwrap();
    bind(&dpkg, "/var/lib/dpkg");
    tmpfs("/var/log");
    tmpfs("/run");
    // Regression (found in a user trial): a system bus that died left its socket and pid
    // file, install.sh took the socket file for a bus, jitd could not connect, and the
    // install failed with PAM already edited. A dead bus's leftovers, as that host had them:
    std::fs::create_dir("/run/dbus").unwrap();
    drop(std::os::unix::net::UnixListener::bind("/run/dbus/system_bus_socket").unwrap());
    let mut gone = Command::new("true").spawn().unwrap();
    let gone_pid = gone.id();
    gone.wait().unwrap();
    std::fs::write("/run/dbus/pid", format!("{gone_pid}\n")).unwrap();

    let pam_before = std::fs::read_to_string("/etc/pam.d/sudo").unwrap();
    let pam_i_before = std::fs::read_to_string("/etc/pam.d/sudo-i").unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let install = || {
        let mut c = Command::new(repo.join("install.sh"));
        c.env("JIT_BIN_DIR", bin_dir());
        run(c, "", Duration::from_secs(300))
    };
    let first = install();
    let first_pid = pid_in("/run/jitd.pid");
    // Regression: a second run left two jitd on one database (the install's own status call
    // had the bus start a second one, which took the name over). It runs while a user keeps
    // calling jitd, so the bus keeps starting one whenever none runs.
    let busy = Busy::start();
    let r = if first.ok() { install() } else { first };
    let calls_during_install = busy.stop();
    let jitd = pid_in("/run/jitd.pid");
    // Every jitd in this test's mount namespace (not a jitd the host itself may run).
    let running = sh(JITD_HERE);
    // Exactly one notifier agent after two installs, as its own user, never root.
    let agents = jit_e2e::wait_for("one notifier agent", Duration::from_secs(20), || {
        let a = sh(AGENTS_HERE).stdout;
        (a.lines().count() == 1).then_some(a)
    });
    let verify_agent = sh(
        "systemd-analyze verify /etc/systemd/system/jit-notifyd.service /etc/systemd/system/jit-fleetd.service",
    );
    let bus = pid_in("/run/dbus/pid");
    let stop = |jitd: Option<Pid>, bus: Option<Pid>| {
        for p in [jitd, bus].into_iter().flatten() {
            let _ = kill(p, Signal::SIGTERM);
        }
    };
    if !r.ok() {
        stop(jitd, bus);
        panic!("install.sh failed: {}", r.all());
    }
    assert!(r.stdout.contains("health: ok"), "{}", r.all());

    let status = sh("/usr/local/bin/jitctl status");
    // pam_jit's short path: the PAM socket, root's alone, in a directory root's alone.
    let socket = sh("stat -c '%F %a %U' /run/jitd /run/jitd/pam.socket");
    let pam_after = std::fs::read_to_string("/etc/pam.d/sudo").unwrap();
    let pam_i_after = std::fs::read_to_string("/etc/pam.d/sudo-i").unwrap();
    let roles = sh("/usr/local/bin/jitctl --json roles");
    let manifest = std::fs::read_to_string("/usr/local/share/jit/installed-files").unwrap();
    let verify = sh("systemd-analyze verify /etc/systemd/system/jitd.service");
    let pages = sh(
        "for p in jitd:8 jitctl:1 jitctl-request:1 pam_jit:8 jit.toml:5; do \
         readlink -f \"$(man -w \"${p#*:}\" \"${p%:*}\")\"; done",
    );
    let completion = sh(
        "source /usr/local/share/bash-completion/completions/jitctl \
         && complete -p jitctl",
    );
    // Every path the pages name is true for this installation (regression: jit.toml(5)
    // pointed to examples under /usr/share, install.sh put them under /usr/local/share).
    let page = sh("man -P cat jit.toml 2>/dev/null; man -P cat pam_jit 2>/dev/null");

    let activation =
        std::fs::read_to_string("/usr/local/share/dbus-1/system-services/org.jit.Jitd.service")
            .unwrap_or_default();
    // The pid the bus reports as the owner of org.jit.Jitd: uninstall.sh stops it that way.
    let owner = sh(
        "dbus-send --system --print-reply --dest=org.freedesktop.DBus \
         /org/freedesktop/DBus org.freedesktop.DBus.GetConnectionUnixProcessID \
         string:org.jit.Jitd | awk '/uint32/ {print $2}'",
    );
    let owner_pid: Option<Pid> = owner.stdout.trim().parse().ok().map(Pid::from_raw);

    // Regression: a jitd the bus started while uninstall.sh stopped the other ran on, from
    // the deleted binary, ending sessions ten minutes later.
    let busy = Busy::start();
    let uninstall = run(
        Command::new(repo.join("uninstall.sh")),
        "",
        Duration::from_secs(60),
    );
    let calls_during_uninstall = busy.stop();
    let left = sh(JITD_HERE);
    let agents_left = sh(AGENTS_HERE);
    let socket_left = Path::new("/run/jitd/pam.socket").exists();
    // uninstall.sh stops jitd itself (found through the bus). The system bus this test's
    // install started is ours to stop.
    let stopped = owner_pid.map(|p| {
        let gone = || {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .map(|s| s.contains(") Z "))
                .unwrap_or(true)
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !gone() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let stopped = gone();
        if !stopped {
            let _ = kill(p, Signal::SIGKILL);
        }
        stopped
    });
    stop(first_pid.filter(|p| Some(*p) != jitd), bus);

    assert_eq!(owner_pid, jitd, "jitd owns its name: {}", owner.all());
    assert_ne!(first_pid, jitd, "the second install restarted jitd");
    assert_eq!(
        running.stdout.split_whitespace().collect::<Vec<_>>(),
        vec![jitd.unwrap().to_string()],
        "exactly one jitd after installing twice"
    );
    // Regression: `sudo -i` (PAM service sudo-i) bypassed pam_jit.
    for kind in [
        "auth     optional",
        "account  required",
        "session  optional",
    ] {
        assert!(
            pam_i_after.contains(&format!("{kind} pam_jit.so mode=sudo")),
            "{kind}: {pam_i_after}"
        );
    }
    assert!(
        activation.contains(
            "Exec=/usr/local/sbin/jitd --pid-file /run/jitd.pid --log-file /var/log/jitd.log\n"
        ) && activation.contains("Name=org.jit.Jitd"),
        "{activation}"
    );
    assert_eq!(stopped, Some(true), "uninstall.sh stops jitd");
    assert_eq!(
        socket.stdout,
        "directory 700 root\nsocket 600 root\n",
        "{}",
        socket.all()
    );
    assert!(!socket_left, "the PAM socket is gone with jitd");
    assert!(calls_during_install > 0 && calls_during_uninstall > 0);
    assert_eq!(
        left.stdout.trim(),
        "",
        "no jitd left after uninstall.sh under load"
    );
    assert!(verify.ok(), "systemd-analyze verify: {}", verify.all());
    assert_eq!(agents.trim(), "jit-notify", "{agents}");
    assert_eq!(
        agents_left.stdout.trim(),
        "",
        "no notifier agent left after uninstall.sh"
    );
    assert!(
        verify_agent.ok(),
        "systemd-analyze verify: {}",
        verify_agent.all()
    );
    for p in [
        "man8/jitd.8",
        "man1/jitctl.1",
        "man1/jitctl-request.1",
        "man8/pam_jit.8",
        "man5/jit.toml.5",
    ] {
        assert!(
            pages.stdout.contains(&format!("/usr/local/share/man/{p}")),
            "man finds {p}: {}",
            pages.all()
        );
    }
    assert!(completion.stdout.contains("jitctl"), "{}", completion.all());
    assert!(
        page.stdout.contains("/usr/local/share/doc/jit/examples")
            && page
                .stdout
                .contains("/etc/dbus-1/system.d/org.jit.Jitd.conf")
            && !page.stdout.contains("/usr/share/doc/jit-access"),
        "{}",
        page.all()
    );
    assert!(
        manifest.lines().count() > 20,
        "installed-files lists what was installed: {manifest}"
    );
    for f in manifest.lines() {
        assert!(!Path::new(f).exists(), "{f} left behind by uninstall.sh");
    }
    assert!(status.ok(), "{}", status.all());
    assert!(
        status.stdout.contains("/etc/jit/jit.toml (2 roles)"),
        "{}",
        status.all()
    );
    assert!(
        pam_after.contains("auth     optional pam_jit.so mode=sudo"),
        "{pam_after}"
    );
    assert!(
        pam_after.contains("account  required pam_jit.so mode=sudo")
            && pam_after.contains("session  optional pam_jit.so mode=sudo"),
        "{pam_after}"
    );
    assert!(roles.ok(), "{}", roles.all());
    assert!(uninstall.ok(), "{}", uninstall.all());
    assert_eq!(
        std::fs::read_to_string("/etc/pam.d/sudo").unwrap(),
        pam_before,
        "uninstall restores /etc/pam.d/sudo"
    );
    assert_eq!(
        std::fs::read_to_string("/etc/pam.d/sudo-i").unwrap(),
        pam_i_before,
        "uninstall restores /etc/pam.d/sudo-i"
    );
    for gone in [
        "/usr/local/sbin/jitd".to_string(),
        "/usr/local/sbin/jit-notifyd".to_string(),
        "/usr/local/libexec/jit/jit-notify-mail".to_string(),
        "/etc/systemd/system/jit-notifyd.service".to_string(),
        "/usr/local/sbin/jit-fleetd".to_string(),
        "/usr/local/sbin/jit-fleet-init".to_string(),
        "/etc/systemd/system/jit-fleetd.service".to_string(),
        "/usr/local/bin/jitctl".to_string(),
        format!("{secdir}/pam_jit.so"),
        "/etc/dbus-1/system.d/org.jit.Jitd.conf".to_string(),
    ] {
        assert!(!Path::new(&gone).exists(), "{gone} left behind");
    }
    assert!(
        Path::new("/etc/jit/jit.toml").exists(),
        "policy kept without --purge"
    );
}
