"""An SSE event over the gateway's event cap (8 MiB) ends the stream (issue 8
item 13): the client gets an error event at once, and the upstream
transfer is cancelled instead of being read to the end of a 64 MB event."""
import socket
import threading
import time

import harness
from harness import check, eq

EVENT_MB = 64


class HugeEventUpstream:
    """A provider that answers one normal chunk, then starts an event whose
    data line never ends (EVENT_MB of 'x'); it counts what it managed to
    send before the gateway hung up."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.sent = 0
        self.finished = threading.Event()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        conn, _ = self.sock.accept()
        try:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            while len(body) < length:
                body += conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                         b"Connection: close\r\n\r\n"
                         b'data: {"id":"c1","object":"chat.completion.chunk","choices":'
                         b'[{"index":0,"delta":{"role":"assistant","content":"hi"}}]}\n\n'
                         b"data: ")
            block = b"x" * 65536
            while self.sent < EVENT_MB << 20:
                conn.sendall(block)
                self.sent += len(block)
        except OSError:
            pass  # the gateway hung up: what we want
        finally:
            conn.close()
            self.finished.set()


def test_oversized_event_cancels_the_upstream(h):
    h.start_mock()
    for usage in (False, True):  # re-serialised events, and raw pass-through
        up = HugeEventUpstream()
        cfg = h.config(retry={"max_attempts": 1})
        cfg["upstreams"][0]["base_url"] = "http://127.0.0.1:%d/v1" % up.port
        if h.gw:
            h.gw.stop()
        h.start_gateway(cfg)
        body = {"model": "gpt-4o-mini", "stream": True,
                "messages": [{"role": "user", "content": "huge"}]}
        if usage:
            body["stream_options"] = {"include_usage": True}
        t0 = time.time()
        r = h.req("POST", "/v1/chat/completions", body, timeout=60)
        took = time.time() - t0
        eq(r.status, 200)
        text = r.body.decode(errors="replace")
        check(up.finished.wait(10), "the upstream connection was closed")
        print("  include_usage=%s: upstream sent %.1f MB of a %d MB event, client done in %.2f s"
              % (usage, up.sent / 1e6, EVENT_MB, took))
        check(up.sent < 24 << 20, "transfer cancelled near the 8 MiB cap, not read to the end "
              "(%d bytes sent)" % up.sent)
        check(took < 10, "the client was answered at once (%.2f s)" % took)
        check(text.rstrip().endswith('"code":"upstream_event_too_large"}}'),
              "the stream ends with the error event: ...%r" % text[-200:])


if __name__ == "__main__":
    harness.main(globals())
