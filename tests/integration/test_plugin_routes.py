"""Plugin routes, multipart uploads and requests the gateway makes to itself
(SDK 1.1 route_add, multipart_parse, self_submit), through the real binary
and the mock provider.

Uses tests/abi/plugins/route_probe.c (built into abi_plugins/)."""
import json
import os
import re
import subprocess
import time
from email import encoders, policy
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import harness
from harness import check, eq

KEY_HI = "8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4"  # sha256("hi")


def probe(h, **config):
    return {"plugin": "route_probe", "name": config.pop("name", "route_probe"),
            "path": os.path.join(h.build_dir, "abi_plugins", "route_probe.so"),
            "config": config}


def start(h, pipeline=None, **over):
    h.start_mock()
    access = os.path.join(h.tmp, "access.log")
    cfg = h.config(pipeline=pipeline or [probe(h)],
                   log={"level": "info", "access_log": access}, **over)
    h.start_gateway(cfg)
    return access


def access_lines(path, want, timeout=5):
    """The access log's lines once `want` of them are there (a line is
    written as its request ends, just after the client has its answer)."""
    deadline = time.time() + timeout
    while True:
        try:
            with open(path) as f:
                lines = [json.loads(x) for x in f if x.strip()]
        except FileNotFoundError:
            lines = []
        if len(lines) >= want or time.time() > deadline:
            return lines


def stdlib_form(fields, files):
    """multipart/form-data as Python's email package writes it (quoted
    boundary, extra MIME headers per part)."""
    m = MIMEMultipart("form-data")
    for name, value in fields.items():
        part = MIMEText(value, "plain")
        part.add_header("Content-Disposition", "form-data", name=name)
        m.attach(part)
    for name, (filename, data) in files.items():
        part = MIMEApplication(data, "jsonl", encoders.encode_noop)
        part.add_header("Content-Disposition", "form-data", name=name, filename=filename)
        m.attach(part)
    raw = m.as_bytes(policy=policy.HTTP)
    _, _, body = raw.partition(b"\r\n\r\n")
    return m["Content-Type"], body


def curl_upload(h, path, headers=()):
    """POST /v1/files the way users do it: curl -F (its own encoder)."""
    argv = ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}",
            "-F", "purpose=batch", "-F", "file=@%s;type=application/jsonl" % path]
    for hdr in headers:
        argv += ["-H", hdr]
    argv.append("http://127.0.0.1:%d/v1/files" % h.gw.port)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True).stdout
    body, _, status = out.rpartition("\n")
    return int(status), body


def test_multipart_upload_from_curl(h):
    access = start(h)
    path = os.path.join(h.tmp, "in.jsonl")
    lines = [json.dumps({"custom_id": "r%d" % i, "method": "POST", "url": "/v1/chat/completions",
                         "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}})
             for i in range(3)]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    status, body = curl_upload(h, path)
    eq(status, 200, body)
    got = json.loads(body)
    eq(got["purpose"], "batch")
    eq(got["filename"], "in.jsonl")
    eq(got["content_type"], "application/jsonl")
    eq(got["bytes"], os.path.getsize(path), "the file arrives byte for byte")
    eq(got["lines"], 3)
    eq(got["tenant"], "default", "auth off: the default tenant")
    line = [x for x in access_lines(access, 1) if x["endpoint"] == "/v1/files"]
    eq(len(line), 1, "the upload is in the access log")
    eq(line[0]["status"], 200)
    check("internal" not in line[0], "a client's request is not marked internal")
    check(h.metrics().get('sluice_requests_total{code="200",endpoint="other",upstream="none"}', 0) >= 1,
          "counted in the request metrics")


def test_upload_from_python_and_malformed_forms(h):
    start(h)
    ctype, body = stdlib_form({"purpose": "batch"}, {"file": ("b.jsonl", b'{"a":1}\n{"b":2}\n')})
    r = h.req("POST", "/v1/files", body, {"Content-Type": ctype})
    eq(r.status, 200, r.body)
    eq(r.json()["filename"], "b.jsonl")
    eq(r.json()["lines"], 2)

    cut = body[:body.rindex(b"--", 0, len(body) - 4)]  # no closing delimiter
    r = h.req("POST", "/v1/files", cut, {"Content-Type": ctype})
    eq(r.status, 400, r.body)
    err = r.json()["error"]
    eq(err["code"], "invalid_multipart")
    check("closing boundary" in err["message"], err["message"])

    r = h.req("POST", "/v1/files", b'{"purpose":"batch"}', {"Content-Type": "application/json"})
    eq(r.status, 400)
    check("multipart/form-data" in r.json()["error"]["message"], r.body)

    many = stdlib_form({"f%d" % i: "x" for i in range(5)}, {})
    r = h.req("POST", "/v1/files", many[1], {"Content-Type": many[0]})
    eq(r.status, 400)
    eq(r.json()["error"]["code"], "too_many_parts", "the plugin's part limit holds")


def test_upload_gets_the_core_limits_and_auth(h):
    access = start(h, limits={"max_body_bytes": 4096},
          auth={"enabled": True, "keys": [{"sha256": KEY_HI, "tenant": "acme", "user": "bob"}]})
    ctype, body = stdlib_form({"purpose": "batch"}, {"file": ("s.jsonl", b'{"a":1}\n')})
    r = h.req("POST", "/v1/files", body, {"Content-Type": ctype})
    eq(r.status, 401, "no key, auth on")
    eq(r.json()["error"]["type"], "authentication_error")
    r = h.req("POST", "/v1/files", body, {"Content-Type": ctype, "Authorization": "Bearer nope"})
    eq(r.status, 401, "unknown key")

    r = h.req("POST", "/v1/files", body, {"Content-Type": ctype, "Authorization": "Bearer hi"})
    eq(r.status, 200, r.body)
    eq(r.json()["tenant"], "acme", "the handler reads the caller's identity")
    eq(len(r.json()["key"]), 16, "the key's hash, never the key")

    big = stdlib_form({"purpose": "batch"}, {"file": ("big.jsonl", b'{"a":1}\n' * 1000)})
    r = h.req("POST", "/v1/files", big[1], {"Content-Type": big[0], "Authorization": "Bearer hi"})
    eq(r.status, 413, "over limits.max_body_bytes")
    check("error" in r.json(), "OpenAI-style error body")
    lines = access_lines(access, 3)
    refused = [x for x in lines if x["status"] == 401]
    eq(len(refused), 2, "the 401s are in the access log")
    for x in refused:
        eq(x["endpoint"], "/v1/files", "logged under the URL's path")


def test_route_matching_suspension_and_unknown_urls(h):
    start(h)
    r = h.req("GET", "/v1/files/file-abc/content?limit=2&after=x")
    eq(r.status, 200, r.body)
    eq(r.json(), {"method": "GET", "path": "/v1/files/file-abc/content",
                  "query": "limit=2&after=x", "resumed": True},
       "prefix route answered after a suspension")
    check(r.header("x-request-id"), "route answers carry x-request-id")

    r = h.req("DELETE", "/v1/files/file-abc")
    eq(r.status, 405)
    eq(r.header("allow"), "GET")
    r = h.req("GET", "/v1/nothing-here")
    eq(r.status, 404)
    check("Unknown request URL" in r.json()["error"]["message"], r.body)
    r = h.req("GET", "/v1/filesx")
    eq(r.status, 404, "a route without a trailing slash matches exactly")

    eq(h.chat("x").status, 200, "built-in endpoints still answer")


def test_route_conflicts_refuse_the_config(h):
    h.start_mock()
    path = h.write_config(h.config(pipeline=[probe(h, name="a"), probe(h, name="b")]))
    r = h.sluice("check", "-c", path)
    check(r.returncode != 0, "two instances on the same routes")
    check(re.search(r"pipeline\[1\] \(b\): the route POST /\S+ overlaps the route POST /\S+ "
                    r"of pipeline\[0\] \(a\)", r.stderr), r.stderr)

    path = h.write_config(h.config(pipeline=[probe(h, extra_route="GET /v1/")]))
    r = h.sluice("check", "-c", path)
    check(r.returncode != 0, "a prefix over the built-in endpoints")
    check("covers the built-in endpoint" in r.stderr, r.stderr)

    path = h.write_config(h.config(pipeline=[probe(h, extra_route="GET /admin/mine")]))
    r = h.sluice("check", "-c", path)
    check(r.returncode != 0 and "covers the built-in endpoint /admin/" in r.stderr, r.stderr)


def test_self_requests_are_rate_limited_and_logged(h):
    bucket = {"plugin": "token_bucket", "config": {"scope": "{tenant}", "requests_per_period": 1,
                                                   "period_s": 3600}}
    access = start(h, pipeline=[probe(h), bucket])
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
    r = h.req("POST", "/probe/self?n=2&tenant=t1", chat)
    eq(r.status, 200, r.body)
    res = r.json()["results"]
    eq([x["status"] for x in res], [200, 429], "the second one is over the tenant's limit")
    eq([x["id"] for x in res], ["probe-self-0", "probe-self-1"])
    eq(json.loads(res[0]["body"])["object"], "chat.completion")
    err = json.loads(res[1]["body"])["error"]
    check(err["type"] in ("rate_limit_exceeded", "rate_limit_error", "requests"), err)
    check(res[1]["retry_after_ms"] > 0, "Retry-After reaches the submitter")
    eq(h.mock_stats()["requests"], 1, "the refused one never reached the upstream")
    eq(h.chat("x").status, 200, "a client of another tenant is not limited")

    lines = access_lines(access, 4)
    by_id = {x["id"]: x for x in lines}
    for rid, status in (("probe-self-0", 200), ("probe-self-1", 429)):
        check(rid in by_id, "%s logged: %r" % (rid, lines))
        line = by_id[rid]
        eq(line["status"], status, rid)
        eq(line["internal"], True, rid)
        eq(line["endpoint"], "/v1/chat/completions", rid)
        eq(line["tenant"], "t1", rid)
        eq(line["priority"], "batch", rid)
        eq(line["model"], "gpt-4o-mini", rid)
    eq(by_id["probe-self-0"]["upstream"], "mock")
    check(by_id["probe-self-0"]["prompt_tokens"] > 0, "usage accounted like a client's")
    route = [x for x in lines if x["endpoint"] == "/probe/self"]
    eq(len(route), 1)
    check("internal" not in route[0], "the client's route request is not internal")


def test_self_request_with_a_bad_body_gets_a_400(h):
    start(h)
    r = h.req("POST", "/probe/self?n=1&tenant=t2", b'{"model": "gpt-4o-mini", "messages": ')
    eq(r.status, 200, r.body)
    res = r.json()["results"]
    eq(res[0]["status"], 400, "checked like a client's body")
    eq(json.loads(res[0]["body"])["error"]["type"], "invalid_request_error")
    r = h.req("POST", "/probe/self?n=1&tenant=t2",
              {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "stream": True})
    eq(r.status, 500, "stream: true is refused by self_submit")
    eq(h.mock_stats()["requests"], 0)


if __name__ == "__main__":
    harness.main(globals())
