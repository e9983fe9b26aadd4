"""The CRNN sound-event detector (seed 003): frame-level labels with sharp onsets, streaming.

* :mod:`.network`: gated convolutional encoder, bidirectional GRUs, frame and clip outputs;
  paper (DCASE 2021 baseline) and lite sizes.
* :mod:`.streaming`: one hop at a time, encoding only the new audio (exported graph).
* :mod:`.frames`, :mod:`.postprocess`: the frame grid, targets, and frames -> events.
* :mod:`.data`, :mod:`.recipe`: strong/weak/unlabelled clips from the world or a DESED folder,
  mean teacher, mixup, SpecAugment (``--recipe crnn-lite``, ``--recipe crnn``).
* :mod:`.fusion`: pretrained auditory and visual embeddings fused into the input per frame
  (``fuse=...``; the paper's audio-visual transfer, offline).
* :mod:`.live`: the streaming labeler that avlive runs.
"""
from models.core.family import Family, NetworkEntry
from models.crnn.live import streaming_labeler
from models.crnn.network import CRNN, lite_config, paper_config
from models.crnn.recipe import CRNNPaperRecipe, CRNNRecipe
from models.world import CLASS_NAMES


def _lite(**overrides) -> CRNN:
    return CRNN(lite_config(overrides.pop("num_classes", len(CLASS_NAMES)), **overrides))


def _paper(**overrides) -> CRNN:
    return CRNN(paper_config(overrides.pop("num_classes", 10), **overrides))


FAMILY = Family(
    name="crnn",
    description="CRNN sound-event detection (seed 003): frame-level scores, streaming, mean teacher",
    networks=(NetworkEntry("crnn-lite", _lite, "CRNN lite: 6 gated conv blocks on 64 mel bands, 2 x BiGRU 64"),
              NetworkEntry("crnn-paper", _paper, "CRNN, DCASE 2021 baseline size: 7 blocks, 128 mel, 2 x BiGRU 128")),
    recipes=(CRNNRecipe, CRNNPaperRecipe),
    live=streaming_labeler,
)
