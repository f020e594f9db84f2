#!/usr/bin/env bash
# schemathesis against the real `automations serve`: every operation of its /openapi.json,
# as the admin of team acme. Fails on a 5xx, an answer that does not match its schema, a
# status or content type the document does not list.
# Usage: tests/schemathesis/run.sh [path to the automations binary]
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="${1:-target/debug/automations}"
if [ ! -x .venv-schemathesis/bin/st ]; then
    python3 -m venv .venv-schemathesis
    .venv-schemathesis/bin/pip install --quiet --disable-pip-version-check 'schemathesis>=4.3,<5'
fi
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
operator="schemathesis-operator-key-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
AUTOMATIONS_OPERATOR_KEY="$operator" "$bin" serve --listen "127.0.0.1:$port" --data-dir "$dir/data" \
    > "$dir/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 100); do
    if curl -sf "$url/healthz" > /dev/null; then break; fi
    sleep 0.1
done
curl -sf -H "Authorization: Bearer $operator" "$url/v1/teams" --json '{"name": "acme"}' > /dev/null
AUTOMATIONS_KEY=$(curl -sf -H "Authorization: Bearer $operator" "$url/v1/teams/acme/api-keys" \
    --json '{"user": "schemathesis", "role": "admin"}' | python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])')
export AUTOMATIONS_KEY
status=0
.venv-schemathesis/bin/st --config-file tests/schemathesis/schemathesis.toml run "$url/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --max-examples "${SCHEMATHESIS_EXAMPLES:-30}" --workers 2 --seed 1 || status=$?
if [ "$status" -ne 0 ]; then
    echo "== the server's log" >&2
    tail -50 "$dir/serve.log" >&2
fi
exit "$status"
