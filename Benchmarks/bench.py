#!/usr/bin/env python3
"""idlegate beside nginx and HAProxy, on this machine, in front of one stand-in upstream.

Everything it needs is made here: a stand-in Odoo (nginx answering a small JSON-RPC result and serving a
1 MiB asset), nginx and HAProxy as plain reverse proxies in front of it, idlegate (and any candidates) with
a fresh state directory each, and wrk as the client. Each round measures every proxy once, in a rotated
order; a proxy's ratio to nginx is taken within each round (the machine's load moves between rounds), and
the report gives medians over the rounds. Every request carries an Odoo 18-shaped session cookie, spread
over --sessions ids; any answer other than 200 is counted (a proxy that answers 303 is not fast, it is
wrong). The last column is the proxy's own CPU time per request, user + system, in microseconds (all its
processes, from /proc): where the time goes when the client, the upstream and the proxies share the cores.

    Benchmarks/bench.py [--rounds 5] [--seconds 5] [--conns 64] [--sessions 1] [--path /web/dataset/call_kw]
                        [--workers 1] [--idlegate BINARY] [--idlegate-args '...'] [--candidate NAME=ARGS] [--redis] [--json]

Needs Debian's nginx, haproxy and wrk (Benchmarks/run installs them).
"""
import argparse
import base64
import hashlib
import json
import os
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UPSTREAM, NGINX, HAPROXY, IDLEGATE, REDIS = 19000, 19100, 19200, 19300, 19500

# What Odoo 18 answers to a small `call_kw` (read of one partner), give or take.
JSON_ANSWER = ('{"jsonrpc": "2.0", "id": 7, "result": [{"id": 3, "name": "Marc Demo", "login": "demo", '
               '"email": "mark.brown23@example.com", "tz": "Europe/Brussels", "lang": "en_US", "active": true, '
               '"company_id": [1, "YourCompany"], "share": false, "write_date": "2026-11-30 08:12:44"}]}')
JSON_REQUEST = '{"jsonrpc":"2.0","method":"call","id":7,"params":{"model":"res.users","method":"read","args":[[3]],"kwargs":{}}}'


def session_id(n):
    """An Odoo 18-shaped session id (84 URL-safe base64 characters), the same for the same n."""
    raw = hashlib.sha512(f"bench-{n}".encode()).digest() + hashlib.sha256(f"bench-{n}".encode()).digest()[:1]
    return base64.urlsafe_b64encode(raw).decode()[:84]


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def nginx_preamble(work, name, workers):
    """The top of an nginx config (both the stand-in Odoo and the nginx measured): up to the open `http {`."""
    return f"""
worker_processes {workers};
daemon off;
pid {work}/{name}.pid;
error_log {work}/{name}.err warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  keepalive_requests 10000000;
"""


def upstream_conf(work):
    os.makedirs(os.path.join(work, "root", "web", "assets"), exist_ok=True)
    with open(os.path.join(work, "root", "web", "assets", "big.js"), "wb") as f:
        f.write(b"/* 1 MiB */\n" + b"x" * (1 << 20))
    answer = JSON_ANSWER.replace("'", "\\'")
    return write(os.path.join(work, "upstream.conf"), nginx_preamble(work, "upstream", 1) + f"""  server {{
    listen 127.0.0.1:{UPSTREAM} backlog=4096;
    root {work}/root;
    location = /web/dataset/call_kw {{ default_type application/json; return 200 '{answer}'; }}
    location /web/assets/ {{ default_type application/javascript; }}
  }}
}}
""")


# What a site puts in front of Odoo without idlegate: forwarding headers, pooled upstream connections,
# streaming, and the cookie flags idlegate adds. The pool and the location, inside `http {`.
NGINX_PROXY_UPSTREAM = f"  upstream odoo {{ server 127.0.0.1:{UPSTREAM}; keepalive 256; }}\n"
NGINX_PROXY_LOCATION = """    location / {
      proxy_pass http://odoo;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_cookie_flags session_id secure samesite=lax;
      proxy_buffering off;
    }
"""


def nginx_conf(work, workers):
    return write(os.path.join(work, "nginx.conf"), nginx_preamble(work, "nginx", workers) + NGINX_PROXY_UPSTREAM + f"""  server {{
    listen 127.0.0.1:{NGINX} backlog=4096;
""" + NGINX_PROXY_LOCATION + """  }
}
""")


def haproxy_conf(work, workers):
    return write(os.path.join(work, "haproxy.cfg"), f"""
global
  nbthread {workers}
  maxconn 8192
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend proxy
  bind 127.0.0.1:{HAPROXY}
  option forwardfor
  default_backend odoo
backend odoo
  server odoo 127.0.0.1:{UPSTREAM}
""")


def wrk_script(work, sessions, method):
    """wrk's Lua: one Odoo 18-shaped cookie per request from `sessions` ids, and a count of non-200s."""
    ids = ",".join(f'"{session_id(i)}"' for i in range(sessions))
    body = JSON_REQUEST if method == "POST" else ""
    return write(os.path.join(work, "wrk.lua"), f"""
local ids = {{{ids}}}
local n = 0
odd = 0  -- a global: setup() reads it from each thread
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function init(args) n = math.random(#ids) end
function request()
  n = n % #ids + 1
  local headers = {{}}
  headers["Cookie"] = "frontend_lang=en_US; session_id=" .. ids[n]
  headers["Host"] = "odoo.example.com"
  if "{method}" == "POST" then headers["Content-Type"] = "application/json" end
  return wrk.format("{method}", wrk.path, headers, {json.dumps(body) if body else "nil"})
end
function response(status, headers, body) if status ~= 200 then odd = odd + 1 end end
function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + t:get("odd") end
  io.write(string.format("BENCH rps=%.1f p50=%.3f p99=%.3f not200=%d errors=%d\\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    total, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout + summary.errors.status))
end
""")


def wait_port(port, proc, what, timeout=20, log=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            tail = open(log).read()[-2000:] if log and os.path.exists(log) else ""
            sys.exit(f"bench: {what} exited at start (status {proc.returncode})\n{tail}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"bench: {what} does not listen on {port}")


class Fleet:
    def __init__(self):
        self.procs = []

    def start(self, name, cmd, port, log):
        p = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(p)
        wait_port(port, p, name, log=log)

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


def idlegate_command(binary, port, workers, state_dir, extra=()):
    """idlegate in front of the stand-in upstream on `port`, its admin API on `port + 80`, with a fresh
    state directory (a reused one holds earlier sessions, rightly expired by now)."""
    return [binary, "serve", "--threads", str(workers), "--listen", f"127.0.0.1:{port}",
            "--upstream", f"http://127.0.0.1:{UPSTREAM}", "--websocket-upstream", f"http://127.0.0.1:{UPSTREAM}",
            "--admin-listen", f"127.0.0.1:{port + 80}", "--state-dir", state_dir, *extra]


def cpu_seconds(session):
    """User and system CPU seconds used so far by every process of one session (a proxy and its workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    user = system = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session:  # fields after the name: state ppid pgrp session ... utime(12) stime(13)
            user += int(fields[11])
            system += int(fields[12])
    return user / tick, system / tick


def measure(port, args, script):
    return measure_url(f"http://127.0.0.1:{port}{args.path}", args, script)


def measure_url(url, args, script):
    out = subprocess.run(["wrk", "-t", str(args.threads), "-c", str(args.conns), "-d", f"{args.seconds}s", "--latency", "-s", script, url],
                         capture_output=True, text=True).stdout
    line = next((l for l in out.splitlines() if l.startswith("BENCH ")), None)
    if line is None:
        sys.exit(f"bench: wrk gave no result for {url}:\n{out}")
    return {k: float(v) for k, v in (kv.split("=") for kv in line.split()[1:])}


def admin_metrics(port):
    """An idlegate's /metrics, as {series: value}."""
    import urllib.request
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1, help="wrk threads")
    ap.add_argument("--workers", type=int, default=1, help="nginx workers, HAProxy threads and idlegate threads")
    ap.add_argument("--path", default="/web/dataset/call_kw")
    ap.add_argument("--sessions", type=int, default=1, help="distinct session ids the requests are spread over")
    ap.add_argument("--idlegate", default=os.path.join(ROOT, ".build", "release", "idlegate"))
    ap.add_argument("--idlegate-args", default="", help="more `serve` flags for idlegate")
    ap.add_argument("--candidate", action="append", default=[], metavar="NAME=ARGS",
                    help="another idlegate in the same rounds, with these extra `serve` flags (ARGS may start with a binary path: BIN::ARGS)")
    ap.add_argument("--redis", action="store_true",
                    help="also idlegate with `store: redis` (a fresh redis-server here), and its Redis round trips per request")
    ap.add_argument("--json", action="store_true", help="also print one JSON line with the medians and ratios")
    args = ap.parse_args()
    for tool in ("nginx", "haproxy", "wrk"):
        if shutil.which(tool) is None:
            sys.exit(f"bench: {tool} is not installed (Benchmarks/run installs nginx-light, haproxy and wrk)")

    work = tempfile.mkdtemp(prefix="idlegate-bench-")
    # nginx's workers run as an unprivileged user: they must be able to reach the 1 MiB file (mkdtemp
    # makes the directory 0700, and every answer on the asset path would be a 403).
    os.chmod(work, 0o755)
    fleet = Fleet()
    method = "POST" if args.path == "/web/dataset/call_kw" else "GET"
    try:
        fleet.start("upstream", ["nginx", "-c", upstream_conf(work)], UPSTREAM, f"{work}/upstream.log")
        targets = [("nginx", NGINX), ("haproxy", HAPROXY)]
        sessions = {"nginx": len(fleet.procs), "haproxy": len(fleet.procs) + 1}
        fleet.start("nginx", ["nginx", "-c", nginx_conf(work, args.workers)], NGINX, f"{work}/nginx.log")
        fleet.start("haproxy", ["haproxy", "-f", haproxy_conf(work, args.workers)], HAPROXY, f"{work}/haproxy.log")
        proxies = [("idlegate", args.idlegate, args.idlegate_args)]
        if args.redis:
            if shutil.which("redis-server") is None:
                sys.exit("bench: --redis needs redis-server (apt-get install redis-server)")
            fleet.start("redis", ["redis-server", "--port", str(REDIS), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                  "--dir", work], REDIS, f"{work}/redis.log")
            conf = write(f"{work}/redis.yaml", f"store: redis\nredis:\n  url: redis://127.0.0.1:{REDIS}\n")
            proxies.append(("idlegate-redis", args.idlegate, f"--config {conf} {args.idlegate_args}"))
        for c in args.candidate:
            name, _, rest = c.partition("=")
            binary, _, extra = rest.partition("::") if "::" in rest else (args.idlegate, "", rest)
            proxies.append((name, binary, extra))
        for i, (name, binary, extra) in enumerate(proxies):
            port = IDLEGATE + i
            cmd = idlegate_command(binary, port, args.workers, f"{work}/state-{name}", shlex.split(extra))
            sessions[name] = len(fleet.procs)
            fleet.start(name, cmd, port, f"{work}/{name}.log")
            targets.append((name, port))
        sessions = {name: fleet.procs[i].pid for name, i in sessions.items()}
        script = wrk_script(work, args.sessions, method)
        for _, port in targets:  # warm every proxy, its pools and its table
            measure(port, argparse.Namespace(**{**vars(args), "seconds": 1}), script)
        results = {name: [] for name, _ in targets}
        for r in range(args.rounds):
            order = targets[r % len(targets):] + targets[:r % len(targets)]
            for name, port in order:
                before = cpu_seconds(sessions[name])
                row = measure(port, args, script)
                after = cpu_seconds(sessions[name])
                done = row["rps"] * args.seconds
                row["user_us"], row["sys_us"] = ((a - b) * 1e6 / done for a, b in zip(after, before))
                results[name].append(row)
        print(f"path={args.path} conns={args.conns} sessions={args.sessions} workers={args.workers} rounds={args.rounds}x{args.seconds}s")
        print(f"{'proxy':<14}{'rps (med)':>11}{'p50 ms':>9}{'p99 ms':>9}{'vs nginx':>10}{'vs haproxy':>12}{'vs idlegate':>13}{'not200':>8}{'errors':>8}{'cpu us/req':>12}")
        summary = {}
        for name, _ in targets:
            rows = results[name]
            vs_nginx = statistics.median(row["rps"] / results["nginx"][i]["rps"] for i, row in enumerate(rows))
            vs_haproxy = statistics.median(row["rps"] / results["haproxy"][i]["rps"] for i, row in enumerate(rows))
            vs_idlegate = statistics.median(row["rps"] / results["idlegate"][i]["rps"] for i, row in enumerate(rows))
            s = {"rps": statistics.median(x["rps"] for x in rows), "p50_ms": statistics.median(x["p50"] for x in rows),
                 "p99_ms": statistics.median(x["p99"] for x in rows), "vs_nginx": vs_nginx, "vs_haproxy": vs_haproxy, "vs_idlegate": vs_idlegate,
                 "not200": int(sum(x["not200"] for x in rows)), "errors": int(sum(x["errors"] for x in rows)),
                 "user_us": statistics.median(x["user_us"] for x in rows), "sys_us": statistics.median(x["sys_us"] for x in rows)}
            summary[name] = s
            print(f"{name:<14}{s['rps']:>11.0f}{s['p50_ms']:>9.3f}{s['p99_ms']:>9.3f}{vs_nginx:>10.3f}{vs_haproxy:>12.3f}{vs_idlegate:>13.3f}{s['not200']:>8}{s['errors']:>8}{s['user_us']:>6.1f}+{s['sys_us']:<5.1f}")
        if args.redis:
            # Counted by idlegate itself: what the shared store cost over the whole run (warm-up included).
            port = IDLEGATE + [name for name, _, _ in proxies].index("idlegate-redis")
            m = admin_metrics(port + 80)
            requests = sum(v for k, v in m.items() if k.startswith("idlegate_requests_total"))
            trips, commands = m.get("idlegate_redis_round_trips_total", 0), m.get("idlegate_redis_commands_total", 0)
            print(f"idlegate-redis: {requests:.0f} requests, {trips:.0f} Redis round trips ({trips / max(1, requests):.4f} per request), "
                  f"{commands:.0f} commands ({commands / max(1, requests):.4f} per request), {m.get('idlegate_redis_errors_total', 0):.0f} errors")
            summary["idlegate-redis"].update(redis_round_trips_per_request=trips / max(1, requests), redis_commands_per_request=commands / max(1, requests))
        if args.json:
            print(json.dumps(summary))
    finally:
        fleet.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
