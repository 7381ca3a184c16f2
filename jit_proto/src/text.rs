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
            | 0xE0000..=0xE0FFF
            // Blank-looking characters that are neither: the Braille pattern blank.
            | 0x2800)
}

/// Most combining marks a character may carry in a row: enough for any language's
/// diacritics, too few to pile marks over neighbouring lines of a terminal.
pub const MAX_COMBINING_RUN: usize = 4;

/// Combining marks from the blocks used to stack them (Combining Diacritical Marks and
/// their Extended, Supplement, for Symbols and Half Marks blocks).
pub fn is_combining_mark(c: char) -> bool {
    matches!(u32::from(c),
        0x0300..=0x036F | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0xFE20..=0xFE2F)
}

/// Whether `s` stacks more than [`MAX_COMBINING_RUN`] combining marks on one character.
pub fn has_stacked_marks(s: &str) -> bool {
    let mut run = 0;
    for c in s.chars() {
        run = if is_combining_mark(c) { run + 1 } else { 0 };
        if run > MAX_COMBINING_RUN {
            return true;
        }
    }
    false
}

/// At most `max` characters of `s`, with `...` after them when there were more: one bound
/// for every piece of text shown in a line (a message, a quoted reason, an error).
pub fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}...", &s[..at]),
        None => s.to_string(),
    }
}

/// The text with every hidden character written as `\u{..}`, and a backslash doubled (so a
/// typed `\u{1b}` shows as `\\u{1b}` and the escaping cannot be faked, while `C:\temp` stays
/// readable): always one visible line.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if is_hidden_char(c) {
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
    fn given_text_longer_than_the_bound_when_cut_then_cut_on_a_character_with_dots() {
        assert_eq!(cut("abc", 3), "abc");
        assert_eq!(cut("abcd", 3), "abc...");
        assert_eq!(cut("äöüß", 2), "äö...");
        assert_eq!(cut("", 0), "");
        assert_eq!(cut("x", 0), "...");
    }

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
    fn given_stacked_combining_marks_then_detected_but_ordinary_diacritics_pass() {
        assert!(!has_stacked_marks("café naïve Ả ặ"));
        assert!(!has_stacked_marks("e\u{301}\u{302}\u{303}\u{304}"));
        assert!(has_stacked_marks(&format!("x{}", "\u{300}".repeat(5))));
        assert!(is_hidden_char('\u{2800}'));
    }

    #[test]
    fn escape_leaves_one_visible_line() {
        assert_eq!(escape("a\u{2028}b"), "a\\u{2028}b");
        assert_eq!(escape("t\u{E0041}g"), "t\\u{e0041}g");
        assert_eq!(escape("a\\u{41}"), "a\\\\u{41}");
        assert_eq!(escape("C:\\temp"), "C:\\\\temp");
        assert_eq!(escape("\u{1b}[2J"), "\\u{1b}[2J");
    }
}
