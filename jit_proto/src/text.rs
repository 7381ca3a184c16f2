//! Free text that crosses a trust boundary (reasons, comments, names from PAM items): what
//! may not be in it, and how it is shown safely. jitd refuses hidden characters on input;
//! jitd, jitctl and pam_jit escape on every output path, so text stored before a rule was
//! tightened still cannot disturb a terminal or a log line.

/// Characters that could hide, reorder or fake text on a terminal or in a log line:
/// controls (Cc), format characters (Cf: bidi controls, zero-width characters, the soft
/// hyphen, tag characters, interlinear annotations...), the line and paragraph separators
/// (Zl, Zp), and every other default-ignorable code point (variation selectors, Hangul
/// fillers, Mongolian free variation selectors, reserved ignorables), as the Unicode
/// Character Database (15.1: `DerivedGeneralCategory.txt`, `DerivedCoreProperties.txt`)
/// lists them.
pub fn is_hidden_char(c: char) -> bool {
    c.is_control()
        || matches!(u32::from(c),
            // Cf
            0x00AD
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
            // Zl, Zp
            | 0x2028..=0x2029
            // Default_Ignorable_Code_Point beyond Cf
            | 0x034F
            | 0x115F..=0x1160
            | 0x17B4..=0x17B5
            | 0x180B..=0x180F
            | 0x2065
            | 0x3164
            | 0xFE00..=0xFE0F
            | 0xFFA0
            | 0xFFF0..=0xFFF8
            | 0xE0000..=0xE0FFF)
}

/// The text with every hidden character (and the backslash, so the escaping cannot be
/// faked) written as `\u{..}`: always one visible line.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if is_hidden_char(c) || c == '\\' {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_invisible_characters_seen_in_the_wild_then_each_is_hidden() {
        for c in [
            '\u{2028}',
            '\u{2029}',
            '\u{E0001}',
            '\u{E0041}',
            '\u{E007F}',
            '\u{00AD}',
            '\u{FFF9}',
            '\u{FFFA}',
            '\u{FFFB}',
            '\u{180E}',
            '\u{206A}',
            '\u{200B}',
            '\u{200D}',
            '\u{202E}',
            '\u{2066}',
            '\u{FEFF}',
            '\u{FE0F}',
            '\u{E0100}',
            '\u{3164}',
            '\u{115F}',
            '\u{1B}',
            '\n',
            '\r',
            '\u{7F}',
            '\u{85}',
        ] {
            assert!(is_hidden_char(c), "U+{:04X}", u32::from(c));
        }
    }

    #[test]
    fn given_ordinary_text_then_nothing_is_hidden() {
        for s in [
            "OPS-4411 nginx wedged",
            "café über straße",
            "日本語のテキスト",
            "x – y",
            "☃",
        ] {
            assert!(!s.chars().any(is_hidden_char), "{s}");
            assert_eq!(escape(s), s);
        }
    }

    #[test]
    fn escape_leaves_one_visible_line() {
        assert_eq!(escape("a\u{2028}b"), "a\\u{2028}b");
        assert_eq!(escape("t\u{E0041}g"), "t\\u{e0041}g");
        assert_eq!(escape("a\\u{41}"), "a\\u{5c}u{41}");
        assert_eq!(escape("\u{1b}[2J"), "\\u{1b}[2J");
    }
}
