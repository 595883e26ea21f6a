#!/bin/sh
# Installs the SDK into a scratch prefix, builds examples/hello_plugin out of
# tree with pkg-config only, and checks that the real gateway loads it and
# that its behaviour shows in responses.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PREFIX=$(mktemp -d)
trap 'rm -rf "$PREFIX"' EXIT
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DSANITIZE=none >/dev/null
cmake --build build -j"$(nproc)"
cmake --install build --prefix "$PREFIX" >/dev/null
export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig:$PREFIX/lib/x86_64-linux-gnu/pkgconfig"
make -s -C examples/hello_plugin clean all OUT="$PREFIX/hello_plugin.so"
python3 tests/integration/test_example_plugin.py --build-dir "$ROOT/build" --plugin "$PREFIX/hello_plugin.so"
