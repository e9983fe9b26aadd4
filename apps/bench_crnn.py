"""Per-hop cost of the streaming CRNN: encoder and recurrent part, against recomputing the window.

    python -m apps.bench_crnn                       # lite size, hop 0.08 s, windows 2 / 5 / 10 s
    python -m apps.bench_crnn runs/crnn-lite --windows 2 5 10 20 --threads 2 --repeats 50

For each window length at the same hop it times, in PyTorch (eager, inference mode, batch 1,
``--threads`` intra-op threads; medians over ``--repeats`` hops after warm-up):

* **encoder, streaming**: the front end and the convolutional encoder on the hop's new audio
  only, with the cached rows (``StreamingStep.encode_new``): its cost follows the hop;
* **recurrent**: the two bidirectional GRU layers and the heads over the window's encoder frames
  (``CRNN.decode``): its cost follows the window;
* **recompute**: what a non-streaming labeler does every hop: the front end, the encoder and the
  recurrent part over the whole window;
* **ONNX step**: the exported streaming step (front end inside) in ONNX Runtime, as ``avlive``
  runs it.

The encoder is causal, so the streaming frames equal one pass over the whole stream with no
delay (tests/test_crnn.py checks it); the live labeler holds back ``lookahead_frames`` frames
(metadata) so the backward GRU has seen a little of their future: that, not the encoder, is the
delay.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from models.evaluation.benchmark import time_callable


def _median_ms(fn, repeats: int) -> float:
    return time_callable(fn, warmup=5, iters=repeats).p50_ms


def _model(run: str | None):
    from models.crnn.recipe import CRNNRecipe, CRNNTrainConfig
    from models.families import load_trained

    if run:
        recipe, model, _ = load_trained(run)
        if not isinstance(recipe, CRNNRecipe):
            raise SystemExit(f"{run}: expected a CRNN run (recipe crnn-lite or crnn), found recipe {recipe.name!r}")
        return recipe, model
    recipe = CRNNRecipe(CRNNTrainConfig())
    torch.manual_seed(0)
    return recipe, recipe.build_model().eval()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m apps.bench_crnn", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", nargs="?", default=None, help="a CRNN run folder (default: a freshly initialised lite model; "
                                                        "costs do not depend on the weights)")
    p.add_argument("--windows", type=float, nargs="+", default=[2.0, 5.0, 10.0], metavar="S",
                   help="window lengths in seconds (default 2 5 10)")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads (default 2)")
    p.add_argument("--repeats", type=int, default=30, help="timed hops per figure (default 30)")
    p.add_argument("--no-onnx", action="store_true", help="skip the ONNX Runtime column")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    from models.crnn.streaming import StreamingStep

    recipe, model = _model(args.run)
    step: StreamingStep = recipe.step_module(model)
    net, fe = step.model, step.frontend
    sr, hop_s = fe.config.sample_rate, step.hop_samples / fe.config.sample_rate
    rng = np.random.default_rng(0)
    chunk = torch.from_numpy((rng.standard_normal((1, step.chunk_samples)) * 0.05).astype(np.float32))
    state = step.initial_state(1)
    session = None
    if not args.no_onnx:
        session = _onnx_session(recipe, model, args.threads)
    print(f"CRNN {recipe.config.size}: hop {hop_s * 1e3:.0f} ms ({step.new_frames} new frames of "
          f"{recipe.grid.frame_seconds * 1e3:.0f} ms), {args.threads} threads, medians of {args.repeats} hops")
    header = f"{'window':>7} {'frames':>6} {'encoder':>9} {'recurrent':>10} {'streaming':>10} {'recompute':>10} " \
             f"{'ratio':>6} {'ONNX step':>10}"
    print(header)
    print("-" * len(header))
    with torch.inference_mode():
        for window in args.windows:
            frames = int(round(window / recipe.grid.frame_seconds))
            hist = torch.randn(1, frames, net.config.frame_dim) * 0.1
            wave = torch.from_numpy((rng.standard_normal((1, int(round(window * sr)) + step.chunk_samples
                                                              - step.hop_samples)) * 0.05).astype(np.float32))
            enc = _median_ms(lambda: step.encode_new(chunk, step.unpack(state)), args.repeats)
            rec = _median_ms(lambda: net.decode(hist), args.repeats)

            def recompute():
                mel = fe(wave)
                t = mel.shape[1] - mel.shape[1] % net.config.time_stride
                return net(mel[:, :t])

            full = _median_ms(recompute, args.repeats)
            onnx = "-"
            if session is not None:
                feed = {"audio": chunk.numpy(), "state": state.numpy(),
                        "history": np.zeros((1, frames - step.new_frames + 1, net.config.frame_dim), np.float32)}
                onnx = f"{_median_ms(lambda: session.run(None, feed), args.repeats):8.2f}ms"
            print(f"{window:6.1f}s {frames:6d} {enc:7.2f}ms {rec:8.2f}ms {enc + rec:8.2f}ms {full:8.2f}ms "
                  f"{full / (enc + rec):5.1f}x {onnx:>10}")
    print("encoder: front end + convolutions on the new audio only (cost follows the hop); recurrent: 2 BiGRU + heads "
          "over the window; recompute: everything over the window, every hop. The encoder is causal: no delay; "
          f"the live labeler holds back {recipe.config.lookahead_frames} frame(s).")
    return 0


def _onnx_session(recipe, model, threads: int):
    import onnxruntime as ort

    from models.evaluation.benchmark import ort_session_options
    from models.export.onnx import export_onnx

    module, example, axes = recipe.export_module(model)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "step.onnx"
        export_onnx(module, recipe.metadata(model), example, path, dynamic_axes=axes)
        return ort.InferenceSession(str(path), ort_session_options(threads), providers=["CPUExecutionProvider"])


if __name__ == "__main__":
    raise SystemExit(main())
