#!/usr/bin/env bash
# The five-minute walkthrough of README.md, as a script: run it whole with
#
#     bash docs/walkthrough.sh
#
# It needs `automations` on PATH (`cargo install --path functions/local`), curl 7.82 or
# newer (for --json), jq and python3. It starts `automations serve` and a small webhook
# receiver in the background, goes through every step, checks that each one worked, and
# stops both when it ends. It exits non-zero as soon as a step fails.
#
# Settings (environment variables):
#   AUTOMATIONS_PORT      port of the API (default 8080)
#   RECEIVER_PORT         port of the webhook receiver (default 9000)
#   WALKTHROUGH_DATA_DIR  the server's data directory (default ./.automations)
set -euo pipefail

PORT=${AUTOMATIONS_PORT:-8080}
RECEIVER_PORT=${RECEIVER_PORT:-9000}
DATA_DIR=${WALKTHROUGH_DATA_DIR:-./.automations}
U=http://127.0.0.1:$PORT
WORK=$(mktemp -d)   # the receiver's and the server's output, and the YAML file

# On exit, however it ends: stop the server and the receiver; after a failure, show the
# end of the server's log.
cleanup() {
    status=$?
    set +e
    for pid in ${SERVER_PID:-} ${RECEIVER_PID:-}; do
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if [ "$status" -ne 0 ]; then
        echo "walkthrough FAILED (exit $status); the server's log ends with:" >&2
        tail -n 30 "$WORK/server.log" >&2 2>/dev/null || true
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT

# Stops the walkthrough with a message.
fail() { echo "FAILED: $*" >&2; exit 1; }

# curl as the walkthrough uses it: quiet, but errors shown, and an HTTP error status
# (4xx, 5xx) fails the command, and so the script.
api() { curl -sS --fail-with-body "$@"; }

# Waits up to 20 s for a condition (a command) to hold.
wait_until() {
    for _ in $(seq 100); do
        if "$@"; then return 0; fi
        sleep 0.2
    done
    return 1
}

# The walkthrough makes team acme from scratch: it needs a data directory without state.
[ -e "$DATA_DIR/automations.db" ] &&
    fail "$DATA_DIR already holds a server's state: remove it, or set WALKTHROUGH_DATA_DIR"

echo "== 1. Start the server and a receiver"
# A known operator key, and webhooks to loopback allowed so that the local receiver can get
# them (by default private and loopback addresses are refused).
export AUTOMATIONS_OPERATOR_KEY=walkthrough-operator-key-0123456789abcdef
AUTOMATIONS_ALLOW_NETWORKS=127.0.0.0/8 \
    automations serve --listen "127.0.0.1:$PORT" --data-dir "$DATA_DIR" 2> "$WORK/server.log" &
SERVER_PID=$!
OP="Authorization: Bearer $AUTOMATIONS_OPERATOR_KEY"

# A receiver that prints what it gets, one line per request (any HTTP server will do).
python3 -c '
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        print(dict(self.headers), body.decode(), flush=True)
        self.send_response(200); self.end_headers(); self.wfile.write(b"deployed")
    def log_message(self, *args): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()' \
    "$RECEIVER_PORT" > "$WORK/received.log" &
RECEIVER_PID=$!

# Wait until the server answers GET /healthz (and the receiver listens) before the first
# request: `serve` takes a moment to start.
wait_until curl -sf "$U/healthz" -o /dev/null || fail "the server did not answer $U/healthz"
wait_until curl -s "http://127.0.0.1:$RECEIVER_PORT/" -o /dev/null || fail "the receiver did not start"

echo "== 2. A team and its admin"
# The operator key only makes teams and their first admin key (shown once: keep it).
# From then on the team's admin does the team's work with its own key.
api -H "$OP" $U/v1/teams --json '{"name": "acme"}'; echo
ADMIN=$(api -H "$OP" $U/v1/teams/acme/api-keys --json '{"user": "alice", "role": "admin"}' | jq -er .key)
K="Authorization: Bearer $ADMIN"

echo "== 3. Secrets and a webhook integration"
# Two secrets (write-only: no answer ever shows them), and a webhook integration that
# sends the token as `Authorization: Bearer` and signs with the signing secret.
api -H "$K" -X PUT $U/v1/teams/acme/secrets/GH_TOKEN --json '{"value": "ghp_example"}'; echo
api -H "$K" -X PUT $U/v1/teams/acme/secrets/SIGNING --json '{"value": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}'; echo
I=$(api -H "$K" $U/v1/teams/acme/integrations --json '{"type": "webhook", "name": "deployer",
  "url": "http://127.0.0.1:'$RECEIVER_PORT'/deploy", "access_token_secret": "GH_TOKEN", "signing_secret": "SIGNING"}' | jq -er .id)
echo "integration $I"

echo "== 4. Two automations"
# When an alias starting with `prod` is added to a version of `resnet` in the `model`
# registry, send a GitHub-style `repository_dispatch` payload.
A=$(api -H "$K" $U/v1/teams/acme/automations --json '{
  "name": "deploy-on-production",
  "scope": {"type": "registry", "name": "model", "collection": "resnet"},
  "event": {"type": "ADD_ARTIFACT_ALIAS", "filter": {"alias": {"$regex": "^prod"}}},
  "action": {"type": "webhook", "integration": "'$I'", "payload": {
    "event_type": "DEPLOY",
    "client_payload": {"version": "${artifact_version_string}", "author": "${event_author}"}}}}' | jq -er .id)
echo "automation $A"
# When a run of the project `train` fails, say so.
R=$(api -H "$K" $U/v1/teams/acme/automations --json '{
  "name": "tell-when-a-run-fails",
  "scope": {"type": "project", "name": "train"},
  "event": {"type": "RUN_STATE", "states": ["FAILED"]},
  "action": {"type": "webhook", "integration": "'$I'", "payload": {
    "text": "run ${run_name} (${run_id}) by ${run_user} ended ${run_state}"}}}' | jq -er .id)
echo "automation $R"

echo "== 5. Events"
# A training job or CI gets a key that can only send events (`ingest`), and sends them.
# The same `id` sent twice is accepted once.
JOB=$(api -H "$K" $U/v1/teams/acme/api-keys --json '{"user": "training-ci", "role": "ingest"}' | jq -er .key)
api -H "Authorization: Bearer $JOB" $U/v1/teams/acme/events --json '{"id": "evt-1", "event_type": "ADD_ARTIFACT_ALIAS",
  "registry": "model", "author": "alice",
  "artifact": {"collection": "resnet", "version": "v4", "alias": "production"}}'; echo
# {"accepted":["evt-1"],"duplicates":[]}
api -H "Authorization: Bearer $JOB" $U/v1/teams/acme/events --json '{"event_type": "RUN_STATE", "project": "train",
  "run": {"id": "3kx9", "name": "sunny-1", "user": "alice", "state": "FAILED"}}'; echo

echo "== 6. What the receiver got"
# Each webhook carries `authorization: Bearer ghp_example`, `x-wandb-signature`,
# `webhook-id`, `webhook-timestamp` and `webhook-signature` (see docs/delivery.md), and the
# rendered body, e.g.
# {"client_payload":{"author":"alice","version":"acme/model/resnet:production"},"event_type":"DEPLOY"}
received() { [ "$(grep -c "$1" "$WORK/received.log")" -ge "$2" ]; }
wait_until received '"event_type":"DEPLOY"' 1 || fail "the receiver got no DEPLOY webhook"
wait_until received 'run sunny-1 (3kx9) by alice ended FAILED' 1 || fail "the receiver got no RUN_STATE webhook"
cat "$WORK/received.log"

echo "== 7. Executions, and a retry"
# The execution record shows every attempt and the result, with secrets as ***.
finished() {
    [ "$(api -H "$K" $U/v1/teams/acme/automations/$A/executions | jq -r '.executions[0].status')" = FINISHED ]
}
wait_until finished || fail "the execution did not finish"
api -H "$K" $U/v1/teams/acme/automations/$A/executions | jq '.executions[0]'
# Send it again: take its id from the listing, then retry it. The receiver gets the same
# webhook once more, with the same `webhook-id`.
EXEC=$(api -H "$K" $U/v1/teams/acme/automations/$A/executions | jq -r '.executions[0].id')
api -H "$K" -X POST $U/v1/teams/acme/executions/$EXEC/retry | jq '{id, status}'
wait_until received '"event_type":"DEPLOY"' 2 || fail "the retry was not delivered"
# Try an integration: one real request, and the receiver's answer.
api -H "$K" -X POST $U/v1/teams/acme/integrations/$I/test; echo

echo "== 8. The command line"
# The `automations` binary is also the client; it reads these three variables.
export AUTOMATIONS_URL=$U AUTOMATIONS_KEY=$ADMIN AUTOMATIONS_TEAM=acme
automations executions list
automations executions show "$EXEC" > /dev/null

echo "== 9. Automations as code"
# A YAML file with a queue and an automation that names its integration by name.
cat > "$WORK/acme.yaml" <<'YAML'
queues:
  - name: gpu
automations:
  - name: evaluate-production
    description: evaluate every version that becomes production
    scope: {type: registry, name: model}
    event:
      type: ADD_ARTIFACT_ALIAS
      filter: {alias: production}
    action:
      type: queue_job
      queue: gpu
      job: eval-resnet
      overrides: {model: "${artifact_version_string}"}
YAML
# The first apply prints its plan and makes the changes ...
automations apply -f "$WORK/acme.yaml"
# ... and a second one finds nothing to do.
automations apply -f "$WORK/acme.yaml" | tee "$WORK/second-apply.txt"
grep -q "No changes" "$WORK/second-apply.txt" || fail "the second apply changed something"
# The whole team as YAML, which `apply` takes back with no changes.
automations export

echo "== 10. Audit trail and keys"
# Everything the admin changed, tested and retried is in the team's audit trail.
api -H "$K" "$U/v1/teams/acme/audit?limit=5" | jq -c '.entries[] | {action, target: .target.name}'
# The job's key does nothing but send events: listing the automations with it is a 403 ...
status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $JOB" $U/v1/teams/acme/automations)
echo "the ingest key lists automations: $status"
[ "$status" = 403 ] || fail "expected 403, got $status"
# ... and once revoked it fails at once with 401.
JOB_ID=$(api -H "$K" $U/v1/teams/acme/api-keys | jq -er '.api_keys[] | select(.user == "training-ci") | .id')
api -H "$K" -X DELETE $U/v1/teams/acme/api-keys/$JOB_ID -o /dev/null
status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $JOB" $U/v1/teams/acme/events \
  --json '{"event_type": "RUN_STATE", "project": "train", "run": {"id": "3kx9", "state": "RUNNING"}}')
echo "the revoked key sends an event: $status"
[ "$status" = 401 ] || fail "expected 401, got $status"

echo "The walkthrough worked."
