"""Tests for models.core.atomic: crash-safe writes."""
from __future__ import annotations

import hashlib
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from models.core.atomic import (
    TEMP_MARKER,
    atomic_path,
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_text,
    sha256_file,
)

REPO_ROOT = Path(__file__).resolve().parent.parent


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if TEMP_MARKER in p.name)


def test_write_bytes_then_read(tmp_path):
    target = tmp_path / "blob.bin"
    atomic_write_bytes(target, b"\x00\x01hello")
    assert target.read_bytes() == b"\x00\x01hello"
    atomic_write_bytes(target, bytearray(b"second"))
    assert target.read_bytes() == b"second"
    assert _leftovers(tmp_path) == []


def test_write_text_then_read_keeps_newlines_and_encoding(tmp_path):
    target = tmp_path / "meta.json"
    atomic_write_text(target, "line1\r\nzwölf\n")
    assert target.read_bytes() == "line1\r\nzwölf\n".encode("utf-8")
    atomic_write_text(target, "é", encoding="latin-1")
    assert target.read_bytes() == b"\xe9"


def test_torch_save_then_load(tmp_path):
    target = tmp_path / "model.pt"
    state = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.zeros(3)}
    atomic_torch_save(state, target)
    loaded = torch.load(target, weights_only=True)
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    assert _leftovers(tmp_path) == []


def test_atomic_path_yields_sibling_temp_with_same_suffix(tmp_path):
    target = tmp_path / "model.onnx"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent
        assert tmp.name.startswith(".") and tmp.name.endswith(".onnx")
        assert tmp.exists() and not target.exists()
        tmp.write_bytes(b"onnx")
    assert target.read_bytes() == b"onnx"
    assert not tmp.exists()


def test_new_file_gets_ordinary_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        target = tmp_path / "x.bin"
        atomic_write_bytes(target, b"x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_exception_inside_context_keeps_old_file_and_removes_temp(tmp_path):
    target = tmp_path / "model.pt"
    atomic_write_bytes(target, b"old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"new but half-written")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


def test_exception_in_torch_save_keeps_old_checkpoint(tmp_path):
    target = tmp_path / "model.pt"
    atomic_torch_save({"w": torch.ones(2)}, target)
    with pytest.raises(Exception):
        atomic_torch_save({"f": lambda: None}, target)  # lambdas cannot be pickled
    assert torch.equal(torch.load(target, weights_only=True)["w"], torch.ones(2))
    assert _leftovers(tmp_path) == []


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        atomic_write_bytes(tmp_path / "nope" / "x.bin", b"x")


def test_writer_deleting_temp_is_an_error_and_target_untouched(tmp_path):
    target = tmp_path / "x.bin"
    atomic_write_bytes(target, b"old")
    with pytest.raises(FileNotFoundError, match="vanished"):
        with atomic_path(target) as tmp:
            tmp.unlink()
    assert target.read_bytes() == b"old"


def test_sha256_file(tmp_path):
    data = os.urandom(3 * (1 << 20) + 123)  # spans several read chunks
    target = tmp_path / "blob"
    target.write_bytes(data)
    assert sha256_file(target) == hashlib.sha256(data).hexdigest()
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert sha256_file(empty) == hashlib.sha256(b"").hexdigest()


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
def test_sigkill_between_write_and_rename_leaves_previous_checkpoint(tmp_path):
    target = tmp_path / "model.pt"
    atomic_torch_save({"w": torch.full((4,), 1.0)}, target)
    # The child runs the real atomic_torch_save, but dies by SIGKILL at the moment it would
    # rename the fully written temp file onto the target.
    child = textwrap.dedent(
        """
        import os, signal, sys
        import torch
        import models.core.atomic as atomic

        def die_instead_of_replace(src, dst):
            assert os.path.getsize(src) > 0   # the new checkpoint was completely written
            os.kill(os.getpid(), signal.SIGKILL)

        atomic.os.replace = die_instead_of_replace
        atomic.atomic_torch_save({"w": torch.full((4,), 2.0), "extra": torch.zeros(1000)}, sys.argv[1])
        print("not reached")
        """
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    result = subprocess.run([sys.executable, "-c", child, str(target)], env=env, cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert "not reached" not in result.stdout
    loaded = torch.load(target, weights_only=True)
    assert set(loaded) == {"w"}
    assert torch.equal(loaded["w"], torch.full((4,), 1.0))
    # The killed writer's temp file is left beside the target, hidden, never under its name.
    leftovers = _leftovers(tmp_path)
    assert len(leftovers) == 1 and leftovers[0].startswith(".model.pt.")
