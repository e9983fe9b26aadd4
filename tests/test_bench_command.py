"""``python -m apps.bench``: one command in front of every benchmark."""
from __future__ import annotations

import importlib
import json

import pytest

from apps.bench import BENCHMARKS, main


def test_every_benchmark_is_a_module_with_main():
    for what, (module, line) in BENCHMARKS.items():
        assert callable(importlib.import_module(module).main), what
        assert line


def test_usage_and_an_unknown_benchmark(capsys):
    assert main([]) == 2
    assert "streams" in capsys.readouterr().out
    assert main(["--help"]) == 0
    assert main(["nope"]) == 2
    assert "unknown benchmark 'nope'; expected one of models, live, streams" in capsys.readouterr().err


def test_options_go_to_the_benchmark(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["streams", "--help"])
    assert stop.value.code == 0
    assert "--streams" in capsys.readouterr().out


def test_the_quick_model_table(tmp_path, capsys):
    assert main(["models", "--quick", "--threads", "1", "--iters", "2", "--cuda", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| demo labeler (slowfast-lite) | onnxruntime int8 | 1 |" in out
    assert "| efficientat-mn04 (random) | torch | 8 |" in out
    assert "skipped: --no-compile" in out and "| tensorrt | 1 |" in out
    import torch

    if not torch.cuda.is_available():
        assert "| efficientat-mn04 (random) | torch cuda | 1 |" in out and "skipped: no CUDA device" in out
    rows = json.loads((tmp_path / "models.json").read_text())["rows"]
    timed = [r for r in rows if r["skipped"] is None]
    assert timed and all(r["p50_ms"] > 0 and r["p99_ms"] >= r["p50_ms"] for r in timed)
    assert (tmp_path / "models.png").stat().st_size > 0 and (tmp_path / "models.md").is_file()
