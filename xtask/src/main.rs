//! `xtask dist OUT`: man pages and shell completions, generated from the same clap
//! definitions that `--help` prints, plus the hand-written pages in `man/`:
//!
//! ```text
//! OUT/man/man1/jitctl.1, jitctl-<command>.1 ...   from jitctl's Cli
//! OUT/man/man8/jitd.8                            from jitd's Args
//! OUT/man/man8/pam_jit.8, OUT/man/man5/jit.toml.5   copied from man/
//! OUT/completions/bash/jitctl, OUT/completions/zsh/_jitctl
//! ```
//!
//! install.sh and the Debian package install what this writes.
#![forbid(unsafe_code)]

use clap::CommandFactory;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [cmd, out] if cmd == "dist" => dist(Path::new(out)),
        _ => Err("usage: xtask dist OUT_DIR".to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn io(what: &Path) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{}: {e}", what.display())
}

fn dist(out: &Path) -> Result<(), String> {
    let man = out.join("man");
    for sec in ["man1", "man5", "man8"] {
        std::fs::create_dir_all(man.join(sec)).map_err(io(&man))?;
    }
    // jitctl(1) and one page per command (jitctl-request(1), ...), as git does.
    let jitctl = jitctl::Cli::command();
    clap_mangen::generate_to(jitctl.clone(), man.join("man1")).map_err(io(&man))?;

    // jitd(8): a system daemon.
    let jitd = jitd::daemon::Args::command();
    let page = man.join("man8/jitd.8");
    let mut buf = Vec::new();
    clap_mangen::Man::new(jitd)
        .section("8")
        .render(&mut buf)
        .map_err(io(&page))?;
    std::fs::write(&page, buf).map_err(io(&page))?;

    // The module and the policy file have no command line: hand-written.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../man");
    for (name, sec) in [("pam_jit.8", "man8"), ("jit.toml.5", "man5")] {
        let from = src.join(name);
        std::fs::copy(&from, man.join(sec).join(name)).map_err(io(&from))?;
    }

    let comp = out.join("completions");
    for (shell, dir, file) in [
        (clap_complete::Shell::Bash, "bash", "jitctl"),
        (clap_complete::Shell::Zsh, "zsh", "_jitctl"),
    ] {
        let d: PathBuf = comp.join(dir);
        std::fs::create_dir_all(&d).map_err(io(&d))?;
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut jitctl.clone(), "jitctl", &mut buf);
        std::fs::write(d.join(file), buf).map_err(io(&d))?;
    }
    println!("xtask: man pages and completions in {}", out.display());
    Ok(())
}
