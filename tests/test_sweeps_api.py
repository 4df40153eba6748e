"""Sweeps over HTTP against a real server on 127.0.0.1: every problem of a request at once, a sweep's
result equal to the same sweep run here, its report, cancelling and deleting."""

from __future__ import annotations

from basiskit.data.dataset import SAMPLE_DIR, Dataset
from basiskit.results.sweep_store import SweepStore
from basiskit.sweeps.service import sweep as run_sweep
from basiskit.sweeps.spec import SweepRequest
from server import wait_for

BODY = {"mode": "usdt_market_neutral", "params": ["target_ltv=0.80:0.85:0.05", "stake_allocation=0.5,0.75"],
        "start": "2024-11-01", "end": "2024-11-20", "capital": 100000, "constraints": ["min_health_factor>=1.1"]}


def test_every_problem_of_a_sweep_request(client):
    r = client.post("/sweeps", json={"mode": "usdt_market_neutral", "params": ["target_ltv=0.9:0.8:0.1", "nope=1"],
                                     "objective": "fun", "constraints": ["apy>"], "search": "tpe"})
    assert r.status_code == 422
    assert {p["field"] for p in r.json()["detail"]} == {"params.0", "params.1", "objective", "constraints.0", "trials"}
    assert client.post("/sweeps", json={"mode": "x", "workers": 0}).status_code == 422


def test_a_sweep_over_http_equals_the_same_sweep_here(client, tmp_path):
    created = client.post("/sweeps", json=BODY)
    assert created.status_code == 202 and created.json()["n_runs"] == 4
    sweep_id = created.json()["id"]
    status = wait_for(client, sweep_id, kind="sweeps")
    assert status["status"] == "done" and status["done"] == status["total"] == 4 and status["progress"] == 1.0
    remote = client.get(f"/sweeps/{sweep_id}/result").json()
    here = run_sweep(SweepRequest(**BODY, workers=1), SAMPLE_DIR, Dataset(SAMPLE_DIR),
                     SweepStore(tmp_path / "here.db"), "test")
    volatile = {"sweep_id", "wall_seconds"}
    assert remote.pop("capacity") is None  # capital is not a param of this sweep
    assert {k: v for k, v in remote.items() if k not in volatile} == {k: v for k, v in here.items()
                                                                       if k not in volatile}
    report = client.get(f"/sweeps/{sweep_id}/report?x=stake_allocation&y=target_ltv").text
    assert "mean apy over stake_allocation and target_ltv" in report
    assert client.get(f"/sweeps/{sweep_id}/report?x=nope").status_code == 422
    assert sweep_id in {s["id"] for s in client.get("/sweeps").json()["items"]}
    assert client.delete(f"/sweeps/{sweep_id}").json() == {"id": sweep_id, "status": "deleted"}
    assert client.get(f"/sweeps/{sweep_id}").status_code == 404


def test_a_running_sweep_can_be_cancelled(client):
    body = BODY | {"params": ["target_ltv=0.50:0.85:0.01"], "start": None, "end": None, "workers": 1}
    sweep_id = client.post("/sweeps", json=body).json()["id"]
    assert client.delete(f"/sweeps/{sweep_id}").json()["status"] == "cancelled"
    status = wait_for(client, sweep_id, kind="sweeps")
    assert status["status"] == "cancelled" and status["done"] < status["total"]
    result = client.get(f"/sweeps/{sweep_id}/result").json()
    assert result["status"] == "cancelled" and len(result["runs"]) == status["done"]
