"""The real-sound set builder (apps.build_real_sounds) on a generated package tree, and avlive's
choice of demo models for real input."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from apps.build_real_sounds import RATE, build, file_licence, group_of, sounding_extent
from conftest import last_whole_json_line
from models.datasets.formats.dcase import read_dcase_strong
from models.datasets.formats.esc50 import read_esc50
from models.datasets.from_world import write_wav

COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
Copyright: someone
License: GPL-2+

Files: drumkits/kit_b/*
 sounds/other.wav
License: CC0
"""


def _burst(rng: np.random.Generator, seconds: float, lead: float = 0.0) -> np.ndarray:
    """Noise that sounds for ``seconds`` after ``lead`` seconds of silence."""
    out = np.zeros(int(RATE * (lead + seconds + 0.2)), np.float32)
    out[int(RATE * lead):int(RATE * (lead + seconds))] = rng.normal(0, 0.2, int(RATE * seconds))
    return out


def _tree(tmp_path: Path) -> dict[str, Path]:
    """A small package tree laid out like the Debian packages the builder reads."""
    rng = np.random.default_rng(0)
    roots = {}

    def package(name: str) -> Path:
        root = tmp_path / name
        (root / "usr/share/doc" / name).mkdir(parents=True, exist_ok=True)
        (root / "usr/share/doc" / name / "copyright").write_text(COPYRIGHT)
        roots[name] = root
        return root / "usr/share"

    speech = package("asterisk-core-sounds-en-wav") / "asterisk/sounds/en_US_f_Allison"
    speech.mkdir(parents=True)
    for k in range(6):  # six prompts: six recordings
        write_wav(speech / f"prompt-{'abcdef'[k]}.wav", _burst(rng, 0.8, lead=0.3), RATE)
    (speech / "not-audio.wav").write_bytes(b"this is not a wav file")
    write_wav(speech / "silent.wav", np.zeros(RATE, np.float32), RATE)
    kits = package("hydrogen-drumkits") / "hydrogen/data/drumkits"
    for kit in ("kit_a", "kit_b", "kit_c", "kit_d", "kit_e"):
        (kits / kit).mkdir(parents=True)
        for take in range(2):  # two takes per kit: one recording each
            write_wav(kits / kit / f"Kick-{take}.wav", _burst(rng, 0.3), RATE)
    for name in ("lmms-common", "sonic-pi-samples"):
        package(name)
    beds = package("lincity-ng-data") / "games/lincity-ng/sounds"
    beds.mkdir(parents=True)
    for k in range(2):
        write_wav(beds / f"Farm{k + 1}.wav", rng.normal(0, 0.05, 3 * RATE).astype(np.float32), RATE)
    return roots


def test_builder_writes_folds_by_recording_strong_labels_and_sources(tmp_path):
    roots = _tree(tmp_path)
    out = tmp_path / "out"
    table = build(out, roots, per_class=40, min_clips=5, min_groups=5, counts={"train": 6, "validation": 2, "eval": 2},
                  max_events=2, seed=3)
    clips = read_esc50(out / "esc50/meta/esc50.csv")
    by_class = {}
    for c in clips:
        by_class.setdefault(c.category, []).append(c)
    assert sorted(by_class) == ["drum", "speech"]
    assert len(by_class["speech"]) == 6 and len(by_class["drum"]) == 10
    # takes of one recording (a kit) share a src_file and a fold; every fold has each class
    for c in by_class["drum"]:
        twins = [d for d in by_class["drum"] if d.src_file == c.src_file]
        assert len(twins) == 2 and {d.fold for d in twins} == {c.fold}
    assert {c.fold for c in by_class["drum"]} == {1, 2, 3, 4, 5}
    assert "Left out: 2 silent or not audio" in table
    # every clip starts at its sound: the 0.3 s of silence before each prompt is cut
    from models.io.media import read_audio
    audio, _ = read_audio(out / "esc50/audio" / by_class["speech"][0].filename, sample_rate=RATE, mono=True)
    assert audio.shape == (5 * RATE,) and sounding_extent(audio)[0] == 0
    # soundscapes: strong labels inside the clip, and each names a kept class
    for split, tsv in (("train", "metadata/train/synthetic.tsv"), ("eval", "metadata/eval/eval.tsv")):
        labels = read_dcase_strong(out / "desed" / tsv)
        assert labels.events and all(0 <= e.onset < e.offset <= 10.0 for e in labels.events)
        assert {e.label for e in labels.events} <= {"drum", "speech"}
        assert all((out / "desed" / ("audio/train/synthetic" if split == "train" else "audio/eval") / e.filename).exists()
                   for e in labels.events)
    rows = list(csv.DictReader((out / "SOURCES.tsv").open(), delimiter="\t"))
    assert len([r for r in rows if r["file"].startswith("esc50/")]) == 16
    kit_b = [r for r in rows if "/kit_b/" in r["path in package"]]
    assert kit_b and all(r["licence"] == "CC0" for r in kit_b)  # the later, more specific stanza wins
    assert all(r["licence"] == "GPL-2+" for r in rows if "/kit_a/" in r["path in package"])



def test_soundscapes_join_into_one_stream_with_shifted_labels(tmp_path):
    from models.datasets.soundscapes import join_soundscapes, soundscape_names

    out = tmp_path / "out"
    build(out, _tree(tmp_path), min_clips=5, min_groups=5, counts={"train": 2, "validation": 3, "eval": 2}, seed=2,
          seconds=4.0)
    names = soundscape_names(out / "desed", "validation")
    assert len(names) == 3
    joined = join_soundscapes(out / "desed", "validation", names, "v", sample_rate=16000)
    assert joined.sample_rate == 16000 and joined.seconds == pytest.approx(12.0)
    labels = read_dcase_strong(out / "desed/metadata/validation/validation.tsv")
    expected = sorted((round(4.0 * k + e.onset, 3), e.label) for k, n in enumerate(names) for e in labels.events_for(n))
    assert sorted((e.onset, e.label) for e in joined.events) == expected
    assert all(e.filename == "v" for e in joined.events)
    with pytest.raises(FileNotFoundError, match="metadata/eval/eval.tsv"):
        soundscape_names(tmp_path, "eval")

def test_builder_is_deterministic(tmp_path):
    roots = _tree(tmp_path)
    outs = []
    for k in range(2):
        out = tmp_path / f"out{k}"
        build(out, roots, min_clips=5, min_groups=5, counts={"train": 3, "validation": 1, "eval": 1}, seed=1)
        outs.append(sorted((p.relative_to(out), p.read_bytes()) for p in out.rglob("*") if p.is_file()))
    assert outs[0] == outs[1]


def test_takes_group_into_recordings():
    assert group_of(Path("x/default_wood_footstep.2.ogg"), "stem") == "default_wood_footstep"
    assert group_of(Path("x/human-hit-3.ogg"), "stem") == "human-hit"
    assert group_of(Path("x/bow-miss.ogg"), "stem") == "bow-miss"
    assert group_of(Path("kits/Audiophob/Kick-Hard.wav"), "folder") == "Audiophob"
    assert group_of(Path("buckle/wav/3a-1.wav"), "key") == "3a"


def test_licence_of_a_file_without_a_machine_readable_copyright(tmp_path):
    root = tmp_path / "pkg"
    (root / "usr/share/doc/pkg").mkdir(parents=True)
    (root / "usr/share/doc/pkg/copyright").write_text("see /usr/share/common-licenses/GPL-2 file\n")
    assert file_licence(root, "pkg", root / "usr/share/x.ogg") == "GPL-2 (see /usr/share/doc/pkg/copyright)"
    assert file_licence(tmp_path / "none", "none", tmp_path / "none/x.ogg") == "see /usr/share/doc/none/copyright"


@pytest.mark.parametrize("source, mic, camera, world", [
    (None, None, None, True), ("synthetic:5", None, None, True), ("clip.mp4", None, None, False),
    (None, "default", None, False), (None, None, "0", False), (None, "default", "none", False)])
def test_which_inputs_count_as_the_synthetic_world(source, mic, camera, world):
    from realtime.pipeline import PipelineConfig, plays_the_world

    assert plays_the_world(PipelineConfig(source=source, mic=mic, camera=camera)) is world


# ------------------------------------------------------------------ the real-sound demo labeler live
REAL_CLIP_DIR = Path(__file__).parent / "data" / "real_sounds"


def _real_clip() -> tuple[Path, str]:
    """The committed held-out recording and its class (tests/data/real_sounds/README.md)."""
    row = (REAL_CLIP_DIR / "clip.tsv").read_text().splitlines()[1].split("\t")
    return REAL_CLIP_DIR / row[0], row[1]


def test_a_real_microphone_gets_the_real_sound_labeler(pulse_mic, tmp_path):
    """``avlive --mic`` with no model runs models/demo/real-sounds (no localizer), and a
    held-out real recording played into the microphone is among its top 3 classes on at least
    half of the hops while it sounds."""
    import json
    import subprocess
    import sys

    from apps.reliability import wait_until
    from apps.virtual_devices import write_wav_int16
    from models.io.media import read_audio

    clip, label = _real_clip()
    audio, rate = read_audio(clip, mono=True)
    played = tmp_path / "played.wav"
    write_wav_int16(played, np.tile(audio, 3), rate)  # the clip three times, no gap
    play_s = 3 * audio.size / rate
    jsonl = tmp_path / "live.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "apps.avlive", "--mic", pulse_mic.device, "--headless",
                             "--duration", f"{play_s + 6:g}", "--jsonl", str(jsonl)],
                            cwd=Path(__file__).resolve().parents[1], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert wait_until(lambda: last_whole_json_line(jsonl) is not None, 60.0), "avlive wrote no JSON line"
        started = last_whole_json_line(jsonl)["stream_time"]
        player = pulse_mic.play(played)
        player.wait(timeout=play_s + 30)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "real-sound labeler" in err and "no localizer" in err, err
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    # hops whose window lies inside the playback (a second of margin for the device's latency)
    sounding = [r for r in records if not r["final"] and started + 1.0 <= r["stream_time"] <= started + play_s]
    assert len(sounding) >= 10, len(sounding)
    hits = [any(t["label"] == label for t in r["top"][:3]) for r in sounding]
    print(f"{label!r} among the top 3 on {sum(hits)} of {len(sounding)} hops while it sounded")
    assert np.mean(hits) >= 0.5, (label, np.mean(hits), [r["top"] for r in sounding[:5]])


def test_real_input_without_a_model_runs_the_real_sound_labeler_alone(tmp_path):
    """No model given: the synthetic world gets the world's demo models, real input the
    real-sound labeler without a localizer; ``--labeler none`` or a given model wins."""
    import shutil

    from realtime.models import DEMO_DIR, load_models

    demo = tmp_path / "demo"
    for kind in ("labeler", "localizer"):
        shutil.copytree(DEMO_DIR / kind, demo / kind)
    shutil.copytree(DEMO_DIR / "labeler", demo / "real-sounds")  # any labeler stands in for the shipped one
    models, notes = load_models(demo_dir=demo, real_input=True, threads=1)
    try:
        assert [m.source.path.parent for m in models.labelers] == [demo / "real-sounds"] and models.localizer is None
        assert any("real-sound labeler" in n and "no localizer" in n for n in notes), notes
    finally:
        models.close()
    models, notes = load_models(demo_dir=demo, real_input=False, threads=1)
    try:
        assert [m.source.path.parent for m in models.labelers] == [demo / "labeler"] and models.localizer is not None
    finally:
        models.close()
    shutil.rmtree(demo / "real-sounds")  # a checkout without it: the world's demo models, as before
    models, notes = load_models(demo_dir=demo, real_input=True, threads=1)
    try:
        assert [m.source.path.parent for m in models.labelers] == [demo / "labeler"]
    finally:
        models.close()


def test_eval_clips_refuses_a_labeler_of_other_classes(tmp_path, capsys):
    from apps import eval_clips
    from realtime.models import DEMO_DIR

    out = tmp_path / "out"
    build(out, _tree(tmp_path), min_clips=5, min_groups=5, counts={"train": 1, "validation": 1, "eval": 1})
    capsys.readouterr()  # the builder's lines
    assert eval_clips.main([str(DEMO_DIR / "labeler"), "--data", str(out / "esc50"), "--threads", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not know 1 of the set's classes (drum)" in err, err


def test_every_fold_is_held_out_once_with_its_own_validation_fold():
    from apps.build_real_sounds import soundscape_folds

    splits = [soundscape_folds(k) for k in range(1, 6)]
    assert [s["eval"] for s in splits] == [(1,), (2,), (3,), (4,), (5,)]
    assert [s["validation"] for s in splits] == [(5,), (1,), (2,), (3,), (4,)]
    for s in splits:  # the three splits share no fold and cover all five
        assert sorted(s["train"] + s["validation"] + s["eval"]) == [1, 2, 3, 4, 5]
    assert splits[4]["train"] == (1, 2, 3)  # the shipped labeler's split is fold 5's
    with pytest.raises(ValueError, match="expected 1-5, found 6"):
        soundscape_folds(6)


def test_eval_fold_holds_out_that_folds_recordings(tmp_path):
    """Every speech recording put in fold 2 and every drum kit elsewhere: with ``eval_fold=2`` the
    eval soundscapes hold only speech, training and validation only drums."""
    from apps.build_real_sounds import bed_audio, collect, write_soundscapes

    roots = _tree(tmp_path)
    classes, sounds, _ = collect(roots, 40, 5, 5)
    names = [c.name for c in classes]
    for s in sounds:
        s.fold = 2 if names[s.cls] == "speech" else (1 if "kit_a" in s.group else 4)
    out = tmp_path / "desed"
    write_soundscapes(out, classes, sounds, bed_audio(roots), {"train": 4, "validation": 3, "eval": 3}, 2, 0,
                      4.0, eval_fold=2)
    labels = {split: {e.label for e in read_dcase_strong(out / tsv).events}
              for split, tsv in (("train", "metadata/train/synthetic.tsv"),
                                 ("validation", "metadata/validation/validation.tsv"),
                                 ("eval", "metadata/eval/eval.tsv"))}
    assert labels == {"train": {"drum"}, "validation": {"drum"}, "eval": {"speech"}}
    table = build(tmp_path / "out", roots, min_clips=5, min_groups=5, counts={"train": 1, "validation": 1, "eval": 1},
                  eval_fold=2)
    assert "1 train (folds 3-5), 1 validation (fold 1), 1 eval (fold 2)" in table


def _cache_with(roots: dict[str, Path], cache: Path) -> Path:
    """A package cache as apps.build_real_sounds leaves it, holding the given extracted trees
    (every other package extracted but empty)."""
    from apps.build_real_sounds import PACKAGES

    for package in PACKAGES:
        root = cache / package
        if package in roots:
            root.parent.mkdir(parents=True, exist_ok=True)
            roots[package].rename(root)
        root.mkdir(parents=True, exist_ok=True)
        (root / ".done").write_text("test\n")
    return cache


def test_cross_validation_trains_scores_and_reuses_a_fold(tmp_path, capsys):
    """One held-out fold end to end through the real trainer, exporter and clip scorer (2 steps):
    the table names the fold, its clips and the SVM of the same fold; run again, the fold is not
    trained again."""
    from apps import cv_real_sounds

    roots = _tree(tmp_path / "tree")
    speech = roots["asterisk-core-sounds-en-wav"] / "usr/share/asterisk/sounds/en_US_f_Allison"
    rng = np.random.default_rng(9)
    for name in ("prompt-g", "prompt-h"):  # eight recordings: speech passes the builder's default bar
        write_wav(speech / f"{name}.wav", _burst(rng, 0.8, lead=0.3), RATE)
    cache = _cache_with(roots, tmp_path / "cache")
    out = tmp_path / "cv"
    argv = [str(out), "--cache", str(cache), "--folds", "2", "--steps", "2", "--soundscapes", "6", "2", "2",
            "--seconds", "4", "--threads", "1", "batch_size=2"]
    assert cv_real_sounds.main(argv) == 0
    fold_clips = [c for c in read_esc50(out / "esc50/meta/esc50.csv") if c.fold == 2]
    figures = __import__("json").loads((out / "fold-2/figures.json").read_text())
    assert figures["fold"] == 2 and figures["clips"] == len(fold_clips) > 0
    assert figures["validation"]["last_step"] == 2
    text = (out / "cv.md").read_text()
    assert f"| 2 | {len(fold_clips)} | {100 * figures['top1']:.1f} % |" in text
    assert (out / "confusion.png").stat().st_size > 0 and (out / "fold-2/run/model.onnx").is_file()
    stamp = (out / "fold-2/run/model.onnx").stat().st_mtime_ns
    capsys.readouterr()
    assert cv_real_sounds.main(argv) == 0
    assert "fold 2: done before" in capsys.readouterr().err
    assert (out / "fold-2/run/model.onnx").stat().st_mtime_ns == stamp
    assert cv_real_sounds.main([*argv[:6], "3", *argv[7:]]) == 2  # the same folder with another --steps
    assert "trained for 2 steps, not --steps 3" in capsys.readouterr().err
