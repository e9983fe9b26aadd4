"""Reliability scenarios with real (virtual) devices: prints the figures the reliability issue asks for.

    python -m apps.reliability                          the live scenarios, short (about 8 min)
    python -m apps.reliability --scenario soak --minutes 60
    python -m apps.reliability --scenario mic --trials 20
    python -m apps.reliability --scenario camera --trials 20
    python -m apps.reliability --scenario pause --pauses 5 60 --trials 10
    python -m apps.reliability --scenario kill --trials 20
    python -m apps.reliability --scenario train-kill --trials 50
    python -m apps.reliability --scenario export-kill --trials 50

Scenarios (each prints its duration first):

``soak``     A private PulseAudio microphone plays a sample-indexed ramp (int16 i mod 65536, bit-exact
             through PulseAudio) at 48 kHz while an ffmpeg camera streams into a FIFO; a labeler
             that checks the ramp in every window it is given counts lost and repeated samples at
             the model input. Prints hops, skips, lost/repeated samples, RSS slope (MB/min after
             the first minute) and the lag p99 per block of ``--block-minutes``.
``mic``      The microphone taken away (daemon killed, then sink unloaded, alternately) and given
             back: time to notice the loss and to deliver again after the device is back (from
             the new sink's first block; how long the sink took to deliver at all is its own column).
``camera``   The fake camera's writer killed and restarted (FIFO, tcp, http in turn): the same.
``pause``    ``avlive --mic --camera --record --events-out --jsonl`` stopped with SIGSTOP (a
             laptop's suspend) and continued: does the run go on and end cleanly (status 0, every
             output complete, the recording playable)?
``kill``     ``avlive`` on the world in real time with every output, SIGKILLed at a random time:
             does the TSV hold every event that ended 2 s before the kill, are the JSON lines
             whole, does the recording play to within 2 s of the kill?
``train-kill``   A tiny training run SIGKILLed at a random time and resumed: are last.pt and
             best.pt bit-identical to an uninterrupted run's, final evaluation included?
``export-kill``  Two different runs exported in turn into one folder, each export SIGKILLed at a
             random time: does the folder's model ever load while disagreeing with its sidecar?

Needs pulseaudio, pulseaudio-utils, libportaudio2 and ffmpeg (apps.virtual_devices).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RAMP_RATE = 48000
SCENARIOS = ("soak", "mic", "camera", "pause", "kill", "train-kill", "export-kill")


# ------------------------------------------------------------------------------ soak


class RampChecker:
    """A labeler that checks a sample-indexed ramp (``int16 bits = i mod 65536``) at the model
    input. Within a window every sample must follow the previous one (+1 mod 65536); across
    windows, the ramp value at each window's end must keep its offset to the window's stream
    index (:meth:`check_end`, called by a sink with the hop's ``end_index``): a forward jump is
    lost samples, a backward one repeated samples. Starts once a first clean window arrived.

    Silence inside the ramp (three or more exact zeros in a row, which the ramp never holds) is
    the player running dry upstream of the microphone, not a loss in avlive: it is counted in
    ``player_underruns`` and the offset is taken afresh after it."""

    def __init__(self, hop_s: float) -> None:
        from models.core.live import WindowSpec

        self.window = WindowSpec(hop_s, RAMP_RATE)
        self.labels = ("ramp",)
        self.lost = self.repeated = self.windows = self.breaks = self.player_underruns = 0
        self._rebase = False
        self.last_value: int | None = None
        self._offset: int | None = None

    def __call__(self, audio: np.ndarray, frame=None) -> np.ndarray:
        values = np.round(audio.astype(np.float64) * 32768.0).astype(np.int64) % 65536
        steps = np.diff(values) % 65536
        clean = bool(np.all(steps == 1))
        zeros = values == 0
        underrun = bool(np.any(zeros[:-2] & zeros[1:-1] & zeros[2:]))
        if self._offset is not None and underrun:
            self.player_underruns += 1
            self._rebase = True
        elif self._offset is not None:
            self.windows += 1
            if not clean:
                self.breaks += 1
                for step in steps[steps != 1]:
                    self._count(int(step) - 1)
        self.last_value = int(values[-1]) if (clean or (self._offset is not None and not underrun)) else None
        return np.zeros(1, np.float32)

    def check_end(self, end_index: int) -> None:
        """The window just checked ended at stream index ``end_index`` (exclusive)."""
        if self.last_value is None:
            return
        offset = (self.last_value - (end_index - 1)) % 65536
        if self._offset is None or self._rebase:
            self._offset, self._rebase = offset, False
        elif offset != self._offset:
            self._count((offset - self._offset) % 65536)
            self._offset = offset

    def _count(self, jump: int) -> None:
        jump %= 65536
        if 0 < jump < 32768:
            self.lost += jump
        elif jump:
            self.repeated += 65536 - jump


def _ramp_player(pulse, stop: threading.Event) -> subprocess.Popen:
    """``pacat`` fed the ramp from a thread (blocking writes pace it)."""
    proc = subprocess.Popen(["pacat", "--playback", "--device=vsink", "--format=s16le", f"--rate={RAMP_RATE}",
                             "--channels=1", "--latency-msec=1000"], env=pulse.env, stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def feed() -> None:
        block = 4800
        i = 0
        try:
            while not stop.is_set():
                # the int16 whose two's-complement bits are i mod 65536 (the checker undoes it)
                proc.stdin.write(((np.arange(i, i + block) % 65536).astype(np.uint16)).tobytes())
                i += block
        except (BrokenPipeError, ValueError, OSError):
            pass

    threading.Thread(target=feed, name="ramp", daemon=True).start()
    return proc


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def soak(minutes: float, block_minutes: float = 10.0, hop_s: float = 0.25, camera: bool = True) -> dict:
    """Run the microphone (+ camera) soak; returns the figures (see the module docstring)."""
    from apps.virtual_devices import FfmpegCamera, PrivatePulse
    from realtime.capture import Capture
    from realtime.rings import AudioRing, FrameRing
    from realtime.scheduler import ModelSlot, Scheduler, SchedulerConfig
    from realtime.sources import CameraSource, MicSource

    checker = RampChecker(hop_s)
    lags: list[tuple[float, float]] = []
    rss: list[tuple[float, float]] = []

    class LagSink:
        def open(self, context) -> None: ...
        def close(self) -> None: ...
        def write(self, result) -> None:
            if not result.final:
                lags.append((time.monotonic(), float(result.lag_ms)))
                if result.runs:
                    checker.check_end(int(result.end_index))

    stop = threading.Event()
    with PrivatePulse() as pulse:
        player = _ramp_player(pulse, stop)
        cam = FfmpegCamera("fifo", size=(160, 120), fps=15) if camera else None
        if cam is not None:
            cam.start()
        try:
            mic = MicSource("pulse", RAMP_RATE, device_rate=RAMP_RATE, channels=1)
            video = CameraSource(cam.url, size=(160, 120), timeout=10.0) if cam is not None else None
            audio_ring = AudioRing(8 * RAMP_RATE, RAMP_RATE)
            frame_ring = FrameRing(16, 120, 160) if video is not None else None
            scheduler = Scheduler(audio_ring, frame_ring, [ModelSlot("ramp", checker)], [LagSink()],
                                  SchedulerConfig(hop_s=hop_s), source_name="mic")
            capture = Capture(mic, video, audio_ring, frame_ring, on_status=lambda line: print(f"  {line}", flush=True))
            scheduler.watch_capture(capture.stats)
            capture.start()
            scheduler.start()
            t0 = time.monotonic()
            end = t0 + minutes * 60.0
            next_rss = t0
            while time.monotonic() < end:
                if not scheduler.running:
                    break
                capture.check()
                if time.monotonic() >= next_rss:
                    rss.append((time.monotonic() - t0, _rss_mb()))
                    next_rss += 30.0
                time.sleep(0.2)
            capture.stop()
            scheduler.stop()
            counters = scheduler.counters(capture.stats())
        finally:
            stop.set()
            player.kill()
            if cam is not None:
                cam.kill()
    t = np.array([x for x, _ in rss])
    mb = np.array([y for _, y in rss])
    late = t >= 60.0
    slope = float(np.polyfit(t[late] / 60.0, mb[late], 1)[0]) if late.sum() >= 3 else float("nan")
    blocks = []
    if lags:
        lag_t = np.array([x for x, _ in lags]) - t0
        lag_ms = np.array([y for _, y in lags])
        for b in range(int(np.ceil(minutes / block_minutes))):
            inside = (lag_t >= b * block_minutes * 60) & (lag_t < (b + 1) * block_minutes * 60)
            if inside.any():
                blocks.append(float(np.percentile(lag_ms[inside], 99)))
    return {"minutes": minutes, "hops": counters.hops, "skips": counters.skips, "windows_checked": checker.windows,
            "windows_with_a_break": checker.breaks, "player_underruns": checker.player_underruns, "lost_samples": checker.lost, "repeated_samples": checker.repeated,
            "gap_samples": counters.gap_samples, "input_overflows": counters.input_overflows,
            "device_losses": counters.device_losses, "rss_mb_first_last": (float(mb[0]), float(mb[-1])) if mb.size else None,
            "rss_slope_mb_per_min": slope, "lag_p99_ms_per_block": blocks}


# ------------------------------------------------------------------------------ devices lost


class _Status:
    def __init__(self) -> None:
        self.lines: list[tuple[float, str]] = []

    def __call__(self, line: str) -> None:
        self.lines.append((time.monotonic(), line))

    def after(self, t: float, word: str) -> float | None:
        return next((s for s, line in self.lines if s >= t and word in line), None)


def wait_until(predicate, timeout: float) -> bool:
    """Poll ``predicate`` every 10 ms until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def mic_trials(trials: int) -> list[dict]:
    """Take the microphone away and give it back ``trials`` times (one capture throughout)."""
    from apps.virtual_devices import PrivatePulse, write_tone
    from realtime.capture import Capture
    from realtime.rings import AudioRing
    from realtime.sources import MicSource

    rows = []
    status = _Status()
    with tempfile.TemporaryDirectory() as tmp, PrivatePulse() as pulse:
        tone = write_tone(Path(tmp) / "tone.wav", 600.0)
        pulse.play(tone)
        ring = AudioRing(16000 * 30, 16000)
        capture = Capture(MicSource("pulse", 16000, device_rate=pulse.rate, channels=1), None, ring, None,
                          on_status=status)
        capture.start()
        try:
            wait_until(lambda: ring.total_written > 16000, 10.0)
            for k in range(trials):
                how = "daemon killed" if k % 2 == 0 else "sink unloaded"
                before = capture.stats().device_recoveries
                time.sleep(1.0)
                gone = time.monotonic()
                pulse.kill() if how == "daemon killed" else pulse.unload_sink()
                noticed = wait_until(lambda: bool(capture.stats().lost), 5.0)
                detected = status.after(gone, "lost")
                time.sleep(1.0)
                pulse.start() if how == "daemon killed" else pulse.load_sink()
                back = pulse.delivering_at  # the new sink's first block (see PrivatePulse)
                pulse.play(tone)
                recovered = wait_until(lambda: capture.stats().device_recoveries > before, 20.0)
                delivered = status.after(pulse.loaded_at, "back after")
                rows.append({"trial": k + 1, "how": how, "noticed": noticed, "recovered": recovered,
                             "detect_s": None if detected is None else detected - gone,
                             "recover_s": None if delivered is None else delivered - back,
                             "sink_first_block_s": back - pulse.loaded_at})
        finally:
            capture.stop()
    return rows


def camera_trials(trials: int) -> list[dict]:
    """Kill and restart the fake camera's writer ``trials`` times (FIFO, tcp, http in turn)."""
    from apps.virtual_devices import KINDS, FfmpegCamera
    from realtime.capture import Capture
    from realtime.rings import FrameRing
    from realtime.sources import CameraSource

    rows = []
    for k in range(trials):
        kind = KINDS[k % len(KINDS)]
        status = _Status()
        with FfmpegCamera(kind, size=(96, 96), fps=10) as camera:
            capture = Capture(None, CameraSource(camera.url, size=(96, 96), timeout=10.0), None, FrameRing(8, 96, 96),
                              on_status=status)
            capture.start()
            try:
                wait_until(lambda: capture.frames_captured >= 5, 10.0)
                gone = time.monotonic()
                camera.kill()
                noticed = wait_until(lambda: bool(capture.stats().lost), 5.0)
                detected = status.after(gone, "lost")
                time.sleep(1.0)
                camera.start()
                back = time.monotonic()
                recovered = wait_until(lambda: capture.stats().device_recoveries == 1, 20.0)
                delivered = status.after(back, "back after")
            finally:
                capture.stop()
        rows.append({"trial": k + 1, "how": kind, "noticed": noticed, "recovered": recovered,
                     "detect_s": None if detected is None else detected - gone,
                     "recover_s": None if delivered is None else delivered - back})
    return rows


# ------------------------------------------------------------------------------ avlive runs


def _avlive(args: list[str], env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "apps.avlive", "--headless", "--threads", "1", *args], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _records(path: Path) -> list[dict]:
    """The complete JSON lines of a file being written (a line still being written is left out)."""
    if not path.exists():
        return []
    lines = path.read_text().split("\n")
    return [json.loads(line) for line in lines[:-1] if line]


def _plays(path: Path) -> float:
    """Seconds of video a file plays (0 when it does not open)."""
    from models.io.media import read_video_frames

    try:
        frames, times = read_video_frames(path)
    except Exception:
        return 0.0
    return float(times[-1]) if len(frames) else 0.0


def pause_trials(pauses: list[float], trials: int) -> list[dict]:
    """SIGSTOP a live ``avlive --mic --camera`` run for each pause, ``trials`` times."""
    from apps.virtual_devices import FfmpegCamera, PrivatePulse, write_tone

    rows = []
    with tempfile.TemporaryDirectory() as tmp, PrivatePulse() as pulse:
        folder = Path(tmp)
        tone = write_tone(folder / "tone.wav", 600.0)
        pulse.play(tone)
        for pause in pauses:
            for k in range(trials):
                with FfmpegCamera("fifo", size=(160, 120), fps=10) as camera:
                    out = folder / f"p{pause:g}-{k}"
                    out.mkdir()
                    run = _avlive(["--mic", "pulse", "--camera", camera.url, "--jsonl", str(out / "hops.jsonl"),
                                   "--events-out", str(out / "events.tsv"), "--record", str(out / "run.mp4")])
                    try:
                        wait_until(lambda: len(_records(out / "hops.jsonl")) >= 8, 60.0)
                        run.send_signal(signal.SIGSTOP)
                        time.sleep(pause)
                        run.send_signal(signal.SIGCONT)
                        resumed = len(_records(out / "hops.jsonl"))
                        went_on = wait_until(lambda: len(_records(out / "hops.jsonl")) >= resumed + 8, 30.0)
                        run.send_signal(signal.SIGINT)
                        try:
                            _, err = run.communicate(timeout=60)
                        except subprocess.TimeoutExpired:  # did not stop: that is the trial's result
                            run.kill()
                            _, err = run.communicate()
                    finally:  # never leave a run behind (stopped or not)
                        if run.poll() is None:
                            run.send_signal(signal.SIGCONT)
                            run.kill()
                            run.wait()
                    records = _records(out / "hops.jsonl")
                    rows.append({"pause_s": pause, "trial": k + 1, "rc": run.returncode, "went_on": went_on,
                                 "final_record": bool(records) and records[-1]["final"],
                                 "events_tsv": (out / "events.tsv").is_file(),
                                 "mp4_plays_s": round(_plays(out / "run.mp4"), 1),
                                 **{k: records[-1]["counters"][k] if records else None
                                    for k in ("gap_samples", "input_overflows", "device_losses", "skips")},
                                 "error": "" if run.returncode == 0 else err.strip().splitlines()[-1:]})
    return rows


def kill_trials(trials: int, seed: int = 200001) -> list[dict]:
    """SIGKILL a real-time run on the world at a random time, ``trials`` times."""
    from models.core.events import read_strong_tsv

    rows = []
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(trials):
            out = Path(tmp) / f"k{k}"
            out.mkdir()
            jsonl, events, video = out / "hops.jsonl", out / "events.tsv", out / "run.mp4"
            at = rng.uniform(6.0, 25.0)
            run = _avlive(["--source", f"synthetic:{seed}", "--jsonl", str(jsonl), "--events-out", str(events),
                           "--record", str(video)])
            try:
                wait_until(lambda: (_records(jsonl) or [{"stream_time": 0}])[-1]["stream_time"] >= at, 120.0)
            finally:  # never leave a run behind, whatever went wrong here
                run.kill()
                run.wait()
            try:  # after the kill: every line must be whole, the last one included
                text = jsonl.read_text()
                records = [json.loads(line) for line in text.splitlines()]
                whole = text.endswith("\n")
            except (OSError, json.JSONDecodeError):
                records, whole = _records(jsonl), False
            killed_at = records[-1]["stream_time"] if records else 0.0
            ended = {(e["label"], round(e["onset"], 3)) for r in records if r["stream_time"] <= killed_at - 2.0
                     for e in r["ended"]}
            kept = {(e.label, round(e.onset, 3)) for e in read_strong_tsv(events)} if events.exists() else set()
            started = records[0]["stream_time"] if records else 0.0
            plays_to = started + _plays(out / "run.partial.mp4")
            rows.append({"trial": k + 1, "killed_at_s": round(killed_at, 2), "json_whole": whole,
                         "events_kept": f"{len(ended & kept)}/{len(ended)}", "mp4_plays_to_s": round(plays_to, 2),
                         "ok": whole and ended <= kept and plays_to >= killed_at - 2.0})
    return rows


# ------------------------------------------------------------------------------ training and export


#: A tiny baseline run (the world's tiny preset): seconds per run on 2 cores.
TINY_TRAIN = ["world=tiny", "train_windows=96", "val_windows=32", "width=4", "batch_size=8", "threads=1",
              "warmup_steps=0", "seed=3", "epochs=3", "num_workers=0", "checkpoint_every=2", "dropout=0.3"]


def _train(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "models.train", "--recipe", "baseline", "--out", str(out), *extra,
                             *TINY_TRAIN], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _same_checkpoint(a: Path, b: Path) -> bool:
    import torch

    from models.core.checkpoint import load_checkpoint

    x, y = load_checkpoint(a), load_checkpoint(b)
    return x["model_state"].keys() == y["model_state"].keys() and all(
        torch.equal(x["model_state"][k], y["model_state"][k]) for k in x["model_state"])


def train_kill_trials(trials: int) -> list[dict]:
    """SIGKILL a tiny training run at a random time and resume it, ``trials`` times: the final
    last.pt and best.pt must equal an uninterrupted run's, and the final evaluation must be logged."""
    rows = []
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        reference = Path(tmp) / "reference"
        run = _train(reference)
        wait_until(lambda: (reference / "checkpoints" / "last.pt").exists() or run.poll() is not None, 120.0)
        first_checkpoint = time.monotonic()
        if run.wait() != 0:
            raise RuntimeError(f"the reference run failed: {run.stderr.read()[-500:]}")
        length = time.monotonic() - first_checkpoint  # the span a kill can fall in
        ref_evals = (reference / "metrics.jsonl").read_text().count('"kind": "eval"')
        for k in range(trials):
            out = Path(tmp) / f"t{k}"
            run = _train(out)
            wait_until(lambda: (out / "checkpoints" / "last.pt").exists() or run.poll() is not None, 120.0)
            time.sleep(rng.uniform(0.0, length))
            finished_first = run.poll() is not None
            run.kill()
            run.wait()
            resumed = _train(out, "--resume")
            rc = resumed.wait()
            evals = (out / "metrics.jsonl").read_text().count('"kind": "eval"') if (out / "metrics.jsonl").exists() else 0
            same = rc == 0 and all(_same_checkpoint(reference / "checkpoints" / n, out / "checkpoints" / n)
                                   for n in ("last.pt", "best.pt"))
            rows.append({"trial": k + 1, "killed": not finished_first, "resume_rc": rc, "identical": same,
                         "final_eval_logged": evals >= ref_evals})
    return rows


def export_kill_trials(trials: int) -> list[dict]:
    """Export two different runs in turn into one folder, SIGKILLing the export at a random
    time: after every kill the folder's model.onnx either loads and gives the scores of the
    checkpoint its sidecar names, or is refused in one line. Never a pair that loads but disagrees."""
    import onnxruntime as ort

    from models.core.atomic import sha256_file
    from models.core.metadata import ModelMetadata, sidecar_path
    from models.families import exportable
    from realtime.models import ModelError, check_onnx_pair

    rows = []
    rng = random.Random(2)
    with tempfile.TemporaryDirectory() as tmp:
        runs = []
        for name, seed in (("a", "seed=3"), ("b", "seed=4")):
            out = Path(tmp) / name
            p = subprocess.run([sys.executable, "-m", "models.train", "--recipe", "baseline", "--out", str(out),
                                *TINY_TRAIN, seed], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                               capture_output=True, text=True)
            if p.returncode:
                raise RuntimeError(p.stderr[-500:])
            runs.append(out)
        target = Path(tmp) / "target"
        (target / "checkpoints").mkdir(parents=True)
        shas = {sha256_file(r / "checkpoints" / "best.pt"): r for r in runs}
        probe = np.random.default_rng(0).normal(0, 0.1, (1, 32000)).astype(np.float32)
        expected = {}
        for sha, r in shas.items():
            module = exportable(r).module
            import torch
            with torch.inference_mode():
                expected[sha] = module(torch.from_numpy(probe)).numpy()
        for k in range(trials):
            source = runs[k % 2]
            for name in ("config.json", "metadata.json"):
                (target / name).write_bytes((source / name).read_bytes())
            (target / "checkpoints" / "best.pt").write_bytes((source / "checkpoints" / "best.pt").read_bytes())
            export = subprocess.Popen([sys.executable, "-m", "models.export", str(target)], cwd=REPO,
                                      env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
            if k == 0:  # the first export runs to the end: how long one takes
                began = time.monotonic()
                export.wait()
                span = time.monotonic() - began
            else:
                time.sleep(rng.uniform(0.0, span))
            export.kill()
            export.wait()
            onnx = target / "model.onnx"
            state = "nothing yet"
            if onnx.exists() and sidecar_path(onnx).exists():
                meta = ModelMetadata.load(sidecar_path(onnx))
                try:
                    check_onnx_pair(onnx, meta)
                    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
                    got = session.run(None, {session.get_inputs()[0].name: probe})[0]
                    want = expected.get(meta.checkpoint_sha256)
                    agrees = want is not None and np.allclose(got, want, atol=1e-4)
                    state = "loads, agrees" if agrees else "LOADS BUT DISAGREES"
                except ModelError:
                    state = "refused (one line)"
            rows.append({"trial": k + 1, "state": state})
    return rows


# ------------------------------------------------------------------------------ printing


def _table(rows: list[dict]) -> str:
    if not rows:
        return "  (no rows)"
    keys = list(rows[0])
    def fmt(v):
        return f"{v:.2f}" if isinstance(v, float) else str(v)
    widths = {k: max(len(k), *(len(fmt(r[k])) for r in rows)) for k in keys}
    lines = ["  " + "  ".join(k.ljust(widths[k]) for k in keys)]
    lines += ["  " + "  ".join(fmt(r[k]).ljust(widths[k]) for k in keys) for r in rows]
    return "\n".join(lines)


def _summary(rows: list[dict], detect_limit: float, recover_limit: float) -> str:
    ok = [r for r in rows if r["noticed"] and r["recovered"]]
    detect = [r["detect_s"] for r in ok if r["detect_s"] is not None]
    recover = [r["recover_s"] for r in ok if r["recover_s"] is not None]
    within = sum(1 for r in ok if r["detect_s"] is not None and r["detect_s"] <= detect_limit
                 and r["recover_s"] is not None and r["recover_s"] <= recover_limit)
    def stats(v):
        return f"median {np.median(v):.2f} s, max {max(v):.2f} s" if v else "n/a"
    return (f"  recovered {len(ok)}/{len(rows)}; detection {stats(detect)}; recovery after the device was back "
            f"{stats(recover)}; within {detect_limit:g} s / {recover_limit:g} s: {within}/{len(rows)}")


#: Default trials per scenario.
TRIALS = {"mic": 20, "camera": 20, "pause": 2, "kill": 5, "train-kill": 5, "export-kill": 5}


def _minutes(name: str, trials: int, pauses: list[float]) -> float:
    """A rough duration, to print before a scenario starts."""
    per_trial_s = {"mic": 5, "camera": 2, "kill": 30, "train-kill": 40, "export-kill": 25}
    if name == "pause":
        return sum(p + 15 for p in pauses) * trials / 60
    return trials * per_trial_s[name] / 60 + (1 if name.endswith("-kill") else 0)


def _run_trials(name: str, trials: int, pauses: list[float]) -> list[dict]:
    runners = {"mic": mic_trials, "camera": camera_trials, "kill": kill_trials, "train-kill": train_kill_trials,
               "export-kill": export_kill_trials}
    return pause_trials(pauses, trials) if name == "pause" else runners[name](trials)


def _summary_line(name: str, rows: list[dict]) -> str:
    if name in ("mic", "camera"):
        return _summary(rows, 1.0 if name == "mic" else 2.0, 1.0)
    if name == "pause":
        ok = sum(r["rc"] == 0 and r["went_on"] and r["final_record"] and r["mp4_plays_s"] > 0 for r in rows)
        return f"  survived (status 0, went on, final record, mp4 plays): {ok}/{len(rows)}"
    if name == "kill":
        return (f"  every event ended 2 s before the kill kept, whole JSON lines, mp4 playing to within 2 s: "
                f"{sum(r['ok'] for r in rows)}/{len(rows)}")
    if name == "train-kill":
        return (f"  bit-identical to the uninterrupted run, final evaluation logged: "
                f"{sum(r['identical'] and r['final_eval_logged'] for r in rows)}/{len(rows)} "
                f"({sum(r['killed'] for r in rows)} killed before they finished)")
    states = [r["state"] for r in rows]
    return "  " + ", ".join(f"{state}: {states.count(state)}" for state in sorted(set(states)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m apps.reliability", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--scenario", choices=SCENARIOS, action="append", help="run only these (repeatable; default all)")
    p.add_argument("--minutes", type=float, default=2.0, help="soak length")
    p.add_argument("--block-minutes", type=float, default=None, help="soak lag blocks (default: a fifth of the soak, "
                                                                      "at most 10)")
    p.add_argument("--trials", type=int, default=None,
                   help="trials per scenario (default: " + ", ".join(f"{k} {v}" for k, v in TRIALS.items()) + ")")
    p.add_argument("--pauses", type=float, nargs="+", default=[5.0, 60.0], help="SIGSTOP lengths in seconds")
    args = p.parse_args(argv)
    chosen = args.scenario or [s for s in SCENARIOS if s not in ("train-kill", "export-kill")]
    devices = any(name in ("soak", "mic", "camera", "pause") for name in chosen)
    missing = [tool for tool in ("pulseaudio", "pactl", "pacat", "ffmpeg") if devices and shutil.which(tool) is None]
    if missing:
        print(f"reliability: {', '.join(missing)} missing: sudo apt-get install pulseaudio pulseaudio-utils "
              f"libportaudio2 ffmpeg", file=sys.stderr)
        return 2
    for name in chosen:
        started = time.monotonic()
        print(f"== {name}", flush=True)
        if name == "soak":
            block = args.block_minutes or min(10.0, max(args.minutes / 5.0, 0.5))
            print(f"  (about {args.minutes:g} min)", flush=True)
            figures = soak(args.minutes, block)
            for key, value in figures.items():
                print(f"  {key}: {value}")
        else:
            trials = args.trials or TRIALS[name]
            print(f"  (about {_minutes(name, trials, args.pauses):.0f} min)", flush=True)
            rows = _run_trials(name, trials, args.pauses)
            print(_table(rows))
            print(_summary_line(name, rows))
        print(f"  ({time.monotonic() - started:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
