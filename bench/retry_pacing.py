"""Retries against a rate-limited provider (issue 8 item 1): the mock has a
hidden capacity of 20 req/s, sluice runs the aimd plugin (limit_by: rate,
initial_rate 10, max_rate 200, max_queue 200, max_wait_ms 1000) with the
default retry settings, and clients offer 50 req/s (open loop) for the run.
Prints how many provider calls were 429s and what the clients got.

Usage: python3 bench/retry_pacing.py [--build-dir build] [--seconds 30]
       [--rate 50] [--max-attempts N]   (N omitted: the default retry)
"""
import argparse
import collections
import http.client
import json
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import harness  # noqa: E402

BODY = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})


def one(port, statuses, lock):
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("POST", "/v1/chat/completions", BODY, {"Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        status = r.status
        conn.close()
    except Exception:
        status = 0
    with lock:
        statuses[status] += 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--rate", type=float, default=50)
    ap.add_argument("--capacity", type=int, default=20)
    ap.add_argument("--max-attempts", type=int, default=0)
    ap.add_argument("--no-provider-headers", action="store_true",
                    help="aimd learns from 429s only (use_provider_headers: false)")
    args = ap.parse_args()

    h = harness.Harness(os.path.abspath(args.build_dir))
    try:
        h.start_mock()
        h.mock_config(capacity_rps=args.capacity)
        over = {"pipeline": [{"plugin": "aimd", "config": {
            "limit_by": "rate", "initial_rate": 10, "max_rate": 200,
            "max_queue": 200, "max_wait_ms": 1000,
            "use_provider_headers": not args.no_provider_headers}}]}
        if args.max_attempts:
            over["retry"] = {"max_attempts": args.max_attempts}
        h.start_gateway(h.config(**over))
        statuses = collections.Counter()
        lock = threading.Lock()
        threads = []
        before = h.mock_stats()
        t0 = time.time()
        n = int(args.seconds * args.rate)
        for i in range(n):  # open loop: one request every 1/rate s
            time.sleep(max(0, t0 + i / args.rate - time.time()))
            t = threading.Thread(target=one, args=(h.gw.port, statuses, lock), daemon=True)
            t.start()
            threads.append(t)
        for t in threads:
            t.join(90)
        after = h.mock_stats()
        calls = after["requests"] - before["requests"]
        limited = after["rate_limited"] - before["rate_limited"]
        ok = after["status_2xx"] - before["status_2xx"]
        m = h.metrics()
        retries = sum(v for k, v in m.items() if k.startswith("sluice_upstream_retries_total"))
        print("offered %d req at %.0f/s for %.0f s, retry %s" % (
            n, args.rate, args.seconds,
            "max_attempts=%d" % args.max_attempts if args.max_attempts else "default"))
        print("provider calls %d, 2xx %d (%.1f/s), 429 %d = %.2f%% of calls; gateway retries %d" % (
            calls, ok, ok / args.seconds, limited, 100.0 * limited / max(1, calls), retries))
        print("client statuses: %s" % dict(sorted(statuses.items())))
        report = harness.sanitizer_report(h.gw.stderr())
        if report:
            print("gateway sanitizer report:\n" + report)
    finally:
        h.close()


if __name__ == "__main__":
    main()
