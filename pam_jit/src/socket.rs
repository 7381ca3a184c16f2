//! jitd's PAM socket, from inside sudo or sshd: the short path (see `jit_proto::wire`).
//!
//! std only: no runtime, no thread, no bus. One connection serves a whole PAM transaction
//! (the hooks keep it in PAM data between them); every step is bounded by the `timeout=`
//! argument, the connect included. The socket must be served by root (`SO_PEERCRED`).

use crate::logic::Error;
use jit_proto::wire::{Frames, MAX_REPLY, PamAnswer, PamCall};
use std::cell::RefCell;
use std::io::{ErrorKind, Read as _};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Why a call on the socket did not get an answer.
#[derive(Debug)]
pub enum Failure {
    /// Nobody serves the socket (no file, or a file left by a jitd that is gone): the bus is
    /// the way to jitd (and starts it, where activation is set up).
    Absent,
    /// Everything else: the error to act on (deny where pam_jit is the gate).
    Error(Error),
}

pub struct SocketClient {
    path: PathBuf,
    timeout: Duration,
    conn: RefCell<Option<Conn>>,
}

struct Conn {
    stream: UnixStream,
    /// Kept from an earlier hook: jitd may have restarted since, closing it.
    earlier: bool,
}

/// How an exchange failed.
enum Broken {
    /// The peer had closed the connection before this call (nothing of it was answered).
    Closed,
    Failed(String),
}

fn unreachable(why: impl std::fmt::Display) -> Failure {
    Failure::Error(Error::Unreachable(why.to_string()))
}

impl SocketClient {
    /// A client for `path`, reusing `kept` (a connection an earlier hook of this
    /// transaction opened) if there is one.
    pub fn new(path: PathBuf, timeout: Duration, kept: Option<UnixStream>) -> SocketClient {
        SocketClient {
            path,
            timeout,
            conn: RefCell::new(kept.map(|stream| Conn {
                stream,
                earlier: true,
            })),
        }
    }

    /// The open connection, for the next hook of this transaction.
    pub fn into_connection(self) -> Option<UnixStream> {
        self.conn.into_inner().map(|c| c.stream)
    }

    /// One call, answered within `timeout` plus `extra`.
    pub fn call(&self, call: &PamCall, extra: Duration) -> Result<PamAnswer, Failure> {
        let deadline = Instant::now() + self.timeout + extra;
        let frame = call
            .encode()
            .map_err(|e| Failure::Error(Error::Unreachable(e.message())))?;
        let mut conn = self.conn.borrow_mut();
        loop {
            let c = match conn.take() {
                Some(c) => c,
                None => Conn {
                    stream: connect(&self.path, deadline)?,
                    earlier: false,
                },
            };
            match exchange(&c.stream, &frame, deadline) {
                Ok(reply) => {
                    let answer = call
                        .decode_reply(&reply)
                        .map_err(|e| Failure::Error(crate::channel::from_jit(e)));
                    *conn = Some(Conn {
                        stream: c.stream,
                        earlier: c.earlier,
                    });
                    return answer;
                }
                // jitd restarted since an earlier hook: once more, on a new connection.
                Err(Broken::Closed) if c.earlier => {}
                Err(Broken::Closed) => return Err(unreachable("jitd closed the PAM socket")),
                Err(Broken::Failed(why)) => return Err(unreachable(why)),
            }
        }
    }
}

/// Connects, within `deadline` (a connect to a listener whose queue is full would wait
/// without end), and checks that root serves the socket.
fn connect(path: &std::path::Path, deadline: Instant) -> Result<UnixStream, Failure> {
    use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, UnixAddr};
    let addr = UnixAddr::new(path).map_err(|e| unreachable(format!("{}: {e}", path.display())))?;
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(|e| unreachable(format!("socket: {e}")))?;
    loop {
        match socket::connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr) {
            Ok(()) => break,
            Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ECONNREFUSED) => {
                return Err(Failure::Absent);
            }
            Err(nix::errno::Errno::EAGAIN) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(nix::errno::Errno::EAGAIN) => {
                return Err(unreachable("jitd accepts no connection on its PAM socket"));
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(unreachable(format!("{}: {e}", path.display()))),
        }
    }
    let stream = UnixStream::from(fd);
    stream
        .set_nonblocking(false)
        .map_err(|e| unreachable(format!("socket: {e}")))?;
    let cred = socket::getsockopt(&stream, socket::sockopt::PeerCredentials)
        .map_err(|e| unreachable(format!("who serves {}: {e}", path.display())))?;
    if cred.uid() != 0 {
        return Err(unreachable(format!(
            "{} is served by uid {}, not root",
            path.display(),
            cred.uid()
        )));
    }
    Ok(stream)
}

fn left(deadline: Instant) -> Result<Duration, Broken> {
    let d = deadline.saturating_duration_since(Instant::now());
    if d.is_zero() {
        return Err(Broken::Failed("no answer from jitd in time".into()));
    }
    Ok(d)
}

fn closed(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
    )
}

/// Sends one call and reads its reply frame.
fn exchange(mut stream: &UnixStream, frame: &[u8], deadline: Instant) -> Result<Vec<u8>, Broken> {
    let io = |e: std::io::Error| match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => {
            Broken::Failed("no answer from jitd in time".into())
        }
        _ => Broken::Failed(format!("PAM socket: {e}")),
    };
    stream
        .set_write_timeout(Some(left(deadline)?))
        .map_err(io)?;
    // MSG_NOSIGNAL: a peer that is gone is an EPIPE here, never a SIGPIPE to sudo or sshd.
    let mut sent = 0;
    while sent < frame.len() {
        match nix::sys::socket::send(
            std::os::fd::AsRawFd::as_raw_fd(stream),
            &frame[sent..],
            nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
        ) {
            Ok(n) => sent += n,
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                let e = std::io::Error::from(e);
                return Err(if closed(&e) && sent == 0 {
                    Broken::Closed
                } else {
                    io(e)
                });
            }
        }
    }
    let mut frames = Frames::new(MAX_REPLY);
    let mut buf = vec![0u8; 16 * 1024];
    let mut got = 0usize;
    loop {
        stream.set_read_timeout(Some(left(deadline)?)).map_err(io)?;
        let n = match stream.read(&mut buf) {
            Ok(0) if got == 0 => return Err(Broken::Closed),
            Ok(0) => {
                return Err(Broken::Failed(
                    "jitd closed the PAM socket mid-reply".into(),
                ));
            }
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if closed(&e) && got == 0 => return Err(Broken::Closed),
            Err(e) => return Err(io(e)),
        };
        got += n;
        match frames.feed(&buf[..n]) {
            Ok(Some(reply)) if frames.is_empty() => return Ok(reply),
            Ok(Some(_)) => return Err(Broken::Failed("jitd sent more than one reply".into())),
            Ok(None) => {}
            Err(e) => return Err(Broken::Failed(e.message())),
        }
    }
}
