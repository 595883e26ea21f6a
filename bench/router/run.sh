#!/bin/sh
# The router's cost on the request path, beside the no-op pipeline
# (bench/run.sh style: wrk against the mock, 1 worker, 1 and 16 conns):
#   noop              1 no-op plugin, model gpt-4o-mini
#   router-alias      router: alias fast -> gpt-4o-mini (model "fast")
#   router-split-pool + a 90/10 split on "fast" and a P2C pool of two
#                     upstreams (both the mock) with health checks
#   router-full       + a token budget whose ceiling rewrites max_tokens
#                     (the body is re-serialised)
#   noop+default.lua  1 no-op plugin + policies/default.lua
#   router-full+complexity.lua  router-full + policies/complexity_router.lua,
#                     model "auto" (policy scores, router resolves the alias)
# Prints a markdown table (bench/results/router.md).
#   bench/router/run.sh [DURATION_SECONDS]
#   BUILD=/path/to/release-build (default build/; built unless BENCH_NO_BUILD=1)
set -eu
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
DUR=${1:-10}
BUILD=${BUILD:-build}
case "$BUILD" in /*) BDIR=$BUILD ;; *) BDIR=$ROOT/$BUILD ;; esac
TMP=$(mktemp -d)
if [ -z "${BENCH_NO_BUILD:-}" ]; then
    cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DSANITIZE=none >/dev/null
    cmake --build "$BUILD" -j2 --target sluice sluice-mock noop router >/dev/null
fi
cleanup() { [ -f "$TMP/pids" ] && kill $(cat "$TMP/pids") 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM

. bench/lib.sh # free_port, wait_port, run_wrk

MOCK=$(free_port)
"$BDIR/sluice-mock" --listen 127.0.0.1:$MOCK --quiet >/dev/null 2>&1 &
echo $! >> "$TMP/pids"
wait_port $MOCK

start_sluice() { # name pipeline-json [policy]
    port=$(free_port)
    policy=""
    [ -n "${3:-}" ] && policy="\"policy\": {\"script\": \"$ROOT/policies/$3\"},"
    cat > "$TMP/$1.json" <<CFG
{"listen": "127.0.0.1:$port", "workers": 1, $policy
 "upstreams": [{"name": "a", "base_url": "http://127.0.0.1:$MOCK/v1", "models": ["*"], "max_connections": 128},
               {"name": "b", "base_url": "http://127.0.0.1:$MOCK/v1", "models": ["*"], "max_connections": 128}],
 "plugin_dir": "$BDIR/plugins", "pipeline": $2,
 "log": {"level": "warn", "access_log": ""}}
CFG
    "$BDIR/sluice" serve -c "$TMP/$1.json" >/dev/null 2>"$TMP/$1.log" &
    echo $! >> "$TMP/pids"
    echo $! > "$TMP/port-$port.pid"
    wait_port $port
    echo $port
}
NOOP='[{"plugin": "noop", "config": {}}]'
ALIAS='{"fast": "gpt-4o-mini", "smart": "gpt-4o"}'
SPLIT='{"fast": {"variants": [{"name": "stable", "weight": 90}, {"name": "canary", "model": "gpt-4.1-mini", "weight": 10}]}}'
POOL='{"gpt-4o-mini": {"strategy": "p2c", "upstreams": [{"name": "a"}, {"name": "b"}]}}'
BUDGET='"default_budget": "std", "token_budgets": {"std": {"max_tokens": 256}}'
P_NOOP=$(start_sluice noop "$NOOP")
P_ALIAS=$(start_sluice alias "[{\"plugin\": \"router\", \"config\": {\"aliases\": $ALIAS}}]")
P_POOL=$(start_sluice pool "[{\"plugin\": \"router\", \"config\": {\"aliases\": $ALIAS, \"splits\": $SPLIT, \"pools\": $POOL}}]")
FULL="[{\"plugin\": \"router\", \"config\": {\"aliases\": $ALIAS, \"splits\": $SPLIT, \"pools\": $POOL, $BUDGET}}]"
P_FULL=$(start_sluice full "$FULL")
P_NOOP_POL=$(start_sluice nooppol "$NOOP" default.lua)
P_FULL_POL=$(start_sluice fullpol "$FULL" complexity_router.lua)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$(cat "$TMP/port-$1.pid")/stat"; }
# lib.sh's run_wrk, plus the gateway's CPU time per request.
run_wrk_cpu() { # port conns script -> "rps p50_us p99_us non2xx cpu_us_per_request"
    t0=$(cpu_ticks "$1")
    out=$(run_wrk "$1" "$2" "$3")
    ticks=$(($(cpu_ticks "$1") - t0))
    reqs=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$TMP/wrk.out")
    echo "$out $(python3 -c "print('%.1f' % ($ticks * 1e6 / $(getconf CLK_TCK) / max(${reqs:-0}, 1)))")"
}

mkdir -p bench/results
{
echo "# router on the request path ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, ${DUR}s per cell, wrk -t1, 1 worker)"
echo
echo "CPU µs/req: the gateway process's user+system time over the cell / requests served. On the shared"
echo "2-core machine both the latencies and this move by tens of percent between runs: the instruction"
echo "counts below are the number to compare."
echo
echo "| pipeline | conns | req/s | p50 µs | p99 µs | p50 vs noop µs | gateway CPU µs/req | CPU vs noop µs | non-2xx |"
echo "|---|---|---|---|---|---|---|---|---|"
for c in 1 16; do
    base=""
    for t in "noop:$P_NOOP:post.lua" "router-alias:$P_ALIAS:router/post_fast.lua" \
             "router-split-pool:$P_POOL:router/post_fast.lua" "router-full:$P_FULL:router/post_fast.lua" \
             "noop+default.lua:$P_NOOP_POL:post.lua" "router-full+complexity.lua:$P_FULL_POL:router/post_auto.lua"; do
        name=${t%%:*}; rest=${t#*:}; port=${rest%%:*}; script=bench/${rest#*:}
        set -- $(run_wrk_cpu "$port" "$c" "$script")
        [ -z "$base" ] && { base=$2; cbase=$5; }
        echo "| $name | $c | $1 | $2 | $3 | $(( ${2%.*} - ${base%.*} )) | $5 | $(python3 -c "print('%+.1f' % ($5 - $cbase))") | $4 |"
    done
done
echo
echo "Instructions per request (callgrind, bench/router/instructions.sh, N=${INSN_N:-200} and 2N sequential requests:"
echo "load-independent, the number to compare):"
echo
echo "| pipeline | model | instructions/request | vs noop |"
echo "|---|---|---|---|"
ibase=""
for t in "noop|$NOOP|gpt-4o-mini|" "router-alias|[{\"plugin\": \"router\", \"config\": {\"aliases\": $ALIAS}}]|fast|" \
         "router-split-pool|[{\"plugin\": \"router\", \"config\": {\"aliases\": $ALIAS, \"splits\": $SPLIT, \"pools\": $POOL}}]|fast|" \
         "router-full|$FULL|fast|" "noop+default.lua|$NOOP|gpt-4o-mini|default.lua" \
         "router-full+complexity.lua|$FULL|auto|complexity_router.lua"; do
    IFS='|' read -r name pipe model pol <<T
$t
T
    n=$(sh bench/router/instructions.sh "$BDIR" "$pipe" "$model" "$pol" "${INSN_N:-200}")
    [ -z "$ibase" ] && ibase=$n
    echo "| $name | $model | $n | $(( n - ibase )) |"
done
} | tee bench/results/router.md
