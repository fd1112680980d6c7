"""idlegate behind a real nginx (Debian's), configured as Odoo's deployment docs configure it."""
import json
import os
import shutil
import subprocess
import tempfile

import pytest

from conftest import Client, free_port, header, wait_port
from fake_odoo import ws_frame, ws_handshake

NGINX_CONF = """
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
  upstream idlegate {{ server 127.0.0.1:{idlegate}; }}
  server {{
    listen 127.0.0.1:{port};
    location /websocket {{
      proxy_pass http://idlegate;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header X-Forwarded-Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto https;
      proxy_set_header X-Real-IP $remote_addr;
    }}
    location / {{
      proxy_pass http://idlegate;
      proxy_redirect off;
      proxy_set_header X-Forwarded-Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto https;
      proxy_set_header X-Real-IP $remote_addr;
    }}
  }}
}}
"""


@pytest.fixture
def nginx_in_front(odoo, start_idlegate):
    if not shutil.which("nginx"):
        pytest.fail("nginx is not installed: run the README's test command, which installs it")
    ig = start_idlegate(odoo.url)
    d = tempfile.mkdtemp()
    port = free_port()
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(NGINX_CONF.format(dir=d, idlegate=ig.port, port=port))
    proc = subprocess.Popen(["nginx", "-c", os.path.join(d, "nginx.conf"), "-p", d],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    wait_port(port)
    yield port
    proc.terminate()
    proc.wait(5)
    shutil.rmtree(d, ignore_errors=True)


def test_nginx_forwarded_headers_reach_odoo(nginx_in_front, odoo):
    import socket
    c = Client(socket.create_connection(("127.0.0.1", nginx_in_front), 5))
    c.send(b"GET /headers HTTP/1.1\r\nHost: erp.example\r\nX-Forwarded-For: 198.51.100.1\r\n\r\n")
    status, _, body = c.response()
    got = {k.lower(): v for k, v in json.loads(body)["headers"]}
    assert status == 200
    # nginx appended the real peer; idlegate trusts nginx (loopback) and passes its values on.
    assert got["x-forwarded-for"] == "198.51.100.1, 127.0.0.1"
    assert got["x-forwarded-proto"] == "https"
    assert got["x-forwarded-host"] == "erp.example"


def test_websocket_through_nginx_and_idlegate(nginx_in_front, odoo):
    import socket
    c = Client(socket.create_connection(("127.0.0.1", nginx_in_front), 5))
    c.send(ws_handshake(host="erp.example", extra="Origin: http://erp.example\r\n"))
    status, headers, _ = c.response()
    assert status == 101
    c.send(ws_frame(1, b'{"event_name":"update_presence"}'))
    h = c._take(2)
    assert c._take(h[1] & 0x7F) == b'{"event_name":"update_presence"}'


@pytest.mark.parametrize("site", ["nginx-odoo16.conf", "nginx-odoo12-15.conf"])
def test_shipped_nginx_sites_pass_nginx_t(site):
    """The deploy/ server blocks, as shipped (TLS listen swapped for a plain one), load in a real nginx."""
    if not shutil.which("nginx"):
        pytest.fail("nginx is not installed: run the README's test command, which installs it")
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    with open(os.path.join(root, "deploy", site)) as f:
        text = f.read()
    assert "proxy_pass http://idlegate;" in text
    text = text.replace("listen 443 ssl;", f"listen 127.0.0.1:{free_port()};").replace("listen 80;", f"listen 127.0.0.1:{free_port()};")
    d = tempfile.mkdtemp()
    conf = f"""pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 64; }}
http {{
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  access_log off;
{text}
}}
"""
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(conf)
    r = subprocess.run(["nginx", "-t", "-c", os.path.join(d, "nginx.conf"), "-p", d], capture_output=True, text=True)
    shutil.rmtree(d, ignore_errors=True)
    assert r.returncode == 0, r.stderr
    assert "test is successful" in r.stderr
