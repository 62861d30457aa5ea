//! README's "Running a hub and nodes yourself", run as written (issue 11.9): the block is
//! taken from README.md, run by bash in a copy of `examples/` and `certs/`, with `docaxis`
//! standing for the built binary. Foreground commands are retried for a while until they
//! succeed, as a person would wait for a server to start or a document to arrive; a command
//! that never succeeds fails the test with its output.

use std::process::Command;

use docaxis_e2e::*;

/// The first ```sh block after `heading` in README.md.
fn block_after(readme: &str, heading: &str) -> String {
    let section = &readme[readme.find(heading).expect("the README section exists")..];
    let start = section.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let end = start + section[start..].find("```").expect("the block ends");
    section[start..end].to_string()
}

/// Makes `docaxis` the built binary: servers (`hub`/`node` without a subcommand) run in place
/// of the background subshell; other commands are retried for up to 30 s.
const PRELUDE: &str = r#"set -euo pipefail
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
docaxis() {
  if [[ ( "$1" == hub || "$1" == node ) && $# -eq 3 ]]; then exec "$DOCAXIS_BIN" "$@"; fi
  local i
  for i in $(seq 1 60); do
    if "$DOCAXIS_BIN" "$@" >.readme-step 2>&1; then cat .readme-step; return 0; fi
    sleep 0.5
  done
  echo "FAILED: docaxis $*" >&2
  cat .readme-step >&2
  return 1
}
"#;

#[test]
fn running_a_hub_and_nodes_yourself_works_as_written() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let block = block_after(&readme, "## Running a hub and nodes yourself");
    let steps: String = block
        .lines()
        .filter(|l| !l.starts_with("cargo build"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(steps.contains("docaxis send"), "{steps}");

    let tmp = tempfile::tempdir().unwrap();
    for dir in ["examples", "certs"] {
        let ok = Command::new("cp")
            .args(["-r", s(&repo_root().join(dir)), s(tmp.path())])
            .status()
            .unwrap()
            .success();
        assert!(ok, "copy {dir}");
    }
    let script = tmp.path().join("readme.sh");
    std::fs::write(&script, format!("{PRELUDE}{steps}echo README-DONE\n")).unwrap();
    let out = Command::new("bash")
        .arg(&script)
        .current_dir(tmp.path())
        .env("DOCAXIS_BIN", docaxis_bin())
        .output()
        .unwrap();
    let (o, e) = (stdout(&out), stderr(&out));
    assert!(
        out.status.success() && o.contains("README-DONE"),
        "{o}\n{e}"
    );
    assert!(o.contains("queued   document 000.00.00.G22,"), "{o}");
    assert!(!e.contains("FAILED"), "{e}");
}
