"""Train the baseline recipe in float32 or float64, alone or under torchrun (for tests/test_train.py).

    python tests/train_in_dtype.py {float32|float64} OUT OVERRIDE...
    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/train_in_dtype.py float64 OUT OVERRIDE...

The trainer (models.train.loop.train) runs unchanged; float64 only casts the network (weights,
front-end buffers, hence the optimizer state) and each batch's audio, which the dataset gives in
float32, so both precisions see the same samples. The recipe keeps its name ("baseline"); in float32 the
weights after 20 steps equal those of ``python -m models.train --recipe baseline`` bit for bit.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

from models.baseline.recipe import BaselineRecipe
from models.core.train_config import apply_overrides
from models.train.loop import train


def dtype_recipe(dtype: torch.dtype):
    class DtypeBaseline(BaselineRecipe):
        def build_model(self):
            return super().build_model().to(dtype)

        def collate(self, items):
            batch = super().collate(items)
            return {**batch, "audio": batch["audio"].to(dtype)}

    return DtypeBaseline


def main(argv: list[str]) -> int:
    dtype = {"float32": torch.float32, "float64": torch.float64}[argv[0]]
    out, overrides = Path(argv[1]), argv[2:]
    recipe_cls = dtype_recipe(dtype)
    train(recipe_cls(apply_overrides(recipe_cls.config_class(), overrides)), out, argv=[sys.executable, __file__, *argv])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
