"""One benchmark command: ``python -m apps.bench WHAT [options]``, each WHAT one of avlive's
benchmarks (its options after it; ``python -m apps.bench WHAT --help`` lists them).

    python -m apps.bench models [--quick]     # the model table per backend and batch (apps.bench_models)
    python -m apps.bench live                 # accuracy and onset-to-label latency live (apps.bench_live)
    python -m apps.bench streams              # streams one process sustains (apps.bench_streams)
    python -m apps.bench e2e                  # waveform in, scores out per hop, against the straightforward way
    python -m apps.bench frontend             # the front end per window and per hop
    python -m apps.bench precision --slowfast # fp32 against INT8 (and bf16 autocast)
    python -m apps.bench slowfast | l3 | crnn | avslowfast | panns | efficientat | soundnet | window

The per-family scripts stay runnable as they are (``python -m apps.bench_live`` ...).
"""
from __future__ import annotations

import importlib
import sys

#: WHAT -> (module, one line).
BENCHMARKS: dict[str, tuple[str, str]] = {
    "models": ("apps.bench_models", "the model table: every family per backend and batch, GFLOP/s, plot"),
    "live": ("apps.bench_live", "the live pipeline on unseen world scenes or real soundscapes: SED scores, latency"),
    "streams": ("apps.bench_streams", "N real-time streams in one process: skips, CPU, latency against one stream"),
    "e2e": ("apps.bench_end_to_end", "paper-size Slow-Fast EPIC per hop: avlive's variants against librosa + PyTorch"),
    "frontend": ("apps.bench_frontend", "the log-mel front end per window (five ways) and per streaming hop"),
    "precision": ("apps.bench_precision", "fp32 against INT8 ONNX models (and PyTorch bf16 autocast)"),
    "slowfast": ("apps.bench_slowfast", "Slow-Fast sizes and latency"),
    "l3": ("apps.bench_l3", "L3-Net sizes and latency"),
    "crnn": ("apps.bench_crnn", "the CRNN's per-hop encoder and GRU costs, streaming against recomputing"),
    "avslowfast": ("apps.bench_avslowfast", "Audiovisual SlowFast sizes, latency and accuracy"),
    "panns": ("apps.bench_panns", "PANNs latency per hop"),
    "efficientat": ("apps.bench_efficientat", "EfficientAT latency per hop"),
    "soundnet": ("apps.bench_soundnet", "SoundNet latency"),
    "window": ("apps.bench_window", "the window's redraw cost (Qt offscreen)"),
}


def usage() -> str:
    width = max(map(len, BENCHMARKS))
    lines = [__doc__.split("\n\n")[0].strip(), "", "usage: python -m apps.bench WHAT [options]", "", "WHAT:"]
    lines += [f"  {name:<{width}}  {line}" for name, (_, line) in BENCHMARKS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    what, rest = argv[0], argv[1:]
    if what not in BENCHMARKS:
        print(f"python -m apps.bench: unknown benchmark {what!r}; expected one of {', '.join(BENCHMARKS)}",
              file=sys.stderr)
        return 2
    module = importlib.import_module(BENCHMARKS[what][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
