"""The CRNN family: network shapes, the streaming step against one pass over the stream, the
frame grid and post-processing, the live labeler on both CPU backends, and the recipe trained,
exported and run live from the command line (world and DESED-layout data)."""
from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import torch

from conftest import python_cmd, subprocess_env
from engines.onnxruntime_runner import OnnxRuntimeRunner
from engines.torch_runner import TorchRunner
from models.audio.frontend import FrontEndConfig
from models.core.events import LabeledEvent
from models.core.live import FrameScores
from models.crnn.frames import FrameGrid
from models.crnn.live import StreamingLabeler
from models.crnn.network import CRNN, CRNNConfig, lite_config, paper_config
from models.crnn.postprocess import frames_to_events, median_filter_binary
from models.crnn.recipe import LITE_FRONTEND, CRNNRecipe, CRNNTrainConfig
from models.crnn.streaming import StreamingStep, full_stream_frames, pad_stream_start
from models.export.onnx import export_onnx

HOP = 1280  # 0.08 s at 16 kHz: 8 mel frames, 2 encoder frames


def _calibrate(model: CRNN, seed: int = 0) -> CRNN:
    """Batch-norm running statistics from a few train-mode passes over random log-mels, then eval
    mode: a freshly initialised network in eval mode shrinks its activations block by block to
    ~1e-8, and a comparison of such outputs would prove little."""
    g = torch.Generator().manual_seed(seed)
    model.train()
    with torch.no_grad():
        for _ in range(30):
            model(torch.randn(4, 64, model.config.n_mels, generator=g) * 3.0 - 4.0)
    return model.eval()


def _model(seed: int = 0, **overrides) -> CRNN:
    torch.manual_seed(seed)
    model = CRNN(lite_config(5, **overrides))
    model.set_normalisation(torch.full((64,), -4.0), torch.full((64,), 3.0))
    return _calibrate(model, seed)


def test_paper_size_is_the_dcase_2021_baseline_shape():
    net = CRNN(paper_config(10)).eval()
    c = net.config
    assert len(net.blocks) == 7 and c.channels == (16, 32, 64, 128, 128, 128, 128)
    assert c.time_stride == 4 and c.frame_dim == 128 and net.rnn.hidden_size == 128 and net.rnn.bidirectional
    # 10 s at 16 kHz, hop 256, n_fft 2048, center=False: 618 mel frames -> 616 used -> 154 frames
    strong, weak = net(torch.zeros(2, 616, 128))
    assert strong.shape == (2, 154, 10) and weak.shape == (2, 10)
    assert torch.all((weak > 0) & (weak < 1))
    params = sum(p.numel() for p in net.parameters())
    assert 1.0e6 < params < 1.2e6  # the baseline is quoted at about 1.1 M parameters


def test_config_round_trips_and_rejects_bad_shapes():
    c = lite_config(7, pooling="attention")
    assert CRNNConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    with pytest.raises(ValueError, match="one value per block"):
        CRNNConfig(num_classes=3, channels=(8, 8), time_pools=(2,), freq_pools=(2, 2))
    with pytest.raises(ValueError, match="pooling"):
        lite_config(3, pooling="max")


@pytest.mark.parametrize("pooling", ["linear-softmax", "attention"])
def test_clip_output_is_a_weighted_mean_of_the_frames(pooling):
    net = _model(pooling=pooling)
    strong, weak = net(torch.randn(3, 200, 64))
    assert torch.all(weak <= strong.max(dim=1).values + 1e-6) and torch.all(weak >= strong.min(dim=1).values - 1e-6)


def _stream_through_steps(step: StreamingStep, padded: torch.Tensor, hops: int):
    state = step.initial_state(padded.shape[0]).to(padded.dtype)
    history = torch.zeros(padded.shape[0], 1, step.model.config.frame_dim, dtype=padded.dtype)  # the placeholder
    frames, probs = [], None
    for k in range(hops):
        chunk = padded[:, k * HOP:k * HOP + step.chunk_samples]
        probs, new, state = step(chunk, state, history)
        history = torch.cat([history, new], dim=1)
        frames.append(new)
    return torch.cat(frames, dim=1), probs, history[:, 1:]


def test_streaming_encoder_equals_one_pass_over_the_stream():
    """Hop by hop, the cached encoder gives the frames of one causal pass over the whole stream,
    with no delay; and the window's probabilities equal the GRUs run over those frames.
    Measured in float64 over 3 seeds: at most 2.5e-16 (frames) and 1.1e-16 (probabilities),
    rounding order only; the bound 1e-12 leaves room for other BLAS builds."""
    model = _model().double()
    step = StreamingStep(model, LITE_FRONTEND, HOP).double()
    hops = 25
    stream = torch.randn(2, HOP * hops, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 0.1
    padded = pad_stream_start(stream, LITE_FRONTEND)
    with torch.no_grad():
        streamed, probs, history = _stream_through_steps(step, padded, hops)
        full = full_stream_frames(model, LITE_FRONTEND, padded)
        window_probs, _ = model.decode(full[:, :streamed.shape[1]])
    assert streamed.shape == (2, 2 * hops, 64)
    assert streamed.abs().mean() > 0.01 and probs.std() > 0.001  # measured 0.050 and 0.011 (uncalibrated: ~1e-8)
    torch.testing.assert_close(streamed, full[:, :streamed.shape[1]], atol=1e-12, rtol=0)
    torch.testing.assert_close(probs, window_probs, atol=1e-12, rtol=0)


def test_streaming_needs_a_causal_encoder_and_a_whole_hop():
    with pytest.raises(ValueError, match="causal"):
        StreamingStep(_model(causal=False), LITE_FRONTEND, HOP)
    with pytest.raises(ValueError, match="multiple of 640"):
        StreamingStep(_model(), LITE_FRONTEND, 1000)


def test_frame_grid_centres_and_targets():
    grid = FrameGrid(LITE_FRONTEND, 4)
    assert grid.frame_seconds == pytest.approx(0.04)
    # mel frame j centred at (160 j + 256) / 16000; encoder frame k averages mel frames 4k..4k+3
    assert grid.centres(3) == pytest.approx([(1.5 * 160 + 256) / 16000, (5.5 * 160 + 256) / 16000,
                                             (9.5 * 160 + 256) / 16000])
    assert grid.frames(80000) == 124
    events = [LabeledEvent("c", 0.05, 0.12, "b"), LabeledEvent("c", 0.0, 0.04, "a")]  # centres 0.031, 0.071, 0.111, 0.151
    t = grid.targets(events, 4, ("a", "b"))
    assert t[:, 0].tolist() == [1, 0, 0, 0] and t[:, 1].tolist() == [0, 1, 1, 0]
    with pytest.raises(ValueError, match="center=False"):
        FrameGrid(FrontEndConfig(sample_rate=16000, n_fft=512, win_length=400, hop_length=160), 4)


def test_median_filter_matches_scipy_inside_and_events_follow_runs():
    import scipy.signal as scipy_signal  # a dependency: imported, never skipped for
    rng = np.random.default_rng(0)
    track = rng.random((60, 3)) > 0.5
    ours = median_filter_binary(track, 7)
    for c in range(3):
        ref = scipy_signal.medfilt(track[:, c].astype(float), 7) > 0.5
        assert np.array_equal(ours[3:-3, c], ref[3:-3])
    grid = FrameGrid(LITE_FRONTEND, 4)
    probs = np.zeros((20, 2), np.float32)
    probs[5:12, 1] = 0.9
    events = frames_to_events(probs, grid, ("a", "b"), "f", median_frames=3)
    centres = grid.centres(20)
    assert len(events) == 1 and events[0].label == "b"
    assert (events[0].onset, events[0].offset) == pytest.approx((centres[5] - 0.02, centres[11] + 0.02))
    assert frames_to_events(probs, grid, ("a", "b"), "f", thresholds=[0.5, 0.95]) == []


@pytest.fixture(scope="module")
def exported_step(tmp_path_factory):
    """A freshly initialised lite SedModel's streaming step, exported to ONNX."""
    recipe = CRNNRecipe(CRNNTrainConfig())
    torch.manual_seed(3)
    model = recipe.build_model()
    model.student.set_normalisation(torch.full((64,), -4.0), torch.full((64,), 3.0))
    _calibrate(model.student, 3)
    model.eval()
    step, example, axes = recipe.export_module(model)
    path = tmp_path_factory.mktemp("crnn") / "model.onnx"
    report = export_onnx(step, recipe.metadata(model), example, path, dynamic_axes=axes)
    return recipe, model, step, report


def _labeler_scores(labeler: StreamingLabeler, stream: np.ndarray, hops: int) -> list[FrameScores]:
    chunk = labeler.window.samples
    padded = np.concatenate([np.zeros(chunk - HOP, np.float32), stream])
    return [labeler(padded[k * HOP:k * HOP + chunk].copy()) for k in range(hops)]


def test_live_labeler_on_onnxruntime_equals_torch_and_resets(exported_step):
    recipe, model, step, report = exported_step
    assert report.metadata.outputs[0].shape == ("batch", "window", 12)
    stream = (np.random.default_rng(2).standard_normal(HOP * 90) * 0.1).astype(np.float32)
    with OnnxRuntimeRunner(report.path, threads=1) as ort_runner, \
            TorchRunner(step, report.metadata) as torch_runner:
        ort_labeler = StreamingLabeler(ort_runner, report.metadata)
        torch_labeler = StreamingLabeler(torch_runner, report.metadata)
        a = _labeler_scores(ort_labeler, stream, 90)
        b = _labeler_scores(torch_labeler, stream, 90)
        assert np.std([x.scores for x in a[10:]]) > 0.01  # scores that follow the input
        tol = report.metadata.extra["onnx_export"]["atol"]
        for x, y in zip(a, b):
            np.testing.assert_allclose(x.scores, y.scores, atol=tol, rtol=0)
            assert np.array_equal(x.times, y.times)
        ort_labeler.reset()  # as at a stream's start: the same answers again
        again = _labeler_scores(ort_labeler, stream, 5)
        for x, y in zip(again, a[:5]):
            np.testing.assert_array_equal(x.scores, y.scores)
    s = report.metadata.extra["streaming"]
    assert a[-1].frames == s["new_frames"] == 2
    # with one frame of look-ahead, the newest frame given lies one frame before the newest computed
    assert a[-1].times[-1] == pytest.approx(s["newest_frame_time"] - s["frame_seconds"])
    # 90 hops fill the 5 s window (125 frames): the history is capped
    assert ort_labeler.window_frames == 125


def test_live_frames_are_the_offline_window_frames(exported_step):
    """What the labeler gives for a frame equals the offline network's probability for that frame
    over the same window of encoder frames (ONNX Runtime, within the export tolerance)."""
    recipe, model, step, report = exported_step
    stream = (np.random.default_rng(4).standard_normal(HOP * 30) * 0.1).astype(np.float32)
    with OnnxRuntimeRunner(report.path, threads=1) as runner:
        labeler = StreamingLabeler(runner, report.metadata, lookahead_frames=0)
        given = _labeler_scores(labeler, stream, 30)
    padded = pad_stream_start(torch.from_numpy(stream)[None], LITE_FRONTEND)
    with torch.no_grad():
        frames = full_stream_frames(step.model, LITE_FRONTEND, padded)[:, :60]
        probs, _ = step.model.decode(frames)
    np.testing.assert_allclose(given[-1].scores, probs[0, -2:].numpy(), atol=report.metadata.extra["onnx_export"]["atol"])


def test_export_sets_the_live_hop_and_look_ahead_without_retraining(exported_step, tmp_path, capsys):
    """``python -m models.export RUN --set hop_seconds=0.04 --set lookahead_frames=2``: the same
    weights as a one-frame step with two frames of look-ahead. Each of its frames equals the
    newest frame the two-frame export gives with the same look-ahead (ONNX Runtime, within the
    export tolerance); a trained field is refused in one line. (Through the CLI, as users run
    it: torch 2.13's dynamo exporter fixes a GRU's dynamic sequence axis when it exports a
    second GRU in the same process.)"""
    from models.core.checkpoint import save_checkpoint
    from models.core.metadata import ModelMetadata
    from models.core.train_config import config_to_dict
    from models.export.cli import main as export_main

    recipe, model, step, report = exported_step
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    save_checkpoint(run / "checkpoints" / "last.pt", recipe=recipe.name, config=config_to_dict(recipe.config),
                    model_state=model.state_dict(), metadata=recipe.metadata(model).to_dict())
    _run("-m", "models.export", str(run), "--set", "hop_seconds=0.04", "--set", "lookahead_frames=2", cwd=tmp_path)
    fine = json.loads((run / "model.onnx.json").read_text())
    s = fine["extra"]["streaming"]
    assert (s["hop_seconds"], s["new_frames"], s["lookahead_frames"]) == (0.04, 1, 2)
    assert fine["extra"]["live_settings_changed"] == ["hop_seconds=0.04", "lookahead_frames=2"]
    stream = (np.random.default_rng(5).standard_normal(HOP * 40) * 0.1).astype(np.float32)
    with OnnxRuntimeRunner(report.path, threads=1) as coarse_runner, \
            OnnxRuntimeRunner(run / "model.onnx", threads=1) as fine_runner:
        coarse = StreamingLabeler(coarse_runner, report.metadata, lookahead_frames=2)
        fine_labeler = StreamingLabeler(fine_runner, ModelMetadata.from_dict(fine))
        chunk, hop = fine_labeler.window.samples, HOP // 2
        padded = np.concatenate([np.zeros(chunk - hop, np.float32), stream])
        fine_out = [fine_labeler(padded[k * hop:k * hop + chunk].copy()) for k in range(80)]
        coarse_out = _labeler_scores(coarse, stream, 40)
    # each export is within the export check's atol of PyTorch, so the two within it of each other
    # (measured: 0.0, the same float32 arithmetic); the times are the same float expression (0.0)
    tol = report.metadata.extra["onnx_export"]["atol"]
    for k in range(5, 40):  # past the start, where look-ahead has filled
        assert fine_out[2 * k + 1].frames == 1
        np.testing.assert_allclose(fine_out[2 * k + 1].scores[-1], coarse_out[k].scores[-1], atol=tol, rtol=0)
        assert fine_out[2 * k + 1].times[-1] == coarse_out[k].times[-1]
    capsys.readouterr()
    assert export_main([str(run), "--set", "lr=0.1"]) == 2  # refused before anything is exported
    assert "live settings are hop_seconds, lookahead_frames, live_window_seconds" in capsys.readouterr().err


def _run(*args, cwd, timeout=900):
    done = subprocess.run(python_cmd(*args), cwd=cwd, env=subprocess_env(), capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


#: capture_rate=0: world scenes rendered at the front end's rate. The 48 kHz render + soxr path (the
#: default) costs ~14 s more per run here and has its own test below.
TINY = ["strong_scenes=1", "weak_scenes=1", "unlabelled_scenes=1", "span_seconds=30", "val_scenes=1",
        "items_per_epoch=8", "batch_size=4", "epochs=1", "max_steps=2", "num_workers=0", "threads=1", "warmup_steps=0",
        "capture_rate=0"]


def test_mean_teacher_run_trains_exports_and_runs_live(tmp_path):
    run = tmp_path / "crnn"
    _run("-m", "models.train", "--recipe", "crnn-lite", "--out", str(run), *TINY, "mean_teacher=true", "deploy=teacher",
         cwd=tmp_path)
    log = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in log if r["kind"] == "eval"]
    assert evals and {"event_f1", "segment_f1", "tagging_f1", "teacher_event_f1", "student_event_f1"} <= set(evals[-1])
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model_state"]
    assert any(k.startswith("teacher.") for k in state) and any(k.startswith("student.") for k in state)
    _run("-m", "models.export", str(run), cwd=tmp_path)
    out = tmp_path / "live.jsonl"
    _run("-m", "apps.avlive", "--source", "synthetic:200000", "--duration", "4", "--no-realtime", "--headless",
         "--threads", "1", "--labeler", str(run / "model.onnx"), "--localizer", "none", "--hop", "0.08",
         "--jsonl", str(out), cwd=tmp_path)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) >= 45  # 4 s in hops of 0.08 s
    assert all(r["top"] and r["top"][0]["model"] for r in lines[5:])
    assert all(0.0 <= t["score"] <= 1.0 for r in lines for t in r["top"])


def test_desed_layout_trains(tmp_path):
    from models.datasets.from_world import write_desed_world
    from models.world import split_seed

    desed = write_desed_world(tmp_path / "desed", [split_seed("train", 0), split_seed("val", 0)], clips_per_seed=2,
                              clip_seconds=4.0, strong_train_clips_per_seed=2)
    assert set(desed.strong_tsvs) == {"validation", "public", "synthetic"}
    run = tmp_path / "run"
    _run("-m", "models.train", "--recipe", "crnn-lite", "--out", str(run), "--data", str(desed.root), *TINY,
         "clip_seconds=4", cwd=tmp_path)
    meta = json.loads((run / "metadata.json").read_text())
    labelled = {label for w in desed.weak for label in w.labels} | {e.label for s in desed.strong.values() for e in s.events}
    assert meta["family"] == "crnn" and meta["labels"] == sorted(labelled)  # the classes the TSVs name


def test_tune_labeler_track_holds_each_frame_once(exported_step):
    """apps.tune_labeler scores a frame-level labeler frame by frame: consecutive hops, each
    frame once, evenly spaced at the frame rate, as the rolling labels consume them live."""
    from apps.tune_labeler import hop_scores

    recipe, model, step, report = exported_step
    audio = (np.random.default_rng(5).standard_normal(16000 * 3) * 0.1).astype(np.float32)
    with OnnxRuntimeRunner(report.path, threads=1) as runner:
        labeler = StreamingLabeler(runner, report.metadata)
        scores, t0, spacing, emitted = hop_scores(labeler, audio, 16000, 0.08)
        hops = (len(audio) - labeler.window.samples) // HOP + 1
    assert spacing == pytest.approx(0.04)
    assert scores.shape == (2 * hops - 1, 12)  # the first hop after a reset gives one frame (look-ahead 1)
    hop_ends, rows_per_hop = np.unique(emitted, return_counts=True)  # each row reaches the labels at its hop's end
    np.testing.assert_array_equal(hop_ends, (labeler.window.samples + HOP * np.arange(hops)) / 16000)
    assert rows_per_hop.tolist() == [1] + [2] * (hops - 1)
    assert t0 == pytest.approx(labeler.window.samples / 16000 + report.metadata.extra["streaming"]["newest_frame_time"]
                               - 0.04)


def test_fused_embeddings_enter_the_input_image():
    """Audio-visual transfer: each embedding (at the mel frame rate) is projected to 16 rows
    appended to the mel bands; the encoder then pools the taller image to one bin per channel."""
    # train mode (batch statistics) without dropout: an untrained net in eval mode shrinks its
    # activations block by block until the GRU input is ~1e-8 and nothing reaches the output
    net = CRNN(lite_config(4, fusion_dims=(64, 1280), freq_pools=(2, 2, 2, 2, 2, 3), dropout=0.0)).train()
    assert net.config.input_bins == 64 + 2 * 16 and net.config.frame_dim == 64
    mel = torch.randn(2, 40, 64)
    audio_emb, visual_emb = torch.randn(2, 40, 64), torch.randn(2, 40, 1280)
    strong, weak = net(mel, audio_emb, visual_emb)
    assert strong.shape == (2, 10, 4) and weak.shape == (2, 4)
    with torch.no_grad():
        changed, _ = net(mel, audio_emb, visual_emb * 0)
    assert (changed - strong).abs().max() > 1e-3  # the visual rows reach the output
    with pytest.raises(ValueError, match="expected 2 fused embeddings"):
        net(mel, audio_emb)


def test_psds_of_the_reference_itself_is_near_one_and_of_shifted_scores_lower():
    from models.crnn.evaluation import score_tables
    from models.evaluation.psds import PSDS1, merge_overlapping, psds
    from models.world import get_preset, split_seed
    from models.crnn.data import WorldSedClips

    grid = FrameGrid(LITE_FRONTEND, 4)
    clips = WorldSedClips(get_preset("bench"), [split_seed("val", 1)], ["strong"], 60.0, 5.0, grid, fixed=True)
    truth = np.stack([clips[i]["strong"].numpy() for i in range(len(clips))])
    reference = merge_overlapping(clips.reference)
    tables = score_tables(truth, grid, clips.names, clips.classes)
    assert all(np.array_equal(t.offsets[:-1], t.onsets[1:]) for t in tables.values())
    exact = psds(tables, reference, clips.durations, PSDS1, drop_empty_classes=True).value
    late = psds(score_tables(np.roll(truth, 12, axis=1), grid, clips.names, clips.classes), reference,
                clips.durations, PSDS1, drop_empty_classes=True).value
    assert exact > 0.9 and late < exact


def test_mixup_keeps_every_clip_with_partners_of_its_kind():
    recipe = CRNNRecipe(CRNNTrainConfig(mixup=1.0))
    n = 12
    kinds = np.array([2, 1, 0] * 4)  # strong (both masks), weak, unlabelled
    batch = {"audio": torch.eye(n), "strong": torch.zeros(n, 3, 2), "weak": torch.zeros(n, 2),
             "strong_mask": torch.from_numpy((kinds == 2).astype(np.float32)),
             "weak_mask": torch.from_numpy((kinds >= 1).astype(np.float32))}
    partners_seen = set()
    for step in range(8):
        recipe.step = step
        out = recipe._augment(batch)
        assert torch.equal(out["strong_mask"], batch["strong_mask"]) and torch.equal(out["weak_mask"], batch["weak_mask"])
        for i in range(n):  # row i = lam e_i + (1 - lam) e_partner: the partner is of the same kind
            partners = {int(j) for j in torch.nonzero(out["audio"][i] > 1e-6)} - {i}
            assert all(kinds[j] == kinds[i] for j in partners)
            partners_seen |= partners
    assert partners_seen  # some clips did get another partner


def test_teacher_is_the_ema_of_the_student_and_the_trainer_updates_it(tmp_path):
    from models.crnn.recipe import SedModel
    from models.train.loop import train

    model = SedModel(lite_config(3), LITE_FRONTEND, mean_teacher=True, deploy="teacher")
    t0 = [p.detach().clone() for p in model.teacher.parameters()]
    with torch.no_grad():
        for p in model.student.parameters():
            p.add_(1.0)
    model.update_teacher(step=1, decay=0.999)  # alpha = min(1 - 1/2, 0.999) = 0.5
    for t, s, before in zip(model.teacher.parameters(), model.student.parameters(), t0):
        torch.testing.assert_close(t, 0.5 * before + 0.5 * s)
    model.update_teacher(step=10_000, decay=0.99)  # alpha capped at the decay
    assert not any(p.requires_grad for p in model.teacher.parameters())

    calls = []

    class Counting(CRNNRecipe):
        def after_step(self, model, step):
            calls.append(step)
            super().after_step(model, step)

    from models.core.train_config import apply_overrides
    config = apply_overrides(CRNNTrainConfig(), [*TINY, "mean_teacher=true", "deploy=teacher"])
    train(Counting(config), tmp_path / "run", argv=["test"])
    assert calls == [1, 2]  # once after every optimiser step


# --- fused embeddings (offline audio-visual transfer) -------------------------------------

def test_fused_sizes_keep_the_spectral_frame_size():
    """Each fused embedding adds the rows the first blocks pool into one bin; the last block pools
    the rest, so every variant's GRU reads frames as wide as the spectral network's."""
    for size in ("lite", "paper"):
        recipe = CRNNRecipe(CRNNTrainConfig(size=size, fuse="slowfast-lite,l3-vision"))
        spectral = CRNNRecipe(CRNNTrainConfig(size=size))._sized_config(())
        for dims in [(1152,), (1152, 128)]:
            fused = recipe._sized_config(dims)
            assert fused.frame_dim == spectral.frame_dim and fused.time_stride == spectral.time_stride
            assert fused.input_bins == spectral.n_mels + fused.fusion_bins * len(dims)


def test_unknown_fused_extractor_is_refused_in_one_line():
    with pytest.raises(ValueError, match="unknown embedding extractor.*l3-vision"):
        CRNNTrainConfig(fuse="l3-audio,no-such-net").validate()
    with pytest.raises(ValueError, match="each extractor once"):
        CRNNTrainConfig(fuse="l3-vision,l3-vision").validate()


def test_scene_embeddings_tile_the_scene_and_pick_the_nearest_step(tmp_path):
    """Chunks of a scene, cached apart, join into one grid over the span; a later chunk equals the
    extractor run on that span directly; each mel frame gets the step whose time is nearest."""
    from models.crnn.fusion import CHUNK_SECONDS, SceneEmbeddings, create_extractors, mel_centres
    from models.embeddings import EmbeddingCache, world_clip_inputs
    from models.world import BENCH, Scene, split_seed

    (vision,) = create_extractors(["l3-vision"], threads=1)
    seed = split_seed("test", 0)
    cache = EmbeddingCache(tmp_path / "emb")
    side = SceneEmbeddings(BENCH, "bench", [seed], 2 * CHUNK_SECONDS, [vision], cache)
    values, times = side.tracks[0][0]
    steps = int(2 * CHUNK_SECONDS * vision.rate_hz)
    # chunk grids shifted by their starts equal the whole span's grid exactly (measured: 0.0 at
    # 2 and 10 per second over 60, 300 and 600 s)
    np.testing.assert_array_equal(times, (np.arange(steps) + 0.5) / vision.rate_hz)
    direct = vision(world_clip_inputs(Scene(BENCH, seed), CHUNK_SECONDS, CHUNK_SECONDS, extractors=[vision]))
    np.testing.assert_array_equal(values[steps // 2:], direct.values)

    grid = CRNNRecipe(CRNNTrainConfig()).grid
    centres = mel_centres(grid, grid.mel_frames(16000 * 5))
    start = 27.3  # a clip across the chunks' seam
    got = side.frames(0, start, centres)
    nearest = np.floor((start + centres) * vision.rate_hz).astype(int)  # grid times are step centres
    np.testing.assert_array_equal(got, values[nearest])
    again = SceneEmbeddings(BENCH, "bench", [seed], 2 * CHUNK_SECONDS, [vision], cache)
    assert cache.hits == 2 and np.array_equal(again.tracks[0][0][0], values)  # the second reads the cache


def test_fused_run_trains_scores_unseen_scenes_and_refuses_export(tmp_path):
    """A fused run through the trainer: its metadata names the extractors and their weights,
    apps.eval_sed scores it on test scenes with their own embeddings, and export refuses it in
    one line (it has no streaming step)."""
    from apps.eval_sed import evaluate_run
    from models.families import exportable
    from models.train.__main__ import main as train_main

    run = tmp_path / "fused"
    settings = [s for s in TINY if not s.startswith(("weak_scenes", "unlabelled_scenes"))]
    assert train_main(["--recipe", "crnn-lite", "--out", str(run), *settings, "fuse=slowfast-lite,l3-vision",
                       f"embedding_cache={tmp_path / 'emb'}"]) == 0
    meta = json.loads((run / "metadata.json").read_text())
    fusion = meta["extra"]["fusion"]
    assert fusion["extractors"] == ["slowfast-lite", "l3-vision"] and fusion["dims"] == [1152, 128]
    assert len(fusion["fingerprints"]) == 2 and meta["inputs"][1]["name"] == "fused"
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model_state"]
    assert state["student.fused_std"].shape == (1280,) and float(state["student.fused_std"].min()) > 0

    row = evaluate_run(run, seeds=1, seconds=10.0, batch_size=2)
    assert row["fused"] == "slowfast-lite,l3-vision" and row["clips"] == 2.0
    assert all(0.0 <= row[k] <= 1.0 for k in ("tagging_f1", "segment_f1", "event_f1", "psds1"))
    with pytest.raises(ValueError, match="offline variant"):
        exportable(run)
    from realtime.models import ModelError, inspect_model
    with pytest.raises(ModelError, match="offline variant.*apps.eval_sed"):
        inspect_model(run)  # avlive --labeler RUN says so before looking for model.onnx


def test_best_of_seeds_keeps_the_seed_best_on_validation(tmp_path, capsys):
    """best_of=2 trains seeds 0 and 1 into their own folders and makes the run folder the one
    whose best validation figure is higher; a second call reuses both seeds."""
    from models.train.__main__ import main as train_main

    run = tmp_path / "best"
    args = ["--recipe", "crnn-lite", "--out", str(run), *TINY, "best_of=2"]
    assert train_main(args) == 0
    summary = json.loads((run / "seeds.json").read_text())
    figures = {row["seed"]: row["event_f1"] for row in summary["seeds"]}
    assert sorted(figures) == [0, 1]
    for seed in (0, 1):
        best = torch.load(run / f"seed-{seed}" / "checkpoints" / "best.pt", weights_only=True)
        assert best["train_state"]["best"] == figures[seed] and best["config"]["seed"] == seed
    chosen = max(figures, key=lambda s: (figures[s], -s))
    assert summary["chosen"] == chosen
    assert (run / "checkpoints" / "best.pt").read_bytes() == (run / f"seed-{chosen}" / "checkpoints" / "best.pt").read_bytes()
    assert json.loads((run / "config.json").read_text())["config"]["seed"] == chosen
    capsys.readouterr()
    assert train_main(args) == 0  # both seeds finished: nothing trains again
    assert "→" not in capsys.readouterr().err


def test_batch_quota_places_each_role_at_its_place_in_every_batch():
    """batch_quota=1,1,2: in every batch of 4 consecutive items the first is a strong clip, the
    second weak, the last two unlabelled (the sampler keeps index order), whatever the scene shares."""
    config = CRNNTrainConfig(strong_scenes=1, weak_scenes=1, unlabelled_scenes=3, span_seconds=30, val_scenes=1,
                             items_per_epoch=12, batch_size=4, batch_quota=(1, 1, 2), num_workers=0, threads=1)
    config.validate()
    recipe = CRNNRecipe(config)
    train, _ = recipe.build_datasets(None)
    assert recipe.shuffle_train is False
    masks = {0: (1.0, 1.0), 1: (0.0, 1.0), 2: (0.0, 0.0), 3: (0.0, 0.0)}  # (strong, weak) known
    for epoch in (0, 1):
        for index in range(12):
            item = train[(epoch, index)]
            assert (float(item["strong_mask"]), float(item["weak_mask"])) == masks[index % 4], (epoch, index)
    for bad, message in [(dict(batch_quota=(1, 1, 1)), "summing to batch_size 4"),
                         (dict(batch_quota=(2, 2, 0), weak_scenes=0), "no weak scene is used"),
                         (dict(batch_quota=(2, 0, 2), use_unlabelled=False), "no unlabelled scene is used")]:
        with pytest.raises(ValueError, match=message):
            CRNNTrainConfig(**{**dict(strong_scenes=1, weak_scenes=1, unlabelled_scenes=1, batch_size=4), **bad}).validate()


def test_onset_crops_end_just_after_an_onset_and_none_keeps_the_uniform_crops():
    """onset_crops=1: every training crop ends 0-0.4 s after an event's onset; 0: the crops drawn
    before the option existed (start uniform over the span, the same scene draw)."""
    from models.crnn.data import WorldSedClips
    from models.world import get_preset, split_seed

    grid = FrameGrid(LITE_FRONTEND, 4)
    make = lambda share: WorldSedClips(get_preset("bench"), [split_seed("val", 1)], ["strong"], 60.0, 5.0, grid,  # noqa: E731
                                       size=64, seed=3, onset_crops=share)
    uniform, onsets = make(0.0), make(1.0)
    sr = grid.frontend.sample_rate
    event_onsets = np.array([e.onset for e in onsets.events[0]])
    for index in range(64):
        rng = np.random.default_rng([3, 0, index])  # the draws address() made before onset_crops
        scene = int(rng.integers(1))
        assert uniform.address(0, index) == (scene, int(rng.integers(0, 55 * sr + 1)))
        scene_o, start = onsets.address(0, index)
        end = (start + 5 * sr) / sr
        assert scene_o == scene
        slack = 0.5 / sr  # the crop's end is rounded to a sample
        assert np.any((event_onsets <= end + slack) & (end <= event_onsets + 0.4 + slack)), (index, end)
    half = make(0.5)
    moved = sum(half.address(0, i) != uniform.address(0, i) for i in range(64))
    assert 16 <= moved <= 48  # about half of the 64 (binomial 32 +- 4)
    with pytest.raises(ValueError, match="onset_crops"):
        CRNNTrainConfig(onset_crops=1.5).validate()


def test_world_clips_hear_the_scenes_as_captured_at_48k_and_resampled(tmp_path, monkeypatch):
    """capture_rate (48000 by default): the recipe's world clips hold each scene rendered at the
    capture rate and resampled to the front end's (what avlive hands the labeler beside the
    48 kHz localizer); 0 renders at the front end's rate; a negative or fractional rate is refused."""
    from models.crnn.data import WorldSedClips
    from models.world import Scene, get_preset, split_seed
    from models.world.cache import render_resampled
    from models.world.evalsets import WindowSpan

    monkeypatch.setenv("AVLIVE_CACHE", str(tmp_path))
    grid, seed = FrameGrid(LITE_FRONTEND, 4), split_seed("val", 1)
    sr = grid.frontend.sample_rate
    assert CRNNTrainConfig().capture_rate == 48000
    clips = WorldSedClips(get_preset("bench"), [seed], ["strong"], 6.0, 5.0, grid, size=4, render_rate=48000)
    np.testing.assert_array_equal(clips.audio, render_resampled([WindowSpan(seed, 6.0, 6.0)], sr, 48000, get_preset("bench")))
    direct = WorldSedClips(get_preset("bench"), [seed], ["strong"], 6.0, 5.0, grid, size=4)
    np.testing.assert_array_equal(direct.audio[0], Scene(get_preset("bench"), seed).render_audio(0, 6 * sr, sr))
    for bad in (-1, 44100.5, True):
        with pytest.raises(ValueError, match="capture_rate"):
            CRNNTrainConfig(capture_rate=bad).validate()


def test_tail_loss_adds_the_weighted_bce_of_each_strong_crops_last_frames():
    from models.crnn.recipe import _masked_bce

    torch.manual_seed(0)
    quiet = dict(mixup=0.0, spec_augment=False, dropout=0.0, tail_frames=3)
    plain, tailed = CRNNRecipe(CRNNTrainConfig(**quiet, tail_weight=0.0)), CRNNRecipe(CRNNTrainConfig(**quiet, tail_weight=2.0))
    plain.labels = tailed.labels = tuple("abc")
    model = plain.build_model().eval()
    audio = torch.randn(3, 32000) * 0.1
    frames = plain.grid.frames(32000)
    batch = {"audio": audio, "strong": (torch.rand(3, frames, 3) > 0.5).float(), "weak": torch.ones(3, 3),
             "strong_mask": torch.tensor([1.0, 0.0, 1.0]), "weak_mask": torch.ones(3)}
    with torch.no_grad():
        probs, _ = model.student(model.log_mel(audio))
        extra = tailed.loss(model, batch) - plain.loss(model, batch)
    keep = [0, 2]  # the strong crops; the tail is their last 3 frames
    expected = _masked_bce(probs[:, frames - 3:frames], batch["strong"][:, frames - 3:], batch["strong_mask"])
    assert probs.shape[1] == frames and 2.0 * expected > 0
    # (clip + tail) - clip rounds to an ulp of the sum: 0 to 1.2e-7 measured over five seeds
    torch.testing.assert_close(extra, 2.0 * expected, rtol=0.0, atol=2.5e-7)
    only_strong = torch.nn.functional.binary_cross_entropy(probs[keep, -3:].clamp(1e-7, 1 - 1e-7), batch["strong"][keep, -3:])
    torch.testing.assert_close(expected, only_strong, rtol=0.0, atol=0.0)
