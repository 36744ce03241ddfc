#!/usr/bin/env bash
# Builds ferrocache's packages into target/packaging/:
#   ferrocache_<version>-1_<arch>.deb   (cargo-deb)
#   ferrocache-<version>-1.<arch>.rpm   (cargo-generate-rpm)
# Usage: packaging/build-packages.sh [deb|rpm|all]   (default: all)
# Needs: cargo-deb and/or cargo-generate-rpm (cargo install --locked ...),
# strip and gzip. Runs from any directory.
set -euo pipefail

what="${1:-all}"
case "$what" in
deb | rpm | all) ;;
*)
    echo "usage: $0 [deb|rpm|all]" >&2
    exit 2
    ;;
esac

cd "$(dirname "$0")/.."
# Cargo.toml's package metadata names files under target/packaging/, so the
# staging directory stays there even when CARGO_TARGET_DIR points elsewhere.
stage=target/packaging
release="${CARGO_TARGET_DIR:-target}/release"
mkdir -p "$stage"

echo "--- building the release binary and the man page"
cargo build --release --locked
# ferrocache(1) from the clap definition (packaging/man/manpage.rs).
cargo run --release --locked --quiet --example manpage -- "$stage/ferrocache.1"

if [ "$what" != rpm ]; then
    echo "--- cargo deb"
    # cargo-deb strips (the release profile keeps line tables for
    # backtraces) and gzips the man page itself.
    cargo deb --no-build --locked --strip --output "$stage/"
fi

if [ "$what" != deb ]; then
    echo "--- cargo generate-rpm"
    # cargo-generate-rpm packs files as they are.
    cp "$release/ferrocache" "$stage/ferrocache"
    strip "$stage/ferrocache"
    gzip -9 --no-name --force --keep "$stage/ferrocache.1"
    cargo generate-rpm --output "$stage/"
fi

echo "--- packages"
ls -l "$stage"/*.deb "$stage"/*.rpm 2>/dev/null || true
