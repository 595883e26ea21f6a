"""Every upstream attempt passes the pacing plugins (issue 8 item 1): a
retry or a fallback is another call to a provider, so it takes a token, a
window slot or a start time of the upstream it goes to, and the adaptive
limiter learns from each attempt's outcome, not only from the last one.

bench/retry_pacing.py measures the effect under load (provider 429s with a
hidden capacity); these tests prove the mechanism deterministically."""
import json
import os
import socket
import threading
import time

import harness
from harness import check, eq


def counter(m, name):
    return sum(v for k, v in m.items() if k == name or k.startswith(name + "{"))


def error_code(r):
    try:
        return r.json()["error"]["code"]
    except Exception:
        return None


def retry(**over):
    cfg = {"max_attempts": 3, "base_delay_ms": 10, "max_delay_ms": 20}
    cfg.update(over)
    return cfg


def test_token_bucket_retry_needs_a_token(h):
    """One request per hour and a failing upstream: the retry finds the
    bucket empty and is refused instead of reaching the provider again."""
    h.start_mock()
    h.start_gateway(h.config(retry=retry(), pipeline=[{"plugin": "token_bucket", "config": {
        "requests_per_period": 1, "period_s": 3600, "scope": "{upstream}"}}]))
    h.mock_config(status=503, count=5)
    r = h.chat("fails upstream")
    eq(h.mock_stats()["chat_completions"], 1, "the retry did not go out without a token")
    eq(r.status, 429, r.body)
    eq(error_code(r), "rate_limit_exceeded")
    check(r.header("retry-after") is not None, "the refusal says when to come back")


def test_token_bucket_wait_mode_holds_the_retry(h):
    """In wait mode a retry waits for its token like a new request: the
    second attempt leaves only when the bucket has refilled."""
    h.start_mock()
    h.start_gateway(h.config(retry=retry(max_attempts=2), pipeline=[{
        "plugin": "token_bucket", "config": {
            "requests_per_period": 1, "period_s": 1, "mode": "wait", "max_wait_ms": 5000}}]))
    h.mock_config(status=503, count=1)
    t0 = time.time()
    r = h.chat("waits for a token")
    took = time.time() - t0
    eq(r.status, 200, r.body)
    eq(r.header("x-sluice-attempts"), "2")
    eq(h.mock_stats()["chat_completions"], 2)
    check(took >= 0.9, "the retry waited for the refill (1 s), took %.3f s" % took)


def test_sliding_window_counts_each_attempt(h):
    h.start_mock()
    h.start_gateway(h.config(retry=retry(), pipeline=[{"plugin": "sliding_window", "config": {
        "limit": 2, "window_s": 3600}}]))
    h.mock_config(status=503, count=5)
    r = h.chat("fails upstream")
    eq(h.mock_stats()["chat_completions"], 2, "the third attempt was over the window")
    eq(r.status, 429, r.body)
    eq(h.chat("window spent").status, 429)
    eq(h.mock_stats()["chat_completions"], 2)


def test_aimd_learns_from_every_attempt(h):
    """A 429 hidden by a successful retry still lowers the learned rate."""
    h.start_mock()
    h.start_gateway(h.config(retry=retry(), pipeline=[{"plugin": "aimd", "config": {
        "limit_by": "rate", "initial_rate": 50, "max_rate": 100}}]))
    m0 = h.metrics()
    h.mock_config(status=429, count=1)
    r = h.chat("429 then fine")
    eq(r.status, 200, r.body)
    eq(r.header("x-sluice-attempts"), "2")
    m = h.metrics()
    eq(counter(m, "sluice_aimd_decreases_total") - counter(m0, "sluice_aimd_decreases_total"), 1.0,
       "the first attempt's 429 reached the limiter")
    eq(counter(m, "sluice_aimd_allowed_total") - counter(m0, "sluice_aimd_allowed_total"), 2.0,
       "both attempts were admitted by the limiter")
    eq([(k["in_flight"], k["queued"], k["paced"]) for k in aimd_keys(h)], [(0, 0, 0)],
       "no slot or start time left held")


def test_aimd_retry_waits_for_its_start_time(h):
    """At 0.5 starts per second with no waiting allowed, the retry of a
    failed attempt has no start time and is refused, not sent."""
    h.start_mock()
    h.start_gateway(h.config(retry=retry(), pipeline=[{"plugin": "aimd", "config": {
        "limit_by": "rate", "initial_rate": 0.5, "min_rate": 0.1, "max_rate": 1,
        "max_wait_ms": 0}}]))
    h.mock_config(status=502, count=5)
    r = h.chat("fails upstream")
    eq(h.mock_stats()["chat_completions"], 1, "the retry had no start time and did not go out")
    eq(r.status, 429, r.body)
    eq(error_code(r), "upstream_capacity")


def test_pacing_never_outlasts_the_retry_deadline(h):
    """A retry that waits for its token past retry.deadline_ms does not go:
    at the deadline the client gets the provider's answer, and the waiting
    retry gives its reserved token back."""
    h.start_mock()
    h.start_gateway(h.config(
        retry=retry(max_attempts=2, deadline_ms=1000),
        pipeline=[{"plugin": "token_bucket", "config": {
            "requests_per_period": 1, "period_s": 4, "mode": "wait", "max_wait_ms": 10000}}]))
    h.mock_config(status=503, count=1)
    t0 = time.time()
    r = h.chat("the retry would wait 4 s")
    took = time.time() - t0
    eq(r.status, 503, r.body)
    eq(r.header("x-sluice-upstream"), "mock")
    eq(h.mock_stats()["chat_completions"], 1, "the retry did not go after the deadline")
    check(took < 3.0, "answered at the 1 s deadline, not after the 4 s wait (%.2f s)" % took)
    # The abandoned retry's slot was given back: the next request takes
    # the slot after the first attempt's, not one after it.
    t0 = time.time()
    eq(h.chat("next").status, 200)
    check(time.time() - t0 < 5.5, "waited ~3 s for the next slot, not ~7 s for the one after")


def aimd_keys(h):
    return [p for p in h.req("GET", "/admin/status").json()["plugins"]
            if p["plugin"] == "aimd"][0]["state"]["keys"]


def wait_for(what, cond, tries=500):
    for _ in range(tries):
        if cond():
            return
        time.sleep(0.01)
    raise AssertionError("timed out waiting for " + what)


def test_client_gone_while_a_retry_waits_leaks_nothing(h):
    """The client leaves while its retry waits for a start time in aimd:
    the start time is given back, nothing stays held, no call goes out."""
    h.start_mock()
    h.start_gateway(h.config(retry=retry(), pipeline=[{"plugin": "aimd", "config": {
        "limit_by": "both", "initial_rate": 0.5, "min_rate": 0.1, "max_rate": 1,
        "max_wait_ms": 20000}}]))
    h.mock_config(status=503, count=5)
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})
    s = socket.create_connection(("127.0.0.1", h.gw.port))
    s.sendall(("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
               "application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)).encode())
    wait_for("the retry to wait for its start time",
             lambda: [k["paced"] for k in aimd_keys(h)] == [1])
    eq(h.mock_stats()["chat_completions"], 1)
    s.close()
    wait_for("the start time to be given back",
             lambda: [(k["in_flight"], k["queued"], k["paced"]) for k in aimd_keys(h)]
             == [(0, 0, 0)])
    eq(h.mock_stats()["chat_completions"], 1, "the abandoned retry never went out")


def start_with_backup(h, plugin, fallback_model=None):
    """The mock serves gpt-4o and falls back to a second mock, "backup",
    which serves every other model too; one plugin in the pipeline."""
    h.start_mock()
    backup = harness.Proc([os.path.join(h.build_dir, "sluice-mock"), "--listen", "127.0.0.1:0",
                           "--quiet"], r"listening on 127\.0\.0\.1:(\d+)")
    h.procs.append(backup)
    cfg = h.config(retry=retry(max_attempts=2, on_other_upstream=True),
                   fallbacks={"gpt-4o": [dict({"upstream": "backup"},
                                              **({"model": fallback_model} if fallback_model else {}))]},
                   pipeline=[plugin])
    cfg["upstreams"][0]["models"] = ["gpt-4o"]
    b = dict(cfg["upstreams"][0])
    b.update(name="backup", base_url="http://127.0.0.1:%d/v1" % backup.port, models=["*"])
    cfg["upstreams"].append(b)
    h.start_gateway(cfg)
    return backup


def test_fallback_takes_the_token_of_its_own_upstream(h):
    """The fallback attempt is paced by the bucket of the upstream it goes
    to ({upstream} scope): the primary's spent bucket does not stop it, and
    the backup's bucket is spent by it."""
    backup = start_with_backup(h, {"plugin": "token_bucket", "config": {
        "requests_per_period": 1, "period_s": 3600, "scope": "{upstream}"}})
    h.mock_config(status=503, count=5)
    r = h.chat("primary fails", model="gpt-4o")
    eq(r.status, 200, r.body)
    eq(r.header("x-sluice-upstream"), "backup")
    eq(h.mock_stats()["chat_completions"], 1)
    # The fallback spent the backup's token: a request routed there directly
    # is refused before any call.
    r = h.chat("backup spent", model="gpt-4o-mini")
    eq(r.status, 429, r.body)
    eq(harness.request(backup.port, "GET", "/mock/stats").json()["chat_completions"], 1)


def test_fallback_queues_for_a_slot_of_its_own_upstream(h):
    """admission with one slot per upstream: a fallback to the backup waits
    for the backup's slot (held by a slow request) instead of going out
    with the primary's slot, so the backup never serves two at once."""
    backup = start_with_backup(h, {"plugin": "admission", "config": {
        "max_concurrency": 1, "max_queue": 10, "queue_timeout_ms": 20000}})

    def backup_stats():
        return harness.request(backup.port, "GET", "/mock/stats").json()

    slow = {}
    holder = threading.Thread(target=lambda: slow.update(
        r=h.chat("holds the backup's slot", model="gpt-4o-mini", mock={"latency_ms": 2000})))
    holder.start()
    for _ in range(500):  # until the slow request is at the backup
        if backup_stats()["in_flight"] == 1:
            break
        time.sleep(0.01)
    eq(backup_stats()["in_flight"], 1)
    h.mock_config(status=503, count=1)
    r = h.chat("primary fails", model="gpt-4o")
    holder.join()
    eq(r.status, 200, r.body)
    eq(r.header("x-sluice-upstream"), "backup")
    eq(slow["r"].status, 200)
    eq(backup_stats()["max_in_flight"], 1, "the fallback waited for the backup's slot")


def test_fallback_into_an_open_circuit_is_refused(h):
    """breaker per upstream and model: the fallback's circuit
    (backup:gpt-4o-mini) is open, so the fallback attempt is refused by it
    instead of reaching the backup (the core only sees whole upstreams)."""
    backup = start_with_backup(h, {"plugin": "breaker", "config": {
        "scope": "upstream_model", "consecutive_failures": 2, "recovery_timeout_ms": 60000}},
        fallback_model="gpt-4o-mini")

    def backup_calls():
        return harness.request(backup.port, "GET", "/mock/stats").json()["chat_completions"]

    harness.request(backup.port, "POST", "/mock/config", {"status": 503, "count": 2})
    eq(h.chat("opens backup:gpt-4o-mini", model="gpt-4o-mini").status, 503)
    eq(backup_calls(), 2)
    h.mock_config(status=503, count=1)
    r = h.chat("primary fails", model="gpt-4o")
    eq(backup_calls(), 2, "the fallback did not go into the open circuit")
    eq(r.status, 503, r.body)
    eq(error_code(r), "upstream_unavailable")


if __name__ == "__main__":
    harness.main(globals())
