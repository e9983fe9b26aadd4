"""SoundNet (seed 001; Aytar, Vondrick & Torralba, NeurIPS 2016): raw-waveform networks taught by
a visual network on unlabelled video, whose inner layers then feed linear classifiers.

=============== =============================================================================
module          job
=============== =============================================================================
``network``     the 8- and 5-layer networks of the authors' code, the lite size, time grids
``teacher``     visual teachers (EfficientNet-Lite0 on ImageNet, a user's ResNet/VGG weights) and
                their posterior cache
``classifiers`` ResNet and VGG with torchvision's parameter names (teachers from weights files)
``data``        world scenes and video files cut into crops with the teacher's targets
``recipe``      ``soundnet-lite``, ``soundnet8``, ``soundnet5``: teacher-student training (KL)
``transfer``    window features, the linear SVM, the SVM + network as one labeler file
``supervised``  the paper's supervised comparison: the network trained on the labelled clips
=============== =============================================================================
"""
from models.core.family import Family, NetworkEntry
from models.soundnet.network import soundnet5, soundnet8, soundnet_lite
from models.soundnet.recipe import SoundNet5Recipe, SoundNet8Recipe, SoundNetRecipe
from models.soundnet.transfer import LINEAR_FILE

NETWORK_ENTRIES = (
    NetworkEntry("soundnet8", soundnet8, "SoundNet 8 layers (paper): 2.87 M params to conv7, conv8 object/scene heads"),
    NetworkEntry("soundnet5", soundnet5, "SoundNet 5 layers (paper): 0.46 M params to conv4, conv5 object/scene heads"),
    NetworkEntry("soundnet-lite", soundnet_lite, "SoundNet 8-layer geometry with a quarter of the filters (CPU training)"),
)

FAMILY = Family(
    name="soundnet",
    description="SoundNet (seed 001): raw-waveform networks taught by a visual network; linear transfer",
    networks=NETWORK_ENTRIES,
    recipes=(SoundNetRecipe, SoundNet8Recipe, SoundNet5Recipe),
    model_files=(LINEAR_FILE,),
)
