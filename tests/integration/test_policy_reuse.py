"""A pure policy's decisions reused (decide_is_pure, policies/README.md):
through the real gateway, a reused decision routes, tags and counts exactly
as a fresh one; an edited script is never answered from the old one's
decisions; and a script that says it is pure but keeps state is caught
and never reused."""
import os
import signal
import time

import harness
from harness import check, eq

TEAM_POLICY = """
decide_is_pure = true
function decide(req)
  local team = req.header("x-team")
  if team == "research" then
    return { model = "gpt-4o", tags = { "research" } }
  end
  return { model = "MODEL", tags = { "team:" .. (team or "none") } }
end
"""


def write_policy(h, text, model="gpt-4o-mini"):
    path = os.path.join(h.tmp, "team.lua")
    with open(path, "w") as f:
        f.write(text.replace("MODEL", model))
    return path


def reused(h):
    return h.metrics().get("sluice_policy_decisions_reused_total", 0.0)


def tag_count(h, tag):
    return h.metrics().get('sluice_policy_tags_total{tag="%s"}' % tag, 0.0)


def ask(h, team, want_model, want_tag):
    headers = {"x-team": team} if team is not None else None
    r = h.chat("hello", model="gpt-4o-mini", headers=headers)
    eq(r.status, 200, r.body)
    eq(r.header("x-sluice-model"), want_model, "model for team %r" % team)
    eq(r.json()["model"], want_model, "the upstream was asked for it")
    eq(r.header("x-sluice-tags"), want_tag, "tags for team %r" % team)


def test_reused_decisions_route_and_count_like_fresh_ones(h):
    h.start_mock()
    h.start_gateway(h.config(workers=1, policy={"script": write_policy(h, TEAM_POLICY)}))
    eq(reused(h), 0.0)
    teams = [("research", "gpt-4o", "research"),
             ("sales", "gpt-4o-mini", "team:sales"),
             (None, "gpt-4o-mini", "team:none")]
    for round_ in range(3):
        for team, model, tag in teams:
            ask(h, team, model, tag)
    # One worker: the first request of each team ran Lua, the other two
    # rounds were answered from the memo.
    eq(reused(h), 6.0, "decisions reused")
    eq(tag_count(h, "research"), 3.0, "tags count reused decisions too")
    eq(tag_count(h, "team:none"), 3.0)


def test_an_edited_policy_starts_afresh(h):
    h.start_mock()
    path = write_policy(h, TEAM_POLICY)
    h.start_gateway(h.config(workers=1, policy={"script": path}))
    ask(h, "sales", "gpt-4o-mini", "team:sales")
    ask(h, "sales", "gpt-4o-mini", "team:sales")
    eq(reused(h), 1.0)

    write_policy(h, TEAM_POLICY, model="o3-mini")
    h.gw.signal(signal.SIGHUP)
    deadline = time.time() + 30
    while h.req("GET", "/admin/status").json()["config_generation"] < 2:
        check(time.time() < deadline, "the reload never went live")
        time.sleep(0.05)
    ask(h, "sales", "o3-mini", "team:sales")
    ask(h, "sales", "o3-mini", "team:sales")
    eq(reused(h), 2.0, "the new script's decision is reused, never the old one's")


def test_a_policy_that_keeps_state_is_not_reused(h):
    """A script that says it is pure but counts in a local: its first call
    changes its state, so nothing is ever reused and every answer is the
    one a fresh run gives; the log says why."""
    h.start_mock()
    path = write_policy(h, """
decide_is_pure = true
local calls = 0
function decide(req)
  calls = calls + 1
  return { tags = { "call:" .. calls } }
end
""")
    h.start_gateway(h.config(workers=1, policy={"script": path}))
    for n in range(1, 4):
        r = h.chat("hello")
        eq(r.status, 200, r.body)
        eq(r.header("x-sluice-tags"), "call:%d" % n)
    eq(reused(h), 0.0)
    check("changed the script's state" in h.gw.stderr(),
          "the log says why: %s" % h.gw.stderr()[-2000:])


if __name__ == "__main__":
    harness.main(globals())
