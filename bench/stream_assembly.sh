#!/bin/sh
# Cost of the stream services on streamed requests, interleaved rounds on one
# mock so that machine noise hits every target alike:
#   BUILD_A, BUILD_B   empty pipeline on each build (e.g. before/after a change:
#                      a stream without any plugin setting whole_streams)
#   BUILD_B+coalesce   coalesce in the pipeline: every stream is assembled
#                      (requests without temperature 0, so none is coalesced)
# Time to first streamed byte (bench/ttfb.py, the targets interleaved,
# ROUNDS x 100 requests each) and streamed req/s (wrk, 8 connections,
# 20-chunk streams, ROUNDS rounds taking turns; the median is printed).
# On a loaded machine the first gateway started (A) tends to do better:
# run it again with A and B swapped before reading a difference into it;
# bench/stream_instructions.sh gives load-independent numbers.
#   bench/stream_assembly.sh BUILD_A BUILD_B [ROUNDS] [SECONDS]
set -eu
cd "$(dirname "$0")/.."
A=$1; B=$2; ROUNDS=${3:-5}; DUR=${4:-3}
TMP=$(mktemp -d)
cleanup() { [ -f "$TMP/pids" ] && kill $(cat "$TMP/pids") 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM
. bench/lib.sh # free_port, wait_port, run_wrk

MOCK=$(free_port)
"$B/sluice-mock" --listen 127.0.0.1:$MOCK --quiet >/dev/null 2>&1 &
echo $! >> "$TMP/pids"
wait_port $MOCK

start() { # name build pipeline-json
    port=$(free_port)
    cat > "$TMP/$1.json" <<CFG
{"listen": "127.0.0.1:$port", "workers": 1,
 "upstreams": [{"name": "mock", "base_url": "http://127.0.0.1:$MOCK/v1", "models": ["*"], "max_connections": 64}],
 "plugin_dir": "$2/plugins", "pipeline": $3, "log": {"level": "warn", "access_log": ""}}
CFG
    "$2/sluice" serve -c "$TMP/$1.json" >/dev/null 2>"$TMP/$1.log" &
    echo $! >> "$TMP/pids"
    wait_port $port
    echo $port
}
PA=$(start a "$A" '[]')
PB=$(start b "$B" '[]')
PC=$(start c "$B" '[{"plugin":"coalesce","config":{}}]')

cat > "$TMP/stream.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Say hello in one short sentence, please."}],"mock":{"chunks":20}}'
LUA
# TTFB: the targets interleaved request by request (bench/ttfb.py).
python3 bench/ttfb.py $((ROUNDS * 100)) $PA $PB $PC > "$TMP/ttfb"
# Throughput: rounds of wrk, the targets taking turns, the order rotated
# every round (the slot after another target's run measured ~15% lower
# with the same build in both slots).
for r in $(seq "$ROUNDS"); do
    case $((r % 3)) in
    0) order="a:$PA b:$PB c:$PC" ;;
    1) order="b:$PB c:$PC a:$PA" ;;
    *) order="c:$PC a:$PA b:$PB" ;;
    esac
    for t in $order; do
        n=${t%%:*}; p=${t##*:}
        rps=$(wrk -t1 -c8 -d"${DUR}s" -s "$TMP/stream.lua" "http://127.0.0.1:$p/v1/chat/completions" |
              awk '/Requests\/sec/ {print int($2)}')
        echo "$n $rps" >> "$TMP/samples"
    done
done
python3 - "$TMP/samples" "$TMP/ttfb" "$A" "$B" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
ttfb = [l.split() for l in open(sys.argv[2])]
names = {"a": "A empty pipeline (%s)" % sys.argv[3], "b": "B empty pipeline (%s)" % sys.argv[4],
         "c": "B + coalesce: streams assembled"}
print("| target | TTFB median µs | TTFB p99 µs | streamed req/s (8 conns, median) | wrk rounds |")
print("|---|---|---|---|---|")
for i, k in enumerate("abc"):
    q = [float(r[1]) for r in rows if r[0] == k]
    print("| %s | %s | %s | %.0f | %d |" % (names[k], ttfb[i][0], ttfb[i][1], statistics.median(q), len(q)))
PY
