"""Running it for real: config check and environment, reload under traffic, snapshots across restarts,
the admin API and its metrics."""
import glob
import hashlib
import hmac
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import BINARY, ROOT, Client, header
from fake_odoo import FakeOdoo
from test_sessions import call_kw, expired, login, page

GOLDEN = os.path.join(ROOT, "Tests", "golden")


def check(*args, env=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("IDLEGATE_")}
    e.update(env or {})
    return subprocess.run([BINARY, "check", *args], capture_output=True, text=True, env=e, timeout=30)


def session_key(ig, sid):
    """The key idlegate names a session by: HMAC-SHA256 under the state directory's secret, 128 bits."""
    with open(os.path.join(ig.state_dir, "idlegate.key")) as f:
        secret = bytes.fromhex(f.read().strip())
    part = sid[:42] if len(sid) > 42 else sid
    return hmac.new(secret, part.encode(), hashlib.sha256).digest()[:16].hex()


# --- check and the environment -------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(os.path.basename(p)[:-5] for p in glob.glob(os.path.join(GOLDEN, "bad", "*.yaml"))))
def test_check_refuses_bad_files_naming_the_key(name):
    r = check("--config", os.path.join(GOLDEN, "bad", name + ".yaml"))
    with open(os.path.join(GOLDEN, "bad", name + ".expected")) as f:
        expected = f.read().strip()
    assert r.returncode != 0
    assert expected in r.stderr, r.stderr
    assert "configuration ok" not in r.stdout


@pytest.mark.parametrize("name", sorted(os.path.basename(p)[:-5] for p in glob.glob(os.path.join(GOLDEN, "good", "*.yaml"))))
def test_check_prints_an_effective_config_that_reads_back_the_same(name, tmp_path):
    r = check("--config", os.path.join(GOLDEN, "good", name + ".yaml"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.rstrip().endswith("# configuration ok")
    again = tmp_path / "effective.yaml"
    again.write_text(r.stdout)
    r2 = check("--config", str(again))
    assert r2.returncode == 0, r2.stderr
    assert r2.stdout == r.stdout


def test_check_shows_the_policies_and_units():
    out = check("--config", os.path.join(GOLDEN, "good", "policies.yaml")).stdout
    assert 'name: "warehouse-terminals"' in out
    assert 'cidr: ["10.2.0.0/16", "fd00:2::/32"]' in out
    assert "idle_timeout: 90s" in out and "max_lifetime: 8h" in out and "body: 256MiB" in out
    assert 'mode: "audit"' in out


def test_environment_overrides_the_file_and_flags_override_the_environment():
    good = os.path.join(GOLDEN, "good", "policies.yaml")
    out = check("--config", good, env={"IDLEGATE_IDLE_TIMEOUT": "10m", "IDLEGATE_TIMEOUTS__CLIENT_IDLE": "45s",
                                       "IDLEGATE_LISTEN": '["0.0.0.0:8081"]', "IDLEGATE_ADMIN_TOKEN": "t0ken"}).stdout
    assert "\nidle_timeout: 10m\n" in out
    assert "client_idle: 45s" in out
    assert 'listen: ["0.0.0.0:8081"]' in out
    assert 'admin_token: "(set)"' in out and "t0ken" not in out  # secrets are never printed
    out = check("--config", good, "--idle-timeout", "5m", env={"IDLEGATE_IDLE_TIMEOUT": "10m"}).stdout
    assert "\nidle_timeout: 5m\n" in out
    r = check(env={"IDLEGATE_TIMEOUTS__CLIENT_IDLE": "soon"})
    assert r.returncode != 0 and 'timeouts.client_idle: "soon" is not a duration' in r.stderr and "IDLEGATE_TIMEOUTS__CLIENT_IDLE" in r.stderr
    r = check(env={"IDLEGATE_IDLE_TIMOUT": "5m"})
    assert r.returncode != 0 and "idle_timout: unknown key" in r.stderr and "IDLEGATE_IDLE_TIMOUT" in r.stderr


def test_serve_takes_its_config_from_the_environment(odoo, start_idlegate):
    ig = start_idlegate(odoo.url, env={"IDLEGATE_IDLE_TIMEOUT": "1s"})
    sid, _ = login(ig)
    time.sleep(1.6)
    assert expired(call_kw(ig, f"session_id={sid}")[2])


# --- reload ----------------------------------------------------------------------------------------

def test_sighup_reload_under_traffic_drops_nothing(odoo, start_idlegate):
    ig = start_idlegate(odoo.url, config="idle_timeout: 15m\n")
    sid, _ = login(ig)
    failures, done, count = [], threading.Event(), [0]

    def hammer():
        # Keep-alive connections, requests back to back, a new connection now and then.
        while not done.is_set():
            try:
                c = Client(ig.connect())
                for _ in range(20):
                    c.send(b"GET /web/static/lib/x.js HTTP/1.1\r\nHost: odoo.test\r\n\r\n")
                    status, _, _ = c.response()
                    if status != 200:
                        failures.append(status)
                    count[0] += 1
            except Exception as e:  # a dropped connection is a failure
                failures.append(repr(e))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for i in range(6):
            time.sleep(0.3)
            # Alternate between two valid files and one invalid one.
            if i % 3 == 2:
                ig.write_config('policies:\n  - name: broken\n    match:\n      cidr: ["10.0.0.0/33"]\n')
            else:
                ig.write_config(f"idle_timeout: {15 + i}m\npolicies:\n  - name: kiosk\n    match:\n      path: [/odoo/kiosk]\n    idle_timeout: 2s\n")
            ig.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
    finally:
        done.set()
        for t in threads:
            t.join()
    assert failures == []
    assert count[0] > 100
    logs = ig.logs()
    assert logs.count("configuration reloaded") == 4
    assert logs.count("reload refused") == 2
    assert 'policies[0].match.cidr[0]: "10.0.0.0/33" is not a CIDR' in logs
    assert ig.proc.poll() is None
    # The session from before every reload is still there, and the last valid file is in force:
    # the kiosk path now holds it to 2 s.
    assert call_kw(ig, f"session_id={sid}")[2]["result"]["uid"] == 2
    status, headers, _ = page(ig, f"session_id={sid}", target="/odoo/kiosk")
    assert status == 200
    time.sleep(2.5)
    status, headers, _ = page(ig, f"session_id={sid}", target="/odoo/kiosk")
    assert status == 303 and header(headers, "location") == ["/web/login?redirect=/odoo/kiosk"]


def test_reload_keeps_restart_only_keys_and_says_so(odoo, start_idlegate):
    ig = start_idlegate(odoo.url)
    ig.write_config("upstream_pool_size: 7\nidle_timeout: 7m\n")
    status, _, body = ig.admin("POST", "/reload")
    assert status == 200
    message = json.loads(body)["message"]
    assert "idle 7m" in message and "unchanged until restart: upstream_pool_size" in message


# --- snapshots across restarts -----------------------------------------------------------------------

def test_restart_while_the_window_passes_keeps_the_session_expired(prefork_odoo, start_idlegate):
    ig = start_idlegate(prefork_odoo.url, config="idle_timeout: 2s\n")
    sid, _ = login(ig)
    assert call_kw(ig, f"session_id={sid}")[2]["result"]["uid"] == 2
    ig.terminate()
    assert os.path.exists(os.path.join(ig.state_dir, "sessions.snapshot"))
    time.sleep(2.5)  # the window passes while idlegate is down
    ig2 = start_idlegate(prefork_odoo.url, config="idle_timeout: 2s\n", state_dir=ig.state_dir, port=ig.port)
    assert "restored 1 of 1 session records" in ig2.logs()
    status, _, result = call_kw(ig2, f"session_id={sid}")
    assert status == 200 and expired(result)
    time.sleep(0.5)
    assert sid not in prefork_odoo.sessions  # and destroyed in Odoo


def test_restart_within_the_window_does_not_reset_the_clock(prefork_odoo, start_idlegate):
    ig = start_idlegate(prefork_odoo.url, config="idle_timeout: 4s\n")
    sid, _ = login(ig)
    t0 = time.time()
    assert call_kw(ig, f"session_id={sid}")[2]["result"]["uid"] == 2
    time.sleep(1.5)
    ig.terminate()
    ig2 = start_idlegate(prefork_odoo.url, config="idle_timeout: 4s\n", state_dir=ig.state_dir, port=ig.port)
    # 4.6 s after the last activity, but only ~3 s after the restart: a reset clock would let it pass.
    time.sleep(max(0, t0 + 4.6 - time.time()))
    assert expired(call_kw(ig2, f"session_id={sid}")[2])


def test_restart_keeps_a_live_session_live(prefork_odoo, start_idlegate):
    ig = start_idlegate(prefork_odoo.url, config="unknown_sessions: reject\n")
    sid, _ = login(ig)
    ig.terminate()
    ig2 = start_idlegate(prefork_odoo.url, config="unknown_sessions: reject\n", state_dir=ig.state_dir, port=ig.port)
    # With unknown ids refused, only a restored record lets it through.
    assert call_kw(ig2, f"session_id={sid}")[2]["result"]["uid"] == 2


def test_periodic_snapshot_survives_sigkill(prefork_odoo, start_idlegate):
    ig = start_idlegate(prefork_odoo.url, config="unknown_sessions: reject\nsnapshot_interval: 1s\n")
    sid, _ = login(ig)
    time.sleep(2.5)
    ig.proc.kill()
    ig.proc.wait()
    ig2 = start_idlegate(prefork_odoo.url, config="unknown_sessions: reject\n", state_dir=ig.state_dir, port=ig.port)
    assert call_kw(ig2, f"session_id={sid}")[2]["result"]["uid"] == 2


@pytest.mark.parametrize("damage", ["garbage", "truncated", "flipped", "foreign"])
def test_a_bad_snapshot_is_refused_loudly_and_set_aside(prefork_odoo, start_idlegate, damage):
    ig = start_idlegate(prefork_odoo.url)
    login(ig)
    ig.terminate()
    path = os.path.join(ig.state_dir, "sessions.snapshot")
    data = open(path, "rb").read()
    if damage == "garbage":
        data = b"\x00\xffnot a snapshot" * 10
    elif damage == "truncated":
        data = data[:-20]
    elif damage == "flipped":
        data = data[:70] + bytes([data[70] ^ 1]) + data[71:]
    if damage == "foreign":
        os.unlink(os.path.join(ig.state_dir, "idlegate.key"))  # a new secret: the keys name other sessions
    else:
        open(path, "wb").write(data)
    ig2 = start_idlegate(prefork_odoo.url, state_dir=ig.state_dir, port=ig.port)
    logs = ig2.logs()
    reason = {"garbage": "not an idlegate session snapshot", "truncated": "truncated", "flipped": "checksum mismatch",
              "foreign": "another session secret"}[damage]
    assert "session snapshot" in logs and "refused" in logs and reason in logs and "EMPTY session table" in logs, logs
    assert os.path.exists(path + ".rejected")
    assert page(ig2, None, target="/web/login")[0] == 200  # and it serves


# --- the admin API ---------------------------------------------------------------------------------

LINE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*\})? [-+0-9.eE]+(Inf|NaN)?$')


def metrics(ig, token=None):
    status, headers, body = ig.admin("GET", "/metrics", token)
    assert status == 200 and headers["content-type"].startswith("text/plain")
    values = {}
    for line in body.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        assert LINE.match(line), line
        name, value = line.rsplit(" ", 1)
        values[name] = float(value)
    return values


def test_health_readiness_and_no_proxying(odoo, start_idlegate):
    ig = start_idlegate(odoo.url)
    assert ig.admin("GET", "/healthz")[0] == 200
    status, _, body = ig.admin("GET", "/readyz")
    assert status == 200 and json.loads(body)["ready"] is True
    assert ig.admin("GET", "/web/login")[0] == 404
    assert ig.admin("GET", "/odoo")[0] == 404
    assert ig.admin("PUT", "/reload")[0] == 405
    odoo.stop()
    status, _, body = ig.admin("GET", "/readyz")
    assert status == 503 and json.loads(body)["ready"] is False
    assert json.loads(body)["detail"] == f"not reachable: {odoo.url}"


def test_health_answers_under_a_hundred_slow_clients(odoo, start_idlegate):
    """Regression: eight clients trickling a head a byte a second took every admin slot, and /healthz
    answered 503 for as long as they trickled (a liveness probe would restart a healthy proxy)."""
    ig = start_idlegate(odoo.url)
    slow = []
    for _ in range(100):
        s = socket.create_connection(("127.0.0.1", ig.admin_port), 5)
        s.sendall(b"GET /heal")
        slow.append(s)
    try:
        for second in range(3):
            for s in slow:
                s.sendall(b"t")
            for path in ("/healthz", "/readyz"):
                started = time.monotonic()
                status, _, _ = ig.admin("GET", path, timeout=2)
                assert status == 200, (path, status)
                assert time.monotonic() - started < 1.0, path
            time.sleep(1)
        # The head has 5 s in all: the tricklers get a 408 and are closed.
        time.sleep(3)
        s = slow[0]
        s.settimeout(3)
        got = s.recv(4096)
        assert got.startswith(b"HTTP/1.1 408 "), got[:40]
    finally:
        for s in slow:
            s.close()


def test_readiness_needs_the_websocket_port_too(odoo, start_idlegate):
    gevent = FakeOdoo("threaded", server="gevent")  # Odoo's gevent port, down below
    ig = start_idlegate(odoo.url, websocket_upstream=gevent.url)
    assert ig.admin("GET", "/readyz")[0] == 200
    gevent.stop()
    status, _, body = ig.admin("GET", "/readyz")
    assert status == 503 and json.loads(body)["detail"] == f"not reachable: {gevent.url}"


def test_metrics_count_requests_expiries_and_sessions(prefork_odoo, start_idlegate):
    ig = start_idlegate(prefork_odoo.url, config="idle_timeout: 1s\n")
    before = metrics(ig)
    sid, _ = login(ig)
    for _ in range(5):
        assert call_kw(ig, f"session_id={sid}")[0] == 200
    time.sleep(1.5)
    assert expired(call_kw(ig, f"session_id={sid}")[2])
    time.sleep(0.6)  # workers add their counts on their tick
    m = metrics(ig)
    assert m.get('idlegate_requests_total{route="activity",status="2xx"}', 0) - before.get('idlegate_requests_total{route="activity",status="2xx"}', 0) >= 6
    assert m.get('idlegate_requests_total{route="login",status="3xx"}', 0) >= 1
    assert m['idlegate_session_expiries_total{policy="default"}'] == 1
    assert m["idlegate_sessions_tracked"] >= 1
    assert m["idlegate_upstream_response_seconds_count"] >= 6
    assert m['idlegate_upstream_response_seconds_bucket{le="+Inf"}'] == m["idlegate_upstream_response_seconds_count"]
    assert "idlegate_audit_events_dropped_total" in m


def test_upstream_errors_and_malformed_requests_are_counted(odoo, start_idlegate):
    ig = start_idlegate("http://127.0.0.1:1")
    assert page(ig, None, target="/odoo")[0] == 502
    c = ig.connect()
    c.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
    c.recv(100)
    time.sleep(0.6)
    m = metrics(ig)
    assert m['idlegate_upstream_errors_total{kind="error"}'] == 1
    assert m['idlegate_requests_total{route="activity",status="5xx"}'] == 1
    assert m['idlegate_requests_total{route="none",status="4xx"}'] == 1


def test_sessions_listing_and_kick(prefork_odoo, start_idlegate):
    ig = start_idlegate(prefork_odoo.url, config="idle_timeout: 10m\npolicies:\n  - name: kiosk\n    match:\n      path: [/odoo/kiosk]\n    idle_timeout: 3m\n")
    sid, _ = login(ig)
    other, _ = login(ig)
    page(ig, f"session_id={other}", target="/odoo/kiosk")
    status, _, body = ig.admin("GET", "/sessions?limit=1000")
    assert status == 200
    listing = json.loads(body)
    rows = {r["key"]: r for r in listing["sessions"]}
    key = session_key(ig, sid)
    assert key in rows and session_key(ig, other) in rows
    assert rows[key]["state"] == "active" and rows[key]["policy"] == "default" and rows[key]["idle_window_seconds"] == 600
    assert rows[session_key(ig, other)]["policy"] == "kiosk"
    assert sid not in body.decode() and other not in body.decode()  # keys only, never ids
    # Kick: the next request gets the expiry answer, and the session dies in Odoo too.
    status, _, body = ig.admin("DELETE", f"/sessions/{key}")
    assert status == 200 and json.loads(body)["kicked"] == key
    assert expired(call_kw(ig, f"session_id={sid}")[2])
    time.sleep(0.5)
    assert sid not in prefork_odoo.sessions
    assert call_kw(ig, f"session_id={other}")[2]["result"]["uid"] == 2  # the other one lives on
    assert ig.admin("DELETE", f"/sessions/{key}")[0] == 404  # already ended
    assert ig.admin("DELETE", "/sessions/" + "0" * 31 + "1")[0] == 404
    assert metrics(ig)["idlegate_sessions_kicked_total"] == 1
    assert sid not in ig.logs() and other not in ig.logs()


def test_admin_token(odoo, start_idlegate):
    ig = start_idlegate(odoo.url, env={"IDLEGATE_ADMIN_TOKEN": "s3cret-token"})
    for method, path in [("GET", "/metrics"), ("GET", "/sessions"), ("POST", "/reload"), ("DELETE", "/sessions/" + "0" * 32)]:
        status, headers, _ = ig.admin(method, path)
        assert status == 401 and headers["www-authenticate"].startswith("Bearer")
        assert ig.admin(method, path, token="wrong")[0] == 401
    assert ig.admin("GET", "/healthz")[0] == 200  # probes need no token
    metrics(ig, token="s3cret-token")
    assert ig.admin("POST", "/reload", token="s3cret-token")[0] == 200
    assert "s3cret-token" not in ig.logs()


def test_admin_refuses_garbage_and_survives_it(odoo, start_idlegate):
    ig = start_idlegate(odoo.url)
    import socket
    for junk in [b"\x00\x01\x02\r\n\r\n", b"GET /healthz HTTP/1.1\nHost: a\n\n", b"GET " + b"a" * 10000 + b" HTTP/1.1\r\n\r\n"]:
        s = socket.create_connection(("127.0.0.1", ig.admin_port), 5)
        s.sendall(junk)
        assert s.recv(100).startswith(b"HTTP/1.1 4")
        s.close()
    # A silent client does not block the others.
    silent = [socket.create_connection(("127.0.0.1", ig.admin_port), 5) for _ in range(3)]
    assert ig.admin("GET", "/healthz")[0] == 200
    for s in silent:
        s.close()


def test_restart_keeps_login_names(odoo, start_idlegate):
    ig = start_idlegate(odoo.url, extra=("--audit-log", "-"))
    c = Client(ig.connect())
    body = b"login=dora&password=pw-dora-1234&csrf_token=x"
    c.send(b"POST /web/login HTTP/1.1\r\nHost: odoo.test\r\nContent-Type: application/x-www-form-urlencoded\r\n"
           + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    status, headers, _ = c.response()
    sid = [v for k, v in headers if k.lower() == "set-cookie"][0].split(";")[0].split("=", 1)[1]
    ig.terminate()
    ig2 = start_idlegate(odoo.url, state_dir=ig.state_dir, port=ig.port)
    rows = {r["key"]: r for r in json.loads(ig2.admin("GET", "/sessions")[2])["sessions"]}
    assert rows[session_key(ig2, sid)]["login"] == "dora"
    assert "pw-dora" not in open(os.path.join(ig.state_dir, "sessions.snapshot"), "rb").read().decode("latin-1")


def test_reload_changes_the_log_level(odoo, start_idlegate):
    ig = start_idlegate(odoo.url, config="snapshot_interval: 1s\n")
    time.sleep(1.5)
    assert "session snapshot:" not in ig.logs()  # a debug line: not at info
    ig.write_config("snapshot_interval: 1s\nlog_level: debug\n")
    status, _, body = ig.admin("POST", "/reload")
    assert status == 200 and "unchanged until restart" not in json.loads(body)["message"]
    time.sleep(1.5)
    assert "session snapshot:" in ig.logs()
