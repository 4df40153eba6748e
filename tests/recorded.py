"""Recorded exchange and chain responses, served through the clients' own seams (no network):
a requests transport adapter for ccxt, a web3 provider for the chain. Responses follow each venue's
documented format; the expectations in the tests are written by hand from the same documents."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlparse

from requests.adapters import BaseAdapter
from requests.models import Response


class RecordedTransport(BaseAdapter):
    """Answers a request by (host, path) with a function of its parameters (the query and a form or JSON body, with
    the HTTP method as `_method`); records every URL it saw. A handler may answer `(status, payload)` for an HTTP
    error, or raise (requests' Timeout or ConnectionError: the answer lost on the way back)."""

    def __init__(self, routes: dict):
        super().__init__()
        self.routes = routes
        self.seen: list[str] = []

    def send(self, request, **kwargs):
        self.seen.append(request.url)
        url = urlparse(request.url)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if request.body:
            body = request.body.decode() if isinstance(request.body, bytes) else request.body
            try:
                parsed = json.loads(body)
                query.update(parsed[0] if isinstance(parsed, list) else parsed)  # a batch of one: its order
            except ValueError:
                query.update({k: v[0] for k, v in parse_qs(body).items()})
        query["_method"] = request.method
        handler = self.routes.get((url.netloc, url.path))
        response = Response()
        response.url, response.request = request.url, request
        response.headers["Content-Type"] = "application/json"
        response.encoding = "utf-8"
        if handler is None:
            response.status_code, response._content = 404, b'{"msg": "not recorded"}'
        else:
            answer = handler(query)
            status, answer = answer if isinstance(answer, tuple) else (200, answer)
            response.status_code, response._content = status, json.dumps(answer).encode()
        return response

    def close(self):
        pass


def session_with(routes: dict):
    import requests

    s = requests.Session()
    transport = RecordedTransport(routes)
    s.mount("https://", transport)
    return s, transport


class RecordedChain:
    """A web3 provider answering JSON-RPC like an Ethereum node: blocks every 12 s from (n0, t0), eth_call
    by (contract, selector) through `calls`; each block's base fee and median priority fee (wei) from
    `fees(n)` (default: `base_fee`, `priority`), today's gas price `gas_price`. Only what the client asks."""

    def __init__(self, n0: int, t0: int, latest: int, calls: dict, gas_price: int = 0, priority: int = 0,
                 base_fee: int = 0, fees=None, chain_id: int = 1, balances: dict | None = None):
        from web3.providers.base import BaseProvider

        self.n0, self.t0, self.latest, self.calls = n0, t0, latest, calls
        self.gas_price, self.priority, self.base_fee = gas_price, priority, base_fee
        self.fees = fees or (lambda n: (base_fee, priority))
        self.chain_id, self.balances = chain_id, {k.lower(): v for k, v in (balances or {}).items()}  # ETH, wei
        self.seen: list[str] = []
        outer = self

        class Provider(BaseProvider):
            def make_request(self, method, params):
                return {"jsonrpc": "2.0", "id": 1, "result": outer.answer(method, params)}

            def is_connected(self, show_traceback: bool = False) -> bool:
                return True

        self.provider = Provider()

    def timestamp(self, n: int) -> int:
        return self.t0 + 12 * (n - self.n0)

    def answer(self, method: str, params):
        self.seen.append(method)
        if method == "eth_chainId":
            return hex(self.chain_id)
        if method == "eth_getBalance":
            return hex(self.balances.get(params[0].lower(), 0))
        if method == "eth_blockNumber":
            return hex(self.latest)
        if method == "eth_getBlockByNumber":
            n = self.latest if params[0] == "latest" else int(params[0], 16)
            return {"number": hex(n), "timestamp": hex(self.timestamp(n)), "baseFeePerGas": hex(self.fees(n)[0]),
                    "hash": "0x" + f"{n:064x}", "parentHash": "0x" + f"{n - 1:064x}", "transactions": []}
        if method == "eth_gasPrice":
            return hex(self.gas_price)
        if method == "eth_maxPriorityFeePerGas":
            return hex(self.priority)
        if method == "eth_feeHistory":  # (count, newest block, percentiles): one block, the 50th percentile
            count, newest, percentiles = params
            n = int(newest, 16) if isinstance(newest, str) else int(newest)
            assert int(count, 16) == 1 and list(percentiles) == [50], params
            return {"oldestBlock": hex(n), "baseFeePerGas": [hex(self.fees(n)[0]), hex(self.fees(n + 1)[0])],
                    "gasUsedRatio": [0.5], "reward": [[hex(self.fees(n)[1])]]}
        if method == "eth_call":
            call, block = params
            n = self.latest if block == "latest" else int(block, 16)
            to, data = call["to"].lower(), call["data"]
            handler = self.calls[(to, data[:10])]
            return "0x" + handler(bytes.fromhex(data[10:]), self.timestamp(n)).hex()
        raise NotImplementedError(method)

    def serve(self):
        """The same answers over HTTP on 127.0.0.1 (an RPC URL for the CLI); returns (url, server)."""
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                reqs = req if isinstance(req, list) else [req]
                out = [{"jsonrpc": "2.0", "id": r["id"], "result": outer.answer(r["method"], r["params"])}
                       for r in reqs]
                body = json.dumps(out if isinstance(req, list) else out[0]).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{server.server_address[1]}", server


def database_text(path) -> str:
    """Every row of every table of a store (the SQLite file, read with sqlite3) and of every Parquet file beside
    it, as text (to search it for what must never be stored)."""
    import sqlite3
    from pathlib import Path

    import pandas as pd

    if str(path).startswith("postgresql"):  # the tables of a PostgreSQL store
        import sqlalchemy as sa

        with sa.create_engine(str(path)).connect() as con:
            tables = [r[0] for r in con.exec_driver_sql("SELECT table_name FROM information_schema.tables WHERE "
                                                        "table_schema = 'public'")]
            return "\n".join(json.dumps([list(r) for r in con.exec_driver_sql(f'SELECT * FROM "{t}"')], default=str)
                             for t in tables)
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()]
        text = [json.dumps(con.execute(f'SELECT * FROM "{t}"').fetchall(), default=str) for t in tables]
    finally:
        con.close()
    analytics = Path(f"{path}.analytics")
    text += [pd.read_parquet(f).to_json(date_format="iso") for f in sorted(analytics.rglob("*.parquet"))]
    return "\n".join(text)


def steady_venues(price, funding_rate: float = 0.0001):
    """Binance and Bybit public market data for any hours asked (their documented formats): hourly ETH and BTC bars
    of perps and spot all at `price()` USDT (a callable: the test moves it), volume 1,000 a bar, funding every 8 h at
    `funding_rate`. A requests session serving them, for ExchangeClient."""
    hour = 3_600_000

    def hours(start: int, limit: int, end: int | None = None):
        import time

        now = int(time.time() * 1000) // hour * hour + 2 * hour  # (the local chain's clock may run ahead a little)
        first = -(-start // hour) * hour
        last = min(now, end if end is not None else now)
        return list(range(first, last + 1, hour))[:limit]

    def binance_klines(q):
        p = f"{price():.2f}"
        return [[t, p, p, p, p, "1000", t + hour - 1, "0", 1, "0", "0", "0"]
                for t in hours(int(q["startTime"]), int(q.get("limit", 500)), int(q["endTime"]) if "endTime" in q
                               else None)]

    def binance_funding(q):
        return [{"symbol": q.get("symbol", "ETHUSDT"), "fundingTime": t + 2, "fundingRate": repr(funding_rate),
                 "markPrice": "0"}
                for t in hours(int(q["startTime"]), int(q.get("limit", 100)) * 8) if t % (8 * hour) == 0]

    def bybit_kline(q):
        p = repr(price())
        rows = [[str(t), p, p, p, p, "1000", "0"]
                for t in hours(int(q["start"]), int(q.get("limit", 200)), int(q["end"]) if "end" in q else None)]
        return {"retCode": 0, "retMsg": "OK", "result": {"category": q["category"], "list": rows[::-1]},
                "retExtInfo": {}, "time": 0}

    def bybit_funding(q):
        rows = [{"symbol": q.get("symbol", "ETHUSDT"), "fundingRate": repr(funding_rate),
                 "fundingRateTimestamp": str(t)}
                for t in hours(int(q["startTime"]), int(q.get("limit", 200)) * 8) if t % (8 * hour) == 0
                and t <= int(q.get("endTime", 1 << 62))]
        return {"retCode": 0, "retMsg": "OK", "result": {"category": "linear", "list": rows[::-1]},
                "retExtInfo": {}, "time": 0}

    def okx_candles(q):  # newest first; records newer than `before` and older than `after` (ms)
        p = repr(price())
        before, after = int(q.get("before", 0)), int(q.get("after", 1 << 62))
        rows = [[str(t), p, p, p, p, "10000", "1000", "0", "1"] for t in hours(before + 1, 10_000)
                if before < t < after][-int(q.get("limit", 100)):]
        return {"code": "0", "msg": "", "data": rows[::-1]}

    def okx_funding(q):
        before, after = int(q.get("before", 0)), int(q.get("after", 1 << 62))
        rows = [{"fundingRate": repr(funding_rate), "realizedRate": repr(funding_rate), "fundingTime": str(t),
                 "instId": q.get("instId", "ETH-USDT-SWAP"), "instType": "SWAP", "method": "current_period"}
                for t in hours(max(before + 1, 0), 10_000 * 8) if t % (8 * hour) == 0 and before < t < after]
        return {"code": "0", "msg": "", "data": rows[::-1][: int(q.get("limit", 100))]}

    session, _ = session_with({
        ("www.okx.com", "/api/v5/market/candles"): okx_candles,
        ("www.okx.com", "/api/v5/market/history-candles"): okx_candles,
        ("www.okx.com", "/api/v5/public/funding-rate-history"): okx_funding,
        ("fapi.binance.com", "/fapi/v1/klines"): binance_klines,
        ("fapi.binance.com", "/fapi/v1/fundingRate"): binance_funding,
        ("api.bybit.com", "/v5/market/kline"): bybit_kline,
        ("api.bybit.com", "/v5/market/funding/history"): bybit_funding,
    })
    return session
