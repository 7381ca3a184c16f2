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
        if shell == clap_complete::Shell::Bash {
            buf.extend_from_slice(BASH_DYNAMIC.as_bytes());
        }
        std::fs::write(d.join(file), buf).map_err(io(&d))?;
    }
    println!("xtask: man pages and completions in {}", out.display());
    Ok(())
}

/// Role names and request ids, asked of jitd as the user types (`jitctl complete roles|ids`),
/// after clap's completion of commands and options.
const BASH_DYNAMIC: &str = r#"
# Role names after `request`, request ids after the commands that take one: asked of jitd.
_jitctl_dynamic() {
    local cur="${COMP_WORDS[COMP_CWORD]}" sub="" i positional=0
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${COMP_WORDS[i]}" in
            --bus|--for|--reason|--by|--timeout|--comment|--since|--user) ((i++)) ;;
            -*) ;;
            *) if [[ -z "$sub" ]]; then sub="${COMP_WORDS[i]}"; else ((positional++)); fi ;;
        esac
    done
    if [[ "$cur" != -* && $positional -eq 0 ]]; then
        case "$sub" in
            request)
                COMPREPLY=($(compgen -W "$(jitctl complete roles 2>/dev/null)" -- "$cur"))
                return 0 ;;
            show|approve|deny|revoke|release|cancel|extend|wait)
                COMPREPLY=($(compgen -W "$(jitctl complete ids 2>/dev/null)" -- "$cur"))
                return 0 ;;
        esac
    fi
    _jitctl "$@"
}
complete -F _jitctl_dynamic -o nosort -o bashdefault -o default jitctl
"#;
