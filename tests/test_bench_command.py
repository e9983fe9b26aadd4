"""``python -m apps.bench``: one command in front of every benchmark."""
from __future__ import annotations

import importlib

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
    assert "unknown benchmark 'nope'; expected one of live, streams" in capsys.readouterr().err


def test_options_go_to_the_benchmark(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["streams", "--help"])
    assert stop.value.code == 0
    assert "--streams" in capsys.readouterr().out
