"""A plugin acting in each phase, through the real gateway and the mock
provider: its answer reaches the client, later phases see what they
should, and on_log runs exactly once per request, however it ended.

Uses tests/abi/plugins/phase_probe.c (built into abi_plugins/)."""
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402
from harness import check, eq  # noqa: E402

PREFIX = "sluice_phase_probe_"
LABEL = '{instance="phase_probe"}'


def start(h, act_in):
    h.start_mock()
    plugin = os.path.join(h.build_dir, "abi_plugins", "phase_probe.so")
    h.start_gateway(h.config(pipeline=[{"plugin": "phase_probe", "path": plugin,
                                        "config": {"act_in": act_in}}]))


def counts(h):
    """Hook call counts, once on_log has run (it may finish just after the
    client has its answer)."""
    deadline = time.time() + 5
    while True:
        m = h.metrics()
        got = {hook: m.get(PREFIX + hook + "_total" + LABEL, 0.0)
               for hook in ("requests", "resumes", "upstream_responses", "responses", "logs")}
        if got["logs"] >= 1 or time.time() > deadline:
            return got


def test_continue_runs_every_hook_once(h):
    start(h, "none")
    r = h.chat("hello")
    eq(r.status, 200, r.body)
    c = counts(h)
    eq(c, {"requests": 1.0, "resumes": 0.0, "upstream_responses": 1.0,
           "responses": 1.0, "logs": 1.0}, "hook calls")


def test_reject_in_request_phase(h):
    start(h, "request")
    r = h.chat("hello")
    eq(r.status, 429)
    eq(r.header("retry-after"), "2", "1500 ms rounds up to 2 s")
    err = r.json()["error"]
    eq(err["message"], "rejected in on_request")
    eq(err["type"], "rate_limit_exceeded")
    eq(err["code"], "probe_reject")
    eq(h.mock_stats()["requests"], 0, "nothing reached the upstream")
    c = counts(h)
    eq(c["upstream_responses"], 0.0, "no upstream phase after a reject")
    eq(c["logs"], 1.0, "on_log exactly once")


def test_reject_in_upstream_response_phase(h):
    start(h, "upstream_response")
    r = h.chat("hello")
    eq(r.status, 503)
    err = r.json()["error"]
    eq(err["message"], "rejected in on_upstream_response")
    eq(err["code"], "probe_reject")
    check(r.header("retry-after") is None, "no Retry-After for 0 ms")
    eq(h.mock_stats()["requests"], 1, "the upstream was called")
    c = counts(h)
    eq(c["upstream_responses"], 1.0)
    eq(c["logs"], 1.0, "on_log exactly once")


def test_suspend_then_resume(h):
    start(h, "suspend")
    t0 = time.time()
    r = h.chat("hello")
    eq(r.status, 200, r.body)
    check(time.time() - t0 >= 0.02, "resumed after the 20 ms delay")
    eq(r.header("x-probe-resumed"), "1")
    c = counts(h)
    eq(c["requests"], 2.0, "on_request ran again after the suspension")
    eq(c["resumes"], 1.0)
    eq(c["logs"], 1.0, "on_log exactly once")


STREAM = (b'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,'
          b'"delta":{"content":"hi"},"finish_reason":"stop"}]}\n\n'
          b'data: {"id":"c1","object":"chat.completion.chunk","choices":[],'
          b'"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}\n\n'
          b"data: [DONE]\n\n")


def provider_ending_late():
    """A provider that sends a whole stream, [DONE] included, and only
    100 ms later the chunk that ends the HTTP body. Returns its port."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)

    def answer(conn):
        with conn:
            harness.read_request(conn)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n"
                         % (len(STREAM), STREAM))
            time.sleep(0.1)
            conn.sendall(b"0\r\n\r\n")
            conn.recv(1)  # until the gateway closes or reuses it

    def serve():
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return srv.getsockname()[1]


def read_until_done(port, body):
    """Streams a chat answer on a raw socket and stops at [DONE], as the
    OpenAI SDKs do: they do not wait for the end of the HTTP body."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
              b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
              % (len(body), body))
    got = b""
    while b"data: [DONE]" not in got:
        more = s.recv(65536)
        check(more, "stream ended before [DONE]: %r" % got[-200:])
        got += more
    return s


def test_stream_end_waits_for_hooks_and_metrics(h):
    """Whoever has seen [DONE] finds the response hooks run and the request
    counted, though the provider ends its body 100 ms after [DONE]."""
    h.start_mock()  # for the config's shape; the provider is the one above
    cfg = h.config(pipeline=[{"plugin": "phase_probe", "path": os.path.join(
        h.build_dir, "abi_plugins", "phase_probe.so"), "config": {}}])
    cfg["upstreams"][0]["base_url"] = "http://127.0.0.1:%d/v1" % provider_ending_late()
    h.start_gateway(cfg)
    body = json.dumps({"model": "gpt-4o-mini", "stream": True,
                       "messages": [{"role": "user", "content": "hi"}]}).encode()
    for i in range(1, 4):
        s = read_until_done(h.gw.port, body)
        m = h.metrics()
        s.close()
        eq(m.get(PREFIX + "responses_total" + LABEL, 0.0), float(i),
           "on_response ran before [DONE] reached the client (stream %d)" % i)
        eq(m.get('sluice_requests_total{code="200",endpoint="/v1/chat/completions",'
                 'upstream="mock"}', 0.0), float(i), "stream %d counted before [DONE]" % i)
        eq(m.get("sluice_completion_tokens_total", 0.0), 2.0 * i, "its tokens too")


def test_answer_counted_before_the_client_has_it(h):
    """A scrape right after an answer includes it, though the log hooks
    that run after the answer take 200 ms (the scrape may be served by the
    other worker meanwhile)."""
    h.start_mock()
    h.start_gateway(h.config(pipeline=[{"plugin": "phase_probe", "path": os.path.join(
        h.build_dir, "abi_plugins", "phase_probe.so"), "config": {"log_delay_ms": 200}}]))
    for i in range(1, 7):
        eq(h.chat("hello").status, 200)
        eq(h.metrics().get('sluice_requests_total{code="200",endpoint="/v1/chat/completions",'
                           'upstream="mock"}', 0.0), float(i), "answer %d counted" % i)


if __name__ == "__main__":
    harness.main(globals())
