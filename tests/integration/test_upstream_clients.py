"""Both upstream transports end to end: every test runs once with
"http_client": "native" (sluice's own HTTP/1.1 client) and once with "curl"
(libcurl), against the bundled mock or a scripted raw-socket upstream, and
checks what a client of the gateway relies on. Run one transport with
`-k native` or `-k curl`.
"""
import hashlib
import http.client
import json
import math
import socket
import struct
import threading
import time

import harness
from harness import check, eq

CLIENTS = ("native", "curl")


def both(fn):
    """Registers test_<name>_native and test_<name>_curl."""
    for client in CLIENTS:
        def t(h, fn=fn, client=client):
            fn(h, client)
        t.__name__ = "test_%s_%s" % (fn.__name__, client)
        globals()[t.__name__] = t
    return fn


def start(h, client, upstream=None, **cfg):
    """Mock + gateway whose mock upstream uses `client`; `upstream` overrides keys."""
    if h.mock is None:
        h.start_mock()
    c = h.config(**cfg)
    c["upstreams"][0]["http_client"] = client
    c["upstreams"][0].update(upstream or {})
    h.start_gateway(c)
    return c


def chat_body(content, model="gpt-4o-mini", **extra):
    body = {"model": model, "messages": [{"role": "user", "content": content}]}
    body.update(extra)
    return body


def open_stream(port, body, headers=None, timeout=30):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    hdrs = {"Content-Type": "application/json"}
    hdrs.update(headers or {})
    conn.request("POST", "/v1/chat/completions", json.dumps(body), hdrs)
    return conn, conn.getresponse()


def sse_events(resp):
    """Yields (arrival time, data) per SSE event of an http.client response."""
    buf = b""
    while True:
        chunk = resp.read1(65536)
        if not chunk:
            if buf.strip():
                raise AssertionError("stream ended inside an event: %r" % buf[:200])
            return
        buf += chunk
        while b"\n\n" in buf:
            ev, buf = buf.split(b"\n\n", 1)
            for line in ev.split(b"\n"):
                if line.startswith(b"data: "):
                    yield time.time(), line[6:].decode()


def stream(h, body, headers=None):
    conn, resp = open_stream(h.gw.port, body, headers)
    status, hdrs = resp.status, {k.lower(): v for k, v in resp.getheaders()}
    events = [d for _, d in sse_events(resp)] if status == 200 else []
    rest = resp.read() if status != 200 else b""
    conn.close()
    return status, hdrs, events, rest


def wait_for(pred, timeout=5.0, what="condition"):
    deadline = time.time() + timeout
    while True:
        v = pred()
        if v or time.time() > deadline:
            check(v, "timed out waiting for " + what)
            return v
        time.sleep(0.02)


def metric(h, name):
    return h.metrics().get(name, 0.0)


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def direct_mock(h, path, body):
    return harness.request(h.mock.port, "POST", path, body)


# ---- the mock behind both transports ----

@both
def chat_roundtrip(h, client):
    start(h, client)
    q = "What is the capital of France?"
    r = h.chat(q, headers={"x-request-id": "it-rid-42"})
    eq(r.status, 200, r.body)
    body = r.json()
    want = direct_mock(h, "/v1/chat/completions", chat_body(q)).json()
    for k in ("id", "created"):
        body.pop(k), want.pop(k)
    eq(body, want, "the upstream's JSON reaches the client unchanged (but for id/created)")
    content = body["choices"][0]["message"]["content"]
    check(content.startswith("mock reply to: " + q), content)
    eq(body["usage"]["completion_tokens"], len(content.split()), "completion tokens")
    eq(body["usage"]["prompt_tokens"], math.ceil(len(q) / 4), "prompt tokens")
    eq(r.header("x-request-id"), "it-rid-42", "the client's request id is kept")
    eq(r.header("x-sluice-upstream"), "mock")
    check(r.header("content-type").startswith("application/json"), r.headers)
    wait_for(lambda: metric(h, "sluice_completion_tokens_total") == len(content.split()),
             what="usage accounted in /metrics")
    eq(metric(h, "sluice_prompt_tokens_total"), math.ceil(len(q) / 4))


@both
def streaming_chunk_by_chunk(h, client):
    start(h, client)
    body = chat_body("count for me", stream=True, stream_options={"include_usage": True},
                     mock={"chunks": 6, "chunk_interval_ms": 150})
    t0 = time.time()
    conn, resp = open_stream(h.gw.port, body)
    eq(resp.status, 200)
    check(resp.getheader("content-type").startswith("text/event-stream"), resp.getheaders())
    events = list(sse_events(resp))
    conn.close()
    eq(events[-1][1], "[DONE]", "the stream ends with [DONE]")
    first, last = events[0][0] - t0, events[-1][0] - t0
    # 6 chunks 150 ms apart: the mock needs ~750 ms; the first must not wait for it.
    check(last - first > 0.5, "chunks spread over time (first %.2fs, last %.2fs)" % (first, last))
    chunks = [json.loads(d) for _, d in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    check(text.startswith("mock reply to: count for me"), text)
    usage = [c["usage"] for c in chunks if c.get("usage")]
    eq(len(usage), 1, "one usage chunk (asked for)")
    eq(usage[0]["completion_tokens"], len(text.split()))
    eq(h.mock_stats()["streams_completed"], 1)


@both
def embeddings(h, client):
    start(h, client)
    body = {"model": "text-embedding-3-small", "dimensions": 3072,
            "input": ["hello world", "the quick brown fox", "x" * 3000]}
    r = h.req("POST", "/v1/embeddings", body)
    eq(r.status, 200, r.body)
    want = direct_mock(h, "/v1/embeddings", body).json()
    got = r.json()
    eq(len(got["data"]), 3)
    # ~200 KB of floats: every byte must survive the transport.
    eq(got["data"], want["data"], "vectors identical to the mock's")
    eq(got["usage"], want["usage"])


@both
def upstream_error_status_and_body(h, client):
    start(h, client, retry={"max_attempts": 1})
    r = h.chat("x", mock={"status": 429, "retry_after": 7})
    eq(r.status, 429, r.body)
    eq(r.header("retry-after"), "7", "Retry-After passed back")
    err = r.json()["error"]
    eq(err["type"], "rate_limit_error")
    eq(err["code"], "rate_limit_exceeded")
    r = h.chat("x", mock={"status": 500, "error_message": "kaboom in the model"})
    eq(r.status, 500, r.body)
    eq(r.json()["error"]["message"], "kaboom in the model", "the upstream's body passed back")
    eq(r.json()["error"]["type"], "server_error")
    r = h.chat("x", mock={"status": 400, "error_message": "bad param"})
    eq(r.status, 400)
    eq(r.json()["error"]["message"], "bad param")
    r = h.chat("fine")
    eq(r.status, 200, "a success after errors")
    s = h.mock_stats()
    eq(s["requests"], 4)
    check(s["connections_accepted"] <= 2, "error replies do not cost the connection: %r" % s)


@both
def unreachable_upstream_is_502(h, client):
    start(h, client, upstream={"base_url": "http://127.0.0.1:%d/v1" % closed_port()},
          retry={"max_attempts": 1})
    t0 = time.time()
    r = h.chat("x")
    eq(r.status, 502, r.body)
    err = r.json()["error"]
    eq(err["type"], "api_error")
    for k in ("message", "param", "code"):
        check(k in err, err)
    check(time.time() - t0 < 2, "refused connections fail fast")
    eq(h.chat("again").status, 502, "and again (nothing stuck)")


@both
def timeouts(h, client):
    start(h, client, upstream={"first_byte_timeout_ms": 400, "idle_timeout_ms": 400},
          retry={"max_attempts": 1})
    # First byte: the mock answers after 900 ms.
    t0 = time.time()
    r = h.chat("late", mock={"latency_ms": 900})
    took = time.time() - t0
    eq(r.status, 504, r.body)
    eq(r.json()["error"]["type"], "timeout_error")
    check(0.3 < took < 2, "timed out at the first-byte deadline (%.2fs)" % took)
    wait_for(lambda: h.mock_stats()["client_closed"] == 1, what="the timed-out connection closed")
    time.sleep(0.7)  # past the mock's 900 ms: a kept connection would now hold that late reply
    r = h.chat("the next one")
    eq(r.status, 200, r.body)
    check(r.json()["choices"][0]["message"]["content"].startswith("mock reply to: the next one"),
          "the next request gets its own answer, not the late one: %r" % r.body[:200])

    # Idle: the first chunk comes with the headers, the next after 1500 ms.
    t0 = time.time()
    status, _, events, _ = stream(h, chat_body("idle", stream=True,
                                               mock={"chunks": 4, "chunk_interval_ms": 1500}))
    took = time.time() - t0
    eq(status, 200)
    check(len(events) >= 2, "a partial stream arrived: %r" % events)
    check("[DONE]" not in events, "a cut stream never looks finished: %r" % events)
    eq(json.loads(events[-1])["error"]["code"], "stream_truncated", "ends with the truncation event")
    check(took < 1.4, "cut at the idle deadline, not at the next chunk (%.2fs)" % took)
    wait_for(lambda: h.mock_stats()["streams_client_closed"] == 1, what="the idle stream closed upstream")
    eq(h.chat("after").status, 200)


@both
def client_disconnect_mid_stream_closes_upstream(h, client):
    start(h, client)
    s = socket.create_connection(("127.0.0.1", h.gw.port))
    body = json.dumps(chat_body("long", stream=True, mock={"chunks": 100, "chunk_interval_ms": 100})).encode()
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body) + body)
    got = s.recv(4096)
    check(got.startswith(b"HTTP/1.1 200"), got[:100])
    time.sleep(0.3)
    s.close()
    wait_for(lambda: h.mock_stats()["streams_client_closed"] == 1,
             what="the mock to see the upstream connection closed")
    s = h.mock_stats()
    eq(s["streams_completed"], 0)
    wait_for(lambda: h.mock_stats()["connections_open"] == 0, what="no upstream connection left open")
    eq(h.chat("next").status, 200, "the gateway keeps serving")


@both
def queued_request_cancelled_by_client_disconnect(h, client):
    # One connection allowed: A holds it (the mock never answers), B waits
    # for it. B's client leaves; B must never reach the upstream.
    start(h, client, workers=1, upstream={"max_connections": 1})
    body = json.dumps(chat_body("x", mock={"hang": True})).encode()
    a = socket.create_connection(("127.0.0.1", h.gw.port))
    a.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body) + body)
    wait_for(lambda: h.mock_stats()["requests"] == 1, what="A at the mock")
    b = socket.create_connection(("127.0.0.1", h.gw.port))
    b.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body) + body)
    time.sleep(0.3)
    b.close()
    time.sleep(0.2)
    a.close()
    wait_for(lambda: h.mock_stats()["client_closed"] == 1, what="A's upstream connection closed")
    r = h.chat("after")
    eq(r.status, 200, r.body)
    time.sleep(0.2)
    s = h.mock_stats()
    eq(s["requests"], 2, "the abandoned queued request never reached the upstream: %r" % s)
    eq(s["chat_completions"], 2)


@both
def connection_reuse(h, client):
    # One worker: one pool, so the count below is exact for a reusing client.
    start(h, client, workers=1)
    for i in range(50):
        r = h.chat("n%d" % i)
        eq(r.status, 200, r.body)
    s = h.mock_stats()
    eq(s["requests"], 50)
    check(s["connections_accepted"] <= 2, "50 sequential requests, %d connections" % s["connections_accepted"])
    for i in range(5):  # chunked SSE bodies end cleanly: the connection stays usable
        status, _, events, _ = stream(h, chat_body("s%d" % i, stream=True, mock={"chunks": 3}))
        eq(status, 200)
        eq(events[-1], "[DONE]")
    for i in range(5):  # error replies too
        eq(h.chat("e", mock={"status": 400}).status, 400)
    s = h.mock_stats()
    eq(s["requests"], 60)
    check(s["connections_accepted"] <= 3, "60 sequential requests, %d connections" % s["connections_accepted"])


@both
def slow_client_pauses_upstream(h, client):
    start(h, client, limits={"stream_high_water_bytes": 65536})
    # ~14 MB of events; the mock writes the next one only when its socket
    # takes it, so its stream_bytes shows how much the gateway pulled.
    body = json.dumps(chat_body("a long answer", stream=True,
                                mock={"completion_tokens": 2000000, "chunks": 10000})).encode()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: small window
    s.connect(("127.0.0.1", h.gw.port))
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body) + body)
    # Not reading: once the kernel buffers of both hops are full, a paused
    # upstream stops the mock. A gateway that kept reading would buffer the
    # stream in memory and the mock would run to the end.
    prev, cur = -1, h.mock_stats()
    deadline = time.time() + 8
    while prev != cur["stream_bytes"] and time.time() < deadline and not cur["streams_completed"]:
        time.sleep(0.3)
        prev, cur = cur["stream_bytes"], h.mock_stats()
    # (Unloaded, the mock stalls at ~6 MB within 2 s; a loaded machine may
    # still be filling buffers at the deadline, which is fine too.)
    eq(cur["streams_completed"], 0, "the upstream stream was held back while the client did not read")
    check(cur["stream_bytes"] < 11000000, "at most the socket buffers ahead: %d" % cur["stream_bytes"])
    check(metric(h, "sluice_upstream_pauses_total") >= 1, "the gateway counted a pause")
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)  # now read fast
    got = bytearray()
    s.settimeout(30)
    while not got.endswith(b"0\r\n\r\n"):
        b = s.recv(1 << 20)
        if not b:
            break
        got += b
    s.close()
    check(len(got) > 14000000, "stream size %d" % len(got))
    check(b"data: [DONE]" in got[-200:], "the whole stream arrived once the client read it")
    check(b"stream_truncated" not in got, "no truncation")
    eq(h.mock_stats()["streams_completed"], 1)


@both
def concurrency_capped_by_max_connections(h, client):
    # One worker: each worker's client enforces max_connections on its own
    # (two workers may open 2 x 8), so one worker makes the bound exact.
    start(h, client, workers=1, upstream={"max_connections": 8})
    h.mock_config(latency_ms=40)
    results = [None] * 200

    def one(i):
        try:
            if i % 4 == 0:
                status, _, events, _ = stream(h, chat_body("c%d" % i, stream=True, mock={"chunks": 3}))
                results[i] = (status, events[-1] if events else None)
            else:
                r = h.chat("c%d" % i)
                ok = r.status == 200 and r.json()["choices"][0]["message"]["content"].startswith(
                    "mock reply to: c%d" % i)
                results[i] = (r.status, "[DONE]" if ok else r.body[:200])
        except Exception as e:  # reported below
            results[i] = ("exception", repr(e))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    bad = [(i, r) for i, r in enumerate(results) if r != (200, "[DONE]")]
    eq(bad, [], "every request answered in full and matched to its own reply")
    s = h.mock_stats()
    eq(s["requests"], 200)
    check(s["peak_connections"] <= 8, "at most 8 upstream connections at once: %r" % s)
    check(s["max_in_flight"] <= 8, "at most 8 requests in flight upstream: %r" % s)
    check(s["peak_connections"] >= 4, "requests run in parallel over several connections: %r" % s)


@both
def connection_caps_are_per_upstream(h, client):
    # Two upstreams on one worker with different caps: each keeps its own.
    h.start_mock()
    other = harness.Proc([h.mock.argv[0], "--listen", "127.0.0.1:0", "--quiet"],
                         r"listening on 127\.0\.0\.1:(\d+)")
    h.procs.append(other)
    small = {"name": "small", "base_url": "http://127.0.0.1:%d/v1" % other.port,
             "models": ["small-model"], "max_connections": 2, "http_client": client}
    c = h.config(workers=1)
    c["upstreams"][0].update(max_connections=8, http_client=client)
    c["upstreams"].insert(0, small)
    h.start_gateway(c)
    eq(h.chat("first", model="small-model").status, 200)  # the small one is used first
    for port in (h.mock.port, other.port):
        harness.request(port, "POST", "/mock/reset")
        harness.request(port, "POST", "/mock/config", {"latency_ms": 40})
    results = []

    def one(i):
        results.append(h.chat("p%d" % i, model="small-model" if i % 3 == 0 else "gpt-4o-mini").status)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(90)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    eq(results, [200] * 90)
    big_s, small_s = h.mock_stats(), harness.request(other.port, "GET", "/mock/stats").json()
    eq(small_s["requests"], 30)
    eq(big_s["requests"], 60)
    check(small_s["peak_connections"] <= 2, "small upstream capped at 2: %r" % small_s)
    check(big_s["peak_connections"] <= 8, "big upstream capped at 8: %r" % big_s)
    check(big_s["peak_connections"] >= 4,
          "big upstream not held to the other upstream's cap of 2: peak %d" % big_s["peak_connections"])


# ---- a scripted raw-socket upstream ----

class Req:
    def __init__(self, method, target, headers, body):
        self.method, self.target, self.headers, self.body = method, target, headers, body
        self.hdr = {}
        for name, value in headers:
            self.hdr.setdefault(name.lower(), value)
        self.conn_no = self.n_on_conn = 0

    def scenario(self):
        try:
            return json.loads(self.body).get("mock", {}).get("raw", "ok")
        except (ValueError, AttributeError):
            return "ok"


def recv_until(sock, buf, marker, limit=1 << 24):
    while marker not in buf:
        b = sock.recv(65536)
        if not b:
            return None
        buf += b
        if len(buf) > limit:
            raise ValueError("request too large")
    return buf


def read_request(sock, buf):
    """One request (Content-Length or chunked body); (None, b"") on EOF."""
    buf = recv_until(sock, buf, b"\r\n\r\n")
    if buf is None:
        return None, b""
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = [tuple(x.strip() for x in l.split(":", 1)) for l in lines[1:]]
    req = Req(method, target, headers, b"")
    if req.hdr.get("expect", "").lower() == "100-continue":
        sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
    if "chunked" in req.hdr.get("transfer-encoding", "").lower():
        body = b""
        while True:
            buf = recv_until(sock, buf, b"\r\n")
            size_line, buf = buf.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            if size == 0:  # no trailers (CRLF) or trailers up to an empty line
                while len(buf) < 2:
                    more = sock.recv(65536)
                    if not more:
                        return None, b""
                    buf += more
                if buf.startswith(b"\r\n"):
                    buf = buf[2:]
                else:
                    buf = recv_until(sock, buf, b"\r\n\r\n").split(b"\r\n\r\n", 1)[1]
                break
            while len(buf) < size + 2:
                b = sock.recv(65536)
                if not b:
                    return None, b""
                buf += b
            body, buf = body + buf[:size], buf[size + 2:]
        req.body = body
    else:
        n = int(req.hdr.get("content-length", "0"))
        while len(buf) < n:
            b = sock.recv(1 << 20)
            if not b:
                return None, b""
            buf += b
        req.body, buf = buf[:n], buf[n:]
    return req, buf


class RawUpstream:
    """An HTTP/1.x upstream on 127.0.0.1 whose answers a test writes byte by
    byte: script(srv, sock, req) sends the reply and returns whether to keep
    the connection for another request."""

    def __init__(self, script):
        self.script = script
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(512)
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        self.accepted = self.open = self.peak = 0
        self.requests = []
        self.socks = set()
        self.errors = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
                self.open += 1
                self.peak = max(self.peak, self.open)
                self.socks.add(s)
                no = self.accepted
            threading.Thread(target=self._serve, args=(s, no), daemon=True).start()

    def _serve(self, s, no):
        s.settimeout(30)
        buf, n = b"", 0
        try:
            while True:
                req, buf = read_request(s, buf)
                if req is None:
                    break
                req.conn_no, req.n_on_conn = no, n
                n += 1
                with self.lock:
                    self.requests.append(req)
                if not self.script(self, s, req):
                    break
        except OSError:
            pass
        except Exception as e:  # a broken script or request: fail the test
            self.errors.append(repr(e))
        finally:
            with self.lock:
                self.open -= 1
                self.socks.discard(s)
            try:
                s.close()
            except OSError:
                pass

    def close(self):
        self.lsock.close()
        with self.lock:
            for s in list(self.socks):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def raw_start(h, client, script, env=None, raw_keys=None, **cfg):
    """Gateway with model "raw-model" on a RawUpstream and everything else on
    the mock. Retries are off: a transport must not lean on them."""
    srv = RawUpstream(script)
    h.procs.insert(0, _Closer(srv))
    raw = {"name": "raw", "base_url": "http://127.0.0.1:%d/v1" % srv.port, "models": ["raw-model"],
           "http_client": client, "connect_timeout_ms": 2000, "first_byte_timeout_ms": 3000,
           "idle_timeout_ms": 3000}
    raw.update(raw_keys or {})
    cfg.setdefault("retry", {"max_attempts": 1})
    h.start_mock()
    c = h.config(**cfg)
    c["upstreams"][0]["http_client"] = client
    c["upstreams"].insert(0, raw)
    h.start_gateway(c, env=env)
    return srv


class _Closer:
    """Stops a RawUpstream with the harness's processes; a script that
    raised fails the test like a sanitizer report would."""
    def __init__(self, srv):
        self.srv, self.argv = srv, ["raw-upstream"]

    def stop(self):
        self.srv.close()

    def stderr(self):
        return "".join("runtime error: raw upstream script: %s\n" % e for e in self.srv.errors)


def raw_chat(h, scenario, content="hi", stream_=False, headers=None):
    body = chat_body(content, model="raw-model", mock={"raw": scenario})
    if stream_:
        body["stream"] = True
        return stream(h, body, headers)
    return h.req("POST", "/v1/chat/completions", body, headers)


def completion_json(text):
    return json.dumps({"id": "chatcmpl-raw", "object": "chat.completion", "created": 1,
                       "model": "raw-model",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                    "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 3, "completion_tokens": len(text.split()),
                                 "total_tokens": 3 + len(text.split())}},
                      separators=(",", ":")).encode()


def reply_text(req):
    """What the scripted upstream answers: derived from the request, so a reply
    delivered to the wrong request shows."""
    return "raw reply to %s #%d.%d" % (json.loads(req.body)["messages"][0]["content"],
                                       req.conn_no, req.n_on_conn)


def ok_response(req, extra=b""):
    body = completion_json(reply_text(req))
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n"
            % (len(body), extra)) + body


def chunked(data, sizes):
    """data as chunks of the given sizes (cycled), with extensions, hex in mixed case."""
    out, i, k = b"", 0, 0
    while i < len(data):
        n = sizes[k % len(sizes)]
        piece = data[i:i + n]
        ext = [b"", b";ext=1", b';name="quoted value"', b";a=1;b"][k % 4]
        size = b"%x" % len(piece)
        size = size.upper() if k % 2 else size
        out += size + ext + b"\r\n" + piece + b"\r\n"
        i, k = i + n, k + 1
    return out


def trickle(sock, data, pieces, delay=0.01):
    """Sends data in `pieces` writes with pauses, so reads split it anywhere."""
    step = max(1, len(data) // pieces)
    for i in range(0, len(data), step):
        sock.sendall(data[i:i + step])
        time.sleep(delay)


def sse_body(n):
    ev = [b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"raw-model",'
          b'"choices":[{"index":0,"delta":{"content":"w%d "},"finish_reason":null}]}\n\n' % i
          for i in range(n)]
    return b"".join(ev) + b"data: [DONE]\n\n"


def odd_script(srv, sock, req):
    sc = req.scenario()
    text = reply_text(req)
    body = completion_json(text)
    if sc == "ok":
        sock.sendall(ok_response(req))
        return True
    if sc == "http10_close":
        trickle(sock, b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + body, 5)
        return False
    if sc == "http11_close_delimited":
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n")
        trickle(sock, body, 4, 0.05)
        return False
    if sc == "chunked_ext_trailers":
        data = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                + chunked(body, [1, 7, 30, 2]) + b"0;last=yes\r\nX-Trailer-One: 1\r\nX-Checksum: abc\r\n\r\n")
        trickle(sock, data, 40, 0.002)
        return True
    if sc == "chunk_ext_bws":
        # RFC 9112 7.1.1: chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] )
        data = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                + b"%x ;a = 1\r\n" % len(body) + body + b"\r\n0\t;z\r\n\r\n")
        sock.sendall(data)
        return True
    if sc == "continue_100":
        sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        time.sleep(0.05)
        sock.sendall(ok_response(req))
        return True
    if sc == "early_hints_103":
        sock.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
        time.sleep(0.05)
        sock.sendall(ok_response(req))
        return True
    if sc == "odd_case_headers":
        sock.sendall(b"HTTP/1.1 200 OK\r\ncOnTeNt-TyPe: application/json\r\nX-ODD-Header:   spaced  \r\n"
                     b"CONTENT-LENGTH: %d\r\nconnection: KEEP-ALIVE\r\n\r\n" % len(body) + body)
        return True
    if sc == "odd_case_429":
        err = b'{"error":{"message":"slow down","type":"rate_limit_error","param":null,"code":"rate_limit_exceeded"}}'
        sock.sendall(b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nrEtRy-AfTeR: 9\r\n"
                     b"transfer-ENCODING: Chunked\r\n\r\n" + chunked(err, [10]) + b"0\r\n\r\n")
        return True
    if sc == "many_headers":
        hdrs = b"".join(b"X-H-%d: value %d %s\r\n" % (i, i, b"v" * (i * 20)) for i in range(150))
        sock.sendall(b"HTTP/1.1 200 \r\nContent-Type: application/json\r\n" + hdrs
                     + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        return True
    if sc == "empty_503":
        sock.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
        return True
    if sc == "sse_odd":
        data = (b"HTTP/1.1 200 OK\r\nCONTENT-TYPE: Text/Event-Stream; charset=utf-8\r\n"
                b"TRANSFER-ENCODING: chunked\r\n\r\n" + chunked(sse_body(20), [13, 200, 1, 64]) + b"0\r\n\r\n")
        trickle(sock, data, 30, 0.003)
        return True
    raise ValueError("unknown scenario " + sc)


def each(cases, fn):
    """Runs fn(case) for every case, then fails once naming every failure."""
    failures = []
    for c in cases:
        try:
            fn(c)
        except AssertionError as e:
            failures.append("%s: %s" % (c, e))
    check(not failures, "%d case(s) failed:\n  %s" % (len(failures), "\n  ".join(failures)))


@both
def odd_but_legal_framings(h, client):
    srv = raw_start(h, client, odd_script)

    def ok_200(sc):
        r = raw_chat(h, sc, content=sc)
        eq(r.status, 200, r.body[:300])
        eq(r.body, completion_json(reply_text(srv.requests[-1])), "body intact")

    def retry_after_429(sc):
        r = raw_chat(h, sc)
        eq(r.status, 429, r.body)
        eq(r.header("retry-after"), "9", "Retry-After found in any case")
        eq(r.json()["error"]["message"], "slow down")

    def wrapped_503(sc):
        r = raw_chat(h, sc)
        eq(r.status, 503, r.body)
        check("error" in r.json(), "an empty error body is wrapped OpenAI-style: %r" % r.body)

    def sse(sc):
        status, hdrs, events, _ = raw_chat(h, sc, stream_=True)
        eq(status, 200)
        eq(events[-1:], ["[DONE]"])
        eq(len(events), 21, events)
        eq("".join(json.loads(e)["choices"][0]["delta"]["content"] for e in events[:-1]),
           "".join("w%d " % i for i in range(20)), "SSE intact across odd chunking")

    checks = {"odd_case_429": retry_after_429, "empty_503": wrapped_503, "sse_odd": sse}
    each(("http10_close", "http11_close_delimited", "chunked_ext_trailers", "chunk_ext_bws",
          "continue_100", "early_hints_103", "odd_case_headers", "many_headers", "ok",
          "odd_case_429", "empty_503", "sse_odd"),
         lambda sc: checks.get(sc, ok_200)(sc))
    eq(h.chat("mock still fine").status, 200)


def malformed_script(srv, sock, req):
    sc = req.scenario()
    if sc == "ok":
        sock.sendall(ok_response(req))
        return True
    if sc == "garbage_status":
        sock.sendall(b"GARBAGE IN GARBAGE OUT\r\n\r\n")
        time.sleep(0.05)
        return False
    if sc == "bad_status_code":
        sock.sendall(b"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\n{}")
        return True  # keep it open: the client must give up on its own
    if sc == "bad_chunk_size":
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"5\r\n{\"a\":\r\nzz\r\n1}\r\n0\r\n\r\n")
        return True
    if sc == "short_body":
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
                     + b"{" + b" " * 98)
        time.sleep(0.05)
        return False
    if sc == "conflicting_lengths":
        body = completion_json("x")
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                     b"Content-Length: %d\r\n\r\n" % (len(body), len(body) + 5) + body)
        time.sleep(0.05)
        return False
    if sc == "huge_header":
        sock.sendall(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (1 << 20) + b"\r\nContent-Length: 2\r\n\r\n{}")
        time.sleep(0.05)
        return False
    if sc == "excess_after_body":
        # A second, unasked-for response after the first: must never be
        # served as the answer to the next request on this connection.
        sock.sendall(ok_response(req) + b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 13\r\n\r\n{\"evil\":true}")
        return True
    if sc in ("stream_bad_chunk", "stream_cut"):
        sse = sse_body(3)[:-len(b"data: [DONE]\n\n")]
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                     + chunked(sse, [len(sse)]))
        time.sleep(0.05)
        if sc == "stream_bad_chunk":
            sock.sendall(b"-5\r\nhello\r\n")
            return True
        return False
    raise ValueError("unknown scenario " + sc)


@both
def malformed_responses(h, client):
    srv = raw_start(h, client, malformed_script, workers=1)

    def then_ok(sc):
        r = raw_chat(h, "ok", content="after " + sc)
        eq(r.status, 200, "the next request is served: %r" % r.body[:300])
        eq(r.body, completion_json(reply_text(srv.requests[-1])))
        eq(h.chat("mock").status, 200)

    def bad_gateway(sc):
        t0 = time.time()
        r = raw_chat(h, sc)
        eq(r.status, 502, r.body[:300])
        eq(r.json()["error"]["type"], "api_error")
        check(time.time() - t0 < 2.5, "failed at once, not at a timeout")
        then_ok(sc)

    def truncated_stream(sc):
        status, _, events, _ = raw_chat(h, sc, stream_=True)
        eq(status, 200)
        eq(len(events), 4, "3 events and the truncation event: %r" % events)
        eq(json.loads(events[-1])["error"]["code"], "stream_truncated")
        then_ok(sc)

    def excess(sc):
        r = raw_chat(h, sc, content="first")
        eq(r.status, 200)
        for i in range(3):
            r = raw_chat(h, "ok", content="second%d" % i)
            eq(r.status, 200, r.body)
            check(b"evil" not in r.body, "bytes past the end of a response are not the next response")
            eq(r.json()["choices"][0]["message"]["content"].split(" #")[0], "raw reply to second%d" % i)

    checks = {"stream_bad_chunk": truncated_stream, "stream_cut": truncated_stream,
              "excess_after_body": excess}
    each(("garbage_status", "bad_status_code", "bad_chunk_size", "short_body", "conflicting_lengths",
          "huge_header", "stream_bad_chunk", "stream_cut", "excess_after_body"),
         lambda sc: checks.get(sc, bad_gateway)(sc))


def request_script(srv, sock, req):
    sock.sendall(ok_response(req))
    return True


@both
def request_reaches_upstream_intact(h, client):
    srv = raw_start(h, client, request_script, env={"SLUICE_IT_RAW_KEY": "sk-raw-test-key"},
                    raw_keys={"api_key_env": "SLUICE_IT_RAW_KEY"})
    big = "".join("%07d " % i for i in range(250000))  # 2 MB: many partial writes
    for content, stream_ in (("small", False), (big, False), ("streamed", True)):
        body = chat_body(content, model="raw-model", temperature=0.5, user="u1", mock={"raw": "ok"})
        if stream_:
            body["stream"] = True
        r = h.req("POST", "/v1/chat/completions", body, {"x-request-id": "rid-%d" % len(content)})
        req = srv.requests[-1]
        eq(req.method, "POST")
        eq(req.target, "/v1/chat/completions")
        eq(req.hdr.get("host"), "127.0.0.1:%d" % srv.port)
        eq(req.hdr.get("authorization"), "Bearer sk-raw-test-key")
        eq(req.hdr.get("x-request-id"), "rid-%d" % len(content))
        check(req.hdr.get("content-type", "").startswith("application/json"), req.headers)
        check(not ("transfer-encoding" in req.hdr and "content-length" in req.hdr),
              "never both Content-Length and Transfer-Encoding: %r" % req.headers)
        if "content-length" in req.hdr:
            eq(int(req.hdr["content-length"]), len(req.body))
        names = [n.lower() for n, _ in req.headers]
        for n in ("host", "content-length", "authorization", "x-request-id", "content-type"):
            check(names.count(n) <= 1, "one %s header: %r" % (n, req.headers))
        sent = json.loads(req.body)
        if stream_:
            eq(req.hdr.get("accept"), "text/event-stream")
            sent.pop("stream_options", None)  # the gateway may ask for usage
        eq(sent, body, "the request body reached the upstream intact (%d bytes)" % len(req.body))
        if not stream_:
            eq(r.status, 200)
            eq(hashlib.sha256(r.body).hexdigest(),
               hashlib.sha256(completion_json(reply_text(req))).hexdigest())


def idle_close_script(srv, sock, req):
    sock.sendall(ok_response(req, b"Connection: keep-alive\r\nKeep-Alive: timeout=60\r\n"))
    time.sleep(0.1)  # then close the idle connection, as servers with a short keep-alive do
    if req.conn_no % 2 == 0:  # every other one with an RST instead of a FIN
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return False


@both
def upstream_closes_idle_keepalive(h, client):
    srv = raw_start(h, client, idle_close_script, workers=1)
    for i in range(4):
        r = raw_chat(h, "ok", content="idle%d" % i)
        eq(r.status, 200, "request %d after the upstream closed the pooled connection: %r" % (i, r.body[:300]))
        eq(r.json()["choices"][0]["message"]["content"], reply_text(srv.requests[-1]))
        time.sleep(0.35)
    eq(srv.accepted, 4, "a fresh connection each time")
    eq(len(srv.requests), 4, "no request was sent twice")


def close_on_reuse_script(srv, sock, req):
    if req.n_on_conn == 0:
        sock.sendall(ok_response(req))
        return True
    return False  # read the request on the reused connection, then close: the keep-alive race


@both
def stale_connection_dies_under_request(h, client):
    srv = raw_start(h, client, close_on_reuse_script, workers=1)
    for i in range(3):
        r = raw_chat(h, "ok", content="race%d" % i)
        eq(r.status, 200, "request %d: a reused connection closed before any response byte "
           "is retried on a fresh one: %r" % (i, r.body[:300]))
        eq(r.json()["choices"][0]["message"]["content"], reply_text(srv.requests[-1]))
    check(srv.accepted >= 3, srv.accepted)


def interim_then_close_script(srv, sock, req):
    if req.n_on_conn == 0:
        sock.sendall(ok_response(req))
        return True
    # The server took the request (103 says it is working on it), then died.
    sock.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n")
    return False


def native_only(fn):
    def run(h):
        fn(h, "native")
    run.__name__ = "test_" + fn.__name__ + "_native"
    globals()[run.__name__] = run
    return fn


@native_only
def request_not_resent_after_interim_response(h, client):
    srv = raw_start(h, client, interim_then_close_script, workers=1)
    eq(raw_chat(h, "ok", content="first").status, 200)
    r = raw_chat(h, "ok", content="second")
    eq(r.status, 502, r.body[:300])
    eq(len(srv.requests), 2, "a request the upstream had started answering was sent again")


def late_close_script(srv, sock, req):
    if req.n_on_conn == 0:
        sock.sendall(ok_response(req))
        return True
    time.sleep(1.5)  # working on it... then the worker crashes
    return False


@native_only
def request_not_resent_after_upstream_held_it(h, client):
    srv = raw_start(h, client, late_close_script, workers=1)
    eq(raw_chat(h, "ok", content="first").status, 200)
    r = raw_chat(h, "ok", content="second")
    eq(r.status, 502, r.body[:300])
    eq(len(srv.requests), 2, "a POST the upstream held for 1.5 s was sent again (could bill twice)")


def folded_header_script(srv, sock, req):
    if b"bare-lf" in req.body:
        sock.sendall(b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok")
    else:
        sock.sendall(b"HTTP/1.1 503 Unavailable\r\nRetry-After: 1\r\n Set-Cookie: s=evil\r\n"
                     b"Content-Length: 0\r\n\r\n")
    return False


@native_only
def folded_or_bare_lf_headers_are_refused(h, client):
    raw_start(h, client, folded_header_script, workers=1)
    r = raw_chat(h, "ok", content="fold")
    eq(r.status, 502, r.body[:300])
    check("set-cookie" not in {k.lower() for k in r.headers}, r.headers)
    t0 = time.monotonic()
    r = raw_chat(h, "ok", content="bare-lf")
    eq(r.status, 502, r.body[:300])
    check(time.monotonic() - t0 < 1.0, "bare LF headers must fail fast, not at the idle timeout")


if __name__ == "__main__":
    harness.main(globals())
