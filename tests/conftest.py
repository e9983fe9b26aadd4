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
