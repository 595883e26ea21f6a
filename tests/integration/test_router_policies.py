"""The router's Lua policies end to end (issue 12): the complexity router
reroutes after an edit and SIGHUP; the degradation ladder serves cache
only, static answers and maintenance from gateway health."""
import os
import shutil
import signal
import time

import harness
from harness import check, eq

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ALIASES = {"fast": "gpt-4o-mini", "smart": "gpt-4o"}


def policy_copy(h, name):
    path = os.path.join(h.tmp, name)
    shutil.copy(os.path.join(ROOT, "policies", name), path)
    return path


def edit(path, old, new):
    with open(path) as f:
        text = f.read()
    check(old in text, "%r in %s" % (old, path))
    with open(path, "w") as f:
        f.write(text.replace(old, new))


def reload_and_wait(h, generation):
    """SIGHUP, then wait until the (single) worker serves the new config
    generation: its next request runs the edited policy."""
    h.gw.signal(signal.SIGHUP)
    deadline = time.time() + 30
    while h.req("GET", "/admin/status").json()["config_generation"] < generation:
        check(time.time() < deadline, "generation %d never went live" % generation)
        time.sleep(0.05)


def test_complexity_policy_edit_and_sighup_reroutes(h):
    h.start_mock()
    script = policy_copy(h, "complexity_router.lua")
    h.start_gateway(h.config(workers=1, policy={"script": script},
                             pipeline=[{"plugin": "router", "config": {"aliases": ALIASES}}]))
    r = h.chat("hello", model="auto")
    eq(r.status, 200, r.body)
    eq(r.header("x-sluice-model"), "gpt-4o-mini")
    eq(r.header("x-sluice-tags"), "complexity:fast")
    eq(h.chat("please debug this step by step", model="auto").header("x-sluice-model"), "gpt-4o")

    edit(script, "local SMART_AT = 30", "local SMART_AT = 0")
    reload_and_wait(h, 2)
    r = h.chat("hello", model="auto")
    eq(r.status, 200, r.body)
    eq(r.header("x-sluice-model"), "gpt-4o", "the next request is scored by the edited policy")
    eq(r.json()["model"], "gpt-4o", "and the upstream was asked for the smart alias's model")


def test_degradation_ladder_cache_only_static_and_maintenance(h):
    h.start_mock()
    script = policy_copy(h, "degradation_ladder.lua")
    h.start_gateway(h.config(workers=1, retry={"max_attempts": 1}, policy={"script": script}, pipeline=[
        {"plugin": "cache", "config": {"scope": "global"}},
        {"plugin": "router", "config": {"aliases": ALIASES, "degraded_retry_after_s": 7, "static_answers": {
            "billing": "Billing questions: see the billing page.", "default": "We are busy, try later."}}},
    ]))
    cached = dict(content="what is a cache", temperature=0)
    eq(h.chat(**cached).status, 200)  # level 0, and now in the cache
    r = h.chat("x", mock={"status": 429})  # half the upstream answers are 429 now
    eq(r.status, 429, r.body)

    # level 2 (router.rate_429 0.5): hits served, misses 503 + Retry-After
    calls = h.mock_stats()["chat_completions"]
    r = h.chat(**cached)
    eq(r.status, 200, r.body)
    eq(r.header("x-sluice-tags"), "ladder:2")
    r = h.chat("a question nobody asked before")
    eq(r.status, 503, r.body)
    eq(r.header("retry-after"), "7")
    eq(r.json()["error"]["code"], "degraded_cache_only")
    eq(h.mock_stats()["chat_completions"], calls, "the upstream saw nothing at level 2")

    # The same signal now means level 3: static answers by category.
    edit(script, "local RATE_429_STEPS = { { 0.50, 2 }", "local RATE_429_STEPS = { { 0.50, 3 }")
    reload_and_wait(h, 2)
    r = h.chat("where is my invoice?")
    eq(r.status, 200, r.body)
    eq(r.json()["choices"][0]["message"]["content"], "Billing questions: see the billing page.")
    eq(h.chat("hello there").json()["choices"][0]["message"]["content"], "We are busy, try later.")
    eq(h.mock_stats()["chat_completions"], calls)

    edit(script, "local MAINTENANCE = false", "local MAINTENANCE = true")
    reload_and_wait(h, 3)
    r = h.chat("hello")
    eq(r.status, 503, r.body)
    eq(r.header("retry-after"), "300")
    check("maintenance" in r.json()["error"]["message"], r.body)


if __name__ == "__main__":
    harness.main(globals())
