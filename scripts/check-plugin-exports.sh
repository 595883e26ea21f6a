#!/bin/sh
# Checks that every built plugin exports exactly one symbol,
# sluice_plugin_v1: anything else a plugin exports can collide with the
# core or another plugin, and means it was not built with hidden visibility.
#
# usage: scripts/check-plugin-exports.sh BUILD_DIR
# Symbols the linker or a sanitizer runtime adds are ignored.
set -u

if [ $# -ne 1 ]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi
plugin_dir="$1/plugins"

found=0
bad=0
for so in "$plugin_dir"/*.so; do
    [ -e "$so" ] || continue
    found=$((found + 1))
    if ! syms=$(nm -D --defined-only "$so" 2>&1); then
        echo "$so: nm failed: $syms" >&2
        bad=$((bad + 1))
        continue
    fi
    # Third column is the name; drop linker and sanitizer symbols.
    names=$(printf '%s\n' "$syms" | awk 'NF >= 3 { print $3 }' |
        grep -Ev '^(_init|_fini|__bss_start|_edata|_end|_DYNAMIC|_GLOBAL_OFFSET_TABLE_)$' |
        grep -Ev '^(__asan|__ubsan|__odr_asan|__sanitizer|__tsan|__lsan)' |
        sed 's/@.*//' | sort -u)
    if [ "$names" != "sluice_plugin_v1" ]; then
        echo "$so: must export exactly sluice_plugin_v1; exports:" >&2
        printf '%s\n' "${names:-(nothing)}" | sed 's/^/    /' >&2
        bad=$((bad + 1))
    fi
done

if [ "$found" -eq 0 ]; then
    echo "$plugin_dir: no plugins found (build them first)" >&2
    exit 1
fi
if [ "$bad" -ne 0 ]; then
    echo "$bad of $found plugins export the wrong symbols" \
        "(build with C_VISIBILITY_PRESET hidden, export via" \
        "SLUICE_PLUGIN_EXPORT)" >&2
    exit 1
fi
echo "$found plugins export exactly sluice_plugin_v1"
