//! jitd's start-up: arguments, policy, privileges, state, reconciliation, then the bus.

use crate::audit::Mirror;
use crate::bus::{Identities, PamInterface, UserInterface};
use crate::directory::Nss;
use crate::grants::{Core, SystemClock};
use crate::instance::{PidFile, RulesLock, StateLock, Traces};
use crate::notify::Notifier;
use crate::policy::Policy;
use crate::service::Service;
use crate::store::Store;
use crate::sudoers::SudoersDir;
use clap::Parser;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// The JIT access daemon: holds time-boxed grants and writes ephemeral sudoers rules.
///
/// jitd owns org.jit.Jitd on the D-Bus system bus. Users reach it through jitctl(1), sudo and
/// sshd through pam_jit(8); the policy is jit.toml(5). Every grant exists only as a rule in
/// the sudoers directory with a NOTAFTER bound, removed when the grant expires, is released
/// or revoked; commands and logins started under it are ended then. Every step is written to
/// a hash-chained audit trail in the state directory and mirrored to syslog (authpriv).
///
/// At start jitd validates the policy (and refuses to start on an error), drops every
/// capability but CAP_KILL, sets no_new_privs, reconciles the sudoers directory with its
/// database (removing what it did not create, restoring what is missing, expiring what is
/// due), and only then takes its bus name and tells the service manager it is ready.
#[derive(Debug, Parser)]
#[command(
    name = "jitd",
    version,
    after_long_help = "Signals: SIGHUP re-reads the policy (a policy that does not validate is \
refused and the old one kept); SIGTERM or SIGINT stops jitd (grants stay in force until their \
end and are reconciled at the next start). Every way jitd ends is logged with its reason.\n\n\
One jitd at a time: jitd holds an exclusive lock on its state directory (jitd.lock, which \
names its pid) and asks for its bus name without replacing an owner; a second jitd on the \
same state directory or bus says which one runs and exits with status 1.\n\n\
Running without systemd (containers): start with `jitd --pid-file /run/jitd.pid --log-file \
/var/log/jitd.log &` (what install.sh and the bus activation file do); stop with `kill $(cat \
/run/jitd.pid)`; reload the policy with `kill -HUP $(cat /run/jitd.pid)`. The pid file is \
written only by the jitd that serves, once it owns its bus name. Without a running jitd, the \
first call to org.jit.Jitd starts one (bus activation).\n\n\
Environment: JITD_LOG sets the diagnostic log filter (default info), written to stderr, or to \
--log-file. NOTIFY_SOCKET and WATCHDOG_USEC, set by systemd, enable readiness and watchdog \
notifications.\n\n\
Files: /etc/jit/jit.toml (policy), /var/lib/jitd/jitd.db (state and audit trail, SQLite), \
/var/lib/jitd/jitd.lock (held while jitd runs), /etc/sudoers.d/jit-s00 to jit-s0f (the \
ephemeral rules; do not edit).\n\n\
Exit status: 0 after --check-config on a valid policy, and when stopped by SIGTERM or SIGINT; \
1 on any error, including a lost bus connection and another jitd already running; 70 after an \
internal error (the service manager restarts jitd, which reconciles at start)."
)]
pub struct Args {
    /// Policy file (TOML).
    #[arg(long, default_value = "/etc/jit/jit.toml")]
    pub config: PathBuf,
    /// State directory (SQLite database), created 0700.
    #[arg(long, default_value = "/var/lib/jitd")]
    pub state_dir: PathBuf,
    /// Directory for the ephemeral sudoers rules (included by /etc/sudoers).
    #[arg(long, default_value = "/etc/sudoers.d")]
    pub sudoers_dir: PathBuf,
    /// D-Bus address to serve on instead of the system bus.
    #[arg(long)]
    pub bus: Option<String>,
    /// Validate the policy, print a summary and exit (0 valid, 1 invalid).
    #[arg(long)]
    pub check_config: bool,
    /// Check a fleet policy file (`fleet.toml`: hosts, their keys and groups, approvers'
    /// SSH keys, fleet roles) and exit.
    #[arg(long, value_name = "FILE")]
    pub check_fleet: Option<PathBuf>,
    /// Write jitd's pid here once it serves (removed when it stops on a signal).
    #[arg(long, value_name = "PATH")]
    pub pid_file: Option<PathBuf>,
    /// Append the diagnostic log here instead of writing it to stderr (for a jitd started
    /// by hand or by bus activation, whose stderr nobody keeps).
    #[arg(long, value_name = "PATH")]
    pub log_file: Option<PathBuf>,
    /// Serve the PAM operations to pam_jit (root only) on this socket, beside the bus. Its
    /// directory is created 0700 if missing, and must otherwise be root's alone.
    #[arg(long, value_name = "PATH", default_value = jit_proto::wire::DEFAULT_SOCKET)]
    pub pam_socket: PathBuf,
    /// Check the audit trail in --state-dir (a copy, on a trusted machine, for the strongest
    /// check) and exit: 0 intact, 1 not. The verification key, if any, on standard input.
    #[arg(long)]
    pub verify_audit: bool,
    /// Mirror the audit trail to the syslog socket at PATH instead of /dev/log.
    #[arg(long, value_name = "PATH")]
    pub syslog_socket: Option<PathBuf>,
    /// The user the notifier agent (jit-notifyd) runs as: the only one that may take the
    /// deliveries to `[[notifier]]` programs.
    #[arg(long, value_name = "USER", default_value = jit_proto::NOTIFIER_USER)]
    pub notifier_user: String,
    /// The fleet policy (hosts, their keys, approvers' keys, fleet roles): this host takes
    /// part in the fleet, and its fleet agent may offer it records.
    #[arg(long, value_name = "FILE")]
    pub fleet: Option<PathBuf>,
    /// This host's name in the fleet policy (default: the host name).
    #[arg(long, value_name = "NAME")]
    pub fleet_host: Option<String>,
    /// This host's fleet key (signs the fleet requests and ends made here; its public half,
    /// `PATH.pub`, is what the fleet policy lists for this host). Default:
    /// `STATE_DIR/fleet_host_key`, made at first need.
    #[arg(long, value_name = "PATH")]
    pub fleet_key: Option<PathBuf>,
    /// Make this host's fleet key if there is none, print its public half and exit.
    #[arg(long)]
    pub fleet_keygen: bool,
    /// The user the fleet agent runs as: the only one that may offer fleet records.
    #[arg(long, value_name = "USER", default_value = "jit-fleet")]
    pub fleet_agent_user: String,
}

/// Where this host's fleet key is.
fn fleet_key_path(args: &Args) -> PathBuf {
    args.fleet_key
        .clone()
        .unwrap_or_else(|| args.state_dir.join("fleet_host_key"))
}

/// Where the diagnostic log goes: stderr, or `--log-file`.
fn init_log(file: Option<&std::path::Path>) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("JITD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    match file {
        Some(path) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o640)
                .open(path)
                .map_err(|e| format!("opening log file {}: {e}", path.display()))?;
            tracing_subscriber::fmt()
                .with_writer(std::sync::Mutex::new(f))
                .with_ansi(false)
                .with_env_filter(filter)
                .init();
        }
        None => tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_env_filter(filter)
            .init(),
    }
    // A panic is a bug; it is logged where the admin finds the log, then jitd exits.
    std::panic::set_hook(Box::new(|info| {
        crate::fatal::fatal(&format!("internal error: {info}"));
    }));
    Ok(())
}

pub fn main() -> ExitCode {
    let args = Args::parse();
    let to_file = args.log_file.is_some();
    if let Err(e) = init_log(args.log_file.as_deref()) {
        eprintln!("jitd: {e}");
        return ExitCode::FAILURE;
    }
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if to_file {
                tracing::error!("stopping: {e}");
            }
            eprintln!("jitd: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--verify-audit`: the trail in the state directory checked, with the key from standard
/// input if one is there; no policy, no bus.
fn verify_audit(state_dir: &std::path::Path) -> Result<(), String> {
    let mut key = String::new();
    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        std::io::stdin()
            .read_line(&mut key)
            .map_err(|e| format!("reading the key: {e}"))?;
    }
    let key = match key.trim() {
        "" => None,
        k => Some(k.parse::<crate::seal::VerificationKey>()?),
    };
    let store = Store::open(state_dir).map_err(|e| e.to_string())?;
    // Which epochs have ended is the key file's to say, not this machine's clock (a copy is
    // checked later, elsewhere): it holds epoch n's key once epochs 0..n-1 are sealed, and
    // nobody can wind it back (the older keys are gone). So every one of those epochs must
    // have its seal, and removing the newest records with their seals shows.
    let key_state = crate::seal::read_key(&crate::seal::key_path(state_dir))?;
    let ended = key_state.as_ref().and_then(|k| {
        k.epoch
            .checked_sub(1)
            .map(|last| k.schedule.end_of(last) + crate::seal::GRACE_SECS)
    });
    let report = crate::trail::check_store(&store, key, ended).map_err(|e| e.to_string())?;
    if report.ok && report.sealed && key_state.is_none() {
        return Err(format!(
            "the trail is sealed but {} has no {}: which epochs ended cannot be told, so \
             removed seals could not be noticed (copy the whole state directory)",
            state_dir.display(),
            crate::seal::KEY_FILE
        ));
    }
    println!("{}", report.message);
    if report.ok {
        Ok(())
    } else {
        Err("the audit trail does not verify".into())
    }
}

fn run(args: Args) -> Result<(), String> {
    if args.verify_audit {
        return verify_audit(&args.state_dir);
    }
    if args.fleet_keygen {
        let host = args.fleet_host.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_default()
        });
        let made = std::fs::create_dir_all(&args.state_dir)
            .map_err(|e| format!("{}: {e}", args.state_dir.display()))
            .and_then(|()| crate::fleet::host_key(&fleet_key_path(&args), &host))
            .and_then(|k| k.public_key().to_openssh().map_err(|e| e.to_string()));
        println!("{}", made?);
        return Ok(());
    }
    if let Some(file) = &args.check_fleet {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("reading {}: {e}", file.display()))?;
        let fleet = crate::fleet::policy::FleetPolicy::parse(&text)
            .map_err(|e| format!("{}: {e}", file.display()))?;
        println!(
            "{}: OK ({} hosts, {} fleet roles, {} approvers; digest {})",
            file.display(),
            fleet.hosts.len(),
            fleet.roles.len(),
            fleet.approvers.len(),
            fleet.digest
        );
        return Ok(());
    }
    let notify = Arc::new(Notifier::from_env());
    let config = args.config.to_string_lossy().into_owned();
    let policy = Policy::load(&config, &Nss).map_err(|e| e.to_string())?;
    if args.check_config {
        // The fleet policy it names too: a bad one would stop jitd at start.
        if let Some((fleet, host, file)) = load_fleet(&args, policy.fleet.as_deref())? {
            // The agent's TLS files: a path that is wrong breaks only the agent, quietly.
            for (what, path) in [
                ("ca", &fleet.etcd_ca),
                ("cert", &fleet.etcd_cert),
                ("key", &fleet.etcd_key),
            ] {
                if !path.is_empty()
                    && let Err(e) = std::fs::metadata(path)
                {
                    return Err(format!(
                        "fleet policy {}: [etcd] {what} {path}: {e}",
                        file.display()
                    ));
                }
            }
            println!(
                "{}: OK (this host '{host}'; {} hosts, {} fleet roles)",
                file.display(),
                fleet.hosts.len(),
                fleet.roles.len()
            );
        }
        let mut warnings: Vec<String> = policy.warnings.iter().map(ToString::to_string).collect();
        warnings.extend(static_rule_warnings(&policy, &args.sudoers_dir));
        warnings.extend(crate::command_paths::warnings(&policy));
        for w in &warnings {
            eprintln!("jitd: warning: {w}");
        }
        println!(
            "{config}: OK ({} roles, {} warnings)",
            policy.roles.len(),
            warnings.len()
        );
        return Ok(());
    }
    tracing::info!(
        "jitd {} starting (pid {}), policy {config}",
        env!("CARGO_PKG_VERSION"),
        std::process::id()
    );
    for w in &policy.warnings {
        tracing::warn!("policy: {w}");
    }
    if !nix::unistd::geteuid().is_root() {
        return Err("jitd must run as root (it owns the sudoers rules it writes)".into());
    }
    let group_edits = policy
        .roles
        .iter()
        .any(|r| !r.account && !r.groups.is_empty());
    // Accounts that exist already (made under an earlier policy) must still be removable.
    let accounts = policy.roles.iter().any(|r| r.account)
        || crate::accounts::AccountEditor::in_range(&crate::accounts::ShadowTools::new(
            args.state_dir.join("skel"),
        ))
        .is_ok_and(|found| !found.is_empty());
    crate::privileges::drop_all(&crate::privileges::tool_caps(group_edits, accounts))?;
    crate::store::prepare_state_dir(&args.state_dir).map_err(|e| e.to_string())?;
    // Held until jitd ends: a second jitd on this state directory refuses to start.
    let _lock = StateLock::acquire(&args.state_dir)?;
    let store = Store::open(&args.state_dir).map_err(|e| e.to_string())?;
    let sudoers = SudoersDir::open(&args.sudoers_dir).map_err(|e| e.0)?;
    let _rules_lock = RulesLock::acquire(&args.sudoers_dir)?;
    let mirror = Arc::new(Mirror::connect(args.syslog_socket.clone()));
    let mut core = Core::new(
        policy,
        store,
        Box::new(sudoers),
        Box::new(Nss),
        Arc::new(SystemClock::new()),
        Some(mirror),
    );
    core.enable_sealing(&args.state_dir);
    if let Some((policy, host, _)) = load_fleet(&args, core.policy().fleet.as_deref())? {
        let key = crate::fleet::host_key(&fleet_key_path(&args), &host);
        core.set_fleet(crate::grants::fleet::FleetConfig::new(policy, host, key));
    }
    core.set_group_editor(Box::new(crate::groups::Gpasswd));
    core.set_account_editor(Box::new(crate::accounts::ShadowTools::new(
        args.state_dir.join("skel"),
    )));
    let started = std::time::Instant::now();
    let rep = core
        .reconcile()
        .map_err(|e| format!("reconciliation failed: {e}"))?;
    tracing::info!(
        "reconciled in {:.1}ms: {} expired, {} removed, {} restored, {} revoked, {} session(s) \
         tracked again",
        started.elapsed().as_secs_f64() * 1000.0,
        rep.expired,
        rep.removed,
        rep.restored,
        rep.revoked,
        rep.sessions
    );
    let svc = Arc::new(Service::new(core));
    // Bound now, so a second jitd on this socket stops before it touches the bus; served once
    // the bus name is taken.
    let (pam_listener, socket_file) = crate::pam_socket::bind(&args.pam_socket)?;
    let traces = Arc::new(Traces::default());
    let _ = traces.socket.set(socket_file);
    spawn_signal_thread(svc.clone(), config, notify.clone(), traces.clone())?;
    svc.hub().start()?;
    let timer_svc = svc.clone();
    let timer_notify = notify.clone();
    std::thread::Builder::new()
        .name("expiry".into())
        .spawn(move || {
            timer_svc.run_timer(&timer_notify);
            crate::fatal::fatal("the expiry timer stopped");
        })
        .map_err(|e| format!("starting the expiry timer: {e}"))?;
    let served = zbus::block_on(serve(
        svc,
        (args.notifier_user, args.fleet_agent_user),
        args.bus,
        pam_listener,
        &notify,
        args.pid_file,
        &traces,
    ));
    notify.stopping();
    traces.remove();
    served
}

/// Static sudoers rules that a grant would unlock under `require_grant` (see
/// [`crate::static_rules`]). Reading sudoers needs root: anyone else is told it was not
/// checked.
fn static_rule_warnings(policy: &Policy, sudoers_dir: &std::path::Path) -> Vec<String> {
    let main = std::path::Path::new(crate::static_rules::SUDOERS);
    if !nix::unistd::geteuid().is_root() {
        eprintln!(
            "jitd: note: static sudoers rules not checked (reading {} needs root)",
            main.display()
        );
        return Vec::new();
    }
    match crate::static_rules::unlocked_by_grants(policy, &Nss, main, sudoers_dir) {
        Ok(w) => w,
        Err(e) => vec![format!("static sudoers rules could not be checked: {e}")],
    }
}

/// SIGHUP re-reads the policy; SIGTERM and SIGINT stop jitd, saying so. The signals are
/// blocked in every thread (threads inherit the mask of the one that starts them; children
/// start with an empty mask) and taken synchronously by this one, so no handler runs in
/// async-signal context. A policy that does not validate is refused and the old one kept.
fn spawn_signal_thread(
    svc: Arc<Service>,
    config: String,
    notify: Arc<Notifier>,
    traces: Arc<Traces>,
) -> Result<(), String> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    for sig in [Signal::SIGHUP, Signal::SIGTERM, Signal::SIGINT] {
        set.add(sig);
    }
    set.thread_block()
        .map_err(|e| format!("blocking SIGHUP, SIGTERM and SIGINT: {e}"))?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            while let Ok(sig) = set.wait() {
                if sig != Signal::SIGHUP {
                    tracing::info!(
                        "stopping on {sig}: grants stay in force until their end (NOTAFTER) \
                         and are reconciled at the next start"
                    );
                    notify.stopping();
                    traces.remove();
                    std::process::exit(0);
                }
                match Policy::load(&config, &Nss) {
                    Ok(p) => {
                        let roles = p.roles.len();
                        match svc.write(|c| c.replace_policy(p)) {
                            Ok(()) => {
                                tracing::info!("policy reloaded from {config}: {roles} roles");
                                notify.status(&format!("serving; policy reloaded: {roles} roles"));
                            }
                            Err(e) => tracing::error!("policy reload failed: {e}"),
                        }
                    }
                    Err(e) => {
                        // reload_refused logs it (once) and keeps it for `jitctl status`.
                        notify.status("serving; policy reload refused, previous policy kept");
                        let _ = svc.write(|c| {
                            c.reload_refused(e.to_string());
                            Ok(())
                        });
                    }
                }
            }
        })
        .map(|_| ())
        .map_err(|e| format!("starting the reload thread: {e}"))
}

async fn serve(
    svc: Arc<Service>,
    (notifier_user, fleet_user): (String, String),
    bus: Option<String>,
    pam_listener: std::os::unix::net::UnixListener,
    notify: &Notifier,
    pid_path: Option<PathBuf>,
    traces: &Traces,
) -> Result<(), String> {
    let ids = Arc::new(Identities::default());
    let builder = match &bus {
        Some(addr) => zbus::connection::Builder::address(addr.as_str()),
        None => zbus::connection::Builder::system(),
    };
    let conn = builder
        .serve_at(
            jit_proto::OBJECT_PATH,
            UserInterface {
                svc: svc.clone(),
                ids: ids.clone(),
            },
        )
        .serve_at(
            jit_proto::OBJECT_PATH,
            PamInterface {
                svc: svc.clone(),
                ids: ids.clone(),
            },
        )
        .serve_at(
            jit_proto::OBJECT_PATH,
            crate::bus::NotifyInterface {
                svc: svc.clone(),
                ids: ids.clone(),
                agent: notifier_user,
            },
        )
        .serve_at(
            jit_proto::OBJECT_PATH,
            crate::bus::FleetInterface {
                svc: svc.clone(),
                ids,
                agent: fleet_user,
            },
        )
        .build()
        .await
        .map_err(|e| format!("cannot connect to the bus: {e}"))?;
    take_name(&conn).await?;
    follow_watchers(&conn, &svc).await?;
    svc.hub().set_connection(conn.clone());
    // Its loop only ends on an error of its own, which stops jitd (no PAM socket, no jitd:
    // the service manager restarts it).
    zruntime::spawn(async move {
        if let Err(e) = crate::pam_socket::serve(pam_listener, svc).await {
            crate::fatal::fatal(&format!("the PAM socket stopped: {e}"));
        }
    })
    .detach();
    if let Some(path) = pid_path {
        let _ = traces.pid.set(PidFile::write(&path)?);
    }
    tracing::info!(
        "serving {} on {}",
        jit_proto::BUS_NAME,
        bus.as_deref().unwrap_or("the system bus")
    );
    // Ready only now: reconciled, timer running, name taken (Type=notify in the unit).
    notify.ready(&format!("serving {}", jit_proto::BUS_NAME));
    crate::faults::arm();
    // The bus went away (dbus-daemon restarted or stopped): exit so the service manager
    // restarts jitd, which reconciles again before it takes its name on the new bus.
    conn.closed().await;
    Err("lost the connection to the bus; exiting so the service manager restarts jitd".into())
}

/// Forgets each watcher (`jitctl watch`) as its connection leaves the bus.
async fn follow_watchers(conn: &zbus::Connection, svc: &Arc<Service>) -> Result<(), String> {
    use futures_util::StreamExt;
    let dbus = zbus::fdo::DBusProxy::new(conn)
        .await
        .map_err(|e| format!("cannot follow the bus's names: {e}"))?;
    let mut changes = dbus
        .receive_name_owner_changed()
        .await
        .map_err(|e| format!("cannot follow the bus's names: {e}"))?;
    let hub = svc.hub().clone();
    zruntime::spawn(async move {
        while let Some(change) = changes.next().await {
            if let Ok(args) = change.args()
                && args.new_owner().is_none()
                && hub.unsubscribe(args.name().as_str())
            {
                tracing::info!("{} stopped watching", args.name());
            }
        }
    })
    .detach();
    Ok(())
}

/// Asks for org.jit.Jitd without replacing an owner and without queueing: a running jitd
/// keeps its name, and this one says who has it and stops.
async fn take_name(conn: &zbus::Connection) -> Result<(), String> {
    use zbus::fdo::{RequestNameFlags, RequestNameReply};
    match conn
        .request_name_with_flags(jit_proto::BUS_NAME, RequestNameFlags::DO_NOT_QUEUE)
        .await
    {
        Ok(RequestNameReply::PrimaryOwner | RequestNameReply::AlreadyOwner) => return Ok(()),
        Ok(_) | Err(zbus::Error::NameTaken) => {}
        Err(e) => return Err(format!("cannot take bus name {}: {e}", jit_proto::BUS_NAME)),
    }
    let owner = match zbus::fdo::DBusProxy::new(conn).await {
        Ok(p) => match zbus::names::BusName::try_from(jit_proto::BUS_NAME) {
            Ok(name) => p
                .get_connection_unix_process_id(name)
                .await
                .map(|pid| format!("another jitd (pid {pid})"))
                .unwrap_or_else(|_| "another process".into()),
            Err(_) => "another process".into(),
        },
        Err(_) => "another process".into(),
    };
    Err(format!(
        "{} is already owned by {owner}: jitd is already running on this bus; not starting a \
         second one",
        jit_proto::BUS_NAME
    ))
}

/// The fleet policy jitd takes part under (`--fleet`, or `[settings] fleet` of jit.toml),
/// read and checked, with this host's name in it and the file: None outside a fleet.
fn load_fleet(
    args: &Args,
    from_policy: Option<&str>,
) -> Result<Option<(crate::fleet::policy::FleetPolicy, String, PathBuf)>, String> {
    let Some(file) = args
        .fleet
        .clone()
        .or_else(|| from_policy.map(PathBuf::from))
    else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&file)
        .map_err(|e| format!("reading the fleet policy {}: {e}", file.display()))?;
    let policy = crate::fleet::policy::FleetPolicy::parse(&text)
        .map_err(|e| format!("fleet policy {}: {e}", file.display()))?;
    let host = match &args.fleet_host {
        Some(h) => h.clone(),
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .map_err(|e| format!("this host's name: {e}"))?,
    };
    if policy.host(&host).is_none() {
        return Err(format!(
            "fleet policy {}: this host ('{host}') is not one of its hosts",
            file.display()
        ));
    }
    Ok(Some((policy, host, file)))
}
