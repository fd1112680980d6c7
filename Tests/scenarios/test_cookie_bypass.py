"""Cookie spellings that walked an ended session past idlegate into a real Odoo 18 (werkzeug 2.2.2), as
regression tests against the fake Odoo, which builds its WSGI environ as Odoo's servers do (`,` join on
the HTTP port, `; ` on the gevent port, `-` and `_` alike) and reads it with werkzeug. Each case first
shows that the spelling does carry the ended id when sent straight to Odoo."""
import json
import socket
import time

import pytest

from conftest import Client, header
from cookie_cases import generate
from fake_odoo import FakeOdoo, ws_handshake
from test_audit import events, wait_for
from test_operations import metrics, session_key
from test_sessions import CALL_KW, call_kw, expired

BODY = b'{"jsonrpc":"2.0","method":"call","id":7,"params":{}}'


def request(cookie_lines, target=CALL_KW, extra=b""):
    return (f"POST {target} HTTP/1.1\r\nHost: odoo.test\r\nContent-Type: application/json\r\n".encode()
            + b"".join(b"Cookie: " + l.encode("latin-1") + b"\r\n" for l in cookie_lines) + extra
            + f"Content-Length: {len(BODY)}\r\nConnection: close\r\n\r\n".encode() + BODY)


def send(port, raw):
    """One request on its own connection: (status, headers, body)."""
    c = Client(socket.create_connection(("127.0.0.1", port), 5))
    c.sock.settimeout(5)
    c.send(raw)
    return c.response()


def straight_to_odoo(odoo, cookie_lines, **kw):
    """Who Odoo authenticates when the request reaches it without idlegate."""
    seen = len(odoo.authenticated)
    send(odoo.port, request(cookie_lines, **kw))
    return odoo.authenticated[seen]


@pytest.fixture
def ended(start_idlegate, tmp_path):
    """A threaded fake Odoo 18 that still holds admin's session E, which idlegate has ended (kicked,
    destroy_in_odoo off: Odoo was never told), and another user's live session L."""
    odoo = FakeOdoo("threaded")
    audit = str(tmp_path / "audit.jsonl")
    ig = start_idlegate(odoo.url, config="destroy_in_odoo: false\n", extra=("--audit-log", audit))
    e, l = odoo.login("admin"), odoo.login("ana")
    assert call_kw(ig, f"session_id={e}")[2]["result"]["uid"] == 2
    assert call_kw(ig, f"session_id={l}")[2]["result"]["uid"] == 2
    assert ig.admin("DELETE", f"/sessions/{session_key(ig, e)}")[0] == 200
    assert expired(call_kw(ig, f"session_id={e}")[2])
    yield odoo, ig, e, l, audit
    odoo.stop()


def through_idlegate(odoo, ig, cookie_lines):
    seen = len(odoo.authenticated)
    status, headers, body = send(ig.port, request(cookie_lines))
    who = odoo.authenticated[seen] if len(odoo.authenticated) > seen else "not forwarded"
    return status, who, odoo.requests[-1] if who != "not forwarded" else None


def test_two_lines_whose_quote_pairs_across_the_comma_join_are_refused(ended):
    odoo, ig, e, l, audit = ended
    lines = ["tz=UTC", f'x="; session_id={e}; "']
    assert straight_to_odoo(odoo, lines) == e  # werkzeug's `,` join: E stands alone
    status, who, _ = through_idlegate(odoo, ig, lines)
    assert status == 400 and who == "not forwarded"
    evs = wait_for(audit, lambda evs: any(v["event"] == "request_refused" for v in evs))
    assert [v["reason"] for v in evs if v["event"] == "request_refused"] == ["Cookie lines name different sessions on Odoo's two ports"]


def test_a_rewrite_never_changes_which_quotes_pair(ended):
    odoo, ig, e, l, audit = ended
    lines = [f'x="abc; session_id="zz"; q="; session_id={e}; "']
    assert straight_to_odoo(odoo, lines) is None  # as sent, Odoo reads the malformed `zz`: anonymous
    status, who, forwarded = through_idlegate(odoo, ig, lines)
    assert who is None
    assert forwarded.all("cookie") == []  # nothing in it is a plain cookie: no Cookie at all


def test_live_first_and_expired_hidden_in_a_later_line(ended):
    odoo, ig, e, l, audit = ended
    lines = [f" session_id={l};frontend_lang=\"en_US", f'q=";session_id={e};"']
    status, who, forwarded = through_idlegate(odoo, ig, lines)
    assert status == 200 and who == l
    assert forwarded.all("cookie") == [f"session_id={l}"]


def test_generated_cookie_headers_never_reach_odoo_as_the_ended_session(ended):
    """The attacker's run that found the bypass (3,000 generated headers; 5 got through then)."""
    odoo, ig, e, l, audit = ended
    cases = generate(3000, 16, e, l)
    outcomes = {"refused": 0, "as L": 0, "anonymous": 0, "expired answer": 0}
    for lines in cases:
        status, who, forwarded = through_idlegate(odoo, ig, lines)
        if status == 400:
            outcomes["refused"] += 1
        elif who == "not forwarded":
            outcomes["expired answer"] += 1
        else:
            assert who != e, f"{lines!r} reached Odoo as the ended session"
            outcomes["as L" if who == l else "anonymous"] += 1
            assert len(forwarded.all("cookie")) <= 1
    # The run exercised every outcome, E included: idlegate answered it itself.
    assert all(outcomes[k] > 30 for k in ("refused", "as L", "anonymous", "expired answer")), outcomes
    # and E is still ended for a plain cookie afterwards.
    assert expired(call_kw(ig, f"session_id={e}")[2])


def test_odoo_handing_out_an_ended_id_does_not_revive_it(start_idlegate, tmp_path):
    """Odoo re-sends `Set-Cookie: session_id=<the id it used>`. Were Odoo ever reached with an ended id
    some way idlegate did not see (the fake is told to), that answer must not start it again."""
    odoo = FakeOdoo("threaded")
    audit = str(tmp_path / "audit.jsonl")
    ig = start_idlegate(odoo.url, config="idle_timeout: 1s\n", extra=("--audit-log", audit))
    try:
        e, l = odoo.login("admin"), odoo.login("ana")
        assert call_kw(ig, f"session_id={e}")[2]["result"]["uid"] == 2
        time.sleep(1.5)
        assert expired(call_kw(ig, f"session_id={e}")[2])
        wait_for(audit, lambda evs: any(v["event"] == "expired" for v in evs))
        end = time.time() + 5
        while e in odoo.sessions and time.time() < end:  # idlegate's destroy call ends it in Odoo...
            time.sleep(0.05)
        assert e not in odoo.sessions
        odoo.sessions[e] = {"uid": 2, "login": "admin"}  # ...but say Odoo still had it.
        odoo.force_session = e
        status, headers, result = call_kw(ig, f"session_id={l}")
        assert status == 200 and result["result"]["uid"] == 2  # Odoo served it as E
        cookies = [v for v in header(headers, "set-cookie") if v.startswith("session_id=")]
        assert len(cookies) == 1 and cookies[0].startswith("session_id=;") and "Max-Age=0" in cookies[0]
        assert e not in "".join(v for _, v in headers)
        evs = wait_for(audit, lambda evs: any(v["event"] == "revival_refused" for v in evs))
        refusal = [v for v in evs if v["event"] == "revival_refused"][0]
        assert refusal["key"] == session_key(ig, e) and refusal["mode"] == "enforce"
        assert e not in open(audit).read() and e not in ig.logs()
        assert metrics(ig)["idlegate_session_revivals_refused_total"] == 1
        # The record stays ended: the plain cookie is still refused, and Odoo is told again.
        assert expired(call_kw(ig, f"session_id={e}")[2])
        end = time.time() + 5
        while e in odoo.sessions and time.time() < end:
            time.sleep(0.05)
        assert e not in odoo.sessions
    finally:
        odoo.stop()


def test_websocket_lines_are_read_under_gevents_join_too(start_idlegate):
    """gevent's port joins Cookie lines with `; `: `tz=UTC` then `session_id=A` is A there and nobody on
    the HTTP port. idlegate refuses what the two ports would read differently."""
    main = FakeOdoo("threaded")
    gevent = FakeOdoo("threaded", server="gevent")
    gevent.sessions = main.sessions
    ig = start_idlegate(main.url, websocket_upstream=gevent.url)
    try:
        a = main.login()
        lines = ["tz=UTC", f"session_id={a}"]
        c = Client(socket.create_connection(("127.0.0.1", gevent.port), 5))
        c.send(ws_handshake("/websocket", host="odoo.test", extra="".join(f"Cookie: {l}\r\n" for l in lines)))
        assert c.response()[0] == 101
        assert gevent.session_of(gevent.requests[-1]) == a  # the gevent port reads A
        assert straight_to_odoo(main, lines) is None         # the HTTP port reads nobody
        c = Client(ig.connect())
        c.send(ws_handshake("/websocket", host="odoo.test", extra="".join(f"Cookie: {l}\r\n" for l in lines)))
        assert c.response()[0] == 400
        # One plain line goes through as sent.
        c = Client(ig.connect())
        c.send(ws_handshake("/websocket", host="odoo.test", extra=f"Cookie: tz=UTC; session_id={a}\r\n"))
        assert c.response()[0] == 101
        assert gevent.requests[-1].all("cookie") == [f"tz=UTC; session_id={a}"]
    finally:
        main.stop()
        gevent.stop()


LEGACY = [
    # (name, target suffix, extra header lines): Odoo <= 15 reads ?session_id= and X-Openerp-Session-Id.
    ("underscore-header", "", "X_Openerp_Session_Id: {A}\r\n"),
    ("mixed-underscore-header", "", "X-Openerp_Session-Id: {A}\r\n"),
    ("percent-encoded-name", "?%73ession_id={A}", ""),
    ("plus-and-percent", "?session%5Fid={A}&x=1+2", ""),
    ("second-parameter", "?x=1&session_id={A}", ""),
    ("empty-then-header", "?session_id=", "X-Openerp-Session-Id: {A}\r\n"),
]


@pytest.mark.parametrize("sources", ["strip", "check"])
@pytest.mark.parametrize("name,suffix,extra", LEGACY, ids=[c[0] for c in LEGACY])
def test_legacy_channels_in_every_spelling(start_idlegate, name, suffix, extra, sources):
    """An Odoo 15-like fake that keeps the session (destroy off): a spelling that slipped by would come
    back authenticated. Each spelling does authenticate when sent straight to it."""
    odoo = FakeOdoo("threaded", legacy=True)
    ig = start_idlegate(odoo.url, config=f"idle_timeout: 1s\ndestroy_in_odoo: false\nlegacy_session_sources: {sources}\n")
    try:
        a = odoo.login()
        target = CALL_KW + suffix.format(A=a)
        extra_bytes = extra.format(A=a).encode()
        assert straight_to_odoo(odoo, [], target=target, extra=extra_bytes) == a
        assert call_kw(ig, f"session_id={a}")[2]["result"]["uid"] == 2
        time.sleep(1.5)
        assert expired(call_kw(ig, f"session_id={a}")[2])
        seen = len(odoo.authenticated)
        status, _, body = send(ig.port, request([], target=target, extra=extra_bytes))
        assert a not in odoo.authenticated[seen:], f"{name} authenticated an expired session"
        if sources == "check" and not name.startswith("underscore") and not name.startswith("mixed"):
            assert json.loads(body)["error"]["code"] == 100  # checked, and found expired
    finally:
        odoo.stop()


def test_two_session_headers_read_as_odoo_joins_them(start_idlegate):
    """Two X-Openerp-Session-Id lines reach Odoo <= 15 as `A,B`, no id at all: idlegate (check mode)
    reads them the same way, and neither A nor B goes on."""
    odoo = FakeOdoo("threaded", legacy=True)
    ig = start_idlegate(odoo.url, config="legacy_session_sources: check\n")
    try:
        a, b = odoo.login(), odoo.login("ana")
        extra = f"X-Openerp-Session-Id: {a}\r\nX-Openerp-Session-Id: {b}\r\n".encode()
        assert straight_to_odoo(odoo, [], extra=extra) is None
        status, _, body = send(ig.port, request([], extra=extra))
        assert status == 200 and odoo.authenticated[-1] is None
        assert odoo.requests[-1].all("cookie") == [] and odoo.requests[-1].all("x-openerp-session-id") == []
    finally:
        odoo.stop()


def test_a_fragment_in_the_target_is_refused(start_idlegate):
    """werkzeug cuts `#…` off before it looks for the query; no browser sends one."""
    odoo = FakeOdoo("threaded", legacy=True)
    ig = start_idlegate(odoo.url)
    try:
        status, _, _ = send(ig.port, request([], target=CALL_KW + "#?session_id=x"))
        assert status == 400
        assert len(odoo.requests) == 0
    finally:
        odoo.stop()


def test_an_audit_policy_never_revives_what_an_enforcing_one_ended(start_idlegate):
    """Audit mode watches on what it would have expired, but a session that is already ended (here
    by the enforcing default policy) stays ended for every policy."""
    odoo = FakeOdoo("threaded")
    ig = start_idlegate(odoo.url, config="idle_timeout: 1s\ndestroy_in_odoo: false\npolicies:\n"
                        "  - name: watched\n    match:\n      path: [/web/dataset/call_kw/audit.area]\n    idle_timeout: 1h\n    mode: audit\n")
    try:
        e = odoo.login()
        assert call_kw(ig, f"session_id={e}")[2]["result"]["uid"] == 2
        time.sleep(1.5)
        assert expired(call_kw(ig, f"session_id={e}")[2])
        # The audit policy forwards it (nothing is blocked there)...
        assert call_kw(ig, f"session_id={e}", target="/web/dataset/call_kw/audit.area/read")[2]["result"]["uid"] == 2
        # ...without starting it again for the enforcing one.
        assert expired(call_kw(ig, f"session_id={e}")[2])
    finally:
        odoo.stop()
