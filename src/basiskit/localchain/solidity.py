"""The project's own contracts (localchain/contracts/*.sol) compiled by solc from the npm registry (solc-js, pinned
in chain/package.json, run by node), cached by the sources' hash beside the tools. Artifacts in the shape of
Aave's: contractName, abi, bytecode, linkReferences."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

from ..errors import BasiskitError
from .tools import ChainTools, ChainToolsMissing

SOURCES = Path(__file__).parent / "contracts"
SOLC_PACKAGE = "solc"
# solc-js's standard JSON interface (solc docs, "Using the Compiler"): the sources in, every contract's ABI and
# creation bytecode out.
COMPILE = "const solc = require('solc'); process.stdout.write(solc.compile(require('fs').readFileSync(0, 'utf8')));"


def compile_contracts(tools: ChainTools) -> dict[str, dict]:
    """Every contract of SOURCES by name; compiled once per version of the sources."""
    sources = {p.name: p.read_text() for p in sorted(SOURCES.glob("*.sol"))}
    solc = tools.node_modules / SOLC_PACKAGE / "package.json"
    if not solc.is_file():
        raise ChainToolsMissing(f"{SOLC_PACKAGE} is not installed in {tools.node_modules}: run `make chain-tools`")
    version = tools.version(SOLC_PACKAGE)
    key = hashlib.sha256(json.dumps([version, sources], sort_keys=True).encode()).hexdigest()[:16]
    cache = tools.node_modules / ".basiskit-contracts" / f"{key}.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        raise ChainToolsMissing("node is not installed (it runs solc-js): install nodejs (make chain-tools does)")
    request = {"language": "Solidity", "sources": {name: {"content": text} for name, text in sources.items()},
               "settings": {"optimizer": {"enabled": True, "runs": 200},
                            "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}}}}
    done = subprocess.run([node, "-e", COMPILE], input=json.dumps(request), capture_output=True, text=True,
                          cwd=tools.node_modules.parent, timeout=300)
    if done.returncode != 0:
        raise BasiskitError(f"solc-js failed: {done.stderr.strip()[:800]}")
    result = json.loads(done.stdout)
    errors = [e["formattedMessage"] for e in result.get("errors", []) if e["severity"] == "error"]
    if errors:
        raise BasiskitError("the project's contracts do not compile:\n" + "\n".join(errors))
    out = {name: {"contractName": name, "abi": c["abi"], "bytecode": "0x" + c["evm"]["bytecode"]["object"],
                  "linkReferences": {}}
           for file in result["contracts"].values() for name, c in file.items()}
    cache.parent.mkdir(exist_ok=True)
    cache.write_text(json.dumps(out))
    return out
