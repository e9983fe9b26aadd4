"""Shared test setup: a private world cache per test session, tiny training configs, and
``require_system`` for tests that need a system package (apt-get) rather than a pip one."""
from __future__ import annotations

import functools
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

REPO = Path(__file__).resolve().parents[1]

#: Fixtures every test module may name: ``pulse_mic`` (a private PulseAudio microphone).
pytest_plugins = ("pulse_fixture",)


@pytest.fixture(scope="session", autouse=True)
def _private_world_cache(tmp_path_factory):
    """Rendered world windows go to a session folder, never to the user's ~/.cache."""
    if "AVLIVE_CACHE" not in os.environ:
        os.environ["AVLIVE_CACHE"] = str(tmp_path_factory.mktemp("avlive-cache"))
    yield


def last_whole_json_line(path: Path) -> dict | None:
    """The newest complete JSON line of a file another process is still writing (None before the
    first): a reader can catch a line half-written, so an unterminated last line is left out."""
    import json

    text = path.read_text() if path.exists() else ""
    whole = text[:text.rfind("\n") + 1].splitlines()
    return json.loads(whole[-1]) if whole else None


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


# ----------------------------------------------------------------------------------------------
# system packages


@dataclass(frozen=True)
class SystemNeed:
    """Debian/Ubuntu packages some tests need (pip cannot install them), and how to tell.

    Attributes:
        packages: What ``apt-get install`` takes to provide them.
        probe: Returns None when they work here, else what is missing (one short line).
    """

    packages: tuple[str, ...]
    probe: Callable[[], str | None]


@functools.cache
def _portaudio_missing() -> str | None:
    from realtime.devices import PortAudioNotFound, import_sounddevice

    try:
        import_sounddevice()  # what MicSource and --list-devices do: sounddevice loads libportaudio
    except PortAudioNotFound as e:
        return f"sounddevice cannot load PortAudio ({e.__cause__})"
    return None


@functools.cache
def _pulseaudio_missing() -> str | None:
    missing = [tool for tool in ("pulseaudio", "pactl", "paplay") if shutil.which(tool) is None]
    return f"{', '.join(missing)} not on PATH" if missing else None


@functools.cache
def _qt_libraries_missing() -> str | None:
    """PySide6 (a pip dependency, so never skipped for) loads Qt, which links EGL, GL, xkbcommon,
    fontconfig, dbus and glib from the system; the offscreen platform plugin needs nothing more."""
    try:
        import PySide6.QtGui  # noqa: F401
        import PySide6.QtWidgets  # noqa: F401
    except ImportError as e:
        if isinstance(e, ModuleNotFoundError):
            raise  # PySide6 itself is missing: a broken install, not a system package
        return f"Qt cannot load a system library ({e})"
    return None


@functools.cache
def _ffmpeg_missing() -> str | None:
    return None if shutil.which("ffmpeg") else "ffmpeg not on PATH"


PORTAUDIO = SystemNeed(("libportaudio2",), _portaudio_missing)
FFMPEG = SystemNeed(("ffmpeg",), _ffmpeg_missing)
PULSEAUDIO = SystemNeed(("pulseaudio", "pulseaudio-utils"), _pulseaudio_missing)
# The same list .ci/run installs for Qt.
QT_OFFSCREEN = SystemNeed(("libegl1", "libgl1", "libxkbcommon0", "libfontconfig1", "libdbus-1-3", "libglib2.0-0"),
                          _qt_libraries_missing)

# For tests of require_system only (tests/test_require_system.py): comma-separated package names
# to treat as missing, so both outcomes can be shown on a machine that has every package.
PRETEND_MISSING_VARIABLE = "AVLIVE_TEST_PRETEND_MISSING"


def running_under_ci() -> bool:
    """CI=true (what .ci/run exports, as do GitHub Actions and GitLab CI)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def require_system(*needs: SystemNeed) -> None:
    """Skip the calling test (or fixture) unless every need is met, naming the apt-get line.

    Under CI=true a missing package fails the test instead: .ci/run installs them all, so there
    a missing one means the CI image is broken, and a skip would hide that the test never ran.

    Raises:
        pytest.skip.Exception: a package is missing and CI is not set.
        pytest.fail.Exception: a package is missing under CI=true.
    """
    __tracebackhide__ = True  # the skip or failure is reported at the calling test's line
    pretend = {p.strip() for p in os.environ.get(PRETEND_MISSING_VARIABLE, "").split(",") if p.strip()}
    packages, problems = [], []
    for need in needs:
        pretended = sorted(pretend.intersection(need.packages))
        problem = f"{PRETEND_MISSING_VARIABLE} names {', '.join(pretended)}" if pretended else need.probe()
        if problem is not None:
            packages += [p for p in need.packages if p not in packages]
            problems.append(problem)
    if not packages:
        return
    line = "sudo apt-get install " + " ".join(packages)
    what = f"{'; '.join(problems)}; install with: {line}"
    if running_under_ci():
        pytest.fail(f"CI=true and a system package is missing: {what} (.ci/run installs it)", pytrace=False)
    pytest.skip(f"needs system package {' '.join(packages)}: {what} (under CI=true this fails)")


# Run a module as ``python -m MODULE ARGS`` would, with libportaudio hidden from sounddevice as on
# a machine without libportaudio2 (sounddevice finds it through ctypes.util.find_library only).
_WITHOUT_PORTAUDIO = (
    "import ctypes.util, runpy, sys\n"
    "_find = ctypes.util.find_library\n"
    "ctypes.util.find_library = lambda name: None if 'portaudio' in name else _find(name)\n"
    "module = sys.argv.pop(1)\n"
    "runpy.run_module(module, run_name='__main__', alter_sys=True)\n"
)


def python_without_portaudio(module: str, *args: str) -> list[str]:
    """The command line for ``python -m module args`` with libportaudio hidden."""
    return [sys.executable, "-c", _WITHOUT_PORTAUDIO, module, *args]


@pytest.fixture
def one_torch_thread():
    """Single-threaded torch for a test (files opt in with ``pytestmark``): deterministic
    training, and on a shared 2-core machine faster than two threads waiting on each other."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
