#!/usr/bin/env python3
"""`idlegate reap` scan rate over a million Odoo 18 session files (16+ layout), beside
`find DIR -type f -mmin +N | wc -l` on the same tree, in one run.

Usage: reap_scan.py --idlegate BINARY [--files 1000000] [--dir /dev/shm]   (tmpfs by default)
"""
import argparse
import base64
import json
import os
import shutil
import subprocess
import tempfile
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--idlegate", required=True)
    ap.add_argument("--files", type=int, default=1_000_000)
    ap.add_argument("--dir", default="/dev/shm")
    a = ap.parse_args()
    base = tempfile.mkdtemp(prefix="odoo-bench-", dir=a.dir)
    root = os.path.join(base, "sessions")
    os.makedirs(root)
    content = json.dumps({"uid": 2, "login": "admin", "db": "odoo", "context": {"lang": "en_US"}, "session_token": "x", "debug": "",
                          "_trace": [{"last_activity": time.time()}]}).encode()
    made = set()
    start = time.time()
    for n in range(a.files):
        sid = base64.urlsafe_b64encode(os.urandom(63)).decode()
        d = os.path.join(root, sid[:2])
        if sid[:2] not in made:
            os.mkdir(d)
            made.add(sid[:2])
        fd = os.open(os.path.join(d, sid), os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, content)
        os.close(fd)
    print(f"made {a.files} files in {len(made)} folders under {a.dir} in {time.time() - start:.0f} s")
    state = os.path.join(base, "state")
    try:
        for round_ in range(3):
            subprocess.run(["sync"])
            t = time.perf_counter()
            out = subprocess.run(f"find {root} -type f -mmin +60 | wc -l", shell=True, capture_output=True, text=True, check=True).stdout
            find_s = time.perf_counter() - t
            t = time.perf_counter()
            r = subprocess.run([a.idlegate, "reap", "--sessions", root, "--state-dir", state, "--json"], capture_output=True, text=True, check=True)
            reap_s = time.perf_counter() - t
            s = json.loads(r.stdout)
            assert s["scanned"] == a.files and s["kept"] == a.files, s
            print(f"round {round_ + 1}: find {find_s:.2f} s ({a.files / find_s / 1000:.0f}k files/s, {out.strip()} old); "
                  f"idlegate reap {reap_s:.2f} s ({a.files / reap_s / 1000:.0f}k files/s); reap/find rate ratio {find_s / reap_s:.2f}")
        print(f"reaper RSS is bounded: the tree is streamed (see `/usr/bin/time -v` below)")
        r = subprocess.run(["/usr/bin/time", "-f", "%M KiB max RSS", a.idlegate, "reap", "--sessions", root, "--state-dir", state, "--json"],
                           capture_output=True, text=True)
        print("idlegate reap:", r.stderr.strip().splitlines()[-1])
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
