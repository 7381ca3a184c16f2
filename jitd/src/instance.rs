//! One jitd at a time: an exclusive lock on the state directory, held for the process's
//! life, and the files that name the jitd that holds it (pid file, PAM socket).
//!
//! Two jitd on one database and one sudoers directory would each reconcile and expire on
//! their own; the second must refuse to start, say why, and exit non-zero. The lock is an
//! `flock` on `jitd.lock` in the state directory: the kernel drops it when the process
//! dies, however it dies, so a crashed jitd never blocks its successor.

use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

/// The lock file's name in the state directory.
pub const LOCK_FILE: &str = "jitd.lock";

/// The exclusive lock on a state directory; released when dropped or when jitd ends.
pub struct StateLock {
    _lock: Flock<File>,
}

impl StateLock {
    /// Takes the lock on `state_dir` (which must already be checked: a real directory of
    /// root's) and writes this process's pid into the lock file, or says which jitd holds it.
    pub fn acquire(state_dir: &Path) -> Result<StateLock, String> {
        let path = state_dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| format!("opening {}: {e}", path.display()))?;
        let meta = file
            .metadata()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if let Some(what) = crate::files::not_ours(&meta) {
            return Err(format!(
                "{} is {what}, which jitd never creates; refusing to start",
                path.display()
            ));
        }
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let who = match holder.trim() {
                    "" => "another jitd".to_string(),
                    pid => format!("another jitd (pid {pid})"),
                };
                return Err(format!(
                    "{who} is already running on the state directory {}; not starting a \
                     second one (stop it first: see jitd(8), \"Running without systemd\")",
                    state_dir.display()
                ));
            }
            Err((_, e)) => return Err(format!("locking {}: {e}", path.display())),
        };
        let pid = format!("{}\n", std::process::id());
        lock.set_len(0)
            .and_then(|()| lock.rewind())
            .and_then(|()| lock.write_all(pid.as_bytes()))
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        Ok(StateLock { _lock: lock })
    }
}

/// An exclusive lock on the sudoers directory itself (`flock` works on a directory), so two
/// jitd with different state directories still never write rules in one sudoers directory
/// (each would take the other's rules for orphans and remove them).
pub struct RulesLock {
    _lock: Flock<File>,
}

impl RulesLock {
    pub fn acquire(sudoers_dir: &Path) -> Result<RulesLock, String> {
        let dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(sudoers_dir)
            .map_err(|e| format!("opening {}: {e}", sudoers_dir.display()))?;
        match Flock::lock(dir, FlockArg::LockExclusiveNonblock) {
            Ok(l) => Ok(RulesLock { _lock: l }),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(format!(
                "another jitd is already writing rules in {}; not starting a second one",
                sudoers_dir.display()
            )),
            Err((_, e)) => Err(format!("locking {}: {e}", sudoers_dir.display())),
        }
    }
}

/// A pid file (`--pid-file`) naming the jitd that serves: written once jitd owns its bus
/// name, removed when it stops on a signal. Only ever written by the jitd that holds the
/// state lock, so it never names one that is not serving.
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    pub fn write(path: &Path) -> Result<PidFile, String> {
        let tmp = path.with_extension("pid.tmp");
        let written = (|| -> std::io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o644)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&tmp)?;
            writeln!(f, "{}", std::process::id())?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        written.map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("writing pid file {}: {e}", path.display())
        })?;
        Ok(PidFile {
            path: path.to_path_buf(),
        })
    }

    /// Removes the file if it still names this process.
    pub fn remove(&self) {
        let mine = std::fs::read_to_string(&self.path)
            .is_ok_and(|s| s.trim() == std::process::id().to_string());
        if mine {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The PAM socket's file: removed when jitd stops, if it is still the one this jitd bound.
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    id: (u64, u64),
}

impl SocketFile {
    /// The socket just bound at `path`.
    pub fn bound(path: &Path) -> std::io::Result<SocketFile> {
        use std::os::unix::fs::MetadataExt as _;
        let m = std::fs::symlink_metadata(path)?;
        Ok(SocketFile {
            path: path.to_path_buf(),
            id: (m.dev(), m.ino()),
        })
    }

    pub fn remove(&self) {
        use std::os::unix::fs::MetadataExt as _;
        let mine =
            std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.id);
        if mine {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The files that name a running jitd (its pid file, its PAM socket): removed when it stops,
/// on a signal or on return.
#[derive(Default)]
pub struct Traces {
    pub pid: std::sync::OnceLock<PidFile>,
    pub socket: std::sync::OnceLock<SocketFile>,
}

impl Traces {
    pub fn remove(&self) {
        if let Some(p) = self.pid.get() {
            p.remove();
        }
        if let Some(s) = self.socket.get() {
            s.remove();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_state_dir_locked_when_second_jitd_starts_then_refused_naming_the_first() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let first = StateLock::acquire(dir.path());
        assert!(first.is_ok(), "{:?}", first.err());
        // A second open file description, as a second process would have.
        let second = StateLock::acquire(dir.path());
        let Err(e) = second else {
            panic!("a second lock on the same state directory was granted");
        };
        assert!(e.contains("already running"), "{e}");
        assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
        drop(first);
        assert!(StateLock::acquire(dir.path()).is_ok(), "released on drop");
    }

    #[test]
    fn given_sudoers_dir_locked_when_another_jitd_would_write_there_then_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = RulesLock::acquire(dir.path()).unwrap();
        let e = RulesLock::acquire(dir.path()).err().unwrap();
        assert!(e.contains("already writing rules"), "{e}");
        drop(first);
        assert!(RulesLock::acquire(dir.path()).is_ok());
    }

    #[test]
    fn given_symlink_at_the_lock_name_when_acquired_then_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "").unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink(&target, dir.path().join(LOCK_FILE))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(StateLock::acquire(dir.path()).is_err());
    }
}
