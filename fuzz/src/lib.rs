//! The fuzz targets: one function per parser of untrusted or semi-trusted input. Each takes
//! the fuzzer's bytes, feeds them to the real parser and asserts what must hold for every
//! input (a violation panics, which is what a fuzzer reports). The same functions run in two
//! places:
//!
//! - under libFuzzer, coverage-guided (`fuzz/run TARGET MINUTES`, the `fuzz/libfuzzer`
//!   crate), growing `fuzz/corpus/TARGET/`;
//! - in `cargo test` (`tests/replay.rs`), over every committed corpus file, so whatever a run
//!   once found stays found.
//!
//! Where an oracle is a real program (visudo and cvtsudoers for the sudoers renderer), it
//! runs in the replay always and under the fuzzer when `JIT_FUZZ_SUDO=1`.

#![forbid(unsafe_code)]
// A fuzz target reports a broken property by panicking: that is its whole job.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

pub mod conversation;
pub mod dbus_types;
pub mod durations;
pub mod names;
pub mod policy;
pub mod sudoers;
pub mod wire;

/// A fuzz target: the fuzzer's bytes in, a panic when a property breaks.
pub type Target = fn(&[u8]);

/// Every target by the name of its corpus directory.
pub const TARGETS: &[(&str, Target)] = &[
    ("policy", policy::fuzz),
    ("names", names::fuzz),
    ("durations", durations::fuzz),
    ("sudoers", sudoers::fuzz),
    ("conversation", conversation::fuzz),
    ("wire", wire::fuzz),
    ("dbus_types", dbus_types::fuzz),
];

/// The target named `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}
