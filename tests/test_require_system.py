"""conftest.require_system, run for real: a generated test file in a pytest subprocess, with a
system package missing (hidden from the probe, or named in AVLIVE_TEST_PRETEND_MISSING), skips
naming the apt-get line, and under CI=true fails with it."""
from __future__ import annotations

import os
import subprocess
import xml.etree.ElementTree as ET

import pytest

from conftest import PRETEND_MISSING_VARIABLE, REPO, python_cmd, python_without_portaudio, subprocess_env

GENERATED = """
from conftest import PORTAUDIO, PULSEAUDIO, QT_OFFSCREEN, SystemNeed, require_system


def test_portaudio():
    require_system(PORTAUDIO)


def test_pulseaudio_and_portaudio():
    require_system(PULSEAUDIO, PORTAUDIO)


def test_qt():
    require_system(QT_OFFSCREEN)


def test_met():
    require_system(SystemNeed(("coreutils",), lambda: None))
"""


def run_generated(tmp_path, test: str, *, ci: bool, pretend: str = "", hide_portaudio: bool = False,
                  path: str | None = None) -> tuple[str, str]:
    """Run one generated test in a pytest subprocess; (outcome, message) from its JUnit XML."""
    (tmp_path / "test_generated.py").write_text(GENERATED)
    env = subprocess_env()
    env["PYTHONPATH"] = str(REPO / "tests") + os.pathsep + env["PYTHONPATH"]
    env.pop("CI", None)
    env.pop(PRETEND_MISSING_VARIABLE, None)
    if ci:
        env["CI"] = "true"
    if pretend:
        env[PRETEND_MISSING_VARIABLE] = pretend
    if path is not None:
        env["PATH"] = path
    args = ("-q", "-p", "no:cacheprovider", f"--junitxml={tmp_path / 'out.xml'}", f"test_generated.py::{test}")
    cmd = python_without_portaudio("pytest", *args) if hide_portaudio else python_cmd("-m", "pytest", *args)
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    case = ET.parse(tmp_path / "out.xml").getroot().find(".//testcase")
    assert case is not None, done.stdout + done.stderr
    for outcome in ("skipped", "failure", "error"):
        node = case.find(outcome)
        if node is not None:
            assert done.returncode == (0 if outcome == "skipped" else 1)
            return outcome, node.get("message", "")
    assert done.returncode == 0, done.stdout + done.stderr
    return "passed", ""


@pytest.mark.parametrize("ci, outcome", [(False, "skipped"), (True, "failure")])
def test_pretended_portaudio_skips_or_fails_under_ci(tmp_path, ci, outcome):
    got, message = run_generated(tmp_path, "test_portaudio", ci=ci, pretend="libportaudio2")
    assert got == outcome, message
    assert "sudo apt-get install libportaudio2" in message
    assert f"{PRETEND_MISSING_VARIABLE} names libportaudio2" in message
    assert ("CI=true and a system package is missing" in message) == ci


def test_one_line_names_every_missing_package(tmp_path):
    got, message = run_generated(tmp_path, "test_pulseaudio_and_portaudio", ci=False,
                                 pretend="pulseaudio,libportaudio2")
    assert got == "skipped"
    assert "install with: sudo apt-get install pulseaudio pulseaudio-utils libportaudio2 " in message
    got, message = run_generated(tmp_path, "test_qt", ci=True, pretend="libegl1")
    assert got == "failure"
    assert "sudo apt-get install libegl1 libgl1 libxkbcommon0 libfontconfig1 libdbus-1-3 libglib2.0-0" in message


@pytest.mark.parametrize("ci, outcome", [(False, "skipped"), (True, "failure")])
def test_portaudio_hidden_from_sounddevice(tmp_path, ci, outcome):
    """No pretending: the probe itself finds PortAudio missing when sounddevice cannot load it."""
    got, message = run_generated(tmp_path, "test_portaudio", ci=ci, hide_portaudio=True)
    assert got == outcome, message
    assert "sounddevice cannot load PortAudio" in message and "sudo apt-get install libportaudio2" in message


@pytest.mark.parametrize("ci, outcome", [(False, "skipped"), (True, "failure")])
def test_pulseaudio_off_the_path(tmp_path, ci, outcome):
    """No pretending: pulseaudio, pactl and paplay are looked up on PATH, here an empty folder."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    got, message = run_generated(tmp_path, "test_pulseaudio_and_portaudio", ci=ci, path=str(empty))
    assert got == outcome, message
    assert "pulseaudio, pactl, paplay not on PATH" in message
    assert "sudo apt-get install pulseaudio pulseaudio-utils" in message


def test_a_met_need_runs_under_ci(tmp_path):
    assert run_generated(tmp_path, "test_met", ci=True, pretend="libportaudio2") == ("passed", "")
