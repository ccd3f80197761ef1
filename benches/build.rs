//! Records the compiler's version and the versions of the compared crates (from the workspace's
//! Cargo.lock) so the report states them without hard-coding anything.

use std::{env, fs, path::Path, process::Command};

fn main() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=BENCH_RUSTC_VERSION={version}");

    let manifest = env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    // The commit the runtime was built from, and whether its sources differ from it.
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(&manifest)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_owned())
    };
    let commit = git(&["rev-parse", "--short=10", "HEAD"]).unwrap_or_else(|| "unknown".to_owned());
    let dirty = git(&[
        "status",
        "--porcelain",
        "--",
        "../cached-runtime",
        "../cached-macros",
    ])
    .is_some_and(|s| !s.is_empty());
    println!(
        "cargo:rustc-env=BENCH_GIT_COMMIT={commit}{}",
        if dirty {
            " + uncommitted runtime changes"
        } else {
            ""
        }
    );
    for path in [
        "../.git/HEAD",
        "../.git/index",
        "../cached-runtime/src",
        "../cached-macros/src",
    ] {
        println!("cargo:rerun-if-changed={path}");
    }
    let lock_path = Path::new(&manifest).join("../Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock_path.display());
    println!("cargo:rerun-if-changed=build.rs");
    let lock = fs::read_to_string(&lock_path).unwrap_or_default();
    for (krate, var) in [
        ("cached-runtime", "BENCH_V_CACHED_RUNTIME"),
        ("cached", "BENCH_V_CACHED"),
        ("redis", "BENCH_V_REDIS"),
        ("tokio", "BENCH_V_TOKIO"),
        ("bincode", "BENCH_V_BINCODE"),
        ("rmp-serde", "BENCH_V_RMP_SERDE"),
    ] {
        println!("cargo:rustc-env={var}={}", versions(&lock, krate));
    }
}

/// Every version of `krate` in the lock file, joined by ", ".
fn versions(lock: &str, krate: &str) -> String {
    let mut found = Vec::new();
    for block in lock.split("[[package]]") {
        let mut name = None;
        let mut version = None;
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("name = ") {
                name = Some(v.trim_matches('"'));
            } else if let Some(v) = line.strip_prefix("version = ") {
                version = Some(v.trim_matches('"'));
            }
        }
        if name == Some(krate)
            && let Some(v) = version
        {
            found.push(v.to_owned());
        }
    }
    if found.is_empty() {
        "unknown".to_owned()
    } else {
        found.join(", ")
    }
}
