"""Metric names and labels (issue 8, item 16): requests by code, endpoint
and upstream; upstream attempts, retries and first byte by upstream; the
admission plugin's per-priority families as a `priority` label, not in the
name. Label values are bounded: past the cap a value reads "other", so
/metrics cannot grow without limit, and stays valid exposition text.
"""
import re
import time

import harness
from harness import check, eq

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def samples(text):
    """[(name, {label: value}, value)], checking the line syntax, that each
    family is declared once before its samples, and no sample repeats."""
    out, seen, typed = [], set(), {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            check(name not in typed, "family %s declared twice" % name)
            typed[name] = kind
            continue
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        check(m is not None, "bad sample line %r" % line)
        labels, rest = {}, m.group(3) or ""
        while rest:
            lm = LABEL.match(rest)
            check(lm is not None, "bad labels in %r" % line)
            check(lm.group(1) not in labels, "label repeated in %r" % line)
            labels[lm.group(1)] = lm.group(2)
            rest = rest[lm.end():]
        key = (m.group(1), tuple(sorted(labels.items())))
        check(key not in seen, "sample repeated: %r" % line)
        seen.add(key)
        base = re.sub(r"_(bucket|sum|count)$", "", m.group(1))
        check(m.group(1) in typed or base in typed, "sample before its # TYPE: %r" % line)
        out.append((m.group(1), labels, float(m.group(4))))
    return out


def value(ss, name, **labels):
    """Sum of the samples of `name` whose labels include `labels`."""
    return sum(v for n, ls, v in ss if n == name and all(ls.get(k) == w for k, w in labels.items()))


def series(ss, name):
    return [ls for n, ls, _ in ss if n == name]


def metrics_after(h, requests):
    """/metrics once `requests` requests were counted: a request is counted
    when it ends, just after its last byte went out to the client."""
    for _ in range(500):
        ss = samples(h.req("GET", "/metrics").body.decode())
        if value(ss, "sluice_requests_total") >= requests:
            return ss
        time.sleep(0.01)
    return ss


def test_request_and_upstream_metrics_are_labelled(h):
    h.start_mock()
    h.start_gateway(h.config(pipeline=[{"plugin": "admission", "config": {"max_concurrency": 4}}]))
    eq(h.chat("a").status, 200)
    eq(h.chat("b").status, 200)
    r = h.req("POST", "/v1/embeddings", {"model": "text-embedding-3-small", "input": "x"})
    eq(r.status, 200, r.body)
    # One retried attempt: a 503 once, then the answer.
    h.mock_config(status=503, count=1)
    eq(h.chat("c").status, 200)
    eq(h.req("GET", "/no/such/path").status, 404)
    ss = metrics_after(h, 5)

    eq(value(ss, "sluice_requests_total", code="200", endpoint="/v1/chat/completions", upstream="mock"), 3.0)
    eq(value(ss, "sluice_requests_total", code="200", endpoint="/v1/embeddings", upstream="mock"), 1.0)
    eq(value(ss, "sluice_requests_total", code="404", endpoint="other"), 1.0)
    for ls in series(ss, "sluice_requests_total"):
        eq(sorted(ls), ["code", "endpoint", "upstream"], "requests_total labels")
    eq(value(ss, "sluice_upstream_attempts_total", upstream="mock"), 5.0, "4 requests, one retried")
    eq(value(ss, "sluice_upstream_retries_total", upstream="mock"), 1.0)
    eq(value(ss, "sluice_upstream_first_byte_seconds_count", upstream="mock"), 4.0)
    for name in ("sluice_upstream_attempts_total", "sluice_upstream_retries_total",
                 "sluice_upstream_first_byte_seconds_count"):
        for ls in series(ss, name):
            check("upstream" in ls, "%s without an upstream label: %r" % (name, ls))

    # The priority is a label of one family, not part of five names.
    # One wait per slot taken: the retried request gave its slot back with
    # the 503 and waited for one again.
    eq(value(ss, "sluice_admission_wait_seconds_count", instance="admission", priority="standard"), 5.0)
    eq(value(ss, "sluice_admission_queue_depth", instance="admission", priority="batch"), 0.0)
    eq(len(series(ss, "sluice_admission_queue_depth")), 5, "one series per priority")
    names = {n for n, _, _ in ss}
    bad = sorted(n for n in names if re.search(r"_(critical|realtime|standard|batch|low)(_|$)", n))
    eq(bad, [], "priority names in metric names")


def test_label_values_are_bounded(h):
    h.start_mock()
    h.start_gateway(h.config())
    # 60 different statuses from the upstream, passed to the client: the
    # code label keeps 48 values, the rest count as code="other".
    for status in range(400, 460):
        if status in (408, 409, 429):  # retried: not what this counts
            continue
        eq(h.chat("s", mock={"status": status}).status, status)
    ss = metrics_after(h, 57)
    codes = {ls["code"] for ls in series(ss, "sluice_requests_total")}
    check(len(codes) <= 49, "at most 48 codes + other: %d" % len(codes))
    check("other" in codes, "codes past the cap read other")
    eq(value(ss, "sluice_requests_total"), 57.0, "every request counted once")


if __name__ == "__main__":
    harness.main(globals())
