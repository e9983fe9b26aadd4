"""EfficientAT MobileNets (Schmid, Koutini & Widmer, "Efficient Large-Scale Audio Tagging via
Transformer-to-CNN Knowledge Distillation", ICASSP 2023): AudioSet taggers from 1 M (mn04) to 68 M
(mn40) parameters, imported from the authors' released checkpoints.

==============  ==========================================================================
module          job
==============  ==========================================================================
``network``     the MN network (MobileNetV3-Large layout, the authors' keys), its widths
``frontend``    the authors' evaluation front end (pre-emphasis, STFT, Kaldi mel, log)
``labels``      AudioSet's 527 class names (``labels/class_labels_indices.csv``)
``released``    the released ``mnXX_as*.pt`` files as a model file avlive opens directly
==============  ==========================================================================
"""
from models.core.family import Family
from models.efficientat.network import NETWORK_ENTRIES
from models.efficientat.released import MN_FILE

FAMILY = Family(
    name="efficientat",
    description="EfficientAT MobileNets (mn04…mn40): AudioSet taggers, 527 classes, from the authors' checkpoints",
    networks=NETWORK_ENTRIES,
    model_files=(MN_FILE,),
)
