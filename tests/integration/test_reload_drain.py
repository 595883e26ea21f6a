"""SIGHUP reload under load, Lua policy hot reload, SIGTERM drain."""
import json
import os
import signal
import socket
import threading
import time

import harness
from harness import check, eq


def load(h, stop, results, model="gpt-4o-mini"):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", h.gw.port, timeout=30)
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "x"}],
                       "mock": {"latency_ms": 5}})
    while not stop.is_set():
        try:
            conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            results.append(r.status)
        except Exception as e:  # a dropped connection is a failure too
            results.append(repr(e))
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", h.gw.port, timeout=30)
    conn.close()


def test_sighup_reload_under_load_drops_nothing(h):
    h.start_mock()
    cfg = h.config()
    h.start_gateway(cfg)
    stop = threading.Event()
    results = []
    threads = [threading.Thread(target=load, args=(h, stop, results)) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    gen0 = h.req("GET", "/admin/status").json()["config_generation"]
    for i in range(3):
        cfg["pipeline"] = [{"plugin": "noop", "name": "noop_%d" % j, "config": {}} for j in range(i + 1)]
        h.write_config(cfg)
        h.gw.signal(signal.SIGHUP)
        time.sleep(0.4)
    # A broken config is refused and the old one keeps serving.
    with open(h.config_path, "w") as f:
        f.write('{"upstreams": [], "listen": 5}')
    h.gw.signal(signal.SIGHUP)
    time.sleep(0.4)
    stop.set()
    for t in threads:
        t.join()
    bad = [r for r in results if r != 200]
    check(len(results) > 50, "load ran: %d requests" % len(results))
    eq(bad, [], "no failed requests during reloads")
    st = h.req("GET", "/admin/status").json()
    eq(st["config_generation"], gen0 + 3, "three reloads applied")
    eq(len(st["plugins"]), 3)
    m = h.metrics()
    eq(m.get('sluice_reloads_total{result="ok"}'), 3.0)
    eq(m.get('sluice_reloads_total{result="refused"}'), 1.0)
    check("refused" in h.gw.stderr())


POLICY_V1 = """
function decide(req, ctx)
  if req.model == "blocked-model" then
    return { action = "reject", status = 403, message = "model blocked by policy" }
  end
  return nil
end
"""

POLICY_V2 = """
function decide(req, ctx)
  if req.model == "blocked-model" then
    return { model = "gpt-4o-mini", tags = {"rewritten"} }
  end
  return nil
end
"""


def test_policy_hot_reload(h):
    h.start_mock()
    script = os.path.join(h.tmp, "policy.lua")
    with open(script, "w") as f:
        f.write(POLICY_V1)
    h.start_gateway(h.config(policy={"script": script}))
    r = h.chat("x", model="blocked-model")
    eq(r.status, 403)
    eq(r.json()["error"]["message"], "model blocked by policy")
    with open(script, "w") as f:
        f.write(POLICY_V2)
    h.gw.signal(signal.SIGHUP)
    time.sleep(0.5)
    r = h.chat("x", model="blocked-model")
    eq(r.status, 200, r.body)
    eq(r.header("x-sluice-model"), "gpt-4o-mini")
    # A broken edit keeps the last good policy running.
    with open(script, "w") as f:
        f.write("function decide(req, ctx) return {")
    h.gw.signal(signal.SIGHUP)
    time.sleep(0.5)
    eq(h.chat("x", model="blocked-model").status, 200)


def test_policy_file_watch(h):
    h.start_mock()
    script = os.path.join(h.tmp, "policy.lua")
    with open(script, "w") as f:
        f.write(POLICY_V1)
    h.start_gateway(h.config(policy={"script": script, "watch": True}))
    eq(h.chat("x", model="blocked-model").status, 403)
    time.sleep(1.1)  # mtime has one-second resolution
    with open(script, "w") as f:
        f.write(POLICY_V2)
    deadline = time.time() + 5
    status = None
    while time.time() < deadline:
        status = h.chat("x", model="blocked-model").status
        if status == 200:
            break
        time.sleep(0.2)
    eq(status, 200, "new policy picked up without a signal")


def test_sigterm_drains_in_flight(h):
    h.start_mock()
    h.start_gateway(h.config(limits={"drain_timeout_ms": 10000}))
    out = {}

    def slow():
        out["r"] = h.chat("slow", mock={"latency_ms": 1500})

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.4)
    h.gw.signal(signal.SIGTERM)
    time.sleep(0.3)
    refused = False
    try:
        s = socket.create_connection(("127.0.0.1", h.gw.port), timeout=1)
        s.close()
    except OSError:
        refused = True
    check(refused, "new connections refused while draining")
    t.join()
    eq(out["r"].status, 200, "in-flight request finished")
    eq(h.gw.wait(timeout=15), 0, "exit code 0 after drain")


def test_sigterm_drain_timeout_closes_stragglers(h):
    h.start_mock()
    h.start_gateway(h.config(limits={"drain_timeout_ms": 300}))
    out = {}

    def hung():
        try:
            out["r"] = h.chat("hang", mock={"hang": True})
        except Exception as e:
            out["e"] = e

    t = threading.Thread(target=hung)
    t.start()
    time.sleep(0.3)
    t0 = time.time()
    h.gw.signal(signal.SIGTERM)
    eq(h.gw.wait(timeout=15), 0)
    check(time.time() - t0 < 5, "exited soon after the drain timeout")
    t.join()


if __name__ == "__main__":
    harness.main(globals())
