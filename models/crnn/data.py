"""Training and validation clips for the CRNN: strong, weak and unlabelled, from the world or a
DESED-layout folder.

Every item is a dict:

* ``audio`` (N,) float32 at the recipe's sample rate;
* ``strong`` (T', C) float32 frame targets (zeros where the clip has none);
* ``weak`` (C,) float32 clip targets (the classes present);
* ``strong_mask`` / ``weak_mask`` () float32: 1 when the clip's strong / weak labels are known
  (a strong clip has both; a weak clip the second; an unlabelled clip neither).

**The world** (:class:`WorldSedClips`): each scene's first ``span_seconds`` are rendered once
(the disk cache of :mod:`models.world.cache`) and clips are crops of them, with exact targets
from the scene's events. Each training scene has a role (strong, weak or unlabelled), so a
labelled subset can be small, as in DESED (weak labels on ~10 % of the clips, strong labels
on a synthetic subset, the rest unlabelled). Training crops start anywhere and change every
epoch, with a random gain; validation clips lie on a fixed grid. A share of the training crops
can be made to end just after an event's onset (``onset_crops``): the live labeler scores a
frame when only a few frames of its future exist, and these crops' last frames are that case
(see ``tail_weight`` in :mod:`models.crnn.recipe`).

**A DESED-layout folder** (:class:`DesedFolder`): the DCASE task-4 TSVs (``metadata/train/
weak.tsv``, ``metadata/train/unlabel_in_domain.tsv``, strong ``metadata/train/synthetic*/
*.tsv`` or ``metadata/train/synthetic*.tsv``, ``metadata/validation/validation.tsv``) and the
wav clips under ``audio/`` with the same sub-paths (see :data:`DESED_LAYOUT`). Clips are
decoded once, crash-contained: a clip that is missing or fails is skipped, counted and reported
(:meth:`models.datasets.clips.ClipIndex.decode`).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from models.core.events import LabeledEvent
from models.crnn.frames import FrameGrid
from models.datasets.clips import ClipIndex
from models.datasets.desed_layout import DesedFiles, find_desed_files
from models.datasets.formats.dcase import StrongLabels, read_dcase_strong, read_dcase_unlabeled, read_dcase_weak
from models.world import CLASS_NAMES, Scene
from models.world.cache import cached_window_audio
from models.world.evalsets import WindowSpan
from models.world.scene import WorldConfig

logger = logging.getLogger(__name__)

ROLES = ("strong", "weak", "unlabelled")
#: A scene rendered but never drawn from (the supervised-only twin of a mean-teacher run keeps
#: the same scenes, and so the same rendering, and leaves its unlabelled ones out).
UNUSED = "unused"


def clip_item(audio: np.ndarray, events: Sequence[LabeledEvent] | None, weak_labels: Sequence[str] | None,
              grid: FrameGrid, classes: Sequence[str]) -> dict[str, torch.Tensor]:
    """One item (see the module docstring) from a clip's audio and what is known of it.

    Args:
        audio: (N,) float32.
        events: clip-relative strong events, or None when unknown.
        weak_labels: the classes present, or None when unknown (derived from ``events`` when
            those are given).
        grid: the network's frame grid.
        classes: class names in output order.
    """
    frames = grid.frames(len(audio))
    strong = np.zeros((frames, len(classes)), np.float32)
    weak = np.zeros(len(classes), np.float32)
    if events is not None:
        strong = grid.targets(events, frames, classes)
        weak_labels = [e.label for e in events]
    if weak_labels is not None:
        index = {c: i for i, c in enumerate(classes)}
        for label in weak_labels:
            if label not in index:
                raise ValueError(f"weak label {label!r} is not one of the {len(classes)} classes")
            weak[index[label]] = 1.0
    return {"audio": torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)), "strong": torch.from_numpy(strong),
            "weak": torch.from_numpy(weak), "strong_mask": torch.tensor(float(events is not None)),
            "weak_mask": torch.tensor(float(weak_labels is not None))}


class EvaluationClips:
    """What a validation set offers besides its items: the reference events of each clip, by
    the clip's name (item ``i`` is ``names[i]``), and each clip's duration."""

    names: tuple[str, ...]
    reference: tuple[LabeledEvent, ...]
    durations: dict[str, float]
    classes: tuple[str, ...]


class WorldSedClips(Dataset, EvaluationClips):
    """Crops of world scenes with frame targets (see the module docstring).

    Args:
        config: the world preset.
        seeds: scene seeds.
        roles: one of :data:`ROLES` (or :data:`UNUSED`) per seed.
        span_seconds: the first seconds of each scene rendered and cropped from.
        clip_seconds: length of a clip.
        grid: the network's frame grid (its front end gives the sample rate).
        size: items per epoch (training); ignored with ``fixed`` (the grid decides).
        seed: with (epoch, index), draws a training crop and its gain.
        fixed: validation: clips on a grid of ``clip_seconds`` in every scene, never changing.
        gain_db: random gain per training item, uniform in ±gain_db.
        quota: training: ``(strong, weak, unlabelled)`` clips in every batch of ``sum(quota)``
            consecutive items (the batch sampler must not shuffle); (): each item draws a scene of
            any role, so roles share a batch as they share the scenes.
        side: with fused embeddings (:class:`models.crnn.fusion.SceneEmbeddings` of the same
            seeds), items also hold ``fused`` ``(T_mel, dim)``: the embeddings at each mel frame.
        onset_crops: training: the share of crops that end within ``onset_reach_s`` after an
            event's onset (an event of the drawn scene, drawn uniformly); the others start
            anywhere. 0 draws exactly the crops it drew before this option existed.
        onset_reach_s: how far after the onset such a crop may end (uniform in [0, reach]).
        render_rate: the scenes are rendered at this rate and resampled to the front end's, as
            live audio captured at that rate reaches the labeler (``models.world.cache.render_resampled``);
            None or the front end's rate: rendered at the front end's rate.
    """

    def __init__(self, config: WorldConfig, seeds: Sequence[int], roles: Sequence[str], span_seconds: float,
                 clip_seconds: float, grid: FrameGrid, *, size: int = 0, seed: int = 0, fixed: bool = False,
                 gain_db: float = 0.0, desc: str = "rendering world scenes", quota: Sequence[int] = (), side=None,
                 onset_crops: float = 0.0, onset_reach_s: float = 0.4, render_rate: int | None = None):
        if len(roles) != len(seeds):
            raise ValueError(f"WorldSedClips: {len(seeds)} seeds but {len(roles)} roles")
        bad = sorted(set(roles) - set(ROLES) - {UNUSED})
        if bad:
            raise ValueError(f"WorldSedClips: unknown roles {bad}; expected {ROLES}")
        if clip_seconds > span_seconds:
            raise ValueError(f"clip_seconds {clip_seconds} exceeds the rendered span of {span_seconds} s")
        self.seeds, self.roles = tuple(seeds), tuple(roles)
        self.grid, self.classes = grid, CLASS_NAMES
        self.sample_rate = grid.frontend.sample_rate
        self.clip_samples = int(round(clip_seconds * self.sample_rate))
        self.span_samples = int(round(span_seconds * self.sample_rate))
        self.seed, self.fixed, self.gain_db = seed, fixed, gain_db
        self.side = side
        if side is not None:
            from models.crnn.fusion import mel_centres
            self.mel_centres = mel_centres(grid, grid.mel_frames(self.clip_samples))
        spans = [WindowSpan(s, span_seconds, span_seconds) for s in self.seeds]
        self.audio = cached_window_audio(spans, self.sample_rate, config, render_rate=render_rate,
                                         desc=desc)  # (S, span samples)
        self.events = [Scene(config, s).events_between(0.0, span_seconds) for s in self.seeds]
        if not 0.0 <= onset_crops <= 1.0:
            raise ValueError(f"WorldSedClips: onset_crops: expected a share in [0, 1], found {onset_crops}")
        self.onset_crops, self.onset_reach_s = float(onset_crops), float(onset_reach_s)
        # per scene, the onsets a crop can end just after (a whole crop fits before them)
        self.crop_onsets = [np.array(sorted(e.onset for e in ev if clip_seconds <= e.onset <= span_seconds - onset_reach_s))
                            for ev in self.events]
        per_scene = self.span_samples // self.clip_samples
        self.grid_items = [(i, j * self.clip_samples) for i in range(len(self.seeds)) for j in range(per_scene)]
        self.drawn = [i for i, r in enumerate(self.roles) if r != UNUSED]
        if not self.drawn:
            raise ValueError("WorldSedClips: every scene is unused")
        self.quota = tuple(int(q) for q in quota)
        if self.quota:
            if len(self.quota) != len(ROLES) or min(self.quota) < 0 or not sum(self.quota):
                raise ValueError(f"WorldSedClips: quota: expected {len(ROLES)} counts {ROLES} >= 0, found {self.quota}")
            empty = [r for r, q in zip(ROLES, self.quota) if q and r not in self.roles]
            if empty:
                raise ValueError(f"WorldSedClips: quota asks for {', '.join(empty)} clips but no scene has that role")
        self.by_role = {r: [i for i, role in enumerate(self.roles) if role == r] for r in ROLES}
        self.size = len(self.grid_items) if fixed else size
        self.names = tuple(self._name(i, start) for i, start in self.grid_items) if fixed else ()
        self.reference = tuple(e for (i, start), name in zip(self.grid_items, self.names)
                               for e in self._clip_events(i, start, name)) if fixed else ()
        self.durations = {n: clip_seconds for n in self.names}

    def __len__(self) -> int:
        return self.size

    def _name(self, scene: int, start: int) -> str:
        return f"world-{self.seeds[scene]}-{start / self.sample_rate:.3f}"

    def _clip_events(self, scene: int, start: int, name: str) -> list[LabeledEvent]:
        t0, t1 = start / self.sample_rate, (start + self.clip_samples) / self.sample_rate
        out = []
        for e in self.events[scene]:
            onset, offset = max(e.onset, t0), min(e.offset, t1)
            if offset > onset:
                out.append(LabeledEvent(name, onset - t0, offset - t0, CLASS_NAMES[e.class_index]))
        return sorted(out, key=lambda e: (e.onset, e.label))

    def address(self, epoch: int, index: int) -> tuple[int, int]:
        """(scene position, start sample) of an item."""
        if self.fixed:
            return self.grid_items[index]
        rng = np.random.default_rng([self.seed, epoch, index])
        pool = self.drawn
        if self.quota:  # the item's place in its batch decides its role
            place, bounds = index % sum(self.quota), np.cumsum(self.quota)
            pool = self.by_role[ROLES[int(np.searchsorted(bounds, place, side="right"))]]
        scene = pool[int(rng.integers(len(pool)))]
        start = int(rng.integers(0, self.span_samples - self.clip_samples + 1))
        onsets = self.crop_onsets[scene]
        if self.onset_crops > 0 and len(onsets) and rng.random() < self.onset_crops:
            end = onsets[int(rng.integers(len(onsets)))] + rng.uniform(0.0, self.onset_reach_s)
            start = min(max(0, int(round(end * self.sample_rate)) - self.clip_samples), self.span_samples - self.clip_samples)
        return scene, start

    def __getitem__(self, address) -> dict[str, torch.Tensor]:
        epoch, index = address if isinstance(address, tuple) else (0, address)
        scene, start = self.address(epoch, index)
        audio = np.array(self.audio[scene, start:start + self.clip_samples], dtype=np.float32)
        if self.gain_db > 0 and not self.fixed:
            rng = np.random.default_rng([self.seed, epoch, index, 1])
            audio *= np.float32(10.0 ** (rng.uniform(-self.gain_db, self.gain_db) / 20.0))
        role = self.roles[scene]
        events = self._clip_events(scene, start, "clip")
        if role == "strong":
            item = clip_item(audio, events, None, self.grid, self.classes)
        elif role == "weak":
            item = clip_item(audio, None, [e.label for e in events], self.grid, self.classes)
        else:
            item = clip_item(audio, None, None, self.grid, self.classes)
        if self.side is not None:
            item["fused"] = torch.from_numpy(self.side.frames(scene, start / self.sample_rate, self.mel_centres))
        return item


def world_roles(strong: int, weak: int, unlabelled: int) -> tuple[str, ...]:
    """Roles of the first ``strong + weak + unlabelled`` training scenes, interleaved so every
    role draws from scenes spread over the seed range."""
    counts = {"strong": strong, "weak": weak, "unlabelled": unlabelled}
    total = sum(counts.values())
    out: list[str] = []
    for k in range(total):  # largest remaining share first: an even spread
        role = max(ROLES, key=lambda r: (counts[r] - (total - k) * counts[r] / max(1, total), counts[r]))
        counts[role] -= 1
        out.append(role)
    return tuple(out)


# --------------------------------------------------------------------------------------------
# a DESED-layout folder

class ClipList(Dataset, EvaluationClips):
    """Decoded clips with what is known of each (strong events, weak labels, or nothing).

    Args:
        audio: (N, samples) float32.
        names: clip names (file names), one per row.
        events: per clip, its strong events (clip-relative) or None.
        weak: per clip, its weak labels or None.
        grid: the network's frame grid.
        classes: class names in output order.
        seconds: each clip's length (for the evaluation's durations).
        gain_db / seed: random gain per training item.
    """

    def __init__(self, audio: np.ndarray, names: Sequence[str], events: Sequence[Sequence[LabeledEvent] | None],
                 weak: Sequence[Sequence[str] | None], grid: FrameGrid, classes: Sequence[str], seconds: float,
                 *, gain_db: float = 0.0, seed: int = 0):
        self.audio, self.names = audio, tuple(names)
        self.events, self.weak = list(events), list(weak)
        self.grid, self.classes = grid, tuple(classes)
        self.gain_db, self.seed = gain_db, seed
        self.reference = tuple(e for ev in self.events if ev for e in ev)
        self.durations = {n: seconds for n in self.names}

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, address) -> dict[str, torch.Tensor]:
        epoch, index = address if isinstance(address, tuple) else (0, address)
        audio = np.array(self.audio[index], dtype=np.float32)
        if self.gain_db > 0:
            rng = np.random.default_rng([self.seed, epoch, index, 1])
            audio *= np.float32(10.0 ** (rng.uniform(-self.gain_db, self.gain_db) / 20.0))
        return clip_item(audio, self.events[index], self.weak[index], self.grid, self.classes)


def desed_classes(files: DesedFiles) -> tuple[str, ...]:
    """The sorted labels of every labelled TSV (DESED: its 10 classes)."""
    labels: set[str] = set()
    if files.weak:
        labels.update(label for clip in read_dcase_weak(files.weak[0]) for label in clip.labels)
    for pair in (files.strong, files.validation):
        if pair:
            labels.update(e.label for e in read_dcase_strong(pair[0]).events)
    if not labels:
        raise ValueError("the DESED folder's TSVs name no class at all")
    return tuple(sorted(labels))


def _decode(index: ClipIndex, sample_rate: int, seconds: float, what: str):
    decoded = index.decode(sample_rate, seconds)
    logger.info("%s: %d clips decoded, %d skipped", what, len(decoded), len(decoded.skipped))
    return decoded


def _strong_lists(labels: StrongLabels, decoded) -> tuple[list[str], list[list[LabeledEvent]]]:
    names = [c.path.name for c in decoded.clips]
    return names, [list(labels.events_for(n)) for n in names]


def desed_datasets(root: Path, grid: FrameGrid, seconds: float, *, gain_db: float = 0.0,
                   seed: int = 0) -> tuple[ClipList, ClipList]:
    """(training, validation) clips of a DESED-layout folder; clips are padded or cut to ``seconds``."""
    files = find_desed_files(Path(root))
    classes = desed_classes(files)
    sr = grid.frontend.sample_rate
    audio, names, events, weak = [], [], [], []
    if files.strong:
        labels = read_dcase_strong(files.strong[0])
        decoded = _decode(ClipIndex.from_dcase_strong(labels, files.strong[1]), sr, seconds, "strong clips")
        n, ev = _strong_lists(labels, decoded)
        audio.append(decoded.audio), names.extend(n), events.extend(ev), weak.extend([None] * len(n))
    if files.weak:
        clips = read_dcase_weak(files.weak[0])
        decoded = _decode(ClipIndex.from_dcase_weak(clips, files.weak[1]), sr, seconds, "weak clips")
        audio.append(decoded.audio)
        names.extend(c.path.name for c in decoded.clips)
        events.extend([None] * len(decoded))
        weak.extend(list(c.labels) for c in decoded.clips)
    if files.unlabelled:
        decoded = _decode(ClipIndex.from_dcase_unlabeled(read_dcase_unlabeled(files.unlabelled[0]), files.unlabelled[1]),
                          sr, seconds, "unlabelled clips")
        audio.append(decoded.audio)
        names.extend(c.path.name for c in decoded.clips)
        events.extend([None] * len(decoded))
        weak.extend([None] * len(decoded))
    train = ClipList(np.concatenate(audio), names, events, weak, grid, classes, seconds, gain_db=gain_db, seed=seed)
    labels = read_dcase_strong(files.validation[0])
    decoded = _decode(ClipIndex.from_dcase_strong(labels, files.validation[1]), sr, seconds, "validation clips")
    n, ev = _strong_lists(labels, decoded)
    val = ClipList(decoded.audio, n, ev, [None] * len(n), grid, classes, seconds)
    return train, val
