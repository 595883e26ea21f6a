#!/bin/sh
# Checks that libsluice_testing.a (the SDK's fake host) defines only
# sluice_-prefixed global symbols: it is linked into plugin test binaries,
# where any other name could collide with the plugin's own.
#
# usage: scripts/check-testing-exports.sh path/to/libsluice_testing.a
# Symbols a sanitizer adds are ignored.
set -u

if [ $# -ne 1 ]; then
    echo "usage: $0 libsluice_testing.a" >&2
    exit 2
fi
if ! syms=$(nm -g --defined-only "$1" 2>&1); then
    echo "$1: nm failed: $syms" >&2
    exit 1
fi
names=$(printf '%s\n' "$syms" | awk 'NF >= 3 { print $3 }' |
    grep -Ev '^(__asan|__ubsan|__odr_asan|__sanitizer|__tsan|__lsan|___asan)' |
    sort -u)
if [ -z "$names" ]; then
    echo "$1: defines no global symbols" >&2
    exit 1
fi
bad=$(printf '%s\n' "$names" | grep -v '^sluice_' || true)
if [ -n "$bad" ]; then
    echo "$1: global symbols without the sluice_ prefix:" >&2
    printf '%s\n' "$bad" | sed 's/^/    /' >&2
    exit 1
fi
echo "$1: $(printf '%s\n' "$names" | wc -l) global symbols, all sluice_*"
