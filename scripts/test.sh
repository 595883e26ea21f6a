#!/bin/sh
# The whole test suite, as CI runs it (.ci/run calls exactly this):
#   1. dependencies (apt, idempotent)
#   2. format check
#   3. ASan+UBSan build: unit, ABI, integration tests (real binary + mock)
#   4. TSan build: the concurrency-labelled tests
#   5. clang libFuzzer build: each fuzz target for a short timed run
#   6. the SDK installed to a prefix, the out-of-tree example plugin built
#      against it with pkg-config and loaded by the real gateway
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
JOBS=$(nproc 2>/dev/null || echo 2)

step() { printf '\n=== %s ===\n' "$*"; }

step "dependencies"
./scripts/install-deps.sh

step "format check"
./scripts/format.sh --check

step "ASan+UBSan build and tests"
cmake -S . -B build-asan -DSANITIZE=address -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-asan -j"$JOBS"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build-asan && ctest --output-on-failure -j"$JOBS" -LE fuzz)

step "TSan build: concurrency tests"
cmake -S . -B build-tsan -DSANITIZE=thread -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-tsan -j"$JOBS"
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
(cd build-tsan && ctest --output-on-failure -L concurrency)

step "fuzz smoke (libFuzzer)"
CC=clang cmake -S . -B build-fuzz -DSANITIZE=none -DCMAKE_BUILD_TYPE=Debug >/dev/null
# Only the fuzz targets: the rest of the tree was already built twice.
FUZZERS=$(grep -hoE '(add_executable|sluice_http_fuzzer)\(fuzz_[a-z_]*' tests/fuzz/*.cmake | sed 's/.*(//' | sort -u)
cmake --build build-fuzz -j"$JOBS" --target $FUZZERS
(cd build-fuzz && ctest --output-on-failure -L fuzz)

step "SDK install + out-of-tree plugin"
./scripts/test-sdk-install.sh

printf '\nall tests passed\n'
