"""python -m apps.build_real_sounds OUT: a labelled set of real everyday sounds from Debian
packages, as ESC-50 clips and as DCASE soundscapes with strong labels.

Nobody on the team made these sounds. They come from Debian ``main`` packages (DFSG-free
licences), fetched without installing: ``apt-get download`` then ``dpkg -x`` of each package
into its own folder of the cache (``--cache``, default ``~/.cache/avlive/debian-sounds``; a
package extracted before is not fetched again; ``--debs DIR`` takes ``.deb`` files from DIR
instead of downloading). Every output file is listed with its package, path and licence.

**Classes** (:data:`CLASSES`) are coarse everyday sounds a microphone hears (speech, keyboard
typing, footsteps, a door, water, fire, an explosion, breaking, a bell or alarm, drums, cymbals,
instrument notes, a shouting voice, animals, weapons clashing). A class is a set of rules; a
rule names a package, a folder under its ``usr/share`` and a pattern on the lower-cased file
name; the first class whose rule matches takes the file. Labels come from those names, nothing
else. Every file is grouped by the recording it is a take of (``src_file``: the name without its
take number, the drum kit a hit belongs to, the key a keyboard sample records), so takes of one
recording are never split between folds.

**ESC-50 part** (``OUT/esc50``): each file decoded (PyAV), mixed to mono, resampled to 44.1 kHz,
cut or padded to 5 s, started at its first sounding 10 ms; silent files (peak below -80 dBFS),
files that are not audio and files whose sound is shorter than ``--min-sound`` are left out and
counted. At most ``--per-class`` clips a class, spread over its groups; a class with fewer than
``--min-clips`` clips or ``--min-groups`` groups is left out with a line saying so. Folds 1-5
go round robin over each class's groups in a hash order of the group name. Written:
``audio/<fold>-<src>-<take>-<target>.wav``, ``meta/esc50.csv``.

**Soundscape part** (``OUT/desed``): soundscapes of ``--seconds`` (default 10 s, as DESED's) in the DESED layout, each a real ambient
bed (:data:`BEDS`: city, harbour, farm, night recordings) with one to ``--max-events`` sounds of
the ESC-50 part mixed in at 0-20 dB above the bed, strong labels from each sound's sounding
extent. Training soundscapes draw sounds from folds 1-3, validation from fold 4, and the held-out
``eval`` set from fold 5, so no recording is in two of them (``--eval-fold K`` holds out fold K
instead, with the fold before it for validation and the other three for training: the rotation
``apps.cv_real_sounds`` uses for 5-fold cross-validation). Written as the CRNN reads it:
``metadata/train/synthetic.tsv`` + ``audio/train/synthetic/``, ``metadata/validation/validation.tsv``
+ ``audio/validation/``, ``metadata/eval/eval.tsv`` + ``audio/eval/``.

Also written: ``OUT/SOURCES.tsv`` (every clip and bed: package, path in the package, licence)
and ``OUT/TABLE.md`` (classes, clips, groups, packages). The build is deterministic (``--seed``).

Example::

    python -m apps.build_real_sounds out/real-sounds
    python -m models.train --recipe crnn-lite --data out/real-sounds/desed clip_seconds=10
    python -m apps.build_real_sounds out/real-sounds-5s --seconds 5 --soundscapes 960 96 96
"""
from __future__ import annotations

import argparse
import fnmatch
import hashlib
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from apps.build_real_esc50 import AUDIO, read_clip
from models.core.events import LabeledEvent
from models.datasets.formats.dcase import write_dcase_strong
from models.datasets.formats.esc50 import Esc50Clip, write_esc50
from models.datasets.from_world import write_wav

RATE = 44_100
CLIP_SECONDS = 5.0
SCAPE_SECONDS = 10.0
FRAME = 441  # 10 ms at RATE: the resolution of the sounding extent
SOUNDING_DB = -35.0  # a 10 ms frame sounds when its RMS is within this of the clip's loudest frame
SILENT_PEAK = 1e-4  # -80 dBFS


@dataclass(frozen=True)
class Rule:
    """Files of ``package`` under ``usr/share/<folder>`` whose lower-cased name matches ``pattern``;
    ``group``: how takes are grouped into recordings (``stem``: the name less its take number,
    ``folder``: the parent folder, e.g. a drum kit; ``key``: the text before the first ``-``)."""

    package: str
    folder: str
    pattern: str
    group: str = "stem"


@dataclass(frozen=True)
class SoundClass:
    name: str
    rules: tuple[Rule, ...]


DRUM_KITS = (Rule("hydrogen-drumkits", "hydrogen/data/drumkits", "", "folder"),
             Rule("lmms-common", "lmms/samples/drums", ""), Rule("sonic-pi-samples", "sonic-pi/samples", ""))
WESNOTH = "games/wesnoth/1.16/data/core/sounds"
FREEDESKTOP = "sounds/freedesktop/stereo"


def _kit(pattern: str) -> tuple[Rule, ...]:
    return tuple(Rule(r.package, r.folder, pattern, r.group) for r in DRUM_KITS)


CLASSES = (
    SoundClass("speech", (
        Rule("asterisk-core-sounds-en-wav", "asterisk/sounds/en_US_f_Allison", r"^[a-z][a-z-]+\.wav$"),
        Rule("alsa-utils", "sounds/alsa", r"^(front|rear|side)_"),
        Rule("sound-theme-freedesktop", FREEDESKTOP, r"^audio-channel-"))),
    SoundClass("keyboard typing", (Rule("bucklespring-data", "buckle/wav", r"^[0-9a-f]+-[01]\.wav$", "key"),
                                   Rule("bambam", "bambam/data", r"keyclick"))),
    SoundClass("footsteps", (Rule("minetest-data", "games/minetest", r"footstep"),
                             Rule("freeciv-data", "games/freeciv/stdsounds", r"^(foot3|tread)\."))),
    SoundClass("door", (Rule("minetest-data", "games/minetest", r"door_(open|close)|fencegate_|chest_(open|close)"),
                        Rule("supertux-data", "games/supertux2/sounds", r"^door\."),
                        Rule("wesnoth-1.16-data", WESNOTH, r"^open-chest\."))),
    SoundClass("water", (Rule("minetest-data", "games/minetest", r"env_sounds_water"),
                         Rule("supertux-data", "games/supertux2/sounds", r"^(splash|waterfall)\."),
                         Rule("freeciv-data", "games/freeciv/stdsounds", r"^(splash|inh2o)\."),
                         Rule("wesnoth-1.16-data", WESNOTH, r"^water-blast\."),
                         Rule("sound-icons", "sounds/sound-icons", r"glass-water"))),
    SoundClass("fire", (Rule("minetest-data", "games/minetest", r"^fire_(fire|large|small)|gunpowder_burning"),
                        Rule("wesnoth-1.16-data", WESNOTH, r"^(fire|torch|flame-big|melee-fire|campfire)\."),
                        Rule("supertux-data", "games/supertux2/sounds", r"^(fire|flame)\."),
                        Rule("lincity-ng-data", "games/lincity-ng/sounds", r"^fire\d"))),
    SoundClass("explosion", (Rule("minetest-data", "games/minetest", r"tnt_explode"),
                             Rule("freeciv-data", "games/freeciv/stdsounds", r"^(lrgexpl|smlexpl|lrgcan|medcan|mortar)\."),
                             Rule("supertux-data", "games/supertux2/sounds", r"^(explosion|firecracker)\."),
                             Rule("wesnoth-1.16-data", WESNOTH, r"^(explosion|cave-in)\."),
                             Rule("heroes-sound-effects", "games/heroes/sfx", r"^explo"),
                             Rule("bambam", "bambam/data", r"^boom\."))),
    SoundClass("breaking", (Rule("minetest-data", "games/minetest", r"break_glass|tool_breaks"),
                            Rule("freeciv-data", "games/freeciv/stdsounds", r"^(metbrk|woodbrk)\."),
                            Rule("supertux-data", "games/supertux2/sounds", r"^(icecrash|crystallo-shatter|cracking)\."))),
    SoundClass("bell or alarm", (
        Rule("sound-theme-freedesktop", FREEDESKTOP, r"^(bell|alarm-clock|phone-|complete|message|window-attention)"),
        Rule("supertux-data", "games/supertux2/sounds", r"^(savebell|phone)"),
        Rule("bambam", "bambam/data", r"typewriterbell"),
        Rule("heroes-sound-effects", "games/heroes/sfx", r"^(claxon|clock)"))),
    SoundClass("drum", _kit(r"kick|bassdrum|^bd_|snare|^sn_|(^|[^a-z])tom|^drum_(bass|snare|tom)")),
    SoundClass("cymbal", _kit(r"hi-?hat|(^|[^a-z])hh([^a-z]|$)|crash|ride|cymbal")),
    SoundClass("instrument", (
        Rule("sound-icons", "sounds/sound-icons",
             r"^(piano|cembalo|guitar|trumpet|violoncello|xylofon|klavichord|electric-piano)"),
        Rule("lmms-common", "lmms/samples/instruments", ""),
        Rule("sonic-pi-samples", "sonic-pi/samples", r"^guit_"))),
    SoundClass("shout or groan", (
        Rule("wesnoth-1.16-data", WESNOTH, r"^(human|human-female|human-old|dwarf|elf|orc|orc-small|goblin|troll|ogre)"
                                          r"-(hit|die)|^(groan|ugg|dwarf-laugh)\."),
        Rule("heroes-sound-effects", "games/heroes/sfx", r"^(ho_yeh|oh)\."))),
    SoundClass("animal", (Rule("wesnoth-1.16-data", WESNOTH, r"^(wolf|horse|bat|gryphon|tusker)-|birds\d"),
                          Rule("sound-icons", "sounds/sound-icons", r"^(canary|cockchafer|gummy-cat)"))),
    SoundClass("weapon clash", (
        Rule("wesnoth-1.16-data", WESNOTH, r"^(sword|axe|mace|knife|dagger|hatchet|flail|spear|staff|club)"),)),
)

#: Ambient beds for the soundscapes: long real recordings with no class's sound in them.
BEDS = (Rule("lincity-ng-data", "games/lincity-ng/sounds",
             r"^(farm|harbor|green|commune|parkland|market|industry|mill|railtrain|monument|pottery)"),
        Rule("wesnoth-1.16-data", f"{WESNOTH}/ambient", r"^(morning|night|ship)\."))

PACKAGES = tuple(sorted({r.package for c in CLASSES for r in c.rules} | {r.package for r in BEDS}))


# ------------------------------------------------------------------ packages
def fetch_packages(cache: Path, debs: Path | None = None) -> dict[str, Path]:
    """``{package: extracted root}``, fetching and extracting what the cache lacks."""
    cache.mkdir(parents=True, exist_ok=True)
    roots = {}
    for package in PACKAGES:
        root = cache / package
        if not (root / ".done").exists():
            deb = _deb_for(package, cache / "debs", debs)
            subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
            (root / ".done").write_text(deb.name + "\n")
        roots[package] = root
    return roots


def _deb_for(package: str, download_dir: Path, debs: Path | None) -> Path:
    for folder in filter(None, (debs, download_dir)):
        found = sorted(folder.glob(f"{package}_*.deb"))
        if found:
            return found[-1]
    download_dir.mkdir(parents=True, exist_ok=True)
    print(f"apt-get download {package}", file=sys.stderr)
    subprocess.run(["apt-get", "download", package], cwd=download_dir, check=True)
    return sorted(download_dir.glob(f"{package}_*.deb"))[-1]


def _stanzas(text: str) -> list[tuple[list[str], str]]:
    """(Files patterns, licence name) of each DEP-5 stanza that has both."""
    out = []
    for block in re.split(r"\n\s*\n", text):
        files = re.search(r"^Files:(.*(?:\n[ \t]+.*)*)", block, flags=re.MULTILINE)
        licence = re.search(r"^License:\s*(\S.*)$", block, flags=re.MULTILINE)
        if files and licence:
            out.append((files.group(1).split(), licence.group(1).strip()))
    return out


def file_licence(root: Path, package: str, path: Path) -> str:
    """The licence the package's ``copyright`` file gives ``path`` (a machine-readable file: the
    last stanza whose ``Files:`` pattern matches the end of the installed path; otherwise the
    file's first licence line, or a pointer to the file)."""
    copyright_path = root / "usr" / "share" / "doc" / package / "copyright"
    where = f"see /usr/share/doc/{package}/copyright"
    try:
        text = copyright_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return where
    stanzas = _stanzas(text)
    if not stanzas:
        named = re.search(r"common-licenses/([\w.+-]+)", text)
        return f"{named.group(1)} ({where})" if named else where
    installed = "/" + path.relative_to(root).as_posix()
    found = where
    for patterns, licence in stanzas:
        # a Hydrogen kit is packed as KIT.h2drumkit in the source and installed as the folder KIT/
        globs = [pattern.removesuffix(".h2drumkit") + "/*" if pattern.endswith(".h2drumkit") else pattern
                 for pattern in patterns]
        if any(g == "*" or fnmatch.fnmatch(installed, "*/" + g.lstrip("./")) for g in globs):
            found = licence
    return found


def _matches(roots: dict[str, Path], rule: Rule) -> list[Path]:
    if rule.package not in roots:
        return []
    base = roots[rule.package] / "usr" / "share" / rule.folder
    pattern = re.compile(rule.pattern)
    if not base.is_dir():
        return []
    return sorted(p for p in base.rglob("*")
                  if p.is_file() and p.suffix.lower() in AUDIO and pattern.search(p.name.lower()))


def group_of(path: Path, how: str) -> str:
    """The recording a file is a take of (see :class:`Rule`)."""
    if how == "folder":
        return path.parent.name
    stem = path.stem.lower()
    if how == "key":
        return stem.split("-")[0]
    while True:
        shorter = re.sub(r"[-_. ]*\d+$", "", stem)
        if shorter == stem or not shorter:
            return stem
        stem = shorter


# ------------------------------------------------------------------ sounds
def sounding_extent(audio: np.ndarray) -> tuple[int, int] | None:
    """(first, end) sample of the 10 ms frames within ``SOUNDING_DB`` of the loudest; None if silent."""
    if audio.size == 0 or np.abs(audio).max() < SILENT_PEAK:
        return None
    n = audio.size // FRAME
    rms = np.sqrt(np.mean(audio[:n * FRAME].reshape(n, FRAME).astype(np.float64) ** 2, axis=1) + 1e-20)
    on = np.flatnonzero(20 * np.log10(rms / rms.max()) > SOUNDING_DB)
    return int(on[0]) * FRAME, int(on[-1] + 1) * FRAME


@dataclass
class Sound:
    """One ESC-50 clip: its 5 s audio, sounding extent and where it came from."""

    cls: int
    path: Path
    package: str
    group: str
    audio: np.ndarray
    extent: tuple[int, int]
    fold: int = 0
    name: str = ""


def _decode_sound(path: Path, min_sound: float) -> tuple[np.ndarray, tuple[int, int]] | str:
    long = read_clip(path, RATE, 60.0)
    if long is None:
        return "silent or not audio"
    extent = sounding_extent(long)
    if extent is None:
        return "silent or not audio"
    start = extent[0]
    clip = np.zeros(int(RATE * CLIP_SECONDS), np.float32)
    piece = long[start:start + clip.size]
    clip[:piece.size] = piece
    extent = sounding_extent(clip)
    if extent is None or (extent[1] - extent[0]) / RATE < min_sound:
        return "too short"
    return clip, extent


def collect(roots: dict[str, Path], per_class: int, min_clips: int, min_groups: int,
            min_sound: float = 0.1) -> tuple[list[SoundClass], list[Sound], dict[str, int]]:
    """The kept classes and their sounds (folds assigned), and counts of files left out by reason."""
    taken: set[Path] = set()
    kept, sounds, left_out = [], [], {"silent or not audio": 0, "too short": 0}
    for sound_class in CLASSES:
        by_group: dict[str, list[tuple[Path, str]]] = {}
        for rule in sound_class.rules:
            for path in _matches(roots, rule):
                if path.resolve() not in taken:
                    taken.add(path.resolve())
                    by_group.setdefault(f"{rule.package}:{group_of(path, rule.group)}", []).append((path, rule.package))
        # one take per group in turn, so the cap spreads over recordings
        groups = sorted(by_group, key=lambda g: hashlib.sha256(g.encode()).hexdigest())
        chosen: list[Sound] = []
        depth = 0
        while len(chosen) < per_class and any(depth < len(by_group[g]) for g in groups):
            for g in groups:
                if depth < len(by_group[g]) and len(chosen) < per_class:
                    path, package = by_group[g][depth]
                    got = _decode_sound(path, min_sound)
                    if isinstance(got, str):
                        left_out[got] += 1
                        continue
                    chosen.append(Sound(len(kept), path, package, g, got[0], got[1]))
            depth += 1
        n_groups = len({s.group for s in chosen})
        if len(chosen) < min_clips or n_groups < min_groups:
            print(f"  left out {sound_class.name!r}: {len(chosen)} clips from {n_groups} recordings "
                  f"(needs {min_clips} from {min_groups})", file=sys.stderr)
            continue
        order = sorted({s.group for s in chosen}, key=lambda g: hashlib.sha256(g.encode()).hexdigest())
        fold_of = {g: k % 5 + 1 for k, g in enumerate(order)}
        for s in chosen:
            s.cls, s.fold = len(kept), fold_of[s.group]
        kept.append(sound_class)
        sounds += chosen
    return kept, sounds, left_out


# ------------------------------------------------------------------ writers
def _src_name(group: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "", group.split(":", 1)[1])[:20] or "x"


def write_esc50_part(out: Path, classes: list[SoundClass], sounds: list[Sound]) -> None:
    (out / "audio").mkdir(parents=True, exist_ok=True)
    records, takes = [], {}
    for s in sorted(sounds, key=lambda s: (s.cls, s.group, s.path.name)):
        src = f"{_src_name(s.group)}{hashlib.sha256(s.group.encode()).hexdigest()[:4]}"
        take = takes.get(src, 0)
        takes[src] = take + 1
        s.name = f"{s.fold}-{src}-{chr(ord('A') + take % 26)}{take // 26 or ''}-{s.cls}.wav"
        write_wav(out / "audio" / s.name, s.audio, RATE)
        records.append(Esc50Clip(s.name, s.fold, s.cls, classes[s.cls].name, s.cls < 10, src, s.name.split("-")[2]))
    records.sort(key=lambda r: (r.fold, r.filename))
    (out / "meta").mkdir(parents=True, exist_ok=True)
    write_esc50(out / "meta" / "esc50.csv", records)


def bed_audio(roots: dict[str, Path]) -> list[tuple[Path, str, np.ndarray]]:
    beds = []
    for rule in BEDS:
        for path in _matches(roots, rule):
            audio = read_clip(path, RATE, 60.0)
            if audio is not None and sounding_extent(audio) is not None:
                used = audio[:sounding_extent(audio)[1]]
                if used.size >= RATE:  # at least a second to loop
                    beds.append((path, rule.package, used))
    return beds


def _soundscape(rng: np.random.Generator, beds, pool: list[Sound], classes: list[SoundClass],
                max_events: int, seconds: float) -> tuple[np.ndarray, list[tuple[str, float, float]], int]:
    n = int(RATE * seconds)
    b = int(rng.integers(len(beds)))
    bed = beds[b][2]
    start = int(rng.integers(bed.size))
    bed = np.resize(np.roll(bed, -start), n).astype(np.float64)  # looped from a random point
    bed *= 0.02 / (np.sqrt(np.mean(bed ** 2)) + 1e-12)  # -34 dBFS RMS
    mix, events = bed.copy(), []
    for _ in range(int(rng.integers(1, max_events + 1))):
        s = pool[int(rng.integers(len(pool)))]
        piece = s.audio[s.extent[0]:s.extent[1]][: int(RATE * min(4.0, 0.8 * seconds))].astype(np.float64)
        at = int(rng.integers(0, n - piece.size))
        snr_db = rng.uniform(0.0, 20.0)
        level = np.sqrt(np.mean(piece ** 2)) + 1e-12
        mix[at:at + piece.size] += piece * (0.02 * 10 ** (snr_db / 20) / level)
        events.append((classes[s.cls].name, at / RATE, (at + piece.size) / RATE))
    peak = np.abs(mix).max()
    if peak > 0.99:
        mix *= 0.99 / peak
    return mix.astype(np.float32), events, b


def soundscape_folds(eval_fold: int = 5) -> dict[str, tuple[int, ...]]:
    """The folds each soundscape split draws its sounds from: ``eval_fold`` held out, the fold
    before it (round the circle) for validation, the other three for training."""
    if eval_fold not in range(1, 6):
        raise ValueError(f"eval fold: expected 1-5, found {eval_fold}")
    validation = 5 if eval_fold == 1 else eval_fold - 1
    return {"train": tuple(f for f in range(1, 6) if f not in (eval_fold, validation)),
            "validation": (validation,), "eval": (eval_fold,)}


def write_soundscapes(out: Path, classes: list[SoundClass], sounds: list[Sound], beds, counts: dict[str, int],
                      max_events: int, seed: int, seconds: float = SCAPE_SECONDS,
                      eval_fold: int = 5) -> list[tuple[str, Path, str]]:
    """Write the DESED part; returns (soundscape, bed path, bed package) rows for SOURCES.tsv."""
    drawn_from = soundscape_folds(eval_fold)
    splits = {"train": (drawn_from["train"], "audio/train/synthetic", "metadata/train/synthetic.tsv"),
              "validation": (drawn_from["validation"], "audio/validation", "metadata/validation/validation.tsv"),
              "eval": (drawn_from["eval"], "audio/eval", "metadata/eval/eval.tsv")}
    used_beds = []
    for split, (folds, audio_dir, tsv) in splits.items():
        pool = [s for s in sounds if s.fold in folds]
        rng = np.random.default_rng([seed, len(split), sum(folds)])
        events = []
        (out / audio_dir).mkdir(parents=True, exist_ok=True)
        for k in range(counts[split]):
            audio, scape_events, b = _soundscape(rng, beds, pool, classes, max_events, seconds)
            name = f"{split}_{k:04d}.wav"
            write_wav(out / audio_dir / name, audio, RATE)
            events += [LabeledEvent(name, on, off, label) for label, on, off in scape_events]
            used_beds.append((f"desed/{audio_dir}/{name}", beds[b][0], beds[b][1]))
        (out / tsv).parent.mkdir(parents=True, exist_ok=True)
        write_dcase_strong(out / tsv, events)
    return used_beds


def write_table(out: Path, classes: list[SoundClass], sounds: list[Sound], left_out: dict[str, int],
                n_beds: int, counts: dict[str, int], eval_fold: int = 5) -> str:
    folds = soundscape_folds(eval_fold)
    lines = ["| target | class | clips | recordings | packages |", "|---|---|---|---|---|"]
    for k, c in enumerate(classes):
        mine = [s for s in sounds if s.cls == k]
        packages = sorted({s.package for s in mine})
        lines.append(f"| {k} | {c.name} | {len(mine)} | {len({s.group for s in mine})} | {', '.join(packages)} |")
    lines.append(f"| | **total** | **{len(sounds)}** | **{len({s.group for s in sounds})}** | "
                 f"{len({s.package for s in sounds})} packages |")
    text = ("\n".join(lines) + f"\n\nLeft out: {left_out['silent or not audio']} silent or not audio, "
            f"{left_out['too short']} too short. Soundscapes: {counts['train']} train ({_folds(folds['train'])}), "
            f"{counts['validation']} validation ({_folds(folds['validation'])}), {counts['eval']} eval "
            f"({_folds(folds['eval'])}), on {n_beds} ambient beds.\n")
    (out / "TABLE.md").write_text(text, encoding="utf-8")
    return text


def _folds(folds: tuple[int, ...]) -> str:
    if len(folds) == 1:
        return f"fold {folds[0]}"
    contiguous = list(folds) == list(range(folds[0], folds[-1] + 1))
    return f"folds {folds[0]}-{folds[-1]}" if contiguous else "folds " + ", ".join(map(str, folds))


def build(out: Path, roots: dict[str, Path], *, per_class: int = 40, min_clips: int = 8, min_groups: int = 5,
          counts: dict[str, int] | None = None, max_events: int = 3, seed: int = 0,
          seconds: float = SCAPE_SECONDS, eval_fold: int = 5) -> str:
    """Write both parts, SOURCES.tsv and TABLE.md; returns the table."""
    counts = counts or {"train": 480, "validation": 96, "eval": 96}
    classes, sounds, left_out = collect(roots, per_class, min_clips, min_groups)
    if not classes:
        raise ValueError("no class has enough sounds; are the packages extracted? (see --cache)")
    write_esc50_part(out / "esc50", classes, sounds)
    beds = bed_audio(roots)
    if not beds:
        raise ValueError("no ambient bed decoded (lincity-ng-data, wesnoth-1.16-data)")
    used_beds = write_soundscapes(out / "desed", classes, sounds, beds, counts, max_events, seed, seconds, eval_fold)
    rows = ["file\tclass\tpackage\tpath in package\tlicence"]
    for s in sorted(sounds, key=lambda s: s.name):
        root = roots[s.package]
        rows.append(f"esc50/audio/{s.name}\t{classes[s.cls].name}\t{s.package}\t/{s.path.relative_to(root)}\t"
                    f"{file_licence(root, s.package, s.path)}")
    for scape, path, package in used_beds:
        root = roots[package]
        rows.append(f"{scape}\t(ambient bed)\t{package}\t/{path.relative_to(root)}\t{file_licence(root, package, path)}")
    (out / "SOURCES.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return write_table(out, classes, sounds, left_out, len(beds), counts, eval_fold)


def add_package_options(parser: argparse.ArgumentParser) -> None:
    """``--cache`` and ``--debs``: where the Debian packages come from (see :func:`fetch_packages`)."""
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "avlive" / "debian-sounds",
                        help="where the packages are downloaded and extracted (reused)")
    parser.add_argument("--debs", type=Path, default=None, help="a folder of .deb files to use instead of downloading")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m apps.build_real_sounds", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="folder to write esc50/, desed/, SOURCES.tsv and TABLE.md into")
    add_package_options(parser)
    parser.add_argument("--per-class", type=int, default=40, help="clips per class at most (default 40)")
    parser.add_argument("--min-clips", type=int, default=8, help="a class needs this many clips (default 8)")
    parser.add_argument("--min-groups", type=int, default=5, help="... from this many recordings (default 5)")
    parser.add_argument("--soundscapes", type=int, nargs=3, default=(480, 96, 96), metavar=("TRAIN", "VAL", "EVAL"))
    parser.add_argument("--max-events", type=int, default=3, help="sounds per soundscape at most (default 3)")
    parser.add_argument("--seconds", type=float, default=SCAPE_SECONDS, help="soundscape length (default 10 s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-fold", type=int, default=5, choices=range(1, 6), metavar="K",
                        help="fold held out for the eval soundscapes (default 5; validation is the fold before it)")
    args = parser.parse_args(argv)
    try:
        roots = fetch_packages(args.cache, args.debs)
        table = build(args.out, roots, per_class=args.per_class, min_clips=args.min_clips, min_groups=args.min_groups,
                      counts=dict(zip(("train", "validation", "eval"), args.soundscapes)),
                      max_events=args.max_events, seed=args.seed, seconds=args.seconds, eval_fold=args.eval_fold)
    except (FileNotFoundError, ValueError, subprocess.CalledProcessError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(table)
    print(f"wrote {args.out}/esc50, {args.out}/desed, SOURCES.tsv and TABLE.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
