"""Tests for models.evaluation.benchmark: the latency benchmark harness."""
from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest
import torch

from models.evaluation.benchmark import (
    BenchmarkReport,
    Timing,
    configure_threads,
    machine_description,
    ort_session_options,
    percentile,
    time_callable,
)


class FakeClock:
    """A clock whose consecutive (start, stop) readings are set by a list of durations."""

    def __init__(self, durations_s):
        self.readings = []
        t = 100.0
        for d in durations_s:
            self.readings += [t, t + d]
            t += d + 1.0  # time passes between calls too; it must not be counted
        self.calls = 0

    def __call__(self):
        value = self.readings[self.calls]
        self.calls += 1
        return value


# ------------------------------------------------------------------------------------ percentiles


@pytest.mark.parametrize("q", [0, 1, 25, 50, 90, 95, 99, 100])
def test_percentile_matches_numpy_linear(q):
    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 100, 1001):
        values = rng.exponential(size=n).tolist()
        assert percentile(values, q) == pytest.approx(np.percentile(values, q), rel=1e-12, abs=1e-15)


def test_percentile_errors():
    with pytest.raises(ValueError, match="at least one value"):
        percentile([], 50)
    with pytest.raises(ValueError, match=r"expected q in \[0, 100\], found 101"):
        percentile([1.0], 101)


def test_time_callable_exact_statistics_with_fake_clock():
    durations = [i / 1000 for i in range(1, 101)]  # 1 ms ... 100 ms
    clock = FakeClock(durations)
    calls = []
    timing = time_callable(lambda: calls.append(1), warmup=0, iters=100, clock=clock, name="fake")
    assert clock.calls == 200 and len(calls) == 100
    assert timing.name == "fake" and timing.n == 100
    assert timing.mean_ms == pytest.approx(50.5)
    assert timing.min_ms == pytest.approx(1.0) and timing.max_ms == pytest.approx(100.0)
    # linear interpolation at rank q/100 * 99 over 1..100
    assert timing.p50_ms == pytest.approx(50.5)
    assert timing.p95_ms == pytest.approx(95.05)
    assert timing.p99_ms == pytest.approx(99.01)


def test_time_callable_unsorted_durations():
    durations = [0.005, 0.001, 0.003, 0.002, 0.004]
    timing = time_callable(lambda: None, warmup=0, iters=5, clock=FakeClock(durations))
    assert timing.name == "lambda"
    assert timing.p50_ms == pytest.approx(3.0)
    assert timing.p95_ms == pytest.approx(4.8)  # rank 3.8 between 4 and 5
    assert timing.mean_ms == pytest.approx(3.0)


def test_warmup_calls_are_not_counted_or_clocked():
    calls = []
    clock = FakeClock([0.002] * 7)
    timing = time_callable(lambda: calls.append(1), warmup=3, iters=7, clock=clock)
    assert len(calls) == 10
    assert clock.calls == 14  # only the timed calls read the clock
    assert timing.n == 7
    assert timing.max_ms == pytest.approx(2.0)


def test_warmup_excluded_from_real_timing():
    """A slow first call (e.g. lazy initialisation) must vanish into the warm-up."""
    state = {"first": True}

    def fn():
        if state["first"]:
            state["first"] = False
            time.sleep(0.2)

    timing = time_callable(fn, warmup=1, iters=20)
    assert timing.max_ms < 100


def test_min_seconds_extends_iterations():
    clock = FakeClock([0.01] * 50)
    timing = time_callable(lambda: None, warmup=0, iters=5, min_seconds=0.3, clock=clock)
    assert timing.n in (30, 31)  # 30 calls of 10 ms reach 0.3 s (float rounding may need one more)
    assert clock.calls == 2 * timing.n


def test_sleeping_callable_measures_known_durations():
    sleeps = iter([0.005, 0.02] * 10)
    timing = time_callable(lambda: time.sleep(next(sleeps)), warmup=0, iters=20, name="sleep")
    # sleep never returns early; upper bounds are loose because a loaded machine oversleeps
    assert timing.n == 20
    assert timing.min_ms >= 5.0
    assert timing.max_ms >= 20.0
    assert timing.p50_ms >= 5.0 and timing.p95_ms >= 20.0
    assert 12.5 <= timing.mean_ms < 1000.0


def test_sync_runs_inside_the_timed_bracket():
    order = []
    readings = iter([0.0, 1.0])

    def clock():
        order.append("clock")
        return next(readings)

    time_callable(lambda: order.append("fn"), warmup=0, iters=1, clock=clock, sync=lambda: order.append("sync"))
    assert order == ["clock", "fn", "sync", "clock"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"warmup": -1}, "warmup: expected an int >= 0, found -1"),
        ({"iters": 0}, "iters: expected a positive int, found 0"),
        ({"min_seconds": float("inf")}, "min_seconds: expected a finite number >= 0, found inf"),
    ],
)
def test_time_callable_argument_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        time_callable(lambda: None, **kwargs)


def test_backwards_clock_is_an_error():
    readings = iter([5.0, 4.0])
    with pytest.raises(ValueError, match="expected durations >= 0"):
        time_callable(lambda: None, warmup=0, iters=1, clock=lambda: next(readings))


def test_timing_validation_and_dict_round_trip():
    t = Timing.from_durations("x", [0.001, 0.002])
    assert Timing.from_dict(t.to_dict()) == t
    with pytest.raises(ValueError, match="Timing.n: expected a positive int, found 0"):
        Timing("x", 0, 1, 1, 1, 1, 1, 1)
    with pytest.raises(ValueError, match="Timing.p95_ms: expected a finite number >= 0, found nan"):
        Timing("x", 1, 1, 1, float("nan"), 1, 1, 1)
    with pytest.raises(ValueError, match="missing p99_ms; unknown p98_ms"):
        d = t.to_dict()
        d["p98_ms"] = d.pop("p99_ms")
        Timing.from_dict(d)


# ------------------------------------------------------------------------------------ threads


def test_configure_threads_changes_torch_threads():
    before = torch.get_num_threads()
    try:
        settings = configure_threads(1)
        assert torch.get_num_threads() == 1
        assert settings["intra_op_num_threads"] == 1 and settings["torch_num_threads"] == 1
        settings = configure_threads(3)
        assert torch.get_num_threads() == 3
        assert settings["intra_op_num_threads"] == 3
        assert settings["inter_op_num_threads"] == 1
        assert settings["torch_num_interop_threads"] == torch.get_num_interop_threads()
    finally:
        torch.set_num_threads(before)


def test_configure_threads_rejects_bad_counts():
    with pytest.raises(ValueError, match="expected a positive int, found 0"):
        configure_threads(0)
    with pytest.raises(ValueError, match="interop"):
        configure_threads(2, interop=-1)


def test_ort_session_options_and_settings_apply():
    import onnxruntime as ort

    options = ort_session_options(3)
    assert options.intra_op_num_threads == 3 and options.inter_op_num_threads == 1
    assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    # threads spin between a call's operators (ONNX Runtime's default, allow_spinning not set) and
    # stop when the call returns, unless asked to spin between calls too (several sessions share the cores)
    assert options.get_session_config_entry("session.force_spinning_stop") == "1"
    for spin in (False, True):
        with pytest.raises(RuntimeError, match="allow_spinning"):
            ort_session_options(2, spin=spin).get_session_config_entry("session.intra_op.allow_spinning")
    with pytest.raises(RuntimeError, match="force_spinning_stop"):
        ort_session_options(2, spin=True).get_session_config_entry("session.force_spinning_stop")
    # configure_threads' ORT values can be set on SessionOptions as they are
    before = torch.get_num_threads()
    try:
        settings = configure_threads(2)
    finally:
        torch.set_num_threads(before)
    so = ort.SessionOptions()
    so.intra_op_num_threads = settings["intra_op_num_threads"]
    so.inter_op_num_threads = settings["inter_op_num_threads"]
    assert so.intra_op_num_threads == 2


# ------------------------------------------------------------------------------------ machine + report


def test_machine_description():
    m = machine_description()
    json.dumps(m)
    assert m["cpu_model"] and m["logical_cores"] >= 1 and m["usable_cores"] >= 1
    assert m["torch_version"] == torch.__version__
    assert m["torch_num_threads"] == torch.get_num_threads()
    assert "CPUExecutionProvider" in m["onnxruntime_providers"]
    assert m["python"].split()[-1].count(".") == 2
    if not torch.cuda.is_available():
        assert m["cuda_device"] is None


def _report():
    report = BenchmarkReport("unit", fields={"batch": 1, "model": "baseline"})
    report.add(Timing.from_durations("torch", [0.001, 0.002, 0.003]))
    report.time(lambda: None, name="noop", warmup=0, iters=4, clock=FakeClock([0.0005] * 4))
    return report


def test_report_json_round_trip(tmp_path):
    report = _report()
    back = BenchmarkReport.from_json(report.to_json())
    assert back == report
    assert back.timing("noop").n == 4
    path = tmp_path / "sub" / "report.json"
    report.save(path)
    assert BenchmarkReport.load(path) == report
    data = json.loads(path.read_text())
    assert set(data) == {"name", "created_at", "machine", "fields", "timings"}
    assert data["timings"][0]["p50_ms"] == pytest.approx(2.0)


def test_report_rejects_duplicates_and_non_json_fields():
    report = _report()
    with pytest.raises(ValueError, match="expected a new timing name, found 'torch' again"):
        report.add(Timing.from_durations("torch", [0.001]))
    with pytest.raises(KeyError, match="no timing 'nope'"):
        report.timing("nope")
    report.fields["bad"] = object()
    with pytest.raises(ValueError, match=r"BenchmarkReport.fields\['bad'\]: expected a plain JSON value"):
        report.to_json()


def test_print_table_is_aligned():
    report = _report()
    buf = io.StringIO()
    report.print_table(file=buf)
    lines = buf.getvalue().splitlines()
    assert lines[0].startswith("unit  (")
    header, rule, row1, row2 = lines[1:5]
    assert header.split() == ["name", "n", "mean_ms", "p50_ms", "p95_ms", "p99_ms", "min_ms", "max_ms"]
    assert set(rule) <= {"-", " "}
    assert len(header) == len(rule) == len(row1) == len(row2)
    assert row1.split()[:3] == ["torch", "3", "2.000"]
    assert row2.split()[:2] == ["noop", "4"]
    # numbers are right-aligned under their headers
    for col in ("mean_ms", "max_ms"):
        end = header.index(col) + len(col)
        assert row1[end - 1].isdigit() and row2[end - 1].isdigit()
    assert "batch  1" in lines and "model  baseline" in lines
