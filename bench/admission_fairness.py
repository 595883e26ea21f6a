"""One tenant's flood and another tenant's trickle through admission
(issue 8 item 3): max_concurrency 2, max_queue 20, a 200 ms upstream, the
big tenant at 20 req/s and the small one at 2 req/s, both at the same
priority, open loop for 12 s. Prints what each tenant got. Before the fair
share fix the small tenant had 14 of its 24 requests refused (queue_full).

Usage: python3 bench/admission_fairness.py [--build-dir build]
"""
import argparse
import collections
import hashlib
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import harness  # noqa: E402

KEYS = {"big": "sk-bench-big-tenant", "small": "sk-bench-small-tenant"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default=os.path.join(HERE, "..", "build"))
    args = ap.parse_args()
    h = harness.Harness(args.build_dir)
    try:
        h.start_mock("--latency-ms", "200")
        keys = [{"sha256": hashlib.sha256(v.encode()).hexdigest(), "tenant": k} for k, v in KEYS.items()]
        h.start_gateway(h.config(
            auth={"enabled": True, "keys": keys},
            pipeline=[{"plugin": "admission", "config": {
                "max_concurrency": 2, "max_queue": 20, "queue_timeout_ms": 30000}}]))
        got = collections.Counter()
        lock = threading.Lock()
        threads = []

        def one(tenant):
            try:
                r = h.chat("x", headers={"Authorization": "Bearer " + KEYS[tenant]})
                what = "200" if r.status == 200 else "%d %s" % (r.status, r.json()["error"]["code"])
            except Exception as e:  # counted, not hidden
                what = type(e).__name__
            with lock:
                got[(tenant, what)] += 1

        t0 = time.time()
        for n in range(240):  # 20 req/s for 12 s; every 10th tick the small tenant too
            time.sleep(max(0.0, t0 + n / 20.0 - time.time()))
            for tenant in (["big", "small"] if n % 10 == 0 else ["big"]):
                t = threading.Thread(target=one, args=(tenant,))
                t.start()
                threads.append(t)
        for t in threads:
            t.join(120)
        for (tenant, what), count in sorted(got.items()):
            print("%-6s %-18s %d" % (tenant, what, count))
    finally:
        h.close()


if __name__ == "__main__":
    main()
