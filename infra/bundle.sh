#!/usr/bin/env bash
# Builds the four Lambda functions with cargo-lambda (profile `bundle`: size and cold start
# first) into target/lambda/{ingest,api,evaluate,dispatch}/bootstrap, prints each size, and
# writes the architecture to target/lambda/architecture. cargo-lambda and its Zig
# toolchain come from PyPI into .venv.
#
#   bash infra/bundle.sh            # arm64, as the template deploys by default
#   bash infra/bundle.sh --x86-64   # x86_64: deploy with Architecture=x86_64
#
# The architecture is always the one asked for: when its standard library cannot be
# installed, the build fails rather than produce a bundle the stack would not run.
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:---arm64}" in
    --arm64) flag=--arm64 target=aarch64-unknown-linux-gnu architecture=arm64 ;;
    --x86-64) flag=--x86-64 target=x86_64-unknown-linux-gnu architecture=x86_64 ;;
    *) echo "usage: bash infra/bundle.sh [--arm64 | --x86-64]" >&2; exit 2 ;;
esac

if [ ! -x .venv/bin/cargo-lambda ]; then
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check 'cargo-lambda>=1.9,<2'
fi
# cargo-zigbuild runs zig from build scripts in other directories: the PATH must be absolute.
export PATH="$PWD/.venv/bin:$PATH"

if ! rustup target list --installed | grep -qx "$target" && ! rustup target add "$target"; then
    echo "error: the $target standard library could not be installed (rustup target add" >&2
    echo "error: needs the Rust distribution server), so no $architecture bundle can be built." >&2
    echo "error: Build for the other architecture explicitly, and deploy it as such:" >&2
    echo "error:   bash infra/bundle.sh --x86-64 && (cd infra && sam deploy --parameter-overrides Architecture=x86_64)" >&2
    exit 1
fi

cargo lambda build --profile bundle "$flag" --locked \
    -p automations-ingest -p automations-api -p automations-evaluate -p automations-dispatch
echo "$architecture" > target/lambda/architecture

for f in ingest api evaluate dispatch; do
    awk -v f="$f" -v a="$architecture" -v b="$(stat -c %s "target/lambda/$f/bootstrap")" \
        'BEGIN { printf "bootstrap %-9s %s %5.1f MB\n", f, a, b / 1e6 }'
done
echo "deploy this bundle with: (cd infra && sam deploy --parameter-overrides Architecture=$architecture)"
