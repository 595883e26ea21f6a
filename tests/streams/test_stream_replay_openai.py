"""Answering as a stream: the stream_probe test plugin keeps the answer a
live stream left (resp_whole_body: the stream assembled into a
chat.completion) and replays it with respond() to later `stream: true`
requests; the official `openai` npm client reads the replay as it reads a
live stream (content, finish reason, usage only with include_usage, tool
calls through its stream helper)."""
import json
import os
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "integration"))
import harness  # noqa: E402
from harness import check, eq  # noqa: E402
from test_openai_client import HERE, ensure_client  # noqa: E402
from test_stream_whole import settled  # noqa: E402


def start(h):
    ensure_client()
    h.start_mock()
    h.start_gateway(h.config(pipeline=[
        {"plugin": "stream_probe", "path": os.path.join(h.build_dir, "test_plugins", "stream_probe.so"),
         "config": {}},
    ]))


def client(h, headers, usage):
    r = subprocess.run(["node", os.path.join(HERE, "stream_replay.mjs"),
                        "http://127.0.0.1:%d/v1" % h.gw.port, json.dumps(headers), "1" if usage else "0"],
                       capture_output=True, text=True, timeout=120)
    eq(r.returncode, 0, "node client failed: " + r.stderr)
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_stored_stream_replayed_to_openai_client(h):
    start(h)
    live = client(h, {}, usage=True)  # two live streams: iterator and helper
    eq(h.mock_stats().get("chat_completions"), 2, "live streams went upstream")
    state = settled(h, 2)
    eq(state["read"], 2, "both live streams were read whole")
    whole = state["whole"]
    eq(whole["object"], "chat.completion", "assembled object")
    eq(whole["choices"][0]["message"]["content"], live["text"], "assembled text = streamed text")
    eq(whole["choices"][0]["finish_reason"], live["finish"], "assembled finish reason")
    eq(whole["usage"], live["usage"], "assembled usage = the usage chunk")

    replay = client(h, {"x-probe-replay": "stored"}, usage=True)
    eq(h.mock_stats().get("chat_completions"), 2, "the replays made no upstream call")
    check(replay["contentType"].startswith("text/event-stream"), replay["contentType"])
    check(replay["chunks"] >= 4, "role, content pieces, finish, usage: %d" % replay["chunks"])
    eq(replay["ids"], [whole["id"]], "every chunk carries the answer's id")
    eq(replay["text"], live["text"], "replayed text")
    eq(replay["finish"], "stop", "replayed finish reason")
    eq(replay["usage"], live["usage"], "replayed usage chunk")
    eq(replay["final"]["choices"][0]["message"]["content"], live["text"], "helper's final text")
    eq(replay["final"]["usage"], live["usage"], "helper's final usage")

    quiet = client(h, {"x-probe-replay": "stored"}, usage=False)
    eq(quiet["text"], live["text"], "replayed text without usage")
    eq(quiet["usage"], None, "no usage chunk unless include_usage")
    eq(quiet["finish"], "stop")


def test_static_tool_call_answer_streamed(h):
    start(h)
    r = client(h, {"x-probe-replay": "tools"}, usage=True)
    eq(h.mock_stats().get("chat_completions", 0), 0, "a static answer, no upstream call")
    msg = r["final"]["choices"][0]["message"]
    eq(r["final"]["choices"][0]["finish_reason"], "tool_calls")
    eq([c["id"] for c in msg["tool_calls"]], ["call_w", "call_t"])
    eq([c["function"]["name"] for c in msg["tool_calls"]], ["get_weather", "get_time"])
    eq(json.loads(msg["tool_calls"][0]["function"]["arguments"]),
       {"location": "Paris, France", "unit": "celsius", "days": list(range(1, 15))})
    eq(msg["tool_calls"][1]["function"]["arguments"], '{"tz":"CET"}')
    eq(r["usage"], {"prompt_tokens": 21, "completion_tokens": 34, "total_tokens": 55})
    # The same answer to a non-streamed request stays JSON.
    plain = h.req("POST", "/v1/chat/completions",
                  {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]},
                  {"x-probe-replay": "tools"})
    eq(plain.status, 200)
    check(plain.header("content-type").startswith("application/json"), plain.header("content-type"))
    eq(plain.json()["choices"][0]["message"]["tool_calls"][0]["id"], "call_w")


if __name__ == "__main__":
    harness.main(globals())
