//! The audit trail's hash chain and its syslog mirror.
//!
//! Records live in the state database (see `store`); each carries the SHA-256 of the
//! previous record, so editing or deleting one breaks the chain at that point.

use crate::names;
use jit_proto::AuditRecord;
use sha2::{Digest, Sha256};
use std::sync::Mutex;

/// The "previous hash" of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// SHA-256 over the previous hash and every field, each length-prefixed so that no two
/// different records serialise the same way. An empty origin (records written before jitd
/// kept one) is left out, so their hashes stay what they were; with the length prefixes, a
/// record with an origin still cannot serialise like one without.
/// The record's own `hash` field is not part of it.
pub fn hash(prev: &str, r: &AuditRecord) -> String {
    let mut h = Sha256::new();
    let (seq, at, uid, id) = (
        r.seq.to_string(),
        r.at.to_string(),
        r.actor_uid.to_string(),
        r.request_id.to_string(),
    );
    let mut fields = vec![prev, &seq, &at, &r.actor, &uid, &r.action, &id, &r.detail];
    if !r.origin.is_empty() {
        fields.push(&r.origin);
    }
    for field in fields {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// One syslog line for a record: `key=value` pairs, free text escaped. The sequence number
/// and the chain hash let a remote copy anchor the local trail: a record changed or removed
/// here no longer matches the line the log server kept.
pub fn syslog_line(r: &AuditRecord) -> String {
    format!(
        "audit seq={} hash={} action={} request={} actor={} uid={} from=[{}] {}",
        r.seq,
        r.hash,
        names::escape(&r.action),
        r.request_id,
        names::escape(&r.actor),
        r.actor_uid,
        names::escape(&r.origin),
        names::escape(&r.detail)
    )
}

type Logger = syslog::Logger<syslog::LoggerBackend, syslog::Formatter3164>;

/// How long a mirror that is down waits between tries to reconnect.
pub const RETRY: std::time::Duration = std::time::Duration::from_secs(5);

/// Mirrors audit records to syslog (facility authpriv). The database is the record of
/// truth; the mirror is the copy out of an intruder's reach when syslog forwards it. When
/// syslog is missing or goes away (rsyslog or journald restarted), the mirror says so once,
/// tries again every [`RETRY`] (on the timer's passes and with each record), and when it is
/// back says which records it could not send.
pub struct Mirror {
    state: Mutex<MirrorState>,
}

#[derive(Default)]
struct MirrorState {
    /// The syslog socket (`--syslog-socket`); `None`: /dev/log, as syslog(3) finds it.
    path: Option<std::path::PathBuf>,
    logger: Option<Logger>,
    /// Unix seconds since the mirror has been down.
    down_since: Option<i64>,
    last_try: Option<std::time::Instant>,
    /// The first record not sent, and the newest one seen.
    unsent_from: Option<u64>,
    last_seq: u64,
}

fn formatter() -> syslog::Formatter3164 {
    syslog::Formatter3164 {
        facility: syslog::Facility::LOG_AUTHPRIV,
        hostname: None,
        process: "jitd".into(),
        pid: std::process::id(),
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl MirrorState {
    /// Tries to connect (at most every [`RETRY`] unless `now`); says what was missed when
    /// it comes back.
    fn reconnect(&mut self, force: bool) {
        if self.logger.is_some() {
            return;
        }
        if !force && self.last_try.is_some_and(|t| t.elapsed() < RETRY) {
            return;
        }
        self.last_try = Some(std::time::Instant::now());
        let connected = match &self.path {
            Some(p) => syslog::unix_custom(formatter(), p),
            None => syslog::unix(formatter()),
        };
        match connected {
            Ok(mut l) => {
                if let Some(first) = self.unsent_from.take() {
                    let _ = l.warning(format!(
                        "audit mirror resumed: records {first} to {} were not sent to syslog \
                         (the state database holds them)",
                        self.last_seq
                    ));
                }
                if self.down_since.take().is_some() {
                    tracing::info!("syslog is back: audit records are mirrored again");
                }
                self.logger = Some(l);
            }
            Err(e) => {
                if self.down_since.is_none() {
                    self.down_since = Some(unix_now());
                    tracing::warn!(
                        "syslog not available, audit records go to the database only until it \
                         is (tried again every {}s): {e}",
                        RETRY.as_secs()
                    );
                }
            }
        }
    }
}

impl Mirror {
    /// A mirror to the syslog socket at `path` (`None`: /dev/log).
    pub fn connect(path: Option<std::path::PathBuf>) -> Mirror {
        let mut state = MirrorState {
            path,
            ..MirrorState::default()
        };
        state.reconnect(true);
        Mirror {
            state: Mutex::new(state),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MirrorState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn send(&self, r: &AuditRecord) {
        let line = syslog_line(r);
        tracing::info!("{line}");
        let mut st = self.lock();
        st.last_seq = st.last_seq.max(r.seq);
        st.reconnect(false);
        for attempt in 0..2 {
            let Some(l) = st.logger.as_mut() else {
                break;
            };
            match l.notice(&line) {
                Ok(()) => return,
                Err(e) => {
                    // The daemon went away (restarted: its socket is a new one): connect
                    // again at once and send once more.
                    st.logger = None;
                    if attempt == 0 {
                        tracing::warn!("syslog write failed, reconnecting: {e}");
                        st.down_since.get_or_insert(unix_now());
                        st.reconnect(true);
                    }
                }
            }
        }
        st.unsent_from.get_or_insert(r.seq);
    }

    /// Called on the timer's passes: a mirror that is down tries again.
    pub fn keepalive(&self) {
        self.lock().reconnect(false);
    }

    /// When the mirror went down (unix seconds), if it is down.
    pub fn down_since(&self) -> Option<i64> {
        let st = self.lock();
        st.logger.is_none().then(|| st.down_since.unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(detail: &str) -> AuditRecord {
        AuditRecord {
            seq: 1,
            at: 100,
            actor: "alice".into(),
            actor_uid: 1001,
            origin: String::new(),
            action: "request".into(),
            request_id: 7,
            detail: detail.into(),
            hash: String::new(),
        }
    }

    #[test]
    fn hash_depends_on_every_field_and_on_the_previous_hash() {
        let base = hash(GENESIS, &rec("x"));
        assert_eq!(base.len(), 64);
        assert_ne!(base, hash(GENESIS, &rec("y")));
        assert_ne!(base, hash(&"1".repeat(64), &rec("x")));
        let mut r = rec("x");
        r.actor_uid = 0;
        assert_ne!(base, hash(GENESIS, &r));
        let mut r = rec("x");
        r.origin = "service=sudo tty=pts/1".into();
        assert_ne!(base, hash(GENESIS, &r));
    }

    #[test]
    fn the_records_own_hash_field_is_not_hashed() {
        let mut r = rec("x");
        let h = hash(GENESIS, &r);
        r.hash = "anything".into();
        assert_eq!(hash(GENESIS, &r), h);
    }

    #[test]
    fn given_field_boundaries_moved_when_hashed_then_hash_differs() {
        let mut a = rec("");
        a.actor = "ab".into();
        a.action = "c".into();
        let mut b = rec("");
        b.actor = "a".into();
        b.action = "bc".into();
        assert_ne!(hash(GENESIS, &a), hash(GENESIS, &b));
    }

    #[test]
    fn given_control_characters_in_detail_when_logged_then_escaped_on_one_line() {
        let r = AuditRecord {
            seq: 1,
            at: 0,
            actor: "alice".into(),
            actor_uid: 1,
            origin: "service=sudo\ntty=x".into(),
            action: "request".into(),
            request_id: 2,
            detail: "reason=a\nfake line\u{202e}".into(),
            hash: String::new(),
        };
        let line = syslog_line(&r);
        assert!(
            line.starts_with("audit seq=1 hash= action=request"),
            "{line}"
        );
        assert!(!line.contains('\n'));
        assert!(line.contains("\\u{a}fake line\\u{202e}"));
        assert!(line.contains("from=[service=sudo\\u{a}tty=x]"), "{line}");
    }
}
