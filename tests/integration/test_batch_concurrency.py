"""batch plugin under concurrent use (ctest label `concurrency`, so it also
runs under TSan): eight tenants upload files and create batches at once
from both gateway workers while the runner works on worker 0 and the admin
status and batch reads race with it; every batch completes with every line
exactly once, and each tenant sees only its own batches."""
import hashlib
import threading

import harness
from harness import check, eq
from batch_util import content, create, jsonl, line, upload, wait

TENANTS = 8
LINES = 60


def sha(s):
    return hashlib.sha256(s.encode()).hexdigest()


def test_tenants_in_parallel(h):
    h.start_mock("--latency-ms", "2")
    keys = [{"sha256": sha("key-%d" % i), "tenant": "t%d" % i} for i in range(TENANTS)]
    keys.append({"sha256": sha("key-admin"), "tenant": "ops", "admin": True})
    adm = {"Authorization": "Bearer key-admin"}
    h.start_gateway(h.config(auth={"enabled": True, "keys": keys}, pipeline=[
        {"plugin": "batch", "config": {"dir": h.tmp + "/batch", "concurrency": 4, "tick": "5ms"}}]))
    results = [None] * TENANTS
    barrier = threading.Barrier(TENANTS + 2)  # the tenants, the reader, this thread
    stop = threading.Event()

    def tenant(i):
        hdr = {"Authorization": "Bearer key-%d" % i}
        barrier.wait()
        try:
            r = upload(h, jsonl([line("t%d-%03d" % (i, k)) for k in range(LINES)]), headers=hdr)
            eq(r.status, 200, r.body)
            r = create(h, r.json()["id"], headers=hdr)
            eq(r.status, 200, r.body)
            b = wait(h, r.json()["id"], headers=hdr, timeout=240)
            out = content(h, b["output_file_id"], hdr)
            listed = h.req("GET", "/v1/batches", headers=hdr).json()["data"]
            results[i] = (b, out, listed)
        except Exception as e:  # reported by the main thread
            results[i] = e

    def reader():
        barrier.wait()
        while not stop.is_set():
            eq(h.req("GET", "/admin/status", headers=adm).status, 200)
            eq(h.req("GET", "/metrics", headers=adm).status, 200)

    threads = [threading.Thread(target=tenant, args=(i,)) for i in range(TENANTS)]
    rd = threading.Thread(target=reader)
    for t in threads + [rd]:
        t.start()
    barrier.wait()
    for t in threads:
        t.join()
    stop.set()
    rd.join()
    for i, res in enumerate(results):
        check(not isinstance(res, Exception), "tenant %d: %r" % (i, res))
        b, out, listed = res
        eq(b["status"], "completed")
        eq(b["request_counts"], {"total": LINES, "completed": LINES, "failed": 0})
        eq([x["custom_id"] for x in out], ["t%d-%03d" % (i, k) for k in range(LINES)])
        eq([x["id"] for x in listed], [b["id"]], "a tenant lists only its own batch")
    eq(h.mock_stats()["chat_completions"], TENANTS * LINES, "each line sent once")


if __name__ == "__main__":
    harness.main(globals())
