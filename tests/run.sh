#!/usr/bin/env bash
# Runs every test. The AWS adapters are tested against moto's server, installed here into
# .venv on first use; the tests start it themselves unless AWS_ENDPOINT_URL names one.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/moto_server ]; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check 'moto[server]>=5.1,<6'
fi
# The property tests (shared/tests/properties.rs) try this many inputs each (~35 s in all).
export PROPTEST_CASES="${PROPTEST_CASES:-1000}"
exec cargo test --workspace --locked "$@"
