#!/usr/bin/env python3
"""Memory held by idle keep-alive client connections: idlegate beside nginx (one worker each).

Opens N connections to each proxy, sends one request on each and reads its answer, leaves them all
open and idle, and reports the RSS growth per connection. Both proxies stand in front of bench.py's
stand-in upstream.
Usage: idle_connections.py --idlegate BINARY [--connections N]
"""
import argparse
import os
import resource
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402  (the stand-in upstream and the nginx config)



def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def open_idle(port, n):
    """n keep-alive connections, each having completed one request; returns the sockets."""
    sel = selectors.DefaultSelector()
    socks = []
    req = b"GET /web/dataset/call_kw HTTP/1.1\r\nHost: bench\r\nCookie: session_id=" + b"A" * 84 + b"\r\n\r\n"
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(req)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, bytearray())
        socks.append(s)
    pending = n
    deadline = time.time() + 60
    while pending and time.time() < deadline:
        for key, _ in sel.select(1):
            buf = key.data
            buf += key.fileobj.recv(65536)
            if b"\r\n\r\n" in buf and buf.endswith(b"}"):
                sel.unregister(key.fileobj)
                pending -= 1
    if pending:
        sys.exit(f"{pending} connections got no answer")
    return socks


def measure(name, cmd, port, pid_of, n):
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        bench.wait_port(port, proc, name)
        pid = pid_of(proc)
        warm = open_idle(port, 100)  # let allocators and pools reach their steady state
        for s in warm:
            s.close()
        time.sleep(0.5)
        before = rss_kib(pid)
        socks = open_idle(port, n)
        time.sleep(1)
        after = rss_kib(pid)
        per = (after - before) * 1024 / n
        print(f"{name:9} {n} idle connections: RSS {before} KiB -> {after} KiB, {per:.0f} bytes ({per / 1024:.2f} KiB) each")
        for s in socks:
            s.close()
        return per
    finally:
        proc.terminate()
        proc.wait(10)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--idlegate", required=True, help="path to the idlegate binary")
    ap.add_argument("--connections", type=int, default=10000)
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < a.connections + 100:
        sys.exit(f"open file limit {hard} is below {a.connections + 100}")
    work = tempfile.mkdtemp(prefix="idlegate-idle-")
    upstream = subprocess.Popen(["nginx", "-c", bench.upstream_conf(work)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        bench.wait_port(bench.UPSTREAM, upstream, "upstream")
        ncfg = open(bench.nginx_conf(work, 1)).read()
        ncfg = ncfg.replace("worker_connections 8192", f"worker_connections {a.connections + 200}")
        ncfg = ncfg.replace("daemon off;", f"daemon off;\nworker_rlimit_nofile {hard};")
        with open(os.path.join(work, "idle-nginx.conf"), "w") as f:
            f.write(ncfg)

        def nginx_worker(proc):
            time.sleep(0.3)
            out = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
            return int(out[0])

        n = measure("nginx", ["nginx", "-c", os.path.join(work, "idle-nginx.conf")], bench.NGINX, nginx_worker, a.connections)
        i = measure("idlegate", [a.idlegate, "serve", "--threads", "1", "--listen", "127.0.0.1:9310",
                                 "--upstream", f"http://127.0.0.1:{bench.UPSTREAM}", "--admin-listen", "127.0.0.1:9311",
                                 "--state-dir", tempfile.mkdtemp(prefix="idlegate-bench-")], 9310, lambda p: p.pid, a.connections)
        print(f"idlegate/nginx bytes per idle connection: {i / max(n, 1):.2f}")
    finally:
        upstream.terminate()
        upstream.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
