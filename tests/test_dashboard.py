"""The web dashboard in Debian's Chromium (headless, driven by selenium) against a real server."""

from __future__ import annotations

import time
from pathlib import Path

from basiskit.data.dataset import SAMPLE_DIR
from server import Server

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def open_page(browser, server, path: str, token: str | None = None) -> None:
    """Open a dashboard page as an operator who gave the token when asked (kept for the browser session)."""
    browser.get(server.url + "/health")
    browser.execute_script("sessionStorage.setItem('basiskit-token', arguments[0])", token or server.operate_token)
    browser.get(server.url + path)


def test_dashboard_runs_a_backtest_and_charts_its_numbers(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    server = Server(tmp_path / "ui.duckdb", SAMPLE_DIR, tmp_path / "server.log").start()
    try:
        open_page(browser, server, "/")
        wait = WebDriverWait(browser, 60)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#mode option")) == 8)
        Select(browser.find_element(By.ID, "mode")).select_by_value("eth_basis")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '#overrides[data-mode="eth_basis"]'))
        assert browser.find_element(By.ID, "capital").get_attribute("value") == "1000000"
        browser.find_element(By.ID, "start").send_keys("2024-11-01")
        browser.find_element(By.ID, "end").send_keys("2024-12-01")
        capital = browser.find_element(By.ID, "capital")
        capital.clear()
        capital.send_keys("500000")
        browser.find_element(By.ID, "run").click()
        wait.until(lambda d: "done" in d.find_element(By.ID, "status").text)
        run_id = browser.find_element(By.ID, "status").text.split(":")[0]
        wait.until(lambda d: d.execute_script("return (document.getElementById('nav-chart').data || []).length") > 0)
        time.sleep(0.5)
        result = server.get(f"/backtests/{run_id}/result").json()
        assert result["initial_capital"] == 500000 and result["start"] == "2024-11-01T00:00:00Z"
        chart_nav = browser.execute_script("const y = document.getElementById('nav-chart').data[0].y;"
                                           "return [y[0], y[y.length - 1], y.length];")
        assert chart_nav[1] == result["final_nav"] and chart_nav[2] == result["steps"] + 1
        shown = browser.find_element(By.CSS_SELECTOR, '[data-metric="final NAV"]').text
        assert shown.startswith(f"{result['final_nav']:,.2f}"[:9])
        cum = browser.execute_script("return document.getElementById('attr-chart').data.map(t => t.name)")
        assert set(cum) == set(result["pnl_attribution"])
        rows = browser.find_elements(By.CSS_SELECTOR, "#runs tbody tr")
        assert any(run_id in r.text for r in rows)
        # a second run with a parameter changed through the generated form, then compare the two
        Select(browser.find_element(By.ID, "mode")).select_by_value("eth_staking_only")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '#overrides[data-mode="eth_staking_only"]'))
        browser.execute_script("document.querySelector('#overrides').parentElement.open = true")
        Select(browser.find_element(By.CSS_SELECTOR, 'select[data-key="lst"]')).select_by_value("wstETH")
        browser.find_element(By.ID, "run").click()
        wait.until(lambda d: "done" in d.find_element(By.ID, "status").text
                   and d.find_element(By.ID, "status").text.split(":")[0] != run_id)
        second = browser.find_element(By.ID, "status").text.split(":")[0]
        stored = server.get("/backtests").json()["items"]
        assert {r["id"] for r in stored} == {run_id, second}
        columns = server.get(f"/backtests/{second}/timeseries").json()["columns"]
        assert "qty:lido:BaseToken:wstETH" in columns and "qty:etherfi:BaseToken:weETH" not in columns
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".pick")) == 2)
        for box in browser.find_elements(By.CSS_SELECTOR, ".pick"):
            box.click()
        browser.find_element(By.ID, "compare").click()
        wait.until(lambda d: d.execute_script(
            "return (document.getElementById('compare-chart').data || []).length") == 2)
        header = browser.find_element(By.ID, "compare-table").text
        assert run_id in header and second in header
        ARTIFACTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "dashboard.png"))
        assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000
    finally:
        server.stop()


def test_sweeps_page_charts_the_heatmap_and_runs_a_config_in_full(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    server = Server(tmp_path / "sweeps.duckdb", SAMPLE_DIR, tmp_path / "server.log").start()
    try:
        open_page(browser, server, "/#sweeps")
        wait = WebDriverWait(browser, 120)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#sweep-mode option")) == 8)
        Select(browser.find_element(By.ID, "sweep-mode")).select_by_value("usdt_market_neutral")
        params = browser.find_element(By.ID, "sweep-params")
        params.clear()
        params.send_keys("target_ltv=0.75:0.85:0.05\nstake_allocation=0.5,0.6,0.75")
        for field, value in (("sweep-start", "2024-11-01"), ("sweep-end", "2024-11-15"), ("sweep-capital", "100000")):
            browser.find_element(By.ID, field).send_keys(value)
        browser.find_element(By.ID, "sweep-run").click()
        wait.until(lambda d: " done " in d.find_element(By.ID, "sweep-status").text + " ")
        sweep_id = browser.find_element(By.ID, "sweep-status").text.split(":")[0]
        wait.until(lambda d: d.execute_script("return (document.getElementById('sweep-heatmap').data || []).length"))
        z = browser.execute_script("return document.getElementById('sweep-heatmap').data[0].z")
        result = server.get(f"/sweeps/{sweep_id}/result").json()
        assert result["n_runs"] == 9 and result["n_failed"] == 0
        # by hand: one window, so each cell is the run's apy; rows stake_allocation, columns target_ltv
        apy = {(r["params"]["stake_allocation"], r["params"]["target_ltv"]): r["apy"] for r in result["runs"]}
        assert z == [[apy[(a, t)] for t in (0.75, 0.8, 0.85)] for a in (0.5, 0.6, 0.75)]
        ARTIFACTS.mkdir(exist_ok=True)
        browser.execute_script("document.getElementById('sweeps').scrollIntoView()")
        browser.save_screenshot(str(ARTIFACTS / "sweeps.png"))
        # the ranked table's first row runs the best config in full, as a backtest equal to its sweep run
        best = result["best"]
        browser.find_element(By.CSS_SELECTOR, f'.run-full[data-config="{best["config_index"]}"]').click()
        wait.until(lambda d: "done" in d.find_element(By.ID, "status").text)
        run_id = browser.find_element(By.ID, "status").text.split(":")[0]
        full = server.get(f"/backtests/{run_id}/result").json()
        assert full["final_nav"] == best["windows"][0]["final_nav"] and full["initial_capital"] == 100000
    finally:
        server.stop()


def test_stress_page_compares_both_runs_and_maps_liquidations(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    server = Server(tmp_path / "stress.duckdb", SAMPLE_DIR, tmp_path / "server.log").start()
    try:
        open_page(browser, server, "/#stress")
        wait = WebDriverWait(browser, 120)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#stress-scenarios input")) >= 10)
        Select(browser.find_element(By.ID, "stress-mode")).select_by_value("eth_leveraged")
        browser.find_element(By.CSS_SELECTOR, '#stress-scenarios input[value="lst_slashing"]').click()
        at = browser.find_element(By.ID, "stress-at")
        at.clear()
        at.send_keys("2024-11-05T00:00:00Z")
        for field, value in (("stress-start", "2024-10-10"), ("stress-end", "2024-12-10"), ("stress-capital", "100"),
                             ("stress-shocks", "magnitude=0.2"), ("stress-grid", "magnitude=0.01,0.03,0.1,0.2")):
            browser.find_element(By.ID, field).send_keys(value)
        browser.find_element(By.ID, "stress-run").click()
        wait.until(lambda d: " done" in d.find_element(By.ID, "stress-status").text)
        stress_id = browser.find_element(By.ID, "stress-status").text.split(":")[0]
        wait.until(lambda d: d.execute_script("return (document.getElementById('stress-map').data || []).length"))
        r = server.get(f"/stress/{stress_id}/result").json()
        cells = {tr.find_element(By.TAG_NAME, "th").text: [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
                 for tr in browser.find_elements(By.CSS_SELECTOR, "#stress-table tr")[1:]}
        assert cells["liquidations"] == [str(r["baseline"]["liquidations"]["count"]),
                                         str(r["scenario"]["liquidations"]["count"])]
        assert r["scenario"]["liquidations"]["count"] >= 1  # a 20% fall of weETH's rate is far past the ~10% margin
        # the NAV chart is the two stored runs, hour by hour
        nav = browser.execute_script("return document.getElementById('stress-nav').data.map(t => t.y)")
        for trace, side in zip(nav, ("baseline", "scenario"), strict=True):
            stored = server.get(f"/backtests/{r[side]['run_id']}/timeseries").json()["data"]["nav"]
            assert trace == stored
        # the map: red exactly where the grid run was liquidated, and a bigger fall never liquidates less
        colors = browser.execute_script("return document.getElementById('stress-map').data[0].marker.color")
        flags = [g["liquidated"] for g in r["grid"]["runs"]]
        assert colors == ["crimson" if f else "seagreen" for f in flags]
        by_magnitude = sorted(zip([g["params"]["stress.0.magnitude"] for g in r["grid"]["runs"]], flags,
                                  strict=True))
        assert [f for _, f in by_magnitude] == sorted(f for _, f in by_magnitude) and by_magnitude[0][1] is False
        ARTIFACTS.mkdir(exist_ok=True)
        browser.execute_script("document.getElementById('stress').scrollIntoView()")
        browser.save_screenshot(str(ARTIFACTS / "stress.png"))
    finally:
        server.stop()


def test_paper_page_follows_a_replay_session_as_it_advances(browser, tmp_path):
    import json
    import os
    import subprocess
    import sys

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    db = tmp_path / "paper.duckdb"
    server = Server(db, SAMPLE_DIR, tmp_path / "server.log").start()
    env = {k: v for k, v in os.environ.items() if k != "BASISKIT_DATA"}
    # 12 days of eth_leveraged at 24 simulated hours a second; an HF alert level it sits under from entry
    session = subprocess.Popen(
        [sys.executable, "-m", "basiskit.cli", "paper", "run", "eth_leveraged", "--data", str(SAMPLE_DIR),
         "--start", "2024-11-01", "--end", "2024-11-13", "--speed", "24", "--session", "ui", "--alert-hf", "1.2",
         "--db", str(db), "--out", str(tmp_path / "runs"), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        open_page(browser, server, "/#paper")
        wait = WebDriverWait(browser, 90)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '#paper-session option[value="ui"]'))
        seen = set()  # chart lengths seen while the session runs: the page follows it
        def length(d):
            return d.execute_script("return ((document.getElementById('paper-nav').data || [{}])[0].y || []).length")
        deadline = time.monotonic() + 90
        while session.poll() is None and time.monotonic() < deadline:
            seen.add(length(browser))
            time.sleep(0.3)
        out, err = session.communicate(timeout=60)
        assert session.returncode == 0, err
        summary = json.loads(out)
        wait.until(lambda d: " done," in d.find_element(By.ID, "paper-status").text)
        wait.until(lambda d: length(d) == 12 * 24 + 1)
        assert len({n for n in seen if 0 < n < 12 * 24 + 1}) >= 2, seen  # it grew while the session ran
        ticks = server.get("/paper/ui/ticks").json()
        chart = browser.execute_script("return document.getElementById('paper-nav').data[0].y")
        assert chart == [t["nav"] for t in ticks] and chart[-1] == summary["final_nav"]
        status = server.get("/paper/ui").json()
        # read in one script: the page may refill its tables between two element reads
        shown = browser.execute_script(
            "return [document.querySelector('[data-metric=\"health factor\"]').textContent,"
            " [...document.querySelectorAll('#paper-alerts li')].map((li) => li.dataset.kind)]")
        assert shown[0] == f"{status['risk']['health_factor']:.4f}"
        kinds = shown[1]
        assert "health_factor" in kinds
        ARTIFACTS.mkdir(exist_ok=True)
        browser.execute_script("document.getElementById('paper').scrollIntoView()")
        browser.save_screenshot(str(ARTIFACTS / "dashboard-paper.png"))
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

    from server import wait_for

    server = Server(tmp_path / "hostile.duckdb", SAMPLE_DIR, tmp_path / "server.log").start()
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
        wait = WebDriverWait(browser, 60)

        def clean(where: str) -> None:
            try:
                text = browser.switch_to.alert.text
                raise AssertionError(f"{where}: a dialog opened: {text}")
            except NoAlertPresentException:
                pass
            errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"
                      and "status of 422" not in e["message"]]  # the refused request the test sends
            assert not errors, f"{where}: {errors}"
            assert not browser.execute_script("return document.querySelector('img[src=x], b:not([data-plain])')"
                                              " && [...document.querySelectorAll('img')].length")

        open_page(browser, server, "/")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f'[data-open="{run}"]'))
        browser.execute_script("postJson('/backtests', {mode: 'eth_basis', config_overrides: {[arguments[0]]: 1}})"
                               ".catch((e) => showProblems('errors', e))", HOSTILE[1])
        wait.until(lambda d: HOSTILE[1] in d.find_element(By.ID, "errors").text)
        clean("backtests page")
        open_page(browser, server, "/#sweeps")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f'[data-sweep="{sweep}"]'))
        browser.find_element(By.CSS_SELECTOR, f'[data-sweep="{sweep}"]').click()
        wait.until(lambda d: HOSTILE[0] in d.find_element(By.ID, "sweep-table").text)
        assert HOSTILE[1] in browser.find_element(By.ID, "sweep-table").text
        clean("sweeps page")
        open_page(browser, server, "/#stress")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f'[data-stress="{stress}"]'))
        clean("stress page")
        open_page(browser, server, "/#paper")
        clean("paper page")
        for kind, ident, data_id in (("backtests", run, "summary"), ("sweeps", sweep, "sweep"),
                                     ("stress", stress, None)):
            browser.get(f"{server.url}/{kind}/{ident}/report")  # the dashboard's cookie opens it
            wait.until(lambda d: d.execute_script("return document.body.dataset.charts"))
            clean(f"{kind} report")
            if data_id:  # the embedded data reads back unchanged with JSON.parse
                parsed = browser.execute_script(f"return JSON.parse(document.getElementById('{data_id}').textContent)")
                if kind == "sweeps":
                    assert parsed["params"] == sweep_result["params"]
        body = browser.find_element(By.TAG_NAME, "body").text
        assert "stress" in body.lower()
        browser.get(f"{server.url}/sweeps/{sweep}/report")
        wait.until(lambda d: d.execute_script("return document.body.dataset.charts"))
        text = browser.find_element(By.TAG_NAME, "body").text
        assert HOSTILE[0] in text and HOSTILE[1] in text
        clean("sweep report text")
    finally:
        server.stop()
