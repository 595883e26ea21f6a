"""Time to first streamed byte: median and p99 over N sequential streaming
requests on one keep-alive connection. Usage: ttfb.py PORT N"""
import http.client
import json
import statistics
import sys
import time

port, n = int(sys.argv[1]), int(sys.argv[2])
body = json.dumps({"model": "gpt-4o-mini", "stream": True,
                   "messages": [{"role": "user", "content": "hi"}],
                   "mock": {"chunks": 3}})
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
samples = []
for i in range(n):
    t0 = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    r = conn.getresponse()
    first = r.read1(1) if hasattr(r, "read1") else r.read(1)
    t1 = time.perf_counter()
    r.read()
    if first and i >= 10:  # warm-up
        samples.append((t1 - t0) * 1e6)
samples.sort()
print("%.0f %.0f" % (statistics.median(samples), samples[int(len(samples) * 0.99) - 1]))
