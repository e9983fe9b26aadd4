"""How fast the window shows the camera, and what drawing costs the GUI thread.

    xvfb-run -a python -m apps.bench_window                     # the synthetic world at 30 fps, demo models
    python -m apps.bench_window --seconds 60 --out runs/bench/window.json
    xvfb-run -a python -m apps.bench_window --screenshot docs/window.png   # README's picture, at the end

The real pipeline plays ``synthetic:200000`` in real time (30 frames/s) through the demo models at
the default hop, and the real window draws it. After ``--warmup`` seconds it counts, for
``--seconds`` seconds:

* **distinct camera frames shown per second**: a frame counts once, when the camera image paints
  a frame index it has not painted before (repainting a stale frame does not count); the target
  is >= 25;
* **the GUI thread's CPU share**: ``time.thread_time()`` read on the Qt thread (its timer,
  pyqtgraph, painting, all of it) over the wall time, as a percentage of one core;
* the capture rate, the hop rate and the pipeline's skipped hops over the same span.

It needs a display: run it under Xvfb (``xvfb-run -a``), on a desktop, or with
``QT_QPA_PLATFORM=offscreen``.
"""
from __future__ import annotations

import argparse
import sys
import time

from models.evaluation.benchmark import BenchmarkReport
from realtime.live_view import LiveView, PipelineThread
from realtime.models import load_models
from realtime.pipeline import DEFAULT_SOURCE, PipelineConfig, build_streams


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m apps.bench_window", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--source", default=DEFAULT_SOURCE, help="the pipeline's source")
    p.add_argument("--models", nargs="+", default=[], metavar="PATH", help="model paths (default: the demo models)")
    p.add_argument("--backend", default="onnxruntime", choices=("onnxruntime", "torch"))
    p.add_argument("--threads", type=int, default=2, metavar="N", help="CPU threads per model")
    p.add_argument("--hop", type=float, default=0.25, metavar="S", help="seconds between inferences")
    p.add_argument("--warmup", type=float, default=3.0, metavar="S", help="seconds drawn before counting")
    p.add_argument("--seconds", type=float, default=20.0, metavar="S", help="seconds counted")
    p.add_argument("--out", default=None, metavar="FILE.json", help="also write the report here")
    p.add_argument("--screenshot", default=None, metavar="FILE.png", help="save the window as it is at the end")
    return p.parse_args(argv)


class Counts:
    """What the window, the capture and the pipeline have done so far, read on the GUI thread."""

    def __init__(self, window, view) -> None:
        result = view.latest()
        self.wall = time.perf_counter()
        self.cpu = time.thread_time()
        self.painted = window.camera_item.frames_painted
        self.captured = view.frames_captured
        self.hops = result.counters.hops if result is not None else 0
        self.skips = result.counters.skips if result is not None else 0


def measure(window, view, warmup: float, seconds: float) -> tuple[Counts, Counts]:
    """Run the Qt event loop for ``warmup + seconds`` and read the counts at both ends of the span."""
    from PySide6 import QtCore

    loop = QtCore.QEventLoop()
    ends: list[Counts] = []

    def read() -> None:
        ends.append(Counts(window, view))
        if len(ends) == 2:
            loop.quit()

    QtCore.QTimer.singleShot(int(warmup * 1000), read)
    QtCore.QTimer.singleShot(int((warmup + seconds) * 1000), read)
    loop.exec()
    return ends[0], ends[1]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from apps.window import AvliveWindow, WindowConfig, application, models_line

    app = application()
    models, _ = load_models(models=args.models, backend=args.backend, threads=args.threads)
    config = PipelineConfig(source=args.source, hop_s=args.hop, jsonl=None, summary=None)
    view = LiveView()
    pipeline = PipelineThread(config, models, build_streams(config, models), view, log=None)
    pipeline.start()
    try:
        if not view.wait_open(60):
            raise RuntimeError(f"the pipeline did not start: {pipeline.error}")
        labelers = models.labelers
        window = AvliveWindow(view, WindowConfig(analysis_window_s=labelers[0].model.window.seconds if labelers else 0.0),
                              info=models_line(models, args.backend, "cpu"), pipeline=pipeline)
        window.show()
        start, end = measure(window, view, args.warmup, args.seconds)
        if args.screenshot and not window.grab().save(args.screenshot, "PNG"):
            raise OSError(f"--screenshot {args.screenshot}: could not write the PNG")
        window.close()
    finally:
        pipeline.stop()
        pipeline.join(30)
        models.close()
    if pipeline.error is not None:
        raise pipeline.error
    wall = end.wall - start.wall
    report = BenchmarkReport("window", fields={
        "platform": app.platformName(), "source": args.source, "backend": args.backend, "threads": args.threads,
        "hop_s": args.hop, "models": [m.describe() for m in models.all], "seconds": round(wall, 2),
        "distinct frames shown per s": round((end.painted - start.painted) / wall, 2),
        "frames captured per s": round((end.captured - start.captured) / wall, 2),
        "GUI thread CPU % of one core": round(100 * (end.cpu - start.cpu) / wall, 1),
        "hops per s": round((end.hops - start.hops) / wall, 2), "hops skipped": end.skips - start.skips})
    for key, value in report.fields.items():
        print(f"{key:>30}: {value}")
    if args.out:
        report.save(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
