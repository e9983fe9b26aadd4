"""A plain folder of unlabeled media (self-supervised audio-visual pre-training, demos).

:func:`read_video_folder` lists video files (``.mp4 .mkv .webm .avi .mov .mpg .mpeg``) and, on request,
audio files (``.wav .flac .ogg .mp3``) under a root, recursively, extensions matched without
regard to case, hidden files and folders (names starting with ``.``) skipped, sorted by
their path relative to the root. :func:`write_video_folder` lays out such a tree from
in-memory bytes (e.g. clips the project rendered) so the reader can be exercised end to end.

:func:`split_video_folder` splits the files into train / validation / test, by the first rule
that applies:

1. **List files**: ``ROOT/train.txt``, ``ROOT/val.txt`` and ``ROOT/test.txt`` (any of them; one
   video a line, its path relative to ``ROOT``; text after a tab, blank lines and ``#`` lines
   ignored). Only listed videos are used; a listed video that is missing is an error.
2. **Split folders**: videos under a top-level ``train/`` (``training/``), ``val/``
   (``valid/``, ``validation/``) or ``test/`` (``eval/``) folder belong to that split; other
   videos are training videos.
3. **A flat folder** (no list files, no split folders): every video is a training video.

Then, wherever no validation videos were named (no ``val.txt``, no ``val/`` folder), about
``val_fraction`` of the training videos validate, chosen by a hash of their relative path (the
same videos every run, whatever else the folder holds). Test videos are never carved from
training videos.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable, Mapping

from models.datasets.formats._common import FormatError

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".mpg", ".mpeg")
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")


@dataclass(frozen=True)
class MediaFile:
    """One media file of a folder.

    Attributes:
        path: ``root / relpath`` (as the root was given, not resolved).
        relpath: Path relative to the root, ``/``-separated; the sort key and a stable id.
        kind: ``"video"`` or ``"audio"``.
    """

    path: Path
    relpath: str
    kind: str


def _kind(name: str, extensions: Mapping[str, str]) -> str | None:
    return extensions.get(os.path.splitext(name)[1].lower())


def _extension_map(include_audio: bool, extensions: Iterable[str] | None) -> dict[str, str]:
    if extensions is not None:
        out = {}
        for ext in extensions:
            ext = ext.lower() if ext.startswith(".") else "." + ext.lower()
            out[ext] = "audio" if ext in AUDIO_EXTENSIONS else "video"
        return out
    out = dict.fromkeys(VIDEO_EXTENSIONS, "video")
    if include_audio:
        out.update(dict.fromkeys(AUDIO_EXTENSIONS, "audio"))
    return out


def read_video_folder(root: str | os.PathLike, include_audio: bool = False,
                      extensions: Iterable[str] | None = None) -> list[MediaFile]:
    """List the media files under ``root``, recursively, sorted by relative path.

    Args:
        root: Folder to scan (symlinked files are listed; symlinked folders are not entered).
        include_audio: Also list ``.wav .flac .ogg .mp3`` files.
        extensions: Explicit extensions to list instead (e.g. ``[".mp4"]``); overrides
            ``include_audio``.

    Returns:
        The files found (possibly none).

    Raises:
        FileNotFoundError: If ``root`` does not exist.
        FormatError: (a ``ValueError``) if ``root`` is a file, not a folder.
    """
    root_path = Path(root)
    if not root_path.exists():
        raise FileNotFoundError(f"{root_path}: no such media folder")
    if not root_path.is_dir():
        raise FormatError(f"{root_path}: not a media folder: expected a directory of "
                          f"{'/'.join(VIDEO_EXTENSIONS + AUDIO_EXTENSIONS)} files; found a file")
    ext_map = _extension_map(include_audio, extensions)
    out = []
    for dirpath, dirnames, filenames in os.walk(root_path):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel_dir = PurePosixPath(Path(dirpath).relative_to(root_path).as_posix())
        for name in filenames:
            kind = _kind(name, ext_map)
            if name.startswith(".") or kind is None:
                continue
            rel = (rel_dir / name).as_posix()
            out.append(MediaFile(root_path / rel, rel, kind))
    out.sort(key=lambda m: m.relpath)
    return out


def write_video_folder(root: str | os.PathLike, files: Mapping[str, bytes]) -> list[MediaFile]:
    """Create media files under ``root`` from bytes (folders made as needed).

    Args:
        root: Folder to write into (created if missing).
        files: ``relative path -> file content``; paths are ``/``-separated, relative, and
            must stay inside ``root`` and end in a known video or audio extension.

    Returns:
        The records of the files written, sorted as :func:`read_video_folder` sorts them.

    Raises:
        ValueError: On an absolute path, one leaving ``root``, a hidden component or an
            unknown extension.
    """
    root_path = Path(root)
    ext_map = _extension_map(True, None)
    out = []
    for rel, data in files.items():
        parts = PurePosixPath(rel).parts
        if PurePosixPath(rel).is_absolute() or not parts or any(p in ("..", ".") or p.startswith(".") for p in parts):
            raise ValueError(f"media path {rel!r} must be relative, inside the root and not hidden")
        kind = _kind(parts[-1], ext_map)
        if kind is None:
            raise ValueError(f"media path {rel!r} has no known extension {sorted(ext_map)}")
        target = root_path.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(bytes(data))
        rel = PurePosixPath(*parts).as_posix()
        out.append(MediaFile(root_path / rel, rel, kind))
    out.sort(key=lambda m: m.relpath)
    return out


#: Top-level folder names (lower case) that name a split.
SPLIT_FOLDERS: dict[str, str] = {"train": "train", "training": "train", "val": "val", "valid": "val",
                                 "validation": "val", "test": "test", "eval": "test"}
#: List files (in the folder's root) that name a split's videos.
SPLIT_LISTS: dict[str, str] = {"train": "train.txt", "val": "val.txt", "test": "test.txt"}


def hashed_fraction(relpath: str) -> float:
    """A fixed number in [0, 1) for a relative path (the validation carve's draw)."""
    return int(hashlib.sha256(relpath.encode()).hexdigest()[:8], 16) / 16**8


def _read_list(path: Path) -> list[str]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("\t", 1)[0].strip()
        if line and not line.startswith("#"):
            out.append(PurePosixPath(line.replace("\\", "/")).as_posix())
    return out


def split_video_folder(root: str | os.PathLike, files: Iterable[MediaFile] | None = None,
                       val_fraction: float = 0.1) -> dict[str, list[MediaFile]]:
    """Split a media folder into ``{"train": [...], "val": [...], "test": [...]}`` (module docstring rules).

    Args:
        root: The folder.
        files: Its files (default: :func:`read_video_folder` of ``root``, videos only).
        val_fraction: Share of the training videos that validate where no validation videos are named.

    Returns:
        The three lists (any may be empty), each sorted by relative path.

    Raises:
        ValueError: ``val_fraction`` outside [0, 1), or a list file naming a video that is not in the folder.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction: expected in [0, 1), found {val_fraction}")
    root_path = Path(root)
    files = [f for f in read_video_folder(root_path) if f.kind == "video"] if files is None else list(files)
    out: dict[str, list[MediaFile]] = {"train": [], "val": [], "test": []}
    lists = {split: root_path / name for split, name in SPLIT_LISTS.items() if (root_path / name).is_file()}
    if lists:
        by_rel = {f.relpath: f for f in files}
        for split, path in lists.items():
            for rel in _read_list(path):
                if rel not in by_rel:
                    raise ValueError(f"{path}: lists {rel!r}; expected a media file under {root_path}, found none")
                out[split].append(by_rel[rel])
    else:
        for f in files:
            top = f.relpath.split("/", 1)[0].lower() if "/" in f.relpath else ""
            out[SPLIT_FOLDERS.get(top, "train")].append(f)
    if not out["val"] and val_fraction > 0:
        carved = [f for f in out["train"] if hashed_fraction(f.relpath) < val_fraction]
        out["train"] = [f for f in out["train"] if hashed_fraction(f.relpath) >= val_fraction]
        out["val"] = carved
    return {k: sorted(v, key=lambda m: m.relpath) for k, v in out.items()}
