"""The usage chunk the gateway asks for (so streams are accounted) is taken
out of streams whose client did not ask for it, and nothing else changes:
events that arrive whole in one read pass byte for byte (CRLF line ends,
comments, event names, multi-line data), and events split across reads
reach the client complete and in order, however the upstream cut them.
A scripted provider sends one fixed stream, whole or in small pieces."""
import re
import socket
import threading
import time

import harness
from harness import check, eq

USAGE = (b'data: {"id":"c1","object":"chat.completion.chunk","choices":[],'
         b'"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}\n\n')
STREAM = (b": keep-alive\r\n\r\n"
          b'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,'
          b'"delta":{"role":"assistant","content":""}}]}\r\n\r\n'
          b'event: message\ndata: {"id":"c1","object":"chat.completion.chunk","choices":'
          b'[{"index":0,"delta":{"content":"Hel"}}]}\n\n'
          b'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,\n'
          b'data: "delta":{"content":"lo"},"finish_reason":"stop"}]}\n\n'
          + USAGE +
          b"data: [DONE]\n\n")


class ScriptedUpstream:
    """Answers every request with STREAM, chunked, either in one write or
    in pieces of the size named by the request's message ("split:N")."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.answer, args=(conn,), daemon=True).start()

    def answer(self, conn):
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            _, body = harness.read_request(conn)
            m = re.search(rb"split:(\d+)", body)
            size = int(m.group(1)) if m else len(STREAM)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                         b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
            for at in range(0, len(STREAM), size):
                piece = STREAM[at:at + size]
                conn.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                if m:
                    time.sleep(0.002)  # separate reads at the gateway, mostly
            conn.sendall(b"0\r\n\r\n")
        except OSError:
            pass
        finally:
            conn.close()


def events(raw):
    """(event name, data) per SSE event, by the spec's rules."""
    out = []
    for block in re.split(r"\r\n\r\n|\n\n|\r\r", raw.decode()):
        name, data = None, []
        for line in re.split(r"\r\n|\n|\r", block):
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
        if data:
            out.append((name, "\n".join(data)))
    return out


def ask(h, content):
    return h.req("POST", "/v1/chat/completions",
                 {"model": "gpt-4o-mini", "stream": True,
                  "messages": [{"role": "user", "content": content}]})


def test_usage_chunk_stripped_and_the_rest_untouched(h):
    h.start_mock()  # for the config's shape; the upstream is the scripted one
    up = ScriptedUpstream()
    cfg = h.config(retry={"max_attempts": 1})
    cfg["upstreams"][0]["base_url"] = "http://127.0.0.1:%d/v1" % up.port
    h.start_gateway(cfg)

    whole = ask(h, "whole")
    eq(whole.status, 200)
    eq(whole.body, STREAM.replace(USAGE, b""), "byte for byte, less the usage chunk")

    expected = events(STREAM.replace(USAGE, b""))
    for size in (1, 2, 3, 7, 13, 64):
        r = ask(h, "split:%d" % size)
        eq(r.status, 200)
        eq(events(r.body), expected, "pieces of %d bytes" % size)
        check(b'"usage"' not in r.body, "no usage chunk (pieces of %d)" % size)

    m = h.metrics()
    eq(m.get("sluice_completion_tokens_total"), 2.0 * 7, "usage of all 7 streams accounted")


if __name__ == "__main__":
    harness.main(globals())
