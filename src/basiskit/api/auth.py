"""Who may call the service: bearer tokens with a role each (`read`: GET; `operate`: everything), read from a
tokens file of `ROLE TOKEN` lines that only its owner may read."""

from __future__ import annotations

import hmac
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from ..errors import SettingError

ROLES = ("read", "operate")
READ_METHODS = ("GET", "HEAD")
PUBLIC_PATHS = ("/health", "/", "/ui", "/favicon.ico")  # the dashboard's shell: it asks for the token itself
PUBLIC_PREFIXES = ("/static/", "/ui/")
COOKIE = "basiskit_token"  # the dashboard's copy, for the report pages it opens (GET only)
TOKENS_ENV = "BASISKIT_TOKENS"


@dataclass(frozen=True)
class Tokens:
    path: Path
    roles: tuple[tuple[str, str], ...]  # (token, role)

    def role_of(self, token: str) -> str | None:
        """The role of `token`, compared in constant time against every known token."""
        found = None
        for known, role in self.roles:
            if hmac.compare_digest(known.encode(), token.encode()):
                found = role
        return found


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
        if role not in ROLES:
            raise SettingError(f"{path} line {n}: unknown role {role!r}; valid: {', '.join(ROLES)}")
        if len(token) < 16:
            raise SettingError(f"{path} line {n}: the token is {len(token)} characters; use at least 16")
        roles.append((token, role))
    if not roles:
        raise SettingError(f"tokens file {path} has no `ROLE TOKEN` line")
    return Tokens(path, tuple(roles))


def ensure_tokens(configured: Path | None, db_path: Path) -> tuple[Tokens, bool]:
    """The tokens of `configured` (else $BASISKIT_TOKENS), or of a file beside the database, created on first
    start with one operate token (owner-only). Returns the tokens and whether the file was just created."""
    path = configured or (Path(os.environ[TOKENS_ENV]) if os.environ.get(TOKENS_ENV) else None)
    if path is not None:
        return load_tokens(path), False
    path = db_path.parent / f"{db_path.stem}.tokens"
    if path.exists():
        return load_tokens(path), False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"operate {secrets.token_urlsafe(32)}\n")
    return load_tokens(path), True


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def check(tokens: Tokens, method: str, path: str, authorization: str | None, cookie: str | None
          ) -> tuple[int, str] | None:
    """None when the call may proceed; else (401 or 403, why). The dashboard's cookie counts for GETs only,
    so a page elsewhere cannot make the browser change anything."""
    if is_public(path):
        return None
    token = bearer(authorization)
    if token is None and method in READ_METHODS:
        token = cookie
    if token is None:
        return 401, "a bearer token is required (Authorization: Bearer TOKEN)"
    role = tokens.role_of(token)
    if role is None:
        return 401, "the token is not valid"
    if role != "operate" and method not in READ_METHODS:
        return 403, f"the {role} role may only read (GET); {method} needs the operate role"
    return None
