//! jitd's start-up: arguments, policy, privileges, state, reconciliation, then the bus.

use crate::audit::Mirror;
use crate::bus::{Identities, PamInterface, UserInterface};
use crate::directory::Nss;
use crate::grants::{Core, SystemClock};
use crate::policy::Policy;
use crate::service::Service;
use crate::store::Store;
use crate::sudoers::SudoersDir;
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// The JIT access daemon: holds time-boxed grants and writes ephemeral sudoers rules.
#[derive(Debug, Parser)]
#[command(name = "jitd", version)]
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
        Arc::new(SystemClock),
        Some(mirror),
    );
    let started = std::time::Instant::now();
    let rep = core
        .reconcile()
        .map_err(|e| format!("reconciliation failed: {e}"))?;
    tracing::info!(
        "reconciled in {:.1}ms: {} expired, {} removed, {} restored, {} revoked",
        started.elapsed().as_secs_f64() * 1000.0,
        rep.expired,
        rep.removed,
        rep.restored,
        rep.revoked
    );
    let svc = Arc::new(Service::new(core));
    spawn_reloader(svc.clone(), config)?;
    let timer_svc = svc.clone();
    std::thread::Builder::new()
        .name("expiry".into())
        .spawn(move || timer_svc.run_timer())
        .map_err(|e| format!("starting the expiry timer: {e}"))?;
    zbus::block_on(serve(svc, args.bus))
}

/// SIGHUP re-reads the policy. The signal is blocked in every thread (threads inherit the
/// mask of the one that starts them) and taken synchronously by this one, so no handler runs
/// in async-signal context. A policy that does not validate is refused and the old one kept.
fn spawn_reloader(svc: Arc<Service>, config: String) -> Result<(), String> {
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
                                tracing::info!("policy reloaded from {config}: {roles} roles")
                            }
                            Err(e) => tracing::error!("policy reload failed: {e}"),
                        }
                    }
                    Err(e) => {
                        tracing::error!("policy reload refused, previous policy kept: {e}");
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

async fn serve(svc: Arc<Service>, bus: Option<String>) -> Result<(), String> {
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
    // The bus went away (dbus-daemon restarted or stopped): exit so the service manager
    // restarts jitd, which reconciles again before it takes its name on the new bus.
    conn.closed().await;
    Err("lost the connection to the bus".into())
}
