"""The dashboard in Debian's Chromium (headless, driven by selenium) against a real server: every page opened by its
own URL with real runs, a sweep, a stress test and a paper session in the store, each number checked against the
API's (and the tearsheet's against ticks.parquet, computed here), at 1280 px wide."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from basiskit.data.dataset import SAMPLE_DIR
from server import Server, wait_for

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
WIDTH = 1280


def open_page(browser, server, path: str, token: str | None = None) -> None:
    """Open a dashboard page as an operator who gave the token when asked (kept for the browser session)."""
    browser.get(server.url + "/health")
    browser.execute_script("sessionStorage.setItem('basiskit-token', arguments[0])", token or server.operate_token)
    browser.get(server.url + path)


def ready(browser, page: str, timeout: float = 90) -> None:
    """Wait until the page's script has drawn `page` (body data-ready), failing on an error page."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, timeout).until(lambda d: d.execute_script("return document.body.dataset.ready"))
    state = browser.execute_script("return document.body.dataset.ready")
    assert state == page, browser.find_element("id", "page").text[:500]


def clean(browser, where: str) -> None:
    """No console error, nothing wider than the window, and a screenshot."""
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE" and "status of 422" not in e["message"]]
    assert not errors, f"{where}: {errors}"
    assert browser.execute_script("return document.documentElement.scrollWidth") <= WIDTH, where
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / f"ui-{where}.png"))


def js(browser, script: str, *args):
    return browser.execute_script(script, *args)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A server whose store holds two runs, a sweep over target_ltv and initial_capital, a stress test with a
    liquidation map and a finished paper session."""
    tmp = tmp_path_factory.mktemp("ui")
    db = tmp / "ui.db"
    server = Server(db, SAMPLE_DIR, tmp / "server.log").start()
    env = {k: v for k, v in os.environ.items() if k != "BASISKIT_DATA"}
    paper = subprocess.Popen(
        [sys.executable, "-m", "basiskit.cli", "paper", "run", "eth_leveraged", "--data", str(SAMPLE_DIR),
         "--start", "2024-11-01", "--end", "2024-11-04", "--speed", "1000", "--session", "replayed",
         "--db", str(db), "--out", str(tmp / "runs"), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        with server.client() as c:
            whole = c.post("/backtests", json={"mode": "usdt_market_neutral"}).json()["id"]
            month = c.post("/backtests", json={"mode": "eth_basis", "start": "2024-11-01",
                                               "end": "2024-12-01"}).json()["id"]
            sweep = c.post("/sweeps", json={"mode": "usdt_market_neutral", "start": "2024-11-01", "end": "2024-11-08",
                                            "workers": 1, "capital": 500000, "params": ["target_ltv=0.75,0.85",
                                                                     "initial_capital=100000,10000000"]}).json()["id"]
            stress = c.post("/stress", json={"mode": "eth_leveraged", "start": "2024-10-10", "end": "2024-12-10",
                                             "at": "2024-11-05T00:00:00Z", "scenarios": ["lst_slashing"],
                                             "shocks": ["magnitude=0.2"],
                                             "grid": ["magnitude=0.01,0.1,0.2"]}).json()["id"]
            for ident, kind in ((whole, "backtests"), (month, "backtests"), (sweep, "sweeps"), (stress, "stress")):
                assert wait_for(c, ident, kind=kind)["status"] == "done", (kind, ident)
        out, err = paper.communicate(timeout=300)
        assert paper.returncode == 0, err
        yield {"server": server, "whole": whole, "month": month, "sweep": sweep, "stress": stress,
               "paper": "replayed", "paper_summary": json.loads(out)}
    finally:
        if paper.poll() is None:
            paper.kill()
        server.stop()


def test_runs_page_filters_sorts_and_shows_the_apis_figures(browser, store):
    from selenium.webdriver.common.by import By

    server = store["server"]
    open_page(browser, server, "/ui/runs")
    ready(browser, "runs")
    for run in (store["whole"], store["month"]):
        result = server.get(f"/backtests/{run}/result").json()
        row = f'#runs tr[data-run="{run}"]'
        for col in ("apy", "total_return", "final_nav"):
            shown = js(browser, f"return document.querySelector('{row} [data-col={col}]').dataset.value")
            assert float(shown) == result[col], (run, col)
    # sort by APY: the rows follow their values
    browser.find_element(By.XPATH, "//table[@id='runs']//th[text()='APY']").click()
    def apys():
        return js(browser, "return [...document.querySelectorAll('#runs tbody [data-col=apy]')]"
                           ".map(td => Number(td.dataset.value))")
    assert apys() == sorted(apys()) and len(apys()) >= 2  # the stress test stored its two runs too
    browser.find_element(By.XPATH, "//table[@id='runs']//th[text()='APY']").click()  # again: descending
    assert apys() == sorted(apys(), reverse=True) and apys()[0] > apys()[-1]
    clean(browser, "runs")
    # a filter is part of the URL: reopened, it filters the same
    open_page(browser, server, "/ui/runs?mode=eth_basis")
    ready(browser, "runs")
    rows = js(browser, "return [...document.querySelectorAll('#runs tbody tr')].map(r => r.dataset.run)")
    assert rows == [store["month"]]
    assert browser.find_element(By.ID, "filter-mode").get_attribute("value") == "eth_basis"
    open_page(browser, server, "/ui/runs?status=failed")
    ready(browser, "runs")
    assert browser.find_elements(By.CSS_SELECTOR, "#runs tbody tr") == []
    # dark, and it stays dark on the next page
    browser.find_element(By.ID, "theme").click()
    open_page(browser, server, "/ui/runs")
    ready(browser, "runs")
    assert js(browser, "return document.documentElement.dataset.theme") == "dark"
    assert js(browser, "return getComputedStyle(document.body).backgroundColor") == "rgb(15, 20, 25)"
    clean(browser, "runs-dark")
    browser.find_element(By.ID, "theme").click()


def test_the_run_tearsheet_equals_the_api_and_the_ticks(browser, store):
    from selenium.webdriver.support.ui import WebDriverWait

    server, run = store["server"], store["whole"]
    result = server.get(f"/backtests/{run}/result").json()
    sheet = server.get(f"/backtests/{run}/tearsheet").json()
    ticks = pd.read_parquet(io.BytesIO(server.get(f"/backtests/{run}/timeseries?format=parquet").content))
    open_page(browser, server, f"/ui/runs/{run}")
    ready(browser, "run")
    # headline: each card's value is the summary's, each has its definition on hover
    cards = js(browser, "return [...document.querySelectorAll('#headline .card')].map(c => "
                        "[c.dataset.key, c.querySelector('.value').dataset.value, c.title])")
    assert {k for k, _, _ in cards} >= {"total_return", "apy", "max_drawdown", "sharpe", "final_nav"}
    expected = {**result, "liquidations": result["liquidations"]["count"],
                "longest_under_water": result["time_under_water"]["longest_hours"],
                "under_water_share": result["time_under_water"]["fraction"], "exit_cost": result["exit"]["cost"],
                "benchmark_apy": (result.get("benchmark") or {}).get("apy")}
    for key, value, title in cards:
        assert (value == "" and expected[key] is None) or float(value) == expected[key], key
        assert len(title) > 20
    # three months and the worst drawdown, from ticks.parquet here: the share index at each month's last tick over
    # the one before the month (1.0 before the run)
    index = ticks.set_index("timestamp")["share_index"]
    month_end = index.groupby(index.index.strftime("%Y-%m")).last()
    before = pd.concat([pd.Series([1.0]), month_end.iloc[:-1]]).to_numpy()
    expected = dict(zip(month_end.index, month_end.to_numpy() / before - 1.0, strict=True))
    assert len(expected) >= 3
    for month in list(expected)[:3]:
        shown = js(browser, f"return document.querySelector('#monthly-returns [data-month=\"{month}\"]').dataset.value")
        assert float(shown) == pytest.approx(expected[month], rel=1e-12, abs=1e-15), month
    peak = np.maximum.accumulate(np.concatenate(([1.0], index.to_numpy())))[1:]
    depth = 1.0 - index.to_numpy() / peak
    worst = js(browser, "return document.querySelector('#drawdowns [data-rank=\"0\"] [data-col=depth]').dataset.value")
    assert float(worst) == pytest.approx(depth.max(), rel=1e-12)
    assert depth.max() == pytest.approx(result["max_drawdown"])
    trough = js(browser, "return document.querySelector('#drawdowns [data-rank=\"0\"] [data-col=trough]').textContent")
    assert trough == index.index[int(depth.argmax())].strftime("%Y-%m-%d %H:%M")
    # attribution: the sum of each source's hourly PnL; costs by kind add up to the transaction costs
    for source in ("funding", "borrow_cost", "staking_yield"):
        shown = js(browser, f"return document.querySelector('#attribution [data-source={source}] "
                            "[data-col=share_class]').dataset.value")
        assert float(shown) == pytest.approx(ticks[f"pnl_{source}"].sum(), rel=1e-12)
    costs = js(browser, "return [...document.querySelectorAll('#costs tbody td[data-value]')]"
                        ".map(td => Number(td.dataset.value))")
    assert sum(costs) == pytest.approx(-ticks["pnl_transaction_costs"].sum(), rel=1e-9)
    # every panel of the API drawn (those below the first screen just after it), the NAV's last point the final
    # NAV, the funding panel per venue
    WebDriverWait(browser, 30).until(lambda d: d.execute_script("return document.body.dataset.panels") == "drawn")
    drawn = js(browser, "return [...document.querySelectorAll('#panels .js-plotly-plot')].map(d => d.id)")
    assert drawn == [f"panel-{p['id']}" for p in sheet["panels"]]
    assert {"panel-nav", "panel-underwater", "panel-rolling", "panel-attribution", "panel-attribution_usd",
            "panel-funding", "panel-costs", "panel-exposure", "panel-net_delta", "panel-risk"} <= set(drawn)
    nav_last = js(browser, "const y = document.getElementById('panel-nav')._fullData[0].y; return y[y.length - 1]")
    assert nav_last == result["final_nav"]  # plotly decoded the base64 typed array the API sent
    venues = js(browser, "return document.getElementById('panel-funding').data.map(t => t.name)")
    assert sorted(venues) == sorted(c.removeprefix("funding:") for c in ticks.columns if c.startswith("funding:"))
    waterfall = js(browser, "return Array.from(document.getElementById('panel-attribution')._fullData[0].y)")
    assert waterfall[:-1] == pytest.approx([ticks[f"pnl_{s}"].sum() for s in result["pnl_attribution"]] +
                                           [ticks["residual"].sum()], rel=1e-12, abs=1e-9)
    # the NAV panel's log button: both of its axes turn logarithmic
    assert js(browser, "return document.getElementById('panel-nav').layout.yaxis.type") == "linear"
    js(browser, "[...document.querySelectorAll('#panel-nav .updatemenu-button')].find(b => b.textContent === 'log')"
                ".dispatchEvent(new MouseEvent('click', {bubbles: true}))")
    scales = "const l = document.getElementById('panel-nav').layout; return [l.yaxis.type, l.yaxis2.type]"
    WebDriverWait(browser, 10).until(lambda d: d.execute_script(scales) == ["log", "log"])
    clean(browser, "run")
    # the whole tearsheet in one picture (for docs/screenshots)
    browser.set_window_size(WIDTH, min(js(browser, "return document.documentElement.scrollHeight") + 140, 9000))
    time.sleep(1.0)
    browser.save_screenshot(str(ARTIFACTS / "ui-run-full.png"))
    browser.set_window_size(WIDTH, 2200)


def test_compare_sweeps_stress_and_sessions_pages_show_the_apis_numbers(browser, store):
    from selenium.webdriver.support.ui import WebDriverWait

    server = store["server"]
    a, b = store["whole"], store["month"]
    # compare: the metrics side by side, NAV indexed to 100
    open_page(browser, server, f"/ui/compare?ids={a}&ids={b}")
    ready(browser, "compare")
    cmp = server.get(f"/compare?ids={a}&ids={b}").json()
    for row in cmp["metrics"]:
        shown = js(browser, "return [...document.querySelectorAll(`#compare-table tr[data-metric=${arguments[0]}] td`)]"
                            ".map(td => td.dataset.value)", row["metric"])
        assert [None if s == "" else float(s) for s in shown] == row["values"], row["metric"]
    last = js(browser, "return document.getElementById('compare-nav').data.map(t => t.y[t.y.length - 1])")
    assert last == [s["nav_indexed"][-1] for s in cmp["series"]]
    keys = js(browser, "return [...document.querySelectorAll('#compare-config tr[data-key]')].map(r => r.dataset.key)")
    assert keys == [d["key"] for d in cmp["config_differences"]] and "mode" in keys
    clean(browser, "compare")
    # the sweep: ranked configs, heatmap and capacity computed here from its runs
    open_page(browser, server, "/ui/sweeps")
    ready(browser, "sweeps")
    assert js(browser, f"return !!document.querySelector('[data-sweep=\"{store['sweep']}\"]')")
    clean(browser, "sweeps")
    open_page(browser, server, f"/ui/sweeps/{store['sweep']}")
    ready(browser, "sweep")
    result = server.get(f"/sweeps/{store['sweep']}/result").json()
    assert js(browser, "return document.querySelectorAll('#sweep-table tbody tr').length") == result["n_runs"] == 4
    apy = {(r["params"]["initial_capital"], r["params"]["target_ltv"]): r["apy"] for r in result["runs"]}
    z = js(browser, "return document.getElementById('sweep-heatmap').data[0].z")
    assert z == [[apy[(c, t)] for t in (0.75, 0.85)] for c in (100000, 10000000)]
    capacity = js(browser, "const d = document.getElementById('sweep-capacity').data; "
                           "return [d[0].x, d[0].y, d[3].y, d[1].y]")
    assert capacity[0] == [100000, 10000000]
    assert capacity[1] == pytest.approx([np.mean([apy[(c, t)] for t in (0.75, 0.85)]) for c in (100000, 10000000)])
    costs = {c: np.mean([-r["transaction_costs"] / c for r in result["runs"] if r["params"]["initial_capital"] == c])
             for c in (100000, 10000000)}
    assert capacity[2] == pytest.approx([costs[100000], costs[10000000]])
    net = {c: np.mean([r["capacity"]["apy_net_of_exit"] for r in result["runs"] if r["params"]["initial_capital"] == c])
           for c in (100000, 10000000)}  # APY net of the exit at the last hour, from each run's summary
    assert capacity[3] == pytest.approx([net[100000], net[10000000]])
    assert js(browser, "return document.getElementById('sweep-parcoords').data[0].dimensions.length") == 3
    browser.find_element("id", "sweep-filter").send_keys("10000000")
    assert js(browser, "return [...document.querySelectorAll('#sweep-table tbody tr')]"
                       ".filter(r => !r.hidden).length") == 2
    clean(browser, "sweep")
    # a config of the largest capital opened in full: the swept capital, not the sweep's own, and its sweep run's NAV
    big = next(r for r in result["runs"] if r["params"] == {"target_ltv": 0.75, "initial_capital": 10000000})
    browser.find_element("css selector", f'.run-full[data-config="{big["config_index"]}"]').click()
    WebDriverWait(browser, 30).until(lambda d: "/ui/runs/" in d.current_url)
    ready(browser, "run", timeout=120)
    full = server.get(f"/backtests/{browser.current_url.rsplit('/', 1)[1]}/result").json()
    assert full["initial_capital"] == 10000000 and full["final_nav"] == big["final_nav"]
    # the stress test: baseline and scenario side by side, the map red where liquidated
    open_page(browser, server, "/ui/stress")
    ready(browser, "stresses")
    clean(browser, "stress-list")
    open_page(browser, server, f"/ui/stress/{store['stress']}")
    ready(browser, "stress")
    r = server.get(f"/stress/{store['stress']}/result").json()
    cells = js(browser, "return [...document.querySelectorAll('#stress-table tr')].filter(tr => "
                        "tr.querySelector('th').textContent === 'liquidations')"
                        ".map(tr => [...tr.querySelectorAll('td')].map(td => td.textContent))[0]")
    assert cells == [str(r["baseline"]["liquidations"]["count"]), str(r["scenario"]["liquidations"]["count"])]
    nav = js(browser, "return document.getElementById('stress-nav').data.map(t => t.y)")
    for trace, side in zip(nav, ("baseline", "scenario"), strict=True):
        assert trace == server.get(f"/backtests/{r[side]['run_id']}/timeseries").json()["data"]["nav"]
    colors = js(browser, "return document.getElementById('stress-map').data[0].marker.color")
    assert colors == ["crimson" if g["liquidated"] else "seagreen" for g in r["grid"]["runs"]]
    clean(browser, "stress")
    # sessions: the list, and the paper session's NAV, risk and orders as the API has them
    open_page(browser, server, "/ui/sessions")
    ready(browser, "sessions")
    assert js(browser, "return [...document.querySelectorAll('#sessions tbody tr')].map(r => r.dataset.session)") == [
        store["paper"]]
    clean(browser, "sessions")
    open_page(browser, server, f"/ui/sessions/paper/{store['paper']}")
    ready(browser, "paper")
    ticks = server.get(f"/paper/{store['paper']}/ticks").json()
    chart = js(browser, "return document.getElementById('paper-nav').data[0].y")
    assert chart == [t["nav"] for t in ticks] and chart[-1] == store["paper_summary"]["final_nav"]
    status = server.get(f"/paper/{store['paper']}").json()
    assert js(browser, "return document.querySelector('[data-metric=\"health factor\"]').textContent") == \
        f"{status['risk']['health_factor']:.4f}"
    orders = server.get(f"/paper/{store['paper']}/orders").json()
    assert js(browser, "return document.querySelectorAll('#paper-orders tbody tr').length") == min(len(orders), 200) > 0
    clean(browser, "paper")
    open_page(browser, server, "/ui/no-such-page")
    ready(browser, "missing")


def leaves(schema: dict, node: dict, prefix: str = "") -> dict[str, dict]:
    """Every field of the config schema the form must show, by dotted key, resolved here from the JSON schema."""
    out = {}
    for name, raw in node.get("properties", {}).items():
        key = f"{prefix}{name}"
        s, optional = raw, False
        while "$ref" in s or "anyOf" in s:
            if "$ref" in s:
                s = schema["$defs"][s["$ref"].split("/")[-1]]
            else:
                rest = [a for a in s["anyOf"] if a.get("type") != "null"]
                optional = optional or len(rest) < len(s["anyOf"])
                s = rest[0] if len(rest) == 1 else {"type": "json"}
        if s.get("type") == "object" and "properties" in s:
            out |= leaves(schema, s, f"{key}.")
        elif key != "mode":
            out[key] = {**s, "optional": optional}
    return out


def test_the_new_run_form_is_the_config_schema_and_flags_each_problem_at_its_field(browser, store):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server = store["server"]
    modes = [m["mode"] for m in server.get("/modes").json()]
    assert len(modes) == 8
    for mode in modes:
        detail = server.get(f"/modes/{mode}").json()
        fields = leaves(detail["config_schema"], detail["config_schema"])
        open_page(browser, server, f"/ui/new?mode={mode}")
        ready(browser, "new")
        form = f'#config-form[data-mode="{mode}"]'
        WebDriverWait(browser, 30).until(lambda d, form=form: d.find_elements(By.CSS_SELECTOR, form))
        shown = js(browser, "return Object.fromEntries([...document.querySelectorAll('.field')].map(f => { "
                            "const i = f.querySelector('[data-key]'); return [f.dataset.field, {kind: i.dataset.kind, "
                            "type: f.querySelector('.type').textContent, min: i.getAttribute('min'), "
                            "max: i.getAttribute('max'), tag: i.tagName, options: i.tagName === 'SELECT' ? "
                            "[...i.options].map(o => o.value) : null, "
                            "value: i.type === 'checkbox' ? i.checked : i.value}]}))")
        assert set(shown) == set(fields), mode
        for key, s in fields.items():
            got = shown[key]
            if "enum" in s:
                assert got["tag"] == "SELECT" and [o for o in got["options"] if o] == s["enum"], key
            elif s.get("type") in ("number", "integer"):
                assert got["kind"] == s["type"], key
                low = s.get("minimum", s.get("exclusiveMinimum"))
                high = s.get("maximum", s.get("exclusiveMaximum"))
                assert (got["min"] is None) == (low is None) and (low is None or float(got["min"]) == low), key
                assert (got["max"] is None) == (high is None) and (high is None or float(got["max"]) == high), key
                if "exclusiveMinimum" in s:
                    assert f"{s['exclusiveMinimum']:g} < x" in got["type"].replace(".0 ", " "), (key, got["type"])
            elif s.get("type") == "boolean":
                assert got["kind"] == "boolean", key
            assert ("optional" in got["type"]) == s["optional"], key
        # the preset's own values are shown
        preset = detail["preset"]
        assert float(shown["initial_capital"]["value"]) == preset["initial_capital"]
        clean(browser, f"new-{mode}")
    # out of range: flagged at its field as it is typed, and by the server after submitting
    open_page(browser, server, "/ui/new?mode=usdt_market_neutral")
    ready(browser, "new")
    ltv = browser.find_element(By.ID, "f-target_ltv")
    js(browser, "arguments[0].closest('details')?.setAttribute('open', '')", ltv)
    ltv.clear()
    ltv.send_keys("1.5")
    field = '[data-field="target_ltv"]'
    assert "invalid" in browser.find_element(By.CSS_SELECTOR, field).get_attribute("class")
    assert js(browser, f"return document.querySelector('{field} .problem').dataset.source") == "browser"
    assert "less than 1" in browser.find_element(By.CSS_SELECTOR, f"{field} .problem").text
    assert "changed" in browser.find_element(By.CSS_SELECTOR, field).get_attribute("class")
    browser.find_element(By.ID, "run").click()
    WebDriverWait(browser, 30).until(lambda d: d.execute_script(
        f"return document.querySelector('{field} .problem').dataset.source") == "server")
    refused = server.client().post("/backtests", json={"mode": "usdt_market_neutral",
                                                       "config_overrides": {"target_ltv": 1.5}}).json()["detail"]
    message = next(p["message"] for p in refused if p["field"] == "target_ltv")
    assert message in browser.find_element(By.CSS_SELECTOR, f"{field} .problem").text
    clean(browser, "new-refused")
    # corrected, with a shorter window: the run's own page follows it to its tearsheet
    ltv.clear()
    ltv.send_keys("0.8")
    for key, value in (("start", "2024-11-01T00:00:00Z"), ("end", "2024-11-08T00:00:00Z")):
        box = browser.find_element(By.ID, f"f-{key}")
        box.send_keys(value)
    browser.find_element(By.ID, "run").click()
    WebDriverWait(browser, 60).until(lambda d: "/ui/runs/" in d.current_url)
    ready(browser, "run", timeout=120)
    run_id = browser.current_url.rsplit("/", 1)[1]
    got = server.get(f"/backtests/{run_id}/result").json()
    assert got["start"] == "2024-11-01T00:00:00Z" and got["end"] == "2024-11-08T00:00:00Z"
    config = server.get(f"/compare?ids={run_id}&ids={store['whole']}").json()["config_differences"]
    assert {"key": "target_ltv", "values": [0.8, 0.85]} in config or any(
        d["key"] == "target_ltv" and d["values"][0] == 0.8 for d in config)


def test_a_sweep_and_a_stress_test_submitted_from_their_pages(browser, store):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    server = store["server"]
    open_page(browser, server, "/ui/sweeps?new")
    ready(browser, "sweeps")
    Select(browser.find_element(By.ID, "sweep-mode")).select_by_value("pure_lending_usdt")
    params = browser.find_element(By.ID, "sweep-params")
    params.clear()
    params.send_keys("costs.enabled=true,false")
    for field, value in (("sweep-start", "2024-11-01"), ("sweep-end", "2024-11-04")):
        browser.find_element(By.ID, field).send_keys(value)
    browser.find_element(By.ID, "sweep-run").click()
    WebDriverWait(browser, 30).until(lambda d: "/ui/sweeps/" in d.current_url)
    ready(browser, "sweep", timeout=120)
    sweep_id = browser.current_url.rsplit("/", 1)[1]
    result = server.get(f"/sweeps/{sweep_id}/result").json()
    assert result["n_runs"] == 2 and result["params"] == ["costs.enabled"]
    # open the best config in full: a backtest equal to its sweep run
    best = result["best"]
    browser.find_element(By.CSS_SELECTOR, f'.run-full[data-config="{best["config_index"]}"]').click()
    WebDriverWait(browser, 30).until(lambda d: "/ui/runs/" in d.current_url)
    ready(browser, "run", timeout=120)
    full = server.get(f"/backtests/{browser.current_url.rsplit('/', 1)[1]}/result").json()
    assert full["final_nav"] == best["windows"][0]["final_nav"]
    open_page(browser, server, "/ui/stress?new")
    ready(browser, "stresses")
    Select(browser.find_element(By.ID, "stress-mode")).select_by_value("eth_leveraged")
    browser.find_element(By.CSS_SELECTOR, '#stress-scenarios input[value="eth_crash"]').click()
    at = browser.find_element(By.ID, "stress-at")
    at.clear()
    at.send_keys("2024-11-05T00:00:00Z")
    for field, value in (("stress-start", "2024-11-01"), ("stress-end", "2024-11-10")):
        browser.find_element(By.ID, field).send_keys(value)
    browser.find_element(By.ID, "stress-run").click()
    WebDriverWait(browser, 30).until(lambda d: "/ui/stress/" in d.current_url)
    ready(browser, "stress", timeout=120)
    stress_id = browser.current_url.rsplit("/", 1)[1]
    assert server.get(f"/stress/{stress_id}").json()["status"] == "done"


def test_the_paper_page_follows_a_replay_session_as_it_advances(browser, tmp_path):
    db = tmp_path / "paper.db"
    server = Server(db, SAMPLE_DIR, tmp_path / "server.log").start()
    env = {k: v for k, v in os.environ.items() if k != "BASISKIT_DATA"}
    # 6 days of eth_leveraged at 6 simulated hours a second (24 s: a loaded machine's page sees it grow); an HF alert
    # level it sits under from entry
    session = subprocess.Popen(
        [sys.executable, "-m", "basiskit.cli", "paper", "run", "eth_leveraged", "--data", str(SAMPLE_DIR),
         "--start", "2024-11-01", "--end", "2024-11-07", "--speed", "6", "--session", "ui", "--alert-hf", "1.2",
         "--db", str(db), "--out", str(tmp_path / "runs"), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while not server.get("/paper").json() and time.monotonic() < deadline:
            time.sleep(0.2)
        open_page(browser, server, "/ui/sessions/paper/ui")
        seen = set()  # chart lengths seen while the session runs: the page follows it

        def length(d):
            return d.execute_script("return ((document.getElementById('paper-nav') || {}).data || [{}])[0]"
                                    ".y?.length || 0")
        deadline = time.monotonic() + 90
        while session.poll() is None and time.monotonic() < deadline:
            seen.add(length(browser))
            time.sleep(0.3)
        out, err = session.communicate(timeout=60)
        assert session.returncode == 0, err
        summary = json.loads(out)
        from selenium.webdriver.support.ui import WebDriverWait
        WebDriverWait(browser, 60).until(lambda d: length(d) == 6 * 24 + 1)
        assert len({n for n in seen if 0 < n < 6 * 24 + 1}) >= 2, seen  # it grew while the session ran
        chart = browser.execute_script("return document.getElementById('paper-nav').data[0].y")
        assert chart[-1] == summary["final_nav"]
        kinds = browser.execute_script("return [...document.querySelectorAll('#paper-alerts li')]"
                                       ".map((li) => li.dataset.kind)")
        assert "health_factor" in kinds
    finally:
        if session.poll() is None:
            session.kill()
        server.stop()


HOSTILE = ["<img src=x onerror=alert(1)>", "</script><script>alert(2)</script>", "q\"uo'te&amp;<b>bold</b>"]


def test_hostile_strings_render_as_text_everywhere(browser, tmp_path):
    """Hostile strings stored in a run, a sweep and a stress test, and a refused request's error: every dashboard
    page and every report kind prints them literally; no dialog opens, nothing reaches the console."""
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server = Server(tmp_path / "hostile.db", SAMPLE_DIR, tmp_path / "server.log").start()
    window = {"start": "2024-11-01", "end": "2024-11-08"}
    try:
        with server.client() as c:
            run = c.post("/backtests", json={"mode": "eth_leveraged", **window,
                                             "config_overrides": {"description": HOSTILE[0]}}).json()["id"]
            sweep = c.post("/sweeps", json={"mode": "pure_lending_usdt", **window, "workers": 1,
                                            "params": [f"description={HOSTILE[0]},{HOSTILE[1]}"]}).json()["id"]
            stress = c.post("/stress", json={"mode": "eth_leveraged", **window, "at": "2024-11-03T00:00:00Z",
                                             "scenarios": ["eth_crash"],
                                             "config_overrides": {"description": HOSTILE[2]}}).json()["id"]
            assert wait_for(c, run)["status"] == "done"
            assert wait_for(c, sweep, kind="sweeps")["status"] == "done"
            assert wait_for(c, stress, kind="stress")["status"] == "done"
            sweep_result = c.get(f"/sweeps/{sweep}/result").json()

        def no_markup(where: str) -> None:
            try:
                text = browser.switch_to.alert.text
                raise AssertionError(f"{where}: a dialog opened: {text}")
            except NoAlertPresentException:
                pass
            errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"  # but the refused request
                      and "status of 422" not in e["message"] and "status of 404" not in e["message"]]  # unknown run
            assert not errors, f"{where}: {errors}"
            assert not browser.execute_script("return document.querySelector('img[src=x], b:not([data-plain])')"
                                              " && [...document.querySelectorAll('img')].length")

        open_page(browser, server, "/ui/runs")
        ready(browser, "runs")
        assert browser.find_elements(By.CSS_SELECTOR, f'[data-open="{run}"]')
        no_markup("runs page")
        open_page(browser, server, f"/ui/runs/{run}")
        ready(browser, "run")
        no_markup("run page")
        open_page(browser, server, "/ui/new?mode=eth_basis")
        ready(browser, "new")
        browser.execute_script("postJson('/backtests', {mode: 'eth_basis', config_overrides: {[arguments[0]]: 1}})"
                               ".catch((e) => showProblems('errors', e))", HOSTILE[1])
        WebDriverWait(browser, 30).until(lambda d: HOSTILE[1] in d.find_element(By.ID, "errors").text)
        no_markup("new run page")
        open_page(browser, server, f"/ui/sweeps/{sweep}")
        ready(browser, "sweep")
        assert HOSTILE[0] in browser.find_element(By.ID, "sweep-table").text
        assert HOSTILE[1] in browser.find_element(By.ID, "sweep-table").text
        no_markup("sweep page")
        for path, page in (("/ui/sweeps", "sweeps"), ("/ui/stress", "stresses"), (f"/ui/stress/{stress}", "stress"),
                           ("/ui/sessions", "sessions"), (f"/ui/compare?ids={run}&ids={run}", "compare"),
                           (f"/ui/runs/{HOSTILE[0]}", "error")):
            open_page(browser, server, path)
            ready(browser, page)
            no_markup(path)
        assert f"no run {HOSTILE[0]!r}" in browser.find_element(By.ID, "page").text  # the unknown id, as text
        for kind, ident, data_id, page, link_id in (
                ("backtests", run, "summary", f"/ui/runs/{run}", "report-link"),
                ("sweeps", sweep, "sweep", f"/ui/sweeps/{sweep}", "sweep-report"),
                ("stress", stress, None, f"/ui/stress/{stress}", "stress-report")):
            open_page(browser, server, page)
            ready(browser, {"backtests": "run", "sweeps": "sweep", "stress": "stress"}[kind])
            href = browser.find_element(By.ID, link_id).get_attribute("href")
            assert f"/{kind}/{ident}/report?exp=" in href and server.operate_token not in href
            assert not browser.get_cookies()  # the token is in this tab's sessionStorage only
            browser.get(href)  # the page's signed link opens the report without the token
            WebDriverWait(browser, 60).until(lambda d: d.execute_script("return document.body.dataset.charts"))
            no_markup(f"{kind} report")
            if data_id:  # the embedded data reads back unchanged with JSON.parse
                parsed = browser.execute_script(f"return JSON.parse(document.getElementById('{data_id}').textContent)")
                if kind == "sweeps":
                    assert parsed["params"] == sweep_result["params"]
        browser.get(server.url + server.get("/links", params={"target": f"/sweeps/{sweep}/report"}).json()["url"])
        WebDriverWait(browser, 60).until(lambda d: d.execute_script("return document.body.dataset.charts"))
        text = browser.find_element(By.TAG_NAME, "body").text
        assert HOSTILE[0] in text and HOSTILE[1] in text
        no_markup("sweep report text")
    finally:
        server.stop()


def test_the_run_page_of_a_one_year_run_loads_and_reports_its_time(browser, full_data, tmp_path):
    from selenium.webdriver.support.ui import WebDriverWait

    """A one-year hourly run of the full history: the run page's load time, measured in the browser and printed
    (a figure for the note, not an assertion)."""
    server = Server(tmp_path / "year.db", full_data, tmp_path / "server.log").start()
    try:
        with server.client() as c:
            run = c.post("/backtests", json={"mode": "usdt_market_neutral", "start": "2024-06-01",
                                             "end": "2025-06-01"}).json()["id"]
            assert wait_for(c, run, timeout=600)["status"] == "done"
        result = server.get(f"/backtests/{run}/result").json()
        assert result["steps"] == 365 * 24
        # the server computes a finished run's tearsheet ahead: the time its first request takes here is what a
        # page opened at once after the run would wait for
        started = time.monotonic()
        assert server.get(f"/backtests/{run}/tearsheet").status_code == 200
        first_request = time.monotonic() - started
        timings = []  # a cold browser first (plotly.js read and compiled), then as from the runs list
        for path in (f"/ui/runs/{run}", "/ui/runs", f"/ui/runs/{run}", f"/ui/runs/{run}"):
            open_page(browser, server, path)
            if path == "/ui/runs":
                ready(browser, "runs")
                continue
            ready(browser, "run", timeout=120)
            WebDriverWait(browser, 60).until(lambda d: d.execute_script("return document.body.dataset.panels"))
            timings.append(js(browser, "return [window.tablesAt / 1000, window.firstScreenAt / 1000, "
                                       "window.allPanelsAt / 1000]"))
        print(f"\none-year run page ({result['steps']} hourly steps), seconds from navigation to the headline and "
              f"tables: {', '.join(f'{t[0]:.2f}' for t in timings)}; to the first screen (its panels drawn too): "
              f"{', '.join(f'{t[1]:.2f}' for t in timings)}; to every panel drawn: "
              f"{', '.join(f'{t[2]:.2f}' for t in timings)} (a cold browser, then twice after the runs list); "
              f"the tearsheet's first request right after the run: {first_request:.2f} s")
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "run-page-load.json").write_text(json.dumps({"steps": result["steps"], "seconds": timings,
                                                                  "first_tearsheet_request": first_request}))
        nav_last = js(browser, "const y = document.getElementById('panel-nav')._fullData[0].y; return y[y.length - 1]")
        assert nav_last == result["final_nav"]
        clean(browser, "run-one-year")
    finally:
        server.stop()
