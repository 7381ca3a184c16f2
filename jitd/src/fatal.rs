//! How jitd ends when it cannot go on: saying why, with a status its supervisor reads.

/// Exit status after an internal error (EX_SOFTWARE).
pub const EXIT_INTERNAL: i32 = 70;

/// Ends jitd after an internal failure it cannot recover from (a panic: the state in
/// memory is then unknown), saying why. Exiting, not limping on: a jitd alive but unable
/// to expire grants is worse than none, and the service manager (or the next bus call)
/// starts a new one, which reconciles the rules with the database before it serves.
pub fn fatal(why: &str) -> ! {
    tracing::error!(
        "{why}; exiting (status {EXIT_INTERNAL}) so that jitd is restarted and reconciles"
    );
    std::process::exit(EXIT_INTERNAL)
}
