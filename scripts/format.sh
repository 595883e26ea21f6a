#!/bin/sh
# clang-format over the project's own C sources. --check fails on any diff.
set -eu
cd "$(dirname "$0")/.."
FILES=$(git ls-files '*.c' '*.h' 2>/dev/null || find core sdk plugins tests examples -name '*.[ch]')
if [ "${1:-}" = "--check" ]; then
    clang-format --dry-run -Werror $FILES
    echo "format: ok"
else
    clang-format -i $FILES
fi
