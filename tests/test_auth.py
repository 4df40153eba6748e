"""Who may call the service: every operation of /openapi.json walked without a token, with a read, a run and a
trade token; signed links; Host names; fields a caller may not choose; the tokens file's rules."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import time

import httpx
import pytest

from basiskit.api.auth import ensure_tokens
from basiskit.data.dataset import SAMPLE_DIR
from server import Server, free_port


def operations(client) -> list[tuple[str, str]]:
    doc = client.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": "a token of serve's tokens file"}
    assert doc["security"] == [{"bearer": []}] and doc["paths"]["/health"]["get"]["security"] == []
    ops = []
    for path, methods in doc["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "x", path)
        ops += [(method.upper(), concrete) for method in methods]
    assert len(ops) >= 28
    return ops


def test_without_a_token_only_health_and_the_dashboard_answer(server, client):
    ops = operations(client)
    with server.client(token=None) as anonymous:
        for method, path in ops + [("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/metrics")]:
            r = anonymous.request(method, path, json={} if method == "POST" else None)
            if path == "/health":
                assert r.status_code == 200
                continue
            assert r.status_code == 401, (method, path, r.status_code)
            assert r.headers["www-authenticate"].startswith("Bearer") and r.json()["detail"]
        for public in ("/", "/ui", "/ui/runs", "/ui/sweeps/any", "/static/ui.js", "/static/ui.css"):
            assert anonymous.get(public, follow_redirects=True).status_code == 200, public
    with server.client(token="not-a-token-of-this-server") as stranger:
        assert stranger.get("/modes").status_code == 401
    assert server.operate_token not in server.log.read_text() and server.read_token not in server.log.read_text()


def test_the_read_role_reads_run_runs_and_only_trade_moves_money(server, client):
    ops = operations(client)
    changes = [(m, p) for m, p in ops if m in ("POST", "DELETE")]
    money = [(m, p) for m, p in changes if p.startswith("/live/")]
    assert {p.rsplit("/", 1)[1] for _, p in money} >= {"approve", "reject", "kill", "resume"}
    for role, allowed in (("read", []), ("run", [c for c in changes if c not in money]), ("trade", money)):
        with server.client(token=role) as caller:
            for method, path in ops:
                r = caller.request(method, path, json={} if method == "POST" else None)
                if (method, path) in changes and (method, path) not in allowed:
                    assert r.status_code == 403, (role, method, path, r.status_code)
                    assert 'error="insufficient_scope"' in r.headers["www-authenticate"]
                    need = "trade" if (method, path) in money else "run"
                    assert f"needs the {need} role" in r.json()["detail"] and f"has: {role}" in r.json()["detail"]
                else:
                    assert r.status_code not in (401, 403), (role, method, path, r.status_code)
            assert caller.get("/metrics").status_code == 200
    r = client.post("/backtests", json={"mode": "pure_lending_usdt", "start": "2024-11-01", "end": "2024-11-03"})
    assert r.status_code == 202
    assert client.delete(f"/backtests/{r.json()['id']}").status_code == 200


def test_a_host_name_not_allowed_is_refused(server):
    r = httpx.get(server.url + "/health", headers={"Host": "evil.example"})
    assert r.status_code == 400
    assert httpx.get(server.url + "/health", headers={"Host": f"localhost:{server.port}"}).status_code == 200


def test_a_caller_cannot_choose_where_the_server_connects_or_reads(client):
    sweep = {"mode": "pure_lending_usdt", "params": ["initial_capital=1000,2000"], "start": "2024-11-01",
             "end": "2024-11-03", "backend": "ray", "ray_address": "ray://attacker.example:10001"}
    r = client.post("/sweeps", json=sweep)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "ray_address"
    r = client.post("/backtests", json={"mode": "pure_lending_usdt", "data_dir": "/etc"})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "data_dir"
    r = client.post("/stress", json={"mode": "eth_leveraged", "at": "worst", "webhook": "http://x.example/"})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "webhook"
    r = client.post("/stress", json={"mode": "eth_leveraged", "at": "worst", "scenarios": ["/etc/passwd"]})
    assert r.status_code == 422


def test_a_report_page_allows_only_its_own_scripts(client):
    r = client.post("/backtests", json={"mode": "pure_lending_usdt", "start": "2024-11-01", "end": "2024-11-08"})
    from server import wait_for

    assert wait_for(client, r.json()["id"])["status"] == "done"
    page = client.get(f"/backtests/{r.json()['id']}/report")
    csp = page.headers["content-security-policy"]
    scripts = re.findall(r"script-src ([^;]+)", csp)[0].split()
    assert all(s.startswith("'sha256-") for s in scripts)  # no 'unsafe-inline', no host
    import base64
    import hashlib

    inline = re.findall(r"<script>(.*?)</script>", page.text, re.S)
    assert inline and all("'sha256-" + base64.b64encode(hashlib.sha256(b.encode()).digest()).decode() + "'"
                          in scripts for b in inline)


def serve(*args, env_extra=None, timeout=20.0) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("BASISKIT_DATA", "BASISKIT_TOKENS")} | (env_extra or {})
    return subprocess.run([sys.executable, "-m", "basiskit.cli", "serve", "--port", str(free_port()), *args],
                          capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.parametrize(("content", "mode", "expected"), [
    ("operate s3cr3t-s3cr3t-s3cr3t\nwrite abcdefghijklmnopqrstu\n", 0o600, "line 2: unknown role 'write'"),
    ("operate\n", 0o600, "line 1: expected `ROLE TOKEN`"),
    ("read abcdefghijklmnopqrstu\n", 0o644, "permissions 644"),
    ("operate short\n", 0o600, "line 1: the token is 5 characters"),
])
def test_a_bad_tokens_file_stops_serve_naming_the_line(tmp_path, content, mode, expected):
    tokens = tmp_path / "tokens"
    tokens.write_text(content)
    tokens.chmod(mode)
    r = serve("--tokens", str(tokens), "--db", str(tmp_path / "db.db"))
    assert r.returncode == 2 and expected in r.stderr, r.stderr


def test_serve_beyond_loopback_needs_allowed_hosts(tmp_path):
    r = serve("--host", "0.0.0.0", "--db", str(tmp_path / "db.db"))
    assert r.returncode == 2 and "--allowed-host" in r.stderr


def test_the_first_start_creates_an_owner_only_run_and_trade_token(tmp_path):
    db = tmp_path / "first.db"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("BASISKIT_DATA", "BASISKIT_TOKENS")}
    log = tmp_path / "serve.log"
    proc = subprocess.Popen([sys.executable, "-m", "basiskit.cli", "serve", "--port", str(port), "--db", str(db),
                             "--data", str(SAMPLE_DIR)], stdout=log.open("w"), stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    try:
        path = tmp_path / "first.tokens"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "Uvicorn running" not in log.read_text():
            time.sleep(0.2)
        assert f"created a token of the run and trade roles in {path}" in log.read_text().replace("\n", "")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        run, token, trade, same = path.read_text().split()
        assert (run, trade) == ("run", "trade") and same == token and len(token) >= 32
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"http://127.0.0.1:{port}/modes", headers=headers).status_code == 200
        assert token not in log.read_text()
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=15)
    again, created = ensure_tokens(None, db)  # the next start reads the same file
    assert not created and again.roles_of(token) == {"run", "trade"}


def test_a_signed_link_opens_its_own_get_for_minutes_and_nothing_else(server, client):
    assert httpx.get(server.url + "/modes", cookies={"basiskit_token": server.operate_token}).status_code == 401
    t0 = time.time()
    with server.client(token="read") as reader:
        url = reader.get("/links", params={"target": "/modes?x=1"}).json()["url"]
    path, query = url.split("?", 1)
    assert path == "/modes" and query.startswith("x=1&exp=")
    assert int(t0) + 600 <= int(re.search(r"exp=(\d+)", url)[1]) <= time.time() + 601  # LINK_SECONDS from now
    assert server.operate_token not in url and server.read_token not in url
    assert httpx.get(server.url + url).status_code == 200  # no token: the signature opens it
    exp, sig = re.search(r"exp=(\d+)&sig=(\w+)", url).groups()
    for other in (f"/modes?x=2&exp={exp}&sig={sig}", f"/backtests?exp={exp}&sig={sig}",  # another target
                  f"/modes?x=1&exp={int(exp) + 1}&sig={sig}",  # a later expiry
                  f"/modes?x=1&exp={exp}&sig={'0' * 64}", "/modes?x=1"):
        assert httpx.get(server.url + other).status_code == 401, other
    r = httpx.post(server.url + "/backtests?" + url.split("?", 1)[1], json={"mode": "pure_lending_usdt"})
    assert r.status_code == 401  # a page elsewhere cannot make the browser act with it
    assert client.get("/links", params={"target": "https://evil.example/"}).status_code == 422
    assert client.get("/links", params={"target": "//evil.example/x"}).status_code == 422
    from basiskit.api.auth import load_tokens

    tokens = load_tokens(server.tokens)
    old = tokens.sign("/modes", now=time.time() - 601)  # signed 601 s ago: expired
    assert not tokens.signed("/modes", old.split("?", 1)[1]) and tokens.signed("/modes", tokens.sign("/modes")[7:])


def test_an_old_operate_line_means_run_and_trade_with_a_warning(tmp_path):
    from basiskit.api.auth import load_tokens

    path = tmp_path / "old.tokens"
    path.write_text("operate abcdefghijklmnopqrstuvwxyz\nread zyxwvutsrqponmlkjihgfedcba\n")
    path.chmod(0o600)
    with pytest.warns(DeprecationWarning, match=r"line 1: the role 'operate' is deprecated; it means run and trade"):
        tokens = load_tokens(path)
    assert tokens.roles_of("abcdefghijklmnopqrstuvwxyz") == {"run", "trade"}
    assert tokens.roles_of("zyxwvutsrqponmlkjihgfedcba") == {"read"} and tokens.roles_of("nope" * 5) is None


def test_a_server_with_its_own_limits(tmp_path):
    server = Server(tmp_path / "limits.db", SAMPLE_DIR, tmp_path / "server.log",
                    extra=("--max-body-bytes", "2048")).start()
    try:
        with server.client() as c:
            body = {"mode": "pure_lending_usdt", "config_overrides": {"description": "x" * 5000}}
            r = c.post("/backtests", json=body)
            assert r.status_code == 413 and "2048" in r.json()["detail"] and "--max-body-bytes" in r.json()["detail"]
    finally:
        server.stop()
