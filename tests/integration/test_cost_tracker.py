"""cost_tracker through the real gateway and the mock provider: budgets
that hold under 200 concurrent requests, spend kept across a restart and a
kill -9, downgrade at the soft threshold, streamed and plain requests
costing the same. The ledger is a real SQLite file read with sqlite3."""
import os
import signal
import sqlite3
import threading

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


def test_200_concurrent_never_overspend_a_budget_for_50(h):
    h.start_mock("--latency-ms", "300")
    db = os.path.join(h.tmp, "cost.sqlite")
    # Hold the first cost computation aside: size the budget at exactly 50
    # worst cases, then send 200 at once.
    h.start_gateway(h.config(pipeline=[ct(h, db)]))
    worst = worst_case(h)
    h.gw.stop()
    limit = 50 * worst
    limit_usd = "%d.%012d" % divmod(limit, 10**12)
    budget = {"name": "load", "scope": "feature", "match": "load", "period": "daily",
              "limit_usd": limit_usd}
    h.start_gateway(h.config(pipeline=[ct(h, db, budgets=[budget])]))
    # Every answer uses the whole max_tokens, so settling frees little.
    h.mock_config(completion_tokens=20)
    before = h.mock_stats()["chat_completions"]
    res = fire(h, 200, "load")
    ok = [r for r in res if r.status == 200]
    refused = [r for r in res if r.status != 200]
    spent = ledger(db, "select coalesce(sum(cost_pico),0) from ledger where feature='load'")[0][0]
    print("  200 concurrent: %d admitted, %d refused, spent %d of %d pico-USD (worst case %d)"
          % (len(ok), len(refused), spent, limit, worst))
    check(spent <= limit, "spend %d exceeds the budget %d" % (spent, limit))
    check(len(ok) >= 50, "a budget of 50 worst cases admits at least 50: %d" % len(ok))
    for r in refused:
        eq(r.status, 429)
        err = r.json()["error"]
        eq(err["code"], "budget_exceeded")
        check("'load'" in err["message"] and "resets at" in err["message"], err["message"])
        check(int(r.header("retry-after")) >= 1, r.headers)
    eq(h.mock_stats()["chat_completions"] - before, len(ok), "refused requests never reach the provider")
    st = status(h)
    b = [x for x in st["budgets"] if x["budget"] == "load"][0]
    eq(usd_to_pico(b["spent_usd"]), spent, "admin status matches the ledger")
    eq(b["reserved_usd"], "0", "every reservation settled")


def test_two_instances_on_one_redis_share_the_budget(h):
    from test_ratelimit import Redis
    redis = Redis(h)
    h.procs.append(type("P", (), {"stop": lambda self: redis.kill(), "stderr": lambda self: "",
                                  "argv": ["redis-server"]})())
    h.start_mock("--latency-ms", "300")
    db0 = os.path.join(h.tmp, "a.sqlite")
    h.start_gateway(h.config(pipeline=[ct(h, db0)]))
    worst = worst_case(h)
    h.gw.stop()
    limit = 50 * worst
    budget = {"name": "shared", "scope": "feature", "match": "load", "period": "daily",
              "limit_usd": "%d.%012d" % divmod(limit, 10**12)}
    gws, dbs = [], []
    for name in ("a", "b"):
        db = os.path.join(h.tmp, name + "-r.sqlite")
        dbs.append(db)
        cfg = h.config(pipeline=[ct(h, db, budgets=[budget], backend="redis",
                                    redis_url=redis.url(), redis_timeout_ms=2000,
                                    on_redis_error="closed")])
        h.start_gateway(path=h.write_config(cfg, name + ".json"))
        gws.append(h.gw)
    h.mock_config(completion_tokens=20)
    results = [None] * 200
    barrier = threading.Barrier(200)

    def one(i):
        barrier.wait()
        results[i] = harness.request(gws[i % 2].port, "POST", "/v1/chat/completions",
                                     {"model": "gpt-4o", "max_tokens": 20,
                                      "messages": [{"role": "user", "content": BODY_TEXT}]},
                                     {"x-sluice-feature": "load"})

    threads = [threading.Thread(target=one, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok = [r for r in results if r.status == 200]
    refused = [r for r in results if r.status != 200]
    spent = sum(ledger(db, "select coalesce(sum(cost_pico),0) from ledger where feature='load'")[0][0]
                for db in dbs)
    per = [sum(1 for i, r in enumerate(results) if r.status == 200 and i % 2 == k) for k in (0, 1)]
    print("  two instances on one Redis: %d admitted (%d + %d), %d refused, spent %d of %d pico-USD"
          % (len(ok), per[0], per[1], len(refused), spent, limit))
    check(spent <= limit, "spend %d exceeds the shared budget %d" % (spent, limit))
    check(len(ok) >= 50, "the shared budget admits at least 50: %d" % len(ok))
    # Each instance alone would admit 50: together they admit 50 (plus what
    # early settlements free), so each saw the other's reservations.
    check(len(ok) < 60, "the instances share one budget: %d admitted" % len(ok))
    for r in refused:
        eq(r.status, 429, r.body)
        eq(r.json()["error"]["code"], "budget_exceeded")
    # Redis holds the spend both ledgers add up to.
    import subprocess
    out = subprocess.run(["redis-cli", "-p", str(redis.port), "--scan", "--pattern", "*{cost}:shared:load:*"],
                         capture_output=True, text=True).stdout.split()
    eq(len(out), 1, "one key for the budget window")
    s = subprocess.run(["redis-cli", "-p", str(redis.port), "hget", out[0], "s"],
                       capture_output=True, text=True).stdout.strip()
    r = subprocess.run(["redis-cli", "-p", str(redis.port), "hget", out[0], "r"],
                       capture_output=True, text=True).stdout.strip()
    eq(int(s), spent, "Redis spend = sum of the two ledgers")
    eq(int(r), 0, "no reservation left in Redis")


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


def test_kill9_under_load_loses_no_served_answer(h):
    h.start_mock("--latency-ms", "20")
    db = os.path.join(h.tmp, "cost.sqlite")
    cfg = h.config(pipeline=[ct(h, db)])
    h.start_gateway(cfg)
    stop = threading.Event()
    seen = []

    def client():
        while not stop.is_set():
            try:
                seen.append(chat(h, feature="k", max_tokens=10).status)
            except Exception:
                return  # the gateway died under us

    threads = [threading.Thread(target=client) for _ in range(16)]
    for t in threads:
        t.start()
    # Kill once a good amount of traffic was served, in the middle of it.
    while len(seen) < 300:
        threading.Event().wait(0.02)
    h.gw.signal(signal.SIGKILL)
    h.gw.wait()
    stop.set()
    for t in threads:
        t.join()
    served = h.mock_stats()["status_2xx"]
    h.start_gateway(cfg)  # recovers rows the dead process left reserved
    rows = dict(ledger(db, "select state, count(*) from ledger group by state"))
    settled = rows.get("settled", 0)
    orphaned = rows.get("orphaned", 0)
    print("  kill -9: mock served %d, ledger settled %d, orphaned %d, other %r"
          % (served, settled, orphaned, rows))
    check("reserved" not in rows, "no row left reserved after recovery: %r" % rows)
    check(settled <= served, "every settled row is an answer the mock served")
    check(settled + orphaned >= served,
          "every answer the mock served is in the ledger (settled %d + orphaned %d < served %d)"
          % (settled, orphaned, served))
    total = ledger(db, "select sum(cost_pico) from ledger where feature='k'")[0][0]
    orph = [v for k, v in h.metrics().items() if k.startswith("sluice_cost_tracker_ledger_orphaned_total")]
    eq(orph, [float(orphaned)], "orphans counted in the metric")
    # The spend of a budget rebuilt from the ledger is the ledger's sum.
    h.gw.stop()
    cfg = h.config(pipeline=[ct(h, db, budgets=[{"name": "k", "scope": "feature", "match": "k",
                                                 "period": "daily", "limit_usd": "1000"}])])
    h.start_gateway(cfg)
    eq(usd_to_pico(status(h)["budgets"][0]["spent_usd"]), total)


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
    rows = ledger(db, "select streamed, state, prompt_tokens, completion_tokens, cost_pico "
                      "from ledger where feature='same' order by id")
    eq(len(rows), 2)
    eq([r[0] for r in rows], [0, 1])
    eq([r[1] for r in rows], ["settled", "settled"])
    eq(rows[0][2:], rows[1][2:], "same usage, same cost")
    eq(usd_to_pico(plain.header("x-sluice-cost")), rows[0][4], "header = ledger")
    check(rows[0][4] > 0)


def test_threshold_crossings_reach_the_webhook_once_with_retries(h):
    import http.server
    import json
    import time
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
        deadline = time.time() + 10
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
