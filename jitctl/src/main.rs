#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    jitctl::main()
}
