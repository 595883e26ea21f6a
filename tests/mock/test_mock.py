#!/usr/bin/env python3
"""Integration test of sluice-mock: starts it on an ephemeral port and checks
its behaviours over HTTP. curl is used where the client's view is the point
(stream pacing with -N, a truncated transfer, connection reuse).

Usage: test_mock.py path/to/sluice-mock
"""
import base64
import http.client
import json
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

FAILED = []
RUNNING = []  # mocks to kill if a section dies before stopping them


def check(name, cond, detail=""):
    print(("ok   - " if cond else "FAIL - ") + name)
    if not cond:
        FAILED.append(name)
        if detail:
            print("     got:", str(detail)[:600])


class Mock:
    def __init__(self, binary, *args):
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", "--quiet", *args],
            stdout=subprocess.PIPE, stderr=self.err)
        RUNNING.append(self.proc)
        ready, _, _ = select.select([self.proc.stdout], [], [], 10)
        line = self.proc.stdout.readline().decode() if ready else ""
        m = re.fullmatch(r"sluice-mock listening on 127\.0\.0\.1:(\d+)\n", line)
        if not m:
            self.proc.kill()
            sys.exit(f"mock did not start: {line!r} {self.stderr()}")
        self.port = int(m.group(1))
        self.base = f"http://127.0.0.1:{self.port}"

    def request(self, method, path, body=None, headers=None, timeout=10):
        """Returns (status, lower-cased headers, body bytes)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        conn.request(method, path, body=body,
                     headers={"Content-Type": "application/json", **(headers or {})})
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data

    def post(self, path, body, headers=None):
        status, hdrs, data = self.request("POST", path, body, headers)
        try:
            return status, hdrs, json.loads(data)
        except ValueError:
            return status, hdrs, data

    def stats(self):
        return json.loads(self.request("GET", "/mock/stats")[2])

    def reset(self):
        self.request("POST", "/mock/reset")

    def curl(self, path, body, *args):
        return subprocess.run(["curl", "-s", self.base + path, "-H",
                               "Content-Type: application/json", "-d",
                               json.dumps(body), *args],
                              capture_output=True, timeout=20)

    def stop(self, sig):
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=10)

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode(errors="replace")


def sse_data(raw):
    return [l[6:] for l in raw.decode().split("\n") if l.startswith("data: ")]


def stream_timed(mock, body):
    """Runs curl -N and stamps each SSE data line on arrival."""
    t0 = time.time()
    p = subprocess.Popen(["curl", "-sN", mock.base + "/v1/chat/completions",
                          "-H", "Content-Type: application/json", "-d",
                          json.dumps(body)], stdout=subprocess.PIPE)
    events = []
    for raw in iter(p.stdout.readline, b""):
        if raw.startswith(b"data: "):
            events.append((time.time() - t0, raw[6:].decode().strip()))
    p.wait()
    return events


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b))


def test_chat(m):
    s, _, d = m.post("/v1/chat/completions", {"model": "gpt-4o", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello mock, how are you today?"}]})
    check("chat: shape, id, model echo", s == 200
          and d["object"] == "chat.completion" and d["id"].startswith("chatcmpl-mock-")
          and d["model"] == "gpt-4o" and isinstance(d["created"], int)
          and len(d["choices"]) == 1 and d["choices"][0]["finish_reason"] == "stop"
          and d["choices"][0]["message"]["role"] == "assistant", d)
    content = d["choices"][0]["message"]["content"]
    check("chat: content answers the last user message",
          content == "mock reply to: Hello mock, how are you today?", content)
    u = d["usage"]
    check("chat: usage (chars/4, exact completion, cached 0)",
          u["prompt_tokens"] == (len("Be brief.") + len("Hello mock, how are you today?") + 3) // 4
          and u["completion_tokens"] == len(content.split())
          and u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
          and u["prompt_tokens_details"]["cached_tokens"] == 0, u)

    _, _, d = m.post("/v1/chat/completions", {"model": "any-model", "messages": [
        {"role": "user", "content": "x"}], "mock": {"completion_tokens": 30}})
    check("chat: completion_tokens knob sizes the reply",
          d["usage"]["completion_tokens"] == 30 and d["model"] == "any-model"
          and len(d["choices"][0]["message"]["content"].split()) == 30, d)
    _, _, d = m.post("/v1/chat/completions", {"model": "m", "max_tokens": 2, "messages": [
        {"role": "user", "content": "hello there"}]})
    check("chat: max_tokens truncates with finish_reason length",
          d["usage"]["completion_tokens"] == 2
          and d["choices"][0]["finish_reason"] == "length", d)


def test_chat_stream(m):
    ev = stream_timed(m, {"model": "gpt-4o", "stream": True, "messages": [
        {"role": "user", "content": "stream please"}],
        "mock": {"chunks": 5, "chunk_interval_ms": 100}})
    chunks = [json.loads(e[1]) for e in ev[:-1]]
    check("stream: role chunk, 5 content chunks, stop chunk, [DONE]",
          len(ev) == 8 and ev[-1][1] == "[DONE]"
          and chunks[0]["choices"][0]["delta"]["role"] == "assistant"
          and all(c["object"] == "chat.completion.chunk" for c in chunks)
          and "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
          == "mock reply to: stream please"
          and chunks[6]["choices"][0]["finish_reason"] == "stop", ev)
    gaps = [ev[i + 1][0] - ev[i][0] for i in range(1, 5)]
    check("stream: chunks arrive spaced (first well before last)",
          len(ev) == 8 and ev[5][0] - ev[1][0] >= 0.35 and min(gaps) >= 0.07,
          [round(e[0], 3) for e in ev])
    check("stream: no usage chunk unless asked",
          all("usage" not in c for c in chunks))

    ev = stream_timed(m, {"model": "gpt-4o", "stream": True,
                          "stream_options": {"include_usage": True},
                          "messages": [{"role": "user", "content": "count me"}]})
    usage = json.loads(ev[-2][1]) if len(ev) > 2 else {}
    check("stream: include_usage adds a usage chunk with choices []",
          ev[-1][1] == "[DONE]" and usage.get("choices") == []
          and usage["usage"]["completion_tokens"] == 5
          and usage["usage"]["prompt_tokens"] == 2, ev)

    _, _, raw = m.request("POST", "/v1/chat/completions", {
        "model": "m", "stream": True, "messages": [],
        "mock": {"chunks": 4, "malformed_sse": True}})
    lines = raw.decode().split("\n")
    check("stream: malformed_sse emits a non-SSE line mid-stream",
          any(l.startswith("garbage") for l in lines) and "data: [DONE]" in lines, raw)


def test_completions_and_responses(m):
    _, _, d = m.post("/v1/completions", {"model": "gpt-4o", "prompt": "Say hi"})
    check("completions: text_completion with choices[0].text",
          d["object"] == "text_completion"
          and d["choices"][0]["text"] == "mock reply to: Say hi"
          and d["usage"]["completion_tokens"] == 5, d)
    _, _, raw = m.request("POST", "/v1/completions", {
        "model": "gpt-4o", "prompt": "Say hi", "stream": True,
        "stream_options": {"include_usage": True}})
    data = sse_data(raw)
    check("completions: stream ends with usage then [DONE]",
          data[-1] == "[DONE]" and json.loads(data[-2])["usage"]["total_tokens"] == 7
          and json.loads(data[-3])["choices"][0]["finish_reason"] == "stop", data)

    _, _, d = m.post("/v1/responses", {"model": "gpt-4.1", "input": "Tell me a joke",
                                       "instructions": "Be funny"})
    check("responses: response object with output_text and usage",
          d["object"] == "response" and d["id"].startswith("resp_")
          and d["status"] == "completed"
          and d["output"][0]["content"][0]["type"] == "output_text"
          and d["output"][0]["content"][0]["text"] == "mock reply to: Tell me a joke"
          and d["usage"] == {**d["usage"], "input_tokens": 6, "output_tokens": 7,
                             "total_tokens": 13}, d)
    _, _, raw = m.request("POST", "/v1/responses", {
        "model": "gpt-4.1", "stream": True, "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "hi"}]}]})
    ev = []
    for block in raw.decode().split("\n\n"):
        lines = block.strip().split("\n")
        if len(lines) == 2 and lines[0].startswith("event: "):
            ev.append((lines[0][7:], json.loads(lines[1][6:])))
    check("responses: stream events created, deltas, completed with usage",
          ev[0][0] == "response.created" and ev[-1][0] == "response.completed"
          and all(name == e["type"] for name, e in ev)
          and sum(1 for name, _ in ev if name == "response.output_text.delta") == 4
          and ev[-1][1]["response"]["usage"]["output_tokens"] == 4, ev)


def test_embeddings(m):
    a = "The quick brown fox jumps over the lazy dog near the quiet river bank today"
    near = "The quick brown fox jumped over the lazy dog near the quiet river bank today!"
    other = "Quarterly revenue grew eight percent across European markets"
    _, _, d = m.post("/v1/embeddings", {"model": "text-embedding-3-small",
                                        "input": [a, near, other]})
    _, _, d2 = m.post("/v1/embeddings", {"model": "text-embedding-3-small", "input": a})
    v = [e["embedding"] for e in d["data"]]
    check("embeddings: 256 dims, L2-normalised, usage",
          d["object"] == "list" and [e["index"] for e in d["data"]] == [0, 1, 2]
          and all(len(x) == 256 for x in v) and abs(cosine(v[0], v[0]) - 1) < 1e-4
          and d["usage"]["prompt_tokens"] > 0
          and d["model"] == "text-embedding-3-small", d)
    check("embeddings: deterministic across requests",
          d2["data"][0]["embedding"] == v[0])
    check("embeddings: near-duplicate > 0.9, unrelated < 0.5",
          cosine(v[0], v[1]) > 0.9 and abs(cosine(v[0], v[2])) < 0.5,
          (cosine(v[0], v[1]), cosine(v[0], v[2])))
    _, _, b = m.post("/v1/embeddings", {"model": "e", "input": ["abc"], "dimensions": 1024,
                                        "encoding_format": "base64"})
    _, _, f = m.post("/v1/embeddings", {"model": "e", "input": ["abc"], "dimensions": 1024})
    decoded = struct.unpack("<1024f", base64.b64decode(b["data"][0]["embedding"]))
    as_f32 = struct.unpack("<1024f", struct.pack("<1024f", *f["data"][0]["embedding"]))
    check("embeddings: dimensions and base64 float32", decoded == as_f32)
    s, _, _ = m.post("/v1/embeddings", {"model": "e", "input": "x", "dimensions": 5000})
    check("embeddings: dimensions > 3072 is 400", s == 400, s)


def test_models_and_errors(m):
    d = json.loads(m.request("GET", "/v1/models")[2])
    check("models: lists the served models",
          {"gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "text-embedding-3-small"}
          <= {x["id"] for x in d["data"]}, d)
    s, h, d = m.post("/v1/chat/completions", '{"model": oops}')
    check("errors: invalid JSON is 400 invalid_request_error",
          s == 400 and h["content-type"] == "application/json"
          and d["error"]["type"] == "invalid_request_error"
          and d["error"]["code"] is None and d["error"]["message"], d)
    s, _, d = m.post("/v1/chat/completions", {"messages": []})
    check("errors: missing model is 400 with param model",
          s == 400 and d["error"]["param"] == "model", d)
    s, _, raw = m.request("GET", "/v1/nowhere")
    d = json.loads(raw)
    check("errors: unknown path is 404 in OpenAI shape",
          s == 404 and d["error"]["type"] == "invalid_request_error"
          and d["error"]["param"] is None, d)
    s, _, d = m.post("/v1/chat/completions", {"model": "m", "messages": [],
                                              "mock": {"latncy_ms": 5}})
    check("errors: unknown mock knob is 400", s == 400, d)


def test_faults(m):
    s, h, d = m.post("/v1/chat/completions", {"model": "m", "messages": []},
                     {"x-mock-status": "503", "x-mock-retry-after": "2"})
    check("headers: x-mock-status 503 with Retry-After, server_error",
          s == 503 and h.get("retry-after") == "2"
          and d["error"]["type"] == "server_error", (s, h, d))
    s, _, d = m.post("/v1/chat/completions", {"model": "m", "messages": [], "mock": {
        "status": 429, "error_message": "slow down"}})
    check("body: status 429 with custom message",
          s == 429 and d["error"]["message"] == "slow down"
          and d["error"]["type"] == "rate_limit_error"
          and d["error"]["code"] == "rate_limit_exceeded", d)
    t0 = time.time()
    m.post("/v1/chat/completions", {"model": "m", "messages": []}, {"x-mock-latency-ms": "300"})
    took = time.time() - t0
    check(f"latency: the reply waits latency_ms ({took:.3f} s)", took >= 0.29)


def test_config(m):
    m.reset()
    m.post("/mock/config", {"status": 500, "count": 2})
    codes = [m.post("/v1/chat/completions", {"model": "m", "messages": []})[0],
             m.post("/v1/embeddings", {"model": "m", "input": "x"})[0],
             m.post("/v1/chat/completions", {"model": "m", "messages": []})[0]]
    check("config: count applies to the next N requests", codes == [500, 500, 200], codes)
    m.post("/mock/config", {"latency_ms": 1})
    d = json.loads(m.request("GET", "/mock/config")[2])
    check("config: GET shows the global knobs",
          d["faults"] == {"latency_ms": 1} and d["remaining"] is None, d)
    m.reset()
    d = json.loads(m.request("GET", "/mock/config")[2])
    check("config: reset clears it", d["faults"] == {} and d["capacity_rps"] == 0, d)


def test_capacity(m):
    m.reset()
    m.post("/mock/config", {"capacity_rps": 2})
    r = [m.post("/v1/chat/completions", {"model": "m", "messages": []}) for _ in range(3)]
    check("capacity: rps burst of 1 s then 429", [x[0] for x in r] == [200, 200, 429],
          [x[0] for x in r])
    check("capacity: 429 body is rate_limit_error",
          r[2][2]["error"]["type"] == "rate_limit_error"
          and r[2][2]["error"]["code"] == "rate_limit_exceeded", r[2][2])
    h1, h3 = r[0][1], r[2][1]
    check("capacity: Retry-After and x-ratelimit-* headers on 2xx and 429",
          h3.get("retry-after") == "1" and h3.get("x-ratelimit-limit-requests") == "2"
          and h3.get("x-ratelimit-remaining-requests") == "0"
          and re.fullmatch(r"\d+ms|[\d.]+s", h3.get("x-ratelimit-reset-requests", ""))
          and h1.get("x-ratelimit-remaining-requests") == "1", (h1, h3))
    time.sleep(0.6)
    s = m.post("/v1/chat/completions", {"model": "m", "messages": []})[0]
    check("capacity: the bucket refills", s == 200, s)
    m.reset()
    m.post("/mock/config", {"capacity_tpm": 6000})
    body = {"model": "m", "max_tokens": 60, "messages": []}
    (s1, h1, _), (s2, h2, _) = [m.post("/v1/chat/completions", body) for _ in range(2)]
    check("capacity: tpm bucket charges prompt + max_tokens",
          (s1, s2) == (200, 429) and h1.get("x-ratelimit-limit-tokens") == "100"
          and h1.get("x-ratelimit-remaining-tokens") == "39"
          and h2.get("x-ratelimit-reset-tokens"), (s1, s2, h1, h2))
    m.reset()


def test_stats_and_connections(m):
    m.reset()
    m.post("/v1/chat/completions", {"model": "m", "messages": []})
    m.request("POST", "/v1/chat/completions", {"model": "m", "stream": True, "messages": []})
    m.post("/v1/embeddings", {"model": "m", "input": "x"})
    m.post("/v1/chat/completions", {"model": "m", "messages": [], "mock": {"status": 503}})
    m.post("/v1/chat/completions", {"model": "m", "messages": [], "mock": {"status": 429}})
    m.request("GET", "/v1/nowhere")
    m.stats()
    d = m.stats()
    check("stats: counters by endpoint, status class and stream",
          d["requests"] == 6 and d["chat_completions"] == 4 and d["embeddings"] == 1
          and d["not_found"] == 1 and d["status_2xx"] == 3 and d["status_4xx"] == 2
          and d["status_5xx"] == 1 and d["rate_limited"] == 1
          and d["streams_started"] == 1 and d["streams_completed"] == 1
          and d["in_flight"] == 0 and d["max_in_flight"] >= 1
          and d["connections_accepted"] == 6, d)

    m.reset()
    m.curl("/v1/chat/completions", {"model": "m", "stream": True, "messages": [],
                                     "mock": {"chunks": 20, "chunk_interval_ms": 100}},
           "-N", "-m", "0.4")
    hang = m.curl("/v1/chat/completions", {"model": "m", "messages": [],
                                           "mock": {"hang": True}}, "-m", "0.3")
    m.curl("/v1/chat/completions", {"model": "m", "messages": [],
                                    "mock": {"latency_ms": 5000}}, "-m", "0.3")
    time.sleep(0.2)
    check("hang: the client times out", hang.returncode == 28, hang.returncode)
    d = m.stats()
    check("disconnects: client closes seen during stream, hang and latency",
          d["streams_started"] == 1 and d["streams_client_closed"] == 1
          and d["client_closed"] == 3 and d["in_flight"] == 0
          and d["connections_open"] == 0, d)

    m.reset()
    r = m.curl("/v1/chat/completions", {"model": "m", "stream": True, "messages": [],
                                        "mock": {"chunks": 10, "chunk_interval_ms": 20,
                                                 "reset_after_chunks": 3}}, "-N")
    data = sse_data(r.stdout)
    check(f"reset_after_chunks: curl sees a truncated transfer (rc {r.returncode})",
          r.returncode != 0 and len(data) == 4 and "[DONE]" not in data, data)
    d = m.stats()
    check("reset_after_chunks: counted as streams_reset",
          d["streams_reset"] == 1 and d["streams_completed"] == 0 and d["in_flight"] == 0, d)

    m.reset()
    r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null",
                        "-w", "%{num_connects} "] + [m.base + "/v1/models"] * 3,
                       capture_output=True, timeout=20)
    d = m.stats()
    check("keep-alive: curl reuses one connection for three requests",
          r.stdout.split() == [b"1", b"0", b"0"] and d["requests"] == 3
          and d["connections_accepted"] == 1, (r.stdout, d))

    m.reset()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", m.port))
    body = json.dumps({"model": "m", "stream": True, "messages": [],
                       "mock": {"completion_tokens": 1000000, "chunks": 5000}}).encode()
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
              % len(body) + body)
    a, b = {"stream_bytes": -1}, m.stats()
    deadline = time.time() + 5
    while a["stream_bytes"] != b["stream_bytes"] and time.time() < deadline:
        time.sleep(0.3)  # until the kernel buffers are full and the stream stalls
        a, b = b, m.stats()
    got = 0
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    s.settimeout(10)
    while True:  # now read it all
        chunk = s.recv(1 << 20)
        got += len(chunk)
        if not chunk or m.stats()["streams_completed"]:
            break
    s.close()
    check("backpressure: a reader that stops reading stops the stream",
          0 < b["stream_bytes"] < 5000000
          and b["streams_completed"] == 0 and m.stats()["streams_completed"] == 1,
          (a["stream_bytes"], b["stream_bytes"], got))

    m.reset()
    conns = [http.client.HTTPConnection("127.0.0.1", m.port, timeout=10) for _ in range(3)]
    for c in conns:  # three connections open at once, each after one request
        c.request("GET", "/v1/models")
        c.getresponse().read()
    d = m.stats()
    check("peak_connections: the most client connections open at once",
          d["connections_open"] == 3 and d["peak_connections"] == 3, d)
    for c in conns:
        c.close()
    deadline = time.time() + 5
    while m.stats()["connections_open"] and time.time() < deadline:
        time.sleep(0.02)
    before = m.stats()
    m.reset()
    d = m.stats()
    check("peak_connections: kept after the closes, reset lowers it to connections_open",
          before["peak_connections"] == 3 and before["connections_open"] == 0
          and d["peak_connections"] == 0, (before, d))


def test_threads(binary):
    m = Mock(binary, "--threads", "2", "--latency-ms", "10", "--chunks", "3")
    procs = [subprocess.Popen(["curl", "-sN", m.base + "/v1/chat/completions", "-d",
                               '{"model":"m","stream":true,"messages":[]}'],
                              stdout=subprocess.PIPE) for _ in range(8)]
    outs = [sse_data(p.communicate(timeout=20)[0]) for p in procs]
    d = m.stats()
    check("threads: 2 workers share the port, all streams complete",
          d["streams_completed"] == 8 and d["in_flight"] == 0
          and all(o and o[-1] == "[DONE]" for o in outs), d)
    check("threads: --chunks default applies", all(len(o) == 6 for o in outs),
          [len(o) for o in outs])
    return m


def test_files_and_batches(m):
    lines = [{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi a"}]}},
             {"custom_id": "b", "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": "gpt-4o", "messages": [], "mock": {"status": 500}}}]
    data = "".join(json.dumps(x) + "\n" for x in lines)
    body = ("--XyZ\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n"
            "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"in.jsonl\"\r\n"
            "Content-Type: application/jsonl\r\n\r\n" + data + "\r\n--XyZ--\r\n")
    s, _, b = m.request("POST", "/v1/files", body,
                        {"Content-Type": "multipart/form-data; boundary=XyZ"})
    f = json.loads(b)
    check("files: multipart upload answers a file object",
          s == 200 and f["object"] == "file" and f["bytes"] == len(data), b)
    s, _, b = m.request("GET", "/v1/files/%s/content" % f["id"])
    check("files: content is the uploaded bytes", s == 200 and b.decode() == data, b)
    s, _, b = m.request("POST", "/v1/batches", {"input_file_id": f["id"], "endpoint": "/v1/chat/completions",
                                                "completion_window": "24h",
                                                "metadata": {"mock_delay_ms": "200"}})
    bt = json.loads(b)
    check("batches: created in validating", s == 200 and bt["status"] == "validating", b)
    seen = []
    for _ in range(100):
        bt = json.loads(m.request("GET", "/v1/batches/" + bt["id"])[2])
        seen.append(bt["status"])
        if bt["status"] == "completed":
            break
        time.sleep(0.02)
    check("batches: in_progress, then completed after the delay",
          "in_progress" in seen and seen[-1] == "completed", seen)
    check("batches: request_counts", bt["request_counts"] == {"total": 2, "completed": 1, "failed": 1}, bt)
    out = m.request("GET", "/v1/files/%s/content" % bt["output_file_id"])[2].decode().splitlines()
    err = m.request("GET", "/v1/files/%s/content" % bt["error_file_id"])[2].decode().splitlines()
    o, e = json.loads(out[0]), json.loads(err[0])
    check("batches: output keyed by custom_id with the mock's answer",
          len(out) == 1 and o["custom_id"] == "a" and o["response"]["status_code"] == 200
          and o["response"]["body"]["choices"][0]["message"]["content"] == "mock reply to: hi a", out)
    check("batches: a failing line goes to the error file",
          len(err) == 1 and e["custom_id"] == "b" and e["response"]["status_code"] == 500, err)
    s, _, b = m.request("POST", "/v1/batches", {"input_file_id": f["id"], "endpoint": "/v1/chat/completions",
                                                "completion_window": "24h",
                                                "metadata": {"mock_delay_ms": "600000"}})
    bid = json.loads(b)["id"]
    s, _, b = m.request("POST", "/v1/batches/%s/cancel" % bid)
    check("batches: cancel answers cancelling", s == 200 and json.loads(b)["status"] == "cancelling", b)
    bt = json.loads(m.request("GET", "/v1/batches/" + bid)[2])
    check("batches: then cancelled, lines in the error file",
          bt["status"] == "cancelled" and bt["request_counts"]["failed"] == 2, bt)
    s, _, b = m.request("POST", "/v1/batches", {"input_file_id": f["id"], "endpoint": "/v1/chat/completions",
                                                "completion_window": "24h", "metadata": {"mock_status": "400"}})
    check("batches: metadata.mock_status refuses creation", s == 400, b)
    lst = json.loads(m.request("GET", "/v1/files?purpose=batch")[2])
    check("files: the list filters by purpose", [x["id"] for x in lst["data"]] == [f["id"]], lst)
    lst = json.loads(m.request("GET", "/v1/batches")[2])
    check("batches: the list, newest first", [x["status"] for x in lst["data"]] == ["cancelled", "completed"], lst)
    d = json.loads(m.request("GET", "/mock/stats")[2])
    check("stats: files and batches counters",
          d["files_uploaded"] == 1 and d["batches_created"] == 2 and d["batch_cancels"] == 1
          and d["batch_lines"] == 2 and d["file_contents"] == 3
          and d["file_lists"] == 1 and d["batch_lists"] == 1, d)


def run(name, fn, *args):
    try:
        return fn(*args)
    except Exception as e:  # a broken section fails, the others still run
        check(f"{name} raised {type(e).__name__}: {e}", False)


def main():
    binary = sys.argv[1]
    m = Mock(binary)
    check("starts on port 0 and prints its address", True)
    for fn in (test_chat, test_chat_stream, test_completions_and_responses,
               test_embeddings, test_models_and_errors, test_faults, test_config,
               test_capacity, test_stats_and_connections, test_files_and_batches):
        run(fn.__name__, fn, m)
    # Stop while a hung request and a slow stream are open: both must be
    # torn down cleanly (exit 0, no leak reports).
    body = {"model": "m", "messages": [], "stream": True,
            "mock": {"chunks": 50, "chunk_interval_ms": 100}}
    open_calls = [subprocess.Popen(["curl", "-sN", m.base + "/v1/chat/completions", "-d",
                                    json.dumps(b)], stdout=subprocess.DEVNULL)
                  for b in (body, {"model": "m", "messages": [], "mock": {"hang": True}})]
    time.sleep(0.3)
    check("SIGTERM exits 0, with calls still open", m.stop(signal.SIGTERM) == 0)
    for p in open_calls:
        p.wait(timeout=10)
    m2 = run("test_threads", test_threads, binary)
    if m2:
        check("SIGINT exits 0", m2.stop(signal.SIGINT) == 0)
    logs = m.stderr() + (m2.stderr() if m2 else "")
    check("sanitizers: no reports",
          not re.search(r"ERROR: \w*Sanitizer|WARNING: ThreadSanitizer|runtime error", logs),
          logs)
    print(f"# {len(FAILED)} failed")
    return 1 if FAILED else 0


if __name__ == "__main__":
    try:
        rc = main()
    finally:
        for proc in RUNNING:
            if proc.poll() is None:
                proc.kill()
    sys.exit(rc)
