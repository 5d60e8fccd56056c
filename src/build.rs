//! Build script: what `ringws --version` says besides the version. `RINGWS_COMMIT`: the
//! commit (`git rev-parse --short=12 HEAD`, or the variable when packagers set it, else
//! `unknown`); `RINGWS_TARGET`: the target triple.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}

fn main() {
    println!("cargo:rerun-if-env-changed=RINGWS_COMMIT");
    let commit = std::env::var("RINGWS_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    // A new commit reruns this: HEAD, the branch it names, and the packed refs.
    for path in ["HEAD", "packed-refs"] {
        if let Some(p) = git(&["rev-parse", "--git-path", path]) {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    if let Some(p) = git(&["symbolic-ref", "-q", "HEAD"])
        .and_then(|branch| git(&["rev-parse", "--git-path", &branch]))
    {
        println!("cargo:rerun-if-changed={p}");
    }
    println!("cargo:rustc-env=RINGWS_COMMIT={commit}");
    println!(
        "cargo:rustc-env=RINGWS_TARGET={}",
        std::env::var("TARGET").unwrap_or_default()
    );
}
