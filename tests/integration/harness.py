"""Integration test harness: starts the real sluice binary and the bundled
mock provider on 127.0.0.1 (ephemeral ports) and talks HTTP to them.

Only the Python standard library is used. A test module defines test_*
functions taking a `ctx` (Harness) and calls `harness.main(globals())`.
"""
import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Proc:
    """A child process whose first stdout line(s) announce its port."""

    def __init__(self, argv, pattern, env=None, timeout=15):
        self.argv = argv
        self.log = tempfile.NamedTemporaryFile(prefix="sluice-test-", suffix=".log", delete=False)
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.log,
                                  env=env, text=True, bufsize=1)
        deadline = time.time() + timeout
        self.port = None
        self.lines = []
        while time.time() < deadline:
            line = self.p.stdout.readline()
            if not line:
                if self.p.poll() is not None:
                    break
                continue
            self.lines.append(line)
            m = re.search(pattern, line)
            if m:
                self.port = int(m.group(1))
                break
        if self.port is None:
            self.stop()
            raise RuntimeError("%s did not start: %s\n%s" % (argv[0], "".join(self.lines), self.stderr()))

    def stderr(self):
        try:
            with open(self.log.name) as f:
                return f.read()
        except OSError:
            return ""

    def alive(self):
        return self.p.poll() is None

    def signal(self, sig):
        self.p.send_signal(sig)

    def wait(self, timeout=30):
        return self.p.wait(timeout=timeout)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        return self.p.returncode


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body

    def json(self):
        return json.loads(self.body)

    def header(self, name):
        return self.headers.get(name.lower())


def request(port, method, path, body=None, headers=None, timeout=30):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    hdrs = {"Content-Type": "application/json"}
    hdrs.update(headers or {})
    data = body
    if isinstance(body, (dict, list)):
        data = json.dumps(body)
    conn.request(method, path, body=data, headers=hdrs)
    r = conn.getresponse()
    out = Response(r.status, r.getheaders(), r.read())
    conn.close()
    return out


def raw(port, data, timeout=5, read_until_close=True):
    """Sends raw bytes; returns everything read until close or timeout."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    chunks = []
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
            if not read_until_close:
                break
    except socket.timeout:
        pass
    s.close()
    return b"".join(chunks)


def read_request(conn):
    """For a scripted provider: one request off an accepted socket, as
    (head, body) bytes. The body is read to its Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
    while len(body) < length:
        body += conn.recv(65536)
    return head, body


def parse_metrics(text):
    """Prometheus text → {name{labels}: value}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        try:
            out[key] = float(value)
        except ValueError:
            pass
    return out


class Harness:
    def __init__(self, build_dir):
        self.build_dir = build_dir
        self.tmp = tempfile.mkdtemp(prefix="sluice-it-")
        self.procs = []
        self.mock = None
        self.gw = None
        self.admin_headers = {}  # e.g. an admin key when auth is on

    def start_mock(self, *args):
        self.mock = Proc([os.path.join(self.build_dir, "sluice-mock"), "--listen", "127.0.0.1:0", "--quiet", *args],
                         r"listening on 127\.0\.0\.1:(\d+)")
        self.procs.append(self.mock)
        return self.mock

    def config(self, **over):
        """A config pointing at the mock; keyword arguments override keys."""
        cfg = {
            "listen": "127.0.0.1:0",
            "workers": 2,
            "upstreams": [{"name": "mock", "base_url": "http://127.0.0.1:%d/v1" % self.mock.port,
                           "models": ["*"], "connect_timeout_ms": 2000,
                           "first_byte_timeout_ms": 10000, "idle_timeout_ms": 10000}],
            "plugin_dir": os.path.join(self.build_dir, "plugins"),
            "pipeline": [],
            "log": {"level": "info", "access_log": ""},
        }
        cfg.update(over)
        return cfg

    def write_config(self, cfg, name="sluice.json"):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            json.dump(cfg, f, indent=1)
        return path

    def start_gateway(self, cfg=None, env=None, path=None):
        if path is None:
            path = self.write_config(cfg if cfg is not None else self.config())
        e = dict(os.environ)
        e.update(env or {})
        self.gw = Proc([os.path.join(self.build_dir, "sluice"), "serve", "-c", path],
                       r"listening on http://[^:]+:(\d+)", env=e)
        self.procs.append(self.gw)
        self.config_path = path
        return self.gw

    def sluice(self, *args, env=None):
        e = dict(os.environ)
        e.update(env or {})
        return subprocess.run([os.path.join(self.build_dir, "sluice"), *args], capture_output=True,
                              text=True, env=e, timeout=60)

    def req(self, method, path, body=None, headers=None, timeout=30):
        return request(self.gw.port, method, path, body, headers, timeout)

    def chat(self, content="hello", model="gpt-4o-mini", headers=None, **extra):
        body = {"model": model, "messages": [{"role": "user", "content": content}]}
        body.update(extra)
        return self.req("POST", "/v1/chat/completions", body, headers)

    def mock_stats(self):
        return request(self.mock.port, "GET", "/mock/stats").json()

    def mock_config(self, **cfg):
        return request(self.mock.port, "POST", "/mock/config", cfg)

    def metrics(self):
        return parse_metrics(self.req("GET", "/metrics", headers=self.admin_headers).body.decode())

    def close(self):
        for p in reversed(self.procs):
            p.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


def check(cond, msg="check failed"):
    if not cond:
        raise AssertionError(msg)


def eq(a, b, msg=""):
    if a != b:
        raise AssertionError("%s: expected %r, got %r" % (msg or "eq", b, a))


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "WARNING: ThreadSanitizer",
                   "runtime error:", "SUMMARY: UndefinedBehaviorSanitizer")


def sanitizer_report(text):
    """The first sanitizer report in a process's stderr, or ''."""
    for mark in SANITIZER_MARKS:
        i = text.find(mark)
        if i >= 0:
            return text[max(0, i - 200):i + 4000]
    return ""


def main(namespace):
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    ap.add_argument("-k", default="")
    args, _ = ap.parse_known_args()
    tests = [(n, f) for n, f in sorted(namespace.items()) if n.startswith("test_") and callable(f) and args.k in n]
    passed = failed = 0
    for name, fn in tests:
        h = Harness(args.build_dir)
        t0 = time.time()
        try:
            fn(h)
            for p in h.procs:
                p.stop()
                report = sanitizer_report(p.stderr())
                if report:
                    raise AssertionError("%s printed a sanitizer report:\n%s" % (p.argv[0], report))
            passed += 1
            print("PASS %s (%.1fs)" % (name, time.time() - t0), flush=True)
        except Exception:
            failed += 1
            print("FAIL %s" % name, flush=True)
            traceback.print_exc()
            for p in h.procs:
                err = p.stderr()
                if err:
                    print("--- stderr of %s (last 3000 chars) ---\n%s" % (p.argv[0], err[-3000:]))
        finally:
            h.close()
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)
