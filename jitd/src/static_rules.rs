//! Standing sudoers rules that a grant would unlock.
//!
//! With `require_grant`, pam_jit's account check admits a user's sudo while they hold any
//! active grant; sudo then allows whatever sudoers allows them, their static rules
//! included. So a `whoami` grant unlocks a static `ALL`. jitd cannot bind sudo's decision to
//! the grant's own rule; what it can do is say so: `jitctl policy check` and `jitctl status`
//! list, for every user the policy lets request a role, the static rules that apply to them.
//!
//! The rules are read by sudo's own tool, `cvtsudoers` (filtered per user and their groups,
//! aliases expanded), over a copy of the sudoers tree without jitd's own `jit-*` files: the
//! ephemeral rules are the grants themselves, not standing rights.

use crate::directory::Directory;
use crate::policy::{Policy, Principal};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The main sudoers file.
pub const SUDOERS: &str = "/etc/sudoers";

/// One warning per requester who holds static rules, naming them.
pub fn unlocked_by_grants(
    policy: &Policy,
    dir: &dyn Directory,
    sudoers: &Path,
    jit_dir: &Path,
) -> Result<Vec<String>, String> {
    let text = fs::read_to_string(sudoers).map_err(|e| format!("{}: {e}", sudoers.display()))?;
    let copy = Copy::new(&text, jit_dir)?;
    let mut out = Vec::new();
    for user in requesters(policy, dir)? {
        let groups = dir.groups_of(&user).unwrap_or_default();
        let rules = rules_for(&copy.main, &user, &groups)?;
        if !rules.is_empty() {
            out.push(format!(
                "{user} may request roles and holds static sudoers rules, which any grant of \
                 theirs unlocks under require_grant: {}",
                rules.join(" | ")
            ));
        }
    }
    Ok(out)
}

/// Every user a role's requesters stand for today, sorted.
fn requesters(policy: &Policy, dir: &dyn Directory) -> Result<Vec<String>, String> {
    let mut users = Vec::new();
    for role in &policy.roles {
        for p in &role.requesters {
            match p {
                Principal::User(u) => users.push(u.to_string()),
                Principal::Group(g) => users.extend(dir.group_members(g)?),
            }
        }
    }
    users.sort();
    users.dedup();
    Ok(users)
}

/// The rules (one line each) that apply to `user` as a member of `groups`, as cvtsudoers
/// reads `main`, without Defaults and alias definitions.
fn rules_for(main: &Path, user: &str, groups: &[String]) -> Result<Vec<String>, String> {
    let mut filter = format!("user={user}");
    for g in groups {
        filter.push_str(&format!(",group={g}"));
    }
    let out = Command::new("cvtsudoers")
        .args(["-f", "sudoers", "-e", "-p", "-s", "defaults,aliases", "-m"])
        .arg(&filter)
        .arg(main)
        .output()
        .map_err(|e| format!("running cvtsudoers: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cvtsudoers failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout).replace("\\\n", " ");
    Ok(text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect())
}

/// A private copy of the sudoers tree for cvtsudoers: the main file with its include of
/// jitd's directory pointed at a copy of that directory without jitd's own files. Removed
/// when dropped.
struct Copy {
    root: PathBuf,
    main: PathBuf,
}

impl Copy {
    fn new(sudoers: &str, jit_dir: &Path) -> Result<Copy, String> {
        let root = std::env::temp_dir().join(format!("jitd-static-rules-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let mut b = fs::DirBuilder::new();
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(&root)
            .map_err(|e| format!("creating {}: {e}", root.display()))?;
        let copy = Copy {
            main: root.join("sudoers"),
            root,
        };
        let d = copy.root.join("d");
        fs::create_dir(&d).map_err(|e| format!("creating {}: {e}", d.display()))?;
        let jit = jit_dir.to_string_lossy();
        let mut main = String::with_capacity(sudoers.len());
        for line in sudoers.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [inc, path] if (*inc == "@includedir" || *inc == "#includedir") && *path == jit => {
                    main.push_str(&format!("{inc} {}\n", d.display()));
                }
                _ => {
                    main.push_str(line);
                    main.push('\n');
                }
            }
        }
        fs::write(&copy.main, main).map_err(|e| format!("writing a copy of sudoers: {e}"))?;
        if let Ok(entries) = fs::read_dir(jit_dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                // What sudo itself skips, and jitd's own files.
                if name.starts_with("jit-") || name.contains('.') || name.ends_with('~') {
                    continue;
                }
                if e.file_type().is_ok_and(|t| t.is_file()) {
                    fs::copy(e.path(), d.join(&name))
                        .map_err(|err| format!("copying {}: {err}", e.path().display()))?;
                }
            }
        }
        Ok(copy)
    }
}

impl Drop for Copy {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::FakeDirectory;

    #[test]
    fn given_requester_with_static_all_when_checked_then_warned_and_jitds_own_rules_ignored() {
        assert!(
            Command::new("cvtsudoers").arg("-V").output().is_ok(),
            "cvtsudoers (from sudo) is needed: tests/run installs it"
        );
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("sudoers.d");
        fs::create_dir(&d).unwrap();
        let main = tmp.path().join("sudoers");
        fs::write(
            &main,
            format!(
                "Defaults env_reset\nroot ALL=(ALL:ALL) ALL\n%admins ALL=(ALL) ALL\n\
                 @includedir {}\n",
                d.display()
            ),
        )
        .unwrap();
        fs::write(
            d.join("static"),
            "alice ALL=(ALL) ALL\nbob ALL=(root) /usr/bin/id\n",
        )
        .unwrap();
        fs::write(
            d.join("jit-s01"),
            "carol ALL = (root) NOTAFTER=20990101000000Z NOPASSWD: /usr/bin/true\n",
        )
        .unwrap();
        let dir = FakeDirectory::default()
            .user("alice", 1001, &["alice", "ops"])
            .user("carol", 1003, &["carol", "ops"])
            .user("dave", 1004, &["dave", "ops", "admins"])
            .user("bob", 1002, &["bob"]);
        let policy = Policy::parse(
            "t.toml",
            "[[role]]\nname = \"w\"\ncommands = [\"/usr/bin/whoami\"]\nrequesters = [\"%ops\"]\n\
             max_duration = \"1h\"\n",
            &dir,
        )
        .unwrap();
        let w = unlocked_by_grants(&policy, &dir, &main, &d).unwrap();
        let joined = w.join("\n");
        assert!(
            joined.contains("alice may request") && joined.contains("alice ALL = (ALL) ALL"),
            "{joined}"
        );
        assert!(
            joined.contains("dave may request") && joined.contains("%admins ALL"),
            "{joined}"
        );
        // carol's only rule is jitd's own (a grant); bob requests nothing.
        assert!(
            !joined.contains("carol") && !joined.contains("bob"),
            "{joined}"
        );
        assert_eq!(w.len(), 2, "{joined}");
    }
}
