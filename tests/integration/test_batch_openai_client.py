"""The official `openai` npm client drives sluice's Files and Batches API:
upload, create, poll, download, paginated list, tenant 404s."""
import hashlib
import os
import subprocess

import harness
from harness import check, eq
from test_openai_client import HERE, ensure_client


def sha(s):
    return hashlib.sha256(s.encode()).hexdigest()


def test_openai_node_client_batches(h):
    ensure_client()
    h.start_mock()
    keys = [{"sha256": sha("sk-node-a"), "tenant": "acme"}, {"sha256": sha("sk-node-b"), "tenant": "globex"}]
    h.start_gateway(h.config(auth={"enabled": True, "keys": keys}, pipeline=[
        {"plugin": "batch", "config": {"dir": h.tmp + "/batch", "tick": "10ms"}}]))
    r = subprocess.run(["node", os.path.join(HERE, "batch_test.mjs"), "http://127.0.0.1:%d/v1" % h.gw.port,
                        "sk-node-a", "sk-node-b"], capture_output=True, text=True, timeout=120)
    print(r.stdout)
    eq(r.returncode, 0, r.stderr)
    check("all ok" in r.stdout)


if __name__ == "__main__":
    harness.main(globals())
