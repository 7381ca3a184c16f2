//! The README's first quick-start command, `install.sh`, and `uninstall.sh`, on a host whose
//! `/etc`, `/usr/local/bin` and `sbin`, the PAM security directory, `/run`, `/var/lib` and `/var/log` are
//! private copies or empty tmpfs in a mount namespace. Alone in its binary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use jit_e2e::{bin_dir, private_mount_namespace, run, wait_for};
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
    let dpkg = tmp.path().join("dpkg");
    std::fs::create_dir(&dpkg).unwrap();
    bind(Path::new("/var/lib/dpkg"), dpkg.to_str().unwrap());
    tmpfs("/var/lib");
    std::fs::create_dir("/var/lib/dpkg").unwrap();
    bind(&dpkg, "/var/lib/dpkg");
    tmpfs("/var/log");
    tmpfs("/usr/local/bin");
    tmpfs("/usr/local/sbin");
    tmpfs("/run");

    let pam_before = std::fs::read_to_string("/etc/pam.d/sudo").unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut install = Command::new(repo.join("install.sh"));
    install.env("JIT_BIN_DIR", bin_dir());
    let r = run(install, "", Duration::from_secs(300));
    let jitd = pid_in("/run/jitd.pid");
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
    let pam_after = std::fs::read_to_string("/etc/pam.d/sudo").unwrap();
    let roles = sh("/usr/local/bin/jitctl --json roles");
    let uninstall = run(
        Command::new(repo.join("uninstall.sh")),
        "",
        Duration::from_secs(60),
    );
    // uninstall.sh stops jitd itself; the system bus this test's install started is ours.
    if let Some(p) = jitd {
        wait_for("jitd to stop", Duration::from_secs(10), || {
            kill(p, None).is_err().then_some(())
        });
    }
    stop(None, bus);

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
    for gone in [
        "/usr/local/sbin/jitd".to_string(),
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
