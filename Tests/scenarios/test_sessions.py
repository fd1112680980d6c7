"""Idle-timeout enforcement end to end: the real binary in front of a fake Odoo that keeps sessions the
way Odoo 18 does and reads cookies with werkzeug."""
import json
import socket
import time

import pytest

from conftest import Client, header
from fake_odoo import ws_frame, ws_handshake

CALL_KW = "/web/dataset/call_kw/res.partner/read"


def call_kw(ig, cookie, extra=b"", target=CALL_KW, host="odoo.test"):
    c = Client(ig.connect())
    body = b'{"jsonrpc":"2.0","method":"call","id":7,"params":{}}'
    c.send(f"POST {target} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n".encode()
           + (f"Cookie: {cookie}\r\n".encode() if cookie else b"") + extra
           + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    status, headers, data = c.response()
    # A request idlegate refuses as malformed gets its plain 400, not JSON.
    return status, headers, json.loads(data) if status != 400 else {"refused": data.decode()}


def page(ig, cookie, target="/odoo/discuss?x=1", extra=b""):
    c = Client(ig.connect())
    c.send(f"GET {target} HTTP/1.1\r\nHost: odoo.test\r\n".encode() + (f"Cookie: {cookie}\r\n".encode() if cookie else b"") + extra + b"\r\n")
    return c.response()


def expired(result):
    return result.get("error", {}).get("code") == 100


def login(ig, sock=None):
    """A form login through idlegate (on `sock`, or a new plain connection); returns the new session id
    Odoo set and its Set-Cookie."""
    c = Client(sock or ig.connect())
    body = b"login=admin&password=admin&csrf_token=x&redirect="
    c.send(b"POST /web/login HTTP/1.1\r\nHost: odoo.test\r\nContent-Type: application/x-www-form-urlencoded\r\n"
           + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    status, headers, _ = c.response()
    assert status == 303
    cookie = [v for v in header(headers, "set-cookie") if v.startswith("session_id=")][0]
    return cookie.split(";")[0].split("=", 1)[1], cookie


@pytest.fixture
def prefork(prefork_odoo):
    return prefork_odoo


def test_login_active_idle_expired(prefork, start_idlegate):
    ig = start_idlegate(prefork.url, config="idle_timeout: 2s\n")
    sid, set_cookie = login(ig)
    assert "SameSite=Lax" in set_cookie and "HttpOnly" in set_cookie
    for _ in range(3):  # a person at work: each click refreshes the clock
        time.sleep(0.8)
        status, _, result = call_kw(ig, f"session_id={sid}")
        assert status == 200 and result["result"]["uid"] == 2
    time.sleep(2.6)
    status, headers, result = call_kw(ig, f"session_id={sid}")
    assert status == 200 and expired(result)  # Odoo's own "Session Expired" answer
    assert result["error"]["data"]["name"] == "odoo.http.SessionExpiredException"
    assert any(v.startswith("session_id=;") and "Max-Age=0" in v for v in header(headers, "set-cookie"))
    status, headers, _ = page(ig, f"session_id={sid}")
    assert status == 303
    assert header(headers, "location") == ["/web/login?redirect=/odoo/discuss%3Fx%3D1"]
    # Odoo was told: its own session is gone (a direct request with the id gets code 100).
    deadline = time.time() + 5
    while sid in prefork.sessions and time.time() < deadline:
        time.sleep(0.05)
    assert sid not in prefork.sessions
    assert sid not in ig.logs()  # raw ids never logged


def test_login_form_works_after_expiry(prefork, start_idlegate):
    ig = start_idlegate(prefork.url, config="idle_timeout: 1s\n")
    sid, _ = login(ig)
    time.sleep(1.6)
    status, headers, body = page(ig, f"session_id={sid}; frontend_lang=en_US", target="/web/login")
    assert status == 200 and b"login" in body  # no redirect loop
    # (idlegate's destroy call for the expired id may arrive before or after: pick the page request)
    forwarded = [r for r in prefork.requests if r.path == "/web/login" and r.method == "GET"][-1]
    assert "session_id" not in (forwarded.header("cookie") or "")
    assert "frontend_lang=en_US" in forwarded.header("cookie")
    assert any(v.startswith("session_id=") for v in header(headers, "set-cookie"))  # a fresh anonymous one
    new_sid, _ = login(ig)  # and logging in again works
    assert call_kw(ig, f"session_id={new_sid}")[2]["result"]["uid"] == 2


def test_passive_traffic_does_not_keep_a_session_alive(prefork, start_idlegate):
    ig = start_idlegate(prefork.url, config="idle_timeout: 2s\n")
    sid, _ = login(ig)
    end = time.time() + 1.5
    while time.time() < end:  # background traffic only: checked, never counted
        assert not expired(call_kw(ig, f"session_id={sid}", target="/web/webclient/version_info")[2])
        assert not expired(call_kw(ig, f"session_id={sid}", target="/websocket/peek_notifications")[2])
        # Static files, and what Odoo 18's service worker fetches on its own.
        for path in ("/web/static/img/logo.png", "/web/service-worker.js", "/odoo/offline"):
            c = Client(ig.connect())
            c.send(f"GET {path} HTTP/1.1\r\nHost: odoo.test\r\nCookie: session_id={sid}\r\n\r\n".encode())
            c.response()
        time.sleep(0.3)
    time.sleep(0.9)  # 2.4 s since the login, 0.6 s since the last background request
    assert expired(call_kw(ig, f"session_id={sid}")[2])


def open_websocket(ig, sid):
    """The web client's WebSocket handshake through idlegate; returns the client once it got 101."""
    c = Client(ig.connect())
    c.send(ws_handshake(host="odoo.test", extra=f"Cookie: session_id={sid}\r\n"))
    assert c.response()[0] == 101
    return c


def odoo_pair():
    """Odoo in production shape: the prefork HTTP port (HTTP/1.0) and the gevent port serving
    /websocket (HTTP/1.1), one session store between them."""
    from fake_odoo import FakeOdoo
    main = FakeOdoo("prefork")
    gevent = FakeOdoo("threaded", ping_interval=0.2, server="gevent")
    gevent.sessions = main.sessions
    return main, gevent


def test_websocket_frames_do_not_keep_a_session_alive(start_idlegate):
    odoo, gevent = odoo_pair()
    ig = start_idlegate(odoo.url, websocket_upstream=gevent.url, config="idle_timeout: 2s\n")
    sid = odoo.login()
    assert call_kw(ig, f"session_id={sid}")[2]["result"]["uid"] == 2
    c = open_websocket(ig, sid)
    end = time.time() + 2.6
    while time.time() < end:  # the browser's pongs, Odoo's pings
        c.send(ws_frame(0xA, b""))
        c._take(2)
        time.sleep(0.3)
    assert expired(call_kw(ig, f"session_id={sid}")[2])
    # and a new WebSocket on the expired session is not forwarded
    c2 = Client(ig.connect())
    c2.send(ws_handshake("/websocket", host="odoo.test", extra=f"Cookie: session_id={sid}\r\n"))
    assert c2.response()[0] == 403
    odoo.stop()
    gevent.stop()


BYPASSES = [
    ("tossed-twice", "session_id={A}; session_id={A}", b""),
    ("tossed-other-first", "session_id={B}; session_id={A}", b""),
    ("quoted", 'session_id="{A}"', b""),
    ("octal-escaped", 'session_id="\\{o}{rest}"', b""),
    ("backslash-escaped", 'session_id="\\{first}{rest}"', b""),
    ("padded", "session_id = {A} ", b""),
    ("tab", "session_id=\t{A}", b""),
    ("two-headers", "x=1", b"Cookie: session_id={A}\r\n"),
    ("query", None, b""),
    ("header", None, b"X-Openerp-Session-Id: {A}\r\n"),
]


@pytest.mark.parametrize("sources", ["strip", "check"])
@pytest.mark.parametrize("name,cookie,extra", BYPASSES, ids=[b[0] for b in BYPASSES])
def test_expired_session_cannot_come_back_in_another_spelling(start_idlegate, name, cookie, extra, sources):
    # An Odoo 15-like fake (query, header, then the last cookie) that keeps the session (destroy off):
    # any spelling that slipped past idlegate would come back authenticated.
    from fake_odoo import FakeOdoo
    odoo = FakeOdoo("threaded", legacy=True)
    ig = start_idlegate(odoo.url, config=f"idle_timeout: 1s\ndestroy_in_odoo: false\nlegacy_session_sources: {sources}\n")
    a = odoo.login()
    assert call_kw(ig, f"session_id={a}")[2]["result"]["uid"] == 2
    time.sleep(1.5)
    assert expired(call_kw(ig, f"session_id={a}")[2])
    b = "B" * 84
    fmt = dict(A=a, B=b, o=oct(ord(a[0]))[2:].zfill(3), first=a[0], rest=a[1:])
    target = CALL_KW + (f"?session_id={a}" if name == "query" else "")
    seen = len(odoo.authenticated)
    status, _, result = call_kw(ig, cookie.format(**fmt) if cookie else None, extra=extra.decode().format(**fmt).encode(), target=target)
    assert "result" not in result, f"{name} authenticated an expired session"
    assert a not in odoo.authenticated[seen:]
    odoo.stop()


def test_audit_mode_never_changes_a_response(prefork, start_idlegate):
    config = "idle_timeout: 1s\n"
    off = start_idlegate(prefork.url, config=config + "mode: off\n")
    audit = start_idlegate(prefork.url, config=config + "mode: audit\n")
    sid = prefork.login()
    answers = {}
    for name, ig in (("off", off), ("audit", audit)):
        call_kw(ig, f"session_id={sid}")
    time.sleep(1.5)
    for name, ig in (("off", off), ("audit", audit)):
        c = Client(ig.connect())
        body = b'{"jsonrpc":"2.0","method":"call","id":7,"params":{}}'
        c.send(f"POST {CALL_KW} HTTP/1.1\r\nHost: odoo.test\r\nContent-Type: application/json\r\nCookie: session_id={sid}\r\n"
               f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        answers[name] = c.buf + __import__("conftest").recv_all(c.sock)
    assert answers["audit"] == answers["off"]
    assert b'"uid": 2' in answers["audit"]
    assert "would_expire" in audit.logs()
    assert sid in prefork.sessions  # nothing was called in Odoo


def test_strictest_policy_sticks_to_the_session(prefork, start_idlegate):
    ig = start_idlegate(prefork.url, config="""idle_timeout: 30s
policies:
  - name: kiosk
    match:
      host: [kiosk.test]
    idle_timeout: 1s
""")
    sid = prefork.login()

    def kw(host):
        return call_kw(ig, f"session_id={sid}", host=host)[2]

    assert not expired(kw("kiosk.test"))
    time.sleep(1.5)
    assert expired(kw("office.test"))  # carried to another host, it keeps the kiosk's window


def test_policy_by_cidr_and_path(prefork, start_idlegate):
    ig = start_idlegate(prefork.url, config="""idle_timeout: 30s
policies:
  - name: loopback-reports
    match:
      cidr: [127.0.0.0/8]
      path: [/report]
    idle_timeout: 1s
""")
    sid = prefork.login()
    assert not expired(call_kw(ig, f"session_id={sid}")[2])
    time.sleep(1.5)
    assert not expired(call_kw(ig, f"session_id={sid}")[2])  # the default 30 s window
    time.sleep(1.5)
    status, headers, _ = page(ig, f"session_id={sid}", target="/report/pdf/x")
    assert status == 303  # the report path's 1 s window


def test_unknown_sessions_rejected_for_kiosks(prefork, start_idlegate):
    ig = start_idlegate(prefork.url, config="unknown_sessions: reject\n")
    sid = prefork.login()  # made before idlegate ever saw it
    assert expired(call_kw(ig, f"session_id={sid}")[2])
    new_sid, _ = login(ig)  # a login through idlegate is known
    assert call_kw(ig, f"session_id={new_sid}")[2]["result"]["uid"] == 2


def test_logout_ends_the_session(prefork, start_idlegate):
    ig = start_idlegate(prefork.url)
    sid, _ = login(ig)
    status, headers, _ = page(ig, f"session_id={sid}", target="/web/session/logout")
    assert status == 303
    prefork.sessions[sid] = {"uid": 2, "login": "admin"}  # even if Odoo kept it, idlegate will not
    assert expired(call_kw(ig, f"session_id={sid}")[2])


def test_cookie_hardening_behind_https(prefork, start_idlegate):
    ig = start_idlegate(prefork.url, config="cookies:\n  session_only: true\n")
    c = Client(ig.connect())
    body = b"login=admin&password=admin"
    c.send(b"POST /web/login HTTP/1.1\r\nHost: odoo.test\r\nX-Forwarded-Proto: https\r\n"
           + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    status, headers, _ = c.response()
    cookie = [v for v in header(headers, "set-cookie") if v.startswith("session_id=")][0]
    assert "Secure" in cookie and "SameSite=Lax" in cookie and "HttpOnly" in cookie
    assert "Max-Age" not in cookie and "Expires" not in cookie  # a browser-session cookie on kiosks


def test_odoo_cookie_table_through_idlegate(prefork, start_idlegate):
    """Every row of FACTS' cookie table: idlegate decides on the same id Odoo (werkzeug) would, and
    forwards exactly that one."""
    ig = start_idlegate(prefork.url)
    a = prefork.login()
    b = "B" * 84
    rows = [
        ("first wins", f"session_id={a}; session_id={b}", a),
        ("first wins, other order", f"session_id={b}; session_id={a}", None),
        ("quoted", f'session_id="{a}"', a),
        ("octal escape", f'session_id="\\{oct(ord(a[0]))[2:].zfill(3)}{a[1:]}"', a),
        ("backslash escape", f'session_id="\\{a[0]}{a[1:]}"', a),
        ("space before =", f"session_id ={a}", a),
        ("space after =", f"session_id= {a}", a),
        ("tab after =", f"session_id=\t{a}", a),
        ("bare first entry", f"session_id; session_id={a}", None),
        ("empty first entry", f"session_id=; session_id={a}", None),
        ("comma is no separator", f"session_id={b}, session_id={a}", None),
        ("name is case-sensitive", f"SESSION_ID={a}", None),
        ("no URL decoding", "session_id=%41" + a[1:], None),
    ]
    for label, cookie, expect in rows:
        status, _, result = call_kw(ig, cookie)
        got = prefork.authenticated[-1]
        assert got == expect, label
        assert ("result" in result) == (expect is not None), label
        forwarded = prefork.requests[-1].header("cookie") or ""
        assert forwarded.count("session_id") <= 1, label


def test_open_websocket_is_closed_with_4001_when_its_session_expires(start_idlegate):
    odoo, gevent = odoo_pair()  # Odoo's pings made frequent: frames keep crossing the tunnel
    ig = start_idlegate(odoo.url, websocket_upstream=gevent.url, config="idle_timeout: 1s\n")
    sid = odoo.login()
    assert call_kw(ig, f"session_id={sid}")[2]["result"]["uid"] == 2
    c = open_websocket(ig, sid)
    got_close = None
    end = time.time() + 4
    while time.time() < end and got_close is None:
        try:
            c.send(ws_frame(9, b"ping"))  # frames keep flowing, but they are not activity
        except OSError:
            break
        c.sock.settimeout(0.5)
        try:
            h = c._take(2)
        except (socket.timeout, EOFError):
            continue
        payload = c._take(h[1] & 0x7F)
        if h[0] & 0x0F == 8:
            got_close = payload
    assert got_close is not None and int.from_bytes(got_close[:2], "big") == 4001
    assert c.closed()
    assert expired(call_kw(ig, f"session_id={sid}")[2])
    odoo.stop()
    gevent.stop()
