"""The official `openai` npm client works against sluice unchanged."""
import os
import shutil
import subprocess

import harness
from harness import check, eq

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "openai_client")

POLICY = """
function decide(req, ctx)
  if req.model == "limited-model" then
    return { action = "reject", status = 429, retry_after = 7, message = "slow down" }
  end
end
"""


def ensure_client():
    if not shutil.which("node") or not shutil.which("npm"):
        raise RuntimeError("node and npm are required (scripts/install-deps.sh installs them)")
    if not os.path.isdir(os.path.join(HERE, "node_modules", "openai")):
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=HERE,
                       check=True, timeout=300)


def test_openai_node_client(h):
    ensure_client()
    h.start_mock()
    script = os.path.join(h.tmp, "policy.lua")
    with open(script, "w") as f:
        f.write(POLICY)
    h.start_gateway(h.config(policy={"script": script}))
    r = subprocess.run(["node", os.path.join(HERE, "client_test.mjs"),
                        "http://127.0.0.1:%d/v1" % h.gw.port],
                       capture_output=True, text=True, timeout=120)
    print(r.stdout)
    eq(r.returncode, 0, r.stderr)
    check("all ok" in r.stdout)


if __name__ == "__main__":
    harness.main(globals())
