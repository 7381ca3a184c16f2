//! `jitctl setup pam`: the one place that puts pam_jit's lines into the PAM stacks and takes
//! them out again. install.sh and the Debian package's documented step both call it; nothing
//! edits PAM files silently.
//!
//! Every line it adds ends with [`MARK`], and `--disable` removes exactly those lines, so a
//! file that nobody else edited in between is restored byte for byte. Each line goes right
//! after the distribution's `@include common-*` line of its kind, so pam_jit always comes
//! after real authentication (pam_unix) and account checks.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// Ends every line this tool writes.
pub const MARK: &str = "# added by jitctl setup pam";

/// A PAM service file and the lines pam_jit needs in it.
pub struct Stack {
    pub service: &'static str,
    /// Whether the stack may be absent on a host (sudo without `--with-pam-login` has no
    /// `sudo-i`): then there is nothing to cover, and enabling skips it.
    pub optional: bool,
    /// (the include line to put it after, the pam_jit line)
    pub lines: &'static [(&'static str, &'static str)],
}

/// sudo: ask for a role at the password prompt, gate on a grant (without `require_grant`:
/// static rules keep working, so enabling this cannot lock admins out), register sessions.
pub const SUDO: Stack = Stack {
    service: "sudo",
    optional: false,
    lines: &[
        (
            "@include common-auth",
            "auth     optional pam_jit.so mode=sudo timeout=5 wait=120",
        ),
        (
            "@include common-account",
            "account  required pam_jit.so mode=sudo timeout=5",
        ),
        (
            "@include common-session",
            "session  optional pam_jit.so mode=sudo timeout=5",
        ),
    ],
};

/// sudo's login shells (`sudo -i`, `sudo --login`): Debian's sudo (`--with-pam-login`, as
/// `sudo -V` says: "PAM service name to use for login shells: sudo-i") runs them through
/// this service, not `sudo`. Without these lines a `sudo -i` root shell would bypass
/// pam_jit: no grant check under `require_grant`, no session ended with its grant.
pub const SUDO_I: Stack = Stack {
    service: "sudo-i",
    optional: true,
    lines: &[
        (
            "@include common-auth",
            "auth     optional pam_jit.so mode=sudo timeout=5 wait=120",
        ),
        (
            "@include common-account",
            "account  required pam_jit.so mode=sudo timeout=5",
        ),
        (
            "@include common-session",
            "session  optional pam_jit.so mode=sudo timeout=5",
        ),
    ],
};

/// Every PAM service sudo uses.
pub const SUDO_SERVICES: [&Stack; 2] = [&SUDO, &SUDO_I];

/// sshd: admit a login only under an active grant of a role with `ssh = true`. Opt-in
/// (`--sshd`): every ssh login of every user goes through this gate once enabled.
pub const SSHD: Stack = Stack {
    service: "sshd",
    optional: false,
    lines: &[
        (
            "@include common-account",
            "account  required pam_jit.so mode=ssh timeout=5",
        ),
        (
            "@include common-session",
            "session  optional pam_jit.so mode=ssh timeout=5",
        ),
    ],
};

/// `text` with the stack's lines added, or why it cannot be done (nothing is changed then).
/// Already enabled: `Ok(None)`.
pub fn enable(text: &str, stack: &Stack) -> Result<Option<String>, String> {
    if text.lines().any(|l| l.ends_with(MARK)) {
        return Ok(None);
    }
    if let Some(l) = text
        .lines()
        .find(|l| !l.trim_start().starts_with('#') && l.contains("pam_jit.so"))
    {
        return Err(format!(
            "/etc/pam.d/{} already has a pam_jit line not added by jitctl ({l:?}); \
             leaving it to you",
            stack.service
        ));
    }
    let mut out = String::with_capacity(text.len() + 256);
    let mut placed = vec![false; stack.lines.len()];
    for line in text.split_inclusive('\n') {
        out.push_str(line);
        let bare = line.trim_end();
        for (i, (after, add)) in stack.lines.iter().enumerate() {
            // "@include common-session" also matches common-session-noninteractive.
            if !placed[i] && bare.starts_with(after) {
                if !line.ends_with('\n') {
                    out.push('\n');
                }
                out.push_str(&format!("{add}   {MARK}\n"));
                placed[i] = true;
            }
        }
    }
    if let Some(i) = placed.iter().position(|p| !p) {
        return Err(format!(
            "/etc/pam.d/{} has no '{}' line to put pam_jit after; add the lines from \
             `jitctl setup pam --print` by hand",
            stack.service, stack.lines[i].0
        ));
    }
    Ok(Some(out))
}

/// `text` without the lines [`enable`] added, or `None` if it has none.
pub fn disable(text: &str) -> Option<String> {
    let kept: String = text
        .split_inclusive('\n')
        .filter(|l| !l.trim_end().ends_with(MARK))
        .collect();
    (kept.len() != text.len()).then_some(kept)
}

/// What `--print` shows: the lines, by file, for an admin to add by hand.
pub fn print(stacks: &[&Stack]) -> String {
    let mut s = String::new();
    for st in stacks {
        s.push_str(&format!("# /etc/pam.d/{}\n", st.service));
        for (after, add) in st.lines {
            s.push_str(&format!("{add}   # after '{after}'\n"));
        }
    }
    s
}

/// Replaces `path` atomically, keeping its mode and owner: a temporary file beside it,
/// fsync, rename, fsync of the directory. A crash leaves the old file or the new one.
pub fn replace_file(path: &Path, text: &str) -> Result<(), String> {
    let meta = fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let dir = path
        .parent()
        .ok_or_else(|| format!("{}: no parent directory", path.display()))?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("{}: bad file name", path.display()))?;
    let tmp = dir.join(format!(".{name}.jitctl-{}", std::process::id()));
    let written = (|| -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.set_permissions(fs::Permissions::from_mode(meta.mode() & 0o7777))?;
        std::os::unix::fs::fchown(&f, Some(meta.uid()), Some(meta.gid()))?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    written.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        format!("writing {}: {e}", path.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Debian 12's /etc/pam.d/sudo and sudo-i, and the essential part of its sshd file.
    const DEBIAN_SUDO: &str = "#%PAM-1.0\n\n# Set up user limits from /etc/security/limits.conf.\nsession    required   pam_limits.so\n\n@include common-auth\n@include common-account\n@include common-session-noninteractive\n";
    const DEBIAN_SUDO_I: &str = "#%PAM-1.0\n\n# Set up user limits from /etc/security/limits.conf.\nsession    required   pam_limits.so\n\n@include common-auth\n@include common-account\n@include common-session\n";
    const DEBIAN_SSHD: &str = "# PAM configuration for the Secure Shell service\n\n@include common-auth\naccount    required     pam_nologin.so\n@include common-account\nsession [success=ok ignore=ignore module_unknown=ignore default=bad]        pam_selinux.so close\nsession    required     pam_loginuid.so\n@include common-session\n@include common-password\n";

    #[test]
    fn given_debian_sudo_when_enabled_then_each_line_follows_its_include() {
        let out = enable(DEBIAN_SUDO, &SUDO).unwrap().unwrap();
        let lines: Vec<&str> = out.lines().collect();
        let at = |p: &str| lines.iter().position(|l| l.starts_with(p)).unwrap();
        assert_eq!(
            at("auth     optional pam_jit.so"),
            at("@include common-auth") + 1
        );
        assert_eq!(
            at("account  required pam_jit.so"),
            at("@include common-account") + 1
        );
        assert_eq!(
            at("session  optional pam_jit.so"),
            at("@include common-session") + 1
        );
        assert_eq!(out.lines().filter(|l| l.ends_with(MARK)).count(), 3);
    }

    #[test]
    fn given_debian_sudo_i_when_enabled_then_login_shells_get_every_line() {
        // Regression: `sudo -i` runs through /etc/pam.d/sudo-i, which setup left alone, so
        // a login shell bypassed pam_jit (no grant check, no session ended with its grant).
        assert!(SUDO_SERVICES.iter().any(|s| s.service == "sudo-i"));
        let out = enable(DEBIAN_SUDO_I, &SUDO_I).unwrap().unwrap();
        for kind in [
            "auth     optional",
            "account  required",
            "session  optional",
        ] {
            assert!(
                out.lines()
                    .any(|l| l.starts_with(&format!("{kind} pam_jit.so mode=sudo"))
                        && l.ends_with(MARK)),
                "{kind}: {out}"
            );
        }
        let lines: Vec<&str> = out.lines().collect();
        let at = |p: &str| lines.iter().position(|l| l.starts_with(p)).unwrap();
        assert_eq!(
            at("session  optional pam_jit.so"),
            at("@include common-session") + 1
        );
    }

    #[test]
    fn given_enabled_when_disabled_then_byte_for_byte_the_original() {
        for (text, stack) in [
            (DEBIAN_SUDO, &SUDO),
            (DEBIAN_SUDO_I, &SUDO_I),
            (DEBIAN_SSHD, &SSHD),
        ] {
            let on = enable(text, stack).unwrap().unwrap();
            assert_eq!(disable(&on).unwrap(), text);
        }
    }

    #[test]
    fn given_enabled_when_enabled_again_then_nothing_changes() {
        let on = enable(DEBIAN_SUDO, &SUDO).unwrap().unwrap();
        assert_eq!(enable(&on, &SUDO).unwrap(), None);
        assert_eq!(disable(DEBIAN_SUDO), None);
    }

    #[test]
    fn given_missing_include_then_refused_naming_it() {
        let e = enable("auth required pam_unix.so\n", &SUDO).unwrap_err();
        assert!(e.contains("'@include common-auth'"), "{e}");
    }

    #[test]
    fn given_hand_added_pam_jit_line_then_refused_and_disable_leaves_it() {
        let text = format!("{DEBIAN_SUDO}account required pam_jit.so mode=sudo require_grant\n");
        assert!(
            enable(&text, &SUDO)
                .unwrap_err()
                .contains("not added by jitctl")
        );
        assert_eq!(disable(&text), None);
    }

    #[test]
    fn given_file_without_final_newline_then_lines_stay_separate() {
        let text = "@include common-auth\n@include common-account\n@include common-session";
        let on = enable(text, &SUDO).unwrap().unwrap();
        assert!(on.contains("@include common-session\nsession  optional pam_jit.so"));
        assert_eq!(on.lines().filter(|l| l.ends_with(MARK)).count(), 3);
    }

    #[test]
    fn given_file_when_replaced_then_mode_kept_and_no_temporary_left() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sudo");
        fs::write(&p, DEBIAN_SUDO).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        replace_file(&p, "new\n").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "new\n");
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, 0o640);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
