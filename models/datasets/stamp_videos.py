"""Photo+sound videos and one-sounding-object scenes composed from Tux Paint stamps.

The Debian package ``tuxpaint-stamps-default`` (GPL-2, its DEP-5 copyright) ships stamps as
``NAME.png`` (an RGBA picture) with, for some, ``NAME.ogg`` (the sound of the thing). The
stamps outside ``animals/`` that have both (:func:`find_stamps`; 65 in the 2022.06.04 package)
are the material here; ``animals/`` is left alone.

:func:`build_stamp_videos` writes, deterministically for a seed::

    OUT/train/single/<stamp>-<k>.mp4   one stamp on a background, its sound repeating
    OUT/train/scenes/scene-NNNN.mp4    3-4 training stamps, one of them sounding
    OUT/val/single/..., OUT/val/scenes/...   the same with validation stamps (some scenes
                                        sound from off screen: a stamp not shown)
    OUT/test/seen/scene-NNNN.mp4       new compositions of training stamps (row "seen")
    OUT/test/unseen/scene-NNNN.mp4     stamps never trained on (row "unseen")
    OUT/SOURCES.tsv                    every file's stamps, their copyright and licence

Every video has a box sidecar (:mod:`models.datasets.formats.video_boxes`, per frame: the
sounding stamp's box while its sound plays, ``[]`` otherwise and throughout for off-screen
scenes). Stamps are split into train / val / test by *sound*: stamps sharing an identical
``.ogg`` (the filled and outlined forms of a letter) stay on one side.

Pictures: the stamp's opaque part is scaled (longest side a random share of the frame) and
alpha-composited on a random two-colour gradient with mild pixel noise. Sound: 48 kHz mono,
faint white noise (−50 dBFS RMS) under the stamp's sound, peak-normalised to a random level,
repeated from a random onset with random gaps; the picture is still.

**Training and scoring L³ on them** (the stamp run; ≤ 60 minutes on 2 CPU cores)::

    python -m apps.build_stamp_videos out/stamps
    python -m models.train --recipe l3 --out runs/l3-stamps --data out/stamps size=lite \
        avol_cosine=true contrastive=1.0 positives_only=true lr=1e-3 warmup_steps=50 \
        epochs=16 items_per_epoch=4096 video_fps=4 checkpoint_every=100 time_limit_min=56 threads=2
    python -m apps.eval_l3 runs/l3-stamps --data out/stamps --write-threshold --threads 2

``time_limit_min`` counts training only; decoding the videos first takes a minute or two. These are the
l3-lite options except ``scene_groups`` (1: a stamp sounds the same all along its
video, so same-video pairs are not negatives). ``apps.eval_l3 --data`` chooses the "no source"
threshold on ``val/`` and prints AVC AUC, pointing (against the sounding box's mean share of the
frame and 1 / objects), cIoU and the no-source rate for the rows ``seen`` (new compositions of
training stamps) and ``unseen`` (stamps never trained on). With boxes this small (about 5 % of
the frame) cIoU@0.5 is 0 by construction: the median-threshold foreground covers half the map.
"""
from __future__ import annotations

import fnmatch
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

SAMPLE_RATE = 48_000
EXCLUDED = ("animals",)


@dataclass(frozen=True)
class Stamp:
    """One stamp with a picture and a sound.

    Attributes:
        name: path relative to the stamps root, without extension (``household/kettle``).
        png, ogg: its files.
        group: a digest of the decoded sound (stamps with the same sound share it).
    """

    name: str
    png: Path
    ogg: Path
    group: str

    @property
    def slug(self) -> str:
        return self.name.replace("/", "_")


@dataclass(frozen=True)
class StampVideoConfig:
    """What :func:`build_stamp_videos` writes (defaults: the set the L³ stamp run uses)."""

    seed: int = 0
    size: int = 128  # frame side, pixels
    fps: int = 8
    seconds: float = 8.0
    val_share: float = 0.1  # share of sound groups that validate
    test_share: float = 0.2  # share of sound groups never trained on (row "unseen")
    single_per_stamp: int = 4  # single-stamp videos per training / validation stamp (each on a fresh background and
    # size, so the stamp, not a memorised backdrop, is what recurs with its sound)
    train_scenes: int = 60
    val_scenes: int = 16
    test_scenes: int = 24  # per test row
    offscreen_share: float = 0.25  # val and test scenes whose sound comes from a stamp not shown
    min_objects: int = 3
    max_objects: int = 4
    noise_dbfs: float = -50.0

    def validate(self) -> None:
        if self.size < 32 or self.fps < 1 or self.seconds < 3:
            raise ValueError(f"StampVideoConfig: expected size >= 32, fps >= 1, seconds >= 3, found {self.size}, "
                             f"{self.fps}, {self.seconds}")
        if not (0 < self.val_share and 0 < self.test_share and self.val_share + self.test_share < 1):
            raise ValueError(f"StampVideoConfig: expected val_share, test_share > 0 with sum < 1, found "
                             f"{self.val_share} and {self.test_share}")
        if not 3 <= self.min_objects <= self.max_objects:
            raise ValueError(f"StampVideoConfig: expected 3 <= min_objects <= max_objects, found {self.min_objects}, "
                             f"{self.max_objects}")


def find_stamps(root: str | Path, exclude: Sequence[str] = EXCLUDED) -> list[Stamp]:
    """The stamps under ``root`` with both ``NAME.png`` and ``NAME.ogg``, outside ``exclude`` top folders.

    Raises:
        FileNotFoundError: ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: expected the stamps folder (…/usr/share/tuxpaint/stamps), found none")
    out = []
    for png in sorted(root.rglob("*.png")):
        rel = png.relative_to(root).with_suffix("").as_posix()
        ogg = png.with_suffix(".ogg")
        if rel.split("/", 1)[0] in exclude or not ogg.is_file():
            continue
        out.append(Stamp(rel, png, ogg, _sound_digest(ogg)))
    return out


def _sound_digest(ogg: Path) -> str:
    """A digest of the decoded sound (not of the file: Ogg streams carry a random serial number,
    so two encodings of one sound differ in bytes)."""
    from models.io.media import read_audio

    audio, rate = read_audio(ogg, mono=True)
    q = np.round(np.asarray(audio, np.float64) * 32767).astype(np.int16)
    return hashlib.sha256(q.tobytes() + str(rate).encode()).hexdigest()[:12]


def split_stamps(stamps: Sequence[Stamp], seed: int, val_share: float, test_share: float) -> dict[str, list[Stamp]]:
    """``{"train", "val", "test"}`` stamps, whole sound groups at a time (at least one group each)."""
    groups = sorted({s.group for s in stamps})
    if len(groups) < 3:
        raise ValueError(f"split_stamps: expected at least 3 distinct sounds, found {len(groups)}")
    order = np.random.default_rng([seed, 1]).permutation(len(groups))
    n_test = max(1, round(test_share * len(groups)))
    n_val = max(1, round(val_share * len(groups)))
    split_of = {}
    for rank, g in enumerate(order):
        split_of[groups[g]] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    out: dict[str, list[Stamp]] = {"train": [], "val": [], "test": []}
    for s in stamps:
        out[split_of[s.group]].append(s)
    return out


def load_picture(png: Path) -> np.ndarray:
    """The stamp's opaque part: ``(h, w, 4)`` float32 RGBA in [0, 1], cropped to alpha > 0.5."""
    from PIL import Image

    with Image.open(png) as im:
        rgba = np.asarray(im.convert("RGBA"), np.float32) / 255.0
    ys, xs = np.nonzero(rgba[..., 3] > 0.5)
    if not len(ys):
        raise ValueError(f"{png}: expected an opaque picture, found a fully transparent one")
    return rgba[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def load_sound(ogg: Path, max_seconds: float = 3.0) -> np.ndarray:
    """The stamp's sound: ``(n,)`` float32 mono at 48 kHz, at most ``max_seconds`` (faded out), peak 1."""
    from models.io.media import read_audio

    audio, _ = read_audio(ogg, sample_rate=SAMPLE_RATE, mono=True)
    audio = np.asarray(audio, np.float32)[: int(max_seconds * SAMPLE_RATE)]
    fade = min(len(audio), SAMPLE_RATE // 20)
    if fade:
        audio[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    peak = float(np.abs(audio).max()) if len(audio) else 0.0
    if peak <= 0:
        raise ValueError(f"{ogg}: expected a sound, found silence")
    return audio / peak


def _resize(rgba: np.ndarray, longest: int) -> np.ndarray:
    from PIL import Image

    h, w = rgba.shape[:2]
    scale = longest / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    im = Image.fromarray((rgba * 255).round().astype(np.uint8), "RGBA").resize(size, Image.LANCZOS)
    return np.asarray(im, np.float32) / 255.0


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    a, b = rng.uniform(0.15, 0.95, 3), rng.uniform(0.15, 0.95, 3)
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    ramp = (np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5)) / math.sqrt(0.5) * 0.5 + 0.5
    img = a * (1 - ramp[..., None]) + b * ramp[..., None]
    return np.clip(img + rng.normal(0, 0.02, img.shape), 0, 1)


def _place(rng: np.random.Generator, sizes: Sequence[tuple[int, int]], frame: int, tries: int = 200) -> list[tuple[int, int]]:
    """Top-left corners for pictures of ``(h, w)`` sizes, inside the frame and not overlapping (best effort)."""
    placed: list[tuple[int, int, int, int]] = []
    out = []
    for h, w in sizes:
        best = None
        for _ in range(tries):
            y, x = int(rng.integers(0, frame - h + 1)), int(rng.integers(0, frame - w + 1))
            overlap = sum(max(0, min(x + w, X + W) - max(x, X)) * max(0, min(y + h, Y + H) - max(y, Y)) for Y, X, H, W in placed)
            if best is None or overlap < best[0]:
                best = (overlap, y, x)
            if overlap == 0:
                break
        placed.append((best[1], best[2], h, w))
        out.append((best[1], best[2]))
    return out


def compose_picture(rng: np.random.Generator, pictures: Sequence[np.ndarray], size: int, share: tuple[float, float]
                    ) -> tuple[np.ndarray, list[list[float]]]:
    """Pictures on a random background.

    Returns:
        ``(size, size, 3)`` uint8 RGB and each picture's normalized box ``[x0, y0, x1, y1]``.
    """
    img = _background(rng, size)
    scaled = [_resize(p, max(8, round(rng.uniform(*share) * size))) for p in pictures]
    corners = _place(rng, [s.shape[:2] for s in scaled], size)
    boxes = []
    for s, (y, x) in zip(scaled, corners):
        h, w = s.shape[:2]
        alpha = s[..., 3:4]
        img[y : y + h, x : x + w] = img[y : y + h, x : x + w] * (1 - alpha) + s[..., :3] * alpha
        boxes.append([x / size, y / size, (x + w) / size, (y + h) / size])
    return (img * 255).round().astype(np.uint8), boxes


def compose_sound(rng: np.random.Generator, sound: np.ndarray, seconds: float, noise_dbfs: float
                  ) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """The sound repeated over ``seconds`` above faint noise.

    Returns:
        ``(round(seconds·48000),)`` float32 and the ``(start, end)`` seconds of each occurrence.
    """
    n = int(round(seconds * SAMPLE_RATE))
    audio = rng.normal(0, 10 ** (noise_dbfs / 20), n).astype(np.float32)
    gain = rng.uniform(0.3, 0.8)
    t = rng.uniform(0.1, 1.0)
    spans = []
    while t * SAMPLE_RATE < n - SAMPLE_RATE // 4:
        start = int(t * SAMPLE_RATE)
        part = sound[: n - start]
        audio[start : start + len(part)] += gain * part
        spans.append((start / SAMPLE_RATE, (start + len(part)) / SAMPLE_RATE))
        t = spans[-1][1] + rng.uniform(0.4, 1.5)
    return np.clip(audio, -1, 1), spans


@dataclass(frozen=True)
class Clip:
    """One video to write: its path under OUT, the stamps shown, the sounding one (index into
    ``shown``, or None: the sound is ``heard``'s, off screen)."""

    relpath: str
    shown: tuple[Stamp, ...]
    sounding: int | None
    heard: Stamp


def plan_clips(splits: dict[str, list[Stamp]], config: StampVideoConfig) -> list[Clip]:
    """Every video :func:`build_stamp_videos` writes, in order (a pure function of the config)."""
    rng = np.random.default_rng([config.seed, 2])
    clips = []
    for split in ("train", "val"):
        for s in splits[split]:
            for k in range(config.single_per_stamp):
                clips.append(Clip(f"{split}/single/{s.slug}-{k}.mp4", (s,), 0, s))

    def scenes(folder: str, pool: list[Stamp], count: int, offscreen: float) -> None:
        groups = sorted({s.group for s in pool})
        for i in range(count):
            k = int(rng.integers(config.min_objects, config.max_objects + 1))
            off = i < round(offscreen * count)
            chosen_groups = rng.choice(len(groups), size=min(len(groups), k + off), replace=False)
            picks = []
            for g in chosen_groups:  # one stamp per sound, so the sounding one is unambiguous
                members = [s for s in pool if s.group == groups[g]]
                picks.append(members[int(rng.integers(len(members)))])
            if off and len(picks) > 1:
                clips.append(Clip(f"{folder}/scene-{i:04d}.mp4", tuple(picks[1:]), None, picks[0]))
            else:
                clips.append(Clip(f"{folder}/scene-{i:04d}.mp4", tuple(picks), 0, picks[0]))

    scenes("train/scenes", splits["train"], config.train_scenes, 0.0)
    scenes("val/scenes", splits["val"] + splits["train"] if len({s.group for s in splits["val"]}) < config.max_objects + 1
           else splits["val"], config.val_scenes, config.offscreen_share)
    scenes("test/seen", splits["train"], config.test_scenes, config.offscreen_share)
    scenes("test/unseen", splits["test"], config.test_scenes, config.offscreen_share)
    return clips


def _dep5_licence(copyright_text: str, path: str) -> tuple[str, str]:
    """(copyright, licence) of a stamp file in a DEP-5 file: the last ``Files:`` stanza matching
    ``path`` (relative to the stamps folder) as it is, under ``stamps/`` (the source tree) or under
    ``usr/share/tuxpaint/stamps/`` (installed)."""
    candidates = (path, f"stamps/{path}", f"usr/share/tuxpaint/stamps/{path}")
    found = ("unknown", "unknown")
    for stanza in copyright_text.split("\n\n"):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, value = line.split(":", 1)
                fields[key] = value.strip()
        patterns = fields.get("Files", "").split()
        if any(fnmatch.fnmatch(c, p) for p in patterns for c in candidates):
            found = (fields.get("Copyright", "unknown"), fields.get("License", "unknown").split(" ", 1)[0])
    return found


def build_stamp_videos(stamps_root: str | Path, out: str | Path, config: StampVideoConfig = StampVideoConfig(),
                       copyright_text: str = "", package: str = "tuxpaint-stamps-default",
                       log: Callable[[str], None] = lambda m: None) -> dict[str, int]:
    """Write the stamp videos (module docstring) under ``out``.

    Args:
        stamps_root: the package's ``usr/share/tuxpaint/stamps`` folder (or a stand-in tree).
        out: output folder (created).
        config: what to write.
        copyright_text: the package's DEP-5 ``copyright`` file, for SOURCES.tsv.
        package: the package name written in SOURCES.tsv.

    Returns:
        Counts: stamps per split and videos per folder.
    """
    from models.datasets.formats.video_boxes import write_source_boxes
    from models.io.media import write_av_file

    config.validate()
    stamps_root = Path(stamps_root)
    stamps = find_stamps(stamps_root)
    splits = split_stamps(stamps, config.seed, config.val_share, config.test_share)
    clips = plan_clips(splits, config)
    out = Path(out)
    pictures: dict[str, np.ndarray] = {}
    sounds: dict[str, np.ndarray] = {}
    n_frames = int(round(config.seconds * config.fps))
    rows = []
    counts: dict[str, int] = {f"stamps_{k}": len(v) for k, v in splits.items()}
    for i, clip in enumerate(clips):
        rng = np.random.default_rng([config.seed, 3, i])
        for s in clip.shown + (clip.heard,):
            if s.name not in pictures:
                pictures[s.name], sounds[s.name] = load_picture(s.png), load_sound(s.ogg)
        share = (0.4, 0.65) if len(clip.shown) == 1 else (0.22, 0.34)
        frame, boxes = compose_picture(rng, [pictures[s.name] for s in clip.shown], config.size, share)
        audio, spans = compose_sound(rng, sounds[clip.heard.name], config.seconds, config.noise_dbfs)
        path = out / clip.relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        write_av_file(path, (frame for _ in range(n_frames)), audio, config.fps, SAMPLE_RATE)
        entries: list[tuple[float, list]] = [(0.0, [])]
        if clip.sounding is not None:
            for a, b in spans:
                entries += [(a, [boxes[clip.sounding]]), (b, [])]
        entries = [e for k, e in enumerate(entries) if k == 0 or e[0] > entries[k - 1][0]]
        write_source_boxes(path, frames=entries, objects=len(clip.shown))
        for s in dict.fromkeys(clip.shown + (clip.heard,)):
            role = "sounding" if clip.sounding is not None and s == clip.shown[clip.sounding] else \
                "heard off screen" if s == clip.heard else "silent"
            for f in (s.png, s.ogg):
                rel = f.relative_to(stamps_root).as_posix()
                rows.append((clip.relpath, role, package, f"usr/share/tuxpaint/stamps/{rel}", *_dep5_licence(copyright_text, rel)))
        folder = clip.relpath.rsplit("/", 1)[0]
        counts[folder] = counts.get(folder, 0) + 1
        if (i + 1) % 50 == 0:
            log(f"{i + 1}/{len(clips)} videos")
    with open(out / "SOURCES.tsv", "w", encoding="utf-8") as f:
        f.write("file\trole\tpackage\tpackage_file\tcopyright\tlicense\n")
        for row in rows:
            f.write("\t".join(str(v).replace("\t", " ") for v in row) + "\n")
    with open(out / "STAMPS.tsv", "w", encoding="utf-8") as f:
        f.write("stamp\tsplit\tsound_group\n")
        for split, members in splits.items():
            for s in members:
                f.write(f"{s.name}\t{split}\t{s.group}\n")
    return counts
