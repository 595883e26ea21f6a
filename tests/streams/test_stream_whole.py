"""The whole answer of a stream (resp_whole_body), read by the stream_probe
test plugin: a /v1/completions stream assembled into its text_completion and
replayed as a stream, and a cut stream that gives no whole answer at all."""
import json
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "integration"))
import harness  # noqa: E402
from harness import check, eq  # noqa: E402
from test_coalesce_streams import events  # noqa: E402


def start(h):
    h.start_mock()
    h.start_gateway(h.config(pipeline=[
        {"plugin": "stream_probe", "path": os.path.join(h.build_dir, "test_plugins", "stream_probe.so"),
         "config": {}},
    ]))


def probe_state(h):
    st = h.req("GET", "/admin/status").json()
    return next(p["state"] for p in st["plugins"] if p["plugin"] == "stream_probe")


def settled(h, answers):
    """The probe's state once `answers` upstream answers have ended: the
    client can see a stream's last byte before the gateway has run the
    request's on_response (possibly on the other worker), so wait for it."""
    deadline = time.time() + 30
    while True:
        st = probe_state(h)
        if st["read"] + st["empty"] >= answers or time.time() > deadline:
            return st
        time.sleep(0.01)


def completions_stream(h, headers=None, usage=True):
    body = {"model": "gpt-3.5-turbo-instruct", "prompt": "Once upon a time", "stream": True,
            "mock": {"chunks": 5}}
    if usage:
        body["stream_options"] = {"include_usage": True}
    r = h.req("POST", "/v1/completions", body, headers)
    eq(r.status, 200)
    check(r.header("content-type").startswith("text/event-stream"), r.header("content-type"))
    text, finish, got_usage, chunks = "", None, None, events(r.body)
    eq(chunks[-1], "[DONE]", "ends with [DONE]")
    for data in chunks[:-1]:
        c = json.loads(data)
        eq(c["object"], "text_completion")
        for ch in c["choices"]:
            text += ch.get("text") or ""
            finish = ch.get("finish_reason") or finish
        got_usage = c.get("usage") or got_usage
    return text, finish, got_usage


def test_completions_stream_whole_and_replayed(h):
    start(h)
    text, finish, usage = completions_stream(h)
    check(text.startswith("mock reply to:"), text)
    whole = settled(h, 1)["whole"]
    eq(whole["object"], "text_completion")
    eq(whole["choices"][0]["text"], text, "assembled text")
    eq(whole["choices"][0]["finish_reason"], finish)
    eq(whole["usage"], usage, "assembled usage")
    calls = h.mock_stats().get("completions")
    again = completions_stream(h, {"x-probe-replay": "stored"})
    eq(again, (text, finish, usage), "replayed stream")
    eq(completions_stream(h, {"x-probe-replay": "stored"}, usage=False), (text, finish, None),
       "no usage chunk unless asked")
    eq(h.mock_stats().get("completions"), calls, "replays made no upstream call")


def test_cut_stream_gives_no_whole_answer(h):
    start(h)
    h.mock_config(reset_after_chunks=2, chunks=6, count=1)
    r = h.chat("cut me", stream=True)
    eq(r.status, 200)
    check(b"stream_truncated" in r.body, "the client saw the cut")
    st = settled(h, 1)
    eq(st["whole"], None, "a cut stream has no whole answer")
    eq((st["read"], st["empty"]), (0, 1))
    # The control: the same request, not cut, is read whole.
    r = h.chat("cut me", stream=True)
    check(r.body.rstrip().endswith(b"data: [DONE]"), r.body[-200:])
    st = settled(h, 2)
    eq((st["read"], st["empty"]), (1, 1))
    check(st["whole"]["choices"][0]["message"]["content"].startswith("mock reply to: cut me"))


if __name__ == "__main__":
    harness.main(globals())
