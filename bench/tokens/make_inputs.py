#!/usr/bin/env python3
"""Bench inputs from the machine's own text: english.txt (licences and
copyright notices), code.txt (C headers), cjk.txt (the Chinese, Japanese
and Korean man pages without their groff request lines) and chat2k.json (a
2 KB chat request). usage: make_inputs.py DIR"""
import glob
import gzip
import json
import os
import re
import sys


def gather(patterns, budget, keep=lambda line: True):
    out, total = [], 0
    for pattern in patterns:
        for path in sorted(glob.glob(pattern, recursive=True)):
            if total >= budget or not os.path.isfile(path):
                continue
            opener = gzip.open if path.endswith(".gz") else open
            try:
                with opener(path, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            lines = [ln for ln in data.split(b"\n") if keep(ln)]
            text = b"\n".join(lines).replace(b"\0", b"")
            out.append(text)
            total += len(text)
    return b"\n".join(out)[:budget]


def main(d):
    os.makedirs(d, exist_ok=True)
    english = gather(["/usr/share/common-licenses/*", "/usr/share/doc/*/copyright"], 4 << 20)
    code = gather(["/usr/include/*.h", "/usr/include/*/*.h"], 4 << 20)
    cjk = gather(["/usr/share/man/zh_CN/**/*.gz", "/usr/share/man/ja/**/*.gz",
                  "/usr/share/man/ko/**/*.gz"], 4 << 20,
                 lambda ln: not ln.startswith(b".") and not ln.startswith(b"'"))
    cjk = re.sub(rb"\\f[A-Z]|\\[|&]", b"", cjk).replace(b"\\-", b"-")
    cjk = cjk.decode("utf-8", "ignore").encode()
    english = english.decode("utf-8", "ignore").encode()
    for name, data in (("english.txt", english), ("code.txt", code), ("cjk.txt", cjk)):
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    # tiktoken's merge is quadratic in one piece: 20 KB of "a" is its
    # worst case at a size it finishes in about a second.
    with open(os.path.join(d, "a_20k.txt"), "wb") as f:
        f.write(b"a" * 20000)
    words = english.decode()[:4000]
    chat = {"model": "gpt-4o", "max_tokens": 100, "messages": [
        {"role": "system", "content": words[:500]},
        {"role": "user", "content": words[500:1400]},
        {"role": "assistant", "content": words[1400:1700]},
        {"role": "user", "content": words[1700:1950]}]}
    with open(os.path.join(d, "chat2k.json"), "w") as f:
        json.dump(chat, f)


if __name__ == "__main__":
    main(sys.argv[1])
