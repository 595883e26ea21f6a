"""Which upstream statuses are retried (issue 8 item 2): by default what
the official SDKs retry (408, 409, 429, 500, 502, 503, 504), configurable
with retry.on_status; a 429 whose Retry-After is past the retry deadline
goes to the client at once."""
import time

import harness
from harness import check, eq

FAST = {"base_delay_ms": 1, "max_delay_ms": 5}


def attempts(r):
    return int(r.header("x-sluice-attempts") or "1")


def test_default_statuses_are_retried(h):
    h.start_mock()
    h.start_gateway(h.config(retry=dict(FAST, max_attempts=2)))
    for status in (408, 409, 429, 500, 502, 503, 504):
        before = h.mock_stats()["requests"]
        h.mock_config(status=status, count=1)
        r = h.chat("status %d once" % status)
        eq(r.status, 200, "status %d: %r" % (status, r.body))
        eq(attempts(r), 2, "status %d retried" % status)
        eq(h.mock_stats()["requests"], before + 2)
    for status in (400, 401, 403, 404, 422, 501):
        before = h.mock_stats()["requests"]
        r = h.chat("status %d" % status, mock={"status": status})
        eq(r.status, status)
        eq(attempts(r), 1, "status %d not retried" % status)
        eq(h.mock_stats()["requests"], before + 1)


def test_on_status_replaces_the_list(h):
    h.start_mock()
    h.start_gateway(h.config(retry=dict(FAST, max_attempts=3, on_status=[418, "5xx"])))
    h.mock_config(status=418, count=1)
    eq(attempts(h.chat("teapot once")), 2)
    h.mock_config(status=501, count=1)
    eq(attempts(h.chat("5xx class")), 2)
    r = h.chat("429 not listed", mock={"status": 429})
    eq(r.status, 429)
    eq(attempts(r), 1)


def test_empty_on_status_retries_no_status(h):
    h.start_mock()
    h.start_gateway(h.config(retry=dict(FAST, on_status=[])))
    r = h.chat("503 kept", mock={"status": 503})
    eq(r.status, 503)
    eq(attempts(r), 1)


def test_bad_on_status_is_a_config_error(h):
    h.start_mock()
    for bad, why in ((["abc"], "retry.on_status[0]"), ([200], "retry.on_status[0]"),
                     ([429, "6xx"], "retry.on_status[1]"), ("5xx", "retry.on_status")):
        path = h.write_config(h.config(retry={"on_status": bad}), "bad.json")
        res = h.sluice("check", "-c", path)
        check(res.returncode != 0, "%r accepted" % (bad,))
        check(why in res.stderr + res.stdout, "%r: error names %s: %s" % (bad, why, res.stderr))


def test_retry_after_past_the_deadline_is_answered_at_once(h):
    h.start_mock()
    h.start_gateway(h.config(retry=dict(FAST, max_attempts=3, deadline_ms=3000)))
    h.mock_config(status=429, retry_after=5, count=1)
    t0 = time.time()
    r = h.chat("come back in 5 s")
    took = time.time() - t0
    eq(r.status, 429)
    eq(r.header("retry-after"), "5")
    eq(attempts(r), 1)
    check(took < 1.0, "answered at once, not held (%.2f s)" % took)
    # Within the deadline it is honoured, then retried.
    h.mock_config(status=429, retry_after=1, count=1)
    t0 = time.time()
    r = h.chat("come back in 1 s")
    took = time.time() - t0
    eq(r.status, 200)
    eq(attempts(r), 2)
    check(took >= 0.98, "waited the Retry-After (%.2f s)" % took)


if __name__ == "__main__":
    harness.main(globals())
