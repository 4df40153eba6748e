"""Synthetic market generator: datasets in the market-data format (MANIFEST.json + gzipped CSV)
with chosen price paths, for tests and benchmarks of situations the real history lacks
(price spikes, depegs, very long windows). Parameter files are copied from the embedded sample.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .dataset import SAMPLE_DIR

PARAMS = ("params/aave_v3_risk.json", "params/cex_venues.json", "params/execution_costs_bps.json")


@dataclass
class SyntheticMarket:
    """Hourly paths from `start` to `end`; any path not given is a seeded geometric random walk."""

    start: str
    end: str
    seed: int = 0
    start_price: dict[str, float] = field(default_factory=lambda: {"BTC": 60_000.0, "ETH": 3_000.0})
    annual_vol: float = 0.5
    paths: dict[str, np.ndarray] = field(default_factory=dict)
    funding_rate: float = 1e-4
    gas_gwei: float = 10.0
    supply_apr: float = 0.05
    lst_rate: np.ndarray | None = None  # hourly weETH/ETH rate: writes the weETH reserve and DEX series

    def __post_init__(self) -> None:
        self.hours = pd.date_range(self.start, self.end, freq="h", tz="UTC")
        rng = np.random.default_rng(self.seed)
        for asset, p0 in self.start_price.items():
            if asset not in self.paths:
                steps = rng.normal(0.0, self.annual_vol / np.sqrt(8760), len(self.hours) - 1)
                self.paths[asset] = p0 * np.exp(np.concatenate(([0.0], np.cumsum(steps))))
            if len(self.paths[asset]) != len(self.hours):
                raise ValueError(f"path of {asset} has {len(self.paths[asset])} points, the window {len(self.hours)}")

    def write(self, dest: Path, venues=("binance", "bybit", "okx"), spot_venues=("binance", "bybit")) -> Path:
        dest = Path(dest)
        files: dict[str, tuple[pd.DataFrame, str]] = {}
        for asset, path in self.paths.items():
            bars = _bars(self.hours, path)
            for v in venues:
                files[f"perp/{v}_{asset.lower()}usdt_1h"] = (bars, "1h")
                fund = pd.DataFrame({"timestamp": self.hours[self.hours.hour % 8 == 0]})
                fund["funding_rate"] = self.funding_rate
                if v == "okx":
                    fund["realized_funding_rate"] = self.funding_rate
                files[f"funding/{v}_{asset.lower()}usdt_8h"] = (fund, "8h")
            for v in spot_venues:
                files[f"spot/{v}_{asset.lower()}usdt_1h"] = (bars, "1h")
        if "ETH" in self.paths:
            files["spot/uniswapv3_wethusdt_1h"] = (_bars(self.hours, self.paths["ETH"]), "1h")
        days = self.hours[self.hours.hour == 0]
        years = (days - days[0]).total_seconds().to_numpy() / (365 * 86400)
        midnight = self.hours.hour == 0
        eth_daily = self.paths.get("ETH", np.full(len(self.hours), 3000.0))[midnight]
        reserves = [("usdt", np.ones(len(days))), ("weth", eth_daily)]
        if self.lst_rate is not None:
            reserves.append(("weeth", self.lst_rate[midnight] * eth_daily))
            files["staking/weeth_eth_dex_1h"] = (pd.DataFrame({"timestamp": self.hours,
                                                               "market_rate": self.lst_rate}), "1h")
        for reserve, price in reserves:
            index = np.exp(self.supply_apr * years)
            files[f"aave/{reserve}_reserve_1d"] = (pd.DataFrame({
                "timestamp": days, "block_number": np.arange(len(days)), "liquidity_index": index,
                "liquidity_rate": self.supply_apr, "variable_borrow_index": index * 1.01,
                "variable_borrow_rate": self.supply_apr * 1.3, "total_supply": 1e9, "total_variable_debt": 8e8,
                "oracle_price_usd": price}), "1d")
        files["gas/ethereum_gas_1h"] = (pd.DataFrame({
            "timestamp": self.hours, "gas_price_gwei": self.gas_gwei, "base_fee_gwei": self.gas_gwei * 0.9,
            "priority_fee_p50_gwei": self.gas_gwei * 0.1, "block_number": np.arange(len(self.hours))}), "1h")
        return write_dataset(dest, files)


def _bars(hours: pd.DatetimeIndex, path: np.ndarray) -> pd.DataFrame:
    """Bars whose open is the path at the label and whose close is the next hour's open."""
    close = np.concatenate((path[1:], path[-1:]))
    return pd.DataFrame({"timestamp": hours, "open": path, "high": np.maximum(path, close),
                         "low": np.minimum(path, close), "close": close, "volume": 1.0})


def write_dataset(dest: Path, files: dict[str, tuple[pd.DataFrame, str]]) -> Path:
    """Write CSVs, copy the parameter files, and a MANIFEST.json that describes them."""
    if dest.exists():
        shutil.rmtree(dest)
    manifest: dict = {"synthetic": True, "files": {}}
    spacing = {"1h": 1.0, "8h": 8.0, "1d": 24.0}
    for name, (df, freq) in sorted(files.items()):
        rel = f"{name}.csv.gz"
        out = dest / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        df = df.copy()
        df["timestamp"] = pd.DatetimeIndex(df["timestamp"]).strftime("%Y-%m-%dT%H:%M:%SZ")
        raw = gzip.compress(df.to_csv(index=False).encode(), mtime=0)
        out.write_bytes(raw)
        manifest["files"][rel] = {
            "description": "synthetic", "columns": list(df.columns), "rows": len(df),
            "start": df["timestamp"].iloc[0], "end": df["timestamp"].iloc[-1], "frequency": freq,
            "median_spacing_hours": spacing[freq], "sha256": hashlib.sha256(raw).hexdigest(),
        }
    for rel in PARAMS:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        raw = (SAMPLE_DIR / rel).read_bytes()
        (dest / rel).write_bytes(raw)
        manifest["files"][rel] = {"description": "copied from the embedded sample",
                                  "sha256": hashlib.sha256(raw).hexdigest()}
    (dest / "MANIFEST.json").write_text(json.dumps(manifest, indent=1))
    return dest
