"""coalesce with streamed requests: 50 identical `stream: true` requests make
one upstream call and every client receives the whole stream; a leader
whose stream is cut releases its followers instead of serving them a cut
answer.

The stream_probe test plugin (after coalesce in the pipeline) holds the
leader at a gate until the test has seen the 49 followers waiting in the
coalesce status, so the test never races the upstream."""
import json
import os
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "integration"))
import harness  # noqa: E402
from harness import check, eq  # noqa: E402

N = 50


def probe_path(h):
    return os.path.join(h.build_dir, "test_plugins", "stream_probe.so")


def start(h):
    h.start_mock()
    h.start_gateway(h.config(pipeline=[
        {"plugin": "coalesce", "config": {"scope": "global", "max_wait_ms": 120000}},
        {"plugin": "stream_probe", "path": probe_path(h), "config": {}},
    ]))


def body(include_usage):
    b = {"model": "gpt-4o-mini", "temperature": 0, "stream": True,
         "messages": [{"role": "user", "content": "tell me about coalescing streams"}]}
    if include_usage:
        b["stream_options"] = {"include_usage": True}
    return b


def events(raw):
    """The data of each SSE event, checking the framing."""
    out = []
    for block in raw.decode().split("\n\n"):
        if not block.strip():
            continue
        lines = [ln for ln in block.split("\n") if ln.startswith("data: ")]
        check(lines, "an event without data: %r" % block)
        out.append("\n".join(ln[6:] for ln in lines))
    return out


def read_stream(resp):
    """(text, finish_reason, usage or None, ended with [DONE], error event)"""
    text, finish, usage, done, error = "", None, None, False, None
    for data in events(resp.body):
        check(not done, "an event after [DONE]")
        if data == "[DONE]":
            done = True
            continue
        chunk = json.loads(data)
        if "error" in chunk:
            error = chunk["error"]
            continue
        for c in chunk["choices"]:
            text += c["delta"].get("content") or ""
            finish = c.get("finish_reason") or finish
        if chunk.get("usage"):
            usage = chunk["usage"]
    return text, finish, usage, done, error


def coalesce_state(h):
    st = h.req("GET", "/admin/status").json()
    return next(p["state"] for p in st["plugins"] if p["plugin"] == "coalesce")


def send_all(h, gate):
    """Starts N identical streamed requests (half asking for usage) and
    returns (threads, results)."""
    results = [None] * N

    def one(i):
        results[i] = harness.request(h.gw.port, "POST", "/v1/chat/completions",
                                     body(include_usage=i % 2 == 0),
                                     {"x-probe-gate": gate}, timeout=120)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(N)]
    for t in threads:
        t.start()
    return threads, results


def wait_followers(h, n):
    deadline = time.time() + 60
    while time.time() < deadline:
        st = coalesce_state(h)
        if st["waiting_followers"] == n:
            return st
        time.sleep(0.02)
    raise AssertionError("followers waiting never reached %d: %r" % (n, coalesce_state(h)))


def test_fifty_streams_one_upstream_call(h):
    start(h)
    gate = os.path.join(h.tmp, "gate")
    threads, results = send_all(h, gate)
    st = wait_followers(h, N - 1)
    eq(st["flights"], 1, "one flight")
    eq(h.mock_stats().get("chat_completions", 0), 0, "the leader is held at the gate")
    open(gate, "w").close()
    for t in threads:
        t.join(120)

    stats = h.mock_stats()
    eq(stats.get("chat_completions"), 1, "one upstream call for 50 streamed requests")
    eq(stats.get("streams_completed"), 1, "the one upstream stream completed")
    texts = set()
    coalesced = 0
    for i, r in enumerate(results):
        check(r is not None, "request %d got no answer" % i)
        eq(r.status, 200, "request %d status" % i)
        check(r.header("content-type").startswith("text/event-stream"),
              "request %d content type %r" % (i, r.header("content-type")))
        text, finish, usage, done, error = read_stream(r)
        eq(error, None, "request %d error event" % i)
        check(done, "request %d ended with [DONE]" % i)
        eq(finish, "stop", "request %d finish reason" % i)
        check(text.startswith("mock reply to: tell me about"), "request %d text %r" % (i, text))
        texts.add(text)
        if i % 2 == 0:
            check(usage and usage["completion_tokens"] > 0 and usage["total_tokens"] > 0,
                  "request %d asked for usage: %r" % (i, usage))
        else:
            eq(usage, None, "request %d did not ask for usage" % i)
        if r.header("x-sluice-coalesced") == "1":
            coalesced += 1
    eq(len(texts), 1, "every client got the same text")
    eq(coalesced, N - 1, "followers marked coalesced")
    m = h.metrics()
    eq(m.get('sluice_coalesce_leaders_total{instance="coalesce"}'), 1.0, "leaders")
    eq(m.get('sluice_coalesce_followers_total{instance="coalesce"}'), float(N - 1), "followers")


def test_cut_leader_stream_releases_followers(h):
    start(h)
    gate = os.path.join(h.tmp, "gate")
    # Only the leader's upstream stream is cut after 2 chunks.
    h.mock_config(reset_after_chunks=2, chunks=8, count=1)
    threads, results = send_all(h, gate)
    wait_followers(h, N - 1)
    open(gate, "w").close()
    for t in threads:
        t.join(120)

    cut = whole = 0
    for i, r in enumerate(results):
        check(r is not None, "request %d got no answer" % i)
        eq(r.status, 200, "request %d status" % i)
        text, finish, usage, done, error = read_stream(r)
        if error:
            eq(error["code"], "stream_truncated", "request %d error" % i)
            check(not done, "a cut stream never ends with [DONE]")
            check(r.header("x-sluice-coalesced") is None, "the cut stream is the leader's own")
            cut += 1
        else:
            check(done and finish == "stop", "request %d complete: %r %r" % (i, done, finish))
            check(r.header("x-sluice-coalesced") is None,
                  "request %d was served a coalesced answer of a cut stream" % i)
            whole += 1
    eq(cut, 1, "only the leader saw its cut stream")
    eq(whole, N - 1, "released followers made their own calls")
    eq(h.mock_stats().get("chat_completions"), N, "one call each after the leader failed")
    m = h.metrics()
    eq(m.get('sluice_coalesce_followers_total{instance="coalesce"}', 0.0), 0.0, "no follower served")
    eq(m.get('sluice_coalesce_fallthrough_total{instance="coalesce"}'), float(N - 1), "fallthrough")


if __name__ == "__main__":
    harness.main(globals())
