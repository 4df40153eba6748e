"""A real basiskit server in a subprocess on 127.0.0.1, for the API, browser and restart tests."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """The server reads its tokens from a file of the test's: one token with the run and trade roles (called
    "operate" here, as the old role that meant both), a read token, a run-only and a trade-only token."""

    def __init__(self, db: Path | str, data: Path, log: Path, port: int | None = None, extra: tuple[str, ...] = ()):
        """`db`: a store file, or a postgresql:// URL (its analytics then beside the log)."""
        self.db, self.data, self.log, self.extra = db, data, log, extra
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.tokens = (log.parent / "pg.test-tokens" if isinstance(db, str) else
                       db.parent / f"{db.stem}.test-tokens")
        if not self.tokens.exists():
            both, read, run, trade = (secrets.token_urlsafe(24) for _ in range(4))
            self.tokens.write_text(f"run {both}\ntrade {both}\nread {read}\nrun {run}\ntrade {trade}\n")
            self.tokens.chmod(0o600)
        lines = [line.split() for line in self.tokens.read_text().splitlines()]
        self.operate_token, self.read_token, self.run_token, self.trade_token = (lines[i][1] for i in (0, 2, 3, 4))
        self.headers = {"Authorization": f"Bearer {self.operate_token}"}

    def client(self, token: str | None = "operate", **kwargs) -> httpx.Client:
        """An HTTP client of the server with the run+trade token (or `token`: "read", "run", "trade", another
        string, None)."""
        value = {"operate": self.operate_token, "read": self.read_token, "run": self.run_token,
                 "trade": self.trade_token}.get(token, token)
        headers = {"Authorization": f"Bearer {value}"} if value else {}
        return httpx.Client(base_url=self.url, headers=headers, **({"timeout": 60} | kwargs))

    def get(self, path: str, **kwargs) -> httpx.Response:
        """GET with the operate token."""
        return httpx.get(self.url + path, headers=self.headers, timeout=60, **kwargs)

    def start(self, timeout: float = 60.0) -> Server:
        env = {k: v for k, v in os.environ.items() if k != "BASISKIT_DATA"}
        if isinstance(self.db, str):
            env["BASISKIT_ANALYTICS"] = str(self.log.parent / "analytics")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "basiskit.cli", "serve", "--port", str(self.port), "--db", str(self.db),
             "--data", str(self.data), "--workers", "2", "--tokens", str(self.tokens), *self.extra],
            stdout=self.log.open("ab"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(f"server did not answer in {timeout} s: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL the whole process group: the server and its workers, as a crash would."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def wait_for(client: httpx.Client, run_id: str, statuses=("done", "failed", "cancelled"), timeout: float = 120.0,
             predicate=None, kind: str = "backtests") -> dict:
    """Poll GET /{kind}/{id} (backtests, sweeps, stress) until its status is one of `statuses`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = client.get(f"/{kind}/{run_id}").json()
        if s["status"] in statuses and (predicate is None or predicate(s)):
            return s
        time.sleep(0.1)
    raise TimeoutError(f"{kind} {run_id} did not reach {statuses}: last {s}")
