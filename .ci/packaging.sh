#!/usr/bin/env bash
# CI: build the .deb and .rpm, install the .deb on this machine, run it as
# its systemd unit would, purge it, and check the .rpm (tests/packaging/).
# For a fresh Debian 12 machine with Rust installed, run as root (the test
# installs a package system-wide and purges it again, even when it fails).
# .ci/run calls it after its own apt-get installs. Exits non-zero if
# anything fails.
set -euo pipefail

cd "$(dirname "$0")/.."

# Pinned, and built with their own Cargo.lock (--locked), so that a new
# release cannot break CI; both build with Rust 1.85 or later.
CARGO_DEB_VERSION=3.8.0
CARGO_GENERATE_RPM_VERSION=0.18.0

if [ "$(id -u)" -ne 0 ]; then
    echo "packaging.sh: must run as root (the test installs and purges a .deb)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

t0=$SECONDS
stamp() {
    echo "--- [$((SECONDS - t0))s] $*"
}

stamp "installing rpm, strace, binutils, groff-base, man-db"
# rpm: rpm -qp for the .rpm checks. strace: the unit's SystemCallFilter is
# checked against the calls the server makes. binutils: strip, readelf.
# groff-base, man-db: the man page is rendered and found by man.
apt-get update
apt-get install -y --no-install-recommends \
    rpm strace binutils groff-base man-db < /dev/null
if command -v systemd-analyze > /dev/null; then
    systemd-analyze --version | sed -n 1p
else
    echo "NOTE: systemd-analyze is not installed: the unit will not be verified"
fi

stamp "cargo install cargo-deb $CARGO_DEB_VERSION"
start=$SECONDS
cargo install --locked cargo-deb --version "$CARGO_DEB_VERSION"
echo "cargo-deb installed in $((SECONDS - start))s"

stamp "cargo install cargo-generate-rpm $CARGO_GENERATE_RPM_VERSION"
start=$SECONDS
cargo install --locked cargo-generate-rpm --version "$CARGO_GENERATE_RPM_VERSION"
echo "cargo-generate-rpm installed in $((SECONDS - start))s"

stamp "versions"
cargo deb --version
cargo generate-rpm --version
rpm --version
dpkg --version | sed -n 1p  # sed, not head: under pipefail head's early exit is SIGPIPE (141)

stamp "cargo test --release --locked --test packaging"
start=$SECONDS
FERROCACHE_PACKAGING_TESTS=1 cargo test --release --locked --test packaging
echo "packaging tests took $((SECONDS - start))s"

stamp "done"
