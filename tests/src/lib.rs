//! Helpers for end-to-end tests that run the real `docaxis` binary.
//!
//! The binary is the one cargo built for this workspace (`target/<profile>/docaxis`), found
//! next to the test executable. `scripts/test.sh` builds it before running the tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Path of the built `docaxis` binary.
pub fn docaxis_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/docaxis
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps");
    let bin = profile_dir.join(format!("docaxis{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} does not exist: build it first with `cargo build -p docaxis --bin docaxis` (scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the repository")
        .to_path_buf()
}

/// A `docaxis` command ready to run.
pub fn docaxis() -> Command {
    let mut c = Command::new(docaxis_bin());
    c.env("DOCAXIS_LOG", "warn");
    c
}

/// Runs `docaxis ARGS…` and returns its output.
pub fn run(args: &[&str]) -> Output {
    docaxis().args(args).output().expect("docaxis runs")
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
