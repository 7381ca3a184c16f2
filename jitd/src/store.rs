//! The state database: requests, approvals and the audit trail, in SQLite (WAL,
//! synchronous FULL) inside a 0700 state directory.
//!
//! Every state change and its audit record commit in one transaction, before any side
//! effect on the sudoers directory.

use crate::audit;
use crate::error::{Error, Result};
use crate::model::{Actor, Kind};
use crate::names::{Command, NameError, RoleName, UserName};
use crate::trail::Base;
use jit_proto::{AuditRecord, State};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user TEXT NOT NULL,
    uid INTEGER NOT NULL,
    role TEXT NOT NULL,
    reason TEXT NOT NULL,
    duration_secs INTEGER NOT NULL,
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    not_after INTEGER NOT NULL DEFAULT 0,
    pending_until INTEGER NOT NULL DEFAULT 0,
    approvals_required INTEGER NOT NULL,
    approvers TEXT NOT NULL,
    commands TEXT NOT NULL,
    run_as TEXT NOT NULL,
    reauth INTEGER NOT NULL,
    ssh INTEGER NOT NULL,
    decided_by TEXT NOT NULL DEFAULT '',
    decision_reason TEXT NOT NULL DEFAULT '',
    service TEXT NOT NULL,
    tty TEXT NOT NULL DEFAULT '',
    rhost TEXT NOT NULL DEFAULT '',
    kind TEXT NOT NULL DEFAULT 'grant',
    extends INTEGER NOT NULL DEFAULT 0,
    granted_at INTEGER NOT NULL DEFAULT 0,
    reviewed_by TEXT NOT NULL DEFAULT '',
    reviewed_at INTEGER NOT NULL DEFAULT 0,
    review_comment TEXT NOT NULL DEFAULT '',
    log_io INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS requests_state ON requests(state);
CREATE INDEX IF NOT EXISTS requests_user_state ON requests(user, state);
CREATE TABLE IF NOT EXISTS approvals (
    request_id INTEGER NOT NULL REFERENCES requests(id),
    approver TEXT NOT NULL,
    approver_uid INTEGER NOT NULL,
    at INTEGER NOT NULL,
    comment TEXT NOT NULL,
    PRIMARY KEY (request_id, approver)
);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    actor_uid INTEGER NOT NULL,
    action TEXT NOT NULL,
    request_id INTEGER NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    origin TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS audit_at ON audit(at);
-- Where the chain starts after records were pruned (one row, or none: from record 1).
CREATE TABLE IF NOT EXISTS audit_base (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    next_seq INTEGER NOT NULL,
    prev_hash TEXT NOT NULL,
    seal_key TEXT NOT NULL,
    seal_t0 INTEGER NOT NULL,
    seal_interval INTEGER NOT NULL,
    seal_next_epoch INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    grant_id INTEGER NOT NULL,
    pid INTEGER NOT NULL,
    start_time INTEGER NOT NULL,
    boot_id TEXT NOT NULL,
    tty TEXT NOT NULL,
    PRIMARY KEY (grant_id, pid, start_time)
);
CREATE TABLE IF NOT EXISTS memberships (
    user TEXT NOT NULL,
    grp TEXT NOT NULL,
    had_before INTEGER NOT NULL,
    since INTEGER NOT NULL,
    PRIMARY KEY (user, grp)
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    notifier TEXT NOT NULL,
    audit_seq INTEGER NOT NULL,
    event TEXT NOT NULL,
    request_id INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at INTEGER NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL DEFAULT 'queued'
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox(state, next_at);
-- Ephemeral accounts: every one jitd made (or found in its range and removed), kept after
-- removal so that no uid is ever given twice.
CREATE TABLE IF NOT EXISTS accounts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    uid INTEGER NOT NULL UNIQUE,
    home TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    removed_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS accounts_state ON accounts(state);
-- Fleet grants applied here: the fleet request's id, and the local request that holds it.
CREATE TABLE IF NOT EXISTS fleet_grants (
    fleet_id TEXT PRIMARY KEY,
    request_id INTEGER NOT NULL,
    at INTEGER NOT NULL
);
-- Fleet records made here (requests, approvals, ends) waiting for the fleet agent to put
-- them into etcd; kept across restarts, removed once the agent says they are there.
CREATE TABLE IF NOT EXISTS fleet_outbox (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    at INTEGER NOT NULL
);
"#;

/// Columns added after the first schema, with their definitions: a database created by an
/// older jitd gets them on open (every one has a default, so old rows stay valid).
const ADDED_COLUMNS: [(&str, &str, &str); 17] = [
    ("requests", "kind", "TEXT NOT NULL DEFAULT 'grant'"),
    ("requests", "extends", "INTEGER NOT NULL DEFAULT 0"),
    ("requests", "granted_at", "INTEGER NOT NULL DEFAULT 0"),
    ("requests", "reviewed_by", "TEXT NOT NULL DEFAULT ''"),
    ("requests", "reviewed_at", "INTEGER NOT NULL DEFAULT 0"),
    ("requests", "review_comment", "TEXT NOT NULL DEFAULT ''"),
    ("requests", "log_io", "INTEGER NOT NULL DEFAULT 0"),
    ("requests", "boot_id", "TEXT NOT NULL DEFAULT ''"),
    ("requests", "boot_deadline_ms", "INTEGER NOT NULL DEFAULT 0"),
    // When a pending request was announced as escalated (0: not yet).
    ("requests", "escalated_at", "INTEGER NOT NULL DEFAULT 0"),
    // The `not_after` an active grant was announced as ending soon for (0: not yet).
    ("requests", "ending_soon_for", "INTEGER NOT NULL DEFAULT 0"),
    // Supplementary groups the grant gives (the role's `groups`, frozen at submission).
    ("requests", "groups", "TEXT NOT NULL DEFAULT ''"),
    // The grant is an ephemeral account of its own (`jit-USER-ID`), with this shell and
    // these `authorized_keys` lines (the role's `account`, and the keys given with the request).
    ("requests", "account", "INTEGER NOT NULL DEFAULT 0"),
    ("requests", "shell", "TEXT NOT NULL DEFAULT ''"),
    ("requests", "ssh_keys", "TEXT NOT NULL DEFAULT ''"),
    // Their fingerprints (`SHA256:...`), as ssh-keygen gave them: what approvers are shown.
    ("requests", "key_fingerprints", "TEXT NOT NULL DEFAULT ''"),
    // Records from before `origin` keep an empty one, which the hash leaves out.
    ("audit", "origin", "TEXT NOT NULL DEFAULT ''"),
];

/// A request as stored, with the role's terms frozen at submission time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRow {
    pub id: u64,
    pub user: UserName,
    pub uid: u32,
    pub role: RoleName,
    pub reason: String,
    pub duration_secs: u64,
    pub state: State,
    pub created_at: i64,
    pub updated_at: i64,
    pub not_after: i64,
    pub pending_until: i64,
    pub approvals_required: u32,
    pub approvers: Vec<String>,
    pub commands: Vec<Command>,
    pub run_as: Vec<UserName>,
    pub reauth: bool,
    pub ssh: bool,
    pub decided_by: String,
    pub decision_reason: String,
    pub service: String,
    pub tty: String,
    pub rhost: String,
    pub kind: Kind,
    pub extends: u64,
    pub granted_at: i64,
    pub reviewed_by: String,
    pub reviewed_at: i64,
    pub review_comment: String,
    pub log_io: bool,
    /// The boot an active grant's [`RequestRow::boot_deadline_ms`] belongs to.
    pub boot_id: String,
    /// The grant's end on that boot's CLOCK_BOOTTIME, in milliseconds: unlike `not_after`,
    /// a wall-clock step cannot move it, and it keeps counting through suspend.
    pub boot_deadline_ms: i64,
    /// When the request was announced as escalated (0: not yet).
    pub escalated_at: i64,
    /// Supplementary groups the grant gives its holder for its time.
    pub groups: Vec<crate::names::GroupName>,
    /// The `not_after` the grant was announced as ending soon for (0: not yet).
    pub ending_soon_for: i64,
    /// The grant is an ephemeral account of its own ([`RequestRow::holder`]).
    pub account: bool,
    /// The account's login shell.
    pub shell: String,
    /// The account's `authorized_keys` lines.
    pub ssh_keys: Vec<String>,
    /// Their fingerprints, in the same order.
    pub key_fingerprints: Vec<String>,
}

impl RequestRow {
    /// Who holds the grant's rights: the requester, or for a grant of an account, the
    /// account (`jit-USER-ID`). The sudoers rule, pam_jit's checks and sessions are its.
    pub fn holder(&self) -> String {
        if self.account {
            crate::accounts::account_name(&self.user, self.id)
        } else {
            self.user.to_string()
        }
    }
}

/// A new request before it has an id.
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub user: UserName,
    pub uid: u32,
    pub role: RoleName,
    pub reason: String,
    pub duration_secs: u64,
    pub state: State,
    pub now: i64,
    pub not_after: i64,
    pub pending_until: i64,
    pub approvals_required: u32,
    pub approvers: Vec<String>,
    pub commands: Vec<Command>,
    pub run_as: Vec<UserName>,
    pub reauth: bool,
    pub ssh: bool,
    pub service: String,
    pub tty: String,
    pub rhost: String,
    pub kind: Kind,
    pub extends: u64,
    pub log_io: bool,
    pub groups: Vec<crate::names::GroupName>,
    pub account: bool,
    pub shell: String,
    pub ssh_keys: Vec<String>,
    pub key_fingerprints: Vec<String>,
}

/// An audit event before it is chained.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub at: i64,
    pub actor: &'a Actor,
    pub action: &'a str,
    pub request_id: u64,
    pub detail: String,
}

pub struct Store {
    conn: Connection,
}

fn u64_col(row: &Row<'_>, idx: &str) -> rusqlite::Result<u64> {
    let v: i64 = row.get(idx)?;
    u64::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(0, v))
}

fn u32_col(row: &Row<'_>, idx: &str) -> rusqlite::Result<u32> {
    let v: i64 = row.get(idx)?;
    u32::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(0, v))
}

fn split_lines(s: String) -> Vec<String> {
    if s.is_empty() {
        Vec::new()
    } else {
        s.split('\n').map(str::to_string).collect()
    }
}

/// A column that must parse as a validated name: a database that holds anything else was
/// not written by jitd, and nothing read from it may reach a sudoers rule.
fn named<T: std::str::FromStr<Err = NameError>>(row: &Row<'_>, idx: &str) -> rusqlite::Result<T> {
    let v: String = row.get(idx)?;
    v.parse().map_err(|e: NameError| bad_column(idx, e.0))
}

/// A newline-separated list of validated names.
fn named_list<T: std::str::FromStr<Err = NameError>>(
    row: &Row<'_>,
    idx: &str,
) -> rusqlite::Result<Vec<T>> {
    split_lines(row.get(idx)?)
        .iter()
        .map(|v| v.parse().map_err(|e: NameError| bad_column(idx, e.0)))
        .collect()
}

fn bad_column(idx: &str, why: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        format!("column {idx}: {why}").into(),
    )
}

/// Names one per line, as lists are stored.
fn lines<T: std::ops::Deref<Target = str>>(items: &[T]) -> String {
    items.iter().map(|i| &**i).collect::<Vec<&str>>().join("\n")
}

fn to_i64(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::InvalidArgument(format!("value {v} out of range")))
}

fn request_from_row(row: &Row<'_>) -> rusqlite::Result<RequestRow> {
    let state: String = row.get("state")?;
    Ok(RequestRow {
        id: u64_col(row, "id")?,
        user: named(row, "user")?,
        uid: u32_col(row, "uid")?,
        role: named(row, "role")?,
        reason: row.get("reason")?,
        duration_secs: u64_col(row, "duration_secs")?,
        state: State::parse(&state).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                0,
                rusqlite::types::Type::Text,
                format!("unknown state {state}").into(),
            )
        })?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
        not_after: row.get("not_after")?,
        pending_until: row.get("pending_until")?,
        approvals_required: u32_col(row, "approvals_required")?,
        approvers: split_lines(row.get("approvers")?),
        commands: named_list(row, "commands")?,
        run_as: named_list(row, "run_as")?,
        reauth: row.get("reauth")?,
        ssh: row.get("ssh")?,
        decided_by: row.get("decided_by")?,
        decision_reason: row.get("decision_reason")?,
        service: row.get("service")?,
        tty: row.get("tty")?,
        rhost: row.get("rhost")?,
        kind: {
            let k: String = row.get("kind")?;
            Kind::parse(&k).ok_or_else(|| {
                rusqlite::Error::FromSqlConversionFailure(
                    0,
                    rusqlite::types::Type::Text,
                    format!("unknown request kind {k}").into(),
                )
            })?
        },
        extends: u64_col(row, "extends")?,
        granted_at: row.get("granted_at")?,
        reviewed_by: row.get("reviewed_by")?,
        reviewed_at: row.get("reviewed_at")?,
        review_comment: row.get("review_comment")?,
        log_io: row.get("log_io")?,
        boot_id: row.get("boot_id")?,
        boot_deadline_ms: row.get("boot_deadline_ms")?,
        escalated_at: row.get("escalated_at")?,
        groups: named_list(row, "groups")?,
        account: row.get("account")?,
        shell: row.get("shell")?,
        ssh_keys: split_lines(row.get("ssh_keys")?),
        key_fingerprints: split_lines(row.get("key_fingerprints")?),
        ending_soon_for: row.get("ending_soon_for")?,
    })
}

/// Creates the state directory 0700 root-owned, or checks an existing one.
pub fn prepare_state_dir(dir: &Path) -> Result<()> {
    match fs::symlink_metadata(dir) {
        Ok(m) => {
            if !m.file_type().is_dir() {
                return Err(Error::Internal(format!(
                    "state directory {} is not a directory (symlinks are refused)",
                    dir.display()
                )));
            }
            if m.uid() != nix::unistd::geteuid().as_raw() {
                return Err(Error::Internal(format!(
                    "state directory {} is not owned by jitd's user",
                    dir.display()
                )));
            }
        }
        Err(_) => fs::create_dir_all(dir).map_err(|e| {
            Error::Internal(format!("creating state directory {}: {e}", dir.display()))
        })?,
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::Internal(format!("chmod 0700 {}: {e}", dir.display())))
}

impl Store {
    /// Opens (creating if needed) `jitd.db` in `dir`.
    pub fn open(dir: &Path) -> Result<Store> {
        prepare_state_dir(dir)?;
        let path = dir.join("jitd.db");
        // SQLite would follow a link planted at any of its names.
        for name in ["jitd.db", "jitd.db-wal", "jitd.db-shm", "jitd.db-journal"] {
            let p = dir.join(name);
            if let Ok(m) = fs::symlink_metadata(&p)
                && let Some(what) = crate::files::not_ours(&m)
            {
                return Err(Error::Internal(format!(
                    "{} is {what}, which jitd never creates; refusing to use it",
                    p.display()
                )));
            }
        }
        let conn = Connection::open(&path)?;
        Store::init(conn)
    }

    /// An in-memory store for tests.
    pub fn in_memory() -> Result<Store> {
        Store::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Store> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        for (table, name, def) in ADDED_COLUMNS {
            let present: bool = conn.query_row(
                "SELECT count(*) > 0 FROM pragma_table_info(?1) WHERE name = ?2",
                params![table, name],
                |r| r.get(0),
            )?;
            if !present {
                conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {name} {def}"))?;
            }
        }
        Ok(Store { conn })
    }

    /// Runs `f` in one transaction; commits only if it returns Ok.
    pub fn transaction<T>(&mut self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let tx = self.conn.transaction()?;
        let out = f(&tx)?;
        tx.commit()?;
        crate::faults::reached(crate::faults::Point::AfterCommit);
        Ok(out)
    }

    pub fn get(&self, id: u64) -> Result<Option<RequestRow>> {
        get(&self.conn, id)
    }

    /// The connection, for reads the store's own functions do on a connection or a
    /// transaction alike.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Requests in any of `states`, oldest first.
    pub fn by_state(&self, states: &[State]) -> Result<Vec<RequestRow>> {
        let mut out = Vec::new();
        let mut stmt = self
            .conn
            .prepare_cached("SELECT * FROM requests WHERE state = ?1 ORDER BY id")?;
        for s in states {
            let rows = stmt.query_map(params![s.as_str()], request_from_row)?;
            for r in rows {
                out.push(r?);
            }
        }
        out.sort_by_key(|r| r.id);
        Ok(out)
    }

    /// Active or pending requests of one user.
    pub fn open_of_user(&self, user: &str) -> Result<Vec<RequestRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT * FROM requests WHERE user = ?1 AND state IN ('pending','active') ORDER BY id",
        )?;
        let rows = stmt.query_map(params![user], request_from_row)?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(Into::into)
    }

    /// Break-glass grants, oldest first; `unreviewed`: only those nobody acknowledged.
    pub fn break_glass(&self, unreviewed: bool) -> Result<Vec<RequestRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT * FROM requests WHERE kind = 'break-glass' AND (?1 = 0 OR reviewed_by = '') \
             ORDER BY id",
        )?;
        let rows = stmt.query_map(params![unreviewed], request_from_row)?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(Into::into)
    }

    /// How many break-glass grants nobody has acknowledged.
    pub fn unreviewed_break_glass(&self) -> Result<u32> {
        let n: i64 = self
            .conn
            .prepare_cached(
                "SELECT COUNT(*) FROM requests WHERE kind = 'break-glass' AND reviewed_by = ''",
            )?
            .query_row([], |r| r.get(0))?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// The most recent `limit` requests, newest first.
    pub fn recent(&self, limit: u32) -> Result<Vec<RequestRow>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT * FROM requests ORDER BY id DESC LIMIT ?1")?;
        let rows = stmt.query_map(params![limit], request_from_row)?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(Into::into)
    }

    pub fn approvers_of(&self, id: u64) -> Result<Vec<(String, u32)>> {
        approvers_of(&self.conn, id)
    }

    /// Audit records since `since` (unix seconds), optionally only those naming `user`.
    pub fn audit_since(&self, since: i64, user: &str) -> Result<Vec<AuditRecord>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT a.seq, a.at, a.actor, a.actor_uid, a.origin, a.action, a.request_id, a.detail, a.hash \
             FROM audit a LEFT JOIN requests r ON r.id = a.request_id \
             WHERE a.at >= ?1 AND (?2 = '' OR a.actor = ?2 OR r.user = ?2) ORDER BY a.seq",
        )?;
        let rows = stmt.query_map(params![since, user], audit_record)?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(Into::into)
    }

    /// Feeds the records from `from` on (at most `limit`) to `f`, in order, each with the
    /// previous-hash it was stored with. Returns how many were fed.
    pub fn audit_walk(
        &self,
        from: u64,
        limit: u64,
        mut f: impl FnMut(&AuditRecord, &str),
    ) -> Result<u64> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, at, actor, actor_uid, origin, action, request_id, detail, prev_hash, \
             hash FROM audit WHERE seq >= ?1 ORDER BY seq LIMIT ?2",
        )?;
        let mut rows = stmt.query(params![to_i64(from)?, to_i64(limit)?])?;
        let mut fed = 0;
        while let Some(row) = rows.next()? {
            let rec = audit_record(row)?;
            let prev_hash: String = row.get("prev_hash")?;
            f(&rec, &prev_hash);
            fed += 1;
        }
        Ok(fed)
    }

    /// Records after `after_seq` (at most `limit`), from `since` (unix seconds), optionally
    /// only those naming `user`: one page of the trail.
    pub fn audit_page(
        &self,
        after_seq: u64,
        limit: u32,
        since: i64,
        user: &str,
    ) -> Result<Vec<AuditRecord>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT a.seq, a.at, a.actor, a.actor_uid, a.origin, a.action, a.request_id, a.detail, a.hash \
             FROM audit a LEFT JOIN requests r ON r.id = a.request_id \
             WHERE a.seq > ?1 AND a.at >= ?2 AND (?3 = '' OR a.actor = ?3 OR r.user = ?3) \
             ORDER BY a.seq LIMIT ?4",
        )?;
        let rows = stmt.query_map(
            params![to_i64(after_seq)?, since, user, i64::from(limit)],
            audit_record,
        )?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(Into::into)
    }

    /// Where the chain starts (after a prune), or from record 1.
    pub fn audit_base(&self) -> Result<Base> {
        let row = self
            .conn
            .query_row(
                "SELECT next_seq, prev_hash, seal_key, seal_t0, seal_interval, seal_next_epoch \
                 FROM audit_base WHERE id = 1",
                [],
                |r| {
                    Ok((
                        u64_col(r, "next_seq")?,
                        r.get::<_, String>("prev_hash")?,
                        r.get::<_, String>("seal_key")?,
                        r.get::<_, i64>("seal_t0")?,
                        u64_col(r, "seal_interval")?,
                        u64_col(r, "seal_next_epoch")?,
                    ))
                },
            )
            .optional()?;
        Ok(match row {
            None => Base::default(),
            Some((next_seq, prev, key, t0, interval, next_epoch)) => Base {
                next_seq,
                prev,
                sealing: (!key.is_empty()).then_some((
                    key,
                    crate::seal::Schedule { t0, interval },
                    next_epoch,
                )),
            },
        })
    }

    /// The epoch of the newest seal of the key named `fingerprint`, if any.
    pub fn last_seal_epoch(&self, fingerprint: &str) -> Result<Option<u64>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT detail FROM audit WHERE action = 'seal' ORDER BY seq DESC LIMIT 64",
        )?;
        let details = stmt.query_map([], |r| r.get::<_, String>(0))?;
        for d in details {
            if let Some(s) = crate::seal::Seal::parse(&d?)
                && s.key == fingerprint
            {
                return Ok(Some(s.epoch));
            }
        }
        Ok(None)
    }

    /// The newest record's sequence number and hash (0 and the base's hash if none).
    pub fn audit_head(&self) -> Result<(u64, String)> {
        audit_head(&self.conn)
    }
}

/// Where a new record links to: the newest record, or the base after a prune.
pub fn audit_head(conn: &Connection) -> Result<(u64, String)> {
    let last = conn
        .query_row(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((u64_col(r, "seq")?, r.get::<_, String>("hash")?)),
        )
        .optional()?;
    if let Some(head) = last {
        return Ok(head);
    }
    let base = conn
        .query_row(
            "SELECT next_seq, prev_hash FROM audit_base WHERE id = 1",
            [],
            |r| Ok((u64_col(r, "next_seq")?, r.get::<_, String>("prev_hash")?)),
        )
        .optional()?;
    Ok(
        base.map_or((0, audit::GENESIS.to_string()), |(next, prev)| {
            (next.saturating_sub(1), prev)
        }),
    )
}

fn audit_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRecord> {
    Ok(AuditRecord {
        seq: u64_col(row, "seq")?,
        at: row.get("at")?,
        actor: row.get("actor")?,
        actor_uid: u32_col(row, "actor_uid")?,
        origin: row.get("origin")?,
        action: row.get("action")?,
        request_id: u64_col(row, "request_id")?,
        detail: row.get("detail")?,
        hash: row.get("hash")?,
    })
}

pub fn get(conn: &Connection, id: u64) -> Result<Option<RequestRow>> {
    let id = to_i64(id)?;
    conn.prepare_cached("SELECT * FROM requests WHERE id = ?1")?
        .query_row(params![id], request_from_row)
        .optional()
        .map_err(Into::into)
}

pub fn approvers_of(conn: &Connection, id: u64) -> Result<Vec<(String, u32)>> {
    let id = to_i64(id)?;
    let mut stmt = conn.prepare_cached(
        "SELECT approver, approver_uid FROM approvals WHERE request_id = ?1 ORDER BY at, approver",
    )?;
    let rows = stmt.query_map(params![id], |r| {
        Ok((r.get(0)?, u32_col(r, "approver_uid")?))
    })?;
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .map_err(Into::into)
}

/// A session registered under a grant, as stored so that a restarted jitd can find its
/// process again: a pid names the same process only with the same start time (clock ticks
/// after boot, `/proc/PID/stat` field 22) in the same boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub grant_id: u64,
    pub pid: i32,
    pub start_time: u64,
    pub boot_id: String,
    pub tty: String,
}

impl Store {
    /// Every stored session.
    pub fn sessions(&self) -> Result<Vec<SessionRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT grant_id, pid, start_time, boot_id, tty FROM sessions ORDER BY grant_id, pid",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(SessionRow {
                grant_id: u64_col(r, "grant_id")?,
                pid: r.get("pid")?,
                start_time: u64_col(r, "start_time")?,
                boot_id: r.get("boot_id")?,
                tty: r.get("tty")?,
            })
        })?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(Into::into)
    }
}

mod accounts;
mod fleet;
mod memberships;
mod outbox;
mod write;
pub use accounts::*;
pub use fleet::*;
pub use memberships::*;
pub use outbox::*;
pub use write::*;
