#!/usr/bin/env bash
# Builds the four Lambda functions for arm64 with cargo-lambda (profile `bundle`: size and
# cold start first) into target/lambda/{ingest,api,evaluate,dispatch}/bootstrap, and prints
# each bootstrap's size. cargo-lambda and its Zig toolchain come from PyPI into .venv.
#
# `--x86-64` builds for x86_64 instead. When the aarch64 standard library cannot be
# installed on this machine (`rustup target add` needs the Rust distribution server), the
# build says so and falls back to x86_64, so the bundle is still built and checked.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/cargo-lambda ]; then
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check 'cargo-lambda>=1.9,<2'
fi
# cargo-zigbuild runs zig from build scripts in other directories: the PATH must be absolute.
export PATH="$PWD/.venv/bin:$PATH"

arch=--arm64
if [ "${1:-}" = "--x86-64" ]; then
    arch=--x86-64
elif ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu &&
    ! rustup target add aarch64-unknown-linux-gnu; then
    echo "WARNING: the aarch64-unknown-linux-gnu standard library could not be installed;" >&2
    echo "WARNING: building the bundle for x86_64 instead (deploy needs the arm64 build)." >&2
    arch=--x86-64
fi

cargo lambda build --profile bundle "$arch" --locked \
    -p automations-ingest -p automations-api -p automations-evaluate -p automations-dispatch

for f in ingest api evaluate dispatch; do
    awk -v f="$f" -v a="$arch" -v b="$(stat -c %s "target/lambda/$f/bootstrap")" \
        'BEGIN { printf "bootstrap %-9s %s %5.1f MB\n", f, a, b / 1e6 }'
done
