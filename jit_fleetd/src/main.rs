fn main() -> std::process::ExitCode {
    jit_fleetd::main()
}
