//! The world every end-to-end test runs in.
//!
//! Each [`World`] lives in a private mount namespace of the test's own thread, where
//! `/etc/passwd`, `/etc/group`, `/etc/shadow`, `/etc/sudoers`, `/etc/sudoers.d`,
//! `/etc/pam.d` and `/run/sudo` are bind-mounted copies: test users, rules and PAM
//! lines never touch the host. It runs a private system-like `dbus-daemon` with the project's
//! bus policy, and a real `jitd`; `sudo`, `jitctl` and `visudo` are the real programs.
//! Every process it starts is stopped, by its PID, when the world is dropped.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod fleet;

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Where the workspace's binaries are: `$JIT_BIN_DIR`, else `target/debug`.
pub fn bin_dir() -> PathBuf {
    std::env::var_os("JIT_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug"))
}

pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.is_file(),
        "{} is missing: build the workspace first (cargo build --workspace), or set JIT_BIN_DIR",
        p.display()
    );
    p
}

/// The sudoers file jitd keeps grant `id` in (`jit-s<id % 16, two hex digits>`).
pub fn shard_file(id: u64) -> String {
    format!("jit-s{:02x}", id % 16)
}

/// The grant ids a shard's text says it holds (its `# grants: 17 33` line), in the order
/// of their rules.
pub fn grants_in(shard_text: &str) -> Vec<u64> {
    shard_text
        .lines()
        .find_map(|l| l.strip_prefix("# grants: "))
        .map(|ids| {
            ids.split_whitespace()
                .map(|id| id.parse().expect("a grant id"))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the (world's) sudoers directory holds the rule of grant `id`.
pub fn has_rule(id: u64) -> bool {
    fs::read_to_string(Path::new("/etc/sudoers.d").join(shard_file(id)))
        .is_ok_and(|s| grants_in(&s).contains(&id))
}

/// pam_jit.so and pam_jit_bus.so (which pam_jit loads from its own directory when it
/// needs the bus) copied into `dir`, as install.sh puts them; the module's path.
pub fn install_module(dir: &Path) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    for (built, installed) in [
        ("libpam_jit.so", "pam_jit.so"),
        ("libpam_jit_bus.so", "pam_jit_bus.so"),
    ] {
        fs::copy(bin(built), dir.join(installed)).unwrap();
        fs::set_permissions(dir.join(installed), fs::Permissions::from_mode(0o644)).unwrap();
    }
    dir.join("pam_jit.so")
}

/// The password every test user has.
pub const PASSWORD: &str = "correct horse";
/// Test users' uids start here.
const FIRST_UID: u32 = 42001;

/// Polls `f` until it returns Some, or panics after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Held by a test whose worlds act machine-wide (ending every process of a uid, or of a uid
/// carrying a gid, that every world numbers alike): such tests of one test program run one
/// at a time.
pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Moves this thread (and every process it starts from now on) into a private mount
/// namespace, so mounts made here never reach the host.
pub fn private_mount_namespace() {
    unshare(CloneFlags::CLONE_NEWNS).expect("unshare(CLONE_NEWNS)");
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .expect("making / private");
}

/// Output of a finished command, with helpers for assertions.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.code == 0
    }
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.all()))
    }
}

/// Runs a command with `stdin`, killing it (by PID) if it outlives `timeout`.
pub fn run(mut cmd: Command, stdin: &str, timeout: Duration) -> Run {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap());
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin.as_bytes());
    }
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out: Output = match rx.recv_timeout(timeout) {
        Ok(r) => r.unwrap(),
        Err(_) => {
            let _ = kill(pid, Signal::SIGKILL);
            panic!("{cmd:?} did not finish within {timeout:?}");
        }
    };
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

const BUS_POLICY_DEFAULT: &str = r#"
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus" send_member="UpdateActivationEnvironment"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Debug.Stats"/>
  </policy>
"#;

/// A permissive bus policy that lets anyone call jitd's PAM interface: used only to show
/// that jitd itself still refuses non-root callers.
pub const LAX_BUS_POLICY: &str = r#"<busconfig>
  <policy user="root"><allow own="org.jit.Jitd"/></policy>
  <policy context="default"><allow send_destination="org.jit.Jitd"/></policy>
</busconfig>"#;

/// Describes a world before it is built: users, groups, policy, PAM lines.
pub struct Builder {
    users: Vec<(String, Vec<String>)>,
    groups: Vec<String>,
    policy: String,
    pam_auth_args: String,
    pam_account_args: String,
    static_rules: String,
    bus_policy: Option<String>,
    start_jitd: bool,
    activation: bool,
    sshd: Option<String>,
    /// pam_jit's auth line for sshd, with `AuthenticationMethods publickey,keyboard-interactive`.
    ssh_auth: Option<String>,
    /// sshd's AuthenticationMethods (default: publickey, or the pair with `ssh_auth`).
    ssh_methods: Option<String>,
    /// pam_jit's `socket=` argument; `None`: the world's own PAM socket.
    pam_socket_arg: Option<String>,
    /// `/etc` a private writable copy (system tools that replace files there by rename,
    /// like `gpasswd`, cannot work on bind-mounted files).
    writable_etc: bool,
    /// `/home` and `/var/log` private and empty (see [`Builder::accounts`]).
    private_home: bool,
    /// sshd also reads `~/.ssh/authorized_keys` (the accounts jitd makes).
    home_keys: bool,
}

/// pam_jit's account line for sshd (`mode=ssh`), the gate for ssh logins.
pub const SSH_ACCOUNT_JIT: &str = "mode=ssh timeout=5";

impl Builder {
    pub fn new() -> Builder {
        Builder {
            users: Vec::new(),
            groups: Vec::new(),
            policy: String::new(),
            pam_auth_args: "wait=20".into(),
            pam_account_args: String::new(),
            static_rules: String::new(),
            bus_policy: None,
            start_jitd: true,
            activation: false,
            sshd: None,
            ssh_auth: None,
            ssh_methods: None,
            pam_socket_arg: None,
            writable_etc: false,
            private_home: false,
            home_keys: false,
        }
    }

    /// For ephemeral accounts: a writable `/etc` ([`Builder::writable_etc`]) for
    /// `useradd`/`userdel`, `/home` and `/var/log` as private empty file systems (homes are
    /// made there; sshd's lastlog goes there), and sshd reading each account's
    /// `~/.ssh/authorized_keys` besides the world's keys.
    pub fn accounts(mut self) -> Self {
        self.writable_etc = true;
        self.private_home = true;
        self.home_keys = true;
        self
    }

    /// A group of this world with no members yet (users name their groups in `user`).
    pub fn group(mut self, name: &str) -> Self {
        if !self.groups.iter().any(|g| g == name) {
            self.groups.push(name.to_string());
        }
        self
    }

    /// `/etc` as a private writable copy with the world's users and groups written into it
    /// (and `/etc/gshadow` to match), so the system's own tools (`gpasswd`) edit them there.
    pub fn writable_etc(mut self) -> Self {
        self.writable_etc = true;
        self
    }

    /// pam_jit's `socket=` argument on every line (`none`: the bus only; a path nobody
    /// serves: the bus as the fallback). Default: the socket this world's jitd serves.
    pub fn pam_socket_arg(mut self, arg: &str) -> Self {
        self.pam_socket_arg = Some(arg.to_string());
        self
    }

    /// Runs a real sshd on 127.0.0.1 (PAM service `sshd-jittest`, public keys only) with
    /// pam_jit's account line given these arguments (bus is set); None: without pam_jit.
    pub fn sshd(mut self, account_args: Option<&str>) -> Self {
        self.sshd = Some(account_args.map(str::to_string).unwrap_or_default());
        self
    }

    /// sshd also asks for a grant at login: `AuthenticationMethods
    /// publickey,keyboard-interactive`, and pam_jit's auth line (`mode=ssh`) with these
    /// arguments (bus is set). Needs [`Builder::sshd`].
    pub fn ssh_keyboard_interactive(mut self, auth_args: &str) -> Self {
        self.ssh_auth = Some(auth_args.to_string());
        self
    }

    /// sshd's `AuthenticationMethods`, in place of the default.
    pub fn ssh_methods(mut self, methods: &str) -> Self {
        self.ssh_methods = Some(methods.to_string());
        self
    }

    /// A user with a password ([`PASSWORD`]) and supplementary groups.
    pub fn user(mut self, name: &str, groups: &[&str]) -> Self {
        for g in groups {
            if !self.groups.iter().any(|x| x == g) {
                self.groups.push((*g).to_string());
            }
        }
        self.users.push((
            name.to_string(),
            groups.iter().map(|g| (*g).to_string()).collect(),
        ));
        self
    }

    /// The policy file's text.
    pub fn policy(mut self, toml: &str) -> Self {
        self.policy = toml.to_string();
        self
    }

    /// Extra arguments for pam_jit in the auth and account lines (mode and bus are set).
    pub fn pam_args(mut self, auth: &str, account: &str) -> Self {
        self.pam_auth_args = auth.to_string();
        self.pam_account_args = account.to_string();
        self
    }

    /// Standing rules in /etc/sudoers.d/static (what an admin had before pam_jit).
    pub fn static_rule(mut self, line: &str) -> Self {
        self.static_rules.push_str(line);
        self.static_rules.push('\n');
        self
    }

    /// Replace the project's bus policy file.
    pub fn bus_policy(mut self, xml: &str) -> Self {
        self.bus_policy = Some(xml.to_string());
        self
    }

    pub fn without_jitd(mut self) -> Self {
        self.start_jitd = false;
        self
    }

    /// jitd is not started; the bus starts it on the first call, from the project's
    /// activation file (conf/dbus/org.jit.Jitd.service) with `Exec=` pointed at this
    /// world's jitd and its arguments.
    pub fn bus_activation(mut self) -> Self {
        self.start_jitd = false;
        self.activation = true;
        self
    }

    pub fn build(self) -> World {
        World::new(self)
    }
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

pub struct World {
    pub dir: tempfile::TempDir,
    pub bus: String,
    bus_daemon: Child,
    jitd: Option<Child>,
    sshd: Option<Child>,
    pub ssh_port: u16,
    pub policy_path: PathBuf,
    pub state_dir: PathBuf,
    /// The PAM socket this world's jitd serves.
    pub pam_socket: PathBuf,
    /// Extra environment for jitd (e.g. the service manager's `NOTIFY_SOCKET`).
    pub jitd_env: Vec<(String, String)>,
    /// Extra arguments for jitd (e.g. `--syslog-socket`).
    pub jitd_args: Vec<String>,
    /// `/etc` is a private copy mounted by this world (see [`Builder::writable_etc`]).
    writable_etc: bool,
    private_home: bool,
    home_keys: bool,
}

fn write(path: &Path, text: &str, mode: u32) {
    fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn bind(src: &Path, dst: &str) {
    mount(Some(src), dst, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .unwrap_or_else(|e| panic!("bind-mounting {} on {dst}: {e}", src.display()));
}

/// The names of the accounts and groups in `passwd` and `group` text whose id is in jitd's
/// own uid range (what a jit installed on the host made).
pub fn jit_range_names(passwd: &str, group: &str) -> Vec<String> {
    passwd
        .lines()
        .chain(group.lines())
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let id: u32 = f.get(2)?.parse().ok()?;
            jitd::accounts::in_range(id).then(|| f[0].to_string())
        })
        .collect()
}

/// Takes the host's accounts in jitd's range out of the account files of an `/etc` copy
/// mounted at /etc (see [`jit_range_names`]).
pub fn drop_jit_range_accounts() {
    let names = jit_range_names(
        &fs::read_to_string("/etc/passwd").unwrap(),
        &fs::read_to_string("/etc/group").unwrap(),
    );
    if names.is_empty() {
        return;
    }
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    for f in ["/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow"] {
        let Ok(text) = fs::read_to_string(f) else {
            continue;
        };
        fs::write(f, without_world_entries(&text, &names)).unwrap();
    }
}

/// The lines of a copy of `/etc/passwd`, `/etc/group` or `/etc/shadow` without the
/// entries that could collide with the world's: those named like a world user or group,
/// those whose uid or gid is in the world's range, and world users in host groups' member
/// lists (a host `sudo:x:27:alice` must not make the world's alice a member of `sudo`).
fn without_world_entries(text: &str, names: &[&str]) -> String {
    let world_id = |f: Option<&str>| {
        f.and_then(|v| v.parse::<u32>().ok())
            .is_some_and(|id| (FIRST_UID..FIRST_UID + 1000).contains(&id))
    };
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut fields: Vec<&str> = line.split(':').collect();
        // passwd has 7 fields, group 4 (their third is the id); shadow's third is a date.
        let id = matches!(fields.len(), 4 | 7).then(|| fields[2]);
        if fields.first().is_some_and(|n| names.contains(n)) || world_id(id) {
            continue;
        }
        let members;
        if fields.len() == 4 && !fields[3].is_empty() {
            members = fields[3]
                .split(',')
                .filter(|m| !names.contains(m))
                .collect::<Vec<_>>()
                .join(",");
            fields[3] = &members;
        }
        out.push_str(&fields.join(":"));
        out.push('\n');
    }
    out
}

fn password_hash() -> String {
    let out = Command::new("openssl")
        .args(["passwd", "-6", PASSWORD])
        .output()
        .expect("openssl");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

impl World {
    fn new(b: Builder) -> World {
        assert!(
            nix::unistd::geteuid().is_root(),
            "end-to-end tests must run as root: they mount a private /etc in a mount namespace"
        );
        private_mount_namespace();

        let dir = tempfile::Builder::new()
            .prefix("jit-e2e-")
            .tempdir()
            .unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let d = dir.path();

        // Users and groups: the host's, minus anything that could collide with the world's
        // (an admin may have created `alice` or `jit-approvers`), plus the world's.
        // And the host's accounts in jitd's own uid range (a jit installed on this host made
        // them): a world's jitd would take them for planted ones.
        let (host_passwd, host_group) = (
            fs::read_to_string("/etc/passwd").unwrap(),
            fs::read_to_string("/etc/group").unwrap(),
        );
        let in_jit_range = jit_range_names(&host_passwd, &host_group);
        let names: Vec<&str> = b
            .users
            .iter()
            .map(|(n, _)| n.as_str())
            .chain(b.groups.iter().map(String::as_str))
            .chain(in_jit_range.iter().map(String::as_str))
            .collect();
        let mut passwd = without_world_entries(&host_passwd, &names);
        let mut group = without_world_entries(&host_group, &names);
        let mut shadow = without_world_entries(&fs::read_to_string("/etc/shadow").unwrap(), &names);
        let hash = password_hash();
        let mut members: Vec<(String, Vec<String>)> =
            b.groups.iter().map(|g| (g.clone(), Vec::new())).collect();
        for (i, (name, groups)) in b.users.iter().enumerate() {
            let uid = FIRST_UID + u32::try_from(i).unwrap();
            writeln!(passwd, "{name}:x:{uid}:{uid}::/tmp:/bin/sh").unwrap();
            writeln!(group, "{name}:x:{uid}:").unwrap();
            writeln!(shadow, "{name}:{hash}:19000:0:99999:7:::").unwrap();
            for g in groups {
                if let Some(m) = members.iter_mut().find(|(n, _)| n == g) {
                    m.1.push(name.clone());
                }
            }
        }
        for (i, (g, m)) in members.iter().enumerate() {
            let gid = FIRST_UID + 500 + u32::try_from(i).unwrap();
            writeln!(group, "{g}:x:{gid}:{}", m.join(",")).unwrap();
        }
        write(&d.join("passwd"), &passwd, 0o644);
        write(&d.join("group"), &group, 0o644);
        write(&d.join("shadow"), &shadow, 0o640);

        // sudo: a minimal, hermetic /etc/sudoers; an empty sudoers.d; private time stamps.
        write(
            &d.join("sudoers"),
            "Defaults env_reset\nDefaults !lecture\nDefaults !mail_no_user, !mail_badpass\n\
             Defaults passwd_tries=3\nroot ALL=(ALL:ALL) ALL\n@includedir /etc/sudoers.d\n",
            0o440,
        );
        let sudoers_d = d.join("sudoers.d");
        fs::create_dir(&sudoers_d).unwrap();
        fs::set_permissions(&sudoers_d, fs::Permissions::from_mode(0o755)).unwrap();
        if !b.static_rules.is_empty() {
            write(&sudoers_d.join("static"), &b.static_rules, 0o440);
        }
        let run_sudo = d.join("run-sudo");
        fs::create_dir(&run_sudo).unwrap();
        fs::set_permissions(&run_sudo, fs::Permissions::from_mode(0o711)).unwrap();

        // The private bus.
        let bus_socket = d.join("bus.sock");
        let bus = format!("unix:path={}", bus_socket.display());
        let pam_socket = d.join("pam.socket");
        // Every pam_jit line names its channels: the private bus, and this world's PAM
        // socket (never the host's /run/jitd).
        let chan = format!(
            "bus={bus} socket={}",
            b.pam_socket_arg
                .clone()
                .unwrap_or_else(|| pam_socket.display().to_string())
        );
        let busd = d.join("bus.d");
        fs::create_dir(&busd).unwrap();
        let project_policy = fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf/dbus/org.jit.Jitd.conf"),
        )
        .unwrap();
        write(
            &busd.join("org.jit.Jitd.conf"),
            b.bus_policy.as_deref().unwrap_or(&project_policy),
            0o644,
        );
        let policy_path = d.join("jit.toml");
        let state_dir = d.join("state");
        let mut servicedir = String::new();
        if b.activation {
            let services = d.join("services");
            fs::create_dir(&services).unwrap();
            let file = fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf/dbus/org.jit.Jitd.service"),
            )
            .unwrap();
            let exec = format!(
                "Exec={} --config {} --state-dir {} --sudoers-dir /etc/sudoers.d --bus {bus} \
                 --pam-socket {} --pid-file {} --log-file {}",
                bin("jitd").display(),
                policy_path.display(),
                state_dir.display(),
                pam_socket.display(),
                d.join("jitd.pid").display(),
                d.join("jitd.log").display()
            );
            let shipped =
                "Exec=/usr/sbin/jitd --pid-file /run/jitd.pid --log-file /var/log/jitd.log";
            assert!(file.contains(&format!("\n{shipped}\n")), "{file}");
            write(
                &services.join("org.jit.Jitd.service"),
                &file.replace(shipped, &exec),
                0o644,
            );
            servicedir = format!("<servicedir>{}</servicedir>\n", services.display());
        }
        write(
            &d.join("bus.conf"),
            &format!(
                "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\" \
                 \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n<busconfig>\n\
                 <type>system</type>\n<auth>EXTERNAL</auth>\n<listen>{bus}</listen>\n{BUS_POLICY_DEFAULT}\n\
                 {servicedir}<includedir>{}</includedir>\n</busconfig>\n",
                busd.display()
            ),
            0o644,
        );

        // PAM: real authentication first (pam_unix), then pam_jit, from a directory of its
        // own with its bus library beside it, as installed.
        let module = install_module(&d.join("security"));
        let pam = format!(
            "auth     required pam_unix.so\n\
             auth     optional {m} mode=sudo {chan} timeout=5 {auth}\n\
             account  required pam_unix.so\n\
             account  required {m} mode=sudo {chan} timeout=5 {acct}\n\
             session  required pam_permit.so\n\
             session  optional {m} mode=sudo {chan} timeout=5\n",
            m = module.display(),
            auth = b.pam_auth_args,
            acct = b.pam_account_args,
        );
        write(&d.join("pam-sudo"), &pam, 0o644);

        // A private /etc/pam.d (for the sshd service file), with the sudo file on top.
        let pam_d = d.join("pam.d");
        let cp = Command::new("cp")
            .arg("-a")
            .arg("/etc/pam.d")
            .arg(&pam_d)
            .status()
            .unwrap();
        assert!(cp.success());
        // Public keys are the real authentication; pam_jit's auth (when asked for) is the
        // keyboard-interactive step after them. No password stack at all.
        let ssh_auth = match &b.ssh_auth {
            Some(args) => format!("auth     required {} {chan} {args}\n", module.display()),
            None => "auth     required pam_deny.so\n".to_string(),
        };
        let ssh_pam = match &b.sshd {
            Some(args) if !args.is_empty() => format!(
                "{ssh_auth}account  required pam_unix.so\naccount  required {m} {chan} {args}\n\
                 session  required pam_permit.so\nsession  optional {m} {chan} {args}\n",
                m = module.display()
            ),
            _ => format!(
                "{ssh_auth}account  required pam_unix.so\nsession  required pam_permit.so\n"
            ),
        };
        write(&pam_d.join("sshd-jittest"), &ssh_pam, 0o644);
        // sudo's login shells (`sudo -i`) use the `sudo-i` service: the same stack.
        write(&pam_d.join("sudo-i"), &pam, 0o644);

        if b.writable_etc {
            // A copy of /etc with the world's files in it (gshadow made to match the group
            // file, as gpasswd edits both), mounted over /etc; the binds below go on top.
            let etc = d.join("etc");
            let r = run(
                {
                    let mut c = Command::new("cp");
                    c.arg("-a").arg("/etc").arg(&etc);
                    c
                },
                "",
                Duration::from_secs(60),
            );
            assert!(r.ok(), "copying /etc: {}", r.all());
            for f in ["passwd", "group", "shadow"] {
                fs::copy(d.join(f), etc.join(f)).unwrap();
            }
            let gshadow: String = group
                .lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    (f.len() == 4).then(|| format!("{}:!::{}\n", f[0], f[3]))
                })
                .collect();
            write(&etc.join("gshadow"), &gshadow, 0o640);
            bind(&etc, "/etc");
            bind(&d.join("sudoers"), "/etc/sudoers");
        } else {
            for f in ["passwd", "group", "shadow", "sudoers"] {
                bind(&d.join(f), &format!("/etc/{f}"));
            }
        }
        if b.private_home {
            for dir in ["/home", "/var/log"] {
                mount(
                    Some("tmpfs"),
                    dir,
                    Some("tmpfs"),
                    MsFlags::empty(),
                    Some("mode=0755"),
                )
                .unwrap_or_else(|e| panic!("mounting a private {dir}: {e}"));
            }
        }
        bind(&sudoers_d, "/etc/sudoers.d");
        bind(&pam_d, "/etc/pam.d");
        bind(&d.join("pam-sudo"), "/etc/pam.d/sudo");
        fs::create_dir_all("/run/sudo").unwrap();
        bind(&run_sudo, "/run/sudo");

        let bus_daemon = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", d.join("bus.conf").display()))
            .arg("--nofork")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(d.join("dbus.log")).unwrap())
            .spawn()
            .expect("dbus-daemon");
        wait_for("the private bus socket", Duration::from_secs(10), || {
            bus_socket.exists().then_some(())
        });

        write(&policy_path, &b.policy, 0o644);
        let mut world = World {
            state_dir,
            pam_socket,
            dir,
            bus,
            bus_daemon,
            jitd: None,
            sshd: None,
            ssh_port: 0,
            policy_path,
            jitd_env: Vec::new(),
            jitd_args: Vec::new(),
            writable_etc: b.writable_etc,
            private_home: b.private_home,
            home_keys: b.home_keys,
        };
        if b.start_jitd {
            world.start_jitd();
        }
        if b.sshd.is_some() {
            let users: Vec<&str> = b.users.iter().map(|(n, _)| n.as_str()).collect();
            let methods = match (&b.ssh_methods, &b.ssh_auth) {
                (Some(m), _) => m.as_str(),
                (None, Some(_)) => "publickey,keyboard-interactive",
                (None, None) => "publickey",
            };
            world.start_sshd(&users, methods);
        }
        world
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Host key, a key per user, and sshd on a free loopback port, run through a symlink so
    /// its PAM service is `sshd-jittest`.
    fn start_sshd(&mut self, users: &[&str], methods: &str) {
        let d = self.dir.path().to_path_buf();
        let keys = d.join("keys");
        fs::create_dir(&keys).unwrap();
        let keygen = |path: &Path| {
            let r = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(path)
                .status()
                .unwrap();
            assert!(r.success());
        };
        keygen(&d.join("hostkey"));
        for u in users {
            keygen(&keys.join(u));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        write(
            &d.join("sshd_config"),
            &format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nPidFile {pid}\nUsePAM yes\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication {kbd}\n\
                 PubkeyAuthentication yes\nAuthenticationMethods {methods}\n\
                 AuthorizedKeysFile {keys}/%u.pub{home_keys}\nStrictModes no\nPermitRootLogin no\n\
                 LogLevel ERROR\n",
                kbd = if methods.contains("keyboard-interactive") {
                    "yes"
                } else {
                    "no"
                },
                hk = d.join("hostkey").display(),
                pid = d.join("sshd.pid").display(),
                keys = keys.display(),
                home_keys = if self.home_keys {
                    " .ssh/authorized_keys"
                } else {
                    ""
                },
            ),
            0o600,
        );
        fs::create_dir_all("/run/sshd").unwrap();
        let link = d.join("sshd-jittest");
        std::os::unix::fs::symlink("/usr/sbin/sshd", &link).unwrap();
        let child = Command::new(&link)
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(d.join("sshd.log")).unwrap())
            .spawn()
            .expect("sshd");
        self.sshd = Some(child);
        self.ssh_port = port;
        wait_for("sshd to listen", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
    }

    /// The ssh client with `user`'s key, for this world's sshd (options may follow: the
    /// first value of an option wins).
    fn ssh_base(&self, user: &str) -> Command {
        let mut c = Command::new("ssh");
        c.arg("-i")
            .arg(self.dir.path().join("keys").join(user))
            .args(["-p", &self.ssh_port.to_string()])
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
            ]);
        c
    }

    /// The ssh client command logging in as `user` with their key and running `cmd`.
    pub fn ssh_command(&self, user: &str, cmd: &str) -> Command {
        self.ssh_as(user, user, cmd)
    }

    /// The ssh client command logging in as `login` with `key_of`'s key (an ephemeral
    /// account, with its requester's key) and running `cmd`.
    pub fn ssh_as(&self, key_of: &str, login: &str, cmd: &str) -> Command {
        let mut c = self.ssh_base(key_of);
        c.args(["-o", "BatchMode=yes", "-o", "LogLevel=ERROR"])
            .arg(format!("{login}@127.0.0.1"))
            .arg(cmd);
        c
    }

    /// As [`World::ssh_command`], on a terminal of its own on the server (`ssh -tt`).
    pub fn ssh_terminal(&self, user: &str, cmd: &str) -> Command {
        let mut c = self.ssh_base(user);
        c.args(["-tt", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"])
            .arg(format!("{user}@127.0.0.1"))
            .arg(cmd);
        c
    }

    /// The ssh client logging in as `user` with their key, then answering sshd's
    /// keyboard-interactive prompts through an askpass program (`SSH_ASKPASS_REQUIRE=force`)
    /// that records every prompt in `<world>/prompts-<user>` and answers `role`, `reason`,
    /// an empty duration (the role's default), and Enter to keep waiting. Client messages at
    /// INFO, so what sshd sends (banners, PAM messages) is on stderr.
    pub fn ssh_interactive(&self, user: &str, role: &str, reason: &str, cmd: &str) -> Command {
        let askpass = self.path().join("askpass");
        if !askpass.exists() {
            write(
                &askpass,
                "#!/bin/sh\n\
                 printf '%s\\n--\\n' \"$1\" >> \"$JIT_PROMPTS\"\n\
                 case \"$1\" in\n\
                 *'role (Enter to skip)'*) echo \"$JIT_ROLE\" ;;\n\
                 *'jit: reason'*) echo \"$JIT_REASON\" ;;\n\
                 *) echo ;;\n\
                 esac\n",
                0o755,
            );
        }
        let mut c = self.ssh_base(user);
        c.args([
            "-o",
            "PreferredAuthentications=publickey,keyboard-interactive",
            "-o",
            "NumberOfPasswordPrompts=1",
            "-o",
            "LogLevel=INFO",
        ])
        .arg(format!("{user}@127.0.0.1"))
        .arg(cmd)
        .env("SSH_ASKPASS", &askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("JIT_PROMPTS", self.path().join(format!("prompts-{user}")))
        .env("JIT_ROLE", role)
        .env("JIT_REASON", reason);
        c
    }

    /// What the askpass of [`World::ssh_interactive`] was asked, in order.
    pub fn ssh_prompts(&self, user: &str) -> String {
        fs::read_to_string(self.path().join(format!("prompts-{user}"))).unwrap_or_default()
    }

    /// Logs in as `user` over ssh and runs `cmd`.
    pub fn ssh(&self, user: &str, cmd: &str) -> Run {
        run(self.ssh_command(user, cmd), "", Duration::from_secs(60))
    }

    /// The jitd command line this world uses.
    pub fn jitd_command(&self) -> Command {
        let mut c = Command::new(bin("jitd"));
        c.arg("--config")
            .arg(&self.policy_path)
            .arg("--state-dir")
            .arg(&self.state_dir)
            .arg("--sudoers-dir")
            .arg("/etc/sudoers.d")
            .arg("--bus")
            .arg(&self.bus)
            .arg("--pam-socket")
            .arg(&self.pam_socket)
            .args(&self.jitd_args);
        c
    }

    /// Starts jitd and waits until it owns its bus name.
    pub fn start_jitd(&mut self) {
        assert!(self.jitd.is_none(), "jitd already running");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path().join("jitd.log"))
            .unwrap();
        let child = self
            .jitd_command()
            .envs(self.jitd_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("jitd");
        self.jitd = Some(child);
        wait_for("jitd to own org.jit.Jitd", Duration::from_secs(10), || {
            if let Some(Ok(Some(status))) = self.jitd.as_mut().map(Child::try_wait) {
                panic!("jitd exited early ({status}):\n{}", self.jitd_log());
            }
            self.name_has_owner().then_some(())
        });
    }

    fn name_has_owner(&self) -> bool {
        let mut c = Command::new("busctl");
        c.arg(format!("--address={}", self.bus))
            .args(["call", "org.freedesktop.DBus", "/org/freedesktop/DBus"])
            .args([
                "org.freedesktop.DBus",
                "NameHasOwner",
                "s",
                jit_proto::BUS_NAME,
            ]);
        run(c, "", Duration::from_secs(10)).stdout.trim() == "b true"
    }

    /// Stops jitd with `signal` (SIGTERM, or SIGKILL to simulate a crash) and reaps it.
    pub fn stop_jitd(&mut self, signal: Signal) {
        if let Some(mut child) = self.jitd.take() {
            let pid = Pid::from_raw(i32::try_from(child.id()).unwrap());
            let _ = kill(pid, signal);
            let _ = child.wait();
        }
    }

    /// jitd's exit status if it has exited on its own.
    pub fn jitd_exited(&mut self) -> Option<std::process::ExitStatus> {
        self.jitd.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// Stops the private bus daemon (as a bus restart or crash would).
    pub fn stop_bus(&mut self) {
        let pid = Pid::from_raw(i32::try_from(self.bus_daemon.id()).unwrap());
        let _ = kill(pid, Signal::SIGKILL);
        let _ = self.bus_daemon.wait();
    }

    pub fn jitd_pid(&self) -> Option<u32> {
        self.jitd.as_ref().map(Child::id)
    }

    /// jitd's capability set `set` (`CapEff`, `CapPrm`, `CapInh`, `CapAmb`) as
    /// `/proc/PID/status` shows it (16 hex digits).
    pub fn jitd_caps(&self, set: &str) -> String {
        let pid = self.jitd_pid().expect("jitd runs");
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{set}:")))
            .unwrap_or_else(|| panic!("no {set} in {status}"))
            .trim()
            .to_string()
    }

    pub fn jitd_log(&self) -> String {
        fs::read_to_string(self.path().join("jitd.log")).unwrap_or_default()
    }

    /// A command run as `user` through runuser, with a clean environment.
    pub fn as_user(&self, user: &str, program: &Path, args: &[&str]) -> Command {
        let mut c = Command::new("runuser");
        c.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LANG", "C")
            .args(["-u", user, "--"])
            .arg(program)
            .args(args);
        c
    }

    /// Terminals as a Debian host makes them (devpts `gid=5,mode=620`: the owner and group
    /// tty may write, as `write(1)` and jitd's notes need), for the rest of this test in its
    /// mount namespace: this container mounts devpts `mode=600`.
    pub fn host_like_terminals(&self) {
        use nix::mount::{MsFlags, mount};
        mount(
            Some("devpts"),
            "/dev/pts",
            Some("devpts"),
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            Some("newinstance,gid=5,mode=620,ptmxmode=666"),
        )
        .unwrap();
        mount(
            Some("/dev/pts/ptmx"),
            "/dev/ptmx",
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .unwrap();
    }

    /// The uid of a user of this world (as its /etc/passwd says).
    pub fn uid_of(&self, user: &str) -> u32 {
        nix::unistd::User::from_name(user)
            .unwrap()
            .unwrap_or_else(|| panic!("no user {user} in this world"))
            .uid
            .as_raw()
    }

    /// A command run as `user` from a login session of `login_user`: the process's login
    /// uid (`/proc/self/loginuid`, which pam_loginuid sets when a session starts and su and
    /// sudo keep) is `login_user`'s, as when `login_user` logged in and then became `user`.
    pub fn in_session_of(
        &self,
        login_user: &str,
        user: &str,
        program: &Path,
        args: &[&str],
    ) -> Command {
        let uid = self.uid_of(login_user).to_string();
        let mut c = Command::new("sh");
        c.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LANG", "C")
            .args([
                "-c",
                "echo \"$0\" > /proc/self/loginuid && u=\"$1\" && shift \
                 && exec runuser -u \"$u\" -- \"$@\"",
            ])
            .arg(&uid)
            .arg(user)
            .arg(program)
            .args(args);
        c
    }

    /// `jitctl --bus <private bus> ARGS` as `user`.
    pub fn jitctl(&self, user: &str, args: &[&str]) -> Run {
        let mut all = vec!["--bus", self.bus.as_str()];
        all.extend_from_slice(args);
        run(
            self.as_user(user, &bin("jitctl"), &all),
            "",
            Duration::from_secs(60),
        )
    }

    /// `sudo -S ARGS` as `user`, answering prompts from `stdin` lines.
    pub fn sudo(&self, user: &str, stdin: &[&str], args: &[&str]) -> Run {
        let mut all = vec!["-S"];
        all.extend_from_slice(args);
        let mut input = stdin.join("\n");
        input.push('\n');
        run(
            self.as_user(user, Path::new("/usr/bin/sudo"), &all),
            &input,
            Duration::from_secs(60),
        )
    }

    /// `sudo -n ARGS` as `user`: no prompt at all.
    pub fn sudo_n(&self, user: &str, args: &[&str]) -> Run {
        let mut all = vec!["-n"];
        all.extend_from_slice(args);
        run(
            self.as_user(user, Path::new("/usr/bin/sudo"), &all),
            "",
            Duration::from_secs(60),
        )
    }

    /// Names of the files in the (private) sudoers directory jitd writes to.
    pub fn sudoers_files(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir("/etc/sudoers.d")
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "static")
            .collect();
        v.sort();
        v
    }

    /// The actions of the audit trail, in order, as root sees them.
    pub fn audit_actions(&self) -> Vec<String> {
        let r = self.jitctl("root", &["--json", "audit"]);
        assert!(r.ok(), "{}", r.all());
        r.json()
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["action"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// `user` runs `jitctl --json request ROLE [--for DURATION] --reason REASON`, which must
    /// succeed; its answer (`["id"]`, `["state"]`, ...). An empty duration: the role's default.
    pub fn submit(
        &self,
        user: &str,
        role: &str,
        duration: &str,
        reason: &str,
    ) -> serde_json::Value {
        let mut args = vec!["--json", "request", role, "--reason", reason];
        if !duration.is_empty() {
            args.extend(["--for", duration]);
        }
        let r = self.jitctl(user, &args);
        assert!(r.ok(), "{}", r.all());
        r.json()
    }

    /// A request as jitctl shows it to root.
    pub fn request(&self, id: u64) -> serde_json::Value {
        let r = self.jitctl("root", &["--json", "show", &id.to_string()]);
        assert!(r.ok(), "{}", r.all());
        r.json()
    }
}

/// A program on a real terminal (a pty from script(1)), driven as a person would: wait for
/// what it says, type a line, press Ctrl-C. Everything it printed is kept.
pub struct Pty {
    child: Child,
    input: std::process::ChildStdin,
    seen: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Pty {
    /// `cmd` (a shell command line) as `user` on a terminal of its own.
    pub fn spawn(world: &World, user: &str, cmd: &str) -> Pty {
        let mut child = world
            .as_user(
                user,
                Path::new("/usr/bin/script"),
                &["-qfec", cmd, "/dev/null"],
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let input = child.stdin.take().unwrap();
        let mut out = child.stdout.take().unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(n) = std::io::Read::read(&mut out, &mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Pty { child, input, seen }
    }

    /// Everything printed so far.
    pub fn said(&self) -> String {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until what it printed says `text`.
    pub fn expect(&self, text: &str, timeout: Duration) {
        wait_for(&format!("'{text}' on the terminal"), timeout, || {
            self.said().contains(text).then_some(())
        });
    }

    /// Types `line` and Enter.
    pub fn line(&mut self, line: &str) {
        self.input
            .write_all(format!("{line}\r").as_bytes())
            .unwrap();
        self.input.flush().unwrap();
    }

    /// Ctrl-C, as the terminal sends it (SIGINT to the foreground process group).
    pub fn ctrl_c(&mut self) {
        self.input.write_all(b"\x03").unwrap();
        self.input.flush().unwrap();
    }

    /// Waits for the program to end.
    pub fn wait(&mut self, timeout: Duration) -> std::process::ExitStatus {
        wait_for("the program to end", timeout, || {
            self.child.try_wait().unwrap()
        })
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where a world bind-mounts its copies, undone when it is dropped.
const MOUNTED: [&str; 8] = [
    "/etc/passwd",
    "/etc/group",
    "/etc/shadow",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/pam.d",
    "/etc/pam.d/sudo",
    "/run/sudo",
];

impl Drop for World {
    fn drop(&mut self) {
        if let Some(mut c) = self.sshd.take() {
            let _ = kill(
                Pid::from_raw(i32::try_from(c.id()).unwrap_or(0)),
                Signal::SIGTERM,
            );
            let _ = c.wait();
        }
        self.stop_jitd(Signal::SIGTERM);
        let pid = Pid::from_raw(i32::try_from(self.bus_daemon.id()).unwrap_or(0));
        let _ = kill(pid, Signal::SIGTERM);
        let _ = self.bus_daemon.wait();
        // So a later world on the same thread mounts over the real files, not deleted ones.
        for m in MOUNTED.iter().rev() {
            let _ = nix::mount::umount2(*m, nix::mount::MntFlags::MNT_DETACH);
        }
        if self.writable_etc {
            let _ = nix::mount::umount2("/etc", nix::mount::MntFlags::MNT_DETACH);
        }
        if self.private_home {
            for dir in ["/home", "/var/log"] {
                let _ = nix::mount::umount2(dir, nix::mount::MntFlags::MNT_DETACH);
            }
        }
    }
}
