"""How well a trained L³-Net corresponds, localizes and stays quiet, on unseen ``bench`` scenes.

Every figure is computed on the world's test seeds (the threshold on validation seeds), with the
world's exact ground truth. Definitions (one second = the 1 s window centred on a frame, the
alignment rule of :func:`models.l3.audio_window_for_frame`; a *hop* is one frame of a test scene
and its second, taken every ``hop_seconds``):

* An event **sounds in** a second when it overlaps it by at least :data:`ACTIVE_OVERLAP`
  (0.25 s); the second's *active classes* are those events' classes. The *visible classes* of a
  frame are the classes of every object in it (sounding or silent distractor).
* **AVC pairs** are :class:`models.l3.recipe.AVCPairs` over the test scenes, without
  augmentation: exactly what training sees, energy floor included. A positive is *decidable*
  when the frame shows the object of an event that sounds in its second; a negative when none
  of its second's active classes has a visible object. The **class oracle** answers
  "corresponds" iff the second's active classes and the frame's visible classes share a class
  (right on every decidable pair by construction; its all-pairs accuracy is the ceiling set by
  the world's ambiguity). Same-video negatives (the frame's own scene, ≥ 2 s away) are scored
  on their own set.
* A **localization hop** has ≥ 2 visible objects (every class of the world makes sound),
  exactly one of them belongs to an event heard in the second at all, that event overlaps the
  second by ≥ :data:`LOC_MIN_OVERLAP` (0.5 s), no other event sounds in the second (no
  off-screen sound either) and no other visible object has its class. At most
  ``max_hops_per_event`` hops per event, evenly spaced. Scored by the pointing game (the
  heatmap's peak inside the sounding object's box), cIoU ≥ 0.5 and the cIoU AUC
  (:mod:`models.evaluation.metrics`). The same hops are re-scored with the second from *another* test
  scene, one above the energy floor with at least one sounding event and none of the sounding
  object's class anywhere in it: if the map follows the sound, pointing then falls to chance,
  the mean of 1 / (visible objects) (target: ≤ chance + 0.1).
* An **off-screen/silent hop** has no visible object whose event is heard in the second at all:
  either nothing sounds (silent) or only off-screen events do. The figure is the fraction whose
  peak score (the live :class:`~models.live.Heatmap`'s ``score``) is below the threshold.
* The **threshold** (:func:`choose_threshold`) separates, by the peak score, validation hops
  with an on-screen sounding object (a visible object whose event overlaps the second by
  ≥ 0.5 s) from off-screen/silent hops: the value maximising balanced accuracy among those
  that keep at least ``min_negative_rate`` (90 %) of the validation off-screen/silent hops below
  it (:func:`separating_threshold`).
* The **linear probe** fits the same scikit-learn logistic regression (standardised features)
  on the world's 1 s single-event windows of the train split and scores the test split, once on
  L³ audio embeddings (48 kHz) and once on log-mel mean/std statistics (16 kHz, the bench
  log-mel of :mod:`models.world.difficulty`) of the same windows.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from models.l3.network import SAMPLE_RATE, L3Net, heatmap_from_cells, preprocess_frames, save_checkpoint
from models.l3.pairs import KIND_SAME_SOURCE, AVCPairs
from models.l3.sources import EnergyFloor, WorldSource, world_sources
from models.evaluation.metrics import ciou, ciou_at, ciou_auc, roc_auc_per_class
from models.world import BENCH, FrameObject, Scene, WorldConfig, WorldEvent, split_seed

__all__ = [
    "ACTIVE_OVERLAP",
    "LOC_MIN_OVERLAP",
    "HopTruth",
    "L3EvalConfig",
    "Hop",
    "hop_truth",
    "is_localization_hop",
    "is_offscreen_hop",
    "is_onscreen_hop",
    "pair_truth",
    "scan_hops",
    "select_localization_hops",
    "select_offscreen_hops",
    "score_hops",
    "separating_threshold",
    "wilson_lower_bound",
    "choose_threshold",
    "write_threshold",
    "avc_figures",
    "localization_figures",
    "offscreen_figures",
    "probe_figures",
    "energy_floor_effect",
    "evaluate_l3",
    "format_report",
]

ACTIVE_OVERLAP = 0.25  # s of a second an event must cover to sound in it
LOC_MIN_OVERLAP = 0.5  # s the one sounding event of a localization hop covers, at least


# --------------------------------------------------------------------------- ground truth


@dataclass(frozen=True)
class HopTruth:
    """Ground truth of one frame of a scene and the second centred on it.

    Attributes:
        seed: the scene.
        frame: the scene's frame index.
        time: the frame's time (the centre of the second), seconds.
        objects: every visible object of the frame.
        overlaps: ``event uid → seconds`` of the second the event covers (every event heard at all).
        classes: ``event uid → class index`` of those events.
    """

    seed: int
    frame: int
    time: float
    objects: tuple[FrameObject, ...]
    overlaps: dict[int, float] = field(hash=False)
    classes: dict[int, int] = field(hash=False)

    @property
    def active_classes(self) -> frozenset[int]:
        """Classes of the events that sound in the second (overlap ≥ :data:`ACTIVE_OVERLAP`)."""
        return frozenset(self.classes[u] for u, o in self.overlaps.items() if o >= ACTIVE_OVERLAP)

    @property
    def heard_classes(self) -> frozenset[int]:
        """Classes of every event that overlaps the second at all."""
        return frozenset(self.classes.values())

    @property
    def visible_classes(self) -> frozenset[int]:
        return frozenset(o.class_index for o in self.objects)

    @property
    def sounding_visible(self) -> tuple[FrameObject, ...]:
        """Visible objects whose event sounds in the second (overlap ≥ :data:`ACTIVE_OVERLAP`)."""
        return tuple(o for o in self.objects if o.event_uid is not None and self.overlaps.get(o.event_uid, 0.0) >= ACTIVE_OVERLAP)

    @property
    def heard_visible(self) -> tuple[FrameObject, ...]:
        """Visible objects whose event overlaps the second at all."""
        return tuple(o for o in self.objects if o.event_uid is not None and o.event_uid in self.overlaps)


def _overlaps(events: Sequence[WorldEvent], t0: float, t1: float) -> tuple[dict[int, float], dict[int, int]]:
    overlaps, classes = {}, {}
    for e in events:
        o = min(e.offset, t1) - max(e.onset, t0)
        if o > 0:
            overlaps[e.uid], classes[e.uid] = float(o), e.class_index
    return overlaps, classes


def hop_truth(scene: Scene, frame: int) -> HopTruth:
    """The ground truth of scene frame ``frame`` and the second centred on it."""
    t = scene.frame_time(frame)
    t0, t1 = t - 0.5, t + 0.5
    overlaps, classes = _overlaps(scene.events_between(t0, t1), t0, t1)
    return HopTruth(scene.seed, int(frame), float(t), tuple(scene.frame_objects(frame)), overlaps, classes)


def is_localization_hop(truth: HopTruth) -> bool:
    """≥ 2 visible objects; exactly one belongs to an event heard in the second, covering ≥ 0.5 s of
    it; no other event sounds in the second; no other visible object shares its class."""
    if len(truth.objects) < 2:
        return False
    heard = truth.heard_visible
    if len(heard) != 1:
        return False
    obj = heard[0]
    if truth.overlaps[obj.event_uid] < LOC_MIN_OVERLAP:
        return False
    if any(o >= ACTIVE_OVERLAP for u, o in truth.overlaps.items() if u != obj.event_uid):
        return False
    x0, y0, x1, y1 = obj.box
    if x1 <= x0 or y1 <= y0:
        return False
    return sum(o.class_index == obj.class_index for o in truth.objects) == 1


def is_offscreen_hop(truth: HopTruth) -> bool:
    """No visible object's event is heard in the second: silence or off-screen sound only."""
    return not truth.heard_visible


def is_onscreen_hop(truth: HopTruth) -> bool:
    """A visible object's event covers ≥ 0.5 s of the second (the threshold's positives)."""
    return any(truth.overlaps[o.event_uid] >= LOC_MIN_OVERLAP for o in truth.heard_visible)


def pair_truth(frame: HopTruth, audio: HopTruth, positive: bool) -> tuple[bool, bool]:
    """``(decidable, oracle says corresponds)`` of a pair.

    Args:
        frame: truth of the pair's frame.
        audio: truth of the second the pair's audio is (for a positive, the same as ``frame``).
        positive: the pair's label.
    """
    oracle = bool(audio.active_classes & frame.visible_classes)
    if positive:
        decidable = bool(frame.sounding_visible)
    else:
        decidable = not oracle
    return decidable, oracle


# --------------------------------------------------------------------------- hops


@dataclass(frozen=True)
class Hop:
    """One scored hop: a frame of a source and the second its audio comes from.

    Attributes:
        source: index of the frame's source.
        index: frame index within that source.
        truth: ground truth of the frame (and of its own second).
        audio_source, audio_index: where the second comes from (the frame's own by default).
    """

    source: int
    index: int
    truth: HopTruth
    audio_source: int
    audio_index: int


def scan_hops(sources: Sequence[WorldSource], hop_seconds: float) -> list[Hop]:
    """Every ``hop_seconds`` of every source: its frames on that grid, with their truth."""
    hops = []
    for si, src in enumerate(sources):
        fps = src.config.fps
        step = max(1, int(round(hop_seconds * fps)))
        for i in range(0, len(src), step):
            truth = hop_truth(src.scene, src.scene_frame(i))
            hops.append(Hop(si, i, truth, si, i))
    return hops


def _even_subset(items: list, count: int) -> list:
    if len(items) <= count:
        return items
    picks = np.unique(np.round(np.linspace(0, len(items) - 1, count)).astype(int))
    return [items[i] for i in picks]


def select_localization_hops(hops: Sequence[Hop], max_hops: int, max_hops_per_event: int, seed: int = 0) -> list[Hop]:
    """Localization hops (:func:`is_localization_hop`), at most ``max_hops_per_event`` per event
    (evenly spaced in time), at most ``max_hops`` in all (a seeded random subset, in scan order)."""
    by_event: dict[tuple[int, int], list[Hop]] = {}
    for h in hops:
        if is_localization_hop(h.truth):
            uid = h.truth.heard_visible[0].event_uid
            by_event.setdefault((h.truth.seed, uid), []).append(h)
    chosen = [h for group in by_event.values() for h in _even_subset(group, max_hops_per_event)]
    return _random_subset(chosen, max_hops, seed)


def select_offscreen_hops(hops: Sequence[Hop], max_hops: int, seed: int = 0) -> list[Hop]:
    """Off-screen/silent hops (:func:`is_offscreen_hop`), at most ``max_hops`` (a seeded random subset)."""
    return _random_subset([h for h in hops if is_offscreen_hop(h.truth)], max_hops, seed)


def _random_subset(items: list, count: int, seed: int) -> list:
    if len(items) <= count:
        return list(items)
    keep = np.sort(np.random.default_rng(seed).choice(len(items), count, replace=False))
    return [items[i] for i in keep]


def mismatched_hops(hops: Sequence[Hop], sources: Sequence[WorldSource], seed: int = 0, tries: int = 400) -> list[Hop]:
    """The same hops with their second taken from another source: one above the energy floor, with
    at least one sounding event and no event of the sounding object's class overlapping it at all.

    Raises:
        ValueError: fewer than two sources, or no such second found for a hop in ``tries`` draws.
    """
    if len(sources) < 2:
        raise ValueError(f"mismatched_hops: expected at least 2 scenes, found {len(sources)}")
    out = []
    for n, h in enumerate(hops):
        rng = np.random.default_rng([seed, n])
        cls = h.truth.heard_visible[0].class_index
        for _ in range(tries):
            b = int(rng.integers(len(sources) - 1))
            b = b if b < h.source else b + 1
            src = sources[b]
            j = int(src.eligible[int(rng.integers(len(src.eligible)))])
            truth = hop_truth(src.scene, src.scene_frame(j))
            if truth.active_classes and cls not in truth.heard_classes:
                out.append(Hop(h.source, h.index, h.truth, b, j))
                break
        else:
            raise ValueError(f"mismatched_hops: no second without class {cls} found in {tries} draws")
    return out


@torch.inference_mode()
def score_hops(model: L3Net, sources: Sequence[WorldSource], hops: Sequence[Hop], batch_size: int = 32
               ) -> tuple[np.ndarray, list[np.ndarray]]:
    """Run the model on hops as the live localizer does.

    Returns:
        ``scores (N,)``: each heatmap's peak score (:func:`models.l3.network.heatmap_from_cells` at the
        frame's resolution, the live ``Heatmap.score``), and the ``(H, W)`` float32 heatmaps.
    """
    model.eval()
    device = next(model.parameters()).device
    s = model.config.image_size
    scores, maps = [], []
    for i in range(0, len(hops), batch_size):
        part = hops[i : i + batch_size]
        frames_u8 = [sources[h.source].frame(h.index) for h in part]
        frames = preprocess_frames(np.stack(frames_u8), s).to(device)
        audio = torch.from_numpy(np.stack([sources[h.audio_source].window(h.audio_index) for h in part])).to(device)
        _, cells = model.forward_all(frames, audio)
        cells = cells.float().cpu().numpy()
        for c, f in zip(cells, frames_u8):
            heat = heatmap_from_cells(c, f.shape[:2], 0.5)
            scores.append(heat.score)
            maps.append(heat.map)
    return np.asarray(scores, np.float64), maps


# --------------------------------------------------------------------------- threshold


def separating_threshold(positive: np.ndarray, negative: np.ndarray, min_negative_rate: float | None = 0.9,
                         confidence_z: float = 0.0) -> float:
    """The peak-score threshold that best separates two score sets.

    Candidates are the midpoints between consecutive distinct scores of the union (and points
    just outside its range); a score ``>= threshold`` counts as "source on screen". The result
    maximises balanced accuracy, ``(TPR + TNR) / 2``, among candidates that keep at least
    ``min_negative_rate`` of ``negative`` below them (all candidates when None or when none
    qualifies); ties go to the lowest such candidate. With ``confidence_z > 0`` a candidate
    qualifies when the one-sided Wilson lower bound of its below-rate, at ``confidence_z``
    standard errors, reaches ``min_negative_rate``: the rate then holds with that confidence on
    scenes like these, not just on these hops. Separable sets get the midpoint of the gap
    between the highest negative and the lowest positive.

    Args:
        positive: ``(P,)`` scores of hops with an on-screen source.
        negative: ``(N,)`` scores of off-screen/silent hops.
        min_negative_rate: the smallest fraction of negatives that must score below.
        confidence_z: standard errors of the Wilson lower bound (1.645: one-sided 95 %); 0 = the rate itself.

    Returns:
        The threshold, clipped to [0, 1].

    Raises:
        ValueError: an empty score set.
    """
    if confidence_z < 0:
        raise ValueError(f"separating_threshold: expected confidence_z >= 0, found {confidence_z!r}")
    pos = np.asarray(positive, np.float64).ravel()
    neg = np.asarray(negative, np.float64).ravel()
    if not len(pos) or not len(neg):
        raise ValueError(f"separating_threshold: expected scores on both sides, found {len(pos)} positive and "
                         f"{len(neg)} negative")
    values = np.unique(np.concatenate([pos, neg]))
    candidates = np.concatenate([[values[0] - 1e-6], (values[1:] + values[:-1]) / 2, [values[-1] + 1e-6]])
    tpr = (pos[None, :] >= candidates[:, None]).mean(1)
    tnr = (neg[None, :] < candidates[:, None]).mean(1)
    balanced = (tpr + tnr) / 2
    allowed = np.ones(len(candidates), bool) if min_negative_rate is None \
        else wilson_lower_bound(tnr, len(neg), confidence_z) >= min_negative_rate - 1e-12
    if not allowed.any():
        allowed[:] = True
    best = np.flatnonzero(allowed & (balanced == balanced[allowed].max()))[0]
    return float(np.clip(candidates[best], 0.0, 1.0))


def wilson_lower_bound(rate: np.ndarray | float, n: int, z: float) -> np.ndarray:
    """One-sided Wilson score lower bound of a proportion ``rate`` observed on ``n`` trials, at ``z``
    standard errors (``z = 0`` returns ``rate``)."""
    p = np.asarray(rate, np.float64)
    if z == 0:
        return p
    centre = p + z * z / (2 * n)
    spread = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n)


def choose_threshold(model: L3Net, seeds: Sequence[int] | None = None, *, world: WorldConfig = BENCH,
                     scene_seconds: float = 300.0, hop_seconds: float = 0.5, max_hops: int = 400,
                     min_negative_rate: float = 0.9, confidence_z: float = 1.645, batch_size: int = 32,
                     floor: EnergyFloor = EnergyFloor(), render_workers: int = 2, details: dict | None = None) -> float:
    """The localizer's "no source" threshold, chosen on validation scenes.

    Hops every ``hop_seconds`` of each scene's first ``scene_seconds``; positives are hops with
    an on-screen sounding object (:func:`is_onscreen_hop`), negatives off-screen/silent hops
    (:func:`is_offscreen_hop`), at most ``max_hops`` of each; the rule is
    :func:`separating_threshold` with the one-sided 95 % Wilson bound (``confidence_z``): at
    ``min_negative_rate = 0.9`` on 400 hops the observed rate must reach about 92.5 %, so that
    unseen scenes, whose rate scatters around the validation one, still keep 90 % below.

    Args:
        model: the trained network.
        seeds: scene seeds (default: the first three validation seeds).
        details: filled, when given, with the counts and the rates reached on these scenes.

    Returns:
        The threshold in [0, 1].
    """
    seeds = [split_seed("val", i) for i in range(3)] if seeds is None else list(seeds)
    sources = world_sources(world, seeds, scene_seconds, floor, render_workers)
    hops = scan_hops(sources, hop_seconds)
    positive = _random_subset([h for h in hops if is_onscreen_hop(h.truth)], max_hops, 1)
    negative = _random_subset([h for h in hops if is_offscreen_hop(h.truth)], max_hops, 2)
    pos_scores, _ = score_hops(model, sources, positive, batch_size)
    neg_scores, _ = score_hops(model, sources, negative, batch_size)
    threshold = separating_threshold(pos_scores, neg_scores, min_negative_rate, confidence_z)
    if details is not None:
        details.update({
            "seeds": seeds, "scene_seconds": scene_seconds, "n_onscreen": len(positive), "n_offscreen": len(negative),
            "onscreen_above": float(np.mean(pos_scores >= threshold)), "offscreen_below": float(np.mean(neg_scores < threshold)),
            "peak_auc": _auc(np.concatenate([pos_scores, neg_scores]), np.r_[np.ones(len(pos_scores)), np.zeros(len(neg_scores))]),
            "rule": f"max balanced accuracy with >= {min_negative_rate:.0%} of off-screen/silent hops below"
                    + (f" (Wilson lower bound, z = {confidence_z:g})" if confidence_z else ""),
        })
    return threshold


def write_threshold(source: str | Path, threshold: float, model: L3Net, info: dict | None = None,
                    chosen_on: str = "validation") -> list[Path]:
    """Store a chosen threshold with a trained run.

    For a run folder (or a checkpoint inside one): ``extra["threshold"]`` (with
    ``threshold_source = chosen_on``, ``"validation"`` for world scenes, ``"data-validation"`` for
    the user's validation videos, and ``info`` as ``extra["threshold_info"]``) in
    ``metadata.json`` and in the metadata of ``checkpoints/best.pt`` and ``last.pt``; and
    ``l3.pt`` beside them, the :func:`models.l3.network.save_checkpoint` file the live localizer loads
    (``avlive --backend torch --models RUN/l3.pt``), holding ``model`` and the threshold.

    Returns:
        The files written.
    """
    from models.core.atomic import atomic_torch_save, atomic_write_text
    from models.core.checkpoint import BEST, LAST, find_checkpoint
    from models.core.checkpoint import load_checkpoint as load_avlive

    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"write_threshold: expected a threshold in [0, 1], found {threshold!r}")
    source = Path(source)
    ckpt = find_checkpoint(source)
    run = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
    extra = {"threshold": float(threshold), "threshold_source": chosen_on, "threshold_info": info or {}}
    written = []
    for path in sorted({run / "checkpoints" / BEST, run / "checkpoints" / LAST, ckpt}):
        if path.is_file():
            data = load_avlive(path)
            data["metadata"]["extra"].update(extra)
            atomic_torch_save(data, path)
            written.append(path)
    meta_path = run / "metadata.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        meta["extra"].update(extra)
        atomic_write_text(meta_path, json.dumps(meta, indent=1) + "\n")
        written.append(meta_path)
    live = run / "l3.pt"
    save_checkpoint(live, model, threshold=float(threshold))
    written.append(live)
    return sorted(written)


# --------------------------------------------------------------------------- figures


def _auc(scores: np.ndarray, labels: np.ndarray) -> float:
    if len(labels) == 0 or labels.min() == labels.max():
        return float("nan")
    return float(roc_auc_per_class(np.asarray(scores)[:, None], np.asarray(labels, np.float64)[:, None])[0])


def _mean(x) -> float:
    x = np.asarray(x, np.float64)
    return float(x.mean()) if x.size else float("nan")


@torch.inference_mode()
def _pair_probs(model: L3Net, pairs: AVCPairs, indices: Sequence[int], batch_size: int) -> tuple[np.ndarray, list[dict]]:
    device = next(model.parameters()).device
    probs, items = [], []
    for i in range(0, len(indices), batch_size):
        batch = [pairs[int(j)] for j in indices[i : i + batch_size]]
        frames = torch.stack([b["frames"] for b in batch]).to(device)
        audio = torch.stack([b["audio"] for b in batch]).to(device)
        probs.append(model(frames, audio).softmax(1)[:, 1].float().cpu().numpy())
        items.extend({k: int(v) for k, v in b.items() if k not in ("frames", "audio")} for b in batch)
    return np.concatenate(probs) if probs else np.zeros(0), items


def avc_figures(model: L3Net, sources: Sequence[WorldSource], n_pairs: int, n_same_video: int, *,
                batch_size: int = 32, seed: int = 2024, min_gap: float = 2.0) -> dict[str, Any]:
    """AVC accuracy on test pairs: all, decidable (with per-label parts), the class oracle, and
    same-video negatives apart.

    Returns:
        A dict of figures (accuracies in [0, 1]) and counts.
    """
    model.eval()
    s = model.config.image_size
    pairs = AVCPairs(sources, n_pairs, s, seed, fixed=True)
    probs, items = _pair_probs(model, pairs, range(n_pairs), batch_size)
    same = AVCPairs(sources, 2 * n_same_video, s, seed + 1, same_video_negatives=1.0, same_video_min_gap=min_gap, fixed=True)
    same_probs, same_items = _pair_probs(model, same, range(1, 2 * n_same_video, 2), batch_size)

    def truths(items_: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        labels, decidable, oracle = [], [], []
        for it in items_:
            fs, as_ = sources[it["frame_source"]], sources[it["audio_source"]]
            ft = hop_truth(fs.scene, fs.scene_frame(it["frame_index"]))
            at = ft if (it["audio_source"], it["audio_index"]) == (it["frame_source"], it["frame_index"]) else \
                hop_truth(as_.scene, as_.scene_frame(it["audio_index"]))
            d, o = pair_truth(ft, at, bool(it["label"]))
            labels.append(it["label"])
            decidable.append(d)
            oracle.append(o)
        return np.array(labels, bool), np.array(decidable, bool), np.array(oracle, bool)

    y, dec, orc = truths(items)
    correct = (probs >= 0.5) == y
    oracle_correct = orc == y
    sy, sdec, sorc = truths(same_items)
    same_kind = np.array([it["kind"] == KIND_SAME_SOURCE for it in same_items], bool)
    scorrect = (same_probs < 0.5)[same_kind]
    return {
        "n_pairs": int(len(y)), "n_decidable": int(dec.sum()),
        "n_decidable_pos": int((dec & y).sum()), "n_decidable_neg": int((dec & ~y).sum()),
        "acc_all": _mean(correct), "acc_decidable": _mean(correct[dec]),
        "acc_decidable_pos": _mean(correct[dec & y]), "acc_decidable_neg": _mean(correct[dec & ~y]),
        "acc_pos": _mean(correct[y]), "acc_neg": _mean(correct[~y]),
        "oracle_all": _mean(oracle_correct), "oracle_decidable": _mean(oracle_correct[dec]),
        "auc_all": _auc(probs, y),
        "n_same_video": int(same_kind.sum()), "acc_same_video": _mean(scorrect),
        "n_same_video_decidable": int(sdec[same_kind].sum()), "acc_same_video_decidable": _mean(scorrect[sdec[same_kind]]),
        "oracle_same_video": _mean((sorc == sy)[same_kind]),
    }


def _box_array(obj: FrameObject) -> np.ndarray:
    return np.asarray(obj.box, np.float64)


def localization_figures(model: L3Net, sources: Sequence[WorldSource], hops: Sequence[Hop], *, batch_size: int = 32,
                         seed: int = 0, threshold: float | None = None) -> dict[str, Any]:
    """Pointing game, cIoU@0.5 and cIoU AUC on localization hops; then the same hops with
    mismatched audio (:func:`mismatched_hops`): pointing and its chance level."""
    from models.evaluation.metrics import pointing_game

    if not hops:
        raise ValueError("localization_figures: no localization hops (more seeds or longer scenes needed)")
    scores, maps = score_hops(model, sources, hops, batch_size)
    boxes = [_box_array(h.truth.heard_visible[0]) for h in hops]
    pointing = pointing_game(np.stack(maps), boxes)
    cious = np.array([ciou(m, b) for m, b in zip(maps, boxes)])
    other = mismatched_hops(hops, sources, seed)
    other_scores, other_maps = score_hops(model, sources, other, batch_size)
    pointing_other = pointing_game(np.stack(other_maps), boxes)
    chance = float(np.mean([1.0 / len(h.truth.objects) for h in hops]))
    figures = {
        "n_hops": len(hops), "n_events": len({(h.truth.seed, h.truth.heard_visible[0].event_uid) for h in hops}),
        "pointing": float(pointing), "ciou@0.5": ciou_at(cious, 0.5), "ciou_auc": ciou_auc(cious),
        "mean_candidates": float(np.mean([len(h.truth.objects) for h in hops])),
        "pointing_mismatched": float(pointing_other), "chance": chance, "mismatched_bound": chance + 0.1,
        "mismatched_within_bound": bool(pointing_other <= chance + 0.1),
        "peak_matched_mean": _mean(scores), "peak_mismatched_mean": _mean(other_scores),
    }
    if threshold is not None:
        figures["onscreen_above_threshold"] = _mean(scores >= threshold)
    figures["_scores"] = scores
    return figures


def offscreen_figures(model: L3Net, sources: Sequence[WorldSource], hops: Sequence[Hop], threshold: float, *,
                      batch_size: int = 32) -> dict[str, Any]:
    """Fraction of off-screen/silent hops whose peak score is below ``threshold``, overall and for
    the silent and the off-screen-sound hops apart."""
    if not hops:
        raise ValueError("offscreen_figures: no off-screen/silent hops")
    scores, _ = score_hops(model, sources, hops, batch_size)
    silent = np.array([not h.truth.overlaps for h in hops], bool)
    below = scores < threshold
    return {
        "n_hops": len(hops), "n_silent": int(silent.sum()), "n_offscreen_sound": int((~silent).sum()),
        "threshold": float(threshold), "below": _mean(below), "below_silent": _mean(below[silent]),
        "below_offscreen_sound": _mean(below[~silent]), "peak_mean": _mean(scores), "_scores": scores,
    }


def energy_floor_effect(sources: Sequence[WorldSource], hop_seconds: float = 0.25) -> dict[str, Any]:
    """What the energy floor keeps, judged with the ground truth, on seconds every ``hop_seconds``."""
    kept, has_event, silent = [], [], []
    for src in sources:
        step = max(1, int(round(hop_seconds * src.config.fps)))
        for i in range(0, len(src), step):
            truth = hop_truth(src.scene, src.scene_frame(i))
            kept.append(src.levels_db[i] >= src.floor_db)
            has_event.append(any(o >= ACTIVE_OVERLAP for o in truth.overlaps.values()))
            silent.append(not truth.overlaps)
    kept, has_event, silent = (np.array(x, bool) for x in (kept, has_event, silent))
    return {
        "n_seconds": int(len(kept)), "kept": _mean(kept), "event_given_kept": _mean(has_event[kept]),
        "silent_given_kept": _mean(silent[kept]), "silent_overall": _mean(silent),
        "silent_rejected": _mean(~kept[silent]), "event_kept": _mean(kept[has_event]),
        "background_db": [round(float(s.background_db), 2) for s in sources],
    }


@torch.inference_mode()
def _embed_audio(model: L3Net, audio: np.ndarray, batch_size: int) -> np.ndarray:
    device = next(model.parameters()).device
    out = [model.embed_audio(torch.from_numpy(np.array(audio[i : i + batch_size], dtype=np.float32)).to(device))
           .float().cpu().numpy() for i in range(0, len(audio), batch_size)]
    return np.concatenate(out).astype(np.float64)


def probe_figures(model: L3Net, n_train: int, n_test: int, *, world: WorldConfig = BENCH, batch_size: int = 64,
                  workers: int = 2) -> dict[str, Any]:
    """Linear probes on 1 s single-event windows: L³ audio embeddings vs log-mel statistics.

    Args:
        model: the network (its audio subnet).
        n_train: windows of the train split to fit on (the first ``n_train`` of the evaluation set).
        n_test: windows of the test split to score.
        world: the preset.
        workers: processes rendering (and caching) the windows' audio; 0 renders in-process
            without the cache.

    Returns:
        Accuracies (top-1) of both probes and the counts.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from models.world.cache import cached_window_audio
    from models.world.difficulty import BENCH_LOGMEL, logmel_statistics
    from models.world.evalsets import render_windows, single_event_windows

    model.eval()
    train = single_event_windows("train", 1.0, n_train, config=world)[:n_train]
    test = single_event_windows("test", 1.0, n_test, config=world)[:n_test]

    def audio(windows, rate: int) -> np.ndarray:
        if workers > 0:
            return cached_window_audio(windows, rate, world, workers=workers, desc=f"rendering probe windows at {rate} Hz")
        return render_windows(windows, rate, world)

    y_train = np.array([w.class_index for w in train])
    y_test = np.array([w.class_index for w in test])
    figures: dict[str, Any] = {"n_train": len(train), "n_test": len(test), "chance": 1.0 / 12}
    for name, features in (
        ("l3", lambda ws: _embed_audio(model, audio(ws, SAMPLE_RATE), batch_size)),
        ("logmel", lambda ws: logmel_statistics(audio(ws, BENCH_LOGMEL.sample_rate))),
    ):
        x_train, x_test = features(train), features(test)
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=1.0))
        probe.fit(x_train, y_train)
        figures[f"{name}_top1"] = float(np.mean(probe.predict(x_test) == y_test))
        figures[f"{name}_dim"] = int(x_train.shape[1])
    return figures


# --------------------------------------------------------------------------- the whole evaluation


@dataclass(frozen=True)
class L3EvalConfig:
    """What :func:`evaluate_l3` runs on.

    Attributes:
        seeds: test scene seeds (≥ 3 for the report).
        world: world preset.
        scene_seconds: the first seconds of each scene that are used.
        hop_seconds: spacing of the hops scanned.
        pairs: AVC pairs (half positive).
        same_video_pairs: same-video negatives, scored apart.
        loc_hops: localization hops, at most.
        max_hops_per_event: localization hops per event, at most.
        offscreen_hops: off-screen/silent hops, at most.
        probe_train, probe_test: single-event windows for the linear probes (0: skip the probes).
        batch_size: pairs per forward pass.
        render_workers: processes rendering world audio into the cache (0: in-process).
        floor: the energy floor the pairs use (the training recipe's).
    """

    seeds: tuple[int, ...] = (200_000, 200_001, 200_002)
    world: WorldConfig = BENCH
    scene_seconds: float = 600.0
    hop_seconds: float = 0.25
    pairs: int = 1000
    same_video_pairs: int = 300
    loc_hops: int = 600
    max_hops_per_event: int = 8
    offscreen_hops: int = 300
    probe_train: int = 2000
    probe_test: int = 2000
    batch_size: int = 32
    render_workers: int = 2
    floor: EnergyFloor = EnergyFloor()

    def __post_init__(self) -> None:
        if len(self.seeds) < 2:
            raise ValueError(f"L3EvalConfig.seeds: expected at least 2 scenes (mismatched audio), found {self.seeds!r}")
        for name in ("pairs", "same_video_pairs", "loc_hops", "max_hops_per_event", "offscreen_hops", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"L3EvalConfig.{name}: expected >= 1, found {getattr(self, name)!r}")
        if self.scene_seconds < 2.0 or self.hop_seconds <= 0:
            raise ValueError(f"L3EvalConfig: expected scene_seconds >= 2 and hop_seconds > 0, found "
                             f"{self.scene_seconds!r} and {self.hop_seconds!r}")


def evaluate_l3(model: L3Net, threshold: float, config: L3EvalConfig = L3EvalConfig(),
                log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Every figure of the report (see the module docstring) for one model and threshold.

    Returns:
        ``{"avc": {...}, "localization": {...}, "offscreen": {...}, "probe": {...},
        "energy_floor": {...}, "threshold": float, "timings_s": {...}, "config": {...}}``.
    """
    log = log or (lambda _msg: None)
    model.eval()
    timings: dict[str, float] = {}

    def timed(name: str, fn):
        t0 = time.perf_counter()
        out = fn()
        timings[name] = round(time.perf_counter() - t0, 2)
        log(f"  {name}: {timings[name]:.1f} s")
        return out

    c = config
    sources = timed("render test scenes", lambda: world_sources(c.world, c.seeds, c.scene_seconds, c.floor, c.render_workers))
    hops = timed("scan hops", lambda: scan_hops(sources, c.hop_seconds))
    loc = select_localization_hops(hops, c.loc_hops, c.max_hops_per_event)
    off = select_offscreen_hops(hops, c.offscreen_hops)
    results: dict[str, Any] = {"threshold": float(threshold)}
    results["energy_floor"] = timed("energy floor", lambda: energy_floor_effect(sources, c.hop_seconds))
    results["avc"] = timed("AVC pairs", lambda: avc_figures(model, sources, c.pairs, c.same_video_pairs, batch_size=c.batch_size))
    loc_fig = timed("localization", lambda: localization_figures(model, sources, loc, batch_size=c.batch_size, threshold=threshold))
    off_fig = timed("off-screen/silent", lambda: offscreen_figures(model, sources, off, threshold, batch_size=c.batch_size))
    on_scores, off_scores = loc_fig.pop("_scores"), off_fig.pop("_scores")
    off_fig["onscreen_vs_offscreen_auc"] = _auc(np.concatenate([on_scores, off_scores]),
                                                np.r_[np.ones(len(on_scores)), np.zeros(len(off_scores))])
    results["localization"], results["offscreen"] = loc_fig, off_fig
    if c.probe_train and c.probe_test:
        results["probe"] = timed("linear probes", lambda: probe_figures(model, c.probe_train, c.probe_test, world=c.world,
                                                                        batch_size=2 * c.batch_size, workers=c.render_workers))
    results["timings_s"] = timings
    cfg = dataclasses.asdict(c)
    cfg["world"] = "bench" if c.world == BENCH else "custom"
    results["config"] = cfg
    return results


def _pct(x: float) -> str:
    return "  n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:5.1f}%"


def format_report(r: dict[str, Any]) -> str:
    """A compact text report of :func:`evaluate_l3`'s result."""
    a, loc, off = r["avc"], r["localization"], r["offscreen"]
    e = r["energy_floor"]
    lines = [
        f"L3 evaluation on test seeds {list(r['config']['seeds'])} ({r['config']['scene_seconds']:g} s each)",
        "1. AVC accuracy",
        f"   decidable pairs   {_pct(a['acc_decidable'])}  (n={a['n_decidable']}: positives {_pct(a['acc_decidable_pos'])} "
        f"n={a['n_decidable_pos']}, negatives {_pct(a['acc_decidable_neg'])} n={a['n_decidable_neg']}; oracle {_pct(a['oracle_decidable'])})",
        f"   all pairs         {_pct(a['acc_all'])}  (n={a['n_pairs']}; class oracle {_pct(a['oracle_all'])}; "
        f"positives {_pct(a['acc_pos'])}, negatives {_pct(a['acc_neg'])}; AUC {a['auc_all']:.3f})",
        f"   same-video negs   {_pct(a['acc_same_video'])}  (n={a['n_same_video']}; decidable {_pct(a['acc_same_video_decidable'])} "
        f"n={a['n_same_video_decidable']}; class oracle {_pct(a['oracle_same_video'])})",
        f"2. Localization on {loc['n_hops']} hops from {loc['n_events']} events ({loc['mean_candidates']:.2f} visible objects per hop)",
        f"   pointing game     {_pct(loc['pointing'])}   cIoU@0.5 {_pct(loc['ciou@0.5'])}   cIoU AUC {loc['ciou_auc']:.3f}",
        f"   mismatched audio  {_pct(loc['pointing_mismatched'])}   chance {_pct(loc['chance'])}   target <= {_pct(loc['mismatched_bound'])} "
        f"({'met' if loc['mismatched_within_bound'] else 'NOT met'})",
        f"3. Off-screen/silent hops below threshold {r['threshold']:.3f}: {_pct(off['below'])} of {off['n_hops']} "
        f"(target >= 90%: {'met' if off['below'] >= 0.9 else 'NOT met'}; silent {_pct(off['below_silent'])} n={off['n_silent']}, "
        f"off-screen sound {_pct(off['below_offscreen_sound'])} n={off['n_offscreen_sound']})",
        f"   on-screen localization hops at/above it: {_pct(loc.get('onscreen_above_threshold', float('nan')))}; "
        f"peak-score AUC on- vs off-screen {off['onscreen_vs_offscreen_auc']:.3f}",
    ]
    if "probe" in r:
        p = r["probe"]
        lines.append(f"4. Linear probe, 1 s single-event windows ({p['n_train']} train / {p['n_test']} test, chance 8.3%): "
                     f"L3 audio embedding ({p['l3_dim']}-d) {_pct(p['l3_top1'])}, log-mel statistics ({p['logmel_dim']}-d) {_pct(p['logmel_top1'])}")
    lines.append(f"Energy floor on the test seconds: keeps {_pct(e['kept'])}; of those kept {_pct(e['event_given_kept'])} hold an event, "
                 f"{_pct(e['silent_given_kept'])} none (vs {_pct(e['silent_overall'])} overall); rejects {_pct(e['silent_rejected'])} of "
                 f"event-free seconds, keeps {_pct(e['event_kept'])} of seconds with an event")
    lines.append("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in r["timings_s"].items()))
    return "\n".join(lines)
