//! The notifier agent: see [`jitd::notifyd`].
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    jitd::notifyd::main()
}
