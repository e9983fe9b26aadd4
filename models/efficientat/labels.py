"""AudioSet's 527 class names in the models' output order (``class_labels_indices.csv``, CC BY 4.0;
byte-identical to the copy in the authors' ``metadata/`` folder)."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from models.datasets.formats.audioset import read_audioset_class_labels

__all__ = ["LABEL_FILE", "audioset_labels"]

#: The label file shipped with the family (package data).
LABEL_FILE = Path(__file__).resolve().parent / "labels" / "class_labels_indices.csv"


@lru_cache(maxsize=1)
def audioset_labels() -> tuple[str, ...]:
    """The display names ordered by class index (527).

    Raises:
        FileNotFoundError: the label file is missing from the installation.
        ValueError: it is not a ``class_labels_indices.csv`` of indices 0…526.
    """
    classes = sorted(read_audioset_class_labels(LABEL_FILE), key=lambda c: c.index)
    if [c.index for c in classes] != list(range(len(classes))) or len(classes) != 527:
        raise ValueError(f"{LABEL_FILE}: expected AudioSet classes 0..526, found {len(classes)} rows "
                         f"with indices {classes[0].index}..{classes[-1].index}")
    return tuple(c.display_name for c in classes)
