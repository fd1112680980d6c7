#!/usr/bin/env python3
"""`idlegate audit report` speed: lines per second over a generated month-like log (plain and gzip).

Usage: audit_report.py --idlegate BINARY [--lines 1000000]
"""
import argparse
import gzip
import os
import random
import subprocess
import tempfile
import time


def generate(path, lines):
    rnd = random.Random(7)
    policies = ["default", "warehouse-terminals", "shop-tills"]
    logins = [f"user{i}@example.com" for i in range(300)]
    sessions = [f"{rnd.getrandbits(128):032x}" for _ in range(20000)]
    kinds = ["activity_resumed"] * 70 + ["session_started"] * 10 + ["login"] * 5 + ["would_expire"] * 5 + ["logout"] * 5 + ["request_refused"] * 5
    with open(path, "w") as f:
        t = 1_761_955_200_000
        for i in range(lines):
            t += rnd.randint(1, 3000)
            kind = rnd.choice(kinds)
            secs, ms = divmod(t, 1000)
            ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{ms:03d}Z"
            if kind == "request_refused":
                f.write(f'{{"ts":"{ts}","event":"request_refused","client":"10.0.0.{i % 250}","status":400,"reason":"bare LF line ending"}}\n')
                continue
            key = rnd.choice(sessions)
            line = f'{{"ts":"{ts}","event":"{kind}","key":"{key}","login":"{rnd.choice(logins)}","client":"10.2.0.{i % 250}","policy":"{rnd.choice(policies)}"'
            if kind in ("activity_resumed", "would_expire"):
                line += f',"method":"POST","path":"/web/dataset/call_kw/res.partner/read","idle_s":{rnd.randint(60, 7200)},"window_s":900'
            f.write(line + "}\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--idlegate", required=True)
    ap.add_argument("--lines", type=int, default=1_000_000)
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="idlegate-report-")
    plain = os.path.join(d, "audit.jsonl")
    generate(plain, a.lines)
    with open(plain, "rb") as src, gzip.open(plain + ".gz", "wb", compresslevel=6) as dst:
        dst.write(src.read())
    size = os.path.getsize(plain)
    for name, path in [("plain", plain), ("gzip", plain + ".gz")]:
        best = None
        for _ in range(3):
            start = time.perf_counter()
            subprocess.run([a.idlegate, "audit", "report", "--json", path], check=True, stdout=subprocess.DEVNULL)
            elapsed = time.perf_counter() - start
            best = elapsed if best is None else min(best, elapsed)
        print(f"{name}: {a.lines} lines ({size / 1e6:.0f} MB plain) in {best:.2f} s = {a.lines / best / 1e6:.2f} M lines/s (best of 3)")
    subprocess.run(["rm", "-rf", d])


if __name__ == "__main__":
    main()
