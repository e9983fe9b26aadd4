"""Scoring a CRNN on strongly labelled clips: tagging, segment- and event-based F1, PSDS.

One function serves the recipe's validation (after every epoch) and ``apps.eval_sed`` (the
offline table on unseen test scenes):

* **tagging micro-F1**: the clip probabilities at 0.5 against the classes present in each clip;
* **segment-based F1** on 1 s segments and **event-based F1** with a 200 ms onset collar and an
  offset collar of max(200 ms, 20 % of the event) (the DCASE task-4 settings), micro over all
  clips, of the events decoded from the frame probabilities (:mod:`models.crnn.postprocess`);
* **PSDS1 / PSDS2** (optional: it takes seconds), threshold-free, from the frame probabilities as
  score tables (:mod:`models.evaluation.psds`), overlapping reference events of one class merged.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from models.audio.frontend import FrontEnd
from models.crnn.frames import FrameGrid
from models.crnn.network import CRNN
from models.crnn.postprocess import frames_to_events
from models.evaluation.metrics import event_based_metrics, multilabel_f1, segment_based_metrics
from models.evaluation.psds import PSDS1, PSDS2, ScoreTable, merge_overlapping, psds


def predict_clips(net: CRNN, frontend: FrontEnd, loader) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(frame probs (N, T', C), clip probs (N, C), weak targets (N, C))`` over a loader, in order."""
    strong, weak, targets = [], [], []
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            for batch in loader:
                mel = frontend(batch["audio"])
                t = mel.shape[1] - mel.shape[1] % net.config.time_stride
                s, w = net(mel[:, :t], *net.split_fused(batch.get("fused"), t))
                strong.append(s.numpy())
                weak.append(w.numpy())
                targets.append(batch["weak"].numpy())
    finally:
        net.train(was_training)
    return np.concatenate(strong), np.concatenate(weak), np.concatenate(targets)


def score_tables(probs: np.ndarray, grid: FrameGrid, names: Sequence[str], classes: Sequence[str]) -> dict[str, ScoreTable]:
    """Each clip's frame probabilities ``(T', C)`` as a score table: row k spans its frame's
    centre ± half the frame spacing."""
    half = grid.frame_seconds / 2
    tables = {}
    for name, p in zip(names, probs):
        centres = grid.centres(len(p))
        edges = np.append(centres - half, centres[-1] + half)  # one array: rows meet exactly
        tables[name] = ScoreTable(edges[:-1], edges[1:], p, tuple(classes))
    return tables


def clip_figures(net: CRNN, frontend: FrontEnd, grid: FrameGrid, loader, *, threshold: float | Sequence[float] = 0.5,
                 median_frames: int = 7, with_psds: bool = False) -> dict[str, float]:
    """The figures of the module docstring for the clips of ``loader.dataset`` (a
    ``models.crnn.data.EvaluationClips``: ``names``, ``reference``, ``durations``, ``classes``)."""
    dataset = loader.dataset
    strong, weak, targets = predict_clips(net, frontend, loader)
    estimated = [e for name, probs in zip(dataset.names, strong)
                 for e in frames_to_events(probs, grid, dataset.classes, name, thresholds=threshold,
                                           median_frames=median_frames)]
    event = event_based_metrics(dataset.reference, estimated, t_collar=0.2, percentage_of_length=0.2,
                                labels=dataset.classes, filenames=dataset.names)
    segment = segment_based_metrics(dataset.reference, estimated, 1.0, labels=dataset.classes,
                                    filenames=dataset.names, durations=dataset.durations)
    # sed_eval's F1 is NaN when nothing is detected; 0 here, so that "best" stays comparable
    out = {"event_f1": float(np.nan_to_num(event.f1)), "event_f1_macro": float(np.nan_to_num(event.macro_f1)),
           "segment_f1": float(np.nan_to_num(segment.f1)), "tagging_f1": float(multilabel_f1(weak >= 0.5, targets > 0)["micro"]),
           "clips": float(len(strong))}
    if with_psds:
        tables = score_tables(strong, grid, dataset.names, dataset.classes)
        reference = merge_overlapping(dataset.reference)
        for key, setting in (("psds1", PSDS1), ("psds2", PSDS2)):
            out[key] = float(psds(tables, reference, dataset.durations, setting, drop_empty_classes=True).value)
    return out
