//! Module arguments from the PAM configuration line. Strict: an unknown or malformed
//! argument is a configuration error, and the hook denies.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Sudo,
    Ssh,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub mode: Mode,
    /// `bus=`: from the root-owned PAM file only; never from the environment.
    pub bus: String,
    /// `socket=`: jitd's PAM socket, tried before the bus; `None` (`socket=none`): the bus
    /// only. From the PAM file only, like `bus=`.
    pub socket: Option<PathBuf>,
    /// `timeout=`: each call to jitd.
    pub timeout: Duration,
    /// `wait=`: how long auth waits for an approval (0: do not wait).
    pub wait: Duration,
    pub require_grant: bool,
    pub exempt: Option<String>,
    pub debug: bool,
}

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_WAIT: Duration = Duration::from_secs(120);
/// In sshd the whole keyboard-interactive step must end before LoginGraceTime (120 s by
/// default), questions included.
pub const DEFAULT_SSH_WAIT: Duration = Duration::from_secs(90);
const MAX_TIMEOUT_SECS: u64 = 60;
const MAX_WAIT_SECS: u64 = 3600;

fn seconds(key: &str, v: &str, max: u64, allow_zero: bool) -> Result<Duration, String> {
    match v.parse::<u64>() {
        Ok(n) if n <= max && (allow_zero || n > 0) => Ok(Duration::from_secs(n)),
        _ => Err(format!(
            "{key}= takes whole seconds from {} to {max}, got '{v}'",
            u8::from(!allow_zero)
        )),
    }
}

/// The longest path a Unix socket address holds (`sun_path`, NUL included).
const MAX_SOCKET_PATH: usize = 107;

/// Parses `mode=sudo|ssh bus=ADDRESS socket=PATH|none timeout=S wait=S require_grant
/// exempt=GROUP debug`.
pub fn parse<'a>(args: impl IntoIterator<Item = &'a str>) -> Result<Config, String> {
    let mut mode = None;
    let mut cfg = Config {
        mode: Mode::Sudo,
        bus: jit_proto::SYSTEM_BUS_ADDRESS.to_string(),
        socket: Some(PathBuf::from(jit_proto::wire::DEFAULT_SOCKET)),
        timeout: DEFAULT_TIMEOUT,
        wait: DEFAULT_WAIT,
        require_grant: false,
        exempt: None,
        debug: false,
    };
    let mut seen: Vec<&str> = Vec::new();
    for arg in args {
        let (key, value) = match arg.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (arg, None),
        };
        if seen.contains(&key) {
            return Err(format!("argument {key} given twice"));
        }
        seen.push(key);
        match (key, value) {
            ("mode", Some("sudo")) => mode = Some(Mode::Sudo),
            ("mode", Some("ssh")) => mode = Some(Mode::Ssh),
            ("mode", Some(v)) => return Err(format!("mode= takes sudo or ssh, got '{v}'")),
            ("bus", Some(v)) if v.starts_with("unix:path=") && v.len() > 10 => {
                cfg.bus = v.to_string();
            }
            ("bus", Some(v)) => {
                return Err(format!("bus= takes unix:path=/path/to/socket, got '{v}'"));
            }
            ("socket", Some("none")) => cfg.socket = None,
            ("socket", Some(v))
                if v.starts_with('/') && v.len() <= MAX_SOCKET_PATH && !v.contains("/../") =>
            {
                cfg.socket = Some(PathBuf::from(v));
            }
            ("socket", Some(v)) => {
                return Err(format!(
                    "socket= takes an absolute path (at most {MAX_SOCKET_PATH} bytes) or none, \
                     got '{v}'"
                ));
            }
            ("timeout", Some(v)) => cfg.timeout = seconds("timeout", v, MAX_TIMEOUT_SECS, false)?,
            ("wait", Some(v)) => cfg.wait = seconds("wait", v, MAX_WAIT_SECS, true)?,
            ("require_grant", None) => cfg.require_grant = true,
            ("exempt", Some(g))
                if !g.is_empty()
                    && g.len() <= 32
                    && g.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'
                    }) =>
            {
                cfg.exempt = Some(g.to_string());
            }
            ("exempt", _) => return Err(format!("exempt= takes a group name, got '{arg}'")),
            ("debug", None) => cfg.debug = true,
            _ => return Err(format!("unknown argument '{arg}'")),
        }
    }
    cfg.mode = mode.ok_or("mode=sudo or mode=ssh is required")?;
    if cfg.mode == Mode::Ssh && !seen.contains(&"wait") {
        cfg.wait = DEFAULT_SSH_WAIT;
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_full_argument_list_when_parsed_then_every_value_is_taken() {
        let c = parse([
            "mode=ssh",
            "bus=unix:path=/tmp/b",
            "socket=/tmp/jit/pam.socket",
            "timeout=3",
            "wait=0",
            "require_grant",
            "exempt=breakglass",
            "debug",
        ])
        .unwrap();
        assert_eq!(c.mode, Mode::Ssh);
        assert_eq!(c.bus, "unix:path=/tmp/b");
        assert_eq!(c.socket, Some(PathBuf::from("/tmp/jit/pam.socket")));
        assert_eq!(c.timeout, Duration::from_secs(3));
        assert_eq!(c.wait, Duration::ZERO);
        assert!(c.require_grant && c.debug);
        assert_eq!(c.exempt.as_deref(), Some("breakglass"));
    }

    #[test]
    fn given_only_mode_when_parsed_then_defaults_use_the_system_bus() {
        let c = parse(["mode=sudo"]).unwrap();
        assert_eq!(c.bus, jit_proto::SYSTEM_BUS_ADDRESS);
        assert_eq!(
            c.socket.as_deref(),
            Some(std::path::Path::new("/run/jitd/pam.socket"))
        );
        assert_eq!(parse(["mode=sudo", "socket=none"]).unwrap().socket, None);
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert!(!c.require_grant);
        assert_eq!(c.wait, DEFAULT_WAIT);
        assert_eq!(parse(["mode=ssh"]).unwrap().wait, DEFAULT_SSH_WAIT);
        assert_eq!(
            parse(["mode=ssh", "wait=30"]).unwrap().wait,
            Duration::from_secs(30)
        );
    }

    #[test]
    fn given_bad_arguments_when_parsed_then_configuration_error() {
        let long_socket = format!("socket=/{}", "s".repeat(MAX_SOCKET_PATH));
        for bad in [
            vec![],
            vec!["mode=su"],
            vec!["mode=sudo", "timeout=0"],
            vec!["mode=sudo", "timeout=abc"],
            vec!["mode=sudo", "timeout=61"],
            vec!["mode=sudo", "wait=-1"],
            vec!["mode=sudo", "bus=tcp:host=evil,port=1"],
            vec!["mode=sudo", "bus="],
            vec!["mode=sudo", "socket="],
            vec!["mode=sudo", "socket=run/pam.socket"],
            vec!["mode=sudo", "socket=/run/../tmp/pam.socket"],
            vec!["mode=sudo", &long_socket],
            vec!["mode=sudo", "require_grant=yes"],
            vec!["mode=sudo", "exempt="],
            vec!["mode=sudo", "exempt=%wheel"],
            vec!["mode=sudo", "mode=ssh"],
            vec!["mode=sudo", "verbose"],
        ] {
            assert!(parse(bad.clone()).is_err(), "{bad:?}");
        }
    }
}
