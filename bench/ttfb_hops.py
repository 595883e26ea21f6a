"""Splits each streamed request of a loopback capture into its hops (see
bench/ttfb_hops.sh): the client's request body reaching the proxy, the
proxy's request reaching the provider, the provider's first answer
segment, and the proxy's first answer segment to the client. Requests of
the proxies are interleaved one at a time (bench/ttfb.py), so the packets
between a client request and the proxy's first answer belong to it.

Usage: ttfb_hops.py CAPTURE MOCK_PORT NAME:PORT [NAME:PORT...]
"""
import re
import statistics
import subprocess
import sys

pcap, mock = sys.argv[1], sys.argv[2]
proxies = dict(reversed(a.split(":")) for a in sys.argv[3:])  # port -> name

text = subprocess.run(["tcpdump", "-r", pcap, "-n", "-tt"], capture_output=True,
                      text=True, check=True).stdout
packets = []
for line in text.splitlines():
    m = re.match(r"([\d.]+) IP 127\.0\.0\.1\.(\d+) > 127\.0\.0\.1\.(\d+): .* length (\d+)", line)
    if m and int(m.group(4)) > 0:
        packets.append((float(m.group(1)), m.group(2), m.group(3)))

done = {port: [] for port in proxies}
cur = None
for t, src, dst in packets:
    if dst in proxies:  # the client sending (head, then body): the body counts
        cur = {"proxy": dst, "req": t}
    elif cur is None:
        continue
    elif dst == mock and "up" not in cur:
        cur["up"] = t
    elif src == mock and "up" in cur:
        cur.setdefault("resp", []).append(t)
    elif src == cur["proxy"] and "resp" in cur:
        cur["out"] = t
        done[cur["proxy"]].append(cur)
        cur = None


def med(xs):
    return statistics.median(xs) * 1e6


print("| hop (median µs) | " + " | ".join(proxies[p] for p in done) + " |")
print("|---|" + "---|" * len(done))
rows = [
    ("client's request -> request to the provider", lambda c: c["up"] - c["req"]),
    ("provider's time to its first segment", lambda c: c["resp"][0] - c["up"]),
    ("provider's first segment -> first byte to the client", lambda c: c["out"] - c["resp"][0]),
    ("total on the wire", lambda c: c["out"] - c["req"]),
]
for name, f in rows:
    print("| %s | %s |" % (name, " | ".join("%.0f" % med([f(c) for c in done[p]]) for p in done)))
print("| provider segments before the first byte to the client (mean) | %s |" % " | ".join(
    "%.2f" % statistics.mean(len(c["resp"]) for c in done[p]) for p in done))
print("requests matched: " + ", ".join("%s %d" % (proxies[p], len(done[p])) for p in done))
