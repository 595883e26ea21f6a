"""The out-of-tree example plugin, built against the installed SDK, loads
into the real gateway and acts on requests."""
import argparse
import sys

import harness
from harness import eq, check

ap = argparse.ArgumentParser()
ap.add_argument("--plugin", required=True)
PLUGIN = ap.parse_known_args()[0].plugin


def test_example_plugin_loads_and_runs(h):
    h.start_mock()
    cfg = h.config(pipeline=[{"plugin": "hello", "path": PLUGIN,
                              "config": {"greeting": "hi from hello"}}])
    path = h.write_config(cfg)
    r = h.sluice("check", "-c", path)
    eq(r.returncode, 0, "sluice check: " + r.stderr)
    h.start_gateway(path=path)
    ok = h.chat("hello there")
    eq(ok.status, 200)
    eq(ok.header("x-hello"), "hi from hello", "greeting header")
    blocked = h.chat("hello", headers={"x-hello-block": "1"})
    eq(blocked.status, 403)
    eq(blocked.json()["error"]["code"], "blocked")
    m = h.metrics()
    eq(m.get('sluice_hello_greeted_total{instance="hello"}'), 1.0, "greeted metric")
    eq(m.get('sluice_hello_blocked_total{instance="hello"}'), 1.0, "blocked metric")


def test_example_plugin_header_reaches_streams(h):
    # The header is added before the stream's headers leave (a header added
    # in on_response would be refused with SLUICE_EPHASE and lost).
    h.start_mock()
    h.start_gateway(h.config(pipeline=[{"plugin": "hello", "path": PLUGIN,
                                        "config": {"greeting": "hi"}}]))
    r = h.chat("hello", stream=True)
    eq(r.status, 200)
    check(b"[DONE]" in r.body, r.body[-200:])
    eq(r.header("x-hello"), "hi", "greeting header on a stream")


def test_plugin_help_lists_keys(h):
    r = h.sluice("plugin-help", PLUGIN)
    eq(r.returncode, 0, r.stderr)
    check("greeting" in r.stdout and "block_header" in r.stdout, r.stdout)


if __name__ == "__main__":
    harness.main(globals())
