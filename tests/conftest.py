"""Shared test setup: a private world cache per test session, tiny training configs."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _private_world_cache(tmp_path_factory):
    """Rendered world windows go to a session folder, never to the user's ~/.cache."""
    if "AVLIVE_CACHE" not in os.environ:
        os.environ["AVLIVE_CACHE"] = str(tmp_path_factory.mktemp("avlive-cache"))
    yield


def python_cmd(*args: str) -> list[str]:
    """The interpreter running the tests, with the repository on the path, for subprocesses."""
    return [sys.executable, *args]


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


TINY_RUN = ["world=tiny", "train_windows=96", "val_windows=32", "width=4", "batch_size=8", "threads=1", "warmup_steps=0", "seed=3"]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, _private_world_cache):
    """A baseline run trained once per session (2 epochs on the tiny world), in-process."""
    from models.baseline.recipe import BaselineRecipe
    from models.core.train_config import apply_overrides
    from models.train.loop import train

    out = tmp_path_factory.mktemp("tiny-run") / "run"
    config = apply_overrides(BaselineRecipe.config_class(), [*TINY_RUN, "epochs=2", "num_workers=0"])
    train(BaselineRecipe(config), out, argv=["python", "-m", "models.train", "--recipe", "baseline", *TINY_RUN])
    return out
