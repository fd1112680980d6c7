"""Replicas sharing one Redis (`store: redis`): two and three idlegate processes in front of one fake Odoo
and a real redis-server (Debian's), started here on a free port."""
import hashlib
import hmac
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import free_port, wait_port
from test_sessions import call_kw, expired, login, page

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server (the test command installs it)")

SECRET = "5e" * 32


class Redis:
    """A real redis-server on a free port, no persistence; `stop` and `start` again on the same port."""

    def __init__(self, listen=None, extra=(), connect=None, login=()):
        """`listen`: the listening arguments (default: plain TCP on a free port); `connect`: how tests reach it
        (a socket factory); `login`: the AUTH arguments tests send first."""
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="idlegate-redis-")
        self.listen = listen or ["--port", str(self.port)]
        self.extra, self.login = list(extra), list(login)
        self.connect = connect or (lambda: socket.create_connection(("127.0.0.1", self.port), 5))
        self.start()

    def start(self):
        self.proc = subprocess.Popen(["redis-server", *self.listen, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                      "--dir", self.dir, "--logfile", os.path.join(self.dir, "redis.log"), *self.extra])
        for _ in range(100):
            try:
                if self.cmd("PING") == "PONG":
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer: {open(os.path.join(self.dir, 'redis.log')).read()[-2000:]}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def cmd(self, *args):
        """One command, its reply decoded (lists for arrays, None for nil)."""
        with self.connect() as s:
            f = s.makefile("rb")
            for command in ([("AUTH", *self.login)] if self.login else []) + [args]:
                out = f"*{len(command)}\r\n".encode()
                for a in command:
                    a = str(a).encode()
                    out += f"${len(a)}\r\n".encode() + a + b"\r\n"
                s.sendall(out)
                reply = self._read(f)
            return reply

    def _read(self, f):
        line = f.readline()
        if not line:
            raise OSError("closed")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise ValueError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = f.read(n + 2)[:-2]
            return data.decode("latin-1")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read(f) for _ in range(n)]
        raise ValueError(f"unexpected {line!r}")

    def url(self):
        return f"redis://127.0.0.1:{self.port}"


@pytest.fixture
def redis():
    r = Redis()
    yield r
    r.stop()
    shutil.rmtree(r.dir, ignore_errors=True)


def config(redis, idle="3s", fail_mode="fail_open", extra="", url=None):
    return (f"idle_timeout: {idle}\nsession_secret: \"{SECRET}\"\nstore: redis\nredis:\n  url: \"{url or redis.url()}\"\n"
            f"  sync_interval: 200ms\n  fail_mode: {fail_mode}\n  timeout: 200ms\n  connect_timeout: 300ms\n" + extra)


def key_of(sid):
    part = sid[:42] if len(sid) > 42 else sid
    return hmac.new(bytes.fromhex(SECRET), part.encode(), hashlib.sha256).digest()[:16].hex()


def alive(ig, sid):
    status, _, result = call_kw(ig, f"session_id={sid}")
    assert status == 200
    return not expired(result)


def metrics(ig):
    body = ig.admin("GET", "/metrics")[2].decode()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in body.splitlines() if line and not line.startswith("#")}


def wait_for(cond, timeout=5.0):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def test_activity_through_one_replica_keeps_the_session_alive_on_another(odoo, redis, start_idlegate):
    a = start_idlegate(odoo.url, config=config(redis))
    b = start_idlegate(odoo.url, config=config(redis))
    sid, _ = login(a)
    assert alive(b, sid)  # B knows it from here, with its own clock
    for _ in range(5):  # 4 s of work through A only: past the 3 s window by B's own clock
        time.sleep(0.8)
        assert alive(a, sid)
    time.sleep(0.4)
    assert alive(b, sid)  # B's record looks expired; Redis holds A's activity: alive
    assert sid not in a.logs() and sid not in b.logs()


def test_a_session_expired_on_one_replica_is_refused_by_another(odoo, redis, start_idlegate):
    a = start_idlegate(odoo.url, config=config(redis))
    b = start_idlegate(odoo.url, config=config(redis))
    sid, _ = login(a)
    time.sleep(3.4)
    assert not alive(a, sid)  # expired on A: a tombstone in Redis
    assert redis.cmd("HGET", f"idlegate:s:{key_of(sid)}", "e") is not None
    # B never saw it: alone it would adopt it with a fresh clock; it asks Redis and refuses it.
    assert not alive(b, sid)
    assert not alive(a, sid)


def test_a_kick_on_one_replica_holds_on_the_others(odoo, redis, start_idlegate):
    a, b, c = (start_idlegate(odoo.url, config=config(redis, idle="10m")) for _ in range(3))
    sid, _ = login(a)
    assert alive(b, sid) and alive(c, sid)
    key = key_of(sid)
    assert any(r["key"] == key for r in json.loads(a.admin("GET", "/sessions?limit=100")[2])["sessions"])
    status, _, body = a.admin("DELETE", f"/sessions/{key}")
    assert status == 200
    assert wait_for(lambda: metrics(b)["idlegate_redis_tombstones_received_total"] >= 1 and metrics(c)["idlegate_redis_tombstones_received_total"] >= 1)
    assert not alive(b, sid) and not alive(c, sid) and not alive(a, sid)
    # A session a replica never saw can be kicked there too: it asks Redis.
    other, _ = login(a)
    time.sleep(0.4)  # written behind
    assert c.admin("DELETE", f"/sessions/{key_of(other)}")[0] == 200
    assert wait_for(lambda: not alive(a, other))
    assert c.admin("DELETE", "/sessions/" + "0" * 31 + "1")[0] == 404
    # Any replica's listing shows every replica's sessions: one only A saw, written behind, is on C's.
    third, _ = login(a)
    assert alive(a, third)
    time.sleep(0.4)
    listing = json.loads(c.admin("GET", "/sessions?limit=1000")[2])
    rows = {r["key"]: r for r in listing["sessions"]}
    assert rows[key_of(third)]["state"] == "active" and rows[key_of(sid)]["state"] == "ended" and rows[key_of(other)]["state"] == "ended"
    assert listing["total"] == 3
    first = json.loads(c.admin("GET", "/sessions?limit=2")[2])
    rest = json.loads(c.admin("GET", f"/sessions?limit=2&after={first['next']}")[2])
    assert [r["key"] for r in first["sessions"] + rest["sessions"]] == sorted(rows) and rest["next"] is None


def test_redis_down_each_fail_mode_does_what_it_says_and_state_reconciles(odoo, redis, start_idlegate):
    audit_dir = tempfile.mkdtemp(prefix="idlegate-audit-")
    audit = os.path.join(audit_dir, "audit.log")
    a = start_idlegate(odoo.url, config=config(redis, idle="1m"))
    b = start_idlegate(odoo.url, config=config(redis, idle="1m", fail_mode="fail_closed", extra=f"audit:\n  log: {audit}\n"))
    sid, _ = login(a)
    assert alive(a, sid) and alive(b, sid)
    assert a.admin("GET", "/readyz")[0] == 200 and b.admin("GET", "/readyz")[0] == 200
    redis.stop()
    assert wait_for(lambda: metrics(a)["idlegate_redis_up"] == 0 and metrics(b)["idlegate_redis_up"] == 0)
    # fail_open: A keeps enforcing on its own state.
    assert alive(a, sid)
    # fail_closed: B answers the session's requests with a temporary refusal, and destroys nothing.
    c = socket.create_connection(("127.0.0.1", b.port), 5)
    c.sendall(f"GET /odoo HTTP/1.1\r\nHost: odoo.test\r\nCookie: session_id={sid}\r\n\r\n".encode())
    head = c.recv(4096).decode()
    c.close()
    assert head.startswith("HTTP/1.1 503") and "Retry-After: 5" in head
    assert sid in odoo.sessions
    status, _, body = b.admin("GET", "/readyz")
    assert status == 503 and "DOWN" in json.loads(body)["detail"]
    status, _, body = a.admin("GET", "/readyz")
    assert status == 200 and "DOWN (fail_open)" in json.loads(body)["detail"]
    assert "shared session store" in b.logs() and "fail_closed" in b.logs()
    # Activity through A while Redis is away…
    time.sleep(0.3)
    assert alive(a, sid)
    seen = int(time.time() * 1000) - 400
    redis.start()  # same port, empty: Redis restarted without its data
    assert wait_for(lambda: metrics(a)["idlegate_redis_up"] == 1 and metrics(b)["idlegate_redis_up"] == 1, timeout=8)
    assert alive(b, sid)  # B serves again
    # …reaches Redis once it is back (resync): A's last activity is written, never older than it was.
    assert wait_for(lambda: int(redis.cmd("HGET", f"idlegate:s:{key_of(sid)}", "a") or 0) >= seen)
    b.terminate()
    events = [json.loads(line)["event"] for line in open(audit)]
    assert "store_down" in events and "store_up" in events
    shutil.rmtree(audit_dir, ignore_errors=True)


def test_a_client_pause_costs_no_hung_request(odoo, redis, start_idlegate):
    a = start_idlegate(odoo.url, config=config(redis, idle="1m"))
    sid, _ = login(a)
    fresh, _ = login(a)
    redis.cmd("CLIENT", "PAUSE", "2000")
    started = time.time()
    worst = 0.0
    while time.time() - started < 2.5:
        t = time.time()
        assert alive(a, sid)
        # An id A has not seen asks Redis (adoption): it waits at most the command timeout.
        status, _, _ = call_kw(a, "session_id=" + "ab" * 20)
        assert status == 200
        worst = max(worst, time.time() - t)
    assert worst < 1.8, worst  # a request held for the pause would take 2 s or more
    assert alive(a, fresh)


def test_a_restarted_replica_rejoins_with_the_shared_clocks(odoo, redis, start_idlegate):
    a = start_idlegate(odoo.url, config=config(redis))
    b = start_idlegate(odoo.url, config=config(redis))
    sid, _ = login(a)
    assert alive(b, sid)
    b.terminate()
    shutil.rmtree(b.state_dir, ignore_errors=True)  # and it lost its snapshot too
    os.makedirs(b.state_dir)
    b.start()
    assert alive(a, sid)  # the last activity, through A
    time.sleep(3.3)
    # B, back with nothing of its own, takes A's clock from Redis: 3.3 s idle, expired (alone it would
    # have adopted the id with a fresh clock and let it through).
    assert not alive(b, sid)


def test_no_raw_id_in_redis(odoo, redis, start_idlegate):
    a = start_idlegate(odoo.url, config=config(redis, idle="1m", extra=""))
    sids = [login(a)[0] for _ in range(3)]
    for s in sids:
        assert alive(a, s)
    time.sleep(0.5)
    a.admin("DELETE", f"/sessions/{key_of(sids[0])}")
    time.sleep(0.3)
    cursor, keys = "0", []
    while True:
        cursor, batch = redis.cmd("SCAN", cursor, "COUNT", "1000")
        keys += batch
        if cursor == "0":
            break
    assert keys and all(k.startswith("idlegate:") for k in keys)
    dump = " ".join(keys)
    for k in keys:
        t = redis.cmd("TYPE", k)
        if t == "hash":
            dump += " ".join(redis.cmd("HGETALL", k))
        elif t == "zset":
            dump += " ".join(redis.cmd("ZRANGE", k, 0, -1))
        else:
            dump += str(redis.cmd("GET", k))
    for s in sids:
        assert s not in dump and s[:42] not in dump
    assert f"idlegate:s:{key_of(sids[1])}" in keys


def test_replicas_with_different_secrets_are_told(odoo, redis, start_idlegate):
    start_idlegate(odoo.url, config=config(redis))
    other = start_idlegate(odoo.url, config=config(redis).replace(SECRET, "6f" * 32))
    assert wait_for(lambda: "use different session secrets" in other.logs())


def test_check_validates_the_store_and_never_prints_the_password(tmp_path):
    from conftest import BINARY
    good = tmp_path / "good.yaml"
    good.write_text('store: redis\nredis:\n  url: "redis://idlegate:hunter2@10.0.0.5:6379/1"\n  fail_mode: fail_closed\n')
    r = subprocess.run([BINARY, "check", "--config", str(good)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "hunter2" not in r.stdout and "redis://idlegate:***@10.0.0.5:6379/1" in r.stdout and 'fail_mode: "fail_closed"' in r.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text('store: redis\nredis:\n  url: "memcached://x"\n')
    r = subprocess.run([BINARY, "check", "--config", str(bad)], capture_output=True, text=True)
    assert r.returncode != 0 and "redis.url" in r.stderr and "memcached" in r.stderr


def test_rediss_with_an_acl_user_and_a_unix_socket_with_a_password(odoo, start_idlegate, tmp_path):
    import ssl
    from test_tls import PKI
    pki = PKI()
    cert, key = pki.leaf("redis", ["localhost"])
    ctx = ssl.create_default_context(cafile=pki.ca)
    port = free_port()
    secure = Redis(listen=["--port", "0", "--tls-port", str(port)],
                   extra=["--tls-cert-file", cert, "--tls-key-file", key, "--tls-ca-cert-file", pki.ca, "--tls-auth-clients", "no",
                          "--user", "idlegate", "on", ">s3cret", "~*", "&*", "+@all", "--user", "default", "off"],
                   connect=lambda: ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), 5), server_hostname="localhost"),
                   login=("idlegate", "s3cret"))
    sock = str(tmp_path / "redis.sock")
    local = Redis(listen=["--port", "0", "--unixsocket", sock, "--unixsocketperm", "700", "--requirepass", "pw:with@"],
                  connect=lambda: _unix(sock), login=("pw:with@",))
    try:
        a = start_idlegate(odoo.url, config=config(secure, idle="1m", url=f"rediss://idlegate:s3cret@localhost:{port}/0",
                                                   extra=f"  ca: {pki.ca}\n"))
        b = start_idlegate(odoo.url, config=config(local, idle="1m", url=f"unix://:pw%3Awith%40@{sock}?db=2"))
        for ig, redis, db in ((a, secure, 0), (b, local, 2)):
            assert metrics(ig)["idlegate_redis_up"] == 1, ig.logs()
            sid, _ = login(ig)
            assert alive(ig, sid)
            redis.cmd("SELECT", db)
            assert wait_for(lambda: any(k == f"idlegate:s:{key_of(sid)}" for k in _keys(redis, db)))
            assert "s3cret" not in ig.logs() and "pw:with" not in ig.logs()
        # A wrong password is a clear line, and the store is down (fail_open: still serving).
        c = start_idlegate(odoo.url, config=config(local, idle="1m", url=f"unix://:wrong@{sock}"))
        assert wait_for(lambda: "AUTH refused" in c.logs())
        assert metrics(c)["idlegate_redis_up"] == 0
    finally:
        secure.stop()
        local.stop()


def _unix(path):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(path)
    return s


def _keys(redis, db):
    """The keys of database `db` (a fresh connection each time: SELECT, then KEYS)."""
    with redis.connect() as s:
        f = s.makefile("rb")
        out = []
        for command in ([("AUTH", *redis.login)] if redis.login else []) + [("SELECT", str(db)), ("KEYS", "*")]:
            data = f"*{len(command)}\r\n".encode() + b"".join(f"${len(x.encode())}\r\n{x}\r\n".encode() for x in command)
            s.sendall(data)
            out = redis._read(f)
        return out


def test_a_websocket_on_one_replica_lives_while_the_clicks_go_through_another(redis, start_idlegate):
    """Round-robin balancing puts the web client's WebSocket on one replica and its clicks on others: the
    tunnel's replica asks Redis before it closes the socket with 4001, and closes it once the person
    really left."""
    from test_sessions import odoo_pair, open_websocket
    odoo, gevent = odoo_pair()
    try:
        a = start_idlegate(odoo.url, websocket_upstream=gevent.url, config=config(redis))
        b = start_idlegate(odoo.url, websocket_upstream=gevent.url, config=config(redis))
        sid = odoo.login()
        assert alive(b, sid)
        ws = open_websocket(b, sid)  # B holds the WebSocket
        closed_at = None
        started = time.time()
        while time.time() - started < 14 and closed_at is None:
            if time.time() - started < 4.5:
                assert alive(a, sid)  # clicks through A for 4.5 s: 1.5 windows by B's own clock
            ws.sock.settimeout(0.3)
            try:
                h = ws._take(2)
                payload = ws._take(h[1] & 0x7F)
                if h[0] & 0x0F == 8:
                    assert int.from_bytes(payload[:2], "big") == 4001
                    closed_at = time.time() - started
            except (socket.timeout, EOFError):
                pass
        # Open while the person worked through A; closed once idle past the window (3 s after 4.5 s).
        assert closed_at is not None and closed_at > 7.0, closed_at
        assert not alive(a, sid)
    finally:
        odoo.stop()
        gevent.stop()
