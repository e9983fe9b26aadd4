"""The live pipeline end to end, scored: ``avlive`` on unseen world scenes at real-time pacing.

    python -m apps.bench_live                                   # demo models, 3 test seeds × 150 s
    python -m apps.bench_live --seeds 200000 200001 200002 200003 --seconds 120 --out out/bench-live
    python -m apps.bench_live --models runs/slowfast-lite runs/l3-lite --threads 2
    python -m apps.bench_live --labelers demo runs/crnn runs/baseline   # one table row per labeler

For each seed it runs ``avlive --source synthetic:SEED --duration S --events-out … --jsonl …
--scores-out …`` as a user would (a subprocess, real-time pacing, ONNX Runtime by default), then
prints:

* **Sound event detection** of the events TSV against the world's reference events
  (``models.world.evalsets.reference_events``), scored with sed_eval when it is installed (the
  ``dev`` extra; else with ``models.evaluation.metrics``, which the tests check against sed_eval):
  segment-based F1 on 1 s segments, event-based F1 with a 250 ms onset collar and an offset
  collar of max(250 ms, 20 % of the event), and onset-only event F1; micro and macro.
* **Pointing game** of the live heatmap, from the JSON lines: every freshly computed heatmap
  whose frame (the frame the scheduler paired with the localizer's window) is a localization
  hop of ``models.l3.evaluation.is_localization_hop`` (≥ 2 visible objects, exactly one heard, no
  other visible object of its class); a hit is a peak inside the sounding object's box.
* **Onset-to-label latency**: for each reference event, the first JSON line, at or after its
  onset and before its offset + 1 s, in which its class is an *active event*; latency = that
  line's stream time − the onset + the line's processing time (``latency_ms.total``, the hop's
  work after its audio arrived). At real-time pacing stream time is wall time from the start of
  capture, so this is what a user watching the output sees, less the capture block (≤ 20 ms for
  the synthetic source). A missed event counts as infinitely late: p50/p95 are over all
  reference events, and the number missed is printed. The per-stage breakdown is the mean and
  p95 of each ``latency_ms`` stage (copy = ring reads and resampling; model:NAME = front end +
  network, as the exported graphs include the front end; post = smoothing and hysteresis;
  sinks = writing the previous hop's outputs).
* **PSDS1 and PSDS2** (``models.evaluation.psds``, DCASE task 4's two scenarios) of the
  labeler's raw scores (``--scores-out``: one row per frame or per run) over all seeds together,
  threshold-free, so they do not depend on the rolling-label setting. Reference events of one
  class that overlap (the world has some) are joined first, as PSDS needs; classes without a
  reference event in the run are left out (the number scored is printed); a labeler whose labels
  are not the world's gets no PSDS.

**Several labelers** (``--labelers A B ...``; each a run folder, a model file or ``demo``, the
demo labeler): each runs through the same seeds, its files under ``OUT/<n>-<name>/``, and a table
compares them, one row each: event-based F1 micro and macro (250 ms collar), segment-based F1
micro, onset-only F1 micro, PSDS1, PSDS2, onset-to-label latency p50 / p95 and events missed.
Every labeler runs with the same localizer (``--localizer``, the demo localizer unless told;
``none`` for none), so each row has the load and the capture rate a user's ``avlive`` run has;
the full report above (pointing game, per-stage latency) is for the first labeler's runs. Without ``--labelers`` the models are ``--models`` (default: the demo models), as
before, and the table has one row.

**Real sounds** (``--soundscapes DESED_DIR``): instead of world scenes, held-out DCASE
soundscapes (``metadata/eval/eval.tsv`` + ``audio/eval/``, as ``apps.build_real_sounds``
writes them; or any DESED-layout folder's validation set when it has no eval set) are joined
into ``--playlists`` files of ``--per-playlist`` soundscapes each and played through ``avlive
--source FILE`` at real-time pace, with no localizer (no pictures); the reference is each
soundscape's strong labels, shifted to its place in the file, and the classes are the
reference's. Example: ``python -m apps.bench_live --soundscapes out/real-sounds/desed --labelers
models/demo/real-sounds``.

``--fast`` runs avlive with ``--no-realtime`` (every hop, as fast as the machine goes): the
accuracy figures stay valid, but stream time is no longer wall time, so the latency figures mean
nothing; it is for tests and quick comparisons, never for latency.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from models.core.events import LabeledEvent, read_strong_tsv
from models.l3.evaluation import hop_truth, is_localization_hop
from models.evaluation.metrics import event_based_metrics, segment_based_metrics
from models.evaluation.psds import PSDS1, PSDS2, PsdsSetting, merge_overlapping, psds, read_score_tsv
from models.world import CLASS_NAMES, Scene, get_preset, seed_split
from models.world.evalsets import reference_events, source_name
from realtime.models import DEMO_DIR
from realtime.rolling import LABEL_DEADLINE_S, latency_percentile  # LABEL_DEADLINE_S: later is missed

ONSET_COLLAR_S = 0.25
OFFSET_FRACTION = 0.2
SEGMENT_S = 1.0


@dataclass(frozen=True)
class BenchInput:
    """One stream the benchmark plays: a world scene or a file of joined soundscapes.

    Attributes:
        name: the source name avlive gives it (the events TSV's file name).
        source: the ``--source`` argument.
        seconds: stream seconds played.
        reference: its reference events (file name ``name``).
        scene: the world scene (None for a file): the pointing game needs it.
        stem: the output files' stem (``OUT/STEM.events.tsv`` …; a world scene's is its seed).
    """

    name: str
    source: str
    seconds: float
    reference: list[LabeledEvent]
    scene: Scene | None = None
    stem: str = ""


def world_inputs(seeds: Sequence[int], seconds: float) -> list[BenchInput]:
    world = get_preset("bench")
    out = []
    for seed in seeds:
        scene = Scene(world, seed)
        out.append(BenchInput(source_name(seed), f"synthetic:{seed}", seconds, reference_events(scene, seconds), scene,
                              str(seed)))
    return out


def soundscape_inputs(root: Path, playlists: int, per_playlist: int, out: Path) -> list[BenchInput]:
    """The held-out soundscapes of a DESED-layout folder (its eval set, else its validation set)
    joined into ``playlists`` WAV files of ``per_playlist`` each (the first ones in file order),
    written into ``out``."""
    from models.datasets.from_world import write_wav
    from models.datasets.soundscapes import join_soundscapes, soundscape_names

    split = "eval" if (root / "metadata" / "eval" / "eval.tsv").is_file() else "validation"
    try:
        names = soundscape_names(root, split)
    except FileNotFoundError as e:
        raise SystemExit(f"--soundscapes: {e}") from None
    if len(names) < playlists * per_playlist:
        raise SystemExit(f"--soundscapes {root}: {len(names)} soundscapes in its {split} set, fewer than --playlists × "
                         f"--per-playlist = {playlists * per_playlist}")
    out.mkdir(parents=True, exist_ok=True)
    inputs = []
    for k in range(playlists):
        joined = join_soundscapes(root, split, names[k * per_playlist:(k + 1) * per_playlist], f"soundscapes-{k + 1}.wav")
        path = write_wav(out / joined.name, joined.audio, joined.sample_rate)
        inputs.append(BenchInput(joined.name, str(path), joined.seconds, joined.events, None, path.stem))
    return inputs


@dataclass(frozen=True)
class SeedRun:
    """What one ``avlive`` run left behind."""

    name: str
    seconds: float
    events_tsv: Path
    jsonl: Path
    wall_s: float
    scores_tsv: Path | None = None


def run_avlive(inp: BenchInput, out: Path, extra_args: Sequence[str], *, fast: bool = False) -> SeedRun:
    """``avlive --source SOURCE`` for the input's seconds of stream time at real-time pace
    (``fast``: ``--no-realtime``, as fast as it goes), with the labeler's scores in
    ``OUT/NAME.scores.tsv``."""
    stem = inp.stem
    tsv, jsonl, scores = out / f"{stem}.events.tsv", out / f"{stem}.jsonl", out / f"{stem}.scores.tsv"
    seconds = inp.seconds
    cmd = [sys.executable, "-m", "apps.avlive", "--source", inp.source, "--duration", f"{seconds:g}",
           "--events-out", str(tsv), "--jsonl", str(jsonl), "--scores-out", str(scores), "--headless",
           *(["--no-realtime"] if fast else []), *extra_args]
    print("$ " + " ".join(cmd[2:]), file=sys.stderr, flush=True)
    t0 = time.monotonic()
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.monotonic() - t0
    if done.returncode != 0:
        raise SystemExit(f"avlive exited {done.returncode} on {inp.name}:\n{done.stderr.strip()}")
    return SeedRun(inp.name, seconds, tsv, jsonl, wall, scores)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


# ------------------------------------------------------------------------------------ SED scores


def sed_scores(reference: list[LabeledEvent], estimated: list[LabeledEvent], files: dict[str, float],
               labels: Sequence[str] = CLASS_NAMES) -> dict[str, float]:
    """Segment F1 (1 s), event F1 (onset + offset), onset-only event F1: micro and macro, over ``labels``."""
    labels = list(labels)
    try:
        return _sed_eval_scores(reference, estimated, files, labels)
    except ImportError:
        print("sed_eval is not installed (pip install -e .[dev]); scoring with models.evaluation.metrics instead", file=sys.stderr)
    names = list(files)
    seg = segment_based_metrics(reference, estimated, time_resolution=SEGMENT_S, labels=labels, filenames=names)
    ev = event_based_metrics(reference, estimated, ONSET_COLLAR_S, OFFSET_FRACTION, labels=labels, filenames=names)
    on = event_based_metrics(reference, estimated, ONSET_COLLAR_S, OFFSET_FRACTION, evaluate_offset=False,
                             labels=labels, filenames=names)
    return {"scorer": "models.evaluation.metrics", "segment_f1": seg.f1, "segment_f1_macro": seg.macro_f1, "event_f1": ev.f1,
            "event_f1_macro": ev.macro_f1, "onset_f1": on.f1, "onset_f1_macro": on.macro_f1}


def _sed_eval_scores(reference, estimated, files: dict[str, float], labels: list[str]) -> dict[str, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dcase_util imports the deprecated pkg_resources
        import dcase_util
        import sed_eval

    def container(events):
        return dcase_util.containers.MetaDataContainer(
            [{"filename": e.filename, "onset": e.onset, "offset": e.offset, "event_label": e.label} for e in events])

    seg = sed_eval.sound_event.SegmentBasedMetrics(event_label_list=labels, time_resolution=SEGMENT_S)
    ev = sed_eval.sound_event.EventBasedMetrics(event_label_list=labels, t_collar=ONSET_COLLAR_S,
                                                percentage_of_length=OFFSET_FRACTION)
    on = sed_eval.sound_event.EventBasedMetrics(event_label_list=labels, t_collar=ONSET_COLLAR_S,
                                                percentage_of_length=OFFSET_FRACTION, evaluate_offset=False)
    ref, est = container(reference), container(estimated)
    for name, seconds in files.items():
        r, e = ref.filter(filename=name), est.filter(filename=name)
        seg.evaluate(r, e, evaluated_length_seconds=seconds)
        ev.evaluate(r, e)
        on.evaluate(r, e)

    def f1(metric, average: str) -> float:
        results = metric.results_overall_metrics() if average == "micro" else metric.results_class_wise_average_metrics()
        return float(results["f_measure"]["f_measure"])

    return {"scorer": "sed_eval", "segment_f1": f1(seg, "micro"), "segment_f1_macro": f1(seg, "macro"),
            "event_f1": f1(ev, "micro"), "event_f1_macro": f1(ev, "macro"), "onset_f1": f1(on, "micro"),
            "onset_f1_macro": f1(on, "macro")}


# ------------------------------------------------------------------------------------ PSDS


def psds_scores(score_files: dict[str, Path], reference: list[LabeledEvent], files: dict[str, float],
                settings: Sequence[PsdsSetting] = (PSDS1, PSDS2)) -> tuple[list[float], int] | None:
    """PSDS of each setting over all files together, and the number of classes scored; None when
    the labeler's labels do not cover the reference's (a labeler of other classes).

    Args:
        score_files: file name (``synthetic:SEED``) → its ``--scores-out`` TSV.
        reference: the reference events of those files.
        files: file name → seconds.
    """
    tables = {name: read_score_tsv(path) for name, path in score_files.items()}
    labels = next(iter(tables.values())).labels
    if not {e.label for e in reference} <= set(labels):
        return None
    merged = merge_overlapping(reference)
    results = [psds(tables, merged, files, s, drop_empty_classes=True) for s in settings]
    return [r.value for r in results], len(results[0].labels)


# ------------------------------------------------------------------------------------ pointing


def pointing_hits(scene: Scene, records: list[dict[str, Any]], window_s: float, frame_at_centre: bool) -> list[bool]:
    """Pointing-game outcomes of the fresh heatmaps of one run whose frame is a localization hop.

    The frame is the one the scheduler paired with the localizer window ending at the heatmap's
    ``stream_time`` (its centre or end, nearest frame)."""
    hits = []
    h, w = scene.config.frame_height, scene.config.frame_width
    for r in records:
        hm = r["heatmap"]
        if not hm or not hm["fresh"]:
            continue
        t = hm["stream_time"] - (0.5 * window_s if frame_at_centre else 0.0)
        frame = int(round(t * scene.config.fps))
        if frame < 0:
            continue
        truth = hop_truth(scene, frame)
        if not is_localization_hop(truth):
            continue
        x0, y0, x1, y1 = truth.heard_visible[0].box
        x, y = hm["peak"]
        x, y = min(max(x, 0), w - 1), min(max(y, 0), h - 1)
        hits.append(bool(x0 <= x < x1 and y0 <= y < y1))
    return hits


# ------------------------------------------------------------------------------------ latency


def onset_latencies(reference: list[LabeledEvent], records: list[dict[str, Any]]) -> np.ndarray:
    """Seconds from each reference event's onset to the first line showing its class active
    (``inf`` when missed), see the module docstring."""
    times = np.array([r["stream_time"] for r in records])
    out = np.full(len(reference), np.inf)
    for i, e in enumerate(reference):
        lo, hi = np.searchsorted(times, e.onset), np.searchsorted(times, e.offset + LABEL_DEADLINE_S, side="right")
        for r in records[lo:hi]:
            if any(a["label"] == e.label for a in r["active"]):
                out[i] = r["stream_time"] - e.onset + r["latency_ms"]["total"] / 1e3
                break
    return out


def stage_breakdown(records: list[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """Stage → (mean, p95) milliseconds over the hops that ran it."""
    stages: dict[str, list[float]] = {}
    for r in records:
        for k, v in r["latency_ms"].items():
            stages.setdefault(k, []).append(v)
    return {k: (float(np.mean(v)), float(np.percentile(v, 95))) for k, v in stages.items()}


def plot_stages(runs: Sequence[tuple[str, dict[str, tuple[float, float]]]], path: Path) -> None:
    """One stacked bar per run: the mean milliseconds of each stage of a hop (copy, each model,
    post, sinks), so where a hop's time goes can be seen at a glance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = [k for k in dict.fromkeys(k for _, b in runs for k in b) if k != "total"]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.6 * len(runs) + 2), 3.8))
    bottom = np.zeros(len(runs))
    for stage in stages:
        values = np.array([b.get(stage, (0.0, 0.0))[0] for _, b in runs])
        ax.bar(range(len(runs)), values, bottom=bottom, label=stage)
        bottom += values
    ax.set_xticks(range(len(runs)))
    ax.set_xticklabels([name for name, _ in runs], rotation=10, fontsize=8)
    ax.set_ylabel("ms per hop (mean)")
    ax.set_title("where a hop's time goes, per stage")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@dataclass
class LabelerRuns:
    """What the runs of one labeler over all seeds gave."""

    name: str
    reference: list[LabeledEvent]
    estimated: list[LabeledEvent]
    files: dict[str, float]
    score_files: dict[str, Path]
    latencies: np.ndarray
    records: list[dict[str, Any]]
    hits: list[bool]


def labeler_name(spec: str | None, index: int) -> str:
    """A short name for a ``--labelers`` entry (the run folder's or file's name, or demo)."""
    if spec is None:
        return "models"
    if spec == "demo":
        return "demo"
    p = Path(spec)
    return (p.parent.name if p.name in ("model.onnx", "metadata.json") else p.stem if p.is_file() else p.name) or f"labeler{index}"


def run_labeler(args, extra: list[str], out: Path, inputs: Sequence[BenchInput]) -> LabelerRuns:
    """Every input through avlive with ``extra`` arguments, files in ``out``; per-input lines printed."""
    out.mkdir(parents=True, exist_ok=True)
    reference, estimated, files, score_files = [], [], {}, {}
    hits: list[bool] = []
    latencies, records_all = [], []
    for inp in inputs:
        run = run_avlive(inp, out, extra, fast=args.fast)
        ref = inp.reference
        records = [r for r in read_jsonl(run.jsonl) if not r["final"]]
        est = read_strong_tsv(run.events_tsv) if run.events_tsv.stat().st_size else []
        reference += ref
        estimated += est
        files[inp.name] = inp.seconds
        score_files[inp.name] = run.scores_tsv
        seed_hits = ([] if inp.scene is None else
                     pointing_hits(inp.scene, records, args.localizer_window, args.frame_at == "centre"))
        hits += seed_hits
        latencies.append(onset_latencies(ref, records))
        records_all += records
        last = records[-1]["counters"] if records else {}
        print(f"{inp.name}: {len(ref)} reference / {len(est)} detected events, {len(seed_hits)} pointing hops, "
              f"wall {run.wall_s:.1f} s for {inp.seconds:g} s, counters {last}", flush=True)
    return LabelerRuns("", reference, estimated, files, score_files, np.concatenate(latencies), records_all, hits)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m apps.bench_live", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[200_000, 200_001, 200_002], help="test seeds of the world")
    p.add_argument("--seconds", type=float, default=150.0, help="stream seconds per seed")
    p.add_argument("--out", type=Path, default=Path("out/bench-live"), help="where the TSVs and JSON lines go")
    p.add_argument("--models", nargs="+", default=[], metavar="PATH", help="models (default: the demo models)")
    p.add_argument("--labelers", nargs="+", default=[], metavar="PATH|demo",
                   help="labelers to compare (run folders, model files, demo), each through the same seeds and "
                        "with --localizer (not with --models)")
    p.add_argument("--localizer", default=None, metavar="PATH|none",
                   help="with --labelers: the localizer every labeler runs with (default: the demo localizer)")
    p.add_argument("--backend", default="onnxruntime", choices=("onnxruntime", "torch"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--hop", type=float, default=None, help="seconds between inferences (default: avlive's)")
    p.add_argument("--localizer-window", type=float, default=1.0, help="the localizer's audio window, seconds")
    p.add_argument("--frame-at", choices=("centre", "end"), default="centre", help="which instant the localizer's frame shows")
    p.add_argument("--soundscapes", type=Path, default=None, metavar="DESED_DIR",
                   help="play held-out real soundscapes instead of world scenes (see above); no localizer")
    p.add_argument("--playlists", type=int, default=3, help="with --soundscapes: files to play")
    p.add_argument("--per-playlist", type=int, default=15, help="with --soundscapes: soundscapes per file")
    p.add_argument("--fast", action="store_true",
                   help="run avlive with --no-realtime (as fast as it goes): accuracy figures only, the latency "
                        "figures are not meaningful; for tests and quick comparisons")
    args = p.parse_args(argv)

    for seed in args.seeds:
        try:
            split = seed_split(seed)
        except ValueError:
            split = None
        if split != "test":
            p.error(f"--seeds: expected test seeds (200000-200999, never trained or tuned on), found {seed}")
    if args.soundscapes is not None and not args.soundscapes.is_dir():
        p.error(f"--soundscapes {args.soundscapes}: no such folder (expected a DESED layout)")
    if args.labelers and args.models:
        p.error("--labelers and --models: give one (with --labelers, the localizer is --localizer)")
    if args.localizer is not None and not args.labelers:
        p.error("--localizer: only with --labelers (else give it in --models)")
    for spec in [*args.labelers, *([args.localizer] if args.localizer not in (None, "none") else [])]:
        if spec != "demo" and not Path(spec).exists():
            p.error(f"{spec}: no such file or folder (expected a run folder, a model file or demo)")
    args.out.mkdir(parents=True, exist_ok=True)
    common = ["--backend", args.backend, "--threads", str(args.threads)]
    if args.hop is not None:
        common += ["--hop", f"{args.hop:g}"]

    # (name, avlive arguments, output folder) per labeler
    plans: list[tuple[str, list[str], Path]] = []
    if not args.labelers:
        plans.append((labeler_name(None, 0) if args.models else "demo",
                      common + (["--models", *args.models] if args.models else []), args.out))
    else:
        demo_localizer = DEMO_DIR / "localizer"
        localizer = args.localizer or (str(demo_localizer) if demo_localizer.exists() and args.soundscapes is None
                                       else "none")
        for k, spec in enumerate(args.labelers):
            path = str(DEMO_DIR / "labeler") if spec == "demo" else spec
            name = labeler_name(spec, k)
            plans.append((name, common + ["--labeler", path, "--localizer", localizer],
                          args.out / f"{k + 1}-{name}"))

    if args.soundscapes is not None:
        inputs = soundscape_inputs(args.soundscapes, args.playlists, args.per_playlist, args.out / "soundscapes")
        labels = sorted({e.label for inp in inputs for e in inp.reference})
        what = f"{len(inputs)} files of {args.per_playlist} held-out soundscapes from {args.soundscapes}"
    else:
        inputs, labels = world_inputs(args.seeds, args.seconds), list(CLASS_NAMES)
        what = f"{len(args.seeds)} unseen seeds × {args.seconds:g} s"
    results: list[LabelerRuns] = []
    for name, extra, out in plans:
        if len(plans) > 1:
            print(f"\nlabeler {name}", flush=True)
        runs = run_labeler(args, extra, out, inputs)
        runs.name = name
        results.append(runs)
    if args.soundscapes is not None:  # what the labelers said counts too (a class no soundscape holds)
        labels = sorted({*labels, *(e.label for r in results for e in r.estimated)})

    first = results[0]
    s = sed_scores(first.reference, first.estimated, first.files, labels)
    lat = first.latencies
    missed = int(np.isinf(lat).sum())
    show = lambda x: "inf" if math.isinf(x) else f"{1e3 * x:.0f} ms"  # noqa: E731
    print(f"\n{what}, {len(first.reference)} reference events "
          f"(scored with {s['scorer']}){', labeler ' + first.name if len(results) > 1 else ''}")
    print(f"segment-based F1 (1 s):      micro {s['segment_f1']:.3f}   macro {s['segment_f1_macro']:.3f}   (target micro ≥ 0.8)")
    print(f"event-based F1 (250 ms):     micro {s['event_f1']:.3f}   macro {s['event_f1_macro']:.3f}   (target micro ≥ 0.6)")
    print(f"onset-only event F1:         micro {s['onset_f1']:.3f}   macro {s['onset_f1_macro']:.3f}")
    ps = psds_scores(first.score_files, first.reference, first.files)
    if ps is None:
        print("PSDS: not scored (the labeler's labels are not the world's)")
    else:
        (p1, p2), n = ps
        print(f"PSDS1 / PSDS2 (raw scores):  {p1:.3f} / {p2:.3f}   ({n} classes with reference events)")
    if first.hits:
        print(f"pointing game (live heatmap): {np.mean(first.hits):.3f} on {len(first.hits)} localization hops   (target ≥ 0.8)")
    else:
        print("pointing game: no localization hops (no localizer ran, or no hop qualified)")
    p50, p95 = (latency_percentile(lat, q) for q in (50, 95))
    print(f"onset-to-label latency:      p50 {show(p50)}   p95 {show(p95)}   missed {missed} of {len(lat)}   "
          f"(target p95 ≤ 350 ms){'   [--fast: not real time, latency not meaningful]' if args.fast else ''}")
    print("per-stage latency (ms, mean / p95 over hops):")
    for k, (mean, p95_stage) in sorted(stage_breakdown(first.records).items()):
        print(f"  {k:<28} {mean:7.2f} / {p95_stage:7.2f}")

    plot_stages([(r.name, stage_breakdown(r.records)) for r in results], args.out / "stages.png")
    print(f"per-stage plot: {args.out / 'stages.png'}")

    print(f"\nlabelers compared (event F1 with a 250 ms collar; PSDS over all seeds; latency"
          f"{' not meaningful with --fast' if args.fast else ''}):")
    width = max(8, *(len(r.name) for r in results))
    print(f"  {'labeler':<{width}}  event-F1 micro  macro  segment-F1  onset-F1   PSDS1   PSDS2   latency p50      p95  missed")
    for r in results:
        f = sed_scores(r.reference, r.estimated, r.files, labels) if r is not first else s
        ps = psds_scores(r.score_files, r.reference, r.files)
        p1, p2 = ("    n/a", "    n/a") if ps is None else (f"{ps[0][0]:7.3f}", f"{ps[0][1]:7.3f}")
        lo, hi = (latency_percentile(r.latencies, q) for q in (50, 95))
        print(f"  {r.name:<{width}}  {f['event_f1']:14.3f}  {f['event_f1_macro']:5.3f}  {f['segment_f1']:10.3f}  "
              f"{f['onset_f1']:8.3f}  {p1}  {p2}  {show(lo):>11}  {show(hi):>7}  {int(np.isinf(r.latencies).sum()):>3} "
              f"of {len(r.latencies)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
