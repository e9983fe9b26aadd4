"""The latency benchmark harness every avlive benchmark uses.

One way to pin threads, time a callable, describe the machine and write the result, so numbers
from different benchmarks and machines can be compared.

Example::

    import torch
    from models.evaluation.benchmark import BenchmarkReport, configure_threads, ort_session_options, time_callable

    threads = configure_threads(2)                       # torch pinned to 2 intra-op threads
    model = torch.nn.Linear(64, 10).eval()
    x = torch.randn(1, 64)
    report = BenchmarkReport("linear-64x10", fields={"batch": 1, **threads})
    with torch.inference_mode():
        report.add(time_callable(lambda: model(x), name="torch", warmup=10, iters=200))
    # sess = onnxruntime.InferenceSession(path, ort_session_options(2))
    # report.add(time_callable(lambda: sess.run(None, {"x": x.numpy()}), name="onnxruntime"))
    report.print_table()
    report.save("runs/bench/linear.json")

Timing covers only the callable: warm-up calls are not timed, and each timed call is bracketed
by two reads of the clock (``time.perf_counter`` unless another ``clock`` is injected). For
asynchronous devices pass ``sync`` (e.g. ``torch.cuda.synchronize``), which runs inside the
timed bracket after each call.
"""
from __future__ import annotations

import copy
import dataclasses
import datetime as _dt
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, TextIO

from models.core.atomic import atomic_write_text

__all__ = [
    "Timing",
    "BenchmarkReport",
    "configure_threads",
    "ort_session_options",
    "time_callable",
    "percentile",
    "machine_description",
    "jetson_state",
    "add_timing_options",
    "check_timing_options",
    "time_each",
]


# --------------------------------------------------------------------------------------- threads


def _check_threads(n: Any, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{what}: expected a positive int, found {n!r}")
    return n


def configure_threads(n: int = 2, *, interop: int = 1) -> dict[str, int]:
    """Pin torch's thread pools and return matching ONNX Runtime session settings.

    Sets ``torch.set_num_threads(n)`` and, where torch still allows it,
    ``torch.set_num_interop_threads(interop)``. Torch accepts the inter-op setting only once per
    process and only before any inter-op parallel work; if it is refused, a warning is issued
    and the value in effect is reported instead.

    Args:
        n: Intra-op threads (the ones that matter for single-model latency).
        interop: Inter-op threads.

    Returns:
        ``{"intra_op_num_threads": n, "inter_op_num_threads": interop}``, ready to set on an
        ``onnxruntime.SessionOptions`` (see :func:`ort_session_options`), plus
        ``"torch_num_threads"`` and ``"torch_num_interop_threads"``: what torch now uses.

    Raises:
        ValueError: If ``n`` or ``interop`` is not a positive int.
    """
    _check_threads(n, "n (intra-op threads)")
    _check_threads(interop, "interop (inter-op threads)")
    import torch

    torch.set_num_threads(n)
    if torch.get_num_interop_threads() != interop:
        try:
            torch.set_num_interop_threads(interop)
        except RuntimeError as exc:
            warnings.warn(f"torch kept {torch.get_num_interop_threads()} inter-op threads instead of {interop}: {exc}",
                          RuntimeWarning, stacklevel=2)
    return {
        "intra_op_num_threads": n,
        "inter_op_num_threads": interop,
        "torch_num_threads": torch.get_num_threads(),
        "torch_num_interop_threads": torch.get_num_interop_threads(),
    }


def ort_session_options(threads: int = 2, *, inter_op_threads: int = 1, spin: bool = False) -> Any:
    """An ``onnxruntime.SessionOptions`` for latency benchmarks and avlive's runners.

    Sequential execution, ``threads`` intra-op threads, ``inter_op_threads`` inter-op threads
    and all graph optimisations enabled. The intra-op threads spin between the operators of a
    call but stop as soon as the call returns (``session.force_spinning_stop`` 1) unless
    ``spin``: avlive runs several sessions on one inference thread (labeler, localizer; streams),
    and a session whose idle threads spin takes the cores from the next one. Measured with
    ``python -m apps.bench_end_to_end --threads 2`` (rows interleaved call by call, 2-core
    machine), paper-size Slow-Fast EPIC INT8, streaming front end: 55.1 ms with threads spinning
    between calls against 28.5 ms with no spinning at all. Spinning only inside a call is faster
    again: the same INT8 network, its sessions alternating with streaming front-end hops, 16.0 ms
    against 17.7 ms with no spinning (fp32: 47.7 against 50.0 ms).

    Args:
        threads: Intra-op threads.
        inter_op_threads: Inter-op threads (used only by parallel execution mode).
        spin: Let idle intra-op threads spin between calls too (ONNX Runtime's default) for a
            session that has the cores to itself.

    Raises:
        ValueError: If a thread count is not a positive int.
    """
    _check_threads(threads, "threads (intra-op threads)")
    _check_threads(inter_op_threads, "inter_op_threads")
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = inter_op_threads
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if not spin:
        options.add_session_config_entry("session.force_spinning_stop", "1")
    return options


# --------------------------------------------------------------------------------------- timing


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q``-th percentile with linear interpolation between order statistics.

    The same definition as ``numpy.percentile``'s default (``method="linear"``): the value at
    fractional rank ``q / 100 * (n - 1)`` of the sorted values.

    Raises:
        ValueError: If ``values`` is empty or ``q`` is outside [0, 100].
    """
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile: expected at least one value, found none")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile: expected q in [0, 100], found {q!r}")
    rank = q / 100 * (len(ordered) - 1)
    lo = math.floor(rank)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


@dataclass(frozen=True)
class Timing:
    """Latency statistics of one timed callable, in milliseconds.

    Attributes:
        name: What was timed.
        n: Number of timed calls.
        mean_ms: Mean latency.
        p50_ms: Median latency.
        p95_ms: 95th percentile.
        p99_ms: 99th percentile.
        min_ms: Fastest call.
        max_ms: Slowest call.
    """

    name: str
    n: int
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Timing.name: expected a non-empty str, found {self.name!r}")
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"Timing.n: expected a positive int, found {self.n!r}")
        for f in dataclasses.fields(self)[2:]:
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"Timing.{f.name}: expected a finite number >= 0, found {value!r}")
            object.__setattr__(self, f.name, float(value))

    @classmethod
    def from_durations(cls, name: str, durations_s: Iterable[float]) -> "Timing":
        """Statistics of measured durations, given in **seconds**.

        Raises:
            ValueError: If there are no durations, or one is negative or not finite.
        """
        ms = [d * 1e3 for d in durations_s]
        if not ms:
            raise ValueError(f"Timing {name!r}: expected at least one duration, found none")
        bad = next((d for d in ms if not math.isfinite(d) or d < 0), None)
        if bad is not None:
            raise ValueError(f"Timing {name!r}: expected durations >= 0 (a monotonic clock), found {bad / 1e3!r} s")
        return cls(
            name=name,
            n=len(ms),
            mean_ms=math.fsum(ms) / len(ms),
            p50_ms=percentile(ms, 50),
            p95_ms=percentile(ms, 95),
            p99_ms=percentile(ms, 99),
            min_ms=min(ms),
            max_ms=max(ms),
        )

    def to_dict(self) -> dict[str, Any]:
        """A plain dict of all fields."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Timing":
        """Build from :meth:`to_dict`'s output.

        Raises:
            ValueError: On missing or unknown keys or invalid values.
        """
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [k for k in names if k not in data]
        unknown = sorted(set(data) - set(names))
        if missing or unknown:
            raise ValueError(f"Timing: expected the fields {', '.join(names)}, found "
                             f"{'missing ' + ', '.join(missing) if missing else ''}"
                             f"{'; ' if missing and unknown else ''}"
                             f"{'unknown ' + ', '.join(unknown) if unknown else ''}")
        return cls(**{k: data[k] for k in names})


def time_callable(
    fn: Callable[[], Any],
    *,
    warmup: int = 10,
    iters: int = 100,
    min_seconds: float = 0.0,
    name: str | None = None,
    clock: Callable[[], float] = time.perf_counter,
    sync: Callable[[], Any] | None = None,
) -> Timing:
    """Time ``fn()`` call by call.

    Runs ``warmup`` untimed calls (``clock`` is not read during them), then timed calls until
    at least ``iters`` calls have been made *and* their durations add up to at least
    ``min_seconds``. Each timed call reads ``clock`` exactly twice, immediately before and
    after ``fn()`` (and ``sync()``, if given).

    Args:
        fn: The zero-argument callable to time (wrap arguments with a lambda or partial).
        warmup: Untimed calls first.
        iters: Minimum number of timed calls.
        min_seconds: Minimum total timed duration, in seconds.
        name: Name for the result; defaults to ``fn.__name__``.
        clock: Returns the current time in seconds; injectable for tests.
        sync: Called after each ``fn()`` inside the timed bracket, e.g. ``torch.cuda.synchronize``.

    Returns:
        The :class:`Timing` of the timed calls.

    Raises:
        ValueError: On a negative ``warmup``, non-positive ``iters``, a negative or non-finite
            ``min_seconds``, or a clock that runs backwards.
    """
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup: expected an int >= 0, found {warmup!r}")
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 1:
        raise ValueError(f"iters: expected a positive int, found {iters!r}")
    if isinstance(min_seconds, bool) or not isinstance(min_seconds, (int, float)) \
            or not math.isfinite(min_seconds) or min_seconds < 0:
        raise ValueError(f"min_seconds: expected a finite number >= 0, found {min_seconds!r}")
    if name is None:
        name = getattr(fn, "__name__", None) or type(fn).__name__
        if name == "<lambda>":
            name = "lambda"
    for _ in range(warmup):
        fn()
        if sync is not None:
            sync()
    durations: list[float] = []
    total = 0.0
    while len(durations) < iters or total < min_seconds:
        start = clock()
        fn()
        if sync is not None:
            sync()
        elapsed = clock() - start
        if not elapsed >= 0:  # also catches NaN
            raise ValueError(f"time_callable {name!r}: expected durations >= 0 (a monotonic clock), "
                             f"found {elapsed!r} s")
        durations.append(elapsed)
        total += elapsed
    return Timing.from_durations(name, durations)


# --------------------------------------------------------------------------------------- machine


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def _cpu_model() -> str:
    cpuinfo = _read("/proc/cpuinfo")
    if cpuinfo:
        for key in ("model name", "Model", "Hardware", "Processor", "cpu model", "cpu"):
            for line in cpuinfo.splitlines():
                k, sep, v = line.partition(":")
                if sep and k.strip() == key and v.strip():
                    return v.strip()
    if sys.platform == "darwin":
        try:
            out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True,
                                 timeout=5, check=False).stdout.strip()
            if out:
                return out
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown"


def _physical_cores() -> int | None:
    cpuinfo = _read("/proc/cpuinfo")
    if not cpuinfo:
        return None
    cores = set()
    physical = core = None
    for line in cpuinfo.splitlines() + [""]:
        k, _, v = line.partition(":")
        k = k.strip()
        if k == "physical id":
            physical = v.strip()
        elif k == "core id":
            core = v.strip()
        elif not line.strip():
            if core is not None:
                cores.add((physical, core))
            physical = core = None
    return len(cores) or None


def _cpu_quota() -> float | None:
    """CPU cores allowed by a cgroup v2 quota (containers), or None when unlimited or unknown."""
    text = _read("/sys/fs/cgroup/cpu.max")
    if not text:
        return None
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        return int(parts[0]) / int(parts[1])
    except (ValueError, ZeroDivisionError):
        return None


def jetson_state(root: str = "/") -> dict[str, Any] | None:
    """The power and clock state of an NVIDIA Jetson, or None on any other machine.

    A Jetson is recognised by ``/etc/nv_tegra_release`` (the L4T release, first line kept).
    Recorded: ``nvpmodel`` (the output of ``nvpmodel -q``, the power mode, when the tool is
    there and answers within 5 s; None otherwise) and ``devfreq``: for each device under
    ``/sys/class/devfreq`` (the GPU, the DLA and other engines), its ``cur_freq``, ``min_freq``
    and ``max_freq`` in Hz (``jetson_clocks`` pins cur at max), and ``cpu0_cur_freq_khz``.
    Benchmarks on a Jetson depend on all of it; README, "Jetson", says how to set it.

    Args:
        root: The file-system root to read under (``"/"``; tests pass a folder laid out alike,
            and ``nvpmodel`` is only run for the real root).
    """
    base = Path(root)
    release = _read(os.fspath(base / "etc" / "nv_tegra_release"))
    if release is None:
        return None
    state: dict[str, Any] = {"l4t_release": release.strip().splitlines()[0] if release.strip() else "",
                             "nvpmodel": None, "devfreq": {}, "cpu0_cur_freq_khz": None}
    tool = shutil.which("nvpmodel") if root == "/" else None
    if tool is not None:
        try:
            done = subprocess.run([tool, "-q"], capture_output=True, text=True, timeout=5)
            state["nvpmodel"] = " | ".join(line.strip() for line in done.stdout.splitlines() if line.strip()) or None
        except (OSError, subprocess.TimeoutExpired):
            pass
    devfreq = base / "sys" / "class" / "devfreq"
    for device in sorted(devfreq.iterdir()) if devfreq.is_dir() else []:
        freqs = {}
        for key in ("cur_freq", "min_freq", "max_freq"):
            text = _read(os.fspath(device / key))
            if text is not None and text.strip().isdigit():
                freqs[key] = int(text.strip())
        if freqs:
            state["devfreq"][device.name] = freqs
    cpu = _read(os.fspath(base / "sys" / "devices" / "system" / "cpu" / "cpu0" / "cpufreq" / "scaling_cur_freq"))
    if cpu is not None and cpu.strip().isdigit():
        state["cpu0_cur_freq_khz"] = int(cpu.strip())
    return state


def machine_description() -> dict[str, Any]:
    """What a benchmark ran on, as a plain-JSON dict.

    Keys: ``cpu_model``, ``logical_cores``, ``physical_cores``, ``usable_cores`` (CPU
    affinity), ``cpu_quota_cores`` (cgroup limit), ``os``, ``machine``, ``python``,
    ``numpy_version``, ``torch_version``, ``torch_num_threads``, ``torch_num_interop_threads``,
    ``cuda_device`` (name of CUDA device 0, or None), ``torch_cuda_version``,
    ``onnxruntime_version``, ``onnxruntime_providers``, ``jetson`` (:func:`jetson_state`: power
    mode and clocks on a Jetson, else None). A library that cannot be imported gives None values
    rather than an error.
    """
    try:
        usable = len(os.sched_getaffinity(0))  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        usable = os.cpu_count()
    info: dict[str, Any] = {
        "cpu_model": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "physical_cores": _physical_cores(),
        "usable_cores": usable,
        "cpu_quota_cores": _cpu_quota(),
        "os": platform.platform(),
        "machine": platform.machine(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "numpy_version": None,
        "torch_version": None,
        "torch_num_threads": None,
        "torch_num_interop_threads": None,
        "cuda_device": None,
        "torch_cuda_version": None,
        "onnxruntime_version": None,
        "onnxruntime_providers": None,
        "jetson": jetson_state(),
    }
    try:
        import numpy

        info["numpy_version"] = numpy.__version__
    except ImportError:
        pass
    try:
        import torch

        info["torch_version"] = torch.__version__
        info["torch_num_threads"] = torch.get_num_threads()
        info["torch_num_interop_threads"] = torch.get_num_interop_threads()
        info["torch_cuda_version"] = torch.version.cuda
        if torch.cuda.is_available():
            info["cuda_device"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    try:
        import onnxruntime

        info["onnxruntime_version"] = onnxruntime.__version__
        info["onnxruntime_providers"] = list(onnxruntime.get_available_providers())
    except ImportError:
        pass
    return info


# --------------------------------------------------------------------------------------- report


def _now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


_COLUMNS = ("n", "mean_ms", "p50_ms", "p95_ms", "p99_ms", "min_ms", "max_ms")


@dataclass
class BenchmarkReport:
    """Timings, the machine they were taken on, and free-form fields, saved as one JSON file.

    A mutable collector (unlike :class:`Timing`): add timings as they are measured, then
    :meth:`print_table` and :meth:`save`.

    Attributes:
        name: The benchmark's name.
        timings: The timings, in the order added; names are unique.
        machine: :func:`machine_description` at creation, unless given.
        fields: Free-form plain-JSON values (model, batch size, thread settings, notes ...).
        created_at: UTC timestamp (ISO 8601) at creation, unless given.
    """

    name: str
    timings: list[Timing] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=machine_description)
    fields: dict[str, Any] = field(default_factory=dict)
    created_at: str = field(default_factory=_now_iso)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"BenchmarkReport.name: expected a non-empty str, found {self.name!r}")
        timings, self.timings = list(self.timings), []
        for t in timings:
            self.add(t)
        self.fields = dict(self.fields)
        self.machine = dict(self.machine)

    def add(self, timing: Timing) -> Timing:
        """Append a timing and return it.

        Raises:
            ValueError: If a timing with the same name is already in the report.
        """
        if not isinstance(timing, Timing):
            raise ValueError(f"BenchmarkReport.add: expected a Timing, found {type(timing).__name__}")
        if any(t.name == timing.name for t in self.timings):
            raise ValueError(f"BenchmarkReport {self.name!r}: expected a new timing name, found {timing.name!r} again")
        self.timings.append(timing)
        return timing

    def time(self, fn: Callable[[], Any], *, name: str, **kwargs: Any) -> Timing:
        """:func:`time_callable` ``(fn, name=name, **kwargs)`` and add the result."""
        return self.add(time_callable(fn, name=name, **kwargs))

    def timing(self, name: str) -> Timing:
        """The timing called ``name``.

        Raises:
            KeyError: If there is none.
        """
        for t in self.timings:
            if t.name == name:
                return t
        raise KeyError(f"no timing {name!r} in benchmark report {self.name!r} (have: {[t.name for t in self.timings]})")

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (copies of the collections)."""
        return {
            "name": self.name,
            "created_at": self.created_at,
            "machine": copy.deepcopy(self.machine),
            "fields": copy.deepcopy(self.fields),
            "timings": [t.to_dict() for t in self.timings],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "BenchmarkReport":
        """Build from :meth:`to_dict`'s output.

        Raises:
            ValueError: On missing or unknown keys or invalid values.
        """
        keys = ("name", "created_at", "machine", "fields", "timings")
        missing = [k for k in keys if k not in data]
        unknown = sorted(set(data) - set(keys))
        if missing or unknown:
            raise ValueError(f"BenchmarkReport: expected the fields {', '.join(keys)}, found "
                             f"{'missing ' + ', '.join(missing) if missing else ''}"
                             f"{'; ' if missing and unknown else ''}"
                             f"{'unknown ' + ', '.join(unknown) if unknown else ''}")
        return cls(name=data["name"], created_at=data["created_at"], machine=dict(data["machine"]),
                   fields=dict(data["fields"]), timings=[Timing.from_dict(t) for t in data["timings"]])

    def to_json(self) -> str:
        """Indented JSON with a trailing newline.

        Raises:
            ValueError: If a free-form field or machine value is not plain JSON (the message
                names it).
        """
        for section in ("fields", "machine"):
            for key, value in getattr(self, section).items():
                try:
                    json.dumps(value, allow_nan=False)
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"BenchmarkReport.{section}[{key!r}]: expected a plain JSON value, "
                                     f"found {type(value).__name__} {value!r} ({exc})") from exc
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> "BenchmarkReport":
        """Parse :meth:`to_json`'s output."""
        return cls.from_dict(json.loads(text))

    def save(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_json` to ``path`` atomically, creating its directory if needed."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "BenchmarkReport":
        """Read a report written by :meth:`save`."""
        return cls.from_json(Path(path).read_text(encoding="utf-8"))

    def format_table(self, decimals: int = 3) -> str:
        """An aligned text table: a title line, one row per timing, then the free-form fields."""
        header = ("name",) + _COLUMNS
        rows = [(t.name, str(t.n)) + tuple(f"{getattr(t, c):.{decimals}f}" for c in _COLUMNS[1:])
                for t in self.timings]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

        def line(cells: tuple[str, ...]) -> str:
            return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

        m = self.machine
        title = f"{self.name}  ({m.get('cpu_model', '?')}, torch {m.get('torch_version', '?')} " \
                f"x{m.get('torch_num_threads', '?')} threads, {self.created_at})"
        out = [title, line(header), line(tuple("-" * w for w in widths))]
        out += [line(r) for r in rows] if rows else ["(no timings)"]
        if self.fields:
            key_width = max(len(k) for k in self.fields)
            out.append("")
            out += [f"{k.ljust(key_width)}  {v}" for k, v in self.fields.items()]
        return "\n".join(out) + "\n"

    def print_table(self, file: TextIO | None = None, decimals: int = 3) -> None:
        """Print :meth:`format_table` to ``file`` (standard output by default)."""
        print(self.format_table(decimals), end="", file=file if file is not None else sys.stdout)


# ------------------------------------------------------------------ latency scripts


def add_timing_options(parser) -> None:
    """``--threads``, ``--warmup``, ``--iters`` and ``--out``: what every latency script takes."""
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads (torch and ONNX Runtime)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls before each timing")
    parser.add_argument("--iters", type=int, default=20, help="timed calls per timing")
    parser.add_argument("--out", type=Path, help="also write the report as JSON here")


def check_timing_options(parser, args) -> None:
    """Stop with the parser's usage error on a value :func:`add_timing_options` cannot use."""
    if args.threads < 1 or args.warmup < 0 or args.iters < 1:
        parser.error("expected --threads >= 1, --warmup >= 0 and --iters >= 1")


def time_each(report: BenchmarkReport, names: Iterable[str], bench: Callable[[str, Path], Any],
              out: str | os.PathLike | None = None) -> None:
    """``bench(name, workdir)`` for each name (a progress line each; ``workdir`` a temporary
    folder for exported files, removed afterwards), then the report's table on standard output
    and, with ``out``, the report as JSON there."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix=f"{report.name}-") as tmp:
        for name in names:
            print(f"timing {name} ...", file=sys.stderr, flush=True)
            bench(name, Path(tmp))
    report.print_table()
    if out:
        report.save(out)
        print(f"saved {out}", file=sys.stderr)


def quiet():
    """A context that silences warnings and standard output (an exporter's progress lines) for
    the set-up of a benchmark, so its table is what it prints."""
    import contextlib
    import io
    import warnings

    stack = contextlib.ExitStack()
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    return stack
