#!/usr/bin/env bash
# Installs promtool (for `make test`'s alert-rule checks) when it is missing: only the promtool
# binary from Debian's `prometheus` package (apt-get download + dpkg-deb, ~19 MB, a few seconds),
# not the whole package, which would add a server, a system user and web assets.
# Needs root for /usr/local/bin (or set PROMTOOL_DIR to a directory on PATH you can write).
set -euo pipefail
command -v promtool >/dev/null && exit 0
target="${PROMTOOL_DIR:-/usr/local/bin}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get download prometheus >/dev/null 2>&1 || { apt-get update -qq && apt-get download prometheus >/dev/null; }
dpkg-deb --fsys-tarfile prometheus_*.deb | tar -x ./usr/bin/promtool
install -m 0755 usr/bin/promtool "$target/promtool"
"$target/promtool" --version | head -1
