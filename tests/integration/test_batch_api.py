"""batch plugin through the real gateway and the mock provider: upload,
create, poll, download; results keyed by custom_id in both files; the
lifecycle; retries ending in the error file with the reason; tenants;
cancel; expiry; bad input answered clearly with nothing else affected."""
import json
import socket
import time

import harness
from harness import check, eq
from batch_util import content, create, jsonl, line, run_batch, upload, wait



def sha(s):
    import hashlib
    return hashlib.sha256(s.encode()).hexdigest()


def start(h, models=("*",), limits=None, auth=None, retry=None, **batch):
    h.start_mock()
    cfg = {"dir": h.tmp + "/batch", "backoff_base": "20ms", "backoff_max": "100ms", "tick": "10ms"}
    cfg.update(batch)
    over = {"pipeline": [{"plugin": "batch", "config": cfg}]}
    if limits:
        over["limits"] = limits
    if auth:
        over["auth"] = auth
    if retry:
        over["retry"] = retry
    c = h.config(**over)
    c["upstreams"][0]["models"] = list(models)
    h.start_gateway(c)


def test_upload_create_poll_download(h):
    start(h)
    lines = [line("c%d" % i) for i in range(30)]
    # Two lines the provider refuses for good (400: not retried), one that
    # keeps failing with 503 (retried, then the error file).
    lines[4] = line("c4", mock={"status": 400, "error_message": "bad prompt"})
    lines[17] = line("c17", mock={"status": 400})
    lines[20] = line("c20", mock={"status": 503})
    r = upload(h, jsonl(lines))
    eq(r.status, 200, r.body)
    f = r.json()
    eq((f["object"], f["purpose"], f["filename"]), ("file", "batch", "input.jsonl"))
    eq(f["bytes"], len(jsonl(lines)))
    eq(h.req("GET", "/v1/files/" + f["id"]).json()["id"], f["id"])
    eq(h.req("GET", "/v1/files/%s/content" % f["id"]).body, jsonl(lines), "the input comes back as stored")

    r = create(h, f["id"], metadata={"job": "nightly"})
    eq(r.status, 200, r.body)
    b = r.json()
    eq((b["object"], b["status"], b["endpoint"], b["completion_window"]),
       ("batch", "validating", "/v1/chat/completions", "24h"))
    eq(b["metadata"], {"job": "nightly"})
    eq(b["expires_at"] - b["created_at"], 86400)

    b = wait(h, b["id"])
    eq(b["status"], "completed", b)
    eq(b["request_counts"], {"total": 30, "completed": 27, "failed": 3})
    for k in ("in_progress_at", "finalizing_at", "completed_at"):
        check(b[k] and b[k] >= b["created_at"], k)
    check(b["usage"]["output_tokens"] > 0, b["usage"])

    out = content(h, b["output_file_id"])
    err = content(h, b["error_file_id"])
    eq(len(out), 27)
    eq(len(err), 3)
    ids = [x["custom_id"] for x in out] + [x["custom_id"] for x in err]
    eq(sorted(ids), sorted("c%d" % i for i in range(30)), "every line in exactly one file")
    eq([x["custom_id"] for x in out], [c for c in ("c%d" % i for i in range(30)) if c not in ("c4", "c17", "c20")],
       "input order")
    for x in out:
        eq(x["response"]["status_code"], 200)
        eq(x["response"]["body"]["choices"][0]["message"]["content"], "mock reply to: line " + x["custom_id"])
        eq(x["error"], None)
    by = {x["custom_id"]: x for x in err}
    eq(by["c4"]["response"]["status_code"], 400)
    check("bad prompt" in by["c4"]["error"]["message"], by["c4"])
    check("1 attempt" in by["c4"]["error"]["message"], "a 400 is not retried: %r" % by["c4"])
    eq(by["c20"]["response"]["status_code"], 503)
    check("4 attempts" in by["c20"]["error"]["message"], "503 retried up to max_attempts: %r" % by["c20"])

    lst = h.req("GET", "/v1/batches").json()
    eq([x["id"] for x in lst["data"]], [b["id"]])
    eq(lst["has_more"], False)
    m = h.metrics()
    eq(m.get('sluice_batch_lines_completed_total{instance="batch"}'), 27.0)
    eq(m.get('sluice_batch_lines_failed_total{instance="batch"}'), 3.0)


def test_retry_after_transient_failures(h):
    start(h, retry={"max_attempts": 1})
    # The gateway does not retry here, so the runner's own retries show:
    # the next 3 upstream calls fail with 503, the first line is tried 4
    # times (max_attempts) and still ends completed.
    h.mock_config(status=503, count=3)
    b, out, err = run_batch(h, [line("r%d" % i) for i in range(5)])
    eq(b["request_counts"], {"total": 5, "completed": 5, "failed": 0}, b)
    eq(err, [])
    eq(sorted(x["custom_id"] for x in out), ["r%d" % i for i in range(5)])
    eq(h.mock_stats()["chat_completions"], 5 + 3, "one success per line after the 3 failures")
    eq(h.metrics().get('sluice_batch_lines_retried_total{instance="batch"}'), 3.0)


def test_tenants_own_their_files_and_batches(h):
    keys = [{"sha256": sha("key-a"), "tenant": "acme"}, {"sha256": sha("key-b"), "tenant": "globex"}]
    start(h, auth={"enabled": True, "keys": keys})
    A = {"Authorization": "Bearer key-a"}
    B = {"Authorization": "Bearer key-b"}
    r = upload(h, jsonl([line("x")]), headers=A)
    eq(r.status, 200, r.body)
    fid = r.json()["id"]
    for method, path in (("GET", "/v1/files/" + fid), ("GET", "/v1/files/%s/content" % fid),
                         ("DELETE", "/v1/files/" + fid)):
        r = h.req(method, path, headers=B)
        eq(r.status, 404, "%s %s as another tenant" % (method, path))
        eq(r.json()["error"]["message"], "No such File object: " + fid)
    r = create(h, fid, headers=B)
    eq(r.status, 404, "a batch for another tenant's file")
    eq(r.json()["error"]["param"], "input_file_id")
    eq(h.req("GET", "/v1/batches", headers=B).json()["data"], [])

    r = create(h, fid, headers=A)
    eq(r.status, 200, r.body)
    bid = r.json()["id"]
    eq(h.req("GET", "/v1/batches/" + bid, headers=B).status, 404)
    eq(h.req("POST", "/v1/batches/%s/cancel" % bid, headers=B).status, 404)
    b = wait(h, bid, headers=A)
    eq(b["status"], "completed")
    eq(h.req("GET", "/v1/files/" + b["output_file_id"], headers=B).status, 404, "results are the tenant's too")
    eq(len(content(h, b["output_file_id"], A)), 1)
    eq(h.req("DELETE", "/v1/files/" + fid, headers=A).json()["deleted"], True)
    eq(h.req("GET", "/v1/files/" + fid, headers=A).status, 404)


def test_bad_input_is_answered_and_harms_nothing(h):
    start(h, models=("gpt-4o-mini",), limits={"max_body_bytes": 1 << 20})
    good = [line("a"), line("b")]
    r = upload(h, jsonl([good[0], '{"custom_id": "b", "method": "POST",', line("c")]))
    eq(r.status, 400)
    e = r.json()["error"]
    eq((e["type"], e["param"], e["code"]), ("invalid_request_error", "file", "invalid_file"))
    check(e["message"].startswith("line 2: is not valid JSON"), e)

    r = upload(h, jsonl([good[0], good[1], line("c", model="gpt-9")]))
    eq(r.status, 400)
    eq(r.json()["error"]["message"], "line 3: model 'gpt-9' is not served by any upstream")

    r = upload(h, jsonl(good), purpose="fine-tune")
    eq(r.status, 400)
    eq(r.json()["error"]["param"], "purpose")

    r = create(h, "file-doesnotexist")
    eq(r.status, 404)
    r = h.req("POST", "/v1/batches", b"{not json", {"Content-Type": "application/json"})
    eq(r.status, 400)

    # 2 GB announced: refused from the headers, the connection closed,
    # the gateway keeps serving.
    s = socket.create_connection(("127.0.0.1", h.gw.port), timeout=10)
    s.sendall(("POST /v1/files HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=%s\r\n"
               "Content-Length: %d\r\n\r\n" % ("b", 2 * 1024 ** 3)).encode() + b"x" * 65536)
    got = b""
    while True:
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not chunk:
            break
        got += chunk
        if b"\r\n\r\n" in got and b"}" in got:
            break
    s.close()
    check(got.startswith(b"HTTP/1.1 413"), got[:200])
    check(b'"error"' in got, got)

    # Nothing else was affected: a good upload and batch still run, and
    # interactive traffic is served.
    eq(h.chat("hi").status, 200)
    b, out, err = run_batch(h, good)
    eq(b["request_counts"], {"total": 2, "completed": 2, "failed": 0})
    eq(len(h.req("GET", "/v1/files").json()["data"]), 2, "only the good input and its output were stored")


def test_cancel_keeps_finished_lines(h):
    start(h, concurrency=2)
    lines = [line("s%d" % i, mock={"latency_ms": 100}) for i in range(40)]
    r = upload(h, jsonl(lines))
    bid = create(h, r.json()["id"]).json()["id"]
    wait(h, bid, until=("in_progress",))
    time.sleep(0.3)
    r = h.req("POST", "/v1/batches/%s/cancel" % bid)
    eq(r.status, 200, r.body)
    check(r.json()["status"] in ("cancelling", "cancelled"), r.json())
    b = wait(h, bid)
    eq(b["status"], "cancelled")
    out, err = content(h, b["output_file_id"]), content(h, b["error_file_id"])
    eq(len(out) + len(err), 40, "every line accounted for")
    check(0 < len(out) < 40, len(out))
    check(all(x["error"]["code"] == "batch_cancelled" for x in err), err[:2])
    r = h.req("POST", "/v1/batches/%s/cancel" % bid)
    eq(r.status, 400, "a finished batch cannot be cancelled")


def test_expiry_sends_the_rest_to_the_error_file(h):
    start(h, concurrency=1)
    lines = [line("e%d" % i, mock={"latency_ms": 300}) for i in range(30)]
    r = upload(h, jsonl(lines))
    r = create(h, r.json()["id"], window="2s")
    eq(r.status, 200, r.body)
    b = wait(h, r.json()["id"], timeout=30)
    eq(b["status"], "expired")
    check(b["expired_at"], b)
    out, err = content(h, b["output_file_id"]), content(h, b["error_file_id"])
    eq(len(out) + len(err), 30)
    check(len(out) >= 1 and len(err) >= 10, (len(out), len(err)))
    eq(err[-1]["error"]["code"], "batch_expired")
    r = create(h, "x", window="2 days")
    eq(r.status, 400)


def batch_state(h):
    st = h.req("GET", "/admin/status").json()
    return [p for p in st["plugins"] if p["plugin"] == "batch"][0]["state"]["batches"], st["health"]


def test_admin_status_shows_counts_rate_and_eta(h):
    start(h, concurrency=4)
    n = 2000
    failing = set(range(0, n, 20))  # 5%: rejected by the provider for good
    lines = [line("a%04d" % i, mock={"status": 400} if i in failing else {"latency_ms": 5}) for i in range(n)]
    r = upload(h, jsonl(lines))
    eq(r.status, 200, r.body)
    bid = create(h, r.json()["id"]).json()["id"]
    seen = None
    deadline = time.time() + 60
    while time.time() < deadline:
        rows, health = batch_state(h)
        if rows and rows[0]["completed"] > 0 and rows[0]["eta_seconds"] is not None:
            seen = (rows[0], health)
            break
        time.sleep(0.05)
    check(seen, "the admin status showed the running batch")
    row, health = seen
    eq((row["id"], row["tenant"], row["status"], row["total"]), (bid, "default", "in_progress", n))
    check(0 <= row["in_flight"] <= 4, "concurrency cap: %r" % row)
    check(row["lines_per_second"] > 0 and row["eta_seconds"] >= 0, row)
    eq(health.get("batch.active"), 1)
    b = wait(h, bid, timeout=240)
    eq(b["request_counts"], {"total": n, "completed": n - len(failing), "failed": len(failing)})
    out, err = content(h, b["output_file_id"]), content(h, b["error_file_id"])
    eq(sorted(x["custom_id"] for x in out + err), ["a%04d" % i for i in range(n)], "every line exactly once")
    eq({int(x["custom_id"][1:]) for x in err}, failing)
    eq(batch_state(h)[0], [], "a finished batch leaves the status")
    eq(h.mock_stats()["chat_completions"], n, "a 400 is neither retried by the gateway nor by the runner")


def test_reload_while_cancelling_keeps_every_line(h):
    """A reload hands the batch to a new instance while the old one still
    has lines out: the new one waits for their results before it writes
    the files."""
    import signal
    start(h, concurrency=4)
    lines = [line("z%02d" % i, mock={"latency_ms": 800}) for i in range(20)]
    bid = create(h, upload(h, jsonl(lines)).json()["id"]).json()["id"]
    deadline = time.time() + 30
    while time.time() < deadline:
        rows, _ = batch_state(h)
        if rows and rows[0]["in_flight"] == 4:
            break
        time.sleep(0.02)
    gen0 = h.req("GET", "/admin/status").json()["config_generation"]
    eq(h.req("POST", "/v1/batches/%s/cancel" % bid).status, 200)
    h.gw.signal(signal.SIGHUP)
    while h.req("GET", "/admin/status").json()["config_generation"] == gen0:
        time.sleep(0.02)
    b = wait(h, bid)
    eq(b["status"], "cancelled")
    out, err = content(h, b["output_file_id"]), content(h, b["error_file_id"])
    eq(sorted(x["custom_id"] for x in out + err), ["z%02d" % i for i in range(20)], "every line in a file")
    check(len(out) >= 4, "the lines in flight at the reload finished: %d" % len(out))


if __name__ == "__main__":
    harness.main(globals())
