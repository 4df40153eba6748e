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
    """Every row of every table of a results database, as text (to search it for what must never be stored)."""
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]
        return "\n".join(json.dumps(con.execute(f'SELECT * FROM "{t}"').fetchall(), default=str) for t in tables)
    finally:
        con.close()
