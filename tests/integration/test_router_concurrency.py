"""router under concurrent load on 2 workers (concurrency label: CI runs it
under TSan too): the pool's in-flight counts and the split's metrics are
shared by the workers and must add up."""
import threading

import harness
from harness import check, eq
from test_router import start_second_mock, upstream

CLIENTS, PER_CLIENT = 8, 25


def test_pool_and_split_under_concurrency(h):
    h.start_mock("--latency-ms", "5")
    second = start_second_mock(h)
    ups = [upstream(h, "a", h.mock.port), upstream(h, "b", second.port)]
    h.start_gateway(h.config(upstreams=ups, workers=2, pipeline=[{"plugin": "router", "config": {
        "aliases": {"fast": "gpt-4o-mini"},
        "splits": {"fast": {"by": "header:x-user", "variants": [
            {"name": "stable", "weight": 70}, {"name": "canary", "model": "gpt-4.1-mini", "weight": 30}]}},
        "pools": {"gpt-4o-mini": {"strategy": "least_inflight", "upstreams": [{"name": "a"}, {"name": "b"}]},
                  "gpt-4.1-mini": {"strategy": "p2c", "upstreams": [{"name": "a"}, {"name": "b"}]}}}}]))
    results, lock = [], threading.Lock()

    def client(c):
        for i in range(PER_CLIENT):
            user = "u%d-%d" % (c, i % 5)
            r = h.chat("hi", model="fast", headers={"x-user": user})
            with lock:
                results.append((user, r.status, r.header("x-sluice-model")))

    threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    eq(len(results), CLIENTS * PER_CLIENT)
    check(all(s == 200 for _, s, _ in results), [r for r in results if r[1] != 200][:3])
    by_user = {}
    for user, _, model in results:
        by_user.setdefault(user, set()).add(model)
    check(all(len(v) == 1 for v in by_user.values()), "each user kept one variant")

    st = h.req("GET", "/admin/status").json()
    state = [p["state"] for p in st["plugins"] if p["name"] == "router"][0]
    for model, members in state["pools"].items():
        for m in members:
            eq(m["in_flight"], 0, "%s/%s in flight after the load" % (model, m["upstream"]))
    m = h.metrics()
    total = sum(v for k, v in m.items() if k.startswith("sluice_router_variant_requests_total{"))
    eq(total, float(CLIENTS * PER_CLIENT), "every request counted once in a variant")
    picks = sum(v for k, v in m.items() if k.startswith("sluice_router_upstream_picks_total{"))
    eq(picks, float(CLIENTS * PER_CLIENT), "every request picked once from a pool")


if __name__ == "__main__":
    harness.main(globals())
