"""Stress tests over HTTP against a real server on 127.0.0.1: the scenario library, every problem of a
request at once (no file paths from a request), a stress test's result equal to the same test run here,
its report, deleting it with its runs."""

from __future__ import annotations

import yaml

from basiskit.config.models import SHOCKS
from basiskit.data.dataset import SAMPLE_DIR, Dataset
from basiskit.results.stress_store import StressStore
from basiskit.stress.scenarios import LIBRARY
from basiskit.stress.service import StressRequest, stress_test
from server import wait_for

BODY = {"mode": "eth_leveraged", "scenarios": ["lst_slashing"], "shocks": ["lst_rate_shock.magnitude=0.03"],
        "custom": [{"type": "gas_spike", "factor": 20, "hours": 12}], "at": "2024-11-10T00:00:00Z",
        "start": "2024-11-01", "end": "2024-11-20", "capital": 100}


def test_the_scenario_library(client):
    files = {p.stem: yaml.safe_load(p.read_text()) for p in LIBRARY.glob("*.yaml")}
    listed = {s["name"]: s for s in client.get("/scenarios").json()}
    assert set(listed) == set(files) | set(SHOCKS) and len(files) >= 10
    for name, raw in files.items():
        assert listed[name]["shocks"] == raw["shocks"] and listed[name]["description"] == raw["description"]
    for kind in set(SHOCKS) - set(files):  # every shock type alone, its parameters from `shocks`
        assert listed[kind]["shocks"] == [{"type": kind}]


def test_every_problem_of_a_stress_request(client):
    some_file = str(LIBRARY / "eth_crash.yaml")  # exists on the server, but a request names library scenarios
    r = client.post("/stress", json={"mode": "eth_leveraged", "scenarios": ["eth_moon", some_file],
                                     "custom": [{"type": "gas_spike", "factor": -1}, {"type": "nope"}],
                                     "at": "2024-13-01", "grid": ["magnitude"]})
    assert r.status_code == 422
    fields = {p["field"] for p in r.json()["detail"]}
    assert {"scenarios", "custom.0.factor", "custom.1.type", "grid"} <= fields, fields
    refused = {p["value"] for p in r.json()["detail"] if p["field"] == "scenarios"}
    assert refused == {"eth_moon", some_file}
    r = client.post("/stress", json={"mode": "eth_leveraged", "scenarios": ["lst_slashing"], "at": "2030-01-01",
                                     "start": "2024-11-01", "end": "2024-11-20"})
    assert r.status_code == 422 and [p["field"] for p in r.json()["detail"]] == ["stress.0.at"]
    assert client.post("/stress", json={"mode": "eth_leveraged", "at": "worst", "extra": 1}).status_code == 422
    assert client.get("/stress/nope").status_code == 404


def test_a_stress_test_over_http_equals_the_same_test_here(client, tmp_path):
    created = client.post("/stress", json=BODY)
    assert created.status_code == 202, created.text
    stress_id = created.json()["id"]
    status = wait_for(client, stress_id, kind="stress")
    assert status["status"] == "done", status
    remote = client.get(f"/stress/{stress_id}/result").json()
    here = stress_test(StressRequest(**BODY), SAMPLE_DIR, Dataset(SAMPLE_DIR), StressStore(tmp_path / "h.db"),
                       "test", None)

    def stable(r: dict) -> dict:
        r = {k: v for k, v in r.items() if k != "stress_id"}
        for side in ("baseline", "scenario"):
            r[side] = {k: v for k, v in r[side].items() if k not in ("run_id", "results_dir", "data_source",
                                                                      "engine_seconds", "wall_seconds",
                                                                      "steps_per_second")}
        return r

    a, b = stable(remote), stable(here)
    for side in ("baseline", "scenario"):
        assert a[side] == b[side], {k: (a[side].get(k), b[side].get(k)) for k in a[side].keys() | b[side].keys()
                                    if a[side].get(k) != b[side].get(k)}
    assert a == b
    assert [s["name"] for s in remote["shocks"]] == ["lst_rate_shock", "gas_spike"]
    assert remote["shocks"][0]["magnitude"] == 0.03 and remote["shocks"][1]["at"] == BODY["at"]
    report = client.get(f"/stress/{stress_id}/report").text
    assert f"basiskit stress {stress_id}" in report and 'id="comparison"' in report
    # the two runs are ordinary stored runs
    for run_id in (status["baseline_run_id"], status["scenario_run_id"]):
        assert client.get(f"/backtests/{run_id}").json()["status"] == "done"
    assert stress_id in {t["id"] for t in client.get("/stress").json()["items"]}
    assert client.delete(f"/stress/{stress_id}").json() == {"id": stress_id, "status": "deleted"}
    assert client.get(f"/stress/{stress_id}").status_code == 404
    assert client.get(f"/backtests/{status['baseline_run_id']}").status_code == 404


def test_stress_tests_submitted_at_once_each_equal_their_own_run(client):
    """Several stress tests running together in the service's threads: each result is its own."""
    bodies = [BODY | {"shocks": [f"lst_rate_shock.magnitude={m}"], "grid": ["lst_rate_shock.magnitude=0.02,0.2"]}
              for m in (0.01, 0.05, 0.2)]
    ids = [client.post("/stress", json=b).json()["id"] for b in bodies]
    results = []
    for stress_id in ids:
        assert wait_for(client, stress_id, kind="stress")["status"] == "done"
        results.append(client.get(f"/stress/{stress_id}/result").json())
    assert len({r["baseline"]["final_nav"] for r in results}) == 1  # one baseline, computed three times
    losses = [r["loss_vs_baseline"] for r in results]
    assert losses == sorted(losses) and losses[0] > 0  # a deeper slashing never costs less
    for r, m in zip(results, (0.01, 0.05, 0.2), strict=True):
        assert r["shocks"][0]["magnitude"] == m
        # the preset holds HF = LT / target LTV = 0.95 / 0.85 = 1.1176, a distance 1 - 1/HF of 10.5%:
        # 2% is short of it, 20% past it, in every one of the three maps
        assert [g["liquidated"] for g in r["grid"]["runs"]] == [False, True]
