# Shared scaffolding of the bench scripts (sourced, POSIX sh). The caller
# runs from the repository root and has a scratch directory in $TMP.

# A free TCP port on 127.0.0.1.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits until something answers HTTP on the port (the mock, nginx or
# sluice); WAIT_TRIES tenths of a second at most (valgrind needs more).
wait_port() {
    i=0
    until curl -s -o /dev/null "http://127.0.0.1:$1/healthz" 2>/dev/null ||
        curl -s -o /dev/null "http://127.0.0.1:$1/v1/models" 2>/dev/null; do
        i=$((i + 1))
        [ $i -gt "${WAIT_TRIES:-100}" ] && { echo "port $1 never came up" >&2; exit 1; }
        sleep 0.1
    done
}

# run_wrk PORT CONNS [LUA_SCRIPT] -> "rps p50_us p99_us non2xx": wrk for
# $DUR seconds against the chat endpoint; its raw output stays in
# $TMP/wrk.out.
run_wrk() {
    wrk -t1 -c"$2" -d"${DUR}s" --latency -s "${3:-bench/post.lua}" "http://127.0.0.1:$1/v1/chat/completions" > "$TMP/wrk.out" 2>&1
    python3 - "$TMP/wrk.out" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
def us(v, unit): return float(v) * {"us": 1, "ms": 1000, "s": 1e6}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
p = dict((k, us(v, u)) for k, v, u in re.findall(r"\s(50|99)%\s+([\d.]+)(us|ms|s)", t))
errs = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
print("%.0f %.0f %.0f %s" % (rps, p["50"], p["99"], errs.group(1) if errs else "0"))
PY
}

# ttfb_table NAME:PORT... -> a markdown table of time to first streamed
# byte (bench/ttfb.py, $TTFB_N requests per target, targets interleaved in
# shuffled order), measured four ways:
#   paced, warm: the mock paces its chunks 2 ms apart (a provider
#     generating tokens), so the first byte is the head and first chunk
#     alone; each target gets 50 requests in a row (steady traffic: code
#     and data stay in cache); the clock stops when the first body byte is
#     on the socket. This is the issue's scenario.
#   paced, cold: the same, one request per target per turn, so each target
#     runs after the others evicted its working set from the CPU caches.
#   whole stream, warm: no pacing, the mock sends the whole stream at once
#     (sluice then runs the end-of-stream hooks before [DONE] goes out).
#   http.client: paced, warm, the clock stopped when Python's http.client
#     has parsed the head (~4 µs per header, so it also counts header count).
ttfb_table() {
    ports=""
    for t in "$@"; do ports="$ports ${t##*:}"; done
    n=${TTFB_N:-1000}
    TTFB_CLIENT=raw TTFB_PACED_MS=2 TTFB_BLOCK=50 python3 bench/ttfb.py "$n" $ports > "$TMP/ttfb.a"
    TTFB_CLIENT=raw TTFB_PACED_MS=2 python3 bench/ttfb.py "$n" $ports > "$TMP/ttfb.b"
    TTFB_CLIENT=raw TTFB_BLOCK=50 python3 bench/ttfb.py "$n" $ports > "$TMP/ttfb.c"
    TTFB_PACED_MS=2 TTFB_BLOCK=50 python3 bench/ttfb.py "$n" $ports > "$TMP/ttfb.d"
    echo "| target | paced, warm | paced, cold | whole stream, warm | http.client, paced, warm |"
    echo "|---|---|---|---|---|"
    for t in "$@"; do
        set -- $(head -n1 "$TMP/ttfb.a") $(head -n1 "$TMP/ttfb.b") $(head -n1 "$TMP/ttfb.c") $(head -n1 "$TMP/ttfb.d")
        sed -i 1d "$TMP/ttfb.a" "$TMP/ttfb.b" "$TMP/ttfb.c" "$TMP/ttfb.d"
        echo "| ${t%%:*} | $1 / $2 | $3 / $4 | $5 / $6 | $7 / $8 |"
    done
    echo
    echo "Median / p99 µs. Paced: chunks 2 ms apart, first byte = head + first chunk. Warm: 50 requests in a row per target (first 5 not counted). Cold: one request per target per turn. Raw socket unless marked http.client."
}

# ttfb_rounds ROUNDS NAME:PORT... -> the paced medians of ROUNDS more
# bench/ttfb.py runs, warm and cold, one row per run: how far apart two
# runs of the same builds land on this machine, which one table cannot show.
ttfb_rounds() {
    rounds=$1
    shift
    ports=""
    head="| run |"
    rule="|---|"
    for t in "$@"; do
        ports="$ports ${t##*:}"
        head="$head ${t%%:*} |"
        rule="$rule---|"
    done
    n=${TTFB_N:-1000}
    echo "$head"
    echo "$rule"
    for r in $(seq 1 "$rounds"); do
        warm=$(TTFB_CLIENT=raw TTFB_PACED_MS=2 TTFB_BLOCK=50 python3 bench/ttfb.py "$n" $ports | awk '{printf "%s | ", $1}')
        cold=$(TTFB_CLIENT=raw TTFB_PACED_MS=2 python3 bench/ttfb.py "$n" $ports | awk '{printf "%s | ", $1}')
        echo "| $r, paced warm | $warm"
        echo "| $r, paced cold | $cold"
    done
    echo
    echo "Median µs per run ($n requests per target each, raw socket, chunks 2 ms apart)."
}
