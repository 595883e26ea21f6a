"""Resilience end to end (issue 4): circuit breaker, retries, fallbacks and
streams, with faults injected by the bundled mock provider.

The multi-client tests (admission saturation, tenant fairness, coalescing)
live in test_resilience_concurrency.py, which also runs under TSan.
"""
import http.client
import json
import os
import statistics
import threading
import time

import harness
from harness import check, eq


# ---- helpers ----

def start_second_mock(h):
    """A second, independent mock provider (for a fallback upstream)."""
    m = harness.Proc([os.path.join(h.build_dir, "sluice-mock"), "--listen", "127.0.0.1:0", "--quiet"],
                     r"listening on 127\.0\.0\.1:(\d+)")
    h.procs.append(m)
    return m


def upstream(h, name, port, models=("*",)):
    base = dict(h.config()["upstreams"][0])
    base.update(name=name, base_url="http://127.0.0.1:%d/v1" % port, models=list(models))
    return base


def stats_of(port):
    return harness.request(port, "GET", "/mock/stats").json()


def breaker(**cfg):
    return {"plugin": "breaker", "config": cfg}


def counter(m, name):
    """A metric's value, summing every label set of the family."""
    total = 0.0
    for k, v in m.items():
        if k == name or k.startswith(name + "{"):
            total += v
    return total


def breaker_key(h, key="mock", instance="breaker"):
    st = h.req("GET", "/admin/status").json()
    for p in st["plugins"]:
        if p["name"] == instance:
            for k in p["state"]["keys"]:
                if k["key"] == key:
                    return k, st
    raise AssertionError("breaker key %r not in admin status: %r" % (key, st["plugins"]))


def error_code(r):
    try:
        return r.json()["error"]["code"]
    except Exception:
        return None


def read_sse(resp):
    """All `data:` payloads of an SSE response, in order."""
    buf = resp.read()
    out = []
    for ev in buf.split(b"\n\n"):
        for line in ev.split(b"\n"):
            if line.startswith(b"data: "):
                out.append(line[6:].decode())
    return out


def stream_request(h, body, timeout=30):
    conn = http.client.HTTPConnection("127.0.0.1", h.gw.port, timeout=timeout)
    conn.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
    resp = conn.getresponse()
    headers = {k.lower(): v for k, v in resp.getheaders()}
    events = read_sse(resp)
    conn.close()
    return resp.status, headers, events


def wait_for(pred, timeout=10.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError("timed out waiting for %s" % what)


# ---- circuit breaker ----

MOCK_OUTAGE_LATENCY_MS = 300


def test_breaker_opens_after_threshold_and_fails_fast_without_upstream(h):
    h.start_mock()
    access = os.path.join(h.tmp, "access.log")
    # A long cool-down: the whole test runs while the breaker is open.
    h.start_gateway(h.config(
        retry={"max_attempts": 1},
        log={"level": "info", "access_log": access},
        pipeline=[breaker(consecutive_failures=3, recovery_timeout_ms=60000,
                          half_open_max_calls=1, success_threshold=2)]))
    eq(h.chat("warm-up").status, 200)

    # Outage: slow 503s. The first `consecutive_failures` reach the upstream.
    h.mock_config(status=503, latency_ms=MOCK_OUTAGE_LATENCY_MS)
    for i in range(3):
        r = h.chat("outage %d" % i)
        eq(r.status, 503, "failure %d comes from the upstream" % i)
        eq(r.header("x-sluice-upstream"), "mock")
        check(error_code(r) != "upstream_unavailable", "not yet the breaker's answer: %r" % r.body)
        k, _ = breaker_key(h)
        eq(k["state"], "closed" if i < 2 else "open", "state after failure %d" % (i + 1))
    eq(h.mock_stats()["chat_completions"], 4, "warm-up + 3 failures reached the mock")

    # Open: admin status, health and metrics show it.
    k, st = breaker_key(h)
    eq(k["state"], "open")
    check(0 < k["remaining_cooldown_ms"] <= 60000, k)
    eq(st["health"].get("breaker.mock.open"), 1, "health: %r" % st["health"])
    eq(st["health"].get("breaker.mock.state"), 1)
    eq(st["health"].get("upstream.mock.down"), 1)
    eq([u["down"] for u in st["upstreams"] if u["name"] == "mock"], [True], "upstream shown down")
    m = h.metrics()
    eq(counter(m, "sluice_breaker_opened_total"), 1.0, "opened once")
    eq(counter(m, "sluice_breaker_transitions_total"), 1.0, "closed -> open")
    eq(counter(m, "sluice_breaker_state"), 1.0, "state gauge: open")
    eq(counter(m, "sluice_breaker_open_keys"), 1.0)
    eq(counter(m, "sluice_breaker_failures_total"), 3.0)
    check("closed -> open" in h.gw.stderr(), "transition logged")

    # The breaker's own answer: 503, upstream_unavailable, Retry-After = remaining cool-down.
    before = h.mock_stats()["requests"]
    r = h.chat("while open")
    eq(r.status, 503)
    eq(error_code(r), "upstream_unavailable", r.body)
    eq(r.json()["error"]["type"], "api_error")
    ra = r.header("retry-after")
    check(ra is not None and ra.isdigit(), "Retry-After present: %r" % ra)
    k, _ = breaker_key(h)
    check(int(ra) >= (k["remaining_cooldown_ms"] + 999) // 1000 and 55 <= int(ra) <= 60,
          "Retry-After %s is the remaining cool-down (%d ms now)" % (ra, k["remaining_cooldown_ms"]))

    # Fast: 200 requests on one keep-alive connection, none reaching the upstream.
    conn = http.client.HTTPConnection("127.0.0.1", h.gw.port, timeout=30)
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "fast"}]})
    times = []
    for i in range(200):
        t0 = time.perf_counter()
        conn.request("POST", "/v1/chat/completions", body,
                     {"Content-Type": "application/json", "x-request-id": "open-%d" % i})
        resp = conn.getresponse()
        data = resp.read()
        times.append(time.perf_counter() - t0)
        eq(resp.status, 503, "request %d while open" % i)
        check(b"upstream_unavailable" in data, data)
    conn.close()
    eq(h.mock_stats()["requests"], before, "no request reached the upstream while open")
    med = statistics.median(times)
    check(med < MOCK_OUTAGE_LATENCY_MS / 1000.0 / 6,
          "client-side median %.2f ms is well under the upstream's %d ms" % (med * 1e3, MOCK_OUTAGE_LATENCY_MS))
    eq(counter(h.metrics(), "sluice_breaker_rejected_total"), 201.0, "rejections counted")

    # The access log agrees: no upstream attempt, and a gateway-side duration
    # under 1 ms (the worker clock is refreshed per event-loop callback, so a
    # request answered inside one callback may even read 0).
    def durations():
        out = []
        with open(access) as f:
            for line in f:
                try:
                    j = json.loads(line)
                except ValueError:
                    continue
                if j.get("id", "").startswith("open-"):
                    out.append(j)
        return out if len(out) == 200 else None
    lines = wait_for(durations, 10, "200 access-log lines")
    check(all(j["status"] == 503 and j["attempts"] == 0 for j in lines),
          "no upstream attempt: %r" % [j for j in lines if j["attempts"]][:3])
    gmed = statistics.median(j["duration_ms"] for j in lines)
    print("  while open: client median %.3f ms, gateway median %.3f ms" % (med * 1e3, gmed))
    check(gmed < 1.0, "gateway-side median %.3f ms < 1 ms" % gmed)
    k, _ = breaker_key(h)
    eq(k["state"], "open", "still open")


def test_breaker_half_open_probes_close_it(h):
    h.start_mock()
    h.start_gateway(h.config(
        retry={"max_attempts": 1},
        pipeline=[breaker(consecutive_failures=2, recovery_timeout_ms=1000,
                          half_open_max_calls=1, success_threshold=2)]))
    h.mock_config(status=503)
    eq(h.chat("a").status, 503)
    eq(h.chat("b").status, 503)
    k, _ = breaker_key(h)
    eq(k["state"], "open")
    seen = h.mock_stats()["requests"]
    eq(seen, 2)
    r = h.chat("c")
    eq(error_code(r), "upstream_unavailable")
    eq(r.header("retry-after"), "1", "under 1 s remaining rounds up to 1 s")

    # Cool-down over, upstream still down: the probe fails and the breaker re-opens.
    time.sleep(1.2)
    r = h.chat("probe that fails")
    eq(r.status, 503)
    check(error_code(r) != "upstream_unavailable", "the probe reached the upstream: %r" % r.body)
    eq(h.mock_stats()["requests"], seen + 1, "exactly one probe")
    k, _ = breaker_key(h)
    eq(k["state"], "open", "failed probe re-opens")
    r = h.chat("after failed probe")
    eq(error_code(r), "upstream_unavailable")
    eq(h.mock_stats()["requests"], seen + 1)
    eq(counter(h.metrics(), "sluice_breaker_opened_total"), 2.0)

    # Upstream healthy again; after the cool-down only half_open_max_calls probes go ahead at once.
    h.mock_config(status=200, latency_ms=1500)
    time.sleep(1.2)
    seen = h.mock_stats()["requests"]
    results = {}

    def probe(name):
        results[name] = h.chat(name)
    t = threading.Thread(target=probe, args=("probe-1",))
    t.start()
    wait_for(lambda: h.mock_stats()["in_flight"] >= 1, 10, "the first probe at the mock")
    k, _ = breaker_key(h)
    eq(k["state"], "half_open")
    eq(k["probes_in_flight"], 1)
    eq(counter(h.metrics(), "sluice_breaker_half_open_keys"), 1.0)
    extra = h.chat("extra while probing")
    eq(extra.status, 503, "no second probe slot")
    eq(error_code(extra), "upstream_unavailable")
    eq(extra.header("retry-after"), "1", "cool-down is over: 1 s hint")
    t.join()
    eq(results["probe-1"].status, 200)
    eq(h.mock_stats()["requests"], seen + 1, "one probe in flight at a time")
    k, _ = breaker_key(h)
    eq(k["state"], "half_open", "one success is below success_threshold")
    eq(k["half_open_successes"], 1)

    h.mock_config(status=200)
    eq(h.chat("probe-2").status, 200)
    k, st = breaker_key(h)
    eq(k["state"], "closed", "success_threshold probes close it")
    eq(st["health"].get("breaker.mock.open"), 0)
    eq(st["health"].get("upstream.mock.down"), 0)
    for i in range(5):
        eq(h.chat("closed %d" % i).status, 200)
    m = h.metrics()
    # closed->open, open->half, half->open, open->half, half->closed
    eq(counter(m, "sluice_breaker_transitions_total"), 5.0, "transition count")
    eq(counter(m, "sluice_breaker_state"), 0.0)
    eq(counter(m, "sluice_breaker_open_keys"), 0.0)
    eq(counter(m, "sluice_breaker_half_open_keys"), 0.0)
    log = h.gw.stderr()
    check("open -> half_open" in log and "half_open -> closed" in log and "half_open -> open" in log, log[-2000:])


def test_breaker_failure_rate_window_opens(h):
    h.start_mock()
    h.start_gateway(h.config(
        retry={"max_attempts": 1},
        pipeline=[breaker(consecutive_failures=0, window_s=30, failure_rate=0.5, min_volume=6,
                          recovery_timeout_ms=60000)]))
    # Alternate: never 2 failures in a row, but half of all requests fail.
    outcomes = []
    for i in range(5):
        extra = {"mock": {"status": 503}} if i % 2 else {}
        outcomes.append(h.chat("req %d" % i, **extra).status)
    eq(outcomes, [200, 503, 200, 503, 200])
    k, _ = breaker_key(h)
    eq(k["state"], "closed", "below min_volume the rate does not count")
    eq(h.chat("fail", mock={"status": 503}).status, 503)   # 3 of 6 fail: rate 0.5
    k, _ = breaker_key(h)
    eq(k["state"], "open", "failure rate over the window opened it: %r" % k)
    r = h.chat("rejected")
    eq(error_code(r), "upstream_unavailable")
    eq(h.mock_stats()["chat_completions"], 6)


def test_breaker_what_counts_as_failure(h):
    h.start_mock()
    cfg = h.config(retry={"max_attempts": 1},
                   pipeline=[breaker(consecutive_failures=2, recovery_timeout_ms=60000)])
    cfg["upstreams"][0]["first_byte_timeout_ms"] = 400
    h.start_gateway(path=h.write_config(cfg, "default.json"))
    # By default 429 and other 4xx say the upstream is up.
    for status in (429, 429, 429, 400, 404, 400):
        eq(h.chat("s", mock={"status": status}).status, status)
    k, _ = breaker_key(h)
    eq(k["state"], "closed", "4xx (429 included) do not count by default: %r" % k)
    # Timeouts do.
    eq(h.chat("t1", mock={"hang": True}).status, 504)
    eq(h.chat("t2", mock={"hang": True}).status, 504)
    k, _ = breaker_key(h)
    eq(k["state"], "open", "2 timeouts in a row open it")
    eq(error_code(h.chat("t3")), "upstream_unavailable")

    # failure_statuses "5xx,429": rate limiting counts too (a second gateway).
    cfg = h.config(retry={"max_attempts": 1},
                   pipeline=[breaker(consecutive_failures=2, recovery_timeout_ms=60000,
                                     failure_statuses="5xx,429")])
    h.start_gateway(path=h.write_config(cfg, "with429.json"))
    eq(h.chat("r1", mock={"status": 429}).status, 429)
    eq(h.chat("r2", mock={"status": 429}).status, 429)
    k, _ = breaker_key(h)
    eq(k["state"], "open", "429 counted when configured")


def test_breaker_static_response_while_open(h):
    h.start_mock()
    static = {"object": "chat.completion", "choices": [{"index": 0, "message": {
        "role": "assistant", "content": "busy, retry shortly"}, "finish_reason": "stop"}]}
    h.start_gateway(h.config(
        retry={"max_attempts": 1},
        pipeline=[breaker(consecutive_failures=1, recovery_timeout_ms=60000, static_response=static)]))
    eq(h.chat("x", mock={"status": 502}).status, 502)
    before = h.mock_stats()["requests"]
    r = h.chat("y")
    eq(r.status, 200)
    eq(r.json()["choices"][0]["message"]["content"], "busy, retry shortly")
    eq(r.header("x-sluice-fallback"), "breaker")
    eq(h.mock_stats()["requests"], before, "static answer, no upstream call")
    eq(counter(h.metrics(), "sluice_breaker_fallbacks_total"), 1.0)


# ---- fallbacks ----

def test_breaker_fallback_upstream_serves_while_primary_down(h):
    h.start_mock()
    backup = start_second_mock(h)
    cfg = h.config(retry={"max_attempts": 1},
                   pipeline=[breaker(consecutive_failures=2, recovery_timeout_ms=60000,
                                     fallback_upstream="backup")])
    cfg["upstreams"].append(upstream(h, "backup", backup.port))
    h.start_gateway(cfg)

    r = h.chat("healthy")
    eq(r.status, 200)
    eq(r.header("x-sluice-upstream"), "mock")
    eq(r.header("x-sluice-fallback"), None, "no fallback while closed")

    h.mock_config(status=503)
    eq(h.chat("f1").status, 503)
    eq(h.chat("f2").status, 503)
    primary_seen = h.mock_stats()["requests"]
    eq(primary_seen, 3)

    for i in range(5):
        r = h.chat("served elsewhere %d" % i, model="gpt-4o")
        eq(r.status, 200, r.body)
        eq(r.header("x-sluice-upstream"), "backup")
        eq(r.header("x-sluice-fallback"), "breaker")
        eq(r.header("x-sluice-model"), "gpt-4o")
        check("served elsewhere %d" % i in r.json()["choices"][0]["message"]["content"], r.body)
    eq(h.mock_stats()["requests"], primary_seen, "primary untouched while open")
    eq(stats_of(backup.port)["chat_completions"], 5, "backup served them")
    m = h.metrics()
    eq(counter(m, "sluice_breaker_fallbacks_total"), 5.0)
    eq(counter(m, "sluice_breaker_rejected_total"), 0.0)


def test_breaker_fallback_model(h):
    h.start_mock()
    backup = start_second_mock(h)
    cfg = h.config(retry={"max_attempts": 1},
                   pipeline=[breaker(consecutive_failures=1, recovery_timeout_ms=60000,
                                     fallback_upstream="backup", fallback_model="gpt-4o-mini")])
    cfg["upstreams"].append(upstream(h, "backup", backup.port))
    h.start_gateway(cfg)
    eq(h.chat("down", model="gpt-4o", mock={"status": 500}).status, 500)
    r = h.chat("cheaper please", model="gpt-4o")
    eq(r.status, 200, r.body)
    eq(r.header("x-sluice-upstream"), "backup")
    eq(r.header("x-sluice-model"), "gpt-4o-mini")
    eq(r.header("x-sluice-fallback"), "breaker")
    eq(r.json()["model"], "gpt-4o-mini", "the backup was asked for the fallback model")


def test_core_fallback_chain_on_other_upstream(h):
    h.start_mock()
    backup = start_second_mock(h)
    cfg = h.config(retry={"max_attempts": 2, "on_other_upstream": True, "base_delay_ms": 10},
                   fallbacks={"gpt-4o": [{"upstream": "backup"}],
                              "dead-model": [{"upstream": "backup", "model": "gpt-4o-mini"}]})
    cfg["upstreams"].append(upstream(h, "backup", backup.port))
    dead = upstream(h, "dead", 1, models=["dead-model"])
    dead["connect_timeout_ms"] = 1000
    cfg["upstreams"].insert(0, dead)
    h.start_gateway(cfg)
    m0 = h.metrics()

    # Primary 503s: the backup answers and the headers say so.
    h.mock_config(status=503)
    r = h.chat("chain", model="gpt-4o")
    eq(r.status, 200, r.body)
    eq(r.header("x-sluice-upstream"), "backup")
    eq(r.header("x-sluice-model"), "gpt-4o")
    eq(r.header("x-sluice-fallback"), "retry")
    eq(r.header("x-sluice-attempts"), "2")
    eq(h.mock_stats()["chat_completions"], 1, "primary tried once")
    eq(stats_of(backup.port)["chat_completions"], 1, "backup answered")

    # A model without a chain is retried on the same upstream (still 503).
    r = h.chat("no chain", model="gpt-4o-mini")
    eq(r.status, 503)
    eq(r.header("x-sluice-upstream"), "mock")
    eq(r.header("x-sluice-fallback"), None)
    eq(stats_of(backup.port)["chat_completions"], 1)

    # Connect error on an unreachable upstream: next step, another model too.
    r = h.chat("unreachable", model="dead-model")
    eq(r.status, 200, r.body)
    eq(r.header("x-sluice-upstream"), "backup")
    eq(r.header("x-sluice-model"), "gpt-4o-mini")
    eq(r.header("x-sluice-fallback"), "retry")
    eq(r.json()["model"], "gpt-4o-mini")
    m = h.metrics()
    eq(counter(m, "sluice_fallbacks_total") - counter(m0, "sluice_fallbacks_total"), 2.0, "two fallbacks")


# ---- retries ----

def test_retries_recover_from_503_burst(h):
    h.start_mock()
    h.start_gateway(h.config(retry={"max_attempts": 4, "base_delay_ms": 10, "max_delay_ms": 50}))
    m0 = h.metrics()
    h.mock_config(status=503, count=2)
    r = h.chat("burst")
    eq(r.status, 200, r.body)
    eq(r.header("x-sluice-attempts"), "3")
    eq(r.header("x-sluice-upstream"), "mock")
    s = h.mock_stats()
    eq(s["chat_completions"], 3)
    eq(s["status_5xx"], 2)
    eq(s["status_2xx"], 1)
    m = h.metrics()
    eq(counter(m, "sluice_upstream_retries_total") - counter(m0, "sluice_upstream_retries_total"), 2.0,
       "retries visible in metrics")
    eq(counter(m, "sluice_upstream_attempts_total") - counter(m0, "sluice_upstream_attempts_total"), 3.0)

    # Exhausted: 4 attempts, then the upstream's error is passed back.
    h.mock_config(status=503, count=10)
    r = h.chat("burst too long")
    eq(r.status, 503)
    eq(r.header("x-sluice-attempts"), "4")
    eq(h.mock_stats()["chat_completions"], 7)


def test_retries_never_go_into_an_open_circuit(h):
    h.start_mock()
    h.start_gateway(h.config(
        retry={"max_attempts": 3, "base_delay_ms": 10, "max_delay_ms": 20},
        pipeline=[breaker(consecutive_failures=5, recovery_timeout_ms=60000)]))
    h.mock_config(status=503)
    eq(h.chat("one").status, 503)  # 3 attempts: failures 1-3
    eq(h.chat("two").status, 503)  # 2 attempts open the breaker; no 3rd
    eq(h.mock_stats()["chat_completions"], 5, "no retry after the breaker opened")
    r = h.chat("three")
    eq(r.status, 503)
    eq(error_code(r), "upstream_unavailable")
    eq(h.mock_stats()["chat_completions"], 5)


def test_retry_honours_upstream_retry_after(h):
    h.start_mock()
    h.start_gateway(h.config(retry={"max_attempts": 2, "base_delay_ms": 1, "max_delay_ms": 10,
                                    "deadline_ms": 10000}))
    h.mock_config(status=429, retry_after=1, count=1)
    t0 = time.time()
    r = h.chat("rate limited once")
    took = time.time() - t0
    eq(r.status, 200, r.body)
    eq(r.header("x-sluice-attempts"), "2")
    check(took >= 0.98, "retried only after Retry-After (1 s), took %.3f s" % took)
    eq(h.mock_stats()["rate_limited"], 1)

    # A Retry-After beyond the deadline: no retry, the 429 (and its hint) go back at once.
    h.mock_config(status=429, retry_after=30, count=1)
    t0 = time.time()
    r = h.chat("rate limited for long")
    took = time.time() - t0
    eq(r.status, 429)
    eq(r.header("retry-after"), "30")
    eq(r.header("x-sluice-attempts"), None, "one attempt only")
    check(took < 5, "did not wait for the hint (%.2f s)" % took)
    eq(h.mock_stats()["chat_completions"], 3)


def test_non_retryable_errors_are_not_retried(h):
    h.start_mock()
    h.start_gateway(h.config(retry={"max_attempts": 4, "base_delay_ms": 10}))
    m0 = h.metrics()
    for status in (400, 401, 404, 501):  # 500 is retried (test_retry_statuses.py)
        before = h.mock_stats()["requests"]
        r = h.chat("status %d" % status, mock={"status": status})
        eq(r.status, status)
        eq(r.header("x-sluice-attempts"), None, "status %d not retried" % status)
        eq(h.mock_stats()["requests"], before + 1, "mock saw 1 request for %d" % status)
    m = h.metrics()
    eq(counter(m, "sluice_upstream_retries_total") - counter(m0, "sluice_upstream_retries_total"), 0.0)


def test_retry_deadline_stops_retries(h):
    h.start_mock()
    h.start_gateway(h.config(retry={"max_attempts": 10, "base_delay_ms": 10, "max_delay_ms": 20,
                                    "deadline_ms": 1000}))
    h.mock_config(status=503, latency_ms=400)
    t0 = time.time()
    r = h.chat("slow outage")
    took = time.time() - t0
    eq(r.status, 503)
    attempts = int(r.header("x-sluice-attempts") or "1")
    print("  deadline: %d attempts in %.2f s" % (attempts, took))
    check(2 <= attempts <= 4, "the 1 s deadline allowed ~3 attempts of 400 ms, got %d" % attempts)
    eq(h.mock_stats()["chat_completions"], attempts, "every attempt reached the mock")
    check(took < 4.0, "gave up near the deadline (%.2f s)" % took)


def test_timeout_before_first_byte_is_retried(h):
    h.start_mock()
    cfg = h.config(retry={"max_attempts": 2, "base_delay_ms": 10})
    cfg["upstreams"][0]["first_byte_timeout_ms"] = 400
    h.start_gateway(cfg)
    h.mock_config(hang=True, count=1)
    r = h.chat("hangs once")
    eq(r.status, 200, r.body)
    eq(r.header("x-sluice-attempts"), "2")
    eq(h.mock_stats()["chat_completions"], 2)


# ---- streams ----

def test_stream_never_retried_after_first_byte(h):
    h.start_mock()
    h.start_gateway(h.config(retry={"max_attempts": 4, "base_delay_ms": 10}))
    m0 = h.metrics()
    status, headers, events = stream_request(h, {
        "model": "gpt-4o-mini", "stream": True,
        "messages": [{"role": "user", "content": "count to ten please"}],
        "mock": {"chunks": 8, "chunk_interval_ms": 30, "reset_after_chunks": 2}})
    eq(status, 200)
    eq(headers.get("x-sluice-attempts"), None, "one attempt")
    check(len(events) >= 2, "a partial stream reached the client: %r" % events)
    check("[DONE]" not in events, "a cut stream never looks finished: %r" % events)
    check(all("chat.completion.chunk" in e for e in events[:-1]), events)
    last = json.loads(events[-1])
    eq(last["error"]["code"], "stream_truncated", "ends with the gateway's error event")
    s = h.mock_stats()
    eq(s["requests"], 1, "the stream was not retried")
    eq(s["streams_reset"], 1)
    m = h.metrics()
    eq(counter(m, "sluice_upstream_retries_total") - counter(m0, "sluice_upstream_retries_total"), 0.0)


def test_stream_retried_before_first_byte(h):
    h.start_mock()
    h.start_gateway(h.config(retry={"max_attempts": 3, "base_delay_ms": 10}))
    h.mock_config(status=503, count=1)
    status, headers, events = stream_request(h, {
        "model": "gpt-4o-mini", "stream": True,
        "messages": [{"role": "user", "content": "x"}], "mock": {"chunks": 3}})
    eq(status, 200)
    eq(headers.get("x-sluice-attempts"), "2", "the 503 came before any byte: retried")
    eq(events[-1], "[DONE]")
    check(not any("stream_truncated" in e for e in events))
    eq(h.mock_stats()["chat_completions"], 2)


if __name__ == "__main__":
    harness.main(globals())
