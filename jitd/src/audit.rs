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

/// One syslog line for a record: `key=value` pairs, free text escaped.
pub fn syslog_line(r: &AuditRecord) -> String {
    format!(
        "audit seq={} action={} request={} actor={} uid={} from=[{}] {}",
        r.seq,
        names::escape(&r.action),
        r.request_id,
        names::escape(&r.actor),
        r.actor_uid,
        names::escape(&r.origin),
        names::escape(&r.detail)
    )
}

type Logger = syslog::Logger<syslog::LoggerBackend, syslog::Formatter3164>;

/// Mirrors audit records to syslog (facility authpriv). The database is the record of
/// truth; a missing syslog daemon is reported once and otherwise ignored.
pub struct Mirror {
    logger: Mutex<Option<Logger>>,
}

impl Mirror {
    pub fn connect() -> Mirror {
        let formatter = syslog::Formatter3164 {
            facility: syslog::Facility::LOG_AUTHPRIV,
            hostname: None,
            process: "jitd".into(),
            pid: std::process::id(),
        };
        let logger = match syslog::unix(formatter) {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!("syslog not available, audit records go to the database only: {e}");
                None
            }
        };
        Mirror {
            logger: Mutex::new(logger),
        }
    }

    pub fn send(&self, r: &AuditRecord) {
        let line = syslog_line(r);
        tracing::info!("{line}");
        if let Ok(mut guard) = self.logger.lock()
            && let Some(l) = guard.as_mut()
            && let Err(e) = l.notice(&line)
        {
            tracing::warn!("syslog write failed: {e}");
        }
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
        assert!(!line.contains('\n'));
        assert!(line.contains("\\u{a}fake line\\u{202e}"));
        assert!(line.contains("from=[service=sudo\\u{a}tty=x]"), "{line}");
    }
}
