#!/bin/sh
# Tokenizer benchmark, one run, same machine: sluice's C tokenizer beside the
# npm tiktoken package (WASM) on English prose, C code and CJK text (taken
# from the machine, make_inputs.py), both encodings, single-threaded; 1 MB
# adversarial inputs (runs of one character or pattern, random bytes, random
# letters and CJK with no space, CJK text without spaces); the cost of
# counting a 2 KB chat request. Results: bench/results/tokens.md
#   bench/tokens/run.sh        (BUILD_DIR=dir to use another release build,
#                               OLD_BENCH=path/bench_tokens for an old column)
set -eu
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
BUILD=${BUILD_DIR:-build}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DSANITIZE=none >/dev/null
cmake --build "$BUILD" -j2 --target bench_tokens >/dev/null
NODE_DIR=$ROOT/tests/tokens/node
[ -d "$NODE_DIR/node_modules/tiktoken" ] ||
    (cd "$NODE_DIR" && npm install --no-audit --no-fund --silent)
python3 bench/tokens/make_inputs.py "$TMP"
FILES="$TMP/english.txt $TMP/code.txt $TMP/cjk.txt $TMP/a_20k.txt"
{
    for enc in o200k_base cl100k_base; do
        "$BUILD/bench_tokens" $enc $FILES | sed 's/^{/{"impl":"sluice",/'
        TIKTOKEN_DIR=$NODE_DIR/node_modules node bench/tokens/bench_node.mjs $enc $FILES |
            sed 's/^{/{"impl":"tiktoken-npm",/'
        "$BUILD/bench_tokens" --worst $enc "$TMP/cjk.txt" | sed 's/^{/{"impl":"sluice",/'
        # OLD_BENCH: a bench_tokens built from an earlier commit, for an
        # old/new column measured in the same run.
        if [ -n "${OLD_BENCH:-}" ]; then
            "$OLD_BENCH" --worst $enc "$TMP/cjk.txt" | sed 's/^{/{"impl":"old",/'
        fi
    done
    "$BUILD/bench_tokens" --chat "$TMP/chat2k.json" | sed 's/^{/{"impl":"sluice",/'
} > bench/results/tokens.jsonl
python3 bench/tokens/report.py bench/results/tokens.jsonl "$(nproc) cores, $(uname -m)" \
    > bench/results/tokens.md
cat bench/results/tokens.md
