#!/usr/bin/env bash
# The main job on its embedded default: a hub and three agency nodes on loopback, a document
# sent from Văn phòng Chính phủ to two provinces and tracked until both answered.
# Needs nothing but Rust. Extra arguments go to `docaxis demo` (try --keep-running, --help).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet -p docaxis --bin docaxis
exec ./target/debug/docaxis demo "$@"
