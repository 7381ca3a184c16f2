//! SECURITY.md maps each threat to the test that shows the product holds: every test it
//! names must exist, in the file it names, so the map cannot point at nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

#[test]
fn every_test_security_md_names_exists_where_it_says() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let map = std::fs::read_to_string(root.join("SECURITY.md")).unwrap();
    let mut checked = 0;
    // `path/to/file.rs::[module::]test_name`, and `::test_name` continuing the last file.
    let mut file = String::new();
    for cell in map.split('`') {
        let Some((head, rest)) = cell.split_once("::") else {
            continue;
        };
        if head.ends_with(".rs") {
            file = head.to_string();
        } else if !head.is_empty() {
            continue;
        }
        let name = rest.rsplit("::").next().unwrap();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        assert!(!file.is_empty(), "{cell}: no file named before it");
        let text = std::fs::read_to_string(root.join(&file))
            .unwrap_or_else(|e| panic!("SECURITY.md names {file}: {e}"));
        let at = text
            .find(&format!("fn {name}("))
            .unwrap_or_else(|| panic!("SECURITY.md names {file}::{name}, which does not exist"));
        // A test: `#[test]` just above it, or a property in a `proptest!` block.
        let before = &text[..at];
        let attr = before
            .rfind("#[test]")
            .map(|i| before[i..].lines().count() <= 3);
        assert!(
            attr == Some(true) || before.contains("proptest! {"),
            "SECURITY.md names {file}::{name}, which is not a test"
        );
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} tests found in SECURITY.md");
}

#[test]
fn every_fuzz_target_security_md_names_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let map = std::fs::read_to_string(root.join("SECURITY.md")).unwrap();
    for t in [
        "policy",
        "names",
        "durations",
        "sudoers",
        "conversation",
        "wire",
        "dbus_types",
    ] {
        assert!(
            map.contains(&format!("`{t}`")),
            "SECURITY.md does not name fuzz target {t}"
        );
        assert!(
            root.join("fuzz/src").join(format!("{t}.rs")).exists(),
            "fuzz target {t} is gone"
        );
    }
}
