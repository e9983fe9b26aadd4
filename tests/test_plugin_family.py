"""A family from outside the repository: loaded through AVLIVE_FAMILIES, it trains, exports and
runs live with both CPU backends, every step a subprocess a user would run, and nothing in
realtime/ or engines/ knows about it."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "tests" / "data" / "plugin_family" / "toy_family.py"


def _env(plugin_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(plugin_dir), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["AVLIVE_FAMILIES"] = "toy_family"
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        env.pop(name, None)
    return env


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done


def test_plugin_family_trains_exports_and_runs_live(tmp_path):
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    shutil.copy(PLUGIN, plugin_dir / "toy_family.py")
    env = _env(plugin_dir)
    listing = _run(["-m", "apps.avlive", "--list-models"], env, tmp_path).stdout
    assert "toy" in listing and "toy-band-energy" in listing

    run = tmp_path / "runs" / "toy"
    _run(["-m", "models.train", "--recipe", "toy", "--out", str(run), "max_steps=1"], env, tmp_path)
    assert (run / "checkpoints" / "last.pt").is_file() and json.loads((run / "metadata.json").read_text())["family"] == "toy"
    _run(["-m", "models.export", str(run)], env, tmp_path)
    assert (run / "model.onnx").is_file() and (run / "model.onnx.json").is_file()

    finals = {}
    for backend in ("onnxruntime", "torch"):
        out = tmp_path / f"{backend}.jsonl"
        _run(["-m", "apps.avlive", "--source", "synthetic:200000", "--duration", "3", "--no-realtime", "--headless",
              "--models", str(run), "--localizer", "none", "--backend", backend, "--threads", "1",
              "--jsonl", str(out)], env, tmp_path)
        records = [json.loads(line) for line in out.read_text().splitlines()]
        assert records and records[-1]["final"] and records[-1]["counters"]["hops"] >= 4
        finals[backend] = records
    from models.world import CLASS_NAMES

    for backend, records in finals.items():  # every hop scored by the toy labeler, in the world's classes
        tops = [t for r in records for t in r["top"]]
        assert tops and {t["model"] for t in tops} == {"toy"} and {t["label"] for t in tops} <= set(CLASS_NAMES), backend


def test_unknown_plugin_module_is_one_clear_line(tmp_path):
    env = _env(tmp_path)
    env["AVLIVE_FAMILIES"] = "no_such_family_module"
    done = subprocess.run([sys.executable, "-m", "models.train", "--help"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "AVLIVE_FAMILIES names 'no_such_family_module', which does not import" in done.stderr
