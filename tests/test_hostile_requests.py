"""An attacker with a run token against a real server: oversized sweeps and stress grids, YAML alias bombs and
deep JSON are refused with a 4xx in under a second each, before anything is built (the server's memory barely
moves); a full server answers 429 without reading the body; a cancelled sweep stops with its workers gone."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from basiskit.data.dataset import SAMPLE_DIR
from server import Server, wait_for

WINDOW = {"start": "2024-11-01", "end": "2024-11-08"}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def children(pid: int) -> set[int]:
    """Processes whose parent is `pid` (from /proc), the pool workers among them."""
    out = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.add(int(entry.name))
    return out


def alias_bomb(levels: int) -> str:
    """A YAML value that expands 9x per level (~43 bytes each): 9**levels leaves."""
    text = "{a0: &a0 [x, x, x, x, x, x, x, x, x]"
    for i in range(1, levels):
        text += f", a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, " \
                f"*a{i - 1}, *a{i - 1}]"
    return text + "}"


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    server = Server(tmp / "hostile.db", SAMPLE_DIR, tmp / "server.log",
                    extra=("--max-sweep-runs", "20", "--workers", "1", "--queue-sweeps", "0")).start()
    yield server
    server.stop()


def test_oversized_and_hostile_requests_get_a_4xx_in_under_a_second_and_cost_no_memory(hostile_server):
    server = hostile_server
    sweep = {"mode": "pure_lending_usdt", **WINDOW}
    cases = [  # (path, body, status, the field named, words of the reason)
        ("/sweeps", sweep | {"params": ["initial_capital=1000:2999:1", "target_ltv=0:0.999:0.001"]}, 422,
         "params", ["2,000,000 runs", "limit of 20 runs per sweep", "serve --max-sweep-runs"]),
        ("/sweeps", sweep | {"params": ["initial_capital=1:100000:1", "description=" + ",".join(["a"] * 99_999)]},
         422, "params", ["110,000 values", "at most 10,000"]),  # a range counted without being built: 10,001+
        ("/sweeps", sweep | {"params": ["initial_capital=0:1:1e-320", "target_ltv=-1e308:1e308:1"]}, 422, "params",
         ["values"]),  # (HI - LO) / STEP is infinite: refused, never an OverflowError
        ("/sweeps", {"mode": "btc_basis", "start": "2000-01-01T00:00:00Z", "windows": ["rolling:1d:1d"],
                     "params": ["initial_capital=1000,2000"]}, 422, "params, windows", ["windows", "runs"]),
        ("/sweeps", sweep | {"params": ["initial_capital=1000,2000"], "windows": ["rolling:99999999999h:1h"]}, 422,
         "windows", ["not a duration"]),
        ("/sweeps", sweep | {"params": ["initial_capital=1000,2000,3000,4000,5000"], "windows": ["rolling:1d:1h"]},
         422, "params, windows", ["5 configs x 145 windows = 725 runs"]),  # 7 days of hourly starts: 168-24+1
        ("/sweeps", sweep | {"random": 21, "params": ["initial_capital=1000:2000:1"]}, 422, "random",
         ["21 configs = 21 runs"]),
        ("/sweeps", sweep | {"params": ["initial_capital=1000,2000"], "sets": [f"description={alias_bomb(9)}"]},
         422, "description", ["anchors and aliases"]),
        ("/backtests", sweep | {"config_overrides": {"description": "x"} | nested(40)}, 422, "config_overrides",
         ["nested more than 16 levels"]),
        ("/stress", {"mode": "eth_leveraged", "at": "worst", "scenarios": ["eth_crash"], **WINDOW,
                     "grid": ["magnitude=0.1:0.6:0.01", "target_ltv=0.5:0.85:0.01"]}, 422, "grid",
         ["the grid makes 1,872 runs", "limit of 20 runs per sweep"]),  # 51 x 36 shocked + 36 unshocked
        ("/stress", {"mode": "eth_leveraged", "at": "worst", "scenarios": ["eth_crash"], **WINDOW,
                     "shocks": [f"magnitude={alias_bomb(6)}"]}, 422, "shocks.0", ["anchors and aliases"]),
    ]
    before = rss_mb(server.proc.pid)
    with server.client(token="run", timeout=30) as c:
        for path, body, status, field, words in cases:
            t0 = time.perf_counter()
            r = c.post(path, json=body)
            took = time.perf_counter() - t0
            assert r.status_code == status, (path, field, r.status_code, r.text[:300])
            assert took < 1.0, f"{path} {field}: {took:.2f} s"
            problem = next(p for p in r.json()["detail"] if p["field"] == field)
            assert all(w in problem["message"] for w in words), problem
        deep = b'{"mode": "pure_lending_usdt", "config_overrides": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
        r = c.post("/backtests", content=deep, headers={"content-type": "application/json"})
        assert 400 <= r.status_code < 500, r.status_code
    grown = rss_mb(server.proc.pid) - before
    assert grown < 50, f"the server grew {grown:.0f} MB"
    assert client_count(server, "/sweeps") == 0 and client_count(server, "/stress") == 0  # nothing was stored


def nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"k": value}
    return {"strategy_params": value}


def client_count(server: Server, path: str) -> int:
    return server.get(path).json()["total"]


def test_a_cancelled_sweep_stops_within_ten_seconds_with_its_workers_gone(hostile_server, tmp_path):
    server = hostile_server
    pid = server.proc.pid
    before = children(pid)
    body = {"mode": "usdt_market_neutral", "start": "2024-11-01", "end": "2024-12-01", "workers": 2,
            "params": ["target_ltv=0.50:0.69:0.01"]}  # 20 runs: the server's --max-sweep-runs
    with server.client(token="run") as c:
        r = c.post("/sweeps", json=body)
        assert r.status_code == 202, r.text
        sweep_id = r.json()["id"]
        wait_for(c, sweep_id, kind="sweeps", statuses=("running",), predicate=lambda s: s["done"] >= 1,
                 timeout=120)
        workers = children(pid) - before
        assert len(workers) >= 2  # the sweep's pool
        full = httpx.post(server.url + "/sweeps", content=b"{not json", headers=server.headers | {
            "content-type": "application/json"})
        assert full.status_code == 429 and full.headers["retry-after"]  # decided before the body is read
        assert "--queue-sweeps" in full.json()["detail"]
        t0 = time.monotonic()
        assert c.delete(f"/sweeps/{sweep_id}").json() == {"id": sweep_id, "status": "cancelled"}
        status = wait_for(c, sweep_id, kind="sweeps", statuses=("cancelled",), timeout=10)
        while workers & children(pid) and time.monotonic() - t0 < 10:
            time.sleep(0.1)
        assert not workers & children(pid), "the cancelled sweep's workers are still running"
        assert time.monotonic() - t0 < 10
        done = status["done"]
        assert 1 <= done < 20
        time.sleep(1.5)
        assert c.get(f"/sweeps/{sweep_id}").json()["done"] == done  # nothing ran after
        result = c.get(f"/sweeps/{sweep_id}/result").json()
        assert result["status"] == "cancelled" and len(result["runs"]) == done  # what finished is kept
        metrics = c.get("/metrics").text
        assert 'basiskit_jobs{kind="sweep",status="cancelled"} 1.0' in metrics
        again = c.post("/sweeps", json=body | {"params": ["target_ltv=0.5,0.6"]})
        assert again.status_code == 202  # the slot is free again
        assert wait_for(c, again.json()["id"], kind="sweeps", timeout=120)["status"] == "done"
    assert os.path.exists(server.db)


def test_a_job_cancelled_while_it_waits_for_a_slot_leaves_without_running():
    import threading

    from basiskit.api.limits import Admission

    admission = Admission("sweeps", running=1, queued=1, option="--queue-sweeps")
    admission.admit()
    admission.admit()
    assert admission.refusal() is not None  # full: the front door answers 429
    release, taken = threading.Event(), threading.Event()

    def first() -> None:
        with admission.slot() as started:
            assert started
            taken.set()
            release.wait(10)

    threading.Thread(target=first, daemon=True).start()
    assert taken.wait(5)
    cancel, outcome = threading.Event(), []

    def second() -> None:
        with admission.slot(cancel) as started:
            outcome.append(started)

    waiter = threading.Thread(target=second, daemon=True)
    waiter.start()
    time.sleep(0.3)
    assert outcome == []  # still waiting for the running job's slot
    t0 = time.monotonic()
    cancel.set()
    waiter.join(5)
    assert outcome == [False] and time.monotonic() - t0 < 1.0  # left at once, never ran
    assert admission.held == 1 and admission.refusal() is None  # its place in the queue is free again
    release.set()


def test_a_signed_link_verifies_for_the_path_the_server_sees():
    from basiskit.api.auth import Tokens

    tokens = Tokens(Path("unused"), (("t" * 20, "read"),))
    url = tokens.sign("/backtests/a%20b%C3%A9/report?format=csv&x=%26")
    path, query = url.split("?", 1)
    assert tokens.signed("/backtests/a bé/report", query)  # the ASGI scope's path is decoded, its query raw
    assert not tokens.signed("/backtests/a b/report", query)
    assert not tokens.signed("/backtests/a bé/report", query.replace("format=csv", "format=json"))
    bare = tokens.sign("/modes").split("?", 1)[1]
    assert tokens.signed("/modes", bare) and not tokens.signed("/modes", "x&" + bare)
