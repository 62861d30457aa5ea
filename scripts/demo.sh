#!/usr/bin/env bash
# The main job on its embedded default. Needs nothing but Rust: builds docaxis and runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet -p docaxis --bin docaxis
bin=./target/debug/docaxis
echo "==> docaxis edxml check: the example packets and real packets from the field"
"$bin" edxml check examples/packets/*.edxml examples/conformance/*.edxml
echo "==> docaxis verify: signed examples against the development CA (certs/)"
"$bin" verify --trust certs/ca.pem --crl certs/crl.pem examples/packets/*.signed.edxml
