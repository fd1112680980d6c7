"""The cookie decision against real werkzeug: 100,000 generated header sets of 1-3 Cookie lines, each
decided by idlegate's own code (the cookie-oracle executable) and read back by every werkzeug version
Odoo 12-19 runs on (0.16.1, 2.0.2, 2.2.2, 3.0.1; venvs made by scripts/test). For every set, every
version reads from the forwarded line exactly the session_id idlegate checked (or none, or idlegate
refused the request), the other cookies are a subset of what the client sent, and all versions read the
same pairs."""
import os
import subprocess

from conftest import ROOT
from cookie_cases import generate, to_hex_line

VERSIONS = ["0.16.1", "2.0.2", "2.2.2", "3.0.1"]
COUNT = int(os.environ.get("TEST_COOKIE_CASES", "100000"))
EXPIRED = "E" * 83 + "e"
LIVE = "L" * 83 + "l"


def oracle_binary():
    binary = os.environ.get("TEST_IDLEGATE_BINARY", os.path.join(ROOT, ".build", "debug", "idlegate"))
    return os.path.join(os.path.dirname(binary), "cookie-oracle")


def test_every_werkzeug_reads_the_checked_session_from_what_idlegate_forwards(tmp_path):
    cases = tmp_path / "cases"
    with open(cases, "w") as f:
        for lines in generate(COUNT, 20261201, EXPIRED, LIVE):
            f.write(to_hex_line(lines) + "\n")
    oracle = tmp_path / "oracle"
    with open(cases) as i, open(oracle, "w") as o:
        subprocess.run([oracle_binary()], stdin=i, stdout=o, check=True)

    runs = {}
    for v in VERSIONS:  # one process per version, side by side
        python = os.path.join(ROOT, ".build", f"werkzeug-{v}", "bin", "python")
        assert os.path.exists(python), f"no werkzeug {v} venv: run scripts/test, which makes it"
        out = tmp_path / f"pairs-{v}"
        runs[v] = (out, subprocess.Popen([python, os.path.join(ROOT, "Tests", "scenarios", "werkzeug_reads.py"), str(cases), str(oracle), str(out)],
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    reads = {}
    for v, (out, p) in runs.items():
        stdout, stderr = p.communicate()
        print(stdout.strip())
        assert p.returncode == 0, f"werkzeug {v}:\n{stdout}\n{stderr[:4000]}"
        assert f'"version": "{v}"' in stdout and f'"cases": {COUNT},' in stdout and '"violations": 0' in stdout
        reads[v] = out.read_text().splitlines()

    # Every version reads the same pairs from every forwarded line.
    base = reads[VERSIONS[0]]
    for v in VERSIONS[1:]:
        differ = [n for n, (a, b) in enumerate(zip(base, reads[v])) if a != b]
        assert not differ, f"werkzeug {VERSIONS[0]} and {v} read forwarded line {differ[0]} differently: {base[differ[0]]} vs {reads[v][differ[0]]}"
    # The generator reaches every branch: refusals, lines passed as sent, rebuilt ones, the checked id.
    kinds = {"refused": 0, "with session": 0}
    for line in base:
        if line == "refused":
            kinds["refused"] += 1
        elif '"session_id"' in line:
            kinds["with session"] += 1
    assert kinds["refused"] > COUNT // 100 and kinds["with session"] > COUNT // 20, kinds
