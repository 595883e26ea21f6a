#!/usr/bin/env python3
"""Replays a workload (gen_workload.py) against one target, prints one JSON
summary line.

    replay.py --port P --mode direct|gateway [--conc 16] [--prices FILE] workload.jsonl

direct:  every request as the app wrote it (model gpt-4o), no key.
gateway: model "auto" (the complexity policy picks), the tenant's key
         (Authorization: Bearer sk-econ-<tenant>) and the x-priority header.
Spend is priced here from the answers' usage and model with the cost
tracker's price table (USD per 1M tokens, integer micro-dollar arithmetic),
for every 200 the upstream produced; cache hits (x-sluice-cache: hit-*)
and static answers cost nothing. The gateway's own x-sluice-cost is summed
too when present, as a cross-check."""
import argparse
import concurrent.futures
import http.client
import json
import statistics
import threading
import time
from decimal import Decimal


def load_prices(path):
    models = json.load(open(path))["models"]
    return {m: {k: Decimal(v) for k, v in p.items()} for m, p in models.items()}


def cost(prices, model, usage):
    p = prices.get(model)
    if p is None or not usage:
        return Decimal(0)
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    fresh = usage.get("prompt_tokens", 0) - cached
    return (fresh * p["input"] + cached * p.get("cached_input", p["input"]) +
            usage.get("completion_tokens", 0) * p["output"]) / Decimal(1000000)


_local = threading.local()


def conn(port):
    c = getattr(_local, "c", None)
    if c is None:
        c = _local.c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    return c


def send(port, mode, line):
    body = dict(line["body"])
    headers = {"Content-Type": "application/json"}
    if mode == "gateway":
        body["model"] = "auto"
        headers["Authorization"] = "Bearer sk-econ-" + line["tenant"]
        headers["x-priority"] = line["priority"]
    data = json.dumps(body)
    t0 = time.perf_counter()
    for attempt in range(2):  # a keep-alive connection the server closed: reconnect once
        try:
            c = conn(port)
            c.request("POST", "/v1/chat/completions", data, headers)
            r = c.getresponse()
            raw = r.read()
            break
        except (http.client.HTTPException, ConnectionError):
            _local.c = None
            if attempt:
                raise
    ms = (time.perf_counter() - t0) * 1000
    out = {"status": r.status, "ms": ms, "cache": r.getheader("x-sluice-cache") or "",
           "cost_header": r.getheader("x-sluice-cost"), "tenant": line["tenant"], "kind": line["kind"]}
    if r.status == 200:
        j = json.loads(raw)
        out["model"], out["usage"] = j.get("model"), j.get("usage")
        out["static"] = j.get("id", "").startswith("static") or r.getheader("x-sluice-degraded") is not None
    else:
        out["error"] = (json.loads(raw).get("error") or {}).get("code") if raw.startswith(b"{") else None
    return out


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))] if xs else 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mode", choices=["direct", "gateway"], required=True)
    ap.add_argument("--conc", type=int, default=16)
    ap.add_argument("--prices", required=True)
    ap.add_argument("workload")
    args = ap.parse_args()
    prices = load_prices(args.prices)
    lines = [json.loads(l) for l in open(args.workload)]
    t0 = time.time()
    with concurrent.futures.ThreadPoolExecutor(args.conc) as ex:
        results = list(ex.map(lambda l: send(args.port, args.mode, l), lines))
    wall = time.time() - t0
    spend, header_spend, models, codes, by_tenant = Decimal(0), Decimal(0), {}, {}, {}
    for r in results:
        codes[r["status"]] = codes.get(r["status"], 0) + 1
        if r["status"] == 200 and not r["cache"].startswith("hit") and not r.get("static"):
            c = cost(prices, r["model"], r["usage"])
            spend += c
            by_tenant[r["tenant"]] = by_tenant.get(r["tenant"], Decimal(0)) + c
            models[r["model"]] = models.get(r["model"], 0) + 1
        if r["cost_header"]:
            header_spend += Decimal(r["cost_header"])
    ok = [r["ms"] for r in results if r["status"] == 200]
    print(json.dumps({
        "requests": len(results), "statuses": codes, "wall_s": round(wall, 2),
        "spend_usd": str(spend.quantize(Decimal("0.000001"))),
        "spend_by_tenant": {t: str(v.quantize(Decimal("0.000001"))) for t, v in sorted(by_tenant.items())},
        "gateway_cost_header_usd": str(header_spend.quantize(Decimal("0.000001"))),
        "upstream_answers_by_model": models,
        "cache_hits": sum(1 for r in results if r["cache"].startswith("hit")),
        "p50_ms": round(pct(ok, 0.5), 1), "p99_ms": round(pct(ok, 0.99), 1),
        "p50_easy_ms": round(pct([r["ms"] for r in results if r["status"] == 200 and r["kind"] == "easy"], 0.5), 1),
        "p50_hard_ms": round(pct([r["ms"] for r in results if r["status"] == 200 and r["kind"] == "hard"], 0.5), 1),
        "errors": sorted({r.get("error") for r in results if r["status"] != 200} - {None}),
    }))


if __name__ == "__main__":
    main()
