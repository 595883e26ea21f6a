#!/usr/bin/env python3
"""Formats bench_tokens / bench_node.mjs output (JSON lines) as markdown."""
import json
import os
import sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
machine = sys.argv[2] if len(sys.argv) > 2 else ""
try:
    with open("/proc/loadavg") as f:
        machine += ", load average %s at the end of the run" % f.read().split()[0]
except OSError:
    pass
print("# Tokenizer benchmark\n")
print("`bench/tokens/run.sh` (%s, single-threaded, best of 5 runs of >= 0.3 s of CPU time "
      "(thread CPU time for sluice, process CPU time for node), on a machine shared with other builds)\n" % machine)
print("## Throughput, MB/s\n")
print("| input | bytes | encoding | tokens | sluice | npm tiktoken 1.0.22 | ratio |")
print("| --- | ---: | --- | ---: | ---: | ---: | ---: |")
tput = {}
for r in rows:
    if "mb_s" in r:
        tput[(r["impl"], r["encoding"], os.path.basename(r["file"]))] = r
for (impl, enc, f), r in sorted(tput.items(), key=lambda x: (x[0][2], x[0][1])):
    if impl != "sluice":
        continue
    t = tput.get(("tiktoken-npm", enc, f))
    same = "" if not t or t["tokens"] == r["tokens"] else " (token counts differ!)"
    def mbs(v):
        return "%.1f" % v if v >= 1 else "%.3f" % v
    print("| %s | %d | %s | %d | %s | %s | %s |" % (
        f, r["bytes"], enc, r["tokens"], mbs(r["mb_s"]), mbs(t["mb_s"]) if t else "-",
        "%.0fx%s" % (r["mb_s"] / t["mb_s"], same) if t and t["mb_s"] else "-"))
print("\n## 1 MB adversarial inputs (sluice), target < 50 ms\n")
old = {(r["encoding"], r["worst"]): r for r in rows if "worst" in r and r["impl"] == "old"}
names = {"\n": "`\\n` x 1M", " ": "space x 1M"}
if old:
    print("| input | encoding | bytes | tokens | old ms | ms |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
else:
    print("| input | encoding | bytes | tokens | ms |")
    print("| --- | --- | ---: | ---: | ---: |")
for r in rows:
    if "worst" in r and r["impl"] == "sluice":
        w = r["worst"]
        generated = ("random bytes", "random letters", "random CJK", "CJK text, no spaces")
        shown = names.get(w, w if w in generated else "`%s` x %d" % (w, r["bytes"] // len(w.encode())))
        o = old.get((r["encoding"], w))
        cells = [shown, r["encoding"], "%d" % r["bytes"], "%d" % r["tokens"]]
        if old:
            cells.append("%.1f" % o["ms"] if o else "-")
            if o and o["tokens"] != r["tokens"]:
                cells[-1] += " (token counts differ!)"
        cells.append("%.1f" % r["ms"])
        print("| " + " | ".join(cells) + " |")
print("\nFor comparison, npm tiktoken needs about 100 s for 200 KB of `a` "
      "(its merge is quadratic in a piece; measured while building the golden corpus).\n")
for r in rows:
    if "chat_bytes" in r:
        print("## A %d-byte chat request (o200k_base, %d tokens)\n" % (r["chat_bytes"], r["tokens"]))
        print("Exact count with framing: %.1f µs per request; the request decode "
              "(api_request_decode) it adds to: %.1f µs.\n" % (r["count_us"], r["decode_us"]))
for r in rows:
    if "load_ms" in r:
        print("- %s tables built in %.1f ms (once per process, on first use)" % (
            r["encoding"], r["load_ms"]))
