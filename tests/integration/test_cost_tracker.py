"""cost_tracker through the real gateway and the mock provider: spend kept
across a restart, downgrade at the soft threshold, streamed and plain
requests costing the same, webhook posts, unknown models. The ledger is a
real SQLite file read with sqlite3. The concurrency checks (200 at once,
two instances on Redis, kill -9) are in test_cost_tracker_concurrency.py."""
import os
import sqlite3
import threading
import time

import harness
from harness import check, eq

BODY_TEXT = "please summarise the quarterly report in two lines"


def ct(h, db, **cfg):
    c = {"ledger_path": db}
    c.update(cfg)
    return {"plugin": "cost_tracker", "config": c}


def ledger(db, sql, args=()):
    con = sqlite3.connect(db, timeout=10)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def wait_settled(db, feature):
    """Settlements are committed by the ledger's writer thread after the
    answer left: wait until no row of `feature` is still reserved."""
    deadline = time.time() + 30
    while ledger(db, "select count(*) from ledger where feature=? and state='reserved'",
                 (feature,))[0][0] and time.time() < deadline:
        time.sleep(0.02)


def status(h):
    st = h.req("GET", "/admin/status").json()
    for p in st["plugins"]:
        if p["plugin"] == "cost_tracker":
            return p["state"]
    raise AssertionError("no cost_tracker in /admin/status: %r" % st)


def usd_to_pico(s):
    whole, _, frac = s.partition(".")
    return int(whole) * 10**12 + int((frac + "0" * 12)[:12])


def chat(h, feature=None, stream=False, model="gpt-4o", max_tokens=20):
    hdrs = {"x-sluice-feature": feature} if feature else None
    extra = {"max_tokens": max_tokens}
    if stream:
        extra["stream"] = True
    return h.chat(BODY_TEXT, model=model, headers=hdrs, **extra)


def worst_case(h):
    """The reservation of one request (a stream's x-sluice-cost carries it),
    sent without a feature tag so no budget is touched."""
    r = chat(h, stream=True)
    eq(r.status, 200)
    eq(r.header("x-sluice-cost-basis"), "reserved")
    return usd_to_pico(r.header("x-sluice-cost"))


def fire(h, n, feature):
    results = [None] * n
    barrier = threading.Barrier(n)

    def one(i):
        barrier.wait()
        results[i] = chat(h, feature=feature)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results





def test_restart_keeps_the_spend_and_the_refusal(h):
    h.start_mock()
    db = os.path.join(h.tmp, "cost.sqlite")
    h.start_gateway(h.config(pipeline=[ct(h, db)]))
    worst = worst_case(h)
    h.gw.stop()
    budget = {"name": "tiny", "scope": "feature", "match": "f", "period": "monthly",
              "limit_usd": "%d.%012d" % divmod(3 * worst, 10**12)}
    cfg = h.config(pipeline=[ct(h, db, budgets=[budget])])
    h.mock_config(completion_tokens=20)
    h.start_gateway(cfg)
    statuses = [chat(h, feature="f").status for _ in range(5)]
    eq(statuses[:3], [200, 200, 200])
    eq(statuses[3:], [429, 429])
    spent = status(h)["budgets"][0]["spent_usd"]
    h.gw.stop()
    h.start_gateway(cfg)
    eq(status(h)["budgets"][0]["spent_usd"], spent, "spend after restart")
    r = chat(h, feature="f")
    eq(r.status, 429, "the exhausted budget stays exhausted after a restart")
    eq(r.json()["error"]["code"], "budget_exceeded")


def test_reload_keeps_the_spend(h):
    import signal
    h.start_mock()
    db = os.path.join(h.tmp, "cost.sqlite")
    budget = {"name": "tiny", "scope": "feature", "match": "f", "period": "monthly",
              "limit_usd": "0.0005"}
    h.start_gateway(h.config(pipeline=[ct(h, db, budgets=[budget])]))
    h.mock_config(completion_tokens=20)
    eq([chat(h, feature="f").status for _ in range(3)], [200, 200, 429])
    spent = status(h)["budgets"][0]["spent_usd"]
    gen = h.req("GET", "/admin/status").json()["config_generation"]
    h.gw.signal(signal.SIGHUP)  # right after the answers: settlements may still be queued
    deadline = time.time() + 30
    while h.req("GET", "/admin/status").json()["config_generation"] == gen and time.time() < deadline:
        time.sleep(0.02)
    eq(status(h)["budgets"][0]["spent_usd"], spent, "spend after reload")
    eq(chat(h, feature="f").status, 429, "still exhausted after a reload")


def test_soft_threshold_sends_the_cheaper_model(h):
    h.start_mock()
    db = os.path.join(h.tmp, "cost.sqlite")
    # 0.001 USD; each gpt-4o answer of 20 tokens costs 0.0002 + input.
    budget = {"name": "soft", "scope": "feature", "match": "s", "period": "daily",
              "limit_usd": "0.001", "downgrade_at": 50}
    h.start_gateway(h.config(pipeline=[ct(h, db, budgets=[budget],
                                          downgrade={"gpt-4o": "gpt-4o-mini"})]))
    h.mock_config(completion_tokens=20)
    models = []
    for _ in range(4):
        r = chat(h, feature="s")
        eq(r.status, 200)
        models.append(r.json()["model"])
    eq(models[:3], ["gpt-4o"] * 3, "below 50% the model is kept")
    eq(models[3], "gpt-4o-mini", "past 50% the mock sees the cheaper model")
    m = h.metrics()
    check(any(k.startswith("sluice_cost_tracker_budget_downgraded_total") for k in m), m.keys())
    st = h.req("GET", "/admin/status").json()
    check(st["health"]["budget.soft.used_ratio"] >= 0.5, st["health"])


def test_streamed_and_plain_cost_the_same(h):
    h.start_mock()
    db = os.path.join(h.tmp, "cost.sqlite")
    h.start_gateway(h.config(pipeline=[ct(h, db)]))
    h.mock_config(completion_tokens=17)
    plain = chat(h, feature="same", max_tokens=50)
    eq(plain.status, 200)
    eq(plain.header("x-sluice-cost-basis"), "usage")
    stream = chat(h, feature="same", max_tokens=50, stream=True)
    eq(stream.status, 200)
    check(b"data: [DONE]" in stream.body)
    # The client has the last byte before the gateway's on_response ran:
    # wait for the settlement itself.
    deadline = time.time() + 30
    while True:
        rows = ledger(db, "select streamed, state, prompt_tokens, completion_tokens, cost_pico "
                          "from ledger where feature='same' order by id")
        if all(r[1] != "reserved" for r in rows) or time.time() > deadline:
            break
        time.sleep(0.02)
    eq(len(rows), 2)
    eq([r[0] for r in rows], [0, 1])
    eq([r[1] for r in rows], ["settled", "settled"])
    eq(rows[0][2:], rows[1][2:], "same usage, same cost")
    eq(usd_to_pico(plain.header("x-sluice-cost")), rows[0][4], "header = ledger")
    check(rows[0][4] > 0)


def test_threshold_crossings_reach_the_webhook_once_with_retries(h):
    import http.server
    import json
    got = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            got.append((self.path, body))
            self.send_response(500 if len(got) == 1 else 200)  # the first one fails
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        h.start_mock()
        db = os.path.join(h.tmp, "cost.sqlite")
        cfg = h.config(pipeline=[ct(h, db, webhook_upstream="alerts", webhook_retry_ms=100,
                                    budgets=[{"name": "hooked", "scope": "feature", "match": "w",
                                              "period": "daily", "limit_usd": "0.001",
                                              "thresholds": [50, 80]}])])
        cfg["upstreams"].append({"name": "alerts", "base_url": "http://127.0.0.1:%d/hooks"
                                 % srv.server_address[1], "models": ["no-model-goes-here"]})
        h.start_gateway(cfg)
        h.mock_config(completion_tokens=20)
        statuses = [chat(h, feature="w").status for _ in range(8)]
        check(429 in statuses, statuses)
        deadline = time.time() + 30
        while len(got) < 3 and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # nothing more may come
        eq([p for p, _ in got], ["/hooks/budget-alerts"] * 3)
        eq(sorted(b["threshold"] for _, b in got), [50, 50, 80], "50 retried once, each line posted once")
        eq(got[0][1]["budget"], "hooked")
        eq(got[0][1]["value"], "w")
        eq(got[0][1]["limit_usd"], "0.001")
        m = h.metrics()
        eq([v for k, v in m.items() if k.startswith("sluice_cost_tracker_webhook_delivered_total")], [2.0])
    finally:
        srv.shutdown()


def test_redis_down_fails_closed_or_open_as_configured(h):
    from test_ratelimit import free_port
    h.start_mock()
    dead = "redis://127.0.0.1:%d" % free_port()  # nothing listens there
    budget = {"name": "r", "scope": "feature", "match": "x", "period": "daily", "limit_usd": "1"}
    for mode, want in (("closed", 503), ("open", 200)):
        db = os.path.join(h.tmp, mode + ".sqlite")
        cfg = h.config(pipeline=[ct(h, db, budgets=[budget], backend="redis", redis_url=dead,
                                    on_redis_error=mode)])
        h.start_gateway(path=h.write_config(cfg, mode + ".json"))
        r = chat(h, feature="x")
        eq(r.status, want, "%s: %s" % (mode, r.body[:200]))
        if want == 503:
            eq(r.json()["error"]["code"], "budget_unavailable")
            check(r.header("retry-after"), r.headers)
        eq(chat(h).status, 200, "requests under no budget never wait for Redis")
        h.gw.stop()


def test_unknown_model_is_counted_not_silent(h):
    h.start_mock()
    db = os.path.join(h.tmp, "cost.sqlite")
    h.start_gateway(h.config(pipeline=[ct(h, db)]))
    r = chat(h, model="acme-secret-model")
    eq(r.status, 200)
    eq(r.header("x-sluice-cost"), "0")
    m = h.metrics()
    key = [k for k in m if k.startswith("sluice_cost_tracker_unknown_model_total")
           and "acme-secret-model" in k]
    check(key, "warning metric for the unknown model: %r" % [k for k in m if "unknown" in k])


if __name__ == "__main__":
    harness.main(globals())
