//! Fleet records offered by the fleet agent: each offer is verified here, by this host's own
//! fleet policy and the signatures ([`crate::fleet::verify`]), never trusted for having
//! come from the agent; a verified grant is applied with the machinery of local grants (a
//! request row, the sudoers rule with NOTAFTER, sessions, expiry, audit), an end revokes
//! it. Every offer gets an acknowledgement saying what this host did and why, for the
//! agent to publish.

use super::decide::refuse_accounts;
use super::*;
use crate::fleet::{Approval, Canonical, End, FleetRequest, Refused, Signed};

pub use jit_proto::fleet::Ack;
use jit_proto::fleet::{FleetView, Key};
use std::collections::{BTreeMap, HashMap};

/// Most bytes of etcd's records jitd keeps in view (requests, approvals, ends, acks).
const MAX_SEEN_BYTES: usize = 64 << 20;
/// Largest record taken from the agent (a signed request is well under 4 KiB).
const MAX_RECORD: usize = 64 << 10;
/// How long the agent may be silent before this host stops taking fleet requests (it
/// would queue them with nobody to publish them).
pub const AGENT_QUIET_SECS: i64 = 30;

/// A fleet role's duration when the prompt's answer is left empty: an hour, or less where
/// the role allows less.
fn fleet_default_duration(r: &crate::fleet::policy::FleetRole) -> u64 {
    r.max_duration.min(3600)
}

/// How a fleet grant suspended by `fleet_stale_after` is marked (its revocation's reason).
const SUSPENDED: &str = "suspended: ";

/// This host's fleet: its policy, its name in it, its key, and what the agent has shown
/// it of etcd.
pub struct FleetConfig {
    pub policy: crate::fleet::policy::FleetPolicy,
    pub host: String,
    /// Signs the requests and ends made here; an error says why there is none (requests
    /// and ends are then refused here; enforcing what others sign goes on).
    pub key: std::result::Result<ssh_key::PrivateKey, String>,
    seen: Seen,
    /// Refusals audited already (request id, digest, reason), bounded.
    refused: Bounded,
    /// When this host's records may next be looked over for deletion (unix seconds):
    /// every `Take` asks, and each look verifies a signature per request.
    next_tidy: std::sync::atomic::AtomicI64,
    /// When each request seen had its records let go (its host may delete it first: the
    /// others' records of it still go then, not only after the longest a grant can run).
    deadlines: std::sync::Mutex<HashMap<String, i64>>,
}

/// Between two looks over this host's records for ones to delete.
const TIDY_EVERY_SECS: i64 = 10;

impl Seen {
    /// Takes in etcd's record at `key` (an empty value: deleted). False when it was left
    /// out: too big, or the view is full.
    fn put(&mut self, key: &str, value: &str) -> bool {
        if matches!(Key::parse(key), None | Some(Key::Alive { .. })) {
            return true;
        }
        if let Some(old) = self.kv.remove(key) {
            self.bytes -= key.len() + old.len();
        }
        if value.is_empty() {
            return true;
        }
        if value.len() > MAX_RECORD || self.bytes + key.len() + value.len() > MAX_SEEN_BYTES {
            self.partial = true;
            return false;
        }
        self.bytes += key.len() + value.len();
        self.kv.insert(key.to_string(), value.to_string());
        true
    }
}

/// A set that forgets everything when it is full (what it guards is only repetition).
#[derive(Default)]
struct Bounded(std::collections::HashSet<String>);

impl Bounded {
    const MAX: usize = 10_000;

    /// Whether `item` is new (and now remembered).
    fn insert(&mut self, item: String) -> bool {
        if self.0.len() >= Self::MAX {
            self.0.clear();
        }
        self.0.insert(item)
    }
}

/// Etcd's fleet records as the agent last showed them, by key; not kept across restarts
/// (the agent lists again when it connects).
#[derive(Default)]
struct Seen {
    kv: BTreeMap<String, String>,
    bytes: usize,
    /// When the agent last showed it was in touch with etcd (unix seconds; 0: never since
    /// jitd started), and at which revision.
    last_sync: i64,
    revision: i64,
    /// Whether the agent has listed everything for this jitd (a jitd that restarted has
    /// an empty view until it does).
    listed: bool,
    /// Whether records were left out (too big, or the view full) since the last listing.
    partial: bool,
}

impl FleetConfig {
    pub fn new(
        policy: crate::fleet::policy::FleetPolicy,
        host: String,
        key: std::result::Result<ssh_key::PrivateKey, String>,
    ) -> FleetConfig {
        // A key the policy does not list for this host signs requests nobody accepts.
        let key = key.and_then(|k| match policy.host(&host) {
            Some(h) if h.key.key_data() == k.public_key().key_data() => Ok(k),
            _ => Err(format!(
                "this host's fleet key ({}) is not the one the fleet policy lists for '{host}'",
                k.public_key().fingerprint(ssh_key::HashAlg::Sha256)
            )),
        });
        FleetConfig {
            policy,
            host,
            key,
            seen: Seen::default(),
            refused: Bounded::default(),
            next_tidy: std::sync::atomic::AtomicI64::new(0),
            deadlines: std::sync::Mutex::new(HashMap::new()),
        }
    }
}

/// One fleet request's records, gathered from etcd's view and this host's outbox.
#[derive(Default)]
struct Gathered {
    request: Option<Signed<FleetRequest>>,
    approvals: Vec<Signed<Approval>>,
    ends: Vec<Signed<End>>,
    acks: Vec<Ack>,
    published: bool,
    /// Approvals and ends still in this host's outbox.
    queued: usize,
}

impl Gathered {
    /// Takes in the record at `k` (one of this request's): a request only from the host
    /// whose id it is, the first one found.
    fn take(&mut self, k: &Key, value: &str, published: bool) {
        match k {
            Key::Request { host, id } => {
                if !crate::fleet::id_of_host(id, host) {
                    return;
                }
                if let Ok(r) = serde_json::from_str::<Signed<FleetRequest>>(value)
                    && r.record.id == *id
                    && r.record.host == *host
                    && self.request.is_none()
                {
                    self.request = Some(r);
                    self.published = published;
                }
            }
            Key::Approval { .. } => {
                self.queued += usize::from(!published);
                self.approvals.extend(serde_json::from_str(value).ok());
            }
            Key::End { .. } => {
                self.queued += usize::from(!published);
                self.ends.extend(serde_json::from_str(value).ok());
            }
            Key::Ack { host, .. } => {
                if let Ok(mut a) = serde_json::from_str::<Ack>(value) {
                    // Whose ack it is, is where it was written, not what it says.
                    a.host = host.clone();
                    self.acks.push(a);
                }
            }
            Key::Alive { .. } => {}
        }
    }
}

/// What an unverified record says, bounded and escaped wherever it is repeated (acks, the
/// audit trail, errors): it may be anyone's junk.
fn said(s: &str) -> String {
    crate::names::cut(&crate::names::escape(s), 128)
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, json: &str) -> Result<T> {
    serde_json::from_str(json).map_err(|e| Error::InvalidArgument(format!("{what}: {e}")))
}

impl Core {
    /// Makes this host a member of a fleet (jitd's `--fleet`).
    pub fn set_fleet(&mut self, fleet: FleetConfig) {
        if let Err(e) = &fleet.key {
            tracing::warn!(
                "fleet: {e}; this host can enforce fleet grants but not make requests or ends"
            );
        }
        self.fleet = Some(fleet);
    }

    fn fleet_ref(&self) -> Result<&FleetConfig> {
        self.fleet.as_ref().ok_or_else(|| {
            Error::WrongState("this host is not in a fleet (jitd has no --fleet policy)".into())
        })
    }

    /// What the agent saw in etcd: records put (a value) or deleted (empty), at `revision`;
    /// `reset` when it listed everything again (the view starts over).
    pub fn fleet_sync(
        &mut self,
        revision: i64,
        reset: bool,
        changes: Vec<(String, String)>,
    ) -> Result<bool> {
        let now = self.now();
        let Some(fleet) = self.fleet.as_mut() else {
            return Err(Error::WrongState("this host is not in a fleet".into()));
        };
        // When each request's records go, from the request as its host signed it: taken
        // as it arrives (each is verified once), kept after its host has let it go.
        if let Ok(deadlines) = fleet.deadlines.get_mut() {
            if deadlines.len() > 100_000 {
                deadlines.clear();
            }
            for (k, v) in changes.iter().filter(|(_, v)| !v.is_empty()) {
                if let Some(Key::Request { host, id }) = Key::parse(k)
                    && crate::fleet::id_of_host(&id, &host)
                    && let Ok(r) = serde_json::from_str::<Signed<FleetRequest>>(v)
                    && r.record.id == id
                    && r.record.host == host
                    && crate::fleet::request_signed(&fleet.policy, &r)
                {
                    let last = crate::fleet::last_in_force(&r.record, fleet.policy.max_skew);
                    deadlines.insert(id, last.saturating_add(fleet.policy.record_retention));
                }
            }
        }
        let seen = &mut fleet.seen;
        if reset {
            seen.kv.clear();
            seen.bytes = 0;
            seen.listed = true;
            seen.partial = false;
        }
        // A view that was never listed (this jitd restarted under a running agent) is not
        // kept up piecemeal: the agent is asked to list everything again.
        if !seen.listed {
            return Ok(true);
        }
        // Requests deleted from etcd: see below.
        let deleted: Vec<String> = changes
            .iter()
            .filter(|(_, v)| v.is_empty())
            .filter_map(|(k, _)| match Key::parse(k)? {
                Key::Request { id, .. } => Some(id),
                _ => None,
            })
            .collect();
        let dropped = changes
            .into_iter()
            .filter(|(key, value)| !seen.put(key, value))
            .count();
        if dropped > 0 {
            tracing::warn!(
                "fleet: {dropped} record(s) from etcd left out of view (too big, or the view is full)"
            );
        }
        seen.last_sync = now;
        seen.revision = revision;
        self.end_fleet_grants_gone(&deleted)?;
        Ok(false)
    }

    /// Ends here each fleet grant in force whose request was just deleted from etcd: no
    /// host lets a request go while it can be in force, so someone else deleted it, and a
    /// revocation this host will now never hear of may have gone with it.
    fn end_fleet_grants_gone(&mut self, deleted: &[String]) -> Result<()> {
        if deleted.is_empty() {
            return Ok(());
        }
        let mut gone = Vec::new();
        for (fleet_id, local) in store::fleet_active(self.store.conn())? {
            if deleted.contains(&fleet_id) && self.gather_one(&fleet_id)?.is_none() {
                gone.push((fleet_id, local));
            }
        }
        for (fleet_id, local) in gone {
            let row = self.get(local)?;
            self.revoke_as_jitd(
                &[local],
                &format!("fleet request {fleet_id}: its request is gone from etcd"),
            )?;
            self.remove_rules_of(&[row]);
        }
        Ok(())
    }

    /// Up to `limit` records waiting for the agent to put into etcd, then keys of this
    /// host's for it to delete ([`Core::fleet_done`]; an empty value).
    pub fn fleet_take(&self, limit: u32) -> Result<Vec<(String, String)>> {
        let tidy = &self.fleet_ref()?.next_tidy;
        let mut out = store::fleet_outbox(self.store.conn(), limit)?;
        let room = usize::try_from(limit)
            .unwrap_or(usize::MAX)
            .saturating_sub(out.len());
        let now = self.now();
        if room > 0 && now >= tidy.load(std::sync::atomic::Ordering::Relaxed) {
            let done = self.fleet_done(now);
            // Looked at again soon while there is more to hand out; else in a while.
            let next = if done.len() > room {
                now
            } else {
                now + TIDY_EVERY_SECS
            };
            tidy.store(next, std::sync::atomic::Ordering::Relaxed);
            out.extend(done.into_iter().take(room).map(|k| (k, String::new())));
        }
        Ok(out)
    }

    /// This host's records in etcd that no host needs any more: those of a fleet request
    /// `record_retention` (fleet policy) past the last moment it can be in force anywhere
    /// ([`crate::fleet::last_in_force`]). Only under this host's own prefix: each host
    /// tidies what it wrote. A record whose request is gone from view (its host let it go,
    /// or lost it) goes once its own time is as far past as any request's could be (the
    /// policy's longest `max_duration`); an ack, which decides nothing, at once. None while
    /// the view is not whole (not listed yet, or records left out of it).
    fn fleet_done(&self, now: i64) -> Vec<String> {
        let Some(fleet) = &self.fleet else {
            return Vec::new();
        };
        let seen = &fleet.seen;
        if !seen.listed || seen.partial {
            return Vec::new();
        }
        let policy = &fleet.policy;
        let skew = policy.max_skew;
        let longest = policy
            .roles
            .iter()
            .map(|r| r.max_duration)
            .max()
            .unwrap_or(0);
        let longest = i64::try_from(longest).unwrap_or(i64::MAX);
        // The request of `id`, if in view and signed by its host: when its records go.
        let until = |id: &str| -> Option<i64> {
            let g = self.gather_one(id).ok()??;
            let req = g.request?;
            crate::fleet::request_signed(policy, &req).then(|| {
                crate::fleet::last_in_force(&req.record, skew)
                    .saturating_add(policy.record_retention)
            })
        };
        // A record's own time, for one whose request is gone: as late as it could start a
        // grant, that grant's end, and the retention.
        let orphan_until = |at: i64| {
            at.saturating_add(longest.saturating_mul(2))
                .saturating_add(skew.saturating_mul(3))
                .saturating_add(policy.record_retention)
        };
        let own = format!("{}{}/", jit_proto::fleet::PREFIX, fleet.host);
        let mut deadlines = match fleet.deadlines.lock() {
            Ok(d) => d,
            Err(poisoned) => poisoned.into_inner(),
        };
        if deadlines.len() > 100_000 {
            deadlines.clear();
        }
        let mut known: HashMap<String, Option<i64>> = HashMap::new();
        seen.kv
            .range(own.clone()..)
            .take_while(|(k, _)| k.starts_with(&own))
            .filter_map(|(k, v)| {
                let key = Key::parse(k)?;
                let id = key.request_id()?.to_string();
                let at = known.entry(id.clone()).or_insert_with(|| {
                    deadlines.get(&id).copied().or_else(|| {
                        let t = until(&id)?;
                        deadlines.insert(id.clone(), t);
                        Some(t)
                    })
                });
                let done = match at {
                    Some(t) => now > *t,
                    None => match &key {
                        // One of its own requests it cannot read or verify: left alone.
                        Key::Request { .. } | Key::Alive { .. } => false,
                        Key::Ack { .. } => true,
                        Key::Approval { .. } => serde_json::from_str::<Signed<Approval>>(v)
                            .is_ok_and(|a| now > orphan_until(a.record.approved_at)),
                        Key::End { .. } => serde_json::from_str::<Signed<End>>(v)
                            .is_ok_and(|e| now > orphan_until(e.record.at)),
                    },
                };
                done.then(|| k.clone())
            })
            .collect()
    }

    /// Records the agent has put into etcd: out of the outbox, and into the view at once
    /// (etcd holds them now; the watch tells of them a moment later), so a request is in
    /// view throughout (`jitctl show` right after `jitctl request`, the sudo prompt's wait).
    pub fn fleet_published(&mut self, done: Vec<(String, String)>) -> Result<()> {
        self.fleet_ref()?;
        // Only what was in the outbox, or handed out to delete: the agent says what it
        // did, not what etcd holds.
        let deletable = if done.iter().any(|(_, v)| v.is_empty()) {
            self.fleet_done(self.now())
        } else {
            Vec::new()
        };
        let mut was_queued = Vec::new();
        self.commit_as(super::Requests::Untouched, |tx, _| {
            for (k, v) in &done {
                if v.is_empty() {
                    if deletable.contains(k) {
                        was_queued.push((k, v));
                    }
                } else if store::fleet_published(tx, k, v)? {
                    was_queued.push((k, v));
                }
            }
            Ok(())
        })?;
        if let Some(fleet) = self.fleet.as_mut()
            && fleet.seen.listed
        {
            for (k, v) in was_queued {
                fleet.seen.put(k, v);
            }
        }
        Ok(())
    }

    /// Whether the agent has been in touch with etcd lately (within the shortest
    /// `fleet_stale_after` of the policy, or [`AGENT_QUIET_SECS`]).
    fn fleet_fresh(&self, now: i64) -> bool {
        self.fleet.as_ref().is_some_and(|f| {
            let bound = f
                .policy
                .roles
                .iter()
                .filter_map(|r| r.stale_after)
                .min()
                .map_or(AGENT_QUIET_SECS, |s| i64::try_from(s).unwrap_or(i64::MAX));
            f.seen.last_sync > 0 && now - f.seen.last_sync <= bound
        })
    }

    /// `fleet_stale_after`: the fleet grants of each role that has it are suspended (their
    /// rule removed, marked so) on a host whose view of etcd has made no progress for that
    /// long (since jitd started, if never): a revocation it cannot hear of then waits no
    /// longer than that. They come back, to the same end, when the agent offers them again
    /// after catching up. Returns when to look again.
    pub(super) fn suspend_stale_fleet(&mut self, now: i64) -> Result<Option<i64>> {
        let Some(fleet) = &self.fleet else {
            return Ok(None);
        };
        let since = fleet.seen.last_sync.max(self.started_at);
        let roles: Vec<(String, i64)> = fleet
            .policy
            .roles
            .iter()
            .filter_map(|r| Some((r.name.clone(), i64::try_from(r.stale_after?).ok()?)))
            .collect();
        if roles.is_empty() {
            return Ok(None);
        }
        let active = self.store.by_state(&[State::Active])?;
        let mut next = None;
        let mut stale = Vec::new();
        for r in active.into_iter().filter(|r| r.service == "fleet") {
            let Some((_, after)) = roles.iter().find(|(n, _)| *n == r.role.as_str()) else {
                continue;
            };
            if now - since >= *after {
                stale.push(r);
            } else {
                let at = since + after;
                next = Some(next.map_or(at, |n: i64| n.min(at)));
            }
        }
        if !stale.is_empty() {
            let ids: Vec<u64> = stale.iter().map(|r| r.id).collect();
            let why = format!(
                "{SUSPENDED}no progress from etcd for {} s (fleet_stale_after); back when this host catches up",
                now - since
            );
            self.revoke_as_jitd(&ids, &why)?;
            self.remove_rules_of(&stale);
        }
        Ok(next)
    }

    /// How this host's link to the fleet stands; None outside a fleet.
    pub fn fleet_link(&self) -> Option<jit_proto::fleet::FleetContact> {
        let f = self.fleet.as_ref()?;
        Some(jit_proto::fleet::FleetContact {
            host: f.host.clone(),
            last_contact: f.seen.last_sync,
            revision: f.seen.revision,
            records: f.seen.kv.len(),
            now: self.now(),
            quiet_after: AGENT_QUIET_SECS,
        })
    }

    /// When the agent was last in touch with etcd (unix seconds; 0: not since jitd
    /// started), and at which revision.
    pub fn fleet_contact(&self) -> Option<(i64, i64)> {
        self.fleet
            .as_ref()
            .map(|f| (f.seen.last_sync, f.seen.revision))
    }

    /// Every fleet request in view (etcd's, and this host's own not yet published), by id.
    fn gather(&self) -> Result<BTreeMap<String, Gathered>> {
        let fleet = self.fleet_ref()?;
        let mut out: BTreeMap<String, Gathered> = BTreeMap::new();
        let mut take = |key: &str, value: &str, published: bool| {
            let Some(k) = Key::parse(key) else { return };
            let Some(id) = k.request_id() else { return };
            out.entry(id.to_string())
                .or_default()
                .take(&k, value, published);
        };
        for (k, v) in &fleet.seen.kv {
            take(k, v, true);
        }
        for (k, v) in store::fleet_outbox(self.store.conn(), u32::MAX)? {
            take(&k, &v, false);
        }
        out.retain(|_, g| g.request.is_some());
        Ok(out)
    }

    /// Fleet request `id` as [`Core::gather`] has it, looked up by key (under the prefix of
    /// each host of the policy) rather than by reading the whole view: what a prompt
    /// waiting on one request asks for again and again.
    fn gather_one(&self, id: &str) -> Result<Option<Gathered>> {
        let fleet = self.fleet_ref()?;
        let seen = &fleet.seen.kv;
        let mut g = Gathered::default();
        let mut take = |key: &str, value: &str, published: bool| {
            if let Some(k) = Key::parse(key)
                && k.request_id() == Some(id)
            {
                g.take(&k, value, published);
            }
        };
        for h in &fleet.policy.hosts {
            let host = h.name.clone();
            let one = |k: Key| k.path();
            for key in [
                one(Key::Request {
                    host: host.clone(),
                    id: id.into(),
                }),
                one(Key::End {
                    host: host.clone(),
                    id: id.into(),
                }),
                one(Key::Ack {
                    host: host.clone(),
                    id: id.into(),
                }),
            ] {
                if let Some(v) = seen.get(&key) {
                    take(&key, v, true);
                }
            }
            let approvals = format!("{}{host}/appr/{id}/", jit_proto::fleet::PREFIX);
            for (k, v) in seen
                .range(approvals.clone()..)
                .take_while(|(k, _)| k.starts_with(&approvals))
            {
                take(k, v, true);
            }
        }
        for (k, v) in store::fleet_outbox(self.store.conn(), u32::MAX)? {
            take(&k, &v, false);
        }
        Ok(g.request.is_some().then_some(g))
    }

    /// A gathered request as `who` may see it (None: not theirs to see).
    fn view(&self, who: &Actor, g: Gathered) -> Option<FleetView> {
        let fleet = self.fleet.as_ref()?;
        let req = g.request?;
        let r = &req.record;
        let role = fleet.policy.role(&r.role);
        let approver = role.is_some_and(|role| role.approvers.contains(&who.name.to_string()));
        if who.uid != 0 && r.user != who.name.as_str() && !approver {
            return None;
        }
        let digest = r.digest();
        let signed = crate::fleet::request_signed(&fleet.policy, &req);
        let mut approved_by: Vec<String> = match role {
            Some(role) => g
                .approvals
                .iter()
                .filter(|a| crate::fleet::approval_valid(&fleet.policy, role, r, &digest, a))
                .filter(|a| a.record.approver != r.user)
                .map(|a| a.record.approver.clone())
                .collect(),
            None => Vec::new(),
        };
        approved_by.sort();
        approved_by.dedup();
        let ended_by: Vec<String> = g
            .ends
            .iter()
            .filter(|e| crate::fleet::end_valid(&fleet.policy, r, &digest, e))
            .map(|e| e.record.by.clone())
            .collect();
        let your_keys = if approver && r.user != who.name.as_str() {
            fleet
                .policy
                .approver_keys(who.name.as_str())
                .iter()
                .filter_map(|k| k.to_openssh().ok())
                .collect()
        } else {
            Vec::new()
        };
        let mut acks = g.acks;
        acks.sort_by(|a, b| a.host.cmp(&b.host));
        let open = ended_by.is_empty()
            && self.now()
                < r.created_at
                    .saturating_add(i64::try_from(r.duration_secs).unwrap_or(i64::MAX));
        Some(FleetView {
            approvals_required: role.map_or(0, |r| r.approvals),
            request: req,
            digest,
            signed,
            approved_by,
            ended_by,
            acks,
            published: g.published,
            queued: g.queued,
            open,
            your_keys,
        })
    }

    /// The fleet requests `who` may see (theirs, those they may approve; all for root),
    /// newest first.
    pub fn fleet_list(&self, who: &Actor) -> Result<Vec<FleetView>> {
        let mut out: Vec<FleetView> = self
            .gather()?
            .into_values()
            .filter_map(|g| self.view(who, g))
            .collect();
        out.sort_by(|a, b| {
            b.request
                .record
                .created_at
                .cmp(&a.request.record.created_at)
                .then_with(|| a.request.record.id.cmp(&b.request.record.id))
        });
        Ok(out)
    }

    /// Fleet request `id`, if `who` may see it (one they may not gets the answer one that
    /// does not exist gets).
    pub fn fleet_show(&self, who: &Actor, id: &str) -> Result<FleetView> {
        self.gather_one(id)?
            .and_then(|g| self.view(who, g))
            .ok_or_else(|| {
                Error::NotFound(format!("no fleet request {} seen on this host", said(id)))
            })
    }

    /// The fleet roles `user` may request for this host at a PAM prompt: those that apply
    /// to it and name them a requester (none when this host is in no fleet).
    /// None for a temporary account; where there are some but a request could not be
    /// sent now (no key to sign with, the agent out of touch with etcd), an error saying
    /// why: asked, it would be refused only after the questions.
    pub fn fleet_roles_for(&self, who: &Actor) -> Result<Vec<RoleInfo>> {
        let Some(fleet) = &self.fleet else {
            return Ok(Vec::new());
        };
        if refuse_accounts(who).is_err() {
            return Ok(Vec::new());
        }
        let roles = self.fleet_roles_listed(who);
        if roles.is_empty() {
            return Ok(roles);
        }
        let now = self.now();
        let last = fleet.seen.last_sync;
        let unavailable = |why: String| {
            Err(Error::WrongState(format!(
                "fleet roles cannot be requested on this host now: {why}"
            )))
        };
        if let Err(e) = &fleet.key {
            return unavailable(format!("it has no fleet key ({e})"));
        }
        if last == 0 {
            return unavailable(
                "the fleet agent (jit-fleetd) has not reached etcd since jitd started".into(),
            );
        }
        if now - last > AGENT_QUIET_SECS {
            return unavailable(format!(
                "the fleet agent (jit-fleetd) has not reached etcd for {}",
                jit_proto::format_duration(u64::try_from(now - last).unwrap_or(0))
            ));
        }
        Ok(roles)
    }

    fn fleet_roles_listed(&self, who: &Actor) -> Vec<RoleInfo> {
        let Some(fleet) = &self.fleet else {
            return Vec::new();
        };
        let user = who.name.as_str();
        let reason_max = u32::try_from(self.policy.reason_max).unwrap_or(u32::MAX);
        fleet
            .policy
            .roles
            .iter()
            .filter(|r| r.requesters.iter().any(|u| u == user))
            .filter(|r| fleet.policy.applies(r, &fleet.host))
            .map(|r| RoleInfo {
                name: r.name.clone(),
                description: "fleet role".into(),
                approvals: r.approvals,
                approvers: r.approvers.clone(),
                max_duration_secs: r.max_duration,
                default_duration_secs: fleet_default_duration(r),
                commands: r.commands.iter().map(ToString::to_string).collect(),
                run_as: r
                    .run_as
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
                ssh: false,
                reason_pattern: String::new(),
                reason_min_length: 1,
                reason_max_length: reason_max,
                break_glass: false,
                max_total_secs: r.max_duration,
                window: String::new(),
                window_open: true,
                account: false,
            })
            .collect()
    }

    /// `who`'s fleet requests made on this host and naming it that still wait for
    /// approval (not applied here, not ended, not lapsed), oldest first.
    pub fn fleet_pending_of(&self, who: &Actor) -> Result<Vec<jit_proto::FleetAnswer>> {
        let Some(fleet) = &self.fleet else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for r in self.made_here_by(who)? {
            if !r.hosts.contains(&fleet.host) {
                continue;
            }
            let id = r.id;
            let request = self.fleet_status(who, &id)?;
            if request.state() == Some(State::Pending) {
                out.push(jit_proto::FleetAnswer { id, request });
            }
        }
        Ok(out)
    }

    /// `who`'s fleet requests made on this host, oldest first: only this host's prefix of
    /// the view and its outbox are read (every sudo asks), not the whole view.
    fn made_here_by(&self, who: &Actor) -> Result<Vec<FleetRequest>> {
        let fleet = self.fleet_ref()?;
        let own = format!("{}{}/req/", jit_proto::fleet::PREFIX, fleet.host);
        let queued = store::fleet_outbox(self.store.conn(), u32::MAX)?;
        let mut out: Vec<FleetRequest> = fleet
            .seen
            .kv
            .range(own.clone()..)
            .take_while(|(k, _)| k.starts_with(&own))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(queued.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .filter(|(k, _)| k.starts_with(&own))
            .filter_map(|(_, v)| serde_json::from_str::<Signed<FleetRequest>>(v).ok())
            .map(|r| r.record)
            .filter(|r| r.host == fleet.host && r.user == who.name.as_str())
            .collect();
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        out.dedup_by(|a, b| a.id == b.id);
        Ok(out)
    }

    /// A fleet request made at a PAM prompt: for this host alone.
    pub fn fleet_request_here(
        &mut self,
        who: &Actor,
        role: &str,
        duration_secs: u64,
        reason: &str,
    ) -> Result<String> {
        let here = vec![self.fleet_ref()?.host.clone()];
        self.fleet_request(who, role, &here, duration_secs, reason)
    }

    /// How fleet request `id` of `who` stands on this host, as a request: the local grant
    /// that holds it once this host has applied it; until then `pending` (with the valid
    /// approvals so far), or how it ended without being applied here: ended by someone
    /// (`revoked`), or too old to be approved any more (`expired`).
    pub fn fleet_status(&self, who: &Actor, id: &str) -> Result<RequestInfo> {
        let not_found = || {
            Error::NotFound(format!(
                "no fleet request {} of {} seen on this host",
                said(id),
                who.name
            ))
        };
        let g = self.gather_one(id)?.ok_or_else(not_found)?;
        let (approvals, ends) = (g.approvals.clone(), g.ends.clone());
        let view = self.view(who, g).ok_or_else(not_found)?;
        let r = &view.request.record;
        if r.user != who.name.as_str() {
            return Err(not_found());
        }
        if let Some(local) = store::fleet_grant(self.store.conn(), id)? {
            return self.info(&self.get(local)?);
        }
        let fleet = self.fleet_ref()?;
        let role = fleet.policy.role(&r.role);
        let now = self.now();
        let approved =
            view.approved_by.len() >= usize::try_from(view.approvals_required).unwrap_or(0);
        // Approved, yet not applied here: what this host makes of it now.
        let here = if approved {
            crate::fleet::verify(
                &fleet.policy,
                &fleet.host,
                &view.request,
                &approvals,
                &ends,
                now,
            )
            .err()
        } else {
            None
        };
        let duration = i64::try_from(r.duration_secs).unwrap_or(i64::MAX);
        let (state, decided_by, why) = if !view.ended_by.is_empty() {
            (State::Revoked, view.ended_by.join(", "), "ended".into())
        } else if let Some(refused) = here {
            (
                State::Denied,
                fleet.host.clone(),
                said(&refused.to_string()),
            )
        } else if approved {
            let why = "approved, waiting for this host to apply it".to_string();
            (State::Pending, String::new(), why)
        } else if now >= r.created_at.saturating_add(duration) {
            let why = "it was not approved within its duration".to_string();
            (State::Expired, String::new(), why)
        } else {
            (State::Pending, String::new(), String::new())
        };
        Ok(RequestInfo {
            id: 0,
            user: r.user.clone(),
            uid: who.uid,
            role: r.role.clone(),
            state: state.as_str().into(),
            reason: r.reason.clone(),
            duration_secs: r.duration_secs,
            created_at: r.created_at,
            updated_at: r.created_at,
            not_after: 0,
            approvals_required: view.approvals_required,
            approved_by: view.approved_by.clone(),
            approvers: role.map(|x| x.approvers.clone()).unwrap_or_default(),
            decided_by,
            decision_reason: why,
            service: "fleet".into(),
            tty: String::new(),
            kind: Kind::Grant.as_str().into(),
            extends: 0,
            granted_at: 0,
            reviewed_by: String::new(),
            reviewed_at: 0,
            review_comment: String::new(),
            escalation_approvers: Vec::new(),
            escalates_at: 0,
            commands: role
                .map(|x| x.commands.iter().map(ToString::to_string).collect())
                .unwrap_or_default(),
            run_as: role
                .map(|x| x.run_as.iter().map(ToString::to_string).collect())
                .unwrap_or_default(),
            groups: Vec::new(),
            account: String::new(),
            ssh_keys: Vec::new(),
        })
    }

    /// `who` asks for fleet role `role` on `hosts` (host names or host groups), for
    /// `duration_secs` (0: the role's default), because `reason`: checked here by the fleet policy as every host
    /// will check it, signed with this host's key, and queued for the agent. Returns the
    /// request's id.
    pub fn fleet_request(
        &mut self,
        who: &Actor,
        role: &str,
        hosts: &[String],
        duration_secs: u64,
        reason: &str,
    ) -> Result<String> {
        refuse_accounts(who)?;
        let now = self.now();
        let reason = crate::names::validate_text("reason", reason, self.policy.reason_max)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let fleet = self.fleet_ref()?;
        let key = fleet
            .key
            .as_ref()
            .map_err(|e| Error::WrongState(format!("this host cannot sign fleet requests: {e}")))?;
        let policy = &fleet.policy;
        let r = policy
            .role(role)
            .ok_or_else(|| Error::NotFound(format!("no fleet role '{}'", said(role))))?;
        if !r.requesters.contains(&who.name.to_string()) {
            return Err(Error::NotAuthorized(format!(
                "{} may not request fleet role '{role}'",
                who.name
            )));
        }
        let duration_secs = match duration_secs {
            0 => fleet_default_duration(r),
            d => d,
        };
        if duration_secs > r.max_duration {
            return Err(Error::InvalidArgument(format!(
                "fleet role '{role}' allows at most {}; {} asked",
                jit_proto::format_duration(r.max_duration),
                jit_proto::format_duration(duration_secs)
            )));
        }
        let mut names: Vec<String> = Vec::new();
        for h in hosts {
            let group: Vec<&str> = policy
                .hosts
                .iter()
                .filter(|x| x.groups.iter().any(|g| g == h))
                .map(|x| x.name.as_str())
                .collect();
            if policy.host(h).is_some() {
                names.push(h.clone());
            } else if !group.is_empty() {
                names.extend(group.iter().map(|s| s.to_string()));
            } else {
                return Err(Error::InvalidArgument(format!(
                    "'{}' is neither a host nor a host group of the fleet policy",
                    said(h)
                )));
            }
        }
        names.sort();
        names.dedup();
        if names.is_empty() {
            return Err(Error::InvalidArgument(
                "name at least one host or host group (--hosts)".into(),
            ));
        }
        let outside: Vec<&str> = names
            .iter()
            .filter(|h| !policy.applies(r, h))
            .map(String::as_str)
            .collect();
        if !outside.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "fleet role '{role}' does not apply to {} (its host groups: {})",
                outside.join(", "),
                r.host_groups.join(", ")
            )));
        }
        // As many waiting at once as the local policy lets a user have (each is signed and
        // goes to every host of the fleet).
        let mut waiting = 0;
        for r in self.made_here_by(who)? {
            let open = now
                < r.created_at
                    .saturating_add(i64::try_from(r.duration_secs).unwrap_or(i64::MAX));
            if open
                && let Some(g) = self.gather_one(&r.id)?
                && g.approvals.is_empty()
                && g.ends.is_empty()
            {
                waiting += 1;
            }
        }
        let cap = usize::try_from(self.policy.max_pending_per_user).unwrap_or(usize::MAX);
        if waiting >= cap {
            return Err(Error::WrongState(format!(
                "{} has {waiting} fleet request(s) from this host waiting for approval, the most allowed (max_pending_per_user); release one (jitctl release ID) or wait",
                who.name
            )));
        }
        // Queued with nobody to publish it, a request would wait unseen: say so now.
        let last = fleet.seen.last_sync;
        if last == 0 || now - last > AGENT_QUIET_SECS {
            return Err(Error::WrongState(if last == 0 {
                "the fleet agent (jit-fleetd) has not reached etcd since jitd started: fleet requests cannot be sent now (local roles still work)".into()
            } else {
                format!(
                    "the fleet agent (jit-fleetd) has not reached etcd for {} s: fleet requests cannot be sent now (local roles still work)",
                    now - last
                )
            }));
        }
        let mut nonce = [0u8; 5];
        getrandom::fill(&mut nonce).map_err(|e| Error::Internal(format!("random id: {e}")))?;
        let record = FleetRequest {
            id: format!("{}-{}", fleet.host, crate::fleet::hex(&nonce)),
            host: fleet.host.clone(),
            user: who.name.to_string(),
            role: role.to_string(),
            hosts: names,
            duration_secs,
            reason,
            created_at: now,
            policy_digest: policy.digest.clone(),
        };
        let signature = crate::fleet::sign(key, crate::fleet::REQUEST_NAMESPACE, &record)
            .map_err(Error::Internal)?;
        let id = record.id.clone();
        let key = Key::Request {
            host: record.host.clone(),
            id: id.clone(),
        }
        .path();
        let detail = format!(
            "fleet={id} role={} hosts=[{}] duration={}s reason={}",
            record.role,
            record.hosts.join(","),
            record.duration_secs,
            record.reason
        );
        let value = serde_json::to_string(&Signed { record, signature })
            .map_err(|e| Error::Internal(e.to_string()))?;
        self.record_with(who, "fleet-request", 0, detail, |tx| {
            store::put_fleet_outbox(tx, &key, &value, now)
        })?;
        Ok(id)
    }

    /// `who`'s approval of fleet request `id` (JSON of a signed approval, made by jitctl
    /// with `who`'s key through ssh-agent): checked as every host will check it, and
    /// queued for the agent.
    pub fn fleet_approve(&mut self, who: &Actor, id: &str, approval: &str) -> Result<()> {
        refuse_accounts(who)?;
        let now = self.now();
        let view = self.fleet_show(who, id)?;
        let fleet = self.fleet_ref()?;
        let a: Signed<Approval> = parse("approval", approval)?;
        let r = &view.request.record;
        if !view.signed {
            return Err(Error::WrongState(format!(
                "fleet request {id} is not signed by its host's key: it cannot be approved"
            )));
        }
        let role = fleet
            .policy
            .role(&r.role)
            .ok_or_else(|| Error::NotFound(format!("no fleet role '{}'", said(&r.role))))?;
        if a.record.approver != who.name.as_str() {
            return Err(Error::NotAuthorized(format!(
                "the approval is {}'s, and you are {}",
                said(&a.record.approver),
                who.name
            )));
        }
        if r.user == who.name.as_str() {
            return Err(Error::NotAuthorized(
                "nobody approves their own request".into(),
            ));
        }
        if !role.approvers.contains(&who.name.to_string()) {
            return Err(Error::NotAuthorized(format!(
                "{} is not an approver of fleet role '{}'",
                who.name, r.role
            )));
        }
        // The person at the keyboard, by their login session, as for local approvals: the
        // requester, whatever identity they call from, never; another user only if they
        // approve this fleet role too.
        if let Some((login, person)) = self.session_person(who)? {
            if person == r.user {
                return Err(Error::NotAuthorized(format!(
                    "{} may not approve fleet request {id}: the call comes from a login session of its requester {person} (loginuid {login})",
                    who.name
                )));
            }
            if !role.approvers.contains(&person) {
                return Err(Error::NotAuthorized(format!(
                    "{} may not approve fleet request {id}: the call comes from a login session of {person} (loginuid {login}), who does not approve fleet role '{}'",
                    who.name, r.role
                )));
            }
        }
        if !view.ended_by.is_empty() {
            return Err(Error::WrongState(format!("fleet request {id} was ended")));
        }
        // Approved again, a later time would start the grant later on hosts that have not
        // applied it yet.
        if view.approved_by.iter().any(|a| a == who.name.as_str()) {
            return Err(Error::WrongState(format!(
                "you have approved fleet request {id} already"
            )));
        }
        if r.created_at
            .saturating_add(i64::try_from(r.duration_secs).unwrap_or(i64::MAX))
            <= now
        {
            return Err(Error::WrongState(format!(
                "fleet request {id} is older than its duration: nothing to approve"
            )));
        }
        if !crate::fleet::approval_valid(&fleet.policy, role, r, &view.digest, &a) {
            return Err(Error::InvalidArgument(format!(
                "the approval does not verify: it must name request {id} with digest {} and be signed (namespace {}) by a key the fleet policy lists for {}",
                view.digest,
                crate::fleet::APPROVAL_NAMESPACE,
                who.name
            )));
        }
        if (a.record.approved_at - now).abs() > fleet.policy.max_skew {
            return Err(Error::InvalidArgument(format!(
                "the approval is dated {}, this host's clock says {now}",
                a.record.approved_at
            )));
        }
        let key = Key::Approval {
            host: fleet.host.clone(),
            id: id.to_string(),
            approver: who.name.to_string(),
        }
        .path();
        let value = serde_json::to_string(&a).map_err(|e| Error::Internal(e.to_string()))?;
        let detail = format!("fleet={id} user={} role={} approved", r.user, r.role);
        self.record_with(who, "fleet-approve", 0, detail, |tx| {
            store::put_fleet_outbox(tx, &key, &value, now)
        })
    }

    /// Ends fleet request `id` everywhere: its requester releases it, an approver of its
    /// role or root revokes it. The end is signed with this host's key and queued for the
    /// agent; a grant of it held here ends now.
    pub fn fleet_end(&mut self, who: &Actor, id: &str, reason: &str) -> Result<()> {
        refuse_accounts(who)?;
        let now = self.now();
        let view = self.fleet_show(who, id)?;
        let reason = if reason.is_empty() {
            String::new()
        } else {
            crate::names::validate_text("reason", reason, self.policy.reason_max)
                .map_err(|e| Error::InvalidArgument(e.to_string()))?
        };
        let fleet = self.fleet_ref()?;
        let r = view.request.record.clone();
        let approver = fleet
            .policy
            .role(&r.role)
            .is_some_and(|role| role.approvers.contains(&who.name.to_string()));
        if who.uid != 0 && r.user != who.name.as_str() && !approver {
            return Err(Error::NotAuthorized(format!(
                "only {} (release), an approver of '{}' or root (revoke) may end fleet request {id}",
                r.user, r.role
            )));
        }
        let key = fleet
            .key
            .as_ref()
            .map_err(|e| Error::WrongState(format!("this host cannot sign an end: {e}")))?;
        let end = End {
            request_id: id.to_string(),
            request_digest: view.digest.clone(),
            by: format!("{}@{}", who.name, fleet.host),
            at: now,
        };
        let signature =
            crate::fleet::sign(key, crate::fleet::END_NAMESPACE, &end).map_err(Error::Internal)?;
        let path = Key::End {
            host: fleet.host.clone(),
            id: id.to_string(),
        }
        .path();
        let value = serde_json::to_string(&Signed {
            record: end,
            signature,
        })
        .map_err(|e| Error::Internal(e.to_string()))?;
        let action = if r.user == who.name.as_str() {
            "release"
        } else {
            "revoke"
        };
        let detail = format!(
            "fleet={id} user={} role={} {action} reason={reason}",
            r.user, r.role
        );
        self.record_with(who, "fleet-end", 0, detail, |tx| {
            store::put_fleet_outbox(tx, &path, &value, now)
        })?;
        // Held here: it ends now, not when the end comes back through etcd.
        if let Some(local) = store::fleet_grant(self.store.conn(), id)? {
            let row = self.get(local)?;
            if row.state == State::Active {
                self.revoke_as_jitd(
                    &[local],
                    &format!("fleet request {id}: {action} by {}", who.name),
                )?;
                self.remove_rules_of(&[row]);
            }
        }
        Ok(())
    }

    /// An offer of the fleet agent (`who`): the request, the approvals and the ends it has
    /// seen for it, each as JSON of a signed record.
    pub fn offer_fleet(
        &mut self,
        who: &Actor,
        request: &str,
        approvals: &[String],
        ends: &[String],
    ) -> Result<Ack> {
        let Some(fleet) = &self.fleet else {
            return Err(Error::WrongState(
                "this host is not in a fleet (jitd has no --fleet policy)".into(),
            ));
        };
        let host = fleet.host.clone();
        let req: Signed<FleetRequest> = parse("request", request)?;
        let none_offered = approvals.is_empty();
        // Approvals and ends that cannot be read are left out, not a reason to refuse the
        // offer: anyone who can write to etcd could otherwise keep a real end from landing.
        let approvals: Vec<Signed<Approval>> = approvals
            .iter()
            .filter_map(|a| parse("approval", a).ok())
            .collect();
        let ends: Vec<Signed<End>> = ends.iter().filter_map(|e| parse("end", e).ok()).collect();
        let now = self.now();
        let verdict = crate::fleet::verify(&fleet.policy, &host, &req, &approvals, &ends, now);
        let r = &req.record;
        let local = store::fleet_grant(self.store.conn(), &r.id)?;
        let ack = |outcome, reason: String, local_id, not_after| Ack {
            id: said(&r.id),
            host: host.clone(),
            outcome: String::from(outcome),
            reason,
            local_id,
            not_after,
        };
        match (verdict, local) {
            (Ok(d), None) => self.apply_fleet(who, &req.record, &d, &host, now),
            // Applied here before: said as it stands here (revoked on this host by root, or
            // expired, it is never applied again).
            (Ok(d), Some(id)) => {
                let row = self.get(id)?;
                match row.state {
                    State::Active => Ok(ack(
                        "unchanged",
                        "applied already".into(),
                        id,
                        row.not_after,
                    )),
                    // Suspended while this host's view of etcd had stalled, and it still
                    // verifies now that it has caught up: in force again, to the same end.
                    _ if row.decision_reason.starts_with(SUSPENDED) && self.fleet_fresh(now) => {
                        self.apply_fleet(who, &req.record, &d, &host, now)
                    }
                    other => Ok(ack("ended", other.as_str().into(), id, row.not_after)),
                }
            }
            (Err(e), Some(id)) => {
                let row = self.get(id)?;
                if row.state != State::Active {
                    return Ok(ack("ended", row.state.as_str().into(), id, row.not_after));
                }
                // Time runs out by itself; anything else that no longer verifies (an end,
                // a changed policy) ends it now: fail closed.
                if matches!(e, Refused::Expired(..)) {
                    return Ok(ack("unchanged", said(&e.to_string()), id, row.not_after));
                }
                let why = format!("fleet request {}: {}", said(&r.id), said(&e.to_string()));
                self.revoke_as_jitd(&[id], &why)?;
                self.remove_rules_of(&[row]);
                Ok(ack("ended", said(&e.to_string()), id, 0))
            }
            // Nobody has approved it yet: it waits (not a refusal; nothing to audit).
            (Err(e @ Refused::NotApproved(..)), None) if none_offered => {
                Ok(ack("pending", said(&e.to_string()), 0, 0))
            }
            (Err(e), None) => {
                // Each refusal is audited once per request and reason: offered again (every
                // reconnection, or by anyone who can write to etcd) it adds nothing.
                let seen = format!("{}\n{}\n{e}", r.id, r.digest());
                let fresh = self.fleet.as_mut().is_some_and(|f| f.refused.insert(seen));
                if !fresh {
                    return Ok(ack("refused", said(&e.to_string()), 0, 0));
                }
                self.record(
                    who,
                    "fleet-refuse",
                    0,
                    format!(
                        "fleet={} from host={} user={} role={}: {}",
                        said(&r.id),
                        said(&r.host),
                        said(&r.user),
                        said(&r.role),
                        said(&e.to_string())
                    ),
                )?;
                Ok(ack("refused", said(&e.to_string()), 0, 0))
            }
        }
    }

    /// A verified fleet grant, applied as a local grant of the fleet role's rule.
    fn apply_fleet(
        &mut self,
        who: &Actor,
        r: &FleetRequest,
        d: &crate::fleet::Decision,
        host: &str,
        now: i64,
    ) -> Result<Ack> {
        let refuse = |reason: String| Ack {
            id: r.id.clone(),
            host: host.to_string(),
            outcome: "refused".into(),
            reason,
            local_id: 0,
            not_after: 0,
        };
        let Some(fleet) = &self.fleet else {
            return Ok(refuse("not in a fleet".into()));
        };
        let Some(role) = fleet.policy.role(&r.role).cloned() else {
            return Ok(refuse(format!("no fleet role '{}'", r.role)));
        };
        let (Ok(user), Ok(role_name)) = (
            UserName::new(r.user.as_str()),
            RoleName::new(r.role.as_str()),
        ) else {
            return Ok(refuse(
                "the user or role name is not in jit's grammar".into(),
            ));
        };
        // The requester must be a user of this host: the rule is theirs.
        let Some(uid) = self.dir.uid_of(&user).map_err(Error::Internal)? else {
            return Ok(refuse(format!("no user {user} on this host")));
        };
        let reason = crate::names::validate_text("reason", &r.reason, self.policy.reason_max)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let new = NewRequest {
            user,
            uid,
            role: role_name,
            reason,
            duration_secs: r.duration_secs,
            state: State::Active,
            now,
            not_after: d.not_after,
            pending_until: 0,
            approvals_required: role.approvals,
            approvers: d.approvers.clone(),
            commands: role.commands.clone(),
            run_as: role.run_as.clone(),
            reauth: false,
            ssh: false,
            service: "fleet".into(),
            tty: String::new(),
            rhost: r.host.clone(),
            kind: Kind::Grant,
            extends: 0,
            log_io: false,
            groups: Vec::new(),
            account: false,
            shell: String::new(),
            ssh_keys: Vec::new(),
            key_fingerprints: Vec::new(),
        };
        let (boot_id, boot_deadline) = self.boot_deadline(d.not_after);
        let detail = format!(
            "fleet={} from host={} user={} role={} approved by [{}] not_after={} reason={}",
            r.id,
            r.host,
            r.user,
            r.role,
            d.approvers.join(","),
            format_rfc3339(d.not_after),
            new.reason
        );
        let id = self.commit(|tx, recs| {
            let id = store::insert_request(tx, &new)?;
            store::set_boot_deadline(tx, id, &boot_id, boot_deadline)?;
            store::insert_fleet_grant(tx, &r.id, id, now)?;
            recs.push(store::append_audit(
                tx,
                &Event {
                    at: now,
                    actor: who,
                    action: "fleet-grant",
                    request_id: id,
                    detail,
                },
            )?);
            Ok(id)
        })?;
        let row = self.get(id)?;
        self.install_or_revoke(&row)?;
        Ok(Ack {
            id: r.id.clone(),
            host: host.to_string(),
            outcome: "applied".into(),
            reason: String::new(),
            local_id: id,
            not_after: d.not_after,
        })
    }
}
