"""Installed as operators install it: the wheel built from the repo, in a fresh venv (its dependencies from
the package index), runs a backtest on its embedded sample and serves the dashboard and the API."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import venv
import zipfile
from pathlib import Path

import httpx

from server import free_port

REPO = Path(__file__).resolve().parents[1]


def test_the_wheel_in_a_fresh_venv_backtests_and_serves(tmp_path):
    dist, source = tmp_path / "dist", tmp_path / "source"  # built from a copy: the repo gets no build folders
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".venv", ".git", "build", "dist", "*.egg-info", "runs",
                                                                "test-artifacts", "__pycache__", ".ruff_cache",
                                                                "node_modules"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                        str(dist), str(source)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    (wheel,) = dist.glob("basiskit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("basiskit/api/static/ui.js", "basiskit/api/static/ui.html", "basiskit/presets/eth_basis.yaml",
                   "basiskit/scenarios/eth_crash.yaml", "basiskit/data/sample/MANIFEST.json"):
        assert needed in names, needed
    assert any(n.startswith("basiskit/data/sample/aave/") and n.endswith(".csv.gz") for n in names)
    env_dir = tmp_path / "fresh"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    bin_dir = env_dir / "bin"
    # --no-compile: byte-compiling every dependency (plotly, pandas) would double the install time
    r = subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "-q", "--no-compile", str(wheel)],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if k not in ("BASISKIT_DATA", "BASISKIT_TOKENS", "PYTHONPATH")}
    env["BASISKIT_DB"] = str(tmp_path / "runs.db")
    work = tmp_path / "elsewhere"  # not the repo: only the installed package can answer
    work.mkdir()
    r = subprocess.run([str(bin_dir / "basiskit"), "backtest", "eth_basis", "--start", "2024-11-01", "--end",
                        "2024-11-15", "--json"], capture_output=True, text=True, timeout=300, cwd=work, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout)
    assert summary["mode"] == "eth_basis" and "sample" in summary["data_source"]
    port = free_port()
    log = tmp_path / "serve.log"
    proc = subprocess.Popen([str(bin_dir / "basiskit"), "serve", "--port", str(port)], cwd=work, env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        assert httpx.get(url + "/health").status_code == 200, log.read_text()
        assert "fetch(" in httpx.get(url + "/static/ui.js").text
        token = (tmp_path / "runs.tokens").read_text().split()[1]
        modes = httpx.get(url + "/modes", headers={"Authorization": f"Bearer {token}"}).json()
        assert len(modes) == 8
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
