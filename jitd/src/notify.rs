//! The service manager's notification protocol (sd_notify): readiness once the bus name is
//! taken, and watchdog keep-alives from the expiry timer, so a jitd whose timer loop is stuck
//! (and so would let grants outlive their end) is killed and restarted by systemd.
//!
//! A datagram to the socket named by `$NOTIFY_SOCKET` (a path, or `@name` in the abstract
//! namespace). Without that variable (jitd started by hand, by D-Bus activation, by the tests)
//! nothing is sent. jitd's children (visudo, a reason validator) are started with a cleared
//! environment, so they do not inherit these variables.

use std::os::unix::net::UnixDatagram;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Notifier {
    socket: Option<(UnixDatagram, Target)>,
    /// Keep-alives are due every this often (half of `$WATCHDOG_USEC`), if the watchdog is on.
    watchdog_every: Option<Duration>,
    last_ping: Mutex<Option<Instant>>,
}

enum Target {
    Path(std::path::PathBuf),
    Abstract(Vec<u8>),
}

impl Notifier {
    /// Reads `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID`.
    pub fn from_env() -> Notifier {
        let socket = std::env::var("NOTIFY_SOCKET").ok();
        let usec = std::env::var("WATCHDOG_USEC").ok();
        let pid = std::env::var("WATCHDOG_PID").ok();
        Notifier::new(
            socket.as_deref(),
            usec.as_deref(),
            pid.as_deref(),
            std::process::id(),
        )
    }

    /// The notifier for these variable values (pure, for tests).
    pub fn new(
        socket: Option<&str>,
        watchdog_usec: Option<&str>,
        watchdog_pid: Option<&str>,
        own_pid: u32,
    ) -> Notifier {
        let target = match socket {
            Some(s) if s.starts_with('@') && s.len() > 1 => {
                Some(Target::Abstract(s.as_bytes()[1..].to_vec()))
            }
            Some(s) if s.starts_with('/') => Some(Target::Path(s.into())),
            Some(s) => {
                tracing::warn!("ignoring NOTIFY_SOCKET={s:?}: neither a path nor @name");
                None
            }
            None => None,
        };
        let socket = target.and_then(|t| match UnixDatagram::unbound() {
            Ok(s) => Some((s, t)),
            Err(e) => {
                tracing::warn!("cannot create the notification socket: {e}");
                None
            }
        });
        // WATCHDOG_PID names the process the watchdog is meant for; another pid means the
        // variables were inherited and are not ours.
        let ours = watchdog_pid.is_none_or(|p| p.parse::<u32>().ok() == Some(own_pid));
        let watchdog_every = watchdog_usec
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|&u| u > 0 && ours && socket.is_some())
            .map(|u| Duration::from_micros(u / 2));
        Notifier {
            socket,
            watchdog_every,
            last_ping: Mutex::new(None),
        }
    }

    /// A notifier that sends nothing.
    pub fn none() -> Notifier {
        Notifier::new(None, None, None, 0)
    }

    pub fn watchdog_every(&self) -> Option<Duration> {
        self.watchdog_every
    }

    fn send(&self, msg: &str) {
        let Some((sock, target)) = &self.socket else {
            return;
        };
        let sent = match target {
            Target::Path(p) => sock.send_to(msg.as_bytes(), p),
            Target::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(name)
                    .and_then(|a| sock.send_to_addr(msg.as_bytes(), &a))
            }
        };
        if let Err(e) = sent {
            tracing::warn!("sd_notify {msg:?}: {e}");
        }
    }

    /// Reconciled and serving: the service manager may consider jitd started.
    pub fn ready(&self, status: &str) {
        self.send(&format!(
            "READY=1\nSTATUS={status}\nMAINPID={}",
            std::process::id()
        ));
    }

    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={status}"));
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }

    /// Called by the expiry timer on every pass; sends a keep-alive when one is due.
    pub fn watchdog(&self, now: Instant) {
        let Some(every) = self.watchdog_every else {
            return;
        };
        let Ok(mut last) = self.last_ping.lock() else {
            return;
        };
        if last.is_none_or(|t| now.duration_since(t) >= every) {
            *last = Some(now);
            drop(last);
            self.send("WATCHDOG=1");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_no_socket_then_no_watchdog() {
        let n = Notifier::new(None, Some("1000000"), None, 7);
        assert_eq!(n.watchdog_every(), None);
    }

    #[test]
    fn given_watchdog_for_another_pid_then_it_is_not_ours() {
        let n = Notifier::new(Some("/run/x"), Some("1000000"), Some("8"), 7);
        assert_eq!(n.watchdog_every(), None);
        let n = Notifier::new(Some("/run/x"), Some("1000000"), Some("7"), 7);
        assert_eq!(n.watchdog_every(), Some(Duration::from_millis(500)));
    }

    #[test]
    fn given_bad_values_then_ignored() {
        assert!(
            Notifier::new(Some("relative"), None, None, 1)
                .socket
                .is_none()
        );
        assert!(Notifier::new(Some("@"), None, None, 1).socket.is_none());
        assert_eq!(
            Notifier::new(Some("@sd"), Some("soon"), None, 1).watchdog_every(),
            None
        );
        assert_eq!(
            Notifier::new(Some("@sd"), Some("0"), None, 1).watchdog_every(),
            None
        );
    }

    #[test]
    fn given_path_socket_then_ready_and_pings_arrive_at_most_every_half_period() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        rx.set_nonblocking(true).unwrap();
        let n = Notifier::new(path.to_str(), Some("2000000"), None, 1);
        n.ready("serving");
        let t0 = Instant::now();
        n.watchdog(t0);
        n.watchdog(t0 + Duration::from_millis(500)); // not due yet (every 1 s)
        n.watchdog(t0 + Duration::from_millis(1000));
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        while let Ok(len) = rx.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..len]).into_owned());
        }
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got[0].starts_with("READY=1\nSTATUS=serving\nMAINPID="));
        assert_eq!(got[1], "WATCHDOG=1");
        assert_eq!(got[2], "WATCHDOG=1");
    }

    #[test]
    fn given_abstract_socket_then_message_arrives() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("jitd-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        let n = Notifier::new(Some(&format!("@{name}")), None, None, 1);
        n.stopping();
        let mut buf = [0u8; 64];
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"STOPPING=1");
    }
}
