"""Self-contained HTML pages with plotly charts, light enough to mail: plotly.js embedded gzip-compressed
(the browser unpacks it with DecompressionStream, so the file opens offline), figures as JSON whose
arrays are base64 typed arrays, and long time series thinned to what a screen can show with every
bucket's extremes kept."""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import html
import json
import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

POINTS_PER_TRACE = 1500  # a chart is about 1,000-2,000 pixels wide

STYLE = """body{font-family:sans-serif;margin:24px;color:#222} table{border-collapse:collapse;margin-bottom:16px}
th,td{border:1px solid #ccc;padding:4px 10px;text-align:left} .chart{margin:12px 0;min-height:380px}
code{font-size:12px}"""

LOADER = """<script>
(async () => {
  const packed = document.getElementById("plotly-gz").textContent;
  const bytes = Uint8Array.from(atob(packed), (c) => c.charCodeAt(0));
  const js = await new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"))).text();
  const lib = document.createElement("script");
  lib.textContent = js;
  document.head.appendChild(lib);
  const figures = JSON.parse(document.getElementById("figures").textContent);
  figures.forEach((fig, i) => Plotly.newPlot(`chart-${i}`, fig.data, fig.layout, {responsive: true}));
  document.body.dataset.charts = String(figures.length);
})();
</script>"""


@functools.cache
def _plotly_packed() -> str:
    return base64.b64encode(gzip.compress(get_plotlyjs().encode(), compresslevel=9, mtime=0)).decode()


def script_json(value) -> str:
    """JSON safe inside a <script> element, read back unchanged by JSON.parse: `<`, `>` and `&` as \\u escapes,
    so no closing tag or comment opener can appear in it whatever the strings hold."""
    return (json.dumps(value, default=str).replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("&", "\\u0026"))


_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)


@functools.cache
def _plotly_hash() -> str:
    return _sha256(get_plotlyjs())


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def csp_for(page: str) -> str:
    """A report page's Content Security Policy: its own inline scripts by sha256 (and plotly.js, which its
    loader adds as a script element), nothing else; no 'unsafe-inline' for scripts."""
    hashes = " ".join(sorted({_sha256(body) for body in _SCRIPT.findall(page)} | {_plotly_hash()}))
    return (f"default-src 'none'; script-src {hashes}; style-src 'unsafe-inline'; img-src data:; "
            "connect-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def page(title: str, body: str, figures: list[go.Figure]) -> str:
    """A whole HTML document: `body` (HTML, where "{chart:i}" marks where figure i goes) and the charts."""
    for i in range(len(figures)):
        body = body.replace(f"{{chart:{i}}}", f'<div class="chart" id="chart-{i}"></div>')
    specs = [json.loads(f.to_json()) for f in figures]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{STYLE}</style>
<script type="application/octet-stream" id="plotly-gz">{_plotly_packed()}</script></head>
<body>{body}
<script type="application/json" id="figures">{script_json(specs)}</script>
{LOADER}</body></html>"""


def epoch_ms(t: pd.Series) -> np.ndarray:
    """Timestamps as milliseconds since the epoch, the numbers a plotly date axis reads."""
    return pd.DatetimeIndex(t).as_unit("ms").asi8.astype(np.float64)


def thin(n: int, series: list[np.ndarray], points: int = POINTS_PER_TRACE) -> np.ndarray:
    """Indexes to keep of `n` points shared by `series` (one chart): the ends, and in each bucket (equal runs of
    points) the first point and every series' minimum and maximum, so no spike or dip is lost."""
    if n <= points:
        return np.arange(n)
    per_bucket = 1 + 2 * len(series)
    buckets = max(points // per_bucket, 50)
    size = -(-n // buckets)  # ceil: the last bucket may be shorter
    rows = -(-n // size)
    starts = np.arange(rows) * size
    keep = [starts, np.array([n - 1])]
    pad = rows * size - n
    for y in series:
        y = np.asarray(y, dtype=np.float64)
        finite = np.isfinite(y)
        for fill, pick in ((np.inf, np.argmin), (-np.inf, np.argmax)):
            grid = np.concatenate((np.where(finite, y, fill), np.full(pad, fill))).reshape(rows, size)
            at = pick(grid, axis=1)
            has = np.concatenate((finite, np.zeros(pad, dtype=bool))).reshape(rows, size).any(axis=1)
            keep.append((starts + at)[has])
    return np.unique(np.concatenate(keep))
