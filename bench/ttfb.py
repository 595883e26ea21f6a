"""Time to first streamed byte: median and p99 over N streaming requests per
target, one keep-alive connection per target. Several targets are measured
interleaved (one request to each per round), so that the noise of a shared
machine falls on all of them alike instead of on whichever ran during a
busy second. The order within a round is shuffled (fixed seed): a target
that always follows the same other one was measured up to 25 µs off,
depending on its place.

Usage: ttfb.py N PORT [PORT...]   → one line "median_us p99_us" per port
  TTFB_CLIENT_USAGE=1: the client asks for the usage chunk itself
  (stream_options.include_usage), so the provider does the same work for
  every target (sluice asks for it anyway, for its accounting).
"""
import http.client
import json
import os
import random
import statistics
import sys
import time

n = int(sys.argv[1])
ports = [int(p) for p in sys.argv[2:]]
request = {"model": "gpt-4o-mini", "stream": True,
           "messages": [{"role": "user", "content": "hi"}],
           "mock": {"chunks": 3}}
if os.environ.get("TTFB_CLIENT_USAGE") == "1":
    request["stream_options"] = {"include_usage": True}
body = json.dumps(request)
conns = [http.client.HTTPConnection("127.0.0.1", p, timeout=10) for p in ports]
samples = [[] for _ in ports]
rng = random.Random(1)
order = list(range(len(ports)))
for i in range(n):
    rng.shuffle(order)
    for k in order:
        conn = conns[k]
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
