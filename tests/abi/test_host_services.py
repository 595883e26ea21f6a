"""SDK 1.1 host services through the real gateway and the mock provider:
an upstream call made by a plugin while its request is suspended
(embed_probe), its cancellation when the client leaves first, on_cleanup
once per request however it ended, timers and a call outside any request
(timer_probe) surviving reloads, health_get and the upstream list, and a
plugin binary built against the frozen SDK 1.0 headers (compat_v10).

The plugins are in tests/abi/plugins/ (built into abi_plugins/)."""
import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402
from harness import check, eq  # noqa: E402


def plugin(h, name, config=None, instance=None):
    entry = {"plugin": name, "path": os.path.join(h.build_dir, "abi_plugins", name + ".so"),
             "config": config or {}}
    if instance:
        entry["name"] = instance
    return entry


def metric(m, name, instance):
    return m.get('%s{instance="%s"}' % (name, instance), 0.0)


def wait_metrics(h, cond, what, timeout=10):
    """Polls /metrics until cond(m) holds; the hooks that count may run just
    after the client has its answer."""
    deadline = time.time() + timeout
    while True:
        m = h.metrics()
        if cond(m):
            return m
        if time.time() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.02)


def embed_counts(m):
    return {k: metric(m, "sluice_embed_probe_%s_total" % k, "embed_probe")
            for k in ("calls", "answers", "cancelled", "cleanups", "cleanup_open")}


def test_embeddings_call_while_suspended(h):
    h.start_mock()
    h.start_gateway(h.config(pipeline=[plugin(h, "embed_probe")]))
    r = h.chat("hello")
    eq(r.status, 200, r.body)
    eq(r.header("x-embed-status"), "200", "the call's status reached the resumed hook")
    eq(r.header("x-embed-outcome"), "1", "SLUICE_OUTCOME_OK")
    eq(r.header("x-embed-dims"), "256", "the whole embedding arrived")
    eq(r.json()["object"], "chat.completion", "the request went on upstream after resuming")
    st = h.mock_stats()
    eq(st["embeddings"], 1, "one embeddings call")
    eq(st["chat_completions"], 1)
    m = wait_metrics(h, lambda m: embed_counts(m)["cleanups"] >= 1, "on_cleanup")
    eq(embed_counts(m), {"calls": 1.0, "answers": 1.0, "cancelled": 0.0, "cleanups": 1.0,
                         "cleanup_open": 0.0})
    eq(m.get('sluice_upstream_attempts_total{upstream="mock"}'), 2.0, "counted like proxied attempts")


def test_call_error_reaches_the_plugin(h):
    h.start_mock()
    h.start_gateway(h.config(pipeline=[plugin(h, "embed_probe")]))
    r = h.chat("hello", headers={"x-probe-status": "503"})
    eq(r.status, 200, r.body)
    eq(r.header("x-embed-status"), "503")
    eq(r.header("x-embed-outcome"), "2", "SLUICE_OUTCOME_HTTP_ERROR")
    eq(r.header("x-embed-dims"), "0")


def test_plugin_cancels_its_own_call(h):
    h.start_mock()
    h.start_gateway(h.config(pipeline=[plugin(h, "embed_probe")]))
    r = h.chat("hello", headers={"x-probe-cancel": "1"})
    eq(r.status, 200, r.body)
    eq(r.header("x-embed-cancel"), "0,3", "SLUICE_OK, then SLUICE_ENOENT")
    m = wait_metrics(h, lambda m: embed_counts(m)["cleanups"] >= 1, "on_cleanup")
    eq(embed_counts(m), {"calls": 0.0, "answers": 0.0, "cancelled": 0.0, "cleanups": 1.0,
                         "cleanup_open": 0.0}, "no callback after the plugin's own cancel")


def test_answer_over_the_size_limit_is_truncated(h):
    """50 inputs x 3072 dimensions is ~300 KB of JSON: over the gateway's
    limits.max_response_bytes (100 KB here, below SLUICE_CALL_MAX_BODY), the
    call stops reading and the plugin is told TRUNCATED with no body."""
    h.start_mock()
    h.start_gateway(h.config(limits={"max_response_bytes": 100000},
                             pipeline=[plugin(h, "embed_probe",
                                              {"inputs": 50, "dimensions": 3072})]))
    r = h.chat("hello", timeout=60)
    eq(r.status, 200, r.body)
    eq(r.header("x-embed-outcome"), "6", "SLUICE_OUTCOME_TRUNCATED")
    eq(r.header("x-embed-dims"), "0", "no partial body")
    eq(r.header("x-embed-status"), "200")


def test_unknown_upstream_is_refused(h):
    h.start_mock()
    h.start_gateway(h.config(pipeline=[plugin(h, "embed_probe", {"upstream": "nope"})]))
    r = h.chat("hello")
    eq(r.status, 200, r.body)
    eq(r.header("x-embed-error"), "3", "SLUICE_ENOENT")
    eq(h.mock_stats()["embeddings"], 0)


def test_client_gone_cancels_the_call(h):
    """The embeddings call hangs; the client gives up. The request ends:
    the call is cancelled (the mock sees its client close), the plugin's
    callback is told before its state is freed, on_cleanup runs once."""
    h.start_mock()
    h.start_gateway(h.config(pipeline=[plugin(h, "embed_probe")]))
    s = socket.create_connection(("127.0.0.1", h.gw.port), timeout=5)
    body = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"x-probe-hang: true\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    wait_metrics(h, lambda m: embed_counts(m)["calls"] >= 1, "the call to start")
    deadline = time.time() + 10
    while h.mock_stats()["embeddings"] < 1:
        check(time.time() < deadline, "the embeddings call reached the mock")
        time.sleep(0.02)
    s.close()
    m = wait_metrics(h, lambda m: embed_counts(m)["cleanups"] >= 1, "on_cleanup")
    eq(embed_counts(m), {"calls": 1.0, "answers": 0.0, "cancelled": 1.0, "cleanups": 1.0,
                         "cleanup_open": 0.0}, "cancelled, told, cleaned once")
    deadline = time.time() + 10
    while h.mock_stats()["client_closed"] < 1:
        check(time.time() < deadline, "the upstream call was closed")
        time.sleep(0.02)
    eq(h.mock_stats()["chat_completions"], 0, "the request never went upstream")
    r = h.chat("after")  # the worker is still healthy
    eq(r.status, 200)


def test_cleanup_runs_once_when_a_later_plugin_rejects(h):
    h.start_mock()
    h.start_gateway(h.config(pipeline=[plugin(h, "embed_probe"),
                                       plugin(h, "phase_probe", {"act_in": "request"})]))
    r = h.chat("hello")
    eq(r.status, 429, r.body)
    m = wait_metrics(h, lambda m: embed_counts(m)["cleanups"] >= 1, "on_cleanup")
    eq(embed_counts(m)["cleanups"], 1.0)
    eq(embed_counts(m)["answers"], 1.0)


def timer_counts(m):
    out = {k: metric(m, "sluice_timer_probe_%s_total" % k, "timer_probe")
           for k in ("ticks", "limited", "models_calls")}
    out["workers_seen"] = metric(m, "sluice_timer_probe_workers_seen", "timer_probe")
    return out


def test_timers_and_a_call_outside_requests(h):
    h.start_mock()
    h.start_gateway(h.config(workers=2, pipeline=[plugin(h, "timer_probe", {"limit": 3})]))
    m = wait_metrics(h, lambda m: timer_counts(m)["workers_seen"] == 3.0 and
                     timer_counts(m)["limited"] >= 6 and timer_counts(m)["models_calls"] >= 1,
                     "timers on both workers and the models call")
    eq(timer_counts(m)["models_calls"], 1.0, "the one-shot ran once")
    eq(h.mock_stats()["models"], 1, "GET /v1/models outside any request")
    r = h.chat("hello")
    eq(r.status, 200, r.body)
    eq(r.header("x-models-status"), "200", "health_set by the call, read back by health_get")
    eq(r.header("x-upstreams"), "mock=*", "configured upstreams and their models")
    # Let the tick run on well past the limit: the self-cancelled timer stays at 3 per worker.
    ticks = timer_counts(m)["ticks"]
    wait_metrics(h, lambda m: timer_counts(m)["ticks"] >= ticks + 20, "more ticks")
    m = h.metrics()
    eq(timer_counts(m)["limited"], 6.0, "cancelled from its own callback on each worker")
    eq(metric(m, "sluice_timer_probe_ghosts_total", "timer_probe"), 0.0,
       "a timer cancelled in create() never runs")


def test_timers_torn_down_on_reload(h):
    """Each reload destroys the old instance: its timers must be gone first
    (under ASan a timer firing into the freed instance aborts the gateway,
    which the harness reports)."""
    h.start_mock()
    h.start_gateway(h.config(workers=2, pipeline=[plugin(h, "timer_probe", {"tick_ms": 1})]))
    wait_metrics(h, lambda m: timer_counts(m)["ticks"] >= 10, "ticks")
    for _ in range(3):
        gen = h.req("GET", "/admin/status").json()["config_generation"]
        h.gw.signal(signal.SIGHUP)
        deadline = time.time() + 10
        while h.req("GET", "/admin/status").json()["config_generation"] == gen:
            check(time.time() < deadline, "reload applied")
            time.sleep(0.02)
        time.sleep(0.1)  # old generation retired and destroyed; new timers ticking
    r = h.chat("hello")
    eq(r.status, 200)
    check(h.gw.alive(), "gateway alive after reloads")
    eq(h.gw.stop(), 0, "clean exit with timers armed")


def test_sdk_1_0_plugin_binary_works(h):
    h.start_mock()
    h.start_gateway(h.config(pipeline=[plugin(h, "compat_v10"), plugin(h, "embed_probe")]))
    r = h.chat("hello")
    eq(r.status, 200, r.body)
    eq(r.header("x-compat"), "1.0", "the 1.0 plugin ran")
    eq(r.header("x-compat-model"), "gpt-4o-mini", "and read the request through the 1.0 table")
    eq(r.header("x-embed-dims"), "256", "next to a 1.1 plugin")
    wait_metrics(h, lambda m: metric(m, "sluice_compat_v10_logs_total", "compat_v10") == 1.0,
                 "the 1.0 plugin's on_log")


if __name__ == "__main__":
    harness.main(globals())
