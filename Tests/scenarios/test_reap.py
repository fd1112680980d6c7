"""`idlegate reap` on synthetic Odoo session stores (real-format JSON session files), and the reaper
scheduled inside serve, cross-checked with the sessions idlegate ended."""
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import BINARY
from test_operations import metrics, session_key
from test_sessions import call_kw, expired, login

HOUR = 3600
DAY = 24 * HOUR


def odoo18_session(uid):
    """An Odoo 18 session file's content (../shared/odoo/FACTS.md)."""
    return json.dumps({"uid": uid, "login": "admin" if uid else None, "db": "odoo", "context": {"lang": "en_US"},
                       "session_token": "a1b2" if uid else None, "debug": "", "_trace": [{"last_activity": time.time()}]})


def put(root, sid, content, age, legacy=False):
    if legacy:
        path = os.path.join(root, f"werkzeug_{sid}.sess")
    else:
        os.makedirs(os.path.join(root, sid[:2]), exist_ok=True)
        path = os.path.join(root, sid[:2], sid)
    with open(path, "w") as f:
        f.write(content)
    t = time.time() - age
    os.utime(path, (t, t))
    return path


def reap(*args, env=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("IDLEGATE_")}
    return subprocess.run([BINARY, "reap", *args], capture_output=True, text=True, env=e, timeout=120)


@pytest.fixture
def store():
    d = tempfile.mkdtemp(prefix="odoo-data-")
    root = os.path.join(d, "sessions")
    os.makedirs(root)
    yield root
    shutil.rmtree(d, ignore_errors=True)


def sid84(n):
    import base64
    import hashlib
    return base64.urlsafe_b64encode(hashlib.sha512(str(n).encode()).digest() + hashlib.sha256(str(n).encode()).digest()[:1]).decode()[:84]


def test_dry_run_lists_by_key_then_reap_deletes(store, tmp_path):
    old = put(store, sid84(1), odoo18_session(2), 8 * DAY)
    anon = put(store, sid84(2), odoo18_session(None), 2 * HOUR)
    live = put(store, sid84(3), odoo18_session(2), 60)
    r = reap("--sessions", store, "--state-dir", str(tmp_path), "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "would delete 2: 1 idle, 1 anonymous, 0 ended" in r.stdout
    assert sid84(1) not in r.stdout + r.stderr and sid84(2) not in r.stdout + r.stderr
    assert os.path.exists(old) and os.path.exists(anon)
    assert "no session key" in r.stderr  # no idlegate state here: mtime rules only, said so
    r = reap("--sessions", store, "--state-dir", str(tmp_path), "--json")
    s = json.loads(r.stdout)
    assert r.returncode == 0 and s["deleted"] == {"idle": 1, "anonymous": 1, "ended": 0} and s["scanned"] == 3
    assert not os.path.exists(old) and not os.path.exists(anon) and os.path.exists(live)


def test_legacy_layout_and_thresholds(store, tmp_path):
    hexsid = lambda n: format(n, "040x")
    old = put(store, hexsid(1), "(dp0\nS'uid'\np1\nNs.", 3 * HOUR, legacy=True)  # pickle: mtime rule only
    young = put(store, hexsid(2), "(dp0\nS'uid'\np1\nNs.", 30 * 60, legacy=True)
    r = reap("--sessions", store, "--state-dir", str(tmp_path), "--idle", "2h", "--anonymous-idle", "10m", "--json")
    s = json.loads(r.stdout)
    assert s["deleted"]["idle"] == 1 and s["deleted"]["anonymous"] == 0
    assert not os.path.exists(old) and os.path.exists(young)


def test_files_of_sessions_idlegate_expired_go_at_once(prefork_odoo, start_idlegate, store):
    ig = start_idlegate(prefork_odoo.url, config="idle_timeout: 1s\n")
    sid, _ = login(ig)
    other, _ = login(ig)
    time.sleep(1.5)
    assert expired(call_kw(ig, f"session_id={sid}")[2])
    ig.terminate()  # writes the snapshot
    mine = put(store, sid, odoo18_session(2), 5)
    theirs = put(store, other, odoo18_session(2), 5)
    r = reap("--sessions", store, "--state-dir", ig.state_dir, "--dry-run", "--json")
    s = json.loads(r.stdout)
    assert s["would_delete"] == [{"key": session_key(ig, sid), "reason": "ended"}]
    r = reap("--sessions", store, "--state-dir", ig.state_dir)
    assert r.returncode == 0 and "1 ended" in r.stdout, r.stdout + r.stderr
    assert not os.path.exists(mine) and os.path.exists(theirs)


def test_unreadable_file_symlinks_and_junk(store, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to run the reaper as another user")
    secret = put(store, sid84(5), odoo18_session(2), 2 * HOUR)
    os.chmod(secret, 0)
    anon = put(store, sid84(6), odoo18_session(None), 2 * HOUR)
    outside = tmp_path / "outside"
    outside.write_text("precious")
    os.utime(outside, (0, 0))
    os.makedirs(os.path.join(store, sid84(7)[:2]), exist_ok=True)
    os.symlink(outside, os.path.join(store, sid84(7)[:2], sid84(7)))  # a session-named symlink, out of the store
    junk = os.path.join(store, sid84(5)[:2], "notes.txt")
    with open(junk, "w") as f:
        f.write("x")
    os.utime(junk, (0, 0))
    for dirpath, dirnames, _ in os.walk(os.path.dirname(store)):
        os.chmod(dirpath, 0o777)
    # A copy of the binary nobody can reach, wherever the checkout lives (/root is 0700).
    exe_dir = tempfile.mkdtemp(prefix="idlegate-bin-")
    os.chmod(exe_dir, 0o755)
    exe = os.path.join(exe_dir, "idlegate")
    shutil.copy(BINARY, exe)
    os.chmod(exe, 0o755)
    # A state directory nobody can see does not exist (a missing key is "no key"; an unreadable one is
    # an error, see below).
    r = subprocess.run(["runuser", "-u", "nobody", "--", exe, "reap", "--sessions", store, "--state-dir", os.path.join(exe_dir, "none"), "--json"],
                       capture_output=True, text=True, timeout=60)
    shutil.rmtree(exe_dir, ignore_errors=True)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["unreadable"] == 1 and s["deleted"]["anonymous"] == 1
    assert os.path.exists(secret) and not os.path.exists(anon)  # unreadable, within the idle rule: kept
    assert outside.read_text() == "precious" and os.path.exists(junk)
    assert os.path.islink(os.path.join(store, sid84(7)[:2], sid84(7)))
    assert s["skipped"] == 2


def test_a_corrupt_key_file_is_an_error_not_no_key(store, tmp_path):
    """Regression: the key file was read with errors swallowed, so a corrupt or unreadable one was
    reported as "no key" and the reap went on with one-off keys."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "idlegate.key").write_text("not a secret\n")
    r = reap("--sessions", store, "--state-dir", str(state), "--dry-run")
    assert r.returncode == 1
    assert "not a hex secret" in r.stderr and "idlegate.key" in r.stderr
    (state / "idlegate.key").write_text("ab" * 32 + "\n")
    os.chmod(state / "idlegate.key", 0)
    if os.geteuid() != 0:
        r = reap("--sessions", store, "--state-dir", str(state), "--dry-run")
        assert r.returncode == 1 and "cannot read" in r.stderr
    os.chmod(state / "idlegate.key", 0o600)
    r = reap("--sessions", store, "--state-dir", str(state), "--dry-run")
    assert r.returncode == 0, r.stderr


def test_refuses_a_directory_that_is_not_odoos(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0")
    os.utime(tmp_path / "etc" / "passwd", (0, 0))
    r = reap("--sessions", str(tmp_path / "etc"), "--state-dir", str(tmp_path / "s"))
    assert r.returncode == 1 and "does not look like an Odoo sessions directory" in r.stderr
    assert (tmp_path / "etc" / "passwd").exists()


def test_sessions_in_use_during_the_scan_survive(store, tmp_path):
    """A writer keeps touching 500 stale-looking sessions while 20 000 files are scanned: none of those
    500 goes, whatever the timing."""
    for n in range(20000):
        put(store, sid84(n), odoo18_session(2 if n % 3 else None), 8 * DAY)
    active = [os.path.join(store, sid84(n)[:2], sid84(n)) for n in range(0, 20000, 40)]
    stop = threading.Event()

    def writer():
        while not stop.is_set():
            for p in active:
                os.utime(p)  # Odoo saving a session it is using

    t = threading.Thread(target=writer)
    t.start()
    try:
        r = reap("--sessions", store, "--state-dir", str(tmp_path), "--json")
    finally:
        stop.set()
        t.join()
    s = json.loads(r.stdout)
    assert r.returncode == 0
    assert all(os.path.exists(p) for p in active)
    assert s["deleted"]["idle"] + s["deleted"]["anonymous"] + s["kept"] + s["touched_during_scan"] == 20000
    assert s["deleted"]["idle"] + s["deleted"]["anonymous"] >= 20000 - len(active)


def test_scheduled_in_serve_with_metrics_and_audit(prefork_odoo, start_idlegate, store, tmp_path):
    audit = tmp_path / "audit.jsonl"
    old = put(store, sid84(1), odoo18_session(2), 8 * DAY)
    anon = put(store, sid84(2), odoo18_session(None), 2 * HOUR)
    ig = start_idlegate(prefork_odoo.url, config=f"reap:\n  sessions_dir: {store}\n", extra=("--audit-log", str(audit)))
    end = time.time() + 20
    while time.time() < end and (os.path.exists(old) or os.path.exists(anon)):
        time.sleep(0.2)
    assert not os.path.exists(old) and not os.path.exists(anon)
    time.sleep(0.3)
    m = metrics(ig)
    assert m['idlegate_reaped_session_files_total{reason="idle"}'] == 1
    assert m['idlegate_reaped_session_files_total{reason="anonymous"}'] == 1
    events = [json.loads(l) for l in audit.read_text().splitlines()]
    reaped = [e for e in events if e["event"] == "sessions_reaped"]
    assert reaped and reaped[0]["count"] == 2
    assert "reaped 2 of 2 Odoo session files" in ig.logs()
