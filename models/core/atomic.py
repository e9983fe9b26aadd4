"""Crash-safe file writes for every artefact avlive produces.

Checkpoints, exported ONNX files, TensorRT engines and their JSON sidecars are all written
through this module, so a reader never sees a half-written file: the bytes go to a temporary
file in the *same directory* as the target, the temporary file is fsynced, renamed onto the
target with :func:`os.replace` (atomic on POSIX and on Windows), and then the directory is
fsynced so the rename itself survives a power cut. If the writer dies at any point before the
rename, the previous version of the target is untouched; at worst a hidden ``.NAME.*.tmp*``
file is left beside it.

Example::

    from models.core.atomic import atomic_path, atomic_torch_save, sha256_file

    atomic_torch_save(model.state_dict(), "runs/x/model.pt")
    with atomic_path("runs/x/model.onnx") as tmp:
        torch.onnx.export(model, args, tmp)     # any writer that takes a path
    digest = sha256_file("runs/x/model.pt")
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
from pathlib import Path
from typing import Any, Iterator

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_torch_save",
    "sha256_file",
    "TEMP_MARKER",
]

#: Every temporary file this module creates has this string in its name (and starts with ".").
TEMP_MARKER = ".tmp"

_CHUNK = 1 << 20


def _new_temp(target: Path) -> Path:
    """Create (exclusively) an empty temporary file beside ``target`` and return its path.

    The name keeps the target's suffix (``.model.onnx.1a2b3c4d5e6f.tmp.onnx``) so writers that
    look at or append extensions (``numpy.save``, some exporters) behave as they would on the
    target. The file is created with mode ``0o666`` minus the umask, like an ordinary file.
    """
    for _ in range(100):
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}{TEMP_MARKER}{target.suffix}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"could not create a unique temporary file beside {target}")


def _fsync_file(path: Path) -> None:
    """Flush ``path``'s data to stable storage."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    """Flush a directory entry change (the rename) to stable storage, where the OS allows it."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(directory, flags)
    except OSError:  # e.g. Windows, where directories cannot be opened this way
        return
    try:
        os.fsync(fd)
    except OSError as exc:  # some file systems (and Windows) refuse fsync on a directory
        if exc.errno not in (errno.EINVAL, errno.EBADF, errno.ENOTSUP, errno.EACCES):
            raise
    finally:
        os.close(fd)


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it atomically becomes ``path``.

    The temporary file already exists (empty) in ``path``'s directory when it is yielded;
    writers may overwrite it or write it afresh. When the ``with`` block finishes without an
    exception, the temporary file is fsynced, :func:`os.replace`\\ d onto ``path`` and the
    directory is fsynced. When the block raises, the temporary file is removed, ``path`` is
    left as it was and the exception propagates.

    Args:
        path: The final destination. Its directory must exist.

    Yields:
        The temporary file's path (a :class:`pathlib.Path`).

    Raises:
        FileNotFoundError: If ``path``'s directory does not exist, or if the block removed the
            temporary file instead of writing it.
    """
    target = Path(path)
    directory = target.parent
    if not directory.is_dir():
        raise FileNotFoundError(f"cannot write {target}: directory {directory} does not exist")
    tmp = _new_temp(target)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"the temporary file {tmp} for {target} vanished before it could be renamed "
                                    "(did the writer move or delete it?)")
        _fsync_file(tmp)
        os.replace(tmp, target)
    except BaseException:
        _remove_quietly(tmp)
        raise
    _fsync_dir(directory)


def atomic_write_bytes(path: str | os.PathLike, data: bytes | bytearray | memoryview) -> None:
    """Atomically replace ``path`` with ``data``.

    Args:
        path: Destination file; its directory must exist.
        data: The complete new contents.
    """
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """Atomically replace ``path`` with ``text`` (encoded as given; newlines are not translated).

    Args:
        path: Destination file; its directory must exist.
        text: The complete new contents.
        encoding: Text encoding, UTF-8 by default.
    """
    atomic_write_bytes(path, text.encode(encoding))


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj, path)``, atomically.

    Args:
        obj: Anything ``torch.save`` accepts (typically a state dict).
        path: Destination file; its directory must exist.
    """
    import torch  # imported lazily: this module is also used where torch is not needed

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def sha256_file(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's contents, as 64 lowercase hex digits (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_temp_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is one of :func:`atomic_path`'s temporary files (``.NAME.HEX.tmp.SUFFIX``):
    never a finished artefact, whatever its suffix says."""
    name = Path(path).name
    return name.startswith(".") and TEMP_MARKER + "." in name or name.endswith(TEMP_MARKER)


def remove_stale_temps(target: str | os.PathLike) -> int:
    """Remove the temporary files an interrupted write of ``target`` left beside it (a writer
    killed inside :func:`atomic_path`); returns how many. Call before writing ``target`` anew."""
    target = Path(target)
    removed = 0
    if target.parent.is_dir():
        for p in target.parent.glob(f".{target.name}.*{TEMP_MARKER}*"):
            if is_temp_file(p):
                _remove_quietly(p)
                removed += 1
    return removed
