"""Which samples each step trains on: a seeded permutation per epoch, read as one endless stream.

Global batch k is positions k*G .. (k+1)*G - 1 of the stream (G = per-rank batch x ranks), rank r
takes its r-th slice.  The data position is therefore the step number itself: a run resumed at
step k reads exactly the batches the uninterrupted run would have read.
"""

from __future__ import annotations

import numpy as np


class EpochStream:
    def __init__(
        self, num_samples: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1
    ) -> None:
        if num_samples <= 0:
            raise ValueError("no training samples")
        self.num_samples, self.batch_size = num_samples, batch_size
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self._perms: dict[int, np.ndarray] = {}

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world_size

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            if len(self._perms) > 4:
                self._perms.clear()
            self._perms[epoch] = np.random.default_rng([self.seed, epoch]).permutation(self.num_samples)
        return self._perms[epoch]

    def positions(self, step: int) -> np.ndarray:
        """Stream positions of this rank's part of global batch ``step``."""
        first = step * self.global_batch + self.rank * self.batch_size
        return np.arange(first, first + self.batch_size)

    def batch(self, step: int) -> list[int]:
        """Sample indices of this rank's part of global batch ``step``."""
        return [
            int(self._permutation(p // self.num_samples)[p % self.num_samples]) for p in self.positions(step)
        ]

    def epoch(self, step: int) -> float:
        return step * self.global_batch / self.num_samples
