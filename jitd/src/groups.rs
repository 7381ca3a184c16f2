//! Temporary group membership: the system's own tool edits `/etc/group` and `/etc/gshadow`
//! (`gpasswd`, which takes shadow-utils' locks), never jitd by hand. Behind a trait, so the
//! core's logic is tested without touching any host's files.

use crate::validator::{Run, message_of};
use std::time::Duration;

/// How long one `gpasswd` may run.
const TOOL_TIMEOUT: Duration = Duration::from_secs(10);
/// Where Debian keeps the tool (and where others do).
const GPASSWD: [&str; 2] = ["/usr/bin/gpasswd", "/usr/sbin/gpasswd"];
/// The files the tool edits, read to see what it did.
const GROUP_FILE: &str = "/etc/group";

/// Adds and removes supplementary group members.
pub trait GroupEditor: Send {
    /// Whether `user` is in `group` now: a supplementary member in the group file, or the
    /// group is the user's primary group.
    fn is_member(&self, user: &str, group: &str) -> Result<bool, String>;
    fn add(&self, user: &str, group: &str) -> Result<(), String>;
    fn remove(&self, user: &str, group: &str) -> Result<(), String>;
    /// The group's gid (None: no such group).
    fn gid(&self, group: &str) -> Result<Option<u32>, String>;
}

/// No group editing at all: what a core has until jitd gives it [`Gpasswd`]. Every use is
/// an error, so a grant of groups is refused (and revoked), never half-given.
pub struct NoGroups;

impl GroupEditor for NoGroups {
    fn is_member(&self, _: &str, _: &str) -> Result<bool, String> {
        Err("group membership cannot be edited by this jitd".into())
    }
    fn add(&self, _: &str, _: &str) -> Result<(), String> {
        Err("group membership cannot be edited by this jitd".into())
    }
    fn remove(&self, _: &str, _: &str) -> Result<(), String> {
        Err("group membership cannot be edited by this jitd".into())
    }
    fn gid(&self, _: &str) -> Result<Option<u32>, String> {
        Err("group membership cannot be edited by this jitd".into())
    }
}

/// shadow-utils' `gpasswd -a`/`-d`, and `/etc/group` read back.
pub struct Gpasswd;

impl Gpasswd {
    fn run(&self, flag: &str, user: &str, group: &str) -> Result<(), String> {
        let Some(tool) = GPASSWD.iter().find(|p| std::path::Path::new(p).exists()) else {
            return Err("gpasswd not found (package passwd)".into());
        };
        // Names come from the strict grammar (no leading '-', no separators).
        let cmd = [tool.to_string(), flag.into(), user.into(), group.into()];
        match crate::privileges::run_tool(&cmd, TOOL_TIMEOUT) {
            Run::Exited { code: Some(0), .. } => Ok(()),
            Run::Exited { code, stderr, .. } => Err(format!(
                "gpasswd {flag} {user} {group} failed ({}): {}",
                code.map_or_else(|| "killed".into(), |c| format!("status {c}")),
                message_of(&stderr)
            )),
            Run::TimedOut => Err(format!("gpasswd {flag} {user} {group} timed out")),
            Run::Failed(e) => Err(e),
        }
    }

    /// (gid, members) of `group` in the group file.
    fn entry(group: &str) -> Result<Option<(u32, Vec<String>)>, String> {
        let text = std::fs::read_to_string(GROUP_FILE)
            .map_err(|e| format!("reading {GROUP_FILE}: {e}"))?;
        Ok(parse_group_file(&text, group))
    }
}

/// (gid, members) of `group` in text in the format of `/etc/group`.
pub fn parse_group_file(text: &str, group: &str) -> Option<(u32, Vec<String>)> {
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() != 4 || f[0] != group {
            return None;
        }
        let gid = f[2].parse().ok()?;
        let members = f[3]
            .split(',')
            .filter(|m| !m.is_empty())
            .map(str::to_string)
            .collect();
        Some((gid, members))
    })
}

impl GroupEditor for Gpasswd {
    fn is_member(&self, user: &str, group: &str) -> Result<bool, String> {
        let Some((gid, members)) = Gpasswd::entry(group)? else {
            return Err(format!("no group '{group}' in {GROUP_FILE}"));
        };
        if members.iter().any(|m| m == user) {
            return Ok(true);
        }
        let primary = nix::unistd::User::from_name(user)
            .map_err(|e| format!("looking up user {user}: {e}"))?
            .ok_or_else(|| format!("no such user: {user}"))?
            .gid
            .as_raw();
        Ok(primary == gid)
    }

    fn add(&self, user: &str, group: &str) -> Result<(), String> {
        self.run("-a", user, group)?;
        match self.is_member(user, group)? {
            true => Ok(()),
            false => Err(format!("gpasswd -a {user} {group} left {user} out")),
        }
    }

    fn remove(&self, user: &str, group: &str) -> Result<(), String> {
        self.run("-d", user, group)?;
        let still = Gpasswd::entry(group)?.is_some_and(|(_, m)| m.iter().any(|x| x == user));
        match still {
            false => Ok(()),
            true => Err(format!("gpasswd -d {user} {group} left {user} in")),
        }
    }

    fn gid(&self, group: &str) -> Result<Option<u32>, String> {
        Ok(Gpasswd::entry(group)?.map(|(gid, _)| gid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_group_file_lines_when_read_then_gid_and_members_come_out_exactly() {
        let text = "root:x:0:\ndocker:x:998:bob,carol\ndock:x:5:alice\nbad:x:zz:alice\nodd:x:7\n";
        assert_eq!(
            parse_group_file(text, "docker"),
            Some((998, vec!["bob".into(), "carol".into()]))
        );
        assert_eq!(parse_group_file(text, "root"), Some((0, vec![])));
        assert_eq!(
            parse_group_file(text, "dock"),
            Some((5, vec!["alice".into()]))
        );
        assert_eq!(parse_group_file(text, "doc"), None);
        assert_eq!(parse_group_file(text, "bad"), None);
        assert_eq!(parse_group_file(text, "odd"), None);
    }
}
