"""Run with one werkzeug version's Python: checks idlegate's cookie decisions (the oracle's output) the
way that version reads them. Usage: python werkzeug_reads.py CASES ORACLE PAIRS_OUT

CASES: one header set a line (cookie_cases.to_hex_line); ORACLE: cookie-oracle's answer to each.
Writes, for each case, what this version reads from the forwarded line (so the caller can compare
versions with each other), and prints a JSON summary; exits 1 listing the first violations."""
import json
import sys

from importlib.metadata import version
from werkzeug.datastructures import MultiDict
from werkzeug.http import parse_cookie
from werkzeug.test import create_environ
from werkzeug.wrappers import Request

sys.path.insert(0, __import__("os").path.dirname(__file__))
from cookie_cases import valid  # noqa: E402

VERSION = version("werkzeug")
LEGACY = VERSION.startswith("0.")  # 0.16: a dict (last wins), attribute-named cookies dropped
TWO_X = VERSION.startswith("2.")   # the reader whose "first session_id" FACTS measured on Odoo 18


def odoo_cookies(header):
    """`request.cookies` of a WSGI request whose environ holds `header` as HTTP_COOKIE (Latin-1 text,
    as a WSGI server puts it there): exactly what Odoo's http.py reads."""
    environ = create_environ()
    if header:
        environ["HTTP_COOKIE"] = header
    return Request(environ).cookies


def read(header):
    """Every (name, value) pair this version finds, in order."""
    if not header:
        return []
    if LEGACY:  # request.cookies is a dict there: ask the same parser for all pairs
        return list(parse_cookie(header, cls=MultiDict).items(multi=True))
    return list(odoo_cookies(header).items(multi=True))


def odoo_view(header):
    """The pairs as Odoo's request.cookies holds them: a dict on 0.16 (the last of a name wins), a
    MultiDict after (`.get` takes the first)."""
    c = odoo_cookies(header)
    return list(c.items()) if LEGACY else list(c.items(multi=True))


def session_ids(pairs):
    return [v for k, v in pairs if k == "session_id"]


def first_session(header):
    ids = session_ids(odoo_view(header))
    if not ids:
        return None
    return ids[-1] if LEGACY else ids[0]


def unhex(s):
    return "" if s == "." else bytes.fromhex(s).decode("latin-1")


def main(cases_path, oracle_path, pairs_path):
    stats = {"version": VERSION, "cases": 0, "forwarded": 0, "refused": 0, "as_sent": 0, "rebuilt": 0, "no_cookie": 0,
             "forwarded_with_session": 0}
    bad = []
    with open(cases_path) as cases, open(oracle_path) as oracle, open(pairs_path, "w") as pairs_out:
        for n, (case, answer) in enumerate(zip(cases, oracle)):
            lines = [unhex(x) for x in case.split()]
            answer = answer.split()
            stats["cases"] += 1
            if answer[0] == "refused":
                stats["refused"] += 1
                pairs_out.write("refused\n")
                if answer[1] == "conflict" and TWO_X:
                    # Justified only when the two joins of Odoo's servers name different sessions.
                    by_comma = first_session(",".join(lines))
                    by_gevent = first_session("; ".join(lines))
                    if (by_comma if valid(by_comma) else None) == (by_gevent if valid(by_gevent) else None):
                        bad.append((n, "refused, yet both joins read the same session", lines))
                elif answer[1] != "conflict":
                    bad.append((n, f"refused as {answer[1]}", lines))
                continue
            stats["forwarded"] += 1
            checked = None if answer[1] == "-" else unhex(answer[1])
            line = None if answer[2] == "-" else unhex(answer[2])
            if line is None:
                stats["no_cookie"] += 1
            elif len(lines) == 1 and line == lines[0]:
                stats["as_sent"] += 1
            else:
                stats["rebuilt"] += 1
            got = read(line)
            pairs_out.write(json.dumps(got) + "\n")
            ids = session_ids(odoo_view(line))
            if len({k for k, _ in got}) != len(got) or got != odoo_view(line):
                bad.append((n, "forwarded line names a cookie twice, or Odoo's view of it differs", lines, line))
            if checked is not None:
                stats["forwarded_with_session"] += 1
            # 1. Odoo reads exactly the id idlegate checked from the forwarded line, or none.
            if ids != ([checked] if checked is not None else []):
                bad.append((n, f"forwarded line reads session_id {ids}, idlegate checked {checked!r}", lines, line))
            # 2. Nothing else it carries was made up: each pair is one this version reads from what the
            #    client sent (its lines joined as a browser means them).
            sent = read("; ".join(lines))
            for pair in got:
                if pair[0] != "session_id" and pair not in sent:
                    bad.append((n, f"forwarded {pair} the client did not send", lines, line))
            # 3. The id checked is the one Odoo's readers of that generation take from the request.
            if TWO_X:
                for join in (",", "; "):  # werkzeug's HTTP port, gevent's port
                    first = first_session(join.join(lines))
                    if (first if valid(first) else None) != checked:
                        bad.append((n, f"checked {checked!r}, werkzeug reads {first!r} from the {join!r} join", lines, line))
    stats["violations"] = len(bad)
    print(json.dumps(stats))
    for b in bad[:10]:
        print("VIOLATION", json.dumps(b), file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
