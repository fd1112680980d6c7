"""A test double for Odoo's HTTP server, as it behaves on the wire (see shared/odoo/FACTS.md):

- `prefork` mode answers like Odoo's port 8069 with workers > 0 (18-real): HTTP/1.0, Content-Length,
  `Connection: close`, one request per connection.
- `threaded` mode answers like a threaded Odoo (workers = 0): HTTP/1.1 keep-alive.
- `/websocket` answers a WebSocket handshake with 101 (as Odoo 16+ does on the gevent port) and then
  echoes frames; without `Upgrade: websocket` it answers 400, and `/websocket-refused` answers 426.
- Headers reach "Odoo" through a WSGI environ built as Odoo's servers build it: `server="werkzeug"`
  (port 8069, `serving.py`) maps `-` and `_` alike to `_` and joins repeated headers with a bare `,`;
  `server="gevent"` (port 8072, `pywsgi.py`) drops names with `_` and joins Cookie lines with `; `.

Every byte received is recorded, so a test can prove that a refused request reached it as not one byte.
"""
import base64
import gzip
import hashlib
import json
import re
import secrets
import socket
import threading
import time
from urllib.parse import parse_qs, quote

from werkzeug.datastructures import MultiDict
from werkzeug.http import parse_cookie  # Odoo reads cookies with werkzeug: so does this fake
from werkzeug.urls import url_decode  # and its query string (request.args)

SID_RE = re.compile(r"^[A-Za-z0-9_-]{84}$")  # Odoo 18 session ids

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Request:
    def __init__(self, method, target, version, headers, body):
        self.method, self.target, self.version, self.headers, self.body = method, target, version, headers, body

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def path(self):
        return self.target.split("?", 1)[0]


class Conn:
    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.buf += data

    def read_until(self, marker):
        while marker not in self.buf:
            self.fill()
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_exact(self, n):
        while len(self.buf) < n:
            self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_request(self):
        head = self.read_until(b"\r\n\r\n").decode("latin-1")
        lines = head.split("\r\n")
        method, target, version = lines[0].split(" ")
        headers = [tuple(x.strip() for x in l.split(":", 1)) for l in lines[1:] if l]
        req = Request(method, target, version, headers, b"")
        te = req.header("transfer-encoding")
        if te and te.lower() == "chunked":
            body = b""
            while True:
                size = int(self.read_until(b"\r\n")[:-2].split(b";")[0], 16)
                if size == 0:
                    self.read_until(b"\r\n")
                    break
                body += self.read_exact(size)
                assert self.read_exact(2) == b"\r\n"
            req.body = body
        elif req.header("content-length"):
            req.body = self.read_exact(int(req.header("content-length")))
        return req


class FakeOdoo:
    def __init__(self, mode="threaded", port=0, legacy=False, ping_interval=45.0, server="werkzeug", tls=None):
        self.mode = mode
        # An ssl.SSLContext: Odoo behind its own TLS (another host, reached over https).
        self.tls = tls
        # The web client page (/odoo, /web): gzip-compressed, and with a Content-Security-Policy, if set.
        self.page_gzip = False
        self.page_csp = None
        self.server = server
        # A test's stand-in for a way past idlegate it did not see: the next request is served as this
        # session, and, as a real Odoo does, its answer re-sends that session's cookie.
        self.force_session = None
        # Odoo pings every WebSocket every 45 s (captures/11_websocket_frames.txt); tests shorten it.
        self.ping_interval = ping_interval
        # Odoo 12-15 (and 16/17 before June 2024) also read ?session_id= and X-Openerp-Session-Id,
        # before the cookie, and werkzeug 0.x took the last of duplicate cookies.
        self.legacy = legacy
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", port))
        self.lsock.listen(512)
        self.port = self.lsock.getsockname()[1]
        self.received = bytearray()
        self.requests = []
        # Odoo's session store: sid -> {"uid": None or 2, "login": ...}; anonymous visitors get one too.
        self.sessions = {}
        # Which session each request was authenticated as (None: anonymous), in order.
        self.authenticated = []
        self.connections = 0
        self.lock = threading.Lock()
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self):
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def stop(self):
        self.stopping = True
        try:
            self.lsock.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone would not)
        except OSError:
            pass
        try:
            self.lsock.close()
        except OSError:
            pass

    def _accept(self):
        while not self.stopping:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _serve(self, s):
        try:
            if self.tls:
                s = self.tls.wrap_socket(s, server_side=True)
        except (OSError, ValueError):  # a client that refused the certificate
            s.close()
            return
        conn = Conn(RecordingSocket(s, self))
        try:
            while True:
                req = conn.read_request()
                with self.lock:
                    self.requests.append(req)
                keep = self._answer(conn, req)
                if not keep or self.mode == "prefork":
                    break
        except (EOFError, OSError, ValueError):
            pass
        finally:
            try:
                s.close()
            except OSError:
                pass

    def _head(self, status, headers, length=None):
        version = "HTTP/1.0" if self.mode == "prefork" else "HTTP/1.1"
        lines = [f"{version} {status}", "Server: Werkzeug/2.2.2 Python/3.11.7"]
        lines += [f"{k}: {v}" for k, v in headers]
        if length is not None:
            lines.append(f"Content-Length: {length}")
        if self.mode == "prefork":
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def _send(self, conn, status, body=b"", headers=(("Content-Type", "application/json"),)):
        conn.sock.sendall(self._head(status, list(headers), len(body)) + body)
        return True

    # -- Odoo's session behaviour (shared/odoo/FACTS.md) ------------------------------------------

    def new_session(self, uid=None, login=None):
        sid = secrets.token_urlsafe(63)  # 84 URL-safe characters, as Odoo 18
        with self.lock:
            self.sessions[sid] = {"uid": uid, "login": login}
        return sid

    def login(self, login="admin"):
        """A logged-in session made directly in the store (what a real login leaves behind)."""
        return self.new_session(uid=2, login=login)

    def environ(self, req):
        """The HTTP_* part of the WSGI environ Odoo's server would build from these headers."""
        env = {}
        for name, value in req.headers:
            if self.server == "gevent":
                if "_" in name:
                    continue  # pywsgi: "strip incoming bad headers"
                key = "HTTP_" + name.replace("-", "_").upper()
                if key in env:
                    env[key] += ("; " if "COOKIE" in key else ",") + value
                    continue
            else:
                key = "HTTP_" + name.upper().replace("-", "_")
                if key in env:
                    value = f"{env[key]},{value}"
            env[key] = value
        return env

    def session_of(self, req):
        """The session id Odoo would pick: the first session_id werkzeug reads from the environ's
        HTTP_COOKIE; a malformed or unknown id counts as none."""
        if self.force_session:
            sid, self.force_session = self.force_session, None
            return sid
        env = self.environ(req)
        cookies = parse_cookie(env["HTTP_COOKIE"]) if "HTTP_COOKIE" in env else MultiDict()
        sid = cookies.get("session_id")
        if self.legacy:
            # Odoo <= 15: ?session_id=, then X-Openerp-Session-Id, then the cookie (werkzeug 0.x: the last).
            query = url_decode(req.target.split("#", 1)[0].split("?", 1)[1]) if "?" in req.target.split("#", 1)[0] else MultiDict()
            cookie_ids = cookies.getlist("session_id")
            sid = query.get("session_id") or env.get("HTTP_X_OPENERP_SESSION_ID") or (cookie_ids[-1] if cookie_ids else None)
        if sid and SID_RE.match(sid) and sid in self.sessions:
            return sid
        return None

    def _cookie(self, sid):
        return ("Set-Cookie", f"session_id={sid}; Expires=Thu, 25 Nov 2027 08:05:46 GMT; Max-Age=604800; HttpOnly; Path=/")

    def _odoo(self, conn, req, path):
        sid = self.session_of(req)
        uid = self.sessions.get(sid, {}).get("uid") if sid else None
        with self.lock:
            self.authenticated.append(sid if uid else None)
        if path == "/web/login":
            if req.method == "POST":
                form = parse_qs(req.body.decode())
                new = self.new_session(uid=2, login=form.get("login", ["?"])[0])  # login rotates the sid
                if sid:
                    self.sessions.pop(sid, None)
                return self._send(conn, "303 SEE OTHER", b"", [("Location", "/odoo"), self._cookie(new)])
            headers = [("Content-Type", "text/html; charset=utf-8")]
            if not sid:
                headers.append(self._cookie(self.new_session()))
            return self._send(conn, "200 OK", b"<html><form>login</form></html>", headers)
        if path == "/web/session/authenticate":
            params = json.loads(req.body or b"{}").get("params", {})
            new = self.new_session(uid=2, login=params.get("login"))
            return self._send(conn, "200 OK", json.dumps({"jsonrpc": "2.0", "id": None, "result": {"uid": 2}}).encode(), [("Content-Type", "application/json"), self._cookie(new)])
        if path == "/web/session/destroy":
            if sid:
                self.sessions.pop(sid, None)
            return self._send(conn, "200 OK", b'{"jsonrpc": "2.0", "id": 1}')
        if path == "/web/session/logout":
            if sid:
                self.sessions.pop(sid, None)
            return self._send(conn, "303 SEE OTHER", b"", [("Location", "/odoo"), self._cookie(self.new_session()),
                                                           ("Set-Cookie", "cids=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/")])
        if req.method == "POST" and (req.header("content-type") or "").startswith("application/json"):
            # 18-real: authenticated JSON-RPC answers often re-send the session's cookie.
            resend = [("Content-Type", "application/json")] + ([self._cookie(sid)] if sid else [])
            if path.startswith("/web/webclient/version_info"):  # auth="none"
                return self._send(conn, "200 OK", b'{"jsonrpc": "2.0", "id": 1, "result": {"server_version": "18.0"}}', resend)
            if not uid:
                return self._send(conn, "200 OK", json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": 100, "message": "Odoo Session Expired", "data": {"name": "odoo.http.SessionExpiredException"}}}).encode())
            return self._send(conn, "200 OK", json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"uid": uid, "sid": sid[:8]}}).encode(), resend)
        if path.startswith("/odoo"):
            if not uid:
                return self._send(conn, "303 SEE OTHER", b"", [("Location", "/web/login?redirect=" + quote(req.target, safe=""))])
            return self._web_client(conn)
        return None

    WEB_CLIENT = (b'<!DOCTYPE html><html><head><meta charset="utf-8"><title>Odoo</title>'
                  b'<script nonce="n0nc3">window.odooLoaded = true;</script></head>'
                  b'<body><main id="customer-data"><h1>Customers</h1>'
                  b'<p>ACME Corp, IBAN DE89 3704 0044 0532 0130 00, balance 12 345.00 EUR</p></main></body></html>')

    def _web_client(self, conn):
        """A page shaped like Odoo's web client: a head with an inline script, customer data in the body."""
        body, headers = self.WEB_CLIENT, [("Content-Type", "text/html; charset=utf-8")]
        if self.page_gzip:
            body = gzip.compress(body)
            headers.append(("Content-Encoding", "gzip"))
        if self.page_csp:
            headers.append(("Content-Security-Policy", self.page_csp))
        return self._send(conn, "200 OK", body, headers)

    ODOO_PATHS = ("/web/login", "/web/session/", "/web/dataset/", "/odoo", "/web/webclient/version_info", "/websocket/peek_notifications")

    def _answer(self, conn, req):
        path = req.path
        if path.startswith(self.ODOO_PATHS) and not (path.startswith("/web/webclient/version_info") and req.method == "GET"):
            handled = self._odoo(conn, req, path)
            if handled is not None:
                return handled
        q = dict(p.split("=", 1) for p in req.target.split("?", 1)[1].split("&")) if "?" in req.target else {}
        if path.startswith("/websocket"):
            return self._websocket(conn, req)
        if path == "/echo":
            return self._send(conn, "200 OK", req.body, [("Content-Type", "application/octet-stream")])
        if path == "/headers":
            body = json.dumps({"headers": req.headers, "target": req.target, "version": req.version}).encode()
            return self._send(conn, "200 OK", body)
        if path == "/big":
            n = int(q.get("n", "1048576"))
            conn.sock.sendall(self._head("200 OK", [("Content-Type", "application/octet-stream")], n))
            block = b"x" * 65536
            sent = 0
            while sent < n:
                k = min(len(block), n - sent)
                conn.sock.sendall(block[:k])
                sent += k
            return True
        if path == "/chunked" and self.mode == "threaded":
            conn.sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n"
                              b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
            return True
        if path == "/close-delimited":
            conn.sock.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end")
            return False
        if path == "/silent":
            time.sleep(30)
            return False
        if path == "/slow":
            time.sleep(float(q.get("s", "1")))
            return self._send(conn, "200 OK", b'{"slow":true}')
        if path == "/smuggle-response":
            conn.sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
            return False
        # Anything else: a small JSON-RPC-like answer, as /web/dataset/call_kw gives.
        return self._send(conn, "200 OK", b'{"jsonrpc": "2.0", "id": 1, "result": []}')

    def _websocket(self, conn, req):
        if req.path == "/websocket-refused":
            return self._send(conn, "426 Upgrade Required", b"upgrade refused", [("Content-Type", "text/plain")])
        if (req.header("upgrade") or "").lower() != "websocket" or not req.header("sec-websocket-key"):
            return self._send(conn, "400 BAD REQUEST", b"Empty or missing header(s): upgrade", [("Content-Type", "text/plain")])
        accept = base64.b64encode(hashlib.sha1(req.header("sec-websocket-key").encode() + WS_GUID).digest()).decode()
        # 18-real: the 101 re-sends the session's own cookie.
        sid = self.session_of(req) or self.new_session()
        conn.sock.sendall(("HTTP/1.1 101 SWITCHING PROTOCOLS\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Accept: {accept}\r\n"
                           f"Set-Cookie: session_id={sid}; Expires=Thu, 25 Nov 2027 08:05:46 GMT; Max-Age=604800; HttpOnly; Path=/\r\n\r\n").encode())
        send_lock = threading.Lock()
        open_ = [True]

        def pinger():
            while open_[0]:
                time.sleep(self.ping_interval)
                try:
                    with send_lock:
                        conn.sock.sendall(ws_frame(9, b"", masked=False))
                except OSError:
                    return
        threading.Thread(target=pinger, daemon=True).start()
        try:
            return self._echo_frames(conn, send_lock)
        finally:
            open_[0] = False

    def _echo_frames(self, conn, send_lock):
        while True:  # echo every frame back, unmasked
            h = conn.read_exact(2)
            opcode, length = h[0] & 0x0F, h[1] & 0x7F
            if length == 126:
                length = int.from_bytes(conn.read_exact(2), "big")
            elif length == 127:
                length = int.from_bytes(conn.read_exact(8), "big")
            mask = conn.read_exact(4) if h[1] & 0x80 else b"\0\0\0\0"
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(conn.read_exact(length)))
            with send_lock:
                conn.sock.sendall(ws_frame(opcode, payload, masked=False))
            if opcode == 8:
                return False


def ws_handshake(path="/websocket?version=18.0-5", host="a", extra=""):
    """The browser's WebSocket handshake (the key of RFC 6455's example, so the accept is known)."""
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n").encode()


def ws_frame(opcode, payload, masked=True):
    head = bytes([0x80 | opcode])
    mbit = 0x80 if masked else 0
    n = len(payload)
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([mbit | 127]) + n.to_bytes(8, "big")
    if masked:
        key = b"\x01\x02\x03\x04"
        return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + payload


class RecordingSocket:
    """A socket whose received bytes are also appended to the server's `received`."""

    def __init__(self, s, server):
        self.s, self.server = s, server

    def recv(self, n):
        data = self.s.recv(n)
        with self.server.lock:
            self.server.received += data
        return data

    def sendall(self, data):
        self.s.sendall(data)
