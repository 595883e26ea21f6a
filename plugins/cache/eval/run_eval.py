#!/usr/bin/env python3
"""Scores the cache's semantic decision on the labelled pairs (pairs.jsonl)
with the bundled mock provider's embeddings: for each threshold, precision
and recall of "serve b's question from a's answer", with the guard
(cache_guard_cli, the plugin's own guard code) and without it. Exits 1 when
any near-miss would be served at the default settings (0.95 + guard).

    python3 plugins/cache/eval/run_eval.py --build-dir build [--dimensions 256]
"""
import argparse
import json
import math
import os
import re
import subprocess
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
THRESHOLDS = [0.80, 0.85, 0.90, 0.93, 0.95, 0.97, 0.99]
DEFAULT = 0.95


def start_mock(build):
    p = subprocess.Popen([os.path.join(build, "sluice-mock"), "--listen", "127.0.0.1:0", "--quiet"],
                         stdout=subprocess.PIPE, text=True)
    m = re.search(r":(\d+)", p.stdout.readline())
    return p, int(m.group(1))


def embed(port, texts, dims):
    body = json.dumps({"model": "text-embedding-3-small", "input": texts,
                       "dimensions": dims}).encode()
    req = urllib.request.Request("http://127.0.0.1:%d/v1/embeddings" % port, body,
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        data = json.load(r)["data"]
    return [d["embedding"] for d in sorted(data, key=lambda d: d["index"])]


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def guard(build, pairs):
    lines = "".join("%s\t%s\n" % (p["a"], p["b"]) for p in pairs)
    out = subprocess.run([os.path.join(build, "plugins", "cache", "cache_guard_cli")],
                         input=lines, capture_output=True, text=True, check=True).stdout
    return out.split()


def score(pairs, sims, verdicts, t, use_guard):
    tp = fp = 0
    for p, s, v in zip(pairs, sims, verdicts):
        served = s >= t and (v == "agree" or not use_guard)
        if served and p["label"] == "hit":
            tp += 1
        elif served:
            fp += 1
    pos = sum(p["label"] == "hit" for p in pairs)
    prec = tp / (tp + fp) if tp + fp else 1.0
    return prec, tp / pos, fp


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--dimensions", type=int, default=256)
    args = ap.parse_args()
    pairs = [json.loads(l) for l in open(os.path.join(HERE, "pairs.jsonl"))]
    mock, port = start_mock(args.build_dir)
    try:
        texts = sorted({p["a"] for p in pairs} | {p["b"] for p in pairs})
        vecs = dict(zip(texts, embed(port, texts, args.dimensions)))
    finally:
        mock.terminate()
        mock.wait()
    sims = [cosine(vecs[p["a"]], vecs[p["b"]]) for p in pairs]
    verdicts = guard(args.build_dir, pairs)
    pos = sum(p["label"] == "hit" for p in pairs)
    print("%d pairs (%d paraphrases, %d near-misses), mock embeddings, %d dimensions"
          % (len(pairs), pos, len(pairs) - pos, args.dimensions))
    print("| threshold | precision (guard) | recall (guard) | near-miss hits (guard) "
          "| precision (no guard) | recall (no guard) | near-miss hits (no guard) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for t in THRESHOLDS:
        g, n = score(pairs, sims, verdicts, t, True), score(pairs, sims, verdicts, t, False)
        print("| %.2f%s | %.3f | %.3f | %d | %.3f | %.3f | %d |"
              % (t, " (default)" if t == DEFAULT else "", g[0], g[1], g[2], n[0], n[1], n[2]))
    # Where the guard refuses paraphrases, and which near-misses pass it.
    refused = {}
    for p, v in zip(pairs, verdicts):
        if p["label"] == "hit" and v != "agree":
            refused[p["kind"]] = refused.get(p["kind"], 0) + 1
    print("paraphrases the guard refuses, by kind:", refused or "none")
    slipped = [(p["kind"], p["a"], p["b"], "%.3f" % s) for p, s, v in zip(pairs, sims, verdicts)
               if p["label"] == "miss" and v == "agree"]
    print("near-misses the guard lets through (similarity decides):", len(slipped))
    for row in slipped:
        print("  ", *row)
    bad = score(pairs, sims, verdicts, DEFAULT, True)[2]
    if bad:
        print("FAIL: %d near-miss hits at the defaults" % bad)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
