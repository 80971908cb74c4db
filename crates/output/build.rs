//! Build metadata for `tripline_build_info`: the git revision
//! (`TRIPLINE_REVISION` if set, e.g. by the Dockerfile, else `git rev-parse`,
//! else "unknown", so a clean export without `.git` still builds), the rustc
//! version and the target triple.

use std::path::Path;
use std::process::Command;

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!s.is_empty()).then_some(s)
}

/// Label values must stay short and printable.
fn clean(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(64)
        .collect()
}

fn main() {
    println!("cargo:rerun-if-env-changed=TRIPLINE_REVISION");
    let git = Path::new("../../.git");
    if git.join("HEAD").exists() {
        println!("cargo:rerun-if-changed=../../.git/HEAD");
        if let Some(r) = output("git", &["symbolic-ref", "-q", "HEAD"]) {
            let refp = git.join(&r);
            if refp.exists() {
                println!("cargo:rerun-if-changed=../../.git/{r}");
            }
        }
    }
    let revision = std::env::var("TRIPLINE_REVISION")
        .ok()
        .filter(|s| !s.trim().is_empty() && s != "unknown")
        .or_else(|| output("git", &["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let rustc_version = output(&rustc, &["--version"])
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned());
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_owned());
    println!(
        "cargo:rustc-env=TRIPLINE_BUILD_REVISION={}",
        clean(&revision)
    );
    println!(
        "cargo:rustc-env=TRIPLINE_BUILD_RUSTC={}",
        clean(&rustc_version)
    );
    println!("cargo:rustc-env=TRIPLINE_BUILD_TARGET={}", clean(&target));
}
