"""The audit trail end to end: event content and order through a session's life, audit mode leaving
responses byte for byte as mode off does, durability (SIGKILL, reopen, rotation + gzip, overflow), and the
report over what the real binary wrote."""
import glob
import gzip
import json
import os
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import BINARY, Client, free_port, recv_all, wait_port
from test_operations import metrics, session_key
from test_sessions import call_kw, expired, login, page


def events(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def wait_for(path, predicate, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        if os.path.exists(path):
            evs = events(path)
            if predicate(evs):
                return evs
        time.sleep(0.05)
    raise AssertionError(f"audit log never satisfied the condition: {events(path) if os.path.exists(path) else 'no file'}")


def authenticate(ig, login_name, password):
    c = Client(ig.connect())
    body = json.dumps({"jsonrpc": "2.0", "method": "call", "params": {"db": "odoo", "login": login_name, "password": password}}).encode()
    c.send(b"POST /web/session/authenticate HTTP/1.1\r\nHost: odoo.test\r\nContent-Type: application/json\r\n"
           + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    status, headers, _ = c.response()
    cookie = [v for k, v in headers if k.lower() == "set-cookie" and v.startswith("session_id=")][0]
    return cookie.split(";")[0].split("=", 1)[1]


def raw(ig, request):
    s = ig.connect()
    s.sendall(request)
    s.settimeout(5)
    out = b""
    while True:
        try:
            d = s.recv(65536)
        except socket.timeout:
            break
        if not d:
            break
        out += d
    s.close()
    return out


class AdminOnly:
    """The admin API of an idlegate started by hand."""

    def __init__(self, port):
        self.port = port

    def admin(self, method, path, token=None):
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        c.request(method, path)
        resp = c.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()


@pytest.fixture
def audit_path():
    d = tempfile.mkdtemp(prefix="idlegate-audit-")
    yield os.path.join(d, "audit.jsonl")


def test_lifecycle_events_in_order(prefork_odoo, start_idlegate, audit_path):
    ig = start_idlegate(prefork_odoo.url, config="idle_timeout: 3s\naudit:\n  activity_floor: 1s\n", extra=("--audit-log", audit_path))
    password = "Sup3r-s3cret-pa55"
    c = Client(ig.connect())
    body = f"login=ana%40example.com&password={password}&csrf_token=x".encode()
    c.send(b"POST /web/login HTTP/1.1\r\nHost: odoo.test\r\nContent-Type: application/x-www-form-urlencoded\r\n"
           + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    status, headers, _ = c.response()
    sid = [v for k, v in headers if k.lower() == "set-cookie"][0].split(";")[0].split("=", 1)[1]
    key = session_key(ig, sid)
    time.sleep(1.3)
    assert call_kw(ig, f"session_id={sid}")[2]["result"]["uid"] == 2  # resumed after 1.3 s ≥ floor
    assert call_kw(ig, f"session_id={sid}")[2]["result"]["uid"] == 2  # no gap: no event
    time.sleep(3.5)
    assert expired(call_kw(ig, f"session_id={sid}", target="/web/dataset/call_kw/res.partner/read?session_id=x&db=y")[2])
    evs = wait_for(audit_path, lambda e: any(x["event"] == "expired" for x in e))
    mine = [e for e in evs if e.get("key") == key]
    assert [e["event"] for e in mine] == ["session_started", "login", "activity_resumed", "expired"]
    started, logged_in, resumed, gone = mine
    assert started["reason"] == "odoo" and started["policy"] == "default" and started["client"] == "127.0.0.1"
    assert logged_in["login"] == "ana@example.com"
    assert resumed["login"] == "ana@example.com" and resumed["idle_s"] == 1 and resumed["window_s"] == 3
    assert resumed["method"] == "POST" and resumed["path"] == "/web/dataset/call_kw/res.partner/read"
    assert gone["idle_s"] == 3 and gone["window_s"] == 3 and gone["reason"] == "idle" and gone["mode"] == "enforce"
    assert gone["path"] == "/web/dataset/call_kw/res.partner/read?session_id=&db="
    for e in evs:
        assert e["ts"].endswith("Z") and len(e["ts"]) == 24 and e["ts"][10] == "T"
    # Neither the id nor the password anywhere: audit log, idlegate's own log.
    text = open(audit_path).read() + ig.logs()
    assert sid not in text and sid[:42] not in text and password not in text


def test_json_login_logout_kick_refusals_and_rewrites(odoo, start_idlegate, audit_path):
    ig = start_idlegate(odoo.url, extra=("--audit-log", audit_path))
    sid = authenticate(ig, "bob", "hunter2-hunter2")
    key = session_key(ig, sid)
    status, _, body = ig.admin("GET", "/sessions")
    assert {r["key"]: r["login"] for r in json.loads(body)["sessions"]}[key] == "bob"
    other = authenticate(ig, "carol", "pw-carol-123")
    assert ig.admin("DELETE", f"/sessions/{session_key(ig, other)}")[0] == 200
    page(ig, f"session_id={sid}; session_id={other}")  # tossed cookies: rebuilt
    raw(ig, b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
    c = Client(ig.connect())
    c.send(f"GET /web/session/logout HTTP/1.1\r\nHost: odoo.test\r\nCookie: session_id={sid}\r\n\r\n".encode())
    assert c.response()[0] == 303
    ig.write_config("idle_timeout: 10m\n")
    ig.proc.send_signal(signal.SIGHUP)
    evs = wait_for(audit_path, lambda e: any(x["event"] == "config_reloaded" for x in e))
    by = {}
    for e in evs:
        by.setdefault(e["event"], []).append(e)
    assert [e["login"] for e in by["login"]] == ["bob", "carol"]
    assert by["kicked"][0]["key"] == session_key(ig, other) and by["kicked"][0]["login"] == "carol"
    assert by["cookie_rewritten"][0]["reason"] == "several Cookie lines or an unusual spelling"
    assert by["request_refused"][0]["status"] == 400 and by["request_refused"][0]["client"] == "127.0.0.1"
    assert by["logout"][0]["key"] == key and by["logout"][0]["login"] == "bob" and by["logout"][0]["path"] == "/web/session/logout"
    assert "idle 10m" in by["config_reloaded"][0]["reason"]
    text = open(audit_path).read()
    assert sid not in text and other not in text and "hunter2" not in text and "pw-carol" not in text


def test_destroy_failure_is_an_event(prefork_odoo, start_idlegate, audit_path):
    ig = start_idlegate(prefork_odoo.url, config="idle_timeout: 1s\n", extra=("--audit-log", audit_path))
    sid, _ = login(ig)
    time.sleep(1.5)
    prefork_odoo.stop()
    assert expired(call_kw(ig, f"session_id={sid}")[2])  # answered by idlegate; Odoo is gone
    evs = wait_for(audit_path, lambda e: any(x["event"] == "destroy_failed" for x in e), timeout=15)
    failed = [e for e in evs if e["event"] == "destroy_failed"][0]
    assert failed["key"] == session_key(ig, sid) and failed["reason"]


def test_audit_mode_changes_no_byte_and_calls_nothing(odoo, start_idlegate, audit_path):
    """The same requests through mode audit and mode off: byte-identical responses."""
    config = "idle_timeout: 1s\nunknown_sessions: reject\n"
    audit_ig = start_idlegate(odoo.url, config=config, extra=("--mode", "audit", "--audit-log", audit_path))
    off_ig = start_idlegate(odoo.url, config=config, extra=("--mode", "off"))
    known = odoo.login()
    never_seen = odoo.login()
    # A session both know (for audit, adopted through a first request while adopting is on).
    requests = [
        f"POST /web/dataset/call_kw/res.partner/read HTTP/1.1\r\nHost: odoo.test\r\nContent-Type: application/json\r\nCookie: session_id={known}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}".encode(),
        f"GET /odoo/discuss?x=1 HTTP/1.1\r\nHost: odoo.test\r\nCookie: session_id={known}\r\nConnection: close\r\n\r\n".encode(),
        f"GET /odoo HTTP/1.1\r\nHost: odoo.test\r\nCookie: session_id={never_seen}\r\nConnection: close\r\n\r\n".encode(),
        f"GET /odoo HTTP/1.1\r\nHost: odoo.test\r\nCookie: session_id={known}; session_id=zzz\r\nConnection: close\r\n\r\n".encode(),
        f"GET /web/login HTTP/1.1\r\nHost: odoo.test\r\nCookie: session_id={known}\r\nConnection: close\r\n\r\n".encode(),
        b"GET /web/static/src/x.js HTTP/1.1\r\nHost: odoo.test\r\nConnection: close\r\n\r\n",
    ]
    first = [(raw(audit_ig, r), raw(off_ig, r)) for r in requests]
    time.sleep(1.5)  # every session idle past its window: audit only logs would_expire
    second = [(raw(audit_ig, r), raw(off_ig, r)) for r in requests]
    for a, o in first + second:
        assert a == o
        assert a.startswith(b"HTTP/1.")
    assert known in odoo.sessions and never_seen in odoo.sessions  # nothing destroyed
    evs = wait_for(audit_path, lambda e: any(x["event"] == "would_expire" for x in e))
    kinds = [e["event"] for e in evs]
    assert "would_expire" in kinds and "refused" in kinds and "expired" not in kinds
    would = [e for e in evs if e["event"] == "would_expire"][0]
    assert would["mode"] == "audit" and would["window_s"] == 1 and would["idle_s"] >= 1


def test_sigkill_loses_nothing_already_emitted(odoo, start_idlegate, audit_path):
    ig = start_idlegate(odoo.url, extra=("--audit-log", audit_path))
    for _ in range(200):
        raw(ig, b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
    time.sleep(0.3)  # the writer writes as soon as it is free; well within this
    ig.proc.kill()
    ig.proc.wait()
    evs = events(audit_path)
    assert len([e for e in evs if e["event"] == "request_refused"]) == 200


def test_sigusr1_reopens_for_logrotate(odoo, start_idlegate, audit_path):
    ig = start_idlegate(odoo.url, extra=("--audit-log", audit_path))
    raw(ig, b"GET / HTTP/1.1\r\n\r\n")
    wait_for(audit_path, lambda e: len(e) == 1)
    os.rename(audit_path, audit_path + ".1")  # what logrotate does
    ig.proc.send_signal(signal.SIGUSR1)
    time.sleep(0.3)
    raw(ig, b"GET / HTTP/1.1\r\n\r\n")
    wait_for(audit_path, lambda e: len(e) == 1)
    assert len(events(audit_path + ".1")) == 1


def test_rotation_by_size_gzip_readable_by_zcat(odoo, start_idlegate, audit_path):
    ig = start_idlegate(odoo.url, config="audit:\n  rotate_size: 4KiB\n  keep: 100\n", extra=("--audit-log", audit_path))
    for _ in range(300):
        raw(ig, b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
    ig.terminate()  # a clean shutdown writes everything and finishes compressing
    rotated = sorted(glob.glob(audit_path + ".*.gz"))
    assert len(rotated) >= 5
    lines = []
    for f in rotated:
        out = subprocess.run(["zcat", f], capture_output=True, check=True).stdout.decode()
        lines += out.splitlines()
    lines += open(audit_path).read().splitlines()
    refused = [json.loads(l) for l in lines if json.loads(l)["event"] == "request_refused"]
    assert len(refused) == 300  # nothing lost or doubled across rotations
    assert all(os.path.getsize(f) < 4096 for f in rotated)
    # and the report reads the .gz files as they are
    r = subprocess.run([BINARY, "audit", "report", "--json", *rotated, audit_path], capture_output=True, text=True, check=True)
    assert json.loads(r.stdout)["lines"] == len(lines)


def test_overflow_is_counted_and_reported(odoo, tmp_path):
    """stdout is a pipe nobody reads: the writer blocks, the queue (50) fills, the rest are dropped,
    counted in the metric, and reported by events_dropped once the pipe drains."""
    port, admin, state = free_port(), free_port(), tmp_path / "state"
    cfg = tmp_path / "c.yaml"
    cfg.write_text("audit:\n  queue: 50\n")
    r, w = os.pipe()
    proc = subprocess.Popen([BINARY, "serve", "--config", str(cfg), "--listen", f"127.0.0.1:{port}", "--upstream", odoo.url,
                             "--threads", "1", "--state-dir", str(state), "--admin-listen", f"127.0.0.1:{admin}", "--audit-log", "-"],
                            stdout=w, stderr=subprocess.DEVNULL)
    os.close(w)
    try:
        wait_port(port)
        wait_port(admin)
        sent = 3000
        for _ in range(sent):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
            s.recv(100)
            s.close()

        dropped_metric = metrics(AdminOnly(admin))["idlegate_audit_events_dropped_total"]
        assert dropped_metric > 0
        proc.send_signal(signal.SIGTERM)
        data = b""
        while True:
            d = os.read(r, 65536)
            if not d:
                break
            data += d
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(r)
    evs = [json.loads(l) for l in data.decode().splitlines()]
    written = len([e for e in evs if e["event"] == "request_refused"])
    reported = sum(e["count"] for e in evs if e["event"] == "events_dropped")
    assert reported > 0 and written + reported == sent
    assert reported >= dropped_metric


def test_report_over_a_real_log(prefork_odoo, start_idlegate, audit_path):
    ig = start_idlegate(prefork_odoo.url, config="idle_timeout: 15m\naudit:\n  activity_floor: 1s\n", extra=("--audit-log", audit_path))
    sid, _ = login(ig)
    time.sleep(2.2)
    call_kw(ig, f"session_id={sid}")
    ig.terminate()
    r = subprocess.run([BINARY, "audit", "report", "--windows", "1s,2s,3s", "--json", audit_path], capture_output=True, text=True, check=True)
    rep = json.loads(r.stdout)
    pol = {p["policy"]: p for p in rep["by_policy"]}["default"]
    assert pol["sessions"] == 1
    assert pol["would_expire_by_window_s"] == {"1": 1, "2": 1, "3": 0}
    login_row = {p["login"]: p for p in rep["by_login"]}["admin"]
    assert login_row["sessions"] == 1
    table = subprocess.run([BINARY, "audit", "report", audit_path], capture_output=True, text=True, check=True).stdout
    assert "by policy" in table and "default" in table and "admin" in table
    bad = subprocess.run([BINARY, "audit", "report", "/nonexistent.jsonl"], capture_output=True, text=True)
    assert bad.returncode == 1 and "No such file" in bad.stderr


def test_answers_idlegate_makes_itself_are_counted_and_audited(prefork_odoo, start_idlegate, audit_path):
    """Regression: a 408 (head not complete in time) skipped the request count and the audit log."""
    ig = start_idlegate(prefork_odoo.url, config="timeouts:\n  client_header: 1s\n", extra=("--audit-log", audit_path))
    before = metrics(ig).get('idlegate_requests_total{route="none",status="4xx"}', 0)
    s = ig.connect()
    s.sendall(b"GET /odoo HTTP/1.1\r\nHost: a")
    data = recv_all(s, timeout=4)
    assert data.startswith(b"HTTP/1.1 408 ")
    evs = wait_for(audit_path, lambda e: any(x["event"] == "request_refused" and x.get("status") == 408 for x in e))
    assert any(x.get("reason") == "request head not complete in time" for x in evs)
    deadline = time.time() + 3
    while metrics(ig).get('idlegate_requests_total{route="none",status="4xx"}', 0) < before + 1 and time.time() < deadline:
        time.sleep(0.1)
    assert metrics(ig).get('idlegate_requests_total{route="none",status="4xx"}', 0) == before + 1
