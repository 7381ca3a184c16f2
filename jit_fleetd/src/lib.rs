//! jit-fleetd, the fleet agent: an unprivileged process (user `jit-fleet`, network allowed)
//! that carries fleet records between etcd and this host's jitd. It decides nothing: every
//! request that names this host is offered to jitd with the approvals and ends etcd holds
//! for it, jitd verifies them by its own policy and the signatures and says what it did,
//! and the agent writes that acknowledgement back to etcd. A compromised agent, or etcd,
//! can delay or drop records; it cannot grant.
//!
//! Keys (prefix `/jit/v1/`): each host writes under its own name only (etcd RBAC), `HOST/req/ID`
//! (a request made there, signed by its key), `HOST/appr/ID/APPROVER` (an approval given
//! there, signed by the approver's key), `HOST/end/ID`, `HOST/ack/ID` (what the host did with
//! request ID), `HOST/alive` (its heartbeat, on a lease). Beside the watch, the agent
//! publishes what jitd made on this host (`Fleet1.Take`) and tells jitd everything etcd holds
//! (`Fleet1.Sync`: what `jitctl list --fleet` shows, and proof the agent is in touch).
//!
//! On every (re)connection the agent lists the prefix and offers everything that concerns
//! this host (jitd answers `unchanged` for what it applied already), then watches from the
//! revision it listed at. A watch cancelled by compaction, an etcd member gone, all of etcd
//! gone: the agent connects again and lists again; meanwhile jitd ends grants on its own
//! clock.
#![forbid(unsafe_code)]

use clap::Parser;
use etcd_client::{
    Client, ConnectOptions, EventType, GetOptions, PutOptions, TlsOptions, WatchOptions,
};
use jit_proto::fleet::{Key, PREFIX, id_of_host};
use serde::Deserialize;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Duration;

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
#[derive(Clone)]
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

    /// Tells jitd what etcd holds (in slices the bus takes).
    async fn sync(
        &self,
        revision: i64,
        reset: bool,
        changes: &[(String, String)],
    ) -> Result<(), String> {
        let mut first = reset;
        if changes.is_empty() {
            return self.sync_one(revision, first, &[]).await;
        }
        for chunk in changes.chunks(SYNC_CHUNK) {
            self.sync_one(revision, first, chunk).await?;
            first = false;
        }
        Ok(())
    }

    async fn sync_one(
        &self,
        revision: i64,
        reset: bool,
        changes: &[(String, String)],
    ) -> Result<(), String> {
        let relist = self
            .proxy
            .sync(revision, reset, changes)
            .await
            .map_err(|e| format!("jitd (sync): {e}"))?;
        if relist {
            return Err("jitd has restarted: listing everything again".into());
        }
        Ok(())
    }
}

/// Records per `Sync` call.
const SYNC_CHUNK: usize = 512;
/// Most watch replies taken together into one `Sync`, and about how many bytes of values.
const MAX_BATCH: usize = 256;
const MAX_BATCH_BYTES: usize = 4 << 20;
/// Keys per page when listing.
const PAGE: i64 = 1000;
/// A heartbeat's lease: `HOST/alive` goes this long after the agent stops renewing it.
const ALIVE_TTL: i64 = 30;

/// Which keys of etcd each fleet request has (from the listing, kept up by the watch).
#[derive(Default)]
struct Index {
    by_id: HashMap<String, BTreeSet<String>>,
}

impl Index {
    /// Takes a key in; the request to offer again because of it (acks change nothing a
    /// host decides).
    fn put(&mut self, key: &str) -> Option<String> {
        let k = Key::parse(key)?;
        let id = k.request_id()?.to_string();
        self.by_id
            .entry(id.clone())
            .or_default()
            .insert(key.to_string());
        (!matches!(k, Key::Ack { .. })).then_some(id)
    }

    fn has(&self, id: &str, key: &str) -> bool {
        self.by_id.get(id).is_some_and(|keys| keys.contains(key))
    }

    fn delete(&mut self, key: &str) -> Option<String> {
        let id = Key::parse(key)?.request_id()?.to_string();
        if let Some(keys) = self.by_id.get_mut(&id) {
            keys.remove(key);
            if keys.is_empty() {
                self.by_id.remove(&id);
            }
        }
        Some(id)
    }

    /// Request `id`'s own key (under the prefix of the host whose id it is), its approvals'
    /// and ends' keys: at most [`PER_WRITER`] of each from any one host, so no host can
    /// crowd out the others' records.
    fn records(&self, id: &str) -> (Option<String>, Vec<String>, Vec<String>) {
        let (mut req, mut appr, mut ends) = (None, Vec::new(), Vec::new());
        let mut per_writer: HashMap<String, usize> = HashMap::new();
        for key in self.by_id.get(id).into_iter().flatten() {
            let Some(k) = Key::parse(key) else { continue };
            let n = per_writer.entry(k.host().to_string()).or_default();
            match &k {
                Key::Request { host, id } if id_of_host(id, host) => req = Some(key.clone()),
                Key::Approval { .. } if *n < PER_WRITER && appr.len() < MAX_RECORDS => {
                    *n += 1;
                    appr.push(key.clone());
                }
                Key::End { .. } if ends.len() < MAX_RECORDS => ends.push(key.clone()),
                _ => {}
            }
        }
        (req, appr, ends)
    }
}

/// Most approvals taken from one host's prefix for one request.
const PER_WRITER: usize = 8;

/// The end of the key range that starts with `prefix`.
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}

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

/// Everything under [`PREFIX`] at one revision, page by page: (key, value) pairs (values
/// over [`MAX_VALUE`] left out) and the revision.
async fn list(client: &mut Client) -> Result<(Vec<(String, String)>, i64), String> {
    let end = prefix_end(PREFIX);
    let mut out = Vec::new();
    let mut from = PREFIX.as_bytes().to_vec();
    let mut revision = 0;
    loop {
        let mut opts = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
        if revision > 0 {
            opts = opts.with_revision(revision);
        }
        let got = client
            .get(from.clone(), Some(opts))
            .await
            .map_err(|e| format!("listing {PREFIX}: {e}"))?;
        if revision == 0 {
            revision = got.header().map_or(0, |h| h.revision());
        }
        for kv in got.kvs() {
            if let (Ok(k), Ok(v)) = (kv.key_str(), kv.value_str())
                && v.len() <= MAX_VALUE
            {
                out.push((k.to_string(), v.to_string()));
            }
        }
        match (got.more(), got.kvs().last()) {
            (true, Some(last)) => {
                from = last.key().to_vec();
                from.push(0);
            }
            _ => return Ok((out, revision)),
        }
    }
}

/// One connection to etcd: list, tell jitd, offer, then watch until something breaks;
/// beside it, the publisher puts what jitd made here and keeps this host's heartbeat.
async fn session(cfg: &Config, jitd: &Jitd, member: &mut usize) -> Result<(), String> {
    let (mut client, live) = connect(cfg, *member).await?;
    *member = live;
    tracing::info!("connected to etcd at {}", cfg.etcd.endpoints[live]);
    let (listed, revision) = list(&mut client).await?;
    let mut index = Index::default();
    let mut ids = BTreeSet::new();
    for (k, _) in &listed {
        ids.extend(index.put(k));
    }
    jitd.sync(revision, true, &listed).await?;
    drop(listed);
    tracing::info!(
        "listed {} fleet request(s) at revision {revision}; watching",
        ids.len()
    );
    let publisher = tokio::spawn(publish(client.clone(), cfg.clone(), jitd.clone()));
    let outcome = watch(&mut client, cfg, jitd, index, ids, revision).await;
    publisher.abort();
    outcome
}

async fn watch(
    client: &mut Client,
    cfg: &Config,
    jitd: &Jitd,
    mut index: Index,
    ids: BTreeSet<String>,
    revision: i64,
) -> Result<(), String> {
    let mut acked: HashMap<String, String> = HashMap::new();
    for id in ids {
        offer_one(client, cfg, jitd, &index, &id, &mut acked).await;
    }
    let mut stream = client
        .watch(
            PREFIX,
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(revision + 1)
                    .with_progress_notify(),
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
        // What else has arrived already, taken with it: one Sync (and one offer per
        // request) for a burst, not one per event. A hundred hosts acking one grant are a
        // hundred events on every host.
        let mut bytes = resp
            .events()
            .iter()
            .filter_map(|e| e.kv())
            .map(|kv| kv.value().len())
            .sum::<usize>();
        let mut batch = vec![resp];
        while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            match tokio::time::timeout(Duration::ZERO, stream.message()).await {
                Ok(got) => match got.map_err(|e| format!("watch: {e}"))? {
                    Some(more) => {
                        bytes += more
                            .events()
                            .iter()
                            .filter_map(|e| e.kv())
                            .map(|kv| kv.value().len())
                            .sum::<usize>();
                        batch.push(more);
                    }
                    None => break,
                },
                Err(_) => break,
            }
        }
        let mut at = 0;
        let mut changes = Vec::new();
        let mut ids = BTreeSet::new();
        for resp in &batch {
            if resp.canceled() {
                return Err(format!(
                    "the watch was cancelled (compacted at {}: {}); listing again",
                    resp.compact_revision(),
                    resp.cancel_reason()
                ));
            }
            at = at.max(resp.header().map_or(0, |h| h.revision()));
            for ev in resp.events() {
                let Some(kv) = ev.kv() else { continue };
                let Ok(key) = kv.key_str() else { continue };
                match ev.event_type() {
                    EventType::Put => {
                        ids.extend(index.put(key));
                        if let Ok(v) = kv.value_str()
                            && v.len() <= MAX_VALUE
                        {
                            changes.push((key.to_string(), v.to_string()));
                        }
                    }
                    EventType::Delete => {
                        ids.extend(index.delete(key));
                        changes.push((key.to_string(), String::new()));
                    }
                }
            }
        }
        // Even with no change, a reply says the agent is in touch at `at`.
        jitd.sync(at, false, &changes).await?;
        for id in ids {
            offer_one(client, cfg, jitd, &index, &id, &mut acked).await;
        }
    }
    Err("the watch ended".into())
}

/// Puts what jitd made on this host (requests, approvals, ends) into etcd, and keeps this
/// host's heartbeat (`HOST/alive`, on a lease). Only keys under this host's own prefix
/// are put: etcd refuses the others anyway.
async fn publish(mut client: Client, cfg: Config, jitd: Jitd) {
    let own = format!("{PREFIX}{}/", cfg.host);
    let mut keeper = None;
    let mut retry = Duration::from_secs(1);
    loop {
        if keeper.is_none() {
            keeper = alive(&mut client, &cfg).await;
        }
        if let Some((k, answers)) = keeper.as_mut() {
            // Renewed, and the answer read (unread answers would fill the stream): a lease
            // that is gone (ttl 0) is made again.
            let renewed = k.keep_alive().await.is_ok()
                && matches!(
                    tokio::time::timeout(Duration::from_secs(5), answers.message()).await,
                    Ok(Ok(Some(r))) if r.ttl() > 0
                );
            if !renewed {
                keeper = None;
            }
        }
        let got = match jitd.proxy.take(10).await {
            Ok(got) => got,
            Err(e) => {
                tracing::warn!("jitd (take): {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut done = Vec::new();
        let mut failed = false;
        for (key, value) in got {
            if !key.starts_with(&own) || Key::parse(&key).is_none() {
                tracing::warn!("jitd gave a record for another prefix ({key}); left out");
                // A record to put leaves the outbox; a deletion is not said to be done
                // (jitd would drop from its view a key etcd still holds).
                if !value.is_empty() {
                    done.push((key, value));
                }
                continue;
            }
            // An empty value: a record of this host's no host needs any more.
            let result = if value.is_empty() {
                client.delete(key.as_str(), None).await.map(|_| "deleted")
            } else {
                client
                    .put(key.as_str(), value.as_str(), None)
                    .await
                    .map(|_| "published")
            };
            match result {
                Ok(what) => {
                    tracing::info!("{what} {key}");
                    done.push((key, value));
                }
                Err(e) => {
                    tracing::warn!("writing {key}: {e}");
                    failed = true;
                    break;
                }
            }
        }
        if !done.is_empty()
            && let Err(e) = jitd.proxy.published(&done).await
        {
            tracing::warn!("jitd (published): {e}");
        }
        // etcd refused (no rights, or down): the same records come back at once, so wait,
        // longer each time, rather than ask again in a loop.
        if failed {
            tokio::time::sleep(retry).await;
            retry = (retry * 2).min(Duration::from_secs(30));
        } else {
            retry = Duration::from_secs(1);
        }
    }
}

/// This host's heartbeat: `HOST/alive` on a lease of [`ALIVE_TTL`] (renewed by the
/// publisher; gone when the agent is).
async fn alive(
    client: &mut Client,
    cfg: &Config,
) -> Option<(etcd_client::LeaseKeeper, etcd_client::LeaseKeepAliveStream)> {
    let lease = client.lease_grant(ALIVE_TTL, None).await.ok()?.id();
    let key = Key::Alive {
        host: cfg.host.clone(),
    }
    .path();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    client
        .put(
            key,
            format!("{{\"since\":{now}}}"),
            Some(PutOptions::new().with_lease(lease)),
        )
        .await
        .ok()?;
    client.lease_keep_alive(lease).await.ok()
}

/// The value at `key`, if it is there and not over [`MAX_VALUE`].
async fn value(client: &mut Client, key: &str) -> Result<Option<String>, String> {
    let got = client
        .get(key, None)
        .await
        .map_err(|e| format!("reading {key}: {e}"))?;
    Ok(got
        .kvs()
        .first()
        .filter(|kv| kv.value().len() <= MAX_VALUE)
        .and_then(|kv| kv.value_str().ok())
        .map(str::to_string))
}

/// [`handle`], with a failure of one request kept to that request (logged): a record
/// nobody signed must not stop the others from being offered.
async fn offer_one(
    client: &mut Client,
    cfg: &Config,
    jitd: &Jitd,
    index: &Index,
    id: &str,
    acked: &mut HashMap<String, String>,
) {
    if let Err(e) = handle(client, cfg, jitd, index, id, acked).await {
        tracing::warn!("request {id}: {e}");
    }
}

/// Offers request `id` (if it names this host) with its approvals and ends to jitd, and
/// writes jitd's acknowledgement back when it changed.
async fn handle(
    client: &mut Client,
    cfg: &Config,
    jitd: &Jitd,
    index: &Index,
    id: &str,
    acked: &mut HashMap<String, String>,
) -> Result<(), String> {
    let (req_key, appr_keys, end_keys) = index.records(id);
    let Some(req_key) = req_key else {
        return Ok(());
    };
    let Some(request) = value(client, &req_key).await? else {
        return Ok(());
    };
    if !names_host(&request, &cfg.host) {
        return Ok(());
    }
    let mut approvals = Vec::new();
    for k in &appr_keys {
        approvals.extend(value(client, k).await?);
    }
    let mut ends = Vec::new();
    for k in &end_keys {
        ends.extend(value(client, k).await?);
    }
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
    let key = Key::Ack {
        host: cfg.host.clone(),
        id: id.to_string(),
    }
    .path();
    // What was said stands: nothing new is written for "unchanged" when this host's ack
    // is there already (every reconnection offers everything again).
    let unchanged =
        serde_json::from_str::<jit_proto::fleet::Ack>(&ack).is_ok_and(|a| a.outcome == "unchanged");
    if acked.get(id) == Some(&ack) || (unchanged && index.has(id, &key)) {
        return Ok(());
    }
    client
        .put(key, ack.clone(), None)
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
        // Colours for a terminal only: the journal stores them as escapes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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
    fn given_keys_then_each_request_gets_its_own_record_and_no_host_crowds_out_the_others() {
        let mut ix = Index::default();
        assert_eq!(ix.put("/jit/v1/db2/req/db2-7f").as_deref(), Some("db2-7f"));
        // Another host's copy of db2's request is not the request.
        ix.put("/jit/v1/db1/req/db2-7f");
        for i in 0..20 {
            ix.put(&format!("/jit/v1/evil/appr/db2-7f/a{i:02}"));
        }
        ix.put("/jit/v1/db3/appr/db2-7f/bob");
        ix.put("/jit/v1/db3/end/db2-7f");
        // An ack is kept (so it is not written again) but offers nothing.
        assert_eq!(ix.put("/jit/v1/db1/ack/db2-7f"), None);
        assert!(ix.has("db2-7f", "/jit/v1/db1/ack/db2-7f"));
        assert_eq!(ix.put("/jit/v1/db1/alive"), None);
        let (req, appr, ends) = ix.records("db2-7f");
        assert_eq!(req.as_deref(), Some("/jit/v1/db2/req/db2-7f"));
        assert_eq!(appr.len(), PER_WRITER + 1);
        assert!(appr.contains(&"/jit/v1/db3/appr/db2-7f/bob".to_string()));
        assert_eq!(ends, vec!["/jit/v1/db3/end/db2-7f".to_string()]);
        ix.delete("/jit/v1/db2/req/db2-7f");
        assert_eq!(ix.records("db2-7f").0, None);
        assert!(names_host(r#"{"record":{"hosts":["db1","db2"]}}"#, "db1"));
        assert!(!names_host(r#"{"record":{"hosts":["db2"]}}"#, "db1"));
        assert!(!names_host("not json", "db1"));
        assert_eq!(prefix_end("/jit/v1/"), b"/jit/v10".to_vec());
    }
}
