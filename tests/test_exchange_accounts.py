"""Exchange accounts through ccxt's private endpoints, with responses recorded in each venue's documented format
(Binance USDⓈ-M fapi v3, Bybit v5, OKX v5) served by ccxt's own transport seam. The expectations are read by
hand from the same responses."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("ccxt")

from basiskit.connectors.exchanges import ExchangeAccount, VenueReadError  # noqa: E402
from recorded import session_with  # noqa: E402

KEY, SECRET, PASSWORD = "k-3f9a1c", "s-very-secret-77d2", "pw-5e1b"

BINANCE = {
    ("fapi.binance.com", "/fapi/v3/account"): lambda q: {
        "totalWalletBalance": "250123.45000000", "totalUnrealizedProfit": "-1520.00000000",
        "assets": [{"asset": "USDT", "walletBalance": "250123.45000000", "unrealizedProfit": "-1520.00000000",
                    "marginBalance": "248603.45000000", "availableBalance": "180000.00000000",
                    "crossWalletBalance": "250123.45000000", "maxWithdrawAmount": "180000.00000000",
                    "initialMargin": "68603.45", "maintMargin": "1200.0", "updateTime": 1732940000000}],
        "positions": []},
    ("fapi.binance.com", "/fapi/v3/positionRisk"): lambda q: [
        {"symbol": "ETHUSDT", "positionSide": "BOTH", "positionAmt": "-40.000", "entryPrice": "3412.50",
         "breakEvenPrice": "3411.1", "markPrice": "3450.50000000", "unRealizedProfit": "-1520.00000000",
         "liquidationPrice": "6120.25", "isolatedMargin": "0", "notional": "-138020.00000000", "marginAsset": "USDT",
         "isolatedWallet": "0", "initialMargin": "69010.00000000", "maintMargin": "552.08",
         "positionInitialMargin": "69010.00000000", "openOrderInitialMargin": "0", "adl": 1, "bidNotional": "0",
         "askNotional": "0", "updateTime": 1732940000000},
        {"symbol": "BTCUSDT", "positionSide": "BOTH", "positionAmt": "0.000", "entryPrice": "0", "markPrice": "97000",
         "unRealizedProfit": "0", "liquidationPrice": "0", "notional": "0", "initialMargin": "0",
         "maintMargin": "0", "updateTime": 0}],
    ("fapi.binance.com", "/fapi/v1/leverageBracket"): lambda q: [
        {"symbol": "ETHUSDT", "brackets": [{"bracket": 1, "initialLeverage": 2, "notionalCap": 300000,
                                            "notionalFloor": 0, "maintMarginRatio": 0.004, "cum": 0}]}],
    ("fapi.binance.com", "/fapi/v1/symbolConfig"): lambda q: [
        {"symbol": "ETHUSDT", "marginType": "CROSSED", "isAutoAddMargin": "false", "leverage": 2,
         "maxNotionalValue": "300000"}],
}


def _bybit(q):
    return {"retCode": 0, "retMsg": "OK", "result": q, "retExtInfo": {}, "time": 1732940000000}


BYBIT = {
    ("api.bybit.com", "/v5/user/query-api"): lambda q: _bybit({"id": "1", "readOnly": 1, "unified": 0, "uta": 1,
                                                                 "permissions": {}, "isMaster": True}),
    ("api.bybit.com", "/v5/account/info"): lambda q: _bybit({"unifiedMarginStatus": 5, "marginMode": "REGULAR_MARGIN",
                                                              "isMasterTrader": False, "spotHedgingStatus": "OFF",
                                                              "updatedTime": "1732940000000"}),
    ("api.bybit.com", "/v5/account/wallet-balance"): lambda q: _bybit({"list": [{
        "accountType": "UNIFIED", "totalEquity": "120480.5", "totalWalletBalance": "120000.0",
        "totalMarginBalance": "120480.5", "totalAvailableBalance": "90000", "totalPerpUPL": "480.5",
        "totalInitialMargin": "30480", "totalMaintenanceMargin": "300", "accountIMRate": "0.25",
        "accountMMRate": "0.0025", "accountLTV": "0",
        "coin": [{"coin": "USDT", "equity": "120480.5", "usdValue": "120480.5", "walletBalance": "120000.0",
                  "unrealisedPnl": "480.5", "locked": "0", "borrowAmount": "0", "accruedInterest": "0",
                  "totalOrderIM": "0", "totalPositionIM": "30480", "totalPositionMM": "300",
                  "cumRealisedPnl": "-12.5", "availableToWithdraw": "", "spotHedgingQty": "0"}]}]}),
    ("api.bybit.com", "/v5/position/list"): lambda q: _bybit({"category": "linear", "nextPageCursor": "", "list": [
        {"positionIdx": 0, "symbol": "BTCUSDT", "side": "Sell", "size": "0.6", "avgPrice": "98000.5",
         "positionValue": "58800.3", "leverage": "2", "markPrice": "97199.5", "liqPrice": "145000",
         "positionIM": "29399.85", "positionMM": "293.9", "unrealisedPnl": "480.5", "cumRealisedPnl": "-12.5",
         "tradeMode": 0, "positionStatus": "Normal", "createdTime": "1732900000000",
         "updatedTime": "1732940000000", "markPrice_": None}]}),
}

OKX = {
    ("www.okx.com", "/api/v5/account/balance"): lambda q: {"code": "0", "msg": "", "data": [{
        "uTime": "1732940000000", "totalEq": "75010", "details": [
            {"ccy": "USDT", "eq": "75010", "cashBal": "75250", "availBal": "50000", "frozenBal": "25250",
             "upl": "-240", "uTime": "1732940000000"}]}]},
    ("www.okx.com", "/api/v5/account/positions"): lambda q: {"code": "0", "msg": "", "data": [
        {"instId": "ETH-USDT-SWAP", "instType": "SWAP", "mgnMode": "cross", "posSide": "net", "pos": "-150",
         "avgPx": "3434.0", "markPx": "3450.0", "upl": "-240", "lever": "3", "liqPx": "5100.5", "imr": "17250",
         "mmr": "103.5", "margin": "", "notionalUsd": "51750", "ccy": "USDT", "cTime": "1732900000000",
         "uTime": "1732940000000", "posId": "1"}]},
}


@pytest.mark.parametrize("venue,routes,asset,size,entry,mark,upl,margin,lev,liq,usdt", [
    # the balance is the wallet's cash, before unrealized PnL (Binance walletBalance, Bybit walletBalance, OKX cashBal)
    ("binance", BINANCE, "ETH", -40.0, 3412.5, 3450.5, -1520.0, 69010.0, 2.0, 6120.25, 250123.45),
    ("bybit", BYBIT, "BTC", -0.6, 98000.5, 97199.5, 480.5, 29399.85, 2.0, 145000.0, 120000.0),
    # OKX counts ETH-USDT-SWAP in contracts of 0.1 ETH: -150 contracts are 15 ETH short
    ("okx", OKX, "ETH", -15.0, 3434.0, 3450.0, -240.0, 17250.0, 3.0, 5100.5, 75250.0),
])
def test_a_venue_account_reads_as_the_venue_states_it(venue, routes, asset, size, entry, mark, upl, margin, lev, liq,
                                                        usdt):
    session, transport = session_with(routes)
    account = ExchangeAccount(venue, KEY, SECRET, PASSWORD if venue == "okx" else None, ["BTC", "ETH"], session)
    got = account.read()
    assert list(got["positions"]) == [asset]
    p = got["positions"][asset]
    assert (p.size, p.entry_price, p.mark_price, p.unrealized_pnl) == (size, entry, mark, upl)
    assert (p.margin, p.leverage, p.liquidation_price) == (margin, lev, liq)
    assert math.isclose(got["balances"]["USDT"], usdt, rel_tol=0, abs_tol=1e-9)
    assert all(SECRET not in url for url in transport.seen)


def test_a_venue_error_is_one_message_without_the_credentials():
    routes = {("fapi.binance.com", "/fapi/v3/account"): lambda q: {"code": -2015,
                                                                   "msg": f"Invalid API-key {KEY}, IP, or permissions"}}
    session, _ = session_with(routes)
    with pytest.raises(VenueReadError) as caught:
        ExchangeAccount("binance", KEY, SECRET, None, ["ETH"], session).read()
    text = str(caught.value)
    assert text.startswith("binance: the account could not be read") and KEY not in text and SECRET not in text
