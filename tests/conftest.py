"""Shared fixtures: the full real dataset beside the repo (tests skip without it) and the sample."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from basiskit.data.dataset import SAMPLE_DIR

REPO = Path(__file__).resolve().parents[1]
FULL_DATA = Path(os.environ.get("BASISKIT_FULL_DATA", REPO.parent / "shared" / "market-data"))


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """Tests choose their dataset explicitly (a BASISKIT_DATA in the shell must not leak in) and store
    runs in a database of their own, never the user's (and live sessions' leases in a folder of their own)."""
    monkeypatch.delenv("BASISKIT_DATA", raising=False)
    monkeypatch.setenv("BASISKIT_DB", str(tmp_path / "runs.db"))
    monkeypatch.setenv("BASISKIT_LEASE_DIR", str(tmp_path / "leases"))  # live sessions' lock files (live/lease.py)


@pytest.fixture(scope="session")
def full_data() -> Path:
    if not (FULL_DATA / "MANIFEST.json").is_file():
        pytest.skip(f"full market data not found at {FULL_DATA} "
                    "(set BASISKIT_FULL_DATA or place shared/market-data beside the repo)")
    return FULL_DATA


@pytest.fixture(scope="module")
def server(tmp_path_factory, request):
    """A real server on 127.0.0.1 over the embedded sample, one per test module."""
    from server import Server

    tmp = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    s = Server(tmp / "runs.db", SAMPLE_DIR, tmp / "server.log").start()
    yield s
    s.stop()


@pytest.fixture
def client(server):
    """An HTTP client of the module's server."""
    with server.client() as c:
        yield c


@pytest.fixture
def sample_copy(tmp_path) -> Path:
    """A writable copy of the embedded sample, for corrupting."""
    dest = tmp_path / "data"
    shutil.copytree(SAMPLE_DIR, dest)
    return dest


def raw_csv(root: Path, series: str) -> pd.DataFrame:
    """A series read straight from its CSV, indexed by its timestamp text (independent of basiskit)."""
    return pd.read_csv(root / f"{series}.csv.gz").set_index("timestamp")


def edit_series(root: Path, series: str, edit) -> None:
    """Apply `edit` (DataFrame -> DataFrame) to a series of a dataset copy; its MANIFEST entry follows
    (sha256, rows)."""
    import gzip
    import hashlib
    import json

    path = root / f"{series}.csv.gz"
    df = edit(pd.read_csv(path))
    raw = gzip.compress(df.to_csv(index=False).encode(), mtime=0)
    path.write_bytes(raw)
    manifest = json.loads((root / "MANIFEST.json").read_text())
    entry = manifest["files"][f"{series}.csv.gz"]
    entry["sha256"], entry["rows"] = hashlib.sha256(raw).hexdigest(), len(df)
    (root / "MANIFEST.json").write_text(json.dumps(manifest))


@pytest.fixture(scope="session")
def chain_tools():
    """anvil and Aave v3's artifacts, installed by `make chain-tools` (make test does it). They skip, naming what
    is missing, only outside CI: there they must run."""
    from basiskit.localchain.tools import ChainTools, ChainToolsMissing

    try:
        return ChainTools.locate(REPO)
    except ChainToolsMissing as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the chain tests: {exc}")
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def local_market(chain_tools):
    """An anvil node on 127.0.0.1 with an Aave v3 market deployed from Aave's artifacts, one per test module."""
    import json

    from web3 import Web3

    from basiskit.localchain.deploy import Artifacts, deploy_market
    from basiskit.localchain.tools import Anvil

    risk = json.loads((SAMPLE_DIR / "params" / "aave_v3_risk.json").read_text())
    with Anvil(chain_tools) as node:
        w3 = Web3(Web3.HTTPProvider(node.url))
        yield node, deploy_market(w3, Artifacts.of(chain_tools), risk), risk


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory):
    """A throw-away PostgreSQL server of this worker's on a Unix socket (tests/postgres.py): the SQLAlchemy URL of
    its database `basiskit`. It skips, naming what is missing, only outside CI: there it must run."""
    from postgres import missing, throwaway_postgres

    if reason := missing():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the PostgreSQL tests: {reason}")
        pytest.skip(reason)
    with throwaway_postgres(tmp_path_factory.mktemp("postgres")) as url:
        yield url


@pytest.fixture
def pg_database(postgres_url):
    """The SQLAlchemy URL of a new, empty database of the test's own on that server, dropped after it."""
    from postgres import fresh_database

    with fresh_database(postgres_url) as url:
        yield url


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture
def browser():
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("Debian chromium and chromium-driver are not installed (make setup installs them as root)")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--enable-unsafe-swiftshader",  # WebGL in software, for plotly's parallel coordinates
                "--window-size=1280,2200"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console errors, CSP violations
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()
