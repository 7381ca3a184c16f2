//! Ephemeral sudoers rules: rendering from validated data, and atomic, visudo-checked
//! writes into the sudoers directory.
//!
//! Grants are spread over [`SHARDS`] files named `jit-s00` .. `jit-s0f` (from
//! `[A-Za-z0-9_-]` only); grant `id` lives in shard `id % SHARDS`. sudo opens and parses every
//! file in the directory on every run, whoever runs it, so the layout is what sudo parses
//! fastest (bench/RESULTS.md, 5a): one file per grant made `sudo` 4.7x slower at 1,000
//! grants, 16 shards of one rule per grant 2.2x; most of what remains is parsing command
//! lists, so a shard names each distinct command list once, as a `Cmnd_Alias`
//! (`JITD_S<shard>_<n>`; the `JITD_` prefix is jitd's), each grant's rule names its
//! alias, and one comment line lists the grants' ids. A shard is always rewritten whole
//! from the database's active grants: to a dotted temp name in the same directory (sudo
//! ignores names with a dot), checked with `visudo -c -q -f`, fsynced, made 0440, renamed
//! into place, and the directory is fsynced. An empty shard is removed.

use crate::faults::{self, Point};
use crate::files::not_ours;
use crate::names::{self, Command as RuleCommand, RoleName, UserName};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// File-name prefix of every file jitd owns in the sudoers directory.
pub const FILE_PREFIX: &str = "jit-";
/// How many files the grants are spread over.
pub const SHARDS: u32 = 16;
/// The prefix of the command aliases jitd defines in its shards (sudoers aliases share one
/// namespace across every file; an alias of the same name elsewhere would be an error).
pub const ALIAS_PREFIX: &str = "JITD_";
/// visudo, used to check every file before it is renamed into place.
pub const VISUDO: &str = "/usr/sbin/visudo";

/// Why a rule or shard could not be rendered, checked or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SudoersError(pub String);

impl From<String> for SudoersError {
    fn from(s: String) -> SudoersError {
        SudoersError(s)
    }
}

impl From<names::NameError> for SudoersError {
    fn from(e: names::NameError) -> SudoersError {
        SudoersError(e.0)
    }
}

impl From<&str> for SudoersError {
    fn from(s: &str) -> SudoersError {
        SudoersError(s.to_string())
    }
}

/// Where sudoers rules go: [`SudoersDir`] in jitd; a fake in unit tests. Rules live in
/// shards ([`shard_of`]); a shard is always written whole.
pub trait Rules: Send {
    /// Makes the shard hold exactly `rules` (none: no file).
    fn write_shard(&self, shard: u32, rules: &[Rule]) -> Result<(), SudoersError>;
    /// Whether the shard is exactly as `rules` would render.
    fn shard_matches(&self, shard: u32, rules: &[Rule]) -> bool;
    /// Invalidates the user's cached sudo credentials (`sudo -K` for them).
    fn clear_timestamps(&self, user: &UserName) -> Result<(), SudoersError>;
    fn owned(&self) -> Result<Owned, SudoersError>;
    fn remove_owned(&self, name: &str) -> Result<(), SudoersError>;
    fn location(&self) -> String;
}

/// What one rule says. Names and commands are validated types: only the shape of the rule
/// (at least one target and command, an end) is left for [`render`] to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub grant_id: u64,
    pub user: UserName,
    pub role: RoleName,
    /// Target users (`(root, postgres)`); at least one.
    pub run_as: Vec<UserName>,
    pub commands: Vec<RuleCommand>,
    /// Unix seconds; rendered as `NOTAFTER=` (one second earlier, see [`render`]) so sudo
    /// refuses on its own from this moment, even if jitd is dead.
    pub not_after: i64,
    /// `PASSWD` (re-authenticate at each use) instead of `NOPASSWD`.
    pub reauth: bool,
    /// With a directory: `LOG_INPUT:`/`LOG_OUTPUT:`, and the user's sessions are recorded in
    /// `<dir>/<user>` (sudoreplay -d), set by a `Defaults:<user>` line beside the rule.
    pub iolog_dir: Option<String>,
}

/// The shard a grant's rule lives in.
pub fn shard_of(grant_id: u64) -> u32 {
    u32::try_from(grant_id % u64::from(SHARDS)).unwrap_or(0)
}

/// `jit-s07`: the file name of a shard.
pub fn shard_file(shard: u32) -> String {
    format!("{FILE_PREFIX}s{shard:02x}")
}

/// The shard a file name denotes, or None for anything else.
pub fn shard_of_file(name: &str) -> Option<u32> {
    let hex = name.strip_prefix(FILE_PREFIX)?.strip_prefix('s')?;
    if hex.len() != 2
        || !hex
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    {
        return None;
    }
    u32::from_str_radix(hex, 16).ok().filter(|n| *n < SHARDS)
}

/// `YYYYMMDDHHMMSSZ` in UTC, as sudoers' `NOTAFTER` wants it.
pub fn sudoers_time(unix: i64) -> String {
    jit_proto::format_rfc3339(unix)
        .chars()
        .filter(char::is_ascii_digit)
        .chain(std::iter::once('Z'))
        .collect()
}

/// Renders the rule, or refuses one that is incomplete.
pub fn render(rule: &Rule) -> Result<String, SudoersError> {
    Ok(format!(
        "# jitd grant {}: {}, role {}\n{}",
        rule.grant_id,
        rule.user,
        rule.role,
        render_with(rule, &joined(&rule.commands))?
    ))
}

/// The rule of a grant (and its `Defaults` line, if it logs I/O), its commands given as
/// `commands` (the list itself, or the alias that names it).
fn render_with(rule: &Rule, commands: &str) -> Result<String, SudoersError> {
    if rule.run_as.is_empty() {
        return Err("a rule needs at least one run_as user".into());
    }
    if rule.commands.is_empty() {
        return Err("a rule needs at least one command".into());
    }
    if rule.not_after <= 0 {
        return Err("a rule needs an end time".into());
    }
    let mut tags = String::from(if rule.reauth { "PASSWD:" } else { "NOPASSWD:" });
    let mut defaults = String::new();
    if let Some(dir) = &rule.iolog_dir {
        names::validate_dir_path("iolog_dir", dir)?;
        tags.push_str(" LOG_INPUT: LOG_OUTPUT:");
        defaults = format!("Defaults:{user} iolog_dir={dir}/{user}\n", user = rule.user);
    }
    // sudo accepts a rule through the whole second named by NOTAFTER (it refuses only when
    // now > NOTAFTER), so the last second it may run in is not_after - 1.
    Ok(format!(
        "{defaults}{user} ALL = ({run_as}) NOTAFTER={na} {tags} {commands}\n",
        user = rule.user,
        run_as = joined(&rule.run_as),
        na = sudoers_time(rule.not_after - 1),
    ))
}

fn joined<T: std::ops::Deref<Target = str>>(items: &[T]) -> String {
    items.iter().map(|i| &**i).collect::<Vec<&str>>().join(", ")
}

/// What is in the sudoers directory under jitd's prefix.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Owned {
    /// Shard files present.
    pub shards: Vec<u32>,
    /// Other `jit-*` names (an older layout, or planted): never valid, always removed.
    pub foreign: Vec<String>,
    /// Dotted temp files a crash left behind.
    pub temps: Vec<String>,
    /// Names of jitd's that hold something jitd never creates (a symlink, a FIFO, a
    /// directory, a file with other hard links or another owner), with what it is.
    pub planted: Vec<(String, String)>,
}

/// Renders a shard: every rule must be valid and belong to the shard, or nothing is.
pub fn render_shard(shard: u32, rules: &[Rule]) -> Result<String, SudoersError> {
    // No comment per rule: sudo reads every character of every file on every run, and
    // 1,000 such comments cost it as much as 100 rules (bench/RESULTS.md, 5a). The ids of
    // the grants, in the order of their rules, are one line; `jitctl list --all` says
    // whose each is and until when.
    let ids: Vec<String> = rules.iter().map(|r| r.grant_id.to_string()).collect();
    let mut out = format!(
        "# {} - managed by jitd: ephemeral JIT grants, rewritten on every change. Do not edit.\n\
         # grants: {}\n",
        shard_file(shard),
        ids.join(" ")
    );
    // Each distinct command list once, named by an alias of this shard's.
    let mut lists: Vec<String> = Vec::new();
    for r in rules {
        if shard_of(r.grant_id) != shard {
            return Err(SudoersError(format!(
                "grant {} does not belong to shard {shard}",
                r.grant_id
            )));
        }
        let list = joined(&r.commands);
        if !lists.contains(&list) {
            lists.push(list);
        }
    }
    let alias = |n: usize| format!("{ALIAS_PREFIX}S{shard:02X}_{}", n + 1);
    for (n, list) in lists.iter().enumerate() {
        out.push_str(&format!("Cmnd_Alias {} = {list}\n", alias(n)));
    }
    for r in rules {
        let list = joined(&r.commands);
        let n = lists.iter().position(|l| *l == list).unwrap_or_default();
        out.push_str(&render_with(r, &alias(n))?);
    }
    Ok(out)
}

/// The sudoers directory jitd writes into.
#[derive(Debug, Clone)]
pub struct SudoersDir {
    dir: PathBuf,
    visudo: PathBuf,
}

impl SudoersDir {
    /// Opens the directory after checking it is a real, root-owned directory that nobody
    /// else can write to.
    pub fn open(dir: &Path) -> Result<SudoersDir, SudoersError> {
        let meta = fs::symlink_metadata(dir)
            .map_err(|e| format!("sudoers directory {}: {e}", dir.display()))?;
        if !meta.file_type().is_dir() {
            return Err(SudoersError(format!(
                "sudoers directory {} is not a directory (symlinks are refused)",
                dir.display()
            )));
        }
        if meta.uid() != 0 || meta.mode() & 0o022 != 0 {
            return Err(SudoersError(format!(
                "sudoers directory {} must be owned by root and not group/world-writable",
                dir.display()
            )));
        }
        Ok(SudoersDir {
            dir: dir.to_path_buf(),
            visudo: PathBuf::from(VISUDO),
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Rewrites a shard atomically with exactly `rules` (removes it when there are none).
    /// On any error nothing new is left in the directory and the old file stays as it was.
    pub fn write_shard(&self, shard: u32, rules: &[Rule]) -> Result<(), SudoersError> {
        let name = shard_file(shard);
        if rules.is_empty() {
            return self.remove_name(&name);
        }
        let content = render_shard(shard, rules)?;
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let dest = self.dir.join(&name);
        // A stale temp from a crash: unlink never follows a symlink.
        let _ = fs::remove_file(&tmp);
        let result = self.write_checked(&tmp, &dest, &content);
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn write_checked(&self, tmp: &Path, dest: &Path, content: &str) -> Result<(), SudoersError> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o440)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(tmp)
            .map_err(|e| format!("creating {}: {e}", tmp.display()))?;
        f.write_all(content.as_bytes())
            .map_err(|e| format!("writing {}: {e}", tmp.display()))?;
        f.set_permissions(fs::Permissions::from_mode(0o440))
            .map_err(|e| format!("chmod {}: {e}", tmp.display()))?;
        f.sync_all()
            .map_err(|e| format!("fsync {}: {e}", tmp.display()))?;
        drop(f);
        faults::reached(Point::AfterWrite);
        self.visudo_check(tmp)?;
        if let Ok(meta) = fs::symlink_metadata(dest)
            && !meta.file_type().is_file()
        {
            return Err(SudoersError(format!(
                "{} exists and is not a regular file; refusing to replace it",
                dest.display()
            )));
        }
        fs::rename(tmp, dest).map_err(|e| format!("renaming into {}: {e}", dest.display()))?;
        faults::reached(Point::AfterRename);
        self.sync_dir()
    }

    fn visudo_check(&self, file: &Path) -> Result<(), SudoersError> {
        let out = Command::new(&self.visudo)
            .arg("-c")
            .arg("-q")
            .arg("-f")
            .arg(file)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running {}: {e}", self.visudo.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(SudoersError(format!(
                "visudo refused the generated rule: {}",
                names::escape(String::from_utf8_lossy(&out.stderr).trim())
            )))
        }
    }

    fn sync_dir(&self) -> Result<(), SudoersError> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| format!("fsync {}: {e}", self.dir.display()))?;
        faults::reached(Point::AfterDirSync);
        Ok(())
    }

    fn remove_name(&self, name: &str) -> Result<(), SudoersError> {
        match fs::remove_file(self.dir.join(name)) {
            Ok(()) => {
                faults::reached(Point::AfterUnlink);
                self.sync_dir()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("removing {}: {e}", self.dir.join(name).display()).into()),
        }
    }

    /// Everything under jitd's prefix in the directory.
    pub fn owned(&self) -> Result<Owned, SudoersError> {
        let mut owned = Owned::default();
        let rd =
            fs::read_dir(&self.dir).map_err(|e| format!("listing {}: {e}", self.dir.display()))?;
        for entry in rd {
            let entry = entry.map_err(|e| format!("listing {}: {e}", self.dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let ours = shard_of_file(&name).is_some()
                || name.starts_with(FILE_PREFIX)
                || (name.starts_with(&format!(".{FILE_PREFIX}")) && name.ends_with(".tmp"));
            if ours {
                let meta = fs::symlink_metadata(entry.path())
                    .map_err(|e| format!("inspecting {}: {e}", entry.path().display()))?;
                if let Some(what) = not_ours(&meta) {
                    owned.planted.push((name, what));
                    continue;
                }
            }
            if let Some(shard) = shard_of_file(&name) {
                owned.shards.push(shard);
            } else if name.starts_with(FILE_PREFIX) {
                owned.foreign.push(name);
            } else if name.starts_with(&format!(".{FILE_PREFIX}")) && name.ends_with(".tmp") {
                owned.temps.push(name);
            }
        }
        owned.shards.sort_unstable();
        Ok(owned)
    }

    /// Removes a file by a name [`SudoersDir::owned`] returned (never anything else).
    pub fn remove_owned(&self, name: &str) -> Result<(), SudoersError> {
        let ours = name.starts_with(FILE_PREFIX)
            || (name.starts_with(&format!(".{FILE_PREFIX}")) && name.ends_with(".tmp"));
        if !ours || name.contains('/') {
            return Err(format!("{name} is not a jitd file").into());
        }
        self.remove_name(name)
    }

    /// Whether the shard is exactly as it would be rendered from `rules` (absent if none),
    /// as a root-owned 0440 regular file.
    pub fn shard_matches(&self, shard: u32, rules: &[Rule]) -> bool {
        let path = self.dir.join(shard_file(shard));
        let meta = fs::symlink_metadata(&path);
        if rules.is_empty() {
            return meta.is_err();
        }
        let Ok(want) = render_shard(shard, rules) else {
            return false;
        };
        match meta {
            Ok(m) if m.file_type().is_file() && m.mode() & 0o7777 == 0o440 && m.uid() == 0 => {
                fs::read_to_string(&path).is_ok_and(|have| have == want)
            }
            _ => false,
        }
    }
}

/// The newest session sudo records for `user` below `iolog_base` (see [`Rule::iolog_dir`]):
/// sudo's `seq` file there names it (`00/00/2A` for `00002A`). None if there is none yet.
pub fn newest_iolog(iolog_base: &str, user: &UserName) -> Option<String> {
    let dir = Path::new(iolog_base).join(user.as_str());
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(dir.join("seq"))
        .ok()?;
    let mut buf = [0u8; 16];
    let n = std::io::Read::read(&mut f, &mut buf).ok()?;
    let seq = std::str::from_utf8(&buf[..n]).ok()?.trim();
    if seq.len() != 6
        || !seq
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
    {
        return None;
    }
    let path = dir.join(&seq[0..2]).join(&seq[2..4]).join(&seq[4..6]);
    fs::symlink_metadata(&path)
        .is_ok_and(|m| m.is_dir())
        .then(|| path.display().to_string())
}

/// Where sudo keeps its cached credentials ("time stamps"), one file per user.
pub const SUDO_TS_DIR: &str = "/run/sudo/ts";

/// Invalidates `user`'s cached sudo credentials, as `sudo -K` would for them.
pub fn clear_timestamps(user: &UserName) -> Result<(), SudoersError> {
    match fs::remove_file(Path::new(SUDO_TS_DIR).join(user.as_str())) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("clearing sudo time stamps of {user}: {e}").into()),
    }
}

impl Rules for SudoersDir {
    fn write_shard(&self, shard: u32, rules: &[Rule]) -> Result<(), SudoersError> {
        SudoersDir::write_shard(self, shard, rules)
    }
    fn shard_matches(&self, shard: u32, rules: &[Rule]) -> bool {
        SudoersDir::shard_matches(self, shard, rules)
    }
    fn clear_timestamps(&self, user: &UserName) -> Result<(), SudoersError> {
        clear_timestamps(user)
    }
    fn owned(&self) -> Result<Owned, SudoersError> {
        SudoersDir::owned(self)
    }
    fn remove_owned(&self, name: &str) -> Result<(), SudoersError> {
        SudoersDir::remove_owned(self, name)
    }
    fn location(&self) -> String {
        self.dir.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> Rule {
        Rule {
            grant_id: 17,
            user: "alice".into(),
            role: "web-restart".into(),
            run_as: vec!["root".into()],
            commands: vec![
                "/usr/bin/systemctl restart nginx".into(),
                "/usr/bin/systemctl status nginx".into(),
            ],
            not_after: 1_795_272_120,
            reauth: false,
            iolog_dir: None,
        }
    }

    #[test]
    fn given_valid_grant_when_rendered_then_one_rule_with_notafter() {
        let text = render(&rule()).unwrap();
        assert_eq!(
            text.lines().nth(1).unwrap(),
            "alice ALL = (root) NOTAFTER=20261121144159Z NOPASSWD: \
             /usr/bin/systemctl restart nginx, /usr/bin/systemctl status nginx"
        );
        assert_eq!(text.lines().count(), 2);
        assert_eq!(
            text.lines().next().unwrap(),
            "# jitd grant 17: alice, role web-restart"
        );
    }

    #[test]
    fn given_reauth_role_when_rendered_then_passwd_tag() {
        let r = Rule {
            reauth: true,
            ..rule()
        };
        assert!(render(&r).unwrap().contains(" PASSWD: /usr/bin"));
    }

    #[test]
    fn given_io_logging_and_two_targets_when_rendered_then_tags_and_runas_list() {
        let r = Rule {
            iolog_dir: Some("/var/log/sudo-io/jit".into()),
            run_as: vec!["root".into(), "postgres".into()],
            ..rule()
        };
        let text = render(&r).unwrap();
        assert!(
            text.contains("(root, postgres) NOTAFTER=20261121144159Z NOPASSWD: LOG_INPUT: LOG_OUTPUT: /usr/bin"),
            "{text}"
        );
        assert_eq!(
            text.lines().nth(1).unwrap(),
            "Defaults:alice iolog_dir=/var/log/sudo-io/jit/alice"
        );
        for bad in [
            "relative/dir",
            "/var/log/%{user}",
            "/var/../etc",
            "/a b",
            "/",
        ] {
            let r = Rule {
                iolog_dir: Some(bad.into()),
                ..rule()
            };
            assert!(render(&r).is_err(), "{bad}");
        }
    }

    #[test]
    fn given_hostile_fields_when_rendered_then_refused() {
        // Hostile names cannot reach a rule: the only way to make one is the grammar.
        for u in [
            "ALL",
            "alice\nroot ALL=(ALL) ALL",
            "root, ALL",
            "%sudo",
            "#0",
        ] {
            assert!(UserName::new(u).is_err(), "{u:?}");
        }
        for c in [
            "ALL",
            "/bin/sh, /bin/bash",
            "/usr/bin/sudoedit /etc/shadow",
            "sudoedit",
        ] {
            assert!(RuleCommand::new(c).is_err(), "{c:?}");
        }
        // What the types cannot say, render refuses.
        let bad = [
            Rule {
                run_as: vec![],
                ..rule()
            },
            Rule {
                commands: vec![],
                ..rule()
            },
            Rule {
                not_after: 0,
                ..rule()
            },
        ];
        for r in bad {
            assert!(render(&r).is_err(), "{r:?}");
        }
    }

    #[test]
    fn shard_names_round_trip_and_foreign_names_are_not_shards() {
        assert_eq!(shard_of(17), 1);
        assert_eq!(shard_file(1), "jit-s01");
        assert_eq!(shard_file(15), "jit-s0f");
        for s in 0..SHARDS {
            assert_eq!(shard_of_file(&shard_file(s)), Some(s));
        }
        for foreign in [
            "README",
            "jit-",
            "jit-s",
            "jit-s1",
            "jit-s10",
            "jit-sff",
            "jit-s0F",
            "jit-17-alice",
            ".jit-s01.tmp",
        ] {
            assert_eq!(shard_of_file(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn given_rules_of_another_shard_when_rendering_a_shard_then_refused() {
        let r = rule();
        assert!(render_shard(shard_of(r.grant_id), std::slice::from_ref(&r)).is_ok());
        assert!(render_shard(shard_of(r.grant_id) + 1, &[r]).is_err());
    }

    #[test]
    fn given_grants_sharing_command_lists_when_a_shard_is_rendered_then_each_list_once_as_an_alias()
    {
        let other = Rule {
            grant_id: 17 + u64::from(SHARDS),
            user: UserName::new("bob").unwrap(),
            ..rule()
        };
        let third = Rule {
            grant_id: 17 + 2 * u64::from(SHARDS),
            commands: vec!["/usr/bin/id".into()],
            ..rule()
        };
        let text = render_shard(1, &[rule(), other, third]).unwrap();
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            lines,
            [
                "Cmnd_Alias JITD_S01_1 = /usr/bin/systemctl restart nginx, \
                 /usr/bin/systemctl status nginx",
                "Cmnd_Alias JITD_S01_2 = /usr/bin/id",
                "alice ALL = (root) NOTAFTER=20261121144159Z NOPASSWD: JITD_S01_1",
                "bob ALL = (root) NOTAFTER=20261121144159Z NOPASSWD: JITD_S01_1",
                "alice ALL = (root) NOTAFTER=20261121144159Z NOPASSWD: JITD_S01_2",
            ]
        );
        assert!(text.contains("\n# grants: 17 33 49\n"), "{text}");
    }

    #[test]
    fn sudoers_time_is_utc_compact() {
        assert_eq!(sudoers_time(0), "19700101000000Z");
        assert_eq!(sudoers_time(1_795_272_120), "20261121144200Z");
    }
}
