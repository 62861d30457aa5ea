#!/usr/bin/env bash
# Runs the whole DocAxis test suite, exactly as CI does (.ci/run calls this script).
#
# Installs the Debian tools the tests use as independent witnesses when they are missing:
#   xmlsec1 (XML-DSig interoperability), libxml2-utils (xmllint, XSD validation), openssl (PKI checks),
#   python3-prometheus-client (the reference OpenMetrics parser, for the metrics test),
#   python3-aiosmtpd (a real SMTP server receiving the operators' alert mails),
#   chromium + chromium-driver (a real headless browser driving the operator console),
#   fonts-dejavu-core (Vietnamese glyphs for its screenshots) and postgresql (the hub's shared
#   store: the tests make throwaway clusters with initdb, run by the unprivileged `postgres`
#   user the package creates; no system cluster is used).
# Then: formatting, clippy with warnings as errors, the binaries (the docaxis binary the
# end-to-end tests run, and the fuzz targets, so they never rot), and every test in the
# workspace (one test binary per crate).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v xmlsec1 >/dev/null 2>&1 || need+=(xmlsec1)
command -v xmllint >/dev/null 2>&1 || need+=(libxml2-utils)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
/usr/bin/python3 -c 'import prometheus_client' >/dev/null 2>&1 || need+=(python3-prometheus-client)
/usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1 || need+=(python3-aiosmtpd)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
[ -d /usr/share/fonts/truetype/dejavu ] || need+=(fonts-dejavu-core)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && command -v psql >/dev/null 2>&1 \
  && id postgres >/dev/null 2>&1 || need+=(postgresql)
if ((${#need[@]})); then
  echo "==> installing Debian packages: ${need[*]}"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# A clean build with incremental state takes ~3 GB more disk and gains nothing on a fresh
# clone; a developer who wants it back sets CARGO_INCREMENTAL=1.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
echo "==> disk free where the build goes: $(df -h --output=avail . | tail -1 | tr -d ' ')"

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> cargo build (the docaxis binary and the fuzz targets)"
cargo build --workspace --bins --locked
echo "==> cargo test"
cargo test --workspace --locked
