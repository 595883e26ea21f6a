"""The cache plugin on the real gateway and the bundled mock provider: exact
hits skip the upstream (the mock's request counter proves it), streamed and
non-streamed requests share answers (a streaming hit is read by the official
openai npm client), failed and cut answers are not stored, tenants never
share an entry, and the semantic layer hits near-duplicates but not
questions that differ in a number, a negation or a name."""
import hashlib
import json
import os
import shutil
import subprocess
import time

import harness
from harness import check, eq

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "openai_client")


def start(h, config=None, **over):
    h.start_mock()
    h.start_gateway(h.config(pipeline=[{"plugin": "cache", "config": config or {}}], **over))


def ask(h, content, headers=None, **extra):
    extra.setdefault("temperature", 0)
    return h.chat(content, headers=headers, **extra)


def upstream_chats(h):
    return h.mock_stats().get("chat_completions", 0)


def cache_header(r):
    return r.header("x-sluice-cache")


def test_exact_hit_skips_upstream(h):
    start(h)
    first = ask(h, "What is 2+2?")
    eq(first.status, 200)
    eq(cache_header(first), "miss")
    eq(upstream_chats(h), 1)
    second = ask(h, "What is 2+2?", user="someone-else")  # user does not split the key
    eq(second.status, 200)
    eq(cache_header(second), "hit-exact")
    eq(upstream_chats(h), 1, "the hit made no upstream call")
    a, b = first.json(), second.json()
    eq(b["choices"], a["choices"], "the stored answer")
    check(b["id"] != a["id"], "a fresh id")
    check(b["id"].startswith("chatcmpl-"), b["id"])
    eq(b["usage"]["prompt_tokens_details"]["cached_tokens"], a["usage"]["prompt_tokens"])
    # Anything that changes the answer is another key.
    eq(cache_header(ask(h, "What is 2+2?", max_tokens=3)), "miss")
    eq(cache_header(ask(h, "What is 2+3?")), "miss")
    eq(upstream_chats(h), 3)
    m = h.metrics()
    eq(m.get('sluice_cache_hits_exact_total{instance="cache"}'), 1.0)
    eq(m.get('sluice_cache_misses_total{instance="cache"}'), 3.0)


def test_bypass_and_temperature(h):
    start(h)
    ask(h, "hello there")
    eq(cache_header(ask(h, "hello there", headers={"x-sluice-cache": "bypass"})), "bypass")
    eq(cache_header(ask(h, "hello there", headers={"Cache-Control": "no-store"})), "bypass")
    eq(upstream_chats(h), 3)
    eq(cache_header(ask(h, "hello there")), "hit-exact")
    # Sampling requests are not cached by default (absent temperature = 1).
    hot = h.chat("hello there", temperature=0.8)
    eq(cache_header(hot), "bypass")
    eq(cache_header(h.chat("hello there")), "bypass")
    eq(upstream_chats(h), 5)


def test_failed_and_cut_answers_not_stored(h):
    start(h)
    bad = ask(h, "fail me", mock={"status": 500})
    check(bad.status >= 500, bad.status)
    again = ask(h, "fail me", mock={"status": 500})
    eq(cache_header(again), "miss", "an error is never served from the cache")
    # A stream cut by the upstream is not stored; a clean one is.
    body = {"model": "gpt-4o-mini", "temperature": 0, "stream": True,
            "messages": [{"role": "user", "content": "cut stream please"}],
            "mock": {"reset_after_chunks": 2, "chunks": 5}}
    try:
        h.req("POST", "/v1/chat/completions", body)
    except Exception:
        pass  # the gateway may end the client's stream abruptly too
    n = upstream_chats(h)
    r = h.req("POST", "/v1/chat/completions", body)
    eq(cache_header(r), "miss", "the cut stream was not stored")
    eq(upstream_chats(h), n + 1)
    # An answer cut by max_tokens (finish_reason length) is complete: stored.
    eq(cache_header(ask(h, "a long answer please", max_tokens=2)), "miss")
    eq(cache_header(ask(h, "a long answer please", max_tokens=2)), "hit-exact")


def sha(token):
    return hashlib.sha256(token.encode()).hexdigest()


def test_tenants_never_share(h):
    a, b = "sk-it-cache-tenant-a", "sk-it-cache-tenant-b"
    start(h, auth={"enabled": True, "keys": [{"sha256": sha(a), "tenant": "a"},
                                             {"sha256": sha(b), "tenant": "b"}]})
    ha, hb = {"Authorization": "Bearer " + a}, {"Authorization": "Bearer " + b}
    eq(cache_header(ask(h, "shared question", headers=ha)), "miss")
    eq(cache_header(ask(h, "shared question", headers=hb)), "miss")
    eq(cache_header(ask(h, "shared question", headers=ha)), "hit-exact")
    eq(cache_header(ask(h, "shared question", headers=hb)), "hit-exact")
    eq(upstream_chats(h), 2)


def sse_events(raw):
    out = []
    for line in raw.decode().split("\n"):
        if line.startswith("data: "):
            out.append(line[6:])
    return out


def test_stream_and_plain_share_answers(h):
    start(h)
    # A stream that ends cleanly is stored (assembled) ...
    body = {"model": "gpt-4o-mini", "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "stream me a story"}]}
    live = h.req("POST", "/v1/chat/completions", body)
    eq(cache_header(live), "miss")
    live_text = "".join(json.loads(e)["choices"][0]["delta"].get("content") or ""
                        for e in sse_events(live.body) if e != "[DONE]" and json.loads(e)["choices"])
    # ... and answers the same question asked without streaming.
    plain = ask(h, "stream me a story")
    eq(cache_header(plain), "hit-exact")
    eq(plain.json()["choices"][0]["message"]["content"], live_text)
    # Replayed as SSE to another stream.
    replay = h.req("POST", "/v1/chat/completions", body)
    eq(cache_header(replay), "hit-exact")
    check(replay.header("content-type").startswith("text/event-stream"))
    events = sse_events(replay.body)
    eq(events[-1], "[DONE]")
    usage = [json.loads(e)["usage"] for e in events[:-1] if json.loads(e).get("usage")]
    eq(len(usage), 1, "one usage chunk")
    check(usage[0]["prompt_tokens_details"]["cached_tokens"] > 0, usage)
    eq(upstream_chats(h), 1)
    # The answer is stored before the client's stream ends: asking again
    # the moment a stream is read to its end is a hit, every time (the
    # store once ran after the last chunk left, and lost this race).
    for i in range(30):
        body["messages"][0]["content"] = "stream me story %d" % i
        eq(cache_header(h.req("POST", "/v1/chat/completions", body)), "miss")
        eq(cache_header(ask(h, "stream me story %d" % i)), "hit-exact", "story %d" % i)


def openai_client(h, content, usage):
    r = subprocess.run(["node", os.path.join(HERE, "cache_stream.mjs"),
                        "http://127.0.0.1:%d/v1" % h.gw.port, content, "1" if usage else "0"],
                       capture_output=True, text=True, timeout=120)
    eq(r.returncode, 0, "node client failed: " + r.stderr)
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_streaming_hit_read_by_openai_client(h):
    if not shutil.which("node"):
        raise RuntimeError("node is required (scripts/install-deps.sh installs it)")
    if not os.path.isdir(os.path.join(HERE, "node_modules", "openai")):
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=HERE,
                       check=True, timeout=300)
    start(h)
    stored = ask(h, "replay from the cache")  # a plain answer, stored
    eq(cache_header(stored), "miss")
    text = stored.json()["choices"][0]["message"]["content"]
    got = openai_client(h, "replay from the cache", usage=True)
    eq(got["cache"], "hit-exact")
    check(got["contentType"].startswith("text/event-stream"), got["contentType"])
    eq(got["text"], text)
    eq(got["finish"], "stop")
    eq(len(got["ids"]), 1, "every chunk carries one id")
    check(got["ids"][0] != stored.json()["id"], "a fresh id")
    eq(got["usage"]["prompt_tokens"], stored.json()["usage"]["prompt_tokens"])
    eq(got["usage"]["prompt_tokens_details"]["cached_tokens"],
       stored.json()["usage"]["prompt_tokens"])
    quiet = openai_client(h, "replay from the cache", usage=False)
    eq(quiet["usage"], None, "no usage chunk unless asked")
    eq(quiet["text"], text)
    eq(upstream_chats(h), 1)


SEMANTIC = {"semantic": {"upstream": "mock", "model": "text-embedding-3-small"}}


def test_semantic_hits_near_duplicates_only(h):
    start(h, SEMANTIC)
    eq(cache_header(ask(h, "What is the capital of France?")), "miss")
    eq(h.mock_stats().get("embeddings"), 1, "the prompt was embedded")
    near = ask(h, "what is the capital of france")
    eq(cache_header(near), "hit-semantic")
    sim = float(near.header("x-sluice-cache-similarity"))
    check(sim >= 0.95, sim)
    eq(upstream_chats(h), 1)
    # Look-alikes the guard refuses: a name, a number, a negation.
    for q in ("What is the capital of Germany?", "What is the capital of France in 1900?",
              "What is not the capital of France?"):
        eq(cache_header(ask(h, q)), "miss", q)
    ask(h, "what is 2+2")
    eq(cache_header(ask(h, "what is 2+3")), "miss")
    ask(h, "Should I restart the server now")
    eq(cache_header(ask(h, "Should I not restart the server now")), "miss")
    # Another system prompt is another scope.
    r = h.req("POST", "/v1/chat/completions", {
        "model": "gpt-4o-mini", "temperature": 0,
        "messages": [{"role": "system", "content": "Answer as a pirate."},
                     {"role": "user", "content": "what is the capital of france"}]})
    eq(cache_header(r), "miss")


def test_semantic_hits_through_the_graph(h):
    """Above semantic.ann_threshold a scope is searched by its HNSW graph:
    the same hits and misses as the scan."""
    start(h, {"semantic": {"upstream": "mock", "ann_threshold": 2}})
    for q in ("What is the capital of France?", "How do I reset my password?",
              "Explain how photosynthesis works.", "Why is the sky blue?"):
        eq(cache_header(ask(h, q)), "miss")
    near = ask(h, "why is the sky blue")
    eq(cache_header(near), "hit-semantic")
    eq(near.json()["choices"][0]["message"]["content"],
       ask(h, "Why is the sky blue?").json()["choices"][0]["message"]["content"])
    eq(cache_header(ask(h, "What is the capital of Germany?")), "miss")
    eq(upstream_chats(h), 5)


def test_snapshot_survives_restart(h):
    snap = os.path.join(h.tmp, "cache.snapshot")
    start(h, {"snapshot": {"path": snap}})
    first = ask(h, "remember me across restarts")
    eq(cache_header(first), "miss")
    h.gw.stop()  # SIGTERM: the snapshot is written at shutdown
    check(os.path.exists(snap), "snapshot written")
    check(not os.path.exists(snap + ".tmp"), "no temporary file left")
    eq(os.stat(snap).st_mode & 0o777, 0o600)
    h.start_gateway(h.config(pipeline=[{"plugin": "cache", "config": {"snapshot": {"path": snap}}}]))
    again = ask(h, "remember me across restarts")
    eq(cache_header(again), "hit-exact")
    eq(again.json()["choices"], first.json()["choices"])
    eq(upstream_chats(h), 1)
    # A damaged snapshot is ignored (logged), never served.
    h.gw.stop()
    with open(snap, "r+b") as f:
        f.seek(30)
        f.write(b"\xff\xff")
    h.start_gateway(h.config(pipeline=[{"plugin": "cache", "config": {"snapshot": {"path": snap}}}]))
    eq(cache_header(ask(h, "remember me across restarts")), "miss")
    eq(upstream_chats(h), 2)


def test_two_instances_share_through_redis(h):
    from test_ratelimit import Redis
    redis = Redis(h)
    h.start_mock()
    cfg = {"backend": "redis", "redis_url": redis.url(), "redis_timeout_ms": 500}
    h.start_gateway(h.config(pipeline=[{"plugin": "cache", "config": cfg}]))
    a = h.gw
    h.start_gateway(h.config(pipeline=[{"plugin": "cache", "config": cfg}]), path=h.write_config(
        h.config(pipeline=[{"plugin": "cache", "config": cfg}]), "b.json"))
    b = h.gw
    first = harness.request(a.port, "POST", "/v1/chat/completions", {
        "model": "gpt-4o-mini", "temperature": 0,
        "messages": [{"role": "user", "content": "shared between instances"}]})
    eq(cache_header(first), "miss")
    # a stores the answer in Redis after answering its client (an async
    # SET): wait for the key before asking b, instead of racing it.
    deadline = time.time() + 10
    while time.time() < deadline and not subprocess.run(
            ["redis-cli", "-p", str(redis.port), "--scan", "--pattern", "sluice:cache:*"],
            capture_output=True, text=True).stdout.strip():
        time.sleep(0.02)
    second = harness.request(b.port, "POST", "/v1/chat/completions", {
        "model": "gpt-4o-mini", "temperature": 0,
        "messages": [{"role": "user", "content": "shared between instances"}]})
    eq(cache_header(second), "hit-exact", "instance b found a's answer in Redis")
    eq(second.json()["choices"], first.json()["choices"])
    eq(upstream_chats(h), 1)
    m = harness.parse_metrics(harness.request(b.port, "GET", "/metrics").body.decode())
    eq(m.get('sluice_cache_hits_shared_total{instance="cache"}'), 1.0)
    # One key, hash-tagged, with the cache's TTL.
    keys = subprocess.run(["redis-cli", "-p", str(redis.port), "--scan", "--pattern", "sluice:cache:*"],
                          capture_output=True, text=True).stdout.split()
    eq(len(keys), 1, keys)
    check(keys[0].startswith("sluice:cache:exact:{") and keys[0].endswith("}"), keys[0])
    ttl = int(subprocess.run(["redis-cli", "-p", str(redis.port), "pttl", keys[0]],
                             capture_output=True, text=True).stdout)
    check(3500000 < ttl <= 3600000, ttl)
    # Redis gone: a miss, never an error.
    redis.kill()
    r = harness.request(b.port, "POST", "/v1/chat/completions", {
        "model": "gpt-4o-mini", "temperature": 0,
        "messages": [{"role": "user", "content": "asked while redis is down"}]})
    eq(r.status, 200)
    eq(cache_header(r), "miss")


LOOSE = {"semantic": {"upstream": "mock", "threshold": 0.6}}


def test_guard_refuses_what_similarity_lets_through(h):
    """At a loose threshold the lexical embeddings call these pairs alike;
    the guard is what keeps them apart (without it they hit)."""
    pairs = [("what is 2+2", "what is 2+3"),
             ("Should I restart the server now", "Should I not restart the server now"),
             ("Who founded Apple in California", "Who founded Microsoft in California")]
    start(h, LOOSE)
    for stored, other in pairs:
        eq(cache_header(ask(h, stored)), "miss")
        eq(cache_header(ask(h, other)), "miss", other)
    rejected = {k: v for k, v in h.metrics().items()
                if k.startswith("sluice_cache_guard_rejections_total")}
    for rule in ("numbers", "negation", "entities"):
        check(any('rule="%s"' % rule in k for k in rejected), (rule, rejected))
    h.close()

    h2 = harness.Harness(h.build_dir)
    try:
        start(h2, {"semantic": dict(LOOSE["semantic"], guard=False)})
        hits = 0
        for stored, other in pairs:
            ask(h2, stored)
            hits += cache_header(ask(h2, other)) == "hit-semantic"
        eq(hits, len(pairs), "without the guard every look-alike is served the wrong answer")
    finally:
        h2.close()


def test_semantic_embedding_failure_is_a_miss(h):
    start(h, {"semantic": {"upstream": "mock", "timeout": "300ms"}})
    h.mock_config(status=500, count=1)  # the embedding call fails
    r = ask(h, "tell me a joke")
    eq(r.status, 200)
    eq(cache_header(r), "miss")
    h.mock_config(latency_ms=2000, count=1)  # the next embedding is too slow
    r = ask(h, "tell me another joke")
    eq(r.status, 200)
    eq(cache_header(r), "miss")
    m = h.metrics()
    fails = {k: v for k, v in m.items() if k.startswith("sluice_cache_embedding_failures_total")}
    eq(sum(fails.values()), 2.0, fails)


if __name__ == "__main__":
    harness.main(globals())
