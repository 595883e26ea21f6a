"""AIMD against a provider with a hidden capacity: after warm-up it must
sustain >= 90% of that capacity with <= 2% of upstream calls refused with
429. Prints the learned rate over time (quoted in the issue notes)."""
import http.client
import json
import threading
import time

import harness
from harness import check, eq

CAPACITY = 20  # requests per second the mock accepts, unknown to sluice
WARMUP_S = 15
MEASURE_S = 25


def client(port, stop, statuses):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})
    while not stop.is_set():
        try:
            conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            statuses.append(r.status)
        except Exception:
            statuses.append(0)
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.close()


def aimd_rate(h):
    st = h.req("GET", "/admin/status").json()
    for p in st["plugins"]:
        if p["plugin"] == "aimd":
            return p["state"]
    return None


def test_aimd_learns_hidden_capacity(h):
    h.start_mock()
    eq(h.mock_config(capacity_rps=CAPACITY).status, 200)
    h.start_gateway(h.config(retry={"max_attempts": 1}, pipeline=[{"plugin": "aimd", "config": {
        "limit_by": "rate", "initial_rate": 10, "max_rate": 200, "max_wait_ms": 20000}}]))
    stop = threading.Event()
    statuses = []
    threads = [threading.Thread(target=client, args=(h.gw.port, stop, statuses)) for _ in range(8)]
    for t in threads:
        t.start()
    rows = []
    t0 = time.time()
    prev = h.mock_stats()
    marks = {}
    for second in range(1, WARMUP_S + MEASURE_S + 1):
        time.sleep(max(0, t0 + second - time.time()))
        s = h.mock_stats()
        state = aimd_rate(h)
        rows.append((second, state, s["status_2xx"] - prev["status_2xx"],
                     s["rate_limited"] - prev["rate_limited"]))
        prev = s
        if second == WARMUP_S:
            marks["start"] = s
    marks["end"] = prev
    stop.set()
    for t in threads:
        t.join()

    print("\n  t(s) | upstream ok/s | upstream 429/s | aimd state")
    for second, state, ok, limited in rows:
        keys = (state or {}).get("keys", state) if isinstance(state, dict) else state
        print("  %4d | %13d | %14d | %s" % (second, ok, limited, json.dumps(keys)[:110]))
    ok = marks["end"]["status_2xx"] - marks["start"]["status_2xx"]
    limited = marks["end"]["rate_limited"] - marks["start"]["rate_limited"]
    calls = marks["end"]["requests"] - marks["start"]["requests"]
    print("  after warm-up: %.1f ok/s of a hidden %d/s (%.0f%%), %d of %d upstream calls got 429 (%.2f%%)"
          % (ok / MEASURE_S, CAPACITY, 100.0 * ok / MEASURE_S / CAPACITY, limited, calls,
             100.0 * limited / max(1, calls)))
    check(ok / MEASURE_S >= 0.9 * CAPACITY, "sustained %.1f/s" % (ok / MEASURE_S))
    check(limited <= 0.02 * calls, "%d of %d upstream calls refused" % (limited, calls))
    check(0 not in statuses, "no client connection failed")


if __name__ == "__main__":
    harness.main(globals())
