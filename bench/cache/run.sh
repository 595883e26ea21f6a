#!/bin/sh
# Cache plugin benchmark, one run, same machine, same mock:
#   1. lookup cost of the exact store and the semantic index at 10k/100k/1M
#      entries (bench_cache_lookup: p50/p99, memory per entry);
#   2. the gateway serving exact hits beside the mock answering directly and
#      nginx proxying to it, at 1 and 64 connections (wrk -t1).
# Results: bench/results/cache.md
#   bench/cache/run.sh [DURATION_SECONDS] [BUILD_DIR]   (BENCH_NO_BUILD=1: use BUILD_DIR as is;
#   LOOKUP_MAX, LOOKUP_MAX_1536, LOOKUP_MAX_SEMANTIC: largest sizes measured)
set -eu
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
DUR=${1:-10}
BUILD=${2:-build}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
# Largest store/index sizes (1M entries, and 1536-dim vectors to 100k, by
# default; graph builds take minutes at 1M).
LOOKUP_MAX=${LOOKUP_MAX:-1000000}
LOOKUP_MAX_1536=${LOOKUP_MAX_1536:-100000}
# ef_search values measured on each graph (bench/cache/index.sh runs the
# semantic cells alone).
export EF=${EF:-32,64,128}
OUT=bench/results
TMP=$(mktemp -d)
mkdir -p "$OUT"
if [ -z "${BENCH_NO_BUILD:-}" ]; then
    cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DSANITIZE=none >/dev/null
    cmake --build "$BUILD" -j2 --target sluice sluice-mock cache bench_cache_lookup >/dev/null
fi

cleanup() { [ -f "$TMP/pids" ] && kill $(cat "$TMP/pids") 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM

. bench/lib.sh # free_port, wait_port, run_wrk

MOCK=$(free_port)
"$BUILD"/sluice-mock --listen 127.0.0.1:$MOCK --quiet >/dev/null 2>&1 &
echo $! >> "$TMP/pids"
wait_port $MOCK

NGINX=$(free_port)
sed -e "s|@DIR@|$TMP|g" -e "s|@MOCK_PORT@|$MOCK|g" -e "s|@PORT@|$NGINX|g" bench/nginx.conf.in > "$TMP/nginx.conf"
nginx -c "$TMP/nginx.conf" -p "$TMP" >/dev/null 2>&1 &
echo $! >> "$TMP/pids"

CACHE=$(free_port)
cat > "$TMP/cache.json" <<CFG
{"listen": "127.0.0.1:$CACHE", "workers": 1,
 "upstreams": [{"name": "mock", "base_url": "http://127.0.0.1:$MOCK/v1", "models": ["*"], "max_connections": 128}],
 "plugin_dir": "$BUILD/plugins", "pipeline": [{"plugin": "cache", "config": {}}],
 "log": {"level": "warn", "access_log": ""}}
CFG
"$BUILD"/sluice serve -c "$TMP/cache.json" >/dev/null 2>"$TMP/cache.log" &
echo $! >> "$TMP/pids"
wait_port $CACHE
wait_port $NGINX
# Store the answer once; every request of the run is then a hit.
curl -s -o /dev/null "http://127.0.0.1:$CACHE/v1/chat/completions" -d "$(sed -n "s/^wrk.body = '\(.*\)'$/\1/p" bench/cache/post_t0.lua)"


{
echo "# cache benchmark ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, ${DUR}s per cell, wrk -t1)"
echo
echo "Load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (the machine is shared: read p99s with that in mind)"
echo
echo "## Lookup cost (bench_cache_lookup, one thread)"
echo
"$BUILD"/plugins/cache/bench_cache_lookup "$LOOKUP_MAX" "$LOOKUP_MAX_1536" "${LOOKUP_MAX_SEMANTIC:-$LOOKUP_MAX}"
echo
echo "## Exact hits served by the gateway"
echo
echo "Mock: sluice-mock (1 thread, zero latency). nginx: 1 worker, keep-alive pool of 64, proxying to the mock."
echo "sluice: 1 worker, pipeline [cache], every request an exact hit (the upstream request count stays 1)."
echo
echo "| target | conns | req/s | p50 µs | p99 µs | non-2xx |"
echo "|---|---|---|---|---|---|"
for c in 1 64; do
    for t in "direct-mock:$MOCK" "nginx-to-mock:$NGINX" "sluice-cache-hit:$CACHE"; do
        name=${t%%:*}; port=${t##*:}
        set -- $(run_wrk "$port" "$c" bench/cache/post_t0.lua)
        echo "| $name | $c | $1 | $2 | $3 | $4 |"
    done
done
echo
echo "Upstream chat requests during the run: $(curl -s http://127.0.0.1:$MOCK/mock/stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["chat_completions"])') (direct and nginx cells included; sluice's share is 1)"
} | tee "$OUT/cache.md"
