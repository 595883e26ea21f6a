"""Admission fair share when the queue is full (issue 8, item 3).

One tenant's flood fills an upstream's queue; another tenant at the same
priority then arrives. Its requests must be queued by displacing the
flooder's newest queued requests (which get the queue_full answer), up to
its fair share, instead of being refused. Deterministic: the slots are held
by requests that hang at the mock until the test closes them, and each
request is sent only once the previous one is seen queued (or answered).
"""
import socket
import threading
import time

import harness
from harness import check, eq
from test_resilience_concurrency import sha, status_of, wait_for

MAX_QUEUE = 20


class Results:
    def __init__(self):
        self.lock = threading.Lock()
        self.by_tag = {}

    def put(self, tag, r):
        with self.lock:
            self.by_tag[tag] = r

    def get(self, tag):
        with self.lock:
            return self.by_tag.get(tag)

    def tags(self):
        with self.lock:
            return set(self.by_tag)


def send(h, res, tag, token):
    def run():
        try:
            r = h.chat("%s %d" % tag, headers={"Authorization": "Bearer " + token})
        except Exception as e:  # recorded, asserted on by the test
            r = e
        res.put(tag, r)
    t = threading.Thread(target=run)
    t.start()
    return t


def hanging_request(port, token):
    """A request the mock never answers, on a socket the test closes to
    free the admission slot it holds."""
    body = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hold"}],"mock":{"hang":true}}'
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Authorization: Bearer " + token.encode() + b"\r\nContent-Length: " +
              str(len(body)).encode() + b"\r\n\r\n" + body)
    return s


def admission_state(admin_port):
    st = harness.request(admin_port, "GET", "/admin/status").json()
    for p in st["plugins"]:
        if p["plugin"] == "admission":
            ups = p["state"]["upstreams"]
            return ups[0] if ups else None
    raise AssertionError("no admission plugin in /admin/status")


def queued_standard(admin_port):
    s = admission_state(admin_port)
    return s["queued"]["standard"] if s else 0


def test_small_tenant_displaces_the_flooders_newest(h):
    h.start_mock()
    tok_big, tok_small = "sk-it-big-tenant-secret", "sk-it-small-tenant-secret"
    # A separate admin listener, open whatever auth the API listener asks.
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    admin = probe.getsockname()[1]
    probe.close()
    cfg = h.config(
        admin_listen="127.0.0.1:%d" % admin,
        auth={"enabled": True, "keys": [{"sha256": sha(tok_big), "tenant": "big"},
                                         {"sha256": sha(tok_small), "tenant": "small"}]},
        pipeline=[{"plugin": "admission", "config": {
            "max_concurrency": 2, "max_queue": MAX_QUEUE, "queue_timeout_ms": 120000}}])
    cfg["upstreams"][0]["first_byte_timeout_ms"] = 120000  # the holders wait for the test
    h.start_gateway(cfg)
    h.mock_config(latency_ms=200)  # the 200 ms upstream of the report

    # The big tenant takes both slots with requests held at the mock ...
    holders = [hanging_request(h.gw.port, tok_big) for _ in range(2)]
    wait_for(lambda: h.mock_stats()["in_flight"] == 2, 30, "both slots held at the mock")
    # ... and fills the queue, one request at a time so "newest" is defined.
    res = Results()
    threads = []
    for i in range(MAX_QUEUE):
        threads.append(send(h, res, ("big", i), tok_big))
        wait_for(lambda: queued_standard(admin) == i + 1, 30, "big request %d queued" % i)

    # The small tenant's fair share is 20 x 1/2 = 10: each of its requests
    # is queued in place of the big tenant's newest queued one.
    share = MAX_QUEUE // 2
    for i in range(share):
        threads.append(send(h, res, ("small", i), tok_small))
        def answered_now():
            tags = {t for t in res.tags() if t[0] == "big" or t == ("small", i)}
            return tags if ("small", i) in tags or len(tags) > i else None
        answered = wait_for(answered_now, 30, "small request %d answered, or one of big's" % i)
        check(("small", i) not in answered,
              "small tenant's request %d refused: %s" % (i, getattr(res.get(("small", i)), "body", "")))
        eq(answered, {("big", MAX_QUEUE - 1 - j) for j in range(i + 1)},
           "the big tenant's newest queued requests were displaced")
        eq(queued_standard(admin), MAX_QUEUE, "queue still full")

    for j in range(share):
        r = res.get(("big", MAX_QUEUE - 1 - j))
        eq(status_of(r), 429, "displaced request answered 429")
        err = r.json()["error"]
        eq(err["code"], "queue_full")
        eq(err["type"], "rate_limit_error")
        ra = r.header("retry-after")
        check(ra is not None and ra.isdigit() and int(ra) >= 1, "Retry-After on a displaced request: %r" % ra)

    # At its share, neither tenant displaces the other.
    over = h.chat("small over its share", headers={"Authorization": "Bearer " + tok_small})
    eq(over.status, 429, "small tenant past its share is refused")
    eq(over.json()["error"]["code"], "queue_full")
    more = h.chat("big once more", headers={"Authorization": "Bearer " + tok_big})
    eq(more.status, 429, "big tenant at its share is refused")

    st = admission_state(admin)
    eq(st["displaced_total"], share)
    eq(st["rejected_total"], share + 2)

    # Free the slots: everything queued is served.
    for s in holders:
        s.close()
    for t in threads:
        t.join(120)
    bad = {t: status_of(res.get(t)) for t in res.tags()
           if status_of(res.get(t)) != 200 and not (t[0] == "big" and t[1] >= MAX_QUEUE - share)}
    eq(bad, {}, "every queued request that was not displaced answered 200")
    eq(len([t for t in res.tags() if t[0] == "small"]), share)
    st = admission_state(admin)
    eq(st["in_flight"], 0, "no slot leaked")
    eq(sum(st["queued"].values()), 0, "queue drained")


if __name__ == "__main__":
    harness.main(globals())
