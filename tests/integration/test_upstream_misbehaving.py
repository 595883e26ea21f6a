"""Upstreams that misbehave in ways the bundled mock does not (issue 8 items
11 and 12): answers compressed although identity was asked for, and answers
that never end.

sluice asks every upstream for `Accept-Encoding: identity`. An upstream that
answers gzip or deflate anyway is decoded (its usage still counted, the
client gets plain JSON or SSE it can read), a compression bomb is cut at the
response cap with a 502, and an encoding sluice cannot decode gives a clear
502 rather than bytes the client cannot read.

Many answers that never end are held by the gateway-wide budget of buffered
response bytes: past it, the request asking for more gets 503 at once (and
its transfer is cancelled), so memory stays bounded; one answer past its own
cap gets 502, also at once, instead of being read forever.

The upstream here is a small Python server, not the bundled mock.
"""
import gzip
import http.server
import json
import threading
import time
import zlib

import harness
from harness import check, eq

COMPLETION = {
    "id": "chatcmpl-gz", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello from gzip"},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
}


def sse_events():
    base = {"id": "chatcmpl-gz", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini"}
    events = []
    for delta, finish in (({"role": "assistant", "content": ""}, None), ({"content": "hello "}, None),
                          ({"content": "stream"}, None), ({}, "stop")):
        events.append(dict(base, choices=[{"index": 0, "delta": delta, "finish_reason": finish}]))
    events.append(dict(base, choices=[], usage={"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}))
    return [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]


class Upstream(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen_accept_encoding = []
    mode = "gzip"

    def log_message(self, *args):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(n))
        Upstream.seen_accept_encoding.append(self.headers.get("Accept-Encoding"))
        mode = Upstream.mode
        if body.get("stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            z = zlib.compressobj(wbits=31)
            for ev in sse_events():
                piece = z.compress(ev) + z.flush(zlib.Z_SYNC_FLUSH)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
            tail = z.flush()
            self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(tail), tail))
            return
        if mode == "gzip":
            data, coding = gzip.compress(json.dumps(COMPLETION).encode()), "gzip"
        elif mode == "deflate":
            data, coding = zlib.compress(json.dumps(COMPLETION).encode()), "deflate"
        elif mode == "bomb":
            # 80 MiB of spaces inside a JSON string: ~80 KiB compressed.
            z = zlib.compressobj(wbits=31)
            data = z.compress(b'{"pad":"') + z.compress(b" " * (80 << 20)) + z.compress(b'"}') + z.flush()
            coding = "gzip"
        elif mode == "endless":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            piece = b" " * 65536
            try:
                while True:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            except OSError:
                return  # the gateway gave up on us, as it should
        else:
            data, coding = b"\x00\x01 not really brotli", "br"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Encoding", coding)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def start(h, **limits):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    srv.daemon_threads = True
    srv.handle_error = lambda *args: None  # the gateway hanging up is expected
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    h.start_mock()  # the harness's default config expects a mock; unused here
    cfg = h.config()
    if limits:
        cfg["limits"] = limits
    cfg["upstreams"][0]["base_url"] = "http://127.0.0.1:%d/v1" % srv.server_address[1]
    h.start_gateway(cfg)
    Upstream.seen_accept_encoding.clear()
    return srv


def test_gzip_and_deflate_answers_are_decoded(h):
    srv = start(h)
    try:
        for mode in ("gzip", "deflate"):
            Upstream.mode = mode
            r = h.chat("hi")
            eq(r.status, 200, mode)
            check(r.header("content-encoding") in (None, "identity"), "no encoding left on the decoded body")
            eq(r.json()["choices"][0]["message"]["content"], "hello from gzip", mode)
        check(Upstream.seen_accept_encoding and all(v == "identity" for v in Upstream.seen_accept_encoding),
              "upstream asked for identity: %r" % Upstream.seen_accept_encoding)
    finally:
        srv.shutdown()


def test_gzip_stream_is_decoded_and_usage_counted(h):
    srv = start(h)
    try:
        r = h.chat("hi", stream=True, stream_options={"include_usage": True})
        eq(r.status, 200)
        text = r.body.decode()
        check("hello " in text and "stream" in text, text[:300])
        check(text.rstrip().endswith("data: [DONE]"), text[-200:])
        check('"prompt_tokens":5' in text.replace(" ", ""), "usage chunk relayed")
    finally:
        srv.shutdown()


def test_one_answer_past_its_cap_is_cut_at_once(h):
    srv = start(h, max_response_bytes=1 << 20)
    Upstream.mode = "endless"
    try:
        r = h.chat("hi", timeout=30)
        eq(r.status, 502)
        eq(r.json()["error"]["code"], "upstream_response_too_large")
    finally:
        srv.shutdown()


def test_bomb_and_unknown_encoding_give_502(h):
    srv = start(h)
    try:
        Upstream.mode = "bomb"
        r = h.chat("hi")
        eq(r.status, 502, "bomb")
        check("error" in r.json(), "OpenAI-style error")
        Upstream.mode = "br"
        r = h.chat("hi")
        eq(r.status, 502, "unsupported encoding")
        check("br" in r.json()["error"]["message"], r.body[:300])
        # The gateway is still fine afterwards.
        Upstream.mode = "gzip"
        eq(h.chat("hi").status, 200)
    finally:
        srv.shutdown()


def test_endless_answers_are_bounded_by_the_budget(h):
    # 8 concurrent answers that never end; all of them together may hold
    # 6 MiB, less than one answer's own cap, so whichever grows first
    # meets the budget. Before the budget, each was read until its own cap
    # and then on until the end that never came.
    srv = start(h, max_response_bytes=8 << 20, max_buffered_response_bytes=6 << 20)
    Upstream.mode = "endless"
    results = []

    def one():
        r = h.chat("hi", timeout=60)
        results.append((r.status, r.json()["error"]["code"]))

    try:
        t0 = time.time()
        threads = [threading.Thread(target=one) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        eq(len(results), 8, "every request answered")
        codes = sorted(results)
        check(all(r == (503, "buffer_budget_exceeded") for r in codes), codes)
        print("8 endless answers: %r in %.1fs" % (codes, time.time() - t0))
        m = h.metrics()
        check(m.get("sluice_response_budget_exceeded_total", 0) >= 1, "budget metric")
        # Nothing leaked: the budget is free again, so a normal answer fits.
        Upstream.mode = "gzip"
        eq(h.chat("hi").status, 200)
    finally:
        srv.shutdown()


if __name__ == "__main__":
    harness.main(globals())
