"""Scenario tests: the real idlegate binary on real sockets, in front of a fake Odoo."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from fake_odoo import FakeOdoo

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BINARY = os.environ.get("TEST_IDLEGATE_BINARY", os.path.join(ROOT, ".build", "debug", "idlegate"))


_handed_out = set()


def free_port():
    """A port no other process holds and this run has not handed out yet: the kernel may give a port it
    just gave back, and the proxy and admin listeners of one idlegate on one port share it (SO_REUSEPORT)."""
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def wait_port(port, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open")


class Idlegate:
    """One idlegate process with its own state directory and admin port. `state_dir`: reuse another
    instance's (restarts); `env`: extra environment variables."""

    def __init__(self, upstream, websocket_upstream=None, config="", extra=(), state_dir=None, env=None, port=None):
        self.upstream, self.websocket_upstream, self.extra, self.env = upstream, websocket_upstream, extra, env
        self.port = port or free_port()
        self.admin_port = free_port()
        self.own_state = state_dir is None
        self.state_dir = state_dir or tempfile.mkdtemp(prefix="idlegate-state-")
        self.config_file = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
        self.config_file.write(config)
        self.config_file.close()
        self.log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
        self.start()

    def start(self):
        cmd = [BINARY, "serve", "--config", self.config_file.name, "--listen", f"127.0.0.1:{self.port}",
               "--upstream", self.upstream, "--websocket-upstream", self.websocket_upstream or self.upstream, "--threads", "1",
               "--state-dir", self.state_dir, "--admin-listen", f"127.0.0.1:{self.admin_port}", *self.extra]
        env = {k: v for k, v in os.environ.items() if not k.startswith("IDLEGATE_")}
        env.update(self.env or {})
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        wait_port(self.port)
        wait_port(self.admin_port)

    def write_config(self, text):
        with open(self.config_file.name, "w") as f:
            f.write(text)

    def admin(self, method, path, token=None, timeout=5):
        """One admin API request: (status, headers dict, body bytes)."""
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=timeout)
        c.request(method, path, headers={"Authorization": f"Bearer {token}"} if token else {})
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.port), 5)
        s.settimeout(5)
        return s

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def logs(self):
        with open(self.log.name) as f:
            return f.read()

    def terminate(self):
        """SIGTERM and wait (a clean shutdown, which writes the last snapshot)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def stop(self):
        self.terminate()
        if os.path.exists(self.config_file.name):
            os.unlink(self.config_file.name)
        if self.own_state:
            shutil.rmtree(self.state_dir, ignore_errors=True)


@pytest.fixture
def odoo():
    o = FakeOdoo("threaded")
    yield o
    o.stop()


@pytest.fixture
def prefork_odoo():
    o = FakeOdoo("prefork")
    yield o
    o.stop()


@pytest.fixture
def start_idlegate():
    started = []

    def start(upstream, **kw):
        ig = Idlegate(upstream, **kw)
        started.append(ig)
        return ig

    yield start
    for ig in started:
        ig.stop()


def recv_all(s, timeout=5):
    """Reads until the peer closes (or the timeout)."""
    s.settimeout(timeout)
    out = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
    except socket.timeout:
        pass
    except ConnectionResetError:
        pass
    return out


class Client:
    """A raw HTTP/1.1 client that keeps unread bytes between responses (for keep-alive and pipelining)."""

    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        d = self.sock.recv(65536)
        if not d:
            raise EOFError(f"closed; unread {self.buf[:200]!r}")
        self.buf += d

    def _take(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def response(self, method="GET"):
        """Reads one response; returns (status, headers as a list of pairs, body)."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = [tuple(x.strip() for x in l.split(":", 1)) for l in lines[1:]]
        h = {k.lower(): v for k, v in headers}
        if method == "HEAD" or status in (101, 204, 304) or status < 200:
            return status, headers, b""
        if "content-length" in h:
            return status, headers, self._take(int(h["content-length"]))
        if h.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while self._line() != b"":
                        pass
                    return status, headers, body
                body += self._take(size)
                assert self._take(2) == b"\r\n"
        body = self.buf + recv_all(self.sock)
        self.buf = b""
        return status, headers, body

    def ws_frame(self):
        """Reads one unmasked WebSocket frame (as a server sends them): (opcode, payload)."""
        h = self._take(2)
        n = h[1] & 0x7F
        if n == 126:
            n = int.from_bytes(self._take(2), "big")
        elif n == 127:
            n = int.from_bytes(self._take(8), "big")
        return h[0] & 0x0F, self._take(n)

    def closed(self, timeout=5):
        """Whether the server closed the connection (reads EOF, or a reset) within the timeout."""
        self.sock.settimeout(timeout)
        try:
            while True:
                d = self.sock.recv(65536)
                if not d:
                    return True
                self.buf += d
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True


def header(headers, name):
    return [v for k, v in headers if k.lower() == name.lower()]
