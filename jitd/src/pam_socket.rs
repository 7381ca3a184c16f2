//! The PAM socket: pam_jit's short path to the PAM operations, beside the bus.
//!
//! A D-Bus call from inside sudo costs a bus connection (authentication, Hello), a round
//! trip through dbus-daemon, and jitd's own round trip asking the bus who called; pam_jit
//! runs in every sudo, so jitd also serves [`crate::pam_ops`] on a socket only root can
//! reach, the way systemd serves its own callers on `/run/systemd/private`. The caller's
//! identity is the kernel's word (`SO_PEERCRED`, taken at connect): anything but uid 0 gets
//! one `NotAuthorized` reply and the connection closed. The protocol is
//! [`jit_proto::wire`]: NUL-terminated JSON, one call answered at a time. The D-Bus
//! interface stays the public one; this is an internal channel for pam_jit alone.

use crate::instance::SocketFile;
use crate::service::Service;
use jit_proto::JitError;
use jit_proto::wire::{self, Frames, PamCall};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{
    DirBuilderExt as _, FileTypeExt as _, MetadataExt as _, PermissionsExt as _,
};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use zruntime::{AsyncIo, Shared, SharedRuntime};

/// Connections served at once. pam_jit holds one per PAM transaction, for the length of
/// its hooks; beyond this, a connection is told jitd is busy and closed.
pub const MAX_CONNECTIONS: usize = 1024;

/// The directory the socket lives in: created 0700 if missing; otherwise it must be a
/// directory of root's that nobody else can write (a socket in a directory someone else
/// controls could be swapped for theirs).
fn private_dir(dir: &Path) -> Result<(), String> {
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(dir)
                .map_err(|e| format!("creating {}: {e}", dir.display()))?;
            Ok(())
        }
        Err(e) => Err(format!("{}: {e}", dir.display())),
        Ok(m) if !m.is_dir() => Err(format!("{} is not a directory", dir.display())),
        Ok(m) if m.uid() != 0 || m.mode() & 0o022 != 0 => Err(format!(
            "{} must be root's and writable by root alone (it is uid {}, mode {:o})",
            dir.display(),
            m.uid(),
            m.mode() & 0o7777
        )),
        Ok(_) => Ok(()),
    }
}

/// Binds the PAM socket at `path`, mode 0600. A socket nobody serves (left by a jitd that
/// was killed) is replaced; one that answers belongs to a running jitd, and this one
/// refuses to start rather than take it over.
pub fn bind(path: &Path) -> Result<(UnixListener, SocketFile), String> {
    let shown = path.display();
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .ok_or_else(|| format!("--pam-socket {shown}: give an absolute path"))?;
    if !path.is_absolute() {
        return Err(format!("--pam-socket {shown}: give an absolute path"));
    }
    private_dir(dir)?;
    match UnixStream::connect(path) {
        Ok(_) => {
            return Err(format!(
                "another jitd serves the PAM socket {shown}; this one stops"
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            let m = std::fs::symlink_metadata(path).map_err(|e| format!("{shown}: {e}"))?;
            if !m.file_type().is_socket() {
                return Err(format!(
                    "{shown} exists and is not a socket; not replacing it"
                ));
            }
            std::fs::remove_file(path).map_err(|e| format!("removing stale {shown}: {e}"))?;
            tracing::info!("removed the stale PAM socket {shown} (no jitd served it)");
        }
        Err(e) => return Err(format!("{shown}: {e}")),
    }
    let listener = UnixListener::bind(path).map_err(|e| format!("binding {shown}: {e}"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("{shown}: {e}"))?;
    let file = SocketFile::bound(path).map_err(|e| format!("{shown}: {e}"))?;
    Ok((listener, file))
}

/// Accepts connections for as long as jitd runs.
pub async fn serve(listener: UnixListener, svc: Arc<Service>) -> Result<(), String> {
    let runtime = SharedRuntime::current().map_err(|e| format!("no runtime: {e}"))?;
    let listener =
        AsyncIo::new(&runtime, listener).map_err(|e| format!("watching the PAM socket: {e}"))?;
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let stream = match listener.read_with(|l| l.accept()).await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // EMFILE and the like leave the connection queued: back off, do not spin.
                tracing::warn!("PAM socket: accept failed: {e}");
                runtime.sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let slot = Slot::take(&open);
        let svc = svc.clone();
        let rt = runtime.clone();
        runtime
            .spawn("pam socket connection", async move {
                if let Err(e) = connection(&rt, stream, slot, &svc).await {
                    tracing::debug!("PAM socket connection ended: {e}");
                }
            })
            .detach();
    }
}

/// One connection counted against [`MAX_CONNECTIONS`]; `None` when over it.
struct Slot(Option<Arc<AtomicUsize>>);

impl Slot {
    fn take(open: &Arc<AtomicUsize>) -> Slot {
        if open.fetch_add(1, Ordering::SeqCst) < MAX_CONNECTIONS {
            Slot(Some(open.clone()))
        } else {
            open.fetch_sub(1, Ordering::SeqCst);
            Slot(None)
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(open) = &self.0 {
            open.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// The peer's uid and pid as the kernel recorded them at connect.
fn peer(stream: &UnixStream) -> std::io::Result<(u32, i32)> {
    let cred = nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::PeerCredentials)?;
    Ok((cred.uid(), cred.pid()))
}

async fn send(io: &AsyncIo<UnixStream, Shared>, frame: &[u8]) -> std::io::Result<()> {
    let mut sent = 0;
    while sent < frame.len() {
        sent += io.write_with(|s| (&*s).write(&frame[sent..])).await?;
    }
    Ok(())
}

/// Serves one connection: the peer must be root; then each call is answered in turn until
/// the peer closes, or sends something that is not a call (answered, then closed).
async fn connection(
    runtime: &SharedRuntime,
    stream: UnixStream,
    slot: Slot,
    svc: &Arc<Service>,
) -> std::io::Result<()> {
    let who = peer(&stream);
    stream.set_nonblocking(true)?;
    let io = AsyncIo::new_nonblocking(runtime, stream)?;
    let refusal = match (&who, &slot.0) {
        (Err(e), _) => Some(JitError::NotAuthorized(format!(
            "cannot establish the caller's identity: {e}"
        ))),
        (Ok((0, _)), Some(_)) => None,
        (Ok((0, _)), None) => Some(JitError::Refused(
            jit_proto::Refusal::Busy,
            format!("jitd serves {MAX_CONNECTIONS} PAM connections already"),
        )),
        (Ok((uid, pid)), _) => {
            tracing::warn!("uid {uid} (pid {pid}) connected to the PAM socket; refused");
            Some(JitError::NotAuthorized(
                "the PAM socket is for root (pam_jit) only".into(),
            ))
        }
    };
    if let Some(e) = refusal {
        return send(&io, &wire::encode_reply(&Err(e))).await;
    }
    let pid = who.map(|(_, pid)| pid).unwrap_or_default();
    tracing::debug!("PAM socket: connection from pid {pid}");
    let mut frames = Frames::new(wire::MAX_CALL);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let frame = loop {
            match frames.feed(&[]) {
                Ok(Some(f)) => break Ok(f),
                Ok(None) => {}
                Err(e) => break Err(e),
            }
            let n = io.read_with(|s| (&*s).read(&mut buf)).await?;
            if n == 0 {
                return Ok(());
            }
            match frames.feed(&buf[..n]) {
                Ok(Some(f)) => break Ok(f),
                Ok(None) => {}
                Err(e) => break Err(e),
            }
        };
        let started = std::time::Instant::now();
        let call = frame.and_then(|f| PamCall::decode(&f));
        let malformed = call.is_err();
        let method = match &call {
            Ok(c) => c.method(),
            Err(e) => {
                tracing::warn!("PAM socket: pid {pid} sent no call ({e}); closing");
                "none"
            }
        };
        let result = match call {
            Ok(call) => crate::pam_ops::answer(svc, call).await,
            Err(e) => Err(JitError::InvalidArgument(e.message())),
        };
        send(&io, &wire::encode_reply(&result)).await?;
        tracing::debug!(
            "PAM socket: call {method} answered in {:.3} ms",
            started.elapsed().as_secs_f64() * 1000.0
        );
        if malformed {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_directories_when_checked_then_only_roots_private_ones_pass() {
        let d = tempfile::tempdir().unwrap();
        let fresh = d.path().join("run");
        private_dir(&fresh).unwrap();
        let m = std::fs::metadata(&fresh).unwrap();
        assert_eq!(m.mode() & 0o777, 0o700);
        private_dir(&fresh).unwrap();
        std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(
            private_dir(&fresh)
                .unwrap_err()
                .contains("writable by root alone")
        );
        let file = d.path().join("file");
        std::fs::write(&file, "").unwrap();
        assert!(private_dir(&file).unwrap_err().contains("not a directory"));
    }

    #[test]
    fn given_a_stale_socket_or_a_live_one_when_binding_then_replaced_or_refused() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("pam.socket");
        let (live, _file) = bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(bind(&path).unwrap_err().contains("another jitd"));
        drop(live);
        let (_again, _file) = bind(&path).expect("a socket nobody serves is replaced");
        let other = d.path().join("plain");
        std::fs::write(&other, "").unwrap();
        assert!(bind(&other).unwrap_err().contains("not a socket"));
        assert!(bind(Path::new("relative.socket")).is_err());
    }
}
