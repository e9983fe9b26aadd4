"""PANNs files (models/panns): parity with the authors' code, export, refusals, frame times, avlive.

The parity fixture (tests/data/panns/, README.md there) holds the outputs of the authors'
Cnn14, Cnn14_DecisionLevelMax and Cnn14_DecisionLevelAtt on a 2 s waveform, with the random
checkpoint they ran regenerated here from its key table and seed (a real file is 327 MB).
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from models.families import model_file_for
from models.panns import CNN14_TEST
from models.panns.network import CNN14, segment_centres
from models.panns.random_weights import key_table, random_checkpoint, random_state_dict
from models.panns.released import LIVE_WINDOW_SECONDS, load_panns

from conftest import python_cmd, subprocess_env

DATA = Path(__file__).parent / "data" / "panns"
NAMES = {"cnn14": "Cnn14", "decision_max": "Cnn14_DecisionLevelMax", "decision_att": "Cnn14_DecisionLevelAtt"}
# Tolerances, from measurements (torch 2.13 CPU): avlive and the authors' code agree within
# 7.8e-16 in float64, and in float32 exactly on one thread, within 1.5e-7 on two (the convolution
# kernels round differently); their own float32 outputs lie up to 1.3e-7 from their float64 ones.
FLOAT64_ATOL = 1e-12
FLOAT32_ATOL = 1e-6


@pytest.fixture(scope="module")
def fixture():
    return dict(np.load(DATA / "fixture.npz"))


@pytest.fixture(scope="module")
def released_files(tmp_path_factory, fixture):
    """The fixture's random checkpoints as files named like the released ones: the Cnn14 keys
    once, under both names that share them (a hard link), and the attention model."""
    tables = json.loads((DATA / "keys.json").read_text())
    folder = tmp_path_factory.mktemp("panns")
    seed = int(fixture["seed"])
    paths = {}
    for table, name in (("cnn14", "Cnn14_random.pth"), ("decision_att", "Cnn14_DecisionLevelAtt_random.pth")):
        state = random_state_dict([(k, tuple(s)) for k, s in tables[table]], seed)
        torch.save({"model": state, "iteration": 0}, folder / name)
        paths[table] = folder / name
        del state
    paths["decision_max"] = folder / "Cnn14_DecisionLevelMax_random.pth"
    os.link(paths["cnn14"], paths["decision_max"])
    return paths


def test_the_key_tables_are_the_networks():
    tables = json.loads((DATA / "keys.json").read_text())
    assert [(k, tuple(s)) for k, s in tables["cnn14"]] == key_table(CNN14)
    assert [(k, tuple(s)) for k, s in tables["decision_att"]] == key_table(dataclasses.replace(CNN14, head="decision-att"))
    assert len(tables["cnn14"]) == 84 and sum(np.prod(s) for _, s in tables["cnn14"]) == 81_853_340


@pytest.mark.parametrize("name", list(NAMES))
def test_parity_with_the_authors_code(name, fixture, released_files):
    model = load_panns(released_files[name])
    assert model.metadata.extra["arch"] == NAMES[name]  # read from the file name
    wave = torch.from_numpy(fixture["pcm"].astype(np.float32) / 32768.0)[None]  # (1, 64000)
    second = "embedding" if name == "cnn14" else "segments"
    net = model.module
    for tag, dtype, atol in (("fp32", torch.float32, FLOAT32_ATOL), ("fp64", torch.float64, FLOAT64_ATOL)):
        net.to(dtype)
        with torch.no_grad():
            probs, other = net(wave.to(dtype))
        assert np.abs(probs[0].numpy() - fixture[f"{name}_clip_{tag}"]).max() <= atol, tag
        assert np.abs(other[0].numpy() - fixture[f"{name}_{second}_{tag}"]).max() <= atol, tag
    assert fixture[f"{name}_clip_fp64"].std() > 0.01  # not saturated: the comparison means something


def _tiny(folder: Path, name: str, head: str = "clip") -> Path:
    path = folder / name
    torch.save(random_checkpoint(dataclasses.replace(CNN14_TEST, head=head), 5), path)
    return path


def test_export_is_checked_against_pytorch_and_carries_the_labels(tmp_path, capsys):
    from models.export.cli import main as export_main

    src = _tiny(tmp_path, "Cnn14_DecisionLevelMax_tiny.pth", "decision-max")
    assert export_main([str(src), "--out", str(tmp_path / "m.onnx")]) == 0
    out = capsys.readouterr().out
    assert "ONNX Runtime vs PyTorch, random inputs: probs max |Δ|" in out
    meta = json.loads((tmp_path / "m.onnx.json").read_text())
    assert meta["family"] == "panns" and len(meta["labels"]) == 527 and meta["labels"][137] == "Music"
    assert [o["name"] for o in meta["outputs"]] == ["probs", "segment_probs"]
    assert meta["outputs"][1]["shape"] == ["batch", 6, 527]
    assert max(meta["extra"]["onnx_export"]["max_abs_diff"].values()) < 1e-5  # within atol 1e-4 by construction


def test_an_ambiguous_or_contradicted_file_is_refused_in_one_line(tmp_path, capsys):
    from models.export.cli import main as export_main
    from realtime.models import ModelError, inspect_model

    src = _tiny(tmp_path, "weights.pth")
    assert export_main([str(src)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "panns-cnn14" in err and "panns-cnn14-decision-max" in err, err
    with pytest.raises(ModelError, match="rename it"):
        inspect_model(src)
    assert export_main([str(src), "--family", "panns-cnn14-decision-att"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "expects att_block.* keys, found fc_audioset.*" in err, err
    assert export_main([str(src), "--family", "no-such-kind"]) == 2
    assert "panns-cnn14-decision-max" in capsys.readouterr().err
    assert export_main([str(src), "--family", "panns-cnn14", "--out", str(tmp_path / "w.onnx")]) == 0
    assert json.loads((tmp_path / "w.onnx.json").read_text())["extra"]["arch"] == "Cnn14"
    other = tmp_path / "other.pth"
    torch.save({"model": {"weight": torch.zeros(3)}}, other)
    assert model_file_for(other) is None  # not a PANNs file: no PANNs kind claims it


def test_a_flat_state_dict_in_the_legacy_format_loads_the_same(tmp_path):
    wrapped = load_panns(_tiny(tmp_path, "Cnn14_tiny.pth"))
    flat = tmp_path / "Cnn14_flat.pth"  # torch < 1.6 wrote this format; it cannot be memory-mapped
    torch.save(random_checkpoint(CNN14_TEST, 5)["model"], flat, _use_new_zipfile_serialization=False)
    audio = torch.randn(1, 32000, generator=torch.Generator().manual_seed(2)) * 0.1
    with torch.no_grad():
        assert torch.equal(load_panns(flat).module(audio)[0], wrapped.module(audio)[0])


def test_decision_level_segments_become_frame_scores_with_their_times(tmp_path):
    from engines import open_runner
    from models.core.live import FrameScores
    from models.panns.live import panns_live

    model = load_panns(_tiny(tmp_path, "Cnn14_DecisionLevelMax_tiny.pth", "decision-max"))
    runner = open_runner("torch", model.module, device="cpu", threads=1, metadata=model.metadata)
    labeler = panns_live(runner, model.metadata)
    n = labeler.window.samples
    assert n == int(LIVE_WINDOW_SECONDS * 32000) == 64000
    audio = (np.random.default_rng(1).standard_normal(n) * 0.1).astype(np.float32)
    out = labeler(audio)
    assert isinstance(out, FrameScores) and out.scores.shape == (6, 527)
    # T = 1 + 64000 // 320 = 201 STFT frames, 6 whole segments of 32; segment j centred on frame 32 j + 15.5
    np.testing.assert_allclose(out.times, [-1.845, -1.525, -1.205, -0.885, -0.565, -0.245], atol=1e-12)
    np.testing.assert_allclose(out.times, np.array(segment_centres(model.module.config, n)) - 2.0, atol=1e-12)
    with torch.no_grad():
        _, segments = model.module(torch.from_numpy(audio)[None])
    np.testing.assert_array_equal(out.scores, segments[0].numpy())
    tagger = panns_live(runner, load_panns(_tiny(tmp_path, "Cnn14_tiny.pth")).metadata)
    assert not isinstance(tagger(audio), FrameScores)  # a tagger scores the window


def test_avlive_runs_a_pth_file_on_a_media_file(tmp_path):
    from models.io.media import write_av_file
    from models.world import Scene, get_preset

    src = _tiny(tmp_path, "Cnn14_DecisionLevelMax_tiny.pth", "decision-max")
    scene = Scene(get_preset("tiny"), 200002)
    clip = tmp_path / "clip.mp4"
    write_av_file(clip, [scene.render_frame(k)[0] for k in range(45)], scene.render_audio(0, 96000, 32000), 15, 32000)
    out = tmp_path / "out.jsonl"
    done = subprocess.run(python_cmd("-m", "apps.avlive", "--models", str(src), "--source", str(clip), "--headless",
                                     "--no-realtime", "--threads", "1", "--jsonl", str(out)),
                          capture_output=True, text=True, env=subprocess_env(), timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert records and records[-1]["final"]
    assert {t["model"] for r in records for t in r["top"]} == {"Cnn14_DecisionLevelMax_tiny"}
    assert (tmp_path / ".avlive-cache").is_dir()  # onnxruntime ran the file's export
