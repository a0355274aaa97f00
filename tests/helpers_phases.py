"""Watch a run's model parts epoch by epoch: which parameters each training phase changed, and which it left alone."""
import pytest
import torch

import trainer.loop
import trainer.run


def snapshot(parts: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A copy of every tensor of the shared parts except the frozen pre-trained teacher's."""
    return {k: v.detach().clone() for k, v in parts.state_dict().items() if not k.startswith('teacher.')}


class PartsRecorder:
    """Records the parts right after they are built and after every finished training epoch, as
    (phase name, epoch, tensors); phase 'init' / epoch 0 is the state before any training."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.parts = None
        self.snapshots: list[tuple[str, int, dict[str, torch.Tensor]]] = []
        real_build, real_epoch = trainer.run.build_parts, trainer.loop.Trainer.train_epoch

        def build(*args, **kwargs):
            self.parts = real_build(*args, **kwargs)
            self.snapshots.append(('init', 0, snapshot(self.parts)))
            return self.parts

        def train_epoch(trainer_self, epoch):
            losses = real_epoch(trainer_self, epoch)
            if losses is not None:
                self.snapshots.append((trainer_self.cfg.phase, epoch, snapshot(self.parts)))
            return losses

        monkeypatch.setattr(trainer.run, 'build_parts', build)
        monkeypatch.setattr(trainer.loop.Trainer, 'train_epoch', train_epoch)

    def at(self, phase: str, epoch: int) -> dict[str, torch.Tensor]:
        """The tensors after `epoch` of `phase` ('init', 0: before training)."""
        found = [s for p, e, s in self.snapshots if (p, e) == (phase, epoch)]
        assert len(found) == 1, (phase, epoch, [(p, e) for p, e, _ in self.snapshots])
        return found[0]


def same(before: dict, after: dict, prefix: str) -> bool:
    """Every tensor under `prefix` (parameters and buffers) is identical in both snapshots."""
    keys = [k for k in before if k.startswith(prefix)]
    assert keys, prefix
    return all(torch.equal(before[k], after[k]) for k in keys)


def changed_share(before: dict, after: dict, prefix: str, parameters: set[str]) -> float:
    """Share of the parameters under `prefix` whose values differ between the snapshots."""
    keys = [k for k in before if k.startswith(prefix) and k in parameters]
    assert keys, prefix
    return sum(not torch.equal(before[k], after[k]) for k in keys) / len(keys)
