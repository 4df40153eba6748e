"""URLs that may hold a key (an RPC endpoint, a webhook) are never stored: a session keeps a reference instead.
`env:NAME` means the URL is in the environment variable NAME (given as --rpc-url-env / --alert-webhook-env), and
any process with that variable (a resume, the server posting a dead session's alerts) can use it; a URL given
on the command line is stored as `given:SCHEME://HOST:PORT` only, so a resume has to be given it again."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from ..errors import SettingError

ENV = "env:"
GIVEN = "given:"


def shown(url: str | None) -> str | None:
    """What a table, a log or an answer may show of a URL: scheme://host:port at most (no path, query or user)."""
    if not url:
        return None
    if url.startswith(ENV):
        return url
    if url.startswith(GIVEN):
        return url[len(GIVEN):]
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(a malformed URL)"
    return f"{parts.scheme}://{parts.hostname or ''}{port}"


def reference(url: str | None, env: str | None, option: str) -> tuple[str | None, str | None]:
    """(the URL to use now, what is stored) from `--OPTION URL` or `--OPTION-env NAME` (not both)."""
    if url and env:
        raise SettingError(f"--{option} and --{option}-env exclude each other: give one (the -env form keeps the "
                           "URL out of the store and the process list)")
    if env:
        return from_env(env, f"--{option}-env"), ENV + env
    if url:
        return url, given(url)
    return None, None


def given(url: str) -> str:
    """The stored reference of a URL given on the command line: `given:SCHEME://HOST:PORT`."""
    return GIVEN + (shown(url) or "")


def from_env(name: str, where: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise SettingError(f"{where} {name}: the environment variable {name} is not set (export {name}=URL)")
    return value


def resolve(stored: str | None) -> str | None:
    """The URL a stored reference names: `env:NAME` from this process's environment (None where it is unset); a
    `given:` reference has no URL (it must be given again); anything else is an old row's URL itself."""
    if not stored:
        return None
    if stored.startswith(ENV):
        return os.environ.get(stored[len(ENV):]) or None
    if stored.startswith(GIVEN):
        return None
    return stored


def again(stored: str | None, given: str | None, option: str, what: str) -> str | None:
    """The URL a resumed session uses: the one given again (`--OPTION`), else the stored reference's; a reference
    whose URL was not stored (or whose variable is unset) is an error naming the fix."""
    if given:
        return given
    if not stored:
        return None
    url = resolve(stored)
    if url is None:
        fix = (f"export {stored[len(ENV):]}" if stored.startswith(ENV) else f"resume with --{option} URL")
        raise SettingError(f"the {what} {shown(stored)} is not stored (a URL may hold a key): {fix}")
    return url
