#!/usr/bin/python3
"""dit-text's tokenizer against independent implementations, on the prompt
corpus tests/data/prompts.txt (one prompt per line):

  - cleaning: CPython's html.unescape applied twice, re.sub(r"\\s+", " ")
    and strip() (Wan's basic_clean + whitespace_clean without ftfy) must
    equal `dit-text clean`;
  - ids: `spm_encode --output_format=id` on the Python-cleaned lines, cut to
    511 pieces, then EOS (1) — HF truncation with add_special_tokens — must
    equal `dit-text tokenize --file`.

usage: test_tokenizer_spm.py DIT_TEXT CORPUS SPM_MODEL
Exit 77 (skip) without spm_encode or when dit-text was built without
libsentencepiece.
"""

import html
import re
import shutil
import subprocess
import sys


def wan_clean(text):
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip()


def main(argv):
    dit_text, corpus, model = argv[1:4]
    spm = shutil.which("spm_encode")
    if not spm:
        print("SKIP: spm_encode not found (Debian package sentencepiece)")
        return 77
    probe = subprocess.run([dit_text, "tokenize", "x"], capture_output=True)
    if probe.returncode != 0:
        print("SKIP: dit-text cannot tokenize:", probe.stderr.decode().strip())
        return 77
    with open(corpus, "rb") as f:
        lines = [l.decode("utf-8") for l in f.read().split(b"\n")]
    if lines and lines[-1] == "":
        lines.pop()

    failures = 0
    cleaned = []
    for i, line in enumerate(lines):
        want = wan_clean(line)
        cleaned.append(want)
        got = subprocess.run([dit_text, "clean", "--", line], capture_output=True,
                             check=True).stdout.decode("utf-8")
        if got.endswith("\n"):
            got = got[:-1]
        if got != want:
            print(f"line {i + 1}: clean mismatch\n  got  {got!r}\n  want {want!r}")
            failures += 1

    ref = subprocess.run([spm, "--model", model, "--output_format=id"],
                         input=("\n".join(cleaned) + "\n").encode("utf-8"),
                         capture_output=True, check=True).stdout.decode().split("\n")
    got = subprocess.run([dit_text, "tokenize", "--tokenizer", model, "--file", corpus],
                         capture_output=True, check=True).stdout.decode().split("\n")
    truncated = 0
    for i in range(len(lines)):
        pieces = [int(t) for t in ref[i].split()]
        if len(pieces) > 511:
            truncated += 1
        want = pieces[:511] + [1]
        have = [int(t) for t in got[i].split()]
        if have != want:
            print(f"line {i + 1}: ids differ (got {len(have)}, want {len(want)})\n"
                  f"  got  {have[:20]}...\n  want {want[:20]}...")
            failures += 1
    if truncated == 0:
        print("corpus has no prompt longer than 511 pieces; truncation untested")
        failures += 1
    print(f"{len(lines)} prompts, {truncated} truncated, {failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
