"""cost_tracker under concurrency, through the real gateway and the mock:
200 concurrent requests against a budget that allows 50, the same across
two gateways on one Redis, and kill -9 in the middle of a load run. Named
*concurrency* so CI runs it under TSan too. Helpers live in
test_cost_tracker.py."""
import os
import signal
import threading
import time

import harness
from harness import check, eq
from test_cost_tracker import (BODY_TEXT, chat, ct, fire, ledger, status, usd_to_pico, wait_settled,
                               worst_case)


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
    wait_settled(db, "load")
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
    for db in dbs:
        wait_settled(db, "load")
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
    # A settle script is sent as the answer leaves: wait for Redis to
    # have applied them all.
    deadline = time.time() + 30
    while True:
        s, r = subprocess.run(["redis-cli", "-p", str(redis.port), "hmget", out[0], "s", "r"],
                              capture_output=True, text=True).stdout.split()
        if int(r) == 0 or time.time() > deadline:
            break
        time.sleep(0.02)
    eq(int(s), spent, "Redis spend = sum of the two ledgers")
    eq(int(r), 0, "no reservation left in Redis")


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
    deadline = time.time() + 60
    while len(seen) < 300 and time.time() < deadline:
        time.sleep(0.02)
    check(len(seen) >= 300, "the load never got going: %d answers" % len(seen))
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


if __name__ == "__main__":
    harness.main(globals())
