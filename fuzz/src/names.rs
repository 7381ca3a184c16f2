//! Names and free text: the grammar every name and command must fit before it reaches a
//! sudoers file, and the escaping that makes hostile text safe to show.

use jit_proto::text::{escape, is_hidden_char};
use jitd::names::{
    Command, GroupName, RoleName, Text, UserName, validate_command, validate_dir_path,
};

/// What a sudoers file treats specially anywhere in a name: an accepted name or command
/// never holds one (so nothing needs escaping when it is written into a rule).
fn sudoers_special(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || !c.is_ascii()
        || matches!(
            c,
            ',' | ':'
                | '='
                | '\\'
                | '!'
                | '#'
                | '"'
                | '\''
                | '('
                | ')'
                | '*'
                | '?'
                | '['
                | ']'
                | '%'
                | '$'
                | '~'
                | '{'
                | '}'
                | '<'
                | '>'
                | '|'
                | '&'
                | ';'
                | '`'
        )
}

pub fn fuzz(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    for (accepted, what) in [
        (UserName::new(s).is_ok(), "user name"),
        (GroupName::new(s).is_ok(), "group name"),
        (RoleName::new(s).is_ok(), "role name"),
    ] {
        if accepted {
            assert!(
                !s.is_empty() && s.len() <= 32 && !s.starts_with('-'),
                "{what} {s:?}"
            );
            assert!(
                s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'),
                "{what} {s:?} has a character outside the grammar"
            );
        }
    }
    if validate_command(s).is_ok() {
        let cmd = Command::new(s).unwrap();
        assert!(cmd.starts_with('/') && !cmd.contains("  ") && !cmd.ends_with(' '));
        // A single space separates words; nothing else is special.
        assert!(
            !s.chars().any(|c| c != ' ' && sudoers_special(c)),
            "command {s:?} holds a sudoers special"
        );
        let path = s.split(' ').next().unwrap();
        assert!(!path.ends_with('/') && !path.split('/').any(|c| c == "." || c == ".."));
        assert_ne!(path.rsplit('/').next(), Some("sudoedit"));
    }
    if validate_dir_path("iolog_dir", s).is_ok() {
        assert!(s.starts_with('/') && !s.contains("//") && !s.contains("/../"));
        assert!(!s.chars().any(sudoers_special), "directory {s:?}");
    }
    // Free text: whatever is accepted shows as it is (trimmed), with nothing hidden.
    if let Ok(t) = Text::new("reason", s, 500) {
        let t = t.as_str();
        assert_eq!(t, s.trim());
        assert!(!t.is_empty() && t.chars().count() <= 500);
        assert!(
            !t.chars().any(is_hidden_char),
            "text {t:?} hides characters"
        );
    }
    // Escaping: the result shows no control or hidden character, whatever came in, and text
    // with none to escape comes back as it was.
    let shown = escape(s);
    assert!(
        !shown.chars().any(|c| c.is_control() || is_hidden_char(c)),
        "escape({s:?}) = {shown:?}"
    );
    if !s
        .chars()
        .any(|c| c.is_control() || is_hidden_char(c) || c == '\\')
    {
        assert_eq!(shown, s, "escape changed plain text");
    }
    let _ = jit_proto::text::has_stacked_marks(s);
}
