"""batch plugin durability: kill -9 sluice at random points of a running
batch, restart it each time on the same directory, and check that the
batch finishes with each custom_id exactly once across the output and
error files, and that no line whose result was stored at a kill was sent
upstream again afterwards (a recording proxy between sluice and the mock
logs every upstream call; SQLite is read after each kill)."""
import os
import random
import signal
import sqlite3
import time

import harness
from harness import check, eq
from batch_util import Recorder, content, create, jsonl, line, upload, wait

N = 600


def stored(db):
    con = sqlite3.connect(db, timeout=10)
    try:
        return {r[0] for r in con.execute("SELECT custom_id FROM lines WHERE state>=2")}
    finally:
        con.close()


def test_kill_9_at_random_points_then_resume(h):
    h.start_mock("--latency-ms", "30")
    rec = Recorder(h.mock.port)
    try:
        cfg = h.config(pipeline=[{"plugin": "batch", "config": {
            "dir": h.tmp + "/batch", "concurrency": 8, "tick": "10ms",
            "backoff_base": "20ms", "backoff_max": "100ms"}}])
        cfg["upstreams"][0]["base_url"] = "http://127.0.0.1:%d/v1" % rec.port
        path = h.write_config(cfg)
        db = h.tmp + "/batch/batch.db"
        rnd = random.Random(int(os.environ.get("BATCH_CRASH_SEED", "7")))

        h.start_gateway(path=path)
        r = upload(h, jsonl([line("id-%04d" % i, content="id-%04d" % i) for i in range(N)]))
        eq(r.status, 200, r.body)
        bid = create(h, r.json()["id"]).json()["id"]

        kills = 0
        done_at_kill = []  # per run: custom_ids stored when it was killed
        delays = [0.02] + [rnd.uniform(0.2, 0.9) for _ in range(4)]
        for delay in delays:
            time.sleep(delay)
            h.gw.p.send_signal(signal.SIGKILL)
            h.gw.p.wait()
            kills += 1
            done_at_kill.append(stored(db))
            with rec.lock:
                rec.run += 1
            h.start_gateway(path=path)
        b = wait(h, bid, timeout=180)
        eq(b["status"], "completed", b)
        eq(b["request_counts"], {"total": N, "completed": N, "failed": 0})
        out = content(h, b["output_file_id"])
        eq(sorted(x["custom_id"] for x in out), ["id-%04d" % i for i in range(N)], "each custom_id exactly once")
        for x in out:
            eq(x["response"]["body"]["choices"][0]["message"]["content"], "mock reply to: " + x["custom_id"])
        eq(b["error_file_id"], None)

        with rec.lock:
            calls = list(rec.calls)
        resent = 0
        for run, was_stored in enumerate(done_at_kill):
            later = {cid for r_, cid in calls if r_ > run}
            again = later & was_stored
            eq(again, set(), "lines stored before kill %d were sent again" % (run + 1))
        per_id = {}
        for _, cid in calls:
            per_id[cid] = per_id.get(cid, 0) + 1
        resent = sum(n - 1 for n in per_id.values())
        eq(set(per_id), {"id-%04d" % i for i in range(N)})
        eq(h.mock_stats()["chat_completions"], len(calls), "the recorder saw every upstream call")
        check(resent <= kills * 8, "only lines in flight at a kill (<= concurrency each) are resent: %d" % resent)
        check(len(done_at_kill[-1]) < N, "the last kill came before the end (the test killed a running batch)")
        print("kills=%d upstream calls=%d resent (in flight at a kill)=%d stored at kills=%s" % (
            kills, len(calls), resent, [len(s) for s in done_at_kill]))
    finally:
        rec.close()


if __name__ == "__main__":
    harness.main(globals())
