"""Deploy an Aave v3 market on a local chain from Aave's own compiled contracts (@aave/core-v3 artifacts), with
web3: the addresses provider, ACL, Pool and PoolConfigurator (library-linked, behind the provider's proxies),
an AaveOracle on mock price feeds, and four reserves (WETH, USDT, and mock tokens standing in for weETH and
wstETH) with the reserve and eMode parameters of params/aave_v3_risk.json."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..config.models import LeverageConfig
from ..connectors.chain import AaveMarket
from ..errors import BasiskitError, DataError
from ..venues.aave import LIQUIDATION_PROTOCOL_FEE

RAY = 10**27
BPS = 10**4
ORACLE_UNIT = 10**8  # AaveOracle base currency USD, 8 decimals (Aave v3 AaveOracle BASE_CURRENCY_UNIT)
ETH_EMODE = 1


@dataclass(frozen=True)
class ReserveSpec:
    """One reserve to list: the token, its price and its interest rate strategy (Aave v3
    DefaultReserveInterestRateStrategy: optimal usage ratio, base rate and the two variable slopes, APR)."""

    symbol: str
    name: str
    decimals: int
    price_usd: float
    optimal_usage: float
    base_rate: float
    slope1: float
    slope2: float
    pair: str | None  # the params/aave_v3_risk.json pair that sets its collateral parameters (None: not collateral)


# Rate strategies shaped like Aave v3 Ethereum's (WETH, USDT and LST strategies of 2024).
LST_RESERVE_ETH = 1_000_000  # ETH a faucet token holds to pay out what it minted (WETH withdraw, LST redeem)
RESERVES = (
    ReserveSpec("WETH", "Wrapped Ether", 18, 3000.0, 0.90, 0.0, 0.027, 0.80, "ETH_WETH"),
    ReserveSpec("USDT", "Tether USD", 6, 1.0, 0.92, 0.0, 0.055, 0.75, None),
    ReserveSpec("weETH", "Wrapped eETH", 18, 3150.0, 0.45, 0.0, 0.07, 3.00, "weETH_WETH"),
    ReserveSpec("wstETH", "Wrapped liquid staked Ether 2.0", 18, 3540.0, 0.45, 0.0, 0.07, 3.00, "wstETH_WETH"),
)


class Artifacts:
    """Aave's compiled contracts by name (hardhat artifacts: abi, bytecode, linkReferences), and the project's own
    (localchain/contracts, compiled by solc-js)."""

    def __init__(self, root: Path, own: dict[str, dict] | None = None):
        self.paths = {p.stem: p for p in root.rglob("*.json") if not p.name.endswith(".dbg.json")}
        self.own = own or {}
        if "Pool" not in self.paths:
            raise BasiskitError(f"no Aave v3 artifacts under {root}: run `make chain-tools`")

    @classmethod
    def of(cls, tools) -> Artifacts:
        from .solidity import compile_contracts

        return cls(tools.artifacts, compile_contracts(tools))

    def load(self, name: str) -> dict:
        return self.own[name] if name in self.own else json.loads(self.paths[name].read_text())


def linked(artifact: dict, libraries: dict[str, str]) -> str:
    """Creation bytecode with each library's address written at its link references (solc linking)."""
    code = artifact["bytecode"][2:]
    for refs in artifact["linkReferences"].values():
        for lib, places in refs.items():
            if lib not in libraries:
                raise BasiskitError(f"{artifact['contractName']} links {lib}, which is not deployed")
            address = libraries[lib][2:].lower()
            for place in places:
                start = 2 * place["start"]
                code = code[:start] + address + code[start + 2 * place["length"]:]
    return "0x" + code


@dataclass
class Deployer:
    """Sends transactions from one of anvil's unlocked accounts and waits for each receipt."""

    w3: object
    artifacts: Artifacts
    sender: str
    deployed: dict[str, str] = field(default_factory=dict)

    def deploy(self, name: str, *args, libraries: dict[str, str] | None = None, label: str | None = None):
        art = self.artifacts.load(name)
        factory = self.w3.eth.contract(abi=art["abi"], bytecode=linked(art, libraries or {}))
        receipt = self._wait(factory.constructor(*args).transact({"from": self.sender}), f"deploy {name}")
        self.deployed[label or name] = receipt["contractAddress"]
        return self.at(name, receipt["contractAddress"])

    def at(self, name: str, address: str):
        return self.w3.eth.contract(address=address, abi=self.artifacts.load(name)["abi"])

    def send(self, call, what: str, sender: str | None = None) -> dict:
        return self._wait(call.transact({"from": sender or self.sender}), what)

    def _wait(self, tx_hash, what: str) -> dict:
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash)
        if receipt["status"] != 1:
            raise BasiskitError(f"local chain: {what} reverted (tx {tx_hash.hex()})")
        return receipt


@dataclass
class LocalMarket:
    """A deployed market: the contracts and the accounts that run it."""

    deployer: Deployer
    pool: object
    configurator: object
    oracle: object
    treasury: str
    tokens: dict[str, object]  # symbol -> the underlying token contract
    decimals: dict[str, int]
    a_tokens: dict[str, object]
    debt_tokens: dict[str, object]
    lsts: tuple[str, ...] = ()  # the stand-in LSTs (deposit and redeem at their rate)
    flash_lever: object = None  # the project's flash-loan receiver (localchain/contracts/FlashLever.sol)

    def market(self) -> AaveMarket:
        """The addresses a ChainClient reads this market through (dataset reserve names: weth, usdt, ...)."""
        return AaveMarket(pool=self.pool.address, oracle=self.oracle.address,
                          assets={s.lower(): (t.address, self.decimals[s]) for s, t in self.tokens.items()})

    def aave_spec(self) -> dict:
        """The market as accounts.yaml's `aave` section names it (pool, oracle, assets, LSTs, flash receiver)."""
        m = self.market()
        return {"pool": m.pool, "oracle": m.oracle, "assets": {k: v[0] for k, v in m.assets.items()},
                "lst_contracts": "stand-in", "flash_receiver": self.flash_lever.address}

    def set_price(self, symbol: str, usd: float) -> None:
        """Move an asset's oracle price: a new mock feed at `usd`, set as its source (AaveOracle.setAssetSources)."""
        feed = self.deployer.deploy("MockAggregator", round(usd * ORACLE_UNIT), label=f"feed {symbol}")
        self.deployer.send(self.oracle.functions.setAssetSources([self.tokens[symbol].address], [feed.address]),
                           f"set the {symbol} price source")
        if symbol in self.lsts:  # a stand-in LST mints and redeems at its price in ETH, as the model values it
            weth = self.oracle.functions.getAssetPrice(self.tokens["WETH"].address).call() / ORACLE_UNIT
            self.deployer.send(self.tokens[symbol].functions.setRate(round(usd / weth * 1e18)), f"{symbol} rate")

    def mint(self, symbol: str, to: str, amount: int) -> None:
        self.deployer.send(self.tokens[symbol].functions.mint(to, amount), f"mint {symbol}", sender=to)


def risk_parameters(risk: dict) -> tuple[dict[str, tuple[int, int, int]], tuple[int, int, int]]:
    """(standard ltv, threshold, bonus per pair; the ETH-correlated eMode's), in bps as the configurator takes
    them (bonus as 10000 + bonus). Every eMode pair must agree: Aave has one category for them."""

    def bps(table: dict, pair: str) -> tuple[int, int, int]:
        return (round(table["ltv_limits"][pair] * BPS), round(table["liquidation_thresholds"][pair] * BPS),
                BPS + round(table["liquidation_bonus"][pair] * BPS))

    pairs = [r.pair for r in RESERVES if r.pair]
    try:
        standard = {p: bps(risk["standard"], p) for p in pairs}
        emodes = {bps(risk["emode"], p) for p in pairs}
    except KeyError as exc:
        raise DataError(f"params/aave_v3_risk.json lacks {exc} for the local market's pairs {pairs}") from exc
    if len(emodes) != 1:
        raise DataError(f"params/aave_v3_risk.json: the eMode pairs {pairs} differ ({sorted(emodes)}); "
                        "Aave's ETH-correlated category has one set of parameters")
    return standard, emodes.pop()


def deploy_market(w3, artifacts: Artifacts, risk: dict) -> LocalMarket:
    """Deploy and configure the market; the first account deploys and is pool admin, the tenth is the treasury."""
    accounts = w3.eth.accounts
    admin, treasury = accounts[0], accounts[9]
    d = Deployer(w3, artifacts, admin)
    standard, emode = risk_parameters(risk)

    provider = d.deploy("PoolAddressesProvider", "basiskit-local", admin)
    d.send(provider.functions.setACLAdmin(admin), "set the ACL admin")
    acl = d.deploy("ACLManager", provider.address)
    d.send(provider.functions.setACLManager(acl.address), "set the ACL manager")
    d.send(acl.functions.addPoolAdmin(admin), "add the pool admin")

    libs = {name: d.deploy(name).address for name in ("SupplyLogic", "BorrowLogic", "LiquidationLogic", "EModeLogic",
                                                      "BridgeLogic", "PoolLogic")}
    libs["FlashLoanLogic"] = d.deploy("FlashLoanLogic", libraries=libs).address
    pool_impl = d.deploy("Pool", provider.address, libraries=libs)
    d.send(provider.functions.setPoolImpl(pool_impl.address), "set the pool implementation")
    pool = d.at("Pool", provider.functions.getPool().call())
    conf_impl = d.deploy("PoolConfigurator", libraries={"ConfiguratorLogic": d.deploy("ConfiguratorLogic").address})
    d.send(provider.functions.setPoolConfiguratorImpl(conf_impl.address), "set the configurator implementation")
    configurator = d.at("PoolConfigurator", provider.functions.getPoolConfigurator().call())

    tokens, feeds = {}, []
    weth_usd = next(r.price_usd for r in RESERVES if r.symbol == "WETH")
    for r in RESERVES:
        if r.symbol == "WETH":
            tokens[r.symbol] = d.deploy("WETH9Mocked", label=r.symbol)
            # its faucet mints without ETH: a reserve so that withdraw (unwrapping) pays out what it minted
            w3.provider.make_request("anvil_setBalance", [tokens[r.symbol].address, hex(LST_RESERVE_ETH * 10**18)])
        elif r.pair and r.pair.endswith("_WETH"):  # an LST: minted and redeemed at its rate to ETH (the oracle's)
            tokens[r.symbol] = d.deploy("StandInLST", r.name, r.symbol, round(r.price_usd / weth_usd * 1e18),
                                        label=r.symbol)
            w3.provider.make_request("anvil_setBalance", [tokens[r.symbol].address, hex(LST_RESERVE_ETH * 10**18)])
        else:
            tokens[r.symbol] = d.deploy("MintableERC20", r.name, r.symbol, r.decimals, label=r.symbol)
        feeds.append(d.deploy("MockAggregator", round(r.price_usd * ORACLE_UNIT), label=f"feed {r.symbol}").address)
    zero = "0x" + "00" * 20
    oracle = d.deploy("AaveOracle", provider.address, [tokens[r.symbol].address for r in RESERVES], feeds, zero, zero,
                      ORACLE_UNIT)
    d.send(provider.functions.setPriceOracle(oracle.address), "set the price oracle")
    data_provider = d.deploy("AaveProtocolDataProvider", provider.address)
    d.send(provider.functions.setPoolDataProvider(data_provider.address), "set the data provider")

    a_impl = d.deploy("AToken", pool.address)
    s_impl = d.deploy("StableDebtToken", pool.address)
    v_impl = d.deploy("VariableDebtToken", pool.address)
    inputs = []
    for r in RESERVES:
        strategy = d.deploy("DefaultReserveInterestRateStrategy", provider.address, round(r.optimal_usage * RAY),
                            round(r.base_rate * RAY), round(r.slope1 * RAY), round(r.slope2 * RAY), 0, 0, 0, 0, 0,
                            label=f"rates {r.symbol}")
        inputs.append((a_impl.address, s_impl.address, v_impl.address, r.decimals, strategy.address,
                       tokens[r.symbol].address, treasury, zero, f"Aave {r.symbol}", f"a{r.symbol}",
                       f"Aave variable debt {r.symbol}", f"variableDebt{r.symbol}", f"Aave stable debt {r.symbol}",
                       f"stableDebt{r.symbol}", b""))
    d.send(configurator.functions.initReserves(inputs), "list the reserves")

    c = configurator.functions
    d.send(c.setEModeCategory(ETH_EMODE, *emode, zero, "ETH correlated"), "set the eMode category")
    for r in RESERVES:
        asset = tokens[r.symbol].address
        d.send(c.setReserveBorrowing(asset, True), f"enable {r.symbol} borrowing")
        d.send(c.setReserveFlashLoaning(asset, True), f"enable {r.symbol} flash loans")
        d.send(c.setReserveFactor(asset, round(risk["reserve_factors"][r.symbol] * BPS)), f"{r.symbol} reserve factor")
        if r.pair:
            d.send(c.configureReserveAsCollateral(asset, *standard[r.pair]), f"{r.symbol} as collateral")
            fee = round(LIQUIDATION_PROTOCOL_FEE * BPS)
            d.send(c.setLiquidationProtocolFee(asset, fee), f"{r.symbol} protocol fee")
            d.send(c.setAssetEModeCategory(asset, ETH_EMODE), f"{r.symbol} in eMode")

    a_tokens, debt_tokens = {}, {}
    for r in RESERVES:
        data = pool.functions.getReserveData(tokens[r.symbol].address).call()
        a_tokens[r.symbol] = d.at("AToken", data[8])
        debt_tokens[r.symbol] = d.at("VariableDebtToken", data[10])
    lsts = tuple(s for s, t in tokens.items() if "setRate" in {f["name"] for f in t.abi if f.get("type") == "function"})
    # the flash-loan premium the engine plans with (Aave v3 Ethereum's FLASHLOAN_PREMIUM_TOTAL, bps)
    d.send(c.updateFlashloanPremiumTotal(round(LeverageConfig().flash_loan_premium * BPS)), "set the flash premium")
    flash = d.deploy("FlashLever", pool.address, tokens["WETH"].address)
    return LocalMarket(d, pool, configurator, oracle, treasury, tokens, {r.symbol: r.decimals for r in RESERVES},
                       a_tokens, debt_tokens, lsts, flash)
