"""Time to first streamed byte: median and p99 over N streaming requests per
target, one keep-alive connection per target. Several targets are measured
interleaved (one request to each in turn), so that the noise of a shared
machine falls on all of them alike instead of on whichever ran during a
busy second.

Usage: ttfb.py N PORT [PORT...]   → one line "median_us p99_us" per port
"""
import http.client
import json
import statistics
import sys
import time

n = int(sys.argv[1])
ports = [int(p) for p in sys.argv[2:]]
body = json.dumps({"model": "gpt-4o-mini", "stream": True,
                   "messages": [{"role": "user", "content": "hi"}],
                   "mock": {"chunks": 3}})
conns = [http.client.HTTPConnection("127.0.0.1", p, timeout=10) for p in ports]
samples = [[] for _ in ports]
for i in range(n):
    for k, conn in enumerate(conns):
        t0 = time.perf_counter()
        conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
        r = conn.getresponse()
        first = r.read1(1) if hasattr(r, "read1") else r.read(1)
        t1 = time.perf_counter()
        r.read()
        if first and i >= 10:  # warm-up
            samples[k].append((t1 - t0) * 1e6)
for s in samples:
    s.sort()
    print("%.0f %.0f" % (statistics.median(s), s[int(len(s) * 0.99) - 1]))
