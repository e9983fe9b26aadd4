"""models.datasets.clips: clip indexes decoded crash-contained, skipping bad clips without
substitution; torch datasets over them and over the EPIC audio HDF5."""
from __future__ import annotations

import dataclasses
import os
import warnings

import numpy as np
import pytest
import torch

from models.datasets import formats as F
from models.datasets.clips import ClipDataset, ClipIndex, ClipSpec, EpicSegments, fit_length
from models.datasets.from_world import write_desed_world, write_epic_world, write_vggsound_world
from models.io.decode_pool import ClipSkippedWarning, SkipReport
from models.io.media import read_audio, read_video_frames
from models.world import CLASS_NAMES, TINY, split_seed

SR = 16_000
TRAIN = [split_seed("train", i) for i in range(3)]


@pytest.fixture(scope="module")
def vgg(tmp_path_factory):
    return write_vggsound_world(tmp_path_factory.mktemp("vgg"), TRAIN, clip_seconds=2, preset=TINY,
                                search_seconds=300)


@pytest.fixture(scope="module")
def decoded_with_bad(vgg, tmp_path_factory):
    """Three good mp4 clips interleaved with a truncated file, random bytes and a missing path."""
    bad_dir = tmp_path_factory.mktemp("bad")
    index = ClipIndex.from_vggsound(F.read_vggsound_csv(vgg.csv), vgg.video_dir)
    good = list(index)
    data = good[0].path.read_bytes()
    truncated = bad_dir / "truncated_000001.mp4"
    truncated.write_bytes(data[: len(data) // 2])
    junk = bad_dir / "random_000002.mp4"
    junk.write_bytes(np.random.default_rng(7).bytes(20_000))
    missing = bad_dir / "missing_000003.mp4"
    bad = [ClipSpec(truncated, ("hiss",)), ClipSpec(junk, ("bell",)), ClipSpec(missing, ("organ",))]
    order = [good[0], bad[0], good[1], bad[1], bad[2], good[2]]
    report = SkipReport()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        decoded = ClipIndex(order).decode(SR, 2.5, num_frames=3, frame_size=(48, 32), workers=2, timeout_s=60,
                                          report=report)
    return decoded, good, bad, report, caught


def test_bad_clips_are_skipped_with_reasons(decoded_with_bad):
    decoded, good, bad, report, caught = decoded_with_bad
    assert decoded.clips == tuple(good)  # the good ones, in input order
    assert len(decoded) == 3 and report.n_ok == 3 and report.count == 3
    reasons = {os.fspath(spec): reason for spec, reason in decoded.skipped}
    assert set(reasons) == {os.fspath(b) for b in bad}
    assert reasons[os.fspath(bad[0])].startswith("error: MediaDecodeError")
    assert reasons[os.fspath(bad[1])].startswith("error: MediaDecodeError")
    assert reasons[os.fspath(bad[2])].startswith("missing: no such file")
    summary = decoded.summary()
    assert summary.splitlines()[0] == "skipped 3 of 6 clips:"
    for b in bad:
        assert f"{os.fspath(b)}: " in summary  # listed by path
    assert sum(issubclass(w.category, ClipSkippedWarning) for w in caught) == 3


def test_items_are_the_good_clips_no_substitution(decoded_with_bad, vgg):
    decoded, good, _, _, _ = decoded_with_bad
    data = ClipDataset(decoded, classes=CLASS_NAMES)
    assert len(data) == 3
    for i, spec in enumerate(good):
        audio, _ = read_audio(spec.path, sample_rate=SR)
        item = data[i]
        assert item["audio"].shape == (40_000,) and item["audio"].dtype == torch.float32
        np.testing.assert_array_equal(item["audio"].numpy(), fit_length(audio, 40_000))
        assert item["length"].item() == 2 * SR and not item["audio"][2 * SR:].any()  # padded at the end
        assert item["target"].item() == CLASS_NAMES.index(vgg.clips[i].label) and item["index"].item() == i
        frames, _ = read_video_frames(spec.path, size=(48, 32))
        picks = np.linspace(0, len(frames) - 1, 3).round().astype(int)  # evenly spaced over the clip
        np.testing.assert_array_equal(item["frames"].numpy(), frames[picks])
        assert torch.equal(data[(5, i)]["audio"], item["audio"])  # no augmentation: epoch does not matter
    with pytest.raises(IndexError):
        data[3]


def test_addressing_and_augmentation(decoded_with_bad):
    decoded = decoded_with_bad[0]
    data = ClipDataset(decoded, classes=CLASS_NAMES, gain_db=6.0, seed=3)
    a, b = data[(1, 2)]["audio"], data[(1, 2)]["audio"]
    assert torch.equal(a, b)  # a pure function of (seed, epoch, index)
    assert not torch.equal(a, data[(2, 2)]["audio"])
    original = decoded.audio[2].astype(np.float64)
    gain_db = 20 * np.log10(np.dot(a.numpy(), original) / np.dot(original, original))
    assert -6.0 <= gain_db <= 6.0 and abs(gain_db) > 1e-3
    with pytest.raises(ValueError, match="exactly one label"):
        ClipDataset(dataclasses.replace(decoded, clips=(dataclasses.replace(decoded.clips[0], labels=("a", "b")),)
                                        + decoded.clips[1:]), classes=["a", "b"] + list(CLASS_NAMES))
    with pytest.raises(ValueError, match="not among"):
        ClipDataset(decoded, classes=["organ"])
    batch = next(iter(torch.utils.data.DataLoader(ClipDataset(decoded, classes=CLASS_NAMES), batch_size=3)))
    assert batch["audio"].shape == (3, 40_000) and batch["frames"].shape == (3, 3, 32, 48, 3)


def test_multi_label_short_clips_and_all_bad(tmp_path):
    desed = write_desed_world(tmp_path / "desed", [split_seed("val", 0)], clips_per_seed=2, clip_seconds=2.0,
                              empty_clips_per_seed=1, preset=TINY)
    strong = F.read_dcase_strong(desed.strong_tsvs["validation"])
    specs = list(ClipIndex.from_dcase_strong(strong, desed.audio_dirs["validation"]))
    short = tmp_path / "short.wav"  # a WAV cut short: it decodes, but to 0.25 s only
    data = specs[0].path.read_bytes()
    short.write_bytes(data[: 44 + 2 * 4000])
    with pytest.warns(ClipSkippedWarning, match="short.wav"):
        decoded = ClipIndex(specs + [ClipSpec(short, ("beep",))]).decode(SR, 1.0, min_seconds=1.5, workers=1)
    assert decoded.clips == tuple(specs)
    ((spec, reason),) = decoded.skipped
    assert spec.path == short and "fewer than the 24000 required" in reason
    multi = ClipDataset(decoded, classes=CLASS_NAMES, target="multi")
    for i, spec in enumerate(specs):
        target = multi[i]["target"]
        assert target.dtype == torch.float32
        assert {CLASS_NAMES[j] for j in torch.nonzero(target).flatten().tolist()} == set(spec.labels)
        assert multi[i]["length"].item() == 2 * SR and multi[i]["audio"].shape == (SR,)  # cropped
    assert not multi[len(specs) - 1]["target"].any()  # the clip without events
    assert "target" not in ClipDataset(decoded, target="none")[0]
    with pytest.raises(RuntimeError, match="no clip of 1 could be decoded"), pytest.warns(ClipSkippedWarning):
        ClipIndex([ClipSpec(tmp_path / "nothing.wav")]).decode(SR, 1.0, workers=1)


def test_clip_spec_and_index_from_formats(tmp_path):
    spec = ClipSpec(str(tmp_path / "a.wav"), ["x"], start=1.0, stop=2.0)
    assert os.fspath(spec) == str(tmp_path / "a.wav") and spec.key == "a.wav" and spec.labels == ("x",)
    with pytest.raises(ValueError, match="must come after"):
        ClipSpec(tmp_path / "a.wav", start=2.0, stop=1.0)
    with pytest.raises(TypeError, match="ClipSpec"):
        ClipIndex([tmp_path / "a.wav"])
    esc = ClipIndex.from_esc50([F.Esc50Clip("1-5-A-3.wav", 1, 3, "siren", True, "5", "A")], tmp_path)
    assert esc[0] == ClipSpec(tmp_path / "1-5-A-3.wav", ("siren",))
    audioset = ClipIndex.from_audioset([F.AudioSetSegment("-abc_def012", 30.0, 40.0, ("/m/a", "/m/b"))], tmp_path)
    assert audioset[0].path.name == "Y-abc_def012_30.000_40.000.wav" and audioset.classes == ("/m/a", "/m/b")
    weak = ClipIndex.from_dcase_weak([F.WeakLabel("w.wav", ("A", "B"))], tmp_path)
    unlabeled = ClipIndex.from_dcase_unlabeled(["u.wav"], tmp_path)
    assert weak[0].labels == ("A", "B") and unlabeled[0].labels == () and len(unlabeled) == 1
    folder = ClipIndex.from_media_files([F.MediaFile(tmp_path / "d/v.mp4", "d/v.mp4", "video")])
    assert folder[0].key == "d/v.mp4"


# ------------------------------------------------------------------------------------------
# EPIC segments from the audio HDF5


@pytest.fixture(scope="module")
def epic(tmp_path_factory):
    return write_epic_world(tmp_path_factory.mktemp("epic"), TRAIN[:1], video_seconds=12.0, preset=TINY)


def test_epic_segments_by_timestamps(epic):
    narrations = F.read_epic100_annotations(epic.annotations["train"])
    missing = dataclasses.replace(narrations[0], narration_id="P09_01_0", video_id="P09_01")
    past_end = dataclasses.replace(narrations[1], narration_id="P01_01_99", start_timestamp=30.0, stop_timestamp=31.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = EpicSegments(epic.audio_hdf5, [narrations[0], missing, *narrations[1:], past_end], seconds=1.0)
    assert len(data) == len(narrations) and data.segments == narrations
    reasons = dict(data.skipped)
    assert reasons["P09_01_0"].startswith("missing: no audio for video 'P09_01'")
    assert "past the end" in reasons["P01_01_99"]
    assert sum(issubclass(w.category, ClipSkippedWarning) for w in caught) == 2
    assert data.report.summary().splitlines()[0] == f"skipped 2 of {len(narrations) + 2} clips:"
    with F.EpicAudioHDF5(epic.audio_hdf5) as audio:
        whole = audio.read("P01_01")
    for i, n in enumerate(narrations):
        start, stop = round(n.start_timestamp * 24_000), round(n.stop_timestamp * 24_000)
        assert data.span(i) == (start, min(stop, len(whole)))
        item = data[i]
        assert item["audio"].shape == (24_000,) and item["verb"].item() == n.verb_class
        assert item["noun"].item() == n.noun_class
        n_valid = min(stop, len(whole)) - start
        assert item["length"].item() == min(n_valid, 24_000)
        np.testing.assert_array_equal(item["audio"].numpy(), fit_length(whole[start:start + min(n_valid, 24_000)],
                                                                        24_000))  # eval: the first window
    long = next(i for i, n in enumerate(narrations) if n.stop_timestamp - n.start_timestamp > 1.5)
    train = EpicSegments(epic.audio_hdf5, narrations, seconds=1.0, train=True, seed=1)
    a, b = train[(0, long)]["audio"].numpy(), train[(0, long)]["audio"].numpy()
    np.testing.assert_array_equal(a, b)
    start, stop = train.span(long)
    offsets = set()
    for epoch in range(4):
        window = train[(epoch, long)]["audio"].numpy()
        candidates = np.flatnonzero(whole[start:stop - 24_000 + 1] == window[0])
        matches = [o for o in candidates if np.array_equal(whole[start + o:start + o + 24_000], window)]
        assert matches  # a window inside the segment
        offsets.add(int(matches[0]))
    assert len(offsets) > 1  # random across epochs


def test_epic_sounds_segments_by_samples(epic):
    sounds = F.read_epic_sounds(epic.sounds["train"])
    data = EpicSegments(epic.audio_hdf5, sounds)  # whole segments
    with F.EpicAudioHDF5(epic.audio_hdf5) as audio:
        for i, s in enumerate(sounds):
            item = data[i]
            expected = audio.samples(s.video_id, s.start_sample, s.stop_sample)
            np.testing.assert_array_equal(item["audio"].numpy(), expected)
            assert item["target"].item() == s.class_id and item["length"].item() == len(item["audio"])
    with pytest.raises(TypeError, match="EpicNarration or EpicSoundsSegment"):
        EpicSegments(epic.audio_hdf5, ["P01_01_0"])
