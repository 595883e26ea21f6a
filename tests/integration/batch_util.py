"""Helpers of the batch plugin's integration tests: multipart uploads,
JSONL input files, polling a batch, reading result files, and a recording
proxy between sluice and the mock that logs which line each upstream call
was for."""
import http.client
import http.server
import json
import socketserver
import threading
import time

import harness

BOUNDARY = "sluiceBatchBoundary7x"


def form(fields, filename, data, boundary=BOUNDARY):
    """A multipart/form-data body: plain fields, then the file part."""
    out = b""
    for k, v in fields.items():
        out += ("--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n" % (boundary, k, v)).encode()
    out += ("--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"%s\"\r\n"
            "Content-Type: application/jsonl\r\n\r\n" % (boundary, filename)).encode()
    out += data + ("\r\n--%s--\r\n" % boundary).encode()
    return "multipart/form-data; boundary=" + boundary, out


def line(cid, content=None, model="gpt-4o-mini", mock=None, url="/v1/chat/completions", **extra):
    body = {"model": model, "messages": [{"role": "user", "content": content or ("line " + cid)}]}
    if mock:
        body["mock"] = mock
    body.update(extra)
    return json.dumps({"custom_id": cid, "method": "POST", "url": url, "body": body})


def jsonl(lines):
    return ("\n".join(lines) + "\n").encode()


def upload(h, data, purpose="batch", headers=None, filename="input.jsonl"):
    ctype, body = form({"purpose": purpose}, filename, data)
    hdrs = {"Content-Type": ctype}
    hdrs.update(headers or {})
    return h.req("POST", "/v1/files", body, hdrs)


def create(h, file_id, headers=None, window="24h", endpoint="/v1/chat/completions", **extra):
    body = {"input_file_id": file_id, "endpoint": endpoint, "completion_window": window}
    body.update(extra)
    return h.req("POST", "/v1/batches", body, headers)


FINAL = ("completed", "failed", "expired", "cancelled")


def wait(h, batch_id, headers=None, timeout=120, until=FINAL):
    deadline = time.time() + timeout
    seen = []
    while time.time() < deadline:
        r = h.req("GET", "/v1/batches/" + batch_id, headers=headers)
        harness.eq(r.status, 200, r.body)
        b = r.json()
        if not seen or seen[-1] != b["status"]:
            seen.append(b["status"])
        if b["status"] in until:
            b["_seen"] = seen
            return b
        time.sleep(0.05)
    raise AssertionError("batch %s not done in %ss: %r" % (batch_id, timeout, seen))


def content(h, file_id, headers=None):
    if not file_id:
        return []
    r = h.req("GET", "/v1/files/%s/content" % file_id, headers=headers)
    harness.eq(r.status, 200, r.body)
    return [json.loads(x) for x in r.body.decode().splitlines() if x.strip()]


def run_batch(h, lines, headers=None, timeout=120, **extra):
    r = upload(h, jsonl(lines), headers=headers)
    harness.eq(r.status, 200, r.body)
    r = create(h, r.json()["id"], headers=headers, **extra)
    harness.eq(r.status, 200, r.body)
    b = wait(h, r.json()["id"], headers=headers, timeout=timeout)
    return b, content(h, b["output_file_id"], headers), content(h, b["error_file_id"], headers)


class Recorder:
    """HTTP proxy to the mock that records, per call, the text of the last
    user message (the tests put the custom_id there) and a run number the
    test bumps on each restart of sluice."""

    def __init__(self, mock_port):
        self.mock_port = mock_port
        self.calls = []
        self.run = 0
        self.lock = threading.Lock()
        rec = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                try:
                    msgs = json.loads(body).get("messages", [])
                    text = msgs[-1]["content"] if msgs else ""
                except Exception:
                    text = ""
                with rec.lock:
                    rec.calls.append((rec.run, text))
                c = http.client.HTTPConnection("127.0.0.1", rec.mock_port, timeout=60)
                c.request("POST", self.path, body, {"Content-Type": "application/json"})
                resp = c.getresponse()
                data = resp.read()
                c.close()
                try:
                    self.send_response(resp.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # sluice was killed while this call was out

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
