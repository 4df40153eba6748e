"""Run reports stay light without losing what their charts show: one year of hourly
usdt_market_neutral under 3 MB, every spike and dip of every line kept, the full table as CSV beside
it, and the charts drawn offline by a real browser."""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from basiskit.engine.runconfig import load_run_config
from basiskit.results.html import thin
from basiskit.results.report import write_report
from basiskit.results.service import execute


def test_thinning_keeps_the_ends_and_every_extreme():
    rng = np.random.default_rng(3)
    y = np.cumsum(rng.normal(size=50_000))
    y[12_345] += 500.0  # a one-hour spike
    z = -y
    idx = thin(len(y), [y, z])
    assert idx[0] == 0 and idx[-1] == len(y) - 1 and len(idx) <= 1600
    assert 12_345 in idx and y[idx].max() == y.max() and y[idx].min() == y.min() and z[idx].max() == z.max()
    assert np.array_equal(thin(100, [y[:100]]), np.arange(100))  # short series are kept whole


def _figures(html: str) -> list[dict]:
    raw = re.search(r'<script type="application/json" id="figures">(.*?)</script>', html, re.S).group(1)
    return json.loads(raw.replace("<\\/", "</"))


def _array(value) -> np.ndarray:
    if isinstance(value, dict):  # plotly's typed array: base64 of the raw values
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
    return np.asarray(value, dtype=float)


def test_one_year_report_is_light_and_keeps_what_it_shows(full_data, tmp_path):
    cfg = load_run_config("usdt_market_neutral", extra={"start": "2024-06-01", "end": "2025-06-01"})
    output = execute(cfg, full_data, "full", "report-test")
    path = tmp_path / "year.html"
    csv = write_report(path, output.summary, output.ticks, output.events, cfg.model_dump(mode="json"))
    html = path.read_text()
    assert len(html.encode()) < 3_000_000, f"{len(html.encode()):,} bytes"
    assert "<script src=" not in html and 'href="year.ticks.csv"' in html
    full = pd.read_csv(csv)
    assert len(full) == 365 * 24 + 1 and full["nav"].iloc[-1] == pytest.approx(output.summary["final_nav"], rel=1e-15)
    nav = next(t for fig in _figures(html) for t in fig["data"] if t.get("name") == "NAV (USDT)")
    y = _array(nav["y"])
    assert len(y) < 3000 and y.max() == output.ticks["nav"].max() and y.min() == output.ticks["nav"].min()
    if shutil.which("chromium") and shutil.which("chromedriver"):
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.support.ui import WebDriverWait

        options = Options()
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--no-first-run"):
            options.add_argument(arg)
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
        try:
            driver.get(Path(path).as_uri())
            WebDriverWait(driver, 60).until(lambda d: d.execute_script("return document.body.dataset.charts"))
            drawn = driver.execute_script("return document.querySelectorAll('.js-plotly-plot').length")
            assert drawn == len(_figures(html)) >= 7
        finally:
            driver.quit()
