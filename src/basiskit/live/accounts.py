"""accounts.yaml: the fund's accounts per venue. Exchange API keys are named by environment variable (the
file holds names, never secrets); wallets by address. Every problem is refused at start naming the entry.

    chain_id: 1                      # the chain the RPC must serve (1: Ethereum mainnet)
    wallets:
      - name: treasury
        address: "0x..."
        keystore: treasury.json      # signs its transactions (live run --execute); relative to this file
        password_env: TREASURY_PW    # the keystore's password, from the environment
    exchanges:
      - venue: binance               # binance | bybit | okx
        api_key_env: BINANCE_KEY
        secret_env: BINANCE_SECRET
        password_env: null           # OKX's passphrase
    aave:                            # the Aave v3 market, when not Ethereum mainnet's (a local chain's)
      pool: "0x..."
      oracle: "0x..."
      assets: {weth: "0x...", usdt: "0x...", weeth: "0x...", wsteth: "0x..."}
      lst_contracts: stand-in        # LSTs with deposit()/redeem() at their rate (the local chain's)
      flash_receiver: "0x..."        # basiskit's FlashLever (flash-loan entries and exits)
"""

from __future__ import annotations

import json
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
    keystore: Path | None = Field(None, description="an encrypted keystore file (eth-account's format) that signs "
                                  "this wallet's transactions (`live run --execute`)")
    password_env: str | None = Field(None, description="the environment variable holding the keystore's password")

    @field_validator("password_env")
    @classmethod
    def _password_env(cls, v: str | None) -> str | None:
        if v is not None and not ENV_NAME.match(v):
            raise ValueError("must be an environment variable's name (the file never holds a secret)")
        return v

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
    flash_receiver: str | None = Field(None, description="basiskit's FlashLever contract on this chain: flash-loan "
                                       "bundles go through it (unset: they are left to the operator)")
    lst_contracts: Literal["stand-in"] | None = Field(
        None, description="how its LSTs are minted and redeemed: stand-in (deposit and redeem at the rate, the local "
        "chain's); unset: LST operations are left to the operator")

    @field_validator("pool", "oracle", "flash_receiver")
    @classmethod
    def _contract(cls, v: str | None) -> str | None:
        return v if v is None else _checked_address(v)

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

    def signer(self, wallet: Wallet):
        """The wallet's key, decrypted from its keystore with the password its variable holds (never kept or
        shown elsewhere); a wrong password is refused naming the file."""
        from eth_account import Account

        where = wallet.keystore if wallet.keystore.is_absolute() else self.path.parent / wallet.keystore
        try:
            key = Account.decrypt(json.loads(where.read_text()), os.environ[wallet.password_env])
        except (ValueError, KeyError, json.JSONDecodeError) as exc:
            raise ConfigError([(f"wallets.{wallet.name}.keystore", str(wallet.keystore),
                                f"cannot be decrypted with ${wallet.password_env} ({type(exc).__name__})")]) from None
        account = Account.from_key(key)
        if account.address.lower() != wallet.address.lower():
            raise ConfigError([(f"wallets.{wallet.name}.keystore", str(wallet.keystore),
                                f"holds the key of {account.address}, not of the wallet's address")])
        return account

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
    for i, w in enumerate(parsed.wallets):
        if (w.keystore is None) != (w.password_env is None):
            problems.append((f"wallets.{i}.keystore", str(w.keystore), "a keystore needs its password_env, and "
                             "password_env its keystore"))
        elif w.keystore is not None:
            where = w.keystore if w.keystore.is_absolute() else path.parent / w.keystore
            if not where.is_file():
                problems.append((f"wallets.{i}.keystore", str(w.keystore), "no such file"))
            if not os.environ.get(w.password_env):
                problems.append((f"wallets.{i}.password_env", w.password_env, "this environment variable is not set"))
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
