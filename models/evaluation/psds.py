"""The polyphonic sound detection score (PSDS), threshold-independent, from frame scores.

PSDS (Bilen et al., ICASSP 2020) scores a sound event detector over *every* decision
threshold at once; this module computes it exactly in the intersection-based formulation of
Ebbers, Serizel and Haeb-Umbach ("Threshold-independent evaluation of sound event detection
scores", ICASSP 2022), as DCASE task 4 has reported it since 2021. ``sed_scores_eval`` is the
reference implementation; ``tests/test_psds.py`` checks that both give the same number.

**Input.** Per file a :class:`ScoreTable`: T contiguous rows ``[onset, offset)`` (seconds) with
one score per class, as ``avlive --scores-out`` writes it (:func:`read_score_tsv`); strong
reference events (:class:`models.core.events.LabeledEvent`); each file's duration.

**Detections at a threshold λ.** For each class, the maximal runs of rows whose score is
``>= λ`` are the detected events (onset of the run's first row, offset of its last). Only the
scores that occur in a file change its detections, so the statistics below are step functions
of λ with steps at the scores: each file contributes, per class, the change of every statistic
at each of its scores, and summing those changes over all files from the highest score down
gives the statistics of the whole set at every threshold that matters.

**Intersection criteria** (each compared after rounding both sides to ``time_decimals``):

* a detection is *relevant* (detection tolerance criterion) when at least ``dtc`` of its
  length lies inside reference events of its class; an irrelevant one is a false positive;
* a reference event is *detected* (ground-truth intersection criterion) when relevant
  detections cover at least ``gtc`` of its length; the true positive ratio is
  detected / reference events of the class;
* with ``cttc`` (cross-trigger tolerance criterion) an irrelevant detection that lies for at
  least ``cttc`` of its length inside reference events of another class is a cross-trigger
  on that class; the cross-trigger rate on a class is per second of that class's reference.

**From statistics to the score.** Per class c and threshold: TPR_c; the effective false
positive rate ``eFPR_c = (FP_c / D + alpha_ct · mean over the other classes c' of
CT_{c,c'} / T_{c'}) · 3600`` per hour, D the summed file durations and T_{c'} the summed
length of c''s reference events. The class's ROC is the staircase ``g_c(x) = max TPR_c over the
thresholds with eFPR_c <= x`` (0 below every point). The PSD-ROC is ``max(0, mean_c g_c(x) -
alpha_st · std_c g_c(x))`` (std over classes, not sample-corrected), and PSDS is its area over
``[0, max_efpr]`` divided by ``max_efpr``: 1 is perfect, and ``alpha_st`` penalises classes
that do unequally well.

**Reference requirements.** Reference events of one class in one file must not overlap or
touch (:func:`merge_overlapping` joins them, as the world's reference can have overlapping
events of a class); every class scored needs at least one reference event: ``psds`` raises on a
class without, or leaves such classes out with ``drop_empty_classes=True`` (then they are
neither scored nor cross-trigger targets, as if their columns were not in the tables).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from models.core.events import LabeledEvent

__all__ = [
    "PSDS1",
    "PSDS2",
    "PsdsResult",
    "PsdsSetting",
    "ScoreTable",
    "merge_overlapping",
    "psds",
    "read_score_tsv",
]

SECONDS_PER_HOUR = 3600.0
# Thresholds per block when detections are computed for all thresholds of a file at once:
# a block holds (thresholds, rows) booleans, kept near this many cells.
_BLOCK_CELLS = 2_000_000


@dataclass(frozen=True)
class PsdsSetting:
    """One PSDS operating scenario.

    Attributes:
        dtc: detection tolerance criterion, the share of a detection that must lie in
            reference events of its class for it to be relevant (0 < dtc <= 1).
        gtc: ground-truth intersection criterion, the share of a reference event relevant
            detections must cover for it to count as detected (0 < gtc <= 1).
        cttc: cross-trigger tolerance criterion (share of an irrelevant detection inside another
            class's events), or None for no cross-trigger term; given exactly when ``alpha_ct > 0``.
        alpha_ct: weight of the mean cross-trigger rate in the effective FPR (>= 0).
        alpha_st: weight of the across-class standard deviation of the TPR (>= 0).
        max_efpr: the effective FPR (per hour) up to which the ROC's area is taken (> 0).
    """

    dtc: float
    gtc: float
    cttc: float | None = None
    alpha_ct: float = 0.0
    alpha_st: float = 0.0
    max_efpr: float = 100.0

    def __post_init__(self) -> None:
        for name in ("dtc", "gtc"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0 < v <= 1):
                raise ValueError(f"PsdsSetting.{name}: expected a share in (0, 1], found {v!r}")
        if self.cttc is not None and not (isinstance(self.cttc, (int, float)) and 0 < self.cttc <= 1):
            raise ValueError(f"PsdsSetting.cttc: expected a share in (0, 1] or None, found {self.cttc!r}")
        for name in ("alpha_ct", "alpha_st"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"PsdsSetting.{name}: expected a finite weight >= 0, found {v!r}")
        if (self.cttc is None) != (self.alpha_ct == 0):
            raise ValueError(f"PsdsSetting: cttc is given exactly when alpha_ct > 0, found cttc={self.cttc!r} "
                             f"and alpha_ct={self.alpha_ct!r}")
        if not (isinstance(self.max_efpr, (int, float)) and math.isfinite(self.max_efpr) and self.max_efpr > 0):
            raise ValueError(f"PsdsSetting.max_efpr: expected false positives per hour > 0, found {self.max_efpr!r}")


#: DCASE task 4 scenario 1: detections must be well placed in time, no cross-trigger term.
PSDS1 = PsdsSetting(dtc=0.7, gtc=0.7, cttc=None, alpha_ct=0.0, alpha_st=1.0, max_efpr=100.0)
#: DCASE task 4 scenario 2: loose placement, detections on other classes' events penalised.
PSDS2 = PsdsSetting(dtc=0.1, gtc=0.1, cttc=0.3, alpha_ct=0.5, alpha_st=1.0, max_efpr=100.0)


@dataclass(frozen=True)
class ScoreTable:
    """One file's frame scores.

    Attributes:
        onsets: (T,) float64 seconds, each row's start.
        offsets: (T,) float64 seconds, each row's end: ``offsets[i] == onsets[i + 1]`` (rows are
            contiguous) and ``offsets > onsets``.
        scores: (T, C) float64, finite, one column per label.
        labels: (C,) the class of each column.
    """

    onsets: np.ndarray
    offsets: np.ndarray
    scores: np.ndarray
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        onsets = np.asarray(self.onsets, dtype=np.float64).reshape(-1)
        offsets = np.asarray(self.offsets, dtype=np.float64).reshape(-1)
        scores = np.asarray(self.scores, dtype=np.float64)
        labels = tuple(str(x) for x in self.labels)
        if not labels or len(set(labels)) != len(labels):
            raise ValueError(f"ScoreTable.labels: expected distinct class names, found {labels!r}")
        if scores.ndim != 2 or scores.shape[0] < 1 or scores.shape[1] != len(labels):
            raise ValueError(f"ScoreTable.scores: expected shape (rows >= 1, {len(labels)}), found {scores.shape}")
        if onsets.shape != scores.shape[:1] or offsets.shape != scores.shape[:1]:
            raise ValueError(f"ScoreTable: expected {scores.shape[0]} onsets and offsets, found {onsets.shape[0]} "
                             f"and {offsets.shape[0]}")
        if not (np.all(np.isfinite(onsets)) and np.all(np.isfinite(offsets)) and np.all(np.isfinite(scores))):
            raise ValueError("ScoreTable: expected finite times and scores, found NaN or infinity")
        bad = np.flatnonzero(offsets <= onsets)
        if bad.size:
            raise ValueError(f"ScoreTable: row {bad[0]} has no length ({onsets[bad[0]]} to {offsets[bad[0]]} s)")
        gaps = np.flatnonzero(offsets[:-1] != onsets[1:])
        if gaps.size:
            i = gaps[0]
            raise ValueError(f"ScoreTable: rows {i} and {i + 1} are not contiguous (offset {offsets[i]} s, next "
                             f"onset {onsets[i + 1]} s)")
        object.__setattr__(self, "onsets", onsets)
        object.__setattr__(self, "offsets", offsets)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "labels", labels)

    @property
    def boundaries(self) -> np.ndarray:
        """(T + 1,) every row's onset, then the last row's offset."""
        return np.concatenate([self.onsets, self.offsets[-1:]])


def read_score_tsv(path: str | os.PathLike) -> ScoreTable:
    """A score table from a TSV with the header ``onset  offset  <label 1> ...`` and one row
    per frame (what ``avlive --scores-out`` writes and ``sed_scores_eval`` reads).

    Raises:
        ValueError: a header that does not start with onset, offset; a row with the wrong
            number of fields or a value that is not a number (file and line named); no rows.
    """
    with open(path, encoding="utf-8") as f:
        lines = [line.rstrip("\r\n") for line in f]
    if not lines or lines[0].split("\t")[:2] != ["onset", "offset"] or len(lines[0].split("\t")) < 3:
        raise ValueError(f"{path}: expected a header 'onset<TAB>offset<TAB><label>...', found "
                         f"{lines[0][:80] if lines else 'an empty file'!r}")
    header = lines[0].split("\t")
    rows = []
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            raise ValueError(f"{path}:{n}: expected {len(header)} tab-separated fields, found {len(fields)}")
        try:
            rows.append([float(x) for x in fields])
        except ValueError:
            raise ValueError(f"{path}:{n}: expected numbers, found {line[:80]!r}") from None
    if not rows:
        raise ValueError(f"{path}: no score rows after the header")
    table = np.asarray(rows, dtype=np.float64)
    return ScoreTable(table[:, 0], table[:, 1], table[:, 2:], tuple(header[2:]))


def merge_overlapping(events: Sequence[LabeledEvent]) -> list[LabeledEvent]:
    """The events with those of one class in one file that overlap or touch joined into one
    (from the first onset to the last offset), sorted by file, label and onset."""
    out: list[LabeledEvent] = []
    for e in sorted(events, key=lambda x: (x.filename, x.label, x.onset, x.offset)):
        last = out[-1] if out else None
        if last is not None and last.filename == e.filename and last.label == e.label and e.onset <= last.offset:
            if e.offset > last.offset:
                out[-1] = LabeledEvent(last.filename, last.onset, e.offset, last.label)
        else:
            out.append(e)
    return out


@dataclass(frozen=True)
class PsdsResult:
    """A PSDS and the curves it came from.

    Attributes:
        value: the PSDS, in [0, 1].
        per_class: class → the PSDS of its own ROC alone (no ``alpha_st`` term).
        efpr: (P,) effective false positive rates per hour of the PSD-ROC, ascending, the last
            one ``max_efpr``.
        etpr: (P,) its effective true positive rate, held from each point to the next.
        labels: the classes scored.
        dropped: classes left out for lack of reference events (``drop_empty_classes``).
        setting: the scenario.
    """

    value: float
    per_class: Mapping[str, float]
    efpr: np.ndarray
    etpr: np.ndarray
    labels: tuple[str, ...]
    dropped: tuple[str, ...]
    setting: PsdsSetting = field(repr=False)


def psds(scores: Mapping[str, ScoreTable], reference: Sequence[LabeledEvent], durations: Mapping[str, float],
         setting: PsdsSetting = PSDS1, *, drop_empty_classes: bool = False, time_decimals: int = 6) -> PsdsResult:
    """The PSDS of per-file frame scores against strong reference events (see the module
    docstring).

    Args:
        scores: file name → its score table; every table has the same labels in the same order.
        reference: the reference events; each file is one of ``scores``' keys, each label one of
            the tables' labels.
        durations: file name → seconds, for exactly the files in ``scores`` (the false positive
            rate is per second of these).
        setting: the scenario (:data:`PSDS1`, :data:`PSDS2` or another).
        drop_empty_classes: leave out the classes without reference events instead of raising.
        time_decimals: the intersection criteria compare times rounded to this many decimals,
            so a detection meeting a criterion exactly is not lost to floating-point error.

    Raises:
        ValueError: no tables, tables with different labels, files without a duration or
            durations without a table, a non-positive duration, reference events in a file or of
            a label that is not scored, overlapping or touching reference events of one class
            in one file, a class without reference events (unless ``drop_empty_classes``).
    """
    if not isinstance(setting, PsdsSetting):
        raise ValueError(f"psds: expected a PsdsSetting, found {type(setting).__name__}")
    if not scores:
        raise ValueError("psds: expected score tables for at least one file, found none")
    files = sorted(scores)
    labels = scores[files[0]].labels
    for name in files:
        if scores[name].labels != labels:
            raise ValueError(f"psds: the score table of {name!r} has labels {scores[name].labels}, "
                             f"expected {labels} as in {files[0]!r}")
    if set(durations) != set(files):
        missing, extra = sorted(set(files) - set(durations)), sorted(set(durations) - set(files))
        raise ValueError(f"psds: expected a duration for exactly the scored files; without one: {missing}, "
                         f"without scores: {extra}")
    for name in files:
        d = durations[name]
        if not (isinstance(d, (int, float)) and math.isfinite(d) and d > 0):
            raise ValueError(f"psds: expected the duration of {name!r} in seconds > 0, found {d!r}")
    by_file_label: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for e in reference:
        if e.filename not in scores:
            raise ValueError(f"psds: a reference event is in file {e.filename!r}, which has no score table")
        if e.label not in labels:
            raise ValueError(f"psds: a reference event has label {e.label!r}, not one of the scored labels {labels}")
        if not e.offset > e.onset:
            raise ValueError(f"psds: the reference event {e.label!r} at {e.onset} s in {e.filename!r} has no length")
        by_file_label.setdefault((e.filename, e.label), []).append((float(e.onset), float(e.offset)))
    intervals: dict[tuple[str, str], np.ndarray] = {}
    for key, spans in by_file_label.items():
        arr = np.array(sorted(spans), dtype=np.float64)  # (N, 2) onset, offset
        clash = np.flatnonzero(arr[1:, 0] <= arr[:-1, 1])
        if clash.size:
            i = clash[0]
            raise ValueError(f"psds: reference events of {key[1]!r} in {key[0]!r} overlap or touch ({arr[i, 0]}-"
                             f"{arr[i, 1]} s and {arr[i + 1, 0]}-{arr[i + 1, 1]} s); join them first "
                             f"(models.evaluation.psds.merge_overlapping)")
        intervals[key] = arr
    counts = {c: sum(len(intervals.get((f, c), ())) for f in files) for c in labels}
    empty = tuple(c for c in labels if counts[c] == 0)
    if empty and not drop_empty_classes:
        raise ValueError(f"psds: no reference events for {list(empty)}; every scored class needs one "
                         f"(or pass drop_empty_classes=True)")
    kept = [i for i, c in enumerate(labels) if counts[c] > 0]
    if not kept:
        raise ValueError("psds: no reference events at all")
    kept_labels = tuple(labels[i] for i in kept)
    empty_spans = np.zeros((0, 2))
    total_seconds = float(sum(durations[f] for f in files))
    ref_seconds = {c: float(sum((intervals[(f, c)][:, 1] - intervals[(f, c)][:, 0]).sum()
                               for f in files if (f, c) in intervals)) for c in kept_labels}

    # -- statistics at every threshold, per class, pooled over the files
    rocs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for ci, c in zip(kept, kept_labels):
        others = [o for o in kept_labels if o != c]
        thresholds, changes = [], []
        for f in files:
            table = scores[f]
            t, stats = _file_class_statistics(
                table.scores[:, ci], table.boundaries, intervals.get((f, c), empty_spans),
                [intervals.get((f, o), empty_spans) for o in others] if setting.cttc is not None else [],
                setting, time_decimals)
            # the change at each of this file's scores as the threshold falls to it (above all: 0)
            changes.append(stats - np.concatenate([stats[1:], np.zeros_like(stats[:1])]))
            thresholds.append(t)
        pooled, where = np.unique(np.concatenate(thresholds), return_inverse=True)
        total = np.zeros((pooled.size, changes[0].shape[1]))
        np.add.at(total, where, np.concatenate(changes))
        stats = np.cumsum(total[::-1], axis=0)[::-1]  # (U, 2 + others): tp, fp, ct per other class
        stats = np.concatenate([stats, np.zeros_like(stats[:1])])  # threshold above every score: nothing
        tpr = stats[:, 0] / counts[c]
        rate = stats[:, 1] / total_seconds
        if setting.alpha_ct > 0 and others:
            ct_rates = np.stack([stats[:, 2 + k] / ref_seconds[o] for k, o in enumerate(others)], axis=1)
            rate = rate + setting.alpha_ct * ct_rates.mean(axis=1)
        rocs[c] = _staircase(tpr, rate * SECONDS_PER_HOUR, setting.max_efpr)

    # -- the PSD-ROC over the union of the classes' eFPR points, and its area
    grid = np.unique(np.concatenate([x for x, _ in rocs.values()]))
    tprs = np.stack([y[np.searchsorted(x, grid, side="right") - 1] for x, y in rocs.values()])  # (classes, grid)
    etpr = np.maximum(tprs.mean(axis=0) - setting.alpha_st * tprs.std(axis=0), 0.0)
    efpr = np.concatenate([grid, [setting.max_efpr]])
    etpr = np.concatenate([etpr, etpr[-1:]])
    value = float(np.sum(etpr[:-1] * np.diff(efpr)) / setting.max_efpr)
    per_class = {c: float(np.sum(y * np.diff(np.concatenate([x, [setting.max_efpr]]))) / setting.max_efpr)
                 for c, (x, y) in rocs.items()}
    return PsdsResult(value, per_class, efpr, etpr, kept_labels, empty, setting)


def _staircase(tpr: np.ndarray, efpr: np.ndarray, max_efpr: float) -> tuple[np.ndarray, np.ndarray]:
    """A class's ROC as a staircase: the eFPR knots (ascending, from 0, up to ``max_efpr``) and
    the best TPR reached at or below each, ``(K,)`` and ``(K,)``."""
    order = np.lexsort((tpr, efpr))
    x, y = efpr[order], np.maximum.accumulate(tpr[order])
    last = np.concatenate([x[1:] != x[:-1], [True]])  # per eFPR value, its last (best) point
    x, y = x[last], y[last]
    keep = x <= max_efpr
    return x[keep], y[keep]


def _covered(t: np.ndarray, spans: np.ndarray, before: np.ndarray) -> np.ndarray:
    """Seconds of the disjoint, sorted ``spans`` (N, 2) that lie before each time in ``t``;
    ``before`` (N,) is the summed length of the spans ahead of each span."""
    if spans.shape[0] == 0:
        return np.zeros(t.shape)
    j = np.searchsorted(spans[:, 0], t, side="right") - 1
    jc = np.maximum(j, 0)
    inside = before[jc] + np.minimum(t, spans[jc, 1]) - spans[jc, 0]
    return np.where(j >= 0, inside, 0.0)


def _file_class_statistics(s: np.ndarray, bounds: np.ndarray, target: np.ndarray, others: list[np.ndarray],
                           setting: PsdsSetting, decimals: int) -> tuple[np.ndarray, np.ndarray]:
    """True positives, false positives and cross-triggers of one class in one file, at each of
    its distinct scores taken as the threshold.

    Args:
        s: (T,) the class's scores.
        bounds: (T + 1,) row boundaries.
        target: (N, 2) the class's reference events, sorted, disjoint.
        others: per other class, (N', 2) its reference events (empty list: no cross-triggers).

    Returns:
        ``(thresholds (K,) ascending, stats (K, 2 + len(others)))``: columns tp, fp, then the
        cross-triggers on each other class.
    """
    thresholds = np.unique(s)
    k_all = thresholds.size
    stats = np.zeros((k_all, 2 + len(others)))
    lengths = target[:, 1] - target[:, 0]
    before = np.concatenate([[0.0], np.cumsum(lengths)[:-1]])
    need_gt = np.round(setting.gtc * lengths, decimals)
    # seconds of the class's (and each other class's) events before every row boundary: a run
    # from boundary i to boundary j holds covered[j] - covered[i] of them
    covered = _covered(bounds, target, before)  # (T + 1,)
    other_covered = [None if o.shape[0] == 0 else
                     _covered(bounds, o, np.concatenate([[0.0], np.cumsum(o[:, 1] - o[:, 0])[:-1]])) for o in others]
    n = target.shape[0]
    block = max(1, _BLOCK_CELLS // max(1, s.size))
    for k0 in range(0, k_all, block):
        lam = thresholds[k0:k0 + block]
        kb = lam.size
        on = s[None, :] >= lam[:, None]  # (kb, T): the rows detected at each threshold
        edges = np.diff(np.pad(on, ((0, 0), (1, 1))).astype(np.int8), axis=1)  # (kb, T + 1)
        row, first = np.nonzero(edges == 1)  # a run starts at row `first` (row-major: in order)
        _, stop = np.nonzero(edges == -1)  # ... and ends before row `stop`
        a, b = bounds[first], bounds[stop]
        length = b - a
        inside = covered[stop] - covered[first]
        relevant = np.round(inside, decimals) >= np.round(setting.dtc * length, decimals)
        stats[k0:k0 + kb, 1] = np.bincount(row[~relevant], minlength=kb)

        if n:
            # coverage of each reference event by the relevant detections at each threshold
            ra, rb, rk = a[relevant], b[relevant], row[relevant]
            lo = np.searchsorted(target[:, 1], ra, side="right")  # first event ending after the run starts
            hi = np.searchsorted(target[:, 0], rb, side="left") - 1  # last event starting before it ends
            touch = lo <= hi
            ra, rb, rk, lo, hi = ra[touch], rb[touch], rk[touch], lo[touch], hi[touch]
            cover = np.zeros((kb, n))
            np.add.at(cover, (rk, lo), np.minimum(rb, target[lo, 1]) - np.maximum(ra, target[lo, 0]))
            two = hi > lo  # the run also reaches into a later event: its share of that one too
            np.add.at(cover, (rk[two], hi[two]),
                      np.minimum(rb[two], target[hi[two], 1]) - np.maximum(ra[two], target[hi[two], 0]))
            # events strictly between the first and the last one a run touches lie wholly inside it
            full = np.zeros((kb, n + 1), np.int64)
            inner = hi - lo >= 2
            np.add.at(full, (rk[inner], lo[inner] + 1), 1)
            np.add.at(full, (rk[inner], hi[inner]), -1)
            whole = np.cumsum(full[:, :n], axis=1) > 0
            cover = np.where(whole, lengths[None, :], cover)
            stats[k0:k0 + kb, 0] = (np.round(cover, decimals) >= need_gt[None, :]).sum(axis=1)

        if others:
            need_ct = np.round(setting.cttc * length, decimals)
            # a relevant detection has no cross-trigger share (0), which meets the criterion only
            # when the criterion itself rounds to 0 (a detection shorter than a few microseconds)
            zero_need = np.bincount(row[relevant & (need_ct <= 0)], minlength=kb)
            irrelevant = ~relevant
            nfirst, nstop, nrow, nneed = first[irrelevant], stop[irrelevant], row[irrelevant], need_ct[irrelevant]
            for m, cum in enumerate(other_covered):
                if cum is None:
                    continue
                cross = cum[nstop] - cum[nfirst]
                hit = np.round(cross, decimals) >= nneed
                stats[k0:k0 + kb, 2 + m] = np.bincount(nrow[hit], minlength=kb) + zero_need
    return thresholds, stats
