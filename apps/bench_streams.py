"""How many live streams one ``avlive`` process sustains: N world scenes at real-time pace, one
inference thread, each shared model called once per hop for all streams.

    python -m apps.bench_streams                                  # 1 and 8 streams × 60 s, demo models
    python -m apps.bench_streams --streams 1 2 4 8 12 --seconds 60 --out out/bench-streams
    python -m apps.bench_streams --streams 8 --no-alone           # without the one-stream runs per seed

For each N in ``--streams`` it runs ``avlive --source synthetic:S1 ... --source synthetic:SN
--duration S --jsonl ... --events-out ...`` as a user would (a subprocess; test seeds 200000 +
i of the frozen ``bench`` preset; no recording, no window) and prints, per run: hops run and
skipped per stream (a skipped hop is one inference could not serve in time), the lag p99 (audio
that arrived while a hop computed), the process's CPU use (user + system seconds of the
subprocess over its wall time, start-up included; 100 % = one core), the model calls and their batch sizes, and
the onset-to-label latency over every stream's reference events (``apps.bench_live``'s
definition: the first JSON line showing the event's class active, a missed event counting as
infinitely late), pooled and per stream. With ``--alone`` (the default) each seed of the
largest N also runs alone, and the table compares each stream's latency p95 in the N-stream
run with the same scene's alone, with the per-event changes behind it: their median, and how
many events were labelled on another hop (a window cut a few milliseconds later holds other
audio, so its scores, and sometimes the hop that first shows a label, differ).

Writes ``OUT/bench-streams.json`` (with the machine description) and ``OUT/streams.png``
(latency p95 and CPU against the number of streams) and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from apps.bench_live import onset_latencies, read_jsonl
from models.evaluation.benchmark import machine_description
from models.world import Scene, get_preset
from models.world.evalsets import reference_events, source_name
from realtime.rolling import latency_percentile

FIRST_SEED = 200_000


@dataclass
class StreamFigures:
    """One stream of one run."""

    name: str
    hops: int
    skips: int
    lag_p99_ms: float
    events: int
    missed: int
    latency_p50_ms: float
    latency_p95_ms: float
    latencies_ms: list[float] = field(default_factory=list)  # per reference event, in scene order; inf: missed


@dataclass
class RunFigures:
    """One ``avlive`` run with ``n`` streams."""

    n: int
    seconds: float
    wall_s: float
    cpu_s: float
    model_calls: str
    streams: list[StreamFigures] = field(default_factory=list)
    latency_p50_ms: float = math.inf
    latency_p95_ms: float = math.inf
    missed: int = 0
    events: int = 0

    @property
    def cpu_percent(self) -> float:
        return 100.0 * self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def skips(self) -> int:
        return sum(s.skips for s in self.streams)


def _ms(seconds: float) -> float:
    return seconds * 1e3 if math.isfinite(seconds) else math.inf


def run_streams(seeds: Sequence[int], seconds: float, out: Path, extra: Sequence[str]) -> RunFigures:
    """``avlive`` with one ``--source synthetic:SEED`` per seed; its figures."""
    n = len(seeds)
    jsonl, events = out / f"n{n}.jsonl", out / f"n{n}-events.tsv"
    if n == 1:
        jsonl, events = out / f"alone-{seeds[0]}.jsonl", out / f"alone-{seeds[0]}-events.tsv"
    cmd = [sys.executable, "-m", "apps.avlive", *[a for s in seeds for a in ("--source", f"synthetic:{s}")],
           "--duration", f"{seconds:g}", "--jsonl", str(jsonl), "--events-out", str(events), "--headless", *extra]
    print("$ " + " ".join(cmd[2:]), file=sys.stderr, flush=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"avlive exited {done.returncode} with {n} streams:\n{done.stderr.strip()}")
    calls = next((line.split("model calls:", 1)[1].strip() for line in done.stderr.splitlines()
                  if "model calls:" in line), "one stream: one call per model run")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    figures = RunFigures(n, seconds, wall, cpu, calls)
    records = read_jsonl(jsonl)
    world = get_preset("bench")
    pooled = []
    for seed in seeds:
        name = source_name(seed)
        mine = [r for r in records if r["source"] == name and not r.get("final")]
        final = [r for r in records if r["source"] == name and r.get("final")]
        counters = (final or mine)[-1]["counters"]
        reference = reference_events(Scene(world, seed), seconds)
        latencies = onset_latencies(reference, mine)
        pooled.append(latencies)
        lags = [r["lag_ms"] for r in mine if "lag_ms" in r] or [0.0]
        figures.streams.append(StreamFigures(
            name, counters["hops"], counters["skips"], float(np.percentile(lags, 99)), len(reference),
            int(np.isinf(latencies).sum()), _ms(latency_percentile(latencies, 50)),
            _ms(latency_percentile(latencies, 95)), [_ms(x) for x in latencies]))
    every = np.concatenate(pooled)
    figures.latency_p50_ms = _ms(latency_percentile(every, 50))
    figures.latency_p95_ms = _ms(latency_percentile(every, 95))
    figures.missed, figures.events = int(np.isinf(every).sum()), int(every.size)
    return figures


def _fmt(ms: float) -> str:
    return "inf" if not math.isfinite(ms) else f"{ms:.0f}"


def table(runs: Sequence[RunFigures]) -> str:
    lines = ["| streams | hops | skipped | lag p99 (ms, worst stream) | CPU (% of one core) | model calls × batch | "
             "latency p50 | p95 (ms, all streams) | missed |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r.n} | {sum(s.hops for s in r.streams)} | {r.skips} | "
                     f"{max(s.lag_p99_ms for s in r.streams):.1f} | {r.cpu_percent:.0f} | {r.model_calls} | "
                     f"{_fmt(r.latency_p50_ms)} | {_fmt(r.latency_p95_ms)} | {r.missed} of {r.events} |")
    return "\n".join(lines)


#: An event whose latency changed by more than this between the runs was labelled on another hop
#: (the demo labeler's hop is 0.25 s), not just later on the same one.
MOVED_MS = 150.0


def event_changes(alone: StreamFigures, many: StreamFigures) -> np.ndarray:
    """Milliseconds each reference event's label came later in the many-stream run than alone,
    over the events labelled in both."""
    a, b = np.asarray(alone.latencies_ms, float), np.asarray(many.latencies_ms, float)
    both = np.isfinite(a) & np.isfinite(b)
    return b[both] - a[both]


def comparison(many: RunFigures, alone: dict[str, RunFigures]) -> str:
    """Each stream's latency p95 in the N-stream run against the same scene alone, and the
    per-event changes behind it: their median (what the shared inference thread adds to a hop)
    and the events labelled on another hop (more than ``MOVED_MS`` either way) or missed in only
    one of the two runs (missed with N streams counts as later)."""
    lines = [f"| stream | p95 alone (ms) | p95 in {many.n} streams (ms) | change (ms) | per event: median change (ms) | "
             f"events on another hop or missed in one run (later / earlier) | skipped alone / in {many.n} |",
             "|---|---|---|---|---|---|---|"]
    for s in many.streams:
        a = alone[s.name].streams[0]
        both = math.isfinite(a.latency_p95_ms) and math.isfinite(s.latency_p95_ms)
        change = f"{s.latency_p95_ms - a.latency_p95_ms:+.0f}" if both else "n/a (a missed event sets p95)"
        per_event = event_changes(a, s)
        median = f"{np.median(per_event):+.0f}" if per_event.size else "n/a"
        alone_ms, many_ms = np.asarray(a.latencies_ms, float), np.asarray(s.latencies_ms, float)
        lost = int((np.isinf(many_ms) & np.isfinite(alone_ms)).sum())  # missed only with N streams
        found = int((np.isinf(alone_ms) & np.isfinite(many_ms)).sum())
        moved = f"{int((per_event > MOVED_MS).sum()) + lost} / {int((per_event < -MOVED_MS).sum()) + found}"
        lines.append(f"| {s.name} | {_fmt(a.latency_p95_ms)} | {_fmt(s.latency_p95_ms)} | {change} | {median} | "
                     f"{moved} | {a.skips} / {s.skips} |")
    return "\n".join(lines)


def plot(runs: Sequence[RunFigures], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = [r.n for r in runs]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    p95 = [r.latency_p95_ms if math.isfinite(r.latency_p95_ms) else np.nan for r in runs]
    ax.plot(ns, p95, "o-", color="tab:blue", label="onset-to-label p95 (ms)")
    ax.plot(ns, [r.latency_p50_ms for r in runs], "o--", color="tab:blue", alpha=0.6, label="p50 (ms)")
    ax.set_xlabel("simultaneous real-time streams (one process)")
    ax.set_ylabel("latency (ms)")
    cpu = ax.twinx()
    cpu.plot(ns, [r.cpu_percent for r in runs], "s-", color="tab:red", label="CPU (% of one core)")
    cpu.set_ylabel("CPU (% of one core)")
    handles = ax.get_legend_handles_labels()[0] + cpu.get_legend_handles_labels()[0]
    ax.legend(handles, [h.get_label() for h in handles], loc="upper left", fontsize=8)
    ax.set_title("avlive demo stack, streams per process")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m apps.bench_streams", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--streams", type=int, nargs="+", default=[1, 8], help="numbers of simultaneous streams to run")
    p.add_argument("--seconds", type=float, default=60.0, help="stream seconds per run")
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads (avlive --threads)")
    p.add_argument("--alone", action=argparse.BooleanOptionalAction, default=True,
                   help="also run each seed of the largest N alone, to compare every stream's latency p95")
    p.add_argument("--out", type=Path, default=Path("out/bench-streams"), help="where the JSON lines, TSVs, JSON and plot go")
    p.add_argument("avlive_args", nargs="*", metavar="-- AVLIVE_ARGS",
                   help="more avlive options after --, e.g. -- --labeler runs/x --precision int8")
    args = p.parse_args(argv)
    if any(n < 1 or n > 1000 for n in args.streams):
        p.error(f"--streams: expected numbers in [1, 1000], found {args.streams}")
    if not args.seconds > 0:
        p.error(f"--seconds: expected > 0, found {args.seconds}")
    args.out.mkdir(parents=True, exist_ok=True)
    extra = ["--threads", str(args.threads), *args.avlive_args]
    runs = [run_streams([FIRST_SEED + i for i in range(n)], args.seconds, args.out, extra)
            for n in sorted(set(args.streams))]
    largest = runs[-1]
    alone: dict[str, RunFigures] = {}
    if args.alone and largest.n > 1:
        if runs[0].n == 1:  # the one-stream run of the first seed is already there
            alone[runs[0].streams[0].name] = runs[0]
        for i in range(len(alone), largest.n):
            r = run_streams([FIRST_SEED + i], args.seconds, args.out, extra)
            alone[r.streams[0].name] = r
    machine = machine_description()
    print(f"\n{machine.get('cpu_model', 'CPU')}, {args.threads} ONNX Runtime threads, {args.seconds:g} s per run, "
          f"extra avlive options: {' '.join(args.avlive_args) or 'none'}\n")
    print(table(runs))
    if alone:
        print()
        print(comparison(largest, alone))
    report = {"machine": machine, "seconds": args.seconds, "threads": args.threads, "avlive_args": args.avlive_args,
              "runs": [dict(asdict(r), cpu_percent=r.cpu_percent) for r in runs],
              "alone": {k: dict(asdict(r), cpu_percent=r.cpu_percent) for k, r in alone.items()}}
    (args.out / "bench-streams.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    if len(runs) > 1:
        plot(runs, args.out / "streams.png")
        print(f"\nwrote {args.out / 'bench-streams.json'} and {args.out / 'streams.png'}")
    else:
        print(f"\nwrote {args.out / 'bench-streams.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
