//! jit-fleetd, the fleet agent: an unprivileged process (user `jit-fleet`, network allowed)
//! that carries fleet records between etcd and this host's jitd. It decides nothing: every
//! request that names this host is offered to jitd with the approvals and ends etcd holds
//! for it, jitd verifies them by its own policy and the signatures and says what it did,
//! and the agent writes that acknowledgement back to etcd. A compromised agent, or etcd,
//! can delay or drop records; it cannot grant.
//!
//! Keys (prefix [`PREFIX`]): `req/ID` (the request, signed by its host), `appr/ID/APPROVER`,
//! `end/ID/BY`, `ack/HOST/ID` (what each host did).
//!
//! On every (re)connection the agent lists the prefix and offers everything that concerns
//! this host (jitd answers `unchanged` for what it applied already), then watches from the
//! revision it listed at. A watch cancelled by compaction, an etcd member gone, all of etcd
//! gone: the agent connects again and lists again; meanwhile jitd ends grants on its own
//! clock.
#![forbid(unsafe_code)]

use clap::Parser;
use etcd_client::{Client, ConnectOptions, GetOptions, TlsOptions, WatchOptions};
use serde::Deserialize;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Duration;

/// Where fleet records live in etcd.
pub const PREFIX: &str = "/jit/v1/";
/// Most approvals or ends offered with one request (jitd refuses more).
const MAX_RECORDS: usize = 64;
/// The largest record the agent passes on (a signed request is well under 4 KiB).
const MAX_VALUE: usize = 64 * 1024;
/// How long a watch may be silent before the agent asks whether it still lives.
const IDLE: Duration = Duration::from_secs(5);
/// Longest wait between attempts to reach etcd again.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Debug, Parser)]
#[command(
    name = "jit-fleetd",
    about = "The fleet agent: etcd <-> jitd (runs as jit-fleet)"
)]
pub struct Args {
    /// The fleet policy (its [etcd] table: endpoints, ca, cert, key).
    #[arg(long, default_value = "/etc/jit/fleet.toml")]
    pub fleet: PathBuf,
    /// This host's name in the fleet policy (default: the host name).
    #[arg(long)]
    pub host: Option<String>,
    /// D-Bus address of jitd's bus instead of the system bus.
    #[arg(long)]
    pub bus: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct FleetFile {
    #[serde(default)]
    etcd: Etcd,
}

#[derive(Debug, Default, Clone, Deserialize)]
struct Etcd {
    #[serde(default)]
    endpoints: Vec<String>,
    #[serde(default)]
    ca: String,
    #[serde(default)]
    cert: String,
    #[serde(default)]
    key: String,
}

/// The agent's settings, from its arguments and the fleet policy's [etcd] table.
#[derive(Debug, Clone)]
pub struct Config {
    etcd: Etcd,
    pub host: String,
    pub bus: Option<String>,
}

impl Config {
    pub fn load(args: &Args) -> Result<Config, String> {
        let text = std::fs::read_to_string(&args.fleet)
            .map_err(|e| format!("reading {}: {e}", args.fleet.display()))?;
        let file: FleetFile =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", args.fleet.display()))?;
        if file.etcd.endpoints.is_empty() {
            return Err(format!(
                "{}: [etcd] endpoints is empty",
                args.fleet.display()
            ));
        }
        let host = match &args.host {
            Some(h) => h.clone(),
            None => std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .map_err(|e| format!("this host's name: {e}"))?,
        };
        Ok(Config {
            etcd: file.etcd,
            host,
            bus: args.bus.clone(),
        })
    }

    fn options(&self) -> Result<ConnectOptions, String> {
        let mut o = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(10))
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
        if !self.etcd.ca.is_empty() {
            let read = |p: &str| std::fs::read(p).map_err(|e| format!("reading {p}: {e}"));
            let mut tls = TlsOptions::new()
                .ca_certificate(etcd_client::Certificate::from_pem(read(&self.etcd.ca)?));
            if !self.etcd.cert.is_empty() {
                tls = tls.identity(etcd_client::Identity::from_pem(
                    read(&self.etcd.cert)?,
                    read(&self.etcd.key)?,
                ));
            }
            o = o.with_tls(tls);
        }
        Ok(o)
    }
}

/// The request id a key is about (`req/ID`, `appr/ID/..`, `end/ID/..`); None for acks,
/// heartbeats and anything else.
pub fn request_id_of(key: &str) -> Option<String> {
    let rest = key.strip_prefix(PREFIX)?;
    let (kind, rest) = rest.split_once('/')?;
    let id = match kind {
        "req" => rest,
        "appr" | "end" => rest.split_once('/')?.0,
        _ => return None,
    };
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_.:".contains(c);
    (!id.is_empty() && id.len() <= 128 && id.chars().all(plain)).then(|| id.to_string())
}

/// Whether a request record (JSON) names `host` among its hosts. Only a filter, so other
/// hosts' requests are not acked here: jitd checks it again, with the signature.
fn names_host(request: &str, host: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(request).is_ok_and(|v| {
        v["record"]["hosts"]
            .as_array()
            .is_some_and(|hosts| hosts.iter().any(|h| h.as_str() == Some(host)))
    })
}

/// jitd's fleet interface (zbus runs its own I/O thread; its futures are awaited here).
struct Jitd {
    proxy: jit_proto::Fleet1Proxy<'static>,
}

impl Jitd {
    async fn connect(bus: Option<&str>) -> Result<Jitd, String> {
        let builder = match bus {
            Some(a) => zbus::connection::Builder::address(a),
            None => zbus::connection::Builder::system(),
        };
        let conn = builder
            .build()
            .await
            .map_err(|e| format!("connecting to the bus: {e}"))?;
        let proxy = jit_proto::fleet1(&conn)
            .await
            .map_err(|e| format!("jitd's fleet interface: {e}"))?;
        Ok(Jitd { proxy })
    }
}

/// One connection to etcd: list, offer, then watch until something breaks.
/// A client of one live member, trying them in turn from `start`. One member per session
/// (rather than one channel over all of them, which keeps sending some requests to a member
/// that has gone): when it goes, the session fails and the next one takes another.
async fn connect(cfg: &Config, start: usize) -> Result<(Client, usize), String> {
    let n = cfg.etcd.endpoints.len();
    let mut last = String::new();
    for k in 0..n {
        let i = (start + k) % n;
        let ep = &cfg.etcd.endpoints[i];
        let attempt = async {
            let mut c = Client::connect([ep.as_str()], Some(cfg.options()?))
                .await
                .map_err(|e| format!("{ep}: {e}"))?;
            c.status().await.map_err(|e| format!("{ep}: {e}"))?;
            Ok::<Client, String>(c)
        };
        match tokio::time::timeout(Duration::from_secs(5), attempt).await {
            Ok(Ok(c)) => return Ok((c, i)),
            Ok(Err(e)) => last = e,
            Err(_) => last = format!("{ep}: no answer in 5 s"),
        }
    }
    Err(format!("no etcd member answers (last: {last})"))
}

async fn session(cfg: &Config, jitd: &Jitd, member: &mut usize) -> Result<(), String> {
    let (mut client, live) = connect(cfg, *member).await?;
    *member = live;
    tracing::info!("connected to etcd at {}", cfg.etcd.endpoints[live]);
    let listed = client
        .get(
            PREFIX,
            Some(GetOptions::new().with_prefix().with_keys_only()),
        )
        .await
        .map_err(|e| format!("listing {PREFIX}: {e}"))?;
    let revision = listed.header().map_or(0, |h| h.revision());
    let ids: BTreeSet<String> = listed
        .kvs()
        .iter()
        .filter_map(|kv| kv.key_str().ok().and_then(request_id_of))
        .collect();
    tracing::info!(
        "listed {} fleet request(s) at revision {revision}; watching",
        ids.len()
    );
    let mut acked: HashMap<String, String> = HashMap::new();
    for id in ids {
        offer_one(&mut client, cfg, jitd, &id, &mut acked).await;
    }
    let mut stream = client
        .watch(
            PREFIX,
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(revision + 1),
            ),
        )
        .await
        .map_err(|e| format!("watching {PREFIX}: {e}"))?;
    // A watch on a member that died can hang without an error: when nothing came for
    // IDLE, ask etcd for progress (answered on the same stream while it lives); no answer
    // in another IDLE, and the agent connects again.
    let mut asked = false;
    loop {
        let resp = match tokio::time::timeout(IDLE, stream.message()).await {
            Ok(got) => match got.map_err(|e| format!("watch: {e}"))? {
                Some(resp) => resp,
                None => break,
            },
            Err(_) if !asked => {
                stream
                    .request_progress()
                    .await
                    .map_err(|e| format!("watch progress: {e}"))?;
                asked = true;
                continue;
            }
            Err(_) => {
                return Err(format!(
                    "the watch has not answered for {} s; connecting again",
                    2 * IDLE.as_secs()
                ));
            }
        };
        asked = false;
        if resp.canceled() {
            return Err(format!(
                "the watch was cancelled (compacted at {}: {}); listing again",
                resp.compact_revision(),
                resp.cancel_reason()
            ));
        }
        let ids: BTreeSet<String> = resp
            .events()
            .iter()
            .filter_map(|ev| ev.kv())
            .filter_map(|kv| kv.key_str().ok().and_then(request_id_of))
            .collect();
        for id in ids {
            offer_one(&mut client, cfg, jitd, &id, &mut acked).await;
        }
    }
    Err("the watch ended".into())
}

/// Values of every key under `prefix`, at most [`MAX_RECORDS`].
async fn values(client: &mut Client, prefix: &str) -> Result<Vec<String>, String> {
    // Keys first, then each value alone: one huge value cannot make the whole read fail.
    let keys = client
        .get(
            prefix,
            Some(
                GetOptions::new()
                    .with_prefix()
                    .with_keys_only()
                    .with_limit(i64::try_from(MAX_RECORDS).unwrap_or(64)),
            ),
        )
        .await
        .map_err(|e| format!("listing {prefix}: {e}"))?;
    let mut out = Vec::new();
    for kv in keys.kvs() {
        let key = kv.key().to_vec();
        let got = client
            .get(key, None)
            .await
            .map_err(|e| format!("reading under {prefix}: {e}"))?;
        out.extend(
            got.kvs()
                .iter()
                .filter(|kv| kv.value().len() <= MAX_VALUE)
                .filter_map(|kv| kv.value_str().ok().map(str::to_string)),
        );
    }
    Ok(out)
}

/// [`handle`], with a failure of one request kept to that request (logged): a record
/// nobody signed must not stop the others from being offered.
async fn offer_one(
    client: &mut Client,
    cfg: &Config,
    jitd: &Jitd,
    id: &str,
    acked: &mut HashMap<String, String>,
) {
    if let Err(e) = handle(client, cfg, jitd, id, acked).await {
        tracing::warn!("request {id}: {e}");
    }
}

/// Offers request `id` (if it names this host) with its approvals and ends to jitd, and
/// writes jitd's acknowledgement back when it changed.
async fn handle(
    client: &mut Client,
    cfg: &Config,
    jitd: &Jitd,
    id: &str,
    acked: &mut HashMap<String, String>,
) -> Result<(), String> {
    let got = client
        .get(format!("{PREFIX}req/{id}"), None)
        .await
        .map_err(|e| format!("reading request {id}: {e}"))?;
    let Some(request) = got
        .kvs()
        .first()
        .filter(|kv| kv.value().len() <= MAX_VALUE)
        .and_then(|kv| kv.value_str().ok())
        .map(str::to_string)
    else {
        return Ok(());
    };
    if !names_host(&request, &cfg.host) {
        return Ok(());
    }
    let approvals = values(client, &format!("{PREFIX}appr/{id}/")).await?;
    let ends = values(client, &format!("{PREFIX}end/{id}/")).await?;
    let answer = jitd.proxy.offer(&request, &approvals, &ends).await;
    let ack = match answer {
        Ok(ack) => ack,
        // jitd refused the offer itself (unreadable records): that is the host's answer too.
        Err(e) if !e.is_service_missing() => serde_json::json!({
            "id": id,
            "host": cfg.host,
            "outcome": "refused",
            "reason": e.to_string(),
        })
        .to_string(),
        Err(e) => return Err(format!("jitd: {e}")),
    };
    if acked.get(id) == Some(&ack) {
        return Ok(());
    }
    client
        .put(format!("{PREFIX}ack/{}/{id}", cfg.host), ack.clone(), None)
        .await
        .map_err(|e| format!("writing the ack of {id}: {e}"))?;
    tracing::info!("request {id}: {ack}");
    acked.insert(id.to_string(), ack);
    Ok(())
}

/// Runs the agent for ever: a session, and after any failure another one, with backoff.
pub async fn serve(cfg: Config) -> Result<(), String> {
    let mut backoff = Duration::from_millis(200);
    let mut member = 0;
    loop {
        let started = std::time::Instant::now();
        let outcome = match Jitd::connect(cfg.bus.as_deref()).await {
            Ok(j) => session(&cfg, &j, &mut member).await,
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            tracing::warn!("{e}; trying again in {} ms", backoff.as_millis());
            // The next session starts with the next member.
            member += 1;
        }
        // A session that lasted was a good one: the next failure starts the backoff again.
        if started.elapsed() > 4 * MAX_BACKOFF {
            backoff = Duration::from_millis(200);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

pub fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    if nix::unistd::geteuid().is_root() {
        eprintln!("jit-fleetd: refusing to run as root (run it as jit-fleet)");
        return std::process::ExitCode::from(2);
    }
    let cfg = match Config::load(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("jit-fleetd: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("jit-fleetd: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    match runtime.block_on(serve(cfg)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jit-fleetd: {e}");
            std::process::ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_keys_then_the_request_they_are_about_comes_out_and_nothing_else() {
        assert_eq!(request_id_of("/jit/v1/req/db2-7").as_deref(), Some("db2-7"));
        assert_eq!(
            request_id_of("/jit/v1/appr/db2-7/bob").as_deref(),
            Some("db2-7")
        );
        assert_eq!(
            request_id_of("/jit/v1/end/db2-7/db1").as_deref(),
            Some("db2-7")
        );
        for k in [
            "/jit/v1/ack/db1/db2-7",
            "/jit/v1/hosts/db1",
            "/jit/v1/req/",
            "/jit/v1/appr/db2-7",
            "/jit/v2/req/x",
            "/jit/v1/req/a b",
        ] {
            assert_eq!(request_id_of(k), None, "{k}");
        }
        assert!(names_host(r#"{"record":{"hosts":["db1","db2"]}}"#, "db1"));
        assert!(!names_host(r#"{"record":{"hosts":["db2"]}}"#, "db1"));
        assert!(!names_host("not json", "db1"));
    }
}
