#!/usr/bin/env python3
"""Mixed chat workload for the economics report, one JSON request per line.

    gen_workload.py [--n 600] [--seed 12] > workload.jsonl

Deterministic for a given seed. What is in it, and why:
- tenants: acme 50 %, globex 35 %, runaway 15 %. "runaway" stands for a
  feature gone wrong: 80 % hard prompts (the others 30 %), and the one a
  budget should stop.
- prompts: easy (short factual questions, translations, greetings; ~40
  completion tokens, max_tokens 100) and hard (debugging a stack trace,
  refactoring code in a fence, proofs, long-context analysis of ~3000
  tokens; ~400 completion tokens, max_tokens 800). The completion size is
  the mock's `completion_tokens` knob, sent in the body's "mock" field, so
  both the direct and the gateway runs get answers of the same size.
- repeats: 30 % of requests repeat an earlier request of the same tenant
  byte for byte (FAQ traffic, retries by apps, dashboards refreshing).
- priorities: realtime 30 %, standard 50 %, batch 20 % (x-priority header).
- temperature 0 everywhere (deterministic apps; what a cache may store).
Each line: {"tenant", "priority", "kind", "repeat", "body"}; the body's
model is "gpt-4o" (what an app without a gateway would hard-code); the
replayer swaps in "auto" for the gateway runs.
"""
import argparse
import json
import random

EASY = [
    "What is the capital of {x}?",
    "Translate 'good morning' into {x}.",
    "Say hello to {x} in one short sentence.",
    "How many days are there in {x}?",
    "Give me a synonym for '{x}'.",
]
EASY_FILL = ["France", "Japan", "Peru", "German", "Italian", "February", "a leap year", "happy", "fast",
             "Kenya", "Spanish", "June", "quick", "Norway", "bright"]
HARD = [
    "Debug this stack trace step by step and explain the root cause:\n{trace}",
    "Refactor this function for readability and performance:\n```python\n{code}\n```",
    "Prove that the sum of the first {n} odd numbers is a perfect square, and derive the general formula.",
    "Analyze the trade-offs of these designs for a {x} service and recommend one:\n{long}",
]
HARD_FILL = ["payments", "search", "chat", "billing", "ingest", "ranking"]


def trace(rng):
    frames = ["  File \"app/{0}.py\", line {1}, in {0}_handler".format(rng.choice(HARD_FILL), rng.randint(10, 900))
              for _ in range(rng.randint(4, 12))]
    return "Traceback (most recent call last):\n" + "\n".join(frames) + "\nKeyError: 'user_id'"


def code(rng):
    return "\n".join("def f{0}(xs):\n    out = []\n    for x in xs:\n        if x % {1} == 0:\n"
                     "            out.append(x * {0})\n    return out".format(i, rng.randint(2, 9))
                     for i in range(rng.randint(2, 6)))


def long_context(rng):
    words = ["latency", "throughput", "consistency", "replica", "queue", "shard", "cache", "budget",
             "failover", "quorum", "index", "batch"]
    return " ".join(rng.choice(words) for _ in range(rng.randint(2500, 3500)))


def prompt(rng, kind):
    if kind == "easy":
        return rng.choice(EASY).format(x=rng.choice(EASY_FILL)), 40, 100
    t = rng.choice(HARD)
    text = t.format(trace=trace(rng) if "{trace}" in t else "", code=code(rng) if "{code}" in t else "",
                    n=rng.randint(10, 99), x=rng.choice(HARD_FILL),
                    long=long_context(rng) if "{long}" in t else "")
    return text, 400, 800


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--seed", type=int, default=12)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    history = {}
    for _ in range(args.n):
        tenant = rng.choices(["acme", "globex", "runaway"], [50, 35, 15])[0]
        priority = rng.choices(["realtime", "standard", "batch"], [30, 50, 20])[0]
        past = history.setdefault(tenant, [])
        if past and rng.random() < 0.30:
            line = dict(rng.choice(past), repeat=True, priority=priority)
        else:
            kind = "hard" if rng.random() < (0.8 if tenant == "runaway" else 0.3) else "easy"
            text, completion, max_tokens = prompt(rng, kind)
            body = {"model": "gpt-4o", "temperature": 0, "max_tokens": max_tokens,
                    "messages": [{"role": "user", "content": text}],
                    "mock": {"completion_tokens": completion}}
            line = {"tenant": tenant, "priority": priority, "kind": kind, "repeat": False, "body": body}
            past.append(line)
        print(json.dumps(line))


if __name__ == "__main__":
    main()
