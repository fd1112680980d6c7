"""Generated Cookie header sets: 1-3 lines built from plain, quoted, escaped, unclosed-quote and
session_id-carrying pieces, glued with the separators that change how werkzeug pairs quotes. Used by the
differential test (every werkzeug version against idlegate's decision) and by the end-to-end bypass run
(the real binary in front of a fake Odoo that still holds an expired session).

Lines are Latin-1 text: that is how a WSGI server hands header bytes to werkzeug."""
import random
import re

# idlegate's own id shape (IdlegateSessions.SessionIDShape): Odoo 18+ and Odoo 12-17 ids.
SID_RE = re.compile(r"^(?:[A-Za-z0-9_-]{84,86}|[a-f0-9]{40})$")


def valid(sid):
    return sid is not None and SID_RE.match(sid) is not None and "\n" not in sid


def pieces(expired, live):
    e, l = expired, live
    octal = "\\" + format(ord(e[0]), "03o") + e[1:]
    plain = ["tz=UTC", "cids=1", "frontend_lang=en_US", "color_scheme=dark", "fileToken=1712", "a=b=c",
             "flag", "x=", "=v", "Path=/", "tz=Europe/Brussels", "cids=1-2", "cids=1,2", "a=,x,"]
    session = [f"session_id={e}", f"session_id={l}", f'session_id="{e}"', f"session_id= {e}", f"session_id =\t{l}",
               f'session_id="{octal}"', f'session_id="\\{e[0]}{e[1:]}"', "session_id=", "session_id", "session_id=zz",
               'session_id="zz"', f"SESSION_ID={e}", f"session_id={e}x", f"session_id={e[:40]}", f" session_id={e}"]
    quoted = ['x="a;b"', f'x="; session_id={e}; "', f'q=";session_id={e};"', 'x="abc', 'q="', '"', 'x="a\\"b"',
              'x="\\', f'y="{l}"', '"x"=1', f'x="abc; session_id="zz"; q="; session_id={e}; "', 'frontend_lang="en_US']
    junk = [",", ";", " ", "=", "\\", "\u00e9", "\u00a0", "\t", '"', "\u0085"]
    return plain, session, quoted, junk


SEPARATORS = ["; ", ";", ", ", ",", " ", "", ";; ", " ;"]


def generate(n, seed, expired, live):
    """n header sets, each a list of 1-3 Cookie lines (str), deterministic for a seed."""
    rng = random.Random(seed)
    plain, session, quoted, junk = pieces(expired, live)
    kinds = [(plain, 4), (session, 4), (quoted, 3), (junk, 1)]
    pool = [group for group, w in kinds for _ in range(w)]
    out = []
    for _ in range(n):
        lines = []
        for _ in range(rng.choice((1, 1, 2, 2, 3))):
            parts = [rng.choice(rng.choice(pool)) for _ in range(rng.randint(1, 5))]
            line = ""
            for i, p in enumerate(parts):
                line += (rng.choice(SEPARATORS) if i else "") + p
            if rng.random() < 0.15:
                line = rng.choice(SEPARATORS) + line
            if rng.random() < 0.15:
                line += rng.choice(SEPARATORS)
            lines.append(line.strip(" \t"))  # what an HTTP parser keeps of a field value
        out.append(lines)
    return out


def to_hex_line(lines):
    """The oracle's input line: each Cookie line hex-encoded ("." for an empty one), space-separated."""
    return " ".join(l.encode("latin-1").hex() or "." for l in lines)
