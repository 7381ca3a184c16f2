//! The strict grammar every name and command must fit before it reaches a sudoers file.
//!
//! Anything outside it is rejected with a message saying what is allowed. The grammar is
//! deliberately narrower than what sudo or NSS accept: nothing here ever needs escaping.

//! The names cross into jitd once, at the edge (the bus, the policy file, the database),
//! as the validated types below; from there on nothing can carry an invalid one, so the
//! sudoers renderer takes only values that cannot be invalid and checks nothing again.

/// A name or command that does not fit the grammar, saying what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NameError(pub String);

macro_rules! validated {
    ($(#[$doc:meta])* $name:ident, $check:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Checks `s` against the grammar: the only way to make one.
            pub fn new(s: impl Into<String>) -> Result<$name, NameError> {
                let s = s.into();
                $check(&s)?;
                Ok($name(s))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<$name, NameError> {
                $name::new(s)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.0
            }
        }

        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }

        /// Unit tests write names as literals.
        #[cfg(test)]
        impl From<&str> for $name {
            fn from(s: &str) -> $name {
                $name::new(s).unwrap_or_else(|e| panic!("{e}"))
            }
        }
    };
}

impl From<String> for NameError {
    fn from(s: String) -> NameError {
        NameError(s)
    }
}

impl From<NameError> for String {
    fn from(e: NameError) -> String {
        e.0
    }
}

validated!(
    /// A user name: `[a-z_][a-z0-9_-]{0,31}` ([`validate_user_name`]).
    UserName,
    validate_user_name
);
validated!(
    /// A group name, with the grammar of user names.
    GroupName,
    validate_group_name
);
validated!(
    /// A role name: `[a-z][a-z0-9_-]{0,31}`.
    RoleName,
    validate_role_name
);
validated!(
    /// A command for a sudoers rule: an absolute, normalised path with literal arguments
    /// ([`validate_command`]).
    Command,
    validate_command
);

impl UserName {
    /// jitd's own name in the audit trail (it fits the grammar).
    pub fn jitd() -> UserName {
        UserName("jitd".to_string())
    }

    /// The superuser, a role's target unless it says otherwise.
    pub fn root() -> UserName {
        UserName("root".to_string())
    }
}

/// Free text (a reason, a comment) as stored and shown: trimmed, not empty, bounded, and
/// free of hidden characters ([`validate_text`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text(String);

/// A reason given for a request, extension, denial or revocation.
pub type Reason = Text;

/// Why free text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("{0} is required")]
    Required(&'static str),
    #[error("{field} is too long (at most {max} characters)")]
    TooLong { field: &'static str, max: usize },
    #[error(
        "{field} contains an invisible, control or formatting character (U+{code:04X}); \
         type it again without it"
    )]
    Hidden { field: &'static str, code: u32 },
    #[error(
        "{0} stacks more than {max} combining marks on one character",
        max = jit_proto::text::MAX_COMBINING_RUN
    )]
    Stacked(&'static str),
}

impl Text {
    /// `field` names the text in messages ("reason", "comment").
    pub fn new(field: &'static str, text: &str, max_chars: usize) -> Result<Text, TextError> {
        let t = text.trim();
        if t.is_empty() {
            return Err(TextError::Required(field));
        }
        if t.chars().count() > max_chars {
            return Err(TextError::TooLong {
                field,
                max: max_chars,
            });
        }
        if let Some(c) = t.chars().find(|c| is_hidden_char(*c)) {
            return Err(TextError::Hidden {
                field,
                code: u32::from(c),
            });
        }
        if jit_proto::text::has_stacked_marks(t) {
            return Err(TextError::Stacked(field));
        }
        Ok(Text(t.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<Text> for String {
    fn from(t: Text) -> String {
        t.0
    }
}

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
pub fn validate_user_name(name: &str) -> Result<(), NameError> {
    let mut chars = name.chars();
    let ok = match chars.next() {
        Some(first) => is_user_start(first) && chars.all(is_user_char),
        None => false,
    };
    if !ok || name.len() > MAX_USER_LEN {
        return Err(format!(
            "invalid user name '{}': expected [a-z_][a-z0-9_-]*, at most {MAX_USER_LEN} characters",
            escape(name)
        )
        .into());
    }
    Ok(())
}

/// Group names follow the same grammar as user names.
pub fn validate_group_name(name: &str) -> Result<(), NameError> {
    validate_user_name(name).map_err(|_| {
        NameError::from(format!(
            "invalid group name '{}': expected [a-z_][a-z0-9_-]*, at most {MAX_USER_LEN} characters",
            escape(name)
        ))
    })
}

/// `[a-z][a-z0-9_-]{0,31}`.
pub fn validate_role_name(name: &str) -> Result<(), NameError> {
    let mut chars = name.chars();
    let ok = match chars.next() {
        Some(first) => first.is_ascii_lowercase() && chars.all(is_user_char),
        None => false,
    };
    if !ok || name.len() > MAX_ROLE_LEN {
        return Err(format!(
            "invalid role name '{}': expected [a-z][a-z0-9_-]*, at most {MAX_ROLE_LEN} characters",
            escape(name)
        )
        .into());
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
pub fn validate_dir_path(field: &str, path: &str) -> Result<(), NameError> {
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
        )
        .into())
    }
}

pub fn validate_command(cmd: &str) -> Result<(), NameError> {
    let bad = |why: &str| {
        Err(NameError(format!(
            "invalid command '{}': {why}; expected an absolute path such as \
             /usr/bin/systemctl optionally followed by literal arguments \
             ([A-Za-z0-9._+/@-], separated by single spaces)",
            escape(cmd)
        )))
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

/// A free-text field (reason, comment) as stored and shown: see [`Text`].
pub fn validate_text(
    field: &'static str,
    text: &str,
    max_chars: usize,
) -> Result<String, TextError> {
    Text::new(field, text, max_chars).map(String::from)
}

/// Characters that could hide, reorder or fake text: see [`jit_proto::text::is_hidden_char`].
pub use jit_proto::text::is_hidden_char;

/// Escapes everything that could disturb a terminal or a log line.
pub use jit_proto::text::{cut, escape};

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
            // Found in the user trial: a reason of Braille blanks looked empty; a reason of
            // stacked combining marks drew over the lines around it.
            "\u{2800}\u{2800}\u{2800}",
            "OPS-1 a\u{300}\u{301}\u{302}\u{303}\u{304}\u{305}",
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
