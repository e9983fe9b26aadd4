"""Microphones and cameras: listing them and resolving ``--mic`` / ``--camera`` specs.

``--mic`` takes ``default``, an input device index or a substring of its name (the sounddevice
convention); ``--camera`` takes a camera index, a ``/dev/video*`` node, a file path or a stream
URL. A spec that matches nothing raises :class:`DeviceNotFound`, whose message lists what is
there, e.g.::

    No input device matching 'xyz'; input devices: [0] pulse (48000 Hz, 32 ch), [1] default (44100 Hz, 32 ch)

PortAudio is loaded lazily (``import sounddevice`` fails without it); a missing library raises
:class:`PortAudioNotFound` naming the Debian package to install.
"""
from __future__ import annotations

import glob
import os
import re
import sys
from dataclasses import dataclass

__all__ = [
    "AudioDevice",
    "CameraDevice",
    "CameraSpec",
    "camera_listing",
    "DeviceList",
    "DeviceNotFound",
    "PortAudioNotFound",
    "import_sounddevice",
    "list_cameras",
    "list_devices",
    "list_input_devices",
    "refresh_audio_devices",
    "resolve_camera",
    "resolve_input_device",
]


class DeviceNotFound(ValueError):
    """No device matches a ``--mic`` / ``--camera`` spec (or several do); the message lists them."""


class PortAudioNotFound(OSError):
    """The PortAudio shared library is missing, so no microphone can be opened."""


def import_sounddevice():
    """``import sounddevice``, turning a missing PortAudio library into a helpful error.

    Raises:
        PortAudioNotFound: libportaudio is not installed.
    """
    try:
        import sounddevice
    except OSError as e:
        raise PortAudioNotFound(
            f"PortAudio library not found ({e}); microphones need it: on Debian/Ubuntu install the "
            "package libportaudio2 (sudo apt-get install libportaudio2), on macOS brew install portaudio"
        ) from e
    return sounddevice


def refresh_audio_devices() -> None:
    """Re-scan audio devices (PortAudio lists them once, when it is initialised).

    Needed after a sound server or a USB microphone appeared while the process was running.
    Must not be called while a stream is open.
    """
    sd = import_sounddevice()
    sd._terminate()  # sounddevice's own way to re-initialise PortAudio (no public API for it)
    sd._initialize()


# ----------------------------------------------------------------------------------------------
# microphones


@dataclass(frozen=True)
class AudioDevice:
    """An audio input device as PortAudio reports it.

    Attributes:
        index: PortAudio device index (what ``--mic INDEX`` takes).
        name: Device name (``--mic`` matches substrings of it).
        sample_rate: The device's default sample rate in Hz.
        channels: Maximum input channels.
        host_api: Host API name (ALSA, CoreAudio, WASAPI, ...).
        is_default: Whether it is the default input device.
    """

    index: int
    name: str
    sample_rate: float
    channels: int
    host_api: str = ""
    is_default: bool = False

    def __str__(self) -> str:
        star = "*" if self.is_default else ""
        return f"[{self.index}]{star} {self.name} ({self.sample_rate:g} Hz, {self.channels} ch)"


def list_input_devices() -> list[AudioDevice]:
    """Every device with at least one input channel, in PortAudio's order.

    Raises:
        PortAudioNotFound: libportaudio is not installed.
    """
    sd = import_sounddevice()
    default_in = sd.default.device[0]
    if isinstance(default_in, str):
        default_in = -1
    try:
        host_apis = [h["name"] for h in sd.query_hostapis()]
    except Exception:
        host_apis = []
    out = []
    for info in sd.query_devices():
        if info["max_input_channels"] < 1:
            continue
        api = info.get("hostapi", -1)
        out.append(
            AudioDevice(
                index=int(info["index"]),
                name=str(info["name"]),
                sample_rate=float(info["default_samplerate"]),
                channels=int(info["max_input_channels"]),
                host_api=host_apis[api] if 0 <= api < len(host_apis) else "",
                is_default=int(info["index"]) == default_in,
            )
        )
    return out


def _device_listing(devices) -> str:
    return ", ".join(str(d) for d in devices) if devices else "none"


def resolve_input_device(spec: str | int = "default") -> AudioDevice:
    """The input device a ``--mic`` spec names.

    Args:
        spec: ``"default"`` (PortAudio's default input, else the first input device), an index
            (int or digits), or a case-insensitive substring of a device name. An exact name
            match wins over substring matches.

    Raises:
        DeviceNotFound: Nothing (or more than one device) matches; the message lists the inputs.
        PortAudioNotFound: libportaudio is not installed.
    """
    devices = list_input_devices()
    hint = "" if devices else " (no sound card or sound server found; is PulseAudio/PipeWire running?)"
    text = str(spec).strip()
    if text.lower() == "default":
        for d in devices:
            if d.is_default:
                return d
        if devices:
            return devices[0]
        raise DeviceNotFound(f"No input device for 'default'; input devices: none{hint}")
    if re.fullmatch(r"-?\d+", text):
        index = int(text)
        for d in devices:
            if d.index == index:
                return d
        raise DeviceNotFound(f"No input device with index {index}; input devices: {_device_listing(devices)}{hint}")
    exact = [d for d in devices if d.name.lower() == text.lower()]
    if len(exact) == 1:
        return exact[0]
    matches = [d for d in devices if text.lower() in d.name.lower()]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise DeviceNotFound(f"No input device matching {text!r}; input devices: {_device_listing(devices)}{hint}")
    raise DeviceNotFound(f"Multiple input devices found for {text!r}: {_device_listing(matches)}; use the index")


# ----------------------------------------------------------------------------------------------
# cameras


@dataclass(frozen=True)
class CameraDevice:
    """A camera found by probing.

    Attributes:
        index: OpenCV camera index (``/dev/video<index>`` on Linux).
        path: Device node, or "" where there are none (macOS, Windows).
        width: Frame width the camera opens with, 0 if unknown.
        height: Frame height, 0 if unknown.
        fps: Frame rate it reports, 0.0 if unknown.
    """

    index: int
    path: str
    width: int = 0
    height: int = 0
    fps: float = 0.0

    def __str__(self) -> str:
        size = f" {self.width}x{self.height}" if self.width else ""
        rate = f" @ {self.fps:g} fps" if self.fps else ""
        where = f" {self.path}" if self.path else ""
        return f"[{self.index}]{where}{size}{rate}"


@dataclass(frozen=True)
class CameraSpec:
    """What a ``--camera`` spec resolved to.

    Attributes:
        target: What ``cv2.VideoCapture`` opens: an int index or a path/URL string.
        kind: "index" (a camera device), "file" (a regular video file: replayed, media clock)
            or "stream" (a URL, FIFO or other live stream).
        label: The spec as the user wrote it, for messages and source names.
    """

    target: int | str
    kind: str
    label: str

    @property
    def live(self) -> bool:
        return self.kind != "file"


def _video_nodes() -> dict[int, str]:
    nodes = {}
    for p in glob.glob("/dev/video*"):
        m = re.fullmatch(r"/dev/video(\d+)", p)
        if m:
            nodes[int(m.group(1))] = p
    return dict(sorted(nodes.items()))


def list_cameras(max_probe: int = 4) -> list[CameraDevice]:
    """Cameras that open, found quickly.

    On Linux the ``/dev/video*`` nodes are probed with OpenCV's V4L2 backend (metadata nodes
    fail to open and are left out); elsewhere indices ``0 .. max_probe-1`` are tried.
    """
    import cv2

    if sys.platform.startswith("linux"):
        candidates = _video_nodes()
        backend = cv2.CAP_V4L2
    else:
        candidates = {i: "" for i in range(max_probe)}
        backend = cv2.CAP_ANY
    found = []
    for index, path in candidates.items():
        cap = cv2.VideoCapture(index, backend)
        try:
            if cap.isOpened():
                found.append(
                    CameraDevice(
                        index=index,
                        path=path,
                        width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0),
                        height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0),
                        fps=float(cap.get(cv2.CAP_PROP_FPS) or 0.0),
                    )
                )
        finally:
            cap.release()
    return found


def camera_listing() -> str:
    """A one-line summary of the cameras found, for error messages."""
    cams = list_cameras()
    if cams:
        return "cameras: " + ", ".join(str(c) for c in cams)
    if sys.platform.startswith("linux"):
        nodes = _video_nodes()
        if nodes:
            return "cameras: none opens (nodes: " + ", ".join(nodes.values()) + ")"
        return "cameras: none (no /dev/video* device)"
    return "cameras: none"


def resolve_camera(spec: str | int) -> CameraSpec:
    """What a ``--camera`` spec names.

    Args:
        spec: A camera index (int or digits), a ``/dev/videoN`` node, a video file path, or a
            stream URL (``rtsp://``, ``tcp://``, ``http://`` ...) or FIFO path.

    Raises:
        DeviceNotFound: An index or node that does not exist, or a path that does not exist;
            the message lists the cameras found.
    """
    text = str(spec).strip()
    m = re.fullmatch(r"(?:/dev/video)?(\d+)", text)
    if m:
        index = int(m.group(1))
        if sys.platform.startswith("linux") and index not in _video_nodes():
            raise DeviceNotFound(f"No camera at index {index}; {camera_listing()}")
        return CameraSpec(index, "index", text)
    if "://" in text:
        return CameraSpec(text, "stream", text)
    if not os.path.exists(text):
        raise DeviceNotFound(f"No camera, file or stream {text!r} (not an index, an existing path or a URL); {camera_listing()}")
    if os.path.isfile(text):
        return CameraSpec(text, "file", text)
    return CameraSpec(text, "stream", text)  # a FIFO, a character device


# ----------------------------------------------------------------------------------------------
# both


@dataclass(frozen=True)
class DeviceList:
    """What :func:`list_devices` found. ``str()`` gives the ``--list-devices`` text.

    Attributes:
        inputs: Audio input devices (empty when PortAudio is missing; see ``audio_error``).
        cameras: Cameras that opened.
        audio_error: Why audio devices could not be listed, or "".
    """

    inputs: tuple[AudioDevice, ...]
    cameras: tuple[CameraDevice, ...]
    audio_error: str = ""

    def __str__(self) -> str:
        lines = ["Microphones (--mic default|INDEX|NAME):"]
        if self.audio_error:
            lines.append(f"  unavailable: {self.audio_error}")
        lines += [f"  {d}" for d in self.inputs] or ["  none found"]
        lines.append("Cameras (--camera INDEX|PATH|URL):")
        lines += [f"  {c}" for c in self.cameras] or ["  none found"]
        return "\n".join(lines)


def list_devices() -> DeviceList:
    """Audio input devices and cameras, for ``--list-devices``. Never raises for a missing
    PortAudio library: that is reported in ``audio_error``."""
    try:
        inputs = tuple(list_input_devices())
        err = ""
    except PortAudioNotFound as e:
        inputs, err = (), str(e)
    return DeviceList(inputs, tuple(list_cameras()), err)
