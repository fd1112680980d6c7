"""The proxy core, end to end: the real binary, real sockets, a fake Odoo behind it."""
import json
import os
import signal
import socket
import threading
import time

import pytest

from conftest import Client, header, recv_all
from fake_odoo import ws_frame, ws_handshake

GET = b"GET /web/webclient/version_info HTTP/1.1\r\nHost: odoo.test\r\n\r\n"

# Every request shape that lets two parsers disagree on message boundaries, with the status idlegate
# answers. Each is followed by a pipelined tail: if any byte reached Odoo, the test fails.
SMUGGLING = [
    ("te-and-cl", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("cl-duplicate", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd", 400),
    ("cl-conflict", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd", 400),
    ("cl-list", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4, 4\r\n\r\nabcd", 400),
    ("te-gzip", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
    ("te-identity", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", 501),
    ("te-http10", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-space-colon", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400),
    ("no-host", b"GET / HTTP/1.1\r\nX: y\r\n\r\n", 400),
    ("two-hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("obs-fold", b"GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n Transfer-Encoding: chunked\r\n\r\n", 400),
    ("bare-lf", b"GET / HTTP/1.1\nHost: a\n\n", 400),
    ("bare-cr", b"GET / HTTP/1.1\r\nHost: a\r\nX: y\rZ: w\r\n\r\n", 400),
    ("ctl-in-value", b"GET / HTTP/1.1\r\nHost: a\r\nX: \x01\r\n\r\n", 400),
    ("ctl-in-name", b"GET / HTTP/1.1\r\nHost: a\r\nX\x7fY: z\r\n\r\n", 400),
    ("nul-in-value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400),
    ("bad-chunk-size", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-ext-lf", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a\nb\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-bare-lf", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n", 400),
    ("version-2", b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
]
TAIL = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"


@pytest.mark.parametrize("name,raw,status", SMUGGLING, ids=[s[0] for s in SMUGGLING])
def test_refused_shapes_reach_odoo_as_not_one_byte(odoo, start_idlegate, name, raw, status):
    ig = start_idlegate(odoo.url)
    c = Client(ig.connect())
    c.send(raw + TAIL)
    got, headers, _ = c.response()
    assert got == status
    assert header(headers, "connection") == ["close"]
    assert c.closed()
    # Chunk-body errors are found only once the body streams, so their head may have gone out; for
    # every other shape, nothing at all may reach Odoo.
    if name.startswith(("bad-chunk", "chunk-")):
        assert b"/smuggled" not in odoo.received
    else:
        assert odoo.received == b""


def test_keep_alive_and_pipelining_answer_in_order(odoo, start_idlegate):
    ig = start_idlegate(odoo.url)
    c = Client(ig.connect())
    for i in range(3):
        c.send(f"GET /headers?n={i} HTTP/1.1\r\nHost: odoo.test\r\n\r\n".encode())
        status, _, body = c.response()
        assert status == 200 and json.loads(body)["target"] == f"/headers?n={i}"
    c.send(b"".join(f"GET /headers?p={i} HTTP/1.1\r\nHost: odoo.test\r\n\r\n".encode() for i in range(5))
           + b"POST /echo HTTP/1.1\r\nHost: odoo.test\r\nContent-Length: 5\r\n\r\nhello")
    for i in range(5):
        status, _, body = c.response()
        assert json.loads(body)["target"] == f"/headers?p={i}"
    assert c.response()[2] == b"hello"
    # One upstream connection served all of it (pooled keep-alive towards a threaded Odoo).
    assert odoo.connections == 1


def test_http10_odoo_gets_a_connection_per_request(prefork_odoo, start_idlegate):
    ig = start_idlegate(prefork_odoo.url)
    c = Client(ig.connect())
    for _ in range(3):
        c.send(GET)
        status, headers, body = c.response()
        assert status == 200 and b"jsonrpc" in body
        assert header(headers, "connection") == []  # the client's keep-alive is unaffected
    assert prefork_odoo.connections == 3


def test_close_delimited_response_is_rechunked_for_http11(prefork_odoo, start_idlegate):
    ig = start_idlegate(prefork_odoo.url)
    c = Client(ig.connect())
    c.send(b"GET /close-delimited HTTP/1.1\r\nHost: a\r\n\r\n")
    status, headers, body = c.response()
    assert header(headers, "transfer-encoding") == ["chunked"]
    assert body == b"until the end"
    c.send(GET)  # still usable
    assert c.response()[0] == 200


def test_close_delimited_response_to_http10_client(prefork_odoo, start_idlegate):
    ig = start_idlegate(prefork_odoo.url)
    s = ig.connect()
    s.sendall(b"GET /close-delimited HTTP/1.0\r\n\r\n")
    data = recv_all(s)
    assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"\r\n\r\nuntil the end")
    assert b"chunked" not in data.lower()


def test_chunked_both_ways(odoo, start_idlegate):
    ig = start_idlegate(odoo.url)
    c = Client(ig.connect())
    c.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"3;ext=1\r\nabc\r\n4\r\ndefg\r\n0\r\nTrailer: x\r\n\r\n")
    status, headers, body = c.response()
    assert status == 200 and body == b"abcdefg"
    forwarded = odoo.requests[-1]
    assert forwarded.header("transfer-encoding") == "chunked" and forwarded.body == b"abcdefg"
    assert b"ext=1" not in odoo.received  # extensions are not passed on
    c.send(b"GET /chunked HTTP/1.1\r\nHost: a\r\n\r\n")
    status, headers, body = c.response()
    assert header(headers, "transfer-encoding") == ["chunked"]
    assert body == b"hello world"


def test_expect_100_continue(odoo, start_idlegate):
    ig = start_idlegate(odoo.url)
    c = Client(ig.connect())
    c.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    status, _, _ = c.response()
    assert status == 100
    c.send(b"hello")
    assert c.response()[2] == b"hello"
    assert odoo.requests[-1].header("expect") is None


def test_body_over_the_limit_is_413_before_any_byte_moves(odoo, start_idlegate):
    ig = start_idlegate(odoo.url, config="limits:\n  body: 1KiB\n")
    c = Client(ig.connect())
    c.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 2048\r\n\r\n")
    assert c.response()[0] == 413
    c2 = Client(ig.connect())
    c2.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n" + b"x" * 2048 + b"\r\n0\r\n\r\n")
    assert c2.response()[0] == 413
    assert odoo.requests == [] or all(r.body != b"x" * 2048 for r in odoo.requests)


def test_limits_414_and_431(odoo, start_idlegate):
    ig = start_idlegate(odoo.url)
    c = Client(ig.connect())
    c.send(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    assert c.response()[0] == 414
    c = Client(ig.connect())
    c.send(b"GET / HTTP/1.1\r\nHost: a\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(150)) + b"\r\n")
    assert c.response()[0] == 431
    assert odoo.received == b""


def test_hop_by_hop_and_forwarded_headers_from_a_trusted_proxy(odoo, start_idlegate):
    ig = start_idlegate(odoo.url)  # loopback is trusted by default: the nginx in front
    c = Client(ig.connect())
    c.send(b"GET /headers HTTP/1.1\r\nHost: odoo.test\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\n"
           b"Keep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Authorization: Basic x\r\n"
           b"X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: erp.example\r\n\r\n")
    got = {k.lower(): v for k, v in json.loads(c.response()[2])["headers"]}
    for gone in ("x-secret", "keep-alive", "te", "proxy-authorization"):
        assert gone not in got
    assert got["x-forwarded-for"] == "203.0.113.7"
    assert got["x-forwarded-proto"] == "https"
    assert got["x-forwarded-host"] == "erp.example"
    assert got["host"] == "odoo.test"


def test_forwarded_headers_from_an_untrusted_peer_are_replaced(odoo, start_idlegate):
    ig = start_idlegate(odoo.url, config="trusted_proxies: [10.99.0.0/16]\n")
    c = Client(ig.connect())
    c.send(b"GET /headers HTTP/1.1\r\nHost: odoo.test\r\nX-Forwarded-For: 1.2.3.4\r\n"
           b"X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.example\r\n\r\n")
    headers = json.loads(c.response()[2])["headers"]
    assert [v for k, v in headers if k.lower() == "x-forwarded-for"] == ["127.0.0.1"]
    assert [v for k, v in headers if k.lower() == "x-forwarded-proto"] == ["http"]
    assert [v for k, v in headers if k.lower() == "x-forwarded-host"] == ["odoo.test"]


def test_large_body_streams_to_a_slow_reader_in_bounded_memory(odoo, start_idlegate):
    ig = start_idlegate(odoo.url)
    size = 50 << 20
    s = ig.connect()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
    s.sendall(f"GET /big?n={size} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
    time.sleep(0.3)
    base = ig.rss_kib()
    peak = base
    got = 0
    s.settimeout(10)
    while got < size:
        d = s.recv(256 << 10)
        assert d
        got += len(d)
        if got % (2 << 20) < len(d):
            peak = max(peak, ig.rss_kib())
            time.sleep(0.01)  # read slowly
    peak = max(peak, ig.rss_kib())
    assert got >= size
    assert peak - base <= 16 * 1024, f"RSS grew by {peak - base} KiB"


def test_large_upload_streams_to_odoo(odoo, start_idlegate):
    ig = start_idlegate(odoo.url)
    c = Client(ig.connect())
    body = os.urandom(8 << 20)
    c.send(f"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: {len(body)}\r\n\r\n".encode())
    threading.Thread(target=c.sock.sendall, args=(body,), daemon=True).start()
    status, _, echoed = c.response()
    assert status == 200 and echoed == body


def test_websocket_tunnel_echo(odoo, start_idlegate):
    ig = start_idlegate(odoo.url)
    c = Client(ig.connect())
    c.send(ws_handshake(extra="Origin: http://a\r\n"))
    status, headers, _ = c.response()
    assert status == 101
    assert header(headers, "sec-websocket-accept") == ["s3pPLMBiTxaQ9kYGzzhZRbK+xOo="]
    assert header(headers, "upgrade") == ["websocket"]
    for payload in (b'{"event_name":"subscribe"}', b"x" * 70000):
        c.send(ws_frame(1, payload))
        assert c.ws_frame() == (1, payload)


def test_upgrade_refused_with_426_opens_no_tunnel(odoo, start_idlegate):
    ig = start_idlegate(odoo.url)
    c = Client(ig.connect())
    c.send(ws_handshake("/websocket-refused"))
    status, _, body = c.response()
    assert status == 426 and body == b"upgrade refused"
    before = len(odoo.received)
    c.send(ws_frame(1, b"not a tunnel"))
    assert c.closed()
    assert b"not a tunnel" not in odoo.received[before:]


def test_h2c_upgrade_is_not_tunnelled(odoo, start_idlegate):
    ig = start_idlegate(odoo.url)
    c = Client(ig.connect())
    c.send(b"GET /headers HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n")
    headers = {k.lower() for k, v in json.loads(c.response()[2])["headers"]}
    assert "upgrade" not in headers and "http2-settings" not in headers


def test_websocket_paths_go_to_the_websocket_upstream(odoo, start_idlegate):
    from fake_odoo import FakeOdoo
    gevent = FakeOdoo("threaded", server="gevent")
    try:
        ig = start_idlegate(odoo.url, websocket_upstream=gevent.url)
        c = Client(ig.connect())
        c.send(b"GET /longpolling/poll HTTP/1.1\r\nHost: a\r\n\r\n")
        c.response()
        c.send(b"GET /web/longpolling HTTP/1.1\r\nHost: a\r\n\r\n")
        c.response()
        assert [r.path for r in gevent.requests] == ["/longpolling/poll"]
        assert [r.path for r in odoo.requests] == ["/web/longpolling"]
    finally:
        gevent.stop()


def test_upstream_down_is_502(start_idlegate):
    from conftest import free_port
    ig = start_idlegate(f"http://127.0.0.1:{free_port()}")
    c = Client(ig.connect())
    c.send(GET)
    status, headers, body = c.response()
    assert status == 502 and body == b"502 Bad Gateway\n"
    assert "502" in ig.logs()


def test_a_refused_upstream_closes_the_client_at_once(start_idlegate):
    """Regression: after a complete 502 with Connection: close the client was held open until the
    connect deadline (5.1 s with the defaults); the stream now ends with the answer, as nginx's does."""
    from conftest import free_port
    ig = start_idlegate(f"http://127.0.0.1:{free_port()}")
    s = ig.connect()
    started = time.monotonic()
    s.sendall(GET)
    data = recv_all(s, timeout=4)
    assert data.startswith(b"HTTP/1.1 502 ") and data.endswith(b"502 Bad Gateway\n")
    assert time.monotonic() - started < 1.0


def test_malformed_upstream_response_is_502(odoo, start_idlegate):
    ig = start_idlegate(odoo.url)
    c = Client(ig.connect())
    c.send(b"GET /smuggle-response HTTP/1.1\r\nHost: a\r\n\r\n")
    assert c.response()[0] == 502


def test_silent_upstream_is_504(odoo, start_idlegate):
    ig = start_idlegate(odoo.url, config="timeouts:\n  upstream_response: 1s\n")
    c = Client(ig.connect())
    t0 = time.time()
    c.send(b"GET /silent HTTP/1.1\r\nHost: a\r\n\r\n")
    status, _, body = c.response()
    assert status == 504 and body == b"504 Gateway Timeout\n"
    assert time.time() - t0 < 4


def test_slowloris_is_dropped_on_time(odoo, start_idlegate):
    ig = start_idlegate(odoo.url, config="timeouts:\n  client_header: 1s\n")
    s = ig.connect()
    t0 = time.time()
    for b in b"GET / HTTP/1.1\r\nHos":
        s.sendall(bytes([b]))
        time.sleep(0.02)
    data = recv_all(s, timeout=5)
    elapsed = time.time() - t0
    assert data.startswith(b"HTTP/1.1 408 ")
    assert elapsed < 3
    assert odoo.received == b""


def test_idle_keepalive_connection_is_closed(odoo, start_idlegate):
    ig = start_idlegate(odoo.url, config="timeouts:\n  client_idle: 1s\n")
    c = Client(ig.connect())
    c.send(GET)
    c.response()
    t0 = time.time()
    assert c.closed(timeout=4)
    assert time.time() - t0 < 3


def test_sigterm_lets_the_request_in_flight_complete(odoo, start_idlegate):
    ig = start_idlegate(odoo.url)
    c = Client(ig.connect())
    c.send(b"GET /slow?s=1 HTTP/1.1\r\nHost: a\r\n\r\n")
    time.sleep(0.3)
    ig.proc.send_signal(signal.SIGTERM)
    status, headers, body = c.response()
    assert status == 200 and body == b'{"slow":true}'
    assert header(headers, "connection") == ["close"]
    assert ig.proc.wait(10) == 0
    with pytest.raises(OSError):
        ig.connect()


def test_ipv6_listener(odoo, start_idlegate):
    from conftest import free_port
    port = free_port()
    ig = start_idlegate(odoo.url, extra=["--listen", f"[::1]:{port}"])
    s = socket.create_connection(("::1", port), 5)
    c = Client(s)
    c.send(GET)
    assert c.response()[0] == 200


def test_garbage_never_crashes(odoo, start_idlegate):
    ig = start_idlegate(odoo.url)
    import random
    rnd = random.Random(7)
    for _ in range(200):
        s = ig.connect()
        junk = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 400)))
        try:
            s.sendall(junk + b"\r\n\r\n")
            recv_all(s, timeout=1)
        except OSError:
            pass
        s.close()
    c = Client(ig.connect())
    c.send(GET)
    assert c.response()[0] == 200
    assert ig.proc.poll() is None


def test_slow_but_steady_reader_is_not_cut(odoo, start_idlegate):
    """Regression: the client timeout must count the reader's progress, not only idlegate's reads."""
    ig = start_idlegate(odoo.url, config="timeouts:\n  client_body: 1s\n")
    s = ig.connect()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 10)
    size = 8 << 20
    s.sendall(f"GET /big?n={size} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
    got, t0 = 0, time.time()
    s.settimeout(5)
    while got < size:
        d = s.recv(64 << 10)
        assert d, f"cut after {got} bytes"
        got += len(d)
        # Paced by progress, whatever sizes the reads come in: 8 MiB over 2.5 s, never stalled.
        ahead = t0 + 2.5 * got / size - time.time()
        if ahead > 0:
            time.sleep(ahead)
    assert time.time() - t0 > 1.5  # it really took longer than the timeout


def test_response_tail_queued_after_odoo_finished_is_delivered(odoo, start_idlegate):
    """Regression: when Odoo's last bytes could not all go to a full client socket, the rest was left
    queued after the exchange ended and never flushed (the client stalled a few KiB short)."""
    ig = start_idlegate(odoo.url)
    for size in range(1_000_000, 12_000_000, 733_333):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 10)
        s.connect(("127.0.0.1", ig.port))
        s.settimeout(5)
        c = Client(s)
        c.send(f"GET /big?n={size} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
        time.sleep(0.3)  # Odoo finishes; idlegate holds the tail the client cannot take yet
        status, _, body = c.response()
        assert status == 200 and len(body) == size
        c.send(GET)  # and the connection goes on
        assert c.response()[0] == 200


def test_out_of_file_descriptors_is_survived(odoo):
    """More clients than descriptors: accept pauses instead of spinning, and service resumes once
    connections close (regression guard for a level-triggered listener on EMFILE)."""
    import resource
    import subprocess
    from conftest import BINARY, free_port, wait_port

    port = free_port()

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))

    log = open(os.devnull, "w")
    proc = subprocess.Popen([BINARY, "serve", "--listen", f"127.0.0.1:{port}", "--upstream", odoo.url,
                             "--threads", "1", "--log-level", "error"], stdout=log, stderr=log, preexec_fn=low_limit,
                            cwd="/tmp")
    try:
        wait_port(port)
        held = []
        for _ in range(80):  # far past what idlegate may hold
            try:
                held.append(socket.create_connection(("127.0.0.1", port), 2))
            except OSError:
                break
        time.sleep(1)
        cpu0 = sum(map(int, open(f"/proc/{proc.pid}/stat").read().split()[13:15]))
        time.sleep(1)
        cpu1 = sum(map(int, open(f"/proc/{proc.pid}/stat").read().split()[13:15]))
        assert cpu1 - cpu0 < 50, "idlegate spins while out of descriptors"
        for s in held:
            s.close()
        time.sleep(1)
        c = Client(socket.create_connection(("127.0.0.1", port), 5))
        c.send(GET)
        assert c.response()[0] == 200
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(10)


def test_http10_request_without_host_is_forwarded_with_one(odoo, start_idlegate):
    """Found by the request-head fuzzer's round trip: idlegate forwards as HTTP/1.1, which requires a
    Host (RFC 9112 §3.2); an HTTP/1.0 request may come without one. Odoo's HTTP port gets its own."""
    ig = start_idlegate(odoo.url)
    c = Client(ig.connect())
    c.send(b"GET /headers HTTP/1.0\r\n\r\n")
    status, _, body = c.response()
    assert status == 200
    got = json.loads(body)
    assert got["version"] == "HTTP/1.1"
    assert [v for k, v in got["headers"] if k.lower() == "host"] == [f"127.0.0.1:{odoo.port}"]
