"""The local chain's tools, installed from the npm registry by `make chain` into an ignored folder of the repo
(chain/node_modules): the anvil binary and Aave v3's compiled contracts. `Anvil` runs a node on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import BasiskitError

ANVIL_PACKAGE = "@foundry-rs/anvil-linux-amd64"
AAVE_PACKAGE = "@aave/core-v3"


class ChainToolsMissing(BasiskitError):
    """anvil or the Aave artifacts are not installed: the message says what and how."""


@dataclass(frozen=True)
class ChainTools:
    """Where the installed tools are: node_modules holding both packages."""

    node_modules: Path

    @classmethod
    def locate(cls, root: Path | None = None) -> ChainTools:
        """$BASISKIT_CHAIN_TOOLS, else chain/node_modules under `root` (the repo; default the working directory)."""
        env = os.environ.get("BASISKIT_CHAIN_TOOLS")
        path = Path(env) if env else (root or Path.cwd()) / "chain" / "node_modules"
        tools = cls(path)
        missing = [p for p in (ANVIL_PACKAGE, AAVE_PACKAGE) if not (path / p / "package.json").is_file()]
        if missing:
            raise ChainToolsMissing(f"{', '.join(missing)} not installed in {path}: run `make chain-tools` (npm ci in "
                                    "chain/) or set BASISKIT_CHAIN_TOOLS to a node_modules holding them")
        return tools

    @property
    def anvil(self) -> Path:
        return self.node_modules / ANVIL_PACKAGE / "bin" / "anvil"

    @property
    def artifacts(self) -> Path:
        return self.node_modules / AAVE_PACKAGE / "artifacts" / "contracts"

    def version(self, package: str) -> str:
        return json.loads((self.node_modules / package / "package.json").read_text())["version"]

    def anvil_version(self) -> str:
        line = subprocess.run([str(self.anvil), "--version"], capture_output=True, text=True, check=True).stdout
        return line.split("\n")[0].removeprefix("anvil Version:").strip() or self.version(ANVIL_PACKAGE)


def port_answers(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Anvil:
    """An anvil node on 127.0.0.1 (its output to stderr), stopped on exit. Chain id 31337, ten funded and
    unlocked accounts (anvil's defaults), a block per transaction."""

    def __init__(self, tools: ChainTools, port: int | None = None, chain_id: int = 31337):
        self.tools, self.port, self.chain_id = tools, port or free_port(), chain_id
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Anvil:
        """Start the node; refused when something already answers on the port (it would be another node's)."""
        if port_answers(self.port):
            raise BasiskitError(f"127.0.0.1:{self.port} is taken: something already answers there, so anvil cannot "
                                "serve it (choose another port)")
        self.proc = subprocess.Popen(
            [str(self.tools.anvil), "--host", "127.0.0.1", "--port", str(self.port), "--chain-id", str(self.chain_id),
             "--silent"], stdout=sys.stderr, stderr=sys.stderr)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BasiskitError(f"anvil exited with code {self.proc.returncode} before serving {self.url}")
            if port_answers(self.port):
                if self.proc.poll() is not None:  # it exited (the port was taken meanwhile): not our node
                    raise BasiskitError(f"anvil exited with code {self.proc.returncode}: 127.0.0.1:{self.port} is "
                                        "served by another process")
                return self
            time.sleep(0.1)
        self.stop()
        raise BasiskitError(f"anvil did not answer on {self.url} within 30 s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Anvil:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
