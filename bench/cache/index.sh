#!/bin/sh
# The semantic index at full size, one cell at a time (each builds its own
# graph; 1M x 256 takes tens of minutes on a loaded 2-core machine):
#   bench/cache/index.sh [BUILD_DIR] [CELLS...]      cells are N:DIM
#   e.g. bench/cache/index.sh build 10000:256 100000:256 1000000:256
# Env: DATA=clustered|latent|uniform (the generator, see draw() in
# bench_cache_lookup.c), EF=32,64,128 (ef_search values measured on each
# graph), BENCH_NO_BUILD=1 (use BUILD_DIR as is), HNSWLIB=1 (also run
# hnswlib_compare.cpp on the same data: needs libhnswlib-dev and g++).
# Rows are appended to stdout; bench/results/cache-index.md holds a run.
set -eu
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
[ $# -gt 0 ] && shift
CELLS=${*:-10000:256 100000:256 10000:1536 100000:1536 1000000:256}
if [ -z "${BENCH_NO_BUILD:-}" ]; then
    cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DSANITIZE=none >/dev/null
    cmake --build "$BUILD" -j2 --target bench_cache_lookup >/dev/null
fi
export EF=${EF:-32,64,128}
"$BUILD"/plugins/cache/bench_cache_lookup semantic-header
for cell in $CELLS; do
    "$BUILD"/plugins/cache/bench_cache_lookup semantic "${cell%%:*}" "${cell##*:}"
    if [ -n "${HNSWLIB:-}" ]; then
        g++ -O3 -mavx2 -mfma -o "$BUILD/hnswlib_compare" bench/cache/hnswlib_compare.cpp
        "$BUILD/hnswlib_compare" "${cell%%:*}" "${cell##*:}" "${DATA:-clustered}"
    fi
done
