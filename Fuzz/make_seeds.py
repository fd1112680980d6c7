#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora (Fuzz/corpus/<target>/): heads taken from real Odoo 18 exchanges
(shared/odoo/captures, with their session ids replaced by made-up ones), the codec's own test shapes,
the cookie-bypass patterns, real frames, a valid snapshot, real audit lines and the shipped configs.
The corpora are committed; run this again only to change them:  python3 Fuzz/make_seeds.py ../shared"""
import hashlib
import os
import re
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared")
SID = "Fz" * 42                       # an Odoo 18-shaped id (84 characters), made up
OTHER = "Qw" * 42
HEX = "0123456789abcdef" * 2 + "01234567"  # an Odoo 12-17-shaped id (40 hex)


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode("latin-1"))


def captures():
    """(request head, response head) bytes of each capture, CRLF restored, ids replaced."""
    d = os.path.join(SHARED, "odoo", "captures")
    out = []
    for name in sorted(os.listdir(d)):
        if not name[0].isdigit() or "frames" in name:
            continue
        text = open(os.path.join(d, name), encoding="latin-1").read()
        text = re.sub(r"[A-Za-z0-9_-]{84}", SID, text)
        parts = re.split(r"^### (REQUEST|RESPONSE)[^\n]*\n", text, flags=re.M)
        req = resp = None
        for kind, body in zip(parts[1::2], parts[2::2]):
            head = body.split("\n\n", 1)[0]
            lines = [l for l in head.split("\n") if not l.startswith("#")]
            raw = "\r\n".join(lines).strip("\r\n") + "\r\n\r\n"
            if kind == "REQUEST" and req is None:
                req = raw
            if kind == "RESPONSE" and resp is None:
                resp = raw
        out.append((name.split(".")[0], req, resp))
    return out


def main():
    cap = captures()
    for name, req, resp in cap:
        if req:
            write("request-head", name, b"\x05\x11\x40" + req.encode("latin-1"))
            cookie = re.search(r"^Cookie: (.*)$", req, flags=re.M)
            if cookie:
                write("cookie", name, cookie.group(1).strip())
        if resp:
            write("response-head", name, b"\x03\x21\x07" + resp.encode("latin-1"))
    shapes = {
        "te-cl": "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "obs-fold": "GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n Transfer-Encoding: chunked\r\n\r\n",
        "absolute-form": "GET http://odoo.test:8069/web?db=x HTTP/1.1\r\nHost: odoo.test\r\n\r\n",
        "http10": "GET /odoo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        "upgrade": "GET /websocket?version=18.0-5 HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        "legacy": f"POST /web/dataset/call_kw?session_id={HEX} HTTP/1.1\r\nHost: a\r\nX-Openerp-Session-Id: {HEX}\r\nX_Openerp_Session_Id: {HEX}\r\nContent-Length: 2\r\n\r\n{{}}",
        "expect": "POST /web/binary/upload HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n",
    }
    for name, raw in shapes.items():
        write("request-head", name, b"\x09\x00\x00" + raw.encode("latin-1"))
    for name, raw in {
        "chunked-trailer": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n",
        "101": "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
        "204-cl": "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
        "http10-close": "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n",
        "no-reason": "HTTP/1.1 200\r\nContent-Length: 2\r\n\r\n",
    }.items():
        write("response-head", name, b"\x02\x09\x00" + raw.encode("latin-1"))

    for name, body in {
        "simple": "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        "extensions": "5;ext=1;q=\"x\"\r\nhello\r\n0;last\r\n\r\n",
        "trailers": "3\r\nabc\r\n0\r\nX-Trailer: t\r\nY: u\r\n\r\n",
        "upper-hex": "A\r\n0123456789\r\n0\r\n\r\n",
        "leading-zeros": "0005\r\nhello\r\n0\r\n\r\n",
        "bare-lf": "5\nhello\n0\n\n",
        "too-big": "ffffffffffffffffff\r\n",
        "empty": "0\r\n\r\n",
    }.items():
        write("chunked", name, b"\x03\x07\x0b\x00" + body.encode("latin-1"))

    e, l = SID, OTHER
    for name, lines in {
        "plain": [f"tz=UTC; session_id={e}; cids=1-2; frontend_lang=en_US"],
        "odoo16-cids": [f"session_id={HEX}; cids=1,2; tz=Europe/Brussels"],
        "two-lines-quote": ["tz=UTC", f'x="; session_id={e}; "'],
        "rewrite-pairing": [f'x="abc; session_id="zz"; q="; session_id={e}; "'],
        "live-first": [f" session_id={l};frontend_lang=\"en_US", f'q=";session_id={e};"'],
        "gevent-only": ["tz=UTC", f"session_id={e}"],
        "quoted-octal": ['session_id="\\106' + e[1:] + '"'],
        "tossed": [f"session_id={l}; session_id={e}"],
        "padded": [f"session_id = {e} ; x=\"a\\\"b\""],
        "three-lines": ["a=1", "b=\"2", f"c=3\"; session_id={e}"],
    }.items():
        write("cookie", name, "\n".join(lines))

    def frame(opcode, payload, masked):
        head = bytes([0x80 | opcode])
        n = len(payload)
        m = 0x80 if masked else 0
        if n < 126:
            head += bytes([m | n])
        elif n < 65536:
            head += bytes([m | 126]) + struct.pack(">H", n)
        else:
            head += bytes([m | 127]) + struct.pack(">Q", n)
        return head + (b"\x01\x02\x03\x04" if masked else b"") + payload
    subscribe = b'{"event_name":"subscribe","data":{"channels":[],"last":0}}'
    write("websocket-frames", "session", b"\x05\x09\x11\x00" + frame(1, subscribe, True) + frame(9, b"", False) + frame(10, b"", True)
          + frame(8, b"\x03\xe9", True))
    write("websocket-frames", "lengths", b"\x02\x80\x82\x83" + frame(1, b"x" * 200, False) + frame(2, b"y" * 70000, True)[:300])
    write("websocket-frames", "fragmented", b"\x01\x02\x03\x04" + bytes([0x01, 0x83]) + b"\x00\x00\x00\x00abc" + bytes([0x80, 0x01]) + b"d")

    # A snapshot (version 2) without its magic and digest, as the snapshot target takes it: two records,
    # one ended, and a login name. The target writes the check key and the digest itself.
    records = struct.pack("<QQqqiiq", 1, 2, 1_764_000_000_000, 1_764_000_100_000, 900_000, 0, 0)
    records += struct.pack("<QQqqiiq", 3, 4, 1_764_000_000_000, 1_764_000_050_000, 180_000, 28_800_000, 1_764_000_300_000)
    logins = struct.pack("<I", 1) + struct.pack("<QQ", 1, 2) + bytes([5]) + b"admin"
    body = struct.pack("<H", 2) + b"\x00" * 16 + struct.pack("<qQ", 1_764_000_400_000, 2)
    length = 18 + len(body) + 8 + len(records) + len(logins) + 32
    body += struct.pack("<Q", length) + records + logins
    write("snapshot", "two-records", b"\x01" + body)
    body1 = struct.pack("<H", 1) + b"\x00" * 16 + struct.pack("<qQ", 1_764_000_400_000, 1) + records[:48]
    write("snapshot", "version-1", b"\x00" + body1)

    key = "d363c3a2375eeece6e283cdd384569dd"
    for name, line in {
        "expired": f'{{"ts":"2026-11-25T11:45:05.488Z","event":"expired","key":"{key}","login":"ana@example.com","client":"10.2.0.7","policy":"warehouse-terminals","mode":"enforce","method":"POST","path":"/web/dataset/call_kw/res.partner/read","idle_s":187,"window_s":180,"reason":"idle"}}',
        "started": f'{{"ts":"2026-11-25T11:40:00.000Z","event":"session_started","key":"{key}","client":"10.2.0.7","policy":"default","reason":"odoo"}}',
        "resumed": f'{{"ts":"2026-11-25T11:44:00.000Z","event":"activity_resumed","key":"{key}","login":"b\\u00e9a \\"x\\"\\\\","idle_s":95,"window_s":900}}',
        "dropped": '{"ts":"2026-11-25T11:46:00.000Z","event":"events_dropped","count":12}',
    }.items():
        write("audit-line", name, line)

    for d in ("config", os.path.join("Tests", "golden", "good"), os.path.join("Tests", "golden", "bad")):
        for name in sorted(os.listdir(os.path.join(ROOT, d))):
            if name.endswith(".yaml"):
                write("config", d.replace(os.sep, "-") + "-" + name, open(os.path.join(ROOT, d, name), "rb").read())


if __name__ == "__main__":
    main()
