//! pam_jit: the PAM module of the JIT access system, for the sudo and sshd stacks.
//!
//! The hooks are a few lines: parse arguments, run the logic in [`logic`] against the real
//! PAM handle ([`ffi`]) and jitd ([`channel`]: its PAM socket, or the bus when the socket is
//! absent), and turn the result into a PAM code in one place where every error denies
//! wherever pam_jit is the gate.
#![deny(unsafe_code)]

pub mod args;
pub mod bus;
pub mod channel;
mod ffi;
pub mod logic;
pub mod socket;

use logic::{Error, Host, Pam, Phase, Verdict};
use pam::constants::PamResultCode;
use std::ffi::CStr;

/// The host as seen from a PAM hook.
pub struct System;

impl Host for System {
    fn hostname(&self) -> String {
        nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "this host".into())
    }

    fn in_group(&self, user: &str, group: &str) -> Result<bool, String> {
        let u = nix::unistd::User::from_name(user)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no such user {user}"))?;
        let g = nix::unistd::Group::from_name(group)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no such group {group}"))?;
        Ok(u.gid == g.gid || g.mem.iter().any(|m| m == user))
    }

    fn interrupted(&self) -> bool {
        stop_signal_pending()
    }

    fn is_superuser(&self, user: &str) -> Result<bool, String> {
        Ok(ffi::uid_of(user)? == Some(0))
    }

    fn now(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(0))
            .unwrap_or(0)
    }
}

/// SIGHUP, SIGINT, SIGQUIT or SIGTERM pending for this thread or process, as
/// `/proc/thread-self/status` says (SigPnd, ShdPnd: hex masks, bit n-1 for signal n).
fn stop_signal_pending() -> bool {
    const STOP: u64 = (1 << 0) | (1 << 1) | (1 << 2) | (1 << 14);
    let Ok(status) = std::fs::read_to_string("/proc/thread-self/status") else {
        return false;
    };
    status
        .lines()
        .filter_map(|l| {
            l.strip_prefix("SigPnd:")
                .or_else(|| l.strip_prefix("ShdPnd:"))
        })
        .filter_map(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .any(|mask| mask & STOP != 0)
}

fn code(phase: Phase, v: Verdict) -> PamResultCode {
    match (v, phase) {
        (Verdict::Success, _) => PamResultCode::PAM_SUCCESS,
        (Verdict::Ignore, _) => PamResultCode::PAM_IGNORE,
        (Verdict::Deny, Phase::Auth) => PamResultCode::PAM_AUTH_ERR,
        (Verdict::Deny, Phase::Account) => PamResultCode::PAM_PERM_DENIED,
        (Verdict::Deny, Phase::OpenSession | Phase::CloseSession) => PamResultCode::PAM_SESSION_ERR,
    }
}

/// `setcred` follows a successful auth (sshd calls it after pam_jit admitted a
/// keyboard-interactive login; in sshd's auth stack pam_jit may be the only module, and a
/// stack of IGNOREs fails). pam_jit establishes no credentials: success, unless its
/// arguments are bad.
pub(crate) fn setcred(args: &[&CStr]) -> PamResultCode {
    let parsed = std::panic::catch_unwind(|| {
        let strs: Option<Vec<&str>> = args.iter().map(|a| a.to_str().ok()).collect();
        strs.is_some_and(|s| args::parse(s).is_ok())
    });
    match parsed {
        Ok(true) => PamResultCode::PAM_SUCCESS,
        _ => PamResultCode::PAM_CRED_ERR,
    }
}

/// Every hook: arguments, logic, one mapping to a PAM code. A panic never crosses FFI: it
/// becomes PAM_ABORT (deny).
pub(crate) fn hook(phase: Phase, pam: &mut dyn Pam, args: &[&CStr]) -> PamResultCode {
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let strs: Result<Vec<&str>, _> = args.iter().map(|a| a.to_str()).collect();
        let cfg = strs
            .map_err(|_| Error::Config("module argument is not UTF-8".into()))
            .and_then(|s| args::parse(s).map_err(Error::Config));
        let cfg = match cfg {
            Ok(c) => c,
            Err(e) => {
                pam.log(&format!("configuration error, denying: {e:?}"));
                return code(phase, logic::decide(true, &Err(e)));
            }
        };
        let kept = pam.connection();
        let had_kept = kept.is_some();
        let client = channel::Channel {
            socket: cfg
                .socket
                .clone()
                .map(|path| socket::SocketClient::new(path, cfg.timeout, kept)),
            bus: bus::BusClient {
                address: cfg.bus.clone(),
                timeout: cfg.timeout,
                library: None,
            },
        };
        let result = match phase {
            Phase::Auth if cfg.mode == args::Mode::Sudo => {
                logic::authenticate(&cfg, pam, &client, &System)
            }
            Phase::Auth => logic::authenticate_ssh(&cfg, pam, &client, &System),
            Phase::Account => logic::account(&cfg, pam, &client, &System),
            // The process calling the session hooks is the one that runs the session (sudo's
            // parent of the command; sshd's session process).
            Phase::OpenSession => logic::open_session(&cfg, pam, &client, std::process::id()),
            // jitd notices ended sessions itself: no call at close.
            Phase::CloseSession => Ok(Verdict::Ignore),
        };
        // Kept for the next hook; the session hook is the last that calls jitd, and sudo
        // runs the command after it: nothing stays open for the command's lifetime.
        let conn = client.into_connection();
        let last = matches!(phase, Phase::OpenSession | Phase::CloseSession);
        if last && had_kept {
            pam.keep_connection(None);
        } else if !last && (conn.is_some() || had_kept) {
            pam.keep_connection(conn);
        }
        let verdict = logic::decide(logic::is_gate(Some(&cfg), phase), &result);
        if cfg.debug {
            pam.log(&format!(
                "debug: {phase:?} mode={:?} require_grant={} -> {verdict:?} ({result:?})",
                cfg.mode, cfg.require_grant
            ));
        }
        code(phase, verdict)
    }));
    run.unwrap_or(PamResultCode::PAM_ABORT)
}
