"""Signals sent as soon as the gateway announces its port (issue 8 item 18).

A supervisor or a test that reads "listening on ..." may send SIGHUP or
SIGTERM at once. The handlers used to be installed just after that line, so
an early SIGHUP hit its default action and ended the process: the next
request saw ConnectionRefusedError (it_test_reload_drain failed that way
under TSan). Each round below signals right after the announcement."""
import os
import signal

import harness
from harness import check, eq

ROUNDS = 20  # before the fix about a third of the rounds lost the process


def gateway(h, path):
    return harness.Proc([os.path.join(h.build_dir, "sluice"), "serve", "-c", path],
                        r"listening on http://[^:]+:(\d+)")


def test_sighup_right_after_the_announcement_reloads(h):
    h.start_mock()
    path = h.write_config(h.config())
    for i in range(ROUNDS):
        gw = gateway(h, path)
        h.procs.append(gw)
        gw.signal(signal.SIGHUP)
        r = harness.request(gw.port, "POST", "/v1/chat/completions",
                            {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})
        eq(r.status, 200, "round %d" % i)
        check(gw.alive(), "round %d: the gateway survived an early SIGHUP" % i)
        eq(gw.stop(), 0, "round %d: clean exit" % i)


def test_sigterm_right_after_the_announcement_drains(h):
    h.start_mock()
    path = h.write_config(h.config())
    for i in range(ROUNDS):
        gw = gateway(h, path)
        h.procs.append(gw)
        gw.signal(signal.SIGTERM)
        eq(gw.wait(timeout=30), 0, "round %d: drained and exited 0" % i)


if __name__ == "__main__":
    harness.main(globals())
