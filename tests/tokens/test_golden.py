#!/usr/bin/env python3
"""Golden test: the C tokenizer gives the same token ids as the npm tiktoken
package for both encodings over the whole corpus (make_corpus.py, >= 5 MB).
The ids are generated here with node, so the corpus may differ between
machines. usage: test_golden.py --build-dir DIR"""
import argparse
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_DIR = os.path.join(HERE, "node")


def ensure_tiktoken():
    if not shutil.which("node") or not shutil.which("npm"):
        sys.exit("node and npm are required (scripts/install-deps.sh installs them)")
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "tiktoken")):
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=NODE_DIR,
                       check=True, timeout=300)


def first_difference(ours, theirs):
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if a != b:
            x, y = a.split(), b.split()
            j = next((k for k in range(1, min(len(x), len(y))) if x[k] != y[k]), 0)
            return "chunk %d: %s tokens vs tiktoken's %s; ids differ from #%d: %s vs %s" % (
                i, x[0], y[0], j - 1, x[j:j + 6], y[j:j + 6])
    return "chunk count %d vs %d" % (len(ours), len(theirs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    args = ap.parse_args()
    ensure_tiktoken()
    work = os.path.join(args.build_dir, "tokens-golden")
    os.makedirs(work, exist_ok=True)
    corpus = os.path.join(work, "corpus.bin")
    subprocess.run([sys.executable, os.path.join(HERE, "make_corpus.py"), corpus], check=True)
    size = os.path.getsize(corpus)
    if size < 5 << 20:
        sys.exit("corpus too small: %d bytes" % size)
    tool = os.path.join(args.build_dir, "tok_tool")
    failed = False
    for enc in ("o200k_base", "cl100k_base"):
        theirs = subprocess.run(["node", os.path.join(NODE_DIR, "golden.mjs"), enc, corpus],
                                capture_output=True, text=True, check=True, timeout=600).stdout
        t = theirs.split("\n")
        tokens = sum(int(line.split()[0]) for line in t if line)
        # The production path, and the heap merge for every piece (it
        # otherwise only serves pieces over 48 bytes).
        for mode in ("chunks", "heap"):
            ours = subprocess.run([tool, mode, enc, corpus], capture_output=True, text=True,
                                  check=True, timeout=600).stdout
            o = ours.split("\n")
            if t == o:
                print("%s (%s): %d chunks, %d bytes, %d tokens: identical ids" % (
                    enc, mode, len(t) - 1, size, tokens))
            else:
                failed = True
                print("%s (%s): MISMATCH: %s" % (enc, mode, first_difference(o, t)))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
