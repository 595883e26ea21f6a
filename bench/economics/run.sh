#!/bin/sh
# Economics report: one replayed mixed workload (gen_workload.py, seed 12,
# 600 requests, 16 clients) sent
#   1. direct to the "big" mock as the app wrote it (every request gpt-4o)
#   2. through sluice: model "auto" -> policies/complexity_router.lua ->
#      router aliases fast = gpt-4o-mini (small mock), smart = gpt-4o (big)
#   3. the same + the exact cache (tenant scope)
#   4. the same + cost_tracker with a monthly budget on the runaway tenant
#      ($0.10, downgrade gpt-4o -> gpt-4o-mini at 50 %, refused at 100 %)
# Spend (priced from usage with plugins/cost_tracker/prices/openai.json),
# p50/p99 latency and upstream calls side by side: bench/results/economics.md
#   bench/economics/run.sh        BUILD=/path/to/release-build (default build/)
# The names clients send (auto, and the aliases) are listed in an
# upstream's models: the core answers 404 for a model no upstream lists,
# before the policy and the router run.
# The mocks answer after a fixed delay: big 200 ms, small 60 ms (a stand-in
# for a large and a small model; real providers also scale with length).
set -eu
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) BDIR=$BUILD ;; *) BDIR=$ROOT/$BUILD ;; esac
N=${ECON_N:-600}
CONC=${ECON_CONC:-16}
TMP=$(mktemp -d)
if [ -z "${BENCH_NO_BUILD:-}" ]; then
    cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DSANITIZE=none >/dev/null
    cmake --build "$BUILD" -j2 --target sluice sluice-mock router cache cost_tracker >/dev/null
fi
cleanup() { [ -f "$TMP/pids" ] && kill $(cat "$TMP/pids") 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM

. bench/lib.sh # free_port, wait_port, run_wrk
start_mock() { # latency_ms -> port
    port=$(free_port)
    "$BDIR/sluice-mock" --listen 127.0.0.1:$port --quiet --latency-ms "$1" >/dev/null 2>&1 &
    echo $! >> "$TMP/pids"
    wait_port $port
    echo $port
}
calls() { curl -s "http://127.0.0.1:$1/mock/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["chat_completions"])'; }

BIG=$(start_mock 200)
SMALL=$(start_mock 60)
python3 bench/economics/gen_workload.py --n "$N" --seed 12 > "$TMP/workload.jsonl"
PRICES=plugins/cost_tracker/prices/openai.json
key() { printf %s "sk-econ-$1" | sha256sum | cut -d' ' -f1; }

start_sluice() { # name pipeline-json -> port
    port=$(free_port)
    cat > "$TMP/$1.json" <<CFG
{"listen": "127.0.0.1:$port", "workers": 2,
 "auth": {"enabled": true, "keys": [
   {"sha256": "$(key acme)", "tenant": "acme"},
   {"sha256": "$(key globex)", "tenant": "globex"},
   {"sha256": "$(key runaway)", "tenant": "runaway"}]},
 "upstreams": [
   {"name": "big", "base_url": "http://127.0.0.1:$BIG/v1", "models": ["gpt-4o", "gpt-4.1", "auto", "smart"], "max_connections": 64},
   {"name": "small", "base_url": "http://127.0.0.1:$SMALL/v1", "models": ["gpt-4o-mini", "gpt-4.1-mini", "fast"], "max_connections": 64}],
 "policy": {"script": "$ROOT/policies/complexity_router.lua"},
 "plugin_dir": "$BDIR/plugins", "pipeline": $2,
 "log": {"level": "warn", "access_log": ""}}
CFG
    "$BDIR/sluice" serve -c "$TMP/$1.json" >/dev/null 2>"$TMP/$1.log" &
    echo $! >> "$TMP/pids"
    wait_port $port
    echo $port
}
ROUTER='{"plugin": "router", "config": {"aliases": {"fast": "gpt-4o-mini", "smart": "gpt-4o"}}}'
CACHE='{"plugin": "cache", "config": {"scope": "tenant"}}'
COST='{"plugin": "cost_tracker", "config": {"ledger_path": "", "downgrade": {"gpt-4o": "gpt-4o-mini"},
  "budgets": [{"name": "runaway-month", "scope": "tenant", "match": "runaway", "period": "monthly",
               "limit_usd": "0.10", "downgrade_at": 50}]}}'

run() { # name port mode -> one JSON line with upstream calls added
    b=$(calls $BIG); s=$(calls $SMALL)
    python3 bench/economics/replay.py --port "$2" --mode "$3" --conc "$CONC" --prices "$PRICES" "$TMP/workload.jsonl" > "$TMP/$1.out"
    python3 - "$TMP/$1.out" "$1" $(( $(calls $BIG) - b )) $(( $(calls $SMALL) - s )) <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); d.update(name=sys.argv[2], calls_big=int(sys.argv[3]), calls_small=int(sys.argv[4]))
print(json.dumps(d))
PY
}

run direct "$BIG" direct > "$TMP/all.jsonl"
run routing "$(start_sluice routing "[$ROUTER]")" gateway >> "$TMP/all.jsonl"
run routing+cache "$(start_sluice cache "[$CACHE, $ROUTER]")" gateway >> "$TMP/all.jsonl"
run routing+cache+budget "$(start_sluice budget "[$CACHE, $ROUTER, $COST]")" gateway >> "$TMP/all.jsonl"

mkdir -p bench/results
python3 - "$TMP/all.jsonl" "$N" "$CONC" "$(nproc)" <<'PY' | tee bench/results/economics.md
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("# Economics: one mixed workload direct and through sluice")
print()
print("%s requests (bench/economics/gen_workload.py --seed 12), %s clients, %s cores; mocks: big 200 ms "
      "(gpt-4o), small 60 ms (gpt-4o-mini). Spend from usage at plugins/cost_tracker/prices/openai.json." %
      (sys.argv[2], sys.argv[3], sys.argv[4]))
print()
print("| run | spend USD | runaway tenant USD | upstream calls (big + small) | cache hits | p50 ms | p99 ms | p50 easy / hard ms | statuses | wall s |")
print("|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    print("| %s | %s | %s | %d (%d + %d) | %d | %.0f | %.0f | %.0f / %.0f | %s | %.1f |" % (
        r["name"], r["spend_usd"], r["spend_by_tenant"].get("runaway", "0"), r["calls_big"] + r["calls_small"],
        r["calls_big"], r["calls_small"], r["cache_hits"], r["p50_ms"], r["p99_ms"], r["p50_easy_ms"],
        r["p50_hard_ms"], " ".join("%s:%d" % kv for kv in sorted(r["statuses"].items())), r["wall_s"]))
print()
print("Answers by upstream model (requests the upstream served):")
print()
for r in rows:
    print("- %s: %s%s" % (r["name"], ", ".join("%s %d" % kv for kv in sorted(r["upstream_answers_by_model"].items())),
                          ("; gateway x-sluice-cost total %s USD" % r["gateway_cost_header_usd"])
                          if r["gateway_cost_header_usd"] != "0.000000" else ""))
errs = {r["name"]: r["errors"] for r in rows if r["errors"]}
if errs:
    print()
    print("Error codes: " + "; ".join("%s: %s" % (k, ", ".join(v)) for k, v in errs.items()))
PY
