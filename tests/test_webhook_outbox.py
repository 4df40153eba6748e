"""Alerts are never lost: a webhook receiver that refuses, redirects, then is down while the session is killed,
then comes back; after resume every alert id has arrived, and deduplicated by id each arrived once. The webhook
and RPC URLs carry planted keys that no table, file mode, log or answer may show."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from basiskit.data.dataset import SAMPLE_DIR
from basiskit.paper.store import PaperStore
from recorded import database_text
from server import free_port


class Receiver:
    """A webhook receiver on a fixed port: answers 503 to the first `refuse` posts, 302 to the next, then 204."""

    def __init__(self, port: int, received: list[dict], refuse: int = 0, redirect: int = 0):
        self.port, self.refuse, self.redirect = port, refuse, redirect
        self.received = received  # shared by the receiver's lives
        self.answers: list[int] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                assert self.headers["Idempotency-Key"] == body["id"]
                if outer.refuse:
                    outer.refuse -= 1
                    code = 503
                elif outer.redirect:
                    outer.redirect -= 1
                    code = 302
                else:
                    outer.received.append(body)
                    code = 204
                outer.answers.append(code)
                self.send_response(code)
                if code == 302:
                    self.send_header("Location", "/moved")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self):  # noqa: N802 -- a followed redirect would land here
                outer.answers.append(-1)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()


def paper(*args) -> list[str]:
    return [sys.executable, "-m", "basiskit.cli", "paper", *args]


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise TimeoutError(what)


PLANTED_HOOK, PLANTED_RPC = "hook-key-7f3a9c2e51", "rpc-key-4b8d0e6f93"


every_text = database_text  # every value of every table of the store, as text


def test_no_alert_is_lost_across_refusals_a_redirect_an_outage_and_a_kill(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/alerts?key={PLANTED_HOOK}"
    db = tmp_path / "db.db"
    received: list[dict] = []
    receiver = Receiver(port, received, refuse=3, redirect=1)
    env = {k: v for k, v in os.environ.items() if k != "BASISKIT_DATA"} | {"TEST_HOOK_URL": url}
    proc = subprocess.Popen(paper("run", "usdt_market_neutral", "--data", str(SAMPLE_DIR), "--start", "2024-11-01",
                                  "--end", "2024-12-01", "--session", "w", "--alert-net-delta", "0.002", "--speed",
                                  "40", "--alert-webhook-env", "TEST_HOOK_URL", "--db", str(db), "--out",
                                  str(tmp_path / "runs"), "--rpc-url", f"http://127.0.0.1:1/{PLANTED_RPC}"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, start_new_session=True)
    store = PaperStore(db)
    try:
        wait_until(lambda: receiver.received, 60, "the first alert after three refusals and a redirect")
        assert receiver.answers[:5] == [503, 503, 503, 302, 204]  # the 302 was not followed, nor counted
        receiver.stop()  # down while the session goes on raising alerts
        delivered = len(receiver.received)
        wait_until(lambda: store.counts("w")["alerts"] >= delivered + 2, 120, "alerts while the receiver is down")
        os.killpg(proc.pid, signal.SIGKILL)  # killed: no chance to flush anything
        proc.wait(timeout=10)
        logs = proc.stderr.read().decode()
        pending = store.outbox_depth("w")
        assert pending >= 2
        receiver = Receiver(port, received)  # back
        r = subprocess.run(paper("resume", "w", "--db", str(db), "--speed", "0"), capture_output=True, text=True,
                           env=env, timeout=300)  # the webhook by its variable's name: found again
        assert r.returncode == 0, r.stderr
        logs += r.stdout + r.stderr
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        receiver.stop()
    stored = [f"w:{a['seq']}" for a in store.table("w", "alerts")]
    ids = [a["id"] for a in received]
    assert len(stored) >= 5 and set(ids) == set(stored)
    assert sorted(set(ids), key=lambda i: int(i.split(":")[1])) == stored  # deduplicated by id: each once
    assert store.outbox_depth("w") == 0 and store.outbox("w")["delivered"] == len(stored)
    text = every_text(db) + logs + json.dumps(store.session("w"), default=str)
    assert PLANTED_HOOK not in text and PLANTED_RPC not in text
    assert "env:TEST_HOOK_URL" in text and "http://127.0.0.1:1" in text  # references: a name, scheme://host:port
    assert all(os.stat(f).st_mode & 0o077 == 0 for f in tmp_path.glob("db.db*")), "the store is the owner's"


def test_a_stored_url_reference_is_found_again_or_its_fix_named(monkeypatch):
    import pytest

    from basiskit.errors import SettingError
    from basiskit.sessions.secrets import again, reference, shown

    assert shown(f"https://user:{PLANTED_RPC}@node.example:8545/v2/{PLANTED_RPC}?k={PLANTED_RPC}") == \
        "https://node.example:8545"
    monkeypatch.setenv("HOOK_VAR", f"https://hooks.example/{PLANTED_HOOK}")
    assert reference(None, "HOOK_VAR", "alert-webhook") == (f"https://hooks.example/{PLANTED_HOOK}", "env:HOOK_VAR")
    url, ref = reference(f"https://hooks.example/{PLANTED_HOOK}", None, "alert-webhook")
    assert ref == "given:https://hooks.example" and url.endswith(PLANTED_HOOK)
    assert again("env:HOOK_VAR", None, "alert-webhook", "the webhook") == f"https://hooks.example/{PLANTED_HOOK}"
    with pytest.raises(SettingError, match=r"https://hooks.example is not stored .*resume with --alert-webhook URL"):
        again(ref, None, "alert-webhook", "the webhook")
    assert again(ref, "https://hooks.example/again", "alert-webhook", "the webhook") == "https://hooks.example/again"
    monkeypatch.delenv("HOOK_VAR")
    with pytest.raises(SettingError, match="export HOOK_VAR"):
        again("env:HOOK_VAR", None, "alert-webhook", "the webhook")
    with pytest.raises(SettingError, match="exclude each other"):
        reference("https://a.example", "HOOK_VAR", "alert-webhook")


def test_urls_an_earlier_version_stored_become_references_when_the_store_opens(tmp_path):
    import sqlite3

    from basiskit.live.store import LiveStore

    db = tmp_path / "old.db"
    PaperStore(db).create_session("p", "btc_basis", "live", 0, 3600, 2, {}, {
        "feed": "live", "rpc_url": f"https://node.example:8545/{PLANTED_RPC}", "webhook": None})
    LiveStore(db).open_session("l", "btc_basis", "accounts.yaml", {}, "env:HOOK")
    con = sqlite3.connect(str(db), isolation_level=None)  # as an earlier version wrote them: the URLs themselves
    con.execute("UPDATE paper_sessions SET options = ? WHERE name = 'p'", [json.dumps({
        "feed": "live", "rpc_url": f"https://node.example:8545/{PLANTED_RPC}",
        "webhook": f"https://hooks.example/{PLANTED_HOOK}"})])
    con.execute("UPDATE live_sessions SET webhook = ? WHERE name = 'l'", [f"https://hooks.example/{PLANTED_HOOK}"])
    con.close()
    live = LiveStore(db)
    paper = PaperStore(db)
    assert live.webhook_ref("l") == "given:https://hooks.example"
    options = paper.session("p")["options"]
    assert options["rpc_url_ref"] == "given:https://node.example:8545" and options["rpc_url"] is None
    assert options["webhook_ref"] == "given:https://hooks.example" and options["webhook"] is None
    assert PLANTED_HOOK not in every_text(db) and PLANTED_RPC not in every_text(db)
