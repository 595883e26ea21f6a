#!/bin/sh
# Instructions the gateway spends per streamed request (callgrind, so the
# number does not depend on machine load): the gateway runs under
# valgrind twice, serving N and 2N sequential streamed chat requests
# (20-chunk streams from sluice-mock); the difference divided by N is the
# per-request cost, start-up and shutdown cancelled out.
#   bench/stream_instructions.sh BUILD [PIPELINE_JSON] [N]
#   e.g. bench/stream_instructions.sh build '[{"plugin":"coalesce","config":{}}]'
set -eu
cd "$(dirname "$0")/.."
BUILD=$1; PIPE=${2:-[]}; N=${3:-200}
TMP=$(mktemp -d)
cleanup() { [ -f "$TMP/pids" ] && kill $(cat "$TMP/pids") 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM
WAIT_TRIES=600 # valgrind starts slowly
. bench/lib.sh # free_port, wait_port, run_wrk

MOCK=$(free_port)
"$BUILD/sluice-mock" --listen 127.0.0.1:$MOCK --quiet >/dev/null 2>&1 &
echo $! >> "$TMP/pids"
wait_port $MOCK

run() { # requests → total instructions
    port=$(free_port)
    cat > "$TMP/gw.json" <<CFG
{"listen": "127.0.0.1:$port", "workers": 1,
 "upstreams": [{"name": "mock", "base_url": "http://127.0.0.1:$MOCK/v1", "models": ["*"]}],
 "plugin_dir": "$BUILD/plugins", "pipeline": $PIPE, "log": {"level": "warn", "access_log": ""}}
CFG
    valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.out" \
        "$BUILD/sluice" serve -c "$TMP/gw.json" >/dev/null 2>"$TMP/vg.log" &
    pid=$!
    wait_port $port
    python3 - "$port" "$1" <<'PY'
import http.client, json, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
body = json.dumps({"model": "gpt-4o-mini", "stream": True,
                   "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
                   "mock": {"chunks": 20}})
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
for _ in range(n):
    conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    r = conn.getresponse()
    assert r.status == 200 and r.read().rstrip().endswith(b"[DONE]")
PY
    kill -TERM $pid
    wait $pid || true
    callgrind_annotate "$TMP/cg.out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'
}
one=$(run "$N")
two=$(run $((2 * N)))
echo "$(( (two - one) / N )) instructions per streamed request ($BUILD, pipeline $PIPE)"
