"""The HTML report of a stored run: one self-contained file (opens offline; see results/html.py for
how it stays light). Every number comes from the stored summary, per-tick table and events of the run.
"""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from .html import POINTS_PER_TRACE, page, script_json
from .panels import costs_by_kind, headline, panels
from .tearsheet import tearsheet

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def formatted(unit: str, value, ccy: str) -> str:
    """A headline value as the tearsheet shows it (the dashboard's fmtMetric does the same)."""
    if value is None:
        return "n/a"
    return {"pct": f"{value:.4%}", "ratio": f"{value:.4f}", "ccy": f"{value:,.4f} {ccy}", "hours": f"{value:,} h",
            "count": f"{value:,}", "sci": f"{value:.3e}"}[unit]


def metrics_rows(summary: dict) -> str:
    """The headline metrics (each row's title its definition), then PnL by source and any note."""
    ccy = summary["share_class"]
    rows = "".join(f'<tr title="{html.escape(m["definition"])}"><th>{html.escape(m["label"])}</th>'
                   f'<td data-key="{m["key"]}">{formatted(m["unit"], m["value"], ccy)}</td></tr>'
                   for m in headline(summary))
    rows += "".join(f"<tr><th>PnL {html.escape(k)}</th><td>{v:,.4f}</td></tr>"
                    for k, v in summary["pnl_attribution"].items())
    if summary.get("metrics_note"):
        rows += f"<tr><th>note</th><td>{html.escape(summary['metrics_note'])}</td></tr>"
    return rows


def costs_html(costs: dict[str, float], ccy: str) -> str:
    rows = "".join(f'<tr><th>{html.escape(k)}</th><td data-cost="{html.escape(k)}">{v:,.4f}</td></tr>'
                   for k, v in costs.items())
    return f'<h2>Transaction costs by kind ({html.escape(ccy)})</h2><table id="costs">{rows}</table>'


def intrabar_rows(summary: dict) -> str:
    """Per perp venue: how the margin ratio checked at each hour's open and at its adverse extreme differ
    (the perp bars are trade prices; a venue checks its mark, which follows them closely)."""
    rows = summary.get("intrabar_by_venue") or {}
    if not rows:
        return ""
    head = ("venue", "check used", "hours held", "max ratio at open", "max ratio intrabar", "mean gap", "max gap",
            "hours over the limit only intrabar", "hours liquidating only intrabar")
    checks = summary.get("liquidation_check") or {}
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(x))}</td>" for x in (
        v, checks.get(v, ""), r["hours_held"], f"{r['max_margin_ratio_at_open']:.4f}",
        f"{r['max_margin_ratio_intrabar']:.4f}", f"{r['mean_ratio_gap']:.4f}", f"{r['max_ratio_gap']:.4f}",
        r["hours_over_limit_only_intrabar"], r["hours_liquidating_only_intrabar"])) + "</tr>"
        for v, r in rows.items())
    return ("<h2>Liquidation checks: the hour's open against its adverse extreme</h2><table id=\"intrabar\"><tr>"
            + "".join(f"<th>{h}</th>" for h in head) + f"</tr>{body}</table>")


def pct(value: float | None) -> str:
    """A return as the tables show it: 2 decimals of a percent, "n/a" when undefined (after a total loss)."""
    return "n/a" if value is None else f"{value:.2%}"


def tearsheet_html(sheet: dict) -> str:
    """The tearsheet's tables (results/tearsheet.py, the API's /tearsheet): returns by month and year, the worst
    drawdowns."""
    months = {m["month"]: pct(m["return"]) for m in sheet["monthly_returns"]}
    years = {y["year"]: pct(y["return"]) for y in sheet["yearly_returns"]}
    head = "<tr><th>year</th>" + "".join(f"<th>{m}</th>" for m in MONTHS) + "<th>year</th></tr>"
    rows = "".join(
        f"<tr><th>{y}</th>" + "".join(
            f'<td data-month="{y}-{i:02d}">{months[f"{y}-{i:02d}"]}</td>' if f"{y}-{i:02d}" in months
            else "<td></td>" for i in range(1, 13)) + f'<td data-year="{y}">{r}</td></tr>'
        for y, r in years.items())
    dd = "".join(f'<tr><td>{d["start"]}</td><td>{d["trough"]}</td><td>{d["end"] or "not recovered"}</td>'
                 f'<td data-col="depth">{d["depth"]:.4%}</td><td>{d["hours"]:,}</td></tr>' for d in sheet["drawdowns"])
    return (f'<h2>Returns by month (share index)</h2><table id="monthly-returns">{head}{rows}</table>'
            '<h2>Worst drawdowns</h2><table id="drawdowns"><tr><th>start (peak)</th><th>trough</th>'
            f"<th>recovered</th><th>depth</th><th>hours</th></tr>{dd}</table>")


def render(summary: dict, ticks: pd.DataFrame, events: pd.DataFrame, config: dict | None = None,
           csv_href: str | None = None) -> str:
    """The report; `csv_href` links the full per-tick table as CSV (the charts show it thinned to what a
    screen can show, each bucket's extremes kept)."""
    sheet = tearsheet(ticks)
    shown = panels(summary, ticks, events, config, sheet)
    table = metrics_rows(summary)
    notable = events[events["type"].isin(["rebalance", "liquidation", "risk_alert", "reconciliation_error"])]
    ev_rows = "".join(f"<tr><td>{r.timestamp:%Y-%m-%d %H:%M}</td><td>{html.escape(r.type)}</td>"
                      f"<td>{html.escape(r.message)}</td></tr>" for r in notable.head(500).itertuples())
    intrabar = intrabar_rows(summary)
    title = f"basiskit {summary['mode']} {summary['start']} .. {summary['end']}"
    data_link = (f'<p>Charts show {len(ticks):,} hourly points thinned to at most about {POINTS_PER_TRACE:,} per line, '
                 f'every spike kept; the full table: <a id="ticks-csv" href="{html.escape(csv_href)}">ticks as CSV</a>'
                 f"</p>" if csv_href else "")
    body = f"""<h1>{html.escape(title)}</h1>
<p>run <code>{html.escape(summary['run_id'])}</code>, strategy {html.escape(summary['strategy'])},
share class {html.escape(summary['share_class'])}, {summary['steps']} hourly steps,
config {summary['config_hash'][:12]}, data {summary['data_hash'][:12]}</p>
<h2>Metrics</h2><table id="metrics">{table}</table>
<script type="application/json" id="summary">{script_json(summary)}</script>
{tearsheet_html(sheet)}{costs_html(costs_by_kind(events), summary["share_class"])}{intrabar}{data_link}
{"".join(f'<h3>{html.escape(p.title)}</h3>{{chart:{i}}}' for i, p in enumerate(shown))}
<h2>Events</h2><table id="events"><tr><th>time</th><th>type</th><th>message</th></tr>{ev_rows}</table>"""
    return page(title, body, [p.figure for p in shown])


def write_report(path: Path, summary: dict, ticks: pd.DataFrame, events: pd.DataFrame, config: dict | None) -> Path:
    """Write the report and, beside it, the full per-tick table as CSV (`<name>.ticks.csv`), linked from it."""
    csv_path = path.with_name(f"{path.stem}.ticks.csv")
    ticks.to_csv(csv_path, index=False)
    path.write_text(render(summary, ticks, events, config, csv_href=csv_path.name))
    return csv_path
