"""Time to first streamed byte: median and p99 over N streaming requests per
target, one keep-alive connection per target. Several targets are measured
interleaved (one request to each per round), so that the noise of a shared
machine falls on all of them alike instead of on whichever ran during a
busy second. The order within a round is shuffled (fixed seed): a target
that always follows the same other one was measured up to 25 µs off,
depending on its place.

Usage: ttfb.py N PORT [PORT...]   → one line "median_us p99_us" per port
  TTFB_CLIENT=raw: the clock stops when the first body byte arrives on the
  socket, instead of when http.client has parsed the head and returned it
  (its header parser costs ~4 µs per header, so a proxy that sends two more
  headers than another is measured ~7 µs slower with it).
  TTFB_CLIENT_USAGE=1: the client asks for the usage chunk itself
  (stream_options.include_usage), so the provider does the same work for
  every target (sluice asks for it anyway, for its accounting).
  TTFB_BLOCK=K: each round sends K requests in a row to each target (the
  first 5 of a block not counted), instead of one: the gateway's code and
  data stay in the CPU caches as they do under steady traffic. With one
  request per turn, each target runs after the other targets, the mock,
  the client and the kernel have evicted its working set, which charges a
  process that touches more memory per request (sluice's Lua state) for
  cache misses steady traffic does not have.
  TTFB_PACED_MS=N: the mock sends the head and the first content chunk at
  once and each further chunk N ms later (a provider generating tokens),
  so the first byte is the first chunk alone, not the whole stream.
"""
import http.client
import json
import os
import random
import socket
import statistics
import sys
import time

n = int(sys.argv[1])
ports = [int(p) for p in sys.argv[2:]]
request = {"model": "gpt-4o-mini", "stream": True,
           "messages": [{"role": "user", "content": "hi"}],
           "mock": {"chunks": 3}}
if os.environ.get("TTFB_PACED_MS"):
    request["mock"]["chunk_interval_ms"] = int(os.environ["TTFB_PACED_MS"])
if os.environ.get("TTFB_CLIENT_USAGE") == "1":
    request["stream_options"] = {"include_usage": True}
body = json.dumps(request)
raw = os.environ.get("TTFB_CLIENT") == "raw"


def http_client_ttfb(conn):
    t0 = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    r = conn.getresponse()
    first = r.read1(1)
    t1 = time.perf_counter()
    r.read()
    return (t1 - t0) * 1e6 if first else None


WIRE = ("POST /v1/chat/completions HTTP/1.1\r\nHost: bench\r\nContent-Type: "
        "application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)).encode()


def raw_ttfb(sock):
    """Reads the chunked answer to its end; the time is taken at the first
    recv that holds a byte past the head."""
    t0 = time.perf_counter()
    sock.sendall(WIRE)
    got, t1 = b"", None
    while not got.endswith(b"\r\n0\r\n\r\n"):
        more = sock.recv(65536)
        if not more:
            return None
        got += more
        if t1 is None:
            head_end = got.find(b"\r\n\r\n")
            if head_end >= 0 and len(got) > head_end + 4:
                t1 = time.perf_counter()
    return (t1 - t0) * 1e6


if raw:
    conns = [socket.create_connection(("127.0.0.1", p), timeout=10) for p in ports]
    for s in conns:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    measure = raw_ttfb
else:
    conns = [http.client.HTTPConnection("127.0.0.1", p, timeout=10) for p in ports]
    measure = http_client_ttfb
samples = [[] for _ in ports]
rng = random.Random(1)
order = list(range(len(ports)))
block = int(os.environ.get("TTFB_BLOCK", "1"))
skip = 5 if block > 5 else 0  # each block's warm-up
for i in range(max(1, n // block)):
    rng.shuffle(order)
    for k in order:
        for j in range(block):
            us = measure(conns[k])
            if us is not None and i * block + j >= 10 and j >= skip:
                samples[k].append(us)
for s in samples:
    s.sort()
    print("%.0f %.0f" % (statistics.median(s), s[int(len(s) * 0.99) - 1]))
