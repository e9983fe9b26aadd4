"""EfficientAT MobileNets (Schmid, Koutini & Widmer, "Efficient Large-Scale Audio Tagging via
Transformer-to-CNN Knowledge Distillation", ICASSP 2023; the dynamic DyMN, "Dynamic Convolutional
Neural Networks as Efficient Pre-trained Audio Models", 2024): AudioSet taggers from 1 M (mn04) to
68 M (mn40) parameters, imported from the authors' released checkpoints.

==============  ==========================================================================
module          job
==============  ==========================================================================
``network``     the MN network (MobileNetV3-Large layout, the authors' keys), its widths
``dymn``        the DyMN network (dynamic convs, DyReLU, coordinate attention; the authors' keys)
``frontend``    the authors' evaluation front end (pre-emphasis, STFT, Kaldi mel, log)
``released``    the released ``mnXX_as*.pt`` files as a model file avlive opens directly
==============  ==========================================================================
"""
from models.core.family import Family, variant_entries
from models.efficientat.dymn import DYMN_VARIANTS, DyMN
from models.efficientat.network import NETWORK_ENTRIES
from models.efficientat.released import MN_FILE

DYMN_ENTRIES = variant_entries(
    {f"efficientat-{name}": config for name, config in DYMN_VARIANTS.items()},
    {f"efficientat-{name}": f"EfficientAT dynamic MobileNet {name} (width {config.width:g}), 527 AudioSet logits "
                            f"from log-mel" for name, config in DYMN_VARIANTS.items()},
    lambda config: DyMN(config).eval(),
)

FAMILY = Family(
    name="efficientat",
    description="EfficientAT MobileNets (mn04…mn40, dymn04…dymn20): AudioSet taggers, 527 classes, from the "
                "authors' checkpoints",
    networks=NETWORK_ENTRIES + DYMN_ENTRIES,
    model_files=(MN_FILE,),
)
