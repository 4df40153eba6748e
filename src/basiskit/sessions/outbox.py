"""Alerts to a webhook, never lost. The outbox is the session's alerts table itself (each alert is committed
with its tick, before anyone tries to send it); `paper_deliveries` records which reached the receiver. A
sender thread posts the undelivered ones in order with tenacity's exponential back-off and jitter, follows
no redirect, speaks only http(s), and marks an alert delivered when the receiver answers 2xx. What is still
undelivered when the session stops is sent when it resumes or when the server starts. Each alert carries
the id `<session>:<seq>` (also as the Idempotency-Key header): delivery is at least once, so a receiver
that drops a repeated id sees each alert exactly once."""

from __future__ import annotations

import json
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC
from urllib.parse import urlsplit

from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from ..errors import SettingError
from ..results.db import now
from .secrets import shown


class Undelivered(Exception):
    """The receiver did not take the alert (no answer, or an answer other than 2xx)."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # a 3xx is an answer, not a delivery: urllib raises it as an HTTPError


_OPENER = urllib.request.build_opener(_NoRedirect)


def check_webhook_url(url: str, option: str = "--alert-webhook") -> str:
    """`url` if it is an http(s) URL with a host and no space or control character (the error shows
    scheme://host:port at most: the rest may be a key)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc or \
            any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise SettingError(f"{option} {shown(url)}: a webhook must be an http:// or https:// URL with a host and no "
                           "space or control character")
    return url


def post(url: str, body: dict, timeout: float) -> None:
    """POST `body` as JSON; Undelivered unless the receiver answers 2xx."""
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "Idempotency-Key": body["id"]})
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            status = resp.status
    except urllib.error.HTTPError as exc:
        raise Undelivered(f"HTTP {exc.code}") from None
    except urllib.error.URLError as exc:  # the reason (refused, a timeout, DNS) never holds the URL
        raise Undelivered(f"{shown(url)}: {exc.reason if isinstance(exc.reason, OSError) else type(exc).__name__}") \
            from None
    except Exception as exc:  # noqa: BLE001 (anything else: its text may hold the URL, so only its kind is told)
        raise Undelivered(f"{type(exc).__name__} posting to {shown(url)}") from None
    if not 200 <= status < 300:
        raise Undelivered(f"HTTP {status}")


class WebhookSender:
    """Delivers a session's undelivered alerts from a background thread; `notify()` after each commit."""

    def __init__(self, store, session: str, url: str, attempts: int = 5, timeout: float = 5.0,
                 initial_wait: float = 0.2, max_wait: float = 10.0, quiet: bool = False):
        self.store, self.session, self.url = store, session, check_webhook_url(url)
        self.attempts, self.timeout, self.quiet = attempts, timeout, quiet
        self.initial_wait, self.max_wait = initial_wait, max_wait
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"webhook-{session}", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        self._wake.set()

    def close(self, wait_seconds: float = 10.0) -> int:
        """Try to deliver what is pending for up to `wait_seconds`, then stop; returns how many are left
        (they stay in the outbox for the next start)."""
        deadline = time.monotonic() + wait_seconds
        self._wake.set()
        while time.monotonic() < deadline and self.store.outbox_depth(self.session):
            time.sleep(0.05)
        self._stop.set()
        self._wake.set()
        self._thread.join(max(deadline - time.monotonic(), 0.0) + self.timeout)
        return self.store.outbox_depth(self.session)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            for alert in self.store.undelivered(self.session):
                if self._stop.is_set() or not self._deliver(alert):
                    break  # in order: a later alert waits for an earlier one
            self._wake.wait(self.max_wait)

    def _deliver(self, alert: dict) -> bool:
        tries = 0
        retrying = Retrying(stop=stop_after_attempt(self.attempts),
                            wait=wait_exponential_jitter(multiplier=self.initial_wait, max=self.max_wait),
                            retry=retry_if_exception_type(Undelivered), sleep=self._sleep)
        try:
            for attempt in retrying:
                with attempt:
                    tries += 1
                    post(self.url, alert, self.timeout)
        except RetryError as exc:
            why = str(exc.last_attempt.exception())
            self.store.record_attempts(self.session, alert["seq"], tries, why)
            if not self.quiet:
                sys.stderr.write(f"alert webhook: alert {alert['id']} not delivered after {tries} attempts ({why}); "
                                 "kept in the outbox\n")
            return False
        self.store.mark_delivered(self.session, alert["seq"], tries)
        return True

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)  # a stop cuts a back-off short


class AlertOutbox:
    """The outbox over a store's alerts table and its deliveries table (paper_* and live_*, same columns):
    what WebhookSender reads and writes. The store gives `_conn()` and the two table names."""

    ALERTS: str
    DELIVERIES: str

    def undelivered(self, name: str) -> list[dict]:
        """The session's alerts not yet delivered, in order, as the webhook receives them."""
        with self._conn() as con:
            rows = con.execute(
                f"SELECT a.seq, a.tick, a.timestamp, a.kind, a.message, a.details FROM {self.ALERTS} a "
                f"LEFT JOIN {self.DELIVERIES} d ON d.session = a.session AND d.seq = a.seq "
                "WHERE a.session = ? AND d.delivered_at IS NULL ORDER BY a.seq", [name]).fetchall()
        return [{"id": f"{name}:{seq}", "session": name, "seq": seq, "tick": tick,
                 "timestamp": ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "kind": kind, "message": msg,
                 "details": json.loads(details)} for seq, tick, ts, kind, msg, details in rows]

    def outbox_depth(self, name: str) -> int:
        with self._conn() as con:
            return con.execute(
                f"SELECT count(*) FROM {self.ALERTS} a LEFT JOIN {self.DELIVERIES} d ON d.session = a.session "
                "AND d.seq = a.seq WHERE a.session = ? AND d.delivered_at IS NULL", [name]).fetchone()[0]

    def outbox(self, name: str) -> dict:
        """What `status` and the API show of the webhook outbox."""
        with self._conn() as con:
            delivered, failing = con.execute(
                "SELECT count(*) FILTER (WHERE delivered_at IS NOT NULL), "
                f"count(*) FILTER (WHERE delivered_at IS NULL) FROM {self.DELIVERIES} WHERE session = ?",
                [name]).fetchone()
            last = con.execute(f"SELECT last_error FROM {self.DELIVERIES} WHERE session = ? AND delivered_at IS NULL "
                               "ORDER BY seq LIMIT 1", [name]).fetchone()
        return {"pending": self.outbox_depth(name), "delivered": delivered, "retrying": failing,
                "last_error": last[0] if last else None}

    def _delivery(self, name: str, seq: int, delivered: bool, attempts: int, error: str | None) -> None:
        with self._conn() as con:
            con.execute(
                f"INSERT INTO {self.DELIVERIES} VALUES (?, ?, ?, ?, ?) ON CONFLICT (session, seq) DO UPDATE SET "
                f"delivered_at = excluded.delivered_at, attempts = {self.DELIVERIES}.attempts + excluded.attempts, "
                "last_error = excluded.last_error", [name, seq, now() if delivered else None, attempts, error])

    def mark_delivered(self, name: str, seq: int, attempts: int) -> None:
        self._delivery(name, seq, True, attempts, None)

    def record_attempts(self, name: str, seq: int, attempts: int, error: str) -> None:
        self._delivery(name, seq, False, attempts, error)
