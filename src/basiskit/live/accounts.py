"""accounts.yaml: the fund's accounts per venue. Exchange API keys are named by environment variable (the
file holds names, never secrets); wallets by address. Every problem is refused at start naming the entry.

    chain_id: 1                      # the chain the RPC must serve (1: Ethereum mainnet)
    wallets:
      - name: treasury
        address: "0x..."
    exchanges:
      - venue: binance               # binance | bybit | okx
        api_key_env: BINANCE_KEY
        secret_env: BINANCE_SECRET
        password_env: null           # OKX's passphrase
    aave:                            # the Aave v3 market, when not Ethereum mainnet's (a local chain's)
      pool: "0x..."
      oracle: "0x..."
      assets: {weth: "0x...", usdt: "0x...", weeth: "0x...", wsteth: "0x..."}
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from ..errors import ConfigError

ACCOUNTS_ENV = "BASISKIT_ACCOUNTS"
ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Wallet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    address: str

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        if not ADDRESS.match(v):
            raise ValueError("must be 0x and 40 hex digits")
        return v


class Exchange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    venue: Literal["binance", "bybit", "okx"]
    api_key_env: str
    secret_env: str
    password_env: str | None = None

    @field_validator("api_key_env", "secret_env", "password_env")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        if v is not None and not ENV_NAME.match(v):
            raise ValueError("must be an environment variable's name (the file never holds a secret)")
        return v


def _checked_address(v: str) -> str:
    if not isinstance(v, str) or not ADDRESS.match(v):
        raise ValueError("must be 0x and 40 hex digits")
    return v


class AaveMarketSpec(BaseModel):
    """Where the Aave v3 market lives on this chain (reserve names as the dataset's: weth, usdt, weeth, wsteth)."""

    model_config = ConfigDict(extra="forbid")

    pool: str
    oracle: str
    assets: dict[Literal["weth", "usdt", "weeth", "wsteth"], str] = Field(min_length=1)

    @field_validator("pool", "oracle")
    @classmethod
    def _contract(cls, v: str) -> str:
        return _checked_address(v)

    @field_validator("assets")
    @classmethod
    def _tokens(cls, v: dict) -> dict:
        for token in v.values():
            _checked_address(token)
        return v


class AccountsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chain_id: int = Field(1, ge=1)
    wallets: list[Wallet] = Field(default_factory=list, max_length=100)
    exchanges: list[Exchange] = Field(default_factory=list, max_length=20)
    aave: AaveMarketSpec | None = None


class Credentials(BaseModel):
    """An exchange account's secrets, read from the environment; never printed (SecretStr)."""

    venue: str
    api_key: SecretStr
    secret: SecretStr
    password: SecretStr | None = None


class Accounts(BaseModel):
    path: Path
    chain_id: int
    wallets: list[Wallet]
    exchanges: list[Credentials]
    aave: AaveMarketSpec | None = None

    def market(self):
        """The Aave market the wallets are read from: mainnet's unless accounts.yaml names one."""
        from ..connectors.chain import ASSETS, MAINNET, AaveMarket

        if self.aave is None:
            return MAINNET
        return AaveMarket(self.aave.pool, self.aave.oracle,
                          {name: (address, ASSETS[name][1]) for name, address in self.aave.assets.items()})


def accounts_path(option: Path | None) -> Path:
    path = option or (Path(os.environ[ACCOUNTS_ENV]) if os.environ.get(ACCOUNTS_ENV) else None)
    if path is None:
        raise ConfigError([("--accounts", None, f"name the accounts file (--accounts FILE or ${ACCOUNTS_ENV})")])
    return path


def load_accounts(path: Path) -> Accounts:
    """Read and check accounts.yaml; the secrets its exchange entries name come from the environment."""
    if not path.is_file():
        raise ConfigError([("--accounts", str(path), "no such file")])
    try:
        raw = yaml.safe_load(path.read_text()) or {}
        parsed = AccountsFile.model_validate(raw)
    except yaml.YAMLError as exc:
        raise ConfigError([(str(path), None, f"not valid YAML: {exc}")]) from None
    except ValidationError as exc:
        raise ConfigError([(".".join(str(p) for p in e["loc"]) or "(file)", _shown(e), e["msg"])
                           for e in exc.errors()]) from None
    problems, creds = [], []
    names = [w.name for w in parsed.wallets]
    for i, name in enumerate(names):
        if names.index(name) != i:
            problems.append((f"wallets.{i}.name", name, "another wallet has this name"))
    for i, ex in enumerate(parsed.exchanges):
        values = {}
        for field in ("api_key_env", "secret_env", "password_env"):
            env = getattr(ex, field)
            if env is None:
                if field == "password_env" and ex.venue == "okx":
                    problems.append((f"exchanges.{i}.{field}", None, "OKX needs its API passphrase's variable"))
                continue
            if not os.environ.get(env):
                problems.append((f"exchanges.{i}.{field}", env, "this environment variable is not set"))
            values[field] = os.environ.get(env, "")
        if not problems:
            creds.append(Credentials(venue=ex.venue, api_key=values["api_key_env"], secret=values["secret_env"],
                                     password=values.get("password_env")))
    if parsed.wallets and parsed.chain_id != 1 and parsed.aave is None:
        problems.append(("aave", None, f"chain {parsed.chain_id} is not Ethereum mainnet: name its Aave v3 market "
                         "(aave: pool, oracle, assets)"))
    if problems:
        raise ConfigError(problems)
    return Accounts(path=path, chain_id=parsed.chain_id, wallets=parsed.wallets, exchanges=creds, aave=parsed.aave)


def _shown(error: dict):
    """A refused value as the error may show it: never what stands in an `*_env` field (a secret pasted where
    its variable's name belongs must not reach a terminal or a log); a long or nested value, shortened."""
    if str(error["loc"][-1]).endswith("_env"):
        return "(not shown)"
    value = error.get("input")
    text = repr(value)
    return value if len(text) <= 80 else text[:77] + "..."
