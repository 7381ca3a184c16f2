//! `jit-notifyd`: the notifier agent. It takes the deliveries jitd queued for
//! `[[notifier]]` programs (`org.jit.Jitd.Notify1`, which only its user may call), runs each
//! program ([`crate::outbox::attempt`]: no shell, the event document on standard input, its
//! own process group, the notifier's timeout) and reports how it went. It runs as an
//! unprivileged system user (`jit-notify`), outside jitd's sandbox, with the network jitd
//! does not have: mail, chat and ticket systems are reached from here, never from the root
//! daemon. It refuses to run as root.

use std::process::ExitCode;
use std::time::Duration;

/// Deliveries asked for at once, and the most that run at once.
const BATCH: u32 = 16;
/// How long one `Take` may wait for a delivery.
const WAIT_SECS: u32 = 30;
/// Longest pause before connecting again after jitd or the bus went away.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

#[derive(Debug, clap::Parser)]
#[command(
    name = "jit-notifyd",
    version,
    about = "The notifier agent of jitd: runs [[notifier]] programs"
)]
pub struct Args {
    /// The bus jitd is on (default: the system bus).
    #[arg(long, value_name = "ADDRESS")]
    pub bus: Option<String>,
}

pub fn main() -> ExitCode {
    let args = <Args as clap::Parser>::parse();
    if nix::unistd::geteuid().is_root() {
        eprintln!(
            "jit-notifyd: refusing to run as root: it runs notifier programs with network \
             access; run it as {} (install.sh and the unit do)",
            jit_proto::NOTIFIER_USER
        );
        return ExitCode::from(1);
    }
    let mut backoff = Duration::from_secs(1);
    loop {
        match zbus::block_on(serve(args.bus.as_deref())) {
            Ok(()) => backoff = Duration::from_secs(1),
            Err(e) => {
                eprintln!("jit-notifyd: {e}; trying again in {}s", backoff.as_secs());
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// One connection: takes and delivers until it fails.
async fn serve(bus: Option<&str>) -> Result<(), String> {
    let builder = match bus {
        Some(addr) => zbus::connection::Builder::address(addr),
        None => zbus::connection::Builder::system(),
    };
    let conn = builder
        .method_timeout(Duration::from_secs(u64::from(WAIT_SECS) + 60))
        .build()
        .await
        .map_err(|e| format!("cannot connect to the bus: {e}"))?;
    let jitd = jit_proto::notify1(&conn)
        .await
        .map_err(|e| format!("cannot reach jitd: {e}"))?;
    // The first look does not wait: it shows at once that jitd lets this user in.
    let running = std::sync::Arc::new(Running::default());
    let mut wait = 0;
    loop {
        let free = running.wait_below(BATCH);
        let batch = jitd
            .take(free, wait)
            .await
            .map_err(|e| format!("taking deliveries from jitd: {e}"))?;
        if wait == 0 {
            eprintln!("jit-notifyd: taking deliveries from jitd");
            wait = WAIT_SECS;
        }
        // jitd hands out, per notifier and request, only the oldest delivery, so one thread
        // per delivery runs notifiers side by side (a hung one delays only itself), each
        // request's events in order, at most BATCH at once. A report that cannot be made
        // leaves the delivery leased: it comes back when the lease ends (at least once,
        // never lost).
        for d in batch {
            let (jitd, running) = (jitd.clone(), running.clone());
            running.start();
            std::thread::spawn(move || {
                deliver(&jitd, &d);
                running.finish();
            });
        }
    }
}

/// How many deliveries run now.
#[derive(Default)]
struct Running {
    count: std::sync::Mutex<u32>,
    done: std::sync::Condvar,
}

impl Running {
    fn lock(&self) -> std::sync::MutexGuard<'_, u32> {
        self.count
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn start(&self) {
        *self.lock() += 1;
    }

    fn finish(&self) {
        let mut n = self.lock();
        *n = n.saturating_sub(1);
        self.done.notify_all();
    }

    /// Waits until fewer than `max` run; how many more may start.
    fn wait_below(&self, max: u32) -> u32 {
        let mut n = self.lock();
        while *n >= max {
            n = self
                .done
                .wait(n)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        max - *n
    }
}

/// One delivery: the program run, the result reported.
fn deliver(jitd: &jit_proto::Notify1Proxy<'static>, d: &jit_proto::Delivery) {
    use crate::outbox::Attempt;
    let result = crate::outbox::attempt(d);
    let (ok, permanent, error) = match &result {
        Attempt::Delivered => (true, false, String::new()),
        Attempt::Failed(e) => (false, false, e.clone()),
        Attempt::Rejected(e) => (false, true, e.clone()),
    };
    if !ok {
        eprintln!(
            "jit-notifyd: notifier '{}' failed on {} of request {} (attempt {}): {}",
            d.notifier,
            d.event,
            d.request_id,
            d.attempt,
            crate::names::escape(&error)
        );
    }
    if let Err(e) = zbus::block_on(jitd.done(d.id, ok, permanent, &error)) {
        eprintln!("jit-notifyd: reporting delivery {} to jitd: {e}", d.id);
    }
}
