"""Readers and writers for the real dataset annotation formats.

One module per dataset family; every format has a ``read_*`` returning typed frozen records
and a ``write_*`` producing a file in the real layout (line endings, quoting, final newline),
so the project can generate data every reader accepts. Readers raise :class:`FormatError`
(a ``ValueError``) naming the file, what was expected and what was found.

:data:`FORMATS` maps a format name to ``(reader, writer, description)`` for command-line
help (:func:`describe_formats`).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

from models.datasets.formats._common import FormatError, format_hms, parse_hms
from models.datasets.formats.audioset import (AUDIOSET_NUM_CLASSES, AudioSetClass, AudioSetSegment, audioset_class_index,
                       read_audioset_class_labels, read_audioset_segments, write_audioset_class_labels,
                       write_audioset_segments)
from models.datasets.formats.dcase import (StrongLabels, WeakLabel, read_dcase_strong, read_dcase_unlabeled, read_dcase_weak,
                    write_dcase_strong, write_dcase_unlabeled, write_dcase_weak)
from models.datasets.formats.epic import (EPIC100_NUM_NOUNS, EPIC100_NUM_VERBS, EPIC_AUDIO_SAMPLE_RATE, EpicAudioHDF5, EpicClass,
                   EpicNarration, EpicVideoInfo, epic_class_keys, read_epic100_annotations, read_epic100_classes,
                   read_epic100_video_info, write_epic100_annotations, write_epic100_classes,
                   write_epic100_video_info, write_epic_audio_hdf5)
from models.datasets.formats.epic_sounds import EPIC_SOUNDS_NUM_CLASSES, EpicSoundsSegment, read_epic_sounds, write_epic_sounds
from models.datasets.formats.esc50 import ESC50_FOLDS, Esc50Clip, esc50_class_names, read_esc50, write_esc50
from models.datasets.formats.video_folder import (AUDIO_EXTENSIONS, VIDEO_EXTENSIONS, MediaFile, read_video_folder,
                                                    split_video_folder, write_video_folder)
from models.datasets.formats.vggsound import (VGGSOUND_NUM_CLASSES, VggSoundClass, VggSoundClip, parse_vggsound_filename,
                       read_vggsound_csv, read_vggsound_split_csv, read_vggsound_stat, vggsound_class_order,
                       write_vggsound_csv, write_vggsound_split_csv, write_vggsound_stat)


class FormatSpec(NamedTuple):
    """A registry entry; unpacks as ``reader, writer, description``."""

    reader: Callable
    writer: Callable
    description: str


FORMATS: dict[str, FormatSpec] = {
    "vggsound": FormatSpec(read_vggsound_csv, write_vggsound_csv,
                           "VGG-Sound vggsound.csv: ytid,start,label,split (no header)"),
    "vggsound_split": FormatSpec(read_vggsound_split_csv, write_vggsound_split_csv,
                                 "VGG-Sound train.csv/test.csv: <ytid>_<start:06d>.mp4,label (no header)"),
    "vggsound_stat": FormatSpec(read_vggsound_stat, write_vggsound_stat,
                                "VGG-Sound stat.csv: label,count,category, 309 classes (no header)"),
    "epic100": FormatSpec(read_epic100_annotations, write_epic100_annotations,
                          "EPIC-KITCHENS-100 annotations (15 columns) or test timestamps (8 columns)"),
    "epic100_classes": FormatSpec(read_epic100_classes, write_epic100_classes,
                                  "EPIC-KITCHENS-100 verb/noun classes: id,key,instances,category"),
    "epic100_video_info": FormatSpec(read_epic100_video_info, write_epic100_video_info,
                                     "EPIC-KITCHENS-100 video info: video_id,duration,fps,resolution"),
    "epic_audio_hdf5": FormatSpec(EpicAudioHDF5, write_epic_audio_hdf5,
                                  "EPIC audio: one HDF5 file, one 1-D float32 24 kHz dataset per video_id"),
    "epic_sounds": FormatSpec(read_epic_sounds, write_epic_sounds,
                              "EPIC-SOUNDS annotations, recognition test timestamps or not-categorised csv"),
    "esc50": FormatSpec(read_esc50, write_esc50,
                        "ESC-50 metadata, current (target,category) or older (category,category_name) header"),
    "audioset_segments": FormatSpec(read_audioset_segments, write_audioset_segments,
                                    "AudioSet *_segments.csv, original (3 '#' lines, ', ') or plain-header layout"),
    "audioset_classes": FormatSpec(read_audioset_class_labels, write_audioset_class_labels,
                                   "AudioSet class_labels_indices.csv: index,mid,display_name (527)"),
    "dcase_weak": FormatSpec(read_dcase_weak, write_dcase_weak,
                             "DESED/DCASE weak TSV: filename<TAB>event_labels (comma-joined)"),
    "dcase_strong": FormatSpec(read_dcase_strong, write_dcase_strong,
                               "DESED/DCASE strong TSV: filename onset offset event_label (empty row = no event)"),
    "dcase_unlabeled": FormatSpec(read_dcase_unlabeled, write_dcase_unlabeled,
                                  "DESED/DCASE unlabeled TSV: filename"),
    "video_folder": FormatSpec(read_video_folder, write_video_folder,
                               "folder of media files, recursive: mp4 mkv webm avi mov (+ wav flac ogg mp3)"),
}


def describe_formats() -> str:
    """One line per registered format (``name  description``), for ``--help`` text."""
    width = max(map(len, FORMATS))
    return "\n".join(f"{name:<{width}}  {spec.description}" for name, spec in FORMATS.items())


__all__ = [
    "FORMATS", "FormatSpec", "FormatError", "describe_formats", "format_hms", "parse_hms",
    # VGG-Sound
    "VggSoundClip", "VggSoundClass", "VGGSOUND_NUM_CLASSES", "parse_vggsound_filename", "read_vggsound_csv",
    "write_vggsound_csv", "read_vggsound_split_csv", "write_vggsound_split_csv", "read_vggsound_stat",
    "write_vggsound_stat", "vggsound_class_order",
    # EPIC-KITCHENS-100
    "EpicNarration", "EpicClass", "EpicVideoInfo", "EpicAudioHDF5", "EPIC100_NUM_VERBS", "EPIC100_NUM_NOUNS",
    "EPIC_AUDIO_SAMPLE_RATE", "read_epic100_annotations", "write_epic100_annotations", "read_epic100_classes",
    "write_epic100_classes", "read_epic100_video_info", "write_epic100_video_info", "epic_class_keys",
    "write_epic_audio_hdf5",
    # EPIC-SOUNDS
    "EpicSoundsSegment", "EPIC_SOUNDS_NUM_CLASSES", "read_epic_sounds", "write_epic_sounds",
    # ESC-50
    "Esc50Clip", "ESC50_FOLDS", "read_esc50", "write_esc50", "esc50_class_names",
    # AudioSet
    "AudioSetSegment", "AudioSetClass", "AUDIOSET_NUM_CLASSES", "read_audioset_segments", "write_audioset_segments",
    "read_audioset_class_labels", "write_audioset_class_labels", "audioset_class_index",
    # DESED / DCASE
    "WeakLabel", "StrongLabels", "read_dcase_weak", "write_dcase_weak", "read_dcase_strong", "write_dcase_strong",
    "read_dcase_unlabeled", "write_dcase_unlabeled",
    # media folders
    "MediaFile", "VIDEO_EXTENSIONS", "AUDIO_EXTENSIONS", "read_video_folder", "split_video_folder", "write_video_folder",
]
