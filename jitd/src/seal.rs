//! Forward-secure sealing of the audit trail, as journald's Forward Secure Sealing does it.
//!
//! Time is cut into epochs of a fixed length from the moment sealing was set up. Each epoch
//! has its own key: key 0 is random, key n+1 is SHA-256 of key n (one way: from key n
//! nobody can go back to key n-1). At the end of epoch n jitd writes a *seal* into the
//! trail, an HMAC-SHA256 under key n over the epoch, the number of records before it and the
//! hash of the last of them (the chain's head), and then replaces key n with key n+1 in the
//! key file, overwriting it in place. So root at time T holds only the current key: every
//! record sealed before T is out of its reach (changing or removing one breaks a seal it
//! cannot make again), and every epoch needs its seal, so removing the newest seals shows as
//! well. The verification key is key 0 with the schedule, printed once at set-up for the
//! admin to keep off the host: with it every key can be derived and every seal checked (so
//! it also can make seals: keep it secret, as journald's).
//!
//! What it cannot prove: records written since the last seal (at most one epoch), and what
//! happened while the key file itself was in an intruder's hands before the seal. The
//! syslog mirror carries each record's sequence number and chain hash to a remote copy.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::fs::OpenOptions;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

/// The key file's name in the state directory.
pub const KEY_FILE: &str = "seal.key";
/// The shortest epoch (tests); the default is [`DEFAULT_INTERVAL`].
pub const MIN_INTERVAL: u64 = 1;
/// journald's default.
pub const DEFAULT_INTERVAL: u64 = 15 * 60;
/// The longest epoch: a day.
pub const MAX_INTERVAL: u64 = 86_400;
/// How long after an epoch's end its seal may come (the timer wakes at least every second).
pub const GRACE_SECS: i64 = 10;

const PREFIX: &str = "jitseal1";

/// An epoch's key.
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    /// A fresh random key 0.
    pub fn random() -> Result<Key, String> {
        let mut k = [0u8; 32];
        getrandom::fill(&mut k).map_err(|e| format!("no random key: {e}"))?;
        Ok(Key(k))
    }

    /// The next epoch's key.
    pub fn evolve(&self) -> Key {
        let mut h = Sha256::new();
        h.update(b"jitd seal evolve v1\0");
        h.update(self.0);
        Key(h.finalize().into())
    }

    /// Key `n` epochs on.
    pub fn advance(&self, n: u64) -> Key {
        let mut k = self.clone();
        for _ in 0..n {
            k = k.evolve();
        }
        k
    }

    /// Names key 0 in the trail (the set-up record, every seal) without revealing it.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"jitd seal fingerprint v1\0");
        h.update(self.0);
        hex(&h.finalize()[..8])
    }

    fn hex(&self) -> String {
        hex(&self.0)
    }

    fn from_hex(s: &str) -> Option<Key> {
        let bytes = unhex(s)?;
        Some(Key(bytes.try_into().ok()?))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// When the epochs start and how long they last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Unix seconds: the start of epoch 0.
    pub t0: i64,
    pub interval: u64,
}

impl Schedule {
    /// The epoch `at` falls in (0 before `t0`).
    pub fn epoch_at(&self, at: i64) -> u64 {
        u64::try_from(at.saturating_sub(self.t0)).unwrap_or(0) / self.interval.max(1)
    }

    /// When epoch `n` ends (its seal is due).
    pub fn end_of(&self, n: u64) -> i64 {
        let secs = n.saturating_add(1).saturating_mul(self.interval);
        self.t0
            .saturating_add(i64::try_from(secs).unwrap_or(i64::MAX))
    }
}

/// What a seal says, and its MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seal {
    /// The fingerprint of key 0.
    pub key: String,
    pub epoch: u64,
    /// How many records precede the seal (the sequence number of the last one).
    pub count: u64,
    /// The hash of record `count` (the chain's head when sealed).
    pub head: String,
    pub mac: String,
}

impl Seal {
    /// Seals `count` records ending in `head` with `key` (epoch `epoch`'s).
    pub fn make(key0_fingerprint: &str, key: &Key, epoch: u64, count: u64, head: &str) -> Seal {
        Seal {
            key: key0_fingerprint.to_string(),
            epoch,
            count,
            head: head.to_string(),
            mac: mac(key, key0_fingerprint, epoch, count, head),
        }
    }

    /// Whether the MAC is right under `key` (epoch `self.epoch`'s).
    pub fn holds(&self, key: &Key) -> bool {
        let Some(given) = unhex(&self.mac) else {
            return false;
        };
        let mut m = keyed(key);
        feed(&mut m, &self.key, self.epoch, self.count, &self.head);
        m.verify_slice(&given).is_ok()
    }

    /// The audit record's detail.
    pub fn detail(&self) -> String {
        format!(
            "key={} epoch={} count={} head={} mac={}",
            self.key, self.epoch, self.count, self.head, self.mac
        )
    }

    /// A seal from an audit record's detail.
    pub fn parse(detail: &str) -> Option<Seal> {
        let mut f = fields(detail);
        Some(Seal {
            key: f.remove("key")?,
            epoch: f.remove("epoch")?.parse().ok()?,
            count: f.remove("count")?.parse().ok()?,
            head: f.remove("head")?,
            mac: f.remove("mac")?,
        })
    }
}

fn fields(detail: &str) -> std::collections::HashMap<&str, String> {
    detail
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k, v.to_string()))
        .collect()
}

fn keyed(key: &Key) -> Hmac<Sha256> {
    // HMAC takes a key of any length; 32 bytes always fits.
    match <Hmac<Sha256> as Mac>::new_from_slice(&key.0) {
        Ok(m) => m,
        Err(_) => crate::fatal::fatal("HMAC refused a 32-byte key"),
    }
}

fn feed(m: &mut Hmac<Sha256>, fingerprint: &str, epoch: u64, count: u64, head: &str) {
    m.update(b"jitd seal v1\0");
    for field in [fingerprint.as_bytes(), head.as_bytes()] {
        m.update(&(field.len() as u64).to_be_bytes());
        m.update(field);
    }
    m.update(&epoch.to_be_bytes());
    m.update(&count.to_be_bytes());
}

fn mac(key: &Key, fingerprint: &str, epoch: u64, count: u64, head: &str) -> String {
    let mut m = keyed(key);
    feed(&mut m, fingerprint, epoch, count, head);
    hex(&m.finalize().into_bytes())
}

/// The set-up record's detail: which key, from when, how often.
pub fn setup_detail(fingerprint: &str, s: Schedule) -> String {
    format!("key={fingerprint} t0={} interval={}", s.t0, s.interval)
}

/// The fingerprint and schedule of a set-up record.
pub fn parse_setup(detail: &str) -> Option<(String, Schedule)> {
    let mut f = fields(detail);
    Some((
        f.remove("key")?,
        Schedule {
            t0: f.remove("t0")?.parse().ok()?,
            interval: f.remove("interval")?.parse().ok()?,
        },
    ))
}

/// Key 0 and its schedule: what the admin keeps off the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerificationKey {
    pub key0: Key,
    pub schedule: Schedule,
}

impl std::fmt::Display for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{PREFIX}-{}-{}-{}",
            self.key0.hex(),
            self.schedule.t0,
            self.schedule.interval
        )
    }
}

impl std::str::FromStr for VerificationKey {
    type Err = String;
    fn from_str(s: &str) -> Result<VerificationKey, String> {
        let bad =
            || "not a verification key (jitseal1-<64 hex digits>-<t0>-<interval>)".to_string();
        let mut parts = s.trim().split('-');
        if parts.next() != Some(PREFIX) {
            return Err(bad());
        }
        let key0 = parts.next().and_then(Key::from_hex).ok_or_else(bad)?;
        let t0 = parts.next().and_then(|t| t.parse().ok()).ok_or_else(bad)?;
        let interval: u64 = parts.next().and_then(|t| t.parse().ok()).ok_or_else(bad)?;
        if parts.next().is_some() || !(MIN_INTERVAL..=MAX_INTERVAL).contains(&interval) {
            return Err(bad());
        }
        Ok(VerificationKey {
            key0,
            schedule: Schedule { t0, interval },
        })
    }
}

/// The key file: the current epoch's key and where it stands. One fixed-length line,
/// rewritten in place (same offset, same length) and flushed to disk at every epoch, so
/// the previous key's bytes are overwritten, not left in a freed block of a new file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyState {
    pub fingerprint: String,
    pub schedule: Schedule,
    pub epoch: u64,
    pub key: Key,
}

/// The key file's line length: room for every field at its largest.
const LINE: usize = 200;

impl KeyState {
    fn line(&self) -> String {
        let mut l = format!(
            "jitd-seal-key v1 key={} t0={} interval={} epoch={} current={}",
            self.fingerprint,
            self.schedule.t0,
            self.schedule.interval,
            self.epoch,
            self.key.hex()
        );
        while l.len() < LINE - 1 {
            l.push(' ');
        }
        l.push('\n');
        l
    }

    fn parse(text: &str) -> Option<KeyState> {
        let line = text.strip_prefix("jitd-seal-key v1 ")?;
        let mut f = fields(line);
        Some(KeyState {
            fingerprint: f.remove("key")?,
            schedule: Schedule {
                t0: f.remove("t0")?.parse().ok()?,
                interval: f.remove("interval")?.parse().ok()?,
            },
            epoch: f.remove("epoch")?.parse().ok()?,
            key: Key::from_hex(&f.remove("current")?)?,
        })
    }
}

pub fn key_path(state_dir: &Path) -> PathBuf {
    state_dir.join(KEY_FILE)
}

/// Reads the key file: `None` if sealing was never set up.
pub fn read_key(path: &Path) -> Result<Option<KeyState>, String> {
    let mut f = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let mut text = String::new();
    f.read_to_string(&mut text)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    KeyState::parse(&text)
        .map(Some)
        .ok_or_else(|| format!("{} is not a seal key file", path.display()))
}

/// Writes the key file over the old one, in place, and flushes it (mode 0600).
pub fn write_key(path: &Path, state: &KeyState) -> Result<(), String> {
    let line = state.line();
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let written = (|| -> std::io::Result<()> {
        f.seek(SeekFrom::Start(0))?;
        f.write_all(line.as_bytes())?;
        f.set_len(line.len() as u64)?;
        f.sync_all()
    })();
    written.map_err(|e| format!("writing {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_key_when_evolved_then_each_epoch_differs_and_advance_agrees() {
        let k0 = Key::random().unwrap();
        let k1 = k0.evolve();
        assert_ne!(k0, k1);
        assert_eq!(k0.advance(3), k1.evolve().evolve());
        assert_eq!(k0.advance(0), k0);
        assert_ne!(Key::random().unwrap(), k0, "random keys");
    }

    #[test]
    fn given_a_seal_when_anything_in_it_changes_then_it_no_longer_holds() {
        let k0 = Key::random().unwrap();
        let fp = k0.fingerprint();
        let k5 = k0.advance(5);
        let s = Seal::make(&fp, &k5, 5, 42, "ab");
        assert!(s.holds(&k5));
        assert!(!s.holds(&k0), "another epoch's key");
        assert!(
            !s.holds(&k0.advance(6)),
            "a later key cannot make an earlier seal"
        );
        for changed in [
            Seal {
                count: 41,
                ..s.clone()
            },
            Seal {
                epoch: 4,
                ..s.clone()
            },
            Seal {
                head: "ac".into(),
                ..s.clone()
            },
            Seal {
                key: "other".into(),
                ..s.clone()
            },
            Seal {
                mac: "00".into(),
                ..s.clone()
            },
            Seal {
                mac: "zz".into(),
                ..s.clone()
            },
        ] {
            assert!(!changed.holds(&k5), "{changed:?}");
        }
        assert_eq!(Seal::parse(&s.detail()), Some(s));
        assert_eq!(Seal::parse("key=a epoch=x count=1 head=h mac=m"), None);
    }

    #[test]
    fn given_a_verification_key_when_printed_and_read_back_then_the_same() {
        let v = VerificationKey {
            key0: Key::random().unwrap(),
            schedule: Schedule {
                t0: 1_795_272_000,
                interval: 900,
            },
        };
        let text = v.to_string();
        assert!(text.starts_with("jitseal1-"));
        assert_eq!(text.parse::<VerificationKey>(), Ok(v));
        for bad in [
            "",
            "jitseal1",
            "jitseal2-00-1-900",
            "jitseal1-abc-1-900",
            &format!("jitseal1-{}-1-0", "00".repeat(32)),
            &format!("jitseal1-{}-1-900-x", "00".repeat(32)),
        ] {
            assert!(bad.parse::<VerificationKey>().is_err(), "{bad}");
        }
    }

    #[test]
    fn given_a_schedule_then_epochs_and_their_ends_line_up() {
        let s = Schedule {
            t0: 1000,
            interval: 60,
        };
        assert_eq!(s.epoch_at(999), 0);
        assert_eq!(s.epoch_at(1000), 0);
        assert_eq!(s.epoch_at(1059), 0);
        assert_eq!(s.epoch_at(1060), 1);
        assert_eq!(s.end_of(0), 1060);
        assert_eq!(s.end_of(1), 1120);
    }

    #[test]
    fn given_the_key_file_when_rewritten_then_in_place_and_the_old_key_gone() {
        let dir = tempfile::tempdir().unwrap();
        let path = key_path(dir.path());
        assert_eq!(read_key(&path), Ok(None));
        let k0 = Key::random().unwrap();
        let mut state = KeyState {
            fingerprint: k0.fingerprint(),
            schedule: Schedule {
                t0: 5,
                interval: 900,
            },
            epoch: 0,
            key: k0.clone(),
        };
        write_key(&path, &state).unwrap();
        assert_eq!(read_key(&path).unwrap(), Some(state.clone()));
        let len = std::fs::metadata(&path).unwrap().len();
        state.epoch = 1;
        state.key = k0.evolve();
        write_key(&path, &state).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&k0.hex()), "the old key is overwritten");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), len);
        assert_eq!(read_key(&path).unwrap(), Some(state));
        std::fs::write(&path, "garbage").unwrap();
        assert!(read_key(&path).is_err());
    }
}
