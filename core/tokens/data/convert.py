#!/usr/bin/env python3
"""Converts the rank files of the npm `tiktoken` package (encoders/<name>.json)
into the compact form embedded in sluice: for every rank 0..N-1 in order, one
length byte followed by the token's bytes. Usage:
  npm pack tiktoken@1.0.22 && tar xzf tiktoken-1.0.22.tgz
  convert.py package/encoders/o200k_base.json o200k_base.bin
"""
import base64
import json
import sys


def main(src, dst):
    with open(src, encoding="utf-8") as f:
        data = json.load(f)
    ranks = {}
    # bpe_ranks: lines of "<unused> <first rank> <b64 token> <b64 token> ..."
    for line in data["bpe_ranks"].split("\n"):
        if not line:
            continue
        parts = line.split(" ")
        first = int(parts[1])
        for i, tok in enumerate(parts[2:]):
            ranks[first + i] = base64.b64decode(tok)
    n = len(ranks)
    if sorted(ranks) != list(range(n)):
        sys.exit("ranks are not contiguous from 0")
    out = bytearray()
    for r in range(n):
        tok = ranks[r]
        if not 0 < len(tok) < 256:
            sys.exit(f"token {r} has length {len(tok)}")
        out.append(len(tok))
        out += tok
    with open(dst, "wb") as f:
        f.write(out)
    print(f"{dst}: {n} ranks, {len(out)} bytes; pattern {json.dumps(data['pat_str'])}")
    print(f"special tokens: {data['special_tokens']}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
