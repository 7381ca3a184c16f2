//! Named crash points for the fault tests: `JITD_CRASH_AT=after-write:2` makes jitd kill
//! itself with SIGKILL the second time it reaches that step after it started serving, which
//! is `kill -9` at exactly that step. Debug builds only: in a release build [`reached`] does
//! nothing and the variable is never read.
//!
//! The steps of every state change, in order: the database commit (state and audit record),
//! then for each sudoers shard the temporary file written and fsynced, the rename (or, for a
//! shard left empty, the unlink), and the directory fsync.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    AfterCommit,
    AfterWrite,
    AfterRename,
    AfterUnlink,
    AfterDirSync,
    /// A group membership's row committed, before `gpasswd -a` (temporary groups).
    AfterGroupRow,
    /// `gpasswd -a` or `-d` done, before what follows it is recorded.
    AfterGroupEdit,
    /// An account's row committed, before `groupadd`/`useradd` (ephemeral accounts).
    AfterAccountRow,
    /// `useradd` done, before the account is recorded as made.
    AfterAccountCreate,
    /// `userdel` done, before the account is recorded as removed.
    AfterAccountDelete,
}

impl Point {
    pub const ALL: [Point; 10] = [
        Point::AfterCommit,
        Point::AfterWrite,
        Point::AfterRename,
        Point::AfterUnlink,
        Point::AfterDirSync,
        Point::AfterGroupRow,
        Point::AfterGroupEdit,
        Point::AfterAccountRow,
        Point::AfterAccountCreate,
        Point::AfterAccountDelete,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Point::AfterCommit => "after-commit",
            Point::AfterWrite => "after-write",
            Point::AfterRename => "after-rename",
            Point::AfterUnlink => "after-unlink",
            Point::AfterDirSync => "after-dirsync",
            Point::AfterGroupRow => "after-group-row",
            Point::AfterGroupEdit => "after-group-edit",
            Point::AfterAccountRow => "after-account-row",
            Point::AfterAccountCreate => "after-account-create",
            Point::AfterAccountDelete => "after-account-delete",
        }
    }
}

/// `after-write:2` -> (AfterWrite, 2).
pub fn parse(spec: &str) -> Option<(Point, u32)> {
    let (name, n) = spec.split_once(':')?;
    let point = Point::ALL.into_iter().find(|p| p.name() == name)?;
    let n = n.parse().ok().filter(|&n| n > 0)?;
    Some((point, n))
}

static TARGET: OnceLock<Option<(Point, u32)>> = OnceLock::new();
static ARMED: AtomicBool = AtomicBool::new(false);
static COUNT: AtomicU32 = AtomicU32::new(0);

/// Starts counting (called once jitd serves, so start-up reconciliation is not counted).
pub fn arm() {
    if cfg!(debug_assertions) {
        ARMED.store(true, Ordering::SeqCst);
    }
}

/// jitd has just completed `point`.
pub fn reached(point: Point) {
    if !cfg!(debug_assertions) || !ARMED.load(Ordering::SeqCst) {
        return;
    }
    let target = TARGET.get_or_init(|| std::env::var("JITD_CRASH_AT").ok().and_then(|s| parse(&s)));
    if let Some((p, n)) = *target
        && p == point
        && COUNT.fetch_add(1, Ordering::SeqCst) + 1 == n
    {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_specs_then_parsed_or_refused() {
        assert_eq!(parse("after-rename:3"), Some((Point::AfterRename, 3)));
        assert_eq!(parse("after-rename:0"), None);
        assert_eq!(parse("after-rename"), None);
        assert_eq!(parse("before-commit:1"), None);
        for p in Point::ALL {
            assert_eq!(parse(&format!("{}:1", p.name())), Some((p, 1)));
        }
    }
}
