"""`basiskit data fetch` on recorded venue responses: appends only new final rows, keeps MANIFEST.json
true, passes `data check`, and a second run changes nothing."""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import sys

import pytest

pytest.importorskip("ccxt")

from basiskit.connectors.exchanges import ExchangeClient  # noqa: E402
from basiskit.data.fetch import fetch_dataset  # noqa: E402
from basiskit.data.timeutil import to_epoch  # noqa: E402
from recorded import session_with  # noqa: E402

H = 3_600_000
LAST = to_epoch("2025-01-08T00:00:00Z") * 1000  # the sample's last binance BTC bar and OKX settlement
PERP, FUNDING = "perp/binance_btcusdt_1h", "funding/okx_ethusdt_8h"


def _bar(i: int) -> list:
    o = 97228.0 + 10 * i
    return [
        LAST + i * H,
        str(o),
        str(o + 50),
        str(o - 40),
        str(o + 5),
        f"{1000 + i}.5",
        LAST + (i + 1) * H - 1,
        "0",
        1,
        "0",
        "0",
        "0",
    ]


def _clients():
    routes = {
        ("fapi.binance.com", "/fapi/v1/klines"): lambda q: [
            _bar(i) for i in range(0, 10) if LAST + i * H >= int(q["startTime"])
        ][: int(q["limit"])],
        ("www.okx.com", "/api/v5/public/funding-rate-history"): lambda q: {
            "code": "0",
            "msg": "",
            "data": [
                {
                    "fundingRate": "0.0000912",
                    "fundingTime": str(LAST + 8 * H),
                    "instId": "ETH-USDT-SWAP",
                    "instType": "SWAP",
                    "method": "current_period",
                    "realizedRate": "0.0000897",
                },
                {
                    "fundingRate": "0.0000887450436598",
                    "fundingTime": str(LAST),
                    "instId": "ETH-USDT-SWAP",
                    "instType": "SWAP",
                    "method": "current_period",
                    "realizedRate": "0.000098804880352",
                },
            ],
        },
    }
    session, _ = session_with(routes)
    return {
        "binance": ExchangeClient("binance", ["BTC"], session=session),
        "okx": ExchangeClient("okx", ["ETH"], session=session),
    }


def _lines(root, series):
    return gzip.decompress((root / f"{series}.csv.gz").read_bytes()).decode().splitlines()


def test_fetch_appends_the_new_final_rows_then_changes_nothing(sample_copy):
    root = sample_copy
    before_perp, before_funding = _lines(root, PERP), _lines(root, FUNDING)
    until = to_epoch("2025-01-08T09:00:00Z")
    got = fetch_dataset(root, until, [PERP, FUNDING], exchanges=_clients())
    # Bars labelled 01:00 .. 08:00 have closed by 09:00 (the 09:00 bar is still open); one settlement at 08:00.
    assert got == {PERP: 8, FUNDING: 1}
    perp = _lines(root, PERP)
    assert perp[:-8] == before_perp
    assert perp[-8] == "2025-01-08T01:00:00Z,97238.0,97288.0,97198.0,97243.0,1001.5"
    assert perp[-1] == "2025-01-08T08:00:00Z,97308.0,97358.0,97268.0,97313.0,1008.5"
    funding = _lines(root, FUNDING)
    assert funding[:-1] == before_funding
    assert funding[-1] == "2025-01-08T08:00:00Z,9.12e-05,8.97e-05"  # OKX fundingRate, then realizedRate
    manifest = json.loads((root / "MANIFEST.json").read_text())
    entry = manifest["files"][f"{PERP}.csv.gz"]
    assert entry["rows"] == len(perp) - 1 and entry["end"] == "2025-01-08T08:00:00Z"
    assert entry["sha256"] == hashlib.sha256((root / f"{PERP}.csv.gz").read_bytes()).hexdigest()
    check = subprocess.run(
        [sys.executable, "-m", "basiskit.cli", "data", "check", str(root)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0 and "series valid" in check.stdout, check.stderr
    snapshot = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert fetch_dataset(root, until, [PERP, FUNDING], exchanges=_clients()) == {PERP: 0, FUNDING: 0}
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == snapshot


def test_fetch_names_what_it_cannot_extend(sample_copy):
    from basiskit.errors import DataError

    with pytest.raises(DataError, match=r"spot/uniswapv3_wethusdt_1h \(no public source serves it\)"):
        fetch_dataset(sample_copy, to_epoch("2025-01-09T00:00:00Z"), ["spot/uniswapv3_wethusdt_1h"], exchanges={})
    with pytest.raises(DataError, match=r"aave/usdt_reserve_1d \(no public source serves it, or pass --rpc-url\)"):
        fetch_dataset(sample_copy, to_epoch("2025-01-09T00:00:00Z"), ["aave/usdt_reserve_1d"], exchanges={})


def test_a_failure_half_way_leaves_the_dataset_byte_identical(sample_copy):
    from basiskit.errors import DataError

    clients = _clients()
    routes = {("www.okx.com", "/api/v5/public/funding-rate-history"): lambda q: (_ for _ in ()).throw(
        ConnectionError("connection reset by peer"))}
    session, _ = session_with(routes)
    clients["okx"] = ExchangeClient("okx", ["ETH"], session=session)  # the second series' source fails
    snapshot = {p: p.read_bytes() for p in sample_copy.rglob("*") if p.is_file()}
    with pytest.raises(DataError, match=rf"{FUNDING}: the source failed .*nothing in the dataset was changed"):
        fetch_dataset(sample_copy, to_epoch("2025-01-08T09:00:00Z"), [PERP, FUNDING], exchanges=clients)
    assert {p: p.read_bytes() for p in sample_copy.rglob("*") if p.is_file()} == snapshot  # no temp file left


def test_a_past_hours_gas_comes_from_its_block(sample_copy):
    from basiskit.connectors.chain import GAS, ChainClient
    from basiskit.data.dataset import Dataset
    from basiskit.data.timeutil import iso
    from recorded import RecordedChain

    last = int(Dataset(sample_copy).series(GAS).ts[-1])
    t0 = last - 86_400

    def fees(n: int) -> tuple[int, int]:  # every block its own base and median priority fee (wei)
        return 9_000_000_000 + (n % 997) * 3_000_000, 40_000_000 + (n % 13) * 1_000_000

    chain = RecordedChain(20_000_000, t0, 20_100_000, {}, gas_price=99_000_000_000, priority=1, fees=fees)
    got = fetch_dataset(sample_copy, last + 3 * 3600, [GAS], exchanges={}, chain=ChainClient(chain.provider))
    assert got == {GAS: 3}
    for i, line in enumerate(_lines(sample_copy, GAS)[-3:], start=1):
        t = last + i * 3600
        n = 20_000_000 + (t - t0) // 12  # the block at t: 12 s blocks from (20,000,000, t0)
        base, median = fees(n)
        assert line == f"{iso(t)},{(base + median) / 1e9!r},{base / 1e9!r},{median / 1e9!r},{n}"
    assert "eth_gasPrice" not in chain.seen  # today's price is never asked for a past hour
