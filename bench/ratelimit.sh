#!/bin/sh
# Cost per rate-limit decision, measured as the difference between sluice
# with an empty pipeline and with one limiter (limits far above the load, so
# every request is admitted and pays a full decision), in one run:
#   local token_bucket | redis token_bucket | local sliding_window
# Results: bench/results/ratelimit.md      bench/ratelimit.sh [SECONDS]
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DUR=${1:-10}
TMP=$(mktemp -d)
mkdir -p bench/results
if [ -z "${BENCH_NO_BUILD:-}" ]; then
    ./scripts/install-deps.sh
    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DSANITIZE=none >/dev/null
    cmake --build build -j"$(nproc)" >/dev/null
fi
cleanup() { [ -f "$TMP/pids" ] && kill $(cat "$TMP/pids") 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM
. bench/lib.sh # free_port, wait_port, run_wrk

MOCK=$(free_port)
./build/sluice-mock --listen 127.0.0.1:$MOCK --quiet >/dev/null 2>&1 &
echo $! >> "$TMP/pids"
REDIS=$(free_port)
redis-server --port $REDIS --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 &
echo $! >> "$TMP/pids"
wait_port $MOCK

start() { # name pipeline
    port=$(free_port)
    cat > "$TMP/$1.json" <<CFG
{"listen": "127.0.0.1:$port", "workers": 1,
 "upstreams": [{"name": "mock", "base_url": "http://127.0.0.1:$MOCK/v1", "models": ["*"]}],
 "plugin_dir": "$ROOT/build/plugins", "pipeline": $2, "log": {"level": "warn", "access_log": ""}}
CFG
    ./build/sluice serve -c "$TMP/$1.json" >/dev/null 2>"$TMP/$1.log" &
    echo $! >> "$TMP/pids"
    wait_port $port
    echo $port
}
BIG='"requests_per_period": 1000000000, "period_s": 1'
EMPTY=$(start empty '[]')
LOCAL=$(start local "[{\"plugin\":\"token_bucket\",\"config\":{$BIG, \"scope\": \"{tenant}\"}}]")
REMOTE=$(start redis "[{\"plugin\":\"token_bucket\",\"config\":{$BIG, \"scope\": \"{tenant}\", \"backend\": \"redis\", \"redis_url\": \"redis://127.0.0.1:$REDIS\", \"redis_timeout_ms\": 1000}}]")
WINDOW=$(start window "[{\"plugin\":\"sliding_window\",\"config\":{\"limit\": 1000000000, \"window_s\": 1, \"approximate\": true}}]")

rps() { wrk -t1 -c"$2" -d"${DUR}s" -s bench/post.lua "http://127.0.0.1:$1/v1/chat/completions" | awk '/Requests\/sec/ {print $2}'; }
{
echo "# rate-limit decision cost ($(date -u +%Y-%m-%dT%H:%MZ), ${DUR}s per cell, wrk -t1, sluice 1 worker)"
echo
echo "Cost per decision = 1/rps(with limiter) - 1/rps(empty pipeline), same run."
echo
echo "| pipeline | conns | req/s | µs per request | decision cost µs |"
echo "|---|---|---|---|---|"
for c in 1 16; do
    base=$(rps $EMPTY $c)
    echo "| empty | $c | $base | $(python3 -c "print(round(1e6/$base,1))") | - |"
    for t in "token_bucket local:$LOCAL" "token_bucket redis:$REMOTE" "sliding_window approx local:$WINDOW"; do
        name=${t%%:*}; port=${t##*:}
        r=$(rps $port $c)
        echo "| $name | $c | $r | $(python3 -c "print(round(1e6/$r,1))") | $(python3 -c "print(round(1e6/$r - 1e6/$base,1))") |"
    done
done
} | tee bench/results/ratelimit.md
