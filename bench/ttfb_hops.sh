#!/bin/sh
# Where a streamed request's time to first byte goes, hop by hop, for nginx
# and one sluice build side by side: loopback is captured with tcpdump
# (apt install tcpdump; run as root) while bench/ttfb.py sends N streamed
# requests to each, interleaved; bench/ttfb_hops.py then splits every
# request into client -> proxy -> provider -> proxy -> client.
#   bench/ttfb_hops.sh BUILD [N]
# BUILD needs sluice and sluice-mock (a Release build).
set -eu
cd "$(dirname "$0")/.."
BUILD=$(cd "$1" && pwd)
N=${2:-300}
TMP=$(mktemp -d)
cleanup() { [ -f "$TMP/pids" ] && kill $(cat "$TMP/pids") 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM
. bench/lib.sh # free_port, wait_port, run_wrk

MOCK=$(free_port)
"$BUILD/sluice-mock" --listen 127.0.0.1:$MOCK --quiet >/dev/null 2>&1 &
echo $! >> "$TMP/pids"
NGINX=$(free_port)
sed -e "s|@DIR@|$TMP|g" -e "s|@MOCK_PORT@|$MOCK|g" -e "s|@PORT@|$NGINX|g" bench/nginx.conf.in > "$TMP/nginx.conf"
nginx -c "$TMP/nginx.conf" -p "$TMP" >/dev/null 2>&1 &
echo $! >> "$TMP/pids"
SLUICE=$(free_port)
cat > "$TMP/sluice.json" <<CFG
{"listen": "127.0.0.1:$SLUICE", "workers": 1,
 "upstreams": [{"name": "mock", "base_url": "http://127.0.0.1:$MOCK/v1", "models": ["*"], "max_connections": 128}],
 "plugin_dir": "$BUILD/plugins", "pipeline": [], "log": {"level": "warn", "access_log": ""}}
CFG
"$BUILD/sluice" serve -c "$TMP/sluice.json" >/dev/null 2>"$TMP/sluice.log" &
echo $! >> "$TMP/pids"
wait_port $MOCK
wait_port $NGINX
wait_port $SLUICE

python3 bench/ttfb.py 20 $NGINX $SLUICE >/dev/null # warm both pools
tcpdump -i lo -n -w "$TMP/cap.pcap" "tcp port $MOCK or tcp port $NGINX or tcp port $SLUICE" >/dev/null 2>&1 &
DUMP=$!
sleep 1
echo "TTFB median / p99 µs as the client sees it: nginx, then sluice"
python3 bench/ttfb.py "$N" $NGINX $SLUICE
sleep 0.5
kill $DUMP
wait $DUMP 2>/dev/null || true
python3 bench/ttfb_hops.py "$TMP/cap.pcap" $MOCK nginx:$NGINX sluice:$SLUICE
