//! Links the unwinder (libgcc_eh) into pam_jit.so statically, so the module does not pull
//! `libgcc_s.so.1` into sudo, which does not otherwise load it: loading it costs about
//! 0.15 ms in every sudo (bench/RESULTS.md, "A cheap module"), half of what a Rust module
//! costs there. Panics still unwind (and are caught before they reach PAM): the static copy
//! serves pam_jit's own frames, as `-static-libgcc` does for C++ libraries. The symbols stay
//! private (a cdylib exports only the PAM entry points). Where the compiler has no
//! libgcc_eh.a, the module links libgcc_s as before and the build says so.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let found = std::process::Command::new(&cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| std::path::PathBuf::from(s.trim()))
        .filter(|p| p.is_absolute() && p.exists());
    match found.as_deref().and_then(std::path::Path::parent) {
        Some(dir) => {
            println!("cargo:rustc-link-search=native={}", dir.display());
            println!("cargo:rustc-link-lib=static=gcc_eh");
        }
        None => println!(
            "cargo:warning=libgcc_eh.a not found ({cc} -print-file-name): pam_jit.so links \
             libgcc_s.so.1, which costs every sudo about 0.15 ms more"
        ),
    }
}
