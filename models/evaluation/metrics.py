"""The one metrics module: classification, sound event detection and sound-source localisation.

Runtime dependencies are numpy and scipy only. The sound-event-detection metrics reproduce
``sed_eval`` 0.2.1 (``sed_eval.sound_event.EventBasedMetrics`` / ``SegmentBasedMetrics``),
the classification metrics reproduce scikit-learn; both libraries are used by the tests only.

Classification (``N`` samples, ``C`` classes):

* :func:`topk_accuracy` -- scores ``(N, C)``, integer targets ``(N,)``.
* :func:`mean_average_precision` -- scores ``(N, C)``, binary targets ``(N, C)``.
* :func:`roc_auc_per_class`, :func:`d_prime`.
* :func:`multilabel_f1` -- binary predictions and targets ``(N, C)``: micro, macro, per class.
* :func:`confusion_matrix`, :func:`per_class_accuracy` -- integer targets and predictions ``(N,)``.

Sound event detection (lists of :class:`~models.core.events.LabeledEvent`, any number of files):

* :func:`event_based_metrics`, :func:`segment_based_metrics` -> :class:`SedScores`.

Localisation (heatmaps ``(H, W)`` or ``(N, H, W)``, boxes ``x0, y0, x1, y1`` in pixels):

* :func:`pointing_game`, :func:`ciou`, :func:`ciou_auc`, :func:`ciou_at`, :func:`box_mask`.

Box convention (all localisation functions): pixel ``(row r, column c)`` covers
``[c, c+1) x [r, r+1)`` and is *inside* a box when its centre ``(c + 0.5, r + 0.5)`` lies in the
half-open rectangle ``[x0, x1) x [y0, y1)``. For integer boxes that is exactly the numpy slice
``mask[y0:y1, x0:x1]``, i.e. the ground-truth maps of the LVS / EZ-VSL evaluation code
(``x1``/``y1`` exclusive).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from models.core.events import LabeledEvent

__all__ = [
    "topk_accuracy",
    "mean_average_precision",
    "roc_auc_per_class",
    "d_prime",
    "multilabel_f1",
    "confusion_matrix",
    "per_class_accuracy",
    "SedScores",
    "event_based_metrics",
    "segment_based_metrics",
    "box_mask",
    "pointing_game",
    "ciou",
    "ciou_auc",
    "ciou_at",
]

# sed_eval divides every rate by (Nref + eps) with eps = numpy.spacing(1).
_EPS = float(np.spacing(1))


# --------------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------------

def _as_2d_scores(scores) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"scores: expected shape (N, C), found {scores.shape}")
    return scores


def topk_accuracy(scores, targets, k: int = 1) -> float:
    """Fraction of samples whose target class is among the ``k`` highest scores.

    Args:
        scores: ``(N, C)`` float scores (logits or probabilities).
        targets: ``(N,)`` integer class indices in ``[0, C)``.
        k: how many top classes count as a hit (``1 <= k``; ``k >= C`` gives 1.0).

    Ties are broken like ``sklearn.metrics.top_k_accuracy_score``: among equal scores the
    class with the *higher* index ranks first. Returns NaN for ``N == 0``.
    """
    scores = _as_2d_scores(scores)
    targets = np.asarray(targets)
    if targets.shape != (scores.shape[0],):
        raise ValueError(f"targets: expected shape ({scores.shape[0]},), found {targets.shape}")
    if k < 1:
        raise ValueError(f"k: expected >= 1, found {k}")
    n, c = scores.shape
    if n == 0:
        return float("nan")
    targets = targets.astype(np.int64)
    if targets.min() < 0 or targets.max() >= c:
        raise ValueError(f"targets: expected class indices in [0, {c}), found [{targets.min()}, {targets.max()}]")
    target_score = scores[np.arange(n), targets][:, None]
    index = np.arange(c)[None, :]
    # Rank of the target = classes scored strictly higher + tied classes with a higher index.
    rank = (scores > target_score).sum(1) + ((scores == target_score) & (index > targets[:, None])).sum(1)
    return float(np.mean(rank < k))


def _average_precision_1d(score: np.ndarray, positive: np.ndarray) -> float:
    """AP of one class, as sklearn's ``average_precision_score``: sum over distinct score
    thresholds (descending) of (recall increase) x precision. NaN without positives."""
    n_pos = int(positive.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-score, kind="stable")
    s = score[order]
    tp = np.cumsum(positive[order], dtype=np.float64)
    # The last index of every run of equal scores is a threshold.
    last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]
    tp = tp[last]
    fp = (last + 1) - tp
    precision = tp / (tp + fp)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def mean_average_precision(scores, targets) -> tuple[float, np.ndarray]:
    """Mean average precision over classes, and the per-class AP.

    Args:
        scores: ``(N, C)`` float scores.
        targets: ``(N, C)`` binary (0/1 or bool) ground truth.

    Returns:
        ``(mAP, ap)`` where ``ap`` is ``(C,)`` float64, each entry equal to
        ``sklearn.metrics.average_precision_score(targets[:, c], scores[:, c])`` (step-wise
        precision-recall area, ties grouped into one threshold) and NaN for a class with no
        positive sample. ``mAP`` is the mean over the classes that have positives (NaN if none).
    """
    scores = _as_2d_scores(scores)
    targets = np.asarray(targets)
    if targets.shape != scores.shape:
        raise ValueError(f"targets: expected shape {scores.shape}, found {targets.shape}")
    positive = targets.astype(bool)
    ap = np.array([_average_precision_1d(scores[:, j], positive[:, j]) for j in range(scores.shape[1])],
                  dtype=np.float64)
    return _nanmean(ap), ap


def roc_auc_per_class(scores, targets) -> np.ndarray:
    """Area under the ROC curve of each class.

    Args:
        scores: ``(N, C)`` float scores.
        targets: ``(N, C)`` binary ground truth.

    Returns:
        ``(C,)`` float64: the Mann-Whitney statistic with mid-ranks for ties, which equals
        ``sklearn.metrics.roc_auc_score(targets[:, c], scores[:, c])``; NaN for a class whose
        targets are all positive or all negative. Average with ``np.nanmean`` for macro AUC.
    """
    from scipy.stats import rankdata  # imported on first use: scipy.stats takes seconds to import

    scores = _as_2d_scores(scores)
    targets = np.asarray(targets)
    if targets.shape != scores.shape:
        raise ValueError(f"targets: expected shape {scores.shape}, found {targets.shape}")
    positive = targets.astype(bool)
    out = np.full(scores.shape[1], np.nan)
    for j in range(scores.shape[1]):
        n_pos = int(positive[:, j].sum())
        n_neg = positive.shape[0] - n_pos
        if n_pos == 0 or n_neg == 0:
            continue
        ranks = rankdata(scores[:, j])  # average ranks, 1-based
        out[j] = (ranks[positive[:, j]].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
    return out


def d_prime(auc):
    """Sensitivity index from ROC AUC: ``d' = sqrt(2) * Phi^-1(auc)`` (AudioSet convention).

    Scalar in, float out; array in, array out. ``auc = 1`` gives ``inf``, ``0.5`` gives 0.
    """
    from scipy.stats import norm

    value = math.sqrt(2.0) * norm.ppf(np.asarray(auc, dtype=np.float64))
    return float(value) if np.ndim(value) == 0 else value


def multilabel_f1(predictions, targets, zero_division: float = 0.0) -> dict:
    """Micro, macro and per-class F1 of binary multi-label predictions.

    Args:
        predictions: ``(N, C)`` binary decisions (already thresholded).
        targets: ``(N, C)`` binary ground truth.
        zero_division: the F1 of a class (or of the micro total) with no positive target and
            no positive prediction (``TP + FP + FN == 0``); sklearn's default counts it as 0.

    Returns:
        ``{"micro": float, "macro": float, "per_class": (C,) ndarray}``, equal to
        ``sklearn.metrics.f1_score(targets, predictions, average=...)``. Macro is the plain
        mean over all ``C`` classes.
    """
    predictions = np.asarray(predictions).astype(bool)
    targets = np.asarray(targets).astype(bool)
    if predictions.ndim != 2 or predictions.shape != targets.shape:
        raise ValueError(f"predictions and targets: expected equal (N, C) shapes, found {predictions.shape} and {targets.shape}")
    tp = (predictions & targets).sum(0).astype(np.float64)
    fp = (predictions & ~targets).sum(0).astype(np.float64)
    fn = (~predictions & targets).sum(0).astype(np.float64)

    def f1(tp_, fp_, fn_):
        denom = 2 * tp_ + fp_ + fn_
        return np.where(denom > 0, 2 * tp_ / np.where(denom > 0, denom, 1.0), zero_division)

    per_class = f1(tp, fp, fn)
    micro = float(f1(tp.sum(), fp.sum(), fn.sum()))
    macro = float(per_class.mean()) if per_class.size else float("nan")
    return {"micro": micro, "macro": macro, "per_class": per_class}


def confusion_matrix(targets, predictions, num_classes: int | None = None) -> np.ndarray:
    """``(C, C)`` int64 counts; row = true class, column = predicted class (sklearn's layout).

    Args:
        targets: ``(N,)`` integer true classes.
        predictions: ``(N,)`` integer predicted classes.
        num_classes: ``C``; default ``max(targets, predictions) + 1``.
    """
    targets = np.asarray(targets).astype(np.int64).ravel()
    predictions = np.asarray(predictions).astype(np.int64).ravel()
    if targets.shape != predictions.shape:
        raise ValueError(f"targets and predictions: expected equal lengths, found {targets.size} and {predictions.size}")
    if num_classes is None:
        num_classes = int(max(targets.max(initial=-1), predictions.max(initial=-1))) + 1
    if targets.size and (min(targets.min(), predictions.min()) < 0
                         or max(targets.max(), predictions.max()) >= num_classes):
        raise ValueError(f"class indices: expected values in [0, {num_classes})")
    flat = np.bincount(targets * num_classes + predictions, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).astype(np.int64)


def per_class_accuracy(targets, predictions, num_classes: int | None = None) -> np.ndarray:
    """``(C,)`` float64: fraction of each true class predicted correctly (per-class recall;
    the diagonal of the row-normalised confusion matrix); NaN for a class with no sample.
    ``np.nanmean`` of it is the balanced accuracy."""
    cm = confusion_matrix(targets, predictions, num_classes).astype(np.float64)
    support = cm.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / support, np.nan)


# --------------------------------------------------------------------------------------------
# Sound event detection (sed_eval 0.2.1 semantics)
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SedScores:
    """Scores of one SED evaluation, plain Python types only.

    Overall values are micro-averaged over all files and classes; ``macro_*`` are the
    means over classes of the ``class_wise_*`` values, *ignoring NaN* (sed_eval's
    ``class_wise_average``). Following sed_eval, a precision is NaN when there is no
    system output and a recall is NaN when there is no reference, and an F1 built from a NaN
    is NaN -- so a class that never occurs in the reference, *or that the system never
    outputs*, drops out of ``macro_f1``. Rates divide by ``Nref + eps`` (huge, not NaN, when
    ``Nref == 0``) and an absent class has error rate 0, which does enter ``macro_error_rate``.
    """

    f1: float
    precision: float
    recall: float
    error_rate: float
    substitution_rate: float
    deletion_rate: float
    insertion_rate: float
    macro_f1: float
    macro_precision: float
    macro_recall: float
    macro_error_rate: float
    class_wise_f1: dict = field(default_factory=dict)
    class_wise_precision: dict = field(default_factory=dict)
    class_wise_recall: dict = field(default_factory=dict)
    class_wise_error_rate: dict = field(default_factory=dict)
    n_ref: int = 0
    n_sys: int = 0
    n_tp: int = 0
    n_files: int = 0

    def to_dict(self, nan_as_none: bool = True) -> dict:
        """A JSON-ready dict (copies). NaN becomes ``None`` unless ``nan_as_none=False``
        (``json.dumps`` would otherwise write the non-standard token ``NaN``)."""

        def clean(value):
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items()}
            if nan_as_none and isinstance(value, float) and math.isnan(value):
                return None
            return value

        return {k: clean(v) for k, v in asdict(self).items()}


def _nanmean(values) -> float:
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")


def _precision(ntp: float, nsys: float, zero_score: bool) -> float:
    if nsys == 0:
        return 0.0 if zero_score else float("nan")
    return ntp / nsys


def _recall(ntp: float, nref: float) -> float:
    return float("nan") if nref == 0 else ntp / nref


def _f1(p: float, r: float) -> float:
    if p == 0 and r == 0:
        return 0.0
    return 2.0 * p * r / (p + r)  # NaN in, NaN out


def _scores(overall: dict, class_wise: dict[str, dict], n_files: int, zero_score: bool) -> SedScores:
    """Turn accumulated counts into :class:`SedScores` with sed_eval's formulas.

    ``overall`` holds Nref, Nsys, Ntp, S, D, I; each ``class_wise`` entry Nref, Nsys, Ntp, Nfp, Nfn.
    """
    nref = overall["Nref"]
    p = _precision(overall["Ntp"], overall["Nsys"], zero_score)
    r = _recall(overall["Ntp"], nref)
    s_rate = overall["S"] / (nref + _EPS)
    d_rate = overall["D"] / (nref + _EPS)
    i_rate = overall["I"] / (nref + _EPS)

    cw_f1, cw_p, cw_r, cw_er = {}, {}, {}, {}
    for label, c in class_wise.items():
        cp = _precision(c["Ntp"], c["Nsys"], zero_score)
        cr = _recall(c["Ntp"], c["Nref"])
        cw_p[label], cw_r[label], cw_f1[label] = float(cp), float(cr), float(_f1(cp, cr))
        cw_er[label] = float(c["Nfn"] / (c["Nref"] + _EPS) + c["Nfp"] / (c["Nref"] + _EPS))

    return SedScores(
        f1=float(_f1(p, r)), precision=float(p), recall=float(r),
        error_rate=float(s_rate + d_rate + i_rate), substitution_rate=float(s_rate),
        deletion_rate=float(d_rate), insertion_rate=float(i_rate),
        macro_f1=_nanmean(list(cw_f1.values())), macro_precision=_nanmean(list(cw_p.values())),
        macro_recall=_nanmean(list(cw_r.values())), macro_error_rate=_nanmean(list(cw_er.values())),
        class_wise_f1=cw_f1, class_wise_precision=cw_p, class_wise_recall=cw_r, class_wise_error_rate=cw_er,
        n_ref=int(overall["Nref"]), n_sys=int(overall["Nsys"]), n_tp=int(overall["Ntp"]), n_files=int(n_files),
    )


def _group_by_file(reference: Sequence[LabeledEvent], estimated: Sequence[LabeledEvent],
                   labels: Sequence[str] | None, filenames: Iterable[str] | None):
    """Label list, and per file the (reference, estimated) events in input order."""
    reference, estimated = list(reference), list(estimated)
    if labels is None:
        labels = sorted({e.label for e in reference} | {e.label for e in estimated})
    else:
        labels = list(labels)
        if len(set(labels)) != len(labels):
            raise ValueError(f"labels: expected unique labels, found {labels}")
        unknown = sorted({e.label for e in reference + estimated} - set(labels))
        if unknown:
            raise ValueError(f"events carry labels missing from `labels`: {unknown}")
    if filenames is None:
        files = sorted({e.filename for e in reference} | {e.filename for e in estimated})
    else:
        files = list(dict.fromkeys(filenames))
    by_file: dict[str, tuple[list, list]] = {f: ([], []) for f in files}
    for e in reference:
        if e.filename in by_file:
            by_file[e.filename][0].append(e)
    for e in estimated:
        if e.filename in by_file:
            by_file[e.filename][1].append(e)
    return labels, by_file


def _event_arrays(events: list[LabeledEvent], label_index: dict[str, int]):
    onset = np.array([e.onset for e in events], dtype=np.float64)
    offset = np.array([e.offset for e in events], dtype=np.float64)
    label = np.array([label_index[e.label] for e in events], dtype=np.int64)
    return onset, offset, label


def _hopcroft_karp(adjacency: dict[int, list[int]]) -> dict[int, int]:
    """Maximum-cardinality bipartite matching; returns ``{right vertex: left vertex}``.

    ``adjacency`` maps each left vertex to its right neighbours; iteration order matters.
    Which of the (possibly many) maximum matchings comes out decides sed_eval's substitution
    count, so this follows the traversal order of the Hopcroft-Karp formulation sed_eval uses
    (D. Eppstein's, via mir_eval): a greedy first pass over left vertices in order, then phases
    of breadth-first layering from the free left vertices, and depth-first augmentation from
    the free right vertices of the last layer in discovery order.
    """
    match: dict[int, int] = {}
    for u, neighbours in adjacency.items():
        for v in neighbours:
            if v not in match:
                match[v] = u
                break

    start = object()  # marks a free left vertex at the root of the layering
    while True:
        taken = set(match.values())
        parent: dict[int, object] = {u: start for u in adjacency if u not in taken}
        frontier = list(parent)
        layered: dict[int, list[int]] = {}  # right vertex -> left vertices reaching it
        free_right: list[int] = []
        while frontier and not free_right:
            reached: dict[int, list[int]] = {}
            for u in frontier:
                for v in adjacency[u]:
                    if v not in layered:
                        reached.setdefault(v, []).append(u)
            frontier = []
            for v, us in reached.items():
                layered[v] = us
                if v in match:
                    frontier.append(match[v])
                    parent[match[v]] = v
                else:
                    free_right.append(v)
        if not free_right:
            return match

        def augment(v: int) -> bool:
            us = layered.pop(v, None)
            if us is None:
                return False
            for u in us:
                if u in parent:
                    back = parent.pop(u)
                    if back is start or augment(back):
                        match[v] = u
                        return True
            return False

        for v in free_right:
            augment(v)


def event_based_metrics(
    reference: Sequence[LabeledEvent],
    estimated: Sequence[LabeledEvent],
    t_collar: float = 0.2,
    percentage_of_length: float = 0.2,
    evaluate_onset: bool = True,
    evaluate_offset: bool = True,
    event_matching_type: str = "optimal",
    *,
    labels: Sequence[str] | None = None,
    filenames: Iterable[str] | None = None,
    zero_score: bool = False,
) -> SedScores:
    """Event-based SED metrics with the semantics of ``sed_eval.sound_event.EventBasedMetrics``
    fed one file at a time (counts accumulated over files, scores computed once at the end).

    Args:
        reference, estimated: events of any number of files. Within a file the *input order*
            matters, as in sed_eval: substitutions are counted greedily in that order (and with
            ``'greedy'`` matching, hits too).
        t_collar: onset tolerance in seconds, ``|ref.onset - est.onset| <= t_collar``.
        percentage_of_length: offset tolerance ``|ref.offset - est.offset| <= max(t_collar,
            percentage_of_length * (ref.offset - ref.onset))``. (sed_eval's default is 0.5;
            0.2 is the DCASE task 4 setting.)
        evaluate_onset, evaluate_offset: which boundaries must match (not both False).
        event_matching_type: ``'optimal'`` -- hits are a maximum bipartite matching of
            same-label event pairs meeting the conditions -- or ``'greedy'`` -- each reference
            takes the first unused estimate that qualifies.
        labels: class list; default the union of the labels in both lists. Events with a label
            outside an explicit list raise ``ValueError``.
        filenames: files to evaluate; default the union of the files in both lists (a file with
            estimates only contributes insertions). Pass the full test-set file list to
            evaluate files without reference events; events of files not listed are ignored.
        zero_score: sed_eval's ``empty_system_output_handling='zero_score'``: precision 0
            instead of NaN when there is no system output.

    A hit is a same-label pair meeting the conditions. Among the references and estimates left
    over, each reference (in order) takes the first unused estimate meeting the time
    conditions regardless of label: a substitution. The remaining estimates are insertions and
    the remaining references deletions; ``ER = (S + D + I) / Nref``. Class-wise, there are no
    substitutions: ``ER_c = (FN_c + FP_c) / Nref_c``.
    """
    if not evaluate_onset and not evaluate_offset:
        raise ValueError("evaluate_onset and evaluate_offset cannot both be False")
    if event_matching_type not in ("optimal", "greedy"):
        raise ValueError(f"event_matching_type: expected 'optimal' or 'greedy', found {event_matching_type!r}")
    if not t_collar >= 0:
        raise ValueError(f"t_collar: expected >= 0, found {t_collar}")
    if not 0.0 <= percentage_of_length <= 1.0:
        raise ValueError(f"percentage_of_length: expected a value in [0, 1], found {percentage_of_length}")

    labels, by_file = _group_by_file(reference, estimated, labels, filenames)
    label_index = {label: i for i, label in enumerate(labels)}
    n_labels = len(labels)
    overall = dict.fromkeys(("Nref", "Nsys", "Ntp", "S", "D", "I"), 0)
    cw_ref = np.zeros(n_labels, dtype=np.int64)
    cw_sys = np.zeros(n_labels, dtype=np.int64)
    cw_tp = np.zeros(n_labels, dtype=np.int64)

    for ref_events, est_events in by_file.values():
        r_on, r_off, r_lab = _event_arrays(ref_events, label_index)
        e_on, e_off, e_lab = _event_arrays(est_events, label_index)
        n_ref, n_sys = r_on.size, e_on.size

        # Time conditions, ignoring labels: (n_ref, n_sys).
        valid = np.ones((n_ref, n_sys), dtype=bool)
        if evaluate_onset:
            valid &= np.abs(r_on[:, None] - e_on[None, :]) <= t_collar
        if evaluate_offset:
            tolerance = np.maximum(t_collar, percentage_of_length * (r_off - r_on))
            valid &= np.abs(r_off[:, None] - e_off[None, :]) <= tolerance[:, None]
        hit = valid & (r_lab[:, None] == e_lab[None, :])

        ref_matched = np.zeros(n_ref, dtype=bool)
        sys_matched = np.zeros(n_sys, dtype=bool)
        if event_matching_type == "optimal":
            adjacency: dict[int, list[int]] = {}
            for j, i in zip(*np.nonzero(hit)):  # reference-major order
                adjacency.setdefault(int(i), []).append(int(j))
            for j, i in _hopcroft_karp(adjacency).items():
                ref_matched[j] = sys_matched[i] = True
        else:
            for j in range(n_ref):
                candidates = np.nonzero(hit[j] & ~sys_matched)[0]
                if candidates.size:
                    ref_matched[j] = sys_matched[candidates[0]] = True

        n_tp = int(ref_matched.sum())
        n_subs = 0
        sys_free = ~sys_matched
        for j in np.nonzero(~ref_matched)[0]:
            candidates = np.nonzero(valid[j] & sys_free)[0]
            if candidates.size:
                sys_free[candidates[0]] = False
                n_subs += 1

        overall["Nref"] += n_ref
        overall["Nsys"] += n_sys
        overall["Ntp"] += n_tp
        overall["S"] += n_subs
        overall["D"] += n_ref - n_tp - n_subs
        overall["I"] += n_sys - n_tp - n_subs
        # The hit graph only joins same-label events, so a maximum (or greedy) matching of the
        # whole file restricted to one class is a maximum (or the greedy) matching of that class.
        cw_ref += np.bincount(r_lab, minlength=n_labels)
        cw_sys += np.bincount(e_lab, minlength=n_labels)
        cw_tp += np.bincount(r_lab[ref_matched], minlength=n_labels)

    class_wise = {
        label: {"Nref": int(cw_ref[k]), "Nsys": int(cw_sys[k]), "Ntp": int(cw_tp[k]),
                "Nfp": int(cw_sys[k] - cw_tp[k]), "Nfn": int(cw_ref[k] - cw_tp[k])}
        for k, label in enumerate(labels)
    }
    return _scores(overall, class_wise, len(by_file), zero_score)


def _event_roll(events: list[LabeledEvent], label_index: dict[str, int], n_segments: int,
                time_resolution: float) -> np.ndarray:
    """``(n_segments, C)`` bool activity: segment ``k`` covers ``[k*res, (k+1)*res)`` and an
    event fills segments ``floor(onset/res)`` to ``ceil(offset/res) - 1``."""
    roll = np.zeros((n_segments, len(label_index)), dtype=bool)
    for e in events:
        first = max(0, int(math.floor(e.onset / time_resolution)))
        last = min(n_segments, int(math.ceil(e.offset / time_resolution)))
        if last > first:
            roll[first:last, label_index[e.label]] = True
    return roll


def segment_based_metrics(
    reference: Sequence[LabeledEvent],
    estimated: Sequence[LabeledEvent],
    time_resolution: float = 1.0,
    *,
    labels: Sequence[str] | None = None,
    filenames: Iterable[str] | None = None,
    durations: Mapping[str, float] | None = None,
    zero_score: bool = False,
) -> SedScores:
    """Segment-based SED metrics with the semantics of ``sed_eval.sound_event.SegmentBasedMetrics``
    fed one file at a time.

    Each file is cut into ``ceil(length / time_resolution)`` segments, ``length`` being
    ``durations[file]`` when given, else the largest offset in either list for that file. A
    class is active in a segment when an event of it overlaps the segment (onset segment
    ``floor(onset / res)``, end segment ``ceil(offset / res)`` exclusive). Per segment, with
    ``Nref``/``Nsys`` active classes and ``TP`` classes active in both:
    ``S = min(Nref, Nsys) - TP``, ``D = max(0, Nref - Nsys)``, ``I = max(0, Nsys - Nref)``;
    everything is summed over segments and files. ``labels``, ``filenames`` and ``zero_score``
    as in :func:`event_based_metrics`. Negative onsets are clipped to 0 (sed_eval would index
    the roll from its end).
    """
    time_resolution = float(time_resolution)
    if not time_resolution > 0:
        raise ValueError(f"time_resolution: expected > 0, found {time_resolution}")
    labels, by_file = _group_by_file(reference, estimated, labels, filenames)
    label_index = {label: i for i, label in enumerate(labels)}
    n_labels = len(labels)
    overall = dict.fromkeys(("Nref", "Nsys", "Ntp", "S", "D", "I"), 0)
    cw = {key: np.zeros(n_labels, dtype=np.int64) for key in ("Nref", "Nsys", "Ntp", "Nfp", "Nfn")}

    for filename, (ref_events, est_events) in by_file.items():
        if durations is not None and filename in durations:
            length = float(durations[filename])
        else:
            length = max([0.0] + [e.offset for e in ref_events] + [e.offset for e in est_events])
        n_segments = int(math.ceil(length / time_resolution))
        ref_roll = _event_roll(ref_events, label_index, n_segments, time_resolution)
        sys_roll = _event_roll(est_events, label_index, n_segments, time_resolution)
        both = ref_roll & sys_roll

        n_ref = ref_roll.sum(1)
        n_sys = sys_roll.sum(1)
        n_tp = both.sum(1)
        overall["Nref"] += int(n_ref.sum())
        overall["Nsys"] += int(n_sys.sum())
        overall["Ntp"] += int(n_tp.sum())
        overall["S"] += int((np.minimum(n_ref, n_sys) - n_tp).sum())
        overall["D"] += int(np.maximum(0, n_ref - n_sys).sum())
        overall["I"] += int(np.maximum(0, n_sys - n_ref).sum())

        cw["Nref"] += ref_roll.sum(0)
        cw["Nsys"] += sys_roll.sum(0)
        cw["Ntp"] += both.sum(0)
        cw["Nfp"] += (sys_roll & ~ref_roll).sum(0)
        cw["Nfn"] += (ref_roll & ~sys_roll).sum(0)

    class_wise = {label: {key: int(values[k]) for key, values in cw.items()} for k, label in enumerate(labels)}
    return _scores(overall, class_wise, len(by_file), zero_score)


# --------------------------------------------------------------------------------------------
# Sound-source localisation
# --------------------------------------------------------------------------------------------

def _boxes_2d(box) -> np.ndarray:
    box = np.asarray(box, dtype=np.float64)
    if box.ndim == 1:
        box = box[None, :]
    if box.ndim != 2 or box.shape[1] != 4:
        raise ValueError(f"box: expected shape (4,) or (K, 4) as x0, y0, x1, y1, found {box.shape}")
    return box


def box_mask(shape: tuple[int, int], boxes) -> np.ndarray:
    """``(H, W)`` bool mask of the union of ``boxes`` (``(4,)`` or ``(K, 4)``, x0, y0, x1, y1 in
    pixels): pixels whose centre lies in ``[x0, x1) x [y0, y1)`` -- for integer boxes exactly
    ``mask[y0:y1, x0:x1]``."""
    h, w = shape
    cx = np.arange(w) + 0.5
    cy = np.arange(h) + 0.5
    mask = np.zeros((h, w), dtype=bool)
    for x0, y0, x1, y1 in _boxes_2d(boxes):
        mask |= ((cy >= y0) & (cy < y1))[:, None] & ((cx >= x0) & (cx < x1))[None, :]
    return mask


def pointing_game(heatmaps, boxes, return_hits: bool = False):
    """Pointing-game accuracy: a sample is a hit when its heatmap's maximum pixel lies inside
    its box.

    Args:
        heatmaps: ``(N, H, W)`` (or one ``(H, W)``) maps, any scale.
        boxes: ``(N, 4)`` x0, y0, x1, y1 in pixels of the heatmap grid, or a sequence of ``N``
            arrays ``(4,)``/``(K, 4)`` (a hit inside any of the ``K`` boxes counts).
        return_hits: also return the ``(N,)`` bool hits.

    The maximum pixel is ``np.argmax`` of the row-major flattened map (the first one on ties);
    pixel ``(r, c)`` is inside when ``x0 <= c + 0.5 < x1`` and ``y0 <= r + 0.5 < y1`` (for integer
    boxes: ``x0 <= c < x1``, ``y0 <= r < y1``, i.e. x1, y1 exclusive). Returns the hit fraction
    (NaN for ``N == 0``), or ``(fraction, hits)``.
    """
    heatmaps = np.asarray(heatmaps, dtype=np.float64)
    if heatmaps.ndim == 2:
        heatmaps = heatmaps[None]
        boxes = [boxes]
    if heatmaps.ndim != 3:
        raise ValueError(f"heatmaps: expected shape (N, H, W), found {heatmaps.shape}")
    n, h, w = heatmaps.shape
    if len(boxes) != n:
        raise ValueError(f"boxes: expected {n} entries, found {len(boxes)}")
    hits = np.zeros(n, dtype=bool)
    for k in range(n):
        r, c = divmod(int(np.argmax(heatmaps[k])), w)
        for x0, y0, x1, y1 in _boxes_2d(boxes[k]):
            if x0 <= c + 0.5 < x1 and y0 <= r + 0.5 < y1:
                hits[k] = True
                break
    accuracy = float(hits.mean()) if n else float("nan")
    return (accuracy, hits) if return_hits else accuracy


def ciou(heatmap, box=None, threshold: float | None = None, *, gt_map=None) -> float:
    """Consensus IoU of one heatmap with its ground truth, as the LVS / EZ-VSL evaluations.

    Args:
        heatmap: ``(H, W)`` map, any scale. It is min-max normalised to [0, 1] (left as is
            when constant) and binarised as ``normalised >= threshold``.
        box: ``(4,)`` or ``(K, 4)`` boxes x0, y0, x1, y1 in pixels (union; see :func:`box_mask`).
        threshold: on the normalised map. Default (``None``): EZ-VSL's median rule, the value
            at index ``H*W // 2`` of the sorted normalised map, so the upper half of the pixels
            (at least) is foreground. (LVS used ``>`` that value, which drops the median pixel
            and its ties.)
        gt_map: instead of ``box``, an ``(H, W)`` ground-truth map in [0, 1]; Flickr-SoundNet's
            consensus map (annotator boxes summed, halved, clipped at 1) has 0.5-valued pixels.

    Returns:
        ``sum(fg * gt) / (sum(gt) + sum(fg * (gt == 0)))`` -- the IoU of foreground and box for a
        binary ground truth; NaN when both are empty.
    """
    heatmap = np.asarray(heatmap, dtype=np.float64)
    if heatmap.ndim != 2:
        raise ValueError(f"heatmap: expected shape (H, W), found {heatmap.shape}")
    if (box is None) == (gt_map is None):
        raise ValueError("pass exactly one of box and gt_map")
    if gt_map is None:
        gt = box_mask(heatmap.shape, box).astype(np.float64)
    else:
        gt = np.asarray(gt_map, dtype=np.float64)
        if gt.shape != heatmap.shape:
            raise ValueError(f"gt_map: expected shape {heatmap.shape}, found {gt.shape}")
    lo, hi = heatmap.min(), heatmap.max()
    normalised = (heatmap - lo) / (hi - lo) if hi > lo else heatmap
    if threshold is None:
        threshold = np.sort(normalised, axis=None)[normalised.size // 2]
    foreground = (normalised >= threshold).astype(np.float64)
    denominator = gt.sum() + (foreground * (gt == 0)).sum()
    if denominator == 0:
        return float("nan")
    return float((foreground * gt).sum() / denominator)


_CIOU_THRESHOLDS = 0.05 * np.arange(21)  # exactly the evaluation scripts' [0.05 * i for i in range(21)]


def ciou_auc(cious) -> float:
    """Area under the cIoU success curve: the fraction of samples with ``cIoU >= t`` for
    ``t = 0, 0.05, ..., 1`` (21 points, computed as ``0.05 * i`` like the LVS / EZ-VSL scripts,
    which differs from ``np.linspace(0, 1, 21)`` in the last bit at some points), integrated with
    the trapezoidal rule (their ``sklearn.metrics.auc``). NaN for no samples."""
    cious = np.asarray(cious, dtype=np.float64).ravel()
    if cious.size == 0:
        return float("nan")
    success = (cious[None, :] >= _CIOU_THRESHOLDS[:, None]).mean(1)
    return float(np.sum(np.diff(_CIOU_THRESHOLDS) * (success[1:] + success[:-1]) / 2.0))


def ciou_at(cious, threshold: float = 0.5) -> float:
    """Fraction of samples with ``cIoU >= threshold`` (``cIoU@0.5``, called AP50 / CIoU in the
    LVS and EZ-VSL papers). NaN for no samples."""
    cious = np.asarray(cious, dtype=np.float64).ravel()
    return float(np.mean(cious >= threshold)) if cious.size else float("nan")
