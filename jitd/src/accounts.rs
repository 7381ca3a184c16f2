//! Ephemeral accounts (a role's `account = true`): a local account of the grant's own,
//! made and removed by the system's tools (`groupadd`, `useradd`, `userdel`, `groupdel`,
//! which take shadow-utils' locks), never by jitd writing `/etc/passwd`. Its uid comes from
//! a range of jitd's own ([`UID_MIN`]..=[`UID_MAX`]) and is never given twice (the
//! database keeps every uid it gave). Its SSH public keys are the requester's, checked
//! here and by `ssh-keygen`. Behind a trait, so the core's logic is tested without
//! touching any host's files.

use crate::names::GroupName;
use crate::validator::{Run, message_of, run_program};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The uids (and gids: each account's group has its uid as gid) jitd gives accounts.
/// Above the ranges Debian, systemd and useradd hand out (system accounts, users up to
/// 60000, systemd's dynamic users and containers below 0x70000000) and below 2^31.
pub const UID_MIN: u32 = 1_900_000_000;
pub const UID_MAX: u32 = 1_900_999_999;
/// Every account's name starts so: `jit-USER-ID`.
pub const PREFIX: &str = "jit-";
/// The longest user name shadow-utils and utmp keep.
pub const MAX_NAME: usize = 32;
/// Most keys one request may carry.
pub const MAX_KEYS: usize = 16;
/// Longest key line (an RSA key of 16384 bits is under 3 KiB in base64).
const MAX_KEY_LINE: usize = 8 * 1024;
/// Longest comment kept on a key (longer ones, or odd characters, are dropped).
const MAX_COMMENT: usize = 100;
/// Key types OpenSSH accepts today (DSA is gone from OpenSSH 9.8).
const KEY_TYPES: [&str; 7] = [
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];
/// How long one tool may run.
const TOOL_TIMEOUT: Duration = Duration::from_secs(30);
const PASSWD: &str = "/etc/passwd";
const GROUP: &str = "/etc/group";

/// The account name of grant `id` of `user`.
pub fn account_name(user: &str, id: u64) -> String {
    format!("{PREFIX}{user}-{id}")
}

/// The request an account name was made for (`jit-alice-17` -> 17), if it is one.
pub fn request_of(name: &str) -> Option<u64> {
    let rest = name.strip_prefix(PREFIX)?;
    let (user, id) = rest.rsplit_once('-')?;
    if user.is_empty() || id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    id.parse().ok()
}

/// Whether `uid` is one jitd gives accounts.
pub fn in_range(uid: u32) -> bool {
    (UID_MIN..=UID_MAX).contains(&uid)
}

/// One `authorized_keys` line as jitd writes it (`TYPE BASE64 [COMMENT]`), from a line as
/// given. Options (`from=`, `command=`) are refused rather than dropped: a key the user
/// restricted must not come back unrestricted.
pub fn parse_key(line: &str) -> Result<String, String> {
    let line = line.trim();
    if line.len() > MAX_KEY_LINE {
        return Err(format!("a key line is over {MAX_KEY_LINE} bytes"));
    }
    if line.chars().any(char::is_control) {
        return Err("a key line has control characters".into());
    }
    let mut parts = line.splitn(3, ' ');
    let kind = parts.next().unwrap_or_default();
    if !KEY_TYPES.contains(&kind) {
        return Err(if kind.contains('=') || kind.contains(',') {
            format!(
                "key options ({}) are not taken: give the bare key",
                crate::names::cut(kind, 40)
            )
        } else {
            format!(
                "'{}' is not a key type jit takes ({})",
                crate::names::cut(&crate::names::escape(kind), 40),
                KEY_TYPES.join(", ")
            )
        });
    }
    let blob = parts.next().unwrap_or_default();
    let base64 = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=');
    if blob.len() < 16 || !blob.bytes().all(base64) {
        return Err(format!("the {kind} key is not base64"));
    }
    let comment = parts.next().unwrap_or_default().trim();
    let plain = |c: char| c.is_ascii_alphanumeric() || "@._+-:".contains(c);
    if !comment.is_empty() && comment.len() <= MAX_COMMENT && comment.chars().all(plain) {
        Ok(format!("{kind} {blob} {comment}"))
    } else {
        Ok(format!("{kind} {blob}"))
    }
}

/// The keys of a request, each in the grammar and read by OpenSSH's own `ssh-keygen`, with
/// their fingerprints (`SHA256:...`). None is an error: an account nobody can log into is
/// of no use, and one with a key nobody checked is worse.
pub fn check_keys(keys: &[String]) -> Result<Vec<(String, String)>, String> {
    if keys.is_empty() {
        return Err("no SSH public key given".into());
    }
    if keys.len() > MAX_KEYS {
        return Err(format!("{} keys given; at most {MAX_KEYS}", keys.len()));
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for k in keys {
        let key = parse_key(k)?;
        let fp = fingerprint(&key)?;
        if !out.iter().any(|(_, f)| *f == fp) {
            out.push((key, fp));
        }
    }
    Ok(out)
}

/// `ssh-keygen -l` of one key line: its SHA256 fingerprint, or why it is not a key.
fn fingerprint(key: &str) -> Result<String, String> {
    let cmd = ["/usr/bin/ssh-keygen", "-l", "-E", "sha256", "-f", "-"].map(String::from);
    match run_program(&cmd, &[], format!("{key}\n").as_bytes(), TOOL_TIMEOUT) {
        Run::Exited {
            code: Some(0),
            stdout,
            ..
        } => String::from_utf8_lossy(&stdout)
            .split_whitespace()
            .nth(1)
            .filter(|f| f.starts_with("SHA256:"))
            .map(str::to_string)
            .ok_or_else(|| "ssh-keygen gave no fingerprint".into()),
        Run::Exited { stderr, stdout, .. } => Err(format!(
            "not a valid public key ({})",
            message_of(if stderr.is_empty() { &stdout } else { &stderr })
        )),
        Run::TimedOut => Err("ssh-keygen timed out".into()),
        Run::Failed(e) => Err(format!("{e} (package openssh-client)")),
    }
}

/// What a removal came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    Gone,
    /// Processes of the account still run: try again once they have ended.
    Busy,
}

/// Removes the home an account left behind once the account itself is gone (`userdel`
/// was interrupted, or the account was deleted by hand without it): only a real directory
/// (not a link), whose last component is the account's name, owned by the account's uid
/// (a uid nobody else is ever given), removed with `rm --one-file-system` run as a tool
/// (the home is the account's, 0700). Ok(true): it was there and is gone.
pub fn remove_left_home(home: &str, name: &str, uid: u32) -> Result<bool, String> {
    use std::os::unix::fs::MetadataExt;
    let path = Path::new(home);
    let plain = home.starts_with('/') && !home.contains("..") && !home.contains("//");
    if !plain || path.file_name().and_then(|n| n.to_str()) != Some(name) {
        return Err(format!(
            "{home} is not a home jitd would have made for {name}"
        ));
    }
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(format!("{home}: {e}")),
    };
    if !meta.file_type().is_dir() || meta.uid() != uid {
        return Err(format!(
            "{home} is not a directory of uid {uid}: left in place"
        ));
    }
    let cmd = args(&["/usr/bin/rm", "-rf", "--one-file-system", "--", home]);
    match crate::privileges::run_tool(&cmd, TOOL_TIMEOUT) {
        Run::Exited { code: Some(0), .. } if !path.exists() => Ok(true),
        Run::Exited { stderr, .. } => Err(format!("rm {home}: {}", message_of(&stderr))),
        Run::TimedOut => Err(format!("rm {home} timed out")),
        Run::Failed(e) => Err(e),
    }
}

/// Where anyone may leave files: an account's files there go with it.
const SHARED_TEMP: [&str; 3] = ["/tmp", "/var/tmp", "/dev/shm"];

/// Deletes every file and directory of `uid` under the shared temporary directories (one
/// file system each, links never followed): what an account leaves there would outlive it,
/// and a setgid copy of a program in one of the role's groups would keep that group for
/// anyone. Run as a tool (`find`, which needs CAP_FOWNER in sticky directories). Returns how
/// many it deleted, or what went wrong (a directory of the account holding others' files
/// stays).
pub fn sweep_temp(uid: u32) -> Result<usize, String> {
    let dirs: Vec<&str> = SHARED_TEMP
        .into_iter()
        .filter(|d| Path::new(d).is_dir())
        .collect();
    if dirs.is_empty() {
        return Ok(0);
    }
    let mut cmd = vec!["/usr/bin/find".to_string()];
    cmd.extend(dirs.iter().map(ToString::to_string));
    cmd.extend(args(&[
        "-xdev",
        "-uid",
        &uid.to_string(),
        "-print",
        "-delete",
    ]));
    match crate::privileges::run_tool(&cmd, TOOL_TIMEOUT) {
        Run::Exited {
            code: Some(0),
            stdout,
            ..
        } => Ok(String::from_utf8_lossy(&stdout).lines().count()),
        Run::Exited { stderr, .. } => Err(format!("find: {}", message_of(&stderr))),
        Run::TimedOut => Err("find in the temporary directories timed out".into()),
        Run::Failed(e) => Err(e),
    }
}

/// An account to make.
#[derive(Debug, Clone)]
pub struct NewAccount<'a> {
    pub name: &'a str,
    pub uid: u32,
    pub shell: &'a str,
    /// Supplementary groups the account is made in.
    pub groups: &'a [GroupName],
    /// Its `authorized_keys` lines ([`parse_key`]'s form).
    pub keys: &'a [String],
    /// The GECOS field: what the account is for.
    pub comment: String,
}

/// Makes and removes accounts.
pub trait AccountEditor: Send {
    /// Makes the account (its group, the account with its home and keys), and says where
    /// its home is. Made already with this uid (jitd stopped half-way): finished, not an
    /// error.
    fn create(&self, a: &NewAccount<'_>) -> Result<String, String>;
    /// Removes the account `name` if it still has `uid`, and its group; with `home`, its
    /// home too (`userdel --remove`, which leaves a home the account does not own). Gone
    /// already: [`Removal::Gone`]. While processes of the account run `userdel` refuses:
    /// [`Removal::Busy`], to be tried again.
    fn remove(&self, name: &str, uid: u32, home: bool) -> Result<Removal, String>;
    /// (name, uid) of every account in jitd's range.
    fn in_range(&self) -> Result<Vec<(String, u32)>, String>;
    /// Whether an account or group has `id` as its uid or gid.
    fn id_taken(&self, id: u32) -> Result<bool, String>;
}

/// No account making at all: what a core has until jitd gives it [`ShadowTools`]. Every
/// use is an error, so a grant of an account is refused (and revoked), never half-given.
pub struct NoAccounts;

const NO_ACCOUNTS: &str = "accounts cannot be made by this jitd";

impl AccountEditor for NoAccounts {
    fn create(&self, _: &NewAccount<'_>) -> Result<String, String> {
        Err(NO_ACCOUNTS.into())
    }
    fn remove(&self, _: &str, _: u32, _: bool) -> Result<Removal, String> {
        Err(NO_ACCOUNTS.into())
    }
    fn in_range(&self) -> Result<Vec<(String, u32)>, String> {
        Err(NO_ACCOUNTS.into())
    }
    fn id_taken(&self, _: u32) -> Result<bool, String> {
        Err(NO_ACCOUNTS.into())
    }
}

/// shadow-utils' tools, run with the capabilities jitd keeps for them
/// ([`crate::privileges::run_tool`]); `/etc/passwd` and `/etc/group` read back.
pub struct ShadowTools {
    /// Where jitd puts each account's skeleton (its `.ssh/authorized_keys`) for `useradd -k`.
    skel_root: PathBuf,
}

/// One line of `/etc/passwd`: (name, uid, home).
fn passwd_entries(text: &str) -> Vec<(String, u32, String)> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() == 7).then_some(())?;
            Some((f[0].to_string(), f[2].parse().ok()?, f[5].to_string()))
        })
        .collect()
}

/// (name, gid) of every line of `/etc/group`.
fn group_entries(text: &str) -> Vec<(String, u32)> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() == 4).then_some(())?;
            Some((f[0].to_string(), f[2].parse().ok()?))
        })
        .collect()
}

fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}"))
}

/// Runs a tool; Ok(exit code) when it ran to an end.
fn tool(cmd: &[String]) -> Result<(i32, String), String> {
    let what = cmd.first().map(String::as_str).unwrap_or_default();
    match crate::privileges::run_tool(cmd, TOOL_TIMEOUT) {
        Run::Exited {
            code: Some(c),
            stderr,
            stdout,
        } => Ok((
            c,
            message_of(if stderr.is_empty() { &stdout } else { &stderr }),
        )),
        Run::Exited { code: None, .. } => Err(format!("{what} was killed")),
        Run::TimedOut => Err(format!("{what} timed out")),
        Run::Failed(e) => Err(e),
    }
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(ToString::to_string).collect()
}

impl ShadowTools {
    pub fn new(skel_root: PathBuf) -> ShadowTools {
        ShadowTools { skel_root }
    }

    fn entry(name: &str) -> Result<Option<(u32, String)>, String> {
        Ok(passwd_entries(&read(PASSWD)?)
            .into_iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, uid, home)| (uid, home)))
    }

    fn group_gid(name: &str) -> Result<Option<u32>, String> {
        Ok(group_entries(&read(GROUP)?)
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, gid)| gid))
    }

    /// The skeleton `useradd -k` copies: `.ssh/authorized_keys` with the account's keys.
    fn skeleton(&self, a: &NewAccount<'_>) -> Result<PathBuf, String> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let dir = self.skel_root.join(a.name);
        let err = |e: std::io::Error| format!("preparing {}: {e}", dir.display());
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(err)?;
        }
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true).mode(0o700);
        b.create(dir.join(".ssh")).map_err(err)?;
        let mut text = a.keys.join("\n");
        text.push('\n');
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dir.join(".ssh/authorized_keys"))
            .map_err(err)?;
        std::io::Write::write_all(&mut f, text.as_bytes()).map_err(err)?;
        f.sync_all().map_err(err)?;
        Ok(dir)
    }

    fn forget_skeleton(&self, name: &str) {
        let dir = self.skel_root.join(name);
        if dir.exists()
            && let Err(e) = std::fs::remove_dir_all(&dir)
        {
            tracing::warn!("removing {}: {e}", dir.display());
        }
    }
}

impl AccountEditor for ShadowTools {
    fn create(&self, a: &NewAccount<'_>) -> Result<String, String> {
        let (name, id) = (a.name, a.uid.to_string());
        match ShadowTools::entry(name)? {
            Some((uid, home)) if uid == a.uid => return self.finished(a, &home),
            Some((uid, _)) => return Err(format!("an account {name} exists already (uid {uid})")),
            None => {}
        }
        match ShadowTools::group_gid(name)? {
            Some(gid) if gid == a.uid => {}
            Some(gid) => return Err(format!("a group {name} exists already (gid {gid})")),
            None => match tool(&args(&["/usr/sbin/groupadd", "-g", &id, name]))? {
                (0, _) => {}
                (c, msg) => return Err(format!("groupadd -g {id} {name} failed ({c}): {msg}")),
            },
        }
        let skel = self.skeleton(a)?;
        let groups: Vec<&str> = a.groups.iter().map(GroupName::as_str).collect();
        let mut cmd = args(&[
            "/usr/sbin/useradd",
            "--uid",
            &id,
            "--gid",
            &id,
            "--create-home",
            "--skel",
            &skel.to_string_lossy(),
            "--shell",
            a.shell,
            "--comment",
            &a.comment,
            // No password at all (`*`: nothing matches it), and not locked (`!`), which
            // sshd without PAM would refuse key logins for.
            "--password",
            "*",
            // Not in lastlog/faillog: at uids this high they are sparse files of 500 GB.
            "--no-log-init",
            // The home is the account's alone (Debian's default is 0755).
            "--key",
            "HOME_MODE=0700",
        ]);
        if !groups.is_empty() {
            cmd.extend(args(&["--groups", &groups.join(",")]));
        }
        cmd.push(name.to_string());
        let made = tool(&cmd);
        let out = match made? {
            (0, _) => match ShadowTools::entry(name)? {
                Some((uid, home)) if uid == a.uid => self.finished(a, &home),
                _ => Err(format!("useradd {name} exited 0 but made no such account")),
            },
            (c, msg) => Err(format!("useradd {name} failed ({c}): {msg}")),
        };
        self.forget_skeleton(name);
        out
    }

    fn remove(&self, name: &str, uid: u32, home: bool) -> Result<Removal, String> {
        if let Some((now_uid, _)) = ShadowTools::entry(name)? {
            if now_uid != uid {
                return Err(format!(
                    "{name} now has uid {now_uid}, not {uid}: not jitd's to remove"
                ));
            }
            let mut cmd = args(&["/usr/sbin/userdel"]);
            if home {
                cmd.push("--remove".into());
            }
            cmd.push(name.into());
            match tool(&cmd)? {
                // 6: gone already; 12: the account went but not all of its home.
                (0 | 6, _) => {}
                (12, msg) => tracing::warn!("userdel {name}: {msg}"),
                (8, _) => return Ok(Removal::Busy),
                (c, msg) => return Err(format!("userdel {name} failed ({c}): {msg}")),
            }
            if ShadowTools::entry(name)?.is_some() {
                return Err(format!("userdel {name} left the account in {PASSWD}"));
            }
        }
        // USERGROUPS_ENAB removes the account's group with it; otherwise it goes here.
        if ShadowTools::group_gid(name)? == Some(uid) {
            match tool(&args(&["/usr/sbin/groupdel", name]))? {
                (0 | 6, _) => {}
                (c, msg) => return Err(format!("groupdel {name} failed ({c}): {msg}")),
            }
        }
        self.forget_skeleton(name);
        Ok(Removal::Gone)
    }

    fn in_range(&self) -> Result<Vec<(String, u32)>, String> {
        Ok(passwd_entries(&read(PASSWD)?)
            .into_iter()
            .filter(|(_, uid, _)| in_range(*uid))
            .map(|(n, uid, _)| (n, uid))
            .collect())
    }

    /// In the files, and through NSS (an LDAP or SSSD account in the range counts too).
    fn id_taken(&self, id: u32) -> Result<bool, String> {
        let nss = |e: nix::Error| format!("looking up id {id}: {e}");
        Ok(passwd_entries(&read(PASSWD)?)
            .iter()
            .any(|(_, uid, _)| *uid == id)
            || group_entries(&read(GROUP)?)
                .iter()
                .any(|(_, gid)| *gid == id)
            || nix::unistd::User::from_uid(id.into())
                .map_err(nss)?
                .is_some()
            || nix::unistd::Group::from_gid(id.into())
                .map_err(nss)?
                .is_some())
    }
}

impl ShadowTools {
    /// The account is there: its keys must be too, owned by it (useradd exits 0 and leaves
    /// `.ssh` out when it lacks a capability). Read with `stat` run as a tool: jitd itself
    /// cannot look inside the account's 0700 `.ssh`.
    fn finished(&self, a: &NewAccount<'_>, home: &str) -> Result<String, String> {
        if !home.starts_with('/') || home.contains("..") {
            return Err(format!("{} has home '{home}'", a.name));
        }
        let keys = Path::new(home).join(".ssh/authorized_keys");
        let cmd = args(&["/usr/bin/stat", "--format=%u %a", &keys.to_string_lossy()]);
        let want = format!("{} 600", a.uid);
        match crate::privileges::run_tool(&cmd, TOOL_TIMEOUT) {
            Run::Exited {
                code: Some(0),
                stdout,
                ..
            } if String::from_utf8_lossy(&stdout).trim() == want => Ok(home.to_string()),
            _ => Err(format!(
                "{} was made without its keys ({} missing or not the account's)",
                a.name,
                keys.display()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_account_names_then_their_request_comes_out_and_nothing_else_parses() {
        assert_eq!(account_name("alice", 17), "jit-alice-17");
        assert_eq!(request_of("jit-alice-17"), Some(17));
        assert_eq!(request_of("jit-a-b-9"), Some(9));
        for bad in [
            "jit-alice",
            "jit--17",
            "jit-alice-",
            "jit-alice-1x",
            "alice-17",
            "jit-17",
        ] {
            assert_eq!(request_of(bad), None, "{bad}");
        }
        assert!(in_range(UID_MIN) && in_range(UID_MAX));
        assert!(!in_range(UID_MIN - 1) && !in_range(UID_MAX + 1) && !in_range(1000));
    }

    #[test]
    fn given_key_lines_when_parsed_then_bare_keys_pass_and_options_or_junk_are_refused() {
        let blob = "AAAAC3NzaC1lZDI1NTE5AAAAIO1MYxyJd0yuDx4PMGVGLHFmVNnGR2D8yUdxfr1cQ4Gv";
        assert_eq!(
            parse_key(&format!("ssh-ed25519 {blob} alice@laptop")).unwrap(),
            format!("ssh-ed25519 {blob} alice@laptop")
        );
        // A comment with odd characters is dropped, not written.
        assert_eq!(
            parse_key(&format!("ssh-ed25519 {blob} $(reboot) <b>")).unwrap(),
            format!("ssh-ed25519 {blob}")
        );
        let opts = parse_key(&format!("from=\"10.0.0.1\" ssh-ed25519 {blob}")).unwrap_err();
        assert!(opts.contains("options"), "{opts}");
        assert!(parse_key(&format!("ssh-dss {blob}")).is_err());
        assert!(parse_key("ssh-ed25519 not*base64*at*all").is_err());
        assert!(parse_key(&format!("ssh-ed25519 {blob}\ncommand=x")).is_err());
        assert!(parse_key(&format!("ssh-ed25519 {}", "A".repeat(9000))).is_err());
        assert!(check_keys(&[]).is_err());
        let many: Vec<String> = (0..17).map(|_| format!("ssh-ed25519 {blob}")).collect();
        assert!(check_keys(&many).unwrap_err().contains("at most"));
    }

    #[test]
    fn given_passwd_and_group_text_then_entries_come_out_exactly() {
        let p = "root:x:0:0:root:/root:/bin/bash\njit-a-1:x:1900000001:1900000001:c:/home/jit-a-1:/bin/sh\nodd:x:zz:0::/:/bin/sh\nshort:x:1\n";
        assert_eq!(
            passwd_entries(p),
            vec![
                ("root".into(), 0, "/root".into()),
                ("jit-a-1".into(), 1_900_000_001, "/home/jit-a-1".into())
            ]
        );
        assert_eq!(
            group_entries("root:x:0:\njit-a-1:x:1900000001:\nbad:x:q:\n"),
            vec![("root".into(), 0), ("jit-a-1".into(), 1_900_000_001)]
        );
    }
}
