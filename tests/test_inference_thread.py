"""realtime.inference_thread: the start/stop life shared by the one- and several-stream schedulers."""
from __future__ import annotations

import pytest

from realtime.inference_thread import InferenceThread


class Loop(InferenceThread):
    """Hops until stopped; fails on hop ``fail_at`` when given."""

    def __init__(self, fail_at: int | None = None) -> None:
        self._init_thread("test-inference")
        self.fail_at, self.hops, self.closes = fail_at, 0, 0

    def _loop(self, wait) -> None:
        self._opened = True
        while not self._stop_event.is_set():
            self.hops += 1
            if self.hops == self.fail_at:
                raise ZeroDivisionError("a model failed")
            wait(0.001)

    def _close(self) -> None:
        self.closes += 1


def test_an_error_on_the_thread_is_raised_by_stop_after_closing_once():
    loop = Loop(fail_at=3).start()
    loop._thread.join(5)
    assert not loop.running and loop.closes == 1  # closed on the thread, as soon as it failed
    with pytest.raises(ZeroDivisionError, match="a model failed"):
        loop.stop()
    loop.stop()  # a second stop neither raises again nor closes again
    assert loop.closes == 1


def test_started_or_stepped_not_both_and_never_twice():
    with Loop() as loop:
        assert loop.running and loop.thread_name == "test-inference"
        with pytest.raises(RuntimeError, match="Loop.step: the inference thread is running"):
            loop._check_steppable()
        with pytest.raises(RuntimeError, match="Loop.start: already started"):
            loop.start()
    assert not loop.running and loop.closes == 1 and loop.hops >= 1
    with pytest.raises(RuntimeError, match="Loop.start: already started"):
        loop.start()
    stepped = Loop()
    stepped._opened = True  # what step() does first
    with pytest.raises(RuntimeError, match="driven with step"):
        stepped.start()
    stepped.stop()  # never started: stop closes what step() opened
    assert stepped.closes == 1
    with pytest.raises(RuntimeError, match="Loop.step: stopped"):
        stepped._check_steppable()
