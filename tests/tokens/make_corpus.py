#!/usr/bin/env python3
"""Writes the golden corpus for the tokenizer: NUL-separated chunks of
English, code, CJK, Cyrillic, Arabic, emoji and ZWJ sequences, CRLF, long
digit and whitespace runs, random Unicode and invalid UTF-8. Real text comes
from the machine (licences, man pages in several languages, headers); the
rest is generated from a fixed seed. Usage: make_corpus.py OUT [MB]"""
import glob
import gzip
import os
import random
import sys
import unicodedata

rng = random.Random(20261207)


def files_text(pattern, budget, per_file=64 * 1024):
    out, total = [], 0
    for path in sorted(glob.glob(pattern, recursive=True)):
        if total >= budget:
            break
        try:
            if path.endswith(".gz"):
                with gzip.open(path, "rb") as f:
                    data = f.read(per_file)
            elif os.path.isfile(path):
                with open(path, "rb") as f:
                    data = f.read(per_file)
            else:
                continue
        except OSError:
            continue
        data = data.replace(b"\0", b"")
        if data:
            out.append(data)
            total += len(data)
    return out


def rand_chars(ranges, n):
    return "".join(chr(rng.randint(*rng.choice(ranges))) for _ in range(n))


def words(alphabet_ranges, count, lo=1, hi=9, seps=(" ",)):
    parts = []
    for _ in range(count):
        parts.append(rand_chars(alphabet_ranges, rng.randint(lo, hi)))
        parts.append(rng.choice(seps))
    return "".join(parts)


EMOJI = [0x1F600, 0x1F64F], [0x1F300, 0x1F5FF], [0x1F680, 0x1F6FF], [0x2600, 0x26FF]
PEOPLE = ["\U0001F468", "\U0001F469", "\U0001F467", "\U0001F466", "\U0001F9D1"]
TONES = ["", "\U0001F3FB", "\U0001F3FC", "\U0001F3FD", "\U0001F3FE", "\U0001F3FF"]


def emoji_text(n):
    out = []
    for _ in range(n):
        k = rng.randint(0, 5)
        if k == 0:  # ZWJ family
            out.append("\u200d".join(rng.choice(PEOPLE) + rng.choice(TONES)
                                     for _ in range(rng.randint(2, 4))))
        elif k == 1:  # flag: two regional indicators
            out.append(chr(0x1F1E6 + rng.randint(0, 25)) + chr(0x1F1E6 + rng.randint(0, 25)))
        elif k == 2:  # keycap, variation selector
            out.append(rng.choice("0123456789#*") + "\ufe0f\u20e3")
        else:
            out.append(rand_chars(EMOJI, 1) + rng.choice(["", "\ufe0f", " ", "  ", "!", "a"]))
        out.append(rng.choice(["", " ", "\n", " hi ", "。", ", "]))
    return "".join(out)


def ws_digits_text(n):
    pieces = []
    ws = [" ", "\t", "\n", "\r\n", "\r", "\u00a0", "\u3000", "\u2028", "\u0085", "\x0b",
          "\x0c", "\u2003", "\u202f", "\u180e"]
    for _ in range(n):
        k = rng.randint(0, 6)
        if k == 0:
            pieces.append("".join(rng.choice(ws) for _ in range(rng.randint(1, 40))))
        elif k == 1:
            pieces.append("".join(rng.choice("0123456789") for _ in range(rng.randint(1, 300))))
        elif k == 2:
            pieces.append(rng.choice(["don't", "I'LL", "we've", "she'S", "they'Re", "it'd",
                                      "o'clock", "'s", "'ſ", "x'ſ", "DON'T", "l'lL", "a'm"]))
        elif k == 3:
            pieces.append(rand_chars([[0x660, 0x669], [0x966, 0x96F], [0xFF10, 0xFF19],
                                      [0x2160, 0x2188]], rng.randint(1, 9)))
        elif k == 4:
            pieces.append("line one\r\nline two\r\n\r\n  indented\r\n\ttab\r\n")
        elif k == 5:
            pieces.append(rng.choice(["a", "b", " ", "x", "9", "!", "\n"]) * rng.randint(1, 2000))
        else:
            pieces.append(rng.choice(["Hello", "WORLD", "naïve", "Éé", "ÀB", "x̃y", "ǅz"]))
    return "".join(pieces)


def invalid_utf8(n):
    out = bytearray()
    samples = [b"\x80", b"\xbf", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xed\xbf\xbf",
               b"\xf4\x90\x80\x80", b"\xf5", b"\xff", b"\xfe", b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98",
               b"\xf0\x9f", b"\xc3(", b"\xe2(\xa1"]
    for _ in range(n):
        k = rng.randint(0, 3)
        if k == 0:
            out += rng.choice(samples)
        elif k == 1:
            out += bytes(rng.randint(1, 255) for _ in range(rng.randint(1, 30)))
        elif k == 2:
            out += rng.choice(["abc ", "héllo ", "世界", "😀 ", "\r\n", "  ", "123"]).encode()
        else:
            out += rng.choice(samples) + rng.choice(["a", " ", "é", "1"]).encode()
    return bytes(out)


def unicode_soup(n):
    # Random code points of the BMP and the emoji planes (no surrogates),
    # only those assigned by Unicode 14: PCRE2 10.42 (Debian 12) knows no
    # later letters, while tiktoken's Rust regex does (see README.md).
    cps = []
    while len(cps) < n:
        c = chr(rng.choice([rng.randint(0x20, 0xD7FF), rng.randint(0xE000, 0xFFFD),
                            rng.randint(0x10000, 0x1FAFF), rng.randint(0x20000, 0x2A6DF)]))
        if unicodedata.category(c) != "Cn":
            cps.append(c)
    return "".join(cps)


def chunks_of(data, size):
    return [data[i:i + size] for i in range(0, len(data), size)]


def main(out_path, mb):
    scale = mb / 6.0
    chunks = []
    kb = lambda k: int(k * 1024 * scale)  # noqa: E731
    for blob in files_text("/usr/share/common-licenses/*", kb(300)):
        chunks += chunks_of(blob, 16384)
    for blob in files_text("/usr/share/doc/*/copyright", kb(900), 16384):
        chunks.append(blob)
    for blob in files_text("/usr/share/man/man1/*.gz", kb(500), 32768):
        chunks.append(blob)
    for blob in files_text("/usr/include/**/*.h", kb(900), 32768):
        chunks.append(blob)
    for blob in files_text("/usr/lib/python3*/*.py", kb(400), 32768):
        chunks.append(blob)
    for lang in ["ja", "ko", "ru", "de", "fr", "pl", "tr", "sr"]:
        for blob in files_text("/usr/share/man/%s/**/*.gz" % lang, kb(120), 32768):
            chunks.append(blob)
    cjk = [[0x4E00, 0x9FFF], [0x3040, 0x309F], [0x30A0, 0x30FF], [0xAC00, 0xD7A3]]
    cyr = [[0x0410, 0x044F]]
    arabic = [[0x0621, 0x064A], [0x064B, 0x0652]]
    for _ in range(int(40 * scale)):
        chunks.append(words(cjk, 400, 1, 12, (" ", "。", "、", "\n", "", "！")).encode())
        chunks.append(words(cyr, 800, 2, 10, (" ", ", ", ". ", "\n")).encode())
        chunks.append(words(arabic, 800, 2, 8, (" ", "، ", "؟ ", "\n")).encode())
        chunks.append(emoji_text(800).encode())
        chunks.append(ws_digits_text(200).encode())
        chunks.append(unicode_soup(2000).encode())
        chunks.append(invalid_utf8(800))
    # Long runs of one character: tiktoken's merge is quadratic in a piece
    # (200 KB of "a" takes it 100 s), so 20 KB here; bench/ goes to 1 MB.
    chunks.append(b"a" * 20000)
    chunks.append(b"1" * 20000)
    chunks.append(b" " * 20000 + b"x")
    chunks.append("<|endoftext|> <|fim_prefix|><|endofprompt|>".encode())
    chunks = [c.replace(b"\0", b"") for c in chunks if c]
    with open(out_path, "wb") as f:
        f.write(b"\0".join(chunks))
    print("%s: %d chunks, %d bytes" % (out_path, len(chunks), sum(map(len, chunks))))


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 6.0)
