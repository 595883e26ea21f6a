#!/bin/sh
# The cost of cost_tracker on the request path, beside the no-op pipeline:
#   sluice + 1 no-op plugin | cost_tracker, memory only, no budgets |
#   cost_tracker + SQLite ledger | cost_tracker + ledger + 3 local budgets
# (tenant monthly, feature daily, global total; never exhausted)
# with wrk against the mock, 1 worker, at 1 and 16 connections. Prints a
# markdown table (bench/results/cost.md).
#   bench/cost/run.sh [DURATION_SECONDS]
#   BUILD=/path/to/release-build (default build/; built unless BENCH_NO_BUILD=1)
set -eu
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
DUR=${1:-10}
BUILD=${BUILD:-build}
TMP=$(mktemp -d)
case "$BUILD" in /*) BDIR=$BUILD ;; *) BDIR=$ROOT/$BUILD ;; esac
if [ -z "${BENCH_NO_BUILD:-}" ]; then
    cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DSANITIZE=none >/dev/null
    cmake --build "$BUILD" -j2 --target sluice sluice-mock noop cost_tracker >/dev/null
fi
cleanup() { [ -f "$TMP/pids" ] && kill $(cat "$TMP/pids") 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM

. bench/lib.sh # free_port, wait_port, run_wrk

MOCK=$(free_port)
"$BUILD/sluice-mock" --listen 127.0.0.1:$MOCK --quiet >/dev/null 2>&1 &
echo $! >> "$TMP/pids"
wait_port $MOCK

start_sluice() { # name pipeline-json
    port=$(free_port)
    cat > "$TMP/$1.json" <<CFG
{"listen": "127.0.0.1:$port", "workers": 1,
 "upstreams": [{"name": "mock", "base_url": "http://127.0.0.1:$MOCK/v1", "models": ["*"], "max_connections": 128}],
 "plugin_dir": "$BDIR/plugins", "pipeline": $2,
 "log": {"level": "warn", "access_log": ""}}
CFG
    "$BUILD/sluice" serve -c "$TMP/$1.json" >/dev/null 2>"$TMP/$1.log" &
    echo $! >> "$TMP/pids"
    wait_port $port
    echo $port
}
BUDGETS='[{"name":"t","scope":"tenant","period":"monthly","limit_usd":"1000000"},{"name":"f","scope":"feature","match":"bench","period":"daily","limit_usd":"1000000"},{"name":"g","scope":"global","period":"total","limit_usd":"1000000"}]'
NOOP=$(start_sluice noop '[{"plugin":"noop","config":{}}]')
MEM=$(start_sluice mem '[{"plugin":"cost_tracker","config":{"ledger_path":""}}]')
LEDGER=$(start_sluice ledger "[{\"plugin\":\"cost_tracker\",\"config\":{\"ledger_path\":\"$TMP/l.sqlite\"}}]")
BUDG=$(start_sluice budgets "[{\"plugin\":\"cost_tracker\",\"config\":{\"ledger_path\":\"$TMP/b.sqlite\",\"budgets\":$BUDGETS}}]")

cat > "$TMP/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["x-sluice-feature"] = "bench"
wrk.body = '{"model":"gpt-4o-mini","max_tokens":50,"messages":[{"role":"user","content":"Say hello in one short sentence, please."}]}'
LUA


echo "# cost_tracker on the request path ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores shared, ${DUR}s per cell, wrk -t1, 1 sluice worker)"
echo
echo "| pipeline | conns | req/s | p50 µs | p99 µs | p50 vs noop µs | non-2xx |"
echo "|---|---|---|---|---|---|---|"
for c in ${BENCH_CONNS-1 16}; do
    base=""
    for t in "noop:$NOOP" "cost_tracker-memory:$MEM" "cost_tracker+sqlite:$LEDGER" "cost_tracker+sqlite+3-budgets:$BUDG"; do
        name=${t%%:*}; port=${t##*:}
        set -- $(run_wrk "$port" "$c" "$TMP/post.lua")
        [ -z "$base" ] && base=$2
        echo "| $name | $c | $1 | $2 | $3 | $(python3 -c "print('%+.0f' % ($2 - $base))") | $4 |"
    done
done
echo
echo "Ledger rows written: $(python3 -c "import sqlite3; print(sqlite3.connect('$TMP/b.sqlite').execute('select count(*), sum(state=\"settled\") from ledger').fetchone())") (rows, settled) in the budgets run."
