"""``avslowfast-epic100``: AVSlowFast lite on EPIC-KITCHENS-100 verb + noun.

The lite network (or ``size=test``) with one head per task: the projection gives
``num_verbs + num_nouns`` logits, the first ``num_verbs`` the verb's, the rest the noun's (one
linear layer over the pooled features is two heads side by side). Loss
``CE(verb) + CE(noun)``; DropPathway as ``avslowfast-lite`` (``drop_pathway``), no
synchronisation loss (pretrain with ``avslowfast-sync-lite`` or ``avslowfast-folder`` and pass
``init=RUN``). Evaluation on the centred clip of each validation segment: top-1 and top-5 of
verb, noun and action (verb and noun both right; primary ``action_top1``) and ``items``.

``--data ROOT`` holds ``EPIC_100_train.csv``, ``EPIC_100_validation.csv``,
``EPIC_100_verb_classes.csv``, ``EPIC_100_noun_classes.csv`` (their rows must equal
``num_verbs``/``num_nouns``: 97/300 for the real files), ``EPIC_100_video_info.csv``, the audio
HDF5 (``EPIC-KITCHENS-100_audio.hdf5``, ``audio_hdf5=NAME``, or the folder's only ``*.hdf5``)
and the pictures, ``<participant>/rgb_frames/<video_id>/frame_0000000001.jpg`` ... or
``<participant>/videos/<video_id>.MP4`` (``frames_from``). How clips are cut and which segments
are skipped: :mod:`models.avslowfast.epic`.

**Export and live.** Inputs as ``avslowfast-lite`` (``frames (B, 3, 8, S, S)``, ``audio (B,
samples)``, the one-modality rows only their own); the output ``probs`` is the verb softmax
followed by the noun softmax, labels ``verb:<key>`` then ``noun:<key>`` (the class csvs' keys),
as ``slowfast-epic100`` exports them; ``extra`` says ``heads`` and ``output_order``.

**Documented run** (2026-12-06, CPU, ``threads=1`` on a shared 2-core machine): the world
written in the EPIC layout with frames -- 8 training and 2 validation videos of 120 s, 96 x 96
jpgs at 15 fps (31 s to write, 182 MB), 467 training and 114 validation segments (median 1.06 s),
10 verbs and 12 nouns::

    python -c "from models.datasets.from_world import write_epic_world, write_epic_pictures; \\
        from models.world import split_seed; \\
        w = write_epic_world('out/epic-world', [split_seed('train', i) for i in range(8)] \\
            + [split_seed('val', i) for i in range(2)], video_seconds=120, preset='tiny'); \\
        write_epic_pictures(w, preset='tiny')"
    python -m models.train --recipe avslowfast-epic100 --data out/epic-world --out runs/avsf-epic \\
        num_verbs=10 num_nouns=12 epochs=20 threads=1 num_workers=0 decode_workers=0

580 steps (batch 16, lite network, DropPathway 0.8) in 323 s of training, 5 min 33 s wall, 0.9 GB
peak memory, no segment skipped. Validation after epoch 20: action top-1 0.667, verb top-1
0.763, noun top-1 0.675 (top-5: 0.947, 0.965, 0.947); after epoch 1: 0.053, 0.193, 0.149. The
training set's most frequent class scores verb 0.184, noun 0.070, action 0.070 there. In the
world a noun nearly fixes its verb, so action and noun top-1 stay close. ONNX export: PyTorch vs
ONNX Runtime within 3.6e-7.

The one-modality rows, same command plus ``pathways=visual drop_pathway=0`` (128 s of
training) and ``pathways=audio drop_pathway=0`` (176 s): action / verb / noun top-1 0.132 /
0.184 / 0.149 from the pictures alone, 0.711 / 0.763 / 0.711 from the sound alone. The world's
narrations are its sound events, so the sound carries the label and the pictures add nothing
measurable here (audio alone vs audio-visual is 5 of 114 segments apart, inside the noise of one
seed); the run checks the reader and the recipe, not the value of the visual pathways.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from models.avslowfast.data import AUDIO_FRONTEND
from models.avslowfast.epic import FRAMES_FROM, EpicClips
from models.avslowfast.network import AVSlowFastConfig
from models.avslowfast.recipe import AVSlowFastClassifier, AVSlowFastLiteConfig, AVSlowFastLiteRecipe, frontend_for
from models.core.metadata import ModelMetadata, TensorSpec
from models.datasets.formats import (
    EpicAudioHDF5,
    epic_class_keys,
    read_epic100_annotations,
    read_epic100_classes,
    read_epic100_video_info,
)
from models.slowfast.configs import EPIC_AUDIO_HDF5
from models.slowfast.recipes import need_data_folder, need_file, resolve_under, unique_labels

__all__ = ["AVSlowFastEpicConfig", "AVSlowFastEpicRecipe", "EPIC_LAYOUT", "TwoHeadProbabilities"]

EPIC_LAYOUT = ("EPIC_100_train.csv, EPIC_100_validation.csv, EPIC_100_verb_classes.csv, EPIC_100_noun_classes.csv, "
               "EPIC_100_video_info.csv, the audio HDF5 (EPIC-KITCHENS-100_audio.hdf5) and the pictures: "
               "<participant>/rgb_frames/<video_id>/frame_0000000001.jpg ... or <participant>/videos/<video_id>.MP4")


@dataclass(frozen=True)
class AVSlowFastEpicConfig(AVSlowFastLiteConfig):
    """The lite config plus EPIC's heads and files (``num_classes``, ``world`` and the world-clip
    fields are not used; ``sync`` must stay off)."""

    epochs: int = 10
    num_verbs: int = 97  # rows of EPIC_100_verb_classes.csv
    num_nouns: int = 300  # rows of EPIC_100_noun_classes.csv
    audio_hdf5: str = ""  # relative to --data or absolute; "" = EPIC-KITCHENS-100_audio.hdf5, else the only *.hdf5
    frames_from: str = "auto"  # "auto" (per video: rgb_frames if present, else the MP4), "rgb_frames" or "videos"

    def validate(self) -> None:
        super().validate()
        if self.sync or not self.supervised:
            raise ValueError("sync: expected false and supervised true on avslowfast-epic100 (pretrain the "
                             "synchronisation with avslowfast-sync-lite or avslowfast-folder, then pass init=RUN)")
        if self.num_verbs < 1 or self.num_nouns < 1:
            raise ValueError(f"num_verbs, num_nouns: expected >= 1, found {self.num_verbs}, {self.num_nouns}")
        if self.frames_from not in FRAMES_FROM:
            raise ValueError(f"frames_from: expected one of {FRAMES_FROM}, found {self.frames_from!r}")

    def network(self) -> AVSlowFastConfig:
        return dataclasses.replace(super().network(), num_classes=self.num_verbs + self.num_nouns)


class TwoHeadProbabilities(nn.Module):
    """Export wrapper: frames ``(B, 3, T_f, S, S)`` and audio ``(B, samples)`` -> ``(B, V + N)``,
    the verb softmax then the noun softmax."""

    def __init__(self, model: AVSlowFastClassifier, num_verbs: int) -> None:
        super().__init__()
        self.model, self.num_verbs = model, num_verbs

    def probs(self, frames: torch.Tensor | None, audio: torch.Tensor | None) -> torch.Tensor:
        logits = self.model(frames, audio)
        verb, noun = logits[:, :self.num_verbs], logits[:, self.num_verbs:]
        return torch.cat([verb.softmax(dim=1), noun.softmax(dim=1)], dim=1)

    def forward(self, frames: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        return self.probs(frames, audio)


class VisualTwoHeadProbabilities(TwoHeadProbabilities):
    """:class:`TwoHeadProbabilities` of a visual-only network: frames alone."""

    def forward(self, frames: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.probs(frames, None)


class AudioTwoHeadProbabilities(TwoHeadProbabilities):
    """:class:`TwoHeadProbabilities` of an audio-only network: audio alone."""

    def forward(self, audio: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.probs(None, audio)


_EXPORTS = {"av": TwoHeadProbabilities, "visual": VisualTwoHeadProbabilities, "audio": AudioTwoHeadProbabilities}


def _topk_hits(logits: torch.Tensor, target: torch.Tensor, k: int) -> torch.Tensor:
    """``(N,)`` bool: the target among the ``k`` highest logits."""
    top = logits.topk(min(k, logits.shape[1]), dim=1).indices
    return (top == target[:, None]).any(dim=1)


class AVSlowFastEpicRecipe(AVSlowFastLiteRecipe):
    name = "avslowfast-epic100"
    description = ("AVSlowFast lite on EPIC-KITCHENS-100 verb+noun (--data: EPIC_100 csvs, video_info, audio HDF5, "
                   "rgb_frames or videos); CE verb + CE noun, action top-1")
    config_class = AVSlowFastEpicConfig
    primary_metric = "action_top1"
    data_help = EPIC_LAYOUT
    reads = ("epic100",)

    def __init__(self, config: AVSlowFastEpicConfig) -> None:
        super().__init__(config)
        self._labels: tuple[str, ...] | None = None

    # --- labels ------------------------------------------------------------------------
    def labels(self) -> tuple[str, ...]:
        """``verb:<key>`` then ``noun:<key>``: the class csvs' keys once read, else the
        reference's (97/300) or numbered ones."""
        if self._labels is not None:
            return self._labels
        c = self.config
        if (c.num_verbs, c.num_nouns) == (97, 300):
            from models.slowfast.pyth import load_labels

            return tuple(load_labels("epic100"))
        return tuple(f"verb:{k}" for k in range(c.num_verbs)) + tuple(f"noun:{k}" for k in range(c.num_nouns))

    def restore(self, metadata: dict) -> None:
        self._labels = tuple(metadata["labels"])

    # --- data --------------------------------------------------------------------------
    def _class_keys(self, path: Path, count: int, field: str) -> list[str]:
        keys = epic_class_keys(read_epic100_classes(need_file(path, EPIC_LAYOUT)))
        if len(keys) != count:
            raise ValueError(f"{path} lists {len(keys)} classes, the config has {field}={count}; pass {field}={len(keys)}")
        return keys

    def _audio_file(self, root: Path) -> Path:
        if self.config.audio_hdf5:
            return need_file(resolve_under(root, self.config.audio_hdf5), EPIC_LAYOUT)
        if (root / EPIC_AUDIO_HDF5).is_file():
            return root / EPIC_AUDIO_HDF5
        found = sorted(p for p in root.iterdir() if p.suffix in (".hdf5", ".h5") and p.is_file())
        if len(found) != 1:
            raise FileNotFoundError(f"{root / EPIC_AUDIO_HDF5}: no such file, and {len(found)} other *.hdf5 files in "
                                    f"{root}; pass audio_hdf5=NAME (expected --data to hold {EPIC_LAYOUT})")
        return found[0]

    def _segments(self, path: Path) -> list:
        rows = read_epic100_annotations(need_file(path, EPIC_LAYOUT))
        c = self.config
        for r in rows:
            if not r.has_labels:
                raise ValueError(f"{path}: holds test timestamps without verb/noun labels; training and validation "
                                 f"need the 15-column annotation layout")
            if not (0 <= r.verb_class < c.num_verbs and 0 <= r.noun_class < c.num_nouns):
                raise ValueError(f"{path}: narration {r.narration_id} has verb_class {r.verb_class} / noun_class "
                                 f"{r.noun_class}, outside the heads of {c.num_verbs} verbs / {c.num_nouns} nouns")
        return rows

    def build_datasets(self, data: Path | None):
        root = need_data_folder(data, self.name, EPIC_LAYOUT)
        c = self.config
        verbs = self._class_keys(root / "EPIC_100_verb_classes.csv", c.num_verbs, "num_verbs")
        nouns = self._class_keys(root / "EPIC_100_noun_classes.csv", c.num_nouns, "num_nouns")
        videos = {v.video_id: v for v in read_epic100_video_info(need_file(root / "EPIC_100_video_info.csv",
                                                                          EPIC_LAYOUT))}
        audio = EpicAudioHDF5(self._audio_file(root))
        train_rows = self._segments(root / "EPIC_100_train.csv")
        val_rows = self._segments(root / "EPIC_100_validation.csv")
        self._labels = unique_labels([f"verb:{v}" for v in verbs] + [f"noun:{n}" for n in nouns])
        common = dict(frames_from=c.frames_from, workers=c.decode_workers)
        return (EpicClips(root, train_rows, videos, audio, c.clip(), train=True, seed=c.seed, **common),
                EpicClips(root, val_rows, videos, audio, c.clip(), train=False, **common))

    def real_inputs(self) -> dict[str, torch.Tensor]:
        return {}  # the data folder is not known at export time

    # --- loss and figures --------------------------------------------------------------
    def _split(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v = self.config.num_verbs
        return logits[:, :v], logits[:, v:]

    def loss(self, model: nn.Module, batch: dict) -> torch.Tensor:
        keep = self.drop.audio_laterals()
        verb, noun = self._split(model(*self._inputs(batch), audio_laterals=keep))
        ce_verb, ce_noun = F.cross_entropy(verb, batch["verb"]), F.cross_entropy(noun, batch["noun"])
        self.last_terms = {"ce_verb": float(ce_verb.detach()), "ce_noun": float(ce_noun.detach()),
                           "audio_laterals": float(keep)}
        return ce_verb + ce_noun

    @torch.no_grad()
    def evaluate(self, model: nn.Module, loader) -> dict[str, float]:
        """``action_top1``, ``verb_top1``, ``noun_top1``, the top-5 of each and ``items``."""
        hits: dict[str, list[torch.Tensor]] = {}
        for b in loader:
            verb, noun = self._split(model(*self._inputs(b)))
            for k in (1, 5):
                v, n = _topk_hits(verb, b["verb"], k), _topk_hits(noun, b["noun"], k)
                for name, h in ((f"verb_top{k}", v), (f"noun_top{k}", n), (f"action_top{k}", v & n)):
                    hits.setdefault(name, []).append(h)
        if not hits:
            raise ValueError("evaluate: the validation loader yielded no items")
        order = ("action_top1", "verb_top1", "noun_top1", "action_top5", "verb_top5", "noun_top5")
        out = {name: float(torch.cat(hits[name]).float().mean()) for name in order}
        out["items"] = float(len(torch.cat(hits["action_top1"])))
        return out

    # --- metadata and export -----------------------------------------------------------
    def metadata(self, model: nn.Module) -> ModelMetadata:
        c = self.config
        clip, labels = c.clip(), self.labels()
        inputs = self.input_specs()
        return ModelMetadata(
            family="avslowfast", task="labeler", labels=labels, sample_rate=AUDIO_FRONTEND.sample_rate,
            window_seconds=clip.audio_seconds, needs_frame=c.pathways != "audio",
            frontend=frontend_for(c.network()).to_dict(), inputs=tuple(inputs),
            outputs=(TensorSpec("probs", ("batch", len(labels)), "float32"),),
            extra={"multi_label": False, "dataset": "epic100", "heads": [c.num_verbs, c.num_nouns],
                   "output_order": "verb softmax then noun softmax", "pathways": c.pathways,
                   "frames": clip.frames if c.pathways != "audio" else 0, "frame_rate": clip.frame_rate,
                   "image_size": clip.image_size, "frame_at": "end", "network": dataclasses.asdict(c.network()),
                   "frame_preprocess": f"RGB resized to {clip.image_size}x{clip.image_size} (area), x / 127.5 - 1, "
                                       f"(3, T, S, S)"},
        )

    def export_module(self, model: nn.Module):
        example = self.example_inputs()
        module = _EXPORTS[self.config.pathways](model, self.config.num_verbs).eval()
        return module, example, {name: {0: "batch"} for name in example}

