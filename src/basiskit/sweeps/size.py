"""A sweep's size from the request's text alone: values per param, configs, windows and runs, counted
arithmetically before any value is parsed or any config or window is built, so an oversized request costs
nothing to refuse."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from datetime import UTC, datetime

from ..data.dataset import Dataset
from ..errors import ConfigError
from .spec import MAX_GRID, MAX_VALUES, SweepRequest, parse_duration, parse_time

Span = tuple[datetime, datetime]


def value_count(text: str) -> int:
    """Values of one `KEY=V1,V2,...` or `KEY=LO:HI:STEP` param (1 when it is malformed: the plan reports it)."""
    raw = text.split("=", 1)[1] if "=" in text else ""
    parts = raw.split(":")
    if len(parts) == 3:
        try:
            low, high, step = (float(p) for p in parts)
        except ValueError:
            return 1
        if not all(math.isfinite(x) for x in (low, high, step)) or step <= 0 or high < low:
            return 1
        ratio = (high - low) / step
        return math.floor(ratio + 1e-9) + 1 if ratio < MAX_VALUES else MAX_VALUES + 1  # as spec._range counts
    return 1 if len(parts) > 1 else raw.count(",") + 1


def window_count(items: list[str], span: Span | None) -> int:
    """Windows of `items`; rolling ones counted in `span` (None: each counts 1, the plan checks them)."""
    n = 0
    for item in items:
        parts = item.split(":")
        if item.startswith("rolling:") and len(parts) == 3 and span is not None:
            try:
                length, step = parse_duration(parts[1]), parse_duration(parts[2])
            except (ValueError, OverflowError):
                n += 1
                continue
            room = span[1] - span[0] - length
            n += room // step + 1 if room.total_seconds() >= 0 else 0
        else:
            n += 1
    return max(n, 1)


def data_span(dataset: Dataset) -> Span | None:
    """The widest window the dataset could give (every series' first to last row): a bound on any run's."""
    metas = [dataset.series_meta(name) for name in dataset.names()]
    if not metas:
        return None
    return (datetime.fromtimestamp(min(m.start for m in metas), tz=UTC),
            datetime.fromtimestamp(max(m.end for m in metas), tz=UTC))


def check_size(req: SweepRequest, dataset: Dataset, max_runs: int = MAX_GRID, limit_hint: str = "",
               exact_span: Callable[[], Span] | None = None) -> int:
    """The request's run count (configs x windows); ConfigError naming the field, the count and the limit when
    it is above `max_runs` (or MAX_GRID), or when its params hold more than MAX_VALUES values in all."""
    counts = [value_count(p) for p in req.params]
    limit = min(max_runs, MAX_GRID)
    hint = f" ({limit_hint})" if limit_hint and limit == max_runs else ""
    if sum(counts) > MAX_VALUES:
        raise ConfigError([("params", f"{sum(counts):,} values", f"the params list {sum(counts):,} values in all; "
                            f"a sweep may list at most {MAX_VALUES:,}")])
    configs = req.trials or 0 if req.search else req.random or math.prod(counts)
    field = "trials" if req.search else "random" if req.random else "params"
    span = _span(req, data_span(dataset))
    windows = window_count(req.windows, span)
    if configs * windows > limit and exact_span is not None and not (req.start and req.end) and req.windows:
        # the bound was the whole dataset: count in the window the base config's data really share (a base
        # config that cannot say is reported by the plan)
        with contextlib.suppress(Exception):
            windows = window_count(req.windows, exact_span())
    runs = configs * windows
    if runs > limit:
        what = f"{configs:,} configs x {windows:,} windows" if windows > 1 else f"{configs:,} configs"
        raise ConfigError([(field if windows == 1 else f"{field}, windows", f"{runs:,} runs",
                            f"{what} = {runs:,} runs: above the limit of {limit:,} runs per sweep{hint}")])
    return runs


def _span(req: SweepRequest, data: Span | None) -> Span | None:
    """Where rolling windows go: each bound the request gives, else the data's (as plan._span places them)."""
    if data is None and not (req.start and req.end):
        return None
    bounds = []
    for given, fallback in ((req.start, data[0] if data else None), (req.end, data[1] if data else None)):
        if not given:
            bounds.append(fallback)
            continue
        try:
            bounds.append(parse_time(given))
        except ValueError:
            return None  # the plan reports it
    return bounds[0], bounds[1]

