"""HTTPS: idlegate terminating TLS for kiosks with no nginx in front, and reaching an Odoo over https.
Certificates are made here with the `openssl` command: a CA, leaves signed by it, one long expired."""
import json
import os
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import BINARY, Client, header
from fake_odoo import FakeOdoo
from test_sessions import login

CALL_KW = b'{"jsonrpc":"2.0","method":"call","id":7,"params":{}}'


class PKI:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="idlegate-pki-")
        self.ca = self.path("ca.pem")
        self.run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "30",
                 "-subj", "/CN=idlegate test CA", "-keyout", self.path("ca.key"), "-out", self.ca)
        open(self.path("index.txt"), "w").close()
        with open(self.path("serial"), "w") as f:
            f.write("1000\n")
        with open(self.path("ca.cnf"), "w") as f:
            f.write(f"[ca]\ndefault_ca = t\n[t]\ndatabase = {self.path('index.txt')}\nnew_certs_dir = {self.dir}\n"
                    f"serial = {self.path('serial')}\ndefault_md = sha256\npolicy = p\ncopy_extensions = copy\nunique_subject = no\n"
                    "[p]\ncommonName = supplied\n")

    def path(self, name):
        return os.path.join(self.dir, name)

    def run(self, *args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    def leaf(self, label, names, expired=False, rsa=False):
        """(chain file, key file) for `names`, signed by the CA."""
        key, csr, cert, chain = (self.path(f"{label}.{x}") for x in ("key", "csr", "pem", "chain.pem"))
        algo = ["-newkey", "rsa:2048"] if rsa else ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        self.run("req", "-new", *algo, "-nodes", "-subj", f"/CN={names[0]}",
                 "-addext", "subjectAltName=" + ",".join(f"DNS:{n}" for n in names), "-keyout", key, "-out", csr)
        dates = ["-startdate", "20200101000000Z", "-enddate", "20200201000000Z"] if expired else ["-days", "30"]
        self.run("ca", "-batch", "-notext", "-config", self.path("ca.cnf"), "-cert", self.ca, "-keyfile", self.path("ca.key"),
                 "-in", csr, "-out", cert, *dates)
        with open(chain, "w") as out:
            out.write(open(cert).read() + open(self.ca).read())
        return chain, key


@pytest.fixture(scope="module")
def pki():
    return PKI()


@pytest.fixture(scope="module")
def kiosk_cert(pki):
    return pki.leaf("kiosk", ["localhost", "kiosk.test"])


def client_context(pki, minimum=None, maximum=None):
    ctx = ssl.create_default_context(cafile=pki.ca)
    if minimum:
        ctx.minimum_version = minimum
    if maximum:
        ctx.maximum_version = maximum
    return ctx


def tls_connect(ig, ctx, name="localhost", session=None):
    raw = socket.create_connection(("127.0.0.1", ig.port), 5)
    s = ctx.wrap_socket(raw, server_hostname=name, session=session)
    s.settimeout(5)
    return s


def start_tls(start_idlegate, upstream, cert, config="", extra=()):
    return start_idlegate(upstream, config=config, extra=["--tls-cert", cert[0], "--tls-key", cert[1], *extra])


def get(c, target="/web/webclient/version_info", cookie=None, host="odoo.test"):
    c.send(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n".encode() + (f"Cookie: {cookie}\r\n".encode() if cookie else b"") + b"\r\n")
    return c.response()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls12_and_tls13_handshakes_with_alpn(pki, kiosk_cert, odoo, start_idlegate, version):
    ig = start_tls(start_idlegate, odoo.url, kiosk_cert)
    ctx = client_context(pki, version, version)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    s = tls_connect(ig, ctx)
    assert s.version() == {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]
    assert s.selected_alpn_protocol() == "http/1.1"
    status, _, _ = get(Client(s))
    assert status == 200


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_tls10_and_tls11_are_refused(pki, kiosk_cert, odoo, start_idlegate, version):
    ig = start_tls(start_idlegate, odoo.url, kiosk_cert)
    ctx = client_context(pki, version, version)
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # so that this client offers them at all
    with pytest.raises(ssl.SSLError) as e:
        tls_connect(ig, ctx)
    assert "PROTOCOL_VERSION" in str(e.value).upper()  # the server's alert, not a client-side refusal


def test_minimum_13_refuses_a_tls12_handshake(pki, kiosk_cert, odoo, start_idlegate):
    ig = start_tls(start_idlegate, odoo.url, kiosk_cert, config='tls:\n  min_version: "1.3"\n')
    with pytest.raises(ssl.SSLError) as e:
        tls_connect(ig, client_context(pki, maximum=ssl.TLSVersion.TLSv1_2))
    assert "PROTOCOL_VERSION" in str(e.value).upper()
    assert tls_connect(ig, client_context(pki)).version() == "TLSv1.3"


def test_sni_picks_the_certificate(pki, kiosk_cert, odoo, start_idlegate):
    shop = pki.leaf("shop", ["shop.test", "*.shop.test"])
    ig = start_tls(start_idlegate, odoo.url, kiosk_cert, config=f"tls:\n  certificates: [{{cert: {shop[0]}, key: {shop[1]}}}]\n")
    ctx = client_context(pki)
    for name, expect in [("till1.shop.test", "shop.test"), ("shop.test", "shop.test"), ("kiosk.test", "localhost"), ("localhost", "localhost")]:
        s = tls_connect(ig, ctx, name)  # verifies the chain and the name
        subject = dict(x[0] for x in s.getpeercert()["subject"])
        assert subject["commonName"] == expect, name
        assert get(Client(s), host=name)[0] == 200
    with pytest.raises(ssl.SSLCertVerificationError):  # an unknown name gets the default certificate
        tls_connect(ig, ctx, "unknown.test")


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_a_reconnecting_terminal_resumes_its_session(pki, kiosk_cert, odoo, start_idlegate, version):
    ig = start_tls(start_idlegate, odoo.url, kiosk_cert)
    ctx = client_context(pki, version, version)
    s = tls_connect(ig, ctx)
    assert get(Client(s))[0] == 200  # TLS 1.3 sends its ticket after the handshake: read something first
    session = s.session
    assert not s.session_reused
    s.close()
    s2 = tls_connect(ig, ctx, session=session)
    assert get(Client(s2))[0] == 200
    assert s2.session_reused


def call_kw_over(ig, ctx, sid):
    c = Client(tls_connect(ig, ctx))
    c.send(f"POST /web/dataset/call_kw/res.partner/read HTTP/1.1\r\nHost: odoo.test\r\nContent-Type: application/json\r\n"
           f"Cookie: session_id={sid}\r\nContent-Length: {len(CALL_KW)}\r\n\r\n".encode() + CALL_KW)
    status, headers, data = c.response()
    return status, headers, json.loads(data)


def test_idle_timeout_over_tls_and_the_cookie_is_secure(pki, kiosk_cert, prefork_odoo, start_idlegate):
    """The kiosk case end to end, with no header saying https: the cookie gets Secure, Odoo hears https,
    and the idle session is logged out."""
    ig = start_tls(start_idlegate, prefork_odoo.url, kiosk_cert, config="idle_timeout: 2s\ntls:\n  hsts: max-age=600\n")
    ctx = client_context(pki)
    sid, set_cookie = login(ig, sock=tls_connect(ig, ctx))
    assert "; Secure" in set_cookie and "HttpOnly" in set_cookie
    assert prefork_odoo.requests[-1].header("X-Forwarded-Proto") == "https"
    status, headers, result = call_kw_over(ig, ctx, sid)
    assert status == 200 and result["result"]["uid"] == 2
    assert header(headers, "strict-transport-security") == ["max-age=600"]
    time.sleep(2.6)
    status, _, result = call_kw_over(ig, ctx, sid)
    assert status == 200 and result["error"]["code"] == 100  # Odoo's own "Session Expired"
    assert sid not in ig.logs()


def test_a_reload_swaps_the_certificate_and_keeps_the_connection(pki, kiosk_cert, odoo, start_idlegate):
    # In the file, not in flags: a reload reads the file again, and flags would win over it.
    ig = start_idlegate(odoo.url, config=f"tls:\n  cert: {kiosk_cert[0]}\n  key: {kiosk_cert[1]}\n")
    ctx = client_context(pki)
    kept = Client(tls_connect(ig, ctx))
    assert get(kept)[0] == 200
    old = tls_connect(ig, ctx).getpeercert()["serialNumber"]
    renewed = pki.leaf("kiosk-renewed", ["localhost", "kiosk.test"])
    ig.write_config(f"tls:\n  cert: {renewed[0]}\n  key: {renewed[1]}\n")
    ig.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 5
    while tls_connect(ig, ctx).getpeercert()["serialNumber"] == old and time.time() < deadline:
        time.sleep(0.1)
    assert tls_connect(ig, ctx).getpeercert()["serialNumber"] != old
    assert get(kept)[0] == 200  # the keep-alive connection from before the reload still works
    assert "HTTPS: certificates for localhost, kiosk.test" in ig.logs()


# -- bad input on the TLS port ------------------------------------------------------------------------

def test_plain_http_on_the_tls_port_gets_a_short_400(pki, kiosk_cert, odoo, start_idlegate):
    ig = start_tls(start_idlegate, odoo.url, kiosk_cert)
    s = socket.create_connection(("127.0.0.1", ig.port), 5)
    s.sendall(b"GET /odoo HTTP/1.1\r\nHost: odoo.test\r\nCookie: session_id=abc\r\n\r\n")
    data = b""
    s.settimeout(5)
    while True:
        d = s.recv(4096)
        if not d:
            break
        data += d
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n") and b"speaks HTTPS" in data
    assert len(odoo.requests) == 0  # nothing reached Odoo


def test_truncated_and_stalled_handshakes_are_dropped_and_others_served(pki, kiosk_cert, odoo, start_idlegate):
    """1,000 clients that open a connection and send nothing or half a ClientHello, one that hangs up
    mid-handshake: each is dropped at the handshake timeout (or at once), and a real client is served
    meanwhile without delay."""
    ig = start_tls(start_idlegate, odoo.url, kiosk_cert, config="timeouts:\n  tls_handshake: 2s\n")
    # Half a real ClientHello, captured from this machine's own client.
    hello = capture_client_hello()
    stalled = []
    for i in range(1000):
        s = socket.create_connection(("127.0.0.1", ig.port), 5)
        if i % 2:
            s.sendall(hello[: len(hello) // 2])
        stalled.append(s)
    cut = socket.create_connection(("127.0.0.1", ig.port), 5)
    cut.sendall(hello[:40])
    cut.close()
    ctx = client_context(pki)
    started = time.time()
    assert get(Client(tls_connect(ig, ctx)))[0] == 200
    assert time.time() - started < 1.0  # the loop is not held up by the others
    time.sleep(2.5)
    closed = 0
    for s in stalled:
        s.settimeout(2)
        try:
            if s.recv(1) == b"":
                closed += 1
        except ConnectionResetError:
            closed += 1
        except socket.timeout:
            pass
        s.close()
    assert closed == 1000
    assert get(Client(tls_connect(ig, ctx)))[0] == 200
    assert ig.proc.poll() is None


def capture_client_hello():
    """The first bytes a TLS client sends (its ClientHello), read by a plain listening socket."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    got = {}

    def accept():
        c, _ = listener.accept()
        c.settimeout(2)
        got["hello"] = c.recv(65536)
        c.close()
    t = threading.Thread(target=accept)
    t.start()
    try:
        ssl.create_default_context().wrap_socket(socket.create_connection(listener.getsockname(), 2), server_hostname="localhost")
    except (ssl.SSLError, OSError):
        pass
    t.join()
    listener.close()
    assert got["hello"][0] == 0x16  # a handshake record
    return got["hello"]


# -- Odoo over https ----------------------------------------------------------------------------------

def odoo_over_tls(pki, names, expired=False):
    cert, key = pki.leaf("odoo-" + "-".join(names) + ("-old" if expired else ""), names, expired=expired)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return FakeOdoo("threaded", tls=ctx)


def https_upstream(o):
    return f"https://localhost:{o.port}"


def test_odoo_over_https_is_verified_and_works(pki, start_idlegate):
    o = odoo_over_tls(pki, ["localhost"])
    try:
        ig = start_idlegate(https_upstream(o), config=f"upstream_tls:\n  ca: {pki.ca}\n")
        c = Client(ig.connect())
        for _ in range(3):  # keep-alive to Odoo over TLS
            assert get(c)[0] == 200
        assert o.connections == 1
    finally:
        o.stop()


@pytest.mark.parametrize("names,expired,reason", [
    (["other.test"], False, "hostname mismatch"),
    (["localhost"], True, "certificate has expired"),
])
def test_a_bad_upstream_certificate_is_a_502_with_a_clear_line(pki, start_idlegate, names, expired, reason):
    o = odoo_over_tls(pki, names, expired=expired)
    try:
        ig = start_idlegate(https_upstream(o), config=f"upstream_tls:\n  ca: {pki.ca}\n")
        status, _, _ = get(Client(ig.connect()))
        assert status == 502
        assert len(o.requests) == 0  # never a request over an unverified connection
        deadline = time.time() + 3
        while reason not in ig.logs() and time.time() < deadline:
            time.sleep(0.05)
        assert reason in ig.logs() and "certificate verify failed" in ig.logs()
    finally:
        o.stop()


def test_the_system_bundle_does_not_trust_a_private_ca(pki, start_idlegate):
    o = odoo_over_tls(pki, ["localhost"])
    try:
        ig = start_idlegate(https_upstream(o))
        assert get(Client(ig.connect()))[0] == 502
    finally:
        o.stop()


# -- idlegate check -----------------------------------------------------------------------------------

def test_check_reports_certificates_and_refuses_bad_ones(pki, kiosk_cert):
    ok = subprocess.run([BINARY, "check", "--tls-cert", kiosk_cert[0], "--tls-key", kiosk_cert[1]], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert f"# tls: {kiosk_cert[0]}: localhost, kiosk.test; chain of 2, key matches; expires " in ok.stdout
    old = pki.leaf("check-old", ["old.test"], expired=True)
    bad = subprocess.run([BINARY, "check", "--tls-cert", old[0], "--tls-key", old[1]], capture_output=True, text=True)
    assert bad.returncode == 1 and "EXPIRED on 2020-02-01 00:00 UTC" in bad.stdout
    other = pki.leaf("check-other", ["other.test"])
    bad = subprocess.run([BINARY, "check", "--tls-cert", kiosk_cert[0], "--tls-key", other[1]], capture_output=True, text=True)
    assert bad.returncode == 1 and "does not match the certificate" in bad.stdout


def test_the_redirect_listener_sends_plain_http_to_https(pki, kiosk_cert, odoo, start_idlegate):
    from conftest import free_port
    plain = free_port()
    ig = start_tls(start_idlegate, odoo.url, kiosk_cert, config=f"tls:\n  redirect_listen: 127.0.0.1:{plain}\n")
    c = Client(socket.create_connection(("127.0.0.1", plain), 5))
    c.send(b"GET /web/webclient/version_info?x=1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
    status, headers, _ = c.response()
    assert status == 308 and header(headers, "location") == [f"https://localhost:{ig.port}/web/webclient/version_info?x=1"]
    assert len(odoo.requests) == 0
    # The redirect lands: the same URL over TLS is served.
    assert get(Client(tls_connect(ig, client_context(pki))), target="/web/webclient/version_info?x=1")[0] == 200


def test_websocket_over_tls_both_sides(pki, kiosk_cert, start_idlegate):
    """wss:// from the browser, idlegate terminating it, and Odoo's gevent port over https: frames of
    several records each way go through both TLS layers intact."""
    from fake_odoo import ws_frame, ws_handshake
    o = odoo_over_tls(pki, ["localhost"])
    try:
        ig = start_tls(start_idlegate, https_upstream(o), kiosk_cert, config=f"upstream_tls:\n  ca: {pki.ca}\n")
        c = Client(tls_connect(ig, client_context(pki)))
        c.send(ws_handshake(extra="Origin: https://a\r\n"))
        status, headers, _ = c.response()
        assert status == 101
        assert any("Secure" in v for v in header(headers, "set-cookie"))
        for payload in (b'{"event_name":"subscribe"}', bytes(range(256)) * 400):
            c.send(ws_frame(1, payload))
            assert c.ws_frame() == (1, payload)
    finally:
        o.stop()


def test_a_client_certificate_for_an_upstream_that_asks_for_one(pki, start_idlegate):
    cert, key = pki.leaf("odoo-mtls", ["localhost"])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(pki.ca)
    o = FakeOdoo("threaded", tls=ctx)
    try:
        client = pki.leaf("idlegate-client", ["idlegate.test"])
        ig = start_idlegate(https_upstream(o), config=f"upstream_tls:\n  ca: {pki.ca}\n  cert: {client[0]}\n  key: {client[1]}\n")
        assert get(Client(ig.connect()))[0] == 200
        without = start_idlegate(https_upstream(o), config=f"upstream_tls:\n  ca: {pki.ca}\n")
        assert get(Client(without.connect()))[0] == 502
    finally:
        o.stop()
