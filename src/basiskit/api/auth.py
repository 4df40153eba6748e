"""Who may call the service: bearer tokens with roles, read from a tokens file of `ROLE TOKEN` lines that only its
owner may read. Roles: `read` (GET), `run` (backtests, sweeps, stress tests: their POSTs and DELETEs), `trade`
(anything that moves money: every POST under /live/). Every token reads; a token on two lines has both roles; an
old `operate` line means run and trade (deprecated). Report links the dashboard opens carry a signature instead
of the token: short-lived, for that one GET, from this server's start only."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import stat
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from ..errors import SettingError

ROLES = ("read", "run", "trade")
DEPRECATED = {"operate": ("run", "trade")}  # what an old role name grants
READ_METHODS = ("GET", "HEAD")
TRADE_PREFIXES = ("/live/",)  # a change under these moves money
PUBLIC_PATHS = ("/health", "/", "/ui", "/favicon.ico")  # the dashboard's shell: it asks for the token itself
PUBLIC_PREFIXES = ("/static/", "/ui/")
TOKENS_ENV = "BASISKIT_TOKENS"
LINK_SECONDS = 600  # a signed link's life
SIGNED = re.compile(r"^(?:(?P<rest>.+)&)?exp=(?P<exp>\d{1,12})&sig=(?P<sig>[0-9a-f]{64})$")
log = logging.getLogger("basiskit.api")


@dataclass(frozen=True)
class Tokens:
    path: Path
    roles: tuple[tuple[str, str], ...]  # (token, role), a token once per role
    key: bytes = field(default_factory=lambda: secrets.token_bytes(32), compare=False, repr=False)

    def roles_of(self, token: str) -> frozenset[str] | None:
        """The roles of `token` (None: not a token), compared in constant time against every known token."""
        found = set()
        for known, role in self.roles:
            if hmac.compare_digest(known.encode(), token.encode()):
                found.add(role)
        return frozenset(found) if found else None

    def sign(self, target: str, now: float | None = None) -> str:
        """`target` (a path with its query) as a link a browser may GET for LINK_SECONDS without a token."""
        exp = int((time.time() if now is None else now) + LINK_SECONDS)
        path, _, query = target.partition("?")
        signed = f"{unquote(path)}?{query}" if query else unquote(path)  # the path as the server sees it
        return f"{target}{'&' if query else '?'}exp={exp}&sig={self._mac(signed, exp)}"

    def signed(self, path: str, query: str, now: float | None = None) -> bool:
        """Whether `path?query` is a link this server signed and that has not expired."""
        m = SIGNED.match(query)  # the raw query, the decoded path (as the ASGI scope gives them)
        if m is None or int(m["exp"]) < (time.time() if now is None else now):
            return False
        target = f"{path}?{m['rest']}" if m["rest"] else path
        return hmac.compare_digest(self._mac(target, int(m["exp"])), m["sig"])

    def _mac(self, target: str, exp: int) -> str:
        return hmac.new(self.key, f"{target}\n{exp}".encode(), hashlib.sha256).hexdigest()


def load_tokens(path: Path) -> Tokens:
    """Read a tokens file; a malformed line, an unknown role or a file others may read is an error naming it."""
    if not path.is_file():
        raise SettingError(f"tokens file {path} does not exist (serve --tokens FILE or ${TOKENS_ENV})")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise SettingError(f"tokens file {path} has permissions {mode:o}: others may read it; "
                          f"run `chmod 600 {path}`")
    roles = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.split()
        if len(parts) != 2:
            raise SettingError(f"{path} line {n}: expected `ROLE TOKEN` (two words), got {len(parts)} word(s)")
        role, token = parts
        if role not in ROLES and role not in DEPRECATED:
            raise SettingError(f"{path} line {n}: unknown role {role!r}; valid: {', '.join(ROLES)}")
        if len(token) < 16:
            raise SettingError(f"{path} line {n}: the token is {len(token)} characters; use at least 16")
        if role in DEPRECATED:
            granted = DEPRECATED[role]
            warnings.warn(f"{path} line {n}: the role {role!r} is deprecated; it means {' and '.join(granted)}: "
                          f"write one line per role ({'; '.join(f'{g} TOKEN' for g in granted)})",
                          DeprecationWarning, stacklevel=2)
            log.warning("%s line %d: the role %r is deprecated; it means %s", path, n, role, " and ".join(granted))
            roles += [(token, g) for g in granted]
        else:
            roles.append((token, role))
    if not roles:
        raise SettingError(f"tokens file {path} has no `ROLE TOKEN` line")
    return Tokens(path, tuple(roles))


def ensure_tokens(configured: Path | None, db_path: Path | str) -> tuple[Tokens, bool]:
    """The tokens of `configured` (else $BASISKIT_TOKENS), or of a file beside the database, created on first
    start with one token of the run and trade roles (owner-only). Returns the tokens and whether the file was just
    created."""
    path = configured or (Path(os.environ[TOKENS_ENV]) if os.environ.get(TOKENS_ENV) else None)
    if path is not None:
        return load_tokens(path), False
    from ..results.db import data_dir
    from ..results.sql import is_url

    db_path = data_dir() / "basiskit.db" if is_url(str(db_path)) else Path(db_path)  # a server's store: the user dir
    path = db_path.parent / f"{db_path.stem}.tokens"
    if path.exists():
        return load_tokens(path), False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        token = secrets.token_urlsafe(32)
        f.write(f"run {token}\ntrade {token}\n")
    return load_tokens(path), True


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def needed_role(method: str, path: str) -> str:
    """The role a call needs: read for GETs, trade for a change that moves money, run for any other change."""
    if method in READ_METHODS:
        return "read"
    return "trade" if path.startswith(TRADE_PREFIXES) else "run"


def check(tokens: Tokens, method: str, path: str, authorization: str | None, query: str = ""
          ) -> tuple[int, str] | None:
    """None when the call may proceed; else (401 or 403, why). A signed link counts for its own GET only, so no
    page can make the browser change anything with it."""
    if is_public(path):
        return None
    token = bearer(authorization)
    if token is None and method in READ_METHODS and query and tokens.signed(path, query):
        return None
    if token is None:
        return 401, "a bearer token is required (Authorization: Bearer TOKEN)"
    roles = tokens.roles_of(token)
    if roles is None:
        return 401, "the token is not valid"
    need = needed_role(method, path)
    if need != "read" and need not in roles:
        has = ", ".join(r for r in ROLES if r in roles) or "read"
        what = "anything that moves money (/live/...)" if need == "trade" else "backtests, sweeps and stress tests"
        return 403, f"{method} {path} needs the {need} role ({what}); this token has: {has}"
    return None
