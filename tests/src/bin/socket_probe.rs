//! A raw client and a fake server for jitd's PAM socket, for negative tests run as an
//! unprivileged user:
//! - `socket_probe call PATH JSON` sends one call frame and prints the reply frame.
//!   Exit 0: a reply came; 2: no connection; 1: other error.
//! - `socket_probe serve PATH JSON` binds PATH (0666) and answers every call with JSON,
//!   until killed: an impostor jitd.
#![forbid(unsafe_code)]

use std::io::{Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::ExitCode;

/// One NUL-terminated frame (pam_jit sends one call and waits for its reply, so nothing
/// follows the NUL).
fn read_frame(s: &mut UnixStream) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
        if out.last() == Some(&0) {
            out.pop();
            return Ok(out);
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(cmd), Some(path), Some(json)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: socket_probe call|serve PATH JSON");
        return ExitCode::from(2);
    };
    match cmd.as_str() {
        "call" => {
            let mut s = match UnixStream::connect(path) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("connect: {e}");
                    return ExitCode::from(2);
                }
            };
            let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(10)));
            let mut frame = json.as_bytes().to_vec();
            frame.push(0);
            if let Err(e) = s.write_all(&frame) {
                // jitd refuses a peer other than root at once, from the kernel's word about
                // it: its answer may be written, and the socket closed, before the call is.
                // The answer is still there to read.
                eprintln!("send: {e} (reading the answer anyway)");
            }
            match read_frame(&mut s) {
                Ok(reply) => {
                    println!("{}", String::from_utf8_lossy(&reply));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("read: {e}");
                    ExitCode::from(1)
                }
            }
        }
        "serve" => {
            let Ok(l) = UnixListener::bind(path) else {
                eprintln!("bind {path} failed");
                return ExitCode::from(1);
            };
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666));
            println!("serving");
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                while let Ok(call) = read_frame(&mut s) {
                    if call.is_empty() {
                        break;
                    }
                    let mut reply = json.as_bytes().to_vec();
                    reply.push(0);
                    if s.write_all(&reply).is_err() {
                        break;
                    }
                }
            }
            ExitCode::SUCCESS
        }
        _ => ExitCode::from(2),
    }
}
