//! Every committed corpus file of every target, through its target, and every input of an
//! earlier finding (`fuzz/regressions/TARGET/`): what a fuzzing run once found (a crash, or
//! an input that reached new code) stays a regression test. The sudoers
//! target's renderings are checked by the real visudo and cvtsudoers here.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// The target's corpus (which a fuzzing run merges and minimises) and its regressions (the
/// inputs of earlier findings, which no merge touches).
fn corpus(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = files_in(&root.join("corpus").join(target));
    assert!(
        files.len() >= 10,
        "{target}: {} corpus files; the committed corpus is missing",
        files.len()
    );
    let regressions = root.join("regressions").join(target);
    if regressions.exists() {
        files.extend(files_in(&regressions));
    }
    files
}

fn replay(target: &str) {
    let run = jit_fuzz::target(target).unwrap();
    let files = corpus(target);
    for f in &files {
        let data = std::fs::read(f).unwrap();
        if std::env::var_os("JIT_FUZZ_REPLAY_VERBOSE").is_some() {
            eprintln!("replaying {}", f.display());
        }
        if std::panic::catch_unwind(|| run(&data)).is_err() {
            panic!("{target}: {} fails", f.display());
        }
    }
}

#[test]
fn policy_corpus_holds() {
    replay("policy");
}

#[test]
fn names_corpus_holds() {
    replay("names");
}

#[test]
fn durations_corpus_holds() {
    replay("durations");
}

#[test]
fn conversation_corpus_holds() {
    replay("conversation");
}

#[test]
fn wire_corpus_holds() {
    replay("wire");
}

#[test]
fn dbus_types_corpus_holds() {
    replay("dbus_types");
}

#[test]
fn sudoers_corpus_holds_as_visudo_and_cvtsudoers_read_it() {
    let files = corpus("sudoers");
    for f in &files {
        let data = std::fs::read(f).unwrap();
        if std::panic::catch_unwind(|| jit_fuzz::sudoers::fuzz_with(&data, true)).is_err() {
            panic!("sudoers: {} fails", f.display());
        }
    }
}

#[test]
fn every_target_has_a_replay() {
    let names: Vec<&str> = jit_fuzz::TARGETS.iter().map(|(n, _)| *n).collect();
    let here = include_str!("replay.rs");
    for n in names {
        assert!(
            here.contains(&format!("\"{n}\"")),
            "target {n} is not replayed"
        );
    }
}
