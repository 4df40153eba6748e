"""The service's front door, as one ASGI middleware: bearer-token roles (or a signed link for one GET), 429 for a
job the server cannot take (before its body is read), a request body limit, and the security headers of every
answer (a Content Security Policy unless the route set its own)."""

from __future__ import annotations

import json

from .auth import Tokens, check
from .limits import RETRY_AFTER_SECONDS, Admission

# the dashboard: its own scripts only; plotly and the page style inline styles
DASHBOARD_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                 "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
# FastAPI's /docs and /redoc: Swagger UI and ReDoc from their CDN with an inline bootstrap (no user data in them)
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; style-src 'self' "
            "'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
            "font-src https://fonts.gstatic.com; "
            "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; worker-src blob:; "
            "object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
DOCS_PATHS = ("/docs", "/redoc", "/docs/oauth2-redirect")
HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
           (b"x-frame-options", b"DENY")]


class Guard:
    def __init__(self, app, tokens: Tokens, max_body_bytes: int, admissions: dict[str, Admission] | None = None):
        """`admissions`: the Admission of each POST path that queues a job, so a full server answers 429 before
        the request's body is read."""
        self.app, self.tokens, self.max_body = app, tokens, max_body_bytes
        self.admissions = admissions or {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        verdict = check(self.tokens, scope["method"], scope["path"], headers.get("authorization"),
                        scope.get("query_string", b"").decode("latin-1"))
        if verdict is not None:
            status, why = verdict
            challenge = 'Bearer realm="basiskit"' if status == 401 else \
                'Bearer realm="basiskit", error="insufficient_scope"'
            return await _answer(send, status, why, [(b"www-authenticate", challenge.encode())])
        admission = self.admissions.get(scope["path"]) if scope["method"] == "POST" else None
        busy = admission.refusal() if admission is not None else None
        if busy is not None:
            return await _answer(send, 429, str(busy), [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())])
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return await _answer(send, 413, f"the request body is {length} bytes; the limit is {self.max_body} "
                                 "(serve --max-body-bytes)")
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise BodyTooLarge
            return message

        async def secured_send(message):
            if message["type"] == "http.response.start":
                out = list(message.get("headers", []))
                names = {k.lower() for k, _ in out}
                if b"content-security-policy" not in names:
                    csp = DOCS_CSP if scope["path"] in DOCS_PATHS else DASHBOARD_CSP
                    out.append((b"content-security-policy", csp.encode()))
                out += [h for h in HEADERS if h[0] not in names]
                message = {**message, "headers": out}
            await send(message)

        try:
            await self.app(scope, limited_receive, secured_send)
        except BodyTooLarge:
            await _answer(send, 413, f"the request body exceeds the limit of {self.max_body} bytes "
                          "(serve --max-body-bytes)")


class BodyTooLarge(Exception):
    pass


async def _answer(send, status: int, detail: str, extra: list[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"content-security-policy", DASHBOARD_CSP.encode()), *HEADERS, *extra]})
    await send({"type": "http.response.body", "body": body})
