"""Interactive latency while a 10,000-line batch runs inside sluice (issue
13). The mock answers after --latency-ms; sluice runs admission (a cap of
--cap requests in flight to the mock, priorities strict) and the batch
plugin (--concurrency lines in flight). Phase 1 measures interactive chat
requests alone, phase 2 the same load while the batch runs (5% of its
lines fail with 503 every time: retried, then the error file). Prints
p50/p99 of both phases, the batch's duration and rate, and checks that
every line is accounted for exactly once.

Usage: python3 bench/batch/latency.py [--build-dir build] [--lines 10000]
       [--clients 4] [--seconds 15] [--latency-ms 20] [--cap 24]
       [--concurrency 32] [--no-admission] [--fail-every 20] [--poll-ms 50]
"""
import argparse
import http.client
import json
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "integration"))
import harness  # noqa: E402
from batch_util import content, create, jsonl, line, upload, wait  # noqa: E402

BODY = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "interactive"}]})


def load(port, seconds, clients):
    lat, bad = [], [0]
    lock = threading.Lock()
    stop = time.time() + seconds

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while time.time() < stop:
            t0 = time.perf_counter()
            conn.request("POST", "/v1/chat/completions", BODY, {"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            dt = (time.perf_counter() - t0) * 1000
            with lock:
                if r.status == 200:
                    lat.append(dt)
                else:
                    bad[0] += 1

    ts = [threading.Thread(target=client) for _ in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    lat.sort()
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]  # noqa: E731
    return {"n": len(lat), "errors": bad[0], "p50_ms": round(pick(0.5), 2), "p99_ms": round(pick(0.99), 2)}


def cpu_seconds(pid):
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default=os.path.join(HERE, "..", "..", "build"))
    ap.add_argument("--lines", type=int, default=10000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--latency-ms", type=int, default=20)
    ap.add_argument("--cap", type=int, default=24)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--no-admission", action="store_true", help="the batch plugin alone in the pipeline")
    ap.add_argument("--fail-every", type=int, default=20, help="every Nth line fails with 503 (0: none)")
    ap.add_argument("--poll-ms", type=int, default=50,
                    help="how often the batch is polled until it ends (each poll counts its lines)")
    a = ap.parse_args()

    h = harness.Harness(os.path.abspath(a.build_dir))
    try:
        h.start_mock("--latency-ms", str(a.latency_ms), "--threads", "2")
        admission = [] if a.no_admission else [
            {"plugin": "admission", "config": {"max_concurrency": a.cap, "max_queue": 100000,
                                               "queue_timeout_ms": 600000}}]
        h.start_gateway(h.config(pipeline=admission + [
            {"plugin": "batch", "config": {"dir": h.tmp + "/batch", "concurrency": a.concurrency,
                                           "backoff_base": "100ms", "backoff_max": "1s", "max_lines": 100000}},
        ], limits={"max_body_bytes": 64 << 20}))
        gw_cpu0 = cpu_seconds(h.gw.p.pid)
        alone = load(h.gw.port, a.seconds, a.clients)
        gw_cpu_alone = cpu_seconds(h.gw.p.pid) - gw_cpu0

        failing = set(range(0, a.lines, a.fail_every)) if a.fail_every else set()  # 5% by default
        lines = [line("l%05d" % i, mock={"status": 503} if i in failing else None) for i in range(a.lines)]
        r = upload(h, jsonl(lines))
        assert r.status == 200, r.body
        t0 = time.time()
        cpu0 = (cpu_seconds(h.gw.p.pid), cpu_seconds(h.mock.p.pid))
        bid = create(h, r.json()["id"]).json()["id"]
        wait(h, bid, until=("in_progress",))
        time.sleep(1)
        during = load(h.gw.port, a.seconds, a.clients)
        st = json.loads(h.req("GET", "/admin/status").body)
        prog = [p for p in st["plugins"] if p["plugin"] == "batch"][0]["state"]
        while True:
            b = h.req("GET", "/v1/batches/" + bid).json()
            if b["status"] in ("completed", "failed", "expired", "cancelled"):
                break
            time.sleep(a.poll_ms / 1000.0)
        took = time.time() - t0
        cpu = (cpu_seconds(h.gw.p.pid) - cpu0[0], cpu_seconds(h.mock.p.pid) - cpu0[1])
        out, err = content(h, b["output_file_id"]), content(h, b["error_file_id"])
        ids = sorted([x["custom_id"] for x in out] + [x["custom_id"] for x in err])
        assert ids == ["l%05d" % i for i in range(a.lines)], "a line missing or repeated"
        assert {int(x["custom_id"][1:]) for x in err} == failing, "exactly the failing lines in the error file"
        print(json.dumps({
            "interactive_alone": alone, "interactive_with_batch": during,
            "batch": {"lines": a.lines, "status": b["status"], "counts": b["request_counts"],
                      "seconds": round(took, 1), "lines_per_second": round(a.lines / took, 1),
                      "admin_status_sample": prog},
            "mock": h.mock_stats()["chat_completions"],
            # Where the CPU went on a machine that also runs the mock and
            # the clients: the gateway's and the mock's CPU seconds over the
            # batch (interactive requests included), and the gateway's per
            # interactive request when alone.
            "cpu": {"gateway_s": round(cpu[0], 2), "mock_s": round(cpu[1], 2),
                    "gateway_ms_per_line": round(cpu[0] * 1000 / a.lines, 3),
                    "gateway_ms_per_interactive_alone": round(gw_cpu_alone * 1000 / max(1, alone["n"]), 3),
                    "cores": os.cpu_count(), "loadavg": os.getloadavg()},
            "config": vars(a)}, indent=1))
    finally:
        h.close()


if __name__ == "__main__":
    main()
