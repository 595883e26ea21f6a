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
# byte (bench/ttfb.py, $TTFB_N requests per target, interleaved), measured
# three ways: by http.client (the head parsed, as an application sees it);
# on the raw socket (when the first body byte arrives, as the issue puts
# it, without the client's header parser); and on the raw socket with the
# client asking for the usage chunk itself, so that the provider sends
# every target the same stream (sluice asks for it on every stream, for
# its accounting, and strips it again).
ttfb_table() {
    ports=""
    for t in "$@"; do ports="$ports ${t##*:}"; done
    python3 bench/ttfb.py "${TTFB_N:-1000}" $ports > "$TMP/ttfb.a"
    TTFB_CLIENT=raw python3 bench/ttfb.py "${TTFB_N:-1000}" $ports > "$TMP/ttfb.b"
    TTFB_CLIENT=raw TTFB_CLIENT_USAGE=1 python3 bench/ttfb.py "${TTFB_N:-1000}" $ports > "$TMP/ttfb.c"
    echo "| target | http.client median / p99 µs | raw socket median / p99 µs | raw socket, client asks for usage, median / p99 µs |"
    echo "|---|---|---|---|"
    for t in "$@"; do
        set -- $(head -n1 "$TMP/ttfb.a") $(head -n1 "$TMP/ttfb.b") $(head -n1 "$TMP/ttfb.c")
        sed -i 1d "$TMP/ttfb.a" "$TMP/ttfb.b" "$TMP/ttfb.c"
        echo "| ${t%%:*} | $1 / $2 | $3 / $4 | $5 / $6 |"
    done
}
