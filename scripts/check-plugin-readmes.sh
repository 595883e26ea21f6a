#!/bin/sh
# Checks that each plugin's README.md mentions every config key its
# sluice_cfg_field table declares, so the docs cannot fall behind the code.
#
# usage: scripts/check-plugin-readmes.sh [SOURCE_DIR]   (default: the repo)
#
# Keys are read from the initialisers of `struct sluice_cfg_field ... = {`
# tables in plugins/*/*.c, written either as `.name = "key"` (preferred,
# see plugins/noop/noop.c) or positionally as `{ "key", SLUICE_CFG_...`.
# A key counts as documented when README.md has it as a whole word.
set -u

src="${1:-$(dirname "$0")/..}"

# Prints the keys declared in the config tables of file $1, one a line.
table_keys() {
    # Join each table (from its declaration to the closing `};`) into one
    # line, so entries that clang-format wrapped still match.
    awk '
        /struct[ \t]+sluice_cfg_field[^;(]*=/ { in_table = 1; text = "" }
        in_table { text = text " " $0 }
        in_table && /^[ \t]*}[ \t]*;/ { print text; in_table = 0 }
    ' "$1" |
        grep -oE '(\.name[[:space:]]*=[[:space:]]*"[^"]*"|\{[[:space:]]*"[^"]*"[[:space:]]*,[[:space:]]*SLUICE_CFG_)' |
        sed -E 's/^[^"]*"([^"]*)".*$/\1/'
}

status=0
checked=0
for dir in "$src"/plugins/*/; do
    dir="${dir%/}"
    tables=$(grep -lE 'struct[[:space:]]+sluice_cfg_field[^;(]*=' \
        "$dir"/*.c 2>/dev/null) || continue
    checked=$((checked + 1))
    keys=$(for c in $tables; do table_keys "$c"; done | sort -u)
    if [ -z "$keys" ]; then
        echo "$dir: declares a config table but no key matched;" \
            "write entries as .name = \"key\"" >&2
        status=1
        continue
    fi
    readme="$dir/README.md"
    if [ ! -f "$readme" ]; then
        echo "$readme: missing (it must document keys:" $keys ")" >&2
        status=1
        continue
    fi
    missing=""
    for key in $keys; do
        grep -qwF -- "$key" "$readme" || missing="$missing $key"
    done
    if [ -n "$missing" ]; then
        echo "$readme: config keys not documented:$missing" >&2
        status=1
    fi
done

if [ "$status" -eq 0 ]; then
    echo "$checked plugins with config tables; every key is in its README"
fi
exit "$status"
