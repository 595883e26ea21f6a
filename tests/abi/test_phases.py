"""A plugin acting in each phase, through the real gateway and the mock
provider: its answer reaches the client, later phases see what they
should, and on_log runs exactly once per request, however it ended.

Uses tests/abi/plugins/phase_probe.c (built into abi_plugins/)."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402
from harness import check, eq  # noqa: E402

PREFIX = "sluice_phase_probe_"
LABEL = '{instance="phase_probe"}'


def start(h, act_in):
    h.start_mock()
    plugin = os.path.join(h.build_dir, "abi_plugins", "phase_probe.so")
    h.start_gateway(h.config(pipeline=[{"plugin": "phase_probe", "path": plugin,
                                        "config": {"act_in": act_in}}]))


def counts(h):
    """Hook call counts, once on_log has run (it may finish just after the
    client has its answer)."""
    deadline = time.time() + 5
    while True:
        m = h.metrics()
        got = {hook: m.get(PREFIX + hook + "_total" + LABEL, 0.0)
               for hook in ("requests", "resumes", "upstream_responses", "responses", "logs")}
        if got["logs"] >= 1 or time.time() > deadline:
            return got


def test_continue_runs_every_hook_once(h):
    start(h, "none")
    r = h.chat("hello")
    eq(r.status, 200, r.body)
    c = counts(h)
    eq(c, {"requests": 1.0, "resumes": 0.0, "upstream_responses": 1.0,
           "responses": 1.0, "logs": 1.0}, "hook calls")


def test_reject_in_request_phase(h):
    start(h, "request")
    r = h.chat("hello")
    eq(r.status, 429)
    eq(r.header("retry-after"), "2", "1500 ms rounds up to 2 s")
    err = r.json()["error"]
    eq(err["message"], "rejected in on_request")
    eq(err["type"], "rate_limit_exceeded")
    eq(err["code"], "probe_reject")
    eq(h.mock_stats()["requests"], 0, "nothing reached the upstream")
    c = counts(h)
    eq(c["upstream_responses"], 0.0, "no upstream phase after a reject")
    eq(c["logs"], 1.0, "on_log exactly once")


def test_reject_in_upstream_response_phase(h):
    start(h, "upstream_response")
    r = h.chat("hello")
    eq(r.status, 503)
    err = r.json()["error"]
    eq(err["message"], "rejected in on_upstream_response")
    eq(err["code"], "probe_reject")
    check(r.header("retry-after") is None, "no Retry-After for 0 ms")
    eq(h.mock_stats()["requests"], 1, "the upstream was called")
    c = counts(h)
    eq(c["upstream_responses"], 1.0)
    eq(c["logs"], 1.0, "on_log exactly once")


def test_suspend_then_resume(h):
    start(h, "suspend")
    t0 = time.time()
    r = h.chat("hello")
    eq(r.status, 200, r.body)
    check(time.time() - t0 >= 0.02, "resumed after the 20 ms delay")
    eq(r.header("x-probe-resumed"), "1")
    c = counts(h)
    eq(c["requests"], 2.0, "on_request ran again after the suspension")
    eq(c["resumes"], 1.0)
    eq(c["logs"], 1.0, "on_log exactly once")


if __name__ == "__main__":
    harness.main(globals())
