"""Admission and retries (issue 13: failing batch lines crowded out
interactive requests). A request whose attempt failed waits out its retry
backoff without holding an admission slot: another request sent meanwhile
gets the slot and is answered before the retry even starts. Ordered, not
timed: the failing request's backoff is the upstream's Retry-After of 3 s,
and the test only asks which of the two answers came first.
"""
import threading

import harness
from harness import eq
from test_resilience_concurrency import wait_for, wait_slots_released


def test_retry_backoff_frees_the_slot(h):
    h.start_mock()
    h.start_gateway(h.config(
        retry={"max_attempts": 2, "deadline_ms": 60000},
        pipeline=[{"plugin": "admission", "config": {
            "max_concurrency": 1, "max_queue": 10, "queue_timeout_ms": 60000}}]))

    order, failing = [], {}

    def send_failing():
        failing["r"] = h.chat("fails every time", mock={"status": 503, "retry_after": 3})
        order.append("failing")

    t = threading.Thread(target=send_failing)
    t.start()
    wait_for(lambda: h.mock_stats().get("chat_completions", 0) >= 1, 30,
             "the failing request's first attempt reached the mock")
    other = h.chat("an ordinary question")
    order.append("other")
    t.join(60)

    eq(other.status, 200)
    eq(order, ["other", "failing"], "answered while the failing request waited out its backoff")
    eq(failing["r"].status, 503)
    eq(h.mock_stats().get("chat_completions", 0), 3, "two attempts of the failing request, one other")
    # Every slot came back: nothing is left in flight.
    wait_slots_released(h)


if __name__ == "__main__":
    harness.main(globals())
