#!/bin/sh
# Two sluice builds side by side in one run, beside the mock directly and
# nginx: did a change make the request path slower? Same machine, same mock,
# wrk cells run back to back and time to first byte measured interleaved
# (bench/ttfb.py), so a busy second of a shared machine falls on all alike.
#   bench/ab.sh OLD_BUILD_DIR NEW_BUILD_DIR [SECONDS]
# Each build dir needs sluice and plugins/noop.so (a Release build). The
# mock comes from NEW. TTFB_ROUNDS=N: paced TTFB re-runs (5). Results:
# bench/results/ab.md
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OLD=$(cd "$1" && pwd)
NEW=$(cd "$2" && pwd)
DUR=${3:-10}
TMP=$(mktemp -d)
cleanup() { [ -f "$TMP/pids" ] && kill $(cat "$TMP/pids") 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM

. bench/lib.sh # free_port, wait_port, run_wrk, ttfb_table

MOCK=$(free_port)
"$NEW/sluice-mock" --listen 127.0.0.1:$MOCK --quiet >/dev/null 2>&1 &
echo $! >> "$TMP/pids"
wait_port $MOCK
NGINX=$(free_port)
sed -e "s|@DIR@|$TMP|g" -e "s|@MOCK_PORT@|$MOCK|g" -e "s|@PORT@|$NGINX|g" bench/nginx.conf.in > "$TMP/nginx.conf"
nginx -c "$TMP/nginx.conf" -p "$TMP" >/dev/null 2>&1 &
echo $! >> "$TMP/pids"

start_sluice() { # build name pipeline-json extra
    port=$(free_port)
    cat > "$TMP/$2.json" <<CFG
{"listen": "127.0.0.1:$port", "workers": 1,
 "upstreams": [{"name": "mock", "base_url": "http://127.0.0.1:$MOCK/v1", "models": ["*"], "max_connections": 128}],
 "plugin_dir": "$1/plugins", "pipeline": $3, $4
 "log": {"level": "warn", "access_log": ""}}
CFG
    "$1/sluice" serve -c "$TMP/$2.json" >/dev/null 2>"$TMP/$2.log" &
    echo $! >> "$TMP/pids"
    wait_port $port
    echo $port
}
NOOPS='[{"plugin":"noop","name":"a","config":{}},{"plugin":"noop","name":"b","config":{}},{"plugin":"noop","name":"c","config":{}}]'
POLICY="\"policy\": {\"script\": \"$ROOT/policies/default.lua\"},"
OLD_EMPTY=$(start_sluice "$OLD" old-empty '[]' '')
NEW_EMPTY=$(start_sluice "$NEW" new-empty '[]' '')
OLD_NOOP=$(start_sluice "$OLD" old-noop "$NOOPS" "$POLICY")
NEW_NOOP=$(start_sluice "$NEW" new-noop "$NOOPS" "$POLICY")
wait_port $NGINX
TARGETS="direct:$MOCK nginx:$NGINX old-empty:$OLD_EMPTY new-empty:$NEW_EMPTY old-noop+policy:$OLD_NOOP new-noop+policy:$NEW_NOOP"


{
echo "# old vs new build ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, ${DUR}s per cell, wrk -t1)"
echo
echo "old: $OLD ($(git -C "$OLD/.." rev-parse --short HEAD 2>/dev/null || echo '?')), new: $NEW. sluice: 1 worker; nginx: 1 worker."
echo
echo "| target | conns | req/s | p50 µs | p99 µs | non-2xx |"
echo "|---|---|---|---|---|---|"
for c in ${BENCH_CONNS-1 64}; do
    for t in $TARGETS; do
        set -- $(run_wrk "${t##*:}" "$c")
        echo "| ${t%%:*} | $c | $1 | $2 | $3 | $4 |"
    done
done
echo
echo "Time to first streamed byte (${TTFB_N:-1000} requests per target, targets interleaved in shuffled order):"
echo
ttfb_table $TARGETS
if [ "${TTFB_ROUNDS:-5}" -gt 0 ]; then
    echo
    echo "The paced figures again, ${TTFB_ROUNDS:-5} more runs (run-to-run spread):"
    echo
    ttfb_rounds "${TTFB_ROUNDS:-5}" $TARGETS
fi
} | tee bench/results/ab.md
