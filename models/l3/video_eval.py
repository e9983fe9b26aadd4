"""How well a trained L³-Net corresponds, localizes and stays quiet on the user's own videos.

The videos are a folder split as the recipe splits it
(:func:`~models.datasets.formats.split_video_folder`); localization truth comes from box
sidecars (:mod:`models.datasets.formats.video_boxes`). Each video is decoded as training decodes
it (:func:`~models.l3.sources.video_sources`: ``fps`` frames a second, squashed to the input
size, 48 kHz mono audio) and every kept frame is a *hop*: the frame and the second centred on it.

* **AVC**: :class:`~models.l3.pairs.AVCPairs` over the split's videos (except those whose
  sidecar never shows the sounding source: sound from off screen), without augmentation
  (positives: a frame and its own second; negatives: a frame and another video's second), scored
  by the AVC probability: accuracy at 0.5 and ROC AUC.
* **Localization hops**: the sidecar gives the sounding source's box at the frame's time and the
  second passes the energy floor (the training rule). Pointing game (heatmap peak inside a
  box), cIoU ≥ 0.5 and cIoU AUC (:mod:`models.evaluation.metrics`). Two chance levels: the
  sounding box's mean share of the frame (a peak dropped uniformly at random) and the mean of
  1 / objects on screen (pointing at a random object; videos whose sidecar gives ``objects``).
  The same hops are scored again with a loud second of another video of the row: a map that
  follows the sound points at the sounding box less often then (``pointing_mismatched``); a map
  that only finds salient objects points there as often.
* **No-source hops**: the sidecar marks no sounding source on screen over the whole second
  (silence or sound from off screen). The figure is the share whose peak score is below the
  threshold, the live localizer's "no source" decision.
* **Threshold** (:func:`choose_video_threshold`): on the validation split's localization and
  no-source hops, :func:`~models.l3.evaluation.separating_threshold` (max balanced accuracy with
  ≥ 90 % of no-source hops below, one-sided 95 % Wilson bound), as on world scenes.

Figures are given for the whole split and per *row*: the first folder under the split
(``test/seen/…`` and ``test/unseen/…`` are rows ``seen`` and ``unseen``; files directly in the
split are row ``-``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from models.datasets.formats.video_boxes import SourceBoxes, read_source_boxes
from models.evaluation.metrics import box_mask, ciou, ciou_at, ciou_auc, pointing_game
from models.l3.evaluation import Hop, _auc, _mean, _pair_probs, score_hops, separating_threshold
from models.l3.network import L3Net
from models.l3.pairs import AVCPairs
from models.l3.sources import EnergyFloor, VideoSource, video_sources


@dataclass
class LabelledVideo:
    """A decoded video of the split with its sidecar (None: unlabelled) and row."""

    source: VideoSource
    boxes: SourceBoxes | None
    row: str


def _row(relpath: str, split_folder: bool) -> str:
    parts = relpath.split("/")
    if split_folder:
        parts = parts[1:]
    return parts[0] if len(parts) > 1 else "-"


def load_videos(data: Path, split: str, image_size: int, *, fps: float = 2.0, seconds: float = 60.0,
                val_fraction: float = 0.1, floor: EnergyFloor = EnergyFloor(), workers: int = 2) -> list[LabelledVideo]:
    """Decode the videos of ``split`` (``"train"``, ``"val"`` or ``"test"``) of ``data`` with their sidecars.

    Raises:
        ValueError: the split holds no video (naming how many each split holds).
    """
    from models.datasets.formats import split_video_folder

    splits = split_video_folder(data, val_fraction=val_fraction)
    files = splits[split]
    if not files:
        counts = ", ".join(f"{k} {len(v)}" for k, v in splits.items())
        raise ValueError(f"{data}: expected {split} videos, found none ({counts}; a {split}/ folder or {split}.txt names them)")
    by_key = {f.relpath: f for f in files}
    sources = video_sources(files, image_size, fps, seconds, floor, workers)
    out = []
    for s in sources:
        f = by_key[s.name]
        top = f.relpath.split("/", 1)[0].lower()
        out.append(LabelledVideo(s, read_source_boxes(f.path), _row(f.relpath, "/" in f.relpath and top in
                                                                     ("train", "training", "val", "valid", "validation", "test", "eval"))))
    return out


@dataclass(frozen=True)
class VideoHop:
    """A hop of a labelled video: ``video`` index, frame ``index``, its boxes ``(k, 4)`` normalized
    (k = 0 for a no-source hop) and objects on screen (None when not given)."""

    video: int
    index: int
    boxes: np.ndarray
    objects: int | None


def video_hops(videos: Sequence[LabelledVideo]) -> tuple[list[VideoHop], list[VideoHop]]:
    """``(localization hops, no-source hops)`` of the videos (module docstring rules)."""
    loc, quiet = [], []
    for v, video in enumerate(videos):
        if video.boxes is None:
            continue
        src = video.source
        eligible = set(src.eligible.tolist())
        for i, t in enumerate(src.frame_times):
            t = float(t)
            boxes = video.boxes.at(t)
            if boxes is None:
                continue
            if len(boxes) and i in eligible:
                loc.append(VideoHop(v, i, boxes, video.boxes.objects_at(t)))
            elif video.boxes.no_source_over(t - 0.5, t + 0.5):
                quiet.append(VideoHop(v, i, boxes, video.boxes.objects_at(t)))
    return loc, quiet


def _score(model: L3Net, videos: Sequence[LabelledVideo], hops: Sequence[VideoHop], batch_size: int
           ) -> tuple[np.ndarray, list[np.ndarray]]:
    sources = [v.source for v in videos]
    as_hops = [Hop(h.video, h.index, None, h.video, h.index) for h in hops]  # truth unused by score_hops
    return score_hops(model, sources, as_hops, batch_size)


def _mismatched_score(model: L3Net, videos: Sequence[LabelledVideo], hops: Sequence[VideoHop], batch_size: int,
                     seed: int = 0) -> tuple[np.ndarray, list[np.ndarray]] | None:
    """The hops scored with a loud second of *another* video (None with fewer than 2 usable videos)."""
    others = [k for k, v in enumerate(videos) if len(v.source.eligible)]
    if len(set(others) | {h.video for h in hops}) < 2:
        return None
    rng = np.random.default_rng(seed)
    as_hops = []
    for h in hops:
        choices = [k for k in others if k != h.video]
        if not choices:
            return None
        k = choices[int(rng.integers(len(choices)))]
        eligible = videos[k].source.eligible
        as_hops.append(Hop(h.video, h.index, None, k, int(eligible[int(rng.integers(len(eligible)))])))
    return score_hops(model, [v.source for v in videos], as_hops, batch_size)


def _pixel_boxes(boxes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    return boxes * np.array([w, h, w, h], np.float64)


def localization(model: L3Net, videos: Sequence[LabelledVideo], hops: Sequence[VideoHop], threshold: float | None,
                 batch_size: int = 32) -> dict[str, Any]:
    """Pointing, cIoU@0.5, cIoU AUC, the two chance levels and the share above the threshold."""
    if not hops:
        return {"n_hops": 0}
    scores, maps = _score(model, videos, hops, batch_size)
    boxes = [_pixel_boxes(h.boxes, m.shape) for h, m in zip(hops, maps)]
    pointing = pointing_game(np.stack(maps), boxes)
    cious = np.array([ciou(m, b) for m, b in zip(maps, boxes)])
    area = [box_mask(m.shape, b).mean() for m, b in zip(maps, boxes)]
    objects = [1.0 / h.objects for h in hops if h.objects]
    out = {"n_hops": len(hops), "n_videos": len({h.video for h in hops}), "pointing": float(pointing),
           "ciou@0.5": ciou_at(cious, 0.5), "ciou_auc": ciou_auc(cious), "chance_area": _mean(area),
           "chance_objects": _mean(objects), "mean_objects": _mean([h.objects for h in hops if h.objects])}
    mismatched = _mismatched_score(model, videos, hops, batch_size)
    if mismatched is not None:  # if the map follows the sound, pointing falls towards chance here
        out["pointing_mismatched"] = float(pointing_game(np.stack(mismatched[1]), boxes))
    if threshold is not None:
        out["above_threshold"] = _mean(scores >= threshold)
    out["_scores"] = scores
    return out


def no_source(model: L3Net, videos: Sequence[LabelledVideo], hops: Sequence[VideoHop], threshold: float,
              batch_size: int = 32) -> dict[str, Any]:
    """The share of no-source hops whose peak score is below ``threshold``."""
    if not hops:
        return {"n_hops": 0}
    scores, _ = _score(model, videos, hops, batch_size)
    return {"n_hops": len(hops), "below": _mean(scores < threshold), "peak_mean": _mean(scores), "_scores": scores}


def avc(model: L3Net, videos: Sequence[LabelledVideo], n_pairs: int, batch_size: int = 32, seed: int = 2024) -> dict[str, Any]:
    """AVC accuracy and AUC on fixed pairs of the videos (needs ≥ 2 videos). Videos whose sidecar
    marks no sounding source on screen anywhere (sound from off screen) are left out: their
    frame and sound do not correspond."""
    sources = [v.source for v in videos
               if len(v.source.eligible) and (v.boxes is None or any(len(b) for b in v.boxes.boxes))]
    if len(sources) < 2:
        return {"n_pairs": 0}
    pairs = AVCPairs(sources, n_pairs, model.config.image_size, seed, fixed=True)
    probs, items = _pair_probs(model, pairs, range(n_pairs), batch_size)
    y = np.array([it["label"] for it in items], bool)
    return {"n_pairs": int(len(y)), "n_videos": len(sources), "acc": _mean((probs >= 0.5) == y), "auc": _auc(probs, y)}


def choose_video_threshold(model: L3Net, videos: Sequence[LabelledVideo], *, min_negative_rate: float = 0.9,
                           confidence_z: float = 1.645, batch_size: int = 32, details: dict | None = None) -> float:
    """The "no source" threshold chosen on (validation) videos' localization vs no-source hops.

    Raises:
        ValueError: the videos have no localization or no no-source hops.
    """
    loc, quiet = video_hops(videos)
    if not loc or not quiet:
        raise ValueError(f"threshold: expected validation videos whose sidecars mark sounding boxes and no-source "
                         f"stretches, found {len(loc)} and {len(quiet)} hops (add NAME.boxes.json to val/ videos)")
    pos, _ = _score(model, videos, loc, batch_size)
    neg, _ = _score(model, videos, quiet, batch_size)
    threshold = separating_threshold(pos, neg, min_negative_rate, confidence_z)
    if details is not None:
        details.update({
            "n_onscreen": len(loc), "n_offscreen": len(quiet), "onscreen_above": _mean(pos >= threshold),
            "offscreen_below": _mean(neg < threshold),
            "peak_auc": _auc(np.r_[pos, neg], np.r_[np.ones(len(pos)), np.zeros(len(neg))]),
            "rule": f"max balanced accuracy with >= {min_negative_rate:.0%} of no-source hops below"
                    + (f" (Wilson lower bound, z = {confidence_z:g})" if confidence_z else ""),
        })
    return threshold


def evaluate_videos(model: L3Net, videos: Sequence[LabelledVideo], threshold: float, *, pairs: int = 1000,
                    batch_size: int = 32, log: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    """Every figure, for all videos (``"all"``) and per row."""
    model.eval()
    rows = sorted({v.row for v in videos})
    groups = {"all": list(videos)} if len(rows) == 1 else {"all": list(videos), **{r: [v for v in videos if v.row == r] for r in rows}}
    out: dict[str, Any] = {"threshold": float(threshold), "rows": {}}
    for name, members in groups.items():
        log(f"row {name}: {len(members)} videos")
        loc, quiet = video_hops(members)
        out["rows"][name] = {
            "n_videos": len(members), "n_labelled": sum(v.boxes is not None for v in members),
            "avc": avc(model, members, pairs, batch_size),
            "localization": localization(model, members, loc, threshold, batch_size),
            "no_source": no_source(model, members, quiet, threshold, batch_size),
        }
    return out


def _f(x: Any, pct: bool = True) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "n/a"
    return f"{100 * x:.1f}%" if pct else f"{x:.3f}"


def format_video_report(r: dict[str, Any]) -> str:
    """A table: one line per row (AVC AUC, pointing against both chance levels, cIoU, no-source share)."""
    lines = [f"threshold {r['threshold']:.4f}",
             f"{'row':<10} {'videos':>6} {'AVC AUC':>8} {'AVC acc':>8} {'hops':>5} {'pointing':>9} {'chance(area)':>12} "
             f"{'chance(1/obj)':>13} {'mismatched':>10} {'cIoU@0.5':>9} {'cIoU AUC':>9} {'no-src hops':>11} {'below thr':>9}"]
    for name, row in r["rows"].items():
        a, loc, q = row["avc"], row["localization"], row["no_source"]
        lines.append(f"{name:<10} {row['n_videos']:>6} {_f(a.get('auc'), False):>8} {_f(a.get('acc')):>8} {loc['n_hops']:>5} "
                     f"{_f(loc.get('pointing')):>9} {_f(loc.get('chance_area')):>12} {_f(loc.get('chance_objects')):>13} "
                     f"{_f(loc.get('pointing_mismatched')):>10} "
                     f"{_f(loc.get('ciou@0.5')):>9} {_f(loc.get('ciou_auc'), False):>9} {q['n_hops']:>11} {_f(q.get('below')):>9}")
    return "\n".join(lines)
