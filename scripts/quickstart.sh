#!/bin/sh
# Installs dependencies, builds sluice, starts the bundled mock provider and
# the gateway with the bundled default config, and prints a request to try.
# With OPENAI_API_KEY set, the default config sends gpt-* models to OpenAI;
# without it, everything goes to the mock, offline.
#   scripts/quickstart.sh          start (in the background)
#   scripts/quickstart.sh stop     stop both
set -eu
cd "$(dirname "$0")/.."
RUN=.run
mkdir -p "$RUN"

stop() {
    for p in sluice mock; do
        if [ -f "$RUN/$p.pid" ]; then
            kill "$(cat "$RUN/$p.pid")" 2>/dev/null || true
            rm -f "$RUN/$p.pid"
        fi
    done
}
if [ "${1:-}" = "stop" ]; then stop; echo "stopped"; exit 0; fi

./scripts/install-deps.sh
echo "building (log: $RUN/build.log) ..."
if ! { cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DSANITIZE=none &&
       cmake --build build -j"$(nproc)"; } >"$RUN/build.log" 2>&1; then
    cat "$RUN/build.log" >&2
    exit 1
fi
stop

./build/sluice-mock --listen 127.0.0.1:9099 --quiet >"$RUN/mock.log" 2>&1 &
echo $! >"$RUN/mock.pid"
./build/sluice serve -c config/sluice.json >"$RUN/sluice.log" 2>&1 &
echo $! >"$RUN/sluice.pid"

i=0
until curl -sf http://127.0.0.1:8080/healthz >/dev/null 2>&1; do
    i=$((i + 1))
    if [ $i -gt 100 ]; then
        echo "sluice did not start; see $RUN/sluice.log:" >&2
        cat "$RUN/sluice.log" >&2
        exit 1
    fi
    sleep 0.1
done

cat <<'MSG'
sluice is running on http://127.0.0.1:8080 (logs in .run/, stop with scripts/quickstart.sh stop)
Try:
  curl -s http://127.0.0.1:8080/v1/chat/completions -H 'Content-Type: application/json' \
    -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello!"}]}'
MSG
