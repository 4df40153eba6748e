"""Fit Aave v3 interest-rate strategies and reserve factors from a reserve's daily snapshots.

No governance history can be read offline, so the dated parameters are recovered from what the reserve
published: below the kink every snapshot of one strategy lies on the line borrow = base + (slope1 / U*) x U
(exactly, to the ray rounding), so a strategy is a run of consecutive snapshots on one line; snapshots off it
with a utilisation above every point of the line are above the kink (they fix U* and slope2); one off it below
that is a parameter change. The reserve factor is 1 - supply / (borrow x U) (rate_strategy.py), constant between
governance changes. Every parameter written is marked `fitted`, with the days it rests on.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from ..data.dataset import Dataset
from ..data.timeutil import iso, to_epoch
from .rate_strategy import ReserveRates

SERIES = {"USDT": "aave/usdt_reserve_1d", "WETH": "aave/weth_reserve_1d", "weETH": "aave/weeth_reserve_1d",
          "wstETH": "aave/wsteth_reserve_1d"}
ON_LINE = 2e-5  # 0.2 bp: how far a snapshot may sit from its strategy's line (ray rounding, intra-block updates)
MIN_SPREAD_U = 1e-3  # a line needs snapshots this far apart in utilisation
DEFAULT_OPTIMAL = 0.9  # where no snapshot ever passed the kink: assumed, and said so
DEFAULT_SLOPE2 = 0.8  # the same (WETH's identified slope2 over 2024-06..2025-07)
MIN_ABOVE = 3  # snapshots above a kink that fix it
KINK_TOLERANCE = 1e-3  # 10 bp, the median distance of those points from the slope2 line (above the kink a
# utilisation 1e-4 off, e.g. from an action within the snapshot's block, moves the rate by about 8 bp)
KINK_GRID = np.round(np.arange(0.45, 0.96, 0.005), 4)


@dataclass
class Snapshots:
    ts: np.ndarray
    u: np.ndarray
    borrow: np.ndarray
    supply: np.ndarray

    @classmethod
    def of(cls, dataset: Dataset, symbol: str) -> Snapshots:
        s = dataset.series(SERIES[symbol])
        u = s.column("total_variable_debt") / s.column("total_supply")
        return cls(s.ts, u, s.column("variable_borrow_rate"), s.column("liquidity_rate"))


def _line(u: np.ndarray, r: np.ndarray) -> tuple[float, float]:
    """Least-squares base and slope of r = base + slope x u."""
    slope, base = np.polyfit(u, r, 1)
    return float(base), float(slope)


def _segments(snap: Snapshots) -> list[dict]:
    """Runs of snapshots on one line, with the points above its kink (greedy, in time order)."""
    n = len(snap.ts)
    out: list[dict] = []
    i = 0
    while i < n - 2:
        seed = _seed(snap, i)
        if seed is None:
            i += 1
            continue
        base, slope = seed
        members, above = [i, i + 1, i + 2], []
        j = i + 3
        while j < n:
            fits = abs(snap.borrow[j] - (base + slope * snap.u[j])) <= ON_LINE
            if fits:
                members.append(j)
                base, slope = _line(snap.u[members], snap.borrow[members])
            elif snap.u[j] > snap.u[members].max() and snap.borrow[j] > base + slope * snap.u[j]:
                above.append(j)
            else:
                break
            j += 1
        last = members[-1]
        above = [a for a in above if a < last] if j < n else above
        out.append({"members": members, "above": above})
        i = last + 1
    return out


def _seed(snap: Snapshots, i: int) -> tuple[float, float] | None:
    """A line through snapshots i, i+1, i+2 when they are collinear (and not all at one utilisation)."""
    u, r = snap.u[i:i + 3], snap.borrow[i:i + 3]
    if np.ptp(u) < MIN_SPREAD_U:
        if np.ptp(r) > ON_LINE:
            return None
        return (float(r.mean()), 0.0) if u.mean() < 1e-6 else (0.0, float((r / u).mean()))
    base, slope = _line(u, r)
    if base < -ON_LINE or slope < 0.0:  # the line above a kink meets U = 0 below zero: not a strategy's first leg
        return None
    return (base, slope) if np.abs(r - (base + slope * u)).max() <= ON_LINE else None


def _kink(snap: Snapshots, base: float, slope: float, members: list[int], above: list[int]
          ) -> tuple[float, float, float] | None:
    """(U*, slope2, median error) fitting the points above the kink, U* between the line's points and them; None
    unless MIN_ABOVE points fix it within KINK_TOLERANCE (one or two points fit many kinks exactly)."""
    if len(above) < MIN_ABOVE:
        return None
    lo, hi = snap.u[members].max(), snap.u[above].min()
    best = None
    for opt in KINK_GRID:
        if not lo <= opt < hi:
            continue
        at_kink = base + slope * opt
        x = (snap.u[above] - opt) / (1.0 - opt)
        y = snap.borrow[above] - at_kink
        slope2 = max(float((x @ y) / (x @ x)), 0.0)
        err = float(np.median(np.abs(y - slope2 * x)))  # robust: a change's day may sit among them
        if best is None or err < best[2]:
            best = (float(opt), slope2, err)
    return best if best is not None and best[2] <= KINK_TOLERANCE else None


def _reserve_factors(snap: Snapshots) -> list[dict]:
    """Runs of one reserve factor (to 0.1%), each from its first snapshot; single-day blips are ignored."""
    ok = (snap.borrow > 0) & (snap.u > 1e-9)
    implied = np.full(len(snap.ts), np.nan)
    implied[ok] = 1.0 - snap.supply[ok] / (snap.borrow[ok] * snap.u[ok])
    rounded = np.round(implied, 3)
    out: list[dict] = []
    for k, value in enumerate(rounded):
        if np.isnan(value):
            continue
        if out and out[-1]["reserve_factor"] == value:
            out[-1]["days"] += 1
            continue
        if k + 1 < len(rounded) and rounded[k + 1] != value:  # a blip, not a change
            continue
        out.append({"from": iso(snap.ts[k]), "reserve_factor": float(value), "source": "fitted", "days": 1})
    return out


def _leg(snap: Snapshots, members: list[int]) -> tuple[float, float]:
    """Base and slope1 / U* of a strategy's line (a line through one utilisation: base 0)."""
    if np.ptp(snap.u[members]) >= MIN_SPREAD_U:
        return _line(snap.u[members], snap.borrow[members])
    return 0.0, float((snap.borrow[members] / snap.u[members]).mean())


def fit_reserve(dataset: Dataset, symbol: str) -> dict:
    """The dated strategies and reserve factors of one reserve, fitted from its snapshots. A strategy whose kink
    the snapshots do not fix takes U* and slope2 of the nearest one that does, an earlier one first (the
    parameters Aave had most recently set), and says so in `kink`."""
    snap = Snapshots.of(dataset, symbol)
    segments = _segments(snap)
    legs = [_leg(snap, seg["members"]) for seg in segments]
    kinks = [_kink(snap, *leg, seg["members"], seg["above"]) for leg, seg in zip(legs, segments, strict=True)]
    identified = [i for i, k in enumerate(kinks) if k is not None]
    strategies = []
    for i, (seg, (base, slope), kink) in enumerate(zip(segments, legs, kinks, strict=True)):
        m = seg["members"]
        floor = float(np.round(snap.u[m].max() + 0.005, 3))  # the kink lies above every point of the line
        if kink is not None:
            optimal, slope2 = kink[0], kink[1]
            how = f"identified: {len(seg['above'])} snapshots above it, median error {kink[2] * 1e4:.2f} bp"
        elif identified:
            j = max((j for j in identified if j < i), default=min(identified))
            optimal, slope2 = max(kinks[j][0], floor), kinks[j][1]
            how = (f"assumed: U* and slope2 of the strategy from {iso(snap.ts[segments[j]['members'][0]])} "
                   f"({'earlier' if j < i else 'later'}; this one's snapshots do not fix its kink)")
        else:
            optimal, slope2 = max(DEFAULT_OPTIMAL, floor), DEFAULT_SLOPE2
            how = (f"assumed: U* {DEFAULT_OPTIMAL:g} (or above every snapshot) and slope2 {DEFAULT_SLOPE2:g}: the "
                   "reserve never passed a kink in the data")
        strategies.append({
            "from": iso(snap.ts[m[0]]), "base": max(base, 0.0), "slope1": slope * optimal, "slope2": slope2,
            "optimal_utilisation": optimal, "source": "fitted", "kink": how,
            "days": len(m), "days_above_kink": len(seg["above"]), "last_day": iso(snap.ts[m[-1]]),
        })
    series = dataset.series(SERIES[symbol])
    return {"series": SERIES[symbol], "series_sha256": series.meta.sha256, "strategies": strategies,
            "reserve_factors": _reserve_factors(snap)}


def check_reserve(dataset: Dataset, symbol: str, params: dict, margin_days: int = 1) -> dict:
    """Errors (APR) of the dated strategies at the observed utilisation against the observed rates, on every
    snapshot at least `margin_days` from a parameter change. The snapshots after a strategy's last fitted day
    and before the next one's first are the change itself (its day is not known more closely): left out, and
    counted."""
    entry = params["reserves"][symbol]
    rates = ReserveRates.from_params(params, symbol, "the checked parameters")
    snap = Snapshots.of(dataset, symbol)
    day = 86_400
    keep = np.ones(len(snap.ts), dtype=bool)
    for c in [s.start for s in rates.strategies[1:]] + [t for t, _ in rates.reserve_factors[1:]]:
        keep &= np.abs(snap.ts - c) > margin_days * day
    changing = np.zeros(len(snap.ts), dtype=bool)
    for a, b in zip(entry["strategies"][:-1], entry["strategies"][1:], strict=True):
        changing |= (snap.ts > to_epoch(a["last_day"])) & (snap.ts < to_epoch(b["from"]))
    keep &= ~changing
    borrow_err, supply_err = [], []
    for t, u, rb, rs in zip(snap.ts[keep], snap.u[keep], snap.borrow[keep], snap.supply[keep], strict=True):
        b, s = rates.rates(int(t), float(u))
        borrow_err.append(abs(b - rb))
        supply_err.append(abs(s - rs))
    be, se = np.array(borrow_err), np.array(supply_err)
    return {"snapshots": len(snap.ts), "checked": int(keep.sum()), "changing": int(changing.sum()),
            "borrow_median_bp": float(np.median(be) * 1e4), "borrow_p95_bp": float(np.quantile(be, 0.95) * 1e4),
            "borrow_max_bp": float(be.max() * 1e4),
            "supply_median_bp": float(np.median(se) * 1e4), "supply_p95_bp": float(np.quantile(se, 0.95) * 1e4)}


def fit_all(dataset: Dataset) -> dict:
    """Every reserve the dataset holds, with the check figures of the fit."""
    reserves = {sym: fit_reserve(dataset, sym) for sym in SERIES if SERIES[sym] in dataset.meta}
    doc = {
        "about": "Aave v3 Ethereum interest-rate strategies and reserve factors, dated. source 'fitted': recovered "
                 "from the reserve's daily snapshots by `basiskit data fit-rates` (basiskit/venues/rate_fit.py), "
                 "since no governance record can be read offline; borrow = base + slope1 U/U* below the kink "
                 "U*, + slope2 (U-U*)/(1-U*) above; supply = borrow U (1 - reserve factor).",
        "reserves": reserves,
    }
    doc["sha256"] = hashlib.sha256(json.dumps(reserves, sort_keys=True).encode()).hexdigest()
    return doc
