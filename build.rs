//! Records the git revision the binary is built from (result.json's `git_revision`).
use std::process::Command;

fn main() {
    let rev = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .is_some_and(|o| !o.stdout.is_empty());
    let rev = if dirty && rev != "unknown" {
        format!("{rev}-modified")
    } else {
        rev
    };
    println!("cargo:rustc-env=DICKE_GIT_REVISION={rev}");
    // Rebuild when HEAD moves or the index changes (commits, checkouts).
    for p in [".git/HEAD", ".git/index"] {
        println!("cargo:rerun-if-changed={p}");
    }
}
