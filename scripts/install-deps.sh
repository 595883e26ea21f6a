#!/bin/sh
# Installs everything sluice needs to build, test and benchmark on Debian 12.
# Idempotent: skips apt entirely when every package is already present.
set -eu
PKGS="build-essential cmake pkg-config clang clang-format libclang-rt-14-dev \
libevent-dev libcurl4-openssl-dev liblua5.4-dev libjansson-dev libhiredis-dev \
libxxhash-dev zlib1g-dev libssl-dev libcmocka-dev libsqlite3-dev libpcre2-dev \
redis-server nginx-light wrk curl python3 procps node-llhttp"
missing=""
for p in $PKGS; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
if [ -n "$missing" ]; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi
# Node.js (for the openai npm client test) comes from Debian unless the machine already has one.
if ! command -v node >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive ${SUDO:-} apt-get install -y -qq --no-install-recommends nodejs npm
fi
