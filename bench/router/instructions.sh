#!/bin/sh
# Instructions the gateway spends per request (callgrind: independent of
# the shared machine's load), for one pipeline and model: the gateway runs
# under valgrind serving N and then 2N sequential non-streamed chat
# requests; (2N run - N run) / N is the per-request cost, start-up and
# shutdown cancelled out. Two upstreams, "a" and "b", both the mock.
#   bench/router/instructions.sh BUILD PIPELINE_JSON [MODEL] [POLICY] [N]
# bench/router/run.sh calls it for the table in bench/results/router.md.
set -eu
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
BUILD=$1; PIPE=$2; MODEL=${3:-gpt-4o-mini}; POLICY=${4:-}; N=${5:-200}
TMP=$(mktemp -d)
cleanup() { [ -f "$TMP/pids" ] && kill $(cat "$TMP/pids") 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM
WAIT_TRIES=600 # valgrind starts slowly
. bench/lib.sh # free_port, wait_port, run_wrk

MOCK=$(free_port)
"$BUILD/sluice-mock" --listen 127.0.0.1:$MOCK --quiet >/dev/null 2>&1 &
echo $! >> "$TMP/pids"
wait_port $MOCK
POL=""
[ -n "$POLICY" ] && POL="\"policy\": {\"script\": \"$ROOT/policies/$POLICY\"},"

run() { # requests -> total instructions
    port=$(free_port)
    cat > "$TMP/gw.json" <<CFG
{"listen": "127.0.0.1:$port", "workers": 1, $POL
 "upstreams": [{"name": "a", "base_url": "http://127.0.0.1:$MOCK/v1", "models": ["*"]},
               {"name": "b", "base_url": "http://127.0.0.1:$MOCK/v1", "models": ["*"]}],
 "plugin_dir": "$BUILD/plugins", "pipeline": $PIPE, "log": {"level": "warn", "access_log": ""}}
CFG
    valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.out" \
        "$BUILD/sluice" serve -c "$TMP/gw.json" >/dev/null 2>"$TMP/vg.log" &
    pid=$!
    wait_port $port
    python3 - "$port" "$1" "$MODEL" <<'PY'
import http.client, json, sys
port, n, model = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Say hello in one short sentence."}]})
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
for _ in range(n):
    conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    r = conn.getresponse()
    assert r.status == 200, r.read()
    r.read()
PY
    kill -TERM $pid
    wait $pid || true
    callgrind_annotate "$TMP/cg.out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'
}
one=$(run "$N")
two=$(run $((2 * N)))
echo $(( (two - one) / N ))
