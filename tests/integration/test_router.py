"""router plugin end to end (issue 12): aliases, sticky splits, pools that
route around an open breaker, token budgets (clamp, refusal), with the
real binary and two mock providers."""
import json
import os

import harness
from harness import check, eq

PRIMARY_MODEL, SMALL_MODEL = "gpt-4o", "gpt-4o-mini"


def start_second_mock(h):
    m = harness.Proc([os.path.join(h.build_dir, "sluice-mock"), "--listen", "127.0.0.1:0", "--quiet"],
                     r"listening on 127\.0\.0\.1:(\d+)")
    h.procs.append(m)
    return m


def upstream(h, name, port):
    base = dict(h.config()["upstreams"][0])
    base.update(name=name, base_url="http://127.0.0.1:%d/v1" % port, models=["*"])
    return base


def chat_count(port):
    return harness.request(port, "GET", "/mock/stats").json()["chat_completions"]


def two_mocks(h):
    h.start_mock()
    second = start_second_mock(h)
    ups = [upstream(h, "primary", h.mock.port), upstream(h, "secondary", second.port)]
    return second, ups


def router(**cfg):
    return {"plugin": "router", "config": cfg}


def test_aliases_and_sticky_split(h):
    second, ups = two_mocks(h)
    h.start_gateway(h.config(upstreams=ups, pipeline=[router(
        aliases={"fast": SMALL_MODEL, "smart": PRIMARY_MODEL},
        splits={"smart": {"by": ["header:x-user"], "variants": [
            {"name": "stable", "model": PRIMARY_MODEL, "weight": 50},
            {"name": "canary", "model": "gpt-4.1", "upstream": "secondary", "weight": 50}]}})]))
    r = h.chat("hi", model="fast")
    eq(r.status, 200, r.body)
    eq(r.header("x-sluice-model"), SMALL_MODEL)
    eq(r.json()["model"], SMALL_MODEL, "the upstream was asked for the alias's model")

    seen = {}
    for i in range(40):
        user = "user-%d" % i
        first = h.chat("hi", model="smart", headers={"x-user": user})
        again = h.chat("hi", model="smart", headers={"x-user": user})
        eq(first.status, 200, first.body)
        eq(first.header("x-sluice-model"), again.header("x-sluice-model"), "sticky for " + user)
        seen[user] = first.header("x-sluice-model")
        if seen[user] == "gpt-4.1":
            eq(first.header("x-sluice-upstream"), "secondary", "the canary's upstream")
    canary = sum(1 for m in seen.values() if m == "gpt-4.1")
    check(0 < canary < 40, "both variants used: %d canary users of 40" % canary)
    eq(chat_count(second.port), 2 * canary, "every canary request and no other reached secondary")
    m = h.metrics()
    eq(m.get('sluice_router_variant_requests_total{instance="router",split="smart",variant="canary"}'),
       2.0 * canary, "per-variant requests")
    check(m.get('sluice_router_variant_completion_tokens_total{instance="router",split="smart",'
                'variant="stable"}', 0) > 0, "per-variant tokens")


def test_pool_prefers_the_faster_and_routes_around_an_open_breaker(h):
    second, ups = two_mocks(h)
    cfg = h.config(upstreams=ups, workers=1, retry={"max_attempts": 1}, pipeline=[
        router(pools={SMALL_MODEL: {"strategy": "p2c", "upstreams": [
            {"name": "primary"}, {"name": "secondary"}]}}),
        {"plugin": "breaker", "config": {"consecutive_failures": 1, "recovery_timeout_ms": 600000}},
    ])
    h.start_gateway(cfg)
    harness.request(second.port, "POST", "/mock/config", {"latency_ms": 100})
    # An upstream never measured costs 0, so the first two requests try
    # both; then P2C compares their latency EWMAs and keeps the faster.
    for _ in range(12):
        eq(h.chat("hi").status, 200)
    eq(chat_count(second.port), 1, "the slow upstream was tried once")
    eq(chat_count(h.mock.port), 11)

    # Open primary's breaker: a request for a model outside the pool goes to
    # the first upstream (the core's route) and fails.
    h.mock_config(status=500)
    check(h.chat("hi", model="not-pooled").status >= 500, "primary failed")
    before = chat_count(h.mock.port), chat_count(second.port)
    for _ in range(5):
        r = h.chat("hi")
        eq(r.status, 200, r.body)
        eq(r.header("x-sluice-upstream"), "secondary")
    eq(chat_count(h.mock.port), before[0], "nothing more reached the open upstream")
    eq(chat_count(second.port), before[1] + 5)
    eq(h.metrics().get('sluice_router_upstream_skipped_total{instance="router",upstream="primary"}'), 5.0,
       "skips counted")


def test_token_budget_clamps_and_refuses(h):
    h.start_mock()
    h.start_gateway(h.config(pipeline=[router(
        aliases={"fast": SMALL_MODEL}, budget_by="header:x-request-type",
        token_budgets={"summary": {"max_tokens": 5, "max_input_tokens": 100}})]))
    big = {"completion_tokens": 50}  # the mock's answer size, capped by max_tokens
    r = h.chat("hi", max_tokens=200, mock=big, headers={"x-request-type": "summary"})
    eq(r.status, 200, r.body)
    eq(r.json()["usage"]["completion_tokens"], 5, "clamped to the ceiling")
    r = h.chat("hi", max_completion_tokens=200, mock=big, headers={"x-request-type": "summary"})
    eq(r.json()["usage"]["completion_tokens"], 5, "max_completion_tokens clamped too")
    r = h.chat("hi", mock=big, headers={"x-request-type": "summary"})
    eq(r.json()["usage"]["completion_tokens"], 5, "no max_tokens: the ceiling is sent")
    r = h.chat("hi", model="fast", mock=big, headers={"x-request-type": "summary"})
    eq((r.json()["model"], r.json()["usage"]["completion_tokens"]), (SMALL_MODEL, 5), "alias and clamp together")
    r = h.chat("hi", max_tokens=200, mock=big)
    eq(r.json()["usage"]["completion_tokens"], 50, "other request types are untouched")

    calls = h.mock_stats()["chat_completions"]
    r = h.chat("word " * 400, headers={"x-request-type": "summary"})
    eq(r.status, 400, r.body)
    err = r.json()["error"]
    eq(err["code"], "input_over_token_budget")
    check("estimated at" in err["message"] and "allows 100 input tokens" in err["message"], err["message"])
    eq(h.mock_stats()["chat_completions"], calls, "a refused request never reaches the upstream")
    eq(h.chat("word " * 400).status, 200, "no budget for this type")


def test_bad_router_config_refused(h):
    h.start_mock()
    path = h.write_config(h.config(pipeline=[router(pools={"m": {"upstreams": [{"name": "nope"}]}})]))
    out = h.sluice("check", "-c", path)
    check(out.returncode != 0, "check fails")
    check("unknown upstream 'nope'" in out.stderr + out.stdout, out.stderr + out.stdout)


if __name__ == "__main__":
    harness.main(globals())
