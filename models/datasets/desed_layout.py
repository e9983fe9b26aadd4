"""Where a DESED-layout folder keeps its TSVs and their audio (DCASE task 4's layout)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["DESED_HELP", "DESED_LAYOUT", "DesedFiles", "find_desed_files", "looks_like_desed"]

#: (role, metadata TSV glob, audio folder for it relative to the root); the first match of each
#: glob is used.
DESED_LAYOUT = (
    ("weak", "metadata/train/weak.tsv", "audio/train/weak"),
    ("unlabelled", "metadata/train/unlabel_in_domain.tsv", "audio/train/unlabel_in_domain"),
    ("strong", "metadata/train/synthetic*/soundscapes.tsv", "audio/train/{stem}/soundscapes"),
    ("strong", "metadata/train/synthetic*.tsv", "audio/train/{stem}"),
    ("validation", "metadata/validation/validation.tsv", "audio/validation"),
)
DESED_HELP = ("a DESED layout: metadata/train/weak.tsv (+ audio/train/weak/), optional "
              "metadata/train/unlabel_in_domain.tsv (+ audio/train/unlabel_in_domain/), optional strong "
              "metadata/train/synthetic*/soundscapes.tsv (+ audio/train/synthetic*/soundscapes/), and "
              "metadata/validation/validation.tsv (+ audio/validation/)")


@dataclass(frozen=True)
class DesedFiles:
    """The TSVs and audio folders found in a DESED-layout folder (None: absent)."""

    weak: tuple[Path, Path] | None
    unlabelled: tuple[Path, Path] | None
    strong: tuple[Path, Path] | None
    validation: tuple[Path, Path]


def find_desed_files(root: Path) -> DesedFiles:
    """Locate the TSVs and their audio folders; FileNotFoundError names what is missing."""
    found: dict[str, tuple[Path, Path]] = {}
    for role, pattern, audio in DESED_LAYOUT:
        if role in found:
            continue
        matches = sorted(root.glob(pattern))
        if matches:
            tsv = matches[0]
            stem = tsv.parent.name if "{stem}" in audio and tsv.name == "soundscapes.tsv" else tsv.stem
            found[role] = (tsv, root / audio.format(stem=stem))
    if "validation" not in found:
        raise FileNotFoundError(f"{root}: no metadata/validation/validation.tsv; expected {DESED_HELP}")
    if "weak" not in found and "strong" not in found:
        raise FileNotFoundError(f"{root}: no labelled training clips (metadata/train/weak.tsv or a strong "
                                f"metadata/train/synthetic* TSV); expected {DESED_HELP}")
    for role, (tsv, audio) in found.items():
        if not audio.is_dir():
            raise FileNotFoundError(f"{audio}: no such folder for the clips of {tsv}; expected {DESED_HELP}")
    return DesedFiles(found.get("weak"), found.get("unlabelled"), found.get("strong"), found["validation"])


def looks_like_desed(root: Path) -> bool:
    """Whether ``root`` has DESED's ``metadata/validation/validation.tsv`` or ``metadata/train/*.tsv``."""
    root = Path(root)
    return (root / "metadata" / "validation" / "validation.tsv").is_file() or any((root / "metadata" / "train").glob("*.tsv"))
