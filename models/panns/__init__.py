"""PANNs (Kong et al., 2020): the authors' AudioSet checkpoints, imported as avlive models.

The pretrained audio neural networks of "PANNs: Large-Scale Pretrained Audio Neural Networks
for Audio Pattern Recognition" (qiuqiangkong/audioset_tagging_cnn; weights on Zenodo, record
3987831), rebuilt in avlive's code with the authors' state-dict keys: a ``Cnn14_mAP=0.431.pth``
or ``Cnn14_DecisionLevelMax_mAP=0.385.pth`` people already have runs live (``avlive --models
FILE.pth``) and exports to ONNX (``python -m models.export FILE.pth``) as it is.

==================  =========================================================================
module              job
==================  =========================================================================
``frontend``        STFT as two strided convolutions, mel, dB: kernels from the checkpoint
``network``         Cnn14 / Cnn14_16k / Cnn10 trunk and the clip, max and attention heads
``checkpoint``      reading ``.pth`` files; which network and head a file holds
``released``        the files as model files avlive opens (kinds ``panns``, ``panns-cnn14`` ...)
``live``            decision-level models as frame-score labelers
``random_weights``  seeded random checkpoints in the authors' layout (tests, benchmarks)
==================  =========================================================================
"""
import dataclasses

from models.core.family import Family, NetworkEntry
from models.panns.live import panns_live
from models.panns.network import CNN10, CNN14, CNN14_16K, PannsConfig, PannsNet
from models.panns.released import MODEL_FILES

#: A narrow Cnn14 (same keys and layout, channels 4 ... 32) for tests: builds and runs in milliseconds.
CNN14_TEST = dataclasses.replace(CNN14, channels=(4, 8, 8, 16, 16, 32))


def _entry(name: str, config: PannsConfig, description: str) -> NetworkEntry:
    def factory(**overrides) -> PannsNet:
        return PannsNet(dataclasses.replace(config, **overrides))

    factory.__name__ = name.replace("-", "_")
    factory.__doc__ = f"{description}; keyword overrides replace PannsConfig fields (random weights)."
    return NetworkEntry(name, factory, description)


FAMILY = Family(
    name="panns",
    description="PANNs AudioSet CNNs (Kong et al. 2020): the authors' .pth files, taggers and framewise detectors",
    networks=(
        _entry("panns-cnn14", CNN14, "PANNs Cnn14 tagger, 32 kHz log-mel, 527 AudioSet classes"),
        _entry("panns-cnn14-decision-max", dataclasses.replace(CNN14, arch="Cnn14_DecisionLevelMax", head="decision-max"),
               "PANNs Cnn14_DecisionLevelMax: segment probabilities every 0.32 s, clip = max"),
        _entry("panns-cnn14-decision-att", dataclasses.replace(CNN14, arch="Cnn14_DecisionLevelAtt", head="decision-att"),
               "PANNs Cnn14_DecisionLevelAtt: segment probabilities, clip = attention-weighted sum"),
        _entry("panns-cnn14-16k", CNN14_16K, "PANNs Cnn14_16k tagger, 16 kHz log-mel"),
        _entry("panns-cnn10", CNN10, "PANNs Cnn10 tagger (4 conv blocks)"),
        _entry("panns-test", CNN14_TEST, "a narrow Cnn14 for tests (channels 4 ... 32)"),
    ),
    live=panns_live,
    model_files=MODEL_FILES,
)
