"""Who may use the review page, and from where.

Labels feed the next run's calibration slice and training pairs, so a forged label is poisoned
training data. Hence:
- every annotator holds a personal token (`cai review invite NAME`; `cai review` makes one for
  whoever starts it); the store keeps only its hash and the name it was given to, so a name is
  what the server recorded, never what a browser says;
- a Host header must name the bound address, loopback or a host allowed with `--allow-host`:
  a page whose DNS name was rebound to this machine is refused before it reads anything;
- a state-changing request must come from the page itself: its Origin (or Referer) is this
  server's, and its form carries a token derived from the annotator's, which another origin —
  another port of the same host included — cannot read.
"""

import getpass
import hashlib
import secrets
import socket
import unicodedata
from urllib.parse import urlsplit

from cai.errors import CaiError

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
ANY_ADDRESS = {"0.0.0.0", "::", ""}


def token_hash(token: str) -> str:
    return hashlib.sha256(("cai-review-token\n" + token).encode("utf-8", "replace")).hexdigest()


def form_token(token: str) -> str:
    """What every form carries: derived from the annotator's token, unknowable elsewhere."""
    return hashlib.sha256(("cai-review-form\n" + token).encode("utf-8", "replace")).hexdigest()[:32]


def same(given: str, expected: str) -> bool:
    """Constant-time comparison of text: `compare_digest` refuses non-ASCII str (a 500 with a
    traceback for a token like 'é'), so both sides are compared as UTF-8 bytes."""
    return secrets.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


def invite(store, name: str, adjudicator: bool = False, owner: bool = False) -> str:
    """A new personal token for `name` (printed once, stored as a hash)."""
    name = check_name(name)
    token = secrets.token_urlsafe(18)
    store.put_annotator(token_hash(token), name, adjudicator, owner)
    return token


def check_name(name: str) -> str:
    name = unicodedata.normalize("NFC", name.strip())
    bad = not name or len(name) > 80 or any(
        unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") for c in name)
    if bad:
        raise CaiError(f"annotator name {name[:80]!r}: give 1-80 printable characters")
    return name


def owner_name() -> str:
    try:
        return check_name(getpass.getuser())
    except (CaiError, KeyError, OSError):
        return "owner"


def allowed_hosts(bound: str, extra=()) -> set[str]:
    """Host names a request may carry: the bound address, loopback, `--allow-host` ones, and
    this machine's names when bound to every address."""
    hosts = {bound.strip("[]").lower(), *LOOPBACK, *(h.lower() for h in extra)}
    if bound in ANY_ADDRESS:
        hosts |= {socket.gethostname().lower(), socket.getfqdn().lower()}
    return hosts


def host_name(host_header: str) -> str:
    """The name part of a Host header ('[::1]:8765' -> '::1', 'a.b:80' -> 'a.b')."""
    if host_header.startswith("["):
        return host_header[1:].split("]", 1)[0].lower()
    return host_header.rsplit(":", 1)[0].lower() if host_header.count(":") == 1 else \
        host_header.lower()


def from_this_page(headers, own_origin: str) -> bool:
    """A POST whose Origin (or, without one, Referer) is this server. Browsers send Origin on
    every cross-origin POST; a request with neither relies on the form token alone."""
    origin = headers.get("Origin")
    if origin is not None:
        return origin == own_origin
    referer = headers.get("Referer")
    if referer is None:
        return True
    parts = urlsplit(referer)
    return f"{parts.scheme}://{parts.netloc}" == own_origin
