"""Public market data of Binance, Bybit and OKX through ccxt, mapped to the dataset's rows.

Series served (the dataset's names): perp/{venue}_{asset}usdt_1h and spot/{venue}_{asset}usdt_1h (OHLCV,
labelled by the bar's open, base-asset volume) and funding/{venue}_{asset}usdt_8h (each settlement at its
funding time, the rate as the exchange states it: positive means longs pay shorts, so a position of size
s receives -s x mark x rate, dataset README). OKX also gives `realized_funding_rate`, the rate actually
settled (its `realizedRate`), which the dataset and the engine use for OKX.

The markets are declared here (USDT spot pairs and USDT-margined linear perpetuals), so no exchange-info
download is needed; `session` replaces ccxt's HTTP session (its transport seam).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import BasiskitError, DataError, require_live_extra

SERIES = re.compile(r"^(perp|spot|funding)/(binance|bybit|okx)_([a-z0-9]+)usdt_(1h|8h)$")
CCXT_CLASSES = {
    ("binance", "spot"): "binance",
    ("binance", "perp"): "binanceusdm",
    ("bybit", "spot"): "bybit",
    ("bybit", "perp"): "bybit",
    ("okx", "spot"): "okx",
    ("okx", "perp"): "okx",
}
MARKET_ID = {  # how each venue names the instrument (exchange API docs)
    ("binance", "spot"): "{A}USDT",
    ("binance", "perp"): "{A}USDT",
    ("bybit", "spot"): "{A}USDT",
    ("bybit", "perp"): "{A}USDT",
    ("okx", "spot"): "{A}-USDT",
    ("okx", "perp"): "{A}-USDT-SWAP",
}
# A linear perp contract's size in the base asset (OKX instruments: ctVal; Binance and Bybit quote positions in
# the base asset).
CONTRACT_SIZE = {("okx", "BTC"): 0.01, ("okx", "ETH"): 0.1}
# A perp order's quantity step (OKX: contracts) and price tick (Binance exchangeInfo LOT_SIZE / PRICE_FILTER, Bybit
# instruments-info qtyStep / tickSize, OKX instruments lotSz / tickSz); ccxt rounds orders to them.
PERP_PRECISION = {("binance", "ETH"): (0.001, 0.01), ("binance", "BTC"): (0.001, 0.1),
                  ("bybit", "ETH"): (0.01, 0.01), ("bybit", "BTC"): (0.001, 0.1),
                  ("okx", "ETH"): (0.01, 0.01), ("okx", "BTC"): (0.01, 0.1)}
HOUR_MS = 3_600_000
PAGE = 200  # rows per request (every venue allows at least 200 klines or funding rows per call)


@dataclass(frozen=True)
class Instrument:
    venue: str
    kind: str  # perp | spot | funding
    asset: str

    @property
    def market_kind(self) -> str:
        return "spot" if self.kind == "spot" else "perp"

    @property
    def symbol(self) -> str:
        return f"{self.asset}/USDT" if self.kind == "spot" else f"{self.asset}/USDT:USDT"


def instrument_of(series: str) -> Instrument | None:
    """The exchange instrument behind a dataset series name, or None when no exchange serves it."""
    m = SERIES.match(series)
    return Instrument(m.group(2), m.group(1), m.group(3).upper()) if m else None


def _market(venue: str, kind: str, asset: str) -> dict:
    swap = kind == "perp"
    quote = "USDT"
    market_id = MARKET_ID[(venue, kind)].format(A=asset)
    return {
        "id": market_id,
        "symbol": f"{asset}/{quote}" + (f":{quote}" if swap else ""),
        "base": asset,
        "quote": quote,
        "settle": quote if swap else None,
        "baseId": asset,
        "quoteId": quote,
        "settleId": quote if swap else None,
        "type": "swap" if swap else "spot",
        "spot": not swap,
        "margin": False,
        "swap": swap,
        "future": False,
        "option": False,
        "index": False,
        "active": True,
        "contract": swap,
        "linear": True if swap else None,
        "inverse": False if swap else None,
        "contractSize": CONTRACT_SIZE.get((venue, asset), 1.0) if swap else None,
        "expiry": None,
        "expiryDatetime": None,
        "strike": None,
        "optionType": None,
        "taker": None,
        "maker": None,
        "precision": dict(zip(("amount", "price"), PERP_PRECISION.get((venue, asset), (None, None)), strict=True))
        if swap else {"amount": None, "price": None},
        "limits": {
            "amount": {"min": None, "max": None},
            "price": {"min": None, "max": None},
            "cost": {"min": None, "max": None},
            "leverage": {"min": None, "max": None},
        },
        "created": None,
        # what the venues' instrument lists state and ccxt checks: OKX's instId, Binance's orderTypes (exchangeInfo)
        "info": {"instId": market_id} if venue == "okx" else {"orderTypes": ["LIMIT", "MARKET"]}
        if venue == "binance" else {},
    }


class ExchangeClient:
    """One venue's spot and perp public data; `session` (a requests.Session) carries every request."""

    def __init__(self, venue: str, assets: list[str], session=None):
        ccxt = require_live_extra("ccxt")

        self.venue = venue
        self._ccxt = {}
        for kind in ("spot", "perp"):
            cls = getattr(ccxt, CCXT_CLASSES[(venue, kind)])
            ex = cls(
                {"enableRateLimit": session is None, "options": {"defaultType": "swap" if kind == "perp" else "spot"}}
            )
            if session is not None:
                ex.session = session
            ex.set_markets([_market(venue, kind, a) for a in assets])
            self._ccxt[kind] = ex

    def bars(self, inst: Instrument, since: int, until: int) -> list[tuple[int, dict[str, float]]]:
        """1h OHLCV bars labelled since..until (epoch s, inclusive), oldest first; the last may still be open."""
        ex = self._ccxt[inst.market_kind]
        rows: dict[int, dict[str, float]] = {}
        cursor = since * 1000
        while cursor <= until * 1000:
            page = ex.fetch_ohlcv(inst.symbol, "1h", since=cursor, limit=PAGE)
            fresh = [c for c in page if cursor <= c[0] <= until * 1000]
            for ts, o, h, lo, c, v in (c[:6] for c in fresh):
                rows[int(ts) // 1000] = {
                    "open": float(o),
                    "high": float(h),
                    "low": float(lo),
                    "close": float(c),
                    "volume": float(v),
                }
            if not fresh:
                break
            cursor = max(c[0] for c in fresh) + HOUR_MS
        return sorted(rows.items())

    def funding(self, inst: Instrument, since: int, until: int) -> list[tuple[int, dict[str, float]]]:
        """Funding settlements with since <= time <= until (epoch s), oldest first. The exchanges stamp a
        settlement at its funding time, give or take milliseconds (Binance): the time is cut to the second."""
        ex = self._ccxt["perp"]
        rows: dict[int, dict[str, float]] = {}
        cursor = since * 1000
        while cursor <= until * 1000:
            page = ex.fetch_funding_rate_history(inst.symbol, since=cursor, limit=PAGE)
            fresh = [f for f in page if cursor <= f["timestamp"] <= until * 1000 + 999]
            for f in fresh:
                rows[int(f["timestamp"]) // 1000] = self._funding_values(f)
            if not fresh:
                break
            cursor = max(f["timestamp"] for f in fresh) + 1000
        return sorted(rows.items())

    def _funding_values(self, f: dict) -> dict[str, float]:
        if self.venue != "okx":
            return {"funding_rate": float(f["fundingRate"])}
        # OKX settles `realizedRate`, which can differ from its `fundingRate` field; ccxt reports the realized
        # one as fundingRate, so both are read from the raw response (OKX API: funding-rate-history).
        info = f["info"]
        if info.get("realizedRate") in (None, "") or info.get("fundingRate") in (None, ""):
            raise DataError(
                f"okx funding at {f.get('datetime')}: the response lacks fundingRate or realizedRate "
                f"({info}); the settled rate is unknown."
            )
        return {"funding_rate": float(info["fundingRate"]), "realized_funding_rate": float(info["realizedRate"])}

    def mark(self, inst: Instrument) -> float:
        """The perp's current mark price, the price the venue values positions and margin at (Binance
        premiumIndex, OKX mark-price; Bybit's ticker carries it)."""
        ex = self._ccxt["perp"]
        fetch = ex.fetch_mark_price if ex.has.get("fetchMarkPrice") else ex.fetch_ticker
        quote = fetch(inst.symbol)
        price = quote.get("markPrice")
        if price is None:
            raise DataError(f"{self.venue} {inst.symbol}: no mark price in the response ({quote.get('info')}).")
        return float(price)


# How each venue names a ledger entry's type (its raw field) -> what explains a cash change; anything else is a
# trade's realized PnL. Binance income types, Bybit transaction-log types, OKX bill types (1 transfer, 8 funding).
LEDGER_KINDS = {
    "binance": ("incomeType", {"FUNDING_FEE": "funding", "COMMISSION": "fees", "TRANSFER": "flows",
                               "INTERNAL_TRANSFER": "flows"}),
    "bybit": ("type", {"SETTLEMENT": "funding", "TRANSFER_IN": "flows", "TRANSFER_OUT": "flows"}),
    "okx": ("type", {"8": "funding", "1": "flows"}),
}


class VenueReadError(BasiskitError):
    """A venue answered an account read with an error (or not at all); the message never holds a credential."""


class OrderRefused(BasiskitError):
    """The venue refused an order or a call about one (min notional, margin, reduce-only, unknown order, ...)."""

    def __init__(self, message: str, kind: str = "", moves: list | None = None):
        super().__init__(message)
        self.kind = kind  # ccxt's error class: InvalidOrder, InsufficientFunds, OrderNotFound, ...
        self.moves = moves  # what the order's earlier steps moved before it was refused (on-chain orders)


class OrderUnknown(BasiskitError):
    """No answer came (a timeout, a dropped connection): the order may be at the venue; look it up by client id."""


@dataclass(frozen=True)
class VenueOrder:
    """An order as the venue states it (sizes in base units): status open, closed, canceled, expired or rejected."""

    id: str
    client_id: str
    status: str
    amount: float
    filled: float
    average: float | None
    fee: float | None  # USDT
    moves: list | None = None  # [block or None, {holding key: units}]: what the order moved (when known)
    receipts: list | None = None  # an on-chain order's transactions' receipts


@dataclass(frozen=True)
class PerpPosition:
    """A perp position as the venue reports it: signed size in the base asset (short < 0)."""

    size: float
    entry_price: float
    mark_price: float
    unrealized_pnl: float
    margin: float
    leverage: float
    liquidation_price: float
    maintenance_margin: float = 0.0  # what the venue liquidates under (its margin ratio: this / equity)


class ExchangeAccount:
    """One venue's USDT-margined futures account through ccxt's private endpoints: balances and perp positions
    (Binance fapi v3 account and positionRisk, Bybit v5 wallet-balance and position/list, OKX v5 account balance
    and positions). `session` replaces ccxt's HTTP session (its transport seam)."""

    def __init__(self, venue: str, api_key: str, secret: str, password: str | None, assets: list[str],
                 session=None):
        ccxt = require_live_extra("ccxt")
        self.venue = venue
        self._secrets = [v for v in (api_key, secret, password) if v]
        config = {"apiKey": api_key, "secret": secret, "enableRateLimit": session is None,
                  "options": {"defaultType": "swap", "fetchCurrencies": False}}
        if password:
            config["password"] = password
        self._ex = getattr(ccxt, CCXT_CLASSES[(venue, "perp")])(config)
        if session is not None:
            self._ex.session = session
        self._ex.set_markets([_market(venue, "perp", a) for a in assets])
        self._assets = {f"{a}/USDT:USDT": a for a in assets}

    def read(self) -> dict:
        """{"balances": {coin: wallet balance}, "positions": {asset: PerpPosition}} as the venue states them now."""
        balance = self._call(self._ex.fetch_balance)
        positions = {}
        # every USDT-margined position (Bybit v5 position/list needs the settle coin to list them all)
        params = {"category": "linear", "settleCoin": "USDT"} if self.venue == "bybit" else {}
        for p in self._call(lambda: self._ex.fetch_positions(None, params)):
            asset = self._assets.get(p.get("symbol"))
            contracts = float(p.get("contracts") or 0.0)
            if asset is None or contracts == 0.0:
                continue
            size = contracts * float(p.get("contractSize") or 1.0) * (-1.0 if p.get("side") == "short" else 1.0)
            mark, margin = _f(p.get("markPrice")), _f(p.get("initialMargin"))
            # Binance's positionRisk v3 states no leverage: the effective one is notional / initial margin
            leverage = _f(p.get("leverage")) if p.get("leverage") else abs(size * mark) / margin
            positions[asset] = PerpPosition(size, _f(p.get("entryPrice")), mark, _f(p.get("unrealizedPnl")), margin,
                                            leverage, _f(p.get("liquidationPrice")), _f(p.get("maintenanceMargin")))
        return {"balances": self._wallet(balance.get("info") or {}), "positions": positions}

    def ledger(self, since_ms: int, until_ms: int, coin: str = "USDT") -> list[dict]:
        """The account's cash movements in (since_ms, until_ms] (epoch ms), each {"timestamp" (ms), "kind",
        "amount", "type"} with kind funding, fees, flows (transfers in and out) or trades (realized PnL), amount
        signed in `coin`. Read from the venue's ledger (Binance fapi income, Bybit v5 transaction-log, OKX v5 bills)."""
        field, kinds = LEDGER_KINDS[self.venue]
        out, cursor = [], since_ms + 1
        for _ in range(50):  # pages of 100 movements
            page = self._call(lambda c=cursor: self._ex.fetch_ledger(coin, c, 100))
            fresh = [e for e in page if cursor <= e["timestamp"] <= until_ms]
            for e in fresh:
                raw = str((e.get("info") or {}).get(field, ""))
                sign = -1.0 if e.get("direction") == "out" else 1.0
                out.append({"timestamp": e["timestamp"], "kind": kinds.get(raw, "trades"),
                            "amount": sign * abs(float(e["amount"])), "type": raw})
            if len(page) < 100 or not fresh:
                return sorted(out, key=lambda e: e["timestamp"])
            cursor = max(e["timestamp"] for e in fresh) + 1
        raise VenueReadError(f"{self.venue}: more than 5000 ledger entries in one hour; read them in smaller windows")

    # --- orders (live step 2): limit IOC at a price the caller bounds, identified by the caller's client id ------
    def mark(self, asset: str) -> float:
        """The perp's mark price now (Binance premiumIndex, OKX mark-price, Bybit's ticker)."""
        ex = self._ex
        fetch = ex.fetch_mark_price if ex.has.get("fetchMarkPrice") else ex.fetch_ticker
        quote = self._call(lambda: fetch(f"{asset}/USDT:USDT"), "the mark could not be read")
        if quote.get("markPrice") is None:
            raise VenueReadError(f"{self.venue} {asset}: no mark price in the answer")
        return float(quote["markPrice"])

    def place(self, asset: str, side: str, size: float, limit: float, client_id: str) -> VenueOrder:
        """A limit IOC order of `size` base units (OKX: in contracts of CONTRACT_SIZE), tagged `client_id` (every
        venue deduplicates on it). Raises OrderRefused for a venue's reject, OrderUnknown when the answer was lost
        (a timeout or a dropped connection: the order may or may not be at the venue; look it up)."""
        amount = size / CONTRACT_SIZE.get((self.venue, asset), 1.0)
        params = {"clientOrderId": client_id, "timeInForce": "IOC"}
        order = self._send(lambda: self._ex.create_order(f"{asset}/USDT:USDT", "limit", side, amount, limit, params))
        if order.get("status") is None:  # Bybit and OKX answer an order with its ids only: its fill is read back
            found = self.order(asset, client_id)
            if found is None:
                raise OrderUnknown(f"{self.venue}: the order {client_id} was acknowledged but cannot be found")
            return found
        return self._order(asset, order, client_id)

    def order(self, asset: str, client_id: str) -> VenueOrder | None:
        """The order the venue holds under `client_id` (open or done), or None when it has none."""
        ccxt = require_live_extra("ccxt")
        symbol = f"{asset}/USDT:USDT"
        try:
            if self.venue == "bybit":  # v5 order/realtime also lists the recently closed (Bybit v5 docs)
                got = self._send(lambda: self._ex.fetch_open_orders(symbol, None, None, {"orderLinkId": client_id}))
                got = got or self._send(lambda: self._ex.fetch_closed_orders(symbol, None, None,
                                                                                {"orderLinkId": client_id}))
                return self._order(asset, got[0], client_id) if got else None
            params = {"clOrdId": client_id} if self.venue == "okx" else {"clientOrderId": client_id}
            return self._order(asset, self._send(lambda: self._ex.fetch_order(None, symbol, params)), client_id)
        except OrderRefused as exc:
            if isinstance(exc.__cause__, ccxt.OrderNotFound):
                return None
            raise

    def open_orders(self, asset: str) -> list[VenueOrder]:
        symbol = f"{asset}/USDT:USDT"
        return [self._order(asset, o, o.get("clientOrderId") or "")
                for o in self._send(lambda: self._ex.fetch_open_orders(symbol))]

    def cancel(self, asset: str, order: VenueOrder) -> None:
        self._send(lambda: self._ex.cancel_order(order.id, f"{asset}/USDT:USDT"))

    def _order(self, asset: str, o: dict, client_id: str) -> VenueOrder:
        unit = CONTRACT_SIZE.get((self.venue, asset), 1.0)
        fee = o.get("fee") or {}
        return VenueOrder(str(o.get("id")), o.get("clientOrderId") or client_id, str(o.get("status")),
                          float(o.get("amount") or 0.0) * unit, float(o.get("filled") or 0.0) * unit,
                          float(o["average"]) if o.get("average") else None,
                          float(fee["cost"]) if fee.get("cost") is not None else None)

    def _send(self, fn):
        """An order call: a venue's reject is OrderRefused, a lost answer OrderUnknown (credentials scrubbed)."""
        ccxt = require_live_extra("ccxt")
        try:
            return fn()
        except ccxt.NetworkError as exc:  # timeouts, dropped connections, a venue unavailable (ccxt's errors)
            raise OrderUnknown(self.scrub(f"{self.venue}: no answer ({type(exc).__name__}: {exc})")) from None
        except ccxt.BaseError as exc:
            raise OrderRefused(self.scrub(f"{self.venue}: {type(exc).__name__}: {exc}"), type(exc).__name__) \
                from exc

    def scrub(self, text: str) -> str:
        """`text` without this account's credentials."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text[:400]

    def _wallet(self, info) -> dict[str, float]:
        """Each coin's wallet balance: cash, before unrealized PnL (ccxt's `total` is the equity on some venues and
        the wallet on others, so the venue's own field is read: Binance walletBalance, Bybit walletBalance,
        OKX cashBal)."""
        try:
            if self.venue == "binance":
                rows, coin, field = info["assets"], "asset", "walletBalance"
            elif self.venue == "bybit":
                rows, coin, field = info["result"]["list"][0]["coin"], "coin", "walletBalance"
            else:
                rows, coin, field = info["data"][0]["details"], "ccy", "cashBal"
            return {r[coin]: float(r[field]) for r in rows}
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise VenueReadError(f"{self.venue}: the balance response lacks {exc} (wallet balance unknown)") from None

    def _call(self, fn, what: str = "the account could not be read"):
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 (ccxt's errors and transport errors alike become one message)
            text = self.scrub(f"{type(exc).__name__}: {exc}")[:300]
            raise VenueReadError(f"{self.venue}: {what} ({text})") from None


def _f(value) -> float:
    return float("nan") if value in (None, "") else float(value)
