//! jitd's start-up: arguments, policy, privileges, state, reconciliation, then the bus.

use crate::audit::Mirror;
use crate::bus::{Identities, PamInterface, UserInterface};
use crate::directory::Nss;
use crate::grants::{Core, SystemClock};
use crate::notify::Notifier;
use crate::policy::Policy;
use crate::service::Service;
use crate::store::Store;
use crate::sudoers::SudoersDir;
use clap::Parser;
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
refused and the old one kept); SIGTERM stops jitd (grants stay in force until their end and are \
reconciled at the next start).\n\n\
Environment: JITD_LOG sets the diagnostic log filter (default info), written to stderr. \
NOTIFY_SOCKET and WATCHDOG_USEC, set by systemd, enable readiness and watchdog notifications.\n\n\
Files: /etc/jit/jit.toml (policy), /var/lib/jitd/jitd.db (state and audit trail, SQLite), \
/etc/sudoers.d/jit-s00 to jit-s0f (the ephemeral rules; do not edit).\n\n\
Exit status: 0 after --check-config on a valid policy; 1 on any error, including a lost bus \
connection (the service manager restarts jitd)."
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
}

pub fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("JITD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jitd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let notify = Arc::new(Notifier::from_env());
    let config = args.config.to_string_lossy().into_owned();
    let policy = Policy::load(&config, &Nss).map_err(|e| e.to_string())?;
    if args.check_config {
        for w in &policy.warnings {
            eprintln!("jitd: warning: {w}");
        }
        println!(
            "{config}: OK ({} roles, {} warnings)",
            policy.roles.len(),
            policy.warnings.len()
        );
        return Ok(());
    }
    for w in &policy.warnings {
        tracing::warn!("policy: {w}");
    }
    if !nix::unistd::geteuid().is_root() {
        return Err("jitd must run as root (it owns the sudoers rules it writes)".into());
    }
    crate::privileges::drop_all()?;
    let store = Store::open(&args.state_dir).map_err(|e| e.to_string())?;
    let sudoers = SudoersDir::open(&args.sudoers_dir)?;
    let mirror = Arc::new(Mirror::connect());
    let mut core = Core::new(
        policy,
        store,
        Box::new(sudoers),
        Box::new(Nss),
        Arc::new(SystemClock::new()),
        Some(mirror),
    );
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
    spawn_reloader(svc.clone(), config, notify.clone())?;
    let timer_svc = svc.clone();
    let timer_notify = notify.clone();
    std::thread::Builder::new()
        .name("expiry".into())
        .spawn(move || timer_svc.run_timer(&timer_notify))
        .map_err(|e| format!("starting the expiry timer: {e}"))?;
    let served = zbus::block_on(serve(svc, args.bus, &notify));
    notify.stopping();
    served
}

/// SIGHUP re-reads the policy. The signal is blocked in every thread (threads inherit the
/// mask of the one that starts them) and taken synchronously by this one, so no handler runs
/// in async-signal context. A policy that does not validate is refused and the old one kept.
fn spawn_reloader(svc: Arc<Service>, config: String, notify: Arc<Notifier>) -> Result<(), String> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGHUP);
    set.thread_block()
        .map_err(|e| format!("blocking SIGHUP: {e}"))?;
    std::thread::Builder::new()
        .name("reload".into())
        .spawn(move || {
            while let Ok(sig) = set.wait() {
                if sig != Signal::SIGHUP {
                    continue;
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
                        tracing::error!("policy reload refused, previous policy kept: {e}");
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

async fn serve(svc: Arc<Service>, bus: Option<String>, notify: &Notifier) -> Result<(), String> {
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
        .serve_at(jit_proto::OBJECT_PATH, PamInterface { svc, ids })
        .name(jit_proto::BUS_NAME)
        .build()
        .await
        .map_err(|e| format!("cannot take bus name {}: {e}", jit_proto::BUS_NAME))?;
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
    Err("lost the connection to the bus".into())
}
