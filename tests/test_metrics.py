"""models.evaluation.metrics against the references it promises to reproduce: sed_eval 0.2.1 for the SED
metrics, scikit-learn for the classification metrics, and hand-made maps with known answers for
the localisation metrics."""
from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import sklearn.metrics as sk

from models.core.events import LabeledEvent
from models.evaluation import metrics as M

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # dcase_util imports the deprecated pkg_resources
    import dcase_util
    import sed_eval

pytestmark = [
    pytest.mark.filterwarnings("ignore:Mean of empty slice:RuntimeWarning"),  # sed_eval's nanmean of all-NaN
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning"),  # k >= n_classes
    pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true:UserWarning"),
]

N_TRIALS = 25


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

def close(a, b, tol=1e-6) -> bool:
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=tol)


def run_sed_eval(reference, estimated, kind, labels=None, filenames=None, durations=None, **kwargs):
    """sed_eval fed file by file, the way every DCASE evaluation script does."""
    if labels is None:
        labels = sorted({e.label for e in reference} | {e.label for e in estimated})
    if filenames is None:
        filenames = sorted({e.filename for e in reference} | {e.filename for e in estimated})

    def container(events):
        return dcase_util.containers.MetaDataContainer(
            [{"filename": e.filename, "onset": e.onset, "offset": e.offset, "event_label": e.label} for e in events])

    ref_c, est_c = container(reference), container(estimated)
    if kind == "event":
        metric = sed_eval.sound_event.EventBasedMetrics(event_label_list=list(labels), **kwargs)
    else:
        # SegmentBasedMetrics takes no empty_system_output_handling argument; set the attribute.
        handling = kwargs.pop("empty_system_output_handling", None)
        metric = sed_eval.sound_event.SegmentBasedMetrics(event_label_list=list(labels), **kwargs)
        metric.empty_system_output_handling = handling
    for f in filenames:
        args = {}
        if durations is not None and f in durations:
            args["evaluated_length_seconds"] = durations[f]
        metric.evaluate(ref_c.filter(filename=f), est_c.filter(filename=f), **args)
    return metric.results()


def assert_matches_sed_eval(ours: M.SedScores, theirs: dict):
    o, cw, avg = theirs["overall"], theirs["class_wise"], theirs["class_wise_average"]
    pairs = {
        "f1": (ours.f1, o["f_measure"]["f_measure"]),
        "precision": (ours.precision, o["f_measure"]["precision"]),
        "recall": (ours.recall, o["f_measure"]["recall"]),
        "error_rate": (ours.error_rate, o["error_rate"]["error_rate"]),
        "substitution_rate": (ours.substitution_rate, o["error_rate"]["substitution_rate"]),
        "deletion_rate": (ours.deletion_rate, o["error_rate"]["deletion_rate"]),
        "insertion_rate": (ours.insertion_rate, o["error_rate"]["insertion_rate"]),
    }
    if avg["f_measure"]:
        pairs.update({
            "macro_f1": (ours.macro_f1, avg["f_measure"]["f_measure"]),
            "macro_precision": (ours.macro_precision, avg["f_measure"]["precision"]),
            "macro_recall": (ours.macro_recall, avg["f_measure"]["recall"]),
            "macro_error_rate": (ours.macro_error_rate, avg["error_rate"]["error_rate"]),
        })
    else:  # no labels at all
        assert math.isnan(ours.macro_f1)
    assert set(ours.class_wise_f1) == set(cw)
    for label, c in cw.items():
        pairs[f"{label}/f1"] = (ours.class_wise_f1[label], c["f_measure"]["f_measure"])
        pairs[f"{label}/precision"] = (ours.class_wise_precision[label], c["f_measure"]["precision"])
        pairs[f"{label}/recall"] = (ours.class_wise_recall[label], c["f_measure"]["recall"])
        pairs[f"{label}/error_rate"] = (ours.class_wise_error_rate[label], c["error_rate"]["error_rate"])
    bad = {k: v for k, v in pairs.items() if not close(*v)}
    assert not bad, f"differs from sed_eval (ours, theirs): {bad}"


def random_events(rng: np.random.Generator, grid: float | None = None):
    """Reference and estimate with jittered boundaries, label swaps, misses, duplicates and
    spurious events over a few files; one file has estimates only and one reference only.
    ``grid`` rounds all times to multiples of it (many exact-collar and segment-edge cases)."""
    labels = ["dog", "speech", "car", "bell"]

    def t(x):
        x = max(0.0, float(x))
        return round(round(x / grid) * grid, 6) if grid else round(x, 3)

    reference, estimated = [], []
    n_files = int(rng.integers(2, 5))
    for f in range(n_files):
        name = f"clip{f}.wav"
        file_ref = []
        for _ in range(int(rng.integers(0, 10))):
            onset = t(rng.uniform(0, 9))
            offset = t(onset + rng.uniform(0.05, 2.5))
            file_ref.append(LabeledEvent(name, onset, max(onset, offset), str(rng.choice(labels))))
            if rng.random() < 0.2:  # an overlapping same-label neighbour: ambiguous matches
                on2 = t(onset + rng.normal(0, 0.15))
                file_ref.append(LabeledEvent(name, on2, max(on2, t(offset + rng.normal(0, 0.2))), file_ref[-1].label))
        if f == n_files - 1 and n_files > 2:
            file_ref = []  # a file with estimates only
        for e in file_ref:
            if rng.random() < 0.15:
                continue  # missed
            label = e.label if rng.random() > 0.25 else str(rng.choice(labels + ["siren"]))
            for _ in range(1 + int(rng.random() < 0.2)):  # sometimes a duplicate detection
                onset = t(e.onset + rng.normal(0, 0.15))
                offset = t(e.offset + rng.normal(0, 0.3))
                estimated.append(LabeledEvent(name, onset, max(onset, offset), label))
        for _ in range(int(rng.integers(0, 4))):  # spurious
            onset = t(rng.uniform(0, 10))
            estimated.append(LabeledEvent(name, onset, t(onset + rng.uniform(0.05, 2)), str(rng.choice(labels))))
        reference += file_ref
    reference.append(LabeledEvent("reference_only.wav", 1.0, 2.5, "dog"))
    order = rng.permutation(len(estimated))
    return reference, [estimated[i] for i in order]


# --------------------------------------------------------------------------------------------
# sound event detection vs sed_eval
# --------------------------------------------------------------------------------------------

EVENT_SETTINGS = {
    "onset_offset": dict(t_collar=0.2, percentage_of_length=0.2),
    "onset_only": dict(t_collar=0.2, percentage_of_length=0.2, evaluate_offset=False),
    "offset_only": dict(t_collar=0.2, percentage_of_length=0.5, evaluate_onset=False),
    "sed_eval_defaults_grid": dict(t_collar=0.2, percentage_of_length=0.5, grid=0.05),
    "greedy": dict(t_collar=0.2, percentage_of_length=0.2, event_matching_type="greedy"),
    "wide_collar_grid": dict(t_collar=0.5, percentage_of_length=0.2, grid=0.1),
}


@pytest.mark.parametrize("setting", sorted(EVENT_SETTINGS))
def test_event_based_matches_sed_eval(setting):
    kwargs = dict(EVENT_SETTINGS[setting])
    grid = kwargs.pop("grid", None)
    rng = np.random.default_rng(sorted(EVENT_SETTINGS).index(setting))
    substitutions = 0
    for _ in range(N_TRIALS):
        reference, estimated = random_events(rng, grid)
        ours = M.event_based_metrics(reference, estimated, **kwargs)
        assert_matches_sed_eval(ours, run_sed_eval(reference, estimated, "event", **kwargs))
        substitutions += ours.substitution_rate > 0
    assert substitutions > N_TRIALS // 2  # the generator really exercises substitutions


SEGMENT_SETTINGS = {"1s": (1.0, None), "250ms": (0.25, None), "100ms": (0.1, None), "1s_grid": (1.0, 0.25),
                    "100ms_grid": (0.1, 0.05)}


@pytest.mark.parametrize("setting", sorted(SEGMENT_SETTINGS))
def test_segment_based_matches_sed_eval(setting):
    resolution, grid = SEGMENT_SETTINGS[setting]
    rng = np.random.default_rng(100 + sorted(SEGMENT_SETTINGS).index(setting))
    for _ in range(N_TRIALS):
        reference, estimated = random_events(rng, grid)
        ours = M.segment_based_metrics(reference, estimated, time_resolution=resolution)
        assert_matches_sed_eval(ours, run_sed_eval(reference, estimated, "segment", time_resolution=resolution))


def test_substitutions_depend_on_which_maximum_matching_is_found():
    # r0 and r1 ("dog") both match e0; only r1 can be substituted by e1 ("cat"). sed_eval's
    # Hopcroft-Karp pairs e0 with r0, so r1/e1 become a substitution (ER 0.5, not 1.0).
    reference = [LabeledEvent("a", 0.0, 1.0, "dog"), LabeledEvent("a", 0.1, 1.1, "dog")]
    estimated = [LabeledEvent("a", 0.05, 1.05, "dog"), LabeledEvent("a", 0.3, 1.1, "cat")]
    ours = M.event_based_metrics(reference, estimated)
    assert_matches_sed_eval(ours, run_sed_eval(reference, estimated, "event", t_collar=0.2, percentage_of_length=0.2))
    assert ours.substitution_rate == pytest.approx(0.5) and ours.error_rate == pytest.approx(0.5)


@pytest.mark.parametrize("kind", ["event", "segment"])
def test_edge_cases_match_sed_eval(kind):
    rng = np.random.default_rng(7)
    reference, _ = random_events(rng)
    kw = dict(t_collar=0.2, percentage_of_length=0.2) if kind == "event" else dict(time_resolution=1.0)
    fn = M.event_based_metrics if kind == "event" else M.segment_based_metrics

    # Identical lists: perfect.
    same = fn(reference, list(reference), **kw)
    assert_matches_sed_eval(same, run_sed_eval(reference, reference, kind, **kw))
    assert same.f1 == 1.0 and same.error_rate == 0.0 and same.macro_f1 == 1.0

    # Empty estimate: sed_eval's precision is NaN (hence F1 NaN); 'zero_score' makes it 0.
    empty = fn(reference, [], **kw)
    assert_matches_sed_eval(empty, run_sed_eval(reference, [], kind, **kw))
    assert math.isnan(empty.f1) and empty.recall == 0.0 and empty.deletion_rate == pytest.approx(1.0)
    zero = fn(reference, [], zero_score=True, **kw)
    assert_matches_sed_eval(zero, run_sed_eval(reference, [], kind, empty_system_output_handling="zero_score", **kw))
    assert zero.f1 == 0.0 and zero.macro_f1 == 0.0

    # Empty reference: recall NaN, insertions divided by eps (huge, as sed_eval).
    est = [LabeledEvent("x", 0.0, 1.0, "dog")]
    no_ref = fn([], est, **kw)
    assert_matches_sed_eval(no_ref, run_sed_eval([], est, kind, **kw))
    assert math.isnan(no_ref.recall) and no_ref.insertion_rate > 1e12

    # Nothing at all.
    nothing = fn([], [], **kw)
    assert math.isnan(nothing.f1) and math.isnan(nothing.macro_f1) and nothing.n_files == 0

    # An explicit label list with a class nobody uses, and a file with no events at all.
    labels = sorted({e.label for e in reference}) + ["zebra"]
    files = sorted({e.filename for e in reference}) + ["silent.wav"]
    extra = fn(reference, reference[::2], labels=labels, filenames=files, **kw)
    assert_matches_sed_eval(extra, run_sed_eval(reference, reference[::2], kind, labels=labels, filenames=files, **kw))
    assert math.isnan(extra.class_wise_f1["zebra"]) and extra.class_wise_error_rate["zebra"] == 0.0
    assert extra.n_files == len(files)
    with pytest.raises(ValueError, match="missing from `labels`"):
        fn(reference, [LabeledEvent("x", 0, 1, "unknown")], labels=labels, **kw)


def test_segment_durations_match_sed_eval():
    rng = np.random.default_rng(11)
    for _ in range(5):
        reference, estimated = random_events(rng)
        files = sorted({e.filename for e in reference + estimated})
        durations = {f: float(rng.choice([4.0, 7.3, 12.0])) for f in files}  # some cut events short
        ours = M.segment_based_metrics(reference, estimated, 0.5, durations=durations)
        assert_matches_sed_eval(ours, run_sed_eval(reference, estimated, "segment", durations=durations,
                                                   time_resolution=0.5))


def test_class_without_output_drops_out_of_macro_f1():
    # sed_eval's class_wise_average is a nanmean, and a class the system never outputs has
    # precision NaN, hence F1 NaN: it does not pull the macro F1 down.
    reference = [LabeledEvent("a", 0, 1, "dog"), LabeledEvent("a", 2, 3, "cat")]
    estimated = [LabeledEvent("a", 0, 1, "dog")]
    scores = M.event_based_metrics(reference, estimated)
    assert_matches_sed_eval(scores, run_sed_eval(reference, estimated, "event", t_collar=0.2, percentage_of_length=0.2))
    assert scores.macro_f1 == 1.0 and math.isnan(scores.class_wise_f1["cat"])
    assert scores.f1 == pytest.approx(2 / 3)


def test_sed_scores_serialise():
    reference = [LabeledEvent("a", 0, 1, "dog"), LabeledEvent("a", 2, 3, "cat")]
    scores = M.event_based_metrics(reference, [LabeledEvent("a", 0, 1, "dog")])
    text = json.dumps(scores.to_dict(), allow_nan=False)
    back = json.loads(text)
    assert back["class_wise_f1"] == {"cat": None, "dog": 1.0} and back["n_ref"] == 2
    assert math.isnan(scores.to_dict(nan_as_none=False)["class_wise_f1"]["cat"])
    with pytest.raises(Exception):
        scores.f1 = 0.0  # frozen


def test_event_metric_arguments_are_checked():
    with pytest.raises(ValueError):
        M.event_based_metrics([], [], evaluate_onset=False, evaluate_offset=False)
    with pytest.raises(ValueError):
        M.event_based_metrics([], [], event_matching_type="hungarian")
    with pytest.raises(ValueError):
        M.segment_based_metrics([], [], time_resolution=0)


# --------------------------------------------------------------------------------------------
# classification vs scikit-learn
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ties", [False, True])
def test_topk_accuracy_matches_sklearn(ties):
    rng = np.random.default_rng(1 + ties)
    for _ in range(20):
        n, c = int(rng.integers(1, 300)), int(rng.integers(3, 12))
        scores = rng.integers(0, 3, (n, c)).astype(float) if ties else rng.normal(size=(n, c))
        targets = rng.integers(0, c, n)
        for k in (1, 2, c - 1, c):
            expected = sk.top_k_accuracy_score(targets, scores, k=k, labels=np.arange(c))
            assert abs(M.topk_accuracy(scores, targets, k) - expected) < 1e-9


@pytest.mark.parametrize("ties", [False, True])
def test_average_precision_and_auc_match_sklearn(ties):
    rng = np.random.default_rng(3 + ties)
    for _ in range(20):
        n, c = int(rng.integers(5, 300)), int(rng.integers(2, 10))
        scores = rng.normal(size=(n, c))
        if ties:
            scores = np.round(scores, 1)
        targets = (rng.random((n, c)) < rng.uniform(0.05, 0.6, c)).astype(int)
        targets[:, 0] = 0  # a class without positives
        mean_ap, ap = M.mean_average_precision(scores, targets)
        auc = M.roc_auc_per_class(scores, targets)
        assert np.isnan(ap[0]) and np.isnan(auc[0])
        expected_ap = []
        for j in range(1, c):
            if targets[:, j].any():
                expected_ap.append(sk.average_precision_score(targets[:, j], scores[:, j]))
                assert abs(ap[j] - expected_ap[-1]) < 1e-9
            else:
                assert np.isnan(ap[j])
            if 0 < targets[:, j].sum() < n:
                assert abs(auc[j] - sk.roc_auc_score(targets[:, j], scores[:, j])) < 1e-9
        assert abs(mean_ap - np.mean(expected_ap)) < 1e-9 if expected_ap else np.isnan(mean_ap)


def test_d_prime():
    from scipy.stats import norm
    assert M.d_prime(0.5) == 0.0
    assert M.d_prime(norm.cdf(1 / math.sqrt(2))) == pytest.approx(1.0, abs=1e-12)
    aucs = np.array([0.6, 0.9, 0.99])
    np.testing.assert_allclose(M.d_prime(aucs), math.sqrt(2) * norm.ppf(aucs), rtol=1e-12)
    assert M.d_prime(1.0) == math.inf


def test_multilabel_f1_matches_sklearn():
    rng = np.random.default_rng(5)
    for _ in range(20):
        n, c = int(rng.integers(1, 100)), int(rng.integers(2, 8))
        targets = (rng.random((n, c)) < 0.3).astype(int)
        predictions = (rng.random((n, c)) < 0.3).astype(int)
        targets[:, 0] = predictions[:, 0] = 0  # TP + FP + FN == 0: zero_division
        ours = M.multilabel_f1(predictions, targets)
        for average in ("micro", "macro"):
            assert abs(ours[average] - sk.f1_score(targets, predictions, average=average, zero_division=0)) < 1e-9
        np.testing.assert_allclose(ours["per_class"], sk.f1_score(targets, predictions, average=None, zero_division=0),
                                   atol=1e-9)
    assert M.multilabel_f1([[0, 0]], [[0, 0]], zero_division=1.0)["macro"] == 1.0


def test_confusion_matrix_and_per_class_accuracy_match_sklearn():
    rng = np.random.default_rng(6)
    for _ in range(20):
        c = int(rng.integers(2, 9))
        n = int(rng.integers(1, 200))
        targets = rng.integers(0, c - 1, n)  # class c-1 never occurs: NaN accuracy
        predictions = rng.integers(0, c, n)
        cm = M.confusion_matrix(targets, predictions, c)
        np.testing.assert_array_equal(cm, sk.confusion_matrix(targets, predictions, labels=np.arange(c)))
        acc = M.per_class_accuracy(targets, predictions, c)
        assert np.isnan(acc[c - 1])
        present = np.unique(targets)
        np.testing.assert_allclose(acc[present], sk.recall_score(targets, predictions, labels=present, average=None),
                                   atol=1e-9)
        assert abs(np.nanmean(acc) - sk.balanced_accuracy_score(targets, predictions)) < 1e-9
    assert M.confusion_matrix([0, 1, 1], [1, 1, 0]).tolist() == [[0, 1], [1, 1]]


# --------------------------------------------------------------------------------------------
# localisation on hand-made maps
# --------------------------------------------------------------------------------------------

def peak_map(row, col, h=10, w=10):
    m = np.zeros((h, w))
    m[row, col] = 1.0
    return m


def test_pointing_game_borders():
    maps = np.stack([peak_map(2, 3), peak_map(2, 3), peak_map(3, 4), peak_map(3, 4)])
    boxes = np.array([
        [3, 2, 5, 4],  # x0 and y0 are inclusive: hit
        [0, 0, 3, 2],  # x1 = 3 and y1 = 2 are exclusive: miss
        [3, 2, 5, 4],  # hit
        [3, 2, 4, 4],  # x1 = 4 exclusive: miss
    ])
    accuracy, hits = M.pointing_game(maps, boxes, return_hits=True)
    assert hits.tolist() == [True, False, True, False] and accuracy == 0.5
    # Several boxes per sample: inside any of them counts; a single (H, W) map works too.
    assert M.pointing_game(maps[1:2], [np.array([[0, 0, 3, 2], [3, 2, 4, 3]])]) == 1.0
    assert M.pointing_game(peak_map(0, 0), [0, 0, 1, 1]) == 1.0
    # Fractional boxes use the pixel centre: pixel column 3 has centre 3.5.
    assert M.pointing_game(peak_map(2, 3), [3.5, 2, 4, 3]) == 1.0
    assert M.pointing_game(peak_map(2, 3), [3.6, 2, 4, 3]) == 0.0


def test_ciou_known_values():
    heatmap = np.arange(16, dtype=float).reshape(4, 4)  # median rule: values >= 8 -> rows 2 and 3
    assert M.ciou(heatmap, [0, 2, 4, 4]) == 1.0
    assert M.ciou(heatmap, [0, 3, 4, 4]) == 0.5  # 4 / (4 + 4)
    assert M.ciou(heatmap, [0, 0, 2, 4]) == pytest.approx(1 / 3)  # 4 / (8 + 4)
    assert M.ciou(heatmap * 3 - 7, [0, 0, 2, 4]) == pytest.approx(1 / 3)  # scale-free
    assert M.ciou(heatmap, [2, 3, 4, 4], threshold=0.9) == 1.0  # >= 13.5/15 -> two pixels
    assert M.ciou(heatmap, np.array([[0, 3, 2, 4], [2, 3, 4, 4]])) == 0.5  # union of boxes
    assert M.ciou(np.ones((4, 4)), [0, 0, 2, 2]) == 0.25  # constant map: all foreground
    gt = np.zeros((4, 4))
    gt[2:, :2] = 1.0
    gt[2:, 2:] = 0.5  # consensus map
    assert M.ciou(heatmap, gt_map=gt) == pytest.approx(6 / 6)
    gt[0, 0] = 1.0
    assert M.ciou(heatmap, gt_map=gt) == pytest.approx(6 / 7)
    with pytest.raises(ValueError):
        M.ciou(heatmap)


def test_ciou_median_rule_matches_ez_vsl():
    rng = np.random.default_rng(9)
    for _ in range(20):
        heatmap = rng.random((24, 24)) ** 3
        x0, y0 = rng.integers(0, 12, 2)
        box = [x0, y0, x0 + rng.integers(1, 12), y0 + rng.integers(1, 12)]
        # EZ-VSL test.py: normalise, threshold at sorted[H*W/2], binarise with >=, cal_CIOU.
        pred = (heatmap - heatmap.min()) / (heatmap.max() - heatmap.min())
        thr = np.sort(pred.flatten())[int(pred.shape[0] * pred.shape[1] / 2)]
        gt = np.zeros((24, 24))
        gt[box[1]:box[3], box[0]:box[2]] = 1
        infer = (pred >= thr).astype(float)
        expected = np.sum(infer * gt) / (np.sum(gt) + np.sum(infer * (gt == 0)))
        assert M.ciou(heatmap, box) == pytest.approx(expected, abs=1e-12)


def test_ciou_auc_and_at():
    assert M.ciou_auc([1.0, 1.0]) == pytest.approx(1.0)
    assert M.ciou_auc([0.0]) == pytest.approx(0.025)  # only t = 0 succeeds
    assert M.ciou_auc([0.5]) == pytest.approx(0.525)  # t <= 0.5 succeed
    assert M.ciou_at([0.2, 0.5, 0.7]) == pytest.approx(2 / 3)
    assert M.ciou_at([0.2, 0.5, 0.7], 0.6) == pytest.approx(1 / 3)
    rng = np.random.default_rng(10)
    for _ in range(20):
        cious = rng.random(int(rng.integers(1, 50)))
        # LVS / EZ-VSL Evaluator.finalize_AUC
        success = [np.sum(cious >= 0.05 * i) / len(cious) for i in range(21)]
        expected = sk.auc([0.05 * i for i in range(21)], success)
        assert abs(M.ciou_auc(cious) - expected) < 1e-12
