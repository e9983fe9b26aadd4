"""The avlive command end to end: the real pipeline (sources, capture, rings, scheduler, sinks) on a
tiny trained run, and its answers to bad input. Nothing is mocked; nothing is trained here."""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import av
import numpy as np
import pytest

from apps.avlive import main
from models.core.events import read_strong_tsv
from realtime import schema

from conftest import PORTAUDIO, REPO, python_cmd, python_without_portaudio, require_system, subprocess_env

# Low thresholds so that the barely trained tiny model produces events (and the setting is read
# from the model's metadata, extra["hysteresis"]).
HYSTERESIS = {"on": 0.1, "off": 0.05, "smooth_hops": 1}


def copy_run(run: Path, dest: Path, *, onnx: bool) -> Path:
    """A private copy of the session's run (never modify the shared one) with the hysteresis set;
    ``onnx``: exported to model.onnx (+ sidecar) through models.export."""
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("model.onnx*", "tensorboard"))
    meta = json.loads((dest / "metadata.json").read_text())
    meta["extra"]["hysteresis"] = HYSTERESIS
    (dest / "metadata.json").write_text(json.dumps(meta))
    if onnx:
        from models.export.cli import main as export_main

        assert export_main([str(dest)]) == 0
        side = dest / "model.onnx.json"
        meta = json.loads(side.read_text())
        meta["extra"]["hysteresis"] = HYSTERESIS
        side.write_text(json.dumps(meta))
    return dest


@pytest.fixture(autouse=True)
def no_display(monkeypatch):
    """No display: avlive runs headless unless told otherwise (the window has tests/test_window.py);
    subprocesses inherit this environment."""
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def onnx_run(tiny_run, tmp_path_factory):
    return copy_run(tiny_run, tmp_path_factory.mktemp("onnx-run") / "run", onnx=True)


def read_jsonl(path: Path) -> list[dict]:
    lines = path.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    for r in records:
        schema.validate(r)
    return records


def decode(path: Path) -> tuple[int, float, float]:
    """(video frames, audio seconds, video fps) of an mp4."""
    with av.open(str(path)) as c:
        frames = sum(1 for _ in c.decode(video=0))
    with av.open(str(path)) as c:
        rate = c.streams.audio[0].rate
        samples = sum(f.samples for f in c.decode(audio=0))
    return frames, samples / rate, 30.0


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_offline_onnxruntime_run_writes_valid_outputs(onnx_run, tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    t0 = time.perf_counter()
    rc = main(["--source", "synthetic:200001", "--models", str(onnx_run), "--backend", "onnxruntime", "--threads", "1",
               "--no-realtime", "--duration", "8", "--jsonl", str(out), "--events-out", str(tmp_path / "out.tsv"),
               "--record", str(tmp_path / "out.mp4")])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert time.perf_counter() - t0 < 30
    assert "running headless" in err and "synthetic:200001: 8.0 s, 32 hops, 0 skipped" in err
    records = read_jsonl(out)
    assert len(records) == 33 and records[-1]["final"] and not any(r["final"] for r in records[:-1])
    assert [r["hop"] for r in records[:-1]] == list(range(1, 33))  # offline: every hop, none skipped
    assert records[-1]["stream_time"] == 8.0
    assert all(r["source"] == "synthetic:200001" and r["heatmap"] is None for r in records)  # no localizer
    assert all(r["top"] and r["top"][0]["model"] == "run" for r in records)
    events = read_strong_tsv(tmp_path / "out.tsv")
    assert events, "the low thresholds from the sidecar's extra['hysteresis'] must give events"
    assert {e.filename for e in events} == {"synthetic:200001"}
    assert all(0 <= e.onset <= e.offset <= 8.0 for e in events)
    ended = [e for r in records for e in r["ended"]]
    assert len(ended) == len(events)
    frames, audio_s, fps = decode(tmp_path / "out.mp4")
    # --record covers the whole run, from 0 s (the first hop's audio and frames too) to 8 s
    assert abs(frames - 8.0 * fps) <= 2
    assert abs(audio_s - 8.0) < 0.15


def test_torch_backend_on_a_media_file_in_real_time(tiny_run, tmp_path, capsys):
    from models.io.media import write_av_file
    from models.world import Scene, get_preset

    run = copy_run(tiny_run, tmp_path / "run", onnx=False)
    scene = Scene(get_preset("tiny"), 200002)
    clip = tmp_path / "clip.mp4"
    write_av_file(clip, [scene.render_frame(k)[0] for k in range(45)], scene.render_audio(0, 48000, 16000), 15, 16000)
    out = tmp_path / "rt.jsonl"
    t0 = time.perf_counter()
    rc = main(["--source", str(clip), "--models", str(run), "--backend", "torch", "--threads", "1", "--headless",
               "--jsonl", str(out), "--events-out", str(tmp_path / "rt.tsv")])
    wall = time.perf_counter() - t0
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "running headless" not in err  # --headless asked for it: no remark
    assert wall >= 2.5  # the file is replayed at real-time pace (3 s)
    records = read_jsonl(out)
    assert records[-1]["final"] and 2.9 <= records[-1]["stream_time"] <= 3.1
    assert {r["source"] for r in records} == {"clip.mp4"}
    assert records[-1]["counters"]["hops"] >= 10
    events = read_strong_tsv(tmp_path / "rt.tsv")
    assert events and {e.filename for e in events} == {"clip.mp4"}


def test_audio_only_with_the_demo_models_and_a_localizer_checkpoint(tiny_run, tmp_path, capsys, monkeypatch):
    import realtime.models
    from models.l3.network import l3_tiny, save_checkpoint

    demo = tmp_path / "demo"
    copy_run(tiny_run, demo / "labeler", onnx=False)
    (demo / "localizer").mkdir()
    save_checkpoint(demo / "localizer" / "l3.pt", l3_tiny(), threshold=0.5)  # checkpoint layout, random weights
    monkeypatch.setattr(realtime.models, "DEMO_DIR", demo)
    out = tmp_path / "a.jsonl"
    # --camera none: audio only, the localizer is left out (labels, no heatmap)
    rc = main(["--backend", "torch", "--threads", "1", "--camera", "none", "--no-realtime", "--duration", "1",
               "--jsonl", str(out), "--record", str(tmp_path / "a.mp4")])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "demo models" in err and "leaving out the localizer" in err
    records = read_jsonl(out)
    assert {r["source"] for r in records} == {"synthetic:200000"}  # the default source
    assert all(r["heatmap"] is None for r in records)
    with av.open(str(tmp_path / "a.mp4")) as c:
        assert not c.streams.video and c.streams.audio
    # with video: the L3 localizer runs every 2nd hop at 48 kHz, its heatmap in every line after the first run
    rc = main(["--backend", "torch", "--threads", "1", "--no-realtime", "--duration", "1.5", "--localizer-every", "2",
               "--jsonl", str(out)])
    err = capsys.readouterr().err
    assert rc == 0, err
    records = read_jsonl(out)
    assert all(r["heatmap"] is not None for r in records)
    assert [r["heatmap"]["fresh"] for r in records[:-1]] == [True, False] * 3


def test_ctrl_c_stops_cleanly_and_flushes(onnx_run, tmp_path):
    out, tsv = tmp_path / "c.jsonl", tmp_path / "c.tsv"
    proc = subprocess.Popen(python_cmd("-m", "apps.avlive", "--models", str(onnx_run), "--threads", "1", "--camera",
                                       "none", "--jsonl", str(out), "--events-out", str(tsv)),
                            cwd=REPO, env=subprocess_env(OMP_NUM_THREADS="1"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and len(out.read_text().splitlines()) >= 3:
                break
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()[1]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Interrupted by user" in err and "Traceback" not in err
    records = read_jsonl(out)  # flushed, every line whole
    assert records[-1]["final"] and records[-1]["counters"]["hops"] >= 3
    assert tsv.is_file() and tsv.read_text().startswith("filename\tonset\toffset\tevent_label")
    assert {e.filename for e in read_strong_tsv(tsv)} <= {"synthetic:200000"}


def test_list_devices_lists_both_kinds(capsys):
    assert main(["--list-devices"]) == 0
    out = capsys.readouterr().out
    assert "Microphones (--mic" in out and "Cameras (--camera" in out


def test_missing_microphone_lists_the_devices(onnx_run, capsys):
    require_system(PORTAUDIO)
    rc = main(["--mic", "nonexistent-xyz", "--models", str(onnx_run)])
    line = one_line(capsys.readouterr().err)
    assert rc != 0
    assert "nonexistent-xyz" in line and "input devices:" in line


def test_without_portaudio_the_microphone_names_the_package(onnx_run):
    """On a machine without libportaudio2 (hidden here from sounddevice, in a subprocess):
    --mic ends with one line naming the package, and --list-devices still lists the cameras."""
    env = subprocess_env(OMP_NUM_THREADS="1")
    mic = subprocess.run(python_without_portaudio("apps.avlive", "--mic", "default", "--models", str(onnx_run),
                                                  "--duration", "1"),
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert mic.returncode == 2, mic.stderr
    line = one_line(mic.stderr)
    assert "PortAudio library not found" in line and "apt-get install libportaudio2" in line
    listing = subprocess.run(python_without_portaudio("apps.avlive", "--list-devices"), cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0, listing.stderr
    assert "unavailable: PortAudio library not found" in listing.stdout and "libportaudio2" in listing.stdout
    assert "Cameras (--camera" in listing.stdout


def test_gui_without_a_display_suggests_headless(capsys):
    rc = main(["--gui"])
    line = one_line(capsys.readouterr().err)
    assert rc != 0 and "--headless" in line


def test_no_models_and_no_demo_names_models(tmp_path, capsys, monkeypatch):
    import realtime.models

    monkeypatch.setattr(realtime.models, "DEMO_DIR", tmp_path / "no-demo")
    rc = main(["--duration", "1"])
    line = one_line(capsys.readouterr().err)
    assert rc == 2
    assert "--models RUN_DIR" in line and "python -m models.train --recipe baseline" in line


def test_bad_models_name_what_is_wrong(tiny_run, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["--models", str(empty)]) == 2
    assert "metadata.json is missing" in one_line(capsys.readouterr().err)
    # a run folder without its export, for onnxruntime
    bare = tmp_path / "bare"
    shutil.copytree(tiny_run, bare, ignore=shutil.ignore_patterns("model.onnx*"))
    assert main(["--models", str(bare), "--backend", "onnxruntime"]) == 2
    assert "model.onnx is missing" in one_line(capsys.readouterr().err)
    (bare / "checkpoints" / "best.pt").unlink(missing_ok=True)
    (bare / "checkpoints" / "last.pt").unlink()
    assert main(["--models", str(bare), "--backend", "torch"]) == 2
    assert "checkpoints/best.pt is missing" in one_line(capsys.readouterr().err)
    # a labeler given as the localizer names the field
    assert main(["--localizer", str(tiny_run)]) == 2
    line = one_line(capsys.readouterr().err)
    assert "task" in line and "'localizer'" in line and "'labeler'" in line


# ------------------------------------------------------------------------------ --scores-out, the labeler's hop

DEMO = REPO / "models" / "demo"
needs_demo = pytest.mark.skipif(not (DEMO / "labeler" / "model.onnx").is_file() or
                                not (DEMO / "localizer" / "model.onnx").is_file(),
                                reason=f"the demo models in {DEMO} are not in this checkout")


def run_avlive(tmp_path: Path, *args: str) -> tuple[list[dict], str]:
    """``avlive --source synthetic:200001 --duration 5 --headless --no-realtime`` in a subprocess;
    its JSON lines and stderr."""
    out = tmp_path / "out.jsonl"
    done = subprocess.run(python_cmd("-m", "apps.avlive", "--source", "synthetic:200001", "--duration", "5",
                                     "--headless", "--no-realtime", "--threads", "1", "--jsonl", str(out), *args),
                          capture_output=True, text=True, env=subprocess_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # nothing new on stdout: the JSON lines went to the file
    return read_jsonl(out), done.stderr


def score_rows(path: Path, labels: list[str]) -> np.ndarray:
    """The score TSV's rows (T, 2 + C), after the header check and both readers' own checks."""
    import warnings

    from models.evaluation.psds import read_score_tsv

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sed_eval, which it imports, imports the deprecated pkg_resources
        from sed_scores_eval.base_modules.io import read_sed_scores
    assert path.read_text().splitlines()[0].split("\t") == ["onset", "offset", *labels]
    read_sed_scores(path)  # contiguous rows of positive length, or it raises
    t = read_score_tsv(path)
    return np.column_stack([t.onsets, t.offsets, t.scores])


@needs_demo
def test_scores_out_writes_the_labelers_scores_as_a_score_table(tmp_path):
    scores = tmp_path / "scores.tsv"
    records, err = run_avlive(tmp_path, "--scores-out", str(scores))
    labels = json.loads((DEMO / "labeler" / "model.onnx.json").read_text())["labels"]
    rows = score_rows(scores, labels)
    hops = [r for r in records if not r["final"]]
    assert len(hops) == 20 and "hop 0.25 s" in err  # the default hop, the demo labeler states none
    assert sum(r["heatmap"]["fresh"] for r in hops if r["heatmap"]) == 7  # the localizer every third hop
    # one row per labeler run, contiguous (checked above), within the 5 s stream, non-overlapping
    assert rows.shape[0] == 20
    assert rows[0, 0] == 0.0 and rows[-1, 1] <= 5.0
    assert np.all(rows[:, 1] > rows[:, 0]) and np.array_equal(rows[1:, 0], rows[:-1, 1])
    # each row ends at its run's window end: the hop's time less the 16 kHz resampler's hold-back (<= 40 ms)
    ends = np.array([r["stream_time"] for r in hops])
    assert np.all((ends - rows[:, 1] >= 0) & (ends - rows[:, 1] < 0.04))
    assert np.all((rows[:, 2:] >= 0) & (rows[:, 2:] <= 1))


@needs_demo
def test_a_labelers_preferred_hop_is_the_default_and_the_localizer_keeps_its_pace(tmp_path):
    labeler = tmp_path / "labeler"
    labeler.mkdir()
    shutil.copy(DEMO / "labeler" / "model.onnx", labeler / "model.onnx")
    meta = json.loads((DEMO / "labeler" / "model.onnx.json").read_text())
    meta["extra"]["hop_seconds"] = 0.5
    (labeler / "model.onnx.json").write_text(json.dumps(meta))
    scores = tmp_path / "scores.tsv"
    records, err = run_avlive(tmp_path, "--labeler", str(labeler), "--localizer", str(DEMO / "localizer"),
                              "--scores-out", str(scores))
    hops = [r for r in records if not r["final"]]
    assert "hop 0.5 s" in err
    assert [r["hop"] for r in hops] == list(range(1, 11))  # 5 s / 0.5 s
    # every round(0.75 / 0.5) = 2nd hop: at 1, 3, 5, 7, 9, about every second (0.75 s asked)
    assert [r["hop"] for r in hops if r["heatmap"] and r["heatmap"]["fresh"]] == [1, 3, 5, 7, 9]
    rows = score_rows(scores, meta["labels"])
    assert rows.shape[0] == 10 and np.all(np.diff(rows[1:, 1]) > 0.45)  # one 0.5 s row per run


def test_help_explains_the_hop_defaults_and_scores_out(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "extra.hop_seconds, else 0.25" in text and "round(0.75 / hop)" in text and "--scores-out" in text
    # naming one kind keeps the other's default; low-rate audio is upsampled or a default model left out
    assert "the default localizer stays unless --localizer none" in text and "exactly (no defaults added)" in text
    assert "a 22.05 or 11.025 kHz file" in text and "is left out, saying how to run it anyway" in text
    assert "record the whole run" in text


@needs_demo
def test_a_bad_preferred_hop_ends_in_one_line(tmp_path, capsys):
    labeler = tmp_path / "labeler"
    labeler.mkdir()
    shutil.copy(DEMO / "labeler" / "model.onnx", labeler / "model.onnx")
    meta = json.loads((DEMO / "labeler" / "model.onnx.json").read_text())
    meta["extra"]["hop_seconds"] = -0.5
    (labeler / "model.onnx.json").write_text(json.dumps(meta))
    rc = main(["--source", "synthetic:200001", "--labeler", str(labeler), "--camera", "none", "--headless",
               "--no-realtime", "--duration", "1", "--jsonl", "none"])
    assert rc == 2
    assert "extra.hop_seconds: expected seconds > 0, found -0.5" in one_line(capsys.readouterr().err)


# ------------------------------------------------------------------------------ real files below the models' rates

REAL_VIDEOS = REPO / "tests" / "data" / "real_videos"


@pytest.mark.skipif(not (DEMO / "real-sounds" / "model.onnx").is_file(), reason=f"{DEMO}/real-sounds is not here")
@pytest.mark.parametrize("name, rate, verdict", [("coin-22050.mp4", 22050, "resampled to 16000 Hz: its whole"),
                                                 ("webcam-11025.mp4", 11025, "upsampled to 16000 Hz: nothing above")])
def test_real_videos_below_the_models_rates_run_with_the_default_models(tmp_path, name, rate, verdict):
    """A camcorder-rate file (22.05 or 11.025 kHz) runs with the default models: one line says
    which models run and why, one what the labeler gets from the audio; the recording covers it."""
    record = tmp_path / "out.mp4"
    done = subprocess.run(python_cmd("-m", "apps.avlive", "--source", str(REAL_VIDEOS / name), "--headless",
                                     "--no-realtime", "--threads", "1", "--jsonl", "none", "--record", str(record)),
                          capture_output=True, text=True, env=subprocess_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert any(line.startswith("avlive: models: labeler") and "default for real input" in line and "no localizer"
               in line for line in lines), done.stderr
    got = [line for line in lines if line.startswith(f"avlive: {name}: ") and "labeler real-sounds gets the "
           f"{rate} Hz audio" in line]
    assert len(got) == 1 and verdict in got[0], done.stderr
    assert ("warning:" in got[0]) == (rate < 16000)
    frames, audio_s, _ = decode(record)
    assert frames >= 89 and 3.0 <= audio_s < 3.1  # 3 s at the recorder's 30 fps: the first hop and the tail too


def test_naming_one_kind_keeps_the_default_of_the_other(tmp_path):
    """--labeler keeps the default localizer (the world's), --localizer none leaves it out,
    --models lists the run's models exactly; a default localizer the file's audio cannot
    serve is left out with a line that says how to run it anyway, a named one runs."""
    from realtime.models import load_models
    from realtime.pipeline import PipelineConfig, build_streams

    real_sounds = str(DEMO / "real-sounds")
    if not (DEMO / "localizer" / "model.onnx").is_file() or not Path(real_sounds).is_dir():
        pytest.skip(f"the demo models in {DEMO} are not in this checkout")
    models, notes = load_models(labeler=real_sounds, threads=1)
    try:
        assert models.localizer is not None and not models.localizer.named and models.labelers[0].named
        assert "(--labeler)" in notes[0] and "localizer" in notes[0] and "--localizer none leaves it out" in notes[0]
        clip = str(REAL_VIDEOS / "coin-22050.mp4")
        streams = build_streams(PipelineConfig(source=clip), models)
        streams.close()
        assert models.localizer is None and streams.sample_rate == 16000
        left = [n for n in streams.notes if "localizer localizer left out" in n]
        assert len(left) == 1 and "22050 Hz" in left[0] and "--localizer PATH" in left[0], streams.notes
    finally:
        models.close()
    models, notes = load_models(labeler=real_sounds, localizer="none", threads=1)
    try:
        assert models.localizer is None and "no localizer (--localizer none)" in notes[0]
    finally:
        models.close()
    models, notes = load_models(models=[real_sounds], threads=1)
    try:
        assert models.localizer is None and len(models.labelers) == 1
    finally:
        models.close()
    models, notes = load_models(labeler=real_sounds, localizer=str(DEMO / "localizer"), threads=1, real_input=True)
    try:
        streams = build_streams(PipelineConfig(source=str(REAL_VIDEOS / "coin-22050.mp4")), models)
        streams.close()
        assert models.localizer is not None and streams.sample_rate == 48000
        assert any("warning: localizer localizer gets the 22050 Hz audio upsampled" in n for n in streams.notes)
    finally:
        models.close()
