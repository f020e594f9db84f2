#!/usr/bin/env bash
# Runs every test. The AWS adapters are tested against moto's server, installed here into
# .venv on first use; the tests start it themselves unless AWS_ENDPOINT_URL names one.
# MLflow goes into .venv-mlflow for the test against a real MLflow server. Then the Python
# client's tests (clients/python/tests) run with pytest, schemathesis runs against the
# server's OpenAPI document, and the console's tests run in headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/moto_server ]; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check 'moto[server]>=5.1,<6'
fi
# MLflow (for tests/tests/mlflow.rs, a real MLflow server) installs into .venv-mlflow in the
# background while cargo builds; its output is in .venv-mlflow.log.
mlflow_install=
if [ ! -x .venv-mlflow/bin/mlflow ]; then
    (python3 -m venv .venv-mlflow &&
        .venv-mlflow/bin/pip install --quiet --disable-pip-version-check 'mlflow>=3.3,<4') \
        > .venv-mlflow.log 2>&1 &
    mlflow_install=$!
fi
# schemathesis (tests/schemathesis/run.sh, against the real server's /openapi.json) installs
# into .venv-schemathesis in the background too.
schemathesis_install=
if [ ! -x .venv-schemathesis/bin/st ]; then
    (python3 -m venv .venv-schemathesis &&
        .venv-schemathesis/bin/pip install --quiet --disable-pip-version-check 'schemathesis>=4.3,<5') \
        > .venv-schemathesis.log 2>&1 &
    schemathesis_install=$!
fi
# The console's browser tests (tests/console: playwright-core from npm, driving Debian's
# chromium) install their npm packages from the lockfile in the background too.
console_install=
if [ ! -d tests/console/node_modules/playwright-core ]; then
    (cd tests/console && npm ci --no-audit --no-fund) > tests/console/npm.log 2>&1 &
    console_install=$!
fi
# The Python client's tests (pytest, in .venv-client) run against the binary cargo builds.
if [ ! -x .venv-client/bin/pytest ]; then
    python3 -m venv .venv-client
    .venv-client/bin/pip install --quiet --disable-pip-version-check 'pytest>=8,<10'
fi
.venv-client/bin/pip install --quiet --disable-pip-version-check --no-deps --force-reinstall ./clients/python
# The property tests (shared/tests/properties.rs) try this many inputs each (~35 s in all).
export PROPTEST_CASES="${PROPTEST_CASES:-1000}"
if [ -n "$mlflow_install" ]; then
    cargo test --workspace --locked --no-run
    if ! wait "$mlflow_install"; then
        cat .venv-mlflow.log
        echo "installing mlflow into .venv-mlflow failed" >&2
        exit 1
    fi
fi
cargo test --workspace --locked "$@"
# (with a filter for cargo, only the Rust tests run)
if [ "$#" -eq 0 ]; then
    echo "== clients/python (pytest against target/debug/automations)"
    (cd clients/python && AUTOMATIONS_BIN="$PWD/../../target/debug/automations" \
        ../../.venv-client/bin/python -m pytest -q -p no:cacheprovider tests)
    echo "== schemathesis (every operation of /openapi.json against target/debug/automations)"
    if [ -n "$schemathesis_install" ] && ! wait "$schemathesis_install"; then
        cat .venv-schemathesis.log
        echo "installing schemathesis into .venv-schemathesis failed" >&2
        exit 1
    fi
    bash tests/schemathesis/run.sh target/debug/automations
    echo "== console (tests/console: headless Chromium against target/debug/automations)"
    if [ -n "$console_install" ] && ! wait "$console_install"; then
        cat tests/console/npm.log
        echo "installing tests/console's npm packages failed" >&2
        exit 1
    fi
    chromium=${CHROMIUM:-/usr/bin/chromium}
    if [ ! -x "$chromium" ]; then
        echo "the console tests need Chromium at $chromium: apt-get install chromium (Debian), or set CHROMIUM" >&2
        exit 1
    fi
    (cd tests/console && CHROMIUM="$chromium" AUTOMATIONS_BIN="$PWD/../../target/debug/automations" \
        node --test --test-concurrency=1 console.test.mjs)
fi
