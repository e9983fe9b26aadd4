"""python -m apps.build_real_esc50 OUT [--media ROOT | --download]: an ESC-50-layout set of real
recordings from Debian sound packages (drum samples, game and city sound effects).

Nobody on the team made these sounds: they come from Debian ``main`` packages (DFSG-free
licences; each package's ``/usr/share/doc/<package>/copyright`` says which) fetched without
installing: ``apt-get download PACKAGE`` then ``dpkg -x PACKAGE.deb ROOT`` (``--download`` does
both into ``OUT/.debs``; ``--media ROOT`` reads a tree extracted before). Labels come from file
names (:data:`CLASSES`: a class is a set of folders and a pattern on the lower-cased name; the
first class whose rule matches takes the file). Every clip is decoded (PyAV), mixed to mono,
resampled to 44.1 kHz and cut or padded with silence to 5 s (as ESC-50's clips are); silent or
undecodable files are skipped and counted (a clip louder than full scale after resampling is
scaled to 0.999). At most ``--per-class`` clips per class (spread over
the sorted file list); classes with fewer than ``--min-per-class`` clips are left out. Folds 1-5
go round-robin over each class's clips in a hash order of the source file name, so every fold
has every class. Written: ``OUT/audio/<fold>-<source>-A-<target>.wav`` (16-bit), 
``OUT/meta/esc50.csv`` (the current header; ``esc10`` marks the first ten classes) and
``OUT/SOURCES.tsv`` (each clip's package file).
"""
from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.datasets.formats.esc50 import Esc50Clip, write_esc50
from models.datasets.from_world import write_wav
from models.io.media import MediaDecodeError, read_audio

PACKAGES = ("hydrogen-drumkits", "lmms-common", "sonic-pi-samples", "minetest-data", "supertux-data", "lincity-ng-data",
            "freeciv-data", "heroes-sound-effects")
RATE = 44_100
SECONDS = 5.0
DRUMS = ("hydrogen/data/drumkits", "lmms/samples/drums", "lmms/samples/latin", "sonic-pi/samples")
EFFECTS = ("games/minetest", "games/supertux2/sounds", "games/lincity-ng/sounds", "games/freeciv/stdsounds",
           "games/heroes/sfx", "lmms/samples/effects")
AUDIO = (".wav", ".ogg", ".flac", ".oga", ".mp3")


@dataclass(frozen=True)
class ClassRule:
    """A class: files under any of ``folders`` (relative to ``ROOT/usr/share``) whose lower-cased
    name matches ``pattern``."""

    name: str
    folders: tuple[str, ...]
    pattern: str


CLASSES = (
    ClassRule("kick drum", DRUMS, r"kick|bassdrum|^bd_|[^a-z]bd[^a-z]"),
    ClassRule("snare drum", DRUMS, r"snare|^sn_"),
    ClassRule("hi-hat", DRUMS, r"hi-?hat|(^|[^a-z])hh([^a-z]|$)"),
    ClassRule("crash cymbal", DRUMS, r"crash"),
    ClassRule("ride cymbal", DRUMS, r"ride"),
    ClassRule("tom-tom", DRUMS, r"(^|[^a-z])tom"),
    ClassRule("hand clap", DRUMS, r"clap"),
    ClassRule("cowbell", DRUMS, r"cowbell"),
    ClassRule("rimshot", DRUMS, r"rim|sidestick"),
    ClassRule("tabla", DRUMS, r"^tabla_"),
    ClassRule("tambourine", DRUMS, r"tamb"),
    ClassRule("footsteps", EFFECTS, r"footstep|^foot\d|^tread"),
    ClassRule("explosion", EFFECTS, r"explo|expl\.|lrgexpl|smlexpl"),
    ClassRule("water", EFFECTS, r"water|splash|inh2o"),
    ClassRule("fire", EFFECTS, r"^fire(_fire|_large|_small)?[.\d]|^fire\.|^flame\."),
    ClassRule("breaking", EFFECTS, r"break_glass|crash|shatter|brk\."),
)


def _files(share: Path, rule: ClassRule) -> list[Path]:
    pattern = re.compile(rule.pattern)
    out = []
    for folder in rule.folders:
        base = share / folder
        if base.is_dir():
            out += [p for p in base.rglob("*") if p.suffix.lower() in AUDIO and pattern.search(p.name.lower())]
    return sorted(out)


def read_clip(path: Path, rate: int = RATE, seconds: float = SECONDS) -> np.ndarray | None:
    """``seconds`` of mono at ``rate`` (padded with silence), or None for an undecodable or silent file."""
    try:
        audio, _ = read_audio(path, sample_rate=rate, mono=True)
    except (MediaDecodeError, ValueError, OSError, AttributeError):
        return None  # AttributeError: PyAV gives some game files an audio stream without a codec context
    n = int(rate * seconds)
    audio = np.asarray(audio[:n], np.float32)
    if audio.size == 0 or np.abs(audio).max() < 1e-4:
        return None
    out = np.zeros(n, np.float32)
    out[:audio.size] = audio / max(1.0, float(np.abs(audio).max()) / 0.999)  # resampling may overshoot full scale
    return out


def download(out: Path) -> Path:
    """``apt-get download`` the packages into ``out`` and ``dpkg -x`` each; returns the extracted root."""
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", *PACKAGES], cwd=out, check=True)
    root = out / "root"
    for deb in sorted(out.glob("*.deb")):
        subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
    return root


def build(out: Path, media: Path, per_class: int = 40, min_per_class: int = 10) -> list[Esc50Clip]:
    """Write the set; returns its records."""
    share = media / "usr" / "share"
    if not share.is_dir():
        raise FileNotFoundError(f"{media}: expected a dpkg -x tree with usr/share/ (or pass --download)")
    taken: set[Path] = set()
    chosen: list[tuple[ClassRule, list[tuple[Path, np.ndarray]]]] = []
    skipped = 0
    for rule in CLASSES:
        files = [p for p in _files(share, rule) if p.resolve() not in taken]
        clips: list[tuple[Path, np.ndarray]] = []
        # spread the picks over the sorted list (kits and packages alike), then fill up
        order = list(np.linspace(0, len(files) - 1, min(len(files), per_class)).round().astype(int)) if files else []
        order += [i for i in range(len(files)) if i not in set(order)]
        for i in order:
            if len(clips) >= per_class:
                break
            audio = read_clip(files[i])
            if audio is None:
                skipped += 1
                continue
            clips.append((files[i], audio))
            taken.add(files[i].resolve())
        if len(clips) >= min_per_class:
            chosen.append((rule, clips))
        else:
            print(f"  left out {rule.name!r}: {len(clips)} clips (< {min_per_class})", file=sys.stderr)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    records, sources = [], ["filename\tclass\tpackage file"]
    for target, (rule, clips) in enumerate(chosen):
        ranked = sorted(clips, key=lambda c: hashlib.sha256(c[0].name.encode()).hexdigest())
        for k, (path, audio) in enumerate(ranked):
            fold = k % 5 + 1
            src = re.sub(r"[^A-Za-z0-9]+", "", path.stem)[:24] + f"{target:02d}{k:03d}"
            name = f"{fold}-{src}-A-{target}.wav"
            write_wav(out / "audio" / name, audio, RATE)
            records.append(Esc50Clip(name, fold, target, rule.name, target < 10, src, "A"))
            sources.append(f"{name}\t{rule.name}\t{path.relative_to(media)}")
    records.sort(key=lambda r: (r.fold, r.filename))
    (out / "meta").mkdir(parents=True, exist_ok=True)
    write_esc50(out / "meta" / "esc50.csv", records)
    (out / "SOURCES.tsv").write_text("\n".join(sources) + "\n", encoding="utf-8")
    print(f"wrote {len(records)} clips of {len(chosen)} classes to {out} ({skipped} files skipped: silent or "
          f"undecodable)", file=sys.stderr)
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m apps.build_real_esc50", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="folder to write the ESC-50 layout into")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--media", type=Path, help="a dpkg -x tree of the packages (holds usr/share/)")
    where.add_argument("--download", action="store_true", help=f"apt-get download {' '.join(PACKAGES)} first")
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--min-per-class", type=int, default=10)
    args = parser.parse_args(argv)
    try:
        media = download(args.out / ".debs") if args.download else args.media
        build(args.out, media, args.per_class, args.min_per_class)
    except (FileNotFoundError, subprocess.CalledProcessError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
