#!/usr/bin/env python3
"""TLS: idlegate terminating HTTPS beside nginx terminating it, with the same certificate, one worker
each, in front of the same stand-in upstream.

Rows, for an ECDSA P-256 and an RSA 2048 certificate (TLS 1.3, the version clients pick):
  full handshakes/s     `openssl s_time -new`: every connection a full handshake and one small request
  resumed handshakes/s  `openssl s_time -reuse`: the same, resuming the first connection's session
  keep-alive requests/s wrk over https, 64 connections, the small JSON-RPC call (as Benchmarks/bench.py)
Each round measures both proxies in a rotated order; ratios are taken within a round and the report
gives medians. Two s_time clients run at once (one is the bottleneck on its own). The last columns are
each proxy's own CPU time (user + system) per handshake or request, over all rounds.

    Benchmarks/tls.py [--rounds 3] [--seconds 5] [--idlegate BINARY] [--json]

Needs nginx, wrk and openssl (Benchmarks/run installs them).
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the stand-in upstream, nginx's preamble, wrk and its script)

IDLEGATE, NGINX = 19500, 19501


def certificate(work, kind):
    """A self-signed certificate for localhost: (cert, key). The clients here do not verify."""
    cert, key = f"{work}/{kind}.pem", f"{work}/{kind}.key"
    algo = ["-newkey", "rsa:2048"] if kind == "rsa" else ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    subprocess.run(["openssl", "req", "-x509", *algo, "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost", "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


def nginx_tls_conf(work, cert, key):
    # TLS as idlegate does it: 1.2 and 1.3, the same cipher list, a session cache and no tickets.
    return bench.write(os.path.join(work, "nginx-tls.conf"), bench.nginx_preamble(work, "nginx-tls", 1) + bench.NGINX_PROXY_UPSTREAM + f"""  server {{
    listen 127.0.0.1:{NGINX} ssl backlog=4096;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305;
    ssl_session_cache shared:SSL:10m;
    ssl_session_tickets off;
""" + bench.NGINX_PROXY_LOCATION + """  }
}
""")


def handshakes(port, seconds, reuse):
    """Connections per second from two `openssl s_time` clients at once."""
    cmd = ["openssl", "s_time", "-connect", f"127.0.0.1:{port}", "-reuse" if reuse else "-new", "-time", str(seconds),
           "-www", "/web/webclient/version_info"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    total = 0.0
    for p in procs:
        out, _ = p.communicate()
        m = re.search(r"(\d+) connections in (\d+) real seconds", out)
        if not m:
            sys.exit(f"tls: s_time gave no result for port {port}:\n{out}")
        total += int(m.group(1)) / max(1, int(m.group(2)))
        if reuse and not re.search(r"\d+ connections in \d+ real seconds", out.split("reuse session-id")[-1]):
            sys.exit(f"tls: s_time did not reuse a session on port {port}:\n{out}")
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--idlegate", default=os.path.join(bench.ROOT, ".build", "release", "idlegate"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    for tool in ("nginx", "wrk", "openssl"):
        if shutil.which(tool) is None:
            sys.exit(f"tls: {tool} is not installed (Benchmarks/run installs nginx-light and wrk)")
    work = tempfile.mkdtemp(prefix="idlegate-tls-bench-")
    os.chmod(work, 0o755)
    summary = {}
    try:
        upstream = bench.Fleet()
        upstream.start("upstream", ["nginx", "-c", bench.upstream_conf(work)], bench.UPSTREAM, f"{work}/upstream.log")
        script = bench.wrk_script(work, 10000, "POST")
        wrk = argparse.Namespace(threads=1, conns=64, seconds=args.seconds, path="/web/dataset/call_kw")
        print(f"TLS 1.3, one worker each, {args.rounds} rounds of {args.seconds}s; ratio = idlegate / nginx, median of the rounds")
        print(f"{'certificate':<12}{'measure':<24}{'idlegate':>11}{'nginx':>11}{'ratio':>8}{'cpu us/op: idlegate':>20}{'nginx':>7}")
        for kind in ("ecdsa", "rsa"):
            cert, key = certificate(work, kind)
            fleet = bench.Fleet()
            try:
                fleet.start("nginx", ["nginx", "-c", nginx_tls_conf(work, cert, key)], NGINX, f"{work}/nginx-{kind}.log")
                fleet.start("idlegate", bench.idlegate_command(args.idlegate, IDLEGATE, 1, f"{work}/state-{kind}", ["--tls-cert", cert, "--tls-key", key]),
                            IDLEGATE, f"{work}/idlegate-{kind}.log")
                targets = [("idlegate", IDLEGATE), ("nginx", NGINX)]
                sessions = {"nginx": fleet.procs[0].pid, "idlegate": fleet.procs[1].pid}
                rows = {"full handshakes/s": lambda p: handshakes(p, args.seconds, False),
                        "resumed handshakes/s": lambda p: handshakes(p, args.seconds, True),
                        "keep-alive requests/s": lambda p: bench.measure_url(f"https://127.0.0.1:{p}{wrk.path}", wrk, script)["rps"]}
                for measure, run in rows.items():
                    results = {name: [] for name, _ in targets}
                    cpu = {name: 0.0 for name, _ in targets}
                    for r in range(args.rounds):
                        for name, port in (targets if r % 2 == 0 else targets[::-1]):
                            before = sum(bench.cpu_seconds(sessions[name]))
                            results[name].append(run(port))
                            cpu[name] += sum(bench.cpu_seconds(sessions[name])) - before
                    # CPU time per operation (user + system, microseconds), over all rounds.
                    per_op = {name: 1e6 * cpu[name] / (sum(results[name]) * args.seconds) for name in cpu}
                    ratio = statistics.median(i / n for i, n in zip(results["idlegate"], results["nginx"]))
                    med = {name: statistics.median(v) for name, v in results.items()}
                    print(f"{kind:<12}{measure:<24}{med['idlegate']:>11.0f}{med['nginx']:>11.0f}{ratio:>8.3f}"
                          f"{per_op['idlegate']:>10.1f}{per_op['nginx']:>8.1f}", flush=True)
                    summary[f"{kind} {measure}"] = {"idlegate": med["idlegate"], "nginx": med["nginx"], "ratio": ratio,
                                                    "idlegate_cpu_us": per_op["idlegate"], "nginx_cpu_us": per_op["nginx"]}
            finally:
                fleet.stop()
        upstream.stop()
        if args.json:
            print(json.dumps(summary))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
