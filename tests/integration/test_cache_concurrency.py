"""The cache under concurrent load on two workers: many clients asking
overlapping questions while answers are stored, hit (exact and semantic)
and evicted by a small entry cap. Every answer must be the one for its own
question (the mock's reply quotes the question), whatever the interleaving;
run under TSan by the concurrency label."""
import threading

import harness
from harness import check, eq

QUESTIONS = ["question number %d about caching" % i for i in range(60)]
PARAPHRASE = {q: q.upper() + "?" for q in QUESTIONS}  # same words: a semantic hit or a miss


def test_concurrent_hits_stores_and_evictions(h):
    h.start_mock()
    h.start_gateway(h.config(workers=2, pipeline=[{"plugin": "cache", "config": {
        "max_entries": 25,
        "semantic": {"upstream": "mock", "ann_threshold": 8}}}]))
    errors = []
    counts = {"hit-exact": 0, "hit-semantic": 0, "miss": 0}
    lock = threading.Lock()

    def client(seed):
        for i in range(60):
            q = QUESTIONS[(seed * 7 + i * 13) % len(QUESTIONS)]
            asked = PARAPHRASE[q] if (seed + i) % 3 == 0 else q
            r = h.chat(asked, temperature=0)
            if r.status != 200:
                errors.append((asked, r.status))
                continue
            text = r.json()["choices"][0]["message"]["content"]
            # The mock answers "mock reply to: <first 40 chars of the question>";
            # a paraphrase may be served the original's answer, nothing else.
            if not (text.lower().startswith("mock reply to: " + q[:40].lower())):
                errors.append((asked, text))
            with lock:
                counts[r.header("x-sluice-cache")] += 1

    threads = [threading.Thread(target=client, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    eq(errors, [], "every answer belongs to its question")
    eq(sum(counts.values()), 8 * 60)
    check(counts["hit-exact"] > 0 and counts["miss"] > 0, counts)
    m = h.metrics()
    check(m.get('sluice_cache_evictions_total{instance="cache"}', 0) > 0, "the cap evicted")
    check(m.get('sluice_cache_entries{instance="cache"}') <= 25, "the cap held")
    eq(m.get('sluice_cache_misses_total{instance="cache"}'), float(counts["miss"]))
    eq(h.mock_stats()["chat_completions"], counts["miss"], "every miss, and only misses, went upstream")


if __name__ == "__main__":
    harness.main(globals())
