//! The strict grammar every name and command must fit before it reaches a sudoers file.
//!
//! Anything outside it is rejected with a message saying what is allowed. The grammar is
//! deliberately narrower than what sudo or NSS accept: nothing here ever needs escaping.

/// Longest user name accepted (Linux `LOGIN_NAME_MAX` is 256, useradd's default 32).
pub const MAX_USER_LEN: usize = 32;
/// Longest role name.
pub const MAX_ROLE_LEN: usize = 32;
/// Longest command line (path plus arguments).
pub const MAX_COMMAND_LEN: usize = 1024;
/// Most arguments a command may carry.
pub const MAX_COMMAND_ARGS: usize = 32;

fn is_user_start(c: char) -> bool {
    c.is_ascii_lowercase() || c == '_'
}

fn is_user_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'
}

/// `[a-z_][a-z0-9_-]{0,31}`: the portable subset of Debian's default `NAME_REGEX`.
pub fn validate_user_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = match chars.next() {
        Some(first) => is_user_start(first) && chars.all(is_user_char),
        None => false,
    };
    if !ok || name.len() > MAX_USER_LEN {
        return Err(format!(
            "invalid user name '{}': expected [a-z_][a-z0-9_-]*, at most {MAX_USER_LEN} characters",
            escape(name)
        ));
    }
    Ok(())
}

/// Group names follow the same grammar as user names.
pub fn validate_group_name(name: &str) -> Result<(), String> {
    validate_user_name(name).map_err(|_| {
        format!(
            "invalid group name '{}': expected [a-z_][a-z0-9_-]*, at most {MAX_USER_LEN} characters",
            escape(name)
        )
    })
}

/// `[a-z][a-z0-9_-]{0,31}`.
pub fn validate_role_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = match chars.next() {
        Some(first) => first.is_ascii_lowercase() && chars.all(is_user_char),
        None => false,
    };
    if !ok || name.len() > MAX_ROLE_LEN {
        return Err(format!(
            "invalid role name '{}': expected [a-z][a-z0-9_-]*, at most {MAX_ROLE_LEN} characters",
            escape(name)
        ));
    }
    Ok(())
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-')
}

fn is_arg_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-' | '/' | '@')
}

/// An absolute, normalised program path, optionally followed by literal arguments separated
/// by single spaces.
///
/// Path components are `[A-Za-z0-9._+-]+`, never `.` or `..`; arguments are
/// `[A-Za-z0-9._+/@-]+`. So there are no wildcards, regular expressions, quotes, sudoers
/// specials (`,:=\!#"`), no trailing `/` (which sudo reads as "every program in this
/// directory") and no `sudoedit`. As in sudoers, a command without arguments permits any
/// arguments.
/// A directory given in the policy for sudo to use (`iolog_dir`): absolute, components
/// `[A-Za-z0-9._-]+` but never `.` or `..`, at most 200 bytes. No `%` (sudo's escapes), no
/// spaces or sudoers specials.
pub fn validate_dir_path(field: &str, path: &str) -> Result<(), String> {
    let ok = path.len() <= 200
        && path.len() > 1
        && path.starts_with('/')
        && !path.ends_with('/')
        && path[1..].split('/').all(|c| {
            !c.is_empty()
                && c != "."
                && c != ".."
                && c.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-'))
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid {field} '{}': expected an absolute directory such as /var/log/sudo-io/jit \
             (letters, digits, '.', '_', '-' between slashes)",
            escape(path)
        ))
    }
}

pub fn validate_command(cmd: &str) -> Result<(), String> {
    let bad = |why: &str| {
        Err(format!(
            "invalid command '{}': {why}; expected an absolute path such as \
             /usr/bin/systemctl optionally followed by literal arguments \
             ([A-Za-z0-9._+/@-], separated by single spaces)",
            escape(cmd)
        ))
    };
    if cmd.len() > MAX_COMMAND_LEN {
        return bad("too long");
    }
    let mut words = cmd.split(' ');
    let path = words.next().unwrap_or_default();
    let args: Vec<&str> = words.collect();
    let Some(rest) = path.strip_prefix('/') else {
        return bad("not an absolute path");
    };
    if rest.is_empty() || rest.ends_with('/') {
        return bad("names a directory");
    }
    for comp in rest.split('/') {
        if comp.is_empty() || comp == "." || comp == ".." {
            return bad("path is not normalised");
        }
        if !comp.chars().all(is_path_char) {
            return bad("path has characters outside [A-Za-z0-9._+-]");
        }
    }
    if rest.rsplit('/').next() == Some("sudoedit") {
        return bad("sudoedit is not supported");
    }
    if args.len() > MAX_COMMAND_ARGS {
        return bad("too many arguments");
    }
    for arg in &args {
        if arg.is_empty() {
            return bad("arguments must be separated by single spaces");
        }
        if !arg.chars().all(is_arg_char) {
            return bad("argument has characters outside [A-Za-z0-9._+/@-]");
        }
    }
    Ok(())
}

/// A free-text field (reason, comment) as stored and shown: trimmed, bounded, no control,
/// format, bidi, separator or other invisible characters (which could hide or fake text on
/// an approver's terminal or in a log line).
pub fn validate_text(field: &str, text: &str, max_chars: usize) -> Result<String, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err(format!("{field} is required"));
    }
    if t.chars().count() > max_chars {
        return Err(format!(
            "{field} is too long (at most {max_chars} characters)"
        ));
    }
    if let Some(c) = t.chars().find(|c| is_hidden_char(*c)) {
        return Err(format!(
            "{field} contains an invisible, control or formatting character (U+{:04X}); \
             type it again without it",
            u32::from(c)
        ));
    }
    Ok(t.to_string())
}

/// Characters that could hide, reorder or fake text: see [`jit_proto::text::is_hidden_char`].
pub use jit_proto::text::is_hidden_char;

/// Escapes everything that could disturb a terminal or a log line.
pub use jit_proto::text::escape;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_ordinary_names_when_validated_then_accepted() {
        for n in ["alice", "_svc", "bob-2", "a", "x_y-z9"] {
            assert!(validate_user_name(n).is_ok(), "{n}");
        }
        for r in ["web-restart", "db_admin", "r1"] {
            assert!(validate_role_name(r).is_ok(), "{r}");
        }
    }

    #[test]
    fn given_hostile_user_names_when_validated_then_rejected() {
        for n in [
            "",
            "ALL",
            "Alice",
            "%sudo",
            "#0",
            "alice bob",
            "alice,bob",
            "alice\n",
            "-alice",
            "1alice",
            "alice$",
            "al:ice",
            "a\\b",
            "+netgroup",
            &"a".repeat(33),
        ] {
            assert!(validate_user_name(n).is_err(), "{n:?}");
        }
    }

    #[test]
    fn given_safe_commands_when_validated_then_accepted() {
        for c in [
            "/usr/bin/systemctl restart nginx",
            "/usr/bin/systemctl status nginx.service",
            "/usr/sbin/service",
            "/usr/bin/journalctl -u nginx --since today",
            "/opt/app-1.2/bin/ctl+x reload user@host",
        ] {
            assert!(validate_command(c).is_ok(), "{c}");
        }
    }

    #[test]
    fn given_sudoers_specials_in_commands_when_validated_then_rejected() {
        for c in [
            "ALL",
            "systemctl",
            "/usr/bin/",
            "/",
            "/usr/bin/../bin/sh",
            "/usr/./bin/sh",
            "//usr/bin/sh",
            "/usr/bin/sudoedit",
            "/usr/bin/systemctl restart *",
            "/usr/bin/systemctl restart nginx, /bin/sh",
            "/usr/bin/env A=b",
            "/usr/bin/ls \\",
            "/usr/bin/ls \"\"",
            "/usr/bin/ls ^a.*$",
            "/usr/bin/ls  -l",
            "/usr/bin/ls -l ",
            "/usr/bin/ls !x",
            "/usr/bin/ls #x",
            "/usr/bin/ls\t-l",
            "/usr/bin/ls\n/bin/sh",
            "/usr/bin/ls :x",
            "/usr/bin/l[s]",
            "/usr/bin/ls%",
        ] {
            assert!(validate_command(c).is_err(), "{c:?}");
        }
    }

    #[test]
    fn given_text_with_control_or_bidi_characters_when_validated_then_rejected() {
        assert!(validate_text("reason", "OPS-1 fine", 100).is_ok());
        assert_eq!(validate_text("reason", "  x  ", 100).as_deref(), Ok("x"));
        for bad in [
            "",
            "   ",
            "a\nb",
            "a\u{1b}[31m",
            "a\u{202e}b",
            "a\u{200b}b",
            // Invisible characters that passed before (regression): separators, tags, the
            // soft hyphen, interlinear annotations, a Mongolian vowel separator, a
            // deprecated format character.
            "OPS-1\u{2028}approved by bob",
            "OPS-1\u{2029}x",
            "OPS-1\u{E0001}\u{E0041}",
            "OPS\u{00AD}-1",
            "OPS-1\u{FFF9}x\u{FFFA}y\u{FFFB}",
            "OPS-1\u{180E}",
            "OPS-1\u{206A}",
        ] {
            assert!(validate_text("reason", bad, 100).is_err(), "{bad:?}");
        }
        assert!(validate_text("reason", &"x".repeat(101), 100).is_err());
    }

    #[test]
    fn escape_neutralises_terminal_sequences() {
        assert_eq!(escape("a\nb"), "a\\u{a}b");
        assert_eq!(escape("\u{1b}[2J"), "\\u{1b}[2J");
        assert_eq!(escape("x\u{202e}y"), "x\\u{202e}y");
    }
}
