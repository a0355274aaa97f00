"""The training order of one epoch, resumable in the middle: DistributedSampler's order minus what was done."""
from __future__ import annotations

from torch.utils.data import Dataset, Sampler
from torch.utils.data.distributed import DistributedSampler

from trainer.distributed import DistEnv


class ResumableSampler(Sampler):
    """DistributedSampler order for an epoch, optionally starting after the first `skip` indices.

    The order depends on (seed, epoch) only, so a run resumed mid-epoch skips exactly the items the interrupted
    session had trained on, and sees the rest in the same order.
    """

    def __init__(self, dataset: Dataset, env: DistEnv, seed: int):
        self.inner = DistributedSampler(dataset, num_replicas=env.world_size, rank=env.rank,
                                        shuffle=True, seed=seed, drop_last=True)
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Select the order of `epoch` and how many of its first indices (this rank's) to leave out."""
        self.inner.set_epoch(epoch)
        self.skip = skip

    def __iter__(self):
        return iter(list(self.inner)[self.skip:])

    def __len__(self) -> int:
        return len(self.inner) - self.skip
