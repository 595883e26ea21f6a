"""The gateway end to end: real binary, real mock provider, 127.0.0.1."""
import http.client
import json
import os
import socket
import threading
import time

import harness
from harness import check, eq


def start(h, **cfg):
    h.start_mock()
    h.start_gateway(h.config(**cfg))


def test_chat_roundtrip(h):
    start(h)
    r = h.chat("What is the capital of France?")
    eq(r.status, 200, r.body)
    body = r.json()
    eq(body["object"], "chat.completion")
    check(body["choices"][0]["message"]["content"], "content present")
    check(body["usage"]["prompt_tokens"] > 0, "usage passed through")
    eq(r.header("x-sluice-upstream"), "mock")
    eq(r.header("x-sluice-model"), "gpt-4o-mini")
    check(r.header("x-request-id"), "request id assigned")
    eq(h.mock_stats()["requests"], 1)


def test_request_id_is_kept(h):
    start(h)
    r = h.chat("hi", headers={"x-request-id": "abc-123"})
    eq(r.header("x-request-id"), "abc-123")


def test_completions_responses_embeddings(h):
    start(h)
    r = h.req("POST", "/v1/completions", {"model": "gpt-4o-mini", "prompt": "Say hi"})
    eq(r.status, 200, r.body)
    check("choices" in r.json())
    r = h.req("POST", "/v1/responses", {"model": "gpt-4o-mini", "input": "Say hi"})
    eq(r.status, 200, r.body)
    eq(r.json()["object"], "response")
    r = h.req("POST", "/v1/embeddings", {"model": "text-embedding-3-small",
                                          "input": ["hello world", "hello world!"]})
    eq(r.status, 200, r.body)
    data = r.json()["data"]
    eq(len(data), 2)
    check(len(data[0]["embedding"]) > 0)


def test_models_list(h):
    start(h, upstreams=[
        {"name": "mock", "base_url": "http://127.0.0.1:1/v1", "models": ["gpt-4o", "gpt-4o-mini"]},
        {"name": "keyed", "base_url": "http://127.0.0.1:1/v1", "models": ["secret-model"],
         "api_key_env": "SLUICE_TEST_UNSET_KEY", "require_key": True}])
    r = h.req("GET", "/v1/models")
    eq(r.status, 200)
    ids = sorted(m["id"] for m in r.json()["data"])
    eq(ids, ["gpt-4o", "gpt-4o-mini"], "disabled upstreams' models are hidden")


def read_sse_events(resp):
    """Yields (arrival_time, data) for each SSE event from an http.client response."""
    buf = b""
    while True:
        chunk = resp.read1(65536) if hasattr(resp, "read1") else resp.read(1)
        if not chunk:
            return
        buf += chunk
        while b"\n\n" in buf:
            ev, buf = buf.split(b"\n\n", 1)
            for line in ev.split(b"\n"):
                if line.startswith(b"data: "):
                    yield time.time(), line[6:].decode()


def test_streaming_is_forwarded_chunk_by_chunk(h):
    start(h)
    conn = http.client.HTTPConnection("127.0.0.1", h.gw.port, timeout=30)
    body = {"model": "gpt-4o-mini", "stream": True,
            "messages": [{"role": "user", "content": "count"}],
            "mock": {"chunks": 6, "chunk_interval_ms": 150}}
    t0 = time.time()
    conn.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
    resp = conn.getresponse()
    eq(resp.status, 200)
    check(resp.getheader("content-type").startswith("text/event-stream"))
    events = list(read_sse_events(resp))
    conn.close()
    check(len(events) >= 6, "all chunks arrived: %d" % len(events))
    eq(events[-1][1], "[DONE]")
    first, last = events[0][0] - t0, events[-1][0] - t0
    check(last - first > 0.5, "chunks spread over time (first %.2fs, last %.2fs)" % (first, last))
    check(first < last - 0.5, "first chunk before the mock finished")
    for _, data in events[:-1]:
        check('"usage"' not in data or '"choices":[]' not in data.replace(" ", ""),
              "usage chunk the client did not ask for is stripped")


def test_stream_usage_counted_when_client_did_not_ask(h):
    start(h)
    conn = http.client.HTTPConnection("127.0.0.1", h.gw.port, timeout=30)
    body = {"model": "gpt-4o-mini", "stream": True,
            "messages": [{"role": "user", "content": "hello"}], "mock": {"chunks": 3}}
    conn.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
    resp = conn.getresponse()
    list(read_sse_events(resp))
    conn.close()
    time.sleep(0.2)
    m = h.metrics()
    check(m.get("sluice_completion_tokens_total", 0) > 0, "stream usage accounted: %r" % m.get("sluice_completion_tokens_total"))


def test_stream_with_include_usage_keeps_usage_chunk(h):
    start(h)
    conn = http.client.HTTPConnection("127.0.0.1", h.gw.port, timeout=30)
    body = {"model": "gpt-4o-mini", "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "hello"}], "mock": {"chunks": 2}}
    conn.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
    events = [d for _, d in read_sse_events(conn.getresponse())]
    conn.close()
    check(any('"usage"' in e and '"prompt_tokens"' in e for e in events), "usage chunk forwarded")


def test_upstream_error_is_passed_back_openai_style(h):
    start(h, retry={"max_attempts": 1})
    r = h.chat("x", mock={"status": 400, "error_message": "bad thing"})
    eq(r.status, 400)
    err = r.json()["error"]
    check("message" in err and "type" in err, err)
    r = h.chat("x", mock={"status": 503, "retry_after": 3})
    eq(r.status, 503)
    eq(r.header("retry-after"), "3")
    check("error" in r.json())


def test_unreachable_upstream_is_502(h):
    h.start_mock()
    cfg = h.config(retry={"max_attempts": 1})
    cfg["upstreams"][0]["base_url"] = "http://127.0.0.1:1/v1"
    h.start_gateway(cfg)
    r = h.chat("x")
    eq(r.status, 502)
    eq(r.json()["error"]["type"], "api_error")


def test_upstream_timeout_is_504(h):
    h.start_mock()
    cfg = h.config(retry={"max_attempts": 1})
    cfg["upstreams"][0]["first_byte_timeout_ms"] = 300
    h.start_gateway(cfg)
    t0 = time.time()
    r = h.chat("x", mock={"hang": True})
    eq(r.status, 504)
    check(time.time() - t0 < 5, "timed out promptly")
    eq(r.json()["error"]["type"], "timeout_error")


def test_client_disconnect_mid_stream_cancels_upstream(h):
    start(h)
    s = socket.create_connection(("127.0.0.1", h.gw.port))
    body = json.dumps({"model": "gpt-4o-mini", "stream": True,
                       "messages": [{"role": "user", "content": "long"}],
                       "mock": {"chunks": 100, "chunk_interval_ms": 100}}).encode()
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body) + body)
    got = s.recv(4096)
    check(b"200" in got.split(b"\r\n")[0], got[:100])
    time.sleep(0.3)
    s.close()
    deadline = time.time() + 5
    while time.time() < deadline:
        if h.mock_stats().get("streams_client_closed", 0) >= 1:
            break
        time.sleep(0.1)
    eq(h.mock_stats().get("streams_client_closed"), 1, "mock saw the upstream connection closed")
    time.sleep(0.2)
    check(h.metrics().get("sluice_client_disconnects_total", 0) >= 1)


def test_error_cases(h):
    start(h)
    cases = [
        (b"{not json", 400, "parse"),
        (b"[1,2]", 400, "object"),
        (json.dumps({"messages": [{"role": "user", "content": "x"}]}).encode(), 400, "model"),
        (json.dumps({"model": "gpt-4o-mini"}).encode(), 400, "messages"),
        (json.dumps({"model": 5, "messages": []}).encode(), 400, "model"),
        (json.dumps({"model": "gpt-4o-mini", "messages": "hi"}).encode(), 400, "messages"),
        (json.dumps({"model": "gpt-4o-mini", "messages": [], "stream": "yes"}).encode(), 400, "stream"),
        (b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"\xff\xfe"}]}', 400, "UTF-8"),
        (b"", 400, "empty"),
    ]
    for body, status, word in cases:
        r = h.req("POST", "/v1/chat/completions", body)
        eq(r.status, status, "body %r" % body[:40])
        err = r.json()["error"]
        for k in ("message", "type", "param", "code"):
            check(k in err, "error has %s: %r" % (k, err))
        check(word.lower() in err["message"].lower() or (err["param"] or "").startswith(word),
              "precise message for %r: %r" % (body[:30], err))


def test_model_name_cannot_inject_headers(h):
    start(h)
    body = json.dumps({"model": "gpt-4o\r\nSet-Cookie: injected=1\r\nX-Evil: yes",
                       "messages": [{"role": "user", "content": "x"}]})
    r = h.req("POST", "/v1/chat/completions", body)
    eq(r.status, 400)
    eq(r.json()["error"]["param"], "model")
    check(r.header("set-cookie") is None and r.header("x-evil") is None, r.headers)
    eq(h.mock_stats()["requests"], 0)


def test_unknown_model_404(h):
    h.start_mock()
    cfg = h.config()
    cfg["upstreams"][0]["models"] = ["gpt-4o-mini"]
    h.start_gateway(cfg)
    r = h.chat("x", model="no-such-model")
    eq(r.status, 404)
    eq(r.json()["error"]["code"], "model_not_found")


def test_routes_404_and_405(h):
    start(h)
    r = h.req("GET", "/v1/nothing")
    eq(r.status, 404)
    check("error" in r.json())
    r = h.req("GET", "/v1/chat/completions")
    eq(r.status, 405)
    eq(r.header("allow"), "POST")
    r = h.req("POST", "/v1/models")
    eq(r.status, 405)


def test_oversized_body_413(h):
    start(h, limits={"max_body_bytes": 4096})
    r = h.chat("x" * 10000)
    eq(r.status, 413)
    check("error" in r.json())


def test_huge_headers_431(h):
    start(h, limits={"max_header_bytes": 2048})
    r = h.chat("x", headers={"x-big": "a" * 4000})
    eq(r.status, 431)


def test_smuggling_shapes_rejected(h):
    start(h)
    cl_te = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
             b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    check(raw(h, cl_te).startswith(b"HTTP/1.1 400"), "CL+TE refused")
    fold = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n Content-Length: 5\r\n\r\n")
    check(raw(h, fold).startswith(b"HTTP/1.1 400"), "obs-fold refused")
    dup = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}")
    check(raw(h, dup).startswith(b"HTTP/1.1 400"), "duplicate CL refused")
    eq(h.mock_stats()["requests"], 0, "nothing reached the upstream")


def raw(h, data):
    return harness.raw(h.gw.port, data)


def test_auth(h):
    h.start_mock()
    cfg = h.config(auth={"enabled": True, "keys": [
        {"sha256": "8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4",  # sha256("hi")
         "tenant": "acme", "user": "bob", "tier": "paid"}]})
    h.start_gateway(cfg)
    r = h.chat("x")
    eq(r.status, 401)
    eq(r.json()["error"]["type"], "authentication_error")
    r = h.chat("x", headers={"Authorization": "Bearer sk-wrong-secret-123"})
    eq(r.status, 401)
    check(b"sk-wrong-secret-123" not in r.body, "key never echoed")
    r = h.chat("x", headers={"Authorization": "Bearer hi"})
    eq(r.status, 200, r.body)


def test_provider_key_never_leaks(h):
    h.start_mock()
    cfg = h.config()
    cfg["upstreams"][0]["api_key_env"] = "SLUICE_TEST_PROVIDER_KEY"
    h.start_gateway(cfg, env={"SLUICE_TEST_PROVIDER_KEY": "sk-provider-very-secret"})
    h.chat("x")
    h.chat("x", mock={"status": 500})
    for path in ("/metrics", "/admin/status"):
        check(b"sk-provider-very-secret" not in h.req("GET", path).body, path)
    h.gw.stop()
    check("sk-provider-very-secret" not in h.gw.stderr(), "not in logs")


def test_metrics_and_admin_status(h):
    start(h)
    h.chat("x")
    # Counted when the request ends, just after its last byte went out.
    want = 'sluice_requests_total{code="200",endpoint="/v1/chat/completions",upstream="mock"} 1'
    for _ in range(200):
        text = h.req("GET", "/metrics").body.decode()
        if want in text:
            break
        time.sleep(0.01)
    check(want in text, text[:2000])
    families = [l.split()[2] for l in text.splitlines() if l.startswith("# TYPE")]
    eq(len(families), len(set(families)), "one TYPE line per family")
    st = h.req("GET", "/admin/status").json()
    eq(st["upstreams"][0]["name"], "mock")
    check(len(st["workers"]) == 2)
    eq(h.req("GET", "/healthz").json()["status"], "ok")


def test_admin_on_separate_address(h):
    h.start_mock()
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    cfg = h.config(admin_listen="127.0.0.1:%d" % port)
    h.start_gateway(cfg)
    eq(h.req("GET", "/metrics").status, 404, "not on the API listener")
    eq(harness.request(port, "GET", "/healthz").status, 200)
    m = harness.request(port, "GET", "/metrics")
    eq(m.status, 200)
    check(b"# TYPE sluice_request_duration_seconds histogram" in m.body)


def test_check_command(h):
    h.start_mock()
    good = h.write_config(h.config(), "good.json")
    r = h.sluice("check", "-c", good)
    eq(r.returncode, 0, r.stderr)
    bad = h.config(pipeline=[{"plugin": "noop", "config": {"nope": 1}}])
    bad["limits"] = {"max_body_bytes": 5}
    r = h.sluice("check", "-c", h.write_config(bad, "bad.json"))
    eq(r.returncode, 2)
    check("limits.max_body_bytes" in r.stderr, r.stderr)
    r = h.sluice("check", "-c", h.write_config(h.config(pipeline=[{"plugin": "noop", "config": {"nope": 1}}]), "bad2.json"))
    eq(r.returncode, 2)
    check("pipeline[0].config.nope: unknown key" in r.stderr, r.stderr)
    eq(h.sluice("--version").returncode, 0)
    eq(h.sluice("--help").returncode, 0)
    eq(h.sluice("bogus").returncode, 2)


def test_keepalive_reuses_connection(h):
    start(h)
    conn = http.client.HTTPConnection("127.0.0.1", h.gw.port, timeout=10)
    for _ in range(5):
        conn.request("POST", "/v1/chat/completions",
                     json.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}]}),
                     {"Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        eq(r.status, 200)
    conn.close()


def test_slow_client_pauses_upstream_instead_of_buffering(h):
    start(h, limits={"stream_high_water_bytes": 65536})
    body = json.dumps({"model": "gpt-4o-mini", "stream": True,
                       "messages": [{"role": "user", "content": "a long answer"}],
                       "mock": {"completion_tokens": 200000, "chunks": 20000}}).encode()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: small window
    s.connect(("127.0.0.1", h.gw.port))
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body) + body)
    time.sleep(2)  # not reading: the gateway must stop pulling from the upstream
    got = bytearray()
    s.settimeout(30)
    while not got.endswith(b"0\r\n\r\n"):
        b = s.recv(1 << 16)
        if not b:
            break
        got += b
    s.close()
    # Kernel socket buffers on both hops hold several MB, so the signal is
    # the gateway's own pause counter, not the mock's progress.
    check(got.count(b"data: {") >= 20000, "events: %d" % got.count(b"data: {"))
    check(b"data: [DONE]" in got, "the whole stream arrived once the client read it")
    check(h.metrics().get("sluice_upstream_pauses_total", 0) >= 1, "upstream was paused")
    eq(h.mock_stats()["streams_completed"], 1)


if __name__ == "__main__":
    harness.main(globals())
