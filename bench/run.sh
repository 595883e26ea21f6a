#!/bin/sh
# Side-by-side benchmark, one run, same machine, same mock:
#   direct to the mock | nginx (1 worker, keep-alive pool) | sluice (empty
#   pipeline) | sluice (3 no-op plugins + the default Lua policy)
# at 1 and 64 connections (requests/s, p50, p99) plus time to first
# streamed byte. Results: bench/results/latest.md
#   bench/run.sh [DURATION_SECONDS]      (BENCH_NO_BUILD=1: use build/ as is;
#                                         TTFB_ROUNDS=N: paced TTFB re-runs, 5)
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DUR=${1:-10}
OUT=bench/results
TMP=$(mktemp -d)
mkdir -p "$OUT"
if [ -z "${BENCH_NO_BUILD:-}" ]; then # set it to reuse an existing build/
    ./scripts/install-deps.sh
    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DSANITIZE=none >/dev/null
    cmake --build build -j"$(nproc)" >/dev/null
fi

# PIDs go to a file: start_sluice runs in a $(...) subshell.
cleanup() { [ -f "$TMP/pids" ] && kill $(cat "$TMP/pids") 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM

. bench/lib.sh # free_port, wait_port, run_wrk, ttfb_table

MOCK=$(free_port)
./build/sluice-mock --listen 127.0.0.1:$MOCK --quiet >/dev/null 2>&1 &
echo $! >> "$TMP/pids"
wait_port $MOCK

NGINX=$(free_port)
sed -e "s|@DIR@|$TMP|g" -e "s|@MOCK_PORT@|$MOCK|g" -e "s|@PORT@|$NGINX|g" bench/nginx.conf.in > "$TMP/nginx.conf"
nginx -c "$TMP/nginx.conf" -p "$TMP" >/dev/null 2>&1 &
echo $! >> "$TMP/pids"

start_sluice() { # name pipeline-json
    port=$(free_port)
    cat > "$TMP/$1.json" <<CFG
{"listen": "127.0.0.1:$port", "workers": 1,
 "upstreams": [{"name": "mock", "base_url": "http://127.0.0.1:$MOCK/v1", "models": ["*"], "max_connections": 128}],
 "plugin_dir": "$ROOT/build/plugins", "pipeline": $2, $3
 "log": {"level": "warn", "access_log": ""}}
CFG
    ./build/sluice serve -c "$TMP/$1.json" >/dev/null 2>"$TMP/$1.log" &
    echo $! >> "$TMP/pids"
    wait_port $port
    echo $port
}
EMPTY=$(start_sluice empty '[]' '')
NOOP=$(start_sluice noop '[{"plugin":"noop","name":"a","config":{}},{"plugin":"noop","name":"b","config":{}},{"plugin":"noop","name":"c","config":{}}]' "\"policy\": {\"script\": \"$ROOT/policies/default.lua\"},")
wait_port $NGINX


{
echo "# sluice benchmark ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, ${DUR}s per cell, wrk -t1)"
echo
echo "Mock: sluice-mock (1 thread, zero latency). nginx: 1 worker, keep-alive pool of 64. sluice: 1 worker."
echo
echo "| target | conns | req/s | p50 µs | p99 µs | added p50 µs | non-2xx |"
echo "|---|---|---|---|---|---|---|"
for c in ${BENCH_CONNS-1 64}; do
    base=""
    for t in "direct:$MOCK" "nginx:$NGINX" "sluice-empty:$EMPTY" "sluice-noop+policy:$NOOP"; do
        name=${t%%:*}; port=${t##*:}
        set -- $(run_wrk "$port" "$c")
        [ -z "$base" ] && base=$2
        echo "| $name | $c | $1 | $2 | $3 | $(( ${2%.*} - ${base%.*} )) | $4 |"
    done
done
echo
echo "Time to first streamed byte (${TTFB_N:-1000} streaming requests per target, one connection each, targets interleaved in shuffled order):"
echo
ttfb_table "direct:$MOCK" "nginx:$NGINX" "sluice-empty:$EMPTY" "sluice-noop+policy:$NOOP"
if [ "${TTFB_ROUNDS:-5}" -gt 0 ]; then
    echo
    echo "The paced figures again, ${TTFB_ROUNDS:-5} more runs (run-to-run spread):"
    echo
    ttfb_rounds "${TTFB_ROUNDS:-5}" "direct:$MOCK" "nginx:$NGINX" "sluice-empty:$EMPTY" "sluice-noop+policy:$NOOP"
fi
} | tee "$OUT/latest.md"
