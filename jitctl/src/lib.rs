//! jitctl: the command line for everyone. It runs as the invoking user; jitd learns who
//! that is from the bus, never from anything jitctl says.
#![forbid(unsafe_code)]

use clap::{Args as ClapArgs, Parser, Subcommand};
use jit_proto::{
    JitError, RequestInfo, RoleInfo, State, User1Proxy, format_duration, format_rfc3339,
    parse_duration,
};
use serde::Serialize;
use std::process::ExitCode;
use std::time::Duration;

pub mod setup;

/// `println!` that ends jitctl quietly when its reader has gone (`jitctl audit | head -1`):
/// a closed pipe is not an error of jitctl's.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            crate::quit_on_closed_pipe(&e);
        }
    }};
}

/// Ends the process quietly (status 0) on a closed pipe; any other write error is reported.
pub fn quit_on_closed_pipe(e: &std::io::Error) {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("jitctl: writing output: {e}");
    std::process::exit(i32::from(exit::ERROR));
}

/// Exit codes, as documented in the README.
mod fleet;

pub mod exit {
    pub const OK: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const REFUSED: u8 = 3;
    pub const TIMED_OUT: u8 = 4;
}

/// Each call's timeout; a stopped jitd never hangs jitctl longer than this.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// One long-poll slice while waiting for a decision.
const WAIT_SLICE_SECS: u32 = 10;

/// Request, approve and inspect just-in-time privileged access.
///
/// jitctl talks to jitd(8) on the D-Bus system bus as the user who runs it: jitd learns who
/// that is from the bus, never from anything jitctl says. Users request roles for a bounded
/// time with a reason; approvers approve, deny or revoke; everyone sees their own requests
/// and the audit trail's records about them. The policy is jit.toml(5); sudo asks for a
/// role itself through pam_jit(8).
#[derive(Debug, Parser)]
#[command(
    name = "jitctl",
    version,
    about,
    long_about,
    after_long_help = "Exit status: 0 success; 1 error (jitd not running, bus unreachable); \
2 usage; 3 refused (by policy, by jitd or by the bus); 4 timed out waiting for a decision.\n\n\
Environment: DBUS_SYSTEM_BUS_ADDRESS, if set, is used instead of the system bus socket."
)]
pub struct Cli {
    /// D-Bus address of the bus jitd is on (default: $DBUS_SYSTEM_BUS_ADDRESS, else the system bus).
    #[arg(long, global = true)]
    pub bus: Option<String>,
    /// Machine-readable output.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Roles you may request, and what each needs.
    Roles,
    /// Ask for a role for a bounded time.
    Request {
        role: String,
        /// How long, e.g. 15m, 1h (default: the role's default; a fleet role's is 1h, or
        /// its max_duration if shorter).
        #[arg(long = "for", value_name = "DURATION")]
        duration: Option<String>,
        /// Why (a ticket id, an incident...). Required.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        wait: WaitArgs,
        /// Emergency self-grant without approval, for roles that allow it. Audited as
        /// break-glass and queued for review by the role's approvers.
        #[arg(long, conflicts_with = "wait")]
        break_glass: bool,
        /// For a role that grants an account: a file of SSH public keys the account gets
        /// (a .pub file, or authorized_keys lines; repeatable). Default: your own
        /// ~/.ssh/authorized_keys.
        #[arg(long = "ssh-key", value_name = "FILE")]
        ssh_keys: Vec<std::path::PathBuf>,
        /// A fleet role, on these hosts or host groups of the fleet policy (comma-separated
        /// or repeated): one request, approved once, enforced by every host named.
        #[arg(long, value_name = "HOSTS", value_delimiter = ',', conflicts_with_all = ["wait", "break_glass", "ssh_keys"])]
        hosts: Vec<String>,
    },
    /// Ask for more time on your active grant (same approval rule as the role).
    Extend {
        id: u64,
        /// How much longer, e.g. 30m.
        #[arg(long, value_name = "DURATION")]
        by: String,
        /// Why more time is needed. Required.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Break-glass grants waiting for review (approvers, root), or `review ack ID`.
    Review(ReviewArgs),
    /// Pending and active requests you may see (yours, and those you may approve).
    List {
        /// Only pending requests.
        #[arg(long)]
        pending: bool,
        /// Also ended requests (latest 500).
        #[arg(long)]
        all: bool,
        /// Fleet requests (the ones you made or may approve; root: all) with every host's
        /// answer.
        #[arg(long, conflicts_with_all = ["pending", "all"])]
        fleet: bool,
    },
    /// One request in full (a number, or a fleet request's id).
    Show { id: String },
    /// Wait for the decision on a pending request (yours, or one you may approve): exit 0
    /// once it is active, 4 if it is still pending after --timeout, 3 if it ended otherwise.
    Wait {
        id: u64,
        /// How long to wait.
        #[arg(long, default_value = "10m", value_name = "DURATION")]
        timeout: String,
    },
    /// Words for shell completion, one per line: `roles` (what you may request) or `ids`
    /// (requests you may see). Used by the bash and zsh completions.
    #[command(hide = true)]
    Complete { what: String },
    /// Approve someone else's pending request (a fleet request: signed with your SSH key
    /// through ssh-agent, on any host).
    Approve {
        id: String,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Deny a pending request.
    Deny {
        id: u64,
        #[arg(long)]
        reason: String,
    },
    /// End an active grant early (approvers, root); a fleet request ends on every host.
    Revoke {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Give up your own active grant (your only one if no ID is given).
    Release { id: Option<String> },
    /// Withdraw your own pending request.
    Cancel { id: u64 },
    /// Your active grants.
    Grants,
    /// Follow events live, one line each (JSON lines with --json) until interrupted: new
    /// requests you may decide (and their escalation), and what becomes of your own
    /// requests and grants (decided, granted, ending soon, ended). root sees every event.
    Watch,
    /// jitd's state.
    Status,
    /// The audit trail, or `audit verify` to check its hash chain.
    Audit(AuditArgs),
    /// Policy tools.
    Policy {
        #[command(subcommand)]
        command: PolicyCmd,
    },
    /// Host setup (root): put pam_jit into the PAM stacks, or take it out.
    Setup {
        #[command(subcommand)]
        command: SetupCmd,
    },
}

#[derive(Debug, Subcommand)]
pub enum SetupCmd {
    /// Add pam_jit's lines to /etc/pam.d/sudo and sudo-i (and sshd with --sshd), or remove
    /// them.
    ///
    /// Each line goes right after the file's `@include common-*` line of its kind, so pam_jit
    /// runs after real authentication, and is marked so that --disable removes exactly the
    /// lines --enable added. Files are replaced atomically, keeping mode and owner.
    #[command(group = clap::ArgGroup::new("action").required(true))]
    Pam {
        /// Add the lines (sudo, and sudo-i for `sudo -i` where it exists; also sshd with
        /// --sshd). Does nothing if already there.
        #[arg(long, group = "action")]
        enable: bool,
        /// Remove every line --enable added, from sudo, sudo-i and sshd.
        #[arg(long, group = "action")]
        disable: bool,
        /// Only print the lines, to add by hand.
        #[arg(long, group = "action")]
        print: bool,
        /// Also gate ssh logins (sshd's account and session stacks): every ssh login then
        /// needs an active grant of a role with `ssh = true`.
        #[arg(long)]
        sshd: bool,
        /// The PAM configuration directory.
        #[arg(long, default_value = "/etc/pam.d", value_name = "DIR")]
        pam_dir: std::path::PathBuf,
    },
}

/// `--wait [--timeout D]`, for the commands whose answer may be "pending".
#[derive(Debug, ClapArgs)]
pub struct WaitArgs {
    /// Wait for the decision (exit 4 if none comes within --timeout).
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits.
    #[arg(long, default_value = "10m", value_name = "DURATION")]
    pub timeout: String,
}

#[derive(Debug, ClapArgs)]
pub struct ReviewArgs {
    #[command(subcommand)]
    pub ack: Option<ReviewCmd>,
    /// Also break-glass grants already reviewed.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Subcommand)]
pub enum ReviewCmd {
    /// Acknowledge a break-glass grant after looking into it.
    Ack {
        id: u64,
        /// What you found. Required.
        #[arg(long)]
        comment: String,
    },
}

#[derive(Debug, ClapArgs)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub verify: Option<AuditCmd>,
    /// Only records from the last DURATION (e.g. 1h, 7d).
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,
    /// Only records by or about this user.
    #[arg(long)]
    pub user: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Recompute the hash chain and name the first broken record; with the verification
    /// key, also check every seal (root).
    Verify {
        /// The verification key `jitctl audit setup-keys` printed (`-`: read it from
        /// standard input, which keeps it out of the shell's history).
        #[arg(long, value_name = "KEY")]
        key: Option<String>,
    },
    /// Remove the records before record SEQ (root), once the trail verifies; the chain goes
    /// on from SEQ. Export them first: `jitctl audit --json > FILE`.
    Prune {
        /// The first record kept.
        #[arg(long, value_name = "SEQ")]
        before: u64,
    },
    /// Set up forward-secure sealing (root): a seal every INTERVAL from now on. Prints the
    /// verification key once: keep it off this host.
    SetupKeys {
        /// How often the trail is sealed (1s to 1d).
        #[arg(long, value_name = "DURATION", default_value = "15m")]
        interval: String,
        /// Set up again with a new key (the old key keeps checking what it sealed).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCmd {
    /// Validate a policy file (default /etc/jit/jit.toml) with jitd's own parser.
    Check {
        file: Option<String>,
        /// Check this fleet policy file instead (hosts and their keys, approvers' SSH keys,
        /// fleet roles).
        #[arg(long, value_name = "FILE", conflicts_with = "file")]
        fleet: Option<String>,
    },
}

/// A failure with its exit code, and a stable name for scripts (`--json`).
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
    /// `refused`, `not_found`, `not_authorized`, `invalid_argument`, `wrong_state`,
    /// `internal`, `jitd_not_running`, `timed_out`, `usage`, `error`.
    pub error: &'static str,
    /// For a refusal by policy: why, as a stable code (`max_active`, `reason_pattern`...).
    pub refusal: Option<jit_proto::Refusal>,
}

impl Failure {
    fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
            error: match code {
                exit::USAGE => "usage",
                exit::REFUSED => "refused",
                exit::TIMED_OUT => "timed_out",
                _ => "error",
            },
            refusal: None,
        }
    }

    fn named(mut self, error: &'static str) -> Failure {
        self.error = error;
        self
    }

    /// The failure as `--json` prints it.
    pub fn json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "error": self.error,
            "message": self.message,
            "exit": self.code,
        });
        if let Some(r) = self.refusal {
            v["refusal"] = r.code().into();
        }
        v
    }
}

impl From<JitError> for Failure {
    fn from(e: JitError) -> Failure {
        if e.is_start_failure() {
            return Failure::new(exit::ERROR, JitError::START_FAILURE)
                .named("jitd_failed_to_start");
        }
        if e.is_service_missing() {
            return Failure::new(
                exit::ERROR,
                "jitd is not running (nothing owns org.jit.Jitd on the bus); ask an admin to start it",
            )
            .named("jitd_not_running");
        }
        match &e {
            JitError::ZBus(zbus::Error::InputOutput(io))
                if io.kind() == std::io::ErrorKind::TimedOut =>
            {
                Failure::new(exit::ERROR, "jitd did not answer in time").named("timed_out")
            }
            JitError::ZBus(zbus::Error::MethodError(name, _, _))
                if name.as_str() == "org.freedesktop.DBus.Error.AccessDenied" =>
            {
                Failure::new(
                    exit::REFUSED,
                    format!("the bus refused the call: {}", e.message()),
                )
                .named("access_denied")
            }
            JitError::Refused(r, m) => Failure {
                refusal: Some(*r),
                ..Failure::new(exit::REFUSED, m.clone())
            },
            JitError::NotFound(m) => Failure::new(exit::REFUSED, m.clone()).named("not_found"),
            JitError::NotAuthorized(m) => {
                Failure::new(exit::REFUSED, m.clone()).named("not_authorized")
            }
            JitError::InvalidArgument(m) => {
                Failure::new(exit::REFUSED, m.clone()).named("invalid_argument")
            }
            JitError::WrongState(m) => Failure::new(exit::REFUSED, m.clone()).named("wrong_state"),
            JitError::Internal(m) => Failure::new(exit::ERROR, m.clone()).named("internal"),
            JitError::ZBus(z) => {
                Failure::new(exit::ERROR, format!("cannot reach jitd: {z}")).named("unreachable")
            }
            JitError::Channel(m) => {
                Failure::new(exit::ERROR, format!("cannot reach jitd: {m}")).named("unreachable")
            }
        }
    }
}

type Out = Result<(), Failure>;

/// The bus address: --bus, then $DBUS_SYSTEM_BUS_ADDRESS, then the system socket.
pub fn bus_address(flag: Option<&str>) -> String {
    flag.map(str::to_string)
        .or_else(|| std::env::var("DBUS_SYSTEM_BUS_ADDRESS").ok())
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| jit_proto::SYSTEM_BUS_ADDRESS.to_string())
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if json {
                out!("{}", f.json());
            } else {
                eprintln!("jitctl: {}", f.message);
            }
            ExitCode::from(f.code)
        }
    }
}

pub fn run(cli: Cli) -> Out {
    if let Cmd::Policy {
        command: PolicyCmd::Check { file, fleet },
    } = &cli.command
    {
        if let Some(fleet) = fleet {
            return fleet_check(fleet);
        }
        return policy_check(file.as_deref(), cli.json);
    }
    if let Cmd::Setup {
        command:
            SetupCmd::Pam {
                enable,
                disable,
                sshd,
                pam_dir,
                ..
            },
    } = &cli.command
    {
        return setup_pam(*enable, *disable, *sshd, pam_dir, cli.json);
    }
    let address = bus_address(cli.bus.as_deref());
    let json = cli.json;
    zbus::block_on(async move {
        let conn = zbus::connection::Builder::address(address.as_str())
            .method_timeout(CALL_TIMEOUT + Duration::from_secs(u64::from(WAIT_SLICE_SECS)))
            .build()
            .await
            .map_err(|e| {
                Failure::new(
                    exit::ERROR,
                    format!("cannot connect to the bus at {address}: {e}"),
                )
            })?;
        let proxy = jit_proto::user1(&conn)
            .await
            .map_err(|e| Failure::from(JitError::from(e)))?;
        dispatch(&proxy, cli.command, json).await
    })
}

/// `jitctl setup pam`: every file's new text is worked out before any is written, so a
/// file that cannot take the lines leaves all of them unchanged.
fn setup_pam(
    enable: bool,
    disable: bool,
    sshd: bool,
    pam_dir: &std::path::Path,
    json: bool,
) -> Out {
    // Every service sudo uses (sudo, and sudo-i for login shells); --disable cleans every
    // file, whatever was enabled.
    let mut stacks: Vec<&setup::Stack> = setup::SUDO_SERVICES.to_vec();
    if disable || sshd {
        stacks.push(&setup::SSHD);
    }
    if !enable && !disable {
        if json {
            let files: serde_json::Map<String, serde_json::Value> = stacks
                .iter()
                .map(|st| {
                    let lines: Vec<serde_json::Value> = st
                        .lines
                        .iter()
                        .map(|(after, add)| serde_json::json!({ "after": after, "line": add }))
                        .collect();
                    (format!("/etc/pam.d/{}", st.service), lines.into())
                })
                .collect();
            return print_json(&files);
        }
        out!("{}", setup::print(&stacks).trim_end());
        return Ok(());
    }
    // (file, what happened) for each stack, in order.
    let mut report: Vec<(String, &str)> = Vec::new();
    let mut changes = Vec::new();
    for st in &stacks {
        let path = pam_dir.join(st.service);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && (disable || st.optional) => {
                report.push((path.display().to_string(), "absent"));
                continue;
            }
            Err(e) => {
                return Err(Failure::new(
                    exit::ERROR,
                    format!("{}: {e}", path.display()),
                ));
            }
        };
        let new = if enable {
            setup::enable(&text, st).map_err(|e| Failure::new(exit::ERROR, e))?
        } else {
            setup::disable(&text)
        };
        match new {
            Some(new) => changes.push((path, new)),
            None if enable => report.push((path.display().to_string(), "already enabled")),
            None => report.push((path.display().to_string(), "no lines of jitctl's")),
        }
    }
    for (path, new) in changes {
        setup::replace_file(&path, &new).map_err(|e| Failure::new(exit::ERROR, e))?;
        report.push((
            path.display().to_string(),
            if enable { "enabled" } else { "removed" },
        ));
    }
    if json {
        let v: Vec<serde_json::Value> = report
            .iter()
            .map(|(f, what)| serde_json::json!({ "file": f, "pam_jit": what }))
            .collect();
        return print_json(&v);
    }
    for (file, what) in report {
        let said = match what {
            "absent" => "not present; nothing to do",
            "already enabled" => "pam_jit already enabled",
            "no lines of jitctl's" => "no pam_jit lines from jitctl",
            "enabled" => "pam_jit enabled",
            _ => "pam_jit lines removed",
        };
        out!("{file}: {said}");
    }
    Ok(())
}

fn print_json<T: Serialize>(v: &T) -> Out {
    let s = serde_json::to_string_pretty(v)
        .map_err(|e| Failure::new(exit::ERROR, format!("encoding JSON: {e}")))?;
    out!("{s}");
    Ok(())
}

/// A request as JSON: the wire fields, with `not_after` as RFC 3339 (null while pending)
/// and the raw seconds in `not_after_unix`.
fn request_json(r: &RequestInfo) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        obj.insert(
            "not_after".into(),
            (r.not_after > 0)
                .then(|| format_rfc3339(r.not_after))
                .into(),
        );
        obj.insert("not_after_unix".into(), r.not_after.into());
        obj.insert("created".into(), format_rfc3339(r.created_at).into());
        obj.insert("duration".into(), format_duration(r.duration_secs).into());
    }
    v
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// One line per request, for humans.
pub fn describe(r: &RequestInfo) -> String {
    let state = match r.state() {
        Some(State::Active) => format!(
            "active until {}",
            jit_proto::format_time_short(r.not_after, now())
        ),
        Some(State::Pending) => format!(
            "pending ({}/{} approvals from {}{})",
            r.approved_by.len(),
            r.approvals_required,
            r.approvers.join(", "),
            escalation(r)
        ),
        _ => r.state.clone(),
    };
    let what = match r.kind.as_str() {
        "extension" => format!(
            "{} {} +{} on grant {}",
            r.user,
            r.role,
            format_duration(r.duration_secs),
            r.extends
        ),
        "break-glass" => format!(
            "{} {} for {} BREAK-GLASS{}",
            r.user,
            r.role,
            format_duration(r.duration_secs),
            if r.reviewed_by.is_empty() {
                " (not reviewed)".to_string()
            } else {
                format!(" (reviewed by {})", esc(&r.reviewed_by))
            }
        ),
        _ => format!("{} {} for {}", r.user, r.role, length(r)),
    };
    let mut groups = if r.groups.is_empty() {
        String::new()
    } else {
        format!(" [groups: {}]", esc(&r.groups.join(", ")))
    };
    if let Some(name) = r.account.split_whitespace().next() {
        groups.push_str(&format!(" [account: {}]", esc(name)));
    }
    format!(
        "request {}: {what}{groups}: {state} ({})",
        r.id,
        esc(&r.reason)
    )
}

/// How long a grant lasts as things stand: its length from activation to its end now (an
/// extension makes it longer than asked), or what was asked while it is pending.
fn length(r: &RequestInfo) -> String {
    let asked = format_duration(r.duration_secs);
    if r.granted_at > 0 && r.not_after > r.granted_at {
        let now = u64::try_from(r.not_after - r.granted_at).unwrap_or(0);
        if now > r.duration_secs {
            return format!("{} (asked {asked}, extended)", format_duration(now));
        }
        // A fleet grant runs from its approval, which came before this host applied it.
        if now < r.duration_secs && r.service == "fleet" {
            return format!(
                "{} here (asked {asked}, from the fleet approval)",
                format_duration(now)
            );
        }
    }
    asked
}

/// "; from 14:10 UTC also %managers" (or "since ...") for a request that escalates.
fn escalation(r: &RequestInfo) -> String {
    if r.escalation_approvers.is_empty() || r.escalates_at == 0 {
        return String::new();
    }
    let when = if now() >= r.escalates_at {
        "since"
    } else {
        "from"
    };
    format!(
        "; {when} {} also {}",
        jit_proto::format_time_short(r.escalates_at, now()),
        r.escalation_approvers.join(", ")
    )
}

/// Text that came from someone else (reasons, comments, names), made safe for a terminal:
/// hidden, control and bidi characters written as `\u{..}`, so a reason stored before the
/// input rules tightened can still not hide or fake anything on an approver's terminal.
fn esc(s: &str) -> String {
    jit_proto::text::escape(s)
}

/// `empty`: what to say when there is nothing ("no requests", "no active grants").
fn print_requests(list: &[RequestInfo], json: bool, empty: &str) -> Out {
    if json {
        return print_json(&list.iter().map(request_json).collect::<Vec<_>>());
    }
    if list.is_empty() {
        out!("{}", empty);
    }
    for r in list {
        out!("{}", describe(r));
    }
    Ok(())
}

fn duration_arg(flag: &str, text: &str) -> Result<u64, Failure> {
    parse_duration(text).map_err(|e| Failure::new(exit::USAGE, format!("{flag}: {e}")))
}

async fn dispatch(p: &User1Proxy<'_>, cmd: Cmd, json: bool) -> Out {
    match cmd {
        Cmd::Roles => {
            let roles = p.roles().await?;
            if json {
                return print_json(&roles);
            }
            print_roles(&roles);
            Ok(())
        }
        Cmd::Request {
            role,
            duration,
            reason,
            wait: WaitArgs { wait, timeout },
            break_glass,
            ssh_keys,
            hosts,
        } => {
            let secs = match duration {
                Some(d) => duration_arg("--for", &d)?,
                None => 0,
            };
            if !hosts.is_empty() {
                return fleet::request(p, &role, &hosts, secs, &reason, json).await;
            }
            let timeout = duration_arg("--timeout", &timeout)?;
            let account = !ssh_keys.is_empty()
                || p.roles().await?.iter().any(|r| r.name == role && r.account);
            let mut r = if break_glass {
                p.break_glass(&role, secs, &reason).await?
            } else if account {
                let keys = read_keys(&ssh_keys)?;
                p.request_with_keys(&role, secs, &reason, &keys).await?
            } else {
                p.request(&role, secs, &reason).await?
            };
            if wait && r.state() == Some(State::Pending) {
                if !json {
                    eprintln!(
                        "jitctl: request {}: waiting up to {} for {} approval(s) from {}",
                        r.id,
                        format_duration(timeout),
                        r.approvals_required,
                        r.approvers.join(", ")
                    );
                }
                r = wait_for(p, r.id, timeout).await?;
            }
            if json {
                print_json(&request_json(&r))?;
            } else {
                out!("{}", describe(&r));
            }
            outcome(&r, State::Active, wait, "request")
        }
        Cmd::Extend {
            id,
            by,
            reason,
            wait: WaitArgs { wait, timeout },
        } => {
            let by = duration_arg("--by", &by)?;
            let timeout = duration_arg("--timeout", &timeout)?;
            let mut r = p.extend(id, by, &reason).await?;
            if wait && r.state() == Some(State::Pending) {
                r = wait_for(p, r.id, timeout).await?;
            }
            if json {
                print_json(&request_json(&r))?;
            } else {
                out!("{}", describe(&r));
                if r.state() == Some(State::Applied) {
                    out!("{}", describe(&p.show(id).await?));
                }
            }
            outcome(&r, State::Applied, wait, "extension")
        }
        Cmd::Review(ReviewArgs { ack: None, all }) => print_requests(
            &p.review(all).await?,
            json,
            "no break-glass grants to review",
        ),
        Cmd::Review(ReviewArgs {
            ack: Some(ReviewCmd::Ack { id, comment }),
            ..
        }) => one(p.acknowledge(id, &comment).await?, json),
        Cmd::List { fleet: true, .. } => fleet::list(p, json).await,
        Cmd::List { pending, all, .. } => {
            print_requests(&p.list(pending, all).await?, json, "no requests")
        }
        Cmd::Wait { id, timeout } => {
            let timeout = duration_arg("--timeout", &timeout)?;
            let r = wait_for(p, id, timeout).await?;
            if json {
                print_json(&request_json(&r))?;
            } else {
                out!("{}", describe(&r));
            }
            outcome(&r, State::Active, true, "request")
        }
        Cmd::Complete { what } => {
            match what.as_str() {
                "roles" => {
                    for r in p.roles().await? {
                        out!("{}", r.name);
                    }
                }
                "ids" => {
                    for r in p.list(false, false).await? {
                        out!("{}", r.id);
                    }
                }
                _ => {}
            }
            Ok(())
        }
        Cmd::Show { id } => {
            let id = match fleet::Target::parse(&id)? {
                fleet::Target::Local(n) => n,
                fleet::Target::Fleet(f) => return fleet::show(p, &f, json).await,
            };
            let r = p.show(id).await?;
            if json {
                return print_json(&request_json(&r));
            }
            print_detail(&r);
            Ok(())
        }
        Cmd::Approve { id, comment } => match fleet::Target::parse(&id)? {
            fleet::Target::Local(n) => one(p.approve(n, &comment).await?, json),
            fleet::Target::Fleet(f) => fleet::approve(p, &f, json).await,
        },
        Cmd::Deny { id, reason } => one(p.deny(id, &reason).await?, json),
        Cmd::Revoke { id, reason } => match fleet::Target::parse(&id)? {
            fleet::Target::Local(n) => one(p.revoke(n, &reason).await?, json),
            fleet::Target::Fleet(f) => fleet::end(p, &f, &reason, json).await,
        },
        Cmd::Release { id } => match id.as_deref().map(fleet::Target::parse).transpose()? {
            None => one(p.release(0).await?, json),
            Some(fleet::Target::Local(n)) => one(p.release(n).await?, json),
            Some(fleet::Target::Fleet(f)) => fleet::end(p, &f, "", json).await,
        },
        Cmd::Cancel { id } => one(p.cancel(id).await?, json),
        Cmd::Grants => print_requests(&p.grants().await?, json, "no active grants"),
        Cmd::Watch => watch(p, json).await,
        Cmd::Status => {
            let s = p.status().await?;
            if json {
                return print_json(&s);
            }
            out!(
                "jitd {} running since {}",
                s.version,
                format_rfc3339(s.started_at)
            );
            out!("policy: {} ({} roles)", s.policy_path, s.roles);
            out!("sudoers directory: {}", s.sudoers_dir);
            out!("active grants: {}", s.active_grants);
            out!("pending requests: {}", s.pending_requests);
            if s.unreviewed_break_glass > 0 {
                out!(
                    "break-glass grants not yet reviewed: {} (jitctl review)",
                    s.unreviewed_break_glass
                );
            }
            for note in &s.audit_notes {
                out!("{}", esc(note));
            }
            for note in &s.notifier_notes {
                out!("{}", esc(note));
            }
            let mut problem = match (s.last_error.as_str(), s.audit_error.as_str()) {
                ("", "") => None,
                ("", audit) => Some(audit.to_string()),
                (last, "") => Some(last.to_string()),
                (last, audit) => Some(format!("{last}; {audit}")),
            };
            // A host of a fleet: whether its agent is in touch with etcd (out of touch, it
            // hears of no revocation from elsewhere). A jitd without the call says nothing.
            if let Ok(text) = p.fleet_status().await
                && let Ok(link) = serde_json::from_str::<jit_proto::fleet::FleetContact>(&text)
            {
                let ago = link.now - link.last_contact;
                let up = link.now - s.started_at;
                if link.last_contact == 0 && up <= link.quiet_after {
                    // Just started: the agent connects within moments.
                    out!(
                        "fleet: host {}; the fleet agent has not reached etcd yet (jitd started {} ago)",
                        esc(&link.host),
                        format_duration(u64::try_from(up.max(1)).unwrap_or(1))
                    );
                } else if link.last_contact > 0 && ago <= link.quiet_after {
                    out!(
                        "fleet: host {}; agent in touch with etcd {} ago (revision {}, {} records in view)",
                        esc(&link.host),
                        format_duration(u64::try_from(ago).unwrap_or(0)),
                        link.revision,
                        link.records
                    );
                } else {
                    let why = if link.last_contact == 0 {
                        "the fleet agent (jit-fleetd) has not reached etcd since jitd started"
                            .to_string()
                    } else {
                        format!(
                            "the fleet agent (jit-fleetd) has not reached etcd for {}",
                            format_duration(u64::try_from(ago).unwrap_or(0))
                        )
                    };
                    out!(
                        "fleet: host {}; {why}: fleet requests cannot be sent, revocations from other hosts do not arrive (grants end at their time). Is jit-fleetd running, and can it reach etcd? Its log says (/var/log/jit-fleetd.log, or journalctl -u jit-fleetd)",
                        esc(&link.host)
                    );
                    problem = Some(match problem {
                        Some(p) => format!("{p}; {why}"),
                        None => why,
                    });
                }
            }
            match &problem {
                None => out!("health: ok"),
                Some(p) => out!("health: ERROR: {}", esc(p)),
            }
            // root can read sudoers: the policy's warnings, static rules that a grant would
            // unlock among them, as `jitctl policy check` prints them.
            if nix::unistd::geteuid().is_root()
                && let Ok(out) = run_check_config(&s.policy_path)
            {
                for w in String::from_utf8_lossy(&out.stderr).lines() {
                    if let Some(w) = w.strip_prefix("jitd: warning: ") {
                        out!("warning: {}", esc(w));
                    }
                }
            }
            // A monitoring check reads the exit status: unhealthy is a failure.
            match problem {
                None => Ok(()),
                Some(p) => {
                    Err(Failure::new(exit::ERROR, format!("jitd is unhealthy: {p}"))
                        .named("unhealthy"))
                }
            }
        }
        Cmd::Audit(a) => audit(p, a, json).await,
        Cmd::Policy { .. } | Cmd::Setup { .. } => Ok(()),
    }
}

/// The exit status of a request (or extension) after submitting and maybe waiting:
/// success once it reached `done`, 4 if still pending after --wait, 3 if it ended otherwise.
fn outcome(r: &RequestInfo, done: State, wait: bool, what: &str) -> Out {
    match r.state() {
        Some(s) if s == done => Ok(()),
        Some(State::Pending) if wait => Err(Failure::new(
            exit::TIMED_OUT,
            format!("{what} {} is still pending", r.id),
        )),
        Some(State::Pending) => Ok(()),
        _ => Err(Failure::new(
            exit::REFUSED,
            format!(
                "{what} {} was {}{}",
                r.id,
                r.state,
                if r.decided_by.is_empty() {
                    String::new()
                } else {
                    format!(" by {}: {}", esc(&r.decided_by), esc(&r.decision_reason))
                }
            ),
        )),
    }
}

fn one(r: RequestInfo, json: bool) -> Out {
    if json {
        print_json(&request_json(&r))
    } else {
        out!("{}", describe(&r));
        Ok(())
    }
}

/// `jitctl watch`: events as jitd sends them, addressed to this connection alone. Taken up
/// again when jitd restarts.
async fn watch(p: &User1Proxy<'_>, json: bool) -> Out {
    use futures_util::StreamExt;
    enum Seen {
        Event(Option<String>),
        Jitd(bool),
    }
    let bus_error = |e: zbus::Error| Failure::from(JitError::from(e));
    let events = p.receive_event().await.map_err(bus_error)?;
    let dbus = zbus::fdo::DBusProxy::new(p.inner().connection())
        .await
        .map_err(bus_error)?;
    let owners = dbus
        .receive_name_owner_changed_with_args(&[(0, jit_proto::BUS_NAME)])
        .await
        .map_err(bus_error)?;
    p.watch().await?;
    eprintln!(
        "jitctl: watching: requests you may decide, and your own requests and grants \
         (Ctrl-C to stop)"
    );
    let events = events.map(|e| Seen::Event(e.args().ok().map(|a| a.event)));
    let owners = owners.map(|c| Seen::Jitd(c.args().is_ok_and(|a| a.new_owner().is_some())));
    let mut both = futures_util::stream::select(events, owners);
    while let Some(seen) = both.next().await {
        match seen {
            Seen::Event(Some(doc)) => print_event(&doc, json),
            Seen::Event(None) => {}
            Seen::Jitd(false) => eprintln!("jitctl: jitd stopped; waiting for it to come back"),
            Seen::Jitd(true) => match p.watch().await {
                Ok(()) => eprintln!("jitctl: jitd is back; watching again"),
                Err(e) => return Err(e.into()),
            },
        }
    }
    Err(Failure::new(exit::ERROR, "lost the connection to the bus"))
}

/// One event: its document as a JSON line, or its time, kind and summary.
fn print_event(doc: &str, json: bool) {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(doc) else {
        eprintln!("jitctl: jitd sent an event that is not JSON; ignored");
        return;
    };
    if json {
        out!("{v}");
        return;
    }
    let text = |k: &str| v[k].as_str().unwrap_or("-").to_string();
    out!(
        "{} {}: {}",
        esc(&text("at")),
        esc(&text("event")),
        esc(&text("summary"))
    );
}

async fn wait_for(p: &User1Proxy<'_>, id: u64, timeout: u64) -> Result<RequestInfo, Failure> {
    let deadline = std::time::Instant::now() + Duration::from_secs(timeout);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let slice = u32::try_from(left.as_secs().max(1))
            .unwrap_or(WAIT_SLICE_SECS)
            .min(WAIT_SLICE_SECS);
        let r = p.wait(id, slice).await?;
        if r.state() != Some(State::Pending) || std::time::Instant::now() >= deadline {
            return Ok(r);
        }
    }
}

fn print_roles(roles: &[RoleInfo]) {
    if roles.is_empty() {
        out!("no roles you may request");
    }
    for r in roles {
        out!(
            "{}: {} ({}{})",
            r.name,
            esc(&r.description),
            r.summary(),
            if r.ssh { ", admits ssh logins" } else { "" }
        );
        if r.account {
            out!(
                "    an account of its own (jit-{{you}}-{{id}}), logged into over ssh with your \
                 keys; its rule:"
            );
        }
        out!("    runs as {}: {}", r.run_as, r.commands.join(", "));
        if !r.reason_pattern.is_empty() {
            out!("    reason must match {}", r.reason_pattern);
        }
        if r.reason_min_length > 1 {
            out!("    reason: at least {} characters", r.reason_min_length);
        }
        if r.max_total_secs > r.max_duration_secs {
            out!(
                "    extendable up to {} in total",
                format_duration(r.max_total_secs)
            );
        }
    }
}

/// The SSH public keys of `files` (each a .pub file or authorized_keys lines), or of the
/// caller's own `~/.ssh/authorized_keys` (from the passwd entry, not `$HOME`). Blank lines
/// and comments are skipped; so are lines with options (`from=`, `command=`), saying so:
/// jitd takes only bare keys, and a restricted key must not come back unrestricted.
fn read_keys(files: &[std::path::PathBuf]) -> Result<Vec<String>, Failure> {
    let files = if files.is_empty() {
        let home = nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten()
            .map(|u| u.dir)
            .ok_or_else(|| Failure::new(exit::ERROR, "cannot find your home directory"))?;
        vec![home.join(".ssh/authorized_keys")]
    } else {
        files.to_vec()
    };
    let mut keys = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).map_err(|e| {
            Failure::new(
                exit::USAGE,
                format!(
                    "reading SSH keys from {}: {e} (give a public key with --ssh-key FILE)",
                    f.display()
                ),
            )
        })?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bare = ["ssh-", "ecdsa-", "sk-"]
                .iter()
                .any(|p| line.starts_with(p));
            if !bare {
                eprintln!(
                    "jitctl: {}:{}: skipped: a key with options (give bare keys with --ssh-key)",
                    f.display(),
                    n + 1
                );
                continue;
            }
            keys.push(line.to_string());
        }
    }
    if keys.is_empty() {
        return Err(Failure::new(
            exit::USAGE,
            "no SSH public key found for the account: give one with --ssh-key FILE",
        ));
    }
    Ok(keys)
}

/// What a grant holds, one item each: its sudo rule, its groups, its account.
fn holds(r: &RequestInfo) -> Vec<String> {
    let mut out = Vec::new();
    if !r.account.is_empty() {
        out.push(format!(
            "account: {} (log in with ssh as the account; the rule and groups are its)",
            esc(&r.account)
        ));
        for k in &r.ssh_keys {
            out.push(format!("account key: {}", esc(k)));
        }
    }
    if !r.commands.is_empty() {
        let who = if r.run_as.is_empty() {
            "root".to_string()
        } else {
            r.run_as.join(", ")
        };
        out.push(format!(
            "sudo rule: ({}) {}",
            esc(&who),
            esc(&r.commands.join(", "))
        ));
    }
    if !r.groups.is_empty() {
        out.push(format!(
            "groups: {} (a new login or `newgrp` picks them up)",
            esc(&r.groups.join(", "))
        ));
    }
    out
}

fn print_detail(r: &RequestInfo) {
    out!("request {}", r.id);
    out!("  user:      {} (uid {})", r.user, r.uid);
    out!("  role:      {}", r.role);
    out!("  state:     {}", r.state);
    out!("  kind:      {}", r.kind);
    if r.extends != 0 {
        out!("  extends:   grant {}", r.extends);
    }
    if r.granted_at > 0 {
        out!("  granted:   {}", format_rfc3339(r.granted_at));
    }
    if r.kind == "break-glass" {
        if r.reviewed_by.is_empty() {
            out!("  review:    not yet reviewed");
        } else {
            out!(
                "  review:    by {} at {}: {}",
                esc(&r.reviewed_by),
                format_rfc3339(r.reviewed_at),
                esc(&r.review_comment)
            );
        }
    }
    out!("  reason:    {}", esc(&r.reason));
    out!("  duration:  {}", length(r));
    for held in holds(r) {
        out!("  holds:     {held}");
    }
    if r.approvals_required > 0 {
        out!("  approvers: {}{}", r.approvers.join(", "), escalation(r));
    }
    out!("  created:   {}", format_rfc3339(r.created_at));
    if r.not_after > 0 {
        out!("  not after: {}", format_rfc3339(r.not_after));
    }
    let by = if r.approved_by.is_empty() {
        String::new()
    } else {
        format!(" by {}", r.approved_by.join(", "))
    };
    out!(
        "  approvals: {}/{}{by}",
        r.approved_by.len(),
        r.approvals_required
    );
    if !r.decided_by.is_empty() {
        out!(
            "  decided:   by {}: {}",
            esc(&r.decided_by),
            esc(&r.decision_reason)
        );
    }
    out!(
        "  via:       {}",
        [esc(&r.service), esc(&r.tty)]
            .iter()
            .filter(|p| !p.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join(" ")
    );
}

/// Records per page when listing the trail.
const AUDIT_PAGE: u32 = 5_000;

async fn audit(p: &User1Proxy<'_>, a: AuditArgs, json: bool) -> Out {
    if let Some(AuditCmd::SetupKeys { interval, force }) = a.verify {
        let secs = duration_arg("--interval", &interval)?;
        let key = p.seal_setup(secs, force).await?;
        if json {
            return print_json(&serde_json::json!({ "verification_key": key }));
        }
        out!(
            "audit sealing set up: a seal every {}.",
            format_duration(secs)
        );
        out!("verification key (shown once, not kept on this host):");
        out!("");
        out!("    {key}");
        out!("");
        out!("Keep it off this host (a password manager, paper). With it,");
        out!("`jitctl audit verify --key -` proves that no record sealed before a break-in");
        out!("was changed or removed; whoever holds it can also forge seals: keep it secret.");
        return Ok(());
    }
    if let Some(AuditCmd::Prune { before }) = a.verify {
        let said = p.audit_prune(before).await?;
        if json {
            return print_json(&serde_json::json!({ "pruned": said }));
        }
        out!("{said}");
        return Ok(());
    }
    if let Some(AuditCmd::Verify { key }) = a.verify {
        let v = match key.as_deref() {
            None => p.audit_verify().await?,
            Some("-") => {
                let mut k = String::new();
                std::io::stdin()
                    .read_line(&mut k)
                    .map_err(|e| Failure::new(exit::USAGE, format!("reading the key: {e}")))?;
                p.audit_verify_key(k.trim()).await?
            }
            Some(k) => p.audit_verify_key(k).await?,
        };
        if json {
            print_json(&v)?;
        } else {
            out!("{}", v.message);
        }
        return if v.ok {
            Ok(())
        } else {
            Err(Failure::new(exit::ERROR, v.message))
        };
    }
    let since = match a.since {
        Some(d) => now() - i64::try_from(duration_arg("--since", &d)?).unwrap_or(i64::MAX / 2),
        None => 0,
    };
    // Page by page: the trail can be far larger than one bus message.
    let user = a.user.as_deref().unwrap_or("");
    let mut records = Vec::new();
    let mut after = 0;
    loop {
        let page = p.audit_page(after, AUDIT_PAGE, since, user).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        let full = page.len() == AUDIT_PAGE as usize;
        if json {
            records.extend(page);
        } else {
            print_audit_lines(&page);
        }
        if !full {
            break;
        }
    }
    if json {
        return print_json(&records);
    }
    Ok(())
}

fn print_audit_lines(records: &[jit_proto::AuditRecord]) {
    for r in records {
        let from = if r.origin.is_empty() {
            String::new()
        } else {
            format!(" from [{}]", esc(&r.origin))
        };
        out!(
            "{} #{} {} by {} (uid {}){from} request {}: {}",
            format_rfc3339(r.at),
            r.seq,
            esc(&r.action),
            esc(&r.actor),
            r.actor_uid,
            r.request_id,
            esc(&r.detail)
        );
    }
}

/// Runs jitd's own parser (`jitd --check-config`) so there is exactly one policy grammar.
fn policy_check(file: Option<&str>, json: bool) -> Out {
    let file = file.unwrap_or("/etc/jit/jit.toml");
    let out = run_check_config(file)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(Failure::new(
            exit::REFUSED,
            stderr.trim().trim_start_matches("jitd: ").to_string(),
        )
        .named("invalid_policy"));
    }
    if json {
        let warnings: Vec<&str> = stderr
            .lines()
            .filter_map(|l| l.strip_prefix("jitd: warning: "))
            .collect();
        let notes: Vec<&str> = stderr
            .lines()
            .filter_map(|l| l.strip_prefix("jitd: note: "))
            .collect();
        let summary = String::from_utf8_lossy(&out.stdout);
        // "FILE: OK (N roles, M warnings)"
        let roles: u64 = summary
            .rsplit(" (")
            .next()
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        return print_json(&serde_json::json!({
            "file": file,
            "valid": true,
            "roles": roles,
            "warnings": warnings,
            "notes": notes,
        }));
    }
    eprint!("{stderr}");
    out!("{}", String::from_utf8_lossy(&out.stdout).trim_end());
    Ok(())
}

/// `jitd --check-fleet FILE`: the fleet policy through jitd's own parser.
fn fleet_check(file: &str) -> Out {
    let out = run_jitd(&["--check-fleet", file])?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(Failure::new(
            exit::REFUSED,
            stderr.trim().trim_start_matches("jitd: ").to_string(),
        )
        .named("invalid_policy"));
    }
    out!("{}", String::from_utf8_lossy(&out.stdout).trim_end());
    Ok(())
}

/// `jitd --check-config --config FILE`, with the jitd beside jitctl or the installed one.
fn run_check_config(file: &str) -> Result<std::process::Output, Failure> {
    run_jitd(&["--check-config", "--config", file])
}

/// jitd (the one beside jitctl, or the installed one) with `args`, for its checks.
fn run_jitd(args: &[&str]) -> Result<std::process::Output, Failure> {
    let here = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("jitd")));
    let candidates = here
        .into_iter()
        .chain(["/usr/local/sbin/jitd", "/usr/sbin/jitd"].map(std::path::PathBuf::from));
    let Some(jitd) = candidates.into_iter().find(|p| p.is_file()) else {
        return Err(Failure::new(
            exit::ERROR,
            "cannot find the jitd binary to check the policy with",
        ));
    };
    std::process::Command::new(&jitd)
        .args(args)
        .output()
        .map_err(|e| Failure::new(exit::ERROR, format!("running {}: {e}", jitd.display())))
}
