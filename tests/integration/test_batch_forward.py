"""batch plugin, forwarding: a batch whose lines all route to an upstream
named in `forward` goes to that upstream's own Files + Batches API (the
bundled mock implements them) instead of running line by line in sluice.
The client sees the same API as for a local batch: status and
request_counts mirrored from the provider, output and error files stored
locally and keyed by custom_id. Also: cancel is forwarded, an upload or
creation refused by the provider fails the batch with a clear error, and a
kill -9 while polling resumes polling without a second upload."""
import signal
import sqlite3
import time

import harness
from harness import check, eq
from batch_util import content, create, jsonl, line, upload, wait

FORWARDED = "gpt-4o"    # served by upstream "prov" (forwarded)
LOCAL = "gpt-4o-mini"   # served by upstream "other" (not forwarded)


def gateway(h, **extra):
    """Two upstreams on the same mock: "prov" (forwarded) serves gpt-4o,
    "other" serves every other model and runs its batches in sluice."""
    if h.mock is None:
        h.start_mock()
    base = "http://127.0.0.1:%d/v1" % h.mock.port
    up = {"connect_timeout_ms": 2000, "first_byte_timeout_ms": 10000, "idle_timeout_ms": 10000}
    conf = {"dir": h.tmp + "/batch", "tick": "10ms", "forward": ["prov"],
            "forward_poll": "50ms", "forward_poll_max": "200ms",
            "backoff_base": "20ms", "backoff_max": "100ms"}
    conf.update(extra)
    cfg = h.config(upstreams=[dict(up, name="prov", base_url=base, models=[FORWARDED]),
                              dict(up, name="other", base_url=base, models=["*"])],
                   pipeline=[{"plugin": "batch", "config": conf}])
    path = h.write_config(cfg)
    h.start_gateway(path=path)
    return path


def submit(h, lines, **extra):
    r = upload(h, jsonl(lines))
    eq(r.status, 200, r.body)
    r = create(h, r.json()["id"], **extra)
    eq(r.status, 200, r.body)
    return r.json()["id"]


def provider_ids(h, bid):
    con = sqlite3.connect(h.tmp + "/batch/batch.db", timeout=10)
    try:
        row = con.execute("SELECT provider_file_id, provider_batch_id FROM forwards "
                          "WHERE batch_id=?", (bid,)).fetchone()
    finally:
        con.close()
    return row


def provider_batch(h, pid):
    return harness.request(h.mock.port, "GET", "/v1/batches/" + pid).json()


def test_forwarded_batch_completes_with_output_keyed_by_custom_id(h):
    gateway(h)
    n = 20
    lines = [line("c%02d" % i, content="c%02d" % i, model=FORWARDED) for i in range(n - 1)]
    lines.append(line("bad", model=FORWARDED, mock={"status": 500}))
    bid = submit(h, lines, metadata={"mock_delay_ms": "2000"})

    # While the provider runs it, the local batch and the admin status
    # show its counts growing.
    seen_partial = seen_admin = False
    deadline = time.time() + 60
    while time.time() < deadline:
        b = h.req("GET", "/v1/batches/" + bid).json()
        done = b["request_counts"]["completed"] + b["request_counts"]["failed"]
        if b["status"] == "in_progress" and 0 < done < n:
            seen_partial = True
            st = h.req("GET", "/admin/status").json()
            rows = [p for p in st["plugins"] if p["plugin"] == "batch"][0]["state"]["batches"]
            for row in rows:
                if row["id"] == bid and row["forwarded_to"] == "prov" and 0 < row["completed"] < n:
                    eq(row["total"], n)
                    seen_admin = True
        if b["status"] in ("completed", "failed", "expired", "cancelled"):
            break
        time.sleep(0.02)
    eq(b["status"], "completed", b)
    check(seen_partial, "request_counts were mirrored while in_progress")
    check(seen_admin, "the admin status showed the forwarded batch's counts")
    deadline = time.time() + 10  # the runner's next tick drops it
    while time.time() < deadline:
        st = h.req("GET", "/admin/status").json()
        rows = [p for p in st["plugins"] if p["plugin"] == "batch"][0]["state"]["batches"]
        if not rows:
            break
        time.sleep(0.02)
    eq(rows, [], "an ended batch leaves the admin status")
    eq(b["request_counts"], {"total": n, "completed": n - 1, "failed": 1})
    check(b["usage"]["input_tokens"] > 0 and b["usage"]["output_tokens"] > 0, b["usage"])

    out = content(h, b["output_file_id"])
    eq(sorted(x["custom_id"] for x in out), ["c%02d" % i for i in range(n - 1)])
    for x in out:
        eq(x["response"]["status_code"], 200)
        eq(x["response"]["body"]["choices"][0]["message"]["content"], "mock reply to: " + x["custom_id"])
    err = content(h, b["error_file_id"])
    eq([x["custom_id"] for x in err], ["bad"])
    eq(err[0]["response"]["status_code"], 500)
    check(b["output_file_id"].startswith("file-out-"), "a local file id: %s" % b["output_file_id"])

    # The provider did the work: one upload, one batch, no line sent as a
    # chat request; its status and counts are what the client saw.
    s = h.mock_stats()
    eq(s["files_uploaded"], 1)
    eq(s["batches_created"], 1)
    eq(s["batch_lines"], n)
    eq(s["chat_completions"], 0, "no line ran through sluice")
    eq(s["file_contents"], 2, "output and error file downloaded")
    _, pid = provider_ids(h, bid)
    p = provider_batch(h, pid)
    eq(p["status"], b["status"])
    eq(p["request_counts"], b["request_counts"])


def test_batch_for_several_upstreams_runs_in_sluice(h):
    gateway(h)
    # Either order: one line for another upstream keeps the batch here.
    mixed = submit(h, [line("a", model=FORWARDED), line("b", model=LOCAL)])
    mixed2 = submit(h, [line("c", model=LOCAL), line("d", model=FORWARDED)])
    local = submit(h, [line("e", model=LOCAL)])
    for bid, n in ((mixed, 2), (mixed2, 2), (local, 1)):
        b = wait(h, bid, timeout=60)
        eq(b["status"], "completed", b)
        eq(b["request_counts"], {"total": n, "completed": n, "failed": 0})
        eq(provider_ids(h, bid), None, "not forwarded")
    s = h.mock_stats()
    eq(s["files_uploaded"], 0)
    eq(s["chat_completions"], 5, "each line ran in sluice")


def test_cancel_is_forwarded(h):
    gateway(h)
    bid = submit(h, [line("x%d" % i, model=FORWARDED) for i in range(5)],
                 metadata={"mock_delay_ms": "600000"})
    wait(h, bid, until=("in_progress",), timeout=30)
    r = h.req("POST", "/v1/batches/%s/cancel" % bid)
    eq(r.status, 200, r.body)
    eq(r.json()["status"], "cancelling")
    b = wait(h, bid, timeout=30)
    eq(b["status"], "cancelled", b)
    eq(h.mock_stats()["batch_cancels"], 1)
    _, pid = provider_ids(h, bid)
    eq(provider_batch(h, pid)["status"], "cancelled")
    err = content(h, b["error_file_id"])
    eq(sorted(x["custom_id"] for x in err), ["x%d" % i for i in range(5)])
    eq({x["error"]["code"] for x in err}, {"batch_cancelled"})


def check_failed(h, bid, code, text):
    b = wait(h, bid, timeout=30)
    eq(b["status"], "failed", b)
    e = b["errors"]["data"][0]
    eq(e["code"], code)
    check(text in e["message"], e)
    eq(h.chat(model=FORWARDED).status, 200, "the gateway is fine")


def test_upload_refused_fails_the_batch_with_the_reason(h):
    gateway(h)
    eq(h.mock_config(status=400, count=1).status, 200)
    bid = submit(h, [line("u", model=FORWARDED)])
    check_failed(h, bid, "upstream_upload_failed",
                 "upstream 'prov' refused the batch input file upload (status 400): Mock injected error.")
    eq(h.mock_stats()["batches_created"], 0)


def test_creation_refused_fails_the_batch_with_the_reason(h):
    gateway(h)
    bid = submit(h, [line("u", model=FORWARDED)], metadata={"mock_status": "400"})
    check_failed(h, bid, "upstream_create_failed",
                 "upstream 'prov' refused the batch creation (status 400): Mock injected error.")
    eq(h.mock_stats()["files_uploaded"], 1)


def test_provider_batch_gone_fails_the_batch_and_5xx_polls_are_retried(h):
    gateway(h)
    bid = submit(h, [line("p", model=FORWARDED)], metadata={"mock_delay_ms": "600000"})
    wait(h, bid, until=("in_progress",), timeout=30)
    eq(h.mock_config(status=503, count=3).status, 200)  # the next polls fail
    wait_stat(h, "status_5xx", 3)
    b = h.req("GET", "/v1/batches/" + bid).json()
    eq(b["status"], "in_progress", "a failing poll changes nothing")
    eq(h.mock_config(status=404, count=1).status, 200)  # then the provider lost it
    check_failed(h, bid, "upstream_batch_missing",
                 "upstream 'prov' refused the batch retrieval (status 404)")


def test_upload_retried_after_a_provider_5xx(h):
    gateway(h)
    eq(h.mock_config(status=503, count=1).status, 200)
    bid = submit(h, [line("r", model=FORWARDED)], metadata={"mock_delay_ms": "0"})
    b = wait(h, bid, timeout=30)
    eq(b["status"], "completed", b)
    s = h.mock_stats()
    eq(s["status_5xx"], 1, "the first upload got the 503")
    eq(s["files_uploaded"], 1)


def test_kill_9_while_polling_then_restart_resumes_without_second_upload(h):
    path = gateway(h)
    n = 10
    bid = submit(h, [line("k%d" % i, content="k%d" % i, model=FORWARDED) for i in range(n)],
                 metadata={"mock_delay_ms": "3000"})
    wait(h, bid, until=("in_progress",), timeout=30)
    retrievals = h.mock_stats()["batch_retrievals"]
    check(retrievals >= 1, "polling had started")
    kill_and_restart(h, path)
    b = wait(h, bid, timeout=60)
    eq(b["status"], "completed", b)
    eq(sorted(x["custom_id"] for x in content(h, b["output_file_id"])), ["k%d" % i for i in range(n)])
    s = h.mock_stats()
    eq(s["files_uploaded"], 1, "no second upload after the restart")
    eq(s["batches_created"], 1, "no second provider batch")
    check(s["batch_retrievals"] > retrievals, "the restarted gateway polled")


def wait_stat(h, name, value, timeout=20):
    deadline = time.time() + timeout
    while h.mock_stats()[name] != value:
        check(time.time() < deadline, "mock %s never reached %d" % (name, value))
        time.sleep(0.02)


def kill_and_restart(h, path):
    h.gw.p.send_signal(signal.SIGKILL)
    h.gw.p.wait()
    h.start_gateway(path=path)


def test_kill_9_while_the_upload_is_out_finds_the_file_instead_of_uploading_again(h):
    path = gateway(h)
    eq(h.mock_config(latency_ms=4000, count=1).status, 200)  # the upload's answer waits
    bid = submit(h, [line("f%d" % i, content="f%d" % i, model=FORWARDED) for i in range(3)])
    wait_stat(h, "files_uploaded", 1)  # the provider has the file, sluice no id
    kill_and_restart(h, path)
    b = wait(h, bid, timeout=60)
    eq(b["status"], "completed", b)
    eq(sorted(x["custom_id"] for x in content(h, b["output_file_id"])), ["f0", "f1", "f2"])
    s = h.mock_stats()
    eq(s["files_uploaded"], 1, "the restart found the file in the provider's list")
    check(s["file_lists"] >= 1, "it searched the provider's file list")
    eq(s["batches_created"], 1)


def test_kill_9_while_the_creation_is_out_finds_the_batch_instead_of_creating_again(h):
    path = gateway(h)
    bid = submit(h, [line("g%d" % i, content="g%d" % i, model=FORWARDED) for i in range(3)],
                 metadata={"mock_create_latency_ms": "4000", "team": "x"})
    wait_stat(h, "batches_created", 1)
    kill_and_restart(h, path)
    b = wait(h, bid, timeout=60)
    eq(b["status"], "completed", b)
    eq(sorted(x["custom_id"] for x in content(h, b["output_file_id"])), ["g0", "g1", "g2"])
    eq(b["metadata"], {"mock_create_latency_ms": "4000", "team": "x"}, "the client's metadata as given")
    s = h.mock_stats()
    eq((s["files_uploaded"], s["batches_created"]), (1, 1), "one upload, one provider batch")
    check(s["batch_lists"] >= 1, "it searched the provider's batch list")
    _, pid = provider_ids(h, bid)
    eq(provider_batch(h, pid)["metadata"]["sluice_batch_id"], bid)


def test_reload_while_polling_keeps_the_provider_batch(h):
    gateway(h)
    n = 6
    bid = submit(h, [line("r%d" % i, content="r%d" % i, model=FORWARDED) for i in range(n)],
                 metadata={"mock_delay_ms": "1500"})
    wait(h, bid, until=("in_progress",), timeout=30)
    gen0 = h.req("GET", "/admin/status").json()["config_generation"]
    h.gw.signal(signal.SIGHUP)
    while h.req("GET", "/admin/status").json()["config_generation"] == gen0:
        time.sleep(0.02)
    b = wait(h, bid, timeout=60)
    eq(b["status"], "completed", b)
    eq(sorted(x["custom_id"] for x in content(h, b["output_file_id"])), ["r%d" % i for i in range(n)])
    s = h.mock_stats()
    eq((s["files_uploaded"], s["batches_created"]), (1, 1), "the new instance polled the same batch")


def test_forward_naming_an_unknown_upstream_refuses_the_config(h):
    h.start_mock()
    cfg = h.config(pipeline=[{"plugin": "batch", "config": {"dir": h.tmp + "/batch",
                                                            "forward": ["openai"]}}])
    try:
        h.start_gateway(cfg)
    except RuntimeError as e:
        check("forward[0]: 'openai' is not a configured upstream" in str(e), str(e))
    else:
        raise AssertionError("the gateway started with forward naming no upstream")


if __name__ == "__main__":
    harness.main(globals())
