"""The layers of ARCHITECTURE.md §2 hold (import-linter's contract in pyproject.toml, run by `make test`), and the
contract is not empty words: the same tree with one upward import added (data importing the engine) breaks it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def _config(tmp: Path, root: str) -> Path:
    """The repo's import-linter settings, for the package `root` (a copy of basiskit under another name)."""
    settings = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    lines = ["[importlinter]", f"root_package = {root}",
             f"exclude_type_checking_imports = {settings['exclude_type_checking_imports']}"]
    for i, c in enumerate(settings["contracts"]):
        lines += [f"[importlinter:contract:{i}]", f"name = {c['name']}", f"type = {c['type']}",
                  f"containers = {root}", "layers ="] + [f"    {layer}" for layer in c["layers"]]
    path = tmp / ".importlinter"
    path.write_text("\n".join(lines) + "\n")
    return path


def _lint(tmp: Path, root: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), "--config", str(_config(tmp, root)), "--no-cache"], cwd=tmp, capture_output=True,
                          text=True, timeout=300, env={"PYTHONPATH": str(tmp), "PATH": "/usr/bin:/bin"})


def test_the_layers_hold_and_an_upward_import_breaks_them(tmp_path):
    copy = tmp_path / "basiskit_layers"
    shutil.copytree(REPO / "src" / "basiskit", copy, ignore=shutil.ignore_patterns("__pycache__", "sample"))
    kept = _lint(tmp_path, "basiskit_layers")
    assert kept.returncode == 0 and "1 kept, 0 broken" in kept.stdout, kept.stdout + kept.stderr
    market = copy / "data" / "market.py"
    market.write_text(market.read_text() + "\nfrom ..engine import run as _upward  # noqa: E402, F401\n")
    broken = _lint(tmp_path, "basiskit_layers")
    assert broken.returncode != 0 and "BROKEN" in broken.stdout
    assert "basiskit_layers.data.market -> basiskit_layers.engine.run" in broken.stdout
