"""Keep the C libraries' own diagnostics off the terminal while avlive runs.

PortAudio's ALSA host API prints its internal checks straight to file descriptor 2 (``Expression
'…' failed in 'src/hostapi/alsa/pa_linux_alsa.c', line: N``), and ALSA's pulse plugin its own
(``ALSA lib pulse.c:242:(pulse_connect) PulseAudio: Unable to connect …`` and an empty line):
three to five lines every time a microphone goes away or a reopen is tried, before and between
avlive's one-line reports of the same event. Neither library offers a way to turn them off
(PortAudio's debug-print hook is not exported).

:class:`NativeStderrFilter` routes descriptor 2 through a pipe while it is active. A reader thread
passes everything through unchanged, byte for byte and at once, except whole lines of those two
forms, which it counts and keeps (the last :data:`KEPT`, in :attr:`NativeStderrFilter.recent`;
not through ``logging``, whose handler may write to descriptor 2 itself). Partial lines
(progress bars ending in ``\\r``) pass immediately; only a partial line that starts like a
filtered one waits for its newline. ``AVLIVE_NATIVE_STDERR=1`` turns the filter off.
"""
from __future__ import annotations

import collections
import os
import re
import sys
import threading

__all__ = ["ENV_VAR", "KEPT", "NativeStderrFilter"]

ENV_VAR = "AVLIVE_NATIVE_STDERR"
KEPT = 20

_NATIVE = re.compile(rb"^(Expression '.*' failed in '.*', line: \d+|ALSA lib .*)$")
_PREFIXES = (b"Expression '", b"ALSA lib ")


class NativeStderrFilter:
    """Context manager: descriptor 2 through a filtering pipe (see the module docstring).

    Attributes:
        dropped: lines kept off the terminal so far.
        recent: the last :data:`KEPT` of them (bytes, without the newline).
    """

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = os.environ.get(ENV_VAR, "") not in ("1", "true", "yes") if enabled is None else enabled
        self.dropped = 0
        self.recent: collections.deque[bytes] = collections.deque(maxlen=KEPT)
        self._saved: int | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "NativeStderrFilter":
        if not self.enabled:
            return self
        sys.stderr.flush()
        read_end, write_end = os.pipe()
        self._saved = os.dup(2)
        os.dup2(write_end, 2)
        os.close(write_end)
        self._thread = threading.Thread(target=self._pump, args=(read_end, self._saved), name="native-stderr",
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._saved is None:
            return
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(self._saved, 2)  # the pipe's last write end closes: the reader sees the end
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        os.close(self._saved)
        self._saved = None

    def _pump(self, read_end: int, out: int) -> None:
        pending = b""
        after_alsa = False  # ALSA's pulse plugin ends its message with an empty line
        try:
            while True:
                chunk = os.read(read_end, 65536)
                if not chunk:
                    break
                pending += chunk
                passed = []
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    redrawn, cr, line = line.rpartition(b"\r")  # after a progress bar's \r
                    if redrawn or cr:
                        passed.append(redrawn + cr)
                    if _NATIVE.match(line):
                        self.dropped += 1
                        self.recent.append(line)
                        after_alsa = line.startswith(b"ALSA lib ")
                        continue
                    if after_alsa and not line.strip():
                        after_alsa = False
                        continue
                    after_alsa = False
                    passed.append(line + b"\n")
                if pending:  # a partial line: what cannot start a library's line passes now
                    cut = pending.rfind(b"\r") + 1  # a progress bar's redrawn line ends at \r
                    tail = pending[cut:]
                    if not any(p.startswith(tail[:len(p)]) for p in _PREFIXES):
                        cut = len(pending)
                    if cut:
                        passed.append(pending[:cut])
                        pending = pending[cut:]
                if passed:
                    _write_all(out, b"".join(passed))
            if pending:
                _write_all(out, pending)
        finally:
            os.close(read_end)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        try:
            data = data[os.write(fd, data):]
        except InterruptedError:
            continue
        except OSError:
            return  # the terminal is gone; nothing to tell it
