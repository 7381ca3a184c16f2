//! User and group look-ups. Policy decisions take a [`Directory`] so they stay pure and
//! testable; jitd itself uses [`Nss`], which asks the system's NSS at decision time.

use nix::unistd::{Gid, Group, Uid, User};
use std::ffi::CString;

/// What policy needs to know about users and groups.
pub trait Directory: Send + Sync {
    /// Names of every group the user belongs to (primary and supplementary).
    /// An error means "cannot tell": callers deny.
    fn groups_of(&self, user: &str) -> Result<Vec<String>, String>;
    /// Whether the group exists.
    fn group_exists(&self, group: &str) -> Result<bool, String>;
    /// Users in the group, as far as the directory can list them (used only for the
    /// policy's consistency checks, never to grant anything).
    fn group_members(&self, group: &str) -> Result<Vec<String>, String>;
    /// The user's uid, if the user exists.
    fn uid_of(&self, user: &str) -> Result<Option<u32>, String>;
    /// The user name for a uid, if any.
    fn name_of(&self, uid: u32) -> Result<Option<String>, String>;
    /// The group's gid, if the group exists. A directory that cannot say errs: callers
    /// refuse.
    fn gid_of(&self, group: &str) -> Result<Option<u32>, String> {
        Err(format!("cannot look up the gid of group {group}"))
    }
}

/// The system's NSS (`/etc/passwd`, `/etc/group`, or whatever nsswitch.conf says).
#[derive(Debug, Default, Clone, Copy)]
pub struct Nss;

impl Directory for Nss {
    fn groups_of(&self, user: &str) -> Result<Vec<String>, String> {
        let u = User::from_name(user)
            .map_err(|e| format!("looking up user {user}: {e}"))?
            .ok_or_else(|| format!("no such user: {user}"))?;
        let cname = CString::new(user).map_err(|_| format!("invalid user name {user}"))?;
        let gids = nix::unistd::getgrouplist(&cname, u.gid)
            .map_err(|e| format!("listing groups of {user}: {e}"))?;
        let mut names = Vec::with_capacity(gids.len());
        for gid in gids {
            if let Some(g) = group_by_gid(gid)? {
                names.push(g.name);
            }
        }
        Ok(names)
    }

    fn group_exists(&self, group: &str) -> Result<bool, String> {
        Group::from_name(group)
            .map(|g| g.is_some())
            .map_err(|e| format!("looking up group {group}: {e}"))
    }

    /// Supplementary members from NSS, plus users whose primary group it is in
    /// `/etc/passwd` (NSS has no portable way to list those for other sources).
    fn group_members(&self, group: &str) -> Result<Vec<String>, String> {
        let Some(g) =
            Group::from_name(group).map_err(|e| format!("looking up group {group}: {e}"))?
        else {
            return Ok(Vec::new());
        };
        let mut out = g.mem.clone();
        if let Ok(passwd) = std::fs::read_to_string("/etc/passwd") {
            let gid = g.gid.as_raw().to_string();
            for line in passwd.lines() {
                let f: Vec<&str> = line.split(':').collect();
                if f.len() >= 4 && f[3] == gid {
                    out.push(f[0].to_string());
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn uid_of(&self, user: &str) -> Result<Option<u32>, String> {
        User::from_name(user)
            .map(|u| u.map(|u| u.uid.as_raw()))
            .map_err(|e| format!("looking up user {user}: {e}"))
    }

    fn name_of(&self, uid: u32) -> Result<Option<String>, String> {
        User::from_uid(Uid::from_raw(uid))
            .map(|u| u.map(|u| u.name))
            .map_err(|e| format!("looking up uid {uid}: {e}"))
    }

    fn gid_of(&self, group: &str) -> Result<Option<u32>, String> {
        Group::from_name(group)
            .map(|g| g.map(|g| g.gid.as_raw()))
            .map_err(|e| format!("looking up group {group}: {e}"))
    }
}

fn group_by_gid(gid: Gid) -> Result<Option<Group>, String> {
    Group::from_gid(gid).map_err(|e| format!("looking up gid {gid}: {e}"))
}

/// A fixed directory for unit tests.
#[derive(Debug, Default, Clone)]
pub struct FakeDirectory {
    /// (user, uid, groups)
    pub users: Vec<(String, u32, Vec<String>)>,
    pub groups: Vec<String>,
}

impl FakeDirectory {
    pub fn user(mut self, name: &str, uid: u32, groups: &[&str]) -> Self {
        for g in groups {
            if !self.groups.iter().any(|x| x == g) {
                self.groups.push((*g).to_string());
            }
        }
        self.users.push((
            name.to_string(),
            uid,
            groups.iter().map(|g| (*g).to_string()).collect(),
        ));
        self
    }
}

impl Directory for FakeDirectory {
    fn groups_of(&self, user: &str) -> Result<Vec<String>, String> {
        self.users
            .iter()
            .find(|(n, _, _)| n == user)
            .map(|(_, _, g)| g.clone())
            .ok_or_else(|| format!("no such user: {user}"))
    }
    fn group_exists(&self, group: &str) -> Result<bool, String> {
        Ok(self.groups.iter().any(|g| g == group))
    }
    fn group_members(&self, group: &str) -> Result<Vec<String>, String> {
        Ok(self
            .users
            .iter()
            .filter(|(_, _, g)| g.iter().any(|x| x == group))
            .map(|(n, _, _)| n.clone())
            .collect())
    }
    fn uid_of(&self, user: &str) -> Result<Option<u32>, String> {
        Ok(self.users.iter().find(|(n, _, _)| n == user).map(|u| u.1))
    }
    fn name_of(&self, uid: u32) -> Result<Option<String>, String> {
        Ok(self.users.iter().find(|u| u.1 == uid).map(|u| u.0.clone()))
    }
    /// `root` is gid 0; every other group gets 2000 + its place in the list.
    fn gid_of(&self, group: &str) -> Result<Option<u32>, String> {
        if group == "root" {
            return Ok(Some(0));
        }
        Ok(self
            .groups
            .iter()
            .position(|g| g == group)
            .and_then(|i| u32::try_from(i).ok())
            .map(|i| 2000 + i))
    }
}

/// One question asked once: a [`Directory`] that remembers every answer of the one it
/// wraps. For checking a policy, where thousands of roles name the same few groups (each
/// NSS look-up reads `/etc/group` again); never for decisions, which must see today's
/// membership.
pub struct Memo<'a> {
    dir: &'a dyn Directory,
    answers: std::sync::Mutex<std::collections::HashMap<(u8, String), Answer>>,
}

#[derive(Clone)]
enum Answer {
    Names(Result<Vec<String>, String>),
    Exists(Result<bool, String>),
    Uid(Result<Option<u32>, String>),
    Name(Result<Option<String>, String>),
}

impl<'a> Memo<'a> {
    pub fn new(dir: &'a dyn Directory) -> Memo<'a> {
        Memo {
            dir,
            answers: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    fn ask(&self, kind: u8, key: &str, f: impl FnOnce() -> Answer) -> Answer {
        let k = (kind, key.to_string());
        if let Some(a) = self.answers.lock().ok().and_then(|m| m.get(&k).cloned()) {
            return a;
        }
        let a = f();
        if let Ok(mut m) = self.answers.lock() {
            m.insert(k, a.clone());
        }
        a
    }
}

impl Directory for Memo<'_> {
    fn groups_of(&self, user: &str) -> Result<Vec<String>, String> {
        match self.ask(0, user, || Answer::Names(self.dir.groups_of(user))) {
            Answer::Names(r) => r,
            _ => Err("directory cache confused".into()),
        }
    }
    fn group_exists(&self, group: &str) -> Result<bool, String> {
        match self.ask(1, group, || Answer::Exists(self.dir.group_exists(group))) {
            Answer::Exists(r) => r,
            _ => Err("directory cache confused".into()),
        }
    }
    fn group_members(&self, group: &str) -> Result<Vec<String>, String> {
        match self.ask(2, group, || Answer::Names(self.dir.group_members(group))) {
            Answer::Names(r) => r,
            _ => Err("directory cache confused".into()),
        }
    }
    fn uid_of(&self, user: &str) -> Result<Option<u32>, String> {
        match self.ask(3, user, || Answer::Uid(self.dir.uid_of(user))) {
            Answer::Uid(r) => r,
            _ => Err("directory cache confused".into()),
        }
    }
    fn name_of(&self, uid: u32) -> Result<Option<String>, String> {
        match self.ask(4, &uid.to_string(), || Answer::Name(self.dir.name_of(uid))) {
            Answer::Name(r) => r,
            _ => Err("directory cache confused".into()),
        }
    }
    fn gid_of(&self, group: &str) -> Result<Option<u32>, String> {
        self.dir.gid_of(group)
    }
}

#[cfg(test)]
mod memo_tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    struct Counting(AtomicUsize);

    impl Directory for Counting {
        fn groups_of(&self, user: &str) -> Result<Vec<String>, String> {
            self.0.fetch_add(1, Ordering::Relaxed);
            match user {
                "alice" => Ok(vec!["ops".into()]),
                _ => Err(format!("no such user: {user}")),
            }
        }
        fn group_exists(&self, group: &str) -> Result<bool, String> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Ok(group == "ops")
        }
        fn group_members(&self, _group: &str) -> Result<Vec<String>, String> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Ok(vec!["alice".into()])
        }
        fn uid_of(&self, user: &str) -> Result<Option<u32>, String> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Ok((user == "alice").then_some(1000))
        }
        fn name_of(&self, uid: u32) -> Result<Option<String>, String> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Ok((uid == 1000).then(|| "alice".to_string()))
        }
    }

    #[test]
    fn given_the_same_questions_when_asked_through_a_memo_then_asked_once_with_the_same_answers() {
        let inner = Counting::default();
        let memo = Memo::new(&inner);
        for _ in 0..3 {
            assert_eq!(memo.groups_of("alice"), Ok(vec!["ops".to_string()]));
            assert!(memo.groups_of("bob").is_err());
            assert_eq!(memo.group_exists("ops"), Ok(true));
            assert_eq!(memo.group_exists("alice"), Ok(false));
            assert_eq!(memo.group_members("ops"), Ok(vec!["alice".to_string()]));
            assert_eq!(memo.uid_of("alice"), Ok(Some(1000)));
            assert_eq!(memo.name_of(1000), Ok(Some("alice".to_string())));
            assert_eq!(memo.name_of(7), Ok(None));
        }
        assert_eq!(inner.0.load(Ordering::Relaxed), 8);
    }
}
