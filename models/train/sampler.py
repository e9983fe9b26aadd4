"""A batch sampler that can stop and resume mid-epoch exactly, and shard a global batch over ranks."""
from __future__ import annotations

import torch
from torch.utils.data import Sampler


class ResumableBatchSampler(Sampler):
    """Yields batches of ``(epoch, index)`` addresses.

    Each epoch is one permutation of the dataset drawn from ``(seed, epoch)`` alone, cut into
    global batches of ``global_batch`` (the last partial batch is dropped); rank r of
    ``world_size`` takes the r-th contiguous slice of every global batch. ``set_epoch(e, start)``
    skips the first ``start`` batches, which is how a run resumes mid-epoch.
    """

    def __init__(self, n: int, global_batch: int, seed: int, *, rank: int = 0, world_size: int = 1, shuffle: bool = True):
        if global_batch % world_size:
            raise ValueError(f"batch_size: expected a multiple of the {world_size} processes, found {global_batch}")
        if n < global_batch:
            raise ValueError(f"dataset of {n} items is smaller than one batch of {global_batch}")
        self.n, self.global_batch, self.seed = n, global_batch, seed
        self.rank, self.world_size, self.shuffle = rank, world_size, shuffle
        self.epoch, self.start = 0, 0

    @property
    def batches_per_epoch(self) -> int:
        return self.n // self.global_batch

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start = epoch, start_batch

    def __len__(self) -> int:
        return self.batches_per_epoch - self.start

    def __iter__(self):
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        local = self.global_batch // self.world_size
        for b in range(self.start, self.batches_per_epoch):
            batch = order[b * self.global_batch : (b + 1) * self.global_batch]
            mine = batch[self.rank * local : (self.rank + 1) * local]
            yield [(self.epoch, i) for i in mine]
