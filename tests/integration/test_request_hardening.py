"""Request-path hardening (issue 8): policy tags shown, invalid decisions
under fail: closed, bounded model names and log lines, plugin names checked
against their descriptor, and the policy watcher's view of edits."""
import json
import os
import time

import harness
from harness import check, eq


def write(path, text, mtime_ns=None):
    with open(path, "w") as f:
        f.write(text)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))


def access_lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def wait_for_lines(path, n, timeout=5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(path):
            lines = access_lines(path)
            if len(lines) >= n:
                return lines
        time.sleep(0.05)
    raise AssertionError("fewer than %d access-log lines in %s" % (n, path))


TAGS_POLICY = """
function decide(req, ctx)
  return { tags = { "cheap", "eu" } }
end
"""


def test_policy_tags_in_header_log_and_metric(h):
    h.start_mock()
    script = os.path.join(h.tmp, "tags.lua")
    write(script, TAGS_POLICY)
    log = os.path.join(h.tmp, "access.log")
    h.start_gateway(h.config(policy={"script": script}, workers=1,
                             log={"level": "info", "access_log": log}))
    r = h.chat("x")
    eq(r.status, 200, r.body)
    eq(r.header("x-sluice-tags"), "cheap,eu", "tags in a response header")
    line = wait_for_lines(log, 1)[0]
    eq(line.get("tags"), "cheap,eu", "tags in the access log")
    m = h.metrics()
    eq(m.get('sluice_policy_tags_total{tag="cheap"}'), 1.0, "tag metric")
    eq(m.get('sluice_policy_tags_total{tag="eu"}'), 1.0, "tag metric")


MANY_TAGS_POLICY = """
local n = 0
function decide(req, ctx)
  n = n + 1
  return { tags = { "t" .. n } }
end
"""


def test_policy_tag_metric_cardinality_is_bounded(h):
    h.start_mock()
    script = os.path.join(h.tmp, "many.lua")
    write(script, MANY_TAGS_POLICY)
    h.start_gateway(h.config(policy={"script": script}, workers=1))
    for _ in range(40):
        eq(h.chat("x").status, 200)
    m = h.metrics()
    series = [k for k in m if k.startswith("sluice_policy_tags_total{")]
    eq(len(series), 33, "32 tags and _other")
    eq(m.get('sluice_policy_tags_total{tag="_other"}'), 8.0)


UNKNOWN_UPSTREAM_POLICY = """
function decide(req, ctx)
  return { upstream = "no-such-upstream" }
end
"""


def test_fail_closed_policy_with_unknown_upstream_fails(h):
    h.start_mock()
    script = os.path.join(h.tmp, "bad_route.lua")
    write(script, UNKNOWN_UPSTREAM_POLICY)
    h.start_gateway(h.config(policy={"script": script, "fail": "closed"}))
    r = h.chat("x")
    eq(r.status, 500, r.body)
    eq(r.json()["error"]["code"], "policy_error")
    eq(h.mock_stats()["requests"], 0, "nothing forwarded")
    check("no-such-upstream" in h.gw.stderr(), "the reason is logged")
    eq(h.metrics().get("sluice_policy_errors_total"), 1.0)


def test_fail_open_policy_with_unknown_upstream_uses_default_route(h):
    h.start_mock()
    script = os.path.join(h.tmp, "bad_route.lua")
    write(script, UNKNOWN_UPSTREAM_POLICY)
    h.start_gateway(h.config(policy={"script": script, "fail": "open"}))
    r = h.chat("x")
    eq(r.status, 200, r.body)
    eq(r.header("x-sluice-upstream"), "mock")


def test_overlong_model_refused_and_log_fields_capped(h):
    h.start_mock()
    log = os.path.join(h.tmp, "access.log")
    h.start_gateway(h.config(workers=1, log={"level": "info", "access_log": log},
                             limits={"max_body_bytes": 8 * 1024 * 1024}))
    r = h.chat("x", model="m" * (3 * 1024 * 1024))
    eq(r.status, 400, r.body[:200])
    err = r.json()["error"]
    eq(err["param"], "model")
    check("127" in err["message"], err["message"])
    eq(h.mock_stats()["requests"], 0, "not forwarded")
    eq(h.chat("x", model="m" * 127).status, 200, "the limit itself is fine")
    lines = wait_for_lines(log, 2)
    for line in lines:
        check(len(json.dumps(line)) < 2048, "log line of %d bytes" % len(json.dumps(line)))
        for k, v in line.items():
            if isinstance(v, str):
                check(len(v.encode()) <= 256, "field %s has %d bytes" % (k, len(v)))


def test_pipeline_path_must_match_plugin_name(h):
    h.start_mock()
    noop = os.path.join(h.build_dir, "plugins", "noop.so")
    cfg = h.config(pipeline=[{"plugin": "whatever", "name": "w", "path": noop, "config": {}}])
    path = h.write_config(cfg)
    out = h.sluice("check", "-c", path)
    check(out.returncode != 0, "refused")
    check("declares the name 'noop', not 'whatever'" in out.stderr, out.stderr)
    cfg["pipeline"][0]["plugin"] = "noop"
    h.start_gateway(cfg)
    eq(h.chat("x").status, 200, "the matching name loads")


POLICY_A = """
function decide(req, ctx)
  return { action = "reject", status = 403, message = "policy A" }
end
"""

POLICY_B = """
function decide(req, ctx)
  return { action = "reject", status = 403, message = "policy B" }
end
"""


def policy_seen(h):
    return h.chat("x").json()["error"]["message"]


def policy_after(h, seconds):
    """Sends requests for `seconds` (the watcher looks on requests), then
    says which policy answered last."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        policy_seen(h)
        time.sleep(0.05)
    return policy_seen(h)


def start_watched(h):
    """A gateway watching a script that holds POLICY_A, with an mtime in a
    whole second of the past that the test controls."""
    h.start_mock()
    script = os.path.join(h.tmp, "watched.lua")
    t0 = (int(time.time()) - 100) * 1000000000
    write(script, POLICY_A, t0)
    h.start_gateway(h.config(policy={"script": script, "watch": True}, workers=1))
    eq(policy_seen(h), "policy A")
    return script, t0


def test_policy_watch_sees_rewrite_within_one_second(h):
    # An editor truncates, then writes: a worker may read the empty file.
    # The final write lands in the same second, so whole-second mtimes
    # call it unchanged and the worker kept the old policy for good.
    script, t0 = start_watched(h)
    write(script, "", t0 + 100000000)  # truncated: refused, A stays
    eq(policy_after(h, 1.2), "policy A")
    write(script, POLICY_B, t0 + 200000000)  # same second, new content
    eq(policy_after(h, 1.2), "policy B", "the rewrite is picked up")


def test_policy_watch_looks_again_after_a_failed_read(h):
    # The half-written file and the finished one share every stamp (same
    # size, same mtime): only a second look after the failure sees it.
    script, t0 = start_watched(h)
    broken = "function decide(" + " " * (len(POLICY_B) - len("function decide("))
    eq(len(broken), len(POLICY_B))
    write(script, broken, t0 + 500)
    eq(policy_after(h, 1.2), "policy A", "a broken edit keeps the old policy")
    st = os.stat(script)
    write(script, POLICY_B, t0 + 500)
    eq(os.stat(script).st_ino, st.st_ino)
    eq(policy_after(h, 1.2), "policy B", "looked again after the failed read")


def start_probe(h):
    h.start_mock()
    plugin = os.path.join(h.build_dir, "abi_plugins", "phase_probe.so")
    h.start_gateway(h.config(pipeline=[{"plugin": "phase_probe", "path": plugin,
                                        "config": {"act_in": "none"}}]))


def late_refused(h):
    """on_response's refused header adds, once on_log has run."""
    deadline = time.time() + 5
    while True:
        m = h.metrics()
        if m.get('sluice_phase_probe_logs_total{instance="phase_probe"}', 0) >= 1 \
                or time.time() > deadline:
            return m.get('sluice_phase_probe_late_header_refused_total{instance="phase_probe"}')


def test_header_added_in_on_response_reaches_a_buffered_answer(h):
    start_probe(h)
    r = h.chat("x")
    eq(r.status, 200)
    eq(r.header("x-probe-late"), "1")
    eq(late_refused(h), 0.0)


def test_header_added_in_on_response_of_a_stream_fails_visibly(h):
    start_probe(h)
    r = h.chat("x", stream=True)
    eq(r.status, 200)
    check(b"[DONE]" in r.body, r.body[-200:])
    eq(r.header("x-probe-late"), None)
    eq(late_refused(h), 1.0, "the plugin got SLUICE_EPHASE")
    check("header 'x-probe-late' added after the response headers were sent"
          in h.gw.stderr(), "and the gateway says so")


def test_auth_covers_models_metrics_and_admin_on_the_main_listener(h):
    import hashlib

    def key(plain, **extra):
        k = {"sha256": hashlib.sha256(plain.encode()).hexdigest(), "tenant": "t"}
        k.update(extra)
        return k

    h.start_mock()
    h.start_gateway(h.config(admin_listen="", auth={
        "enabled": True,
        "keys": [key("sk-user"), key("sk-ops", admin=True)]}))
    user = {"Authorization": "Bearer sk-user"}
    ops = {"Authorization": "Bearer sk-ops"}
    for path in ("/admin/status", "/metrics"):
        eq(h.req("GET", path).status, 401, path + " without a key")
        eq(h.req("GET", path, headers={"Authorization": "Bearer nope"}).status, 401)
        r = h.req("GET", path, headers=user)
        eq(r.status, 403, path + " with a key that is not admin")
        check(b"mock" not in r.body and b"127.0.0.1" not in r.body, r.body)
        eq(h.req("GET", path, headers=ops).status, 200, path + " with an admin key")
    r = h.req("GET", "/v1/models")
    eq(r.status, 401, "models without a key")
    eq(r.json()["error"]["type"], "authentication_error")
    eq(h.req("GET", "/v1/models", headers=user).status, 200)
    eq(h.req("GET", "/healthz").status, 200, "health checks need no key")


def test_models_lists_what_star_upstreams_serve(h):
    h.start_mock()
    base = "http://127.0.0.1:%d/v1" % h.mock.port
    h.start_gateway(h.config(workers=1, upstreams=[
        {"name": "named", "base_url": base, "models": ["custom-a", "gpt-4o"]},
        {"name": "mock", "base_url": base, "models": ["*"]}]))
    r = h.req("GET", "/v1/models")
    eq(r.status, 200, r.body)
    data = r.json()["data"]
    ids = [m["id"] for m in data]
    eq(ids, ["custom-a", "gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini",
             "text-embedding-3-small"], "configured names, then the provider's, once each")
    eq({m["id"]: m["owned_by"] for m in data}["gpt-4.1"], "mock")
    eq(h.req("GET", "/v1/models").json()["data"], data, "the same list again")
    eq(h.mock_stats()["models"], 1, "asked once: the list is cached")


def test_models_without_the_star_upstream_still_lists_configured_names(h):
    h.start_mock()
    h.start_gateway(h.config(workers=1, upstreams=[
        {"name": "named", "base_url": "http://127.0.0.1:%d/v1" % h.mock.port, "models": ["custom-a"]},
        {"name": "gone", "base_url": "http://127.0.0.1:1/v1", "models": ["*"]}]))
    r = h.req("GET", "/v1/models")
    eq(r.status, 200, r.body)
    eq([m["id"] for m in r.json()["data"]], ["custom-a"])


if __name__ == "__main__":
    harness.main(globals())
