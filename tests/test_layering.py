"""The import contracts of pyproject.toml ([tool.importlinter]) hold, and they bite."""
from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINT = str(Path(sys.executable).with_name("lint-imports"))


def _lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([LINT, "--config", str(root / "pyproject.toml")], cwd=root, capture_output=True, text=True,
                          timeout=300, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)})


def test_import_contracts_are_kept():
    done = _lint(REPO)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_the_forbidden_family_list_is_the_family_list():
    from models.families import BUILTIN_FAMILIES

    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    forbidden = next(c for c in contracts if c["name"].startswith("realtime and engines reach model families"))
    modules = {f"models.{family.name}" for family in BUILTIN_FAMILIES}
    assert set(forbidden["forbidden_modules"]) == modules
    for module in modules:  # each family is a package named after its metadata's family field
        assert (REPO / module.replace(".", "/") / "__init__.py").is_file()


def test_an_upward_import_and_a_cycle_break_the_contracts(tmp_path):
    """Copies of the tree with an import a contract forbids: lint-imports must fail on each."""
    ignore = shutil.ignore_patterns("*.onnx", "__pycache__", "*.pt")
    cases = {
        "models/core/registry.py": ("import realtime.rings\n", "apps -> realtime -> engines -> models"),
        "models/world/sounds.py": ("import models.datasets.world\n", "no import cycles"),
        "realtime/rings.py": ("import models.l3.network\n", "realtime and engines reach model families"),
    }
    for i, (path, (line, contract)) in enumerate(cases.items()):
        root = tmp_path / str(i)
        for package in ("apps", "realtime", "engines", "models"):
            shutil.copytree(REPO / package, root / package, ignore=ignore)
        shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
        target = root / path
        target.write_text(target.read_text() + "\n" + line)
        done = _lint(root)
        assert done.returncode != 0, f"{path}: {line.strip()} went unnoticed"
        broken = [ln for ln in done.stdout.splitlines() if ln.endswith("BROKEN")]
        assert any(ln.startswith(contract) for ln in broken), (path, broken)
