"""A tokens-per-minute limit held by the exact count (issue 10).

A tenant limited to 10,000 tokens per minute (token_bucket) sends code and
CJK prompts back to back. What those requests really cost is counted with
the npm tiktoken package and the cookbook's chat framing, independently of
the gateway. With gpt-4 (cl100k_base, known to the gateway) the admitted
requests stay within 1% of what the bucket allows; with a model the gateway
has no encoding for, it falls back to the old estimate (bytes / 4) and lets
much more through. The mock reports no usage, so the bucket keeps what it
reserved at admission (input count + max_tokens) and nothing settles it."""
import glob
import json
import os
import subprocess
import sys
import time

import harness
from harness import check, eq

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "tokens"))
from test_golden import NODE_DIR, ensure_tiktoken  # noqa: E402

LIMIT = 10000

CJK = [
    "数据库连接池在高并发场景下需要限制最大连接数，否则会耗尽服务器资源。",
    "今日は東京で大雨が降りました。電車が遅れて、会議に三十分遅刻しました。",
    "서울의 겨울은 매우 춥지만, 사람들은 따뜻한 국물 요리를 즐겨 먹습니다.",
    "请在提交代码之前运行全部测试，并确认格式检查没有报告任何问题。",
    "この関数は入力された文字列をトークンに分割し、その数を返します。",
    "机器学习模型的推理成本与输入的词元数量成正比，因此准确计数非常重要。",
]


def prompts():
    """Alternating C code (this repository's tokenizer) and CJK text."""
    code = []
    for path in sorted(glob.glob(os.path.join(ROOT, "core", "tokens", "*.c"))):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        code += [text[i:i + 700] for i in range(0, len(text) - 700, 700)]
    out = []
    for i in range(60):
        cjk = "".join(CJK[(i + k) % len(CJK)] for k in range(4)) + " (%d)" % i
        out.append(code[i % len(code)])
        out.append(cjk)
    return out


def true_costs(model_bodies):
    ensure_tiktoken()
    path = os.path.join(harness.tempfile.gettempdir(), "tpm-requests-%d.json" % os.getpid())
    with open(path, "w") as f:
        json.dump(model_bodies, f)
    r = subprocess.run(["node", os.path.join(NODE_DIR, "count_chat.mjs"), "cl100k_base", path],
                       capture_output=True, text=True, check=True, timeout=120)
    os.unlink(path)
    return json.loads(r.stdout)


def run(h, model):
    """Sends every prompt once; returns (true tokens admitted, allowed)."""
    h.start_gateway(h.config(pipeline=[{"plugin": "token_bucket", "config": {
        "scope": "{tenant}", "tokens_per_period": LIMIT, "period_s": 60}}]))
    bodies = [{"model": model, "max_tokens": 1,
               "messages": [{"role": "user", "content": p}]} for p in prompts()]
    costs = true_costs(bodies)
    admitted = refused = 0
    t0 = time.monotonic()
    for body, cost in zip(bodies, costs):
        r = h.req("POST", "/v1/chat/completions", body)
        check(r.status in (200, 429), "status %d" % r.status)
        if r.status == 200:
            admitted += cost + 1  # the input plus max_tokens, as billed at most
        else:
            refused += 1
    elapsed = time.monotonic() - t0
    check(refused > 0, "the limit was reached")
    allowed = LIMIT + LIMIT * elapsed / 60
    h.gw.stop()
    return admitted, allowed, max(costs) + 1


def test_exact_count_holds_tpm_where_estimate_does_not(h):
    h.start_mock()
    h.mock_config(no_usage=True)
    exact, allowed_exact, largest = run(h, "gpt-4")
    est, allowed_est, _ = run(h, "legacy-model")
    print("exact count: %d true tokens admitted, %.0f allowed (%.2f%%)" %
          (exact, allowed_exact, 100.0 * exact / allowed_exact))
    print("old estimate: %d true tokens admitted, %.0f allowed (%.2f%%)" %
          (est, allowed_est, 100.0 * est / allowed_est))
    check(exact <= allowed_exact * 1.01, "exact count held within 1%")
    check(exact >= allowed_exact - largest, "the bucket was used up")
    check(est >= allowed_est * 1.2, "the estimate lets much more through")


POLICY = """
function decide(req, ctx)
  return { action = "reject", status = 400, message = "tokens=" .. tostring(req.input_tokens) }
end
"""

# openai-cookbook "How to count tokens with tiktoken": 129 for gpt-4, 124
# for gpt-4o, as the API reported them.
COOKBOOK = [
    {"role": "system", "content": "You are a helpful, pattern-following assistant that translates "
     "corporate jargon into plain English."},
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line "
     "growth."},
    {"role": "system", "name": "example_assistant", "content": "Things working well together will "
     "increase revenue."},
    {"role": "system", "name": "example_user", "content": "Let's circle back when we have more "
     "bandwidth to touch base on opportunities for increased leverage."},
    {"role": "system", "name": "example_assistant", "content": "Let's talk later when we're less "
     "busy about how to do better."},
    {"role": "user", "content": "This late pivot means we don't have time to boil the ocean for "
     "the client deliverable."},
]


def lua_count(h, model):
    r = h.req("POST", "/v1/chat/completions", {"model": model, "messages": COOKBOOK})
    eq(r.status, 400)
    return int(r.json()["error"]["message"].split("=")[1])


def test_lua_sees_exact_count_and_unknown_models_are_visible(h):
    h.start_mock()
    script = os.path.join(h.tmp, "policy.lua")
    with open(script, "w") as f:
        f.write(POLICY)
    h.start_gateway(h.config(policy={"script": script}))
    eq(lua_count(h, "gpt-4o"), 124)
    eq(lua_count(h, "gpt-4"), 129)
    text = sum(len(m["content"].encode()) for m in COOKBOOK)
    estimate = (text + 3) // 4 + 3 * len(COOKBOOK) + 3  # api_estimate_tokens
    eq(lua_count(h, "legacy-model"), estimate)
    eq(lua_count(h, "legacy-model"), estimate)
    m = h.metrics()
    eq(m.get('sluice_input_token_counts_total{method="exact"}'), 2.0)
    eq(m.get('sluice_input_token_counts_total{method="estimate"}'), 2.0)
    h.gw.stop()
    eq(h.gw.stderr().count('model "legacy-model" has no known encoding'), 1, "logged once")
    # The config can name the encoding of any model.
    h.start_gateway(h.config(policy={"script": script},
                             tokens={"models": {"legacy-*": "o200k_base"}}))
    eq(lua_count(h, "legacy-model"), 124)


if __name__ == "__main__":
    harness.main(globals())
