"""Decode untrusted media files in worker processes, so a decoder crash costs one clip.

FFmpeg decoders are C code; a malformed file can segfault, abort or hang the process that
decodes it. :func:`decode_many` runs ``fn(path)`` for each path in a small pool of worker
processes (``spawn`` start method by default) and gives each worker exactly one clip at a time,
so every failure is attributed to the clip that caused it:

* ``fn`` raises           -> the clip is skipped with ``"error: <Type>: <message>"``;
* the worker dies          -> ``"crash: worker killed by SIGSEGV"`` (or its exit code); the
  worker is replaced and the run goes on;
* no answer in ``timeout_s`` -> ``"timeout: no result after N s"``; the worker is killed
  (SIGKILL) and replaced.

A skipped clip is never replaced by another one: results are keyed by the clip's position in
the input. Each skip is added to a :class:`SkipReport`, logged (``logging`` warning) and issued
as a :class:`ClipSkippedWarning`.

Example::

    from functools import partial
    from models.io.decode_pool import decode_many, SkipReport
    from models.io.media import read_audio

    report = SkipReport()
    for path, (audio, sr) in decode_many(paths, partial(read_audio, sample_rate=16000),
                                         workers=4, timeout_s=30, report=report):
        ...
    print(report.summary())

``fn`` must be picklable (a module-level function or a ``functools.partial`` of one), and so
must its results; a lambda or a closure raises TypeError before any worker starts.

This module implements its own small pool rather than using ``ProcessPoolExecutor``: the
executor cannot kill a single hung task, and after a crash it marks every pending future broken
(``BrokenProcessPool``), which loses the attribution to one clip.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import pickle
import signal
import time
import traceback
import warnings
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import wait as mp_wait
from typing import Any, Callable, Generic, Iterable, Iterator, TypeVar

logger = logging.getLogger(__name__)

__all__ = ["ClipSkippedWarning", "DecodeRun", "SkipReport", "decode_many"]

P = TypeVar("P")
R = TypeVar("R")

#: A worker that dies or stays silent this many times in a row before it ever becomes ready
#: means the pool itself is broken (e.g. ``fn``'s module does not import in a fresh process).
_MAX_START_FAILURES = 3
_START_TIMEOUT_S = 120.0


class ClipSkippedWarning(UserWarning):
    """Issued once per clip that :func:`decode_many` skipped."""


@dataclass
class SkipReport:
    """The clips a decode run skipped, and why.

    Attributes:
        skipped: ``(path, reason)`` per skipped clip, in the order the failures happened.
            Reasons start with ``"error: "``, ``"crash: "`` or ``"timeout: "``.
        n_ok: Clips decoded successfully (counted by :func:`decode_many`).
    """

    skipped: list[tuple[Any, str]] = field(default_factory=list)
    n_ok: int = 0

    def add(self, path: Any, reason: str, *, warn: bool = True) -> None:
        """Record a skipped clip; log and warn about it unless ``warn`` is False."""
        self.skipped.append((path, reason))
        if warn:
            msg = f"skipped clip {os.fspath(path) if _is_pathlike(path) else path!r}: {reason}"
            logger.warning(msg)
            warnings.warn(msg, ClipSkippedWarning, stacklevel=3)

    @property
    def count(self) -> int:
        """Number of skipped clips."""
        return len(self.skipped)

    @property
    def paths(self) -> list[Any]:
        """The skipped paths, in failure order."""
        return [p for p, _ in self.skipped]

    def reason(self, path: Any) -> str | None:
        """The reason ``path`` was skipped (the first one, if listed twice), or None."""
        for p, r in self.skipped:
            if p == path:
                return r
        return None

    def summary(self) -> str:
        """Human-readable text: a count line, then one ``path: reason`` line per skipped clip."""
        total = self.count + self.n_ok
        if not self.skipped:
            return f"no clips skipped ({self.n_ok} decoded)"
        head = f"skipped {self.count} of {total} clips:"
        lines = [f"  {os.fspath(p) if _is_pathlike(p) else p}: {r}" for p, r in self.skipped]
        return "\n".join([head, *lines])


def _is_pathlike(p: Any) -> bool:
    return isinstance(p, (str, bytes, os.PathLike))


# ----------------------------------------------------------------------------------------------
# worker side


def _worker_main(conn, fn_bytes: bytes, core_dumps: bool) -> None:
    """Worker loop: receive ``(index, path)``, answer ``(index, ok, payload)``; None stops."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business
    if not core_dumps:
        try:
            import resource

            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        except (ImportError, ValueError, OSError):
            pass
    try:
        fn = pickle.loads(fn_bytes)
    except BaseException:
        conn.send(("fatal", traceback.format_exc()))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        idx, path = msg
        try:
            result = fn(path)
        except BaseException as e:  # SystemExit from fn is the clip's failure, not the worker's
            conn.send((idx, False, f"{type(e).__name__}: {e}"))
            continue
        try:
            conn.send((idx, True, result))
        except Exception as e:  # result not picklable (nothing was written yet)
            conn.send((idx, False, f"result not picklable: {type(e).__name__}: {e}"))


# ----------------------------------------------------------------------------------------------
# parent side


class _Worker:
    def __init__(self, ctx, fn_bytes: bytes, core_dumps: bool) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_worker_main, args=(child, fn_bytes, core_dumps), daemon=True,
                                name="avlive-decode-worker")
        self.proc.start()
        child.close()
        self.ready = False
        self.started_at = time.monotonic()
        self.task: tuple[int, Any] | None = None  # (index, path)
        self.deadline = float("inf")

    def send(self, idx: int, path: Any, timeout_s: float) -> None:
        self.conn.send((idx, path))
        self.task = (idx, path)
        self.deadline = time.monotonic() + timeout_s

    def stop(self, kill: bool = False) -> None:
        if self.proc.is_alive() and not kill:
            try:
                self.conn.send(None)
            except (OSError, ValueError):
                pass
            self.proc.join(1.0)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5.0)
        self.conn.close()
        try:
            self.proc.close()
        except ValueError:
            pass


def _death_reason(exitcode: int | None) -> str:
    if exitcode is None:
        return "crash: worker died"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"crash: worker killed by {name}"
    return f"crash: worker exited with code {exitcode}"


class DecodeRun(Generic[P, R]):
    """The iterator :func:`decode_many` returns: yields ``(path, result)``; has ``.report``.

    Iterate it once. Leaving the loop early (``break``) or an exception stops the workers;
    so does :meth:`close`.
    """

    def __init__(self, paths: Iterable[P], fn: Callable[[P], R], *, workers: int, timeout_s: float,
                 report: SkipReport, ordered: bool, mp_context: str, core_dumps: bool) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        try:
            self._fn_bytes = pickle.dumps(fn)
        except Exception as e:
            raise TypeError(f"decode_many needs a picklable fn (a module-level function or a functools.partial "
                            f"of one), got {fn!r}: {e}") from e
        self.report = report
        self._paths = paths
        self._workers_n = int(workers)
        self._timeout_s = float(timeout_s)
        self._ordered = ordered
        self._ctx = mp.get_context(mp_context)
        self._core_dumps = core_dumps
        self._gen = self._run()

    def __iter__(self) -> Iterator[tuple[P, R]]:
        return self

    def __next__(self) -> tuple[P, R]:
        return next(self._gen)

    def close(self) -> None:
        """Stop the workers (also done when the loop ends or is left)."""
        self._gen.close()

    def _run(self) -> Iterator[tuple[P, R]]:
        todo = iter(enumerate(self._paths))
        exhausted = False
        workers: list[_Worker] = []
        done: dict[int, tuple[Any, bool, Any]] = {}  # index -> (path, ok, result); ordered mode
        ready_out: deque[tuple[Any, Any]] = deque()  # unordered mode
        next_idx = 0  # next index to yield (ordered)
        skipped_idx: set[int] = set()
        start_failures = 0

        def next_task():
            nonlocal exhausted
            if exhausted:
                return None
            try:
                return next(todo)
            except StopIteration:
                exhausted = True
                return None

        def finish(idx: int, path: Any, ok: bool, payload: Any) -> None:
            if ok:
                self.report.n_ok += 1
                if self._ordered:
                    done[idx] = (path, True, payload)
                else:
                    ready_out.append((path, payload))
            else:
                self.report.add(path, payload)
                skipped_idx.add(idx)

        pending_task = next_task()
        try:
            while True:
                # 1. keep the pool full while there are clips to hand out
                while pending_task is not None and len(workers) < self._workers_n:
                    workers.append(_Worker(self._ctx, self._fn_bytes, self._core_dumps))
                # 2. hand one clip to each ready, idle worker
                for w in workers:
                    if w.ready and w.task is None and pending_task is not None:
                        idx, path = pending_task
                        try:
                            w.send(idx, path, self._timeout_s)
                        except (OSError, EOFError):
                            continue  # the worker just died: it is reaped below, the clip waits for another
                        except Exception as e:  # the path itself cannot be pickled
                            finish(idx, path, False, f"error: cannot send path to worker: {type(e).__name__}: {e}")
                        pending_task = next_task()
                # 3. yield what is ready
                if self._ordered:
                    while True:
                        if next_idx in skipped_idx:
                            skipped_idx.discard(next_idx)
                            next_idx += 1
                        elif next_idx in done:
                            path, _, res = done.pop(next_idx)
                            next_idx += 1
                            yield path, res
                        else:
                            break
                else:
                    while ready_out:
                        yield ready_out.popleft()
                # 4. done?
                active = [w for w in workers if w.task is not None]
                if pending_task is None and not active:
                    break
                # 5. wait for an answer, a death or the nearest deadline
                now = time.monotonic()
                deadlines = [w.deadline for w in active] + [w.started_at + _START_TIMEOUT_S for w in workers if not w.ready]
                timeout = max(0.0, min(deadlines) - now) if deadlines else None
                waitables = [w.conn for w in workers] + [w.proc.sentinel for w in workers]
                fired = set(mp_wait(waitables, timeout))
                now = time.monotonic()
                for w in list(workers):
                    dead = False
                    if w.conn in fired or (w.proc.sentinel in fired and w.conn.poll()):
                        try:
                            msg = w.conn.recv()
                        except (EOFError, OSError):
                            dead = True
                        else:
                            if msg[0] == "ready":
                                w.ready = True
                                start_failures = 0
                            elif msg[0] == "fatal":
                                raise RuntimeError(f"decode worker cannot load fn:\n{msg[1]}")
                            else:
                                idx, ok, payload = msg
                                if w.task is None or w.task[0] != idx:  # cannot happen; never misattribute
                                    raise RuntimeError(f"decode worker answered for clip #{idx}, expected {w.task}")
                                _, path = w.task
                                w.task, w.deadline = None, float("inf")
                                finish(idx, path, ok, payload if ok else f"error: {payload}")
                    elif w.proc.sentinel in fired:
                        dead = True
                    if dead:
                        w.proc.join(1.0)
                        code = w.proc.exitcode
                        if w.task is not None:
                            idx, path = w.task
                            finish(idx, path, False, _death_reason(code))
                        elif not w.ready:
                            start_failures += 1
                            if start_failures >= _MAX_START_FAILURES:
                                raise RuntimeError(f"decode workers die while starting ({_death_reason(code)}; "
                                                   f"{start_failures} times in a row)")
                        w.stop(kill=True)
                        workers.remove(w)
                    elif w.task is not None and now >= w.deadline:
                        idx, path = w.task
                        w.stop(kill=True)
                        workers.remove(w)
                        finish(idx, path, False, f"timeout: no result after {self._timeout_s:g} s (worker killed)")
                    elif not w.ready and now >= w.started_at + _START_TIMEOUT_S:
                        raise RuntimeError(f"decode worker did not start within {_START_TIMEOUT_S:g} s")
        finally:
            for w in workers:
                w.stop(kill=w.task is not None)


def decode_many(
    paths: Iterable[P],
    fn: Callable[[P], R],
    *,
    workers: int = 2,
    timeout_s: float = 30.0,
    report: SkipReport | None = None,
    ordered: bool = True,
    mp_context: str = "spawn",
    core_dumps: bool = False,
) -> DecodeRun[P, R]:
    """Run ``fn(path)`` for each path in crash-isolated worker processes.

    Args:
        paths: Clips to decode (any picklable items; read lazily).
        fn: Picklable callable run in a worker: ``fn(path) -> result`` (result picklable).
        workers: Worker processes (each holds one clip at a time).
        timeout_s: Seconds one clip may take, counted from when its worker receives it.
        report: A :class:`SkipReport` to add skips to (a new one otherwise; see ``.report``).
        ordered: Yield in input order (default) rather than as clips finish.
        mp_context: multiprocessing start method: "spawn" (default) or "forkserver";
            avoid "fork" in a process that holds threads or an FFmpeg/torch state.
        core_dumps: Let crashing workers write core files (off: RLIMIT_CORE = 0 in workers).

    Returns:
        A :class:`DecodeRun`: iterate it for ``(path, result)`` of each clip that decoded (the
        path object as given); ``.report`` lists the skipped ones.

    Raises:
        TypeError: ``fn`` is not picklable.
        ValueError: ``workers`` < 1 or ``timeout_s`` <= 0.
        RuntimeError: (while iterating) workers cannot start at all.
    """
    return DecodeRun(paths, fn, workers=workers, timeout_s=timeout_s, report=report if report is not None else SkipReport(),
                     ordered=ordered, mp_context=mp_context, core_dumps=core_dumps)
