"""Audio and video sources behind one small interface (see :mod:`realtime.sources.base`).

=====================  =====================================================================
source                 what it reads
=====================  =====================================================================
``SyntheticSource``    the synthetic world (``synthetic:SEED``), audio and frames, exact
``FileSource``         a media file's audio and video through PyAV
``MicSource``          a microphone through sounddevice/PortAudio (``--mic``)
``CameraSource``       a camera, video file or stream through OpenCV (``--camera``)
=====================  =====================================================================

:func:`make_source` builds one from a URI (jetson-utils ``videoSource::Create`` style).
"""
from __future__ import annotations

import os

from .base import Chunk, EndOfStream, Source, SourceError, SourceLost, SourceTimeout
from .camera import CameraSource
from .file import FileSource
from .mic import MicSource
from .synthetic import SyntheticSource

__all__ = [
    "CameraSource",
    "Chunk",
    "EndOfStream",
    "FileSource",
    "MicSource",
    "SOURCE_USAGE",
    "Source",
    "SourceError",
    "SourceLost",
    "SourceTimeout",
    "SyntheticSource",
    "make_source",
]

SOURCE_USAGE = """\
sources (URI forms):
  synthetic:SEED[:PRESET]   the synthetic world, e.g. synthetic:200000 or synthetic:7:tiny
  PATH                      a media file (audio and video, replayed at real-time pace)
  mic:default|INDEX|NAME    a microphone (sounddevice device index or name substring)
  camera:INDEX|PATH|URL     a camera (/dev/videoN index), a video file or a stream URL"""


def make_source(uri: str, *, sample_rate: int = 16000, size: tuple[int, int] | None = None, timeout: float = 2.0) -> Source:
    """A source from a URI (the forms in :data:`SOURCE_USAGE`).

    Args:
        uri: What to open.
        sample_rate: Audio rate the pipeline wants, in Hz.
        size: ``(width, height)`` frames are scaled to (files and cameras), None to keep theirs.
        timeout: Camera open/read timeout in seconds.

    Raises:
        ValueError: An unrecognised URI (the message lists the forms).
        FileNotFoundError: A path that does not exist.
    """
    text = str(uri).strip()
    scheme, sep, rest = text.partition(":")
    if sep and scheme == "synthetic":
        seed, _, preset = rest.partition(":")
        if not seed.isdigit():
            raise ValueError(f"synthetic source: expected synthetic:SEED[:PRESET] with an integer seed, found {text!r}")
        return SyntheticSource(int(seed), preset or "bench", sample_rate)
    if sep and scheme == "mic":
        return MicSource(rest or "default", sample_rate)
    if sep and scheme == "camera":
        return CameraSource(rest, size=size, timeout=timeout)
    if os.path.exists(text):
        return FileSource(text, sample_rate, size=size)
    if "://" in text:
        return CameraSource(text, size=size, timeout=timeout)
    raise ValueError(f"unrecognised source {text!r} (no such file either)\n{SOURCE_USAGE}")
