"""Readers and writers of the real dataset annotation formats (models.datasets.formats).

The expected first/last rows below were typed by hand from the files in tests/data/real/.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from models.datasets import formats as F
from models.datasets.formats import (AudioSetClass, AudioSetSegment, EpicClass, EpicNarration, EpicSoundsSegment,
                                     EpicVideoInfo, Esc50Clip, MediaFile, StrongLabels, VggSoundClass, VggSoundClip,
                                     WeakLabel)
from models.core.events import LabeledEvent

REAL = Path(__file__).parent / "data" / "real"


# ------------------------------------------------------------------------------------------
# VGG-Sound


def test_vggsound_csv_real():
    clips = F.read_vggsound_csv(REAL / "vggsound.csv")
    assert len(clips) == 200
    assert clips[0] == VggSoundClip("---g-f_I2yQ", 1, "people marching", "test")
    assert clips[-1] == VggSoundClip("-2k4RLnPDbo", 153, "playing clarinet", "train")
    assert VggSoundClip("--Lj4Y_96f0", 120, "bee, wasp, etc. buzzing", "train") in clips  # quoted in the file
    assert sum(c.split == "test" for c in clips) == 18
    assert clips[0].filename == "---g-f_I2yQ_000001.mp4" and clips[0].end == 11
    labels = {c.label for c in F.read_vggsound_stat(REAL / "stat.csv")}
    assert {c.label for c in clips} <= labels


def test_vggsound_split_csv_real():
    clips = F.read_vggsound_split_csv(REAL / "test.csv", split="test")
    assert len(clips) == 200
    assert clips[0] == VggSoundClip("glLQrEijrKg", 300, "playing hammond organ", "test")
    assert clips[-1] == VggSoundClip("ZRVktsXO9FI", 66, "scuba diving", "test")
    # line 9: NlCfScKw_Mk_000030.mp4 -> the id keeps its own underscore
    assert clips[8] == VggSoundClip("NlCfScKw_Mk", 30, "playing synthesizer", "test")
    assert F.read_vggsound_split_csv(REAL / "test.csv")[0].split is None
    assert F.parse_vggsound_filename("-a_b-c_d_000007.mp4") == ("-a_b-c_d", 7)


def test_vggsound_stat_real_and_class_order():
    classes = F.read_vggsound_stat(REAL / "stat.csv")
    assert len(classes) == F.VGGSOUND_NUM_CLASSES == 309
    assert classes[0] == VggSoundClass("ambulance siren", 1050, "vehicle")
    assert classes[2] == VggSoundClass("bird chirping, tweeting", 1050, "animals")
    assert classes[-1] == VggSoundClass("air horn", 197, "vehicle")
    order = F.vggsound_class_order(classes)
    assert order == sorted(c.label for c in classes)
    assert order[:2] == ["air conditioning noise", "air horn"] and order[-1] == "zebra braying"
    assert F.vggsound_class_order(["b", "a"]) == ["a", "b"]


# ------------------------------------------------------------------------------------------
# EPIC-KITCHENS-100


def test_epic100_validation_real():
    rows = F.read_epic100_annotations(REAL / "EPIC_100_validation.csv")
    assert len(rows) == 200
    assert rows[0] == EpicNarration("P01_11_0", "P01", "P01_11", 0.56, 0.0, 1.89, 1, 113, "take plate", "take", 0,
                                    "plate", 2, ("plate",), (2,))
    assert rows[-1] == EpicNarration("P01_12_55", "P01", "P01_12", 147.79, 149.54, 150.29, 8972, 9017,
                                     "open cupboard", "open", 3, "cupboard", 3, ("cupboard",), (3,))
    multi = next(r for r in rows if r.narration_id == "P01_11_12")
    assert multi.all_nouns == ("paper", "bin") and multi.all_noun_classes == (49, 36)
    assert rows[0].has_labels
    assert rows[-1].start_sample() == round(149.54 * 24000) and rows[-1].stop_sample(16000) == round(150.29 * 16000)


def test_epic100_test_timestamps_real():
    rows = F.read_epic100_annotations(REAL / "EPIC_100_test_timestamps.csv")
    assert len(rows) == 200
    assert rows[0] == EpicNarration("P01_101_0", "P01", "P01_101", 2.851, 2.86, 3.87, 143, 193)
    assert rows[-1] == EpicNarration("P01_101_278", "P01", "P01_101", 788.357, 788.09, 802.05, 39404, 40102)
    assert not any(r.has_labels for r in rows) and rows[-1].narration is None


def test_epic100_classes_real():
    verbs = F.read_epic100_classes(REAL / "EPIC_100_verb_classes.csv")
    nouns = F.read_epic100_classes(REAL / "EPIC_100_noun_classes.csv")
    assert len(verbs) == F.EPIC100_NUM_VERBS == 97
    assert len(nouns) == F.EPIC100_NUM_NOUNS == 300
    assert (verbs[0].id, verbs[0].key, verbs[0].category) == (0, "take", "retrieve")
    assert len(verbs[0].instances) == 34
    assert verbs[0].instances[:3] == ("collect-from", "collect-into", "draw")
    assert verbs[0].instances[-1] == "take-down"
    assert verbs[-1] == EpicClass(96, "unfreeze", ("unfreeze",), "monitor")
    assert nouns[0] == EpicClass(0, "tap", ("tap", "tap:water", "water:tap", "flow:tap", "tab", "tap:hot"),
                                 "appliances")
    assert nouns[-1] == EpicClass(299, "extract:vanilla", ("extract:vanilla",), "prepared food")
    keys = F.epic_class_keys(verbs)
    assert keys[0] == "take" and keys[96] == "unfreeze"
    # the one hand-edited source line ("'slice-into','slice-of'" lacks a space) parses too
    assert {"slice-into", "slice-of"} <= set(verbs[7].instances)


def test_epic100_video_info_real():
    videos = F.read_epic100_video_info(REAL / "EPIC_100_video_info.csv")
    assert len(videos) == 700
    assert videos[0] == EpicVideoInfo("P01_01", 1652.152817, 59.9400599400599, "1920x1080")
    assert videos[-1] == EpicVideoInfo("P37_103", 395.12, 50.0, "1920x1080")
    assert videos[0].size == (1920, 1080)


# ------------------------------------------------------------------------------------------
# EPIC-SOUNDS


def test_epic_sounds_real():
    val = F.read_epic_sounds(REAL / "EPIC_Sounds_validation.csv")
    assert len(val) == 200
    assert val[0] == EpicSoundsSegment("P01_11_0", "P01", "P01_11", 2.069, 2.993, 49656, 71832, "clang / clatter",
                                       "ceramic / wood collision", 34)
    assert val[-1] == EpicSoundsSegment("P01_14_22", "P01", "P01_14", 98.106, 100.323, 2354544, 2407752,
                                        "footstep", "footstep", 7)
    assert all(0 <= s.class_id < F.EPIC_SOUNDS_NUM_CLASSES for s in val)
    # samples are kept as read: they may differ from round(timestamp * 24000) by one sample
    assert all(abs(round(s.start_timestamp * 24000) - s.start_sample) <= 1 for s in val)

    test = F.read_epic_sounds(REAL / "EPIC_Sounds_recognition_test_timestamps.csv")
    assert len(test) == 200
    assert test[0] == EpicSoundsSegment("P02_106_0", "P02", "P02_106", 3.855, 4.142, 92520, 99408)
    assert test[-1] == EpicSoundsSegment("P02_125_94", "P02", "P02_125", 263.237, 272.145, 6317688, 6531479)
    assert test[0].layout == "test_timestamps"

    nc = F.read_epic_sounds(REAL / "sound_events_not_categorised.csv")
    assert len(nc) == 200
    assert nc[0] == EpicSoundsSegment("P01_01_NC_0", "P01", "P01_01", 5.924, 8.315, 142176, 199560, "clang / clatter")
    assert nc[-1] == EpicSoundsSegment("P01_05_NC_51", "P01", "P01_05", 533.46, 533.907, 12803040, 12813768,
                                       "clang / clatter")
    assert nc[0].layout == "not_categorised" and nc[0].class_id is None


# ------------------------------------------------------------------------------------------
# ESC-50


def test_esc50_older_header_real():
    clips = F.read_esc50(REAL / "esc50.csv")
    assert len(clips) == 200
    assert clips[0] == Esc50Clip("1-100032-A-0.wav", 1, 0, "dog", True, "100032", "A")
    assert clips[1] == Esc50Clip("1-100038-A-14.wav", 1, 14, "chirping_birds", False, "100038", "A")
    assert clips[-1] == Esc50Clip("1-40154-A-46.wav", 1, 46, "church_bells", False, "40154", "A")
    assert {c.fold for c in clips} == {1}
    assert len({c.target for c in clips}) == 48


def test_esc50_current_header(tmp_path):
    p = tmp_path / "esc50.csv"
    p.write_text("filename,fold,target,category,esc10,src_file,take\n"
                 "1-100032-A-0.wav,1,0,dog,True,100032,A\n"
                 "5-9032-A-0.wav,5,0,dog,True,9032,A\n"
                 "5-263902-A-36.wav,5,36,vacuum_cleaner,False,263902,A\n")
    clips = F.read_esc50(p)
    assert clips == [Esc50Clip("1-100032-A-0.wav", 1, 0, "dog", True, "100032", "A"),
                     Esc50Clip("5-9032-A-0.wav", 5, 0, "dog", True, "9032", "A"),
                     Esc50Clip("5-263902-A-36.wav", 5, 36, "vacuum_cleaner", False, "263902", "A")]
    # both layouts give the same records
    F.write_esc50(tmp_path / "old.csv", clips, layout="older")
    assert (tmp_path / "old.csv").read_text().startswith("filename,fold,category,category_name,")
    assert F.read_esc50(tmp_path / "old.csv") == clips
    p.write_text("filename,fold,target,category,esc10,src_file,take\n1-1-A-0.wav,6,0,dog,True,1,A\n")
    with pytest.raises(ValueError, match=r"esc50\.csv:2: column 'fold'"):
        F.read_esc50(p)


# ------------------------------------------------------------------------------------------
# AudioSet

ORIGINAL_SEGMENTS = (
    "# Segments csv created Sun Mar  5 10:54:31 2017\n"
    "# num_ytids=22160, num_segs=22160, num_unique_labels=527, num_positive_labels=52882\n"
    "# YTID, start_seconds, end_seconds, positive_labels\n"
    '--PJHxphWEs, 30.000, 40.000, "/m/09x0r,/t/dd00088"\n'
    '--ZhevVpy1s, 50.000, 60.000, "/m/012xff"\n'
)


def test_audioset_segments_plain_real():
    segs = F.read_audioset_segments(REAL / "balanced_train_segments.csv")
    assert len(segs) == 200
    assert segs[0] == AudioSetSegment("--PJHxphWEs", 30.0, 40.0, ("/m/09x0r", "/t/dd00088"))
    assert segs[1] == AudioSetSegment("--ZhevVpy1s", 50.0, 60.0, ("/m/012xff",))
    assert segs[-1] == AudioSetSegment("-PIuJAAplqI", 210.0, 220.0, ("/m/016cjb", "/m/04rlf"))


def test_audioset_segments_original_layout(tmp_path):
    p = tmp_path / "balanced_train_segments.csv"
    p.write_text(ORIGINAL_SEGMENTS)
    segs = F.read_audioset_segments(p)
    assert segs == [AudioSetSegment("--PJHxphWEs", 30.0, 40.0, ("/m/09x0r", "/t/dd00088")),
                    AudioSetSegment("--ZhevVpy1s", 50.0, 60.0, ("/m/012xff",))]
    # the writer reproduces the original layout, statistics line included
    out = tmp_path / "out.csv"
    F.write_audioset_segments(out, segs, layout="original", created="Sun Mar  5 10:54:31 2017")
    text = out.read_text()
    assert text.splitlines()[0] == "# Segments csv created Sun Mar  5 10:54:31 2017"
    assert text.splitlines()[1] == "# num_ytids=2, num_segs=2, num_unique_labels=3, num_positive_labels=3"
    assert text.splitlines()[2:] == ORIGINAL_SEGMENTS.splitlines()[2:]


def test_audioset_class_labels_real():
    classes = F.read_audioset_class_labels(REAL / "class_labels_indices.csv")
    assert len(classes) == F.AUDIOSET_NUM_CLASSES == 527
    assert classes[0] == AudioSetClass(0, "/m/09x0r", "Speech")
    assert classes[1] == AudioSetClass(1, "/m/05zppz", "Male speech, man speaking")
    assert classes[345] == AudioSetClass(345, "/m/08j51y", "Dental drill, dentist's drill")
    assert classes[-1] == AudioSetClass(526, "/m/07hvw1", "Field recording")
    index = F.audioset_class_index(classes)
    segs = F.read_audioset_segments(REAL / "balanced_train_segments.csv")
    assert all(label in index for s in segs for label in s.positive_labels)


# ------------------------------------------------------------------------------------------
# DESED / DCASE


def test_dcase_weak_and_unlabeled_real():
    weak = F.read_dcase_weak(REAL / "weak.tsv")
    assert len(weak) == 200
    assert weak[0] == WeakLabel("YKK227gPpRn4_30.000_40.000.wav", ("Alarm_bell_ringing", "Speech"))
    assert weak[1] == WeakLabel("Y-6p32k2WUCs_0.000_10.000.wav", ("Alarm_bell_ringing",))
    assert weak[-1] == WeakLabel("Y3N0eacoj16s_6.000_16.000.wav", ("Cat",))
    names = F.read_dcase_unlabeled(REAL / "unlabel_in_domain.tsv")
    assert len(names) == 200
    assert names[0] == "Y--CE2f-ttEQ_30.000_40.000.wav" and names[-1] == "Y-dFvAqdLaM8_30.000_40.000.wav"


@pytest.mark.parametrize("name, n_files, first, last", [
    ("synthetic.tsv", 52, LabeledEvent("10.wav", 0.2871594438738916, 1.0577124645624223, "Alarm_bell_ringing"),
     LabeledEvent("1096.wav", 0.0019666546476342084, 0.3179756546476342, "Alarm_bell_ringing")),
    ("validation.tsv", 76, LabeledEvent("Y00pbt6aJV8Y_350.000_360.000.wav", 0.0, 9.971, "Vacuum_cleaner"),
     LabeledEvent("Y4e0riwTv0xY_170.000_180.000.wav", 0.667, 1.059, "Dishes")),
    ("public.tsv", 48, LabeledEvent("1Ro0FgMWTUE_120_130.wav", 0.0, 2.081, "Speech"),
     LabeledEvent("wCozR52qd6s_3_13.wav", 0.0, 10.0, "Vacuum_cleaner")),
])
def test_dcase_strong_real(name, n_files, first, last):
    labels = F.read_dcase_strong(REAL / name)
    assert len(labels.events) == 200 and len(labels.files) == n_files
    assert labels.events[0] == first and labels.events[-1] == last
    assert labels.files[0] == first.filename and labels.files[-1] == last.filename
    assert labels.empty_files == ()


def test_dcase_strong_empty_rows(tmp_path):
    p = tmp_path / "validation.tsv"
    text = ("filename\tonset\toffset\tevent_label\n"
            "Yclip_a_0.000_10.000.wav\t0.500\t2.000\tDog\n"
            "Yclip_a_0.000_10.000.wav\t3.000\t4.250\tSpeech\n"
            "Yquiet_30.000_40.000.wav\t\t\t\n"
            "10.wav\t0.000\t10.000\tFrying\n")
    p.write_text(text)
    labels = F.read_dcase_strong(p)
    assert labels.files == ("Yclip_a_0.000_10.000.wav", "Yquiet_30.000_40.000.wav", "10.wav")
    assert labels.empty_files == ("Yquiet_30.000_40.000.wav",)
    assert labels.events == (LabeledEvent("Yclip_a_0.000_10.000.wav", 0.5, 2.0, "Dog"),
                             LabeledEvent("Yclip_a_0.000_10.000.wav", 3.0, 4.25, "Speech"),
                             LabeledEvent("10.wav", 0.0, 10.0, "Frying"))
    assert labels.events_for("Yquiet_30.000_40.000.wav") == ()
    # the shared reader agrees on the events
    from models.core.events import read_strong_tsv
    assert tuple(read_strong_tsv(p)) == labels.events
    # and the writer puts the empty row back where it was
    F.write_dcase_strong(tmp_path / "out.tsv", labels)
    assert (tmp_path / "out.tsv").read_text() == text
    # a half-empty row is an error
    p.write_text("filename\tonset\toffset\tevent_label\nx.wav\t1.0\t\tDog\n")
    with pytest.raises(ValueError, match=r"validation\.tsv:2: onset, offset and event_label"):
        F.read_dcase_strong(p)
    p.write_text("filename\tonset\toffset\tevent_label\nx.wav\t2.0\t1.0\tDog\n")
    with pytest.raises(ValueError, match=r"validation\.tsv:2: .*precedes"):
        F.read_dcase_strong(p)


# ------------------------------------------------------------------------------------------
# Writers reproduce every real file byte for byte

BYTE_CASES = [
    ("vggsound.csv", F.read_vggsound_csv, F.write_vggsound_csv, {}),
    ("test.csv", F.read_vggsound_split_csv, F.write_vggsound_split_csv, {}),
    ("stat.csv", F.read_vggsound_stat, F.write_vggsound_stat, {}),
    ("EPIC_100_validation.csv", F.read_epic100_annotations, F.write_epic100_annotations, {}),
    ("EPIC_100_test_timestamps.csv", F.read_epic100_annotations, F.write_epic100_annotations, {}),
    ("EPIC_100_noun_classes.csv", F.read_epic100_classes, F.write_epic100_classes, {}),
    ("EPIC_100_video_info.csv", F.read_epic100_video_info, F.write_epic100_video_info, {}),
    ("EPIC_Sounds_validation.csv", F.read_epic_sounds, F.write_epic_sounds, {}),
    ("EPIC_Sounds_recognition_test_timestamps.csv", F.read_epic_sounds, F.write_epic_sounds, {}),
    ("sound_events_not_categorised.csv", F.read_epic_sounds, F.write_epic_sounds, {}),
    ("esc50.csv", F.read_esc50, F.write_esc50, {"layout": "older"}),
    ("balanced_train_segments.csv", F.read_audioset_segments, F.write_audioset_segments, {"layout": "plain"}),
    ("class_labels_indices.csv", F.read_audioset_class_labels, F.write_audioset_class_labels, {}),
    ("weak.tsv", F.read_dcase_weak, F.write_dcase_weak, {}),
    ("unlabel_in_domain.tsv", F.read_dcase_unlabeled, F.write_dcase_unlabeled, {}),
    ("synthetic.tsv", F.read_dcase_strong, F.write_dcase_strong, {"decimals": None}),
    ("validation.tsv", F.read_dcase_strong, F.write_dcase_strong, {}),
    ("public.tsv", F.read_dcase_strong, F.write_dcase_strong, {}),
]


@pytest.mark.parametrize("name, read, write, kwargs", BYTE_CASES, ids=[c[0] for c in BYTE_CASES])
def test_writer_reproduces_real_file(tmp_path, name, read, write, kwargs):
    records = read(REAL / name)
    write(tmp_path / name, records, **kwargs)
    assert (tmp_path / name).read_bytes() == (REAL / name).read_bytes()
    assert read(tmp_path / name) == records


def test_writer_epic_verb_classes_canonical(tmp_path):
    """Byte-identical but for the one source line with a missing space after a comma."""
    verbs = F.read_epic100_classes(REAL / "EPIC_100_verb_classes.csv")
    F.write_epic100_classes(tmp_path / "v.csv", verbs)
    real = (REAL / "EPIC_100_verb_classes.csv").read_bytes().replace(b"'slice-into','slice-of'",
                                                                     b"'slice-into', 'slice-of'")
    assert (tmp_path / "v.csv").read_bytes() == real
    assert F.read_epic100_classes(tmp_path / "v.csv") == verbs


# ------------------------------------------------------------------------------------------
# Round trips on generated records

ODD_IDS = ["-0_-x-_y_", "--a_b", "_leading_", "a-b_c-d_e", "x" * 11]


def test_vggsound_round_trip(tmp_path):
    labels = ["bee, wasp, etc. buzzing", 'say "hi", then leave', "plain", "playing violin, fiddle", "x"]
    clips = [VggSoundClip(y, s, lab, sp) for y, s, lab, sp in
             zip(ODD_IDS, [0, 7, 123456, 1000000, 30], labels, ["train", "test", "train", "test", "train"])]
    F.write_vggsound_csv(tmp_path / "vggsound.csv", clips)
    assert F.read_vggsound_csv(tmp_path / "vggsound.csv") == clips
    F.write_vggsound_split_csv(tmp_path / "train.csv", clips)
    assert F.read_vggsound_split_csv(tmp_path / "train.csv", split=None) == [
        VggSoundClip(c.ytid, c.start, c.label) for c in clips]
    stat = [VggSoundClass(lab, i, "cat, with comma") for i, lab in enumerate(labels)]
    F.write_vggsound_stat(tmp_path / "stat.csv", stat)
    assert not (tmp_path / "stat.csv").read_bytes().endswith(b"\n")
    assert F.read_vggsound_stat(tmp_path / "stat.csv") == stat


def test_epic100_round_trip(tmp_path):
    rows = [EpicNarration("P01_01_0", "P01", "P01_01", 0.001, 0.0, 1.5, 0, 89, "take plate, quickly", "take", 0,
                          "plate", 2, ("plate",), (2,)),
            EpicNarration("P99_123_45", "P99", "P99_123", 3725.123, 3724.99, 3999.01, 223000, 239700,
                          "put 'this' into bin", "put-into", 1, "bin", 36, ("this", "bin", "o'clock"), (5, 36, 7)),
            EpicNarration("P02_02_1", "P02", "P02_02", 360000.5, 360000.25, 360001.0, 1, 2, "", "x", 96, "", 299,
                          (), ())]
    F.write_epic100_annotations(tmp_path / "a.csv", rows)
    assert F.read_epic100_annotations(tmp_path / "a.csv") == rows
    test_rows = [EpicNarration(*(getattr(r, k) for k in F.epic.EPIC100_TEST_COLUMNS)) for r in rows]
    F.write_epic100_annotations(tmp_path / "t.csv", test_rows)
    assert (tmp_path / "t.csv").read_text().splitlines()[0] == ",".join(F.epic.EPIC100_TEST_COLUMNS)
    assert F.read_epic100_annotations(tmp_path / "t.csv") == test_rows
    with pytest.raises(ValueError, match="needs verb/noun labels"):
        F.write_epic100_annotations(tmp_path / "x.csv", test_rows, with_labels=True)
    classes = [EpicClass(0, "take", ("take", "grab-from", "it's"), "retrieve, get"), EpicClass(1, "x", (), "y")]
    F.write_epic100_classes(tmp_path / "c.csv", classes)
    assert F.read_epic100_classes(tmp_path / "c.csv") == classes
    videos = [EpicVideoInfo("P01_01", 1652.152817, 59.9400599400599, "1920x1080"),
              EpicVideoInfo("P02_01", 0.1 + 0.2, 50.0, "1280x720")]
    F.write_epic100_video_info(tmp_path / "v.csv", videos)
    assert F.read_epic100_video_info(tmp_path / "v.csv") == videos


def test_timestamps():
    assert F.parse_hms("00:13:07.21") == 787.21
    assert F.parse_hms("01:00:00.001") == 3600.001
    assert F.parse_hms("00:00:05") == 5.0
    for seconds, decimals in [(787.21, 2), (3600.001, 3), (0.0, 2), (359999.99, 2), (0.125, 3)]:
        assert F.parse_hms(F.format_hms(seconds, decimals)) == seconds
    assert F.format_hms(787.21, 2) == "00:13:07.21" and F.format_hms(98.106, 3) == "00:01:38.106"
    with pytest.raises(ValueError, match="HH:MM:SS"):
        F.parse_hms("13:07.21")


def test_epic_sounds_round_trip(tmp_path):
    full = [EpicSoundsSegment("P01_11_0", "P01", "P01_11", 2.069, 2.993, 49656, 71832, "clang, clatter",
                              "ceramic / wood collision", 34),
            EpicSoundsSegment("P09_100_7", "P09", "P09_100", 4000.5, 4001.25, 96012000, 96030000, 'a "quoted" one',
                              "water", 5)]
    for layout, n in [("annotations", 10), ("not_categorised", 8), ("test_timestamps", 7)]:
        records = [EpicSoundsSegment(*[getattr(s, f) for f in list(s.__dataclass_fields__)[:n]]) for s in full]
        F.write_epic_sounds(tmp_path / f"{layout}.csv", records)
        assert (tmp_path / f"{layout}.csv").read_text().splitlines()[0] == ",".join(
            F.epic_sounds.EPIC_SOUNDS_LAYOUTS[layout])
        assert F.read_epic_sounds(tmp_path / f"{layout}.csv") == records


def test_esc50_round_trip(tmp_path):
    clips = [Esc50Clip(f"{fold}-{100 + t}-B-{t}.wav", fold, t, f"class_{t}", t % 2 == 0, str(100 + t), "B")
             for fold, t in [(1, 0), (2, 49), (3, 10), (4, 11), (5, 25)]]
    for layout in ("current", "older"):
        F.write_esc50(tmp_path / f"{layout}.csv", clips, layout=layout)
        assert F.read_esc50(tmp_path / f"{layout}.csv") == clips
    assert F.esc50_class_names(clips[:1]) == ["class_0"]


def test_audioset_round_trip(tmp_path):
    segs = [AudioSetSegment("--PJHxphWEs", 30.0, 40.0, ("/m/09x0r", "/t/dd00088")),
            AudioSetSegment("-_-_a_b-c_d", 0.0, 9.5, ("/m/012xff",)),
            AudioSetSegment("_x-", 123.25, 133.25, ())]
    for layout in ("original", "plain"):
        F.write_audioset_segments(tmp_path / f"{layout}.csv", segs, layout=layout)
        assert F.read_audioset_segments(tmp_path / f"{layout}.csv") == segs
    assert (tmp_path / "original.csv").read_text().count("\n# ") == 2
    classes = [AudioSetClass(0, "/m/09x0r", "Speech"), AudioSetClass(1, "/m/x", 'Say "a, b"'),
               AudioSetClass(2, "/t/dd00088", "Dental drill, dentist's drill")]
    F.write_audioset_class_labels(tmp_path / "c.csv", classes)
    assert F.read_audioset_class_labels(tmp_path / "c.csv") == classes


def test_dcase_round_trip(tmp_path):
    weak = [WeakLabel("Y-6p32k2WUCs_0.000_10.000.wav", ("Alarm_bell_ringing", "Speech")),
            WeakLabel("10.wav", ("Cat",)), WeakLabel("noprefix_1_2.wav", ())]
    F.write_dcase_weak(tmp_path / "weak.tsv", weak)
    assert F.read_dcase_weak(tmp_path / "weak.tsv") == weak
    labels = StrongLabels(("Y--a_0.000_10.000.wav", "quiet.wav", "10.wav"),
                          (LabeledEvent("Y--a_0.000_10.000.wav", 0.1 + 0.2, 1 / 3, "Dog"),
                           LabeledEvent("Y--a_0.000_10.000.wav", 0.0, 10.0, "Speech"),
                           LabeledEvent("10.wav", 5e-05, 9.999999, "Frying")))
    F.write_dcase_strong(tmp_path / "strong.tsv", labels, decimals=None)
    assert F.read_dcase_strong(tmp_path / "strong.tsv") == labels
    F.write_dcase_strong(tmp_path / "events.tsv", labels.events, decimals=None)  # bare events, no empty clip
    assert F.read_dcase_strong(tmp_path / "events.tsv").events == labels.events
    names = ["Y--CE2f-ttEQ_30.000_40.000.wav", "10.wav", "a b.wav"]
    F.write_dcase_unlabeled(tmp_path / "u.tsv", names)
    assert F.read_dcase_unlabeled(tmp_path / "u.tsv") == names


def test_epic_audio_hdf5(tmp_path):
    rng = np.random.default_rng(0)
    waves = {"P01_11": rng.standard_normal(24000 * 3), "P02_106": rng.standard_normal(5000).astype(np.float32)}
    path = tmp_path / "EPIC_audio.hdf5"
    F.write_epic_audio_hdf5(path, waves)
    import h5py
    with h5py.File(path, "r") as f:  # the reference layout: one 1-D float32 dataset per video at the root
        assert sorted(f.keys()) == ["P01_11", "P02_106"]
        assert f["P01_11"].dtype == np.float32 and f["P01_11"].shape == (72000,)
    with F.EpicAudioHDF5(path) as audio:
        assert audio.video_ids() == ["P01_11", "P02_106"] and len(audio) == 2 and "P01_11" in audio
        assert audio.num_samples("P02_106") == 5000 and audio.duration("P01_11") == 3.0
        seg = audio.segment("P01_11", 0.56, 1.89)
        np.testing.assert_array_equal(seg, waves["P01_11"].astype(np.float32)[13440:45360])
        assert seg.dtype == np.float32
        np.testing.assert_array_equal(audio.segment("P02_106", 0.1, 10.0), waves["P02_106"][2400:])  # cut short
        clone = pickle.loads(pickle.dumps(audio))  # DataLoader workers reopen lazily
        np.testing.assert_array_equal(clone.read("P02_106"), waves["P02_106"])
        clone.close()
        with pytest.raises(KeyError, match="P03_01"):
            audio.segment("P03_01", 0.0, 1.0)
    with pytest.raises(ValueError, match="1-D"):
        F.write_epic_audio_hdf5(tmp_path / "bad.hdf5", {"x": np.zeros((2, 2))})
    with pytest.raises(ValueError, match="not HDF5"):
        F.EpicAudioHDF5(REAL / "esc50.csv")


def test_video_folder(tmp_path):
    files = {"b/clip2.MP4": b"v2", "a/deep/x.webm": b"v1", "z.wav": b"a", "top.mkv": b"v3", "a/y.flac": b"a2"}
    written = F.write_video_folder(tmp_path, files)
    (tmp_path / "notes.txt").write_text("not media")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "h.mp4").write_bytes(b"")
    (tmp_path / "._junk.mp4").write_bytes(b"")
    assert F.read_video_folder(tmp_path, include_audio=True) == written
    videos = F.read_video_folder(tmp_path)
    assert [m.relpath for m in videos] == ["a/deep/x.webm", "b/clip2.MP4", "top.mkv"]
    assert videos[0] == MediaFile(tmp_path / "a" / "deep" / "x.webm", "a/deep/x.webm", "video")
    assert videos[1].path.read_bytes() == b"v2"
    assert [m.kind for m in F.read_video_folder(tmp_path, extensions=["wav"])] == ["audio"]
    with pytest.raises(ValueError, match="inside the root"):
        F.write_video_folder(tmp_path, {"../escape.mp4": b""})
    with pytest.raises(ValueError, match="not a media folder"):
        F.read_video_folder(tmp_path / "z.wav")


# ------------------------------------------------------------------------------------------
# Wrong files raise a ValueError naming the file, the expected layout and what was found

WRONG = [
    (F.read_vggsound_csv, "EPIC_100_video_info.csv", "ytid,start,label,split"),
    (F.read_vggsound_split_csv, "vggsound.csv", r"<ytid>_<start:06d>\.mp4,label"),
    (F.read_vggsound_stat, "test.csv", "label,count,category"),
    (F.read_epic100_annotations, "EPIC_Sounds_validation.csv", "narration_id,participant_id"),
    (F.read_epic100_classes, "EPIC_100_video_info.csv", "id,key,instances,category"),
    (F.read_epic100_video_info, "EPIC_100_noun_classes.csv", "video_id,duration,fps,resolution"),
    (F.read_epic_sounds, "EPIC_100_validation.csv", "annotation_id,participant_id"),
    (F.read_esc50, "class_labels_indices.csv", "filename,fold,target,category"),
    (F.read_audioset_segments, "esc50.csv", "YTID, start_seconds"),
    (F.read_audioset_class_labels, "balanced_train_segments.csv", "index,mid,display_name"),
    (F.read_dcase_weak, "public.tsv", "filename event_labels"),
    (F.read_dcase_strong, "weak.tsv", "filename onset offset event_label"),
    (F.read_dcase_unlabeled, "weak.tsv", "'filename'"),
]


@pytest.mark.parametrize("read, name, expected", WRONG, ids=[w[0].__name__ for w in WRONG])
def test_wrong_file_raises_named_error(read, name, expected):
    with pytest.raises(F.FormatError, match=expected) as info:
        read(REAL / name)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert str(REAL / name) in message and "expected" in message and "found" in message


def test_empty_and_bad_rows(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    for read in (F.read_vggsound_csv, F.read_epic100_annotations, F.read_esc50, F.read_audioset_segments,
                 F.read_dcase_strong):
        with pytest.raises(ValueError, match="empty.csv.*found an empty file"):
            read(empty)
    bad = tmp_path / "bad.csv"
    bad.write_text("id,key,instances,category\n0,take,not a list,retrieve\n")
    with pytest.raises(ValueError, match=r"bad\.csv:2: column 'instances'"):
        F.read_epic100_classes(bad)
    bad.write_text("--abc,12.5,people marching,train\n")
    with pytest.raises(ValueError, match=r"bad\.csv"):
        F.read_vggsound_csv(bad)


def test_registry():
    assert {"vggsound", "vggsound_split", "vggsound_stat", "epic100", "epic100_classes", "epic100_video_info",
            "epic_audio_hdf5", "epic_sounds", "esc50", "audioset_segments", "audioset_classes", "dcase_weak",
            "dcase_strong", "dcase_unlabeled", "video_folder"} == set(F.FORMATS)
    for name, (reader, writer, description) in F.FORMATS.items():
        assert callable(reader) and callable(writer) and description and "\n" not in description
    lines = F.describe_formats().splitlines()
    assert len(lines) == len(F.FORMATS) and lines[0].startswith("vggsound ")
