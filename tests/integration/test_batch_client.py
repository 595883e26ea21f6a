"""`sluice batch`, the batch client, against the mock provider and against
sluice: a run writes one result per line in input order; SIGINT stops it
with a checkpoint and the same command resumes without resending a
finished line; --dry-run's token estimate is within 20% of what the mock
reports; failed lines carry their error; a checkpoint of another input is
refused."""
import json
import os
import signal
import subprocess
import time

import harness
from harness import check, eq

PROSE = ("Operators of a busy gateway want bulk work to wait for spare capacity, "
         "so the nightly classification of support tickets, the embedding of a "
         "document corpus and the weekly summaries all go through the same limits, "
         "budgets and logs as interactive traffic. When the process is killed, "
         "nothing finished is lost and nothing stored is requested twice. ")


def write_input(h, n, name="in.jsonl", mock=None, max_tokens=40):
    path = os.path.join(h.tmp, name)
    with open(path, "w") as f:
        for i in range(n):
            start = (i * 37) % len(PROSE)
            text = "Question %d: %s" % (i, (PROSE[start:] + PROSE[:start]))
            body = {"model": "gpt-4o-mini", "max_tokens": max_tokens,
                    "messages": [{"role": "user", "content": text}],
                    "mock": dict({"completion_tokens": max_tokens}, **(mock or {}))}
            f.write(json.dumps({"custom_id": "q%03d" % i, "method": "POST", "url": "/v1/chat/completions",
                                "body": body}) + "\n")
    return path


def client(h, *args, base=None, **kw):
    base = base or "http://127.0.0.1:%d/v1" % h.mock.port
    return [os.path.join(h.build_dir, "sluice"), "batch", "--base-url", base, *args]


def results(path):
    with open(path) as f:
        return [json.loads(x) for x in f if x.strip()]


def test_run_writes_results_in_input_order(h):
    h.start_mock("--latency-ms", "5")
    inp = write_input(h, 40)
    out = os.path.join(h.tmp, "out.jsonl")
    r = subprocess.run(client(h, "-o", out, "--concurrency", "8", inp), capture_output=True, text=True, timeout=60)
    eq(r.returncode, 0, r.stderr)
    rows = results(out)
    eq([x["custom_id"] for x in rows], ["q%03d" % i for i in range(40)], "input order")
    check(all(x["response"]["status_code"] == 200 and x["error"] is None for x in rows))
    check("progress: 40/40 100.0%" in r.stderr, "plain progress lines when not on a terminal: %r" % r.stderr)
    check("spend $" in r.stderr and "40 ok, 0 failed" in r.stderr, r.stderr)
    check(not os.path.exists(out + ".partial") and not os.path.exists(out + ".checkpoint"), "cleaned up")
    eq(h.mock_stats()["chat_completions"], 40)


def test_dry_run_estimate_within_20_percent_of_usage(h):
    h.start_mock()
    inp = write_input(h, 60)
    r = subprocess.run(client(h, "--dry-run", "--json", inp), capture_output=True, text=True, timeout=60)
    eq(r.returncode, 0, r.stderr)
    est = json.loads(r.stdout)
    eq(h.mock_stats()["requests"], 0, "a dry run sends nothing")
    eq(est["lines"], 60)
    m = est["models"][0]
    eq((m["model"], m["priced"]), ("gpt-4o-mini", True))
    # gpt-4o-mini: $0.15 in, $0.60 out per 1M tokens (cost_tracker's table).
    check(abs(est["cost_usd"] - (est["input_tokens"] * 0.15 + est["output_tokens"] * 0.60) / 1e6) < 1e-9, est)

    out = os.path.join(h.tmp, "out.jsonl")
    r = subprocess.run(client(h, "-o", out, inp), capture_output=True, text=True, timeout=60)
    eq(r.returncode, 0, r.stderr)
    rows = results(out)
    used_in = sum(x["response"]["body"]["usage"]["prompt_tokens"] for x in rows)
    used_out = sum(x["response"]["body"]["usage"]["completion_tokens"] for x in rows)
    ratio = est["input_tokens"] / used_in
    print("dry-run input %d vs mock prompt_tokens %d (ratio %.3f); output %d vs %d" % (
        est["input_tokens"], used_in, ratio, est["output_tokens"], used_out))
    check(0.8 <= ratio <= 1.2, "input estimate within 20%%: %.3f" % ratio)
    eq(est["output_tokens"], used_out, "max_tokens bounds the output and the mock used all of it")


def test_sigint_then_resume_without_resending(h):
    h.start_mock("--latency-ms", "150")
    inp = write_input(h, 60)
    out = os.path.join(h.tmp, "out.jsonl")
    p = subprocess.Popen(client(h, "-o", out, "--concurrency", "4", inp), stderr=subprocess.PIPE, text=True)
    ckpt = out + ".checkpoint"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with open(ckpt) as f:
                if json.load(f)["done"] >= 8:
                    break
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=30)
    eq(p.returncode, 130, err)
    check("run the same command to resume" in err, err)
    with open(ckpt) as f:
        ck = json.load(f)
    first = h.mock_stats()["chat_completions"]
    check(8 <= ck["done"] < 60, ck)
    eq(ck["done"], first, "the lines in flight at ^C finished and were recorded before the exit")

    r = subprocess.run(client(h, "-o", out, "--concurrency", "4", inp), capture_output=True, text=True, timeout=60)
    eq(r.returncode, 0, r.stderr)
    check("resuming: %d of 60 lines already done" % ck["done"] in r.stderr, r.stderr)
    rows = results(out)
    eq([x["custom_id"] for x in rows], ["q%03d" % i for i in range(60)], "each line once, input order")
    eq(h.mock_stats()["chat_completions"], 60, "no finished line was sent again")


def test_checkpoint_of_another_input_is_refused(h):
    h.start_mock("--latency-ms", "200")
    a = write_input(h, 30, "a.jsonl")
    b = write_input(h, 31, "b.jsonl")
    out = os.path.join(h.tmp, "out.jsonl")
    p = subprocess.Popen(client(h, "-o", out, "--concurrency", "2", a), stderr=subprocess.PIPE, text=True)
    while not os.path.exists(out + ".checkpoint"):
        time.sleep(0.02)
    p.send_signal(signal.SIGINT)
    p.communicate(timeout=30)
    eq(p.returncode, 130)
    r = subprocess.run(client(h, "-o", out, b), capture_output=True, text=True, timeout=30)
    eq(r.returncode, 1)
    check("belongs to another input file" in r.stderr, r.stderr)
    r = subprocess.run(client(h, "-o", out, "--restart", b), capture_output=True, text=True, timeout=60)
    eq(r.returncode, 0, r.stderr)
    eq(len(results(out)), 31)


def test_failures_are_retried_then_recorded_with_their_error(h):
    h.start_mock()
    inp = os.path.join(h.tmp, "in.jsonl")
    with open(inp, "w") as f:
        for i in range(6):
            mock = {"status": 400} if i == 2 else {}
            f.write(json.dumps({"custom_id": "f%d" % i, "method": "POST", "url": "/v1/chat/completions",
                                "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}],
                                         "mock": mock}}) + "\n")
    h.mock_config(status=503, count=2)  # the first two calls fail, then succeed on retry
    out = os.path.join(h.tmp, "out.jsonl")
    r = subprocess.run(client(h, "-o", out, "--concurrency", "1", inp), capture_output=True, text=True, timeout=60)
    eq(r.returncode, 0, r.stderr)
    rows = results(out)
    eq([x["custom_id"] for x in rows], ["f%d" % i for i in range(6)])
    eq([x["error"] is None for x in rows], [True, True, False, True, True, True])
    eq(rows[2]["response"]["status_code"], 400)
    check("(status 400, 1 attempt)" in rows[2]["error"]["message"], rows[2])
    eq(h.mock_stats()["chat_completions"], 6 + 2)


def test_through_sluice(h):
    h.start_mock()
    h.start_gateway()
    inp = write_input(h, 20)
    out = os.path.join(h.tmp, "out.jsonl")
    r = subprocess.run(client(h, "-o", out, inp, base="http://127.0.0.1:%d/v1" % h.gw.port),
                       capture_output=True, text=True, timeout=60)
    eq(r.returncode, 0, r.stderr)
    eq(len(results(out)), 20)


if __name__ == "__main__":
    harness.main(globals())
