//! Sessions opened under a grant (a sudo command, an ssh login), held as pidfds so a reused
//! pid is never signalled, and ended when their grant ends: SIGHUP to the registered process
//! at once (sudo relays it to the command it runs), then SIGKILL to it and every process
//! below it after a grace period.
//!
//! Each session is also stored (grant, pid, process start time, boot id, terminal), so a
//! restarted jitd takes them up again: it opens a pidfd for the pid and keeps it only if the
//! process behind it started at the stored time in the same boot (a reused pid never is).

use rustix::fd::OwnedFd;
use rustix::process::{Pid, PidfdFlags, Signal, pidfd_open, pidfd_send_signal};
use std::collections::HashMap;
use std::time::Duration;

/// Between SIGHUP and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(3);

pub struct Session {
    pub pid: i32,
    /// When the process started, in clock ticks after boot (`/proc/PID/stat` field 22).
    pub start_time: u64,
    /// The session's terminal (`/dev/pts/3`), where warnings before the end are written;
    /// None without one.
    pub tty: Option<String>,
    fd: OwnedFd,
}

#[derive(Default)]
pub struct Sessions {
    by_grant: HashMap<u64, Vec<Session>>,
    /// Per grant, the warnings already given (seconds before the end).
    warned: HashMap<u64, Vec<u64>>,
}

/// Warnings on the session's terminal, this many seconds before its grant ends.
pub const WARN_BEFORE: [u64; 2] = [300, 60];

fn open_pidfd(pid: i32) -> Result<OwnedFd, String> {
    let p = Pid::from_raw(pid).ok_or_else(|| format!("invalid pid {pid}"))?;
    pidfd_open(p, PidfdFlags::empty()).map_err(|e| format!("pidfd_open({pid}): {e}"))
}

impl Sessions {
    /// Tracks `pid` under `grant`; returns the process's start time (for the stored row).
    /// The pidfd is taken now, while the caller (blocked in this call) keeps the process
    /// alive, so it names that process and no later one. Sessions that have ended since are
    /// dropped here, so no close call is needed (one bus round trip less in every sudo).
    pub fn open(&mut self, grant: u64, pid: i32, tty: &str) -> Result<u64, String> {
        let fd = open_pidfd(pid)?;
        let start_time = start_time(pid).ok_or_else(|| format!("cannot read /proc/{pid}/stat"))?;
        self.track(grant, pid, start_time, tty, fd);
        Ok(start_time)
    }

    /// Takes up a stored session after a restart: only if `pid` is still the process that
    /// started at `start_time`. The pidfd is opened before the start time is read, so a
    /// match means the pidfd holds that process (had it died and its pid been reused in
    /// between, the start time read would be the newcomer's).
    pub fn restore(&mut self, grant: u64, pid: i32, start: u64, tty: &str) -> Result<(), String> {
        let fd = open_pidfd(pid)?;
        match start_time(pid) {
            Some(t) if t == start && !exited(&fd) => {
                self.track(grant, pid, start, tty, fd);
                Ok(())
            }
            Some(_) => Err(format!("pid {pid} is another process now")),
            None => Err(format!("process {pid} has gone")),
        }
    }

    fn track(&mut self, grant: u64, pid: i32, start_time: u64, tty: &str, fd: OwnedFd) {
        for list in self.by_grant.values_mut() {
            list.retain(|s| !exited(&s.fd));
        }
        self.by_grant.retain(|_, l| !l.is_empty());
        self.by_grant.entry(grant).or_default().push(Session {
            pid,
            start_time,
            tty: terminal_path(tty),
            fd,
        });
    }

    pub fn take(&mut self, grant: u64) -> Vec<Session> {
        self.warned.remove(&grant);
        self.by_grant.remove(&grant).unwrap_or_default()
    }

    /// Writes `text` to the terminals of the grant's live sessions (and the `extra` ones)
    /// once per threshold of
    /// [`WARN_BEFORE`] that `left` seconds has reached (`length`: the grant's whole length;
    /// a threshold it never exceeded is skipped). Returns how many terminals were written.
    pub fn warn(
        &mut self,
        grant: u64,
        left: u64,
        length: u64,
        extra: impl FnOnce() -> Vec<String>,
        text: impl Fn(u64) -> String,
    ) -> usize {
        let mut none = Vec::new();
        let list = self.by_grant.get_mut(&grant).unwrap_or(&mut none);
        list.retain(|s| !exited(&s.fd));
        let warned = self.warned.entry(grant).or_default();
        let Some(&due) = WARN_BEFORE
            .iter()
            .filter(|&&t| left <= t && length > t && !warned.contains(&t))
            .min()
        else {
            return 0;
        };
        // A session's own terminal; an ssh login has none when it registers (sshd opens the
        // PAM session before it allocates the pty), so its processes' terminal then.
        let mut ttys: Vec<String> = list
            .iter()
            .flat_map(|s| match &s.tty {
                Some(t) => vec![t.clone()],
                None => descendant_terminals(s.pid),
            })
            .collect();
        // Terminals of processes the grant's end also ends (those carrying its groups).
        ttys.extend(extra());
        ttys.sort_unstable();
        ttys.dedup();
        // No terminal yet (a login still starting, a shell not yet under the group): the
        // warning waits for one, on a later pass, rather than being spent on nobody.
        if ttys.is_empty() {
            return 0;
        }
        // Reaching the 1-minute mark also settles the 5-minute one (never two at once).
        warned.extend(WARN_BEFORE.iter().filter(|&&t| t >= due));
        let msg = text(left);
        let mut written = 0;
        for tty in &ttys {
            match write_terminal(tty, &msg) {
                Ok(()) => written += 1,
                Err(e) => tracing::warn!("cannot warn grant {grant} on {tty}: {e}"),
            }
        }
        written
    }

    pub fn count(&self) -> usize {
        self.by_grant.values().map(Vec::len).sum()
    }
}

/// A pidfd becomes readable when its process has exited.
fn exited(fd: &OwnedFd) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let mut fds = [PollFd::new(fd, PollFlags::IN)];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    matches!(poll(&mut fds, Some(&now)), Ok(n) if n > 0)
}

/// Field `n` (numbered as in proc(5), from 3) of `/proc/PID/stat`, as a number.
fn stat_field(pid: impl std::fmt::Display, n: usize) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may hold spaces and ')', so fields resume after the
    // last ')', with field 3 (state) first.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(n.checked_sub(3)?)?.parse().ok()
}

/// When `pid` started, in clock ticks after boot (field 22).
pub fn start_time(pid: i32) -> Option<u64> {
    stat_field(pid, 22)
}

/// The pids of every process below `root`, from /proc.
fn descendant_pids(root: i32) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let ppid = stat_field(pid, 4).and_then(|p| i32::try_from(p).ok());
            if let Some(ppid) = ppid {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut out = Vec::new();
    let mut queue = vec![root];
    while let Some(p) = queue.pop() {
        for &c in children.get(&p).map(Vec::as_slice).unwrap_or(&[]) {
            out.push(c);
            queue.push(c);
        }
    }
    out
}

/// Every process below `root`, as pidfds (taken now).
fn descendants(root: i32) -> Vec<OwnedFd> {
    descendant_pids(root)
        .into_iter()
        .filter_map(|p| open_pidfd(p).ok())
        .collect()
}

/// The terminals (`/dev/pts/N`) the processes below `root` have as controlling terminal.
fn descendant_terminals(root: i32) -> Vec<String> {
    descendant_pids(root)
        .into_iter()
        .filter_map(|p| u32::try_from(p).ok())
        .filter_map(|p| terminal_path(&tty_of(p)))
        .collect()
}

/// Whether process `pid` runs as `uid` (real or effective) and carries supplementary
/// group `gid` (`/proc/PID/status`: `Uid:` and `Groups:`).
fn carries(pid: i32, uid: u32, gid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|rest| {
                rest.split_whitespace()
                    .filter_map(|n| n.parse::<u32>().ok())
                    .collect::<Vec<u32>>()
            })
            .unwrap_or_default()
    };
    let uids = field("Uid:");
    (uids.first() == Some(&uid) || uids.get(1) == Some(&uid)) && field("Groups:").contains(&gid)
}

/// The processes of `uid` that still carry group `gid` (they keep it after `/etc/group`
/// changes), as sessions to end: see [`processes_where`].
pub fn carrying_group(uid: u32, gid: u32) -> Vec<Session> {
    processes_where(|pid| carries(pid, uid, gid))
}

/// Every process running as `uid` (real, effective, saved or filesystem uid): an ephemeral
/// account's, to end before the account goes.
pub fn of_uid(uid: u32) -> Vec<Session> {
    processes_where(|pid| runs_as(pid, uid))
}

/// How many rounds [`kill_uid`] makes before it says processes are left.
const KILL_ROUNDS: usize = 64;

/// SIGKILLs every process running as `uid`, round after round until a scan of /proc finds
/// none (a process that forks, or detaches a child, between a scan and its kill is found
/// by the next round), at most [`KILL_ROUNDS`] rounds. Returns how many processes the last
/// round still found (0: none is left), and every pid it signalled.
pub fn kill_uid(uid: u32) -> (usize, Vec<i32>) {
    let mut killed = Vec::new();
    for _ in 0..KILL_ROUNDS {
        let found = of_uid(uid);
        if found.is_empty() {
            return (0, killed);
        }
        for s in &found {
            // ESRCH: it has gone meanwhile, as it should.
            let _ = pidfd_send_signal(&s.fd, Signal::KILL);
            killed.push(s.pid);
        }
    }
    (of_uid(uid).len(), killed)
}

/// Whether any of process `pid`'s uids (`/proc/PID/status` `Uid:`) is `uid`.
fn runs_as(pid: i32, uid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .is_some_and(|rest| rest.split_whitespace().any(|n| n.parse() == Ok(uid)))
    })
}

/// The processes for which `wanted` holds, as sessions to end: a pidfd is taken first and
/// the process checked again through it, so a pid reused in between is never signalled.
fn processes_where(wanted: impl Fn(i32) -> bool) -> Vec<Session> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if !wanted(pid) {
            continue;
        }
        let Ok(fd) = open_pidfd(pid) else {
            continue;
        };
        let Some(start_time) = start_time(pid) else {
            continue;
        };
        if !wanted(pid) || exited(&fd) {
            continue;
        }
        let tty = u32::try_from(pid)
            .ok()
            .and_then(|p| terminal_path(&tty_of(p)));
        out.push(Session {
            pid,
            start_time,
            tty,
            fd,
        });
    }
    out
}

/// Ends sessions: SIGHUP now; SIGKILL to each and its descendants after [`GRACE`], from a
/// thread of its own so the caller never waits.
pub fn end(sessions: Vec<Session>) {
    if sessions.is_empty() {
        return;
    }
    for s in &sessions {
        if let Err(e) = pidfd_send_signal(&s.fd, Signal::HUP) {
            tracing::debug!("SIGHUP to session {}: {e}", s.pid);
        }
    }
    let spawned = std::thread::Builder::new()
        .name("session-end".into())
        .spawn(move || {
            let mut tree: Vec<OwnedFd> = sessions.iter().flat_map(|s| descendants(s.pid)).collect();
            std::thread::sleep(GRACE);
            tree.extend(sessions.iter().flat_map(|s| descendants(s.pid)));
            for fd in tree.iter().chain(sessions.iter().map(|s| &s.fd)) {
                // ESRCH: it has already gone, as it should have.
                let _ = pidfd_send_signal(fd, Signal::KILL);
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the session killer: {e}");
    }
}

/// `/dev/pts/N` or `/dev/ttyN` from a PAM_TTY value (`/dev/pts/3`, `pts/3`), or None for
/// anything else (sshd's `ssh` without a terminal, a path somewhere else).
pub fn terminal_path(tty: &str) -> Option<String> {
    let name = tty.strip_prefix("/dev/").unwrap_or(tty);
    let digits = |s: &str| !s.is_empty() && s.len() <= 7 && s.chars().all(|c| c.is_ascii_digit());
    let ok = name.strip_prefix("pts/").is_some_and(digits)
        || name.strip_prefix("tty").is_some_and(digits);
    ok.then(|| format!("/dev/{name}"))
}

/// The terminals people are logged in on, as `write(1)` would reach them: the controlling
/// terminal of every session leader (a login shell, an sshd session's shell, a terminal
/// window's shell), with its owner's uid, when the terminal belongs to that user and its
/// owner allows messages (`mesg y`: group write permission). Read from /proc, not utmp,
/// which not every login writes.
pub fn login_terminals() -> Vec<(u32, String)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut out: Vec<(u32, String)> = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        // Field 6: the session id; a session leader's is its own pid.
        if stat_field(pid, 6) != Some(u64::from(pid)) {
            continue;
        }
        let Some(path) = terminal_path(&tty_of(pid)) else {
            continue;
        };
        let Ok(proc_meta) = e.metadata() else {
            continue;
        };
        let uid = proc_meta.uid();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let mesg_y = meta.mode() & 0o020 != 0;
        if meta.file_type().is_char_device() && meta.uid() == uid && mesg_y {
            out.push((uid, path));
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Writes `msg` to a terminal without ever blocking or taking it as a controlling
/// terminal, and only if it is a character device (a terminal path replaced by something
/// else is not written).
pub fn write_terminal(path: &str, msg: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| e.to_string())?;
    let meta = f.metadata().map_err(|e| e.to_string())?;
    if !meta.file_type().is_char_device() {
        return Err("not a terminal".into());
    }
    f.write_all(msg.as_bytes()).map_err(|e| e.to_string())
}

/// The controlling terminal of `pid` as the kernel reports it (`pts/3`, `tty1`), or empty
/// if it has none or cannot be read. For the audit trail only.
pub fn tty_of(pid: u32) -> String {
    tty_name(stat_field(pid, 7).unwrap_or(0))
}

/// "No login uid": what the kernel reports for a process outside any login session.
const NO_LOGIN_UID: u32 = u32::MAX;

/// The login uid of `pid` (`/proc/PID/loginuid`, set once per login session by
/// pam_loginuid and kept across su and sudo): None outside a login session, or on a kernel
/// without audit support. An error if the process cannot be read (it has gone): whoever
/// needs to know whose session a call comes from must not guess.
pub fn login_uid_of(pid: u32) -> Result<Option<u32>, String> {
    let dir = std::path::PathBuf::from(format!("/proc/{pid}"));
    match std::fs::read_to_string(dir.join("loginuid")) {
        Ok(text) => match text.trim().parse::<u32>() {
            Ok(NO_LOGIN_UID) => Ok(None),
            Ok(uid) => Ok(Some(uid)),
            Err(e) => Err(format!("/proc/{pid}/loginuid: {e}")),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && dir.is_dir() => Ok(None),
        Err(e) => Err(format!("process {pid}: {e}")),
    }
}

/// Names a `tty_nr` from /proc/PID/stat (major in bits 8-19, minor in 0-7 and 20-31).
fn tty_name(tty_nr: u64) -> String {
    let major = (tty_nr >> 8) & 0xfff;
    let minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xf_ff00);
    match major {
        0 => String::new(),
        136..=143 => format!("pts/{}", minor + (major - 136) * 256),
        4 if minor < 64 => format!("tty{minor}"),
        4 => format!("ttyS{}", minor - 64),
        _ => format!("dev {major}:{minor}"),
    }
}

#[cfg(test)]
mod tty_tests {
    use super::*;

    #[test]
    fn tty_numbers_are_named_as_the_kernel_names_them() {
        assert_eq!(tty_name(0), "");
        assert_eq!(tty_name((136 << 8) | 3), "pts/3");
        // pts/300: major 137, minor 44.
        assert_eq!(tty_name((137 << 8) | 44), "pts/300");
        assert_eq!(tty_name((4 << 8) | 1), "tty1");
        assert_eq!(tty_name((4 << 8) | 64), "ttyS0");
        // A minor above 255 is split around the major.
        assert_eq!(tty_name((136 << 8) | (1 << 20)), "pts/256");
    }

    #[test]
    fn only_terminal_device_paths_are_accepted() {
        assert_eq!(terminal_path("/dev/pts/3").as_deref(), Some("/dev/pts/3"));
        assert_eq!(terminal_path("pts/12").as_deref(), Some("/dev/pts/12"));
        assert_eq!(terminal_path("/dev/tty2").as_deref(), Some("/dev/tty2"));
        for bad in [
            "ssh",
            "",
            "/dev/pts/",
            "/dev/pts/../sda",
            "/etc/shadow",
            "/dev/ttyS0",
            "pts/1 x",
        ] {
            assert_eq!(terminal_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn own_process_is_read_without_error() {
        // The test runner may or may not have a terminal; either answer is well-formed.
        let t = tty_of(std::process::id());
        assert!(
            t.is_empty() || t.starts_with("pts/") || t.starts_with("tty"),
            "{t}"
        );
        assert_eq!(tty_of(u32::MAX), "");
    }

    #[test]
    fn start_time_names_one_process_and_restore_refuses_another() {
        let me = i32::try_from(std::process::id()).unwrap();
        let parent = i32::try_from(std::os::unix::process::parent_id()).unwrap();
        let mine = start_time(me).unwrap();
        assert_eq!(start_time(me), Some(mine), "stable");
        assert_eq!(
            stat_field(me, 4),
            Some(u64::from(std::os::unix::process::parent_id()))
        );
        let mut s = Sessions::default();
        assert!(s.restore(7, me, mine + 1, "").is_err(), "other start time");
        assert!(s.restore(7, i32::MAX, mine, "").is_err(), "no such process");
        assert_eq!(s.count(), 0);
        s.restore(7, me, mine, "/dev/pts/0").unwrap();
        assert_eq!(s.open(8, parent, "ssh"), Ok(start_time(parent).unwrap()));
        assert_eq!(s.count(), 2);
        let taken = s.take(7);
        assert_eq!(taken[0].start_time, mine);
        assert_eq!(taken[0].tty.as_deref(), Some("/dev/pts/0"));
    }
}
