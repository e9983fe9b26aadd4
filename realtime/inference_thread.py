"""The life of an inference thread, shared by :class:`~realtime.scheduler.Scheduler` (one stream)
and :class:`~realtime.multistream.MultiScheduler` (several streams, one thread).

One owner runs every model call and every sink on its own thread: ``start()`` begins it,
``stop()`` ends it and re-raises on the caller's thread whatever the inference thread raised; or
the owner is driven hop by hop with ``step()`` on the calling thread (tests, offline runs), never
both. Whichever way it ran, its sinks are closed exactly once (``_finish``).

A subclass provides:

* ``_loop(wait)``: open the sinks and run hops until ``self._stop_event`` is set; ``wait(s)``
  sleeps at most ``s`` seconds and returns at once on stop;
* ``_close()``: the final result and closing the sinks (called once, by ``_finish``);

and calls ``_init_thread(name)`` from its constructor and ``_check_steppable()`` first in
``step()``; setting ``_opened`` when it opens its sinks.
"""
from __future__ import annotations

import logging
import threading

logger = logging.getLogger(__name__)


class InferenceThread:
    """Start, stop and hand-over of errors for one inference thread (see the module docstring)."""

    def _init_thread(self, name: str) -> None:
        self.thread_name = name
        self._thread: threading.Thread | None = None
        self._stop_event = threading.Event()
        self._error: BaseException | None = None
        self._opened = False
        self._closed = False

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self):
        """Start the inference thread (it opens the sinks); returns self."""
        kind = type(self).__name__
        if self._thread is not None or self._opened:
            raise RuntimeError(f"{kind}.start: already started (or driven with step()); make a new {kind}")
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop, emit the final result (closing open events), flush and close every sink.

        Safe to call more than once, and from a ``KeyboardInterrupt`` handler. An exception
        raised on the inference thread (a model or a sink failing) is re-raised here.

        Raises:
            TimeoutError: the thread did not finish within ``timeout`` seconds (a model call
                still running).
        """
        if self._thread is not None:
            self._stop_event.set()
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"{type(self).__name__}.stop: the inference thread is still busy after {timeout} s")
        elif self._opened and not self._closed:
            self._finish()
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _check_steppable(self) -> None:
        """``step()`` runs on the calling thread: refused while the thread runs or after a stop."""
        kind = type(self).__name__
        if self._thread is not None:
            raise RuntimeError(f"{kind}.step: the inference thread is running (start() was called); step() drives "
                               f"a {kind} that was never started")
        if self._closed:
            raise RuntimeError(f"{kind}.step: stopped")

    def _run(self) -> None:
        try:
            self._loop(self._stop_event.wait)
        except BaseException as e:  # handed over to stop()
            self._error = e
            logger.error("inference thread failed: %s: %s", type(e).__name__, e)
        finally:
            try:
                self._finish()
            except BaseException as e:
                if self._error is None:
                    self._error = e

    def _finish(self) -> None:
        """Close once, however the run ended."""
        if self._closed:
            return
        self._closed = True
        self._close()

    def _loop(self, wait) -> None:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def _close(self) -> None:  # pragma: no cover - every subclass defines it
        raise NotImplementedError
