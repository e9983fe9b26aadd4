"""models.datasets.from_world: every dataset layout written from a TINY world and read back
with the readers of models.datasets.formats, against the ground truth the writer encoded."""
from __future__ import annotations

import dataclasses
import math
import re

import numpy as np
import pytest

from models.datasets import formats as F
from models.datasets.from_world import (WORLD_NOUNS, WORLD_VERBS, audioset_wav_name, single_event_clips,
                                        synthetic_ytid, world_mid, write_audioset_world, write_desed_world,
                                        write_epic_world, write_esc50_world, write_vggsound_world,
                                        write_video_folder_world, write_wav)
from models.io.media import probe, read_audio, read_video_frames
from models.world import CLASS_NAMES, SOUND_CLASSES, TINY, Scene, split_seed

TRAIN = [split_seed("train", i) for i in range(3)]
VAL = [split_seed("val", 0)]
TEST = [split_seed("test", 0)]
YTID = re.compile(r"[A-Za-z0-9_-]{11}")


def _snr_db(reference: np.ndarray, decoded: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference.astype(np.float64) ** 2) / np.sum((decoded - reference) ** 2.0)))


# ------------------------------------------------------------------------------------------
# VGG-Sound


@pytest.fixture(scope="module")
def vgg(tmp_path_factory):
    return write_vggsound_world(tmp_path_factory.mktemp("vggsound"), TRAIN[:2] + TEST, clips_per_seed=1,
                                clip_seconds=2, preset=TINY, exclusive=True, search_seconds=300)


def test_vggsound_csvs_read_back(vgg):
    assert F.read_vggsound_csv(vgg.csv) == list(vgg.clips)
    assert [c.split for c in vgg.clips] == ["train", "train", "test"]
    assert F.read_vggsound_split_csv(vgg.train_csv, split="train") == [c for c in vgg.clips if c.split == "train"]
    assert F.read_vggsound_split_csv(vgg.test_csv, split="test") == [c for c in vgg.clips if c.split == "test"]
    stat = F.read_vggsound_stat(vgg.stat_csv)
    assert stat == list(vgg.classes) and [c.label for c in stat] == list(CLASS_NAMES)
    assert sum(c.count for c in stat) == 3
    for c in stat:
        assert c.count == sum(clip.label == c.label for clip in vgg.clips)
    assert F.vggsound_class_order(stat) == sorted(CLASS_NAMES)
    assert vgg.stat_csv.read_bytes().count(b"\r\n") == 11  # CRLF, no newline after the last row


def test_vggsound_ids_and_names(vgg):
    ytids = [c.ytid for c in vgg.clips]
    assert all(YTID.fullmatch(y) for y in ytids) and len(set(ytids)) == 3
    assert ytids[1].startswith("-") and "_" in ytids[2]  # the ids that trip naive parsers
    for clip, truth in zip(vgg.clips, vgg.truth):
        assert truth.path == vgg.video_dir / clip.filename and truth.path.exists()
        assert F.parse_vggsound_filename(truth.path.name) == (clip.ytid, clip.start)


def test_vggsound_truth_single_event(vgg):
    for clip, truth in zip(vgg.clips, vgg.truth):
        assert truth.start == clip.start and truth.seconds == 2 and truth.sample_rate == 16_000
        assert truth.label == clip.label
        (event,) = truth.events  # exclusive: nothing else sounds in the clip
        assert event.label == clip.label and 0 <= event.onset < event.offset <= 2
        world = [e for e in Scene(TINY, truth.seed).events_between(clip.start, clip.start + 2)]
        assert len(world) == 1 and math.isclose(world[0].onset - clip.start, event.onset)


def test_vggsound_media_decodes(vgg):
    truth = vgg.truth[1]
    info = probe(truth.path)
    assert info.has_audio and info.has_video and info.sample_rate == 16_000
    assert (info.width, info.height, info.fps) == (TINY.frame_width, TINY.frame_height, TINY.fps)
    audio, sr = read_audio(truth.path)
    assert sr == 16_000 and len(audio) == 2 * 16_000
    assert _snr_db(truth.render_audio(TINY), audio) > 20  # AAC, time-aligned with the world
    frames, times = read_video_frames(truth.path)
    assert len(frames) == 2 * TINY.fps and np.allclose(times, np.arange(len(frames)) / TINY.fps)
    expected = Scene(TINY, truth.seed).render_frame(round(truth.start * TINY.fps) + 7)[0]
    assert np.abs(frames[7].astype(np.int16) - expected).mean() < 6  # H.264 at crf 18


def test_vggsound_refuses_validation_seeds_and_repeats(tmp_path):
    with pytest.raises(ValueError, match="'val' seed.*VGG-Sound"):
        write_vggsound_world(tmp_path, VAL, clip_seconds=2, preset=TINY)
    with pytest.raises(ValueError, match="more than once"):
        write_vggsound_world(tmp_path, [TRAIN[0], TRAIN[0]], clip_seconds=2, preset=TINY)
    with pytest.raises(ValueError, match="whole number of seconds"):
        write_vggsound_world(tmp_path, TRAIN[:1], clip_seconds=2.5, preset=TINY)


def test_single_event_clips_search_limit():
    scene = Scene(TINY, TRAIN[0])
    clips = single_event_clips(scene, 2, 3.0, search_seconds=300)
    assert len(clips) == 2 and clips[0][0] + 3.0 <= clips[1][0]
    for start, event in clips:
        assert start <= event.onset and event.offset <= start + 3.0 and math.isclose(start * 100, round(start * 100))
    with pytest.raises(ValueError, match=r"found \d+ of 50 single-event clips .* raise search_seconds"):
        single_event_clips(scene, 50, 5.0, search_seconds=60)


def test_synthetic_ytid():
    assert synthetic_ytid("k") == synthetic_ytid("k") != synthetic_ytid("k2")
    assert synthetic_ytid("k", 1)[0] == "-" and synthetic_ytid("k", 2)[5] == "_"
    with pytest.raises(ValueError, match="style"):
        synthetic_ytid("k", 3)


# ------------------------------------------------------------------------------------------
# EPIC-KITCHENS-100 and EPIC-SOUNDS

EPIC_SECONDS = 15.0


@pytest.fixture(scope="module")
def epic(tmp_path_factory):
    return write_epic_world(tmp_path_factory.mktemp("epic"), TRAIN[:1] + VAL + TEST, video_seconds=EPIC_SECONDS,
                            preset=TINY)


def _split_of(video_id: str, epic) -> str:
    return {v.video_id: v.split for v in epic.videos}[video_id]


def test_epic_annotations_read_back(epic):
    assert [v.video_id for v in epic.videos] == ["P01_01", "P01_02", "P02_01"]
    by_file = {"train": "train", "validation": "val", "test": "test"}
    for name, split in by_file.items():
        rows = F.read_epic100_annotations(epic.annotations[name])
        expected = [n for n in epic.narrations if _split_of(n.video_id, epic) == split]
        assert rows and len(rows) == len(expected)
        if name == "test":  # the 8-column layout: no labels
            unlabeled = [dataclasses.replace(n, narration=None, verb=None, verb_class=None, noun=None, noun_class=None,
                                             all_nouns=None, all_noun_classes=None) for n in expected]
            assert rows == unlabeled and not any(r.has_labels for r in rows)
        else:
            assert rows == expected
        ids = [r.narration_id for r in rows]
        assert ids == sorted(ids)  # sorted as text, as the real files are


def test_epic_narrations_match_world_events(epic):
    verbs = F.epic_class_keys(F.read_epic100_classes(epic.verb_classes))
    nouns = F.epic_class_keys(F.read_epic100_classes(epic.noun_classes))
    assert verbs == list(WORLD_VERBS) and nouns == list(WORLD_NOUNS)
    assert epic.verb_classes.read_bytes().endswith(b"['beep'],sound")  # CRLF, no final newline
    fps = {v.video_id: v.fps for v in epic.videos}
    for n, e in zip(epic.narrations, epic.events):
        cls = SOUND_CLASSES[CLASS_NAMES.index(e.label)]
        assert (n.verb, n.noun, n.narration) == (cls.verb, cls.noun, f"{cls.verb} {cls.noun}")
        assert verbs[n.verb_class] == n.verb and nouns[n.noun_class] == n.noun
        assert n.all_nouns == (n.noun,) and n.all_noun_classes == (n.noun_class,)
        assert e.filename == n.video_id and e.offset <= EPIC_SECONDS
        assert abs(n.start_timestamp - e.onset) <= 0.005 + 1e-9 and abs(n.stop_timestamp - e.offset) <= 0.005 + 1e-9
        assert abs(n.narration_timestamp - e.onset) <= 0.0005 + 1e-9
        assert n.start_frame == max(1, math.floor(round(n.start_timestamp * 100) * fps[n.video_id] / 100))
        assert n.stop_frame == max(1, math.floor(round(n.stop_timestamp * 100) * fps[n.video_id] / 100))
    world = {v.video_id: Scene(TINY, v.seed).events_between(0, EPIC_SECONDS) for v in epic.videos}
    assert len(epic.narrations) == sum(len(w) for w in world.values())


def test_epic_video_info_and_sounds(epic):
    info = F.read_epic100_video_info(epic.video_info)
    assert [(v.video_id, v.duration, v.fps, v.size) for v in info] == [
        (v.video_id, EPIC_SECONDS, float(TINY.fps), (TINY.frame_width, TINY.frame_height)) for v in epic.videos]
    read = {name: F.read_epic_sounds(path) for name, path in epic.sounds.items()}
    assert read["train"] + read["validation"] == [s for s in epic.sound_segments
                                                  if _split_of(s.video_id, epic) in ("train", "val")]
    test = [s for s in epic.sound_segments if _split_of(s.video_id, epic) == "test"]
    assert read["test"] == [dataclasses.replace(s, description=None, class_name=None, class_id=None) for s in test]
    by_id = {n.narration_id: e for n, e in zip(epic.narrations, epic.events)}
    for s in epic.sound_segments:
        assert s.start_sample == round(s.start_timestamp * 24_000) and s.stop_sample == round(s.stop_timestamp * 24_000)
        e = by_id[s.annotation_id]
        assert abs(s.start_timestamp - e.onset) <= 0.0005 + 1e-9 and CLASS_NAMES[s.class_id] == s.class_name == e.label


def test_epic_audio_hdf5_is_the_scene(epic):
    with F.EpicAudioHDF5(epic.audio_hdf5) as audio:
        assert audio.video_ids() == sorted(v.video_id for v in epic.videos)
        for v in epic.videos:
            assert audio.num_samples(v.video_id) == round(EPIC_SECONDS * 24_000)
        scenes = {v.video_id: Scene(TINY, v.seed) for v in epic.videos}
        for n in epic.narrations[::4]:
            segment = audio.segment(n.video_id, n.start_timestamp, n.stop_timestamp)
            first = round(n.start_timestamp * 24_000)
            assert len(segment) == round(n.stop_timestamp * 24_000) - first
            np.testing.assert_array_equal(segment, scenes[n.video_id].render_audio(first, len(segment), 24_000))


# ------------------------------------------------------------------------------------------
# ESC-50


@pytest.fixture(scope="module")
def esc50(tmp_path_factory):
    return write_esc50_world(tmp_path_factory.mktemp("esc50"), range(5), preset=TINY, search_seconds=600)


def test_esc50_read_back(esc50):
    assert esc50.csv.relative_to(esc50.root).as_posix() == "meta/esc50.csv"
    clips = F.read_esc50(esc50.csv)
    assert clips == list(esc50.clips)
    assert [c.fold for c in clips] == [1, 2, 3, 4, 5]  # fold = seed % 5 + 1
    for c, truth in zip(clips, esc50.truth):
        assert c.filename == f"{c.fold}-{c.src_file}-{c.take}-{c.target}.wav" and c.src_file == str(truth.seed)
        assert CLASS_NAMES[c.target] == c.category == truth.label
        assert c.esc10 == (c.category not in ("chirp-down", "engine-am7"))
        (event,) = truth.events
        assert event.label == c.category and 0 <= event.onset < event.offset <= 5.0


def test_esc50_wav_is_the_scene(esc50):
    truth = esc50.truth[2]
    audio, sr = read_audio(truth.path)
    assert sr == 44_100 and len(audio) == 5 * 44_100
    assert np.abs(audio - truth.render_audio(TINY)).max() <= 1 / 65536 + 1e-7  # 16-bit rounding only


def test_esc50_older_header(tmp_path):
    old = write_esc50_world(tmp_path, [3], preset=TINY, clip_seconds=1.0, layout="older", search_seconds=300)
    assert old.csv == tmp_path / "esc50.csv"
    assert old.csv.read_text().splitlines()[0] == "filename,fold,category,category_name,esc10,src_file,take"
    assert F.read_esc50(old.csv) == list(old.clips)


def test_write_wav_round_trip(tmp_path):
    x = np.array([0.0, 0.5, -0.5, 1 / 3, -1.0, 0.99997], np.float32)
    audio, sr = read_audio(write_wav(tmp_path / "x.wav", x, 8000))
    assert sr == 8000
    np.testing.assert_array_equal(audio, np.round(x.astype(np.float64) * 32768).clip(-32768, 32767) / 32768)
    with pytest.raises(ValueError, match="mono"):
        write_wav(tmp_path / "y.wav", np.zeros((4, 2)), 8000)


# ------------------------------------------------------------------------------------------
# AudioSet


@pytest.mark.parametrize("layout", ["original", "plain"])
def test_audioset_read_back(tmp_path, layout):
    world = write_audioset_world(tmp_path, TRAIN[:2] + TEST, segment_seconds=10.0, preset=TINY, layout=layout)
    first_line = world.segment_lists["train"].read_text().splitlines()[0]
    assert first_line.startswith("# Segments csv created") if layout == "original" else first_line.startswith("YTID,")
    train = F.read_audioset_segments(world.segment_lists["train"])
    test = F.read_audioset_segments(world.segment_lists["test"])
    assert (len(train), len(test)) == (2, 1) and train + test == list(world.segments)
    classes = F.read_audioset_class_labels(world.class_labels)
    assert classes == list(world.classes) and [c.display_name for c in classes] == list(CLASS_NAMES)
    index = F.audioset_class_index(classes)
    for segment, truth in zip(world.segments, world.truth):
        assert segment.positive_labels == tuple(world_mid(x) for x in truth.labels)
        assert [CLASS_NAMES[index[m]] for m in segment.positive_labels] == list(truth.labels)
        world_labels = {e.label for e in Scene(TINY, truth.seed).events_between(segment.start_seconds,
                                                                                 segment.end_seconds)}
        assert set(truth.labels) == world_labels
        assert truth.path.name == audioset_wav_name(segment.ytid, segment.start_seconds, segment.end_seconds)
    assert max(len(s.positive_labels) for s in world.segments) > 1  # multi-label
    audio, sr = read_audio(world.truth[0].path)
    assert sr == 16_000 and len(audio) == 10 * 16_000


def test_audioset_refuses_validation_seeds(tmp_path):
    with pytest.raises(ValueError, match="AudioSet"):
        write_audioset_world(tmp_path, VAL, preset=TINY)


# ------------------------------------------------------------------------------------------
# DESED / DCASE


@pytest.fixture(scope="module")
def desed(tmp_path_factory):
    return write_desed_world(tmp_path_factory.mktemp("desed"), TRAIN[:1] + VAL + TEST, clips_per_seed=2,
                             clip_seconds=2.0, empty_clips_per_seed=1, preset=TINY)


def test_desed_weak_and_unlabeled(desed):
    weak = F.read_dcase_weak(desed.weak_tsv)
    assert weak == list(desed.weak) and len(weak) == 2
    truth = {t.path.name: t for t in desed.truth}
    for row in weak:
        assert row.labels and row.labels == truth[row.filename].labels
        assert (desed.audio_dirs["weak"] / row.filename).exists()
    unlabeled = F.read_dcase_unlabeled(desed.unlabeled_tsv)
    assert unlabeled == list(desed.unlabeled) and len(unlabeled) == 2
    assert all((desed.audio_dirs["unlabel_in_domain"] / f).exists() for f in unlabeled)
    assert not set(unlabeled) & {w.filename for w in weak}


def test_desed_strong(desed):
    truth = {t.path.name: t for t in desed.truth}
    for role in ("validation", "public"):
        strong = F.read_dcase_strong(desed.strong_tsvs[role])
        written = desed.strong[role]
        assert strong.files == written.files and len(strong.files) == 3
        assert len(strong.empty_files) >= 1 and set(strong.empty_files) == set(written.empty_files)
        assert len(strong.events) == len(written.events)
        for f in strong.files:
            t = truth[f]
            assert re.fullmatch(r"Y[A-Za-z0-9_-]{11}_\d+\.\d{3}_\d+\.\d{3}\.wav", f)
            assert t.path.parent == desed.audio_dirs[role] and t.path.exists()
            got, expected = strong.events_for(f), t.events
            assert [e.label for e in got] == [e.label for e in expected]
            for g, e in zip(got, expected):
                assert abs(g.onset - e.onset) <= 0.0005 + 1e-9 and abs(g.offset - e.offset) <= 0.0005 + 1e-9
                assert 0 <= g.onset <= g.offset <= 2.0
            world = Scene(TINY, t.seed).events_between(t.start, t.start + t.seconds)
            assert sorted(e.label for e in world) == sorted(e.label for e in expected)
        empty_row = next(line for line in desed.strong_tsvs[role].read_text().splitlines()
                         if line.startswith(strong.empty_files[0]))
        assert empty_row == f"{strong.empty_files[0]}\t\t\t"


def test_desed_wav_is_the_scene(desed):
    t = desed.truth[-1]
    audio, sr = read_audio(t.path)
    assert sr == 16_000 and len(audio) == 2 * 16_000
    assert np.abs(audio - t.render_audio(TINY)).max() <= 1 / 65536 + 1e-7


# ------------------------------------------------------------------------------------------
# a plain folder of videos


def test_video_folder(tmp_path):
    world = write_video_folder_world(tmp_path, TRAIN[:1] + TEST, clips_per_seed=2, clip_seconds=1.0, preset=TINY)
    files = F.read_video_folder(tmp_path)
    assert files == list(world.files) and len(files) == 4
    assert [f.relpath for f in files] == ["test/scene-200000/clip-000.mp4", "test/scene-200000/clip-001.mp4",
                                          "train/scene-000000/clip-000.mp4", "train/scene-000000/clip-001.mp4"]
    for f, truth in zip(files, world.truth):
        assert truth.path == f.path and f.kind == "video"
        assert truth.start == float(f.relpath[-7:-4])  # clip k starts at k s
    info = probe(files[1].path)
    assert info.has_video and info.has_audio and info.fps == TINY.fps
    audio, sr = read_audio(files[1].path)
    assert sr == 16_000 and len(audio) == 16_000
    assert _snr_db(world.truth[1].render_audio(TINY), audio) > 20
