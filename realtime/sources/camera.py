"""A camera (or a video file / stream standing in for one) through OpenCV."""
from __future__ import annotations

import collections
import os
import sys
import threading
import time

import numpy as np

from ..devices import CameraSpec, DeviceNotFound, camera_listing, resolve_camera
from .base import CLOCK_MONOTONIC, CLOCK_STREAM, Chunk, EndOfStream, Source, SourceError, SourceLost, SourceTimeout

__all__ = ["CameraSource"]


class CameraSource(Source):
    """Frames from ``cv2.VideoCapture``, converted BGR→RGB, optionally resized.

    One grabber thread owns the ``VideoCapture``: it opens it, reads frames into a preallocated
    BGR buffer, converts (and resizes) them into one of a few preallocated slots and hands the
    slot over; it releases the capture when it stops. :meth:`read` waits for a slot with a
    timeout (a camera or stream that stalls raises :class:`SourceTimeout` instead of hanging).

    What ``spec`` names decides the behaviour:

    * a camera index or ``/dev/videoN``, a URL, a FIFO: **live**. Frames carry
      ``time.monotonic()`` at arrival (the capture maps that onto the stream clock); when the
      reader falls behind, the oldest waiting frame is dropped (newest wins; counted in
      :attr:`overflows`). A live camera that stops delivering after its first frame (a
      stream's sender gone, a FIFO's writer killed, a USB camera unplugged) is *lost*: the
      grabber releases it and opens it again with backoff (``reconnect_min_s`` to
      ``reconnect_max_s``) until frames flow again, meanwhile :meth:`read` raises
      :class:`SourceLost`. New frames keep the first frame's size (resized).
    * a regular video file (a fake camera for tests and demos): frames carry their media
      time (``CAP_PROP_POS_MSEC``) from the first frame; nothing is dropped (the grabber waits
      for the reader); the file ends with :class:`EndOfStream`; the capture paces it.

    Args:
        spec: ``--camera`` spec: index, ``/dev/videoN``, path or URL.
        size: Optional ``(width, height)`` to resize frames to.
        timeout: Seconds :meth:`open` waits for the first frame, and the default read timeout.
        slots: Preallocated frame slots between grabber and reader (≥ 3).
        reconnect_min_s, reconnect_max_s: Backoff between reconnection attempts of a lost live
            camera.

    Raises (on open):
        DeviceNotFound: No such camera index or path (the message lists the cameras found), or
            OpenCV cannot open it.
        SourceTimeout: Opened, but no first frame within ``timeout``.
    """

    def __init__(
        self,
        spec: str | int,
        *,
        size: tuple[int, int] | None = None,
        timeout: float = 2.0,
        slots: int = 4,
        reconnect_min_s: float = 0.1,
        reconnect_max_s: float = 0.5,
    ) -> None:
        if int(slots) < 3:
            raise ValueError(f"CameraSource slots: expected >= 3, found {slots}")
        self.spec = spec
        self.name = f"camera:{spec}"
        self._size = None if size is None else (int(size[0]), int(size[1]))
        self.frame_size = self._size
        self.timeout = float(timeout)
        self._n_slots = int(slots)
        self._reconnect = (float(reconnect_min_s), float(reconnect_max_s))
        self._lost: str | None = None  # why a live camera is lost right now (the grabber reconnects)
        self._thread: threading.Thread | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._pending: collections.deque[int] = collections.deque()
        self.dropped = 0

    @property
    def overflows(self) -> int:
        return self.dropped

    @property
    def has_video(self) -> bool:
        return True  # the frame size may be known only once the first frame arrives

    # -------------------------------------------------------------------------------- open/close
    def _open(self) -> None:
        cam: CameraSpec = resolve_camera(self.spec)
        self._cam = cam
        self.live = cam.live
        self.reconnects_itself = cam.live
        self._lost = None
        self.clock = CLOCK_MONOTONIC if cam.live else CLOCK_STREAM
        if cam.kind == "file":
            self.name = os.path.basename(str(cam.target))
        self._stop.clear()
        self._pending.clear()
        self._free: list[int] = []
        self._held: int | None = None
        self._frames = None
        self._times = np.zeros(self._n_slots, np.float64)
        self._seq = np.zeros(self._n_slots, np.int64)
        self._opened = False
        self._next_seq = 0  # frame counter over reconnections
        self._failure: BaseException | None = None
        self._eos = False
        self.dropped = 0
        self._thread = threading.Thread(target=self._grab_loop, name=f"grab:{cam.label}", daemon=True)
        self._thread.start()
        with self._cond:  # the first frame tells the frame size
            ok = self._cond.wait_for(lambda: self._frames is not None or self._failure is not None or self._eos, self.timeout)
        if self._failure is not None:
            self._shutdown()
            raise self._failure
        if not ok:
            self._shutdown()
            state = "opened but delivered no frame" if self._opened else "did not open"
            raise SourceTimeout(f"camera {cam.label!r} {state} within {self.timeout:g} s")
        if self._frames is None:  # an empty file
            self._shutdown()
            raise SourceError(f"camera {cam.label!r}: no frames")

    def _shutdown(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        t, self._thread = self._thread, None
        if t is not None and t is not threading.current_thread():
            # A read blocked inside OpenCV (a stalled stream) returns when the stream ends or
            # times out; the daemon thread then releases the capture on its own.
            t.join(timeout=1.0)

    def _close(self) -> None:
        self._shutdown()

    # --------------------------------------------------------------------------- grab thread
    def _open_capture(self, cv2):
        cam = self._cam
        if cam.kind == "index":
            cap = cv2.VideoCapture(cam.target, cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY)
        else:
            cap = cv2.VideoCapture(cam.target, cv2.CAP_FFMPEG)
        if not cap.isOpened():
            cap.release()
            what = f"camera at index {cam.target}" if cam.kind == "index" else repr(cam.label)
            raise DeviceNotFound(f"OpenCV cannot open {what}; {camera_listing()}")
        return cap

    def _grab_loop(self) -> None:
        """Open, grab until the end; a live camera lost after its first frame is reopened."""
        import cv2

        cam = self._cam
        delay = self._reconnect[0]
        try:
            while not self._stop.is_set():
                try:
                    cap = self._open_capture(cv2)
                except DeviceNotFound as e:
                    if self._frames is None or not cam.live:
                        raise  # never delivered: the user's spec is wrong
                    _quiet_opencv(cv2)  # one failed reopen after another would each print a warning
                    self._set_lost(f"cannot reopen it ({e})".split(";")[0])
                    self._stop.wait(delay)
                    delay = min(2 * delay, self._reconnect[1])
                    continue
                try:
                    delivered = self._grab_from(cap, cv2)
                finally:
                    cap.release()
                if not cam.live or self._frames is None or self._stop.is_set():
                    break  # a file's end (or a stream that never delivered: the open reports it)
                if delivered:
                    delay = self._reconnect[0]
                self._set_lost("the stream ended" if cam.kind != "index" else "it stopped delivering frames")
                self._stop.wait(delay)
                delay = min(2 * delay, self._reconnect[1])
        except BaseException as e:
            with self._cond:
                self._failure = e
                self._cond.notify_all()
        finally:
            with self._cond:
                self._eos = True
                self._cond.notify_all()

    def _set_lost(self, why: str) -> None:
        with self._cond:
            if self._lost is None:
                self._lost = why
            self._cond.notify_all()

    def _grab_from(self, cap, cv2) -> int:
        """Grab frames from an open ``VideoCapture`` until it fails, ends or the source stops;
        the number of frames delivered."""
        cam = self._cam
        fps = cap.get(cv2.CAP_PROP_FPS)
        if self.fps is None:
            self.fps = float(fps) if fps and fps > 0 and fps < 1000 else None
        with self._cond:
            self._opened = True
        bgr = None
        t_first = None
        k = 0
        while not self._stop.is_set():
            ok, got = cap.read(bgr) if bgr is not None else cap.read()
            t_arrival = time.monotonic()
            if not ok or got is None:
                if cam.kind == "index" and self._frames is None:
                    raise SourceError(f"camera {cam.label!r} stopped delivering frames")
                return k  # end of file or stream (a live one: lost)
            bgr = got  # reused by the next read when the size stays
            if self._frames is None:
                h, w = bgr.shape[:2]
                if self._size is None:
                    self._size = (w, h)
                self.frame_size = self._size
                frames = np.zeros((self._n_slots, self._size[1], self._size[0], 3), np.uint8)
                self._scaled = np.zeros((self._size[1], self._size[0], 3), np.uint8)
                with self._cond:
                    self._free = list(range(self._n_slots))
                    self._frames = frames
                    self._cond.notify_all()
            if cam.live:
                t = t_arrival
            else:
                t_media = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
                if t_first is None:
                    t_first = t_media
                t = t_media - t_first
            slot = self._take_slot(cam.live)
            if slot is None:
                return k
            dst = self._frames[slot]
            if bgr.shape[1::-1] != self._size:
                cv2.resize(bgr, self._size, dst=self._scaled, interpolation=cv2.INTER_AREA)
                cv2.cvtColor(self._scaled, cv2.COLOR_BGR2RGB, dst=dst)
            else:
                cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB, dst=dst)
            with self._cond:
                self._times[slot] = t
                self._seq[slot] = self._next_seq
                self._next_seq += 1
                self._lost = None
                self._pending.append(slot)
                self._cond.notify_all()
            k += 1
        return k

    def _take_slot(self, live: bool) -> int | None:
        """A slot to write into: a free one; live: else the oldest waiting (dropped)."""
        with self._cond:
            while not self._free:
                if self._stop.is_set():
                    return None
                if live and self._pending:
                    self.dropped += 1
                    return self._pending.popleft()
                self._cond.wait(0.1)
            return self._free.pop()

    # ---------------------------------------------------------------------------------- read
    def read(self, timeout: float | None = None) -> Chunk:
        if self._thread is None and not self._pending:
            raise SourceError(f"{self.name}: read before open()")
        wait = self.timeout if timeout is None else float(timeout)
        with self._cond:
            if self._held is not None:  # the previous chunk's slot is free again
                self._free.append(self._held)
                self._held = None
                self._cond.notify_all()
            ok = self._cond.wait_for(lambda: self._pending or self._eos or self._lost is not None, wait)
            if not self._pending:
                if self._lost is not None and not self._eos:
                    raise SourceLost(f"camera {self._cam.label!r}: {self._lost}")
                if self._failure is not None:
                    f = self._failure
                    raise (f if isinstance(f, SourceError) else SourceError(f"camera {self._cam.label!r} failed: {f!r}")) from f
                if self._eos:
                    raise EndOfStream(self.name)
                if not ok:
                    raise SourceTimeout(f"camera {self._cam.label!r} delivered no frame in {wait:g} s")
            slot = self._pending.popleft()
            self._held = slot
            t, k = float(self._times[slot]), int(self._seq[slot])
        return Chunk(frame=self._frames[slot], frame_time=t, frame_index=k)


def _quiet_opencv(cv2) -> None:
    """OpenCV's own warnings to errors only (each failed open of a lost stream prints one)."""
    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    except AttributeError:  # an OpenCV build without the logging module
        pass
