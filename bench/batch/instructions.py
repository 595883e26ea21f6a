"""Instructions the gateway spends per batch line and per interactive
request (callgrind, so the numbers do not depend on machine load). The
gateway runs under valgrind; the counters are zeroed before each phase and
dumped after it: N interactive chat requests sent one after another, then
a batch of --lines lines (every --fail-every-th line answers 503, as in
latency.py) from creation to its end. Prints the instructions per
interactive request and per batch line, and leaves the two callgrind files
(--out-dir) for callgrind_annotate.

Usage: python3 bench/batch/instructions.py --build-dir BUILD [--lines 2000]
       [--interactive 300] [--concurrency 32] [--fail-every 20] [--out-dir DIR]
"""
import argparse
import glob
import http.client
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "integration"))
import harness  # noqa: E402
from batch_util import create, jsonl, line, upload  # noqa: E402

BODY = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "interactive"}]})


def total(path):
    out = subprocess.run(["callgrind_annotate", path], capture_output=True, text=True).stdout
    for ln in out.splitlines():
        if "PROGRAM TOTALS" in ln:
            return int(ln.split()[0].replace(",", ""))
    raise RuntimeError("no totals in " + path)


def dump(pid, out_dir, name):
    """Dumps the counters since the last zeroing; returns the new file."""
    before = set(glob.glob(os.path.join(out_dir, "cg.out*")))
    subprocess.run(["callgrind_control", "--dump=" + name, str(pid)], check=True, capture_output=True)
    for _ in range(600):
        new = set(glob.glob(os.path.join(out_dir, "cg.out*"))) - before
        if new:
            time.sleep(0.5)
            return new.pop()
        time.sleep(0.1)
    raise RuntimeError("callgrind dump did not appear")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--lines", type=int, default=2000)
    ap.add_argument("--interactive", type=int, default=300)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--fail-every", type=int, default=20)
    ap.add_argument("--out-dir", default=None)
    a = ap.parse_args()
    build = os.path.abspath(a.build_dir)
    out_dir = a.out_dir or os.path.join("/tmp", "batch-cg-%d" % os.getpid())
    os.makedirs(out_dir, exist_ok=True)

    h = harness.Harness(build)
    try:
        h.start_mock("--latency-ms", "5", "--threads", "2")
        cfg = h.config(pipeline=[
            {"plugin": "admission", "config": {"max_concurrency": 24, "max_queue": 100000,
                                               "queue_timeout_ms": 600000}},
            {"plugin": "batch", "config": {"dir": h.tmp + "/batch", "concurrency": a.concurrency,
                                           "backoff_base": "100ms", "backoff_max": "1s", "max_lines": 100000}},
        ], limits={"max_body_bytes": 64 << 20})
        cfg["log"]["level"] = "warn"
        path = h.write_config(cfg)
        h.gw = harness.Proc(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out_dir + "/cg.out",
                             os.path.join(build, "sluice"), "serve", "-c", path],
                            r"listening on http://[^:]+:(\d+)", timeout=120)
        h.procs.append(h.gw)
        pid = h.gw.p.pid
        conn = http.client.HTTPConnection("127.0.0.1", h.gw.port, timeout=120)

        def ask():
            conn.request("POST", "/v1/chat/completions", BODY, {"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            assert r.status == 200, r.status

        for _ in range(20):  # warm-up: connections, Lua, caches
            ask()
        subprocess.run(["callgrind_control", "--zero", str(pid)], check=True, capture_output=True)
        for _ in range(a.interactive):
            ask()
        inter = dump(pid, out_dir, "interactive")

        failing = set(range(0, a.lines, a.fail_every)) if a.fail_every else set()
        lines = [line("l%05d" % i, mock={"status": 503} if i in failing else None) for i in range(a.lines)]
        r = upload(h, jsonl(lines))
        assert r.status == 200, r.body
        subprocess.run(["callgrind_control", "--zero", str(pid)], check=True, capture_output=True)
        bid = create(h, r.json()["id"]).json()["id"]
        while True:  # polls once a second: each poll is counted too
            b = h.req("GET", "/v1/batches/" + bid).json()
            if b["status"] in ("completed", "failed", "expired", "cancelled"):
                break
            time.sleep(1)
        batch = dump(pid, out_dir, "batch")
        assert b["request_counts"]["total"] == a.lines, b
        ti, tb = total(inter), total(batch)
        print(json.dumps({"instructions_per_interactive": ti // a.interactive,
                          "instructions_per_line": tb // a.lines,
                          "counts": b["request_counts"], "files": {"interactive": inter, "batch": batch},
                          "config": vars(a)}, indent=1))
    finally:
        h.close()


if __name__ == "__main__":
    main()
