//! Shipping like a system component: the unit's exposure score, the SELinux module built
//! with the reference policy's devel Makefile, and the Debian package installed, removed and
//! purged with dpkg on a host whose /usr, /etc and /var are overlays in a private mount
//! namespace (the real ones are never written).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use jit_e2e::{private_mount_namespace, run};
use nix::mount::{MsFlags, mount};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn sh(cmd: &str) -> jit_e2e::Run {
    let mut c = Command::new("bash");
    c.args(["-c", cmd]).current_dir(repo());
    run(c, "", Duration::from_secs(300))
}

/// The most `systemd-analyze security` may score the unit (0 safest, 10 most exposed).
const MAX_EXPOSURE: f64 = 2.5;

#[test]
fn given_unit_when_systemd_analyze_security_offline_then_exposure_is_at_most_2_5() {
    let r = sh("systemd-analyze security --offline=yes --no-pager systemd/jitd.service");
    let line = r
        .stdout
        .lines()
        .find(|l| l.contains("Overall exposure level for jitd.service"))
        .unwrap_or_else(|| panic!("no overall score: {}", r.all()));
    let score: f64 = line
        .split(':')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("unreadable score: {line}"));
    println!("systemd-analyze security: jitd.service exposure {score}");
    assert!(score <= MAX_EXPOSURE, "{line}\n{}", r.stdout);
}

#[test]
fn given_selinux_module_when_built_with_refpolicy_devel_makefile_then_it_compiles() {
    let makefile = Path::new("/usr/share/selinux/devel/Makefile");
    assert!(
        makefile.exists(),
        "the reference policy's devel Makefile is missing (apt-get install selinux-policy-dev checkpolicy)"
    );
    let tmp = tempfile::tempdir().unwrap();
    for f in ["jitd.te", "jitd.fc", "jitd.if"] {
        std::fs::copy(repo().join("selinux").join(f), tmp.path().join(f)).unwrap();
    }
    let mut c = Command::new("make");
    c.arg("-f")
        .arg(makefile)
        .arg("jitd.pp")
        .current_dir(tmp.path());
    let r = run(c, "", Duration::from_secs(300));
    assert!(r.ok(), "{}", r.all());
    let pp = std::fs::metadata(tmp.path().join("jitd.pp")).unwrap();
    assert!(pp.len() > 1000, "jitd.pp is {} bytes", pp.len());
    // The module, read back: jitd_t may own only its own name, and execute visudo.
    let te = std::fs::read_to_string(repo().join("selinux/jitd.te")).unwrap();
    let rules: Vec<&str> = te
        .lines()
        .filter_map(|l| l.split('#').next())
        .map(str::trim)
        .collect();
    assert!(
        !rules.iter().any(|l| l.contains("dbus_connect_system_bus")),
        "would let jitd own any name"
    );
    assert!(rules.contains(&"allow jitd_t jitd_dbus_name_t:dbus acquire_svc;"));
    let execs: Vec<&str> = rules
        .iter()
        .copied()
        .filter(|l| l.contains("can_exec(") || l.contains("corecmd_exec_"))
        .collect();
    assert_eq!(
        execs,
        [
            "can_exec(jitd_t, jitd_visudo_exec_t)",
            "corecmd_exec_bin(jitd_t)"
        ],
        "visudo, and programs in bin only under the jitd_run_validators boolean"
    );
}

fn overlay(dir: &str, scratch: &Path) {
    let name = dir.trim_start_matches('/').replace('/', "-");
    let upper = scratch.join(format!("{name}-upper"));
    let work = scratch.join(format!("{name}-work"));
    std::fs::create_dir_all(&upper).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    let opts = format!(
        "lowerdir={dir},upperdir={},workdir={}",
        upper.display(),
        work.display()
    );
    mount(
        Some("overlay"),
        dir,
        Some("overlay"),
        MsFlags::empty(),
        Some(opts.as_str()),
    )
    .unwrap_or_else(|e| panic!("overlay on {dir}: {e}"));
}

#[test]
fn given_deb_when_installed_removed_and_purged_then_pam_untouched_until_asked_and_host_restored() {
    assert!(nix::unistd::geteuid().is_root(), "needs root");
    // Build the package from this workspace's (debug) binaries.
    let out = tempfile::tempdir().unwrap();
    let r = sh(&format!(
        "target/debug/xtask dist target/dist >/dev/null && \
         cargo deb -p jitd --no-build --profile dev --quiet -o {}",
        out.path().display()
    ));
    assert!(r.ok(), "cargo deb: {}", r.all());
    let deb = std::fs::read_dir(out.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("a .deb");

    private_mount_namespace();
    // Scratch space on a tmpfs of its own (upper and work dirs may not be on an overlay),
    // over /mnt in this namespace: nothing is left behind on the host.
    let scratch = Path::new("/mnt");
    mount(
        Some("tmpfs"),
        scratch,
        Some("tmpfs"),
        MsFlags::empty(),
        Some("mode=0700"),
    )
    .unwrap();
    for dir in ["/usr", "/etc", "/var"] {
        overlay(dir, scratch);
    }
    // No system bus, no systemd: the maintainer scripts take their non-systemd paths.
    mount(
        Some("tmpfs"),
        "/run",
        Some("tmpfs"),
        MsFlags::empty(),
        Some("mode=0755"),
    )
    .unwrap();

    // A fresh host even where an admin installed jit (outside the package): no policy, no
    // state, no lines of ours in PAM to begin with.
    let r = sh(
        "rm -rf /etc/jit /var/lib/jitd && for f in /etc/pam.d/*; do \
                sed -i '/# added by jitctl setup pam$/d' \"$f\"; done",
    );
    assert!(r.ok(), "{}", r.all());
    let pam_sudo = std::fs::read("/etc/pam.d/sudo").unwrap();
    let pam_sudo_i = std::fs::read("/etc/pam.d/sudo-i").unwrap();
    let pam_sshd = std::fs::read("/etc/pam.d/sshd").ok();
    let secdir = sh("echo $(pkg-config --variable=libdir pam)/security").stdout;
    let module = format!("{}/pam_jit.so", secdir.trim());
    let bus_library = format!("{}/pam_jit_bus.so", secdir.trim());

    let install = sh(&format!("dpkg -i {}", deb.display()));
    assert!(install.ok(), "dpkg -i: {}", install.all());
    assert!(
        install.stdout.contains("jitctl setup pam --enable"),
        "postinst tells the admin how to enable pam_jit: {}",
        install.all()
    );
    assert!(
        install
            .stdout
            .contains("account  required pam_jit.so mode=ssh"),
        "and prints the lines: {}",
        install.all()
    );
    assert_eq!(
        std::fs::read("/etc/pam.d/sudo").unwrap(),
        pam_sudo,
        "installing never edits PAM"
    );
    assert!(
        sh("getent passwd jit-notify")
            .stdout
            .contains(":/usr/sbin/nologin"),
        "the notifier agent's user, without a login"
    );
    for f in [
        "/usr/sbin/jitd",
        "/usr/bin/jitctl",
        "/usr/sbin/jit-notifyd",
        "/usr/sbin/jit-fleetd",
        "/usr/sbin/jit-fleet-init",
        "/lib/systemd/system/jit-fleetd.service",
        "/usr/libexec/jit/jit-notify-mail",
        "/usr/libexec/jit/jit-notify-webhook",
        "/usr/libexec/jit/jit-notify-ticket",
        "/lib/systemd/system/jit-notifyd.service",
        module.as_str(),
        bus_library.as_str(),
        "/etc/jit/jit.toml",
        "/usr/share/dbus-1/system.d/org.jit.Jitd.conf",
        "/usr/share/dbus-1/system-services/org.jit.Jitd.service",
        "/lib/systemd/system/jitd.service",
        "/usr/share/man/man8/jitd.8.gz",
        "/usr/share/man/man5/jit.toml.5.gz",
        "/usr/share/man/man8/pam_jit.8.gz",
        "/usr/share/man/man1/jitctl.1.gz",
        "/usr/share/bash-completion/completions/jitctl",
        "/usr/share/zsh/vendor-completions/_jitctl",
    ] {
        assert!(Path::new(f).exists(), "{f} not installed");
    }
    // The pages name this installation's paths, and they exist.
    let pages = sh("zcat /usr/share/man/man5/jit.toml.5.gz /usr/share/man/man8/pam_jit.8.gz");
    for path in [
        "/usr/share/doc/jit-access/examples/",
        "/usr/share/dbus-1/system.d/org.jit.Jitd.conf",
    ] {
        assert!(pages.stdout.contains(path), "{path}: {}", pages.all());
        assert!(Path::new(path).exists(), "{path} named but not installed");
    }
    let state = std::fs::metadata("/var/lib/jitd").expect("/var/lib/jitd");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&state.permissions()) & 0o777,
        0o700
    );
    let conffiles = sh("dpkg-query -W -f='${Conffiles}' jit-access").stdout;
    assert!(conffiles.contains("/etc/jit/jit.toml"), "{conffiles}");
    let check = sh("/usr/sbin/jitd --check-config");
    assert!(
        check.ok(),
        "the example policy with the package's groups: {}",
        check.all()
    );
    let verify = sh("systemd-analyze verify /lib/systemd/system/jitd.service");
    assert!(verify.ok(), "systemd-analyze verify: {}", verify.all());

    // The documented explicit step, then removal: exactly its lines come out again.
    let enable = sh("jitctl setup pam --enable --sshd");
    assert!(enable.ok(), "{}", enable.all());
    assert_ne!(std::fs::read("/etc/pam.d/sudo").unwrap(), pam_sudo);
    assert_ne!(
        std::fs::read("/etc/pam.d/sudo-i").unwrap(),
        pam_sudo_i,
        "sudo -i is covered too"
    );
    let remove = sh("dpkg -r jit-access");
    assert!(remove.ok(), "dpkg -r: {}", remove.all());
    assert_eq!(
        std::fs::read("/etc/pam.d/sudo").unwrap(),
        pam_sudo,
        "removal restores /etc/pam.d/sudo byte for byte"
    );
    assert_eq!(
        std::fs::read("/etc/pam.d/sudo-i").unwrap(),
        pam_sudo_i,
        "removal restores /etc/pam.d/sudo-i byte for byte"
    );
    assert_eq!(std::fs::read("/etc/pam.d/sshd").ok(), pam_sshd);
    for f in ["/usr/sbin/jitd", "/usr/bin/jitctl", module.as_str()] {
        assert!(!Path::new(f).exists(), "{f} left after dpkg -r");
    }
    assert!(
        Path::new("/etc/jit/jit.toml").exists(),
        "a removed package keeps its conffile"
    );

    let purge = sh("dpkg -P jit-access");
    assert!(purge.ok(), "dpkg -P: {}", purge.all());
    assert!(!Path::new("/etc/jit/jit.toml").exists());
    assert!(!Path::new("/var/lib/jitd").exists());
    assert!(
        !sh("getent group jit-users").ok(),
        "purge removes the groups"
    );
    assert!(
        !sh("getent passwd jit-notify").ok(),
        "purge removes the notifier agent's user"
    );
}
