"""Tune a labeler's rolling-label setting (smoothing, hysteresis, onset/offset shifts) on a
validation scene of the world and store it in the model's metadata.

    python -m apps.tune_labeler runs/slowfast-lite                 # tune on synthetic:100000, print
    python -m apps.tune_labeler runs/slowfast-lite --write         # ... and store it
    python -m apps.tune_labeler models/demo/labeler --seed 100001 --seconds 300

The labeler hears what the live pipeline gives it: every ``--hop`` seconds the window of its
length that ends at the hop (scored offline here, hop by hop, with the same call the pipeline
makes). :func:`realtime.rolling.tune_hysteresis` picks the setting with the best event-based
F1 (250 ms onset collar) against the scene's reference events, with minimum durations of at
most 0.1 s by default (``--min-durations``: each adds to the onset-to-label latency), within
``--max-delay`` seconds of added onset delay when given (the smoothing's group delay plus the
wait a minimum duration makes: ``--max-delay 0.04`` for a frame-level detector that must answer
within a frame), with ``--max-latency`` a bar on the p95 onset-to-label latency it gives on the
tuning stream (``realtime.rolling.onset_latencies``: the hop each row reaches the rolling labels
at, as ``apps.bench_live`` counts live), and with
``--per-class`` on/off thresholds of their own for the classes where that raises it; ``--write`` stores it as
``extra["hysteresis"]`` in every metadata file of the model (``metadata.json`` of a run folder
and the ``model.onnx.json`` sidecar), which the live pipeline reads
(``realtime.rolling.HysteresisConfig.from_metadata``). Only validation seeds are accepted, so
the test seeds stay unseen.

A labeler of real sounds is tuned on real soundscapes instead: ``--soundscapes DESED_DIR`` joins
the folder's validation set (``metadata/validation/validation.tsv``, never its eval set) end to
end, up to ``--seconds``, and tunes against its strong labels::

    python -m apps.tune_labeler runs/real-sounds --soundscapes out/real-sounds/desed --write
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np

from models.core.atomic import atomic_write_text
from models.core.live import FrameScores
from models.core.metadata import sidecar_path
from models.evaluation.metrics import event_based_metrics, segment_based_metrics
from models.world import Scene, get_preset, seed_split
from models.world.cache import render_resampled
from models.world.evalsets import WindowSpan, reference_events, source_name
from realtime.models import ModelError, inspect_model, open_model
from realtime.rolling import (HysteresisConfig, HysteresisGrid, detect_events, latency_percentile, onset_latencies,
                              tune_hysteresis)
from realtime.scheduler import SchedulerConfig

#: Rate the world scene is rendered at by default: what avlive captures a synthetic source at
#: when the demo localizer (48 kHz) runs beside the labeler.
CAPTURE_RATE = 48_000
#: Onset collar of the event-based F1 tuned for and printed (issue 7's live target: 250 ms).
COLLAR_S = 0.25
#: Minimum durations tried by default. An event is shown as active only once it has lasted its
#: minimum duration, so that much is added to every onset-to-label latency; on the demo
#: labeler's validation scene 0.4 s bought 0.006 event F1 (0.816 vs 0.810) for 0.4 s of latency.
LIVE_MIN_DURATIONS = (0.0, 0.1)


class ScoreTrack(NamedTuple):
    """A labeler's scores over a whole stream (:func:`hop_scores`).

    Attributes:
        scores: (T, C) raw scores.
        t0: seconds of row 0 (a hop's end, or a frame's centre).
        step: seconds between rows (the hop, or the frame spacing).
        emitted: (T,) stream seconds at which each row reached the rolling labels: the end of
            the hop whose window gave it (a hop's row: its own time).
    """

    scores: np.ndarray
    t0: float
    step: float
    emitted: np.ndarray


def hop_scores(labeler, audio: np.ndarray, sample_rate: int, hop_s: float) -> ScoreTrack:
    """The score track of ``labeler`` over a whole stream, as the live scheduler would ask for it.

    The labeler is reset first (a streaming labeler starts from its initial state) and called on
    consecutive hops. A window labeler gives one row per hop; a frame-level labeler
    (:class:`models.core.live.FrameScores`) gives its frames, each counted once (the frames newer
    than those of the previous hops, as the rolling labels consume them).

    Args:
        labeler: a ``models.core.live.Labeler`` (``.window``, ``__call__(audio)``).
        audio: ``(n,)`` float32 at ``sample_rate`` (the labeler's rate).
        sample_rate: Hz.
        hop_s: seconds between hops.

    Returns:
        A :class:`ScoreTrack`: row ``i`` describes the time ``t0 + i * step`` seconds.
    """
    n = labeler.window.samples
    hop = int(round(hop_s * sample_rate))
    ends = np.arange(n, len(audio) + 1, hop)
    if len(ends) == 0:
        raise ValueError(f"hop_scores: expected at least {n} samples (one window), found {len(audio)}")
    if hasattr(labeler, "reset"):
        labeler.reset()
    outputs = [labeler(audio[e - n : e]) for e in ends]
    if not isinstance(outputs[0], FrameScores):
        times = ends / sample_rate
        return ScoreTrack(np.stack([np.asarray(o, np.float32) for o in outputs]), float(times[0]), hop_s, times)
    rows, times, emitted, newest = [], [], [], -np.inf
    for end, out in zip(ends, outputs):
        t = end / sample_rate + out.times
        spacing = float(np.median(np.diff(out.times))) if out.frames > 1 else hop_s
        keep = t > newest + 0.5 * spacing
        if keep.any():
            rows.append(out.scores[keep])
            times.append(t[keep])
            emitted.append(np.full(int(keep.sum()), end / sample_rate))
            newest = float(t[keep][-1])
    times_all = np.concatenate(times)
    step = float(np.median(np.diff(times_all)))
    if not np.allclose(np.diff(times_all), step, atol=1e-6):
        raise ValueError("hop_scores: the labeler's frames are not evenly spaced")
    return ScoreTrack(np.concatenate(rows), float(times_all[0]), step, np.concatenate(emitted))


def metadata_files(path: Path) -> list[Path]:
    """The JSON metadata files a model's setting lives in (run folder, demo folder or ``.onnx``)."""
    if path.suffix == ".onnx":
        return [sidecar_path(path)]
    candidates = [path / "metadata.json", sidecar_path(path / "model.onnx")] if path.is_dir() else [sidecar_path(path)]
    return [p for p in candidates if p.is_file()]


def write_hysteresis(files: list[Path], config: HysteresisConfig) -> None:
    """Store ``config`` as ``extra["hysteresis"]`` in each metadata file (atomic writes)."""
    for f in files:
        data = json.loads(f.read_text())
        data.setdefault("extra", {})["hysteresis"] = config.to_dict()
        atomic_write_text(f, json.dumps(data, indent=2) + "\n")


def _figures(name: str, reference, estimated, labels, filename: str) -> str:
    ev = event_based_metrics(reference, estimated, labels=list(labels), filenames=[filename], t_collar=COLLAR_S)
    seg = segment_based_metrics(reference, estimated, labels=list(labels), filenames=[filename], time_resolution=1.0)
    return f"{name:<9} event F1 {ev.f1:.3f} (P {ev.precision:.3f} R {ev.recall:.3f}), segment F1 (1 s) {seg.f1:.3f}"


def _ms(seconds: float) -> str:
    return "inf" if np.isinf(seconds) else f"{seconds * 1e3:.0f} ms"


def _latency_figures(latencies: np.ndarray) -> str:
    p50, p95 = (latency_percentile(latencies, q) for q in (50, 95))
    return (f"onset-to-label latency p50 {_ms(p50)} p95 {_ms(p95)}, "
            f"missed {int(np.isinf(latencies).sum())} of {len(latencies)}")


def _soundscapes(root: Path, sample_rate: int, seconds: float):
    """(audio, reference events, file name) of a DESED folder's validation soundscapes joined,
    as many whole clips as fit in ``seconds``."""
    from models.datasets.soundscapes import join_soundscapes, soundscape_names

    joined = join_soundscapes(root, "validation", soundscape_names(root, "validation"), "validation soundscapes",
                              sample_rate, max_seconds=seconds)
    print(f"{len(joined.events)} events in {joined.seconds:g} s of {root}'s validation soundscapes", file=sys.stderr)
    return joined.audio, joined.events, joined.name


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m apps.tune_labeler", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("model", type=Path, help="a labeler: run folder, demo folder or .onnx")
    p.add_argument("--seed", type=int, default=100_000, help="validation seed of the world (100000-100999)")
    p.add_argument("--preset", default="bench", help="world preset")
    p.add_argument("--seconds", type=float, default=600.0, help="seconds of the scene to tune on")
    p.add_argument("--hop", type=float, default=None,
                   help="live hop the setting is for, seconds (default: the labeler's own hop, else "
                        f"{SchedulerConfig().hop_s:g})")
    p.add_argument("--backend", default="onnxruntime", choices=("onnxruntime", "torch"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--min-durations", type=float, nargs="+", default=list(LIVE_MIN_DURATIONS), metavar="S",
                   help="minimum event durations to try (each adds to the onset-to-label latency)")
    p.add_argument("--max-delay", type=float, default=None, metavar="S",
                   help="onset delay the setting may add at most, seconds: the smoothing's group delay plus the "
                        "wait a minimum duration makes (HysteresisConfig.onset_delay_s; e.g. 0 for a labeler that "
                        "must answer at once; default: no limit)")
    p.add_argument("--max-latency", type=float, default=None, metavar="S",
                   help="p95 onset-to-label latency the setting may reach on the tuning stream, seconds (measured "
                        "offline as apps.bench_live measures it live, without the processing time a live hop adds; "
                        "missed events count as infinitely late): the best F1 among the settings that reach it, "
                        "else the setting closest to it, with a warning (default: no bar)")
    p.add_argument("--capture-rate", type=int, default=CAPTURE_RATE, metavar="HZ",
                   help="render the world scene at this rate and resample it to the labeler's (soxr, as the live "
                        "scheduler does): avlive captures a synthetic source at 48 kHz when the demo localizer runs, "
                        "and a scene rendered at one rate is not the band-limited version of another; 0: render at "
                        "the labeler's rate (avlive --localizer none with a 16 kHz labeler)")
    p.add_argument("--soundscapes", type=Path, default=None, metavar="DESED_DIR",
                   help="tune on the validation soundscapes of a DESED-layout folder instead of a world scene")
    p.add_argument("--per-class", action="store_true",
                   help="then tune the on/off thresholds class by class (class_thresholds): for a detector whose "
                        "scores for some class sit high between that class's events")
    p.add_argument("--write", action="store_true", help="store the setting in the model's metadata")
    args = p.parse_args(argv)

    if args.capture_rate < 0:
        print(f"--capture-rate {args.capture_rate}: expected Hz > 0, or 0 for the labeler's own rate", file=sys.stderr)
        return 2
    try:
        split = seed_split(args.seed)
    except ValueError:
        split = "no"
    if split != "val" and args.soundscapes is None:
        print(f"--seed {args.seed}: expected a validation seed (100000-100999), found a {split} seed", file=sys.stderr)
        return 2
    try:
        model = open_model(inspect_model(args.model), "labeler", backend=args.backend, threads=args.threads)
    except ModelError as e:
        print(e, file=sys.stderr)
        return 2
    labeler = model.model
    sr = labeler.window.sample_rate
    if args.soundscapes is not None:
        try:
            audio, reference, name = _soundscapes(args.soundscapes, sr, args.seconds)
        except (FileNotFoundError, ValueError) as e:
            print(f"--soundscapes: {e}", file=sys.stderr)
            return 2
        args.seconds = audio.size / sr
    else:
        scene = Scene(get_preset(args.preset), args.seed)
        rate = args.capture_rate or sr
        print(f"rendering {args.seconds:g} s of {source_name(args.seed)} at {rate} Hz"
              + (f", resampled to {sr} Hz" if rate != sr else "") + " ...", file=sys.stderr)
        audio = render_resampled([WindowSpan(args.seed, args.seconds, args.seconds)], sr, rate, scene.config)[0]
        reference, name = reference_events(scene, args.seconds), source_name(args.seed)
    hop = args.hop or labeler.window.hop_seconds or SchedulerConfig().hop_s
    scores, t0, step, emitted = hop_scores(labeler, audio, sr, hop)
    labels = list(labeler.labels)
    before = HysteresisConfig.from_metadata(model.metadata) if model.metadata is not None else HysteresisConfig()
    grid = HysteresisGrid(min_duration_s=tuple(args.min_durations))
    try:
        tuned = tune_hysteresis(scores, step, reference, labels, grid, t0=t0, end_time=args.seconds,
                                per_class=args.per_class, max_delay_s=args.max_delay, max_latency_s=args.max_latency,
                                emitted=emitted, t_collar=COLLAR_S)
    except ValueError as e:
        print(f"--max-delay: {e}", file=sys.stderr)
        return 2
    what = "hops" if step == hop else f"frames ({hop:g} s hops)"
    print(f"{len(scores)} {what} of {step:g} s, {len(reference)} reference events")
    for title, cfg in (("current", before), ("tuned", tuned)):
        est = detect_events(scores, step, labels, cfg, name, t0=t0, end_time=args.seconds)
        latencies = onset_latencies(scores, step, reference, labels, cfg, t0=t0, emitted=emitted)
        print(_figures(title, reference, est, labels, name) + ", " + _latency_figures(latencies))
    p95 = latency_percentile(latencies, 95)  # the tuned setting's
    if args.max_latency is not None and p95 > args.max_latency + 1e-9:
        print(f"warning: no setting of the grid brings the p95 onset-to-label latency to {args.max_latency * 1e3:.0f} ms "
              f"on this stream; the tuned one is the closest ({_ms(p95)})", file=sys.stderr)
    print("tuned setting:", json.dumps(tuned.to_dict()))
    model.close()
    if args.write:
        files = metadata_files(args.model)
        if not files:
            print(f"{args.model}: no metadata file to write (expected metadata.json or a .onnx.json sidecar)", file=sys.stderr)
            return 2
        write_hysteresis(files, tuned)
        print("written to " + ", ".join(str(f) for f in files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
