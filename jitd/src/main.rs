#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    jitd::daemon::main()
}
