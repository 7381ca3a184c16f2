//! Where a role's programs live, for `policy check`: a program that someone other than
//! root can change (the file, or any directory above it), or create where it does not
//! exist yet, lets that person decide what the role runs as its targets. Found in a user trial: roles
//! running `/tmp/tool` and `/home/alice/bin/tool` were accepted without a word. These are
//! facts about the host today, so they are warnings, like the static sudoers rules.

use crate::policy::Policy;
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// One warning per program (naming the first role that runs it).
pub fn warnings(policy: &Policy) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for role in &policy.roles {
        for c in &role.commands {
            let program = c.split(' ').next().unwrap_or_default();
            if !seen.insert(program.to_string()) {
                continue;
            }
            if let Some(w) = check(Path::new(program), &|uid| uid == 0) {
                out.push(format!("role '{}' runs {w}", role.name));
            }
        }
    }
    // Notifier programs run as the agent's user with every event on their input; whoever
    // can change one reads every request and acts as that user (found in a user trial).
    for n in &policy.notifiers {
        let Some(program) = n.command.first() else {
            continue;
        };
        if !seen.insert(program.clone()) {
            continue;
        }
        if let Some(w) = check(Path::new(program), &|uid| uid == 0) {
            out.push(format!("notifier '{}' runs {w}", n.name));
        }
    }
    out
}

/// Why `program` is not root's alone (`trusted`: which owners count as root), if it is not.
/// A directory with the sticky bit (`/tmp`) may be writable by all: nobody but an entry's
/// owner can replace that entry, and the entry is checked in turn.
pub fn check(program: &Path, trusted: &dyn Fn(u32) -> bool) -> Option<String> {
    let real = match std::fs::canonicalize(program) {
        Ok(p) => p,
        // Not there (a package not installed yet): safe only if nobody but root can create
        // it, in the nearest directory that exists (a sticky one does not help here).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let existing = program.ancestors().skip(1).find(|a| a.exists())?;
            let m = std::fs::metadata(existing).ok()?;
            if !trusted(m.uid()) || m.mode() & 0o022 != 0 {
                return Some(format!(
                    "{}, which does not exist, in {} that someone other than root can write: \
                     whoever creates it decides what the role runs",
                    program.display(),
                    existing.display()
                ));
            }
            return check(existing, trusted).map(|w| format!("{}: {w}", program.display()));
        }
        Err(e) => {
            return Some(format!(
                "{}, which cannot be checked: {e}",
                program.display()
            ));
        }
    };
    // The path as written (its links included) and where it leads.
    for p in program.ancestors().chain(real.ancestors()) {
        if p.as_os_str().is_empty() {
            continue;
        }
        let Ok(m) = std::fs::metadata(p) else {
            return Some(format!(
                "{}, whose {} cannot be read",
                program.display(),
                p.display()
            ));
        };
        let mode = m.mode() & 0o7777;
        let sticky_dir = m.is_dir() && mode & 0o1000 != 0;
        if !trusted(m.uid()) || (mode & 0o022 != 0 && !sticky_dir) {
            return Some(format!(
                "{}, which someone other than root can change ({} is owned by uid {}, mode \
                 {mode:04o}): they would decide what the role runs",
                program.display(),
                p.display(),
                m.uid()
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn given_programs_where_others_can_change_them_then_each_is_named() {
        let me = nix::unistd::geteuid().as_raw();
        // Root, and whoever runs the test (whose files these are).
        let ours = |uid: u32| uid == 0 || uid == me;
        // A private directory (0700) inside /tmp (sticky): only its owner can change it.
        let dir = tempfile::tempdir().unwrap();
        let tool = dir.path().join("tool");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(check(&tool, &ours), None);
        // The file writable by its group or by all.
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o775)).unwrap();
        let w = check(&tool, &ours).unwrap();
        assert!(w.contains("mode 0775"), "{w}");
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        // A directory above it writable by all, without the sticky bit.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let w = check(&tool, &ours).unwrap();
        assert!(w.contains(&dir.path().display().to_string()), "{w}");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        // Owned by someone who does not count as root.
        assert!(check(&tool, &|uid| uid != me).is_some());
        // Not there: fine where only root could create it, named where others could.
        assert_eq!(check(&dir.path().join("missing"), &ours), None);
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        let w = check(&dir.path().join("missing"), &ours).unwrap();
        assert!(w.contains("does not exist"), "{w}");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        // A link to it from a directory that others may write is named by that directory.
        let open = tempfile::tempdir().unwrap();
        std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let link = open.path().join("link");
        std::os::unix::fs::symlink(&tool, &link).unwrap();
        assert!(check(&link, &ours).is_some());
    }
}
